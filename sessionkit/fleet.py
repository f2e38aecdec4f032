"""Waiting on many sessions at once with the services' list calls.

Platforms that open tens or hundreds of sessions should not poll each one on its own: a
hundred sessions polled every second is a hundred calls per second, which gets an account
throttled. :func:`wait_all` refreshes the sessions of one backend, client and location together,
with one list call per page per round (some services' list calls return full records, others
each session's state), and describes sessions one by one only where that is cheaper (a few
awaited sessions among many listed). No thread is started.

:class:`FleetPoller` is the engine underneath, for callers who want each session as it arrives:

```python
from sessionkit import open_session
from sessionkit.fleet import FleetPoller
from sessionkit.testing import Emulator
from sessionkit.testing.emulator import emulated_backends

emulator = Emulator()
backend = emulated_backends()[0]  # any of them: each has its own keywords and role
connection = {**emulator.keywords(backend), "poll_policy": emulator.poll_policy()}
role = emulator.role(backend)
sessions = [open_session(backend, wait=False, role=role, **connection) for _ in range(20)]
poller = FleetPoller(sessions, timeout=600)
for outcome in poller.as_completed():       # each session as soon as it is READY
    print(outcome.info.id, outcome.status)   # "done", "failed" or "timed_out"
for session in sessions:
    session.stop(wait=False)
```

While a :func:`wait_all` (or an :meth:`FleetPoller.as_completed` loop) runs in one thread,
``Session.wait_until_ready`` of one of its sessions in another thread follows the fleet's
rounds instead of making calls of its own.

Ctrl-C (or :class:`~sessionkit.waiting.Terminated` from
:func:`~sessionkit.waiting.stop_on_sigterm`) during a fleet wait requests the stop of every
owned session in the fleet before the interrupt propagates.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import attrs

from sessionkit.errors import (
    FleetFailedError,
    FleetTimeoutError,
    InvalidConfigError,
    ServiceError,
    SessionKitError,
    WaitTimeoutError,
)
from sessionkit.models import SessionInfo, to_timedelta
from sessionkit.states import SessionState
from sessionkit.waiting import (
    PageGuard,
    PollPolicy,
    _is_retryable,
    clamp_to_deadline,
    readiness_failure,
    spend_call,
    timeout_message,
)

if TYPE_CHECKING:
    from sessionkit.backends.base import Backend
    from sessionkit.session import Session

__all__ = ["FLEET_POLL", "FleetPoller", "Outcome", "wait_all"]

logger = logging.getLogger(__name__)

#: The default cadence of :func:`wait_all`: one round of list calls every 1 to 1.5 s.
FLEET_POLL = PollPolicy(first=1.0, multiplier=1.2, cap=1.5, jitter=0.1)

#: A waiter following a fleet poller polls on its own after this many real seconds without a
#: round (the thread driving the poller is busy elsewhere, e.g. in the body of its loop).
_STALL_SECONDS = 5.0

#: How often (real seconds) a follower re-checks its own deadline while waiting for a round.
_FOLLOW_TICK = 0.05

DONE = "done"
FAILED = "failed"
TIMED_OUT = "timed_out"


@attrs.frozen(kw_only=True)
class Outcome:
    """How waiting ended for one session in :func:`wait_all`.

    Attributes:
        info: The last :class:`SessionInfo` seen.
        status: ``"done"``, ``"failed"`` or ``"timed_out"``.
        error: Why it did not get there: a :class:`~sessionkit.errors.SessionFailedError` (with
            the service's reason), a :class:`~sessionkit.errors.WaitTimeoutError`, or the
            :class:`~sessionkit.errors.ServiceError` of a session the service no longer knows.
        session: The :class:`~sessionkit.Session` it is about.
        at: The poll policy's clock when the outcome was seen.
    """

    info: SessionInfo
    status: str
    error: SessionKitError | None = None
    session: Session | None = attrs.field(default=None, eq=False, repr=False)
    at: float | None = None

    @property
    def ok(self) -> bool:
        """Whether the session got there."""
        return self.status == DONE


#: What a fleet waiting for READY asks the list call for (what can still change): a session
#: not listed in these states has changed (READY, BUSY, failed), and a describe tells how.
_LISTED_WHILE_STARTING = frozenset({SessionState.PENDING, SessionState.STARTING})

#: Where sessions that left the starting states most likely went (listed when cheaper than
#: describing each).
_LISTED_WHEN_READY = frozenset({SessionState.READY, SessionState.BUSY})

#: What a fleet waiting for STOPPED asks the list call for: every state that is not final.
_LISTED_WHILE_STOPPING = frozenset(state for state in SessionState if state.is_alive)


#: Records nobody awaits that one plain list page may carry before the fleet filters instead
#: (parsing a few is cheaper than the filtered pass and a describe per settled session).
_PLAIN_SLACK = 50

#: At most this many rounds in a row list only the settled sessions before a full pass over
#: the starting ones (which sees failures).
_FULL_PASS_EVERY = 3

#: Errors of a listing that would never end: raised, not a reason to describe instead.
_ENDLESS = frozenset({"RepeatedNextToken", "TooManyPages"})


def _until(until: SessionState | str) -> SessionState:
    try:
        target = SessionState(str(until).upper())
    except ValueError:
        target = None
    if target not in (SessionState.READY, SessionState.STOPPED):
        raise InvalidConfigError("until", f"must be SessionState.READY or STOPPED, got {until!r}")
    return target


class _Group:
    """Sessions that one list call covers (same backend, client and location)."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.members: list[Session] = []
        # List pages needed last time to see every awaited session; a round lists when that
        # is fewer calls than describing the awaited sessions one by one.
        self.pages = 1
        # The same for the listing of sessions that have settled (READY or BUSY).
        self.settled_pages = 1
        # Pages of the last filtered pass over the starting sessions.
        self.starting_pages = 1
        # Rounds in a row that listed only the settled sessions.
        self.settled_rounds = 0
        # Whether the plain (unfiltered) listing is still tried first: it is the cheapest while
        # every awaited session fits its first page.
        self.unfiltered = True
        # Records of sessions nobody awaits in the last listing pass.
        self.unawaited = 0
        self.list_ok = True


class FleetPoller:
    """Polls many sessions together, one round at a time; :func:`wait_all` is built on it.

    Each round (:meth:`poll`) refreshes the sessions still awaited, group by group (one group
    per backend client and location): with the service's list call, one call per page, stopping
    at the page where the last awaited session shows up, or with one describe call per session
    when fewer sessions are awaited than the list needs pages. Throttling and transient errors
    skip the group until the next round; a list call the caller may not make (access denied)
    switches the group to describes; a describe the service refuses (the session is gone) ends
    that session's wait as failed. Drive it with :meth:`as_completed` (sleeps between rounds on
    the policy's clock) or call :meth:`poll` yourself. One thread drives a poller at a time.

    Args:
        sessions: The sessions to wait for.
        until: ``SessionState.READY`` (fail fast on FAILED, TIMED_OUT, DEGRADED, STOPPING and
            STOPPED, as :meth:`Session.wait_until_ready` does) or ``SessionState.STOPPED`` (any
            terminal state).
        timeout: The longest wait, counted from the first round; default: the policy's.
        poll_policy: The cadence; default :data:`FLEET_POLL` on the first session's clock.
    """

    def __init__(
        self,
        sessions: Iterable[Session],
        *,
        until: SessionState | str = SessionState.READY,
        timeout: timedelta | float | None = None,
        poll_policy: PollPolicy | None = None,
    ) -> None:
        unique: dict[int, Session] = {}
        for session in sessions:
            unique.setdefault(id(session), session)
        self._members = list(unique.values())
        self._target = _until(until)
        if poll_policy is None and self._members:
            base = self._members[0].poll_policy
            poll_policy = FLEET_POLL.on(base.clock, base.sleep, base.now)
        self._policy = poll_policy or FLEET_POLL
        self._limit = self._policy.timeout if timeout is None else to_timedelta(timeout)
        self._deadline: float | None = None
        self._outcomes: dict[int, Outcome] = {}
        self._errors: dict[int, SessionKitError] = {}
        self._fresh: set[int] = set()
        self._groups: dict[tuple[Any, ...], _Group] = {}
        self._by_key: dict[tuple[Any, ...], Session] = {}
        for session in self._members:
            key = session.implementation.fleet_key()
            group = self._groups.get(key)
            if group is None:
                group = self._groups[key] = _Group(session.implementation)
            group.members.append(session)
            self._by_key.setdefault((key, session.id), session)
        if self._target is SessionState.READY:
            self._changing = _LISTED_WHILE_STARTING
            self._settled: frozenset[SessionState] | None = _LISTED_WHEN_READY
        else:
            self._changing, self._settled = _LISTED_WHILE_STOPPING, None
        self._rounds = 0
        self._round_started = 0.0
        self._calls = 0
        self._cond = threading.Condition()
        self._driver: threading.Thread | None = None
        self._last_round = time.monotonic()
        self._finished = False

    # -- what it knows -----------------------------------------------------------------------

    @property
    def policy(self) -> PollPolicy:
        """The poll policy of the rounds."""
        return self._policy

    @property
    def sessions(self) -> list[Session]:
        """Every awaited session, in the order given (duplicates removed)."""
        return list(self._members)

    @property
    def pending(self) -> list[Session]:
        """The sessions without an outcome yet."""
        return [s for s in self._members if id(s) not in self._outcomes]

    @property
    def outcomes(self) -> list[Outcome]:
        """The outcomes so far, in the order they were seen."""
        return list(self._outcomes.values())

    @property
    def rounds(self) -> int:
        """How many rounds were polled."""
        return self._rounds

    @property
    def calls(self) -> int:
        """How many service calls the rounds made (attempts, including failed ones)."""
        return self._calls

    @property
    def deadline(self) -> float | None:
        """When the wait gives up, on the policy's clock (``None``: no limit, or not started)."""
        return self._deadline

    def outcome(self, session: Session) -> Outcome | None:
        """The outcome of ``session``, or ``None`` while it is awaited."""
        return self._outcomes.get(id(session))

    # -- polling -----------------------------------------------------------------------------

    def poll(self) -> list[Outcome]:
        """Poll one round now (no sleep) and return the outcomes it settled.

        When the deadline has passed after the round, every session still awaited is settled
        as timed out (those outcomes are returned too).

        Returns:
            The new outcomes, in the order of the sessions given.
        """
        clock = self._policy.clock
        if self._deadline is None and self._limit is not None:
            self._deadline = clock() + self._limit.total_seconds()
        self._driver = threading.current_thread()
        with _running_lock:
            _running.add(self)
        pending = self.pending
        self._fresh.clear()
        self._round_started = clock()
        for group in self._groups.values():
            if self._past_deadline():
                break
            awaited = [s for s in group.members if id(s) not in self._outcomes]
            if awaited:
                self._refresh(group, awaited)
        new: list[Outcome] = []
        with self._cond:
            now = clock()
            for session in pending:
                # Only a fresh look settles a session: never the info it came with, nor the
                # last round's when this round's call for its group failed.
                if id(session) not in self._fresh and id(session) not in self._errors:
                    continue
                outcome = self._settle(session, now)
                if outcome is not None:
                    self._outcomes[id(session)] = outcome
                    new.append(outcome)
            if self._deadline is not None and now >= self._deadline:
                for session in self.pending:
                    outcome = self._timed_out(session, now)
                    self._outcomes[id(session)] = outcome
                    new.append(outcome)
            self._rounds += 1
            self._last_round = time.monotonic()
            self._cond.notify_all()
        if not self.pending:
            self._finish()
        return new

    def as_completed(self) -> Iterator[Outcome]:
        """Poll round after round, yielding each session's outcome as soon as it is seen.

        Sleeps between rounds on the policy's schedule, the last sleep cut to end at the
        deadline, where one final round is made; sessions still awaited then are yielded as
        ``"timed_out"``. Ctrl-C (or SIGTERM under :func:`~sessionkit.waiting.stop_on_sigterm`)
        requests the stop of every owned session of the fleet before it propagates.

        Yields:
            One :class:`Outcome` per session.
        """
        policy = self._policy
        try:
            while True:
                yield from self.poll()
                if not self.pending:
                    return
                # Rounds start on the schedule: the time a round took counts towards the pause.
                spent = policy.clock() - self._round_started
                pause = max(0.0, policy.interval(self._rounds - 1) - spent)
                pause = clamp_to_deadline(pause, self._deadline, policy.clock)
                self._driver = threading.current_thread()
                policy.sleep(pause)
        except (KeyboardInterrupt, SystemExit):
            self._stop_owned()
            raise
        finally:
            self._finish()

    def wait(self) -> list[SessionInfo]:
        """Poll until every session has an outcome.

        Returns:
            The final :class:`SessionInfo` of every session, in the order given.

        Raises:
            FleetFailedError: When any session failed (a :class:`SessionFailedError` too).
            FleetTimeoutError: When time ran out first (a :class:`WaitTimeoutError` too).
                Both are :class:`FleetWaitError` and carry every session's outcome.
        """
        for _ in self.as_completed():
            pass
        bad = [o for o in self._outcomes.values() if o.status != DONE]
        if bad:
            failures = [o for o in bad if o.status == FAILED]
            total = len(self._members)
            # A failure outranks a timeout: the caller's SessionFailedError handler applies.
            kind = FleetFailedError if failures else FleetTimeoutError
            raise kind(
                f"{total - len(bad)} of {total} sessions reached {self._target.value}; "
                f"{len(failures)} failed, {len(bad) - len(failures)} timed out",
                outcomes={o.info.id: o for o in self._outcomes.values()},
                info=(failures or bad)[0].info,
            )
        return [self._outcomes[id(s)].info for s in self._members]

    # -- one round of one group --------------------------------------------------------------

    def _past_deadline(self) -> bool:
        # Strictly past: the final round, at the deadline itself, still makes its calls.
        return self._deadline is not None and self._policy.clock() > self._deadline

    def _refresh(self, group: _Group, awaited: list[Session]) -> None:
        by_id: dict[str, list[Session]] = {}
        for session in awaited:
            by_id.setdefault(session.id, []).append(session)
        try:
            if group.list_ok and len(by_id) > group.pages:
                try:
                    if group.unfiltered or not group.backend.list_filters_states:
                        # Every awaited session showed up on the first page of the plain
                        # listing: one call a round, nothing cheaper. More pages: filter.
                        filters = group.backend.list_filters_states
                        by_id = self._list(
                            group, by_id, None, "pages", max_pages=2 if filters else None
                        )
                        # Stay with it only while most of what it returns is awaited: records
                        # nobody awaits cost parsing (the filtered listing skips them).
                        group.unfiltered = (
                            group.pages <= 1
                            and not by_id
                            and group.unawaited <= max(len(awaited), _PLAIN_SLACK)
                        )
                    if by_id and group.backend.list_filters_states:
                        if (
                            self._settled is not None
                            and group.settled_pages < group.starting_pages
                            and group.settled_rounds < _FULL_PASS_EVERY
                        ):
                            # Fewer sessions have settled than are still starting: list the
                            # settled ones only (the newly READY show up there); the rest are
                            # unchanged as far as this round knows. Every few rounds a full
                            # pass over the starting ones catches failures.
                            self._list(group, by_id, self._settled, "settled_pages")
                            group.settled_rounds += 1
                            by_id = {}
                        else:
                            group.settled_rounds = 0
                            by_id = self._list(group, by_id, self._changing, "pages")
                            group.starting_pages = group.pages
                            # Those no longer listed as changing have moved on: list where
                            # they went when that is cheaper than describing each.
                            if len(by_id) > group.settled_pages and self._settled is not None:
                                by_id = self._list(group, by_id, self._settled, "settled_pages")
                except ServiceError as exc:
                    if _is_retryable(exc) or exc.code in _ENDLESS:
                        raise
                    # Some roles may describe sessions but not list them: describe from now on.
                    logger.warning(
                        "listing %s sessions failed (%s); describing them one by one instead",
                        group.backend.name,
                        exc,
                    )
                    group.list_ok = False
            self._describe(group, by_id)
        except ServiceError as exc:
            if not _is_retryable(exc):
                raise
            logger.info(
                "polling %s sessions through a transient error: %s", group.backend.name, exc
            )

    def _list(
        self,
        group: _Group,
        wanted: dict[str, list[Session]],
        states: frozenset[SessionState] | None,
        pages_field: str,
        max_pages: int | None = None,
    ) -> dict[str, list[Session]]:
        """List what can still change until every wanted session was seen; return the rest.

        The list call asks only for sessions in states that can still change (server-side
        where the API filters), so sessions that moved on are absent and are described one by
        one afterwards; records of sessions nobody awaits are skipped by id, untranslated.
        """
        backend = group.backend
        remaining = dict(wanted)
        guard = PageGuard(f"list {backend.name} sessions")
        token: str | None = None
        while not self._past_deadline():
            spend_call(backend, self._policy)
            self._calls += 1
            records, token = backend._list_records(states, token)
            unawaited = len(records)
            for record in records:
                sessions = remaining.pop(backend._record_id(record), None)
                if sessions:
                    unawaited -= 1
                    info = backend._record_info(record)
                    for session in sessions:
                        session.observe(info)
                        self._fresh.add(id(session))
            group.unawaited = unawaited if guard.pages == 0 else group.unawaited + unawaited
            token = guard.next(token)
            if not remaining or token is None:
                break
            if max_pages is not None and guard.pages >= max_pages:
                break
        setattr(group, pages_field, guard.pages)
        if self._past_deadline():
            return {}
        return remaining

    def _describe(self, group: _Group, wanted: dict[str, list[Session]]) -> None:
        for session_id, sessions in wanted.items():
            if self._past_deadline():
                return
            spend_call(group.backend, self._policy)
            self._calls += 1
            try:
                info = group.backend._describe_light(session_id)
            except ServiceError as exc:
                if _is_retryable(exc):
                    raise
                for session in sessions:
                    self._errors[id(session)] = exc
                continue
            for session in sessions:
                session.observe(info)
                self._fresh.add(id(session))

    # -- outcomes ----------------------------------------------------------------------------

    def _settle(self, session: Session, now: float) -> Outcome | None:
        info = session.info
        error = self._errors.pop(id(session), None)
        if error is not None:
            return Outcome(info=info, status=FAILED, error=error, session=session, at=now)
        if self._target is SessionState.READY:
            if info.state is SessionState.READY:
                return Outcome(info=info, status=DONE, session=session, at=now)
            failure = readiness_failure(info)
            if failure is not None:
                return Outcome(info=info, status=FAILED, error=failure, session=session, at=now)
        elif info.state.is_terminal:
            return Outcome(info=info, status=DONE, session=session, at=now)
        return None

    def _timed_out(self, session: Session, now: float) -> Outcome:
        info = session.info
        error = WaitTimeoutError(
            timeout_message(
                self._limit,
                f"{session.backend} session {info.id} still {info.state.value}, "
                f"not {self._target.value}",
            ),
            info=info,
        )
        return Outcome(info=info, status=TIMED_OUT, error=error, session=session, at=now)

    def _stop_owned(self) -> None:
        for session in self._members:
            if session.owned and not session.state.is_terminal:
                session.stop_quietly()

    def _finish(self) -> None:
        with self._cond:
            self._finished = True
            self._driver = None
            self._cond.notify_all()
        with _running_lock:
            _running.discard(self)

    # -- sharing rounds with Session.wait_until_ready ------------------------------------------

    def _follow(
        self,
        key: tuple[Any, ...],
        done: Callable[[SessionInfo], bool],
        clock: Callable[[], float],
        deadline: float | None,
        describe: Callable[[SessionInfo], str],
    ) -> SessionInfo | None:
        """Wait on this poller's rounds for one session; ``None`` when it stops serving it."""
        seen = -1
        member = self._by_key[key]
        with self._cond:
            while True:
                info = member.info
                if self._rounds != seen:
                    seen = self._rounds
                    if done(info):
                        return info
                if deadline is not None and clock() >= deadline:
                    raise WaitTimeoutError(describe(info), info=info)
                if (
                    self._finished
                    or id(member) in self._outcomes
                    or time.monotonic() - self._last_round > _STALL_SECONDS
                ):
                    return None
                self._cond.wait(_FOLLOW_TICK)

    def _serves(self, key: tuple[Any, ...]) -> bool:
        member = self._by_key.get(key)
        return (
            member is not None
            and not self._finished
            and id(member) not in self._outcomes
            and self._driver is not None
            and self._driver is not threading.current_thread()
        )


_running: weakref.WeakSet[FleetPoller] = weakref.WeakSet()
_running_lock = threading.Lock()


def _follow_running_wait(
    session: Session,
    done: Callable[[SessionInfo], bool],
    timeout: timedelta | float | None,
    *,
    target: str = "READY",
) -> tuple[SessionInfo | None, timedelta | float | None]:
    """Let a single-session wait share the rounds of a fleet poller running in another thread.

    Args:
        session: The session waited for.
        done: The wait's predicate (may raise to fail fast).
        timeout: The wait's timeout argument.
        target: Words for the timeout message.

    Returns:
        ``(info, None)`` when the fleet's rounds ended the wait, else ``(None, remaining)``:
        the caller polls on its own for the time that remains (``timeout`` unchanged when no
        poller serves the session).

    Raises:
        WaitTimeoutError: When the wait's deadline passed while following the fleet.
    """
    if not _running:
        return None, timeout
    key = (session.implementation.fleet_key(), session.id)
    with _running_lock:
        poller = next((p for p in _running if p._serves(key)), None)
    if poller is None:
        return None, timeout
    policy = session.poll_policy
    limit = policy.timeout if timeout is None else to_timedelta(timeout)
    deadline = None if limit is None else policy.clock() + limit.total_seconds()
    logger.debug("session %s follows a running fleet wait", session.id)
    info = poller._follow(
        key,
        done,
        policy.clock,
        deadline,
        lambda last: timeout_message(
            limit, f"{session.backend} session {session.id} still {last.state.value}, not {target}"
        ),
    )
    if info is not None:
        return info, None
    if deadline is None:
        return None, None
    return None, max(0.0, deadline - policy.clock())


def wait_all(
    sessions: Iterable[Session],
    until: SessionState | str = SessionState.READY,
    timeout: timedelta | float | None = None,
    *,
    poll_policy: PollPolicy | None = None,
) -> list[SessionInfo]:
    """Wait until every session is READY (or STOPPED), polling them together.

    Sessions of one backend, client and location are refreshed with the service's list call,
    one call per page per round, instead of one describe call per session (a few sessions among
    many are described one by one, which is cheaper). No thread is started. For each session as
    it arrives, use :meth:`FleetPoller.as_completed`.

    Args:
        sessions: The sessions to wait for.
        until: ``SessionState.READY`` (fail fast as in :meth:`Session.wait_until_ready`) or
            ``SessionState.STOPPED`` (any terminal state).
        timeout: The longest wait; default: the policy's (20 minutes).
        poll_policy: The cadence; default :data:`FLEET_POLL` on the first session's clock.

    Returns:
        The final :class:`SessionInfo` of every session, in the order given.

    Raises:
        FleetFailedError: When any session failed (a :class:`SessionFailedError` too).
        FleetTimeoutError: When time ran out first (a :class:`WaitTimeoutError` too).
            Both are :class:`FleetWaitError` and carry every session's outcome.
        InvalidConfigError: When ``until`` is neither READY nor STOPPED.
    """
    members = list(sessions)
    poller = FleetPoller(members, until=until, timeout=timeout, poll_policy=poll_policy)
    final = dict(zip(map(id, poller.sessions), poller.wait(), strict=True))
    return [final[id(s)] for s in members]

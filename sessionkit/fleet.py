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

import itertools
import logging
import math
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import attrs

from sessionkit.errors import (
    CallTimeoutError,
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
    SharedWait,
    call_with_retries,
    is_retryable,
    poll_rounds,
    readiness_failure,
    register_shared_wait,
    timeout_message,
    unregister_shared_wait,
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


#: What a fleet waiting for READY lists as "can still change": a session no longer listed in
#: these states has moved on (READY, BUSY, failed).
_STARTING = frozenset({SessionState.PENDING, SessionState.STARTING})

#: Where a fleet waiting for READY looks for the sessions that got there.
_ARRIVED = frozenset({SessionState.READY})

#: Where else a session may go while it starts: listed now and then by a fleet that lists only
#: the arrived ones, so failures still end their waits fast.
_ELSEWHERE = frozenset(
    state
    for state in SessionState
    if state not in _STARTING | _ARRIVED and state is not SessionState.UNKNOWN
)

#: What a fleet waiting for STOPPED lists as "can still change": every state that is not final.
_ALIVE = frozenset(state for state in SessionState if state.is_alive)

#: Where a fleet waiting for STOPPED looks for the sessions that got there.
_ENDED = frozenset(state for state in SessionState if state.is_terminal)

#: How often (seconds on the policy's clock) a fleet that lists only the arrived sessions also
#: lists the states they may have gone to instead (failed, busy).
_SWEEP_SECONDS = 5.0

#: How much the last round weighs in a group's estimate of arrivals per round.
_ARRIVALS_WEIGHT = 0.5

#: A listing narrowed to the awaited sessions' creation times starts this long before the
#: earliest of them (clocks and the service's rounding).
_WINDOW_MARGIN = timedelta(seconds=1)

#: No list call for arrivals while the prior gives the oldest awaited session less than this
#: chance of being ready (readiness is improbable).
_IMPROBABLE = 0.001

#: Errors of a listing that would never end: raised, not a reason to describe instead.
_ENDLESS = frozenset({"RepeatedNextToken", "TooManyPages"})

#: Plans of one group's round, in the order preferred when they cost the same.
_DESCRIBE, _CHANGING, _PLAIN, _TAGS, _GOAL = "describe", "changing", "plain", "tags", "goal"

#: A first look at a location whose sessions cannot be narrowed down yet: its first page.
_FIRST_PAGE = "first page"


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
        # Pages the last pass of each kind needed (to see what it looked for): the estimates
        # a round plans with. Unknown kinds are estimated from the awaited count.
        self.pages: dict[str, float] = {}
        # Sessions that arrived (left the changing states) per round, smoothed.
        self.arrivals = 0.0
        # When the states sessions may go to instead were last covered (policy clock).
        self.covered_at: float | None = None
        self.list_ok = True


class FleetPoller(SharedWait):
    """Polls many sessions together, one round at a time; :func:`wait_all` is built on it.

    Each round (:meth:`poll`) refreshes the sessions still awaited, group by group (one group
    per backend client and location), with the plan that costs the fewest calls by the pages
    each kind of listing needed last time:

    - describe each awaited session (a few among many);
    - list the sessions that can still change (server-side state filter), then look up the
      few that left those states (describes, or a listing of where they went);
    - list every session of the awaited ones' creation range, or those carrying the same
      sessionkit tags where the service filters by tag: one pass that shows every state;
    - list only the sessions that got there (READY, or ended), when fewer have than are still
      starting, and every few seconds the states they may have gone to instead (failed, busy).
      While the backend's ready-time prior says no awaited session can be ready yet, that
      listing is skipped.

    Every listing is narrowed to what the service can filter on (states, creation times, tags)
    and stops at the page where the last session it looks for shows up; records nobody awaits
    are skipped by id, untranslated. Throttling and transient errors skip the group until the
    next round; a list call the caller may not make (access denied) switches the group to
    describes; a describe the service refuses (the session is gone) ends that session's wait
    as failed. Drive it with :meth:`as_completed` (rounds on
    :func:`~sessionkit.waiting.poll_rounds`, the policy's clock) or call :meth:`poll` yourself.
    One thread drives a poller at a time.

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
            self._changing, self._goal = _STARTING, _ARRIVED
            self._elsewhere: frozenset[SessionState] | None = _ELSEWHERE
        else:
            self._changing, self._goal, self._elsewhere = _ALIVE, _ENDED, None
        self._rounds = 0
        # Bumped whenever sessions were seen (a page, a describe, a round's end): what
        # followers in other threads wake on.
        self._ticks = 0
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
        order = {id(s): n for n, s in enumerate(self._members)}
        return sorted(self._round(), key=lambda o: order[id(o.session)])

    def _round(self) -> Iterator[Outcome]:
        """One round, yielding each outcome as soon as the page or describe that saw it."""
        clock = self._policy.clock
        if self._deadline is None and self._limit is not None:
            self._deadline = clock() + self._limit.total_seconds()
        self._driver = threading.current_thread()
        register_shared_wait(self)
        self._fresh.clear()
        for group in self._groups.values():
            if self._past_deadline():
                break
            awaited = [s for s in group.members if id(s) not in self._outcomes]
            if awaited:
                yield from self._refresh(group, awaited)
        with self._cond:
            now = clock()
            new: list[Outcome] = []
            if self._deadline is not None and now >= self._deadline:
                for session in self.pending:
                    outcome = self._timed_out(session, now)
                    self._outcomes[id(session)] = outcome
                    new.append(outcome)
            self._rounds += 1
            self._ticks += 1
            self._last_round = time.monotonic()
            self._cond.notify_all()
        yield from new
        if not self.pending:
            self._finish()

    def _seen(self, sessions: Iterable[Session]) -> list[Outcome]:
        """Settle the sessions a page or a describe just showed, at once."""
        new: list[Outcome] = []
        with self._cond:
            now = self._policy.clock()
            for session in sessions:
                # Only a fresh look settles a session: never the info it came with, nor the
                # last round's when this round's call for its group failed.
                if id(session) in self._outcomes:
                    continue
                outcome = self._settle(session, now)
                if outcome is not None:
                    self._outcomes[id(session)] = outcome
                    new.append(outcome)
            self._ticks += 1
            self._last_round = time.monotonic()
            self._cond.notify_all()
        return new

    def as_completed(self) -> Iterator[Outcome]:
        """Poll round after round, yielding each session's outcome as soon as it is seen.

        Outcomes come as the page (or describe) that shows them is read, not at the end of
        the round. Rounds follow :func:`~sessionkit.waiting.poll_rounds` (the policy's
        schedule, the last pause cut to end at the deadline, where one final round is made);
        sessions still awaited then are yielded as ``"timed_out"``. Ctrl-C (or SIGTERM under
        :func:`~sessionkit.waiting.stop_on_sigterm`) requests the stop of every owned session
        of the fleet before it propagates.

        Yields:
            One :class:`Outcome` per session.
        """
        try:
            for _ in poll_rounds(self._policy, lambda: self._deadline):
                self._driver = threading.current_thread()
                yield from self._round()
                if not self.pending:
                    return
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

    def _refresh(self, group: _Group, awaited: list[Session]) -> Iterator[Outcome]:
        by_id: dict[str, list[Session]] = {}
        for session in awaited:
            by_id.setdefault(session.id, []).append(session)
        try:
            if group.list_ok:
                try:
                    listed = yield from self._list_round(group, by_id)
                    if listed is not by_id and len(listed) > 1:
                        # Not seen by a listing that should have shown them: gone, or skipped
                        # while the listing moved under its page tokens (sessions changing
                        # state between pages). Describe a few a round, no more than a listing
                        # costs; the next round's listing may well show the rest.
                        cap = max(1, int(min(group.pages.values(), default=1.0)))
                        listed = dict(itertools.islice(listed.items(), cap))
                    by_id = listed
                except ServiceError as exc:
                    if is_retryable(exc) or exc.code in _ENDLESS:
                        raise
                    # Some roles may describe sessions but not list them: describe from now on.
                    logger.warning(
                        "listing %s sessions failed (%s); describing them one by one instead",
                        group.backend.name,
                        exc,
                    )
                    group.list_ok = False
            yield from self._describe(group, by_id)
        except ServiceError as exc:
            if not (is_retryable(exc) or isinstance(exc, CallTimeoutError)):
                raise
            logger.info(
                "polling %s sessions through a transient error: %s", group.backend.name, exc
            )
        finally:
            arrived = sum(
                1
                for session in awaited
                if id(session) in self._fresh and session.state not in self._changing
            )
            group.arrivals += _ARRIVALS_WEIGHT * (arrived - group.arrivals)

    def _list_round(
        self, group: _Group, by_id: dict[str, list[Session]]
    ) -> Generator[Outcome, None, dict[str, list[Session]]]:
        """List one group's sessions by the cheapest plan; return those left to describe."""
        backend = group.backend
        size = max(1, backend.list_page_size)
        count = len(by_id)
        scopes = backend.list_scopes
        after = self._window(by_id) if "created_after" in scopes else None
        # Without a creation range (not known yet) a listing of every state, or of the ended
        # ones, would page through the location's whole history: only the filtered one goes.
        narrowed = after is not None or "created_after" not in scopes
        # The arrived are READY (rarely many of a location's others) or ended (its history).
        goal_ok = narrowed or self._target is SessionState.READY
        plain = {"created_after": after} if after is not None else {}
        # Where else sessions went is asked for from the earliest creation time known so far
        # (the others' failures show once they are known: seen, or when few still start).
        known = self._window(by_id, partial=True) if "created_after" in scopes else None
        elsewhere = {"created_after": known} if known is not None else {}
        sweep_ok = known is not None or "created_after" not in scopes
        tag_sets = self._tag_sets(group, by_id) if "tags" in scopes else None

        def estimate(kind: str, default: float) -> float:
            return group.pages.get(kind, default)

        costs: dict[str, float] = {_DESCRIBE: count}
        if after is None and backend.list_filters_states and _FIRST_PAGE not in group.pages:
            # The location may be small: one page may hold every awaited session.
            costs[_FIRST_PAGE] = 1.0
        goal = estimate(_GOAL, 1) + math.ceil(group.arrivals / size)
        if backend.list_filters_states:
            costs[_CHANGING] = estimate(_CHANGING, math.ceil(count / size)) + min(
                group.arrivals, goal
            )
        if tag_sets is not None:
            # Narrowed to sessionkit's tags: only the awaited (and sessions started with them).
            costs[_TAGS] = estimate(
                _TAGS, sum(math.ceil(len(ids) / size) for ids in tag_sets.values())
            )
        if narrowed or not backend.list_filters_states:
            # Not narrowed to a creation range, the plain listing is the whole location: the
            # first page tells whether that is more than a page.
            unnarrowed = "created_after" not in scopes and backend.list_filters_states
            first = group.pages.get(_FIRST_PAGE, math.inf) if unnarrowed else 1.0
            costs[_PLAIN] = estimate(_PLAIN, max(first, math.ceil(count / size)))
        if backend.list_filters_states and goal_ok:
            sweep = estimate("elsewhere", 1) if self._elsewhere is not None else 0.0
            costs[_GOAL] = goal + sweep / 3
        if (
            after is None
            and _CHANGING in costs
            and _FIRST_PAGE not in costs
            and self._early(group, costs[_CHANGING])
        ):
            # The creation range is unknown, and listing the starting sessions (which tells it)
            # ends before any of them is likely ready, if they were just started: do it now.
            costs[_CHANGING] = 0.0
        # Ties go to the plan asked for first: describing (the fewest records), then the
        # listing of what can still change (only that is asked for).
        plan = min(costs, key=lambda kind: (costs[kind], list(costs).index(kind)))
        if plan == _DESCRIBE:
            return by_id
        if plan == _TAGS and tag_sets is not None:
            return (yield from self._tagged_pass(group, by_id, tag_sets))
        if plan == _FIRST_PAGE:
            rest = yield from self._pass(group, by_id, None, _FIRST_PAGE, {}, max_pages=1)
            if not rest:
                self._covered(group)
            # More than one page: filter from the next round on (the page may have told when
            # some awaited sessions were created; a service listing newer ones first shows the
            # newest).
            return {}
        if plan == _PLAIN:
            rest = yield from self._pass(group, by_id, None, _PLAIN, plain)
            self._covered(group)
            return rest
        if plan == _CHANGING:
            moved = yield from self._pass(group, by_id, self._changing, _CHANGING, plain)
            self._covered(group)
            if not moved:
                return moved
            # Those no longer listed as changing have moved on: list where they went when that
            # is cheaper than describing each.
            if goal_ok and len(moved) > estimate(_GOAL, 1):
                moved = yield from self._pass(group, moved, self._goal, _GOAL, plain)
            return moved
        # _GOAL: only the sessions that got there (and now and then where else they went).
        if self._improbable(group, by_id):
            logger.debug("no %s session can be ready yet; not listing", backend.name)
        else:
            yield from self._pass(group, by_id, self._goal, _GOAL, plain)
        clock = self._policy.clock
        if (
            self._elsewhere is not None
            and sweep_ok
            and (group.covered_at is None or clock() - group.covered_at >= _SWEEP_SECONDS)
        ):
            wanted = {k: v for k, v in by_id.items() if id(v[0]) not in self._fresh}
            if wanted:
                # Without a creation range to narrow it to, this listing would page through the
                # location's ended history: two pages at most (a longer one is not planned).
                cut = None if "created_after" in scopes else 2
                yield from self._pass(
                    group, wanted, self._elsewhere, "elsewhere", elsewhere, max_pages=cut
                )
            self._covered(group)
        return {}

    def _covered(self, group: _Group) -> None:
        group.covered_at = self._policy.clock()

    def _window(self, by_id: dict[str, list[Session]], *, partial: bool = False) -> datetime | None:
        """When the earliest awaited session was created (minus a margin); ``None``: unknown.

        With ``partial``, the earliest of those whose creation time is known.
        """
        earliest: datetime | None = None
        for sessions in by_id.values():
            created = sessions[0].info.created_at
            if created is None:
                if partial:
                    continue
                return None
            if earliest is None or created < earliest:
                earliest = created
        return None if earliest is None else earliest - _WINDOW_MARGIN

    def _tag_sets(
        self, group: _Group, by_id: dict[str, list[Session]]
    ) -> dict[tuple[tuple[str, str], ...], list[str]] | None:
        """The awaited sessions by the tags they are known to carry; ``None``: some unknown."""
        sets: dict[tuple[tuple[str, str], ...], list[str]] = {}
        for session_id in by_id:
            tags = group.backend._known_tags(session_id)
            if not tags:
                return None
            sets.setdefault(tuple(sorted(tags.items())), []).append(session_id)
        return sets

    def _tagged_pass(
        self,
        group: _Group,
        by_id: dict[str, list[Session]],
        tag_sets: dict[tuple[tuple[str, str], ...], list[str]],
    ) -> Generator[Outcome, None, dict[str, list[Session]]]:
        """One listing per tag set (sessions started together share sessionkit's tags)."""
        rest: dict[str, list[Session]] = {}
        pages = 0.0
        for tags, ids in tag_sets.items():
            wanted = {session_id: by_id[session_id] for session_id in ids}
            rest.update((yield from self._pass(group, wanted, None, _TAGS, {"tags": dict(tags)})))
            pages += group.pages[_TAGS]
        group.pages[_TAGS] = pages
        self._covered(group)
        return rest

    def _early(self, group: _Group, pages: float) -> bool:
        """Whether ``pages`` calls end before sessions started now are likely ready."""
        if self._target is not SessionState.READY or self._rounds > 1 or math.isinf(pages):
            return False
        budget = self._policy.budget
        seconds = 0.0 if budget is None else max(0.0, pages - budget.burst) / budget.rate
        return group.backend.ready_prior.cdf(seconds) < _IMPROBABLE

    def _improbable(self, group: _Group, by_id: dict[str, list[Session]]) -> bool:
        """Whether the ready-time prior gives even the oldest awaited session no real chance."""
        if self._target is not SessionState.READY:
            return False
        after = self._window(by_id)
        if after is None:
            return False
        age = (self._policy.now() - (after + _WINDOW_MARGIN)).total_seconds()
        return group.backend.ready_prior.cdf(age) < _IMPROBABLE

    def _pass(
        self,
        group: _Group,
        wanted: dict[str, list[Session]],
        states: frozenset[SessionState] | None,
        kind: str,
        scope: dict[str, Any],
        max_pages: int | None = None,
    ) -> Generator[Outcome, None, dict[str, list[Session]]]:
        """List until every wanted session was seen; return the rest.

        Records of sessions nobody awaits are skipped by id, untranslated. The pages it took
        become the estimate of this kind of pass (infinite when cut at ``max_pages``).
        """
        backend = group.backend
        remaining = dict(wanted)
        what = f"list {backend.name} sessions"
        guard = PageGuard(what)
        token: str | None = None
        cut = False
        while not self._past_deadline():
            self._calls += 1
            records, token = call_with_retries(
                lambda t=token: backend._list_records(states, t, **scope),  # type: ignore[misc]
                policy=self._policy,
                what=what,
                attempts=1,
                backend=backend,
            )
            seen: list[Session] = []
            for record in records:
                sessions = remaining.pop(backend._record_id(record), None)
                if sessions:
                    info = backend._record_info(record)
                    for session in sessions:
                        session.observe(info)
                        self._fresh.add(id(session))
                    seen.extend(sessions)
            yield from self._seen(seen)
            token = guard.next(token)
            if not remaining or token is None:
                break
            if max_pages is not None and guard.pages >= max_pages:
                cut = True
                break
        group.pages[kind] = math.inf if cut and remaining else float(max(1, guard.pages))
        if self._past_deadline():
            return {}
        return remaining

    def _describe(self, group: _Group, wanted: dict[str, list[Session]]) -> Iterator[Outcome]:
        backend = group.backend
        for session_id, sessions in wanted.items():
            if self._past_deadline():
                return
            self._calls += 1
            try:
                info = call_with_retries(
                    lambda s=session_id: backend._describe_light(s),  # type: ignore[misc]
                    policy=self._policy,
                    what=f"describe {backend.name} session {session_id}",
                    attempts=1,
                    backend=backend,
                )
            except ServiceError as exc:
                if is_retryable(exc) or isinstance(exc, CallTimeoutError):
                    raise
                for session in sessions:
                    self._errors[id(session)] = exc
                yield from self._seen(sessions)
                continue
            for session in sessions:
                session.observe(info)
                self._fresh.add(id(session))
            yield from self._seen(sessions)

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
        unregister_shared_wait(self)

    # -- sharing rounds with Session.wait_until_ready (the SharedWait hooks) -------------------

    def follow(
        self,
        key: tuple[Any, ...],
        done: Callable[[SessionInfo], bool],
        clock: Callable[[], float],
        deadline: float | None,
        describe: Callable[[SessionInfo], str],
    ) -> SessionInfo | None:
        """Wait on this poller's rounds for one session; ``None`` when it stops serving it.

        Called by :func:`~sessionkit.waiting.follow_shared_wait` from another thread.

        Raises:
            WaitTimeoutError: When ``deadline`` passes first.
        """
        seen = -1
        member = self._by_key[key]
        with self._cond:
            while True:
                info = member.info
                if self._ticks != seen:
                    seen = self._ticks
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

    def serves(self, key: tuple[Any, ...]) -> bool:
        """Whether a round driven by another thread polls the session ``key`` now."""
        member = self._by_key.get(key)
        return (
            member is not None
            and not self._finished
            and id(member) not in self._outcomes
            and self._driver is not None
            and self._driver is not threading.current_thread()
        )


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

"""Waiting on many sessions at once with the services' list calls."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING

import attrs

from sessionkit.errors import SessionFailedError, SessionKitError
from sessionkit.models import SessionInfo, to_timedelta
from sessionkit.states import SessionState
from sessionkit.waiting import PollPolicy

if TYPE_CHECKING:
    from sessionkit.backends.base import Backend
    from sessionkit.session import Session

__all__ = ["FLEET_POLL", "FleetWaitError", "Outcome", "wait_all"]

logger = logging.getLogger(__name__)

#: The default cadence of :func:`wait_all`: one round of list calls every 1 to 1.5 s.
FLEET_POLL = PollPolicy(first=1.0, multiplier=1.2, cap=1.5, jitter=0.1)

#: When fewer sessions than this are awaited in one location, describe them one by one.
_DESCRIBE_BELOW = 3


@attrs.frozen(kw_only=True)
class Outcome:
    """How waiting ended for one session in :func:`wait_all`.

    Attributes:
        info: The last :class:`SessionInfo` seen.
        status: ``"done"``, ``"failed"`` or ``"timed_out"``.
        error: The :class:`SessionFailedError` for a failed session.
    """

    info: SessionInfo
    status: str
    error: SessionFailedError | None = None


class FleetWaitError(SessionKitError):
    """Not every session in :func:`wait_all` got there; carries every session's outcome.

    Attributes:
        outcomes: Session id to :class:`Outcome`, for every awaited session.
    """

    def __init__(self, message: str, *, outcomes: Mapping[str, Outcome]) -> None:
        super().__init__(message)
        self.outcomes = dict(outcomes)

    @property
    def failed(self) -> dict[str, Outcome]:
        """The sessions that failed, with their reasons."""
        return {k: v for k, v in self.outcomes.items() if v.status == "failed"}

    @property
    def timed_out(self) -> dict[str, Outcome]:
        """The sessions still not there when time ran out."""
        return {k: v for k, v in self.outcomes.items() if v.status == "timed_out"}

    @property
    def done(self) -> dict[str, Outcome]:
        """The sessions that got there."""
        return {k: v for k, v in self.outcomes.items() if v.status == "done"}


_FAIL_FAST = frozenset(
    {
        SessionState.FAILED,
        SessionState.TIMED_OUT,
        SessionState.DEGRADED,
        SessionState.STOPPING,
        SessionState.STOPPED,
    }
)


def _until(until: SessionState | str) -> SessionState:
    try:
        target = SessionState(str(until).upper())
    except ValueError:
        target = None
    if target not in (SessionState.READY, SessionState.STOPPED):
        from sessionkit.errors import InvalidConfigError

        raise InvalidConfigError("until", f"must be SessionState.READY or STOPPED, got {until!r}")
    return target


def _refresh_group(backend: Backend, members: list[Session], policy: PollPolicy) -> None:
    """Refresh a group of sessions sharing a location: list pages, or describes when fewer."""
    from sessionkit._registry import iter_pages
    from sessionkit.errors import ServiceError

    try:
        if len(members) < _DESCRIBE_BELOW:
            for session in members:
                session._update(backend._describe_light(session.id))
            return
        wanted = {s.id: s for s in members}
        for page in iter_pages(backend, None, policy.on(policy.clock, policy.sleep)):
            for info in page:
                if info.id in wanted:
                    wanted.pop(info.id)._update(info)
            if not wanted:
                break
        for session in wanted.values():
            session._update(backend._describe_light(session.id))
    except ServiceError as exc:
        if not exc.retryable:
            raise
        logger.info("polling through a transient error: %s", exc)


def wait_all(
    sessions: Iterable[Session],
    until: SessionState | str = SessionState.READY,
    timeout: timedelta | float | None = None,
    *,
    poll_policy: PollPolicy | None = None,
) -> list[SessionInfo]:
    """Wait until every session is READY (or STOPPED), polling them together.

    Sessions of one backend and location are refreshed with the service's list call, one call
    per page per round, instead of one describe call per session (a few sessions among many are
    described one by one, which is cheaper). No thread is started.

    Args:
        sessions: The sessions to wait for.
        until: ``SessionState.READY`` (fail fast as in :meth:`Session.wait_until_ready`) or
            ``SessionState.STOPPED`` (any terminal state).
        timeout: The longest wait; default: the policy's (20 minutes).
        poll_policy: The cadence; default :data:`FLEET_POLL` on the first session's clock.

    Returns:
        The final :class:`SessionInfo` of every session, in the order given.

    Raises:
        FleetWaitError: When any session failed or timed out; carries every outcome.
    """
    members = list(sessions)
    if not members:
        return []
    target = _until(until)
    base = members[0].poll_policy
    policy = poll_policy or FLEET_POLL.on(base.clock, base.sleep, base.now)
    limit = policy.timeout if timeout is None else to_timedelta(timeout)
    deadline = None if limit is None else policy.clock() + limit.total_seconds()
    outcomes: dict[str, Outcome] = {}
    rounds = 0
    while True:
        pending = [s for s in members if s.id not in outcomes]
        groups: dict[tuple[object, ...], list[Session]] = {}
        for session in pending:
            groups.setdefault(session._backend.fleet_key(), []).append(session)
        for group in groups.values():
            _refresh_group(group[0]._backend, group, policy)
        for session in pending:
            info = session.info
            if target is SessionState.READY and info.state is SessionState.READY:
                outcomes[session.id] = Outcome(info=info, status="done")
            elif target is SessionState.READY and info.state in _FAIL_FAST:
                error = SessionFailedError(
                    f"{session.backend} session {info.id} is {info.state.value}"
                    f"{': ' + info.reason if info.reason else ''}",
                    info=info,
                )
                outcomes[session.id] = Outcome(info=info, status="failed", error=error)
            elif target is SessionState.STOPPED and info.state.is_terminal:
                outcomes[session.id] = Outcome(info=info, status="done")
        if len(outcomes) == len(members):
            break
        now = policy.clock()
        if deadline is not None and now >= deadline:
            for session in members:
                if session.id not in outcomes:
                    outcomes[session.id] = Outcome(info=session.info, status="timed_out")
            break
        rounds += 1
        pause = policy.interval(rounds - 1)
        if deadline is not None:
            pause = max(0.0, min(pause, deadline - now))
        policy.sleep(pause)
    bad = {k: v for k, v in outcomes.items() if v.status != "done"}
    if bad:
        failed = sum(1 for o in bad.values() if o.status == "failed")
        raise FleetWaitError(
            f"{len(members) - len(bad)} of {len(members)} sessions reached {target.value}; "
            f"{failed} failed, {len(bad) - failed} timed out",
            outcomes=outcomes,
        )
    return [outcomes[s.id].info for s in members]

"""The session state machine that EMR Serverless and EMR on EC2 share.

Both services run the same interactive-session engine: a session goes SUBMITTED, STARTING,
STARTED, then IDLE when no work runs; work makes it BUSY; TerminateSession goes through
TERMINATING to TERMINATED; an idle timeout ends it in TERMINATED with the reason. What differs
is where a session lives (an application, a cluster), when it may leave SUBMITTED (a STARTED
application; at once on a cluster) and the wire names, which stay in
:mod:`sessionkit.testing.aws.emr_serverless` and :mod:`sessionkit.testing.aws.emr`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Generic, Protocol, TypeVar

import attrs

from sessionkit.testing.base import EmulatedService, Script

__all__ = ["ALIVE", "ENDED", "RUNNING", "EmrSessionStates", "SessionTimeline", "SparkSession"]

#: States in which a session holds resources.
ALIVE = frozenset({"SUBMITTED", "STARTING", "STARTED", "IDLE", "BUSY", "TERMINATING"})
#: States in which a session runs work and has an endpoint.
RUNNING = frozenset({"STARTED", "IDLE", "BUSY"})
#: States a session never leaves.
ENDED = frozenset({"TERMINATED", "FAILED"})


class SessionTimeline(Protocol):
    """The durations the state machine reads from each service's timeline."""

    starting: float
    idle_after: float
    terminating: float
    default_idle_timeout: int


@attrs.define(kw_only=True)
class SparkSession:
    """One emulated session: its request and where it is in the state machine."""

    id: str
    request: dict[str, Any]
    created: float
    state: str = "SUBMITTED"
    updated: float = 0.0
    reason: str | None = None
    starting_at: float | None = None
    started_at: float | None = None
    idle_since: float | None = None
    busy_until: float | None = None
    ended: float | None = None
    terminate_done: float | None = None
    script: Script | None = None


S = TypeVar("S", bound=SparkSession)


class EmrSessionStates(EmulatedService, Generic[S]):
    """Sessions keyed by id, moved through the shared state machine on the emulator's clock.

    Subclasses say when a SUBMITTED session starts (:meth:`_starting_due`), how its idle
    timeout is read (:meth:`_idle_minutes`) and what reason a finished stop leaves
    (:attr:`terminated_reason`); they look sessions up with their own ``_session``.
    """

    #: The reason a TERMINATED session carries after TerminateSession (``None``: none).
    terminated_reason: str | None = None

    timeline: SessionTimeline

    def __init__(self, emulator: Any) -> None:
        super().__init__(emulator)
        self._sessions: dict[str, S] = {}

    # -- test controls -------------------------------------------------------------------------

    def fail(self, session_id: str, reason: str = "Session failed (injected)") -> None:
        """Fail a session now."""
        session = self._settle(self._get(session_id))
        self._end(session, "FAILED", reason, self.now)

    def busy(self, session_id: str, seconds: float) -> None:
        """Make a running session BUSY for ``seconds`` (as work from a Spark Connect client)."""
        session = self._settle(self._get(session_id))
        if session.state not in RUNNING:
            raise ValueError(f"session {session_id} is {session.state}, not running")
        session.state = "BUSY"
        session.updated = self.now
        session.idle_since = None
        session.busy_until = self.now + seconds

    def status(self, session_id: str) -> str:
        """The native state of a session now."""
        return self._settle(self._get(session_id)).state

    def alive(self) -> list[str]:
        """Ids of sessions that hold resources (SUBMITTED through TERMINATING)."""
        return [s.id for s in self._sessions.values() if self._settle(s).state in ALIVE]

    # -- the state machine ---------------------------------------------------------------------

    def _get(self, session_id: str) -> S:
        """The session with ``session_id``, in the service's own not-found error."""
        raise NotImplementedError

    def _starting_due(self, session: S) -> float | None:
        """When a SUBMITTED session moves to STARTING (``None``: not yet known)."""
        raise NotImplementedError

    def _idle_minutes(self, session: S) -> int:
        """The session's idle timeout in minutes (0: none)."""
        raise NotImplementedError

    def _end(self, session: S, state: str, reason: str | None, at: float) -> None:
        session.state = state
        session.reason = reason
        session.ended = at
        session.updated = at
        session.busy_until = None
        session.terminate_done = None

    def _move(self, session: S, state: str, at: float) -> None:
        session.state = state
        session.updated = at

    def _begin_terminating(self, session: S) -> None:
        """TerminateSession on a session that has not ended (a second one changes nothing)."""
        if session.state in ENDED or session.state == "TERMINATING":
            return
        self._move(session, "TERMINATING", self.now)
        session.busy_until = None
        session.terminate_done = self.now + self.timeline.terminating

    def _settle(self, session: S) -> S:
        """Apply every transition due by now, in time order."""
        now = self.now
        if session.state == "TERMINATING":
            if session.terminate_done is not None and now >= session.terminate_done:
                self._end(session, "TERMINATED", self.terminated_reason, session.terminate_done)
            return session
        if session.state in ENDED:
            return session
        script = session.script
        if script is not None and now >= session.created + script.after:
            self._end(session, script.state, script.reason, session.created + script.after)
            return session
        if session.state == "SUBMITTED":
            at = self._starting_due(session)
            if at is not None and now >= at:
                self._move(session, "STARTING", at)
                session.starting_at = at
        if session.state == "STARTING" and session.starting_at is not None:
            at = session.starting_at + self.timeline.starting
            if now >= at:
                self._move(session, "STARTED", at)
                session.started_at = at
        if session.state == "STARTED" and session.started_at is not None:
            at = session.started_at + self.timeline.idle_after
            if now >= at:
                self._move(session, "IDLE", at)
                session.idle_since = at
        if session.state == "BUSY" and session.busy_until is not None and now >= session.busy_until:
            at = session.busy_until
            self._move(session, "IDLE", at)
            session.idle_since = at
            session.busy_until = None
        if session.state == "IDLE" and session.idle_since is not None:
            minutes = self._idle_minutes(session)
            at = session.idle_since + minutes * 60.0
            if minutes > 0 and now >= at:
                self._end(
                    session,
                    "TERMINATED",
                    f"Session terminated after being idle for {minutes} minutes",
                    at,
                )
        return session

    # -- records -------------------------------------------------------------------------------

    def _time(self, seconds: float) -> datetime:
        """The wall-clock time of a virtual instant."""
        return self.emulator.clock.now() - timedelta(seconds=self.now - seconds)

    def _partition(self) -> str:
        """The ARN partition of the emulator's region."""
        region = str(self.emulator.region)
        if region.startswith("cn-"):
            return "aws-cn"
        if region.startswith("us-gov-"):
            return "aws-us-gov"
        return "aws"

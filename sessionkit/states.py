"""The common session and statement states, their groups, and native-state normalisation."""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping
from typing import TypeVar

__all__ = ["SessionState", "StatementState", "normalize_state"]

logger = logging.getLogger(__name__)


class SessionState(str, enum.Enum):
    """The state of a session, common to every backend.

    Each backend maps its service's native states onto these (see the state table in the docs).
    Use the groups :attr:`is_terminal`, :attr:`is_alive` and :attr:`accepts_work` instead of
    comparing names.
    """

    PENDING = "PENDING"
    """Accepted by the service, not yet starting (a service's ``SUBMITTED``, say)."""
    STARTING = "STARTING"
    """Resources are being provisioned."""
    READY = "READY"
    """Started and idle: accepts work."""
    BUSY = "BUSY"
    """Started and running work."""
    DEGRADED = "DEGRADED"
    """Running but unhealthy (a service's ``DEGRADED``, say)."""
    STOPPING = "STOPPING"
    """A stop was requested and is under way."""
    STOPPED = "STOPPED"
    """Stopped normally."""
    FAILED = "FAILED"
    """Failed; the service's reason is on :attr:`SessionInfo.reason`."""
    TIMED_OUT = "TIMED_OUT"
    """Ended by the service's own time limit (a service's ``TIMEOUT``, say)."""
    UNKNOWN = "UNKNOWN"
    """A native state sessionkit does not know (logged as a warning)."""

    def __str__(self) -> str:
        return self.value

    @property
    def is_terminal(self) -> bool:
        """True for STOPPED, FAILED and TIMED_OUT: the session will never run again."""
        return self in _TERMINAL

    @property
    def is_alive(self) -> bool:
        """True for PENDING, STARTING, READY, BUSY and DEGRADED: the session holds resources."""
        return self in _ALIVE

    @property
    def accepts_work(self) -> bool:
        """True for READY: code can be submitted now."""
        return self is SessionState.READY


_TERMINAL = frozenset({SessionState.STOPPED, SessionState.FAILED, SessionState.TIMED_OUT})
_ALIVE = frozenset(
    {
        SessionState.PENDING,
        SessionState.STARTING,
        SessionState.READY,
        SessionState.BUSY,
        SessionState.DEGRADED,
    }
)


class StatementState(str, enum.Enum):
    """The state of a statement (or calculation) run in a session."""

    PENDING = "PENDING"
    """Submitted, waiting for the session."""
    RUNNING = "RUNNING"
    """Executing."""
    SUCCEEDED = "SUCCEEDED"
    """Finished without error."""
    FAILED = "FAILED"
    """Finished with an error."""
    CANCELLING = "CANCELLING"
    """A cancel was requested and is under way."""
    CANCELLED = "CANCELLED"
    """Cancelled."""
    UNKNOWN = "UNKNOWN"
    """A native state sessionkit does not know (logged as a warning)."""

    def __str__(self) -> str:
        return self.value

    @property
    def is_terminal(self) -> bool:
        """True for SUCCEEDED, FAILED and CANCELLED."""
        return self in (StatementState.SUCCEEDED, StatementState.FAILED, StatementState.CANCELLED)


_E = TypeVar("_E", SessionState, StatementState)


def normalize_state(native: str | None, table: Mapping[str, _E], *, unknown: _E, source: str) -> _E:
    """Map a service's native state onto the common enum.

    A value missing from ``table`` becomes ``unknown`` and is logged as a warning, so a state
    the service adds later never crashes a wait.

    Args:
        native: The service's state string, e.g. ``"PROVISIONING"``.
        table: The backend's state table.
        unknown: The enum member to return for values not in the table.
        source: Who reported the state (for the log record), e.g. the backend name.

    Returns:
        The common state.
    """
    if native is not None and native in table:
        return table[native]
    logger.warning(
        "%s reported state %r, which sessionkit does not know; treating it as %s",
        source,
        native,
        unknown.value,
    )
    return unknown

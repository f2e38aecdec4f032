"""The sessionkit exception tree.

Every error sessionkit raises derives from :class:`SessionKitError`. Where a builtin exception
means the same thing, the error also derives from it, so ``except ValueError`` or
``except TimeoutError`` keep working in code that does not know sessionkit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sessionkit.redaction import redact_text

if TYPE_CHECKING:
    from collections.abc import Mapping

    from sessionkit.fleet import Outcome
    from sessionkit.models import SessionInfo, StatementResult

__all__ = [
    "BackendNotFoundError",
    "CallTimeoutError",
    "FleetFailedError",
    "FleetTimeoutError",
    "FleetWaitError",
    "InvalidConfigError",
    "NotSupportedError",
    "ServiceError",
    "SessionFailedError",
    "SessionKitError",
    "StatementFailedError",
    "ThrottledError",
    "WaitTimeoutError",
]


class SessionKitError(Exception):
    """Root of every error raised by sessionkit."""


class BackendNotFoundError(SessionKitError, LookupError):
    """No backend is registered under the requested name, or its dependency is missing."""

    def __init__(self, message: str, *, name: str | None = None) -> None:
        super().__init__(message)
        self.name = name


class InvalidConfigError(SessionKitError, ValueError):
    """A configuration value is wrong; raised before any call to the service.

    Attributes:
        field: The name of the offending field or keyword, e.g. ``"idle_timeout"``.
    """

    def __init__(self, field: str, message: str) -> None:
        # Messages never carry a secret value, whatever a caller or a service put in them.
        super().__init__(redact_text(f"{field}: {message}"))
        self.field = field


class NotSupportedError(SessionKitError, NotImplementedError):
    """The backend (or the service behind it) cannot do what was asked."""


class SessionFailedError(SessionKitError):
    """The session reached a state from which it can no longer become ready.

    Attributes:
        info: The last :class:`~sessionkit.SessionInfo` seen, with the service's ``reason``.
    """

    def __init__(self, message: str, *, info: SessionInfo) -> None:
        super().__init__(message)
        self.info = info

    @property
    def reason(self) -> str | None:
        """The reason the service gave for the state, if any."""
        return self.info.reason


class WaitTimeoutError(SessionKitError, TimeoutError):
    """A wait ran out of time before the awaited state was reached.

    Attributes:
        info: The last :class:`~sessionkit.SessionInfo` seen before time ran out.
    """

    def __init__(self, message: str, *, info: SessionInfo | None) -> None:
        super().__init__(message)
        self.info = info


class ServiceError(SessionKitError):
    """The service answered with an error.

    The SDK's original exception (or connection error) is kept as ``__cause__``.

    Attributes:
        code: The service's error code, e.g. ``"EntityNotFoundException"``.
        request_id: The service's request id, for a support case; ``None`` when there was no answer.
        retryable: Whether retrying the same call may succeed (throttling, 5xx, connection).
        operation: The service operation that failed, e.g. ``"GetSession"``.
    """

    def __init__(
        self,
        message: str,
        *,
        code: str,
        request_id: str | None = None,
        retryable: bool = False,
        operation: str | None = None,
    ) -> None:
        super().__init__(redact_text(message))
        self.code = code
        self.request_id = request_id
        self.retryable = retryable
        self.operation = operation


class ThrottledError(ServiceError):
    """The service throttled the call (rate exceeded); always retryable."""


class CallTimeoutError(ServiceError, TimeoutError):
    """A single service call (with its retries) ran past its deadline.

    Raised when ``PollPolicy.call_deadline`` passes before the call got an answer: the endpoint
    accepts connections and never answers, refuses them, or keeps failing transiently. Also a
    ``TimeoutError``.
    """


class StatementFailedError(SessionKitError):
    """Code run in a session failed.

    Attributes:
        result: The :class:`~sessionkit.StatementResult` with the error name, value and traceback.
    """

    def __init__(self, message: str, *, result: StatementResult) -> None:
        super().__init__(message)
        self.result = result


class FleetWaitError(SessionKitError):
    """Not every session in :func:`~sessionkit.wait_all` got there; carries every outcome.

    Attributes:
        outcomes: Session id to :class:`~sessionkit.fleet.Outcome` (``done``, ``failed`` with
            its :class:`SessionFailedError`, or ``timed_out``), for every awaited session.
    """

    def __init__(self, message: str, *, outcomes: Mapping[str, Outcome]) -> None:
        # Not super(): in the subclasses below the next class would be SessionFailedError or
        # WaitTimeoutError, whose constructors want an info these set themselves.
        SessionKitError.__init__(self, message)
        self.outcomes = dict(outcomes)

    def _having(self, status: str) -> dict[str, Outcome]:
        return {k: v for k, v in self.outcomes.items() if v.status == status}

    @property
    def failed(self) -> dict[str, Outcome]:
        """The sessions that failed, with their reasons."""
        return self._having("failed")

    @property
    def timed_out(self) -> dict[str, Outcome]:
        """The sessions still not there when time ran out."""
        return self._having("timed_out")

    @property
    def done(self) -> dict[str, Outcome]:
        """The sessions that got there."""
        return self._having("done")


class FleetFailedError(FleetWaitError, SessionFailedError):
    """At least one session in :func:`~sessionkit.wait_all` failed.

    Also a :class:`SessionFailedError`, so code written for one session's wait catches it;
    ``info`` is the first failed session's last :class:`~sessionkit.SessionInfo`.
    """

    def __init__(self, message: str, *, outcomes: Mapping[str, Outcome], info: SessionInfo) -> None:
        FleetWaitError.__init__(self, message, outcomes=outcomes)
        self.info = info


class FleetTimeoutError(FleetWaitError, WaitTimeoutError):
    """Time ran out in :func:`~sessionkit.wait_all` before every session got there (none failed).

    Also a :class:`WaitTimeoutError` (and so a ``TimeoutError``); ``info`` is the first
    late session's last :class:`~sessionkit.SessionInfo`.
    """

    def __init__(self, message: str, *, outcomes: Mapping[str, Outcome], info: SessionInfo) -> None:
        FleetWaitError.__init__(self, message, outcomes=outcomes)
        self.info = info

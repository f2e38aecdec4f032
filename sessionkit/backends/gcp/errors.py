"""Translation of Google client errors into sessionkit's.

``google.api_core.exceptions`` covers what the service answered; ``requests`` and
``google.auth`` exceptions cover what never got an answer (the REST transport) and credentials.
"""

from __future__ import annotations

import requests.exceptions
from google.api_core import exceptions as api_exceptions
from google.auth import exceptions as auth_exceptions

from sessionkit.errors import ServiceError, ThrottledError

__all__ = ["translate_error"]

#: Answers that mean "slow down": retried after a back-off, never a failed session.
_THROTTLING: tuple[type[BaseException], ...] = (
    api_exceptions.ResourceExhausted,
    api_exceptions.TooManyRequests,
)

#: Answers (and non-answers) that a later identical call may not meet.
_TRANSIENT: tuple[type[BaseException], ...] = (
    api_exceptions.ServiceUnavailable,
    api_exceptions.InternalServerError,
    api_exceptions.DeadlineExceeded,
    api_exceptions.GatewayTimeout,
    api_exceptions.BadGateway,
    api_exceptions.Aborted,
)

#: No answer came back: the request may or may not have reached the service.
_CONNECTION: tuple[type[BaseException], ...] = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    auth_exceptions.TransportError,
    ConnectionError,
    TimeoutError,
)


#: gRPC status names that mean "try again later" whichever transport carried them.
_THROTTLING_CODES = frozenset({"RESOURCE_EXHAUSTED"})
_TRANSIENT_CODES = frozenset({"UNAVAILABLE", "INTERNAL", "DEADLINE_EXCEEDED", "ABORTED"})


def _code(exc: api_exceptions.GoogleAPICallError) -> str:
    """The gRPC status name, also over REST (where a 409 is ALREADY_EXISTS or ABORTED)."""
    status = getattr(exc, "grpc_status_code", None)
    name = getattr(status, "name", None)
    if isinstance(name, str) and name:
        return name
    response = getattr(exc, "response", None)
    try:
        payload = response.json() if response is not None else None
    except ValueError:
        payload = None
    if isinstance(payload, dict):
        error = payload.get("error")
        if isinstance(error, dict) and isinstance(error.get("status"), str) and error["status"]:
            return str(error["status"])
    return type(exc).__name__


def translate_error(exc: BaseException, *, operation: str) -> BaseException:
    """Turn a Google client exception into the matching sessionkit error.

    Args:
        exc: What the Google client raised.
        operation: The RPC name, for the message (e.g. ``"GetSession"``).

    Returns:
        A :class:`~sessionkit.errors.ServiceError` (a :class:`~sessionkit.errors.ThrottledError`
        for throttling) to raise ``from exc``; any other exception is returned unchanged.
        ``code`` is the gRPC status name (``"NOT_FOUND"``, ``"ALREADY_EXISTS"``, ...).
    """
    if isinstance(exc, api_exceptions.GoogleAPICallError):
        code = _code(exc)
        text = f"{operation} failed: {code}: {exc.message}"
        if isinstance(exc, _THROTTLING) or code in _THROTTLING_CODES:
            return ThrottledError(text, code=code, retryable=True, operation=operation)
        retryable = isinstance(exc, _TRANSIENT) or code in _TRANSIENT_CODES
        return ServiceError(text, code=code, retryable=retryable, operation=operation)
    if isinstance(exc, api_exceptions.RetryError):
        return ServiceError(
            f"{operation} failed: {exc}", code="RetryError", retryable=True, operation=operation
        )
    if isinstance(exc, auth_exceptions.RefreshError):
        return ServiceError(
            f"{operation} failed: the Google credentials could not be refreshed ({exc}); "
            "run 'gcloud auth application-default login' or pass credentials=...",
            code="Unauthenticated",
            retryable=False,
            operation=operation,
        )
    if isinstance(exc, _CONNECTION):
        return ServiceError(
            f"{operation} failed: could not reach the service: {type(exc).__name__}: {exc}",
            code=type(exc).__name__,
            retryable=True,
            operation=operation,
        )
    if isinstance(exc, auth_exceptions.DefaultCredentialsError):
        return ServiceError(
            f"{operation} failed: no Google credentials found ({exc}); run "
            "'gcloud auth application-default login', set GOOGLE_APPLICATION_CREDENTIALS, or pass "
            "credentials=...",
            code="NoCredentials",
            retryable=False,
            operation=operation,
        )
    return exc

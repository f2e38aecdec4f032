"""What every emulated service shares: errors, ids, paging, the handler base class.

Also the provider-neutral HTTP request and reply that every transport (in process or served)
hands to the emulated services.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import attrs

if TYPE_CHECKING:
    from sessionkit.testing.emulator import Emulator

__all__ = [
    "Dropped",
    "EmulatedError",
    "EmulatedService",
    "EmulatorDriftError",
    "HttpReply",
    "HttpRequest",
    "HttpRoute",
    "Script",
    "StatementOutcome",
    "page",
]

T = TypeVar("T")


class EmulatedError(Exception):
    """An error the emulated service answers with (becomes the service's own error response).

    Args:
        code: The service's error code, e.g. ``"EntityNotFoundException"``.
        message: The error message.
        status: The HTTP status.
    """

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


class EmulatorDriftError(AssertionError):
    """The emulator produced a response that does not fit the service's schema (a bug)."""


@attrs.frozen(kw_only=True)
class HttpRequest:
    """One HTTP request as a transport hands it to an emulated service.

    Attributes:
        method: The HTTP method, upper case.
        url: The full URL (scheme, host, path and query).
        headers: The request headers.
        body: The raw body.
    """

    method: str
    url: str
    headers: Mapping[str, str] = attrs.field(repr=False)
    body: bytes = attrs.field(default=b"", repr=False)

    def header(self, name: str) -> str | None:
        """The value of header ``name`` (case-insensitive), or ``None``."""
        wanted = name.lower()
        for key, value in self.headers.items():
            if key.lower() == wanted:
                return value
        return None


@attrs.frozen(kw_only=True)
class StatementOutcome:
    """What running a piece of code produced, for the emulated statement APIs.

    Attributes:
        output: The text printed or returned.
        error_name: The exception type name, if it failed.
        error_value: The exception message, if it failed.
        traceback: The traceback lines, if it failed.
    """

    output: str = ""
    error_name: str | None = None
    error_value: str | None = None
    traceback: list[str] = attrs.field(factory=list)


class Dropped(Exception):
    """An injected connection fault: the answer never reaches the client.

    Args:
        kind: ``"connection_error"`` (nothing was processed) or ``"read_timeout"`` (processed,
            answer lost).
    """

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


@attrs.frozen(kw_only=True)
class HttpRoute:
    """Where a served path prefix goes: a provider's ``answer`` function and its dropped errors.

    Each provider's emulator package owns its routes (a mapping of path prefix to route) and
    names them in :mod:`sessionkit.testing.server`'s table, which only loads them.

    Attributes:
        answer: ``"module:function"`` of ``answer(emulator, method, path, query, headers,
            body) -> (status, headers, body)``.
        strip: A prefix removed from the path before it is handed on (a base path).
        drops: ``"module:Class"`` of the exceptions that mean "close the connection unanswered"
            (injected connection errors and lost answers).
    """

    answer: str
    strip: str = ""
    drops: tuple[str, ...] = ()


@attrs.frozen(kw_only=True)
class HttpReply:
    """One HTTP answer of an emulated service.

    Attributes:
        status: The HTTP status.
        headers: The response headers.
        body: The raw body.
        error_code: The service's error code when the answer is an error (for the call log).
    """

    status: int
    headers: Mapping[str, str] = attrs.field(factory=dict)
    body: bytes = attrs.field(default=b"", repr=False)
    error_code: str | None = None


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def page(items: Sequence[T], token: str | None, size: int) -> tuple[list[T], str | None]:
    """Cut one page out of ``items``; tokens are opaque offsets.

    Args:
        items: Everything to list, in a stable order.
        token: The token from the previous page, or ``None``.
        size: The page size.

    Returns:
        The page and the next token (``None`` after the last page).
    """
    start = 0
    if token:
        try:
            start = int(base64.urlsafe_b64decode(token.encode()).decode())
        except ValueError as exc:
            raise EmulatedError(
                "ValidationException", f"invalid pagination token {token!r}"
            ) from exc
    chunk = list(items[start : start + size])
    end = start + size
    following = base64.urlsafe_b64encode(str(end).encode()).decode() if end < len(items) else None
    return chunk, following


@attrs.define(kw_only=True)
class Script:
    """A scripted end for the next session a service creates (see ``script_next``).

    Attributes:
        state: The native state the session ends in.
        after: Virtual seconds after its creation.
        reason: The reason the service reports.
    """

    state: str
    after: float
    reason: str


class EmulatedService:
    """Base of an emulated service: ``op_<snake_name>(params)`` methods answer operations.

    Attributes:
        service: The service's name in its SDK (the name calls are logged under).
        validation_error: The error code the service uses for malformed input.
        throttling_error: The error code the service uses for throttling.
        throttling_status: The HTTP status of a throttling answer.
        server_error: The error code of a 5xx answer.
    """

    service: ClassVar[str]
    validation_error: ClassVar[str] = "ValidationException"
    throttling_error: ClassVar[str] = "ThrottlingException"
    throttling_status: ClassVar[int] = 400
    server_error: ClassVar[str] = "InternalServerException"
    #: The native states ``script_next`` can end a session in.
    scriptable: ClassVar[tuple[str, ...]] = ()

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator
        self._scripts: list[Script] = []
        self._created = 0
        #: The Spark Connect URL and token GetSessionEndpoint hands out (``None``: placeholders;
        #: ``Emulator.use_spark`` points them at a real local server).
        self.endpoint_url: str | None = None
        self.endpoint_token: str | None = None

    def auth_token(self, ttl: float) -> tuple[str, datetime]:
        """A Spark Connect token for GetSessionEndpoint and when it expires, ``ttl`` from now."""
        token = self.endpoint_token or self.emulator.new_id(48)
        return token, self.emulator.clock.now() + timedelta(seconds=ttl)

    def script_next(self, state: str = "FAILED", *, after: float = 1.0, reason: str = "") -> None:
        """Make the next created session end in ``state`` ``after`` virtual seconds.

        Args:
            state: A native state from :attr:`scriptable`, e.g. ``"FAILED"``.
            after: Seconds after the session was created.
            reason: The reason the service reports; a default names the script.

        Raises:
            ValueError: For a state this service cannot be scripted to.
        """
        if state not in self.scriptable:
            raise ValueError(
                f"{self.service} sessions can be scripted to {', '.join(self.scriptable)}, "
                f"not {state}"
            )
        self._scripts.append(
            Script(state=state, after=after, reason=reason or f"Session {state.lower()} (scripted)")
        )

    def _next_script(self) -> Script | None:
        return self._scripts.pop(0) if self._scripts else None

    @property
    def now(self) -> float:
        """Virtual seconds on the emulator clock."""
        return self.emulator.clock.monotonic()

    def handler(self, operation: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
        """The method answering ``operation``.

        Raises:
            EmulatedError: When the emulator does not implement it.
        """
        method = getattr(self, f"op_{_snake(operation)}", None)
        if method is None:
            raise EmulatedError(
                "UnknownOperationException",
                f"the sessionkit emulator does not implement {self.service} {operation}",
            )
        result: Callable[[dict[str, Any]], dict[str, Any]] = method
        return result

    def alive(self) -> list[str]:
        """Ids of sessions that still hold resources (for leak checks)."""
        return []

    def created(self) -> int:
        """How many sessions the service ever created, to count duplicates.

        A replayed idempotency token creates none.
        """
        return self._created

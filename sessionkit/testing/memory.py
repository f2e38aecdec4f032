"""An in-memory backend: the reference implementation of the backend contract.

``MemoryBackend`` is a *test double*, provider-neutral and with no SDK: its "service" is a
:class:`MemoryService` object in the same process, running on a
:class:`~sessionkit.testing.VirtualClock`. It implements every primitive of
:class:`~sessionkit.backends.base.Backend` (statements with a notebook-like namespace per
session, Spark Connect endpoints, delete, paged listing with a server-side state filter,
idempotent starts) and can be scripted to fail, throttle or lose answers. sessionkit's own
tests of the core run on it; read it to see what a backend has to do.

It is not registered by default (``sessionkit.available_backends()`` lists only real
services); :func:`register` adds it under the name ``"memory"``:

>>> from sessionkit import open_session
>>> from sessionkit.testing import memory
>>> memory.register()
>>> service = memory.MemoryService()
>>> with open_session("memory", service=service, namespace="default",
...                   poll_policy=service.poll_policy()) as session:
...     print(session.state.value, session.run("x = 6 * 7; x").output)
READY 42
"""

from __future__ import annotations

import ast
import contextlib
import io
import threading
import traceback
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, ClassVar, Literal

import attrs

from sessionkit.backends.base import Backend, Capabilities, PreparedStart
from sessionkit.errors import InvalidConfigError, ServiceError, ThrottledError
from sessionkit.models import Endpoint, SessionConfig, SessionInfo, StatementResult
from sessionkit.states import SessionState, StatementState
from sessionkit.testing.clock import VirtualClock
from sessionkit.waiting import DEFAULT_POLL, PollPolicy

__all__ = [
    "MemoryBackend",
    "MemoryService",
    "MemoryServiceError",
    "StatementOutcome",
    "register",
    "run_in_namespace",
]

#: Native session states of the in-memory service and their common meaning.
STATE_MAP: Mapping[str, SessionState] = {
    "pending": SessionState.PENDING,
    "starting": SessionState.STARTING,
    "ready": SessionState.READY,
    "busy": SessionState.BUSY,
    "degraded": SessionState.DEGRADED,
    "stopping": SessionState.STOPPING,
    "stopped": SessionState.STOPPED,
    "failed": SessionState.FAILED,
    "timed_out": SessionState.TIMED_OUT,
}

#: Native statement states.
STATEMENT_STATES: Mapping[str, StatementState] = {
    "running": StatementState.RUNNING,
    "succeeded": StatementState.SUCCEEDED,
    "failed": StatementState.FAILED,
    "cancelled": StatementState.CANCELLED,
}

#: The service-side limits the backend checks before any call.
NAME_MAX = 64
TAGS_MAX = 16

FaultKind = Literal["throttle", "unavailable", "lost"]


# ----------------------------------------------------------------------------- the "service"


class MemoryServiceError(Exception):
    """An error answer of :class:`MemoryService` (the backend translates it).

    Args:
        code: A short error code: ``"not_found"``, ``"conflict"``, ``"invalid"``,
            ``"throttled"``, ``"unavailable"``.
        message: What went wrong.
        retryable: Whether the same call may succeed later.
    """

    def __init__(self, code: str, message: str, *, retryable: bool = False) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.retryable = retryable


@attrs.define(kw_only=True)
class StatementOutcome:
    """What running a piece of code produced.

    Attributes:
        output: The text printed, plus the value of a final expression.
        error_name: The exception type name, if it failed.
        error_value: The exception message, if it failed.
        traceback: The traceback lines, if it failed.
    """

    output: str = ""
    error_name: str | None = None
    error_value: str | None = None
    traceback: list[str] = attrs.field(factory=list)


def run_in_namespace(code: str, namespace: dict[str, Any]) -> StatementOutcome:
    """Run ``code`` like a notebook cell in ``namespace``, which keeps its names for the next.

    Args:
        code: Python source; the value of a final expression is printed.
        namespace: The session's globals, shared by all its statements.

    Returns:
        What it printed and how it ended.
    """
    out = io.StringIO()
    try:
        tree = ast.parse(code, mode="exec")
        last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
        with contextlib.redirect_stdout(out):
            exec(compile(tree, "<statement>", "exec"), namespace)
            if isinstance(last, ast.Expr):
                value = eval(compile(ast.Expression(last.value), "<statement>", "eval"), namespace)
                if value is not None:
                    print(value if isinstance(value, str) else repr(value))
    except Exception as exc:
        return StatementOutcome(
            output=out.getvalue(),
            error_name=type(exc).__name__,
            error_value=str(exc),
            traceback=traceback.format_exception_only(type(exc), exc),
        )
    return StatementOutcome(output=out.getvalue().rstrip("\n"))


@attrs.define(kw_only=True)
class _Statement:
    id: str
    code: str
    submitted: float
    finishes: float
    outcome: StatementOutcome
    cancelled_at: float | None = None


@attrs.define(kw_only=True)
class _Session:
    id: str
    namespace: str
    request: dict[str, Any]
    token: str
    created: float
    ready_at: float
    ends: tuple[float, str, str] | None = None  # scripted or max-duration end: at, state, reason
    stop_requested: float | None = None
    last_activity: float = 0.0
    globals: dict[str, Any] = attrs.field(factory=dict)
    statements: dict[str, _Statement] = attrs.field(factory=dict)
    deleted: bool = False


@attrs.define(kw_only=True)
class _Fault:
    kind: FaultKind
    operations: frozenset[str] | None
    remaining: int


class MemoryService:
    """The in-memory "cloud service" behind :class:`MemoryBackend`.

    Sessions follow a timeline on :attr:`clock`: ``pending`` for the first virtual second,
    ``starting`` until ``start_seconds``, then ``ready`` (``busy`` while a statement runs);
    a stop request makes them ``stopping`` for ``stop_seconds``, then ``stopped``. A session
    idle for longer than its idle timeout stops by itself; one past its ``max_duration`` ends
    ``timed_out``.

    Args:
        clock: The virtual clock; a fresh one by default.
        start_seconds: Virtual seconds from the start request to ``ready``.
        stop_seconds: Virtual seconds from the stop request to ``stopped``.
        statement_seconds: Virtual seconds a statement runs.
        page_size: Sessions per page of the list call.
        executor: Runs a statement's code in the session's namespace (default:
            :func:`run_in_namespace`, plain Python; ``spark`` is not bound).
    """

    #: The native states :meth:`script_next` can end a session in.
    scriptable: ClassVar[tuple[str, ...]] = ("failed", "timed_out", "degraded", "stopped")

    def __init__(
        self,
        *,
        clock: VirtualClock | None = None,
        start_seconds: float = 10.0,
        stop_seconds: float = 2.0,
        statement_seconds: float = 0.5,
        page_size: int = 2,
        executor: Callable[[str, dict[str, Any]], StatementOutcome] = run_in_namespace,
    ) -> None:
        self.clock = clock or VirtualClock()
        self.start_seconds = start_seconds
        self.stop_seconds = stop_seconds
        self.statement_seconds = statement_seconds
        self.page_size = page_size
        self.executor = executor
        self.namespaces: set[str] = {"default"}
        #: Every call received, as ``(operation, virtual seconds, outcome)``; the outcome is
        #: ``"ok"``, an error code, or ``"lost"``.
        self.calls: list[tuple[str, float, str]] = []
        self._sessions: dict[str, _Session] = {}
        self._by_token: dict[str, str] = {}
        self._scripts: list[tuple[str, float, str]] = []
        self._faults: list[_Fault] = []
        self._lock = threading.RLock()

    # -- driving it from a test ---------------------------------------------------------------

    def poll_policy(self, base: PollPolicy = DEFAULT_POLL) -> PollPolicy:
        """``base`` on this service's virtual clock, so waits take no real time."""
        return base.on(self.clock.monotonic, self.clock.sleep, self.clock.now)

    def add_namespace(self, name: str) -> str:
        """Create a namespace (the location sessions live in) and return its name."""
        with self._lock:
            self.namespaces.add(name)
        return name

    def script_next(self, state: str = "failed", *, after: float = 1.0, reason: str = "") -> None:
        """Make the next session created end in ``state`` ``after`` virtual seconds.

        Raises:
            ValueError: For a state not in :attr:`scriptable`.
        """
        if state not in self.scriptable:
            raise ValueError(f"sessions can be scripted to {', '.join(self.scriptable)}")
        with self._lock:
            self._scripts.append((state, after, reason or f"session {state} (scripted)"))

    def inject(
        self, kind: FaultKind, *, operations: Iterable[str] | None = None, count: int = 1
    ) -> None:
        """Make the next ``count`` matching calls fail.

        Args:
            kind: ``"throttle"`` (rate exceeded), ``"unavailable"`` (a 5xx-like error) or
                ``"lost"`` (the call takes effect, its answer is lost: a retryable error).
            operations: Operation names (``"create"``, ``"get"``, ``"stop"``, ``"list"``,
                ``"run"``, ...); all of them if ``None``.
            count: How many calls.
        """
        wanted = None if operations is None else frozenset(operations)
        with self._lock:
            self._faults.append(_Fault(kind=kind, operations=wanted, remaining=count))

    def call_count(self, operation: str | None = None) -> int:
        """How many calls the service received (of ``operation``, if given)."""
        return sum(1 for name, _, _ in self.calls if operation in (None, name))

    def alive(self) -> list[str]:
        """Ids of sessions that still hold resources (not yet stopped, failed or timed out)."""
        with self._lock:
            return [
                s.id
                for s in self._sessions.values()
                if not s.deleted and not STATE_MAP[self._state(s)].is_terminal
            ]

    def created(self) -> int:
        """How many sessions were ever created (a replayed token creates none)."""
        return len(self._sessions)

    # -- the operations ------------------------------------------------------------------------

    def call(self, operation: str, **params: Any) -> dict[str, Any]:
        """Answer one call of the API (what a transport would deliver).

        Raises:
            MemoryServiceError: The service's error answer.
        """
        with self._lock:
            fault = self._take_fault(operation)
            if fault in ("throttle", "unavailable"):
                code = "throttled" if fault == "throttle" else "unavailable"
                self.calls.append((operation, self.clock.monotonic(), code))
                raise MemoryServiceError(code, "rate exceeded or try again later", retryable=True)
            try:
                answer: dict[str, Any] = getattr(self, f"_op_{operation}")(**params)
            except MemoryServiceError as exc:
                self.calls.append((operation, self.clock.monotonic(), exc.code))
                raise
            if fault == "lost":
                self.calls.append((operation, self.clock.monotonic(), "lost"))
                raise MemoryServiceError("unavailable", "the answer was lost", retryable=True)
            self.calls.append((operation, self.clock.monotonic(), "ok"))
            return answer

    def _take_fault(self, operation: str) -> FaultKind | None:
        for fault in self._faults:
            if fault.remaining > 0 and (fault.operations is None or operation in fault.operations):
                fault.remaining -= 1
                return fault.kind
        return None

    def _namespace(self, namespace: str) -> None:
        if namespace not in self.namespaces:
            raise MemoryServiceError("not_found", f"no namespace {namespace!r}")

    def _session(self, namespace: str, session_id: str) -> _Session:
        self._namespace(namespace)
        session = self._sessions.get(session_id)
        if session is None or session.namespace != namespace or session.deleted:
            raise MemoryServiceError("not_found", f"no session {session_id!r} in {namespace!r}")
        return session

    def _state(self, session: _Session) -> str:
        now = self.clock.monotonic()
        if session.stop_requested is not None and (
            session.ends is None or session.stop_requested < session.ends[0]
        ):
            return "stopped" if now >= session.stop_requested + self.stop_seconds else "stopping"
        if session.ends is not None and now >= session.ends[0]:
            return session.ends[1]
        if now < session.created + 1.0:
            return "pending"
        if now < session.ready_at:
            return "starting"
        idle = session.request.get("idle_timeout_seconds")
        running = any(
            s.cancelled_at is None and s.finishes > now for s in session.statements.values()
        )
        if running:
            return "busy"
        if idle is not None and now >= max(session.last_activity, session.ready_at) + idle:
            return "stopped"
        return "ready"

    def _record(self, session: _Session) -> dict[str, Any]:
        state = self._state(session)
        reason = None
        if session.ends is not None and state == session.ends[1]:
            reason = session.ends[2]
        elif state == "stopped" and session.stop_requested is None:
            reason = "idle timeout"
        return {
            "id": session.id,
            "namespace": session.namespace,
            "name": session.request.get("name"),
            "state": state,
            "reason": reason,
            "created_at": self._at(session.created),
            "ready_at": self._at(session.ready_at)
            if self.clock.monotonic() >= session.ready_at
            else None,
            "idle_timeout_seconds": session.request.get("idle_timeout_seconds"),
            "tags": dict(session.request.get("tags") or {}),
            "cpu_seconds": max(0.0, self.clock.monotonic() - session.ready_at),
        }

    def _at(self, seconds: float) -> datetime:
        return self.clock.now() - timedelta(seconds=self.clock.monotonic() - seconds)

    def _op_describe_namespace(self, *, namespace: str) -> dict[str, Any]:
        self._namespace(namespace)
        return {"namespace": namespace}

    def _op_create(self, *, namespace: str, token: str, request: dict[str, Any]) -> dict[str, Any]:
        self._namespace(namespace)
        existing = self._by_token.get(token)
        if existing is not None:
            session = self._sessions[existing]
            if session.request != request:
                raise MemoryServiceError("conflict", "token reused with a different request")
            return self._record(session)
        now = self.clock.monotonic()
        session = _Session(
            id=f"mem-{uuid.uuid4().hex[:12]}",
            namespace=namespace,
            request=dict(request),
            token=token,
            created=now,
            ready_at=now + self.start_seconds,
            last_activity=now,
        )
        if self._scripts:
            state, after, reason = self._scripts.pop(0)
            session.ends = (now + after, state, reason)
        elif request.get("max_duration_seconds") is not None:
            session.ends = (now + request["max_duration_seconds"], "timed_out", "max duration")
        self._sessions[session.id] = session
        self._by_token[token] = session.id
        return self._record(session)

    def _op_get(self, *, namespace: str, session_id: str) -> dict[str, Any]:
        return self._record(self._session(namespace, session_id))

    def _op_stop(self, *, namespace: str, session_id: str) -> dict[str, Any]:
        session = self._session(namespace, session_id)
        if STATE_MAP[self._state(session)].is_terminal:
            raise MemoryServiceError("conflict", f"session {session_id} has already ended")
        if session.stop_requested is None:
            session.stop_requested = self.clock.monotonic()
        return self._record(session)

    def _op_delete(self, *, namespace: str, session_id: str) -> dict[str, Any]:
        session = self._session(namespace, session_id)
        if not STATE_MAP[self._state(session)].is_terminal:
            raise MemoryServiceError("conflict", f"session {session_id} has not ended yet")
        session.deleted = True
        return {}

    def _op_list(
        self, *, namespace: str, states: list[str] | None, token: str | None
    ) -> dict[str, Any]:
        self._namespace(namespace)
        records = [
            self._record(s)
            for s in self._sessions.values()
            if s.namespace == namespace and not s.deleted
        ]
        if states is not None:
            records = [r for r in records if r["state"] in states]
        try:
            start = int(token or 0)
        except ValueError:
            raise MemoryServiceError("invalid", f"bad page token {token!r}") from None
        end = start + self.page_size
        return {"sessions": records[start:end], "next": str(end) if end < len(records) else None}

    def _op_run(self, *, namespace: str, session_id: str, code: str) -> dict[str, Any]:
        session = self._session(namespace, session_id)
        state = self._state(session)
        if state != "ready":
            raise MemoryServiceError("conflict", f"session {session_id} is {state}")
        now = self.clock.monotonic()
        statement = _Statement(
            id=str(len(session.statements) + 1),
            code=code,
            submitted=now,
            finishes=now + self.statement_seconds,
            outcome=self.executor(code, session.globals),
        )
        session.statements[statement.id] = statement
        session.last_activity = statement.finishes
        return {"statement_id": statement.id}

    def _op_statement(
        self, *, namespace: str, session_id: str, statement_id: str
    ) -> dict[str, Any]:
        statement = self._statement(namespace, session_id, statement_id)
        now = self.clock.monotonic()
        if statement.cancelled_at is not None:
            state = "cancelled"
        elif now < statement.finishes:
            state = "running"
        else:
            state = "failed" if statement.outcome.error_name else "succeeded"
        done = state in ("succeeded", "failed")
        return {
            "id": statement.id,
            "state": state,
            "output": statement.outcome.output if done else None,
            "error_name": statement.outcome.error_name if done else None,
            "error_value": statement.outcome.error_value if done else None,
            "traceback": list(statement.outcome.traceback) if done else [],
            "started_at": self._at(statement.submitted),
            "completed_at": self._at(statement.finishes) if done else None,
        }

    def _op_cancel(self, *, namespace: str, session_id: str, statement_id: str) -> dict[str, Any]:
        statement = self._statement(namespace, session_id, statement_id)
        if statement.cancelled_at is None and self.clock.monotonic() < statement.finishes:
            statement.cancelled_at = self.clock.monotonic()
        return {}

    def _statement(self, namespace: str, session_id: str, statement_id: str) -> _Statement:
        statement = self._session(namespace, session_id).statements.get(statement_id)
        if statement is None:
            raise MemoryServiceError("not_found", f"no statement {statement_id!r}")
        return statement

    def _op_endpoint(self, *, namespace: str, session_id: str) -> dict[str, Any]:
        session = self._session(namespace, session_id)
        if not session.request.get("spark_connect"):
            raise MemoryServiceError("invalid", "the session was not started for Spark Connect")
        if not STATE_MAP[self._state(session)].accepts_work:
            raise MemoryServiceError("conflict", f"session {session_id} is not running")
        return {
            "url": f"sc://{session.id}.memory.invalid:15002",
            "token": uuid.uuid4().hex,
            "expires_at": self.clock.now() + timedelta(hours=1),
        }


# ----------------------------------------------------------------------------- the backend


class MemoryBackend(Backend):
    """A backend whose service is a :class:`MemoryService` in the same process.

    Keywords: ``service`` (connection: the :class:`MemoryService`) and ``namespace``
    (location: where sessions live; the service has ``"default"``).

    Args:
        service: The service to talk to.
        namespace: The namespace sessions live in.

    Raises:
        InvalidConfigError: Without a service, or with an empty namespace.
    """

    name: ClassVar[str] = "memory"
    connection_fields: ClassVar[tuple[str, ...]] = ("service",)
    location_fields: ClassVar[tuple[str, ...]] = ("namespace",)
    supported_fields: ClassVar[frozenset[str]] = frozenset(
        {
            "name",
            "description",
            "role",
            "idle_timeout",
            "max_duration",
            "spark_conf",
            "tags",
            "client_token",
            "spark_connect",
        }
    )
    state_map: ClassVar[Mapping[str, SessionState]] = STATE_MAP
    capabilities: ClassVar[Capabilities] = Capabilities(
        statements=True, spark_connect=True, delete=True, server_side_state_filter=True, tags=True
    )

    def __init__(self, *, service: MemoryService | None = None, namespace: str = "") -> None:
        if not isinstance(service, MemoryService):
            raise InvalidConfigError(
                "service", "the memory backend needs service=MemoryService() to talk to"
            )
        if not isinstance(namespace, str) or not namespace:
            raise InvalidConfigError("namespace", f"must be a non-empty string, got {namespace!r}")
        self.service = service
        self.namespace = namespace

    def __repr__(self) -> str:
        return f"<MemoryBackend namespace={self.namespace!r}>"

    # -- request translation: the service's limits, checked before any call ----------------------

    def prepare_start(self, config: SessionConfig) -> PreparedStart:
        """Translate ``config`` into the service's create request; no call.

        Raises:
            InvalidConfigError: For a value the service would reject.
        """
        if config.name is not None and len(config.name) > NAME_MAX:
            raise InvalidConfigError("name", f"must be at most {NAME_MAX} characters")
        if len(config.tags) > TAGS_MAX:
            raise InvalidConfigError("tags", f"at most {TAGS_MAX} tags")
        request: dict[str, Any] = {
            "name": config.name or f"sessionkit-{uuid.uuid4().hex[:8]}",
            "description": config.description,
            "role": config.role,
            "idle_timeout_seconds": _seconds(config.idle_timeout),
            "max_duration_seconds": _seconds(config.max_duration),
            "spark_conf": dict(config.spark_conf),
            "tags": dict(config.tags),
            "spark_connect": config.spark_connect,
            **config.options,
        }
        token = config.client_token or uuid.uuid4().hex
        return PreparedStart(config=config, request=request, token=token)

    # -- response translation ---------------------------------------------------------------------

    def _info(self, record: Mapping[str, Any]) -> SessionInfo:
        native = str(record["state"])
        idle = record.get("idle_timeout_seconds")
        return SessionInfo(
            id=record["id"],
            backend=self.name,
            state=self.state_map.get(native, SessionState.UNKNOWN),
            native_state=native,
            reason=record.get("reason"),
            name=record.get("name"),
            created_at=record.get("created_at"),
            started_at=record.get("ready_at"),
            idle_timeout=None if idle is None else timedelta(seconds=idle),
            raw=record,
        )

    def _call(self, operation: str, **params: Any) -> dict[str, Any]:
        try:
            return self.service.call(operation, namespace=self.namespace, **params)
        except MemoryServiceError as exc:
            error_type = ThrottledError if exc.code == "throttled" else ServiceError
            raise error_type(
                f"memory {operation} failed: {exc.message}",
                code=exc.code,
                retryable=exc.retryable,
                operation=operation,
            ) from exc

    # -- the primitives: one call each --------------------------------------------------------

    def _preflight(self, prepared: PreparedStart) -> None:
        self._call("describe_namespace")

    def _start(self, prepared: PreparedStart, *, attempt: int) -> SessionInfo:
        # The token makes a retried create return the session the first attempt made.
        return self._info(
            self._call("create", token=prepared.token, request=dict(prepared.request))
        )

    def _describe(self, session_id: str) -> SessionInfo:
        return self._info(self._call("get", session_id=session_id))

    def _stop(self, session_id: str) -> None:
        self._call("stop", session_id=session_id)

    def _delete(self, session_id: str) -> None:
        self._call("delete", session_id=session_id)

    def _list_page(
        self, states: frozenset[SessionState] | None, token: str | None
    ) -> tuple[list[SessionInfo], str | None]:
        native = None
        if states is not None:
            native = sorted(k for k, v in self.state_map.items() if v in states)
        answer = self._call("list", states=native, token=token)
        return [self._info(r) for r in answer["sessions"]], answer["next"]

    def _run(self, session_id: str, code: str) -> str:
        return str(self._call("run", session_id=session_id, code=code)["statement_id"])

    def _statement(self, session_id: str, statement_id: str) -> StatementResult:
        answer = self._call("statement", session_id=session_id, statement_id=statement_id)
        return StatementResult(
            id=answer["id"],
            state=STATEMENT_STATES.get(answer["state"], StatementState.UNKNOWN),
            output=answer["output"],
            error_name=answer["error_name"],
            error_value=answer["error_value"],
            traceback=answer["traceback"],
            started_at=answer["started_at"],
            completed_at=answer["completed_at"],
            raw=answer,
        )

    def _cancel(self, session_id: str, statement_id: str) -> None:
        self._call("cancel", session_id=session_id, statement_id=statement_id)

    def _endpoint(self, session_id: str) -> Endpoint:
        answer = self._call("endpoint", session_id=session_id)
        return Endpoint(url=answer["url"], token=answer["token"], expires_at=answer["expires_at"])


def _seconds(value: timedelta | None) -> float | None:
    return None if value is None else value.total_seconds()


def register(name: str = "memory") -> None:
    """Register :class:`MemoryBackend` under ``name`` (again, if it already is)."""
    import sessionkit

    sessionkit.register_backend(name, MemoryBackend, clobber=True)

"""The emulated Apache Livy server: a state machine answering Livy's REST API.

The answers are shaped as Livy's own JSON (``docs/rest-api.md`` of apache/incubator-livy and
the server's ``SessionInfo``/``Statement`` classes): sessions with ``id``, ``name``, ``appId``,
``owner``, ``proxyUser``, ``state``, ``kind``, ``appInfo``, ``log`` and the request's fields;
lists as ``{"from", "total", "sessions"}``; errors as ``{"msg": ...}``. Like Livy, a deleted
session is forgotten at once (a later GET is a 404), sessions that end by themselves are kept
for ``retain`` seconds, and every ``/sessions/{id}`` request is a heartbeat.

:func:`answer` is the whole server as one plain function, so both the in-process
``httpx.MockTransport`` (:func:`transport`) and a loopback HTTP server can route to it.
"""

from __future__ import annotations

import ast
import contextlib
import io
import json
import re
import traceback
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import attrs

from sessionkit.testing.base import EmulatedError, EmulatedService, Script

if TYPE_CHECKING:
    import httpx

    from sessionkit.testing.emulator import Emulator

__all__ = [
    "AnswerLost",
    "ConnectionRefused",
    "LivyService",
    "LivyTimeline",
    "NamespaceExecutor",
    "answer",
    "transport",
]

#: Livy's documented session states that mean the session still holds resources.
_LIVE = ("not_started", "starting", "recovering", "idle", "running", "busy", "shutting_down")


class ConnectionRefused(Exception):
    """An injected connection error: the request never reached the server."""


class AnswerLost(Exception):
    """An injected lost answer: the server processed the request, the answer never came back."""


@attrs.define(kw_only=True)
class LivyTimeline:
    """How long things take in the emulated Livy, in virtual seconds.

    Attributes:
        not_started: From ``POST /sessions`` to ``starting``.
        starting: From ``POST /sessions`` to ``idle``.
        statement: How long each statement runs.
        session_timeout: The server's ``livy.server.session.timeout`` (idle sessions without
            their own ``idleTimeout`` are deleted after it).
        retain: The server's ``livy.server.session.state-retain.sec``: how long sessions that
            ended by themselves stay listed.
    """

    not_started: float = 1.0
    starting: float = 6.0
    statement: float = 0.3
    session_timeout: float = 3600.0
    retain: float = 600.0


class NamespaceExecutor:
    """Runs Python code like a notebook cell, keeping one namespace between statements.

    ``x = 1`` then ``x + 1`` gives ``2``. ``spark`` is not bound unless a real Spark is attached.
    """

    def __init__(self) -> None:
        self.namespace: dict[str, Any] = {"__name__": "__sessionkit_statement__"}

    def __call__(self, code: str) -> dict[str, Any]:
        """Run ``code``; return a Livy statement ``output`` object."""
        out = io.StringIO()
        try:
            tree = ast.parse(code, mode="exec")
            last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
            with contextlib.redirect_stdout(out):
                exec(compile(tree, "<stdin>", "exec"), self.namespace)
                if isinstance(last, ast.Expr):
                    value = eval(
                        compile(ast.Expression(last.value), "<stdin>", "eval"), self.namespace
                    )
                    if value is not None:
                        print(value if isinstance(value, str) else repr(value))
        except Exception as exc:
            return {
                "status": "error",
                "ename": type(exc).__name__,
                "evalue": str(exc),
                "traceback": traceback.format_exception_only(type(exc), exc),
            }
        return {"status": "ok", "data": {"text/plain": out.getvalue().rstrip("\n")}}


@attrs.define(kw_only=True)
class _Statement:
    id: int
    code: str
    kind: str
    starts: float
    finishes: float
    output: dict[str, Any]
    cancelled: bool = False


@attrs.define(kw_only=True)
class _Session:
    id: int
    request: dict[str, Any]
    created: float
    ready_at: float
    owner: str | None
    state: str = "not_started"
    ended: float | None = None
    script: Script | None = None
    last_activity: float = 0.0
    last_heartbeat: float | None = None
    log: list[str] = attrs.field(factory=list)
    statements: list[_Statement] = attrs.field(factory=list)
    executor: Callable[[str], dict[str, Any]] = attrs.field(factory=NamespaceExecutor)
    #: The session's own variables (and ``spark``) when a shared executor runs its statements.
    namespace: dict[str, Any] = attrs.field(factory=dict)


def _livy_output(outcome: Any) -> dict[str, Any]:
    """A Livy statement ``output`` object from an executor's ``StatementOutcome``."""
    if outcome.error_name is not None:
        return {
            "status": "error",
            "ename": outcome.error_name,
            "evalue": outcome.error_value or "",
            "traceback": list(outcome.traceback),
        }
    return {"status": "ok", "data": {"text/plain": outcome.output}}


def _duration(text: Any) -> float | None:
    match = re.fullmatch(r"(\d+)\s*(ms|s|m|min|h|d)?", str(text).strip()) if text else None
    if match is None:
        return None
    units = {"ms": 0.001, "s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}
    return int(match.group(1)) * units.get(match.group(2) or "ms", 0.001)


class LivyService(EmulatedService):
    """Emulated Livy sessions and statements.

    Attributes:
        timeline: How long things take (mutable).
        version: What ``GET /version`` reports; ``None`` makes it a 404 (Livy before 0.6, or a
            Livy-compatible service such as Synapse).
        supports_idle_timeout: Whether ``POST /sessions`` takes ``idleTimeout`` (Livy 0.9+);
            when not, the field is refused as unknown, as Livy's JSON reader does.
        csrf: Demand the ``X-Requested-By`` header on requests that change state.
        required_authorization: When set, every request must carry exactly this
            ``Authorization`` header (else 401).
    """

    service: ClassVar[str] = "livy"
    validation_error: ClassVar[str] = "BadRequest"
    throttling_error: ClassVar[str] = "TooManyRequests"
    throttling_status: ClassVar[int] = 429
    server_error: ClassVar[str] = "InternalServerError"
    scriptable: ClassVar[tuple[str, ...]] = ("dead", "error", "killed", "success")
    #: Scripts given in the common (upper-case) spelling map onto Livy's states.
    _SCRIPT_ALIASES: ClassVar[Mapping[str, str]] = {"FAILED": "dead", "STOPPED": "killed"}

    def __init__(self, emulator: Emulator) -> None:
        super().__init__(emulator)
        self.timeline = LivyTimeline()
        self.version: str | None = "0.9.0-incubating"
        self.supports_idle_timeout = True
        #: A notebook-style executor shared by every session (``(code, namespace=...) ->
        #: StatementOutcome``, e.g. :func:`sessionkit.testing.spark.spark_executor`), set by
        #: :meth:`Emulator.use_spark <sessionkit.testing.Emulator.use_spark>`; ``None``: each
        #: session runs plain Python in its own namespace.
        self.executor: Callable[..., Any] | None = None
        self.csrf = True
        self.required_authorization: str | None = None
        self._sessions: dict[int, _Session] = {}
        self._next_id = 0

    # -- test controls -------------------------------------------------------------------------

    def script_next(self, state: str = "dead", *, after: float = 1.0, reason: str = "") -> None:
        """Make the next created session end in ``state`` (``dead``, ``error``, ...) ``after`` s.

        ``FAILED`` and ``STOPPED`` are accepted as ``dead`` and ``killed``. The reason becomes
        the session's last log line, where Livy clients read it.
        """
        super().script_next(self._SCRIPT_ALIASES.get(state, state), after=after, reason=reason)

    def state(self, session_id: int | str) -> str | None:
        """The native state of a session now (``None`` once Livy has forgotten it)."""
        self._collect()
        session = self._sessions.get(int(session_id))
        return None if session is None else self._settle(session).state

    def request(self, session_id: int | str) -> dict[str, Any]:
        """The ``POST /sessions`` body a session was created with."""
        return dict(self._sessions[int(session_id)].request)

    def alive(self) -> list[str]:
        """Ids of sessions in a live state."""
        self._collect()
        return [str(s.id) for s in self._sessions.values() if s.state in _LIVE]

    # -- state machine -------------------------------------------------------------------------

    def _end(self, session: _Session, state: str, at: float, line: str | None = None) -> None:
        session.state = state
        session.ended = at
        if line:
            session.log.append(line)

    def _settle(self, session: _Session) -> _Session:
        now = self.now
        if session.state not in _LIVE:
            return session
        script = session.script
        if script is not None and now >= session.created + script.after:
            session.log.append("stderr: ")
            self._end(session, script.state, session.created + script.after, script.reason)
            return session
        if session.state == "not_started" and now >= session.created + self.timeline.not_started:
            session.state = "starting"
        if session.state == "starting" and now >= session.ready_at:
            session.state = "idle"
            session.last_activity = session.ready_at
            session.log.append("Spark context started (emulated)")
        if session.state in ("idle", "busy"):
            running = [st for st in session.statements if not st.cancelled and st.finishes > now]
            session.state = "busy" if running else "idle"
        return session

    def _expired(self, session: _Session) -> bool:
        """Whether Livy's garbage collector or heartbeat watchdog would delete it by now."""
        now = self.now
        if session.state not in _LIVE:
            return session.ended is not None and now >= session.ended + self.timeline.retain
        timeout = session.request.get("heartbeatTimeoutInSecond") or 0
        if (
            timeout
            and session.last_heartbeat is not None
            and now > session.last_heartbeat + timeout
        ):
            return True
        if session.state == "busy":
            return False
        last = max(
            [session.last_activity] + [st.finishes for st in session.statements if not st.cancelled]
        )
        idle = _duration(session.request.get("idleTimeout")) or self.timeline.session_timeout
        if session.state == "idle" and now >= last + idle:
            return True
        ttl = _duration(session.request.get("ttl"))
        return ttl is not None and now >= session.created + ttl

    def _collect(self) -> None:
        for session in list(self._sessions.values()):
            self._settle(session)
            if self._expired(session):
                del self._sessions[session.id]

    def _get(self, session_id: str) -> _Session:
        self._collect()
        session = self._sessions.get(int(session_id)) if session_id.isdigit() else None
        if session is None:
            # Livy 0.9 also finds sessions by name.
            session = next(
                (s for s in self._sessions.values() if s.request.get("name") == session_id), None
            )
        if session is None:
            raise EmulatedError("NotFound", f"Session '{session_id}' not found.", 404)
        session.last_heartbeat = self.now
        return self._settle(session)

    def _record(self, session: _Session) -> dict[str, Any]:
        request = session.request
        record: dict[str, Any] = {
            "id": session.id,
            "name": request.get("name"),
            "appId": f"application_{session.id:04d}" if session.state != "not_started" else None,
            "owner": session.owner,
            "proxyUser": request.get("proxyUser"),
            "state": session.state,
            "kind": request.get("kind", "shared"),
            "appInfo": {"driverLogUrl": None, "sparkUiUrl": None},
            "log": session.log[-10:],
            "ttl": request.get("ttl"),
            "idleTimeout": request.get("idleTimeout"),
            "driverMemory": request.get("driverMemory"),
            "driverCores": request.get("driverCores", 0),
            "executorMemory": request.get("executorMemory"),
            "executorCores": request.get("executorCores", 0),
            "conf": request.get("conf", {}),
            "archives": request.get("archives", []),
            "files": request.get("files", []),
            "heartbeatTimeoutInSecond": request.get("heartbeatTimeoutInSecond", 0),
            "jars": request.get("jars", []),
            "numExecutors": request.get("numExecutors", 0),
            "pyFiles": request.get("pyFiles", []),
            "queue": request.get("queue"),
        }
        return record

    def _statement_record(self, statement: _Statement) -> dict[str, Any]:
        now = self.now
        epoch_ms = (self.emulator.clock.now().timestamp() - now) * 1000
        record: dict[str, Any] = {
            "id": statement.id,
            "code": statement.code,
            "output": None,
            "progress": 0.0,
            "started": 0,
            "completed": 0,
        }
        if statement.cancelled:
            record["state"] = "cancelled"
        elif now < statement.starts:
            record["state"] = "waiting"
        elif now < statement.finishes:
            record["state"] = "running"
            record["started"] = int(epoch_ms + statement.starts * 1000)
            record["progress"] = round(
                (now - statement.starts) / (statement.finishes - statement.starts), 3
            )
        else:
            record["state"] = "available"
            record["started"] = int(epoch_ms + statement.starts * 1000)
            record["completed"] = int(epoch_ms + statement.finishes * 1000)
            record["progress"] = 1.0
            record["output"] = {"execution_count": statement.id, **statement.output}
        return record

    # -- operations ----------------------------------------------------------------------------

    _KNOWN_FIELDS: ClassVar[frozenset[str]] = frozenset(
        {
            "kind", "proxyUser", "jars", "pyFiles", "files", "driverMemory", "driverCores",
            "executorMemory", "executorCores", "numExecutors", "archives", "queue", "name",
            "conf", "heartbeatTimeoutInSecond", "ttl", "idleTimeout",
        }
    )  # fmt: skip

    def op_get_version(self, params: dict[str, Any]) -> dict[str, Any]:
        if self.version is None:
            raise EmulatedError("NotFound", "Not Found", 404)
        return {"version": self.version, "user": "emulator", "revision": "", "branch": "",
                "date": "", "url": ""}  # fmt: skip

    def op_create_session(self, params: dict[str, Any]) -> dict[str, Any]:
        body = params["body"]
        if not isinstance(body, dict):
            raise EmulatedError("BadRequest", "Rejected, Reason: the body is not a JSON object")
        known = (
            self._KNOWN_FIELDS
            if self.supports_idle_timeout
            else self._KNOWN_FIELDS - {"idleTimeout"}
        )
        unknown = sorted(set(body) - known)
        if unknown:
            # Livy's JSON reader refuses fields it does not know.
            raise EmulatedError(
                "BadRequest",
                f'Unrecognized field "{unknown[0]}" (class org.apache.livy.server.'
                "interactive.CreateInteractiveRequest), not marked as ignorable",
            )
        kind = body.get("kind", "shared")
        if kind not in ("spark", "pyspark", "sparkr", "sql", "shared"):
            raise EmulatedError("BadRequest", f"Invalid kind: {kind}")
        for key in ("ttl", "idleTimeout"):
            if key in body and _duration(body[key]) is None:
                raise EmulatedError("BadRequest", f"Invalid time string: {body[key]}")
        self._collect()
        name = body.get("name")
        if name is not None:
            for other in self._sessions.values():
                if other.request.get("name") == name:
                    raise EmulatedError(
                        "BadRequest", f"Duplicate session name: {name} for session {other.id}"
                    )
        now = self.now
        session = _Session(
            id=self._next_id,
            request=dict(body),
            created=now,
            ready_at=now + self.timeline.starting,
            owner=params.get("user"),
        )
        session.script = self._next_script()
        self._next_id += 1
        self._created += 1
        self._sessions[session.id] = session
        return self._record(self._settle(session))

    def op_list_sessions(self, params: dict[str, Any]) -> dict[str, Any]:
        self._collect()
        query = params.get("query", {})
        start = int(query.get("from", 0))
        size = int(query.get("size", 100))
        sessions = list(self._sessions.values())
        return {
            "from": start,
            "total": len(sessions),
            "sessions": [self._record(s) for s in sessions[start : start + size]],
        }

    def op_get_session(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._record(self._get(params["session"]))

    def op_get_session_state(self, params: dict[str, Any]) -> dict[str, Any]:
        session = self._get(params["session"])
        return {"id": session.id, "state": session.state}

    def op_get_session_log(self, params: dict[str, Any]) -> dict[str, Any]:
        session = self._get(params["session"])
        query = params.get("query", {})
        size = int(query.get("size", 100))
        lines = session.log
        start = int(query["from"]) if "from" in query else max(0, len(lines) - size)
        return {
            "id": session.id,
            "from": start,
            "total": len(lines),
            "log": lines[start : start + size],
        }

    def op_delete_session(self, params: dict[str, Any]) -> dict[str, Any]:
        session = self._get(params["session"])
        del self._sessions[session.id]
        return {"msg": "deleted"}

    def op_create_statement(self, params: dict[str, Any]) -> dict[str, Any]:
        session = self._get(params["session"])
        body = params["body"] if isinstance(params["body"], dict) else {}
        if "code" not in body:
            raise EmulatedError("BadRequest", "Rejected, Reason: missing code")
        if session.state not in ("idle", "busy"):
            raise EmulatedError("BadRequest", f"Session is in state {session.state}")
        kind = body.get("kind") or session.request.get("kind", "shared")
        if kind == "shared":
            raise EmulatedError(
                "BadRequest", "Code type should be specified if session kind is shared"
            )
        now = self.now
        previous = [st.finishes for st in session.statements if not st.cancelled]
        starts = max([now, *previous])
        if kind in ("pyspark", "python") and self.executor is not None:
            output = _livy_output(self.executor(str(body["code"]), namespace=session.namespace))
        elif kind in ("pyspark", "python"):
            output = session.executor(str(body["code"]))
        else:
            output = {"status": "error", "ename": "NotSupported",
                      "evalue": f"the emulator runs Python statements only, not {kind}",
                      "traceback": []}  # fmt: skip
        statement = _Statement(
            id=len(session.statements),
            code=str(body["code"]),
            kind=kind,
            starts=starts,
            finishes=starts + self.timeline.statement,
            output=output,
        )
        session.statements.append(statement)
        session.last_activity = now
        self._settle(session)
        return self._statement_record(statement)

    def _statement(self, params: dict[str, Any]) -> _Statement:
        session = self._get(params["session"])
        index = int(params["statement"]) if str(params["statement"]).isdigit() else -1
        if not 0 <= index < len(session.statements):
            raise EmulatedError("NotFound", f"Statement not found: {params['statement']}", 404)
        return session.statements[index]

    def op_list_statements(self, params: dict[str, Any]) -> dict[str, Any]:
        session = self._get(params["session"])
        return {
            "total_statements": len(session.statements),
            "statements": [self._statement_record(st) for st in session.statements],
        }

    def op_get_statement(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._statement_record(self._statement(params))

    def op_cancel_statement(self, params: dict[str, Any]) -> dict[str, Any]:
        statement = self._statement(params)
        if self.now < statement.finishes:
            statement.cancelled = True
        return {"msg": "canceled"}


# ----------------------------------------------------------------------------- the wire

_ROUTES: tuple[tuple[str, re.Pattern[str], str], ...] = tuple(
    (method, re.compile(pattern + "$"), operation)
    for method, pattern, operation in (
        ("GET", r"/version/?", "GetVersion"),
        ("GET", r"/sessions/?", "ListSessions"),
        ("POST", r"/sessions/?", "CreateSession"),
        ("GET", r"/sessions/(?P<session>[^/]+)", "GetSession"),
        ("DELETE", r"/sessions/(?P<session>[^/]+)", "DeleteSession"),
        ("GET", r"/sessions/(?P<session>[^/]+)/state", "GetSessionState"),
        ("GET", r"/sessions/(?P<session>[^/]+)/log", "GetSessionLog"),
        ("GET", r"/sessions/(?P<session>[^/]+)/statements", "ListStatements"),
        ("POST", r"/sessions/(?P<session>[^/]+)/statements", "CreateStatement"),
        ("GET", r"/sessions/(?P<session>[^/]+)/statements/(?P<statement>[^/]+)", "GetStatement"),
        (
            "POST",
            r"/sessions/(?P<session>[^/]+)/statements/(?P<statement>[^/]+)/cancel",
            "CancelStatement",
        ),
    )
)

_SAFE_METHODS = ("GET", "HEAD", "OPTIONS", "TRACE")


def _json(status: int, payload: Any, **headers: str) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": "application/json", **headers}, json.dumps(payload).encode()


def answer(
    emulator: Emulator,
    method: str,
    path: str,
    query: Mapping[str, str],
    headers: Mapping[str, str],
    body: bytes,
) -> tuple[int, dict[str, str], bytes]:
    """Answer one HTTP request to the emulated Livy server.

    Args:
        emulator: The emulator whose clock, faults and call log apply.
        method: The HTTP method.
        path: The path below the Livy base URL, e.g. ``/sessions/3``.
        query: The query parameters.
        headers: The request headers (any case).
        body: The request body.

    Returns:
        The status, the response headers and the body.

    Raises:
        ConnectionRefused: An injected connection error (drop the connection, send nothing).
        AnswerLost: An injected lost answer: the request was processed (drop the connection).
    """
    service: LivyService = emulator.service("livy")  # type: ignore[assignment]
    lower = {k.lower(): v for k, v in headers.items()}
    method = method.upper()
    operation, groups = "Unknown", {}
    for route_method, pattern, name in _ROUTES:
        match = pattern.match(path)
        if match and route_method == method:
            operation, groups = name, match.groupdict()
            break
    try:
        decoded: Any = json.loads(body) if body else {}
    except ValueError:
        decoded = None
    params: dict[str, Any] = {
        "method": method,
        "path": path,
        "query": dict(query),
        # The call log never keeps credentials.
        "headers": {k: ("***" if k == "authorization" else v) for k, v in lower.items()},
        "body": decoded,
        **groups,
    }
    with emulator._lock:
        at = emulator.clock.monotonic()

        def log(outcome: str) -> None:
            emulator.record("livy", operation, at, params, outcome)

        lose = False
        for fault in list(emulator.faults):
            if not fault.matches("livy", operation) or not fault.fires(emulator.rng):
                continue
            if fault.kind == "latency":
                emulator.clock.sleep(fault.latency)
            elif fault.kind == "connection_error":
                log("connection_error")
                raise ConnectionRefused(f"injected connection error on {operation}")
            elif fault.kind == "read_timeout":
                lose = True
            elif fault.kind == "throttle":
                log(service.throttling_error)
                return _json(429, {"msg": "Rate exceeded"}, **{"Retry-After": "1"})
            else:
                log(service.server_error)
                return _json(500, {"msg": "Internal failure (injected)"})
        if service.required_authorization is not None and (
            lower.get("authorization") != service.required_authorization
        ):
            log("Unauthorized")
            return _json(401, {"msg": "Unauthorized"})
        if service.csrf and method not in _SAFE_METHODS and "x-requested-by" not in lower:
            log("BadRequest")
            return _json(400, {"msg": "Missing Required Header for CSRF protection."})
        if operation == "Unknown":
            log("NotFound")
            return _json(404, {"msg": f"no route for {method} {path}"})
        if decoded is None:
            log("BadRequest")
            return _json(400, {"msg": "Rejected, Reason: the body is not JSON"})
        try:
            result = service.handler(operation)(params)
            status, outcome = 200 if operation != "CreateSession" else 201, "ok"
            response = _json(status, result)
        except EmulatedError as error:
            outcome = error.code
            response = _json(error.status, {"msg": error.message})
        if lose:
            log("read_timeout")
            raise AnswerLost(f"injected lost answer on {operation}")
        log(outcome)
        return response


def transport(emulator: Emulator) -> httpx.MockTransport:
    """An ``httpx`` transport answering every request with :func:`answer` (in process)."""
    import httpx

    def handle(request: httpx.Request) -> httpx.Response:
        try:
            status, headers, content = answer(
                emulator,
                request.method,
                request.url.path,
                dict(request.url.params),
                dict(request.headers),
                request.read(),
            )
        except ConnectionRefused as exc:
            raise httpx.ConnectError(str(exc), request=request) from exc
        except AnswerLost as exc:
            raise httpx.ReadTimeout(str(exc), request=request) from exc
        return httpx.Response(status, headers=headers, content=content)

    return httpx.MockTransport(handle)

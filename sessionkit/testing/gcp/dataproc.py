"""The emulated Google Cloud Dataproc Serverless sessions API (``SessionController``, REST).

A real ``google.cloud.dataproc_v1.SessionControllerClient`` talks to it through its REST
transport: :func:`client` mounts a ``requests`` adapter on the transport's HTTP session, so the
client builds, serializes and parses every request and answer exactly as it would against
Google, with no thread, port or server. :func:`answer` is the same service as a plain function
of an HTTP request, for a loopback server to route ``/v1/projects/...`` to.

Requests are parsed and answers built with the Dataproc protos themselves
(``Session.from_json``/``to_json``, ``Operation`` messages), so the emulator cannot drift from
the API: a field the API does not have fails the request (INVALID_ARGUMENT), and an answer the
client could not parse cannot be produced. Sessions move through CREATING, ACTIVE,
TERMINATING and TERMINATED on the emulator's virtual clock, end when idle past their
``idle_ttl`` or past their ``ttl``, and take scripted ends and injected faults like the AWS
services.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Mapping
from datetime import timedelta, timezone
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import parse_qsl, urlsplit

import attrs
import requests
import requests.adapters
import requests.structures
from google.cloud import dataproc_v1
from google.longrunning import operations_pb2  # type: ignore[import-untyped,unused-ignore]
from google.protobuf import any_pb2, json_format  # type: ignore[import-untyped,unused-ignore]

from sessionkit.testing.base import EmulatedError, EmulatedService, Script, page

if TYPE_CHECKING:
    from sessionkit.testing.emulator import Emulator

__all__ = ["DataprocService", "DataprocTimeline", "LostAnswer", "answer", "client"]

#: The host the in-process client is pointed at (never resolved: the adapter answers).
HOST = "https://dataproc.emulator.invalid"

_ALIVE = frozenset({"CREATING", "ACTIVE", "TERMINATING"})
_ENDED = frozenset({"TERMINATED", "FAILED"})

_HTTP_STATUS = {
    "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 400,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "RESOURCE_EXHAUSTED": 429,
    "INTERNAL": 500,
    "UNAVAILABLE": 503,
    "UNIMPLEMENTED": 501,
}

_PARENT = r"projects/(?P<project>[^/]+)/locations/(?P<region>[^/]+)"
_ROUTES: tuple[tuple[str, re.Pattern[str], str], ...] = (
    ("POST", re.compile(rf"/v1/{_PARENT}/sessions"), "CreateSession"),
    ("GET", re.compile(rf"/v1/{_PARENT}/sessions"), "ListSessions"),
    ("GET", re.compile(rf"/v1/{_PARENT}/sessions/(?P<session>[^/:]+)"), "GetSession"),
    (
        "POST",
        re.compile(rf"/v1/{_PARENT}/sessions/(?P<session>[^/:]+):terminate"),
        "TerminateSession",
    ),
    ("DELETE", re.compile(rf"/v1/{_PARENT}/sessions/(?P<session>[^/:]+)"), "DeleteSession"),
    (
        "GET",
        re.compile(
            r"/v1/projects/(?P<project>[^/]+)/regions/(?P<region>[^/]+)/operations/(?P<op>[^/]+)"
        ),
        "GetOperation",
    ),
)

_FILTER_STATE = re.compile(r"state\s*=\s*([A-Z_]+)")
_FILTER_LABEL = re.compile(r'labels\.([a-z][a-z0-9_-]*)\s*=\s*"?([a-z0-9_-]*)"?')
_FILTER_ID = re.compile(r'session_id\s*=\s*"?([a-z0-9-]+)"?')


@attrs.define(kw_only=True)
class DataprocTimeline:
    """How long things take in the emulated Dataproc, in virtual seconds.

    Attributes:
        creating: From CreateSession to ACTIVE (real sessions take about one to two minutes).
        terminating: From TerminateSession (or a timeout) to TERMINATED.
        default_idle_ttl: The service's idle TTL when the request gives none (1 hour).
        default_ttl: The service's TTL when the request gives none (24 hours).
        dcus: Data compute units a running session holds (for ``approximate_usage``).
        shuffle_gb: Shuffle storage a running session holds, in GB.
        max_page_size: The most sessions one ListSessions page holds, whatever the caller asks
            (the service "may return fewer").
        honor_request_id: Whether a repeated ``request_id`` is ignored (as documented); turn it
            off to make a retried create meet ALREADY_EXISTS instead.
    """

    creating: float = 60.0
    terminating: float = 10.0
    default_idle_ttl: float = 3600.0
    default_ttl: float = 86400.0
    dcus: float = 4.0
    shuffle_gb: float = 100.0
    max_page_size: int = 100
    honor_request_id: bool = True


@attrs.define(kw_only=True)
class _Session:
    name: str
    uuid: str
    message: dict[str, Any]
    request_id: str
    created: float
    state: str = "CREATING"
    state_since: float = 0.0
    state_message: str = ""
    history: list[tuple[str, float]] = attrs.field(factory=list)
    active_since: float | None = None
    last_activity: float = 0.0
    terminate_done: float | None = None
    ended: float | None = None
    script: Script | None = None
    deleted: bool = False


class DataprocService(EmulatedService):
    """Emulated Dataproc sessions: create, get, list (with filters), terminate, delete.

    Attributes:
        timeline: How long things take (mutable: set fields to change later sessions).
        timeouts: The ``timeout`` every in-process call was sent with (a client without a
            deadline would show ``None``).
    """

    service: ClassVar[str] = "dataproc"
    validation_error: ClassVar[str] = "INVALID_ARGUMENT"
    throttling_error: ClassVar[str] = "RESOURCE_EXHAUSTED"
    throttling_status: ClassVar[int] = 429
    server_error: ClassVar[str] = "UNAVAILABLE"
    scriptable: ClassVar[tuple[str, ...]] = ("FAILED", "TERMINATED")

    def __init__(self, emulator: Emulator) -> None:
        super().__init__(emulator)
        self.timeline = DataprocTimeline()
        self.timeouts: list[Any] = []
        self._sessions: dict[str, _Session] = {}
        self._requests: dict[str, str] = {}
        self._operations: dict[str, tuple[str, str]] = {}
        self._lock = threading.RLock()

    # -- test controls -------------------------------------------------------------------------

    def fail(self, session_id: str, reason: str = "Session failed (injected)") -> None:
        """Fail a session now (``session_id`` short or full)."""
        with self._lock:
            session = self._find(session_id)
            self._enter(session, "FAILED", reason)

    def touch(self, session_id: str) -> None:
        """Record activity on a session now (what a Spark Connect client's work would do)."""
        with self._lock:
            self._find(session_id).last_activity = self.now

    def session_message(self, session_id: str) -> dataproc_v1.Session:
        """The session as the service would describe it now (a proto message)."""
        with self._lock:
            return self._message(self._settle(self._find(session_id)))

    def alive(self) -> list[str]:
        """Short ids of sessions still holding resources."""
        with self._lock:
            return [
                s.name.rsplit("/", 1)[-1]
                for s in self._sessions.values()
                if self._settle(s).state in _ALIVE
            ]

    # -- the state machine ----------------------------------------------------------------------

    def _find(self, session_id: str) -> _Session:
        for session in self._sessions.values():
            if session.deleted:
                continue
            if session.name == session_id or session.name.endswith(f"/sessions/{session_id}"):
                return session
        raise EmulatedError("NOT_FOUND", f"Session not found: {session_id}", 404)

    def _enter(
        self, session: _Session, state: str, message: str = "", at: float | None = None
    ) -> None:
        when = self.now if at is None else at
        session.history.append((session.state, session.state_since))
        session.state = state
        session.state_since = when
        session.state_message = message
        if state == "ACTIVE":
            session.active_since = when
            session.last_activity = when
        if state in _ENDED:
            session.ended = when

    def _seconds(self, value: Any, default: float) -> float:
        if not value:
            return default
        return float(str(value).rstrip("s"))

    def _settle(self, session: _Session) -> _Session:
        """Advance a session to where the clock says it is now."""
        now = self.now
        execution = session.message.get("environmentConfig", {}).get("executionConfig", {})
        idle_ttl = self._seconds(execution.get("idleTtl"), self.timeline.default_idle_ttl)
        ttl = self._seconds(execution.get("ttl"), self.timeline.default_ttl)
        script = session.script
        if session.state == "CREATING":
            if (
                script is not None
                and session.created + script.after <= now
                and script.after <= self.timeline.creating
            ):
                self._enter(session, script.state, script.reason, session.created + script.after)
                return session
            ready = session.created + self.timeline.creating
            if ready <= now:
                self._enter(session, "ACTIVE", "", ready)
        if session.state == "ACTIVE":
            ends: list[tuple[float, str, str]] = []
            if script is not None:
                ends.append((session.created + script.after, script.state, script.reason))
            ends.append(
                (
                    session.last_activity + idle_ttl,
                    "TERMINATING",
                    f"Session was idle for longer than its idle TTL of {int(idle_ttl)}s",
                )
            )
            ends.append(
                (
                    session.created + ttl,
                    "TERMINATING",
                    f"Session ran longer than its TTL of {int(ttl)}s",
                )
            )
            at, state, message = min(ends)
            if at <= now:
                self._enter(session, state, message, at)
                if state == "TERMINATING":
                    session.terminate_done = at + self.timeline.terminating
        if (
            session.state == "TERMINATING"
            and session.terminate_done is not None
            and session.terminate_done <= now
        ):
            self._enter(session, "TERMINATED", session.state_message, session.terminate_done)
        return session

    def _timestamp(self, seconds: float) -> str:
        moment = self.emulator.clock.now() - timedelta(seconds=self.now - seconds)
        return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")

    def _message(self, session: _Session) -> dataproc_v1.Session:
        record: dict[str, Any] = dict(session.message)
        record.update(
            {
                "name": session.name,
                "uuid": session.uuid,
                "createTime": self._timestamp(session.created),
                "state": session.state,
                "stateMessage": session.state_message,
                "stateTime": self._timestamp(session.state_since),
                "creator": "sessionkit-emulator@sessionkit.invalid",
                "stateHistory": [
                    {"state": state, "stateStartTime": self._timestamp(since)}
                    for state, since in session.history
                ],
            }
        )
        runtime: dict[str, Any] = {}
        if session.state == "ACTIVE":
            region = session.name.split("/")[3]
            endpoints = {}
            if "sparkConnectSession" in record:
                endpoints["Spark Connect Server"] = self.endpoint_url or (
                    f"https://{session.uuid}-dot-{region}.dataproc.emulator.invalid/gateway"
                )
            else:
                endpoints["Jupyter Kernel Gateway"] = (
                    f"https://{session.uuid}-dot-{region}.dataproc.emulator.invalid/gateway"
                )
            runtime["endpoints"] = endpoints
        if session.state in _ENDED and session.active_since is not None:
            ran = (session.ended or self.now) - session.active_since
            runtime["approximateUsage"] = {
                "milliDcuSeconds": str(int(ran * self.timeline.dcus * 1000)),
                "shuffleStorageGbSeconds": str(int(ran * self.timeline.shuffle_gb)),
                "updateTime": self._timestamp(session.ended or self.now),
            }
        if runtime:
            record["runtimeInfo"] = runtime
        # Built through the proto: an answer outside the API cannot be produced.
        message: dataproc_v1.Session = dataproc_v1.Session.from_json(
            json.dumps(record), ignore_unknown_fields=False
        )
        return message

    def _operation(
        self, session: _Session, kind: str, done: bool = False, name: str | None = None
    ) -> dict[str, Any]:
        project, _, region = session.name.split("/")[1:4]
        metadata = dataproc_v1.SessionOperationMetadata(
            session=session.name,
            session_uuid=session.uuid,
            operation_type=kind,
            description=f"{kind.title()} session",
            labels=session.message.get("labels", {}),
        )
        packed = any_pb2.Any()
        packed.Pack(dataproc_v1.SessionOperationMetadata.pb(metadata))
        if name is None:
            name = f"projects/{project}/regions/{region}/operations/{self.emulator.new_id(32)}"
            self._operations[name] = (session.name, kind)
        operation = operations_pb2.Operation(name=name, metadata=packed, done=done)
        if done and kind == "CREATE":
            operation.response.Pack(dataproc_v1.Session.pb(self._message(session)))
        result: dict[str, Any] = json.loads(json_format.MessageToJson(operation))
        return result

    # -- operations -----------------------------------------------------------------------------

    def op_create_session(self, params: dict[str, Any]) -> dict[str, Any]:
        """``POST /v1/{parent}/sessions?sessionId=&requestId=`` with a Session body."""
        parent = f"projects/{params['project']}/locations/{params['region']}"
        session_id = params["query"].get("sessionId", "")
        request_id = params["query"].get("requestId", "")
        if not re.fullmatch(r"[a-z0-9-]{4,63}", session_id):
            raise EmulatedError(
                "INVALID_ARGUMENT", "session_id must be 4-63 characters of [a-z0-9-]", 400
            )
        if request_id and not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", request_id):
            raise EmulatedError("INVALID_ARGUMENT", "request_id is malformed", 400)
        body = params["body"]
        try:
            message = dataproc_v1.Session.from_json(json.dumps(body), ignore_unknown_fields=False)
        except (json_format.ParseError, ValueError) as exc:
            raise EmulatedError("INVALID_ARGUMENT", f"Invalid JSON payload: {exc}", 400) from exc
        self._check(message)
        name = f"{parent}/sessions/{session_id}"
        if request_id and request_id in self._requests and self.timeline.honor_request_id:
            # The same request again: ignored, the first session stands.
            return self._operation(self._find(self._requests[request_id]), "CREATE")
        for existing in self._sessions.values():
            if existing.name == name and not existing.deleted:
                raise EmulatedError("ALREADY_EXISTS", f"Session already exists: {name}", 409)
        session = _Session(
            name=name,
            uuid=self._uuid(),
            message=json_format.MessageToDict(dataproc_v1.Session.pb(message)),
            request_id=request_id,
            created=self.now,
            state_since=self.now,
            last_activity=self.now,
            script=self._next_script(),
        )
        self._sessions[name] = session
        if request_id:
            self._requests[request_id] = name
        self._created += 1
        return self._operation(session, "CREATE")

    def _check(self, message: dataproc_v1.Session) -> None:
        execution = message.environment_config.execution_config
        for field, value in (("idle_ttl", execution.idle_ttl), ("ttl", execution.ttl)):
            if value and not timedelta(minutes=10) <= value <= timedelta(days=14):
                raise EmulatedError(
                    "INVALID_ARGUMENT", f"{field} must be between 10 minutes and 14 days", 400
                )
        if len(message.labels) > 32:
            raise EmulatedError("INVALID_ARGUMENT", "at most 32 labels are allowed", 400)
        for key, value in message.labels.items():
            if not re.fullmatch(r"[a-z][a-z0-9_-]{0,62}", key) or not re.fullmatch(
                r"[a-z0-9_-]{0,63}", value
            ):
                raise EmulatedError("INVALID_ARGUMENT", f"invalid label {key!r}", 400)
        account = execution.service_account
        if account and "@" not in account:
            raise EmulatedError("INVALID_ARGUMENT", "service_account must be an e-mail", 400)

    def _uuid(self) -> str:
        raw = self.emulator.new_id(32)
        return f"{raw[:8]}-{raw[8:12]}-{raw[12:16]}-{raw[16:20]}-{raw[20:]}"

    def op_get_session(self, params: dict[str, Any]) -> dict[str, Any]:
        """``GET /v1/{name}``."""
        session = self._settle(self._find(self._name(params)))
        return self._dump(self._message(session), params)

    def op_list_sessions(self, params: dict[str, Any]) -> dict[str, Any]:
        """``GET /v1/{parent}/sessions?pageSize=&pageToken=&filter=``."""
        parent = f"projects/{params['project']}/locations/{params['region']}/sessions/"
        query = params["query"]
        matches = self._filter(query.get("filter", ""))
        size = int(query.get("pageSize") or 100)
        if size < 1:
            size = 100
        size = min(size, self.timeline.max_page_size)
        listed = [
            self._settle(s)
            for s in sorted(self._sessions.values(), key=lambda s: (s.created, s.name))
            if s.name.startswith(parent) and not s.deleted
        ]
        listed = [s for s in listed if matches(s)]
        chunk, token = page(listed, query.get("pageToken") or None, size)
        response = dataproc_v1.ListSessionsResponse(
            sessions=[self._message(s) for s in chunk], next_page_token=token or ""
        )
        return self._dump(response, params)

    def _filter(self, expression: str) -> Any:
        """A predicate for an AIP-160 filter of ANDed clauses of ORed comparisons."""
        clauses: list[Any] = []
        for clause in re.split(r"\s+AND\s+", expression.strip(), flags=re.IGNORECASE):
            clause = clause.strip()
            if not clause:
                continue
            if clause.startswith("(") and clause.endswith(")"):
                clause = clause[1:-1]
            alternatives = [
                _term(term.strip()) for term in re.split(r"\s+OR\s+", clause, flags=re.I)
            ]
            clauses.append(alternatives)
        return lambda s: all(any(alt(s) for alt in alts) for alts in clauses)

    def op_terminate_session(self, params: dict[str, Any]) -> dict[str, Any]:
        """``POST /v1/{name}:terminate``; terminating an ended session changes nothing."""
        session = self._settle(self._find(self._name(params)))
        if session.state in ("CREATING", "ACTIVE"):
            self._enter(session, "TERMINATING", "Session termination requested by user")
            session.terminate_done = self.now + self.timeline.terminating
        return self._operation(session, "TERMINATE")

    def op_delete_session(self, params: dict[str, Any]) -> dict[str, Any]:
        """``DELETE /v1/{name}``: terminates a live session first, then removes its record."""
        session = self._settle(self._find(self._name(params)))
        if session.state not in _ENDED:
            self._enter(session, "TERMINATED", "Session deleted")
        operation = self._operation(session, "DELETE", done=True)
        session.deleted = True
        return operation

    def op_get_operation(self, params: dict[str, Any]) -> dict[str, Any]:
        """``GET /v1/{name}`` of an operation: a create is done once the session left CREATING."""
        name = f"projects/{params['project']}/regions/{params['region']}/operations/{params['op']}"
        if name not in self._operations:
            raise EmulatedError("NOT_FOUND", f"Operation not found: {name}", 404)
        session_name, kind = self._operations[name]
        session = self._settle(self._find(session_name))
        done = session.state != "CREATING" if kind == "CREATE" else session.state in _ENDED
        return self._operation(session, kind, done=done or session.deleted, name=name)

    def _name(self, params: Mapping[str, Any]) -> str:
        return (
            f"projects/{params['project']}/locations/{params['region']}/sessions/"
            f"{params['session']}"
        )

    def _dump(self, message: Any, params: Mapping[str, Any]) -> dict[str, Any]:
        integers = "enum-encoding=int" in params["query"].get("$alt", "")
        # Only fields with a value, as the service sends them.
        result: dict[str, Any] = json_format.MessageToDict(
            type(message).pb(message), use_integers_for_enums=integers
        )
        return result


def _term(term: str) -> Callable[[_Session], bool]:
    """A predicate for one comparison of a ListSessions filter."""
    if m := _FILTER_STATE.fullmatch(term):
        state = m.group(1)
        if state not in dataproc_v1.Session.State.__members__:
            raise EmulatedError("INVALID_ARGUMENT", f"unknown state {state}", 400)
        return lambda s: s.state == state
    if m := _FILTER_LABEL.fullmatch(term):
        key, value = m.group(1), m.group(2)
        return lambda s: bool(s.message.get("labels", {}).get(key) == value)
    if m := _FILTER_ID.fullmatch(term):
        suffix = f"/sessions/{m.group(1)}"
        return lambda s: s.name.endswith(suffix)
    raise EmulatedError("INVALID_ARGUMENT", f"unsupported filter: {term!r}", 400)


# ----------------------------------------------------------------------------- the wire


class LostAnswer(Exception):
    """The service processed the request, and its answer was lost (an injected fault)."""


def answer(
    emulator: Emulator,
    method: str,
    path: str,
    query: Mapping[str, str] | str,
    headers: Mapping[str, str],
    body: bytes | str | None,
) -> tuple[int, dict[str, str], bytes]:
    """Answer one HTTP request to the Dataproc API the way the service would.

    Args:
        emulator: The emulator whose clock, faults and call log to use.
        method: The HTTP method.
        path: The URL path, e.g. ``/v1/projects/p/locations/r/sessions``.
        query: The query string, or its decoded mapping.
        headers: The request headers.
        body: The request body.

    Returns:
        The status, the response headers and the JSON body.

    Raises:
        ConnectionResetError: For an injected connection error (drop the connection).
        LostAnswer: For an injected lost answer, after the request was processed.
    """
    # One lock for the whole call, as for the AWS services: fault dice, the call log and the
    # state machine stay consistent under threads.
    with emulator._lock:
        return _answer(emulator, method, path, query, body)


def _answer(
    emulator: Emulator,
    method: str,
    path: str,
    query: Mapping[str, str] | str,
    body: bytes | str | None,
) -> tuple[int, dict[str, str], bytes]:
    service: DataprocService = emulator.service("dataproc")  # type: ignore[assignment]
    if isinstance(query, str):
        query = dict(parse_qsl(query, keep_blank_values=True))
    operation, route = _route(method.upper(), path)
    at = emulator.clock.monotonic()
    if isinstance(body, bytes):
        body = body.decode()
    try:
        decoded = json.loads(body) if body else {}
    except ValueError:
        return _error_response(
            emulator,
            operation,
            at,
            {},
            EmulatedError("INVALID_ARGUMENT", "Invalid JSON payload received", 400),
        )
    params: dict[str, Any] = {**route, "query": dict(query), "body": decoded}

    def log(outcome: str) -> None:
        emulator.record("dataproc", operation, at, params, outcome)

    lose = False
    for fault in list(emulator.faults):
        if not fault.matches("dataproc", operation) or not fault.fires(emulator.rng):
            continue
        if fault.kind == "latency":
            emulator.clock.sleep(fault.latency)
        elif fault.kind == "connection_error":
            log("connection_error")
            raise ConnectionResetError("connection reset (injected)")
        elif fault.kind == "read_timeout":
            lose = True
        elif fault.kind == "throttle":
            return _error_response(
                emulator,
                operation,
                at,
                params,
                EmulatedError("RESOURCE_EXHAUSTED", "Quota exceeded (injected)", 429),
            )
        else:
            return _error_response(
                emulator,
                operation,
                at,
                params,
                EmulatedError(
                    "UNAVAILABLE", "The service is currently unavailable (injected)", 503
                ),
            )
    try:
        if operation == "Unknown":
            raise EmulatedError("NOT_FOUND", f"no such method: {method} {path}", 404)
        result = service.handler(operation)(params)
    except EmulatedError as error:
        return _error_response(emulator, operation, at, params, error)
    if lose:
        log("read_timeout")
        raise LostAnswer(f"{operation}: the answer was lost (injected)")
    log("ok")
    return 200, {"Content-Type": "application/json; charset=UTF-8"}, json.dumps(result).encode()


def _route(method: str, path: str) -> tuple[str, dict[str, str]]:
    for verb, pattern, operation in _ROUTES:
        match = pattern.fullmatch(path)
        if verb == method and match:
            return operation, match.groupdict()
    return "Unknown", {}


def _error_response(
    emulator: Emulator, operation: str, at: float, params: dict[str, Any], error: EmulatedError
) -> tuple[int, dict[str, str], bytes]:

    emulator.record("dataproc", operation, at, params, error.code)
    status = _HTTP_STATUS.get(error.code, error.status)
    payload = {"error": {"code": status, "message": error.message, "status": error.code}}
    return status, {"Content-Type": "application/json; charset=UTF-8"}, json.dumps(payload).encode()


class _Adapter(requests.adapters.BaseAdapter):
    """A ``requests`` transport adapter that hands every request to :func:`answer`."""

    def __init__(self, emulator: Emulator) -> None:
        super().__init__()
        self._emulator = emulator

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: Any = True,
        cert: Any = None,
        proxies: Any = None,
    ) -> requests.Response:
        service: DataprocService = self._emulator.service("dataproc")  # type: ignore[assignment]
        service.timeouts.append(timeout)
        url = urlsplit(request.url or "")
        try:
            status, headers, body = answer(
                self._emulator,
                request.method or "GET",
                url.path,
                url.query,
                {str(k): str(v) for k, v in request.headers.items()},
                request.body,  # type: ignore[arg-type]
            )
        except ConnectionResetError as exc:
            raise requests.exceptions.ConnectionError(str(exc), request=request) from exc
        except LostAnswer as exc:
            raise requests.exceptions.ReadTimeout(str(exc), request=request) from exc
        response = requests.Response()
        response.status_code = status
        response.headers = requests.structures.CaseInsensitiveDict(headers)
        response._content = body
        response.encoding = "utf-8"
        response.url = request.url or ""
        response.request = request
        response.reason = "OK" if status < 300 else "Error"
        return response

    def close(self) -> None:
        """Nothing to release."""


def client(emulator: Emulator) -> dataproc_v1.SessionControllerClient:
    """A real ``SessionControllerClient`` (REST transport) whose requests ``emulator`` answers.

    Anonymous credentials; the client's own retries are not used by sessionkit (it passes
    ``retry=None``), so injected faults reach the caller exactly as counted.
    """
    from google.auth.credentials import AnonymousCredentials
    from google.cloud.dataproc_v1.services.session_controller.transports.rest import (
        SessionControllerRestTransport,
    )

    transport = SessionControllerRestTransport(host=HOST, credentials=AnonymousCredentials())  # type: ignore[no-untyped-call,unused-ignore]
    # The transport's HTTP session is a requests.Session (google.auth's AuthorizedSession);
    # mounting an adapter for the emulator host keeps everything above the socket real.
    adapter = _Adapter(emulator)
    transport._session.mount(HOST, adapter)
    # Operations (``operation.done()``, ``.result()``) go through a client of their own.
    operations: Any = transport.operations_client
    operations._transport._session.mount(HOST, adapter)
    return dataproc_v1.SessionControllerClient(transport=transport)


def wiring_keywords(emulator: Emulator, location: str) -> dict[str, Any]:
    """The keywords of a backend pointed at ``emulator``: a project named after ``location``."""
    project = re.sub(r"[^a-z0-9-]", "-", location.lower()).strip("-") or "sessionkit-local"
    if not re.match(r"[a-z]", project):
        project = f"p-{project}"
    project = project[:30].rstrip("-").ljust(6, "0")
    return {"client": client(emulator), "project": project, "region": "europe-west1"}


def wiring_role(emulator: Emulator) -> str:
    """A service account the emulated service accepts."""
    return "sessionkit-local@sessionkit-local.iam.gserviceaccount.com"

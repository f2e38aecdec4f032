"""Apache Livy interactive sessions (Azure Synapse, Microsoft Fabric, HDInsight, EMR, on-premises).

Reads top to bottom: the state tables, the request translation, the response translation, the
one ``_call`` every request goes through, and the few calls the backend makes.

Livy's REST API (``docs/rest-api.md`` of apache/incubator-livy, the JSON field names from its
server source): ``POST/GET/DELETE /sessions``, ``GET /sessions?from=&size=``,
``GET /sessions/{id}/log``, ``POST/GET /sessions/{id}/statements``,
``POST /sessions/{id}/statements/{sid}/cancel`` and ``GET /version``.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import uuid
import weakref
from collections import OrderedDict
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from http import HTTPStatus
from typing import Any, ClassVar, Literal

import attrs
import httpx

from sessionkit.backends.base import Backend, Capabilities, PreparedStart, malformed
from sessionkit.backends.livy.auth import to_httpx_auth
from sessionkit.errors import InvalidConfigError, ServiceError, ThrottledError
from sessionkit.models import SessionConfig, SessionInfo, StatementResult, redact_text
from sessionkit.redaction import install_log_redaction
from sessionkit.states import SessionState, StatementState, normalize_state
from sessionkit.waiting import ReadyPrior

__all__ = [
    "DEFAULT_KIND",
    "STATEMENT_STATES",
    "STATE_MAP",
    "LivyBackend",
    "build_create_request",
    "format_duration",
    "session_info",
    "statement_result",
]

logger = logging.getLogger(__name__)

#: The loggers of httpx and its transport, whose DEBUG records carry request lines and headers.
_LOG_ROOTS = ("httpx", "httpcore")

# ----------------------------------------------------------------------------- states

#: Livy ``SessionState`` (core/.../sessions/SessionState.scala) to the common state.
STATE_MAP: Mapping[str, SessionState] = {
    "not_started": SessionState.PENDING,
    "starting": SessionState.STARTING,
    "recovering": SessionState.STARTING,
    "idle": SessionState.READY,
    "busy": SessionState.BUSY,
    "running": SessionState.BUSY,
    "shutting_down": SessionState.STOPPING,
    "killed": SessionState.STOPPED,
    "success": SessionState.STOPPED,
    "error": SessionState.FAILED,
    "dead": SessionState.FAILED,
}

#: Livy statement states to the common statement state (``available`` with an ``error`` output
#: is FAILED, decided in :func:`statement_result`).
STATEMENT_STATES: Mapping[str, StatementState] = {
    "waiting": StatementState.PENDING,
    "running": StatementState.RUNNING,
    "available": StatementState.SUCCEEDED,
    "error": StatementState.FAILED,
    "cancelling": StatementState.CANCELLING,
    "cancelled": StatementState.CANCELLED,
}

#: The session kind sent unless ``options={"kind": ...}`` says otherwise.
DEFAULT_KIND = "pyspark"

#: The prefix of the names sessionkit generates; Livy has no tags, so the name marks the
#: sessions sessionkit started (DESIGN section 7).
NAME_PREFIX = "sessionkit-"

#: ``connect`` 5 s, everything else 20 s: sessionkit does the retrying (DESIGN section 5).
TIMEOUT = httpx.Timeout(20.0, connect=5.0)

#: The CSRF header Livy demands on state-changing requests when CSRF protection is on.
CSRF_HEADER = "X-Requested-By"

#: How many sessions one ``GET /sessions`` page asks for.
PAGE_SIZE = 100

#: How many log lines ``GET /sessions/{id}/log`` reads for a failure reason, and how many of
#: the last meaningful ones the reason keeps.
LOG_LINES = 50
REASON_LINES = 5

IdleTimeoutMode = Literal["auto", "idle_timeout", "heartbeat"]
_MODES = ("auto", "idle_timeout", "heartbeat")

_DEFAULT_IDLE_TIMEOUT = timedelta(minutes=60)

#: Which SessionConfig field produced each request key (for error messages).
_FIELDS = {
    "name": "name",
    "proxyUser": "role",
    "idleTimeout": "idle_timeout",
    "heartbeatTimeoutInSecond": "idle_timeout",
    "ttl": "max_duration",
    "conf": "spark_conf",
    "numExecutors": "workers",
}

# ----------------------------------------------------------------------------- requests


def format_duration(value: timedelta) -> str:
    """A duration in Livy's form (``ClientConf.getTimeAsMs``): whole minutes, rounded up.

    Examples: 30 minutes is ``"30m"``, 90 seconds is ``"2m"``.
    """
    return f"{max(1, math.ceil(value.total_seconds() / 60 - 1e-9))}m"


def _idle_timeout(config: SessionConfig) -> timedelta:
    if config.idle_timeout is not None:
        return config.idle_timeout
    import sessionkit

    default: timedelta = getattr(sessionkit, "DEFAULT_IDLE_TIMEOUT", _DEFAULT_IDLE_TIMEOUT)
    return default


def generated_name(*, tagged: bool, now: datetime | None = None) -> str:
    """A unique session name; tagged: ``sessionkit-<epoch seconds>-<random>`` (DESIGN 7).

    Livy has no tags and reports no creation time, so the name carries both sessionkit's mark
    and when the session was created, which is what ``sweep_sessions`` reads back.
    """
    if not tagged:
        return f"session-{uuid.uuid4().hex}"
    stamp = int((now or datetime.now(timezone.utc)).timestamp())
    return f"{NAME_PREFIX}{stamp}-{uuid.uuid4().hex[:16]}"


#: A name :func:`generated_name` made with the mark: its group is the creation time.
_STAMPED_NAME = re.compile(rf"{NAME_PREFIX}(\d{{9,11}})-[0-9a-f]{{16}}")


def _stamped_time(name: Any) -> datetime | None:
    """The creation time a generated name carries (Livy itself reports none)."""
    match = _STAMPED_NAME.fullmatch(name) if isinstance(name, str) else None
    if match is None:
        return None
    try:
        return datetime.fromtimestamp(int(match.group(1)), timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None


def build_create_request(
    config: SessionConfig, *, heartbeat: bool = False, now: datetime | None = None
) -> tuple[dict[str, Any], dict[str, str]]:
    """Translate a configuration into the body of ``POST /sessions``.

    Args:
        config: The session configuration.
        heartbeat: Send the idle timeout as ``heartbeatTimeoutInSecond`` (servers before Livy
            0.9, which have no ``idleTimeout``) instead of ``idleTimeout``.
        now: The current time, stamped into a generated name (default: the system clock).

    Returns:
        The body, and which field produced each key.

    Raises:
        InvalidConfigError: For values Livy cannot take.
    """
    fields = dict(_FIELDS)
    options = dict(config.options)
    body: dict[str, Any] = {
        "kind": options.pop("kind", DEFAULT_KIND),
        "name": config.name
        if config.name is not None
        else generated_name(tagged=config.sessionkit_tags, now=now),
    }
    if not isinstance(body["kind"], str) or not body["kind"]:
        raise InvalidConfigError("options", "options['kind'] must be a Livy session kind string")
    fields["kind"] = "options"
    if config.role is not None:
        body["proxyUser"] = config.role
    own_idle = {"idleTimeout", "heartbeatTimeoutInSecond"} & set(options)
    if own_idle and config.idle_timeout is not None:
        raise InvalidConfigError(
            "idle_timeout",
            f"also given as options[{sorted(own_idle)[0]!r}]; give the idle timeout once",
        )
    if not own_idle:
        # The service's own key in options replaces sessionkit's default idle timeout.
        idle = _idle_timeout(config)
        if heartbeat:
            body["heartbeatTimeoutInSecond"] = max(1, math.ceil(idle.total_seconds() - 1e-9))
        else:
            body["idleTimeout"] = format_duration(idle)
    if config.max_duration is not None:
        body["ttl"] = format_duration(config.max_duration)
    if config.spark_conf:
        body["conf"] = dict(config.spark_conf)
    if config.workers is not None:
        if config.workers.type not in ("default", None):
            raise InvalidConfigError(
                "workers",
                f"the livy backend has no worker types (got {config.workers.type!r}): use "
                "Workers(count=N, type='default') and size executors with "
                "options={'executorCores': ..., 'executorMemory': ...}",
            )
        body["numExecutors"] = config.workers.count
    for key, value in options.items():
        if key in body and key != "conf":
            raise InvalidConfigError(
                "options",
                f"options[{key!r}] is what {fields.get(key, key)}= sets; give it as "
                f"{fields.get(key, key)}= only",
            )
        if key == "conf" and "conf" in body:
            if not isinstance(value, Mapping):
                raise InvalidConfigError("options", "options['conf'] must be a mapping")
            clash = sorted(set(value) & set(body["conf"]))
            if clash:
                raise InvalidConfigError(
                    "spark_conf", f"{clash[0]!r} is also in options['conf']; give it once"
                )
            body["conf"] = {**value, **body["conf"]}
            continue
        body[key] = value
        fields[key] = "options"
    return body, fields


# ----------------------------------------------------------------------------- responses

_DURATION = re.compile(r"(\d+)\s*(ms|s|m|min|h|d)?", re.IGNORECASE)
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, None: 1}


def _parse_duration(text: Any) -> timedelta | None:
    if not isinstance(text, str):
        return None
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        return None
    unit = match.group(2).lower() if match.group(2) else None
    return timedelta(seconds=int(match.group(1)) * _UNITS[unit])


def _millis(value: Any) -> datetime | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return datetime.fromtimestamp(value / 1000, tz=timezone.utc)
    return None


_INFO_FIELDS = frozenset(a.name for a in attrs.fields(SessionInfo))
_RESULT_FIELDS = frozenset(a.name for a in attrs.fields(StatementResult))
_LOG_MARKERS = ("stdout:", "stderr:", "yarn diagnostics:")


def failure_reason(lines: Any) -> str | None:
    """The last meaningful log lines of a failed session, as its reason."""
    if not isinstance(lines, list):
        return None
    kept = [
        str(line).strip()
        for line in lines
        if str(line).strip() and str(line).strip().lower() not in _LOG_MARKERS
    ]
    return redact_text("\n".join(kept[-REASON_LINES:])) or None


def session_info(record: Any, *, url: str, reason: str | None = None) -> SessionInfo:
    """Translate a Livy ``Session`` object into a :class:`SessionInfo`.

    Args:
        record: The session JSON.
        url: The Livy base URL (the session URL is ``{url}/sessions/{id}``).
        reason: The failure reason, when already known (from ``GET /sessions/{id}/log``).

    Raises:
        ServiceError: When the record is not a Livy session.
    """
    if not isinstance(record, Mapping) or "id" not in record:
        raise malformed("GetSession", "the Livy server's answer is not a session: no 'id'")
    native = str(record.get("state") or "")
    state = normalize_state(native, STATE_MAP, unknown=SessionState.UNKNOWN, source="livy")
    if reason is None and state is SessionState.FAILED:
        reason = failure_reason(record.get("log"))
    extra: dict[str, Any] = {}
    if "resource_name" in _INFO_FIELDS:
        extra["resource_name"] = f"{url}/sessions/{record['id']}"
    idle = _parse_duration(record.get("idleTimeout"))
    if idle is None and record.get("heartbeatTimeoutInSecond"):
        heartbeat = record["heartbeatTimeoutInSecond"]
        idle = timedelta(seconds=heartbeat) if isinstance(heartbeat, int) else None
    return SessionInfo(
        id=str(record["id"]),
        backend=LivyBackend.name,
        state=state,
        native_state=native,
        reason=reason,
        name=record.get("name") or None,
        created_at=_stamped_time(record.get("name")),
        idle_timeout=idle,
        raw=dict(record),
        **extra,
    )


def statement_result(record: Any) -> StatementResult:
    """Translate a Livy ``Statement`` object into a :class:`StatementResult`.

    Raises:
        ServiceError: When the record is not a Livy statement.
    """
    if not isinstance(record, Mapping) or "id" not in record:
        raise malformed("GetStatement", "the Livy server's answer is not a statement: no 'id'")
    native = str(record.get("state") or "")
    state = normalize_state(
        native, STATEMENT_STATES, unknown=StatementState.UNKNOWN, source="livy statement"
    )
    output = record.get("output") or {}
    if not isinstance(output, Mapping):
        output = {}
    failed = str(output.get("status", "")).lower() == "error"
    if state is StatementState.SUCCEEDED and failed:
        state = StatementState.FAILED
    data = output.get("data") or {}
    text = None
    if isinstance(data, Mapping):
        text = data.get("text/plain")
        if text is None and "application/json" in data:
            text = json.dumps(data["application/json"])
    extra: dict[str, Any] = {}
    progress = record.get("progress")
    if "progress" in _RESULT_FIELDS and isinstance(progress, (int, float)):
        extra["progress"] = float(progress)
    traceback = output.get("traceback") or []
    lines: Any = [str(line) for line in traceback] if isinstance(traceback, list) else []
    return StatementResult(
        id=str(record["id"]),
        state=state,
        output=None if text is None else str(text),
        error_name=output.get("ename") if failed else None,
        error_value=output.get("evalue") if failed else None,
        traceback=lines,
        started_at=_millis(record.get("started")),
        completed_at=_millis(record.get("completed")),
        raw=dict(record),
        **extra,
    )


# ----------------------------------------------------------------------------- deleted sessions

#: Livy forgets a session once DELETE returns (``SessionManager.delete``), so a later GET is a
#: 404. Sessions this process deleted are remembered (bounded) so that 404 reads as STOPPED.
_DELETED: OrderedDict[tuple[str, str], None] = OrderedDict()
_DELETED_LOCK = threading.Lock()
_DELETED_MAX = 4096


def _remember_deleted(url: str, session_id: str) -> None:
    with _DELETED_LOCK:
        _DELETED[(url, session_id)] = None
        _DELETED.move_to_end((url, session_id))
        while len(_DELETED) > _DELETED_MAX:
            _DELETED.popitem(last=False)


def _was_deleted(url: str, session_id: str) -> bool:
    with _DELETED_LOCK:
        return (url, session_id) in _DELETED


# ----------------------------------------------------------------------------- heartbeat


class _Heartbeat:
    """Keeps a ``heartbeatTimeoutInSecond`` session alive while its backend is in use.

    Livy counts every ``/sessions/{id}`` request as a heartbeat (``SessionHeartbeatNotifier``)
    and kills a session whose heartbeats stop for ``heartbeatTimeoutInSecond``. A daemon thread
    sends ``GET /sessions/{id}`` every third of that; it ends when the session is stopped, ends
    or vanishes, when the backend (and so its Session) is garbage collected, or when the process
    exits, after which the server kills the orphaned session.
    """

    def __init__(self, backend: LivyBackend, session_id: str, interval: float) -> None:
        self.session_id = session_id
        self.interval = interval
        self.beats = 0
        self._backend = weakref.ref(backend)
        self._stopped = threading.Event()
        self._thread = threading.Thread(
            target=self._loop, name=f"sessionkit-livy-heartbeat-{session_id}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()

    @property
    def running(self) -> bool:
        return self._thread.is_alive() and not self._stopped.is_set()

    def beat(self) -> bool:
        """Send one heartbeat; return whether to keep beating."""
        backend = self._backend()
        if backend is None or self._stopped.is_set():
            return False
        try:
            info = backend._describe(self.session_id)
        except ServiceError as exc:
            return exc.retryable
        self.beats += 1
        return not info.state.is_terminal

    def _loop(self) -> None:
        while not self._stopped.wait(self.interval):
            if not self.beat():
                break
        self._stopped.set()


# ----------------------------------------------------------------------------- the backend


class LivyBackend(Backend):
    """Apache Livy interactive sessions over its REST API (``httpx``).

    Args:
        url: The Livy base URL (``https://host:8998``, a Synapse pool's or a Fabric lakehouse's
            Livy URL, HDInsight's ``https://{cluster}.azurehdinsight.net/livy``).
        client: An ``httpx.Client`` to send requests with (default: one with 5 s connect and
            20 s read timeouts, built from ``verify``).
        auth: An ``httpx.Auth`` (see :mod:`sessionkit.backends.livy.auth`), a ``(user,
            password)`` pair, or a callable returning headers, called for every request.
        headers: Extra headers for every request.
        verify: TLS verification for the client sessionkit builds (``True``, ``False``, a CA
            bundle path or an ``ssl.SSLContext``).
        idle_timeout_mode: How ``idle_timeout`` reaches the server: ``"idle_timeout"`` sends
            ``idleTimeout`` (Livy 0.9+); ``"heartbeat"`` sends ``heartbeatTimeoutInSecond`` and
            keeps a heartbeat while the Session is in use (older servers); ``"auto"`` (default)
            asks ``GET /version`` first (see the docs page for the rule).
    """

    name: ClassVar[str] = "livy"
    connection_fields: ClassVar[tuple[str, ...]] = ("client", "auth", "headers", "verify")
    location_fields: ClassVar[tuple[str, ...]] = ("url",)
    extra_fields: ClassVar[tuple[str, ...]] = ("idle_timeout_mode",)
    cli_fields: ClassVar[tuple[str, ...]] = ("url",)
    capabilities: ClassVar[Capabilities] = Capabilities(statements=True)
    supported_fields: ClassVar[frozenset[str]] = frozenset(
        {"name", "role", "idle_timeout", "max_duration", "spark_conf", "workers"}
    )
    state_map: ClassVar[Mapping[str, SessionState]] = STATE_MAP
    #: A YARN or Kubernetes scheduler launches the driver: ready within ~15-90 s.
    ready_prior: ClassVar[ReadyPrior] = ReadyPrior.between(15.0, 90.0)

    def __init__(
        self,
        *,
        url: str,
        client: httpx.Client | None = None,
        auth: Any = None,
        headers: Mapping[str, str] | None = None,
        verify: Any = True,
        idle_timeout_mode: IdleTimeoutMode = "auto",
    ) -> None:
        if not isinstance(url, str) or not re.match(r"https?://[^/\s]+", url):
            raise InvalidConfigError(
                "url", f"must be the Livy base URL, like 'https://host:8998', got {url!r}"
            )
        if client is not None and not isinstance(client, httpx.Client):
            raise InvalidConfigError(
                "client", f"must be an httpx.Client, got {type(client).__name__}"
            )
        if headers is not None and (
            not isinstance(headers, Mapping)
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items())
        ):
            raise InvalidConfigError("headers", "must be a mapping of str to str")
        if idle_timeout_mode not in _MODES:
            raise InvalidConfigError(
                "idle_timeout_mode",
                f"must be one of {', '.join(_MODES)}, got {idle_timeout_mode!r}",
            )
        if client is not None and verify is not True:
            raise InvalidConfigError(
                "verify",
                "applies to the client sessionkit builds; with client= set TLS verification on "
                "your httpx.Client instead",
            )
        self.url = url.rstrip("/")
        #: The URL as shown in messages, logs and resource names: without any user:password@.
        self.display_url = re.sub(r"^(https?://)[^/@]*@", r"\1", self.url)
        self._auth = to_httpx_auth(auth)
        self._headers = dict(headers or {})
        self._client = client if client is not None else httpx.Client(verify=verify)
        install_log_redaction(_LOG_ROOTS)
        self.idle_timeout_mode: IdleTimeoutMode = idle_timeout_mode
        #: Decided by the ``auto`` probe: whether this server takes ``idleTimeout``.
        self._heartbeat_mode = idle_timeout_mode == "heartbeat"
        #: The statement kind of each session seen (Livy 0.5+ sessions run any kind).
        self._kinds: dict[str, str] = {}
        self._heartbeats: dict[str, _Heartbeat] = {}
        #: Names whose create was sent and whose outcome is unknown (the answer was lost).
        self._maybe_created: set[str] = set()

    def __repr__(self) -> str:
        return f"<LivyBackend url={self.display_url!r}>"

    @property
    def location(self) -> Mapping[str, Any]:
        """The server URL without any ``user:password@`` (a ``SessionRef`` carries no secret)."""
        return {"url": self.display_url}

    def _timeout(self) -> httpx.Timeout:
        """Socket timeouts of one attempt, fitted into the caller's call deadline."""
        policy = self.poll_policy
        if policy is None:
            return TIMEOUT
        half = max(0.1, policy.call_deadline.total_seconds() / 2)
        return httpx.Timeout(min(20.0, half), connect=min(5.0, half))

    def attempt_timeout(self) -> float:
        """The longest one attempt can block: its connect plus its read timeout."""
        timeout = self._timeout()
        return float(timeout.connect or 0) + float(timeout.read or 0)

    # -- the one call ------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        *,
        operation: str,
        params: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> Any:
        """Send one request; translate every failure into a sessionkit error.

        Raises:
            ThrottledError: On 429 and 503.
            ServiceError: On every other failure (``retryable`` for 5xx, timeouts and
                connection errors; not for 4xx or a malformed answer).
        """
        headers = {"Accept": "application/json", CSRF_HEADER: "sessionkit", **self._headers}
        try:
            response = self._client.request(
                method,
                f"{self.url}{path}",
                params=dict(params) if params else None,
                json=dict(body) if body is not None else None,
                headers=headers,
                auth=self._auth if self._auth is not None else httpx.USE_CLIENT_DEFAULT,
                timeout=self._timeout(),
            )
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            # No connection: the request was never sent.
            raise ServiceError(
                f"livy {operation} ({method} {path}) could not connect to {self.display_url}: "
                f"{type(exc).__name__}",
                code="ConnectFailed",
                retryable=True,
                operation=operation,
            ) from exc
        except httpx.TimeoutException as exc:
            raise ServiceError(
                f"livy {operation} ({method} {path}) timed out: {type(exc).__name__}",
                code="Timeout",
                retryable=True,
                operation=operation,
            ) from exc
        except httpx.TransportError as exc:
            raise ServiceError(
                f"livy {operation} ({method} {path}) could not reach {self.display_url}: "
                f"{type(exc).__name__}",
                code="ConnectionError",
                retryable=True,
                operation=operation,
            ) from exc
        except httpx.HTTPError as exc:
            raise ServiceError(
                f"livy {operation} ({method} {path}) failed: {type(exc).__name__}",
                code="HTTPError",
                operation=operation,
            ) from exc
        request_id = (
            response.headers.get("x-ms-request-id")
            or response.headers.get("x-request-id")
            or response.headers.get("x-ms-activity-id")
        )
        if response.status_code >= 400:
            self._raise_for_status(response, method, path, operation, request_id)
        if response.status_code == 204 or not response.content:
            return {}
        try:
            return response.json()
        except ValueError as exc:
            raise ServiceError(
                f"livy {operation} ({method} {path}) answered {response.status_code} with a "
                "body that is not JSON",
                code="MalformedResponse",
                request_id=request_id,
                operation=operation,
            ) from exc

    @staticmethod
    def _raise_for_status(
        response: httpx.Response, method: str, path: str, operation: str, request_id: str | None
    ) -> None:
        status = response.status_code
        try:
            code = HTTPStatus(status).phrase.replace(" ", "").replace("-", "")
        except ValueError:
            code = f"HTTP{status}"
        message = ""
        try:
            answer = response.json()
            if isinstance(answer, Mapping):
                message = str(answer.get("msg") or answer.get("message") or answer.get("error"))
        except ValueError:
            message = response.text[:200]
        text = redact_text(
            f"livy {operation} ({method} {path}) answered {status} {code}"
            f"{': ' + message if message else ''}"
        )
        cause = httpx.HTTPStatusError(text, request=response.request, response=response)
        if status in (429, 503):
            raise ThrottledError(
                text, code=code, request_id=request_id, retryable=True, operation=operation
            ) from cause
        raise ServiceError(
            text, code=code, request_id=request_id, retryable=status >= 500, operation=operation
        ) from cause

    # -- configuration -----------------------------------------------------------------------

    def prepare_start(self, config: SessionConfig) -> PreparedStart:
        """Translate and check the ``POST /sessions`` body; the name is what a retry looks for."""
        now = self.poll_policy.now() if self.poll_policy is not None else None
        body, _ = build_create_request(config, heartbeat=self._heartbeat_mode, now=now)
        return PreparedStart(
            config=config,
            request=body,
            token=str(body["name"]),
            preflight=self.idle_timeout_mode == "auto",
        )

    def _preflight(self, prepared: PreparedStart) -> None:
        """``auto`` mode: ``GET /version``; a Livy before 0.9 gets ``heartbeatTimeoutInSecond``.

        A server without ``/version`` (Livy 0.5 and earlier, Synapse, Fabric) is sent
        ``idleTimeout``; an old server that rejects that field makes :meth:`_start` fall back.
        """
        try:
            answer = self._call("GET", "/version", operation="GetVersion")
        except ServiceError as exc:
            # One look only: a server that cannot say gets idleTimeout, and _start falls back
            # to the heartbeat if it refuses that field.
            logger.debug("no version from the livy server at %s (%s)", self.display_url, exc.code)
            return
        version = answer.get("version") if isinstance(answer, Mapping) else None
        match = re.match(r"(\d+)\.(\d+)", str(version or ""))
        if match and (int(match.group(1)), int(match.group(2))) < (0, 9):
            logger.info(
                "livy %s at %s has no idleTimeout; keeping a heartbeat instead",
                version,
                self.display_url,
            )
            self._heartbeat_mode = True

    @staticmethod
    def _as_heartbeat(body: Mapping[str, Any]) -> dict[str, Any]:
        converted = dict(body)
        idle = _parse_duration(converted.pop("idleTimeout", None)) or _DEFAULT_IDLE_TIMEOUT
        converted["heartbeatTimeoutInSecond"] = int(idle.total_seconds())
        return converted

    # -- primitives ----------------------------------------------------------------------------

    def _find_by_name(self, name: str) -> SessionInfo | None:
        token: str | None = None
        while True:
            sessions, token = self._list_page(None, token)
            for info in sessions:
                if info.name == name and not info.state.is_terminal:
                    return info
            if token is None:
                return None

    def _start(self, prepared: PreparedStart, *, attempt: int) -> SessionInfo:
        name = prepared.token
        body = dict(prepared.request)
        if self._heartbeat_mode and "idleTimeout" in body:
            body = self._as_heartbeat(body)
        if attempt > 1 and name in self._maybe_created:
            # Livy has no idempotency key: an earlier attempt whose answer was lost may have
            # created the session, so look for it by its name before creating another.
            found = self._find_by_name(name)
            if found is not None:
                logger.info("adopting livy session %s named %s from a lost answer", found.id, name)
                self._started(found, body)
                return found
        try:
            record = self._create(name, body)
        except ServiceError as exc:
            unknown_field = exc.code == "BadRequest" and "idleTimeout" in str(exc)
            if not (unknown_field and self.idle_timeout_mode == "auto" and "idleTimeout" in body):
                raise
            # A server before Livy 0.9 refuses the unknown field (nothing was created).
            logger.info(
                "livy at %s refused idleTimeout; keeping a heartbeat instead", self.display_url
            )
            self._heartbeat_mode = True
            body = self._as_heartbeat(body)
            record = self._create(name, body)
        info = session_info(record, url=self.display_url)
        self._started(info, body)
        return info

    def _create(self, name: str, body: Mapping[str, Any]) -> Any:
        try:
            record = self._call("POST", "/sessions", operation="CreateSession", body=body)
        except ServiceError as exc:
            # Throttling and a refused connection prove nothing was created; a timeout, a reset
            # or a 5xx after sending do not.
            if (
                exc.retryable
                and not isinstance(exc, ThrottledError)
                and exc.code != "ConnectFailed"
            ):
                self._maybe_created.add(name)
            raise
        self._maybe_created.discard(name)
        return record

    def _started(self, info: SessionInfo, body: Mapping[str, Any]) -> None:
        self._kinds[info.id] = str(body.get("kind") or DEFAULT_KIND)
        timeout = body.get("heartbeatTimeoutInSecond")
        if isinstance(timeout, int) and timeout > 0 and info.id not in self._heartbeats:
            heartbeat = _Heartbeat(self, info.id, interval=max(1.0, timeout / 3))
            self._heartbeats[info.id] = heartbeat
            heartbeat.start()

    def _abandon(self, prepared: PreparedStart) -> None:
        if prepared.token not in self._maybe_created:
            return
        found = self._find_by_name(prepared.token)
        if found is not None:
            self._stop(found.id)

    def _log_reason(self, session_id: str) -> str | None:
        try:
            answer = self._call(
                "GET",
                f"/sessions/{session_id}/log",
                operation="GetSessionLog",
                params={"size": LOG_LINES},
            )
        except ServiceError as exc:
            logger.debug("could not read the log of livy session %s: %s", session_id, exc)
            return None
        return failure_reason(answer.get("log") if isinstance(answer, Mapping) else None)

    def _describe(self, session_id: str) -> SessionInfo:
        try:
            record = self._call("GET", f"/sessions/{session_id}", operation="GetSession")
        except ServiceError as exc:
            if exc.code == "NotFound" and _was_deleted(self.url, session_id):
                return SessionInfo(
                    id=session_id,
                    backend=self.name,
                    state=SessionState.STOPPED,
                    native_state="killed",
                    reason="deleted; Livy forgets deleted sessions",
                )
            raise
        info = session_info(record, url=self.display_url)
        kind = record.get("kind")
        if isinstance(kind, str) and kind and kind != "shared":
            self._kinds.setdefault(session_id, kind)
        if info.state is SessionState.FAILED:
            reason = self._log_reason(session_id)
            if reason:
                info = attrs.evolve(info, reason=reason)
        return info

    def _tags(self, info: SessionInfo) -> Mapping[str, str]:
        """Livy sessions carry no tags; the name is sessionkit's mark (no call)."""
        return {}

    def sweep_marks(
        self, info: SessionInfo, tags: Mapping[str, str]
    ) -> tuple[bool, datetime | None]:
        """Livy has no tags: a session sessionkit named carries the ``sessionkit-`` prefix.

        A generated name also carries the creation time (``info.created_at``), so
        ``older_than`` applies; there is no expiry mark.
        """
        return bool(info.name and info.name.startswith(NAME_PREFIX)), None

    def _stop(self, session_id: str) -> None:
        heartbeat = self._heartbeats.pop(session_id, None)
        if heartbeat is not None:
            heartbeat.stop()
        try:
            self._call("DELETE", f"/sessions/{session_id}", operation="DeleteSession")
        except ServiceError as exc:
            # Livy already forgot it (its idle timeout, ttl or an admin ended it): it is stopped.
            if exc.code != "NotFound":
                raise
        _remember_deleted(self.url, session_id)

    def fleet_key(self) -> tuple[Any, ...]:
        """Sessions of one server reached through the same client share list calls."""
        return (self.name, id(self._client), *self.location.values())

    def _list_page(
        self, states: frozenset[SessionState] | None, token: str | None
    ) -> tuple[list[SessionInfo], str | None]:
        # Livy cannot filter by state; the caller filters. Tokens are the next ``from``.
        start = int(token) if token else 0
        page = self._call(
            "GET", "/sessions", operation="ListSessions", params={"from": start, "size": PAGE_SIZE}
        )
        records = page.get("sessions") if isinstance(page, Mapping) else None
        if not isinstance(records, list):
            raise malformed("ListSessions", "the Livy server's session list has no 'sessions' list")
        sessions = [session_info(r, url=self.display_url) for r in records]
        total = page.get("total")
        following = start + len(records)
        # Without a total, a short page is the last (a server that ignores from/size too).
        more = bool(records) and (
            following < total if isinstance(total, int) else len(records) >= PAGE_SIZE
        )
        return sessions, str(following) if more else None

    def _run(self, session_id: str, code: str) -> str:
        kind = self._kinds.get(session_id, DEFAULT_KIND)
        record = self._call(
            "POST",
            f"/sessions/{session_id}/statements",
            operation="CreateStatement",
            body={"code": code, "kind": kind},
        )
        if not isinstance(record, Mapping) or "id" not in record:
            raise malformed("CreateStatement", "the Livy server's statement has no 'id'")
        return str(record["id"])

    def _statement(self, session_id: str, statement_id: str) -> StatementResult:
        record = self._call(
            "GET", f"/sessions/{session_id}/statements/{statement_id}", operation="GetStatement"
        )
        return statement_result(record)

    def _cancel(self, session_id: str, statement_id: str) -> None:
        self._call(
            "POST",
            f"/sessions/{session_id}/statements/{statement_id}/cancel",
            operation="CancelStatement",
        )

    def heartbeat_running(self, session_id: str) -> bool:
        """Whether this backend keeps a heartbeat for ``session_id`` (``heartbeat`` mode)."""
        heartbeat = self._heartbeats.get(session_id)
        return heartbeat is not None and heartbeat.running

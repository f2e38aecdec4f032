"""The emulator served on one loopback port, for clients in any process or language.

Every emulated service answers on ``http://127.0.0.1:PORT`` in its real wire protocol, so any
client works against it with only its endpoint URL changed: SDKs, command-line tools,
orchestrators, dbt, notebooks. Each provider's emulator package declares the path prefixes it
serves (``_PROVIDER_ROUTES`` names their tables); a request under one goes to that provider's
``answer(emulator, method, path, query, headers, body)`` function, and any other request to the
fallback provider's router (``_FALLBACK``), which tells the service from the request itself.
Each provider's page in the docs says which URL its clients are given.

The control endpoint, all JSON:

- ``GET /_sessionkit/health``: the emulated services and backends, and the clock.
- ``POST /_sessionkit/advance?seconds=N``: move the clock forward ``N`` seconds.
- ``GET /_sessionkit/calls``: the call log (service, operation, virtual time, outcome; request
  parameters are left out, they can hold secrets) and the exact total.
- ``POST /_sessionkit/faults`` with a body like ``{"kind": "throttle", "service": S,
  "operations": ["GetSession"], "count": 2}``: inject a fault; ``GET`` lists them with their hits,
  ``DELETE`` clears them.
- ``POST /_sessionkit/locations`` with ``{"backend": B, "name": "demo"}``: make a location
  (an application, a work group, a cluster: whatever backend ``B`` needs) and answer the
  keywords that reach it, a role the emulator accepts, and the provider's plain facts for
  building clients elsewhere (``connect`` turns them into connection keywords).
- ``POST /_sessionkit/script`` with ``{"service": S, "state": "FAILED", "after": 5}``:
  script the end of the next session that service creates.

Run it with ``sessionkit emulator serve [--port N] [--speed X] [--spark]``, or in a test with
:meth:`Emulator.serve() <sessionkit.testing.Emulator.serve>`. Point sessionkit's CLI at it with
``--emulator URL`` or the ``SESSIONKIT_EMULATOR_URL`` environment variable.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from sessionkit.testing.base import Dropped, EmulatedError, HttpReply, HttpRequest, HttpRoute
from sessionkit.testing.clock import VirtualClock
from sessionkit.testing.wiring import _WIRING, _load, emulated_backends

if TYPE_CHECKING:
    from sessionkit.testing.emulator import Emulator

__all__ = ["ENV_VAR", "EmulatorServer", "ScaledClock", "connect"]

logger = logging.getLogger(__name__)

#: The environment variable that points sessionkit's CLI at a served emulator.
ENV_VAR = "SESSIONKIT_EMULATOR_URL"


#: Each provider's table of served paths (``"module:NAME"`` of a mapping of path prefix to
#: :class:`~sessionkit.testing.base.HttpRoute`), owned by the provider's emulator package.
_PROVIDER_ROUTES = (
    "sessionkit.testing.gcp.routes:HTTP_ROUTES",
    "sessionkit.testing.livy.wiring:HTTP_ROUTES",
)

#: Path prefixes answered by a provider's own ``answer`` function, gathered from
#: ``_PROVIDER_ROUTES`` on first use (a prefix whose module is not installed answers 404).
_HTTP_ROUTES: Mapping[str, HttpRoute] | None = None

#: ``"module:function"`` of ``function(emulator, request) -> HttpReply``: the answer to a request
#: no path prefix claims (clients that send to the endpoint URL's root).
_FALLBACK = "sessionkit.testing.aws.transport:serve_request"

_CONTROL = "/_sessionkit/"

#: Per provider, ``"module:function"`` of ``function(url, facts) -> keywords``: the connection
#: keywords that reach a served emulator from another process, given what ``_SERVED_FACTS``
#: answered on the server.
_REMOTE: Mapping[str, str] = {
    "aws": "sessionkit.testing.aws.transport:remote_keywords",
}

#: Per provider, ``"module:function"`` of ``function(emulator) -> facts``: the plain values a
#: remote process needs to build that provider's clients (a provider without one needs none).
_SERVED_FACTS: Mapping[str, str] = {
    "aws": "sessionkit.testing.aws.transport:served_facts",
}

#: The fault fields a ``POST /_sessionkit/faults`` body may set.
_FAULT_FIELDS = ("kind", "service", "operations", "rate", "count", "latency")


class ScaledClock(VirtualClock):
    """Real time at ``speed`` times its pace, which ``advance`` can also jump forward.

    ``ScaledClock(speed=60)`` makes a minute of provisioning pass in a real second. Sleeping on
    it sleeps the real time that covers the virtual seconds.

    Args:
        speed: Virtual seconds per real second (positive).
        start: The wall-clock time at virtual zero; default: now.
    """

    def __init__(self, *, speed: float = 1.0, start: datetime | None = None) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be positive, got {speed}")
        super().__init__(start)
        self.speed = speed
        self._origin = time.monotonic()
        self._offset = 0.0

    def monotonic(self) -> float:
        """Virtual seconds since the clock was made."""
        with self._lock:
            return self._offset + (time.monotonic() - self._origin) * self.speed

    def now(self) -> datetime:
        """The virtual wall-clock time (UTC)."""
        from datetime import timedelta

        return self._epoch + timedelta(seconds=self.monotonic())

    def advance(self, seconds: float) -> None:
        """Jump virtual time forward without sleeping.

        Args:
            seconds: How far; must not be negative.
        """
        if seconds < 0:
            raise ValueError(f"time cannot go backwards ({seconds} s)")
        with self._lock:
            self._offset += seconds

    def sleep(self, seconds: float) -> None:
        """Sleep the real time in which ``seconds`` virtual seconds pass."""
        if seconds > 0:
            time.sleep(seconds / self.speed)


class _Server(ThreadingHTTPServer):
    """Tracks its open connections so closing it ends every keep-alive handler thread."""

    daemon_threads = False
    block_on_close = True
    allow_reuse_address = True
    emulator: Emulator

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        #: Locations made through the control endpoint, by (backend, name): asking twice for
        #: the same name answers the same location, so separate processes can share one.
        self.locations: dict[tuple[str, str], dict[str, Any]] = {}
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def server_close(self) -> None:
        with self._open_lock:
            for connection in self._open:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
        super().server_close()  # joins the handler threads


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "sessionkit-emulator"

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self) -> None:
        host = self.headers.get("Host") or f"127.0.0.1:{self.server.server_address[1]}"
        request = HttpRequest(
            method=self.command,
            url=f"http://{host}{self.path}",
            headers=dict(self.headers.items()),
            body=self._body(),
        )
        try:
            reply = _dispatch(self.server, request)
        except Dropped:
            # An injected connection fault: the client sees the connection close unanswered.
            self.close_connection = True
            return
        except Exception as exc:  # a bug in an emulated service: answer 500, keep serving
            logger.exception("the sessionkit emulator failed on %s %s", self.command, self.path)
            reply = _json_reply(500, {"error": f"{type(exc).__name__}: {exc}"})
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            if name.lower() not in ("content-length", "x-sessionkit-error"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)


def _json_reply(status: int, value: Any) -> HttpReply:
    body = json.dumps(value, default=str).encode()
    return HttpReply(status=status, headers={"Content-Type": "application/json"}, body=body)


def _dispatch(server: _Server, request: HttpRequest) -> HttpReply:
    emulator = server.emulator
    path = urlsplit(request.url).path
    if path.startswith(_CONTROL):
        return _control(server, request, path[len(_CONTROL) :].strip("/"))
    for prefix, route in _routes().items():
        if path.startswith(prefix):
            return _answer_http(emulator, route, request, path)
    reply = _load(_FALLBACK)(emulator, request)
    if not isinstance(reply, HttpReply):  # pragma: no cover - the fallback's contract
        raise TypeError(f"{_FALLBACK} must answer an HttpReply")
    return reply


def _routes() -> Mapping[str, HttpRoute]:
    """Every provider's served path prefixes (a provider not installed serves none)."""
    global _HTTP_ROUTES
    if _HTTP_ROUTES is None:
        routes: dict[str, HttpRoute] = {}
        for table in _PROVIDER_ROUTES:
            try:
                routes.update(_load(table))
            except ImportError:
                continue
        _HTTP_ROUTES = routes
    return _HTTP_ROUTES


def _answer_http(
    emulator: Emulator, route: HttpRoute, request: HttpRequest, path: str
) -> HttpReply:
    try:
        answer = _load(route.answer)
    except ImportError:
        return _json_reply(404, {"error": f"this emulator does not serve {path}"})
    drops = tuple(_load(name) for name in route.drops)
    url = urlsplit(request.url)
    try:
        status, headers, body = answer(
            emulator,
            request.method,
            path.removeprefix(route.strip) or "/",
            dict(parse_qsl(url.query, keep_blank_values=True)),
            request.headers,
            request.body,
        )
    except drops as exc:
        raise Dropped(type(exc).__name__) from exc
    return HttpReply(status=status, headers=headers, body=body)


def _json_body(request: HttpRequest) -> dict[str, Any]:
    if not request.body:
        return {}
    value = json.loads(request.body)
    if not isinstance(value, dict):
        raise ValueError("the body must be a JSON object")
    return value


def _plain(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool)) or value is None


def _control(server: _Server, request: HttpRequest, name: str) -> HttpReply:
    query = dict(parse_qsl(urlsplit(request.url).query))
    method = request.method
    try:
        body = _json_body(request) if method in ("POST", "PUT") else {}
        handler = _CONTROLS.get((method, name))
        if handler is None:
            known = ", ".join(f"{m} /_sessionkit/{n}" for m, n in sorted(_CONTROLS))
            return _json_reply(404, {"error": f"no control {method} {name!r}; known: {known}"})
        with server.emulator.lock:
            return _json_reply(200, handler(server, query, body))
    except (ValueError, TypeError, LookupError, EmulatedError) as exc:
        return _json_reply(400, {"error": str(exc)})


def _clock(emulator: Emulator) -> dict[str, Any]:
    return {"monotonic": emulator.clock.monotonic(), "now": emulator.clock.now().isoformat()}


def _health(server: _Server, query: Mapping[str, str], body: Mapping[str, Any]) -> Any:
    emulator = server.emulator
    return {
        "services": emulator.emulated_services(),
        "backends": emulated_backends(),
        **_clock(emulator),
    }


def _advance(server: _Server, query: Mapping[str, str], body: Mapping[str, Any]) -> Any:
    emulator = server.emulator
    seconds = float(query.get("seconds", body.get("seconds", 0)))
    emulator.clock.advance(seconds)
    return _clock(emulator)


def _calls(server: _Server, query: Mapping[str, str], body: Mapping[str, Any]) -> Any:
    emulator = server.emulator
    calls = [
        {"service": c.service, "operation": c.operation, "at": c.at, "outcome": c.outcome}
        for c in emulator.calls
        if query.get("service") in (None, c.service)
        and query.get("operation") in (None, c.operation)
    ]
    total = emulator.call_count(query.get("service"), query.get("operation"))
    return {"total": total, "calls": calls}


def _faults(server: _Server, query: Mapping[str, str], body: Mapping[str, Any]) -> Any:
    emulator = server.emulator
    return {
        "faults": [
            {
                "kind": f.kind,
                "service": f.service,
                "operations": sorted(f.operations) if f.operations is not None else None,
                "rate": f.rate,
                "count": f.count,
                "latency": f.latency,
                "hits": f.hits,
            }
            for f in emulator.faults
        ]
    }


def _inject(server: _Server, query: Mapping[str, str], body: Mapping[str, Any]) -> Any:
    emulator = server.emulator
    unknown = sorted(set(body) - set(_FAULT_FIELDS))
    if unknown:
        raise ValueError(f"unknown fault fields {unknown}; known: {', '.join(_FAULT_FIELDS)}")
    if "kind" not in body:
        raise ValueError("a fault needs a kind")
    emulator.inject(**body)
    return _faults(server, query, body)


def _clear_faults(server: _Server, query: Mapping[str, str], body: Mapping[str, Any]) -> Any:
    emulator = server.emulator
    emulator.clear_faults()
    return {"faults": []}


def _location(server: _Server, query: Mapping[str, str], body: Mapping[str, Any]) -> Any:
    emulator = server.emulator
    backend = body.get("backend")
    if not isinstance(backend, str):
        raise ValueError(f"a location needs a backend: one of {', '.join(emulated_backends())}")
    name = str(body.get("name", "sessionkit-local"))
    known = server.locations.get((backend, name))
    if known is not None:
        return known
    wiring = _WIRING.get(backend)
    provider = _provider(wiring[0]) if wiring else None
    keywords = emulator.keywords(backend, location=name)
    facts = _SERVED_FACTS.get(provider or "")
    answer = {
        "backend": backend,
        "provider": provider,
        "facts": _load(facts)(emulator) if facts else {},
        # Clients and other objects stay here; what reaches the location is plain values.
        "keywords": {k: v for k, v in keywords.items() if _plain(v)},
        "role": emulator.role(backend),
    }
    server.locations[backend, name] = answer
    return answer


def _provider(path: str) -> str | None:
    """The provider package of a wiring function: ``sessionkit.testing.<p>.wiring:x`` -> p."""
    parts = path.partition(":")[0].split(".")
    return parts[2] if len(parts) > 3 and parts[:2] == ["sessionkit", "testing"] else None


def _script(server: _Server, query: Mapping[str, str], body: Mapping[str, Any]) -> Any:
    emulator = server.emulator
    service = emulator.service(str(body.get("service")))
    service.script_next(
        str(body.get("state", "FAILED")),
        after=float(body.get("after", 1.0)),
        reason=str(body.get("reason", "")),
    )
    return {"scripted": service.service}


_ControlFn = Callable[[_Server, Mapping[str, str], Mapping[str, Any]], Any]

_CONTROLS: Mapping[tuple[str, str], _ControlFn] = {
    ("GET", "health"): _health,
    ("POST", "advance"): _advance,
    ("GET", "calls"): _calls,
    ("GET", "faults"): _faults,
    ("POST", "faults"): _inject,
    ("DELETE", "faults"): _clear_faults,
    ("POST", "locations"): _location,
    ("POST", "script"): _script,
}


class EmulatorServer:
    """An :class:`~sessionkit.testing.Emulator` answering on a loopback port.

    A context manager: the server thread starts on entry and is shut down, with its socket
    closed and its thread joined, on exit.

    Args:
        emulator: The emulator whose services answer.
        port: The port on 127.0.0.1 (0: any free port).
    """

    def __init__(self, emulator: Emulator, *, port: int = 0) -> None:
        self.emulator = emulator
        self._port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:49152``.

        Raises:
            RuntimeError: When the server is not running.
        """
        if self._server is None:
            raise RuntimeError("the emulator server is not running")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> EmulatorServer:
        """Bind the port and start answering (in a daemon thread)."""
        if self._server is not None:
            return self
        server = _Server(("127.0.0.1", self._port), _Handler)
        server.emulator = self.emulator
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"sessionkit-emulator:{server.server_address[1]}",
            daemon=True,
        )
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop answering, close the socket and join the server thread."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join()

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def connect(
    url: str, backend: str, *, location: str = "sessionkit-local"
) -> tuple[dict[str, Any], str]:
    """The keywords that reach ``backend`` on the emulator served at ``url``, and a role.

    What a process other than the server's (the CLI given ``--emulator URL`` or
    ``SESSIONKIT_EMULATOR_URL``, a notebook, a second test process) passes to
    :func:`~sessionkit.open_session`, :func:`~sessionkit.attach_session` and friends. The
    location is made on the server on first use and found again by name afterwards, so every
    process asking for the same ``location`` shares it.

    Args:
        url: The served emulator's base URL.
        backend: A backend the emulator stands in for.
        location: The location's name (the application, work group or cluster it stands for).

    Returns:
        The connection and location keywords, and a role the emulator accepts.

    Raises:
        LookupError: When the server does not emulate ``backend``.
        OSError: When nothing answers at ``url``.
    """
    import importlib
    import urllib.error
    import urllib.request

    body = json.dumps({"backend": backend, "name": location}).encode()
    request = urllib.request.Request(
        f"{url.rstrip('/')}{_CONTROL}locations", data=body, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.loads(response.read())
    except urllib.error.HTTPError as error:
        raise LookupError(json.loads(error.read()).get("error", str(error))) from None
    remote = _REMOTE.get(str(answer.get("provider")))
    if remote is None:
        raise LookupError(f"no remote connection for the {backend} backend's provider")
    module_name, _, attribute = remote.partition(":")
    connection: dict[str, Any] = getattr(importlib.import_module(module_name), attribute)(
        url.rstrip("/"), answer["facts"]
    )
    return {**connection, **answer["keywords"]}, str(answer["role"])

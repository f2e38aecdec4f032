"""Real Spark behind the emulator: a local Spark Connect server and an executor that uses it.

Needs the ``spark`` extra (``pip install 'sessionkit-spark[spark]'``: PySpark 4 with its bundled
Spark jars and Spark Connect server) and Java 17 or newer. Importing this module needs neither;
they are looked for when a server starts or an executor is made.

>>> from sessionkit import open_session
>>> from sessionkit.testing import Emulator
>>> from sessionkit.testing.spark import LocalSparkConnect
>>> with LocalSparkConnect() as server:                         # doctest: +SKIP
...     emulator = Emulator()
...     emulator.use_spark(server)
...     with open_session(BACKEND, role=emulator.role(BACKEND),    # one that runs code
...                       poll_policy=emulator.poll_policy(),
...                       **emulator.keywords(BACKEND)) as session:
...         print(session.run("spark.range(10).count()").output)
...         print(session.spark().range(10).count())
10
10

The server is a separate JVM process on a loopback port, started once and shared: start-up
takes seconds, so start one per test session, not per test.
"""

from __future__ import annotations

import ast
import atexit
import concurrent.futures
import contextlib
import gc
import importlib
import io
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from pathlib import Path
from types import ModuleType, TracebackType
from typing import TYPE_CHECKING, Any

import attrs

from sessionkit.errors import NotSupportedError
from sessionkit.testing.base import StatementOutcome

if TYPE_CHECKING:
    from sessionkit.testing.emulator import Emulator

__all__ = [
    "Grant",
    "LocalSparkConnect",
    "SparkConnectProxy",
    "SparkConnectRecipe",
    "attach",
    "java_launcher",
    "recipes",
    "spark_executor",
]

logger = logging.getLogger(__name__)

_INSTALL_HINT = "pip install 'sessionkit-spark[spark]'"
_SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
#: Environment variables that would turn the server's own PySpark into a Connect client, or
#: point it at another Spark installation than the one the client came with.
_CLEARED_ENV = (
    "SPARK_REMOTE",
    "SPARK_LOCAL_REMOTE",
    "SPARK_CONNECT_MODE_ENABLED",
    "SPARK_CONNECT_AUTHENTICATE_TOKEN",
    "SPARK_CONF_DIR",
    "PYSPARK_SUBMIT_ARGS",
)


def _import(name: str) -> ModuleType:
    """Import a PySpark module, or explain which extra to install."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise NotSupportedError(
            f"real Spark in the emulator needs PySpark with Spark Connect: {_INSTALL_HINT} ({exc})"
        ) from exc


def java_launcher() -> str:
    """Find the java launcher the local Spark will use (``$JAVA_HOME/bin/java``, else ``PATH``).

    Returns:
        The launcher's path.

    Raises:
        NotSupportedError: When no Java is found, saying how to install one.
    """
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").exists():
        return str(Path(java_home) / "bin" / "java")
    found = shutil.which("java")
    if found is None:
        raise NotSupportedError(
            "real Spark in the emulator needs Java 17 or newer: install a JDK and put `java` on "
            "PATH or set JAVA_HOME"
        )
    return found


def _free_port() -> int:
    # The port is released before the server binds it; the race is small and a lost one shows
    # up as a start-up failure with the server's log, never as a hang.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class LocalSparkConnect:
    """A Spark Connect server (PySpark's bundled one) in a child JVM on a loopback port.

    It listens on 127.0.0.1 only and requires a bearer token (:attr:`token`). Clients connect
    through :attr:`url`, which names ``localhost``: PySpark sends a token over a plain
    (non-TLS) channel only to ``localhost``, and asks for TLS everywhere else.

    Use it as a context manager, or call :meth:`start` and :meth:`stop`; :meth:`start` is
    idempotent, and a server still running when the interpreter exits is stopped then.

    Args:
        driver_memory: The JVM heap of the driver (the whole server runs in the driver).
        cores: Worker threads (``local[cores]``).
        conf: More Spark properties for the server.
        startup_timeout: Seconds to wait for the server to listen.
        log_path: Where the server's log goes; default: a temporary file removed on stop.

    Example:
        >>> with LocalSparkConnect() as server:  # doctest: +SKIP
        ...     from pyspark.sql import SparkSession
        ...     spark = SparkSession.builder.remote(server.spark_connect_url).create()
        ...     spark.range(3).count()
        3
    """

    def __init__(
        self,
        *,
        driver_memory: str = "768m",
        cores: int = 2,
        conf: Mapping[str, str] | None = None,
        startup_timeout: float = 180.0,
        log_path: str | os.PathLike[str] | None = None,
    ) -> None:
        self.driver_memory = driver_memory
        self.cores = cores
        self.conf = dict(conf or {})
        self.startup_timeout = startup_timeout
        self.log_path = Path(log_path) if log_path is not None else None
        self.startup_seconds: float | None = None
        self._token = secrets.token_urlsafe(32)
        self._port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._workdir: Path | None = None
        self._log: Path | None = None
        # Re-entrant: start() calls stop() itself when start-up fails or is interrupted.
        self._lock = threading.RLock()
        #: The authenticating proxies in front of this server (stopped with it).
        self._proxies: list[SparkConnectProxy] = []

    # -- what clients need -------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The loopback port the server listens on (after :meth:`start`)."""
        if self._port is None:
            raise RuntimeError("the local Spark Connect server is not started")
        return self._port

    @property
    def url(self) -> str:
        """The endpoint URL without the token: ``sc://localhost:PORT``."""
        return f"sc://localhost:{self.port}"

    @property
    def token(self) -> str:
        """The bearer token the server requires (a secret; never logged)."""
        return self._token

    @property
    def spark_connect_url(self) -> str:
        """The URL with the token, as ``SparkSession.builder.remote`` takes it (a secret)."""
        return f"{self.url}/;token={self._token}"

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._process is not None and self._process.poll() is None

    def __repr__(self) -> str:
        where = f"localhost:{self._port}" if self._port is not None else "not started"
        return f"<LocalSparkConnect {where}{' running' if self.running else ''}>"

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> LocalSparkConnect:
        """Start the server and wait until it listens (no-op when it already runs).

        Returns:
            This server.

        Raises:
            NotSupportedError: When PySpark (the ``spark`` extra) or Java is missing.
            RuntimeError: When the server exits or does not listen within ``startup_timeout``
                (the message ends with the tail of its log).
        """
        with self._lock:
            if self.running:
                return self
            pyspark = _import("pyspark")
            java = java_launcher()
            if pyspark.__file__ is None:
                raise NotSupportedError(f"PySpark is not installed as a package: {_INSTALL_HINT}")
            spark_home = Path(pyspark.__file__).parent
            submit = spark_home / "bin" / "spark-submit"
            if not submit.exists():
                raise NotSupportedError(
                    f"PySpark at {spark_home} has no bin/spark-submit (it must be the PyPI "
                    f"package, which bundles Spark): {_INSTALL_HINT}"
                )
            began = time.monotonic()
            self._workdir = Path(tempfile.mkdtemp(prefix="sessionkit-spark-"))
            self._port = _free_port()
            self._log = self.log_path or self._workdir / "server.log"
            self._process = self._spawn(submit, spark_home, java)
            atexit.register(self.stop)
            try:
                self._wait_listening(began)
            except BaseException:
                self.stop()
                raise
            self.startup_seconds = time.monotonic() - began
            logger.info(
                "local Spark Connect server listening on localhost:%d (pid %d, %.1f s)",
                self._port,
                self._process.pid,
                self.startup_seconds,
            )
            return self

    def _properties(self) -> dict[str, str]:
        assert self._workdir is not None
        properties = {
            "spark.master": f"local[{self.cores}]",
            "spark.app.name": "sessionkit-local-spark-connect",
            "spark.driver.memory": self.driver_memory,
            # Everything stays on loopback: the gRPC port, the driver and its block manager.
            "spark.connect.grpc.binding.address": "127.0.0.1",
            "spark.connect.grpc.binding.port": str(self._port),
            "spark.connect.authenticate.token": self._token,
            "spark.driver.host": "127.0.0.1",
            "spark.driver.bindAddress": "127.0.0.1",
            "spark.ui.enabled": "false",
            "spark.ui.showConsoleProgress": "false",
            "spark.sql.shuffle.partitions": str(max(1, self.cores)),
            "spark.sql.warehouse.dir": str(self._workdir / "warehouse"),
            "spark.driver.extraJavaOptions": f"-Dderby.system.home={self._workdir}",
        }
        properties.update(self.conf)
        return properties

    def _spawn(self, submit: Path, spark_home: Path, java: str) -> subprocess.Popen[bytes]:
        assert self._workdir is not None and self._log is not None
        # Spark properties go through a private file rather than argv, so the token never
        # shows in `ps`.
        properties = self._workdir / "spark.properties"
        fd = os.open(properties, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            for key, value in self._properties().items():
                escaped = value.replace("\\", "\\\\").replace("\n", "\\n")
                handle.write(f"{key}={escaped}\n")
        env = {k: v for k, v in os.environ.items() if k not in _CLEARED_ENV}
        env["SPARK_HOME"] = str(spark_home)
        env.setdefault("JAVA_HOME", str(Path(java).resolve().parent.parent))
        with open(self._log, "wb") as log:
            # A session of its own: Ctrl-C in the caller's terminal must not kill the server
            # behind the caller's back; stop() ends it (and atexit, if nobody did).
            return subprocess.Popen(
                [
                    str(submit),
                    "--class",
                    _SERVER_CLASS,
                    "--properties-file",
                    str(properties),
                ],
                cwd=self._workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def _wait_listening(self, began: float) -> None:
        assert self._process is not None and self._port is not None
        deadline = began + self.startup_timeout
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"the local Spark Connect server exited with code {self._process.returncode}"
                    f" during start-up:\n{self.log_tail()}"
                )
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.settimeout(0.5)
                if sock.connect_ex(("127.0.0.1", self._port)) == 0:
                    return
            if time.monotonic() >= deadline:
                raise RuntimeError(
                    f"the local Spark Connect server did not listen within "
                    f"{self.startup_timeout:.0f} s:\n{self.log_tail()}"
                )
            # Real time on purpose: this waits for a real JVM, not for emulated state.
            time.sleep(0.1)

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the server's log (for error messages)."""
        if self._log is None or not self._log.exists():
            return "(no log)"
        text = self._log.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:]).replace(self._token, "***")

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL after ``timeout`` seconds) and clean up.

        Idempotent; also safe after a failed :meth:`start`.
        """
        if self.running:
            self._close_clients()
        for proxy in list(self._proxies):
            proxy.stop()
        with self._lock:
            process, self._process = self._process, None
            if process is not None and process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout)
                except subprocess.TimeoutExpired:
                    logger.warning("local Spark Connect server ignored SIGTERM; killing it")
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
                logger.info("stopped the local Spark Connect server on localhost:%s", self._port)
            atexit.unregister(self.stop)
            if self._workdir is not None:
                shutil.rmtree(self._workdir, ignore_errors=True)
                self._workdir = None

    def _close_clients(self) -> None:
        """Close the PySpark clients still connected to this server, before it goes.

        PySpark cleans up every open client at interpreter exit with calls that it retries for
        minutes when the server is gone, so one client left open by a failing test would hang
        the end of the test run. Closing only drops the client's channel; no call is made.
        """
        core = sys.modules.get("pyspark.sql.connect.client.core")
        client_type = getattr(core, "SparkConnectClient", None)
        if client_type is None:
            return
        ports = [self._port, *(proxy._port for proxy in self._proxies)]
        mine = {f"{host}:{port}" for port in ports for host in ("localhost", "127.0.0.1")}
        for obj in gc.get_objects():
            if not isinstance(obj, client_type) or getattr(obj, "is_closed", True):
                continue
            if getattr(getattr(obj, "_builder", None), "endpoint", None) in mine:
                with contextlib.suppress(Exception):
                    obj.close()

    def __enter__(self) -> LocalSparkConnect:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def spark_executor(server: LocalSparkConnect) -> Callable[..., StatementOutcome]:
    """An executor for the emulated statement APIs that runs code on a real Spark.

    The code runs like a notebook cell, as :func:`~sessionkit.testing.python_executor` runs it
    (printed text, then the value of a last expression), with ``spark`` bound to a Spark Connect
    client session of ``server``. A failure is reported with the real exception's type name,
    message and traceback. The emulated services pass each session's own ``namespace``: its
    Python variables and its ``spark`` (one Spark Connect session per emulated session, so
    temporary views and SQL settings are the session's own) last from statement to statement.
    Without a namespace, a statement gets a fresh one and a client shared by all such calls.

    Args:
        server: The server to run on (started here if it is not yet).

    Returns:
        ``(code, namespace=None) -> StatementOutcome``, for ``GlueService.executor`` and the
        like.

    Raises:
        NotSupportedError: When PySpark (the ``spark`` extra) or Java is missing.
    """
    connect_session = _import("pyspark.sql.connect.session")
    server.start()
    lock = threading.Lock()
    shared: list[Any] = []

    def new_client() -> Any:
        # Made directly, not through the builder, so it never becomes PySpark's default or
        # active session: code under test that asks for those gets its own.
        return connect_session.SparkSession(connection=server.spark_connect_url)

    def spark(namespace: dict[str, Any] | None) -> Any:
        with lock:
            if namespace is not None:
                client = namespace.get(_SPARK_KEY)
                if client is None or client.is_stopped:
                    client = namespace[_SPARK_KEY] = new_client()
                return client
            if not shared or shared[0].is_stopped:
                shared[:] = [new_client()]
            return shared[0]

    def execute(code: str, namespace: dict[str, Any] | None = None) -> StatementOutcome:
        out = io.StringIO()
        scope: dict[str, Any] = namespace if namespace is not None else {}
        scope.setdefault("__name__", "__sessionkit_statement__")
        try:
            client = spark(namespace)
            if not isinstance(scope.get("spark"), type(client)) or scope["spark"].is_stopped:
                scope["spark"] = client
            tree = ast.parse(code, mode="exec")
            last = tree.body[-1] if tree.body else None
            if isinstance(last, ast.Expr):
                tree.body.pop()
            else:
                last = None
            with contextlib.redirect_stdout(out):
                exec(compile(tree, "<statement>", "exec"), scope)
                if last is not None:
                    expression = ast.Expression(last.value)
                    value = eval(compile(expression, "<statement>", "eval"), scope)
                    if value is not None:
                        print(value if isinstance(value, str) else repr(value))
        except Exception as exc:
            # Drop this function's own frame: the traceback starts in the user's code.
            tb = exc.__traceback__.tb_next if exc.__traceback__ is not None else None
            return StatementOutcome(
                output=out.getvalue(),
                error_name=type(exc).__name__,
                error_value=str(exc),
                traceback=traceback.format_exception(type(exc), exc, tb),
            )
        return StatementOutcome(output=out.getvalue().rstrip("\n"))

    return execute


#: Where a session's namespace keeps its own Spark Connect client.
_SPARK_KEY = "__sessionkit_spark__"


#: Each provider's table of Spark Connect recipes (``"module:NAME"`` of a mapping of backend
#: name to :class:`SparkConnectRecipe`), owned by the provider's emulator package.
_RECIPE_TABLES = ("sessionkit.testing.aws.spark_recipes:RECIPES",)

_NO_LIMIT = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]


class Grant:
    """One token a service handed out: whose it is, until when, and what must come with it.

    Attributes:
        backend: Whose recipe the calls with it must follow.
        expires_at: When it stops being accepted (emulator time).
        session_id: The session it belongs to.
        username: A login that must come with it, where the recipe has one.
        password: The password of that login.
    """

    __slots__ = ("backend", "expires_at", "password", "session_id", "username")

    def __init__(
        self,
        backend: str,
        expires_at: datetime,
        session_id: str | None,
        username: str | None,
        password: str | None,
    ) -> None:
        self.backend = backend
        self.expires_at = expires_at
        self.session_id = session_id
        self.username = username
        self.password = password


def _no_check(metadata: Mapping[str, str], grant: Grant) -> str | None:
    return None


@attrs.frozen(kw_only=True)
class SparkConnectRecipe:
    """How one backend's clients authenticate to its Spark Connect endpoint (DESIGN section 9).

    What :class:`SparkConnectProxy` checks on every call made with a token of that backend.

    Attributes:
        token_header: The metadata key that carries the token the service granted.
        metadata: Fixed metadata every call must carry besides its token.
        scheme: The scheme of the endpoint URL the service hands out (``"http"`` or ``"sc"``).
        consumed: Further metadata keys that are credentials: checked here, never forwarded.
        check: Further checks, ``check(metadata, grant)``: why a call is refused, or ``None``.
    """

    token_header: str
    metadata: Mapping[str, str] = attrs.field(factory=dict)
    scheme: str = "http"
    consumed: frozenset[str] = frozenset()
    check: Callable[[Mapping[str, str], Grant], str | None] = _no_check


_RECIPES: dict[str, SparkConnectRecipe] | None = None


def recipes() -> Mapping[str, SparkConnectRecipe]:
    """Every installed provider's Spark Connect recipes, by backend name."""
    global _RECIPES
    if _RECIPES is None:
        found: dict[str, SparkConnectRecipe] = {}
        for table in _RECIPE_TABLES:
            module, _, name = table.partition(":")
            try:
                found.update(getattr(importlib.import_module(module), name))
            except ImportError:
                continue
        _RECIPES = found
    return _RECIPES


def _consumed() -> frozenset[str]:
    """Metadata the proxy consumes and never forwards (the recipes' credentials)."""
    keys: set[str] = set()
    for recipe in recipes().values():
        keys.add(recipe.token_header)
        keys.update(recipe.metadata)
        keys.update(recipe.consumed)
    return frozenset(keys)


class SparkConnectProxy:
    """A loopback gRPC proxy in front of a :class:`LocalSparkConnect` that checks like the services.

    Every call must carry a token an emulated service granted (:meth:`grant`), unexpired on the
    emulator's clock, in the header of that backend's recipe, with the rest of the recipe
    (DESIGN section 9; :func:`recipes` gathers them from the provider packages, each of which
    documents its own). A bearer token (PySpark's ``token=``) is refused. A refused call ends
    with ``UNAUTHENTICATED``; an accepted one is forwarded, bytes unchanged, to the local server
    with the server's own token. Calls of every kind (unary and streaming) go through one
    generic handler.

    Args:
        server: The local Spark Connect server to forward to (started if it is not).
        now: The clock tokens expire on (the emulator's ``clock.now``).
    """

    def __init__(self, server: LocalSparkConnect, now: Callable[[], datetime]) -> None:
        self.server = server
        self._now = now
        self._grants: dict[str, Grant] = {}
        self._lock = threading.Lock()
        self._grpc: ModuleType | None = None
        self._server: Any = None
        self._channel: Any = None
        self._port: int | None = None
        #: Why calls were refused, newest last (for tests and debugging; no secrets).
        self.refusals: list[str] = []

    @property
    def port(self) -> int:
        """The loopback port the proxy listens on (after :meth:`start`)."""
        if self._port is None:
            raise RuntimeError("the Spark Connect proxy is not started")
        return self._port

    def url(self, backend: str) -> str:
        """The endpoint URL an emulated ``backend`` hands out, in its recipe's scheme."""
        recipe = recipes().get(backend)
        scheme = recipe.scheme if recipe is not None else "http"
        return f"{scheme}://localhost:{self.port}"

    def __repr__(self) -> str:
        where = f"localhost:{self._port}" if self._port is not None else "not started"
        return f"<SparkConnectProxy {where} -> {self.server!r}>"

    def grant(
        self,
        token: str,
        *,
        backend: str,
        expires_at: datetime,
        session_id: str | None = None,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        """Accept ``token`` for ``backend`` until ``expires_at`` (what GetSessionEndpoint does).

        Args:
            token: The token handed out.
            backend: Whose recipe the calls with it must follow.
            expires_at: When it stops being accepted (emulator time).
            session_id: The session it belongs to (a recipe may check it).
            username: A login that must come with it, where the recipe has one.
            password: The password of that login.
        """
        if backend not in recipes():
            raise ValueError(f"no Spark Connect recipe for {backend!r}")
        with self._lock:
            self._grants[token] = Grant(backend, expires_at, session_id, username, password)

    def check(self, metadata: Mapping[str, str]) -> str | None:
        """Why a call with ``metadata`` is refused, or ``None`` when it is accepted."""
        headers = sorted({recipe.token_header for recipe in recipes().values()})
        authorization = metadata.get("authorization", "")
        if authorization.lower().startswith("bearer"):
            return f"a bearer token is not accepted here; send {' or '.join(headers)}"
        sent = [(header, metadata[header]) for header in headers if metadata.get(header)]
        if not sent:
            return f"no {' or '.join(headers)} header"
        with self._lock:
            found = [(h, self._grants.get(t)) for h, t in sent]
        granted = [(h, g) for h, g in found if g is not None]
        if not granted:
            return f"the {sent[0][0]} token was never issued"
        header, grant = granted[0]
        recipe = recipes()[grant.backend]
        if header != recipe.token_header:
            return f"the {grant.backend} recipe sends its token in {recipe.token_header}"
        if self._now() >= grant.expires_at:
            return f"the {header} token has expired"
        for key, value in recipe.metadata.items():
            if metadata.get(key) != value:
                return f"the {grant.backend} recipe needs {key}: {value}"
        return recipe.check(metadata, grant)

    def start(self) -> SparkConnectProxy:
        """Listen on a loopback port (idempotent); starts the local server if needed.

        Raises:
            NotSupportedError: When gRPC (the ``spark`` extra) is missing.
        """
        with self._lock:
            if self._server is not None:
                return self
            grpc = _import("grpc")
            self.server.start()
            self._grpc = grpc
            self._channel = grpc.insecure_channel(f"127.0.0.1:{self.server.port}", _NO_LIMIT)
            server = grpc.server(
                concurrent.futures.ThreadPoolExecutor(
                    max_workers=16, thread_name_prefix="sessionkit-spark-proxy"
                ),
                handlers=[_generic_handler(grpc, self)],
                options=_NO_LIMIT,
            )
            self._port = server.add_insecure_port("127.0.0.1:0")
            server.start()
            self._server = server
            self.server._proxies.append(self)
            return self

    def stop(self) -> None:
        """Stop listening and close the channel to the server (idempotent)."""
        with self._lock:
            server, self._server = self._server, None
            channel, self._channel = self._channel, None
        if server is not None:
            server.stop(grace=None).wait()
        if channel is not None:
            channel.close()
        with contextlib.suppress(ValueError):
            self.server._proxies.remove(self)

    def _forward(self, method: str, metadata: tuple[Any, ...], requests: Any, context: Any) -> Any:
        grpc = self._grpc
        assert grpc is not None and self._channel is not None
        consumed = _consumed()
        forwarded = [
            (key, value)
            for key, value in metadata
            if key not in consumed and key != "user-agent" and not key.startswith("grpc-")
        ]
        forwarded.append(("authorization", f"Bearer {self.server.token}"))
        call = self._channel.stream_stream(method)(
            requests, metadata=forwarded, timeout=context.time_remaining()
        )
        context.add_callback(call.cancel)
        try:
            yield from call
        except grpc.RpcError as error:
            trailing = error.trailing_metadata() if hasattr(error, "trailing_metadata") else None
            if trailing:
                context.set_trailing_metadata(trailing)
            context.abort(error.code(), error.details() or "")


def _generic_handler(grpc: ModuleType, proxy: SparkConnectProxy) -> Any:
    """One gRPC handler for every method: authenticate, then forward the raw bytes."""

    class Handler(grpc.GenericRpcHandler):  # type: ignore[name-defined,misc]
        def service(self, details: Any) -> Any:
            metadata = tuple(details.invocation_metadata or ())
            text = {k: v for k, v in metadata if isinstance(v, str)}
            problem = proxy.check(text)
            if problem is not None:
                proxy.refusals.append(f"{details.method}: {problem}")

                def refuse(requests: Any, context: Any) -> Any:
                    context.abort(grpc.StatusCode.UNAUTHENTICATED, problem)

                return grpc.stream_stream_rpc_method_handler(refuse)

            def forward(requests: Any, context: Any) -> Any:
                return proxy._forward(details.method, metadata, requests, context)

            return grpc.stream_stream_rpc_method_handler(forward)

    return Handler()


def attach(
    emulator: Emulator,
    server: LocalSparkConnect,
    *,
    backends: Iterable[str] | None = None,
    executor: Callable[..., StatementOutcome] | None = None,
) -> SparkConnectProxy:
    """Back the emulated services of ``emulator`` that run code or hand out endpoints.

    A service with an ``executor`` attribute runs statements with ``executor`` (default:
    :func:`spark_executor` of ``server``); one with a ``spark_proxy`` attribute hands out
    endpoints of a :class:`SparkConnectProxy` in front of ``server`` and grants it every token
    it issues, so ``Session.spark()`` reaches real Spark only with that backend's header recipe
    and a current token. This is what :meth:`Emulator.use_spark
    <sessionkit.testing.Emulator.use_spark>` does for every backend.

    Args:
        emulator: The emulator.
        server: The server (started here if it is not yet).
        backends: The services to switch over (default: every emulated backend's).
        executor: The statement executor to use instead of a new :func:`spark_executor`.

    Returns:
        The proxy (stopped with ``server``, or by its ``stop()``).

    Raises:
        NotSupportedError: When PySpark (the ``spark`` extra) or Java is missing.
    """
    from sessionkit.testing.wiring import emulated_backends

    run = executor or spark_executor(server)
    proxy: SparkConnectProxy | None = None
    for name in emulated_backends() if backends is None else backends:
        try:
            service = emulator.service(name)
        except Exception:
            # A service this version of the emulator does not have.
            continue
        if hasattr(service, "executor"):
            service.executor = run
        if hasattr(service, "spark_proxy"):
            if proxy is None:
                proxy = getattr(service, "spark_proxy", None) or SparkConnectProxy(
                    server, emulator.clock.now
                )
                proxy.start()
            service.spark_proxy = proxy
            service.endpoint_url = proxy.url(name)
            service.endpoint_token = None
    if proxy is None:
        proxy = SparkConnectProxy(server, emulator.clock.now).start()
    return proxy

"""``sessionkit demo``: the whole session lifecycle on the local emulator, for every backend.

The demo asks each backend's ``capabilities`` what to show: code runs through the statement
API where the backend has one, and through ``Session.spark()`` on the Spark Connect endpoint
where it has none. Its timeline and its summary read one clock: the emulator's.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sessionkit._version import install_hint
from sessionkit.cli import backends, commands
from sessionkit.cli.backends import BackendRow, UsageError
from sessionkit.cli.output import Progress, error, format_usage, say

if TYPE_CHECKING:
    from sessionkit.session import Session
    from sessionkit.testing.emulator import Emulator
    from sessionkit.testing.spark import LocalSparkConnect, SparkConnectProxy
    from sessionkit.waiting import PollPolicy

__all__ = ["PACE", "SPARK_EXTRA", "run_demo"]

#: Real seconds per emulated second: lively progress, a few seconds in all.
PACE = 0.04

#: The code the demo runs where the backend has a statement API, and what it must print.
CODE = "print(6 * 7)"
EXPECTED = "42"

#: The same on a real local Spark, and the rows ``Session.spark()`` counts.
SPARK_CODE = "spark.range(10).count()"
SPARK_EXPECTED = "10"
SPARK_ROWS = 5

#: What installs PySpark with Spark Connect.
SPARK_EXTRA = install_hint("spark")


#: Real seconds one backend's demo may spend pacing. The emulated timelines differ by backend
#: (some take a virtual minute to create a session, others a few seconds): paced alike, the slow
#: ones would make ``--backend all`` take many seconds. Past this budget the clock runs freely.
PACE_BUDGET = 0.4


def make_emulator(pace: float) -> Emulator:
    """The demo's own emulator, on a clock paced against real time so progress looks alive.

    The pacing stops once it has spent :data:`PACE_BUDGET` real seconds, so a backend with a
    long emulated timeline shows its first states lively and the rest at once.
    """
    from sessionkit.testing import Emulator, VirtualClock

    class BudgetedClock(VirtualClock):
        """A paced clock that stops pacing after ``budget`` real seconds."""

        def __init__(self, *, pace: float, budget: float) -> None:
            super().__init__(pace=pace)
            self._spent = 0.0
            self._budget = budget
            self._rate = pace

        def sleep(self, seconds: float) -> None:
            seconds = max(0.0, float(seconds))
            if self._rate <= 0:
                super().sleep(seconds)
                return
            paced = min(seconds, max(0.0, self._budget - self._spent) / self._rate)
            self._spent += paced * self._rate
            super().sleep(paced)
            self.advance(seconds - paced)

    return Emulator(clock=BudgetedClock(pace=pace, budget=PACE_BUDGET))


def demo_policy(emulator: Emulator) -> PollPolicy:
    """Shorter polls than the default, so each state of the emulated timeline shows up."""
    import random

    from sessionkit.waiting import PollPolicy

    policy = PollPolicy(first=0.5, multiplier=1.3, cap=2.0, jitter=0.1, rng=random.Random(0))
    return emulator.poll_policy(policy)


def demo_config(row: BackendRow, emulator: Emulator) -> dict[str, Any]:
    """The session settings the demo asks for, each only where the backend supports it.

    A backend without a statement API shows its Spark Connect endpoint instead, so the
    session is opened for Spark Connect where the backend makes that a choice.
    """
    wanted: dict[str, Any] = {
        "role": emulator.role(row.name),
        "idle_timeout": timedelta(minutes=15),
        "tags": {"purpose": "sessionkit-demo"},
    }
    if not row.statements:
        wanted["spark_connect"] = True
    return {field: value for field, value in wanted.items() if field in row.supported_fields}


def spark_missing() -> tuple[str, str, str] | None:
    """What keeps the demo from running a real local Spark here, and how to fix it.

    Returns:
        ``None`` when PySpark with Spark Connect imports and a ``java`` is found, else
        ``(what is missing, the details, what to do)``.
    """
    import importlib
    import warnings

    from sessionkit.errors import NotSupportedError

    try:
        with warnings.catch_warnings():
            # PySpark warns at import about pandas releases it has not certified yet; in a
            # demo that is noise, and the import is cached for the executor that follows.
            warnings.simplefilter("ignore", FutureWarning)
            importlib.import_module("pyspark.sql.connect.session")
    except ImportError as exc:
        return "PySpark with Spark Connect is not installed", str(exc), SPARK_EXTRA
    from sessionkit.testing.spark import java_launcher

    try:
        java_launcher()  # the same lookup the server makes when it starts
    except NotSupportedError:
        return (
            "Java 17+ is not found",
            "no JAVA_HOME, no java on PATH",
            "install a JDK and put java on PATH or set JAVA_HOME",
        )
    return None


def spark_server() -> LocalSparkConnect:
    """The local Spark Connect server one demo run shares between its backends."""
    from sessionkit.testing.spark import LocalSparkConnect

    return LocalSparkConnect()


def spark_executor(server: LocalSparkConnect) -> Callable[[str], Any]:
    """The statement executor that runs the demo's code on ``server``."""
    from sessionkit.testing.spark import spark_executor as executor

    return executor(server)


class RealSpark:
    """The real local Spark behind a demo run: one server, one executor, every backend."""

    def __init__(self, server: LocalSparkConnect) -> None:
        self.server = server
        self.executor = spark_executor(server)

    def back(self, emulator: Emulator, row: BackendRow) -> tuple[bool, bool, SparkConnectProxy]:
        """Put this Spark behind the demonstrated backend where its capabilities lead.

        The service is switched over with :func:`sessionkit.testing.spark.attach`, the same
        wiring tests use: statements run on this Spark, and endpoints lead to the emulator's
        authenticating proxy in front of it, which accepts only the tokens the service grants.
        Code runs here where the backend has a statement API; the demo connects through the
        endpoint only where it has none (a backend with statements may serve endpoints only to
        some sessions or locations, which the demo's default location need not be).

        Returns:
            Whether the service's code now runs here, whether its endpoint leads here, and the
            proxy (the caller stops it when the backend's demo is over).
        """
        from sessionkit.testing.spark import attach

        proxy = attach(emulator, self.server, backends=[row.name], executor=self.executor)
        service = emulator.service(row.name)
        capabilities = row.capabilities
        runs_code = row.statements and getattr(service, "executor", None) is self.executor
        endpoint_here = (
            not row.statements
            and capabilities is not None
            and capabilities.spark_connect
            and getattr(service, "spark_proxy", None) is proxy
        )
        return runs_code, endpoint_here, proxy


def start_spark(server: LocalSparkConnect) -> None:
    """Start ``server``, printing a dot a second so the wait does not look hung."""
    import threading

    out = sys.stdout
    say("real Spark:   starting a local Spark Connect server (takes a few seconds) ", end="")
    started = threading.Event()

    def tick() -> None:
        while not started.wait(1.0):
            try:
                print(".", end="", file=out, flush=True)
            except (OSError, ValueError):  # the reader went away; the main thread will see
                return

    ticker = threading.Thread(target=tick, name="sessionkit-demo-ticker", daemon=True)
    ticker.start()
    try:
        # In this (the main) thread, so Ctrl-C interrupts the wait and start() stops the JVM.
        server.start()
    finally:
        started.set()
        ticker.join()
        print(file=out, flush=True)
    from importlib import metadata

    try:
        version = f" {metadata.version('pyspark')}"
    except metadata.PackageNotFoundError:  # PySpark from a Spark distribution, not from PyPI
        version = ""
    say(
        f"real Spark:   on: local Spark{version} (Spark Connect on {server.url}), "
        f"started in {server.startup_seconds or 0.0:.1f} s"
    )


def run_demo(args: argparse.Namespace) -> int:
    """``sessionkit demo``."""
    emulated = backends.emulated()
    if backends.resolve(args.backend, [*emulated, "all"]) == "all":
        names = emulated
    else:
        names = [backends.resolve(args.backend, emulated)]
    rows = [backends.row(name) for name in names]
    server: LocalSparkConnect | None = None
    if args.spark != "off":
        missing = spark_missing()
        if missing is None:
            server = spark_server()
        elif args.spark == "on":
            what, details, remedy = missing
            raise UsageError(f"--spark on: {what} ({details}); to use it: {remedy}")
        else:
            say(f"real Spark:   off ({missing[0]}); to use it: {missing[2]}")
    spark: RealSpark | None = None
    try:
        if server is not None:
            try:
                start_spark(server)
            except RuntimeError as exc:
                # The server's log tail follows the first line; it is gone once stopped.
                head, _, tail = str(exc).partition("\n")
                print(tail, file=sys.stderr)
                error(f"could not start the local Spark: {head} (--spark off runs without it)")
                return 1
            spark = RealSpark(server)
        failed = [row.name for row in rows if not demo_one(row, pace=args.pace, spark=spark)]
    finally:
        if server is not None:
            server.stop()
            if spark is not None:
                say("real Spark:   stopped the local Spark Connect server")
    if len(rows) > 1:
        say(f"demo: {len(rows) - len(failed)} of {len(rows)} backends ok")
    if failed:
        error(f"the demo failed on {', '.join(failed)}")
        return 1
    return 0


def demo_one(row: BackendRow, *, pace: float, spark: RealSpark | None = None) -> bool:
    """Run the lifecycle on one emulated backend; print each step; tell whether all passed."""
    from sessionkit.cli.failures import describe
    from sessionkit.states import SessionState

    backend = row.name
    real_began = time.perf_counter()
    say(f"== {backend} on the local emulator (no cloud account needed) ==")
    step = "set up the emulator"
    emulator: Emulator | None = None
    proxy: SparkConnectProxy | None = None
    try:
        emulator = make_emulator(pace)
        began = emulator.clock.monotonic()
        keywords: dict[str, Any] = {**emulator.keywords(backend), **demo_config(row, emulator)}
        code, expected = CODE, EXPECTED
        code_on_spark = endpoint_on_spark = False
        if spark is not None:
            code_on_spark, endpoint_on_spark, proxy = spark.back(emulator, row)
            if code_on_spark:
                code, expected = SPARK_CODE, SPARK_EXPECTED
        step = "open"
        say("opening a session; provisioning:")
        progress = Progress(demo_policy(emulator), sys.stdout)
        session = commands.open_session(
            backend, keywords, wait=True, timeout=None, progress=progress
        )
        with session:
            say(f"session id:   {session.id}")
            say(f"state:        {session.state.value} ({session.info.native_state})")
            step = "read usage"
            say(f"usage:        {format_usage(session.refresh().usage)}")
            if row.statements:
                step = "run a statement"
                where = " (on the local Spark)" if code_on_spark else ""
                say(f"running:      {code}{where}")
                result = session.run(code)
                if result.output is None:
                    say("output:       (not available from the emulator)")
                else:
                    say(f"output:       {result.output}")
                    if result.output.strip() != expected:
                        raise RuntimeError(f"expected {expected!r}, got {result.output!r}")
            else:
                say("statement:    none (the backend has no statement API; Spark Connect instead)")
                step = "get the Spark Connect endpoint"
                endpoint = session.endpoint()
                # The URL only: the token (and spark_connect_url, which embeds it) is a secret.
                say(f"endpoint:     {endpoint.url}")
                expires = endpoint.expires_at
                until = "-" if expires is None else expires.isoformat(timespec="seconds")
                say(f"token until:  {until} (token not shown)")
            if endpoint_on_spark:
                step = "connect with spark()"
                spark_client(session)
            step = "stop"
            say("stopping:")
            session.stop()
            progress.show()
            progress.finish()
            # Polls may use a light status call; the full record carries the final usage.
            info = session.refresh()
            say(f"state:        {info.state.value} ({info.native_state})")
            say(f"usage:        {format_usage(info.usage)}")
            if info.state is not SessionState.STOPPED:
                raise RuntimeError(f"the session ended {info.state.value}, not STOPPED")
    except Exception as exc:
        say(f"== {backend}: FAILED at step '{step}' ==")
        error(f"{backend} demo failed at step '{step}': {describe(exc)}")
        return False
    finally:
        if proxy is not None:
            proxy.stop()
    elapsed = emulator.clock.monotonic() - began
    say(
        f"== {backend}: ok, {elapsed:.1f} s on the emulator's clock "
        f"({time.perf_counter() - real_began:.1f} s real) =="
    )
    return True


def spark_client(session: Session) -> None:
    """Connect through the session's endpoint with ``Session.spark()`` and count some rows."""
    endpoint = session.endpoint()
    say(f"connecting:   session.spark() to {endpoint.url} (token not shown)")
    spark_session = session.spark()
    try:
        rows = spark_session.range(SPARK_ROWS).count()
    finally:
        spark_session.stop()
    say(f"spark():      range({SPARK_ROWS}).count() = {rows}")
    if rows != SPARK_ROWS:
        raise RuntimeError(f"expected {SPARK_ROWS} rows, got {rows!r}")

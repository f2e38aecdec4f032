"""The ``sessionkit`` command: open, inspect, run code in and stop sessions from a shell.

``sessionkit demo`` shows the whole lifecycle on the local emulator, with no AWS account.
The other commands work against AWS (``--region``, ``--profile``) or, with ``--local``, against
an emulator that lives in the process for the duration of one command: ``open --local`` opens a
session and exits, and the session goes with the process, so ``status``/``stop --local`` of an
id only find sessions opened in the same process (``run --local`` opens, runs and stops in one
command, and works as expected).

Exit codes: 0 success, 1 a failed step or a service error, 2 a usage or configuration error,
130 interrupted (Ctrl-C; a session the command opened is stopped first).

Nothing heavy is imported at module level, so ``sessionkit --help`` answers at once: boto3,
tenacity and the emulator are imported by the commands that use them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import IO, TYPE_CHECKING, Any, NoReturn

from sessionkit._version import __version__

if TYPE_CHECKING:
    from sessionkit.models import SessionInfo, StatementResult, Usage
    from sessionkit.session import Session
    from sessionkit.testing.aws.glue import StatementOutcome
    from sessionkit.testing.emulator import Emulator
    from sessionkit.testing.spark import LocalSparkConnect
    from sessionkit.waiting import PollPolicy

__all__ = ["main"]

#: The backends the emulator serves, in the order ``demo --backend all`` runs them.
DEMO_BACKENDS = ("glue", "emr-serverless", "athena")

#: Real seconds per emulated second in the demo: lively progress, a few seconds in all.
DEMO_PACE = 0.04

#: The code the demo runs where the backend has a statement API, and what it must print.
DEMO_CODE = "print(6 * 7)"
DEMO_EXPECTED = "42"

#: The same on a real local Spark (``--spark``), and the rows ``Session.spark()`` counts.
DEMO_SPARK_CODE = "spark.range(10).count()"
DEMO_SPARK_EXPECTED = "10"
DEMO_SPARK_ROWS = 5

#: What installs PySpark with Spark Connect.
SPARK_EXTRA = "pip install 'sessionkit-spark[spark]'"

#: Set to 1 to see the traceback of an unexpected error instead of the one-line message.
DEBUG_ENV = "SESSIONKIT_DEBUG"

#: The command-line spelling of the fields and keywords errors name.
_FLAGS = {
    "role": "--role",
    "name": "--name",
    "idle_timeout": "--idle-timeout",
    "spark_conf": "--conf",
    "tags": "--tag",
    "application_id": "--application-id",
    "start_application": "--start-application",
    "work_group": "--work-group",
    "region": "--region",
    "timeout": "--timeout",
    "states": "--state",
    "code": "CODE",
    "session_id": "SESSION_ID",
}

_LOCAL_HINT = (
    "--local sessions live in an emulator that ends with the command that opened them; "
    "'sessionkit run --local' opens, runs and stops in one command"
)

#: The location options, named as the backends' location keywords.
_LOCATION_OPTIONS = ("application_id", "work_group")


# ----------------------------------------------------------------------------- output


def _error(message: str) -> None:
    """Print one ``sessionkit: error: ...`` line to stderr (newlines folded)."""
    print(f"sessionkit: error: {' '.join(message.split())}", file=sys.stderr)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="seconds")


def _usage_dict(usage: Usage | None) -> dict[str, Any] | None:
    if usage is None:
        return None
    return {
        "dpu_seconds": usage.dpu_seconds,
        "vcpu_hours": usage.vcpu_hours,
        "memory_gb_hours": usage.memory_gb_hours,
        "storage_gb_hours": usage.storage_gb_hours,
        "execution_seconds": usage.execution_seconds,
        "billed": _usage_dict(usage.billed),
    }


def info_dict(info: SessionInfo) -> dict[str, Any]:
    """A :class:`~sessionkit.SessionInfo` as JSON-ready data (what ``--json`` prints).

    The service's raw record is left out: it can hold Spark configuration values.

    Args:
        info: The session information.

    Returns:
        ``id``, ``backend``, ``state``, ``native_state``, ``reason``, ``name``, ``arn``, the
        timestamps in ISO 8601, ``idle_timeout_seconds`` and ``usage``.
    """
    return {
        "id": info.id,
        "backend": info.backend,
        "state": info.state.value,
        "native_state": info.native_state,
        "reason": info.reason,
        "name": info.name,
        "arn": info.arn,
        "created_at": _iso(info.created_at),
        "started_at": _iso(info.started_at),
        "ended_at": _iso(info.ended_at),
        "idle_since": _iso(info.idle_since),
        "idle_timeout_seconds": (
            None if info.idle_timeout is None else info.idle_timeout.total_seconds()
        ),
        "usage": _usage_dict(info.usage),
    }


def _result_dict(result: StatementResult, session_id: str) -> dict[str, Any]:
    return {
        "session_id": session_id,
        "id": result.id,
        "state": result.state.value,
        "output": result.output,
        "error_name": result.error_name,
        "error_value": result.error_value,
        "traceback": list(result.traceback),
        "started_at": _iso(result.started_at),
        "completed_at": _iso(result.completed_at),
    }


def _number(value: float) -> str:
    # Fixed point: usage in hours is tiny for a short session, and 8.3e-05 reads badly.
    return f"{value:.6f}".rstrip("0").rstrip(".") or "0"


def _format_usage(usage: Usage) -> str:
    shown = {k: v for k, v in (_usage_dict(usage) or {}).items() if v is not None}
    billed = shown.pop("billed", None)
    text = ", ".join(f"{k}={_number(v)}" for k, v in shown.items()) or "none reported yet"
    if billed:
        text += (
            " (billed: "
            + ", ".join(f"{k}={_number(v)}" for k, v in billed.items() if v is not None)
            + ")"
        )
    return text


def _status_lines(info: SessionInfo) -> list[str]:
    rows: list[tuple[str, Any]] = [
        ("id", info.id),
        ("backend", info.backend),
        ("state", info.state.value),
        ("native_state", info.native_state),
        ("reason", info.reason),
        ("name", info.name),
        ("arn", info.arn),
        ("created_at", _iso(info.created_at)),
        ("started_at", _iso(info.started_at)),
        ("ended_at", _iso(info.ended_at)),
        ("idle_since", _iso(info.idle_since)),
        ("idle_timeout", None if info.idle_timeout is None else str(info.idle_timeout)),
        ("usage", _format_usage(info.usage)),
    ]
    return [f"{key + ':':<14}{'-' if value is None else value}" for key, value in rows]


def _print_info(info: SessionInfo, *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(info_dict(info), indent=2))
    else:
        print("\n".join(_status_lines(info)))


class _Progress:
    """Prints a session's state each time it changes, while sessionkit waits on it.

    Session waits sleep between polls through the poll policy; this wraps the policy's sleep,
    so each state a poll saw is shown right before the next pause, with the time since the
    start on the policy's clock (virtual seconds on the emulator).
    """

    def __init__(self, policy: PollPolicy, stream: IO[str]) -> None:
        self._base = policy
        self._stream = stream
        self._session: Session | None = None
        self._last: tuple[str, str] | None = None
        self._origin = policy.clock()
        self.policy = policy.on(policy.clock, self._sleep, policy.now)

    def follow(self, session: Session) -> None:
        """Report the states of ``session`` from now on, starting with its current one."""
        self._session = session
        self.show()

    def show(self) -> None:
        """Print the followed session's last seen state if it changed since the last line."""
        if self._session is None:
            return
        info = self._session.info
        key = (info.state.value, info.native_state)
        if key == self._last:
            return
        self._last = key
        elapsed = self._base.clock() - self._origin
        print(
            f"  {elapsed:7.1f}s  {info.state.value:<9} ({info.native_state})",
            file=self._stream,
            flush=True,
        )

    def _sleep(self, seconds: float) -> None:
        self.show()
        self._base.sleep(seconds)


# ----------------------------------------------------------------------------- connections


class _Local:
    """The process-local emulator behind ``--local``, and the locations made on it."""

    def __init__(self, region: str | None) -> None:
        from sessionkit.testing.emulator import Emulator

        self.emulator = Emulator(region=region or "us-east-1")
        self._locations: dict[str, dict[str, Any]] = {}

    def location(self, backend: str) -> dict[str, Any]:
        """The backend's default location on the emulator, created on first use."""
        if backend not in self._locations:
            self._locations[backend] = self.emulator.keywords(backend)
        return self._locations[backend]


_local: _Local | None = None


def _local_emulator(region: str | None) -> _Local:
    global _local
    if _local is None:
        _local = _Local(region)
    return _local


class _Target:
    """Where a command acts: the backend, the keywords that reach it, and how to poll.

    Attributes:
        backend: The backend name.
        keywords: Connection and location keywords for the sessionkit entry points.
        policy: The poll policy (the emulator's virtual clock with ``--local``).
        local: The process-local emulator, with ``--local``.
    """

    def __init__(self, args: argparse.Namespace) -> None:
        from sessionkit._registry import get_backend
        from sessionkit.waiting import DEFAULT_POLL

        self.backend: str = args.backend
        get_backend(self.backend)  # an unknown name fails here, naming it
        location = {
            option: getattr(args, option)
            for option in _LOCATION_OPTIONS
            if getattr(args, option, None) is not None
        }
        self.local: _Local | None = None
        self.keywords: dict[str, Any]
        if args.local:
            if self.backend not in DEMO_BACKENDS:
                raise _UsageError(
                    f"--local emulates {', '.join(DEMO_BACKENDS)}, not the {self.backend} backend"
                )
            self.local = _local_emulator(args.region)
            emulator = self.local.emulator
            # A location given on the command line replaces the one made on the emulator.
            self.keywords = {**self.local.location(self.backend), **location}
            self.policy: PollPolicy = emulator.poll_policy()
        else:
            self.keywords = dict(location)
            if args.region:
                self.keywords["region"] = args.region
            if args.profile:
                import boto3
                import botocore.exceptions

                try:
                    profile = boto3.session.Session(profile_name=args.profile)
                except botocore.exceptions.ProfileNotFound as exc:
                    raise _UsageError(f"--profile: {exc}") from exc
                self.keywords["boto3_session"] = profile
            self.policy = DEFAULT_POLL

    def open(
        self,
        config: dict[str, Any],
        *,
        wait: bool,
        timeout: float | None,
        progress: _Progress,
    ) -> Session:
        """Open a session, showing its progress; stop it again if it fails to become ready."""
        return _open_session(
            self.backend, {**self.keywords, **config}, wait=wait, timeout=timeout, progress=progress
        )

    def attach(self, session_id: str, progress: _Progress | None = None) -> Session:
        """Attach to an existing session (not owned: never stopped on exit)."""
        from sessionkit import attach_session

        policy = progress.policy if progress else self.policy
        session = attach_session(self.backend, session_id, poll_policy=policy, **self.keywords)
        if progress:
            progress.follow(session)
        return session


class _UsageError(Exception):
    """A command-line mistake found after parsing (exit code 2)."""


def _open_session(
    backend: str,
    keywords: dict[str, Any],
    *,
    wait: bool,
    timeout: float | None,
    progress: _Progress,
) -> Session:
    from sessionkit import open_session

    # Opened without waiting so the progress can follow the session from its first state;
    # the wait below keeps open_session's promise: a session that does not become ready is
    # stopped before the error is raised.
    session = open_session(backend, wait=False, poll_policy=progress.policy, **keywords)
    progress.follow(session)
    if wait:
        try:
            session.wait_until_ready(timeout)
        except BaseException:
            _stop_quietly(session)
            raise
        progress.show()
    return session


def _stop_quietly(session: Session) -> None:
    """Request the stop on an error path without hiding the error in flight."""
    try:
        session.stop(wait=False)
    except Exception as exc:
        _error(f"could not stop session {session.id}; it may still be running: {exc}")


def _config(args: argparse.Namespace, target: _Target) -> dict[str, Any]:
    """The SessionConfig fields and backend keywords the open options ask for."""
    config: dict[str, Any] = {}
    role = args.role
    if role is None and target.local is not None:
        role = target.local.emulator.role(target.backend)
    if role is not None:
        config["role"] = role
    if args.name is not None:
        config["name"] = args.name
    if args.idle_timeout is not None:
        config["idle_timeout"] = timedelta(minutes=args.idle_timeout)
    if args.conf:
        config["spark_conf"] = dict(args.conf)
    if args.tag:
        config["tags"] = dict(args.tag)
    if args.start_application:
        config["start_application"] = True
    return config


# ----------------------------------------------------------------------------- commands


def _cmd_open(args: argparse.Namespace) -> int:
    target = _Target(args)
    progress = _Progress(target.policy, sys.stderr)
    session = target.open(
        _config(args, target), wait=not args.no_wait, timeout=args.timeout, progress=progress
    )
    if target.local is not None:
        print(
            "note: --local: the session lives in an emulator that ends with this command",
            file=sys.stderr,
        )
    _print_info(session.info, as_json=args.json)
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    session = _Target(args).attach(args.session_id)
    _print_info(session.info, as_json=args.json)
    return 0


def _cmd_wait(args: argparse.Namespace) -> int:
    target = _Target(args)
    progress = _Progress(target.policy, sys.stderr)
    session = target.attach(args.session_id, progress)
    session.wait_until_ready(args.timeout)
    progress.show()
    _print_info(session.info, as_json=args.json)
    return 0


def _cmd_stop(args: argparse.Namespace) -> int:
    target = _Target(args)
    progress = _Progress(target.policy, sys.stderr)
    session = target.attach(args.session_id, progress)
    session.stop(wait=not args.no_wait, delete=args.delete, timeout=args.timeout)
    if args.no_wait and not args.delete:
        session.refresh()
    progress.show()
    if args.delete:
        print(f"deleted {session.id}", file=sys.stderr)
    _print_info(session.info, as_json=args.json)
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from sessionkit import list_sessions

    target = _Target(args)
    sessions = list(
        list_sessions(
            target.backend, states=args.state or None, poll_policy=target.policy, **target.keywords
        )
    )
    if args.json:
        print(json.dumps([info_dict(info) for info in sessions], indent=2))
        return 0
    if not sessions:
        print(f"no {target.backend} sessions", file=sys.stderr)
    rows = [
        (info.id, info.state.value, info.native_state, _iso(info.created_at) or "-")
        for info in sessions
    ]
    widths = [max((len(row[i]) for row in rows), default=0) for i in range(3)]
    for session_id, state, native_state, created_at in rows:
        print(
            f"{session_id:<{widths[0]}}  {state:<{widths[1]}}  "
            f"{native_state:<{widths[2]}}  {created_at}"
        )
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from sessionkit.errors import StatementFailedError

    target = _Target(args)
    progress = _Progress(target.policy, sys.stderr)
    if args.session_id:
        session = target.attach(args.session_id, progress)
    else:
        session = target.open(_config(args, target), wait=True, timeout=None, progress=progress)
        print(f"opened {session.backend} session {session.id}", file=sys.stderr)
    # An owned session is stopped (and awaited) however the run ends; an attached one never.
    with session:
        try:
            result = session.run(args.code, timeout=args.timeout)
        except StatementFailedError as exc:
            if args.json:
                print(json.dumps(_result_dict(exc.result, session.id), indent=2))
            _close(session, progress)
            raise
        _close(session, progress)
    if args.json:
        print(json.dumps(_result_dict(result, session.id), indent=2))
    elif result.output is None:
        print(
            f"statement {result.id} {result.state.value}; its output is not available "
            "(Athena: pass the credentials that can read the work group's S3 results)",
            file=sys.stderr,
        )
    elif result.output:
        print(result.output)
    return 0


def _close(session: Session, progress: _Progress) -> None:
    """Stop an owned session and wait until it has stopped; leave an attached one alone."""
    if not session.owned:
        return
    session.stop()
    progress.show()
    print(f"stopped {session.backend} session {session.id}", file=sys.stderr)


# ----------------------------------------------------------------------------- demo


def _demo_emulator(pace: float) -> Emulator:
    """The demo's own emulator, on a clock paced against real time so progress looks alive."""
    from sessionkit.testing import Emulator, VirtualClock

    return Emulator(clock=VirtualClock(pace=pace))


def _demo_policy(emulator: Emulator) -> PollPolicy:
    import random

    from sessionkit.waiting import PollPolicy

    # Shorter polls than the default, so each state of the emulated timeline shows up.
    policy = PollPolicy(first=0.5, multiplier=1.3, cap=2.0, jitter=0.1, rng=random.Random(0))
    return emulator.poll_policy(policy)


def _spark_missing() -> tuple[str, str, str] | None:
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
    from sessionkit.testing.spark import _java

    try:
        _java()  # the same lookup the server makes when it starts
    except NotSupportedError:
        return (
            "Java 17+ is not found",
            "no JAVA_HOME, no java on PATH",
            "install a JDK and put java on PATH or set JAVA_HOME",
        )
    return None


def _demo_spark_server() -> LocalSparkConnect:
    """The local Spark Connect server one demo run shares between its backends."""
    from sessionkit.testing.spark import LocalSparkConnect

    return LocalSparkConnect()


def _demo_executor(server: LocalSparkConnect) -> Callable[[str], StatementOutcome]:
    """The statement executor that runs the demo's code on ``server``."""
    from sessionkit.testing.spark import spark_executor

    return spark_executor(server)


class _RealSpark:
    """The real local Spark behind a demo run: one server, one executor, every backend."""

    def __init__(self, server: LocalSparkConnect) -> None:
        self.server = server
        self.executor = _demo_executor(server)

    def back(self, emulator: Emulator, backend: str) -> tuple[bool, bool]:
        """Put this Spark behind ``backend`` on ``emulator`` wherever the service allows.

        Only the demonstrated service is switched over, not all of them as
        ``Emulator.use_spark`` does: that warns about every service whose endpoint cannot
        carry the server's token (Athena's), which this demo never connects to.

        Returns:
            Whether the service's code now runs here, and whether its endpoint leads here.
        """
        service = emulator.service(backend)
        runs_code = endpoint_here = False
        if hasattr(service, "executor"):
            service.executor = self.executor
            runs_code = True
        if hasattr(service, "endpoint_url") and hasattr(service, "endpoint_token"):
            service.endpoint_url = self.server.url
            service.endpoint_token = self.server.token
            endpoint_here = True
        return runs_code, endpoint_here


def _start_spark(server: LocalSparkConnect) -> None:
    """Start ``server``, printing a dot a second so the wait does not look hung."""
    import threading

    out = sys.stdout
    print(
        "real Spark:   starting a local Spark Connect server (takes a few seconds) ",
        end="",
        file=out,
        flush=True,
    )
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
    print(
        f"real Spark:   on: local Spark{version} (Spark Connect on {server.url}), "
        f"started in {server.startup_seconds or 0.0:.1f} s",
        flush=True,
    )


def _cmd_demo(args: argparse.Namespace) -> int:
    backends = DEMO_BACKENDS if args.backend == "all" else (args.backend,)
    server: LocalSparkConnect | None = None
    if args.spark != "off":
        missing = _spark_missing()
        if missing is None:
            server = _demo_spark_server()
        elif args.spark == "on":
            what, details, remedy = missing
            raise _UsageError(f"--spark on: {what} ({details}); to use it: {remedy}")
        else:
            print(f"real Spark:   off ({missing[0]}); to use it: {missing[2]}", flush=True)
    spark: _RealSpark | None = None
    try:
        if server is not None:
            try:
                _start_spark(server)
            except RuntimeError as exc:
                # The server's log tail follows the first line; it is gone once stopped.
                head, _, tail = str(exc).partition("\n")
                print(tail, file=sys.stderr)
                _error(f"could not start the local Spark: {head} (--spark off runs without it)")
                return 1
            spark = _RealSpark(server)
        failed = [
            backend for backend in backends if not _demo_one(backend, pace=args.pace, spark=spark)
        ]
    finally:
        if server is not None:
            server.stop()
            if spark is not None:
                print("real Spark:   stopped the local Spark Connect server", flush=True)
    if len(backends) > 1:
        ok = len(backends) - len(failed)
        print(f"demo: {ok} of {len(backends)} backends ok")
    if failed:
        _error(f"the demo failed on {', '.join(failed)}")
        return 1
    return 0


def _demo_spark_client(session: Session) -> None:
    """Connect through the session's endpoint with ``Session.spark()`` and count some rows."""
    endpoint = session.endpoint()
    print(f"connecting:   session.spark() to {endpoint.url} (token not shown)", flush=True)
    spark_session = session.spark()
    try:
        rows = spark_session.range(DEMO_SPARK_ROWS).count()
    finally:
        spark_session.stop()
    print(f"spark():      range({DEMO_SPARK_ROWS}).count() = {rows}")
    if rows != DEMO_SPARK_ROWS:
        raise RuntimeError(f"expected {DEMO_SPARK_ROWS} rows, got {rows!r}")


def _demo_one(backend: str, *, pace: float, spark: _RealSpark | None = None) -> bool:
    """Run the lifecycle on one emulated backend; print each step; tell whether all passed."""
    from sessionkit.errors import NotSupportedError
    from sessionkit.states import SessionState

    out = sys.stdout
    began = time.perf_counter()
    print(f"== {backend} on the local emulator (no AWS account needed) ==", flush=True)
    step = "set up the emulator"
    try:
        emulator = _demo_emulator(pace)
        keywords = {
            **emulator.keywords(backend),
            "role": emulator.role(backend),
            "idle_timeout": timedelta(minutes=15),
            "tags": {"purpose": "sessionkit-demo"},
        }
        code, expected = DEMO_CODE, DEMO_EXPECTED
        code_on_spark = endpoint_on_spark = False
        if spark is not None:
            code_on_spark, endpoint_on_spark = spark.back(emulator, backend)
            if code_on_spark:
                code, expected = DEMO_SPARK_CODE, DEMO_SPARK_EXPECTED
            if endpoint_on_spark:
                # Glue serves an endpoint only to sessions opened for Spark Connect.
                keywords["spark_connect"] = True
        step = "open"
        print("opening a session; provisioning:", flush=True)
        progress = _Progress(_demo_policy(emulator), out)
        session = _open_session(backend, keywords, wait=True, timeout=None, progress=progress)
        with session:
            print(f"session id:   {session.id}")
            print(f"state:        {session.state.value} ({session.info.native_state})")
            step = "read usage"
            print(f"usage:        {_format_usage(session.refresh().usage)}")
            step = "run a statement"
            where = " (on the local Spark)" if code_on_spark else ""
            print(f"running:      {code}{where}", flush=True)
            try:
                result = session.run(code)
            except NotSupportedError as exc:
                print(f"statement:    not supported ({exc})")
                step = "get the Spark Connect endpoint"
                endpoint = session.endpoint()
                # The URL only: the token (and spark_connect_url, which embeds it) is a secret.
                print(f"endpoint:     {endpoint.url}")
                print(f"token until:  {_iso(endpoint.expires_at) or '-'} (token not shown)")
            else:
                if result.output is None:
                    print("output:       (not available from the emulator)")
                else:
                    print(f"output:       {result.output}")
                    if result.output.strip() != expected:
                        raise RuntimeError(f"expected {expected!r}, got {result.output!r}")
            if endpoint_on_spark:
                step = "connect with spark()"
                _demo_spark_client(session)
            step = "stop"
            print("stopping:", flush=True)
            session.stop()
            progress.show()
            # Polls may use a light status call; the full record carries the final usage.
            info = session.refresh()
            print(f"state:        {info.state.value} ({info.native_state})")
            print(f"usage:        {_format_usage(info.usage)}")
            if info.state is not SessionState.STOPPED:
                raise RuntimeError(f"the session ended {info.state.value}, not STOPPED")
    except Exception as exc:
        print(f"== {backend}: FAILED at step '{step}' ==", flush=True)
        _error(f"{backend} demo failed at step '{step}': {_describe(exc)}")
        return False
    print(f"== {backend}: ok in {time.perf_counter() - began:.1f} s ==", flush=True)
    return True


# ----------------------------------------------------------------------------- parsing


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line, like every other error."""

    def error(self, message: str) -> NoReturn:
        """Print the usage error on one line and exit with code 2."""
        _error(f"{message} (see '{self.prog} --help')")
        raise SystemExit(2)


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def _positive_number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _add_common(parser: argparse.ArgumentParser, *, location: bool = True) -> None:
    group = parser.add_argument_group("where")
    group.add_argument(
        "--backend", default="glue", metavar="NAME", help="the backend (default: glue)"
    )
    group.add_argument("--region", help="the AWS region (default: your AWS configuration)")
    where = group.add_mutually_exclusive_group()
    where.add_argument("--profile", help="the AWS profile (from ~/.aws/config) to use")
    where.add_argument(
        "--local",
        action="store_true",
        help="use a local emulator that lives only while this command runs (no AWS account)",
    )
    if location:
        group.add_argument(
            "--application-id", metavar="ID", help="the EMR Serverless application (emr-serverless)"
        )
        group.add_argument("--work-group", metavar="NAME", help="the Spark work group (athena)")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON on stdout")


def _add_open_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("session")
    group.add_argument(
        "--role",
        metavar="ARN",
        help="the IAM role ARN the session runs as (required on glue and emr-serverless; "
        "--local uses a stand-in role)",
    )
    group.add_argument("--name", help="a name for the session (glue: its id)")
    group.add_argument(
        "--idle-timeout",
        type=_positive_number,
        metavar="MINUTES",
        help="stop the session after this many idle minutes",
    )
    group.add_argument(
        "--conf",
        type=_key_value,
        action="append",
        metavar="KEY=VALUE",
        help="a Spark property (repeatable)",
    )
    group.add_argument(
        "--tag", type=_key_value, action="append", metavar="KEY=VALUE", help="a tag (repeatable)"
    )
    group.add_argument(
        "--start-application",
        action="store_true",
        help="emr-serverless: start the application first if it is stopped",
    )


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser of the ``sessionkit`` command.

    Returns:
        The parser; each subcommand sets ``func`` to the function that runs it.
    """
    from sessionkit.states import SessionState

    parser = _Parser(
        prog="sessionkit",
        description="Open, inspect, run code in and stop interactive Spark sessions on AWS "
        "Glue, EMR Serverless and Athena, or try it all locally with 'sessionkit demo'.",
        epilog="Exit codes: 0 ok, 1 failed, 2 usage or configuration error, 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"sessionkit {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    demo = commands.add_parser(
        "demo",
        help="run the session lifecycle on the local emulator (no AWS account)",
        description="Open a session on the local emulator, show it provisioning, print its "
        "state, id and usage, run a statement (or show the Spark Connect endpoint where the "
        "service has no statement API), stop it and show it stopped. With the spark extra "
        "installed the statement runs on a real local Spark, started once for the whole run.",
    )
    demo.add_argument(
        "--backend",
        default="glue",
        choices=[*DEMO_BACKENDS, "all"],
        help="the backend to demonstrate, or all (default: glue)",
    )
    demo.add_argument(
        "--spark",
        choices=["auto", "on", "off"],
        default="auto",
        help="run the statements on a real local Spark (needs the spark extra and Java): auto "
        "uses it when installed, on requires it, off never starts it (default: auto)",
    )
    demo.add_argument(
        "--pace",
        type=float,
        default=DEMO_PACE,
        metavar="SECONDS",
        help=f"real seconds per emulated second (default {DEMO_PACE}; 0 runs instantly)",
    )
    demo.set_defaults(func=_cmd_demo)

    open_ = commands.add_parser("open", help="open a session and wait until it is READY")
    _add_common(open_)
    _add_open_options(open_)
    open_.add_argument(
        "--no-wait", action="store_true", help="return right after the start request"
    )
    open_.add_argument(
        "--timeout",
        type=_positive_number,
        metavar="SECONDS",
        help="the longest wait for READY (default: 20 minutes)",
    )
    open_.set_defaults(func=_cmd_open)

    status = commands.add_parser("status", help="show a session")
    status.add_argument("session_id", metavar="SESSION_ID")
    _add_common(status)
    status.set_defaults(func=_cmd_status)

    wait = commands.add_parser("wait", help="wait until a session is READY")
    wait.add_argument("session_id", metavar="SESSION_ID")
    _add_common(wait)
    wait.add_argument(
        "--timeout",
        type=_positive_number,
        metavar="SECONDS",
        help="the longest wait (default: 20 minutes)",
    )
    wait.set_defaults(func=_cmd_wait)

    stop = commands.add_parser("stop", help="stop a session and wait until it has stopped")
    stop.add_argument("session_id", metavar="SESSION_ID")
    _add_common(stop)
    stop.add_argument("--no-wait", action="store_true", help="only request the stop")
    stop.add_argument(
        "--delete", action="store_true", help="also delete the stopped session's record (glue)"
    )
    stop.add_argument(
        "--timeout",
        type=_positive_number,
        metavar="SECONDS",
        help="the longest wait for STOPPED (default: 20 minutes)",
    )
    stop.set_defaults(func=_cmd_stop)

    list_ = commands.add_parser("list", help="list sessions, one per line")
    _add_common(list_)
    list_.add_argument(
        "--state",
        nargs="+",
        action="extend",
        type=str.upper,
        choices=[state.value for state in SessionState],
        metavar="STATE",
        help="only sessions in these states (e.g. READY STOPPED)",
    )
    list_.set_defaults(func=_cmd_list)

    run = commands.add_parser(
        "run",
        help="run code in a new session (or --session-id) and print its output",
        description="Open a session (or attach to --session-id), run CODE, print its output, "
        "and stop the session if this command opened it; an attached session is left running.",
    )
    run.add_argument("code", metavar="CODE", help="the code to run (PySpark, spark bound)")
    run.add_argument("--session-id", metavar="ID", help="run in this existing session")
    _add_common(run)
    _add_open_options(run)
    run.add_argument(
        "--timeout",
        type=_positive_number,
        metavar="SECONDS",
        help="cancel the statement on the service after this long (default: no limit)",
    )
    run.set_defaults(func=_cmd_run)
    return parser


# ----------------------------------------------------------------------------- errors


def _describe(exc: BaseException) -> str:
    """One line saying what went wrong, with the command-line option to change if known."""
    from sessionkit.errors import InvalidConfigError

    text = str(exc) or type(exc).__name__
    if isinstance(exc, InvalidConfigError) and exc.field in _FLAGS:
        text += f" (command line: {_FLAGS[exc.field]})"
    elif not _is_expected(exc):
        text = f"{type(exc).__name__}: {text}"
    return " ".join(text.split())


def _is_expected(exc: BaseException) -> bool:
    """Errors that mean "the request failed", as opposed to a bug in sessionkit."""
    from sessionkit.errors import SessionKitError

    if isinstance(exc, (SessionKitError, _UsageError)):
        return True
    if "botocore" in sys.modules:
        import botocore.exceptions

        return isinstance(exc, (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError))
    return False


def _unknown_local_session(args: argparse.Namespace, exc: BaseException) -> bool:
    """Whether a --local command was given the id of a session its emulator never saw."""
    from sessionkit.errors import ServiceError

    return (
        bool(getattr(args, "local", False) and getattr(args, "session_id", None))
        and isinstance(exc, ServiceError)
        and not exc.retryable
    )


def _exit_code(exc: BaseException) -> int:
    from sessionkit.errors import BackendNotFoundError, InvalidConfigError

    if isinstance(exc, (InvalidConfigError, BackendNotFoundError, _UsageError)):
        return 2
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``sessionkit`` command.

    Args:
        argv: The arguments after the program name; default ``sys.argv[1:]``.

    Returns:
        The exit code: 0 success, 1 a failed step or service error, 2 a usage or configuration
        error, 130 interrupted.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors end parsing
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    command: Callable[[argparse.Namespace], int] = args.func
    try:
        return command(args)
    except KeyboardInterrupt:
        _error("interrupted")
        return 130
    except BrokenPipeError:
        # The reader went away (`sessionkit list | head`): not an error of ours. Point stdout
        # at nothing so the interpreter's final flush does not complain either.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except Exception as exc:
        if not _is_expected(exc) and os.environ.get(DEBUG_ENV) == "1":
            raise
        message = _describe(exc)
        if _unknown_local_session(args, exc):
            message += f" ({_LOCAL_HINT})"
        if not _is_expected(exc):
            message += f" (this looks like a bug; set {DEBUG_ENV}=1 for the traceback)"
        _error(message)
        return _exit_code(exc)

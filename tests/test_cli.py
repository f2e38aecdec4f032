"""The ``sessionkit`` command, run in-process through ``main([...])``."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sessionkit import cli
from sessionkit.session import Session
from sessionkit.testing import Emulator, StatementOutcome, python_executor

ROLE = "arn:aws:iam::123456789012:role/SessionkitTest"

_BACKEND_MODULES = {
    "glue": ("sessionkit.backends.aws.glue", "sessionkit.testing.aws.glue"),
    "emr-serverless": (
        "sessionkit.backends.aws.emr_serverless",
        "sessionkit.testing.aws.emr_serverless",
    ),
    "athena": ("sessionkit.backends.aws.athena", "sessionkit.testing.aws.athena"),
}


def needs(backend: str) -> None:
    """Skip unless the backend and its emulated service exist."""
    for module in _BACKEND_MODULES[backend]:
        pytest.importorskip(module)


@pytest.fixture(autouse=True)
def fresh_local(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test gets its own process-local emulator behind --local."""
    monkeypatch.setattr(cli, "_local", None)


@pytest.fixture
def demo_emulators(monkeypatch: pytest.MonkeyPatch) -> list[Emulator]:
    """The emulators the demo makes, kept for inspection."""
    made: list[Emulator] = []
    original = cli._demo_emulator

    def keep(pace: float) -> Emulator:
        emulator = original(pace)
        made.append(emulator)
        return emulator

    monkeypatch.setattr(cli, "_demo_emulator", keep)
    return made


def local() -> Emulator:
    assert cli._local is not None, "no --local command ran yet"
    return cli._local.emulator


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"expected one error line, got: {err!r}"
    assert lines[0].startswith("sessionkit: error: ")
    return lines[0]


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    assert cli.main([*argv, "--json"]) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


# ----------------------------------------------------------------------------- demo


def test_demo_shows_the_whole_glue_lifecycle(
    capsys: pytest.CaptureFixture[str], demo_emulators: list[Emulator]
) -> None:
    assert cli.main(["demo", "--spark", "off", "--pace", "0"]) == 0
    out = capsys.readouterr().out
    (emulator,) = demo_emulators
    (session_id,) = emulator.glue._sessions
    assert session_id in out
    assert re.search(r"STARTING\s+\(PROVISIONING\)", out), "no progress while provisioning"
    assert "READY" in out
    assert re.search(r"usage:\s+dpu_seconds=", out)
    assert re.search(r"output:\s+42\b", out)
    assert out.rindex("STOPPED") > out.index("42"), "stopped after running"
    assert emulator.alive_sessions() == {}


def test_demo_paces_itself_to_a_few_seconds(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The demo's only real waiting is the virtual clock's pacing; add up what it asks for
    # instead of timing the run (wall time on a shared machine proves nothing).
    paced: list[float] = []
    monkeypatch.setattr("sessionkit.testing.clock.time", types.SimpleNamespace(sleep=paced.append))
    assert cli.main(["demo", "--backend", "all", "--spark", "off"]) == 0
    assert paced, "the demo should pace its progress against real time"
    assert sum(paced) < 3.0
    assert capsys.readouterr().out.count("STOPPED") >= 3


@pytest.mark.parametrize("backend", ["glue", "emr-serverless", "athena"])
def test_demo_on_each_backend(
    backend: str, capsys: pytest.CaptureFixture[str], demo_emulators: list[Emulator]
) -> None:
    needs(backend)
    assert cli.main(["demo", "--backend", backend, "--spark", "off", "--pace", "0"]) == 0
    out = capsys.readouterr().out
    assert "READY" in out and "STOPPED" in out and "usage:" in out
    if backend == "emr-serverless":
        # No statement API: the demo shows the Spark Connect endpoint, never its token.
        assert "not supported" in out
        assert re.search(r"endpoint:\s+https://", out)
        assert "token=" not in out
    else:
        assert re.search(r"output:\s+42\b", out)
    assert demo_emulators[0].alive_sessions() == {}


def test_demo_all_runs_every_backend(capsys: pytest.CaptureFixture[str]) -> None:
    for backend in cli.DEMO_BACKENDS:
        needs(backend)
    assert cli.main(["demo", "--backend", "all", "--spark", "off", "--pace", "0"]) == 0
    out = capsys.readouterr().out
    for backend in cli.DEMO_BACKENDS:
        assert f"== {backend}: ok" in out
    assert "3 of 3 backends ok" in out


def test_demo_fails_when_a_step_fails(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[Emulator] = []
    original = cli._demo_emulator

    def failing(pace: float) -> Emulator:
        emulator = original(pace)
        emulator.glue.script_next("FAILED", after=2.0, reason="no capacity (scripted)")
        made.append(emulator)
        return emulator

    monkeypatch.setattr(cli, "_demo_emulator", failing)
    assert cli.main(["demo", "--spark", "off", "--pace", "0"]) == 1
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert lines[0].startswith("sessionkit: error: glue demo failed at step 'open'")
    assert "no capacity (scripted)" in lines[0]
    assert "Traceback" not in captured.err
    assert made[0].alive_sessions() == {}


def test_demo_fails_when_the_statement_output_is_wrong(
    capsys: pytest.CaptureFixture[str],
    demo_emulators: list[Emulator],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cli, "DEMO_CODE", "print(6 * 9)")
    assert cli.main(["demo", "--spark", "off", "--pace", "0"]) == 1
    assert "failed at step 'run a statement'" in capsys.readouterr().err
    # The stop was requested on the way out: a minute later (idle timeout: 15) it is gone.
    demo_emulators[0].clock.advance(60)
    assert demo_emulators[0].alive_sessions() == {}


# ----------------------------------------------------------------------------- demo on real Spark


class FakeSparkServer:
    """Stands in for LocalSparkConnect where only the demo's handling of the server is tested."""

    url = "sc://localhost:15002"
    token = "fake-spark-token"

    def __init__(self, fail_start: BaseException | None = None) -> None:
        self.fail_start = fail_start
        self.startup_seconds: float | None = None
        self.running = False
        self.stops = 0

    def start(self) -> FakeSparkServer:
        if self.fail_start is not None:
            raise self.fail_start
        self.running = True
        self.startup_seconds = 0.1
        return self

    def stop(self) -> None:
        self.running = False
        self.stops += 1


def fake_spark(
    monkeypatch: pytest.MonkeyPatch,
    server: FakeSparkServer,
    executor: Callable[[str], StatementOutcome],
) -> None:
    """Make the demo find real Spark, and get ``server`` and ``executor`` when it asks."""
    monkeypatch.setattr(cli, "_spark_missing", lambda: None)
    monkeypatch.setattr(cli, "_demo_spark_server", lambda: server)
    monkeypatch.setattr(cli, "_demo_executor", lambda _server: executor)


@pytest.fixture
def no_pyspark(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every import of PySpark and gRPC fail, as on an install without the spark extra."""
    for name in list(sys.modules):
        if name.split(".")[0] in ("pyspark", "grpc"):
            monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "pyspark", None)
    monkeypatch.setitem(sys.modules, "grpc", None)


@pytest.fixture
def no_server_expected(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse() -> Any:
        raise AssertionError("the demo started a Spark server")

    monkeypatch.setattr(cli, "_demo_spark_server", refuse)


@pytest.mark.usefixtures("no_pyspark", "no_server_expected")
def test_demo_spark_auto_without_pyspark_says_how_to_enable_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["demo", "--pace", "0"]) == 0
    captured = capsys.readouterr()
    (line,) = [line for line in captured.out.splitlines() if line.startswith("real Spark:")]
    assert "off" in line and cli.SPARK_EXTRA in line
    assert re.search(r"output:\s+42\b", captured.out), "the emulator-only demo still runs"
    assert captured.err == ""


@pytest.mark.usefixtures("no_pyspark", "no_server_expected")
def test_demo_spark_on_without_pyspark_fails_with_one_line_naming_the_extra(
    capsys: pytest.CaptureFixture[str], demo_emulators: list[Emulator]
) -> None:
    assert cli.main(["demo", "--spark", "on", "--pace", "0"]) == 2
    captured = capsys.readouterr()
    line = one_error_line(captured.err)
    assert "--spark on" in line and cli.SPARK_EXTRA in line
    assert captured.out == ""
    assert demo_emulators == [], "no session was opened"


@pytest.mark.usefixtures("no_server_expected")
def test_demo_spark_on_without_java_fails_with_one_line_naming_java(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("pyspark.sql.connect.session")
    from sessionkit.errors import NotSupportedError
    from sessionkit.testing import spark

    def no_java() -> str:
        raise NotSupportedError("no java")

    monkeypatch.setattr(spark, "_java", no_java)
    assert cli.main(["demo", "--spark", "on", "--pace", "0"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "Java" in line and "JAVA_HOME" in line


def test_demo_stops_the_spark_server_and_the_session_on_ctrl_c(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    demo_emulators: list[Emulator],
) -> None:
    def interrupted(code: str) -> StatementOutcome:
        raise KeyboardInterrupt

    server = FakeSparkServer()
    fake_spark(monkeypatch, server, interrupted)
    assert cli.main(["demo", "--spark", "on", "--pace", "0"]) == 130
    out = capsys.readouterr().out
    assert "real Spark:   on:" in out and "(on the local Spark)" in out
    assert server.stops == 1 and not server.running
    (emulator,) = demo_emulators
    assert emulator.glue.endpoint_url == server.url, "the endpoint led to the local Spark"
    emulator.clock.advance(60)  # the stop was requested on the way out
    assert emulator.alive_sessions() == {}


def test_demo_fails_in_one_line_when_the_spark_server_does_not_start(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    demo_emulators: list[Emulator],
) -> None:
    server = FakeSparkServer(
        fail_start=RuntimeError("the server did not listen within 1 s:\nlast log line")
    )
    fake_spark(monkeypatch, server, python_executor)
    assert cli.main(["demo", "--spark", "auto", "--pace", "0"]) == 1
    err = capsys.readouterr().err
    assert "last log line" in err, "the server's log tail is shown"
    (error,) = [line for line in err.splitlines() if line.startswith("sessionkit: error:")]
    assert "could not start the local Spark" in error and "--spark off" in error
    assert server.stops == 1
    assert demo_emulators == []


def live_processes_in_group(pgid: int) -> list[str]:
    """The processes of group ``pgid`` that are still running (as ``"pid state"``).

    Zombies are left out: Spark's launcher script leaves a finished shell behind, and reaping
    orphans is up to the machine's init process, not to sessionkit.
    """
    proc = Path("/proc")
    if not proc.is_dir():  # no procfs: the whole group, zombies included, must be gone
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return []
        return [f"group {pgid}"]
    running = []
    for stat in proc.glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # ended while we looked
            continue
        # The command name is in parentheses and may hold spaces: split after the last ")".
        state, _ppid, group = text[text.rindex(")") + 2 :].split()[:3]
        if int(group) == pgid and state not in ("Z", "X"):
            running.append(f"{text.split()[0]} {state}")
    return running


@pytest.mark.spark
@pytest.mark.timeout(300)
def test_demo_runs_on_a_real_local_spark_and_stops_it(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    demo_emulators: list[Emulator],
) -> None:
    missing = cli._spark_missing()
    if missing is not None:
        reason = "; ".join(missing)
        if os.environ.get("SESSIONKIT_REQUIRE_SPARK") == "1":
            pytest.fail(f"SESSIONKIT_REQUIRE_SPARK=1 but {reason}")
        pytest.skip(reason)
    from sessionkit.testing.spark import LocalSparkConnect

    servers: list[LocalSparkConnect] = []
    pids: set[int] = set()

    class Recorded(LocalSparkConnect):
        def start(self) -> LocalSparkConnect:
            super().start()
            # Private on purpose: the test must see that the very process it started is gone.
            assert self._process is not None
            pids.add(self._process.pid)
            return self

    def record() -> LocalSparkConnect:
        server = Recorded()
        servers.append(server)
        return server

    monkeypatch.setattr(cli, "_demo_spark_server", record)
    assert cli.main(["demo", "--backend", "glue", "--spark", "on", "--pace", "0"]) == 0
    captured = capsys.readouterr()
    out = captured.out
    assert re.search(r"real Spark:\s+on: local Spark .*started in \d+\.\d s", out)
    assert re.search(r"^output:\s+10$", out, re.M), "the statement ran on the real Spark"
    assert f"range({cli.DEMO_SPARK_ROWS}).count() = {cli.DEMO_SPARK_ROWS}" in out
    assert out.rindex("STOPPED") > out.index("range(5).count()")
    (emulator,) = demo_emulators
    assert emulator.alive_sessions() == {}
    (server,) = servers
    assert server.token not in out + captured.err
    assert "stopped the local Spark Connect server" in out
    assert not server.running
    (pid,) = pids
    # The server ran in a process group of its own: none of it may be left running.
    assert live_processes_in_group(pid) == []


# ----------------------------------------------------------------------------- --local commands


def test_local_open_list_status_wait_stop(capsys: pytest.CaptureFixture[str]) -> None:
    opened = run_json(
        capsys, "open", "--local", "--name", "cli-test", "--idle-timeout", "1.5",
        "--conf", "spark.sql.shuffle.partitions=8", "--tag", "team=data",
    )  # fmt: skip
    assert opened["id"] == "cli-test"
    assert opened["state"] == "READY"
    assert opened["idle_timeout_seconds"] == 120.0  # minutes are rounded up
    request = local().glue._sessions["cli-test"].request
    assert request["DefaultArguments"]["--conf"] == "spark.sql.shuffle.partitions=8"
    assert request["Tags"]["team"] == "data"

    listed = run_json(capsys, "list", "--local")
    assert [(s["id"], s["state"]) for s in listed] == [("cli-test", "READY")]

    assert cli.main(["status", "cli-test", "--local"]) == 0
    status = capsys.readouterr().out
    assert re.search(r"^state:\s+READY$", status, re.M)
    assert re.search(r"^usage:\s+dpu_seconds=", status, re.M)

    assert cli.main(["wait", "cli-test", "--local"]) == 0
    assert re.search(r"^state:\s+READY$", capsys.readouterr().out, re.M)

    stopped = run_json(capsys, "stop", "cli-test", "--local")
    assert stopped["state"] == "STOPPED"
    assert run_json(capsys, "list", "--local", "--state", "READY") == []
    assert [s["id"] for s in run_json(capsys, "list", "--local", "--state", "stopped")] == [
        "cli-test"
    ]


def test_local_list_prints_one_line_per_session(capsys: pytest.CaptureFixture[str]) -> None:
    ids = [run_json(capsys, "open", "--local", "--no-wait")["id"] for _ in range(2)]
    assert cli.main(["list", "--local"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    for line, session_id in zip(lines, ids, strict=True):
        assert line.split()[:3] == [session_id, "STARTING", "PROVISIONING"]
        assert re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", line)


def test_open_no_wait_then_wait_until_ready(capsys: pytest.CaptureFixture[str]) -> None:
    opened = run_json(capsys, "open", "--local", "--no-wait")
    assert opened["state"] == "STARTING"
    assert cli.main(["wait", opened["id"], "--local", "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["state"] == "READY"
    assert "READY" in captured.err  # progress goes to stderr, JSON stays clean


def test_stop_no_wait_and_delete(capsys: pytest.CaptureFixture[str]) -> None:
    first = run_json(capsys, "open", "--local")["id"]
    assert run_json(capsys, "stop", first, "--local", "--no-wait")["state"] == "STOPPING"
    second = run_json(capsys, "open", "--local")["id"]
    assert cli.main(["stop", second, "--local", "--delete"]) == 0
    capsys.readouterr()
    assert second not in local().glue._sessions


@pytest.mark.parametrize("backend", ["emr-serverless", "athena"])
def test_local_open_creates_the_location(backend: str, capsys: pytest.CaptureFixture[str]) -> None:
    needs(backend)
    opened = run_json(capsys, "open", "--local", "--backend", backend)
    assert opened["state"] == "READY"
    listed = run_json(capsys, "list", "--local", "--backend", backend)
    assert [s["id"] for s in listed] == [opened["id"]]
    assert run_json(capsys, "stop", opened["id"], "--local", "--backend", backend)["state"] == (
        "STOPPED"
    )


# ----------------------------------------------------------------------------- run


def test_run_local_prints_the_output_and_stops_what_it_opened(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["run", "--local", "print(6*7)"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "42\n"
    assert local().alive_sessions() == {}
    assert local().created_sessions() == {"glue": 1}


def test_run_in_an_attached_session_leaves_it_running(capsys: pytest.CaptureFixture[str]) -> None:
    session_id = run_json(capsys, "open", "--local")["id"]
    result = run_json(capsys, "run", "--local", "--session-id", session_id, "x = 5\nx * 2")
    assert result["output"] == "10"
    assert result["session_id"] == session_id
    assert local().glue.status(session_id) == "READY"


def test_run_failure_is_one_line_and_still_stops(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", "--local", "1 / 0"]) == 1
    line = one_error_line(capsys.readouterr().err.splitlines()[-1])
    assert "ZeroDivisionError" in line
    assert local().alive_sessions() == {}


def test_ctrl_c_exits_130_and_stops_the_session(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(self: Session, code: str, timeout: Any = None) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(Session, "run", interrupted)
    assert cli.main(["run", "--local", "print(1)"]) == 130
    assert one_error_line(capsys.readouterr().err.splitlines()[-1]).endswith("interrupted")
    (session_id,) = local().glue._sessions
    assert local().glue.status(session_id) in ("STOPPING", "STOPPED")


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "argv",
    [
        ["list", "--backend", "nope"],
        ["open", "--local", "--backend", "nope"],
        ["demo", "--backend", "nope"],
    ],
)
def test_unknown_backend_is_a_usage_error_naming_it(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(argv) == 2
    assert "nope" in one_error_line(capsys.readouterr().err)


def test_open_without_role_names_the_option(capsys: pytest.CaptureFixture[str]) -> None:
    # Rejected before any call: the machine has no AWS account and no network.
    assert cli.main(["open", "--region", "eu-west-1"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "role" in line and "--role" in line


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["open", "--local", "--conf", "novalue"], "KEY=VALUE"),
        (["open", "--local", "--idle-timeout", "-3"], "--idle-timeout"),
        (["list", "--local", "--state", "ASLEEP"], "ASLEEP"),
        (["status", "--local"], "SESSION_ID"),
        (["open", "--local", "--profile", "p"], "--profile"),
        (["status", "x", "--profile", "sessionkit-no-such-profile"], "no-such-profile"),
        ([], "COMMAND"),
    ],
)
def test_usage_errors_are_one_line(
    argv: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(argv) == 2
    assert named in one_error_line(capsys.readouterr().err)


def test_service_errors_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["status", "no-such-session", "--local"]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert "EntityNotFoundException" in line and "no-such-session" in line
    assert "ends with the command that opened them" in line  # why --local cannot find it


def test_unexpected_errors_are_one_line_too(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise TypeError("boom")

    monkeypatch.setattr(cli._Target, "__init__", broken)
    monkeypatch.delenv(cli.DEBUG_ENV, raising=False)
    assert cli.main(["list", "--local"]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert "TypeError: boom" in line and cli.DEBUG_ENV in line


# ----------------------------------------------------------------------------- entry points


def test_help_works(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("demo", "open", "status", "wait", "stop", "list", "run"):
        assert command in out
    assert cli.main(["run", "--help"]) == 0
    assert "--session-id" in capsys.readouterr().out


def test_importing_the_cli_imports_nothing_heavy() -> None:
    code = (
        "import sys, sessionkit.cli; "
        "print(sorted(m for m in ('boto3', 'botocore', 'tenacity', 'sessionkit.testing') "
        "if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30
    )
    assert result.stdout.strip() == "[]"


def test_python_m_sessionkit_runs_the_demo() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sessionkit", "demo", "--spark", "off", "--pace", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "STOPPED" in result.stdout


def test_a_closed_pipe_is_not_an_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import os

    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader (`| head`) has gone away before anything is written
    stream = os.fdopen(write_end, "w", buffering=1)
    monkeypatch.setattr(sys, "stdout", stream)
    try:
        assert cli.main(["demo", "--spark", "off", "--pace", "0"]) == 0
    finally:
        stream.close()
    assert "error" not in capsys.readouterr().err

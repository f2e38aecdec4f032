"""``sessionkit demo``: every emulated backend, with and without a real local Spark."""

from __future__ import annotations

import re
import sys
import types
from collections.abc import Callable
from typing import Any

import pytest

from sessionkit import cli
from sessionkit.cli import backends, demo
from sessionkit.testing import Emulator, StatementOutcome, python_executor


@pytest.fixture
def demo_emulators(monkeypatch: pytest.MonkeyPatch) -> list[Emulator]:
    """The emulators the demo makes, kept for inspection."""
    made: list[Emulator] = []
    original = demo.make_emulator

    def keep(pace: float) -> Emulator:
        emulator = original(pace)
        made.append(emulator)
        return emulator

    monkeypatch.setattr(demo, "make_emulator", keep)
    return made


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"expected one error line, got: {err!r}"
    assert lines[0].startswith("sessionkit: error: ")
    return lines[0]


def test_demo_shows_the_whole_glue_lifecycle(
    capsys: pytest.CaptureFixture[str], demo_emulators: list[Emulator]
) -> None:
    assert cli.main(["demo", "-b", "glue", "--spark", "off", "--pace", "0"]) == 0
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


def test_the_timeline_and_the_summary_read_one_clock(
    capsys: pytest.CaptureFixture[str], demo_emulators: list[Emulator]
) -> None:
    assert cli.main(["demo", "-b", "glue", "--spark", "off", "--pace", "0"]) == 0
    out = capsys.readouterr().out
    last = re.findall(r"^\s+(\d+\.\d)s\s+STOPPED", out, re.M)[-1]
    summary = re.search(r"== glue: ok, (\d+\.\d) s on the emulator's clock", out)
    assert summary is not None
    assert summary.group(1) == last
    assert float(last) == pytest.approx(demo_emulators[0].clock.monotonic(), abs=0.1)


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


@pytest.mark.parametrize("backend", backends.emulated())
def test_demo_on_each_backend(
    backend: str, capsys: pytest.CaptureFixture[str], demo_emulators: list[Emulator]
) -> None:
    assert cli.main(["demo", "--backend", backend, "--spark", "off", "--pace", "0"]) == 0
    out = capsys.readouterr().out
    assert "READY" in out and "STOPPED" in out and "usage:" in out
    if backends.row(backend).statements:
        assert re.search(r"output:\s+42\b", out)
    else:
        # No statement API: the demo shows the Spark Connect endpoint, never its token.
        assert "no statement API" in out
        assert re.search(r"endpoint:\s+\S+", out)
        assert "token=" not in out
    assert demo_emulators[0].alive_sessions() == {}


def test_demo_all_runs_every_emulated_backend(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["demo", "--spark", "off", "--pace", "0"]) == 0  # all is the default
    out = capsys.readouterr().out
    names = backends.emulated()
    for backend in names:
        assert f"== {backend}: ok" in out
    assert f"{len(names)} of {len(names)} backends ok" in out


def test_demo_fails_when_a_step_fails(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[Emulator] = []
    original = demo.make_emulator

    def failing(pace: float) -> Emulator:
        emulator = original(pace)
        emulator.glue.script_next("FAILED", after=2.0, reason="no capacity (scripted)")
        made.append(emulator)
        return emulator

    monkeypatch.setattr(demo, "make_emulator", failing)
    assert cli.main(["demo", "-b", "glue", "--spark", "off", "--pace", "0"]) == 1
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
    monkeypatch.setattr(demo, "CODE", "print(6 * 9)")
    assert cli.main(["demo", "-b", "glue", "--spark", "off", "--pace", "0"]) == 1
    assert "failed at step 'run a statement'" in capsys.readouterr().err
    # The stop was requested on the way out: a minute later (idle timeout: 15) it is gone.
    demo_emulators[0].clock.advance(60)
    assert demo_emulators[0].alive_sessions() == {}


# ----------------------------------------------------------------------------- real Spark


class FakeSparkServer:
    """Stands in for LocalSparkConnect where only the demo's handling of the server is tested."""

    url = "sc://localhost:15002"
    port = 15002
    token = "fake-spark-token"

    def __init__(self, fail_start: BaseException | None = None) -> None:
        # The emulator's proxy in front of the server registers itself here (nothing listens
        # on the port: the proxy's channel connects lazily, and no test here calls through it).
        self._proxies: list[Any] = []
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
    server: Any,
    executor: Callable[[str], StatementOutcome] | None = None,
) -> None:
    """Make the demo find real Spark, and get ``server`` (and ``executor``) when it asks."""
    monkeypatch.setattr(demo, "spark_missing", lambda: None)
    monkeypatch.setattr(demo, "spark_server", lambda: server)
    if executor is not None:
        monkeypatch.setattr(demo, "spark_executor", lambda _server: executor)


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

    monkeypatch.setattr(demo, "spark_server", refuse)


@pytest.mark.usefixtures("no_pyspark", "no_server_expected")
def test_demo_spark_auto_without_pyspark_says_how_to_enable_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["demo", "-b", "glue", "--pace", "0"]) == 0
    captured = capsys.readouterr()
    (line,) = [line for line in captured.out.splitlines() if line.startswith("real Spark:")]
    assert "off" in line and demo.SPARK_EXTRA in line
    assert "sessionkit-spark[spark]" in demo.SPARK_EXTRA
    assert re.search(r"output:\s+42\b", captured.out), "the emulator-only demo still runs"
    assert captured.err == ""


@pytest.mark.usefixtures("no_pyspark", "no_server_expected")
def test_demo_spark_on_without_pyspark_fails_with_one_line_naming_the_extra(
    capsys: pytest.CaptureFixture[str], demo_emulators: list[Emulator]
) -> None:
    assert cli.main(["demo", "--spark", "on", "--pace", "0"]) == 2
    captured = capsys.readouterr()
    line = one_error_line(captured.err)
    assert "--spark on" in line and demo.SPARK_EXTRA in line
    assert captured.out == ""
    assert demo_emulators == [], "no session was opened"


@pytest.mark.usefixtures("no_server_expected")
def test_demo_spark_on_without_java_fails_with_one_line_naming_java(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("pyspark.sql.connect.session")  # PySpark (third party) is there
    from sessionkit.errors import NotSupportedError
    from sessionkit.testing import spark

    def no_java() -> str:
        raise NotSupportedError("no java")

    monkeypatch.setattr(spark, "java_launcher", no_java)
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
    assert cli.main(["demo", "-b", "glue", "--spark", "on", "--pace", "0"]) == 130
    captured = capsys.readouterr()
    assert "real Spark:   on:" in captured.out and "(on the local Spark)" in captured.out
    assert "after Ctrl-C" in captured.err
    assert server.stops == 1 and not server.running
    (emulator,) = demo_emulators
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


class SharedServer:
    """The session's one Spark server, lent to the demo: its start and stop are the test's."""

    def __init__(self, server: Any) -> None:
        self._server = server
        self.url = server.url
        self.token = server.token
        self.startup_seconds = server.startup_seconds
        self.stops = 0

    def start(self) -> SharedServer:
        return self

    def stop(self) -> None:
        self.stops += 1

    def __getattr__(self, name: str) -> Any:
        return getattr(self._server, name)


@pytest.mark.spark
@pytest.mark.timeout(300)
def test_demo_runs_every_backend_on_a_real_local_spark(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    demo_emulators: list[Emulator],
    spark_server: Any,
) -> None:
    shared = SharedServer(spark_server)
    monkeypatch.setattr(demo, "spark_server", lambda: shared)
    assert cli.main(["demo", "--backend", "all", "--spark", "on", "--pace", "0"]) == 0
    captured = capsys.readouterr()
    out = captured.out
    names = backends.emulated()
    assert f"{len(names)} of {len(names)} backends ok" in out
    for name in names:
        if backends.row(name).statements:
            assert f"== {name} on the local emulator" in out
    assert re.search(r"^output:\s+10$", out, re.M), "a statement ran on the real Spark"
    assert f"range({demo.SPARK_ROWS}).count() = {demo.SPARK_ROWS}" in out
    for emulator in demo_emulators:
        assert emulator.alive_sessions() == {}
    assert spark_server.token not in out + captured.err
    assert shared.stops == 1

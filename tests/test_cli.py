"""The ``sessionkit`` command, run in-process through ``main([...])``."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from typing import Any

import pytest

from sessionkit import cli
from sessionkit.session import Session
from sessionkit.testing import Emulator

ROLE = "arn:aws:iam::123456789012:role/SessionkitTest"

_BACKEND_MODULES = {
    "glue": ("sessionkit.backends.glue", "sessionkit.testing._glue"),
    "emr-serverless": ("sessionkit.backends.emr_serverless", "sessionkit.testing._emr_serverless"),
    "athena": ("sessionkit.backends.athena", "sessionkit.testing._athena"),
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
    assert cli.main(["demo", "--pace", "0"]) == 0
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


def test_demo_finishes_within_seconds_at_its_real_pace(
    capsys: pytest.CaptureFixture[str],
) -> None:
    began = time.perf_counter()
    assert cli.main(["demo"]) == 0
    assert time.perf_counter() - began < 3.0
    assert "STOPPED" in capsys.readouterr().out


@pytest.mark.parametrize("backend", ["glue", "emr-serverless", "athena"])
def test_demo_on_each_backend(
    backend: str, capsys: pytest.CaptureFixture[str], demo_emulators: list[Emulator]
) -> None:
    needs(backend)
    assert cli.main(["demo", "--backend", backend, "--pace", "0"]) == 0
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
    assert cli.main(["demo", "--backend", "all", "--pace", "0"]) == 0
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
    assert cli.main(["demo", "--pace", "0"]) == 1
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
    assert cli.main(["demo", "--pace", "0"]) == 1
    assert "failed at step 'run a statement'" in capsys.readouterr().err
    # The stop was requested on the way out: a minute later (idle timeout: 15) it is gone.
    demo_emulators[0].clock.advance(60)
    assert demo_emulators[0].alive_sessions() == {}


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
    assert request["Tags"] == {"team": "data"}

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
        [sys.executable, "-m", "sessionkit", "demo", "--pace", "0"],
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
        assert cli.main(["demo", "--pace", "0"]) == 0
    finally:
        stream.close()
    assert "error" not in capsys.readouterr().err

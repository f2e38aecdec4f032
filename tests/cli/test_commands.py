"""The session commands, run in-process through ``main([...])`` with ``--local``."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sessionkit import cli
from sessionkit.cli import backends, commands, local
from sessionkit.session import Session
from sessionkit.testing import Emulator


def emulator() -> Emulator:
    made = local.current()
    assert made is not None, "no --local command ran yet"
    return made.emulator


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"expected one error line, got: {err!r}"
    assert lines[0].startswith("sessionkit: error: ")
    return lines[0]


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    assert cli.main([*argv, "--json"]) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


# ----------------------------------------------------------------------------- --local commands


def test_local_open_list_status_wait_stop(capsys: pytest.CaptureFixture[str]) -> None:
    opened = run_json(
        capsys, "open", "--local", "-b", "glue", "--name", "cli-test", "--idle-timeout", "90s",
        "--conf", "spark.sql.shuffle.partitions=8", "--tag", "team=data",
    )  # fmt: skip
    assert opened["id"] == "cli-test"
    assert opened["state"] == "READY"
    assert opened["idle_timeout_seconds"] == 120.0  # minutes are rounded up
    request = emulator().glue._sessions["cli-test"].request
    assert request["DefaultArguments"]["--conf"] == "spark.sql.shuffle.partitions=8"
    assert request["Tags"]["team"] == "data"

    listed = run_json(capsys, "list", "--local", "-b", "glue")
    assert [(s["id"], s["state"]) for s in listed] == [("cli-test", "READY")]

    assert cli.main(["status", "cli-test", "--local", "-b", "glue"]) == 0
    status = capsys.readouterr().out
    assert re.search(r"^state:\s+READY$", status, re.M)
    assert re.search(r"^usage:\s+dpu_seconds=", status, re.M)

    assert cli.main(["wait", "cli-test", "--local", "-b", "glue"]) == 0
    assert re.search(r"^state:\s+READY$", capsys.readouterr().out, re.M)

    stopped = run_json(capsys, "stop", "cli-test", "--local", "-b", "glue")
    assert stopped["state"] == "STOPPED"
    assert run_json(capsys, "list", "--local", "-b", "glue", "--state", "READY") == []
    listed = run_json(capsys, "list", "--local", "-b", "glue", "--state", "stopped")
    assert [s["id"] for s in listed] == ["cli-test"]


def test_idle_timeout_takes_a_unit(capsys: pytest.CaptureFixture[str]) -> None:
    opened = run_json(capsys, "open", "--local", "-b", "glue", "--idle-timeout", "30m")
    assert emulator().glue._sessions[opened["id"]].request["IdleTimeout"] == 30
    assert cli.main(["open", "--local", "-b", "glue", "--idle-timeout", "30"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "--idle-timeout" in line and "30m" in line  # says which unit to add


def test_local_list_prints_one_line_per_session(capsys: pytest.CaptureFixture[str]) -> None:
    ids = [run_json(capsys, "open", "--local", "-b", "glue", "--no-wait")["id"] for _ in range(2)]
    assert cli.main(["list", "--local", "-b", "glue"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    for line, session_id in zip(lines, ids, strict=True):
        assert line.split()[:3] == [session_id, "STARTING", "PROVISIONING"]
        assert re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", line)


def test_open_no_wait_then_wait_until_ready(capsys: pytest.CaptureFixture[str]) -> None:
    opened = run_json(capsys, "open", "--local", "-b", "glue", "--no-wait")
    assert opened["state"] == "STARTING"
    assert cli.main(["wait", opened["id"], "--local", "-b", "glue", "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["state"] == "READY"
    assert "READY" in captured.err  # progress goes to stderr, JSON stays clean


def test_stop_no_wait_and_delete(capsys: pytest.CaptureFixture[str]) -> None:
    first = run_json(capsys, "open", "--local", "-b", "glue")["id"]
    assert run_json(capsys, "stop", first, "--local", "-b", "glue", "--no-wait")["state"] == (
        "STOPPING"
    )
    second = run_json(capsys, "open", "--local", "-b", "glue")["id"]
    assert cli.main(["stop", second, "--local", "-b", "glue", "--delete"]) == 0
    capsys.readouterr()
    assert second not in emulator().glue._sessions


def test_delete_is_refused_where_the_backend_cannot(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["stop", "x", "--local", "-b", "athena", "--delete"]) == 2
    assert "--delete" in one_error_line(capsys.readouterr().err)


@pytest.mark.parametrize("backend", backends.emulated())
def test_local_works_for_every_emulated_backend(
    backend: str, capsys: pytest.CaptureFixture[str]
) -> None:
    opened = run_json(capsys, "open", "--local", "--backend", backend)
    assert opened["state"] == "READY"
    listed = run_json(capsys, "list", "--local", "--backend", backend)
    assert [s["id"] for s in listed] == [opened["id"]]
    stopped = run_json(capsys, "stop", opened["id"], "--local", "--backend", backend)
    assert stopped["state"] == "STOPPED"


@pytest.mark.parametrize("spelling", ["GLUE", "Emr_Serverless", "emr-serverless", "EMRSERVERLESS"])
def test_backend_names_ignore_case_and_separators(
    spelling: str, capsys: pytest.CaptureFixture[str]
) -> None:
    opened = run_json(capsys, "open", "--local", "-b", spelling)
    assert opened["backend"] == backends.resolve(spelling)


def test_a_location_option_of_another_backend_is_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["list", "-b", "glue", "--work-group", "primary"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "--work-group" in line and "athena" in line


# ----------------------------------------------------------------------------- run


def test_run_local_prints_the_output_and_stops_what_it_opened(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["run", "--local", "-b", "glue", "print(6*7)"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "42\n"
    assert emulator().alive_sessions() == {}
    assert emulator().created_sessions() == {"glue": 1}


def test_run_reads_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script = tmp_path / "job.py"
    script.write_text("x = 6\nprint(x * 7)\n", encoding="utf-8")
    assert cli.main(["run", "--local", "-b", "glue", "-f", str(script)]) == 0
    assert capsys.readouterr().out == "42\n"


def test_run_reads_standard_input(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("print('from stdin')\n"))
    assert cli.main(["run", "--local", "-b", "glue", "-"]) == 0
    assert capsys.readouterr().out == "from stdin\n"


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["run", "--local", "-b", "glue"], "-f FILE"),
        (["run", "--local", "-b", "glue", "-f", "/no/such/file.py"], "/no/such/file.py"),
        (["run", "--local", "-b", "glue", "-f", "x.py", "print(1)"], "not both"),
    ],
)
def test_run_without_usable_code_is_a_usage_error(
    argv: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(argv) == 2
    assert named in one_error_line(capsys.readouterr().err)
    made = local.current()
    assert made is None or made.emulator.created_sessions() == {}


def test_run_refuses_a_backend_without_statements_before_provisioning(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["run", "--local", "-b", "emr-serverless", "print(1)"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "no statement API" in line and "glue" in line
    assert emulator().call_count() == 0


def test_run_in_an_attached_session_leaves_it_running(capsys: pytest.CaptureFixture[str]) -> None:
    session_id = run_json(capsys, "open", "--local", "-b", "glue")["id"]
    result = run_json(
        capsys, "run", "--local", "-b", "glue", "--session-id", session_id, "x = 5\nx * 2"
    )
    assert result["output"] == "10"
    assert result["session_id"] == session_id
    assert emulator().glue.status(session_id) == "READY"


def test_run_failure_is_one_line_and_still_stops(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", "--local", "-b", "glue", "1 / 0"]) == 1
    line = one_error_line(capsys.readouterr().err.splitlines()[-1])
    assert "ZeroDivisionError" in line
    assert emulator().alive_sessions() == {}


def test_ctrl_c_exits_130_stops_the_session_and_says_so(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(self: Session, code: str, timeout: Any = None) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(Session, "run", interrupted)
    assert cli.main(["run", "--local", "-b", "glue", "print(1)"]) == 130
    err = capsys.readouterr().err.splitlines()
    (session_id,) = emulator().glue._sessions
    assert one_error_line(err[-1]).endswith("interrupted")
    assert any(f"stopped glue session {session_id} after Ctrl-C" in line for line in err)
    assert emulator().glue.status(session_id) in ("STOPPING", "STOPPED")


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


def test_a_typo_in_a_backend_name_suggests_the_nearest(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["list", "-b", "athna"]) == 2
    assert "did you mean 'athena'" in one_error_line(capsys.readouterr().err)


def test_a_missing_backend_lists_the_backends(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["list"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "--backend" in line and "glue" in line and "athena" in line


def test_open_without_role_names_the_option(capsys: pytest.CaptureFixture[str]) -> None:
    # Rejected before any call: the machine has no cloud account and no network.
    assert cli.main(["open", "-b", "glue", "--region", "eu-west-1"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "role" in line and "--role" in line


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["open", "--local", "-b", "glue", "--conf", "novalue"], "KEY=VALUE"),
        (["open", "--local", "-b", "glue", "--idle-timeout", "-3m"], "--idle-timeout"),
        (["list", "--local", "-b", "glue", "--state", "ASLEEP"], "ASLEEP"),
        (["status", "--local", "-b", "glue"], "SESSION_ID"),
        (["open", "--local", "-b", "glue", "--profile", "p"], "--profile"),
        (["status", "x", "-b", "glue", "--profile", "sessionkit-no-such-profile"], "no-such"),
    ],
)
def test_usage_errors_are_one_line(
    argv: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(argv) == 2
    assert named in one_error_line(capsys.readouterr().err)


def test_errors_are_json_too_with_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["status", "no-such-session", "--local", "-b", "glue", "--json"]) == 1
    captured = capsys.readouterr()
    error = json.loads(captured.out)["error"]
    assert error["type"] == "ServiceError" and error["exit_code"] == 1
    assert error["code"] == "EntityNotFoundException"
    assert "no-such-session" in error["message"]
    one_error_line(captured.err)
    assert cli.main(["open", "--local", "-b", "glue", "--idle-timeout", "5", "--json"]) == 2
    assert json.loads(capsys.readouterr().out)["error"]["exit_code"] == 2


def test_service_errors_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["status", "no-such-session", "--local", "-b", "glue"]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert "EntityNotFoundException" in line and "no-such-session" in line
    assert "ends with the command that opened them" in line  # why --local cannot find it


def test_missing_credentials_exit_2_and_name_the_option(tmp_path: Path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("AWS_") and k not in ("SESSIONKIT_BACKEND", "COLUMNS")
    }
    # No credentials anywhere: empty config files and no instance metadata.
    env.update(
        AWS_CONFIG_FILE=str(tmp_path / "config"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "credentials"),
        AWS_EC2_METADATA_DISABLED="true",
    )
    done = subprocess.run(
        [sys.executable, "-m", "sessionkit", "status", "x", "-b", "glue", "--region", "eu-west-1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    line = one_error_line(done.stderr)
    assert "credentials" in line and "--profile" in line
    assert "boto3_session" not in line


def test_unexpected_errors_are_one_line_too(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise TypeError("boom")

    monkeypatch.setattr(commands.Target, "__init__", broken)
    monkeypatch.delenv(cli.DEBUG_ENV, raising=False)
    assert cli.main(["list", "--local", "-b", "glue"]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert "TypeError: boom" in line and cli.DEBUG_ENV in line

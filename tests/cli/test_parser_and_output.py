"""The parser built from the backend table, the output rules and the entry points."""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
from datetime import timedelta

import pytest

import sessionkit
from sessionkit import cli
from sessionkit.cli import backends, output, parser
from sessionkit.testing import Emulator


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_sessionkit_alone_prints_the_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: sessionkit")
    for command in ("demo", "open", "status", "wait", "stop", "list", "run"):
        assert command in out


def test_help_works(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--help"]) == 0
    assert "COMMAND" in capsys.readouterr().out
    assert cli.main(["run", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--session-id" in out and "-f FILE" in out


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    built = cli.build_parser()
    (action,) = [a for a in built._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def test_every_subcommand_has_a_description_and_lists_its_backends() -> None:
    commands = _subcommands()
    assert {"demo", "open", "status", "wait", "stop", "list", "run"} <= set(commands)
    for name, sub in commands.items():
        assert sub.description, f"{name} has no description"
        assert "backends:" in sub.description, f"{name} does not list its backends"
    run_backends = commands["run"].description.split("backends:")[1]  # type: ignore[union-attr]
    for row in backends.rows():
        assert (row.name in run_backends) == row.statements


def test_each_backend_contributes_its_cli_fields_as_options() -> None:
    open_help = _subcommands()["open"].format_help()
    for row in backends.rows():
        for field in row.cli_fields:
            assert backends.flag(field) in open_help, f"{row.name}: {field} has no option"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("30m", timedelta(minutes=30)),
        ("2h", timedelta(hours=2)),
        ("1d", timedelta(days=1)),
        ("1h30m", timedelta(minutes=90)),
    ],
)
def test_durations_take_a_unit(text: str, expected: timedelta) -> None:
    assert parser.duration(text) == expected


@pytest.mark.parametrize("text", ["30", "0m", "ten minutes", "5x"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parser.duration(text)


def test_wait_timeouts_also_take_plain_seconds() -> None:
    assert parser.timeout("45") == timedelta(seconds=45)
    assert parser.timeout("2m") == timedelta(minutes=2)


def test_lines_fit_the_terminal_width(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COLUMNS", "30")
    output.say("x" * 100 + "\nshort")
    lines = capsys.readouterr().out.splitlines()
    assert [len(line) for line in lines] == [30, 5]
    output.data("y" * 100)  # data (JSON, statement output) is never cut
    assert capsys.readouterr().out == "y" * 100 + "\n"


def test_output_to_a_pipe_is_left_whole(capsys: pytest.CaptureFixture[str]) -> None:
    output.say("z" * 300)
    assert capsys.readouterr().out == "z" * 300 + "\n"


def test_progress_updates_one_line_in_place_on_a_terminal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "40")
    emulator = Emulator()
    stream = Terminal()
    progress = output.Progress(emulator.poll_policy(), stream)
    session = sessionkit.open_session(
        "glue",
        wait=False,
        poll_policy=progress.policy,
        role=emulator.role("glue"),
        **emulator.keywords("glue"),
    )
    progress.follow(session)
    session.wait_until_ready()
    progress.show()
    progress.finish()
    session.stop(wait=False)
    text = stream.getvalue()
    assert "\r\x1b[K" in text
    updates = [part for line in text.split("\n") for part in line.split("\r\x1b[K") if part]
    assert all(len(part) <= 40 for part in updates)
    # One finished line per state (STARTING, READY), the elapsed time updated in between.
    finished = [line.rsplit("\r\x1b[K", 1)[-1] for line in text.split("\n") if line]
    assert [line.split()[1] for line in finished] == ["STARTING", "READY"]
    assert len(updates) > len(finished)


def test_progress_prints_plain_lines_elsewhere() -> None:
    emulator = Emulator()
    stream = io.StringIO()
    progress = output.Progress(emulator.poll_policy(), stream)
    session = sessionkit.open_session(
        "glue", poll_policy=progress.policy, role=emulator.role("glue"), wait=False,
        **emulator.keywords("glue"),
    )  # fmt: skip
    progress.follow(session)
    session.wait_until_ready()
    progress.show()
    session.stop(wait=False)
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue()
    assert [line.split()[1] for line in lines] == ["STARTING", "READY"]


def test_hints_name_options_not_keywords() -> None:
    from sessionkit.errors import InvalidConfigError, ServiceError

    glue = backends.row("glue")
    region = InvalidConfigError("region", "no region is set: pass region=... or set AWS_REGION")
    assert "pass --region or" in cli.describe(region, glue)
    credentials = ServiceError("no credentials; pass boto3_session=...", code="NoCredentials")
    assert "--profile" in cli.describe(credentials, glue)
    assert cli.exit_code(credentials, glue) == 2
    assert cli.exit_code(ServiceError("boom", code="InternalServerError"), glue) == 1


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
        [sys.executable, "-m", "sessionkit", "demo", "-b", "glue", "--spark", "off", "--pace", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
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
        assert cli.main(["demo", "-b", "glue", "--spark", "off", "--pace", "0"]) == 0
    finally:
        stream.close()
    assert "error" not in capsys.readouterr().err

"""The progress line follows the public ``on_progress=`` callback of the waits."""

from __future__ import annotations

import io

import pytest

import sessionkit
from sessionkit import cli
from sessionkit.cli import output
from sessionkit.testing import Emulator


def test_each_state_the_callback_reports_is_one_line_with_the_time() -> None:
    emulator = Emulator()
    stream = io.StringIO()
    progress = output.Progress(emulator.poll_policy(), stream, live=False)
    starting = sessionkit.Progress(
        state=sessionkit.SessionState.STARTING, native_state="PROVISIONING", elapsed=0.0
    )
    progress.on_progress(starting)
    progress.on_progress(starting)  # nothing changed: no second line
    emulator.clock.advance(4.0)
    progress.on_progress(
        sessionkit.Progress(state=sessionkit.SessionState.READY, native_state="READY", elapsed=4)
    )
    lines = stream.getvalue().splitlines()
    assert [line.split() for line in lines] == [
        ["0.0s", "STARTING", "(PROVISIONING)"],
        ["4.0s", "READY", "(READY)"],
    ]


def test_open_shows_what_the_wait_reports(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[sessionkit.Progress] = []
    original = output.Progress.on_progress

    def spy(self: output.Progress, progress: sessionkit.Progress) -> None:
        seen.append(progress)
        original(self, progress)

    monkeypatch.setattr(output.Progress, "on_progress", spy)
    assert cli.main(["open", "-b", "glue", "--local"]) == 0
    assert [p.state for p in seen][-1] is sessionkit.SessionState.READY
    err = capsys.readouterr().err
    assert "READY" in err and "(PROVISIONING)" in err

"""on_progress: a callback on every poll that sees something change."""

from __future__ import annotations

import logging
from typing import Any

import attrs
import pytest

from sessionkit import InvalidConfigError, Progress, SessionState, StatementState, open_session
from sessionkit.testing import Emulator


def wired(emulator: Emulator, backend: str) -> dict[str, Any]:
    return {
        "role": emulator.role(backend),
        "poll_policy": emulator.poll_policy(),
        **emulator.keywords(backend),
    }


def test_open_session_reports_each_change_once_with_elapsed_time(emulator: Emulator) -> None:
    reports: list[Progress] = []
    # The prior's schedule would poll once, just after the expected ready time; a plain
    # schedule polls the emulated start (6 s) several times, so repeats are seen.
    keywords = wired(emulator, "glue")
    keywords["poll_policy"] = attrs.evolve(keywords["poll_policy"], follow_prior=False)
    with open_session("glue", on_progress=reports.append, **keywords) as session:
        pass
    states = [r.state for r in reports]
    assert states[0] is SessionState.STARTING
    assert states[-1] is SessionState.READY
    # Only changes are reported, though the wait polled STARTING several times.
    keys = [(r.state, r.native_state, r.progress) for r in reports]
    assert len(keys) == len(set(keys))
    assert emulator.call_count("glue", "GetSession") > len(reports)
    assert reports[-1].elapsed >= emulator.glue.timeline.provisioning - 10
    assert all(r.session_id == session.id for r in reports)
    # Glue reports its own start-up progress, as a fraction.
    assert all(r.progress is not None and 0 <= r.progress <= 1 for r in reports)


def test_a_raising_callback_is_logged_and_ignored(
    emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(progress: Progress) -> None:
        raise RuntimeError("display went away")

    keywords = wired(emulator, "athena")
    with (
        caplog.at_level(logging.WARNING, logger="sessionkit"),
        open_session("athena", on_progress=broken, **keywords) as session,
    ):
        assert session.state is SessionState.READY
    assert any("on_progress" in r.getMessage() for r in caplog.records)


def test_run_and_wait_until_stopped_report_too(emulator: Emulator) -> None:
    statement: list[Progress] = []
    stopping: list[Progress] = []
    with open_session("glue", **wired(emulator, "glue")) as session:
        result = session.run("print(1)", on_progress=statement.append)
        session.stop(wait=False)
        session.wait_until_stopped(on_progress=stopping.append)
    assert statement[-1].state is StatementState.SUCCEEDED
    assert {p.statement_id for p in statement} == {result.id}
    assert [p.state for p in stopping][-1] is SessionState.STOPPED


def test_a_callback_that_is_not_callable_fails_before_any_call(emulator: Emulator) -> None:
    with pytest.raises(InvalidConfigError) as caught:
        open_session("glue", on_progress="print", **wired(emulator, "glue"))
    assert caught.value.field == "on_progress"
    assert emulator.call_count() == 0

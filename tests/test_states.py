from __future__ import annotations

import logging

import pytest

from sessionkit import SessionState, StatementState
from sessionkit.states import normalize_state


def test_session_state_is_a_str_enum() -> None:
    assert SessionState.READY == "READY"
    assert str(SessionState.READY) == "READY"
    assert SessionState("TIMED_OUT") is SessionState.TIMED_OUT


def test_groups() -> None:
    terminal = {s for s in SessionState if s.is_terminal}
    alive = {s for s in SessionState if s.is_alive}
    accepts = {s for s in SessionState if s.accepts_work}
    assert terminal == {SessionState.STOPPED, SessionState.FAILED, SessionState.TIMED_OUT}
    assert alive == {
        SessionState.PENDING,
        SessionState.STARTING,
        SessionState.READY,
        SessionState.BUSY,
        SessionState.DEGRADED,
    }
    assert accepts == {SessionState.READY}
    assert not SessionState.UNKNOWN.is_alive and not SessionState.UNKNOWN.is_terminal
    assert not SessionState.STOPPING.is_alive and not SessionState.STOPPING.is_terminal


def test_statement_states() -> None:
    assert {s for s in StatementState if s.is_terminal} == {
        StatementState.SUCCEEDED,
        StatementState.FAILED,
        StatementState.CANCELLED,
    }


def test_normalize_unknown_logs(caplog: pytest.LogCaptureFixture) -> None:
    table = {"UP": SessionState.READY}
    assert (
        normalize_state("UP", table, unknown=SessionState.UNKNOWN, source="x") is SessionState.READY
    )
    with caplog.at_level(logging.WARNING):
        state = normalize_state("SIDEWAYS", table, unknown=SessionState.UNKNOWN, source="x")
    assert state is SessionState.UNKNOWN
    assert "SIDEWAYS" in caplog.text
    assert (
        normalize_state(None, table, unknown=SessionState.UNKNOWN, source="x")
        is SessionState.UNKNOWN
    )

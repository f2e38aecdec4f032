"""The helpers every backend shares (sessionkit.backends.base)."""

from __future__ import annotations

from sessionkit.backends.base import native_states
from sessionkit.states import SessionState

TABLE = {
    "SUBMITTED": SessionState.PENDING,
    "STARTING": SessionState.STARTING,
    "IDLE": SessionState.READY,
    "BUSY": SessionState.READY,
    "FAILED": SessionState.FAILED,
}


def test_native_states_inverts_the_table_in_its_order() -> None:
    assert native_states(TABLE, frozenset({SessionState.READY})) == ["IDLE", "BUSY"]
    wanted = frozenset({SessionState.PENDING, SessionState.STARTING})
    assert native_states(TABLE, wanted) == ["SUBMITTED", "STARTING"]


def test_a_state_no_native_maps_to_selects_nothing() -> None:
    assert native_states(TABLE, frozenset({SessionState.TIMED_OUT})) == []


def test_unknown_cannot_be_filtered_on_the_service() -> None:
    assert native_states(TABLE, frozenset({SessionState.READY, SessionState.UNKNOWN})) is None

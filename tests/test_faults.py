"""Resilience under faults: the fault matrix, and each retry rule on its own.

The matrix (``-m slow``, run in CI) runs many full lifecycles per backend and fault profile on
the emulator's virtual clock; ``benchmarks/faults.py`` prints the same matrix as a table.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from botocore.config import Config

import sessionkit
from sessionkit import SessionState
from sessionkit.testing import Emulator
from tests.faultmatrix import (
    PROFILES,
    ROLE,
    STOP_OPERATIONS,
    Profile,
    _location,
    available_backends,
    run_cell,
)

BACKENDS = available_backends()
START = {"glue": "CreateSession", "emr-serverless": "StartSession", "athena": "StartSession"}
TOKEN = {"glue": "Id", "emr-serverless": "clientToken", "athena": "ClientRequestToken"}


@pytest.mark.slow
@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
@pytest.mark.parametrize("backend", BACKENDS)
def test_fault_matrix(backend: str, profile: Profile) -> None:
    cell = run_cell(backend, profile, single=40, fleet=30)
    assert cell.untyped == 0, cell.errors
    assert cell.duplicates == 0
    assert cell.leaked == 0
    assert cell.completed + cell.failed == cell.lifecycles == 70
    # Every scripted failure fails its lifecycle; beyond those, a call may exhaust its retries
    # (8 throttled answers in a row at 30% is a 1 in 15,000 event), but only rarely.
    assert cell.scripted <= cell.failed <= cell.scripted + 2, cell.failures
    assert cell.scripted == (35 if profile.name == "fails mid-start" else 0)


def _connection(emulator: Emulator, backend: str, **client: Any) -> dict[str, Any]:
    return {
        "client": emulator.client(backend, **client),
        "poll_policy": emulator.poll_policy(),
        **_location(emulator, backend),
    }


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_start_whose_answer_is_lost_creates_one_session(backend: str) -> None:
    emulator = Emulator()
    connection = _connection(emulator, backend)
    emulator.inject("read_timeout", service=backend, operations=START[backend], count=1)
    session = sessionkit.open_session(backend, role=ROLE, **connection)
    starts = [c for c in emulator.calls if c.operation == START[backend]]
    # The retry either gets the same session back (client tokens) or is told it exists (Glue
    # Ids), and adopts it.
    assert len(starts) == 2 and starts[0].outcome == "read_timeout"
    assert len({c.params[TOKEN[backend]] for c in starts}) == 1
    assert emulator.created_sessions()[backend] == 1
    assert session.state is SessionState.READY
    session.stop()


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_client_retrying_inside_botocore_still_creates_one_session(backend: str) -> None:
    emulator = Emulator()
    retrying = Config(retries={"mode": "standard", "total_max_attempts": 3})
    connection = _connection(emulator, backend, config=retrying)
    emulator.inject("read_timeout", service=backend, operations=START[backend], count=1)
    session = sessionkit.open_session(backend, role=ROLE, **connection)
    assert emulator.created_sessions()[backend] == 1
    assert session.state is SessionState.READY
    session.stop()
    emulator.clock.advance(600)
    assert emulator.alive_sessions() == {}


@pytest.mark.parametrize("kind", ["throttle", "server_error", "connection_error", "read_timeout"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_every_operation_is_retried_through_transient_faults(backend: str, kind: Any) -> None:
    emulator = Emulator()
    connection = _connection(emulator, backend)
    for operation in (START[backend], "GetSession", "ListSessions", STOP_OPERATIONS[backend]):
        emulator.inject(kind, service=backend, operations=operation, count=2)
    session = sessionkit.open_session(backend, role=ROLE, **connection)
    session.refresh()
    listed = [i.id for i in sessionkit.list_sessions(backend, **connection)]
    assert session.id in listed
    session.stop()
    assert session.state is SessionState.STOPPED
    hit = Counter(c.operation for c in emulator.calls if c.outcome != "ok")
    for operation in (START[backend], "GetSession", "ListSessions", STOP_OPERATIONS[backend]):
        assert hit[operation] >= 2, operation
    assert emulator.created_sessions()[backend] == 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_stop_is_retried_until_it_is_accepted(backend: str) -> None:
    emulator = Emulator()
    connection = _connection(emulator, backend)
    session = sessionkit.open_session(backend, role=ROLE, **connection)
    stop = STOP_OPERATIONS[backend]
    emulator.inject("throttle", service=backend, operations=stop, count=11)
    with session:
        pass
    outcomes = [c.outcome for c in emulator.calls if c.operation == stop]
    assert len(outcomes) == 12 and outcomes[-1] == "ok"
    emulator.clock.advance(600)
    assert emulator.alive_sessions() == {}


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("backend", BACKENDS)
def test_every_fault_at_every_call_index_leaks_nothing_and_stops_nothing_foreign(
    backend: str,
) -> None:
    from tests.faultmatrix import INDEX_FAULTS, run_index_matrix

    cell = run_index_matrix(backend)
    print(
        f"\n{backend}: {cell.scenarios} scenarios ({cell.calls + 1} call indices x "
        f"{len(INDEX_FAULTS)} faults)"
    )
    assert cell.scenarios == (cell.calls + 1) * len(INDEX_FAULTS)
    assert cell.untyped == 0, cell.examples
    assert cell.leaked == 0, cell.examples
    assert cell.duplicates == 0, cell.examples
    assert cell.foreign_stopped == 0, cell.examples

"""wait_all asks only for what can still change, and its cost follows the awaited sessions."""

from __future__ import annotations

import math
from typing import Any

import attrs
import pytest

import sessionkit
from sessionkit.fleet import FleetPoller
from sessionkit.session import Session
from sessionkit.states import SessionState
from sessionkit.testing import Emulator


def _location(backend: str, others: int, awaited: int) -> tuple[Emulator, list[Session]]:
    """``others`` stopped sessions, then ``awaited`` starting ones, in one location."""
    emulator = Emulator(seed=11)
    keywords = emulator.keywords(backend)
    role = emulator.role(backend)
    extra = {"role": role} if role else {}
    unmetered = attrs.evolve(emulator.poll_policy(), budget=None)
    for _ in range(others):
        sessionkit.open_session(
            backend, wait=False, poll_policy=unmetered, **extra, **keywords
        ).stop(wait=False)
    emulator.clock.advance(60)
    sessions = [
        sessionkit.open_session(
            backend, wait=False, poll_policy=emulator.poll_policy(), **extra, **keywords
        )
        for _ in range(awaited)
    ]
    return emulator, sessions


@pytest.mark.parametrize(
    "backend, key, expected",
    [
        ("emr-serverless", "states", [["SUBMITTED", "STARTING"]]),
        # All five are still CREATING: the CREATED pass is not needed once all were seen.
        ("athena", "StateFilter", ["CREATING"]),
    ],
)
def test_the_fleet_lists_only_sessions_that_can_still_change(
    backend: str, key: str, expected: list[Any]
) -> None:
    emulator, sessions = _location(backend, others=120, awaited=5)
    poller = FleetPoller(sessions, timeout=600)
    # The plain listing is tried in the first round only: the awaited are not all on its first
    # page, or most of that page is others.
    poller.poll()
    first = len(emulator.calls)
    poller.poll()
    lists = [c for c in emulator.calls[first:] if c.operation == "ListSessions"]
    # From then on only the starting states are asked for, one pass per native state where the
    # API takes only one, and no further pass once every awaited session was seen.
    assert [c.params.get(key) for c in lists] == expected
    assert all(o.ok for o in poller.as_completed())


@pytest.mark.parametrize("backend", ["emr-serverless", "athena"])
def test_a_rounds_calls_do_not_grow_with_the_stopped_sessions_in_the_location(
    backend: str,
) -> None:
    def calls_per_round(others: int) -> float:
        emulator, sessions = _location(backend, others=others, awaited=10)
        poller = FleetPoller(sessions, timeout=600)
        poller.poll()  # the first round may try the plain listing
        first = len(emulator.calls)
        for _ in range(3):
            poller.poll()
        return (len(emulator.calls) - first) / 3

    # 300 stopped sessions are 3 to 6 pages of the plain listing; the filtered one skips them.
    assert calls_per_round(300) <= calls_per_round(0) + 1


def test_only_awaited_records_are_translated(monkeypatch: pytest.MonkeyPatch) -> None:
    from sessionkit.backends.aws import glue

    _, sessions = _location("glue", others=200, awaited=3)
    # Glue cannot filter: its pages carry every record, of which 3 are awaited.
    translated: list[str] = []
    original = glue.session_info

    def counting(record: Any) -> Any:
        translated.append(record["Id"])
        return original(record)

    monkeypatch.setattr(glue, "session_info", counting)
    poller = FleetPoller(sessions, timeout=600)
    assert poller._groups  # one group
    for group in poller._groups.values():
        # The plain listing, not the one narrowed to sessionkit's tags (which returns only 3).
        group.pages["tags"] = math.inf
    poller.poll()
    assert sorted(translated) == sorted(s.id for s in sessions)


def test_wait_all_at_scale_keeps_to_the_budget_and_sees_every_session() -> None:
    emulator, sessions = _location("emr-serverless", others=0, awaited=300)
    first = len(emulator.calls)
    infos = sessionkit.wait_all(sessions, timeout=600)
    assert all(i.state is SessionState.READY for i in infos)
    calls = emulator.calls[first:]
    seconds = emulator.clock.monotonic() - calls[0].at
    # The default budget: 10 calls per second on average, bursts of 20.
    assert len(calls) <= 20 + 10 * seconds

"""The list calls a fleet wait makes: narrowed to what can still change, page by page."""

from __future__ import annotations

import sys
from datetime import timedelta
from typing import Any

import attrs
import pytest

import sessionkit
from sessionkit.fleet import FleetPoller
from sessionkit.session import Session
from sessionkit.testing import Emulator
from sessionkit.waiting import PollPolicy, follow_shared_wait, poll_rounds


def _open(emulator: Emulator, backend: str, count: int, **extra: Any) -> list[Session]:
    keywords = emulator.keywords(backend)
    role = emulator.role(backend)
    unmetered = attrs.evolve(emulator.poll_policy(), budget=None)
    return [
        sessionkit.open_session(
            backend, wait=False, poll_policy=unmetered, role=role, **keywords, **extra
        )
        for _ in range(count)
    ]


def _history(emulator: Emulator, backend: str, count: int) -> None:
    for session in _open(emulator, backend, count):
        session.stop(wait=False)
    emulator.clock.advance(60)


# ----------------------------------------------------------------------------- the emulator


def test_emulated_athena_lists_newer_sessions_first_and_filters_one_state() -> None:
    emulator = Emulator(seed=3)
    client = emulator.client("athena")
    group = emulator.keywords("athena")["work_group"]
    ids = []
    for _ in range(3):
        ids.append(
            client.start_session(WorkGroup=group, EngineConfiguration={"MaxConcurrentDpus": 20})[
                "SessionId"
            ]
        )
        emulator.clock.advance(1)
    listed = client.list_sessions(WorkGroup=group)["Sessions"]
    assert [s["SessionId"] for s in listed] == ids[::-1]
    client.terminate_session(SessionId=ids[1])
    emulator.clock.advance(60)
    ended = client.list_sessions(WorkGroup=group, StateFilter="TERMINATED")["Sessions"]
    assert [s["SessionId"] for s in ended] == [ids[1]]


def test_emulated_emr_serverless_filters_states_and_creation_times() -> None:
    emulator = Emulator(seed=3)
    client = emulator.client("emr-serverless")
    application = emulator.keywords("emr-serverless")["application_id"]
    role = emulator.role("emr-serverless")
    early = client.start_session(applicationId=application, executionRoleArn=role)["sessionId"]
    emulator.clock.advance(30)
    cut = emulator.clock.now()
    emulator.clock.advance(30)
    late = client.start_session(applicationId=application, executionRoleArn=role)["sessionId"]

    def listed(**params: Any) -> list[str]:
        page = client.list_sessions(applicationId=application, **params)
        return [s["sessionId"] for s in page["sessions"]]

    assert listed(createdAtAfter=cut) == [late]
    assert listed(createdAtBefore=cut) == [early]
    assert listed(states=["SUBMITTED", "STARTING"]) == [late]
    assert set(listed(states=["STARTED", "IDLE"])) == {early}


def test_emulated_glue_filters_by_tags() -> None:
    emulator = Emulator(seed=3)
    client = emulator.client("glue")
    role = emulator.role("glue")
    command = {"Name": "glueetl", "PythonVersion": "3"}
    client.create_session(Id="a", Role=role, Command=command, Tags={"team": "x", "k": "1"})
    client.create_session(Id="b", Role=role, Command=command, Tags={"team": "x", "k": "2"})
    client.create_session(Id="c", Role=role, Command=command)
    assert client.list_sessions(Tags={"team": "x"})["Ids"] == ["a", "b"]
    assert client.list_sessions(Tags={"team": "x", "k": "2"})["Ids"] == ["b"]
    assert client.list_sessions()["Ids"] == ["a", "b", "c"]


# ----------------------------------------------------------------------------- the fleet's calls


def test_a_large_emr_serverless_fleet_lists_the_ready_ones_within_its_creation_range() -> None:
    emulator = Emulator(seed=5)
    _history(emulator, "emr-serverless", 120)
    emulator.emr_serverless.timeline.starting = 60
    sessions = _open(emulator, "emr-serverless", 150)
    policy = emulator.poll_policy()
    poller = FleetPoller(sessions, timeout=600, poll_policy=None)
    for session in sessions:
        session.poll_policy = policy
    first = emulator.call_count()
    outcomes = list(poller.as_completed())
    assert all(o.ok for o in outcomes)
    lists = [c for c in emulator.calls if c.operation == "ListSessions"][-poller.calls :]
    assert emulator.call_count() - first == poller.calls
    # The 120 stopped sessions of the location's history are never paged through: every call
    # but the first page of the plain listing asks for live states only, or is narrowed to
    # the awaited sessions' creation times.
    ended = {"FAILED", "TERMINATING", "TERMINATED"}
    history = [
        c
        for c in lists
        if "createdAtAfter" not in c.params and ended & set(c.params.get("states") or ended)
    ]
    assert len(history) == 1 and "states" not in history[0].params
    # Most rounds ask only for the READY sessions (150 starting ones are 3 pages).
    ready = [c for c in lists if c.params.get("states") == ["STARTED", "IDLE"]]
    assert len(ready) > len(lists) / 2


def test_outcomes_are_seen_at_the_page_that_shows_them() -> None:
    emulator = Emulator(seed=5)
    emulator.glue.timeline.provisioning = 30
    sessions = _open(emulator, "glue", 3)
    policy = emulator.poll_policy()
    for session in sessions:
        session.poll_policy = policy
    poller = FleetPoller(sessions, timeout=600)
    rounds = poller.as_completed()
    first = next(rounds)
    # Yielded while its round still runs: the other two are not settled yet.
    assert first.ok and len(poller.outcomes) <= 3
    assert first.at is not None and first.at <= emulator.clock.monotonic()
    assert all(o.ok for o in [first, *rounds])


def test_no_emr_serverless_listing_for_arrivals_while_none_can_be_ready() -> None:
    emulator = Emulator(seed=5)
    emulator.emr_serverless.timeline.starting = 100
    sessions = _open(emulator, "emr-serverless", 120)
    policy = emulator.poll_policy()
    for session in sessions:
        session.poll_policy = policy
    poller = FleetPoller(sessions, timeout=600)
    poller.poll()  # learns the creation range
    first = emulator.call_count()
    poller.poll()
    ready = [
        c
        for c in emulator.calls[-(emulator.call_count() - first) :]
        if c.params.get("states") == ["STARTED", "IDLE"]
    ]
    # EMR Serverless sessions are not ready within a second of their start (its prior).
    assert ready == []


# ----------------------------------------------------------------------------- the engine


def test_poll_rounds_cut_the_last_pause_to_the_deadline() -> None:
    now = [0.0]
    policy = PollPolicy(first=1.0, multiplier=1.0, cap=1.0, jitter=0.0).on(
        lambda: now[0], lambda s: now.__setitem__(0, now[0] + s)
    )
    starts = [now[0] for _ in poll_rounds(policy, lambda: 2.5)]
    assert starts == [0.0, 1.0, 2.0, 2.5]


def test_a_single_wait_finds_no_shared_wait_without_a_running_fleet() -> None:
    emulator = Emulator(seed=5)
    (session,) = _open(emulator, "glue", 1)
    assert follow_shared_wait(session, lambda info: True, timedelta(seconds=3)) == (
        None,
        timedelta(seconds=3),
    )


def test_session_does_not_import_the_fleet() -> None:
    import subprocess

    code = (
        "import sys, sessionkit.session, sessionkit.waiting; "
        "print('sessionkit.fleet' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("backend", ["emr-serverless", "athena"])
def test_a_failure_among_a_large_fleet_ends_its_wait_fast(backend: str) -> None:
    emulator = Emulator(seed=5)
    _history(emulator, backend, 50)
    service = emulator.service(backend)
    if backend == "athena":
        emulator.athena.timeline.created = 40
    else:
        emulator.emr_serverless.timeline.starting = 40
    sessions = _open(emulator, backend, 120)
    service.script_next("FAILED", after=10, reason="no capacity")
    (failing,) = _open(emulator, backend, 1)
    policy = emulator.poll_policy()
    for session in [*sessions, failing]:
        session.poll_policy = policy
    start = emulator.clock.monotonic()
    poller = FleetPoller([*sessions, failing], timeout=600)
    outcomes = {o.info.id: o for o in poller.as_completed()}
    failed = outcomes[failing.id]
    assert failed.status == "failed" and failed.at is not None
    # Failed 10 s after its start; seen within a sweep or two.
    assert failed.at - start <= 10 + 2 * 5 + 2
    assert sum(o.ok for o in outcomes.values()) == 120


def test_without_a_creation_filter_the_history_is_not_paged_through() -> None:
    # EMR on EC2 filters by state but not by creation time: the plain listing is the whole
    # location, and listing the ended states would read its history.
    emulator = Emulator(seed=5)
    _history(emulator, "emr", 300)
    emulator.service("emr").timeline.starting = 30  # type: ignore[attr-defined]
    sessions = _open(emulator, "emr", 20)
    policy = emulator.poll_policy()
    for session in sessions:
        session.poll_policy = policy
    first = emulator.call_count()
    assert all(o.ok for o in FleetPoller(sessions, timeout=600).as_completed())
    lists = [c for c in emulator.calls[first:] if c.operation == "ListSessions"]
    ended = {"FAILED", "TERMINATING", "TERMINATED"}
    history = [c for c in lists if ended & set(c.params.get("SessionStates") or ended)]
    # The first page of the plain listing, and one sweep of the ended states cut at 2 pages.
    assert len(history) <= 3

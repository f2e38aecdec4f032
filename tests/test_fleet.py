"""wait_all and FleetPoller: one list call per page per round, outcomes, sharing, interrupts."""

from __future__ import annotations

import importlib.util
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest

import sessionkit
from sessionkit import FleetWaitError, InvalidConfigError, SessionState
from sessionkit.backends.base import Backend, PreparedStart
from sessionkit.errors import ServiceError, SessionFailedError, ThrottledError, WaitTimeoutError
from sessionkit.fleet import FLEET_POLL, FleetPoller, wait_all
from sessionkit.models import SessionConfig, SessionInfo
from sessionkit.session import Session
from sessionkit.testing import Emulator, VirtualClock
from sessionkit.testing.conformance import EmulatorHarness
from tests.conftest import ROLE

_EMULATED = {
    "glue": "sessionkit.testing.aws.glue",
    "emr-serverless": "sessionkit.testing.aws.emr_serverless",
    "athena": "sessionkit.testing.aws.athena",
}
_LIST = {"glue": "ListSessions", "emr-serverless": "ListSessions", "athena": "ListSessions"}
_DESCRIBE = {
    "glue": {"GetSession"},
    "emr-serverless": {"GetSession"},
    "athena": {"GetSession", "GetSessionStatus"},
}


@pytest.fixture(params=sorted(_EMULATED))
def harness(request: pytest.FixtureRequest) -> Iterator[EmulatorHarness]:
    name: str = request.param
    if importlib.util.find_spec(_EMULATED[name]) is None:
        pytest.skip(f"the {name} emulator is not built yet")
    harness = EmulatorHarness(name)
    yield harness
    harness.close()


def _slow_start(emulator: Emulator, backend: str, seconds: float) -> None:
    """Make every session of the emulated service take about ``seconds`` to become READY."""
    if backend == "glue":
        emulator.glue.timeline.provisioning = seconds
    elif backend == "emr-serverless":
        emulator.emr_serverless.timeline.starting = seconds
    else:
        emulator.athena.timeline.created = seconds


def _start_seconds(emulator: Emulator, backend: str) -> float:
    """How long the emulated service takes from the start call to READY."""
    if backend == "glue":
        return float(emulator.glue.timeline.provisioning)
    if backend == "emr-serverless":
        timeline = emulator.emr_serverless.timeline
        return float(timeline.submitted + timeline.starting)
    athena = emulator.athena.timeline
    return float(athena.creating + athena.created)


def _open_spaced(
    harness: EmulatorHarness, gaps: list[float]
) -> tuple[list[Session], dict[str, float]]:
    """Open one session after each gap of virtual time; return them and when each is READY."""
    emulator = harness.emulator
    sessions, ready_at = [], {}
    for gap in gaps:
        emulator.clock.advance(gap)
        session = sessionkit.open_session(
            harness.backend, wait=False, **harness.connection(), **harness.config()
        )
        sessions.append(session)
        ready_at[session.id] = emulator.clock.monotonic() + _start_seconds(
            emulator, harness.backend
        )
    return sessions, ready_at


def _calls(emulator: Emulator, since: int) -> Counter[str]:
    return Counter(c.operation for c in emulator.calls[since:])


# ----------------------------------------------------------------------------- on the emulator


def test_wait_all_lists_once_per_round_instead_of_describing(harness: EmulatorHarness) -> None:
    emulator = harness.emulator
    sessions, _ = _open_spaced(harness, [2.0] * 30)
    first = len(emulator.calls)
    infos = wait_all(sessions, timeout=600)
    assert [i.id for i in infos] == [s.id for s in sessions]
    assert all(i.state is SessionState.READY for i in infos)
    calls = _calls(emulator, first)
    duration = emulator.clock.monotonic() - emulator.calls[first].at
    rounds = duration / (FLEET_POLL.cap * (1 - FLEET_POLL.jitter)) + 2
    # A list pass per round (30 sessions fit one page; Athena filters on one native state, so
    # its starting states CREATING and CREATED take a pass each), describes only at the end.
    passes = 2 if harness.backend == "athena" else 1
    assert calls[_LIST[harness.backend]] <= passes * rounds
    assert sum(calls[op] for op in _DESCRIBE[harness.backend]) <= 3
    assert sum(calls.values()) / duration <= 1.0


def test_as_completed_yields_each_session_as_it_becomes_ready(harness: EmulatorHarness) -> None:
    _slow_start(harness.emulator, harness.backend, 60)
    sessions, ready_at = _open_spaced(harness, [0.0, 10.0, 3.0, 20.0, 7.0])
    given = [sessions[i] for i in (3, 0, 4, 1, 2)]
    poller = FleetPoller(given, timeout=600)
    seen = list(poller.as_completed())
    assert [o.info.id for o in seen] == [s.id for s in sessions]
    for outcome in seen:
        assert outcome.ok and outcome.session is not None and outcome.at is not None
        assert 0 <= outcome.at - ready_at[outcome.info.id] <= FLEET_POLL.cap


def test_fleet_wait_error_carries_every_outcome(emulator: Emulator, policy: Any) -> None:
    connection = {"client": emulator.client("glue"), "poll_policy": policy}
    emulator.glue.timeline.provisioning = 20
    fine = [sessionkit.open_session("glue", wait=False, role=ROLE, **connection) for _ in range(3)]
    emulator.glue.script_next("FAILED", after=5, reason="Insufficient capacity")
    failing = sessionkit.open_session("glue", wait=False, role=ROLE, **connection)
    emulator.glue.timeline.provisioning = 10_000
    slow = sessionkit.open_session("glue", wait=False, role=ROLE, **connection)
    start = emulator.clock.monotonic()
    with pytest.raises(FleetWaitError) as caught:
        wait_all([*fine, failing, slow], timeout=120)
    error = caught.value
    assert set(error.done) == {s.id for s in fine}
    assert set(error.failed) == {failing.id}
    assert set(error.timed_out) == {slow.id}
    failure = error.failed[failing.id].error
    assert isinstance(failure, SessionFailedError) and failure.reason == "Insufficient capacity"
    late = error.timed_out[slow.id]
    assert isinstance(late.error, WaitTimeoutError) and late.info.state is SessionState.STARTING
    assert "3 of 5" in str(error) and "1 failed, 1 timed out" in str(error)
    # A failure outranks the timeout: one-session handlers catch the fleet error too.
    assert isinstance(error, sessionkit.FleetFailedError)
    assert isinstance(error, SessionFailedError) and not isinstance(error, TimeoutError)
    assert error.info.id == failing.id
    # The last round is at the deadline, not before and not after.
    assert emulator.calls[-1].at == pytest.approx(start + 120)
    assert emulator.clock.monotonic() == pytest.approx(start + 120)


def test_throttled_and_failing_list_calls_are_polled_through(
    emulator: Emulator, policy: Any
) -> None:
    connection = {"client": emulator.client("glue"), "poll_policy": policy}
    sessions = [
        sessionkit.open_session("glue", wait=False, role=ROLE, **connection) for _ in range(8)
    ]
    emulator.inject("throttle", service="glue", operations="ListSessions", rate=0.3)
    emulator.inject("server_error", service="glue", operations="ListSessions", rate=0.2)
    emulator.inject("connection_error", service="glue", operations="ListSessions", count=2)
    infos = wait_all(sessions, timeout=300)
    assert {i.state for i in infos} == {SessionState.READY}
    outcomes = Counter(c.outcome for c in emulator.calls if c.operation == "ListSessions")
    assert outcomes["ThrottlingException"] and outcomes["connection_error"] == 2


def test_wait_all_until_stopped(emulator: Emulator, policy: Any) -> None:
    connection = {"client": emulator.client("glue"), "poll_policy": policy}
    sessions = [sessionkit.open_session("glue", role=ROLE, **connection) for _ in range(4)]
    for session in sessions:
        session.stop(wait=False)
    infos = wait_all(sessions, until="stopped", timeout=60)
    assert {i.state for i in infos} == {SessionState.STOPPED}
    assert emulator.alive_sessions() == {}


def test_until_must_be_ready_or_stopped() -> None:
    with pytest.raises(InvalidConfigError) as caught:
        wait_all([], until=SessionState.BUSY)
    assert caught.value.field == "until"
    assert wait_all([]) == []


def test_sessions_of_two_clients_are_listed_separately(emulator: Emulator, policy: Any) -> None:
    one, two = emulator.client("glue"), emulator.client("glue")
    sessions = [
        sessionkit.open_session("glue", wait=False, role=ROLE, client=c, poll_policy=policy)
        for c in (one, two, one, two)
    ]
    first = len(emulator.calls)
    poller = FleetPoller(sessions)
    poller.poll()
    assert _calls(emulator, first) == Counter({"ListSessions": 2})
    assert poller.calls == 2 and poller.rounds == 1


def test_ctrl_c_during_wait_all_stops_the_owned_sessions_only(
    emulator: Emulator, policy: Any
) -> None:
    connection = {"client": emulator.client("glue"), "poll_policy": policy}
    emulator.glue.timeline.provisioning = 300
    owned = [sessionkit.open_session("glue", wait=False, role=ROLE, **connection) for _ in range(3)]
    attached = sessionkit.attach_session("glue", owned[0].id, **connection)
    other = sessionkit.open_session("glue", wait=False, role=ROLE, **connection)
    foreign = sessionkit.attach_session("glue", other.id, **connection)
    sleeps = [0]

    def interrupting(seconds: float) -> None:
        sleeps[0] += 1
        if sleeps[0] == 3:
            raise KeyboardInterrupt
        emulator.clock.sleep(seconds)

    with pytest.raises(KeyboardInterrupt):
        wait_all(
            [*owned, foreign, attached],
            poll_policy=FLEET_POLL.on(emulator.clock.monotonic, interrupting),
        )
    assert {emulator.glue.status(s.id) for s in owned} == {"STOPPING"}
    assert emulator.glue.status(other.id) == "PROVISIONING"


def test_wait_until_ready_follows_a_running_wait_all(emulator: Emulator, policy: Any) -> None:
    """A thread's wait_until_ready makes no calls while another thread's wait_all polls."""
    connection = {"client": emulator.client("glue"), "poll_policy": policy}
    emulator.glue.timeline.provisioning = 30
    followed = sessionkit.open_session("glue", wait=False, role=ROLE, **connection)
    emulator.glue.timeline.provisioning = 90
    others = [
        sessionkit.open_session("glue", wait=False, role=ROLE, **connection) for _ in range(5)
    ]
    started, following = threading.Event(), threading.Event()

    def gated_sleep(seconds: float) -> None:
        # Hold the fleet's rounds until the follower has joined, so it cannot finish first.
        started.set()
        following.wait(timeout=10)
        emulator.clock.sleep(seconds)

    def follower_clock() -> float:
        following.set()
        return emulator.clock.monotonic()

    results: dict[str, Any] = {}

    def run_fleet() -> None:
        results["fleet"] = wait_all(
            [followed, *others], poll_policy=FLEET_POLL.on(emulator.clock.monotonic, gated_sleep)
        )

    thread = threading.Thread(target=run_fleet)
    thread.start()
    assert started.wait(timeout=10)
    mine = sessionkit.attach_session("glue", followed.id, client=connection["client"])
    mine.poll_policy = policy.on(follower_clock, emulator.clock.sleep)
    before = [c for c in emulator.calls if c.params.get("Id") == followed.id]
    info = mine.wait_until_ready(timeout=600)
    thread.join(timeout=10)
    assert info.state is SessionState.READY and mine.state is SessionState.READY
    after = [c for c in emulator.calls if c.params.get("Id") == followed.id]
    assert after == before  # no GetSession of its own: the fleet's ListSessions served it
    assert len(results["fleet"]) == 6


def test_wait_until_ready_polls_itself_when_no_fleet_serves_it(
    emulator: Emulator, policy: Any
) -> None:
    session = sessionkit.open_session(
        "glue", wait=False, role=ROLE, client=emulator.client("glue"), poll_policy=policy
    )
    poller = FleetPoller([session])  # built but never driven
    session.wait_until_ready(timeout=60)
    assert emulator.call_count("glue", "GetSession") >= 1
    assert poller.rounds == 0


# ----------------------------------------------------------------------------- list or describe


class FakeBackend(Backend):
    """Sessions that become READY at given times, listed in pages of ``page_size``."""

    name: ClassVar[str] = "fake"

    def __init__(self, clock: VirtualClock, *, page_size: int = 100) -> None:
        self.clock = clock
        self.page_size = page_size
        self.ready_at: dict[str, float] = {}
        self.gone: set[str] = set()
        self.list_error: ServiceError | None = None
        self.calls: list[str] = []

    def add(self, session_id: str, ready_at: float) -> None:
        self.ready_at[session_id] = ready_at

    def _info(self, session_id: str) -> SessionInfo:
        ready = self.clock.monotonic() >= self.ready_at[session_id]
        native = "READY" if ready else "PROVISIONING"
        return SessionInfo(
            id=session_id,
            backend=self.name,
            state=SessionState.READY if ready else SessionState.STARTING,
            native_state=native,
        )

    def prepare_start(self, config: SessionConfig) -> PreparedStart:
        raise NotImplementedError

    def _start(self, prepared: PreparedStart, *, attempt: int) -> SessionInfo:
        raise NotImplementedError

    def _describe(self, session_id: str) -> SessionInfo:
        self.calls.append("describe")
        if session_id in self.gone:
            raise ServiceError("gone", code="ResourceNotFoundException", request_id="r-1")
        return self._info(session_id)

    def _stop(self, session_id: str) -> None:
        self.calls.append("stop")

    def _list_page(
        self, states: frozenset[SessionState] | None, token: str | None
    ) -> tuple[list[SessionInfo], str | None]:
        self.calls.append("list")
        if self.list_error is not None:
            raise self.list_error
        ids = sorted(i for i in self.ready_at if i not in self.gone)
        start = int(token or 0)
        page = [self._info(i) for i in ids[start : start + self.page_size]]
        following = start + self.page_size
        return page, (str(following) if following < len(ids) else None)


def _fleet(
    listed: int, awaited: dict[str, float], page_size: int = 100
) -> tuple[VirtualClock, FakeBackend, list[Session], Any]:
    clock = VirtualClock()
    backend = FakeBackend(clock, page_size=page_size)
    for n in range(listed):
        backend.add(f"a-other-{n:05d}", 0.0)
    for session_id, ready in awaited.items():
        backend.add(session_id, ready)
    policy = FLEET_POLL.on(clock.monotonic, clock.sleep)
    sessions = [
        Session(backend, backend._info(i), owned=False, poll_policy=policy) for i in awaited
    ]
    return clock, backend, sessions, policy


def test_listing_stops_at_the_page_of_the_last_awaited_session() -> None:
    # Awaited ids sort first: they are all on page 1 of 10.
    _, backend, sessions, _ = _fleet(950, {f"0-mine-{n}": 5.0 for n in range(5)})
    poller = FleetPoller(sessions)
    poller.poll()
    assert backend.calls == ["list"]


def test_few_awaited_among_many_listed_are_described_one_by_one() -> None:
    # Awaited ids sort last: finding them takes 11 pages, describing them 3 calls.
    _, backend, sessions, _ = _fleet(1000, {f"z-mine-{n}": 30.0 for n in range(3)})
    poller = FleetPoller(sessions, timeout=600)
    poller.poll()
    assert backend.calls == ["list"] * 11
    backend.calls.clear()
    poller.poll()
    assert backend.calls == ["describe"] * 3
    assert [o.status for o in poller.as_completed()] == ["done"] * 3


def test_many_awaited_on_few_pages_are_listed() -> None:
    _, backend, sessions, _ = _fleet(100, {f"z-mine-{n:03d}": 30.0 for n in range(150)})
    poller = FleetPoller(sessions, timeout=600)
    for _ in range(3):
        backend.calls.clear()
        poller.poll()
        assert backend.calls == ["list"] * 3


def test_a_list_call_that_is_denied_falls_back_to_describes() -> None:
    _, backend, sessions, _ = _fleet(0, {f"mine-{n}": 10.0 for n in range(4)})
    backend.list_error = ServiceError("no", code="AccessDeniedException", request_id="r-2")
    poller = FleetPoller(sessions, timeout=600)
    poller.poll()
    assert backend.calls == ["list"] + ["describe"] * 4
    backend.calls.clear()
    poller.poll()
    assert backend.calls == ["describe"] * 4
    assert all(o.ok for o in poller.as_completed())


def test_a_throttled_list_skips_the_round() -> None:
    _, backend, sessions, _ = _fleet(0, {f"mine-{n}": 0.0 for n in range(4)})
    backend.list_error = ThrottledError("slow", code="ThrottlingException", retryable=True)
    poller = FleetPoller(sessions, timeout=600)
    assert poller.poll() == []
    assert backend.calls == ["list"]
    backend.list_error = None
    assert len(poller.poll()) == 4


def test_a_session_the_service_no_longer_knows_fails_with_the_service_error() -> None:
    _, backend, sessions, _ = _fleet(0, {"mine-1": 10.0, "mine-2": 10.0, "mine-3": 10.0})
    backend.gone.add("mine-2")
    poller = FleetPoller(sessions, timeout=600)
    with pytest.raises(FleetWaitError) as caught:
        poller.wait()
    failed = caught.value.failed["mine-2"]
    assert isinstance(failed.error, ServiceError) and failed.error.request_id == "r-1"
    assert set(caught.value.done) == {"mine-1", "mine-3"}


def test_the_deadline_counts_from_the_first_round() -> None:
    clock, _, sessions, _ = _fleet(0, {"mine-1": 1_000.0})
    poller = FleetPoller(sessions, timeout=50)
    clock.advance(500)
    start = clock.monotonic()
    outcomes = list(poller.as_completed())
    assert [o.status for o in outcomes] == ["timed_out"]
    assert outcomes[0].at == pytest.approx(start + 50)


def test_a_fleet_that_only_ran_late_raises_a_timeout(emulator: Emulator, policy: Any) -> None:
    connection = {"client": emulator.client("glue"), "poll_policy": policy}
    emulator.glue.timeline.provisioning = 10_000
    late = [sessionkit.open_session("glue", wait=False, role=ROLE, **connection) for _ in range(2)]
    with pytest.raises(WaitTimeoutError) as caught:
        wait_all(late, timeout=30)
    error = caught.value
    assert isinstance(error, sessionkit.FleetTimeoutError)
    assert isinstance(error, FleetWaitError) and isinstance(error, TimeoutError)
    assert set(error.timed_out) == {s.id for s in late}
    assert error.info is not None and error.info.id == late[0].id

"""Listings that never end are stopped, in list_sessions and inside a wait_all round."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

import sessionkit
from sessionkit.backends.base import Backend, PreparedStart
from sessionkit.errors import ServiceError
from sessionkit.fleet import FLEET_POLL, FleetPoller
from sessionkit.models import SessionConfig, SessionInfo
from sessionkit.session import Session
from sessionkit.states import SessionState
from sessionkit.testing import VirtualClock
from sessionkit.waiting import PageGuard


class EndlessBackend(Backend):
    """Lists one page after another; ``tokens`` gives each page's NextToken."""

    name = "endless"

    def __init__(self, clock: VirtualClock, tokens: Any) -> None:
        self.clock = clock
        self.tokens = tokens
        self.list_calls = 0

    def prepare_start(self, config: SessionConfig) -> PreparedStart:
        raise NotImplementedError

    def _start(self, prepared: PreparedStart, *, attempt: int) -> SessionInfo:
        raise NotImplementedError

    def _info(self, session_id: str) -> SessionInfo:
        return SessionInfo(
            id=session_id, backend=self.name, state=SessionState.STARTING, native_state="S"
        )

    def _describe(self, session_id: str) -> SessionInfo:
        return self._info(session_id)

    def _stop(self, session_id: str) -> None:
        pass

    def _list_page(
        self, states: frozenset[SessionState] | None, token: str | None
    ) -> tuple[list[SessionInfo], str | None]:
        self.list_calls += 1
        self.clock.advance(0.01)
        return [self._info(f"other-{self.list_calls}")], next(self.tokens)


def test_the_guard_names_a_repeated_token_and_an_endless_listing() -> None:
    guard = PageGuard("list x sessions")
    assert guard.next("a") == "a"
    assert guard.next(None) is None
    guard = PageGuard("list x sessions")
    guard.next("a")
    with pytest.raises(ServiceError, match="already returned") as caught:
        guard.next("a")
    assert caught.value.code == "RepeatedNextToken" and not caught.value.retryable
    bounded = PageGuard("list x sessions", max_pages=5)
    with pytest.raises(ServiceError, match="gave up after 5 pages") as endless:
        for n in itertools.count():
            bounded.next(str(n))
    assert endless.value.code == "TooManyPages"


@pytest.fixture
def endless_backend() -> Any:
    made: list[EndlessBackend] = []

    def factory(**keywords: Any) -> EndlessBackend:
        return made[-1]

    sessionkit.register_backend("endless", factory, clobber=True)
    yield made


def test_list_sessions_stops_on_a_repeated_token(endless_backend: list[EndlessBackend]) -> None:
    backend = EndlessBackend(VirtualClock(), itertools.repeat("same"))
    endless_backend.append(backend)
    with pytest.raises(ServiceError, match="already returned"):
        list(sessionkit.list_sessions("endless"))
    # The first page, then the page the repeated token named: not thousands of calls.
    assert backend.list_calls == 2


def test_list_sessions_bounds_a_listing_whose_tokens_never_repeat(
    endless_backend: list[EndlessBackend], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The bound is MAX_PAGES (10,000); lowered here so the test stays small.
    monkeypatch.setattr(PageGuard.__init__, "__defaults__", (50,))
    backend = EndlessBackend(VirtualClock(), (str(n) for n in itertools.count()))
    endless_backend.append(backend)
    listed = sessionkit.list_sessions("endless", poll_policy=sessionkit.PollPolicy(budget=None))
    with pytest.raises(ServiceError, match="gave up after 50 pages"):
        for _ in listed:
            pass
    assert backend.list_calls == 50


def _fleet(tokens: Any, count: int = 3) -> tuple[VirtualClock, EndlessBackend, FleetPoller]:
    clock = VirtualClock()
    backend = EndlessBackend(clock, tokens)
    policy = FLEET_POLL.on(clock.monotonic, clock.sleep)
    sessions = [
        Session(backend, backend._info(f"mine-{n}"), owned=False, poll_policy=policy)
        for n in range(count)
    ]
    return clock, backend, FleetPoller(sessions, timeout=30, poll_policy=policy)


def test_a_wait_all_round_stops_on_a_repeated_token() -> None:
    _, backend, poller = _fleet(itertools.repeat("same"))
    with pytest.raises(ServiceError, match="already returned"):
        poller.poll()
    assert backend.list_calls == 2


def test_a_wait_all_round_checks_its_deadline_between_pages() -> None:
    clock, backend, poller = _fleet(str(n) for n in itertools.count())
    clock.advance(0)
    outcomes = list(poller.as_completed())
    # Every page takes 10 ms: the round that runs into the 30 s deadline ends there, and the
    # sessions that were never seen time out instead of the listing running on.
    assert [o.status for o in outcomes] == ["timed_out"] * 3
    assert clock.monotonic() <= 30 + 0.02
    assert backend.list_calls <= 30 / 0.01 + 2

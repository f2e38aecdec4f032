"""Every schedule stays finite and correct for any number of polls (issue 8 item 5)."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

import sessionkit
from sessionkit.fleet import FLEET_POLL
from sessionkit.testing import Emulator, VirtualClock
from sessionkit.waiting import DEFAULT_POLL, STATEMENT_POLL, PollPolicy, poll_until
from tests.conftest import ROLE

HUGE = st.integers(min_value=0, max_value=10**18)
POLICIES = [DEFAULT_POLL, STATEMENT_POLL, FLEET_POLL]


@settings(max_examples=300, deadline=None)
@given(polls=HUGE, which=st.sampled_from(POLICIES))
def test_every_interval_is_finite_positive_and_capped_at_any_poll_count(
    polls: int, which: PollPolicy
) -> None:
    pause = which.interval(polls)
    assert math.isfinite(pause)
    assert 0 < pause <= which.cap
    retry = which.retry_interval(polls)
    assert math.isfinite(retry)
    assert 0 < retry <= which.retry_cap


@settings(max_examples=200, deadline=None)
@given(
    first=st.floats(min_value=1e-3, max_value=100.0),
    multiplier=st.floats(min_value=1.0, max_value=1e6),
    cap=st.floats(min_value=1e-3, max_value=1e6),
    polls=HUGE,
)
def test_growth_reaches_the_cap_and_stays_there(
    first: float, multiplier: float, cap: float, polls: int
) -> None:
    policy = PollPolicy(first=first, multiplier=multiplier, cap=cap, jitter=0.0)
    exact = min(cap, first) if polls == 0 else None
    pause = policy.interval(polls)
    assert math.isfinite(pause) and pause <= cap
    if exact is not None:
        assert pause == exact
    # Monotone: a later poll never waits less than an earlier one (no jitter).
    assert policy.interval(polls + 1) >= pause


def test_a_wait_of_ten_thousand_polls_keeps_its_cadence() -> None:
    clock = VirtualClock()
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock.sleep(seconds)

    policy = STATEMENT_POLL.on(clock.monotonic, sleep)
    calls = [0]

    def fetch() -> int:
        calls[0] += 1
        return calls[0]

    assert (
        poll_until(fetch, lambda n: n >= 10_000, policy=policy, timeout=None, describe=str)
        == 10_000
    )
    assert all(0 < s <= STATEMENT_POLL.cap for s in sleeps)
    assert max(sleeps[-100:]) > STATEMENT_POLL.cap * (1 - STATEMENT_POLL.jitter) - 1e-9


def test_run_survives_a_two_hour_statement() -> None:
    emulator = Emulator(seed=5)
    session = sessionkit.open_session(
        "glue", client=emulator.client("glue"), poll_policy=emulator.poll_policy(), role=ROLE
    )
    emulator.glue.timeline.statement = 2 * 3600.0
    result = session.run("1 + 1")
    assert result.state is sessionkit.StatementState.SUCCEEDED
    polls = emulator.call_count("glue", "GetStatement")
    # Polls at the statement cap for two hours: finite, and not one call per tick.
    assert 2 * 3600 / STATEMENT_POLL.cap <= polls <= 2 * 3600 / (STATEMENT_POLL.cap * 0.8) + 50
    session.stop(wait=False)

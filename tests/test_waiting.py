"""Poll policies, bounded waits, retried calls, the call budget and SIGTERM (all virtual time)."""

from __future__ import annotations

import os
import random
import signal
import threading
from typing import Any

import botocore.config
import pytest

import sessionkit
from sessionkit import SessionFailedError, WaitTimeoutError
from sessionkit.errors import ServiceError, ThrottledError
from sessionkit.testing import Emulator, VirtualClock
from sessionkit.waiting import (
    DEFAULT_POLL,
    STATEMENT_POLL,
    CallBudget,
    PollPolicy,
    Terminated,
    call_with_retries,
    poll_until,
    stop_on_sigterm,
)
from tests.conftest import ROLE


def _virtual(policy: PollPolicy = DEFAULT_POLL) -> tuple[VirtualClock, PollPolicy, list[float]]:
    """A policy on a fresh virtual clock that also records every sleep."""
    clock = VirtualClock()
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock.sleep(seconds)

    return clock, policy.on(clock.monotonic, sleep, clock.now), sleeps


def _open(emulator: Emulator, policy: PollPolicy, **extra: Any) -> sessionkit.Session:
    return sessionkit.open_session(
        "glue", client=emulator.client("glue"), poll_policy=policy, role=ROLE, **extra
    )


# ----------------------------------------------------------------------------- the schedule


def test_first_poll_comes_within_a_second_whatever_the_jitter() -> None:
    policy = attrs_evolve(DEFAULT_POLL, rng=random.Random(7))
    firsts = [policy.first_interval() for _ in range(1000)]
    assert max(firsts) <= 1.0
    assert min(firsts) >= 1.0 * (1 - policy.jitter)


def test_intervals_grow_and_are_capped_and_jitter_only_shortens() -> None:
    policy = attrs_evolve(DEFAULT_POLL, rng=random.Random(3))
    plain = attrs_evolve(DEFAULT_POLL, jitter=0.0)
    expected = [min(10.0, 1.0 * 1.5**n) for n in range(20)]
    assert [plain.interval(n) for n in range(20)] == pytest.approx(expected)
    for n in range(20):
        for _ in range(50):
            pause = policy.interval(n)
            assert expected[n] * (1 - policy.jitter) <= pause <= expected[n]
    assert max(policy.interval(n) for n in range(100)) <= policy.cap


def test_statement_policy_is_faster_and_unbounded() -> None:
    assert STATEMENT_POLL.first <= 0.05 < DEFAULT_POLL.first
    assert STATEMENT_POLL.cap <= 2.0 < DEFAULT_POLL.cap
    assert STATEMENT_POLL.timeout is None
    assert DEFAULT_POLL.timeout is not None and DEFAULT_POLL.timeout.total_seconds() == 1200


def test_retry_backoff_doubles_up_to_its_cap() -> None:
    policy = attrs_evolve(DEFAULT_POLL, jitter=0.0)
    assert [policy.retry_interval(n) for n in range(1, 7)] == [0.5, 1, 2, 4, 8, 8]


@pytest.mark.parametrize(
    "field, value", [("first", 0), ("cap", -1), ("jitter", 1.0), ("multiplier", 0)]
)
def test_nonsense_policies_are_refused(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        PollPolicy(**{field: value})


def test_policies_are_values() -> None:
    assert PollPolicy() == DEFAULT_POLL
    assert PollPolicy(cap=5) != DEFAULT_POLL
    moved = DEFAULT_POLL.on(lambda: 0.0, lambda s: None)
    assert moved == DEFAULT_POLL and moved.clock is not DEFAULT_POLL.clock


# ----------------------------------------------------------------------------- poll_until


def test_timeout_comes_after_the_deadline_not_before_with_a_final_poll_there() -> None:
    clock, policy, sleeps = _virtual()
    polls: list[float] = []

    def fetch() -> str:
        polls.append(clock.monotonic())
        return "STARTING"

    with pytest.raises(WaitTimeoutError) as caught:
        poll_until(
            fetch,
            lambda value: value == "READY",
            policy=policy,
            timeout=30,
            describe=lambda value: f"still {value}",
            info_of=lambda value: None,
        )
    assert polls[-1] == pytest.approx(30.0)
    assert clock.monotonic() == pytest.approx(30.0)
    assert all(at <= 30.0 + 1e-9 for at in polls)
    # The last sleep was cut to end at the deadline: shorter than the schedule asked for.
    assert sleeps[-1] < policy.cap * (1 - policy.jitter)
    assert isinstance(caught.value, TimeoutError)
    assert "still STARTING" in str(caught.value)


def test_throttling_during_a_wait_is_polled_through() -> None:
    _, policy, _ = _virtual()
    answers: list[Any] = [
        ThrottledError("slow down", code="ThrottlingException", retryable=True),
        ServiceError("boom", code="InternalServiceException", retryable=True),
        "STARTING",
        ThrottledError("slow down", code="ThrottlingException", retryable=True),
        "READY",
    ]

    def fetch() -> str:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return str(answer)

    result = poll_until(
        fetch, lambda v: v == "READY", policy=policy, timeout=60, describe=lambda v: str(v)
    )
    assert result == "READY" and answers == []


def test_a_wait_that_only_sees_throttling_times_out_with_the_last_error() -> None:
    _, policy, _ = _virtual()

    def fetch() -> str:
        raise ThrottledError("Rate exceeded", code="ThrottlingException", retryable=True)

    with pytest.raises(WaitTimeoutError, match="Rate exceeded") as caught:
        poll_until(fetch, lambda v: True, policy=policy, timeout=20, describe=lambda v: "x")
    assert isinstance(caught.value.__cause__, ThrottledError)


def test_fail_fast_states_end_the_wait_at_once() -> None:
    clock, policy, _ = _virtual()
    polls: list[str] = []

    def fetch() -> str:
        polls.append("poll")
        return ["STARTING", "FAILED", "READY"][len(polls) - 1]

    def done(value: str) -> bool:
        if value == "FAILED":
            raise RuntimeError("failed fast")
        return value == "READY"

    with pytest.raises(RuntimeError, match="failed fast"):
        poll_until(fetch, done, policy=policy, timeout=600, describe=str)
    assert len(polls) == 2
    assert clock.monotonic() < 5


def test_non_retryable_errors_end_the_wait_at_once() -> None:
    _, policy, _ = _virtual()
    calls = []

    def fetch() -> str:
        calls.append(1)
        raise ServiceError("denied", code="AccessDeniedException", request_id="req-1")

    with pytest.raises(ServiceError) as caught:
        poll_until(fetch, lambda v: True, policy=policy, timeout=600, describe=str)
    assert caught.value.request_id == "req-1" and len(calls) == 1


@pytest.mark.parametrize("state", ["FAILED", "TIMEOUT", "STOPPED"])
def test_session_wait_fails_fast_on_ending_states(
    emulator: Emulator, policy: PollPolicy, state: str
) -> None:
    emulator.glue.script_next(state, after=3, reason=f"scripted {state}")
    session = _open(emulator, policy, wait=False)
    with pytest.raises(SessionFailedError) as caught:
        session.wait_until_ready(timeout=600)
    assert caught.value.info.native_state == state
    assert emulator.clock.monotonic() < 3 + policy.cap


# ----------------------------------------------------------------------------- call_with_retries


def test_retryable_errors_are_retried_with_backoff_then_raised() -> None:
    clock, policy, sleeps = _virtual(attrs_evolve(DEFAULT_POLL, jitter=0.0, budget=None))
    attempts = []

    def call() -> None:
        attempts.append(clock.monotonic())
        raise ThrottledError("slow down", code="ThrottlingException", retryable=True)

    with pytest.raises(ThrottledError):
        call_with_retries(call, policy=policy, what="test")
    assert len(attempts) == policy.max_attempts
    assert sleeps == [0.5, 1, 2, 4, 8, 8, 8]


def test_non_retryable_errors_surface_on_the_first_call_with_the_request_id(
    emulator: Emulator, policy: PollPolicy
) -> None:
    with pytest.raises(ServiceError) as caught:
        sessionkit.attach_session("glue", "no-such-session", client=emulator.client("glue"))
    assert caught.value.code == "EntityNotFoundException"
    assert caught.value.request_id and caught.value.request_id in str(caught.value)
    assert not caught.value.retryable
    assert emulator.call_count("glue", "GetSession") == 1


class _RetryingTransport:
    """A backend stand-in whose client retries three times inside botocore."""

    def transport_attempts(self) -> int:
        return 3


def test_attempts_are_divided_by_the_clients_own_retries() -> None:
    _, policy, _ = _virtual()
    attempts = []

    def call() -> None:
        attempts.append(1)
        raise ServiceError("boom", code="InternalFailure", retryable=True)

    with pytest.raises(ServiceError):
        call_with_retries(call, policy=policy, what="test", backend=_RetryingTransport())
    assert len(attempts) == 3  # ceil(8 / 3): about 8 tries in all, not 24
    attempts.clear()
    with pytest.raises(ServiceError):
        call_with_retries(
            call, policy=policy, what="stop", attempts=12, backend=_RetryingTransport()
        )
    assert len(attempts) == 12  # an explicit count (a stop) is kept


def test_clients_sessionkit_builds_make_one_botocore_attempt_per_call() -> None:
    from sessionkit.backends.aws.glue import GlueBackend

    built = GlueBackend(region="eu-west-1")
    assert built.transport_attempts() == 1
    assert built.client.meta.config.retries["total_max_attempts"] == 1
    import boto3

    injected = GlueBackend(client=boto3.client("glue", region_name="eu-west-1"))
    # botocore's default mode changed from legacy (5 attempts) to standard (3) over time.
    mode = injected.client.meta.config.retries["mode"]
    assert injected.transport_attempts() == (5 if mode == "legacy" else 3)
    configured = boto3.client(
        "glue", region_name="eu-west-1", config=botocore.config.Config(retries={"max_attempts": 6})
    )
    assert GlueBackend(client=configured).transport_attempts() == 7


# ----------------------------------------------------------------------------- the call budget


def test_many_calls_on_one_client_stay_within_the_budget(emulator: Emulator) -> None:
    policy = emulator.poll_policy(attrs_evolve(DEFAULT_POLL, budget=CallBudget(rate=5, burst=10)))
    client = emulator.client("glue")
    sessions = [
        sessionkit.open_session("glue", client=client, poll_policy=policy, role=ROLE)
        for _ in range(3)
    ]
    start = emulator.clock.monotonic()
    first = len(emulator.calls)
    for _ in range(40):
        for session in sessions:
            session.refresh()
    times = [c.at for c in emulator.calls[first:]]
    assert len(times) == 120
    # 120 calls at 5/s after a burst of 10 take at least 22 s, shared by the three sessions.
    assert emulator.clock.monotonic() - start >= (120 - 10) / 5 - 1e-6
    for index, at in enumerate(times):
        in_window = sum(1 for other in times[index:] if other < at + 1.0)
        assert in_window <= 10 + 5


def test_separate_clients_have_separate_budgets(emulator: Emulator) -> None:
    policy = emulator.poll_policy(attrs_evolve(DEFAULT_POLL, budget=CallBudget(rate=1, burst=3)))
    shared = emulator.client("glue")
    one = sessionkit.open_session("glue", wait=False, client=shared, poll_policy=policy, role=ROLE)
    other = sessionkit.open_session(
        "glue", wait=False, client=emulator.client("glue"), poll_policy=policy, role=ROLE
    )
    emulator.clock.advance(10)
    before = emulator.clock.monotonic()
    for _ in range(3):
        one.refresh()
        other.refresh()
    assert emulator.clock.monotonic() == before
    # A third session on the first client spends from the same, now empty, bucket.
    third = sessionkit.attach_session("glue", one.id, client=shared, poll_policy=policy)
    assert emulator.clock.monotonic() == pytest.approx(before + 1.0)
    assert third.id == one.id


def test_no_budget_means_no_waiting(emulator: Emulator) -> None:
    policy = emulator.poll_policy(attrs_evolve(DEFAULT_POLL, budget=None))
    session = _open(emulator, policy)
    before = emulator.clock.monotonic()
    for _ in range(100):
        session.refresh()
    assert emulator.clock.monotonic() == before


# ----------------------------------------------------------------------------- Ctrl-C and SIGTERM


def test_ctrl_c_in_wait_until_ready_stops_an_owned_session(
    emulator: Emulator, policy: PollPolicy
) -> None:
    def interrupted(seconds: float) -> None:
        raise KeyboardInterrupt

    session = _open(emulator, policy, wait=False)
    session.poll_policy = policy.on(policy.clock, interrupted)
    with pytest.raises(KeyboardInterrupt):
        session.wait_until_ready()
    assert emulator.glue.status(session.id) == "STOPPING"
    assert emulator.call_count("glue", "StopSession") == 1


def test_ctrl_c_in_wait_until_ready_leaves_an_attached_session_alone(
    emulator: Emulator, policy: PollPolicy
) -> None:
    def interrupted(seconds: float) -> None:
        raise KeyboardInterrupt

    opened = _open(emulator, policy, wait=False)
    attached = sessionkit.attach_session(
        "glue", opened.id, client=emulator.client("glue"), poll_policy=policy
    )
    attached.poll_policy = policy.on(policy.clock, interrupted)
    with pytest.raises(KeyboardInterrupt):
        attached.wait_until_ready()
    assert emulator.call_count("glue", "StopSession") == 0


def _sigterm_after(policy: PollPolicy, emulator: Emulator, sleeps: int) -> PollPolicy:
    """A policy whose n-th sleep delivers a real SIGTERM to this process."""
    count = [0]

    def sleep(seconds: float) -> None:
        count[0] += 1
        emulator.clock.sleep(seconds)
        if count[0] == sleeps:
            os.kill(os.getpid(), signal.SIGTERM)

    return policy.on(policy.clock, sleep)


def test_sigterm_during_open_stops_the_session_and_exits_143(emulator: Emulator) -> None:
    emulator.glue.timeline.provisioning = 300
    policy = _sigterm_after(emulator.poll_policy(), emulator, sleeps=3)
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Terminated) as caught, stop_on_sigterm():
        _open(emulator, policy)
    assert isinstance(caught.value, SystemExit) and caught.value.code == 128 + signal.SIGTERM
    assert emulator.calls[-1].operation == "StopSession"
    emulator.clock.advance(60)
    assert emulator.alive_sessions() == {}
    assert signal.getsignal(signal.SIGTERM) is before


def test_sigterm_inside_a_with_block_stops_the_session(emulator: Emulator) -> None:
    with (
        pytest.raises(Terminated),
        stop_on_sigterm(),
        _open(emulator, emulator.poll_policy()) as session,
    ):
        os.kill(os.getpid(), signal.SIGTERM)
    assert emulator.glue.status(session.id) == "STOPPING"


def test_a_second_sigterm_does_not_interrupt_the_clean_up(emulator: Emulator) -> None:
    policy = emulator.poll_policy()
    with pytest.raises(Terminated), stop_on_sigterm():
        session = _open(emulator, policy)

        def stop_with_another_sigterm(session_id: str) -> None:
            os.kill(os.getpid(), signal.SIGTERM)
            original(session_id)

        original = session.implementation._stop
        session.implementation._stop = stop_with_another_sigterm  # type: ignore[method-assign]
        with session:
            os.kill(os.getpid(), signal.SIGTERM)
    assert emulator.glue.status(session.id) == "STOPPING"


def test_stop_on_sigterm_needs_the_main_thread() -> None:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with stop_on_sigterm():
                pass
        except RuntimeError as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert errors and "main thread" in str(errors[0])


def attrs_evolve(policy: PollPolicy, **changes: Any) -> PollPolicy:
    import attrs

    return attrs.evolve(policy, **changes)

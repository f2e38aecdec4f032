"""Ready-time priors and the start schedules derived from them (DESIGN section 5)."""

from __future__ import annotations

import itertools
import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sessionkit
from sessionkit.backends.aws.athena import AthenaBackend
from sessionkit.backends.aws.emr import EmrBackend
from sessionkit.backends.aws.emr_serverless import EmrServerlessBackend
from sessionkit.backends.aws.glue import GlueBackend
from sessionkit.backends.base import Backend
from sessionkit.backends.gcp.dataproc import DataprocBackend
from sessionkit.backends.livy.backend import LivyBackend
from sessionkit.errors import InvalidConfigError
from sessionkit.testing import Emulator
from sessionkit.waiting import (
    DEFAULT_POLL,
    STATEMENT_POLL,
    STATEMENT_PRIOR,
    ReadyPrior,
)
from tests.conftest import ROLE

PRIORS = {
    "glue": (GlueBackend.ready_prior, 5.0, 60.0),
    "emr-serverless": (EmrServerlessBackend.ready_prior, 20.0, 180.0),
    "athena": (AthenaBackend.ready_prior, 5.0, 30.0),
    "emr": (EmrBackend.ready_prior, 10.0, 120.0),
    "dataproc": (DataprocBackend.ready_prior, 60.0, 120.0),
    "livy": (LivyBackend.ready_prior, 15.0, 90.0),
}


@pytest.mark.parametrize("name", sorted(PRIORS))
def test_each_prior_puts_most_ready_times_in_its_documented_range(name: str) -> None:
    prior, low, high = PRIORS[name]
    assert prior.cdf(low) < 0.1
    assert prior.cdf(high) > 0.9
    assert prior.cdf(0) == 0 and prior.cdf(10 * high) == 1


def test_the_base_class_declares_a_default_prior() -> None:
    assert isinstance(Backend.ready_prior, ReadyPrior)


@pytest.mark.parametrize("name", sorted(PRIORS))
def test_schedule_makes_no_call_where_readiness_is_improbable(name: str) -> None:
    prior, low, _ = PRIORS[name]
    schedule = prior.schedule(DEFAULT_POLL.cap)
    # The first planned poll comes once some sessions can be ready, not within a second.
    assert prior.cdf(schedule.times[0]) > 0.005
    assert schedule.times[0] > 0.5 * low


@pytest.mark.parametrize("name", sorted(PRIORS))
def test_gaps_shrink_as_readiness_becomes_likely_and_stay_capped(name: str) -> None:
    prior, low, high = PRIORS[name]
    times = (0.0, *prior.schedule(DEFAULT_POLL.cap).times)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert max(gaps[1:]) <= DEFAULT_POLL.cap + 1e-9
    inside = [g for t, g in zip(times[1:], gaps, strict=True) if low <= t <= high]
    # Readiness grows likelier (the hazard rises) across the range: late gaps are shorter.
    assert inside[-1] < inside[0]


def test_uniform_prior_polls_ever_faster_towards_its_end() -> None:
    prior = ReadyPrior.uniform(10.0, 50.0)
    times = prior.schedule(10.0).times
    gaps = [b - a for a, b in itertools.pairwise(times) if b <= 50.0]
    assert all(later <= earlier + 1e-6 for earlier, later in itertools.pairwise(gaps))


def test_jitter_is_seeded_by_the_policys_randomness_and_only_brings_polls_forward() -> None:
    schedule = GlueBackend.ready_prior.schedule(10.0)

    def pauses(seed: int) -> list[float]:
        rng = random.Random(seed)
        elapsed, out = 0.0, []
        for polls in range(40):
            pause = schedule.pause(polls, elapsed, elapsed, rng, 0.2)
            out.append(pause)
            elapsed += pause
        return out

    assert pauses(7) == pauses(7)
    assert pauses(7) != pauses(8)
    elapsed = 0.0
    rng = random.Random(1)
    for polls, planned in enumerate(schedule.times):
        elapsed += schedule.pause(polls, elapsed, elapsed, rng, 0.2)
        assert elapsed <= planned + 1e-9


@settings(max_examples=200, deadline=None)
@given(
    polls=st.integers(min_value=0, max_value=10**18),
    elapsed=st.floats(min_value=0, max_value=1e9),
    which=st.sampled_from([*(p for p, _, _ in PRIORS.values()), STATEMENT_PRIOR]),
)
def test_start_schedules_stay_finite_for_any_poll_count(
    polls: int, elapsed: float, which: ReadyPrior
) -> None:
    schedule = which.schedule(10.0)
    pause = schedule.pause(polls, elapsed, elapsed, random.Random(0), 0.2)
    assert math.isfinite(pause) and pause >= 0
    if polls >= len(schedule.times):
        assert pause <= 10.0


def test_open_session_first_poll_follows_the_backends_prior() -> None:
    emulator = Emulator(seed=2)
    emulator.glue.timeline.provisioning = 30.0
    sessionkit.open_session(
        "glue", client=emulator.client("glue"), poll_policy=emulator.poll_policy(), role=ROLE
    )
    gets = [c.at for c in emulator.calls if c.operation == "GetSession"]
    planned = GlueBackend.ready_prior.schedule(DEFAULT_POLL.cap).times
    assert planned[0] * (1 - DEFAULT_POLL.jitter) <= gets[0] <= planned[0]
    # Ready at 30 s, seen within the schedule's gap there (about 2-5 s), not a cap later.
    assert 30.0 <= gets[-1] <= 30.0 + 6.0


def test_follow_prior_off_restores_the_policys_own_growth() -> None:
    import attrs

    emulator = Emulator(seed=2)
    policy = attrs.evolve(emulator.poll_policy(), follow_prior=False)
    sessionkit.open_session("glue", client=emulator.client("glue"), poll_policy=policy, role=ROLE)
    first_get = next(c.at for c in emulator.calls if c.operation == "GetSession")
    assert first_get <= DEFAULT_POLL.first


def test_a_policy_prior_takes_precedence_over_the_backends() -> None:
    import attrs

    emulator = Emulator(seed=2)
    emulator.glue.timeline.provisioning = 3.0
    mine = ReadyPrior.uniform(2.0, 4.0, lag=0.5)
    policy = attrs.evolve(emulator.poll_policy(), prior=mine)
    sessionkit.open_session("glue", client=emulator.client("glue"), poll_policy=policy, role=ROLE)
    first_get = next(c.at for c in emulator.calls if c.operation == "GetSession")
    assert first_get <= mine.schedule(policy.cap).times[0] < 4.0


def test_statements_follow_the_statement_prior() -> None:
    assert STATEMENT_POLL.prior is STATEMENT_PRIOR
    emulator = Emulator(seed=4)
    session = sessionkit.open_session(
        "glue", client=emulator.client("glue"), poll_policy=emulator.poll_policy(), role=ROLE
    )
    emulator.glue.timeline.statement = 0.5
    session.run("1 + 1")
    submitted = next(c.at for c in emulator.calls if c.operation == "RunStatement")
    first = next(c.at for c in emulator.calls if c.operation == "GetStatement")
    planned = STATEMENT_PRIOR.schedule(STATEMENT_POLL.cap).times[0]
    # No look right after submitting: the first poll waits for the prior's first planned time.
    assert first - submitted >= planned * (1 - STATEMENT_POLL.jitter) - 1e-9
    session.stop(wait=False)


@pytest.mark.parametrize(
    "call, field",
    [
        (lambda: ReadyPrior.uniform(0, 10), "low"),
        (lambda: ReadyPrior.uniform(10, 5), "high"),
        (lambda: ReadyPrior.lognormal(5, math.inf), "high"),
        (lambda: ReadyPrior.lognormal(5, 10, coverage=1.5), "coverage"),
        (lambda: ReadyPrior(points=((0, 0.0), (5, 0.5))), "points"),
        (lambda: ReadyPrior(points=((5, 0.0), (3, 1.0))), "points"),
        (lambda: ReadyPrior(points="nonsense"), "points"),
        (lambda: ReadyPrior.between(True, 10), "low"),
    ],
)
def test_bad_priors_raise_invalid_config_naming_the_field(call: object, field: str) -> None:
    with pytest.raises(InvalidConfigError) as caught:
        call()  # type: ignore[operator]
    assert caught.value.field == field

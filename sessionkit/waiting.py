"""Polling on tenacity: poll policies as values, bounded waits, retried calls, a call budget.

## Poll policies

A [`PollPolicy`][sessionkit.PollPolicy] says how often to look (capped exponential with
jitter), how long to wait by default, how to retry a failed call, how many calls per second a
client may make, and which clock and sleep to use. Policies are frozen values: pass one to
`open_session`, `attach_session` or `wait_all` (`poll_policy=`), derive one with
`attrs.evolve`, or move one onto a virtual clock with `PollPolicy.on`. Three are predefined:

| policy | used by | schedule | timeout |
|---|---|---|---|
| `DEFAULT_POLL` | session waits | the backend's prior; else 1 s, x1.5 up to 10 s | 20 min |
| `STATEMENT_POLL` | `Session.run` | the schedule of `STATEMENT_PRIOR`, gaps up to 2 s | none |
| `sessionkit.fleet.FLEET_POLL` | `wait_all` | a round every 1 to 1.5 s | 20 min |

A wait that starts at a start call (``open_session``, ``Session.run``) follows a
[`ReadyPrior`][sessionkit.waiting.ReadyPrior]: the backend's ``ready_prior`` (or the policy's
``prior``) says when readiness becomes likely and :meth:`ReadyPrior.schedule` derives planned
poll times from it (no calls where readiness is improbable, gaps that shrink as it becomes
likely, capped, jittered by the policy's ``rng``); ``follow_prior=False`` turns that off. Every
schedule stays finite for any number of polls.

Jitter only ever shortens an interval, so the detection lag of a wait never exceeds the
policy's `cap`, and many waits started together drift apart instead of calling in step. Every
wait goes through `poll_until` and every single service call through `call_with_retries`, so
tests run all of sessionkit on virtual time by passing a policy with their own `clock` and
`sleep` (`Emulator.poll_policy()` makes one).

## One budget of calls per client

Every call sessionkit makes (polls, retries, starts, stops, list pages) first takes a token
from a token bucket kept per API client (the SDK client object the backend calls through; see
`Backend.budget_key`), refilled at `CallBudget.rate` calls per second up to `CallBudget.burst`.
Sessions sharing a client share its bucket, so a hundred waits in one process together stay
under the rate. An empty bucket sleeps on the calling policy's clock (virtual time in tests).
The budget lives in the core, in the call paths of `Session`, the registry and the fleet, and
not inside a provider's client wrapper: only the core knows the policy's clock, and every
backend gets the same protection.

## Retries, and the SDK's own

Throttling, 5xx answers, connection errors and read timeouts are retried with capped
exponential backoff (`retry_first` doubling up to `retry_cap`, `max_attempts` tries in all) on
every operation: start, describe, list, stop (a stop is tried at least 12 times). Errors that a
retry cannot fix raise on the first attempt, as a typed `ServiceError` carrying the service's
request id. Starting is safe to retry because every attempt sends the same idempotency key (the
service's client token, or the session's unique name where the service has no token), and a
lost answer is adopted on the next attempt.

Clients sessionkit builds are configured to make one attempt per call (each provider's page
says how): the SDK makes one attempt, sessionkit makes every retry, under its budget and
deadline. A client you inject (`client=`) keeps its own configuration. When it retries inside
the SDK (`Backend.transport_attempts()` > 1, for instance an SDK's default of 3 attempts),
sessionkit divides `max_attempts` by the SDK's attempts, so a failing call is
tried about `max_attempts` times in all rather than the product of both; explicit attempt
counts (a stop's) and polling waits, which poll through errors until their deadline, are not
reduced. Such a client may also have landed a start whose answer it lost before sessionkit saw
anything, so every start attempt is then ready to adopt the session its token names.

## Signals

Ctrl-C during any wait stops the sessions the library owns: a session's `with` block,
`open_session`, `Session.wait_until_ready` and `wait_all` request the stop of their owned
sessions before the `KeyboardInterrupt` propagates. SIGTERM, which schedulers and container
runtimes send, ends Python at once by default; run the program inside `stop_on_sigterm()` to
turn it into `Terminated` (a `SystemExit` with status 143), so the same clean-up runs.

tenacity is imported on first use, not when sessionkit is imported.
"""

from __future__ import annotations

import bisect
import contextlib
import functools
import itertools
import logging
import math
import random
import statistics
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

import attrs

from sessionkit.errors import (
    CallTimeoutError,
    InvalidConfigError,
    ServiceError,
    SessionFailedError,
    WaitTimeoutError,
)
from sessionkit.models import SessionInfo, to_timedelta
from sessionkit.states import SessionState

__all__ = [
    "DEFAULT_POLL",
    "MAX_PAGES",
    "STATEMENT_POLL",
    "STATEMENT_PRIOR",
    "CallBudget",
    "PageGuard",
    "PollPolicy",
    "ReadyPrior",
    "SharedWait",
    "StartSchedule",
    "Terminated",
    "call_pause",
    "call_with_retries",
    "clamp_to_deadline",
    "follow_shared_wait",
    "is_retryable",
    "poll_rounds",
    "poll_until",
    "readiness_failure",
    "register_shared_wait",
    "spend_call",
    "stop_on_sigterm",
    "timeout_message",
    "unregister_shared_wait",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: States in which waiting for READY ends at once with SessionFailedError.
_FAIL_FAST = frozenset(
    {
        SessionState.FAILED,
        SessionState.TIMED_OUT,
        SessionState.DEGRADED,
        SessionState.STOPPING,
        SessionState.STOPPED,
    }
)


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _number(attribute: attrs.Attribute[Any], value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidConfigError(
            attribute.name, f"must be a number of seconds, got {type(value).__name__}"
        )
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise InvalidConfigError(attribute.name, f"must be a finite number, got {value!r}")
    return number


def _positive(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not _number(attribute, value) > 0:
        raise InvalidConfigError(attribute.name, f"must be positive, got {value!r}")


def _growth(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not _number(attribute, value) >= 1:
        raise InvalidConfigError(attribute.name, f"must be at least 1, got {value!r}")


def _fraction(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not 0 <= _number(attribute, value) < 1:
        raise InvalidConfigError(attribute.name, f"must be in [0, 1), got {value!r}")


def _whole_positive(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidConfigError(attribute.name, f"must be a whole number >= 1, got {value!r}")


def _callable(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not callable(value):
        raise InvalidConfigError(attribute.name, f"must be callable, got {type(value).__name__}")


def _grown(first: float, multiplier: float, cap: float, steps: int) -> float:
    """``min(cap, first * multiplier ** steps)``, finite for any number of steps.

    The exponent is clamped where the cap is reached (growth) or where the float underflows
    (decay), so a wait of any length never computes ``multiplier ** n`` past float range.
    """
    if steps <= 0 or multiplier == 1.0 or (first >= cap and multiplier > 1.0):
        return min(cap, first)
    if multiplier > 1.0:
        # The smallest exponent at which the cap is reached; beyond it the value is the cap.
        steps = min(steps, math.ceil(math.log(cap / first) / math.log(multiplier)) + 1)
    else:
        steps = min(steps, 4096)
    return min(cap, first * multiplier**steps)


def _optional_timeout(value: Any) -> timedelta | None:
    return None if value is None else to_timedelta(value, field="timeout")


def _deadline(value: Any) -> timedelta:
    deadline = to_timedelta(value, field="call_deadline")
    if deadline <= timedelta(0):
        raise InvalidConfigError("call_deadline", f"must be positive, got {value!r}")
    return deadline


@attrs.frozen(kw_only=True)
class CallBudget:
    """How many calls per second one API client may make, shared by every wait in the process.

    A token bucket: ``burst`` calls may go at once, then ``rate`` per second on average. The
    defaults stay well under the published control-plane limits of the built-in services, so
    sessionkit's own polling is not what gets an account throttled.

    Attributes:
        rate: Calls per second, on average.
        burst: Calls that may go at once after a quiet spell.
    """

    rate: float = attrs.field(default=10.0, validator=_positive)
    burst: float = attrs.field(default=20.0, validator=_positive)


def _budget(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and not isinstance(value, CallBudget):
        raise InvalidConfigError(
            "budget", f"must be a sessionkit.waiting.CallBudget or None, got {value!r}"
        )


def _rng(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not callable(getattr(value, "random", None)):
        raise InvalidConfigError("rng", f"must be a random.Random, got {type(value).__name__}")


def _aware_clock(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    _callable(instance, attribute, value)
    # Read once now: a clock that gives naive times would fail later, mid-call.
    try:
        sample = value()
    except Exception as exc:
        raise InvalidConfigError("now", f"the wall clock raised {type(exc).__name__}") from exc
    if not isinstance(sample, datetime) or sample.utcoffset() is None:
        raise InvalidConfigError(
            "now",
            "must return timezone-aware datetimes (e.g. datetime.now(timezone.utc)), got "
            f"{sample!r}",
        )


class _Bucket:
    """The token bucket of one client; its clock is the clock of the policy spending from it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clock: Callable[[], float] | None = None
        self._tokens = 0.0
        self._stamp = 0.0

    def take(self, budget: CallBudget, clock: Callable[[], float]) -> float:
        """Take one token; return the seconds to sleep first (0 when one was there)."""
        with self._lock:
            now = clock()
            # A bucket first used on another clock (tests switching to virtual time) starts
            # full: time on two clocks cannot be compared.
            if self._clock is None or self._clock != clock:
                self._clock, self._tokens, self._stamp = clock, budget.burst, now
            elapsed = max(0.0, now - self._stamp)
            self._tokens = min(budget.burst, self._tokens + elapsed * budget.rate)
            self._stamp = now
            # The token is taken now, even when it is not there yet: concurrent callers queue
            # behind each other instead of all waking at the same moment.
            self._tokens -= 1.0
            return 0.0 if self._tokens >= 0 else -self._tokens / budget.rate


_buckets: weakref.WeakKeyDictionary[Any, _Bucket] = weakref.WeakKeyDictionary()
_strong_buckets: dict[int, tuple[Any, _Bucket]] = {}
_buckets_lock = threading.Lock()


def _bucket_of(key: Any) -> _Bucket:
    with _buckets_lock:
        try:
            bucket = _buckets.get(key)
            if bucket is None:
                bucket = _buckets[key] = _Bucket()
            return bucket
        except TypeError:
            # Not weak-referenceable: keep it (and the key, so its id is not reused).
            entry = _strong_buckets.get(id(key))
            if entry is None:
                entry = _strong_buckets[id(key)] = (key, _Bucket())
            return entry[1]


def _budget_key(backend: Any) -> Any:
    key = getattr(backend, "budget_key", None)
    return key() if callable(key) else backend


def call_pause(backend: Any, policy: PollPolicy) -> float:
    """Take one call from the budget of ``backend``'s client; return the seconds to wait first.

    The non-sleeping half of :func:`spend_call`, for callers that sleep on their own terms
    (``sessionkit.aio`` sleeps on the event loop).

    Args:
        backend: The backend about to make a call (``None``: no budget applies).
        policy: The policy whose :class:`CallBudget` and clock to use.

    Returns:
        Seconds to wait before making the call (0 when the budget had a call to spare).
    """
    budget = policy.budget
    if backend is None or budget is None:
        return 0.0
    return _bucket_of(_budget_key(backend)).take(budget, policy.clock)


def spend_call(backend: Any, policy: PollPolicy) -> None:
    """Take one call from the budget of ``backend``'s client, sleeping if it is spent.

    Args:
        backend: The backend about to make a call (``None``: no budget applies).
        policy: The policy whose :class:`CallBudget`, clock and sleep to use.
    """
    budget = policy.budget
    if backend is None or budget is None:
        return
    pause = _bucket_of(_budget_key(backend)).take(budget, policy.clock)
    if pause > 0:
        logger.debug("call budget spent; waiting %.3f s", pause)
        policy.sleep(pause)


def _transport_attempts(backend: Any) -> int:
    attempts = getattr(backend, "transport_attempts", None)
    if not callable(attempts):
        return 1
    return max(1, int(attempts()))


@attrs.frozen(kw_only=True)
class PollPolicy:
    """How to poll: when to look, for how long by default, how to retry, on which clock.

    The n-th interval is ``min(cap, first * multiplier ** (n - 1))``, shortened by a random
    fraction up to ``jitter`` (jitter only ever shortens an interval, so the detection lag stays
    under ``cap``, and many sessions polling together spread out instead of calling in step).

    Attributes:
        first: Seconds before the first poll (at most 1 s for session start).
        multiplier: Growth of the interval per poll.
        cap: The longest interval, in seconds.
        jitter: The largest fraction an interval is shortened by at random.
        timeout: The default timeout of a wait with this policy (``None``: unbounded; only for
            statements, which Ctrl-C or a ``timeout=`` argument cancel).
        max_attempts: How many times one service call is tried before its error is raised.
        retry_first: Seconds before the first retry of a failed call.
        retry_cap: The longest pause between retries of a call.
        budget: The calls per second each API client may make (shared by every policy using
            the same client); ``None`` for no limit.
        clock: A monotonic clock in seconds (``time.monotonic``); inject a virtual one in tests.
        sleep: Sleeps for a number of seconds (``time.sleep``); inject a virtual one in tests.
        rng: The random source of the jitter (seed one for reproducible schedules).
        now: The wall clock (timezone-aware), for token expiry; inject with ``clock``.
        async_sleep: The coroutine ``sessionkit.aio`` awaits to sleep. ``None`` (default):
            ``asyncio.sleep`` when ``sleep`` is ``time.sleep``, otherwise ``sleep`` itself
            followed by a yield to the event loop, so a policy on a virtual clock runs the
            async API on virtual time too.
        call_deadline: The longest one public call that is not a wait may take, retries
            included (``timedelta`` or seconds; default 60 s); past it,
            :class:`~sessionkit.errors.CallTimeoutError` is raised.
        prior: The ready-time prior that waits from a start follow (statements:
            :data:`STATEMENT_PRIOR`); ``None``: the backend's ``ready_prior``.
        follow_prior: Whether waits from a start (``open_session``, ``Session.run``) follow
            the prior's schedule (see :meth:`ReadyPrior.schedule`); ``False``: every wait
            uses ``first``, ``multiplier`` and ``cap``.

    Raises:
        InvalidConfigError: At construction, naming the field, for a value of the wrong type,
            out of range, NaN or infinite, or a wall clock that gives naive datetimes.
    """

    first: float = attrs.field(default=1.0, validator=_positive)
    multiplier: float = attrs.field(default=1.5, validator=_growth)
    cap: float = attrs.field(default=10.0, validator=_positive)
    jitter: float = attrs.field(default=0.2, validator=_fraction)
    timeout: timedelta | None = attrs.field(
        default=timedelta(minutes=20), converter=_optional_timeout
    )
    max_attempts: int = attrs.field(default=8, validator=_whole_positive)
    retry_first: float = attrs.field(default=0.5, validator=_positive)
    retry_cap: float = attrs.field(default=8.0, validator=_positive)
    budget: CallBudget | None = attrs.field(default=CallBudget(), validator=_budget)
    clock: Callable[[], float] = attrs.field(
        default=time.monotonic, eq=False, repr=False, validator=_callable
    )
    sleep: Callable[[float], None] = attrs.field(
        default=time.sleep, eq=False, repr=False, validator=_callable
    )
    rng: random.Random = attrs.field(factory=random.Random, eq=False, repr=False, validator=_rng)
    now: Callable[[], datetime] = attrs.field(
        default=_utcnow, eq=False, repr=False, validator=_aware_clock
    )
    call_deadline: timedelta = attrs.field(default=timedelta(seconds=60), converter=_deadline)
    async_sleep: Callable[[float], Awaitable[None]] | None = attrs.field(
        default=None, eq=False, repr=False
    )
    prior: ReadyPrior | None = None
    follow_prior: bool = True

    def start_schedule(self, prior: ReadyPrior | None = None) -> StartSchedule | None:
        """The schedule a wait from a start follows, or ``None`` for the capped growth.

        Args:
            prior: The backend's ready-time prior; :attr:`prior`, when set, takes precedence.

        Returns:
            The prior's :class:`StartSchedule` capped at :attr:`cap`, or ``None`` when
            :attr:`follow_prior` is off or there is no prior.
        """
        chosen = self.prior or prior
        if not self.follow_prior or chosen is None:
            return None
        return chosen.schedule(self.cap)

    def interval(self, attempt: int) -> float:
        """The pause after the ``attempt``-th poll (1-based), jitter applied.

        Args:
            attempt: How many polls were made so far (the pause before the first poll is 0).

        Returns:
            Seconds to sleep.
        """
        base = _grown(self.first, self.multiplier, self.cap, max(0, attempt))
        return base * (1.0 - self.jitter * self.rng.random())

    def first_interval(self) -> float:
        """The pause before the first poll after a start call, jitter applied."""
        return min(self.first, self.cap) * (1.0 - self.jitter * self.rng.random())

    def retry_interval(self, attempt: int) -> float:
        """The pause before retrying a failed call for the ``attempt``-th time (1-based)."""
        base = _grown(self.retry_first, 2.0, self.retry_cap, max(0, attempt - 1))
        return base * (1.0 - self.jitter * self.rng.random())

    def on(
        self,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
        now: Callable[[], datetime] | None = None,
    ) -> PollPolicy:
        """Return this policy running on another clock (e.g. the emulator's virtual clock).

        Args:
            clock: A monotonic clock in seconds.
            sleep: Sleeps (or advances virtual time) for a number of seconds.
            now: The matching wall clock; unchanged if not given.

        Returns:
            A copy of the policy using ``clock``, ``sleep`` and ``now``.
        """
        return attrs.evolve(self, clock=clock, sleep=sleep, now=now or self.now)


# ----------------------------------------------------------------------------- ready-time priors


def _points(value: Any) -> tuple[tuple[float, float], ...]:
    try:
        points = tuple((float(t), float(f)) for t, f in value)
    except (TypeError, ValueError):
        raise InvalidConfigError(
            "points", "must be (seconds, probability) pairs, e.g. ((5, 0.0), (60, 1.0))"
        ) from None
    if len(points) < 2 or points[0][1] != 0.0 or points[-1][1] != 1.0:
        raise InvalidConfigError(
            "points", "needs at least two pairs, the first at probability 0 and the last at 1"
        )
    for (t0, f0), (t1, f1) in itertools.pairwise(points):
        if not (0 <= t0 < t1 and math.isfinite(t1) and f0 <= f1):
            raise InvalidConfigError(
                "points",
                "must increase in time (finite, from 0 on) and never decrease in probability",
            )
    return points


def _range(low: float, high: float) -> None:
    if not (isinstance(low, (int, float)) and 0 < low < math.inf) or isinstance(low, bool):
        raise InvalidConfigError("low", f"must be a positive number of seconds, got {low!r}")
    if not (isinstance(high, (int, float)) and low < high < math.inf) or isinstance(high, bool):
        raise InvalidConfigError("high", f"must be a finite number above low, got {high!r}")


@attrs.frozen(kw_only=True)
class ReadyPrior:
    """When something a wait looks for typically happens, as a cumulative distribution.

    A session's ready time (seconds from the start call's answer to READY) or a statement's
    duration, as a piecewise-linear cumulative distribution: ``points`` are ``(seconds,
    probability ready by then)``, from probability 0 to 1. A wait that follows a prior (see
    :meth:`schedule`) makes no call where readiness is improbable and looks more often where it
    becomes likely. Build one with :meth:`between` (the backends' form), :meth:`lognormal` or
    :meth:`uniform`, or give the table.

    Attributes:
        points: ``(seconds, cumulative probability)`` pairs, increasing, from 0 to 1.
        lag: The mean detection lag, in seconds, that a schedule derived from this prior aims
            for when ready times follow it.
        label: Words for documentation and ``repr``.
    """

    points: tuple[tuple[float, float], ...] = attrs.field(converter=_points)
    lag: float = attrs.field(default=2.0, validator=_positive)
    label: str = ""

    @classmethod
    def uniform(cls, low: float, high: float, *, lag: float = 2.0) -> ReadyPrior:
        """Ready at any moment between ``low`` and ``high`` seconds with equal likelihood."""
        _range(low, high)
        return cls(points=((low, 0.0), (high, 1.0)), lag=lag, label=f"uniform {low:g}-{high:g} s")

    @classmethod
    def lognormal(
        cls, low: float, high: float, *, coverage: float = 0.9, lag: float = 2.0
    ) -> ReadyPrior:
        """Log-normal with ``coverage`` of the ready times between ``low`` and ``high`` seconds.

        The median is ``sqrt(low * high)``; the spread follows from the coverage (90%: ``low``
        and ``high`` are the 5th and 95th percentiles). Tabulated between z = -3.7 and 3.7.
        """
        _range(low, high)
        if not 0 < coverage < 1:
            raise InvalidConfigError("coverage", f"must be between 0 and 1, got {coverage!r}")
        median = math.sqrt(low * high)
        sigma = math.log(high / low) / (2 * statistics.NormalDist().inv_cdf(0.5 + coverage / 2))
        normal = statistics.NormalDist()
        zs = [-3.7 + 7.4 * i / 63 for i in range(64)]
        points = [(median * math.exp(sigma * z), normal.cdf(z)) for z in zs]
        points[0], points[-1] = (points[0][0], 0.0), (points[-1][0], 1.0)
        return cls(
            points=tuple(points),
            lag=lag,
            label=f"lognormal, median {median:.3g} s, {coverage:.0%} within {low:g}-{high:g} s",
        )

    @classmethod
    def between(cls, low: float, high: float, *, lag: float = 2.0) -> ReadyPrior:
        """The prior the backends declare: "usually ready between ``low`` and ``high`` s".

        An even blend of :meth:`uniform` over the range and :meth:`lognormal` with 90% of its
        mass in it: early and late ready times inside the range stay likely (the uniform half)
        while the tails beyond it are covered (the log-normal half). Schedules derived from it
        stay near the best possible one whether ready times are uniform or log-normal over the
        range (``benchmarks/readiness.py`` measures it).
        """
        _range(low, high)
        flat, bell = cls.uniform(low, high), cls.lognormal(low, high)
        steps = [low + (high - low) * i / 32 for i in range(33)]
        times = sorted({*steps, *(t for t, _ in bell.points)})
        points = tuple((t, 0.5 * flat.cdf(t) + 0.5 * bell.cdf(t)) for t in times)
        return cls(points=points, lag=lag, label=f"usually ready within {low:g}-{high:g} s")

    def cdf(self, seconds: float) -> float:
        """The probability of being ready ``seconds`` after the start."""
        points = self.points
        if seconds <= points[0][0]:
            return 0.0
        if seconds >= points[-1][0]:
            return 1.0
        i = bisect.bisect_right(points, (seconds, math.inf))
        (t0, f0), (t1, f1) = points[i - 1], points[i]
        return f0 + (f1 - f0) * (seconds - t0) / (t1 - t0)

    def schedule(self, cap: float = 10.0) -> StartSchedule:
        """The poll schedule for this prior: planned poll times from the start (cached).

        Between polls the rate of looking follows ``sqrt(lambda * hazard / 2)`` (the local
        optimum of calls plus ``lambda`` times lag, where the hazard is the chance of becoming
        ready now given not ready yet), with ``lambda`` chosen so the mean lag on the prior
        is :attr:`lag`: no poll before the prior's first ready time, gaps that shrink as
        readiness becomes likely, never shorter than a quarter of :attr:`lag`, never longer
        than ``cap``. After the prior's last point, gaps grow by 1.5 up to ``cap``.

        Args:
            cap: The longest gap between polls.

        Returns:
            The :class:`StartSchedule`.
        """
        return _schedule_of(self, cap)


_GRID = 1000


def _hazards(prior: ReadyPrior) -> tuple[float, list[float]]:
    """``sqrt(hazard / 2)`` of the prior on a grid (-1 once nothing is left to wait for).

    The hazard is the chance per second of becoming ready, given not ready yet.
    """
    step = prior.points[-1][0] / _GRID
    hazards: list[float] = []
    before = 0.0
    for i in range(1, _GRID + 1):
        after = prior.cdf(i * step)
        survive = 1.0 - before
        hazard = (after - before) / step / survive if survive > 1e-9 else -1.0
        # Stored as sqrt(hazard / 2): the poll rate is sqrt(factor) times it.
        hazards.append(math.sqrt(hazard / 2.0) if hazard >= 0 else -1.0)
        before = after
    return step, hazards


def _poll_times(
    step: float, hazards: Sequence[float], factor: float, min_gap: float, cap: float
) -> list[float]:
    times: list[float] = []
    credit = previous = 0.0
    fastest = 1.0 / min_gap
    scale = math.sqrt(factor)
    for i, root in enumerate(hazards, 1):
        if root < 0:
            break
        now = i * step
        rate = scale * root
        credit += (rate if rate < fastest else fastest) * step
        # A poll when half a poll's worth of credit has built up (the middle of its share),
        # or when the cap is reached after the first poll; never closer than min_gap to the
        # previous one. Before the first poll the cap does not apply: no call is made where
        # readiness is improbable.
        if credit >= 0.5 and now - previous >= min_gap:
            times.append(now)
            credit, previous = max(credit - 1.0, -0.5), now
        elif times and now - previous >= cap:
            times.append(now)
            credit, previous = 0.0, now
    return times


@functools.lru_cache(maxsize=64)
def _moments(prior: ReadyPrior) -> tuple[list[float], list[float]]:
    """The prior's times and the integral of ``s dF(s)`` up to each of them."""
    times = [t for t, _ in prior.points]
    totals = [0.0]
    for (t0, f0), (t1, f1) in itertools.pairwise(prior.points):
        totals.append(totals[-1] + (f1 - f0) * (t0 + t1) / 2.0)
    return times, totals


def _moment(prior: ReadyPrior, seconds: float) -> float:
    """The integral of ``s dF(s)`` from 0 to ``seconds`` (exact for the piecewise-linear CDF)."""
    times, totals = _moments(prior)
    if seconds <= times[0]:
        return 0.0
    if seconds >= times[-1]:
        return totals[-1]
    i = bisect.bisect_right(times, seconds)
    (t0, f0), (t1, f1) = prior.points[i - 1], prior.points[i]
    density = (f1 - f0) / (t1 - t0)
    return totals[i - 1] + density * (seconds * seconds - t0 * t0) / 2.0


def _expected_lag(prior: ReadyPrior, times: Sequence[float]) -> float:
    lag = previous_f = previous_m = 0.0
    for at in times:
        f, m = prior.cdf(at), _moment(prior, at)
        lag += at * (f - previous_f) - (m - previous_m)
        previous_f, previous_m = f, m
    return lag


@functools.lru_cache(maxsize=64)
def _schedule_of(prior: ReadyPrior, cap: float) -> StartSchedule:
    min_gap = min(cap, prior.lag / 4)
    step, hazards = _hazards(prior)
    low, high = 1e-2, 1e5
    best: list[float] = []
    for _ in range(26):
        middle = math.sqrt(low * high)
        times = _poll_times(step, hazards, middle, min_gap, cap)
        if _expected_lag(prior, times) > prior.lag:
            low = middle
        else:
            high, best = middle, times
    if not best:
        best = _poll_times(step, hazards, high, min_gap, cap)
    return StartSchedule(times=tuple(best), cap=cap)


@attrs.frozen(kw_only=True)
class StartSchedule:
    """Planned poll times after a start (or a statement's submission), then capped growth.

    Attributes:
        times: Seconds from the start at which to poll, increasing.
        cap: The longest gap; after the last planned time gaps grow by 1.5 up to it.
    """

    times: tuple[float, ...]
    cap: float

    def pause(
        self, polls: int, elapsed: float, previous: float, rng: random.Random, jitter: float
    ) -> float:
        """The pause before the next poll.

        Args:
            polls: Polls made so far (0: none since the start).
            elapsed: Seconds since the start, now.
            previous: Seconds since the start of the last poll (0 when none).
            rng: The policy's random source for the jitter.
            jitter: The largest fraction of its gap by which a poll is brought forward.

        Returns:
            Seconds to sleep, finite; at most ``cap`` once the first planned time has passed.
        """
        times = self.times
        # The next planned time after the last poll (later ones when calls ran late).
        index = max(polls, bisect.bisect_right(times, previous))
        if index < len(times):
            at = times[index]
            gap = at - (times[index - 1] if index else 0.0)
            at -= jitter * rng.random() * gap
            return max(0.0, at - elapsed)
        last_gap = times[-1] - times[-2] if len(times) > 1 else self.cap
        beyond = polls - len(times) + 1
        gap = _grown(max(last_gap, 1e-3), 1.5, self.cap, beyond)
        return gap * (1.0 - jitter * rng.random())


#: The default for waiting on sessions: first poll within 1 s, then x1.5 up to 10 s, 20 minutes.
DEFAULT_POLL = PollPolicy()

#: When statements typically finish after their submission: within 0.05 to 1 s.
STATEMENT_PRIOR = ReadyPrior.between(0.05, 1.0, lag=0.15)

#: The default for statements: the schedule of :data:`STATEMENT_PRIOR`, then x1.5 up to 2 s,
#: no default timeout (``first`` and ``multiplier`` apply when ``follow_prior`` is off).
STATEMENT_POLL = PollPolicy(
    first=0.05, multiplier=1.4, cap=2.0, jitter=0.1, timeout=None, prior=STATEMENT_PRIOR
)


#: The most pages one listing may read before sessionkit gives up on it as endless.
MAX_PAGES = 10_000


class PageGuard:
    """Stops a listing that would never end: a repeated page token, or too many pages.

    One guard per pass over a list call (``list_sessions``, one round of ``wait_all``).

    Args:
        what: Words for the error, e.g. ``"list sessions"``.
        max_pages: The most pages the pass may read.
    """

    def __init__(self, what: str, max_pages: int = MAX_PAGES) -> None:
        self._what = what
        self._max = max_pages
        self._seen: set[str] = set()
        self.pages = 0

    def next(self, token: str | None) -> str | None:
        """Check the token a page returned; return it when the pass may go on.

        Raises:
            ServiceError: When the token repeats one already seen in this pass, or when the
                pass has read ``max_pages`` pages (not retryable: the service's listing would
                loop forever).
        """
        self.pages += 1
        if not token:
            return None
        if token in self._seen:
            raise ServiceError(
                f"{self._what}: the service returned a page token it had already returned "
                f"(after {self.pages} pages); its listing would never end",
                code="RepeatedNextToken",
                retryable=False,
            )
        if self.pages >= self._max:
            raise ServiceError(
                f"{self._what}: gave up after {self.pages} pages; the service's listing does "
                "not end",
                code="TooManyPages",
                retryable=False,
            )
        self._seen.add(token)
        return token


def clamp_to_deadline(pause: float, deadline: float | None, clock: Callable[[], float]) -> float:
    """Cut a pause so it ends at ``deadline`` at the latest (never negative).

    Every wait (one session, a statement, a fleet) clamps its last sleep through this, so the
    final poll lands on the deadline.
    """
    if deadline is not None:
        pause = max(0.0, min(pause, deadline - clock()))
    return pause


def timeout_message(limit: timedelta | None, what: str) -> str:
    """The one format of a wait's timeout message: ``timed out after <limit>: <what>``."""
    return f"timed out after {limit}: {what}"


def readiness_failure(info: SessionInfo) -> SessionFailedError | None:
    """The error that ends a wait for READY in this state, or ``None`` to keep waiting.

    Every wait for READY (one session or a fleet) fails fast through this one rule.
    """
    if info.state not in _FAIL_FAST:
        return None
    return SessionFailedError(
        f"{info.backend} session {info.id} is {info.state.value} "
        f"({info.native_state}){': ' + info.reason if info.reason else ''}",
        info=info,
    )


class _NotYet(Exception):
    """Internal signal: the awaited condition does not hold yet."""


def is_retryable(exc: BaseException) -> bool:
    """Tell whether a retry may fix ``exc`` (throttling, 5xx, connection errors, timeouts)."""
    return isinstance(exc, ServiceError) and exc.retryable


def poll_until(
    fetch: Callable[[], T],
    done: Callable[[T], bool],
    *,
    policy: PollPolicy,
    timeout: timedelta | float | None,
    describe: Callable[[T | None], str],
    info_of: Callable[[T | None], Any] = lambda value: value,
    initial: T | None = None,
    backend: Any = None,
    prior: ReadyPrior | None = None,
) -> T:
    """Poll ``fetch`` until ``done`` holds, on the policy's schedule, within ``timeout``.

    ``done`` may raise to end the wait at once (a failed session). Retryable service errors
    (throttling, 5xx, connection) count as "not yet" and are polled through. When the deadline
    comes, the last sleep is cut to end there and one final poll is made at the deadline.

    Args:
        fetch: Gets the current value (one service call).
        done: True when the wait is over; may raise to fail fast.
        policy: The poll policy.
        timeout: The longest wait; ``None`` uses ``policy.timeout`` (which may be unbounded).
        describe: Words for the timeout message, given the last value.
        info_of: What to attach to :class:`WaitTimeoutError` as ``info``, given the last value.
        initial: A value already known (e.g. from the start call); when given, the first poll
            waits ``policy.first`` instead of calling at once.
        backend: The backend ``fetch`` calls; each poll then spends from its client's budget.
        prior: When the wait starts at a start (a session's start call, a statement's
            submission), the ready-time prior whose schedule it follows (see
            :meth:`PollPolicy.start_schedule`); without ``initial``, the first poll then waits
            for the schedule's first planned time too.

    Returns:
        The value for which ``done`` held.

    Raises:
        WaitTimeoutError: When the deadline passed; carries the last value's info.
    """
    import tenacity

    limit = policy.timeout if timeout is None else to_timedelta(timeout)
    start = policy.clock()
    deadline = None if limit is None else start + limit.total_seconds()
    last: list[T | None] = [initial]
    polls = [0]
    schedule = policy.start_schedule(prior) if prior is not None or policy.prior else None
    # For a schedule: the service calls made and when the last one went (from the start).
    fetched = [0]
    fetched_at = [0.0]

    def clamp(pause: float) -> float:
        return clamp_to_deadline(pause, deadline, policy.clock)

    def attempt() -> T:
        if polls[0] == 0 and initial is not None:
            polls[0] = 1
            value = initial
        else:
            polls[0] += 1
            spend_call(backend, policy)
            fetched[0] += 1
            fetched_at[0] = policy.clock() - start
            value = fetch()
        last[0] = value
        if done(value):
            return value
        raise _NotYet

    def stop(state: tenacity.RetryCallState) -> bool:
        return deadline is not None and policy.clock() >= deadline

    def wait(state: tenacity.RetryCallState) -> float:
        if schedule is not None:
            return clamp(
                schedule.pause(
                    fetched[0],
                    policy.clock() - start,
                    fetched_at[0],
                    policy.rng,
                    policy.jitter,
                )
            )
        if polls[0] == 1 and initial is not None:
            return clamp(policy.first_interval())
        return clamp(policy.interval(polls[0] - 1))

    def log_retry(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        if exc is not None and not isinstance(exc, _NotYet):
            logger.info("polling through a transient error: %s", exc)

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(lambda e: isinstance(e, _NotYet) or is_retryable(e)),
        stop=stop,
        wait=wait,
        sleep=policy.sleep,
        before_sleep=log_retry,
        reraise=True,
    )
    if schedule is not None and initial is None:
        # Nothing to look at before the schedule's first planned time.
        policy.sleep(clamp(schedule.pause(0, 0.0, 0.0, policy.rng, policy.jitter)))
    try:
        return retrying(attempt)
    except _NotYet:
        pass
    except ServiceError as exc:
        if not exc.retryable:
            raise
        raise WaitTimeoutError(
            timeout_message(limit, f"{describe(last[0])} (last error: {exc})"),
            info=info_of(last[0]),
        ) from exc
    raise WaitTimeoutError(timeout_message(limit, describe(last[0])), info=info_of(last[0]))


def call_with_retries(
    call: Callable[[], T],
    *,
    policy: PollPolicy,
    what: str,
    attempts: int | None = None,
    deadline: float | None = None,
    retry_on: Callable[[BaseException], bool] | None = None,
    backend: Any = None,
) -> T:
    """Make one service call, retrying throttling and transient errors with backoff.

    Non-retryable errors are raised on the first attempt. The call must be idempotent as
    written (sessionkit passes the same client token or Id on every attempt).

    Args:
        call: Makes the call once.
        policy: Supplies the attempt count, backoff, budget, clock and sleep.
        what: Words for the log.
        attempts: Overrides ``policy.max_attempts``, taken as given (callers pass it where
            getting through matters more than the count, like a stop).
        deadline: A ``policy.clock()`` reading after which no retry starts.
        retry_on: Which errors to retry; default: retryable :class:`ServiceError`.
        backend: The backend ``call`` goes through: every attempt spends from its client's
            budget, and when its client retries inside the SDK, ``policy.max_attempts`` is
            divided by the SDK's attempts (see the module docs).

    Returns:
        What ``call`` returned.
    """
    if attempts is not None:
        limit = attempts
    elif backend is not None:
        limit = max(1, math.ceil(policy.max_attempts / _transport_attempts(backend)))
    else:
        limit = policy.max_attempts
    retryable = retry_on or is_retryable
    # Every call has a deadline (retries included): the policy's call_deadline, or an earlier
    # one the caller gives. A retry starts only if its attempt can end before it.
    started = policy.clock()
    call_end = started + policy.call_deadline.total_seconds()
    if deadline is not None:
        call_end = min(call_end, deadline)
    per_attempt = _attempt_timeout(backend)

    def past_deadline(exc: BaseException, pause: float = 0.0) -> bool:
        return policy.clock() + pause + per_attempt >= call_end

    def timed_out(exc: BaseException) -> CallTimeoutError:
        error = CallTimeoutError(
            f"{what}: no answer within the call deadline of "
            f"{policy.call_deadline.total_seconds():g} s (last error: {exc})",
            code="CallTimeout",
            retryable=False,
            operation=getattr(exc, "operation", None),
        )
        error.__cause__ = exc
        return error

    # The first attempt runs outside tenacity: most calls succeed at once, and building a
    # Retrying per call would cost more than the rest of sessionkit's share of a call.
    spend_call(backend, policy)
    try:
        return call()
    except Exception as exc:
        if not retryable(exc):
            raise
        if policy.clock() >= call_end or (limit > 1 and past_deadline(exc, policy.retry_first)):
            raise timed_out(exc) from exc
        if limit <= 1:
            raise
        logger.info("%s: retrying after %s (attempt 1)", what, exc)

    import tenacity

    policy.sleep(policy.retry_interval(1))

    def attempt() -> T:
        spend_call(backend, policy)
        return call()

    # tenacity counts from the second attempt on; offset its numbers by the one made above.
    def stop(state: tenacity.RetryCallState) -> bool:
        if state.attempt_number + 1 >= limit:
            return True
        exc = state.outcome.exception() if state.outcome else None
        if exc is not None and past_deadline(exc, policy.retry_first):
            raise timed_out(exc) from exc
        return False

    def log_retry(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        logger.info("%s: retrying after %s (attempt %d)", what, exc, state.attempt_number + 1)

    def pause(state: tenacity.RetryCallState) -> float:
        # The pause never runs past the deadline minus one attempt.
        room = call_end - per_attempt - policy.clock()
        return max(0.0, min(policy.retry_interval(state.attempt_number + 1), room))

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(retryable),
        stop=stop,
        wait=pause,
        sleep=policy.sleep,
        before_sleep=log_retry,
        reraise=True,
    )
    try:
        return retrying(attempt)
    except CallTimeoutError:
        raise
    except Exception as exc:
        if retryable(exc) and policy.clock() >= call_end:
            raise timed_out(exc) from exc
        raise


def _attempt_timeout(backend: Any) -> float:
    timeout = getattr(backend, "attempt_timeout", None)
    if not callable(timeout):
        return 0.0
    try:
        return max(0.0, float(timeout()))
    except Exception:  # an unknown timeout bounds nothing
        return 0.0


# ----------------------------------------------------------------------------- rounds, shared waits


def poll_rounds(
    policy: PollPolicy,
    deadline: Callable[[], float | None],
    *,
    interval: Callable[[int], float] | None = None,
) -> Iterator[int]:
    """The round schedule of a wait that polls many things per round (``wait_all``).

    Yields the round number (0, 1, ...) at the start of each round; the caller polls, then
    resumes the iterator (or stops iterating when the wait is over). Rounds start on the
    policy's schedule (``policy.interval``): the time a round took counts towards the pause
    before the next. The last pause is cut to end at the deadline through
    :func:`clamp_to_deadline`, as in :func:`poll_until`, and one final round is made there;
    the iterator ends after that round.

    Args:
        policy: The cadence, clock and sleep.
        deadline: Reads the wait's deadline on the policy's clock (``None``: no limit); read
            after every round, since a wait may fix it in its first round.
        interval: The pause after round ``n`` before the time it took is taken off; default:
            ``policy.interval(n)``.

    Yields:
        The number of the round about to be polled.
    """
    pause_of = interval or policy.interval
    number = 0
    while True:
        started = policy.clock()
        yield number
        end = deadline()
        if end is not None and policy.clock() >= end:
            return
        pause = max(0.0, pause_of(number) - (policy.clock() - started))
        policy.sleep(clamp_to_deadline(pause, end, policy.clock))
        number += 1


class SharedWait:
    """A wait polling many sessions whose rounds a single-session wait may follow.

    ``sessionkit.fleet.FleetPoller`` is one. While it is registered
    (:func:`register_shared_wait`), :func:`follow_shared_wait` lets
    ``Session.wait_until_ready`` and ``Session.wait_until_stopped`` in another thread follow
    its rounds instead of making calls of their own. The registry lives here, beside the
    engine both use, so neither layer imports the other.
    """

    def serves(self, key: tuple[Any, ...]) -> bool:
        """Whether this wait polls the session ``key`` (``(fleet_key, session_id)``) now."""
        raise NotImplementedError

    def follow(
        self,
        key: tuple[Any, ...],
        done: Callable[[SessionInfo], bool],
        clock: Callable[[], float],
        deadline: float | None,
        describe: Callable[[SessionInfo], str],
    ) -> SessionInfo | None:
        """Wait on this wait's rounds until ``done`` holds; ``None`` once it stops serving.

        Raises:
            WaitTimeoutError: When ``deadline`` passes first.
        """
        raise NotImplementedError


_shared_waits: weakref.WeakSet[SharedWait] = weakref.WeakSet()
_shared_lock = threading.Lock()


def register_shared_wait(wait: SharedWait) -> None:
    """Offer ``wait``'s rounds to single-session waits (held weakly)."""
    with _shared_lock:
        _shared_waits.add(wait)


def unregister_shared_wait(wait: SharedWait) -> None:
    """Withdraw ``wait`` from the registry (nothing happens when it was not there)."""
    with _shared_lock:
        _shared_waits.discard(wait)


def follow_shared_wait(
    session: Any,
    done: Callable[[SessionInfo], bool],
    timeout: timedelta | float | None,
    *,
    target: str = "READY",
) -> tuple[SessionInfo | None, timedelta | float | None]:
    """Let a single-session wait share the rounds of a shared wait running in another thread.

    Args:
        session: The :class:`~sessionkit.Session` waited for.
        done: The wait's predicate (may raise to fail fast).
        timeout: The wait's timeout argument.
        target: Words for the timeout message.

    Returns:
        ``(info, None)`` when the shared rounds ended the wait, else ``(None, remaining)``:
        the caller polls on its own for the time that remains (``timeout`` unchanged when no
        shared wait serves the session).

    Raises:
        WaitTimeoutError: When the wait's deadline passed while following.
    """
    if not _shared_waits:
        return None, timeout
    key = (session.implementation.fleet_key(), session.id)
    with _shared_lock:
        wait = next((w for w in _shared_waits if w.serves(key)), None)
    if wait is None:
        return None, timeout
    policy: PollPolicy = session.poll_policy
    limit = policy.timeout if timeout is None else to_timedelta(timeout)
    deadline = None if limit is None else policy.clock() + limit.total_seconds()
    logger.debug("session %s follows a running fleet wait", session.id)
    info = wait.follow(
        key,
        done,
        policy.clock,
        deadline,
        lambda last: timeout_message(
            limit, f"{session.backend} session {session.id} still {last.state.value}, not {target}"
        ),
    )
    if info is not None:
        return info, None
    if deadline is None:
        return None, None
    return None, max(0.0, deadline - policy.clock())


# ----------------------------------------------------------------------------- signals


class Terminated(SystemExit):
    """SIGTERM arrived inside :func:`stop_on_sigterm`; exits with status ``128 + signum``.

    A ``SystemExit``, so ``except Exception`` does not swallow it, ``with`` blocks and
    ``finally`` clauses run (stopping owned sessions) and the process ends as the signal asked.

    Attributes:
        signum: The signal number.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(128 + signum)
        self.signum = signum


@contextlib.contextmanager
def stop_on_sigterm() -> Iterator[None]:
    """Turn SIGTERM into :class:`Terminated` while the block runs, so owned sessions get stopped.

    Python's default for SIGTERM ends the process at once, leaving every session the program
    started running (and billing) until its idle timeout. Inside this block the first SIGTERM
    raises :class:`Terminated` in the main thread instead: the ``with`` blocks of owned sessions,
    :func:`~sessionkit.open_session` and :func:`~sessionkit.wait_all` request their stops as they
    do on Ctrl-C, and the process then exits with status 143. Further SIGTERMs are ignored
    while that clean-up runs. The previous handler is restored when the block ends.

    Example:
        ```python
        from sessionkit.waiting import stop_on_sigterm

        with stop_on_sigterm(), open_session(BACKEND, role=ROLE) as session:
            session.run("spark.range(10).count()")
        ```

    Raises:
        RuntimeError: When called outside the main thread (Python delivers signals only there).
    """
    import signal

    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError(
            "stop_on_sigterm() must run in the main thread: Python delivers signals only there"
        )
    fired = [False]

    def handler(signum: int, frame: Any) -> None:
        if fired[0]:
            logger.warning("ignoring a repeated SIGTERM while owned sessions are being stopped")
            return
        fired[0] = True
        logger.warning("SIGTERM: stopping the sessions this program owns before exiting")
        raise Terminated(signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)

"""Polling on tenacity: poll policies as values, bounded waits, retried calls, a call budget.

## Poll policies

A [`PollPolicy`][sessionkit.PollPolicy] says how often to look (capped exponential with
jitter), how long to wait by default, how to retry a failed call, how many calls per second a
client may make, and which clock and sleep to use. Policies are frozen values: pass one to
`open_session`, `attach_session` or `wait_all` (`poll_policy=`), derive one with
`attrs.evolve`, or move one onto a virtual clock with `PollPolicy.on`. Three are predefined:

| policy | used by | schedule | timeout |
|---|---|---|---|
| `DEFAULT_POLL` | session waits | first within 1 s, then x1.5 up to 10 s | 20 min |
| `STATEMENT_POLL` | `Session.run` | first after 50 ms, then x1.4 up to 2 s | none |
| `sessionkit.fleet.FLEET_POLL` | `wait_all` | a round every 1 to 1.5 s | 20 min |

Jitter only ever shortens an interval, so the detection lag of a wait never exceeds the
policy's `cap`, and many waits started together drift apart instead of calling in step. Every
wait goes through `poll_until` and every single service call through `call_with_retries`, so
tests run all of sessionkit on virtual time by passing a policy with their own `clock` and
`sleep` (`Emulator.poll_policy()` makes one).

## One budget of calls per client

Every call sessionkit makes (polls, retries, starts, stops, list pages) first takes a token
from a token bucket kept per API client (the boto3 client object for the AWS backends; see
`Backend.budget_key`), refilled at `CallBudget.rate` calls per second up to `CallBudget.burst`.
Sessions sharing a client share its bucket, so a hundred waits in one process together stay
under the rate. An empty bucket sleeps on the calling policy's clock (virtual time in tests).
The budget lives in the core, in the call paths of `Session`, the registry and the fleet, and
not inside the AWS client wrapper: only the core knows the policy's clock, and a backend that
is not AWS gets the same protection.

## Retries, and botocore's own

Throttling, 5xx answers, connection errors and read timeouts are retried with capped
exponential backoff (`retry_first` doubling up to `retry_cap`, `max_attempts` tries in all) on
every operation: start, describe, list, stop (a stop is tried at least 12 times). Errors that a
retry cannot fix raise on the first attempt, as a typed `ServiceError` carrying the AWS request
id. Starting is safe to retry because every attempt sends the same client token (Glue: the
same session Id), and a lost answer is adopted on the next attempt.

Clients sessionkit builds are configured with botocore's `standard` retry mode and
`total_max_attempts=1`: botocore makes one attempt, sessionkit makes every retry, under its
budget and deadline. A client you inject (`client=`) keeps its own configuration. When it
retries inside botocore (`Backend.transport_attempts()` > 1, for instance botocore's default of
3 attempts), sessionkit divides `max_attempts` by botocore's attempts, so a failing call is
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

import contextlib
import logging
import math
import random
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

import attrs

from sessionkit.errors import ServiceError, WaitTimeoutError
from sessionkit.models import to_timedelta

__all__ = [
    "DEFAULT_POLL",
    "STATEMENT_POLL",
    "CallBudget",
    "PollPolicy",
    "Terminated",
    "call_with_retries",
    "poll_until",
    "spend_call",
    "stop_on_sigterm",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _positive(instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if not value > 0:
        raise ValueError(f"{attribute.name} must be positive, got {value!r}")


def _fraction(instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if not 0 <= value < 1:
        raise ValueError(f"{attribute.name} must be in [0, 1), got {value!r}")


def _grown(first: float, multiplier: float, cap: float, steps: int) -> float:
    """``min(cap, first * multiplier ** steps)``, finite for any number of steps.

    The exponent is clamped where the cap is reached (growth) or where the float underflows
    (decay), so a wait of any length never computes ``multiplier ** n`` past float range.
    """
    if steps <= 0 or multiplier == 1.0 or first >= cap and multiplier > 1.0:
        return min(cap, first)
    if multiplier > 1.0:
        # The smallest exponent at which the cap is reached; beyond it the value is the cap.
        steps = min(steps, math.ceil(math.log(cap / first) / math.log(multiplier)) + 1)
    else:
        steps = min(steps, 4096)
    return min(cap, first * multiplier**steps)


def _optional_timeout(value: Any) -> timedelta | None:
    return None if value is None else to_timedelta(value, field="timeout")


@attrs.frozen(kw_only=True)
class CallBudget:
    """How many calls per second one API client may make, shared by every wait in the process.

    A token bucket: ``burst`` calls may go at once, then ``rate`` per second on average. The
    defaults stay well under the published control-plane limits of the three AWS services, so
    sessionkit's own polling is not what gets an account throttled.

    Attributes:
        rate: Calls per second, on average.
        burst: Calls that may go at once after a quiet spell.
    """

    rate: float = attrs.field(default=10.0, validator=_positive)
    burst: float = attrs.field(default=20.0, validator=_positive)


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
    """

    first: float = attrs.field(default=1.0, validator=_positive)
    multiplier: float = attrs.field(default=1.5, validator=_positive)
    cap: float = attrs.field(default=10.0, validator=_positive)
    jitter: float = attrs.field(default=0.2, validator=_fraction)
    timeout: timedelta | None = attrs.field(
        default=timedelta(minutes=20), converter=_optional_timeout
    )
    max_attempts: int = attrs.field(default=8)
    retry_first: float = attrs.field(default=0.5, validator=_positive)
    retry_cap: float = attrs.field(default=8.0, validator=_positive)
    budget: CallBudget | None = attrs.field(default=CallBudget())
    clock: Callable[[], float] = attrs.field(default=time.monotonic, eq=False, repr=False)
    sleep: Callable[[float], None] = attrs.field(default=time.sleep, eq=False, repr=False)
    rng: random.Random = attrs.field(factory=random.Random, eq=False, repr=False)
    now: Callable[[], datetime] = attrs.field(default=_utcnow, eq=False, repr=False)

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


#: The default for waiting on sessions: first poll within 1 s, then x1.5 up to 10 s, 20 minutes.
DEFAULT_POLL = PollPolicy()

#: The default for statements: first poll after 50 ms, then x1.4 up to 2 s, no default timeout.
STATEMENT_POLL = PollPolicy(first=0.05, multiplier=1.4, cap=2.0, jitter=0.1, timeout=None)


class _NotYet(Exception):
    """Internal signal: the awaited condition does not hold yet."""


def _is_retryable(exc: BaseException) -> bool:
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

    def attempt() -> T:
        if polls[0] == 0 and initial is not None:
            polls[0] = 1
            value = initial
        else:
            polls[0] += 1
            spend_call(backend, policy)
            value = fetch()
        last[0] = value
        if done(value):
            return value
        raise _NotYet

    def stop(state: tenacity.RetryCallState) -> bool:
        return deadline is not None and policy.clock() >= deadline

    def wait(state: tenacity.RetryCallState) -> float:
        if polls[0] == 1 and initial is not None:
            pause = policy.first_interval()
        else:
            pause = policy.interval(polls[0] - 1)
        if deadline is not None:
            pause = max(0.0, min(pause, deadline - policy.clock()))
        return pause

    def log_retry(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        if exc is not None and not isinstance(exc, _NotYet):
            logger.info("polling through a transient error: %s", exc)

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(lambda e: isinstance(e, _NotYet) or _is_retryable(e)),
        stop=stop,
        wait=wait,
        sleep=policy.sleep,
        before_sleep=log_retry,
        reraise=True,
    )
    try:
        return retrying(attempt)
    except _NotYet:
        pass
    except ServiceError as exc:
        if not exc.retryable:
            raise
        raise WaitTimeoutError(
            f"timed out after {limit}: {describe(last[0])} (last error: {exc})",
            info=info_of(last[0]),
        ) from exc
    raise WaitTimeoutError(f"timed out after {limit}: {describe(last[0])}", info=info_of(last[0]))


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
            budget, and when its client retries inside botocore, ``policy.max_attempts`` is
            divided by botocore's attempts (see the module docs).

    Returns:
        What ``call`` returned.
    """
    if attempts is not None:
        limit = attempts
    elif backend is not None:
        limit = max(1, math.ceil(policy.max_attempts / _transport_attempts(backend)))
    else:
        limit = policy.max_attempts
    retryable = retry_on or _is_retryable

    # The first attempt runs outside tenacity: most calls succeed at once, and building a
    # Retrying per call would cost more than the rest of sessionkit's share of a call.
    spend_call(backend, policy)
    try:
        return call()
    except Exception as exc:
        if limit <= 1 or not retryable(exc):
            raise
        if deadline is not None and policy.clock() >= deadline:
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
        return deadline is not None and policy.clock() >= deadline

    def log_retry(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        logger.info("%s: retrying after %s (attempt %d)", what, exc, state.attempt_number + 1)

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(retryable),
        stop=stop,
        wait=lambda state: policy.retry_interval(state.attempt_number + 1),
        sleep=policy.sleep,
        before_sleep=log_retry,
        reraise=True,
    )
    return retrying(attempt)


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

        with stop_on_sigterm(), open_session("glue", role=ROLE) as session:
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

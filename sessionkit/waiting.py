"""Polling on tenacity: poll policies as values, bounded waits, retried calls.

A :class:`PollPolicy` says how often to look (capped exponential with jitter), how long to wait
by default, and which clock and sleep to use. Every wait in sessionkit goes through
:func:`poll_until`, every single service call through :func:`call_with_retries`, so tests can
run all of sessionkit on virtual time by passing a policy with their own ``clock`` and ``sleep``.

tenacity is imported on first use, not when sessionkit is imported.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

import attrs

from sessionkit.errors import ServiceError, WaitTimeoutError
from sessionkit.models import to_timedelta

__all__ = [
    "DEFAULT_POLL",
    "STATEMENT_POLL",
    "PollPolicy",
    "call_with_retries",
    "poll_until",
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


def _optional_timeout(value: Any) -> timedelta | None:
    return None if value is None else to_timedelta(value, field="timeout")


@attrs.frozen(kw_only=True)
class PollPolicy:
    """How to poll: when to look, for how long by default, on which clock.

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
        base: float = min(self.cap, self.first * self.multiplier ** max(0, attempt))
        return base * (1.0 - self.jitter * self.rng.random())

    def first_interval(self) -> float:
        """The pause before the first poll after a start call, jitter applied."""
        return min(self.first, self.cap) * (1.0 - self.jitter * self.rng.random())

    def retry_interval(self, attempt: int) -> float:
        """The pause before retrying a failed call for the ``attempt``-th time (1-based)."""
        base: float = min(self.retry_cap, self.retry_first * 2.0 ** max(0, attempt - 1))
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
) -> T:
    """Make one service call, retrying throttling and transient errors with backoff.

    Non-retryable errors are raised on the first attempt. The call must be idempotent as
    written (sessionkit passes the same client token or Id on every attempt).

    Args:
        call: Makes the call once.
        policy: Supplies the attempt count, backoff, clock and sleep.
        what: Words for the log.
        attempts: Overrides ``policy.max_attempts``.
        deadline: A ``policy.clock()`` reading after which no retry starts.
        retry_on: Which errors to retry; default: retryable :class:`ServiceError`.

    Returns:
        What ``call`` returned.
    """
    import tenacity

    limit = policy.max_attempts if attempts is None else attempts

    def stop(state: tenacity.RetryCallState) -> bool:
        if state.attempt_number >= limit:
            return True
        return deadline is not None and policy.clock() >= deadline

    def log_retry(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        logger.info("%s: retrying after %s (attempt %d)", what, exc, state.attempt_number)

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(retry_on or _is_retryable),
        stop=stop,
        wait=lambda state: policy.retry_interval(state.attempt_number),
        sleep=policy.sleep,
        before_sleep=log_retry,
        reraise=True,
    )
    return retrying(call)

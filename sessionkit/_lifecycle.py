"""The lifecycle decisions, written once for the synchronous and the asynchronous API.

A *protocol* here is a generator that decides: which service call to make, what its answer or
its error means, and what comes next. It makes no call itself: it yields each one as a step
(:class:`Call`, :class:`Poll`, :class:`Quietly`, :class:`WaitReady`, :class:`StopQuietly`) and
a driver performs it, sending the answer back or throwing the error in. :func:`drive` is the
synchronous driver (calls in the calling thread, sleeps with the policy's ``sleep``);
``sessionkit.aio`` has the asynchronous one (calls in its worker threads, sleeps on the event
loop). So the two APIs differ only in how they call and how they sleep.

The checks of the entry points' arguments live here too, for the same reason.

This module is private to the package: the names in it are public only so that the package's
own modules (``session``, ``api``, ``aio``) may share them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator, Iterable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from sessionkit.backends.base import MALFORMED
from sessionkit.errors import (
    InvalidConfigError,
    ServiceError,
    StatementFailedError,
    ThrottledError,
    WaitTimeoutError,
)
from sessionkit.models import Endpoint, SessionInfo, StatementResult, Usage, to_timedelta
from sessionkit.states import SessionState, StatementState
from sessionkit.waiting import (
    DEFAULT_POLL,
    PollPolicy,
    ReadyPrior,
    call_with_retries,
    clamp_to_deadline,
    poll_until,
    readiness_failure,
    timeout_message,
)

if TYPE_CHECKING:
    from sessionkit.backends.base import Backend
    from sessionkit.session import Session

__all__ = [
    "ENDPOINT_MARGIN",
    "EXIT_QUIETLY",
    "EXIT_STOP",
    "STOP_ATTEMPTS",
    "Call",
    "Memo",
    "Poll",
    "PollPlan",
    "Protocol",
    "Quietly",
    "Step",
    "StopQuietly",
    "WaitReady",
    "attach_step",
    "check_code",
    "check_flag",
    "check_policy",
    "check_session_id",
    "check_states",
    "delete_step",
    "describe_step",
    "drive",
    "endpoint_protocol",
    "exit_action",
    "finish_open",
    "is_ready",
    "is_stopped",
    "listed",
    "log_stop_failure",
    "outcome_unknown",
    "page_step",
    "perform",
    "ready_prior",
    "ready_wait",
    "statement_outcome",
    "statement_protocol",
    "stop_accepted",
    "stop_protocol",
    "stopped_wait",
    "time_left",
    "usage_protocol",
    "waiting_for",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: A fresh endpoint is fetched when the cached token expires within this margin.
ENDPOINT_MARGIN = timedelta(minutes=1)
#: Stop requests are retried through throttling this many times before giving up.
STOP_ATTEMPTS = 12


# ----------------------------------------------------------------------------- steps


@attrs.frozen(kw_only=True)
class Call:
    """One service call, retried through throttling and transient errors by the driver.

    Attributes:
        function: The blocking call (a backend primitive).
        what: What the call does, for logs and errors (``"stop my-backend:s-1"``).
        policy: The retry policy (and clock) of the call.
        backend: The backend whose call budget the call spends.
        attempts: The most attempts; default: the policy's.
        retry_on: Which errors to retry; default: retryable :class:`ServiceError`.
    """

    function: Callable[[], Any]
    what: str
    policy: PollPolicy
    backend: Backend | None
    attempts: int | None = None
    retry_on: Callable[[BaseException], bool] | None = None


@attrs.frozen(kw_only=True)
class Poll:
    """A wait: ``fetch`` until ``done`` holds, the driver sleeping between polls.

    Attributes:
        fetch: One poll (a blocking call).
        done: Whether a polled value ends the wait; it may raise to fail fast.
        report: Called with every polled value before ``done`` (progress); it may return an
            awaitable, which the asynchronous driver awaits.
        policy: The poll schedule.
        timeout: The longest wait; ``None``: the policy's.
        describe: What is still awaited, for the timeout's message.
        info_of: The :class:`SessionInfo` a timeout carries.
        backend: The backend whose call budget the polls spend.
        initial: A value already known (the start call's answer), taken as the first poll.
        prior: The ready-time prior whose schedule the wait follows (from a start).
    """

    fetch: Callable[[], Any]
    done: Callable[[Any], bool]
    report: Callable[[Any], Any]
    policy: PollPolicy
    timeout: timedelta | float | None
    describe: Callable[[Any], str]
    info_of: Callable[[Any], Any]
    backend: Backend | None
    initial: Any = None
    prior: ReadyPrior | None = None


@attrs.frozen(kw_only=True)
class Quietly:
    """A clean-up call on an error path: shielded from interruption, its errors only logged.

    Attributes:
        call: The call.
        failed: Called with the error when the call fails (it logs).
    """

    call: Call
    failed: Callable[[BaseException], None]


@attrs.frozen(kw_only=True)
class WaitReady:
    """The wait of a session for READY, made by the session's own face (sync or async).

    Attributes:
        session: The session.
        timeout: The longest wait; ``None``: the policy's.
        on_progress: The caller's progress callback.
        initial: The start call's answer, when the session was just started (the backend's
            ready-time prior then sets the schedule).
    """

    session: Session
    timeout: timedelta | None
    on_progress: Callable[..., Any] | None
    initial: SessionInfo | None = None


@attrs.frozen(kw_only=True)
class StopQuietly:
    """The quiet stop of a session on an error path, made by the session's own face."""

    session: Session


Step = Call | Poll | Quietly | WaitReady | StopQuietly
#: A protocol: yields steps, receives their results, returns its own.
Protocol = Generator[Step, Any, T]


def perform(step: Step) -> Any:
    """Perform one step synchronously: the call in this thread, sleeps with the policy's sleep."""
    if isinstance(step, Quietly):
        try:
            return perform(step.call)
        except BaseException as exc:
            step.failed(exc)
            return None
    if isinstance(step, WaitReady):
        return step.session.wait_until_ready(
            step.timeout, on_progress=step.on_progress, _initial=step.initial
        )
    if isinstance(step, StopQuietly):
        step.session.stop_quietly()
        return None
    if isinstance(step, Poll):

        def done(value: Any) -> bool:
            step.report(value)
            return step.done(value)

        return poll_until(
            step.fetch,
            done,
            policy=step.policy,
            timeout=step.timeout,
            describe=step.describe,
            info_of=step.info_of,
            initial=step.initial,
            backend=step.backend,
            prior=step.prior,
        )
    return call_with_retries(
        step.function,
        policy=step.policy,
        what=step.what,
        attempts=step.attempts,
        retry_on=step.retry_on,
        backend=step.backend,
    )


def drive(protocol: Protocol[T]) -> T:
    """Run a protocol synchronously: each step performed in this thread, in order.

    Args:
        protocol: The protocol's generator.

    Returns:
        What the protocol returns.
    """
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            step = protocol.send(value) if error is None else protocol.throw(error)
        except StopIteration as finished:
            result: T = finished.value
            return result
        value, error = None, None
        try:
            value = perform(step)
        except BaseException as exc:
            error = exc


# ----------------------------------------------------------------------------- arguments


def check_policy(given: Any) -> PollPolicy:
    """The ``poll_policy=`` argument, or the default one."""
    if given is None:
        return DEFAULT_POLL
    if not isinstance(given, PollPolicy):
        raise InvalidConfigError(
            "poll_policy", f"must be a sessionkit.PollPolicy, got {type(given).__name__}"
        )
    return given


def check_flag(name: str, value: Any) -> bool:
    """Public flags are real booleans: ``"false"`` is truthy and would do the opposite."""
    if not isinstance(value, bool):
        raise InvalidConfigError(name, f"must be True or False, got {value!r}")
    return value


def check_session_id(session_id: Any) -> str:
    """A session id to attach to: a non-empty string without control characters."""
    if not isinstance(session_id, str) or not session_id.strip():
        raise InvalidConfigError("session_id", f"must be a non-empty string, got {session_id!r}")
    if any(ord(c) < 32 or ord(c) == 127 or 0xD800 <= ord(c) <= 0xDFFF for c in session_id):
        raise InvalidConfigError(
            "session_id", "contains a control character or lone surrogate; remove it"
        )
    return session_id


def check_states(
    states: Iterable[SessionState | str] | SessionState | str | None,
) -> frozenset[SessionState] | None:
    """The ``states=`` filter of a listing, as a set of :class:`SessionState` (``None``: all)."""
    if states is None:
        return None
    if isinstance(states, (str, SessionState)):
        states = [states]
    if isinstance(states, Mapping) or not isinstance(states, Iterable):
        raise InvalidConfigError(
            "states", f"must be a SessionState or an iterable of them, got {states!r}"
        )
    result = set()
    for state in states:
        try:
            result.add(SessionState(state))
        except (ValueError, TypeError):
            raise InvalidConfigError(
                "states",
                f"{state!r} is not a SessionState; use e.g. SessionState.READY",
            ) from None
    return frozenset(result)


def page_step(
    impl: Backend, wanted: frozenset[SessionState] | None, token: str | None, policy: PollPolicy
) -> Call:
    """One page of a listing: its answer is ``(infos, next token)``."""
    return Call(
        function=lambda: impl._list_page(wanted, token),
        what=f"list {impl.name} sessions",
        policy=policy,
        backend=impl,
    )


def listed(info: SessionInfo, wanted: frozenset[SessionState] | None) -> bool:
    """Whether a listing yields ``info``: the filter also runs client-side."""
    return wanted is None or info.state in wanted


def check_code(code: Any) -> str:
    """The code of a statement: a non-empty string."""
    if not isinstance(code, str) or not code.strip():
        raise InvalidConfigError("code", "must be a non-empty string of code")
    return code


# ----------------------------------------------------------------------------- starting


def outcome_unknown(exc: BaseException) -> bool:
    """Whether a failed start attempt may still have created a session."""
    if not isinstance(exc, ServiceError):
        return True  # Ctrl-C, or anything else in the middle of a call
    return exc.retryable or exc.code in (MALFORMED, "CallTimeout")


def time_left(
    timeout: timedelta | None, began: float, clock: Callable[[], float]
) -> timedelta | None:
    """What is left of an open's ``timeout`` that began at ``began``: it bounds the whole open."""
    if timeout is None:
        return None
    spent = timedelta(seconds=max(0.0, clock() - began))
    return max(timedelta(0), timeout - spent)


def finish_open(
    session: Session,
    *,
    wait: bool,
    timeout: timedelta | None,
    on_progress: Callable[..., Any] | None,
    initial: SessionInfo | None = None,
) -> Protocol[Session]:
    """The end of an open: wait for READY, stopping an owned session whose wait fails.

    Whatever ends the wait early (a failed session, a timeout, Ctrl-C, a cancelled task), the
    stop of an owned session is requested before the error propagates. With ``wait`` false,
    the session is returned as it is.
    """
    if wait:
        try:
            yield WaitReady(
                session=session, timeout=timeout, on_progress=on_progress, initial=initial
            )
        except GeneratorExit:
            raise
        except BaseException:
            if session.owned:
                yield StopQuietly(session=session)
            raise
    return session


# ----------------------------------------------------------------------------- waiting


class PollPlan:
    """When the polls of one wait go and when it is over, apart from how it calls and sleeps.

    The same schedule as :func:`~sessionkit.waiting.poll_until` (the ready-time prior's
    planned times after a start, else the policy's capped growth; the last sleep cut to end at
    the deadline, where one final poll is made), for a driver that sleeps elsewhere:
    ``sessionkit.aio`` sleeps on the event loop.

    Args:
        policy: The poll policy.
        timeout: The longest wait; ``None``: the policy's.
        initial: Whether a value is already known (the start call's answer): the first poll
            uses it instead of calling.
        prior: The ready-time prior when the wait starts at a start.
    """

    def __init__(
        self,
        policy: PollPolicy,
        timeout: timedelta | float | None,
        *,
        initial: bool,
        prior: ReadyPrior | None = None,
    ) -> None:
        self.policy = policy
        self.limit = policy.timeout if timeout is None else to_timedelta(timeout)
        self.start = policy.clock()
        self.deadline = None if self.limit is None else self.start + self.limit.total_seconds()
        self.schedule = policy.start_schedule(prior) if prior is not None or policy.prior else None
        self.initial = initial
        #: Polls made (the known value counts as one), service calls made, and when the last
        #: call went (seconds from the start).
        self.polls = 0
        self.fetched = 0
        self.fetched_at = 0.0

    def _clamp(self, pause: float) -> float:
        return clamp_to_deadline(pause, self.deadline, self.policy.clock)

    def first_pause(self) -> float:
        """The sleep before the first poll: with a schedule and nothing known, its first time."""
        if self.schedule is None or self.initial:
            return 0.0
        policy = self.policy
        return self._clamp(self.schedule.pause(0, 0.0, 0.0, policy.rng, policy.jitter))

    def uses_initial(self) -> bool:
        """Whether the next poll is the known value (the first one, when there is one)."""
        return self.polls == 0 and self.initial

    def polled(self, *, fetched: bool) -> None:
        """Record a poll; ``fetched``: it made a service call (now)."""
        self.polls += 1
        if fetched:
            self.fetched += 1
            self.fetched_at = self.policy.clock() - self.start

    def over(self) -> bool:
        """Whether the deadline has come (the poll just made was the last)."""
        return self.deadline is not None and self.policy.clock() >= self.deadline

    def pause(self) -> float:
        """The sleep before the next poll."""
        policy = self.policy
        if self.schedule is not None:
            return self._clamp(
                self.schedule.pause(
                    self.fetched,
                    policy.clock() - self.start,
                    self.fetched_at,
                    policy.rng,
                    policy.jitter,
                )
            )
        if self.polls == 1 and self.initial:
            return self._clamp(policy.first_interval())
        return self._clamp(policy.interval(self.polls - 1))

    def timed_out(
        self, what: str, info: Any, error: BaseException | None = None
    ) -> WaitTimeoutError:
        """The error of a wait that ran out of time: ``what`` is still awaited."""
        if error is not None:
            what = f"{what} (last error: {error})"
        return WaitTimeoutError(timeout_message(self.limit, what), info=info)


def ready_prior(session: Session, initial: SessionInfo | None) -> ReadyPrior | None:
    """The prior a wait for READY follows: the backend's, from the start call on."""
    return None if initial is None else session.implementation.ready_prior


def is_ready(info: SessionInfo) -> bool:
    """Whether a wait for READY ends on ``info``; the fail-fast rule.

    Raises:
        SessionFailedError: On a state from which the session cannot become READY.
    """
    if info.state is SessionState.READY:
        return True
    failure = readiness_failure(info)
    if failure is not None:
        raise failure
    return False


def is_stopped(info: SessionInfo) -> bool:
    """Whether a wait for the end of a session ends on ``info``."""
    return info.state.is_terminal


def waiting_for(session: Session, target: str) -> Callable[[SessionInfo | None], str]:
    """The timeout message's "still ..." part of a wait of ``session`` for ``target``."""
    return lambda info: (
        f"{session.backend} session {session.id} still "
        f"{(info or session.info).state.value}, not {target}"
    )


def attach_step(impl: Backend, session_id: str, policy: PollPolicy) -> Call:
    """The describe that finds a session to attach to."""
    return Call(
        function=lambda: impl._describe(session_id),
        what=f"describe {impl.name} session",
        policy=policy,
        backend=impl,
    )


def ready_wait(
    session: Session,
    timeout: timedelta | float | None,
    report: Callable[[SessionInfo], Any],
    initial: SessionInfo | None = None,
) -> Protocol[SessionInfo]:
    """Wait until ``session`` is READY: light polls, each observed; the fail-fast rule.

    Args:
        session: The session.
        timeout: The longest wait; ``None``: the policy's.
        report: The progress reporter.
        initial: The start call's answer, when the wait follows a start: it is the first
            poll, and the backend's ready-time prior sets the schedule.
    """
    impl = session.implementation
    ready: SessionInfo = yield Poll(
        fetch=lambda: session.observe(impl._describe_light(session.id)),
        done=is_ready,
        report=report,
        policy=session.poll_policy,
        timeout=timeout,
        describe=waiting_for(session, "READY"),
        info_of=lambda info: info or session.info,
        backend=impl,
        initial=initial,
        prior=ready_prior(session, initial),
    )
    return ready


def stopped_wait(
    session: Session, timeout: timedelta | float | None, report: Callable[[SessionInfo], Any]
) -> Protocol[SessionInfo]:
    """Wait until ``session`` has ended (STOPPED, FAILED or TIMED_OUT): light polls."""
    impl = session.implementation
    final: SessionInfo = yield Poll(
        fetch=lambda: session.observe(impl._describe_light(session.id)),
        done=is_stopped,
        report=report,
        policy=session.poll_policy,
        timeout=timeout,
        describe=waiting_for(session, "stopped"),
        info_of=lambda info: info or session.info,
        backend=impl,
    )
    return final


def describe_step(session: Session) -> Call:
    """The full describe of ``session`` (its answer goes to ``session.observe``)."""
    impl = session.implementation
    return Call(
        function=lambda: impl._describe(session.id),
        what=f"describe {session.backend}:{session.id}",
        policy=session.poll_policy,
        backend=impl,
    )


# ----------------------------------------------------------------------------- stopping


def stop_accepted(info: SessionInfo) -> bool:
    """Whether a session whose stop the service refused is ending anyway (the stop succeeded)."""
    return info.state.is_terminal or info.state is SessionState.STOPPING


def stop_protocol(session: Session) -> Protocol[None]:
    """Ask the service to stop ``session``, retried through throttling; no wait.

    A refusal that is not transient is checked with a describe: the service refuses to stop a
    session that is already ending, and that is success.
    """
    if session.info.state.is_terminal:
        return
    impl = session.implementation
    policy = session.poll_policy
    try:
        yield Call(
            function=lambda: impl._stop(session.id),
            what=f"stop {session.backend}:{session.id}",
            policy=policy,
            backend=impl,
            attempts=max(policy.max_attempts, STOP_ATTEMPTS),
        )
    except ServiceError as exc:
        if exc.retryable:
            raise
        info = session.observe((yield describe_step(session)))
        if not stop_accepted(info):
            raise
    session.mark_stop_requested()
    logger.info("requested stop of %s session %s", session.backend, session.id)


def delete_step(session: Session) -> Call:
    """The deletion of a stopped session's record, where the service keeps one."""
    impl = session.implementation
    return Call(
        function=lambda: impl._delete(session.id),
        what=f"delete {session.backend}:{session.id}",
        policy=session.poll_policy,
        backend=impl,
    )


def log_stop_failure(session: Session, exc: BaseException) -> None:
    """Say that a quiet stop failed: the session may still be running."""
    logger.error(
        "could not stop %s session %s; it may still be running and costing money: %s",
        session.backend,
        session.id,
        exc,
    )


#: What leaving a ``with`` block does: request the stop (errors raise) ...
EXIT_STOP = "stop"
#: ... or request it quietly (an error is in flight; the stop must not mask it).
EXIT_QUIETLY = "quietly"


def exit_action(session: Session, failed: bool) -> str | None:
    """What leaving a ``with`` block of ``session`` does.

    Args:
        session: The session.
        failed: Whether the block ends with an exception (a cancellation included).

    Returns:
        ``None`` (nothing: not owned, or already stopped), :data:`EXIT_STOP` or
        :data:`EXIT_QUIETLY`.
    """
    if not session.owned or session.stop_requested:
        return None
    return EXIT_QUIETLY if failed else EXIT_STOP


# ----------------------------------------------------------------------------- statements


def statement_outcome(statement_id: str, result: StatementResult) -> StatementResult:
    """The result of a finished statement, or the error that it failed.

    Raises:
        StatementFailedError: When the statement failed or was cancelled.
    """
    if result.state is not StatementState.SUCCEEDED:
        detail = ": ".join(x for x in (result.error_name, result.error_value) if x)
        raise StatementFailedError(
            f"statement {statement_id} {result.state.value}{': ' + detail if detail else ''}",
            result=result,
        )
    return result


def statement_protocol(
    session: Session,
    code: str,
    timeout: timedelta | float | None,
    report: Callable[[str], Callable[[StatementResult], Any]],
) -> Protocol[StatementResult]:
    """Submit ``code`` to a ready ``session`` and wait for its result.

    Only throttling proves a statement did not start, so only throttling is retried: never
    risk running code twice. A wait that ends early (timeout, interrupt, cancellation) cancels
    the statement on the service first.

    Args:
        session: The session (already READY).
        code: The code.
        timeout: The longest wait for the statement.
        report: Makes the progress reporter of a statement, given its id.
    """
    impl = session.implementation
    statement_id: str = yield Call(
        function=lambda: impl._run(session.id, code),
        what=f"run in {session.backend}:{session.id}",
        policy=session.poll_policy,
        backend=impl,
        retry_on=lambda exc: isinstance(exc, ThrottledError),
    )
    logger.info(
        "submitted statement %s to %s session %s", statement_id, session.backend, session.id
    )
    try:
        result: StatementResult = yield Poll(
            fetch=lambda: impl._statement(session.id, statement_id),
            done=lambda r: r.state.is_terminal,
            report=report(statement_id),
            policy=session.statement_policy,
            timeout=timeout,
            describe=lambda r: (
                f"statement {statement_id} still {r.state.value if r else 'PENDING'}"
            ),
            info_of=lambda r: session.info,
            backend=impl,
        )
    except GeneratorExit:
        raise
    except BaseException:

        def failed(exc: BaseException) -> None:
            logger.error("could not cancel statement %s: %s", statement_id, exc)

        cancelled = yield Quietly(
            call=Call(
                function=lambda: _cancelled(impl, session.id, statement_id),
                what=f"cancel statement {statement_id}",
                policy=session.poll_policy,
                backend=impl,
            ),
            failed=failed,
        )
        if cancelled:
            logger.info(
                "cancelled statement %s on %s session %s",
                statement_id,
                session.backend,
                session.id,
            )
        raise
    return statement_outcome(statement_id, result)


def _cancelled(impl: Backend, session_id: str, statement_id: str) -> bool:
    impl._cancel(session_id, statement_id)
    return True


# ----------------------------------------------------------------------------- lookups


@attrs.define
class Memo:
    """What a session remembers between calls, shared by its synchronous and async faces.

    Attributes:
        endpoint: The last Spark Connect endpoint fetched.
        usage_looked_up: The :class:`SessionInfo` a usage lookup was last made for.
    """

    endpoint: Endpoint | None = None
    usage_looked_up: SessionInfo | None = None


def endpoint_protocol(session: Session) -> Protocol[Endpoint]:
    """The session's endpoint: the cached one, unless its token expires within a minute."""
    memo = session.memo
    current = memo.endpoint
    if current is None or current.expires_within(ENDPOINT_MARGIN, now=session.poll_policy.now()):
        impl = session.implementation
        current = yield Call(
            function=lambda: impl._endpoint(session.id),
            what=f"endpoint of {session.backend}:{session.id}",
            policy=session.poll_policy,
            backend=impl,
        )
        memo.endpoint = current
    return current


def usage_protocol(session: Session) -> Protocol[Usage]:
    """Usage as of the last look; described anew once when the last look carried none.

    Polls and list calls do not always carry usage figures (a light status call, a list
    summary), so an empty :class:`Usage` on the last look is looked up once per look.
    """
    memo = session.memo
    if session.info.usage == Usage() and memo.usage_looked_up is not session.info:
        session.observe((yield describe_step(session)))
        memo.usage_looked_up = session.info
    return session.info.usage

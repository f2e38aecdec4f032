"""The sessionkit API, awaitable: the same sessions, states and errors, on asyncio.

```python
import sessionkit.aio as aio

async with aio.open_session(BACKEND, role=ROLE, **CONNECTION) as session:
    result = await session.run("spark.range(10).count()")
```

Everything goes through the same backends and the same rules as the synchronous API
(validation, error translation, states, ownership, the start protocol): both drive the same
lifecycle decisions (when a wait ends or fails fast, what a refused stop means, when a
statement is cancelled, when an endpoint is fetched anew, the poll schedule), so only how calls
are made and how waits sleep differs:

- **Blocking SDK calls run in worker threads**, in sessionkit's own pool of at most
  `MAX_WORKER_THREADS` (16) threads (not the loop's default executor), so a thousand
  concurrent waits cost at most that many threads and leave the loop's executor to the
  application.
- **Waits sleep on the event loop.** Polls follow the session's
  [`PollPolicy`][sessionkit.PollPolicy] schedule on tenacity's `AsyncRetrying`; between polls no
  thread is held. Retries of single calls (throttling, 5xx) back off on the loop too. The call
  budget of each API client is shared with synchronous callers.
- **Virtual time works**: a policy's `async_sleep` is awaited to sleep; when it is not set and
  the policy's `sleep` is not `time.sleep` (the emulator's virtual clock), that sleep is called
  and the loop is yielded to, so `Emulator.poll_policy()` drives the async API on virtual time.
- **Cancellation stops what you own.** A cancelled `open_session`, `wait_until_ready` or
  `async with` block of an owned session requests its stop, shielded from the cancellation, and
  then re-raises `CancelledError`. The start itself (the service call and its retries) runs as
  one unit in a worker thread: cancelling during it requests the stop of the session as soon as
  the start returns.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import inspect
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from sessionkit import _lifecycle, api
from sessionkit._lifecycle import (
    EXIT_STOP,
    Call,
    Poll,
    Protocol,
    Quietly,
    Step,
    StopQuietly,
    WaitReady,
    exit_action,
)
from sessionkit.errors import (
    ServiceError,
)
from sessionkit.models import Endpoint, SessionInfo, StatementResult, Usage, to_timedelta
from sessionkit.registry import build_backend
from sessionkit.session import (
    ProgressCallback,
    ProgressReporter,
    Session,
    SessionRef,
    check_progress_callback,
)
from sessionkit.states import SessionState
from sessionkit.waiting import PageGuard, PollPolicy, ReadyPrior, call_pause, is_retryable

if TYPE_CHECKING:
    from sessionkit.backends.base import Backend
    from sessionkit.fleet import FleetPoller

__all__ = [
    "MAX_WORKER_THREADS",
    "AsyncSession",
    "SessionOpener",
    "attach_session",
    "ensure_session",
    "list_sessions",
    "open_session",
    "wait_all",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

MAX_WORKER_THREADS = 16
"""The most worker threads sessionkit.aio runs blocking SDK calls in, for the whole process."""

_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(
                max_workers=MAX_WORKER_THREADS, thread_name_prefix="sessionkit-aio"
            )
        return _executor


async def _in_thread(call: Callable[[], T]) -> T:
    """Run a blocking call in sessionkit's worker pool (context variables carried over)."""
    loop = asyncio.get_running_loop()
    context = contextvars.copy_context()
    return await loop.run_in_executor(_pool(), functools.partial(context.run, call))


async def _sleep(policy: PollPolicy, seconds: float) -> None:
    if policy.async_sleep is not None:
        await policy.async_sleep(seconds)
    elif policy.sleep is time.sleep:
        await asyncio.sleep(seconds)
    else:
        # A virtual clock: advancing it does not block; yield so other tasks run.
        policy.sleep(seconds)
        await asyncio.sleep(0)


async def _spend(backend: Any, policy: PollPolicy) -> None:
    pause = call_pause(backend, policy)
    if pause > 0:
        await _sleep(policy, pause)


async def _call(
    call: Callable[[], T],
    *,
    policy: PollPolicy,
    what: str,
    backend: Backend | None,
    attempts: int | None = None,
    retry_on: Callable[[BaseException], bool] | None = None,
) -> T:
    """The async twin of ``waiting.call_with_retries``: attempts in threads, backoff on the loop."""
    import tenacity

    if attempts is not None:
        limit = attempts
    elif backend is not None:
        limit = max(1, -(-policy.max_attempts // max(1, int(backend.transport_attempts()))))
    else:
        limit = policy.max_attempts
    retryable = retry_on or is_retryable

    async def attempt() -> T:
        await _spend(backend, policy)
        return await _in_thread(call)

    def log_retry(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        logger.info("%s: retrying after %s (attempt %d)", what, exc, state.attempt_number)

    retrying = tenacity.AsyncRetrying(
        retry=tenacity.retry_if_exception(retryable),
        stop=tenacity.stop_after_attempt(limit),
        wait=lambda state: policy.retry_interval(state.attempt_number),
        sleep=lambda seconds: _sleep(policy, seconds),
        before_sleep=log_retry,
        reraise=True,
    )
    result: T = await retrying(attempt)
    return result


class _NotYet(Exception):
    """Internal signal: the awaited condition does not hold yet."""


async def _poll_until(
    fetch: Callable[[], T],
    done: Callable[[T], Any],
    *,
    policy: PollPolicy,
    timeout: timedelta | float | None,
    describe: Callable[[T | None], str],
    info_of: Callable[[T | None], Any],
    initial: T | None = None,
    backend: Backend | None = None,
    prior: ReadyPrior | None = None,
) -> T:
    """The async twin of ``waiting.poll_until``, on the same schedule (``PollPlan``).

    ``done`` may return an awaitable (an async ``on_progress``); it may raise to fail fast.
    """
    import tenacity

    plan = _lifecycle.PollPlan(policy, timeout, initial=initial is not None, prior=prior)
    last: list[T | None] = [initial]

    async def attempt() -> T:
        if plan.uses_initial():
            plan.polled(fetched=False)
            value = initial
        else:
            await _spend(backend, policy)
            plan.polled(fetched=True)
            value = await _in_thread(fetch)
        last[0] = value
        verdict = done(value)  # type: ignore[arg-type]
        if inspect.isawaitable(verdict):
            verdict = await verdict
        if verdict:
            return value  # type: ignore[return-value]
        raise _NotYet

    def log_retry(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        if exc is not None and not isinstance(exc, _NotYet):
            logger.info("polling through a transient error: %s", exc)

    retrying = tenacity.AsyncRetrying(
        retry=tenacity.retry_if_exception(lambda e: isinstance(e, _NotYet) or is_retryable(e)),
        stop=lambda state: plan.over(),
        wait=lambda state: plan.pause(),
        sleep=lambda seconds: _sleep(policy, seconds),
        before_sleep=log_retry,
        reraise=True,
    )
    first = plan.first_pause()
    if first > 0:
        # Nothing to look at before the schedule's first planned time.
        await _sleep(policy, first)
    try:
        result: T = await retrying(attempt)
        return result
    except _NotYet:
        pass
    except ServiceError as exc:
        if not exc.retryable:
            raise
        raise plan.timed_out(describe(last[0]), info_of(last[0]), exc) from exc
    raise plan.timed_out(describe(last[0]), info_of(last[0]))


async def _settle(outcome: Any) -> None:
    """Await what an async ``on_progress`` callback returned; its errors are only logged."""
    if inspect.isawaitable(outcome):
        try:
            await outcome
        except Exception:
            logger.warning("the on_progress callback raised; ignoring it", exc_info=True)


async def _perform(step: Step) -> Any:
    """Perform one step of a lifecycle protocol: calls in worker threads, sleeps on the loop."""
    if isinstance(step, WaitReady):
        return await AsyncSession(step.session).wait_until_ready(
            step.timeout, on_progress=step.on_progress, _initial=step.initial
        )
    if isinstance(step, StopQuietly):
        await AsyncSession(step.session).stop_quietly()
        return None
    if isinstance(step, Quietly):
        task = asyncio.ensure_future(_perform(step.call))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            # Cancelled again while cleaning up: let the clean-up finish, then propagate.
            try:
                await task
            except BaseException as exc:
                step.failed(exc)
            raise
        except BaseException as exc:
            step.failed(exc)
            return None
    if isinstance(step, Poll):
        poll = step

        async def done(value: Any) -> bool:
            await _settle(poll.report(value))
            return poll.done(value)

        return await _poll_until(
            poll.fetch,
            done,
            policy=poll.policy,
            timeout=poll.timeout,
            describe=poll.describe,
            info_of=poll.info_of,
            initial=poll.initial,
            backend=poll.backend,
            prior=poll.prior,
        )
    call: Call = step
    return await _call(
        call.function,
        policy=call.policy,
        what=call.what,
        backend=call.backend,
        attempts=call.attempts,
        retry_on=call.retry_on,
    )


async def _drive(protocol: Protocol[T]) -> T:
    """Run a lifecycle protocol on the event loop (the async twin of ``_lifecycle.drive``)."""
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
            value = await _perform(step)
        except BaseException as exc:
            error = exc


class AsyncSession:
    """One interactive Spark session, awaitable: :class:`~sessionkit.Session` on asyncio.

    Get one from :func:`open_session` (owned: stopped when the ``async with`` block ends, also
    on cancellation), :func:`attach_session` or :func:`ensure_session`. The properties make no
    call; the methods are coroutines.

    Args:
        session: The synchronous session it drives (shares its state and ownership).
    """

    def __init__(self, session: Session) -> None:
        self._session = session
        self._endpoint_lock = asyncio.Lock()

    # -- identity ------------------------------------------------------------------------------

    @property
    def id(self) -> str:
        """The service's session id."""
        return self._session.id

    @property
    def backend(self) -> str:
        """The backend name, as given to ``open_session``."""
        return self._session.backend

    @property
    def info(self) -> SessionInfo:
        """The last :class:`~sessionkit.SessionInfo` seen (no call)."""
        return self._session.info

    @property
    def state(self) -> SessionState:
        """The last state seen (no call)."""
        return self._session.state

    @property
    def owned(self) -> bool:
        """Whether leaving an ``async with`` block stops this session."""
        return self._session.owned

    @property
    def sync(self) -> Session:
        """The synchronous :class:`~sessionkit.Session` behind this one (same state)."""
        return self._session

    @property
    def poll_policy(self) -> PollPolicy:
        """How waits on this session poll."""
        return self._session.poll_policy

    def ref(self) -> SessionRef:
        """Return a :class:`~sessionkit.SessionRef` to find this session again elsewhere."""
        return self._session.ref()

    def __repr__(self) -> str:
        return (
            f"<AsyncSession {self.backend}:{self.id} {self.state.value}"
            f"{' owned' if self.owned else ''}>"
        )

    # -- calls ---------------------------------------------------------------------------------

    async def refresh(self) -> SessionInfo:
        """Describe the session now (retrying throttling and transient errors).

        Returns:
            The new :class:`~sessionkit.SessionInfo`, also kept as :attr:`info`.
        """
        return self._session.observe(await _perform(_lifecycle.describe_step(self._session)))

    async def usage(self) -> Usage:
        """Usage as of the last look, described anew when the last look carried none.

        Returns:
            The :class:`~sessionkit.Usage`.
        """
        return await _drive(_lifecycle.usage_protocol(self._session))

    async def wait_until_ready(
        self,
        timeout: timedelta | float | None = None,
        *,
        on_progress: ProgressCallback | None = None,
        _initial: SessionInfo | None = None,
    ) -> SessionInfo:
        """Wait until the session is READY, sleeping on the event loop between polls.

        Same rules as :meth:`sessionkit.Session.wait_until_ready`. When the task is cancelled
        (or interrupted) and the session is owned, its stop is requested before the
        cancellation propagates.

        Args:
            timeout: The longest wait (``timedelta`` or seconds); default: the policy's.
            on_progress: Called with a :class:`~sessionkit.Progress` on every poll that sees
                something change; may be a coroutine function.

        Returns:
            The READY :class:`~sessionkit.SessionInfo`.

        Raises:
            SessionFailedError: At once on FAILED, TIMED_OUT, DEGRADED, STOPPING or STOPPED.
            WaitTimeoutError: When time runs out (after a last poll at the deadline).
        """
        session = self._session
        report = ProgressReporter(
            check_progress_callback(on_progress), session.poll_policy.clock, session_id=self.id
        )
        try:
            return await _drive(_lifecycle.ready_wait(session, timeout, report, _initial))
        except (asyncio.CancelledError, KeyboardInterrupt, SystemExit):
            if session.owned:
                await self.stop_quietly()
            raise

    async def wait_until_stopped(
        self,
        timeout: timedelta | float | None = None,
        *,
        on_progress: ProgressCallback | None = None,
    ) -> SessionInfo:
        """Wait until the session has ended (STOPPED, FAILED or TIMED_OUT).

        Args:
            timeout: The longest wait; default: the policy's.
            on_progress: Called with a :class:`~sessionkit.Progress` on every poll that sees
                something change.

        Returns:
            The final :class:`~sessionkit.SessionInfo`.

        Raises:
            WaitTimeoutError: When time runs out.
        """
        session = self._session
        report = ProgressReporter(
            check_progress_callback(on_progress), session.poll_policy.clock, session_id=self.id
        )
        return await _drive(_lifecycle.stopped_wait(session, timeout, report))

    # -- stopping --------------------------------------------------------------------------------

    async def _request_stop(self) -> None:
        await _drive(_lifecycle.stop_protocol(self._session))

    async def stop_quietly(self) -> None:
        """Request the stop on an error path, shielded from cancellation, never raising."""
        if self._session.stop_requested:
            return
        task = asyncio.ensure_future(self._request_stop())
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            # Cancelled again while stopping: let the stop finish, then propagate.
            try:
                await task
            except BaseException as exc:
                _lifecycle.log_stop_failure(self._session, exc)
            raise
        except BaseException as exc:
            _lifecycle.log_stop_failure(self._session, exc)

    async def stop(
        self,
        wait: bool = True,
        delete: bool = False,
        timeout: timedelta | float | None = None,
    ) -> SessionInfo:
        """Stop the session.

        Args:
            wait: Wait until it has stopped (default); ``False`` only requests the stop.
            delete: Also delete its record where the service keeps one; implies waiting.
            timeout: The longest wait for STOPPED; default: the policy's.

        Returns:
            The last :class:`~sessionkit.SessionInfo` seen.

        Raises:
            WaitTimeoutError: When waiting and time runs out.
            ServiceError: When the service does not accept the stop.
        """
        _lifecycle.check_flag("wait", wait)
        _lifecycle.check_flag("delete", delete)
        await self._request_stop()
        if wait or delete:
            await self.wait_until_stopped(timeout)
        if delete:
            await _perform(_lifecycle.delete_step(self._session))
            logger.info("deleted %s session %s", self.backend, self.id)
        return self.info

    async def __aenter__(self) -> AsyncSession:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        action = exit_action(self._session, failed=exc_type is not None)
        if action is None:
            return
        if action == EXIT_STOP:
            task = asyncio.ensure_future(self._request_stop())
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError:
                await self.stop_quietly()
                raise
        else:
            await self.stop_quietly()

    # -- running code ----------------------------------------------------------------------------

    async def run(
        self,
        code: str,
        timeout: timedelta | float | None = None,
        *,
        on_progress: ProgressCallback | None = None,
    ) -> StatementResult:
        """Run code in the session and wait for its result (on the event loop).

        Same rules as :meth:`sessionkit.Session.run`; when the task is cancelled or ``timeout``
        passes, the statement is cancelled on the service (shielded).

        Args:
            code: The code to run (PySpark, with ``spark`` bound).
            timeout: The longest wait for the statement; default: none.
            on_progress: Called with a :class:`~sessionkit.Progress` (``statement_id`` set) on
                every statement poll that sees something change.

        Returns:
            The :class:`~sessionkit.StatementResult` of a successful run.

        Raises:
            StatementFailedError: When the code failed or was cancelled.
            NotSupportedError: On backends without a statement API.
            WaitTimeoutError: When ``timeout`` passed (the statement was cancelled).
        """
        _lifecycle.check_code(code)
        callback = check_progress_callback(on_progress)
        await self.wait_until_ready()
        session = self._session

        def reporter(statement_id: str) -> ProgressReporter:
            return ProgressReporter(
                callback,
                session.statement_policy.clock,
                session_id=self.id,
                statement_id=statement_id,
            )

        return await _drive(_lifecycle.statement_protocol(session, code, timeout, reporter))

    # -- Spark Connect ---------------------------------------------------------------------------

    async def endpoint(self) -> Endpoint:
        """Return the session's Spark Connect endpoint with a valid token (cached as in sync).

        Returns:
            The :class:`~sessionkit.Endpoint`.

        Raises:
            NotSupportedError: On backends without Spark Connect.
        """
        async with self._endpoint_lock:
            return await _drive(_lifecycle.endpoint_protocol(self._session))

    async def spark(self) -> Any:
        """Return a Spark Connect ``SparkSession`` bound to the session (made in a thread).

        Returns:
            What :meth:`sessionkit.Session.spark` returns.
        """
        return await _in_thread(self._session.spark)


# ----------------------------------------------------------------------------- entry points


class SessionOpener:
    """What :func:`open_session` and :func:`ensure_session` return: await it, or ``async with``.

    ``await`` gives the :class:`AsyncSession`; ``async with`` gives it too and stops it on exit
    when it is owned (also on an exception or a cancelled task).

    Args:
        opening: The coroutine that opens the session (run once).
    """

    def __init__(self, opening: Awaitable[AsyncSession]) -> None:
        self._opening = opening
        self._session: AsyncSession | None = None

    def __await__(self) -> Generator[Any, None, AsyncSession]:
        return self._opening.__await__()

    async def __aenter__(self) -> AsyncSession:
        self._session = await self._opening
        return self._session

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.__aexit__(exc_type, exc, tb)


async def _start_in_thread(start: Callable[[], Session]) -> Session:
    """Run a synchronous start in a worker thread; if cancelled meanwhile, stop what it made.

    The clean-up hangs on the thread's own future, so it runs even when the event loop has
    closed by the time the start returns.
    """
    context = contextvars.copy_context()
    future = _pool().submit(context.run, start)
    try:
        return await asyncio.shield(asyncio.wrap_future(future))
    except asyncio.CancelledError:

        def stop_when_started(done: concurrent.futures.Future[Session]) -> None:
            if done.cancelled() or done.exception() is not None:
                return
            started = done.result()
            if started.owned:
                logger.info("start of %s was cancelled; stopping it", started.id)
                started.stop_quietly()

        future.add_done_callback(stop_when_started)
        raise


def open_session(
    backend: str,
    *,
    wait: bool = True,
    timeout: timedelta | float | None = None,
    poll_policy: PollPolicy | None = None,
    on_progress: ProgressCallback | None = None,
    **config: Any,
) -> SessionOpener:
    """Start a session and (by default) wait until it is READY, on the event loop.

    Takes the same arguments and checks as :func:`sessionkit.open_session`; bad input raises
    :class:`~sessionkit.errors.InvalidConfigError` when awaited, before any call. The start
    (with its retries) runs in a worker thread; the wait sleeps on the loop. If the session
    fails, times out, or the task is cancelled, its stop is requested before the error (or the
    cancellation) propagates.

    Args:
        backend: The backend name.
        wait: Wait until READY (default).
        timeout: The longest the whole open may take, pre-flight included, as in
            :func:`sessionkit.open_session`; default 20 minutes for the wait for READY.
        poll_policy: How to poll and retry (and on which clock).
        on_progress: Called with a :class:`~sessionkit.Progress` on every poll of the wait
            that sees something change; may be a coroutine function.
        **config: :class:`~sessionkit.SessionConfig` fields and the backend's own keywords.

    Returns:
        A :class:`SessionOpener`: ``await`` it for the owned :class:`AsyncSession`, or use
        ``async with`` to stop the session when the block ends.
    """

    async def opening() -> AsyncSession:
        wait_timeout = None if timeout is None else to_timedelta(timeout, field="timeout")
        check_progress_callback(on_progress)
        clock = _lifecycle.check_policy(poll_policy).clock
        began = clock()
        # The timeout bounds the whole open, as in the synchronous API: the start's pre-flight
        # waits on it, and the wait for READY gets what is left.
        started = await _start_in_thread(
            lambda: api.open_session(
                backend, wait=False, timeout=timeout, poll_policy=poll_policy, **config
            )
        )
        session = AsyncSession(started)
        await _drive(
            _lifecycle.finish_open(
                started,
                wait=wait,
                timeout=_lifecycle.time_left(wait_timeout, began, clock),
                on_progress=on_progress,
                initial=started.info,
            )
        )
        return session

    return SessionOpener(opening())


async def attach_session(
    backend: str,
    session_id: str,
    *,
    stop_on_exit: bool = False,
    poll_policy: PollPolicy | None = None,
    **keywords: Any,
) -> AsyncSession:
    """Wrap an existing session (one describe call, in a worker thread).

    Args:
        backend: The backend name.
        session_id: The service's session id.
        stop_on_exit: Stop the session when an ``async with`` block ends.
        poll_policy: How to poll and retry.
        **keywords: The backend's connection and location keywords.

    Returns:
        The :class:`AsyncSession`, not owned unless ``stop_on_exit=True``.
    """
    session = await _in_thread(
        lambda: api.attach_session(
            backend, session_id, stop_on_exit=stop_on_exit, poll_policy=poll_policy, **keywords
        )
    )
    return AsyncSession(session)


def ensure_session(
    backend: str,
    name: str,
    *,
    wait: bool = True,
    timeout: timedelta | float | None = None,
    poll_policy: PollPolicy | None = None,
    on_progress: ProgressCallback | None = None,
    **keywords: Any,
) -> SessionOpener:
    """The alive session named ``name``, attached, or a new one opened under that name.

    The same protocol as :func:`sessionkit.ensure_session` (safe against racing processes),
    with the wait on the event loop.

    Args:
        backend: The backend name.
        name: The session name.
        wait: Wait until READY (default).
        timeout: The longest wait for READY.
        poll_policy: How to poll and retry.
        on_progress: Called with a :class:`~sessionkit.Progress` on every poll of the wait.
        **keywords: SessionConfig fields and the backend's own keywords.

    Returns:
        A :class:`SessionOpener` of an :class:`AsyncSession`: owned if this call opened it.
    """

    async def opening() -> AsyncSession:
        wait_timeout = None if timeout is None else to_timedelta(timeout, field="timeout")
        check_progress_callback(on_progress)
        found = await _start_in_thread(
            lambda: api.ensure_session(
                backend, name, wait=False, poll_policy=poll_policy, **keywords
            )
        )
        session = AsyncSession(found)
        await _drive(
            _lifecycle.finish_open(
                found,
                wait=wait,
                timeout=wait_timeout,
                on_progress=on_progress,
                # A session this call opened was just started: its wait follows the prior.
                initial=found.info if found.owned else None,
            )
        )
        return session

    return SessionOpener(opening())


async def list_sessions(
    backend: str,
    *,
    states: Iterable[SessionState | str] | SessionState | str | None = None,
    poll_policy: PollPolicy | None = None,
    **keywords: Any,
) -> AsyncIterator[SessionInfo]:
    """Iterate over the sessions of a location, all pages, each page fetched in a thread.

    Args:
        backend: The backend name.
        states: Only sessions in these states.
        poll_policy: Retry policy for the list calls.
        **keywords: The backend's connection and location keywords.

    Yields:
        :class:`~sessionkit.SessionInfo`, page by page as you iterate.
    """
    wanted = _lifecycle.check_states(states)
    policy = _lifecycle.check_policy(poll_policy)
    impl = await _in_thread(lambda: build_backend(backend, keywords))
    impl.poll_policy = policy
    guard = PageGuard(f"list {impl.name} sessions")
    token: str | None = None
    while True:
        page, token = await _perform(_lifecycle.page_step(impl, wanted, token, policy))
        for info in page:
            if _lifecycle.listed(info, wanted):
                yield info
        token = guard.next(token)
        if token is None:
            return


async def wait_all(
    sessions: Iterable[AsyncSession | Session],
    until: SessionState | str = SessionState.READY,
    timeout: timedelta | float | None = None,
    *,
    poll_policy: PollPolicy | None = None,
) -> list[SessionInfo]:
    """Wait for many sessions at once, like :func:`sessionkit.wait_all`, on the event loop.

    Each round (list calls per backend and location, as the synchronous fleet makes) runs in a
    worker thread; the loop sleeps between rounds. On cancellation the owned sessions of the
    fleet are stopped (shielded).

    Args:
        sessions: The sessions to wait for (async or sync).
        until: ``SessionState.READY`` or ``SessionState.STOPPED``.
        timeout: The longest wait; default: the policy's (20 minutes).
        poll_policy: The cadence; default ``FLEET_POLL`` on the first session's clock.

    Returns:
        The final :class:`~sessionkit.SessionInfo` of every session, in the order given.

    Raises:
        FleetFailedError: When any session failed.
        FleetTimeoutError: When time ran out first.
    """
    from sessionkit.fleet import FleetPoller

    members = [s.sync if isinstance(s, AsyncSession) else s for s in sessions]
    poller: FleetPoller = FleetPoller(
        members, until=until, timeout=timeout, poll_policy=poll_policy
    )
    policy = poller.policy
    try:
        while True:
            await _in_thread(poller.poll)
            if not poller.pending:
                break
            pause = policy.interval(poller.rounds - 1)
            deadline = poller.deadline
            if deadline is not None:
                pause = max(0.0, min(pause, deadline - policy.clock()))
            await _sleep(policy, pause)
    except (asyncio.CancelledError, KeyboardInterrupt, SystemExit):
        owned = [AsyncSession(s) for s in poller.sessions if s.owned and not s.state.is_terminal]
        await asyncio.gather(*(s.stop_quietly() for s in owned), return_exceptions=True)
        raise
    # Every session has its outcome now: the fleet's own verdict (no further call or sleep).
    return poller.wait()

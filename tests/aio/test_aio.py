"""sessionkit.aio: the same sessions on asyncio, without blocking the event loop.

Every test runs on the emulator's virtual clock: waits advance virtual time and yield to the
loop, so they take no real time, and nothing here asserts on real durations.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable
from typing import Any

import attrs
import pytest

import sessionkit
import sessionkit.aio as aio
from sessionkit import (
    InvalidConfigError,
    PollPolicy,
    Progress,
    SessionFailedError,
    SessionState,
    StatementFailedError,
    StatementState,
    WaitTimeoutError,
)
from sessionkit.testing import Emulator

BACKENDS = ["glue", "emr-serverless", "athena"]


def run(coroutine: Awaitable[Any]) -> Any:
    return asyncio.run(coroutine)  # type: ignore[arg-type]


class LoopWatch:
    """Records which thread every SDK call runs on, and how often a ticker task ran."""

    def __init__(self) -> None:
        self.ticks = 0
        self.calls_on_loop: list[str] = []
        self.calls_elsewhere: list[str] = []
        self.loop_thread: threading.Thread | None = None

    def watch(self, client: Any) -> None:
        client.meta.events.register("before-call.*.*", self._on_call)

    def _on_call(self, model: Any, **kwargs: Any) -> None:
        name = model.name
        if threading.current_thread() is self.loop_thread:
            self.calls_on_loop.append(name)
        else:
            self.calls_elsewhere.append(name)

    async def ticker(self) -> None:
        self.loop_thread = threading.current_thread()
        while True:
            self.ticks += 1
            await asyncio.sleep(0)


def wired(emulator: Emulator, backend: str, watch: LoopWatch | None = None) -> dict[str, Any]:
    keywords = emulator.keywords(backend)
    if watch is not None:
        watch.watch(keywords["client"])
    return {"role": emulator.role(backend), "poll_policy": emulator.poll_policy(), **keywords}


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_async_app_opens_runs_and_stops_without_blocking_its_loop(
    emulator: Emulator, backend: str
) -> None:
    watch = LoopWatch()
    keywords = wired(emulator, backend, watch)

    async def app() -> tuple[SessionState, str | None, int]:
        ticker = asyncio.create_task(watch.ticker())
        await asyncio.sleep(0)
        async with aio.open_session(backend, **keywords) as session:
            ticks_at_ready = watch.ticks
            state = session.state
            if backend == "emr-serverless":
                output = (await session.endpoint()).url  # no statement API: the endpoint
            else:
                output = (await session.run("print(6 * 7)")).output
            session_id = session.id
        ticker.cancel()
        assert emulator.service(_service(backend)).status(session_id) in _ENDING[backend]
        return state, output, ticks_at_ready

    started = emulator.clock.monotonic()
    state, output, ticks = run(app())
    assert state is SessionState.READY
    assert output and ("42" in output or backend == "emr-serverless")
    # Every SDK call ran in a worker thread, none on the event loop, which kept ticking.
    assert watch.calls_on_loop == []
    assert {"StartSession", "CreateSession"} & set(watch.calls_elsewhere)
    assert ticks > 1
    assert emulator.clock.monotonic() > started  # the wait slept on virtual time


def _service(backend: str) -> str:
    return {"glue": "glue", "emr-serverless": "emr-serverless", "athena": "athena"}[backend]


_ENDING = {
    "glue": {"STOPPING", "STOPPED"},
    "emr-serverless": {"TERMINATING", "TERMINATED"},
    "athena": {"TERMINATING", "TERMINATED"},
}


def test_await_gives_an_owned_session_that_stops(emulator: Emulator) -> None:
    keywords = wired(emulator, "glue")

    async def app() -> tuple[bool, SessionState]:
        session = await aio.open_session("glue", **keywords)
        owned = session.owned
        final = await session.stop()
        return owned, final.state

    owned, state = run(app())
    assert owned
    assert state is SessionState.STOPPED
    assert emulator.alive_sessions() == {}


def test_wait_false_returns_at_once_and_waits_later(emulator: Emulator) -> None:
    keywords = wired(emulator, "glue")

    async def app() -> tuple[SessionState, SessionState, str]:
        async with aio.open_session("glue", wait=False, **keywords) as session:
            before = session.state
            info = await session.wait_until_ready()
            return before, info.state, session.id

    before, after, session_id = run(app())
    assert before is SessionState.STARTING
    assert after is SessionState.READY
    assert emulator.glue.status(session_id) == "STOPPING"  # the block's exit stopped it


def test_bad_input_raises_before_any_call(emulator: Emulator) -> None:
    keywords = wired(emulator, "glue")

    async def app() -> None:
        await aio.open_session("glue", idle_timeout="soon", **keywords)

    with pytest.raises(InvalidConfigError) as caught:
        run(app())
    assert caught.value.field == "idle_timeout"
    assert emulator.call_count("glue") == 0


def test_a_cancelled_wait_of_an_owned_session_requests_its_stop(emulator: Emulator) -> None:
    keywords = wired(emulator, "glue")
    seen: list[str] = []

    def cancel_on_first_poll(progress: Progress) -> None:
        seen.append(str(progress.session_id))
        task = asyncio.current_task()
        assert task is not None
        task.cancel()

    async def app() -> None:
        await aio.open_session("glue", on_progress=cancel_on_first_poll, **keywords)

    with pytest.raises(asyncio.CancelledError):
        run(app())
    assert emulator.glue.status(seen[0]) == "STOPPING"


def test_cancelling_a_task_inside_async_with_stops_the_owned_session(emulator: Emulator) -> None:
    keywords = wired(emulator, "emr-serverless")
    opened: list[str] = []

    async def worker(inside: asyncio.Event) -> None:
        async with aio.open_session("emr-serverless", **keywords) as session:
            opened.append(session.id)
            inside.set()
            await asyncio.Event().wait()  # until cancelled

    async def app() -> None:
        inside = asyncio.Event()
        task = asyncio.create_task(worker(inside))
        await inside.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(app())
    assert emulator.emr_serverless.status(opened[0]) in {"TERMINATING", "TERMINATED"}


def test_an_attached_session_is_left_running_on_exit_and_on_cancel(emulator: Emulator) -> None:
    keywords = wired(emulator, "glue")
    connection = {k: v for k, v in keywords.items() if k != "role"}

    async def app() -> str:
        owner = await aio.open_session("glue", **keywords)
        async with await aio.attach_session("glue", owner.id, **connection) as attached:
            assert not attached.owned
            assert attached.state is SessionState.READY
        return owner.id

    session_id = run(app())
    assert emulator.glue.status(session_id) == "READY"


def test_a_failed_start_raises_session_failed(emulator: Emulator) -> None:
    keywords = wired(emulator, "glue")

    def fail_it(progress: Progress) -> None:
        if progress.state is SessionState.STARTING:
            emulator.glue.fail(str(progress.session_id), "no capacity")

    async def app() -> None:
        await aio.open_session("glue", on_progress=fail_it, **keywords)

    with pytest.raises(SessionFailedError) as caught:
        run(app())
    assert caught.value.info is not None
    assert caught.value.info.state is SessionState.FAILED
    assert "no capacity" in str(caught.value)


def test_a_timed_out_start_raises_and_requests_the_stop(emulator: Emulator) -> None:
    keywords = wired(emulator, "glue")
    emulator.glue.timeline.provisioning = 600.0

    async def app() -> None:
        await aio.open_session("glue", timeout=30, **keywords)

    with pytest.raises(WaitTimeoutError) as caught:
        run(app())
    assert caught.value.info is not None
    assert emulator.glue.status(caught.value.info.id) == "STOPPING"


def test_run_reports_statement_progress_and_failure(emulator: Emulator) -> None:
    keywords = wired(emulator, "glue")
    reports: list[Progress] = []

    async def record(progress: Progress) -> None:  # a coroutine callback is awaited
        reports.append(progress)

    async def app() -> str:
        async with aio.open_session("glue", **keywords) as session:
            result = await session.run("print('hi')", on_progress=record)
            with pytest.raises(StatementFailedError) as caught:
                await session.run("1 / 0")
            assert caught.value.result.error_name == "ZeroDivisionError"
            return result.id

    statement_id = run(app())
    assert reports, "on_progress was never called"
    assert {p.statement_id for p in reports} == {statement_id}
    assert reports[-1].state is StatementState.SUCCEEDED


def test_list_sessions_is_an_async_iterator(emulator: Emulator) -> None:
    keywords = wired(emulator, "emr-serverless")
    connection = {k: v for k, v in keywords.items() if k != "role"}

    async def app() -> tuple[set[str], set[str]]:
        opened = [await aio.open_session("emr-serverless", wait=False, **keywords) for _ in "ab"]
        listed = {info.id async for info in aio.list_sessions("emr-serverless", **connection)}
        for session in opened:
            await session.stop(wait=False)
        return {s.id for s in opened}, listed

    opened, listed = run(app())
    assert opened <= listed


def test_wait_all_waits_for_every_session_on_the_loop(emulator: Emulator) -> None:
    keywords = wired(emulator, "athena")

    async def app() -> list[SessionState]:
        sessions = [await aio.open_session("athena", wait=False, **keywords) for _ in range(3)]
        try:
            infos = await aio.wait_all(sessions)
        finally:
            for session in sessions:
                await session.stop(wait=False)
        return [info.state for info in infos]

    assert run(app()) == [SessionState.READY] * 3


def test_a_policy_async_sleep_is_what_waits_await(emulator: Emulator) -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        emulator.clock.advance(seconds)
        await asyncio.sleep(0)

    base = emulator.poll_policy()
    policy: PollPolicy = attrs.evolve(base, async_sleep=sleep, sleep=_forbidden)
    keywords = {**wired(emulator, "glue"), "poll_policy": policy}

    async def app() -> SessionState:
        async with aio.open_session("glue", **keywords) as session:
            return session.state

    assert run(app()) is SessionState.READY
    assert slept and sum(slept) >= emulator.glue.timeline.provisioning - base.cap


def _forbidden(seconds: float) -> None:
    raise AssertionError("the async API slept with the blocking sleep")


def test_racing_ensure_session_tasks_end_with_one_session(emulator: Emulator) -> None:
    keywords = wired(emulator, "emr-serverless")
    # Each call takes 10 ms of virtual time, as a round trip takes real time.
    keywords["client"].meta.events.register(
        "before-call.*.*", lambda **kwargs: emulator.clock.advance(0.01)
    )

    async def app() -> list[aio.AsyncSession]:
        return list(
            await asyncio.gather(
                *(aio.ensure_session("emr-serverless", "shared-etl", **keywords) for _ in "ab")
            )
        )

    first, second = run(app())
    assert first.id == second.id
    assert sorted([first.owned, second.owned]) == [False, True]
    service = emulator.emr_serverless
    running = [i for i in service.alive() if service.status(i) != "TERMINATING"]
    assert running == [first.id]


def test_aio_is_an_attribute_of_the_package() -> None:
    assert sessionkit.aio is aio
    assert callable(sessionkit.aio.open_session)


def test_cancelling_during_the_start_call_stops_the_session_once_it_exists(
    emulator: Emulator,
) -> None:
    keywords = wired(emulator, "glue")
    entered, release = threading.Event(), threading.Event()
    created: list[str] = []

    def slow_create(params: Any, **kwargs: Any) -> None:
        created.append(params["Id"])
        entered.set()
        release.wait(timeout=30)

    keywords["client"].meta.events.register(
        "before-parameter-build.glue.CreateSession", slow_create
    )

    async def app() -> None:
        task = asyncio.ensure_future(_open(keywords))
        while not entered.is_set():
            await asyncio.sleep(0.001)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(app())  # the loop is gone before the start returns
    release.set()
    for _ in range(3000):  # the start, then its clean-up, finish in the worker thread
        if emulator.call_count("glue", "StopSession"):
            break
        threading.Event().wait(0.01)
    assert emulator.glue.status(created[0]) == "STOPPING"


async def _open(keywords: dict[str, Any]) -> aio.AsyncSession:
    return await aio.open_session("glue", **keywords)


def test_refresh_usage_and_stop_with_delete(emulator: Emulator) -> None:
    keywords = wired(emulator, "glue")

    async def app() -> tuple[SessionState, float | None, str]:
        session = await aio.open_session("glue", **keywords)
        await session.run("print(1)")
        emulator.clock.advance(60)
        info = await session.refresh()
        usage = await session.usage()
        await session.stop(delete=True)
        return info.state, usage.dpu_seconds, session.id

    state, dpu_seconds, session_id = run(app())
    assert state is SessionState.READY
    assert dpu_seconds is not None and dpu_seconds > 0
    assert session_id not in emulator.glue.alive()
    assert emulator.call_count("glue", "DeleteSession") == 1


def test_list_sessions_filters_by_state(emulator: Emulator) -> None:
    keywords = wired(emulator, "athena")
    connection = {k: v for k, v in keywords.items() if k != "role"}

    async def app() -> tuple[str, list[str], list[str]]:
        session = await aio.open_session("athena", **keywords)
        ready = [i.id async for i in aio.list_sessions("athena", states="READY", **connection)]
        await session.stop()
        after = [i.id async for i in aio.list_sessions("athena", states="READY", **connection)]
        return session.id, ready, after

    session_id, ready, after = run(app())
    assert ready == [session_id]
    assert after == []

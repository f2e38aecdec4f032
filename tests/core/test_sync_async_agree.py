"""The synchronous and the async API make the same decisions, because they share them.

Each test runs one scenario through ``sessionkit`` and through ``sessionkit.aio`` on fresh
memory services and compares what the service saw and what the caller got.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest

import sessionkit
import sessionkit.aio as aio
from sessionkit import SessionState, StatementState
from sessionkit.errors import (
    FleetFailedError,
    FleetTimeoutError,
    InvalidConfigError,
    ServiceError,
    SessionFailedError,
    StatementFailedError,
    WaitTimeoutError,
)
from sessionkit.testing import memory
from sessionkit.testing.memory import MemoryService


def fresh() -> tuple[MemoryService, dict[str, Any]]:
    memory.register()
    service = MemoryService()
    return service, {
        "service": service,
        "namespace": "default",
        "poll_policy": service.poll_policy(),
    }


def operations(service: MemoryService) -> list[tuple[str, str]]:
    return [(operation, outcome) for operation, _, outcome in service.calls]


def both(
    sync: Callable[[MemoryService, dict[str, Any]], Any],
    asynchronous: Callable[[MemoryService, dict[str, Any]], Awaitable[Any]],
) -> tuple[tuple[Any, list[tuple[str, str]]], tuple[Any, list[tuple[str, str]]]]:
    """Run a scenario both ways; return (outcome, service calls) of each."""
    service, where = fresh()
    sync_outcome = sync(service, where)
    async_service, async_where = fresh()
    async_outcome = asyncio.run(asynchronous(async_service, async_where))  # type: ignore[arg-type]
    return (sync_outcome, operations(service)), (async_outcome, operations(async_service))


def ended_elsewhere(service: MemoryService, where: dict[str, Any], session_id: str) -> None:
    """Another process stops the session; the caller's object still thinks it is READY."""
    other = sessionkit.attach_session("memory", session_id, **where)
    other.stop(wait=True)


def test_a_refused_stop_of_a_session_that_ended_elsewhere_is_a_success_both_ways() -> None:
    def sync(service: MemoryService, where: dict[str, Any]) -> Any:
        session = sessionkit.open_session("memory", **where)
        ended_elsewhere(service, where, session.id)
        before = len(service.calls)
        info = session.stop(wait=False)
        return info.state, session.stop_requested, operations(service)[before:]

    async def asynchronous(service: MemoryService, where: dict[str, Any]) -> Any:
        session = await aio.open_session("memory", **where)
        ended_elsewhere(service, where, session.id)
        before = len(service.calls)
        info = await session.stop(wait=False)
        return info.state, session.sync.stop_requested, operations(service)[before:]

    (sync_outcome, sync_calls), (async_outcome, async_calls) = both(sync, asynchronous)
    assert sync_outcome == async_outcome
    assert sync_calls == async_calls
    state, requested, tail = sync_outcome
    assert state is SessionState.STOPPED
    assert requested
    # The stop was refused (not retried), then one describe showed the session had ended.
    assert tail == [("stop", "conflict"), ("get", "ok")]


def refusing(session: sessionkit.Session) -> None:
    def refuse(session_id: str) -> None:
        raise ServiceError("the service says no", code="AccessDenied", retryable=False)

    session.implementation._stop = refuse  # type: ignore[method-assign]


def test_a_refused_stop_of_a_live_session_raises_both_ways() -> None:
    def sync(service: MemoryService, where: dict[str, Any]) -> Any:
        session = sessionkit.open_session("memory", **where)
        refusing(session)
        with pytest.raises(ServiceError) as caught:
            session.stop(wait=False)
        return caught.value.code, session.stop_requested, session.state

    async def asynchronous(service: MemoryService, where: dict[str, Any]) -> Any:
        session = await aio.open_session("memory", **where)
        refusing(session.sync)
        with pytest.raises(ServiceError) as caught:
            await session.stop(wait=False)
        return caught.value.code, session.sync.stop_requested, session.state

    (sync_outcome, sync_calls), (async_outcome, async_calls) = both(sync, asynchronous)
    assert sync_outcome == async_outcome == ("AccessDenied", False, SessionState.READY)
    assert sync_calls == async_calls


def test_a_failed_open_stops_the_session_both_ways() -> None:
    def sync(service: MemoryService, where: dict[str, Any]) -> Any:
        service.script_next("degraded", after=3.0)
        with pytest.raises(SessionFailedError) as caught:
            sessionkit.open_session("memory", **where)
        return caught.value.info.state

    async def asynchronous(service: MemoryService, where: dict[str, Any]) -> Any:
        service.script_next("degraded", after=3.0)
        with pytest.raises(SessionFailedError) as caught:
            await aio.open_session("memory", **where)
        return caught.value.info.state

    (sync_outcome, sync_calls), (async_outcome, async_calls) = both(sync, asynchronous)
    assert sync_outcome == async_outcome == SessionState.DEGRADED
    assert sync_calls == async_calls
    assert ("stop", "ok") in sync_calls


def test_the_open_timeout_bounds_the_whole_open_both_ways() -> None:
    def sync(service: MemoryService, where: dict[str, Any]) -> Any:
        with pytest.raises(WaitTimeoutError):
            sessionkit.open_session("memory", timeout=timedelta(seconds=4), **where)
        return service.clock.monotonic(), service.call_count("stop")

    async def asynchronous(service: MemoryService, where: dict[str, Any]) -> Any:
        with pytest.raises(WaitTimeoutError):
            await aio.open_session("memory", timeout=timedelta(seconds=4), **where)
        return service.clock.monotonic(), service.call_count("stop")

    (sync_outcome, _), (async_outcome, _) = both(sync, asynchronous)
    assert sync_outcome == async_outcome
    elapsed, stops = sync_outcome
    assert elapsed == pytest.approx(4.0)
    assert stops == 1


def test_run_usage_and_endpoint_agree() -> None:
    def sync(service: MemoryService, where: dict[str, Any]) -> Any:
        with sessionkit.open_session("memory", spark_connect=True, **where) as session:
            result = session.run("1 + 1")
            with pytest.raises(StatementFailedError) as failed:
                session.run("1 / 0")
            usage = session.usage
            again = session.usage  # looked up once per look
            first = session.endpoint()
            cached = session.endpoint()
        return (
            result.state,
            failed.value.result.state,
            usage == again,
            first is cached,
        )

    async def asynchronous(service: MemoryService, where: dict[str, Any]) -> Any:
        async with aio.open_session("memory", spark_connect=True, **where) as session:
            result = await session.run("1 + 1")
            with pytest.raises(StatementFailedError) as failed:
                await session.run("1 / 0")
            usage = await session.usage()
            again = await session.usage()
            first = await session.endpoint()
            cached = await session.endpoint()
            # The async face shares the sync session's memory: no new call either way.
            assert session.sync.endpoint() is first
        return (
            result.state,
            failed.value.result.state,
            usage == again,
            first is cached,
        )

    (sync_outcome, sync_calls), (async_outcome, async_calls) = both(sync, asynchronous)
    assert (
        sync_outcome
        == async_outcome
        == (StatementState.SUCCEEDED, StatementState.FAILED, True, True)
    )
    assert sync_calls == async_calls


def test_a_statement_past_its_timeout_is_cancelled_both_ways() -> None:
    def sync(service: MemoryService, where: dict[str, Any]) -> Any:
        service.statement_seconds = 60.0
        with (
            sessionkit.open_session("memory", **where) as session,
            pytest.raises(WaitTimeoutError),
        ):
            session.run("1 + 1", timeout=1)
        return service.call_count("cancel")

    async def asynchronous(service: MemoryService, where: dict[str, Any]) -> Any:
        service.statement_seconds = 60.0
        async with aio.open_session("memory", **where) as session:
            with pytest.raises(WaitTimeoutError):
                await session.run("1 + 1", timeout=1)
        return service.call_count("cancel")

    (sync_outcome, sync_calls), (async_outcome, async_calls) = both(sync, asynchronous)
    assert sync_outcome == async_outcome == 1
    assert sync_calls == async_calls


@pytest.mark.parametrize(
    ("keywords", "field"),
    [({"wait": "yes"}, "wait"), ({"delete": 1}, "delete")],
)
def test_stop_flags_are_checked_both_ways(keywords: dict[str, Any], field: str) -> None:
    _, where = fresh()
    session = sessionkit.open_session("memory", **where)
    with pytest.raises(InvalidConfigError) as caught:
        session.stop(**keywords)
    assert caught.value.field == field

    async def asynchronous() -> str | None:
        async_session = aio.AsyncSession(session)
        with pytest.raises(InvalidConfigError) as async_caught:
            await async_session.stop(**keywords)
        return async_caught.value.field

    assert asyncio.run(asynchronous()) == field
    assert not session.stop_requested


def test_async_list_sessions_pages_and_filters_like_the_sync_one() -> None:
    _, where = fresh()
    for _ in range(5):
        sessionkit.open_session("memory", wait=False, **where)

    async def listed() -> list[str]:
        return [info.id async for info in aio.list_sessions("memory", **where)]

    assert asyncio.run(listed()) == [
        info.id for info in sessionkit.list_sessions("memory", **where)
    ]
    with pytest.raises(InvalidConfigError):
        asyncio.run(listed_with_bad_states(where))


async def listed_with_bad_states(where: dict[str, Any]) -> list[str]:
    return [info.id async for info in aio.list_sessions("memory", states=["nope"], **where)]


@pytest.mark.parametrize(
    ("scripted", "timeout", "error"),
    [(True, None, FleetFailedError), (False, 3.0, FleetTimeoutError)],
    ids=["a-failure", "a-timeout"],
)
def test_wait_all_gives_the_same_verdict_both_ways(
    scripted: bool, timeout: float | None, error: type[Exception]
) -> None:
    def open_two(service: MemoryService, where: dict[str, Any]) -> list[sessionkit.Session]:
        if scripted:
            service.script_next("failed", after=3.0)
        return [sessionkit.open_session("memory", wait=False, **where) for _ in range(2)]

    def verdict(caught: pytest.ExceptionInfo[Exception]) -> Any:
        outcomes = caught.value.outcomes  # type: ignore[attr-defined]
        statuses = sorted(outcome.status for outcome in outcomes.values())
        return type(caught.value), statuses, str(caught.value)

    def sync(service: MemoryService, where: dict[str, Any]) -> Any:
        sessions = open_two(service, where)
        with pytest.raises(error) as caught:
            sessionkit.wait_all(sessions, timeout=timeout)
        return verdict(caught)

    async def asynchronous(service: MemoryService, where: dict[str, Any]) -> Any:
        sessions = [aio.AsyncSession(session) for session in open_two(service, where)]
        with pytest.raises(error) as caught:
            await aio.wait_all(sessions, timeout=timeout)
        return verdict(caught)

    (sync_outcome, _), (async_outcome, _) = both(sync, asynchronous)
    assert sync_outcome == async_outcome
    assert sync_outcome[0] is error

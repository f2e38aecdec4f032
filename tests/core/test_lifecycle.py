"""Session lifecycle on the memory backend: open, wait, run, stop, delete, attach, list."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

import sessionkit
from sessionkit import SessionState, StatementState
from sessionkit.errors import (
    InvalidConfigError,
    ServiceError,
    SessionFailedError,
    StatementFailedError,
    WaitTimeoutError,
)
from sessionkit.testing.memory import MemoryService


def test_open_waits_until_ready_through_pending_and_starting(
    service: MemoryService, where: dict[str, Any]
) -> None:
    with sessionkit.open_session("memory", **where) as session:
        assert session.state is SessionState.READY
        assert session.owned
        # The start takes 10 virtual seconds; the wait did not return before it.
        assert service.clock.monotonic() >= service.start_seconds
    assert service.alive() == [session.id]  # the exit requested the stop and returned
    service.clock.advance(service.stop_seconds)
    assert service.alive() == []


def test_leaving_the_block_on_an_exception_stops_the_session(
    service: MemoryService, where: dict[str, Any]
) -> None:
    with pytest.raises(KeyError), sessionkit.open_session("memory", **where) as session:
        raise KeyError("boom")
    assert session.refresh().state is SessionState.STOPPING


def test_ctrl_c_during_the_wait_stops_the_started_session(
    service: MemoryService, where: dict[str, Any]
) -> None:
    calls = 0

    def interrupting_sleep(seconds: float) -> None:
        nonlocal calls
        calls += 1
        raise KeyboardInterrupt

    policy = service.poll_policy().on(
        service.clock.monotonic, interrupting_sleep, service.clock.now
    )
    with pytest.raises(KeyboardInterrupt):
        sessionkit.open_session("memory", **{**where, "poll_policy": policy})
    assert calls == 1
    assert service.call_count("stop") == 1


def test_wait_times_out_at_the_deadline_not_before(
    service: MemoryService, where: dict[str, Any]
) -> None:
    service.start_seconds = 3600
    session = sessionkit.open_session("memory", wait=False, **where)
    began = service.clock.monotonic()
    with pytest.raises(WaitTimeoutError) as caught:
        session.wait_until_ready(timeout=timedelta(seconds=45))
    assert isinstance(caught.value, TimeoutError)
    assert caught.value.info is not None and caught.value.info.state is SessionState.STARTING
    assert service.clock.monotonic() - began == pytest.approx(45)
    # One last poll was made at the deadline.
    last_get = [at for name, at, _ in service.calls if name == "get"][-1]
    assert last_get == pytest.approx(began + 45)


def test_open_that_times_out_stops_the_session(
    service: MemoryService, where: dict[str, Any]
) -> None:
    service.start_seconds = 3600
    with pytest.raises(WaitTimeoutError):
        sessionkit.open_session("memory", timeout=30, **where)
    assert service.call_count("stop") == 1


@pytest.mark.parametrize(
    ("native", "state"),
    [
        ("failed", SessionState.FAILED),
        ("degraded", SessionState.DEGRADED),
        ("timed_out", SessionState.TIMED_OUT),
        ("stopped", SessionState.STOPPED),
    ],
)
def test_wait_fails_fast_with_the_reason(
    service: MemoryService, where: dict[str, Any], native: str, state: SessionState
) -> None:
    service.script_next(native, after=2.0, reason=f"scripted {native}")
    with pytest.raises(SessionFailedError) as caught:
        sessionkit.open_session("memory", **where)
    assert caught.value.info.state is state
    assert caught.value.info.reason == f"scripted {native}"
    # Fail fast: the wait ended soon after the session failed, long before the 20-minute default.
    assert service.clock.monotonic() < 30


def test_throttling_while_waiting_is_retried(service: MemoryService, where: dict[str, Any]) -> None:
    service.inject("throttle", operations=["get"], count=4)
    with sessionkit.open_session("memory", **where) as session:
        assert session.state is SessionState.READY
    assert [outcome for name, _, outcome in service.calls if name == "get"][:4] == ["throttled"] * 4


def test_a_start_whose_answer_was_lost_creates_one_session(
    service: MemoryService, where: dict[str, Any]
) -> None:
    service.inject("lost", operations=["create"], count=1)
    with sessionkit.open_session("memory", **where) as session:
        assert session.state is SessionState.READY
    assert service.created() == 1
    assert service.call_count("create") == 2


def test_a_refused_start_raises_a_translated_service_error(
    service: MemoryService, where: dict[str, Any]
) -> None:
    with pytest.raises(ServiceError) as caught:
        sessionkit.open_session("memory", **{**where, "namespace": "nowhere"})
    assert caught.value.code == "not_found"
    assert not caught.value.retryable
    assert type(caught.value.__cause__).__name__ == "MemoryServiceError"
    assert service.created() == 0


def test_run_keeps_the_namespace_between_statements(where: dict[str, Any]) -> None:
    with sessionkit.open_session("memory", **where) as session:
        assert session.run("x = 6 * 7").state is StatementState.SUCCEEDED
        assert session.run("print(x)").output == "42"
        assert session.run("x + 1").output == "43"


def test_a_failing_statement_raises_with_its_result(where: dict[str, Any]) -> None:
    with sessionkit.open_session("memory", **where) as session:
        with pytest.raises(StatementFailedError) as caught:
            session.run("1 / 0")
        assert caught.value.result.state is StatementState.FAILED
        assert caught.value.result.error_name == "ZeroDivisionError"


def test_a_statement_past_its_timeout_is_cancelled(
    service: MemoryService, where: dict[str, Any]
) -> None:
    service.statement_seconds = 600
    with sessionkit.open_session("memory", **where) as session:
        with pytest.raises(WaitTimeoutError):
            session.run("x = 1", timeout=5)
        assert service.call_count("cancel") == 1
        assert session.refresh().state is SessionState.READY


def test_stop_waits_then_delete_removes_the_record(
    service: MemoryService, where: dict[str, Any]
) -> None:
    session = sessionkit.open_session("memory", **where)
    info = session.stop(delete=True)
    assert info.state is SessionState.STOPPED
    with pytest.raises(ServiceError) as caught:
        sessionkit.attach_session("memory", session.id, **where)
    assert caught.value.code == "not_found"


def test_attached_sessions_are_not_owned(service: MemoryService, where: dict[str, Any]) -> None:
    session = sessionkit.open_session("memory", **where)
    with sessionkit.attach_session("memory", session.id, **where) as attached:
        assert not attached.owned
    assert session.refresh().state is SessionState.READY
    with sessionkit.attach_session("memory", session.id, stop_on_exit=True, **where):
        pass
    assert session.refresh().state is SessionState.STOPPING


def test_list_streams_every_page_and_filters_on_the_service(
    service: MemoryService, where: dict[str, Any]
) -> None:
    opened = [sessionkit.open_session("memory", wait=False, **where) for _ in range(5)]
    opened[0].stop(wait=True)
    listed = list(sessionkit.list_sessions("memory", **where))
    assert {s.id for s in listed} == {s.id for s in opened}
    assert service.call_count("list") == 3  # five sessions, two per page
    ready = {s.id for s in sessionkit.list_sessions("memory", states="STOPPED", **where)}
    assert ready == {opened[0].id}


def test_endpoint_is_cached_until_it_nearly_expires(
    service: MemoryService, where: dict[str, Any]
) -> None:
    with sessionkit.open_session("memory", spark_connect=True, **where) as session:
        first = session.endpoint()
        assert session.endpoint() is first
        assert first.token is not None and first.token not in repr(first)
        service.clock.advance(59 * 60 + 1)
        assert session.endpoint().token != first.token
        assert service.call_count("endpoint") == 2


def test_usage_free_field_checks_happen_before_any_call(
    service: MemoryService, where: dict[str, Any]
) -> None:
    with pytest.raises(InvalidConfigError) as caught:
        sessionkit.open_session("memory", workers={"count": 2, "type": "x"}, **where)
    assert caught.value.field == "workers"
    assert "memory" in str(caught.value)
    with pytest.raises(InvalidConfigError) as caught:
        sessionkit.open_session("memory", name="n" * 65, **where)
    assert caught.value.field == "name"
    with pytest.raises(InvalidConfigError) as caught:
        sessionkit.open_session("memory", idel_timeout=timedelta(minutes=5), **where)
    assert caught.value.field == "idel_timeout"
    assert "namespace" in str(caught.value) and "idle_timeout" in str(caught.value)
    assert service.calls == []


def test_a_missing_location_is_named(service: MemoryService) -> None:
    with pytest.raises(InvalidConfigError) as caught:
        sessionkit.open_session("memory", service=service)
    assert caught.value.field == "namespace"
    assert service.calls == []


def test_idle_sessions_stop_by_themselves(service: MemoryService, where: dict[str, Any]) -> None:
    session = sessionkit.open_session("memory", idle_timeout=timedelta(minutes=5), **where)
    service.clock.advance(5 * 60)
    info = session.refresh()
    assert info.state is SessionState.STOPPED
    assert info.reason == "idle timeout"
    assert info.idle_timeout == timedelta(minutes=5)

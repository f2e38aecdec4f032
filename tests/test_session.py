"""Session lifecycle rules (DESIGN.md sections 5 and 7), on the emulator's virtual clock."""

from __future__ import annotations

import logging
from typing import Any

import pytest

import sessionkit
from sessionkit import SessionFailedError, SessionState, WaitTimeoutError
from sessionkit.testing import Emulator
from tests.conftest import ROLE


def _open(emulator: Emulator, policy: Any, **extra: Any) -> sessionkit.Session:
    return sessionkit.open_session(
        "glue", client=emulator.client("glue"), poll_policy=policy, role=ROLE, **extra
    )


def test_first_poll_follows_the_backends_ready_prior(emulator: Emulator, policy: Any) -> None:
    from sessionkit.backends.aws.glue import GlueBackend

    _open(emulator, policy)
    create, first_get = emulator.calls[0], emulator.calls[1]
    assert create.operation == "CreateSession" and first_get.operation == "GetSession"
    # No poll where readiness is improbable: the first one comes at the prior's first planned
    # time, brought forward by at most the jitter.
    planned = GlueBackend.ready_prior.schedule(policy.cap).times[0]
    assert planned * (1 - policy.jitter) <= first_get.at - create.at <= planned


def test_ready_is_detected_promptly(emulator: Emulator, policy: Any) -> None:
    session = _open(emulator, policy)
    lag = emulator.clock.monotonic() - emulator.glue.timeline.provisioning
    assert session.state is SessionState.READY
    assert 0 <= lag <= policy.cap


def test_timeout_is_raised_after_a_final_poll_at_the_deadline(
    emulator: Emulator, policy: Any
) -> None:
    emulator.glue.timeline.provisioning = 1000
    with pytest.raises(WaitTimeoutError) as caught:
        _open(emulator, policy, timeout=30)
    gets = [c for c in emulator.calls if c.operation == "GetSession"]
    start = emulator.calls[0].at
    assert gets[-1].at == pytest.approx(start + 30, abs=1e-6)
    assert all(c.at <= start + 30 + 1e-6 for c in gets)
    assert caught.value.info is not None
    assert caught.value.info.state is SessionState.STARTING
    # The session the caller never held was stopped before the error was raised.
    assert emulator.calls[-1].operation == "StopSession"


def test_failed_start_raises_with_reason_and_info(emulator: Emulator, policy: Any) -> None:
    emulator.glue.script_next("FAILED", after=3, reason="Insufficient capacity")
    with pytest.raises(SessionFailedError) as caught:
        _open(emulator, policy)
    assert caught.value.info.state is SessionState.FAILED
    assert caught.value.reason == "Insufficient capacity"
    assert "Insufficient capacity" in str(caught.value)
    # Fail fast: no polling after the failure was seen.
    assert emulator.calls[-1].operation == "GetSession"


def test_ctrl_c_during_the_wait_stops_the_session(emulator: Emulator, policy: Any) -> None:
    sleeps = []

    def interrupting_sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 3:
            raise KeyboardInterrupt
        emulator.clock.sleep(seconds)

    emulator.glue.timeline.provisioning = 120.0  # still starting at the third sleep
    with pytest.raises(KeyboardInterrupt):
        _open(emulator, policy.on(policy.clock, interrupting_sleep))
    assert emulator.calls[-1].operation == "StopSession"
    emulator.clock.advance(60)
    assert emulator.glue.alive() == []


def test_throttling_and_5xx_during_the_wait_are_polled_through(
    emulator: Emulator, policy: Any
) -> None:
    emulator.inject("throttle", service="glue", operations="GetSession", rate=0.5)
    emulator.inject("server_error", service="glue", operations="GetSession", count=2)
    emulator.inject("connection_error", service="glue", operations="GetSession", count=1)
    session = _open(emulator, policy)
    assert session.state is SessionState.READY
    outcomes = {c.outcome for c in emulator.calls if c.operation == "GetSession"}
    assert {"ThrottlingException", "InternalServiceException", "connection_error"} <= outcomes


def test_throttled_start_is_retried_with_the_same_id(emulator: Emulator, policy: Any) -> None:
    emulator.inject("throttle", service="glue", operations="CreateSession", count=2)
    session = _open(emulator, policy)
    creates = [c for c in emulator.calls if c.operation == "CreateSession"]
    assert len(creates) == 3
    assert {c.params["Id"] for c in creates} == {session.id}
    assert emulator.created_sessions() == {"glue": 1}


def test_with_block_requests_the_stop_without_waiting(emulator: Emulator, policy: Any) -> None:
    with _open(emulator, policy) as session:
        pass
    assert emulator.calls[-1].operation == "StopSession"
    assert emulator.glue.status(session.id) == "STOPPING"


def test_with_block_stop_is_retried_through_throttling(emulator: Emulator, policy: Any) -> None:
    emulator.inject("throttle", service="glue", operations="StopSession", count=4)
    with pytest.raises(ValueError, match="job failed"), _open(emulator, policy) as session:
        raise ValueError("job failed")
    assert emulator.glue.status(session.id) == "STOPPING"
    assert emulator.call_count("glue", "StopSession") == 5


def test_stop_is_idempotent_and_wait_is_bounded(emulator: Emulator, policy: Any) -> None:
    session = _open(emulator, policy)
    assert session.stop().state is SessionState.STOPPED
    calls = emulator.call_count("glue", "StopSession")
    assert session.stop().state is SessionState.STOPPED
    assert emulator.call_count("glue", "StopSession") == calls
    emulator.glue.timeline.stopping = 10_000
    other = _open(emulator, policy)
    with pytest.raises(WaitTimeoutError):
        other.stop(timeout=60)


def test_stop_of_a_session_already_stopping_elsewhere(emulator: Emulator, policy: Any) -> None:
    session = _open(emulator, policy)
    emulator.client("glue").stop_session(Id=session.id)
    info = session.stop()
    assert info.state is SessionState.STOPPED


def test_open_without_wait(emulator: Emulator, policy: Any) -> None:
    session = _open(emulator, policy, wait=False)
    assert session.state is SessionState.STARTING
    assert emulator.call_count("glue", "GetSession") == 0
    session.wait_until_ready(timeout=60)
    assert session.state is SessionState.READY


def test_wait_until_ready_on_a_stopped_session_fails_fast(emulator: Emulator, policy: Any) -> None:
    session = _open(emulator, policy)
    session.stop()
    with pytest.raises(SessionFailedError) as caught:
        session.wait_until_ready()
    assert caught.value.info.state is SessionState.STOPPED


def test_wait_until_ready_polls_through_unknown(
    emulator: Emulator, policy: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = _open(emulator, policy, wait=False)
    from sessionkit.backends.aws import glue

    table = dict(glue.STATE_MAP)
    del table["PROVISIONING"]
    monkeypatch.setattr(glue, "STATE_MAP", table)
    assert session.wait_until_ready().state is SessionState.READY


def test_attach_describes_once_and_is_not_owned(emulator: Emulator, policy: Any) -> None:
    opened = _open(emulator, policy)
    before = emulator.call_count()
    attached = sessionkit.attach_session(
        "glue", opened.id, client=emulator.client("glue"), poll_policy=policy
    )
    assert emulator.call_count() == before + 1
    assert attached.info.state is SessionState.READY and not attached.owned
    with attached:
        pass
    assert emulator.glue.status(opened.id) == "READY"


def test_list_sessions_filters_and_pages(emulator: Emulator, policy: Any) -> None:
    connection = {"client": emulator.client("glue"), "poll_policy": policy}
    ready = [_open(emulator, policy) for _ in range(3)]
    stopped = _open(emulator, policy)
    stopped.stop()
    from sessionkit.backends.aws import glue

    monkey_page = glue.GlueBackend._list_page

    def small_pages(self: Any, states: Any, token: Any) -> Any:
        page = self._call("list_sessions", MaxResults=2, **({"NextToken": token} if token else {}))
        return [glue.session_info(r) for r in page["Sessions"]], page.get("NextToken")

    glue.GlueBackend._list_page = small_pages  # type: ignore[method-assign]
    try:
        listed = list(sessionkit.list_sessions("glue", **connection))
        only_ready = list(sessionkit.list_sessions("glue", states=SessionState.READY, **connection))
        by_name = list(sessionkit.list_sessions("glue", states=["STOPPED"], **connection))
    finally:
        glue.GlueBackend._list_page = monkey_page  # type: ignore[method-assign]
    assert {i.id for i in listed} == {s.id for s in [*ready, stopped]}
    assert {i.id for i in only_ready} == {s.id for s in ready}
    assert [i.id for i in by_name] == [stopped.id]
    assert emulator.call_count("glue", "ListSessions") == 6
    with pytest.raises(sessionkit.InvalidConfigError) as caught:
        list(sessionkit.list_sessions("glue", states=["RUNNING"], **connection))
    assert caught.value.field == "states"


def test_repr_and_logs_carry_no_secrets(
    emulator: Emulator, policy: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        session = _open(
            emulator,
            policy,
            spark_connect=True,
            spark_conf={"spark.hadoop.fs.s3a.secret.key": "SEKRET1"},
        )
        endpoint = session.endpoint()
        session.stop()
    token = endpoint.token
    assert token
    assert token not in repr(endpoint) and token not in str(endpoint)
    assert token not in repr(session)
    for record in caplog.records:
        message = record.getMessage()
        assert token not in message, record.name
        assert "SEKRET1" not in message, record.name
    assert any(r.name.startswith("sessionkit") for r in caplog.records)


def test_endpoint_is_cached_and_refreshed_before_expiry(emulator: Emulator, policy: Any) -> None:
    session = _open(emulator, policy, spark_connect=True)
    first = session.endpoint()
    assert session.endpoint() is first
    emulator.clock.advance(emulator.glue.timeline.token_ttl - 120)
    assert session.endpoint() is first
    emulator.clock.advance(70)
    second = session.endpoint()
    assert second is not first and second.token != first.token
    assert emulator.call_count("glue", "GetSessionEndpoint") == 2
    session.stop()


def test_sessions_are_typed_at_the_top_level() -> None:
    assert sessionkit.Session.__module__ == "sessionkit.session"


def test_ctrl_c_between_start_attempts_stops_the_glue_session(
    emulator: Emulator, policy: Any
) -> None:
    # The first CreateSession lands but its answer is lost; Ctrl-C comes during the retry pause.
    emulator.inject("read_timeout", service="glue", operations="CreateSession", count=1)

    def interrupted(seconds: float) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _open(emulator, policy.on(policy.clock, interrupted), name="interrupted")
    assert emulator.calls[-1].operation == "StopSession"
    assert emulator.glue.status("interrupted") == "STOPPING"


def test_a_name_taken_by_someone_else_is_never_stopped(emulator: Emulator, policy: Any) -> None:
    theirs = _open(emulator, policy, name="shared-name")
    with pytest.raises(sessionkit.ServiceError):
        _open(emulator, policy, name="shared-name")
    assert emulator.glue.status(theirs.id) == "READY"


def test_a_livy_glue_session_has_no_endpoint(emulator: Emulator, policy: Any) -> None:
    session = _open(emulator, policy)
    with pytest.raises(sessionkit.NotSupportedError, match="spark_connect=True"):
        session.endpoint()
    # A refusal is not retried.
    assert emulator.call_count("glue", "GetSessionEndpoint") == 1


@pytest.mark.parametrize(
    ("keywords", "field"),
    [
        ({"timeout": "ten minutes"}, "timeout"),
        ({"timeout": -5}, "timeout"),
        ({"poll_policy": 5}, "poll_policy"),
    ],
)
def test_bad_wait_arguments_are_rejected_before_any_call(
    emulator: Emulator, keywords: dict[str, Any], field: str
) -> None:
    with pytest.raises(sessionkit.InvalidConfigError) as caught:
        sessionkit.open_session("glue", client=emulator.client("glue"), role=ROLE, **keywords)
    assert caught.value.field == field
    assert emulator.call_count() == 0


def test_cleanup_of_an_interrupted_start_is_retried_through_throttling(
    emulator: Emulator, policy: Any
) -> None:
    emulator.inject("read_timeout", service="glue", operations="CreateSession", count=1)
    emulator.inject("throttle", service="glue", operations="StopSession", count=2)
    interrupted = []

    def sleep(seconds: float) -> None:
        # Ctrl-C lands in the pause before the second CreateSession, and only there.
        if not interrupted:
            interrupted.append(seconds)
            raise KeyboardInterrupt
        emulator.clock.sleep(seconds)

    with pytest.raises(KeyboardInterrupt):
        _open(emulator, policy.on(policy.clock, sleep), name="interrupted-throttled")
    stops = [c.outcome for c in emulator.calls if c.operation == "StopSession"]
    assert stops == ["ThrottlingException", "ThrottlingException", "ok"]
    assert emulator.glue.status("interrupted-throttled") == "STOPPING"

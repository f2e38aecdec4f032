"""The livy backend: request translation, rejections, states, errors, statements, adoption."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Any

import httpx
import pytest

import sessionkit
from sessionkit.backends.livy import auth as livy_auth
from sessionkit.backends.livy.backend import (
    STATE_MAP,
    LivyBackend,
    build_create_request,
    statement_result,
)
from sessionkit.errors import (
    InvalidConfigError,
    ServiceError,
    SessionFailedError,
    StatementFailedError,
    ThrottledError,
)
from sessionkit.models import SessionConfig, SessionInfo, Workers
from sessionkit.states import SessionState, StatementState
from sessionkit.testing import Emulator
from sessionkit.testing.livy.service import LivyService
from sessionkit.testing.livy.wiring import URL

#: Livy's session states: ``SessionState.scala`` of apache/incubator-livy (the REST docs list
#: all but ``recovering`` and ``running``).
LIVY_SESSION_STATES = (
    "not_started",
    "starting",
    "recovering",
    "idle",
    "running",
    "busy",
    "shutting_down",
    "error",
    "dead",
    "killed",
    "success",
)


@pytest.fixture
def emulator() -> Emulator:
    return Emulator()


@pytest.fixture
def livy(emulator: Emulator) -> LivyService:
    service: LivyService = emulator.service("livy")  # type: ignore[assignment]
    return service


def _keywords(emulator: Emulator) -> dict[str, Any]:
    return {**emulator.keywords("livy"), "poll_policy": emulator.poll_policy()}


def _bodies(emulator: Emulator, operation: str = "CreateSession") -> list[Any]:
    return [c.params["body"] for c in emulator.calls if c.operation == operation]


def _open(emulator: Emulator, **config: Any) -> sessionkit.Session:
    return sessionkit.open_session("livy", **_keywords(emulator), **config)


# ----------------------------------------------------------------------------- states


def test_state_table_covers_livys_documented_states() -> None:
    assert set(STATE_MAP) == set(LIVY_SESSION_STATES)


@pytest.mark.parametrize(
    ("native", "state"),
    [
        ("not_started", SessionState.PENDING),
        ("starting", SessionState.STARTING),
        ("recovering", SessionState.STARTING),
        ("idle", SessionState.READY),
        ("busy", SessionState.BUSY),
        ("running", SessionState.BUSY),
        ("shutting_down", SessionState.STOPPING),
        ("killed", SessionState.STOPPED),
        ("success", SessionState.STOPPED),
        ("error", SessionState.FAILED),
        ("dead", SessionState.FAILED),
    ],
)
def test_state_table_matches_design(native: str, state: SessionState) -> None:
    assert STATE_MAP[native] is state


def test_unknown_state_is_unknown_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    from sessionkit.backends.livy.backend import session_info

    with caplog.at_level(logging.WARNING):
        info = session_info({"id": 3, "state": "hibernating"}, url=URL)
    assert info.state is SessionState.UNKNOWN
    assert info.native_state == "hibernating"
    assert "hibernating" in caplog.text


# ----------------------------------------------------------------------------- requests


def test_minimal_request_has_kind_generated_name_and_default_idle_timeout() -> None:
    body, _ = build_create_request(SessionConfig())
    assert body["kind"] == "pyspark"
    assert body["name"].startswith("sessionkit-")
    assert body["idleTimeout"] == "60m"
    assert set(body) == {"kind", "name", "idleTimeout"}


def test_every_field_translates_exactly(emulator: Emulator) -> None:
    session = _open(
        emulator,
        name="nightly",
        idle_timeout=timedelta(seconds=90),
        max_duration=timedelta(hours=2),
        spark_conf={"spark.sql.shuffle.partitions": "8"},
        workers=Workers(count=3, type="default"),
        options={"kind": "spark", "driverMemory": "2g", "queue": "etl"},
        wait=False,
    )
    session.stop(wait=False)
    (body,) = _bodies(emulator)
    assert body == {
        "kind": "spark",
        "name": "nightly",
        "idleTimeout": "2m",
        "ttl": "120m",
        "conf": {"spark.sql.shuffle.partitions": "8"},
        "numExecutors": 3,
        "driverMemory": "2g",
        "queue": "etl",
    }


def test_role_is_the_proxy_user_verbatim() -> None:
    role = "arn:aws:iam::123456789012:role/EmrLivyUser"
    body, _ = build_create_request(SessionConfig(role=role))
    assert body["proxyUser"] == role


def test_role_takes_a_plain_proxy_user() -> None:
    body, _ = build_create_request(SessionConfig(role="alice"))
    assert body["proxyUser"] == "alice"


def test_options_conf_merges_with_spark_conf() -> None:
    body, _ = build_create_request(
        SessionConfig(spark_conf={"a": "1"}, options={"conf": {"b": "2"}})
    )
    assert body["conf"] == {"a": "1", "b": "2"}


def test_idle_timeout_key_in_options_replaces_the_default() -> None:
    body, _ = build_create_request(SessionConfig(options={"heartbeatTimeoutInSecond": 600}))
    assert body["heartbeatTimeoutInSecond"] == 600
    assert "idleTimeout" not in body


def test_heartbeat_mode_sends_heartbeat_timeout_in_seconds() -> None:
    body, _ = build_create_request(
        SessionConfig(idle_timeout=timedelta(seconds=90)), heartbeat=True
    )
    assert body["heartbeatTimeoutInSecond"] == 90
    assert "idleTimeout" not in body


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("description", "x"),
        ("tags", {"team": "data"}),
        ("max_dpus", 4),
        ("runtime_version", "3.5"),
        ("client_token", "t" * 40),
        ("spark_connect", True),
    ],
)
def test_unsupported_fields_are_rejected_before_any_call(
    emulator: Emulator, field: str, value: Any
) -> None:
    with pytest.raises(InvalidConfigError) as caught:
        _open(emulator, **{field: value})
    assert caught.value.field == field
    assert "livy" in str(caught.value)
    assert emulator.call_count() == 0


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"workers": Workers(count=2, type="G.1X")}, "workers"),
        ({"options": {"name": "x"}, "name": "y"}, "options"),
        ({"spark_conf": {"a": "1"}, "options": {"conf": {"a": "2"}}}, "spark_conf"),
        ({"options": {"kind": ""}}, "options"),
        ({"options": {"name": "x"}}, "options"),
        ({"idle_timeout": timedelta(minutes=5), "options": {"idleTimeout": "5m"}}, "idle_timeout"),
    ],
)
def test_invalid_combinations_are_rejected_before_any_call(
    emulator: Emulator, config: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidConfigError) as caught:
        _open(emulator, **config)
    assert caught.value.field == field
    assert emulator.call_count() == 0


@pytest.mark.parametrize(
    ("keywords", "field"),
    [
        ({"url": "livy.example.com"}, "url"),
        ({"url": URL, "headers": {"X": 1}}, "headers"),
        ({"url": URL, "idle_timeout_mode": "sometimes"}, "idle_timeout_mode"),
        ({"url": URL, "auth": 42}, "auth"),
        ({"url": URL, "client": object()}, "client"),
    ],
)
def test_bad_backend_keywords_are_rejected(keywords: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidConfigError) as caught:
        sessionkit.open_session("livy", **keywords)
    assert caught.value.field == field


def test_verify_with_a_given_client_is_rejected() -> None:
    with pytest.raises(InvalidConfigError) as caught:
        sessionkit.open_session("livy", url=URL, client=httpx.Client(), verify=False)
    assert caught.value.field == "verify"


def test_url_is_required() -> None:
    with pytest.raises(InvalidConfigError) as caught:
        sessionkit.open_session("livy")
    assert caught.value.field == "url"


def test_every_request_carries_the_csrf_header(emulator: Emulator) -> None:
    with _open(emulator) as session:
        session.run("1")
    assert emulator.calls
    assert all(c.params["headers"].get("x-requested-by") for c in emulator.calls)
    assert all(c.outcome == "ok" for c in emulator.calls if c.operation != "GetSession")


# ----------------------------------------------------------------------------- idle timeout modes


def test_auto_mode_sends_idle_timeout_to_livy_0_9(emulator: Emulator) -> None:
    with _open(emulator, idle_timeout=timedelta(minutes=30)) as session:
        assert session.info.idle_timeout == timedelta(minutes=30)
    (body,) = _bodies(emulator)
    assert body["idleTimeout"] == "30m"
    assert "heartbeatTimeoutInSecond" not in body


def test_auto_mode_keeps_a_heartbeat_on_older_livy(emulator: Emulator, livy: LivyService) -> None:
    livy.version = "0.7.1-incubating"
    livy.supports_idle_timeout = False
    session = _open(emulator, idle_timeout=timedelta(minutes=2))
    backend: LivyBackend = session.implementation  # type: ignore[assignment]
    try:
        (body,) = _bodies(emulator)
        assert body["heartbeatTimeoutInSecond"] == 120
        assert "idleTimeout" not in body
        assert backend.heartbeat_running(session.id)
    finally:
        session.stop(wait=False)
    assert not backend.heartbeat_running(session.id)


def test_heartbeat_keeps_the_session_alive(emulator: Emulator, livy: LivyService) -> None:
    livy.supports_idle_timeout = False
    session = sessionkit.open_session(
        "livy",
        idle_timeout=timedelta(minutes=2),
        idle_timeout_mode="heartbeat",
        **_keywords(emulator),
    )
    backend: LivyBackend = session.implementation  # type: ignore[assignment]
    heartbeat = backend._heartbeats[session.id]
    heartbeat.stop()  # drive the beats by hand, on virtual time
    for _ in range(5):
        emulator.clock.advance(60)
        heartbeat._stopped.clear()
        assert heartbeat.beat()
    assert livy.state(session.id) == "idle"
    emulator.clock.advance(121)
    assert livy.state(session.id) is None  # Livy's watchdog deleted the orphan


def test_heartbeat_ends_when_the_session_vanishes(emulator: Emulator, livy: LivyService) -> None:
    session = sessionkit.open_session("livy", idle_timeout_mode="heartbeat", **_keywords(emulator))
    backend: LivyBackend = session.implementation  # type: ignore[assignment]
    heartbeat = backend._heartbeats[session.id]
    heartbeat.stop()
    heartbeat._stopped.clear()
    heartbeat.interval = 0.0
    before = emulator.call_count(operation="GetSession")
    del livy._sessions[int(session.id)]  # the server forgot it (an admin deleted it)
    heartbeat._loop()  # returns: a 404 for a session nobody here deleted ends the heartbeat
    assert emulator.call_count(operation="GetSession") == before + 1
    assert not heartbeat.running


def test_server_without_version_that_refuses_idle_timeout_falls_back(
    emulator: Emulator, livy: LivyService
) -> None:
    livy.version = None
    livy.supports_idle_timeout = False
    session = _open(emulator, idle_timeout=timedelta(minutes=5))
    try:
        first, second = _bodies(emulator)
        assert first["idleTimeout"] == "5m"
        assert second["heartbeatTimeoutInSecond"] == 300
        assert livy.created() == 1
    finally:
        session.stop(wait=False)


def test_a_failing_version_probe_is_not_retried_and_does_not_fail_the_open(
    emulator: Emulator,
) -> None:
    emulator.inject("server_error", service="livy", operations="GetVersion")
    with _open(emulator, idle_timeout=timedelta(minutes=5)):
        pass
    assert emulator.call_count(operation="GetVersion") == 1
    assert _bodies(emulator)[0]["idleTimeout"] == "5m"


def test_endpoint_is_not_supported(emulator: Emulator) -> None:
    with _open(emulator) as session, pytest.raises(sessionkit.errors.NotSupportedError):
        session.endpoint()


def test_list_without_total_stops_at_a_short_page() -> None:
    pages: list[Any] = []

    def handler(request: httpx.Request) -> httpx.Response:
        pages.append(dict(request.url.params))
        # A server that ignores from/size and sends no total.
        return httpx.Response(200, json={"sessions": [{"id": 1, "state": "idle"}]})

    sessions, token = _backend(handler)._list_page(None, None)
    assert [s.id for s in sessions] == ["1"]
    assert token is None


def test_explicit_idle_timeout_mode_makes_no_version_call(emulator: Emulator) -> None:
    session = sessionkit.open_session(
        "livy", idle_timeout_mode="idle_timeout", wait=False, **_keywords(emulator)
    )
    session.stop(wait=False)
    assert emulator.call_count(operation="GetVersion") == 0


# ----------------------------------------------------------------------------- lifecycle


def test_end_to_end_open_run_run_stop(emulator: Emulator) -> None:
    with _open(emulator) as session:
        assert session.state is SessionState.READY
        assert session.info.name is not None
        assert session.info.name.startswith("sessionkit-")
        session.run("x = 1")
        result = session.run("x + 1")
        assert result.output == "2"
        assert result.state is StatementState.SUCCEEDED
    info = session.refresh()
    assert info.state is SessionState.STOPPED
    (statement_body,) = [b for b in _bodies(emulator, "CreateStatement") if b["code"] == "x + 1"]
    assert statement_body == {"code": "x + 1", "kind": "pyspark"}
    assert emulator.call_count(operation="DeleteSession") == 1


def test_statements_use_the_kind_of_an_attached_session(emulator: Emulator) -> None:
    owner = _open(emulator, options={"kind": "spark"})
    try:
        attached = sessionkit.attach_session("livy", owner.id, **_keywords(emulator))
        with pytest.raises(StatementFailedError):
            attached.run("val x = 1")  # the emulator runs Python only
        (body,) = _bodies(emulator, "CreateStatement")
        assert body == {"code": "val x = 1", "kind": "spark"}
    finally:
        owner.stop(wait=False)


def test_session_livy_already_forgot_stops_cleanly(emulator: Emulator, livy: LivyService) -> None:
    session = _open(emulator, idle_timeout=timedelta(minutes=10))
    emulator.clock.advance(11 * 60)  # Livy's idle-timeout collector deletes it
    assert livy.state(session.id) is None
    info = session.stop()
    assert info.state is SessionState.STOPPED
    assert [c.outcome for c in emulator.calls if c.operation == "DeleteSession"] == ["NotFound"]


def test_describing_a_session_that_never_existed_is_not_found(emulator: Emulator) -> None:
    with pytest.raises(ServiceError) as caught:
        sessionkit.attach_session("livy", "999", **_keywords(emulator)).refresh()
    assert caught.value.code == "NotFound"


def test_failed_statement_raises_with_livy_error_fields(emulator: Emulator) -> None:
    with _open(emulator) as session, pytest.raises(StatementFailedError) as caught:
        session.run("undefined_name")
    result = caught.value.result
    assert result.state is StatementState.FAILED
    assert result.error_name == "NameError"
    assert "undefined_name" in (result.error_value or "")
    assert result.traceback


@pytest.mark.parametrize("status", ["error", "ERROR", "Error"])
def test_available_with_error_output_is_failed_case_insensitively(status: str) -> None:
    result = statement_result(
        {
            "id": 1,
            "state": "available",
            "output": {"status": status, "ename": "E", "evalue": "v", "traceback": ["t"]},
        }
    )
    assert result.state is StatementState.FAILED
    assert (result.error_name, result.error_value, result.traceback) == ("E", "v", ["t"])


@pytest.mark.parametrize(
    ("native", "state"),
    [
        ("waiting", StatementState.PENDING),
        ("running", StatementState.RUNNING),
        ("available", StatementState.SUCCEEDED),
        ("error", StatementState.FAILED),
        ("cancelling", StatementState.CANCELLING),
        ("cancelled", StatementState.CANCELLED),
    ],
)
def test_statement_states(native: str, state: StatementState) -> None:
    assert statement_result({"id": 0, "state": native}).state is state


def test_statement_output_and_times() -> None:
    result = statement_result(
        {
            "id": 4,
            "state": "available",
            "output": {"status": "ok", "execution_count": 4, "data": {"text/plain": "42"}},
            "started": 1_700_000_000_000,
            "completed": 1_700_000_001_500,
            "progress": 1.0,
        }
    )
    assert (result.id, result.output) == ("4", "42")
    assert result.started_at is not None and result.started_at.tzinfo is not None
    assert result.completed_at is not None
    assert (result.completed_at - result.started_at) == timedelta(seconds=1.5)


def test_statement_timeout_cancels_on_the_server(emulator: Emulator, livy: LivyService) -> None:
    livy.timeline.statement = 1000.0
    with _open(emulator) as session, pytest.raises(sessionkit.WaitTimeoutError):
        session.run("1", timeout=5)
    assert emulator.call_count(operation="CancelStatement") == 1


def test_failure_reason_comes_from_the_session_log(emulator: Emulator, livy: LivyService) -> None:
    livy.script_next("dead", after=2.0, reason="YARN: queue etl is full")
    with pytest.raises(SessionFailedError) as caught:
        _open(emulator)
    info = caught.value.info
    assert info.state is SessionState.FAILED
    assert info.native_state == "dead"
    assert info.reason is not None and "queue etl is full" in info.reason
    assert emulator.call_count(operation="GetSessionLog") >= 1


def test_list_pages_with_from_and_size(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    import sessionkit.backends.livy.backend as module

    monkeypatch.setattr(module, "PAGE_SIZE", 2)
    opened = [_open(emulator, wait=False) for _ in range(5)]
    listed = [i.id for i in sessionkit.list_sessions("livy", **_keywords(emulator))]
    assert listed == [s.id for s in opened]
    queries = [c.params["query"] for c in emulator.calls if c.operation == "ListSessions"]
    assert queries == [
        {"from": "0", "size": "2"},
        {"from": "2", "size": "2"},
        {"from": "4", "size": "2"},
    ]
    for session in opened:
        session.stop(wait=False)


def test_resource_name_is_the_session_url(emulator: Emulator) -> None:
    with _open(emulator) as session:
        assert session.info.raw["id"] == int(session.id)
        assert session.info.resource_name == f"{URL}/sessions/{session.id}"  # type: ignore[attr-defined]


# ----------------------------------------------------------------------------- no idempotency key


def test_lost_create_answer_adopts_the_session_by_name(
    emulator: Emulator, livy: LivyService
) -> None:
    emulator.inject("read_timeout", service="livy", operations="CreateSession", count=1)
    with _open(emulator) as session:
        assert session.state is SessionState.READY
    assert livy.created() == 1
    assert emulator.call_count(operation="CreateSession") == 1
    assert emulator.call_count(operation="ListSessions") >= 1


def test_create_that_never_arrived_is_sent_again(emulator: Emulator, livy: LivyService) -> None:
    emulator.inject("connection_error", service="livy", operations="CreateSession", count=1)
    with _open(emulator) as session:
        assert session.state is SessionState.READY
    assert livy.created() == 1
    assert emulator.call_count(operation="CreateSession") == 2
    assert emulator.call_count(operation="ListSessions") == 0


def test_throttled_create_is_retried_without_a_lookup(
    emulator: Emulator, livy: LivyService
) -> None:
    emulator.inject("throttle", service="livy", operations="CreateSession", count=2)
    with _open(emulator) as session:
        assert session.state is SessionState.READY
    assert livy.created() == 1
    assert emulator.call_count(operation="CreateSession") == 3
    assert emulator.call_count(operation="ListSessions") == 0


def test_lost_answers_until_retries_run_out_stop_what_was_created(
    emulator: Emulator, livy: LivyService
) -> None:
    # The create lands but its answer is lost; every lookup before a retry is throttled until
    # the start gives up; the clean-up then finds the session by its name and deletes it.
    attempts = emulator.poll_policy().max_attempts
    emulator.inject("read_timeout", service="livy", operations="CreateSession", count=1)
    emulator.inject("throttle", service="livy", operations="ListSessions", count=attempts - 1)
    with pytest.raises(ThrottledError):
        _open(emulator)
    assert emulator.call_count(operation="CreateSession") == 1
    assert livy.created() == 1
    assert emulator.call_count(operation="DeleteSession") == 1
    assert livy.alive() == []


def test_5xx_on_create_looks_before_retrying(emulator: Emulator, livy: LivyService) -> None:
    emulator.inject("server_error", service="livy", operations="CreateSession", count=1)
    with _open(emulator):
        pass
    assert livy.created() == 1
    order = [
        c.operation for c in emulator.calls if c.operation in ("CreateSession", "ListSessions")
    ]
    assert order == ["CreateSession", "ListSessions", "CreateSession"]


def test_duplicate_name_of_someone_else_is_not_adopted(emulator: Emulator) -> None:
    other = _open(emulator, name="shared-name")
    try:
        with pytest.raises(ServiceError) as caught:
            _open(emulator, name="shared-name")
        assert caught.value.code == "BadRequest"
        assert "Duplicate session name" in str(caught.value)
        assert other.refresh().state is SessionState.READY
    finally:
        other.stop(wait=False)


# ----------------------------------------------------------------------------- errors


def _backend(handler: Any, **keywords: Any) -> LivyBackend:
    client = httpx.Client(transport=httpx.MockTransport(handler))
    return LivyBackend(url="https://livy.test", client=client, **keywords)


@pytest.mark.parametrize(
    ("status", "error", "retryable"),
    [
        (429, ThrottledError, True),
        (503, ThrottledError, True),
        (500, ServiceError, True),
        (502, ServiceError, True),
        (404, ServiceError, False),
        (400, ServiceError, False),
        (401, ServiceError, False),
    ],
)
def test_http_statuses_translate(status: int, error: type[ServiceError], retryable: bool) -> None:
    backend = _backend(lambda request: httpx.Response(status, json={"msg": "nope"}))
    with pytest.raises(error) as caught:
        backend._describe("1")
    assert type(caught.value) is error
    assert caught.value.retryable is retryable
    assert caught.value.operation == "GetSession"
    assert "nope" in str(caught.value)
    assert isinstance(caught.value.__cause__, httpx.HTTPStatusError)


def test_404_is_not_found() -> None:
    backend = _backend(lambda r: httpx.Response(404, json={"msg": "Session '1' not found."}))
    with pytest.raises(ServiceError) as caught:
        backend._describe("1")
    assert caught.value.code == "NotFound"


@pytest.mark.parametrize(
    ("exception", "code"),
    [
        (httpx.ConnectError("refused"), "ConnectFailed"),
        (httpx.ConnectTimeout("slow"), "ConnectFailed"),
        (httpx.RemoteProtocolError("reset"), "ConnectionError"),
        (httpx.ReadError("reset"), "ConnectionError"),
        (httpx.ReadTimeout("slow"), "Timeout"),
    ],
)
def test_transport_errors_are_retryable(exception: Exception, code: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exception

    with pytest.raises(ServiceError) as caught:
        _backend(handler)._describe("1")
    assert caught.value.code == code
    assert caught.value.retryable
    assert caught.value.__cause__ is exception


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, content=b"<html>proxy login</html>"),
        httpx.Response(200, json={"state": "idle"}),
        httpx.Response(200, json=["not", "a", "session"]),
    ],
)
def test_malformed_answers_are_service_errors(response: httpx.Response) -> None:
    with pytest.raises(ServiceError) as caught:
        _backend(lambda request: response)._describe("1")
    assert caught.value.code == "MalformedResponse"


def test_list_without_sessions_member_is_a_service_error() -> None:
    backend = _backend(lambda request: httpx.Response(200, json={"from": 0, "total": 0}))
    with pytest.raises(ServiceError) as caught:
        backend._list_page(None, None)
    assert caught.value.code == "MalformedResponse"


def test_calls_use_short_timeouts_and_the_csrf_header() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"id": 1, "state": "idle"})

    _backend(handler, headers={"X-Tenant": "t1"})._describe("1")
    (request,) = seen
    assert request.headers["X-Requested-By"] == "sessionkit"
    assert request.headers["X-Tenant"] == "t1"
    assert request.extensions["timeout"] == {
        "connect": 5.0,
        "read": 20.0,
        "write": 20.0,
        "pool": 20.0,
    }
    assert str(request.url) == "https://livy.test/sessions/1"


# ----------------------------------------------------------------------------- auth


def _authorization(auth: Any) -> str | None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"id": 1, "state": "idle"})

    _backend(handler, auth=auth)._describe("1")
    return seen[0].headers.get("Authorization")


def test_no_auth_sends_no_authorization() -> None:
    assert _authorization(None) is None


def test_basic_auth() -> None:
    assert _authorization(livy_auth.basic("admin", "pw")) == "Basic YWRtaW46cHc="
    assert _authorization(("admin", "pw")) == "Basic YWRtaW46cHc="


def test_bearer_provider_is_asked_on_every_request() -> None:
    tokens = iter(["t1", "t2"])
    auth = livy_auth.bearer(lambda: next(tokens))
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["Authorization"])
        return httpx.Response(200, json={"id": 1, "state": "idle"})

    backend = _backend(handler, auth=auth)
    backend._describe("1")
    backend._describe("1")
    assert seen == ["Bearer t1", "Bearer t2"]
    assert "t1" not in repr(auth) and "t2" not in repr(backend)


def test_callable_returning_headers() -> None:
    assert _authorization(lambda: {"Authorization": "Custom abc"}) == "Custom abc"


class _Credential:
    def __init__(self) -> None:
        self.scopes: list[str] = []

    def get_token(self, *scopes: str) -> Any:
        self.scopes.extend(scopes)

        class Token:
            token = "entra-token"

        return Token()


@pytest.mark.parametrize(
    ("factory", "scope"),
    [
        (livy_auth.synapse, "https://dev.azuresynapse.net/.default"),
        (livy_auth.fabric, "https://api.fabric.microsoft.com/.default"),
    ],
)
def test_entra_id_scopes(factory: Any, scope: str) -> None:
    credential = _Credential()
    assert _authorization(factory(credential)) == "Bearer entra-token"
    assert credential.scopes == [scope]


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, None),
        ({"SESSIONKIT_LIVY_USER": "admin", "SESSIONKIT_LIVY_PASSWORD": "pw"}, "Basic YWRtaW46cHc="),
        ({"SESSIONKIT_LIVY_TOKEN": "tok"}, "Bearer tok"),
    ],
)
def test_auth_from_the_environment(environ: dict[str, str], expected: str | None) -> None:
    assert _authorization(livy_auth.from_environment(environ)) == expected


def test_auth_from_the_environment_rejects_an_unknown_azure_service() -> None:
    with pytest.raises(InvalidConfigError) as caught:
        livy_auth.from_environment({"SESSIONKIT_LIVY_AZURE": "hdinsight"})
    assert caught.value.field == "auth"


def test_tokens_never_appear_in_errors() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"msg": "bad token"})

    backend = _backend(handler, auth=livy_auth.bearer(lambda: "s3cr3t-token"))
    with pytest.raises(ServiceError) as caught:
        backend._describe("1")
    assert "s3cr3t-token" not in str(caught.value)
    assert "s3cr3t-token" not in repr(backend)


def test_credentials_in_the_url_never_appear_in_repr_or_errors() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    client = httpx.Client(transport=httpx.MockTransport(handler))
    backend = LivyBackend(url="https://admin:hunter2@livy.test", client=client)
    with pytest.raises(ServiceError) as caught:
        backend._describe("1")
    assert "hunter2" not in str(caught.value)
    assert "hunter2" not in repr(backend)
    assert "livy.test" in str(caught.value)


def test_required_auth_on_the_emulator(emulator: Emulator, livy: LivyService) -> None:
    livy.required_authorization = "Bearer good"
    with pytest.raises(ServiceError) as caught:
        _open(emulator, auth=livy_auth.bearer(lambda: "bad"))
    assert caught.value.code == "Unauthorized"
    with _open(emulator, auth=livy_auth.bearer(lambda: "good")) as session:
        assert session.state is SessionState.READY
    assert all(c.params["headers"]["authorization"] == "***" for c in emulator.calls)


def test_emulator_csrf_rejects_requests_without_the_header(emulator: Emulator) -> None:
    client = emulator.client("livy")
    response = client.post("/sessions", content=json.dumps({"kind": "pyspark"}))
    assert response.status_code == 400
    assert "CSRF" in response.json()["msg"]


def test_a_ref_carries_the_server_url_without_its_credentials() -> None:
    backend = LivyBackend(url="https://alice:s3cret@livy.example.com:8998/")
    assert backend.location == {"url": "https://livy.example.com:8998"}
    info = SessionInfo(id="7", backend="livy", state=SessionState.READY, native_state="idle")
    ref = sessionkit.Session(backend, info, owned=False).ref()
    assert "s3cret" not in repr(ref.to_dict())
    assert ref.to_dict()["location"] == {"url": "https://livy.example.com:8998"}

"""EMR Serverless specifics: request translation, the state table, pre-flight checks, usage,
the client token across retries, and the lifecycle on the emulator through the public API."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.stub import ANY, Stubber

import sessionkit
from sessionkit import (
    InvalidConfigError,
    NotSupportedError,
    ServiceError,
    SessionConfig,
    SessionFailedError,
    SessionState,
    WaitTimeoutError,
    Workers,
)
from sessionkit.backends.aws.emr_serverless import (
    STATE_MAP,
    TRANSLATION,
    EmrServerlessBackend,
    session_info,
)
from sessionkit.testing import Emulator
from tests.conftest import ROLE

APP = "00fabcdefghij123"
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _model() -> Any:
    return botocore.session.get_session().get_service_model("emr-serverless")


@pytest.fixture
def stubbed() -> Any:
    client = boto3.client("emr-serverless", region_name="us-east-1")
    with Stubber(client) as stubber:
        yield client, stubber


def _application(**extra: Any) -> dict[str, Any]:
    record = {
        "applicationId": APP,
        "arn": f"arn:aws:emr-serverless:us-east-1:123456789012:/applications/{APP}",
        "releaseLabel": "emr-7.13.0",
        "type": "Spark",
        "state": "STARTED",
        "createdAt": T0,
        "updatedAt": T0,
        "interactiveConfiguration": {"sessionEnabled": True},
    }
    record.update(extra)
    return {"application": record}


def _started(session_id: str = "s0abc") -> dict[str, Any]:
    return {
        "applicationId": APP,
        "sessionId": session_id,
        "arn": f"arn:aws:emr-serverless:us-east-1:123456789012:/applications/{APP}/sessions/"
        f"{session_id}",
    }


def _session(state: str = "IDLE", **extra: Any) -> dict[str, Any]:
    record = {
        **_started(),
        "state": state,
        "stateDetails": f"Session is {state.lower()}",
        "releaseLabel": "emr-7.13.0",
        "executionRoleArn": ROLE,
        "createdBy": "arn:aws:iam::123456789012:user/someone",
        "createdAt": T0,
        "updatedAt": T0,
    }
    record.update(extra)
    return record


def _backend(client: Any, **extra: Any) -> EmrServerlessBackend:
    return EmrServerlessBackend(application_id=APP, client=client, **extra)


def _open_stubbed(client: Any, stubber: Stubber, expected: dict[str, Any], **config: Any) -> Any:
    stubber.add_response("get_application", _application(), {"applicationId": APP})
    stubber.add_response("start_session", _started(), expected)
    return sessionkit.open_session(
        "emr-serverless", client=client, application_id=APP, wait=False, **config
    )


@pytest.fixture
def app(emulator: Emulator) -> str:
    application: str = emulator.emr_serverless.create_application(name="tests")
    return application


def _open(emulator: Emulator, app: str, **config: Any) -> sessionkit.Session:
    return sessionkit.open_session(
        "emr-serverless",
        application_id=app,
        client=emulator.client("emr-serverless"),
        poll_policy=emulator.poll_policy(),
        **{"role": ROLE, **config},
    )


# ----------------------------------------------------------------------------- translation


def test_every_supported_field_translates_into_the_exact_request(stubbed: Any) -> None:
    client, stubber = stubbed
    expected = {
        "applicationId": APP,
        "clientToken": "token-1",
        "executionRoleArn": ROLE,
        "name": "notebook",
        "idleTimeoutMinutes": 30,
        "configurationOverrides": {
            "runtimeConfiguration": [
                {
                    "classification": "spark-defaults",
                    "properties": {
                        "spark.sql.shuffle.partitions": "64",
                        "spark.executor.memory": "4g",
                    },
                }
            ]
        },
        # The caller's tags plus sessionkit's lifecycle and ownership tags (DESIGN 7).
        "tags": ANY,
    }
    session = _open_stubbed(
        client,
        stubber,
        expected,
        name="notebook",
        role=ROLE,
        idle_timeout=timedelta(minutes=30),
        spark_conf={"spark.sql.shuffle.partitions": "64", "spark.executor.memory": "4g"},
        tags={"team": "data"},
        client_token="token-1",
    )
    stubber.assert_no_pending_responses()
    assert session.id == "s0abc"
    assert session.state is SessionState.PENDING
    assert session.info.native_state == "SUBMITTED"
    assert session.info.name == "notebook"
    assert session.info.arn == _started()["arn"]
    assert session.info.idle_timeout == timedelta(minutes=30)


def test_minimal_request_has_role_and_a_generated_token(stubbed: Any) -> None:
    client, stubber = stubbed
    expected = {
        "applicationId": APP,
        "clientToken": ANY,
        "executionRoleArn": ROLE,
        "idleTimeoutMinutes": 60,
        "tags": ANY,
    }
    _open_stubbed(client, stubber, expected, role=ROLE)
    stubber.assert_no_pending_responses()


def test_translation_table_covers_exactly_the_supported_fields() -> None:
    assert set(TRANSLATION) == EmrServerlessBackend.supported_fields
    assert {"description", "max_duration", "workers", "max_dpus", "runtime_version"}.isdisjoint(
        EmrServerlessBackend.supported_fields
    )


@pytest.mark.parametrize(
    ("idle", "minutes"),
    [
        ("1s", 1),
        ("59s", 1),
        ("60s", 1),
        ("61s", 2),
        ("90s", 2),
        (timedelta(hours=1), 60),
        ("3601s", 61),
    ],
)
def test_idle_timeout_minutes_are_rounded_up(idle: Any, minutes: int) -> None:
    backend = _backend(boto3.client("emr-serverless", region_name="us-east-1"))
    prepared = backend.prepare_start(SessionConfig(role=ROLE, idle_timeout=idle))
    assert prepared.request["idleTimeoutMinutes"] == minutes


def test_client_token_is_generated_once_and_kept_in_the_prepared_start() -> None:
    backend = _backend(boto3.client("emr-serverless", region_name="us-east-1"))
    config = SessionConfig(role=ROLE)
    first = backend.prepare_start(config)
    second = backend.prepare_start(config)
    assert first.token == first.request["clientToken"]
    assert len(first.token) == 32
    assert first.token != second.token  # one token per open_session, not a constant
    assert first.preflight


def test_given_client_token_is_sent_as_is() -> None:
    backend = _backend(boto3.client("emr-serverless", region_name="us-east-1"))
    prepared = backend.prepare_start(SessionConfig(role=ROLE, client_token="mine.1"))
    assert prepared.token == prepared.request["clientToken"] == "mine.1"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("description", "nightly"),
        ("max_duration", "1h"),
        ("workers", Workers(count=2, type="G.1X")),
        ("max_dpus", 4.0),
        ("runtime_version", "emr-7.13.0"),
    ],
)
def test_unsupported_fields_are_rejected_before_any_call(
    emulator: Emulator, app: str, field: str, value: Any
) -> None:
    with pytest.raises(InvalidConfigError) as caught:
        _open(emulator, app, **{field: value})
    assert caught.value.field == field
    assert "emr-serverless" in str(caught.value)
    assert emulator.call_count() == 0


def test_missing_role_is_rejected_before_any_call(emulator: Emulator, app: str) -> None:
    with pytest.raises(InvalidConfigError) as caught:
        sessionkit.open_session(
            "emr-serverless", application_id=app, client=emulator.client("emr-serverless")
        )
    assert caught.value.field == "role"
    assert emulator.call_count() == 0


def test_missing_application_id_is_rejected_before_any_call(emulator: Emulator) -> None:
    with pytest.raises(InvalidConfigError) as caught:
        sessionkit.open_session(
            "emr-serverless", role=ROLE, client=emulator.client("emr-serverless")
        )
    assert caught.value.field == "application_id"
    assert emulator.call_count() == 0


@pytest.mark.parametrize(
    ("keywords", "field"),
    [
        ({"application_id": "Not-An-Id"}, "application_id"),
        ({"application_id": APP, "start_application": "yes"}, "start_application"),
    ],
)
def test_malformed_backend_keywords_are_rejected(keywords: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidConfigError) as caught:
        EmrServerlessBackend(**keywords)
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"name": "x" * 257}, "name"),
        ({"tags": {f"k{i}": "v" for i in range(201)}}, "tags"),
        ({"tags": {"bad*key": "v"}}, "tags"),
        ({"spark_conf": {"spark.a": ""}}, "spark_conf"),
        ({"spark_conf": {f"spark.k{i}": "v" for i in range(101)}}, "spark_conf"),
        ({"client_token": "has space"}, "client_token"),
        ({"idle_timeout": timedelta(minutes=1_000_001)}, "idle_timeout"),
        ({"role": "arn:aws:iam::123456789012:role/a/b c"}, "role"),
    ],
)
def test_service_limits_are_checked_client_side_naming_the_field(
    emulator: Emulator, app: str, config: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidConfigError) as caught:
        _open(emulator, app, **config)
    assert caught.value.field == field
    assert emulator.call_count() == 0


def test_options_are_merged_and_a_key_set_twice_names_options() -> None:
    backend = _backend(boto3.client("emr-serverless", region_name="us-east-1"))
    with pytest.raises(InvalidConfigError) as caught:
        backend.prepare_start(SessionConfig(role=ROLE, name="a", options={"name": "b"}))
    assert caught.value.field == "options"
    with pytest.raises(InvalidConfigError) as caught:
        backend.prepare_start(
            SessionConfig(role=ROLE, client_token="t", options={"clientToken": "u"})
        )
    assert caught.value.field == "options"
    prepared = backend.prepare_start(SessionConfig(role=ROLE, options={"clientToken": "from-opts"}))
    assert prepared.token == prepared.request["clientToken"] == "from-opts"


def test_options_configuration_overrides_combine_with_spark_conf() -> None:
    backend = _backend(boto3.client("emr-serverless", region_name="us-east-1"))
    hive = {"classification": "spark-hive-site", "properties": {"hive.x": "1"}}
    prepared = backend.prepare_start(
        SessionConfig(
            role=ROLE,
            spark_conf={"spark.a": "1"},
            options={"configurationOverrides": {"runtimeConfiguration": [hive]}},
        )
    )
    assert prepared.request["configurationOverrides"] == {
        "runtimeConfiguration": [
            hive,
            {"classification": "spark-defaults", "properties": {"spark.a": "1"}},
        ]
    }
    # Alone, the options' overrides go through as given.
    alone = backend.prepare_start(
        SessionConfig(
            role=ROLE, options={"configurationOverrides": {"runtimeConfiguration": [hive]}}
        )
    )
    assert alone.request["configurationOverrides"] == {"runtimeConfiguration": [hive]}


def test_a_second_spark_defaults_classification_is_an_error() -> None:
    backend = _backend(boto3.client("emr-serverless", region_name="us-east-1"))
    overrides = {
        "runtimeConfiguration": [{"classification": "spark-defaults", "properties": {"b": "2"}}]
    }
    with pytest.raises(InvalidConfigError) as caught:
        backend.prepare_start(
            SessionConfig(
                role=ROLE,
                spark_conf={"spark.a": "1"},
                options={"configurationOverrides": overrides},
            )
        )
    assert caught.value.field == "spark_conf"


def test_overrides_the_session_api_lacks_are_rejected_naming_options() -> None:
    # StartSession's SessionConfigurationOverrides has only runtimeConfiguration (unlike job
    # runs), so monitoring settings belong on the application.
    backend = _backend(boto3.client("emr-serverless", region_name="us-east-1"))
    overrides = {"monitoringConfiguration": {"s3MonitoringConfiguration": {"logUri": "s3://b/"}}}
    with pytest.raises(InvalidConfigError) as caught:
        backend.prepare_start(
            SessionConfig(
                role=ROLE,
                spark_conf={"spark.a": "1"},
                options={"configurationOverrides": overrides},
            )
        )
    assert caught.value.field == "options"
    assert "monitoringConfiguration" in str(caught.value)


def test_spark_conf_values_never_appear_in_errors() -> None:
    backend = _backend(boto3.client("emr-serverless", region_name="us-east-1"))
    secret = "hunter2 " * 200  # too long for the model: 1024 characters at most
    with pytest.raises(InvalidConfigError) as caught:
        backend.prepare_start(SessionConfig(role=ROLE, spark_conf={"spark.password": secret}))
    assert caught.value.field == "spark_conf"
    assert "hunter2" not in str(caught.value)


# ----------------------------------------------------------------------------- states

EXPECTED_STATES = {
    "SUBMITTED": SessionState.PENDING,
    "STARTING": SessionState.STARTING,
    "STARTED": SessionState.READY,
    "IDLE": SessionState.READY,
    "BUSY": SessionState.BUSY,
    "TERMINATING": SessionState.STOPPING,
    "TERMINATED": SessionState.STOPPED,
    "FAILED": SessionState.FAILED,
}


@pytest.mark.parametrize("native", list(_model().shape_for("SessionState").enum))
def test_every_native_state_of_the_model_is_mapped_per_design(native: str) -> None:
    assert native in STATE_MAP, f"EMR Serverless state {native} is not in the state table"
    assert STATE_MAP[native] is EXPECTED_STATES[native]
    info = session_info(_session(native))
    assert info.state is EXPECTED_STATES[native]
    assert info.native_state == native


def test_state_table_has_no_state_the_model_lacks() -> None:
    assert set(STATE_MAP) == set(_model().shape_for("SessionState").enum)


def test_unknown_state_maps_to_unknown_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="sessionkit.states"):
        info = session_info(_session("HIBERNATING"))
    assert info.state is SessionState.UNKNOWN
    assert info.native_state == "HIBERNATING"
    assert any("HIBERNATING" in r.getMessage() for r in caplog.records)


# ----------------------------------------------------------------------------- responses


def test_session_record_translates_times_usage_and_reason(stubbed: Any) -> None:
    client, stubber = stubbed
    record = _session(
        "TERMINATED",
        name="nb",
        stateDetails="Session terminated after being idle for 30 minutes",
        startedAt=T0 + timedelta(minutes=1),
        endedAt=T0 + timedelta(hours=1),
        idleSince=T0 + timedelta(minutes=30),
        idleTimeoutMinutes=30,
        totalResourceUtilization={"vCPUHour": 4.0, "memoryGBHour": 16.0, "storageGBHour": 20.0},
        billedResourceUtilization={"vCPUHour": 4.5, "memoryGBHour": 18.0, "storageGBHour": 0.0},
        totalExecutionDurationSeconds=3540,
    )
    stubber.add_response(
        "get_session", {"session": record}, {"applicationId": APP, "sessionId": "s0abc"}
    )
    info = _backend(client)._describe("s0abc")
    assert info.state is SessionState.STOPPED
    assert info.reason == "Session terminated after being idle for 30 minutes"
    assert info.name == "nb"
    assert info.created_at == T0
    assert info.started_at == T0 + timedelta(minutes=1)
    assert info.ended_at == T0 + timedelta(hours=1)
    assert info.idle_since == T0 + timedelta(minutes=30)
    assert info.idle_timeout == timedelta(minutes=30)
    assert info.arn == _started()["arn"]
    assert info.usage.vcpu_hours == 4.0
    assert info.usage.memory_gb_hours == 16.0
    assert info.usage.storage_gb_hours == 20.0
    assert info.usage.execution_seconds == 3540.0
    assert info.usage.billed is not None
    assert info.usage.billed.vcpu_hours == 4.5
    assert info.usage.billed.memory_gb_hours == 18.0
    assert info.usage.billed.storage_gb_hours == 0.0


def test_endpoint_translates_url_token_and_expiry(stubbed: Any) -> None:
    client, stubber = stubbed
    expires = T0 + timedelta(hours=1)
    stubber.add_response(
        "get_session_endpoint",
        {
            "applicationId": APP,
            "sessionId": "s0abc",
            "endpoint": "https://s0abc.example.invalid",
            "authToken": "secret-token",
            "authTokenExpiresAt": expires,
        },
        {"applicationId": APP, "sessionId": "s0abc"},
    )
    endpoint = _backend(client)._endpoint("s0abc")
    assert endpoint.url == "https://s0abc.example.invalid"
    assert endpoint.token == "secret-token"
    assert endpoint.expires_at == expires
    assert "secret-token" not in repr(endpoint)


@pytest.mark.parametrize(
    ("wanted", "sent"),
    [
        ({SessionState.READY}, ["STARTED", "IDLE"]),
        ({SessionState.STOPPED, SessionState.FAILED}, ["TERMINATED", "FAILED"]),
        ({SessionState.PENDING, SessionState.STOPPING}, ["SUBMITTED", "TERMINATING"]),
    ],
)
def test_list_filters_on_the_service_with_every_native_state(
    stubbed: Any, wanted: set[SessionState], sent: list[str]
) -> None:
    client, stubber = stubbed
    stubber.add_response(
        "list_sessions",
        {"sessions": [], "nextToken": "page2"},
        {"applicationId": APP, "maxResults": 50, "states": sent},
    )
    _, token = _backend(client)._list_page(frozenset(wanted), None)
    assert token == "page2"
    stubber.assert_no_pending_responses()


def test_list_states_param_is_exact_on_the_wire(emulator: Emulator, app: str) -> None:
    list(
        sessionkit.list_sessions(
            "emr-serverless",
            application_id=app,
            states=[SessionState.READY, SessionState.BUSY],
            client=emulator.client("emr-serverless"),
        )
    )
    (call,) = [c for c in emulator.calls if c.operation == "ListSessions"]
    assert sorted(call.params["states"]) == ["BUSY", "IDLE", "STARTED"]
    assert call.params["maxResults"] == 50


def test_list_of_states_no_native_state_maps_to_makes_no_call(emulator: Emulator, app: str) -> None:
    found = list(
        sessionkit.list_sessions(
            "emr-serverless",
            application_id=app,
            states=[SessionState.TIMED_OUT, SessionState.DEGRADED],
            client=emulator.client("emr-serverless"),
        )
    )
    assert found == []
    assert emulator.call_count() == 0


def test_list_with_unknown_state_filters_client_side(stubbed: Any) -> None:
    client, stubber = stubbed
    stubber.add_response(
        "list_sessions",
        {"sessions": [_session("HIBERNATING"), _session("IDLE")]},
        {"applicationId": APP, "maxResults": 50},
    )
    found = list(
        sessionkit.list_sessions(
            "emr-serverless", application_id=APP, states=[SessionState.UNKNOWN], client=client
        )
    )
    assert [i.native_state for i in found] == ["HIBERNATING"]


def test_run_is_not_supported_and_points_to_the_endpoint(emulator: Emulator, app: str) -> None:
    with _open(emulator, app) as session, pytest.raises(NotSupportedError, match="endpoint"):
        session.run("1 + 1")


# ----------------------------------------------------------------------------- pre-flight


def test_sessions_disabled_says_what_to_change(emulator: Emulator) -> None:
    app = emulator.emr_serverless.create_application(session_enabled=False)
    with pytest.raises(InvalidConfigError) as caught:
        _open(emulator, app)
    assert caught.value.field == "application_id"
    assert "sessionEnabled" in str(caught.value)
    assert app in str(caught.value)
    assert emulator.call_count("emr-serverless", "StartSession") == 0


def test_stopped_application_without_auto_start_is_an_error(emulator: Emulator) -> None:
    app = emulator.emr_serverless.create_application(state="STOPPED", auto_start=False)
    with pytest.raises(InvalidConfigError) as caught:
        _open(emulator, app)
    assert caught.value.field == "application_id"
    assert "start_application=True" in str(caught.value)
    assert "STOPPED" in str(caught.value)
    assert emulator.call_count("emr-serverless", "StartSession") == 0
    assert emulator.call_count("emr-serverless", "StartApplication") == 0


def test_stopped_application_with_auto_start_opens(emulator: Emulator) -> None:
    app = emulator.emr_serverless.create_application(state="STOPPED", auto_start=True)
    with _open(emulator, app) as session:
        assert session.state is SessionState.READY
    assert emulator.emr_serverless.application_state(app) == "STARTED"
    assert emulator.call_count("emr-serverless", "StartApplication") == 0


def test_start_application_true_starts_waits_then_opens(emulator: Emulator) -> None:
    app = emulator.emr_serverless.create_application(state="STOPPED", auto_start=False)
    with sessionkit.open_session(
        "emr-serverless",
        application_id=app,
        start_application=True,
        role=ROLE,
        client=emulator.client("emr-serverless"),
        poll_policy=emulator.poll_policy(),
    ) as session:
        assert session.state is SessionState.READY
    operations = [c.operation for c in emulator.calls]
    assert operations.count("StartApplication") == 1
    start_app = operations.index("StartApplication")
    start_session = operations.index("StartSession")
    assert start_app < start_session
    # It waited: the application was polled until STARTED before the session was started.
    started_at = emulator.calls[start_session].at
    assert (
        started_at
        >= emulator.calls[start_app].at + emulator.emr_serverless.timeline.application_starting
    )


def test_start_application_true_times_out_on_the_callers_policy(emulator: Emulator) -> None:
    app = emulator.emr_serverless.create_application(state="STOPPED", auto_start=False)
    emulator.emr_serverless.timeline.application_starting = 3600
    with pytest.raises(WaitTimeoutError, match=app):
        sessionkit.open_session(
            "emr-serverless",
            application_id=app,
            start_application=True,
            role=ROLE,
            client=emulator.client("emr-serverless"),
            poll_policy=emulator.poll_policy(sessionkit.PollPolicy(timeout=60)),
        )
    assert emulator.call_count("emr-serverless", "StartSession") == 0
    assert emulator.clock.monotonic() < 120


def test_start_application_true_on_a_started_application_does_nothing(
    emulator: Emulator, app: str
) -> None:
    with _open(emulator, app, start_application=True) as session:
        assert session.state is SessionState.READY
    assert emulator.call_count("emr-serverless", "StartApplication") == 0


def test_terminated_application_is_an_error(emulator: Emulator) -> None:
    app = emulator.emr_serverless.create_application(state="TERMINATED")
    with pytest.raises(InvalidConfigError, match="TERMINATED") as caught:
        _open(emulator, app, start_application=True)
    assert caught.value.field == "application_id"


def test_missing_application_is_an_error_naming_application_id(emulator: Emulator) -> None:
    with pytest.raises(InvalidConfigError) as caught:
        _open(emulator, "0000000000000000")
    assert caught.value.field == "application_id"
    assert "0000000000000000" in str(caught.value)


def test_hive_application_is_an_error(emulator: Emulator) -> None:
    app = emulator.emr_serverless.create_application(type="Hive")
    with pytest.raises(InvalidConfigError, match="Spark application"):
        _open(emulator, app)


# ----------------------------------------------------------------------------- lifecycle


def test_lifecycle_open_refresh_usage_endpoint_stop(emulator: Emulator, app: str) -> None:
    session = _open(emulator, app, idle_timeout=timedelta(minutes=30), name="nb")
    assert session.state is SessionState.READY
    assert session.info.native_state in ("STARTED", "IDLE")
    assert session.info.started_at is not None
    emulator.clock.advance(600)
    info = session.refresh()
    assert info.native_state == "IDLE"
    assert info.state is SessionState.READY
    assert info.idle_since is not None
    assert info.idle_timeout == timedelta(minutes=30)
    assert info.name == "nb"
    assert info.usage.vcpu_hours is not None and info.usage.vcpu_hours > 0
    assert info.usage.execution_seconds is not None and info.usage.execution_seconds >= 600
    assert info.usage.billed is not None and info.usage.billed.vcpu_hours is not None
    emulator.clock.advance(600)
    later = session.refresh()
    assert later.usage.vcpu_hours is not None and later.usage.vcpu_hours > info.usage.vcpu_hours
    endpoint = session.endpoint()
    assert endpoint.token and endpoint.token not in repr(endpoint)
    assert endpoint.spark_connect_url.startswith("sc://")
    final = session.stop()
    assert final.state is SessionState.STOPPED
    assert final.native_state == "TERMINATED"
    assert final.ended_at is not None
    assert emulator.emr_serverless.alive() == []


def test_busy_session_reads_busy_and_wait_polls_through(emulator: Emulator, app: str) -> None:
    with _open(emulator, app) as session:
        emulator.emr_serverless.busy(session.id, 30)
        assert session.refresh().state is SessionState.BUSY
        assert session.wait_until_ready().state is SessionState.READY
        assert emulator.clock.monotonic() >= 30


def test_idle_timeout_ends_the_session_with_the_reason(emulator: Emulator, app: str) -> None:
    session = _open(emulator, app, idle_timeout="120s")
    emulator.clock.advance(3 * 60)
    info = session.refresh()
    assert info.state is SessionState.STOPPED
    assert info.reason is not None and "idle" in info.reason


def test_list_over_several_pages_with_the_states_filter(emulator: Emulator, app: str) -> None:
    client = emulator.client("emr-serverless")
    policy = emulator.poll_policy()
    sessions = [
        sessionkit.open_session(
            "emr-serverless",
            application_id=app,
            role=ROLE,
            client=client,
            poll_policy=policy,
            wait=False,
        )
        for _ in range(120)
    ]
    emulator.clock.advance(60)
    for session in sessions[:10]:
        session.stop(wait=False)
    emulator.clock.advance(60)
    before = emulator.call_count("emr-serverless", "ListSessions")
    ready = list(
        sessionkit.list_sessions(
            "emr-serverless",
            application_id=app,
            states=SessionState.READY,
            client=client,
            poll_policy=policy,
        )
    )
    assert {i.id for i in ready} == {s.id for s in sessions[10:]}
    assert all(i.state is SessionState.READY for i in ready)
    assert emulator.call_count("emr-serverless", "ListSessions") - before == 3
    stopped = list(
        sessionkit.list_sessions(
            "emr-serverless",
            application_id=app,
            states=[SessionState.STOPPED],
            client=client,
        )
    )
    assert {i.id for i in stopped} == {s.id for s in sessions[:10]}
    everything = list(sessionkit.list_sessions("emr-serverless", application_id=app, client=client))
    assert len(everything) == 120


def test_failure_during_start_raises_with_the_reason_and_leaves_nothing(
    emulator: Emulator, app: str
) -> None:
    emulator.emr_serverless.script_next("FAILED", after=3, reason="Not enough capacity")
    with pytest.raises(SessionFailedError) as caught:
        _open(emulator, app)
    assert caught.value.info.state is SessionState.FAILED
    assert caught.value.reason == "Not enough capacity"
    assert emulator.emr_serverless.alive() == []


def test_session_terminated_during_start_fails_fast(emulator: Emulator, app: str) -> None:
    emulator.emr_serverless.script_next("TERMINATED", after=3, reason="Application stopped")
    with pytest.raises(SessionFailedError) as caught:
        _open(emulator, app)
    assert caught.value.info.state is SessionState.STOPPED
    assert caught.value.reason == "Application stopped"


def test_timeout_during_start_terminates_the_session(emulator: Emulator, app: str) -> None:
    emulator.emr_serverless.timeline.starting = 3600
    with pytest.raises(WaitTimeoutError) as caught:
        _open(emulator, app, timeout=60)
    assert caught.value.info is not None
    session_id = caught.value.info.id
    assert emulator.call_count("emr-serverless", "TerminateSession") == 1
    emulator.clock.advance(60)
    assert emulator.emr_serverless.status(session_id) == "TERMINATED"


def test_retried_start_reuses_the_client_token(emulator: Emulator, app: str) -> None:
    fault = emulator.inject(
        "read_timeout", service="emr-serverless", operations="StartSession", count=1
    )
    with _open(emulator, app) as session:
        assert session.state is SessionState.READY
    assert fault.hits == 1
    starts = [c for c in emulator.calls if c.operation == "StartSession"]
    assert len(starts) == 2
    assert starts[0].params["clientToken"] == starts[1].params["clientToken"]
    assert emulator.emr_serverless.created() == 1


def test_throttled_start_is_retried_with_the_same_token(emulator: Emulator, app: str) -> None:
    emulator.inject("throttle", service="emr-serverless", operations="StartSession", count=2)
    with _open(emulator, app) as session:
        assert session.state is SessionState.READY
    starts = [c for c in emulator.calls if c.operation == "StartSession"]
    assert [c.outcome for c in starts] == ["ThrottlingException", "ThrottlingException", "ok"]
    assert len({c.params["clientToken"] for c in starts}) == 1
    assert emulator.emr_serverless.created() == 1


def test_conflict_on_a_retried_start_is_retried_not_raised(stubbed: Any) -> None:
    client, stubber = stubbed
    backend = _backend(client)
    prepared = backend.prepare_start(SessionConfig(role=ROLE, client_token="tok"))
    stubber.add_client_error("start_session", "ConflictException", http_status_code=409)
    with pytest.raises(ServiceError) as first:
        backend._start(prepared, attempt=1)
    assert not first.value.retryable  # a conflict on the first attempt is the caller's problem
    stubber.add_client_error("start_session", "ConflictException", http_status_code=409)
    with pytest.raises(ServiceError) as retried:
        backend._start(prepared, attempt=2)
    assert retried.value.retryable
    assert retried.value.code == "ConflictException"
    stubber.add_response("start_session", _started(), {**prepared.request})
    # The caller chose the token, so the session it answers with is adopted only once it
    # proves to carry this start's nonce tag (DESIGN 7, issue 8 item 1).
    record = {
        "applicationId": APP,
        "sessionId": "s0abc",
        "arn": _started()["arn"],
        "state": "SUBMITTED",
        "stateDetails": "Submitted",
        "createdBy": "arn:aws:iam::123456789012:user/test",
        "executionRoleArn": ROLE,
        "createdAt": datetime(2026, 1, 1, tzinfo=timezone.utc),
        "updatedAt": datetime(2026, 1, 1, tzinfo=timezone.utc),
        "releaseLabel": "emr-7.13.0",
        "tags": dict(prepared.request["tags"]),
    }
    stubber.add_response("get_session", {"session": record})
    assert backend._start(prepared, attempt=3).id == "s0abc"


def test_start_whose_answers_were_all_lost_is_replayed_and_terminated(
    emulator: Emulator, app: str
) -> None:
    policy = emulator.poll_policy(sessionkit.PollPolicy(max_attempts=3))
    fault = emulator.inject(
        "read_timeout", service="emr-serverless", operations="StartSession", count=3
    )
    with pytest.raises(ServiceError) as caught:
        sessionkit.open_session(
            "emr-serverless",
            application_id=app,
            role=ROLE,
            client=emulator.client("emr-serverless"),
            poll_policy=policy,
        )
    assert caught.value.retryable
    assert fault.hits == 3
    # The replay with the same token found the one session the lost attempts created.
    starts = [c for c in emulator.calls if c.operation == "StartSession"]
    assert len({c.params["clientToken"] for c in starts}) == 1
    assert emulator.emr_serverless.created() == 1
    assert emulator.call_count("emr-serverless", "TerminateSession") == 1
    emulator.clock.advance(60)
    assert emulator.emr_serverless.alive() == []


def test_spark_connect_is_always_on_and_sends_nothing(emulator: Emulator) -> None:
    app = emulator.emr_serverless.create_application(name="connect")
    with sessionkit.open_session(
        "emr-serverless",
        application_id=app,
        role=ROLE,
        spark_connect=True,
        client=emulator.client("emr-serverless"),
        poll_policy=emulator.poll_policy(),
    ) as session:
        (start,) = [c for c in emulator.calls if c.operation == "StartSession"]
        assert "spark_connect" not in str(start.params) and "SessionType" not in start.params
        assert session.endpoint().url

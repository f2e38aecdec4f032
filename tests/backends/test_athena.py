"""Athena-specific behaviour: request translation, pre-flight, states, usage, calculations."""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta, timezone
from typing import Any
from unittest.mock import ANY

import boto3
import botocore.session
import pytest
from botocore.stub import Stubber
from moto import mock_aws

import sessionkit
import sessionkit.waiting
from sessionkit import (
    InvalidConfigError,
    NotSupportedError,
    SessionFailedError,
    SessionState,
    StatementFailedError,
    StatementState,
    WaitTimeoutError,
)
from sessionkit.backends.aws.athena import (
    CALCULATION_STATES,
    STATE_MAP,
    AthenaBackend,
    calculation_result,
    session_info,
)
from sessionkit.models import SessionConfig
from sessionkit.testing import Emulator
from sessionkit.testing.aws.athena import SPARK_CONNECT_ENGINE
from tests.conftest import ROLE

WORK_GROUP = "analytics"


def _athena_enum(shape: str) -> list[str]:
    model = botocore.session.get_session().get_service_model("athena")
    return list(model.shape_for(shape).enum)


@pytest.fixture
def work_group(emulator: Emulator) -> str:
    return emulator.athena.create_work_group(WORK_GROUP)


@pytest.fixture
def connection(emulator: Emulator, work_group: str) -> dict[str, Any]:
    return {
        "client": emulator.client("athena"),
        "poll_policy": emulator.poll_policy(),
        "work_group": work_group,
    }


def _params(emulator: Emulator, operation: str) -> list[dict[str, Any]]:
    return [dict(c.params) for c in emulator.calls if c.operation == operation]


# ----------------------------------------------------------------------------- translation


def test_every_supported_field_translates_into_the_exact_request(
    emulator: Emulator, connection: dict[str, Any]
) -> None:
    token = "t" * 40
    session = sessionkit.open_session(
        "athena",
        wait=False,
        name="nightly",
        role=ROLE,
        idle_timeout=timedelta(minutes=30),
        spark_conf={"spark.sql.shuffle.partitions": "64"},
        tags={"team": "data", "env": "dev"},
        max_dpus=8,
        client_token=token,
        options={
            "EngineConfiguration": {"AdditionalConfigs": {"k": "v"}},
            "CopyWorkGroupTags": True,
        },
        **connection,
    )
    assert _params(emulator, "StartSession") == [
        {
            "WorkGroup": WORK_GROUP,
            "Description": "nightly",
            "ExecutionRole": ROLE,
            "SessionIdleTimeoutInMinutes": 30,
            "EngineConfiguration": {
                "CoordinatorDpuSize": 1,
                "DefaultExecutorDpuSize": 1,
                "MaxConcurrentDpus": 8,
                "AdditionalConfigs": {"k": "v"},
                "SparkProperties": {"spark.sql.shuffle.partitions": "64"},
            },
            # The caller's tags plus sessionkit's lifecycle tags (DESIGN 7).
            "Tags": ANY,
            "ClientRequestToken": token,
            "CopyWorkGroupTags": True,
        }
    ]
    assert session.state is SessionState.STARTING
    session.stop(wait=False)


def test_minimal_request_has_engine_defaults_and_a_generated_token(
    emulator: Emulator, connection: dict[str, Any]
) -> None:
    sessionkit.open_session("athena", wait=False, description="adhoc", **connection).stop(
        wait=False
    )
    (request,) = _params(emulator, "StartSession")
    token = request.pop("ClientRequestToken")
    assert 32 <= len(token) <= 128
    assert request == {
        "WorkGroup": WORK_GROUP,
        "Description": "adhoc",
        "SessionIdleTimeoutInMinutes": 60,
        "Tags": ANY,
        "EngineConfiguration": {
            "CoordinatorDpuSize": 1,
            "DefaultExecutorDpuSize": 1,
            "MaxConcurrentDpus": 20,
        },
    }


def test_options_engine_configuration_overrides_the_defaults(
    emulator: Emulator, connection: dict[str, Any]
) -> None:
    sessionkit.open_session(
        "athena",
        wait=False,
        options={"EngineConfiguration": {"MaxConcurrentDpus": 60}},
        **connection,
    ).stop(wait=False)
    assert _params(emulator, "StartSession")[0]["EngineConfiguration"]["MaxConcurrentDpus"] == 60


@pytest.mark.parametrize(("seconds", "minutes"), [(1, 1), (60, 1), (61, 2), (90, 2), (3600, 60)])
def test_idle_timeout_rounds_up_to_whole_minutes(
    emulator: Emulator, connection: dict[str, Any], seconds: int, minutes: int
) -> None:
    sessionkit.open_session("athena", wait=False, idle_timeout=f"{seconds}s", **connection).stop(
        wait=False
    )
    assert _params(emulator, "StartSession")[0]["SessionIdleTimeoutInMinutes"] == minutes


def test_a_retried_start_reuses_its_token_and_creates_one_session(
    emulator: Emulator, connection: dict[str, Any]
) -> None:
    # The first answer is lost after the service started the session.
    emulator.inject("read_timeout", service="athena", operations="StartSession", count=1)
    with sessionkit.open_session("athena", **connection) as session:
        assert session.state is SessionState.READY
    starts = _params(emulator, "StartSession")
    assert len(starts) == 2
    assert starts[0]["ClientRequestToken"] == starts[1]["ClientRequestToken"]
    assert emulator.athena.created() == 1


@pytest.mark.parametrize(
    ("config", "field", "words"),
    [
        ({"max_duration": "1h"}, "max_duration", "athena"),
        ({"workers": (2, "G.1X")}, "workers", "athena"),
        ({"runtime_version": "3"}, "runtime_version", "athena"),
        ({"max_dpus": 2.5}, "max_dpus", "whole"),
        ({"max_dpus": 1}, "max_dpus", "minimum 2"),
        ({"max_dpus": 5001}, "max_dpus", "maximum 5000"),
        ({"name": "a", "description": "b"}, "name", "not both"),
        ({"idle_timeout": timedelta(minutes=481)}, "idle_timeout", "maximum 480"),
        ({"client_token": "short"}, "client_token", "minimum 32"),
        ({"description": "x" * 1025}, "description", "maximum 1024"),
        (
            {"spark_conf": {"a": "b"}, "options": {"EngineConfiguration": {"SparkProperties": {}}}},
            "options",
            "once",
        ),
        (
            {"max_dpus": 4, "options": {"EngineConfiguration": {"MaxConcurrentDpus": 4}}},
            "options",
            "once",
        ),
        ({"tags": {"a": "b"}, "options": {"Tags": []}}, "options", "once"),
        ({"options": {"EngineConfiguration": {"CoordinatorDpuSize": 2}}}, "options", "maximum 1"),
        ({"options": {"EngineConfiguration": "big"}}, "options", "dict"),
        ({"options": {"NotebookVersion": "Athena notebook version 1"}}, "options", "NotebookId"),
        (
            {"options": {"EngineConfiguration": {"AdditionalConfigs": {"NotebookId": "n"}}}},
            "options",
            "Athena notebook version 1",
        ),
        ({"options": {"Unheard": 1}}, "options", "not a member"),
    ],
)
def test_rejected_config_names_the_field_and_makes_no_call(
    emulator: Emulator,
    connection: dict[str, Any],
    config: dict[str, Any],
    field: str,
    words: str,
) -> None:
    with pytest.raises(InvalidConfigError) as caught:
        sessionkit.open_session("athena", **connection, **config)
    assert caught.value.field == field
    assert words in str(caught.value)
    assert emulator.call_count() == 0


def test_work_group_is_required_and_checked_before_any_call(emulator: Emulator) -> None:
    client = emulator.client("athena")
    with pytest.raises(InvalidConfigError) as caught:
        sessionkit.open_session("athena", client=client)
    assert caught.value.field == "work_group"
    with pytest.raises(InvalidConfigError) as caught:
        sessionkit.open_session("athena", client=client, work_group="bad name!")
    assert caught.value.field == "work_group"
    assert emulator.call_count() == 0


# ----------------------------------------------------------------------------- pre-flight


@pytest.mark.parametrize(
    ("setup", "words"),
    [
        (lambda athena: None, "does not exist"),
        (lambda athena: athena.create_work_group("wg", state="DISABLED"), "enable it"),
        (lambda athena: athena.create_work_group("wg", engine="Athena engine version 3"), "SQL"),
    ],
    ids=["missing", "disabled", "sql-only"],
)
def test_preflight_rejects_a_work_group_that_cannot_run_sessions(
    emulator: Emulator, setup: Any, words: str
) -> None:
    setup(emulator.athena)
    with pytest.raises(InvalidConfigError) as caught:
        sessionkit.open_session(
            "athena",
            client=emulator.client("athena"),
            poll_policy=emulator.poll_policy(),
            work_group="wg",
        )
    assert caught.value.field == "work_group"
    assert words in str(caught.value)
    assert "'wg'" in str(caught.value)
    assert emulator.call_count("athena", "StartSession") == 0


def test_preflight_against_moto_work_groups() -> None:
    """moto implements work groups: a second, independent answer to GetWorkGroup."""
    prepared_config = SessionConfig()
    with mock_aws():
        client = boto3.client("athena", region_name="us-east-1")
        client.create_work_group(
            Name="spark",
            Configuration={"EngineVersion": {"SelectedEngineVersion": "PySpark engine version 3"}},
        )
        spark = AthenaBackend(client=client, work_group="spark")
        spark._preflight(spark.prepare_start(prepared_config))
        for name, words in (("primary", "SQL-only"), ("absent", "does not exist")):
            backend = AthenaBackend(client=client, work_group=name)
            with pytest.raises(InvalidConfigError, match=words) as caught:
                backend._preflight(backend.prepare_start(prepared_config))
            assert caught.value.field == "work_group"


# ----------------------------------------------------------------------------- known surprises


@pytest.fixture
def stubbed() -> Any:
    client = boto3.client("athena", region_name="us-east-1")
    with Stubber(client) as stubber:
        stubber.add_response(
            "get_work_group",
            {
                "WorkGroup": {
                    "Name": "wg",
                    "State": "ENABLED",
                    "Configuration": {
                        "EngineVersion": {"EffectiveEngineVersion": "PySpark engine version 3"}
                    },
                }
            },
        )
        yield client, stubber


def test_a_notebook_demanded_by_the_service_is_explained(stubbed: Any) -> None:
    client, stubber = stubbed
    stubber.add_client_error(
        "start_session",
        "InvalidRequestException",
        "NotebookVersion is required when NotebookId is provided.",
    )
    with pytest.raises(InvalidConfigError) as caught:
        sessionkit.open_session("athena", client=client, work_group="wg", wait=False)
    assert caught.value.field == "options"
    assert "NotebookVersion" in str(caught.value)
    assert "Athena notebook version 1" in str(caught.value)


def test_a_reused_client_token_is_explained(stubbed: Any) -> None:
    client, stubber = stubbed
    stubber.add_client_error(
        "start_session", "SessionAlreadyExistsException", "Session already exists."
    )
    with pytest.raises(InvalidConfigError) as caught:
        sessionkit.open_session(
            "athena", client=client, work_group="wg", wait=False, client_token="k" * 32
        )
    assert caught.value.field == "client_token"


def test_a_retry_told_its_token_started_another_session_never_adopts_it(stubbed: Any) -> None:
    # SessionAlreadyExists answers a token used before with *other* parameters: that session
    # is not this start's (a replay with the same parameters answers with our own session).
    client, stubber = stubbed
    session_id = "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9"
    stubber.add_client_error("start_session", "InternalServerException", http_status_code=500)
    stubber.add_client_error(
        "start_session",
        "SessionAlreadyExistsException",
        f"Session {session_id} already exists.",
    )
    # The clean-up replays the start once more and is refused the same way: nothing stopped.
    stubber.add_client_error(
        "start_session",
        "SessionAlreadyExistsException",
        f"Session {session_id} already exists.",
    )
    no_sleep = sessionkit.waiting.DEFAULT_POLL.on(lambda: 0.0, lambda seconds: None)
    with pytest.raises(InvalidConfigError) as caught:
        sessionkit.open_session(
            "athena", client=client, work_group="wg", wait=False, poll_policy=no_sleep
        )
    assert caught.value.field == "client_token"
    stubber.assert_no_pending_responses()


def test_token_reused_with_other_parameters_on_the_emulator(
    emulator: Emulator, connection: dict[str, Any]
) -> None:
    token = "z" * 32
    first = sessionkit.open_session("athena", wait=False, client_token=token, **connection)
    again = sessionkit.open_session("athena", wait=False, client_token=token, **connection)
    assert again.id == first.id  # same token, same request: the same session
    with pytest.raises(InvalidConfigError) as caught:
        sessionkit.open_session("athena", wait=False, client_token=token, max_dpus=4, **connection)
    assert caught.value.field == "client_token"
    assert emulator.athena.created() == 1
    first.stop(wait=False)


# ----------------------------------------------------------------------------- states


EXPECTED_STATES = {
    "CREATING": SessionState.STARTING,
    "CREATED": SessionState.STARTING,
    "IDLE": SessionState.READY,
    "BUSY": SessionState.BUSY,
    "DEGRADED": SessionState.DEGRADED,
    "TERMINATING": SessionState.STOPPING,
    "TERMINATED": SessionState.STOPPED,
    "FAILED": SessionState.FAILED,
}

EXPECTED_CALCULATION_STATES = {
    "CREATING": StatementState.PENDING,
    "CREATED": StatementState.PENDING,
    "QUEUED": StatementState.PENDING,
    "RUNNING": StatementState.RUNNING,
    "COMPLETED": StatementState.SUCCEEDED,
    "FAILED": StatementState.FAILED,
    "CANCELING": StatementState.CANCELLING,
    "CANCELED": StatementState.CANCELLED,
}


@pytest.mark.parametrize("native", _athena_enum("SessionState"))
def test_every_native_session_state_is_mapped_per_design(native: str) -> None:
    assert STATE_MAP[native] is EXPECTED_STATES[native]
    info = session_info({"SessionId": "s", "Status": {"State": native}})
    assert info.state is EXPECTED_STATES[native]
    assert info.native_state == native


@pytest.mark.parametrize("native", _athena_enum("CalculationExecutionState"))
def test_every_native_calculation_state_is_mapped(native: str) -> None:
    assert CALCULATION_STATES[native] is EXPECTED_CALCULATION_STATES[native]
    record = {"CalculationExecutionId": "c", "Status": {"State": native}}
    assert calculation_result(record).state is EXPECTED_CALCULATION_STATES[native]


def test_the_tables_hold_nothing_the_model_does_not_list() -> None:
    assert set(STATE_MAP) == set(_athena_enum("SessionState"))
    assert set(CALCULATION_STATES) == set(_athena_enum("CalculationExecutionState"))


def test_unknown_states_become_unknown_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        info = session_info({"SessionId": "s", "Status": {"State": "HIBERNATING"}})
        result = calculation_result(
            {"CalculationExecutionId": "c", "Status": {"State": "PONDERING"}}
        )
    assert info.state is SessionState.UNKNOWN
    assert info.native_state == "HIBERNATING"
    assert result.state is StatementState.UNKNOWN
    assert "HIBERNATING" in caplog.text
    assert "PONDERING" in caplog.text


def test_session_record_translates_into_session_info() -> None:
    start = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
    info = session_info(
        {
            "SessionId": "s1",
            "Description": "nightly",
            "SessionConfiguration": {"SessionIdleTimeoutInMinutes": 15},
            "Status": {
                "State": "TERMINATED",
                "StartDateTime": start,
                "EndDateTime": start + timedelta(hours=1),
                "IdleSinceDateTime": start + timedelta(minutes=30),
                "StateChangeReason": "idle",
            },
            "Statistics": {"DpuExecutionInMillis": 7_200_500},
        }
    )
    assert (info.id, info.name, info.state, info.reason) == (
        "s1",
        "nightly",
        SessionState.STOPPED,
        "idle",
    )
    assert info.created_at == info.started_at == start
    assert info.ended_at == start + timedelta(hours=1)
    assert info.idle_since == start + timedelta(minutes=30)
    assert info.idle_timeout == timedelta(minutes=15)
    assert info.usage.dpu_seconds == 7200.5


# ----------------------------------------------------------------------------- lifecycle


def test_wait_polls_the_light_status_call(emulator: Emulator, connection: dict[str, Any]) -> None:
    with sessionkit.open_session("athena", **connection) as session:
        assert session.state is SessionState.READY
        assert emulator.call_count("athena", "GetSessionStatus") >= 1
        assert emulator.call_count("athena", "GetSession") == 0


def test_degraded_during_the_wait_fails_fast_and_terminates_the_session(
    emulator: Emulator, connection: dict[str, Any]
) -> None:
    emulator.athena.script_next("DEGRADED", after=3.0, reason="no healthy coordinators")
    with pytest.raises(SessionFailedError) as caught:
        sessionkit.open_session("athena", timeout=600, **connection)
    info = caught.value.info
    assert info.state is SessionState.DEGRADED
    assert info.reason == "no healthy coordinators"
    # Failing fast: well before the wait's timeout, and within a poll of the change.
    assert emulator.clock.monotonic() < 20
    assert emulator.call_count("athena", "TerminateSession") == 1
    assert emulator.athena.status(info.id) in ("TERMINATING", "TERMINATED")
    emulator.clock.advance(60)
    assert info.id not in emulator.athena.alive()


def test_usage_is_read_from_dpu_execution_millis(
    emulator: Emulator, connection: dict[str, Any]
) -> None:
    with sessionkit.open_session("athena", **connection) as session:
        emulator.clock.advance(100)
        first = session.refresh()
        millis = first.raw["Statistics"]["DpuExecutionInMillis"]
        assert first.usage.dpu_seconds == millis / 1000
        assert first.usage.dpu_seconds >= 100
        emulator.clock.advance(50)
        assert session.refresh().usage.dpu_seconds == pytest.approx(first.usage.dpu_seconds + 50)


def test_stop_terminates_and_a_second_stop_is_harmless(
    emulator: Emulator, connection: dict[str, Any]
) -> None:
    session = sessionkit.open_session("athena", **connection)
    assert session.stop().state is SessionState.STOPPED
    assert session.info.ended_at is not None
    session.stop()
    assert emulator.athena.status(session.id) == "TERMINATED"


def test_list_uses_the_single_state_filter_when_it_can(
    emulator: Emulator, connection: dict[str, Any]
) -> None:
    ready = sessionkit.open_session("athena", **connection)
    starting = sessionkit.open_session("athena", wait=False, **connection)
    listed = [i.id for i in sessionkit.list_sessions("athena", states=["READY"], **connection)]
    assert listed == [ready.id]
    assert _params(emulator, "ListSessions")[-1]["StateFilter"] == "IDLE"
    # STARTING is CREATING or CREATED: two native states, so the filter runs here instead.
    listed = [i.id for i in sessionkit.list_sessions("athena", states=["STARTING"], **connection)]
    assert listed == [starting.id]
    assert "StateFilter" not in _params(emulator, "ListSessions")[-1]
    # No native state is TIMED_OUT: nothing to ask the service.
    calls = emulator.call_count("athena", "ListSessions")
    assert list(sessionkit.list_sessions("athena", states=["TIMED_OUT"], **connection)) == []
    assert emulator.call_count("athena", "ListSessions") == calls
    ready.stop(wait=False)
    starting.stop(wait=False)


def test_list_with_several_states_reads_every_page(
    emulator: Emulator, connection: dict[str, Any]
) -> None:
    client = connection["client"]
    ids = [
        client.start_session(WorkGroup=WORK_GROUP, EngineConfiguration={"MaxConcurrentDpus": 2})[
            "SessionId"
        ]
        for _ in range(130)
    ]
    emulator.clock.advance(10)
    for session_id in ids[:40]:
        client.terminate_session(SessionId=session_id)
    emulator.clock.advance(10)
    before = emulator.call_count("athena", "ListSessions")
    listed = list(sessionkit.list_sessions("athena", states=["READY", "STOPPED"], **connection))
    assert sorted(i.id for i in listed) == sorted(ids)
    assert {i.state for i in listed} == {SessionState.READY, SessionState.STOPPED}
    pages = _params(emulator, "ListSessions")[before:]
    assert len(pages) == 2
    assert all("StateFilter" not in p and p["MaxResults"] == 100 for p in pages)
    assert "NextToken" in pages[1]
    stopped = list(sessionkit.list_sessions("athena", states=["STOPPED"], **connection))
    assert sorted(i.id for i in stopped) == sorted(ids[:40])


# ----------------------------------------------------------------------------- calculations


def test_run_submits_the_exact_request_and_reads_stdout_from_s3(
    emulator: Emulator, connection: dict[str, Any]
) -> None:
    code = "print('rows:', 3)\n6 * 7"
    with sessionkit.open_session(
        "athena", s3_client=emulator.client("s3"), **connection
    ) as session:
        result = session.run(code)
    (request,) = _params(emulator, "StartCalculationExecution")
    token = request.pop("ClientRequestToken")
    assert 32 <= len(token) <= 128
    assert request == {"SessionId": session.id, "CodeBlock": code}
    assert result.state is StatementState.SUCCEEDED
    assert result.output == "rows: 3\n42"
    assert result.raw["Result"]["StdOutS3Uri"].startswith("s3://")
    assert result.started_at is not None and result.completed_at is not None
    (read,) = _params(emulator, "GetObject")
    assert f"s3://{read['Bucket']}/{read['Key']}" == result.raw["Result"]["StdOutS3Uri"]


def test_run_builds_its_s3_client_from_the_boto3_session(
    emulator: Emulator, work_group: str
) -> None:
    with sessionkit.open_session(
        "athena",
        boto3_session=emulator.boto3_session(),
        poll_policy=emulator.poll_policy(),
        work_group=work_group,
    ) as session:
        assert session.run("print('from a built client')").output == "from a built client"


def test_run_with_only_an_injected_client_gives_no_output_but_keeps_the_uris(
    emulator: Emulator, connection: dict[str, Any]
) -> None:
    with sessionkit.open_session("athena", **connection) as session:
        result = session.run("print('hidden')")
    assert result.state is StatementState.SUCCEEDED
    assert result.output is None
    assert set(result.raw["Result"]) >= {"StdOutS3Uri", "StdErrorS3Uri", "ResultS3Uri"}
    assert emulator.call_count("s3") == 0


def test_a_failed_s3_read_gives_none_with_a_warning_and_no_retry(
    emulator: Emulator, connection: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    emulator.inject("server_error", service="s3", operations="GetObject")
    with (
        sessionkit.open_session("athena", s3_client=emulator.client("s3"), **connection) as session,
        caplog.at_level(logging.WARNING, logger="sessionkit.backends.aws.athena"),
    ):
        result = session.run("print('lost')")
    assert result.state is StatementState.SUCCEEDED
    assert result.output is None
    assert "could not read athena calculation output" in caplog.text
    assert emulator.call_count("s3", "GetObject") == 1


def test_a_failed_calculation_raises_with_the_error_from_stderr(
    emulator: Emulator, connection: dict[str, Any]
) -> None:
    with (
        sessionkit.open_session("athena", s3_client=emulator.client("s3"), **connection) as session,
        pytest.raises(StatementFailedError) as caught,
    ):
        session.run("print('before')\n{}['missing']")
    result = caught.value.result
    assert result.state is StatementState.FAILED
    assert result.error_name == "KeyError"
    assert result.error_value == "'missing'"
    assert result.traceback and "KeyError" in result.traceback[-1]
    assert result.output == "before"
    assert "KeyError" in str(caught.value)


def test_a_failed_calculation_without_s3_uses_the_state_change_reason(
    emulator: Emulator, connection: dict[str, Any]
) -> None:
    with (
        sessionkit.open_session("athena", **connection) as session,
        pytest.raises(StatementFailedError) as caught,
    ):
        session.run("1 / 0")
    result = caught.value.result
    assert (result.error_name, result.error_value) == ("ZeroDivisionError", "division by zero")
    assert result.raw["Status"]["StateChangeReason"] == "ZeroDivisionError: division by zero"


def test_a_reason_that_names_no_exception_is_kept_as_the_error_value() -> None:
    result = calculation_result(
        {
            "CalculationExecutionId": "c",
            "Status": {"State": "FAILED", "StateChangeReason": "Session was terminated"},
        }
    )
    assert result.error_name is None
    assert result.error_value == "Session was terminated"


def test_a_calculation_past_its_timeout_is_stopped_on_the_service(
    emulator: Emulator, connection: dict[str, Any]
) -> None:
    emulator.athena.timeline.calculation = 600
    with sessionkit.open_session("athena", **connection) as session:
        with pytest.raises(WaitTimeoutError):
            session.run("print('slow')", timeout=5)
        (stop,) = _params(emulator, "StopCalculationExecution")
        (start,) = _params(emulator, "StartCalculationExecution")
        emulator.clock.advance(1)
        status = connection["client"].get_calculation_execution_status(**stop)
        assert status["Status"]["State"] == "CANCELED"
        assert start["SessionId"] == session.id


def test_run_waits_while_the_session_is_busy(
    emulator: Emulator, connection: dict[str, Any]
) -> None:
    emulator.athena.timeline.calculation = 30
    with sessionkit.open_session("athena", **connection) as session:
        client = connection["client"]
        client.start_calculation_execution(SessionId=session.id, CodeBlock="1")
        emulator.clock.advance(1)
        assert session.refresh().state is SessionState.BUSY
        result = session.run("2")
        assert result.state is StatementState.SUCCEEDED
        assert emulator.clock.monotonic() > 30


# ----------------------------------------------------------------------------- endpoints


def test_endpoint_on_a_spark_connect_work_group(emulator: Emulator) -> None:
    emulator.athena.create_work_group("connect", engine=SPARK_CONNECT_ENGINE)
    with sessionkit.open_session(
        "athena",
        client=emulator.client("athena"),
        poll_policy=emulator.poll_policy(),
        work_group="connect",
    ) as session:
        endpoint = session.endpoint()
        (call,) = _params(emulator, "GetSessionEndpoint")
        assert call == {"SessionId": session.id}
        assert endpoint.url.startswith("https://")
        assert endpoint.token and endpoint.token not in repr(endpoint)
        assert endpoint.expires_at is not None
        assert endpoint.expires_at > emulator.clock.now() + timedelta(minutes=50)
        assert endpoint.spark_connect_url.startswith("sc://")
        with pytest.raises(NotSupportedError, match="no calculation API"):
            session.run("1")


def test_endpoint_on_a_calculation_work_group_is_not_supported(
    connection: dict[str, Any],
) -> None:
    with (
        sessionkit.open_session("athena", **connection) as session,
        pytest.raises(NotSupportedError, match="no Spark Connect endpoint"),
    ):
        session.endpoint()


def test_backend_keywords_reach_the_backend(emulator: Emulator, work_group: str) -> None:
    s3 = emulator.client("s3")
    backend = AthenaBackend(client=emulator.client("athena"), work_group=work_group, s3_client=s3)
    assert backend.location == {"work_group": work_group}
    assert backend._s3() is s3
    assert re.fullmatch(r"[0-9a-f]{32}", backend.prepare_start(SessionConfig()).token)


def test_spark_connect_needs_a_spark_connect_work_group(
    emulator: Emulator, connection: dict[str, Any]
) -> None:
    # The default "spark" work group runs the calculation engine: no endpoint there.
    with pytest.raises(InvalidConfigError) as caught:
        sessionkit.open_session("athena", spark_connect=True, **connection)
    assert caught.value.field == "spark_connect"
    assert "Apache Spark version 3.5" in str(caught.value)
    assert [c.operation for c in emulator.calls] == ["GetWorkGroup"]
    emulator.athena.create_work_group("connect", engine=SPARK_CONNECT_ENGINE)
    with sessionkit.open_session(
        "athena",
        client=emulator.client("athena"),
        poll_policy=emulator.poll_policy(),
        work_group="connect",
        spark_connect=True,
    ) as session:
        assert session.endpoint().url


def test_usage_after_a_light_wait_is_fetched_once(
    emulator: Emulator, connection: dict[str, Any]
) -> None:
    session = sessionkit.open_session("athena", **connection)
    emulator.clock.advance(30)
    session.stop()
    # The wait polled GetSessionStatus, which has no statistics: usage needs one GetSession.
    before = emulator.call_count("athena", "GetSession")
    usage = session.usage
    assert usage.dpu_seconds is not None and usage.dpu_seconds > 0
    assert session.usage == usage
    assert emulator.call_count("athena", "GetSession") == before + 1

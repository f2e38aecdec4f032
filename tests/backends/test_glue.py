"""Glue-specific behaviour: request translation, the state table, usage, idempotent create."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.stub import ANY, Stubber

import sessionkit
from sessionkit import InvalidConfigError, SessionState, StatementState, Workers
from sessionkit.backends.aws.glue import (
    GLUE_STATEMENT_STATES,
    STATE_MAP,
    session_info,
    statement_result,
)
from sessionkit.testing import Emulator
from tests.conftest import ROLE


def _glue_enum(shape: str) -> list[str]:
    model = botocore.session.get_session().get_service_model("glue")
    return list(model.shape_for(shape).enum)


@pytest.fixture
def stubbed() -> Any:
    client = boto3.client("glue", region_name="us-east-1")
    with Stubber(client) as stubber:
        yield client, stubber


def _record(status: str = "READY", **extra: Any) -> dict[str, Any]:
    return {
        "Id": "s1",
        "Status": status,
        "CreatedOn": datetime(2026, 1, 1, tzinfo=timezone.utc),
        **extra,
    }


def _open_stubbed(client: Any, stubber: Stubber, expected: dict[str, Any], **config: Any) -> Any:
    # Every start carries sessionkit's tags and the default idle timeout (DESIGN 3, 7).
    expected = {"Tags": ANY, "IdleTimeout": 60, **expected}
    stubber.add_response("create_session", {"Session": _record("PROVISIONING")}, expected)
    return sessionkit.open_session("glue", client=client, wait=False, **config)


# ----------------------------------------------------------------------------- translation


def test_every_field_translates_into_the_exact_request(stubbed: Any) -> None:
    client, stubber = stubbed
    expected = {
        "Id": "etl-1",
        "Description": "nightly",
        "Role": ROLE,
        "Command": {"Name": "glueetl", "PythonVersion": "3"},
        "IdleTimeout": 30,
        "Timeout": 120,
        "DefaultArguments": {
            "--conf": "spark.sql.shuffle.partitions=64 --conf spark.executor.memory=4g",
            "--enable-glue-datacatalog": "true",
        },
        # The caller's tags plus sessionkit's lifecycle and ownership tags (DESIGN 7).
        "Tags": ANY,
        "NumberOfWorkers": 4,
        "WorkerType": "G.2X",
        "GlueVersion": "5.0",
        "SecurityConfiguration": "sec",
    }
    session = _open_stubbed(
        client,
        stubber,
        expected,
        name="etl-1",
        description="nightly",
        role=ROLE,
        idle_timeout=timedelta(minutes=30),
        max_duration=timedelta(hours=2),
        spark_conf={"spark.sql.shuffle.partitions": "64", "spark.executor.memory": "4g"},
        tags={"team": "data"},
        workers=Workers(count=4, type="G.2X"),
        runtime_version="5.0",
        options={
            "SecurityConfiguration": "sec",
            "DefaultArguments": {"--enable-glue-datacatalog": "true"},
        },
    )
    assert session.id == "s1"
    stubber.assert_no_pending_responses()


def test_spark_connect_sets_the_session_type(stubbed: Any) -> None:
    client, stubber = stubbed
    expected = {"Id": ANY, "Role": ROLE, "Command": ANY, "SessionType": "SPARK_CONNECT"}
    _open_stubbed(client, stubber, expected, role=ROLE, spark_connect=True)
    stubber.add_response("create_session", {"Session": _record("PROVISIONING")})
    sessionkit.open_session("glue", client=client, wait=False, role=ROLE, spark_connect=False)
    stubber.assert_no_pending_responses()


def test_max_dpus_and_client_token(stubbed: Any) -> None:
    client, stubber = stubbed
    expected = {"Id": "token-123", "Role": ROLE, "Command": ANY, "MaxCapacity": 2.0}
    _open_stubbed(client, stubber, expected, role=ROLE, max_dpus=2, client_token="token-123")


@pytest.mark.parametrize(
    ("given", "minutes"),
    [("90s", 2), ("60s", 1), ("61s", 2), (timedelta(minutes=30), 30), (timedelta(seconds=1), 1)],
)
def test_minutes_round_up(stubbed: Any, given: Any, minutes: int) -> None:
    client, stubber = stubbed
    expected = {"Id": ANY, "Role": ROLE, "Command": ANY, "IdleTimeout": minutes, "Timeout": minutes}
    _open_stubbed(client, stubber, expected, role=ROLE, idle_timeout=given, max_duration=given)


def test_generated_id_and_default_command() -> None:
    emulator = Emulator()
    sessionkit.open_session("glue", client=emulator.client("glue"), wait=False, role=ROLE)
    params = emulator.calls[-1].params
    assert params["Id"].startswith("sessionkit-") and len(params["Id"]) == len("sessionkit-") + 36
    assert params["Command"] == {"Name": "glueetl", "PythonVersion": "3"}
    assert "DefaultArguments" not in params


def test_options_can_replace_the_command() -> None:
    emulator = Emulator()
    sessionkit.open_session(
        "glue",
        client=emulator.client("glue"),
        wait=False,
        role=ROLE,
        options={"Command": {"Name": "gluestreaming", "PythonVersion": "3"}},
    )
    assert emulator.calls[-1].params["Command"]["Name"] == "gluestreaming"


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({}, "role"),
        ({"role": "not-an-arn"}, "role"),
        ({"role": ROLE, "tags": {f"k{i}": "v" for i in range(51)}}, "tags"),
        ({"role": ROLE, "spark_conf": {"k": "v" * 5000}}, "spark_conf"),
        ({"role": ROLE, "spark_conf": {"k": 1}}, "spark_conf"),
        ({"role": ROLE, "workers": Workers(count=2, type="G.3X")}, "workers"),
        ({"role": ROLE, "workers": (2, "G.1X"), "max_dpus": 2}, "max_dpus"),
        ({"role": ROLE, "max_dpus": -1}, "max_dpus"),
        ({"role": ROLE, "idle_timeout": -5}, "idle_timeout"),
        ({"role": ROLE, "idle_timeout": "30"}, "idle_timeout"),
        ({"role": ROLE, "runtime_version": "five"}, "runtime_version"),
        ({"role": ROLE, "name": "x" * 256}, "name"),
        ({"role": ROLE, "description": "d" * 2049}, "description"),
        ({"role": ROLE, "name": "a", "client_token": "b"}, "client_token"),
        ({"role": ROLE, "options": {"Role": ROLE}}, "options"),
        (
            {
                "role": ROLE,
                "spark_conf": {"a": "b"},
                "options": {"DefaultArguments": {"--conf": "x=y"}},
            },
            "spark_conf",
        ),
        ({"role": ROLE, "options": {"NoSuchKey": 1}}, "options"),
        ({"role": ROLE, "default_arguments": {}}, "default_arguments"),
        ({"role": ROLE, "spark_connect": "yes"}, "spark_connect"),
        ({"role": ROLE, "spark_connect": True, "options": {"SessionType": "LIVY"}}, "options"),
    ],
)
def test_rejections_name_the_field_and_make_no_call(config: dict[str, Any], field: str) -> None:
    emulator = Emulator()
    with pytest.raises(InvalidConfigError) as caught:
        sessionkit.open_session("glue", client=emulator.client("glue"), **config)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")
    assert emulator.call_count() == 0


def test_secret_conf_values_never_in_errors_or_repr() -> None:
    config = sessionkit.SessionConfig(
        role=ROLE, spark_conf={"spark.hadoop.fs.s3a.secret.key": "S3CR3T", "x": "y" * 5000}
    )
    assert "S3CR3T" not in repr(config)
    emulator = Emulator()
    with pytest.raises(InvalidConfigError) as caught:
        sessionkit.open_session("glue", client=emulator.client("glue"), **config.given())
    assert "S3CR3T" not in str(caught.value)


# ----------------------------------------------------------------------------- states


def test_every_native_status_in_the_model_is_mapped() -> None:
    statuses = _glue_enum("SessionStatus")
    assert set(statuses) == set(STATE_MAP)
    expected = {
        "PROVISIONING": SessionState.STARTING,
        "READY": SessionState.READY,
        "FAILED": SessionState.FAILED,
        "TIMEOUT": SessionState.TIMED_OUT,
        "STOPPING": SessionState.STOPPING,
        "STOPPED": SessionState.STOPPED,
    }
    for status in statuses:
        info = session_info({"Id": "s", "Status": status})
        assert info.state is expected[status]
        assert info.native_state == status


def test_unknown_status_becomes_unknown_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="sessionkit.states"):
        info = session_info({"Id": "s", "Status": "HIBERNATING"})
    assert info.state is SessionState.UNKNOWN
    assert info.native_state == "HIBERNATING"
    assert "HIBERNATING" in caplog.text


def test_every_statement_state_in_the_model_is_mapped() -> None:
    states = _glue_enum("StatementState")
    assert set(states) == set(GLUE_STATEMENT_STATES)
    assert statement_result({"Id": 1, "State": "WAITING"}).state is StatementState.PENDING
    assert statement_result({"Id": 1, "State": "ERROR"}).state is StatementState.FAILED
    ok = statement_result(
        {"Id": 1, "State": "AVAILABLE", "Output": {"Status": "ok", "Data": {"TextPlain": "10"}}}
    )
    assert ok.state is StatementState.SUCCEEDED and ok.output == "10"
    for status in ("error", "ERROR", "Error"):
        failed = statement_result(
            {
                "Id": 2,
                "State": "AVAILABLE",
                "Output": {"Status": status, "ErrorName": "NameError", "ErrorValue": "x"},
            }
        )
        assert failed.state is StatementState.FAILED
        assert failed.error_name == "NameError"


def test_usage_and_timestamps_from_the_record() -> None:
    info = session_info(
        _record("STOPPED", DPUSeconds=42.5, ExecutionTime=12.0, IdleTimeout=30, ErrorMessage="bye")
    )
    assert info.usage.dpu_seconds == 42.5
    assert info.usage.execution_seconds == 12.0
    assert info.idle_timeout == timedelta(minutes=30)
    assert info.reason == "bye"
    assert info.created_at is not None and info.created_at.tzinfo is not None
    with pytest.raises(TypeError):
        info.raw["Status"] = "READY"  # type: ignore[index]


# ----------------------------------------------------------------------------- lifecycle details


def test_retried_create_adopts_the_session_it_created(emulator: Emulator, policy: Any) -> None:
    # The first CreateSession is processed but its answer is lost; the retry meets its own Id.
    emulator.inject("read_timeout", service="glue", operations="CreateSession", count=1)
    session = sessionkit.open_session(
        "glue", client=emulator.client("glue"), poll_policy=policy, role=ROLE
    )
    creates = [c for c in emulator.calls if c.operation == "CreateSession"]
    assert len(creates) == 2
    assert creates[0].params["Id"] == creates[1].params["Id"] == session.id
    assert creates[1].outcome == "AlreadyExistsException"
    assert emulator.created_sessions()["glue"] == 1
    assert session.state is SessionState.READY


def test_existing_name_on_first_attempt_is_an_error(emulator: Emulator, policy: Any) -> None:
    connection = {"client": emulator.client("glue"), "poll_policy": policy}
    sessionkit.open_session("glue", name="taken", role=ROLE, wait=False, **connection)
    with pytest.raises(sessionkit.ServiceError) as caught:
        sessionkit.open_session("glue", name="taken", role=ROLE, wait=False, **connection)
    assert caught.value.code == "AlreadyExistsException"
    assert caught.value.request_id


def test_stop_with_delete_removes_the_record(emulator: Emulator, policy: Any) -> None:
    session = sessionkit.open_session(
        "glue", client=emulator.client("glue"), poll_policy=policy, role=ROLE
    )
    info = session.stop(delete=True)
    assert info.state is SessionState.STOPPED
    assert [c.operation for c in emulator.calls][-1] == "DeleteSession"
    assert emulator.glue.alive() == []
    with pytest.raises(sessionkit.ServiceError) as caught:
        session.refresh()
    assert caught.value.code == "EntityNotFoundException"


def test_stop_without_delete_never_deletes(emulator: Emulator, policy: Any) -> None:
    session = sessionkit.open_session(
        "glue", client=emulator.client("glue"), poll_policy=policy, role=ROLE
    )
    session.stop()
    assert emulator.call_count("glue", "DeleteSession") == 0
    assert session.refresh().state is SessionState.STOPPED


def test_glue_timeout_status_fails_the_wait(emulator: Emulator, policy: Any) -> None:
    emulator.glue.script_next("TIMEOUT", after=2.0, reason="Session timed out")
    with pytest.raises(sessionkit.SessionFailedError) as caught:
        sessionkit.open_session(
            "glue", client=emulator.client("glue"), poll_policy=policy, role=ROLE
        )
    assert caught.value.info.state is SessionState.TIMED_OUT
    assert caught.value.info.native_state == "TIMEOUT"


def test_usage_grows_while_ready(emulator: Emulator, policy: Any) -> None:
    session = sessionkit.open_session(
        "glue", client=emulator.client("glue"), poll_policy=policy, role=ROLE, max_dpus=2
    )
    emulator.clock.advance(100)
    usage = session.refresh().usage
    assert usage.execution_seconds is not None and usage.execution_seconds >= 100
    assert usage.dpu_seconds == pytest.approx(usage.execution_seconds * 2, rel=1e-3)
    session.stop()

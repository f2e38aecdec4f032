"""The emulated Athena (and its S3): wire format, output shapes, timelines, idempotency, errors."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import botocore.exceptions
import botocore.session
import pytest

from sessionkit.backends.aws.common import check_shape
from sessionkit.testing import Emulator, EmulatorDriftError
from sessionkit.testing.aws.athena import (
    DEFAULT_WORK_GROUP,
    SPARK_CONNECT_ENGINE,
    AthenaService,
)
from sessionkit.testing.aws.s3 import S3Service
from tests.conftest import ROLE

_MODEL = botocore.session.get_session().get_service_model("athena")
_S3_MODEL = botocore.session.get_session().get_service_model("s3")


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


@pytest.fixture
def client(emulator: Emulator) -> Any:
    return emulator.client("athena")


def _start(client: Any, token: str | None = None, **extra: Any) -> str:
    params: dict[str, Any] = {
        "WorkGroup": DEFAULT_WORK_GROUP,
        "EngineConfiguration": {"MaxConcurrentDpus": 4},
        **extra,
    }
    if token is not None:
        params["ClientRequestToken"] = token
    session_id: str = client.start_session(**params)["SessionId"]
    return session_id


def _state(client: Any, session_id: str) -> str:
    state: str = client.get_session_status(SessionId=session_id)["Status"]["State"]
    return state


def _calc_state(client: Any, calculation_id: str) -> str:
    status = client.get_calculation_execution_status(CalculationExecutionId=calculation_id)
    state: str = status["Status"]["State"]
    return state


def _raw(response: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in response.items() if k != "ResponseMetadata"}


def _code(error: pytest.ExceptionInfo[botocore.exceptions.ClientError]) -> tuple[str, int]:
    response = error.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def _ready(emulator: Emulator) -> None:
    timeline = emulator.athena.timeline
    emulator.clock.advance(timeline.creating + timeline.created)


# ----------------------------------------------------------------------------- shapes


def test_every_operation_answers_inside_its_output_shape(emulator: Emulator, client: Any) -> None:
    emulator.athena.create_work_group("connect", engine=SPARK_CONNECT_ENGINE)
    session_id = _start(
        client,
        token="a" * 32,
        Description="shapes",
        ExecutionRole=ROLE,
        SessionIdleTimeoutInMinutes=30,
        Tags=[{"Key": "team", "Value": "data"}],
        EngineConfiguration={"MaxConcurrentDpus": 4, "SparkProperties": {"spark.a": "1"}},
    )
    connect = client.start_session(
        WorkGroup="connect", EngineConfiguration={"MaxConcurrentDpus": 2}
    )["SessionId"]
    responses: dict[str, list[dict[str, Any]]] = {"GetSessionStatus": [], "GetSession": []}

    def look() -> None:
        responses["GetSessionStatus"].append(client.get_session_status(SessionId=session_id))
        responses["GetSession"].append(client.get_session(SessionId=session_id))

    look()  # CREATING
    _ready(emulator)
    look()  # IDLE
    good = client.start_calculation_execution(SessionId=session_id, CodeBlock="print(1)")
    look()  # BUSY
    calc = good["CalculationExecutionId"]
    queued = client.start_calculation_execution(SessionId=session_id, CodeBlock="1/0")
    calculations = [
        client.get_calculation_execution(CalculationExecutionId=calc),
        client.get_calculation_execution_status(CalculationExecutionId=calc),
    ]
    emulator.clock.advance(5)
    calculations.append(client.get_calculation_execution(CalculationExecutionId=calc))
    calculations.append(
        client.get_calculation_execution(CalculationExecutionId=queued["CalculationExecutionId"])
    )
    slow = client.start_calculation_execution(SessionId=session_id, CodeBlock="2")
    stop = client.stop_calculation_execution(CalculationExecutionId=slow["CalculationExecutionId"])
    calculations.append(
        client.get_calculation_execution(CalculationExecutionId=slow["CalculationExecutionId"])
    )
    responses["ListSessions"] = [client.list_sessions(WorkGroup=DEFAULT_WORK_GROUP, MaxResults=1)]
    responses["TerminateSession"] = [client.terminate_session(SessionId=session_id)]
    look()  # TERMINATING
    emulator.clock.advance(60)
    look()  # TERMINATED
    responses["GetSessionEndpoint"] = [client.get_session_endpoint(SessionId=connect)]
    responses["GetWorkGroup"] = [client.get_work_group(WorkGroup=DEFAULT_WORK_GROUP)]
    responses["StartSession"] = [
        client.start_session(WorkGroup=DEFAULT_WORK_GROUP, EngineConfiguration={})
    ]
    responses["StartCalculationExecution"] = [good, queued]
    responses["StopCalculationExecution"] = [stop]
    responses["GetCalculationExecution"] = [calculations[0], *calculations[2:]]
    responses["GetCalculationExecutionStatus"] = [calculations[1]]
    states = {r["Status"]["State"] for r in responses["GetSession"]}
    assert states == {"CREATING", "IDLE", "BUSY", "TERMINATING", "TERMINATED"}
    calc_states = {r["Status"]["State"] for r in responses["GetCalculationExecution"]}
    assert calc_states >= {"CREATING", "COMPLETED", "FAILED", "CANCELING"}
    for operation, answers in responses.items():
        shape = _MODEL.operation_model(operation).output_shape
        for answer in answers:
            assert check_shape(_raw(answer), shape) == [], operation
    # Every operation the emulated service implements was exercised above.
    implemented = {name[3:] for name in dir(AthenaService) if name.startswith("op_")}
    assert implemented == {_snake(op) for op in responses}
    assert all(c.outcome == "ok" for c in emulator.calls)


def test_s3_get_object_answers_inside_its_output_shape(emulator: Emulator) -> None:
    uri = emulator.s3.put_object("results", "a b/stdout.txt", "hello\n")
    assert uri == "s3://results/a b/stdout.txt"
    s3 = emulator.client("s3")
    answer = s3.get_object(Bucket="results", Key="a b/stdout.txt")
    assert answer["Body"].read() == b"hello\n"
    assert answer["ContentLength"] == 6
    assert answer["ContentType"] == "text/plain"
    raw = {k: v for k, v in _raw(answer).items() if k != "Body"}
    assert check_shape(raw, _S3_MODEL.operation_model("GetObject").output_shape) == []
    assert {name[3:] for name in dir(S3Service) if name.startswith("op_")} == {"get_object"}


def test_s3_path_style_requests_and_missing_objects(emulator: Emulator) -> None:
    from botocore.config import Config

    emulator.s3.put_object("dotted.bucket", "k", b"\x00data")
    s3 = emulator.boto3_session().client(
        "s3", region_name="eu-west-1", config=Config(s3={"addressing_style": "path"})
    )
    assert s3.get_object(Bucket="dotted.bucket", Key="k")["Body"].read() == b"\x00data"
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        s3.get_object(Bucket="dotted.bucket", Key="nope")
    assert _code(caught) == ("NoSuchKey", 404)
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        s3.get_object(Bucket="nobucket", Key="k")
    assert _code(caught) == ("NoSuchBucket", 404)


def test_a_response_outside_the_shape_is_a_drift_error(
    emulator: Emulator, client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    session_id = _start(client)
    service = emulator.athena
    original = service._status

    def broken(session: Any) -> dict[str, Any]:
        status = original(session)
        status["State"] = "NAPPING"
        return status

    monkeypatch.setattr(service, "_status", broken)
    with pytest.raises(EmulatorDriftError, match="GetSessionStatus"):
        client.get_session_status(SessionId=session_id)


def test_ids_fit_the_model(client: Any, emulator: Emulator) -> None:
    session_id = _start(client)
    _ready(emulator)
    calculation = client.start_calculation_execution(SessionId=session_id, CodeBlock="1")
    assert len(calculation["CalculationExecutionId"]) <= 36
    assert re.fullmatch(r"[0-9a-f-]{36}", session_id)


# ----------------------------------------------------------------------------- work groups


def test_work_groups_answer_like_the_service(emulator: Emulator, client: Any) -> None:
    primary = client.get_work_group(WorkGroup="primary")["WorkGroup"]
    assert primary["Configuration"]["EngineVersion"]["EffectiveEngineVersion"].startswith(
        "Athena engine"
    )
    emulator.athena.create_work_group("off", state="DISABLED", execution_role=ROLE)
    off = client.get_work_group(WorkGroup="off")["WorkGroup"]
    assert off["State"] == "DISABLED"
    assert off["Configuration"]["ExecutionRole"] == ROLE
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        client.get_work_group(WorkGroup="absent")
    assert _code(caught) == ("InvalidRequestException", 400)
    assert "absent is not found" in str(caught.value)


@pytest.mark.parametrize(
    ("work_group", "words"),
    [("absent", "not found"), ("off", "disabled"), ("primary", "not enabled for Apache Spark")],
)
def test_start_session_checks_the_work_group(
    emulator: Emulator, client: Any, work_group: str, words: str
) -> None:
    emulator.athena.create_work_group("off", state="DISABLED")
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        client.start_session(WorkGroup=work_group, EngineConfiguration={})
    assert _code(caught) == ("InvalidRequestException", 400)
    assert words in str(caught.value)
    assert emulator.athena.created() == 0


def test_notebook_version_and_id_go_together(client: Any) -> None:
    with pytest.raises(botocore.exceptions.ClientError, match="NotebookVersion is required"):
        _start(client, EngineConfiguration={"AdditionalConfigs": {"NotebookId": "nb"}})
    with pytest.raises(botocore.exceptions.ClientError, match="NotebookId is required"):
        _start(client, NotebookVersion="Athena notebook version 1")
    _start(
        client,
        NotebookVersion="Athena notebook version 1",
        EngineConfiguration={"AdditionalConfigs": {"NotebookId": "nb"}},
    )


# ----------------------------------------------------------------------------- timeline


def test_session_timeline_creating_created_idle(emulator: Emulator, client: Any) -> None:
    timeline = emulator.athena.timeline
    session_id = _start(client)
    seen = [_state(client, session_id)]
    for step in (timeline.creating, timeline.created):
        emulator.clock.advance(step)
        seen.append(_state(client, session_id))
    assert seen == ["CREATING", "CREATED", "IDLE"]
    record = client.get_session(SessionId=session_id)
    status = record["Status"]
    assert status["IdleSinceDateTime"] - status["StartDateTime"] == timedelta(
        seconds=timeline.creating + timeline.created
    )
    assert record["EngineVersion"] == "PySpark engine version 3"
    assert record["EngineConfiguration"] == {
        "CoordinatorDpuSize": 1,
        "DefaultExecutorDpuSize": 1,
        "MaxConcurrentDpus": 4,
    }
    assert record["SessionConfiguration"]["SessionIdleTimeoutInMinutes"] == 20


def test_busy_while_a_calculation_runs_and_dpu_time_grows(emulator: Emulator, client: Any) -> None:
    emulator.athena.timeline.calculation = 10
    session_id = _start(client)
    _ready(emulator)
    before = client.get_session(SessionId=session_id)["Statistics"]["DpuExecutionInMillis"]
    calc = client.start_calculation_execution(SessionId=session_id, CodeBlock="print('x')")
    calc_id = calc["CalculationExecutionId"]
    assert calc["State"] == "CREATING"
    assert _state(client, session_id) == "BUSY"
    emulator.clock.advance(1)
    assert _calc_state(client, calc_id) == "RUNNING"
    emulator.clock.advance(10)
    assert _calc_state(client, calc_id) == "COMPLETED"
    assert _state(client, session_id) == "IDLE"
    after = client.get_session(SessionId=session_id)["Statistics"]["DpuExecutionInMillis"]
    # 11 s of coordinator plus 10 s of one executor.
    assert after - before == 21_000
    result = client.get_calculation_execution(CalculationExecutionId=calc_id)["Result"]
    assert emulator.s3.read(result["StdOutS3Uri"]) == b"x"
    assert emulator.s3.read(result["StdErrorS3Uri"]) == b""


def test_calculations_queue_behind_each_other(emulator: Emulator, client: Any) -> None:
    emulator.athena.timeline.calculation = 10
    session_id = _start(client)
    _ready(emulator)
    first = client.start_calculation_execution(SessionId=session_id, CodeBlock="1")
    second = client.start_calculation_execution(SessionId=session_id, CodeBlock="2")
    emulator.clock.advance(1)
    assert _calc_state(client, first["CalculationExecutionId"]) == "RUNNING"
    assert _calc_state(client, second["CalculationExecutionId"]) == "QUEUED"
    client.stop_calculation_execution(CalculationExecutionId=first["CalculationExecutionId"])
    assert _calc_state(client, first["CalculationExecutionId"]) == "CANCELING"
    emulator.clock.advance(1)
    assert _calc_state(client, first["CalculationExecutionId"]) == "CANCELED"
    assert _calc_state(client, second["CalculationExecutionId"]) == "RUNNING"


def test_a_failing_calculation_reports_its_error(emulator: Emulator, client: Any) -> None:
    session_id = _start(client)
    _ready(emulator)
    calc = client.start_calculation_execution(SessionId=session_id, CodeBlock="undefined_name")
    emulator.clock.advance(5)
    record = client.get_calculation_execution(CalculationExecutionId=calc["CalculationExecutionId"])
    assert record["Status"]["State"] == "FAILED"
    assert record["Status"]["StateChangeReason"].startswith("NameError: ")
    stderr = emulator.s3.read(record["Result"]["StdErrorS3Uri"]).decode()
    assert "NameError" in stderr


def test_terminate_goes_through_terminating_and_fails_running_calculations(
    emulator: Emulator, client: Any
) -> None:
    emulator.athena.timeline.calculation = 100
    session_id = _start(client)
    _ready(emulator)
    calc = client.start_calculation_execution(SessionId=session_id, CodeBlock="1")
    emulator.clock.advance(1)
    assert client.terminate_session(SessionId=session_id)["State"] == "TERMINATING"
    assert emulator.athena.alive() == [session_id]
    assert _calc_state(client, calc["CalculationExecutionId"]) == "FAILED"
    emulator.clock.advance(emulator.athena.timeline.terminating)
    status = client.get_session_status(SessionId=session_id)["Status"]
    assert status["State"] == "TERMINATED"
    assert "EndDateTime" in status
    assert emulator.athena.alive() == []
    # Terminating an ended session succeeds and changes nothing (documented).
    assert client.terminate_session(SessionId=session_id)["State"] == "TERMINATED"
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        client.start_calculation_execution(SessionId=session_id, CodeBlock="1")
    assert _code(caught) == ("InvalidRequestException", 400)


def test_idle_timeout_terminates_with_a_reason(emulator: Emulator, client: Any) -> None:
    session_id = _start(client, SessionIdleTimeoutInMinutes=5)
    _ready(emulator)
    emulator.clock.advance(5 * 60 - 1)
    assert _state(client, session_id) == "IDLE"
    emulator.clock.advance(1)
    status = client.get_session_status(SessionId=session_id)["Status"]
    assert status["State"] == "TERMINATED"
    assert "idle" in status["StateChangeReason"]


def test_scripted_and_injected_failures(emulator: Emulator, client: Any) -> None:
    service = emulator.athena
    service.script_next("DEGRADED", after=4, reason="No healthy coordinators")
    service.script_next("FAILED", after=1, reason="No capacity")
    degraded = _start(client)
    failed = _start(client)
    plain = _start(client)
    emulator.clock.advance(4)
    status = client.get_session_status(SessionId=degraded)["Status"]
    assert (status["State"], status["StateChangeReason"]) == ("DEGRADED", "No healthy coordinators")
    assert degraded in service.alive()
    status = client.get_session_status(SessionId=failed)["Status"]
    assert (status["State"], status["StateChangeReason"]) == ("FAILED", "No capacity")
    assert _state(client, plain) == "CREATED"
    service.fail(plain, "Driver lost")
    assert (
        client.get_session_status(SessionId=plain)["Status"]["StateChangeReason"] == "Driver lost"
    )
    assert _state(client, failed) == "FAILED"
    other = _start(client)
    _ready(emulator)
    service.degrade(other, "Coordinator lost")
    assert client.get_session_status(SessionId=other)["Status"]["State"] == "DEGRADED"
    assert other in service.alive()
    with pytest.raises(ValueError):
        service.script_next("IDLE")


# ----------------------------------------------------------------------------- idempotency, lists


def test_client_request_token_is_idempotent(emulator: Emulator, client: Any) -> None:
    token = "b" * 32
    first = _start(client, token=token)
    assert _start(client, token=token) == first
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        _start(client, token=token, Description="changed")
    assert _code(caught) == ("SessionAlreadyExistsException", 400)
    assert emulator.athena.created() == 1


def test_list_sessions_filters_and_pages_newest_first(emulator: Emulator, client: Any) -> None:
    ids = [_start(client) for _ in range(5)]
    _ready(emulator)
    client.terminate_session(SessionId=ids[0])
    first = client.list_sessions(WorkGroup=DEFAULT_WORK_GROUP, MaxResults=3)
    assert [s["SessionId"] for s in first["Sessions"]] == ids[::-1][:3]
    second = client.list_sessions(
        WorkGroup=DEFAULT_WORK_GROUP, MaxResults=3, NextToken=first["NextToken"]
    )
    assert [s["SessionId"] for s in second["Sessions"]] == ids[::-1][3:]
    assert "NextToken" not in second
    idle = client.list_sessions(WorkGroup=DEFAULT_WORK_GROUP, StateFilter="IDLE")
    assert {s["SessionId"] for s in idle["Sessions"]} == set(ids[1:])
    emulator.athena.create_work_group("other")
    assert client.list_sessions(WorkGroup="other")["Sessions"] == []


# ----------------------------------------------------------------------------- endpoints, errors


def test_endpoints_only_on_spark_connect_and_calculations_only_on_pyspark(
    emulator: Emulator, client: Any
) -> None:
    emulator.athena.create_work_group("connect", engine=SPARK_CONNECT_ENGINE)
    pyspark = _start(client)
    connect = client.start_session(WorkGroup="connect", EngineConfiguration={})["SessionId"]
    _ready(emulator)
    endpoint = client.get_session_endpoint(SessionId=connect)
    assert endpoint["EndpointUrl"].startswith("https://")
    assert endpoint["AuthTokenExpirationTime"] > emulator.clock.now() + timedelta(minutes=59)
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        client.get_session_endpoint(SessionId=pyspark)
    assert _code(caught) == ("InvalidRequestException", 400)
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        client.start_calculation_execution(SessionId=connect, CodeBlock="1")
    assert _code(caught) == ("InvalidRequestException", 400)


def test_validation_throttling_and_server_errors(emulator: Emulator, client: Any) -> None:
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        _start(client, SessionIdleTimeoutInMinutes=481)
    assert _code(caught) == ("InvalidRequestException", 400)
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        client.get_session(SessionId="missing")
    assert _code(caught) == ("ResourceNotFoundException", 400)
    emulator.inject("throttle", service="athena", count=1)
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        client.list_sessions(WorkGroup=DEFAULT_WORK_GROUP)
    assert _code(caught) == ("TooManyRequestsException", 400)
    emulator.inject("server_error", service="athena", count=1)
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        client.list_sessions(WorkGroup=DEFAULT_WORK_GROUP)
    assert _code(caught) == ("InternalServerException", 500)
    assert emulator.athena.created() == 0

"""The emulated Glue, and the emulator's wire layer, faults and clock."""

from __future__ import annotations

import contextlib
from typing import Any

import botocore.exceptions
import botocore.session
import pytest

from sessionkit.backends.aws.common import check_shape
from sessionkit.testing import Emulator, EmulatorDriftError, VirtualClock
from tests.conftest import ROLE

_MODEL = botocore.session.get_session().get_service_model("glue")
_OPERATIONS = [
    "CreateSession",
    "GetSession",
    "ListSessions",
    "RunStatement",
    "GetStatement",
    "CancelStatement",
    "GetSessionEndpoint",
    "StopSession",
    "DeleteSession",
]


def _raw(response: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in response.items() if k != "ResponseMetadata"}


def _code(caught: pytest.ExceptionInfo[botocore.exceptions.ClientError]) -> str:
    code: str = caught.value.response["Error"]["Code"]
    return code


def test_every_operation_answers_within_its_output_shape(emulator: Emulator) -> None:
    glue = emulator.client("glue")
    responses: dict[str, Any] = {}
    responses["CreateSession"] = glue.create_session(
        Id="s1",
        Role=ROLE,
        Command={"Name": "glueetl", "PythonVersion": "3"},
        Tags={"a": "b"},
        SessionType="SPARK_CONNECT",
    )
    responses["GetSession"] = glue.get_session(Id="s1")
    emulator.clock.advance(10)
    responses["ListSessions"] = glue.list_sessions()
    responses["RunStatement"] = glue.run_statement(SessionId="s1", Code="print(1)")
    responses["GetStatement"] = glue.get_statement(SessionId="s1", Id=0)
    emulator.clock.advance(5)
    responses["GetStatement"] = glue.get_statement(SessionId="s1", Id=0)
    responses["CancelStatement"] = glue.cancel_statement(SessionId="s1", Id=0)
    responses["GetSessionEndpoint"] = glue.get_session_endpoint(SessionId="s1")
    responses["StopSession"] = glue.stop_session(Id="s1")
    emulator.clock.advance(10)
    responses["DeleteSession"] = glue.delete_session(Id="s1")
    assert set(responses) == set(_OPERATIONS)
    for name, response in responses.items():
        shape = _MODEL.operation_model(name).output_shape
        problems = [
            p for p in check_shape(_raw(response), shape) if p[0] != "Statement.Output.Status"
        ]
        assert problems == [], name
    assert responses["GetStatement"]["Statement"]["Output"]["Status"] == "ok"
    assert responses["GetStatement"]["Statement"]["Output"]["Data"]["TextPlain"] == "1"


def test_timeline_provisioning_ready_stopping_stopped(emulator: Emulator) -> None:
    glue = emulator.client("glue")
    glue.create_session(Id="s", Role=ROLE, Command={"Name": "glueetl"})
    assert glue.get_session(Id="s")["Session"]["Status"] == "PROVISIONING"
    emulator.clock.advance(emulator.glue.timeline.provisioning)
    assert glue.get_session(Id="s")["Session"]["Status"] == "READY"
    glue.stop_session(Id="s")
    assert glue.get_session(Id="s")["Session"]["Status"] == "STOPPING"
    emulator.clock.advance(emulator.glue.timeline.stopping)
    record = glue.get_session(Id="s")["Session"]
    assert record["Status"] == "STOPPED" and "CompletedOn" in record
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        glue.stop_session(Id="s")
    assert _code(caught) == "IllegalSessionStateException"


def test_idle_timeout_and_max_duration(emulator: Emulator) -> None:
    glue = emulator.client("glue")
    glue.create_session(Id="idle", Role=ROLE, Command={"Name": "glueetl"}, IdleTimeout=2)
    glue.create_session(Id="long", Role=ROLE, Command={"Name": "glueetl"}, Timeout=3)
    emulator.clock.advance(emulator.glue.timeline.provisioning + 121)
    idle = glue.get_session(Id="idle")["Session"]
    assert idle["Status"] == "STOPPED" and "idle" in idle["ErrorMessage"]
    glue.run_statement(SessionId="long", Code="1")
    emulator.clock.advance(180)
    assert glue.get_session(Id="long")["Session"]["Status"] == "TIMEOUT"


def test_scripted_and_injected_failures(emulator: Emulator) -> None:
    glue = emulator.client("glue")
    emulator.glue.script_next("FAILED", after=2, reason="No capacity")
    glue.create_session(Id="f", Role=ROLE, Command={"Name": "glueetl"})
    emulator.clock.advance(2)
    record = glue.get_session(Id="f")["Session"]
    assert (record["Status"], record["ErrorMessage"]) == ("FAILED", "No capacity")
    glue.create_session(Id="g", Role=ROLE, Command={"Name": "glueetl"})
    emulator.glue.fail("g", "boom")
    assert glue.get_session(Id="g")["Session"]["Status"] == "FAILED"
    with pytest.raises(ValueError):
        emulator.glue.script_next("READY")


def test_service_errors_and_validation(emulator: Emulator) -> None:
    glue = emulator.client("glue")
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        glue.get_session(Id="missing")
    assert _code(caught) == "EntityNotFoundException"
    assert caught.value.response["ResponseMetadata"]["RequestId"]
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        glue.create_session(Id="t", Role=ROLE, Command={}, Tags={f"k{i}": "v" for i in range(51)})
    assert _code(caught) == "InvalidInputException"
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        glue.create_session(
            Id="w", Role=ROLE, Command={}, MaxCapacity=2.0, NumberOfWorkers=2, WorkerType="G.1X"
        )
    assert _code(caught) == "InvalidInputException"
    glue.create_session(Id="busy", Role=ROLE, Command={})
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        glue.run_statement(SessionId="busy", Code="1")
    assert _code(caught) == "IllegalSessionStateException"


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        ("throttle", "ThrottlingException"),
        ("server_error", "InternalServiceException"),
    ],
)
def test_fault_answers(emulator: Emulator, kind: str, error: str) -> None:
    fault = emulator.inject(kind, service="glue", operations="ListSessions", count=1)  # type: ignore[arg-type]
    glue = emulator.client("glue")
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        glue.list_sessions()
    assert _code(caught) == error
    assert glue.list_sessions()["Ids"] == []
    assert fault.hits == 1
    assert [c.outcome for c in emulator.calls] == [error, "ok"]


def test_connection_and_read_timeout_faults(emulator: Emulator) -> None:
    glue = emulator.client("glue")
    emulator.inject("connection_error", operations="ListSessions", count=1)
    with pytest.raises(botocore.exceptions.EndpointConnectionError):
        glue.list_sessions()
    emulator.inject("read_timeout", operations="CreateSession", count=1)
    with pytest.raises(botocore.exceptions.ReadTimeoutError):
        glue.create_session(Id="lost", Role=ROLE, Command={})
    # The request was processed although its answer was lost.
    assert glue.get_session(Id="lost")["Session"]["Id"] == "lost"


def test_latency_advances_virtual_time(emulator: Emulator) -> None:
    emulator.inject("latency", latency=7.5, count=1)
    before = emulator.clock.monotonic()
    emulator.client("glue").list_sessions()
    assert emulator.clock.monotonic() - before == pytest.approx(7.5)


def test_fault_rate_is_reproducible() -> None:
    def hits(seed: int) -> list[str]:
        emulator = Emulator(seed=seed)
        emulator.inject("throttle", rate=0.3)
        glue = emulator.client("glue")
        for _ in range(40):
            with contextlib.suppress(botocore.exceptions.ClientError):
                glue.list_sessions()
        return [c.outcome for c in emulator.calls]

    first = hits(7)
    assert first == hits(7)
    assert 4 <= first.count("ThrottlingException") <= 24


def test_drift_is_caught(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    glue = emulator.glue
    monkeypatch.setattr(
        type(glue), "op_list_sessions", lambda self, params: {"Ids": [], "Extra": 1}
    )
    with pytest.raises(EmulatorDriftError, match="Extra"):
        emulator.client("glue").list_sessions()


def test_boto3_session_clients_share_the_emulator(emulator: Emulator) -> None:
    session = emulator.boto3_session()
    session.client("glue").create_session(Id="x", Role=ROLE, Command={})
    assert emulator.client("glue").get_session(Id="x")["Session"]["Id"] == "x"
    assert emulator.created_sessions() == {"glue": 1}
    assert emulator.alive_sessions() == {"glue": ["x"]}


def test_unemulated_service_answers_an_error(emulator: Emulator) -> None:
    iam = emulator.client("iam")
    with pytest.raises(NotImplementedError, match="does not emulate iam"):
        iam.get_user()


def test_virtual_clock() -> None:
    clock = VirtualClock()
    start = clock.now()
    clock.sleep(30)
    clock.advance(30)
    assert clock.monotonic() == 60
    assert (clock.now() - start).total_seconds() == 60
    with pytest.raises(ValueError):
        clock.advance(-1)


def test_livy_sessions_have_no_endpoint(emulator: Emulator) -> None:
    glue = emulator.client("glue")
    glue.create_session(Id="livy", Role=ROLE, Command={})
    emulator.clock.advance(10)
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        glue.get_session_endpoint(SessionId="livy")
    assert _code(caught) == "OperationNotSupportedException"


def test_script_next_names_the_states_it_takes(emulator: Emulator) -> None:
    with pytest.raises(ValueError, match="FAILED, TIMEOUT, STOPPED"):
        emulator.glue.script_next("READY")
    with pytest.raises(ValueError, match="FAILED, TERMINATED"):
        emulator.emr_serverless.script_next("IDLE")

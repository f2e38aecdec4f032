"""The emulator behaves like the services where third-party clients rely on it (issue 10).

Interpreter state between statements, Glue's CANCELLING, the values the services fill by
default, Glue ListStatements and tagging, STS GetCallerIdentity, Athena calculation
``Description`` and ``ResultType``. Every answer is also checked against botocore's output
shape by the emulator itself.
"""

from __future__ import annotations

from typing import Any

import botocore.exceptions
import pytest

import sessionkit
from sessionkit import Workers
from sessionkit.testing import Emulator

ROLE = "arn:aws:iam::123456789012:role/SessionkitFidelity"


@pytest.fixture
def emulator() -> Emulator:
    return Emulator()


def _glue_session(glue: Any, session_id: str = "s1", **extra: Any) -> None:
    glue.create_session(Id=session_id, Role=ROLE, Command={"Name": "glueetl"}, **extra)


def _wait_ready(emulator: Emulator) -> None:
    emulator.clock.advance(60)


# ----------------------------------------------------------------------------- interpreter state


@pytest.mark.parametrize("backend", ["glue", "athena"])
def test_each_session_keeps_its_interpreter_state(emulator: Emulator, backend: str) -> None:
    keywords = {**emulator.keywords(backend), "poll_policy": emulator.poll_policy()}
    role = {"role": emulator.role(backend)} if backend == "glue" else {}
    with (
        sessionkit.open_session(backend, **keywords, **role) as first,
        sessionkit.open_session(backend, **keywords, **role) as second,
    ):
        first.run("x = 1")
        assert first.run("x + 1").output == "2"
        first.run("def double(v):\n    return 2 * v")
        assert first.run("double(x + 1)").output == "4"
        # Another session is another interpreter.
        with pytest.raises(sessionkit.StatementFailedError) as caught:
            second.run("x")
        assert caught.value.result.error_name == "NameError"


# ----------------------------------------------------------------------------- glue


def test_a_cancelled_glue_statement_passes_through_cancelling(emulator: Emulator) -> None:
    glue = emulator.client("glue")
    _glue_session(glue)
    _wait_ready(emulator)
    statement = glue.run_statement(SessionId="s1", Code="1 + 1")["Id"]
    glue.cancel_statement(SessionId="s1", Id=statement)
    first = glue.get_statement(SessionId="s1", Id=statement)["Statement"]
    assert first["State"] == "CANCELLING"
    emulator.clock.advance(emulator.glue.timeline.cancelling)
    assert glue.get_statement(SessionId="s1", Id=statement)["Statement"]["State"] == "CANCELLED"


def test_glue_fills_the_default_values(emulator: Emulator) -> None:
    glue = emulator.client("glue")
    _glue_session(glue)
    record = glue.get_session(Id="s1")["Session"]
    assert record["WorkerType"] == "G.1X"
    assert record["NumberOfWorkers"] == 5
    assert record["GlueVersion"] == "5.0"
    assert record["SessionType"] == "LIVY"
    assert record["IdleTimeout"] == 2880
    _glue_session(glue, "s2", MaxCapacity=2.0, GlueVersion="4.0")
    sized = glue.get_session(Id="s2")["Session"]
    assert sized["MaxCapacity"] == 2.0
    assert sized["GlueVersion"] == "4.0"
    assert "WorkerType" not in sized and "NumberOfWorkers" not in sized


def test_what_the_request_sets_wins_over_the_defaults(emulator: Emulator) -> None:
    keywords = {**emulator.keywords("glue"), "poll_policy": emulator.poll_policy()}
    with sessionkit.open_session(
        "glue", role=ROLE, workers=Workers(count=2, type="G.2X"), spark_connect=True, **keywords
    ) as session:
        raw = session.refresh().raw
        assert (raw["WorkerType"], raw["NumberOfWorkers"], raw["SessionType"]) == (
            "G.2X",
            2,
            "SPARK_CONNECT",
        )


def test_glue_list_statements(emulator: Emulator) -> None:
    glue = emulator.client("glue")
    _glue_session(glue)
    _wait_ready(emulator)
    for code in ("a = 20", "a + 22"):
        glue.run_statement(SessionId="s1", Code=code)
    emulator.clock.advance(10)
    statements = glue.list_statements(SessionId="s1")["Statements"]
    assert [(s["Id"], s["Code"], s["State"]) for s in statements] == [
        (0, "a = 20", "AVAILABLE"),
        (1, "a + 22", "AVAILABLE"),
    ]
    assert statements[1]["Output"]["Data"]["TextPlain"] == "42"
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        glue.list_statements(SessionId="nope")
    assert caught.value.response["Error"]["Code"] == "EntityNotFoundException"


def test_glue_tags(emulator: Emulator) -> None:
    glue = emulator.client("glue")
    _glue_session(glue, Tags={"team": "data"})
    arn = emulator.glue.session_arn("s1")
    assert arn == "arn:aws:glue:us-east-1:123456789012:session/s1"
    assert glue.get_tags(ResourceArn=arn)["Tags"] == {"team": "data"}
    glue.tag_resource(ResourceArn=arn, TagsToAdd={"owner": "me"})
    glue.untag_resource(ResourceArn=arn, TagsToRemove=["team"])
    assert glue.get_tags(ResourceArn=arn)["Tags"] == {"owner": "me"}
    # ListSessions filters on the tags as they are now.
    assert glue.list_sessions(Tags={"owner": "me"})["Ids"] == ["s1"]
    assert glue.list_sessions(Tags={"team": "data"})["Ids"] == []
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        glue.get_tags(ResourceArn=emulator.glue.session_arn("nope"))
    assert caught.value.response["Error"]["Code"] == "EntityNotFoundException"


# ----------------------------------------------------------------------------- athena


def test_athena_calculations_keep_description_and_report_result_type(
    emulator: Emulator,
) -> None:
    athena = emulator.client("athena")
    work_group = emulator.athena.create_work_group("fidelity")
    session = athena.start_session(
        WorkGroup=work_group,
        EngineConfiguration={"MaxConcurrentDpus": 4},
    )["SessionId"]
    emulator.clock.advance(60)
    calculation = athena.start_calculation_execution(
        SessionId=session, CodeBlock="print(6 * 7)", Description="the answer"
    )["CalculationExecutionId"]
    emulator.clock.advance(60)
    record = athena.get_calculation_execution(CalculationExecutionId=calculation)
    assert record["Description"] == "the answer"
    assert record["Status"]["State"] == "COMPLETED"
    assert record["Result"]["ResultType"] == "application/json"


# ----------------------------------------------------------------------------- sts


def test_sts_get_caller_identity(emulator: Emulator) -> None:
    identity = emulator.client("sts").get_caller_identity()
    assert identity["Account"] == emulator.account_id
    assert identity["Arn"] == f"arn:aws:iam::{emulator.account_id}:user/sessionkit-emulator"
    assert identity["UserId"].startswith("AIDA")


def test_an_sts_operation_it_does_not_emulate_answers_like_sts(emulator: Emulator) -> None:
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        emulator.client("sts").get_session_token()
    assert caught.value.response["Error"]["Code"] == "InvalidAction"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


# ----------------------------------------------------------------------------- emr


def test_emr_describe_cluster_and_sessions_fit_the_model(emulator: Emulator) -> None:
    emr = emulator.client("emr")
    cluster_id = emulator.service("emr").create_cluster("fidelity")  # type: ignore[attr-defined]
    cluster = emr.describe_cluster(ClusterId=cluster_id)["Cluster"]
    assert cluster["Status"]["State"] == "WAITING"
    assert cluster["SessionEnabled"] is True
    started = emr.start_session(ClusterId=cluster_id, ClientRequestToken="t" * 36)
    assert started["State"] == "SUBMITTED"
    emulator.clock.advance(60)
    session = emr.get_session(ClusterId=cluster_id, SessionId=started["Id"])["Session"]
    assert session["State"] == "IDLE"
    assert session["SessionIdleTimeoutInMinutes"] == 60
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        emr.describe_cluster(ClusterId="j-NOSUCH")
    assert caught.value.response["Error"]["Code"] == "InvalidRequestException"

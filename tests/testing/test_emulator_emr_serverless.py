"""The emulated EMR Serverless: wire format, output shapes, timelines, idempotency, errors."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import botocore.exceptions
import botocore.session
import pytest

from sessionkit.backends.aws.common import check_shape
from sessionkit.testing import Emulator, EmulatorDriftError
from sessionkit.testing.aws.emr_serverless import EmrServerlessService
from tests.conftest import ROLE

_MODEL = botocore.session.get_session().get_service_model("emr-serverless")


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


@pytest.fixture
def client(emulator: Emulator) -> Any:
    return emulator.client("emr-serverless")


@pytest.fixture
def app(emulator: Emulator) -> str:
    application: str = emulator.emr_serverless.create_application(name="emulated")
    return application


def _start(client: Any, app: str, token: str = "t1", **extra: Any) -> str:
    response = client.start_session(
        applicationId=app, clientToken=token, executionRoleArn=ROLE, **extra
    )
    session_id: str = response["sessionId"]
    return session_id


def _state(client: Any, app: str, session_id: str) -> str:
    state: str = client.get_session(applicationId=app, sessionId=session_id)["session"]["state"]
    return state


def _raw(response: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in response.items() if k != "ResponseMetadata"}


def _code(error: pytest.ExceptionInfo[botocore.exceptions.ClientError]) -> tuple[str, int]:
    response = error.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


# ----------------------------------------------------------------------------- shapes


def test_every_operation_answers_inside_its_output_shape(
    emulator: Emulator, client: Any, app: str
) -> None:
    stopped = emulator.emr_serverless.create_application(state="STOPPED")
    session_id = _start(
        client,
        app,
        name="nb",
        idleTimeoutMinutes=30,
        tags={"team": "data"},
        configurationOverrides={
            "runtimeConfiguration": [
                {"classification": "spark-defaults", "properties": {"spark.a": "1"}}
            ]
        },
    )
    emulator.clock.advance(120)
    responses = {
        "GetApplication": client.get_application(applicationId=app),
        "StartApplication": client.start_application(applicationId=stopped),
        "GetSession": client.get_session(applicationId=app, sessionId=session_id),
        "ListSessions": client.list_sessions(applicationId=app, states=["IDLE"], maxResults=5),
        "GetSessionEndpoint": client.get_session_endpoint(applicationId=app, sessionId=session_id),
        "TerminateSession": client.terminate_session(applicationId=app, sessionId=session_id),
    }
    responses["StartSession"] = client.start_session(
        applicationId=app, clientToken="t2", executionRoleArn=ROLE
    )
    for operation, response in responses.items():
        shape = _MODEL.operation_model(operation).output_shape
        assert check_shape(_raw(response), shape) == [], operation
    # Every operation the emulated service implements was exercised above.
    implemented = {name[3:] for name in dir(EmrServerlessService) if name.startswith("op_")}
    assert implemented == {_snake(op) for op in responses}
    assert all(c.outcome == "ok" for c in emulator.calls)


def test_a_response_outside_the_shape_is_a_drift_error(
    emulator: Emulator, client: Any, app: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    session_id = _start(client, app)
    service = emulator.emr_serverless
    original = service._summary

    def broken(session: Any) -> dict[str, Any]:
        record = original(session)
        record["state"] = "SLEEPING"
        return record

    monkeypatch.setattr(service, "_summary", broken)
    with pytest.raises(EmulatorDriftError, match="GetSession"):
        client.get_session(applicationId=app, sessionId=session_id)


def test_arns_and_ids_match_the_model_patterns(emulator: Emulator, client: Any, app: str) -> None:
    session_id = _start(client, app)
    record = client.get_session(applicationId=app, sessionId=session_id)["session"]
    session_arn = _MODEL.shape_for("SessionArn").metadata["pattern"]
    app_arn = _MODEL.shape_for("ApplicationArn").metadata["pattern"]
    assert re.fullmatch(session_arn, record["arn"])
    assert record["arn"].endswith(f"/applications/{app}/sessions/{session_id}")
    application = client.get_application(applicationId=app)["application"]
    assert re.fullmatch(app_arn, application["arn"])
    assert re.fullmatch(r"[0-9a-z]+", app) and re.fullmatch(r"[0-9a-z]+", session_id)


# ----------------------------------------------------------------------------- timeline


def test_session_timeline_submitted_starting_started_idle(
    emulator: Emulator, client: Any, app: str
) -> None:
    timeline = emulator.emr_serverless.timeline
    session_id = _start(client, app)
    seen = [_state(client, app, session_id)]
    for step in (timeline.submitted, timeline.starting, timeline.idle_after):
        emulator.clock.advance(step)
        seen.append(_state(client, app, session_id))
    assert seen == ["SUBMITTED", "STARTING", "STARTED", "IDLE"]
    record = client.get_session(applicationId=app, sessionId=session_id)["session"]
    assert record["startedAt"] - record["createdAt"] == timedelta(
        seconds=timeline.submitted + timeline.starting
    )
    assert record["idleSince"] - record["startedAt"] == timedelta(seconds=timeline.idle_after)


def test_terminate_goes_through_terminating(emulator: Emulator, client: Any, app: str) -> None:
    session_id = _start(client, app)
    emulator.clock.advance(30)
    client.terminate_session(applicationId=app, sessionId=session_id)
    assert _state(client, app, session_id) == "TERMINATING"
    assert emulator.emr_serverless.alive() == [session_id]
    emulator.clock.advance(emulator.emr_serverless.timeline.terminating)
    record = client.get_session(applicationId=app, sessionId=session_id)["session"]
    assert record["state"] == "TERMINATED"
    assert "endedAt" in record
    assert emulator.emr_serverless.alive() == []
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        client.terminate_session(applicationId=app, sessionId=session_id)
    assert _code(caught) == ("ValidationException", 400)


def test_idle_timeout_terminates_with_state_details(
    emulator: Emulator, client: Any, app: str
) -> None:
    session_id = _start(client, app, idleTimeoutMinutes=5)
    emulator.clock.advance(8 + 5 * 60 - 1)
    assert _state(client, app, session_id) == "IDLE"
    emulator.clock.advance(1)
    record = client.get_session(applicationId=app, sessionId=session_id)["session"]
    assert record["state"] == "TERMINATED"
    assert "idle" in record["stateDetails"]


def test_busy_work_delays_idle_and_the_idle_timeout(
    emulator: Emulator, client: Any, app: str
) -> None:
    session_id = _start(client, app, idleTimeoutMinutes=1)
    emulator.clock.advance(10)
    emulator.emr_serverless.busy(session_id, 120)
    emulator.clock.advance(100)
    assert _state(client, app, session_id) == "BUSY"
    emulator.clock.advance(20)
    assert _state(client, app, session_id) == "IDLE"
    emulator.clock.advance(60)
    assert _state(client, app, session_id) == "TERMINATED"


def test_scripted_and_injected_failures(emulator: Emulator, client: Any, app: str) -> None:
    service = emulator.emr_serverless
    service.script_next("FAILED", after=4, reason="No capacity in the subnet")
    scripted = _start(client, app, token="a")
    plain = _start(client, app, token="b")
    emulator.clock.advance(4)
    record = client.get_session(applicationId=app, sessionId=scripted)["session"]
    assert (record["state"], record["stateDetails"]) == ("FAILED", "No capacity in the subnet")
    assert _state(client, app, plain) == "STARTING"
    service.fail(plain, "Driver lost")
    record = client.get_session(applicationId=app, sessionId=plain)["session"]
    assert (record["state"], record["stateDetails"]) == ("FAILED", "Driver lost")
    with pytest.raises(ValueError):
        service.script_next("IDLE")


def test_usage_grows_with_time_and_billing_has_a_minimum(
    emulator: Emulator, client: Any, app: str
) -> None:
    session_id = _start(client, app)
    record = client.get_session(applicationId=app, sessionId=session_id)["session"]
    assert "totalResourceUtilization" not in record  # nothing used before it started
    emulator.clock.advance(6 + 10)
    early = client.get_session(applicationId=app, sessionId=session_id)["session"]
    assert early["totalExecutionDurationSeconds"] == 10
    assert (
        early["billedResourceUtilization"]["vCPUHour"]
        > early["totalResourceUtilization"]["vCPUHour"]
    )
    emulator.clock.advance(3600)
    later = client.get_session(applicationId=app, sessionId=session_id)["session"]
    timeline = emulator.emr_serverless.timeline
    hours = later["totalExecutionDurationSeconds"] / 3600
    assert later["totalResourceUtilization"]["vCPUHour"] == pytest.approx(timeline.vcpus * hours)
    assert later["billedResourceUtilization"] == later["totalResourceUtilization"]


def test_endpoint_has_a_token_expiring_on_the_virtual_clock(
    emulator: Emulator, client: Any, app: str
) -> None:
    session_id = _start(client, app)
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        client.get_session_endpoint(applicationId=app, sessionId=session_id)
    assert _code(caught)[0] == "ValidationException"
    emulator.clock.advance(10)
    endpoint = client.get_session_endpoint(applicationId=app, sessionId=session_id)
    assert endpoint["authToken"]
    expected = emulator.clock.now() + timedelta(seconds=emulator.emr_serverless.timeline.token_ttl)
    assert abs(endpoint["authTokenExpiresAt"] - expected) < timedelta(seconds=1)
    emulator.emr_serverless.endpoint_url = "sc://localhost:15002"
    again = client.get_session_endpoint(applicationId=app, sessionId=session_id)
    assert again["endpoint"] == "sc://localhost:15002"
    assert again["authToken"] != endpoint["authToken"]


# ----------------------------------------------------------------------------- applications


def test_start_application_moves_to_started_on_the_clock(emulator: Emulator, client: Any) -> None:
    service = emulator.emr_serverless
    app = service.create_application(state="STOPPED", auto_start=False)
    client.start_application(applicationId=app)
    assert client.get_application(applicationId=app)["application"]["state"] == "STARTING"
    emulator.clock.advance(service.timeline.application_starting)
    assert client.get_application(applicationId=app)["application"]["state"] == "STARTED"


def test_auto_start_starts_the_application_and_the_session_waits(
    emulator: Emulator, client: Any
) -> None:
    service = emulator.emr_serverless
    app = service.create_application(state="CREATED", auto_start=True)
    session_id = _start(client, app)
    assert service.application_state(app) == "STARTING"
    emulator.clock.advance(service.timeline.application_starting)
    assert _state(client, app, session_id) == "SUBMITTED"
    emulator.clock.advance(service.timeline.submitted)
    assert _state(client, app, session_id) == "STARTING"


def test_application_settings_are_reported(emulator: Emulator, client: Any) -> None:
    app = emulator.emr_serverless.create_application(
        name="x", state="STOPPED", session_enabled=False, auto_start=False
    )
    application = client.get_application(applicationId=app)["application"]
    assert application["state"] == "STOPPED"
    assert application["interactiveConfiguration"]["sessionEnabled"] is False
    assert application["autoStartConfiguration"]["enabled"] is False


@pytest.mark.parametrize(
    ("settings", "code", "status"),
    [
        ({"session_enabled": False}, "ValidationException", 400),
        ({"state": "STOPPED", "auto_start": False}, "ConflictException", 409),
        ({"state": "TERMINATED"}, "ValidationException", 400),
    ],
)
def test_start_session_refused_by_the_application(
    emulator: Emulator, client: Any, settings: dict[str, Any], code: str, status: int
) -> None:
    app = emulator.emr_serverless.create_application(**settings)
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        _start(client, app)
    assert _code(caught) == (code, status)
    assert emulator.emr_serverless.created() == 0


def test_unknown_application_and_session_are_not_found(
    emulator: Emulator, client: Any, app: str
) -> None:
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        client.get_application(applicationId="0000000000000000")
    assert _code(caught) == ("ResourceNotFoundException", 404)
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        client.get_session(applicationId=app, sessionId="nosuchsession")
    assert _code(caught) == ("ResourceNotFoundException", 404)
    other = emulator.emr_serverless.create_application()
    session_id = _start(client, app)
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        client.get_session(applicationId=other, sessionId=session_id)
    assert _code(caught)[0] == "ResourceNotFoundException"


# ----------------------------------------------------------------------------- idempotency


def test_same_client_token_returns_the_same_session(
    emulator: Emulator, client: Any, app: str
) -> None:
    first = _start(client, app, token="same", name="nb")
    second = _start(client, app, token="same", name="nb")
    assert first == second
    assert emulator.emr_serverless.created() == 1
    assert len(client.list_sessions(applicationId=app)["sessions"]) == 1
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        _start(client, app, token="same", name="other")
    assert _code(caught) == ("ConflictException", 409)
    assert emulator.emr_serverless.created() == 1


def test_a_lost_answer_still_creates_the_session(emulator: Emulator, client: Any, app: str) -> None:
    emulator.inject("read_timeout", service="emr-serverless", operations="StartSession", count=1)
    with pytest.raises(botocore.exceptions.ReadTimeoutError):
        _start(client, app, token="lost")
    assert emulator.emr_serverless.created() == 1
    session_id = _start(client, app, token="lost")
    assert emulator.emr_serverless.alive() == [session_id]
    assert emulator.emr_serverless.created() == 1


# ----------------------------------------------------------------------------- faults and lists


def test_throttling_and_server_errors_use_the_service_codes(
    emulator: Emulator, client: Any, app: str
) -> None:
    emulator.inject("throttle", service="emr-serverless", operations="GetApplication", count=1)
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        client.get_application(applicationId=app)
    assert _code(caught) == ("ThrottlingException", 429)
    emulator.inject("server_error", service="emr-serverless", operations="GetApplication", count=1)
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        client.get_application(applicationId=app)
    assert _code(caught) == ("InternalServerException", 500)
    assert client.get_application(applicationId=app)["application"]["applicationId"] == app


def test_malformed_input_is_a_validation_error(emulator: Emulator, app: str) -> None:
    # botocore validates parameters itself; switch that off to reach the emulator's check.
    from botocore.config import Config

    raw = emulator.client(
        "emr-serverless",
        config=Config(parameter_validation=False, retries={"total_max_attempts": 1}),
    )
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        raw.start_session(applicationId=app, clientToken="t", executionRoleArn="not-an-arn")
    assert _code(caught) == ("ValidationException", 400)


def test_list_pages_and_filters_by_state(emulator: Emulator, client: Any, app: str) -> None:
    ids = [_start(client, app, token=f"t{i}") for i in range(7)]
    emulator.clock.advance(60)
    for session_id in ids[:2]:
        client.terminate_session(applicationId=app, sessionId=session_id)
    seen: list[str] = []
    pages = 0
    token: str | None = None
    while True:
        kwargs: dict[str, Any] = {"applicationId": app, "maxResults": 3, "states": ["IDLE"]}
        if token:
            kwargs["nextToken"] = token
        page = client.list_sessions(**kwargs)
        pages += 1
        seen += [s["sessionId"] for s in page["sessions"]]
        assert all(s["state"] == "IDLE" for s in page["sessions"])
        token = page.get("nextToken")
        if not token:
            break
    assert seen == ids[2:]
    assert pages == 2
    terminating = client.list_sessions(applicationId=app, states=["TERMINATING"])["sessions"]
    assert [s["sessionId"] for s in terminating] == ids[:2]
    assert len(client.list_sessions(applicationId=app)["sessions"]) == 7

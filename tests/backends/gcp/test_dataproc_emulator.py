"""The emulated Dataproc sessions API, through a real SessionControllerClient and answer()."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from google.api_core import exceptions as api_exceptions
from google.cloud import dataproc_v1

from sessionkit.testing import Emulator
from sessionkit.testing.gcp.dataproc import DataprocService, answer

PARENT = "projects/my-project/locations/europe-west1"


@pytest.fixture
def emulator() -> Emulator:
    return Emulator()


@pytest.fixture
def client(emulator: Emulator) -> dataproc_v1.SessionControllerClient:
    made = emulator.client("dataproc")
    assert isinstance(made, dataproc_v1.SessionControllerClient)
    return made


def _service(emulator: Emulator) -> DataprocService:
    service = emulator.service("dataproc")
    assert isinstance(service, DataprocService)
    return service


def _create(
    client: dataproc_v1.SessionControllerClient, session_id: str = "my-session", **session: Any
) -> Any:
    return client.create_session(
        request={
            "parent": PARENT,
            "session": session,
            "session_id": session_id,
            "request_id": f"req-{session_id}",
        },
        retry=None,
        timeout=5,
    )


def test_create_returns_an_operation_with_session_metadata(
    emulator: Emulator, client: dataproc_v1.SessionControllerClient
) -> None:
    operation = _create(client, labels={"team": "data"})
    metadata = operation.metadata
    assert isinstance(metadata, dataproc_v1.SessionOperationMetadata)
    assert metadata.session == f"{PARENT}/sessions/my-session"
    assert (
        metadata.operation_type == dataproc_v1.SessionOperationMetadata.SessionOperationType.CREATE
    )
    assert not operation.done(retry=None)
    emulator.clock.advance(_service(emulator).timeline.creating)
    assert operation.done(retry=None)
    assert operation.result(retry=None, timeout=5).state == dataproc_v1.Session.State.ACTIVE


def test_session_timeline(emulator: Emulator, client: dataproc_v1.SessionControllerClient) -> None:
    _create(client, spark_connect_session={})
    name = f"{PARENT}/sessions/my-session"
    first = client.get_session(name=name, retry=None, timeout=5)
    assert first.state == dataproc_v1.Session.State.CREATING
    assert first.uuid and first.create_time is not None
    emulator.clock.advance(_service(emulator).timeline.creating)
    active = client.get_session(name=name, retry=None, timeout=5)
    assert active.state == dataproc_v1.Session.State.ACTIVE
    assert "Spark Connect Server" in active.runtime_info.endpoints
    assert [h.state for h in active.state_history] == [dataproc_v1.Session.State.CREATING]
    client.terminate_session(request={"name": name}, retry=None, timeout=5)
    assert client.get_session(name=name).state == dataproc_v1.Session.State.TERMINATING
    emulator.clock.advance(_service(emulator).timeline.terminating)
    ended = client.get_session(name=name, retry=None, timeout=5)
    assert ended.state == dataproc_v1.Session.State.TERMINATED
    assert ended.runtime_info.approximate_usage.milli_dcu_seconds > 0
    assert "Spark Connect Server" not in ended.runtime_info.endpoints


def test_scripted_failure_carries_its_reason(
    emulator: Emulator, client: dataproc_v1.SessionControllerClient
) -> None:
    _service(emulator).script_next("FAILED", after=5, reason="Insufficient quota (scripted)")
    _create(client)
    emulator.clock.advance(6)
    failed = client.get_session(name=f"{PARENT}/sessions/my-session", retry=None, timeout=5)
    assert failed.state == dataproc_v1.Session.State.FAILED
    assert failed.state_message == "Insufficient quota (scripted)"


def test_ttl_ends_an_active_session(
    emulator: Emulator, client: dataproc_v1.SessionControllerClient
) -> None:
    _create(client, environment_config={"execution_config": {"ttl": "900s", "idle_ttl": "3600s"}})
    emulator.clock.advance(901 + _service(emulator).timeline.terminating)
    ended = client.get_session(name=f"{PARENT}/sessions/my-session", retry=None, timeout=5)
    assert ended.state == dataproc_v1.Session.State.TERMINATED
    assert "TTL" in ended.state_message


def test_same_request_id_is_ignored_and_same_id_is_already_exists(
    emulator: Emulator, client: dataproc_v1.SessionControllerClient
) -> None:
    _create(client)
    _create(client)  # the same request id: ignored
    assert emulator.created_sessions()["dataproc"] == 1
    with pytest.raises(api_exceptions.Conflict) as caught:
        client.create_session(
            request={
                "parent": PARENT,
                "session": {},
                "session_id": "my-session",
                "request_id": "other",
            },
            retry=None,
            timeout=5,
        )
    assert caught.value.response.json()["error"]["status"] == "ALREADY_EXISTS"


def test_list_filters_and_pages(
    emulator: Emulator, client: dataproc_v1.SessionControllerClient
) -> None:
    for index in range(3):
        _create(client, f"session-{index}", labels={"team": "a" if index else "b"})
    pager = client.list_sessions(
        request={"parent": PARENT, "filter": 'labels.team = "a"', "page_size": 1},
        retry=None,
        timeout=5,
    )
    assert [s.name.rsplit("/", 1)[-1] for s in pager] == ["session-1", "session-2"]
    with pytest.raises(api_exceptions.BadRequest):
        client.list_sessions(
            request={"parent": PARENT, "filter": "create_time < 5"}, retry=None, timeout=5
        )


def test_delete_removes_the_record(
    emulator: Emulator, client: dataproc_v1.SessionControllerClient
) -> None:
    _create(client)
    name = f"{PARENT}/sessions/my-session"
    client.delete_session(request={"name": name}, retry=None, timeout=5)
    with pytest.raises(api_exceptions.NotFound):
        client.get_session(name=name, retry=None, timeout=5)
    assert emulator.alive_sessions().get("dataproc", []) == []


def test_a_field_outside_the_api_is_invalid_argument(
    emulator: Emulator,
) -> None:
    status, _, body = answer(
        emulator,
        "POST",
        f"/v1/{PARENT}/sessions",
        "sessionId=abcd&requestId=r1",
        {},
        json.dumps({"environmentConfig": {"executionConfig": {"idleTTL": "600s"}}}),
    )
    assert status == 400
    assert json.loads(body)["error"]["status"] == "INVALID_ARGUMENT"
    assert emulator.created_sessions()["dataproc"] == 0


@pytest.mark.parametrize(
    ("session", "problem"),
    [
        ({"environmentConfig": {"executionConfig": {"idleTtl": "60s"}}}, "idle_ttl"),
        ({"environmentConfig": {"executionConfig": {"ttl": "1300000s"}}}, "ttl"),
        ({"labels": {"Team": "x"}}, "label"),
    ],
)
def test_service_limits_are_enforced(
    emulator: Emulator, session: dict[str, Any], problem: str
) -> None:
    status, _, body = answer(
        emulator, "POST", f"/v1/{PARENT}/sessions", "sessionId=abcd", {}, json.dumps(session)
    )
    assert status == 400
    assert problem in json.loads(body)["error"]["message"]


def test_answer_routes_and_encodes_enums_as_asked(emulator: Emulator) -> None:
    answer(emulator, "POST", f"/v1/{PARENT}/sessions", "sessionId=abcd", {}, b"{}")
    path = f"/v1/{PARENT}/sessions/abcd"
    status, headers, body = answer(emulator, "GET", path, "", {}, None)
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    record = json.loads(body)
    assert record["state"] == "CREATING"
    # Round trip through the proto: the answer is a valid Session, nothing unknown in it.
    message = dataproc_v1.Session.from_json(body.decode(), ignore_unknown_fields=False)
    assert message.name == f"{PARENT}/sessions/abcd"
    _, _, numeric = answer(emulator, "GET", path, {"$alt": "json;enum-encoding=int"}, {}, None)
    assert json.loads(numeric)["state"] == 1
    status, _, _ = answer(emulator, "GET", "/v1/projects/p/nothing", "", {}, None)
    assert status == 404


def test_faults_reach_the_client(
    emulator: Emulator, client: dataproc_v1.SessionControllerClient
) -> None:
    emulator.inject("throttle", service="dataproc", operations="ListSessions", count=1)
    with pytest.raises(api_exceptions.TooManyRequests):
        client.list_sessions(request={"parent": PARENT}, retry=None, timeout=5)
    emulator.inject("server_error", service="dataproc", operations="ListSessions", count=1)
    with pytest.raises(api_exceptions.ServiceUnavailable):
        client.list_sessions(request={"parent": PARENT}, retry=None, timeout=5)
    emulator.inject("connection_error", service="dataproc", operations="CreateSession", count=1)
    with pytest.raises(requests.exceptions.ConnectionError):
        _create(client)
    assert emulator.created_sessions()["dataproc"] == 0
    emulator.inject("read_timeout", service="dataproc", operations="CreateSession", count=1)
    with pytest.raises(requests.exceptions.ReadTimeout):
        _create(client)
    # A lost answer: the service did create the session.
    assert emulator.created_sessions()["dataproc"] == 1
    outcomes = [c.outcome for c in emulator.calls]
    assert outcomes == ["RESOURCE_EXHAUSTED", "UNAVAILABLE", "connection_error", "read_timeout"]


def test_latency_advances_the_virtual_clock(
    emulator: Emulator, client: dataproc_v1.SessionControllerClient
) -> None:
    emulator.inject("latency", service="dataproc", latency=7.0, count=1)
    before = emulator.clock.monotonic()
    client.list_sessions(request={"parent": PARENT}, retry=None, timeout=5)
    assert emulator.clock.monotonic() - before == pytest.approx(7.0)

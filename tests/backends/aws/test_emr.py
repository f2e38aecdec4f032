"""The emr backend (EMR on EC2 Spark Connect sessions): translation, pre-flight, endpoint.

Lifecycle behaviour is covered by the conformance suite (tests/conformance); this file checks
what is specific to EMR, against botocore's ``emr`` model and the emulator.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.stub import Stubber

import sessionkit
from sessionkit import InvalidConfigError, SessionConfig, SessionState
from sessionkit.backends.aws.emr import STATE_MAP, EmrBackend
from sessionkit.registry import get_backend
from sessionkit.testing import Emulator

ROLE = "arn:aws:iam::123456789012:role/EmrSessions"


def _model() -> Any:
    return botocore.session.get_session().get_service_model("emr")


@pytest.fixture
def emulator() -> Emulator:
    return Emulator()


@pytest.fixture
def keywords(emulator: Emulator) -> dict[str, Any]:
    return {**emulator.keywords("emr"), "poll_policy": emulator.poll_policy()}


def test_the_registry_knows_emr() -> None:
    assert get_backend("emr") is EmrBackend
    assert "emr" in sessionkit.available_backends()
    assert EmrBackend.location_fields == ("cluster_id",)
    assert EmrBackend.cli_fields == ("cluster_id",)


def test_every_state_in_botocores_model_is_mapped() -> None:
    enum = _model().shape_for("SessionState").enum
    assert sorted(STATE_MAP) == sorted(enum)
    assert STATE_MAP["IDLE"] is SessionState.READY
    assert STATE_MAP["TERMINATING"] is SessionState.STOPPING


def test_the_model_has_the_session_operations() -> None:
    operations = set(_model().operation_names)
    assert {
        "StartSession",
        "GetSession",
        "ListSessions",
        "TerminateSession",
        "GetSessionEndpoint",
        "DescribeCluster",
    } <= operations


def test_start_request_translation(emulator: Emulator) -> None:
    backend = EmrBackend(client=emulator.client("emr"), cluster_id="j-ABC123")
    prepared = backend.prepare_start(
        SessionConfig(
            name="nightly",
            role=ROLE,
            idle_timeout=timedelta(seconds=90),
            spark_conf={"spark.sql.shuffle.partitions": "64"},
            tags={"team": "data"},
            sessionkit_tags=False,
            client_token="token-1",
        )
    )
    assert dict(prepared.request) == {
        "ClusterId": "j-ABC123",
        "ClientRequestToken": "token-1",
        "Name": "nightly",
        "ExecutionRoleArn": ROLE,
        "SessionIdleTimeoutInMinutes": 2,
        "EngineConfigurations": [
            {
                "Classification": "spark-defaults",
                "Properties": {"spark.sql.shuffle.partitions": "64"},
            }
        ],
        "Tags": [{"Key": "team", "Value": "data"}],
    }
    assert emulator.call_count() == 0


def test_lifecycle_tags_and_the_default_idle_timeout_are_sent(emulator: Emulator) -> None:
    backend = EmrBackend(client=emulator.client("emr"), cluster_id="j-ABC123")
    request = backend.prepare_start(SessionConfig(tags={"team": "data"})).request
    tags = {tag["Key"]: tag["Value"] for tag in request["Tags"]}
    assert tags["team"] == "data"
    assert tags["sessionkit:created-by"].startswith("sk-")
    assert tags["sessionkit:expires-at"].endswith("Z")
    assert request["SessionIdleTimeoutInMinutes"] == 60


def test_a_generated_client_token_fits_the_36_character_limit(emulator: Emulator) -> None:
    backend = EmrBackend(client=emulator.client("emr"), cluster_id="j-ABC123")
    token = backend.prepare_start(SessionConfig()).request["ClientRequestToken"]
    assert 1 <= len(token) <= 36
    assert _model().shape_for("ClientRequestToken").metadata["max"] == 36


def test_a_client_token_over_36_characters_is_refused_before_any_call(
    emulator: Emulator, keywords: dict[str, Any]
) -> None:
    with pytest.raises(InvalidConfigError) as caught:
        sessionkit.open_session("emr", client_token="k" * 37, **keywords)
    assert caught.value.field == "client_token"
    assert "36" in str(caught.value)
    assert emulator.call_count() == 0


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("description", "x"),
        ("max_duration", timedelta(hours=1)),
        ("max_dpus", 4.0),
        ("runtime_version", "emr-8.0.0"),
    ],
)
def test_unsupported_fields_are_refused(
    emulator: Emulator, keywords: dict[str, Any], field: str, value: Any
) -> None:
    with pytest.raises(InvalidConfigError) as caught:
        sessionkit.open_session("emr", **{field: value}, **keywords)
    assert caught.value.field == field
    assert "emr" in str(caught.value)
    assert emulator.call_count() == 0


@pytest.mark.parametrize("cluster_id", ["", "cluster-1", "j-abc", 42])
def test_a_malformed_cluster_id_is_refused(cluster_id: Any) -> None:
    with pytest.raises(InvalidConfigError) as caught:
        EmrBackend(client=object(), cluster_id=cluster_id)
    assert caught.value.field == "cluster_id"


def _cluster(emulator: Emulator, **kwargs: Any) -> dict[str, Any]:
    cluster_id = emulator.service("emr").create_cluster("c", **kwargs)  # type: ignore[attr-defined]
    return {
        "client": emulator.client("emr"),
        "cluster_id": cluster_id,
        "poll_policy": emulator.poll_policy(),
    }


@pytest.mark.parametrize(
    ("cluster", "says"),
    [
        ({"state": "BOOTSTRAPPING"}, "wait"),
        ({"state": "STARTING"}, "RUNNING or WAITING"),
        ({"state": "TERMINATED"}, "RUNNING or WAITING cluster"),
        ({"state": "TERMINATED_WITH_ERRORS"}, "cannot run sessions"),
        ({"session_enabled": False}, "SessionEnabled=True"),
    ],
)
def test_the_preflight_says_what_to_change(
    emulator: Emulator, cluster: dict[str, Any], says: str
) -> None:
    connection = _cluster(emulator, **cluster)
    with pytest.raises(InvalidConfigError) as caught:
        sessionkit.open_session("emr", **connection)
    assert caught.value.field == "cluster_id"
    assert says in str(caught.value)
    assert emulator.call_count("emr", "StartSession") == 0


def test_an_unknown_cluster_is_named(emulator: Emulator) -> None:
    with pytest.raises(InvalidConfigError) as caught:
        sessionkit.open_session(
            "emr",
            client=emulator.client("emr"),
            cluster_id="j-NOSUCHCLUSTER",
            poll_policy=emulator.poll_policy(),
        )
    assert caught.value.field == "cluster_id"
    assert "j-NOSUCHCLUSTER" in str(caught.value)


@pytest.mark.parametrize("state", ["RUNNING", "WAITING"])
def test_a_session_opens_on_a_running_or_waiting_cluster(emulator: Emulator, state: str) -> None:
    connection = _cluster(emulator, state=state)
    with sessionkit.open_session(
        "emr",
        role=ROLE,
        idle_timeout=timedelta(minutes=45),
        spark_conf={"spark.executor.cores": "2"},
        tags={"a": "b"},
        **connection,
    ) as session:
        assert session.state is SessionState.READY
        emulator.clock.advance(emulator.service("emr").timeline.idle_after)  # type: ignore[attr-defined]
        info = session.refresh()
        assert info.native_state == "IDLE"
        assert info.state is SessionState.READY
        assert info.arn is not None and info.arn.endswith(f"/session/{session.id}")
        assert info.raw["ExecutionRoleArn"] == ROLE
        tags = {tag["Key"]: tag["Value"] for tag in info.raw["Tags"]}
        assert tags["a"] == "b"
        assert set(tags) == {"a", "sessionkit:created-by", "sessionkit:expires-at"}
        assert info.idle_timeout is not None
    assert session.refresh().state in (SessionState.STOPPING, SessionState.STOPPED)
    (start,) = [c for c in emulator.calls if c.operation == "StartSession"]
    assert start.params["SessionIdleTimeoutInMinutes"] == 45


def test_list_filters_states_on_the_service(emulator: Emulator, keywords: dict[str, Any]) -> None:
    with sessionkit.open_session("emr", **keywords) as session:
        ready = list(sessionkit.list_sessions("emr", states=[SessionState.READY], **keywords))
        assert [info.id for info in ready] == [session.id]
    (listed,) = [c for c in emulator.calls if c.operation == "ListSessions"]
    assert sorted(listed.params["SessionStates"]) == ["IDLE", "STARTED"]


def test_run_is_not_supported_and_says_to_use_the_endpoint(keywords: dict[str, Any]) -> None:
    with (
        sessionkit.open_session("emr", **keywords) as session,
        pytest.raises(sessionkit.NotSupportedError, match="endpoint"),
    ):
        session.run("1 + 1")


def test_the_endpoint_carries_the_emr_header_set(keywords: dict[str, Any]) -> None:
    with sessionkit.open_session("emr", **keywords) as session:
        endpoint = session.endpoint()
    headers = dict(endpoint.headers)
    assert headers["authorization"] == session.id
    assert headers["x-aws-proxy-auth"] == endpoint.token
    assert headers["x-emr-username"] == "emr-session"
    assert headers["x-emr-password"]
    assert not headers["authorization"].lower().startswith("bearer")
    for secret in (endpoint.token, headers["x-emr-password"]):
        assert secret is not None and secret not in repr(endpoint)


def test_the_endpoint_recipe_is_exact() -> None:
    client = boto3.client("emr", region_name="us-east-1")
    expires = datetime(2026, 12, 1, 13, 0, tzinfo=timezone.utc)
    with Stubber(client) as stubber:
        stubber.add_response(
            "get_session_endpoint",
            {
                "Endpoint": "https://s-1.j-ABC.emr-sessions.us-east-1.amazonaws.com",
                "AuthToken": "tok/en+=",
                "AuthTokenExpirationTime": expires,
                "Credentials": {"UsernamePassword": {"Username": "u1", "Password": "p1"}},
            },
            {"ClusterId": "j-ABC", "SessionId": "s-1"},
        )
        endpoint = EmrBackend(client=client, cluster_id="j-ABC")._endpoint("s-1")
    assert endpoint.spark_connect_url == (
        "sc://s-1.j-ABC.emr-sessions.us-east-1.amazonaws.com:443/;use_ssl=true;"
        "x-aws-proxy-port=15002;x-aws-force-h2=true;x-aws-proxy-auth=tok/en+="
    )
    assert dict(endpoint.headers) == {
        "x-aws-proxy-auth": "tok/en+=",
        "authorization": "s-1",
        "x-emr-username": "u1",
        "x-emr-password": "p1",
    }
    assert endpoint.expires_at == expires


def test_service_errors_are_translated(emulator: Emulator, keywords: dict[str, Any]) -> None:
    with pytest.raises(sessionkit.ServiceError) as caught:
        sessionkit.attach_session("emr", "s-NOPE", **keywords)
    assert caught.value.code == "InvalidRequestException"
    assert not caught.value.retryable


def test_a_replayed_client_token_returns_the_same_session(
    emulator: Emulator, keywords: dict[str, Any]
) -> None:
    first = sessionkit.open_session("emr", wait=False, client_token="same-token", **keywords)
    again = sessionkit.open_session("emr", wait=False, client_token="same-token", **keywords)
    assert first.id == again.id
    assert emulator.created_sessions()["emr"] == 1
    first.stop(wait=False)


def test_the_expiry_tag_is_on_the_callers_clock(emulator: Emulator) -> None:
    backend = EmrBackend(client=emulator.client("emr"), cluster_id="j-ABC123")
    backend.poll_policy = emulator.poll_policy()
    emulator.clock.advance(10 * 24 * 3600)  # the virtual wall clock runs ten days ahead
    request = backend.prepare_start(SessionConfig(max_duration="1h")).request
    tags = {tag["Key"]: tag["Value"] for tag in request["Tags"]}
    expected = (emulator.clock.now() + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    assert tags["sessionkit:expires-at"].startswith(expected)


def test_options_may_replace_the_default_idle_timeout_and_none_means_not_given(
    emulator: Emulator,
) -> None:
    backend = EmrBackend(client=emulator.client("emr"), cluster_id="j-ABC123")
    config = SessionConfig(options={"SessionIdleTimeoutInMinutes": 15, "Name": None})
    request = backend.prepare_start(config).request
    assert request["SessionIdleTimeoutInMinutes"] == 15
    assert "Name" not in request

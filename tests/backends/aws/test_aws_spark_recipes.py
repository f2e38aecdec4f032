"""Each AWS backend builds its Spark Connect endpoint with the recipe of DESIGN section 9.

The services' answers are stubbed (botocore's ``Stubber``, so they fit the model); the strings
expected here are written out by hand from the recipe table, not computed by the code.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from sessionkit import Endpoint
from sessionkit.registry import get_backend

EXPIRES = datetime(2026, 12, 1, 13, 0, tzinfo=timezone.utc)
#: A token with characters that URL-encoding changes, as real service tokens have.
TOKEN = "AbC/dE+f=="


@pytest.fixture
def stubbed(request: pytest.FixtureRequest) -> Iterator[tuple[Any, Stubber]]:
    service: str = request.param
    client = boto3.client(service, region_name="us-east-1")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


@pytest.mark.parametrize("stubbed", ["glue"], indirect=True)
def test_glue_url_encodes_the_token_into_its_sc_url(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    stubber.add_response(
        "get_session_endpoint",
        {
            "SparkConnect": {
                "Url": "sc://abc123.glue-spark-connect.us-east-1.amazonaws.com",
                "AuthToken": TOKEN,
                "AuthTokenExpirationTime": EXPIRES,
            }
        },
        {"SessionId": "s-1"},
    )
    endpoint = get_backend("glue")(client=client)._endpoint("s-1")
    assert endpoint.spark_connect_url == (
        "sc://abc123.glue-spark-connect.us-east-1.amazonaws.com:443/;use_ssl=true;"
        "x-aws-proxy-auth=AbC%2FdE%2Bf%3D%3D"
    )
    assert dict(endpoint.headers) == {"x-aws-proxy-auth": TOKEN}
    assert endpoint.expires_at == EXPIRES


@pytest.mark.parametrize("stubbed", ["emr-serverless"], indirect=True)
def test_emr_serverless_recipe(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    stubber.add_response(
        "get_session_endpoint",
        {
            "applicationId": "00app",
            "sessionId": "s1",
            "endpoint": "https://s1.00app.emr-serverless-services.us-east-1.amazonaws.com",
            "authToken": TOKEN,
            "authTokenExpiresAt": EXPIRES,
        },
        {"applicationId": "00app", "sessionId": "s1"},
    )
    endpoint = get_backend("emr-serverless")(client=client, application_id="00app")._endpoint("s1")
    assert endpoint.spark_connect_url == (
        "sc://s1.00app.emr-serverless-services.us-east-1.amazonaws.com:443/;use_ssl=true;"
        "x-aws-proxy-port=15002;x-aws-force-h2=true;x-aws-proxy-auth=AbC/dE+f=="
    )
    assert dict(endpoint.headers) == {"x-aws-proxy-auth": TOKEN}


@pytest.mark.parametrize("stubbed", ["athena"], indirect=True)
def test_athena_recipe(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    stubber.add_response(
        "get_session_endpoint",
        {
            "EndpointUrl": "https://abc.spark-connect.athena.us-east-1.amazonaws.com",
            "AuthToken": TOKEN,
            "AuthTokenExpirationTime": EXPIRES,
        },
        {"SessionId": "s-2"},
    )
    endpoint = get_backend("athena")(client=client, work_group="wg")._endpoint("s-2")
    assert endpoint.spark_connect_url == (
        "sc://abc.spark-connect.athena.us-east-1.amazonaws.com:443/;use_ssl=true;"
        "x-aws-proxy-port=15002;x-aws-force-h2=true;x-aws-proxy-auth=AbC/dE+f=="
    )
    assert dict(endpoint.headers) == {"x-aws-proxy-auth": TOKEN}


def test_headers_and_token_never_show() -> None:
    endpoint = Endpoint(
        url="https://host.example",
        token="SECRET-TOKEN",
        headers={"x-aws-proxy-auth": "SECRET-TOKEN", "x-emr-password": "SECRET-PASSWORD"},
        recipe="{address}/;use_ssl=true;x-aws-proxy-auth={token}",
    )
    for text in (repr(endpoint), str(endpoint)):
        assert "SECRET" not in text
        assert "host.example" in text


def test_a_loopback_endpoint_has_no_tls_and_keeps_its_port() -> None:
    endpoint = Endpoint(
        url="http://localhost:40123",
        token="t",
        recipe="{address}/;use_ssl=true;x-aws-proxy-port=15002;x-aws-proxy-auth={token}",
    )
    assert endpoint.spark_connect_url == (
        "sc://localhost:40123/;x-aws-proxy-port=15002;x-aws-proxy-auth=t"
    )


def test_the_channel_leaves_per_call_headers_to_the_interceptor() -> None:
    from sessionkit.spark_connect import channel_url

    endpoint = Endpoint(
        url="https://h.example",
        token="tok",
        headers={"x-aws-proxy-auth": "tok"},
        recipe=(
            "{address}/;use_ssl=true;x-aws-proxy-port=15002;x-aws-force-h2=true;"
            "x-aws-proxy-auth={token}"
        ),
    )
    assert channel_url(endpoint) == (
        "sc://h.example:443/;use_ssl=true;x-aws-proxy-port=15002;x-aws-force-h2=true"
    )


def test_the_header_interceptor_sends_current_headers_and_never_a_bearer() -> None:
    pytest.importorskip("grpc")
    from types import SimpleNamespace

    from sessionkit.spark_connect import header_interceptor

    tokens = iter(["first", "second"])
    interceptor = header_interceptor(lambda: {"x-aws-proxy-auth": next(tokens)})
    seen: list[Any] = []
    details = SimpleNamespace(
        method="/spark.connect.SparkConnectService/ExecutePlan",
        timeout=None,
        metadata=[
            ("x-aws-proxy-port", "15002"),
            ("x-aws-proxy-auth", "stale"),
            ("authorization", "Bearer stale"),
        ],
        credentials=None,
        wait_for_ready=None,
        compression=None,
    )
    interceptor.intercept_unary_stream(lambda d, r: seen.append(d.metadata), details, "plan")
    interceptor.intercept_stream_stream(lambda d, r: seen.append(d.metadata), details, iter(()))
    assert seen == [
        [("x-aws-proxy-port", "15002"), ("x-aws-proxy-auth", "first")],
        [("x-aws-proxy-port", "15002"), ("x-aws-proxy-auth", "second")],
    ]


def test_threads_share_one_refresh_and_always_send_a_current_token() -> None:
    pytest.importorskip("grpc")
    import threading
    from types import SimpleNamespace

    import sessionkit
    from sessionkit.spark_connect import header_interceptor
    from sessionkit.testing import Emulator

    emulator = Emulator()
    service = emulator.service("emr-serverless")
    service.timeline.token_ttl = 600.0  # type: ignore[attr-defined]
    keywords = {**emulator.keywords("emr-serverless"), "poll_policy": emulator.poll_policy()}
    with sessionkit.open_session(
        "emr-serverless", role="arn:aws:iam::123456789012:role/R", **keywords
    ) as session:
        first = session.endpoint()
        interceptor = header_interceptor(lambda: session.endpoint().headers)
        fetched = emulator.call_count("emr-serverless", "GetSessionEndpoint")
        # Within a minute of expiry: the next calls must refresh, once, whatever the threads.
        emulator.clock.advance(600.0 - 30.0)
        sent: list[str] = []
        barrier = threading.Barrier(8)

        def call() -> None:
            details = SimpleNamespace(
                method="/m",
                timeout=None,
                metadata=[],
                credentials=None,
                wait_for_ready=None,
                compression=None,
            )
            barrier.wait()
            interceptor.intercept_unary_unary(
                lambda d, r: sent.append(dict(d.metadata)["x-aws-proxy-auth"]), details, None
            )

        threads = [threading.Thread(target=call) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert emulator.call_count("emr-serverless", "GetSessionEndpoint") == fetched + 1
        current = session.endpoint()
        assert sent == [current.token] * 8
        assert current.token != first.token

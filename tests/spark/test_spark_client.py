"""How Session.spark() connects: the connection string it gives PySpark, the token it sends."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from sessionkit.models import Endpoint
from sessionkit.spark_connect import bearer_interceptor, channel_url


@pytest.mark.parametrize(
    ("url", "token", "expected"),
    [
        # PySpark sends a token without TLS only to localhost: that is the local server's case.
        ("sc://localhost:15002", "secret", "sc://localhost:15002"),
        # Anywhere else a token needs TLS, as PySpark itself would insist.
        ("sc://spark.example.com:443", "secret", "sc://spark.example.com:443/;use_ssl=true"),
        ("https://spark.example.com", "secret", "sc://spark.example.com:443/;use_ssl=true"),
        (
            "sc://spark.example.com:443/;use_ssl=true;user_id=me",
            "secret",
            "sc://spark.example.com:443/;use_ssl=true;user_id=me",
        ),
        # No token, nothing to protect: the URL is kept as the service gave it.
        ("sc://spark.example.com:15002", None, "sc://spark.example.com:15002"),
    ],
)
def test_the_connection_string_never_carries_the_token(
    url: str, token: str | None, expected: str
) -> None:
    assert channel_url(Endpoint(url=url, token=token)) == expected


def test_a_token_in_the_service_url_is_dropped_too() -> None:
    endpoint = Endpoint(url="sc://spark.example.com:443/;use_ssl=true;token=old", token="new")
    assert channel_url(endpoint) == "sc://spark.example.com:443/;use_ssl=true"


def test_every_call_carries_the_token_current_at_that_call() -> None:
    pytest.importorskip("grpc")
    tokens = iter(["first", "second"])
    interceptor = bearer_interceptor(lambda: next(tokens))
    seen: list[Any] = []

    def continuation(details: Any, request: Any) -> str:
        seen.append(details)
        return "response"

    details = SimpleNamespace(
        method="/spark.connect.SparkConnectService/ExecutePlan",
        timeout=None,
        metadata=[("x-user", "me"), ("authorization", "Bearer stale")],
        credentials=None,
        wait_for_ready=None,
        compression=None,
    )
    assert interceptor.intercept_unary_stream(continuation, details, "plan") == "response"
    interceptor.intercept_unary_unary(continuation, details, "config")
    assert [d.metadata for d in seen] == [
        [("x-user", "me"), ("authorization", "Bearer first")],
        [("x-user", "me"), ("authorization", "Bearer second")],
    ]
    assert all(d.method == details.method for d in seen)


def test_the_interceptor_is_applied_to_every_kind_of_call() -> None:
    grpc = pytest.importorskip("grpc")
    interceptor = bearer_interceptor(lambda: "token")
    for kind in (
        grpc.UnaryUnaryClientInterceptor,
        grpc.UnaryStreamClientInterceptor,
        grpc.StreamUnaryClientInterceptor,
        grpc.StreamStreamClientInterceptor,
    ):
        assert isinstance(interceptor, kind)

"""The emulator's Spark Connect endpoint checks like the services (DESIGN sections 8 and 9).

Every backend with an endpoint hands out the address of an authenticating proxy in front of
the local Spark Connect server: a call gets through only with that backend's header recipe and
a token that has not expired on the emulator's clock. Tokens here live 5 virtual seconds, and
queries run across several expiries on one long-lived ``SparkSession``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from sessionkit import open_session
from sessionkit.session import Session
from sessionkit.testing import Emulator
from sessionkit.testing.spark import LocalSparkConnect, SparkConnectProxy

pytestmark = [pytest.mark.spark, pytest.mark.timeout(300)]

ROLE = "arn:aws:iam::123456789012:role/SessionkitSpark"
TTL = 5.0
BACKENDS = ["glue", "emr-serverless", "athena", "emr"]


def _service(emulator: Emulator, backend: str) -> Any:
    return emulator.service(backend)


@pytest.fixture
def proxied(
    emulator: Emulator, spark_server: LocalSparkConnect
) -> Iterator[tuple[Emulator, SparkConnectProxy]]:
    from sessionkit.testing.spark import attach

    proxy = attach(emulator, spark_server)
    yield emulator, proxy
    proxy.stop()


def _open(emulator: Emulator, backend: str) -> Session:
    from sessionkit.testing.aws.athena import SPARK_CONNECT_ENGINE

    keywords = emulator.keywords(backend, location="proxy")
    if backend == "athena":
        emulator.athena.create_work_group("proxy", engine=SPARK_CONNECT_ENGINE)
    extra: dict[str, Any] = {"spark_connect": True}
    if backend in ("glue", "emr-serverless"):
        extra["role"] = ROLE
    return open_session(backend, **keywords, poll_policy=emulator.poll_policy(), **extra)


@pytest.mark.parametrize("backend", BACKENDS)
def test_queries_run_across_several_token_expiries(
    proxied: tuple[Emulator, SparkConnectProxy], backend: str
) -> None:
    emulator, proxy = proxied
    _service(emulator, backend).timeline.token_ttl = TTL
    with _open(emulator, backend) as session:
        spark = session.spark()
        try:
            for n in range(1, 5):
                assert spark.range(n).count() == n
                emulator.clock.advance(TTL - 1)  # the token of the last call has now expired
            assert session.spark() is spark
        finally:
            spark.stop()
    assert proxy.refusals == []
    # Four expiries, each bridged by a fresh endpoint (and so a fresh token).
    assert emulator.call_count(backend, "GetSessionEndpoint") >= 4


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_expired_token_is_refused(
    proxied: tuple[Emulator, SparkConnectProxy], backend: str
) -> None:
    from pyspark.sql.connect.session import SparkSession

    emulator, proxy = proxied
    _service(emulator, backend).timeline.token_ttl = TTL
    with _open(emulator, backend) as session:
        endpoint = session.endpoint()
        # PySpark on its own: the recipe's string, the token fixed in it forever. EMR's other
        # headers go as parameters too (PySpark sends unknown parameters as metadata).
        url = endpoint.spark_connect_url
        if backend == "emr":
            url += "".join(
                f";{key}={value}"
                for key, value in endpoint.headers.items()
                if key != "x-aws-proxy-auth"
            )
        spark = SparkSession(connection=url)
        try:
            assert spark.range(2).count() == 2
            emulator.clock.advance(TTL + 1)
            with pytest.raises(Exception, match=r"(?i)expired"):
                spark.range(2).count()
        finally:
            spark.stop()
    assert any("expired" in refusal for refusal in proxy.refusals)


def test_calls_without_the_recipe_are_refused(
    proxied: tuple[Emulator, SparkConnectProxy], spark_server: LocalSparkConnect
) -> None:
    from pyspark.sql.connect.session import SparkSession

    emulator, proxy = proxied
    with _open(emulator, "emr-serverless") as session:
        endpoint = session.endpoint()
        address = endpoint.spark_connect_url.split("/;", 1)[0]
        attempts = {
            # PySpark's own token= is a bearer token: not what the services read.
            "bearer": f"{address}/;token={endpoint.token}",
            # The token alone, without x-aws-proxy-port and x-aws-force-h2.
            "partial": f"{address}/;x-aws-proxy-auth={endpoint.token}",
            "forged": f"{address}/;x-aws-proxy-port=15002;x-aws-force-h2=true;"
            "x-aws-proxy-auth=forged",
        }
        for name, url in attempts.items():
            spark = SparkSession(connection=url)
            try:
                with pytest.raises(Exception, match=r"(?i)unauthenticated|authentication|recipe"):
                    spark.range(1).count()
            finally:
                spark.stop()
            assert proxy.refusals, name
    reasons = " | ".join(proxy.refusals)
    assert "bearer" in reasons
    assert "x-aws-proxy-port" in reasons
    assert "never issued" in reasons

"""End to end on a real Spark: the emulator's sessions run code on a local Spark Connect server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sessionkit import SessionState, StatementFailedError, open_session
from sessionkit.session import Session
from sessionkit.testing import Emulator
from sessionkit.testing.spark import LocalSparkConnect

ROLE = "arn:aws:iam::123456789012:role/SessionkitSpark"
# The first test pays for the server start-up and the first query (JIT, class loading).
pytestmark = [pytest.mark.spark, pytest.mark.timeout(300)]


@pytest.fixture
def glue_session(spark_emulator: Emulator) -> Iterator[Session]:
    with open_session(
        "glue",
        client=spark_emulator.client("glue"),
        poll_policy=spark_emulator.poll_policy(),
        role=ROLE,
        spark_connect=True,
    ) as session:
        yield session
        session.stop()
    assert session.state is SessionState.STOPPED
    assert spark_emulator.alive_sessions() == {}


def test_run_executes_on_real_spark_and_returns_the_last_value(glue_session: Session) -> None:
    result = glue_session.run("spark.range(10).count()")
    assert result.output == "10"
    printed = glue_session.run(
        "print(spark.version)\nspark.range(3).selectExpr('sum(id)').first()[0]"
    )
    version, total = printed.output.splitlines()  # type: ignore[union-attr]
    assert version.startswith("4.")
    assert total == "3"


def test_spark_state_is_shared_between_statements(glue_session: Session) -> None:
    glue_session.run("spark.range(5).createOrReplaceTempView('five')")
    assert glue_session.run("spark.table('five').count()").output == "5"


def test_a_failing_statement_raises_with_the_real_spark_error(glue_session: Session) -> None:
    with pytest.raises(StatementFailedError) as caught:
        glue_session.run("spark.sql('select * from no_such_table')")
    result = caught.value.result
    assert result.error_name == "AnalysisException"
    assert "TABLE_OR_VIEW_NOT_FOUND" in (result.error_value or "")
    # The traceback starts in the statement's own code, then goes into PySpark.
    assert 'File "<statement>", line 1' in result.traceback[1]
    assert result.traceback[-1].startswith("pyspark.errors.exceptions.connect.AnalysisException")
    assert "AnalysisException" in str(caught.value)


def test_spark_connects_through_the_endpoint_and_is_reused(
    glue_session: Session, spark_emulator: Emulator
) -> None:
    spark = glue_session.spark()
    assert spark.range(10).count() == 10
    assert glue_session.spark() is spark
    assert spark_emulator.call_count("glue", "GetSessionEndpoint") == 1


def test_a_stopped_spark_session_is_replaced_on_the_next_call(glue_session: Session) -> None:
    first = glue_session.spark()
    first.stop()
    second = glue_session.spark()
    assert second is not first
    assert second.range(4).count() == 4


def test_the_server_refuses_a_wrong_token(spark_server: LocalSparkConnect) -> None:
    from pyspark.sql.connect.session import SparkSession

    spark = SparkSession.builder.remote(f"{spark_server.url}/;token=wrong").create()
    try:
        with pytest.raises(Exception, match=r"(?i)invalid authentication token"):
            spark.range(1).count()
    finally:
        spark.stop()


def test_athena_calculations_run_on_real_spark(spark_emulator: Emulator) -> None:
    with open_session(
        "athena",
        client=spark_emulator.client("athena"),
        s3_client=spark_emulator.client("s3"),
        poll_policy=spark_emulator.poll_policy(),
        work_group="spark",
    ) as session:
        assert session.run("spark.range(10).count()").output == "10"
        with pytest.raises(StatementFailedError) as caught:
            session.run("spark.sql('select * from no_such_table')")
        assert "TABLE_OR_VIEW_NOT_FOUND" in (caught.value.result.error_value or "")
        session.stop()
    assert session.state is SessionState.STOPPED


def test_emr_serverless_and_athena_endpoints_reach_the_local_server(
    spark_emulator: Emulator,
) -> None:
    from sessionkit.testing.aws.athena import SPARK_CONNECT_ENGINE

    application = spark_emulator.emr_serverless.create_application(name="spark")
    spark_emulator.athena.create_work_group("connect", engine=SPARK_CONNECT_ENGINE)
    locations: dict[str, dict[str, str]] = {
        "emr-serverless": {"application_id": application, "role": ROLE},
        "athena": {"work_group": "connect"},
    }
    for backend, location in locations.items():
        with open_session(
            backend,
            client=spark_emulator.client(backend),
            poll_policy=spark_emulator.poll_policy(),
            spark_connect=True,
            **location,
        ) as session:
            spark = session.spark()
            try:
                assert spark.range(3).count() == 3, backend
            finally:
                spark.stop()
            session.stop()
        assert session.state is SessionState.STOPPED

"""awswrangler's Athena Spark functions, unchanged apart from the endpoint URL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sessionkit.testing import Emulator

pytestmark = pytest.mark.integration


@pytest.fixture
def wrangler(served_fast: str, aws_env: None) -> Iterator[object]:
    import awswrangler as wr

    previous = wr.config.athena_endpoint_url
    wr.config.athena_endpoint_url = served_fast
    try:
        yield wr
    finally:
        wr.config.athena_endpoint_url = previous


def test_create_spark_session_waits_until_idle(fast_emulator: Emulator, wrangler: object) -> None:
    import awswrangler as wr

    work_group = fast_emulator.athena.create_work_group("wrangler")
    session_id = wr.athena.create_spark_session(workgroup=work_group, max_concurrent_dpus=4)
    status = fast_emulator.client("athena").get_session_status(SessionId=session_id)
    assert status["Status"]["State"] == "IDLE"
    (start,) = [c for c in fast_emulator.calls if c.operation == "StartSession"]
    assert start.params["EngineConfiguration"]["MaxConcurrentDpus"] == 4


def test_run_spark_calculation_completes(fast_emulator: Emulator, wrangler: object) -> None:
    import awswrangler as wr

    work_group = fast_emulator.athena.create_work_group("wrangler")
    result = wr.athena.run_spark_calculation(code="print(6 * 7)", workgroup=work_group)
    assert result["Status"]["State"] == "COMPLETED"
    stdout = fast_emulator.s3.read(result["Result"]["StdOutS3Uri"])
    assert stdout.decode().strip() == "42"

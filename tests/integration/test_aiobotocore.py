"""aiobotocore (the async botocore of Airflow's deferrable triggers and s3fs) against the server."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from sessionkit.testing import Emulator
from tests.conftest import ROLE

pytestmark = pytest.mark.integration


def test_an_async_client_runs_a_glue_lifecycle(emulator: Emulator) -> None:
    from aiobotocore.session import get_session

    async def lifecycle(url: str) -> list[str]:
        seen = []
        session = get_session()
        async with session.create_client(
            "glue",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id="AKIDASYNC",
            aws_secret_access_key="async-secret",
        ) as glue:
            created: Any = await glue.create_session(
                Id="async", Role=ROLE, Command={"Name": "glueetl"}
            )
            seen.append(created["Session"]["Status"])
            emulator.clock.advance(600)
            seen.append((await glue.get_session(Id="async"))["Session"]["Status"])
            await glue.stop_session(Id="async")
            emulator.clock.advance(600)
            seen.append((await glue.get_session(Id="async"))["Session"]["Status"])
            listed = await glue.list_sessions()
            seen.append(",".join(listed["Ids"]))
        return seen

    with emulator.serve() as url:
        seen = asyncio.run(lifecycle(url))
    assert seen == ["PROVISIONING", "READY", "STOPPED", "async"]


def test_an_async_client_sees_injected_throttling(emulator: Emulator) -> None:
    import botocore.exceptions
    from aiobotocore.config import AioConfig
    from aiobotocore.session import get_session

    async def throttled(url: str) -> str:
        async with get_session().create_client(
            "emr-serverless",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id="AKIDASYNC",
            aws_secret_access_key="async-secret",
            config=AioConfig(retries={"total_max_attempts": 1}),
        ) as emr:
            try:
                await emr.list_sessions(applicationId=application_id)
            except botocore.exceptions.ClientError as error:
                return str(error.response["Error"]["Code"])
            return "no error"

    application_id = emulator.emr_serverless.create_application("async")
    emulator.inject("throttle", service="emr-serverless", count=1)
    with emulator.serve() as url:
        assert asyncio.run(throttled(url)) == "ThrottlingException"

"""The Airflow amazon provider's EMR Serverless session operators and deferrable trigger.

Run as a worker runs them (``execute``; the trigger's ``run`` on an event loop, through
aiobotocore), with no Airflow connection (``aws_conn_id=None``: boto3's default chain), so they
find the emulator through botocore's standard ``AWS_ENDPOINT_URL_EMR_SERVERLESS`` variable.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from sessionkit.testing import Emulator
from tests.conftest import ROLE

pytestmark = pytest.mark.integration


@pytest.fixture
def airflow_env(
    served_fast: str, aws_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "airflow"))
    monkeypatch.setenv("AWS_ENDPOINT_URL_EMR_SERVERLESS", served_fast)
    return served_fast


def test_start_and_stop_session_operators(fast_emulator: Emulator, airflow_env: str) -> None:
    from airflow.providers.amazon.aws.operators.emr import (
        EmrServerlessGetSessionEndpointOperator,
        EmrServerlessStartSessionOperator,
        EmrServerlessStopSessionOperator,
    )

    application_id = fast_emulator.emr_serverless.create_application("airflow")
    started: dict[str, Any] = EmrServerlessStartSessionOperator(
        task_id="start",
        application_id=application_id,
        execution_role_arn=ROLE,
        name="nightly",
        aws_conn_id=None,
        waiter_delay=1,
    ).execute({})
    session_id = started["session_id"]
    client = fast_emulator.client("emr-serverless")
    state = client.get_session(applicationId=application_id, sessionId=session_id)
    assert state["session"]["state"] in ("STARTED", "IDLE")
    endpoint = EmrServerlessGetSessionEndpointOperator(
        task_id="endpoint", application_id=application_id, session_id=session_id, aws_conn_id=None
    ).execute({})
    assert endpoint["endpoint"] and endpoint["auth_token"]
    EmrServerlessStopSessionOperator(
        task_id="stop",
        application_id=application_id,
        session_id=session_id,
        aws_conn_id=None,
        waiter_delay=1,
    ).execute({})
    final = client.get_session(applicationId=application_id, sessionId=session_id)
    assert final["session"]["state"] == "TERMINATED"


def test_the_deferrable_session_trigger(fast_emulator: Emulator, airflow_env: str) -> None:
    from airflow.providers.amazon.aws.triggers.emr import EmrServerlessSessionTrigger

    application_id = fast_emulator.emr_serverless.create_application("deferred")
    client = fast_emulator.client("emr-serverless")
    session_id = client.start_session(
        applicationId=application_id, executionRoleArn=ROLE, clientToken="airflow-deferred"
    )["sessionId"]
    trigger = EmrServerlessSessionTrigger(
        application_id=application_id,
        session_id=session_id,
        waiter_delay=1,
        waiter_max_attempts=30,
        aws_conn_id=None,
    )

    async def first_event() -> Any:
        async for event in trigger.run():
            return event
        return None

    event = asyncio.run(first_event())
    assert event.payload["status"] == "success"
    assert event.payload["session_details"]["session_id"] == session_id

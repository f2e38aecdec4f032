"""Glue's own notebook and dbt clients against the served emulator.

The aws-glue-sessions Jupyter kernel talks to Glue through its ``KernelGateway`` (given the
endpoint URL, as its ``%endpoint`` magic does); dbt-glue's ``GlueConnection`` builds its own
client from the default chain, so it finds the emulator through botocore's standard
``AWS_ENDPOINT_URL_GLUE`` variable. Neither is changed otherwise.
"""

from __future__ import annotations

import pytest

from sessionkit.testing import Emulator
from tests.conftest import ROLE

pytestmark = pytest.mark.integration


def test_the_glue_kernel_gateway_runs_a_statement(emulator: Emulator, aws_env: None) -> None:
    from aws_glue_interactive_sessions_kernel.glue_kernel_utils.KernelGateway import (
        KernelGateway,
    )

    with emulator.serve() as url:
        gateway = KernelGateway()
        gateway.initialize_clients(region="us-east-1", endpoint_url=url)
        created = gateway.create_session(
            ROLE, {"--enable-glue-datacatalog": "true"}, "kernel", {"Name": "glueetl"}
        )
        assert created["Session"]["Status"] == "PROVISIONING"
        emulator.clock.advance(600)
        assert gateway.get_session("kernel")["Session"]["Status"] == "READY"
        assert gateway.list_sessions()["Ids"] == ["kernel"]
        statement_id = gateway.run_statement("kernel", "print(6 * 7)")["Id"]
        emulator.clock.advance(60)
        statement = gateway.get_statement("kernel", statement_id)["Statement"]
        assert statement["State"] == "AVAILABLE"
        assert statement["Output"]["Data"]["TextPlain"].strip() == "42"
        gateway.stop_session("kernel")
        emulator.clock.advance(600)
        assert gateway.get_session("kernel")["Session"]["Status"] == "STOPPED"


def test_dbt_glue_connects_and_closes_its_session(
    fast_emulator: Emulator, served_fast: str, aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dbt.adapters.glue.credentials import GlueCredentials
    from dbt.adapters.glue.gluedbapi.connection import GlueConnection

    monkeypatch.setenv("AWS_ENDPOINT_URL_GLUE", served_fast)
    credentials = GlueCredentials(
        role_arn=ROLE,
        region="us-east-1",
        workers=2,
        worker_type="G.1X",
        database="analytics",
        schema="analytics",
        glue_session_id="dbt-emulated",
        glue_session_reuse=False,
        session_provisioning_timeout_in_seconds=120,
    )
    connection = GlueConnection(credentials=credentials)
    connection._connect()  # dbt's own start-up: create, then its waiter until READY
    assert connection.state == "READY"
    (create,) = [c for c in fast_emulator.calls if c.operation == "CreateSession"]
    assert create.params["WorkerType"] == "G.1X"
    assert create.params["RequestOrigin"] == "dbt-glue"
    connection.close_session()
    assert fast_emulator.call_count("glue", "StopSession") == 1

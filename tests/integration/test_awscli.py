"""The AWS CLI (v1, pip-installable) against the served emulator, one process per command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sessionkit.testing import Emulator
from tests.conftest import ROLE

pytestmark = pytest.mark.integration


def aws(url: str, *args: str) -> Any:
    executable = Path(sys.executable).with_name("aws")
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "AKIDCLI",
        "AWS_SECRET_ACCESS_KEY": "cli-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    done = subprocess.run(
        [str(executable), *args, "--endpoint-url", url, "--output", "json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    if done.returncode != 0:
        return {"exit": done.returncode, "stderr": done.stderr}
    return json.loads(done.stdout) if done.stdout.strip() else {}


def test_glue_commands_across_processes(emulator: Emulator) -> None:
    with emulator.serve() as url:
        created = aws(
            url, "glue", "create-session", "--id", "cli", "--role", ROLE,
            "--command", "Name=glueetl",
        )  # fmt: skip
        assert created["Session"]["Status"] == "PROVISIONING"
        emulator.clock.advance(600)
        assert aws(url, "glue", "get-session", "--id", "cli")["Session"]["Status"] == "READY"
        assert aws(url, "glue", "list-sessions")["Ids"] == ["cli"]
        aws(url, "glue", "stop-session", "--id", "cli")
        unknown = aws(url, "glue", "list-crawlers")
    assert unknown["exit"] != 0
    assert "UnknownOperationException" in unknown["stderr"]
    assert emulator.call_count("glue", "StopSession") == 1


def test_emr_serverless_and_athena_commands(emulator: Emulator) -> None:
    application_id = emulator.emr_serverless.create_application("cli")
    emulator.athena.create_work_group("cli-wg")
    with emulator.serve() as url:
        listed = aws(url, "emr-serverless", "list-sessions", "--application-id", application_id)
        work_group = aws(url, "athena", "get-work-group", "--work-group", "cli-wg")
    assert listed["sessions"] == []
    assert work_group["WorkGroup"]["Name"] == "cli-wg"

"""The conformance suite against a real AWS account (opt-in, costs money).

Run with ``SESSIONKIT_AWS_TESTS=1 pytest -m aws tests/live``. It needs credentials for an
account where sessions may be started, and per backend:

- ``SESSIONKIT_AWS_REGION``: the region (default: the profile's);
- ``SESSIONKIT_AWS_ROLE``: an IAM role ARN sessions run as (Glue, EMR Serverless);
- ``SESSIONKIT_EMR_APPLICATION_ID``: an EMR Serverless application with sessions enabled;
- ``SESSIONKIT_ATHENA_WORK_GROUP``: an Athena work group on a Spark engine;
- ``SESSIONKIT_EMR_CLUSTER_ID``: a RUNNING or WAITING EMR cluster with sessions enabled.

``test_record_what_is_sent`` also writes what each backend sent and received (request
parameters, answers, Spark Connect parameters and headers; secrets replaced) to
``SESSIONKIT_LIVE_RECORD_DIR`` (default ``tests/live/recordings``), one ``<backend>.json`` each.
When a recording is already there, the run must send the same (see ``recording.differences``);
a different one is written next to it as ``<backend>.new.json`` and the test fails listing what
changed.

A backend whose variables are missing is skipped. Every session the suite starts is stopped.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import Any, ClassVar

import boto3
import pytest

import sessionkit
from sessionkit.testing.conformance import Harness, SessionConformance
from tests.live.recording import Recorder, differences

pytestmark = pytest.mark.aws

_LOCATION = {
    "glue": {},
    "emr-serverless": {"application_id": "SESSIONKIT_EMR_APPLICATION_ID"},
    "athena": {"work_group": "SESSIONKIT_ATHENA_WORK_GROUP"},
    "emr": {"cluster_id": "SESSIONKIT_EMR_CLUSTER_ID"},
}
_SERVICE = {"glue": "glue", "emr-serverless": "emr-serverless", "athena": "athena", "emr": "emr"}


class LiveHarness(Harness):
    """Reaches the real service; counts calls with a botocore hook."""

    can_delay_start: ClassVar[bool] = True

    def __init__(self, backend: str) -> None:
        self.backend = backend  # type: ignore[misc]
        location: dict[str, Any] = {}
        for keyword, variable in _LOCATION[backend].items():
            value = os.environ.get(variable)
            if not value:
                pytest.skip(f"set {variable} to run the live {backend} suite")
            location[keyword] = value
        self.role = os.environ.get("SESSIONKIT_AWS_ROLE")
        if backend in ("glue", "emr-serverless") and not self.role:
            pytest.skip(f"set SESSIONKIT_AWS_ROLE to run the live {backend} suite")
        session = boto3.session.Session(region_name=os.environ.get("SESSIONKIT_AWS_REGION"))
        self.client = session.client(_SERVICE[backend])
        self.client.meta.events.register(f"before-call.{_SERVICE[backend]}", self._count)
        self._calls = 0
        self._location = location
        self.unsupported = {  # type: ignore[misc]
            "glue": None,
            "emr-serverless": ("workers", (2, "G.1X")),
            "athena": ("max_duration", 3600),
            "emr": ("max_dpus", 4.0),
        }[backend]

    def _count(self, **kwargs: Any) -> None:
        self._calls += 1

    def connection(self) -> dict[str, Any]:
        return {"client": self.client, **self._location}

    def config(self) -> dict[str, Any]:
        return {"role": self.role} if self.role else {}

    def calls(self) -> int:
        return self._calls


@pytest.fixture(params=sorted(_LOCATION))
def live_backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


class TestLiveConformance(SessionConformance):
    @pytest.fixture
    def harness(self, live_backend: str) -> LiveHarness:
        return LiveHarness(live_backend)


def test_record_what_is_sent(live_backend: str) -> None:
    """One lifecycle, with Spark Connect where the backend has it, recorded for comparison."""
    harness = LiveHarness(live_backend)
    recorder = Recorder(live_backend)
    recorder.watch(harness.client)
    directory = Path(
        os.environ.get("SESSIONKIT_LIVE_RECORD_DIR", Path(__file__).parent / "recordings")
    )
    spark = importlib.util.find_spec("pyspark") is not None
    extra = {"spark_connect": True} if live_backend == "glue" else {}
    with (
        recorder.spark_headers(),
        sessionkit.open_session(
            live_backend, **harness.connection(), **harness.config(), **extra
        ) as session,
    ):
        try:
            session.endpoint()
        except sessionkit.NotSupportedError:
            spark = False
        if spark:
            client = session.spark()
            try:
                assert client.range(3).count() == 3
            finally:
                client.stop()
    current = recorder.as_dict()
    path = directory / f"{live_backend}.json"
    if path.exists():
        changed = differences(json.loads(path.read_text()), current)
        if changed:
            (directory / f"{live_backend}.new.json").write_text(
                json.dumps(current, indent=2, sort_keys=True, default=str) + "\n"
            )
            pytest.fail(f"{live_backend} sends something else than recorded: {changed}")
    recorder.write(directory)

"""The conformance suite against a real AWS account (opt-in, costs money).

Run with ``SESSIONKIT_AWS_TESTS=1 pytest -m aws tests/live``. It needs credentials for an
account where sessions may be started, and per backend:

- ``SESSIONKIT_AWS_REGION``: the region (default: the profile's);
- ``SESSIONKIT_AWS_ROLE``: an IAM role ARN sessions run as (Glue, EMR Serverless);
- ``SESSIONKIT_EMR_APPLICATION_ID``: an EMR Serverless application with sessions enabled;
- ``SESSIONKIT_ATHENA_WORK_GROUP``: an Athena work group on a Spark engine.

A backend whose variables are missing is skipped. Every session the suite starts is stopped.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

import boto3
import pytest

from sessionkit.testing.conformance import Harness, SessionConformance

pytestmark = pytest.mark.aws

_LOCATION = {
    "glue": {},
    "emr-serverless": {"application_id": "SESSIONKIT_EMR_APPLICATION_ID"},
    "athena": {"work_group": "SESSIONKIT_ATHENA_WORK_GROUP"},
}
_SERVICE = {"glue": "glue", "emr-serverless": "emr-serverless", "athena": "athena"}


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
        if backend != "athena" and not self.role:
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

"""The conformance suite against a real Google Cloud project (opt-in, costs money).

Run with ``SESSIONKIT_LIVE=gcp pytest -m gcp tests/live/test_gcp.py``. It needs Application
Default Credentials (``gcloud auth application-default login``) for a project where Dataproc
Serverless sessions may be started, and:

- ``SESSIONKIT_GCP_PROJECT``: the project id;
- ``SESSIONKIT_GCP_REGION``: the Dataproc region, e.g. ``europe-west1``;
- ``SESSIONKIT_GCP_SERVICE_ACCOUNT`` (optional): the service account sessions run as (default:
  the project's default compute service account);
- ``SESSIONKIT_LIVE_RECORD`` (optional): a file to write every request and answer to, as JSON
  lines, to compare with the emulator's.

Every session the suite starts is stopped.
"""

from __future__ import annotations

import json
import os
from typing import Any, ClassVar

import pytest

from sessionkit.testing.conformance import Harness, SessionConformance

pytestmark = [
    pytest.mark.gcp,
    pytest.mark.skipif(
        "gcp" not in os.environ.get("SESSIONKIT_LIVE", "").split(","),
        reason="live Google Cloud tests are opt-in: set SESSIONKIT_LIVE=gcp",
    ),
]


class _RecordingClient:
    """Wraps a ``SessionControllerClient``: counts calls and records requests and answers."""

    def __init__(self, client: Any, record: str | None) -> None:
        self._client = client
        self._record = record
        self.calls = 0

    def __getattr__(self, method: str) -> Any:
        target = getattr(self._client, method)
        if not callable(target) or method.startswith("_"):
            return target

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            answer = target(*args, **kwargs)
            if self._record:
                entry = {
                    "method": method,
                    "request": repr(kwargs.get("request")),
                    "answer": repr(answer),
                }
                with open(self._record, "a", encoding="utf-8") as out:
                    out.write(json.dumps(entry) + "\n")
            return answer

        return call


class LiveGcpHarness(Harness):
    """Reaches the real Dataproc sessions API of one project and region."""

    backend: ClassVar[str] = "dataproc"
    can_delay_start: ClassVar[bool] = True

    def __init__(self) -> None:
        from google.api_core.client_options import ClientOptions
        from google.cloud import dataproc_v1

        self.project = os.environ.get("SESSIONKIT_GCP_PROJECT")
        self.region = os.environ.get("SESSIONKIT_GCP_REGION")
        if not self.project or not self.region:
            pytest.skip(
                "set SESSIONKIT_GCP_PROJECT and SESSIONKIT_GCP_REGION to run the live suite"
            )
        self.service_account = os.environ.get("SESSIONKIT_GCP_SERVICE_ACCOUNT")
        client = dataproc_v1.SessionControllerClient(
            client_options=ClientOptions(api_endpoint=f"{self.region}-dataproc.googleapis.com:443")
        )
        self.client = _RecordingClient(client, os.environ.get("SESSIONKIT_LIVE_RECORD"))
        self.unsupported = ("max_dpus", 4.0)  # type: ignore[misc]

    def connection(self) -> dict[str, Any]:
        return {"client": self.client, "project": self.project, "region": self.region}

    def config(self) -> dict[str, Any]:
        return {"role": self.service_account} if self.service_account else {}

    def calls(self) -> int:
        return self.client.calls


class TestLiveDataprocConformance(SessionConformance):
    @pytest.fixture
    def harness(self) -> LiveGcpHarness:
        return LiveGcpHarness()

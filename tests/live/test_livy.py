"""The conformance suite and an end-to-end run against a real Livy server (opt-in).

Run with ``SESSIONKIT_LIVE=livy SESSIONKIT_LIVY_URL=https://host:8998 pytest -m livy tests/live``.
Authentication comes from the environment: ``SESSIONKIT_LIVY_USER`` and
``SESSIONKIT_LIVY_PASSWORD`` (basic), or ``SESSIONKIT_LIVY_TOKEN`` (bearer), or
``SESSIONKIT_LIVY_AZURE=synapse|fabric`` (Entra ID through azure-identity's default
credential). ``SESSIONKIT_LIVY_PROXY_USER`` sets the proxy user. Every session is stopped.
"""

from __future__ import annotations

import os
from typing import Any

import httpx
import pytest

import sessionkit
from sessionkit.backends.livy import auth as livy_auth
from sessionkit.models import Workers
from sessionkit.testing.conformance import Harness, SessionConformance

pytestmark = [
    pytest.mark.livy,
    pytest.mark.skipif(
        "livy" not in os.environ.get("SESSIONKIT_LIVE", "").split(","),
        reason="live Livy tests are opt-in: set SESSIONKIT_LIVE=livy and SESSIONKIT_LIVY_URL",
    ),
]


class LiveLivyHarness(Harness):
    """Reaches the Livy server at ``SESSIONKIT_LIVY_URL``; counts requests with an event hook."""

    backend = "livy"
    unsupported = ("workers", Workers(count=2, type="G.1X"))
    can_delay_start = True

    def __init__(self) -> None:
        self.url = os.environ.get("SESSIONKIT_LIVY_URL", "")
        if not self.url:
            pytest.skip("set SESSIONKIT_LIVY_URL to run the live livy suite")
        self._calls = 0
        self.client = httpx.Client(event_hooks={"request": [self._count]})
        self.auth = livy_auth.from_environment()

    def _count(self, request: httpx.Request) -> None:
        self._calls += 1

    def connection(self) -> dict[str, Any]:
        return {"client": self.client, "url": self.url, "auth": self.auth}

    def config(self) -> dict[str, Any]:
        user = os.environ.get("SESSIONKIT_LIVY_PROXY_USER")
        return {"role": user} if user else {}

    def calls(self) -> int:
        return self._calls

    def close(self) -> None:
        self.client.close()


class TestLiveLivyConformance(SessionConformance):
    @pytest.fixture
    def harness(self) -> Any:
        harness = LiveLivyHarness()
        yield harness
        harness.close()


def test_live_end_to_end() -> None:
    harness = LiveLivyHarness()
    try:
        with sessionkit.open_session("livy", **harness.connection(), **harness.config()) as session:
            session.run("x = 1")
            assert session.run("x + 1").output == "2"
    finally:
        harness.close()

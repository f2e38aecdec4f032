"""Third-party clients against the served emulator (opt-in: ``nox -s integration``).

These tests drive clients sessionkit does not control (aiobotocore, awswrangler, the AWS CLI,
...) through their own code paths, unchanged apart from the endpoint URL and credentials. Their
installs are heavy or pin botocore, so they run only when ``SESSIONKIT_INTEGRATION=1`` (the
``integration`` nox session sets it); then a missing client is an error, not a skip.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from sessionkit.testing import Emulator
from sessionkit.testing.server import ScaledClock

ENABLED = os.environ.get("SESSIONKIT_INTEGRATION") == "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if ENABLED:
        return
    skip = pytest.mark.skip(
        reason="third-party client tests are opt-in: nox -s integration (SESSIONKIT_INTEGRATION=1)"
    )
    for item in items:
        if "integration" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def fast_emulator() -> Iterator[Emulator]:
    """An emulator on real time at 60x: for clients that sleep real seconds between polls."""
    yield Emulator(clock=ScaledClock(speed=60))


@pytest.fixture
def served_fast(fast_emulator: Emulator) -> Iterator[str]:
    """The URL of ``fast_emulator`` served on a loopback port."""
    with fast_emulator.serve() as url:
        yield url


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dummy credentials and a region, as a client's default chain would find them."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDINTEGRATION")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "integration-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)

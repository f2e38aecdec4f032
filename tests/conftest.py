from __future__ import annotations

import os

import pytest

pytest_plugins = ["sessionkit.testing.fixtures"]

ROLE = "arn:aws:iam::123456789012:role/SessionkitTest"

# No test may reach AWS: point every default credential lookup at nothing real.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("SESSIONKIT_AWS_TESTS") == "1":
        return
    skip = pytest.mark.skip(reason="live AWS tests are opt-in: set SESSIONKIT_AWS_TESTS=1")
    for item in items:
        if item.get_closest_marker("aws") is not None:
            item.add_marker(skip)


@pytest.fixture
def emulator(sessionkit_emulator):  # type: ignore[no-untyped-def]
    return sessionkit_emulator


@pytest.fixture
def policy(emulator):  # type: ignore[no-untyped-def]
    return emulator.poll_policy()

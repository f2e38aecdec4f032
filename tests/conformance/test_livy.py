"""The conformance suite on the emulated Livy server."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from sessionkit.models import Workers
from sessionkit.testing.conformance import EmulatorHarness, SessionConformance


class LivyHarness(EmulatorHarness):
    """The emulator harness, with the livy rows its tables do not have yet."""

    _SERVICES: ClassVar[dict[str, str]] = {**EmulatorHarness._SERVICES, "livy": "livy"}
    _UNSUPPORTED: ClassVar[dict[str, tuple[str, Any] | None]] = {
        **EmulatorHarness._UNSUPPORTED,
        # Livy has executors but no worker types.
        "livy": ("workers", Workers(count=2, type="G.1X")),
    }
    _DESCRIBE: ClassVar[dict[str, tuple[str, ...]]] = {
        **EmulatorHarness._DESCRIBE,
        "livy": ("GetSession",),
    }

    def config(self) -> dict[str, Any]:
        # The proxy user is optional on Livy, and SessionConfig still checks role as an AWS
        # ARN (models.py), so the suite runs without one.
        return {}


class TestLivyConformance(SessionConformance):
    @pytest.fixture
    def harness(self) -> LivyHarness:
        return LivyHarness("livy")

"""The shipped conformance suite on the emulated Dataproc sessions API."""

from __future__ import annotations

from typing import Any

import pytest

from sessionkit.errors import InvalidConfigError
from sessionkit.models import SessionConfig
from sessionkit.testing.conformance import EmulatorHarness, SessionConformance


def _core_accepts_service_accounts() -> bool:
    try:
        SessionConfig(role="sa@my-project.iam.gserviceaccount.com")
    except InvalidConfigError:
        return False
    return True


class DataprocHarness(EmulatorHarness):
    """The emulator harness; without a role where the core still wants an IAM ARN.

    A Dataproc session needs no service account (the project's default compute account runs
    it), so the suite stays meaningful either way.
    """

    def config(self) -> dict[str, Any]:
        if _core_accepts_service_accounts():
            return super().config()
        return {}


class TestDataprocConformance(SessionConformance):
    @pytest.fixture
    def harness(self) -> DataprocHarness:
        return DataprocHarness("dataproc")

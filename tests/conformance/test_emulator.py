"""The conformance suite on the local emulator, for every backend the emulator wires."""

from __future__ import annotations

import pytest

from sessionkit.testing.conformance import EmulatorHarness, SessionConformance
from sessionkit.testing.emulator import emulated_backends


@pytest.fixture(params=emulated_backends())
def backend_name(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


class TestEmulatorConformance(SessionConformance):
    @pytest.fixture
    def harness(self, backend_name: str) -> EmulatorHarness:
        return EmulatorHarness(backend_name)

"""The conformance suite on the local emulator, for every built-in backend."""

from __future__ import annotations

import importlib.util

import pytest

from sessionkit.testing.conformance import EmulatorHarness, SessionConformance

_MODULES = {
    "glue": "sessionkit.testing.aws.glue",
    "emr-serverless": "sessionkit.testing.aws.emr_serverless",
    "athena": "sessionkit.testing.aws.athena",
    "dataproc": "sessionkit.testing.gcp.dataproc",
    "emr": "sessionkit.testing.aws.emr",
}


@pytest.fixture(params=sorted(_MODULES))
def backend_name(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    if importlib.util.find_spec(_MODULES[name]) is None:
        pytest.skip(f"the {name} emulator is not built yet")
    return name


class TestEmulatorConformance(SessionConformance):
    @pytest.fixture
    def harness(self, backend_name: str) -> EmulatorHarness:
        return EmulatorHarness(backend_name)

"""The "Writing a backend" guide, followed to the letter: its backend passes the suite.

The guide's own code blocks build a non-AWS backend with its own connection keywords
(``client=``, ``cluster=``) and a harness; this test runs them and then the shipped
conformance suite on that backend.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import sessionkit
from sessionkit import registry
from sessionkit.testing.conformance import Harness, SessionConformance
from tests.test_docs import code_blocks

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "writing-a-backend.md"


def _follow_the_guide() -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": "writing_a_backend_guide"}
    for block in code_blocks(GUIDE.read_text(encoding="utf-8")):
        if block.language == "python" and not block.no_run:
            exec(compile(block.code, f"{GUIDE.name}:block{block.number}", "exec"), namespace)
    return namespace


GUIDE_CODE = _follow_the_guide()


@pytest.fixture(autouse=True)
def toy_registered() -> Iterator[None]:
    sessionkit.register_backend("toy", GUIDE_CODE["ToyBackend"], clobber=True)
    yield
    registry._registry.pop("toy", None)


def test_the_guide_builds_a_backend_with_its_own_keywords() -> None:
    backend = GUIDE_CODE["ToyBackend"]
    assert backend.connection_fields == ("client",)
    assert backend.location_fields == ("cluster",)
    assert "toy" in sessionkit.available_backends()
    assert isinstance(registry.get_backend("toy"), type)


class TestGuideBackendConformance(SessionConformance):
    @pytest.fixture
    def harness(self) -> Harness:
        harness: Harness = GUIDE_CODE["ToyHarness"]()
        return harness

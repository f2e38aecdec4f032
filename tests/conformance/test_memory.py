"""The conformance suite on the in-memory reference backend."""

from __future__ import annotations

import pytest

from sessionkit.testing.conformance import MemoryHarness, SessionConformance


class TestMemoryConformance(SessionConformance):
    @pytest.fixture
    def harness(self) -> MemoryHarness:
        return MemoryHarness()

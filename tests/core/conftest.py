"""The core's tests run on the in-memory reference backend: no SDK, no emulator."""

from __future__ import annotations

from typing import Any

import pytest

from sessionkit.testing import memory


@pytest.fixture
def service() -> memory.MemoryService:
    memory.register()
    return memory.MemoryService()


@pytest.fixture
def where(service: memory.MemoryService) -> dict[str, Any]:
    """The keywords that reach the service, with a poll policy on its virtual clock."""
    return {"service": service, "namespace": "default", "poll_policy": service.poll_policy()}

from __future__ import annotations

import pytest

from sessionkit.cli import local


@pytest.fixture(autouse=True)
def fresh_local(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test gets its own process-local emulator behind --local, and no default backend."""
    local.reset()
    monkeypatch.delenv("SESSIONKIT_BACKEND", raising=False)
    monkeypatch.delenv("SESSIONKIT_EMULATOR_URL", raising=False)
    monkeypatch.delenv("COLUMNS", raising=False)

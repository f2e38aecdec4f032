"""The documented Airflow deferrable trigger, driven against the emulator without Airflow."""

from __future__ import annotations

import asyncio
import importlib
import json
from pathlib import Path
from typing import Any

import pytest

from sessionkit import open_session
from sessionkit.testing import Emulator

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"


@pytest.fixture
def trigger_module(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.syspath_prepend(str(EXAMPLES))
    return importlib.import_module("airflow_trigger")


def rebuild(serialized: tuple[str, dict[str, Any]]) -> Any:
    """What Airflow's triggerer does: JSON kwargs, classpath import, construct."""
    classpath, kwargs = serialized
    module, _, name = classpath.rpartition(".")
    return getattr(importlib.import_module(module), name)(**json.loads(json.dumps(kwargs)))


def events(trigger: Any) -> list[Any]:
    async def drive() -> list[Any]:
        return [event async for event in trigger.run()]

    return asyncio.run(drive())


@pytest.mark.parametrize("backend", ["glue", "emr-serverless", "athena"])
def test_the_trigger_waits_for_ready_after_a_serialize_round_trip(
    emulator: Emulator, trigger_module: Any, backend: str
) -> None:
    keywords = emulator.keywords(backend)
    client = keywords["client"]
    policy = emulator.poll_policy()

    class EmulatedTrigger(trigger_module.SessionReadyTrigger):  # type: ignore[misc,name-defined]
        def connection_keywords(self) -> dict[str, Any]:
            return {**self.connection, "client": client, "poll_policy": policy}

    session = open_session(
        backend, wait=False, role=emulator.role(backend), poll_policy=policy, **keywords
    )
    with session:
        trigger = trigger_module.SessionReadyTrigger(ref=session.ref().to_dict())
        classpath, kwargs = trigger.serialize()
        assert classpath == "airflow_trigger.SessionReadyTrigger"
        again = rebuild((classpath, kwargs))
        assert again.serialize() == (classpath, kwargs)
        emulated = EmulatedTrigger(**kwargs)
        (event,) = events(emulated)
        assert event.payload["status"] == "ready"
        assert event.payload["ref"] == session.ref().to_dict()
        # The trigger attached; it does not own the session, so it is still running.
        assert session.refresh().state.value == "READY"


def test_the_trigger_reports_a_failed_session(emulator: Emulator, trigger_module: Any) -> None:
    keywords = emulator.keywords("glue")
    client = keywords["client"]
    policy = emulator.poll_policy()

    class EmulatedTrigger(trigger_module.SessionReadyTrigger):  # type: ignore[misc,name-defined]
        def connection_keywords(self) -> dict[str, Any]:
            return {"client": client, "poll_policy": policy}

    session = open_session(
        "glue", wait=False, role=emulator.role("glue"), poll_policy=policy, **keywords
    )
    emulator.glue.fail(session.id, "the cluster went away")
    (event,) = events(EmulatedTrigger(ref=session.ref().to_dict()))
    assert event.payload["status"] == "failed"
    assert "the cluster went away" in event.payload["message"]

"""The conformance suite against moto's Glue: a second, independent implementation.

Known moto gaps (DESIGN.md section 8): CreateSession answers with an empty body, sessions are
READY at once, ErrorMessage is always "string", and stopped sessions never leave STOPPING.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import boto3
import moto
import pytest

import sessionkit
from sessionkit.states import SessionState
from sessionkit.testing import VirtualClock
from sessionkit.testing.conformance import Harness, SessionConformance
from sessionkit.waiting import DEFAULT_POLL
from tests.conftest import ROLE


class MotoGlueHarness(Harness):
    backend: ClassVar[str] = "glue"
    settles_stop: ClassVar[bool] = False

    def __init__(self) -> None:
        self.clock = VirtualClock()
        self.client = boto3.client("glue", region_name="us-east-1")
        self._calls = 0
        self.client.meta.events.register("before-call.glue", self._count)

    def _count(self, **kwargs: Any) -> None:
        self._calls += 1

    def connection(self) -> dict[str, Any]:
        return {
            "client": self.client,
            "poll_policy": DEFAULT_POLL.on(self.clock.monotonic, self.clock.sleep, self.clock.now),
        }

    def config(self) -> dict[str, Any]:
        return {"role": ROLE}

    def calls(self) -> int:
        return self._calls


@pytest.fixture
def moto_glue() -> Iterator[MotoGlueHarness]:
    with moto.mock_aws():
        yield MotoGlueHarness()


class TestMotoGlueConformance(SessionConformance):
    @pytest.fixture
    def harness(self, moto_glue: MotoGlueHarness) -> MotoGlueHarness:
        return moto_glue


def test_moto_create_with_empty_body_still_yields_a_session(moto_glue: MotoGlueHarness) -> None:
    session = sessionkit.open_session("glue", wait=False, role=ROLE, **moto_glue.connection())
    assert session.id.startswith("sessionkit-")
    assert session.refresh().state is SessionState.READY


def test_moto_stop_and_delete_request_reaches_moto(moto_glue: MotoGlueHarness) -> None:
    session = sessionkit.open_session("glue", role=ROLE, name="delete-me", **moto_glue.connection())
    session.stop(wait=False)
    assert session.refresh().state is SessionState.STOPPING
    # moto never finishes stopping, so the wait for STOPPED must time out, bounded.
    with pytest.raises(sessionkit.WaitTimeoutError):
        session.wait_until_stopped(timeout=30)


def test_moto_list_over_pages(moto_glue: MotoGlueHarness) -> None:
    ids = {
        sessionkit.open_session("glue", wait=False, role=ROLE, **moto_glue.connection()).id
        for _ in range(5)
    }
    listed = {i.id for i in sessionkit.list_sessions("glue", **moto_glue.connection())}
    assert ids <= listed

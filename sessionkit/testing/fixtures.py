"""pytest fixtures for testing code that uses sessionkit, with no cloud account.

Enable them in your ``conftest.py``::

    pytest_plugins = ["sessionkit.testing.fixtures"]

Then ask for ``sessionkit_emulator`` in a test; ``sessionkit_connection`` gives the keywords
that point sessionkit at it, and ``sessionkit_emulator_url`` serves it on a loopback port for
clients in other processes::

    def test_my_job(sessionkit_emulator, sessionkit_connection):
        with open_session(BACKEND, role=ROLE, **sessionkit_connection(BACKEND)) as session:
            assert session.state is SessionState.READY
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sessionkit.testing.emulator import Emulator

__all__ = ["sessionkit_connection", "sessionkit_emulator", "sessionkit_emulator_url"]


@pytest.fixture
def sessionkit_emulator() -> Iterator[Emulator]:
    """A fresh :class:`~sessionkit.testing.Emulator` on virtual time for one test."""
    yield Emulator()


@pytest.fixture
def sessionkit_connection(
    sessionkit_emulator: Emulator,
) -> Callable[[str], dict[str, Any]]:
    """Return ``connection(service)``: keywords for sessionkit calls against the emulator.

    The keywords are ``client=`` (an SDK client of the emulator, ``Emulator.client``) and
    ``poll_policy=`` (the default policy on the emulator's virtual clock, so waits take no real
    time).
    """
    clients: dict[str, Any] = {}

    def connection(service: str) -> dict[str, Any]:
        if service not in clients:
            clients[service] = sessionkit_emulator.client(service)
        return {"client": clients[service], "poll_policy": sessionkit_emulator.poll_policy()}

    return connection


@pytest.fixture
def sessionkit_emulator_url(sessionkit_emulator: Emulator) -> Iterator[str]:
    """The base URL of ``sessionkit_emulator`` served on 127.0.0.1 for this test.

    Point any client at it as its endpoint URL (any credentials); the server is shut down,
    with its threads, when the test ends.
    """
    with sessionkit_emulator.serve() as url:
        yield url

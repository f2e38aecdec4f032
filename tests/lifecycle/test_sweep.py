"""sweep_sessions: stop leaked sessions sessionkit started, never anyone else's."""

from __future__ import annotations

import gc
from datetime import timedelta
from typing import Any

import pytest

from sessionkit import (
    InvalidConfigError,
    NotSupportedError,
    SessionState,
    attach_session,
    open_session,
    sweep_sessions,
)
from sessionkit.testing import Emulator
from sessionkit.testing.emulator import emulated_backends

CREATED_BY = "sessionkit:created-by"
EXPIRES_AT = "sessionkit:expires-at"


def wired(emulator: Emulator, backend: str) -> tuple[dict[str, Any], dict[str, Any]]:
    connection = {"poll_policy": emulator.poll_policy(), **emulator.keywords(backend)}
    return {"role": emulator.role(backend), **connection}, connection


def leak(backend: str, keywords: dict[str, Any], tags: dict[str, str], **config: Any) -> str:
    """A session opened by a process that then died: started, never waited for, dropped."""
    # A long idle timeout, so the service's own clean-up does not end it first.
    session = open_session(
        backend, wait=False, tags=tags, idle_timeout=timedelta(hours=12), **config, **keywords
    )
    session_id = session.id
    del session
    gc.collect()
    return session_id


@pytest.mark.parametrize("backend", ["glue", "emr-serverless"])
def test_sweep_stops_old_tagged_sessions_and_spares_the_rest(
    emulator: Emulator, backend: str
) -> None:
    keywords, connection = wired(emulator, backend)
    service = emulator.service(backend)
    leaked = leak(backend, keywords, {CREATED_BY: "host-a/alice"})
    # Someone else's session (no sessionkit tags: opened by another tool, or with tagging off).
    foreign = leak(backend, keywords, {"team": "data"}, sessionkit_tags=False)
    emulator.clock.advance(3 * 3600)
    young = leak(backend, keywords, {CREATED_BY: "host-a/alice"})
    expiry = (emulator.clock.now() - timedelta(minutes=1)).isoformat()
    expired = leak(backend, keywords, {CREATED_BY: "host-b/bob", EXPIRES_AT: expiry})

    preview = sweep_sessions(backend, older_than="2h", dry_run=True, **connection)
    assert sorted(info.id for info in preview) == sorted([leaked, expired])
    assert all(service.status(i) not in _ENDED for i in (leaked, expired))  # dry run

    swept = sweep_sessions(backend, older_than=timedelta(hours=2), **connection)
    assert sorted(info.id for info in swept) == sorted([leaked, expired])
    assert all(info.tags and CREATED_BY in info.tags for info in swept)
    assert service.status(leaked) in _ENDED
    assert service.status(expired) in _ENDED
    assert service.status(foreign) not in _ENDED  # no tag: never stopped, however old
    assert service.status(young) not in _ENDED
    # A second sweep finds nothing more to do.
    assert sweep_sessions(backend, older_than="2h", **connection) == []


_ENDED = {"STOPPING", "STOPPED", "TERMINATING", "TERMINATED"}


@pytest.mark.parametrize("older_than", ["1.5h", "0s", "2 hours"])
def test_older_than_follows_the_one_duration_rule(emulator: Emulator, older_than: str) -> None:
    # The same rule as every other duration: whole numbers with a unit, positive.
    _, connection = wired(emulator, "glue")
    with pytest.raises(InvalidConfigError) as caught:
        sweep_sessions("glue", older_than=older_than, **connection)
    assert caught.value.field == "older_than"


def test_older_than_needs_a_unit(emulator: Emulator) -> None:
    _, connection = wired(emulator, "glue")
    with pytest.raises(InvalidConfigError) as caught:
        sweep_sessions("glue", older_than=7200, **connection)
    assert caught.value.field == "older_than"
    assert "unit" in str(caught.value)
    assert emulator.call_count() == 0


def test_a_session_stopped_before_the_sweep_is_not_reported(emulator: Emulator) -> None:
    keywords, connection = wired(emulator, "glue")
    with open_session("glue", tags={CREATED_BY: "me"}, **keywords) as session:
        pass
    session.wait_until_stopped()
    emulator.clock.advance(10 * 3600)
    assert sweep_sessions("glue", older_than="1h", **connection) == []
    assert session.refresh().state is SessionState.STOPPED


@pytest.mark.parametrize("backend", sorted(set(emulated_backends()) - {"athena"}))
def test_sessions_are_tagged_by_default_so_a_leak_is_swept(
    emulator: Emulator, backend: str
) -> None:
    keywords, connection = wired(emulator, backend)
    leaked = leak(backend, keywords, {})
    untagged = leak(backend, keywords, {}, sessionkit_tags=False)
    emulator.clock.advance(3 * 3600)
    swept = sweep_sessions(backend, older_than="2h", **connection)
    assert [info.id for info in swept] == [leaked]
    assert attach_session(backend, untagged, **connection).state.is_alive


def test_athena_says_it_cannot_sweep_instead_of_finding_nothing(emulator: Emulator) -> None:
    keywords, connection = wired(emulator, "athena")
    leaked = open_session("athena", wait=False, **keywords).id
    with pytest.raises(NotSupportedError, match="tags of a session"):
        sweep_sessions("athena", older_than="2h", **connection)
    assert emulator.service("athena").status(leaked) not in _ENDED

"""ensure_session: attach to the alive session of a name, or open one; races end with one."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from sessionkit import InvalidConfigError, Session, SessionState, ensure_session, open_session
from sessionkit.testing import Emulator


def wired(emulator: Emulator, backend: str) -> dict[str, Any]:
    return {
        "role": emulator.role(backend),
        "poll_policy": emulator.poll_policy(),
        **emulator.keywords(backend),
    }


@pytest.mark.parametrize("backend", ["glue", "emr-serverless", "athena"])
def test_opens_when_absent_and_attaches_when_alive(emulator: Emulator, backend: str) -> None:
    keywords = wired(emulator, backend)
    first = ensure_session(backend, "nightly", **keywords)
    assert first.owned
    assert first.state is SessionState.READY
    again = ensure_session(backend, "nightly", **keywords)
    assert again.id == first.id
    assert not again.owned
    with again:
        pass
    assert first.refresh().state is SessionState.READY  # the attached exit left it running
    first.stop()
    # Once it has ended, the name is free again on services where names are not ids.
    if backend != "glue":
        third = ensure_session(backend, "nightly", **keywords)
        assert third.owned and third.id != first.id
        third.stop(wait=False)


def test_a_session_of_another_name_is_not_taken(emulator: Emulator) -> None:
    keywords = wired(emulator, "emr-serverless")
    with open_session("emr-serverless", name="other", **keywords) as other:
        mine = ensure_session("emr-serverless", "mine", **keywords)
        assert mine.id != other.id and mine.owned
        mine.stop(wait=False)


@pytest.mark.parametrize("backend", ["glue", "emr-serverless"])
def test_two_racing_threads_end_with_one_session(emulator: Emulator, backend: str) -> None:
    keywords = wired(emulator, backend)
    # Each call takes 10 ms of virtual time, as a round trip takes real time: a session created
    # after another process's look is younger than that process's session.
    keywords["client"].meta.events.register(
        "before-call.*.*", lambda **kwargs: emulator.clock.advance(0.01)
    )
    barrier = threading.Barrier(2)
    results: list[Session] = []
    errors: list[BaseException] = []

    def racer() -> None:
        barrier.wait()
        try:
            results.append(ensure_session(backend, "race", wait=False, **keywords))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=racer) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert results[0].id == results[1].id
    # Exactly one of the two owns it; any extra session a loser made was stopped.
    assert sorted(s.owned for s in results) == [False, True]
    service = emulator.service(backend)
    running = [i for i in service.alive() if service.status(i) not in ("STOPPING", "TERMINATING")]
    assert running == [results[0].id]


@pytest.mark.parametrize(
    ("name", "extra", "field"),
    [("", {}, "name"), ("ok", {"idle_timeout": "soon"}, "idle_timeout")],
)
def test_bad_input_fails_before_any_call(
    emulator: Emulator, name: str, extra: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidConfigError) as caught:
        ensure_session("glue", name, **wired(emulator, "glue"), **extra)
    assert caught.value.field == field
    assert emulator.call_count() == 0

"""Ownership (never stop someone else's session) and leaks (never leave ours running)."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

import sessionkit
from sessionkit import ServiceError, SessionKitError, SessionState, WaitTimeoutError
from sessionkit.backends.base import (
    CREATED_BY_TAG,
    EXPIRES_AT_TAG,
    EXPIRY_IDLE_FACTOR,
    START_TOKEN_TAG,
    lifecycle_tags,
)
from sessionkit.testing import Emulator
from tests.hardening.helpers import BACKENDS, START, STOP, setup, starts


def _tags(request: dict[str, Any], backend: str) -> dict[str, str]:
    if backend == "athena":
        return {tag["Key"]: tag["Value"] for tag in request.get("Tags", [])}
    return dict(request.get("Tags" if backend == "glue" else "tags", {}))


def _once(client: Any, event: str, error: BaseException) -> list[int]:
    """Raise ``error`` once from a botocore event hook on ``client``; return the hit counter."""
    hits = [0]

    def hook(**kwargs: Any) -> None:
        if hits[0] == 0:
            hits[0] += 1
            raise error

    client.meta.events.register(event, hook)
    return hits


def _settled_alive(emulator: Emulator, backend: str) -> list[str]:
    emulator.clear_faults()
    emulator.clock.advance(600)
    return emulator.alive_sessions().get(backend, [])


# ----------------------------------------------------------------------------- ownership


def test_glue_never_adopts_or_stops_a_foreign_session_with_the_chosen_name() -> None:
    emulator, keywords = setup("glue")
    foreign = emulator.client("glue")
    foreign.create_session(
        Id="nightly", Role=keywords["role"], Command={"Name": "glueetl", "PythonVersion": "3"}
    )
    # Our first CreateSession is throttled; the retry meets AlreadyExists.
    emulator.inject("throttle", service="glue", operations="CreateSession", count=1)
    with pytest.raises(ServiceError) as caught:
        sessionkit.open_session("glue", name="nightly", **keywords)
    assert caught.value.code == "AlreadyExistsException"
    assert "not started by this open_session" in str(caught.value)
    assert emulator.call_count("glue", "StopSession") == 0
    assert foreign.get_session(Id="nightly")["Session"]["Status"] in ("PROVISIONING", "READY")


def test_glue_adopts_its_own_lost_answer_under_a_chosen_name() -> None:
    emulator, keywords = setup("glue")
    emulator.inject("read_timeout", service="glue", operations="CreateSession", count=1)
    with sessionkit.open_session("glue", name="mine", **keywords) as session:
        assert session.id == "mine"
        assert session.state is SessionState.READY
    assert emulator.glue.created() == 1
    assert _settled_alive(emulator, "glue") == []


def test_eight_threads_opening_one_name_under_throttling_end_with_one_owner() -> None:
    emulator, keywords = setup("glue")
    emulator.inject("throttle", service="glue", rate=0.3)
    owners: list[sessionkit.Session] = []
    refused: list[BaseException] = []
    lock = threading.Lock()

    def open_one() -> None:
        try:
            session = sessionkit.open_session("glue", name="shared", wait=False, **keywords)
        except SessionKitError as exc:
            with lock:
                refused.append(exc)
            return
        with lock:
            owners.append(session)

    threads = [threading.Thread(target=open_one) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(owners) == 1, (owners, refused)
    assert len(refused) == 7
    assert emulator.glue.created() == 1
    assert emulator.call_count("glue", "StopSession") == 0
    owners[0].stop(wait=False)


def test_emr_serverless_never_adopts_a_session_started_with_a_reused_client_token() -> None:
    emulator, keywords = setup("emr-serverless")
    theirs = sessionkit.open_session("emr-serverless", client_token="shared-token", **keywords)
    emulator.inject("throttle", service="emr-serverless", operations="StartSession", count=1)
    with pytest.raises(SessionKitError):
        sessionkit.open_session(
            "emr-serverless", client_token="shared-token", name="other", **keywords
        )
    assert emulator.call_count("emr-serverless", "TerminateSession") == 0
    assert theirs.refresh().state is SessionState.READY
    theirs.stop(wait=False)


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_start_carries_the_lifecycle_tags(backend: str) -> None:
    emulator, keywords = setup(backend)
    now = emulator.clock.now()
    sessionkit.open_session(
        backend, wait=False, tags={"team": "data"}, idle_timeout="20m", **keywords
    ).stop(wait=False)
    tags = _tags(starts(emulator, backend)[0], backend)
    assert tags["team"] == "data"
    assert tags[CREATED_BY_TAG].startswith("sk-")
    expires = datetime.strptime(tags[EXPIRES_AT_TAG], "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=timezone.utc
    )
    expected = now + timedelta(minutes=20) * EXPIRY_IDLE_FACTOR
    assert abs((expires - expected).total_seconds()) <= 1
    assert (START_TOKEN_TAG in tags) is (backend != "athena")


@pytest.mark.parametrize("backend", BACKENDS)
def test_sessionkit_tags_false_leaves_only_the_ownership_nonce(backend: str) -> None:
    emulator, keywords = setup(backend)
    sessionkit.open_session(backend, wait=False, sessionkit_tags=False, **keywords).stop(wait=False)
    tags = _tags(starts(emulator, backend)[0], backend)
    assert CREATED_BY_TAG not in tags and EXPIRES_AT_TAG not in tags
    assert set(tags) == ({START_TOKEN_TAG} if backend != "athena" else set())


def test_caller_tags_win_except_the_nonce() -> None:
    config = sessionkit.SessionConfig(
        max_duration="2h",
        tags={CREATED_BY_TAG: "me", START_TOKEN_TAG: "forged"},
    )
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    tags = lifecycle_tags(config, start_token="nonce", now=now)
    assert tags[CREATED_BY_TAG] == "me"
    assert tags[START_TOKEN_TAG] == "nonce"
    assert tags[EXPIRES_AT_TAG] == "2026-01-01T02:00:00Z"


# ----------------------------------------------------------------------------- leaks


@pytest.mark.parametrize("backend", BACKENDS)
def test_ctrl_c_after_the_start_landed_leaves_nothing_running(backend: str) -> None:
    emulator, keywords = setup(backend)
    client = keywords["client"]
    service = client.meta.service_model.service_id.hyphenize()
    _once(client, f"after-call.{service}.{START[backend]}", KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        sessionkit.open_session(backend, **keywords)
    assert _settled_alive(emulator, backend) == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_giving_up_on_lost_start_answers_leaves_nothing_running(backend: str) -> None:
    emulator, keywords = setup(backend)
    emulator.inject("read_timeout", service=backend, operations=START[backend], count=8)
    with pytest.raises(SessionKitError):
        sessionkit.open_session(backend, **keywords)
    assert emulator.created_sessions().get(backend, 0) <= 1
    assert _settled_alive(emulator, backend) == []


def test_an_emr_serverless_start_answer_without_its_id_is_a_service_error_and_no_leak() -> None:
    emulator, keywords = setup("emr-serverless", validate=False)
    service = emulator.emr_serverless
    original = service.op_start_session
    calls = [0]

    def without_id(params: dict[str, Any]) -> dict[str, Any]:
        calls[0] += 1
        answer = original(params)
        if calls[0] == 1:
            answer.pop("sessionId")
        return answer

    service.op_start_session = without_id  # type: ignore[method-assign]
    with pytest.raises(ServiceError) as caught:
        sessionkit.open_session("emr-serverless", **keywords)
    assert caught.value.code == "MalformedResponse"
    assert _settled_alive(emulator, "emr-serverless") == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_second_ctrl_c_during_the_exit_stop_still_stops_the_session(backend: str) -> None:
    emulator, keywords = setup(backend)
    client = keywords["client"]
    service = client.meta.service_model.service_id.hyphenize()
    with pytest.raises(KeyboardInterrupt), sessionkit.open_session(backend, **keywords):
        _once(client, f"before-call.{service}.{STOP[backend]}", KeyboardInterrupt())
        raise KeyboardInterrupt
    assert emulator.call_count(backend, STOP[backend]) >= 1
    assert _settled_alive(emulator, backend) == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_describe_answer_for_another_session_keeps_the_last_good_info(backend: str) -> None:
    emulator, keywords = setup(backend)
    with (
        sessionkit.open_session(backend, **keywords) as mine,
        sessionkit.open_session(backend, **keywords) as other,
    ):
        service = emulator.service(backend)
        getter = "op_get_session"
        original = getattr(service, getter)
        key = {"glue": "Id", "emr-serverless": "sessionId", "athena": "SessionId"}[backend]

        def swapped(params: dict[str, Any]) -> dict[str, Any]:
            return original({**params, key: other.id})  # type: ignore[no-any-return]

        setattr(service, getter, swapped)
        with pytest.raises(ServiceError) as caught:
            mine.refresh()
        setattr(service, getter, original)
        assert caught.value.code == "MalformedResponse"
        assert mine.id != other.id
        assert mine.info.id == mine.id


def test_the_open_timeout_bounds_the_application_start_too() -> None:
    emulator = Emulator()
    emulator.emr_serverless.timeline.application_starting = 3600.0
    app = emulator.emr_serverless.create_application("slow", state="CREATED")
    start = emulator.clock.monotonic()
    with pytest.raises(WaitTimeoutError):
        sessionkit.open_session(
            "emr-serverless",
            application_id=app,
            start_application=True,
            timeout=60,
            role=emulator.role("emr-serverless"),
            client=emulator.client("emr-serverless"),
            poll_policy=emulator.poll_policy(),
        )
    assert emulator.clock.monotonic() - start <= 61

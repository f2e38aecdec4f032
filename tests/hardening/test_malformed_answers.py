"""Malformed answers (missing members, nulls, unknown states, wrong ids): typed errors only."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import sessionkit
from sessionkit import ServiceError, SessionKitError, SessionState
from tests.hardening.helpers import BACKENDS, setup

#: Per backend, the operations a lifecycle makes, with the public call that makes them.
OPERATIONS: dict[str, dict[str, str]] = {
    "glue": {
        "GetSession": "refresh",
        "ListSessions": "list",
        "RunStatement": "run",
        "GetStatement": "run",
        "GetSessionEndpoint": "endpoint",
    },
    "emr-serverless": {
        "GetSession": "refresh",
        "ListSessions": "list",
        "GetSessionEndpoint": "endpoint",
    },
    "athena": {
        "GetSession": "refresh",
        "GetSessionStatus": "wait",
        "ListSessions": "list",
        "StartCalculationExecution": "run",
        "GetCalculationExecution": "run",
        "GetSessionEndpoint": "endpoint",
    },
}

ANSWERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "empty": lambda answer: {},
    "nulls": lambda answer: {key: None for key in answer},
    "list items without ids": lambda answer: {
        key: ([{}] if isinstance(value, list) else value) for key, value in answer.items()
    },
}


def _snake(operation: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in operation).lstrip("_")


def _public_call(
    backend: str, session: sessionkit.Session, keywords: dict[str, Any], how: str
) -> None:
    if how == "refresh":
        session.refresh()
    elif how == "wait":
        session.wait_until_ready(timeout=30)
    elif how == "list":
        location = {k: v for k, v in keywords.items() if k not in ("role", "poll_policy")}
        list(sessionkit.list_sessions(backend, poll_policy=keywords["poll_policy"], **location))
    elif how == "run":
        session.run("1 + 1", timeout=30)
    else:
        session.endpoint()


@pytest.mark.parametrize("shape", sorted(ANSWERS))
@pytest.mark.parametrize(
    ("backend", "operation"),
    [(backend, operation) for backend in BACKENDS for operation in OPERATIONS[backend]],
)
def test_a_malformed_answer_is_a_typed_error(backend: str, operation: str, shape: str) -> None:
    emulator, keywords = setup(backend, validate=False)
    if backend == "glue" and operation == "GetSessionEndpoint":
        keywords["spark_connect"] = True
    session = sessionkit.open_session(backend, **keywords)
    service = emulator.service(backend)
    name = f"op_{_snake(operation)}"
    original = getattr(service, name)
    setattr(service, name, lambda params: ANSWERS[shape](original(params)))
    before = session.info
    try:
        _public_call(backend, session, keywords, OPERATIONS[backend][operation])
    except SessionKitError as exc:
        assert not isinstance(exc, (KeyError, TypeError, AttributeError))
    finally:
        setattr(service, name, original)
    # Whatever happened, the session kept its identity and can still be stopped.
    assert session.id == before.id
    session.stop(wait=False)


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_unknown_state_is_unknown_not_a_crash(backend: str) -> None:
    emulator, keywords = setup(backend, validate=False)
    session = sessionkit.open_session(backend, **keywords)
    service = emulator.service(backend)
    original = service.op_get_session

    def odd_state(params: dict[str, Any]) -> dict[str, Any]:
        answer = original(params)
        record = answer.get("Session") or answer.get("session") or answer
        if "Status" in record and isinstance(record["Status"], dict):
            record["Status"]["State"] = "WIBBLE"
        elif "Status" in record:
            record["Status"] = "WIBBLE"
        else:
            record["state"] = "WIBBLE"
        return answer  # type: ignore[no-any-return]

    service.op_get_session = odd_state  # type: ignore[method-assign]
    assert session.refresh().state is SessionState.UNKNOWN
    service.op_get_session = original  # type: ignore[method-assign]
    session.stop(wait=False)


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_empty_describe_is_a_service_error_and_keeps_the_last_info(backend: str) -> None:
    emulator, keywords = setup(backend, validate=False)
    session = sessionkit.open_session(backend, **keywords)
    service = emulator.service(backend)
    original = service.op_get_session
    service.op_get_session = lambda params: {}  # type: ignore[method-assign]
    last = session.info
    with pytest.raises(ServiceError) as caught:
        session.refresh()
    assert caught.value.code == "MalformedResponse"
    assert session.info is last
    service.op_get_session = original  # type: ignore[method-assign]
    session.stop(wait=False)

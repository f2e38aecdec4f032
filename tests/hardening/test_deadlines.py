"""Every public call that is not a wait ends within PollPolicy.call_deadline (DESIGN 5).

Against a loopback server that accepts connections and never answers, and against a closed
port, the calls fail with CallTimeoutError within the deadline. These run on real time (a
socket cannot be driven by a virtual clock), with a 2-second deadline.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import sessionkit
from sessionkit import CallTimeoutError, PollPolicy, ServiceError
from sessionkit.backends.aws.common import CONNECT_TIMEOUT, READ_TIMEOUT, ClientFactory
from sessionkit.session import Session
from tests.hardening.helpers import BACKENDS

DEADLINE = 2.0
#: Scheduling slack on a loaded machine; the bound itself is the deadline.
SLACK = 1.0
LOCATION = {
    "glue": {},
    "emr-serverless": {"application_id": "app1"},
    "athena": {"work_group": "wg"},
}
#: Backends reached over HTTP that are not AWS: their own connection keywords.
OTHERS: dict[str, Callable[[str], dict[str, Any]]] = {
    "livy": lambda url: {"url": url},
    "dataproc": lambda url: {
        "project": "my-project",
        "region": "europe-west1",
        "endpoint_url": url,
    },
}
SESSION_ID = {"dataproc": "sess-1"}


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A loopback server that accepts every connection and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except OSError:
                continue
            held.append(connection)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join()
    for connection in held:
        connection.close()
    listener.close()


@pytest.fixture
def closed_port() -> str:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return f"http://127.0.0.1:{port}"


def _policy() -> PollPolicy:
    return PollPolicy(call_deadline=DEADLINE)


def _keywords(backend: str, url: str) -> dict[str, Any]:
    if backend in OTHERS:
        return {"poll_policy": _policy(), **OTHERS[backend](url)}
    return {
        "region": "us-east-1",
        "endpoint_url": url,
        "poll_policy": _policy(),
        **LOCATION[backend],
    }


def _timed(call: Callable[[], Any]) -> tuple[BaseException | None, float]:
    start = time.monotonic()
    try:
        call()
    except BaseException as exc:
        return exc, time.monotonic() - start
    return None, time.monotonic() - start


def _session(backend: str, url: str) -> Session:
    """A Session over the unreachable endpoint, as if it had been opened earlier."""
    from sessionkit.models import SessionInfo
    from sessionkit.registry import build_backend
    from sessionkit.states import SessionState

    keywords = _keywords(backend, url)
    policy = keywords.pop("poll_policy")
    impl = build_backend(backend, keywords, attaching=True)
    impl.poll_policy = policy
    info = SessionInfo(
        id=SESSION_ID.get(backend, "s1"),
        backend=backend,
        state=SessionState.READY,
        native_state="READY",
    )
    return Session(impl, info, owned=True, poll_policy=policy)


CALLS: dict[str, Callable[[str, str], Any]] = {
    "list_sessions": lambda backend, url: list(
        sessionkit.list_sessions(backend, **_keywords(backend, url))
    ),
    "attach_session": lambda backend, url: sessionkit.attach_session(
        backend, SESSION_ID.get(backend, "s1"), **_keywords(backend, url)
    ),
    "refresh": lambda backend, url: _session(backend, url).refresh(),
    "stop": lambda backend, url: _session(backend, url).stop(wait=False),
    "endpoint": lambda backend, url: _session(backend, url).endpoint(),
}

#: Every (backend, call) pair; Livy sessions have no Spark Connect endpoint to ask for.
PAIRS = [
    (backend, call)
    for backend in (*BACKENDS, *OTHERS)
    for call in sorted(CALLS)
    if not (backend == "livy" and call == "endpoint")
]


@pytest.mark.parametrize(("backend", "call"), PAIRS)
def test_a_silent_endpoint_fails_with_call_timeout_within_the_deadline(
    backend: str, call: str, silent_server: str
) -> None:
    error, took = _timed(lambda: CALLS[call](backend, silent_server))
    assert isinstance(error, CallTimeoutError), error
    assert isinstance(error, TimeoutError) and isinstance(error, ServiceError)
    assert took <= DEADLINE + SLACK


@pytest.mark.parametrize(("backend", "call"), PAIRS)
def test_a_closed_port_fails_with_call_timeout_within_the_deadline(
    backend: str, call: str, closed_port: str
) -> None:
    error, took = _timed(lambda: CALLS[call](backend, closed_port))
    assert isinstance(error, CallTimeoutError), error
    assert took <= DEADLINE + SLACK


def test_clients_sessionkit_builds_have_short_timeouts_and_no_botocore_retries() -> None:
    client = ClientFactory.client("glue", region="us-east-1", endpoint_url="http://127.0.0.1:9")
    config = client.meta.config
    assert config.connect_timeout <= CONNECT_TIMEOUT <= 5
    assert config.read_timeout <= READ_TIMEOUT <= 20
    assert config.retries["total_max_attempts"] == 1

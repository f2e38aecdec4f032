"""The emulator served on a loopback port, and the emulator core under it (one SDK session,
unknown operations, the bounded call log)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.exceptions
import pytest
from botocore.config import Config

from sessionkit import SessionState, attach_session, open_session
from sessionkit.testing import Emulator
from sessionkit.testing.emulator import emulated_backends
from sessionkit.testing.server import EmulatorServer, ScaledClock
from sessionkit.testing.serving import main
from tests.conftest import ROLE

CREDENTIALS = {
    "region_name": "us-east-1",
    "aws_access_key_id": "AKIDSERVED",
    "aws_secret_access_key": "served-secret",
}


@pytest.fixture
def served(emulator: Emulator) -> Iterator[str]:
    with emulator.serve() as url:
        yield url


def remote(url: str, service: str, **config: Any) -> Any:
    """A plain boto3 client that knows nothing of the emulator except its URL."""
    return boto3.client(
        service,
        endpoint_url=url,
        config=Config(retries={"total_max_attempts": 1}, **config),
        **CREDENTIALS,
    )


def control(url: str, method: str, path: str, body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{url}/_sessionkit/{path}", data=data, method=method)
    with urllib.request.urlopen(request) as response:
        return json.loads(response.read())


# -- the core: one SDK session, unknown operations, the bounded log -------------------------------


def test_clients_come_from_one_boto3_session(emulator: Emulator) -> None:
    assert emulator.boto3_session() is emulator.boto3_session()
    glue = emulator.client("glue")
    glue.create_session(Id="s", Role=ROLE, Command={"Name": "glueetl"})
    assert emulator.client("glue").get_session(Id="s")["Session"]["Id"] == "s"


def test_an_unimplemented_operation_answers_unknown_operation(emulator: Emulator) -> None:
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        emulator.client("glue").list_crawlers()
    assert caught.value.response["Error"]["Code"] == "UnknownOperationException"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_an_unemulated_query_service_answers_invalid_action(emulator: Emulator) -> None:
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        emulator.client("iam").list_roles()
    assert caught.value.response["Error"]["Code"] == "InvalidAction"


def test_the_call_log_is_bounded_and_the_counts_stay_exact() -> None:
    emulator = Emulator(max_calls=3)
    glue = emulator.client("glue")
    for _ in range(5):
        glue.list_sessions()
    assert len(emulator.calls) == 3
    assert emulator.call_count() == 5
    assert emulator.call_count("glue", "ListSessions") == 5
    unbounded = Emulator(max_calls=None)
    for _ in range(5):
        unbounded.client("glue").list_sessions()
    assert len(unbounded.calls) == 5
    with pytest.raises(ValueError, match="max_calls"):
        Emulator(max_calls=0)


# -- served: boto3 in this process ----------------------------------------------------------------


def test_a_plain_boto3_client_runs_a_glue_lifecycle(emulator: Emulator, served: str) -> None:
    glue = remote(served, "glue")
    created = glue.create_session(Id="w", Role=ROLE, Command={"Name": "glueetl"})
    assert created["Session"]["Status"] == "PROVISIONING"
    emulator.clock.advance(600)
    assert glue.get_session(Id="w")["Session"]["Status"] == "READY"
    glue.stop_session(Id="w")
    emulator.clock.advance(600)
    assert glue.get_session(Id="w")["Session"]["Status"] in ("STOPPED", "STOPPING")
    assert [c.operation for c in emulator.calls][:2] == ["CreateSession", "GetSession"]


def test_sessionkit_reaches_the_server_through_endpoint_url(
    emulator: Emulator, served: str
) -> None:
    keywords = {"endpoint_url": served, "region": "us-east-1"}
    with open_session("glue", role=ROLE, poll_policy=emulator.poll_policy(), **keywords) as session:
        assert session.state is SessionState.READY
        again = attach_session("glue", session.id, poll_policy=emulator.poll_policy(), **keywords)
        assert again.refresh().state is SessionState.READY
    emulator.clock.advance(600)
    assert emulator.alive_sessions() == {}
    assert emulator.call_count("glue", "StopSession") == 1


def test_rest_json_and_rest_xml_route_by_method_and_path(emulator: Emulator, served: str) -> None:
    application_id = control(
        served, "POST", "locations", {"backend": "emr-serverless", "name": "apps"}
    )["keywords"]["application_id"]
    emr = remote(served, "emr-serverless")
    assert emr.list_sessions(applicationId=application_id)["sessions"] == []
    emulator.s3.put_object("bucket", "dir/out.txt", b"hello")
    s3 = remote(served, "s3")
    assert s3.get_object(Bucket="bucket", Key="dir/out.txt")["Body"].read() == b"hello"
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        emr.list_applications()
    assert caught.value.response["Error"]["Code"] == "UnknownOperationException"


class FakeDrop(Exception):
    """What the fake provider raises for an injected connection fault."""


def fake_answer(
    emulator: Emulator,
    method: str,
    path: str,
    query: dict[str, str],
    headers: Any,
    body: bytes,
) -> tuple[int, dict[str, str], bytes]:
    """A provider's answer function, as Dataproc's and Livy's are."""
    if query.get("drop"):
        raise FakeDrop
    emulator.record("fake", method, emulator.clock.monotonic(), {}, "ok")
    answer = {"method": method, "path": path, "query": query, "body": body.decode()}
    return 201, {"Content-Type": "application/json"}, json.dumps(answer).encode()


def test_provider_paths_go_to_their_answer_function(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sessionkit.testing import server
    from sessionkit.testing.base import HttpRoute

    route = HttpRoute(
        answer="tests.testing.test_server:fake_answer",
        strip="/fake",
        drops=("tests.testing.test_server:FakeDrop",),
    )
    missing = HttpRoute(answer="tests.testing.no_such_module:answer")
    monkeypatch.setattr(server, "_HTTP_ROUTES", {"/fake/": route, "/gone/": missing})
    with emulator.serve() as url:
        request = urllib.request.Request(f"{url}/fake/sessions?size=2", data=b"{}", method="POST")
        with urllib.request.urlopen(request) as response:
            assert response.status == 201
            answer = json.loads(response.read())
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(f"{url}/gone/x")
        assert caught.value.code == 404
        with pytest.raises(ConnectionError):  # closed unanswered
            urllib.request.urlopen(f"{url}/fake/x?drop=1")
    assert answer == {"method": "POST", "path": "/sessions", "query": {"size": "2"}, "body": "{}"}
    assert emulator.call_count("fake") == 1


def test_faults_injected_through_the_control_endpoint(emulator: Emulator, served: str) -> None:
    glue = remote(served, "glue")
    control(served, "POST", "faults", {"kind": "throttle", "service": "glue", "count": 1})
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        glue.list_sessions()
    assert caught.value.response["Error"]["Code"] == "ThrottlingException"
    assert glue.list_sessions()["Ids"] == []
    control(served, "POST", "faults", {"kind": "connection_error", "operations": ["GetSession"]})
    with pytest.raises(botocore.exceptions.ConnectionClosedError):
        glue.get_session(Id="any")
    assert control(served, "GET", "faults")["faults"][1]["hits"] == 1
    control(served, "DELETE", "faults")
    assert emulator.faults == []
    calls = control(served, "GET", "calls?service=glue")
    assert calls["total"] == 3
    assert [c["outcome"] for c in calls["calls"]] == [
        "ThrottlingException",
        "ok",
        "connection_error",
    ]


def test_a_lost_answer_is_processed_then_dropped(emulator: Emulator, served: str) -> None:
    glue = remote(served, "glue")
    control(served, "POST", "faults", {"kind": "read_timeout", "operations": ["CreateSession"]})
    with pytest.raises(botocore.exceptions.ConnectionClosedError):
        glue.create_session(Id="lost", Role=ROLE, Command={"Name": "glueetl"})
    assert emulator.alive_sessions() == {"glue": ["lost"]}  # the service did create it
    assert emulator.calls[-1].outcome == "read_timeout"


def test_a_bad_control_request_says_what_is_known(served: str) -> None:
    with pytest.raises(urllib.error.HTTPError) as caught:
        control(served, "POST", "faults", {"kind": "meteor"})
    assert caught.value.code == 400
    with pytest.raises(urllib.error.HTTPError) as caught:
        control(served, "GET", "nothing")
    assert caught.value.code == 404
    assert "POST /_sessionkit/advance" in json.loads(caught.value.read())["error"]


def test_the_fixture_serves_the_fixture_emulator(
    sessionkit_emulator: Emulator, sessionkit_emulator_url: str
) -> None:
    remote(sessionkit_emulator_url, "glue").list_sessions()
    assert sessionkit_emulator.call_count("glue", "ListSessions") == 1


def test_advance_moves_the_clock_for_every_client(emulator: Emulator, served: str) -> None:
    before = emulator.clock.monotonic()
    answer = control(served, "POST", "advance?seconds=90")
    assert answer["monotonic"] == before + 90
    assert emulator.clock.monotonic() == before + 90


# -- served: clients in other processes -----------------------------------------------------------

CLIENT = textwrap.dedent(
    """
    import json, sys
    import boto3
    url, action, session_id = sys.argv[1:4]
    glue = boto3.client("glue", endpoint_url=url, region_name="eu-west-1",
                        aws_access_key_id="AKIDOTHER", aws_secret_access_key="other")
    if action == "open":
        glue.create_session(Id=session_id, Role=sys.argv[4], Command={"Name": "glueetl"})
    elif action == "stop":
        glue.stop_session(Id=session_id)
    print(json.dumps(glue.get_session(Id=session_id)["Session"]["Status"]))
    """
)


def run_client(url: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", CLIENT, url, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    status: str = json.loads(done.stdout)
    return status


def test_state_lives_across_client_processes(emulator: Emulator, served: str) -> None:
    assert run_client(served, "open", "across", ROLE) == "PROVISIONING"
    control(served, "POST", "advance?seconds=600")
    assert run_client(served, "status", "across") == "READY"
    assert run_client(served, "stop", "across") in ("STOPPING", "STOPPED")
    assert emulator.created_sessions() == {"glue": 1}
    assert [c.operation for c in emulator.calls if c.operation != "GetSession"] == [
        "CreateSession",
        "StopSession",
    ]


SESSIONKIT_CLIENT = textwrap.dedent(
    """
    import json, sys
    from sessionkit import attach_session, open_session
    from sessionkit.testing.server import connect
    url, backend, action = sys.argv[1:4]
    keywords, role = connect(url, backend, location="shared")
    if action == "open":
        # Left running on purpose; a long idle timeout outlasts slow process start-ups at 60x.
        session = open_session(backend, role=role, idle_timeout="8h", **keywords)
    else:
        session = attach_session(backend, sys.argv[4], **keywords)
        if action == "stop":
            session.stop()
        else:
            session.refresh()
    print(json.dumps([session.id, session.state.value]))
    """
)


def run_sessionkit(url: str, *args: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", SESSIONKIT_CLIENT, url, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    assert done.returncode == 0, done.stderr
    answer: list[str] = json.loads(done.stdout)
    return answer


@pytest.mark.parametrize("backend", ["emr-serverless", "athena"])
def test_sessionkit_open_status_stop_in_three_processes(backend: str) -> None:
    emulator = Emulator(clock=ScaledClock(speed=60))
    with emulator.serve() as url:
        session_id, state = run_sessionkit(url, backend, "open")
        assert state == "READY"
        assert run_sessionkit(url, backend, "status", session_id) == [session_id, "READY"]
        assert run_sessionkit(url, backend, "stop", session_id) == [session_id, "STOPPED"]
    # One session, opened by the first process and found again by the others.
    assert sum(emulator.created_sessions().values()) == 1
    assert emulator.alive_sessions() == {}


def test_connect_names_an_unknown_backend(served: str) -> None:
    from sessionkit.testing.server import connect

    with pytest.raises(LookupError, match="does not emulate the nimbus backend"):
        connect(served, "nimbus")


def test_locations_are_found_again_by_name(served: str) -> None:
    first = control(served, "POST", "locations", {"backend": "emr-serverless", "name": "a"})
    again = control(served, "POST", "locations", {"backend": "emr-serverless", "name": "a"})
    other = control(served, "POST", "locations", {"backend": "emr-serverless", "name": "b"})
    assert first == again
    assert first["keywords"]["application_id"] != other["keywords"]["application_id"]
    assert first["provider"] == "aws"


def test_main_serves_until_interrupted() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "sessionkit.testing.serving", "--port", "0", "--speed", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first.startswith("sessionkit emulator serving on http://127.0.0.1:")
        url = first.split()[4]
        assert process.stdout.readline().strip() == f"export SESSIONKIT_EMULATOR_URL={url}"
        assert control(url, "GET", "health")["backends"] == emulated_backends()
        work_group = control(url, "POST", "locations", {"backend": "athena", "name": "wg"})
        athena = remote(url, "athena")
        assert athena.get_work_group(WorkGroup="wg")["WorkGroup"]["Name"] == "wg"
        assert work_group["keywords"] == {"work_group": "wg"}
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_main_refuses_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--speed", "-1"]) == 2
    assert "--speed must not be negative" in capsys.readouterr().err
    assert main(["--bogus"]) == 2


# -- cleanup and clocks ---------------------------------------------------------------------------


def test_the_server_is_gone_after_the_block(emulator: Emulator) -> None:
    before = set(threading.enumerate())
    with emulator.serve() as url:
        glue = remote(url, "glue")  # keeps its connection open (keep-alive)
        glue.list_sessions()
        assert control(url, "GET", "health")["services"]
    assert set(threading.enumerate()) <= before
    with pytest.raises(urllib.error.URLError):
        control(url, "GET", "health")


def test_a_server_is_entered_and_closed_once(emulator: Emulator) -> None:
    server = EmulatorServer(emulator)
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.url
    with server:
        assert server.start() is server
        assert server.url.startswith("http://127.0.0.1:")
    server.close()


def test_a_scaled_clock_runs_fast_and_jumps() -> None:
    clock = ScaledClock(speed=1000)
    start = clock.monotonic()
    clock.advance(50)
    assert clock.monotonic() >= start + 50
    clock.sleep(0.5)
    assert clock.monotonic() >= start + 50.5
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(-1)
    with pytest.raises(ValueError, match="positive"):
        ScaledClock(speed=0)

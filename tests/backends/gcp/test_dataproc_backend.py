"""The dataproc backend's own behaviour: states, responses, names, list, stop, start, errors."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from typing import Any

import pytest
import requests
from google.api_core import exceptions as api_exceptions
from google.cloud import dataproc_v1

import sessionkit
from sessionkit import SessionState
from sessionkit.backends.gcp.dataproc import (
    STATE_MAP,
    DataprocBackend,
    list_filter,
    session_info,
    spark_connect_url,
)
from sessionkit.backends.gcp.errors import translate_error
from sessionkit.errors import (
    InvalidConfigError,
    NotSupportedError,
    ServiceError,
    ThrottledError,
)
from sessionkit.models import SessionInfo, Usage
from sessionkit.testing import Emulator
from sessionkit.testing.gcp.dataproc import DataprocService


@pytest.fixture
def emulator() -> Emulator:
    return Emulator()


@pytest.fixture
def keywords(emulator: Emulator) -> dict[str, Any]:
    return {
        **emulator.keywords("dataproc", location="backend"),
        "poll_policy": emulator.poll_policy(),
    }


def _service(emulator: Emulator) -> DataprocService:
    service = emulator.service("dataproc")
    assert isinstance(service, DataprocService)
    return service


# ----------------------------------------------------------------------------- states


def test_state_table_covers_the_sdk_enum() -> None:
    """Every Session.State the installed SDK knows is mapped: a new state fails here."""
    assert set(STATE_MAP) == set(dataproc_v1.Session.State.__members__)


def test_state_table_is_design_section_4() -> None:
    assert STATE_MAP == {
        "STATE_UNSPECIFIED": SessionState.UNKNOWN,
        "CREATING": SessionState.STARTING,
        "ACTIVE": SessionState.READY,
        "TERMINATING": SessionState.STOPPING,
        "TERMINATED": SessionState.STOPPED,
        "FAILED": SessionState.FAILED,
    }


# ----------------------------------------------------------------------------- responses


def _record(**fields: Any) -> dataproc_v1.Session:
    base: dict[str, Any] = {
        "name": "projects/p-1234/locations/europe-west1/sessions/my-session",
        "uuid": "0b5e6c2a-0000-4000-8000-000000000001",
        "create_time": "2026-01-01T10:00:00Z",
        "state": "TERMINATED",
        "state_message": "Session was idle for too long",
        "state_time": "2026-01-01T11:30:00Z",
        "labels": {"team": "data", "sessionkit-start-token": "abc"},
        "environment_config": {"execution_config": {"idle_ttl": "1800s"}},
        "state_history": [
            {"state": "CREATING", "state_start_time": "2026-01-01T10:00:00Z"},
            {"state": "ACTIVE", "state_start_time": "2026-01-01T10:01:30Z"},
            {"state": "TERMINATING", "state_start_time": "2026-01-01T11:29:00Z"},
        ],
        "runtime_info": {
            "approximate_usage": {
                "milli_dcu_seconds": "21600000",
                "shuffle_storage_gb_seconds": "540000",
            }
        },
    }
    base.update(fields)
    return dataproc_v1.Session(base)


def test_session_info_translation() -> None:
    info = session_info(_record())
    assert info.id == "my-session"
    assert info.backend == "dataproc"
    assert info.state is SessionState.STOPPED
    assert info.native_state == "TERMINATED"
    assert info.reason == "Session was idle for too long"
    assert info.created_at is not None and info.created_at.tzinfo is not None
    assert info.created_at.isoformat() == "2026-01-01T10:00:00+00:00"
    assert (
        info.started_at is not None and info.started_at.isoformat() == "2026-01-01T10:01:30+00:00"
    )
    assert info.ended_at is not None and info.ended_at.isoformat() == "2026-01-01T11:30:00+00:00"
    assert info.idle_timeout == timedelta(minutes=30)
    assert info.raw["uuid"] == "0b5e6c2a-0000-4000-8000-000000000001"
    assert info.raw["labels"]["team"] == "data"


def test_session_info_resource_name_and_tags() -> None:
    info = session_info(_record())
    assert info.resource_name == "projects/p-1234/locations/europe-west1/sessions/my-session"
    assert info.tags == {"team": "data", "sessionkit-start-token": "abc"}


def test_session_info_usage() -> None:
    usage = session_info(_record()).usage
    assert usage.dcu_seconds == 21600.0
    assert usage.shuffle_storage_gb_seconds == 540000.0


def test_a_new_state_is_unknown_not_a_crash() -> None:
    info = session_info(_record(state="STATE_UNSPECIFIED", state_message=""))
    assert info.state is SessionState.UNKNOWN
    assert info.reason is None


def test_active_session_started_at_without_history() -> None:
    info = session_info(
        _record(state="ACTIVE", state_history=[], state_time="2026-01-01T10:02:00Z")
    )
    assert info.state is SessionState.READY
    assert info.started_at is not None and info.started_at.isoformat().startswith(
        "2026-01-01T10:02"
    )
    assert info.ended_at is None


# ----------------------------------------------------------------------------- lifecycle


def test_open_reports_a_resource_in_the_location(
    emulator: Emulator, keywords: dict[str, Any]
) -> None:
    with sessionkit.open_session("dataproc", **keywords) as session:
        assert session.state is SessionState.READY
        message = _service(emulator).session_message(session.id)
        assert message.name == (
            f"projects/{keywords['project']}/locations/europe-west1/sessions/{session.id}"
        )
    assert _service(emulator).session_message(session.id).state.name in (
        "TERMINATING",
        "TERMINATED",
    )


def test_create_does_not_wait_on_the_operation(
    emulator: Emulator, keywords: dict[str, Any]
) -> None:
    """The start is one CreateSession then GetSession; no GetOperation is ever sent."""
    sessionkit.open_session("dataproc", wait=False, **keywords)
    assert [c.operation for c in emulator.calls] == ["CreateSession", "GetSession"]
    session = sessionkit.open_session("dataproc", **keywords)
    session.stop()
    assert emulator.call_count("dataproc", "GetOperation") == 0


def test_every_call_has_a_deadline(emulator: Emulator, keywords: dict[str, Any]) -> None:
    with sessionkit.open_session("dataproc", spark_connect=True, **keywords) as session:
        session.endpoint()
        list(sessionkit.list_sessions("dataproc", **keywords))
    timeouts = _service(emulator).timeouts
    assert timeouts
    assert all(isinstance(t, (int, float)) and 0 < t <= 20 for t in timeouts)


def test_the_sdk_does_not_retry(emulator: Emulator, keywords: dict[str, Any]) -> None:
    """retry=None: one injected 503 reaches sessionkit as one retryable ServiceError."""
    session = sessionkit.open_session("dataproc", **keywords)
    backend = session.implementation
    emulator.inject("server_error", service="dataproc", operations="GetSession", count=1)
    before = emulator.call_count("dataproc", "GetSession")
    with pytest.raises(ServiceError) as caught:
        backend._describe(session.id)
    assert caught.value.retryable
    assert caught.value.code == "UNAVAILABLE"
    assert isinstance(caught.value.__cause__, api_exceptions.ServiceUnavailable)
    assert emulator.call_count("dataproc", "GetSession") == before + 1
    session.stop(wait=False)


def test_stop_terminates_and_delete_removes(emulator: Emulator, keywords: dict[str, Any]) -> None:
    session = sessionkit.open_session("dataproc", **keywords)
    info = session.stop(delete=True)
    assert info.state is SessionState.STOPPED
    assert emulator.call_count("dataproc", "TerminateSession") == 1
    assert emulator.call_count("dataproc", "DeleteSession") == 1
    with pytest.raises(ServiceError) as caught:
        session.refresh()
    assert caught.value.code == "NOT_FOUND"
    assert not caught.value.retryable


def test_idle_ttl_ends_the_session(emulator: Emulator, keywords: dict[str, Any]) -> None:
    session = sessionkit.open_session("dataproc", idle_timeout=timedelta(minutes=10), **keywords)
    emulator.clock.advance(11 * 60)
    info = session.refresh()
    assert info.state in (SessionState.STOPPING, SessionState.STOPPED)
    assert info.reason is not None and "idle" in info.reason


# ----------------------------------------------------------------------------- attach and names


def test_attach_by_full_resource_name_needs_no_location(
    emulator: Emulator, keywords: dict[str, Any]
) -> None:
    session = sessionkit.open_session("dataproc", **keywords)
    full = f"projects/{keywords['project']}/locations/europe-west1/sessions/{session.id}"
    attached = sessionkit.attach_session(
        "dataproc", full, client=keywords["client"], poll_policy=keywords["poll_policy"]
    )
    assert attached.id == session.id
    assert attached.refresh().state is SessionState.READY
    attached.stop()
    assert session.refresh().state is SessionState.STOPPED


def test_attach_by_short_id_needs_project_and_region(
    emulator: Emulator, keywords: dict[str, Any]
) -> None:
    before = emulator.call_count()
    with pytest.raises(InvalidConfigError) as caught:
        sessionkit.attach_session("dataproc", "my-session", client=keywords["client"])
    assert caught.value.field == "project"
    assert "projects/P/locations/R/sessions/S" in str(caught.value)
    assert emulator.call_count() == before


def test_attach_name_contradicting_the_location_is_rejected(
    emulator: Emulator, keywords: dict[str, Any]
) -> None:
    with pytest.raises(InvalidConfigError) as caught:
        sessionkit.attach_session(
            "dataproc", "projects/other-project/locations/europe-west1/sessions/abcd", **keywords
        )
    assert caught.value.field == "session_id"


def test_attach_unknown_session_is_not_found(emulator: Emulator, keywords: dict[str, Any]) -> None:
    with pytest.raises(ServiceError) as caught:
        sessionkit.attach_session("dataproc", "no-such-session", **keywords)
    assert caught.value.code == "NOT_FOUND"
    assert not caught.value.retryable
    assert isinstance(caught.value.__cause__, api_exceptions.NotFound)


# ----------------------------------------------------------------------------- list


def test_list_filter_expressions() -> None:
    assert list_filter(None) is None
    assert list_filter(frozenset({SessionState.READY})) == "(state = ACTIVE)"
    assert (
        list_filter(frozenset({SessionState.READY, SessionState.STARTING}))
        == "(state = ACTIVE OR state = CREATING)"
    )
    # UNKNOWN may be any native value: no state filter on the service.
    assert list_filter(frozenset({SessionState.UNKNOWN, SessionState.READY})) is None
    # Nothing native is BUSY on Dataproc.
    assert list_filter(frozenset({SessionState.BUSY})) == ""
    assert (
        list_filter(frozenset({SessionState.READY}), {"team": "data"})
        == '(state = ACTIVE) AND labels.team = "data"'
    )


def test_list_filters_on_the_service_and_pages(
    emulator: Emulator, keywords: dict[str, Any]
) -> None:
    _service(emulator).timeline.max_page_size = 2
    sessions = [sessionkit.open_session("dataproc", **keywords) for _ in range(5)]
    sessions[0].stop()
    ready = list(sessionkit.list_sessions("dataproc", states=[SessionState.READY], **keywords))
    assert sorted(i.id for i in ready) == sorted(s.id for s in sessions[1:])
    calls = [c for c in emulator.calls if c.operation == "ListSessions"]
    assert len(calls) == 2  # 4 sessions, 2 per page
    assert calls[0].params["query"]["filter"] == "(state = ACTIVE)"
    assert "pageToken" not in calls[0].params["query"]
    assert calls[1].params["query"]["pageToken"]
    everything = list(sessionkit.list_sessions("dataproc", **keywords))
    assert len(everything) == 5
    for session in sessions[1:]:
        session.stop(wait=False)


def test_list_of_states_dataproc_never_has_makes_no_call(
    emulator: Emulator, keywords: dict[str, Any]
) -> None:
    sessionkit.open_session("dataproc", **keywords).stop(wait=False)
    before = emulator.call_count()
    assert list(sessionkit.list_sessions("dataproc", states=[SessionState.BUSY], **keywords)) == []
    assert emulator.call_count() == before


def test_list_needs_the_location(emulator: Emulator, keywords: dict[str, Any]) -> None:
    del keywords["region"]
    with pytest.raises(InvalidConfigError) as caught:
        list(sessionkit.list_sessions("dataproc", **keywords))
    assert caught.value.field == "region"


# ----------------------------------------------------------------------------- idempotent start


def test_lost_create_answer_is_retried_with_the_same_request_id(
    emulator: Emulator, keywords: dict[str, Any]
) -> None:
    emulator.inject("read_timeout", service="dataproc", operations="CreateSession", count=1)
    session = sessionkit.open_session("dataproc", **keywords)
    creates = [c for c in emulator.calls if c.operation == "CreateSession"]
    assert len(creates) == 2
    assert creates[0].params["query"] == creates[1].params["query"]
    assert emulator.created_sessions()["dataproc"] == 1
    assert session.state is SessionState.READY
    session.stop()


def test_retry_meeting_its_own_session_adopts_it(
    emulator: Emulator, keywords: dict[str, Any]
) -> None:
    """Without request-id dedup the retry meets ALREADY_EXISTS; the start-token label proves
    the session is this start's, so it is adopted, not duplicated, not refused."""
    _service(emulator).timeline.honor_request_id = False
    emulator.inject("read_timeout", service="dataproc", operations="CreateSession", count=1)
    session = sessionkit.open_session("dataproc", name="adopted-one", **keywords)
    outcomes = [c.outcome for c in emulator.calls if c.operation == "CreateSession"]
    assert outcomes == ["read_timeout", "ALREADY_EXISTS"]
    assert session.id == "adopted-one"
    assert session.owned
    assert emulator.created_sessions()["dataproc"] == 1
    session.stop()


def test_a_foreign_session_of_that_name_is_refused_and_left_alone(
    emulator: Emulator, keywords: dict[str, Any]
) -> None:
    theirs = sessionkit.open_session("dataproc", name="shared-name", **keywords)
    with pytest.raises(ServiceError) as caught:
        sessionkit.open_session("dataproc", name="shared-name", **keywords)
    assert caught.value.code == "ALREADY_EXISTS"
    assert not caught.value.retryable
    assert "not started by this call" in str(caught.value)
    assert emulator.call_count("dataproc", "TerminateSession") == 0
    assert theirs.refresh().state is SessionState.READY
    theirs.stop()


def test_connection_error_on_create_is_retried_once_created(
    emulator: Emulator, keywords: dict[str, Any]
) -> None:
    emulator.inject("connection_error", service="dataproc", operations="CreateSession", count=1)
    session = sessionkit.open_session("dataproc", **keywords)
    assert emulator.created_sessions()["dataproc"] == 1
    session.stop()


def test_throttled_describe_right_after_create_does_not_create_again(
    emulator: Emulator, keywords: dict[str, Any]
) -> None:
    emulator.inject("throttle", service="dataproc", operations="GetSession", count=1)
    session = sessionkit.open_session("dataproc", **keywords)
    assert emulator.call_count("dataproc", "CreateSession") == 1
    assert session.state is SessionState.READY
    session.stop()


def test_interrupted_start_is_abandoned_only_with_proof(
    emulator: Emulator, keywords: dict[str, Any]
) -> None:
    """Create answers lost every time: the retries run out and the session it made is stopped."""
    emulator.inject("read_timeout", service="dataproc", operations="CreateSession")
    with pytest.raises(ServiceError):
        sessionkit.open_session("dataproc", name="lost-answers", **keywords)
    emulator.clear_faults()
    emulator.clock.advance(600)
    assert "lost-answers" not in emulator.alive_sessions().get("dataproc", [])
    assert emulator.created_sessions()["dataproc"] == 1


# ----------------------------------------------------------------------------- endpoint and spark


def test_endpoint_is_the_spark_connect_server(emulator: Emulator, keywords: dict[str, Any]) -> None:
    with sessionkit.open_session("dataproc", spark_connect=True, **keywords) as session:
        endpoint = session.endpoint()
        message = _service(emulator).session_message(session.id)
        assert endpoint.url == message.runtime_info.endpoints["Spark Connect Server"]
        assert endpoint.token is None
        # DESIGN section 9: spark_connect_url is the endpoint value as the service gives it.
        assert endpoint.spark_connect_url == endpoint.url


def test_endpoint_of_a_non_spark_connect_session_is_not_supported(
    emulator: Emulator, keywords: dict[str, Any]
) -> None:
    with sessionkit.open_session("dataproc", **keywords) as session:
        with pytest.raises(NotSupportedError) as caught:
            session.endpoint()
        assert "spark_connect=True" in str(caught.value)


def test_spark_without_dataproc_spark_connect_names_the_package(
    emulator: Emulator, keywords: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A None entry in sys.modules makes the import fail, installed or not.
    monkeypatch.setitem(sys.modules, "google.cloud.dataproc_spark_connect", None)
    with sessionkit.open_session("dataproc", spark_connect=True, **keywords) as session:
        with pytest.raises(NotSupportedError) as caught:
            session.spark()
        assert "pip install dataproc-spark-connect" in str(caught.value)


def test_spark_connect_channel_url_recipe() -> None:
    assert (
        spark_connect_url("sc://abc-dot-europe-west1.dataproc.googleusercontent.com/", "u-1")
        == "sc://abc-dot-europe-west1.dataproc.googleusercontent.com/;session_id=u-1;use_ssl=true"
    )


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("exc", "kind", "code", "retryable"),
    [
        (api_exceptions.ResourceExhausted("quota"), ThrottledError, "RESOURCE_EXHAUSTED", True),
        (api_exceptions.TooManyRequests("slow down"), ThrottledError, "TooManyRequests", True),
        (api_exceptions.ServiceUnavailable("down"), ServiceError, "UNAVAILABLE", True),
        (api_exceptions.InternalServerError("oops"), ServiceError, "INTERNAL", True),
        (api_exceptions.DeadlineExceeded("slow"), ServiceError, "DEADLINE_EXCEEDED", True),
        (api_exceptions.NotFound("gone"), ServiceError, "NOT_FOUND", False),
        (api_exceptions.AlreadyExists("taken"), ServiceError, "ALREADY_EXISTS", False),
        (api_exceptions.PermissionDenied("no"), ServiceError, "PERMISSION_DENIED", False),
        (api_exceptions.InvalidArgument("bad"), ServiceError, "INVALID_ARGUMENT", False),
        (requests.exceptions.ConnectionError("refused"), ServiceError, "ConnectionError", True),
        (requests.exceptions.ReadTimeout("lost"), ServiceError, "ReadTimeout", True),
    ],
)
def test_error_translation(exc: BaseException, kind: type, code: str, retryable: bool) -> None:
    translated = translate_error(exc, operation="GetSession")
    assert type(translated) is kind
    assert isinstance(translated, ServiceError)
    assert translated.code == code
    assert translated.retryable is retryable
    assert translated.operation == "GetSession"


def test_unrelated_exceptions_pass_through() -> None:
    error = KeyError("x")
    assert translate_error(error, operation="GetSession") is error


def test_no_credentials_is_a_service_error_not_a_google_exception(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import google.auth
    from google.auth import exceptions as auth_exceptions

    def no_credentials(*args: Any, **kwargs: Any) -> Any:
        raise auth_exceptions.DefaultCredentialsError("no ADC")

    monkeypatch.setattr(google.auth, "default", no_credentials)
    backend = DataprocBackend(project="my-project", region="europe-west1")
    with pytest.raises(ServiceError) as caught:
        backend._describe("abcd")
    assert caught.value.code == "NoCredentials"
    assert isinstance(caught.value.__cause__, auth_exceptions.DefaultCredentialsError)


# ----------------------------------------------------------------------------- imports


def test_import_sessionkit_imports_no_google() -> None:
    code = (
        "import sys, sessionkit, sessionkit.testing;"
        "sessionkit.available_backends();"
        "bad = [m for m in sys.modules if m == 'google' or m.startswith('google.')];"
        "print(bad); raise SystemExit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_backend_repr_has_no_client_or_credentials() -> None:
    backend = DataprocBackend(project="my-project", region="europe-west1", credentials="SECRET")
    assert "SECRET" not in repr(backend)


# ----------------------------------------------------------------------------- DESIGN v2 fields


def test_v2_model_fields_are_filled_when_the_models_have_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """resource_name, tags and the Dataproc usage fields reach models that declare them."""
    import attrs

    from sessionkit.backends.gcp import dataproc as module

    @attrs.frozen(kw_only=True)
    class UsageV2(Usage):
        dcu_seconds: float | None = None
        shuffle_storage_gb_seconds: float | None = None

    @attrs.frozen(kw_only=True)
    class InfoV2(SessionInfo):
        resource_name: str | None = None
        tags: dict[str, str] = attrs.field(factory=dict)

    monkeypatch.setattr(module, "Usage", UsageV2)
    monkeypatch.setattr(module, "SessionInfo", InfoV2)
    info = module.session_info(_record())
    assert isinstance(info, InfoV2) and isinstance(info.usage, UsageV2)
    assert info.resource_name == "projects/p-1234/locations/europe-west1/sessions/my-session"
    assert info.tags == {"team": "data", "sessionkit-start-token": "abc"}
    assert info.usage.dcu_seconds == 21600.0
    assert info.usage.shuffle_storage_gb_seconds == 540000.0


def test_spark_goes_through_dataproc_spark_connect(
    emulator: Emulator, keywords: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the package present, spark() builds its channel on the session's endpoint."""
    import types

    built: list[str] = []

    class FakeChannelBuilder:
        def __init__(self, url: str) -> None:
            built.append(url)
            self.url = url

    class FakeSparkSession:
        is_stopped = False

        def __init__(self, connection: FakeChannelBuilder) -> None:
            self.connection = connection

    package = types.ModuleType("google.cloud.dataproc_spark_connect")
    package.DataprocSparkSession = FakeSparkSession
    channels = types.ModuleType("google.cloud.dataproc_spark_connect.client")
    channels.DataprocChannelBuilder = FakeChannelBuilder
    monkeypatch.setitem(sys.modules, "google.cloud.dataproc_spark_connect", package)
    monkeypatch.setitem(sys.modules, "google.cloud.dataproc_spark_connect.client", channels)
    with sessionkit.open_session("dataproc", spark_connect=True, **keywords) as session:
        spark = session.spark()
        assert isinstance(spark, FakeSparkSession)
        message = _service(emulator).session_message(session.id)
        url = message.runtime_info.endpoints["Spark Connect Server"]
        assert built == [f"{url}/;session_id={message.uuid};use_ssl=true"]
        assert session.spark() is spark  # reused while open
        spark.is_stopped = True
        assert session.spark() is not spark  # a stopped one is replaced


def test_eight_threads_racing_on_one_name_end_with_one_owner(
    emulator: Emulator, keywords: dict[str, Any]
) -> None:
    import threading

    emulator.inject("throttle", service="dataproc", operations="CreateSession", rate=0.3)
    owners: list[sessionkit.Session] = []
    refused: list[ServiceError] = []
    lock = threading.Lock()

    def contend() -> None:
        try:
            session = sessionkit.open_session("dataproc", name="contested", wait=False, **keywords)
        except ServiceError as exc:
            with lock:
                refused.append(exc)
        else:
            with lock:
                owners.append(session)

    threads = [threading.Thread(target=contend) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(owners) == 1
    assert len(refused) == 7
    assert {exc.code for exc in refused} == {"ALREADY_EXISTS"}
    assert emulator.created_sessions()["dataproc"] == 1
    assert emulator.call_count("dataproc", "TerminateSession") == 0
    owners[0].stop()


def test_calls_send_sdk_request_messages_without_sdk_retries() -> None:
    """Against a bare stand-in client: typed requests, retry=None and a deadline on each call."""
    seen: list[tuple[str, Any, dict[str, Any]]] = []
    record = _record(
        state="ACTIVE", name="projects/my-project/locations/europe-west1/sessions/abcd"
    )

    class StandIn:
        def __getattr__(self, method: str) -> Any:
            def call(*, request: Any, **options: Any) -> Any:
                seen.append((method, request, options))
                if method == "list_sessions":
                    return dataproc_v1.ListSessionsResponse(sessions=[record])
                return record

            return call

    backend = DataprocBackend(project="my-project", region="europe-west1", client=StandIn())
    backend._describe("abcd")
    backend._list_page(frozenset({SessionState.READY}), None)
    backend._stop("abcd")
    backend._delete("abcd")
    kinds = {
        "get_session": dataproc_v1.GetSessionRequest,
        "list_sessions": dataproc_v1.ListSessionsRequest,
        "terminate_session": dataproc_v1.TerminateSessionRequest,
        "delete_session": dataproc_v1.DeleteSessionRequest,
    }
    assert [method for method, _, _ in seen] == list(kinds)
    for method, request, options in seen:
        assert isinstance(request, kinds[method])
        assert options["retry"] is None
        assert 0 < options["timeout"] <= 20
    assert seen[0][1].name == "projects/my-project/locations/europe-west1/sessions/abcd"
    assert seen[1][1].filter == "(state = ACTIVE)"
    assert seen[1][1].parent == "projects/my-project/locations/europe-west1"
    assert seen[2][1].request_id  # a fresh id per terminate


def test_missing_sdk_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['google'] = None\n"
        "import sessionkit\n"
        "try:\n"
        "    sessionkit.open_session('dataproc', project='my-project', region='europe-west1')\n"
        "except sessionkit.errors.BackendNotFoundError as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "[dataproc]" in done.stdout

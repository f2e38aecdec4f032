"""The emulator core's tables: service attributes, the client table, provider settings and
methods, the lazy re-exports, and the typed accessors in the provider packages."""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Iterator

import botocore.exceptions
import httpx
import pytest
from botocore.config import Config
from google.cloud import dataproc_v1

import sessionkit.testing
from sessionkit import SessionState, open_session
from sessionkit.testing import Emulator
from sessionkit.testing import emulator as core
from sessionkit.testing.aws import services
from sessionkit.testing.aws.athena import AthenaService
from sessionkit.testing.aws.emr import EmrService
from sessionkit.testing.aws.emr_serverless import EmrServerlessService
from sessionkit.testing.aws.glue import GlueService
from sessionkit.testing.aws.s3 import S3Service
from sessionkit.testing.aws.sts import StsService
from sessionkit.testing.gcp import wiring as gcp_wiring
from sessionkit.testing.gcp.dataproc import DataprocService
from sessionkit.testing.livy import wiring as livy_wiring
from sessionkit.testing.livy.service import LivyService

SERVICE_CLASSES = {
    "glue": GlueService,
    "emr_serverless": EmrServerlessService,
    "athena": AthenaService,
    "emr": EmrService,
    "s3": S3Service,
    "sts": StsService,
    "livy": LivyService,
    "dataproc": DataprocService,
}


# -- services as attributes ---------------------------------------------------------------------


@pytest.mark.parametrize("attribute", sorted(SERVICE_CLASSES))
def test_each_service_is_an_attribute_named_after_it(emulator: Emulator, attribute: str) -> None:
    service = getattr(emulator, attribute)
    assert isinstance(service, SERVICE_CLASSES[attribute])
    assert service is emulator.service(attribute.replace("_", "-"))
    assert getattr(emulator, attribute) is service  # made once, then the same object


def test_every_emulated_service_has_an_attribute(emulator: Emulator) -> None:
    assert {name.replace("-", "_") for name in emulator.emulated_services()} == set(SERVICE_CLASSES)


def test_a_service_attribute_drives_the_service_the_clients_see(emulator: Emulator) -> None:
    emulator.emr_serverless.timeline.application_starting = 3
    application_id = emulator.emr_serverless.create_application("dynamic")
    client = emulator.client("emr-serverless")
    assert client.get_application(applicationId=application_id)["application"]["name"] == (
        "dynamic"
    )


def test_an_unknown_attribute_raises_attribute_error_naming_the_services(
    emulator: Emulator,
) -> None:
    with pytest.raises(AttributeError, match="no attribute 'glu'") as caught:
        _ = emulator.glu
    message = str(caught.value)
    assert "glue" in message and "emr_serverless" in message and "boto3_session" in message
    assert caught.value.name == "glu"
    assert not hasattr(emulator, "emr-serverless")  # attribute names use "_"
    assert not hasattr(emulator, "_glue")  # private names never resolve


def test_dir_lists_the_services_and_provider_methods(emulator: Emulator) -> None:
    listed = dir(emulator)
    assert set(SERVICE_CLASSES) <= set(listed)
    assert {"boto3_session", "region", "account_id", "client", "clock"} <= set(listed)
    assert listed == sorted(listed)


def test_a_provider_method_is_bound_to_the_emulator(emulator: Emulator) -> None:
    session = emulator.boto3_session()
    assert session is emulator.boto3_session()
    assert session.region_name == emulator.region
    assert session.client("sts").get_caller_identity()["Account"] == emulator.account_id


# -- the client table --------------------------------------------------------------------------


@pytest.mark.parametrize("service", ["glue", "emr-serverless", "athena", "emr", "s3", "sts"])
def test_the_client_table_gives_aws_services_a_boto3_client(
    emulator: Emulator, service: str
) -> None:
    client = emulator.client(service)
    assert client.meta.service_model.service_name == service
    assert client.meta.region_name == emulator.region
    # botocore's own retries are off: one attempt per call, so faults reach the caller.
    assert client.meta.config.retries["total_max_attempts"] == 1


def test_the_client_table_passes_the_providers_options(emulator: Emulator) -> None:
    config = Config(retries={"mode": "standard", "total_max_attempts": 4}, user_agent_extra="x")
    client = emulator.client("emr-serverless", config=config)
    assert client.meta.config.retries["total_max_attempts"] == 4
    application_id = emulator.emr_serverless.create_application("options")
    assert client.get_application(applicationId=application_id)["application"]["name"] == (
        "options"
    )


def test_the_client_table_gives_livy_an_httpx_client(emulator: Emulator) -> None:
    client = emulator.client("livy")
    assert isinstance(client, httpx.Client)
    assert str(client.base_url).rstrip("/") == livy_wiring.URL
    assert client.get("/sessions").json()["sessions"] == []


def test_the_client_table_gives_dataproc_a_session_controller_client(emulator: Emulator) -> None:
    client = emulator.client("dataproc")
    assert isinstance(client, dataproc_v1.SessionControllerClient)
    parent = "projects/p-table/locations/europe-west1"
    assert list(client.list_sessions(parent=parent)) == []
    assert emulator.call_count("dataproc", "ListSessions") == 1


def test_a_provider_without_options_refuses_them(emulator: Emulator) -> None:
    with pytest.raises(TypeError):
        emulator.client("livy", config=Config())


def test_a_service_no_row_claims_goes_to_the_fallback_provider(emulator: Emulator) -> None:
    iam = emulator.client("iam")
    assert iam.meta.service_model.service_name == "iam"
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        iam.list_roles()
    assert caught.value.response["Error"]["Code"] == "InvalidAction"


def test_every_table_row_loads() -> None:
    for path in [*core._SERVICES.values(), *core._CLIENTS.values(), core._CLIENT_FALLBACK]:
        assert callable(core._load(path)), path
    for path in [*core._METHODS.values(), *core._TRANSPORTS.values()]:
        assert callable(core._load(path)), path
    for keywords, role in core._WIRING.values():
        assert callable(core._load(keywords)) and callable(core._load(role))
    assert set(core._CLIENTS) == set(core._SERVICES)


@pytest.mark.parametrize("backend", core.emulated_backends())
def test_each_backend_runs_on_the_clients_of_the_table(emulator: Emulator, backend: str) -> None:
    with open_session(
        backend,
        role=emulator.role(backend),
        poll_policy=emulator.poll_policy(),
        **emulator.keywords(backend, location="table"),
    ) as session:
        assert session.state is SessionState.READY


# -- provider settings -------------------------------------------------------------------------


def test_the_aws_settings_keep_their_defaults(emulator: Emulator) -> None:
    assert emulator.region == "us-east-1"
    assert emulator.account_id == "123456789012"
    assert emulator.settings == {"region": "us-east-1", "account_id": "123456789012"}


def test_a_provider_setting_is_a_keyword_and_reaches_the_services() -> None:
    emulator = Emulator(region="eu-west-1", account_id="111122223333", seed=3)
    assert (emulator.region, emulator.account_id) == ("eu-west-1", "111122223333")
    glue = emulator.client("glue")
    assert glue.meta.region_name == "eu-west-1"
    role = emulator.role("glue")
    assert role.startswith("arn:aws:iam::111122223333:")
    glue.create_session(Id="s", Role=role, Command={"Name": "glueetl"}, Tags={"team": "t"})
    arn = "arn:aws:glue:eu-west-1:111122223333:session/s"
    assert emulator.glue.session_arn("s") == arn
    assert glue.get_tags(ResourceArn=arn)["Tags"] == {"team": "t"}
    with pytest.raises(botocore.exceptions.ClientError):  # the default region's ARN is not it
        glue.get_tags(ResourceArn="arn:aws:glue:us-east-1:111122223333:session/s")


def test_a_setting_changed_later_is_what_the_services_read(emulator: Emulator) -> None:
    emulator.account_id = "999999999999"
    assert emulator.settings["account_id"] == "999999999999"
    assert emulator.role("emr").startswith("arn:aws:iam::999999999999:")


def test_an_unknown_keyword_is_a_type_error_listing_the_settings() -> None:
    with pytest.raises(TypeError, match=r"'regoin'.*account_id, region"):
        Emulator(regoin="eu-west-1")


@pytest.fixture
def fresh_settings() -> Iterator[None]:
    core._setting_defaults.cache_clear()
    yield
    core._setting_defaults.cache_clear()


@pytest.mark.parametrize("taken", ["region", "clock", "glue", "boto3_session", "client"])
def test_a_setting_may_not_take_a_name_already_in_use(
    monkeypatch: pytest.MonkeyPatch, fresh_settings: None, taken: str
) -> None:
    provider = types.ModuleType("sessionkit_test_provider")
    provider.SETTINGS = {taken: 1}  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "sessionkit_test_provider", provider)
    monkeypatch.setattr(core, "_SETTINGS", (*core._SETTINGS, "sessionkit_test_provider:SETTINGS"))
    with pytest.raises(RuntimeError, match=f"setting '{taken}'"):
        Emulator()


def test_a_new_provider_adds_settings_through_its_table(
    monkeypatch: pytest.MonkeyPatch, fresh_settings: None
) -> None:
    provider = types.ModuleType("sessionkit_test_provider")
    provider.SETTINGS = {"tenant": "default-tenant"}  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "sessionkit_test_provider", provider)
    monkeypatch.setattr(core, "_SETTINGS", (*core._SETTINGS, "sessionkit_test_provider:SETTINGS"))
    assert Emulator().tenant == "default-tenant"
    assert Emulator(tenant="t1").settings["tenant"] == "t1"


# -- typed accessors in the provider packages ------------------------------------------------------


def test_the_typed_accessors_return_the_attributes(emulator: Emulator) -> None:
    assert services.glue(emulator) is emulator.glue
    assert services.emr_serverless(emulator) is emulator.emr_serverless
    assert services.athena(emulator) is emulator.athena
    assert services.emr(emulator) is emulator.emr
    assert services.s3(emulator) is emulator.s3
    assert services.sts(emulator) is emulator.sts
    assert gcp_wiring.dataproc(emulator) is emulator.dataproc
    assert livy_wiring.livy(emulator) is emulator.livy


# -- sessionkit.testing's lazy names -------------------------------------------------------------


@pytest.mark.parametrize("name", sessionkit.testing.__all__)
def test_every_public_testing_name_resolves(name: str) -> None:
    assert getattr(sessionkit.testing, name) is not None
    assert name in dir(sessionkit.testing)


def test_the_provider_names_are_the_provider_modules_own() -> None:
    from sessionkit.testing import AthenaTimeline, EmrServerlessTimeline, GlueTimeline
    from sessionkit.testing import python_executor as executor

    glue = importlib.import_module("sessionkit.testing.aws.glue")
    assert (GlueTimeline, executor) == (glue.GlueTimeline, glue.python_executor)
    assert AthenaTimeline is importlib.import_module("sessionkit.testing.aws.athena").AthenaTimeline
    assert (
        EmrServerlessTimeline
        is importlib.import_module("sessionkit.testing.aws.emr_serverless").EmrServerlessTimeline
    )


def test_an_unknown_testing_name_raises_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = sessionkit.testing.Nope

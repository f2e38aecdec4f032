from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

import sessionkit
from sessionkit import BackendNotFoundError, InvalidConfigError, registry
from sessionkit.backends.aws.glue import GlueBackend
from tests.conftest import ROLE


@pytest.fixture
def clean_registry() -> Iterator[None]:
    saved = dict(registry._registry)
    yield
    registry._registry.clear()
    registry._registry.update(saved)


def test_builtin_backends_are_available() -> None:
    names = sessionkit.available_backends()
    assert {"glue", "emr-serverless", "athena"} <= set(names)
    assert names == sorted(names)


def test_unknown_backend_names_the_alternatives() -> None:
    with pytest.raises(BackendNotFoundError) as caught:
        sessionkit.open_session("no-such-backend", role=ROLE)
    assert "no-such-backend" in str(caught.value) and "glue" in str(caught.value)
    assert isinstance(caught.value, LookupError)


def test_register_backend(clean_registry: None, emulator: Any) -> None:
    class MyGlue(GlueBackend):
        name = "my-glue"

    sessionkit.register_backend("my-glue", MyGlue)
    assert "my-glue" in sessionkit.available_backends()
    with pytest.raises(ValueError, match="already registered"):
        sessionkit.register_backend("my-glue", MyGlue)
    with pytest.raises(ValueError, match="already registered"):
        sessionkit.register_backend("glue", MyGlue)
    sessionkit.register_backend("my-glue", MyGlue, clobber=True)
    session = sessionkit.open_session(
        "my-glue", client=emulator.client("glue"), poll_policy=emulator.poll_policy(), role=ROLE
    )
    assert session.backend == "my-glue"
    session.stop()


def test_register_lazy_string(clean_registry: None) -> None:
    sessionkit.register_backend("lazy", "sessionkit.backends.aws.glue:GlueBackend")
    assert registry.get_backend("lazy") is GlueBackend
    sessionkit.register_backend("broken", "sessionkit_no_such_module:Backend")
    with pytest.raises(BackendNotFoundError, match="cannot be imported"):
        registry.get_backend("broken")


def test_missing_dependency_names_the_package(
    clean_registry: None, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "needs_dep_backend.py").write_text("import sessionkit_fake_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    sessionkit.register_backend("needs-dep", "needs_dep_backend:Backend")
    with pytest.raises(BackendNotFoundError, match="pip install sessionkit_fake_dependency"):
        registry.get_backend("needs-dep")


def test_entry_points_are_read(clean_registry: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib.metadata import EntryPoint

    entry = EntryPoint(
        name="from-plugin",
        value="sessionkit.backends.aws.glue:GlueBackend",
        group="sessionkit.backends",
    )

    def fake_entry_points(group: str) -> list[EntryPoint]:
        return [entry] if group == "sessionkit.backends" else []

    monkeypatch.setattr("importlib.metadata.entry_points", fake_entry_points)
    monkeypatch.setattr(registry, "_entry_points_read", False)
    assert "from-plugin" in sessionkit.available_backends()
    assert registry.get_backend("from-plugin") is GlueBackend


def test_missing_location_is_named() -> None:
    with pytest.raises(InvalidConfigError) as caught:
        sessionkit.open_session("emr-serverless", role=ROLE, region="us-east-1")
    assert caught.value.field == "application_id"
    with pytest.raises(InvalidConfigError) as caught:
        sessionkit.open_session("athena", region="us-east-1")
    assert caught.value.field == "work_group"


def test_client_and_region_conflict(emulator: Any) -> None:
    with pytest.raises(InvalidConfigError) as caught:
        sessionkit.open_session(
            "glue", client=emulator.client("glue"), region="eu-west-1", role=ROLE
        )
    assert caught.value.field == "client"


def test_no_region_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3

    from sessionkit.backends.aws.common import ClientFactory

    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setattr(ClientFactory, "_default_session", None)
    with pytest.raises(InvalidConfigError) as caught:
        sessionkit.open_session("glue", role=ROLE, boto3_session=boto3.session.Session())
    assert caught.value.field == "region"


def test_client_factory_reuses_clients() -> None:
    import boto3

    from sessionkit.backends.aws.common import ClientFactory

    session = boto3.session.Session(region_name="us-east-1")
    first = ClientFactory.client("glue", boto3_session=session)
    assert ClientFactory.client("glue", boto3_session=session) is first
    assert ClientFactory.client("glue", boto3_session=session, region="eu-west-1") is not first
    # Clients sessionkit builds leave retrying to sessionkit: one botocore attempt per call.
    assert first.meta.config.retries["total_max_attempts"] == 1


def test_import_does_not_import_boto3_or_tenacity() -> None:
    code = (
        "import sys, sessionkit; "
        "sessionkit.SessionState; sessionkit.SessionConfig; sessionkit.available_backends(); "
        "print('boto3' in sys.modules, 'tenacity' in sys.modules, 'botocore' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False", "False"]


@pytest.mark.parametrize("name", ["glue", "emr-serverless", "athena", "emr", "dataproc", "livy"])
def test_capabilities_match_the_primitives(name: str) -> None:
    """A capability is declared exactly when the backend implements its primitive."""
    from sessionkit.backends.base import Backend

    factory = registry.get_backend(name)
    assert isinstance(factory, type)
    capabilities = factory.capabilities
    assert capabilities.statements == (factory._run is not Backend._run)
    assert capabilities.spark_connect == (factory._endpoint is not Backend._endpoint)
    assert capabilities.delete == (factory._delete is not Backend._delete)


def test_cli_fields_default_to_the_location_fields() -> None:
    from sessionkit.backends.base import Backend

    class Located(Backend):
        name = "located"
        location_fields = ("cluster",)

    class Chosen(Located):
        cli_fields = ("cluster", "url")

    class Inherits(Chosen):
        location_fields = ("other",)

    assert Located.cli_fields == ("cluster",)
    assert Chosen.cli_fields == ("cluster", "url")
    assert Inherits.cli_fields == ("cluster", "url")
    assert {"region", "profile", "endpoint_url", "work_group"} <= set(
        registry.get_backend("athena").cli_fields  # type: ignore[union-attr]
    )


def test_a_built_in_backend_without_its_sdk_names_the_distribution_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys

    for name in list(sys.modules):
        if name.startswith(("sessionkit.backends.aws", "boto3", "botocore")):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "boto3", None)
    with pytest.raises(BackendNotFoundError) as caught:
        registry.get_backend("glue")
    assert "pip install 'sessionkit-spark[aws]'" in str(caught.value)

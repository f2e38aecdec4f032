"""Without the ``spark`` extra: clear errors that name it, and nothing imports PySpark early.

These run on every install; the PySpark modules are hidden with monkeypatch where it is present.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from sessionkit import NotSupportedError, open_session
from sessionkit.testing import Emulator, python_executor
from sessionkit.testing.spark import LocalSparkConnect, spark_executor

ROLE = "arn:aws:iam::123456789012:role/SessionkitSpark"
EXTRA = "pip install 'sessionkit-spark[spark]'"


@pytest.fixture
def no_pyspark(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every import of PySpark and gRPC fail, as on an install without the extra."""
    for name in list(sys.modules):
        if name.split(".")[0] in ("pyspark", "grpc"):
            monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "pyspark", None)
    monkeypatch.setitem(sys.modules, "grpc", None)


@pytest.mark.usefixtures("no_pyspark")
def test_spark_names_the_extra_before_calling_the_service(emulator: Emulator) -> None:
    with (
        open_session(
            "glue", client=emulator.client("glue"), poll_policy=emulator.poll_policy(), role=ROLE
        ) as session,
        pytest.raises(NotSupportedError) as caught,
    ):
        session.spark()
    assert EXTRA in str(caught.value)
    assert emulator.call_count("glue", "GetSessionEndpoint") == 0


@pytest.mark.usefixtures("no_pyspark")
def test_real_spark_in_the_emulator_names_the_extra(emulator: Emulator) -> None:
    server = LocalSparkConnect()
    for attempt in (
        server.start,
        lambda: spark_executor(server),
        lambda: emulator.use_spark(server),
    ):
        with pytest.raises(NotSupportedError) as caught:
            attempt()
        assert EXTRA in str(caught.value)
    assert not server.running
    # The emulator keeps answering statements without Spark, deterministically.
    assert emulator.glue.executor is python_executor


def test_importing_the_testing_package_does_not_import_pyspark() -> None:
    code = (
        "import sys, sessionkit, sessionkit.testing, sessionkit.testing.spark\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('pyspark', 'grpc'))\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_a_server_without_java_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("pyspark", exc_type=ImportError)
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", "")
    server = LocalSparkConnect()
    with pytest.raises(NotSupportedError, match="Java 17"):
        server.start()
    assert not server.running

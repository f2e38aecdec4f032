from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from sessionkit.testing.spark import LocalSparkConnect

pytest_plugins = ["sessionkit.testing.fixtures"]

ROLE = "arn:aws:iam::123456789012:role/SessionkitTest"

# No test may reach AWS: point every default credential lookup at nothing real.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("SESSIONKIT_AWS_TESTS") == "1":
        return
    skip = pytest.mark.skip(reason="live AWS tests are opt-in: set SESSIONKIT_AWS_TESTS=1")
    for item in items:
        if item.get_closest_marker("aws") is not None:
            item.add_marker(skip)


@pytest.fixture
def emulator(sessionkit_emulator):  # type: ignore[no-untyped-def]
    return sessionkit_emulator


@pytest.fixture
def policy(emulator):  # type: ignore[no-untyped-def]
    return emulator.poll_policy()


def _why_no_spark() -> str | None:
    try:
        import pyspark.sql.connect.session  # noqa: F401
    except ImportError as exc:
        return (
            f"PySpark with Spark Connect is missing ({exc}): pip install 'sessionkit-spark[spark]'"
        )
    java_home = os.environ.get("JAVA_HOME")
    if not (java_home and (Path(java_home) / "bin" / "java").exists()) and not shutil.which("java"):
        return "Java 17+ is missing (no JAVA_HOME, no java on PATH)"
    return None


@pytest.fixture(scope="session")
def spark_server() -> Iterator[LocalSparkConnect]:
    """One real local Spark Connect server for the whole test session (the ``spark`` extra).

    Start-up takes seconds, so it is paid once. Without PySpark or Java the tests that need
    it are skipped, unless ``SESSIONKIT_REQUIRE_SPARK=1`` (set in CI, where the extra is
    installed) turns the skip into a failure, so a broken install cannot pass as "skipped".
    """
    from sessionkit.testing.spark import LocalSparkConnect

    reason = _why_no_spark()
    if reason is not None:
        if os.environ.get("SESSIONKIT_REQUIRE_SPARK") == "1":
            pytest.fail(f"SESSIONKIT_REQUIRE_SPARK=1 but {reason}")
        pytest.skip(reason)
    with LocalSparkConnect(driver_memory="768m", cores=2) as server:
        yield server

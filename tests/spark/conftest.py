"""One real local Spark Connect server for the whole test session (the ``spark`` extra).

Start-up takes seconds, so it is paid once; each test gets a fresh emulator backed by it.
Without PySpark or Java the tests that need the server are skipped, unless
``SESSIONKIT_REQUIRE_SPARK=1`` (set it in CI, where the extra is installed) turns the skip into
a failure, so a broken install cannot pass as "skipped".
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from sessionkit.testing import Emulator
from sessionkit.testing.spark import LocalSparkConnect


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
    reason = _why_no_spark()
    if reason is not None:
        if os.environ.get("SESSIONKIT_REQUIRE_SPARK") == "1":
            pytest.fail(f"SESSIONKIT_REQUIRE_SPARK=1 but {reason}")
        pytest.skip(reason)
    with LocalSparkConnect(driver_memory="768m", cores=2) as server:
        yield server


@pytest.fixture
def spark_emulator(emulator: Emulator, spark_server: LocalSparkConnect) -> Emulator:
    emulator.use_spark(spark_server)
    return emulator

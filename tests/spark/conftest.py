"""Each Spark test gets a fresh emulator backed by the session's one real Spark server.

The server itself (``spark_server``) lives in ``tests/conftest.py``, shared with the CLI's
real-Spark demo tests, so the whole run starts one JVM.
"""

from __future__ import annotations

import pytest

from sessionkit.testing import Emulator
from sessionkit.testing.spark import LocalSparkConnect


@pytest.fixture
def spark_emulator(emulator: Emulator, spark_server: LocalSparkConnect) -> Emulator:
    emulator.use_spark(spark_server)
    return emulator

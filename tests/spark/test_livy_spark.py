"""Livy statements run on a real local Spark, with state kept per session (DESIGN section 8)."""

from __future__ import annotations

import pytest

from sessionkit import StatementFailedError, open_session
from sessionkit.testing import Emulator

pytestmark = pytest.mark.spark


def test_livy_statements_run_on_real_spark_and_keep_their_state(spark_emulator: Emulator) -> None:
    keywords = {**spark_emulator.keywords("livy"), "poll_policy": spark_emulator.poll_policy()}
    with open_session("livy", **keywords) as first, open_session("livy", **keywords) as second:
        assert first.run("spark.range(5).count()").output == "5"
        first.run("rows = spark.range(3).count()")
        assert first.run("rows + 1").output == "4"
        # The other session has its own namespace: no `rows` there.
        with pytest.raises(StatementFailedError) as caught:
            second.run("rows")
        assert caught.value.result.error_name == "NameError"
        first.run("spark.range(7).createOrReplaceTempView('seven')")
        assert first.run("spark.sql('select count(*) from seven').first()[0]").output == "7"

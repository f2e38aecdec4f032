"""With real Spark, each emulated session is its own interpreter and its own Spark session."""

from __future__ import annotations

import pytest

from sessionkit import StatementFailedError, open_session
from sessionkit.testing import Emulator

pytestmark = [pytest.mark.spark, pytest.mark.timeout(300)]

ROLE = "arn:aws:iam::123456789012:role/SessionkitSpark"


def test_each_session_has_its_own_variables_and_temporary_views(spark_emulator: Emulator) -> None:
    keywords = {
        "client": spark_emulator.client("glue"),
        "poll_policy": spark_emulator.poll_policy(),
    }
    with (
        open_session("glue", role=ROLE, **keywords) as first,
        open_session("glue", role=ROLE, **keywords) as second,
    ):
        first.run("n = 7\nspark.range(n).createOrReplaceTempView('mine')")
        assert first.run("spark.table('mine').count() + n").output == "14"
        with pytest.raises(StatementFailedError) as caught:
            second.run("spark.table('mine').count()")
        assert "TABLE_OR_VIEW_NOT_FOUND" in (caught.value.result.error_value or "")
        with pytest.raises(StatementFailedError) as unbound:
            second.run("n")
        assert unbound.value.result.error_name == "NameError"

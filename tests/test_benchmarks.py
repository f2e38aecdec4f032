"""Every benchmark script runs (``--quick``) and ends with one JSON object of its figures.

The figures are not asserted: benchmarks measure, the suite does not judge them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"

KEYS = {
    "readiness": {"policy"},
    "fleet": {
        "sessions",
        "calls_per_second",
        "p95_lag_s",
        "baseline_calls_per_second",
        "baseline_p95_lag_s",
    },
    "overhead": {"ratio"},
    "statements": {"mean_lag_s", "baseline_mean_lag_s"},
    "import_time": {"import_ms", "deps_import_ms", "boto3_imported", "tenacity_imported"},
    "faults": {"duplicates", "leaked", "untyped", "cells"},
}


@pytest.mark.skipif(not BENCHMARKS.is_dir(), reason="the benchmarks are not in this tree")
def test_every_benchmark_runs_quick_and_prints_json_last() -> None:
    # Started together: on two cores the six take about 10 s in all.
    running = {
        name: subprocess.Popen(
            [sys.executable, str(BENCHMARKS / f"{name}.py"), "--quick"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in KEYS
    }
    figures: dict[str, dict[str, Any]] = {}
    for name, process in running.items():
        out, err = process.communicate(timeout=90)
        assert process.returncode == 0, f"{name}: {err[-2000:]}"
        lines = out.strip().splitlines()
        assert len(lines) > 2, f"{name} printed no table"
        figures[name] = json.loads(lines[-1])
        assert KEYS[name] <= set(figures[name]), f"{name} lacks {KEYS[name] - set(figures[name])}"
    for per_policy in figures["readiness"]["policy"].values():
        for key in ("mean_lag_s", "p95_lag_s", "calls"):
            assert set(per_policy[key]) == {"5", "30", "60", "120", "300", "600"}

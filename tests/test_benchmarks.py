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
    "readiness": {"backends", "targets_met"},
    "fleet": {
        "sessions",
        "calls_per_second",
        "p95_lag_s",
        "baseline_calls_per_second",
        "baseline_p95_lag_s",
    },
    "overhead": {"ratio"},
    "statements": {"mean_lag_s", "calls", "frontier_calls", "ratio", "baseline_mean_lag_s"},
    "import_time": {"import_ms", "deps_import_ms", "boto3_imported", "tenacity_imported"},
    "faults": {"duplicates", "leaked", "untyped", "cells"},
    "listing": {"pages", "first_record_s", "slept_s", "minimum_sleep_s"},
}


@pytest.mark.skipif(not BENCHMARKS.is_dir(), reason="the benchmarks are not in this tree")
def test_every_benchmark_runs_quick_and_prints_json_last() -> None:
    # Started together: on two idle cores the six take about 40 s in all.
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
        # A safety net against a hung script, not a timing assertion (two shared cores).
        out, err = process.communicate(timeout=600)
        # 3: ran, and a target does not hold (benchmarks measure; the suite does not judge).
        assert process.returncode in (0, 3), f"{name}: {err[-2000:]}"
        lines = out.strip().splitlines()
        assert len(lines) > 2, f"{name} printed no table"
        figures[name] = json.loads(lines[-1])
        assert KEYS[name] <= set(figures[name]), f"{name} lacks {KEYS[name] - set(figures[name])}"
    readiness = figures["readiness"]["backends"]
    assert set(readiness) == {"glue", "emr-serverless", "athena", "emr", "dataproc", "livy"}
    for shapes in readiness.values():
        for cell in shapes.values():
            for schedule in ("sessionkit", "at once, then 1 s", "every 5 s", "sparkmagic 0.2-2 s"):
                assert {"mean_lag_s", "calls", "frontier_calls", "ratio"} <= set(cell[schedule])

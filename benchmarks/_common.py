"""What the benchmark scripts share: argument parsing, statistics, tables, the JSON line."""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    # Run from a checkout without installing: `python benchmarks/fleet.py`.
    sys.path.insert(0, str(ROOT))

ROLE = "arn:aws:iam::123456789012:role/SessionkitBenchmark"

#: The exit status of a benchmark whose target does not hold (a crash exits with 1).
TARGET_MISSED = 3


def arguments(description: str, **extra: Any) -> argparse.Namespace:
    """Parse ``--quick`` (a fast run for smoke tests) and ``--seed``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="a small, fast run (smoke test)")
    parser.add_argument("--seed", type=int, default=20240501, help="random seed")
    for name, (kind, default, text) in extra.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=kind, default=default, help=text)
    return parser.parse_args()


def percentile(values: Sequence[float], fraction: float) -> float:
    """The ``fraction`` quantile (nearest rank) of ``values``."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def mean(values: Sequence[float]) -> float:
    """The mean, NaN when empty."""
    return statistics.fmean(values) if values else math.nan


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table; floats with three decimals."""

    def text(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.3f}"
        return str(value)

    cells = [list(header), *[[text(v) for v in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(v.rjust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def emit(figures: dict[str, Any]) -> None:
    """Print the figures as the last line: one JSON object."""
    print(json.dumps(figures, sort_keys=False))

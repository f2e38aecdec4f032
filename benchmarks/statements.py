"""How soon a statement's result is seen, and at how many calls, against the frontier.

``Session.run`` submits code and polls the statement until it ends. On the emulated Glue
session (virtual clock, the per-client call budget applied as usual), each statement runs for a
random 0.05 to 1 s (uniform); the lag is the time from the statement finishing to ``run``
returning, the calls are the GetStatement calls per statement. sessionkit runs with its default
``STATEMENT_POLL`` (the schedule of ``STATEMENT_PRIOR``). The baselines poll the same durations:
look at once, then every 1 s; at once, then every 5 s; sparkmagic's 0.2, 0.5, 0.5, 1, 1, 2 s
(then 2 s).

The frontier is the minimum expected calls any schedule needs for the same mean lag on the same
duration distribution (dynamic programming over a 0.01 s grid, as in ``readiness.py``).

Target: sessionkit's mean lag <= 0.25 s with calls <= 1.5x the frontier. Exits non-zero when
the target fails.
"""

from __future__ import annotations

import random
import sys
import time

from _common import ROLE, TARGET_MISSED, arguments, emit, mean, percentile, table
from readiness import Frontier, fixed_trial, uniform

import sessionkit
from sessionkit.testing import Emulator

LOW, HIGH = 0.05, 1.0
MAX_LAG_S = 0.25
MAX_RATIO = 1.5

BASELINES = {
    "at once, then 1 s": ([1.0], 0.0),
    "at once, then 5 s": ([5.0], 0.0),
    "sparkmagic 0.2-2 s": ([0.5, 0.5, 1.0, 1.0, 2.0], 0.2),
}


def measure(durations: list[float]) -> tuple[list[float], int]:
    """Run one statement per duration with the default policy; return lags and GetStatements."""
    emulator = Emulator(seed=3)
    policy = emulator.poll_policy()
    session = sessionkit.open_session(
        "glue", client=emulator.client("glue"), poll_policy=policy, role=ROLE
    )
    lags = []
    for duration in durations:
        emulator.glue.timeline.statement = duration
        session.run("1 + 1")
        submitted = [c for c in emulator.calls if c.operation == "RunStatement"][-1].at
        lags.append(emulator.clock.monotonic() - (submitted + duration))
    session.stop(wait=False)
    return lags, emulator.call_count("glue", "GetStatement")


def main() -> None:
    args = arguments(__doc__ or "", statements=(int, 1000, "statements"))
    count = 40 if args.quick else args.statements
    rng = random.Random(args.seed)
    durations = [rng.uniform(LOW, HIGH) for _ in range(count)]
    started = time.perf_counter()
    frontier = Frontier(uniform(LOW, HIGH), 0.02 if args.quick else 0.01, window=3.0)
    lags, calls = measure(durations)
    runs = {"sessionkit STATEMENT_POLL": (lags, calls / count)}
    for name, (gaps, first) in BASELINES.items():
        results = [fixed_trial(gaps, first, d) for d in durations]
        runs[name] = ([lag for lag, _ in results], mean([c for _, c in results]))
    rows, figures = [], {}
    for name, (run_lags, per) in runs.items():
        best = frontier.calls_at(mean(run_lags))
        figures[name] = {
            "mean_lag_s": round(mean(run_lags), 4),
            "p95_lag_s": round(percentile(run_lags, 0.95), 4),
            "calls": round(per, 3),
            "frontier_calls": round(best, 3),
            "ratio": round(per / best, 3),
        }
        rows.append([name, mean(run_lags), percentile(run_lags, 0.95), per, best, per / best])
    print(f"{count} statements finishing after {LOW:g}-{HIGH:g} s (emulator, virtual clock)\n")
    print(table(["schedule", "mean lag s", "p95 lag s", "calls", "frontier", "ratio"], rows))
    ours = figures["sessionkit STATEMENT_POLL"]
    met = ours["mean_lag_s"] <= MAX_LAG_S and ours["ratio"] <= MAX_RATIO
    print(
        f"\ntarget (mean lag <= {MAX_LAG_S:g} s, calls <= {MAX_RATIO:g}x the frontier) met: {met}"
        f"  ({time.perf_counter() - started:.1f} s real)"
    )
    baseline = figures["at once, then 1 s"]
    emit(
        {
            "mean_lag_s": ours["mean_lag_s"],
            "calls": ours["calls"],
            "frontier_calls": ours["frontier_calls"],
            "ratio": ours["ratio"],
            "baseline_mean_lag_s": baseline["mean_lag_s"],
            "baseline_calls": baseline["calls"],
            "schedules": figures,
            "statements": count,
            "targets_met": met,
        }
    )
    if not met:
        sys.exit(TARGET_MISSED)


if __name__ == "__main__":
    main()

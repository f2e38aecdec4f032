"""Waiting for fleets of 10 to 5,000 sessions on every backend with a list call.

For each backend (Glue, EMR Serverless, Athena) and N = 10, 100, 1,000 and 5,000, N sessions are
started at once on the emulator (the start calls are not measured), each becoming READY after
a random time drawn uniformly over the backend's ready-time range (Glue 5-60 s, EMR Serverless
20-180 s, Athena 5-30 s). Each N runs twice: alone in its location, and with 10,000 other
sessions there (started and stopped before, as a location's history is). Then ``wait_all``'s
engine (``FleetPoller.as_completed``, to time each arrival) waits for them with its defaults:
``FLEET_POLL`` and the default call budget (10 calls per second, bursts of 20), on the
emulator's virtual clock.

Figures per run: calls made while waiting, calls per second, p95 and max detection lag (READY
to seen), and the client-side CPU of the wait (process time minus the time the emulator spends
answering, so what sessionkit and botocore cost).

Baseline: per-session polling every 1 s (the Glue notebook kernel's loop), computed: it makes
N calls per second, N / 10 times the default budget; held to that budget its cycle stretches
to N / 10 s, so its p95 lag is about 0.95 * max(1, N / 10) s.

Targets at N = 5,000: p95 lag <= 3 s on Glue and <= 5 s on EMR Serverless and Athena, with
and without the others, within the default budget (peak calls per second at most its rate
plus burst). At N = 100: CPU among 10,000 others <= 2x the CPU alone. Exits non-zero when a
target fails.
"""

from __future__ import annotations

import random
import sys
import time
from collections import Counter
from typing import Any

import attrs
from _common import TARGET_MISSED, arguments, emit, mean, percentile, table

import sessionkit
from sessionkit.fleet import FleetPoller
from sessionkit.testing import Emulator
from sessionkit.waiting import CallBudget

RANGES = {"glue": (5.0, 60.0), "emr-serverless": (20.0, 180.0), "athena": (5.0, 30.0)}
P95_TARGET = {"glue": 3.0, "emr-serverless": 5.0, "athena": 5.0}
CPU_RATIO_TARGET = 2.0
BUDGET = CallBudget()


def _set_delay(emulator: Emulator, backend: str, delay: float) -> float:
    """Make the next session on ``backend`` become READY ``delay`` s after its start."""
    if backend == "glue":
        emulator.glue.timeline.provisioning = delay
    elif backend == "athena":
        timeline = emulator.athena.timeline
        timeline.creating = min(2.0, delay / 2)
        timeline.created = delay - timeline.creating
    return delay


def _per_session_starting(emulator: Emulator, delays: dict[str, float]) -> None:
    """EMR Serverless reads its STARTING time when it settles a session: give each its own."""
    service = emulator.service("emr-serverless")
    original = service._settle
    submitted = service.timeline.submitted

    def settle(session: Any) -> Any:
        delay = delays.get(getattr(session, "id", None) or "")
        if delay is not None:
            service.timeline.starting = max(0.0, delay - submitted)
        return original(session)

    service._settle = settle


class _EmulatorCpu:
    """Accumulates the process time the emulator spends answering calls."""

    def __init__(self, emulator: Emulator) -> None:
        self.seconds = 0.0
        # Every backend measured here is an AWS one: its transport answers each request.
        transport = emulator.transport("aws")
        original = transport.answer

        def answer(*args: Any, **kwargs: Any) -> Any:
            started = time.process_time()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds += time.process_time() - started

        transport.answer = answer


def run(backend: str, count: int, others: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    emulator = Emulator(seed=seed)
    keywords = emulator.keywords(backend)
    role = emulator.role(backend)
    extra = {"role": role} if role else {}
    unmetered = attrs.evolve(emulator.poll_policy(), budget=None)
    for _ in range(others):
        sessionkit.open_session(
            backend, wait=False, poll_policy=unmetered, **extra, **keywords
        ).stop(wait=False)
    emulator.clock.advance(60.0)
    low, high = RANGES[backend]
    delays: dict[str, float] = {}
    sessions = []
    ready_at: dict[str, float] = {}
    for _ in range(count):
        delay = _set_delay(emulator, backend, rng.uniform(low, high))
        session = sessionkit.open_session(
            backend, wait=False, poll_policy=unmetered, **extra, **keywords
        )
        delays[session.id] = delay
        ready_at[session.id] = emulator.clock.monotonic() + delay
        sessions.append(session)
    if backend == "emr-serverless":
        _per_session_starting(emulator, delays)
    policy = emulator.poll_policy()
    for session in sessions:
        session.poll_policy = policy
    cpu = _EmulatorCpu(emulator)
    first = len(emulator.calls)
    start = emulator.clock.monotonic()
    lags = []
    cpu_started = time.process_time()
    poller = FleetPoller(sessions, timeout=1200)
    for outcome in poller.as_completed():
        if not outcome.ok or outcome.at is None:
            raise SystemExit(f"{backend} N={count}: {outcome.info.id} {outcome.status}")
        lags.append(outcome.at - max(ready_at[outcome.info.id], start))
    client_cpu = time.process_time() - cpu_started - cpu.seconds
    end = emulator.clock.monotonic()
    calls = emulator.calls[first:]
    per_second = Counter(int(c.at - start) for c in calls)
    return {
        "backend": backend,
        "sessions": count,
        "others": others,
        "calls": len(calls),
        "operations": dict(Counter(c.operation for c in calls)),
        "seconds": round(end - start, 1),
        "calls_per_second": round(len(calls) / max(end - start, 1e-9), 3),
        "peak_calls_per_second": max(per_second.values(), default=0),
        "mean_lag_s": round(mean(lags), 3),
        "p95_lag_s": round(percentile(lags, 0.95), 3),
        "max_lag_s": round(max(lags), 3),
        "client_cpu_s": round(client_cpu, 3),
        "baseline_calls_per_second": count,
        "baseline_p95_lag_s": round(0.95 * max(1.0, count / BUDGET.rate), 3),
    }


def main() -> None:
    args = arguments(
        __doc__ or "",
        sizes=(str, "10,100,1000,5000", "fleet sizes, comma-separated"),
        others=(int, 10_000, "other sessions in the location"),
        backends=(str, ",".join(RANGES), "backends, comma-separated"),
    )
    sizes = [10] if args.quick else [int(n) for n in args.sizes.split(",")]
    others = 50 if args.quick else args.others
    backends = args.backends.split(",")
    started = time.perf_counter()
    results = []
    for backend in backends:
        for count in sizes:
            for crowd in (0, others):
                result = run(backend, count, crowd, args.seed)
                results.append(result)
                print(
                    f"  {backend} N={count} others={crowd}: p95 {result['p95_lag_s']} s, "
                    f"{result['calls']} calls, cpu {result['client_cpu_s']} s",
                    file=sys.stderr,
                )
    rows = [
        [
            r["backend"],
            r["sessions"],
            r["others"],
            r["calls"],
            r["calls_per_second"],
            r["peak_calls_per_second"],
            r["mean_lag_s"],
            r["p95_lag_s"],
            r["max_lag_s"],
            r["client_cpu_s"],
            r["baseline_calls_per_second"],
            r["baseline_p95_lag_s"],
        ]
        for r in results
    ]
    print("wait_all on the emulator (virtual clock, default FLEET_POLL and call budget)\n")
    print(
        table(
            [
                "backend",
                "N",
                "others",
                "calls",
                "calls/s",
                "peak/s",
                "mean lag",
                "p95 lag",
                "max lag",
                "cpu s",
                "base calls/s",
                "base p95",
            ],
            rows,
        )
    )
    verdicts: dict[str, bool] = {}
    big = max(sizes)
    for r in results:
        if r["sessions"] == big:
            key = f"{r['backend']} N={big} others={r['others']} p95<={P95_TARGET[r['backend']]:g}s"
            verdicts[key] = (
                r["p95_lag_s"] <= P95_TARGET[r["backend"]]
                and r["peak_calls_per_second"] <= BUDGET.rate + BUDGET.burst
            )
    cpu_size = 100 if 100 in sizes else min(sizes)
    for backend in backends:
        alone = next(
            r
            for r in results
            if r["backend"] == backend and r["sessions"] == cpu_size and r["others"] == 0
        )
        crowded = next(
            r
            for r in results
            if r["backend"] == backend and r["sessions"] == cpu_size and r["others"] == others
        )
        ratio = crowded["client_cpu_s"] / max(alone["client_cpu_s"], 1e-9)
        crowded["cpu_ratio"] = round(ratio, 2)
        verdicts[f"{backend} N={cpu_size} cpu among {others} others <= 2x alone ({ratio:.2f}x)"] = (
            ratio <= CPU_RATIO_TARGET
        )
    print()
    for name, ok in verdicts.items():
        print(f"  {'ok  ' if ok else 'FAIL'} {name}")
    met = all(verdicts.values())
    print(f"\ntargets met: {met}  ({time.perf_counter() - started:.1f} s real)")
    last = results[-1]
    emit(
        {
            "runs": results,
            "verdicts": verdicts,
            "sessions": big,
            "calls_per_second": last["calls_per_second"],
            "p95_lag_s": last["p95_lag_s"],
            "baseline_calls_per_second": last["baseline_calls_per_second"],
            "baseline_p95_lag_s": last["baseline_p95_lag_s"],
            "targets_met": met,
        }
    )
    if not met:
        sys.exit(TARGET_MISSED)


if __name__ == "__main__":
    main()

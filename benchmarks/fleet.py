"""Waiting for fleets of 10 to 5,000 sessions on every backend with a list call.

For each backend with a list call (Glue, EMR Serverless, Athena, EMR on EC2, Dataproc, Livy)
and N = 10, 100, 1,000 and 5,000, N sessions are started at once on the emulator (the start
calls are not measured, and all N share one creation instant: the hardest case, since no
creation-time filter can tell them apart), each becoming READY after a random time drawn
uniformly over the backend's ready-time range (Glue 5-60 s, EMR Serverless 20-180 s, Athena
5-30 s, EMR on EC2 10-120 s, Dataproc 60-120 s, Livy 15-90 s). Each N runs twice: alone in
its location, and with 10,000 other sessions there, started and stopped 60 s before, as a
location's history is (on Livy, whose servers forget deleted sessions, the others stay
running: other users' sessions). Then ``wait_all``'s engine (``FleetPoller.as_completed``,
which yields each outcome as the page that shows it is read) waits with its defaults:
``FLEET_POLL`` and the default call budget (10 calls per second, bursts of 20), on the
emulator's virtual clock.

Figures per run: calls made while waiting, calls per second (mean and peak), mean, p95 and max
detection lag (READY to seen), and the client-side CPU of the wait (process time minus the
time the emulator spends answering, so what sessionkit and the SDK cost; the objects the
set-up made are frozen out of the garbage collector first, since a real service keeps its
10,000 sessions outside the client's heap).

Baseline, in the same run: per-session polling every 1 s (the Glue notebook kernel's loop),
computed: it makes N calls per second, N / 10 times the default budget; held to that budget
its cycle stretches to N / 10 s, so its p95 lag is about 0.95 * max(1, N / 10) s. For the CPU
target the baseline is the same N alone in its location.

Targets (the issue's): at N = 5,000, p95 lag <= 3 s on Glue and <= 5 s on EMR Serverless and
Athena, alone and among the others; every run within the default budget (peak calls per
second at most its rate plus burst); at N = 100 on every backend, the CPU among 10,000
others <= 2x the CPU alone. Exits non-zero when a target fails.

What is physically possible (why EMR Serverless misses its lag target): a session is seen
READY only by a call whose answer holds its READY record. Describes give one record per
call; the list call gives at most 50 (EMR Serverless), 100 (Athena) or 1,000 (Glue). The
state filter can ask for READY sessions only, but READY sessions stay READY, and N sessions
created at one instant cannot be told apart by ``createdAtAfter``/``createdAtBefore``, so
every pass over the READY ones re-reads all R of them: R / 50 calls, R / 500 s at 10 calls
per second. The alternatives are dearer: listing the starting ones (P / 50 calls) says which
left, but not how, and describing those costs one call each, while on EMR Serverless they
leave at 5,000 / 160 s = 31 per second, three times the whole budget. A session becoming
READY at a uniformly random moment of a pass that takes D = R / 500 s waits U * D for its
page (U uniform in 0..1). With R growing evenly from 0 to 5,000 over 20-180 s, D is
uniform over 0..10 s, and P(U * D > x) = 1 - x/10 + (x/10) ln(x/10); that is 0.05 at
x = 7.0 s: no schedule under this budget and page size reaches a p95 below about 7 s (the
measured figure adds the sweeps for failed sessions, ~1 call in 50). Athena's bound, with
100 records a page and ready times over 5-30 s (200 sessions a second), is 0.70 * 5 = 3.5 s,
under its 5 s target; Glue reads 1,000 records a page.
"""

from __future__ import annotations

import gc
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

RANGES = {
    "glue": (5.0, 60.0),
    "emr-serverless": (20.0, 180.0),
    "athena": (5.0, 30.0),
    "emr": (10.0, 120.0),
    "dataproc": (60.0, 120.0),
    "livy": (15.0, 90.0),
}
#: The issue's lag targets at N = 5,000 (the other backends' figures are reported only).
P95_TARGET = {"glue": 3.0, "emr-serverless": 5.0, "athena": 5.0}
#: Backends whose emulated service reads a session's start-up time when it settles it.
_SETTLED_LATE = {"emr-serverless": "starting", "emr": "starting", "dataproc": "creating"}
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
    elif backend == "livy":
        emulator.service("livy").timeline.starting = delay  # type: ignore[attr-defined]
    return delay


def _per_session_starting(emulator: Emulator, backend: str, delays: dict[str, float]) -> None:
    """Services that read their start-up time when they settle a session: give each its own."""
    field = _SETTLED_LATE[backend]
    service: Any = emulator.service(backend)
    original = service._settle
    timeline = service.timeline
    before = getattr(timeline, "submitted", 0.0)

    def settle(session: Any) -> Any:
        key = str(getattr(session, "id", None) or getattr(session, "name", ""))
        delay = delays.get(key.rsplit("/", 1)[-1])
        if delay is not None:
            setattr(timeline, field, max(0.0, delay - before))
        return original(session)

    service._settle = settle


class _EmulatorCpu:
    """Accumulates the process time the emulator spends answering calls."""

    def __init__(self, emulator: Emulator, backend: str) -> None:
        self.seconds = 0.0
        if backend in ("glue", "emr-serverless", "athena", "emr"):
            # The AWS transport answers each request (decoding and encoding included).
            target: Any = emulator.transport("aws")
            name = "answer"
        else:
            # Elsewhere the service's handlers (the transport's encoding counts as the
            # client's: a conservative split).
            target, name = emulator.service(backend), "handler"
        original = getattr(target, name)
        timed = self._timed

        if name == "handler":

            def handler(operation: str) -> Any:
                return timed(original(operation))

            setattr(target, name, handler)
        else:
            setattr(target, name, timed(original))

    def _timed(self, function: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            started = time.process_time()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds += time.process_time() - started

        return call


def run(backend: str, count: int, others: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    emulator = Emulator(seed=seed, max_calls=None)
    keywords = emulator.keywords(backend)
    role = emulator.role(backend)
    extra = {"role": role} if role else {}
    unmetered = attrs.evolve(emulator.poll_policy(), budget=None)
    for _ in range(others):
        other = sessionkit.open_session(
            backend, wait=False, poll_policy=unmetered, **extra, **keywords
        )
        if backend != "livy":
            other.stop(wait=False)
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
        delays[session.id.rsplit("/", 1)[-1]] = delay
        ready_at[session.id] = emulator.clock.monotonic() + delay
        sessions.append(session)
    if backend in _SETTLED_LATE:
        _per_session_starting(emulator, backend, delays)
    policy = emulator.poll_policy()
    for session in sessions:
        session.poll_policy = policy
    cpu = _EmulatorCpu(emulator, backend)
    # The emulator keeps every session of the location in this process; a real service keeps
    # them elsewhere. Freeze what the set-up made, so the garbage collector's passes over the
    # emulator's 10,000 others are not billed to the client.
    gc.collect()
    gc.freeze()
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
    gc.unfreeze()
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
                    f"  {backend} N={count} others={crowd}: p95 {result['p95_lag_s']} s "
                    f"(mean {result['mean_lag_s']}, max {result['max_lag_s']}), "
                    f"{result['calls']} calls (peak {result['peak_calls_per_second']}/s), "
                    f"cpu {result['client_cpu_s']} s",
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
        target = P95_TARGET.get(r["backend"])
        if r["sessions"] == big and target is not None:
            key = (
                f"{r['backend']} N={big} others={r['others']} p95 {r['p95_lag_s']} <= {target:g} s"
            )
            verdicts[key] = r["p95_lag_s"] <= target
    for r in results:
        if r["peak_calls_per_second"] > BUDGET.rate + BUDGET.burst:
            key = f"{r['backend']} N={r['sessions']} others={r['others']} within the budget"
            verdicts[key] = False
    verdicts[f"every run within the budget (peak <= {BUDGET.rate + BUDGET.burst:g} calls/s)"] = all(
        r["peak_calls_per_second"] <= BUDGET.rate + BUDGET.burst for r in results
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
        print(f"  {'PASS' if ok else 'FAIL'} {name}")
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

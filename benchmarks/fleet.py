"""Waiting for 100 sessions: wait_all against per-session 1 s polling, on the emulator.

100 Glue sessions are opened without waiting (the start calls are not counted), each taking a
random 15 to 135 s to become READY, so they arrive staggered over two minutes. Then:

- ``wait_all``: sessionkit's fleet wait (``FleetPoller.as_completed``, the engine of
  ``wait_all``, to time each arrival), one ``ListSessions`` call per page per round;
- baseline: every session polled on its own with ``GetSession`` every 1 s (as the Glue
  notebook kernel does), each poller starting at a random phase when the wait starts.

Both run on the emulator's virtual clock with identical sessions. Calls per second are the
calls made while waiting divided by the time until the last session was seen READY (peak: the
busiest 1 s window). Lag is the time from a session becoming READY to the wait seeing it.

Target: wait_all at most 2 calls per second with p95 lag at most 2 s (per-session polling
makes about 100 calls per second while all sessions are starting).
"""

from __future__ import annotations

import heapq
import random
import time
from collections import Counter
from typing import Any

from _common import ROLE, arguments, emit, mean, percentile, table

import sessionkit
from sessionkit.fleet import FleetPoller
from sessionkit.testing import Emulator


def _open(
    emulator: Emulator, delays: list[float]
) -> tuple[list[sessionkit.Session], dict[str, float], Any]:
    client = emulator.client("glue")
    policy = emulator.poll_policy()
    sessions, ready_at = [], {}
    for delay in delays:
        emulator.glue.timeline.provisioning = delay
        session = sessionkit.open_session(
            "glue", wait=False, client=client, poll_policy=policy, role=ROLE
        )
        sessions.append(session)
        ready_at[session.id] = emulator.clock.monotonic() + delay
    return sessions, ready_at, client


def _rates(times: list[float], start: float, end: float) -> tuple[float, float]:
    duration = max(end - start, 1e-9)
    buckets = Counter(int(at - start) for at in times)
    return len(times) / duration, float(max(buckets.values(), default=0))


def _figures(calls: list[Any], lags: list[float], start: float, end: float) -> dict[str, Any]:
    """Call rate and detection lag of one run, from the emulator's call log."""
    per_second, peak = _rates([c.at for c in calls], start, end)
    return {
        "calls": len(calls),
        "operations": dict(Counter(c.operation for c in calls)),
        "seconds": end - start,
        "calls_per_second": per_second,
        "peak_calls_per_second": peak,
        "mean_lag_s": mean(lags),
        "p95_lag_s": percentile(lags, 0.95),
        "max_lag_s": max(lags),
    }


def run_fleet(delays: list[float]) -> dict[str, Any]:
    emulator = Emulator(seed=1)
    sessions, ready_at, _ = _open(emulator, delays)
    first = len(emulator.calls)
    start = emulator.clock.monotonic()
    lags = []
    poller = FleetPoller(sessions, timeout=900)
    for outcome in poller.as_completed():
        assert outcome.ok and outcome.at is not None
        lags.append(outcome.at - max(ready_at[outcome.info.id], start))
    end = emulator.clock.monotonic()
    figures = _figures(emulator.calls[first:], lags, start, end)
    for session in sessions:
        session.stop(wait=False)
    return figures


def run_baseline(delays: list[float], rng: random.Random) -> dict[str, Any]:
    emulator = Emulator(seed=1)
    sessions, ready_at, client = _open(emulator, delays)
    first = len(emulator.calls)
    start = emulator.clock.monotonic()
    queue = [(start + rng.random(), index) for index in range(len(sessions))]
    heapq.heapify(queue)
    lags = []
    while queue:
        at, index = heapq.heappop(queue)
        emulator.clock.advance(max(0.0, at - emulator.clock.monotonic()))
        session = sessions[index]
        status = client.get_session(Id=session.id)["Session"]["Status"]
        if status == "READY":
            lags.append(emulator.clock.monotonic() - max(ready_at[session.id], start))
        else:
            heapq.heappush(queue, (at + 1.0, index))
    end = emulator.clock.monotonic()
    return _figures(emulator.calls[first:], lags, start, end)


def main() -> None:
    args = arguments(__doc__ or "", sessions=(int, 100, "sessions in the fleet"))
    count = 20 if args.quick else args.sessions
    rng = random.Random(args.seed)
    delays = [rng.uniform(15, 135) for _ in range(count)]
    started = time.perf_counter()
    ours = run_fleet(delays)
    baseline = run_baseline(delays, rng)
    rows = [
        [
            name,
            r["calls"],
            r["seconds"],
            r["calls_per_second"],
            r["peak_calls_per_second"],
            r["mean_lag_s"],
            r["p95_lag_s"],
            r["max_lag_s"],
        ]
        for name, r in (("wait_all", ours), ("1 s per session", baseline))
    ]
    print(f"{count} Glue sessions ready after 15-135 s (emulator, virtual clock)\n")
    print(
        table(
            ["wait", "calls", "seconds", "calls/s", "peak/s", "mean lag", "p95 lag", "max lag"],
            rows,
        )
    )
    print(f"\nwait_all calls: {ours['operations']}; baseline calls: {baseline['operations']}")
    met = ours["calls_per_second"] <= 2.0 and ours["p95_lag_s"] <= 2.0
    real = time.perf_counter() - started
    print(f"target (<= 2 calls/s, p95 lag <= 2 s) met: {met}  ({real:.1f} s real)")
    emit(
        {
            "sessions": count,
            "calls_per_second": round(ours["calls_per_second"], 3),
            "p95_lag_s": round(ours["p95_lag_s"], 3),
            "baseline_calls_per_second": round(baseline["calls_per_second"], 3),
            "baseline_p95_lag_s": round(baseline["p95_lag_s"], 3),
            "peak_calls_per_second": ours["peak_calls_per_second"],
            "baseline_peak_calls_per_second": baseline["peak_calls_per_second"],
            "mean_lag_s": round(ours["mean_lag_s"], 3),
            "baseline_mean_lag_s": round(baseline["mean_lag_s"], 3),
            "targets_met": met,
        }
    )


if __name__ == "__main__":
    main()

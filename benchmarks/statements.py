"""How soon a short statement's result is seen: STATEMENT_POLL against a fixed 1 s poll.

``Session.run`` submits code and polls the statement until it ends. On the emulated Glue
session (virtual clock), each statement runs for a random 0.05 to 1 s; the lag is the time from
the statement finishing to ``run`` returning. The same statements run once with the session's
default statement policy (``STATEMENT_POLL``: first look after 50 ms, x1.4 up to 2 s) and once
with a fixed 1 s poll, with the per-client call budget applied as usual.

Target: mean lag at most 0.25 s with the statement policy (a fixed 1 s poll averages ~0.5 s).
"""

from __future__ import annotations

import random
import time

from _common import ROLE, arguments, emit, mean, percentile, table

import sessionkit
from sessionkit.testing import Emulator
from sessionkit.waiting import STATEMENT_POLL, PollPolicy

FIXED_1S = PollPolicy(first=1.0, multiplier=1.0, cap=1.0, jitter=0.0, timeout=None)


def measure(durations: list[float], statement_policy: PollPolicy | None) -> tuple[list[float], int]:
    """Run one statement per duration; return the lags and the GetStatement calls."""
    emulator = Emulator(seed=3)
    policy = emulator.poll_policy()
    session = sessionkit.open_session(
        "glue", client=emulator.client("glue"), poll_policy=policy, role=ROLE
    )
    if statement_policy is not None:
        session.statement_policy = statement_policy.on(
            emulator.clock.monotonic, emulator.clock.sleep, emulator.clock.now
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
    args = arguments(__doc__ or "", statements=(int, 1000, "statements per policy"))
    count = 30 if args.quick else args.statements
    rng = random.Random(args.seed)
    durations = [rng.uniform(0.05, 1.0) for _ in range(count)]
    started = time.perf_counter()
    ours, our_calls = measure(durations, None)
    fixed, fixed_calls = measure(durations, FIXED_1S)
    rows = [
        [name, mean(lags), percentile(lags, 0.95), max(lags), calls / count]
        for name, lags, calls in (
            ("STATEMENT_POLL", ours, our_calls),
            ("fixed 1 s", fixed, fixed_calls),
        )
    ]
    print(f"{count} statements finishing after 0.05-1 s (emulator, virtual clock)\n")
    print(table(["policy", "mean lag s", "p95 lag s", "max lag s", "polls/statement"], rows))
    met = mean(ours) <= 0.25
    print(
        f"\nSTATEMENT_POLL {STATEMENT_POLL!r}\n"
        f"target (mean lag <= 0.25 s) met: {met}  ({time.perf_counter() - started:.1f} s real)"
    )
    emit(
        {
            "mean_lag_s": round(mean(ours), 4),
            "baseline_mean_lag_s": round(mean(fixed), 4),
            "p95_lag_s": round(percentile(ours, 0.95), 4),
            "baseline_p95_lag_s": round(percentile(fixed, 0.95), 4),
            "polls_per_statement": round(our_calls / count, 2),
            "baseline_polls_per_statement": round(fixed_calls / count, 2),
            "statements": count,
            "targets_met": met,
        }
    )


if __name__ == "__main__":
    main()

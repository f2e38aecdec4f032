"""``list_sessions`` over a large location: streamed pages, sleeping only on a spent budget.

N sessions (10,000 by default) are started in one EMR Serverless application of the emulator
(the starts are not measured), then ``sessionkit.list_sessions`` reads them all with the
default poll policy on the emulator's virtual clock: the default call budget (10 calls per
second, bursts of 20) and the largest page the service allows (50 records).

Figures: pages (calls), the virtual time to the first record and to the last, the virtual
seconds slept on the call budget, and the real seconds and process CPU per 1,000 records (the
emulator's answers included: it runs in the same process).

Baseline, computed in the same run: the budget's own minimum sleep for that many pages, which
no client can beat: ``max(0, pages - burst) / rate`` seconds (the first ``burst`` calls go at
once, then one every ``1 / rate`` s), and a first record at virtual time 0 (no sleep before
the first page).

Targets: the first record before any sleep (virtual time 0), and a total sleep within one call
interval (``1 / rate``) of the minimum. Exits non-zero when a target fails.
"""

from __future__ import annotations

import math
import sys
import time

import attrs
from _common import TARGET_MISSED, arguments, emit, table

import sessionkit
from sessionkit.testing import Emulator
from sessionkit.waiting import CallBudget

BUDGET = CallBudget()


def run(count: int, seed: int) -> dict[str, float]:
    emulator = Emulator(seed=seed, max_calls=None)
    keywords = emulator.keywords("emr-serverless")
    role = emulator.role("emr-serverless")
    unmetered = attrs.evolve(emulator.poll_policy(), budget=None)
    for _ in range(count):
        sessionkit.open_session(
            "emr-serverless", wait=False, poll_policy=unmetered, role=role, **keywords
        )
    slept = [0.0]
    base = emulator.poll_policy()

    def sleep(seconds: float) -> None:
        slept[0] += seconds
        base.sleep(seconds)

    policy = attrs.evolve(base, sleep=sleep)
    first_call = emulator.call_count("emr-serverless", "ListSessions")
    start = emulator.clock.monotonic()
    real = time.perf_counter()
    cpu = time.process_time()
    first_record: float | None = None
    listed = 0
    for _ in sessionkit.list_sessions("emr-serverless", poll_policy=policy, **keywords):
        if first_record is None:
            first_record = emulator.clock.monotonic() - start
        listed += 1
    cpu = time.process_time() - cpu
    real = time.perf_counter() - real
    pages = emulator.call_count("emr-serverless", "ListSessions") - first_call
    minimum = max(0.0, pages - BUDGET.burst) / BUDGET.rate
    return {
        "sessions": listed,
        "pages": pages,
        "page_size": math.ceil(listed / max(pages, 1)),
        "first_record_s": round(first_record or 0.0, 3),
        "last_record_s": round(emulator.clock.monotonic() - start, 3),
        "slept_s": round(slept[0], 3),
        "minimum_sleep_s": round(minimum, 3),
        "real_s_per_1000": round(1000 * real / max(listed, 1), 3),
        "cpu_s_per_1000": round(1000 * cpu / max(listed, 1), 3),
    }


def main() -> None:
    args = arguments(__doc__ or "", sessions=(int, 10_000, "sessions in the application"))
    count = 500 if args.quick else args.sessions
    result = run(count, args.seed)
    print("list_sessions on the emulator (EMR Serverless, virtual clock, default budget)\n")
    print(table(list(result), [list(result.values())]))
    verdicts = {
        "first record before any sleep": result["first_record_s"] == 0.0,
        f"sleep within {1 / BUDGET.rate:g} s of the budget's minimum": result["slept_s"]
        <= result["minimum_sleep_s"] + 1 / BUDGET.rate,
        "every session listed": result["sessions"] == count,
    }
    print()
    for name, ok in verdicts.items():
        print(f"  {'PASS' if ok else 'FAIL'} {name}")
    met = all(verdicts.values())
    emit({**result, "verdicts": verdicts, "targets_met": met})
    if not met:
        sys.exit(TARGET_MISSED)


if __name__ == "__main__":
    main()

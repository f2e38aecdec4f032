"""What sessionkit adds to one describe call: Session.refresh() against a raw boto3 get_session.

Both go to the same emulated Glue session through the same boto3 client, in the same process,
interleaved call by call (so drift in machine load hits both alike), after a warm-up. The
session uses the emulator's poll policy, as tests and demos do: the per-client call budget is
applied (its bookkeeping is part of what is measured), and when it runs dry it sleeps on the
virtual clock, because the budget limits the rate of calls, which is not what this benchmark
measures. The emulator's own work (decoding, answering, validating the response against the
service model) is in both figures.

Target: median refresh time / median get_session time at most 1.10.
"""

from __future__ import annotations

import gc
import statistics
import time

from _common import ROLE, arguments, emit, percentile, table

import sessionkit
from sessionkit.testing import Emulator


def main() -> None:
    args = arguments(__doc__ or "", calls=(int, 3000, "calls of each kind"))
    count = 200 if args.quick else args.calls
    emulator = Emulator(validate=True)
    client = emulator.client("glue")
    session = sessionkit.open_session(
        "glue", client=client, poll_policy=emulator.poll_policy(), role=ROLE
    )
    for _ in range(200):
        session.refresh()
        client.get_session(Id=session.id)
    ours: list[float] = []
    raw: list[float] = []
    clock = time.perf_counter
    gc.collect()
    for index in range(count):
        # Alternate which goes first, so neither always runs on a warmer cache.
        if index % 2:
            start = clock()
            session.refresh()
            middle = clock()
            client.get_session(Id=session.id)
            end = clock()
            ours.append(middle - start)
            raw.append(end - middle)
        else:
            start = clock()
            client.get_session(Id=session.id)
            middle = clock()
            session.refresh()
            end = clock()
            raw.append(middle - start)
            ours.append(end - middle)
    session.stop(wait=False)
    ratio = statistics.median(ours) / statistics.median(raw)
    rows = [
        [name, statistics.median(v) * 1e6, percentile(v, 0.9) * 1e6, min(v) * 1e6]
        for name, v in (("Session.refresh()", ours), ("boto3 get_session", raw))
    ]
    print(f"{count} interleaved calls each against the emulator\n")
    print(table(["call", "median us", "p90 us", "min us"], rows))
    print(f"\nmedian ratio: {ratio:.3f} (target <= 1.10: {ratio <= 1.10})")
    emit(
        {
            "ratio": round(ratio, 4),
            "refresh_median_us": round(statistics.median(ours) * 1e6, 1),
            "boto3_median_us": round(statistics.median(raw) * 1e6, 1),
            "calls": count,
            "targets_met": ratio <= 1.10,
        }
    )


if __name__ == "__main__":
    main()

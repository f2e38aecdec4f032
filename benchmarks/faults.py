"""The fault matrix as a table: lifecycles per backend and fault profile, on the emulator.

For every backend whose emulated service exists and every fault profile (no faults; 30%
throttling; 20% 5xx; 10% connection errors; 10% read timeouts, i.e. answers lost after the
service acted; 20% of calls delayed by 20 s; every other session failing while it starts; every
stop throttled five times), runs full lifecycles on virtual time: one after another (open and
wait, refresh, stop and wait) and as a fleet (open without waiting, ``wait_all``, refresh, stop,
``wait_all`` until stopped). The same runner backs ``tests/test_faults.py``, which asserts
what this prints.

Targets: 0 duplicate sessions, 0 sessions left running, 0 untyped exceptions in every cell;
failures only where the profile scripted them (or, rarely, where a call exhausted its retries).
"""

from __future__ import annotations

import time

from _common import arguments, emit

from tests.faultmatrix import run_matrix, table


def main() -> None:
    args = arguments(
        __doc__ or "",
        single=(int, 60, "lifecycles one after another per cell"),
        fleet=(int, 40, "sessions in the fleet batch per cell"),
    )
    single, fleet = (5, 5) if args.quick else (args.single, args.fleet)
    started = time.perf_counter()
    cells = run_matrix(single=single, fleet=fleet)
    print(
        f"{single} sequential lifecycles + a fleet of {fleet} per cell (emulator, virtual clock)\n"
    )
    print(table(cells))
    for cell in cells:
        for kind, message in {**cell.errors, **cell.failures}.items():
            print(f"  {cell.backend} / {cell.profile}: {kind}: {message}")
    totals = {
        key: sum(getattr(c, key) for c in cells)
        for key in (
            "lifecycles",
            "completed",
            "failed",
            "scripted",
            "duplicates",
            "leaked",
            "untyped",
        )
    }
    met = totals["duplicates"] == totals["leaked"] == totals["untyped"] == 0
    print(f"\ntotals {totals}; targets met: {met}  ({time.perf_counter() - started:.1f} s real)")
    emit(
        {
            **totals,
            "backends": sorted({c.backend for c in cells}),
            "cells": [
                {
                    "backend": c.backend,
                    "profile": c.profile,
                    "lifecycles": c.lifecycles,
                    "completed": c.completed,
                    "failed": c.failed,
                    "scripted": c.scripted,
                    "duplicates": c.duplicates,
                    "leaked": c.leaked,
                    "untyped": c.untyped,
                    "calls": c.calls,
                }
                for c in cells
            ],
            "targets_met": met,
        }
    )


if __name__ == "__main__":
    main()

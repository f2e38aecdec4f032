"""``sessionkit sweep``: stop the sessions sessionkit started and a dead process left behind.

It runs :func:`sessionkit.sweep_sessions` on one backend's location: a session is stopped when
it is alive, carries sessionkit's ``sessionkit:created-by`` tag and is older than
``--older-than`` (or past its ``sessionkit:expires-at`` tag). Sessions sessionkit did not start
are never touched. ``--dry-run`` only says what would be stopped.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from sessionkit.cli.backends import BackendRow
from sessionkit.cli.output import data, info_dict, say

__all__ = ["add_parser", "run_sweep"]


def add_parser(subparsers: Any, rows: list[BackendRow]) -> None:
    """Add ``sweep`` to the command's subparsers.

    Args:
        subparsers: The ``sessionkit`` command's subparsers object.
        rows: The backends, whose location options the command takes.
    """
    from sessionkit.cli.parser import add_where, duration

    names = ", ".join(r.name for r in rows) or "none installed"
    sweep: argparse.ArgumentParser = subparsers.add_parser(
        "sweep",
        help="stop leaked sessions sessionkit started (older than --older-than)",
        description="Stop the alive sessions of a backend's location that sessionkit started "
        "(they carry its sessionkit:created-by tag) and that are older than --older-than or "
        "past their sessionkit:expires-at tag: what a killed process left running. Sessions "
        "sessionkit did not start are never stopped. The stops are requested, not awaited."
        f"\n\nbackends: {names}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_where(sweep, rows)
    sweep.add_argument(
        "--older-than",
        type=duration,
        required=True,
        metavar="DURATION",
        help="stop tagged sessions older than this, with a unit: 2h, 90m, 1d",
    )
    sweep.add_argument(
        "--dry-run", action="store_true", help="only list what would be stopped; stop nothing"
    )
    sweep.set_defaults(func=run_sweep)


def run_sweep(args: argparse.Namespace) -> int:
    """``sessionkit sweep``."""
    from sessionkit import sweep_sessions
    from sessionkit.cli.commands import Target

    target = Target(args)
    swept = sweep_sessions(
        target.backend,
        older_than=args.older_than,
        dry_run=args.dry_run,
        poll_policy=target.policy,
        **target.keywords,
    )
    if args.json:
        data(json.dumps({"dry_run": args.dry_run, "sessions": [info_dict(i) for i in swept]}))
        return 0
    verb = "would stop" if args.dry_run else "stopped"
    for info in swept:
        created = info.created_at.isoformat(timespec="seconds") if info.created_at else "-"
        say(f"{verb} {info.id}  {info.state.value}  created {created}")
    if not swept:
        say(f"no leaked {target.backend} sessions older than {args.older_than}", sys.stderr)
    else:
        what = "would be stopped" if args.dry_run else "stop requested"
        say(f"{len(swept)} {target.backend} session(s): {what}", sys.stderr)
    return 0

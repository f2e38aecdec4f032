"""The ``sessionkit`` argument parser, built from the one table of backends.

Each backend contributes its own options: every keyword in its ``cli_fields`` becomes a
``--kebab-case`` option (shared by the backends that declare the same keyword), and each
subcommand's help lists the backends it takes. Subcommands added later (``sweep``,
``emulator serve``) plug in through :data:`EXTRA_COMMANDS` without touching this module.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any, NoReturn

from sessionkit._version import __version__
from sessionkit.cli.backends import BackendRow, flag

__all__ = ["EXTRA_COMMANDS", "Parser", "add_where", "build_parser", "duration", "timeout"]

#: Further subcommands: name to ``"module:function"``; the function takes the subparsers
#: object (``argparse._SubParsersAction``) and the backend rows, adds its parser and sets
#: ``func``.
EXTRA_COMMANDS: Mapping[str, str] = {
    "sweep": "sessionkit.cli.sweep:add_parser",
    "emulator": "sessionkit.cli.serve:add_parser",
}

#: Set by :func:`sessionkit.cli.main` when the command line asks for ``--json``.
json_errors = False

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


class Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line, like every other error."""

    def error(self, message: str) -> NoReturn:
        """Print the usage error on one line (and as JSON with ``--json``); exit with code 2."""
        from sessionkit.cli.output import error

        text = f"{message} (see '{self.prog} --help')"
        details = {"type": "UsageError", "message": text, "exit_code": 2}
        error(text, as_json=details if json_errors else None)
        raise SystemExit(2)


def duration(text: str) -> timedelta:
    """A duration with a unit: ``90s``, ``30m``, ``2h``, ``1d``, ``1h30m``.

    Raises:
        argparse.ArgumentTypeError: For a bare number (say which unit) or anything else.
    """
    compact = text.strip().lower()
    try:
        float(compact)
    except ValueError:
        pass
    else:
        raise argparse.ArgumentTypeError(
            f"{text!r} has no unit; add one: {compact}m for minutes, {compact}s for seconds"
        )
    parts = _DURATION.findall(compact)
    if not parts or _DURATION.sub("", compact).strip():
        raise argparse.ArgumentTypeError(
            f"expected a duration like 30m, 90s or 1h30m, got {text!r}"
        )
    value = timedelta(**{_UNITS[u]: 0 for u in _UNITS})
    for number, unit in parts:
        value += timedelta(**{_UNITS[unit]: float(number)})
    if value <= timedelta(0):
        raise argparse.ArgumentTypeError(f"expected a positive duration, got {text!r}")
    return value


def timeout(text: str) -> timedelta:
    """A wait's timeout: a duration with a unit, or a plain number of seconds."""
    try:
        seconds = float(text)
    except ValueError:
        return duration(text)
    if not 0 < seconds < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return timedelta(seconds=seconds)


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def _positive_number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of seconds >= 0, got {text!r}")
    return value


def _names(rows: list[BackendRow], keep: Callable[[BackendRow], bool] = lambda r: True) -> str:
    return ", ".join(r.name for r in rows if keep(r)) or "none installed"


def add_where(parser: argparse.ArgumentParser, rows: list[BackendRow]) -> None:
    """Add the options that say where a command acts: the backend, its location, an emulator.

    Args:
        parser: The subcommand's parser.
        rows: The backends, whose ``cli_fields`` become options.
    """
    group = parser.add_argument_group("where")
    group.add_argument(
        "-b",
        "--backend",
        default=os.environ.get("SESSIONKIT_BACKEND") or None,
        metavar="NAME",
        help=f"the backend: {_names(rows)} (case, '-' and '_' do not matter; "
        "default: $SESSIONKIT_BACKEND)",
    )
    group.add_argument(
        "--local",
        action="store_true",
        help="use a local emulator that lives only while this command runs (no cloud account)",
    )
    group.add_argument(
        "--emulator",
        metavar="URL",
        default=None,
        help="use the emulator 'sessionkit emulator serve' serves at URL, shared by commands "
        "run one after another (default: $SESSIONKIT_EMULATOR_URL)",
    )
    group.add_argument(
        "--call-timeout",
        type=timeout,
        metavar="DURATION",
        help="the longest one service call may take, retries included (e.g. 10s, 2m; "
        "default: 60s); waits are bounded by --timeout instead",
    )
    owners: dict[str, list[str]] = {}
    for row in rows:
        for field in row.cli_fields:
            owners.setdefault(field, []).append(row.name)
    for field, names in sorted(owners.items()):
        group.add_argument(
            flag(field),
            dest=field,
            metavar=field.split("_")[-1].upper(),
            help=f"the {field.replace('_', ' ')} ({', '.join(names)})",
        )
    group.add_argument(
        "--keyword",
        type=_key_value,
        action="append",
        metavar="NAME=VALUE",
        help="any other keyword of the backend (a JSON value or a string; repeatable)",
    )
    parser.set_defaults(cli_field_names=tuple(sorted(owners)))
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON on stdout")


def _add_session_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("session")
    group.add_argument(
        "--role",
        metavar="IDENTITY",
        help="the identity the session runs as (the backend's form; --local uses a stand-in)",
    )
    group.add_argument("--name", help="a name for the session")
    group.add_argument(
        "--idle-timeout",
        type=duration,
        metavar="DURATION",
        help="stop the session after this long idle, with a unit: 30m, 90s, 2h",
    )
    group.add_argument(
        "--conf",
        type=_key_value,
        action="append",
        metavar="KEY=VALUE",
        help="a Spark property (repeatable)",
    )
    group.add_argument(
        "--tag", type=_key_value, action="append", metavar="KEY=VALUE", help="a tag (repeatable)"
    )


def _command(
    commands: Any, name: str, summary: str, description: str, backends: str
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(
        name,
        help=summary,
        description=f"{description}\n\nbackends: {backends}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser


def build_parser(*, light: bool = False) -> argparse.ArgumentParser:
    """Build the argument parser of the ``sessionkit`` command.

    Args:
        light: Leave out the backends' own options (imports no backend; enough for the
            top-level help and ``--version``).

    Returns:
        The parser; each subcommand sets ``func`` to the function that runs it.
    """
    from sessionkit import available_backends
    from sessionkit.cli import backends, commands, demo

    rows: list[BackendRow] = (
        [BackendRow(name=n) for n in available_backends()] if light else backends.rows()
    )
    parser = Parser(
        prog="sessionkit",
        description="Open, inspect, run code in and stop interactive Spark sessions on "
        f"any backend ({_names(rows)}), or try it all locally with 'sessionkit demo'.",
        epilog="Exit codes: 0 ok, 1 failed, 2 usage or configuration error, 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"sessionkit {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    emulated = "the emulated ones: run 'sessionkit demo --help'" if light else ""
    if not light:
        emulated = ", ".join(backends.emulated())

    demo_parser = _command(
        subparsers,
        "demo",
        "run the session lifecycle on the local emulator (no cloud account)",
        "Open a session on the local emulator, show it provisioning, print its state, id and "
        "usage, run a statement (or show the Spark Connect endpoint where the backend has no "
        "statement API), stop it and show it stopped. With the spark extra installed the "
        "statement runs on a real local Spark, started once for the whole run.",
        f"{emulated} (or all)",
    )
    demo_parser.add_argument(
        "-b",
        "--backend",
        default="all",
        metavar="NAME",
        help="the backend to demonstrate, or all (default: all)",
    )
    demo_parser.add_argument(
        "--spark",
        choices=["auto", "on", "off"],
        default="auto",
        help="run the statements on a real local Spark (needs the spark extra and Java): auto "
        "uses it when installed, on requires it, off never starts it (default: auto)",
    )
    demo_parser.add_argument(
        "--pace",
        type=_positive_number,
        default=demo.PACE,
        metavar="SECONDS",
        help=f"real seconds per emulated second (default {demo.PACE}; 0 runs instantly)",
    )
    demo_parser.set_defaults(func=demo.run_demo)

    every = _names(rows) + (f" (--local: {emulated})" if emulated else "")
    open_ = _command(
        subparsers,
        "open",
        "open a session and wait until it is READY",
        "Start a session and wait until it is READY, showing its state while it provisions. "
        "A session that fails to become ready is stopped before the command exits.",
        every,
    )
    add_where(open_, rows)
    _add_session_options(open_)
    open_.add_argument("--no-wait", action="store_true", help="return right after the start")
    open_.add_argument(
        "--timeout", type=timeout, metavar="DURATION", help="the longest wait (default: 20m)"
    )
    open_.set_defaults(func=commands.run_open)

    status = _command(
        subparsers, "status", "show a session", "Describe one session (one call).", every
    )
    status.add_argument("session_id", metavar="SESSION_ID")
    add_where(status, rows)
    status.set_defaults(func=commands.run_status)

    wait = _command(
        subparsers,
        "wait",
        "wait until a session is READY",
        "Wait until an existing session is READY; fail at once if it fails or stops.",
        every,
    )
    wait.add_argument("session_id", metavar="SESSION_ID")
    add_where(wait, rows)
    wait.add_argument(
        "--timeout", type=timeout, metavar="DURATION", help="the longest wait (default: 20m)"
    )
    wait.set_defaults(func=commands.run_wait)

    stop = _command(
        subparsers,
        "stop",
        "stop a session and wait until it has stopped",
        "Request the stop of a session and wait until it has stopped.",
        every,
    )
    stop.add_argument("session_id", metavar="SESSION_ID")
    add_where(stop, rows)
    stop.add_argument("--no-wait", action="store_true", help="only request the stop")
    stop.add_argument(
        "--delete",
        action="store_true",
        help="also delete the stopped session's record (backends: "
        f"{_names(rows, lambda r: bool(r.capabilities and r.capabilities.delete))})",
    )
    stop.add_argument(
        "--timeout", type=timeout, metavar="DURATION", help="the longest wait (default: 20m)"
    )
    stop.set_defaults(func=commands.run_stop)

    list_ = _command(
        subparsers,
        "list",
        "list sessions, one per line",
        "List the sessions of a backend's location, all pages.",
        every,
    )
    add_where(list_, rows)
    from sessionkit.states import SessionState

    list_.add_argument(
        "--state",
        nargs="+",
        action="extend",
        type=str.upper,
        choices=[state.value for state in SessionState],
        metavar="STATE",
        help="only sessions in these states (e.g. READY STOPPED)",
    )
    list_.set_defaults(func=commands.run_list)

    run = _command(
        subparsers,
        "run",
        "run code in a new session (or --session-id) and print its output",
        "Open a session (or attach to --session-id), run the code, print its output, and stop "
        "the session if this command opened it; an attached session is left running. The code "
        "is CODE, the file of -f FILE, or standard input with '-'. A backend without a "
        "statement API is refused before anything is provisioned.",
        _names(rows, lambda r: r.statements) if not light else every,
    )
    run.add_argument(
        "code", metavar="CODE", nargs="?", help="the code to run (PySpark, spark bound), or -"
    )
    run.add_argument("-f", "--file", metavar="FILE", help="run the code in FILE (- for stdin)")
    run.add_argument("--session-id", metavar="ID", help="run in this existing session")
    add_where(run, rows)
    _add_session_options(run)
    run.add_argument(
        "--timeout",
        type=timeout,
        metavar="DURATION",
        help="cancel the statement on the service after this long (default: no limit)",
    )
    run.set_defaults(func=commands.run_run)

    for path in EXTRA_COMMANDS.values():
        module, _, function = path.partition(":")
        getattr(importlib.import_module(module), function)(subparsers, rows)
    return parser

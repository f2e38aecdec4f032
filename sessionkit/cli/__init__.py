"""The ``sessionkit`` command: open, inspect, run code in and stop sessions from a shell.

``sessionkit demo`` shows the whole lifecycle on the local emulator, with no cloud account.
The other commands work against the backend's service (its options come from the backend:
``sessionkit open --help``), with ``--local`` against an emulator that lives in the process
for the duration of one command, or with ``--emulator URL`` (``SESSIONKIT_EMULATOR_URL``)
against one ``sessionkit emulator serve`` serves, which outlives each command.

The package: :mod:`~sessionkit.cli.parser` (the argument parser, built from the one table of
backends in :mod:`~sessionkit.cli.backends`), :mod:`~sessionkit.cli.commands` (the commands,
on the public API only), :mod:`~sessionkit.cli.output` (lines, JSON, errors, progress),
:mod:`~sessionkit.cli.failures` (the one-line message and exit code of a failure),
:mod:`~sessionkit.cli.local` (``--local``), :mod:`~sessionkit.cli.remote` (``--emulator``),
:mod:`~sessionkit.cli.sweep` (``sweep``), :mod:`~sessionkit.cli.serve` (``emulator serve``)
and :mod:`~sessionkit.cli.demo`.

Exit codes: 0 success, 1 a failed step or a service error, 2 a usage or configuration error
(missing credentials included), 130 interrupted (Ctrl-C; a session the command opened is
stopped first, and a line says so).

Nothing heavy is imported at module level, so ``sessionkit --help`` answers at once.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from sessionkit.cli import backends, commands, output, parser
from sessionkit.cli.backends import BackendRow, UsageError
from sessionkit.cli.failures import describe, exit_code, is_expected
from sessionkit.cli.output import info_dict
from sessionkit.cli.parser import build_parser

if TYPE_CHECKING:
    import argparse

__all__ = ["DEBUG_ENV", "build_parser", "describe", "exit_code", "info_dict", "main"]

#: Set to 1 to see the traceback of an unexpected error instead of the one-line message.
DEBUG_ENV = "SESSIONKIT_DEBUG"


def _row_of(args: argparse.Namespace) -> BackendRow | None:
    name = getattr(args, "backend", None)
    if not name or getattr(args, "command", None) == "demo":
        return None
    try:
        return backends.row(backends.resolve(name))
    except UsageError:
        return None


def _error_details(exc: BaseException, message: str, code: int) -> dict[str, Any]:
    details: dict[str, Any] = {"type": type(exc).__name__, "message": message, "exit_code": code}
    for attribute in ("field", "code", "request_id"):
        value = getattr(exc, attribute, None)
        if isinstance(value, str):
            details[attribute] = value
    return details


def _say_stopped() -> None:
    """After Ctrl-C: say which sessions this command opened and has asked to stop."""
    for session in commands.opened:
        if not session.owned:
            continue
        try:
            session.stop(wait=False)
        except Exception as exc:
            output.error(f"could not stop {session.backend} session {session.id}: {exc}")
            continue
        output.say(
            f"sessionkit: stopped {session.backend} session {session.id} after Ctrl-C "
            "(the stop is requested; it ends in a moment)",
            sys.stderr,
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``sessionkit`` command.

    Args:
        argv: The arguments after the program name; default ``sys.argv[1:]``.

    Returns:
        The exit code: 0 success, 1 a failed step or service error, 2 a usage or configuration
        error, 130 interrupted.
    """
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser.json_errors = "--json" in arguments
    commands.opened.clear()
    light = not arguments or arguments[0] in ("-h", "--help", "--version")
    try:
        command_parser = build_parser(light=light)
    except Exception as exc:  # a broken backend must not take the help down with it
        output.error(f"could not build the command line: {describe(exc)}")
        return 1
    if not arguments:
        command_parser.print_help()
        return 0
    try:
        args = command_parser.parse_args(arguments)
    except SystemExit as exc:  # --help, --version and usage errors end parsing
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    command: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if command is None:
        command_parser.print_help()
        return 0
    row = _row_of(args)
    as_json = bool(getattr(args, "json", False))
    try:
        return command(args)
    except KeyboardInterrupt:
        _say_stopped()
        output.error(
            "interrupted",
            as_json={"type": "KeyboardInterrupt", "message": "interrupted", "exit_code": 130}
            if as_json
            else None,
        )
        return 130
    except BrokenPipeError:
        # The reader went away (`sessionkit list | head`): not an error of ours. Point stdout
        # at nothing so the interpreter's final flush does not complain either.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except Exception as exc:
        if not is_expected(exc) and os.environ.get(DEBUG_ENV) == "1":
            raise
        message = describe(exc, row)
        if _unknown_local_session(args, exc):
            message += f" ({_local_hint()})"
        if not is_expected(exc):
            message += f" (this looks like a bug; set {DEBUG_ENV}=1 for the traceback)"
        code = exit_code(exc, row)
        output.error(message, as_json=_error_details(exc, message, code) if as_json else None)
        return code


def _local_hint() -> str:
    from sessionkit.cli.local import HINT

    return HINT


def _unknown_local_session(args: argparse.Namespace, exc: BaseException) -> bool:
    """Whether a --local command was given the id of a session its emulator never saw."""
    from sessionkit.errors import ServiceError

    return (
        bool(getattr(args, "local", False) and getattr(args, "session_id", None))
        and isinstance(exc, ServiceError)
        and not exc.retryable
    )

"""``sessionkit emulator serve``: serve the emulator on a loopback port until interrupted.

The options and the serving are :func:`sessionkit.testing.serving.main`'s: this module only
hands it the arguments after ``serve``. Other commands reach the served emulator with
``--emulator URL`` or ``SESSIONKIT_EMULATOR_URL``.
"""

from __future__ import annotations

import argparse
from typing import Any

from sessionkit.cli.backends import BackendRow

__all__ = ["add_parser", "run_serve"]


def add_parser(subparsers: Any, rows: list[BackendRow]) -> None:
    """Add ``emulator serve`` to the command's subparsers.

    Args:
        subparsers: The ``sessionkit`` command's subparsers object.
        rows: The backends (unused: the served emulator stands in for the emulated ones).
    """
    emulator: argparse.ArgumentParser = subparsers.add_parser(
        "emulator",
        help="serve the local emulator for other processes ('sessionkit emulator serve')",
        description="The local emulator as a service, for other processes and other commands "
        "(--emulator URL): 'sessionkit emulator serve --help' lists its options."
        # Named without importing the emulator, so 'sessionkit --help' stays light.
        "\n\nbackends: every backend the emulator stands in for ('sessionkit demo --help')",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = emulator.add_subparsers(dest="emulator_command", metavar="ACTION")
    serve = actions.add_parser(
        "serve",
        help="serve every emulated service on a loopback port until interrupted",
        # The server's own parser reads the arguments (and answers --help): none is ours.
        add_help=False,
        prefix_chars="\0",
    )
    serve.add_argument("argv", nargs=argparse.REMAINDER)
    serve.set_defaults(func=run_serve)
    emulator.set_defaults(func=lambda args: _no_action(emulator))


def _no_action(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def run_serve(args: argparse.Namespace) -> int:
    """``sessionkit emulator serve [--port N] [--speed X] [--spark] [--seed N]``."""
    from sessionkit.testing.serving import main

    return main(list(args.argv))

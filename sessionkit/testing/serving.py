"""``sessionkit emulator serve`` (or ``python -m sessionkit.testing.serving``): serve until stopped.

Builds an :class:`~sessionkit.testing.Emulator`, puts it on a loopback port with
:class:`~sessionkit.testing.server.EmulatorServer` and serves until SIGINT or SIGTERM. It lives
apart from the server so that the server never imports the emulator it serves (the emulator's
``serve()`` imports the server).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

from sessionkit.testing.clock import VirtualClock
from sessionkit.testing.emulator import Emulator
from sessionkit.testing.server import ENV_VAR, EmulatorServer, ScaledClock

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sessionkit emulator serve",
        description=(
            "Serve the sessionkit emulator on a loopback port: every emulated service in its "
            "real wire protocol, for any client (SDKs, command-line tools, ...) given "
            f"the printed URL as its endpoint URL. Point sessionkit's CLI at it with "
            f"--emulator URL or {ENV_VAR}."
        ),
    )
    parser.add_argument(
        "--port", type=int, default=0, help="port on 127.0.0.1 (default: any free port)"
    )
    parser.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help=(
            "virtual seconds per real second (60: a minute of provisioning takes a second); "
            "0: virtual time that only POST /_sessionkit/advance?seconds=N moves (default: 1)"
        ),
    )
    parser.add_argument(
        "--spark",
        action="store_true",
        help="run statements on a real local Spark Connect server (needs the spark extra and Java)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for ids, tokens and fault dice")
    return parser


def main(argv: list[str] | None = None) -> int:
    """``sessionkit emulator serve``: serve the emulator until interrupted.

    Prints the URL (and the line that exports it as ``SESSIONKIT_EMULATOR_URL``) on standard
    output, then serves until SIGINT or SIGTERM.

    Args:
        argv: The arguments after ``serve`` (default: ``sys.argv[1:]``).

    Returns:
        The exit code: 0 after a clean shutdown, 2 for bad arguments.
    """
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    if args.speed < 0:
        parser.print_usage(sys.stderr)
        print("sessionkit emulator serve: --speed must not be negative", file=sys.stderr)
        return 2
    if not 0 <= args.port <= 65535:
        print("sessionkit emulator serve: --port must be 0..65535", file=sys.stderr)
        return 2
    clock = ScaledClock(speed=args.speed) if args.speed > 0 else VirtualClock()
    emulator = Emulator(clock=clock, seed=args.seed)
    spark = None
    if args.spark:
        from sessionkit.errors import SessionKitError
        from sessionkit.testing.spark import LocalSparkConnect

        spark = LocalSparkConnect()
        try:
            emulator.use_spark(spark)
        except SessionKitError as exc:
            print(f"sessionkit emulator serve: --spark: {exc}", file=sys.stderr)
            return 2
    stop = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with EmulatorServer(emulator, port=args.port) as server:
            timing = f"speed {args.speed:g}" if args.speed > 0 else "virtual time"
            print(f"sessionkit emulator serving on {server.url} ({timing})", flush=True)
            print(f"export {ENV_VAR}={server.url}", flush=True)
            while not stop.wait(0.2):
                pass
    except OSError as exc:
        print(
            f"sessionkit emulator serve: cannot serve on port {args.port}: {exc}", file=sys.stderr
        )
        return 2
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if spark is not None:
            spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What the command prints: lines fitted to the terminal, JSON, one-line errors, live progress.

Lines go to a terminal fitted to its width (``COLUMNS`` when set, else the terminal's size);
output to a pipe or a file is left whole, so scripts read full lines. Progress updates one
line in place on a terminal and prints a plain line per state change otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import textwrap
from datetime import datetime
from typing import IO, TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from sessionkit.models import Progress as SessionProgress
    from sessionkit.models import SessionInfo, StatementResult, Usage
    from sessionkit.session import Session
    from sessionkit.waiting import PollPolicy

__all__ = [
    "Progress",
    "data",
    "error",
    "fit",
    "format_usage",
    "info_dict",
    "print_info",
    "result_dict",
    "say",
    "status_lines",
    "width",
]

#: The progress line currently open on a terminal (finished before anything else is printed).
_open: Progress | None = None


def width(stream: IO[str]) -> int | None:
    """The width to fit lines to on ``stream``, or ``None`` to leave them whole."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    try:
        if stream.isatty():
            return shutil.get_terminal_size().columns
    except (AttributeError, ValueError, OSError):
        pass
    return None


def fit(line: str, limit: int | None) -> str:
    """``line`` cut to ``limit`` characters (with an ellipsis), or whole without a limit."""
    if limit is None or len(line) <= limit:
        return line
    return line[: max(1, limit - 1)] + "…"


def say(text: str = "", stream: IO[str] | None = None, *, end: str = "\n") -> None:
    """Print ``text``, each line fitted to the width of ``stream`` (default: stdout)."""
    out = stream or sys.stdout
    if _open is not None:
        _open.finish()
    limit = width(out)
    lines = text.split("\n")
    print("\n".join(fit(line, limit) for line in lines), file=out, end=end, flush=True)


def data(text: str) -> None:
    """Print data to stdout whole (JSON, a statement's output): never cut to the width."""
    if _open is not None:
        _open.finish()
    print(text, flush=True)


def error(message: str, *, as_json: dict[str, Any] | None = None) -> None:
    """Print ``sessionkit: error: ...`` to stderr: one line, wrapped only on a terminal.

    Args:
        message: What went wrong (newlines are folded).
        as_json: Also print this error object as JSON on stdout (``--json``).
    """
    if _open is not None:
        _open.finish()
    text = f"sessionkit: error: {' '.join(message.split())}"
    limit = width(sys.stderr)
    if limit is not None and len(text) > limit:
        text = "\n".join(textwrap.wrap(text, limit, subsequent_indent="  "))
    print(text, file=sys.stderr, flush=True)
    if as_json is not None:
        print(json.dumps({"error": as_json}, indent=2), flush=True)  # whole, like data()


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="seconds")


def _usage_dict(usage: Usage | None) -> dict[str, Any] | None:
    if usage is None:
        return None
    result: dict[str, Any] = {}
    for field in attrs.fields(type(usage)):
        value = getattr(usage, field.name)
        result[field.name] = _usage_dict(value) if field.name == "billed" else value
    return result


def info_dict(info: SessionInfo) -> dict[str, Any]:
    """A :class:`~sessionkit.SessionInfo` as JSON-ready data (what ``--json`` prints).

    The service's raw record is left out: it can hold Spark configuration values.

    Args:
        info: The session information.

    Returns:
        The fields of ``info`` with timestamps in ISO 8601, ``idle_timeout_seconds`` and
        ``usage``; ``raw`` is left out.
    """
    result: dict[str, Any] = {}
    for field in attrs.fields(type(info)):
        value = getattr(info, field.name)
        if field.name == "raw":
            continue
        if field.name == "usage":
            result["usage"] = _usage_dict(value)
        elif field.name == "idle_timeout":
            result["idle_timeout_seconds"] = None if value is None else value.total_seconds()
        elif isinstance(value, datetime):
            result[field.name] = _iso(value)
        elif hasattr(value, "value"):  # an enum
            result[field.name] = value.value
        elif isinstance(value, dict) or hasattr(value, "items"):
            result[field.name] = dict(value)
        else:
            result[field.name] = value
    return result


def result_dict(result: StatementResult, session_id: str) -> dict[str, Any]:
    """A :class:`~sessionkit.StatementResult` as JSON-ready data (``run --json``)."""
    return {
        "session_id": session_id,
        "id": result.id,
        "state": result.state.value,
        "output": result.output,
        "error_name": result.error_name,
        "error_value": result.error_value,
        "traceback": list(result.traceback),
        "started_at": _iso(result.started_at),
        "completed_at": _iso(result.completed_at),
    }


def _number(value: float) -> str:
    # Fixed point: usage in hours is tiny for a short session, and 8.3e-05 reads badly.
    return f"{value:.6f}".rstrip("0").rstrip(".") or "0"


def format_usage(usage: Usage) -> str:
    """Usage as ``name=value`` pairs, the billed part in parentheses."""
    shown = {k: v for k, v in (_usage_dict(usage) or {}).items() if v is not None}
    billed = shown.pop("billed", None)
    text = ", ".join(f"{k}={_number(v)}" for k, v in shown.items()) or "none reported yet"
    if billed:
        text += (
            " (billed: "
            + ", ".join(f"{k}={_number(v)}" for k, v in billed.items() if v is not None)
            + ")"
        )
    return text


def status_lines(info: SessionInfo) -> list[str]:
    """The ``status`` command's ``key: value`` lines."""
    data = info_dict(info)
    rows: list[tuple[str, Any]] = [
        ("id", info.id),
        ("backend", info.backend),
        ("state", info.state.value),
        ("native_state", info.native_state),
        ("reason", info.reason),
        ("name", info.name),
    ]
    for key in ("resource_name", "arn", "progress"):
        if key in data:
            rows.append((key, data[key]))
    for key in ("created_at", "started_at", "ended_at", "idle_since"):
        rows.append((key, data.get(key)))
    rows.append(("idle_timeout", None if info.idle_timeout is None else str(info.idle_timeout)))
    if data.get("tags"):
        rows.append(("tags", ", ".join(f"{k}={v}" for k, v in data["tags"].items())))
    rows.append(("usage", format_usage(info.usage)))
    return [f"{key + ':':<14}{'-' if value is None else value}" for key, value in rows]


def print_info(info: SessionInfo, *, as_json: bool) -> None:
    """Print a session as JSON or as ``status`` lines."""
    if as_json:
        data(json.dumps(info_dict(info), indent=2))
    else:
        say("\n".join(status_lines(info)))


class Progress:
    """Shows a session's state and the time since it started while sessionkit waits on it.

    Waits until READY report each change through the public ``on_progress=`` callback
    (:meth:`on_progress`, passed to ``wait_until_ready``); a stop has no such callback, so this
    also wraps the policy's sleep and shows the session's last seen state right before each
    pause. The time is on the policy's clock (virtual seconds on the emulator: the same clock
    the demo's summary uses). On a terminal the line updates in place; elsewhere a line is
    printed per state change.

    Args:
        policy: The poll policy to wrap.
        stream: Where to print.
        live: Update in place (default: when ``stream`` is a terminal).
    """

    def __init__(self, policy: PollPolicy, stream: IO[str], *, live: bool | None = None) -> None:
        self._base = policy
        self._stream = stream
        self._session: Session | None = None
        self._last: tuple[str, str] | None = None
        self._origin = policy.clock()
        self._live = _isatty(stream) if live is None else live
        self._line_open = False
        self.policy = policy.on(policy.clock, self._sleep, policy.now)

    def elapsed(self) -> float:
        """Seconds on the policy's clock since this progress began."""
        return float(self._base.clock() - self._origin)

    def follow(self, session: Session) -> None:
        """Report the states of ``session`` from now on, starting with its current one."""
        self._session = session
        self.show()

    def on_progress(self, progress: SessionProgress) -> None:
        """The ``on_progress=`` callback: show the state a poll of the wait saw."""
        self._show((progress.state.value, progress.native_state))

    def show(self) -> None:
        """Show the followed session's last seen state (on a terminal: always, in place)."""
        if self._session is None:
            return
        info = self._session.info
        self._show((info.state.value, info.native_state))

    def _show(self, key: tuple[str, str]) -> None:
        global _open
        changed = key != self._last
        if not (changed or self._live):
            return
        self._last = key
        text = f"  {self.elapsed():7.1f}s  {key[0]:<9} ({key[1]})"
        if not self._live:
            if _open is not None:
                _open.finish()
            say(text, self._stream)
            return
        if _open is not None and _open is not self:
            _open.finish()
        if changed and self._line_open:
            self._stream.write("\n")
        self._stream.write("\r\x1b[K" + fit(text, width(self._stream)))
        self._stream.flush()
        self._line_open = True
        _open = self

    def finish(self) -> None:
        """End the line being updated in place, if any."""
        global _open
        if self._line_open:
            self._stream.write("\n")
            self._stream.flush()
            self._line_open = False
        if _open is self:
            _open = None

    def _sleep(self, seconds: float) -> None:
        self.show()
        self._base.sleep(seconds)


def _isatty(stream: IO[str]) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False

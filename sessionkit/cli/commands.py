"""The session commands: open, status, wait, stop, list, run. They use only the public API.

Every command reaches its backend through a :class:`Target`, built from the backend's row in
the one table (:mod:`sessionkit.cli.backends`): its ``--kebab-case`` options are the backend's
``cli_fields``, ``--local`` is the emulator's wiring, and nothing here names a provider.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from sessionkit.cli import backends, local, remote
from sessionkit.cli.backends import BackendRow, UsageError, flag
from sessionkit.cli.output import Progress, data, info_dict, print_info, result_dict, say

if TYPE_CHECKING:
    from sessionkit.session import Session
    from sessionkit.waiting import PollPolicy

__all__ = ["Target", "opened", "run_list", "run_open", "run_run", "run_status", "run_stop"]

#: Sessions this command opened (owned), so an interrupted command can say it stopped them.
opened: list[Session] = []


def _option_values(args: argparse.Namespace, fields: set[str]) -> dict[str, Any]:
    return {f: getattr(args, f) for f in sorted(fields) if getattr(args, f, None) is not None}


class Target:
    """Where a command acts: the backend's row, the keywords that reach it, how to poll.

    Args:
        args: The parsed command line.

    Attributes:
        row: The backend's row of the table.
        keywords: Connection and location keywords for the entry points.
        policy: The poll policy (the emulator's virtual clock with ``--local``, the served
            emulator's wall clock with ``--emulator``; ``--call-timeout`` sets its
            ``call_deadline``).
        local: The process-local emulator, with ``--local``.
        remote: The served emulator, with ``--emulator`` (or ``SESSIONKIT_EMULATOR_URL``).
        role: The identity sessions run as when ``--role`` is not given (an emulator's
            stand-in), or ``None``.
    """

    def __init__(self, args: argparse.Namespace) -> None:
        from sessionkit.waiting import DEFAULT_POLL

        self.row: BackendRow = backends.row(backends.resolve(_backend_arg(args)))
        if not self.row.installed:
            raise UsageError(self.row.problem or f"the {self.row.name} backend is not installed")
        all_fields = set(getattr(args, "cli_field_names", ()))
        given = _option_values(args, all_fields)
        for field in given:
            if field not in self.row.cli_fields:
                owners = [r.name for r in backends.rows() if field in r.cli_fields]
                raise UsageError(
                    f"{flag(field)} is not an option of the {self.row.name} backend"
                    f"{' (it is one of ' + ', '.join(owners) + ')' if owners else ''}"
                )
        self.keywords: dict[str, Any] = {}
        for text in getattr(args, "keyword", None) or ():
            key, value = text
            self.keywords[key] = _plain_value(value)
        self.local: local.Local | None = None
        self.remote: remote.Remote | None = None
        self.role: str | None = None
        url = remote.url_from(getattr(args, "emulator", None))
        if url is not None and getattr(args, "local", False):
            raise UsageError(
                "--local and --emulator (or SESSIONKIT_EMULATOR_URL) both choose an emulator; "
                "give one"
            )
        if url is not None:
            self.remote = remote.Remote(url)
            reached, self.role = self.remote.connect(self.row.name)
            # Location options given on the command line choose another location on it.
            self.keywords = {**reached, **self.keywords, **given}
            self.policy: PollPolicy = self.remote.poll_policy(DEFAULT_POLL)
        elif getattr(args, "local", False):
            emulated = backends.emulated()
            if self.row.name not in emulated:
                raise UsageError(
                    f"--local emulates {', '.join(emulated)}, not the {self.row.name} backend"
                )
            for field in given:
                if field not in self.row.location_fields:
                    raise UsageError(f"{flag(field)} cannot be used with --local")
            self.local = local.local()
            self.keywords = {**self.local.keywords(self.row.name), **self.keywords, **given}
            self.role = self.local.role(self.row.name)
            self.policy = self.local.poll_policy()
        else:
            self.keywords.update(given)
            self.policy = DEFAULT_POLL
        call_timeout = getattr(args, "call_timeout", None)
        if call_timeout is not None:
            self.policy = attrs.evolve(self.policy, call_deadline=call_timeout)

    @property
    def backend(self) -> str:
        """The backend name."""
        return self.row.name

    def open(
        self, config: dict[str, Any], *, wait: bool, timeout: Any, progress: Progress
    ) -> Session:
        """Open a session, showing its progress; stop it again if it fails to become ready."""
        return open_session(
            self.backend, {**self.keywords, **config}, wait=wait, timeout=timeout, progress=progress
        )

    def attach(self, session_id: str, progress: Progress | None = None) -> Session:
        """Attach to an existing session (not owned: never stopped on exit)."""
        from sessionkit import attach_session

        policy = progress.policy if progress else self.policy
        session = attach_session(self.backend, session_id, poll_policy=policy, **self.keywords)
        if progress:
            progress.follow(session)
        return session


def _backend_arg(args: argparse.Namespace) -> str:
    name: str | None = getattr(args, "backend", None)
    if not name:
        raise UsageError(
            "--backend is required (or set SESSIONKIT_BACKEND); backends: "
            + ", ".join(r.name for r in backends.rows())
        )
    return name


def _plain_value(text: str) -> Any:
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, (bool, int, float, str)) else text


def open_session(
    backend: str,
    keywords: dict[str, Any],
    *,
    wait: bool,
    timeout: Any,
    progress: Progress,
) -> Session:
    """Open without waiting, follow the session's progress, then wait (stopping on failure)."""
    from sessionkit import open_session as open_

    session = open_(backend, wait=False, poll_policy=progress.policy, **keywords)
    opened.append(session)
    progress.follow(session)
    if wait:
        try:
            session.wait_until_ready(timeout, on_progress=progress.on_progress)
        except BaseException:
            # The library's quiet stop: shielded from a second Ctrl-C, never hiding the error.
            session.stop_quietly()
            raise
        progress.show()
        progress.finish()
    return session


def config_from(args: argparse.Namespace, target: Target) -> dict[str, Any]:
    """The SessionConfig fields the open options ask for."""
    config: dict[str, Any] = {}
    role = args.role if args.role is not None else target.role
    if role is not None:
        config["role"] = role
    if args.name is not None:
        config["name"] = args.name
    if args.idle_timeout is not None:
        config["idle_timeout"] = args.idle_timeout
    if args.conf:
        config["spark_conf"] = dict(args.conf)
    if args.tag:
        config["tags"] = dict(args.tag)
    return config


# ----------------------------------------------------------------------------- commands


def run_open(args: argparse.Namespace) -> int:
    """``sessionkit open``."""
    target = Target(args)
    progress = Progress(target.policy, sys.stderr)
    session = target.open(
        config_from(args, target), wait=not args.no_wait, timeout=args.timeout, progress=progress
    )
    if target.local is not None:
        say(
            "note: --local: the session lives in an emulator that ends with this command",
            sys.stderr,
        )
    print_info(session.info, as_json=args.json)
    return 0


def run_status(args: argparse.Namespace) -> int:
    """``sessionkit status``."""
    session = Target(args).attach(args.session_id)
    print_info(session.info, as_json=args.json)
    return 0


def run_wait(args: argparse.Namespace) -> int:
    """``sessionkit wait``."""
    target = Target(args)
    progress = Progress(target.policy, sys.stderr)
    session = target.attach(args.session_id, progress)
    session.wait_until_ready(args.timeout, on_progress=progress.on_progress)
    progress.show()
    progress.finish()
    print_info(session.info, as_json=args.json)
    return 0


def run_stop(args: argparse.Namespace) -> int:
    """``sessionkit stop``."""
    target = Target(args)
    if args.delete and target.row.capabilities and not target.row.capabilities.delete:
        raise UsageError(f"--delete: the {target.backend} backend keeps no record to delete")
    progress = Progress(target.policy, sys.stderr)
    session = target.attach(args.session_id, progress)
    session.stop(wait=not args.no_wait, delete=args.delete, timeout=args.timeout)
    if args.no_wait and not args.delete:
        session.refresh()
    progress.show()
    progress.finish()
    if args.delete:
        say(f"deleted {session.id}", sys.stderr)
    print_info(session.info, as_json=args.json)
    return 0


def run_list(args: argparse.Namespace) -> int:
    """``sessionkit list``."""
    from sessionkit import list_sessions

    target = Target(args)
    sessions = list(
        list_sessions(
            target.backend, states=args.state or None, poll_policy=target.policy, **target.keywords
        )
    )
    if args.json:
        data(json.dumps([info_dict(info) for info in sessions], indent=2))
        return 0
    if not sessions:
        say(f"no {target.backend} sessions", sys.stderr)
    rows = [
        (info.id, info.state.value, info.native_state, info_dict(info).get("created_at") or "-")
        for info in sessions
    ]
    widths = [max((len(row[i]) for row in rows), default=0) for i in range(3)]
    for session_id, state, native_state, created_at in rows:
        say(
            f"{session_id:<{widths[0]}}  {state:<{widths[1]}}  "
            f"{native_state:<{widths[2]}}  {created_at}"
        )
    return 0


def read_code(args: argparse.Namespace) -> str:
    """The code to run: the CODE argument, ``-f FILE``, or standard input for ``-`` / ``-f -``."""
    if args.code is not None and args.file is not None:
        raise UsageError("give the code as CODE or with -f FILE, not both")
    source = args.file if args.file is not None else args.code
    if source is None:
        raise UsageError("no code to run: give CODE, -f FILE, or - to read standard input")
    if source == "-":
        return sys.stdin.read()
    if args.file is None:
        return str(source)
    try:
        return Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"-f {source}: {exc.strerror or exc}") from exc


def run_run(args: argparse.Namespace) -> int:
    """``sessionkit run``."""
    from sessionkit.errors import StatementFailedError

    target = Target(args)
    if not target.row.statements:
        runners = ", ".join(r.name for r in backends.rows() if r.statements)
        raise UsageError(
            f"the {target.backend} backend has no statement API, so 'sessionkit run' cannot "
            "use it; open a session with 'sessionkit open' and connect with Spark Connect "
            f"(backends that run code: {runners})"
        )
    code = read_code(args)
    if not code.strip():
        raise UsageError("the code to run is empty")
    progress = Progress(target.policy, sys.stderr)
    if args.session_id:
        session = target.attach(args.session_id, progress)
    else:
        session = target.open(config_from(args, target), wait=True, timeout=None, progress=progress)
        say(f"opened {session.backend} session {session.id}", sys.stderr)
    # An owned session is stopped (and awaited) however the run ends; an attached one never.
    with session:
        try:
            result = session.run(code, timeout=args.timeout)
        except StatementFailedError as exc:
            if args.json:
                data(json.dumps(result_dict(exc.result, session.id), indent=2))
            _close(session, progress)
            raise
        _close(session, progress)
    if args.json:
        data(json.dumps(result_dict(result, session.id), indent=2))
    elif result.output is None:
        say(
            f"statement {result.id} {result.state.value}; the service did not return its output",
            sys.stderr,
        )
    elif result.output:
        data(result.output)
    return 0


def _close(session: Session, progress: Progress) -> None:
    """Stop an owned session and wait until it has stopped; leave an attached one alone."""
    if not session.owned:
        return
    session.stop()
    progress.show()
    progress.finish()
    say(f"stopped {session.backend} session {session.id}", sys.stderr)

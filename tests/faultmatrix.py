"""The fault matrix: many full lifecycles per backend and fault profile, on the emulator.

Shared by ``tests/test_faults.py`` (which asserts on it) and ``benchmarks/faults.py`` (which
prints it); it imports nothing but sessionkit, so the benchmark runs without the test extras.

A cell is one backend under one fault profile. It runs ``single`` lifecycles one after another
(``open_session`` waiting for READY, ``refresh``, ``stop`` waiting for STOPPED, inside the
session's ``with`` block) and one fleet batch of ``fleet`` sessions (opened without waiting,
``wait_all`` for READY, ``refresh`` each, stop requests, ``wait_all`` for STOPPED), all on
virtual time. It counts what a platform running sessionkit cares about: lifecycles that
completed, lifecycles that failed with a typed :class:`~sessionkit.SessionKitError`, sessions
created beyond one per lifecycle (duplicates), sessions still running once the stops had time
to settle (leaks) and exceptions that are not sessionkit's (untyped).
"""

from __future__ import annotations

import contextlib
import importlib.util
import time
import zlib
from collections.abc import Callable
from typing import Any

import attrs

import sessionkit
from sessionkit import FleetWaitError, SessionKitError, SessionState
from sessionkit.fleet import wait_all
from sessionkit.session import Session
from sessionkit.testing import Emulator

ROLE = "arn:aws:iam::123456789012:role/SessionkitFaults"

#: The emulated service module of each backend; backends whose module is missing are skipped.
EMULATED = {
    "glue": "sessionkit.testing.aws.glue",
    "emr-serverless": "sessionkit.testing.aws.emr_serverless",
    "athena": "sessionkit.testing.aws.athena",
}

#: The operations that stop a session, per backend.
STOP_OPERATIONS = {
    "glue": "StopSession",
    "emr-serverless": "TerminateSession",
    "athena": "TerminateSession",
}


def available_backends() -> list[str]:
    """The backends whose emulated service exists in this tree."""
    return [name for name, module in EMULATED.items() if importlib.util.find_spec(module)]


@attrs.frozen
class Profile:
    """A fault profile: faults injected for the whole cell, and per-lifecycle scripting.

    Attributes:
        name: Its name in the table.
        setup: Injects the cell-wide faults.
        every_start: Called before each start with the lifecycle's index; returns whether that
            session was scripted to fail.
        before_stop: Called before each stop request.
    """

    name: str
    setup: Callable[[Emulator, str], None] = lambda emulator, service: None
    every_start: Callable[[Emulator, str, int], bool] = lambda emulator, service, index: False
    before_stop: Callable[[Emulator, str], None] = lambda emulator, service: None


def _fail_every_other(emulator: Emulator, service: str, index: int) -> bool:
    if index % 2:
        return False
    emulator.service(service).script_next(  # type: ignore[attr-defined]
        "FAILED", after=3.0, reason="Failed while starting (scripted)"
    )
    return True


def _throttle_the_stop(emulator: Emulator, service: str) -> None:
    emulator.inject("throttle", service=service, operations=STOP_OPERATIONS[service], count=5)


PROFILES: list[Profile] = [
    Profile("no faults"),
    Profile("30% throttling", setup=lambda e, s: _inject(e, "throttle", s, rate=0.3)),
    Profile("20% 5xx", setup=lambda e, s: _inject(e, "server_error", s, rate=0.2)),
    Profile("10% connection errors", setup=lambda e, s: _inject(e, "connection_error", s, 0.1)),
    Profile("10% read timeouts", setup=lambda e, s: _inject(e, "read_timeout", s, rate=0.1)),
    Profile("latency spikes", setup=lambda e, s: _inject(e, "latency", s, 0.2, latency=20.0)),
    Profile("fails mid-start", every_start=_fail_every_other),
    Profile("throttled stop", before_stop=_throttle_the_stop),
]


def _inject(
    emulator: Emulator, kind: Any, service: str, rate: float, *, latency: float = 0.0
) -> None:
    emulator.inject(kind, service=service, rate=rate, latency=latency)


@attrs.define
class Cell:
    """The counts of one backend under one profile.

    Attributes:
        backend: The backend name.
        profile: The profile name.
        lifecycles: Lifecycles started.
        completed: Lifecycles that ended with the session stopped as asked.
        failed: Lifecycles that ended with a typed sessionkit error.
        scripted: Sessions the profile scripted to fail.
        duplicates: Sessions created beyond one per lifecycle.
        leaked: Sessions still running after the stops had time to settle.
        untyped: Exceptions that are not :class:`~sessionkit.SessionKitError`.
        calls: Service calls the emulator received.
        virtual_seconds: Virtual time the cell took.
        real_seconds: Real time the cell took.
        errors: One example message per untyped exception type (for diagnosis).
        failures: One example message per typed failure type (for diagnosis).
    """

    backend: str
    profile: str
    lifecycles: int = 0
    completed: int = 0
    failed: int = 0
    scripted: int = 0
    duplicates: int = 0
    leaked: int = 0
    untyped: int = 0
    calls: int = 0
    virtual_seconds: float = 0.0
    real_seconds: float = 0.0
    errors: dict[str, str] = attrs.field(factory=dict)
    failures: dict[str, str] = attrs.field(factory=dict)

    def fail(self, exc: BaseException, count: int = 1) -> None:
        """Count ``count`` lifecycles failed by ``exc``."""
        self.failed += count
        self.failures.setdefault(type(exc).__name__, str(exc))


def _location(emulator: Emulator, backend: str) -> dict[str, Any]:
    if backend == "emr-serverless":
        return {"application_id": emulator.emr_serverless.create_application(name="faults")}
    if backend == "athena":
        emulator.athena.create_work_group("faults")
        return {"work_group": "faults"}
    return {}


def _created(emulator: Emulator, service: str) -> int:
    return emulator.created_sessions().get(service, 0)


def _single(
    cell: Cell, emulator: Emulator, connection: dict[str, Any], profile: Profile, index: int
) -> None:
    service = cell.backend
    cell.lifecycles += 1
    before = _created(emulator, service)
    cell.scripted += profile.every_start(emulator, service, index)
    try:
        with sessionkit.open_session(service, role=ROLE, **connection) as session:
            session.refresh()
            profile.before_stop(emulator, service)
            session.stop()
        cell.completed += 1
    except SessionKitError as exc:
        cell.fail(exc)
    except Exception as exc:
        cell.untyped += 1
        cell.errors.setdefault(type(exc).__name__, str(exc))
    cell.duplicates += max(0, _created(emulator, service) - before - 1)


def _fleet(
    cell: Cell, emulator: Emulator, connection: dict[str, Any], profile: Profile, size: int
) -> None:
    service = cell.backend
    before = _created(emulator, service)
    started = 0
    try:
        with contextlib.ExitStack() as stack:
            sessions: list[Session] = []
            for index in range(size):
                started += 1
                cell.scripted += profile.every_start(emulator, service, index)
                try:
                    session = sessionkit.open_session(service, wait=False, role=ROLE, **connection)
                except SessionKitError as exc:
                    cell.fail(exc)
                    continue
                sessions.append(stack.enter_context(session))
            try:
                wait_all(sessions, timeout=1200)
                ready = sessions
            except FleetWaitError as exc:
                ready = [s for s in sessions if exc.outcomes[s.id].ok]
                cell.fail(exc, len(sessions) - len(ready))
            alive = []
            for session in ready:
                try:
                    session.refresh()
                    profile.before_stop(emulator, service)
                    session.stop(wait=False)
                    alive.append(session)
                except SessionKitError as exc:
                    cell.fail(exc)
            try:
                wait_all(alive, until=SessionState.STOPPED, timeout=1200)
                cell.completed += len(alive)
            except FleetWaitError as exc:
                done = sum(1 for s in alive if exc.outcomes[s.id].ok)
                cell.completed += done
                cell.fail(exc, len(alive) - done)
    except Exception as exc:
        cell.untyped += 1
        cell.errors.setdefault(type(exc).__name__, str(exc))
    cell.lifecycles += started
    cell.duplicates += max(0, _created(emulator, service) - before - started)


def run_cell(backend: str, profile: Profile, *, single: int = 30, fleet: int = 20) -> Cell:
    """Run one cell of the matrix on a fresh emulator.

    Args:
        backend: The backend name.
        profile: The fault profile.
        single: Lifecycles run one after another.
        fleet: Sessions in the fleet batch.

    Returns:
        The cell's counts.
    """
    real = time.perf_counter()
    emulator = Emulator(seed=zlib.crc32(f"{backend}/{profile.name}".encode()))
    location = _location(emulator, backend)
    connection = {
        "client": emulator.client(backend),
        "poll_policy": emulator.poll_policy(),
        **location,
    }
    cell = Cell(backend=backend, profile=profile.name)
    profile.setup(emulator, backend)
    start = emulator.clock.monotonic()
    for index in range(single):
        _single(cell, emulator, connection, profile, index)
    if fleet:
        _fleet(cell, emulator, connection, profile, fleet)
    cell.virtual_seconds = emulator.clock.monotonic() - start
    cell.calls = emulator.call_count(backend)
    # Let every requested stop settle, then count what still runs.
    emulator.clear_faults()
    emulator.clock.advance(600)
    cell.leaked = len(emulator.alive_sessions().get(backend, []))
    cell.real_seconds = time.perf_counter() - real
    return cell


def run_matrix(
    *,
    single: int = 30,
    fleet: int = 20,
    backends: list[str] | None = None,
    profiles: list[Profile] | None = None,
) -> list[Cell]:
    """Run every cell: each available backend under each profile."""
    return [
        run_cell(backend, profile, single=single, fleet=fleet)
        for backend in (backends or available_backends())
        for profile in (profiles or PROFILES)
    ]


COLUMNS = (
    "backend",
    "profile",
    "lifecycles",
    "completed",
    "failed",
    "duplicates",
    "leaked",
    "untyped",
    "calls",
    "virtual_seconds",
)


def table(cells: list[Cell]) -> str:
    """The matrix as a plain-text table."""
    rows = [list(COLUMNS)]
    for cell in cells:
        row = []
        for column in COLUMNS:
            value = getattr(cell, column)
            row.append(f"{value:.0f}" if isinstance(value, float) else str(value))
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)

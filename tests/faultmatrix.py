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


# ----------------------------------------------------------------------------- call-index matrix

#: The faults injected at one call index of a lifecycle.
INDEX_FAULTS = (
    "throttle",
    "server_error",
    "connection_error",
    "read_timeout",
    "lost_answer",
    "keyboard_interrupt",
)


@attrs.define
class IndexCell:
    """The outcome of one backend's call-index matrix.

    Attributes:
        backend: The backend name.
        calls: Calls a fault-free lifecycle makes (the indices tried are 1..calls).
        scenarios: Scenarios run (indices x faults).
        leaked: Sessions the library started that were still alive after a scenario settled.
        duplicates: Sessions created beyond one per scenario.
        foreign_stopped: Scenarios in which the foreign session was stopped.
        untyped: Exceptions that were neither sessionkit's nor ``KeyboardInterrupt``.
        examples: One example per problem kind, for diagnosis.
    """

    backend: str
    calls: int = 0
    scenarios: int = 0
    leaked: int = 0
    duplicates: int = 0
    foreign_stopped: int = 0
    untyped: int = 0
    examples: dict[str, str] = attrs.field(factory=dict)


class _Injector:
    """A botocore hook pair that injects one fault at the n-th API call of a client."""

    def __init__(self, client: Any, index: int, fault: str) -> None:
        import botocore.exceptions

        self.count = 0
        self.index = index
        self.fault = fault
        self._errors = botocore.exceptions
        self._client = client
        client.meta.events.register("before-call", self.before, unique_id="faultmatrix-before")
        client.meta.events.register("after-call", self.after, unique_id="faultmatrix-after")

    def remove(self) -> None:
        """Stop injecting."""
        events = self._client.meta.events
        events.unregister("before-call", unique_id="faultmatrix-before")
        events.unregister("after-call", unique_id="faultmatrix-after")

    def _client_error(self, code: str, status: int, operation: str) -> Exception:
        response = {
            "Error": {"Code": code, "Message": "injected"},
            "ResponseMetadata": {"HTTPStatusCode": status},
        }
        return self._errors.ClientError(response, operation)  # type: ignore[arg-type]

    def before(self, model: Any, **kwargs: Any) -> None:
        self.count += 1
        if self.count != self.index:
            return
        url = "https://emulator.invalid/"
        if self.fault == "throttle":
            raise self._client_error("ThrottlingException", 400, model.name)
        if self.fault == "server_error":
            raise self._client_error("InternalServerException", 500, model.name)
        if self.fault == "connection_error":
            raise self._errors.EndpointConnectionError(endpoint_url=url)
        if self.fault == "read_timeout":
            raise self._errors.ReadTimeoutError(endpoint_url=url)

    def after(self, model: Any, **kwargs: Any) -> None:
        # The service processed the call; its answer never arrives, or Ctrl-C comes first.
        if self.count != self.index:
            return
        if self.fault == "lost_answer":
            raise self._errors.ReadTimeoutError(endpoint_url="https://emulator.invalid/")
        if self.fault == "keyboard_interrupt":
            raise KeyboardInterrupt


def _lifecycle(backend: str, keywords: dict[str, Any]) -> None:
    """Open and wait, run code where the backend can, the endpoint where it has one, stop."""
    with sessionkit.open_session(backend, role=ROLE, **keywords) as session:
        if backend in ("glue", "athena"):
            session.run("1 + 1")
        else:
            session.endpoint()
        session.stop()


@attrs.define
class _Stage:
    """One emulator per backend, shared by every scenario: a client for sessionkit, and a
    foreign session (someone else's, through another client) that must survive them all."""

    emulator: Emulator
    keywords: dict[str, Any]
    foreign: str


def _stage(backend: str) -> _Stage:
    emulator = Emulator(seed=zlib.crc32(backend.encode()))
    location = _location(emulator, backend)
    policy = emulator.poll_policy()
    foreign = sessionkit.open_session(
        backend,
        wait=False,
        role=ROLE,
        client=emulator.client(backend),
        poll_policy=policy,
        **location,
    )
    keywords: dict[str, Any] = {"client": emulator.client(backend), "poll_policy": policy}
    keywords.update(location)
    if backend == "athena":
        keywords["s3_client"] = emulator.client("s3")
    return _Stage(emulator=emulator, keywords=keywords, foreign=foreign.id)


def _index_scenario(
    stage: _Stage, backend: str, index: int, fault: str, cell: IndexCell | None
) -> int:
    """Run one scenario; return how many calls sessionkit's client made."""
    emulator = stage.emulator
    injector = _Injector(stage.keywords["client"], index, fault)
    before = _created(emulator, backend)
    first_call = len(emulator.calls)
    try:
        _lifecycle(backend, stage.keywords)
    except (SessionKitError, KeyboardInterrupt):
        pass
    except Exception as exc:
        if cell is not None:
            cell.untyped += 1
            cell.examples.setdefault("untyped", f"{index}/{fault}: {type(exc).__name__}: {exc}")
    finally:
        injector.remove()
    # Let every requested stop settle, then look.
    emulator.clock.advance(600)
    if cell is None:
        return injector.count
    alive = set(emulator.alive_sessions().get(backend, []))
    created = _created(emulator, backend) - before
    # The foreign session may idle out on the virtual clock; what must never happen is a stop
    # request naming it.
    if any(
        call.operation == STOP_OPERATIONS[backend] and stage.foreign in call.params.values()
        for call in emulator.calls[first_call:]
    ):
        cell.foreign_stopped += 1
        cell.examples.setdefault("foreign_stopped", f"{index}/{fault}")
    leaked = alive - {stage.foreign}
    if leaked:
        cell.leaked += len(leaked)
        cell.examples.setdefault("leaked", f"{index}/{fault}")
        for session_id in leaked:  # do not count one leak again in later scenarios
            emulator.service(backend).fail(session_id, "cleared by the fault matrix")
    if created > 1:
        cell.duplicates += created - 1
        cell.examples.setdefault("duplicates", f"{index}/{fault}")
    cell.scenarios += 1
    return injector.count


def run_index_matrix(backend: str, faults: tuple[str, ...] = INDEX_FAULTS) -> IndexCell:
    """Inject each fault at every call index of a full lifecycle of ``backend``.

    The lifecycle is measured once without faults; each index from 1 to its call count (plus
    one past the end) is then tried with each fault, next to a foreign session of the same
    location that must survive every scenario.
    """
    cell = IndexCell(backend=backend)
    stage = _stage(backend)
    cell.calls = _index_scenario(stage, backend, 0, "none", None)
    for index in range(1, cell.calls + 2):
        for fault in faults:
            _index_scenario(stage, backend, index, fault, cell)
    return cell

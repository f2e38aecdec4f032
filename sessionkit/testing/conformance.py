"""One lifecycle suite for every backend, written once (like fsspec's abstract tests).

A backend passes when :class:`SessionConformance` passes against it. The suite talks only to
the public API (``open_session``, ``attach_session``, ``list_sessions``, ``Session``) and reaches
the service through a :class:`Harness`, which knows how to connect and how to provoke failures.
It knows no provider: the harness gives the connection, the location and the identity, and the
suite reads what to expect from the backend's own declarations (``supported_fields``,
``capabilities``).

Run it for your own backend::

    import pytest
    from sessionkit.testing.conformance import Harness, SessionConformance

    class MyHarness(Harness):
        backend = "my-backend"
        ...

    class TestMyBackend(SessionConformance):
        @pytest.fixture
        def harness(self):
            return MyHarness()

:class:`EmulatorHarness` runs the suite on the local emulator for the emulated backends,
:class:`MemoryHarness` on the in-memory reference backend (:mod:`sessionkit.testing.memory`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar

import pytest

import sessionkit
from sessionkit.backends.base import Backend, Capabilities
from sessionkit.errors import (
    InvalidConfigError,
    ServiceError,
    SessionFailedError,
    StatementFailedError,
    WaitTimeoutError,
)
from sessionkit.models import Workers
from sessionkit.session import Session
from sessionkit.states import SessionState, StatementState

if TYPE_CHECKING:
    from sessionkit.testing.emulator import Emulator
    from sessionkit.testing.memory import MemoryService

__all__ = ["EmulatorHarness", "Harness", "MemoryHarness", "SessionConformance"]

#: A valid value of each portable field, for "a field the backend does not support".
SAMPLE_VALUES: Mapping[str, Any] = {
    "description": "sessionkit conformance",
    "idle_timeout": timedelta(minutes=30),
    "max_duration": timedelta(hours=1),
    "spark_conf": {"spark.sql.shuffle.partitions": "8"},
    "tags": {"purpose": "conformance"},
    "workers": Workers(count=2, type="standard"),
    "max_dpus": 4.0,
    "runtime_version": "1.0",
    "spark_connect": True,
}


def _backend_class(name: str) -> type[Backend] | None:
    from sessionkit._registry import get_backend

    factory = get_backend(name)
    return factory if isinstance(factory, type) else None


class Harness:
    """How the conformance suite reaches one backend. Subclass and override.

    Attributes:
        backend: The registry name of the backend under test.
        unsupported: A ``SessionConfig`` field and value the backend must reject; by default
            the first field of :data:`SAMPLE_VALUES` missing from the backend's
            ``supported_fields`` (``None``: it supports them all).
        can_script_failures: Whether :meth:`fail_next_start` works.
        can_delay_start: Whether sessions take (virtual) time to start, so a short timeout
            can run out.
        settles_stop: Whether stopped sessions reach a terminal state (moto's never do).
        can_throttle: Whether :meth:`throttle_describes` works.
        runs_python: Whether statements run plain Python (``print(6 * 7)`` prints 42).
    """

    backend: ClassVar[str]
    can_script_failures: ClassVar[bool] = False
    can_delay_start: ClassVar[bool] = False
    settles_stop: ClassVar[bool] = True
    can_throttle: ClassVar[bool] = False
    runs_python: ClassVar[bool] = False

    @property
    def unsupported(self) -> tuple[str, Any] | None:
        """A portable field and value the backend under test must reject, or ``None``."""
        cls = _backend_class(self.backend)
        supported = cls.supported_fields if cls is not None else frozenset(SAMPLE_VALUES)
        for field, value in SAMPLE_VALUES.items():
            if field not in supported:
                return field, value
        return None

    @property
    def capabilities(self) -> Capabilities:
        """What the backend under test declares it can do."""
        cls = _backend_class(self.backend)
        return cls.capabilities if cls is not None else Capabilities()

    def connection(self) -> dict[str, Any]:
        """Connection and location keywords (``client=``, ``poll_policy=``, ...)."""
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        """The smallest valid configuration for ``open_session`` (the identity, if needed)."""
        return {}

    def calls(self) -> int:
        """How many service calls were made so far (for 'zero calls' checks)."""
        raise NotImplementedError

    def fail_next_start(self, reason: str) -> None:
        """Make the next session fail while it starts."""
        raise NotImplementedError

    def throttle_describes(self, count: int) -> None:
        """Throttle the next ``count`` calls made while waiting."""
        raise NotImplementedError

    def alive(self) -> list[str] | None:
        """Ids of sessions still running on the service, or ``None`` if unknown."""
        return None

    def close(self) -> None:
        """Release whatever the harness holds."""


class EmulatorHarness(Harness):
    """Runs the suite on :class:`~sessionkit.testing.Emulator` for an emulated backend.

    Args:
        backend: A name from :func:`sessionkit.testing.emulator.emulated_backends`.
        emulator: The emulator; a fresh one if not given.
    """

    can_script_failures = True
    can_delay_start = True
    can_throttle = True
    runs_python = True

    def __init__(self, backend: str, emulator: Emulator | None = None) -> None:
        from sessionkit.testing.emulator import Emulator

        self.backend = backend  # type: ignore[misc]
        self.emulator = emulator or Emulator()
        self.service = backend
        self._keywords = self.emulator.keywords(backend, location="conformance")

    def connection(self) -> dict[str, Any]:
        """The emulator client, a virtual-time policy and the location."""
        return {**self._keywords, "poll_policy": self.emulator.poll_policy()}

    def config(self) -> dict[str, Any]:
        """The smallest valid configuration: an identity the emulated service accepts."""
        return {"role": self.emulator.role(self.backend)}

    def calls(self) -> int:
        """Calls the emulator received."""
        return self.emulator.call_count()

    def fail_next_start(self, reason: str) -> None:
        """Script the next session to fail one virtual second after it was created."""
        service = self.emulator.service(self.service)
        cls = _backend_class(self.backend)
        state_map = cls.state_map if cls is not None else {}
        failed = [s for s in service.scriptable if state_map.get(s) is SessionState.FAILED]
        service.script_next(failed[0] if failed else "FAILED", after=1.0, reason=reason)

    def throttle_describes(self, count: int) -> None:
        """Inject ``count`` throttling answers into the service's calls."""
        self.emulator.inject("throttle", service=self.service, count=count)

    def alive(self) -> list[str]:
        """Sessions the emulator still runs."""
        self.emulator.clock.advance(600)
        return self.emulator.alive_sessions().get(self.service, [])


class MemoryHarness(Harness):
    """Runs the suite on the in-memory reference backend (registered as ``"memory"``).

    Args:
        service: The :class:`~sessionkit.testing.memory.MemoryService`; a fresh one if not
            given.
    """

    backend: ClassVar[str] = "memory"
    can_script_failures = True
    can_delay_start = True
    can_throttle = True
    runs_python = True

    def __init__(self, service: MemoryService | None = None) -> None:
        from sessionkit.testing import memory

        memory.register()
        self.service = service or memory.MemoryService()
        self.namespace = self.service.add_namespace("conformance")

    def connection(self) -> dict[str, Any]:
        """The service, the namespace and a policy on the service's virtual clock."""
        return {
            "service": self.service,
            "namespace": self.namespace,
            "poll_policy": self.service.poll_policy(),
        }

    def calls(self) -> int:
        """Calls the service received."""
        return self.service.call_count()

    def fail_next_start(self, reason: str) -> None:
        """Script the next session to fail one virtual second after it was created."""
        self.service.script_next("failed", after=1.0, reason=reason)

    def throttle_describes(self, count: int) -> None:
        """Throttle the next ``count`` describe calls."""
        self.service.inject("throttle", operations=["get"], count=count)

    def alive(self) -> list[str]:
        """Sessions still running, once stop requests have had time to finish."""
        self.service.clock.advance(600)
        return self.service.alive()


class SessionConformance:
    """The lifecycle suite. Subclass it and provide a ``harness`` fixture."""

    @pytest.fixture
    def harness(self) -> Iterator[Harness]:
        """Override: yield the :class:`Harness` of the backend under test."""
        raise NotImplementedError("provide a 'harness' fixture")

    @staticmethod
    def _open(harness: Harness, **extra: Any) -> Session:
        return sessionkit.open_session(
            harness.backend, **harness.connection(), **{**harness.config(), **extra}
        )

    # -- open, wait, refresh -------------------------------------------------------------------

    def test_open_waits_until_ready(self, harness: Harness) -> None:
        """open_session returns a READY, owned session of the right backend."""
        session = self._open(harness)
        try:
            assert session.state is SessionState.READY
            assert session.info.backend == harness.backend
            assert session.backend == harness.backend
            assert session.id
            assert session.owned
        finally:
            session.stop(wait=False)

    def test_open_without_wait_then_wait(self, harness: Harness) -> None:
        """wait=False returns a live session at once; wait_until_ready brings it to READY."""
        session = self._open(harness, wait=False)
        try:
            assert session.state.is_alive
            info = session.wait_until_ready()
            assert info.state is SessionState.READY
            assert session.state is SessionState.READY
        finally:
            session.stop(wait=False)

    def test_refresh_describes_the_session(self, harness: Harness) -> None:
        """refresh() returns a fresh SessionInfo with timezone-aware timestamps."""
        session = self._open(harness)
        try:
            info = session.refresh()
            assert info.id == session.id
            assert info.state is SessionState.READY
            assert info.native_state
            if info.created_at is not None:
                assert info.created_at.tzinfo is not None
            assert session.info is info
        finally:
            session.stop(wait=False)

    # -- list --------------------------------------------------------------------------------------

    def test_list_finds_the_session(self, harness: Harness) -> None:
        """list_sessions lists the session, and the states filter keeps or drops it."""
        session = self._open(harness)
        try:
            listed = {
                i.id: i for i in sessionkit.list_sessions(harness.backend, **harness.connection())
            }
            assert session.id in listed
            assert listed[session.id].state is SessionState.READY
            ready = [
                i.id
                for i in sessionkit.list_sessions(
                    harness.backend, states=[SessionState.READY], **harness.connection()
                )
            ]
            assert session.id in ready
            stopped = [
                i.id
                for i in sessionkit.list_sessions(
                    harness.backend, states=[SessionState.STOPPED], **harness.connection()
                )
            ]
            assert session.id not in stopped
        finally:
            session.stop(wait=False)

    # -- stop and ownership -----------------------------------------------------------------------

    def test_stop_waits_until_stopped(self, harness: Harness) -> None:
        """stop() requests the stop and waits for STOPPED."""
        if not harness.settles_stop:
            pytest.skip("this implementation never finishes stopping")
        session = self._open(harness)
        info = session.stop()
        assert info.state is SessionState.STOPPED
        assert session.state.is_terminal

    def test_with_block_stops_on_exception(self, harness: Harness) -> None:
        """An exception in the with block requests the stop and propagates unchanged."""
        with pytest.raises(RuntimeError, match="boom"), self._open(harness) as session:
            raise RuntimeError("boom")
        info = session.refresh()
        assert info.state in (SessionState.STOPPING, SessionState.STOPPED)

    def test_with_block_stops_on_keyboard_interrupt(self, harness: Harness) -> None:
        """Ctrl-C in the with block still stops the owned session."""
        with pytest.raises(KeyboardInterrupt), self._open(harness) as session:
            raise KeyboardInterrupt
        assert session.refresh().state in (SessionState.STOPPING, SessionState.STOPPED)

    def test_attach_is_not_owned(self, harness: Harness) -> None:
        """attach_session does not stop the session on exit unless stop_on_exit=True."""
        session = self._open(harness)
        try:
            with sessionkit.attach_session(
                harness.backend, session.id, **harness.connection()
            ) as attached:
                assert not attached.owned
                assert attached.id == session.id
            assert session.refresh().state is SessionState.READY
            with sessionkit.attach_session(
                harness.backend, session.id, stop_on_exit=True, **harness.connection()
            ) as attached:
                assert attached.owned
            assert session.refresh().state in (SessionState.STOPPING, SessionState.STOPPED)
        finally:
            if session.refresh().state.is_alive:
                session.stop(wait=False)

    # -- failure paths --------------------------------------------------------------------------

    def test_failed_start_raises_and_stops(self, harness: Harness) -> None:
        """A session failing during start raises SessionFailedError with the service's reason."""
        if not harness.can_script_failures:
            pytest.skip("the harness cannot script failures")
        harness.fail_next_start("no capacity (conformance)")
        with pytest.raises(SessionFailedError) as caught:
            self._open(harness)
        assert caught.value.info.state is SessionState.FAILED
        assert caught.value.info.reason is not None
        assert "no capacity" in caught.value.info.reason

    def test_timeout_raises_and_stops(self, harness: Harness) -> None:
        """A start slower than the timeout raises WaitTimeoutError and the session is stopped."""
        if not harness.can_delay_start:
            pytest.skip("sessions start instantly here")
        before = set(harness.alive() or [])
        with pytest.raises(WaitTimeoutError) as caught:
            self._open(harness, timeout=timedelta(seconds=0.5))
        assert isinstance(caught.value, TimeoutError)
        assert caught.value.info is not None
        assert not caught.value.info.state.is_terminal
        alive = harness.alive()
        if alive is not None:
            assert caught.value.info.id not in alive
            assert set(alive) <= before

    def test_throttled_wait_polls_through(self, harness: Harness) -> None:
        """Throttling while waiting is retried, never reported as a failed session."""
        if not harness.can_throttle:
            pytest.skip("the harness cannot throttle")
        harness.throttle_describes(3)
        session = self._open(harness)
        try:
            assert session.state is SessionState.READY
        finally:
            session.stop(wait=False)

    # -- rejected input --------------------------------------------------------------------------

    def test_unsupported_field_rejected_before_any_call(self, harness: Harness) -> None:
        """A field the backend cannot translate raises InvalidConfigError naming it; no call."""
        if harness.unsupported is None:
            pytest.skip("this backend supports every portable field")
        field, value = harness.unsupported
        before = harness.calls()
        with pytest.raises(InvalidConfigError) as caught:
            self._open(harness, **{field: value})
        assert caught.value.field == field
        assert harness.backend in str(caught.value)
        assert harness.calls() == before

    def test_unknown_keyword_rejected_before_any_call(self, harness: Harness) -> None:
        """A misspelt keyword is an InvalidConfigError naming it, before any call."""
        before = harness.calls()
        with pytest.raises(InvalidConfigError) as caught:
            self._open(harness, idle_timeuot=60)
        assert caught.value.field == "idle_timeuot"
        assert harness.calls() == before

    def test_no_session_left_running(self, harness: Harness) -> None:
        """A full lifecycle in a with block leaves nothing running."""
        with self._open(harness) as session:
            assert session.state is SessionState.READY
        alive = harness.alive()
        if alive is not None:
            assert session.id not in alive

    # -- statements, delete: only where the backend declares them -------------------------------

    def test_run_returns_the_output(self, harness: Harness) -> None:
        """run() waits for the statement and returns its output."""
        if not harness.capabilities.statements:
            pytest.skip("the backend has no statement API")
        if not harness.runs_python:
            pytest.skip("the harness's statements do not run plain Python")
        with self._open(harness) as session:
            result = session.run("print(6 * 7)")
            assert result.state is StatementState.SUCCEEDED
            if result.output is not None:
                assert result.output.strip() == "42"

    def test_failing_statement_raises(self, harness: Harness) -> None:
        """Code that raises ends in StatementFailedError carrying a FAILED result."""
        if not harness.capabilities.statements:
            pytest.skip("the backend has no statement API")
        if not harness.runs_python:
            pytest.skip("the harness's statements do not run plain Python")
        with self._open(harness) as session:
            with pytest.raises(StatementFailedError) as caught:
                session.run("raise ValueError('conformance')")
            assert caught.value.result.state is StatementState.FAILED

    def test_stop_and_delete(self, harness: Harness) -> None:
        """stop(delete=True) waits for STOPPED, then the session can no longer be attached."""
        if not harness.capabilities.delete:
            pytest.skip("the backend keeps no session record to delete")
        if not harness.settles_stop:
            pytest.skip("this implementation never finishes stopping")
        session = self._open(harness)
        info = session.stop(delete=True)
        assert info.state is SessionState.STOPPED
        with pytest.raises(ServiceError):
            sessionkit.attach_session(harness.backend, session.id, **harness.connection())

"""One lifecycle suite for every backend, written once (like fsspec's abstract tests).

A backend passes when :class:`SessionConformance` passes against it. The suite talks only to
the public API (``open_session``, ``attach_session``, ``list_sessions``, ``Session``) and reaches
the service through a :class:`Harness`, which knows how to connect and how to provoke failures.

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

:class:`EmulatorHarness` runs the suite on the local emulator for the built-in backends.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import pytest

import sessionkit
from sessionkit.errors import InvalidConfigError, SessionFailedError, WaitTimeoutError
from sessionkit.models import Workers
from sessionkit.session import Session
from sessionkit.states import SessionState
from sessionkit.testing.emulator import Emulator

__all__ = ["EmulatorHarness", "Harness", "SessionConformance"]

ROLE = "arn:aws:iam::123456789012:role/SessionkitConformance"


class Harness:
    """How the conformance suite reaches one backend. Subclass and override.

    Attributes:
        backend: The registry name of the backend under test.
        unsupported: A ``SessionConfig`` field and value the backend must reject, or ``None``.
        can_script_failures: Whether :meth:`fail_next_start` works.
        can_delay_start: Whether sessions take (virtual) time to start, so a short timeout
            can run out.
        settles_stop: Whether stopped sessions reach a terminal state (moto's never do).
        can_throttle: Whether :meth:`throttle_describes` works.
    """

    backend: ClassVar[str]
    unsupported: ClassVar[tuple[str, Any] | None] = None
    can_script_failures: ClassVar[bool] = False
    can_delay_start: ClassVar[bool] = False
    settles_stop: ClassVar[bool] = True
    can_throttle: ClassVar[bool] = False

    def connection(self) -> dict[str, Any]:
        """Connection and location keywords (``client=``, ``poll_policy=``, ``work_group=``...)."""
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        """The smallest valid configuration for ``open_session``."""
        return {"role": ROLE}

    def calls(self) -> int:
        """How many service calls were made so far (for 'zero calls' checks)."""
        raise NotImplementedError

    def fail_next_start(self, reason: str) -> None:
        """Make the next session fail while it starts."""
        raise NotImplementedError

    def throttle_describes(self, count: int) -> None:
        """Throttle the next ``count`` describe calls."""
        raise NotImplementedError

    def alive(self) -> list[str] | None:
        """Ids of sessions still running on the service, or ``None`` if unknown."""
        return None

    def close(self) -> None:
        """Release whatever the harness holds."""


class EmulatorHarness(Harness):
    """Runs the suite on :class:`~sessionkit.testing.Emulator` for a built-in backend.

    Args:
        backend: ``"glue"``, ``"emr-serverless"`` or ``"athena"``.
        emulator: The emulator; a fresh one if not given.
    """

    can_script_failures = True
    can_delay_start = True
    can_throttle = True

    _SERVICES: ClassVar[dict[str, str]] = {
        "glue": "glue",
        "emr-serverless": "emr-serverless",
        "athena": "athena",
        "dataproc": "dataproc",
        "emr": "emr",
    }
    # Glue translates every portable field, so it has nothing to reject.
    _UNSUPPORTED: ClassVar[dict[str, tuple[str, Any] | None]] = {
        "glue": None,
        "emr-serverless": ("workers", Workers(count=2, type="G.1X")),
        "athena": ("max_duration", "1h"),
        "dataproc": ("workers", Workers(count=2, type="standard")),
        "emr": ("max_dpus", 4.0),
    }
    _DESCRIBE: ClassVar[dict[str, tuple[str, ...]]] = {
        "glue": ("GetSession",),
        "emr-serverless": ("GetSession",),
        "athena": ("GetSession", "GetSessionStatus"),
        "dataproc": ("GetSession",),
        "emr": ("GetSession",),
    }

    def __init__(self, backend: str, emulator: Emulator | None = None) -> None:
        self.backend = backend  # type: ignore[misc]
        self.emulator = emulator or Emulator()
        self.service = self._SERVICES[backend]
        self.unsupported = self._UNSUPPORTED[backend]  # type: ignore[misc]
        self._keywords = self.emulator.keywords(backend, location="conformance")

    def connection(self) -> dict[str, Any]:
        """The emulator client, a virtual-time policy and the location."""
        return {**self._keywords, "poll_policy": self.emulator.poll_policy()}

    def config(self) -> dict[str, Any]:
        """The smallest valid configuration: a role the emulated service accepts."""
        return {"role": self.emulator.role(self.backend)}

    def calls(self) -> int:
        """Calls the emulator received."""
        return self.emulator.call_count()

    def fail_next_start(self, reason: str) -> None:
        """Script the next session to fail one virtual second after it was created."""
        self.emulator.service(self.service).script_next("FAILED", after=1.0, reason=reason)

    def throttle_describes(self, count: int) -> None:
        """Inject ``count`` throttling answers on the describe calls."""
        self.emulator.inject(
            "throttle", service=self.service, operations=self._DESCRIBE[self.backend], count=count
        )

    def alive(self) -> list[str]:
        """Sessions the emulator still runs."""
        self.emulator.clock.advance(600)
        return self.emulator.alive_sessions().get(self.service, [])


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
            self._open(harness, timeout=0.5)
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

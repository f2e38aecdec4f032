"""`Session`: the public lifecycle of one interactive session, the same on every backend."""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable, Mapping
from datetime import timedelta
from types import MappingProxyType, TracebackType
from typing import TYPE_CHECKING, Any

import attrs

from sessionkit import _lifecycle
from sessionkit._lifecycle import EXIT_STOP, Memo, drive, exit_action, perform
from sessionkit.errors import InvalidConfigError, ServiceError
from sessionkit.models import Endpoint, Progress, SessionInfo, StatementResult, Usage
from sessionkit.registry import build_backend
from sessionkit.states import SessionState
from sessionkit.waiting import (
    DEFAULT_POLL,
    STATEMENT_POLL,
    PollPolicy,
)

if TYPE_CHECKING:
    from sessionkit.backends.base import Backend

__all__ = ["ProgressCallback", "Session", "SessionRef", "attach_session"]

#: What ``on_progress=`` takes: called with a :class:`~sessionkit.Progress` value.
ProgressCallback = Callable[[Progress], Any]

logger = logging.getLogger(__name__)


def check_progress_callback(on_progress: Any) -> ProgressCallback | None:
    """Check an ``on_progress=`` argument before anything starts."""
    if on_progress is not None and not callable(on_progress):
        raise InvalidConfigError(
            "on_progress",
            f"must be a callable taking a sessionkit.Progress, got {type(on_progress).__name__}",
        )
    callback: ProgressCallback | None = on_progress
    return callback


class ProgressReporter:
    """Calls an ``on_progress`` callback when a poll sees something change.

    "Something" is the state, the native state or the service's progress figure. A callback
    that raises is logged and ignored: reporting must never end a wait.

    Args:
        callback: The caller's callback (``None``: report nothing).
        clock: The poll policy's clock; ``elapsed`` counts from the reporter's creation.
        session_id: The session's id.
        statement_id: The statement's id, when reporting on a statement.
    """

    def __init__(
        self,
        callback: ProgressCallback | None,
        clock: Callable[[], float],
        *,
        session_id: str | None = None,
        statement_id: str | None = None,
    ) -> None:
        self._callback = callback
        self._clock = clock
        self._start = clock()
        self._last: tuple[Any, ...] | None = None
        self._session_id = session_id
        self._statement_id = statement_id

    def progress(self, seen: SessionInfo | StatementResult) -> Progress | None:
        """The :class:`Progress` to report for ``seen``, or ``None`` when nothing changed."""
        if self._callback is None:
            return None
        native = seen.native_state if isinstance(seen, SessionInfo) else _native(seen)
        key = (seen.state, native, seen.progress)
        if key == self._last:
            return None
        self._last = key
        return Progress(
            state=seen.state,
            native_state=native,
            elapsed=max(0.0, self._clock() - self._start),
            progress=seen.progress,
            statement_id=self._statement_id,
            session_id=self._session_id,
        )

    def __call__(self, seen: SessionInfo | StatementResult) -> Any:
        """Report ``seen`` if it changed something; return what the callback returned."""
        progress = self.progress(seen)
        if progress is None or self._callback is None:
            return None
        try:
            return self._callback(progress)
        except Exception:
            logger.warning("the on_progress callback raised; ignoring it", exc_info=True)
            return None


def _native(result: StatementResult) -> str:
    raw = result.raw
    for key in ("State", "state"):
        value = raw.get(key)
        if isinstance(value, str):
            return value
    status = raw.get("Status")
    if isinstance(status, Mapping) and isinstance(status.get("State"), str):
        return str(status["State"])
    return result.state.value


_PLAIN = (str, int, float, bool, type(None))


def _plain_location(value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidConfigError("location", f"must be a mapping, got {type(value).__name__}")
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, _PLAIN):
            raise InvalidConfigError(
                "location",
                f"must map names to plain values (str, int, float, bool, None); {key!r} is "
                f"{type(item).__name__}",
            )
    return MappingProxyType(dict(value))


def _non_empty(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise InvalidConfigError(attribute.name, f"must be a non-empty string, got {value!r}")


@attrs.frozen(kw_only=True)
class SessionRef:
    """Where to find one session again, in another process: backend, id and location.

    Made by :meth:`Session.ref`; :meth:`to_dict` gives plain JSON-safe values with no
    credentials or clients (pass those again to :meth:`attach`), for an Airflow trigger's
    ``serialize()``, a queue message or a file.

    Attributes:
        backend: The backend name, as given to ``open_session``.
        session_id: The service's session id.
        location: The backend's location keywords (e.g. ``{"application_id": "..."}``), plain
            values only.
    """

    backend: str = attrs.field(validator=_non_empty)
    session_id: str = attrs.field(validator=_non_empty)
    location: Mapping[str, Any] = attrs.field(factory=dict, converter=_plain_location, hash=False)

    def to_dict(self) -> dict[str, Any]:
        """Return the reference as plain JSON-safe values (no secrets, no clients).

        Returns:
            ``{"backend": ..., "session_id": ..., "location": {...}}``.
        """
        return {
            "backend": self.backend,
            "session_id": self.session_id,
            "location": dict(self.location),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SessionRef:
        """Rebuild a reference from :meth:`to_dict`'s values.

        Args:
            data: The mapping :meth:`to_dict` returned (e.g. after a JSON round trip).

        Returns:
            The :class:`SessionRef`.

        Raises:
            InvalidConfigError: When a key is missing or unknown, or a value has the wrong type.
        """
        if not isinstance(data, Mapping):
            raise InvalidConfigError("ref", f"must be a mapping, got {type(data).__name__}")
        unknown = set(data) - {"backend", "session_id", "location"}
        if unknown:
            raise InvalidConfigError("ref", f"unknown keys {sorted(unknown)}")
        for key in ("backend", "session_id"):
            if key not in data:
                raise InvalidConfigError(key, "is missing from the session reference")
        return cls(
            backend=data["backend"],
            session_id=data["session_id"],
            location=data.get("location") or {},
        )

    def attach(self, *, poll_policy: PollPolicy | None = None, **connection: Any) -> Session:
        """Attach to the session (one describe call); the result is *not owned*.

        Args:
            poll_policy: How to poll and retry; default :data:`~sessionkit.DEFAULT_POLL`.
            **connection: The backend's connection keywords (``client=``, credentials, ...);
                the location comes from the reference.

        Returns:
            The :class:`Session`, not owned: leaving a ``with`` block does not stop it.

        Raises:
            InvalidConfigError: When a keyword repeats a location value with another value.
        """
        return attach_session(
            self.backend, self.session_id, poll_policy=poll_policy, **self.keywords(connection)
        )

    def keywords(self, connection: Mapping[str, Any]) -> dict[str, Any]:
        """The location merged with ``connection``, for ``attach_session``.

        Raises:
            InvalidConfigError: When ``connection`` gives a location keyword another value.
        """
        merged = {k: v for k, v in self.location.items() if v is not None}
        for key, value in connection.items():
            if key in merged and merged[key] != value:
                raise InvalidConfigError(
                    key, f"the session reference says {merged[key]!r}; do not pass another value"
                )
            merged[key] = value
        return merged


class Session:
    """One interactive Spark session on a backend.

    Get one from :func:`sessionkit.open_session` (owned: the library stops it when the ``with``
    block ends) or :func:`sessionkit.attach_session` (not owned unless ``stop_on_exit=True``).

    Attributes:
        poll_policy: How waits on this session poll.
        statement_policy: How :meth:`run` polls statements.
    """

    def __init__(
        self,
        backend: Backend,
        info: SessionInfo,
        *,
        owned: bool,
        poll_policy: PollPolicy = DEFAULT_POLL,
        statement_policy: PollPolicy | None = None,
    ) -> None:
        self._backend = backend
        self._info = info
        self._owned = owned
        self._stop_requested = False
        #: What the session remembers between calls (endpoint, usage lookup), shared with
        #: its async twin.
        self._memo = Memo()
        #: The client spark() made, and the endpoint URL it is bound to. Its own lock: the
        #: client asks endpoint() (which holds _lock) for its token.
        self._spark: tuple[Any, str] | None = None
        self._spark_lock = threading.Lock()
        self._lock = threading.Lock()
        self.poll_policy = poll_policy
        self.statement_policy = statement_policy or STATEMENT_POLL.on(
            poll_policy.clock, poll_policy.sleep, poll_policy.now
        )

    # -- identity --------------------------------------------------------------------------

    @property
    def id(self) -> str:
        """The service's session id."""
        return self._info.id

    @property
    def backend(self) -> str:
        """The backend name, as given to ``open_session``."""
        return self._backend.name

    @property
    def info(self) -> SessionInfo:
        """The last :class:`SessionInfo` seen (no call; see :meth:`refresh`)."""
        return self._info

    @property
    def state(self) -> SessionState:
        """The last state seen (no call; see :meth:`refresh`)."""
        return self._info.state

    @property
    def usage(self) -> Usage:
        """Usage as of the last look at the session.

        Polls and list calls do not always carry usage figures (a light status call, a list
        summary); when the last look had none, this makes one describe
        call to fetch them. Call :meth:`refresh` for current figures.
        """
        return drive(_lifecycle.usage_protocol(self))

    @property
    def owned(self) -> bool:
        """Whether leaving a ``with`` block stops this session."""
        return self._owned

    def ref(self) -> SessionRef:
        """Return a :class:`SessionRef` to find this session again in another process.

        Returns:
            The backend, id and location keywords of the session (no credentials).
        """
        location = {k: v for k, v in self._backend.location.items() if v is not None}
        return SessionRef(backend=self.backend, session_id=self.id, location=location)

    def __repr__(self) -> str:
        return (
            f"<Session {self.backend}:{self.id} {self.state.value}"
            f"{' owned' if self._owned else ''}>"
        )

    # -- refresh and waiting -----------------------------------------------------------------

    @property
    def implementation(self) -> Backend:
        """The backend object serving this session.

        Its ``_``-prefixed primitives are the backend contract (see the "writing a backend"
        guide); sessionkit's async and fleet layers drive them, and so may tools built the same
        way. Most code never needs it.
        """
        return self._backend

    @property
    def memo(self) -> Memo:
        """What this session remembers between calls (its endpoint, its last usage lookup).

        Shared by the session's synchronous and async faces; most code never needs it.
        """
        return self._memo

    @property
    def stop_requested(self) -> bool:
        """Whether sessionkit has already asked the service to stop this session."""
        return self._stop_requested

    def mark_stop_requested(self) -> None:
        """Record that the stop was requested by other means (the async layer's own call)."""
        self._stop_requested = True

    def observe(self, info: SessionInfo) -> SessionInfo:
        """Take ``info`` (seen by a list call, a fleet wait or an async poll) as the latest.

        Args:
            info: A :class:`SessionInfo` of this session.

        Returns:
            ``info``, now also :attr:`info`.

        Raises:
            ServiceError: When ``info`` is not about this session (the last good information
                stays).
        """
        if not isinstance(info, SessionInfo) or info.id != self._info.id:
            # A describe answer for another session must never switch this one's identity;
            # the last good info stays.
            raise ServiceError(
                f"{self.backend} answered a describe of session {self._info.id} with session "
                f"{getattr(info, 'id', None)!r}; keeping the last good information",
                code="MalformedResponse",
                operation="describe",
            )
        if info.state is not self._info.state:
            logger.info(
                "session %s:%s is %s (%s)",
                self.backend,
                info.id,
                info.state.value,
                info.native_state,
            )
        self._info = info
        return info

    def refresh(self) -> SessionInfo:
        """Describe the session now (retrying throttling and transient errors).

        Returns:
            The new :class:`SessionInfo`, also kept as :attr:`info`.
        """
        return self.observe(perform(_lifecycle.describe_step(self)))

    def wait_until_ready(
        self,
        timeout: timedelta | float | None = None,
        *,
        on_progress: ProgressCallback | None = None,
        _initial: SessionInfo | None = None,
    ) -> SessionInfo:
        """Wait until the session is READY.

        Polls through PENDING, STARTING, BUSY and UNKNOWN, and through throttling and transient
        service errors.

        Args:
            timeout: The longest wait (``timedelta`` or seconds); default: the poll policy's
                (20 minutes).
            on_progress: Called with a :class:`~sessionkit.Progress` on every poll that sees
                the state, native state or service progress change (errors it raises are
                logged and ignored).

        Returns:
            The READY :class:`SessionInfo`.

        Raises:
            SessionFailedError: At once on FAILED, TIMED_OUT, DEGRADED, STOPPING or STOPPED.
            WaitTimeoutError: When time runs out (after a last poll at the deadline).
        """
        report = ProgressReporter(
            check_progress_callback(on_progress), self.poll_policy.clock, session_id=self.id
        )

        def done(info: SessionInfo) -> bool:
            self.observe(info)
            report(info)
            return _lifecycle.is_ready(info)

        try:
            if _initial is None:
                # A wait_all running in another thread already polls this session: follow it.
                from sessionkit.waiting import follow_shared_wait

                shared, timeout = follow_shared_wait(self, done, timeout)
                if shared is not None:
                    return shared
            return drive(_lifecycle.ready_wait(self, timeout, report, _initial))
        except (KeyboardInterrupt, SystemExit):
            # Ctrl-C (or SIGTERM under stop_on_sigterm) must not leave an owned session running.
            if self._owned:
                self.stop_quietly()
            raise

    def wait_until_stopped(
        self,
        timeout: timedelta | float | None = None,
        *,
        on_progress: ProgressCallback | None = None,
    ) -> SessionInfo:
        """Wait until the session has ended (STOPPED, FAILED or TIMED_OUT).

        Args:
            timeout: The longest wait; default: the poll policy's (20 minutes).
            on_progress: Called with a :class:`~sessionkit.Progress` on every poll that sees
                something change (see :meth:`wait_until_ready`).

        Returns:
            The final :class:`SessionInfo`.

        Raises:
            WaitTimeoutError: When time runs out.
        """
        from sessionkit.waiting import follow_shared_wait

        report = ProgressReporter(
            check_progress_callback(on_progress), self.poll_policy.clock, session_id=self.id
        )

        def stopped(info: SessionInfo) -> bool:
            report(info)
            return _lifecycle.is_stopped(info)

        shared, timeout = follow_shared_wait(self, stopped, timeout, target="stopped")
        if shared is not None:
            return shared
        return drive(_lifecycle.stopped_wait(self, timeout, report))

    # -- stopping ------------------------------------------------------------------------------

    def _request_stop(self) -> None:
        """Ask the service to stop the session, retried through throttling; no wait."""
        drive(_lifecycle.stop_protocol(self))

    def stop(
        self,
        wait: bool = True,
        delete: bool = False,
        timeout: timedelta | float | None = None,
    ) -> SessionInfo:
        """Stop the session.

        Args:
            wait: Wait until the session has stopped (default). ``False`` only requests the stop.
            delete: Also delete the session's record where the service keeps one after the
                stop; implies waiting for STOPPED first.
            timeout: The longest wait for STOPPED; default: the poll policy's.

        Returns:
            The last :class:`SessionInfo` seen.

        Raises:
            InvalidConfigError: When ``wait`` or ``delete`` is not a bool.
            WaitTimeoutError: When waiting and time runs out.
            ServiceError: When the service does not accept the stop.
        """
        _lifecycle.check_flag("wait", wait)
        _lifecycle.check_flag("delete", delete)
        self._request_stop()
        if wait or delete:
            self.wait_until_stopped(timeout)
        if delete:
            perform(_lifecycle.delete_step(self))
            logger.info("deleted %s session %s", self.backend, self.id)
        return self._info

    def stop_quietly(self) -> None:
        """Request the stop on an error path, never masking the error in flight.

        The request is shielded: a second Ctrl-C while it runs does not abandon it; it is
        retried once more, and the interrupt is raised again after it.
        """
        interrupted: BaseException | None = None
        for _ in range(2):
            if self._stop_requested:
                break
            try:
                self._request_stop()
                break
            except (KeyboardInterrupt, SystemExit) as exc:
                logger.warning(
                    "interrupted while stopping %s session %s; trying once more",
                    self.backend,
                    self.id,
                )
                interrupted = exc
            except BaseException as exc:
                _lifecycle.log_stop_failure(self, exc)
                break
        if interrupted is not None:
            if not self._stop_requested:
                logger.error(
                    "could not stop %s session %s after a second interrupt; it may still be "
                    "running and costing money",
                    self.backend,
                    self.id,
                )
            raise interrupted

    def __enter__(self) -> Session:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        action = exit_action(self, failed=exc_type is not None)
        if action is None:
            return
        if action == EXIT_STOP:
            try:
                self._request_stop()
            except (KeyboardInterrupt, SystemExit):
                # Ctrl-C during the exit's own stop: shield it, retry once, then re-raise.
                self.stop_quietly()
                raise
        else:
            self.stop_quietly()

    # -- running code ----------------------------------------------------------------------------

    def run(
        self,
        code: str,
        timeout: timedelta | float | None = None,
        *,
        on_progress: ProgressCallback | None = None,
    ) -> StatementResult:
        """Run code in the session and wait for its result.

        Waits first until the session accepts work (BUSY waits; a terminal state fails).
        Statements are polled with :attr:`statement_policy`, so short ones are seen finished
        within a fraction of a second.

        Args:
            code: The code to run (PySpark, with ``spark`` bound).
            timeout: The longest wait for the statement; when it passes, the statement is
                cancelled on the service and :class:`WaitTimeoutError` is raised. Default: none.
            on_progress: Called with a :class:`~sessionkit.Progress` (its ``statement_id``
                set) on every statement poll that sees the state or progress change.

        Returns:
            The :class:`StatementResult` of a successful run.

        Raises:
            StatementFailedError: When the code failed or was cancelled; carries the result.
            NotSupportedError: On backends without a statement API (use :meth:`endpoint`).
            WaitTimeoutError: When ``timeout`` passed (the statement was cancelled).
        """
        _lifecycle.check_code(code)
        callback = check_progress_callback(on_progress)
        self.wait_until_ready()

        def reporter(statement_id: str) -> ProgressReporter:
            return ProgressReporter(
                callback, self.statement_policy.clock, session_id=self.id, statement_id=statement_id
            )

        return drive(_lifecycle.statement_protocol(self, code, timeout, reporter))

    # -- Spark Connect ---------------------------------------------------------------------------

    def endpoint(self) -> Endpoint:
        """Return the session's Spark Connect endpoint with a valid token.

        The endpoint is cached and fetched anew when its token expires within a minute.

        Returns:
            The :class:`Endpoint` (its token is never shown by ``repr`` or ``str``).

        Raises:
            NotSupportedError: On backends without Spark Connect.
        """
        with self._lock:
            return drive(_lifecycle.endpoint_protocol(self))

    def spark(self) -> Any:
        """Return a PySpark Spark Connect ``SparkSession`` bound to this session's endpoint.

        Needs the ``spark`` extra (``pip install 'sessionkit-spark[spark]'``). The
        ``SparkSession`` is made on the first call and returned again by later calls while it
        is open; calling ``.stop()`` on it makes the next call connect anew.

        The endpoint's token may expire (some after about an hour), so the client does not keep
        the token it started with: every gRPC call it makes asks :meth:`endpoint` for the
        current one, which fetches a fresh endpoint when the cached token expires within a
        minute. Limits: the refresh needs this :class:`Session` object (and its credentials to
        call the service) to stay usable; the URL is fixed when the ``SparkSession`` is made (if
        the service ever moved the endpoint, call ``.stop()`` on it and ``spark()`` again); a
        single call that outlives its token is up to the service, which may end it; and once
        the session itself has stopped, calls fail with the service's error.

        Returns:
            A ``pyspark.sql.connect.session.SparkSession`` (also PySpark's default and active
            session if there was none).

        Raises:
            NotSupportedError: When PySpark with Spark Connect is not installed, or the backend
                has no Spark Connect endpoint.
        """
        # A backend whose service needs its own Spark Connect client supplies it.
        own = getattr(self._backend, "_spark", None)
        if own is not None:
            spark = own(self)
            if spark is not None:
                return spark
        try:
            from sessionkit import spark_connect

            importlib.import_module("grpc")
            importlib.import_module("pyspark.sql.connect.session")
        except ImportError as exc:
            from sessionkit.errors import NotSupportedError

            raise NotSupportedError(
                "Session.spark() needs PySpark with Spark Connect: "
                f"pip install 'sessionkit-spark[spark]' ({exc})"
            ) from exc
        endpoint = self.endpoint()
        with self._spark_lock:
            current = self._spark
            if current is None or current[0].is_stopped or current[1] != endpoint.url:
                current = (
                    spark_connect.connect(
                        endpoint, token=self._current_token, current=self.endpoint
                    ),
                    endpoint.url,
                )
                self._spark = current
                logger.info(
                    "connected a Spark Connect client to %s session %s", self.backend, self.id
                )
            return current[0]

    def _current_token(self) -> str | None:
        """The endpoint token to send now, for the Spark Connect client of :meth:`spark`."""
        return self.endpoint().token


def attach_session(
    backend: str,
    session_id: str,
    *,
    stop_on_exit: bool = False,
    poll_policy: PollPolicy | None = None,
    **keywords: Any,
) -> Session:
    """Wrap an existing session (one call: describe).

    The session is *not owned*: leaving a ``with`` block does not stop it unless
    ``stop_on_exit=True``. (Also importable as ``sessionkit.attach_session``; it lives here,
    with :class:`SessionRef`, whose :meth:`~SessionRef.attach` uses it.)

    Args:
        backend: The backend name.
        session_id: The service's session id.
        stop_on_exit: Stop the session when a ``with`` block ends.
        poll_policy: How to poll and retry; default :data:`~sessionkit.waiting.DEFAULT_POLL`.
        **keywords: The backend's connection and location keywords (see each backend's page).

    Returns:
        The :class:`~sessionkit.Session`.
    """
    _lifecycle.check_session_id(session_id)
    _lifecycle.check_flag("stop_on_exit", stop_on_exit)
    policy = _lifecycle.check_policy(poll_policy)
    impl = build_backend(backend, keywords, attaching=True)
    impl.poll_policy = policy
    info = perform(_lifecycle.attach_step(impl, session_id, policy))
    return Session(impl, info, owned=stop_on_exit, poll_policy=policy)

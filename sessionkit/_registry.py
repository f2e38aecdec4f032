"""The backend registry and the entry points: open_session, attach_session, list_sessions."""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import timedelta
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Union

import attrs

from sessionkit.errors import BackendNotFoundError, InvalidConfigError, ServiceError
from sessionkit.models import SessionConfig, SessionInfo, to_timedelta
from sessionkit.session import Session
from sessionkit.states import SessionState
from sessionkit.waiting import DEFAULT_POLL, PollPolicy, call_with_retries

if TYPE_CHECKING:
    from sessionkit.backends.base import Backend, PreparedStart

__all__ = [
    "BackendFactory",
    "attach_session",
    "available_backends",
    "list_sessions",
    "open_session",
    "register_backend",
    "registry",
]

logger = logging.getLogger(__name__)

#: Builds a backend from the connection and location keywords.
BackendFactory = Union["type[Backend]", Callable[..., "Backend"]]

ENTRY_POINT_GROUP = "sessionkit.backends"

#: The keywords that say how to reach a service, the same for every backend.
CONNECTION_FIELDS = ("client", "boto3_session", "region", "endpoint_url")

#: Backends that ship with sessionkit, imported on first use.
_KNOWN: Mapping[str, tuple[str, str]] = MappingProxyType(
    {
        "glue": ("sessionkit.backends.glue:GlueBackend", "boto3"),
        "emr-serverless": ("sessionkit.backends.emr_serverless:EmrServerlessBackend", "boto3"),
        "athena": ("sessionkit.backends.athena:AthenaBackend", "boto3"),
    }
)

_registry: dict[str, BackendFactory | str] = {}
_lock = threading.Lock()
_entry_points_read = False

#: A read-only view of the backends registered in this process (name to factory).
registry: Mapping[str, BackendFactory | str] = MappingProxyType(_registry)

_CONFIG_FIELDS = frozenset(a.name for a in attrs.fields(SessionConfig))


def register_backend(name: str, factory: BackendFactory | str, *, clobber: bool = False) -> None:
    """Register a backend under ``name``.

    Args:
        name: The name users pass to :func:`open_session`, e.g. ``"livy"``.
        factory: A :class:`~sessionkit.backends.base.Backend` subclass, a callable returning a
            backend, or a lazy ``"module:Class"`` string imported on first use.
        clobber: Replace an existing registration instead of raising.

    Raises:
        ValueError: When ``name`` is taken and ``clobber`` is false.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"backend name must be a non-empty string, got {name!r}")
    with _lock:
        if not clobber and (name in _registry or name in _KNOWN):
            raise ValueError(
                f"a backend named {name!r} is already registered; pass clobber=True to replace it"
            )
        _registry[name] = factory


def _read_entry_points() -> None:
    global _entry_points_read
    if _entry_points_read:
        return
    from importlib.metadata import entry_points

    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        _registry.setdefault(entry_point.name, entry_point.value)
    _entry_points_read = True


def available_backends() -> list[str]:
    """Return the names of every backend that can be opened, sorted.

    Includes the built-in backends, registered ones and those installed through the
    ``sessionkit.backends`` entry-point group.
    """
    with _lock:
        _read_entry_points()
        return sorted({*_KNOWN, *_registry})


def _import(path: str, name: str, requirement: str | None) -> BackendFactory:
    module_name, _, attribute = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        missing = (exc.name or "").split(".")[0]
        if missing and missing != module_name.split(".")[0]:
            # A dependency of the backend is missing: say what to install.
            needed = requirement or missing
            raise BackendNotFoundError(
                f"backend {name!r} needs {missing!r}, which is not installed: pip install {needed}",
                name=name,
            ) from exc
        raise BackendNotFoundError(
            f"backend {name!r} points at {path!r}, which cannot be imported: {exc}", name=name
        ) from exc
    factory: BackendFactory = getattr(module, attribute)
    return factory


def get_backend(name: str) -> BackendFactory:
    """Return the factory registered under ``name``, importing it if needed.

    Raises:
        BackendNotFoundError: When no backend has that name, or its dependency is missing.
    """
    with _lock:
        factory = _registry.get(name)
        if factory is None and name not in _KNOWN:
            _read_entry_points()
            factory = _registry.get(name)
    if factory is None and name in _KNOWN:
        path, requirement = _KNOWN[name]
        return _import(path, name, requirement)
    if factory is None:
        raise BackendNotFoundError(
            f"no backend named {name!r}; available: {', '.join(available_backends())}",
            name=name,
        )
    if isinstance(factory, str):
        return _import(factory, name, None)
    return factory


def _build_backend(name: str, keywords: Mapping[str, Any]) -> Backend:
    """Build the backend from connection, location and backend keywords; no service call."""
    factory = get_backend(name)
    location = tuple(getattr(factory, "location_fields", ()))
    extra = tuple(getattr(factory, "extra_fields", ()))
    if hasattr(factory, "location_fields"):
        allowed = {*CONNECTION_FIELDS, *location, *extra}
        for key in keywords:
            if key not in allowed:
                raise InvalidConfigError(
                    key,
                    f"is not a keyword of the {name} backend nor a SessionConfig field "
                    f"(backend keywords: {', '.join(sorted(allowed))}; "
                    f"config fields: {', '.join(sorted(_CONFIG_FIELDS))})",
                )
    for field in location:
        if keywords.get(field) in (None, ""):
            raise InvalidConfigError(
                field, f"the {name} backend needs {field}=... to know where sessions live"
            )
    try:
        backend: Backend = factory(**keywords)
    except TypeError as exc:
        raise InvalidConfigError(
            "backend", f"the {name} backend rejected its keywords: {exc}"
        ) from exc
    return backend


def _split(keywords: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    config = {k: v for k, v in keywords.items() if k in _CONFIG_FIELDS}
    rest = {k: v for k, v in keywords.items() if k not in _CONFIG_FIELDS}
    return config, rest


def _connection(
    client: Any, boto3_session: Any, region: str | None, endpoint_url: str | None
) -> dict[str, Any]:
    given = {
        "client": client,
        "boto3_session": boto3_session,
        "region": region,
        "endpoint_url": endpoint_url,
    }
    return {k: v for k, v in given.items() if v is not None}


def _policy(given: Any) -> PollPolicy:
    if given is None:
        return DEFAULT_POLL
    if not isinstance(given, PollPolicy):
        raise InvalidConfigError(
            "poll_policy", f"must be a sessionkit.PollPolicy, got {type(given).__name__}"
        )
    return given


def _abandon_quietly(impl: Backend, prepared: PreparedStart, policy: PollPolicy) -> None:
    try:
        call_with_retries(
            lambda: impl._abandon(prepared),
            policy=policy,
            what=f"clean up an interrupted {impl.name} start",
            backend=impl,
        )
    except BaseException as exc:
        logger.error("could not clean up an interrupted %s start: %s", impl.name, exc)


def open_session(
    backend: str,
    *,
    wait: bool = True,
    timeout: timedelta | float | None = None,
    client: Any = None,
    boto3_session: Any = None,
    region: str | None = None,
    endpoint_url: str | None = None,
    poll_policy: PollPolicy | None = None,
    **config: Any,
) -> Session:
    """Start a session on ``backend`` and (by default) wait until it is READY.

    Everything is checked before the first call to the service: unknown keywords, unsupported
    or invalid fields and a missing location raise :class:`~sessionkit.errors.InvalidConfigError`
    naming the field. Starting is idempotent: a retried start reuses the same client token (Glue:
    the same session Id), so one call never creates two sessions. If the session fails to become
    ready (failed, degraded, timed out, Ctrl-C), its stop is requested before the error is raised.

    Args:
        backend: The backend name: ``"glue"``, ``"emr-serverless"``, ``"athena"`` or a registered
            one.
        wait: Wait until READY (default); ``False`` returns right after the start call.
        timeout: The longest wait for READY (``timedelta`` or seconds); default 20 minutes.
        client: A ready boto3 client (moto, a Stubber, the emulator, your own config).
        boto3_session: The boto3 session to build the client from.
        region: The AWS region.
        endpoint_url: A custom service endpoint.
        poll_policy: How to poll and retry (and on which clock); default
            :data:`~sessionkit.waiting.DEFAULT_POLL`.
        **config: :class:`~sessionkit.SessionConfig` fields, the backend's location
            (``application_id`` for emr-serverless, ``work_group`` for athena) and backend
            keywords.

    Returns:
        The owned :class:`~sessionkit.Session`; use it as a context manager to stop it reliably.

    Raises:
        InvalidConfigError: Bad input, before any call.
        BackendNotFoundError: Unknown backend.
        SessionFailedError: The session failed instead of becoming ready (it was stopped).
        WaitTimeoutError: It did not become ready in time (it was stopped).
        ServiceError: The service refused the start.
    """
    policy = _policy(poll_policy)
    # Checked now, not when the wait begins: a bad timeout must not cost a started session.
    wait_timeout = None if timeout is None else to_timedelta(timeout, field="timeout")
    config_fields, rest = _split(config)
    session_config = SessionConfig(**config_fields)
    impl = _build_backend(
        backend, {**_connection(client, boto3_session, region, endpoint_url), **rest}
    )
    impl.poll_policy = policy
    impl.check_supported(session_config)
    prepared = impl.prepare_start(session_config)
    if prepared.preflight:
        call_with_retries(
            lambda: impl._preflight(prepared),
            policy=policy,
            what=f"check {backend} location",
            backend=impl,
        )
    attempts = [0]
    # A client that retries inside botocore may have landed a start whose answer was lost even
    # on sessionkit's first attempt, so every attempt must be ready to adopt it. Not with a
    # token the caller chose: that session may be someone else's, and adopting it would stop it.
    chosen = prepared.token in (session_config.name, session_config.client_token)
    hidden = 1 if impl.transport_attempts() > 1 and not chosen else 0

    def start() -> SessionInfo:
        attempts[0] += 1
        return impl._start(prepared, attempt=attempts[0] + hidden)

    try:
        info = call_with_retries(
            start, policy=policy, what=f"start {backend} session", backend=impl
        )
    except BaseException as exc:
        # Only an attempt whose outcome is unknown may have created a session; a definite
        # refusal (a name already taken by someone else, say) must not stop anything.
        unknown = not isinstance(exc, ServiceError) or exc.retryable
        if attempts[0] and unknown:
            _abandon_quietly(impl, prepared, policy)
        raise
    logger.info("started %s session %s (%s)", backend, info.id, info.state.value)
    session = Session(impl, info, owned=True, poll_policy=policy)
    if wait:
        try:
            session.wait_until_ready(wait_timeout, _initial=info)
        except BaseException:
            session._stop_quietly()
            raise
    return session


def attach_session(
    backend: str,
    session_id: str,
    *,
    stop_on_exit: bool = False,
    client: Any = None,
    boto3_session: Any = None,
    region: str | None = None,
    endpoint_url: str | None = None,
    poll_policy: PollPolicy | None = None,
    **location: Any,
) -> Session:
    """Wrap an existing session (one call: describe).

    The session is *not owned*: leaving a ``with`` block does not stop it unless
    ``stop_on_exit=True``.

    Args:
        backend: The backend name.
        session_id: The service's session id.
        stop_on_exit: Stop the session when a ``with`` block ends.
        client: A ready boto3 client.
        boto3_session: The boto3 session to build the client from.
        region: The AWS region.
        endpoint_url: A custom service endpoint.
        poll_policy: How to poll and retry; default :data:`~sessionkit.waiting.DEFAULT_POLL`.
        **location: The backend's location (``application_id``, ``work_group``).

    Returns:
        The :class:`~sessionkit.Session`.
    """
    if not isinstance(session_id, str) or not session_id:
        raise InvalidConfigError("session_id", f"must be a non-empty string, got {session_id!r}")
    policy = _policy(poll_policy)
    impl = _build_backend(
        backend, {**_connection(client, boto3_session, region, endpoint_url), **location}
    )
    info = call_with_retries(
        lambda: impl._describe(session_id),
        policy=policy,
        what=f"describe {backend} session",
        backend=impl,
    )
    return Session(impl, info, owned=stop_on_exit, poll_policy=policy)


def _states(
    states: Iterable[SessionState | str] | SessionState | str | None,
) -> frozenset[SessionState] | None:
    if states is None:
        return None
    if isinstance(states, (str, SessionState)):
        states = [states]
    result = set()
    for state in states:
        try:
            result.add(SessionState(state))
        except ValueError:
            raise InvalidConfigError(
                "states",
                f"{state!r} is not a SessionState; use e.g. SessionState.READY",
            ) from None
    return frozenset(result)


def iter_pages(
    impl: Backend, states: frozenset[SessionState] | None, policy: PollPolicy
) -> Iterator[list[SessionInfo]]:
    """Yield every page of the backend's list call, each page's call retried on its own."""
    token: str | None = None
    while True:
        page, token = call_with_retries(
            lambda t=token: impl._list_page(states, t),  # type: ignore[misc]
            policy=policy,
            what=f"list {impl.name} sessions",
            backend=impl,
        )
        yield page
        if not token:
            return


def list_sessions(
    backend: str,
    *,
    states: Iterable[SessionState | str] | SessionState | str | None = None,
    client: Any = None,
    boto3_session: Any = None,
    region: str | None = None,
    endpoint_url: str | None = None,
    poll_policy: PollPolicy | None = None,
    **location: Any,
) -> Iterator[SessionInfo]:
    """Iterate over the sessions of a backend's location, all pages.

    The state filter runs on the service where the API can (EMR Serverless ``states``, Athena's
    single ``StateFilter``) and client-side otherwise.

    Args:
        backend: The backend name.
        states: Only sessions in these states.
        client: A ready boto3 client.
        boto3_session: The boto3 session to build the client from.
        region: The AWS region.
        endpoint_url: A custom service endpoint.
        poll_policy: Retry policy for the list calls.
        **location: The backend's location (``application_id``, ``work_group``).

    Returns:
        An iterator of :class:`~sessionkit.SessionInfo`; pages are fetched as you iterate.
    """
    wanted = _states(states)
    impl = _build_backend(
        backend, {**_connection(client, boto3_session, region, endpoint_url), **location}
    )
    policy = _policy(poll_policy)

    def generate() -> Iterator[SessionInfo]:
        for page in iter_pages(impl, wanted, policy):
            for info in page:
                if wanted is None or info.state in wanted:
                    yield info

    return generate()

"""The entry points: open_session, attach_session, list_sessions.

Each splits the caller's keywords into :class:`~sessionkit.SessionConfig` fields and the
backend's own keywords (connection, location and the like, which each backend declares), builds
the backend through the registry and hands over to :class:`~sessionkit.Session`. Nothing here
knows a provider: the keywords pass through.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import attrs

from sessionkit._registry import build_backend
from sessionkit.errors import InvalidConfigError, ServiceError
from sessionkit.models import SessionConfig, SessionInfo, to_timedelta
from sessionkit.session import Session
from sessionkit.states import SessionState
from sessionkit.waiting import DEFAULT_POLL, PageGuard, PollPolicy, call_with_retries

if TYPE_CHECKING:
    from sessionkit.backends.base import Backend, PreparedStart

__all__ = ["attach_session", "iter_pages", "list_sessions", "open_session"]

logger = logging.getLogger(__name__)

_CONFIG_FIELDS = frozenset(a.name for a in attrs.fields(SessionConfig))


def _split(keywords: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    config = {k: v for k, v in keywords.items() if k in _CONFIG_FIELDS}
    rest = {k: v for k, v in keywords.items() if k not in _CONFIG_FIELDS}
    return config, rest


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
        poll_policy: How to poll and retry (and on which clock); default
            :data:`~sessionkit.waiting.DEFAULT_POLL`.
        **config: :class:`~sessionkit.SessionConfig` fields and the backend's own keywords
            (connection, location and the like: see each backend's page).

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
    impl = build_backend(backend, rest)
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
    poll_policy: PollPolicy | None = None,
    **keywords: Any,
) -> Session:
    """Wrap an existing session (one call: describe).

    The session is *not owned*: leaving a ``with`` block does not stop it unless
    ``stop_on_exit=True``.

    Args:
        backend: The backend name.
        session_id: The service's session id.
        stop_on_exit: Stop the session when a ``with`` block ends.
        poll_policy: How to poll and retry; default :data:`~sessionkit.waiting.DEFAULT_POLL`.
        **keywords: The backend's connection and location keywords (see each backend's page).

    Returns:
        The :class:`~sessionkit.Session`.
    """
    if not isinstance(session_id, str) or not session_id:
        raise InvalidConfigError("session_id", f"must be a non-empty string, got {session_id!r}")
    policy = _policy(poll_policy)
    impl = build_backend(backend, keywords, attaching=True)
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
    """Yield every page of the backend's list call, each page's call retried on its own.

    Pages are fetched as they are consumed. A listing that would never end (the service
    returning a page token it returned before, or more than
    :data:`~sessionkit.waiting.MAX_PAGES` pages) raises
    :class:`~sessionkit.errors.ServiceError` saying so.
    """
    guard = PageGuard(f"list {impl.name} sessions")
    token: str | None = None
    while True:
        page, token = call_with_retries(
            lambda t=token: impl._list_page(states, t),  # type: ignore[misc]
            policy=policy,
            what=f"list {impl.name} sessions",
            backend=impl,
        )
        yield page
        token = guard.next(token)
        if token is None:
            return


def list_sessions(
    backend: str,
    *,
    states: Iterable[SessionState | str] | SessionState | str | None = None,
    poll_policy: PollPolicy | None = None,
    **keywords: Any,
) -> Iterator[SessionInfo]:
    """Iterate over the sessions of a backend's location, all pages.

    The state filter runs on the service where the API can (EMR Serverless ``states``, Athena's
    single ``StateFilter``) and client-side otherwise.

    Args:
        backend: The backend name.
        states: Only sessions in these states.
        poll_policy: Retry policy for the list calls.
        **keywords: The backend's connection and location keywords (see each backend's page).

    Returns:
        An iterator of :class:`~sessionkit.SessionInfo`; pages are fetched as you iterate.
    """
    wanted = _states(states)
    impl = build_backend(backend, keywords)
    policy = _policy(poll_policy)

    def generate() -> Iterator[SessionInfo]:
        for page in iter_pages(impl, wanted, policy):
            for info in page:
                if wanted is None or info.state in wanted:
                    yield info

    return generate()

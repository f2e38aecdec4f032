"""The entry points: open_session, attach_session, list_sessions, ensure_session, sweep_sessions.

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

from sessionkit import _lifecycle
from sessionkit._lifecycle import (
    check_flag,
    check_policy,
    check_states,
    drive,
    finish_open,
    outcome_unknown,
    time_left,
)
from sessionkit.errors import InvalidConfigError, ServiceError
from sessionkit.models import SessionConfig, SessionInfo, parse_duration, to_timedelta
from sessionkit.registry import build_backend
from sessionkit.session import (
    ProgressCallback,
    Session,
    attach_session,
    check_progress_callback,
)
from sessionkit.states import SessionState
from sessionkit.waiting import PageGuard, PollPolicy, call_with_retries

if TYPE_CHECKING:
    from sessionkit.backends.base import Backend, PreparedStart

__all__ = [
    "attach_session",
    "ensure_session",
    "iter_pages",
    "list_sessions",
    "open_session",
    "sweep_sessions",
]

logger = logging.getLogger(__name__)

_CONFIG_FIELDS = frozenset(a.name for a in attrs.fields(SessionConfig))


def _split(keywords: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    config = {k: v for k, v in keywords.items() if k in _CONFIG_FIELDS}
    rest = {k: v for k, v in keywords.items() if k not in _CONFIG_FIELDS}
    return config, rest


def _abandon_quietly(impl: Backend, prepared: PreparedStart, policy: PollPolicy) -> None:
    """Stop what an interrupted start may have created; a second Ctrl-C does not stop this."""
    for round_ in (1, 2):
        try:
            call_with_retries(
                lambda: impl._abandon(prepared),
                policy=policy,
                what=f"clean up an interrupted {impl.name} start",
                backend=impl,
            )
            return
        except KeyboardInterrupt:
            # Shielded: the clean-up is retried once; the interrupt in flight is re-raised by
            # the caller.
            logger.warning("interrupted while cleaning up a %s start; retrying", impl.name)
            if round_ == 2:
                logger.error("gave up cleaning up an interrupted %s start", impl.name)
        except BaseException as exc:
            logger.error("could not clean up an interrupted %s start: %s", impl.name, exc)
            return


def open_session(
    backend: str,
    *,
    wait: bool = True,
    timeout: timedelta | float | None = None,
    poll_policy: PollPolicy | None = None,
    on_progress: ProgressCallback | None = None,
    **config: Any,
) -> Session:
    """Start a session on ``backend`` and (by default) wait until it is READY.

    Everything is checked before the first call to the service: unknown keywords, unsupported
    or invalid fields and a missing location raise :class:`~sessionkit.errors.InvalidConfigError`
    naming the field. Starting is idempotent: a retried start reuses the same idempotency key (the
    service's client token, or the unique session name where the service uses names as
    tokens), so one call never creates two sessions. If the session fails to become
    ready (failed, degraded, timed out, Ctrl-C), its stop is requested before the error is raised.

    Args:
        backend: The backend name: a built-in one (see
            :func:`~sessionkit.available_backends` and the backends page) or a registered one.
        wait: Wait until READY (default); ``False`` returns right after the start call.
        timeout: The longest the whole open may take, pre-flight (an application start)
            included (``timedelta`` or seconds); default 20 minutes for the wait for READY.
        poll_policy: How to poll and retry (and on which clock); default
            :data:`~sessionkit.waiting.DEFAULT_POLL`.
        on_progress: Called with a :class:`~sessionkit.Progress` on every poll of the wait
            that sees something change (see :meth:`Session.wait_until_ready`).
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
    policy = check_policy(poll_policy)
    check_flag("wait", wait)
    # Checked now, not when the wait begins: a bad timeout must not cost a started session.
    wait_timeout = None if timeout is None else to_timedelta(timeout, field="timeout")
    check_progress_callback(on_progress)
    config_fields, rest = _split(config)
    session_config = SessionConfig(**config_fields)
    impl = build_backend(backend, rest)
    opened = policy.clock()
    # The caller's timeout bounds the whole open: a pre-flight that waits (an application
    # start) waits on it too.
    impl.poll_policy = (
        policy if wait_timeout is None else attrs.evolve(policy, timeout=wait_timeout)
    )
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
    # A client that retries inside its SDK may have landed a start whose answer was lost even
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
        if attempts[0] and outcome_unknown(exc):
            _abandon_quietly(impl, prepared, policy)
        raise
    logger.info("started %s session %s (%s)", backend, info.id, info.state.value)
    session = Session(impl, info, owned=True, poll_policy=policy)
    return drive(
        finish_open(
            session,
            wait=wait,
            timeout=time_left(wait_timeout, opened, policy.clock),
            on_progress=on_progress,
            initial=info,
        )
    )


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

    The state filter runs on the service where its list call takes one (each backend's page
    says whether it does) and client-side otherwise.

    Args:
        backend: The backend name.
        states: Only sessions in these states.
        poll_policy: Retry policy for the list calls.
        **keywords: The backend's connection and location keywords (see each backend's page).

    Returns:
        An iterator of :class:`~sessionkit.SessionInfo`; pages are fetched as you iterate.
    """
    wanted = check_states(states)
    policy = check_policy(poll_policy)
    impl = build_backend(backend, keywords)
    impl.poll_policy = policy

    def generate() -> Iterator[SessionInfo]:
        for page in iter_pages(impl, wanted, policy):
            for info in page:
                if _lifecycle.listed(info, wanted):
                    yield info

    return generate()


# ----------------------------------------------------------------------------- ensure and sweep

#: The states in which a session is alive: what ensure_session attaches to, sweep_sessions stops.
_ALIVE = frozenset(state for state in SessionState if state.is_alive)


def _named(impl: Backend, name: str, policy: PollPolicy) -> SessionInfo | None:
    """The alive session called ``name`` in the backend's location; the oldest if several.

    Every process racing on one name sees the same oldest session (ties broken by id), so all
    of them settle on it.
    """
    found = [
        info
        for page in iter_pages(impl, _ALIVE, policy)
        for info in page
        if info.name == name and info.state.is_alive
    ]
    if not found:
        return None
    return min(found, key=lambda info: (info.created_at is None, info.created_at or 0, info.id))


def ensure_session(
    backend: str,
    name: str,
    *,
    wait: bool = True,
    timeout: timedelta | float | None = None,
    poll_policy: PollPolicy | None = None,
    on_progress: ProgressCallback | None = None,
    **keywords: Any,
) -> Session:
    """Return the alive session named ``name`` in the location, or open one under that name.

    An alive session (PENDING, STARTING, READY, BUSY or DEGRADED) with that name is attached to
    and *not owned*: leaving a ``with`` block leaves it running for the others using it. If
    there is none, a session is opened under that name and is owned. Two processes racing on
    one name end with one session: where the service refuses a second session under a name
    (a backend whose names are unique ids) the loser's start fails and it attaches to the
    winner; where names are not unique, each process looks again after its start, and every process
    but the one whose session is the oldest stops its own and attaches to the oldest. (A later
    start is younger because it began after the other process looked; equal creation times
    are broken by id.)

    Args:
        backend: The backend name.
        name: The session name (the service field it goes to is the backend's ``name``
            mapping; see the backends page).
        wait: Wait until the session is READY (default).
        timeout: The longest wait for READY; default 20 minutes.
        poll_policy: How to poll and retry; default :data:`~sessionkit.waiting.DEFAULT_POLL`.
        on_progress: Called with a :class:`~sessionkit.Progress` on every poll of the wait
            that sees something change.
        **keywords: :class:`~sessionkit.SessionConfig` fields (used when a session is opened)
            and the backend's connection and location keywords.

    Returns:
        The :class:`~sessionkit.Session`: owned if this call opened it, else not owned.

    Raises:
        InvalidConfigError: Bad input, before any call.
        SessionFailedError: The session failed instead of becoming ready (stopped if owned).
        WaitTimeoutError: It did not become ready in time (stopped if owned).
        ServiceError: The service refused the start and no session of that name is alive.
    """
    if not isinstance(name, str) or not name:
        raise InvalidConfigError("name", f"must be a non-empty string, got {name!r}")
    policy = check_policy(poll_policy)
    wait_timeout = None if timeout is None else to_timedelta(timeout, field="timeout")
    check_progress_callback(on_progress)
    config_fields, rest = _split(keywords)
    session_config = SessionConfig(name=name, **config_fields)
    impl = build_backend(backend, rest)
    impl.poll_policy = policy
    impl.check_supported(session_config)
    impl.prepare_start(session_config)  # every input error before the first call

    existing = _named(impl, name, policy)
    if existing is not None:
        logger.info("attaching to %s session %s named %r", backend, existing.id, name)
        session = Session(impl, existing, owned=False, poll_policy=policy)
    else:
        try:
            session = open_session(
                backend, wait=False, poll_policy=policy, name=name, **{**rest, **config_fields}
            )
        except ServiceError as exc:
            if exc.retryable:
                raise
            # The name is taken: another process won the race. Attach to its session.
            existing = _named(impl, name, policy)
            if existing is None:
                raise
            logger.info("lost the race for %r; attaching to %s", name, existing.id)
            session = Session(impl, existing, owned=False, poll_policy=policy)
        else:
            winner = _named(impl, name, policy)
            if winner is not None and winner.id != session.id:
                logger.info("another process started %r first; stopping %s", name, session.id)
                session.stop_quietly()
                session = Session(impl, winner, owned=False, poll_policy=policy)
    return drive(finish_open(session, wait=wait, timeout=wait_timeout, on_progress=on_progress))


def sweep_sessions(
    backend: str,
    *,
    older_than: timedelta | str,
    dry_run: bool = False,
    poll_policy: PollPolicy | None = None,
    **keywords: Any,
) -> list[SessionInfo]:
    """Stop the leaked sessions sessionkit started in a location.

    A session is swept when it is alive, carries sessionkit's ``sessionkit:created-by`` tag
    (each backend reads its provider's form of it), and is older than ``older_than`` or past
    its ``sessionkit:expires-at`` tag. A session without the tag is never stopped. The stops
    are requested, not waited for.

    Args:
        backend: The backend name.
        older_than: The age past which a tagged session is swept (``timedelta`` or ``"2h"``).
        dry_run: Only report what would be stopped.
        poll_policy: How to retry the calls (and which wall clock tells the time).
        **keywords: The backend's connection and location keywords.

    Returns:
        The sessions that were stopped (or would be, with ``dry_run``), their ``tags`` filled
        in. A session whose stop failed is logged and left out.

    Raises:
        InvalidConfigError: Bad input, before any call.
    """
    age = parse_duration(older_than, field="older_than")
    if not isinstance(dry_run, bool):
        raise InvalidConfigError("dry_run", f"must be True or False, got {dry_run!r}")
    policy = check_policy(poll_policy)
    impl = build_backend(backend, keywords)
    now = policy.now()
    chosen: list[SessionInfo] = []
    for page in iter_pages(impl, _ALIVE, policy):
        for info in page:
            if not info.state.is_alive:
                continue
            tags = call_with_retries(
                lambda i=info: impl._tags(i),  # type: ignore[misc]
                policy=policy,
                what=f"read the tags of {backend}:{info.id}",
                backend=impl,
            )
            ours, expires = impl.sweep_marks(info, tags)
            if not ours:
                continue
            old = info.created_at is not None and now - info.created_at >= age
            expired = expires is not None and now >= expires
            if old or expired:
                chosen.append(attrs.evolve(info, tags=tags))
    if dry_run:
        return chosen
    stopped = []
    for info in chosen:
        try:
            Session(impl, info, owned=True, poll_policy=policy).stop(wait=False)
        except Exception as exc:
            logger.error("could not stop leaked %s session %s: %s", backend, info.id, exc)
            continue
        logger.info("swept %s session %s (created %s)", backend, info.id, info.created_at)
        stopped.append(info)
    return stopped

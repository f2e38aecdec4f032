"""The contract between :class:`~sessionkit.Session` and a backend.

A backend implements a handful of ``_``-prefixed primitives (start, describe, stop, list, ...),
each making one attempt at one service call. :class:`~sessionkit.Session` owns everything
else once, for every backend: waiting, retries, ownership, the context manager, logging.
A third-party backend subclasses :class:`Backend` and registers itself (see
:func:`sessionkit.register_backend`); ``sessionkit.testing.conformance`` checks it.
"""

from __future__ import annotations

import abc
import functools
import getpass
import hashlib
import socket
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import attrs

from sessionkit.errors import InvalidConfigError, NotSupportedError, ServiceError, SessionKitError
from sessionkit.models import (
    DEFAULT_IDLE_TIMEOUT,
    Endpoint,
    SessionConfig,
    SessionInfo,
    StatementResult,
)
from sessionkit.states import SessionState
from sessionkit.waiting import ReadyPrior

if TYPE_CHECKING:
    from sessionkit.waiting import PollPolicy

__all__ = [
    "CREATED_BY_TAG",
    "EXPIRES_AT_TAG",
    "EXPIRY_IDLE_FACTOR",
    "MALFORMED",
    "START_TOKEN_TAG",
    "Backend",
    "Capabilities",
    "PreparedStart",
    "created_by",
    "idle_timeout_of",
    "lifecycle_tags",
    "malformed",
    "native_states",
]

F = TypeVar("F", bound=Callable[..., Any])

# ----------------------------------------------------------------------------- helpers

#: The tag carrying the per-start nonce that proves a session was created by this start.
START_TOKEN_TAG = "sessionkit:start-token"
#: The tag naming who started a session (a stable, secret-free id of the host and user).
CREATED_BY_TAG = "sessionkit:created-by"
#: The tag saying when a leaked session may be swept (ISO-8601, UTC).
EXPIRES_AT_TAG = "sessionkit:expires-at"
#: Without a ``max_duration``, a session expires after this many idle timeouts: long enough
#: for a session that does work now and then, short enough that a leak is swept the same day.
EXPIRY_IDLE_FACTOR = 3
#: The error code of a service answer that lacks what the API promises.
MALFORMED = "MalformedResponse"


def native_states(
    state_map: Mapping[str, SessionState], states: frozenset[SessionState]
) -> list[str] | None:
    """The native states a server-side filter must name to select ``states`` (the inverse map).

    Args:
        state_map: The backend's native state -> common state table.
        states: The wanted common states.

    Returns:
        Every native state that maps into ``states``, in table order; ``[]`` when none does
        (nothing can match); ``None`` when ``states`` holds UNKNOWN, which stands for native
        states not in the table and which no filter can name.
    """
    if SessionState.UNKNOWN in states:
        return None
    return [native for native, state in state_map.items() if state in states]


def malformed(operation: str, problem: str) -> ServiceError:
    """The error for a service answer that lacks required members or has unreadable values.

    Args:
        operation: The operation whose answer it was.
        problem: What is wrong with it.

    Returns:
        A non-retryable :class:`~sessionkit.errors.ServiceError` with code ``MalformedResponse``.
    """
    return ServiceError(
        f"{operation}: the service's answer is malformed ({problem})",
        code=MALFORMED,
        operation=operation,
    )


def idle_timeout_of(config: SessionConfig) -> timedelta:
    """The idle timeout to send: the caller's, else :data:`~sessionkit.DEFAULT_IDLE_TIMEOUT`."""
    return config.idle_timeout or DEFAULT_IDLE_TIMEOUT


@functools.lru_cache(maxsize=1)
def created_by() -> str:
    """A stable id of this host and user, with no secret and no personal name in it."""
    try:
        user = getpass.getuser()
    except Exception:  # no user name (some containers): the host alone still groups
        user = "unknown"
    digest = hashlib.sha256(f"{user}@{socket.gethostname()}".encode()).hexdigest()
    return f"sk-{digest[:16]}"


def lifecycle_tags(
    config: SessionConfig, *, start_token: str | None, now: datetime
) -> dict[str, str]:
    """The tags every session sessionkit starts carries, merged with the caller's.

    ``sessionkit:created-by`` and ``sessionkit:expires-at`` (``now`` + ``max_duration``, else
    ``now`` + idle timeout x :data:`EXPIRY_IDLE_FACTOR`) unless ``config.sessionkit_tags`` is
    false; ``sessionkit:start-token`` whenever ``start_token`` is given (the proof of
    ownership, which a caller's tag cannot override). Caller tags win over the other two.

    Args:
        config: The session configuration.
        start_token: The per-start nonce, or ``None`` where ownership needs no tag.
        now: The current wall-clock time (timezone-aware).

    Returns:
        The tags to send, in one provider-neutral form (str to str).
    """
    tags: dict[str, str] = {}
    if config.sessionkit_tags:
        life = config.max_duration or idle_timeout_of(config) * EXPIRY_IDLE_FACTOR
        expires = (now.astimezone(timezone.utc) + life).replace(microsecond=0)
        tags[CREATED_BY_TAG] = created_by()
        tags[EXPIRES_AT_TAG] = expires.strftime("%Y-%m-%dT%H:%M:%SZ")
    tags.update(config.tags)
    if start_token is not None:
        tags[START_TOKEN_TAG] = start_token
    return tags


def _guarded(name: str, method: F) -> F:
    """Wrap a primitive so that a malformed answer is a ServiceError, never a KeyError."""

    @functools.wraps(method)
    def primitive(self: Backend, *args: Any, **kwargs: Any) -> Any:
        try:
            result = method(self, *args, **kwargs)
        except SessionKitError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
            problem = f"{type(exc).__name__}: {exc}"
            raise malformed(f"{self.name} {name.lstrip('_')}", problem) from exc
        if name in ("_describe", "_describe_light") and args:
            wanted = args[0]
            # A session may be asked for by its id or by its full resource name, where it has one.
            if not isinstance(result, SessionInfo) or wanted not in (
                result.id,
                result.resource_name,
            ):
                got = getattr(result, "id", None)
                raise malformed(
                    f"{self.name} {name.lstrip('_')}",
                    f"asked for session {wanted!r}, the answer is for {got!r}",
                )
        if name == "_start" and (not isinstance(result, SessionInfo) or not result.id):
            raise malformed(f"{self.name} start", "the answer has no session id")
        return result

    return primitive  # type: ignore[return-value]


_PRIMITIVES = (
    "_start",
    "_abandon",
    "_describe",
    "_describe_light",
    "_stop",
    "_delete",
    "_list_page",
    "_run",
    "_statement",
    "_cancel",
    "_endpoint",
)


@attrs.frozen(kw_only=True)
class PreparedStart:
    """A start request, translated and checked, ready to send (the same on every retry).

    Attributes:
        config: The configuration it was built from.
        request: The service request parameters.
        token: The idempotency key (a client token, or the session id where the service
            lets the caller choose it).
        preflight: Whether the backend's pre-flight checks should run before the first attempt.
        start_token: The per-start nonce (the ``sessionkit:start-token`` tag) that proves a
            session was created by this start, where the backend proves ownership by a tag.
    """

    config: SessionConfig
    request: Mapping[str, Any] = attrs.field(repr=False)
    token: str = attrs.field(repr=False)
    preflight: bool = True
    start_token: str | None = attrs.field(default=None, repr=False)


@attrs.frozen(kw_only=True)
class Capabilities:
    """What a backend can do, so callers ask before they act instead of catching errors.

    ``sessionkit run`` refuses a backend without ``statements`` before it provisions anything,
    and the conformance suite runs only the scenarios a backend can pass.

    Attributes:
        statements: ``Session.run`` works (the service has a statement API).
        spark_connect: ``Session.endpoint`` and ``Session.spark`` work.
        delete: ``Session.stop(delete=True)`` deletes the stopped session's record.
        server_side_state_filter: ``list_sessions(states=...)`` filters on the service.
        tags: ``SessionConfig.tags`` reach the service and come back on ``SessionInfo.tags``.
    """

    statements: bool = False
    spark_connect: bool = False
    delete: bool = False
    server_side_state_filter: bool = False
    tags: bool = False

    def names(self) -> tuple[str, ...]:
        """The names of the capabilities that are present, in field order."""
        return tuple(a.name for a in attrs.fields(Capabilities) if getattr(self, a.name))


class Backend(abc.ABC):
    """Base class of every backend.

    Class attributes describe the backend; the primitives make one attempt each and raise
    :class:`~sessionkit.errors.ServiceError` (``retryable`` set) on service errors.

    Attributes:
        name: The registry name, e.g. ``"memory"``.
        connection_fields: Keywords that say how to reach the provider (credentials, clients,
            endpoints); the core passes them through without knowing them.
        location_fields: Keywords that locate sessions and are required to start or list them
            (e.g. ``("application_id",)``).
        attach_location_fields: The location keywords needed to find one session by id
            (default: all of ``location_fields``).
        extra_fields: Further keywords the backend accepts.
        supported_fields: The :class:`~sessionkit.SessionConfig` fields the backend translates.
        state_map: Native state string to :class:`~sessionkit.SessionState`.
        statement_states: Native statement state to :class:`~sessionkit.StatementState`.
        capabilities: What the backend can do (see :class:`Capabilities`); default: nothing
            optional.
        cli_fields: Backend keywords that take a plain string, which the ``sessionkit``
            command offers as ``--kebab-case`` options (default: the location fields).
        cli_aliases: Keywords that are not plain strings, to the ``cli_fields`` keyword that
            stands for them on the command line (so hints name an option, not a keyword).
        config_error_codes: Service error codes that mean the caller's configuration is wrong
            (missing or rejected credentials): the command exits 2 on them, as on bad input.
        ready_prior: The ready-time distribution the default start schedule is derived from.
    """

    name: ClassVar[str]
    connection_fields: ClassVar[tuple[str, ...]] = ()
    location_fields: ClassVar[tuple[str, ...]] = ()
    attach_location_fields: ClassVar[tuple[str, ...] | None] = None
    extra_fields: ClassVar[tuple[str, ...]] = ()
    supported_fields: ClassVar[frozenset[str]] = frozenset()
    state_map: ClassVar[Mapping[str, SessionState]] = {}
    capabilities: ClassVar[Capabilities] = Capabilities()
    cli_fields: ClassVar[tuple[str, ...]] = ()
    cli_aliases: ClassVar[Mapping[str, str]] = {}
    config_error_codes: ClassVar[frozenset[str]] = frozenset()
    _cli_fields_given: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # cli_fields defaults to the location fields of the class itself, unless a class in
        # between chose them on purpose.
        if "cli_fields" in cls.__dict__:
            cls._cli_fields_given = True
        elif not cls._cli_fields_given:
            cls.cli_fields = tuple(cls.location_fields)
        # Guard every primitive a subclass defines (see :func:`malformed`).
        for name in _PRIMITIVES:
            method = cls.__dict__.get(name)
            if callable(method) and not getattr(method, "__sessionkit_guarded__", False):
                guarded = _guarded(name, method)
                guarded.__sessionkit_guarded__ = True
                setattr(cls, name, guarded)

    def attempt_timeout(self) -> float:
        """The longest one call attempt can block (socket timeouts), 0 when unknown."""
        return 0.0

    #: When this service's sessions typically become READY after the start call is answered;
    #: the default start schedule is derived from it (see ``ReadyPrior.schedule``). Backends
    #: declare their own, e.g. ``ready_prior = ReadyPrior.between(10, 120)``.
    ready_prior: ClassVar[ReadyPrior] = ReadyPrior.between(5.0, 120.0)
    #: Whether :meth:`_list_records` filters by state on the service (then ``wait_all`` asks
    #: only for the sessions that can still change).
    list_filters_states: ClassVar[bool] = False
    #: The most records one page of the list call holds (the largest page the service allows,
    #: which the backend asks for); ``wait_all`` plans its rounds with it.
    list_page_size: ClassVar[int] = 100
    #: The narrowing keywords :meth:`_list_records` honours: ``"created_after"`` (only sessions
    #: created after a time: a service-side filter, or a cut where the service lists newest
    #: first) and ``"tags"`` (only sessions carrying every given tag, on the service).
    list_scopes: ClassVar[frozenset[str]] = frozenset()

    #: The caller's poll policy, set by ``open_session`` before the pre-flight, so a pre-flight
    #: that has to wait (a service starting the location's resources first) polls on the caller's
    #: schedule and clock; ``None`` means the default policy.
    poll_policy: PollPolicy | None = None

    @property
    def location(self) -> Mapping[str, Any]:
        """The location keywords this backend was built with (for messages and grouping)."""
        return {name: getattr(self, name, None) for name in self.location_fields}

    def fleet_key(self) -> tuple[Any, ...]:
        """Sessions with equal keys can be refreshed together by one list call."""
        return (self.name, id(self), *self.location.values())

    def budget_key(self) -> Any:
        """The object whose calls share one call budget (the API client); default: the backend."""
        return self

    def transport_attempts(self) -> int:
        """How many times the transport itself tries each call (1: sessionkit does every retry)."""
        return 1

    # -- configuration -------------------------------------------------------------------

    def check_supported(self, config: SessionConfig) -> None:
        """Reject every set field this backend cannot translate, before any call.

        Raises:
            InvalidConfigError: Naming the first unsupported field and the backend.
        """
        for field in config.given():
            if field not in self.supported_fields:
                raise InvalidConfigError(
                    field,
                    f"is not supported by the {self.name} backend "
                    f"(supported: {', '.join(sorted(self.supported_fields))}); "
                    "remove it, or pass the service's own key through options=",
                )

    @abc.abstractmethod
    def prepare_start(self, config: SessionConfig) -> PreparedStart:
        """Translate and check a configuration into the start request; makes no call.

        Raises:
            InvalidConfigError: For anything the service would reject.
        """

    # -- primitives: one attempt each --------------------------------------------------------

    def _preflight(self, prepared: PreparedStart) -> None:  # noqa: B027 - optional hook
        """Check, before starting, that the location can run sessions (may call the service)."""

    @abc.abstractmethod
    def _start(self, prepared: PreparedStart, *, attempt: int) -> SessionInfo:
        """Send the start request; ``attempt`` > 1 means an earlier attempt may have landed."""

    def _abandon(self, prepared: PreparedStart) -> None:  # noqa: B027 - optional hook
        """Best effort: stop whatever an interrupted start may have created.

        Called when a start was interrupted (Ctrl-C) or its retries ran out with the outcome of
        an attempt unknown. Backends whose idempotency key names the session (a caller-chosen
        id) can stop it; the others cannot know its id and do nothing.
        """

    @abc.abstractmethod
    def _describe(self, session_id: str) -> SessionInfo:
        """Describe one session."""

    def _describe_light(self, session_id: str) -> SessionInfo:
        """Describe one session cheaply, for polling (defaults to :meth:`_describe`)."""
        return self._describe(session_id)

    @abc.abstractmethod
    def _stop(self, session_id: str) -> None:
        """Request the stop of a session (returns without waiting)."""

    def _delete(self, session_id: str) -> None:
        """Delete a stopped session's record, where the service keeps one."""
        raise NotSupportedError(f"the {self.name} backend has nothing to delete")

    @abc.abstractmethod
    def _list_page(
        self, states: frozenset[SessionState] | None, token: str | None
    ) -> tuple[list[SessionInfo], str | None]:
        """List one page of sessions of this location, filtered on the service where it can.

        Args:
            states: The wanted states, or ``None`` for all (the caller filters again).
            token: The page token from the previous page, ``None`` for the first.

        Returns:
            The page's sessions and the next page's token (``None`` after the last page).
        """

    def _list_records(
        self,
        states: frozenset[SessionState] | None,
        token: str | None,
        *,
        created_after: datetime | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> tuple[list[Any], str | None]:
        """One page of the list call as the service's raw records, for the fleet.

        :func:`~sessionkit.wait_all` reads only the id of most records (:meth:`_record_id`) and
        translates only those it awaits (:meth:`_record_info`). Default: :meth:`_list_page`'s
        already translated :class:`~sessionkit.SessionInfo` values.

        Args:
            states: As for :meth:`_list_page`.
            token: As for :meth:`_list_page`.
            created_after: Only sessions created after this time (passed only when
                :attr:`list_scopes` names ``"created_after"``; records may still include older
                ones, which the caller skips).
            tags: Only sessions carrying every one of these tags (passed only when
                :attr:`list_scopes` names ``"tags"``).
        """
        return self._list_page(states, token)

    def _known_tags(self, session_id: str) -> Mapping[str, str] | None:
        """The tags this process knows a session carries (it sent them), else ``None``.

        ``wait_all`` narrows a list call to sessionkit's tags with them where the service
        filters by tag (:attr:`list_scopes`). Default: unknown.
        """
        return None

    def _record_id(self, record: Any) -> str:
        """The session id of one record from :meth:`_list_records`."""
        return str(record.id)

    def _record_info(self, record: Any) -> SessionInfo:
        """The :class:`~sessionkit.SessionInfo` of one record from :meth:`_list_records`."""
        assert isinstance(record, SessionInfo)
        return record

    def _run(self, session_id: str, code: str) -> str:
        """Submit code; return the statement id."""
        raise NotSupportedError(
            f"the {self.name} backend has no statement API; use session.endpoint() with "
            "Spark Connect instead"
        )

    def _statement(self, session_id: str, statement_id: str) -> StatementResult:
        """Describe a statement."""
        raise NotSupportedError(f"the {self.name} backend has no statement API")

    def _cancel(self, session_id: str, statement_id: str) -> None:
        """Cancel a statement."""
        raise NotSupportedError(f"the {self.name} backend has no statement API")

    def _endpoint(self, session_id: str) -> Endpoint:
        """Get a Spark Connect endpoint with a fresh token."""
        raise NotSupportedError(f"the {self.name} backend has no Spark Connect endpoint")

    # -- sweeping ----------------------------------------------------------------------------

    def _tags(self, info: SessionInfo) -> Mapping[str, str]:
        """The tags of a listed session (one attempt; may call the service).

        Default: ``info.tags`` when the list answer carried them, else a describe's.
        """
        if info.tags is not None:
            return info.tags
        return self._describe(info.id).tags or {}

    def sweep_marks(
        self, info: SessionInfo, tags: Mapping[str, str]
    ) -> tuple[bool, datetime | None]:
        """Read sessionkit's marks on a session: started by sessionkit? expires when?

        Default: the ``sessionkit:created-by`` tag, and ``sessionkit:expires-at`` as ISO-8601
        UTC. Backends whose provider spells tags differently (labels, a name prefix) override.

        Returns:
            Whether sessionkit started the session, and its expiry (``None`` if not tagged or
            unreadable).
        """
        if CREATED_BY_TAG not in tags:
            return False, None
        text = tags.get(EXPIRES_AT_TAG)
        if not text:
            return True, None
        try:
            expires = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return True, None
        if expires.tzinfo is None:
            expires = expires.replace(tzinfo=timezone.utc)
        return True, expires

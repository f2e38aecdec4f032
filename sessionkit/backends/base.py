"""The contract between :class:`~sessionkit.Session` and a backend.

A backend implements a handful of ``_``-prefixed primitives (start, describe, stop, list, ...),
each making one attempt at one service call. :class:`~sessionkit.Session` owns everything
else once, for every backend: waiting, retries, ownership, the context manager, logging.
A third-party backend subclasses :class:`Backend` and registers itself (see
:func:`sessionkit.register_backend`); ``sessionkit.testing.conformance`` checks it.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import attrs

from sessionkit.errors import InvalidConfigError, NotSupportedError
from sessionkit.models import Endpoint, SessionConfig, SessionInfo, StatementResult
from sessionkit.states import SessionState
from sessionkit.waiting import ReadyPrior

if TYPE_CHECKING:
    from sessionkit.waiting import PollPolicy

__all__ = ["Backend", "PreparedStart"]


@attrs.frozen(kw_only=True)
class PreparedStart:
    """A start request, translated and checked, ready to send (the same on every retry).

    Attributes:
        config: The configuration it was built from.
        request: The service request parameters.
        token: The idempotency key (client token, or the Glue session Id).
        preflight: Whether the backend's pre-flight checks should run before the first attempt.
    """

    config: SessionConfig
    request: Mapping[str, Any] = attrs.field(repr=False)
    token: str = attrs.field(repr=False)
    preflight: bool = True


class Backend(abc.ABC):
    """Base class of every backend.

    Class attributes describe the backend; the primitives make one attempt each and raise
    :class:`~sessionkit.errors.ServiceError` (``retryable`` set) on service errors.

    Attributes:
        name: The registry name, e.g. ``"glue"``.
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
        ready_prior: The ready-time distribution the default start schedule is derived from.
    """

    name: ClassVar[str]
    connection_fields: ClassVar[tuple[str, ...]] = ()
    location_fields: ClassVar[tuple[str, ...]] = ()
    attach_location_fields: ClassVar[tuple[str, ...] | None] = None
    extra_fields: ClassVar[tuple[str, ...]] = ()
    supported_fields: ClassVar[frozenset[str]] = frozenset()
    state_map: ClassVar[Mapping[str, SessionState]] = {}
    #: When this service's sessions typically become READY after the start call is answered;
    #: the default start schedule is derived from it (see ``ReadyPrior.schedule``). Backends
    #: declare their own, e.g. ``ready_prior = ReadyPrior.between(10, 120)``, or one of
    #: ``sessionkit.waiting``'s ``EMR_ON_EC2_PRIOR``, ``DATAPROC_PRIOR``, ``LIVY_PRIOR``.
    ready_prior: ClassVar[ReadyPrior] = ReadyPrior.between(5.0, 120.0)
    #: Whether :meth:`_list_records` filters by state on the service (then ``wait_all`` asks
    #: only for the sessions that can still change).
    list_filters_states: ClassVar[bool] = False

    #: The caller's poll policy, set by ``open_session`` before the pre-flight, so a pre-flight
    #: that has to wait (EMR Serverless starting its application) polls on the caller's
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
        an attempt unknown. Backends whose idempotency key names the session (Glue's Id) can
        stop it; the others cannot know its id and do nothing.
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
        self, states: frozenset[SessionState] | None, token: str | None
    ) -> tuple[list[Any], str | None]:
        """One page of the list call as the service's raw records, for the fleet.

        :func:`~sessionkit.wait_all` reads only the id of most records (:meth:`_record_id`) and
        translates only those it awaits (:meth:`_record_info`). Default: :meth:`_list_page`'s
        already translated :class:`~sessionkit.SessionInfo` values.
        """
        return self._list_page(states, token)

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

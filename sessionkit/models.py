"""The common model: configuration in, session information and results out.

All models are frozen attrs classes with keyword-only constructors; use :func:`attrs.evolve`
to derive a changed copy.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from types import MappingProxyType
from typing import Any
from urllib.parse import quote, urlsplit

import attrs

from sessionkit.errors import InvalidConfigError
from sessionkit.redaction import REDACTED, looks_secret, redact, redact_text
from sessionkit.states import SessionState, StatementState

__all__ = [
    "DEFAULT_IDLE_TIMEOUT",
    "Endpoint",
    "Progress",
    "SessionConfig",
    "SessionInfo",
    "StatementResult",
    "Usage",
    "Workers",
    "looks_secret",
    "parse_duration",
    "redact_conf",
    "redact_text",
    "to_timedelta",
]

_REDACTED = REDACTED

#: The idle timeout every session gets on a backend that has one, unless the caller sets one
#: (some services' own defaults run to days).
DEFAULT_IDLE_TIMEOUT = timedelta(minutes=60)

#: The longest duration any field takes (no service allows more than a few weeks); beyond it a
#: value is a mistake, and ``timedelta`` arithmetic on it could overflow.
_LONGEST = timedelta(days=3650)


def redact_conf(conf: Mapping[str, Any]) -> dict[str, Any]:
    """Return a copy of ``conf`` with every secret value replaced by ``***`` (at any depth)."""
    redacted: dict[str, Any] = redact(dict(conf))
    return redacted


_DURATION = re.compile(
    r"(?:(?P<d>[0-9]+)d)?(?:(?P<h>[0-9]+)h)?(?:(?P<m>[0-9]+)m)?(?:(?P<s>[0-9]+)s)?", re.ASCII
)


def parse_duration(value: Any, *, field: str) -> timedelta:
    """Read a duration given as a :class:`~datetime.timedelta` or a string with a unit.

    Strings are whole numbers with a unit, largest first: ``"90s"``, ``"30m"``, ``"2h"``,
    ``"1d"``, ``"1h30m"``. A bare number is refused: seconds-or-minutes confusion is a known
    way to leak money.

    Args:
        value: The duration.
        field: The field name, used in the error.

    Returns:
        The positive duration.

    Raises:
        InvalidConfigError: For a bare number, a string without a unit, zero, a negative or a
            value beyond ten years.
    """
    if isinstance(value, (bool, int, float)):
        raise InvalidConfigError(
            field,
            f"a bare number ({value!r}) has no unit: give a string with a unit such as "
            "'90s', '30m', '2h' or '1d', or a datetime.timedelta",
        )
    if isinstance(value, str):
        text = value.strip().lower()
        match = _DURATION.fullmatch(text) if text else None
        if match is None or not any(match.groupdict().values()):
            raise InvalidConfigError(
                field,
                "must be a duration with a unit such as '90s', '30m', '2h', '1d' or '1h30m' "
                f"(whole numbers, largest unit first), got {value!r}",
            )
        parts = {k: int(v) if v else 0 for k, v in match.groupdict().items()}
        total = ((parts["d"] * 24 + parts["h"]) * 60 + parts["m"]) * 60 + parts["s"]
        if total > _LONGEST.total_seconds():
            raise InvalidConfigError(
                field, f"is too long ({value!r}); the longest accepted is {_LONGEST.days} days"
            )
        result = timedelta(seconds=total)
    elif isinstance(value, timedelta):
        result = value
    else:
        raise InvalidConfigError(
            field,
            "must be a datetime.timedelta or a string with a unit such as '30m', "
            f"got {type(value).__name__}",
        )
    if result <= timedelta(0):
        raise InvalidConfigError(field, f"must be positive, got {value!r}")
    if result > _LONGEST:
        raise InvalidConfigError(
            field, f"is too long ({result}); the longest accepted is {_LONGEST.days} days"
        )
    return result


def to_timedelta(value: timedelta | float | int, *, field: str = "timeout") -> timedelta:
    """Convert a timeout given as a :class:`~datetime.timedelta` or a number of seconds.

    Args:
        value: A ``timedelta`` or a non-negative number of seconds.
        field: The argument name, used in the error.

    Returns:
        The value as a ``timedelta``.

    Raises:
        InvalidConfigError: For negative, non-finite or non-numeric values.
    """
    if isinstance(value, timedelta):
        result = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            if not math.isfinite(value):  # an int too large for a float overflows here
                raise InvalidConfigError(
                    field, f"must be a finite number of seconds, got {value!r}"
                )
            result = timedelta(seconds=value)
        except OverflowError:
            raise InvalidConfigError(field, f"is too large, got {value!r}") from None
    else:
        raise InvalidConfigError(
            field, f"must be a datetime.timedelta or a number of seconds, got {value!r}"
        )
    if result < timedelta(0):
        raise InvalidConfigError(field, f"must not be negative, got {value!r}")
    return result


def _freeze(value: Any) -> Any:
    """Deep read-only copy: mappings become ``MappingProxyType``, lists become tuples."""
    if isinstance(value, Mapping):
        return MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value


def _frozen_mapping(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """A deep read-only view of a service record, with every secret value redacted."""
    frozen: Mapping[str, Any] = _freeze(redact(dict(value or {})))
    return frozen


def _secret_mapping(value: Mapping[str, str] | None) -> Mapping[str, str]:
    """A read-only copy of values that are secret on purpose (never shown, never redacted)."""
    frozen: Mapping[str, str] = _freeze(dict(value or {}))
    return frozen


def _optional_frozen_mapping(value: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    return None if value is None else _frozen_mapping(value)


# ----------------------------------------------------------------------------- configuration


@attrs.frozen(kw_only=True)
class Workers:
    """A fixed pool of workers of one type (a worker count and a worker type name).

    Attributes:
        count: How many workers, at least 1.
        type: The service's worker type, e.g. ``"G.1X"``.
    """

    count: int = attrs.field()
    type: str = attrs.field()

    @count.validator
    def _check_count(self, attribute: attrs.Attribute[int], value: int) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise InvalidConfigError("workers", f"count must be a whole number >= 1, got {value!r}")

    @type.validator
    def _check_type(self, attribute: attrs.Attribute[str], value: str) -> None:
        if not isinstance(value, str) or not value:
            raise InvalidConfigError("workers", f"type must be a worker type name, got {value!r}")


def _to_workers(value: Any) -> Any:
    if isinstance(value, tuple) and len(value) == 2:
        return Workers(count=value[0], type=value[1])
    if isinstance(value, Mapping):
        try:
            return Workers(**value)
        except TypeError as exc:
            raise InvalidConfigError("workers", f"expected count= and type=: {exc}") from None
    return value


def _idle_timeout(value: Any) -> timedelta | None:
    return None if value is None else parse_duration(value, field="idle_timeout")


def _max_duration(value: Any) -> timedelta | None:
    return None if value is None else parse_duration(value, field="max_duration")


def _copy_mapping(value: Any) -> Any:
    return dict(value) if isinstance(value, Mapping) else value


def _optional_str(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and (not isinstance(value, str) or not value):
        raise InvalidConfigError(attribute.name, f"must be a non-empty string, got {value!r}")
    if value is not None:
        _printable(attribute.name, "the value", value)


def _printable(field: str, what: str, text: str) -> None:
    """Refuse control characters and lone surrogates (never sent to a service)."""
    for char in text:
        if ord(char) < 32 or ord(char) == 127 or 0xD800 <= ord(char) <= 0xDFFF:
            raise InvalidConfigError(
                field,
                f"{what} contains the control character or lone surrogate U+{ord(char):04X}; "
                "remove it",
            )


def _str_mapping(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, dict):
        raise InvalidConfigError(attribute.name, f"must be a dict of str to str, got {value!r}")
    for key, item in value.items():
        if not isinstance(key, str) or not key:
            raise InvalidConfigError(attribute.name, f"keys must be non-empty strings, got {key!r}")
        if not isinstance(item, str):
            # The value is never echoed: it may be a secret.
            raise InvalidConfigError(
                attribute.name,
                f"value of {_shown_key(key)} must be a string, got {type(item).__name__} "
                "(quote it)",
            )
        _printable(attribute.name, f"the key {_shown_key(key)}", key)
        _printable(attribute.name, f"the value of {_shown_key(key)}", item)


def _shown_key(key: str) -> str:
    """A key as error messages show it (a key that carries a value is redacted)."""
    return repr(redact_text(key))


def _repr_conf(conf: Mapping[str, Any]) -> str:
    return repr(redact_conf(conf))


def _is_bool(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, bool):
        raise InvalidConfigError(attribute.name, f"must be True or False, got {value!r}")


@attrs.frozen(kw_only=True)
class SessionConfig:
    """What to start: the portable fields every backend understands, plus ``options``.

    A field the chosen backend does not support is rejected with
    :class:`~sessionkit.errors.InvalidConfigError` before any call to the service; nothing is
    silently dropped. Durations take a :class:`~datetime.timedelta` or a string with a unit
    (``"90s"``, ``"30m"``, ``"2h"``, ``"1d"``, ``"1h30m"``; a bare number is an error) and are
    rounded *up* to whole minutes where the service counts minutes. Backends that have an idle
    timeout send :data:`DEFAULT_IDLE_TIMEOUT` when ``idle_timeout`` is not set.

    Attributes:
        name: A name for the session (each backend's page says which request field it fills).
        description: Free text describing the session.
        role: The identity the session runs as, in the provider's form (checked by the
            backend): a role's resource name, a service-account e-mail or a proxy user.
        idle_timeout: Stop the session after this long without work.
        max_duration: Stop the session after this long in any case.
        spark_conf: Spark properties, e.g. ``{"spark.sql.shuffle.partitions": "64"}``.
        tags: Resource tags.
        workers: A fixed worker pool, on a backend that sizes sessions by workers.
        max_dpus: Capacity in DPUs (data processing units), on a backend that counts them.
        runtime_version: The engine or runtime version, on a backend that sets it per session.
        client_token: Idempotency token; generated once per ``open_session`` if absent.
        spark_connect: The session must serve a Spark Connect endpoint (a backend asks for a
            Spark Connect session type, checks that its location's engine offers one, or
            accepts it when every session serves one).
        options: The service's own request keys, merged into the request as given; a key
            whose value is ``None`` counts as not given.
        sessionkit_tags: Tag the session with ``sessionkit:created-by`` and
            ``sessionkit:expires-at`` (for ``sweep_sessions``); ``False`` leaves them off. The
            ``sessionkit:start-token`` tag that proves a session is this start's stays where a
            backend needs it for ownership (one whose start has no other proof).
    """

    name: str | None = attrs.field(default=None, validator=_optional_str)
    description: str | None = attrs.field(default=None, validator=_optional_str)
    role: str | None = attrs.field(default=None, validator=_optional_str)
    idle_timeout: timedelta | None = attrs.field(default=None, converter=_idle_timeout)
    max_duration: timedelta | None = attrs.field(default=None, converter=_max_duration)
    spark_conf: dict[str, str] = attrs.field(
        factory=dict, converter=_copy_mapping, validator=_str_mapping, repr=_repr_conf
    )
    tags: dict[str, str] = attrs.field(
        factory=dict, converter=_copy_mapping, validator=_str_mapping, repr=_repr_conf
    )
    workers: Workers | None = attrs.field(default=None, converter=_to_workers)
    max_dpus: float | None = attrs.field(default=None)
    runtime_version: str | None = attrs.field(default=None, validator=_optional_str)
    client_token: str | None = attrs.field(default=None, validator=_optional_str, repr=False)
    spark_connect: bool = attrs.field(default=False, validator=_is_bool)
    options: dict[str, Any] = attrs.field(factory=dict, converter=_copy_mapping, repr=_repr_conf)
    sessionkit_tags: bool = attrs.field(default=True, validator=_is_bool)

    @workers.validator
    def _check_workers(self, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is not None and not isinstance(value, Workers):
            raise InvalidConfigError(
                "workers", f"must be Workers(count=..., type=...) or (count, type), got {value!r}"
            )

    @max_dpus.validator
    def _check_max_dpus(self, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is None:
            return
        try:
            finite = (
                not isinstance(value, bool)
                and isinstance(value, (int, float))
                and math.isfinite(float(value))
            )
        except OverflowError:
            finite = False
        if not finite or value <= 0:
            raise InvalidConfigError(
                "max_dpus", f"must be a positive, finite number of DPUs, got {value!r}"
            )
        if self.workers is not None:
            raise InvalidConfigError(
                "max_dpus", "cannot be combined with workers: give either max_dpus or workers"
            )

    @options.validator
    def _check_options(self, attribute: attrs.Attribute[Any], value: Any) -> None:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise InvalidConfigError("options", f"must be a dict keyed by str, got {value!r}")

    def given(self) -> dict[str, Any]:
        """Return the portable fields that were set (not ``None``, empty or ``False``).

        Returns:
            Field name to value, for the fields a backend has to translate.
        """
        return {
            a.name: getattr(self, a.name)
            for a in attrs.fields(SessionConfig)
            if getattr(self, a.name) not in (None, {}, False)
            and a.name not in ("options", "sessionkit_tags")
        }


# ----------------------------------------------------------------------------- results


def _aware(value: datetime | None) -> datetime | None:
    """Make timestamps timezone-aware, in UTC (some SDKs parse them into local time)."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


@attrs.frozen(kw_only=True)
class Usage:
    """Resources a session consumed, as far as the service reports them (every field optional).

    Attributes:
        dpu_seconds: DPU-seconds (data processing units times seconds).
        vcpu_hours: vCPU-hours.
        memory_gb_hours: GB-hours of memory.
        storage_gb_hours: GB-hours of storage.
        billed: What was billed, in the same units, where the service says.
        execution_seconds: Wall-clock run time.
        dcu_seconds: Data Compute Unit seconds.
        shuffle_storage_gb_seconds: Shuffle storage GB-seconds.

    Each backend's page says which of its service's figures fill which field.
    """

    dpu_seconds: float | None = None
    vcpu_hours: float | None = None
    memory_gb_hours: float | None = None
    storage_gb_hours: float | None = None
    billed: Usage | None = None
    execution_seconds: float | None = None
    dcu_seconds: float | None = None
    shuffle_storage_gb_seconds: float | None = None


@attrs.frozen(kw_only=True)
class SessionInfo:
    """A snapshot of a session as the service last described it.

    Attributes:
        id: The session id.
        backend: The backend name, as given to ``open_session``.
        state: The common state.
        native_state: The service's own state string.
        reason: The service's explanation of the state (its error message or state
            details).
        name: The session's name, where the service keeps one.
        created_at: When the session was created (timezone-aware).
        started_at: When it became ready.
        ended_at: When it ended.
        idle_since: Since when it has been idle.
        idle_timeout: The idle timeout in force.
        arn: The session's Amazon Resource Name, where the service returns one.
        resource_name: The service's full name for the session (a resource name, a resource
            path or the session's URL; each backend's page says which); defaults to
            :attr:`arn`.
        progress: The service's own start-up progress, 0..1, where it reports one, else
            ``None``.
        tags: The session's tags (read-only), or ``None`` when the answer did not carry them
            (list summaries often do not; ``sweep_sessions`` looks them up).
        usage: Resources consumed so far.
        raw: The service's own record, as a deep read-only view with every secret value
            (tokens, secret Spark properties) replaced by ``***``.
    """

    id: str
    backend: str
    state: SessionState
    native_state: str
    reason: str | None = None
    name: str | None = None
    created_at: datetime | None = attrs.field(default=None, converter=_aware)
    started_at: datetime | None = attrs.field(default=None, converter=_aware)
    ended_at: datetime | None = attrs.field(default=None, converter=_aware)
    idle_since: datetime | None = attrs.field(default=None, converter=_aware)
    idle_timeout: timedelta | None = None
    arn: str | None = None
    resource_name: str | None = attrs.field(
        default=attrs.Factory(lambda self: self.arn, takes_self=True)
    )
    progress: float | None = None
    tags: Mapping[str, str] | None = attrs.field(
        default=None, converter=_optional_frozen_mapping, eq=False, hash=False
    )
    usage: Usage = attrs.field(factory=Usage)
    raw: Mapping[str, Any] = attrs.field(
        factory=dict, converter=_frozen_mapping, repr=False, eq=False, hash=False
    )


@attrs.frozen(kw_only=True)
class Progress:
    """What a wait saw change, given to an ``on_progress`` callback.

    Attributes:
        state: The common state: a :class:`~sessionkit.SessionState` while waiting on a
            session, a :class:`~sessionkit.StatementState` in :meth:`Session.run`.
        native_state: The service's own state string.
        elapsed: Seconds since the wait began, on the poll policy's clock.
        progress: The service's own progress, 0..1, where it reports one, else ``None``.
        statement_id: The statement's id in :meth:`Session.run`, else ``None``.
        session_id: The session's id.
    """

    state: SessionState | StatementState
    native_state: str
    elapsed: float
    progress: float | None = None
    statement_id: str | None = None
    session_id: str | None = None


@attrs.frozen(kw_only=True)
class StatementResult:
    """The outcome of code run in a session.

    Attributes:
        id: The statement's (or calculation's) id.
        state: The common statement state.
        output: The text the code printed or returned, or ``None`` when unavailable.
        error_name: The exception's type name when the code failed.
        error_value: The exception's message when the code failed.
        traceback: The traceback lines when the code failed.
        started_at: When execution started.
        completed_at: When execution ended.
        progress: The service's own progress, 0..1, where it reports one.
        raw: The service's own record, read-only.
    """

    id: str
    state: StatementState
    output: str | None = None
    error_name: str | None = None
    error_value: str | None = None
    traceback: list[str] = attrs.field(factory=list, converter=list)
    started_at: datetime | None = attrs.field(default=None, converter=_aware)
    completed_at: datetime | None = attrs.field(default=None, converter=_aware)
    progress: float | None = None
    raw: Mapping[str, Any] = attrs.field(
        factory=dict, converter=_frozen_mapping, repr=False, eq=False, hash=False
    )


#: Hosts where only a local stand-in (the emulator) can listen: nothing there has a TLS
#: certificate, so a recipe's ``use_ssl=true`` is left out for them.
_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def _endpoint_address(url: str) -> tuple[str, str]:
    """``(host, "sc://host:port")`` of an endpoint URL; the port defaults to 443."""
    parts = urlsplit(url if "://" in url else f"//{url}")
    host = parts.hostname or ""
    port = parts.port or 443
    # The host as the service wrote it (hostname lower-cases it): the recipe string is exact.
    written = parts.netloc.rpartition("@")[2]
    shown = written[: len(written) - len(f":{parts.port}")] if parts.port else written
    return host, f"sc://{shown}:{port}"


@attrs.frozen(kw_only=True)
class Endpoint:
    """A Spark Connect endpoint of a session, with its short-lived auth token.

    The token and the headers are never part of ``repr`` or ``str``; read them from
    :attr:`token` and :attr:`headers`, or use :attr:`spark_connect_url`.

    Attributes:
        url: The endpoint URL as the service gives it (``sc://...`` or ``https://...``).
        token: The auth token (secret).
        headers: The gRPC metadata a Spark Connect client must send on every call, the current
            token included (secret); empty where the token goes as PySpark's ``token=``.
        expires_at: When the token expires (timezone-aware), or ``None`` if the service says not.
        recipe: The backend's template of :attr:`spark_connect_url`, with the placeholders
            ``{address}`` (``sc://host:port``, port 443 unless the URL names one), ``{token}``,
            ``{token_quoted}`` (URL-encoded) and ``{url}`` (:attr:`url` as given); ``None`` for
            the generic ``token=`` form.
    """

    url: str
    token: str | None = attrs.field(default=None, repr=False)
    headers: Mapping[str, str] = attrs.field(
        factory=dict, converter=_secret_mapping, repr=False, eq=False, hash=False
    )
    expires_at: datetime | None = attrs.field(default=None, converter=_aware)
    recipe: str | None = attrs.field(default=None, repr=False)

    def __str__(self) -> str:
        return repr(self)

    @property
    def spark_connect_url(self) -> str:
        """The ``sc://host:port/;param=...`` string a PySpark Spark Connect client takes.

        Built with the backend's :attr:`recipe` (DESIGN section 9); without one, the token goes
        as ``token=``. On a loopback host (the emulator) ``use_ssl=true`` is left out, since no
        certificate can exist there. The token is included, so treat the value as a secret.
        """
        if self.recipe is not None:
            host, address = _endpoint_address(self.url)
            token = self.token or ""
            url = self.recipe.format(
                address=address, token=token, token_quoted=quote(token, ""), url=self.url
            )
            if host in _LOOPBACK_HOSTS:
                url = url.replace(";use_ssl=true", "")
            return url
        parts = urlsplit(self.url)
        if parts.scheme == "sc":
            base = self.url.rstrip("/") if ";" not in self.url else self.url
        else:
            port = parts.port or (443 if parts.scheme == "https" else 80)
            base = f"sc://{parts.hostname}:{port}"
            if parts.scheme == "https":
                base += "/;use_ssl=true"
        params = [p for p in base.split(";")[1:] if p]
        head = base.split(";")[0].rstrip("/")
        if self.token and not any(p.startswith("token=") for p in params):
            params.append(f"token={self.token}")
        return head + "/" + "".join(f";{p}" for p in params) if params else head

    def expires_within(self, margin: timedelta, *, now: datetime | None = None) -> bool:
        """Tell whether the token expires within ``margin`` from ``now``.

        Args:
            margin: How close to expiry counts as expiring.
            now: The current time (timezone-aware); defaults to the wall clock.

        Returns:
            False when the expiry is unknown.
        """
        if self.expires_at is None:
            return False
        current = now or datetime.now(timezone.utc)
        return self.expires_at - current <= margin

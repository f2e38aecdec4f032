"""What the AWS backends share: clients, error translation, model-driven request checks.

Nothing outside ``sessionkit.backends`` imports this module, so the core never needs boto3.
boto3 and botocore are imported here at module level; this module itself is imported only
when an AWS backend is first used.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import unicodedata
import uuid
import weakref
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, ClassVar

import attrs
import boto3
import botocore.exceptions
from botocore.config import Config
from botocore.model import OperationModel, Shape

from sessionkit._version import __version__
from sessionkit.backends.base import Backend, malformed
from sessionkit.errors import InvalidConfigError, ServiceError, ThrottledError
from sessionkit.models import SessionConfig
from sessionkit.redaction import RedactingFilter, install_log_redaction

__all__ = [
    "CONNECT_TIMEOUT",
    "READ_TIMEOUT",
    "THROTTLING_CODES",
    "TRANSIENT_CODES",
    "AwsBackend",
    "ClientFactory",
    "RedactingFilter",
    "ceil_minutes",
    "check_request",
    "check_shape",
    "client_config",
    "install_log_redaction",
    "new_token",
    "seconds_to_datetime",
    "translate_error",
    "translate_pattern",
]

#: The loggers of boto3 and its stack, whose DEBUG records carry request and response bodies.
_LOG_ROOTS = ("botocore", "boto3", "s3transfer", "urllib3")

logger = logging.getLogger(__name__)

#: Error codes that mean "slow down"; botocore's own retry handler uses the same list.
THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "RequestThrottled",
        "SlowDown",
        "EC2ThrottledException",
    }
)

#: Error codes that are worth retrying although they are not throttling.
TRANSIENT_CODES = frozenset(
    {
        "RequestTimeout",
        "RequestTimeoutException",
        "PriorRequestNotComplete",
        "InternalServiceException",
        "InternalServerException",
        "InternalFailure",
        "InternalError",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "OperationTimeoutException",
        "ConcurrentModificationException",
    }
)

#: The longest connect and read timeouts of the clients sessionkit builds: these are
#: control-plane calls that answer in well under a second when the service is healthy.
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 20.0


def client_config(call_deadline: float | None = None) -> Config:
    """The botocore configuration of the clients sessionkit builds.

    sessionkit retries with its own backoff, budget and deadline (see sessionkit.waiting), so
    botocore makes one attempt per sessionkit attempt. Each attempt's socket timeouts fit at
    least two attempts into the call deadline.

    Args:
        call_deadline: The caller's ``PollPolicy.call_deadline`` in seconds.
    """
    connect, read = CONNECT_TIMEOUT, READ_TIMEOUT
    if call_deadline is not None:
        connect = max(0.1, min(connect, call_deadline / 2))
        read = max(0.1, min(read, call_deadline / 2))
    return Config(
        retries={"mode": "standard", "total_max_attempts": 1},
        user_agent_extra=f"sessionkit/{__version__}",
        connect_timeout=connect,
        read_timeout=read,
    )


_CONNECTION_ERRORS = (
    botocore.exceptions.ConnectionError,
    botocore.exceptions.HTTPClientError,
)


def translate_error(exc: BaseException, *, operation: str) -> BaseException:
    """Turn a botocore exception into the matching sessionkit error.

    Args:
        exc: What botocore raised.
        operation: The operation name, for the message.

    Returns:
        A :class:`ServiceError` (or :class:`ThrottledError`, or :class:`InvalidConfigError` for
        botocore's client-side parameter validation) to raise ``from exc``; any other exception
        is returned unchanged.
    """
    if isinstance(exc, botocore.exceptions.ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code") or "Unknown")
        message = str(error.get("Message") or exc)
        meta = exc.response.get("ResponseMetadata", {})
        request_id = meta.get("RequestId") or None
        status = int(meta.get("HTTPStatusCode") or 0)
        text = f"{operation} failed: {code}: {message}"
        if request_id:
            text += f" (request id {request_id})"
        if code in THROTTLING_CODES or status == 429:
            return ThrottledError(
                text, code=code, request_id=request_id, retryable=True, operation=operation
            )
        retryable = code in TRANSIENT_CODES or status >= 500
        return ServiceError(
            text, code=code, request_id=request_id, retryable=retryable, operation=operation
        )
    if isinstance(exc, _CONNECTION_ERRORS):
        return ServiceError(
            f"{operation} failed: could not reach the service: {exc}",
            code=type(exc).__name__,
            retryable=True,
            operation=operation,
        )
    if isinstance(exc, botocore.exceptions.NoRegionError):
        return InvalidConfigError(
            "region", "no AWS region is set: pass region=... or set AWS_REGION"
        )
    if isinstance(exc, botocore.exceptions.NoCredentialsError):
        return ServiceError(
            f"{operation} failed: no AWS credentials found; configure a profile, environment "
            "variables or pass boto3_session=...",
            code="NoCredentials",
            operation=operation,
        )
    if isinstance(exc, botocore.exceptions.ParamValidationError):
        return InvalidConfigError("options", f"{operation} request rejected by botocore: {exc}")
    return exc


class ClientFactory:
    """Builds and reuses boto3 clients from the connection keywords.

    Clients are cached per boto3 session, service, region and endpoint, so many sessionkit
    sessions in one process share one client (and its connection pool).
    """

    _lock = threading.Lock()
    _default_session: boto3.session.Session | None = None
    _cache: weakref.WeakKeyDictionary[
        boto3.session.Session, dict[tuple[str, str | None, str | None, float | None], Any]
    ] = weakref.WeakKeyDictionary()

    @classmethod
    def client(
        cls,
        service: str,
        *,
        boto3_session: boto3.session.Session | None = None,
        region: str | None = None,
        endpoint_url: str | None = None,
        call_deadline: float | None = None,
    ) -> Any:
        """Return the shared client for ``service``, building it on first use.

        Args:
            service: The boto3 service name, e.g. ``"glue"``.
            boto3_session: The boto3 session to build the client from (default: one shared
                default session).
            region: The AWS region.
            endpoint_url: A custom endpoint.
            call_deadline: The call deadline its socket timeouts must fit (seconds).

        Returns:
            A boto3 client whose botocore retries are off (sessionkit retries).

        Raises:
            InvalidConfigError: When no region is known.
        """
        with cls._lock:
            if boto3_session is None:
                if cls._default_session is None:
                    cls._default_session = boto3.session.Session()
                boto3_session = cls._default_session
            per_session = cls._cache.setdefault(boto3_session, {})
            key = (service, region, endpoint_url, call_deadline)
            if key not in per_session:
                try:
                    per_session[key] = boto3_session.client(
                        service,
                        region_name=region,
                        endpoint_url=endpoint_url,
                        config=client_config(call_deadline),
                    )
                except botocore.exceptions.NoRegionError as exc:
                    raise InvalidConfigError(
                        "region", "no AWS region is set: pass region=... or set AWS_REGION"
                    ) from exc
            return per_session[key]


#: An IAM role ARN in any partition (ASCII digits only: ``\d`` would match other scripts).
_ROLE_ARN = re.compile(r"arn:aws[a-zA-Z0-9-]*:iam::[0-9]{12}:role/[\x21-\x7e]+", re.ASCII)


def _profile_session(profile: str) -> boto3.session.Session:
    """A boto3 session for a named profile of the shared AWS config files."""
    try:
        return boto3.session.Session(profile_name=profile)
    except botocore.exceptions.ProfileNotFound as exc:
        raise InvalidConfigError(
            "profile", f"no AWS profile named {profile!r} in the shared config files"
        ) from exc


def new_token() -> str:
    """Return a fresh idempotency token (a UUID4 hex string, 32 characters)."""
    return uuid.uuid4().hex


def ceil_minutes(value: timedelta) -> int:
    """Whole minutes, rounded up: 90 seconds is 2 minutes, never 1."""
    return max(1, math.ceil(value.total_seconds() / 60 - 1e-9))


# ----------------------------------------------------------------------------- model checks

_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "long": (int,),
    "float": (float, int),
    "double": (float, int),
    "boolean": (bool,),
    "structure": (dict, Mapping),
    "map": (dict, Mapping),
    "list": (list, tuple),
    "timestamp": (datetime, int, float, str),
    "blob": (bytes, bytearray, str),
}


_SURROGATE_PAIR = re.compile(r"\\u(D[89AB][0-9A-F]{2})\\u(D[C-F][0-9A-F]{2})", re.IGNORECASE)
_UNICODE_CLASS = re.compile(r"\[((?:\\p\{[A-Za-z]{1,2}\})+)\]([*+])")
_POSSESSIVE = re.compile(r"(?<!\\)([*+?}])\+")

Matcher = Callable[[str], bool]


def _astral(match: re.Match[str]) -> str:
    high, low = int(match[1], 16), int(match[2], 16)
    return f"\\U{0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00):08X}"


def translate_pattern(pattern: str) -> Matcher | None:
    r"""Turn a model pattern (Java regex syntax) into a full-match test with ASCII semantics.

    Java writes characters beyond the BMP as surrogate pairs (``\uD800\uDC00-\uDBFF\uDFFF``),
    which become ``\U00010000-\U0010FFFF``; possessive quantifiers (``*+``) become greedy ones
    (the same language for a full match); a class of Unicode categories only
    (``[\p{L}\p{N}]*``) is checked with :mod:`unicodedata`. ``\d``, ``\w`` and ``\s`` keep their
    ASCII meaning, as in Java.

    Args:
        pattern: The model's pattern.

    Returns:
        A function telling whether a whole value matches, or ``None`` when the pattern cannot
        be translated (then values are refused, never let through unchecked).
    """
    special = _UNICODE_CLASS.fullmatch(pattern)
    if special:
        categories = tuple(re.findall(r"\\p\{([A-Za-z]{1,2})\}", special[1]))
        minimum = 1 if special[2] == "+" else 0

        def in_categories(value: str) -> bool:
            return len(value) >= minimum and all(
                unicodedata.category(char).startswith(categories) for char in value
            )

        return in_categories
    translated = _POSSESSIVE.sub(r"\1", _SURROGATE_PAIR.sub(_astral, pattern))
    if "\\p{" in translated or "\\P{" in translated:
        return None
    try:
        compiled = re.compile(translated, re.ASCII)
    except re.error:
        return None
    return lambda value: compiled.fullmatch(value) is not None


_PATTERNS: dict[str, Matcher | None] = {}

#: Java's ranges for the model's integer types, where the model states none.
_INT_RANGES = {"integer": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}


def _bad_character(value: str) -> str | None:
    """The first control character (other than tab and newlines) or lone surrogate, if any."""
    for char in value:
        code = ord(char)
        if (code < 32 and char not in "\t\n\r") or code == 127 or 0xD800 <= code <= 0xDFFF:
            return f"U+{code:04X}"
    return None


def check_shape(value: Any, shape: Shape, path: str = "") -> list[tuple[str, str]]:
    """Check ``value`` against a botocore shape, including the limits botocore does not check.

    botocore's own ``ParamValidator`` checks types, required members and ``min``; the services
    also state ``max``, ``pattern`` and ``enum`` in their models, and those are what users trip
    over (75 default arguments on Glue, 480 minutes on Athena). This walks the value once and
    reports every problem.

    Args:
        value: A request or response, as Python values.
        shape: The botocore shape to check against.
        path: Where ``value`` sits (for messages).

    Returns:
        ``(path, problem)`` pairs; empty when the value fits the shape.
    """
    problems: list[tuple[str, str]] = []
    _walk(value, shape, path, problems)
    return problems


def _walk(value: Any, shape: Shape, path: str, problems: list[tuple[str, str]]) -> None:
    kind = shape.type_name
    expected = _TYPES.get(kind)
    if expected is not None and (
        not isinstance(value, expected)
        or (kind in ("integer", "long", "float", "double") and isinstance(value, bool))
    ):
        wanted = "a dict (structure)" if kind in ("structure", "map") else kind
        problems.append((path, f"expected {wanted}, got {type(value).__name__}"))
        return
    meta = shape.metadata
    if kind == "structure":
        for name in getattr(shape, "required_members", []):
            if name not in value:
                problems.append((_join(path, name), "is required"))
        for name, item in value.items():
            member = shape.members.get(name)
            if member is None:
                problems.append((_join(path, name), "is not a member of " + shape.name))
            elif item is not None:
                _walk(item, member, _join(path, name), problems)
        return
    if kind in ("string", "list", "map", "blob"):
        size = len(value)
        if "min" in meta and size < meta["min"]:
            problems.append((path, f"has length {size}, below the minimum {meta['min']}"))
        if "max" in meta and size > meta["max"]:
            problems.append((path, f"has length {size}, above the maximum {meta['max']}"))
    if kind in ("integer", "long", "float", "double"):
        if kind in ("float", "double") and not _finite(value):
            problems.append((path, f"is {value!r}, not a finite number"))
            return
        low, high = _INT_RANGES.get(kind, (None, None))
        low, high = meta.get("min", low), meta.get("max", high)
        if low is not None and value < low:
            problems.append((path, f"is {value}, below the minimum {low}"))
        if high is not None and value > high:
            problems.append((path, f"is {value}, above the maximum {high}"))
    if kind == "string":
        bad = _bad_character(value)
        if bad is not None:
            problems.append((path, f"contains the control character or lone surrogate {bad}"))
            return
        enum = getattr(shape, "enum", None)
        if enum and value not in enum:
            problems.append((path, f"is {value!r}, not one of {', '.join(enum)}"))
        pattern = meta.get("pattern")
        if pattern:
            if pattern not in _PATTERNS:
                _PATTERNS[pattern] = translate_pattern(pattern)
            matches = _PATTERNS[pattern]
            if matches is None:
                # Fail closed: a value that cannot be checked is not sent.
                problems.append((path, f"cannot be checked against the model pattern {pattern}"))
            elif not matches(value):
                # The value is not shown: it may be a secret (a --conf string, say).
                problems.append((path, f"does not match the pattern {pattern}"))
    if kind == "list":
        for index, item in enumerate(value):
            _walk(item, shape.member, f"{path}[{index}]", problems)
    if kind == "map":
        for key, item in value.items():
            _walk(key, shape.key, f"{path} key {key!r}", problems)
            _walk(item, shape.value, _join(path, str(key)), problems)


def _finite(value: float) -> bool:
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _op_name(client: Any, method: str) -> str:
    mapping: Mapping[str, str] = client.meta.method_to_api_mapping
    return mapping[method]


def check_request(
    operation: OperationModel, request: Mapping[str, Any], fields: Mapping[str, str]
) -> None:
    """Check a translated request against the operation's input shape before sending it.

    Args:
        operation: The botocore operation model.
        request: The request parameters.
        fields: Which ``SessionConfig`` field produced each top-level request key; keys not
            listed are blamed on ``options``.

    Raises:
        InvalidConfigError: Naming the field behind the first problem.
    """
    problems = check_shape(dict(request), operation.input_shape)
    if not problems:
        return
    path, problem = problems[0]
    top = re.split(r"[.\[ ]", path, maxsplit=1)[0]
    field = fields.get(top, "options")
    raise InvalidConfigError(
        field, f"{operation.name} parameter {path} {problem} (the service rejects it)"
    )


# ----------------------------------------------------------------------------- backend base


def seconds_to_datetime(value: Any) -> datetime | None:
    """Convert epoch milliseconds (Glue statements send ``long`` millis) or a datetime."""
    if value is None or isinstance(value, datetime):
        return value
    from datetime import timezone

    return datetime.fromtimestamp(float(value) / 1000.0, tz=timezone.utc)


class AwsBackend(Backend):
    """Shared plumbing of the AWS backends: the client, calls with error translation, checks.

    Subclasses set ``service`` (the boto3 service name) and implement the primitives with
    :meth:`_call`.
    """

    service: ClassVar[str]
    connection_fields: ClassVar[tuple[str, ...]] = (
        "client",
        "boto3_session",
        "region",
        "profile",
        "endpoint_url",
    )
    #: The connection keywords that take a plain string, offered as CLI options.
    cli_fields: ClassVar[tuple[str, ...]] = ("region", "profile", "endpoint_url")
    cli_aliases: ClassVar[Mapping[str, str]] = {"boto3_session": "profile", "client": "profile"}
    config_error_codes: ClassVar[frozenset[str]] = frozenset(
        {"NoCredentials", "UnrecognizedClientException", "InvalidClientTokenId", "ExpiredToken"}
    )

    def __init__(
        self,
        *,
        client: Any = None,
        boto3_session: Any = None,
        region: str | None = None,
        profile: str | None = None,
        endpoint_url: str | None = None,
    ) -> None:
        if profile is not None:
            if not isinstance(profile, str) or not profile:
                raise InvalidConfigError("profile", f"must be a profile name, got {profile!r}")
            if boto3_session is not None:
                raise InvalidConfigError(
                    "profile", "give either profile= or boto3_session=, not both"
                )
            boto3_session = _profile_session(profile)
        self._connection = {
            "client": client,
            "boto3_session": boto3_session,
            "region": region,
            "endpoint_url": endpoint_url,
        }
        if client is not None and any(v is not None for v in (boto3_session, region, endpoint_url)):
            raise InvalidConfigError(
                "client", "give either client= or boto3_session=/region=/endpoint_url=, not both"
            )
        self._client: Any = client
        install_log_redaction(_LOG_ROOTS)

    @property
    def client(self) -> Any:
        """The boto3 client, built on first use from the connection keywords."""
        if self._client is None:
            policy = self.poll_policy
            self._client = ClientFactory.client(
                self.service,
                boto3_session=self._connection["boto3_session"],
                region=self._connection["region"],
                endpoint_url=self._connection["endpoint_url"],
                call_deadline=None if policy is None else policy.call_deadline.total_seconds(),
            )
        return self._client

    def attempt_timeout(self) -> float:
        """The longest one attempt can block on a client sessionkit built (0: unknown)."""
        if self._connection["client"] is not None:
            return 0.0
        config = getattr(getattr(self.client, "meta", None), "config", None)
        connect = float(getattr(config, "connect_timeout", 0) or 0)
        read = float(getattr(config, "read_timeout", 0) or 0)
        return connect + read

    def fleet_key(self) -> tuple[Any, ...]:
        """Sessions reached through the same client and location share list calls."""
        return (self.name, id(self.client), *self.location.values())

    def budget_key(self) -> Any:
        """Every sessionkit call through one boto3 client spends from one budget."""
        return self.client

    def transport_attempts(self) -> int:
        """How many attempts botocore makes per call on this client (1 on clients we build).

        An injected client keeps its own retry configuration; botocore's ``standard`` and
        ``adaptive`` modes default to 3 attempts, ``legacy`` to 5.
        """
        retries = getattr(getattr(self.client, "meta", None), "config", None)
        settings = getattr(retries, "retries", None) or {}
        if "total_max_attempts" in settings:
            return max(1, int(settings["total_max_attempts"]))
        if "max_attempts" in settings:
            return max(1, int(settings["max_attempts"]) + 1)
        return 5 if settings.get("mode") == "legacy" else 3

    def check_supported(self, config: SessionConfig) -> None:
        """Reject unsupported fields, and a ``role`` that is not an IAM role ARN."""
        super().check_supported(config)
        if config.role is not None and not _ROLE_ARN.fullmatch(config.role):
            raise InvalidConfigError(
                "role",
                f"the {self.name} backend needs an IAM role ARN like "
                f"'arn:aws:iam::123456789012:role/NAME', got {config.role!r}",
            )

    def _call(self, method: str, **params: Any) -> Any:
        """Call ``client.<method>(**params)`` once, translating botocore errors."""
        try:
            answer = getattr(self.client, method)(**params)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise translate_error(exc, operation=_op_name(self.client, method)) from exc
        if not isinstance(answer, Mapping):
            raise malformed(_op_name(self.client, method), "the answer is not a structure")
        return answer

    def _clean_options(self, method: str, config: SessionConfig) -> SessionConfig:
        """Drop ``None`` options (not given) and check the rest against the request's shape.

        Each option is checked on its own before any translation touches it, so a wrong shape
        (``{"DefaultArguments": 5}``) is an error that blames ``options``, never a ``TypeError``.

        Raises:
            InvalidConfigError: Naming ``options`` and the offending key.
        """
        options = {k: v for k, v in config.options.items() if v is not None}
        shape = self.client.meta.service_model.operation_model(
            _op_name(self.client, method)
        ).input_shape
        for key, value in options.items():
            member = shape.members.get(key)
            if member is None:
                raise InvalidConfigError(
                    "options",
                    f"{key!r} is not a member of {shape.name} "
                    f"(known: {', '.join(sorted(shape.members))})",
                )
            problems = check_shape(value, member, key)
            if problems:
                path, problem = problems[0]
                raise InvalidConfigError("options", f"{path} {problem} (the service rejects it)")
        if options == config.options:
            return config
        return attrs.evolve(config, options=options)

    def _check(self, method: str, request: Mapping[str, Any], fields: Mapping[str, str]) -> None:
        """Check a request against the service model (no call); see :func:`check_request`."""
        model = self.client.meta.service_model.operation_model(_op_name(self.client, method))
        check_request(model, request, fields)

    @staticmethod
    def _caller_chose_token(prepared: Any, option: str) -> bool:
        """Whether the start's idempotency token came from the caller (and may be reused).

        A token sessionkit generated is 128 random bits: a session answering it is this
        start's. A token the caller chose may have started someone else's session.
        """
        config = prepared.config
        return bool(prepared.token in (config.client_token, config.options.get(option)))

    @staticmethod
    def _merge_options(
        request: dict[str, Any], options: Mapping[str, Any], fields: dict[str, str]
    ) -> None:
        """Merge ``options`` into the request; a key the portable fields already set is an error."""
        for key, value in options.items():
            if key in request:
                raise InvalidConfigError(
                    "options",
                    f"{key!r} is already set from the {fields.get(key, 'portable')} field; "
                    "give it once",
                )
            request[key] = value
            fields.setdefault(key, "options")

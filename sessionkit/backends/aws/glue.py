"""AWS Glue interactive sessions.

Reads top to bottom: the state tables, the request translation, the response translation,
and the few calls the backend makes.
"""

from __future__ import annotations

import re
import threading
import uuid
import weakref
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any, ClassVar

from sessionkit.backends.aws.common import (
    AwsBackend,
    ceil_minutes,
    new_token,
    seconds_to_datetime,
)
from sessionkit.backends.base import (
    CREATED_BY_TAG,
    EXPIRES_AT_TAG,
    START_TOKEN_TAG,
    Capabilities,
    PreparedStart,
    idle_timeout_of,
    lifecycle_tags,
    malformed,
)
from sessionkit.errors import InvalidConfigError, NotSupportedError, ServiceError
from sessionkit.models import Endpoint, SessionConfig, SessionInfo, StatementResult, Usage
from sessionkit.redaction import redact_text
from sessionkit.states import SessionState, StatementState, normalize_state
from sessionkit.waiting import ReadyPrior

__all__ = ["GLUE_STATEMENT_STATES", "STATE_MAP", "GlueBackend"]

# ----------------------------------------------------------------------------- states

#: Glue ``Session.Status`` to the common state.
STATE_MAP: Mapping[str, SessionState] = {
    "PROVISIONING": SessionState.STARTING,
    "READY": SessionState.READY,
    "FAILED": SessionState.FAILED,
    "TIMEOUT": SessionState.TIMED_OUT,
    "STOPPING": SessionState.STOPPING,
    "STOPPED": SessionState.STOPPED,
}

#: Glue ``Statement.State`` to the common statement state (``AVAILABLE`` with an ``error``
#: output is FAILED, decided in :meth:`GlueBackend._statement`).
GLUE_STATEMENT_STATES: Mapping[str, StatementState] = {
    "WAITING": StatementState.PENDING,
    "RUNNING": StatementState.RUNNING,
    "AVAILABLE": StatementState.SUCCEEDED,
    "CANCELLING": StatementState.CANCELLING,
    "CANCELLED": StatementState.CANCELLED,
    "ERROR": StatementState.FAILED,
}

#: The command every session runs unless ``options`` says otherwise.
DEFAULT_COMMAND: Mapping[str, str] = {"Name": "glueetl", "PythonVersion": "3"}

#: Which SessionConfig field produced each request key (for error messages).
_FIELDS = {
    "Id": "name",
    "Description": "description",
    "Role": "role",
    "IdleTimeout": "idle_timeout",
    "Timeout": "max_duration",
    "DefaultArguments": "spark_conf",
    "Tags": "tags",
    "NumberOfWorkers": "workers",
    "WorkerType": "workers",
    "MaxCapacity": "max_dpus",
    "GlueVersion": "runtime_version",
    "Command": "options",
    "SessionType": "spark_connect",
}

# ----------------------------------------------------------------------------- requests


#: A Spark property key Glue's ``--conf`` argument can carry unchanged.
_CONF_KEY = re.compile(r"[A-Za-z0-9_.\-:]+", re.ASCII)
#: What would change the meaning of the single ``--conf`` argument: another option.
_OPTION_IN_VALUE = re.compile(r"(^|\s)--", re.ASCII)


def format_conf(spark_conf: Mapping[str, str]) -> str:
    """Format Spark properties as Glue's single ``--conf`` argument: ``k1=v1 --conf k2=v2``.

    Keys and values that would change what the argument means (a value carrying its own
    ``--conf``, a key with ``=`` or spaces, line breaks) are refused, and never echoed.

    Raises:
        InvalidConfigError: Naming ``spark_conf`` and the key.
    """
    for key, value in spark_conf.items():
        shown = repr(redact_text(key))
        if not _CONF_KEY.fullmatch(key):
            raise InvalidConfigError(
                "spark_conf",
                f"the key {shown} cannot be sent in Glue's --conf argument: Spark property "
                "keys there are letters, digits and . _ - : only (no '=', spaces or line breaks)",
            )
        if _OPTION_IN_VALUE.search(value) or any(c in value for c in "\r\n\x00"):
            raise InvalidConfigError(
                "spark_conf",
                f"the value of {shown} would add options of its own to Glue's --conf argument "
                "(it has ' --' or a line break); one key, one value",
            )
    return " --conf ".join(f"{key}={value}" for key, value in spark_conf.items())


def build_create_request(
    config: SessionConfig, *, start_token: str | None = None, now: datetime | None = None
) -> tuple[dict[str, Any], dict[str, str]]:
    """Translate a configuration into a ``CreateSession`` request.

    Args:
        config: The session configuration.
        start_token: The per-start nonce, sent as the ``sessionkit:start-token`` tag.
        now: The wall-clock time for the ``sessionkit:expires-at`` tag.

    Returns:
        The request, and which field produced each request key.

    Raises:
        InvalidConfigError: For a missing role or conflicting fields.
    """
    fields = dict(_FIELDS)
    if config.role is None:
        raise InvalidConfigError(
            "role", "the glue backend needs role=... (the IAM role ARN the session runs as)"
        )
    if config.name is not None and config.client_token is not None:
        raise InvalidConfigError(
            "client_token",
            "on glue the session Id is the idempotency key: give name or client_token, not both",
        )
    if config.client_token is not None:
        session_id = config.client_token
        fields["Id"] = "client_token"
    else:
        session_id = config.name or f"sessionkit-{uuid.uuid4()}"
    options = dict(config.options)
    request: dict[str, Any] = {
        "Id": session_id,
        "Role": config.role,
        "Command": dict(options.pop("Command", None) or DEFAULT_COMMAND),
    }
    if config.description is not None:
        request["Description"] = config.description
    if config.idle_timeout is not None or "IdleTimeout" not in options:
        request["IdleTimeout"] = ceil_minutes(idle_timeout_of(config))
    if config.max_duration is not None:
        request["Timeout"] = ceil_minutes(config.max_duration)
    arguments = dict(options.pop("DefaultArguments", None) or {})
    if config.spark_conf:
        if "--conf" in arguments:
            raise InvalidConfigError(
                "spark_conf",
                "also given as options['DefaultArguments']['--conf']; give Spark properties once",
            )
        arguments["--conf"] = format_conf(config.spark_conf)
    if arguments:
        request["DefaultArguments"] = arguments
        if not config.spark_conf:
            fields["DefaultArguments"] = "options"
    tags = lifecycle_tags(config, start_token=start_token, now=now or datetime.now(timezone.utc))
    if "Tags" in options:
        if config.tags:
            raise InvalidConfigError(
                "options", "'Tags' is already set from the tags field; give tags once"
            )
        # Tags given through options win too, except the ownership nonce.
        tags.update(options.pop("Tags"))
        if start_token is not None:
            tags[START_TOKEN_TAG] = start_token
        fields["Tags"] = "options"
    if tags:
        request["Tags"] = tags
    if config.workers is not None:
        request["NumberOfWorkers"] = config.workers.count
        request["WorkerType"] = config.workers.type
    if config.max_dpus is not None:
        request["MaxCapacity"] = float(config.max_dpus)
    if config.runtime_version is not None:
        request["GlueVersion"] = config.runtime_version
    if config.spark_connect:
        # Only Spark Connect sessions have an endpoint; the default (Livy) serves statements.
        request["SessionType"] = "SPARK_CONNECT"
    AwsBackend._merge_options(request, options, fields)
    return request, fields


# ----------------------------------------------------------------------------- responses


def fraction(value: Any) -> float | None:
    """Glue's ``Progress`` as a fraction 0..1 (the service may count it in percent)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    return max(0.0, min(1.0, value / 100.0 if value > 1 else float(value)))


def session_info(record: Mapping[str, Any]) -> SessionInfo:
    """Translate a Glue ``Session`` record into a :class:`SessionInfo`.

    Glue's records carry no tags (``GetTags`` has them), so ``tags`` stays ``None``.

    Raises:
        ServiceError: For a record without an ``Id`` (a malformed answer).
    """
    if not isinstance(record, Mapping) or not isinstance(record.get("Id"), str):
        raise malformed("glue GetSession", "the session record has no Id")
    native = record.get("Status") or ""
    idle = record.get("IdleTimeout")
    return SessionInfo(
        id=record["Id"],
        backend=GlueBackend.name,
        state=normalize_state(native, STATE_MAP, unknown=SessionState.UNKNOWN, source="glue"),
        native_state=native,
        reason=record.get("ErrorMessage") or None,
        name=record["Id"],
        created_at=record.get("CreatedOn"),
        ended_at=record.get("CompletedOn"),
        idle_timeout=timedelta(minutes=idle) if idle else None,
        progress=fraction(record.get("Progress")),
        usage=Usage(
            dpu_seconds=record.get("DPUSeconds"),
            execution_seconds=record.get("ExecutionTime"),
        ),
        raw=record,
    )


def statement_result(record: Mapping[str, Any]) -> StatementResult:
    """Translate a Glue ``Statement`` record into a :class:`StatementResult`."""
    native = record.get("State") or ""
    state = normalize_state(
        native, GLUE_STATEMENT_STATES, unknown=StatementState.UNKNOWN, source="glue statement"
    )
    output = record.get("Output") or {}
    # The service sends the output status in lower case ("ok", "error").
    if state is StatementState.SUCCEEDED and str(output.get("Status", "")).lower() == "error":
        state = StatementState.FAILED
    return StatementResult(
        id=str(record.get("Id")),
        state=state,
        output=(output.get("Data") or {}).get("TextPlain"),
        error_name=output.get("ErrorName"),
        error_value=output.get("ErrorValue"),
        traceback=list(output.get("Traceback") or []),
        started_at=seconds_to_datetime(record.get("StartedOn")),
        completed_at=seconds_to_datetime(record.get("CompletedOn")),
        progress=fraction(record.get("Progress")),
        raw=record,
    )


# ----------------------------------------------------------------------------- sent tags

#: Per boto3 client, the lifecycle tags of the sessions started through it (session Id to
#: tags), for ``wait_all``'s Tags filter; bounded, the oldest entries go first.
_SENT: weakref.WeakKeyDictionary[Any, dict[str, Mapping[str, str]]] = weakref.WeakKeyDictionary()
_SENT_MAX = 100_000
_SENT_LOCK = threading.Lock()


def _sent_tags(client: Any) -> Mapping[str, Mapping[str, str]]:
    with _SENT_LOCK:
        try:
            return _SENT.get(client) or {}
        except TypeError:  # a client that cannot be weakly referenced: nothing was kept
            return {}


def _remember_tags(client: Any, session_id: str, tags: Any) -> None:
    if not isinstance(tags, Mapping):
        return
    lifecycle = {k: str(tags[k]) for k in (CREATED_BY_TAG, EXPIRES_AT_TAG) if k in tags}
    if len(lifecycle) < 2:
        return
    with _SENT_LOCK:
        try:
            sent = _SENT.setdefault(client, {})
        except TypeError:
            return
        sent[session_id] = lifecycle
        while len(sent) > _SENT_MAX:
            del sent[next(iter(sent))]


# ----------------------------------------------------------------------------- the backend


class GlueBackend(AwsBackend):
    """AWS Glue interactive sessions (boto3 client ``glue``)."""

    name: ClassVar[str] = "glue"
    service: ClassVar[str] = "glue"
    supported_fields: ClassVar[frozenset[str]] = frozenset(
        {
            "name",
            "description",
            "role",
            "idle_timeout",
            "max_duration",
            "spark_conf",
            "tags",
            "workers",
            "max_dpus",
            "runtime_version",
            "client_token",
            "spark_connect",
            "sessionkit_tags",
        }
    )
    state_map: ClassVar[Mapping[str, SessionState]] = STATE_MAP
    capabilities: ClassVar[Capabilities] = Capabilities(
        statements=True, spark_connect=True, delete=True, tags=True
    )
    #: Glue interactive sessions: ready within ~5-60 s.
    ready_prior: ClassVar[ReadyPrior] = ReadyPrior.between(5.0, 60.0)
    #: ``ListSessions`` takes ``MaxResults`` up to 1000 and filters by ``Tags``, not by state.
    list_page_size: ClassVar[int] = 1000
    list_scopes: ClassVar[frozenset[str]] = frozenset({"tags"})

    def prepare_start(self, config: SessionConfig) -> PreparedStart:
        """Translate and check the ``CreateSession`` request; the Id is the idempotency key.

        Every start carries a fresh ``sessionkit:start-token`` tag: a session with this Id is
        adopted (after a lost answer) or stopped (after an interrupted start) only when it
        carries this start's token, so a session someone else named the same is never touched.
        """
        config = self._clean_options("create_session", config)
        start_token = new_token()
        request, fields = build_create_request(config, start_token=start_token, now=self._now())
        self._check("create_session", request, fields)
        return PreparedStart(
            config=config,
            request=request,
            token=request["Id"],
            preflight=False,
            start_token=start_token,
        )

    def _now(self) -> datetime:
        policy = self.poll_policy
        return policy.now() if policy is not None else datetime.now(timezone.utc)

    def _ours(self, prepared: PreparedStart) -> bool:
        """Whether the session named ``prepared.token`` carries this start's token tag."""
        params: dict[str, Any] = {
            "Tags": {START_TOKEN_TAG: str(prepared.start_token)},
            "MaxResults": 1000,
        }
        seen: set[str] = set()
        while True:
            page = self._call("list_sessions", **params)
            if prepared.token in (page.get("Ids") or []):
                return True
            token = page.get("NextToken")
            if not token or token in seen:
                return False
            seen.add(token)
            params["NextToken"] = token

    def _start(self, prepared: PreparedStart, *, attempt: int) -> SessionInfo:
        try:
            response = self._call("create_session", **prepared.request)
        except ServiceError as exc:
            if exc.code not in ("AlreadyExistsException", "IdempotentParameterMismatchException"):
                raise
            # The Id exists. Adopt it only with proof that an earlier attempt of this very
            # start created it (a lost answer); otherwise it is someone else's session.
            if prepared.start_token is not None and self._ours(prepared):
                return self._describe(prepared.token)
            raise ServiceError(
                f"a glue session with Id {prepared.token!r} already exists and was not started "
                "by this open_session; choose another name (nothing was stopped)",
                code=exc.code,
                request_id=exc.request_id,
                operation=exc.operation,
            ) from exc
        _remember_tags(self.client, prepared.token, prepared.request.get("Tags"))
        record = response.get("Session")
        if record and record.get("Id"):
            return session_info(record)
        # Some implementations answer with an empty body; every Glue session starts here.
        return session_info({"Id": prepared.token, "Status": "PROVISIONING"})

    def _abandon(self, prepared: PreparedStart) -> None:
        # The Id is known before the call, so a start whose answer never came can be stopped,
        # but only once the session is proven ours: the Id may be a name someone else holds.
        try:
            if prepared.start_token is not None and not self._ours(prepared):
                return
            self._call("stop_session", Id=prepared.token)
        except ServiceError as exc:
            if exc.retryable:
                raise  # the caller retries: a throttled stop must not leave the session running
            # Otherwise nothing was created, or it is already ending.

    def _describe(self, session_id: str) -> SessionInfo:
        return session_info(self._call("get_session", Id=session_id)["Session"])

    def _stop(self, session_id: str) -> None:
        self._call("stop_session", Id=session_id)

    def _delete(self, session_id: str) -> None:
        self._call("delete_session", Id=session_id)

    def _list_page(
        self, states: frozenset[SessionState] | None, token: str | None
    ) -> tuple[list[SessionInfo], str | None]:
        records, following = self._list_records(states, token)
        return [session_info(r) for r in records], following

    def _list_records(
        self,
        states: frozenset[SessionState] | None,
        token: str | None,
        *,
        created_after: datetime | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> tuple[list[Any], str | None]:
        # Glue cannot filter by state; the caller filters. Pages carry full records.
        params: dict[str, Any] = {"MaxResults": self.list_page_size}
        if tags:
            params["Tags"] = dict(tags)
        if token:
            params["NextToken"] = token
        page = self._call("list_sessions", **params)
        return list(page.get("Sessions") or []), page.get("NextToken") or None

    def _known_tags(self, session_id: str) -> Mapping[str, str] | None:
        # Glue records carry no tags; the lifecycle tags this process sent at the start are
        # known (sessions started together share them, so one Tags filter lists them all).
        return _sent_tags(self.client).get(session_id)

    def _record_id(self, record: Any) -> str:
        return str(record.get("Id", ""))

    def _record_info(self, record: Any) -> SessionInfo:
        return session_info(record)

    def _tags(self, info: SessionInfo) -> Mapping[str, str]:
        # Glue sessions are tagged resources, arn:PARTITION:glue:REGION:ACCOUNT:session/ID; the
        # record names no account, but its role lives in the session's own account.
        role = str(info.raw.get("Role") or "")
        if info.tags is not None or not role.startswith("arn:"):
            return super()._tags(info)
        parts = role.split(":")
        region = self.client.meta.region_name
        arn = f"arn:{parts[1]}:glue:{region}:{parts[4]}:session/{info.id}"
        tags: Mapping[str, str] = self._call("get_tags", ResourceArn=arn).get("Tags") or {}
        return tags

    def _run(self, session_id: str, code: str) -> str:
        answer = self._call("run_statement", SessionId=session_id, Code=code)
        if answer.get("Id") is None:
            raise malformed("glue RunStatement", "the answer has no statement Id")
        return str(answer["Id"])

    def _statement(self, session_id: str, statement_id: str) -> StatementResult:
        record = self._call("get_statement", SessionId=session_id, Id=int(statement_id))
        statement = record.get("Statement")
        if not isinstance(statement, Mapping) or statement.get("Id") is None:
            raise malformed("glue GetStatement", "the answer has no Statement")
        return statement_result(statement)

    def _cancel(self, session_id: str, statement_id: str) -> None:
        self._call("cancel_statement", SessionId=session_id, Id=int(statement_id))

    def _endpoint(self, session_id: str) -> Endpoint:
        try:
            answer = self._call("get_session_endpoint", SessionId=session_id)
        except ServiceError as exc:
            if exc.code == "OperationNotSupportedException":
                raise NotSupportedError(
                    f"glue session {session_id} has no Spark Connect endpoint ({exc.code}): "
                    "open it with spark_connect=True (SessionType SPARK_CONNECT, Glue 5.1+)"
                ) from exc
            raise
        spark_connect = answer["SparkConnect"]
        token = spark_connect.get("AuthToken")
        # DESIGN section 9: Glue's Url is already sc://host; the token goes URL-encoded in the
        # connection string and as x-aws-proxy-auth on every call.
        return Endpoint(
            url=spark_connect["Url"],
            token=token,
            headers={"x-aws-proxy-auth": token} if token else {},
            expires_at=spark_connect.get("AuthTokenExpirationTime"),
            recipe="{address}/;use_ssl=true;x-aws-proxy-auth={token_quoted}",
        )

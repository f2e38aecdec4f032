"""AWS Glue interactive sessions.

Reads top to bottom: the state tables, the request translation, the response translation,
and the few calls the backend makes.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, ClassVar

from sessionkit.backends.aws.common import AwsBackend, ceil_minutes, seconds_to_datetime
from sessionkit.backends.base import PreparedStart
from sessionkit.errors import InvalidConfigError, NotSupportedError, ServiceError
from sessionkit.models import Endpoint, SessionConfig, SessionInfo, StatementResult, Usage
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


def format_conf(spark_conf: Mapping[str, str]) -> str:
    """Format Spark properties as Glue's single ``--conf`` argument: ``k1=v1 --conf k2=v2``."""
    return " --conf ".join(f"{key}={value}" for key, value in spark_conf.items())


def build_create_request(config: SessionConfig) -> tuple[dict[str, Any], dict[str, str]]:
    """Translate a configuration into a ``CreateSession`` request.

    Args:
        config: The session configuration.

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
        "Command": dict(options.pop("Command", DEFAULT_COMMAND)),
    }
    if config.description is not None:
        request["Description"] = config.description
    if config.idle_timeout is not None:
        request["IdleTimeout"] = ceil_minutes(config.idle_timeout)
    if config.max_duration is not None:
        request["Timeout"] = ceil_minutes(config.max_duration)
    arguments = dict(options.pop("DefaultArguments", {}))
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
    if config.tags:
        request["Tags"] = dict(config.tags)
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


def session_info(record: Mapping[str, Any]) -> SessionInfo:
    """Translate a Glue ``Session`` record into a :class:`SessionInfo`."""
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
        raw=record,
    )


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
        }
    )
    state_map: ClassVar[Mapping[str, SessionState]] = STATE_MAP
    #: Glue interactive sessions: ready within ~5-60 s.
    ready_prior: ClassVar[ReadyPrior] = ReadyPrior.between(5.0, 60.0)

    def prepare_start(self, config: SessionConfig) -> PreparedStart:
        """Translate and check the ``CreateSession`` request; the Id is the idempotency key."""
        request, fields = build_create_request(config)
        self._check("create_session", request, fields)
        return PreparedStart(config=config, request=request, token=request["Id"], preflight=False)

    def _start(self, prepared: PreparedStart, *, attempt: int) -> SessionInfo:
        try:
            response = self._call("create_session", **prepared.request)
        except ServiceError as exc:
            # A retry meeting its own Id: an earlier attempt landed, so adopt that session.
            if attempt > 1 and exc.code in (
                "AlreadyExistsException",
                "IdempotentParameterMismatchException",
            ):
                return self._describe(prepared.token)
            raise
        record = response.get("Session")
        if record and record.get("Id"):
            return session_info(record)
        # Some implementations answer with an empty body; every Glue session starts here.
        return session_info({"Id": prepared.token, "Status": "PROVISIONING"})

    def _abandon(self, prepared: PreparedStart) -> None:
        # The Id is known before the call, so a start whose answer never came can be stopped.
        try:
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
        self, states: frozenset[SessionState] | None, token: str | None
    ) -> tuple[list[Any], str | None]:
        # Glue cannot filter by state; the caller filters. Pages carry full records.
        params: dict[str, Any] = {"MaxResults": 1000}
        if token:
            params["NextToken"] = token
        page = self._call("list_sessions", **params)
        return list(page.get("Sessions") or []), page.get("NextToken") or None

    def _record_id(self, record: Any) -> str:
        return str(record.get("Id", ""))

    def _record_info(self, record: Any) -> SessionInfo:
        return session_info(record)

    def _run(self, session_id: str, code: str) -> str:
        return str(self._call("run_statement", SessionId=session_id, Code=code)["Id"])

    def _statement(self, session_id: str, statement_id: str) -> StatementResult:
        record = self._call("get_statement", SessionId=session_id, Id=int(statement_id))
        return statement_result(record["Statement"])

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
        return Endpoint(
            url=spark_connect["Url"],
            token=spark_connect.get("AuthToken"),
            expires_at=spark_connect.get("AuthTokenExpirationTime"),
        )

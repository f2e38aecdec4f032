"""Amazon Athena for Apache Spark sessions and calculations.

Reads top to bottom: the state tables, the request translation, the response translation,
and the few calls the backend makes.

Athena keeps Spark sessions in a *work group* (the location, ``work_group=``). Two Spark engines
exist and they differ in what a session offers: work groups on "PySpark engine version 3" run
code through the calculation API (:meth:`Session.run`), work groups on "Apache Spark version 3.5"
serve Spark Connect endpoints (:meth:`Session.endpoint`) and have no calculation API. SQL work
groups ("Athena engine version N") cannot start sessions at all; the pre-flight says so.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any, ClassVar
from urllib.parse import urlsplit

import boto3
import botocore.exceptions
from botocore.config import Config

from sessionkit.backends.aws.common import AwsBackend, ceil_minutes, check_shape, new_token
from sessionkit.backends.base import (
    Capabilities,
    PreparedStart,
    idle_timeout_of,
    lifecycle_tags,
    malformed,
    native_states,
)
from sessionkit.errors import InvalidConfigError, NotSupportedError, ServiceError
from sessionkit.models import Endpoint, SessionConfig, SessionInfo, StatementResult, Usage
from sessionkit.states import SessionState, StatementState, normalize_state
from sessionkit.waiting import ReadyPrior

__all__ = [
    "CALCULATION_STATES",
    "ENGINE_DEFAULTS",
    "NOTEBOOK_VERSION",
    "STATE_MAP",
    "AthenaBackend",
    "build_start_request",
    "calculation_result",
    "is_spark_engine",
    "parse_error",
    "session_info",
]

logger = logging.getLogger(__name__)

# ----------------------------------------------------------------------------- states

#: Athena ``SessionState`` to the common state.
STATE_MAP: Mapping[str, SessionState] = {
    "CREATING": SessionState.STARTING,
    "CREATED": SessionState.STARTING,
    "IDLE": SessionState.READY,
    "BUSY": SessionState.BUSY,
    "DEGRADED": SessionState.DEGRADED,
    "TERMINATING": SessionState.STOPPING,
    "TERMINATED": SessionState.STOPPED,
    "FAILED": SessionState.FAILED,
}

#: Athena ``CalculationExecutionState`` to the common statement state.
CALCULATION_STATES: Mapping[str, StatementState] = {
    "CREATING": StatementState.PENDING,
    "CREATED": StatementState.PENDING,
    "QUEUED": StatementState.PENDING,
    "RUNNING": StatementState.RUNNING,
    "COMPLETED": StatementState.SUCCEEDED,
    "FAILED": StatementState.FAILED,
    "CANCELING": StatementState.CANCELLING,
    "CANCELED": StatementState.CANCELLED,
}

#: The ``EngineConfiguration`` every StartSession sends unless a field or ``options`` says
#: otherwise: one DPU for the coordinator and per executor (the service's documented defaults,
#: and the only sizes its model allows), and at most 20 DPUs at once (the console's default).
ENGINE_DEFAULTS: Mapping[str, int] = {
    "CoordinatorDpuSize": 1,
    "DefaultExecutorDpuSize": 1,
    "MaxConcurrentDpus": 20,
}

#: The only notebook version Athena knows (StartSession ``NotebookVersion``).
NOTEBOOK_VERSION = "Athena notebook version 1"

#: Which SessionConfig field produced each request key (for error messages).
_FIELDS = {
    "WorkGroup": "work_group",
    "Description": "description",
    "ExecutionRole": "role",
    "SessionIdleTimeoutInMinutes": "idle_timeout",
    "Tags": "tags",
    "ClientRequestToken": "client_token",
    "EngineConfiguration": "options",
}

#: Reading calculation output must never hold up run(): short timeouts, one attempt.
_S3_CONFIG = Config(
    connect_timeout=2, read_timeout=5, retries={"mode": "standard", "total_max_attempts": 1}
)

_EXCEPTION_LINE = re.compile(
    r"^([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Warning)): ?(.*)$"
)

# ----------------------------------------------------------------------------- requests


def _engine_configuration(
    config: SessionConfig, given: Any
) -> tuple[dict[str, Any], dict[str, str]]:
    """Build the ``EngineConfiguration``: defaults, then ``options``, then the portable fields."""
    if not isinstance(given, Mapping):
        raise InvalidConfigError(
            "options", f"options['EngineConfiguration'] must be a dict, got {given!r}"
        )
    engine: dict[str, Any] = {**ENGINE_DEFAULTS, **given}
    blame = {key: "options" for key in engine}
    if config.max_dpus is not None:
        if float(config.max_dpus) != int(config.max_dpus):
            raise InvalidConfigError(
                "max_dpus",
                f"athena counts MaxConcurrentDpus in whole DPUs (2..5000), got {config.max_dpus}",
            )
        if "MaxConcurrentDpus" in given:
            raise InvalidConfigError(
                "options",
                "'EngineConfiguration.MaxConcurrentDpus' is already set from the max_dpus field; "
                "give it once",
            )
        engine["MaxConcurrentDpus"] = int(config.max_dpus)
        blame["MaxConcurrentDpus"] = "max_dpus"
    if config.spark_conf:
        if "SparkProperties" in given:
            raise InvalidConfigError(
                "options",
                "'EngineConfiguration.SparkProperties' is already set from the spark_conf field; "
                "give Spark properties once",
            )
        engine["SparkProperties"] = dict(config.spark_conf)
        blame["SparkProperties"] = "spark_conf"
    return engine, blame


def build_start_request(
    config: SessionConfig, work_group: str, *, now: datetime | None = None
) -> tuple[dict[str, Any], dict[str, str], dict[str, str]]:
    """Translate a configuration into a ``StartSession`` request.

    Args:
        config: The session configuration.
        work_group: The work group the session starts in.
        now: The wall-clock time for the ``sessionkit:expires-at`` tag.

    Returns:
        The request, which field produced each request key, and which field produced each
        ``EngineConfiguration`` key.

    Raises:
        InvalidConfigError: For conflicting fields, a fractional ``max_dpus`` or a notebook
            version without a notebook (or the reverse).
    """
    fields = dict(_FIELDS)
    if config.name is not None and config.description is not None:
        raise InvalidConfigError(
            "name",
            "athena keeps a single Description per session, and name is sent as that "
            "Description: give name or description, not both",
        )
    options = dict(config.options)
    engine, engine_fields = _engine_configuration(
        config, options.pop("EngineConfiguration", None) or {}
    )
    request: dict[str, Any] = {
        "WorkGroup": work_group,
        "EngineConfiguration": engine,
        # botocore does not fill this token for StartSession: without it a retried start could
        # create a second session. Made once here, it is the same on every attempt.
        "ClientRequestToken": config.client_token or new_token(),
    }
    if config.name is not None:
        request["Description"] = config.name
        fields["Description"] = "name"
    elif config.description is not None:
        request["Description"] = config.description
    if config.role is not None:
        request["ExecutionRole"] = config.role
    if config.idle_timeout is not None or "SessionIdleTimeoutInMinutes" not in options:
        request["SessionIdleTimeoutInMinutes"] = ceil_minutes(idle_timeout_of(config))
    # Ownership needs no nonce tag here: replaying the ClientRequestToken answers with the
    # session this start created, and a different request with the same token is refused.
    tags = lifecycle_tags(config, start_token=None, now=now or datetime.now(timezone.utc))
    if tags and "Tags" not in options:
        request["Tags"] = [{"Key": key, "Value": value} for key, value in tags.items()]
    elif tags:
        if config.tags:
            raise InvalidConfigError(
                "options", "'Tags' is already set from the tags field; give tags once"
            )
        given = options.pop("Tags")
        named = {str(t.get("Key")) for t in given if isinstance(t, Mapping)}
        request["Tags"] = [
            *({"Key": k, "Value": v} for k, v in tags.items() if k not in named),
            *given,
        ]
        fields["Tags"] = "options"
    AwsBackend._merge_options(request, options, fields)
    _check_notebook(request)
    return request, fields, engine_fields


def _check_notebook(request: Mapping[str, Any]) -> None:
    """A notebook session needs both its version and its id; the service rejects either alone."""
    configs = request["EngineConfiguration"].get("AdditionalConfigs")
    has_id = isinstance(configs, Mapping) and "NotebookId" in configs
    has_version = "NotebookVersion" in request
    if has_id and not has_version:
        raise InvalidConfigError(
            "options",
            "EngineConfiguration.AdditionalConfigs has a NotebookId, so Athena requires "
            f"options['NotebookVersion'] = {NOTEBOOK_VERSION!r} as well",
        )
    if has_version and not has_id:
        raise InvalidConfigError(
            "options",
            "options['NotebookVersion'] needs the notebook it belongs to: add "
            "options['EngineConfiguration']['AdditionalConfigs']['NotebookId'] (programmatic "
            "sessions need neither)",
        )


def is_spark_engine(version: str) -> bool:
    """Tell whether a work group engine version runs Spark sessions.

    "PySpark engine version 3" and "Apache Spark version 3.5" do; "Athena engine version 3"
    (SQL) does not.
    """
    return "spark" in version.lower()


def serves_spark_connect(version: str) -> bool:
    """Tell whether sessions on this engine have a Spark Connect endpoint.

    "Apache Spark version 3.5" work groups do; "PySpark engine version 3" ones serve the
    calculation API instead.
    """
    return version.lower().startswith("apache spark")


# ----------------------------------------------------------------------------- responses


def session_info(record: Mapping[str, Any], session_id: str | None = None) -> SessionInfo:
    """Translate a ``GetSession``/``GetSessionStatus`` answer or a list item into a SessionInfo.

    Args:
        record: The service's record (``GetSessionStatus`` has only the status; that is enough
            for polling, and the other fields stay unset).
        session_id: The id, for answers that may lack it.
    """
    status = record.get("Status") or {}
    native = status.get("State") or ""
    configuration = record.get("SessionConfiguration") or {}
    minutes = configuration.get("SessionIdleTimeoutInMinutes")
    seconds = configuration.get("IdleTimeoutSeconds")
    idle_timeout = (
        timedelta(minutes=minutes) if minutes else timedelta(seconds=seconds) if seconds else None
    )
    millis = (record.get("Statistics") or {}).get("DpuExecutionInMillis")
    return SessionInfo(
        id=record.get("SessionId") or str(session_id),
        backend=AthenaBackend.name,
        state=normalize_state(native, STATE_MAP, unknown=SessionState.UNKNOWN, source="athena"),
        native_state=native,
        reason=status.get("StateChangeReason") or None,
        name=record.get("Description"),
        created_at=status.get("StartDateTime"),
        started_at=status.get("StartDateTime"),
        ended_at=status.get("EndDateTime"),
        idle_since=status.get("IdleSinceDateTime"),
        idle_timeout=idle_timeout,
        usage=Usage(dpu_seconds=millis / 1000 if millis is not None else None),
        raw=record,
    )


def _created_before(record: Mapping[str, Any], moment: datetime) -> bool:
    """Whether a list record's session started before ``moment`` (unknown: not before)."""
    started = (record.get("Status") or {}).get("StartDateTime")
    return isinstance(started, datetime) and started < moment


def parse_error(stderr: str | None, reason: str | None) -> tuple[str | None, str | None, list[str]]:
    """Find the exception name and message of a failed calculation.

    The traceback in the calculation's stderr is the better source; the state change reason is
    what remains when stderr could not be read.

    Returns:
        ``(error_name, error_value, traceback lines)``.
    """
    lines = stderr.splitlines(keepends=True) if stderr else []
    for text in [*reversed([line.strip() for line in lines]), (reason or "").strip()]:
        match = _EXCEPTION_LINE.match(text)
        if match:
            return match.group(1), match.group(2), lines
    return None, reason or (stderr.strip() if stderr else None), lines


def calculation_result(
    record: Mapping[str, Any], *, stdout: str | None = None, stderr: str | None = None
) -> StatementResult:
    """Translate a ``GetCalculationExecution`` answer into a StatementResult.

    Args:
        record: The service's answer (its ``Result`` S3 URIs stay on ``raw``).
        stdout: The calculation's stdout text, if it was read.
        stderr: The calculation's stderr text, if it was read.
    """
    status = record.get("Status") or {}
    native = status.get("State") or ""
    state = normalize_state(
        native, CALCULATION_STATES, unknown=StatementState.UNKNOWN, source="athena calculation"
    )
    error_name = error_value = None
    traceback: list[Any] = []
    if state is StatementState.FAILED:
        error_name, error_value, traceback = parse_error(stderr, status.get("StateChangeReason"))
    return StatementResult(
        id=str(record.get("CalculationExecutionId")),
        state=state,
        output=stdout,
        error_name=error_name,
        error_value=error_value,
        traceback=traceback,
        started_at=status.get("SubmissionDateTime"),
        completed_at=status.get("CompletionDateTime"),
        raw=record,
    )


def _must_have_status(answer: Mapping[str, Any], operation: str) -> Mapping[str, Any]:
    """An answer describing a session must say its state; ``{}`` is not an answer."""
    status = answer.get("Status")
    if not isinstance(status, Mapping) or not status.get("State"):
        raise malformed(f"athena {operation}", "the answer has no Status.State")
    return answer


# ----------------------------------------------------------------------------- the backend


class AthenaBackend(AwsBackend):
    """Amazon Athena for Apache Spark (boto3 client ``athena``).

    Args:
        work_group: The Spark-enabled work group sessions live in (the location).
        s3_client: A boto3 S3 client to read calculation output with; by default one is built
            from ``boto3_session``/``region``/``endpoint_url`` (none when only ``client=`` is
            given).
        client: A ready boto3 Athena client.
        boto3_session: The boto3 session to build clients from.
        region: The AWS region.
        endpoint_url: A custom Athena endpoint.
    """

    name: ClassVar[str] = "athena"
    service: ClassVar[str] = "athena"
    connection_fields: ClassVar[tuple[str, ...]] = (*AwsBackend.connection_fields, "s3_client")
    location_fields: ClassVar[tuple[str, ...]] = ("work_group",)
    # A session id is unique in the account and region: attaching needs no work group.
    attach_location_fields: ClassVar[tuple[str, ...] | None] = ()
    supported_fields: ClassVar[frozenset[str]] = frozenset(
        {
            "name",
            "description",
            "role",
            "idle_timeout",
            "spark_conf",
            "tags",
            "max_dpus",
            "client_token",
            "spark_connect",
            "sessionkit_tags",
        }
    )
    state_map: ClassVar[Mapping[str, SessionState]] = STATE_MAP
    capabilities: ClassVar[Capabilities] = Capabilities(
        statements=True, spark_connect=True, server_side_state_filter=True, tags=True
    )
    cli_fields: ClassVar[tuple[str, ...]] = (*AwsBackend.cli_fields, "work_group")
    #: Athena Spark sessions: ready within ~5-30 s.
    ready_prior: ClassVar[ReadyPrior] = ReadyPrior.between(5.0, 30.0)
    list_filters_states: ClassVar[bool] = True
    #: ``ListSessions`` takes ``MaxResults`` up to 100 and lists newer sessions first, so a
    #: listing of sessions created after a time ends at the first older one.
    list_page_size: ClassVar[int] = 100
    list_scopes: ClassVar[frozenset[str]] = frozenset({"created_after"})
    statement_states: ClassVar[Mapping[str, StatementState]] = CALCULATION_STATES

    def __init__(
        self,
        *,
        work_group: str | None = None,
        s3_client: Any = None,
        **connection: Any,
    ) -> None:
        super().__init__(**connection)
        if work_group is not None and (not isinstance(work_group, str) or not work_group):
            raise InvalidConfigError(
                "work_group", f"must be the name of an Athena work group, got {work_group!r}"
            )
        self.work_group = work_group
        self._s3_client: Any = s3_client
        self._s3_built = s3_client is not None

    def _work_group(self) -> str:
        if self.work_group is None:
            raise InvalidConfigError(
                "work_group", "the athena backend needs work_group=... to start or list sessions"
            )
        return self.work_group

    # -- starting ------------------------------------------------------------------------------

    def prepare_start(self, config: SessionConfig) -> PreparedStart:
        """Translate and check the ``StartSession`` request, with its client token made once."""
        config = self._clean_options("start_session", config)
        policy = self.poll_policy
        request, fields, engine_fields = build_start_request(
            config, self._work_group(), now=policy.now() if policy is not None else None
        )
        operation = self.client.meta.service_model.operation_model("StartSession")
        engine_shape = operation.input_shape.members["EngineConfiguration"]
        for path, problem in check_shape(request["EngineConfiguration"], engine_shape):
            key = re.split(r"[.\[ ]", path, maxsplit=1)[0]
            raise InvalidConfigError(
                engine_fields.get(key, "options"),
                f"StartSession parameter EngineConfiguration.{path} {problem} "
                "(the service rejects it)",
            )
        self._check("start_session", request, fields)
        return PreparedStart(
            config=config, request=request, token=request["ClientRequestToken"], preflight=True
        )

    def _preflight(self, prepared: PreparedStart) -> None:
        """Check that the work group exists, is enabled and runs Spark."""
        name = self._work_group()
        try:
            answer = self._call("get_work_group", WorkGroup=name)
        except ServiceError as exc:
            if exc.code != "InvalidRequestException":
                raise
            raise InvalidConfigError(
                "work_group",
                f"the Athena work group {name!r} does not exist in this account and region "
                f"({exc}); create a Spark-enabled work group or fix the name",
            ) from exc
        group = answer.get("WorkGroup")
        if not group:
            raise InvalidConfigError(
                "work_group",
                f"the Athena work group {name!r} does not exist in this account and region",
            )
        if group.get("State") == "DISABLED":
            raise InvalidConfigError(
                "work_group",
                f"the Athena work group {name!r} is disabled; enable it (aws athena "
                f"update-work-group --work-group {name} --state ENABLED) and try again",
            )
        engine = (group.get("Configuration") or {}).get("EngineVersion") or {}
        version = engine.get("EffectiveEngineVersion") or engine.get("SelectedEngineVersion")
        if version and not is_spark_engine(version):
            raise InvalidConfigError(
                "work_group",
                f"the Athena work group {name!r} runs {version!r}, which is SQL-only: sessions "
                "need a work group created for Apache Spark (engine 'PySpark engine version 3' "
                "or 'Apache Spark version 3.5')",
            )
        if prepared.config.spark_connect and version and not serves_spark_connect(version):
            raise InvalidConfigError(
                "spark_connect",
                f"the Athena work group {name!r} runs {version!r}, whose sessions have no Spark "
                "Connect endpoint: use a work group on 'Apache Spark version 3.5', or drop "
                "spark_connect and run code with session.run()",
            )

    def _start(self, prepared: PreparedStart, *, attempt: int) -> SessionInfo:
        try:
            answer = self._call("start_session", **prepared.request)
        except ServiceError as exc:
            adopted = self._explain_start_error(exc, attempt)
            if adopted is None:
                raise
            return self._describe(adopted)
        session_id = answer.get("SessionId")
        if not isinstance(session_id, str) or not session_id:
            raise malformed("athena StartSession", "the answer has no SessionId")
        native = answer.get("State") or "CREATING"
        return SessionInfo(
            id=session_id,
            backend=self.name,
            state=normalize_state(native, STATE_MAP, unknown=SessionState.UNKNOWN, source="athena"),
            native_state=native,
            name=prepared.request.get("Description"),
            raw=answer,
        )

    def _explain_start_error(self, exc: ServiceError, attempt: int) -> str | None:
        """Turn the start errors users trip over into errors that say what to change.

        Returns:
            The id of a session an earlier attempt of this start created, to adopt; ``None``
            when ``exc`` should be raised as it is.

        Raises:
            InvalidConfigError: For a reused client token or a notebook the service requires.
        """
        text = str(exc)
        if exc.code == "SessionAlreadyExistsException":
            # The service answers a repeated token with the same parameters with the same
            # session (that is how a lost answer is adopted), so this means the token started
            # another request: a session that is not this start's. Never adopt it.
            raise InvalidConfigError(
                "client_token",
                "this ClientRequestToken already started another Athena session with different "
                f"parameters ({text}); omit client_token to get a fresh one, or give a new one",
            ) from exc
        if exc.code == "InvalidRequestException" and "notebook" in text.lower():
            raise InvalidConfigError(
                "options",
                f"Athena asks for a notebook here ({text}); pass options="
                f"{{'NotebookVersion': {NOTEBOOK_VERSION!r}, 'EngineConfiguration': "
                "{'AdditionalConfigs': {'NotebookId': '<notebook id>'}}}, or remove the "
                "NotebookId from AdditionalConfigs",
            ) from exc
        return None

    def _abandon(self, prepared: PreparedStart) -> None:
        # Replaying StartSession with the same ClientRequestToken answers with the session an
        # interrupted attempt created (or starts one, if none landed), which is then terminated,
        # so no session is left running that nobody holds. Retryable errors go to the caller,
        # which retries the whole (idempotent) replay.
        try:
            answer = self._call("start_session", **prepared.request)
            session_id = answer.get("SessionId")
            if not isinstance(session_id, str) or not session_id:
                raise ServiceError(
                    "athena StartSession answered without a SessionId while cleaning up",
                    code="MalformedResponse",
                    retryable=True,
                    operation="StartSession",
                )
            self._stop(session_id)
        except ServiceError as exc:
            if exc.retryable:
                raise
            # Otherwise the token belongs to another request, or the session is ending.

    # -- describing and stopping ------------------------------------------------------------------

    def _describe(self, session_id: str) -> SessionInfo:
        answer = self._call("get_session", SessionId=session_id)
        return session_info(_must_have_status(answer, "GetSession"), session_id)

    def _describe_light(self, session_id: str) -> SessionInfo:
        # GetSessionStatus has the state and reason but no usage: enough while polling.
        answer = self._call("get_session_status", SessionId=session_id)
        return session_info(_must_have_status(answer, "GetSessionStatus"), session_id)

    def _tags(self, info: SessionInfo) -> Mapping[str, str]:
        """Athena keeps a session's tags but answers them nowhere, so none can be read back.

        Raises:
            NotSupportedError: Always: ``GetSession`` and ``ListSessions`` carry no tags, and
                ``ListTagsForResource`` takes work group, data catalog and capacity
                reservation ARNs, not sessions.
        """
        raise NotSupportedError(
            "athena does not answer the tags of a session, so sweep_sessions cannot tell the "
            "sessions sessionkit started from others; stop leaked Athena sessions by id, or "
            "rely on their idle timeout (sessionkit sends one on every start)"
        )

    def _stop(self, session_id: str) -> None:
        # Terminating a session that has already ended succeeds and changes nothing.
        self._call("terminate_session", SessionId=session_id)

    def _list_page(
        self, states: frozenset[SessionState] | None, token: str | None
    ) -> tuple[list[SessionInfo], str | None]:
        params: dict[str, Any] = {
            "WorkGroup": self._work_group(),
            "MaxResults": self.list_page_size,
        }
        if token:
            params["NextToken"] = token
        if states is not None:
            natives = native_states(STATE_MAP, states) or []
            if not natives and SessionState.UNKNOWN not in states:
                return [], None
            # The API filters on one native state only; several are filtered here instead.
            if len(natives) == 1 and SessionState.UNKNOWN not in states:
                params["StateFilter"] = natives[0]
        page = self._call("list_sessions", **params)
        infos = [session_info(record) for record in page.get("Sessions", [])]
        if states is not None:
            infos = [info for info in infos if info.state in states]
        return infos, page.get("NextToken") or None

    def _record_id(self, record: Any) -> str:
        return str(record.get("SessionId", ""))

    def _record_info(self, record: Any) -> SessionInfo:
        return session_info(record)

    def _list_records(
        self,
        states: frozenset[SessionState] | None,
        token: str | None,
        *,
        created_after: datetime | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> tuple[list[Any], str | None]:
        params: dict[str, Any] = {
            "WorkGroup": self._work_group(),
            "MaxResults": self.list_page_size,
        }
        natives: list[str] = []
        if states is not None and SessionState.UNKNOWN not in states:
            natives = native_states(STATE_MAP, states) or []
            if not natives:
                return [], None
        # The API filters on one native state: for several (the fleet asks only for the few
        # sessions still starting), one filtered pass per state, the pass number carried in
        # the token ("<pass>|<the service's token>").
        several = len(natives) > 1
        current = 0
        if several:
            index, _, inner = (token or "0|").partition("|")
            current = int(index)
            params["StateFilter"] = natives[current]
            token = inner or None
        elif natives:
            params["StateFilter"] = natives[0]
        if token:
            params["NextToken"] = token
        page = self._call("list_sessions", **params)
        records = list(page.get("Sessions") or [])
        following = page.get("NextToken") or None
        if created_after is not None:
            # Newer sessions are listed first: the first record created before the cut ends
            # this pass (every later one is older still).
            kept = [r for r in records if not _created_before(r, created_after)]
            if len(kept) < len(records):
                following = None
            records = kept
        if not several:
            return records, following
        if following:
            return records, f"{current}|{following}"
        return records, f"{current + 1}|" if current + 1 < len(natives) else None

    # -- calculations ----------------------------------------------------------------------------

    def _run(self, session_id: str, code: str) -> str:
        try:
            answer = self._call(
                "start_calculation_execution",
                SessionId=session_id,
                CodeBlock=code,
                ClientRequestToken=new_token(),
            )
        except ServiceError as exc:
            if exc.code == "InvalidRequestException":
                self._engine_must_be(session_id, "pyspark", exc)
            raise
        if not answer.get("CalculationExecutionId"):
            raise malformed("athena StartCalculationExecution", "no CalculationExecutionId")
        return str(answer["CalculationExecutionId"])

    def _statement(self, session_id: str, statement_id: str) -> StatementResult:
        record = self._call("get_calculation_execution", CalculationExecutionId=statement_id)
        if not isinstance(record.get("Status"), Mapping) or not record.get(
            "CalculationExecutionId"
        ):
            raise malformed("athena GetCalculationExecution", "no Status or execution id")
        native = (record.get("Status") or {}).get("State")
        stdout = stderr = None
        if native in ("COMPLETED", "FAILED", "CANCELED"):
            result = record.get("Result") or {}
            stdout = self._read_s3(result.get("StdOutS3Uri"))
            if stdout is not None:
                stdout = stdout.rstrip("\n")
            if native == "FAILED":
                stderr = self._read_s3(result.get("StdErrorS3Uri"))
        return calculation_result(record, stdout=stdout, stderr=stderr)

    def _cancel(self, session_id: str, statement_id: str) -> None:
        self._call("stop_calculation_execution", CalculationExecutionId=statement_id)

    def _endpoint(self, session_id: str) -> Endpoint:
        try:
            answer = self._call("get_session_endpoint", SessionId=session_id)
        except ServiceError as exc:
            if exc.code == "InvalidRequestException":
                self._engine_must_be(session_id, "apache spark", exc)
            raise
        token = answer.get("AuthToken")
        # DESIGN section 9: as EMR Serverless (a proxy on 443 in front of port 15002, HTTP/2,
        # the token as x-aws-proxy-auth).
        return Endpoint(
            url=answer["EndpointUrl"],
            token=token,
            headers={"x-aws-proxy-auth": token} if token else {},
            expires_at=answer.get("AuthTokenExpirationTime"),
            recipe=(
                "{address}/;use_ssl=true;x-aws-proxy-port=15002;x-aws-force-h2=true;"
                "x-aws-proxy-auth={token}"
            ),
        )

    def _engine_must_be(self, session_id: str, wanted: str, exc: ServiceError) -> None:
        """Explain a refused calculation or endpoint by the session's engine, if that is why."""
        try:
            engine = str(self._call("get_session", SessionId=session_id).get("EngineVersion", ""))
        except ServiceError:
            return
        if not engine or engine.lower().startswith(wanted):
            return
        if wanted == "pyspark":
            raise NotSupportedError(
                f"athena session {session_id} runs {engine!r}, which has no calculation API; "
                "use session.endpoint() with Spark Connect, or a work group on "
                "'PySpark engine version 3' for session.run()"
            ) from exc
        raise NotSupportedError(
            f"athena session {session_id} runs {engine!r}, which has no Spark Connect endpoint; "
            "use session.run(), or a work group on 'Apache Spark version 3.5' for endpoints"
        ) from exc

    # -- calculation output in S3 ------------------------------------------------------------------

    def _s3(self) -> Any:
        """The S3 client for calculation output, or ``None`` when there is no way to build one."""
        if self._s3_built:
            return self._s3_client
        self._s3_built = True
        if self._connection["client"] is not None:
            # Only an Athena client was injected: its credentials are not ours to reuse.
            return None
        session = self._connection["boto3_session"] or boto3.session.Session()
        try:
            # The same connection as Athena's (DESIGN section 4): a custom endpoint_url (a local
            # stand-in, a gateway) serves S3 too; pass s3_client= where it does not.
            self._s3_client = session.client(
                "s3",
                region_name=self._connection["region"],
                endpoint_url=self._connection["endpoint_url"],
                config=_S3_CONFIG,
            )
        except botocore.exceptions.BotoCoreError as exc:
            logger.warning("cannot read athena calculation output: no S3 client (%s)", exc)
        return self._s3_client

    def _read_s3(self, uri: str | None) -> str | None:
        """Read a small text object; any failure is logged and gives ``None``."""
        if not uri:
            return None
        parts = urlsplit(uri)
        bucket, key = parts.netloc, parts.path.lstrip("/")
        if parts.scheme.lower() != "s3" or not bucket or not key:
            logger.warning("cannot read athena calculation output at %s: not an s3:// URI", uri)
            return None
        client = self._s3()
        if client is None:
            return None
        try:
            body = client.get_object(Bucket=bucket, Key=key)["Body"]
            data: bytes = body.read()
        except Exception as exc:  # output is best effort; the URI stays on raw
            logger.warning("could not read athena calculation output %s: %s", uri, exc)
            return None
        return data.decode("utf-8", errors="replace")

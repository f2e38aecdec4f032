"""The emulated Amazon Athena for Apache Spark: work groups, sessions, calculations (JSON).

Sessions go CREATING, CREATED, IDLE; BUSY while a calculation runs; TERMINATING, TERMINATED
on TerminateSession or after their idle timeout; DEGRADED or FAILED when a test says so.
Calculations run through the same pluggable executor as the emulated Glue statements, and their
stdout and stderr land in the emulated S3, where the service reports them.

Where the public documentation leaves the service's behaviour open, the emulator decides as
follows (sessionkit itself relies on error codes, and on message text only to recognise the
service asking for a notebook):

- A missing work group answers ``InvalidRequestException`` "WorkGroup NAME is not found.", as
  GetWorkGroup does on AWS; StartSession on a disabled or SQL-only work group answers
  ``InvalidRequestException`` too.
- StartSession without a ``ClientRequestToken`` is accepted (programmatic clients that send
  none work on AWS); repeated with the same token and parameters it answers the same session,
  with the same token and other parameters ``SessionAlreadyExistsException``.
- Work groups on "Apache Spark version 3.5" serve Spark Connect endpoints and have no
  calculation API (as Athena's documentation says); work groups on "PySpark engine version 3"
  run calculations and have no endpoint (Spark Connect arrived with 3.5). The other
  combinations answer ``InvalidRequestException``.
- TerminateSession on a session that already ended succeeds and changes nothing (documented).
- A calculation keeps the ``Description`` it was started with; a finished one reports
  ``Result.ResultType`` ``"application/json"`` (a guess: the documentation names the field,
  not its values), next to its stdout, stderr and result locations.
- Each session keeps one interpreter namespace, so a calculation sees what the earlier ones of
  the same session defined, as in an Athena notebook.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, ClassVar

import attrs

from sessionkit.testing.aws.glue import StatementOutcome, python_executor, run_code
from sessionkit.testing.base import EmulatedError, EmulatedService, Script, page

__all__ = [
    "CALCULATION_ENGINE",
    "DEFAULT_WORK_GROUP",
    "SPARK_CONNECT_ENGINE",
    "AthenaService",
    "AthenaTimeline",
]

#: The engine of work groups that run calculations.
CALCULATION_ENGINE = "PySpark engine version 3"
#: The engine of work groups that serve Spark Connect endpoints.
SPARK_CONNECT_ENGINE = "Apache Spark version 3.5"
#: A Spark work group every emulator has from the start (besides the SQL-only ``primary``).
DEFAULT_WORK_GROUP = "spark"

_ALIVE = ("CREATING", "CREATED", "IDLE", "BUSY", "DEGRADED")
_ENDED = ("TERMINATED", "FAILED")
_ENGINE_DEFAULTS = {"CoordinatorDpuSize": 1, "DefaultExecutorDpuSize": 1, "MaxConcurrentDpus": 20}


@attrs.define(kw_only=True)
class AthenaTimeline:
    """How long things take in the emulated Athena, in virtual seconds.

    Attributes:
        creating: From StartSession to CREATED.
        created: From CREATED to IDLE.
        terminating: From TerminateSession to TERMINATED.
        calculation_setup: How long a new calculation stays CREATING.
        calculation: How long each calculation runs.
        cancelling: From StopCalculationExecution to CANCELED.
        default_idle_timeout: Minutes, when the request gives none.
        token_ttl: Lifetime of Spark Connect auth tokens.
    """

    creating: float = 2.0
    created: float = 3.0
    terminating: float = 2.0
    calculation_setup: float = 0.05
    calculation: float = 0.3
    cancelling: float = 0.1
    default_idle_timeout: int = 20
    token_ttl: float = 3600.0


@attrs.define(kw_only=True)
class _WorkGroup:
    name: str
    state: str
    engine: str
    output_location: str
    execution_role: str | None
    created: datetime


@attrs.define(kw_only=True)
class _Calculation:
    id: str
    code: str
    submitted: float
    started: float
    finishes: float
    outcome: StatementOutcome
    working_directory: str
    description: str | None = None
    stopped_at: float | None = None
    stop_state: str = "CANCELED"
    stop_reason: str | None = None

    def state(self, now: float, setup: float, cancelling: float) -> str:
        if self.stopped_at is not None and now >= self.stopped_at:
            if self.stop_state == "CANCELED" and now < self.stopped_at + cancelling:
                return "CANCELING"
            return self.stop_state
        if now < self.submitted + setup:
            return "CREATING"
        if now < self.started:
            return "QUEUED"
        if now < self.finishes:
            return "RUNNING"
        return "FAILED" if self.outcome.error_name else "COMPLETED"

    def active_at(self, now: float) -> bool:
        """Whether the calculation keeps its session BUSY at ``now``."""
        if self.stopped_at is not None and now >= self.stopped_at:
            return False
        return self.submitted <= now < self.finishes

    def ended_at(self) -> float:
        return self.finishes if self.stopped_at is None else min(self.stopped_at, self.finishes)


@attrs.define(kw_only=True)
class _Session:
    id: str
    request: dict[str, Any]
    work_group: _WorkGroup
    engine: dict[str, Any]
    created: float
    ready_at: float
    status: str = "CREATING"
    reason: str | None = None
    ended: float | None = None
    terminate_done: float | None = None
    modified: float = 0.0
    script: Script | None = None
    calculations: list[_Calculation] = attrs.field(factory=list)
    namespace: dict[str, Any] = attrs.field(factory=dict)

    @property
    def idle_minutes(self) -> int:
        return int(self.request["SessionIdleTimeoutInMinutes"])


class AthenaService(EmulatedService):
    """Emulated Athena Spark sessions and calculations.

    Attributes:
        timeline: How long things take (mutable: set fields to change later sessions).
        executor: Runs calculation code; default :func:`~sessionkit.testing.python_executor`.
        endpoint_url: The Spark Connect URL ``GetSessionEndpoint`` reports (default: a fake).
        endpoint_token: The auth token it hands out (default: a new random one each time).
    """

    service: ClassVar[str] = "athena"
    validation_error: ClassVar[str] = "InvalidRequestException"
    throttling_error: ClassVar[str] = "TooManyRequestsException"
    throttling_status: ClassVar[int] = 400
    server_error: ClassVar[str] = "InternalServerException"
    scriptable: ClassVar[tuple[str, ...]] = ("FAILED", "DEGRADED", "TERMINATED")

    def __init__(self, emulator: Any) -> None:
        super().__init__(emulator)
        #: The authenticating Spark Connect proxy tokens are granted on (``Emulator.use_spark``).
        self.spark_proxy: Any = None
        self.timeline = AthenaTimeline()
        self.executor: Callable[..., StatementOutcome] = python_executor
        self._work_groups: dict[str, _WorkGroup] = {}
        self._sessions: dict[str, _Session] = {}
        self._tokens: dict[str, tuple[dict[str, Any], str]] = {}
        self._calculations: dict[str, tuple[_Session, _Calculation]] = {}
        # Every account has the SQL-only "primary" work group; the Spark one is a convenience.
        self.create_work_group("primary", engine="Athena engine version 3")
        self.create_work_group(DEFAULT_WORK_GROUP)

    # -- test controls -------------------------------------------------------------------------

    def create_work_group(
        self,
        name: str,
        *,
        state: str = "ENABLED",
        engine: str = CALCULATION_ENGINE,
        output_location: str | None = None,
        execution_role: str | None = None,
    ) -> str:
        """Create (or replace) a work group.

        Args:
            name: The work group name.
            state: ``"ENABLED"`` or ``"DISABLED"``.
            engine: Its engine version: ``"PySpark engine version 3"`` (calculations),
                ``"Apache Spark version 3.5"`` (Spark Connect) or an SQL engine such as
                ``"Athena engine version 3"``.
            output_location: Where calculation results go (an ``s3://`` prefix).
            execution_role: The work group's default execution role ARN.

        Returns:
            The name.
        """
        if state not in ("ENABLED", "DISABLED"):
            raise ValueError(f"a work group is ENABLED or DISABLED, not {state}")
        location = output_location or f"s3://sessionkit-emulator-athena/{name}/"
        self._work_groups[name] = _WorkGroup(
            name=name,
            state=state,
            engine=engine,
            output_location=location if location.endswith("/") else location + "/",
            execution_role=execution_role,
            created=self.emulator.clock.now(),
        )
        return name

    def set_work_group_state(self, name: str, state: str) -> None:
        """Enable or disable a work group."""
        self._work_group(name).state = state

    def fail(self, session_id: str, reason: str = "Session failed (injected)") -> None:
        """Fail a session now."""
        self._end(self._settle(self._get(session_id)), "FAILED", reason, self.now)

    def degrade(
        self, session_id: str, reason: str = "The session has no healthy coordinators"
    ) -> None:
        """Make a live session DEGRADED now."""
        session = self._settle(self._get(session_id))
        if session.status in _ALIVE:
            session.status, session.reason, session.modified = "DEGRADED", reason, self.now

    def status(self, session_id: str) -> str:
        """The native state of a session now."""
        return self._settle(self._get(session_id)).status

    def alive(self) -> list[str]:
        """Ids of sessions that still hold resources (CREATING to TERMINATING)."""
        return [
            s.id
            for s in self._sessions.values()
            if self._settle(s).status in (*_ALIVE, "TERMINATING")
        ]

    # -- state machine -------------------------------------------------------------------------

    def _work_group(self, name: str) -> _WorkGroup:
        group = self._work_groups.get(name)
        if group is None:
            raise EmulatedError("InvalidRequestException", f"WorkGroup {name} is not found.")
        return group

    def _get(self, session_id: str) -> _Session:
        session = self._sessions.get(session_id)
        if session is None:
            raise EmulatedError("ResourceNotFoundException", f"Session {session_id} not found.")
        return session

    def _end(self, session: _Session, status: str, reason: str | None, at: float) -> None:
        for calculation in session.calculations:
            if calculation.stopped_at is None and calculation.finishes > at:
                # Documented: calculations cut off by the end of their session show as FAILED.
                calculation.stopped_at = at
                calculation.stop_state = "FAILED"
                calculation.stop_reason = "The calculation stopped because its session ended."
        session.status, session.reason, session.ended, session.modified = status, reason, at, at

    def _settle(self, session: _Session) -> _Session:
        """Apply every transition due by now, in time order."""
        now = self.now
        if session.status == "TERMINATING" and session.terminate_done is not None:
            if now >= session.terminate_done:
                self._end(session, "TERMINATED", session.reason, session.terminate_done)
            return session
        if session.status not in _ALIVE:
            return session
        script = session.script
        if script is not None and now >= session.created + script.after:
            at = session.created + script.after
            session.script = None
            if script.state == "DEGRADED":
                session.status, session.reason, session.modified = "DEGRADED", script.reason, at
            else:
                self._end(session, script.state, script.reason, at)
                return session
        if session.status == "DEGRADED":
            return session
        if session.status == "CREATING" and now >= session.created + self.timeline.creating:
            session.status = "CREATED"
            session.modified = session.created + self.timeline.creating
        if session.status == "CREATED" and now >= session.ready_at:
            session.status, session.modified = "IDLE", session.ready_at
        if session.status in ("IDLE", "BUSY"):
            busy = any(c.active_at(now) for c in session.calculations)
            idle_since = self._idle_since(session)
            limit = idle_since + session.idle_minutes * 60.0
            if not busy and now >= limit:
                minutes = session.idle_minutes
                self._end(session, "TERMINATED", f"Session idle for {minutes} minutes", limit)
            else:
                status = "BUSY" if busy else "IDLE"
                if status != session.status:
                    session.status, session.modified = status, now
        return session

    @staticmethod
    def _idle_since(session: _Session) -> float:
        ends = [c.ended_at() for c in session.calculations]
        return max([session.ready_at, *ends])

    def _epoch(self) -> datetime:
        """The wall-clock time of virtual second zero."""
        return self.emulator.clock.now() - timedelta(seconds=self.now)

    def _dpu_millis(self, session: _Session) -> int:
        """The coordinator while the session is up, plus executors while calculations run."""
        end = session.ended if session.ended is not None else self.now
        up = max(0.0, end - session.ready_at) * int(session.engine["CoordinatorDpuSize"])
        executor = int(session.engine["DefaultExecutorDpuSize"])
        ran = sum(
            max(0.0, min(c.ended_at(), end) - c.started) * executor for c in session.calculations
        )
        return round((up + ran) * 1000)

    def _status(self, session: _Session) -> dict[str, Any]:
        self._settle(session)
        epoch = self._epoch()
        status: dict[str, Any] = {
            "StartDateTime": epoch + timedelta(seconds=session.created),
            "LastModifiedDateTime": epoch + timedelta(seconds=session.modified),
            "State": session.status,
        }
        if session.status == "IDLE":
            status["IdleSinceDateTime"] = epoch + timedelta(seconds=self._idle_since(session))
        if session.ended is not None:
            status["EndDateTime"] = epoch + timedelta(seconds=session.ended)
        if session.reason:
            status["StateChangeReason"] = session.reason[:1024]
        return status

    def _record(self, session: _Session) -> dict[str, Any]:
        request = session.request
        group = session.work_group
        configuration: dict[str, Any] = {
            "WorkingDirectory": f"{group.output_location}{session.id}/",
            "IdleTimeoutSeconds": session.idle_minutes * 60,
            "SessionIdleTimeoutInMinutes": session.idle_minutes,
        }
        role = request.get("ExecutionRole") or group.execution_role
        if role:
            configuration["ExecutionRole"] = role
        record: dict[str, Any] = {
            "SessionId": session.id,
            "WorkGroup": group.name,
            "EngineVersion": group.engine,
            "EngineConfiguration": session.engine,
            "SessionConfiguration": configuration,
            "Status": self._status(session),
            "Statistics": {"DpuExecutionInMillis": self._dpu_millis(session)},
        }
        for key in ("Description", "NotebookVersion", "MonitoringConfiguration"):
            if key in request:
                record[key] = request[key]
        return record

    def _summary(self, session: _Session) -> dict[str, Any]:
        summary: dict[str, Any] = {
            "SessionId": session.id,
            "EngineVersion": {
                "SelectedEngineVersion": session.work_group.engine,
                "EffectiveEngineVersion": session.work_group.engine,
            },
            "Status": self._status(session),
        }
        for key in ("Description", "NotebookVersion"):
            if key in session.request:
                summary[key] = session.request[key]
        return summary

    def _new_uuid(self) -> str:
        return str(uuid.UUID(int=self.emulator.rng.getrandbits(128), version=4))

    # -- work groups ---------------------------------------------------------------------------

    def op_get_work_group(self, params: dict[str, Any]) -> dict[str, Any]:
        group = self._work_group(params["WorkGroup"])
        configuration: dict[str, Any] = {
            "ResultConfiguration": {"OutputLocation": group.output_location},
            "EnforceWorkGroupConfiguration": True,
            "PublishCloudWatchMetricsEnabled": False,
            "RequesterPaysEnabled": False,
            "EngineVersion": {
                "SelectedEngineVersion": group.engine,
                "EffectiveEngineVersion": group.engine,
            },
        }
        if group.execution_role:
            configuration["ExecutionRole"] = group.execution_role
        return {
            "WorkGroup": {
                "Name": group.name,
                "State": group.state,
                "Configuration": configuration,
                "Description": "",
                "CreationTime": group.created,
            }
        }

    # -- sessions ------------------------------------------------------------------------------

    def op_start_session(self, params: dict[str, Any]) -> dict[str, Any]:
        token = params.get("ClientRequestToken")
        if token is not None and token in self._tokens:
            earlier, session_id = self._tokens[token]
            if earlier != params:
                raise EmulatedError(
                    "SessionAlreadyExistsException",
                    f"Session {session_id} was started with this ClientRequestToken and "
                    "different parameters.",
                )
            session = self._settle(self._get(session_id))
            return {"SessionId": session.id, "State": session.status}
        group = self._work_group(params["WorkGroup"])
        if group.state != "ENABLED":
            raise EmulatedError("InvalidRequestException", f"WorkGroup {group.name} is disabled.")
        if "spark" not in group.engine.lower():
            raise EmulatedError(
                "InvalidRequestException",
                f"WorkGroup {group.name} is not enabled for Apache Spark ({group.engine}).",
            )
        engine = {**_ENGINE_DEFAULTS, **params["EngineConfiguration"]}
        notebook_id = (engine.get("AdditionalConfigs") or {}).get("NotebookId")
        if notebook_id and "NotebookVersion" not in params:
            raise EmulatedError(
                "InvalidRequestException",
                "NotebookVersion is required when NotebookId is provided.",
            )
        if "NotebookVersion" in params and not notebook_id:
            raise EmulatedError(
                "InvalidRequestException",
                "NotebookId is required when NotebookVersion is provided.",
            )
        now = self.now
        request = dict(params)
        request.setdefault("SessionIdleTimeoutInMinutes", self.timeline.default_idle_timeout)
        session = _Session(
            id=self._new_uuid(),
            request=request,
            work_group=group,
            engine=engine,
            created=now,
            ready_at=now + self.timeline.creating + self.timeline.created,
            modified=now,
        )
        session.script = self._next_script()
        self._sessions[session.id] = session
        if token is not None:
            self._tokens[token] = (dict(params), session.id)
        self._created += 1
        return {"SessionId": session.id, "State": session.status}

    def op_get_session(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._record(self._get(params["SessionId"]))

    def op_get_session_status(self, params: dict[str, Any]) -> dict[str, Any]:
        session = self._get(params["SessionId"])
        return {"SessionId": session.id, "Status": self._status(session)}

    def op_terminate_session(self, params: dict[str, Any]) -> dict[str, Any]:
        session = self._settle(self._get(params["SessionId"]))
        if session.status in _ALIVE:
            now = self.now
            self._end(session, "TERMINATING", "Session was terminated by request", now)
            session.ended = None
            session.terminate_done = now + self.timeline.terminating
        return {"State": session.status}

    def op_list_sessions(self, params: dict[str, Any]) -> dict[str, Any]:
        group = self._work_group(params["WorkGroup"])
        wanted = params.get("StateFilter")
        # Newer sessions are listed first (documented).
        matching = [
            s
            for s in reversed(list(self._sessions.values()))
            if s.work_group is group and (wanted is None or self._settle(s).status == wanted)
        ]
        chunk, token = page(matching, params.get("NextToken"), int(params.get("MaxResults", 100)))
        result: dict[str, Any] = {"Sessions": [self._summary(s) for s in chunk]}
        if token:
            result["NextToken"] = token
        return result

    def op_get_session_endpoint(self, params: dict[str, Any]) -> dict[str, Any]:
        session = self._settle(self._get(params["SessionId"]))
        if session.work_group.engine != SPARK_CONNECT_ENGINE:
            raise EmulatedError(
                "InvalidRequestException",
                f"Spark Connect endpoints are available only for sessions on "
                f"{SPARK_CONNECT_ENGINE}; this session runs {session.work_group.engine}.",
            )
        if session.status not in ("IDLE", "BUSY"):
            raise EmulatedError("InvalidRequestException", f"Session is in {session.status} state.")
        url = self.endpoint_url or f"https://{session.id}.spark-connect.athena.emulator.invalid"
        token, expires = self.auth_token(self.timeline.token_ttl)
        if self.spark_proxy is not None:
            self.spark_proxy.grant(
                token, backend="athena", expires_at=expires, session_id=session.id
            )
        return {
            "EndpointUrl": url,
            "AuthToken": token,
            "AuthTokenExpirationTime": expires,
        }

    # -- calculations --------------------------------------------------------------------------

    def op_start_calculation_execution(self, params: dict[str, Any]) -> dict[str, Any]:
        session = self._settle(self._get(params["SessionId"]))
        if session.work_group.engine == SPARK_CONNECT_ENGINE:
            raise EmulatedError(
                "InvalidRequestException",
                f"Calculations are not supported on {SPARK_CONNECT_ENGINE}.",
            )
        if session.status not in ("IDLE", "BUSY"):
            raise EmulatedError("InvalidRequestException", f"Session is in {session.status} state.")
        code = params.get("CodeBlock") or (params.get("CalculationConfiguration") or {}).get(
            "CodeBlock"
        )
        if not code:
            raise EmulatedError("InvalidRequestException", "CodeBlock is required.")
        now = self.now
        previous = [c.ended_at() for c in session.calculations]
        started = max([now + self.timeline.calculation_setup, *previous])
        calculation_id = self._new_uuid()
        directory = f"{session.work_group.output_location}{session.id}/{calculation_id}/"
        calculation = _Calculation(
            id=calculation_id,
            code=code,
            submitted=now,
            started=started,
            finishes=started + self.timeline.calculation,
            outcome=run_code(self.executor, code, session.namespace),
            working_directory=directory,
            description=params.get("Description"),
        )
        self._store_output(calculation)
        session.calculations.append(calculation)
        self._calculations[calculation_id] = (session, calculation)
        self._settle(session)
        return {"CalculationExecutionId": calculation_id, "State": "CREATING"}

    def _store_output(self, calculation: _Calculation) -> None:
        from sessionkit.testing.aws.s3 import split_s3_uri

        s3 = self.emulator.s3
        bucket, prefix = split_s3_uri(calculation.working_directory)
        outcome = calculation.outcome
        s3.put_object(bucket, prefix + "stdout.txt", outcome.output)
        stderr = "".join(outcome.traceback) if outcome.error_name else ""
        if outcome.error_name and not stderr:
            stderr = f"{outcome.error_name}: {outcome.error_value or ''}\n"
        s3.put_object(bucket, prefix + "stderr.txt", stderr)

    def _calculation(self, params: dict[str, Any]) -> tuple[_Session, _Calculation]:
        found = self._calculations.get(params["CalculationExecutionId"])
        if found is None:
            raise EmulatedError(
                "InvalidRequestException",
                f"Calculation {params['CalculationExecutionId']} is not found.",
            )
        session, calculation = found
        self._settle(session)
        return session, calculation

    def _calculation_status(self, calculation: _Calculation) -> dict[str, Any]:
        now = self.now
        state = calculation.state(now, self.timeline.calculation_setup, self.timeline.cancelling)
        epoch = self._epoch()
        status: dict[str, Any] = {
            "SubmissionDateTime": epoch + timedelta(seconds=calculation.submitted),
            "State": state,
        }
        if state in ("COMPLETED", "FAILED", "CANCELED"):
            status["CompletionDateTime"] = epoch + timedelta(seconds=calculation.ended_at())
        if state == "FAILED":
            outcome = calculation.outcome
            reason = calculation.stop_reason or (
                f"{outcome.error_name}: {outcome.error_value}"
                if outcome.error_value
                else str(outcome.error_name)
            )
            status["StateChangeReason"] = reason[:1024]
        elif state in ("CANCELING", "CANCELED"):
            status["StateChangeReason"] = "The calculation was cancelled by request."
        ran = max(0.0, min(now, calculation.ended_at()) - calculation.started)
        statistics = {"DpuExecutionInMillis": round(ran * 1000), "Progress": state}
        return {"Status": status, "Statistics": statistics}

    def op_get_calculation_execution(self, params: dict[str, Any]) -> dict[str, Any]:
        session, calculation = self._calculation(params)
        record: dict[str, Any] = {
            "CalculationExecutionId": calculation.id,
            "SessionId": session.id,
            "WorkingDirectory": calculation.working_directory,
            **self._calculation_status(calculation),
        }
        if calculation.description is not None:
            record["Description"] = calculation.description
        if record["Status"]["State"] in ("COMPLETED", "FAILED"):
            directory = calculation.working_directory
            record["Result"] = {
                "StdOutS3Uri": directory + "stdout.txt",
                "StdErrorS3Uri": directory + "stderr.txt",
                "ResultS3Uri": directory,
                "ResultType": "application/json",
            }
        return record

    def op_get_calculation_execution_status(self, params: dict[str, Any]) -> dict[str, Any]:
        _, calculation = self._calculation(params)
        return self._calculation_status(calculation)

    def op_stop_calculation_execution(self, params: dict[str, Any]) -> dict[str, Any]:
        session, calculation = self._calculation(params)
        now = self.now
        if calculation.stopped_at is None and now < calculation.finishes:
            calculation.stopped_at = now
            calculation.stop_state = "CANCELED"
            # Calculations queued behind this one move up.
            later = [c for c in session.calculations if c.started >= calculation.finishes]
            freed = calculation.finishes - max(now, calculation.started)
            for other in later:
                other.started = max(other.submitted, other.started - freed)
                other.finishes = other.started + self.timeline.calculation
        state = calculation.state(now, self.timeline.calculation_setup, self.timeline.cancelling)
        return {"State": state}

"""The emulated Amazon EMR Serverless applications and interactive-sessions API (REST-JSON).

The wire (paths, query strings, JSON bodies) is decoded and encoded by
:mod:`sessionkit.testing.emulator`; this module keeps the state: applications, which tests
create with :meth:`EmrServerlessService.create_application`, and the sessions in them, which
move through SUBMITTED, STARTING, STARTED and IDLE on the emulator's virtual clock.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

import attrs

from sessionkit.testing.aws.emr_sessions import ENDED, RUNNING, EmrSessionStates, SparkSession
from sessionkit.testing.base import EmulatedError, page

__all__ = ["EmrServerlessService", "EmrServerlessTimeline"]

_ID_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"

_APPLICATION_STATES = frozenset(
    {"CREATING", "CREATED", "STARTING", "STARTED", "STOPPING", "STOPPED", "TERMINATED"}
)

#: What the service says in ``stateDetails`` (a required, non-empty field) for each state.
_DETAILS = {
    "SUBMITTED": "Session submitted",
    "STARTING": "Session is starting",
    "STARTED": "Session started",
    "IDLE": "Session is idle",
    "BUSY": "Session is running work",
    "TERMINATING": "Session is terminating",
    "TERMINATED": "Session terminated by user request",
    "FAILED": "Session failed",
}


@attrs.define(kw_only=True)
class EmrServerlessTimeline:
    """How long things take in the emulated EMR Serverless, in virtual seconds.

    Attributes:
        submitted: From StartSession (or from the application being STARTED) to STARTING.
        starting: From STARTING to STARTED.
        idle_after: From STARTED (or the end of work) to IDLE when no work runs.
        terminating: From TerminateSession to TERMINATED.
        application_starting: From StartApplication (or an auto-start) to STARTED.
        default_idle_timeout: Minutes, when the request gives none (0: no idle timeout).
        token_ttl: Lifetime of Spark Connect auth tokens.
        vcpus: vCPUs a session holds while it runs (for resource utilization).
        memory_gb: GB of memory a session holds while it runs.
        storage_gb: GB of storage a session holds while it runs.
        billed_minimum: Seconds billed at least once a session has run at all.
    """

    submitted: float = 1.0
    starting: float = 5.0
    idle_after: float = 2.0
    terminating: float = 2.0
    application_starting: float = 10.0
    default_idle_timeout: int = 60
    token_ttl: float = 3600.0
    vcpus: float = 4.0
    memory_gb: float = 16.0
    storage_gb: float = 20.0
    billed_minimum: float = 60.0


@attrs.define(kw_only=True)
class _Application:
    id: str
    name: str
    state: str
    session_enabled: bool
    auto_start: bool
    release_label: str
    type: str
    created: float
    updated: float
    ready_at: float | None = None
    details: str | None = None


@attrs.define(kw_only=True)
class _Session(SparkSession):
    application_id: str


class EmrServerlessService(EmrSessionStates[_Session]):
    """Emulated EMR Serverless: applications, and sessions in them.

    Sessions go SUBMITTED, STARTING, STARTED, then IDLE after ``timeline.idle_after`` with no
    work; :meth:`busy` makes one BUSY for a while (the work a Spark Connect client would send).
    TerminateSession goes through TERMINATING to TERMINATED; an idle timeout ends a session in
    TERMINATED with its reason in ``stateDetails``. Sessions in an application that is not
    STARTED stay SUBMITTED until it is (auto-start starts it on the first StartSession).

    Attributes:
        timeline: How long things take (mutable: set fields to change later sessions).
        endpoint_url: The Spark Connect URL GetSessionEndpoint answers (default: a
            per-session ``https://...emulator.invalid`` address).
        endpoint_token: The auth token it hands out (default: a new random one each time).
    """

    service: ClassVar[str] = "emr-serverless"
    validation_error: ClassVar[str] = "ValidationException"
    throttling_error: ClassVar[str] = "ThrottlingException"
    throttling_status: ClassVar[int] = 429
    server_error: ClassVar[str] = "InternalServerException"
    scriptable: ClassVar[tuple[str, ...]] = ("FAILED", "TERMINATED")
    timeline: EmrServerlessTimeline

    def __init__(self, emulator: Any) -> None:
        super().__init__(emulator)
        #: The authenticating Spark Connect proxy tokens are granted on (``Emulator.use_spark``).
        self.spark_proxy: Any = None
        self.timeline = EmrServerlessTimeline()
        self._applications: dict[str, _Application] = {}
        self._tokens: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {}

    # -- test controls -------------------------------------------------------------------------

    def create_application(
        self,
        name: str = "sessionkit",
        *,
        state: str = "STARTED",
        session_enabled: bool = True,
        auto_start: bool = True,
        release_label: str = "emr-7.13.0",
        type: str = "Spark",
    ) -> str:
        """Create an application directly in ``state`` and return its id.

        Args:
            name: The application name.
            state: Its state now: CREATED, STARTED, STOPPED, TERMINATED, ... (an application
                created STARTING becomes STARTED after ``timeline.application_starting``).
            session_enabled: ``interactiveConfiguration.sessionEnabled``.
            auto_start: ``autoStartConfiguration.enabled``.
            release_label: The EMR release.
            type: The engine, ``"Spark"`` or ``"Hive"``.

        Returns:
            The application id (lower-case letters and digits).
        """
        if state not in _APPLICATION_STATES:
            raise ValueError(
                f"application state must be one of {', '.join(sorted(_APPLICATION_STATES))}"
            )
        now = self.now
        application = _Application(
            id=self.emulator.new_id(16, _ID_ALPHABET),
            name=name,
            state=state,
            session_enabled=session_enabled,
            auto_start=auto_start,
            release_label=release_label,
            type=type,
            created=now,
            updated=now,
            ready_at=now + self.timeline.application_starting if state == "STARTING" else None,
        )
        self._applications[application.id] = application
        return application.id

    def set_application_state(self, application_id: str, state: str) -> None:
        """Put an application in ``state`` now (e.g. STOPPED, to test auto-start)."""
        if state not in _APPLICATION_STATES:
            raise ValueError(
                f"application state must be one of {', '.join(sorted(_APPLICATION_STATES))}"
            )
        application = self._application(application_id)
        application.state = state
        application.updated = self.now
        application.ready_at = (
            self.now + self.timeline.application_starting if state == "STARTING" else None
        )

    def application_state(self, application_id: str) -> str:
        """The state of an application now."""
        return self._settle_application(self._application(application_id)).state

    # -- state machines ------------------------------------------------------------------------

    def _application(self, application_id: str) -> _Application:
        application = self._applications.get(application_id)
        if application is None:
            raise EmulatedError(
                "ResourceNotFoundException", f"Application {application_id} does not exist", 404
            )
        return self._settle_application(application)

    def _settle_application(self, application: _Application) -> _Application:
        if (
            application.state == "STARTING"
            and application.ready_at is not None
            and self.now >= application.ready_at
        ):
            application.state = "STARTED"
            application.updated = application.ready_at
        return application

    def _begin_starting(self, application: _Application) -> None:
        application.state = "STARTING"
        application.updated = self.now
        application.ready_at = self.now + self.timeline.application_starting

    def _get(self, session_id: str) -> _Session:
        return self._session(session_id)

    def _starting_due(self, session: _Session) -> float | None:
        # A session leaves SUBMITTED once its application is STARTED.
        application = self._settle_application(self._applications[session.application_id])
        if application.state != "STARTED":
            return None
        ready = application.updated if application.updated > session.created else 0.0
        return max(session.created, ready) + self.timeline.submitted

    def _idle_minutes(self, session: _Session) -> int:
        return int(session.request.get("idleTimeoutMinutes", self.timeline.default_idle_timeout))

    def _session(self, session_id: str, application_id: str | None = None) -> _Session:
        if application_id is not None:
            self._application(application_id)
        session = self._sessions.get(session_id)
        if session is None or (
            application_id is not None and session.application_id != application_id
        ):
            raise EmulatedError(
                "ResourceNotFoundException", f"Session {session_id} does not exist", 404
            )
        return session

    # -- records -------------------------------------------------------------------------------

    def _application_arn(self, application_id: str) -> str:
        return (
            f"arn:{self._partition()}:emr-serverless:{self.emulator.region}:"
            f"{self.emulator.account_id}:/applications/{application_id}"
        )

    def _session_arn(self, session: _Session) -> str:
        return f"{self._application_arn(session.application_id)}/sessions/{session.id}"

    def _created_by(self) -> str:
        return f"arn:{self._partition()}:iam::{self.emulator.account_id}:user/sessionkit-emulator"

    def _application_record(self, application: _Application) -> dict[str, Any]:
        record: dict[str, Any] = {
            "applicationId": application.id,
            "name": application.name,
            "arn": self._application_arn(application.id),
            "releaseLabel": application.release_label,
            "type": application.type,
            "state": application.state,
            "createdAt": self._time(application.created),
            "updatedAt": self._time(application.updated),
            "autoStartConfiguration": {"enabled": application.auto_start},
            "autoStopConfiguration": {"enabled": True, "idleTimeoutMinutes": 15},
            "architecture": "X86_64",
            "interactiveConfiguration": {
                "studioEnabled": False,
                "livyEndpointEnabled": False,
                "sessionEnabled": application.session_enabled,
            },
        }
        if application.details:
            record["stateDetails"] = application.details
        return record

    def _summary(self, session: _Session) -> dict[str, Any]:
        """The fields ``SessionSummary`` and ``Session`` share."""
        self._settle(session)
        request = session.request
        application = self._applications[session.application_id]
        record: dict[str, Any] = {
            "applicationId": session.application_id,
            "sessionId": session.id,
            "arn": self._session_arn(session),
            "state": session.state,
            "stateDetails": session.reason or _DETAILS[session.state],
            "releaseLabel": application.release_label,
            "executionRoleArn": request["executionRoleArn"],
            "createdBy": self._created_by(),
            "createdAt": self._time(session.created),
            "updatedAt": self._time(session.updated),
        }
        if "name" in request:
            record["name"] = request["name"]
        return record

    def _record(self, session: _Session) -> dict[str, Any]:
        record = self._summary(session)
        request = session.request
        for key in ("configurationOverrides", "tags"):
            if key in request:
                record[key] = request[key]
        record["idleTimeoutMinutes"] = int(
            request.get("idleTimeoutMinutes", self.timeline.default_idle_timeout)
        )
        if session.started_at is not None:
            record["startedAt"] = self._time(session.started_at)
        if session.ended is not None:
            record["endedAt"] = self._time(session.ended)
        if session.state == "IDLE" and session.idle_since is not None:
            record["idleSince"] = self._time(session.idle_since)
        ran = self._running_seconds(session)
        if ran is not None:
            hours = ran / 3600.0
            billed = max(ran, self.timeline.billed_minimum) / 3600.0
            timeline = self.timeline
            record["totalExecutionDurationSeconds"] = int(ran)
            record["totalResourceUtilization"] = {
                "vCPUHour": round(timeline.vcpus * hours, 6),
                "memoryGBHour": round(timeline.memory_gb * hours, 6),
                "storageGBHour": round(timeline.storage_gb * hours, 6),
            }
            record["billedResourceUtilization"] = {
                "vCPUHour": round(timeline.vcpus * billed, 6),
                "memoryGBHour": round(timeline.memory_gb * billed, 6),
                "storageGBHour": round(timeline.storage_gb * billed, 6),
            }
        return record

    def _running_seconds(self, session: _Session) -> float | None:
        if session.started_at is None:
            return None
        end = session.ended if session.ended is not None else self.now
        return max(0.0, end - session.started_at)

    # -- operations: applications ------------------------------------------------------------

    def op_get_application(self, params: dict[str, Any]) -> dict[str, Any]:
        application = self._application(params["applicationId"])
        return {"application": self._application_record(application)}

    def op_start_application(self, params: dict[str, Any]) -> dict[str, Any]:
        application = self._application(params["applicationId"])
        if application.state == "TERMINATED":
            raise EmulatedError(
                "ValidationException",
                f"Application {application.id} is TERMINATED and cannot be started",
            )
        if application.state in ("CREATED", "STOPPED"):
            self._begin_starting(application)
        elif application.state in ("CREATING", "STOPPING"):
            raise EmulatedError(
                "ValidationException",
                f"Application {application.id} is {application.state}; try again later",
            )
        return {}

    # -- operations: sessions ----------------------------------------------------------------

    def op_start_session(self, params: dict[str, Any]) -> dict[str, Any]:
        application = self._application(params["applicationId"])
        request = {k: v for k, v in params.items() if k not in ("applicationId", "clientToken")}
        key = (application.id, params["clientToken"])
        if key in self._tokens:
            session_id, earlier = self._tokens[key]
            if earlier != request:
                raise EmulatedError(
                    "ConflictException",
                    "The client token was already used with different request parameters",
                    409,
                )
            return self._started(self._sessions[session_id])
        if not application.session_enabled:
            raise EmulatedError(
                "ValidationException",
                f"Interactive sessions are not enabled for application {application.id}",
            )
        if application.state == "TERMINATED":
            raise EmulatedError(
                "ValidationException", f"Application {application.id} is TERMINATED"
            )
        if application.state != "STARTED":
            if not application.auto_start or application.state in ("CREATING", "STOPPING"):
                raise EmulatedError(
                    "ConflictException",
                    f"Application {application.id} is {application.state}; it must be STARTED "
                    "or have auto-start enabled",
                    409,
                )
            if application.state in ("CREATED", "STOPPED"):
                self._begin_starting(application)
        now = self.now
        session = _Session(
            id=self.emulator.new_id(16, _ID_ALPHABET),
            application_id=application.id,
            request=request,
            created=now,
            updated=now,
        )
        session.script = self._next_script()
        self._sessions[session.id] = session
        self._tokens[key] = (session.id, request)
        self._created += 1
        return self._started(session)

    def _started(self, session: _Session) -> dict[str, Any]:
        return {
            "applicationId": session.application_id,
            "sessionId": session.id,
            "arn": self._session_arn(session),
        }

    def op_get_session(self, params: dict[str, Any]) -> dict[str, Any]:
        session = self._session(params["sessionId"], params["applicationId"])
        return {"session": self._record(session)}

    def op_terminate_session(self, params: dict[str, Any]) -> dict[str, Any]:
        session = self._settle(self._session(params["sessionId"], params["applicationId"]))
        if session.state in ENDED:
            raise EmulatedError(
                "ValidationException", f"Session {session.id} is already {session.state}"
            )
        self._begin_terminating(session)
        return {"applicationId": session.application_id, "sessionId": session.id}

    def op_list_sessions(self, params: dict[str, Any]) -> dict[str, Any]:
        application = self._application(params["applicationId"])
        states = params.get("states")
        after: datetime | None = params.get("createdAtAfter")
        before: datetime | None = params.get("createdAtBefore")
        wanted = set(states or ())
        matching = []
        for session in self._sessions.values():
            if session.application_id != application.id:
                continue
            self._settle(session)
            if wanted and session.state not in wanted:
                continue
            if after is not None or before is not None:
                created = self._time(session.created)
                if after is not None and created < after:
                    continue
                if before is not None and created > before:
                    continue
            matching.append(session)
        chunk, token = page(matching, params.get("nextToken"), int(params.get("maxResults", 50)))
        result: dict[str, Any] = {"sessions": [self._summary(s) for s in chunk]}
        if token:
            result["nextToken"] = token
        return result

    def op_get_session_endpoint(self, params: dict[str, Any]) -> dict[str, Any]:
        session = self._settle(self._session(params["sessionId"], params["applicationId"]))
        if session.state not in RUNNING:
            raise EmulatedError(
                "ValidationException",
                f"Session {session.id} is {session.state}; its endpoint is available once it "
                "has STARTED",
            )
        url = self.endpoint_url or (
            f"https://{session.id}.{session.application_id}.emr-serverless-sessions."
            f"{self.emulator.region}.emulator.invalid"
        )
        token, expires = self.auth_token(self.timeline.token_ttl)
        if self.spark_proxy is not None:
            self.spark_proxy.grant(
                token, backend="emr-serverless", expires_at=expires, session_id=session.id
            )
        return {
            "applicationId": session.application_id,
            "sessionId": session.id,
            "endpoint": url,
            "authToken": token,
            "authTokenExpiresAt": expires,
        }

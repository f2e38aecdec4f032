"""Amazon EMR Serverless interactive sessions.

Reads top to bottom: the state table, the request translation, the response translation, and
the few calls the backend makes. Sessions live in an application (``application_id``); the
service has no statement API, so code runs through the Spark Connect endpoint
(:meth:`sessionkit.Session.endpoint`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any, ClassVar

from sessionkit.backends.aws.common import AwsBackend, ceil_minutes, check_shape, new_token
from sessionkit.backends.base import (
    START_TOKEN_TAG,
    Capabilities,
    PreparedStart,
    idle_timeout_of,
    lifecycle_tags,
    malformed,
    native_states,
)
from sessionkit.errors import InvalidConfigError, ServiceError
from sessionkit.models import Endpoint, SessionConfig, SessionInfo, Usage
from sessionkit.states import SessionState, normalize_state
from sessionkit.waiting import DEFAULT_POLL, ReadyPrior, poll_until

__all__ = ["STATE_MAP", "TRANSLATION", "EmrServerlessBackend", "build_start_request"]

# ----------------------------------------------------------------------------- states

#: EMR Serverless ``SessionState`` to the common state.
STATE_MAP: Mapping[str, SessionState] = {
    "SUBMITTED": SessionState.PENDING,
    "STARTING": SessionState.STARTING,
    "STARTED": SessionState.READY,
    "IDLE": SessionState.READY,
    "BUSY": SessionState.BUSY,
    "TERMINATING": SessionState.STOPPING,
    "TERMINATED": SessionState.STOPPED,
    "FAILED": SessionState.FAILED,
}

#: Application states in which a session can start once the application has auto-started.
_AUTO_STARTABLE = frozenset({"CREATED", "STOPPED", "STARTING"})
#: Application states from which ``StartApplication`` starts it.
_STARTABLE = frozenset({"CREATED", "STOPPED"})

# ----------------------------------------------------------------------------- requests

#: The SessionConfig field behind each ``StartSession`` key (the docs table mirrors this).
TRANSLATION: Mapping[str, str] = {
    "name": "name",
    "role": "executionRoleArn",
    "idle_timeout": "idleTimeoutMinutes",
    "spark_conf": "configurationOverrides.runtimeConfiguration",
    "tags": "tags",
    "client_token": "clientToken",
    # Every EMR Serverless session serves Spark Connect: nothing to ask for.
    "spark_connect": "(always on)",
    "sessionkit_tags": "tags (sessionkit:created-by, sessionkit:expires-at)",
}

#: Which SessionConfig field (or keyword) produced each request key, for error messages.
_FIELDS = {
    "applicationId": "application_id",
    "clientToken": "client_token",
    "name": "name",
    "executionRoleArn": "role",
    "idleTimeoutMinutes": "idle_timeout",
    "configurationOverrides": "spark_conf",
    "tags": "tags",
}

#: The runtime configuration classification that carries Spark properties.
SPARK_DEFAULTS = "spark-defaults"

_APPLICATION_ID = re.compile(r"[0-9a-z]{1,64}")


def _spark_defaults(spark_conf: Mapping[str, str]) -> dict[str, Any]:
    return {"classification": SPARK_DEFAULTS, "properties": dict(spark_conf)}


def _merge_overrides(overrides: Any, spark_conf: Mapping[str, str]) -> dict[str, Any]:
    """Combine ``options['configurationOverrides']`` with the ``spark_conf`` classification."""
    if not isinstance(overrides, Mapping):
        raise InvalidConfigError(
            "options", f"configurationOverrides must be a dict, got {type(overrides).__name__}"
        )
    merged = dict(overrides)
    if not spark_conf:
        return merged
    runtime = merged.get("runtimeConfiguration", [])
    if not isinstance(runtime, (list, tuple)):
        raise InvalidConfigError(
            "options",
            "configurationOverrides.runtimeConfiguration must be a list of classifications",
        )
    if any(
        isinstance(entry, Mapping) and entry.get("classification") == SPARK_DEFAULTS
        for entry in runtime
    ):
        raise InvalidConfigError(
            "spark_conf",
            "options['configurationOverrides'] already has a spark-defaults classification; "
            "give Spark properties once (spark_conf= or options, not both)",
        )
    merged["runtimeConfiguration"] = [*runtime, _spark_defaults(spark_conf)]
    return merged


def build_start_request(
    config: SessionConfig,
    application_id: str,
    *,
    start_token: str | None = None,
    now: datetime | None = None,
) -> tuple[dict[str, Any], dict[str, str]]:
    """Translate a configuration into a ``StartSession`` request.

    The client token is generated here when the configuration has none, so every retry of the
    start sends the same one and the service starts at most one session.

    Args:
        config: The session configuration.
        application_id: The application to start the session in.
        start_token: The per-start nonce, sent as the ``sessionkit:start-token`` tag.
        now: The wall-clock time for the ``sessionkit:expires-at`` tag.

    Returns:
        The request (``applicationId`` included), and which field produced each request key.

    Raises:
        InvalidConfigError: For a missing role or a field given twice.
    """
    fields = dict(_FIELDS)
    if config.role is None:
        raise InvalidConfigError(
            "role",
            "the emr-serverless backend needs role=... (the execution role ARN the session "
            "runs as)",
        )
    options = dict(config.options)
    token = config.client_token
    if "clientToken" in options:
        if token is not None:
            raise InvalidConfigError(
                "options", "'clientToken' is already set from the client_token field; give it once"
            )
        token = str(options.pop("clientToken"))  # a None option was dropped already
        fields["clientToken"] = "options"
    request: dict[str, Any] = {
        "applicationId": application_id,
        "clientToken": token or new_token(),
        "executionRoleArn": config.role,
    }
    if config.name is not None:
        request["name"] = config.name
    if config.idle_timeout is not None or "idleTimeoutMinutes" not in options:
        request["idleTimeoutMinutes"] = ceil_minutes(idle_timeout_of(config))
    if "configurationOverrides" in options:
        request["configurationOverrides"] = _merge_overrides(
            options.pop("configurationOverrides"), config.spark_conf
        )
        # Problems in the spark-defaults part are found first (see prepare_start), so what is
        # left to blame in a combined value came from options.
        fields["configurationOverrides"] = "options"
    elif config.spark_conf:
        request["configurationOverrides"] = {
            "runtimeConfiguration": [_spark_defaults(config.spark_conf)]
        }
    tags = lifecycle_tags(config, start_token=start_token, now=now or datetime.now(timezone.utc))
    if "tags" in options:
        if config.tags:
            raise InvalidConfigError(
                "options", "'tags' is already set from the tags field; give tags once"
            )
        # Tags given through options win too, except the ownership nonce.
        tags.update(options.pop("tags"))
        if start_token is not None:
            tags[START_TOKEN_TAG] = start_token
        fields["tags"] = "options"
    if tags:
        request["tags"] = tags
    AwsBackend._merge_options(request, options, fields)
    return request, fields


# ----------------------------------------------------------------------------- responses


def _usage(record: Mapping[str, Any]) -> Usage:
    total = record.get("totalResourceUtilization") or {}
    billed = record.get("billedResourceUtilization")
    duration = record.get("totalExecutionDurationSeconds")
    return Usage(
        vcpu_hours=total.get("vCPUHour"),
        memory_gb_hours=total.get("memoryGBHour"),
        storage_gb_hours=total.get("storageGBHour"),
        billed=(
            Usage(
                vcpu_hours=billed.get("vCPUHour"),
                memory_gb_hours=billed.get("memoryGBHour"),
                storage_gb_hours=billed.get("storageGBHour"),
            )
            if billed is not None
            else None
        ),
        execution_seconds=float(duration) if duration is not None else None,
    )


def session_info(record: Mapping[str, Any]) -> SessionInfo:
    """Translate an EMR Serverless ``Session`` (or ``SessionSummary``) into a :class:`SessionInfo`.

    A summary from ``ListSessions`` has no start/end times, idle timeout or usage; those
    fields stay ``None`` until the session is described.
    """
    if not isinstance(record, Mapping) or not isinstance(record.get("sessionId"), str):
        raise malformed("emr-serverless GetSession", "the session record has no sessionId")
    native = record.get("state") or ""
    idle = record.get("idleTimeoutMinutes")
    return SessionInfo(
        id=record["sessionId"],
        backend=EmrServerlessBackend.name,
        state=normalize_state(
            native, STATE_MAP, unknown=SessionState.UNKNOWN, source="emr-serverless"
        ),
        native_state=native,
        reason=record.get("stateDetails") or None,
        name=record.get("name"),
        created_at=record.get("createdAt"),
        started_at=record.get("startedAt"),
        ended_at=record.get("endedAt"),
        idle_since=record.get("idleSince"),
        idle_timeout=timedelta(minutes=idle) if idle else None,
        arn=record.get("arn"),
        # Summaries from ListSessions carry no tags (None: unknown); a described session does.
        tags=record.get("tags"),
        usage=_usage(record),
        raw=record,
    )


# ----------------------------------------------------------------------------- the backend


class EmrServerlessBackend(AwsBackend):
    """Amazon EMR Serverless interactive sessions (boto3 client ``emr-serverless``).

    Args:
        application_id: The application the sessions live in (its sessions must be enabled:
            ``interactiveConfiguration.sessionEnabled``).
        start_application: Start the application before the first session when it is not
            started, and wait until it is (default: rely on the application's auto-start).
        client: A ready boto3 ``emr-serverless`` client.
        boto3_session: The boto3 session to build the client from.
        region: The AWS region.
        endpoint_url: A custom service endpoint.

    Raises:
        InvalidConfigError: For a malformed ``application_id`` or conflicting connection keywords.
    """

    name: ClassVar[str] = "emr-serverless"
    service: ClassVar[str] = "emr-serverless"
    location_fields: ClassVar[tuple[str, ...]] = ("application_id",)
    extra_fields: ClassVar[tuple[str, ...]] = ("start_application",)
    supported_fields: ClassVar[frozenset[str]] = frozenset(TRANSLATION)
    state_map: ClassVar[Mapping[str, SessionState]] = STATE_MAP
    capabilities: ClassVar[Capabilities] = Capabilities(
        spark_connect=True, server_side_state_filter=True, tags=True
    )
    cli_fields: ClassVar[tuple[str, ...]] = (*AwsBackend.cli_fields, "application_id")
    #: EMR Serverless sessions on a started application: ready within ~20-180 s.
    ready_prior: ClassVar[ReadyPrior] = ReadyPrior.between(20.0, 180.0)
    list_filters_states: ClassVar[bool] = True
    #: ``ListSessions`` takes ``maxResults`` up to 50 and filters on ``createdAtAfter``.
    list_page_size: ClassVar[int] = 50
    list_scopes: ClassVar[frozenset[str]] = frozenset({"created_after"})

    def __init__(
        self,
        *,
        application_id: str,
        start_application: bool = False,
        **connection: Any,
    ) -> None:
        super().__init__(**connection)
        if not isinstance(application_id, str) or not _APPLICATION_ID.fullmatch(application_id):
            raise InvalidConfigError(
                "application_id",
                "must be an EMR Serverless application id (1 to 64 lower-case letters and "
                f"digits, e.g. '00fabcdefghij123'), got {application_id!r}",
            )
        if not isinstance(start_application, bool):
            raise InvalidConfigError(
                "start_application", f"must be True or False, got {start_application!r}"
            )
        self.application_id = application_id
        self.start_application = start_application

    def prepare_start(self, config: SessionConfig) -> PreparedStart:
        """Translate and check the ``StartSession`` request; the client token is fixed here."""
        config = self._clean_options("start_session", config)
        start_token = new_token()
        policy = self.poll_policy
        request, fields = build_start_request(
            config,
            self.application_id,
            start_token=start_token,
            now=policy.now() if policy is not None else None,
        )
        if config.spark_conf:
            shape = self.client.meta.service_model.shape_for("Configuration")
            problems = check_shape(_spark_defaults(config.spark_conf), shape)
            if problems:
                path, problem = problems[0]
                raise InvalidConfigError(
                    "spark_conf",
                    f"StartSession parameter configurationOverrides.runtimeConfiguration "
                    f"spark-defaults {path} {problem} (the service rejects it)",
                )
        self._check("start_session", request, fields)
        return PreparedStart(
            config=config,
            request=request,
            token=request["clientToken"],
            start_token=start_token,
        )

    # -- pre-flight ----------------------------------------------------------------------------

    def _application(self) -> Mapping[str, Any]:
        try:
            response = self._call("get_application", applicationId=self.application_id)
        except ServiceError as exc:
            if exc.code == "ResourceNotFoundException":
                raise InvalidConfigError(
                    "application_id",
                    f"there is no EMR Serverless application {self.application_id} in this "
                    "account and region; check the id and region=",
                ) from exc
            raise
        application: Mapping[str, Any] = response["application"]
        return application

    def _preflight(self, prepared: PreparedStart) -> None:
        """Check the application can run sessions now; start it if ``start_application``."""
        application = self._application()
        app_id = self.application_id
        engine = str(application.get("type", ""))
        if engine.lower() != "spark":
            raise InvalidConfigError(
                "application_id",
                f"EMR Serverless application {app_id} is a {engine} application; interactive "
                "sessions need a Spark application",
            )
        if not (application.get("interactiveConfiguration") or {}).get("sessionEnabled"):
            raise InvalidConfigError(
                "application_id",
                f"interactive sessions are not enabled on EMR Serverless application {app_id}: "
                f"update it with update_application(applicationId='{app_id}', "
                "interactiveConfiguration={'sessionEnabled': True}) (needs release emr-7.13.0 "
                "or later)",
            )
        state = str(application.get("state"))
        if state == "STARTED":
            return
        if state == "TERMINATED":
            raise InvalidConfigError(
                "application_id",
                f"EMR Serverless application {app_id} is TERMINATED and cannot run sessions; "
                "create a new application and pass its id",
            )
        if self.start_application:
            self._start_application()
            return
        # autoStartConfiguration.enabled defaults to true on EMR Serverless.
        auto_start = (application.get("autoStartConfiguration") or {}).get("enabled", True)
        if auto_start and state in _AUTO_STARTABLE:
            return
        raise InvalidConfigError(
            "application_id",
            f"EMR Serverless application {app_id} is {state}"
            f"{'' if auto_start else ' and auto-start is disabled'}; sessions need a STARTED "
            f"application: start it (start_application(applicationId='{app_id}')) or pass "
            "start_application=True to let sessionkit start it and wait",
        )

    def _start_application(self) -> None:
        """Start the application where it can be started, and wait until it is STARTED."""
        app_id = self.application_id
        policy = self.poll_policy or DEFAULT_POLL
        requested = [False]
        seen_starting = [False]

        def done(application: Mapping[str, Any]) -> bool:
            state = str(application.get("state"))
            if state == "STARTED":
                return True
            if state == "STARTING":
                seen_starting[0] = True
            if state == "TERMINATED":
                raise InvalidConfigError(
                    "application_id",
                    f"EMR Serverless application {app_id} was TERMINATED while sessionkit "
                    "waited for it to start",
                )
            if state in _STARTABLE:
                if requested[0] and seen_starting[0]:
                    # It was starting and stopped again: the start failed.
                    detail = application.get("stateDetails")
                    raise InvalidConfigError(
                        "application_id",
                        f"EMR Serverless application {app_id} did not start "
                        f"({state}{': ' + str(detail) if detail else ''})",
                    )
                if not requested[0]:
                    self._call("start_application", applicationId=app_id)
                    requested[0] = True
            # CREATING and STOPPING settle first; STARTING is on its way.
            return False

        poll_until(
            self._application,
            done,
            policy=policy,
            timeout=None,
            describe=lambda application: (
                f"EMR Serverless application {app_id} still "
                f"{(application or {}).get('state', 'unknown')}, not STARTED"
            ),
            info_of=lambda application: None,
        )

    # -- primitives ----------------------------------------------------------------------------

    def _start(self, prepared: PreparedStart, *, attempt: int) -> SessionInfo:
        try:
            response = self._call("start_session", **prepared.request)
        except ServiceError as exc:
            # The same token with the same parameters can only conflict with an earlier attempt
            # the service is still processing, so a retry is retried again, with the same token
            # (never a new one, which could start a second session).
            if attempt > 1 and exc.code == "ConflictException" and not exc.retryable:
                raise ServiceError(
                    f"{exc} (while retrying with the same client token)",
                    code=exc.code,
                    request_id=exc.request_id,
                    retryable=True,
                    operation=exc.operation,
                ) from exc
            raise
        session_id = response.get("sessionId")
        if not isinstance(session_id, str) or not session_id:
            raise malformed("emr-serverless StartSession", "the answer has no sessionId")
        if attempt > 1 and self._caller_chose_token(prepared, "clientToken"):
            # A replayed token answers with the session it started: adopt it only if it
            # carries this start's nonce (a caller's client_token may be someone else's).
            record = self._record_if_ours(session_id, prepared)
            if record is None:
                raise ServiceError(
                    f"emr-serverless session {session_id} answered this client token but was "
                    "not started by this open_session; use another client_token (nothing was "
                    "stopped)",
                    code="ConflictException",
                    operation="StartSession",
                )
            return session_info(record)
        # The answer carries only ids; the session always begins SUBMITTED. The wait that
        # follows describes it within a second, so no extra call is spent here.
        record = {
            "applicationId": response.get("applicationId", self.application_id),
            "sessionId": session_id,
            "arn": response.get("arn"),
            "state": "SUBMITTED",
        }
        if "name" in prepared.request:
            record["name"] = prepared.request["name"]
        if "idleTimeoutMinutes" in prepared.request:
            record["idleTimeoutMinutes"] = prepared.request["idleTimeoutMinutes"]
        return session_info(record)

    def _abandon(self, prepared: PreparedStart) -> None:
        # The client token names the session: replaying the start with it returns the session
        # an interrupted attempt created (or starts one, if none landed), which is then
        # terminated, so no session is left running that nobody holds.
        # Retryable errors go to the caller, which retries the whole replay (idempotent).
        try:
            response = self._call("start_session", **prepared.request)
            session_id = response.get("sessionId")
            if not isinstance(session_id, str) or not session_id:
                # Still no id: the only retryable way on is to replay again.
                raise ServiceError(
                    "emr-serverless StartSession answered without a sessionId while cleaning up",
                    code="MalformedResponse",
                    retryable=True,
                    operation="StartSession",
                )
            chosen = self._caller_chose_token(prepared, "clientToken")
            if chosen and self._record_if_ours(session_id, prepared) is None:
                return  # someone else's session under a reused client token: not ours to stop
            self._stop(session_id)
        except ServiceError as exc:
            if exc.retryable:
                raise
            # Otherwise the session is already ending, or the start is refused outright.

    def _record_if_ours(self, session_id: str, prepared: PreparedStart) -> Mapping[str, Any] | None:
        """The session's record if it carries this start's ``sessionkit:start-token`` tag."""
        # Read from the answer itself: SessionInfo.raw redacts token-looking tags.
        response = self._call(
            "get_session", applicationId=self.application_id, sessionId=session_id
        )
        record = response.get("session")
        if not isinstance(record, Mapping) or record.get("sessionId") != session_id:
            raise malformed("emr-serverless GetSession", "the answer is for another session")
        if prepared.start_token is None:
            return record
        tags = record.get("tags") or {}
        return record if tags.get(START_TOKEN_TAG) == prepared.start_token else None

    def _describe(self, session_id: str) -> SessionInfo:
        response = self._call(
            "get_session", applicationId=self.application_id, sessionId=session_id
        )
        return session_info(response.get("session"))

    def _stop(self, session_id: str) -> None:
        self._call("terminate_session", applicationId=self.application_id, sessionId=session_id)

    def _list_page(
        self, states: frozenset[SessionState] | None, token: str | None
    ) -> tuple[list[SessionInfo], str | None]:
        records, following = self._list_records(states, token)
        return [session_info(r) for r in records], following

    def _record_id(self, record: Any) -> str:
        return str(record.get("sessionId", ""))

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
            "applicationId": self.application_id,
            "maxResults": self.list_page_size,
        }
        if created_after is not None:
            params["createdAtAfter"] = created_after
        if states is not None:
            native = native_states(STATE_MAP, states)
            if native == []:
                # No EMR Serverless state maps to what was asked (e.g. TIMED_OUT).
                return [], None
            if native is not None:
                params["states"] = native
        if token:
            params["nextToken"] = token
        page = self._call("list_sessions", **params)
        return list(page.get("sessions") or []), page.get("nextToken") or None

    def _endpoint(self, session_id: str) -> Endpoint:
        response = self._call(
            "get_session_endpoint", applicationId=self.application_id, sessionId=session_id
        )
        token = response.get("authToken")
        # DESIGN section 9: the service's proxy listens on 443 and forwards to Spark Connect's
        # port 15002 over HTTP/2; the token goes as x-aws-proxy-auth, never as a bearer token.
        return Endpoint(
            url=response["endpoint"],
            token=token,
            headers={"x-aws-proxy-auth": token} if token else {},
            expires_at=response.get("authTokenExpiresAt"),
            recipe=(
                "{address}/;use_ssl=true;x-aws-proxy-port=15002;x-aws-force-h2=true;"
                "x-aws-proxy-auth={token}"
            ),
        )

"""Amazon EMR on EC2 Spark Connect sessions (``StartSession`` and friends on a cluster).

Reads top to bottom: the state table, the request translation, the response translation, and
the few calls the backend makes. Sessions live on a cluster (``cluster_id``) that was created
with sessions enabled (``RunJobFlow(SessionEnabled=True)``, EMR release 8.0.0 or later); the
service has no statement API, so code runs through the Spark Connect endpoint
(:meth:`sessionkit.Session.endpoint`, :meth:`sessionkit.Session.spark`).

Every operation here is in botocore's ``emr`` model (``StartSession``, ``GetSession``,
``ListSessions``, ``TerminateSession``, ``GetSessionEndpoint``); requests are checked against
that model before they are sent. The service declares only ``InvalidRequestException`` and
``InternalServerException`` for them: a session or cluster that does not exist is an
``InvalidRequestException``, like the rest of the EMR API.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any, ClassVar

from sessionkit.backends.aws.common import AwsBackend, ceil_minutes, check_shape, new_token
from sessionkit.backends.base import (
    Capabilities,
    PreparedStart,
    idle_timeout_of,
    lifecycle_tags,
    native_states,
)
from sessionkit.errors import InvalidConfigError, ServiceError
from sessionkit.models import Endpoint, SessionConfig, SessionInfo
from sessionkit.states import SessionState, normalize_state
from sessionkit.waiting import ReadyPrior

__all__ = ["STATE_MAP", "TRANSLATION", "EmrBackend", "build_start_request", "session_info"]

# ----------------------------------------------------------------------------- states

#: EMR ``SessionState`` to the common state (the same values as EMR Serverless).
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

#: Cluster states in which the service starts sessions.
_USABLE_CLUSTER = frozenset({"RUNNING", "WAITING"})
#: Cluster states on the way to usable: the caller should wait and retry.
_COMING_UP = frozenset({"STARTING", "BOOTSTRAPPING"})

# ----------------------------------------------------------------------------- requests

#: The SessionConfig field behind each ``StartSession`` key (the docs table mirrors this).
TRANSLATION: Mapping[str, str] = {
    "name": "Name",
    "role": "ExecutionRoleArn",
    "idle_timeout": "SessionIdleTimeoutInMinutes",
    "spark_conf": "EngineConfigurations",
    "tags": "Tags",
    "sessionkit_tags": "Tags (sessionkit:created-by, sessionkit:expires-at)",
    "client_token": "ClientRequestToken",
    # Every EMR session is a Spark Connect session: nothing to ask for.
    "spark_connect": "(always on)",
}

#: Which SessionConfig field (or keyword) produced each request key, for error messages.
_FIELDS = {
    "ClusterId": "cluster_id",
    "ClientRequestToken": "client_token",
    "Name": "name",
    "ExecutionRoleArn": "role",
    "SessionIdleTimeoutInMinutes": "idle_timeout",
    "EngineConfigurations": "spark_conf",
    "Tags": "tags",
}

#: The configuration classification that carries Spark properties.
SPARK_DEFAULTS = "spark-defaults"

#: EMR cluster ids look like ``j-2AXXXXXXGAPLF`` (the model caps them at 256 characters).
_CLUSTER_ID = re.compile(r"j-[0-9A-Z]{1,254}")

#: DESIGN section 9: the EMR recipe is the EMR Serverless one, from ``Endpoint``.
SPARK_CONNECT_RECIPE = (
    "{address}/;use_ssl=true;x-aws-proxy-port=15002;x-aws-force-h2=true;x-aws-proxy-auth={token}"
)


def _spark_defaults(spark_conf: Mapping[str, str]) -> dict[str, Any]:
    return {"Classification": SPARK_DEFAULTS, "Properties": dict(spark_conf)}


def build_start_request(
    config: SessionConfig, cluster_id: str, *, now: datetime | None = None
) -> tuple[dict[str, Any], dict[str, str]]:
    """Translate a configuration into a ``StartSession`` request.

    The client token is generated here when the configuration has none (32 characters; the
    service takes at most 36), so every retry of the start sends the same one and the service
    starts at most one session.

    Args:
        config: The session configuration.
        cluster_id: The cluster to start the session on.
        now: The current time, for the ``sessionkit:expires-at`` tag (default: the system
            clock).

    Returns:
        The request (``ClusterId`` included), and which field produced each request key.

    Raises:
        InvalidConfigError: For a field given twice (as a portable field and in ``options``).
    """
    fields = dict(_FIELDS)
    options = dict(config.options)
    token = config.client_token
    if "ClientRequestToken" in options:
        if token is not None:
            raise InvalidConfigError(
                "options",
                "'ClientRequestToken' is already set from the client_token field; give it once",
            )
        token = str(options.pop("ClientRequestToken"))
        fields["ClientRequestToken"] = "options"
    request: dict[str, Any] = {"ClusterId": cluster_id, "ClientRequestToken": token or new_token()}
    if config.name is not None:
        request["Name"] = config.name
    if config.role is not None:
        request["ExecutionRoleArn"] = config.role
    if config.idle_timeout is not None or "SessionIdleTimeoutInMinutes" not in options:
        # The default idle timeout; options may replace it, as on the other backends.
        request["SessionIdleTimeoutInMinutes"] = ceil_minutes(idle_timeout_of(config))
    if "EngineConfigurations" in options:
        given = options.pop("EngineConfigurations")
        if not isinstance(given, (list, tuple)):
            raise InvalidConfigError(
                "options", "EngineConfigurations must be a list of configurations"
            )
        if config.spark_conf and any(
            isinstance(entry, Mapping) and entry.get("Classification") == SPARK_DEFAULTS
            for entry in given
        ):
            raise InvalidConfigError(
                "spark_conf",
                "options['EngineConfigurations'] already has a spark-defaults classification; "
                "give Spark properties once (spark_conf= or options, not both)",
            )
        request["EngineConfigurations"] = [
            *given,
            *([_spark_defaults(config.spark_conf)] if config.spark_conf else []),
        ]
        fields["EngineConfigurations"] = "options"
    elif config.spark_conf:
        request["EngineConfigurations"] = [_spark_defaults(config.spark_conf)]
    # The client token makes the start idempotent, so ownership needs no nonce tag.
    tags = lifecycle_tags(config, start_token=None, now=now or datetime.now(timezone.utc))
    if tags:
        request["Tags"] = [{"Key": key, "Value": value} for key, value in tags.items()]
    AwsBackend._merge_options(request, options, fields)
    return request, fields


# ----------------------------------------------------------------------------- responses


def session_info(record: Mapping[str, Any]) -> SessionInfo:
    """Translate an EMR ``Session`` (from GetSession or ListSessions) into a SessionInfo."""
    native = str(record.get("State") or "")
    idle = record.get("SessionIdleTimeoutInMinutes")
    return SessionInfo(
        id=record["Id"],
        backend=EmrBackend.name,
        state=normalize_state(native, STATE_MAP, unknown=SessionState.UNKNOWN, source="emr"),
        native_state=native,
        reason=record.get("StateChangeReason") or None,
        name=record.get("Name"),
        created_at=record.get("CreatedAt"),
        started_at=record.get("StartedAt"),
        ended_at=record.get("EndedAt"),
        idle_since=record.get("IdleSince"),
        idle_timeout=timedelta(minutes=idle) if idle else None,
        arn=record.get("Arn"),
        tags=(
            {str(t["Key"]): str(t.get("Value", "")) for t in record["Tags"] if "Key" in t}
            if isinstance(record.get("Tags"), list)
            else None
        ),
        raw=record,
    )


# ----------------------------------------------------------------------------- the backend


class EmrBackend(AwsBackend):
    """Amazon EMR on EC2 Spark Connect sessions (boto3 client ``emr``).

    Args:
        cluster_id: The cluster the sessions run on (``j-...``), RUNNING or WAITING, created
            with sessions enabled.
        client: A ready boto3 ``emr`` client.
        boto3_session: The boto3 session to build the client from.
        region: The AWS region.
        profile: A profile of the shared AWS config files.
        endpoint_url: A custom service endpoint.

    Raises:
        InvalidConfigError: For a malformed ``cluster_id`` or conflicting connection keywords.
    """

    name: ClassVar[str] = "emr"
    service: ClassVar[str] = "emr"
    location_fields: ClassVar[tuple[str, ...]] = ("cluster_id",)
    #: The location keywords the command line offers as options (``--cluster-id``).
    cli_fields: ClassVar[tuple[str, ...]] = ("cluster_id",)
    supported_fields: ClassVar[frozenset[str]] = frozenset(TRANSLATION)
    capabilities: ClassVar[Capabilities] = Capabilities(
        spark_connect=True, server_side_state_filter=True, tags=True
    )
    state_map: ClassVar[Mapping[str, SessionState]] = STATE_MAP
    #: Sessions on an already running cluster (a driver on existing nodes): ready within ~10-120 s.
    ready_prior: ClassVar[ReadyPrior] = ReadyPrior.between(10.0, 120.0)
    #: ``ListSessions`` filters by ``SessionStates``; pages of up to 100 sessions.
    list_filters_states: ClassVar[bool] = True
    list_page_size: ClassVar[int] = 100

    def __init__(self, *, cluster_id: str, **connection: Any) -> None:
        super().__init__(**connection)
        if not isinstance(cluster_id, str) or not _CLUSTER_ID.fullmatch(cluster_id):
            raise InvalidConfigError(
                "cluster_id",
                "must be an EMR cluster id ('j-' and upper-case letters and digits, e.g. "
                f"'j-2AXXXXXXGAPLF'), got {cluster_id!r}",
            )
        self.cluster_id = cluster_id

    def prepare_start(self, config: SessionConfig) -> PreparedStart:
        """Translate and check the ``StartSession`` request; the client token is fixed here."""
        config = self._clean_options("start_session", config)
        policy = self.poll_policy
        request, fields = build_start_request(
            config, self.cluster_id, now=policy.now() if policy is not None else None
        )
        if config.spark_conf:
            shape = self.client.meta.service_model.shape_for("Configuration")
            problems = check_shape(_spark_defaults(config.spark_conf), shape)
            if problems:
                path, problem = problems[0]
                raise InvalidConfigError(
                    "spark_conf",
                    f"StartSession parameter EngineConfigurations spark-defaults {path} "
                    f"{problem} (the service rejects it)",
                )
        self._check("start_session", request, fields)
        return PreparedStart(config=config, request=request, token=request["ClientRequestToken"])

    # -- pre-flight ----------------------------------------------------------------------------

    def _preflight(self, prepared: PreparedStart) -> None:
        """Check the cluster can run sessions now (one ``DescribeCluster``)."""
        cluster_id = self.cluster_id
        try:
            cluster = self._call("describe_cluster", ClusterId=cluster_id)["Cluster"]
        except ServiceError as exc:
            if exc.code == "InvalidRequestException":
                raise InvalidConfigError(
                    "cluster_id",
                    f"there is no EMR cluster {cluster_id} in this account and region "
                    f"({exc}); check the id and region=",
                ) from exc
            raise
        state = str((cluster.get("Status") or {}).get("State", ""))
        if state in _COMING_UP:
            raise InvalidConfigError(
                "cluster_id",
                f"EMR cluster {cluster_id} is {state}; sessions start once it is RUNNING or "
                "WAITING: wait for it (the emr client's 'cluster_running' waiter) and retry",
            )
        if state not in _USABLE_CLUSTER:
            raise InvalidConfigError(
                "cluster_id",
                f"EMR cluster {cluster_id} is {state or 'in an unknown state'} and cannot run "
                "sessions; pass the id of a RUNNING or WAITING cluster",
            )
        if not cluster.get("SessionEnabled"):
            release = cluster.get("ReleaseLabel") or "unknown release"
            raise InvalidConfigError(
                "cluster_id",
                f"Spark Connect sessions are not enabled on EMR cluster {cluster_id} "
                f"({release}); they can only be enabled when a cluster is created: "
                "run_job_flow(..., SessionEnabled=True) on release emr-8.0.0 or later",
            )

    # -- primitives ----------------------------------------------------------------------------

    def _start(self, prepared: PreparedStart, *, attempt: int) -> SessionInfo:
        response = self._call("start_session", **prepared.request)
        record: dict[str, Any] = {
            "Id": response["Id"],
            "ClusterId": response.get("ClusterId", self.cluster_id),
            "Arn": response.get("Arn"),
            "State": response.get("State") or "SUBMITTED",
        }
        for key in ("Name", "SessionIdleTimeoutInMinutes", "Tags"):
            if key in prepared.request:
                record[key] = prepared.request[key]
        return session_info(record)

    def _abandon(self, prepared: PreparedStart) -> None:
        # The client token names the session: replaying the start returns the session an
        # interrupted attempt created (or starts one), which is then terminated.
        try:
            response = self._call("start_session", **prepared.request)
            self._stop(str(response["Id"]))
        except ServiceError as exc:
            if exc.retryable:
                raise

    def _describe(self, session_id: str) -> SessionInfo:
        response = self._call("get_session", ClusterId=self.cluster_id, SessionId=session_id)
        return session_info(response["Session"])

    def _stop(self, session_id: str) -> None:
        self._call("terminate_session", ClusterId=self.cluster_id, SessionId=session_id)

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
        params: dict[str, Any] = {"ClusterId": self.cluster_id, "MaxResults": self.list_page_size}
        if states is not None:
            native = native_states(STATE_MAP, states)
            if native == []:
                return [], None
            if native is not None:
                params["SessionStates"] = native
        if token:
            params["NextToken"] = token
        page = self._call("list_sessions", **params)
        return list(page.get("Sessions") or []), page.get("NextToken") or None

    def _record_id(self, record: Any) -> str:
        return str(record.get("Id", ""))

    def _record_info(self, record: Any) -> SessionInfo:
        return session_info(record)

    def _endpoint(self, session_id: str) -> Endpoint:
        response = self._call(
            "get_session_endpoint", ClusterId=self.cluster_id, SessionId=session_id
        )
        token = response.get("AuthToken")
        # DESIGN section 9: the token as x-aws-proxy-auth, the session id as authorization,
        # and the session's user name and password where the service hands them out.
        headers: dict[str, str] = {"authorization": session_id}
        if token:
            headers["x-aws-proxy-auth"] = token
        login = (response.get("Credentials") or {}).get("UsernamePassword") or {}
        if login.get("Username") is not None:
            headers["x-emr-username"] = str(login["Username"])
        if login.get("Password") is not None:
            headers["x-emr-password"] = str(login["Password"])
        return Endpoint(
            url=response["Endpoint"],
            token=token,
            headers=headers,
            expires_at=response.get("AuthTokenExpirationTime"),
            recipe=SPARK_CONNECT_RECIPE,
        )

"""The emulated Amazon EMR on EC2: clusters (DescribeCluster) and Spark Connect sessions (JSON).

The wire (JSON 1.1 bodies with ``X-Amz-Target: ElasticMapReduce.<Operation>``) is decoded and
encoded by :mod:`sessionkit.testing.emulator`; this module keeps the state: clusters, which
tests create with :meth:`EmrService.create_cluster`, and the sessions on them, which move
through SUBMITTED, STARTING, STARTED and IDLE on the emulator's virtual clock.

Where the public documentation leaves the service's behaviour open, the emulator decides as
follows (each a guess, to be checked against the live suite's recordings):

- The session operations declare only ``InvalidRequestException`` and
  ``InternalServerException``, so every refusal is an ``InvalidRequestException`` (HTTP 400):
  an unknown cluster ("Cluster id 'j-...' is not valid.", as DescribeCluster says on AWS), an
  unknown session, a cluster that is not RUNNING or WAITING or has no sessions enabled, an
  endpoint asked for before the session has STARTED, and a ``ClientRequestToken`` replayed with
  other parameters. Throttling is ``ThrottlingException`` (HTTP 400), as on the rest of EMR.
- A ``ClientRequestToken`` replayed with the same parameters answers the session it started.
- TerminateSession on a session that already ended succeeds and answers its state.
- Session ids are ``s-`` and 20 upper-case letters and digits; ARNs are
  ``arn:aws:elasticmapreduce:REGION:ACCOUNT:cluster/CLUSTER/session/SESSION``; the idle timeout
  is 60 minutes when the request gives none.
- GetSessionEndpoint answers an ``https://`` URL, a token that expires after
  ``timeline.token_ttl``, and ``Credentials.UsernamePassword`` (user ``emr-session``, a new
  password per call), so the whole header recipe of DESIGN section 9 is exercised.
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs

from sessionkit.testing.aws.emr_sessions import ALIVE, RUNNING, EmrSessionStates, SparkSession
from sessionkit.testing.base import EmulatedError, page

__all__ = ["EmrService", "EmrTimeline"]

_UPPER = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"

_CLUSTER_STATES = frozenset(
    {"STARTING", "BOOTSTRAPPING", "RUNNING", "WAITING", "TERMINATING", "TERMINATED",
     "TERMINATED_WITH_ERRORS"}
)  # fmt: skip
_USABLE_CLUSTER = frozenset({"RUNNING", "WAITING"})


@attrs.define(kw_only=True)
class EmrTimeline:
    """How long things take in the emulated EMR, in virtual seconds.

    Attributes:
        submitted: From StartSession to STARTING.
        starting: From STARTING to STARTED.
        idle_after: From STARTED (or the end of work) to IDLE when no work runs.
        terminating: From TerminateSession to TERMINATED.
        default_idle_timeout: Minutes, when the request gives none.
        token_ttl: Lifetime of Spark Connect auth tokens.
    """

    submitted: float = 1.0
    starting: float = 15.0
    idle_after: float = 2.0
    terminating: float = 2.0
    default_idle_timeout: int = 60
    token_ttl: float = 3600.0


@attrs.define(kw_only=True)
class _Cluster:
    id: str
    name: str
    state: str
    session_enabled: bool
    release_label: str
    created: float


@attrs.define(kw_only=True)
class _Session(SparkSession):
    cluster_id: str


class EmrService(EmrSessionStates[_Session]):
    """Emulated EMR on EC2: clusters, and Spark Connect sessions on them.

    Sessions go SUBMITTED, STARTING, STARTED, then IDLE after ``timeline.idle_after`` with no
    work; :meth:`busy` makes one BUSY for a while. TerminateSession goes through TERMINATING to
    TERMINATED; an idle timeout ends a session in TERMINATED with its reason.

    Attributes:
        timeline: How long things take (mutable: set fields to change later sessions).
        endpoint_url: The Spark Connect URL GetSessionEndpoint answers (default: a per-session
            ``https://...emulator.invalid`` address).
        spark_proxy: The authenticating Spark Connect proxy that tokens are granted on
            (``Emulator.use_spark`` sets it), or ``None``.
    """

    service: ClassVar[str] = "emr"
    validation_error: ClassVar[str] = "InvalidRequestException"
    throttling_error: ClassVar[str] = "ThrottlingException"
    throttling_status: ClassVar[int] = 400
    server_error: ClassVar[str] = "InternalServerException"
    scriptable: ClassVar[tuple[str, ...]] = ("FAILED", "TERMINATED")
    timeline: EmrTimeline
    terminated_reason = "Terminated by user request"

    def __init__(self, emulator: Any) -> None:
        super().__init__(emulator)
        self.timeline = EmrTimeline()
        self.spark_proxy: Any = None
        self._clusters: dict[str, _Cluster] = {}
        self._tokens: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {}

    # -- test controls -------------------------------------------------------------------------

    def create_cluster(
        self,
        name: str = "sessionkit",
        *,
        state: str = "WAITING",
        session_enabled: bool = True,
        release_label: str = "emr-8.0.0",
    ) -> str:
        """Create a cluster directly in ``state`` and return its id (``j-...``).

        Args:
            name: The cluster name.
            state: Its state: STARTING, BOOTSTRAPPING, RUNNING, WAITING, TERMINATED, ...
            session_enabled: Whether Spark Connect sessions are enabled on it.
            release_label: The EMR release.

        Returns:
            The cluster id.
        """
        if state not in _CLUSTER_STATES:
            raise ValueError(f"cluster state must be one of {', '.join(sorted(_CLUSTER_STATES))}")
        cluster = _Cluster(
            id="j-" + self.emulator.new_id(13, _UPPER),
            name=name,
            state=state,
            session_enabled=session_enabled,
            release_label=release_label,
            created=self.now,
        )
        self._clusters[cluster.id] = cluster
        return cluster.id

    def set_cluster_state(self, cluster_id: str, state: str) -> None:
        """Put a cluster in ``state`` now; terminating it ends its sessions."""
        if state not in _CLUSTER_STATES:
            raise ValueError(f"cluster state must be one of {', '.join(sorted(_CLUSTER_STATES))}")
        cluster = self._cluster(cluster_id)
        cluster.state = state
        if state.startswith("TERMINATED"):
            for session in self._sessions.values():
                if session.cluster_id == cluster_id and self._settle(session).state in ALIVE:
                    self._end(session, "TERMINATED", "The cluster was terminated", self.now)

    # -- state machines ------------------------------------------------------------------------

    def _cluster(self, cluster_id: str) -> _Cluster:
        cluster = self._clusters.get(cluster_id)
        if cluster is None:
            raise EmulatedError(
                "InvalidRequestException", f"Cluster id '{cluster_id}' is not valid."
            )
        return cluster

    def _get(self, session_id: str) -> _Session:
        return self._session(session_id)

    def _starting_due(self, session: _Session) -> float | None:
        return session.created + self.timeline.submitted

    def _session(self, session_id: str, cluster_id: str | None = None) -> _Session:
        if cluster_id is not None:
            self._cluster(cluster_id)
        session = self._sessions.get(session_id)
        if session is None or (cluster_id is not None and session.cluster_id != cluster_id):
            raise EmulatedError(
                "InvalidRequestException",
                f"Session {session_id} does not exist on cluster {cluster_id}.",
            )
        return session

    def _idle_minutes(self, session: _Session) -> int:
        return int(
            session.request.get("SessionIdleTimeoutInMinutes", self.timeline.default_idle_timeout)
        )

    # -- records -------------------------------------------------------------------------------

    def _cluster_arn(self, cluster_id: str) -> str:
        return (
            f"arn:{self._partition()}:elasticmapreduce:{self.emulator.region}:"
            f"{self.emulator.account_id}:cluster/{cluster_id}"
        )

    def _session_arn(self, session: _Session) -> str:
        return f"{self._cluster_arn(session.cluster_id)}/session/{session.id}"

    def _record(self, session: _Session) -> dict[str, Any]:
        self._settle(session)
        request = session.request
        cluster = self._clusters[session.cluster_id]
        record: dict[str, Any] = {
            "Id": session.id,
            "ClusterId": session.cluster_id,
            "Arn": self._session_arn(session),
            "State": session.state,
            "ReleaseLabel": cluster.release_label,
            "AccountId": self.emulator.account_id,
            "CreatedAt": self._time(session.created),
            "UpdatedAt": self._time(session.updated),
            "SessionIdleTimeoutInMinutes": self._idle_minutes(session),
        }
        for key in ("Name", "ExecutionRoleArn", "EngineConfigurations", "Tags"):
            if key in request:
                record[key] = request[key]
        if "MonitoringConfiguration" in request:
            record["MonitoringConfiguration"] = request["MonitoringConfiguration"]
        if session.reason:
            record["StateChangeReason"] = session.reason
        if session.started_at is not None:
            record["StartedAt"] = self._time(session.started_at)
        if session.ended is not None:
            record["EndedAt"] = self._time(session.ended)
        if session.state == "IDLE" and session.idle_since is not None:
            record["IdleSince"] = self._time(session.idle_since)
        return record

    # -- operations: clusters ------------------------------------------------------------------

    def op_describe_cluster(self, params: dict[str, Any]) -> dict[str, Any]:
        cluster = self._cluster(params["ClusterId"])
        return {
            "Cluster": {
                "Id": cluster.id,
                "Name": cluster.name,
                "Status": {
                    "State": cluster.state,
                    "StateChangeReason": {},
                    "Timeline": {"CreationDateTime": self._time(cluster.created)},
                },
                "ReleaseLabel": cluster.release_label,
                "Applications": [{"Name": "Spark", "Version": "4.0.0"}],
                "AutoTerminate": False,
                "TerminationProtected": False,
                "VisibleToAllUsers": True,
                "ServiceRole": "EMR_DefaultRole",
                "ClusterArn": self._cluster_arn(cluster.id),
                "StepConcurrencyLevel": 1,
                "SessionEnabled": cluster.session_enabled,
            }
        }

    # -- operations: sessions ------------------------------------------------------------------

    def op_start_session(self, params: dict[str, Any]) -> dict[str, Any]:
        cluster = self._cluster(params["ClusterId"])
        request = {k: v for k, v in params.items() if k not in ("ClusterId", "ClientRequestToken")}
        token = params.get("ClientRequestToken")
        key = (cluster.id, str(token))
        if token is not None and key in self._tokens:
            session_id, earlier = self._tokens[key]
            if earlier != request:
                raise EmulatedError(
                    "InvalidRequestException",
                    "The ClientRequestToken was already used with different request parameters.",
                )
            return self._started(self._sessions[session_id])
        if cluster.state not in _USABLE_CLUSTER:
            raise EmulatedError(
                "InvalidRequestException",
                f"Cluster {cluster.id} is {cluster.state}; sessions need a RUNNING or WAITING "
                "cluster.",
            )
        if not cluster.session_enabled:
            raise EmulatedError(
                "InvalidRequestException", f"Sessions are not enabled on cluster {cluster.id}."
            )
        now = self.now
        session = _Session(
            id="s-" + self.emulator.new_id(20, _UPPER),
            cluster_id=cluster.id,
            request=request,
            created=now,
            updated=now,
        )
        session.script = self._next_script()
        self._sessions[session.id] = session
        if token is not None:
            self._tokens[key] = (session.id, request)
        self._created += 1
        return self._started(session)

    def _started(self, session: _Session) -> dict[str, Any]:
        return {
            "Id": session.id,
            "ClusterId": session.cluster_id,
            "Arn": self._session_arn(session),
            "AccountId": self.emulator.account_id,
            "State": self._settle(session).state,
        }

    def op_get_session(self, params: dict[str, Any]) -> dict[str, Any]:
        session = self._session(params["SessionId"], params["ClusterId"])
        return {"Session": self._record(session)}

    def op_terminate_session(self, params: dict[str, Any]) -> dict[str, Any]:
        session = self._settle(self._session(params["SessionId"], params["ClusterId"]))
        self._begin_terminating(session)
        return {"ClusterId": session.cluster_id, "SessionId": session.id, "State": session.state}

    def op_list_sessions(self, params: dict[str, Any]) -> dict[str, Any]:
        cluster = self._cluster(params["ClusterId"])
        states = params.get("SessionStates")
        matching = [
            session
            for session in self._sessions.values()
            if session.cluster_id == cluster.id
            and (not states or self._settle(session).state in states)
        ]
        chunk, token = page(matching, params.get("NextToken"), int(params.get("MaxResults", 50)))
        result: dict[str, Any] = {"Sessions": [self._record(s) for s in chunk]}
        if token:
            result["NextToken"] = token
        return result

    def op_get_session_endpoint(self, params: dict[str, Any]) -> dict[str, Any]:
        session = self._settle(self._session(params["SessionId"], params["ClusterId"]))
        if session.state not in RUNNING:
            raise EmulatedError(
                "InvalidRequestException",
                f"Session {session.id} is {session.state}; its endpoint is available once it "
                "has STARTED.",
            )
        url = self.endpoint_url or (
            f"https://{session.id.lower()}.{session.cluster_id.lower()}.emr-sessions."
            f"{self.emulator.region}.emulator.invalid"
        )
        token, expires = self.auth_token(self.timeline.token_ttl)
        username, password = "emr-session", self.emulator.new_id(24)
        if self.spark_proxy is not None:
            self.spark_proxy.grant(
                token,
                backend="emr",
                expires_at=expires,
                session_id=session.id,
                username=username,
                password=password,
            )
        return {
            "Endpoint": url,
            "AuthToken": token,
            "AuthTokenExpirationTime": expires,
            "Credentials": {"UsernamePassword": {"Username": username, "Password": password}},
        }

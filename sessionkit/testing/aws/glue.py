"""The emulated AWS Glue interactive-sessions API (JSON protocol).

Sessions go PROVISIONING, READY, then STOPPING and STOPPED (or FAILED, TIMEOUT); statements go
WAITING, RUNNING, AVAILABLE, or CANCELLING then CANCELLED. Each session keeps one interpreter
namespace, so a statement sees what the earlier ones defined, as in a notebook.

Where the public documentation leaves the service's behaviour open, the emulator decides as
follows (each a guess, to be checked against the live suite's recordings):

- GetSession fills what the service fills by default: ``SessionType`` ``LIVY``, ``GlueVersion``
  ``5.0``, ``Command`` ``{"Name": "glueetl", "PythonVersion": "3"}``, and, unless
  ``MaxCapacity`` was given, ``WorkerType`` ``G.1X`` and ``NumberOfWorkers`` 5 (the documented
  interactive-session defaults); ``IdleTimeout`` is 2880 minutes.
- A cancelled statement is CANCELLING for ``timeline.cancelling`` seconds, then CANCELLED.
- Session ARNs, for the tagging operations, are ``arn:aws:glue:REGION:ACCOUNT:session/ID``; an
  unknown ARN is ``EntityNotFoundException``.
- ListStatements answers every statement of the session, oldest first, in pages of 100.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import traceback
from collections.abc import Callable
from datetime import timedelta
from typing import Any, ClassVar

import attrs

from sessionkit.testing.base import EmulatedError, EmulatedService, Script, StatementOutcome, page

__all__ = [
    "SESSION_DEFAULTS",
    "WORKER_DEFAULTS",
    "GlueService",
    "GlueTimeline",
    "StatementOutcome",
    "python_executor",
    "run_code",
]

#: DPUs per worker of each Glue worker type.
_WORKER_DPUS = {
    "G.025X": 0.25,
    "Standard": 1.0,
    "G.1X": 1.0,
    "G.2X": 2.0,
    "G.4X": 4.0,
    "G.8X": 8.0,
    "G.12X": 12.0,
    "G.16X": 16.0,
    "Z.2X": 2.0,
    "R.1X": 1.0,
    "R.2X": 2.0,
    "R.4X": 4.0,
    "R.8X": 8.0,
}


@attrs.define(kw_only=True)
class GlueTimeline:
    """How long things take in the emulated Glue, in virtual seconds.

    Attributes:
        provisioning: From CreateSession to READY.
        stopping: From StopSession to STOPPED.
        statement: How long each statement runs.
        cancelling: How long a cancelled statement stays CANCELLING.
        default_idle_timeout: Minutes, when the request gives none.
        default_timeout: Minutes, when the request gives none.
        token_ttl: Lifetime of Spark Connect auth tokens.
    """

    provisioning: float = 6.0
    stopping: float = 2.0
    statement: float = 0.3
    cancelling: float = 0.5
    default_idle_timeout: int = 2880
    default_timeout: int = 2880
    token_ttl: float = 3600.0


#: Glue's documented defaults for what a CreateSession request leaves out.
SESSION_DEFAULTS: dict[str, Any] = {
    "SessionType": "LIVY",
    "GlueVersion": "5.0",
    "Command": {"Name": "glueetl", "PythonVersion": "3"},
}
#: The default capacity, when neither MaxCapacity nor workers are given.
WORKER_DEFAULTS: dict[str, Any] = {"WorkerType": "G.1X", "NumberOfWorkers": 5}


def run_code(
    executor: Callable[..., StatementOutcome], code: str, namespace: dict[str, Any]
) -> StatementOutcome:
    """Run ``code`` with ``executor``, in ``namespace`` when the executor takes one.

    Executors that accept a ``namespace`` keyword (:func:`python_executor`, the real-Spark one)
    keep the session's interpreter state there; a plain ``code -> outcome`` function still works.
    """
    try:
        parameters = inspect.signature(executor).parameters
    except (TypeError, ValueError):
        return executor(code)
    if "namespace" in parameters:
        return executor(code, namespace=namespace)
    return executor(code)


def python_executor(code: str, namespace: dict[str, Any] | None = None) -> StatementOutcome:
    """Run ``code`` as plain Python, like a notebook cell: printed text plus the last value.

    ``spark`` is not bound (the emulator has no Spark unless a real one is attached), so Spark
    code fails with a ``NameError`` just as it would in a session without Spark.

    Args:
        code: The cell.
        namespace: The session's interpreter state, kept between cells (default: a fresh one).
    """
    import ast

    out = io.StringIO()
    if namespace is None:
        namespace = {}
    namespace.setdefault("__name__", "__sessionkit_statement__")
    try:
        tree = ast.parse(code, mode="exec")
        last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
        assert last is None or isinstance(last, ast.Expr)
        with contextlib.redirect_stdout(out):
            exec(compile(tree, "<statement>", "exec"), namespace)
            if last is not None:
                value = eval(compile(ast.Expression(last.value), "<statement>", "eval"), namespace)
                if value is not None:
                    print(repr(value) if not isinstance(value, str) else value)
    except Exception as exc:
        return StatementOutcome(
            output=out.getvalue(),
            error_name=type(exc).__name__,
            error_value=str(exc),
            traceback=traceback.format_exception_only(type(exc), exc),
        )
    return StatementOutcome(output=out.getvalue().rstrip("\n"))


@attrs.define(kw_only=True)
class _Statement:
    id: int
    code: str
    submitted: float
    started: float | None = None
    finishes: float | None = None
    cancelled_at: float | None = None
    outcome: StatementOutcome | None = None


@attrs.define(kw_only=True)
class _Session:
    request: dict[str, Any]
    created: float
    ready_at: float
    status: str = "PROVISIONING"
    error: str | None = None
    ended: float | None = None
    stop_done: float | None = None
    script: Script | None = None
    last_activity: float = 0.0
    statements: list[_Statement] = attrs.field(factory=list)
    namespace: dict[str, Any] = attrs.field(factory=dict)
    tags: dict[str, str] = attrs.field(factory=dict)

    @property
    def id(self) -> str:
        return str(self.request["Id"])


class GlueService(EmulatedService):
    """Emulated Glue sessions: PROVISIONING, READY, STOPPING, STOPPED, FAILED, TIMEOUT.

    Attributes:
        timeline: How long things take (mutable: set fields to change later sessions).
        executor: Runs statement code; default :func:`python_executor`.
        endpoint_url: The Spark Connect URL GetSessionEndpoint hands out; default: a
            per-session placeholder that nothing listens on.
        endpoint_token: The auth token GetSessionEndpoint hands out; default: a new random one
            per call.
    """

    service: ClassVar[str] = "glue"
    validation_error: ClassVar[str] = "InvalidInputException"
    throttling_error: ClassVar[str] = "ThrottlingException"
    server_error: ClassVar[str] = "InternalServiceException"
    scriptable: ClassVar[tuple[str, ...]] = ("FAILED", "TIMEOUT", "STOPPED")

    def __init__(self, emulator: Any) -> None:
        super().__init__(emulator)
        #: The authenticating Spark Connect proxy tokens are granted on (``Emulator.use_spark``).
        self.spark_proxy: Any = None
        self.timeline = GlueTimeline()
        self.executor: Callable[..., StatementOutcome] = python_executor
        self._sessions: dict[str, _Session] = {}

    # -- test controls -------------------------------------------------------------------------

    def fail(self, session_id: str, reason: str = "Session failed (injected)") -> None:
        """Fail a session now."""
        session = self._get(session_id)
        self._end(session, "FAILED", reason)

    def status(self, session_id: str) -> str:
        """The native status of a session now."""
        return self._settle(self._get(session_id)).status

    def alive(self) -> list[str]:
        """Ids of sessions that are PROVISIONING, READY or STOPPING."""
        return [
            s.id
            for s in self._sessions.values()
            if self._settle(s).status in ("PROVISIONING", "READY", "STOPPING")
        ]

    # -- state machine -------------------------------------------------------------------------

    def _get(self, session_id: str) -> _Session:
        session = self._sessions.get(session_id)
        if session is None:
            raise EmulatedError("EntityNotFoundException", f"Session {session_id} not found.")
        return session

    def _end(
        self, session: _Session, status: str, reason: str | None, at: float | None = None
    ) -> None:
        session.status = status
        session.error = reason
        session.ended = self.now if at is None else at

    def _settle(self, session: _Session) -> _Session:
        """Apply every transition due by now, in time order."""
        now = self.now
        if (
            session.status == "STOPPING"
            and session.stop_done is not None
            and now >= session.stop_done
        ):
            self._end(session, "STOPPED", None, session.stop_done)
        if session.status not in ("PROVISIONING", "READY"):
            return session
        script = session.script
        if script is not None and now >= session.created + script.after:
            self._end(session, script.state, script.reason, session.created + script.after)
            return session
        if session.status == "PROVISIONING" and now >= session.ready_at:
            session.status = "READY"
            session.last_activity = session.ready_at
        if session.status == "READY":
            timeout = session.request.get("Timeout", self.timeline.default_timeout) * 60.0
            idle = session.request.get("IdleTimeout", self.timeline.default_idle_timeout) * 60.0
            busy = any(
                st.finishes is None or st.finishes > now
                for st in session.statements
                if st.cancelled_at is None
            )
            last = max([session.last_activity] + [st.finishes or 0.0 for st in session.statements])
            if now >= session.created + timeout:
                self._end(session, "TIMEOUT", "Session timed out", session.created + timeout)
            elif not busy and now >= last + idle:
                self._end(session, "STOPPED", "Session stopped after its idle timeout", last + idle)
        return session

    def _record(self, session: _Session) -> dict[str, Any]:
        self._settle(session)
        request = session.request
        clock = self.emulator.clock
        epoch = clock.now() - timedelta(seconds=self.now)
        record: dict[str, Any] = {
            "Id": session.id,
            "CreatedOn": epoch + timedelta(seconds=session.created),
            "Status": session.status,
            "Role": request["Role"],
            "Command": request.get("Command", SESSION_DEFAULTS["Command"]),
            "Progress": 100.0 if session.status != "PROVISIONING" else 50.0,
            "IdleTimeout": request.get("IdleTimeout", self.timeline.default_idle_timeout),
        }
        for key in (
            "Description",
            "DefaultArguments",
            "Connections",
            "SecurityConfiguration",
            "GlueVersion",
            "NumberOfWorkers",
            "WorkerType",
            "MaxCapacity",
            "SessionType",
        ):
            if key in request:
                record[key] = request[key]
        for key, value in SESSION_DEFAULTS.items():
            record.setdefault(key, value)
        if "MaxCapacity" not in request:
            for key, value in WORKER_DEFAULTS.items():
                record.setdefault(key, value)
        if session.error:
            record["ErrorMessage"] = session.error
        if session.ended is not None:
            record["CompletedOn"] = epoch + timedelta(seconds=session.ended)
        ran = self._running_seconds(session)
        if ran is not None:
            record["ExecutionTime"] = round(ran, 3)
            record["DPUSeconds"] = round(ran * self._dpus(request), 3)
        return record

    def _running_seconds(self, session: _Session) -> float | None:
        if session.ready_at > (session.ended if session.ended is not None else self.now):
            return None
        end = session.ended if session.ended is not None else self.now
        return max(0.0, end - session.ready_at)

    @staticmethod
    def _dpus(request: dict[str, Any]) -> float:
        if "MaxCapacity" in request:
            return float(request["MaxCapacity"])
        workers = int(request.get("NumberOfWorkers", 5))
        return workers * _WORKER_DPUS.get(str(request.get("WorkerType", "G.1X")), 1.0)

    # -- operations ----------------------------------------------------------------------------

    def op_create_session(self, params: dict[str, Any]) -> dict[str, Any]:
        session_id = params["Id"]
        if session_id in self._sessions:
            raise EmulatedError("AlreadyExistsException", f"Session {session_id} already exists.")
        if "MaxCapacity" in params and ("NumberOfWorkers" in params or "WorkerType" in params):
            raise EmulatedError(
                "InvalidInputException",
                "Please set either MaxCapacity or NumberOfWorkers/WorkerType",
            )
        now = self.now
        session = _Session(
            request=dict(params),
            created=now,
            ready_at=now + self.timeline.provisioning,
            tags=dict(params.get("Tags") or {}),
        )
        session.script = self._next_script()
        self._sessions[session_id] = session
        self._created += 1
        return {"Session": self._record(session)}

    def op_get_session(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"Session": self._record(self._get(params["Id"]))}

    def op_stop_session(self, params: dict[str, Any]) -> dict[str, Any]:
        session = self._settle(self._get(params["Id"]))
        if session.status not in ("PROVISIONING", "READY"):
            raise EmulatedError(
                "IllegalSessionStateException", f"Session is in {session.status} status"
            )
        session.status = "STOPPING"
        session.stop_done = self.now + self.timeline.stopping
        return {"Id": session.id}

    def op_delete_session(self, params: dict[str, Any]) -> dict[str, Any]:
        session = self._settle(self._get(params["Id"]))
        if session.status in ("PROVISIONING", "READY", "STOPPING"):
            raise EmulatedError(
                "IllegalSessionStateException",
                f"Session is in {session.status} status; stop it before deleting it",
            )
        del self._sessions[session.id]
        return {"Id": session.id}

    def op_list_sessions(self, params: dict[str, Any]) -> dict[str, Any]:
        tags = params.get("Tags") or {}
        matching = [
            s for s in self._sessions.values() if all(s.tags.get(k) == v for k, v in tags.items())
        ]
        chunk, token = page(matching, params.get("NextToken"), int(params.get("MaxResults", 100)))
        result: dict[str, Any] = {
            "Ids": [s.id for s in chunk],
            "Sessions": [self._record(s) for s in chunk],
        }
        if token:
            result["NextToken"] = token
        return result

    def op_run_statement(self, params: dict[str, Any]) -> dict[str, Any]:
        session = self._settle(self._get(params["SessionId"]))
        if session.status != "READY":
            raise EmulatedError(
                "IllegalSessionStateException", f"Session is in {session.status} status"
            )
        now = self.now
        statement = _Statement(id=len(session.statements), code=params["Code"], submitted=now)
        previous = [st.finishes for st in session.statements if st.cancelled_at is None]
        statement.started = max([now, *[f for f in previous if f is not None]])
        statement.finishes = statement.started + self.timeline.statement
        statement.outcome = run_code(self.executor, params["Code"], session.namespace)
        session.statements.append(statement)
        session.last_activity = now
        return {"Id": statement.id}

    def _statement(self, params: dict[str, Any]) -> tuple[_Session, _Statement]:
        session = self._settle(self._get(params["SessionId"]))
        index = int(params["Id"])
        if not 0 <= index < len(session.statements):
            raise EmulatedError("EntityNotFoundException", f"Statement {index} not found.")
        return session, session.statements[index]

    def op_get_statement(self, params: dict[str, Any]) -> dict[str, Any]:
        _, statement = self._statement(params)
        return {"Statement": self._statement_record(statement)}

    def op_list_statements(self, params: dict[str, Any]) -> dict[str, Any]:
        session = self._settle(self._get(params["SessionId"]))
        chunk, token = page(session.statements, params.get("NextToken"), 100)
        result: dict[str, Any] = {"Statements": [self._statement_record(st) for st in chunk]}
        if token:
            result["NextToken"] = token
        return result

    def _statement_record(self, statement: _Statement) -> dict[str, Any]:
        now = self.now
        epoch_ms = (self.emulator.clock.now() - timedelta(seconds=now)).timestamp() * 1000
        record: dict[str, Any] = {"Id": statement.id, "Code": statement.code, "Progress": 0.0}
        if statement.cancelled_at is not None:
            done = now >= statement.cancelled_at + self.timeline.cancelling
            record["State"] = "CANCELLED" if done else "CANCELLING"
            if statement.started is not None and statement.started <= statement.cancelled_at:
                record["StartedOn"] = int(epoch_ms + statement.started * 1000)
            if done:
                ended = statement.cancelled_at + self.timeline.cancelling
                record["CompletedOn"] = int(epoch_ms + ended * 1000)
        elif statement.started is None or now < statement.started:
            record["State"] = "WAITING"
        elif statement.finishes is not None and now < statement.finishes:
            record["State"] = "RUNNING"
            record["StartedOn"] = int(epoch_ms + statement.started * 1000)
        else:
            outcome = statement.outcome or StatementOutcome()
            record["State"] = "AVAILABLE"
            record["Progress"] = 1.0
            record["StartedOn"] = int(epoch_ms + (statement.started or now) * 1000)
            record["CompletedOn"] = int(epoch_ms + (statement.finishes or now) * 1000)
            output: dict[str, Any] = {"ExecutionCount": statement.id + 1}
            if outcome.error_name:
                output.update(
                    Status="error",
                    ErrorName=outcome.error_name,
                    ErrorValue=outcome.error_value or "",
                    Traceback=outcome.traceback,
                )
            else:
                output.update(Status="ok", Data={"TextPlain": outcome.output})
            record["Output"] = output
        return record

    def op_cancel_statement(self, params: dict[str, Any]) -> dict[str, Any]:
        _, statement = self._statement(params)
        if statement.finishes is not None and self.now >= statement.finishes:
            return {}
        statement.cancelled_at = self.now
        return {}

    def op_get_session_endpoint(self, params: dict[str, Any]) -> dict[str, Any]:
        session = self._settle(self._get(params["SessionId"]))
        if session.request.get("SessionType") != "SPARK_CONNECT":
            raise EmulatedError(
                "OperationNotSupportedException",
                f"Session {session.id} is not a Spark Connect session; create it with "
                "SessionType SPARK_CONNECT",
            )
        if session.status != "READY":
            raise EmulatedError(
                "IllegalSessionStateException", f"Session is in {session.status} status"
            )
        url = (
            self.endpoint_url
            or f"sc://{session.id}.spark-connect.glue.{self.emulator.region}.emulator.invalid"
        )
        token, expires = self.auth_token(self.timeline.token_ttl)
        if self.spark_proxy is not None:
            self.spark_proxy.grant(token, backend="glue", expires_at=expires, session_id=session.id)
        return {
            "SparkConnect": {
                "Url": url,
                "AuthToken": token,
                "AuthTokenExpirationTime": expires,
            }
        }

    # -- tags ----------------------------------------------------------------------------------

    def session_arn(self, session_id: str) -> str:
        """The ARN of a session, as the tagging operations take it."""
        return (
            f"arn:aws:glue:{self.emulator.region}:{self.emulator.account_id}:session/{session_id}"
        )

    def _tagged(self, arn: str) -> _Session:
        prefix = self.session_arn("")
        session = self._sessions.get(arn[len(prefix) :]) if arn.startswith(prefix) else None
        if session is None:
            raise EmulatedError("EntityNotFoundException", f"Resource {arn} not found.")
        return session

    def op_get_tags(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"Tags": dict(self._tagged(params["ResourceArn"]).tags)}

    def op_tag_resource(self, params: dict[str, Any]) -> dict[str, Any]:
        session = self._tagged(params["ResourceArn"])
        session.tags.update(params["TagsToAdd"])
        return {}

    def op_untag_resource(self, params: dict[str, Any]) -> dict[str, Any]:
        session = self._tagged(params["ResourceArn"])
        for key in params["TagsToRemove"]:
            session.tags.pop(key, None)
        return {}

"""The local emulator of the Glue, EMR Serverless and Athena session APIs.

Real boto3 clients talk to it: botocore builds, serializes and signs each request as it would
for AWS, and then, at botocore's ``before-send`` event, the emulator answers instead of the
network with a real HTTP response that botocore parses as usual. Plugging in at that event
(instead of serving on a loopback port) keeps the wire format real in both directions while
needing no thread, no port and no server to start or stop, so thousands of lifecycles run in a
second and a test can never leak a server. Every answer is checked against the operation's
output shape in botocore's model before it is sent, so the emulator cannot drift from the API.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import random
import re
import threading
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from email.utils import format_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlsplit
from xml.sax.saxutils import escape as xml_escape

import attrs
import boto3
import botocore.exceptions
import botocore.session
from botocore.awsrequest import AWSResponse
from botocore.config import Config
from botocore.model import OperationModel, ServiceModel, Shape

from sessionkit.backends.aws.common import check_shape
from sessionkit.testing.base import EmulatedError, EmulatedService
from sessionkit.testing.clock import VirtualClock
from sessionkit.testing.faults import Fault, FaultKind
from sessionkit.waiting import DEFAULT_POLL, PollPolicy

if TYPE_CHECKING:
    from sessionkit.testing.aws.athena import AthenaService
    from sessionkit.testing.aws.emr_serverless import EmrServerlessService
    from sessionkit.testing.aws.glue import GlueService
    from sessionkit.testing.aws.s3 import S3Service
    from sessionkit.testing.spark import LocalSparkConnect

__all__ = ["Call", "Emulator", "EmulatorDriftError", "emulated_backends"]

logger = logging.getLogger(__name__)

_SERVICES: Mapping[str, str] = {
    "glue": "sessionkit.testing.aws.glue:GlueService",
    "emr-serverless": "sessionkit.testing.aws.emr_serverless:EmrServerlessService",
    "athena": "sessionkit.testing.aws.athena:AthenaService",
    "s3": "sessionkit.testing.aws.s3:S3Service",
}


#: How each emulated backend is reached: ``"module:function"`` of a ``function(emulator,
#: location_name) -> keywords`` that makes a fresh location and returns the connection and
#: location keywords, and the ``"module:function"`` of a ``function(emulator) -> role``.
_WIRING: Mapping[str, tuple[str, str]] = {
    "glue": ("sessionkit.testing.aws.wiring:glue", "sessionkit.testing.aws.wiring:role"),
    "emr-serverless": (
        "sessionkit.testing.aws.wiring:emr_serverless",
        "sessionkit.testing.aws.wiring:role",
    ),
    "athena": ("sessionkit.testing.aws.wiring:athena", "sessionkit.testing.aws.wiring:role"),
}


def _load(path: str) -> Any:
    module_name, _, attribute = path.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


def emulated_backends() -> list[str]:
    """The backends the emulator can stand in for, sorted."""
    return sorted(_WIRING)


#: Places where the real services answer outside their own model, and the emulator follows the
#: services: Glue sends statement output status in lower case ("ok", "error") although the model
#: types it as the upper-case StatementState enum.
KNOWN_DEVIATIONS: frozenset[tuple[str, str, str]] = frozenset(
    {("glue", "GetStatement", "Statement.Output.Status")}
)


class EmulatorDriftError(AssertionError):
    """The emulator produced a response that does not fit botocore's output shape (a bug)."""


@attrs.frozen(kw_only=True)
class Call:
    """One call the emulator received.

    Attributes:
        service: The boto3 service name.
        operation: The operation name, e.g. ``"GetSession"``.
        at: Virtual seconds on the emulator clock.
        params: The decoded request parameters.
        outcome: ``"ok"``, an error code, or the name of an injected connection fault.
    """

    service: str
    operation: str
    at: float
    params: Mapping[str, Any] = attrs.field(repr=False)
    outcome: str


class _Body:
    """The raw body botocore reads from an :class:`AWSResponse`."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **kwargs: Any) -> Iterable[bytes]:
        yield self._data

    def read(self, amt: int | None = None) -> bytes:
        data, self._data = self._data, b""
        return data


class Emulator:
    """A local, in-process stand-in for the session APIs of Glue, EMR Serverless and Athena.

    Args:
        clock: The clock sessions advance on; default: a new :class:`VirtualClock`.
        region: The region of the clients it makes and the ARNs it reports.
        account_id: The account id in ARNs.
        seed: Seeds fault dice, ids and tokens, so runs repeat exactly.
        validate: Check every response against botocore's output shape (default on).

    Example:
        >>> from sessionkit.testing import Emulator
        >>> emulator = Emulator()
        >>> glue = emulator.client("glue")
        >>> glue.list_sessions()["Ids"]
        []
    """

    def __init__(
        self,
        *,
        clock: VirtualClock | None = None,
        region: str = "us-east-1",
        account_id: str = "123456789012",
        seed: int = 0,
        validate: bool = True,
    ) -> None:
        self.clock = clock or VirtualClock()
        self.region = region
        self.account_id = account_id
        self.rng = random.Random(seed)
        self.validate = validate
        self.faults: list[Fault] = []
        self.calls: list[Call] = []
        self._services: dict[str, EmulatedService] = {}
        self._models: dict[str, ServiceModel] = {}
        self._lock = threading.RLock()
        self._botocore = botocore.session.get_session()

    # -- services ----------------------------------------------------------------------------

    def service(self, name: str) -> EmulatedService:
        """The emulated service behind boto3 service ``name`` (made on first use)."""
        with self._lock:
            if name not in self._services:
                path = _SERVICES.get(name)
                if path is None:
                    raise EmulatedError(
                        "UnsupportedOperation", f"the sessionkit emulator does not emulate {name}"
                    )
                module_name, _, attribute = path.partition(":")
                cls = getattr(importlib.import_module(module_name), attribute)
                self._services[name] = cls(self)
            return self._services[name]

    @property
    def glue(self) -> GlueService:
        """The emulated Glue service (its timeline, scripts and sessions)."""
        return self.service("glue")  # type: ignore[return-value]

    @property
    def emr_serverless(self) -> EmrServerlessService:
        """The emulated EMR Serverless service."""
        return self.service("emr-serverless")  # type: ignore[return-value]

    @property
    def athena(self) -> AthenaService:
        """The emulated Athena service."""
        return self.service("athena")  # type: ignore[return-value]

    @property
    def s3(self) -> S3Service:
        """The emulated S3 (objects only: where Athena calculations leave their output)."""
        return self.service("s3")  # type: ignore[return-value]

    # -- wiring a backend ------------------------------------------------------------------------

    def keywords(self, backend: str, *, location: str = "sessionkit-local") -> dict[str, Any]:
        """The keywords that point ``backend`` at this emulator, with a fresh location.

        The location (an EMR Serverless application, an Athena work group, ...) is created on
        the emulator under the name ``location``; pass a new name for a second one.

        Args:
            backend: A backend name from :func:`emulated_backends`.
            location: The name of the location to create.

        Returns:
            Connection and location keywords for :func:`~sessionkit.open_session` and friends
            (add ``poll_policy=emulator.poll_policy()`` for virtual time).

        Raises:
            LookupError: When the emulator has no stand-in for ``backend``.
        """
        wiring = _WIRING.get(backend)
        if wiring is None:
            raise LookupError(
                f"the sessionkit emulator does not emulate the {backend} backend "
                f"(it emulates {', '.join(emulated_backends())})"
            )
        keywords: dict[str, Any] = _load(wiring[0])(self, location)
        return keywords

    def role(self, backend: str) -> str:
        """A role (or service account, or proxy user) the emulated ``backend`` accepts."""
        wiring = _WIRING.get(backend)
        if wiring is None:
            raise LookupError(f"the sessionkit emulator does not emulate the {backend} backend")
        role: str = _load(wiring[1])(self)
        return role

    # -- clients -------------------------------------------------------------------------------

    def boto3_session(self) -> boto3.session.Session:
        """A boto3 session whose clients all talk to this emulator (dummy credentials)."""
        session = boto3.session.Session(
            aws_access_key_id="sessionkit-emulator",
            aws_secret_access_key="sessionkit-emulator",
            region_name=self.region,
        )
        session.events.register("before-send", self._on_send)
        return session

    def client(self, service: str, *, config: Config | None = None) -> Any:
        """A real boto3 client for ``service`` whose requests this emulator answers.

        botocore's own retries are off (one attempt per call), so injected faults reach the
        caller exactly as counted; pass ``config`` to change that.

        Args:
            service: The boto3 service name: ``"glue"``, ``"emr-serverless"``, ``"athena"``.
            config: A botocore ``Config`` for the client.

        Returns:
            A boto3 client.
        """
        return self.boto3_session().client(
            service,
            config=config or Config(retries={"mode": "standard", "total_max_attempts": 1}),
        )

    def poll_policy(self, base: PollPolicy = DEFAULT_POLL) -> PollPolicy:
        """``base`` running on this emulator's clock, so waits take no real time."""
        return base.on(self.clock.monotonic, self.clock.sleep, self.clock.now)

    def use_spark(self, server: LocalSparkConnect) -> None:
        """Run statements on a real local Spark and hand out its Spark Connect endpoint.

        Every emulated service that runs code or hands out endpoints is switched over: ``run()``
        executes the code against ``server`` with ``spark`` bound, and ``endpoint()`` returns
        the server's URL and token, so ``Session.spark()`` connects to it. Needs the ``spark``
        extra (``pip install 'sessionkit-spark[spark]'``) and Java; see
        :mod:`sessionkit.testing.spark`.

        Args:
            server: A :class:`~sessionkit.testing.spark.LocalSparkConnect` (started here if it
                is not yet; start one per test session and share it, start-up takes seconds).

        Raises:
            NotSupportedError: When PySpark or Java is missing.
        """
        from sessionkit.testing.spark import attach

        attach(self, server)

    # -- faults and inspection -----------------------------------------------------------------

    def inject(
        self,
        kind: FaultKind,
        *,
        service: str | None = None,
        operations: Iterable[str] | str | None = None,
        rate: float = 1.0,
        count: int | None = None,
        latency: float = 0.0,
    ) -> Fault:
        """Inject a fault into matching calls (see :class:`Fault`).

        Returns:
            The fault; read its ``hits``, or remove it with :meth:`remove_fault`.
        """
        fault = Fault(
            kind=kind,
            service=service,
            operations=operations,
            rate=rate,
            count=count,
            latency=latency,
        )
        with self._lock:
            self.faults.append(fault)
        return fault

    def remove_fault(self, fault: Fault) -> None:
        """Stop injecting ``fault``."""
        with self._lock:
            self.faults.remove(fault)

    def clear_faults(self) -> None:
        """Stop injecting every fault."""
        with self._lock:
            self.faults.clear()

    def call_count(self, service: str | None = None, operation: str | None = None) -> int:
        """How many calls matched ``service`` and ``operation`` (``None`` matches any)."""
        return sum(
            1
            for call in self.calls
            if (service is None or call.service == service)
            and (operation is None or call.operation == operation)
        )

    def alive_sessions(self) -> dict[str, list[str]]:
        """Per service, the ids of sessions still holding resources (empty after clean tests)."""
        with self._lock:
            return {name: svc.alive() for name, svc in self._services.items() if svc.alive()}

    def created_sessions(self) -> dict[str, int]:
        """Per service, how many sessions were ever created (to count duplicates)."""
        with self._lock:
            return {name: svc.created() for name, svc in self._services.items()}

    def new_id(self, length: int = 32, alphabet: str = "0123456789abcdef") -> str:
        """A reproducible random id."""
        return "".join(self.rng.choice(alphabet) for _ in range(length))

    def request_id(self) -> str:
        """A reproducible AWS-style request id."""
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    # -- the wire --------------------------------------------------------------------------------

    def _model(self, service_id: str) -> ServiceModel:
        if service_id not in self._models:
            self._models[service_id] = self._botocore.get_service_model(service_id)
        return self._models[service_id]

    def _on_send(self, request: Any, event_name: str, **kwargs: Any) -> AWSResponse:
        _, service_id, operation_name = event_name.split(".", 2)
        if service_id not in _SERVICES:
            # Never let a call slip through to the real network from an emulator client.
            raise NotImplementedError(
                f"the sessionkit emulator does not emulate {service_id} ({operation_name})"
            )
        model = self._model(service_id)
        operation = model.operation_model(operation_name)
        with self._lock:
            return self._answer(service_id, operation, request)

    def _answer(self, service: str, operation: OperationModel, request: Any) -> AWSResponse:
        at = self.clock.monotonic()
        name = operation.name
        # A service whose wire format needs more than the model says (S3 puts the bucket in the
        # host name) decodes its own requests.
        decode = decode_request
        with contextlib.suppress(EmulatedError):
            decode = getattr(self.service(service), "decode_request", decode_request)
        try:
            params = decode(operation, request)
        except ValueError as exc:
            params, error = {}, EmulatedError("SerializationException", str(exc))
            return self._record(service, name, at, params, self._error(operation, error))
        lose_answer = False
        for fault in list(self.faults):
            if not fault.matches(service, name) or not fault.fires(self.rng):
                continue
            if fault.kind == "latency":
                self.clock.sleep(fault.latency)
            elif fault.kind == "connection_error":
                self._log(service, name, at, params, "connection_error")
                raise botocore.exceptions.EndpointConnectionError(endpoint_url=request.url)
            elif fault.kind == "read_timeout":
                lose_answer = True
            else:
                handler = self.service(service)
                if fault.kind == "throttle":
                    error = EmulatedError(
                        handler.throttling_error, "Rate exceeded", handler.throttling_status
                    )
                else:
                    error = EmulatedError(handler.server_error, "Internal failure (injected)", 500)
                return self._record(service, name, at, params, self._error(operation, error))
        try:
            handler = self.service(service)
            self._check_input(handler, operation, params)
            result = handler.handler(name)(params)
        except EmulatedError as error:
            response = self._error(operation, error)
        else:
            if self.validate:
                problems = [
                    (path, problem)
                    for path, problem in (
                        check_shape(result, operation.output_shape)
                        if operation.output_shape
                        else []
                    )
                    if (service, name, path) not in KNOWN_DEVIATIONS
                ]
                if problems:
                    raise EmulatorDriftError(
                        f"emulated {service} {name} answered outside the output shape: {problems}"
                    )
            response = self._success(operation, result)
        if lose_answer:
            self._log(service, name, at, params, "read_timeout")
            raise botocore.exceptions.ReadTimeoutError(endpoint_url=request.url)
        return self._record(service, name, at, params, response)

    def _check_input(
        self, handler: EmulatedService, operation: OperationModel, params: dict[str, Any]
    ) -> None:
        if operation.input_shape is None:
            return
        problems = check_shape(params, operation.input_shape)
        if problems:
            path, problem = problems[0]
            raise EmulatedError(handler.validation_error, f"{path} {problem}")

    def _record(
        self, service: str, name: str, at: float, params: dict[str, Any], response: AWSResponse
    ) -> AWSResponse:
        outcome = "ok"
        if response.status_code >= 300:
            outcome = str(response.headers.get("x-sessionkit-error", "error"))
        self._log(service, name, at, params, outcome)
        return response

    def _log(
        self, service: str, name: str, at: float, params: dict[str, Any], outcome: str
    ) -> None:
        self.calls.append(
            Call(service=service, operation=name, at=at, params=params, outcome=outcome)
        )

    def _success(self, operation: OperationModel, result: dict[str, Any]) -> AWSResponse:
        protocol = operation.service_model.resolved_protocol
        if protocol == "rest-xml":
            return _rest_xml_success(operation, result, self.request_id())
        headers = {"x-amzn-RequestId": self.request_id()}
        body = json.dumps(encode(result, operation.output_shape)).encode()
        version = operation.service_model.metadata.get("jsonVersion", "1.1")
        headers["Content-Type"] = (
            "application/json" if protocol == "rest-json" else f"application/x-amz-json-{version}"
        )
        return AWSResponse("https://emulator.invalid/", 200, headers, _Body(body))

    def _error(self, operation: OperationModel, error: EmulatedError) -> AWSResponse:
        protocol = operation.service_model.resolved_protocol
        headers = {"x-amzn-RequestId": self.request_id(), "x-sessionkit-error": error.code}
        if protocol == "rest-json":
            headers["x-amzn-ErrorType"] = error.code
            headers["Content-Type"] = "application/json"
            body = json.dumps({"message": error.message}).encode()
        elif protocol == "rest-xml":
            headers["Content-Type"] = "application/xml"
            body = _rest_xml_error(error, headers["x-amzn-RequestId"])
        else:
            headers["Content-Type"] = "application/x-amz-json-1.1"
            body = json.dumps({"__type": error.code, "message": error.message}).encode()
        return AWSResponse("https://emulator.invalid/", error.status, headers, _Body(body))


# ----------------------------------------------------------------------------- codecs


def _header_value(value: Any, shape: Shape) -> str:
    if isinstance(value, datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)
        moment = moment.astimezone(timezone.utc)
        if shape.serialization.get("timestampFormat") == "iso8601":
            return moment.isoformat().replace("+00:00", "Z")
        return format_datetime(moment, usegmt=True)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _rest_xml_success(
    operation: OperationModel, result: Mapping[str, Any], request_id: str
) -> AWSResponse:
    """Answer a rest-xml operation whose output is headers plus a blob payload (S3 GetObject)."""
    shape = operation.output_shape
    headers = {"x-amz-request-id": request_id}
    body = b""
    payload = shape.serialization.get("payload") if shape is not None else None
    for name, value in result.items():
        member = shape.members.get(name) if shape is not None else None
        if member is None or value is None:
            continue
        if name == payload:
            body = value.encode() if isinstance(value, str) else bytes(value)
        elif member.serialization.get("location") == "header":
            headers[member.serialization.get("name", name)] = _header_value(value, member)
    headers["Content-Length"] = str(len(body))
    return AWSResponse("https://emulator.invalid/", 200, headers, _Body(body))


def _rest_xml_error(error: EmulatedError, request_id: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{xml_escape(error.code)}</Code>"
        f"<Message>{xml_escape(error.message)}</Message>"
        f"<RequestId>{xml_escape(request_id)}</RequestId></Error>"
    ).encode()


def _uri_pattern(template: str) -> re.Pattern[str]:
    path = template.split("?", 1)[0]
    regex = re.sub(r"\{(\w+)\+\}", r"(?P<\1>.+)", path)
    regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", regex)
    return re.compile(regex + "$")


def _scalar(value: str, shape: Shape) -> Any:
    kind = shape.type_name
    if kind in ("integer", "long"):
        return int(value)
    if kind in ("float", "double"):
        return float(value)
    if kind == "boolean":
        return value.lower() == "true"
    if kind == "timestamp":
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value


def decode_request(operation: OperationModel, request: Any) -> dict[str, Any]:
    """Decode a serialized request back into parameters, by the operation's input shape.

    Args:
        operation: The botocore operation model.
        request: botocore's prepared request (method, url, headers, body).

    Returns:
        The request parameters.

    Raises:
        ValueError: When the request does not decode.
    """
    shape = operation.input_shape
    if shape is None:
        return {}
    body = request.body or b""
    if isinstance(body, str):
        body = body.encode()
    protocol = operation.service_model.resolved_protocol
    if protocol == "json":
        decoded: dict[str, Any] = json.loads(body or b"{}")
        return decoded
    params: dict[str, Any] = {}
    url = urlsplit(request.url)
    match = _uri_pattern(operation.http.get("requestUri", "/")).search(url.path)
    query = parse_qsl(url.query, keep_blank_values=True)
    payload = shape.serialization.get("payload")
    for name, member in shape.members.items():
        location = member.serialization.get("location")
        wire = member.serialization.get("name", name)
        if location == "uri" and match and wire in match.groupdict():
            params[name] = _scalar(unquote(match.group(wire)), member)
        elif location == "querystring":
            values = [v for k, v in query if k == wire]
            if values and member.type_name == "list":
                params[name] = [_scalar(v, member.member) for v in values]
            elif values:
                params[name] = _scalar(values[0], member)
        elif location == "header":
            value = request.headers.get(wire)
            if value is not None:
                params[name] = _scalar(value if isinstance(value, str) else value.decode(), member)
    if protocol == "rest-json" and body and not payload:
        params.update(json.loads(body))
    elif payload and body:
        params[payload] = body
    return params


def encode(value: Any, shape: Shape | None) -> Any:
    """Encode a response value for the JSON protocols (timestamps as epoch seconds)."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.timestamp()
    if isinstance(value, Mapping):
        if shape is not None and shape.type_name == "structure":
            return {k: encode(v, shape.members.get(k)) for k, v in value.items() if v is not None}
        inner = shape.value if shape is not None and shape.type_name == "map" else None
        return {k: encode(v, inner) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        inner = shape.member if shape is not None and shape.type_name == "list" else None
        return [encode(v, inner) for v in value]
    return value

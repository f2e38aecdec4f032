"""The AWS transport of the emulator: botocore's wire formats, in process and served.

In process, real boto3 clients talk to the emulator: botocore builds, serializes and signs each
request as it would for AWS, and then, at botocore's ``before-send`` event, the emulator answers
instead of the network with a real HTTP response that botocore parses as usual. Served
(:meth:`~sessionkit.testing.Emulator.serve`), the same :meth:`AwsTransport.answer` answers
requests that arrive on a loopback port from any client in any process. Every answer is checked
against the operation's output shape in botocore's model before it is sent, so the emulator
cannot drift from the API.

An operation the emulator does not emulate (or a service it has no stand-in for) answers as AWS
answers an unknown operation: ``UnknownOperationException`` (HTTP 400) on the JSON protocols,
``InvalidAction`` on the query protocol; botocore raises it as a ``ClientError``.

One botocore session per emulator builds every client, and one model loader per process reads
each service's JSON model once, so ``Emulator.client()`` costs milliseconds, not a model parse.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from email.utils import format_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlsplit
from xml.sax.saxutils import escape as xml_escape

import attrs
import boto3
import botocore.exceptions
import botocore.loaders
import botocore.session
from botocore.awsrequest import AWSResponse
from botocore.config import Config
from botocore.model import OperationModel, ServiceModel, Shape

from sessionkit.backends.aws.common import check_shape
from sessionkit.testing.base import (
    Dropped,
    EmulatedError,
    EmulatorDriftError,
    HttpReply,
    HttpRequest,
)

if TYPE_CHECKING:
    from sessionkit.testing.emulator import Emulator

__all__ = [
    "KNOWN_DEVIATIONS",
    "AwsTransport",
    "Dropped",
    "decode_request",
    "encode",
    "remote_keywords",
    "serve_request",
    "served_facts",
]

#: Places where the real services answer outside their own model, and the emulator follows the
#: services: Glue sends statement output status in lower case ("ok", "error") although the model
#: types it as the upper-case StatementState enum.
KNOWN_DEVIATIONS: frozenset[tuple[str, str, str]] = frozenset(
    {
        ("glue", "GetStatement", "Statement.Output.Status"),
        ("glue", "ListStatements", "Statements[].Output.Status"),
    }
)

#: The answer of an operation the emulator does not know, per protocol (code, HTTP status).
_UNKNOWN: Mapping[str, tuple[str, int]] = {
    "json": ("UnknownOperationException", 400),
    "rest-json": ("UnknownOperationException", 400),
    "rest-xml": ("NotImplemented", 501),
    "query": ("InvalidAction", 400),
    "ec2": ("InvalidAction", 400),
}

_CREDENTIAL_SCOPE = re.compile(r"Credential=[^/,\s]+/\d{8}/[^/]+/([^/]+)/aws4_request")

_LOADER: botocore.loaders.Loader | None = None
_LOADER_LOCK = threading.Lock()


def _shared_loader() -> botocore.loaders.Loader:
    """One botocore model loader for the process: it caches every JSON model it reads."""
    global _LOADER
    with _LOADER_LOCK:
        if _LOADER is None:
            _LOADER = botocore.loaders.create_loader()
        return _LOADER


class _Body:
    """The raw body botocore reads from an :class:`AWSResponse`."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **kwargs: Any) -> Iterable[bytes]:
        yield self._data

    def read(self, amt: int | None = None) -> bytes:
        data, self._data = self._data, b""
        return data


@attrs.frozen
class _Route:
    method: str
    pattern: re.Pattern[str]
    query_keys: frozenset[str]
    literal: int
    operation: str


class AwsTransport:
    """Answers botocore requests for one :class:`~sessionkit.testing.Emulator`.

    Args:
        emulator: The emulator whose services answer.
    """

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator
        self._botocore = botocore.session.Session()
        self._botocore.register_component("data_loader", _shared_loader())
        self.session = boto3.session.Session(
            aws_access_key_id="sessionkit-emulator",
            aws_secret_access_key="sessionkit-emulator",
            region_name=emulator.region,
            botocore_session=self._botocore,
        )
        self._botocore.register("before-send", self._on_send)
        self._models: dict[str, ServiceModel] = {}
        self._event_names: dict[str, str] = {}
        self._routes: dict[str, list[_Route]] = {}
        self._signing_names: dict[str, str] | None = None
        self._lock = threading.Lock()

    # -- clients -------------------------------------------------------------------------------

    def client(self, service: str, *, config: Config | None = None) -> Any:
        """A boto3 client for ``service`` answered by the emulator (see ``Emulator.client``)."""
        with self._lock:
            return self.session.client(
                service,
                config=config or Config(retries={"mode": "standard", "total_max_attempts": 1}),
            )

    def model(self, service: str) -> ServiceModel:
        """The botocore model of ``service`` (read once per process)."""
        with self._lock:
            if service not in self._models:
                model = self._botocore.get_service_model(service)
                self._models[service] = model
                self._event_names[model.service_id.hyphenize()] = service
            return self._models[service]

    # -- in process: botocore's before-send event ----------------------------------------------

    def _on_send(self, request: Any, event_name: str, **kwargs: Any) -> AWSResponse:
        _, service_id, operation_name = event_name.split(".", 2)
        service = self._event_names.get(service_id, service_id)
        operation = self.model(service).operation_model(operation_name)
        body = request.body or b""
        wire = HttpRequest(
            method=request.method,
            url=request.url,
            headers=dict(request.headers.items()),
            body=body.encode() if isinstance(body, str) else bytes(body),
        )
        try:
            reply = self.answer(service, operation, wire)
        except Dropped as dropped:
            if dropped.kind == "connection_error":
                raise botocore.exceptions.EndpointConnectionError(
                    endpoint_url=request.url
                ) from None
            raise botocore.exceptions.ReadTimeoutError(endpoint_url=request.url) from None
        return AWSResponse(request.url, reply.status, dict(reply.headers), _Body(reply.body))

    # -- served: route a request that arrived on the loopback port ------------------------------

    def route(self, request: HttpRequest) -> HttpReply:
        """Answer a request from any AWS client: find the service and operation, then answer.

        The service comes from the SigV4 credential scope of the ``Authorization`` header
        (fallbacks: the ``X-Amz-Target`` prefix, the host name); the operation from
        ``X-Amz-Target`` (JSON protocol), ``Action`` (query protocol) or the method and path
        (REST protocols).

        Raises:
            Dropped: When an injected connection fault loses the answer.
            EmulatorDriftError: When the emulator answers outside botocore's output shape.
        """
        service = self._service_of(request)
        if service is None:
            error = EmulatedError(
                "UnrecognizedClientException", "the sessionkit emulator cannot tell the service"
            )
            return _json_error(error, "1.1", self.emulator.request_id())
        model = self.model(service)
        name = self._operation_of(model, service, request)
        if name is None:
            return self._unknown(service, model, "(unrouted)")
        return self.answer(service, model.operation_model(name), request)

    def _signing_name_table(self) -> dict[str, str]:
        if self._signing_names is None:
            table: dict[str, str] = {}
            for service in self.emulator.emulated_services():
                try:
                    model = self.model(service)
                except botocore.exceptions.UnknownServiceError:
                    continue  # not an AWS service (served through its own route)
                table[model.signing_name or service] = service
                table[model.metadata.get("endpointPrefix", service)] = service
                prefix = model.metadata.get("targetPrefix")
                if prefix:
                    table[f"target:{prefix}"] = service
            self._signing_names = table
        return self._signing_names

    def _service_of(self, request: HttpRequest) -> str | None:
        table = self._signing_name_table()
        match = _CREDENTIAL_SCOPE.search(request.header("Authorization") or "")
        if match:
            return table.get(match.group(1), match.group(1))
        target = request.header("X-Amz-Target")
        if target:
            found = table.get(f"target:{target.rsplit('.', 1)[0]}")
            if found:
                return found
        host = (request.header("Host") or urlsplit(request.url).hostname or "").lower()
        return table.get(host.split(".", 1)[0])

    def _operation_of(self, model: ServiceModel, service: str, request: HttpRequest) -> str | None:
        protocol = model.resolved_protocol
        if protocol == "json":
            target = request.header("X-Amz-Target") or ""
            name = target.rsplit(".", 1)[-1]
            return name if name in model.operation_names else None
        if protocol in ("query", "ec2"):
            action = dict(parse_qsl(request.body.decode())).get("Action")
            if action is None:
                action = dict(parse_qsl(urlsplit(request.url).query)).get("Action")
            return action if action in model.operation_names else None
        url = urlsplit(request.url)
        query = {key for key, _ in parse_qsl(url.query, keep_blank_values=True)}
        handler = self._handler_or_none(service)
        best: tuple[bool, int] | None = None
        chosen: str | None = None
        for route in self._rest_routes(model, service):
            if route.method != request.method or not route.pattern.match(url.path):
                continue
            if not route.query_keys <= query:
                continue
            implemented = handler is not None and _implements(handler, route.operation)
            rank = (implemented, route.literal + 100 * len(route.query_keys))
            if best is None or rank > best:
                best, chosen = rank, route.operation
        return chosen

    def _handler_or_none(self, service: str) -> Any:
        try:
            return self.emulator.service(service)
        except EmulatedError:
            return None

    def _rest_routes(self, model: ServiceModel, service: str) -> list[_Route]:
        with self._lock:
            if service not in self._routes:
                routes = []
                for name in model.operation_names:
                    http = model.operation_model(name).http
                    template = http.get("requestUri", "/")
                    path, _, query = template.partition("?")
                    keys = frozenset(
                        part.split("=", 1)[0]
                        for part in query.split("&")
                        if part and "x-id" not in part
                    )
                    literal = len(re.sub(r"\{[^}]*\}", "", path))
                    routes.append(
                        _Route(
                            method=http.get("method", "POST"),
                            pattern=_uri_pattern(path),
                            query_keys=keys,
                            literal=literal,
                            operation=name,
                        )
                    )
                self._routes[service] = routes
            return self._routes[service]

    # -- the answer ----------------------------------------------------------------------------

    def answer(self, service: str, operation: OperationModel, request: HttpRequest) -> HttpReply:
        """Answer one request to ``operation`` of ``service`` (faults, validation, the call log).

        Raises:
            Dropped: When an injected connection fault loses the answer.
            EmulatorDriftError: When the emulator answers outside botocore's output shape.
        """
        emulator = self.emulator
        handler = self._handler_or_none(service)
        if handler is None or not _implements(handler, operation.name):
            return self._unknown(service, operation.service_model, operation.name)
        with emulator.lock:
            at = emulator.clock.monotonic()
            name = operation.name
            # A service whose wire format needs more than the model says (S3 puts the bucket in
            # the host name) decodes its own requests.
            decode = getattr(handler, "decode_request", decode_request)
            try:
                params = decode(operation, request)
            except ValueError as exc:
                error = EmulatedError("SerializationException", str(exc))
                return self._record(service, name, at, {}, self._error(operation, error))
            fault = emulator.fault_for(service, name)
            if fault is not None and fault.kind == "connection_error":
                emulator.record(service, name, at, params, "connection_error")
                raise Dropped("connection_error")
            if fault is not None and fault.kind in ("throttle", "server_error"):
                if fault.kind == "throttle":
                    error = EmulatedError(
                        handler.throttling_error, "Rate exceeded", handler.throttling_status
                    )
                else:
                    error = EmulatedError(handler.server_error, "Internal failure (injected)", 500)
                return self._record(service, name, at, params, self._error(operation, error))
            try:
                self._check_input(handler, operation, params)
                result = handler.handler(name)(params)
            except EmulatedError as error:
                reply = self._error(operation, error)
            else:
                self._check_output(service, operation, result)
                reply = self._success(operation, result)
            if fault is not None and fault.kind == "read_timeout":
                emulator.record(service, name, at, params, "read_timeout")
                raise Dropped("read_timeout")
            return self._record(service, name, at, params, reply)

    def _unknown(self, service: str, model: ServiceModel, name: str) -> HttpReply:
        protocol = model.resolved_protocol
        code, status = _UNKNOWN.get(protocol, ("UnknownOperationException", 400))
        error = EmulatedError(
            code, f"the sessionkit emulator does not emulate {service} {name}", status
        )
        with self.emulator.lock:
            at = self.emulator.clock.monotonic()
            if protocol in ("query", "ec2"):
                reply = _query_error(error, self.emulator.request_id())
            elif protocol == "rest-xml":
                reply = _rest_xml_error(error, self.emulator.request_id())
            elif protocol == "rest-json":
                reply = _rest_json_error(error, self.emulator.request_id())
            else:
                version = model.metadata.get("jsonVersion", "1.1")
                reply = _json_error(error, version, self.emulator.request_id())
            return self._record(service, name, at, {}, reply)

    def _check_input(self, handler: Any, operation: OperationModel, params: dict[str, Any]) -> None:
        if operation.input_shape is None:
            return
        problems = check_shape(params, operation.input_shape)
        if problems:
            path, problem = problems[0]
            raise EmulatedError(handler.validation_error, f"{path} {problem}")

    def _check_output(self, service: str, operation: OperationModel, result: Any) -> None:
        if not self.emulator.validate or operation.output_shape is None:
            return
        problems = [
            (path, problem)
            for path, problem in check_shape(result, operation.output_shape)
            if (service, operation.name, re.sub(r"\[\d+\]", "[]", path)) not in KNOWN_DEVIATIONS
        ]
        if problems:
            raise EmulatorDriftError(
                f"emulated {service} {operation.name} answered outside the output shape: {problems}"
            )

    def _record(
        self, service: str, name: str, at: float, params: dict[str, Any], reply: HttpReply
    ) -> HttpReply:
        outcome = "ok" if reply.status < 300 else reply.error_code or "error"
        self.emulator.record(service, name, at, params, outcome)
        return reply

    def _success(self, operation: OperationModel, result: dict[str, Any]) -> HttpReply:
        protocol = operation.service_model.resolved_protocol
        request_id = self.emulator.request_id()
        if protocol == "rest-xml":
            return _rest_xml_success(operation, result, request_id)
        if protocol in ("query", "ec2"):
            return _query_success(operation, result, request_id)
        body = json.dumps(encode(result, operation.output_shape)).encode()
        version = operation.service_model.metadata.get("jsonVersion", "1.1")
        content_type = (
            "application/json" if protocol == "rest-json" else f"application/x-amz-json-{version}"
        )
        headers = {"x-amzn-RequestId": request_id, "Content-Type": content_type}
        return HttpReply(status=200, headers=headers, body=body)

    def _error(self, operation: OperationModel, error: EmulatedError) -> HttpReply:
        protocol = operation.service_model.resolved_protocol
        request_id = self.emulator.request_id()
        if protocol == "rest-json":
            return _rest_json_error(error, request_id)
        if protocol == "rest-xml":
            return _rest_xml_error(error, request_id)
        if protocol in ("query", "ec2"):
            return _query_error(error, request_id)
        version = operation.service_model.metadata.get("jsonVersion", "1.1")
        return _json_error(error, version, request_id)


def remote_keywords(url: str, facts: Mapping[str, Any]) -> dict[str, Any]:
    """The AWS connection keywords that reach an emulator served at ``url``.

    A boto3 session with the emulator's dummy credentials (never the caller's real ones) and
    the endpoint URL.

    Args:
        url: The served emulator's base URL.
        facts: What :func:`served_facts` answered on the server (the region).
    """
    region = str(facts["region"])
    session = boto3.session.Session(
        aws_access_key_id="sessionkit-emulator",
        aws_secret_access_key="sessionkit-emulator",
        region_name=region,
    )
    return {"boto3_session": session, "endpoint_url": url}


def served_facts(emulator: Emulator) -> dict[str, Any]:
    """What a process other than the server's needs to build its AWS clients: the region."""
    return {"region": emulator.region}


def serve_request(emulator: Emulator, request: HttpRequest) -> HttpReply:
    """Answer a request the served emulator received that no provider path claimed.

    Every AWS client sends to the endpoint URL's root, so this is the server's fallback. The
    service comes from the SigV4 credential scope of the ``Authorization`` header (fallbacks:
    ``X-Amz-Target``, the host name); any access key and secret are accepted.

    Raises:
        Dropped: When an injected connection fault loses the answer.
    """
    reply = emulator.transport("aws").route(request)
    if not isinstance(reply, HttpReply):  # pragma: no cover - the transport's contract
        raise TypeError("the AWS transport must answer an HttpReply")
    return reply


def _implements(handler: Any, operation: str) -> bool:
    try:
        handler.handler(operation)
    except EmulatedError:
        return False
    return True


# ----------------------------------------------------------------------------- codecs


def _json_error(error: EmulatedError, version: str, request_id: str) -> HttpReply:
    headers = {
        "x-amzn-RequestId": request_id,
        "Content-Type": f"application/x-amz-json-{version}",
    }
    body = json.dumps({"__type": error.code, "message": error.message}).encode()
    return HttpReply(status=error.status, headers=headers, body=body, error_code=error.code)


def _rest_json_error(error: EmulatedError, request_id: str) -> HttpReply:
    headers = {
        "x-amzn-RequestId": request_id,
        "x-amzn-ErrorType": error.code,
        "Content-Type": "application/json",
    }
    body = json.dumps({"message": error.message}).encode()
    return HttpReply(status=error.status, headers=headers, body=body, error_code=error.code)


def _rest_xml_error(error: EmulatedError, request_id: str) -> HttpReply:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{xml_escape(error.code)}</Code>"
        f"<Message>{xml_escape(error.message)}</Message>"
        f"<RequestId>{xml_escape(request_id)}</RequestId></Error>"
    ).encode()
    headers = {"x-amz-request-id": request_id, "Content-Type": "application/xml"}
    return HttpReply(status=error.status, headers=headers, body=body, error_code=error.code)


def _query_error(error: EmulatedError, request_id: str) -> HttpReply:
    body = (
        "<ErrorResponse><Error><Type>Sender</Type>"
        f"<Code>{xml_escape(error.code)}</Code><Message>{xml_escape(error.message)}</Message>"
        f"</Error><RequestId>{xml_escape(request_id)}</RequestId></ErrorResponse>"
    ).encode()
    headers = {"x-amzn-RequestId": request_id, "Content-Type": "text/xml"}
    return HttpReply(status=error.status, headers=headers, body=body, error_code=error.code)


def _xml_value(value: Any, shape: Shape | None) -> str:
    if isinstance(value, Mapping):
        members = shape.members if shape is not None and shape.type_name == "structure" else {}
        return "".join(
            f"<{key}>{_xml_value(item, members.get(key))}</{key}>"
            for key, item in value.items()
            if item is not None
        )
    if isinstance(value, (list, tuple)):
        inner = shape.member if shape is not None and shape.type_name == "list" else None
        return "".join(f"<member>{_xml_value(item, inner)}</member>" for item in value)
    if isinstance(value, datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)
        return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
    if isinstance(value, bool):
        return "true" if value else "false"
    return xml_escape(str(value))


def _query_success(
    operation: OperationModel, result: Mapping[str, Any], request_id: str
) -> HttpReply:
    """Answer a query-protocol operation (STS): ``<OpResponse><OpResult>...</OpResult>``."""
    name = operation.name
    namespace = operation.service_model.metadata.get("xmlNamespace", "")
    body = (
        f'<{name}Response xmlns="{xml_escape(namespace)}"><{name}Result>'
        f"{_xml_value(result, operation.output_shape)}</{name}Result>"
        f"<ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata>"
        f"</{name}Response>"
    ).encode()
    headers = {"x-amzn-RequestId": request_id, "Content-Type": "text/xml"}
    return HttpReply(status=200, headers=headers, body=body)


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
) -> HttpReply:
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
    return HttpReply(status=200, headers=headers, body=body)


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
        request: The request (``method``, ``url``, ``headers``, ``body``): botocore's prepared
            request or an :class:`~sessionkit.testing.base.HttpRequest`.

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
    if protocol in ("query", "ec2"):
        form = dict(parse_qsl(body.decode(), keep_blank_values=True))
        return {
            name: _scalar(form[name], member)
            for name, member in shape.members.items()
            if name in form
        }
    params: dict[str, Any] = {}
    url = urlsplit(request.url)
    match = _uri_pattern(operation.http.get("requestUri", "/")).search(url.path)
    query = parse_qsl(url.query, keep_blank_values=True)
    payload = shape.serialization.get("payload")
    headers = {str(k).lower(): v for k, v in request.headers.items()}
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
            value = headers.get(wire.lower())
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

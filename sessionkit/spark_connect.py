"""PySpark Spark Connect clients bound to a session's endpoint, with a token that stays fresh.

Imported only by :meth:`sessionkit.Session.spark`; PySpark and gRPC come from the ``spark``
extra and are imported here, never by ``import sessionkit``.

Spark Connect endpoints of the cloud services hand out tokens that expire after about an hour,
while a ``SparkSession`` is often kept for a whole notebook or job. PySpark reads the connection
string once and sends the same metadata forever, so a long-lived ``SparkSession`` would start
failing when its token expires. The client built here leaves the token out of the connection
string; a gRPC interceptor puts the *current* credentials into every call, asking the
``Session`` for its endpoint (which fetches a new one shortly before the old token expires).

Which metadata carries the token is the backend's recipe, not this module's: an endpoint with
:attr:`~sessionkit.Endpoint.headers` has exactly those sent on every call (and never an
``authorization: Bearer``); one without sends its token as PySpark's ``token=`` would, as a
bearer token.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from sessionkit.models import Endpoint

__all__ = ["bearer_interceptor", "channel_url", "connect", "header_interceptor"]

_LOCAL_HOSTS = frozenset({"localhost"})


def channel_url(endpoint: Endpoint) -> str:
    """The endpoint's ``sc://`` connection string without the credentials sent per call.

    Dropped are ``token=`` and every parameter named like one of the endpoint's headers (the
    interceptor sends those, current, on every call); the recipe's other parameters stay, and
    PySpark sends them as metadata. PySpark sends a token over TLS only, except to
    ``localhost``; since the token travels in an interceptor here, the same rule is applied for
    bearer tokens by asking for TLS (``use_ssl=true``) when one goes to another host.

    Args:
        endpoint: The session's endpoint.

    Returns:
        ``sc://host:port/;param=...`` without the per-call credentials.
    """
    url = endpoint.spark_connect_url
    head, _, tail = url.partition(";")
    per_call = {key.lower() for key in endpoint.headers} | {"token"}
    params = [
        p for p in tail.split(";") if p and p.partition("=")[0].strip().lower() not in per_call
    ]
    host = urlsplit(head.replace("sc://", "http://", 1)).hostname or ""
    if (
        endpoint.token
        and not endpoint.headers
        and host not in _LOCAL_HOSTS
        and not any(p.lower() == "use_ssl=true" for p in params)
    ):
        params = [p for p in params if not p.startswith("use_ssl=")] + ["use_ssl=true"]
    head = head.rstrip("/")
    return head + "/" + "".join(f";{p}" for p in params) if params else head


class _CallDetails(NamedTuple):
    """A gRPC call's details with the metadata replaced (gRPC reads them by attribute)."""

    method: str
    timeout: float | None
    metadata: list[tuple[str, str]]
    credentials: Any
    wait_for_ready: bool | None
    compression: Any


class _Metadata:
    """Puts ``headers()`` into every call's metadata, replacing same-named entries.

    A gRPC client interceptor for every kind of call; ``headers`` is called once per call. The
    call's own ``authorization`` entry is always dropped: credentials come only from here.
    """

    def __init__(self, headers: Callable[[], Mapping[str, str]]) -> None:
        self._headers = headers

    def _details(self, details: Any) -> _CallDetails:
        current = {key.lower(): value for key, value in self._headers().items()}
        dropped = {*current, "authorization"}
        metadata = [
            (key, value)
            for key, value in (getattr(details, "metadata", None) or ())
            if key.lower() not in dropped
        ]
        metadata.extend(current.items())
        return _CallDetails(
            method=details.method,
            timeout=getattr(details, "timeout", None),
            metadata=metadata,
            credentials=getattr(details, "credentials", None),
            wait_for_ready=getattr(details, "wait_for_ready", None),
            compression=getattr(details, "compression", None),
        )

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(self._details(details), requests)

    def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(self._details(details), requests)


def header_interceptor(headers: Callable[[], Mapping[str, str]]) -> Any:
    """A gRPC client interceptor for every kind of call that sends ``headers()`` as metadata.

    Args:
        headers: Returns the metadata to send, called before every call (so it can hand out a
            fresh token); an entry replaces any of the same name the call already had.

    Returns:
        The interceptor, for ``ChannelBuilder.add_interceptor``.
    """
    grpc = importlib.import_module("grpc")
    # gRPC picks the calls an interceptor sees by isinstance, so it must derive from the
    # interceptor classes of the gRPC that is installed; they are only known at run time.
    interceptor = type(
        "SessionkitMetadataInterceptor",
        (
            _Metadata,
            grpc.UnaryUnaryClientInterceptor,
            grpc.UnaryStreamClientInterceptor,
            grpc.StreamUnaryClientInterceptor,
            grpc.StreamStreamClientInterceptor,
        ),
        {},
    )
    return interceptor(headers)


def bearer_interceptor(token: Callable[[], str | None]) -> Any:
    """A gRPC client interceptor that sends ``authorization: Bearer <token()>`` on every call.

    For endpoints without a header recipe (a generic Spark Connect server); the cloud services'
    recipes use :func:`header_interceptor`.

    Args:
        token: Returns the token to send (``None``: send none), called before every call.

    Returns:
        The interceptor, for ``ChannelBuilder.add_interceptor``.
    """

    def headers() -> Mapping[str, str]:
        current = token()
        return {"authorization": f"Bearer {current}"} if current else {}

    return header_interceptor(headers)


def connect(
    endpoint: Endpoint,
    token: Callable[[], str | None],
    *,
    current: Callable[[], Endpoint] | None = None,
) -> Any:
    """A new PySpark Spark Connect ``SparkSession`` on ``endpoint``.

    Args:
        endpoint: Where to connect (its URL and recipe; its credentials say what to send).
        token: Returns the token to send, called before every gRPC call (for endpoints without
            headers, sent as a bearer token).
        current: Returns the endpoint with valid credentials now (``Session.endpoint``), called
            before every gRPC call; its :attr:`~sessionkit.Endpoint.headers` are sent. Without
            it, the headers of ``endpoint`` are sent as they are.

    Returns:
        A ``pyspark.sql.connect.session.SparkSession`` (also PySpark's default and active
        session if there was none).

    Raises:
        ImportError: When PySpark with Spark Connect (gRPC) is not installed.
    """
    client = importlib.import_module("pyspark.sql.connect.client")
    connect_session = importlib.import_module("pyspark.sql.connect.session")
    builder = client.DefaultChannelBuilder(channel_url(endpoint))
    if endpoint.headers:
        fetch = current or (lambda: endpoint)
        builder.add_interceptor(header_interceptor(lambda: fetch().headers))
    elif endpoint.token:
        builder.add_interceptor(bearer_interceptor(token))
    return connect_session.SparkSession.builder.channelBuilder(builder).create()

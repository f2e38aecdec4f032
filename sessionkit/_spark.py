"""PySpark Spark Connect clients bound to a session's endpoint, with a token that stays fresh.

Imported only by :meth:`sessionkit.Session.spark`; PySpark and gRPC come from the ``spark``
extra and are imported here, never by ``import sessionkit``.

Spark Connect endpoints of the AWS services hand out tokens that expire after about an hour,
while a ``SparkSession`` is often kept for a whole notebook or job. PySpark reads the token from
the connection string once and sends that same value forever, so a long-lived ``SparkSession``
starts failing when it expires. The client built here sends no token of its own; a gRPC
interceptor puts the *current* token into every call, asking the ``Session`` for it (which
fetches a new endpoint shortly before the old token expires).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from sessionkit.models import Endpoint

__all__ = ["bearer_interceptor", "channel_url", "connect"]

_LOCAL_HOSTS = frozenset({"localhost"})


def channel_url(endpoint: Endpoint) -> str:
    """The endpoint's ``sc://`` connection string without its token.

    PySpark sends a token over TLS only, except to ``localhost``; since the token travels in an
    interceptor here, the same rule is applied by asking for TLS (``use_ssl=true``) whenever a
    token is to be sent to another host.

    Args:
        endpoint: The session's endpoint.

    Returns:
        ``sc://host:port/;param=...`` with every parameter but ``token``.
    """
    url = endpoint.spark_connect_url
    head, _, tail = url.partition(";")
    params = [p for p in tail.split(";") if p and not p.startswith("token=")]
    host = urlsplit(head.replace("sc://", "http://", 1)).hostname or ""
    if (
        endpoint.token
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


class _BearerToken:
    """Adds ``authorization: Bearer <token()>`` to every call (gRPC client interceptor)."""

    def __init__(self, token: Callable[[], str | None]) -> None:
        self._token = token

    def _details(self, details: Any) -> _CallDetails:
        metadata = [
            (key, value)
            for key, value in (getattr(details, "metadata", None) or ())
            if key.lower() != "authorization"
        ]
        current = self._token()
        if current:
            metadata.append(("authorization", f"Bearer {current}"))
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


def bearer_interceptor(token: Callable[[], str | None]) -> Any:
    """A gRPC client interceptor for every kind of call that sends ``token()`` as bearer token.

    Args:
        token: Returns the token to send (``None``: send none), called before every call.

    Returns:
        The interceptor, for ``ChannelBuilder.add_interceptor``.
    """
    grpc = importlib.import_module("grpc")
    # gRPC picks the calls an interceptor sees by isinstance, so it must derive from the
    # interceptor classes of the gRPC that is installed; they are only known at run time.
    interceptor = type(
        "BearerTokenInterceptor",
        (
            _BearerToken,
            grpc.UnaryUnaryClientInterceptor,
            grpc.UnaryStreamClientInterceptor,
            grpc.StreamUnaryClientInterceptor,
            grpc.StreamStreamClientInterceptor,
        ),
        {},
    )
    return interceptor(token)


def connect(endpoint: Endpoint, token: Callable[[], str | None]) -> Any:
    """A new PySpark Spark Connect ``SparkSession`` on ``endpoint``.

    Args:
        endpoint: Where to connect (its URL; its token only says whether one is needed).
        token: Returns the token to send, called before every gRPC call.

    Returns:
        A ``pyspark.sql.connect.session.SparkSession`` (also PySpark's default and active
        session if there was none).

    Raises:
        ImportError: When PySpark with Spark Connect (gRPC) is not installed.
    """
    client = importlib.import_module("pyspark.sql.connect.client")
    connect_session = importlib.import_module("pyspark.sql.connect.session")
    builder = client.DefaultChannelBuilder(channel_url(endpoint))
    if endpoint.token:
        builder.add_interceptor(bearer_interceptor(token))
    return connect_session.SparkSession.builder.channelBuilder(builder).create()

"""Authentication hooks for Livy servers: none, basic, bearer tokens, Entra ID, your own.

Every hook is an :class:`httpx.Auth`, so anything ``httpx`` accepts works as ``auth=`` too
(Kerberos/SPNEGO through ``httpx-gssapi``'s ``HTTPSPNEGOAuth``, for example). ``auth=`` also
takes a plain callable returning the headers to send, called again for every request.

Tokens are fetched per request and never kept in a ``repr``, a log record or an error message.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Mapping
from typing import Any

import httpx

from sessionkit.errors import InvalidConfigError

__all__ = [
    "FABRIC_SCOPE",
    "SYNAPSE_SCOPE",
    "BearerAuth",
    "HeaderAuth",
    "basic",
    "bearer",
    "entra_id",
    "fabric",
    "from_environment",
    "synapse",
    "to_httpx_auth",
]

#: The Entra ID scope of the Azure Synapse data plane (Livy API of Spark pools).
SYNAPSE_SCOPE = "https://dev.azuresynapse.net/.default"
#: The Entra ID scope of the Microsoft Fabric REST API (lakehouse Livy endpoints).
FABRIC_SCOPE = "https://api.fabric.microsoft.com/.default"

#: What ``auth=`` accepts besides ``None``.
AuthLike = httpx.Auth | Callable[[], Mapping[str, str]]


class HeaderAuth(httpx.Auth):
    """Adds the headers a callable returns to every request (called once per request).

    Args:
        provider: Returns the headers to set, e.g. ``{"Authorization": "Bearer ..."}``.
    """

    def __init__(self, provider: Callable[[], Mapping[str, str]]) -> None:
        self._provider = provider

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Set the provider's headers on the request."""
        headers = self._provider()
        if not isinstance(headers, Mapping):
            raise InvalidConfigError(
                "auth",
                f"the auth callable must return a mapping of headers, got {type(headers).__name__}",
            )
        for key, value in headers.items():
            request.headers[key] = value
        yield request

    def __repr__(self) -> str:
        return f"<HeaderAuth {getattr(self._provider, '__name__', 'provider')}>"


class BearerAuth(httpx.Auth):
    """Sends ``Authorization: Bearer <token>``, asking ``token_provider`` for the token per request.

    The provider does its own caching (``azure-identity`` credentials do); it is called for every
    request so an expired token is never sent twice.

    Args:
        token_provider: Returns the current access token.
    """

    def __init__(self, token_provider: Callable[[], str]) -> None:
        self._token_provider = token_provider

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Set the bearer token on the request."""
        request.headers["Authorization"] = f"Bearer {self._token_provider()}"
        yield request

    def __repr__(self) -> str:
        return "<BearerAuth token=***>"


def basic(username: str, password: str) -> httpx.Auth:
    """HTTP basic authentication (HDInsight's cluster login, Knox gateways).

    Args:
        username: The user name.
        password: The password (never shown).

    Returns:
        An :class:`httpx.BasicAuth`.
    """
    if not username:
        raise InvalidConfigError("auth", "basic auth needs a user name")
    return httpx.BasicAuth(username, password)


def bearer(token_provider: Callable[[], str]) -> BearerAuth:
    """A bearer token fetched from ``token_provider`` for every request.

    Args:
        token_provider: Returns the current access token (refreshing it as needed).

    Returns:
        A :class:`BearerAuth`.
    """
    if not callable(token_provider):
        raise InvalidConfigError(
            "auth", "bearer() takes a callable that returns the current token, not the token"
        )
    return BearerAuth(token_provider)


def entra_id(scope: str, credential: Any = None) -> BearerAuth:
    """Entra ID (Azure AD) tokens for ``scope`` from an ``azure-identity`` credential.

    Args:
        scope: The token scope, e.g. :data:`SYNAPSE_SCOPE`.
        credential: An ``azure.core.credentials.TokenCredential``; default
            ``azure.identity.DefaultAzureCredential()`` (environment, managed identity, Azure CLI).

    Returns:
        A :class:`BearerAuth` asking the credential for a token on every request (the
        credential caches tokens until shortly before they expire).

    Raises:
        InvalidConfigError: When ``azure-identity`` is needed and not installed.
    """
    if credential is None:
        try:
            from azure.identity import DefaultAzureCredential
        except ImportError as exc:
            raise InvalidConfigError(
                "auth",
                "Entra ID auth needs azure-identity: pip install 'sessionkit-spark[azure]' "
                "(or pass credential=...)",
            ) from exc
        credential = DefaultAzureCredential()
    chosen = credential

    def token() -> str:
        return str(chosen.get_token(scope).token)

    return BearerAuth(token)


def synapse(credential: Any = None) -> BearerAuth:
    """Entra ID auth for Azure Synapse Spark pools (scope :data:`SYNAPSE_SCOPE`)."""
    return entra_id(SYNAPSE_SCOPE, credential)


def fabric(credential: Any = None) -> BearerAuth:
    """Entra ID auth for Microsoft Fabric lakehouse Livy endpoints (scope :data:`FABRIC_SCOPE`)."""
    return entra_id(FABRIC_SCOPE, credential)


def to_httpx_auth(auth: Any) -> httpx.Auth | None:
    """Turn the ``auth=`` keyword into an :class:`httpx.Auth`.

    Args:
        auth: ``None``, an :class:`httpx.Auth`, a ``(user, password)`` pair, or a callable
            returning headers.

    Returns:
        The auth to send requests with, or ``None``.

    Raises:
        InvalidConfigError: For anything else.
    """
    if auth is None or isinstance(auth, httpx.Auth):
        return auth
    if isinstance(auth, tuple) and len(auth) == 2 and all(isinstance(p, str) for p in auth):
        return basic(auth[0], auth[1])
    if callable(auth):
        return HeaderAuth(auth)
    raise InvalidConfigError(
        "auth",
        f"must be an httpx.Auth, a (user, password) pair or a callable returning headers, "
        f"got {type(auth).__name__}",
    )


def from_environment(environ: Mapping[str, str] | None = None) -> httpx.Auth | None:
    """The auth the environment asks for (what the CLI and the live suite use).

    The first that is set wins: ``SESSIONKIT_LIVY_USER`` (with ``SESSIONKIT_LIVY_PASSWORD``):
    basic; ``SESSIONKIT_LIVY_TOKEN``: a fixed bearer token; ``SESSIONKIT_LIVY_AZURE`` =
    ``synapse`` or ``fabric``: Entra ID through azure-identity's default credential.

    Args:
        environ: The variables to read; default ``os.environ``.

    Returns:
        The auth, or ``None`` when none of the variables is set.

    Raises:
        InvalidConfigError: For an unknown ``SESSIONKIT_LIVY_AZURE`` value.
    """
    env = os.environ if environ is None else environ
    if env.get("SESSIONKIT_LIVY_USER"):
        return basic(env["SESSIONKIT_LIVY_USER"], env.get("SESSIONKIT_LIVY_PASSWORD", ""))
    token = env.get("SESSIONKIT_LIVY_TOKEN")
    if token:
        return bearer(lambda: token)
    azure = env.get("SESSIONKIT_LIVY_AZURE")
    if azure == "synapse":
        return synapse()
    if azure == "fabric":
        return fabric()
    if azure:
        raise InvalidConfigError(
            "auth", f"SESSIONKIT_LIVY_AZURE must be 'synapse' or 'fabric', got {azure!r}"
        )
    return None

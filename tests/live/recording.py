"""What the live suite sent and received, with secrets replaced, for a later run to compare.

DESIGN section 8: the live suite records the request parameters of every call and the Spark
Connect headers it sends, so the recipes of section 9 can be confirmed on a real account (and
checked again later) without reading code. A :class:`Recorder` hooks a boto3 client's events
and the Spark Connect interceptor, replaces secrets (``***``) and values that differ on every
run (``<generated>``: client tokens, ids, timestamps), and writes one JSON file per backend.
:func:`differences` compares two recordings by their structure: operations, parameter paths,
header names, and the values that are the same on every run.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from sessionkit.models import looks_secret

__all__ = ["Recorder", "differences"]

SECRET = "***"
GENERATED = "<generated>"

#: Request or response members whose values change on every run, or from account to account.
_GENERATED_KEYS = frozenset(
    {
        "ClusterId",
        "applicationId",
        "WorkGroup",
        "Role",
        "ExecutionRole",
        "ExecutionRoleArn",
        "executionRoleArn",
        "Endpoint",
        "endpoint",
        "EndpointUrl",
        "Url",
        "ClientRequestToken",
        "clientToken",
        "Id",
        "SessionId",
        "sessionId",
        "CalculationExecutionId",
        "NextToken",
        "nextToken",
        "Arn",
        "arn",
        "RequestId",
        "Name",
        "name",
        "Description",
        # sessionkit's lifecycle tags: a per-start nonce, the host, a time.
        "sessionkit:start-token",
        "sessionkit:created-by",
        "sessionkit:expires-at",
    }
)
#: Spark Connect metadata that the recipes fix to the same value on every call.
_STABLE_HEADERS = frozenset({"x-aws-proxy-port", "x-aws-force-h2"})


def _clean(value: Any, key: str = "", secret: bool = False) -> Any:
    """``value`` with secrets and run-specific values replaced (keys and structure kept).

    A scalar under a key that looks secret, or anywhere below one (``Credentials``), is
    :data:`SECRET`.
    """
    secret = secret or bool(key and looks_secret(key))
    if isinstance(value, Mapping):
        if value.get("Key") in _GENERATED_KEYS and "Value" in value:
            # A tag in list form ({"Key": ..., "Value": ...}): its value is the run's own.
            return {
                **{str(k): _clean(v, str(k), secret) for k, v in value.items()},
                "Value": GENERATED,
            }
        return {str(k): _clean(v, str(k), secret) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(item, key, secret) for item in value]
    if secret:
        return SECRET
    if key in _GENERATED_KEYS or isinstance(value, (datetime, bytes)):
        return GENERATED
    return value


class Recorder:
    """Collects the calls of boto3 clients and the Spark Connect headers of one backend."""

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self.calls: list[dict[str, Any]] = []
        self.spark: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._url = ""

    # -- boto3 ---------------------------------------------------------------------------------

    def watch(self, client: Any) -> Any:
        """Record every request ``client`` makes and the answer's members; returns the client."""
        service = client.meta.service_model.service_name
        client.meta.events.register(f"provide-client-params.{service}", self._request)
        client.meta.events.register(f"after-call.{service}", self._response)
        return client

    def _request(self, params: Mapping[str, Any], model: Any, **kwargs: Any) -> None:
        with self._lock:
            self.calls.append({"operation": model.name, "params": _clean(dict(params))})

    def _response(
        self, http_response: Any, parsed: Mapping[str, Any], model: Any, **kw: Any
    ) -> None:
        answer = {k: v for k, v in parsed.items() if k != "ResponseMetadata"}
        with self._lock:
            for call in reversed(self.calls):
                if call["operation"] == model.name and "answer" not in call:
                    call["answer"] = _clean(answer)
                    call["status"] = getattr(http_response, "status_code", None)
                    break

    # -- Spark Connect -------------------------------------------------------------------------

    def headers(self, url: str, metadata: Mapping[str, str]) -> None:
        """Record one call's connection-string parameters and headers, secrets replaced."""
        params = []
        for part in url.split(";")[1:]:
            name, _, value = part.partition("=")
            if name:
                params.append({"name": name, "value": value if not looks_secret(name) else SECRET})
        headers = {
            key: (value if key in _STABLE_HEADERS else SECRET) for key, value in metadata.items()
        }
        entry = {"url_params": params, "headers": headers}
        with self._lock:
            if entry not in self.spark:
                self.spark.append(entry)

    @contextmanager
    def spark_headers(self) -> Iterator[None]:
        """While active, every Spark Connect client sessionkit builds reports what it sends."""
        from sessionkit import spark_connect

        original: Callable[..., Any] = spark_connect.header_interceptor
        recorder = self

        def spying(headers: Callable[[], Mapping[str, str]]) -> Any:
            def current() -> Mapping[str, str]:
                sent = headers()
                recorder.headers(recorder._url, sent)
                return sent

            return original(current)

        original_url = spark_connect.channel_url

        def url(endpoint: Any) -> str:
            recorder._url = original_url(endpoint)
            return recorder._url

        spark_connect.header_interceptor = spying  # type: ignore[assignment]
        spark_connect.channel_url = url  # type: ignore[assignment]
        try:
            yield
        finally:
            spark_connect.header_interceptor = original  # type: ignore[assignment]
            spark_connect.channel_url = original_url  # type: ignore[assignment]

    # -- files -----------------------------------------------------------------------------------

    def as_dict(self) -> dict[str, Any]:
        """The recording, JSON-safe."""
        with self._lock:
            return {"backend": self.backend, "calls": list(self.calls), "spark": list(self.spark)}

    def write(self, directory: Path) -> Path:
        """Write ``<directory>/<backend>.json`` and return its path."""
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{self.backend}.json"
        path.write_text(json.dumps(self.as_dict(), indent=2, sort_keys=True, default=str) + "\n")
        return path


def _paths(value: Any, prefix: str = "") -> set[str]:
    if isinstance(value, Mapping):
        found = {prefix} if prefix else set()
        for key, item in value.items():
            found |= _paths(item, f"{prefix}.{key}" if prefix else str(key))
        return found
    if isinstance(value, list):
        found = {prefix}
        for item in value:
            found |= _paths(item, f"{prefix}[]")
        return found
    return {f"{prefix}={value!r}"} if value not in (SECRET, GENERATED) else {prefix}


def _signature(recording: Mapping[str, Any]) -> dict[str, set[str]]:
    signature: dict[str, set[str]] = {}
    for call in recording.get("calls", []):
        signature.setdefault(call["operation"], set()).update(_paths(call.get("params", {})))
    spark: set[str] = set()
    for entry in recording.get("spark", []):
        spark |= {f"param {p['name']}={p['value']}" for p in entry["url_params"]}
        spark |= {f"header {k}={v}" for k, v in entry["headers"].items()}
    signature["spark connect"] = spark
    return signature


def differences(previous: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """What ``current`` sends that ``previous`` did not, and the reverse (empty: the same).

    Compared are the operations called, the request parameter paths with their run-independent
    values, and the Spark Connect parameters and header names (secret values are ``***`` in
    both).
    """
    before, after = _signature(previous), _signature(current)
    found = []
    for operation in sorted(set(before) | set(after)):
        old, new = before.get(operation, set()), after.get(operation, set())
        found += [f"{operation}: no longer sends {item}" for item in sorted(old - new)]
        found += [f"{operation}: now sends {item}" for item in sorted(new - old)]
    return found

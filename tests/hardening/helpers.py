"""Shared set-up for the hardening tests: one emulator and the keywords of each AWS backend."""

from __future__ import annotations

from typing import Any

import attrs

from sessionkit.testing import Emulator

BACKENDS = ("glue", "emr-serverless", "athena")

#: The operation that starts a session, per backend.
START = {"glue": "CreateSession", "emr-serverless": "StartSession", "athena": "StartSession"}
#: The operation that stops a session, per backend.
STOP = {"glue": "StopSession", "emr-serverless": "TerminateSession", "athena": "TerminateSession"}

#: Planted secrets: none of these may ever be seen outside the request that carries them.
SECRET_VALUE = "PLANTED-s3cr3t value with spaces"
SECRET_CONF = {
    "spark.hadoop.fs.azure.account.key.acct.dfs.core.windows.net": SECRET_VALUE,
    "spark.hadoop.fs.s3a.secret.key": SECRET_VALUE + "-2",
    "spark.sql.shuffle.partitions": "8",
}


def setup(backend: str, *, validate: bool = True, **policy: Any) -> tuple[Emulator, dict[str, Any]]:
    """A fresh emulator and the keywords (connection, location, role, virtual-time policy)."""
    emulator = Emulator(validate=validate)
    keywords = emulator.keywords(backend)
    base = emulator.poll_policy()
    keywords["poll_policy"] = attrs.evolve(base, **policy) if policy else base
    keywords["role"] = emulator.role(backend)
    return emulator, keywords


def starts(emulator: Emulator, backend: str) -> list[dict[str, Any]]:
    """The start requests the emulator received."""
    return [dict(c.params) for c in emulator.calls if c.operation == START[backend]]


def service_calls(emulator: Emulator, backend: str) -> int:
    """How many calls reached the backend's service (the location set-up is not one)."""
    return emulator.call_count(backend)

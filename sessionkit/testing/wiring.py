"""How each emulated backend is reached: the wiring table, shared by the emulator and its server.

A table of lazy ``"module:function"`` strings into the provider packages (``testing/<provider>/``),
so neither this module nor its users import a provider until one is used; the emulator
(:mod:`sessionkit.testing.emulator`) and its server (:mod:`sessionkit.testing.server`) both read
it, and neither imports the other for it.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

__all__ = ["emulated_backends"]

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
    "emr": ("sessionkit.testing.aws.wiring:emr", "sessionkit.testing.aws.wiring:role"),
    "livy": ("sessionkit.testing.livy.wiring:keywords", "sessionkit.testing.livy.wiring:role"),
    "dataproc": (
        "sessionkit.testing.gcp.dataproc:wiring_keywords",
        "sessionkit.testing.gcp.dataproc:wiring_role",
    ),
}


def _load(path: str) -> Any:
    module_name, _, attribute = path.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


def emulated_backends() -> list[str]:
    """The backends the emulator can stand in for, sorted."""
    return sorted(_WIRING)

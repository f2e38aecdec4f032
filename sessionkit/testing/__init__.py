"""The local emulator of the session APIs, and test helpers users can import.

``sessionkit.testing`` is a product feature: the same emulator sessionkit tests itself against
is yours for your own tests and demos, with no cloud account. ``Emulator.serve()`` (or
``sessionkit emulator serve``, see :mod:`sessionkit.testing.server`) serves it on a loopback
port for clients in other processes.

>>> from sessionkit import open_session
>>> from sessionkit.testing import Emulator
>>> from sessionkit.testing.emulator import emulated_backends
>>> emulator = Emulator()
>>> backend = emulated_backends()[0]  # any; each has its own keywords and role
>>> with open_session(backend, role=emulator.role(backend),
...                   poll_policy=emulator.poll_policy(),
...                   **emulator.keywords(backend)) as session:
...     print(session.state)
READY
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sessionkit.testing.aws.athena import AthenaTimeline
    from sessionkit.testing.aws.emr_serverless import EmrServerlessTimeline
    from sessionkit.testing.aws.glue import GlueTimeline, python_executor
    from sessionkit.testing.base import EmulatedError, EmulatedService, StatementOutcome
    from sessionkit.testing.clock import VirtualClock
    from sessionkit.testing.emulator import Call, Emulator, EmulatorDriftError
    from sessionkit.testing.faults import Fault

__all__ = [
    "AthenaTimeline",
    "Call",
    "EmrServerlessTimeline",
    "EmulatedError",
    "EmulatedService",
    "Emulator",
    "EmulatorDriftError",
    "Fault",
    "GlueTimeline",
    "StatementOutcome",
    "VirtualClock",
    "python_executor",
]

# Imported on first use: the emulator brings the providers' SDKs, and sessionkit.testing.memory
# (the in-memory backend) must stay usable without them.
_WHERE = {
    "AthenaTimeline": "aws.athena",
    "Call": "emulator",
    "EmrServerlessTimeline": "aws.emr_serverless",
    "EmulatedError": "base",
    "EmulatedService": "base",
    "Emulator": "emulator",
    "EmulatorDriftError": "emulator",
    "Fault": "faults",
    "GlueTimeline": "aws.glue",
    "StatementOutcome": "base",
    "VirtualClock": "clock",
    "python_executor": "aws.glue",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'sessionkit.testing' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"sessionkit.testing.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})

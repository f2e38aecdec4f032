"""The local emulator of the session APIs, and test helpers users can import.

``sessionkit.testing`` is a product feature: the same emulator sessionkit tests itself against
is yours for your own tests and demos, with no AWS account. ``Emulator.serve()`` (or
``sessionkit emulator serve``, see :mod:`sessionkit.testing.server`) serves it on a loopback
port for clients in other processes.

>>> from sessionkit import open_session
>>> from sessionkit.testing import Emulator
>>> emulator = Emulator()
>>> with open_session("glue", client=emulator.client("glue"),
...                   poll_policy=emulator.poll_policy(),
...                   role="arn:aws:iam::123456789012:role/Demo") as session:
...     print(session.state)
READY
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sessionkit.testing.aws.athena import AthenaTimeline
    from sessionkit.testing.aws.emr_serverless import EmrServerlessTimeline
    from sessionkit.testing.aws.glue import GlueTimeline, StatementOutcome, python_executor
    from sessionkit.testing.base import EmulatedError, EmulatedService
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
    "StatementOutcome": "aws.glue",
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

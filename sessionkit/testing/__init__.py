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

# Imported on first use, as "module:name": the emulator brings the providers' SDKs, and
# sessionkit.testing.memory (the in-memory backend) must stay usable without them.
_WHERE = {
    "Call": "sessionkit.testing.emulator:Call",
    "EmulatedError": "sessionkit.testing.base:EmulatedError",
    "EmulatedService": "sessionkit.testing.base:EmulatedService",
    "Emulator": "sessionkit.testing.emulator:Emulator",
    "EmulatorDriftError": "sessionkit.testing.emulator:EmulatorDriftError",
    "Fault": "sessionkit.testing.faults:Fault",
    "StatementOutcome": "sessionkit.testing.base:StatementOutcome",
    "VirtualClock": "sessionkit.testing.clock:VirtualClock",
    # A provider's emulator names kept here for code written before they moved; typed (and
    # documented) in their own modules, which is where new code imports them from.
    "AthenaTimeline": "sessionkit.testing.aws.athena:AthenaTimeline",
    "EmrServerlessTimeline": "sessionkit.testing.aws.emr_serverless:EmrServerlessTimeline",
    "GlueTimeline": "sessionkit.testing.aws.glue:GlueTimeline",
    "python_executor": "sessionkit.testing.aws.glue:python_executor",
}


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module 'sessionkit.testing' has no attribute {name!r}")
    module, _, attribute = where.partition(":")
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})

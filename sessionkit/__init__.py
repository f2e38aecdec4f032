"""sessionkit: one Python interface over interactive Spark sessions in the cloud.

``sessionkit.available_backends()`` names the backends this installation can open (the
built-in ones and any registered); :func:`open_session` takes one of those names.

Names are loaded on first use, so ``import sessionkit`` stays cheap and imports no provider SDK
and not tenacity.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from sessionkit._version import __version__

if TYPE_CHECKING:
    from sessionkit import aio
    from sessionkit.api import (
        attach_session,
        ensure_session,
        list_sessions,
        open_session,
        sweep_sessions,
    )
    from sessionkit.errors import (
        BackendNotFoundError,
        CallTimeoutError,
        FleetFailedError,
        FleetTimeoutError,
        FleetWaitError,
        InvalidConfigError,
        NotSupportedError,
        ServiceError,
        SessionFailedError,
        SessionKitError,
        StatementFailedError,
        ThrottledError,
        WaitTimeoutError,
    )
    from sessionkit.fleet import wait_all
    from sessionkit.models import (
        DEFAULT_IDLE_TIMEOUT,
        Endpoint,
        Progress,
        SessionConfig,
        SessionInfo,
        StatementResult,
        Usage,
        Workers,
    )
    from sessionkit.registry import available_backends, register_backend
    from sessionkit.session import Session, SessionRef
    from sessionkit.states import SessionState, StatementState
    from sessionkit.waiting import DEFAULT_POLL, STATEMENT_POLL, PollPolicy

__all__ = [
    "DEFAULT_IDLE_TIMEOUT",
    "DEFAULT_POLL",
    "STATEMENT_POLL",
    "BackendNotFoundError",
    "CallTimeoutError",
    "Endpoint",
    "FleetFailedError",
    "FleetTimeoutError",
    "FleetWaitError",
    "InvalidConfigError",
    "NotSupportedError",
    "PollPolicy",
    "Progress",
    "ServiceError",
    "Session",
    "SessionConfig",
    "SessionFailedError",
    "SessionInfo",
    "SessionKitError",
    "SessionRef",
    "SessionState",
    "StatementFailedError",
    "StatementResult",
    "StatementState",
    "ThrottledError",
    "Usage",
    "WaitTimeoutError",
    "Workers",
    "__version__",
    "aio",
    "attach_session",
    "available_backends",
    "ensure_session",
    "list_sessions",
    "open_session",
    "register_backend",
    "sweep_sessions",
    "wait_all",
]

_WHERE = {
    "attach_session": "api",
    "ensure_session": "api",
    "sweep_sessions": "api",
    "available_backends": "registry",
    "list_sessions": "api",
    "open_session": "api",
    "register_backend": "registry",
    "BackendNotFoundError": "errors",
    "CallTimeoutError": "errors",
    "FleetFailedError": "errors",
    "FleetTimeoutError": "errors",
    "FleetWaitError": "errors",
    "InvalidConfigError": "errors",
    "NotSupportedError": "errors",
    "ServiceError": "errors",
    "SessionFailedError": "errors",
    "SessionKitError": "errors",
    "StatementFailedError": "errors",
    "ThrottledError": "errors",
    "WaitTimeoutError": "errors",
    "wait_all": "fleet",
    "DEFAULT_IDLE_TIMEOUT": "models",
    "Endpoint": "models",
    "Progress": "models",
    "SessionConfig": "models",
    "SessionInfo": "models",
    "StatementResult": "models",
    "Usage": "models",
    "Workers": "models",
    "Session": "session",
    "SessionRef": "session",
    "SessionState": "states",
    "StatementState": "states",
    "DEFAULT_POLL": "waiting",
    "STATEMENT_POLL": "waiting",
    "PollPolicy": "waiting",
}


#: Submodules reachable as attributes after ``import sessionkit``, imported on first use.
_SUBMODULES = frozenset({"aio", "errors", "testing"})


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"sessionkit.{name}")
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'sessionkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"sessionkit.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})

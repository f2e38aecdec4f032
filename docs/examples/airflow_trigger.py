"""An Airflow deferrable trigger that waits for a sessionkit session, built on sessionkit.aio.

The operator starts the session (``open_session(..., wait=False)``) and defers with this
trigger; the triggerer process then awaits READY on its event loop, next to hundreds of other
triggers, and wakes the task with an event. Only a :class:`sessionkit.SessionRef` (plain JSON)
and plain connection keywords cross the process boundary.

Airflow is not needed to run or test it: without Airflow installed, stand-ins of the same shape
are used (``serialize()`` returns ``(classpath, kwargs)``; ``run()`` is an async generator of
``TriggerEvent``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import sessionkit.aio as aio
from sessionkit import SessionFailedError, SessionRef, WaitTimeoutError

try:
    from airflow.triggers.base import BaseTrigger, TriggerEvent
except ImportError:  # the same shape, so this example runs (and is tested) without Airflow

    class TriggerEvent:  # type: ignore[no-redef]
        """What a trigger yields: a JSON-safe payload for the resumed task."""

        def __init__(self, payload: Any) -> None:
            self.payload = payload

        def __eq__(self, other: object) -> bool:
            return isinstance(other, TriggerEvent) and other.payload == self.payload

        def __repr__(self) -> str:
            return f"TriggerEvent({self.payload!r})"

    class BaseTrigger:  # type: ignore[no-redef]
        """Airflow's base class: triggers are serialized, rebuilt and run in the triggerer."""

        def __init__(self, **kwargs: Any) -> None:
            pass


class SessionReadyTrigger(BaseTrigger):  # type: ignore[misc]
    """Waits until a session is READY; yields one event: ready, failed or timeout.

    Args:
        ref: ``SessionRef.to_dict()`` of the session to wait for.
        connection: Plain connection keywords (``region``, ``profile``, ``endpoint_url``).
        timeout_seconds: The longest wait.
    """

    def __init__(
        self,
        ref: dict[str, Any],
        connection: dict[str, Any] | None = None,
        timeout_seconds: float = 1200.0,
    ) -> None:
        super().__init__()
        self.ref = SessionRef.from_dict(ref).to_dict()  # checked now, in the worker
        self.connection = dict(connection or {})
        self.timeout_seconds = timeout_seconds

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Return the classpath and keyword arguments that rebuild this trigger."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "ref": self.ref,
                "connection": self.connection,
                "timeout_seconds": self.timeout_seconds,
            },
        )

    def connection_keywords(self) -> dict[str, Any]:
        """The keywords that reach the provider (override to build a client yourself)."""
        return dict(self.connection)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Await READY on the triggerer's event loop, then yield one event."""
        ref = SessionRef.from_dict(self.ref)
        payload: dict[str, Any] = {"ref": self.ref}
        try:
            session = await aio.attach_session(
                ref.backend, ref.session_id, **ref.keywords(self.connection_keywords())
            )
            info = await session.wait_until_ready(self.timeout_seconds)
        except SessionFailedError as exc:
            yield TriggerEvent({**payload, "status": "failed", "message": str(exc)})
            return
        except WaitTimeoutError as exc:
            yield TriggerEvent({**payload, "status": "timeout", "message": str(exc)})
            return
        yield TriggerEvent({**payload, "status": "ready", "state": info.state.value})

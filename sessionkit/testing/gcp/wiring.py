"""How the emulator core reaches Google Cloud: the Dataproc client and typed access to its service.

The core (:mod:`sessionkit.testing.emulator`) names none of this; its client table points at
:func:`client` as a lazy ``"module:function"`` string, so ``emulator.client("dataproc")`` is a
real ``SessionControllerClient`` answered in process. The backend's keywords and service
account come from :mod:`sessionkit.testing.gcp.dataproc` (``wiring_keywords``, ``wiring_role``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from google.cloud import dataproc_v1

    from sessionkit.testing.emulator import Emulator
    from sessionkit.testing.gcp.dataproc import DataprocService

__all__ = ["client", "dataproc"]


def client(emulator: Emulator, service: str) -> dataproc_v1.SessionControllerClient:
    """A real ``SessionControllerClient`` (REST transport) whose requests ``emulator`` answers.

    Args:
        emulator: The emulator that answers.
        service: ``"dataproc"`` (the only Google service the emulator stands in for).
    """
    from sessionkit.testing.gcp.dataproc import client as dataproc_client

    return dataproc_client(emulator)


def dataproc(emulator: Emulator) -> DataprocService:
    """The emulated Dataproc Serverless service, typed: ``emulator.dataproc``."""
    return cast("DataprocService", emulator.service("dataproc"))

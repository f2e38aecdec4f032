"""How each emulated AWS backend is reached: its client keywords, a fresh location, a role."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sessionkit.testing.emulator import Emulator

__all__ = ["athena", "emr", "emr_serverless", "glue", "role"]


def role(emulator: Emulator) -> str:
    """An IAM role ARN in the emulator's account (the emulator accepts any well-formed one)."""
    return f"arn:aws:iam::{emulator.account_id}:role/SessionkitLocal"


def glue(emulator: Emulator, location: str) -> dict[str, Any]:
    """Glue needs only its client: sessions live in the account and region."""
    return {"client": emulator.client("glue")}


def emr_serverless(emulator: Emulator, location: str) -> dict[str, Any]:
    """A new interactive application named ``location``, and the client."""
    application_id = emulator.emr_serverless.create_application(location)
    return {"client": emulator.client("emr-serverless"), "application_id": application_id}


def athena(emulator: Emulator, location: str) -> dict[str, Any]:
    """A new Spark work group named ``location``, the client and the S3 client for output."""
    work_group = emulator.athena.create_work_group(location)
    return {
        "client": emulator.client("athena"),
        # Athena leaves a calculation's stdout in S3; the emulator keeps it in its own S3.
        "s3_client": emulator.client("s3"),
        "work_group": work_group,
    }


def emr(emulator: Emulator, location: str) -> dict[str, Any]:
    """A new WAITING cluster named ``location`` with sessions enabled, and the client."""
    cluster_id = emulator.service("emr").create_cluster(location)  # type: ignore[attr-defined]
    return {"client": emulator.client("emr"), "cluster_id": cluster_id}

"""Typed access to an emulator's AWS services, for code that a type checker reads.

``emulator.glue``, ``emulator.emr_serverless``, ``emulator.athena``, ``emulator.emr``,
``emulator.s3`` and ``emulator.sts`` are resolved at run time from the emulator's service table,
so a type checker sees them as ``Any``. These functions return the same objects with their
classes:

>>> from sessionkit.testing import Emulator
>>> from sessionkit.testing.aws import services
>>> emulator = Emulator()
>>> glue = services.glue(emulator)  # a GlueService to mypy
>>> glue is emulator.glue
True
>>> glue.timeline.provisioning
6.0
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from sessionkit.testing.aws.athena import AthenaService
    from sessionkit.testing.aws.emr import EmrService
    from sessionkit.testing.aws.emr_serverless import EmrServerlessService
    from sessionkit.testing.aws.glue import GlueService
    from sessionkit.testing.aws.s3 import S3Service
    from sessionkit.testing.aws.sts import StsService
    from sessionkit.testing.emulator import Emulator

__all__ = ["athena", "emr", "emr_serverless", "glue", "s3", "sts"]


def glue(emulator: Emulator) -> GlueService:
    """The emulated Glue service (its timeline, scripts and sessions): ``emulator.glue``."""
    return cast("GlueService", emulator.service("glue"))


def emr_serverless(emulator: Emulator) -> EmrServerlessService:
    """The emulated EMR Serverless service: ``emulator.emr_serverless``."""
    return cast("EmrServerlessService", emulator.service("emr-serverless"))


def athena(emulator: Emulator) -> AthenaService:
    """The emulated Athena service: ``emulator.athena``."""
    return cast("AthenaService", emulator.service("athena"))


def emr(emulator: Emulator) -> EmrService:
    """The emulated EMR (on EC2) service, its clusters and sessions: ``emulator.emr``."""
    return cast("EmrService", emulator.service("emr"))


def s3(emulator: Emulator) -> S3Service:
    """The emulated S3 (objects only: where Athena calculations leave their output)."""
    return cast("S3Service", emulator.service("s3"))


def sts(emulator: Emulator) -> StsService:
    """The emulated STS (who the caller is): ``emulator.sts``."""
    return cast("StsService", emulator.service("sts"))

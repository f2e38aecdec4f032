"""How the emulator core reaches AWS: settings, clients, the boto3 session, each backend's keywords.

The core (:mod:`sessionkit.testing.emulator`) names none of this; its tables point here as
lazy ``"module:function"`` strings:

- ``SETTINGS``: the AWS settings of every emulator, ``Emulator(region=..., account_id=...)``,
  read back as ``emulator.region`` and ``emulator.account_id``;
- :func:`client`: what ``emulator.client("glue")`` (or any other AWS service name) returns;
- :func:`boto3_session`: ``emulator.boto3_session()``;
- :func:`role` and one keywords function per backend: ``emulator.role(backend)`` and
  ``emulator.keywords(backend)``.

>>> from sessionkit.testing import Emulator
>>> emulator = Emulator(region="eu-west-1", account_id="111122223333")
>>> glue = emulator.client("glue")
>>> glue.list_sessions()["Ids"], glue.meta.region_name
([], 'eu-west-1')
>>> emulator.boto3_session().client("sts").get_caller_identity()["Account"]
'111122223333'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import boto3
    from botocore.config import Config

    from sessionkit.testing.emulator import Emulator

__all__ = [
    "SETTINGS",
    "athena",
    "boto3_session",
    "client",
    "emr",
    "emr_serverless",
    "glue",
    "role",
]

#: The AWS settings of an emulator and their defaults: the region of the clients it makes and
#: of the ARNs and endpoints it reports, and the account id in ARNs.
SETTINGS: Mapping[str, Any] = {"region": "us-east-1", "account_id": "123456789012"}


def client(emulator: Emulator, service: str, *, config: Config | None = None) -> Any:
    """A real boto3 client for ``service`` whose requests ``emulator`` answers, in process.

    botocore's own retries are off (one attempt per call), so injected faults reach the caller
    exactly as counted; pass ``config`` (a botocore ``Config``) to change that. An operation
    the emulator does not emulate, or a service it has no stand-in for, answers like an unknown
    operation of the service (a ``ClientError`` with code ``UnknownOperationException``,
    ``InvalidAction`` on the query protocol).

    Args:
        emulator: The emulator that answers.
        service: The boto3 service name: ``"glue"``, ``"emr-serverless"``, ``"athena"``, ...
        config: A botocore ``Config`` for the client.
    """
    return emulator.transport("aws").client(service, config=config)


def boto3_session(emulator: Emulator) -> boto3.session.Session:
    """The boto3 session whose clients all talk to ``emulator`` (dummy credentials).

    It is one session per emulator, made on first use: its clients share the models read once,
    so making one costs milliseconds. Pass it as ``boto3_session=`` to code that builds its own
    clients.
    """
    session: boto3.session.Session = emulator.transport("aws").session
    return session


def role(emulator: Emulator) -> str:
    """An IAM role ARN in the emulator's account (the emulator accepts any well-formed one)."""
    return f"arn:aws:iam::{emulator.account_id}:role/SessionkitLocal"


def glue(emulator: Emulator, location: str) -> dict[str, Any]:
    """Glue needs only its client: sessions live in the account and region."""
    return {"client": emulator.client("glue")}


def emr_serverless(emulator: Emulator, location: str) -> dict[str, Any]:
    """A new interactive application named ``location``, and the client."""
    from sessionkit.testing.aws import services

    application_id = services.emr_serverless(emulator).create_application(location)
    return {"client": emulator.client("emr-serverless"), "application_id": application_id}


def athena(emulator: Emulator, location: str) -> dict[str, Any]:
    """A new Spark work group named ``location``, the client and the S3 client for output."""
    from sessionkit.testing.aws import services

    work_group = services.athena(emulator).create_work_group(location)
    return {
        "client": emulator.client("athena"),
        # Athena leaves a calculation's stdout in S3; the emulator keeps it in its own S3.
        "s3_client": emulator.client("s3"),
        "work_group": work_group,
    }


def emr(emulator: Emulator, location: str) -> dict[str, Any]:
    """A new WAITING cluster named ``location`` with sessions enabled, and the client."""
    from sessionkit.testing.aws import services

    cluster_id = services.emr(emulator).create_cluster(location)
    return {"client": emulator.client("emr"), "cluster_id": cluster_id}

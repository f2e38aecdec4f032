"""The emulated AWS STS: ``GetCallerIdentity`` (query protocol, XML answers).

Clients ask STS who they are before they do anything else (awswrangler, dbt-glue, the AWS
CLI's ``sts get-caller-identity``), so the emulator answers it with the emulator's account and
a user named ``sessionkit-emulator``. STS speaks the query protocol: form-encoded requests and
XML answers, which this module decodes and encodes itself (the emulator's own codecs are for
the JSON protocols).

Where the public documentation leaves the behaviour open, the emulator decides: the caller is
always the IAM user ``sessionkit-emulator`` (``UserId`` ``AIDA`` and 17 characters), whatever
the request's credentials; any other STS operation answers ``InvalidAction``, as STS does for
an action it does not know.
"""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import parse_qsl

from botocore.model import OperationModel

from sessionkit.testing.base import EmulatedError, EmulatedService

__all__ = ["StsService"]

_NAMESPACE = "https://sts.amazonaws.com/doc/2011-06-15/"


class _Body:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **kwargs: Any) -> Any:
        yield self._data

    def read(self, amt: int | None = None) -> bytes:
        data, self._data = self._data, b""
        return data


class StsService(EmulatedService):
    """Emulated STS: who the caller is."""

    service: ClassVar[str] = "sts"
    validation_error: ClassVar[str] = "ValidationError"
    throttling_error: ClassVar[str] = "Throttling"
    throttling_status: ClassVar[int] = 400
    server_error: ClassVar[str] = "InternalFailure"

    def handler(self, operation: str) -> Any:
        """The method answering ``operation``; an unknown one is ``InvalidAction``."""
        if operation != "GetCallerIdentity":
            raise EmulatedError(
                "InvalidAction", f"Could not find operation {operation} for version 2011-06-15"
            )
        return super().handler(operation)

    def op_get_caller_identity(self, params: dict[str, Any]) -> dict[str, Any]:
        account = self.emulator.account_id
        return {
            "UserId": "AIDA" + self.emulator.new_id(17, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"),
            "Account": account,
            "Arn": f"arn:aws:iam::{account}:user/sessionkit-emulator",
        }

    # -- the query protocol ------------------------------------------------------------------

    @staticmethod
    def decode_request(operation: OperationModel, request: Any) -> dict[str, Any]:
        """The form-encoded parameters of a query-protocol request (flat members only)."""
        body = request.body or b""
        if isinstance(body, bytes):
            body = body.decode()
        return {key: value for key, value in parse_qsl(body) if key not in ("Action", "Version")}

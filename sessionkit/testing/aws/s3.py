"""The emulated Amazon S3, reduced to what sessionkit reads: objects by bucket and key.

Athena for Apache Spark leaves a calculation's stdout and stderr in S3 and reports only their
URIs; the emulated Athena writes them here, so a real boto3 S3 client reads the real text back
with ``GetObject``. S3 speaks rest-xml: the bucket travels in the host name (virtual-hosted
style) or in the first path segment (path style), which the model's URI template does not say,
so this service decodes its own requests.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit

import attrs
from botocore.model import OperationModel

from sessionkit.testing.base import EmulatedError, EmulatedService

__all__ = ["S3Service", "split_s3_uri"]


def split_s3_uri(uri: str) -> tuple[str, str]:
    """Split ``s3://bucket/key`` into bucket and key.

    Raises:
        ValueError: When ``uri`` is not an ``s3://`` URI with a bucket and a key.
    """
    parts = urlsplit(uri)
    key = parts.path.lstrip("/")
    if parts.scheme.lower() != "s3" or not parts.netloc or not key:
        raise ValueError(f"not an s3://bucket/key URI: {uri!r}")
    return parts.netloc, key


@attrs.frozen(kw_only=True)
class _Object:
    data: bytes
    content_type: str
    modified: datetime

    @property
    def etag(self) -> str:
        return '"' + hashlib.md5(self.data, usedforsecurity=False).hexdigest() + '"'


class S3Service(EmulatedService):
    """Emulated S3 objects: :meth:`put_object` in Python, ``GetObject`` over the wire."""

    service: ClassVar[str] = "s3"
    validation_error: ClassVar[str] = "InvalidArgument"
    throttling_error: ClassVar[str] = "SlowDown"
    throttling_status: ClassVar[int] = 503
    server_error: ClassVar[str] = "InternalError"

    def __init__(self, emulator: Any) -> None:
        super().__init__(emulator)
        self._buckets: dict[str, dict[str, _Object]] = {}

    # -- test controls -------------------------------------------------------------------------

    def put_object(
        self, bucket: str, key: str, data: bytes | str, *, content_type: str = "text/plain"
    ) -> str:
        """Store an object (the bucket is made on first use).

        Args:
            bucket: The bucket name.
            key: The object key.
            data: The content; text is stored as UTF-8.
            content_type: The ``Content-Type`` ``GetObject`` answers with.

        Returns:
            The object's ``s3://bucket/key`` URI.
        """
        body = data.encode() if isinstance(data, str) else bytes(data)
        self._buckets.setdefault(bucket, {})[key] = _Object(
            data=body, content_type=content_type, modified=self.emulator.clock.now()
        )
        return f"s3://{bucket}/{key}"

    def read(self, uri: str) -> bytes:
        """The content of the object at ``s3://bucket/key`` (``KeyError`` if there is none)."""
        bucket, key = split_s3_uri(uri)
        return self._buckets[bucket][key].data

    def delete_object(self, bucket: str, key: str) -> None:
        """Remove an object, if it exists."""
        self._buckets.get(bucket, {}).pop(key, None)

    # -- the wire ------------------------------------------------------------------------------

    def decode_request(self, operation: OperationModel, request: Any) -> dict[str, Any]:
        """Decode a request, taking the bucket from the host name or the first path segment."""
        from sessionkit.testing.aws.transport import decode_request

        params = decode_request(operation, request)
        url = urlsplit(request.url)
        host = (url.hostname or "").lower()
        path = url.path.lstrip("/")
        if host.startswith("s3.") or host.startswith("s3-") or ".s3" not in host:
            bucket, _, key = path.partition("/")
        else:
            bucket, key = host.split(".s3", 1)[0], path
        members = operation.input_shape.members if operation.input_shape is not None else {}
        if "Bucket" in members:
            params["Bucket"] = unquote(bucket)
        if "Key" in members:
            params["Key"] = unquote(key)
        return params

    def op_get_object(self, params: dict[str, Any]) -> dict[str, Any]:
        objects = self._buckets.get(params["Bucket"])
        if objects is None:
            raise EmulatedError("NoSuchBucket", "The specified bucket does not exist", 404)
        stored = objects.get(params["Key"])
        if stored is None:
            raise EmulatedError("NoSuchKey", "The specified key does not exist.", 404)
        return {
            "Body": stored.data,
            "AcceptRanges": "bytes",
            "ContentLength": len(stored.data),
            "ContentType": stored.content_type,
            "ETag": stored.etag,
            "LastModified": stored.modified,
        }

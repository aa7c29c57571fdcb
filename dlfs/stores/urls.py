"""Storage URLs of remote stores (no boto3 here, so parsing them costs nothing).

- ``s3://bucket/prefix``: blobs in S3 under the prefix (:mod:`dlfs.stores.s3`), and
  the layout of a push/pull remote (:mod:`dlfs.ops.push`);
- ``linked:s3://bucket/prefix``: the storage of a dataset whose files are the objects
  of an existing bucket, indexed in place (:mod:`dlfs.stores.linked`); each object
  indexed is an :class:`ExternalObject`, whose blob id names its recorded identity.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dlfs.errors import InvalidInput
from dlfs.objects import blob_id, canonical_json

LINKED = "linked:"
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.\-_]{1,254}$")


@dataclass(frozen=True)
class S3Url:
    """``s3://bucket/prefix``: ``prefix`` is empty or ends with ``/``."""

    bucket: str
    prefix: str

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix.rstrip('/')}".rstrip("/")

    def key(self, rel: str) -> str:
        """The object key of ``rel`` under the prefix."""
        return self.prefix + rel


def parse_s3_url(url: str) -> S3Url:
    """Split and check ``s3://bucket[/prefix]``; :class:`InvalidInput` if malformed."""
    if not url.startswith("s3://"):
        raise InvalidInput(f"invalid S3 URL {url!r}: expected s3://bucket/prefix")
    bucket, _, prefix = url[5:].partition("/")
    if not _BUCKET_RE.match(bucket):
        raise InvalidInput(f"invalid S3 URL {url!r}: {bucket!r} is not a bucket name")
    parts = [p for p in prefix.split("/") if p]
    if any(p in (".", "..") for p in parts) or "\0" in prefix:
        raise InvalidInput(f"invalid S3 URL {url!r}: bad prefix")
    return S3Url(bucket, "".join(p + "/" for p in parts))


def linked_url(url: str) -> str:
    """The storage URL of a dataset linked to ``s3://bucket/prefix``."""
    return LINKED + str(parse_s3_url(url.removeprefix(LINKED)))


def is_linked(storage: str) -> bool:
    """True for the storage URL of a linked dataset."""
    return storage.startswith(LINKED)


@dataclass(frozen=True)
class ExternalObject:
    """An object of a linked bucket as it was indexed."""

    bucket: str
    key: str
    etag: str
    version_id: str | None
    size: int
    mtime: float

    @property
    def blob(self) -> str:
        """The blob id that stands for these exact bytes (see the module docstring)."""
        record = ["s3-object", self.bucket, self.key, self.etag, self.version_id or "", self.size]
        return blob_id(canonical_json(record).encode())

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def row(self) -> tuple[str, str, str, str, str | None, int, float]:
        """The ``external_objects`` row."""
        return (self.blob, self.bucket, self.key, self.etag, self.version_id, self.size, self.mtime)

"""Linked storage: objects of an existing bucket, indexed in place, read where they are.

``dlfs link NAME s3://bucket/prefix`` does not copy anything. Each object becomes an
item whose *blob* is a record of the object as it was when it was indexed::

    blob id = xxh3-128 of ["s3-object", bucket, key, etag, version id or "", size]

kept in the catalog table ``external_objects(blob, bucket, key, etag, version_id,
size, mtime)``. The id says which bytes the version means without having read them:
an object that changes (a new ETag) or moves (a new key) is another blob, hence
another item. A dataset whose binaries are linked has the storage URL
``linked:s3://bucket/prefix`` (:data:`SCHEME`); :class:`LinkedStore` serves it.

Reading never returns other bytes than the ones recorded:

- every GET carries ``If-Match: <recorded ETag>`` (and, when the bucket was versioned
  at indexing time, the recorded ``VersionId``); the response's ETag, its length and
  the object's total size (``Content-Range``) are checked too;
- in a versioned bucket the recorded version is read even after the object was
  overwritten or deleted; otherwise a changed or deleted object is
  :class:`dlfs.errors.Corrupt` (``EIO`` in a mount) until ``dlfs sync`` indexes it
  again;
- a block that is the whole object and whose ETag is a plain MD5 is checked against
  it; when the MD5 does not match, the object is fetched again and accepted only if
  both fetches agree byte for byte (an ETag that is not an MD5, as with SSE-KMS, is
  then recognized), otherwise the fetch is retried as damaged in transit. Ranged
  blocks of large objects have no content hash to check (S3 keeps none per range):
  they rely on the ETag precondition, the lengths and the transport's checks.

Linked objects are never written or deleted by dlfs.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from dlfs.errors import BadBody, Conflict, Corrupt, InvalidInput, NotFound, Unavailable
from dlfs.objects import BLOB_ID_RE, blob_id
from dlfs.stores.base import IngestBatch
from dlfs.stores.blockcache import BlockCache
from dlfs.stores.cache import DEFAULT_MEMORY, DEFAULT_READAHEAD, CachedReader, CachedStore, Plan
from dlfs.stores.manifest import DEFAULT_BLOCK_SIZE
from dlfs.stores.retry import RetryPolicy, retrying
from dlfs.stores.urls import LINKED, ExternalObject, S3Url, is_linked, linked_url, parse_s3_url

if TYPE_CHECKING:
    from dlfs.stores.s3 import ObjectInfo, S3Client

__all__ = ["ExternalObject", "LinkedStore", "is_linked", "linked_url"]

SCHEME = LINKED
_MD5_RE = re.compile(r"^[0-9a-f]{32}$")


def md5_hex(data: bytes) -> str:
    """The MD5 of ``data`` (S3's ETag of a single-part upload)."""
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


Lookup = Callable[[str], ExternalObject | None]


class LinkedStore(CachedStore):
    """Reads the objects of a linked bucket by their recorded identity.

    ``lookup`` finds the :class:`ExternalObject` of a blob id (from the catalog).
    """

    def __init__(
        self,
        url: str,
        client: S3Client,
        lookup: Lookup,
        *,
        retry: RetryPolicy | None = None,
        cache: BlockCache | None = None,
        block_size: int = DEFAULT_BLOCK_SIZE,
        workers: int = 8,
        readahead: int = DEFAULT_READAHEAD,
        memory: int | None = None,
    ) -> None:
        if not is_linked(url):
            raise InvalidInput(f"not a linked storage URL: {url!r}")
        self.loc: S3Url = parse_s3_url(url.removeprefix(SCHEME))
        self.url = SCHEME + str(self.loc)
        self.client = client
        self.lookup = lookup
        self.retry = retry or RetryPolicy()
        self.block_size = block_size
        self.blocks = LinkedBlocks(self)
        self.reader = CachedReader(
            self.blocks,
            cache,
            workers=workers,
            readahead=readahead,
            memory=memory or DEFAULT_MEMORY,
        )

    def __repr__(self) -> str:
        return f"LinkedStore({self.url!r})"

    # -- indexing -----------------------------------------------------------------

    def scan(self) -> tuple[bool, list[ExternalObject]]:
        """``(versioned, objects)``: every object under the prefix now, with version
        ids when the bucket is versioned. Retried as a whole on temporary failures."""
        versioned = self._versioned()
        return versioned, self._list(versioned)

    def objects(self, keys: list[str]) -> list[ExternalObject | None]:
        """The objects at ``keys`` of the store's bucket as they are now (with version
        ids when the bucket is versioned), None for a key with no object; a few HEAD
        requests at a time, each retried on temporary failures."""
        from concurrent.futures import ThreadPoolExecutor

        versioned = self._versioned() if keys else False
        bucket = self.loc.bucket

        def one(key: str) -> ExternalObject | None:
            info = self._head(ExternalObject(bucket, key, "", None, 0, 0.0))
            if info is None:
                return None
            version = info.version_id if versioned else None
            return ExternalObject(bucket, key, info.etag.strip('"'), version, info.size, info.mtime)

        if len(keys) < 4:
            return [one(k) for k in keys]
        with ThreadPoolExecutor(8) as pool:
            return list(pool.map(one, keys))

    @retrying("reading the versioning of {self.loc}")
    def _versioned(self) -> bool:
        return self.client.versioned(self.loc.bucket)

    @retrying("listing {self.loc}")
    def _list(self, versioned: bool) -> list[ExternalObject]:
        bucket, prefix = self.loc.bucket, self.loc.prefix
        infos = (
            self.client.list_latest_versions(bucket, prefix)
            if versioned
            else self.client.list(bucket, prefix)
        )
        return [
            ExternalObject(bucket, i.key, i.etag.strip('"'), i.version_id, i.size, i.mtime)
            for i in infos
        ]

    # -- BlobStore ----------------------------------------------------------------

    def has(self, blob: str) -> bool:
        """True when the recorded object (or version) is still there, unchanged."""
        obj = self.lookup(blob)
        if obj is None:
            return False
        info = self._head(obj)
        return info is not None and info.etag.strip('"') == obj.etag and info.size == obj.size

    @retrying("looking for {0.url}")
    def _head(self, obj: ExternalObject) -> ObjectInfo | None:
        return self.client.head(obj.bucket, obj.key, obj.version_id)

    def batch(self) -> IngestBatch:
        raise Conflict(
            f"this dataset's files are the objects of {self.loc}: put new files there"
            " and run 'dlfs sync NAME' instead of adding them"
        )

    def delete(self, blob: str) -> None:
        """Never deletes: the bucket belongs to its owner, not to dlfs."""


class LinkedBlocks:
    """The :class:`dlfs.stores.cache.BlockSource` of a :class:`LinkedStore`."""

    def __init__(self, store: LinkedStore) -> None:
        self.store = store
        self.retry = store.retry

    def plan(self, blob: str, size: int | None) -> Plan:
        """Blocks of the store's block size; objects up to one block are one block."""
        if not BLOB_ID_RE.match(blob):
            raise InvalidInput(f"invalid blob id {blob!r}")
        obj = self.store.lookup(blob)
        if obj is None:
            raise Unavailable(f"blob {blob} is not a linked object this catalog knows")
        bs = self.store.block_size
        return Plan(blob, obj.size, bs if obj.size > bs else max(1, obj.size), ref=obj)

    @retrying("reading {0.ref.url}")
    def fetch(self, plan: Plan, index: int) -> bytes:
        """Block ``index`` of the recorded object, or :class:`Corrupt` if it changed."""
        obj: ExternalObject = plan.ref
        data = self._get(plan, index)
        if plan.blocks == 1 and _MD5_RE.match(obj.etag) and md5_hex(data) != obj.etag:
            again = self._get(plan, index)
            if blob_id(again) != blob_id(data):
                raise BadBody(f"{obj.url}: the body does not match its ETag")
        return data

    @retrying("reading {0.ref.url}")
    def fetch_span(self, plan: Plan, first: int, count: int) -> list[bytes]:
        """Blocks ``first`` to ``first + count - 1`` in one ranged GET (same checks)."""
        lengths = [plan.span(i)[1] for i in range(first, first + count)]
        data = self._get(plan, first, sum(lengths))
        out = []
        pos = 0
        for length in lengths:
            out.append(data[pos : pos + length])
            pos += length
        return out

    def _get(self, plan: Plan, index: int, length: int | None = None) -> bytes:
        obj: ExternalObject = plan.ref
        start, one = plan.span(index)
        length = one if length is None else length
        whole = plan.blocks == 1
        try:
            return self.store.client.get(
                obj.bucket,
                obj.key,
                None if whole else start,
                None if whole else length,
                total=obj.size,
                version_id=obj.version_id,
                if_match=f'"{obj.etag}"',
            )
        except BadBody:
            raise
        except NotFound as exc:
            gone = "version" if obj.version_id else "object"
            raise Corrupt(
                f"{obj.url}: the linked {gone} was deleted after it was indexed"
                " (run 'dlfs sync' to index the bucket again)"
            ) from exc
        except Corrupt as exc:
            raise Corrupt(
                f"{obj.url}: the linked object changed after it was indexed"
                " (run 'dlfs sync' to index the new content)"
            ) from exc

"""The read side of an S3 store: how a blob in the bucket is cut into blocks, each checked.

:class:`S3Blocks` is the :class:`dlfs.stores.cache.BlockSource` of an
:class:`dlfs.stores.s3.S3Store`. A blob no larger than one block is fetched whole and
checked against its id; a larger one is read in ranged GETs of its manifest's block
size (:class:`dlfs.stores.manifest.Manifest`, fetched once, kept in memory and in the
block cache), each block checked against the manifest. A blob without a manifest is
fetched whole up to :data:`WHOLE_MAX`. Every fetch runs under the store's
:class:`dlfs.stores.retry.RetryPolicy`, so a truncated or damaged body is fetched again
and never returned. Nothing here calls boto3: it asks the store's
:class:`dlfs.stores.s3.S3Client`.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from concurrent.futures import Future
from typing import TYPE_CHECKING

from dlfs.errors import BadBody, Corrupt, InvalidInput, NotFound, Unavailable
from dlfs.objects import BLOB_ID_RE, blob_id
from dlfs.stores.blockcache import BlockCache
from dlfs.stores.cache import Plan
from dlfs.stores.manifest import Manifest
from dlfs.stores.retry import retrying
from dlfs.stores.s3loop import GetLoop

if TYPE_CHECKING:
    from dlfs.stores.s3 import ObjectInfo, S3Store

__all__ = ["WHOLE_MAX", "S3Blocks"]

WHOLE_MAX = 256 << 20
"""A blob without a manifest is fetched whole only up to this size (256 MiB)."""


class S3Blocks:
    """The :class:`dlfs.stores.cache.BlockSource` of an :class:`S3Store`."""

    def __init__(self, store: S3Store, cache: BlockCache | None) -> None:
        self.store = store
        self.retry = store.retry
        self.cache = cache
        self._manifests: OrderedDict[str, Manifest] = OrderedDict()
        self._lock = threading.Lock()
        self._loop: GetLoop | None = None
        self._closed = False

    def _get_loop(self) -> GetLoop | None:
        with self._lock:
            if self._loop is None and not self._closed:
                getter = self.store.client.signed_getter
                if getter is not None:
                    self._loop = GetLoop(getter, self.retry)
            return self._loop

    def async_gets(self) -> bool:
        """True when blocks can come through :meth:`start` (the signed GET path is on)."""
        return self.store.client.signed_getter is not None

    def start(
        self, plan: Plan, first: int, count: int, urgent: bool = False
    ) -> Future[list[bytes]] | None:
        """Start fetching blocks ``first`` to ``first + count - 1`` in one GET on the
        event loop (:mod:`dlfs.stores.s3loop`); the future holds them, each checked
        against the blob id or its manifest hash, or the final error. None when the
        loop is closed."""
        loop = self._get_loop()
        if loop is None:
            return None
        store = self.store
        whole = plan.blocks == 1
        lengths = [plan.span(i)[1] for i in range(first, first + count)]
        begin = plan.span(first)[0]
        byte_range = None if whole or plan.size == 0 else (begin, begin + sum(lengths) - 1)

        def check(data: bytes) -> list[bytes]:
            if whole:
                if blob_id(data) != plan.blob:
                    raise BadBody(f"blob {plan.blob}: the bytes do not match the blob id")
                return [data]
            assert plan.hashes is not None
            out, pos = [], 0
            for i, length in zip(range(first, first + count), lengths, strict=True):
                block = data[pos : pos + length]
                pos += length
                if blob_id(block) != plan.hashes[i]:
                    raise BadBody(f"blob {plan.blob}: block {i} does not match its hash")
                out.append(block)
            return out

        def fallback() -> list[bytes]:
            if whole or count == 1:
                return [self.fetch(plan, first)]
            return self.fetch_span(plan, first, count)

        def missing(exc: Exception) -> Exception:
            if isinstance(exc, NotFound):
                return Unavailable(f"blob {plan.blob} is missing from {store.url}")
            return exc

        fut = loop.get(
            store.loc.bucket,
            store.key(plan.blob),
            byte_range,
            plan.size,
            check,
            fallback,
            f"reading blob {plan.blob}",
            urgent=urgent,
            on_error=missing,
        )
        return None if fut.cancelled() else fut

    def close(self) -> None:
        """Stop the event loop: GETs in flight are cancelled."""
        with self._lock:
            self._closed = True
            loop, self._loop = self._loop, None
        if loop is not None:
            loop.close()

    def plan_nowait(self, blob: str, size: int) -> Plan | None:
        """The plan of a blob of known ``size`` that fits one block (no manifest
        needed); None for the rest."""
        if 0 <= size <= self.store.block_size and BLOB_ID_RE.match(blob):
            return Plan(blob, size, max(1, size))
        return None

    def plan(self, blob: str, size: int | None) -> Plan:
        """Small blobs: one block, checked by id. Large: the manifest's blocks."""
        if not BLOB_ID_RE.match(blob):
            raise InvalidInput(f"invalid blob id {blob!r}")
        store = self.store
        if size is None and store.sizes is not None:
            size = store.sizes(blob)
        if size is None:
            info = self._head(blob)
            if info is None:
                raise Unavailable(f"blob {blob} is missing from {store.url}")
            size = info.size
        if size <= store.block_size:
            return Plan(blob, size, max(1, size))
        manifest = self._manifest(blob)
        if manifest is None:
            if size > WHOLE_MAX:
                raise Corrupt(f"blob {blob} in {store.url} has no block manifest")
            return Plan(blob, size, size)
        if manifest.size != size:
            raise Corrupt(f"blob {blob}: the store says {manifest.size} bytes, expected {size}")
        return Plan(blob, size, manifest.block_size, manifest.hashes)

    @retrying("reading blob {0}")
    def _head(self, blob: str) -> ObjectInfo | None:
        return self.store.client.head(self.store.loc.bucket, self.store.key(blob))

    def _manifest(self, blob: str) -> Manifest | None:
        with self._lock:
            found = self._manifests.get(blob)
        if found is not None:
            return found
        key = f"{blob}.blocks"
        data = self.cache.get(key) if self.cache is not None else None
        manifest = None
        if data is not None:
            try:
                manifest = Manifest.decode(blob, data)
            except BadBody:
                manifest = None
        if manifest is None:
            manifest = self._fetch_manifest(blob)
            if manifest is None:
                return None
            if self.cache is not None:
                self.cache.put(key, manifest.encode())
        with self._lock:
            self._manifests[blob] = manifest
            while len(self._manifests) > 4096:
                self._manifests.popitem(last=False)
        return manifest

    @retrying("reading the block manifest of blob {0}")
    def _fetch_manifest(self, blob: str) -> Manifest | None:
        try:
            data = self.store.client.get(self.store.loc.bucket, self.store.manifest_key(blob))
        except NotFound:
            return None
        return Manifest.decode(blob, data)

    @retrying("reading blob {0.blob}")
    def fetch(self, plan: Plan, index: int) -> bytes:
        """Block ``index`` of ``plan``, checked against the blob id or its block hash."""
        store = self.store
        start, length = plan.span(index)
        whole = plan.blocks == 1
        try:
            data = store.client.get(
                store.loc.bucket,
                store.key(plan.blob),
                None if whole else start,
                None if whole else length,
                total=plan.size,
            )
        except NotFound as exc:
            raise Unavailable(f"blob {plan.blob} is missing from {store.url}") from exc
        if whole:
            if blob_id(data) != plan.blob:
                raise BadBody(f"blob {plan.blob}: the bytes do not match the blob id")
        else:
            assert plan.hashes is not None
            if blob_id(data) != plan.hashes[index]:
                raise BadBody(f"blob {plan.blob}: block {index} does not match its hash")
        return data

    @retrying("reading blob {0.blob}")
    def fetch_span(self, plan: Plan, first: int, count: int) -> list[bytes]:
        """Blocks ``first`` to ``first + count - 1`` of a large blob in one ranged GET,
        each checked against its hash."""
        assert plan.hashes is not None and count >= 1
        store = self.store
        start = plan.span(first)[0]
        lengths = [plan.span(i)[1] for i in range(first, first + count)]
        try:
            data = store.client.get(
                store.loc.bucket, store.key(plan.blob), start, sum(lengths), total=plan.size
            )
        except NotFound as exc:
            raise Unavailable(f"blob {plan.blob} is missing from {store.url}") from exc
        out = []
        pos = 0
        for i, length in zip(range(first, first + count), lengths, strict=True):
            block = data[pos : pos + length]
            pos += length
            if blob_id(block) != plan.hashes[i]:
                raise BadBody(f"blob {plan.blob}: block {i} does not match its hash")
            out.append(block)
        return out

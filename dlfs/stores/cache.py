"""The read side of remote stores: verified blocks, through the caches, with read-ahead.

A remote blob is read in fixed *blocks*: a :class:`BlockSource` (the S3 store, a
linked bucket) says how a blob is cut (:meth:`BlockSource.plan`) and fetches one block
with its bytes already checked (:meth:`BlockSource.fetch`): against the blob id when
the block is the whole blob, against a per-block hash otherwise, and a failed check is
retried there. A :class:`CachedReader` serves byte ranges from those blocks:

- blocks are kept in a small in-memory LRU and in a
  :class:`dlfs.stores.blockcache.BlockCache` on disk (its format and eviction are
  described there);
- the blocks a read needs are fetched in parallel (the first in the calling thread,
  the rest in a pool), and one block is fetched once however many readers want it;
- a sequential reader triggers read-ahead of the next blocks, in a window that doubles
  up to ``readahead`` bytes, refilled in runs of consecutive blocks that a source with
  ``fetch_span`` gets in one ranged request (each block still checked on its own); a
  random reader triggers none;
- errors are :class:`dlfs.errors.DlfsError`: ``Unavailable`` when the source could not
  be reached within its retry budget, ``Corrupt`` when bytes kept failing their check.
  Wrong bytes are never returned.

:class:`CachedStore` is the base of the remote stores whose reads all go through one
:class:`CachedReader`.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from concurrent.futures import CancelledError, Future
from dataclasses import dataclass, field
from typing import Any, Protocol

from dlfs.errors import Corrupt, DlfsError
from dlfs.stores.base import BlobStore
from dlfs.stores.blockcache import BlockCache

log = logging.getLogger(__name__)

MiB = 1 << 20
DEFAULT_READAHEAD = 32 * MiB
DEFAULT_MEMORY = 64 * MiB
DEFAULT_RUN = 16 * MiB


@dataclass(frozen=True)
class Plan:
    """How one blob is cut into blocks, and what its source needs to check them.

    Every block but the last is ``block_size`` bytes. ``hashes`` are the xxh3-128 of
    each block when the source knows them; ``ref`` is source data (a linked object).
    """

    blob: str
    size: int
    block_size: int
    hashes: tuple[str, ...] | None = None
    ref: Any = field(default=None, compare=False)

    @property
    def blocks(self) -> int:
        """How many blocks the blob has (at least one, even when empty)."""
        return max(1, -(-self.size // self.block_size))

    def span(self, index: int) -> tuple[int, int]:
        """``(offset, length)`` of block ``index``."""
        start = index * self.block_size
        return start, max(0, min(self.block_size, self.size - start))

    def key(self, index: int) -> str:
        """The cache key of block ``index``: blob id, offset and length."""
        start, length = self.span(index)
        return f"{self.blob}.{start:x}.{length:x}"


class BlockSource(Protocol):
    """Where blocks come from (see :mod:`dlfs.stores.s3`, :mod:`dlfs.stores.linked`)."""

    def plan(self, blob: str, size: int | None) -> Plan:
        """How ``blob`` is cut; ``size`` is its size when the caller knows it."""
        ...

    def fetch(self, plan: Plan, index: int) -> bytes:
        """Exactly the bytes of block ``index``, checked (retried inside)."""
        ...

    # Optional: fetch_span(plan, first, count) -> list[bytes], blocks first..first+count-1
    # in one request, each checked.


class _Pool:
    """A few daemon threads running block fetches, started on first use.

    Daemon threads, unlike ``ThreadPoolExecutor``'s, never hold up the exit of the
    process for read-ahead nobody waits for; :meth:`shutdown` cancels what is queued.
    """

    def __init__(self, workers: int) -> None:
        self.workers = max(1, workers)
        self._queue: queue.SimpleQueue[tuple[Callable[..., None], tuple[Any, ...]] | None] = (
            queue.SimpleQueue()
        )
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, fn: Callable[..., None], *args: Any) -> None:
        """Run ``fn(*args)`` in a pool thread (RuntimeError once shut down)."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the fetch pool is shut down")
            if len(self._threads) < self.workers:
                t = threading.Thread(target=self._work, name="dlfs-fetch", daemon=True)
                self._threads.append(t)
                t.start()
        self._queue.put((fn, args))

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            fn, args = job
            try:
                fn(*args)
            except BaseException:  # the job reports through its future; keep the thread
                log.debug("fetch job failed", exc_info=True)

    def shutdown(self) -> None:
        """Stop the threads; queued jobs are dropped (their futures cancelled)."""
        with self._lock:
            self._closed = True
            threads = list(self._threads)
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                fut = job[1][0] if job[1] else None
                if isinstance(fut, Future):
                    fut.cancel()
        for _ in threads:
            self._queue.put(None)


class CachedReader:
    """Byte ranges of blobs from a :class:`BlockSource`, through the caches.

    Thread-safe: the daemon calls :meth:`read` from many worker threads at once.
    ``workers`` threads fetch blocks for reads that span several and for read-ahead.
    """

    def __init__(
        self,
        source: BlockSource,
        cache: BlockCache | None = None,
        workers: int = 8,
        readahead: int = DEFAULT_READAHEAD,
        memory: int = DEFAULT_MEMORY,
        run_bytes: int = DEFAULT_RUN,
    ) -> None:
        self.source = source
        self.cache = cache
        self.readahead = readahead
        self.run_bytes = run_bytes
        self.memory = memory
        self._pool = _Pool(workers)
        self._lock = threading.Lock()
        self._plans: OrderedDict[str, Plan] = OrderedDict()
        self._mem: OrderedDict[str, bytes] = OrderedDict()
        self._mem_bytes = 0
        self._inflight: dict[str, Future[bytes]] = {}
        self._streams: OrderedDict[str, tuple[int, int]] = OrderedDict()
        self._closed = False

    def close(self) -> None:
        """Stop the fetch threads (queued read-ahead is dropped) and wait until the
        fetched blocks are in the disk cache."""
        self._closed = True
        self._pool.shutdown()
        if self.cache is not None:
            self.cache.flush()

    # -- plans ------------------------------------------------------------------------

    def plan(self, blob: str, size: int | None = None) -> Plan:
        """The (memoized) plan of a blob."""
        with self._lock:
            plan = self._plans.get(blob)
            if plan is not None:
                self._plans.move_to_end(blob)
                return plan
        plan = self.source.plan(blob, size)
        with self._lock:
            self._plans[blob] = plan
            while len(self._plans) > 16384:
                self._plans.popitem(last=False)
        return plan

    # -- reading ----------------------------------------------------------------------

    def read(self, blob: str, offset: int, size: int, blob_size: int | None = None) -> bytes:
        """Up to ``size`` bytes of ``blob`` from ``offset`` (fewer at its end)."""
        plan = self.plan(blob, blob_size)
        if size <= 0 or offset >= plan.size:
            return b""
        end = min(plan.size, offset + size)
        first, last = offset // plan.block_size, (end - 1) // plan.block_size
        self._read_ahead(plan, offset, end, last)
        if first == last:
            start = first * plan.block_size
            return self._range(plan, first, offset - start, end - start)
        pending = {i: self._future(plan, i) for i in range(first + 1, last + 1)}
        parts = [self._range(plan, first, offset - first * plan.block_size, plan.block_size)]
        for i in range(first + 1, last + 1):
            data = self._wait(pending[i], plan, i)
            start = i * plan.block_size
            parts.append(data[: end - start])
        return b"".join(parts)

    def read_nowait(self, blob: str, offset: int, size: int) -> bytes | memoryview | None:
        """What :meth:`read` would return, when the one block it needs is in memory
        (no copy); else None. Never blocks: no disk, no network, no waiting."""
        with self._lock:
            plan = self._plans.get(blob)
            if plan is None:
                return None
            if size <= 0 or offset >= plan.size:
                return b""
            end = min(plan.size, offset + size)
            index = offset // plan.block_size
            if (end - 1) // plan.block_size != index:
                return None
            key = plan.key(index)
            data = self._mem.get(key)
            if data is None:
                return None
            self._mem.move_to_end(key)
        self._read_ahead(plan, offset, end, index)
        start = index * plan.block_size
        return memoryview(data)[offset - start : end - start]

    def prefetch(self, blob: str, blob_size: int | None = None) -> None:
        """Start fetching the first block of ``blob`` (all of a small blob) in the
        background, unless it is cached or on its way."""
        if not self._closed:
            self._future(self.plan(blob, blob_size), 0)

    def iter_bytes(self, blob: str, blob_size: int | None = None) -> Iterator[bytes]:
        """The whole blob, block by block, every block checked; the next blocks are
        fetched in parallel while the caller consumes one."""
        plan = self.plan(blob, blob_size)
        window = max(1, self.readahead // plan.block_size)
        ahead: dict[int, Future[bytes] | None] = {}
        try:
            for i in range(plan.blocks):
                for j in range(i + 1, min(plan.blocks, i + 1 + window)):
                    if j not in ahead:
                        ahead[j] = self._future(plan, j)
                data = self._wait(ahead.pop(i, None), plan, i)
                if data:
                    yield data
        finally:
            for fut in ahead.values():
                if fut is not None:
                    fut.cancel()

    def verify(self, blob: str, blob_size: int | None = None) -> bool:
        """Fetch (or find cached) every block and check it: True when all pass.

        ``Unavailable`` is raised, not turned into False: an unreachable store says
        nothing about the bytes.
        """
        try:
            for _chunk in self.iter_bytes(blob, blob_size):
                pass
        except Corrupt:
            return False
        return True

    # -- blocks -----------------------------------------------------------------------

    def _range(self, plan: Plan, index: int, lo: int, hi: int) -> bytes:
        """Bytes ``lo:hi`` of block ``index``, from memory, disk, or the source."""
        key = plan.key(index)
        with self._lock:
            data = self._mem.get(key)
            if data is not None:
                self._mem.move_to_end(key)
                return data[lo:hi]
        if self.cache is not None:
            length = plan.span(index)[1]
            part = self.cache.read(key, lo, hi - lo, length)
            if part is not None:
                return part
        return self._block(plan, index)[lo:hi]

    def _cached(self, plan: Plan, index: int) -> bytes | None:
        key = plan.key(index)
        with self._lock:
            data = self._mem.get(key)
            if data is not None:
                self._mem.move_to_end(key)
                return data
        if self.cache is not None:
            data = self.cache.get(key, plan.span(index)[1])
            if data is not None:
                self._remember(key, data)
                return data
        return None

    def _block(self, plan: Plan, index: int) -> bytes:
        """The whole block ``index``: cached, being fetched, or fetched here."""
        data = self._cached(plan, index)
        if data is not None:
            return data
        key = plan.key(index)
        with self._lock:
            fut = self._inflight.get(key)
            mine = fut is None
            if fut is None:
                fut = Future()
                fut.set_running_or_notify_cancel()
                self._inflight[key] = fut
            elif fut.cancel():
                # Queued read-ahead that has not started: fetch it here instead.
                fut = Future()
                fut.set_running_or_notify_cancel()
                self._inflight[key] = fut
                mine = True
        if not mine:
            return fut.result()
        self._fetch_into(fut, plan, index)
        return fut.result()

    def _wait(self, fut: Future[bytes] | None, plan: Plan, index: int) -> bytes:
        """The result of a block future; a cancelled (or absent) one is fetched here."""
        if fut is not None:
            try:
                return fut.result()
            except CancelledError:
                pass
        return self._block(plan, index)

    def _future(self, plan: Plan, index: int) -> Future[bytes] | None:
        """A future for block ``index`` (None when it is already in memory/on disk)."""
        key = plan.key(index)
        with self._lock:
            if key in self._mem:
                return None
            fut = self._inflight.get(key)
            if fut is not None:
                return fut
        if self.cache is not None and self.cache.path(key).exists():
            return None
        with self._lock:
            fut = self._inflight.get(key)
            if fut is not None:
                return fut
            fut = Future()
            self._inflight[key] = fut
        try:
            self._pool.submit(self._run, fut, plan, index)
        except RuntimeError:  # the pool is shut down
            fut.cancel()
            with self._lock:
                self._inflight.pop(key, None)
            return None
        return fut

    def _run(self, fut: Future[bytes], plan: Plan, index: int) -> None:
        if not fut.set_running_or_notify_cancel():
            with self._lock:
                if self._inflight.get(plan.key(index)) is fut:
                    del self._inflight[plan.key(index)]
            return
        self._fetch_into(fut, plan, index)

    def _fetch_into(self, fut: Future[bytes], plan: Plan, index: int) -> None:
        key = plan.key(index)
        try:
            data = self.source.fetch(plan, index)
            if len(data) != plan.span(index)[1]:
                raise Corrupt(f"blob {plan.blob}: block {index} has the wrong length")
            self._remember(key, data)
            if self.cache is not None:
                self.cache.put_soon(key, data)
        except BaseException as exc:
            with self._lock:
                self._inflight.pop(key, None)
            fut.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        with self._lock:
            self._inflight.pop(key, None)
        fut.set_result(data)

    def _remember(self, key: str, data: bytes) -> None:
        with self._lock:
            if key in self._mem:
                return
            self._mem[key] = data
            self._mem_bytes += len(data)
            while self._mem_bytes > self.memory and len(self._mem) > 1:
                _k, old = self._mem.popitem(last=False)
                self._mem_bytes -= len(old)

    # -- read-ahead -------------------------------------------------------------------

    def _read_ahead(self, plan: Plan, offset: int, end: int, last: int) -> None:
        """Start fetching the blocks after ``last`` when the reads of ``plan.blob``
        are sequential; the window doubles with each sequential read."""
        if self.readahead <= 0 or self._closed:
            return
        with self._lock:
            expected, window = self._streams.get(plan.blob, (-1, 0))
            sequential = offset == expected or (offset == 0 and expected == -1)
            limit = max(1, self.readahead // plan.block_size)
            window = min(limit, max(1, window * 2)) if sequential else 0
            self._streams[plan.blob] = (end, window)
            self._streams.move_to_end(plan.blob)
            while len(self._streams) > 1024:
                self._streams.popitem(last=False)
        if not sequential or (offset == 0 and end >= plan.size):
            return
        missing = [
            i for i in range(last + 1, min(plan.blocks, last + 1 + window)) if self._absent(plan, i)
        ]
        # Refill the window in runs (fewer, larger GETs) rather than one block at a
        # time, unless the very next block is missing and the reader would stall.
        if not missing or (missing[0] != last + 1 and len(missing) < max(1, window // 2)):
            return
        self._prefetch(plan, missing)

    def _absent(self, plan: Plan, index: int) -> bool:
        """True when block ``index`` is neither in memory, nor being fetched, nor on disk."""
        key = plan.key(index)
        with self._lock:
            if key in self._mem or key in self._inflight:
                return False
        return self.cache is None or not self.cache.path(key).exists()

    def _prefetch(self, plan: Plan, indices: list[int]) -> None:
        """Fetch blocks in the background, consecutive ones in runs of up to
        ``run_bytes`` with one request each when the source can (``fetch_span``)."""
        max_run = max(1, self.run_bytes // plan.block_size)
        runs: list[list[tuple[int, Future[bytes]]]] = []
        with self._lock:
            for i in indices:
                key = plan.key(i)
                if key in self._inflight or key in self._mem:
                    continue
                fut: Future[bytes] = Future()
                fut.add_done_callback(_quiet)
                self._inflight[key] = fut
                if runs and runs[-1][-1][0] == i - 1 and len(runs[-1]) < max_run:
                    runs[-1].append((i, fut))
                else:
                    runs.append([(i, fut)])
        for run in runs:
            try:
                self._pool.submit(self._run_span, plan, run)
            except RuntimeError:  # the pool is shut down
                with self._lock:
                    for i, fut in run:
                        if self._inflight.get(plan.key(i)) is fut:
                            del self._inflight[plan.key(i)]
                        fut.cancel()

    def _run_span(self, plan: Plan, run: list[tuple[int, Future[bytes]]]) -> None:
        live = []
        for i, fut in run:
            if fut.set_running_or_notify_cancel():
                live.append((i, fut))
            else:
                with self._lock:
                    if self._inflight.get(plan.key(i)) is fut:
                        del self._inflight[plan.key(i)]
        if not live:
            return
        first, last = live[0][0], live[-1][0]
        fetch_span = getattr(self.source, "fetch_span", None)
        try:
            if fetch_span is not None and last > first:
                blocks = list(fetch_span(plan, first, last - first + 1))
            else:
                blocks = [self.source.fetch(plan, i) for i in range(first, last + 1)]
            for i, data in zip(range(first, last + 1), blocks, strict=True):
                if len(data) != plan.span(i)[1]:
                    raise Corrupt(f"blob {plan.blob}: block {i} has the wrong length")
        except BaseException as exc:
            with self._lock:
                for i, fut in live:
                    if self._inflight.get(plan.key(i)) is fut:
                        del self._inflight[plan.key(i)]
            for _i, fut in live:
                fut.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for i, data in zip(range(first, last + 1), blocks, strict=True):
            self._remember(plan.key(i), data)
            if self.cache is not None:
                self.cache.put_soon(plan.key(i), data)
        with self._lock:
            for i, fut in live:
                if self._inflight.get(plan.key(i)) is fut:
                    del self._inflight[plan.key(i)]
        for i, fut in live:
            fut.set_result(blocks[i - first])


class CachedStore(BlobStore):
    """A remote store whose reads all go through one :class:`CachedReader`
    (``self.reader``, set by the subclass): the S3 store and linked buckets."""

    reader: CachedReader
    reads_verified = True
    """Every byte :meth:`read` returns was checked against the blob's hashes."""

    def read(self, blob: str, offset: int, size: int, blob_size: int | None = None) -> bytes:
        """Checked bytes of a blob (see :class:`CachedReader`)."""
        return self.reader.read(blob, offset, size, blob_size)

    def read_nowait(
        self, blob: str, offset: int, size: int, blob_size: int | None = None
    ) -> bytes | memoryview | None:
        return self.reader.read_nowait(blob, offset, size)

    def prefetch(self, blob: str, size: int) -> None:
        self.reader.prefetch(blob, size)

    def iter_bytes(self, blob: str) -> Iterator[bytes]:
        return self.reader.iter_bytes(blob)

    def verify(self, blob: str) -> bool:
        return self.reader.verify(blob)

    def close(self) -> None:
        """Stop background fetches; fetched blocks reach the disk cache first."""
        self.reader.close()


def _quiet(fut: Future[bytes]) -> None:
    """Read-ahead errors are not the reader's (it will fetch again if it gets there)."""
    if not fut.cancelled():
        exc = fut.exception()
        if exc is not None and not isinstance(exc, DlfsError):
            log.debug("read-ahead failed: %r", exc)

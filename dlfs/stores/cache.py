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

import contextlib
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from concurrent.futures import CancelledError, Future, InvalidStateError
from dataclasses import dataclass, field
from typing import Any, Protocol

from dlfs.errors import Corrupt, DlfsError, Unavailable
from dlfs.stores.base import BlobStore
from dlfs.stores.blockcache import BlockCache
from dlfs.stores.fetchpool import FetchPool

log = logging.getLogger(__name__)

MiB = 1 << 20
DEFAULT_READAHEAD = 256 * MiB
"""How far ahead of a sequential reader one file's read-ahead window grows at most."""
DEFAULT_MEMORY = 64 * MiB
DEFAULT_RUN = 8 * MiB
"""Bytes of consecutive blocks fetched in one ranged GET by read-ahead."""
PREFETCH_MEMORY = 512 * MiB
SEQUENTIAL_SLACK = 1 * MiB
"""A read this close to where the last one of the same blob ended still counts as in order."""


def default_prefetch_memory() -> int:
    """The default memory budget of a store's reader: 512 MiB, or an eighth of the
    RAM when that is less (at least 64 MiB)."""
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return PREFETCH_MEMORY
    return max(DEFAULT_MEMORY, min(PREFETCH_MEMORY, ram // 8))


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
        self._pool = FetchPool(workers)
        self._lock = threading.Lock()
        self._plans: OrderedDict[str, Plan] = OrderedDict()
        self._mem: OrderedDict[str, bytes] = OrderedDict()
        self._mem_bytes = 0
        self._inflight: dict[str, Future[bytes]] = {}
        self._streams: OrderedDict[str, tuple[int, int, int]] = OrderedDict()
        """Per blob read in order: (next offset, window in blocks, first block not
        yet asked for)."""
        self._runs: dict[str, set[Future[Any]]] = {}
        gets = getattr(source, "async_gets", None)
        self._start: Callable[..., Future[list[bytes]] | None] | None = (
            getattr(source, "start", None) if gets is not None and gets() else None
        )
        self._inflight_bytes = 0
        self.peak_held = 0
        """The most bytes :meth:`held` ever reached (the memory budget's witness)."""
        self._closed = False

    def close(self) -> None:
        """Stop the fetch threads (queued read-ahead is dropped) and wait until the
        fetched blocks are in the disk cache."""
        self._closed = True
        self._pool.shutdown()
        with self._lock:
            runs = [f for fs in self._runs.values() for f in fs]
            self._runs.clear()
        for inner in runs:
            inner.cancel()
        close = getattr(self.source, "close", None)
        if close is not None:
            close()
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

    def prefetch_nowait(self, blob: str, blob_size: int) -> bool:
        """:meth:`prefetch` without waiting: True when the first block is cached, on
        its way, or now started on the source's event loop; False (nothing done) when
        that would wait: no event loop, or a plan the source cannot make at once."""
        if self._closed:
            return True
        if self._start is None:
            return False
        with self._lock:
            plan = self._plans.get(blob)
        if plan is None:
            quick = getattr(self.source, "plan_nowait", None)
            plan = quick(blob, blob_size) if quick is not None else None
            if plan is None:
                return False
            with self._lock:
                self._plans[blob] = plan
                while len(self._plans) > 16384:
                    self._plans.popitem(last=False)
        self._future(plan, 0)
        return True

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
        """The whole block ``index``: cached, being fetched, or fetched now."""
        while True:
            data = self._cached(plan, index)
            if data is not None:
                return data
            key = plan.key(index)
            with self._lock:
                fut = self._inflight.get(key)
                mine = fut is None
                if fut is None or fut.cancel():
                    # none, or queued read-ahead that has not started: fetch it now
                    fut = Future()
                    self._inflight[key] = fut
                    mine = True
            if mine:
                self._launch(plan, [(index, fut)], urgent=True)
            try:
                return fut.result()
            except CancelledError:
                if self._closed:
                    raise Unavailable(f"blob {plan.blob}: the store is closing") from None
                continue  # a read-ahead that was stopped: ask again

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
            fut.add_done_callback(_quiet)
            self._inflight[key] = fut
        self._launch(plan, [(index, fut)])
        return fut

    def _remember(self, key: str, data: bytes) -> None:
        with self._lock:
            if key in self._mem:
                return
            self._mem[key] = data
            self._mem_bytes += len(data)
            while self._mem_bytes + self._inflight_bytes > self.memory and len(self._mem) > 1:
                _k, old = self._mem.popitem(last=False)
                self._mem_bytes -= len(old)
            self._note_held()

    def _note_held(self) -> None:
        """Keep :attr:`peak_held` (under ``self._lock``)."""
        held = self._mem_bytes + self._inflight_bytes
        if held > self.peak_held:
            self.peak_held = held

    # -- fetching ---------------------------------------------------------------------

    def _launch(
        self, plan: Plan, run: list[tuple[int, Future[bytes]]], urgent: bool = False
    ) -> None:
        """Fetch the consecutive blocks of ``run`` (their futures are in
        ``_inflight``): by the source's own event loop when it has one (``start``),
        else in a pool thread, or here when ``urgent`` (a reader waits for it)."""
        if self._closed:
            self._drop(plan, run, CancelledError())
            return
        nbytes = sum(plan.span(i)[1] for i, _f in run)
        with self._lock:
            self._inflight_bytes += nbytes
            while self._mem_bytes + self._inflight_bytes > self.memory and self._mem:
                _k, old = self._mem.popitem(last=False)  # make room for what comes
                self._mem_bytes -= len(old)
            self._note_held()
        if self._start is not None:
            live = [(i, f) for i, f in run if f.set_running_or_notify_cancel()]
            if len(live) != len(run):
                self._drop(plan, [(i, f) for i, f in run if f.cancelled()], None)
            whole = bool(live) and live[-1][0] - live[0][0] + 1 == len(live)
            inner = self._start(plan, live[0][0], len(live), urgent) if whole else None
            if inner is None:  # nothing left, or the loop is closed
                self._release(nbytes)
                self._drop(plan, live, CancelledError())
                return
            with self._lock:
                self._runs.setdefault(plan.blob, set()).add(inner)
            inner.add_done_callback(lambda f: self._landed(plan, live, nbytes, f))
            return
        if urgent:
            self._run_span(plan, run, nbytes)
            return
        try:
            self._pool.submit(self._run_span, plan, run, nbytes)
        except RuntimeError:  # the pool is shut down
            self._release(nbytes)
            self._drop(plan, run, CancelledError())

    def _release(self, nbytes: int) -> None:
        with self._lock:
            self._inflight_bytes -= nbytes

    def _drop(
        self, plan: Plan, run: list[tuple[int, Future[bytes]]], exc: BaseException | None
    ) -> None:
        """Forget the futures of ``run``; fail them with ``exc`` (cancel when it is a
        ``CancelledError``) unless None."""
        with self._lock:
            for i, fut in run:
                if self._inflight.get(plan.key(i)) is fut:
                    del self._inflight[plan.key(i)]
        if exc is None:
            return
        for _i, fut in run:
            if not fut.cancel() and not fut.done():
                with contextlib.suppress(InvalidStateError):
                    fut.set_exception(exc)

    def _landed(
        self, plan: Plan, run: list[tuple[int, Future[bytes]]], nbytes: int, inner: Future[Any]
    ) -> None:
        """A GET of the source's event loop ended (in its thread): keep the blocks."""
        with self._lock:
            self._inflight_bytes -= nbytes
            runs = self._runs.get(plan.blob)
            if runs is not None:
                runs.discard(inner)
                if not runs:
                    del self._runs[plan.blob]
        if inner.cancelled():
            self._drop(plan, run, CancelledError())
            return
        exc = inner.exception()
        if exc is None:
            blocks = inner.result()
            for (i, _f), data in zip(run, blocks, strict=True):
                if len(data) != plan.span(i)[1]:
                    exc = Corrupt(f"blob {plan.blob}: block {i} has the wrong length")
        if exc is not None:
            self._drop(plan, run, exc)
            return
        self._keep(plan, run, blocks, wait=False)

    def _keep(
        self,
        plan: Plan,
        run: list[tuple[int, Future[bytes]]],
        blocks: list[bytes],
        wait: bool = True,
    ) -> None:
        """Keep fetched (checked) blocks in memory and on disk; complete their
        futures. ``wait=False`` in an event loop: a block the disk cache's writer
        cannot take now is kept in memory only."""
        for (i, _f), data in zip(run, blocks, strict=True):
            self._remember(plan.key(i), data)
            if self.cache is not None:
                self.cache.put_soon(plan.key(i), data, wait)
        self._drop(plan, run, None)
        for (_i, fut), data in zip(run, blocks, strict=True):
            with contextlib.suppress(InvalidStateError):
                fut.set_result(data)

    def _run_span(self, plan: Plan, run: list[tuple[int, Future[bytes]]], nbytes: int) -> None:
        """Fetch a run of blocks in this thread (the source's retries inside)."""
        live = []
        for i, fut in run:
            if fut.set_running_or_notify_cancel():
                live.append((i, fut))
            else:
                self._drop(plan, [(i, fut)], None)
        try:
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
                self._drop(plan, live, exc)
                if not isinstance(exc, Exception):
                    raise
                return
            by_index = dict(zip(range(first, last + 1), blocks, strict=True))
            self._keep(plan, live, [by_index[i] for i, _f in live])
        finally:
            self._release(nbytes)

    # -- read-ahead -------------------------------------------------------------------

    def _read_ahead(self, plan: Plan, offset: int, end: int, last: int) -> None:
        """Start fetching the blocks after ``last`` when the reads of ``plan.blob``
        are sequential; the window doubles with each sequential read, and falls to
        nothing on a jump."""
        if self.readahead <= 0 or self._closed:
            return
        with self._lock:
            expected, window, until = self._streams.get(plan.blob, (-1, 0, 0))
            if expected < 0:
                sequential = offset == 0
            else:
                # the kernel's reads of one file reach here from several worker
                # threads, a little out of order: near the expected offset is in order
                slack = min(SEQUENTIAL_SLACK, 2 * plan.block_size)
                sequential = expected - slack <= offset <= expected + slack
            limit = max(1, self.readahead // plan.block_size)
            window = min(limit, max(1, window * 2)) if sequential else 0
            if not sequential:
                until = 0
            self._streams[plan.blob] = (max(expected, end) if sequential else end, window, until)
            self._streams.move_to_end(plan.blob)
            while len(self._streams) > 1024:
                self._streams.popitem(last=False)
        if not sequential or (offset == 0 and end >= plan.size):
            return
        lo, hi = max(last + 1, until), min(plan.blocks, last + 1 + window)
        max_run = max(1, self.run_bytes // plan.block_size)
        # Refill the window in runs (fewer, larger GETs) rather than one block at a
        # time, unless the very next block is not on its way and the reader would stall.
        if lo >= hi or (lo != last + 1 and hi - lo < min(max_run, max(1, window // 2))):
            return
        missing = [i for i in range(lo, hi) if self._absent(plan, i)]
        reached = self._prefetch(plan, missing) if missing else hi
        with self._lock:
            state = self._streams.get(plan.blob)
            if state is not None:
                self._streams[plan.blob] = (state[0], state[1], max(state[2], reached))

    def _absent(self, plan: Plan, index: int) -> bool:
        """True when block ``index`` is neither in memory, nor being fetched, nor on disk."""
        key = plan.key(index)
        with self._lock:
            if key in self._mem or key in self._inflight:
                return False
        return self.cache is None or not self.cache.path(key).exists()

    def _prefetch(self, plan: Plan, indices: list[int]) -> int:
        """Fetch blocks in the background, consecutive ones in runs of up to
        ``run_bytes`` with one request each when the source can; runs start only
        while the bytes in flight stay within half the memory budget. Returns the
        index after the last block started (or the first one left out)."""
        max_run = max(1, self.run_bytes // plan.block_size)
        runs: list[list[tuple[int, Future[bytes]]]] = []
        reached = indices[-1] + 1
        with self._lock:
            planned = self._inflight_bytes
            for i in indices:
                key = plan.key(i)
                if key in self._inflight or key in self._mem:
                    continue
                length = plan.span(i)[1]
                if planned + length > self.memory // 2:
                    reached = i
                    break
                planned += length
                fut: Future[bytes] = Future()
                fut.add_done_callback(_quiet)
                self._inflight[key] = fut
                if runs and runs[-1][-1][0] == i - 1 and len(runs[-1]) < max_run:
                    runs[-1].append((i, fut))
                else:
                    runs.append([(i, fut)])
        for run in runs:
            self._launch(plan, run)
        return reached

    def stop(self, blob: str) -> None:
        """The reader of ``blob`` went away: stop its read-ahead (the GETs in flight
        are cancelled; blocks already fetched stay cached)."""
        with self._lock:
            self._streams.pop(blob, None)
            runs = list(self._runs.pop(blob, ()))
        for inner in runs:
            inner.cancel()

    def held(self) -> int:
        """Bytes of blocks this reader holds in memory or has asked for and not yet
        received (read-ahead, prefetch and reads in flight)."""
        with self._lock:
            return self._mem_bytes + self._inflight_bytes


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

    def prefetch_nowait(self, blob: str, size: int) -> bool:
        return self.reader.prefetch_nowait(blob, size)

    def stop_prefetch(self, blob: str) -> None:
        self.reader.stop(blob)

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

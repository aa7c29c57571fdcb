"""The read side of remote stores: verified blocks, an on-disk LRU cache, read-ahead.

A remote blob is read in fixed *blocks*: a :class:`BlockSource` (the S3 store, a
linked bucket) says how a blob is cut (:meth:`BlockSource.plan`) and fetches one block
with its bytes already checked (:meth:`BlockSource.fetch`): against the blob id when
the block is the whole blob, against a per-block hash otherwise, and a failed check is
retried there. A :class:`CachedReader` serves byte ranges from those blocks:

- blocks are kept in a small in-memory LRU and in a :class:`BlockCache` on disk;
- the blocks a read needs are fetched in parallel (the first in the calling thread,
  the rest in a pool), and one block is fetched once however many readers want it;
- a sequential reader triggers read-ahead of the next blocks, in a window that doubles
  up to ``readahead`` bytes, refilled in runs of consecutive blocks that a source with
  ``fetch_span`` gets in one ranged request (each block still checked on its own); a
  random reader triggers none;
- errors are :class:`dlfs.errors.DlfsError`: ``Unavailable`` when the source could not
  be reached within its retry budget, ``Corrupt`` when bytes kept failing their check.
  Wrong bytes are never returned.

The disk cache (``--cache-dir``, ``--cache-size``) holds one file per block, named by
``(blob id, offset, length)``: content addressing means an entry never needs
invalidation. Each file starts with a header (magic, length, xxh3-128 of the payload)
and is written to a temporary name and renamed, so readers see whole entries or none;
a process checks an entry's header hash the first time it uses it (which also catches
a torn file after a power loss). Recency is the file's mtime, refreshed on use; when
the cache grows past its size, the process that notices takes an ``flock`` on
``.lock``, lists the files and deletes the least recently used down to 90% of the
limit. Several daemons can share one cache folder: renames are atomic, eviction is
serialized by the lock, and a reader whose entry was evicted under it just fetches
again. The cache survives remounts and reboots.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import logging
import os
import queue
import re
import struct
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from concurrent.futures import CancelledError, Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import xxhash

from dlfs.errors import Corrupt, DlfsError, InvalidInput
from dlfs.stores.base import BlobStore
from dlfs.stores.manifest import DEFAULT_BLOCK_SIZE as DEFAULT_BLOCK_SIZE

log = logging.getLogger(__name__)

MiB = 1 << 20
GiB = 1 << 30
DEFAULT_CACHE_SIZE = 10 * GiB
DEFAULT_READAHEAD = 32 * MiB
DEFAULT_MEMORY = 64 * MiB
DEFAULT_RUN = 16 * MiB
WRITE_BEHIND = 64 * MiB
"""Bytes of fetched blocks that may wait for the cache's background writer."""

_MAGIC = b"dlfsblk1"
_HEADER = struct.Struct("<8sQ16s")
HEADER_SIZE = _HEADER.size
_TOUCH_EVERY = 30.0
_RESCAN_EVERY = 30.0
_STALE_TMP = 3600.0


def parse_size(text: str | int) -> int:
    """``"10G"``, ``"512M"``, ``"64k"``, ``"1048576"`` -> bytes (powers of 1024)."""
    if isinstance(text, int):
        return text
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]?)(?:i?[bB])?\s*", text)
    if not m:
        raise InvalidInput(f"invalid size {text!r}: use a number with K, M, G or T")
    scale = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}[m.group(2).lower()]
    return int(float(m.group(1)) * scale)


def default_cache_dir() -> Path:
    """``$DLFS_CACHE_DIR``, else ``$XDG_CACHE_HOME/dlfs/blocks`` (``~/.cache/dlfs/blocks``)."""
    explicit = os.environ.get("DLFS_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "dlfs" / "blocks"


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


class BlockCache:
    """Blocks on disk under ``root``, at most about ``limit`` bytes, LRU by mtime.

    Safe to share between processes (see the module docstring). Any ``OSError`` on the
    cache (a full or read-only disk) degrades to a miss, never to a read error.
    """

    def __init__(self, root: Path, limit: int = DEFAULT_CACHE_SIZE) -> None:
        if limit <= 0:
            raise InvalidInput("the cache size must be positive")
        self.root = Path(root)
        self.limit = limit
        self._tmp = self.root / ".tmp"
        self._shards: set[str] = set()
        self._serial = itertools.count()
        self._queue: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self._queued = 0
        self._writer: threading.Thread | None = None
        self._lock = threading.Lock()
        self._trusted: set[str] = set()
        self._touched: dict[str, float] = {}
        self._base: int | None = None
        self._added = 0
        self._scanned_at = 0.0
        try:
            self._tmp.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.chmod(self.root, 0o700)
        except OSError as exc:
            raise InvalidInput(f"cannot use cache folder {self.root}: {exc}") from exc

    def path(self, key: str) -> Path:
        """The file of an entry."""
        return self.root / key[:2] / key

    def read(self, key: str, offset: int, size: int, length: int) -> bytes | None:
        """``size`` bytes from ``offset`` of the entry ``key`` (whose payload is
        ``length`` bytes), or None when it is not cached (or fails its check)."""
        path = self.path(key)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            if key not in self._trusted and not self._check(fd, key, length):
                with contextlib.suppress(OSError):
                    path.unlink()
                return None
            data = os.pread(fd, size, HEADER_SIZE + offset)
        except OSError:
            return None
        finally:
            os.close(fd)
        if len(data) != min(size, max(0, length - offset)):
            return None
        self._touch(key, path)
        return data

    def get(self, key: str, length: int | None = None) -> bytes | None:
        """The whole payload of an entry (of any length when ``length`` is None), or
        None."""
        if length is None:
            try:
                with open(self.path(key), "rb") as f:
                    header = f.read(HEADER_SIZE)
            except OSError:
                return None
            if len(header) != HEADER_SIZE:
                return None
            length = _HEADER.unpack(header)[1]
        return self.read(key, 0, length, length)

    def _check(self, fd: int, key: str, length: int) -> bool:
        raw = os.pread(fd, HEADER_SIZE + length + 1, 0)
        if len(raw) != HEADER_SIZE + length:
            log.warning("cache entry %s has the wrong size; dropped", key)
            return False
        magic, n, digest = _HEADER.unpack_from(raw)
        if magic != _MAGIC or n != length or xxhash.xxh3_128_digest(raw[HEADER_SIZE:]) != digest:
            log.warning("cache entry %s fails its check; dropped", key)
            return False
        with self._lock:
            if len(self._trusted) > 200_000:
                self._trusted.clear()
            self._trusted.add(key)
        return True

    def _touch(self, key: str, path: Path) -> None:
        now = time.monotonic()
        with self._lock:
            last = self._touched.get(key, 0.0)
            if now - last < _TOUCH_EVERY:
                return
            if len(self._touched) > 100_000:
                self._touched.clear()
            self._touched[key] = now
        with contextlib.suppress(OSError):
            os.utime(path)

    def put_soon(self, key: str, data: bytes) -> None:
        """:meth:`put` in a background writer, so the reader that fetched the block
        does not wait for a file to be created (~0.3 ms on ext4 here, more than the
        GET of a small block). At most :data:`WRITE_BEHIND` bytes wait; beyond that
        the caller writes itself. :meth:`flush` waits for the queue."""
        with self._lock:
            queued = self._queued + len(data) <= WRITE_BEHIND
            if queued:
                self._queued += len(data)
                self._queue.put((key, data))
                if self._writer is None:
                    self._writer = threading.Thread(
                        target=self._write_queued, name="dlfs-cache-writer", daemon=True
                    )
                    self._writer.start()
        if not queued:
            self.put(key, data)

    def _write_queued(self) -> None:
        while True:
            key, data = self._queue.get()
            try:
                self.put(key, data)
            except Exception as exc:  # put() degrades OSError; anything else: log, go on
                log.warning("cannot write cache entry %s: %s", key, exc)
            finally:
                with self._lock:
                    self._queued -= len(data)
                self._queue.task_done()

    def flush(self) -> None:
        """Wait until every block handed to :meth:`put_soon` is on disk."""
        self._queue.join()

    def put(self, key: str, data: bytes) -> None:
        """Store an entry (already verified by the caller); no-op if it exists."""
        size = HEADER_SIZE + len(data)
        if size > self.limit // 2:
            return
        path = self.path(key)
        if path.exists():
            return
        header = _HEADER.pack(_MAGIC, len(data), xxhash.xxh3_128_digest(data))
        try:
            shard = key[:2]
            if shard not in self._shards:
                path.parent.mkdir(exist_ok=True, mode=0o700)
                self._shards.add(shard)
            tmp = f"{self._tmp}/{os.getpid()}-{threading.get_ident()}-{next(self._serial)}"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            try:
                with os.fdopen(fd, "wb", buffering=0) as f:
                    f.write(header)
                    f.write(data)
                os.rename(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except OSError as exc:
            log.warning("cannot write cache entry %s: %s", key, exc)
            return
        with self._lock:
            self._trusted.add(key)
            self._touched[key] = time.monotonic()
            self._added += size
            due = (
                self._base is None
                or self._base + self._added > self.limit
                or time.monotonic() - self._scanned_at > _RESCAN_EVERY
            )
        if due:
            self.evict()

    def _entries(self) -> list[tuple[float, int, str]]:
        """``(mtime, size, path)`` of every entry; stale temporary files are removed."""
        out: list[tuple[float, int, str]] = []
        now = time.time()
        with os.scandir(self.root) as shards:
            for shard in shards:
                if shard.name == ".tmp" and shard.is_dir():
                    for tmp in os.scandir(shard.path):
                        with contextlib.suppress(OSError):
                            if now - tmp.stat().st_mtime > _STALE_TMP:
                                os.unlink(tmp.path)
                    continue
                if len(shard.name) != 2 or not shard.is_dir(follow_symlinks=False):
                    continue
                for entry in os.scandir(shard.path):
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    out.append((st.st_mtime, st.st_size, entry.path))
        return out

    def usage(self) -> int:
        """Bytes of the entries on disk now."""
        return sum(size for _m, size, _p in self._entries())

    def evict(self) -> int:
        """Delete least recently used entries until the cache is within its limit
        (down to 90% of it); return the bytes freed. Another process evicting at the
        same time makes this a no-op."""
        freed = 0
        try:
            lock_fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            log.warning("cannot lock cache %s: %s", self.root, exc)
            return 0
        try:
            try:
                fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return 0
            entries = self._entries()
            total = sum(size for _m, size, _p in entries)
            if total > self.limit:
                low = self.limit * 9 // 10
                for _mtime, size, path in sorted(entries):
                    if total <= low:
                        break
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(path)
                        freed += size
                    total -= size
        except OSError as exc:
            log.warning("cannot evict from cache %s: %s", self.root, exc)
            total = self._base or 0
        finally:
            os.close(lock_fd)
        with self._lock:
            self._base = total
            self._added = 0
            self._scanned_at = time.monotonic()
        return freed


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

"""The on-disk block cache of remote stores: one file per verified block, LRU by mtime.

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

Blocks are written behind the reader that fetched them (:meth:`BlockCache.put_soon`),
by one background thread, up to :data:`WRITE_BEHIND` bytes. The reader over these
blocks is :class:`dlfs.stores.cache.CachedReader`.
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
from pathlib import Path

import xxhash

from dlfs.errors import InvalidInput

log = logging.getLogger(__name__)

MiB = 1 << 20
GiB = 1 << 30
DEFAULT_CACHE_SIZE = 10 * GiB
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

    def put_soon(self, key: str, data: bytes, wait: bool = True) -> bool:
        """:meth:`put` in a background writer, so the reader that fetched the block
        does not wait for a file to be created (~0.3 ms on ext4 here, more than the
        GET of a small block). At most :data:`WRITE_BEHIND` bytes wait; beyond that
        the caller writes itself, or, with ``wait=False`` (an event loop that must
        not block on the disk), the block is not cached and False is returned.
        :meth:`flush` waits for the queue."""
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
            if not wait:
                return False
            self.put(key, data)
        return True

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

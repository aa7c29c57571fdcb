"""Verified reads of local blob files: the byte engine behind :class:`LocalStore`.

A :class:`LocalReader` serves byte ranges of the blob files of one local store and
never returns a byte it has not checked against the blob's hashes. It has the shape of
the remote stores' :class:`dlfs.stores.cache.CachedReader`: :meth:`~LocalReader.read_nowait`
answers at once or says "ask :meth:`~LocalReader.read` in a thread", and
:meth:`~LocalReader.read` blocks as long as it must, from any thread.

How a blob is checked:

- The first time a blob is read in this process its whole content is hashed
  (xxh3-128) through the file descriptor that will serve it; a mismatch is
  :class:`Corrupt`, a missing file :class:`BlobMissing` (an :class:`Unavailable`). The
  result is remembered with the file's identity (device, inode, size, mtime): a
  reopened blob whose file did not change is not hashed again, a replaced one is.
- A blob larger than one block with a block manifest (``<id>.blocks``, written at
  import, see :mod:`dlfs.stores.manifest`) is verified block by block instead, each
  block on its first read, while worker threads hash the next blocks ahead of the
  reader (:data:`READAHEAD_BLOCKS`, read ahead with ``POSIX_FADV_WILLNEED``): a cold
  sequential read streams instead of waiting for the whole blob. The bytes hashed are
  kept (:class:`KeptBlocks`) to serve the reads that follow, so they come from the
  disk once. A damaged manifest, or one whose size does not match, makes the blob
  :class:`Corrupt`; a bad block gives :class:`Corrupt` for reads of that block only.
  A large blob without a manifest is hashed whole.
- A blob shorter than the size its caller knows (the catalog's) is :class:`Corrupt`.

Where reads run (tuned on a 2-core machine, see ``docs/performance.md``): verified
blobs are served by ``os.pread`` on file descriptors kept in a small LRU, which is
cheap enough to run inline on the daemon's event loop. The first read of a small blob
(up to :data:`INLINE_VERIFY_MAX`: open it, read it whole, hash it) runs inline as
well while the disk is fast: a moving average of how long that took stays under
:data:`INLINE_COLD_MAX`, because the thread hop costs more than it saves. On a slower
disk first reads go to threads, so that several disk requests are in flight (one in
:data:`INLINE_RETRY` still runs inline, to notice when the disk got fast again). The
buffer that was hashed serves the blob's reads, without a copy, until one reaches its
end. Hashing a large blob always runs in a thread.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from dlfs.errors import BlobMissing, Corrupt, Unavailable
from dlfs.objects import blob_id, new_hasher
from dlfs.stores.manifest import Manifest

log = logging.getLogger(__name__)

INLINE_VERIFY_MAX = 1 << 20
"""Blobs up to this size are hashed inline on first read when their bytes are cached;
larger ones always in a worker thread."""

FD_CACHE = 256
"""How many verified local blob files stay open."""

LARGE_CACHE = 64
"""How many large blobs verified block by block stay open (with their block states)."""

READAHEAD_BLOCKS = 8
"""Blocks of a large blob hashed ahead of its reader, by :data:`VERIFY_THREADS`."""

KEPT_MAX = 96 << 20
"""Bytes of verified blocks of large blobs kept in memory to serve the reads that
follow (see :class:`KeptBlocks`): the read-ahead of a few sequential readers."""

VERIFY_THREADS = 2

INLINE_COLD_MAX = 0.002
"""First reads of small local blobs run inline on the event loop while opening and
verifying a blob takes less than this on average (seconds): on a fast disk a thread
hop costs more CPU than it saves, and CPU is what a 2-core machine runs out of. On a
slower disk they go to worker threads, so several disk requests are in flight."""

INLINE_RETRY = 64
"""While first reads go to threads, one in this many still runs inline, so the
average follows a disk that got fast again (cached, or a burst over)."""

FRESH_MAX = 64
"""Small blobs just verified whose buffers are kept to serve their reads."""

CHECKED_MAX = 1_000_000
"""How many verification results (good or bad) are remembered."""

HASH_CHUNK = 4 << 20
PREFETCH = 32 << 20


class LocalReader:
    """Verified byte ranges of the blob files of one local store.

    ``path_of(blob)`` is where a blob's file is, ``manifest_of(blob)`` where its block
    manifest would be; blobs larger than ``block_size`` may have one. Thread-safe;
    holds no file and no thread until the first read. Errors: :class:`BlobMissing` /
    :class:`Unavailable` (no file, or it cannot be opened), :class:`Corrupt` (bytes or
    manifest fail their hash, or the blob is shorter than ``blob_size``).
    """

    def __init__(
        self,
        path_of: Callable[[str], str],
        manifest_of: Callable[[str], Path],
        block_size: int,
    ) -> None:
        self._path_of = path_of
        self._manifest_of = manifest_of
        self.block_size = block_size
        # Verified blobs: blob id -> open fd, least recently used first.
        self._fds: OrderedDict[str, int] = OrderedDict()
        self._lock = threading.Lock()
        self._blob_locks: dict[str, tuple[threading.Lock, int]] = {}
        # Verification results: blob id -> ((dev, ino, size, mtime_ns), good).
        self._checked: dict[str, tuple[tuple[int, int, int, int], bool]] = {}
        # Large blobs verified block by block: blob id -> its file, least recent first.
        self._large: OrderedDict[str, _BlockFile] = OrderedDict()
        self._pool: ThreadPoolExecutor | None = None
        self._kept = KeptBlocks(KEPT_MAX)
        # Moving average of the seconds a first read of a small blob took to open and
        # verify it; above INLINE_COLD_MAX first reads go to threads.
        self._cold_time = 0.0
        self._cold_skipped = 0
        # Small blobs just verified: blob id -> their bytes, which serve the blob's
        # reads until one reaches the end.
        self._fresh: dict[str, bytes] = {}
        weakref.finalize(self, _close_all, self._fds)

    def close(self) -> None:
        """Close the cached file descriptors and stop the hashing threads. The reader
        stays usable: a later read opens (and verifies) again."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            _close_all(self._fds)
            self._large.clear()
            self._fresh.clear()

    # -- reading ----------------------------------------------------------------------

    def read_nowait(
        self, blob: str, offset: int, size: int, blob_size: int | None = None
    ) -> bytes | memoryview | None:
        """The bytes :meth:`read` would return, if they can be had without waiting on
        a slow disk or on hashing a large blob; else None (call :meth:`read` in a
        worker thread).

        Served at once: a verified blob whose file is open (``pread`` of mostly cached
        data), a verified block kept in memory, and the first read of a small blob
        while the disk is fast (see the module docstring).
        """
        if blob_size is None:
            return None
        end = blob_size
        if offset >= end or size <= 0:
            return b""
        size = min(size, end - offset)
        bf = None
        with self._lock:
            data = self._from_open_blob(blob, offset, size, end)
            if data is None:
                bf = self._large.get(blob)
        if bf is not None:
            last = (offset + size - 1) // bf.manifest.block_size
            if not bf.ready(offset // bf.manifest.block_size, last):
                return None
            if last + READAHEAD_BLOCKS // 2 >= bf.ahead:
                self._read_ahead(bf, last)
            kept = bf.take(offset, size)
            if kept is not None:
                return kept
            data = os.pread(bf.fd, size, offset)
        elif data is None:
            if end > INLINE_VERIFY_MAX:
                return None
            if self._cold_time > INLINE_COLD_MAX:
                self._cold_skipped += 1
                if self._cold_skipped % INLINE_RETRY:
                    return None
            start = time.monotonic()
            if not self._ensure(blob, end, block=False):
                return None  # another thread is verifying this blob: wait there
            self._note_cold(time.monotonic() - start)
            return self.read(blob, offset, size, end)
        if len(data) != size:
            raise Corrupt(f"blob {blob} is shorter than the catalog says ({end} bytes)")
        return data

    def read(
        self, blob: str, offset: int, size: int, blob_size: int | None = None
    ) -> bytes | memoryview:
        """Up to ``size`` bytes of the blob from ``offset`` (fewer at its end): exactly
        bytes that hash to the blob's id, or an error (see the class docstring).

        ``blob_size`` is the size the caller expects (the file's size is used when
        None). May block (disk, hashing); safe from any thread.
        """
        end = self._size_of(blob) if blob_size is None else blob_size
        if offset >= end or size <= 0:
            return b""
        size = min(size, end - offset)
        data: bytes | memoryview
        for _attempt in range(3):
            with self._lock:
                found = self._from_open_blob(blob, offset, size, end)
                if found is not None:
                    data = found
                    break
                bf = self._large.get(blob)
                if bf is not None:
                    self._large.move_to_end(blob)
            if bf is not None:
                data = self._read_blocks(bf, offset, size)
                break
            start = time.monotonic()
            self._ensure(blob, end)
            self._note_cold(time.monotonic() - start)
        else:
            raise Unavailable(f"blob {blob}: its file keeps being evicted from the fd cache")
        if len(data) != size:
            raise Corrupt(f"blob {blob} is shorter than the catalog says ({end} bytes)")
        return data

    def iter_bytes(self, blob: str, step: int) -> Iterator[bytes]:
        """The whole blob in chunks of ``step`` bytes, each verified before it is
        yielded: block by block with a manifest, else after hashing the whole blob."""
        end = self._size_of(blob)
        offset = 0
        while offset < end:
            data = self.read(blob, offset, step, end)
            offset += len(data)
            yield data if isinstance(data, bytes) else bytes(data)

    def verify(self, blob: str) -> bool:
        """Hash the blob's file whole, now, ignoring what was checked before: True
        when it matches the id; False when it does not or the file is missing."""
        try:
            fd = os.open(self._path_of(blob), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise Unavailable(f"blob {blob} cannot be opened: {exc}") from exc
        try:
            return _hash_fd(fd, os.fstat(fd).st_size) == blob
        finally:
            os.close(fd)

    def _size_of(self, blob: str) -> int:
        try:
            return os.stat(self._path_of(blob)).st_size
        except FileNotFoundError:
            raise BlobMissing(f"blob {blob} is missing from the local store") from None
        except OSError as exc:
            raise Unavailable(f"blob {blob} cannot be opened: {exc}") from exc

    def _from_open_blob(
        self, blob: str, offset: int, size: int, end: int
    ) -> bytes | memoryview | None:
        """The bytes of a verified blob whose file is open (None when it is not): from
        the buffer that verified it (no copy; dropped once a read reaches its end), or
        by ``pread``. Called with ``self._lock`` held."""
        fd = self._fds.get(blob)
        if fd is None:
            return None
        self._fds.move_to_end(blob)
        whole = self._fresh.get(blob)
        if whole is None:
            return os.pread(fd, size, offset)
        if len(whole) != end:
            raise Corrupt(f"blob {blob} is {len(whole)} bytes, the catalog says {end}")
        if offset + size >= end:
            del self._fresh[blob]
        return memoryview(whole)[offset : offset + size]

    def _read_blocks(self, bf: _BlockFile, offset: int, size: int) -> bytes | memoryview:
        """Bytes of a large blob, each block they touch verified first (blocking)."""
        block_size = bf.manifest.block_size
        first, last = offset // block_size, (offset + size - 1) // block_size
        for index in range(first, last + 1):
            if not bf.verify(index):
                raise Corrupt(
                    f"blob {bf.manifest.blob} is corrupt: block {index} does not match its manifest"
                )
        self._read_ahead(bf, last)
        kept = bf.take(offset, size)
        return kept if kept is not None else os.pread(bf.fd, size, offset)

    def _read_ahead(self, bf: _BlockFile, index: int) -> None:
        """Have worker threads hash the blocks after ``index`` (never blocks)."""
        todo = bf.claim_ahead(index, READAHEAD_BLOCKS)
        if not todo:
            return
        with self._lock:
            pool = self._pool
            if pool is None:
                pool = self._pool = ThreadPoolExecutor(VERIFY_THREADS, "dlfs-verify")
        for j in todo:
            start, length = bf.manifest.span(j)
            os.posix_fadvise(bf.fd, start, length, os.POSIX_FADV_WILLNEED)
        for j in todo:
            try:
                pool.submit(bf.hash_claimed, j)
            except RuntimeError:  # shut down: the reader hashes it itself
                bf.unclaim(j)

    def _note_cold(self, seconds: float) -> None:
        """Fold the time one blob took to open and verify into the moving average
        that decides where first reads run (races between threads only blur it)."""
        self._cold_time += (seconds - self._cold_time) / 8

    # -- opening and verifying --------------------------------------------------------

    def _ensure(self, blob: str, size: int, block: bool = True) -> bool:
        """Open and verify ``blob`` (expected ``size`` bytes) and cache its fd; True
        when done.

        Concurrent calls for one blob wait for each other, so it is hashed once; with
        ``block=False`` a call returns False at once when another thread is on it.
        A small blob is read whole to be hashed; those bytes serve its reads.
        """
        with self._lock:
            lock, users = self._blob_locks.get(blob) or (threading.Lock(), 0)
            self._blob_locks[blob] = (lock, users + 1)
        try:
            if not lock.acquire(blocking=block):
                return False
            try:
                self._ensure_locked(blob, size)
                return True
            finally:
                lock.release()
        finally:
            with self._lock:
                lock, users = self._blob_locks[blob]
                if users == 1:
                    del self._blob_locks[blob]
                else:
                    self._blob_locks[blob] = (lock, users - 1)

    def _ensure_locked(self, blob: str, size: int) -> None:
        if blob in self._fds or blob in self._large:
            return
        path = self._path_of(blob)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise BlobMissing(f"blob {blob} is missing from the local store") from None
        except OSError as exc:
            raise Unavailable(f"blob {blob} cannot be opened: {exc}") from exc
        try:
            st = os.fstat(fd)
            identity = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
            if st.st_size > self.block_size:
                manifest = self._load_manifest(blob, st.st_size, size)
                if manifest is not None:
                    with self._lock:
                        self._large[blob] = _BlockFile(fd, manifest, self._kept)
                        while len(self._large) > LARGE_CACHE:
                            self._large.popitem(last=False)
                    return
            known = self._checked.get(blob)
            if known is not None and known[0] == identity:
                good = known[1]
            else:
                digest = None
                if st.st_size <= INLINE_VERIFY_MAX:
                    # One read both verifies and serves: read() takes the buffer.
                    whole = os.pread(fd, st.st_size, 0)
                    if len(whole) == st.st_size:
                        digest = blob_id(whole)
                        if digest == blob:
                            with self._lock:
                                self._fresh[blob] = whole
                                while len(self._fresh) > FRESH_MAX:
                                    self._fresh.pop(next(iter(self._fresh)))
                if digest is None:
                    digest = _hash_fd(fd, st.st_size)
                good = digest == blob
                if len(self._checked) >= CHECKED_MAX:
                    self._checked.pop(next(iter(self._checked)))
                self._checked[blob] = (identity, good)
            if not good:
                raise Corrupt(f"blob {blob} is corrupt: its bytes do not match its hash")
        except BaseException:
            os.close(fd)
            raise
        with self._lock:
            old = self._fds.pop(blob, None)
            self._fds[blob] = fd
            while len(self._fds) > FD_CACHE:
                _blob, evicted = self._fds.popitem(last=False)
                os.close(evicted)
        if old is not None:
            os.close(old)

    def _load_manifest(self, blob: str, file_size: int, size: int) -> Manifest | None:
        """The block manifest of a large blob; None if it has none (hash it whole);
        :class:`Corrupt` if it is damaged or does not fit the blob."""
        try:
            with open(self._manifest_of(blob), "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise Corrupt(
                f"blob {blob} is corrupt: its block manifest cannot be read: {exc}"
            ) from exc
        try:
            manifest = Manifest.decode(blob, data)
        except Corrupt:
            raise Corrupt(f"blob {blob} is corrupt: its block manifest is damaged") from None
        if manifest.size != file_size or file_size != size:
            raise Corrupt(
                f"blob {blob} is corrupt: its block manifest says {manifest.size} bytes,"
                f" the file has {file_size}"
            )
        return manifest


def _close_all(fds: OrderedDict[str, int]) -> None:
    for fd in fds.values():
        os.close(fd)
    fds.clear()


_UNKNOWN, _GOOD, _BAD = 0, 1, 2


class KeptBlocks:
    """Verified blocks of large blobs, kept in memory from the read that hashed them
    until a read reaches their end, so their bytes are read from the disk once (not
    once to be hashed and again to be served). At most ``limit`` bytes: the oldest
    go first (their reads then ``pread`` again). Keyed by (blob id, block index):
    the same key always means the same bytes. Thread-safe."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.size = 0
        self._blocks: OrderedDict[tuple[str, int], bytes] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, key: tuple[str, int], data: bytes) -> None:
        """Keep a verified block."""
        with self._lock:
            if key in self._blocks or len(data) > self.limit:
                return
            self._blocks[key] = data
            self.size += len(data)
            while self.size > self.limit:
                _key, old = self._blocks.popitem(last=False)
                self.size -= len(old)

    def take(self, key: tuple[str, int], lo: int, hi: int) -> memoryview | None:
        """Bytes ``lo:hi`` of a kept block (no copy), or None; a block whose end was
        reached is let go."""
        with self._lock:
            data = self._blocks.get(key)
            if data is None:
                return None
            if hi >= len(data):
                del self._blocks[key]
                self.size -= len(data)
        return memoryview(data)[lo:hi]


class _BlockFile:
    """A large local blob verified block by block against its manifest.

    Owns its file descriptor (closed when the last reference goes: a worker thread
    may still be hashing a block after the blob left the reader's LRU). Each block is
    hashed once; a thread that needs a block another thread is hashing waits for it.
    The bytes that were hashed are kept (in a :class:`KeptBlocks` shared by the
    reader) to serve the block's reads.
    """

    def __init__(self, fd: int, manifest: Manifest, kept: KeptBlocks) -> None:
        self.fd = fd
        self.manifest = manifest
        self.kept = kept
        self.state = bytearray(manifest.blocks)
        self.ahead = 0
        """Blocks below this have been claimed for hashing (or hashed)."""
        self._pending: dict[int, threading.Event] = {}
        self._lock = threading.Lock()

    def __del__(self) -> None:
        os.close(self.fd)

    def ready(self, first: int, last: int) -> bool:
        """True when blocks ``first`` to ``last`` were all verified good."""
        state = self.state
        return all(state[i] == _GOOD for i in range(first, last + 1))

    def verify(self, index: int) -> bool:
        """Whether block ``index`` matches its hash; hashes it (or waits for the
        thread hashing it) the first time."""
        while True:
            with self._lock:
                state = self.state[index]
                if state != _UNKNOWN:
                    return state == _GOOD
                event = self._pending.get(index)
                if event is None:
                    event = self._pending[index] = threading.Event()
                    mine = True
                else:
                    mine = False
            if mine:
                self.hash_claimed(index)
            else:
                event.wait()

    def claim_ahead(self, index: int, count: int) -> list[int]:
        """Claim the unhashed blocks among the ``count`` after ``index``."""
        end = min(self.manifest.blocks, index + 1 + count)
        todo = []
        with self._lock:
            for j in range(max(self.ahead, index + 1), end):
                if self.state[j] == _UNKNOWN and j not in self._pending:
                    self._pending[j] = threading.Event()
                    todo.append(j)
            self.ahead = max(self.ahead, end)
        return todo

    def unclaim(self, index: int) -> None:
        with self._lock:
            event = self._pending.pop(index, None)
        if event is not None:
            event.set()

    def take(self, offset: int, size: int) -> memoryview | None:
        """Bytes of a verified block kept in memory, when the range lies in one."""
        block_size = self.manifest.block_size
        index = offset // block_size
        if (offset + size - 1) // block_size != index:
            return None
        start = index * block_size
        return self.kept.take((self.manifest.blob, index), offset - start, offset - start + size)

    def hash_claimed(self, index: int) -> None:
        """Hash block ``index``, claimed by this thread, and record the result (an
        I/O error leaves it unknown: the next reader tries again)."""
        start, length = self.manifest.span(index)
        try:
            data = os.pread(self.fd, length, start)
            good = len(data) == length and blob_id(data) == self.manifest.hashes[index]
            if good:
                self.kept.put((self.manifest.blob, index), data)
            self.state[index] = _GOOD if good else _BAD
        except OSError:
            log.warning("reading block %d of blob %s failed", index, self.manifest.blob)
        finally:
            self.unclaim(index)


def _hash_fd(fd: int, size: int) -> str:
    """The blob id of everything readable from ``fd`` (``size`` bytes expected).

    Large files are read ahead (``POSIX_FADV_WILLNEED``) so the disk streams while the
    bytes are hashed.
    """
    hasher = new_hasher()
    buf = bytearray(min(HASH_CHUNK, max(size, 1)))
    view = memoryview(buf)
    big = size > HASH_CHUNK
    if big:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
    offset = 0
    while True:
        if big and offset % PREFETCH == 0:
            os.posix_fadvise(fd, offset, 2 * PREFETCH, os.POSIX_FADV_WILLNEED)
        n = os.preadv(fd, [view], offset)
        if not n:
            break
        hasher.update(view[:n])
        offset += n
    return str(hasher.hexdigest())

"""Staging files: where the bytes of a file written through a mount wait for its close.

A writable draft mount (:mod:`dlfs.draftview`) gives each file being written a
:class:`StagedFile` in its :class:`StagingArea`, a private folder under the local blob
store's staging folder (``<home>/blobs/.staging/<pid>-mount-*/``, on the same file
system as the blobs). Writes land there at any offset; the content hash (xxh3-128) is
kept up to date while the writes are sequential, so a file written front to back is
hashed as it arrives and never read again; after a random write it is hashed once, by
streaming the file, when it is stored.

:func:`store_blob` makes the staged bytes a blob: the store adopts the file
(:meth:`dlfs.stores.base.BlobStore.adopt`). The local store *renames* it into place
(no copy), after the block manifest of a blob larger than one block, computed with
the running hash (:meth:`StagedFile.manifest`); nothing is stored when that blob
already exists (identical bytes are stored once). Other stores copy the file through
an ingest batch.

A daemon that dies leaves its staging folder behind; the next writable mount removes
every folder whose daemon is gone (:func:`clear_abandoned`): nothing in them is
referenced by the catalog.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from dlfs.errors import Unavailable
from dlfs.stores.base import BlobStore
from dlfs.stores.manifest import DEFAULT_BLOCK_SIZE, BlockHasher, Manifest

HASH_CHUNK = 4 << 20
LOCK_NAME = ".lock"


class StagedFile:
    """The bytes of one file being written: a staging file and its running hash."""

    def __init__(
        self, path: Path, block_size: int = DEFAULT_BLOCK_SIZE, resume: BlockHasher | None = None
    ) -> None:
        self.path = path
        if resume is None:
            flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        else:  # a file that holds the bytes ``resume`` hashed (a blob taken back)
            flags = os.O_RDWR | os.O_CLOEXEC
        self.fd = os.open(path, flags, 0o600)
        self.size = 0 if resume is None else resume.size
        self.block_size = block_size if resume is None else resume.block_size
        self._hash: BlockHasher | None = resume or BlockHasher(block_size)
        """The hash of the bytes ``[0, size)`` while writes were sequential, else None."""

    def write(self, offset: int, data: bytes) -> int:
        """Write ``data`` at ``offset`` (past the end leaves a hole of zeros)."""
        view = memoryview(data)
        done = 0
        while done < len(view):
            done += os.pwrite(self.fd, view[done:], offset + done)
        if self._hash is not None:
            if offset == self.size:
                self._hash.update(data)
            else:
                self._hash = None
        self.size = max(self.size, offset + done)
        return done

    def read(self, offset: int, size: int) -> bytes:
        """Up to ``size`` bytes from ``offset``."""
        return os.pread(self.fd, size, offset)

    def truncate(self, size: int) -> None:
        """Cut or extend (with zeros) to ``size`` bytes."""
        os.ftruncate(self.fd, size)
        if size == 0:
            self._hash = BlockHasher(self.block_size)
        elif size != self.size:
            self._hash = None
        self.size = size

    def fill(self, chunks: Iterable[bytes]) -> None:
        """Append ``chunks`` (the previous content of a file being rewritten)."""
        for chunk in chunks:
            self.write(self.size, chunk)

    def _hashed(self, block_size: int) -> BlockHasher:
        """The running hash, or one made by streaming the file once."""
        if self._hash is not None and self._hash.block_size == block_size:
            return self._hash
        hasher = BlockHasher(block_size)
        buf = bytearray(min(HASH_CHUNK, max(self.size, 1)))
        view = memoryview(buf)
        while hasher.size < self.size:
            want = min(len(buf), self.size - hasher.size)
            n = os.preadv(self.fd, [view[:want]], hasher.size)
            if not n:
                raise Unavailable(f"staging file {self.path} is shorter than written")
            hasher.update(view[:n])
        self._hash = hasher
        return hasher

    def running_hash(self) -> BlockHasher | None:
        """A copy of the hash of the content, if it is known without reading it."""
        return None if self._hash is None else self._hash.copy()

    def digest(self) -> str:
        """The blob id of the content: from the running hash, or by streaming the file."""
        return self._hashed(self.block_size).blob_so_far()

    def manifest(self, block_size: int) -> Manifest | None:
        """The block manifest of the content for ``block_size`` (None: one block)."""
        return self._hashed(block_size).manifest_so_far()

    def sync(self) -> None:
        """Flush the staged bytes to stable storage (``fsync``)."""
        os.fsync(self.fd)

    def close(self) -> None:
        """Close the file descriptor (the file stays)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def discard(self) -> None:
        """Close and delete the staging file."""
        self.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


class StagingArea:
    """One mount's staging folder; :meth:`close` removes it with what is left in it.

    The folder holds a ``.lock`` file its process keeps ``flock``-ed: the kernel
    drops the lock when the process dies, however it dies, which is how
    :func:`clear_abandoned` tells abandoned folders (pids are reused, and a killed
    daemon may linger as a zombie).
    """

    def __init__(self, store_root: Path) -> None:
        staging = store_root / ".staging"
        staging.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.dir = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-mount-", dir=staging))
        self._lock = os.open(self.dir / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(self._lock, fcntl.LOCK_EX)
        self._names = itertools.count()

    def new_file(self) -> StagedFile:
        """A new, empty staging file."""
        return StagedFile(self.dir / str(next(self._names)))

    def close(self) -> None:
        """Remove the staging folder."""
        shutil.rmtree(self.dir, ignore_errors=True)
        if self._lock >= 0:
            os.close(self._lock)
            self._lock = -1


def clear_abandoned(store_root: Path, store: BlobStore | None = None) -> int:
    """Remove the staging folders of mounts whose daemon is gone; how many went.

    Nothing in them is referenced by the catalog: a file is recorded only after its
    bytes left the staging folder, except a blob a writer took back to append to
    (:meth:`dlfs.stores.base.BlobStore.take_back`), which ``store`` puts back first
    (without ``store``, such a folder is left for ``store.clear_staging``).
    """
    staging = store_root / ".staging"
    if not staging.is_dir():
        return 0
    removed = 0
    for entry in os.scandir(staging):
        if "-mount-" not in entry.name or not entry.is_dir():
            continue
        try:
            fd = os.open(os.path.join(entry.path, LOCK_NAME), os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            fd = -1  # never locked (died while starting) or half removed
        try:
            if fd >= 0:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a live mount's
            folder = Path(entry.path)
            if store is not None:
                store.put_back_taken_in(folder)
            elif any(p.name.startswith("taken-") for p in folder.iterdir()):
                continue
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
        finally:
            if fd >= 0:
                os.close(fd)
    return removed


def store_blob(store: BlobStore, staged: StagedFile, durable: bool = False) -> tuple[str, bool]:
    """Store the staged bytes as a blob of ``store``; return ``(blob id, moved)``.

    ``moved`` means the staging file *became* the blob's file (the store adopted it,
    see :meth:`dlfs.stores.base.BlobStore.adopt`): it must never be written again,
    and ``staged`` is closed. Otherwise the staged file is unchanged and may be
    written on. Without ``durable`` the bytes survive a crash of this process (they
    are in a file); with it, power loss too.
    """
    blob, moved = store.adopt(staged, durable)
    if moved:
        staged.close()
    return blob, moved

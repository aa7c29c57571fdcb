"""The blob store interface.

A blob store keeps bytes under their content id (xxh3-128, see :mod:`dlfs.objects`)
and knows nothing of datasets, items or versions. Writes go through an
:class:`IngestBatch`: bytes are hashed while they stream in, staged, and made durable
and visible together by :meth:`IngestBatch.commit`, which the caller runs just before it
commits the catalog. A crash before that leaves only staged garbage, never a blob the
catalog names that is not fully on disk.
"""

from __future__ import annotations

import abc
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, BinaryIO, Protocol

if TYPE_CHECKING:
    from dlfs.stores.manifest import BlockHasher, Manifest

CHUNK = 1 << 20


class IngestBatch(abc.ABC):
    """Blobs written together and made durable together."""

    def add_file(self, path: Path) -> tuple[str, int]:
        """Store the bytes of a local file; return ``(blob id, size)``."""
        with open(path, "rb") as src:
            return self.add_stream(src)

    @abc.abstractmethod
    def add_stream(self, stream: BinaryIO) -> tuple[str, int]:
        """Store the bytes read from ``stream`` until EOF; return ``(blob id, size)``."""

    def add_bytes(self, data: bytes) -> tuple[str, int]:
        """Store ``data``; return ``(blob id, size)``."""
        import io

        return self.add_stream(io.BytesIO(data))

    @abc.abstractmethod
    def commit(self) -> None:
        """Make every added blob durable and readable."""

    @abc.abstractmethod
    def abort(self) -> None:
        """Drop whatever was staged and not committed."""

    def __enter__(self) -> IngestBatch:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # The caller commits explicitly (right before the catalog); anything else aborts.
        self.abort()


class StagedBytes(Protocol):
    """Bytes waiting in a local file to become a blob (a
    :class:`dlfs.staging.StagedFile`): what :meth:`BlobStore.adopt` takes."""

    @property
    def path(self) -> Path:
        """The file holding the bytes."""

    def digest(self) -> str:
        """The blob id of the bytes."""

    def manifest(self, block_size: int) -> Manifest | None:
        """Their block manifest for ``block_size`` (None: one block or less)."""

    def sync(self) -> None:
        """Flush the file's bytes to stable storage."""


class BlobStore(abc.ABC):
    """Bytes by content id. Implementations: :mod:`dlfs.stores.local`,
    :mod:`dlfs.stores.s3`, :mod:`dlfs.stores.linked`.

    Every read returns verified bytes: bytes that hash to the blob's id (per block
    where the store keeps block hashes), or an error: :class:`dlfs.errors.Corrupt`
    when they do not, :class:`dlfs.errors.Unavailable` (:class:`dlfs.errors.BlobMissing`
    for a blob the store does not have) when they cannot be had.
    """

    url: str
    remote = True
    """Reads go over a network (worth prefetching); False for local files."""

    @abc.abstractmethod
    def has(self, blob: str) -> bool:
        """True when the blob is stored."""

    @abc.abstractmethod
    def batch(self) -> IngestBatch:
        """A new batch of blobs to write."""

    @abc.abstractmethod
    def read(
        self, blob: str, offset: int, size: int, blob_size: int | None = None
    ) -> bytes | memoryview:
        """Up to ``size`` verified bytes of a blob from ``offset`` (fewer at its end).
        ``blob_size``, when the caller knows it (the catalog's), saves a lookup; a
        blob shorter than that is :class:`dlfs.errors.Corrupt`. May block; safe
        from any thread."""

    def read_nowait(
        self, blob: str, offset: int, size: int, blob_size: int | None = None
    ) -> bytes | memoryview | None:
        """:meth:`read`'s bytes when they can be had without blocking on a network,
        a slow disk or the hashing of a large blob; None otherwise (then call
        :meth:`read`, in a worker thread)."""
        return None

    @abc.abstractmethod
    def iter_bytes(self, blob: str) -> Iterator[bytes]:
        """The whole blob, in chunks, never yielding a byte that was not verified:
        a chunk that fails its check raises :class:`dlfs.errors.Corrupt` instead of
        being yielded (what came before it was good)."""

    @abc.abstractmethod
    def verify(self, blob: str) -> bool:
        """Re-hash the stored bytes: True when they match the id."""

    def check(self, blob: str) -> str | None:
        """What is wrong with a stored blob, as one line for ``dlfs fsck``; None
        when nothing is."""
        return None if self.verify(blob) else f"blob {blob} is missing or corrupt"

    @abc.abstractmethod
    def delete(self, blob: str) -> None:
        """Remove a blob (no error if it is already gone)."""

    def blob_ids(self) -> Iterator[str]:
        """Every blob id stored, when the store can list them cheaply (local files);
        none otherwise."""
        return iter(())

    def take_back(self, blob: str, size: int, folder: Path) -> Path | None:
        """Move a blob of ``size`` bytes out of the store into ``folder`` as a working
        file a writer may append to, and return its path; None when the store cannot
        (remote stores) or has no such file. The caller holds the catalog's write
        lock and made sure only its own file names the blob (:mod:`dlfs.openfiles`).
        Until it is stored again, the file's first ``size`` bytes stay the blob's:
        :meth:`put_back_taken` restores the blob from it (after a crash, too)."""
        return None

    def put_back_taken(self, path: Path) -> None:
        """Cut a working file made by :meth:`take_back` to its blob's size and put
        it back as the blob (or drop it when the blob is stored again)."""
        return None

    def put_back_taken_in(self, folder: Path) -> None:
        """:meth:`put_back_taken` for every working file in ``folder`` (a dead
        writer's staging folder, before it is removed)."""
        return None

    def set_aside(self, blob: str) -> bool:
        """Take a blob out of reach (readers and dedup no longer find it) without
        losing it yet: the first step of reclaiming it, run under the catalog's write
        lock (:mod:`dlfs.reclaim`). True when it was set aside; False when the store
        does not reclaim (remote stores: ``dlfs gc`` only) or has no such blob.
        A process that dies with blobs set aside leaves them to :meth:`clear_staging`,
        which puts them back."""
        return False

    def drop_aside(self, blob: str) -> None:
        """Delete a blob this process set aside (its catalog row is gone)."""
        return None

    def put_back(self, blob: str) -> None:
        """Return a blob this process set aside to its place (the reclaim was
        rolled back)."""
        return None

    def adopt(self, staged: StagedBytes, durable: bool = False) -> tuple[str, bool]:
        """Store the bytes of a staged file as a blob; return ``(blob id, moved)``.

        ``moved`` means the staged file *became* the blob (a local store renames it
        into place): it must never be written again. Otherwise it is unchanged (its
        bytes were copied; here through an ingest batch, which is durable). Without
        ``durable`` the bytes survive a crash of this process; with it, power loss.
        """
        with self.batch() as batch:
            stored, _size = batch.add_file(staged.path)
            batch.commit()
        return stored, False

    def sync_blob(self, blob: str) -> None:
        """Make one stored blob durable against power loss (for ``fsync``); stores
        whose writes are durable when they return do nothing."""
        return None

    def clear_staging(self) -> None:
        """Remove what writers that died left in the store's staging folder, and put
        back the blobs that reclaimers which died had set aside."""
        return None

    def prefetch(self, blob: str, size: int) -> None:
        """A hint that the start of a blob of ``size`` bytes will be read soon:
        remote stores start fetching it into their caches. Never blocks on the
        fetch; errors are left for the read that follows."""
        return None

    def prefetch_nowait(self, blob: str, size: int) -> bool:
        """:meth:`prefetch` right here when that takes no waiting at all (the fetch
        is handed to the store's own event loop): True when done so, False when the
        caller should run :meth:`prefetch` in a thread (say, a large blob's block
        manifest must be fetched first)."""
        return False

    def stop_prefetch(self, blob: str) -> None:
        """The last reader of ``blob`` closed it: stop fetching ahead for it."""
        return None

    def close(self) -> None:
        """Stop background work and finish pending cache writes (remote stores),
        close cached files (local ones)."""
        return None

    def local_path(self, blob: str) -> Path | None:
        """A local file holding exactly the blob, when the store has one (for
        uploads that read a file by path; its bytes are not verified)."""
        return None


class StagingFolder:
    """A batch's private folder under a store's staging root, where added bytes wait
    for :meth:`IngestBatch.commit`.

    Created on first use and named ``<pid>-...``, so that :func:`clear_dead_staging`
    can tell the leftovers of dead writers from the folders of live ones; removed
    whole by :meth:`remove`. Thread-safe.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self._dir: Path | None = None
        self._lock = threading.Lock()

    def path(self) -> Path:
        """The folder (created now if needed)."""
        with self._lock:
            if self._dir is None:
                self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
                self._dir = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=self.root))
            return self._dir

    def copy_in(self, stream: BinaryIO, hasher: BlockHasher) -> Path:
        """Copy ``stream`` to a new file in the folder until EOF, feeding ``hasher``
        every byte; the file is removed if reading or writing fails."""
        fd, tmp = tempfile.mkstemp(dir=self.path())
        try:
            with os.fdopen(fd, "wb") as out:
                view = memoryview(bytearray(CHUNK))
                while n := stream.readinto(view):  # type: ignore[attr-defined]
                    chunk = view[:n]
                    hasher.update(chunk)
                    out.write(chunk)
        except BaseException:
            os.unlink(tmp)
            raise
        return Path(tmp)

    def remove(self) -> None:
        """Delete the folder and all it holds (a no-op when it was never created)."""
        with self._lock:
            folder, self._dir = self._dir, None
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


def clear_dead_staging(staging: Path) -> None:
    """Remove the staging folders (``<pid>-...``) of writers that are no longer alive.

    What a batch staged is referenced by the catalog only after it committed, so the
    leftovers of a crashed writer are garbage; folders of live processes are kept.
    """
    if not staging.exists():
        return
    for entry in os.scandir(staging):
        pid = entry.name.partition("-")[0]
        if pid.isdigit() and alive(int(pid)):
            continue
        shutil.rmtree(entry.path, ignore_errors=True)


def alive(pid: int) -> bool:
    """True when process ``pid`` exists (or is not ours to signal)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

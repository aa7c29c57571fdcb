"""The local blob store: one file per blob under ``<home>/blobs/<2 hex>/<id>``.

Writes are atomic and durable in batches: each blob is streamed (and hashed) into a
staging file under ``<home>/blobs/.staging``; :meth:`LocalBatch.commit` flushes the
file system once (``syncfs``, far cheaper than an ``fsync`` per file), renames every
staged file to its final name, then flushes again so the renames are durable. A blob
that already exists is never rewritten: identical bytes are stored once. A file
written through a draft mount is adopted (:meth:`LocalStore.adopt`): renamed into
place, no copy.

A blob larger than one block (``block_size``, 4 MiB) also gets a block manifest,
``<id>.blocks`` beside it (:class:`dlfs.stores.manifest.Manifest`), computed in the
same pass as the blob id and renamed into place before the blob, so that readers
verify it block by block. Reads go through the store's
:class:`dlfs.stores.localread.LocalReader`, which verifies every byte it returns.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from dlfs.durable import fsync_dir, syncfs
from dlfs.errors import Corrupt, Unavailable
from dlfs.stores.base import (
    BlobStore,
    IngestBatch,
    StagedBytes,
    StagingFolder,
    alive,
    clear_dead_staging,
)
from dlfs.stores.localread import LocalReader
from dlfs.stores.manifest import DEFAULT_BLOCK_SIZE, BlockHasher, Manifest, hash_file_blocks

TAKEN = "taken-"
"""Prefix of a working file made of a blob (:meth:`LocalStore.take_back`)."""

BLOCK_SIZE = DEFAULT_BLOCK_SIZE
"""The block size of new local stores (tests set it smaller)."""


class LocalStore(BlobStore):
    """Blobs as files in a folder, sharded by the first two hex digits of the id."""

    url = "local"
    remote = False

    def __init__(self, root: Path, block_size: int | None = None) -> None:
        self.root = root
        self._root = os.fspath(root)
        self.staging = root / ".staging"
        self.aside = root / ".aside"
        """Blobs being reclaimed: ``<pid>-<id>`` (and ``.blocks``), see :meth:`set_aside`."""
        self.block_size = block_size or BLOCK_SIZE
        """Blobs larger than this get a block manifest of blocks of this size."""
        self._reader: LocalReader | None = None
        self._reader_lock = threading.Lock()
        self._shards: set[str] = set()
        """Shard folders known to exist (``ab``): made once."""

    def path(self, blob: str) -> Path:
        """Where blob ``blob`` lives (whether or not it exists)."""
        return self.root / blob[:2] / blob

    def local_path(self, blob: str) -> Path | None:
        return self.path(blob)

    def local_file(self, blob: str) -> str:
        """:meth:`path` as a string (the read path asks often)."""
        return f"{self._root}/{blob[:2]}/{blob}"

    def manifest_path(self, blob: str) -> Path:
        """Where the block manifest of a large blob ``blob`` lives."""
        return self.root / blob[:2] / f"{blob}.blocks"

    def has(self, blob: str) -> bool:
        return self.path(blob).exists()

    def batch(self) -> LocalBatch:
        return LocalBatch(self)

    # -- reading: all through the one reader ------------------------------------------

    def reader(self) -> LocalReader:
        """The store's reader, made on first use.

        It then also answers :meth:`read` and :meth:`read_nowait` directly (bound on
        the instance), so a read costs no call through the store: the daemon's read
        path is tuned per call (``docs/performance.md``).
        """
        reader = self._reader
        if reader is None:
            with self._reader_lock:
                reader = self._reader
                if reader is None:
                    reader = LocalReader(self.local_file, self.manifest_path, self.block_size)
                    self.read = reader.read  # type: ignore[method-assign]
                    self.read_nowait = reader.read_nowait  # type: ignore[method-assign]
                    self._reader = reader
        return reader

    def read(
        self, blob: str, offset: int, size: int, blob_size: int | None = None
    ) -> bytes | memoryview:
        """Verified bytes (see :class:`LocalReader`)."""
        return self.reader().read(blob, offset, size, blob_size)

    def read_nowait(
        self, blob: str, offset: int, size: int, blob_size: int | None = None
    ) -> bytes | memoryview | None:
        """Verified bytes when they come without waiting (see :class:`LocalReader`)."""
        return self.reader().read_nowait(blob, offset, size, blob_size)

    def iter_bytes(self, blob: str) -> Iterator[bytes]:
        return self.reader().iter_bytes(blob, self.block_size)

    def verify(self, blob: str) -> bool:
        return self.reader().verify(blob)

    def check(self, blob: str) -> str | None:
        """The blob's bytes against its id, then its block manifest if it has one."""
        if not self.verify(blob):
            return f"blob {blob} is missing or corrupt"
        return self.check_manifest(blob)

    def close(self) -> None:
        """Close the reader's cached files (it stays usable)."""
        if self._reader is not None:
            self._reader.close()

    def check_manifest(self, blob: str) -> str | None:
        """What is wrong with the block manifest of ``blob`` (None: nothing). A blob
        larger than one block may lack one (imported before manifests existed): it is
        then hashed whole when read."""
        try:
            data = self.manifest_path(blob).read_bytes()
        except FileNotFoundError:
            return None
        try:
            manifest = Manifest.decode(blob, data)
        except Corrupt:
            return f"the block manifest of blob {blob} is damaged"
        try:
            _whole, hashes = hash_file_blocks(self.path(blob), manifest.block_size)
            size = self.path(blob).stat().st_size
        except FileNotFoundError:
            return None  # the blob itself is reported missing
        if size != manifest.size or tuple(hashes) != manifest.hashes:
            return f"the block manifest of blob {blob} does not match its bytes"
        return None

    # -- writing ----------------------------------------------------------------------

    def adopt(self, staged: StagedBytes, durable: bool = False) -> tuple[str, bool]:
        """Rename the staged file into place as its blob (no copy), after the block
        manifest of a large blob; with ``durable``, the file, the manifest and the
        folder are fsynced. Nothing moves when the blob already exists."""
        blob = staged.digest()
        final = self.path(blob)
        if final.exists():
            return blob, False
        manifest = staged.manifest(self.block_size)
        if durable:
            staged.sync()
        try:
            if blob[:2] not in self._shards:
                final.parent.mkdir(mode=0o700, exist_ok=True)
                self._shards.add(blob[:2])
            if manifest is not None:  # the manifest first: a large blob never lacks it
                _write_file(self.manifest_path(blob), manifest.encode(), durable)
            os.rename(staged.path, final)
        except OSError as exc:
            raise Unavailable(f"cannot store blob {blob}: {exc.strerror}") from exc
        if durable:
            fsync_dir(final.parent)
        return blob, True

    def sync_blob(self, blob: str) -> None:
        """``fsync`` the blob's file (no error when it is missing)."""
        try:
            fd = os.open(self.path(blob), os.O_RDONLY)
        except FileNotFoundError:
            return
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def sync(self) -> None:
        """Flush the file system holding the store (``syncfs``)."""
        if self.root.exists():
            syncfs(self.root)

    def take_back(self, blob: str, size: int, folder: Path) -> Path | None:
        """Rename the blob's file to ``folder/taken-<id>-<size>`` (its manifest stays,
        for :meth:`put_back_taken`)."""
        target = folder / f"{TAKEN}{blob}-{size}"
        try:
            os.rename(self.path(blob), target)
        except FileNotFoundError:
            return None
        return target

    def put_back_taken(self, path: Path) -> None:
        blob, _, size = path.name.removeprefix(TAKEN).partition("-")
        if len(blob) != 32 or not size.isdigit():
            return
        try:
            if self.has(blob):
                path.unlink()
                return
            os.truncate(path, int(size))
            os.rename(path, self.path(blob))
        except FileNotFoundError:
            return

    def _aside_path(self, blob: str, pid: int | None = None) -> Path:
        return self.aside / f"{pid or os.getpid()}-{blob}"

    def set_aside(self, blob: str) -> bool:
        """Rename the blob (then its manifest) into ``.aside``: one atomic step after
        which neither readers nor :meth:`adopt` / a batch find it."""
        self.aside.mkdir(mode=0o700, exist_ok=True)
        target = self._aside_path(blob)
        try:
            os.rename(self.path(blob), target)
        except FileNotFoundError:
            with contextlib.suppress(FileNotFoundError):  # a manifest left alone
                self.manifest_path(blob).unlink()
            return False
        with contextlib.suppress(FileNotFoundError):
            os.rename(self.manifest_path(blob), f"{target}.blocks")
        return True

    def drop_aside(self, blob: str) -> None:
        target = self._aside_path(blob)
        for path in (target, Path(f"{target}.blocks")):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def put_back(self, blob: str) -> None:
        self._put_back(self._aside_path(blob), blob)

    def _put_back(self, target: Path, blob: str) -> None:
        # The manifest first: a large blob in place never lacks it. Renaming over a
        # copy stored meanwhile is harmless: the bytes are the same.
        with contextlib.suppress(FileNotFoundError):
            os.rename(f"{target}.blocks", self.manifest_path(blob))
        self.path(blob).parent.mkdir(mode=0o700, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.rename(target, self.path(blob))

    def _put_back_dead(self) -> int:
        """Put back the blobs set aside by processes that died; how many."""
        if not self.aside.is_dir():
            return 0
        count = 0
        for entry in os.scandir(self.aside):
            pid, _, blob = entry.name.partition("-")
            if not pid.isdigit() or len(blob) != 32 or alive(int(pid)):
                continue
            self._put_back(Path(entry.path), blob)
            count += 1
        return count

    def delete(self, blob: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(blob).unlink()
        with contextlib.suppress(FileNotFoundError):
            self.manifest_path(blob).unlink()

    def blob_ids(self) -> Iterator[str]:
        """Every blob id stored, in no particular order."""
        if not self.root.exists():
            return
        for shard in os.scandir(self.root):
            if shard.is_dir() and len(shard.name) == 2:
                for entry in os.scandir(shard.path):
                    if len(entry.name) == 32:
                        yield entry.name

    def clear_staging(self) -> None:
        """Remove staging folders left by writers that died (none of it is referenced);
        put back the blobs that reclaimers which died had set aside (a reclaim whose
        catalog change did not commit; one that did leaves an orphan blob, which the
        next reclaim of unrecorded blobs removes)."""
        if self.staging.is_dir():  # blobs taken back by writers that died: first
            for entry in os.scandir(self.staging):
                pid = entry.name.partition("-")[0]
                if entry.is_dir() and pid.isdigit() and not alive(int(pid)):
                    self.put_back_taken_in(Path(entry.path))
        clear_dead_staging(self.staging)
        self._put_back_dead()

    def put_back_taken_in(self, folder: Path) -> None:
        """:meth:`put_back_taken` for every working file of ``folder``."""
        for entry in os.scandir(folder):
            if entry.name.startswith(TAKEN):
                self.put_back_taken(Path(entry.path))


def _write_file(path: Path, data: bytes, durable: bool) -> None:
    """Write ``path`` whole: a temporary file renamed over it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        if durable:
            os.fsync(f.fileno())
    os.rename(tmp, path)


class LocalBatch(IngestBatch):
    """Blobs staged in the local store, made durable and visible by :meth:`commit`."""

    def __init__(self, store: LocalStore) -> None:
        self.store = store
        self._staged: dict[str, tuple[Path, Path | None]] = {}
        self._existing: set[str] = set()
        """Blobs found already stored (not staged again): :meth:`commit` checks them."""
        self._staging = StagingFolder(store.staging)
        self._lock = threading.Lock()

    def add_stream(self, stream: BinaryIO) -> tuple[str, int]:
        hasher = BlockHasher(self.store.block_size)
        tmp = self._staging.copy_in(stream, hasher)
        blob, _hashes = hasher.finish()
        size = hasher.size
        manifest = hasher.manifest(blob)
        blocks = Path(f"{tmp}.blocks") if manifest is not None else None
        with self._lock:
            duplicate = blob in self._staged or self.store.has(blob)
            if not duplicate:
                self._staged[blob] = (tmp, blocks)
            elif blob not in self._staged:
                self._existing.add(blob)
        if duplicate:
            os.unlink(tmp)
        elif manifest is not None and blocks is not None:
            blocks.write_bytes(manifest.encode())
        return blob, size

    def commit(self) -> None:
        """Make the staged blobs durable and visible; the caller holds the catalog's
        write lock (it commits the catalog right after), so the blobs found already
        stored are checked here, where no reclaim (:mod:`dlfs.reclaim`) can run."""
        gone = [b for b in self._existing if not self.store.has(b)]
        if gone:
            self.abort()
            raise Unavailable(
                f"blob {gone[0]} was reclaimed while this import ran: nothing was"
                " imported; run the command again"
            )
        if not self._staged:
            self.abort()
            return
        syncfs(self.store.root)
        for blob, (tmp, blocks) in self._staged.items():
            final = self.store.path(blob)
            final.parent.mkdir(mode=0o700, exist_ok=True)
            if blocks is not None:  # the manifest first: a blob never lacks it
                os.rename(blocks, self.store.manifest_path(blob))
            os.rename(tmp, final)
        syncfs(self.store.root)
        self._staged.clear()
        self.abort()

    def abort(self) -> None:
        self._staged.clear()
        self._existing.clear()
        self._staging.remove()

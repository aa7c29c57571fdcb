"""The local blob store: one file per blob under ``<home>/blobs/<2 hex>/<id>``.

Writes are atomic and durable in batches: each blob is streamed (and hashed) into a
staging file under ``<home>/blobs/.staging``; :meth:`LocalBatch.commit` flushes the
file system once (``syncfs``, far cheaper than an ``fsync`` per file), renames every
staged file to its final name, then flushes again so the renames are durable. A blob
that already exists is never rewritten: identical bytes are stored once.

A blob larger than one block (``block_size``, 4 MiB) also gets a block manifest,
``<id>.blocks`` beside it (:class:`dlfs.stores.manifest.Manifest`), computed in the
same pass as the blob id and renamed into place before the blob, so that readers
verify it block by block (see :mod:`dlfs.view`).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from dlfs.errors import Corrupt, NotFound
from dlfs.objects import new_hasher
from dlfs.stores.base import CHUNK, BlobStore, IngestBatch, StagingFolder, clear_dead_staging
from dlfs.stores.manifest import DEFAULT_BLOCK_SIZE, BlockHasher, Manifest, hash_file_blocks

BLOCK_SIZE = DEFAULT_BLOCK_SIZE
"""The block size of new local stores (tests set it smaller)."""

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def syncfs(path: Path) -> None:
    """Flush the file system that holds ``path`` to stable storage."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if _libc.syncfs(fd) != 0:
            os.sync()
    finally:
        os.close(fd)


class LocalStore(BlobStore):
    """Blobs as files in a folder, sharded by the first two hex digits of the id."""

    url = "local"
    remote = False

    def __init__(self, root: Path, block_size: int | None = None) -> None:
        self.root = root
        self._root = os.fspath(root)
        self.staging = root / ".staging"
        self.block_size = block_size or BLOCK_SIZE
        """Blobs larger than this get a block manifest of blocks of this size."""

    def path(self, blob: str) -> Path:
        """Where blob ``blob`` lives (whether or not it exists)."""
        return self.root / blob[:2] / blob

    def local_path(self, blob: str) -> Path | None:
        return self.path(blob)

    def local_file(self, blob: str) -> str | None:
        return f"{self._root}/{blob[:2]}/{blob}"

    def manifest_path(self, blob: str) -> Path:
        """Where the block manifest of a large blob ``blob`` lives."""
        return self.root / blob[:2] / f"{blob}.blocks"

    def has(self, blob: str) -> bool:
        return self.path(blob).exists()

    def batch(self) -> LocalBatch:
        return LocalBatch(self)

    def read(self, blob: str, offset: int, size: int, blob_size: int | None = None) -> bytes:
        try:
            fd = os.open(self.path(blob), os.O_RDONLY)
        except FileNotFoundError as exc:
            raise NotFound(f"blob {blob} is missing from the local store") from exc
        try:
            return os.pread(fd, size, offset)
        finally:
            os.close(fd)

    def iter_bytes(self, blob: str) -> Iterator[bytes]:
        hasher = new_hasher()
        try:
            f = open(self.path(blob), "rb")  # noqa: SIM115 - closed below
        except FileNotFoundError as exc:
            raise NotFound(f"blob {blob} is missing from the local store") from exc
        with f:
            while chunk := f.read(CHUNK):
                hasher.update(chunk)
                yield chunk
        if hasher.hexdigest() != blob:
            raise Corrupt(f"blob {blob} is corrupt: its bytes do not match its hash")

    def verify(self, blob: str) -> bool:
        hasher = new_hasher()
        try:
            with open(self.path(blob), "rb") as f:
                while chunk := f.read(CHUNK):
                    hasher.update(chunk)
        except FileNotFoundError:
            return False
        return bool(hasher.hexdigest() == blob)

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
        """Remove staging folders left by writers that died (none of it is referenced)."""
        clear_dead_staging(self.staging)


class LocalBatch(IngestBatch):
    """Blobs staged in the local store, made durable and visible by :meth:`commit`."""

    def __init__(self, store: LocalStore) -> None:
        self.store = store
        self._staged: dict[str, tuple[Path, Path | None]] = {}
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
        if duplicate:
            os.unlink(tmp)
        elif manifest is not None and blocks is not None:
            blocks.write_bytes(manifest.encode())
        return blob, size

    def commit(self) -> None:
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
        self._staging.remove()

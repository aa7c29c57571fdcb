"""Binary file objects over the files of a version, reading verified bytes.

:meth:`dlfs.Version.open` and the fsspec filesystem (:mod:`dlfs.fsspec`) return a
:class:`VersionFile`: a seekable, read-only, buffered binary file (an
:class:`io.BufferedReader`), usable wherever Python expects one (``pandas.read_csv``,
``PIL.Image.open``, ``zipfile``, ``tarfile``...).

It never hands out wrong bytes, as a mount never does:

- a blob in the catalog's local store is hashed in full through the file descriptor
  that then serves it, once, when the file is opened; a mismatch raises
  :class:`dlfs.Corrupt` there and nothing is read. (Blob files are never rewritten,
  and the descriptor pins the file that was checked.)
- a blob in a remote store (S3, a linked bucket) is read by ranges through the store,
  which checks every block against its hash as it arrives (see
  :mod:`dlfs.stores.cache`), so opening costs nothing and a corrupt block raises
  :class:`dlfs.Corrupt` on the read that reaches it.

After :meth:`dlfs.Catalog.open` returns, reading touches only the blob store, never
the catalog: a file object may be handed to another thread.
"""

from __future__ import annotations

import io
import os

from dlfs.errors import Corrupt, NotFound, Unavailable
from dlfs.objects import new_hasher
from dlfs.stores.base import CHUNK, BlobStore

DEFAULT_BUFFER = 1 << 20


class _BlobRaw(io.RawIOBase):
    """The unbuffered reader under :class:`VersionFile`."""

    def __init__(self, store: BlobStore, blob: str, size: int, name: str) -> None:
        super().__init__()
        self._store = store
        self._blob = blob
        self._size = size
        self._pos = 0
        self._fd = -1
        self.name = name
        path = store.local_path(blob)
        if path is not None:
            self._fd = _open_verified(path, blob)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            pos = offset
        elif whence == io.SEEK_CUR:
            pos = self._pos + offset
        elif whence == io.SEEK_END:
            pos = self._size + offset
        else:
            raise ValueError(f"invalid whence ({whence})")
        if pos < 0:
            raise ValueError(f"negative seek position {pos}")
        self._pos = pos
        return pos

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if self.closed:
            raise ValueError("I/O operation on closed file")
        want = min(len(buffer), self._size - self._pos)
        if want <= 0:
            return 0
        if self._fd >= 0:
            data = os.pread(self._fd, want, self._pos)
        else:
            data = self._store.read(self._blob, self._pos, want)
        n = len(data)
        buffer[:n] = data
        self._pos += n
        return n

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        super().close()


def _open_verified(path: os.PathLike[str] | str, blob: str) -> int:
    """A read-only descriptor of a local blob file whose bytes hash to ``blob``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NotFound(f"blob {blob} is missing from the local store") from None
    except OSError as exc:
        raise Unavailable(f"blob {blob} cannot be opened: {exc.strerror}") from exc
    try:
        hasher = new_hasher()
        offset = 0
        while chunk := os.pread(fd, CHUNK, offset):
            hasher.update(chunk)
            offset += len(chunk)
        if hasher.hexdigest() != blob:
            raise Corrupt(f"blob {blob} is corrupt: its bytes do not match its hash")
    except BaseException:
        os.close(fd)
        raise
    return fd


class VersionFile(io.BufferedReader):
    """A read-only binary file of a version (see the module docstring).

    Besides the :class:`io.BufferedReader` interface (``read``, ``readline``,
    ``seek``, ``tell``, iteration, ``with``), it has ``path`` (the path in the
    version), ``size`` (in bytes), ``blob`` (the content hash) and ``mode`` (``"rb"``).
    """

    def __init__(
        self,
        store: BlobStore,
        blob: str,
        size: int,
        path: str,
        buffer_size: int = DEFAULT_BUFFER,
    ) -> None:
        super().__init__(_BlobRaw(store, blob, size, path), buffer_size)
        self.path = path
        self.size = size
        self.blob = blob

    @property
    def mode(self) -> str:
        return "rb"

    def __repr__(self) -> str:
        return f"<dlfs.VersionFile path={self.path!r} size={self.size}>"

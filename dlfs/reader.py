"""Binary file objects over the files of a version, reading verified bytes.

:meth:`dlfs.Version.open` and the fsspec filesystem (:mod:`dlfs.fsspec`) return a
:class:`VersionFile`: a seekable, read-only, buffered binary file (an
:class:`io.BufferedReader`), usable wherever Python expects one (``pandas.read_csv``,
``PIL.Image.open``, ``zipfile``, ``tarfile``...).

It never hands out wrong bytes, as a mount never does: it reads through
:meth:`dlfs.stores.base.BlobStore.read`, which returns verified bytes in every store
(the local store through the same :class:`dlfs.stores.localread.LocalReader` a mount
uses: a small blob hashed whole, a large one block by block; remote stores check
every block as it arrives). Opening a local blob reads its first byte, so that a
missing (:class:`dlfs.NotFound`) or corrupt (:class:`dlfs.Corrupt`) small blob fails
there (a remote one costs nothing to open); a bad block of a large blob raises
:class:`dlfs.Corrupt` on the read that reaches it.

After :meth:`dlfs.Catalog.open` returns, reading touches only the blob store, never
the catalog: a file object may be handed to another thread.
"""

from __future__ import annotations

import io

from dlfs.errors import BlobMissing, NotFound
from dlfs.stores.base import BlobStore

DEFAULT_BUFFER = 1 << 20


class _BlobRaw(io.RawIOBase):
    """The unbuffered reader under :class:`VersionFile`."""

    def __init__(self, store: BlobStore, blob: str, size: int, name: str) -> None:
        super().__init__()
        self._store = store
        self._blob = blob
        self._size = size
        self._pos = 0
        self.name = name
        if size and not store.remote:  # remote reads cost a request: none before the first
            try:
                store.read(blob, 0, 1, size)
            except BlobMissing as exc:
                raise NotFound(str(exc)) from exc

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
        data = self._store.read(self._blob, self._pos, want, self._size)
        n = len(data)
        buffer[:n] = data
        self._pos += n
        return n


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

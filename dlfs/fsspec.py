"""An fsspec filesystem for dlfs: ``dlfs://cats@v1/train/a.jpg`` without a mount.

Importing this module registers the ``dlfs`` protocol with fsspec (and the
``fsspec.specs`` entry point of the package does it without an import), so every
library that opens files through fsspec reads dlfs versions directly: pandas,
PyArrow, Dask, Hugging Face ``datasets``...

```python
import pandas as pd

df = pd.read_csv("dlfs://tables@v0/iris.csv")
```

Paths are ``REF/PATH``: the first component is a ref (``cats@v1``, ``cats@gold``,
``cats@<id prefix>``; a bare ``cats`` means ``cats@latest`` for reading and
``cats@draft`` for writing, as everywhere in dlfs), the rest a path in that version;
a dataset of another project than the default one takes its first two components
(``vision/cats@v1/train/a.jpg``). The root (``dlfs://``) lists the default project's
datasets, each as the folder of its latest version, and the other projects, each the
folder of its datasets, as the catalog mount does.
The catalog is the ``home`` storage option, or ``$DLFS_HOME`` (read when the
filesystem is made), or ``~/.local/share/dlfs``.

Reading returns a :class:`dlfs.VersionFile`: seekable, and it never returns wrong
bytes (:mod:`dlfs.reader`). Published versions are read-only: writing there raises
:class:`PermissionError` (``EROFS``). Drafts are writable, a file at a time: a file
opened for writing (``"wb"``) is kept in memory and becomes the draft's file when it
is closed (like ``dlfs add``: a file that replaces another keeps its lineage,
metadata and annotations); ``rm``, ``mkdir``, ``mv`` and ``cp`` (a pointer copy)
work on a draft too.

Errors are ``OSError`` exceptions with the errno the :class:`dlfs.DlfsError` behind them
carries (the daemon answers the same errno), each chained to that error
(:func:`os_error`): :class:`FileNotFoundError` (also for an unknown dataset or ref),
:class:`IsADirectoryError`, :class:`NotADirectoryError`, :class:`FileExistsError`,
:class:`PermissionError` (``EROFS`` for a published version, ``EPERM``),
``OSError(ENOTEMPTY)``, ``OSError(EBUSY)`` for a state that forbids the operation,
``OSError(EIO)`` for bytes that fail their hash check or storage that cannot be
reached, and :class:`InvalidArgumentError` (``EINVAL``, also a ``ValueError``) for
a malformed or ambiguous ref.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import fsspec
from fsspec.spec import AbstractFileSystem

from dlfs.api import Catalog, Entry
from dlfs.errors import AlreadyExists, Ambiguous, DlfsError, InvalidInput, ReadOnly
from dlfs.home import Home
from dlfs.names import DEFAULT_PROJECT
from dlfs.reader import VersionFile

__all__ = ["DlfsFileSystem", "InvalidArgumentError", "os_error"]

PROTOCOL = "dlfs"


class InvalidArgumentError(OSError, ValueError):
    """Bad input (a malformed or ambiguous ref, a bad name): an ``OSError`` with the
    errno of the :class:`dlfs.DlfsError` behind it (``EINVAL``), and a
    :class:`ValueError` too, as Python's own ``io.UnsupportedOperation`` is, so
    callers that catch either keep working."""


@contextlib.contextmanager
def _os_errors(path: str) -> Iterator[None]:
    """Map :class:`DlfsError` to the ``OSError`` fsspec callers expect, chained."""
    try:
        yield
    except DlfsError as exc:
        raise os_error(exc, path) from exc


def os_error(exc: DlfsError, path: str) -> OSError:
    """The ``OSError`` for ``exc`` at ``path``, with the errno ``exc`` carries.

    Python picks the subclass by errno (``ENOENT``: :class:`FileNotFoundError`,
    ``EEXIST``: :class:`FileExistsError`, ``EPERM``: :class:`PermissionError`...).
    Two deliberate choices on top: writing to a published version
    (:class:`dlfs.ReadOnly`, ``EROFS``) is a :class:`PermissionError`, and bad input
    (:class:`dlfs.InvalidInput`, :class:`dlfs.Ambiguous`) an
    :class:`InvalidArgumentError`, also a :class:`ValueError`.
    """
    if isinstance(exc, ReadOnly):
        return PermissionError(exc.errno, str(exc), path)
    if isinstance(exc, InvalidInput | Ambiguous):
        return InvalidArgumentError(exc.errno, str(exc), path)
    return OSError(exc.errno, str(exc), path)


class _DraftWriter(io.BytesIO):
    """A file opened for writing in a draft: kept in memory, stored on close."""

    def __init__(self, fs: DlfsFileSystem, ref: str, path: str, name: str) -> None:
        super().__init__()
        self._fs = fs
        self._ref = ref
        self._path = path
        self.name = name
        self._discard = False

    @property
    def mode(self) -> str:
        return "wb"

    def readable(self) -> bool:
        return False

    def close(self) -> None:
        if self.closed:
            return
        data = self.getvalue()
        super().close()
        if not self._discard:
            with _os_errors(self.name):
                self._fs.catalog.add_bytes(self._ref, self._path, data)

    def discard(self) -> None:
        """Close without storing anything (as after an exception in ``with``)."""
        self._discard = True
        self.close()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self.discard()
        else:
            self.close()


class DlfsFileSystem(AbstractFileSystem):
    """fsspec filesystem over a dlfs catalog (see the module docstring).

    ```python
    import fsspec

    fs = fsspec.filesystem("dlfs", home="/data/dlfs")
    fs.ls("cats@v1/train")
    with fs.open("cats@v1/train/a.jpg") as f:
        head = f.read(16)
    ```
    """

    protocol = PROTOCOL
    root_marker = ""
    # The home may come from $DLFS_HOME, which is not part of fsspec's cache key:
    # every filesystem() call makes its own (cheap) instance.
    cachable = False

    def __init__(self, home: str | os.PathLike[str] | None = None, **kwargs: Any) -> None:
        super().__init__(home=home, **kwargs)
        self.home = Home.at(home).root
        self._local = threading.local()

    # -- the catalog, one per thread (SQLite connections are per thread) ------------

    @property
    def catalog(self) -> Catalog:
        """This thread's :class:`dlfs.Catalog` on the filesystem's home."""
        cat: Catalog | None = getattr(self._local, "catalog", None)
        if cat is None or getattr(self._local, "pid", None) != os.getpid():
            cat = Catalog(self.home)
            self._local.catalog, self._local.pid = cat, os.getpid()
        return cat

    # -- paths ----------------------------------------------------------------------

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        text = str(super()._strip_protocol(path))
        return text.strip("/")

    def _split(self, path: str) -> tuple[str, str]:
        """``(ref, path in the version)`` of a stripped, non-root path; a path that
        starts with a project's name starts with ``PROJECT/NAME[@SPEC]``."""
        ref, _, rest = path.partition("/")
        if rest and self._is_project(ref):
            name, _, rest = rest.partition("/")
            ref = f"{ref}/{name}"
        return ref, rest

    def _is_project(self, name: str) -> bool:
        """True for the name of a project other than the default one (whose datasets
        are at the root); no dataset of the default project has such a name."""
        if "@" in name or name == DEFAULT_PROJECT:
            return False
        return any(p.name == name for p in self.catalog.projects())

    def _info(self, ref: str, entry: Entry) -> dict[str, Any]:
        name = f"{ref}/{entry.path}" if entry.path else ref
        info: dict[str, Any] = {
            "name": name,
            "size": entry.size,
            "type": "directory" if entry.is_dir else "file",
            "mtime": entry.mtime,
        }
        if not entry.is_dir:
            info["item"] = entry.item
            info["blob"] = entry.blob
        return info

    # -- reading --------------------------------------------------------------------

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        """The entries of a folder (a file: its own entry); the root lists datasets."""
        path = self._strip_protocol(path)
        if not path or self._is_project(path):  # as the catalog mount shows them
            names = [d.name for d in self.catalog.datasets(project=path or DEFAULT_PROJECT)]
            if not path:
                names += [p.name for p in self.catalog.projects() if p.name != DEFAULT_PROJECT]
            infos = [{"name": n, "size": 0, "type": "directory"} for n in sorted(names)]
        else:
            ref, rel = self._split(path)
            with _os_errors(path):
                entry = self.catalog.stat(ref, rel)
                entries = self.catalog.ls(ref, rel) if entry.is_dir else [entry]
            infos = [self._info(ref, e) for e in entries]
        return infos if detail else [i["name"] for i in infos]

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        """One entry: ``name``, ``size``, ``type``, ``mtime`` (and ``item``, ``blob``
        for a file); a version's root also has ``version`` (its id) and ``state``."""
        path = self._strip_protocol(path)
        if not path:
            return {"name": "", "size": 0, "type": "directory"}
        ref, rel = self._split(path)
        with _os_errors(path):
            info = self._info(ref, self.catalog.stat(ref, rel))
            if not rel:
                version = self.catalog.version(ref)
                info.update(version=version.id, state=version.state)
        return info

    def _open(
        self,
        path: str,
        mode: str = "rb",
        block_size: int | None = None,
        autocommit: bool = True,
        cache_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> VersionFile | _DraftWriter:
        path = self._strip_protocol(path)
        ref, rel = self._split(path)
        if mode == "rb":
            with _os_errors(path):
                return self.catalog.open(ref, rel, block_size or (1 << 20))
        if mode in ("wb", "xb"):
            with _os_errors(path):
                draft = self.catalog.draft(ref)  # published: PermissionError now
                exists = draft.exists(rel)
            if mode == "xb" and exists:
                raise FileExistsError(errno.EEXIST, "file exists", path)
            return _DraftWriter(self, ref, rel, path)
        raise ValueError(f"dlfs files open in 'rb', 'wb' or 'xb' mode, not {mode!r}")

    def cat_file(
        self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any
    ) -> bytes:
        """The bytes of a file, or of ``[start:end]`` (negative: from the end)."""
        with self.open(path, "rb") as f, _os_errors(path):  # a bad block: OSError(EIO)
            size = f.size
            lo = 0 if start is None else (start if start >= 0 else max(0, size + start))
            hi = size if end is None else (end if end >= 0 else size + end)
            f.seek(lo)
            return bytes(f.read(max(0, hi - lo)))

    def ukey(self, path: str) -> str:
        """The content hash of a file (a folder: its path and version)."""
        info = self.info(path)
        return str(info.get("blob") or f"{info.get('version', '')}:{info['name']}")

    def modified(self, path: str) -> datetime:
        """When the file's bytes were imported (a folder: its version's publish time)."""
        return datetime.fromtimestamp(self.info(path)["mtime"], UTC)

    # -- writing into drafts ----------------------------------------------------------

    def rm_file(self, path: str) -> None:
        """Remove a file, or an empty folder, from a draft."""
        path = self._strip_protocol(path)
        ref, rel = self._split(path)
        with _os_errors(path):
            self.catalog.rm(ref, [rel])

    def _rm(self, path: str) -> None:
        self.rm_file(path)

    def rm(self, path: Any, recursive: bool = False, maxdepth: int | None = None) -> None:
        """Remove files (folders with ``recursive``) from a draft, in one step each."""
        paths = path if isinstance(path, list) else [path]
        for p in paths:
            p = self._strip_protocol(p)
            ref, rel = self._split(p)
            with _os_errors(p):
                self.catalog.rm(ref, [rel], recursive=recursive)

    def rmdir(self, path: str) -> None:
        """Remove an empty folder from a draft."""
        path = self._strip_protocol(path)
        ref, rel = self._split(path)
        with _os_errors(path):
            self.catalog.rm(ref, [rel], recursive=False)

    def mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        """Make a folder in a draft."""
        path = self._strip_protocol(path)
        ref, rel = self._split(path)
        with _os_errors(path):
            self.catalog.mkdir(ref, [rel], parents=create_parents)

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        """Make a folder and its parents in a draft."""
        path = self._strip_protocol(path)
        ref, rel = self._split(path)
        with _os_errors(path):
            draft = self.catalog.draft(ref)
            if draft.exists(rel) and not exist_ok:
                raise AlreadyExists(f"already exists: {rel}")
            draft.mkdir(rel, parents=True)

    def cp_file(self, path1: str, path2: str, **kwargs: Any) -> None:
        """Copy a file within one draft as a pointer (no bytes copied)."""
        self._transfer(path1, path2, copy=True)

    def mv(self, path1: str, path2: str, recursive: bool = False, **kwargs: Any) -> None:
        """Move a file or folder within one draft."""
        self._transfer(path1, path2, copy=False)

    def _transfer(self, path1: str, path2: str, copy: bool) -> None:
        p1, p2 = self._strip_protocol(path1), self._strip_protocol(path2)
        (ref1, rel1), (ref2, rel2) = self._split(p1), self._split(p2)
        if ref1 != ref2:
            raise ValueError(f"{p1} -> {p2}: copies and moves stay within one draft")
        with _os_errors(p1):
            if copy:
                self.catalog.cp(ref1, [rel1], rel2)
            else:
                self.catalog.mv(ref1, [rel1], rel2)


fsspec.register_implementation(PROTOCOL, DlfsFileSystem, clobber=True)

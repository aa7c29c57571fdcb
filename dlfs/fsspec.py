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

Views (``dlfs mount --where / --group-by``, read-only) are paths too, as on the
catalog mount: ``REF/@by/KEY/<value>/PATH`` groups the version by ``KEY`` (``label``
or ``metadata.FIELD``), ``REF/@where/EXPR/PATH`` keeps the items ``EXPR`` selects
(``/`` in it written ``%2F``), and ``REF/@where/EXPR/@by/KEY/...`` does both::

    fs.ls('cats@v1/@by/label/dog')
    fs.ls('cats@v1/@where/metadata.split == "val"/@by/label')

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
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import fsspec
from fsspec.spec import AbstractFileSystem

from dlfs.api import Catalog, Entry
from dlfs.arranged import BY, WHERE
from dlfs.errors import (
    AlreadyExists,
    Ambiguous,
    DlfsError,
    InvalidInput,
    IsADirectory,
    NotFound,
    ReadOnly,
)
from dlfs.home import Home
from dlfs.names import DEFAULT_PROJECT
from dlfs.nodes import Node
from dlfs.reader import VersionFile
from dlfs.view import View, open_view
from dlfs.viewspec import ViewSpec

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

    # -- views: REF/@by/KEY/..., REF/@where/EXPR/... ------------------------------------

    def _in_view(self, ref: str, rel: str) -> tuple[View, list[str], Node, str] | None:
        """For a path in a view: the view, the names from its root, the node there and
        the path of that node in the version (``""`` for a group folder); else None."""
        if not self._is_view(ref, rel):
            return None
        parts = rel.split("/")
        where = group = None
        if parts[0] == WHERE and len(parts) > 1:
            where, parts = urllib.parse.unquote(parts[1]), parts[2:]
        if parts and parts[0] == BY and len(parts) > 1:
            group, parts = parts[1], parts[2:]
        spec = ViewSpec.parse(where, group)
        if spec is None:
            raise NotFound(f"no such file or folder: {rel} (a view is @by/KEY or @where/EXPR)")
        vid = self.catalog.version(ref).id
        views: dict[tuple[str, str | None, str | None], View] = self._local.__dict__.setdefault(
            "views", {}
        )
        view = views.get((vid, where, group))
        if view is None:
            view = views[(vid, where, group)] = open_view(Home.at(self.home), f"{ref}", spec=spec)
        node = view.root()
        for name in parts:
            node = view.lookup(node, name)
        in_version = parts[1:] if group is not None else parts
        return view, parts, node, "/".join(in_version)

    def _is_view(self, ref: str, rel: str) -> bool:
        """True for a path under a view (``@by``/``@where`` that the version lacks)."""
        first = rel.partition("/")[0]
        return first in (WHERE, BY) and not self._exists(ref, first)

    def _exists(self, ref: str, rel: str) -> bool:
        try:
            self.catalog.stat(ref, rel)
        except NotFound:
            return False
        return True

    def _view_info(self, name: str, node: Node) -> dict[str, Any]:
        info: dict[str, Any] = {
            "name": name,
            "size": 0 if node.is_dir else node.size,
            "type": "directory" if node.is_dir else "file",
            "mtime": node.mtime_ns / 1e9,
        }
        if not node.is_dir:
            info["item"], info["blob"] = node.ref, node.blob
        return info

    # -- reading --------------------------------------------------------------------

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        """The entries of a folder (a file: its own entry); the root lists datasets."""
        path = self._strip_protocol(path)
        found = None
        if path and not self._is_project(path):
            with _os_errors(path):
                found = self._in_view(*self._split(path))
        if found is not None:
            view, _parts, node, _rel = found
            with _os_errors(path):
                if not node.is_dir:
                    infos = [self._view_info(path, node)]
                else:
                    listing = view.listing(node).entries_from(0)
                    infos = [self._view_info(f"{path}/{n}", c) for _p, n, c in listing]
            return infos if detail else [i["name"] for i in infos]
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
            found = self._in_view(ref, rel)
            if found is not None:
                return self._view_info(path, found[2])
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
                found = self._in_view(ref, rel)
                if found is not None:  # the version's file at its path there
                    rel = found[3]
                    if found[2].is_dir:
                        raise IsADirectory(f"is a folder: {path}")
                    ref = f"{ref.partition('@')[0]}@{found[2].version}"
                return self.catalog.open(ref, rel, block_size or (1 << 20))
        if mode in ("wb", "xb"):
            with _os_errors(path):
                if self._is_view(ref, rel):
                    raise ReadOnly(f"cannot write {path}: a view is read-only")
                draft = self.catalog.draft(ref)  # published: PermissionError now
                exists = draft.exists(rel)
            if mode == "xb" and exists:
                raise FileExistsError(errno.EEXIST, "file exists", path)
            return _DraftWriter(self, ref, rel, path)
        with _os_errors(path):
            if self._is_view(ref, rel):
                raise ReadOnly(f"cannot write {path}: a view is read-only")
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

    def _draft_path(self, path: str) -> tuple[str, str]:
        """``(ref, path)`` of a stripped path to change; a view's is refused (EROFS)."""
        ref, rel = self._split(path)
        with _os_errors(path):
            if self._is_view(ref, rel):
                raise ReadOnly(f"cannot change {path}: a view is read-only")
        return ref, rel

    def rm_file(self, path: str) -> None:
        """Remove a file, or an empty folder, from a draft."""
        path = self._strip_protocol(path)
        ref, rel = self._draft_path(path)
        with _os_errors(path):
            self.catalog.rm(ref, [rel])

    def _rm(self, path: str) -> None:
        self.rm_file(path)

    def rm(self, path: Any, recursive: bool = False, maxdepth: int | None = None) -> None:
        """Remove files (folders with ``recursive``) from a draft, in one step each."""
        paths = path if isinstance(path, list) else [path]
        for p in paths:
            p = self._strip_protocol(p)
            ref, rel = self._draft_path(p)
            with _os_errors(p):
                self.catalog.rm(ref, [rel], recursive=recursive)

    def rmdir(self, path: str) -> None:
        """Remove an empty folder from a draft."""
        path = self._strip_protocol(path)
        ref, rel = self._draft_path(path)
        with _os_errors(path):
            self.catalog.rm(ref, [rel], recursive=False)

    def mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        """Make a folder in a draft."""
        path = self._strip_protocol(path)
        ref, rel = self._draft_path(path)
        with _os_errors(path):
            self.catalog.mkdir(ref, [rel], parents=create_parents)

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        """Make a folder and its parents in a draft."""
        path = self._strip_protocol(path)
        ref, rel = self._draft_path(path)
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
        (ref1, rel1), (ref2, rel2) = self._draft_path(p1), self._draft_path(p2)
        if ref1 != ref2:
            raise ValueError(f"{p1} -> {p2}: copies and moves stay within one draft")
        with _os_errors(p1):
            if copy:
                self.catalog.cp(ref1, [rel1], rel2)
            else:
                self.catalog.mv(ref1, [rel1], rel2)


fsspec.register_implementation(PROTOCOL, DlfsFileSystem, clobber=True)

"""A reference model of a writable draft, and the hypothesis state machine that runs
the same random operations on the model and on dlfs (as Mountpoint-S3's reference
tests do).

The rules (:class:`DraftMachine`) are written once; a *driver* carries them out on
dlfs. Two drivers exist: :class:`ViewDriver` calls :class:`dlfs.draftview.DraftView`
directly (no kernel; it does the few checks the kernel's VFS makes before a request
reaches the filesystem), and ``tests/fs/test_draft_model.py``'s driver makes plain
``os`` calls in a real mount. A driver reports a failure as an ``OSError`` with the
errno the caller sees.

The operations: create (or rewrite) a file, write at an offset, truncate, mkdir,
rmdir, unlink, rename (files and folders, over files and folders), set
``user.dlfs.metadata``, and files held open across steps (written at offsets,
flushed, released). After every step the tree (names, kinds, sizes from the listing,
the lookup and ``getattr``, bytes read back) and the metadata must equal the model's,
and every failure must have the model's errno. At the end every file is closed, the
draft is published with :meth:`dlfs.Catalog.publish`, and the published version, read
through the API, must equal the model.
"""

from __future__ import annotations

import errno
import functools
import json
import os
import posixpath
import random
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from hypothesis import event
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from dlfs import Catalog
from dlfs.errors import DlfsError, NotFound

NAMES = ("a", "b", "c.txt", "x y")
SIZES = (0, 1, 100, 5000, 70_000, 200_000)
OFFSETS = (0, 1, 50, 4096, 80_000)
X_METADATA = "user.dlfs.metadata"
READ_SIZE = 128 * 1024
FILE_MODE = stat.S_IFREG | 0o644
DIR_MODE = stat.S_IFDIR | 0o755

Tree = dict[str, tuple[str, int, bytes]]
"""path -> (``"dir"`` or ``"file"``, size, bytes)."""


def payload(size: int, seed: int) -> bytes:
    """``size`` random bytes, the same for the same seed (cheap to draw)."""
    return random.Random(seed).randbytes(size)


# -- the model -------------------------------------------------------------------------


@dataclass
class Model:
    """A draft as a dict: paths name folders (None) or file inodes; an inode has bytes
    and metadata (None where dlfs may rightly give either of two answers, see
    :meth:`rename`). Each operation returns the errno it must fail with, or None
    after applying it."""

    entries: dict[str, int | None] = field(default_factory=dict)
    data: dict[int, bytearray] = field(default_factory=dict)
    meta: dict[int, dict[str, Any] | None] = field(default_factory=dict)
    own_meta: set[int] = field(default_factory=set)
    """Inodes that keep their metadata when renamed over a file (set here, or from the
    base version); any other file written here may take the replaced file's."""
    held: dict[int, int] = field(default_factory=dict)
    """handle key -> inode, for files held open."""
    _next: int = 0

    def dirs(self) -> list[str]:
        return ["", *sorted(p for p, ino in self.entries.items() if ino is None)]

    def files(self) -> list[str]:
        return sorted(p for p, ino in self.entries.items() if ino is not None)

    def is_dir(self, path: str) -> bool:
        return path == "" or (path in self.entries and self.entries[path] is None)

    def children(self, path: str) -> list[str]:
        prefix = f"{path}/" if path else ""
        return [p for p in self.entries if p.startswith(prefix) and "/" not in p[len(prefix) :]]

    def new_file(self, path: str, data: bytes = b"", meta: dict[str, Any] | None = None) -> int:
        ino = self._next = self._next + 1
        self.entries[path] = ino
        self.data[ino] = bytearray(data)
        self.meta[ino] = {} if meta is None else meta
        return ino

    def tree(self) -> Tree:
        out: Tree = {}
        for path, ino in self.entries.items():
            if ino is None:
                out[path] = ("dir", 0, b"")
            else:
                out[path] = ("file", len(self.data[ino]), bytes(self.data[ino]))
        return out

    def known_meta(self) -> dict[str, dict[str, Any]]:
        """path -> metadata, for the files whose metadata the model knows."""
        out = {}
        for path, ino in self.entries.items():
            if ino is not None and self.meta[ino] is not None:
                out[path] = self.meta[ino]
        return out

    @staticmethod
    def write_into(buf: bytearray, offset: int, data: bytes) -> None:
        if not data:  # write(2) of nothing does not extend a file
            return
        if offset > len(buf):
            buf.extend(bytes(offset - len(buf)))
        buf[offset : offset + len(data)] = data

    # the operations

    def write_file(self, path: str, data: bytes) -> int | None:
        if self.is_dir(path):
            return errno.EISDIR
        ino = self.entries.get(path)
        if ino is None:
            self.new_file(path, data)
        else:
            self.data[ino][:] = data
        return None

    def write_at(self, path: str, offset: int, data: bytes) -> int | None:
        ino = self.entries[path]
        assert ino is not None
        self.write_into(self.data[ino], offset, data)
        return None

    def truncate(self, path: str, size: int) -> int | None:
        if path not in self.entries:
            return errno.ENOENT
        ino = self.entries[path]
        if ino is None:
            return errno.EISDIR
        buf = self.data[ino]
        del buf[size:]
        buf.extend(bytes(size - len(buf)))
        return None

    def mkdir(self, path: str) -> int | None:
        if path in self.entries:
            return errno.EEXIST
        self.entries[path] = None
        return None

    def rmdir(self, path: str) -> int | None:
        if path not in self.entries:
            return errno.ENOENT
        if self.entries[path] is not None:
            return errno.ENOTDIR
        if self.children(path):
            return errno.ENOTEMPTY
        del self.entries[path]
        return None

    def unlink(self, path: str) -> int | None:
        if path not in self.entries:
            return errno.ENOENT
        if self.entries[path] is None:
            return errno.EISDIR
        del self.entries[path]
        return None

    def rename(self, src: str, dst: str) -> int | None:
        """POSIX ``rename`` with Linux's errno order; a file written here and renamed
        over another file may take that file's lineage and metadata (an editor's
        save, see :mod:`dlfs.draftview`), so its metadata is known only where both
        agree."""
        if src not in self.entries:
            return errno.ENOENT
        if dst.startswith(f"{src}/"):
            return errno.EINVAL
        if src.startswith(f"{dst}/"):
            return errno.ENOTEMPTY
        if src == dst:
            return None
        ino = self.entries[src]
        if dst in self.entries:
            victim = self.entries[dst]
            if ino is None and victim is not None:
                return errno.ENOTDIR
            if ino is not None and victim is None:
                return errno.EISDIR
            if victim is None and self.children(dst):
                return errno.ENOTEMPTY
            mine = ino is not None and ino not in self.own_meta
            if mine and victim is not None and self.meta[ino] != self.meta[victim]:
                self.meta[ino] = None
        if ino is None:  # a folder: everything under it moves (over an empty folder)
            self.entries.pop(dst, None)
            moved = {p: i for p, i in self.entries.items() if p == src or p.startswith(f"{src}/")}
            for p in moved:
                del self.entries[p]
            for p, i in moved.items():
                self.entries[dst + p[len(src) :]] = i
        else:
            del self.entries[src]
            self.entries[dst] = ino
        return None

    def set_meta(self, path: str, meta: dict[str, Any]) -> int | None:
        ino = self.entries[path]
        assert ino is not None
        self.meta[ino] = meta
        self.own_meta.add(ino)
        return None

    def hold(self, path: str, key: int) -> int | None:
        if self.is_dir(path):
            return errno.EISDIR
        ino = self.entries.get(path)
        if ino is None:
            ino = self.new_file(path)
        self.held[key] = ino
        return None

    def held_write(self, key: int, offset: int, data: bytes) -> int | None:
        self.write_into(self.data[self.held[key]], offset, data)
        return None


# -- drivers ---------------------------------------------------------------------------


class Driver(Protocol):
    """Carries out the operations on dlfs; failures are ``OSError`` with an errno."""

    def write_file(self, path: str, data: bytes) -> None: ...
    def write_at(self, path: str, offset: int, data: bytes) -> None: ...
    def truncate(self, path: str, size: int) -> None: ...
    def mkdir(self, path: str) -> None: ...
    def rmdir(self, path: str) -> None: ...
    def unlink(self, path: str) -> None: ...
    def rename(self, src: str, dst: str) -> None: ...
    def set_meta(self, path: str, value: bytes) -> None: ...
    def hold(self, path: str) -> object: ...
    def held_write(self, handle: object, offset: int, data: bytes) -> None: ...
    def held_flush(self, handle: object) -> None: ...
    def release(self, handle: object) -> None: ...
    def tree(self) -> Tree: ...
    def meta(self, path: str) -> dict[str, Any]: ...


def errno_of(exc: DlfsError) -> int:
    """The errno a caller of a mount sees for ``exc`` (the daemon's table)."""
    code = getattr(exc, "errno", None)
    if isinstance(code, int):
        return code
    from dlfsd.ops import errno_of as daemon_errno

    return daemon_errno(exc)


def _os_errors(method: Any) -> Any:
    @functools.wraps(method)
    def call(self: ViewDriver, *args: Any) -> Any:
        try:
            return method(self, *args)
        except DlfsError as exc:
            raise OSError(errno_of(exc), f"{type(exc).__name__}: {exc}") from exc

    return call


class ViewDriver:
    """The operations as the daemon would make them on a :class:`DraftView` (public
    methods only), with the checks the kernel makes before asking the filesystem
    (existing names for mkdir, kinds for unlink, rmdir and rename, ancestry)."""

    def __init__(self, view: Any) -> None:
        self.view = view

    def node(self, path: str) -> Any:
        node = self.view.root()
        for part in path.split("/") if path else []:
            node = self.view.lookup(node, part)
        return node

    def _split(self, path: str) -> tuple[Any, str]:
        folder, name = posixpath.split(path)
        return self.node(folder), name

    def _find(self, path: str) -> Any | None:
        try:
            return self.node(path)
        except NotFound:
            return None

    @_os_errors
    def write_file(self, path: str, data: bytes) -> None:
        fh = self._open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        try:
            if data:
                self.view.write(fh, 0, data)
            self.view.flush(fh)
        finally:
            self.view.release(fh)

    def _open(self, path: str, flags: int) -> int:
        parent, name = self._split(path)
        node = self._find(path)
        if node is None:
            if not flags & os.O_CREAT:
                raise OSError(errno.ENOENT, path)
            fh, _node = self.view.create(parent, name, FILE_MODE, flags)
            return int(fh)
        if node.is_dir:
            raise OSError(errno.EISDIR, path)
        return int(self.view.open(node, flags & ~os.O_CREAT))

    @_os_errors
    def write_at(self, path: str, offset: int, data: bytes) -> None:
        fh = self._open(path, os.O_WRONLY)
        try:
            if data:  # the kernel sends no empty writes
                self.view.write(fh, offset, data)
            self.view.flush(fh)
        finally:
            self.view.release(fh)

    @_os_errors
    def truncate(self, path: str, size: int) -> None:
        self.view.setattr(self.node(path), size=size)

    @_os_errors
    def mkdir(self, path: str) -> None:
        parent, name = self._split(path)
        if self._find(path) is not None:
            raise OSError(errno.EEXIST, path)
        self.view.mkdir(parent, name, DIR_MODE)

    @_os_errors
    def rmdir(self, path: str) -> None:
        parent, name = self._split(path)
        if not self.node(path).is_dir:
            raise OSError(errno.ENOTDIR, path)
        self.view.rmdir(parent, name)

    @_os_errors
    def unlink(self, path: str) -> None:
        parent, name = self._split(path)
        if self.node(path).is_dir:
            raise OSError(errno.EISDIR, path)
        self.view.unlink(parent, name)

    @_os_errors
    def rename(self, src: str, dst: str) -> None:
        src_parent, src_name = self._split(src)
        dst_parent, dst_name = self._split(dst)
        node = self.node(src)  # ENOENT first, as in Linux's do_renameat2
        if dst.startswith(f"{src}/"):
            raise OSError(errno.EINVAL, "a folder into itself")
        if src.startswith(f"{dst}/"):
            raise OSError(errno.ENOTEMPTY, "over its own ancestor")
        if src == dst:
            return
        victim = self._find(dst)
        if victim is not None and node.is_dir != victim.is_dir:
            raise OSError(errno.ENOTDIR if node.is_dir else errno.EISDIR, dst)
        self.view.rename(src_parent, src_name, dst_parent, dst_name, 0)

    @_os_errors
    def set_meta(self, path: str, value: bytes) -> None:
        self.view.setxattr(self.node(path), X_METADATA, value)

    @_os_errors
    def hold(self, path: str) -> object:
        return self._open(path, os.O_RDWR | os.O_CREAT)

    @_os_errors
    def held_write(self, handle: object, offset: int, data: bytes) -> None:
        if data:
            self.view.write(handle, offset, data)

    @_os_errors
    def held_flush(self, handle: object) -> None:
        self.view.flush(handle)

    @_os_errors
    def release(self, handle: object) -> None:
        try:
            self.view.flush(handle)  # close(2): a flush, then the release
        finally:
            self.view.release(handle)

    def read_all(self, node: Any) -> bytes:
        fh = self.view.open(node, os.O_RDONLY)
        try:
            chunks = []
            offset = 0
            while True:
                data = self.view.read_nowait(fh, offset, READ_SIZE)
                if data is None:
                    data = self.view.read(fh, offset, READ_SIZE)
                chunks.append(bytes(data))
                offset += len(data)
                if len(data) < READ_SIZE:
                    return b"".join(chunks)
        finally:
            self.view.release(fh)

    def tree(self) -> Tree:
        out: Tree = {}
        self._walk(self.view.root(), "", out)
        return out

    def _walk(self, folder: Any, prefix: str, out: Tree) -> None:
        for _pos, name, listed in self.view.listing(folder).entries_from(0):
            path = f"{prefix}{name}"
            looked_up = self.view.lookup(folder, name)
            attrs = self.view.getattr(looked_up)
            if listed.is_dir:
                assert looked_up.is_dir and attrs.is_dir, path
                out[path] = ("dir", 0, b"")
                self._walk(looked_up, f"{path}/", out)
                continue
            data = self.read_all(looked_up)
            sizes = (listed.size, looked_up.size, attrs.size, len(data))
            assert len(set(sizes)) == 1, f"{path}: listing, lookup, getattr, read: {sizes}"
            out[path] = ("file", len(data), data)

    def meta(self, path: str) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.view.getxattr(self.node(path), X_METADATA))
        return value


def published_tree(cat: Catalog, ref: str, folder: str = "") -> tuple[Tree, dict[str, Any]]:
    """A version's tree and metadata (path -> metadata), read through the API."""
    tree: Tree = {}
    meta: dict[str, Any] = {}
    for entry in cat.ls(ref, folder):
        if entry.is_dir:
            tree[entry.path] = ("dir", 0, b"")
            sub, sub_meta = published_tree(cat, ref, entry.path)
            tree.update(sub)
            meta.update(sub_meta)
        else:
            data = b"".join(cat.cat(ref, entry.path))
            tree[entry.path] = ("file", len(data), data)
            meta[entry.path] = cat.item(ref, entry.path).metadata
    return tree, meta


# -- the rules -------------------------------------------------------------------------


BASE = {"base.txt": b"there before the draft\n", "old/kept.bin": bytes(range(256)) * 40}
BASE_META = {"base.txt": {"label": "base", "n": 1}}


def make_dataset(home: Path, name: str = "model") -> None:
    """The dataset the machine edits: a draft holding :data:`BASE` (with metadata)."""
    with Catalog(home) as cat:
        cat.create_dataset(name)
        for path, data in BASE.items():
            cat.add_bytes(name, path, data)
        for path, meta in BASE_META.items():
            cat.set_meta(name, path, metadata=meta)


class DraftMachine(RuleBasedStateMachine):
    """The rules, the invariants and the final publish; a subclass makes the dataset
    in ``self.home`` and opens its draft (:meth:`open`, returning the driver), closes
    the draft (:meth:`close`, before the publish) and removes what it made
    (:meth:`cleanup`)."""

    home: Path
    dataset = "model"

    def __init__(self) -> None:
        super().__init__()
        self.model = Model()
        for path in sorted({posixpath.dirname(p) for p in BASE} - {""}):
            self.model.entries[path] = None
        for path, data in BASE.items():
            self.model.own_meta.add(self.model.new_file(path, data, BASE_META.get(path, {})))
        self.handles: dict[int, object] = {}
        self.driver: Driver = self.open()

    def open(self) -> Driver:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def cleanup(self) -> None:
        raise NotImplementedError

    # what both sides must agree on

    def same(self, expected: int | None, call: Any, *args: Any) -> Any:
        """Run ``call(*args)``: it fails with errno ``expected``, or passes if None."""
        event(f"{call.__name__}: {errno.errorcode.get(expected or 0, 'ok')}")
        try:
            result = call(*args)
        except OSError as exc:
            assert exc.errno == expected, f"{call.__name__}{args[:2]}: {exc!r}, not {expected}"
            return None
        assert expected is None, f"{call.__name__}{args[:2]} passed, expected errno {expected}"
        return result

    @invariant()
    def trees_match(self) -> None:
        got = self.driver.tree()
        want = self.model.tree()
        assert got.keys() == want.keys(), f"names differ: {sorted(got.keys() ^ want.keys())}"
        for path, entry in want.items():
            assert got[path][:2] == entry[:2], f"{path}: {got[path][:2]} != {entry[:2]}"
            assert got[path][2] == entry[2], f"{path}: the bytes differ"
        for path, meta in self.model.known_meta().items():
            assert self.driver.meta(path) == meta, path

    # choosing paths from the model's state

    def existing(self, data: st.DataObject) -> str:
        """A path that exists (the root excluded), or a new one if there is none."""
        paths = sorted(self.model.entries)
        return data.draw(st.sampled_from(paths)) if paths else self.new_path(data)

    def new_path(self, data: st.DataObject) -> str:
        folder = data.draw(st.sampled_from(self.model.dirs()))
        return posixpath.join(folder, data.draw(st.sampled_from(NAMES)))

    def any_path(self, data: st.DataObject) -> str:
        return self.existing(data) if data.draw(st.booleans()) else self.new_path(data)

    # the rules

    @rule(data=st.data(), size=st.sampled_from(SIZES), seed=st.integers(0, 255))
    def create(self, data: st.DataObject, size: int, seed: int) -> None:
        path, content = self.any_path(data), payload(size, seed)
        self.same(self.model.write_file(path, content), self.driver.write_file, path, content)

    @precondition(lambda self: self.model.files())
    @rule(
        data=st.data(),
        offset=st.sampled_from(OFFSETS),
        size=st.sampled_from(SIZES[:5]),
        seed=st.integers(0, 255),
    )
    def write(self, data: st.DataObject, offset: int, size: int, seed: int) -> None:
        path = data.draw(st.sampled_from(self.model.files()))
        content = payload(size, seed)
        expected = self.model.write_at(path, offset, content)
        self.same(expected, self.driver.write_at, path, offset, content)

    @rule(data=st.data(), size=st.sampled_from((0, 1, 30, 3000, 90_000)))
    def truncate(self, data: st.DataObject, size: int) -> None:
        path = self.any_path(data)
        self.same(self.model.truncate(path, size), self.driver.truncate, path, size)

    @rule(data=st.data())
    def mkdir(self, data: st.DataObject) -> None:
        path = self.new_path(data)
        self.same(self.model.mkdir(path), self.driver.mkdir, path)

    @rule(data=st.data())
    def rmdir(self, data: st.DataObject) -> None:
        path = self.any_path(data)
        self.same(self.model.rmdir(path), self.driver.rmdir, path)

    @rule(data=st.data())
    def unlink(self, data: st.DataObject) -> None:
        path = self.any_path(data)
        self.same(self.model.unlink(path), self.driver.unlink, path)

    @rule(data=st.data())
    def rename(self, data: st.DataObject) -> None:
        src, dst = self.any_path(data), self.any_path(data)
        self.same(self.model.rename(src, dst), self.driver.rename, src, dst)

    @precondition(lambda self: self.model.files())
    @rule(data=st.data(), value=st.dictionaries(st.sampled_from("klm"), st.integers(0, 9)))
    def set_metadata(self, data: st.DataObject, value: dict[str, int]) -> None:
        path = data.draw(st.sampled_from(self.model.files()))
        raw = json.dumps(value).encode()
        self.same(self.model.set_meta(path, value), self.driver.set_meta, path, raw)

    @precondition(lambda self: len(self.handles) < 3)
    @rule(data=st.data())
    def hold(self, data: st.DataObject) -> None:
        path = self.any_path(data)
        key = max(self.handles, default=0) + 1
        handle = self.same(self.model.hold(path, key), self.driver.hold, path)
        if handle is not None:
            self.handles[key] = handle

    @precondition(lambda self: self.handles)
    @rule(
        data=st.data(),
        offset=st.sampled_from(OFFSETS),
        size=st.sampled_from(SIZES[:5]),
        seed=st.integers(0, 255),
    )
    def held_write(self, data: st.DataObject, offset: int, size: int, seed: int) -> None:
        key = data.draw(st.sampled_from(sorted(self.handles)))
        content = payload(size, seed)
        self.model.held_write(key, offset, content)
        self.driver.held_write(self.handles[key], offset, content)

    @precondition(lambda self: self.handles)
    @rule(data=st.data())
    def held_flush(self, data: st.DataObject) -> None:
        self.driver.held_flush(self.handles[data.draw(st.sampled_from(sorted(self.handles)))])

    @precondition(lambda self: self.handles)
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(sorted(self.handles)))
        del self.model.held[key]
        self.driver.release(self.handles.pop(key))

    # the end: everything closed, then published

    def teardown(self) -> None:
        failed = sys.exc_info()[0] is not None  # a step failed: report that, not this
        try:
            try:
                for key in sorted(self.handles):
                    self.driver.release(self.handles.pop(key))
                if not failed:
                    self.trees_match()
            finally:
                self.close()
            if not failed:
                with Catalog(self.home) as cat:
                    version = cat.publish(self.dataset)
                    tree, meta = published_tree(cat, version.ref)
                assert tree == self.model.tree(), "the published version differs from the model"
                for path, want in self.model.known_meta().items():
                    assert meta[path] == want, f"published metadata of {path}"
        finally:
            self.cleanup()

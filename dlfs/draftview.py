"""Writable draft mounts: the filesystem semantics of editing a draft, with no FUSE.

A :class:`DraftView` is the :class:`dlfs.view.View` of one draft that also accepts
writes: create, write (any offset), truncate, rename, unlink, mkdir, rmdir, setting
times, ``user.dlfs.metadata`` / ``user.dlfs.annotations``, flush, fsync. Symlinks,
hard links and special files are refused (:class:`NotPermitted`). The daemon adapts
these calls to pyfuse3 as it does for read-only views.

**Where entries are: places.** The kernel names files by inode, and a folder's tree
id is no stable name for it (the first change copies a shared folder into a mutable
one, with a new id), nor is its path (a rename moves it). So every node handed out
carries a :class:`Place`: its folder's place and its name. Places are unique per
location (an index keyed by ``(parent place, name)``), a rename re-points the moved
place, and an unlink or rmdir detaches it: an inode keeps naming its entry, and open
files follow their file. A folder place caches its tree id; a cached *mutable* id
is trusted (it stays the same until publish), an immutable one is re-checked from
the parent. ``PRAGMA data_version`` tells when another process committed (``dlfs
add``, ``dlfs publish``...): every cache is then dropped.

**Writing a file.** Opening a file for writing gives it an :class:`OpenFile`, shared
by every handle on it. Its bytes go to a staging file (:mod:`dlfs.staging`), copied
from the current blob on the first write unless it was truncated. On ``flush`` (every
``close``), ``fsync`` and the last ``release``, a changed file is *committed*: hashed
(incrementally while written in order), stored as a blob once (the local store takes
the staging file by rename), and recorded in one catalog transaction. A created file
exists only in the mount (in listings and lookups) until its first commit, so a crash
never leaves half-written files behind: the catalog only ever names closed (or
fsynced) content. Readers of a file open for writing read the staged bytes.

**Lineage.** A file rewritten in place keeps its item's origin, metadata and
annotations with the new blob. A file created here gets a new origin; if it is renamed
over an existing file before it has metadata of its own (how editors and ``rsync``
save: write a temporary file, rename it over the old one), it takes the replaced
file's lineage, metadata and annotations.

**Durability.** After ``close`` (``flush``) returns, the bytes are in a blob file and
the transaction is committed in WAL mode with ``synchronous=NORMAL``: they survive a
crash of the daemon (``kill -9``), not a power loss; no fsync is paid per file.
``fsync`` makes a file durable against power loss too (blob file and folder fsynced,
WAL fsynced), and so do a clean unmount and a publish (``syncfs`` of the blob store).

**Times and modes.** Files are ``0644`` and folders ``0755``; ``chmod`` and ``chown``
are accepted and change nothing (modes are not part of a dataset). A file's mtime is
its item's mtime: the commit time of what was written, or what ``utimensat`` sets on
a file written through this mount (``cp -p``, ``rsync -a``); the mtime of an item
that came from elsewhere (the parent version) is shared with the versions holding it
and stays as it is.

**Publish while mounted.** :mod:`dlfs.draftlock` keeps a publish from running while
files are open for writing here; a publish otherwise sees everything closed. After
it, the draft's id is gone: the view follows it to the published version and serves
it read-only (writes fail with ``EROFS``; mount a new draft to keep editing).

Threading: as for :class:`View`, everything runs on the daemon's event loop except
:meth:`View.read` of a committed blob.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import stat
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from dlfs import trees, versions
from dlfs.catalog import CatalogDB, Row
from dlfs.draftlock import MountLock
from dlfs.durable import syncfs
from dlfs.errors import (
    AlreadyExists,
    Corrupt,
    InvalidInput,
    IsADirectory,
    NameTooLong,
    NoAttribute,
    NotADirectory,
    NotEmpty,
    NotFound,
    NotPermitted,
    NotSupported,
    ReadOnly,
)
from dlfs.home import Home
from dlfs.names import NAME_MAX, check_annotations, check_metadata, check_name
from dlfs.objects import DIR, FILE, canonical_json, is_mutable, item_id, new_origin
from dlfs.staging import StagedFile, StagingArea, clear_abandoned, store_blob
from dlfs.stores.registry import StoreRegistry
from dlfs.view import (
    BLOCK_SIZE,
    LIVE_TTL,
    X_ANNOTATIONS,
    X_BLOB,
    X_DATASET,
    X_ITEM,
    X_METADATA,
    X_STATE,
    X_VERSION,
    XATTR_PREFIX,
    FsStats,
    Listing,
    Node,
    Role,
    StoreFactory,
    View,
    open_view,
)

log = logging.getLogger(__name__)

FILE_MODE = stat.S_IFREG | 0o644
DIR_MODE = stat.S_IFDIR | 0o755
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
STATFS_TTL = 2.0
"""Seconds the totals ``statfs`` reports are reused (a draft's are a recursive query)."""
REMEMBERED_ITEMS = 1_000_000
"""At most this many items written here are remembered (for mtimes and lineage)."""


class Place:
    """Where an entry of the draft is: its folder's place and its name.

    One place per location while anything refers to it; renames re-point it, removal
    detaches it (``parent`` None). Folder places cache their tree id (``tree``, valid
    for cache epoch ``epoch``).
    """

    __slots__ = ("__weakref__", "epoch", "name", "parent", "tree")

    def __init__(self, parent: Place | None, name: str) -> None:
        self.parent = parent
        self.name = name
        self.tree = ""
        self.epoch = -1

    def __repr__(self) -> str:
        return f"Place({self.name!r})"


@dataclass(eq=False)
class OpenFile:
    """A file open for writing (and its readers): its content, staged or committed."""

    place: Place
    blob: str
    """The blob of the committed (or original) content; ``""`` when there is none."""
    size: int
    mtime_ns: int
    committed: bool
    """True when the catalog has an entry for this file."""
    staged: StagedFile | None = None
    """The working copy, once written or truncated (None: the content is ``blob``)."""
    dirty: bool = False
    """Changed since the last commit."""
    writers: int = 0
    handles: set[int] = field(default_factory=set)
    inherit: tuple[str, str, str] | None = None
    """``(origin, metadata, annotations)`` of a file this one replaced by a rename."""


def _ns(seconds: float | None) -> int:
    return int((seconds or 0.0) * 1_000_000_000)


def _check_new_name(name: str) -> str:
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidInput(f"invalid name {name!r}: names must be UTF-8") from None
    if size > NAME_MAX:
        raise NameTooLong(f"name longer than {NAME_MAX} bytes: {name[:40]}...")
    return check_name(name)


def _place_of(node: Node) -> Place:
    place = node.place
    if not isinstance(place, Place):
        raise InvalidInput("not a node of this draft")
    return place


class DraftView(View):
    """The read-write view of one draft (build it with :func:`open_mount_view`).

    Raises what :class:`View` raises, plus :class:`AlreadyExists`, :class:`NotEmpty`,
    :class:`IsADirectory`, :class:`NotPermitted`, :class:`NotSupported`,
    :class:`InvalidInput` (bad JSON, bad names) and :class:`ReadOnly` once the draft
    was published.
    """

    def __init__(
        self,
        db: CatalogDB,
        stores: StoreFactory,
        version: Row,
        home: Home,
        lock: MountLock,
        uid: int | None = None,
        gid: int | None = None,
    ) -> None:
        self.home = home
        self._locks = lock
        self._vid: str = version["id"]
        self._dataset: int = version["dataset"]
        self._root_place = Place(None, "")
        self._root_tree: str = version["root"]
        self._published: Row | None = None
        self._gone = False
        self._epoch = 0
        self._data_version = db.data_version()
        self._places: weakref.WeakValueDictionary[tuple[int, str], Place] = (
            weakref.WeakValueDictionary()
        )
        self._open: dict[Place, OpenFile] = {}
        self._handles: dict[int, tuple[OpenFile | None, bool]] = {}
        self._writers = 0
        self._staging: StagingArea | None = None
        self._private: set[str] = set()
        """Items this mount created: their mtime is ours to set."""
        self._newborn: set[str] = set()
        """Items created here with a new origin and no metadata: a rename over another
        file gives them its lineage."""
        self._statfs: tuple[float, int, int] | None = None
        super().__init__(db, stores, version, uid, gid)
        db.set_synchronous(False)
        db.set_autocheckpoint(10_000)

    # -- state ------------------------------------------------------------------------

    @property
    def mode(self) -> str:
        """``writable``: a draft served read-write."""
        return "writable"

    @property
    def writable(self) -> bool:
        """True: this view accepts writes (until its draft is published)."""
        return True

    @property
    def draft_id(self) -> str:
        """The id of the draft mounted (it changes at publish: see :attr:`published_id`)."""
        return self._vid

    @property
    def published_id(self) -> str | None:
        """The id the draft was published as, once this view noticed."""
        return None if self._published is None else str(self._published["id"])

    def _sync(self) -> None:
        """Drop every cache if another process committed to the catalog."""
        current = self.db.data_version()
        if current != self._data_version:
            self._data_version = current
            self._invalidate()

    def _invalidate(self) -> None:
        self._epoch += 1
        self._statfs = None
        if self._published is not None:
            return
        row = self.db.version_get(self._vid)
        if row is not None and row["state"] == "draft":
            self._root_tree = row["root"]
            return
        new = self._locks.published_as()
        published = self.db.version_get(new) if new else None
        if published is not None:
            self._published = published
            self._root_tree = published["root"]
            log.info("draft %s was published as %s: serving it read-only", self._vid, new)
        else:
            self._gone = True

    def _check_writable(self, what: str) -> None:
        if self._published is not None:
            tags = ", ".join(self.db.tags_of_version(self._published["id"]))
            raise ReadOnly(
                f"cannot {what}: draft {self._vid} was published as"
                f" {self._published['id']} ({tags}); this mount now shows that version"
                " read-only: mount a new draft to keep editing"
            )
        if self._gone:
            raise NotFound(f"cannot {what}: draft {self._vid} was deleted")

    @contextlib.contextmanager
    def _write(self, what: str) -> Iterator[None]:
        """One catalog transaction of a write; caches are dropped if it rolls back."""
        try:
            with self.db.transaction():
                self._sync()
                self._check_writable(what)
                yield
        except BaseException:
            self._invalidate()
            raise
        self._statfs = None

    def _staging_area(self) -> StagingArea:
        if self._staging is None:
            self._staging = StagingArea(self.home.blobs)
        return self._staging

    def _begin_writing(self, what: str) -> None:
        """One more writer: the first one takes the writers lock (see draftlock)."""
        if self._writers == 0:
            self._locks.start_writing()
            try:
                self._sync()  # a publish may have ended while we waited
                self._check_writable(what)
            except BaseException:
                self._locks.stop_writing()
                raise
        self._writers += 1

    def _end_writing(self) -> None:
        self._writers -= 1
        if self._writers == 0:
            self._locks.stop_writing()

    def _remember(self, item: str, newborn: bool) -> None:
        if len(self._private) >= REMEMBERED_ITEMS:
            self._private.clear()
            self._newborn.clear()
        self._private.add(item)
        if newborn:
            self._newborn.add(item)

    # -- places -----------------------------------------------------------------------

    def _place(self, parent: Place, name: str) -> Place:
        key = (id(parent), name)
        place = self._places.get(key)
        if place is None:
            place = self._places[key] = Place(parent, name)
        return place

    def _existing_place(self, parent: Place, name: str) -> Place | None:
        return self._places.get((id(parent), name))

    def _detach(self, place: Place) -> None:
        if place.parent is not None:
            key = (id(place.parent), place.name)
            if self._places.get(key) is place:
                del self._places[key]
        place.parent = None

    def _move_place(self, place: Place, parent: Place, name: str) -> None:
        self._detach(place)
        place.parent, place.name = parent, name
        self._places[(id(parent), name)] = place

    def _alive(self, place: Place) -> bool:
        return place is self._root_place or place.parent is not None

    def _parts(self, place: Place) -> list[str]:
        parts: list[str] = []
        while place is not self._root_place:
            if place.parent is None:
                raise NotFound(f"{place.name!r} was removed")
            parts.append(place.name)
            place = place.parent
        return parts[::-1]

    def _dir_tree(self, place: Place) -> str:
        """The current tree id of a folder place (for reading)."""
        if place is self._root_place:
            return self._root_tree
        if place.parent is None:
            raise NotFound(f"folder {place.name!r} was removed")
        if place.epoch == self._epoch and is_mutable(place.tree):
            return place.tree
        parent = self._dir_tree(place.parent)
        row = self.db.entry(parent, place.name)
        if row is None:
            raise NotFound(f"no such folder: {place.name}")
        if row["kind"] != DIR:
            raise NotADirectory(f"not a folder: {place.name}")
        place.tree, place.epoch = row["ref"], self._epoch
        return place.tree

    def _mutable_dir(self, place: Place) -> str:
        """The folder's mutable tree, copying it (and up to the root) on first change;
        inside a write transaction."""
        cached = place.epoch == self._epoch and is_mutable(place.tree)
        if cached and place is not self._root_place and place.parent is not None:
            return place.tree
        draft = trees.DraftTree(self.db, self._vid, self._root_tree)
        tree = draft.mutable_dir(self._parts(place))
        self._root_tree = draft.root
        if place is not self._root_place:
            place.tree, place.epoch = tree, self._epoch
        return tree

    def _draft_tree(self) -> trees.DraftTree:
        return trees.DraftTree(self.db, self._vid, self._root_tree)

    def _tree(self, node: Node) -> str:
        return self._dir_tree(_place_of(node))

    def _file_row(self, place: Place) -> Row:
        """The catalog entry of a file place."""
        if place.parent is None:
            raise NotFound(f"file {place.name!r} was removed")
        row = self.db.entry(self._dir_tree(place.parent), place.name)
        if row is None:
            raise NotFound(f"no such file: {place.name}")
        if row["kind"] == DIR:
            raise IsADirectory(f"is a folder: {place.name}")
        return row

    def _pending_children(self, folder: Place) -> list[OpenFile]:
        return [f for p, f in self._open.items() if p.parent is folder and not f.committed]

    # -- nodes ------------------------------------------------------------------------

    def _version_node(self, row: Row) -> Node:
        return Node(
            Role.VERSION,
            DIR_MODE,
            0,
            _ns(row["published_at"] or row["created_at"]),
            LIVE_TTL,
            False,
            ref=row["root"],
            version=row["id"],
            dataset=row["dataset"],
            place=self._root_place,
        )

    def _node(self, parent: Place, row: Row) -> Node:
        place = self._place(parent, row["name"])
        if row["kind"] == DIR:
            return Node(
                Role.FOLDER,
                DIR_MODE,
                0,
                self._root.mtime_ns,
                LIVE_TTL,
                False,
                ref=row["ref"],
                version=self._vid,
                dataset=self._dataset,
                place=place,
            )
        node = Node(
            Role.FILE,
            FILE_MODE,
            row["size"],
            _ns(row["mtime"]),
            LIVE_TTL,
            False,
            ref=row["ref"],
            blob=row["blob"] or "",
            version=self._vid,
            dataset=self._dataset,
            place=place,
        )
        f = self._open.get(place)
        return node if f is None else node._replace(size=f.size, mtime_ns=f.mtime_ns)

    def _open_node(self, f: OpenFile) -> Node:
        return Node(
            Role.FILE,
            FILE_MODE,
            f.size,
            f.mtime_ns,
            LIVE_TTL,
            False,
            blob=f.blob,
            version=self._vid,
            dataset=self._dataset,
            place=f.place,
        )

    # -- reading the tree -------------------------------------------------------------

    def lookup(self, parent: Node, name: str) -> Node:
        """The node of ``name``: files being written (even not yet committed) included."""
        try:
            size = len(name.encode("utf-8"))
        except UnicodeEncodeError:
            raise NotFound(f"no such file or folder: {name!r}") from None
        if size > NAME_MAX:
            raise NameTooLong(f"name longer than {NAME_MAX} bytes: {name[:40]}...")
        if parent.role == Role.FILE:
            raise NotADirectory("not a folder")
        self._sync()
        folder = _place_of(parent)
        place = self._existing_place(folder, name)
        f = self._open.get(place) if place is not None else None
        if f is not None and not f.committed:
            return self._open_node(f)
        row = self.db.entry(self._dir_tree(folder), name)
        if row is None:
            raise NotFound(f"no such file or folder: {name}")
        return self._node(folder, row)

    def getattr(self, node: Node) -> Node:
        """Fresh attributes, from the catalog or the open file (its staged size)."""
        self._sync()
        place = _place_of(node)
        if node.role == Role.VERSION:
            return self._root
        f = self._open.get(place)
        if f is not None and (not f.committed or place.parent is None):
            return self._open_node(f)
        if place.parent is None:
            return node  # removed, still open somewhere: the last known attributes
        try:
            row = self.db.entry(self._dir_tree(place.parent), place.name)
        except NotFound:
            return node
        return node if row is None else self._node(place.parent, row)

    def listing(self, node: Node) -> Listing:
        """The folder's entries from the catalog, then the files created here and not
        yet committed."""
        if node.role == Role.FILE:
            raise NotADirectory("not a folder")
        self._sync()
        folder = _place_of(node)
        tree = self._dir_tree(folder)
        pending = sorted((f.place.name, self._open_node(f)) for f in self._pending_children(folder))
        done = False

        def fetch(after: str, limit: int) -> list[tuple[str, Node]]:
            nonlocal done
            if done:
                return []
            rows = self.db.entries_after(tree, after, limit)
            page = [(r["name"], self._node(folder, r)) for r in rows]
            if len(rows) < limit:
                done = True
                page += pending
            return page

        return Listing([], fetch)

    def getxattr(self, node: Node, name: str) -> bytes:
        """As :meth:`View.getxattr`, from the current item; ``user.dlfs.state`` of the
        root says ``published`` once the draft was."""
        if not name.startswith(XATTR_PREFIX):
            raise NoAttribute(name)
        self._sync()
        if node.role == Role.VERSION:
            if name == X_VERSION:
                return (self.published_id or self._vid).encode()
            if name == X_STATE:
                return b"published" if self._published is not None else b"draft"
            if name == X_DATASET:
                ds = self.db.dataset_by_id(self._dataset)
                return (ds["name"] if ds is not None else "").encode()
            raise NoAttribute(name)
        if node.role != Role.FILE or name not in (X_ITEM, X_BLOB, X_METADATA, X_ANNOTATIONS):
            raise NoAttribute(name)
        place = _place_of(node)
        f = self._open.get(place)
        if f is not None and not f.committed:
            origin_meta_ann = f.inherit or ("", "{}", "[]")
            if name == X_METADATA:
                return origin_meta_ann[1].encode()
            if name == X_ANNOTATIONS:
                return origin_meta_ann[2].encode()
            raise NoAttribute(name)  # no item yet: it is made when the file is closed
        item = self.db.item_get(self._file_row(place)["ref"])
        if item is None:
            raise Corrupt(f"the item of {place.name!r} is missing from the catalog")
        column = {X_ITEM: "id", X_BLOB: "blob", X_METADATA: "metadata"}.get(name, "annotations")
        return str(item[column]).encode()

    def statfs(self) -> FsStats:
        """The draft's size and file count, and the free space of the blob store."""
        self._sync()
        now = time.monotonic()
        if self._statfs is None or now - self._statfs[0] > STATFS_TTL:
            files, nbytes = trees.totals(self.db, self._root_tree)
            self._statfs = (now, files, nbytes)
        _when, files, nbytes = self._statfs
        st = os.statvfs(self.home.blobs)
        free = st.f_bavail * st.f_frsize // BLOCK_SIZE
        used = -(-nbytes // BLOCK_SIZE)
        return FsStats(BLOCK_SIZE, used + free, files + st.f_favail, NAME_MAX, free, st.f_favail)

    # -- opening, reading, writing ----------------------------------------------------

    def open(self, node: Node, flags: int) -> int:
        """Open a file; for writing, it gets (or joins) its :class:`OpenFile`."""
        if node.role != Role.FILE:
            raise IsADirectory("is a folder") if node.is_dir else InvalidInput("not a file")
        self._sync()
        place = _place_of(node)
        writable = flags & os.O_ACCMODE != os.O_RDONLY
        f = self._open.get(place)
        made = None
        if writable:
            self._begin_writing("open for writing")
        try:
            if f is None:
                row = self._file_row(place)
                current = self._node(place.parent or self._root_place, row)
                if writable:
                    f = made = OpenFile(place, current.blob, current.size, current.mtime_ns, True)
                    self._open[place] = f
            else:
                current = self._open_node(f)
            if writable and f is not None and flags & os.O_TRUNC:
                self._truncate(f, 0)
        except BaseException:
            if made is not None:
                self._close_file(made)
            if writable:
                self._end_writing()
            raise
        fh = next(self._fh)
        self._files[fh] = current
        self._handles[fh] = (f, writable)
        if f is not None:
            f.handles.add(fh)
            if writable:
                f.writers += 1
        return fh

    def create(self, parent: Node, name: str, mode: int, flags: int) -> tuple[int, Node]:
        """Create and open a new file (in the mount only, until its first commit)."""
        _check_new_name(name)
        if parent.role == Role.FILE:
            raise NotADirectory("not a folder")
        self._sync()
        self._check_writable("create a file")
        folder = _place_of(parent)
        tree = self._dir_tree(folder)
        place = self._existing_place(folder, name)
        other = self._open.get(place) if place is not None else None
        if (other is not None and not other.committed) or self.db.entry(tree, name) is not None:
            raise AlreadyExists(f"already exists: {name}")
        self._begin_writing("create a file")
        try:
            staged = self._staging_area().new_file()
        except BaseException:
            self._end_writing()
            raise
        place = self._place(folder, name)
        f = OpenFile(place, "", 0, time.time_ns(), False, staged=staged, dirty=True, writers=1)
        self._open[place] = f
        fh = next(self._fh)
        f.handles.add(fh)
        node = self._open_node(f)
        self._files[fh] = node
        self._handles[fh] = (f, True)
        return fh, node

    def read_nowait(self, fh: int, offset: int, size: int) -> bytes | memoryview | None:
        """As :meth:`View.read_nowait`; a file open for writing is read from its staged
        bytes, whichever handle reads it."""
        f, _writable = self._handles[fh]
        node = self._files[fh]
        if f is None:
            f = self._open.get(node.place)  # opened for reading before a writer came
        if f is not None:
            if f.staged is not None:
                return f.staged.read(offset, max(0, min(size, f.size - offset)))
            if node.blob != f.blob or node.size != f.size:
                self._files[fh] = node._replace(blob=f.blob, size=f.size)
        return super().read_nowait(fh, offset, size)

    def write(self, fh: int, offset: int, data: bytes) -> int:
        """Write to the staging file (made on the first write, from the current bytes)."""
        f, writable = self._handles[fh]
        if f is None or not writable:
            raise InvalidInput("the file is not open for writing")
        if f.staged is None:
            self._unseal(f)
        assert f.staged is not None
        written = f.staged.write(offset, data)
        f.size = f.staged.size
        f.dirty = True
        f.mtime_ns = time.time_ns()
        return written

    def flush(self, fh: int) -> None:
        """``close``: commit the file if it changed (see the module docstring)."""
        f, writable = self._handles.get(fh, (None, False))
        if f is not None and writable and f.dirty:
            self._commit(f)

    def fsync(self, fh: int, datasync: bool) -> None:
        """Commit the file if it changed, durably (against power loss too)."""
        f, _writable = self._handles.get(fh, (None, False))
        if f is None:
            return
        if f.dirty:
            self._commit(f, durable=True)
        elif f.committed and f.blob:
            self._store(self._dataset).sync_blob(f.blob)
            self.db.sync_wal()

    def release(self, fh: int) -> None:
        """The last close of a handle: commit what is left (writes through a shared
        mapping may come after ``flush``), then forget the handle. Never raises."""
        f, writable = self._handles.pop(fh, (None, False))
        self._files.pop(fh, None)
        if f is None:
            return
        f.handles.discard(fh)
        try:
            if writable and f.dirty and f.writers == 1:
                self._commit(f)
        except Exception:
            log.exception("committing %r on release failed: its last changes are lost", f.place)
        finally:
            if writable:
                f.writers -= 1
                self._end_writing()
            if not f.handles:
                self._close_file(f)

    def _close_file(self, f: OpenFile) -> None:
        if f.staged is not None:
            f.staged.discard()
            f.staged = None
        if self._open.get(f.place) is f:
            del self._open[f.place]

    def _unseal(self, f: OpenFile) -> None:
        """Give ``f`` a staging file holding its current content."""
        staged = self._staging_area().new_file()
        try:
            if f.size:  # iter_bytes checks the bytes against their hash
                staged.fill(self._store(self._dataset).iter_bytes(f.blob))
                if staged.size != f.size:
                    raise Corrupt(f"blob {f.blob} is not {f.size} bytes long: not copied")
        except BaseException:
            staged.discard()
            raise
        f.staged = staged

    def _truncate(self, f: OpenFile, size: int) -> None:
        if f.staged is None:
            if size == 0:
                f.staged = self._staging_area().new_file()
            else:
                self._unseal(f)
        assert f.staged is not None
        f.staged.truncate(size)
        f.size = size
        f.dirty = True
        f.mtime_ns = time.time_ns()

    def _commit(self, f: OpenFile, durable: bool = False) -> None:
        """Store ``f``'s bytes as a blob and record it in one transaction."""
        place = f.place
        if place.parent is None:  # unlinked while open: nothing to keep
            f.dirty = False
            return
        store = self._store(self._dataset)
        if f.staged is not None:
            blob, moved = store_blob(store, f.staged, durable)
            f.blob, f.size = blob, f.staged.size
            if moved:
                f.staged = None
        with self._write("write a file"):
            tree = self._mutable_dir(place.parent)
            row = self.db.entry(tree, place.name)
            if row is not None and row["kind"] == DIR:
                raise IsADirectory(f"a folder now stands at {place.name!r}")
            origin, meta, ann, newborn = self._lineage(row, f)
            iid = item_id(origin, f.blob, f.size, meta, ann)
            item = (iid, origin, f.blob, f.size, f.mtime_ns / 1e9, meta, ann)
            new = self.db.file_record(tree, place.name, item, store.url)
        if durable:
            self.db.sync_wal()
        f.committed, f.dirty = True, False
        if new:
            self._remember(iid, newborn)

    def _lineage(self, row: Row | None, f: OpenFile) -> tuple[str, str, str, bool]:
        """``(origin, metadata, annotations, newborn)`` for a file committed at ``row``."""
        if row is not None:
            item = self.db.item_get(row["ref"])
            if item is not None:
                return item["origin"], item["metadata"], item["annotations"], False
        if f.inherit is not None:
            return (*f.inherit, False)
        return new_origin(), "{}", "[]", True

    # -- changing the tree ------------------------------------------------------------

    def mkdir(self, parent: Node, name: str, mode: int) -> Node:
        """Make a folder (one transaction)."""
        _check_new_name(name)
        if parent.role == Role.FILE:
            raise NotADirectory("not a folder")
        folder = _place_of(parent)
        place = self._existing_place(folder, name)
        pending = self._open.get(place) if place is not None else None
        with self._write("make a folder"):
            if pending is not None and not pending.committed:
                raise AlreadyExists(f"already exists: {name}")
            draft = self._draft_tree()
            draft.mkdir([*self._parts(folder), name])
            self._root_tree = draft.root
            row = self.db.entry(self._mutable_dir(folder), name)
            assert row is not None
        return self._node(folder, row)

    def mknod(self, parent: Node, name: str, mode: int, rdev: int) -> Node:
        """An empty regular file; anything else is :class:`NotPermitted`."""
        if not stat.S_ISREG(mode):
            raise NotPermitted("datasets hold regular files and folders only")
        fh, _node = self.create(parent, name, mode, os.O_WRONLY)
        self.release(fh)
        return self.lookup(parent, name)

    def symlink(self, parent: Node, name: str, target: str) -> Node:
        """Refused: :class:`NotPermitted` (``EPERM``)."""
        raise NotPermitted("datasets hold no symbolic links")

    def link(self, node: Node, parent: Node, name: str) -> Node:
        """Refused: :class:`NotPermitted` (``EPERM``)."""
        raise NotPermitted("datasets hold no hard links (copy the file, or 'dlfs cp')")

    def unlink(self, parent: Node, name: str) -> None:
        """Remove a file; if it is open, its handles keep working on bytes that go away
        when it is closed."""
        folder = _place_of(parent)
        place = self._existing_place(folder, name)
        f = self._open.get(place) if place is not None else None
        with self._write("remove a file"):
            row = self.db.entry(self._dir_tree(folder), name)
            if row is None:
                if f is None or f.committed:
                    raise NotFound(f"no such file: {name}")
            elif row["kind"] == DIR:
                raise IsADirectory(f"is a folder: {name}")
            else:
                self.db.entry_delete(self._mutable_dir(folder), name)
        if place is not None:
            self._detach(place)

    def rmdir(self, parent: Node, name: str) -> None:
        """Remove an empty folder (:class:`NotEmpty` otherwise)."""
        folder = _place_of(parent)
        with self._write("remove a folder"):
            row = self.db.entry(self._dir_tree(folder), name)
            if row is None:
                raise NotFound(f"no such folder: {name}")
            if row["kind"] != DIR:
                raise NotADirectory(f"not a folder: {name}")
            place = self._existing_place(folder, name)
            if self.db.entry_count(row["ref"]) or (
                place is not None and self._pending_children(place)
            ):
                raise NotEmpty(f"folder not empty: {name}")
            draft = self._draft_tree()
            draft.remove([*self._parts(folder), name])
            self._root_tree = draft.root
        if place is not None:
            self._detach(place)
        self._epoch += 1

    def rename(self, parent: Node, name: str, new_parent: Node, new_name: str, flags: int) -> None:
        """Move a file or folder, replacing a file or an empty folder (POSIX rules);
        open files and places follow it."""
        if flags & RENAME_EXCHANGE:
            raise InvalidInput("exchanging two entries (RENAME_EXCHANGE) is not supported")
        _check_new_name(new_name)
        src_folder, dst_folder = _place_of(parent), _place_of(new_parent)
        if new_parent.role == Role.FILE:
            raise NotADirectory("not a folder")
        src = self._existing_place(src_folder, name)
        dst = self._existing_place(dst_folder, new_name)
        src_open = self._open.get(src) if src is not None else None
        dst_open = self._open.get(dst) if dst is not None else None
        with self._write("rename"):
            srow = self.db.entry(self._dir_tree(src_folder), name)
            src_pending = srow is None and src_open is not None and not src_open.committed
            if srow is None and not src_pending:
                raise NotFound(f"no such file or folder: {name}")
            drow = self.db.entry(self._dir_tree(dst_folder), new_name)
            dst_pending = drow is None and dst_open is not None and not dst_open.committed
            if src_folder is dst_folder and name == new_name:
                return
            if (drow is not None or dst_pending) and flags & RENAME_NOREPLACE:
                raise AlreadyExists(f"already exists: {new_name}")
            is_dir = srow is not None and srow["kind"] == DIR
            if is_dir:
                self._check_not_inside(src_folder, name, dst_folder)
                if drow is not None:
                    if drow["kind"] != DIR:
                        raise NotADirectory(f"not a folder: {new_name}")
                    if self.db.entry_count(drow["ref"]) or (
                        dst is not None and self._pending_children(dst)
                    ):
                        raise NotEmpty(f"folder not empty: {new_name}")
                if dst_pending:
                    raise NotADirectory(f"not a folder: {new_name}")
            elif drow is not None and drow["kind"] == DIR:
                raise IsADirectory(f"is a folder: {new_name}")
            self._move(srow, drow, src_open, src_folder, name, dst_folder, new_name)
        if dst is not None and dst is not src:
            if dst_open is not None:
                dst_open.dirty = False  # replaced: its content goes when it is closed
            self._detach(dst)
        if src is not None:
            self._move_place(src, dst_folder, new_name)
        self._epoch += 1

    def _move(
        self,
        srow: Row | None,
        drow: Row | None,
        src_open: OpenFile | None,
        src_folder: Place,
        name: str,
        dst_folder: Place,
        new_name: str,
    ) -> None:
        """The catalog side of a rename whose checks passed (inside its transaction)."""
        draft = self._draft_tree()
        dst_parts = [*self._parts(dst_folder), new_name]
        replaced = None
        if drow is not None and drow["kind"] != DIR:
            replaced = self.db.item_get(drow["ref"])
        if drow is not None:
            draft.remove(dst_parts)
        if srow is not None:
            draft.move([*self._parts(src_folder), name], dst_parts)
            if replaced is not None and srow["ref"] in self._newborn:
                # An editor's or rsync's save: the new bytes take the old file's lineage.
                mine = self.db.item_get(srow["ref"])
                assert mine is not None
                origin = replaced["origin"]
                meta, ann = replaced["metadata"], replaced["annotations"]
                iid = item_id(origin, mine["blob"], mine["size"], meta, ann)
                item = (iid, origin, mine["blob"], mine["size"], mine["mtime"], meta, ann)
                if self.db.item_insert(item):
                    self._remember(iid, False)
                draft.set_file(dst_parts, iid, mine["size"])
        elif src_open is not None and replaced is not None:
            src_open.inherit = (replaced["origin"], replaced["metadata"], replaced["annotations"])
        self._root_tree = draft.root

    def _check_not_inside(self, folder: Place, name: str, target: Place) -> None:
        place: Place | None = target
        while place is not None and place is not self._root_place:
            if place.parent is folder and place.name == name:
                raise InvalidInput(f"cannot move folder {name!r} into itself")
            place = place.parent

    def setattr(
        self,
        node: Node,
        size: int | None = None,
        mode: int | None = None,
        mtime_ns: int | None = None,
    ) -> Node:
        """Truncate or extend a file, set its mtime (see the module docstring); modes
        are accepted and ignored."""
        self._sync()
        if node.role != Role.FILE:
            if size is not None:
                raise IsADirectory("is a folder")
            return self.getattr(node)  # modes and times of folders are not kept
        place = _place_of(node)
        if size is not None:
            self._check_writable("truncate a file")
            self._begin_writing("truncate a file")
            try:
                f = self._open.get(place)
                transient = f is None  # truncate(2) of a file nobody has open
                if f is None:
                    row = self._file_row(place)
                    f = OpenFile(place, row["blob"], row["size"], _ns(row["mtime"]), True)
                    self._open[place] = f
                try:
                    self._truncate(f, size)
                    if f.writers == 0:  # no close will come to commit it
                        self._commit(f)
                finally:
                    if transient:
                        self._close_file(f)
            finally:
                self._end_writing()
        if mtime_ns is not None:
            self._set_mtime(place, mtime_ns)
        return self.getattr(node)

    def _set_mtime(self, place: Place, mtime_ns: int) -> None:
        f = self._open.get(place)
        if f is not None and (f.dirty or not f.committed):
            f.mtime_ns = mtime_ns  # recorded with the commit
            return
        self._check_writable("set times")
        row = self._file_row(place)
        if row["ref"] in self._private:
            with self._write("set times"):
                self.db.item_set_mtime(row["ref"], mtime_ns / 1e9)
            if f is not None:
                f.mtime_ns = mtime_ns
        # else: an item from elsewhere; its time is shared, so it stays (documented)

    def setxattr(self, node: Node, name: str, value: bytes) -> None:
        """Set ``user.dlfs.metadata`` (a JSON object) or ``user.dlfs.annotations`` (a
        JSON list) of a file: a new item with the same bytes and lineage."""
        if name not in (X_METADATA, X_ANNOTATIONS):
            if name.startswith(XATTR_PREFIX):
                raise NotPermitted(f"{name} is read-only; set user.dlfs.metadata or annotations")
            raise NotSupported(f"dlfs keeps no extended attribute {name!r}")
        if node.role != Role.FILE:
            raise NotSupported(f"{name} is kept on files only")
        try:
            parsed: Any = json.loads(value.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise InvalidInput(f"invalid JSON for {name}: {exc}") from exc
        if name == X_METADATA:
            self._set_item(node, metadata=canonical_json(check_metadata(parsed)))
        else:
            self._set_item(node, annotations=canonical_json(check_annotations(parsed)))

    def removexattr(self, node: Node, name: str) -> None:
        """Reset metadata to ``{}`` or annotations to ``[]``."""
        if node.role != Role.FILE or name not in (X_METADATA, X_ANNOTATIONS):
            raise NoAttribute(name)
        if name == X_METADATA:
            self._set_item(node, metadata="{}")
        else:
            self._set_item(node, annotations="[]")

    def _set_item(
        self, node: Node, metadata: str | None = None, annotations: str | None = None
    ) -> None:
        """Give the file at ``node`` new metadata or annotations (same bytes, lineage)."""
        self._sync()
        self._check_writable("set extended attributes")
        place = _place_of(node)
        f = self._open.get(place)
        if f is not None and (f.dirty or not f.committed):
            self._commit(f)  # the item to change is the one with the bytes written so far
        with self._write("set extended attributes"):
            if place.parent is None:
                raise NotFound(f"file {place.name!r} was removed")
            tree = self._mutable_dir(place.parent)
            row = self.db.entry(tree, place.name)
            if row is None:
                raise NotFound(f"no such file: {place.name}")
            if row["kind"] == DIR:
                raise NotSupported("dlfs keeps metadata on files only")
            old = self.db.item_get(row["ref"])
            assert old is not None
            meta = old["metadata"] if metadata is None else metadata
            ann = old["annotations"] if annotations is None else annotations
            iid = item_id(old["origin"], old["blob"], old["size"], meta, ann)
            item = (iid, old["origin"], old["blob"], old["size"], old["mtime"], meta, ann)
            new = self.db.item_insert(item)
            self.db.entries_put(tree, [(place.name, FILE, iid, old["size"])])
        if new and row["ref"] in self._private:
            self._remember(iid, False)

    # -- the end ----------------------------------------------------------------------

    def close(self) -> None:
        """Drop files still open (their uncommitted bytes are not kept, as after a
        crash), flush the blob store and the catalog, release the draft's locks."""
        for f in list(self._open.values()):
            if f.dirty and f.place.parent is not None:
                log.warning(
                    "%r was still open for writing: its unclosed changes are dropped", f.place
                )
            self._close_file(f)
        if self._staging is not None:
            self._staging.close()
        try:
            self.db.sync_wal()
        finally:
            self._locks.release()
            super().close()
        if self.home.blobs.exists():  # last: it may take a while, and all else is done
            syncfs(self.home.blobs)


def open_mount_view(
    home: Home,
    ref: str | None,
    stores: StoreFactory | None = None,
    mountpoint: str = "",
    read_only: bool = False,
) -> View:
    """The view a mount serves: a :class:`DraftView` for a draft (unless
    ``read_only``), else :func:`dlfs.view.open_view`'s read-only view.

    Raises :class:`dlfs.errors.Conflict` when the draft is already mounted read-write.
    """
    if ref is None or read_only:
        return open_view(home, ref, stores)
    if not home.exists():
        raise NotFound(f"no catalog at {home.root} (create one with 'dlfs init')")
    probe = CatalogDB(home.catalog_path, readonly=True)
    try:
        row = versions.resolve(probe, ref)
    finally:
        probe.close()
    if row["state"] != "draft":
        return open_view(home, ref, stores)
    lock = MountLock.acquire(home, row["id"], mountpoint)
    try:
        db = CatalogDB(home.catalog_path)
        try:
            db.map_for_reading()
            current = db.version_get(row["id"])
            if current is None or current["state"] != "draft":
                raise NotFound(f"draft {row['id']} was published or deleted meanwhile")
            clear_abandoned(home.blobs)  # left by daemons that died
            return DraftView(db, stores or StoreRegistry(home), current, home, lock)
        except BaseException:
            db.close()
            raise
    except BaseException:
        lock.release()
        raise

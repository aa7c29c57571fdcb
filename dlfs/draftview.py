"""Writable draft mounts: the filesystem semantics of editing a draft, with no FUSE.

A :class:`DraftView` serves one draft as :class:`dlfs.view.View` serves a version, and
also accepts writes: create, write (any offset), truncate, rename, unlink, mkdir,
rmdir, symlinks, setting times, modes and owners, ``user.dlfs.metadata`` /
``user.dlfs.annotations`` and any other ``user.*`` attribute, flush, fsync (the
attributes are :mod:`dlfs.draftattrs`). Hard links and special files are refused
(:class:`NotPermitted`).
:func:`dlfs.mountviews.open_mount_view` builds the view a mount serves.

**Where entries are** is :mod:`dlfs.places`: every node handed out carries a
:class:`~dlfs.places.Place` (``Node.key``), which follows renames, so an inode keeps
naming its entry. ``PRAGMA data_version`` tells when another process committed (``dlfs
add``, ``dlfs publish``...): every cache is then dropped.

**Writing a file** is :mod:`dlfs.openfiles`: a file opened for writing gets an
:class:`~dlfs.openfiles.OpenFile` whose bytes wait in a staging file. On ``flush``
(every ``close``), ``fsync`` and the last ``release``, a changed file is *committed*:
stored as a blob once (the local store takes the staging file by rename) and recorded
in one catalog transaction. A created file exists only in the mount (in listings and
lookups) until its first commit, so a crash never leaves half-written files behind:
the catalog only ever names closed (or fsynced) content.

**Lineage** follows the rules of :class:`dlfs.items.ItemRecord` and
:class:`dlfs.trees.DraftTree`: a file rewritten in place keeps its item's origin,
metadata and annotations; a file created here gets a new origin, unless it is renamed
over an existing file before it has metadata of its own (an editor's or ``rsync``'s
save), then it takes the replaced file's.

**Durability.** After ``close`` (``flush``) returns, the bytes are in a blob file and
the transaction is committed in WAL mode with ``synchronous=NORMAL``: they survive a
crash of the daemon (``kill -9``), not a power loss; no fsync is paid per file.
``fsync`` makes a file durable against power loss too (blob file and folder fsynced,
WAL fsynced), and so do a clean unmount and a publish (``syncfs`` of the blob store).

**Times, modes, owners, symlinks, xattrs** are :mod:`dlfs.draftattrs`: new files are
``0644``, folders ``0755``; ``chmod``/``chown`` of a file persist in its item.

**Publish while mounted.** :mod:`dlfs.draftlock` keeps a publish from running while
files are open for writing here; after it the view serves the published version
read-only (:mod:`dlfs.draftstate`).
Threading: as for :class:`View`, all on the daemon's event loop but committed reads.
"""

from __future__ import annotations

import logging
import os
import stat
import time
from collections.abc import Callable

from dlfs import trees
from dlfs.access import AccessRule, shown
from dlfs.catalog import CatalogDB, Row
from dlfs.draftattrs import DraftAttrs, check_new_name, place_of
from dlfs.draftlock import MountLock
from dlfs.draftstate import DraftState
from dlfs.durable import syncfs
from dlfs.errors import (
    AlreadyExists,
    InvalidInput,
    IsADirectory,
    NameTooLong,
    NotADirectory,
    NotEmpty,
    NotFound,
    NotPermitted,
)
from dlfs.home import Home
from dlfs.names import NAME_MAX
from dlfs.nodes import BLOCK_SIZE, LIVE_TTL, FsStats, Listing, Node, Page, Role, ns, ns_kept
from dlfs.objects import DIR, FILE
from dlfs.openfiles import OpenFile, OpenFiles
from dlfs.places import Place, PlaceIndex
from dlfs.posixattrs import DIR_PERMS, folder_fields, node_fields, rdev_of
from dlfs.reads import FileReads
from dlfs.stores.base import BlobStore
from dlfs.stores.registry import StoreFactory
from dlfs.xattrs import VersionFacts

log = logging.getLogger(__name__)

RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
STATFS_TTL = 2.0
"""Seconds the totals ``statfs`` reports are reused (a draft's are a recursive query)."""


class DraftView(DraftAttrs):
    """The read-write view of one draft (build it with :func:`open_mount_view`).

    It answers the calls a :class:`dlfs.view.View` answers (reads through the same
    :class:`dlfs.reads.FileReads`), and the writes. Raises what a view raises, plus
    :class:`AlreadyExists`, :class:`NotEmpty`, :class:`IsADirectory`,
    :class:`NotPermitted`, :class:`NotSupported`, :class:`InvalidInput` (bad JSON, bad
    names) and :class:`ReadOnly` once the draft was published.
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
        access: AccessRule | None = None,
    ) -> None:
        self.db = db
        self.uid = os.getuid() if uid is None else uid
        self.gid = os.getgid() if gid is None else gid
        self.access = access
        """The rule of the draft's project (:mod:`dlfs.access`), None if it has none."""
        self.home = home
        self.reads = FileReads(db, stores)
        """The open handles and their reads."""
        self._locks = lock
        self._vid: str = version["id"]
        self._dataset: int = version["dataset"]
        self._places = PlaceIndex(db, self._vid, version["root"])
        self._statfs: tuple[float, int, int] | None = None
        self._state = DraftState(db, self._vid, self._places, lock, self._forget_statfs)
        self._open = OpenFiles(home, lock, self._state.writable_now)
        self._reclaim = self._open.bind(db, self._places, self.reads)
        self._made = 0
        self._linked: set[str] = set()
        self._root = self._version_node(version)
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
        return None if self._state.published is None else str(self._state.published["id"])

    def _file_row(self, place: Place) -> Row:
        """The catalog entry of a file place."""
        row = self._places.entry(place)
        if row is None:
            raise NotFound(f"no such file: {place.name}")
        if row["kind"] == DIR:
            raise IsADirectory(f"is a folder: {place.name}")
        return row

    # -- nodes ------------------------------------------------------------------------

    def _file_node(self, place: Place) -> Node:
        return self._node(place.parent or self._places.root, self._file_row(place))

    def _version_node(self, row: Row) -> Node:
        self._made = ns(row["published_at"] or row["created_at"])
        return self._root_node()

    def _root_node(self) -> Node:
        """The root folder, with the attributes its tree keeps now."""
        tree = self._places.root_tree
        posix, mtime, ctime = self.db.tree_attrs(tree)
        mode, uid, gid = folder_fields(posix, True)
        return Node(
            Role.VERSION,
            mode,
            0,
            self._made if mtime is None else ns(mtime),
            LIVE_TTL,
            False,
            ref=tree,
            version=self._vid,
            dataset=self._dataset,
            key=self._places.root,
            uid=uid,
            gid=gid,
            nlink=2 + self.db.folder_count(tree),
            ctime_ns=ns_kept(ctime),
            atime_ns=ns_kept(self.db.tree_atime(tree)),
        )

    def _node(self, parent: Place, row: Row) -> Node:
        place = self._places.get(parent, row["name"])
        if row["kind"] == DIR:
            mode, uid, gid = folder_fields(row["posix"], True)
            return Node(
                Role.FOLDER,
                mode,
                0,
                self._made if row["mtime"] is None else ns(row["mtime"]),
                LIVE_TTL,
                False,
                ref=row["ref"],
                version=self._vid,
                dataset=self._dataset,
                key=place,
                uid=uid,
                gid=gid,
                nlink=2 + (row["folders"] or 0),
                ctime_ns=ns_kept(row["ctime"]),
                atime_ns=ns_kept(row["atime"]),
            )
        mode, uid, gid, link_size = node_fields(row["posix"], True)
        links = 1
        if row["ref"] in self._linked:
            links = max(1, self.db.draft_links(self._vid, row["ref"]))
        node = Node(
            Role.FILE,
            mode,
            row["size"] if link_size < 0 else link_size,
            ns(row["mtime"]),
            LIVE_TTL,
            False,
            nlink=links,
            ref=row["ref"],
            blob=row["blob"] or "",
            version=self._vid,
            dataset=self._dataset,
            key=place,
            uid=uid,
            gid=gid,
            posix=row["posix"] or "",
            rdev=rdev_of(row["posix"]),
            ctime_ns=ns_kept(row["ctime"]),
            atime_ns=ns_kept(row["atime"]),
        )
        f = self._open.get(place)
        return node if f is None else node._replace(size=f.size, mtime_ns=f.mtime_ns)

    def _open_node(self, f: OpenFile) -> Node:
        mode, uid, gid, _link = node_fields(f.posix, True)
        return Node(
            Role.FILE,
            mode,
            f.size,
            f.mtime_ns,
            LIVE_TTL,
            False,
            blob=f.blob,
            version=self._vid,
            dataset=self._dataset,
            key=f.place,
            uid=uid,
            gid=gid,
        )

    def _forget_statfs(self) -> None:
        self._statfs = None

    def _store(self) -> BlobStore:
        return self.reads.store(self._dataset)

    def store_warmup(self) -> Callable[[], None] | None:
        """A job that opens the draft's blob store in another thread (see
        :meth:`dlfs.reads.FileReads.store_warmup`)."""
        return self.reads.store_warmup(self._dataset)

    # -- reading the tree -------------------------------------------------------------

    @property
    def shared(self) -> bool:
        """True when users other than the mounting one are let in (a project group)."""
        return self.access is not None

    def attributes(self, node: Node) -> tuple[int, int, int]:
        """``(st_mode, st_uid, st_gid)`` that ``node`` shows (see :func:`dlfs.access.shown`)."""
        return shown(node, self.access, self.uid, self.gid)

    def root(self) -> Node:
        """The node of the mount root."""
        return self._root

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
        self._state.sync()
        folder = place_of(parent)
        f = self._open.get(self._places.existing(folder, name))
        if f is not None and not f.committed:
            return self._open_node(f)
        row = self.db.entry(self._places.dir_tree(folder), name)
        if row is None:
            raise NotFound(f"no such file or folder: {name}")
        return self._node(folder, row)

    def getattr(self, node: Node) -> Node:
        """Fresh attributes, from the catalog or the open file (its staged size)."""
        self._state.sync()
        place = place_of(node)
        if node.role == Role.VERSION:
            self._root = self._root_node()
            return self._root
        f = self._open.get(place)
        if f is not None and (not f.committed or place.parent is None):
            return self._open_node(f)._replace(nlink=0 if place.parent is None else 1)
        if place.parent is None:
            return node._replace(nlink=0)  # removed, still open: the last attributes
        try:
            row = self._places.entry(place)
        except NotFound:
            return node
        return node if row is None else self._node(place.parent, row)

    def listing(self, node: Node) -> Listing:
        """The folder's entries from the catalog, then the files created here and not
        yet committed."""
        if node.role == Role.FILE:
            raise NotADirectory("not a folder")
        self._state.sync()
        folder = place_of(node)
        tree = self._places.dir_tree(folder)
        pending = sorted(
            (f.place.name, self._open_node(f)) for f in self._open.pending_children(folder)
        )
        done = False

        def fetch(after: str, limit: int) -> Page:
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

    def _version_facts(self, node: Node) -> VersionFacts:
        ds = self.db.dataset_by_id(self._dataset)
        vid = self.published_id or self._vid
        row = self.db.version_get(vid)
        return VersionFacts(
            vid,
            "published" if self._state.published is not None else "draft",
            ds["name"] if ds is not None else "",
            row["metadata"] if row is not None else "{}",
        )

    def statfs(self) -> FsStats:
        """The draft's size and file count, and the free space of the blob store."""
        self._state.sync()
        now = time.monotonic()
        if self._statfs is None or now - self._statfs[0] > STATFS_TTL:
            files, nbytes = trees.totals(self.db, self._places.root_tree)
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
        if not stat.S_ISREG(node.mode):
            raise InvalidInput("not a regular file: it has no bytes")
        self._state.sync()
        place = place_of(node)
        f = self._open.get(place)
        current = self._open_node(f) if f is not None else self._file_node(place)
        writable = flags & os.O_ACCMODE != os.O_RDONLY
        content = (current.blob, current.size, current.mtime_ns)
        f = self._open.open(place, content, writable, bool(flags & os.O_TRUNC), self._store())
        fh = self.reads.open(current)
        self._open.attach(fh, f, writable)
        return fh

    def create(
        self,
        parent: Node,
        name: str,
        mode: int,
        flags: int,
        owner: tuple[int, int] | None = None,
    ) -> tuple[int, Node]:
        """Create and open a new file owned by ``owner`` (uid, gid; None: the mounting
        user), in the mount only until its first commit."""
        check_new_name(name)
        if parent.role == Role.FILE:
            raise NotADirectory("not a folder")
        self._state.sync()
        self._state.check_writable("create a file")
        folder = place_of(parent)
        tree = self._places.dir_tree(folder)
        other = self._open.get(self._places.existing(folder, name))
        if (other is not None and not other.committed) or self.db.entry(tree, name) is not None:
            raise AlreadyExists(f"already exists: {name}")
        f = self._open.create(self._places.get(folder, name))
        f.posix = self._new_posix(folder, mode, owner).text()  # tar -x: the final mode
        node = self._open_node(f)
        fh = self.reads.open(node)
        self._open.attach(fh, f, True)
        return fh, node

    def read_nowait(self, fh: int, offset: int, size: int) -> bytes | memoryview | None:
        """As :meth:`dlfs.view.View.read_nowait`; a file open for writing is read from
        its staged bytes, whichever handle reads it."""
        f, _writable = self._open.handles[fh]
        node = self.reads.node(fh)
        if f is None:
            f = self._open.get(place_of(node))  # opened for reading before a writer came
        if f is not None:
            if f.staged is not None:
                return f.staged.read(offset, max(0, min(size, f.size - offset)))
            if node.blob != f.blob or node.size != f.size:
                self.reads.update(fh, node._replace(blob=f.blob, size=f.size))
        return self.reads.read_nowait(fh, offset, size)

    def read(self, fh: int, offset: int, size: int) -> bytes | memoryview:
        """As :meth:`dlfs.view.View.read` (after :meth:`read_nowait` returned None)."""
        return self.reads.read(fh, offset, size)

    def write(self, fh: int, offset: int, data: bytes) -> int:
        """Write to the file's staging file (made on the first write)."""
        f, writable = self._open.handles[fh]
        if f is None or not writable:
            raise InvalidInput("the file is not open for writing")
        return self._open.write(f, offset, data, self._store())

    def flush(self, fh: int) -> None:
        """``close``: commit the file if it changed (see the module docstring)."""
        f, writable = self._open.handles.get(fh, (None, False))
        if f is not None and writable and f.dirty:
            self._commit(f)

    def fsync(self, fh: int, datasync: bool) -> None:
        """Commit the file if it changed, durably (against power loss too)."""
        f, _writable = self._open.handles.get(fh, (None, False))
        if f is None:
            return
        if f.dirty:
            self._commit(f, durable=True)
        elif f.committed and f.blob:
            self._store().sync_blob(f.blob)
            self.db.sync_wal()

    def release(self, fh: int) -> None:
        """The last close of a handle (see :meth:`OpenFiles.release`). Never raises."""
        self.reads.release(fh)
        self._open.release(fh, self._commit)

    def _commit(self, f: OpenFile, durable: bool = False) -> None:
        """Store ``f``'s bytes as a blob and record it in one transaction."""
        place = f.place
        if place.parent is None:  # unlinked while open: nothing to keep
            f.dirty = False
            return
        store = self._store()
        content = (*self._open.content(f), f.mtime_ns / 1e9)  # hashed before the lock
        with self._state.write("write a file") as draft:
            folder = self._places.mutable_dir(place.parent, draft)
            old = self.db.entry(folder, place.name) if self._linked else None
            record, new, newborn = draft.record_write(
                folder, place.name, content, store.url, f.inherit, f.posix
            )
            if old is not None:
                self._follow_links(old["ref"], record)
            self._open.store(f, store, durable)  # last, under the write lock: dlfs.reclaim
        if durable:
            self.db.sync_wal()
        f.committed, f.dirty = True, False
        if new:
            self._state.remember(record.id, newborn)
        self._reclaim.run()  # the bytes this commit superseded

    # -- changing the tree ------------------------------------------------------------

    def mkdir(
        self, parent: Node, name: str, mode: int, owner: tuple[int, int] | None = None
    ) -> Node:
        """Make a folder with ``mode``, owned by ``owner`` (one transaction)."""
        check_new_name(name)
        if parent.role == Role.FILE:
            raise NotADirectory("not a folder")
        folder = place_of(parent)
        posix = self._new_posix(folder, mode, owner, is_dir=True).text(DIR_PERMS)
        pending = self._open.get(self._places.existing(folder, name))
        with self._state.write("make a folder") as draft:
            if pending is not None and not pending.committed:
                raise AlreadyExists(f"already exists: {name}")
            draft.mkdir([*self._places.parts(folder), name], posix=posix)
            row = self.db.entry(self._places.mutable_dir(folder, draft), name)
            assert row is not None
        return self._node(folder, row)

    def mknod(
        self, parent: Node, name: str, mode: int, rdev: int, owner: tuple[int, int] | None = None
    ) -> Node:
        """An empty regular file, or a fifo, socket or device file (no bytes)."""
        if not stat.S_ISREG(mode):
            return self.make_special(parent, name, mode, rdev, owner)
        fh, _node = self.create(parent, name, mode, os.O_WRONLY, owner)
        self.release(fh)
        return self.lookup(parent, name)

    def link(self, node: Node, parent: Node, name: str) -> Node:
        """A second name for a file (a hard link): an entry naming the same item. In
        this mount session both names are one file (a change through either is seen
        through both, ``st_nlink`` counts them); the catalog keeps two entries
        sharing an item, which later sessions and published versions show as two
        files with the same bytes."""
        check_new_name(name)
        if node.role != Role.FILE:
            raise NotPermitted("folders cannot be hard-linked")
        if parent.role == Role.FILE:
            raise NotADirectory("not a folder")
        self._state.sync()
        self._state.check_writable("make a link")
        src, folder = place_of(node), place_of(parent)
        f = self._open.get(src)
        if f is not None and (f.dirty or not f.committed):
            self._commit(f)
        pending = self._open.get(self._places.existing(folder, name))
        with self._state.write("make a link") as draft:
            if src.parent is None:
                raise NotFound(f"file {src.name!r} was removed")
            row = self.db.entry(self._places.mutable_dir(src.parent, draft), src.name)
            if row is None or row["kind"] == DIR:
                raise NotFound(f"no such file: {src.name}")
            tree = self._places.mutable_dir(folder, draft)
            if (pending is not None and not pending.committed) or self.db.entry(
                tree, name
            ) is not None:
                raise AlreadyExists(f"already exists: {name}")
            self.db.entries_put(tree, [(name, FILE, row["ref"], row["size"])])
            draft.touch(tree)
            if row["ref"] in self._state.private:
                self.db.item_set_times(row["ref"], ctime=time.time())
            self._linked.add(row["ref"])
            made = self.db.entry(tree, name)
            assert made is not None
        return self._node(folder, made)

    def unlink(self, parent: Node, name: str) -> None:
        """Remove a file; if it is open, its handles keep working on bytes that go away
        when it is closed."""
        folder = place_of(parent)
        place = self._places.existing(folder, name)
        f = self._open.get(place)
        with self._state.write("remove a file") as draft:
            row = self.db.entry(self._places.dir_tree(folder), name)
            if row is None:
                if f is None or f.committed:
                    raise NotFound(f"no such file: {name}")
            elif row["kind"] == DIR:
                raise IsADirectory(f"is a folder: {name}")
            else:
                draft.unlink(self._places.mutable_dir(folder, draft), name)
                self._unlinked(row["ref"])
        if place is not None:
            self._places.detach(place)

    def rmdir(self, parent: Node, name: str) -> None:
        """Remove an empty folder (:class:`NotEmpty` otherwise)."""
        folder = place_of(parent)
        with self._state.write("remove a folder") as draft:
            row = self.db.entry(self._places.dir_tree(folder), name)
            if row is None:
                raise NotFound(f"no such folder: {name}")
            if row["kind"] != DIR:
                raise NotADirectory(f"not a folder: {name}")
            place = self._places.existing(folder, name)
            if self.db.entry_count(row["ref"]) or (
                place is not None and self._open.pending_children(place)
            ):
                raise NotEmpty(f"folder not empty: {name}")
            draft.remove([*self._places.parts(folder), name])
        if place is not None:
            self._places.detach(place)
        self._places.invalidate()

    def rename(self, parent: Node, name: str, new_parent: Node, new_name: str, flags: int) -> None:
        """Move a file or folder, replacing a file or an empty folder (POSIX rules);
        open files and places follow it."""
        if flags & RENAME_EXCHANGE:
            raise InvalidInput("exchanging two entries (RENAME_EXCHANGE) is not supported")
        check_new_name(new_name)
        src_folder, dst_folder = place_of(parent), place_of(new_parent)
        if new_parent.role == Role.FILE:
            raise NotADirectory("not a folder")
        src = self._places.existing(src_folder, name)
        dst = self._places.existing(dst_folder, new_name)
        src_open, dst_open = self._open.get(src), self._open.get(dst)
        with self._state.write("rename") as draft:
            srow = self.db.entry(self._places.dir_tree(src_folder), name)
            src_pending = srow is None and src_open is not None and not src_open.committed
            if srow is None and not src_pending:
                raise NotFound(f"no such file or folder: {name}")
            drow = self.db.entry(self._places.dir_tree(dst_folder), new_name)
            dst_pending = drow is None and dst_open is not None and not dst_open.committed
            if src_folder is dst_folder and name == new_name:
                return
            if (drow is not None or dst_pending) and flags & RENAME_NOREPLACE:
                raise AlreadyExists(f"already exists: {new_name}")
            is_dir = srow is not None and srow["kind"] == DIR
            if is_dir:
                self._places.check_not_inside(src_folder, name, dst_folder)
                if drow is not None:
                    if drow["kind"] != DIR:
                        raise NotADirectory(f"not a folder: {new_name}")
                    if self.db.entry_count(drow["ref"]) or (
                        dst is not None and self._open.pending_children(dst)
                    ):
                        raise NotEmpty(f"folder not empty: {new_name}")
                if dst_pending:
                    raise NotADirectory(f"not a folder: {new_name}")
            elif drow is not None and drow["kind"] == DIR:
                raise IsADirectory(f"is a folder: {new_name}")
            self._move(draft, srow, src_open, (src_folder, name), (dst_folder, new_name))
        if dst is not None and dst is not src:
            if dst_open is not None:
                dst_open.dirty = False  # replaced: its content goes when it is closed
            self._places.detach(dst)
        if src is not None:
            self._places.move(src, dst_folder, new_name)
        self._places.invalidate()

    def _move(
        self,
        draft: trees.DraftTree,
        srow: Row | None,
        src_open: OpenFile | None,
        source: tuple[Place, str],
        target: tuple[Place, str],
    ) -> None:
        """The catalog side of a rename whose checks passed (inside its transaction)."""
        dst_parts = [*self._places.parts(target[0]), target[1]]
        replaced = draft.clear(dst_parts)
        if replaced is not None:
            self._unlinked(replaced.id)
        if srow is None:  # a file created here and never committed: it takes over at close
            if src_open is not None and replaced is not None:
                src_open.inherit = replaced
            return
        donor = replaced if srow["ref"] in self._state.newborn else None
        if replaced is not None and replaced.id in self._linked:
            donor = None  # the replaced file lives on under its other names
        src_parts = [*self._places.parts(source[0]), source[1]]
        adopted = draft.move_saving(src_parts, dst_parts, donor)
        if adopted is not None:
            self._state.remember(adopted.id, False)
        moved = srow["ref"] if adopted is None else adopted.id
        if srow["kind"] != DIR and moved in self._state.private:
            self.db.item_set_times(moved, ctime=time.time())  # a renamed file's ctime moves

    def _unlinked(self, item: str) -> None:
        """A name of file item ``item`` went away: the ctime of its other names moves."""
        if item in self._linked and item in self._state.private:
            self.db.item_set_times(item, ctime=time.time())

    # -- the end ----------------------------------------------------------------------

    def close(self) -> None:
        """Drop files still open (their uncommitted bytes are not kept, as after a
        crash), flush the blob store and the catalog, release the draft's locks."""
        for f in self._open.close():
            log.warning("%r was still open for writing: its unclosed changes are dropped", f.place)
        try:
            self._reclaim.close()
            self.db.sync_wal()
        finally:
            self._locks.release()
            self.reads.close()
            self.db.close()
        if self.home.blobs.exists():  # last: it may take a while, and all else is done
            syncfs(self.home.blobs)

"""What a draft mount keeps of a file beside its bytes: times, mode, owner, symlinks,
extended attributes (``user.dlfs.*`` metadata and any other ``user.*``).

:class:`DraftAttrs` is the part of :class:`dlfs.draftview.DraftView` that edits these:
each change is one catalog transaction giving the file a new item with the same bytes
and lineage (:meth:`dlfs.trees.DraftTree.relabel`), following the rules of
:class:`dlfs.items.ItemRecord`. The POSIX attributes are :mod:`dlfs.posixattrs`.

- ``chmod`` and ``chown`` of a file or folder persist (the kernel checks who may,
  with ``default_permissions``); a folder keeps them in its tree
  (:meth:`dlfs.catalog.CatalogDB.tree_attrs`), with its mtime and ctime, which move
  when an entry is added, removed or renamed.
- New files and folders belong to the user who made them, the group being the
  folder's when it has the set-group-id bit (a new folder inherits that bit).
- ``ln -s`` makes a symlink item (its target kept, its blob the empty blob).
- A file's mtime is its item's: the commit time of what was written, or what
  ``utimensat`` sets on a file written through this mount; the mtime of an item that
  came from elsewhere (the parent version) is shared with the versions holding it and
  stays as it is. ``UTIME_OMIT`` leaves a time alone. ctime and atime are kept beside
  the item (and a folder's beside its tree): ``chmod``, ``chown``, ``utimensat`` and
  ``rename`` move the ctime; the atime is what ``utimensat`` set (reads do not move
  it, as with ``noatime``); either reads as the mtime when none is kept.
- ``mknod``/``mkfifo`` make fifos, sockets and device files: items with no bytes.
"""

from __future__ import annotations

import stat
import time
from collections.abc import Callable

from dlfs import trees, xattrs
from dlfs.catalog import CatalogDB, Row
from dlfs.draftstate import DraftState
from dlfs.errors import (
    AlreadyExists,
    Corrupt,
    InvalidInput,
    IsADirectory,
    NameTooLong,
    NoAttribute,
    NotADirectory,
    NotFound,
    NotSupported,
)
from dlfs.items import ItemRecord
from dlfs.names import NAME_MAX, check_name
from dlfs.nodes import Node, Role
from dlfs.objects import blob_id
from dlfs.openfiles import OpenFile, OpenFiles
from dlfs.places import Place, PlaceIndex
from dlfs.posixattrs import DIR_PERMS, Posix, is_user_xattr, link_of, link_text, special
from dlfs.stores.base import BlobStore
from dlfs.xattrs import VersionFacts

EMPTY_BLOB = blob_id(b"")
"""The blob of every symlink item: its target is kept in the item, not in bytes."""


def seconds(ns: int | None) -> float | None:
    """Integer nanoseconds (or None) as catalog seconds."""
    return None if ns is None else ns / 1e9


def check_new_name(name: str) -> str:
    """``name`` when a new entry may take it: UTF-8, at most ``NAME_MAX`` bytes, a
    valid name (:func:`dlfs.names.check_name`)."""
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidInput(f"invalid name {name!r}: names must be UTF-8") from None
    if size > NAME_MAX:
        raise NameTooLong(f"name longer than {NAME_MAX} bytes: {name[:40]}...")
    return check_name(name)


def place_of(node: Node) -> Place:
    """The place a draft view's node carries (:class:`InvalidInput` for others)."""
    place = node.key
    if not isinstance(place, Place):
        raise InvalidInput("not a node of this draft")
    return place


class DraftAttrs:
    """Attributes, times, symlinks and extended attributes of a draft's files (a part
    of :class:`dlfs.draftview.DraftView`; the names below are the view's)."""

    db: CatalogDB
    _state: DraftState
    _open: OpenFiles
    _places: PlaceIndex

    def _file_row(self, place: Place) -> Row:
        raise NotImplementedError

    def _commit(self, f: OpenFile, durable: bool = False) -> None:
        raise NotImplementedError

    def _store(self) -> BlobStore:
        raise NotImplementedError

    def _node(self, parent: Place, row: Row) -> Node:
        raise NotImplementedError

    def _version_facts(self, node: Node) -> VersionFacts:
        raise NotImplementedError

    def getattr(self, node: Node) -> Node:
        raise NotImplementedError

    uid: int
    gid: int
    _vid: str
    _linked: set[str]
    """Items given a second name (a hard link) in this mount session."""

    def _follow_links(self, old: str, record: ItemRecord) -> None:
        """Inside an edit's transaction that made file item ``old`` into ``record``:
        the other names of a hard-linked file follow it."""
        if old in self._linked and record.id != old:
            self.db.draft_repoint(self._vid, old, record.id, record.size)
            self._linked.add(record.id)

    # -- reading ----------------------------------------------------------------------

    def _new_posix(
        self, folder: Place, mode: int, owner: tuple[int, int] | None, is_dir: bool = False
    ) -> Posix:
        """The attributes of an entry made in ``folder`` with ``mode`` by ``owner``
        (uid, gid; None: the mounting user): the caller owns it; in a folder with the
        set-group-id bit it takes the folder's group (and a folder, that bit)."""
        uid, gid = (self.uid, self.gid) if owner is None else owner
        perms = stat.S_IMODE(mode)
        parent = Posix.parse(self.db.tree_attrs(self._places.dir_tree(folder))[0])
        if parent.mode is not None and parent.mode & stat.S_ISGID:
            gid = self.gid if parent.gid is None else parent.gid
            if is_dir:
                perms |= stat.S_ISGID
        return Posix(
            mode=perms,
            uid=None if uid == self.uid else uid,
            gid=None if gid == self.gid else gid,
        )

    def _item_of(self, node: Node) -> ItemRecord | None:
        """The current item of a file node; None for a file not yet committed."""
        place = place_of(node)
        f = self._open.get(place)
        if f is not None and not f.committed:
            return None
        row = self.db.item_get(self._file_row(place)["ref"])
        if row is None:
            raise Corrupt(f"the item of {place.name!r} is missing from the catalog")
        return ItemRecord.from_row(row)

    def readlink(self, node: Node) -> str:
        """The target of a symlink (:class:`InvalidInput` for anything else)."""
        if node.role != Role.FILE or not stat.S_ISLNK(node.mode):
            raise InvalidInput("not a symlink")
        self._state.sync()
        item = self._item_of(node)
        if item is None:
            raise InvalidInput("not a symlink")
        return link_of(item)

    def listxattr(self, node: Node) -> list[str]:
        """dlfs's own attribute names (:mod:`dlfs.xattrs`), then a file's ``user.*``."""
        names = xattrs.names(node.role)
        if node.role == Role.FILE:
            self._state.sync()
            item = self._item_of(node)
            if item is not None:
                names = names + Posix.parse(item.posix).xattr_names()
        return names

    def getxattr(self, node: Node, name: str) -> bytes:
        """As :meth:`View.getxattr`, from the current item; ``user.dlfs.state`` of the
        root says ``published`` once the draft was."""
        self._state.sync()
        if is_user_xattr(name):
            item = self._item_of(node) if node.role == Role.FILE else None
            if item is None:
                raise NoAttribute(name)
            return Posix.parse(item.posix).xattr(name)
        attr = xattrs.find(node.role, name)
        if node.role == Role.VERSION:
            return attr.read(self._version_facts(node)).encode()
        place = place_of(node)
        f = self._open.get(place)
        if f is not None and not f.committed:
            if not attr.before_commit:
                raise NoAttribute(name)  # no item yet: it is made when the file is closed
            return attr.read(f.inherit or ItemRecord("", "", f.size, 0.0)).encode()
        item = self._item_of(node)
        assert item is not None
        return attr.read(item).encode()

    # -- changing ---------------------------------------------------------------------

    def setattr(
        self,
        node: Node,
        size: int | None = None,
        mode: int | None = None,
        mtime_ns: int | None = None,
        uid: int | None = None,
        gid: int | None = None,
        atime_ns: int | None = None,
    ) -> Node:
        """Truncate or extend a file, set the mode, owner, mtime or atime of a file or
        folder (see the module docstring)."""
        self._state.sync()
        if node.role != Role.FILE:
            if size is not None:
                raise IsADirectory("is a folder")
            self._set_folder(node, mode, (mtime_ns, atime_ns), uid, gid)
            return self.getattr(node)
        place = place_of(node)
        if size is not None:
            self._state.check_writable("truncate a file")

            def current() -> tuple[str, int, int]:
                row = self._file_row(place)
                return row["blob"], row["size"], int(row["mtime"] * 1e9)

            self._open.truncate_at(place, current, size, self._store(), self._commit)
        if mode is not None or uid is not None or gid is not None:

            def change(posix: Posix) -> Posix:
                if mode is not None and not posix.is_link:
                    posix = posix.with_mode(mode)
                return posix.with_owner(uid, gid)

            self._change_posix(node, change)
        if mtime_ns is not None or atime_ns is not None:
            self._set_times(place, mtime_ns, atime_ns)
        return self.getattr(node)

    def _set_folder(
        self,
        node: Node,
        mode: int | None,
        times: tuple[int | None, int | None],
        uid: int | None,
        gid: int | None,
    ) -> None:
        """chmod, chown, utimensat of a folder: its tree keeps them (one transaction)."""
        mtime_ns, atime_ns = times
        if mode is None and mtime_ns is None and atime_ns is None and uid is None and gid is None:
            return
        self._state.check_writable("set attributes")
        with self._state.write("set attributes") as draft:
            tree = self._places.mutable_dir(place_of(node), draft)
            posix = None
            if mode is not None or uid is not None or gid is not None:
                old = Posix.parse(self.db.tree_attrs(tree)[0])
                new = old.with_owner(uid, gid)
                posix = (new if mode is None else new.with_mode(mode)).text(DIR_PERMS)
            draft.set_folder_attrs(tree, posix, seconds(mtime_ns), seconds(atime_ns))

    def _set_times(self, place: Place, mtime_ns: int | None, atime_ns: int | None) -> None:
        f = self._open.get(place)
        if f is not None and (f.dirty or not f.committed):
            if mtime_ns is not None:
                f.mtime_ns = mtime_ns  # recorded with the commit (its atime: the mtime)
            return
        self._state.check_writable("set times")
        row = self._file_row(place)
        if row["ref"] in self._state.private:
            with self._state.write("set times") as draft:
                if mtime_ns is not None:
                    draft.set_mtime(row["ref"], mtime_ns / 1e9)
                self.db.item_set_times(row["ref"], time.time(), seconds(atime_ns))
            if f is not None and mtime_ns is not None:
                f.mtime_ns = mtime_ns
        # else: an item from elsewhere; its times are shared, so they stay (documented)

    def setxattr(self, node: Node, name: str, value: bytes) -> None:
        """Set an attribute of a file: dlfs's metadata or annotations (:mod:`dlfs.xattrs`)
        or any ``user.*``: a new item with the same bytes and lineage."""
        if is_user_xattr(name):
            if node.role != Role.FILE:
                raise NotSupported("dlfs keeps extended attributes on files only")
            self._change_posix(node, lambda p: p.with_xattr(name, value))
            return
        attr = xattrs.writable(node.role, name)
        self._relabel(node, attr.field, attr.parse(value))

    def removexattr(self, node: Node, name: str) -> None:
        """Remove a ``user.*`` attribute, or reset dlfs's (metadata to ``{}``,
        annotations to ``[]``)."""
        if is_user_xattr(name):
            if node.role != Role.FILE:
                raise NoAttribute(name)
            self._change_posix(node, lambda p: p.with_xattr(name, None))
            return
        attr = xattrs.removable(node.role, name)
        self._relabel(node, attr.field, attr.empty)

    def _change_posix(self, node: Node, change: Callable[[Posix], Posix]) -> None:
        self._relabel(node, "posix", None, change)

    def _relabel(
        self,
        node: Node,
        field: str,
        value: str | None,
        change: Callable[[Posix], Posix] | None = None,
    ) -> None:
        """Give the file at ``node`` a new value of item field ``field`` (or new POSIX
        attributes by ``change``): same bytes, same lineage."""
        self._state.sync()
        self._state.check_writable("set attributes")
        place = place_of(node)
        f = self._open.get(place)
        if f is not None and (f.dirty or not f.committed):
            self._commit(f)  # the item to change is the one with the bytes written so far
        with self._state.write("set attributes") as draft:
            if place.parent is None:
                raise NotFound(f"file {place.name!r} was removed")
            folder = self._places.mutable_dir(place.parent, draft)
            old = self.db.entry(folder, place.name)
            if old is not None and old["kind"] == trees.DIR:
                raise NotSupported("dlfs keeps attributes on files only")
            if change is not None:
                value = change(Posix.parse(old["posix"] if old is not None else "")).text()
            record, new = draft.relabel(folder, place.name, **{field: value})
            if new:
                self.db.item_set_times(record.id, ctime=time.time())
            if old is not None:
                self._follow_links(old["ref"], record)
        if new and old is not None and old["ref"] in self._state.private:
            self._state.remember(record.id, False)

    def symlink(
        self, parent: Node, name: str, target: str, owner: tuple[int, int] | None = None
    ) -> Node:
        """Make a symlink ``name`` -> ``target`` (one transaction) owned by ``owner``: a
        new item keeping the target, with the empty blob as its bytes."""
        check_new_name(name)
        link_text(target)
        if parent.role == Role.FILE:
            raise NotADirectory("not a folder")
        folder = place_of(parent)
        posix = self._new_posix(folder, 0o777, owner)._replace(mode=None, link=target)
        return self._bytesless(folder, name, posix.text(), "make a symlink")

    def make_special(
        self, parent: Node, name: str, mode: int, rdev: int, owner: tuple[int, int] | None
    ) -> Node:
        """Make a fifo, socket or device file (``mknod``, one transaction): an item
        keeping its type and device number, the empty blob as its bytes."""
        check_new_name(name)
        if parent.role == Role.FILE:
            raise NotADirectory("not a folder")
        folder = place_of(parent)
        kind = special(mode, rdev)
        posix = self._new_posix(folder, mode, owner)._replace(kind=kind.kind, rdev=kind.rdev)
        return self._bytesless(folder, name, posix.text(), "make a special file")

    def _bytesless(self, folder: Place, name: str, posix: str, what: str) -> Node:
        """Put a new item with no bytes (a symlink, a special file) at ``name``."""
        store = self._store()
        if not store.has(EMPTY_BLOB):
            with store.batch() as batch:
                batch.add_bytes(b"")
        pending = self._open.get(self._places.existing(folder, name))
        with self._state.write(what) as draft:
            tree = self._places.mutable_dir(folder, draft)
            if (pending is not None and not pending.committed) or self.db.entry(
                tree, name
            ) is not None:
                raise AlreadyExists(f"already exists: {name}")
            record = ItemRecord.new(EMPTY_BLOB, 0, time.time(), posix=posix)
            self.db.blobs_put([(EMPTY_BLOB, 0, store.url)])
            draft.put_item(tree, name, record)
            draft.touch(tree)
            row = self.db.entry(tree, name)
            assert row is not None
        self._state.remember(record.id, False)
        return self._node(folder, row)

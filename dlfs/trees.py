"""Folder trees: copy-on-write editing of a draft, and freezing it at publish.

A published version's root is an immutable, content-addressed tree. A draft starts with
the same root (so a child version costs O(1)); the first change to a folder copies that
one folder into a *mutable tree* (id ``~...``) owned by the draft, and the copies run
up the path to the root. Untouched folders stay shared. :func:`freeze` hashes the
mutable folders bottom-up into content ids: publish costs O(changed folders).

Paths here are lists of validated names (see :func:`dlfs.names.split_path`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from dlfs.catalog import CatalogDB, Row
from dlfs.errors import AlreadyExists, InvalidInput, IsADirectory, NotADirectory, NotFound
from dlfs.items import ItemRecord
from dlfs.names import join_path
from dlfs.objects import DIR, EMPTY_TREE, FILE, is_mutable, new_mutable_tree_id, tree_id


def ensure_empty_tree(db: CatalogDB) -> str:
    """Record the empty tree (every dataset starts with it) and return its id."""
    db.tree_register(EMPTY_TREE, 0, 0)
    return EMPTY_TREE


def resolve(db: CatalogDB, root: str, parts: list[str]) -> Row | None:
    """The entry at ``parts`` under ``root`` (None for the root itself).

    Raises :class:`NotFound` when a part is missing and :class:`NotADirectory` when a
    file stands where a folder should be.
    """
    tree = root
    entry: Row | None = None
    for i, part in enumerate(parts):
        entry = db.entry(tree, part)
        if entry is None:
            raise NotFound(f"no such file or folder: {join_path(parts[: i + 1])}")
        if i < len(parts) - 1:
            if entry["kind"] != DIR:
                raise NotADirectory(f"not a folder: {join_path(parts[: i + 1])}")
            tree = entry["ref"]
    return entry


def resolve_dir(db: CatalogDB, root: str, parts: list[str]) -> str:
    """The tree id of the folder at ``parts`` under ``root``."""
    entry = resolve(db, root, parts)
    if entry is None:
        return root
    if entry["kind"] != DIR:
        raise NotADirectory(f"not a folder: {join_path(parts)}")
    return str(entry["ref"])


def totals(db: CatalogDB, tree: str) -> tuple[int, int]:
    """``(files, bytes)`` under a tree: O(1) for immutable trees."""
    known = None if is_mutable(tree) else db.tree_totals(tree)
    return known if known is not None else db.subtree_totals(tree)


@dataclass
class DraftTree:
    """Copy-on-write editing of the tree of one draft version.

    Every method runs inside the caller's transaction; ``root`` is kept in step with
    the version row.
    """

    db: CatalogDB
    version: str
    root: str

    # -- copy-on-write ------------------------------------------------------------

    def _own(self, tree: str) -> str:
        """A mutable copy of ``tree`` owned by this draft (``tree`` itself if it is)."""
        if is_mutable(tree):
            return tree
        copy = new_mutable_tree_id()
        self.db.tree_copy(tree, copy)
        self.db.tree_register(copy, None, None, self.version, self.db.tree_attrs(tree))
        return copy

    def _new_folder(self, posix: str = "") -> str:
        """A new empty mutable folder with attributes ``posix``, made now."""
        now = time.time()
        child = new_mutable_tree_id()
        self.db.tree_register(child, None, None, self.version, (posix, now, now))
        return child

    def touch(self, folder: str, ctime_only: bool = False) -> None:
        """A mutable folder's entries (or, with ``ctime_only``, its attributes or
        place) changed: its ctime, and its mtime unless ``ctime_only``, become now."""
        now = time.time()
        self.db.tree_set_attrs(folder, mtime=None if ctime_only else now, ctime=now)

    def set_folder_attrs(
        self,
        folder: str,
        posix: str | None = None,
        mtime: float | None = None,
        atime: float | None = None,
    ) -> None:
        """Give mutable folder ``folder`` new attributes (None keeps them); its ctime
        becomes now."""
        self.db.tree_set_attrs(folder, posix, mtime, time.time(), atime)

    def mutable_root(self) -> str:
        """The draft's root as a mutable tree."""
        if not is_mutable(self.root):
            self.root = self._own(self.root)
            self.db.version_update(self.version, root=self.root)
        return self.root

    def mutable_dir(self, parts: list[str], create: bool = False) -> str:
        """The mutable tree of the folder at ``parts``, copying folders on the way.

        With ``create``, missing folders are made (``mkdir -p``).
        """
        tree = self.mutable_root()
        for i, part in enumerate(parts):
            entry = self.db.entry(tree, part)
            if entry is None:
                if not create:
                    raise NotFound(f"no such folder: {join_path(parts[: i + 1])}")
                child = self._new_folder()
                self.db.entries_put(tree, [(part, DIR, child, 0)])
                self.touch(tree)
            elif entry["kind"] != DIR:
                raise NotADirectory(f"not a folder: {join_path(parts[: i + 1])}")
            else:
                child = self._own(entry["ref"])
                if child != entry["ref"]:
                    self.db.entries_put(tree, [(part, DIR, child, 0)])
            tree = child
        return tree

    def _drop(self, kind: int, ref: str) -> None:
        """Delete the mutable trees under an entry that is being removed."""
        if kind != DIR or not is_mutable(ref):
            return
        for _name, k, r, _size in self.db.raw_entries(ref):
            self._drop(k, r)
        self.db.tree_delete(ref)

    def _clone_entry(self, kind: int, ref: str) -> str:
        """A reference that can live at a second place: mutable trees are deep-copied."""
        if kind != DIR or not is_mutable(ref):
            return ref
        copy = new_mutable_tree_id()
        self.db.tree_register(copy, None, None, self.version, self.db.tree_attrs(ref))
        self.db.entries_put(
            copy, [(n, k, self._clone_entry(k, r), s) for n, k, r, s in self.db.raw_entries(ref)]
        )
        return copy

    # -- operations -----------------------------------------------------------------

    def mkdir(self, parts: list[str], parents: bool = False, posix: str = "") -> None:
        """Make a folder with attributes ``posix``; with ``parents``, make missing ones
        and accept an existing one."""
        try:
            existing = resolve(self.db, self.root, parts)
        except NotFound:
            existing = None
            if not parents:
                resolve_dir(self.db, self.root, parts[:-1])  # the parent must exist
        if existing is not None or not parts:
            if parents and (existing is None or existing["kind"] == DIR):
                return
            raise AlreadyExists(f"already exists: {join_path(parts)}")
        parent = self.mutable_dir(parts[:-1], create=parents)
        child = self._new_folder(posix)
        self.db.entries_put(parent, [(parts[-1], DIR, child, 0)])
        self.touch(parent)

    def put_files(self, folder: list[str], files: list[tuple[str, str, int]]) -> None:
        """Put ``(name, item id, size)`` files into a folder (made if missing)."""
        tree = self.mutable_dir(folder, create=True)
        self.db.entries_put(tree, [(name, FILE, item, size) for name, item, size in files])
        self.touch(tree)

    def remove(self, parts: list[str], recursive: bool = False) -> None:
        """Remove a file, or a folder with ``recursive`` (or when it is empty)."""
        if not parts:
            raise InvalidInput("refusing to remove the root folder")
        entry = resolve(self.db, self.root, parts)
        assert entry is not None
        if entry["kind"] == DIR and not recursive and self.db.entry_count(entry["ref"]):
            raise IsADirectory(f"is a folder (use -r): {join_path(parts)}")
        parent = self.mutable_dir(parts[:-1])
        self._drop(entry["kind"], entry["ref"])
        self.db.entry_delete(parent, parts[-1])
        self.touch(parent)

    def move(self, src: list[str], dst: list[str], replace: bool = False) -> None:
        """Move a file or folder to ``dst`` (a full new path).

        An existing ``dst`` file is replaced when ``replace``; a folder is never
        replaced, and a folder cannot move into itself.
        """
        if not src:
            raise InvalidInput("cannot move the root folder")
        if not dst:
            raise InvalidInput("cannot replace the root folder")
        if dst[: len(src)] == src:
            raise InvalidInput(f"cannot move {join_path(src)} into itself")
        entry = resolve(self.db, self.root, src)
        assert entry is not None
        target = self._check_target(dst, replace)
        src_parent = self.mutable_dir(src[:-1])
        self.db.entry_delete(src_parent, src[-1])
        dst_parent = self.mutable_dir(dst[:-1])
        if target is not None:
            self._drop(target["kind"], target["ref"])
        if entry["kind"] == DIR and is_mutable(entry["ref"]):
            self.touch(entry["ref"], ctime_only=True)  # not worth copying a shared folder
        self.db.entries_put(dst_parent, [(dst[-1], entry["kind"], entry["ref"], entry["size"])])
        self.touch(src_parent)
        self.touch(dst_parent)

    def copy(self, src: list[str], dst: list[str], replace: bool = False) -> None:
        """Copy a file or folder to ``dst`` as pointers: no bytes are copied."""
        if not src:
            raise InvalidInput("cannot copy the root folder; use dlfs clone")
        if dst[: len(src)] == src:
            raise InvalidInput(f"cannot copy {join_path(src)} into itself")
        entry = resolve(self.db, self.root, src)
        assert entry is not None
        target = self._check_target(dst, replace)
        ref = self._clone_entry(entry["kind"], entry["ref"])
        dst_parent = self.mutable_dir(dst[:-1])
        if target is not None:
            self._drop(target["kind"], target["ref"])
        self.db.entries_put(dst_parent, [(dst[-1], entry["kind"], ref, entry["size"])])
        self.touch(dst_parent)

    def _check_target(self, dst: list[str], replace: bool) -> Row | None:
        parent = resolve_dir(self.db, self.root, dst[:-1])
        target = self.db.entry(parent, dst[-1])
        if target is None:
            return None
        if target["kind"] == DIR:
            raise AlreadyExists(f"a folder already exists at {join_path(dst)}")
        if not replace:
            raise AlreadyExists(f"already exists: {join_path(dst)}")
        return target

    def set_file(self, parts: list[str], item: str, size: int) -> None:
        """Point the file at ``parts`` at another item (its folder must exist)."""
        parent = self.mutable_dir(parts[:-1])
        self.db.entries_put(parent, [(parts[-1], FILE, item, size)])

    # -- the rules of changing a file ---------------------------------------------
    # ``folder`` is a mutable tree of this draft (from :meth:`mutable_dir`).

    def put_item(self, folder: str, name: str, record: ItemRecord) -> bool:
        """Make file ``name`` of ``folder`` the item ``record`` (its row is inserted
        once); True when the item row is new."""
        new = self.db.item_insert(record.row())
        self.db.entries_put(folder, [(name, FILE, record.id, record.size)])
        return new

    def unlink(self, folder: str, name: str) -> None:
        """Remove file ``name`` of ``folder`` (its item stays, for other versions)."""
        self.db.entry_delete(folder, name)
        self.touch(folder)

    def set_mtime(self, item: str, mtime: float) -> None:
        """Change the mtime kept beside an item this draft created (not part of its
        id: the item stays the same)."""
        self.db.item_set_mtime(item, mtime)

    def clear(self, parts: list[str]) -> ItemRecord | None:
        """Remove what stands at ``parts`` (a file, or a folder the caller found empty)
        to make room for a move; return the removed file's item (None for a folder)."""
        entry = self.db.entry(resolve_dir(self.db, self.root, parts[:-1]), parts[-1])
        if entry is None:
            return None
        row = self.db.item_get(entry["ref"]) if entry["kind"] != DIR else None
        self.remove(parts)
        return None if row is None else ItemRecord.from_row(row)

    def move_saving(
        self, src: list[str], dst: list[str], donor: ItemRecord | None
    ) -> ItemRecord | None:
        """Move ``src`` to a free ``dst``. With ``donor`` (the file a newborn file
        replaced: how editors and ``rsync`` save, writing a new file and renaming it
        over the old one), the moved file takes the donor's lineage, metadata and
        annotations; returns that new record when its item row is new."""
        self.move(src, dst)
        if donor is None:
            return None
        entry = resolve(self.db, self.root, dst)
        assert entry is not None
        mine = self.db.item_get(entry["ref"])
        assert mine is not None
        record = ItemRecord.from_row(mine).lineage_of(donor)
        return record if self.put_item(self.mutable_dir(dst[:-1]), dst[-1], record) else None

    def relabel(
        self,
        folder: str,
        name: str,
        metadata: str | None = None,
        annotations: str | None = None,
        posix: str | None = None,
    ) -> tuple[ItemRecord, bool]:
        """Give file ``name`` of ``folder`` new metadata, annotations and/or POSIX
        attributes (canonical JSON; None keeps them): a new item with the same origin,
        blob and size. Returns the new record and whether its row is new."""
        row = self.db.entry(folder, name)
        if row is None:
            raise NotFound(f"no such file: {name}")
        if row["kind"] == DIR:
            raise IsADirectory(f"is a folder: {name}")
        old = self.db.item_get(row["ref"])
        assert old is not None
        record = ItemRecord.from_row(old).relabelled(metadata, annotations, posix)
        return record, self.put_item(folder, name, record)

    def record_write(
        self,
        folder: str,
        name: str,
        content: tuple[str, int, float],
        store: str,
        inherit: ItemRecord | None = None,
        posix: str = "",
    ) -> tuple[ItemRecord, bool, bool]:
        """Record new bytes ``(blob, size, mtime)`` of store ``store`` as file ``name``
        of ``folder``: the file there keeps its lineage, metadata and annotations; a
        new file takes those of ``inherit`` (the file it replaced by a rename) or a
        fresh lineage and the POSIX attributes ``posix`` (its mode at creation). Returns
        the record, whether its row is new, and whether it is a newborn (fresh lineage,
        no metadata)."""
        row = self.db.entry(folder, name)
        if row is not None and row["kind"] == DIR:
            raise IsADirectory(f"a folder now stands at {name!r}")
        old = self.db.item_get(row["ref"]) if row is not None else None
        if old is not None:
            record, newborn = ItemRecord.from_row(old).rewritten(*content), False
        elif inherit is not None:
            record, newborn = inherit.rewritten(*content), False
        else:
            record, newborn = ItemRecord.new(*content, posix=posix), True
        if row is None:
            self.touch(folder)
        return record, self.db.file_record(folder, name, record.row(), store), newborn


def freeze(db: CatalogDB, tree: str) -> tuple[str, int, int]:
    """Replace a draft's mutable trees under ``tree`` by content ids, bottom-up.

    Returns ``(tree id, files, bytes)``. Only mutable folders are visited, so the cost
    is O(changed folders), whatever the size of the version.
    """
    if not is_mutable(tree):
        files, nbytes = totals(db, tree)
        return tree, files, nbytes
    entries = db.raw_entries(tree)
    known = db.child_totals(tree)
    files = nbytes = 0
    final: list[tuple[str, int, str]] = []
    for name, kind, ref, size in entries:
        if kind == DIR:
            child, f, b = (ref, *known[ref]) if ref in known else freeze(db, ref)
            if child != ref:
                db.entries_put(tree, [(name, DIR, child, 0)])
            files += f
            nbytes += b
            final.append((name, DIR, child))
        else:
            files += 1
            nbytes += size
            final.append((name, kind, ref))
    content = tree_id(final, db.tree_attrs(tree)[0])
    db.tree_promote(tree, content, files, nbytes)
    return content, files, nbytes


def build_tree(
    db: CatalogDB,
    entries: list[tuple[str, int, str, int]],
    attrs: tuple[str, float | None, float | None] = ("", None, None),
) -> str:
    """Store an immutable folder from ``(name, kind, ref, size)`` entries whose
    sub-folders are already immutable, with its own ``(posix, mtime, ctime)``; return
    its id."""
    content = tree_id([(n, k, r) for n, k, r, _s in entries], attrs[0])
    if not db.tree_exists(content):
        files = nbytes = 0
        for _n, k, r, s in entries:
            if k == DIR:
                f, b = totals(db, r)
                files += f
                nbytes += b
            else:
                files += 1
                nbytes += s
        db.entries_put(content, entries)
        db.tree_register(content, files, nbytes, attrs=attrs)
    return content

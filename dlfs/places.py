"""Where the entries of a draft mounted read-write are: places, which follow renames.

The kernel names files by inode, and a folder's tree id is no stable name for it (the
first change copies a shared folder into a mutable one, with a new id), nor is its
path (a rename moves it). So every node a draft view hands out carries a
:class:`Place`: its folder's place and its name. Places are unique per location (an
index keyed by ``(parent place, name)``), a rename re-points the moved place, and an
unlink or rmdir detaches it: an inode keeps naming its entry, and open files follow
their file.

A folder place caches its tree id; a cached *mutable* id is trusted (it stays the
same until publish), an immutable one is re-checked from the parent. The cache is
valid for one *epoch*: :meth:`PlaceIndex.invalidate` starts a new one (another process
committed, a transaction rolled back, a folder moved).
"""

from __future__ import annotations

import weakref

from dlfs import trees
from dlfs.catalog import CatalogDB, Row
from dlfs.errors import InvalidInput, NotADirectory, NotFound
from dlfs.objects import DIR, is_mutable


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


class PlaceIndex:
    """The places of one draft, and the draft's tree as seen through them.

    ``root_tree`` is the draft's current root tree id, kept in step with every change
    made through :meth:`draft_tree` (callers write it back with :meth:`follow`).
    """

    def __init__(self, db: CatalogDB, draft: str, root_tree: str) -> None:
        self.db = db
        self.draft = draft
        self.root = Place(None, "")
        self.root_tree = root_tree
        self.epoch = 0
        self._places: weakref.WeakValueDictionary[tuple[int, str], Place] = (
            weakref.WeakValueDictionary()
        )

    def invalidate(self) -> None:
        """Forget every cached folder tree id."""
        self.epoch += 1

    # -- the index --------------------------------------------------------------------

    def get(self, parent: Place, name: str) -> Place:
        """The place of ``name`` in folder ``parent`` (made if nothing refers to it)."""
        key = (id(parent), name)
        place = self._places.get(key)
        if place is None:
            place = self._places[key] = Place(parent, name)
        return place

    def existing(self, parent: Place, name: str) -> Place | None:
        """The place of ``name`` in ``parent`` when something refers to it."""
        return self._places.get((id(parent), name))

    def detach(self, place: Place) -> None:
        """The entry is gone: its place names nothing (open files keep it)."""
        if place.parent is not None:
            key = (id(place.parent), place.name)
            if self._places.get(key) is place:
                del self._places[key]
        place.parent = None

    def move(self, place: Place, parent: Place, name: str) -> None:
        """The entry moved (rename): its place follows."""
        self.detach(place)
        place.parent, place.name = parent, name
        self._places[(id(parent), name)] = place

    def parts(self, place: Place) -> list[str]:
        """The path of a place, as parts; :class:`NotFound` once it was removed."""
        parts: list[str] = []
        while place is not self.root:
            if place.parent is None:
                raise NotFound(f"{place.name!r} was removed")
            parts.append(place.name)
            place = place.parent
        return parts[::-1]

    def check_not_inside(self, folder: Place, name: str, target: Place) -> None:
        """:class:`InvalidInput` when ``target`` is folder ``name`` of ``folder`` or
        inside it (a folder cannot move into itself)."""
        place: Place | None = target
        while place is not None and place is not self.root:
            if place.parent is folder and place.name == name:
                raise InvalidInput(f"cannot move folder {name!r} into itself")
            place = place.parent

    # -- the tree through places ------------------------------------------------------

    def dir_tree(self, place: Place) -> str:
        """The current tree id of a folder place (for reading)."""
        if place is self.root:
            return self.root_tree
        if place.parent is None:
            raise NotFound(f"folder {place.name!r} was removed")
        if place.epoch == self.epoch and is_mutable(place.tree):
            return place.tree
        parent = self.dir_tree(place.parent)
        row = self.db.entry(parent, place.name)
        if row is None:
            raise NotFound(f"no such folder: {place.name}")
        if row["kind"] != DIR:
            raise NotADirectory(f"not a folder: {place.name}")
        place.tree, place.epoch = row["ref"], self.epoch
        return place.tree

    def mutable_dir(self, place: Place, draft: trees.DraftTree) -> str:
        """The folder's mutable tree, copying it (and up to the root) on first change,
        through ``draft`` (the edit's :meth:`draft_tree`, inside its transaction)."""
        cached = place.epoch == self.epoch and is_mutable(place.tree)
        if cached and place is not self.root and place.parent is not None:
            return place.tree
        tree = draft.mutable_dir(self.parts(place))
        self.follow(draft)
        if place is not self.root:
            place.tree, place.epoch = tree, self.epoch
        return tree

    def draft_tree(self) -> trees.DraftTree:
        """The draft's tree for one edit (inside a write transaction); :meth:`follow`
        takes the root it leaves."""
        return trees.DraftTree(self.db, self.draft, self.root_tree)

    def follow(self, draft: trees.DraftTree) -> None:
        """Take the root an edit left (the first change copies the root)."""
        self.root_tree = draft.root

    def entry(self, place: Place) -> Row | None:
        """The catalog entry at a place (None: nothing there)."""
        if place.parent is None:
            raise NotFound(f"{place.name!r} was removed")
        return self.db.entry(self.dir_tree(place.parent), place.name)

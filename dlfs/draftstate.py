"""What a draft mounted read-write knows of its draft, and the transactions of its edits.

Other processes may commit to the catalog at any moment (``dlfs add``, ``dlfs
publish``...): :meth:`DraftState.sync` notices it (``PRAGMA data_version``) and drops
every cache. After a publish the mount follows the draft to the version it became and
serves it read-only (:meth:`DraftState.check_writable` then refuses writes with
:class:`ReadOnly`); a deleted draft refuses them with :class:`NotFound`.

Items this mount created are remembered (:meth:`DraftState.remember`): their mtime is
the mount's to set, and a *newborn* one (fresh lineage, no metadata) takes the lineage
of a file it replaces by a rename (see :meth:`dlfs.trees.DraftTree.move`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator

from dlfs import trees
from dlfs.catalog import CatalogDB, Row
from dlfs.draftlock import MountLock
from dlfs.errors import NotFound, ReadOnly
from dlfs.places import PlaceIndex

log = logging.getLogger(__name__)

REMEMBERED_ITEMS = 1_000_000
"""At most this many items written here are remembered (for mtimes and lineage)."""


class DraftState:
    """The draft behind one writable mount: is it still a draft, and what did the
    mount write. ``on_change`` is called whenever cached answers may be stale."""

    def __init__(
        self,
        db: CatalogDB,
        draft: str,
        places: PlaceIndex,
        lock: MountLock,
        on_change: Callable[[], None],
    ) -> None:
        self.db = db
        self.draft = draft
        self.places = places
        self._lock = lock
        self._on_change = on_change
        self._data_version = db.data_version()
        self.published: Row | None = None
        """The version the draft became, once this mount noticed its publish."""
        self.gone = False
        """The draft was deleted."""
        self.private: set[str] = set()
        """Items this mount created: their mtime is ours to set."""
        self.newborn: set[str] = set()
        """Items created here with a new origin and no metadata."""

    def sync(self) -> None:
        """Drop every cache if another process committed to the catalog."""
        current = self.db.data_version()
        if current != self._data_version:
            self._data_version = current
            self.invalidate()

    def invalidate(self) -> None:
        """Drop every cache, and find out what became of the draft."""
        self.places.invalidate()
        self._on_change()
        if self.published is not None:
            return
        row = self.db.version_get(self.draft)
        if row is not None and row["state"] == "draft":
            self.places.root_tree = row["root"]
            return
        new = self._lock.published_as()
        published = self.db.version_get(new) if new else None
        if published is not None:
            self.published = published
            self.places.root_tree = published["root"]
            log.info("draft %s was published as %s: serving it read-only", self.draft, new)
        else:
            self.gone = True

    def check_writable(self, what: str) -> None:
        """Raise unless the draft may still be written (:class:`ReadOnly` once
        published, :class:`NotFound` once deleted)."""
        if self.published is not None:
            tags = ", ".join(self.db.tags_of_version(self.published["id"]))
            raise ReadOnly(
                f"cannot {what}: draft {self.draft} was published as"
                f" {self.published['id']} ({tags}); this mount now shows that version"
                " read-only: mount a new draft to keep editing"
            )
        if self.gone:
            raise NotFound(f"cannot {what}: draft {self.draft} was deleted")

    def writable_now(self, what: str) -> None:
        """:meth:`check_writable` after a :meth:`sync` (for the first writer, once it
        holds the writers lock: a publish may have ended while it waited)."""
        self.sync()
        self.check_writable(what)

    @contextlib.contextmanager
    def write(self, what: str) -> Iterator[trees.DraftTree]:
        """One catalog transaction of an edit, with the draft's tree to edit; caches
        are dropped if it rolls back."""
        try:
            with self.db.transaction():
                self.writable_now(what)
                draft = self.places.draft_tree()
                yield draft
                self.places.follow(draft)
        except BaseException:
            self.invalidate()
            raise
        self._on_change()

    def remember(self, item: str, newborn: bool) -> None:
        """An item this mount created (``newborn``: fresh lineage, no metadata)."""
        if len(self.private) >= REMEMBERED_ITEMS:
            self.private.clear()
            self.newborn.clear()
        self.private.add(item)
        if newborn:
            self.newborn.add(item)

"""Queries on items, blobs and the bucket objects that linked blobs stand for."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from dlfs.catalog.database import CatalogCore, Row

ItemRecord = tuple[str, str, str, int, float, str, str, str]
"""An ``items`` row as written: ``(id, origin, blob, size, mtime, metadata, annotations,
posix)``."""


class ItemQueries(CatalogCore):
    """Rows of ``items``, ``blobs`` and ``external_objects``."""

    # -- items ------------------------------------------------------------------

    def items_put(self, items: Iterable[ItemRecord]) -> None:
        """Insert ``(id, origin, blob, size, mtime, metadata, annotations, posix)`` rows once."""
        self._many(
            "INSERT OR IGNORE INTO items(id, origin, blob, size, mtime, metadata, annotations,"
            " posix) VALUES (?,?,?,?,?,?,?,?)",
            items,
        )

    def item_insert(self, item: ItemRecord) -> bool:
        """Insert one ``(id, origin, blob, size, mtime, metadata, annotations)`` item
        unless it exists; True when the row is new."""
        cur = self._run(
            "INSERT OR IGNORE INTO items(id, origin, blob, size, mtime, metadata, annotations,"
            " posix) VALUES (?,?,?,?,?,?,?,?)",
            item,
        )
        return cur.rowcount == 1

    def item_get(self, item: str) -> Row | None:
        """The item row with id ``item``, or None."""
        return self._one("SELECT * FROM items WHERE id = ?", (item,))

    def items_by_ids(self, ids: Sequence[str]) -> dict[str, Row]:
        """The item rows with these ids, by id (missing ids are left out)."""
        return self._rows_by_id("SELECT * FROM items", ids)

    def item_set_mtime(self, item: str, mtime: float) -> None:
        """Change the mtime kept beside an item (not part of its id)."""
        self._run("UPDATE items SET mtime = ? WHERE id = ?", (mtime, item))

    def item_set_times(
        self, item: str, ctime: float | None = None, atime: float | None = None
    ) -> None:
        """Change the ctime and/or atime kept beside an item (None keeps that one;
        NULL in the row reads as the mtime)."""
        self._run(
            "UPDATE items SET ctime = coalesce(?, ctime), atime = coalesce(?, atime) WHERE id = ?",
            (ctime, atime, item),
        )

    def items_stage(self, items: Iterable[ItemRecord]) -> None:
        """Queue item rows (as :meth:`items_put` takes them) in a temporary table.

        :meth:`items_unstage` then writes them in key order: item ids are hashes, so
        inserting many at random would rewrite B-tree pages over and over once the
        table outgrows the page cache; in key order each page is written once.
        """
        self._run(
            "CREATE TEMP TABLE IF NOT EXISTS items_stage(id TEXT, origin TEXT, blob TEXT,"
            " size INTEGER, mtime REAL, metadata TEXT, annotations TEXT, posix TEXT)"
        )
        self._many("INSERT INTO items_stage VALUES (?,?,?,?,?,?,?,?)", items)

    def items_unstage(self) -> None:
        """Write the rows queued by :meth:`items_stage` into ``items``, in key order."""
        if self._one("SELECT 1 FROM temp.sqlite_master WHERE name = 'items_stage'") is None:
            return
        self._run(
            "INSERT OR IGNORE INTO items(id, origin, blob, size, mtime, metadata, annotations,"
            " posix) SELECT id, origin, blob, size, mtime, metadata, annotations, posix"
            " FROM items_stage"
            " ORDER BY id"
        )
        self._run("DROP TABLE items_stage")

    def file_record(
        self,
        tree: str,
        name: str,
        item: ItemRecord,
        store: str,
    ) -> bool:
        """Record a file written through a mount: its item ``(id, origin, blob, size,
        mtime, metadata, annotations)`` (once), its blob, and the entry ``name`` of
        folder ``tree``. True when the item row is new."""
        iid, _origin, blob, size = item[:4]
        new = self.item_insert(item)
        self._run(
            "INSERT OR IGNORE INTO blobs(id, size, store) VALUES (?,?,?)", (blob, size, store)
        )
        self._run(
            "INSERT OR REPLACE INTO tree_entries(tree, name, kind, ref, size) VALUES (?,?,0,?,?)",
            (tree, name, iid, size),
        )
        return new

    # -- blobs ------------------------------------------------------------------

    def blobs_put(self, blobs: Iterable[tuple[str, int, str]]) -> None:
        """Record ``(id, size, store)`` blobs once."""
        self._many("INSERT OR IGNORE INTO blobs(id, size, store) VALUES (?,?,?)", blobs)

    def blob_size(self, blob: str) -> int | None:
        """The recorded size of a blob, or None when the catalog does not know it."""
        row = self._one("SELECT size FROM blobs WHERE id = ?", (blob,))
        return None if row is None else int(row[0])

    def blobs_by_ids(self, ids: Sequence[str]) -> dict[str, Row]:
        """The blob rows (id, size, store) with these ids, by id."""
        return self._rows_by_id("SELECT id, size, store FROM blobs", ids)

    def blobs_all(self) -> list[Row]:
        """Every recorded blob: rows (id, size, store)."""
        return self._all("SELECT id, size, store FROM blobs ORDER BY id")

    def blob_totals(self) -> tuple[int, int]:
        """``(blobs, bytes)`` recorded in the catalog, counted with one query."""
        row = self._one("SELECT count(*), coalesce(sum(size), 0) FROM blobs")
        assert row is not None
        return int(row[0]), int(row[1])

    def blob_in_use(self, blob: str) -> bool:
        """True when a file entry of any tree (a version's, a draft's, or one not yet
        swept) names an item with this blob: the blob must be kept."""
        row = self._one(
            "SELECT 1 FROM items i WHERE i.blob = ? AND EXISTS"
            " (SELECT 1 FROM tree_entries e WHERE e.ref = i.id AND e.kind = 0) LIMIT 1",
            (blob,),
        )
        return row is not None

    def blob_entries(self, blob: str, limit: int = 2) -> list[tuple[str, str]]:
        """Up to ``limit`` ``(tree, name)`` file entries naming an item with this blob."""
        rows = self._all(
            "SELECT e.tree, e.name FROM items i JOIN tree_entries e ON e.ref = i.id"
            " AND e.kind = 0 WHERE i.blob = ? LIMIT ?",
            (blob, limit),
        )
        return [(r[0], r[1]) for r in rows]

    def blob_recorded(self, blob: str) -> bool:
        """True when the catalog has a row for this blob."""
        return self._one("SELECT 1 FROM blobs WHERE id = ?", (blob,)) is not None

    def blob_delete(self, blob: str) -> None:
        """Forget a blob."""
        self._run("DELETE FROM blobs WHERE id = ?", (blob,))

    # -- objects of linked buckets ----------------------------------------------

    def external_put(
        self, rows: Iterable[tuple[str, str, str, str, str | None, int, float]]
    ) -> None:
        """Record ``(blob, bucket, key, etag, version_id, size, mtime)`` linked objects."""
        self._many(
            "INSERT OR IGNORE INTO external_objects(blob, bucket, key, etag, version_id,"
            " size, mtime) VALUES (?,?,?,?,?,?,?)",
            rows,
        )

    def external_get(self, blob: str) -> Row | None:
        """The linked object a blob id stands for, or None."""
        return self._one("SELECT * FROM external_objects WHERE blob = ?", (blob,))

    def externals_by_blobs(self, blobs: Sequence[str]) -> dict[str, Row]:
        """The linked-object rows of these blob ids, by blob id (others left out)."""
        return self._rows_by_id("SELECT * FROM external_objects", blobs, column="blob")

"""Queries on folders: entries of one tree, trees and their totals, whole subtrees.

``tree_entries`` is ``WITHOUT ROWID`` with primary key ``(tree, name)``, so
:meth:`TreeQueries.entry` is one index probe and :meth:`TreeQueries.entries_after`
one index range: the daemon asks them per request. A tree id starting with ``~`` is
a draft's mutable folder (``trees.draft`` names its owner).
"""

from __future__ import annotations

from collections.abc import Iterable

from dlfs.catalog.database import CatalogCore, Row

_ITEM_COLS = (
    "i.blob AS blob, coalesce(i.mtime, t.mtime) AS mtime, i.origin AS origin,"
    " coalesce(i.posix, t.posix) AS posix, coalesce(i.ctime, t.ctime) AS ctime,"
    " coalesce(i.atime, t.atime) AS atime,"
    " CASE WHEN e.kind = 1 THEN (SELECT count(*) FROM tree_entries s"
    " WHERE s.tree = e.ref AND s.kind = 1) END AS folders"
)
_JOINS = (
    " LEFT JOIN items i ON e.kind = 0 AND i.id = e.ref"
    " LEFT JOIN trees t ON e.kind = 1 AND t.id = e.ref"
)


class TreeQueries(CatalogCore):
    """Rows of ``tree_entries`` and ``trees``."""

    # -- entries of one folder --------------------------------------------------

    def entry(self, tree: str, name: str) -> Row | None:
        """One entry of a folder with its item's blob, mtime, origin and posix (files),
        or its tree's posix, mtime, ctime and number of sub-folders (folders)."""
        return self._one(
            f"SELECT e.name, e.kind, e.ref, e.size, {_ITEM_COLS} FROM tree_entries e{_JOINS}"
            " WHERE e.tree = ? AND e.name = ?",
            (tree, name),
        )

    def entries(self, tree: str) -> list[Row]:
        """The entries of a folder in name order, with item blob, mtime and origin."""
        return self._all(
            f"SELECT e.name, e.kind, e.ref, e.size, {_ITEM_COLS} FROM tree_entries e{_JOINS}"
            " WHERE e.tree = ? ORDER BY e.name",
            (tree,),
        )

    def entries_after(self, tree: str, after: str, limit: int) -> list[Row]:
        """Up to ``limit`` entries of a folder whose names sort after ``after``."""
        return self._all(
            f"SELECT e.name, e.kind, e.ref, e.size, {_ITEM_COLS} FROM tree_entries e{_JOINS}"
            " WHERE e.tree = ? AND e.name > ? ORDER BY e.name LIMIT ?",
            (tree, after, limit),
        )

    def entry_count(self, tree: str) -> int:
        """How many entries a folder has."""
        row = self._one("SELECT count(*) FROM tree_entries WHERE tree = ?", (tree,))
        return int(row[0]) if row else 0

    def raw_entries(self, tree: str) -> list[tuple[str, int, str, int]]:
        """The ``(name, kind, ref, size)`` entries of a folder, unjoined."""
        return [
            (r[0], r[1], r[2], r[3])
            for r in self._all(
                "SELECT name, kind, ref, size FROM tree_entries WHERE tree = ? ORDER BY name",
                (tree,),
            )
        ]

    def entries_with_items(self, tree: str) -> list[Row]:
        """The entries of a folder in name order, files with their whole item.

        Rows as :meth:`entries` plus the item's ``metadata`` and ``annotations``
        (NULL for folders).
        """
        return self._all(
            f"SELECT e.name, e.kind, e.ref, e.size, {_ITEM_COLS},"
            f" i.metadata AS metadata, i.annotations AS annotations FROM tree_entries e{_JOINS}"
            " WHERE e.tree = ? ORDER BY e.name",
            (tree,),
        )

    def entries_put(self, tree: str, entries: Iterable[tuple[str, int, str, int]]) -> None:
        """Insert or replace ``(name, kind, ref, size)`` entries of a folder."""
        self._many(
            "INSERT OR REPLACE INTO tree_entries(tree, name, kind, ref, size) VALUES (?,?,?,?,?)",
            [(tree, *e) for e in entries],
        )

    def entry_delete(self, tree: str, name: str) -> None:
        """Remove one entry of a folder."""
        self._run("DELETE FROM tree_entries WHERE tree = ? AND name = ?", (tree, name))

    # -- trees ------------------------------------------------------------------

    def tree_copy(self, src: str, dst: str) -> None:
        """Copy every entry of folder ``src`` into folder ``dst``."""
        self._run(
            "INSERT INTO tree_entries(tree, name, kind, ref, size)"
            " SELECT ?, name, kind, ref, size FROM tree_entries WHERE tree = ?",
            (dst, src),
        )

    def tree_exists(self, tree: str) -> bool:
        """True when the catalog knows this tree id."""
        return self._one("SELECT 1 FROM trees WHERE id = ?", (tree,)) is not None

    def tree_register(
        self,
        tree: str,
        files: int | None,
        nbytes: int | None,
        draft: str | None = None,
        attrs: tuple[str, float | None, float | None] = ("", None, None),
    ) -> None:
        """Record a tree: its totals (immutable trees) or its owning draft (mutable),
        and its own ``(posix, mtime, ctime)`` (see :meth:`tree_attrs`)."""
        self._run(
            "INSERT OR IGNORE INTO trees(id, files, bytes, draft, posix, mtime, ctime)"
            " VALUES (?,?,?,?,?,?,?)",
            (tree, files, nbytes, draft, *attrs),
        )

    def tree_attrs(self, tree: str) -> tuple[str, float | None, float | None]:
        """A folder's own ``(posix, mtime, ctime)``: its mode, owner and xattrs as
        canonical JSON (``""``: none), and its times (None: not kept)."""
        row = self._one("SELECT posix, mtime, ctime FROM trees WHERE id = ?", (tree,))
        if row is None:
            return "", None, None
        return str(row[0] or ""), row[1], row[2]

    def tree_set_attrs(
        self,
        tree: str,
        posix: str | None = None,
        mtime: float | None = None,
        ctime: float | None = None,
        atime: float | None = None,
    ) -> None:
        """Change a mutable folder's attributes (None keeps that one)."""
        self._run(
            "UPDATE trees SET posix = coalesce(?, posix), mtime = coalesce(?, mtime),"
            " ctime = coalesce(?, ctime), atime = coalesce(?, atime) WHERE id = ?",
            (posix, mtime, ctime, atime, tree),
        )

    def tree_atime(self, tree: str) -> float | None:
        """A folder's atime as ``utimensat`` set it (None: its mtime)."""
        row = self._one("SELECT atime FROM trees WHERE id = ?", (tree,))
        return None if row is None else row[0]

    def folder_count(self, tree: str) -> int:
        """How many sub-folders a folder has (its ``st_nlink`` is 2 more)."""
        row = self._one("SELECT count(*) FROM tree_entries WHERE tree = ? AND kind = 1", (tree,))
        return int(row[0]) if row else 0

    def tree_totals(self, tree: str) -> tuple[int, int] | None:
        """``(files, bytes)`` of an immutable tree, or None if not recorded."""
        row = self._one("SELECT files, bytes FROM trees WHERE id = ?", (tree,))
        if row is None or row[0] is None:
            return None
        return int(row[0]), int(row[1])

    def child_totals(self, tree: str) -> dict[str, tuple[int, int]]:
        """``{sub-folder id: (files, bytes)}`` for the immutable sub-folders of a folder,
        in one query (publish needs them for every unchanged sibling)."""
        rows = self._all(
            "SELECT e.ref, t.files, t.bytes FROM tree_entries e JOIN trees t ON t.id = e.ref"
            " WHERE e.tree = ? AND e.kind = 1 AND t.files IS NOT NULL",
            (tree,),
        )
        return {r[0]: (int(r[1]), int(r[2])) for r in rows}

    def tree_delete(self, tree: str) -> None:
        """Delete a (mutable) tree's entries and its record."""
        self._run("DELETE FROM tree_entries WHERE tree = ?", (tree,))
        self._run("DELETE FROM trees WHERE id = ?", (tree,))

    def tree_promote(self, mutable: str, content_id: str, files: int, nbytes: int) -> None:
        """Turn a mutable tree into the immutable tree ``content_id``.

        If an equal tree already exists the mutable rows are simply dropped (its times
        are the equal tree's, as an item's mtime is shared). Its attributes go with it.
        """
        if self.tree_exists(content_id):
            self.tree_delete(mutable)
            return
        attrs = self.tree_attrs(mutable)
        self._run("UPDATE tree_entries SET tree = ? WHERE tree = ?", (content_id, mutable))
        self._run("DELETE FROM trees WHERE id = ?", (mutable,))
        self.tree_register(content_id, files, nbytes, attrs=attrs)

    def draft_links(self, draft: str, item: str) -> int:
        """How many entries of a draft's mutable folders name file item ``item``."""
        row = self._one(
            "SELECT count(*) FROM tree_entries e JOIN trees t ON t.id = e.tree"
            " WHERE e.ref = ? AND e.kind = 0 AND t.draft = ?",
            (item, draft),
        )
        return int(row[0]) if row else 0

    def draft_repoint(self, draft: str, old: str, new: str, size: int) -> None:
        """Every entry of a draft's mutable folders naming item ``old`` now names
        ``new`` (of ``size`` bytes): the other names of a hard-linked file."""
        self._run(
            "UPDATE tree_entries SET ref = ?, size = ? WHERE ref = ? AND kind = 0"
            " AND tree IN (SELECT id FROM trees WHERE draft = ?)",
            (new, size, old, draft),
        )

    def draft_tree_count(self, draft: str) -> int:
        """How many mutable folders a draft has: what its publish will freeze."""
        row = self._one("SELECT count(*) FROM trees WHERE draft = ?", (draft,))
        return int(row[0]) if row else 0

    # -- whole subtrees, one recursive query each --------------------------------

    def subtree_totals(self, tree: str) -> tuple[int, int]:
        """``(files, bytes)`` under any tree, counted with one recursive query."""
        row = self._one(
            "WITH RECURSIVE t(id) AS (SELECT ? UNION ALL"
            " SELECT e.ref FROM tree_entries e JOIN t ON e.tree = t.id WHERE e.kind = 1)"
            " SELECT count(*), coalesce(sum(e.size), 0) FROM tree_entries e JOIN t"
            " ON e.tree = t.id WHERE e.kind = 0",
            (tree,),
        )
        assert row is not None
        return int(row[0]), int(row[1])

    def subtree_files(self, tree: str) -> list[Row]:
        """Every file under a tree: rows (path, ref, size, blob), in path order."""
        return self._all(
            "WITH RECURSIVE t(id, path) AS (SELECT ?, '' UNION ALL"
            " SELECT e.ref, t.path || e.name || '/' FROM tree_entries e JOIN t"
            " ON e.tree = t.id WHERE e.kind = 1)"
            " SELECT t.path || e.name AS path, e.ref AS ref, e.size AS size, i.blob AS blob"
            " FROM tree_entries e JOIN t ON e.tree = t.id JOIN items i ON i.id = e.ref"
            " WHERE e.kind = 0 ORDER BY path",
            (tree,),
        )

    def subtree_items(self, tree: str) -> list[Row]:
        """Every file and folder under a tree with one recursive query.

        Rows ``(path, kind, ref, size, origin, blob, mtime, metadata, annotations,
        posix)``
        in path order; ``path`` is relative to ``tree`` (``a/b.jpg``) and the item
        columns are NULL for folders.
        """
        return self._all(
            "WITH RECURSIVE t(id, path) AS (SELECT ?, '' UNION ALL"
            " SELECT e.ref, t.path || e.name || '/' FROM tree_entries e JOIN t"
            " ON e.tree = t.id WHERE e.kind = 1)"
            " SELECT t.path || e.name AS path, e.kind AS kind, e.ref AS ref, e.size AS size,"
            " i.origin AS origin, i.blob AS blob, i.mtime AS mtime,"
            " i.metadata AS metadata, i.annotations AS annotations, i.posix AS posix"
            " FROM tree_entries e JOIN t ON e.tree = t.id"
            " LEFT JOIN items i ON e.kind = 0 AND i.id = e.ref ORDER BY path",
            (tree,),
        )

    def subtree_ids(self, tree: str) -> list[Row]:
        """Every folder under (and including) a tree with its recorded totals:
        rows ``(id, files, bytes)``, with one recursive query."""
        return self._all(
            "WITH RECURSIVE t(id) AS (SELECT ? UNION"
            " SELECT e.ref FROM tree_entries e JOIN t ON e.tree = t.id WHERE e.kind = 1)"
            " SELECT t.id AS id, r.files AS files, r.bytes AS bytes FROM t"
            " LEFT JOIN trees r ON r.id = t.id ORDER BY t.id",
            (tree,),
        )

    # -- views (dlfs.arranged) ----------------------------------------------------

    def subtree_labels(self, tree: str) -> list[tuple[str, str | None]]:
        """``(folder, label)`` for every label of the files directly in each folder
        under (and including) ``tree``, each pair once; a folder with a file that has
        no label also gives ``(folder, None)``. One recursive query over the folders,
        the ``item_labels`` index for the files."""
        rows = self._all(
            "WITH RECURSIVE t(id) AS (SELECT ? UNION"
            " SELECT e.ref FROM tree_entries e JOIN t ON e.tree = t.id WHERE e.kind = 1)"
            " SELECT DISTINCT e.tree, l.label FROM t JOIN tree_entries e ON e.tree = t.id"
            " LEFT JOIN item_labels l ON l.item = e.ref WHERE e.kind = 0",
            (tree,),
        )
        return [(r[0], r[1]) for r in rows]

    def subtree_folders(self, tree: str) -> list[tuple[str, str]]:
        """``(parent, child)`` for every folder under ``tree``, with one recursive query."""
        rows = self._all(
            "WITH RECURSIVE t(id) AS (SELECT ? UNION"
            " SELECT e.ref FROM tree_entries e JOIN t ON e.tree = t.id WHERE e.kind = 1)"
            " SELECT e.tree, e.ref FROM t JOIN tree_entries e ON e.tree = t.id WHERE e.kind = 1",
            (tree,),
        )
        return [(r[0], r[1]) for r in rows]

    def entries_with_label(self, tree: str, label: str | None) -> list[Row]:
        """The entries of a folder (as :meth:`entries`) that are folders or files whose
        item has ``label`` (``None``: no label at all), in name order; one index range
        of the folder, one ``item_labels`` probe per file."""
        if label is None:
            test = "NOT EXISTS (SELECT 1 FROM item_labels l WHERE l.item = e.ref)"
            args: tuple[str, ...] = (tree,)
        else:
            test = "EXISTS (SELECT 1 FROM item_labels l WHERE l.item = e.ref AND l.label = ?)"
            args = (tree, label)
        return self._all(
            f"SELECT e.name, e.kind, e.ref, e.size, {_ITEM_COLS} FROM tree_entries e{_JOINS}"
            f" WHERE e.tree = ? AND (e.kind = 1 OR {test}) ORDER BY e.name",
            args,
        )

    # -- the label index of immutable folders (dlfs.labelindex) -------------------

    def tree_labelled(self, tree: str) -> bool | None:
        """Whether a file under ``tree`` has no label; None when ``tree`` is not indexed."""
        row = self._one("SELECT unlabelled FROM trees_labelled WHERE tree = ?", (tree,))
        return None if row is None else bool(row[0])

    def tree_labels(self, tree: str) -> list[str]:
        """Every label found under an indexed folder."""
        return [r[0] for r in self._all("SELECT label FROM tree_labels WHERE tree = ?", (tree,))]

    def tree_has_label(self, tree: str, label: str) -> bool:
        """True when ``label`` is found under the indexed folder ``tree`` (one probe)."""
        row = self._one("SELECT 1 FROM tree_labels WHERE tree = ? AND label = ?", (tree, label))
        return row is not None

    def child_folders(self, tree: str) -> list[str]:
        """The tree ids of a folder's sub-folders."""
        rows = self._all("SELECT ref FROM tree_entries WHERE tree = ? AND kind = 1", (tree,))
        return [r[0] for r in rows]

    def tree_label(self, tree: str) -> None:
        """Index the folder ``tree`` whose sub-folders are indexed already: its labels
        are its files' and its sub-folders'."""
        self._run(
            "INSERT OR IGNORE INTO tree_labels(tree, label)"
            " SELECT ?, l.label FROM tree_entries e JOIN item_labels l ON l.item = e.ref"
            " WHERE e.tree = ? AND e.kind = 0"
            " UNION SELECT ?, c.label FROM tree_entries e JOIN tree_labels c ON c.tree = e.ref"
            " WHERE e.tree = ? AND e.kind = 1",
            (tree, tree, tree, tree),
        )
        self._run(
            "INSERT OR REPLACE INTO trees_labelled(tree, unlabelled) SELECT ?, EXISTS ("
            " SELECT 1 FROM tree_entries e WHERE e.tree = ? AND e.kind = 0 AND NOT EXISTS"
            " (SELECT 1 FROM item_labels l WHERE l.item = e.ref)) OR EXISTS ("
            " SELECT 1 FROM tree_entries e JOIN trees_labelled c ON c.tree = e.ref"
            " WHERE e.tree = ? AND e.kind = 1 AND c.unlabelled)",
            (tree, tree, tree),
        )

    def label_entries(self, label: str) -> list[Row]:
        """Every file entry, in any folder, whose item has ``label``: rows as
        :meth:`entries` plus ``tree``; one range of the label index."""
        return self._all(
            f"SELECT e.tree, e.name, e.kind, e.ref, e.size, {_ITEM_COLS} FROM item_labels l"
            " JOIN tree_entries e ON e.ref = l.item AND e.kind = 0"
            # no folder row (t) for files: the columns read a folder's attributes from it
            " JOIN items i ON i.id = e.ref LEFT JOIN trees t ON 0 WHERE l.label = ?",
            (label,),
        )

    def label_count(self, label: str) -> int:
        """How many items have ``label`` (in any version)."""
        row = self._one("SELECT count(*) FROM item_labels WHERE label = ?", (label,))
        return int(row[0]) if row else 0

    def folders_with_label(self, tree: str, label: str | None) -> list[Row]:
        """The sub-folders of an indexed folder (rows as :meth:`entries`) under which
        ``label`` is found (``None``: a file without a label): one range of the
        ``tree_entries_folders`` index and one probe each, whatever the number of files."""
        if label is None:
            test = "JOIN trees_labelled l ON l.tree = e.ref AND l.unlabelled"
            args: tuple[str, ...] = (tree,)
        else:
            test = "JOIN tree_labels l ON l.tree = e.ref AND l.label = ?"
            args = (label, tree)
        return self._all(
            f"SELECT e.name, e.kind, e.ref, e.size, {_ITEM_COLS}"
            f" FROM tree_entries e INDEXED BY tree_entries_folders {test}{_JOINS}"
            " WHERE e.tree = ? AND e.kind = 1 ORDER BY e.name",
            args,
        )

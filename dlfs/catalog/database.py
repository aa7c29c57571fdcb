"""The SQLite catalog: schema, migrations, transactions, and every SQL statement.

All SQL in dlfs lives in this module. The layers above call named methods
(``entries(tree)``, ``version_get(id)``...) and never see a cursor.

Design:

- One file, ``catalog.db`` under the catalog home, in WAL mode with
  ``synchronous=FULL``: a committed command survives a crash or power loss, and
  readers (the daemon) never block the writer. (A writable draft mount commits each
  closed file with ``NORMAL``: see :mod:`dlfs.draftview`.)
- ``PRAGMA user_version`` holds the schema version; :data:`MIGRATIONS` lists named
  steps that bring an older file up to date, each in its own transaction.
- A command runs in one ``BEGIN IMMEDIATE`` transaction (:meth:`CatalogDB.transaction`),
  so bad input or a crash leaves the catalog exactly as before.
- ``tree_entries`` is ``WITHOUT ROWID`` with primary key ``(tree, name)``: a lookup is
  one index probe and an ordered readdir is one index range.
- A draft's changed folders are *mutable trees*: rows in ``tree_entries`` whose tree id
  starts with ``~``, owned by exactly one draft (``trees.draft``). Publishing replaces
  them by content ids; everything else is shared and immutable.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlite_utils

from dlfs.errors import Corrupt, DlfsError, Unavailable

Row = sqlite3.Row

SCHEMA_V1 = """
CREATE TABLE datasets(
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL DEFAULT 'plain',
    description TEXT NOT NULL DEFAULT '',
    labels TEXT,
    storage TEXT NOT NULL DEFAULT 'local',
    metadata TEXT NOT NULL DEFAULT '{}',
    tags TEXT NOT NULL DEFAULT '[]',
    sources TEXT NOT NULL DEFAULT '[]',
    next_auto INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL
);
CREATE TABLE versions(
    id TEXT PRIMARY KEY,
    dataset INTEGER NOT NULL REFERENCES datasets(id),
    state TEXT NOT NULL CHECK (state IN ('draft', 'published')),
    name TEXT,
    root TEXT NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{}',
    comment TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    published_at REAL,
    UNIQUE (dataset, name)
);
CREATE INDEX versions_dataset ON versions(dataset, created_at);
CREATE TABLE version_parents(
    version TEXT NOT NULL,
    pos INTEGER NOT NULL,
    parent TEXT NOT NULL,
    PRIMARY KEY (version, pos)
) WITHOUT ROWID;
CREATE INDEX version_parents_parent ON version_parents(parent);
CREATE TABLE tags(
    dataset INTEGER NOT NULL,
    tag TEXT NOT NULL,
    version TEXT NOT NULL,
    auto INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (dataset, tag)
) WITHOUT ROWID;
CREATE INDEX tags_version ON tags(version);
CREATE TABLE items(
    id TEXT PRIMARY KEY,
    origin TEXT NOT NULL,
    blob TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime REAL NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{}',
    annotations TEXT NOT NULL DEFAULT '[]'
) WITHOUT ROWID;
CREATE INDEX items_blob ON items(blob);
CREATE TABLE tree_entries(
    tree TEXT NOT NULL,
    name TEXT NOT NULL,
    kind INTEGER NOT NULL,
    ref TEXT NOT NULL,
    size INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tree, name)
) WITHOUT ROWID;
CREATE TABLE trees(
    id TEXT PRIMARY KEY,
    files INTEGER,
    bytes INTEGER,
    draft TEXT
) WITHOUT ROWID;
CREATE INDEX trees_draft ON trees(draft) WHERE draft IS NOT NULL;
CREATE TABLE blobs(
    id TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    store TEXT NOT NULL DEFAULT 'local'
) WITHOUT ROWID;
"""


def _run_script(db: sqlite_utils.Database, script: str) -> None:
    # executescript() would COMMIT the migration's transaction first; run statements one by one.
    for statement in script.split(";"):
        if statement.strip():
            db.conn.execute(statement)


def _migrate_v1(db: sqlite_utils.Database) -> None:
    _run_script(db, SCHEMA_V1)


SCHEMA_V2 = """
CREATE TABLE external_objects(
    blob TEXT PRIMARY KEY,
    bucket TEXT NOT NULL,
    key TEXT NOT NULL,
    etag TEXT NOT NULL,
    version_id TEXT,
    size INTEGER NOT NULL,
    mtime REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX external_objects_key ON external_objects(bucket, key);
CREATE TRIGGER blobs_forget_external AFTER DELETE ON blobs BEGIN
    DELETE FROM external_objects WHERE blob = old.id;
END
"""


def _migrate_v2(db: sqlite_utils.Database) -> None:
    # Linked objects: what a linked blob id stands for (dlfs.stores.linked). The
    # trigger's body holds a ';', so the script is not split on it.
    table, trigger = SCHEMA_V2.split("CREATE TRIGGER")
    _run_script(db, table)
    db.conn.execute("CREATE TRIGGER" + trigger)


# (schema version reached, name, step). Append; never edit a released step.
MIGRATIONS: list[tuple[int, str, Callable[[sqlite_utils.Database], None]]] = [
    (1, "initial schema", _migrate_v1),
    (2, "linked objects", _migrate_v2),
]
SCHEMA_VERSION = MIGRATIONS[-1][0]

_ITEM_COLS = "i.blob AS blob, i.mtime AS mtime, i.origin AS origin"


class CatalogDB:
    """One connection to a catalog file, with the queries dlfs needs.

    A ``CatalogDB`` belongs to one thread (SQLite connections are not shared); the
    daemon opens one per thread. ``readonly=True`` opens the file for reading only.
    """

    def __init__(self, path: Path, readonly: bool = False) -> None:
        self.path = path
        self.readonly = readonly
        self._depth = 0
        self._owner = threading.get_ident()
        try:
            if readonly:
                uri = f"file:{path}?mode=ro"
                conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=30)
            else:
                old = os.umask(0o077)
                try:
                    conn = sqlite3.connect(str(path), isolation_level=None, timeout=30)
                    conn.execute("PRAGMA journal_mode=WAL")
                finally:
                    os.umask(old)
        except sqlite3.Error as exc:
            raise Unavailable(f"cannot open catalog {path}: {exc}") from exc
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=OFF")
        conn.execute("PRAGMA cache_size=-65536")
        self.conn = conn
        self.db = sqlite_utils.Database(conn)
        if not readonly:
            self.migrate()

    # -- lifecycle --------------------------------------------------------------

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()

    def map_for_reading(self, nbytes: int = 1 << 30) -> None:
        """Read the file through a memory map of up to ``nbytes`` (``mmap_size``).

        A page read from a cold file then brings its neighbours in too (the kernel
        reads around a fault), so a cold walk of many folders costs far fewer disk
        requests. Meant for the daemon's read-only connection.
        """
        self.conn.execute(f"PRAGMA mmap_size={int(nbytes)}")

    def schema_version(self) -> int:
        """The ``user_version`` of the file."""
        return int(self.conn.execute("PRAGMA user_version").fetchone()[0])

    def migrate(self) -> None:
        """Bring the file to :data:`SCHEMA_VERSION`, one transaction per step."""
        current = self.schema_version()
        if current > SCHEMA_VERSION:
            raise Corrupt(
                f"catalog {self.path} has schema {current}, newer than this dlfs"
                f" ({SCHEMA_VERSION}): upgrade dlfs"
            )
        for version, _name, step in MIGRATIONS:
            if version <= current:
                continue
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                step(self.db)
                self.conn.execute(f"PRAGMA user_version={version}")
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One write transaction; nested uses join the outer one.

        Any exception rolls everything back, so the catalog is exactly as before.
        """
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise Unavailable(f"catalog {self.path} is busy: {exc}") from exc
        self._depth = 1
        try:
            yield
        except BaseException:
            self._depth = 0
            self.conn.execute("ROLLBACK")
            raise
        self._depth = 0
        try:
            self.conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self.conn.execute("ROLLBACK")
            raise DlfsError(f"cannot commit to catalog {self.path}: {exc}") from exc

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """A read transaction: every query inside sees the same committed state."""
        if self._depth:
            yield
            return
        self.conn.execute("BEGIN")
        self._depth = 1
        try:
            yield
        finally:
            self._depth = 0
            self.conn.execute("COMMIT")

    def _one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        row: Row | None = self.conn.execute(sql, params).fetchone()
        return row

    def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return self.conn.execute(sql, params).fetchall()

    def _rows_by_id(self, select: str, ids: Sequence[str], column: str = "id") -> dict[str, Row]:
        """``select ... WHERE column IN (...)`` in chunks under SQLite's variable limit,
        by that column's value."""
        out: dict[str, Row] = {}
        unique = list(dict.fromkeys(ids))
        for start in range(0, len(unique), 500):
            chunk = unique[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for row in self._all(f"{select} WHERE {column} IN ({marks})", chunk):
                out[row[column]] = row
        return out

    # -- datasets ---------------------------------------------------------------

    def dataset_insert(
        self,
        name: str,
        kind: str,
        description: str,
        labels: str | None,
        storage: str,
        metadata: str,
        tags: str,
        sources: str,
    ) -> int:
        """Insert a dataset row and return its numeric id."""
        cur = self.conn.execute(
            "INSERT INTO datasets(name, kind, description, labels, storage, metadata,"
            " tags, sources, created_at) VALUES (?,?,?,?,?,?,?,?,?)",
            (name, kind, description, labels, storage, metadata, tags, sources, time.time()),
        )
        return int(cur.lastrowid or 0)

    def dataset_by_name(self, name: str) -> Row | None:
        """The dataset row named ``name``, or None."""
        return self._one("SELECT * FROM datasets WHERE name = ?", (name,))

    def dataset_by_id(self, dataset: int) -> Row | None:
        """The dataset row with numeric id ``dataset``, or None."""
        return self._one("SELECT * FROM datasets WHERE id = ?", (dataset,))

    def datasets(self) -> list[Row]:
        """Every dataset, by name."""
        return self._all("SELECT * FROM datasets ORDER BY name")

    def dataset_names(self) -> list[str]:
        """Every dataset name, sorted."""
        return [r[0] for r in self._all("SELECT name FROM datasets ORDER BY name")]

    def dataset_update(self, dataset: int, **fields: Any) -> None:
        """Set columns of one dataset."""
        cols = ", ".join(f"{k} = ?" for k in fields)
        self.conn.execute(f"UPDATE datasets SET {cols} WHERE id = ?", (*fields.values(), dataset))

    def dataset_take_auto_tag(self, dataset: int) -> int:
        """Reserve the next ``vN`` number of a dataset."""
        row = self._one("SELECT next_auto FROM datasets WHERE id = ?", (dataset,))
        assert row is not None
        n = int(row[0])
        self.conn.execute("UPDATE datasets SET next_auto = ? WHERE id = ?", (n + 1, dataset))
        return n

    def dataset_delete(self, dataset: int) -> None:
        """Delete a dataset row and its versions, parents, tags and mutable trees."""
        for (vid,) in self._all("SELECT id FROM versions WHERE dataset = ?", (dataset,)):
            self.version_delete(vid)
        self.conn.execute("DELETE FROM tags WHERE dataset = ?", (dataset,))
        self.conn.execute("DELETE FROM datasets WHERE id = ?", (dataset,))

    # -- versions ---------------------------------------------------------------

    def version_insert(
        self,
        vid: str,
        dataset: int,
        state: str,
        name: str | None,
        root: str,
        metadata: str = "{}",
        comment: str = "",
        parents: Sequence[str] = (),
        created_at: float | None = None,
        published_at: float | None = None,
    ) -> None:
        """Insert a version and its ordered parents."""
        self.conn.execute(
            "INSERT INTO versions(id, dataset, state, name, root, metadata, comment,"
            " created_at, published_at) VALUES (?,?,?,?,?,?,?,?,?)",
            (
                vid,
                dataset,
                state,
                name,
                root,
                metadata,
                comment,
                time.time() if created_at is None else created_at,
                published_at,
            ),
        )
        self.conn.executemany(
            "INSERT INTO version_parents(version, pos, parent) VALUES (?,?,?)",
            [(vid, i, p) for i, p in enumerate(parents)],
        )

    def version_get(self, vid: str) -> Row | None:
        """The version row with id ``vid``, or None."""
        return self._one("SELECT * FROM versions WHERE id = ?", (vid,))

    def versions_of(self, dataset: int, state: str | None = None) -> list[Row]:
        """The versions of a dataset, oldest first, optionally of one state."""
        if state is None:
            return self._all(
                "SELECT * FROM versions WHERE dataset = ? ORDER BY created_at, rowid",
                (dataset,),
            )
        return self._all(
            "SELECT * FROM versions WHERE dataset = ? AND state = ? ORDER BY created_at, rowid",
            (dataset, state),
        )

    def versions_by_prefix(self, dataset: int, prefix: str) -> list[Row]:
        """The versions of a dataset whose id starts with ``prefix``."""
        return self._all(
            "SELECT * FROM versions WHERE dataset = ? AND id >= ? AND id < ? ORDER BY id",
            (dataset, prefix, prefix + "\x7f"),
        )

    def versions_by_name(self, dataset: int, name: str) -> list[Row]:
        """The versions of a dataset named ``name`` (at most one)."""
        return self._all("SELECT * FROM versions WHERE dataset = ? AND name = ?", (dataset, name))

    def version_update(self, vid: str, **fields: Any) -> None:
        """Set columns of one version."""
        cols = ", ".join(f"{k} = ?" for k in fields)
        self.conn.execute(f"UPDATE versions SET {cols} WHERE id = ?", (*fields.values(), vid))

    def version_rekey(self, old: str, new: str) -> None:
        """Give a version a new id, keeping its parents and owned trees."""
        self.conn.execute("UPDATE versions SET id = ? WHERE id = ?", (new, old))
        self.conn.execute("UPDATE version_parents SET version = ? WHERE version = ?", (new, old))
        self.conn.execute("UPDATE trees SET draft = ? WHERE draft = ?", (new, old))

    def version_parents(self, vid: str) -> list[str]:
        """The parent ids of a version, in order."""
        return [
            r[0]
            for r in self._all(
                "SELECT parent FROM version_parents WHERE version = ? ORDER BY pos", (vid,)
            )
        ]

    def version_children(self, vid: str) -> list[str]:
        """The ids of versions that name ``vid`` as a parent."""
        return [
            r[0] for r in self._all("SELECT version FROM version_parents WHERE parent = ?", (vid,))
        ]

    def version_delete(self, vid: str) -> None:
        """Delete a version, its parent links, tags and mutable trees."""
        for (tree,) in self._all("SELECT id FROM trees WHERE draft = ?", (vid,)):
            self.tree_delete(tree)
        self.conn.execute("DELETE FROM version_parents WHERE version = ?", (vid,))
        self.conn.execute("DELETE FROM tags WHERE version = ?", (vid,))
        self.conn.execute("DELETE FROM versions WHERE id = ?", (vid,))

    def all_version_roots(self) -> list[str]:
        """The root tree of every version in the catalog."""
        return [r[0] for r in self._all("SELECT root FROM versions")]

    # -- tags -------------------------------------------------------------------

    def tag_get(self, dataset: int, tag: str) -> str | None:
        """The version a tag names, or None."""
        row = self._one("SELECT version FROM tags WHERE dataset = ? AND tag = ?", (dataset, tag))
        return None if row is None else str(row[0])

    def tag_set(self, dataset: int, tag: str, vid: str, auto: bool) -> None:
        """Point a tag at a version (moving it if it existed)."""
        self.conn.execute(
            "INSERT OR REPLACE INTO tags(dataset, tag, version, auto) VALUES (?,?,?,?)",
            (dataset, tag, vid, int(auto)),
        )

    def tag_delete(self, dataset: int, tag: str) -> None:
        """Remove a tag."""
        self.conn.execute("DELETE FROM tags WHERE dataset = ? AND tag = ?", (dataset, tag))

    def tags_of_dataset(self, dataset: int) -> list[Row]:
        """Every tag of a dataset: rows of (tag, version, auto)."""
        return self._all(
            "SELECT tag, version, auto FROM tags WHERE dataset = ? ORDER BY tag", (dataset,)
        )

    def tags_of_version(self, vid: str) -> list[str]:
        """The tags naming one version: auto tags first, then user tags, each sorted."""
        rows = self._all("SELECT tag, auto FROM tags WHERE version = ?", (vid,))
        return [r[0] for r in sorted(rows, key=lambda r: (-r[1], _tag_order(r[0])))]

    # -- trees ------------------------------------------------------------------

    def entry(self, tree: str, name: str) -> Row | None:
        """One entry of a folder with its item's blob, mtime and origin (files)."""
        return self._one(
            f"SELECT e.name, e.kind, e.ref, e.size, {_ITEM_COLS} FROM tree_entries e"
            " LEFT JOIN items i ON e.kind = 0 AND i.id = e.ref"
            " WHERE e.tree = ? AND e.name = ?",
            (tree, name),
        )

    def entries(self, tree: str) -> list[Row]:
        """The entries of a folder in name order, with item blob, mtime and origin."""
        return self._all(
            f"SELECT e.name, e.kind, e.ref, e.size, {_ITEM_COLS} FROM tree_entries e"
            " LEFT JOIN items i ON e.kind = 0 AND i.id = e.ref"
            " WHERE e.tree = ? ORDER BY e.name",
            (tree,),
        )

    def entries_after(self, tree: str, after: str, limit: int) -> list[Row]:
        """Up to ``limit`` entries of a folder whose names sort after ``after``."""
        return self._all(
            f"SELECT e.name, e.kind, e.ref, e.size, {_ITEM_COLS} FROM tree_entries e"
            " LEFT JOIN items i ON e.kind = 0 AND i.id = e.ref"
            " WHERE e.tree = ? AND e.name > ? ORDER BY e.name LIMIT ?",
            (tree, after, limit),
        )

    def entry_names(self, tree: str) -> set[str]:
        """The names in a folder."""
        return {r[0] for r in self._all("SELECT name FROM tree_entries WHERE tree = ?", (tree,))}

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

    def entries_put(self, tree: str, entries: Iterable[tuple[str, int, str, int]]) -> None:
        """Insert or replace ``(name, kind, ref, size)`` entries of a folder."""
        self.conn.executemany(
            "INSERT OR REPLACE INTO tree_entries(tree, name, kind, ref, size) VALUES (?,?,?,?,?)",
            [(tree, *e) for e in entries],
        )

    def entry_delete(self, tree: str, name: str) -> None:
        """Remove one entry of a folder."""
        self.conn.execute("DELETE FROM tree_entries WHERE tree = ? AND name = ?", (tree, name))

    def tree_copy(self, src: str, dst: str) -> None:
        """Copy every entry of folder ``src`` into folder ``dst``."""
        self.conn.execute(
            "INSERT INTO tree_entries(tree, name, kind, ref, size)"
            " SELECT ?, name, kind, ref, size FROM tree_entries WHERE tree = ?",
            (dst, src),
        )

    def tree_exists(self, tree: str) -> bool:
        """True when the catalog knows this tree id."""
        return self._one("SELECT 1 FROM trees WHERE id = ?", (tree,)) is not None

    def tree_register(
        self, tree: str, files: int | None, nbytes: int | None, draft: str | None = None
    ) -> None:
        """Record a tree: its totals (immutable trees) or its owning draft (mutable)."""
        self.conn.execute(
            "INSERT OR IGNORE INTO trees(id, files, bytes, draft) VALUES (?,?,?,?)",
            (tree, files, nbytes, draft),
        )

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
        self.conn.execute("DELETE FROM tree_entries WHERE tree = ?", (tree,))
        self.conn.execute("DELETE FROM trees WHERE id = ?", (tree,))

    def tree_promote(self, mutable: str, content_id: str, files: int, nbytes: int) -> None:
        """Turn a mutable tree into the immutable tree ``content_id``.

        If an equal tree already exists the mutable rows are simply dropped.
        """
        if self.tree_exists(content_id):
            self.tree_delete(mutable)
            return
        self.conn.execute("UPDATE tree_entries SET tree = ? WHERE tree = ?", (content_id, mutable))
        self.conn.execute("DELETE FROM trees WHERE id = ?", (mutable,))
        self.tree_register(content_id, files, nbytes)

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

    # -- items ------------------------------------------------------------------

    def items_put(self, items: Iterable[tuple[str, str, str, int, float, str, str]]) -> None:
        """Insert ``(id, origin, blob, size, mtime, metadata, annotations)`` rows once."""
        self.conn.executemany(
            "INSERT OR IGNORE INTO items(id, origin, blob, size, mtime, metadata, annotations)"
            " VALUES (?,?,?,?,?,?,?)",
            items,
        )

    def item_get(self, item: str) -> Row | None:
        """The item row with id ``item``, or None."""
        return self._one("SELECT * FROM items WHERE id = ?", (item,))

    # -- blobs ------------------------------------------------------------------

    def blobs_put(self, blobs: Iterable[tuple[str, int, str]]) -> None:
        """Record ``(id, size, store)`` blobs once."""
        self.conn.executemany("INSERT OR IGNORE INTO blobs(id, size, store) VALUES (?,?,?)", blobs)

    def blob_known(self, blob: str) -> bool:
        """True when the catalog records this blob."""
        return self._one("SELECT 1 FROM blobs WHERE id = ?", (blob,)) is not None

    def blobs_all(self) -> list[Row]:
        """Every recorded blob: rows (id, size, store)."""
        return self._all("SELECT id, size, store FROM blobs ORDER BY id")

    def blob_totals(self) -> tuple[int, int]:
        """``(blobs, bytes)`` recorded in the catalog, counted with one query."""
        row = self._one("SELECT count(*), coalesce(sum(size), 0) FROM blobs")
        assert row is not None
        return int(row[0]), int(row[1])

    def blob_delete(self, blob: str) -> None:
        """Forget a blob."""
        self.conn.execute("DELETE FROM blobs WHERE id = ?", (blob,))

    # -- garbage collection -----------------------------------------------------

    def sweep_unreachable(self) -> tuple[int, int, list[str]]:
        """Delete trees and items no version reaches; return what blobs are left unused.

        Returns ``(trees deleted, items deleted, unused blob ids)``. Reachability is
        computed with one recursive query from every version root.
        """
        self.conn.execute("CREATE TEMP TABLE IF NOT EXISTS live_trees(id TEXT PRIMARY KEY)")
        self.conn.execute("DELETE FROM live_trees")
        self.conn.execute(
            "INSERT OR IGNORE INTO live_trees WITH RECURSIVE t(id) AS ("
            " SELECT root FROM versions UNION"
            " SELECT e.ref FROM tree_entries e JOIN t ON e.tree = t.id WHERE e.kind = 1)"
            " SELECT id FROM t"
        )
        dead_trees = self.conn.execute(
            "DELETE FROM tree_entries WHERE tree NOT IN (SELECT id FROM live_trees)"
        ).rowcount
        self.conn.execute("DELETE FROM trees WHERE id NOT IN (SELECT id FROM live_trees)")
        dead_items = self.conn.execute(
            "DELETE FROM items WHERE id NOT IN (SELECT ref FROM tree_entries WHERE kind = 0)"
        ).rowcount
        unused = [
            r[0]
            for r in self._all(
                "SELECT id FROM blobs WHERE id NOT IN (SELECT blob FROM items) ORDER BY id"
            )
        ]
        self.conn.execute("DROP TABLE live_trees")
        return dead_trees, dead_items, unused

    # -- clone/merge/diff -------------------------------------------------------

    def entries_with_items(self, tree: str) -> list[Row]:
        """The entries of a folder in name order, files with their whole item.

        Rows ``(name, kind, ref, size, origin, blob, mtime, metadata, annotations)``;
        the item columns are NULL for folders.
        """
        return self._all(
            "SELECT e.name, e.kind, e.ref, e.size, i.origin, i.blob, i.mtime,"
            " i.metadata, i.annotations FROM tree_entries e"
            " LEFT JOIN items i ON e.kind = 0 AND i.id = e.ref"
            " WHERE e.tree = ? ORDER BY e.name",
            (tree,),
        )

    def subtree_items(self, tree: str) -> list[Row]:
        """Every file and folder under a tree with one recursive query.

        Rows ``(path, kind, ref, size, origin, blob, mtime, metadata, annotations)``
        in path order; ``path`` is relative to ``tree`` (``a/b.jpg``) and the item
        columns are NULL for folders.
        """
        return self._all(
            "WITH RECURSIVE t(id, path) AS (SELECT ?, '' UNION ALL"
            " SELECT e.ref, t.path || e.name || '/' FROM tree_entries e JOIN t"
            " ON e.tree = t.id WHERE e.kind = 1)"
            " SELECT t.path || e.name AS path, e.kind AS kind, e.ref AS ref, e.size AS size,"
            " i.origin AS origin, i.blob AS blob, i.mtime AS mtime,"
            " i.metadata AS metadata, i.annotations AS annotations"
            " FROM tree_entries e JOIN t ON e.tree = t.id"
            " LEFT JOIN items i ON e.kind = 0 AND i.id = e.ref ORDER BY path",
            (tree,),
        )

    def items_by_ids(self, ids: Sequence[str]) -> dict[str, Row]:
        """The item rows with these ids, by id (missing ids are left out)."""
        return self._rows_by_id("SELECT * FROM items", ids)

    def items_stage(self, items: Iterable[tuple[str, str, str, int, float, str, str]]) -> None:
        """Queue item rows (as :meth:`items_put` takes them) in a temporary table.

        :meth:`items_unstage` then writes them in key order: item ids are hashes, so
        inserting many at random would rewrite B-tree pages over and over once the
        table outgrows the page cache; in key order each page is written once.
        """
        self.conn.execute(
            "CREATE TEMP TABLE IF NOT EXISTS items_stage(id TEXT, origin TEXT, blob TEXT,"
            " size INTEGER, mtime REAL, metadata TEXT, annotations TEXT)"
        )
        self.conn.executemany("INSERT INTO items_stage VALUES (?,?,?,?,?,?,?)", items)

    def items_unstage(self) -> None:
        """Write the rows queued by :meth:`items_stage` into ``items``, in key order."""
        if self._one("SELECT 1 FROM temp.sqlite_master WHERE name = 'items_stage'") is None:
            return
        self.conn.execute(
            "INSERT OR IGNORE INTO items(id, origin, blob, size, mtime, metadata, annotations)"
            " SELECT id, origin, blob, size, mtime, metadata, annotations FROM items_stage"
            " ORDER BY id"
        )
        self.conn.execute("DROP TABLE items_stage")

    def row_counts(self) -> dict[str, int]:
        """How many rows each table holds (for tests and benchmarks)."""
        tables = "datasets versions version_parents tags items tree_entries trees blobs"
        return {t: int(self._all(f"SELECT count(*) FROM {t}")[0][0]) for t in tables.split()}

    def dump(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of every table, sorted: equal dumps mean equal catalogs."""
        names = [
            r[0]
            for r in self._all(
                "SELECT name FROM sqlite_master WHERE type = 'table'"
                " AND name NOT LIKE 'sqlite_%' ORDER BY name"
            )
        ]
        return {
            n: sorted((tuple(r) for r in self._all(f"SELECT * FROM {n}")), key=repr) for n in names
        }

    # -- s3, linked, push/pull --------------------------------------------------

    def blob_size(self, blob: str) -> int | None:
        """The recorded size of a blob, or None when the catalog does not know it."""
        row = self._one("SELECT size FROM blobs WHERE id = ?", (blob,))
        return None if row is None else int(row[0])

    def blobs_by_ids(self, ids: Sequence[str]) -> dict[str, Row]:
        """The blob rows (id, size, store) with these ids, by id."""
        return self._rows_by_id("SELECT id, size, store FROM blobs", ids)

    def external_put(
        self, rows: Iterable[tuple[str, str, str, str, str | None, int, float]]
    ) -> None:
        """Record ``(blob, bucket, key, etag, version_id, size, mtime)`` linked objects."""
        self.conn.executemany(
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

    def version_ids(self, ids: Sequence[str]) -> set[str]:
        """Which of these version ids the catalog has."""
        found: set[str] = set()
        for vid in dict.fromkeys(ids):
            if self._one("SELECT 1 FROM versions WHERE id = ?", (vid,)) is not None:
                found.add(vid)
        return found

    # -- draft mounts -----------------------------------------------------------

    def data_version(self) -> int:
        """A number that changes when *another* connection commits (``PRAGMA
        data_version``): a writable mount's cheap test for edits made elsewhere."""
        return int(self.conn.execute("PRAGMA data_version").fetchone()[0])

    def set_synchronous(self, full: bool) -> None:
        """``synchronous=FULL`` (every commit survives power loss) or ``NORMAL`` (a
        commit survives a crash of the process; in WAL mode it costs no fsync)."""
        self.conn.execute(f"PRAGMA synchronous={'FULL' if full else 'NORMAL'}")

    def set_autocheckpoint(self, pages: int) -> None:
        """Checkpoint the WAL into the main file every ``pages`` pages (``wal_autocheckpoint``)."""
        self.conn.execute(f"PRAGMA wal_autocheckpoint={int(pages)}")

    def sync_wal(self) -> None:
        """Make every transaction committed so far survive power loss: fsync the WAL
        (what ``synchronous=FULL`` does at each commit)."""
        wal = Path(f"{self.path}-wal")
        try:
            fd = os.open(wal, os.O_RDONLY)
        except FileNotFoundError:
            return  # checkpointed and truncated: everything is in the main file
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def file_record(
        self,
        tree: str,
        name: str,
        item: tuple[str, str, str, int, float, str, str],
        store: str,
    ) -> bool:
        """Record a file written through a mount: its item ``(id, origin, blob, size,
        mtime, metadata, annotations)`` (once), its blob, and the entry ``name`` of
        folder ``tree``. True when the item row is new."""
        iid, _origin, blob, size = item[:4]
        new = self.item_insert(item)
        self.conn.execute(
            "INSERT OR IGNORE INTO blobs(id, size, store) VALUES (?,?,?)", (blob, size, store)
        )
        self.conn.execute(
            "INSERT OR REPLACE INTO tree_entries(tree, name, kind, ref, size) VALUES (?,?,0,?,?)",
            (tree, name, iid, size),
        )
        return new

    def item_insert(self, item: tuple[str, str, str, int, float, str, str]) -> bool:
        """Insert one ``(id, origin, blob, size, mtime, metadata, annotations)`` item
        unless it exists; True when the row is new."""
        cur = self.conn.execute(
            "INSERT OR IGNORE INTO items(id, origin, blob, size, mtime, metadata, annotations)"
            " VALUES (?,?,?,?,?,?,?)",
            item,
        )
        return cur.rowcount == 1

    def draft_tree_count(self, draft: str) -> int:
        """How many mutable folders a draft has: what its publish will freeze."""
        row = self._one("SELECT count(*) FROM trees WHERE draft = ?", (draft,))
        return int(row[0]) if row else 0

    def item_set_mtime(self, item: str, mtime: float) -> None:
        """Change the mtime kept beside an item (not part of its id)."""
        self.conn.execute("UPDATE items SET mtime = ? WHERE id = ?", (mtime, item))


def _tag_order(tag: str) -> tuple[int, int, str]:
    if tag == "latest":
        return (0, 0, tag)
    if tag[:1] == "v" and tag[1:].isdigit():
        return (1, int(tag[1:]), tag)
    return (2, 0, tag)

"""The one SQL schema of the catalog, its version number and the migrations.

``PRAGMA user_version`` holds the schema version of a file; :data:`MIGRATIONS` lists
named steps that bring an older file up to date. :meth:`CatalogDB.migrate
<dlfs.catalog.database.CatalogCore.migrate>` runs each step in its own transaction.
A new table or column is a new step appended here; a released step is never edited.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import sqlite_utils

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


def _migrate_v3(db: sqlite_utils.Database) -> None:
    # POSIX attributes of an item (mode, owner, symlink target, user.* xattrs) as
    # canonical JSON, '' when it has none (dlfs.posixattrs): part of the item id.
    db.conn.execute("ALTER TABLE items ADD COLUMN posix TEXT NOT NULL DEFAULT ''")


SCHEMA_V4 = """
CREATE INDEX IF NOT EXISTS tree_entries_file_ref ON tree_entries(ref) WHERE kind = 0
"""


def _migrate_v4(db: sqlite_utils.Database) -> None:
    # Which entries name an item: reclaiming a blob asks whether anything still does
    # (dlfs.reclaim). Independent of step 3.
    _run_script(db, SCHEMA_V4)


SCHEMA_V5 = """
CREATE TABLE projects(
    name TEXT PRIMARY KEY,
    owner INTEGER NOT NULL,
    grp INTEGER,
    read_only INTEGER NOT NULL DEFAULT 0,
    description TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL
) WITHOUT ROWID
"""

SCHEMA_V6 = """
ALTER TABLE trees ADD COLUMN posix TEXT NOT NULL DEFAULT '';
ALTER TABLE trees ADD COLUMN mtime REAL;
ALTER TABLE trees ADD COLUMN ctime REAL;
ALTER TABLE trees ADD COLUMN atime REAL;
ALTER TABLE items ADD COLUMN ctime REAL;
ALTER TABLE items ADD COLUMN atime REAL;
CREATE INDEX tree_entries_folders ON tree_entries(tree, name) WHERE kind = 1
"""


def _migrate_v5(db: sqlite_utils.Database) -> None:
    # Projects (dlfs.projects): a dataset named 'P/NAME' is in project P, a bare name in
    # 'default', which every catalog has, owned by whoever opened it first since.
    _run_script(db, SCHEMA_V5)
    db.conn.execute(
        "INSERT INTO projects(name, owner, created_at) VALUES ('default', ?, ?)",
        (os.getuid(), time.time()),
    )


def _migrate_v6(db: sqlite_utils.Database) -> None:
    # The attributes of a folder (dlfs.folderattrs): its mode, owner and user.* xattrs
    # as canonical JSON ('' for none; part of the folder's id), and its times (kept
    # beside the tree, not part of its id, as an item's mtime); an item's ctime and
    # atime, beside it as its mtime (NULL: the mtime). The index counts a folder's
    # sub-folders (its st_nlink).
    _run_script(db, SCHEMA_V6)


SCHEMA_V7 = """
CREATE TABLE version_changes(
    version TEXT NOT NULL,
    seq INTEGER NOT NULL,
    at REAL NOT NULL,
    who TEXT NOT NULL,
    change TEXT NOT NULL,
    PRIMARY KEY (version, seq)
) WITHOUT ROWID
"""


def _migrate_v7(db: sqlite_utils.Database) -> None:
    # The history of a version's metadata and comment (who, when, what: canonical
    # JSON), which change on published versions too (dlfs.versionmeta).
    _run_script(db, SCHEMA_V7)


SCHEMA_V8 = """
CREATE TABLE item_labels(
    item TEXT NOT NULL,
    label TEXT NOT NULL,
    PRIMARY KEY (item, label)
) WITHOUT ROWID;
CREATE INDEX item_labels_label ON item_labels(label);
INSERT OR IGNORE INTO item_labels(item, label)
    SELECT i.id, json_extract(a.value, '$.label') FROM items i, json_each(i.annotations) a
    WHERE a.type = 'object' AND json_type(a.value, '$.label') = 'text';
CREATE TABLE tree_labels(
    tree TEXT NOT NULL,
    label TEXT NOT NULL,
    PRIMARY KEY (tree, label)
) WITHOUT ROWID;
CREATE TABLE trees_labelled(
    tree TEXT PRIMARY KEY,
    unlabelled INTEGER NOT NULL
) WITHOUT ROWID
"""

ITEM_LABELS_TRIGGERS = (
    """CREATE TRIGGER items_add_labels AFTER INSERT ON items BEGIN
    INSERT OR IGNORE INTO item_labels(item, label)
        SELECT new.id, json_extract(a.value, '$.label') FROM json_each(new.annotations) a
        WHERE a.type = 'object' AND json_type(a.value, '$.label') = 'text';
END""",
    """CREATE TRIGGER items_forget_labels AFTER DELETE ON items BEGIN
    DELETE FROM item_labels WHERE item = old.id;
END""",
    """CREATE TRIGGER trees_forget_labels AFTER DELETE ON trees BEGIN
    DELETE FROM tree_labels WHERE tree = old.id;
    DELETE FROM trees_labelled WHERE tree = old.id;
END""",
)


def _migrate_v8(db: sqlite_utils.Database) -> None:
    # The labels of each item (an annotation that is an object with a string "label",
    # as dlfs.ops.where.labels_of reads them), kept by triggers whatever code inserts
    # the item: items never change (their id is their content), so insert and delete
    # are all there is. What `--group-by label` views list (dlfs.arranged).
    # tree_labels: every label found under an immutable folder; trees_labelled: the
    # folders indexed so (unlabelled: a file under it has no label). Filled at
    # publish and before a view is mounted (dlfs.labelindex), never for a draft's
    # mutable folders; a deleted tree's rows go with it (trigger). A label's folders
    # are read through tree_entries_folders (step 6).
    _run_script(db, SCHEMA_V8)
    for trigger in ITEM_LABELS_TRIGGERS:
        db.conn.execute(trigger)


# (schema version reached, name, step). Append; never edit a released step.
MIGRATIONS: list[tuple[int, str, Callable[[sqlite_utils.Database], None]]] = [
    (1, "initial schema", _migrate_v1),
    (2, "linked objects", _migrate_v2),
    (3, "posix attributes of items", _migrate_v3),
    (4, "file entries by item", _migrate_v4),
    (5, "projects", _migrate_v5),
    (6, "attributes of folders", _migrate_v6),
    (7, "version metadata history", _migrate_v7),
    (8, "labels of items", _migrate_v8),
]
SCHEMA_VERSION = MIGRATIONS[-1][0]

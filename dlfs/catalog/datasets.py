"""Queries on datasets, their versions (with ordered parents) and tags."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from dlfs.catalog.database import Row
from dlfs.catalog.trees import TreeQueries


class DatasetQueries(TreeQueries):
    """Rows of ``datasets``, ``versions``, ``version_parents`` and ``tags``.

    Deleting a version drops the mutable trees it owns, hence the tree queries below it.
    """

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
        cur = self._run(
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
        self._run(f"UPDATE datasets SET {cols} WHERE id = ?", (*fields.values(), dataset))

    def dataset_take_auto_tag(self, dataset: int) -> int:
        """Reserve the next ``vN`` number of a dataset."""
        row = self._one("SELECT next_auto FROM datasets WHERE id = ?", (dataset,))
        assert row is not None
        n = int(row[0])
        self._run("UPDATE datasets SET next_auto = ? WHERE id = ?", (n + 1, dataset))
        return n

    def dataset_delete(self, dataset: int) -> None:
        """Delete a dataset row and its versions, parents, tags and mutable trees."""
        for (vid,) in self._all("SELECT id FROM versions WHERE dataset = ?", (dataset,)):
            self.version_delete(vid)
        self._run("DELETE FROM tags WHERE dataset = ?", (dataset,))
        self._run("DELETE FROM datasets WHERE id = ?", (dataset,))

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
        self._run(
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
        self._many(
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
        self._run(f"UPDATE versions SET {cols} WHERE id = ?", (*fields.values(), vid))

    def version_rekey(self, old: str, new: str) -> None:
        """Give a version a new id, keeping its parents and owned trees."""
        self._run("UPDATE versions SET id = ? WHERE id = ?", (new, old))
        self._run("UPDATE version_parents SET version = ? WHERE version = ?", (new, old))
        self._run("UPDATE trees SET draft = ? WHERE draft = ?", (new, old))
        self._run("UPDATE version_changes SET version = ? WHERE version = ?", (new, old))

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
        self._run("DELETE FROM version_parents WHERE version = ?", (vid,))
        self._run("DELETE FROM tags WHERE version = ?", (vid,))
        self._run("DELETE FROM version_changes WHERE version = ?", (vid,))
        self._run("DELETE FROM versions WHERE id = ?", (vid,))

    # -- the history of a version's metadata and comment ------------------------

    def version_changes(self, vid: str) -> list[Row]:
        """The recorded changes of a version: rows of (seq, at, who, change), oldest
        first."""
        return self._all(
            "SELECT seq, at, who, change FROM version_changes WHERE version = ? ORDER BY seq",
            (vid,),
        )

    def version_change_add(self, vid: str, at: float, who: str, change: str) -> None:
        """Record one change of a version (numbered after the last one)."""
        self._run(
            "INSERT INTO version_changes(version, seq, at, who, change) VALUES"
            " (?, (SELECT coalesce(max(seq), -1) + 1 FROM version_changes WHERE version = ?),"
            " ?, ?, ?)",
            (vid, vid, at, who, change),
        )

    def version_changes_replace(self, vid: str, changes: Sequence[Sequence[Any]]) -> None:
        """Make ``changes`` (``(at, who, change)``, in order) the history of a version."""
        self._run("DELETE FROM version_changes WHERE version = ?", (vid,))
        self._many(
            "INSERT INTO version_changes(version, seq, at, who, change) VALUES (?,?,?,?,?)",
            [(vid, i, float(at), str(who), str(ch)) for i, (at, who, ch) in enumerate(changes)],
        )

    # -- tags -------------------------------------------------------------------

    def tag_get(self, dataset: int, tag: str) -> str | None:
        """The version a tag names, or None."""
        row = self._one("SELECT version FROM tags WHERE dataset = ? AND tag = ?", (dataset, tag))
        return None if row is None else str(row[0])

    def tag_set(self, dataset: int, tag: str, vid: str, auto: bool) -> None:
        """Point a tag at a version (moving it if it existed)."""
        self._run(
            "INSERT OR REPLACE INTO tags(dataset, tag, version, auto) VALUES (?,?,?,?)",
            (dataset, tag, vid, int(auto)),
        )

    def tag_delete(self, dataset: int, tag: str) -> None:
        """Remove a tag."""
        self._run("DELETE FROM tags WHERE dataset = ? AND tag = ?", (dataset, tag))

    def tags_of_dataset(self, dataset: int) -> list[Row]:
        """Every tag of a dataset: rows of (tag, version, auto)."""
        return self._all(
            "SELECT tag, version, auto FROM tags WHERE dataset = ? ORDER BY tag", (dataset,)
        )

    def tags_of_version(self, vid: str) -> list[str]:
        """The tags naming one version: auto tags first, then user tags, each sorted."""
        rows = self._all("SELECT tag, auto FROM tags WHERE version = ?", (vid,))
        return [r[0] for r in sorted(rows, key=lambda r: (-r[1], _tag_order(r[0])))]


def _tag_order(tag: str) -> tuple[int, int, str]:
    if tag == "latest":
        return (0, 0, tag)
    if tag[:1] == "v" and tag[1:].isdigit():
        return (1, int(tag[1:]), tag)
    return (2, 0, tag)

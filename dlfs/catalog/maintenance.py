"""Whole-catalog work: sweeping what no version reaches, counting and dumping rows."""

from __future__ import annotations

from typing import Any

from dlfs.catalog.database import CatalogCore


class MaintenanceQueries(CatalogCore):
    """Queries over every table at once (gc, tests and benchmarks)."""

    def sweep_unreachable(self) -> tuple[int, int, list[str]]:
        """Delete trees and items no version reaches; return what blobs are left unused.

        Returns ``(trees deleted, items deleted, unused blob ids)``. Reachability is
        computed with one recursive query from every version root.
        """
        self._run("CREATE TEMP TABLE IF NOT EXISTS live_trees(id TEXT PRIMARY KEY)")
        self._run("DELETE FROM live_trees")
        self._run(
            "INSERT OR IGNORE INTO live_trees WITH RECURSIVE t(id) AS ("
            " SELECT root FROM versions UNION"
            " SELECT e.ref FROM tree_entries e JOIN t ON e.tree = t.id WHERE e.kind = 1)"
            " SELECT id FROM t"
        )
        dead_trees = self._run(
            "DELETE FROM tree_entries WHERE tree NOT IN (SELECT id FROM live_trees)"
        ).rowcount
        self._run("DELETE FROM trees WHERE id NOT IN (SELECT id FROM live_trees)")
        dead_items = self._run(
            "DELETE FROM items WHERE id NOT IN (SELECT ref FROM tree_entries WHERE kind = 0)"
        ).rowcount
        unused = [
            r[0]
            for r in self._all(
                "SELECT id FROM blobs WHERE id NOT IN (SELECT blob FROM items) ORDER BY id"
            )
        ]
        self._run("DROP TABLE live_trees")
        return dead_trees, dead_items, unused

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

"""Queries on projects: the namespaces of datasets and their access rules.

A dataset belongs to the project its name starts with (``P/NAME``), a bare name to
``default`` (:mod:`dlfs.names`); the ``projects`` table holds each project's owner,
group and read-only flag.
"""

from __future__ import annotations

import time
from typing import Any

from dlfs.catalog.database import CatalogCore, Row


class ProjectQueries(CatalogCore):
    """Rows of ``projects``, and the datasets of one project."""

    def project_insert(self, name: str, owner: int, group: int | None, description: str) -> None:
        """Insert a project row."""
        self._run(
            "INSERT INTO projects(name, owner, grp, description, created_at) VALUES (?,?,?,?,?)",
            (name, owner, group, description, time.time()),
        )

    def project_get(self, name: str) -> Row | None:
        """The project row named ``name``, or None."""
        return self._one("SELECT * FROM projects WHERE name = ?", (name,))

    def projects(self) -> list[Row]:
        """Every project, by name."""
        return self._all("SELECT * FROM projects ORDER BY name")

    def project_update(self, name: str, **fields: Any) -> None:
        """Set columns of one project."""
        cols = ", ".join(f"{k} = ?" for k in fields)
        self._run(f"UPDATE projects SET {cols} WHERE name = ?", (*fields.values(), name))

    def project_delete(self, name: str) -> None:
        """Delete a project row (its datasets are deleted by the caller first)."""
        self._run("DELETE FROM projects WHERE name = ?", (name,))

    def datasets_in(self, project: str | None) -> list[Row]:
        """The datasets of a project by name (``None``: the default project's, whose
        names have no ``/``)."""
        if project is None:
            return self._all("SELECT * FROM datasets WHERE instr(name, '/') = 0 ORDER BY name")
        return self._all(
            "SELECT * FROM datasets WHERE substr(name, 1, ?) = ? ORDER BY name",
            (len(project) + 1, project + "/"),
        )

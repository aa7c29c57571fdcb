"""The projects of the Python API: :class:`Catalog`'s project methods and the
:class:`Project` handle.

``Catalog`` takes these methods from :class:`ProjectMethods`; each runs in one catalog
transaction (a read, in one snapshot) around a call into :mod:`dlfs.projects`::

    cat.create_project("vision", group="ml-team")
    cats = cat.create_dataset("cats", project="vision")   # the dataset "vision/cats"
    [d.name for d in cat.project("vision").datasets()]    # ["vision/cats"]
    cat.project("vision").set(read_only=True)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dlfs import apiargs, projects
from dlfs.handles import Dataset
from dlfs.ops import maintenance

if TYPE_CHECKING:
    from dlfs.catalog import CatalogDB


@apiargs.checked
class ProjectMethods:
    """The project methods of :class:`dlfs.Catalog`."""

    db: CatalogDB

    def create_project(self, name: str, group: str | None = None, description: str = "") -> Project:
        """Create project ``name`` owned by the calling user; ``group`` (a Unix group
        name or gid) is let in to its mounts (see :mod:`dlfs.access`)."""
        with self.db.transaction():
            projects.create_project(self.db, name, group, description)
        return Project(self, name)

    def project(self, name: str) -> Project:
        """The project named ``name`` (``default`` holds the bare-named datasets)."""
        with self.db.snapshot():
            projects.project_row(self.db, name)
        return Project(self, name)

    def projects(self) -> list[Project]:
        """Every project, by name."""
        with self.db.snapshot():
            return [Project(self, r["name"]) for r in self.db.projects()]

    def project_info(self, name: str) -> dict[str, Any]:
        """A JSON-ready description of project ``name``: owner, group, read-only flag,
        its datasets."""
        with self.db.snapshot():
            return projects.project_info(self.db, projects.project_row(self.db, name))

    def project_datasets(self, name: str) -> list[Dataset]:
        """The datasets of project ``name``, by name."""
        with self.db.snapshot():
            rows = projects.datasets_of(self.db, name)
        return [Dataset(self, r["name"]) for r in rows]  # type: ignore[arg-type]

    def set_project(
        self,
        name: str,
        read_only: bool | None = None,
        group: str | None = None,
        no_group: bool = False,
    ) -> dict[str, Any]:
        """Mark project ``name`` read-only (or writable again), give it a Unix group or
        take it away (``no_group``); return its description."""
        with self.db.transaction():
            row = projects.set_project(self.db, name, read_only, group, no_group)
            return projects.project_info(self.db, row)

    def delete_project(self, name: str, force: bool = False) -> list[str]:
        """Delete project ``name``; one with datasets only with ``force``, which
        deletes them (every version) too; return their names. Their blobs that no
        other dataset uses are left to ``gc``."""
        with self.db.transaction():
            names = projects.deletable(self.db, name, force)
            for dataset in names:
                maintenance.delete_dataset(self.db, dataset, True, True, False)
            projects.forget(self.db, name)
        return names


@apiargs.checked
class Project:
    """A handle on a project by name; properties read the catalog each time."""

    def __init__(self, catalog: ProjectMethods, name: str) -> None:
        self.catalog = catalog
        self.name = name

    def __repr__(self) -> str:
        return f"Project({self.name!r})"

    def info(self) -> dict[str, Any]:
        """See :meth:`Catalog.project_info`."""
        return self.catalog.project_info(self.name)

    @property
    def read_only(self) -> bool:
        """True while the project takes no new drafts, publishes or deletes."""
        return bool(self.info()["read_only"])

    @property
    def group(self) -> str | None:
        """The Unix group let in to the project's mounts, None if it has none."""
        group = self.info()["group"]
        return None if group is None else str(group)

    def datasets(self) -> list[Dataset]:
        """See :meth:`Catalog.project_datasets`."""
        return self.catalog.project_datasets(self.name)

    def set(
        self, read_only: bool | None = None, group: str | None = None, no_group: bool = False
    ) -> dict[str, Any]:
        """See :meth:`Catalog.set_project`."""
        return self.catalog.set_project(self.name, read_only, group, no_group)

    def delete(self, force: bool = False) -> list[str]:
        """See :meth:`Catalog.delete_project`."""
        return self.catalog.delete_project(self.name, force)

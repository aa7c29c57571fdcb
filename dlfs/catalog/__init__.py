"""The SQLite catalog: schema, migrations, transactions, and every SQL statement.

All SQL in dlfs lives in this package. The layers above call named methods of
:class:`CatalogDB` (``entries(tree)``, ``version_get(id)``...) and never see a cursor.

Design:

- One file, ``catalog.db`` under the catalog home, in WAL mode with
  ``synchronous=FULL``: a committed command survives a crash or power loss, and
  readers (the daemon) never block the writer. (A writable draft mount commits each
  closed file with ``NORMAL``: see :mod:`dlfs.draftview`.)
- ``PRAGMA user_version`` holds the schema version; :data:`MIGRATIONS` lists named
  steps that bring an older file up to date, each in its own transaction
  (:mod:`dlfs.catalog.schema`, the one place the schema is written).
- A command runs in one ``BEGIN IMMEDIATE`` transaction (:meth:`CatalogDB.transaction`),
  so bad input or a crash leaves the catalog exactly as before.
- sqlite3's exceptions never leave the package: a damaged file is
  :class:`~dlfs.errors.Corrupt`, a locked, busy or unreachable one
  :class:`~dlfs.errors.Unavailable` (:mod:`dlfs.catalog.database`).
- ``tree_entries`` is ``WITHOUT ROWID`` with primary key ``(tree, name)``: a lookup is
  one index probe and an ordered readdir is one index range.
- A draft's changed folders are *mutable trees*: rows in ``tree_entries`` whose tree id
  starts with ``~``, owned by exactly one draft (``trees.draft``). Publishing replaces
  them by content ids; everything else is shared and immutable.

Modules, one idea each: ``schema`` (tables, migrations), ``database`` (the connection,
transactions, error mapping), ``datasets`` (datasets, versions, tags), ``trees``
(folder entries, trees, subtrees), ``items`` (items, blobs, linked objects),
``maintenance`` (sweep, dump, row counts), ``projects`` (projects and their rules).
"""

from __future__ import annotations

from dlfs.catalog.database import CatalogCore, Row, catalog_error
from dlfs.catalog.datasets import DatasetQueries
from dlfs.catalog.items import ItemQueries, ItemRecord
from dlfs.catalog.maintenance import MaintenanceQueries
from dlfs.catalog.projects import ProjectQueries
from dlfs.catalog.schema import MIGRATIONS, SCHEMA_VERSION
from dlfs.catalog.trees import TreeQueries

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "CatalogDB",
    "ItemRecord",
    "Row",
    "catalog_error",
]


class CatalogDB(
    DatasetQueries, TreeQueries, ItemQueries, MaintenanceQueries, ProjectQueries, CatalogCore
):
    """One connection to a catalog file, with the queries dlfs needs.

    A ``CatalogDB`` belongs to one thread (SQLite connections are not shared); the
    daemon opens one per thread. ``readonly=True`` opens the file for reading only.
    A query on a damaged file raises :class:`~dlfs.errors.Corrupt`; on a locked,
    busy or unreachable one :class:`~dlfs.errors.Unavailable`.
    """

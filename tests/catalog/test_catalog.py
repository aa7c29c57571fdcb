"""The catalog file: private, WAL, versioned schema with migrations."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest

from dlfs import Catalog
from dlfs.catalog import MIGRATIONS, SCHEMA_VERSION, CatalogDB
from dlfs.errors import Corrupt


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_catalog_is_private_to_its_owner(catalog: Catalog, home: Path, sample: Path) -> None:
    catalog.create_dataset("cats")
    catalog.add("cats", [sample])
    assert mode(home) == 0o700
    for sub in ("blobs", "mounts", "logs"):
        assert mode(home / sub) == 0o700
    for f in home.glob("catalog.db*"):
        assert mode(f) == 0o600, f
    for d in (home / "blobs").iterdir():
        assert mode(d) == 0o700


def test_wal_mode_and_schema_version(catalog: Catalog, home: Path) -> None:
    conn = sqlite3.connect(home / "catalog.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()


def test_migrations_are_numbered_in_order() -> None:
    numbers = [m[0] for m in MIGRATIONS]
    assert numbers == list(range(1, len(numbers) + 1))


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "catalog.db"
    CatalogDB(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(Corrupt, match="newer than this dlfs"):
        CatalogDB(path)


def test_a_failed_transaction_leaves_nothing(catalog: Catalog) -> None:
    with pytest.raises(RuntimeError), catalog.db.transaction():
        catalog.db.dataset_insert("ghost", "plain", "", None, "local", "{}", "[]", "[]")
        raise RuntimeError("boom")
    assert catalog.db.dataset_by_name("ghost") is None

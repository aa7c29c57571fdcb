"""The catalog file: private, WAL, versioned schema with migrations; a damaged or
unreachable file reported as Corrupt or Unavailable."""

from __future__ import annotations

import errno
import os
import sqlite3
import stat
import threading
from pathlib import Path

import pytest

from dlfs import Catalog, mountregistry
from dlfs.catalog import MIGRATIONS, SCHEMA_VERSION, CatalogDB
from dlfs.errors import Corrupt, Unavailable
from dlfs.home import Home
from tests.conftest import Cli
from tests.fsutil import FUSE_OK, Mounter
from tests.helpers import SCHEMA_UNDO, downgrade_catalog


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


def test_catalogs_opened_by_many_threads_leave_the_umask_alone(tmp_path: Path) -> None:
    # The umask is the process's: a catalog made private through it, from several
    # threads at once, once left every later file of the process 0600.
    def open_some(k: int) -> None:
        for i in range(20):
            CatalogDB(tmp_path / f"c{k}-{i}.db").close()

    before = os.umask(0o022)
    try:
        threads = [threading.Thread(target=open_some, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert os.umask(0o022) == 0o022
    finally:
        os.umask(before)
    assert {mode(f) for f in tmp_path.glob("*.db*")} == {0o600}


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


# -- a damaged or unreachable catalog: Corrupt and Unavailable, never sqlite3 ----------


PAGE = 4096


def _published(catalog: Catalog, sample: Path) -> str:
    catalog.create_dataset("cats")
    catalog.add("cats", [sample])
    return catalog.publish("cats").ref


def _root_page(path: Path, table: str) -> int:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        (page,) = conn.execute(
            "SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)
        ).fetchone()
        return int(page)
    finally:
        conn.close()


def _overwrite(path: Path, offset: int, nbytes: int) -> None:
    with path.open("r+b") as f:
        f.seek(offset)
        f.write(bytes([0xA5]) * nbytes)


def _damage_table(path: Path, table: str) -> None:
    """Garbage over the root page of ``table`` (1-based page numbers); the header and
    the schema on page 1 stay intact, so the file still opens."""
    page = _root_page(path, table)
    assert page > 1
    _overwrite(path, (page - 1) * PAGE, PAGE)


def _closed_catalog(catalog: Catalog, sample: Path, home: Path) -> tuple[Path, str]:
    ref = _published(catalog, sample)
    catalog.close()  # the last connection checkpoints the WAL into catalog.db
    path = home / "catalog.db"
    assert not Path(f"{path}-wal").exists()
    return path, ref


def test_damaged_pages_make_a_query_corrupt(catalog: Catalog, home: Path, sample: Path) -> None:
    path, ref = _closed_catalog(catalog, sample, home)
    _damage_table(path, "tree_entries")
    db = CatalogDB(path, readonly=True)
    try:
        version = db.version_get(ref.split("@")[1])  # another table: still readable
        assert version is not None
        with pytest.raises(Corrupt, match=r"^catalog .*catalog\.db is damaged: ") as info:
            db.entries(version["root"])
        assert isinstance(info.value.__cause__, sqlite3.DatabaseError)
        with pytest.raises(Corrupt):
            db.entry(version["root"], "cat.jpg")
    finally:
        db.close()


def test_garbage_over_the_header_is_corrupt(catalog: Catalog, home: Path, sample: Path) -> None:
    path, _ref = _closed_catalog(catalog, sample, home)
    _overwrite(path, 0, 100)
    for readonly in (True, False):
        with pytest.raises(Corrupt, match="is damaged: file is not a database") as info:
            CatalogDB(path, readonly=readonly).datasets()
        assert type(info.value.__cause__) is sqlite3.DatabaseError


@pytest.mark.parametrize("damage", ["header", "pages"])
def test_the_cli_on_a_damaged_catalog_prints_one_line(
    catalog: Catalog, home: Path, sample: Path, cli: Cli, damage: str
) -> None:
    path, ref = _closed_catalog(catalog, sample, home)
    if damage == "header":
        _overwrite(path, 0, 100)
    else:
        _damage_table(path, "tree_entries")
    res = cli("ls", ref, ok=False)
    assert res.code == 1
    assert "Traceback" not in res.err
    assert res.err.count("\n") == 1 and res.err.startswith("dlfs: error: catalog "), res.err
    assert "is damaged" in res.err


def test_a_locked_catalog_is_unavailable(catalog: Catalog, home: Path) -> None:
    other = sqlite3.connect(home / "catalog.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process is writing
    try:
        catalog.db.conn.execute("PRAGMA busy_timeout=0")  # fail now, not in 30 s
        with pytest.raises(Unavailable, match="is unreachable: database is locked") as info:
            catalog.db.dataset_insert("ghost", "plain", "", None, "local", "{}", "[]", "[]")
        assert isinstance(info.value.__cause__, sqlite3.OperationalError)
        with pytest.raises(Unavailable, match="is busy"), catalog.db.transaction():
            pass
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert catalog.db.dataset_by_name("ghost") is None


def test_an_unopenable_catalog_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(Unavailable, match="cannot open catalog"):
        CatalogDB(tmp_path / "missing" / "catalog.db", readonly=True)
    (tmp_path / "dir.db").mkdir()
    with pytest.raises(Unavailable, match="cannot open catalog"):
        CatalogDB(tmp_path / "dir.db")


def test_a_constraint_violation_is_left_as_it_is(catalog: Catalog) -> None:
    # a bug in dlfs, not a damaged file: not mapped to Corrupt or Unavailable
    catalog.db.dataset_insert("cats", "plain", "", None, "local", "{}", "[]", "[]")
    with pytest.raises(sqlite3.IntegrityError):
        catalog.db.dataset_insert("cats", "plain", "", None, "local", "{}", "[]", "[]")


@pytest.mark.fuse
@pytest.mark.skipif(not FUSE_OK, reason="needs /dev/fuse and fusermount3")
def test_a_mount_of_a_damaged_catalog_answers_eio(
    catalog: Catalog, home: Path, sample: Path, tmp_path: Path
) -> None:
    ref = _published(catalog, sample)
    catalog.close()
    path = home / "catalog.db"
    mounter = Mounter(home)
    try:
        m = mounter(ref, tmp_path / "mnt")
        _damage_table(path, "tree_entries")  # under the running daemon
        with pytest.raises(OSError) as info:
            os.listdir(m.path / "train")
        assert info.value.errno == errno.EIO
        log = mountregistry.log_path(Home.at(home), m.path).read_text()
        assert "unexpected error" not in log
    finally:
        mounter.cleanup()  # also fails the test if the daemon logged a traceback


def test_every_step_can_be_undone_for_the_migration_tests(tmp_path: Path) -> None:
    """A catalog made now, taken back to schema 4 by the tests' undo list and
    reopened, migrates to the same schema: the list undoes each step exactly."""
    home = tmp_path / "home"
    with Catalog(home) as cat:
        cat.create_dataset("pets")
        cat.add_bytes("pets", "a/1.jpg", b"1", annotations=[{"label": "dog"}])
        cat.publish("pets")

    def schema() -> list[tuple[str, str]]:
        conn = sqlite3.connect(home / "catalog.db")
        try:
            rows = conn.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name")
            return [(t, n, s) for t, n, s in rows]
        finally:
            conn.close()

    assert sorted(SCHEMA_UNDO) == [v for v, _name, _step in MIGRATIONS if v > 4]
    before = schema()
    downgrade_catalog(home, 4)
    with Catalog(home) as cat:
        assert [d.name for d in cat.datasets()] == ["pets"]
    assert schema() == before

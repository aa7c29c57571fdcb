"""One connection to the catalog file: opening, pragmas, transactions, and where
sqlite3's exceptions become dlfs errors.

:class:`CatalogCore` is the base the query groups (:mod:`dlfs.catalog.datasets`,
:mod:`~dlfs.catalog.trees`, :mod:`~dlfs.catalog.items`,
:mod:`~dlfs.catalog.maintenance`) build on; :class:`dlfs.catalog.CatalogDB` composes
them. Every statement goes through one of four helpers (:meth:`CatalogCore._one`,
``_all``, ``_run``, ``_many``), and those are where a foreign exception is translated,
with ``raise ... from exc``:

- ``sqlite3.OperationalError`` (locked, busy, cannot open, disk I/O, no such table)
  becomes :class:`~dlfs.errors.Unavailable`;
- any other ``sqlite3.DatabaseError`` ("database disk image is malformed", "file is
  not a database") becomes :class:`~dlfs.errors.Corrupt`;
- ``IntegrityError`` and ``ProgrammingError`` are left as they are: they mean a bug in
  dlfs, not a damaged file.

The helpers are the only layer between a query method and the connection, so the
daemon's per-request queries (``entry``, ``entries_after``, ``item_get``,
``version_get``) pay nothing more than a ``try`` block, which costs nothing in
Python 3.11 until something is raised.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import sys
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def _import_sqlite_utils() -> None:
    """Import ``sqlite_utils`` without letting it import pandas and numpy.

    ``sqlite_utils.db`` imports both at import time when they are installed (0.5 s of
    a 0.65 s ``dlfs --version`` on an ML machine), only to map their scalar types when
    it infers column types, which dlfs never asks of it (the schema is SQL). While it
    is first imported, each of them that is not loaded yet is marked absent in
    ``sys.modules`` (an import of a ``None`` entry raises ``ImportError``, which
    sqlite_utils expects); the marks are removed right after, so the program imports
    them later as usual. Already loaded, they are left alone."""
    if "sqlite_utils" in sys.modules:
        return
    blocked = [name for name in ("pandas", "numpy") if name not in sys.modules]
    for name in blocked:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        import sqlite_utils  # noqa: F401
    finally:
        for name in blocked:
            if sys.modules.get(name, False) is None:
                del sys.modules[name]


_import_sqlite_utils()

import sqlite_utils  # noqa: E402

from dlfs.catalog.schema import MIGRATIONS, SCHEMA_VERSION  # noqa: E402
from dlfs.errors import Corrupt, DlfsError, Unavailable  # noqa: E402

Row = sqlite3.Row

_NOT_MAPPED = (sqlite3.IntegrityError, sqlite3.ProgrammingError)
"""sqlite3 errors that mean a bug in dlfs rather than a damaged or unreachable file."""


def catalog_error(exc: sqlite3.DatabaseError, path: Path) -> DlfsError:
    """The dlfs error a failed statement on the catalog ``path`` reports:
    :class:`Unavailable` for an ``OperationalError``, :class:`Corrupt` otherwise."""
    if isinstance(exc, sqlite3.OperationalError):
        return Unavailable(f"catalog {path} is unreachable: {exc}")
    return Corrupt(f"catalog {path} is damaged: {exc}")


class CatalogCore:
    """One connection to a catalog file: lifecycle, pragmas, transactions.

    A connection belongs to one thread (SQLite connections are not shared); the
    daemon opens one per thread. ``readonly=True`` opens the file for reading only;
    otherwise the file is created if needed (private to its owner), put in WAL mode
    and migrated to :data:`~dlfs.catalog.schema.SCHEMA_VERSION`.
    """

    def __init__(self, path: Path, readonly: bool = False) -> None:
        self.path = path
        self.readonly = readonly
        self._depth = 0
        self._owner = threading.get_ident()
        conn: sqlite3.Connection | None = None
        try:
            if readonly:
                uri = f"file:{path}?mode=ro"
                conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=30)
            else:
                # Private to its owner: made 0600 here (SQLite gives the -wal and -shm
                # files the database's mode). Not by umask: it is process-wide, and
                # threads opening catalogs at once left it at 077 for the process.
                with contextlib.suppress(OSError):  # SQLite says what is wrong
                    os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
                conn = sqlite3.connect(str(path), isolation_level=None, timeout=30)
                conn.execute("PRAGMA journal_mode=WAL")
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=OFF")
            conn.execute("PRAGMA cache_size=-65536")
        except sqlite3.Error as exc:
            if conn is not None:
                conn.close()
            if isinstance(exc, sqlite3.DatabaseError) and not isinstance(
                exc, sqlite3.OperationalError
            ):
                raise catalog_error(exc, path) from exc
            raise Unavailable(f"cannot open catalog {path}: {exc}") from exc
        self.conn: sqlite3.Connection = conn
        self.db = sqlite_utils.Database(conn, execute_plugins=False)  # no entry-point scan
        if not readonly:
            self.migrate()

    # -- the statement helpers: every query goes through one ----------------------

    def _one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        try:
            row: Row | None = self.conn.execute(sql, params).fetchone()
        except _NOT_MAPPED:
            raise
        except sqlite3.DatabaseError as exc:
            raise catalog_error(exc, self.path) from exc
        return row

    def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        try:
            return self.conn.execute(sql, params).fetchall()
        except _NOT_MAPPED:
            raise
        except sqlite3.DatabaseError as exc:
            raise catalog_error(exc, self.path) from exc

    def _run(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        """Execute one statement (a write or a pragma); the cursor gives its
        ``rowcount`` and ``lastrowid``."""
        try:
            return self.conn.execute(sql, params)
        except _NOT_MAPPED:
            raise
        except sqlite3.DatabaseError as exc:
            raise catalog_error(exc, self.path) from exc

    def _many(self, sql: str, rows: Iterable[Sequence[Any]]) -> sqlite3.Cursor:
        try:
            return self.conn.executemany(sql, rows)
        except _NOT_MAPPED:
            raise
        except sqlite3.DatabaseError as exc:
            raise catalog_error(exc, self.path) from exc

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

    def _rollback(self) -> None:
        # SQLite has already rolled back by itself after some errors (disk I/O, full
        # disk); a second ROLLBACK would then hide the error that caused it.
        if self.conn.in_transaction:
            self._run("ROLLBACK")

    # -- lifecycle ----------------------------------------------------------------

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()

    def map_for_reading(self, nbytes: int = 1 << 30) -> None:
        """Read the file through a memory map of up to ``nbytes`` (``mmap_size``).

        A page read from a cold file then brings its neighbours in too (the kernel
        reads around a fault), so a cold walk of many folders costs far fewer disk
        requests. Meant for the daemon's read-only connection.
        """
        self._run(f"PRAGMA mmap_size={int(nbytes)}")

    def schema_version(self) -> int:
        """The ``user_version`` of the file."""
        row = self._one("PRAGMA user_version")
        assert row is not None
        return int(row[0])

    def migrate(self) -> None:
        """Bring the file to :data:`~dlfs.catalog.schema.SCHEMA_VERSION`, one
        transaction per step."""
        current = self.schema_version()
        if current > SCHEMA_VERSION:
            raise Corrupt(
                f"catalog {self.path} has schema {current}, newer than this dlfs"
                f" ({SCHEMA_VERSION}): upgrade dlfs"
            )
        for version, _name, step in MIGRATIONS:
            if version <= current:
                continue
            self._run("BEGIN IMMEDIATE")
            try:
                try:
                    step(self.db)
                except _NOT_MAPPED:
                    raise
                except sqlite3.DatabaseError as exc:
                    raise catalog_error(exc, self.path) from exc
                self._run(f"PRAGMA user_version={version}")
                self._run("COMMIT")
            except BaseException:
                self._rollback()
                raise

    # -- transactions -------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One write transaction; nested uses join the outer one.

        Any exception rolls everything back, so the catalog is exactly as before. A
        catalog another process holds is :class:`Unavailable` ("busy"); a commit that
        fails is a :class:`DlfsError` ("cannot commit"), rolled back.
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
        except sqlite3.DatabaseError as exc:
            raise catalog_error(exc, self.path) from exc
        self._depth = 1
        try:
            yield
        except BaseException:
            self._depth = 0
            self._rollback()
            raise
        self._depth = 0
        try:
            self.conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            message = f"cannot commit to catalog {self.path}: {exc}"
            if isinstance(exc, sqlite3.OperationalError):
                raise Unavailable(message) from exc
            if isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, _NOT_MAPPED):
                raise Corrupt(message) from exc
            raise DlfsError(message) from exc

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """A read transaction: every query inside sees the same committed state."""
        if self._depth:
            yield
            return
        self._run("BEGIN")
        self._depth = 1
        try:
            yield
        finally:
            self._depth = 0
            self._run("COMMIT")

    # -- durability, for writable draft mounts ------------------------------------

    def data_version(self) -> int:
        """A number that changes when *another* connection commits (``PRAGMA
        data_version``): a writable mount's cheap test for edits made elsewhere."""
        row = self._one("PRAGMA data_version")
        assert row is not None
        return int(row[0])

    def set_synchronous(self, full: bool) -> None:
        """``synchronous=FULL`` (every commit survives power loss) or ``NORMAL`` (a
        commit survives a crash of the process; in WAL mode it costs no fsync)."""
        self._run(f"PRAGMA synchronous={'FULL' if full else 'NORMAL'}")

    def set_autocheckpoint(self, pages: int) -> None:
        """Checkpoint the WAL into the main file every ``pages`` pages (``wal_autocheckpoint``)."""
        self._run(f"PRAGMA wal_autocheckpoint={int(pages)}")

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

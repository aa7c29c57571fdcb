"""Helpers every tier shares: the one runner of the real ``dlfs`` command, sample trees,
and snapshots of a catalog to compare before and after a command.

``tests/conftest.py`` re-exports these names, so ``from tests.conftest import Cli``
keeps working.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Result:
    """What one ``dlfs`` run did."""

    code: int
    out: str
    err: str

    def json(self) -> object:
        return json.loads(self.out)


@dataclass
class Cli:
    """Runs the real ``dlfs`` command in a subprocess against one catalog home: the
    only runner of the CLI in the tests (``fsutil.dlfs`` is a shorthand for it)."""

    home: Path

    def env(self) -> dict[str, str]:
        """The environment of a ``dlfs`` run: this process's, with ``DLFS_HOME``."""
        return {**os.environ, "DLFS_HOME": str(self.home)}

    def run(
        self,
        *args: str,
        input: bytes | None = None,
        timeout: float = 120,
        cwd: Path | None = None,
    ) -> subprocess.CompletedProcess[bytes]:
        """Run ``dlfs args`` to the end; its raw output."""
        return subprocess.run(
            [sys.executable, "-m", "dlfs", *args],
            capture_output=True,
            env=self.env(),
            input=input,
            timeout=timeout,
            cwd=cwd,
        )

    def __call__(
        self,
        *args: str,
        ok: bool = True,
        input: bytes | None = None,
        timeout: float = 120,
        cwd: Path | None = None,
    ) -> Result:
        """Run ``dlfs args``; with ``ok`` (the default) a failure is an AssertionError
        that shows its stderr."""
        proc = self.run(*args, input=input, timeout=timeout, cwd=cwd)
        res = Result(proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode())
        if ok and res.code != 0:
            raise AssertionError(f"dlfs {' '.join(args)} failed ({res.code}): {res.err}")
        return res

    def bytes(self, *args: str) -> bytes:
        """The stdout of a successful ``dlfs args``, as bytes (``dlfs cat``)."""
        proc = self.run(*args)
        assert proc.returncode == 0, proc.stderr.decode()
        return proc.stdout

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        """Start ``dlfs args`` in the background, its output discarded (crash tests)."""
        return subprocess.Popen(
            [sys.executable, "-m", "dlfs", *args],
            env=self.env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )


def make_tree(root: Path, files: dict[str, bytes]) -> Path:
    """Write ``{relative path: bytes}`` under ``root``; return ``root``."""
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


SAMPLE = {
    "cat.jpg": b"meow" * 1000,
    "train/a.jpg": b"A" * 5000,
    "train/b.jpg": b"B" * 7000,
    "train/deep/c.txt": b"deep file\n",
    "val/a.jpg": b"A" * 5000,  # same bytes as train/a.jpg: stored once
}


def catalog_dump(home: Path) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every table of a catalog, to compare before and after a command."""
    conn = sqlite3.connect(f"file:{home / 'catalog.db'}?mode=ro", uri=True)
    try:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
            )
        ]
        return {t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in tables}
    finally:
        conn.close()


def blob_files(home: Path) -> set[str]:
    """The names of the blob files in a catalog's local store."""
    root = home / "blobs"
    return {p.name for p in root.glob("??/*")} if root.exists() else set()


# What undoes each schema step after 4 (dlfs/catalog/schema.py), newest last: the
# tests of a migration take a catalog made now back to an older schema, then reopen
# it. A new step adds its undo here (tests/catalog/test_catalog.py checks they match).
SCHEMA_UNDO: dict[int, list[str]] = {
    5: ["DROP TABLE projects"],
    6: [
        "DROP INDEX tree_entries_folders",
        *(f"ALTER TABLE trees DROP COLUMN {c}" for c in ("posix", "mtime", "ctime", "atime")),
        "ALTER TABLE items DROP COLUMN ctime",
        "ALTER TABLE items DROP COLUMN atime",
    ],
    7: ["DROP TABLE version_changes"],
    8: [
        "DROP TRIGGER items_add_labels",
        "DROP TRIGGER items_forget_labels",
        "DROP TRIGGER trees_forget_labels",
        "DROP TABLE item_labels",
        "DROP TABLE tree_labels",
        "DROP TABLE trees_labelled",
    ],
}


def downgrade_catalog(home: Path, to: int) -> None:
    """Take the catalog of ``home`` (closed, at the newest schema) back to schema
    ``to`` by undoing the later steps, newest first."""
    conn = sqlite3.connect(home / "catalog.db")
    try:
        current = conn.execute("PRAGMA user_version").fetchone()[0]
        for step in range(current, to, -1):
            for statement in SCHEMA_UNDO[step]:
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version={to}")
        conn.commit()
    finally:
        conn.close()

"""Shared fixtures: a catalog in a temp dir, a CLI runner, sample source trees."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dlfs import Catalog


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """An empty catalog home (created on first use)."""
    return tmp_path / "home"


@pytest.fixture
def catalog(home: Path) -> Iterator[Catalog]:
    """A catalog in a temp dir."""
    cat = Catalog(home)
    try:
        yield cat
    finally:
        cat.close()


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
    """Runs the real ``dlfs`` command in a subprocess against one catalog home."""

    home: Path

    def __call__(self, *args: str, ok: bool = True, input: bytes | None = None) -> Result:
        env = {**os.environ, "DLFS_HOME": str(self.home)}
        proc = subprocess.run(
            [sys.executable, "-m", "dlfs", *args],
            capture_output=True,
            env=env,
            input=input,
            timeout=120,
        )
        res = Result(proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode())
        if ok and res.code != 0:
            raise AssertionError(f"dlfs {' '.join(args)} failed ({res.code}): {res.err}")
        return res

    def bytes(self, *args: str) -> bytes:
        env = {**os.environ, "DLFS_HOME": str(self.home)}
        proc = subprocess.run(
            [sys.executable, "-m", "dlfs", *args], capture_output=True, env=env, timeout=120
        )
        assert proc.returncode == 0, proc.stderr.decode()
        return proc.stdout


@pytest.fixture
def cli(home: Path) -> Cli:
    """The ``dlfs`` command bound to the temp catalog."""
    return Cli(home)


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


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    """A small source folder with nested folders and one duplicate file."""
    return make_tree(tmp_path / "src", SAMPLE)


def catalog_dump(home: Path) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every table of a catalog, to compare before and after a command."""
    import sqlite3

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


# -- S3 on loopback (tests/s3server.py, tests/s3proxy.py) ------------------------------


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A moto S3 server on 127.0.0.1, once per session, with dummy credentials in the
    environment (no profile or config file of the machine is read)."""
    from tests import s3server

    logs = tmp_path_factory.mktemp("moto")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_ACCESS_KEY_ID", s3server.ACCESS_KEY)
        mp.setenv("AWS_SECRET_ACCESS_KEY", s3server.SECRET_KEY)
        mp.setenv("AWS_DEFAULT_REGION", s3server.REGION)
        mp.setenv("AWS_CONFIG_FILE", str(logs / "no-aws-config"))
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", str(logs / "no-aws-credentials"))
        mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
            mp.delenv(name, raising=False)
        server = s3server.start(logs / "moto.log")
        try:
            yield server
        finally:
            s3server.stop(server)


@pytest.fixture
def s3(s3_server: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> object:
    """The S3 server, with dlfs pointed at it (also in ``dlfs`` subprocesses): a
    private block cache, small blocks (64 KiB) and short timeouts."""
    monkeypatch.setenv("DLFS_S3_ENDPOINT", s3_server.endpoint)  # type: ignore[attr-defined]
    monkeypatch.setenv("DLFS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("DLFS_S3_BLOCK_SIZE", "64K")
    monkeypatch.setenv("DLFS_S3_TIMEOUT", "5")
    monkeypatch.setenv("DLFS_S3_ATTEMPT_TIMEOUT", "2")
    return s3_server

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

"""kill -9 in the middle of ``dlfs add`` or ``publish``: the catalog stays consistent and
nothing published is lost."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from dlfs import Catalog
from tests.conftest import SAMPLE, Cli, make_tree

pytestmark = pytest.mark.slow


def start(home: Path, *args: str) -> subprocess.Popen[bytes]:
    return Cli(home).start(*args)


def kill_after(proc: subprocess.Popen[bytes], seconds: float) -> bool:
    """SIGKILL ``proc`` after ``seconds``; True if it was still running then."""
    time.sleep(seconds)
    running = proc.poll() is None
    if running:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    return running


def timed(home: Path, *args: str) -> float:
    """How long ``dlfs args`` takes to run to the end against a copy of ``home``."""
    copy = home.parent / "timing-home"
    shutil.copytree(home, copy)
    try:
        t0 = time.monotonic()
        assert start(copy, *args).wait(timeout=120) == 0
        return time.monotonic() - t0
    finally:
        shutil.rmtree(copy)


def kill_midway(home: Path, fraction: float, *args: str) -> None:
    """Run ``dlfs args`` and SIGKILL it at ``fraction`` of its usual duration.

    If it finished before the kill, the home is restored and the kill comes earlier,
    so the test never passes without having killed the command.
    """
    pristine = home.parent / "pristine-home"
    shutil.copytree(home, pristine)
    delay = timed(home, *args) * fraction
    for _attempt in range(6):
        if kill_after(start(home, *args), delay):
            shutil.rmtree(pristine)
            return
        shutil.rmtree(home)
        shutil.copytree(pristine, home)
        delay /= 2
    pytest.fail("the command always finished before it could be killed")


def check_consistent(home: Path) -> None:
    conn = sqlite3.connect(home / "catalog.db")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    with Catalog(home) as cat:
        assert cat.fsck() == []
        v0 = cat.version("cats@v0")
        for rel, data in SAMPLE.items():
            assert v0.read_bytes(rel) == data


@pytest.fixture
def home_with_v0(home: Path, sample: Path) -> Path:
    with Catalog(home) as cat:
        cat.create_dataset("cats")
        cat.add("cats", [sample])
        cat.publish("cats")
        cat.create_version("cats", parents=["cats@v0"])
    return home


@pytest.mark.parametrize("fraction", [0.4, 0.7, 0.9])
def test_kill_during_add(home_with_v0: Path, tmp_path: Path, fraction: float) -> None:
    files = {f"d{i % 20}/f{i}.bin": os.urandom(32 * 1024) for i in range(1500)}
    src = make_tree(tmp_path / "many", files)
    kill_midway(home_with_v0, fraction, "add", "cats", str(src))
    check_consistent(home_with_v0)
    with Catalog(home_with_v0) as cat:
        got = {f.path for f in cat.draft("cats").files()} - set(SAMPLE)
        assert got in (set(), set(files)), "an add is all or nothing"
        cat.add("cats", [src])  # the interrupted work can simply be redone
        assert {f.path for f in cat.draft("cats").files()} >= set(files)
        assert not list((home_with_v0 / "blobs" / ".staging").glob("*/*"))
        for rel in list(files)[:50]:
            assert cat.draft("cats").read_bytes(rel) == files[rel]


@pytest.mark.parametrize("fraction", [0.6, 0.8, 0.95])
def test_kill_during_publish(home_with_v0: Path, fraction: float) -> None:
    with Catalog(home_with_v0) as cat:
        cat.mkdir("cats", [f"many/f{i}/sub" for i in range(6000)], parents=True)
        cat.add_bytes("cats", "many/f0/sub/x.txt", b"x")
        expect = {f.path for f in cat.draft("cats").files()}
    kill_midway(home_with_v0, fraction, "publish", "cats")
    check_consistent(home_with_v0)
    with Catalog(home_with_v0) as cat:
        versions = cat.dataset("cats").versions()
        states = [v.state for v in versions]
        assert states in (["published", "draft"], ["published", "published"])
        assert {f.path for f in versions[-1].files()} == expect
        if states[-1] == "draft":
            cat.publish("cats")
        assert cat.version("cats@v1").read_bytes("many/f0/sub/x.txt") == b"x"

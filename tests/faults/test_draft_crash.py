"""``kill -9`` of the daemon of a writable draft while files are being written: after
a remount every file whose ``close`` returned is there with its bytes, nothing that
was still open is (no partial garbage), and the dead daemon's staging files and
locks are gone."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dlfs import Catalog
from tests.fsutil import Mounter, is_mounted, process_alive, wait_for

pytestmark = pytest.mark.fuse

WRITTEN = 60
"""Files closed before the daemon is killed (the writer goes on writing meanwhile)."""

# Writes files one after the other and logs each name once its close returned.
WRITER = """
import os, sys
root, log = sys.argv[1], sys.argv[2]
with open(log, "a", buffering=1) as out:
    i = 0
    while True:
        name = "f%05d.bin" % i
        data = (b"file %d\\n" % i) * (1 + (i * 37) % 3000)
        try:
            with open(os.path.join(root, name), "wb") as f:
                f.write(data[: len(data) // 2])
                f.flush()
                f.write(data[len(data) // 2 :])
        except OSError:
            break
        out.write(name + "\\n")
        i += 1
"""


def content(name: str) -> bytes:
    i = int(name[1:6])
    return (b"file %d\n" % i) * (1 + (i * 37) % 3000)


def test_kill_9_during_writes_keeps_every_closed_file(home: Path, mounter: Mounter, tmp_path: Path):
    with Catalog(home) as cat:
        cat.create_dataset("crash")
        cat.add_bytes("crash", "before.txt", b"there before the crash\n")
    mnt = tmp_path / "mnt"
    first = mounter("crash@draft", mnt)
    (mnt / "out").mkdir()
    log = tmp_path / "closed.log"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(mnt / "out"), str(log)])
    # Opened after the fork: a child closing its copy of the descriptor would be a
    # close of the file, and commit it.
    partial = open(mnt / "out" / "partial.bin", "wb", buffering=0)  # noqa: SIM115
    partial.write(b"never closed " * 1000)
    try:
        assert wait_for(lambda: log.exists() and len(log.read_text().split()) >= WRITTEN, 120)
        os.kill(first.pid, signal.SIGKILL)
        assert wait_for(lambda: not process_alive(first.pid), 30), "the daemon outlived -9"
        writer.wait(timeout=30)
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()
        with contextlib.suppress(OSError):  # its daemon is gone
            partial.close()
    closed = log.read_text().split()
    assert len(closed) >= WRITTEN
    staging = home / "blobs" / ".staging"
    assert is_mounted(mnt)  # stale: nobody serves it
    time.sleep(0.1)

    second = mounter("crash@draft", mnt)  # clears the stale mount, takes the lock
    assert second.pid != first.pid
    names = sorted(os.listdir(mnt / "out"))
    assert "partial.bin" not in names, "a file that was never closed survived"
    assert set(closed) <= set(names), f"closed files lost: {sorted(set(closed) - set(names))}"
    extra = sorted(set(names) - set(closed))
    assert len(extra) <= 1, f"more than the one file being closed at the kill: {extra}"
    for name in names:
        assert (mnt / "out" / name).read_bytes() == content(name), name
    assert (mnt / "before.txt").read_bytes() == b"there before the crash\n"
    assert not [p for p in staging.iterdir() if p.name.startswith(f"{first.pid}-")]
    (mnt / "out" / "after.txt").write_bytes(b"writable again\n")
    with Catalog(home) as cat:
        version = cat.publish("crash")
        files = {f.path for f in cat.files(version.ref)}
    assert {f"out/{n}" for n in names} | {"before.txt", "out/after.txt"} == files

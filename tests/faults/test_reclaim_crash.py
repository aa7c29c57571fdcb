"""``kill -9`` of a process in the middle of reclaiming blobs (:mod:`dlfs.reclaim`),
and of a draft's daemon after an ``fsync``: nothing reachable is lost, nothing
fsync'ed is lost, and what a killed reclaimer set aside comes back."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from dlfs import Catalog
from dlfs.objects import blob_id
from tests.fsutil import Mounter, dlfs, process_alive, wait_for

KEPT, DROPPED = b"named by b\n" * 300, b"named by nothing\n" * 300

# Reclaims both blobs, and kills itself with SIGKILL at the step named in argv[2].
RECLAIMER = """
import os, signal, sys
from dlfs import Catalog
from dlfs.reclaim import reclaim
from dlfs.stores.local import LocalStore

home, step, blobs = sys.argv[1], sys.argv[2], sys.argv[3:]

def die(*_args):
    os.kill(os.getpid(), signal.SIGKILL)

real = getattr(LocalStore, step)
def at_step(self, *args):
    if step == "set_aside":
        real(self, *args)
    die()
setattr(LocalStore, step, at_step)
with Catalog(home) as cat:
    reclaim(cat.db, cat.store("local"), blobs, keep=set())
"""


@pytest.mark.parametrize("step", ["set_aside", "drop_aside"])
def test_kill_9_during_a_reclaim_loses_nothing_reachable(home: Path, step: str):
    with Catalog(home) as cat:
        cat.create_dataset("a")
        cat.create_dataset("b")
        cat.add_bytes("a", "f", KEPT)
        cat.add_bytes("b", "f", KEPT)
        cat.add_bytes("a", "g", DROPPED)
        cat.rm("a", ["f", "g"])  # KEPT: still b's; DROPPED: nobody's
    blobs = [blob_id(KEPT), blob_id(DROPPED)]
    run = subprocess.run([sys.executable, "-c", RECLAIMER, str(home), step, *blobs])
    assert run.returncode == -signal.SIGKILL
    with Catalog(home) as cat:
        assert b"".join(cat.cat("b@draft", "f")) == KEPT  # reachable: never touched
        assert not cat.store("local").has(blob_id(DROPPED))  # set aside when killed
        recorded = cat.db.blob_recorded(blob_id(DROPPED))
        assert recorded == (step == "set_aside")  # rolled back / committed
        cat.store("local").clear_staging()  # what the next mount, add or gc runs first
        assert cat.store("local").has(blob_id(DROPPED))  # put back: never lost early
        assert cat.fsck() == []
        assert cat.gc()["blobs_removed"] == 1  # then reclaimed for good
        assert not cat.store("local").has(blob_id(DROPPED))
        assert b"".join(cat.cat("b@draft", "f")) == KEPT
        assert cat.fsck() == []
    assert not any((home / "blobs" / ".aside").iterdir())


@pytest.mark.fuse
@pytest.mark.parametrize("fsync", [True, False])
def test_kill_9_while_appending_keeps_what_was_closed_or_fsynced(
    home: Path, mounter: Mounter, tmp_path: Path, fsync: bool
):
    """Appends to a large file go on in its blob's own file (taken back): a daemon
    killed meanwhile must leave the last closed (or fsynced) bytes readable."""
    with Catalog(home) as cat:
        cat.create_dataset("logs")
    mnt = tmp_path / "mnt"
    first = mounter("logs@draft", mnt)
    closed = b"".join(bytes([i]) * (256 << 10) for i in range(8))
    for i in range(8):  # appends that close: each supersedes (and reclaims) the last
        with open(mnt / "log", "ab") as f:
            f.write(bytes([i]) * (256 << 10))
    f = open(mnt / "log", "ab", buffering=0)  # noqa: SIM115
    kept = closed
    if fsync:
        f.write(b"fsynced\n")
        os.fsync(f.fileno())
        kept += b"fsynced\n"
    f.write(b"neither closed nor fsynced\n")
    os.kill(first.pid, signal.SIGKILL)
    assert wait_for(lambda: not process_alive(first.pid), 30), "the daemon outlived -9"
    with contextlib.suppress(OSError):  # its daemon is gone
        f.close()
    dlfs(home, "umount", "--lazy", str(mnt), ok=False)
    mounter("logs@draft", mnt)  # puts back what the dead daemon had taken
    assert (mnt / "log").read_bytes() == kept
    with Catalog(home) as cat:
        assert b"".join(cat.cat("logs@draft", "log")) == kept
        assert cat.fsck() == []

"""Helpers for the real-FUSE tests: generated trees, catalogs, the ``dlfs`` command,
and :class:`Mounter`, which mounts through ``dlfs mount``, always unmounts, and fails
the test if a daemon it started logged an unexpected error (:mod:`checklogs`).

Only processes started through these helpers (``dlfs mount``) are ever signalled,
by pid; a mount left behind is cleared with ``fusermount3 -u -z``.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlfs import Catalog, mountregistry
from dlfs.home import Home
from tests.checklogs import daemon_log_problems
from tests.helpers import Cli, Result

FUSE_OK = os.path.exists("/dev/fuse") and shutil.which("fusermount3") is not None

META = {"label": "greeting", "score": 0.5, "nested": {"ok": True}}
ANNOTATIONS = [{"type": "box", "label": "cat", "coords": [1, 2, 3, 4]}]


def dlfs(home: Path, *args: str, ok: bool = True, timeout: float = 120) -> Result:
    """Run the real ``dlfs`` command against ``home`` (:class:`tests.helpers.Cli`)."""
    return Cli(home)(*args, ok=ok, timeout=timeout)


def generate_tree(root: Path, seed: int = 7) -> Path:
    """A source folder with the shapes that matter: empty and 1-byte files, files
    around the 128 KiB read size, one file above the inline verification limit,
    duplicate contents, odd names (spaces, unicode, 255 bytes), deep and empty
    folders."""
    rnd = random.Random(seed)
    files: dict[str, bytes] = {
        "empty.txt": b"",
        "one.bin": b"x",
        "text/hello.txt": b"hello world\n",
        "names/with space.txt": b"spaces\n",
        "names/ünïcödé ✓.txt": b"unicode\n",
        "names/" + "n" * 255: b"longest name\n",
        "deep/a/b/c/d/e/leaf.txt": b"leaf\n",
        "big/large.bin": rnd.randbytes(3 * 1024 * 1024 + 17),
        "big/exact128k.bin": rnd.randbytes(128 * 1024),
        "big/128k_plus_one.bin": rnd.randbytes(128 * 1024 + 1),
    }
    for i in range(30):
        files[f"images/train/img_{i:03d}.jpg"] = rnd.randbytes(rnd.randint(1, 200 * 1024))
    for i in range(8):
        files[f"images/val/img_{i:03d}.jpg"] = rnd.randbytes(rnd.randint(1, 64 * 1024))
    files["dup/copy_of_img_000.jpg"] = files["images/train/img_000.jpg"]
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (root / "empty_folder").mkdir()
    return root


def build_catalog(home: Path, source: Path, name: str = "cats", storage: str = "local") -> str:
    """A dataset with one published version of ``source``, its blobs in ``storage``;
    its exact ref NAME@ID.

    ``text/hello.txt`` gets metadata and annotations (set on the draft).
    """
    with Catalog(home) as cat:
        cat.create_dataset(name, storage=storage)
        cat.add(name, [source])
        cat.set_meta(name, "text/hello.txt", metadata=META, annotations=ANNOTATIONS)
        return cat.publish(name).ref


def is_mounted(path: Path) -> bool:
    return str(path) in mountregistry.proc_mounts()


def process_alive(pid: int) -> bool:
    return mountregistry.process_start(pid) is not None


def wait_for(predicate: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


@dataclass
class Mount:
    """One mount made by a test."""

    home: Path
    path: Path
    ref: str | None
    pid: int
    version: str | None


@dataclass
class Mounter:
    """Mounts through ``dlfs mount`` and guarantees unmounting at teardown; then the
    daemons' logs must hold no error but those ``expect_log`` allows (patterns, as
    the ``expect_log`` marker takes)."""

    home: Path
    made: list[Mount] = field(default_factory=list)
    pids: set[int] = field(default_factory=set)
    expect_log: list[str] = field(default_factory=list)

    def __call__(self, ref: str | None, path: Path, *options: str) -> Mount:
        path.mkdir(parents=True, exist_ok=True)
        args = ["mount", *options, *([ref] if ref else []), str(path)]
        res = dlfs(self.home, *args, ok=False)
        record = mountregistry.read_record(Home.at(self.home), path)
        if record is not None:
            self.pids.add(record.pid)
            self.made.append(Mount(self.home, path, ref, record.pid, record.version))
        if res.code != 0:
            raise AssertionError(f"dlfs {' '.join(args)} failed ({res.code}): {res.err}")
        assert record is not None, "mounted but no record"
        return self.made[-1]

    def track(self, path: Path) -> None:
        """Also clean up ``path`` (a mount started another way, e.g. --foreground)."""
        self.made.append(Mount(self.home, path, None, 0, None))

    def cleanup(self) -> None:
        for m in reversed(self.made):
            if is_mounted(m.path):
                dlfs(self.home, "umount", "--lazy", str(m.path), ok=False)
            if is_mounted(m.path):
                subprocess.run(["fusermount3", "-u", "-z", str(m.path)], capture_output=True)
        for pid in self.pids:  # only daemons these tests started
            if process_alive(pid):
                os.kill(pid, 15)
                wait_for(lambda pid=pid: not process_alive(pid), 10)
        left = [str(m.path) for m in self.made if is_mounted(m.path)]
        assert not left, f"mounts left behind: {left}"
        # Like S3QL's test plugin: a daemon that hit an unexpected error fails the test.
        for path in sorted({mountregistry.log_path(Home.at(self.home), m.path) for m in self.made}):
            problems = daemon_log_problems(path, self.expect_log)
            shown = "\n".join(problems)[-3000:]
            assert not problems, f"the daemon logged unexpected errors ({path}):\n{shown}"


@dataclass
class Shared:
    """A module's read-only mount of one published version."""

    home: Path
    source: Path
    ref: str
    mount: Mount

    @property
    def path(self) -> Path:
        return self.mount.path


def own_mounts(home: Path) -> list[dict[str, Any]]:
    """``dlfs mounts --json`` of ``home``, only the mounts under the test's own folder
    (``home``'s parent): the command also lists the stale dlfs mounts of the whole
    machine, such as one a test running beside this one leaves for a moment."""
    data = dlfs(home, "mounts", "--json").json()
    assert isinstance(data, list)
    mine = str(home.parent) + "/"
    return [m for m in data if str(m["mountpoint"]).startswith(mine)]

"""Coordination between a writable draft mount and whoever publishes that draft.

Three small files per mounted draft, under ``<home>/mounts/``:

- ``draft-<id>.lock``: the daemon serving the draft read-write holds an exclusive
  ``flock`` on it for its whole life, and writes its pid and mountpoint in it. A
  second writable mount of the draft cannot take the lock and fails with a clear
  message. The kernel drops the lock when the daemon dies, even by ``kill -9``.
- ``draft-<id>.writers``: the daemon holds a *shared* ``flock`` on it while any file
  is open for writing in the mount. :func:`publishing` takes it *exclusively*,
  without blocking the daemon: while files are open for writing the publish waits a
  little (:data:`PUBLISH_WAIT`, ``$DLFS_PUBLISH_WAIT``), then refuses, and nothing
  changes. While a publish
  holds it, opening a file for writing waits for the publish to end (at most
  :data:`WRITE_WAIT`), then sees the draft published and fails with ``EROFS``.
- ``draft-<id>.published``: written by the publish before its transaction commits,
  with the new version id, so the mount can follow its draft to the published
  version (the draft's id changes at publish). The daemon reads it only once its
  draft id is gone from the catalog, so a publish that rolled back is ignored.

Files are removed by the daemon when it exits; a crashed daemon's files stay (they
hold nothing: a lock on a file nobody has open is free) until the draft is mounted
again or published. Files are only removed by whoever holds their lock, and a lock
holder re-checks that the path still names its file, so two mounts can never both
think they hold a draft.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

from dlfs.durable import syncfs
from dlfs.errors import Conflict
from dlfs.home import Home

PUBLISH_WAIT = float(os.environ.get("DLFS_PUBLISH_WAIT") or 5.0)
"""Seconds a publish waits for the files open for writing in a mount to be closed
(``$DLFS_PUBLISH_WAIT``, default 5)."""

WRITE_WAIT = 10.0
"""Seconds opening a file for writing waits while the draft is being published."""


def lock_path(home: Home, draft: str, kind: str) -> Path:
    """``<home>/mounts/draft-<id>.<kind>`` (``lock``, ``writers`` or ``published``)."""
    return home.mounts / f"draft-{draft}.{kind}"


def published_as(home: Home, draft: str) -> str | None:
    """The id a draft mounted read-write was published as, if a publish said so (the
    note lives while the mount does)."""
    try:
        text = lock_path(home, draft, "published").read_text().strip()
    except OSError:
        return None
    return text or None


def _open_locked(path: Path, operation: int) -> int | None:
    """An fd of ``path`` locked with ``operation`` (non-blocking), or None if taken.

    Retries when the file was replaced between open and lock (its owner removed it).
    """
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, operation | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)


def _owner(path: Path) -> str:
    try:
        info = json.loads(path.read_text())
        return f" at {info['mountpoint']} (pid {info['pid']})"
    except (OSError, ValueError, KeyError, TypeError):
        return ""


class MountLock:
    """The locks a writable mount of one draft holds (see the module docstring)."""

    def __init__(self, home: Home, draft: str, fd: int) -> None:
        self.home = home
        self.draft = draft
        self._fd = fd
        self._writers_fd: int | None = None

    @classmethod
    def acquire(cls, home: Home, draft: str, mountpoint: str) -> MountLock:
        """Take the draft's mount lock; :class:`Conflict` if another mount holds it."""
        home.mounts.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = lock_path(home, draft, "lock")
        fd = _open_locked(path, fcntl.LOCK_EX)
        if fd is None:
            raise Conflict(
                f"draft {draft} is already mounted read-write{_owner(path)}: a draft has"
                " at most one writable mount (unmount it, or mount this one with -o ro)"
            )
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "mountpoint": mountpoint}).encode(), 0)
        lock_path(home, draft, "published").unlink(missing_ok=True)
        return cls(home, draft, fd)

    @property
    def writing(self) -> bool:
        """True while the writers lock is held."""
        return self._writers_fd is not None

    def start_writing(self, timeout: float = WRITE_WAIT) -> None:
        """Hold the writers lock (shared); waits while a publish holds it.

        Raises :class:`Conflict` if the publish takes longer than ``timeout``.
        """
        if self._writers_fd is not None:
            return
        path = lock_path(self.home, self.draft, "writers")
        deadline = time.monotonic() + timeout
        while True:
            fd = _open_locked(path, fcntl.LOCK_SH)
            if fd is not None:
                self._writers_fd = fd
                return
            if time.monotonic() > deadline:
                raise Conflict(f"draft {self.draft} is being published; try again")
            time.sleep(0.005)

    def stop_writing(self) -> None:
        """Release the writers lock: a publish may proceed."""
        if self._writers_fd is not None:
            os.close(self._writers_fd)
            self._writers_fd = None

    def published_as(self) -> str | None:
        """The id the draft was published as, if a publish said so."""
        return published_as(self.home, self.draft)

    def release(self) -> None:
        """Remove the files and drop the locks (removal first, while still holding)."""
        for kind in ("published", "writers", "lock"):
            lock_path(self.home, self.draft, kind).unlink(missing_ok=True)
        self.stop_writing()
        os.close(self._fd)


class PublishGuard:
    """What :func:`publishing` yields: tell it the new id before committing."""

    def __init__(self, home: Home, draft: str, mounted: bool) -> None:
        self.home = home
        self.draft = draft
        self.mounted = mounted
        """True when a live writable mount serves the draft."""

    def published(self, draft: str, new_id: str) -> None:
        """Record that ``draft`` becomes ``new_id`` (call inside the transaction).

        For a mounted draft this writes the forwarding file and flushes the local
        blob store (``syncfs``): the mount's writes promise survival of a process
        crash only, a published version survives power loss.
        """
        if draft != self.draft:
            raise Conflict(f"draft {self.draft} changed while publishing; try again")
        if not self.mounted:
            return
        path = lock_path(self.home, draft, "published")
        tmp = path.with_suffix(".tmp")
        tmp.write_text(new_id + "\n")
        os.replace(tmp, path)
        if self.home.blobs.exists():
            syncfs(self.home.blobs)


@contextlib.contextmanager
def publishing(home: Home, draft: str, wait: float | None = None) -> Iterator[PublishGuard]:
    """Hold off writers of a mounted ``draft`` for the length of a publish.

    Not mounted read-write: nothing to do. Mounted: wait up to ``wait`` seconds for
    the files open for writing there to be closed (they are committed when closed),
    then hold the writers lock exclusively until the block ends; if they stay open,
    raise :class:`Conflict` and change nothing.
    """
    path = lock_path(home, draft, "lock")
    if not path.exists():
        yield PublishGuard(home, draft, mounted=False)
        return
    probe = _open_locked(path, fcntl.LOCK_EX)
    if probe is not None:  # nobody holds it: the files of a crashed mount
        try:  # removed while locked: a daemon starting now gets a new file
            for kind in ("published", "writers", "lock"):
                lock_path(home, draft, kind).unlink(missing_ok=True)
        finally:
            os.close(probe)
        yield PublishGuard(home, draft, mounted=False)
        return
    writers = lock_path(home, draft, "writers")
    deadline = time.monotonic() + (PUBLISH_WAIT if wait is None else wait)
    while True:
        fd = _open_locked(writers, fcntl.LOCK_EX)
        if fd is not None:
            break
        if time.monotonic() > deadline:
            raise Conflict(
                f"draft {draft} is mounted read-write{_owner(path)} and files are open"
                " for writing there: close them and publish again (nothing was changed)"
            )
        time.sleep(0.02)
    try:
        yield PublishGuard(home, draft, mounted=True)
    finally:
        os.close(fd)


def mounted_at(home: Home, draft: str) -> str | None:
    """Where ``draft`` is mounted read-write (``"<mountpoint> (pid N)"``), or None."""
    path = lock_path(home, draft, "lock")
    if not path.exists():
        return None
    probe = _open_locked(path, fcntl.LOCK_SH)
    if probe is not None:
        os.close(probe)
        return None
    return _owner(path).strip() or "a running daemon"

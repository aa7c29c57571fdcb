"""Folders of a draft mount behave like a directory's: their mode, owner and times are
kept (through a remount and a publish), the kernel enforces them for other users
(sticky and set-group-id folders included), ``st_nlink`` counts sub-folders; fifos,
sockets and device files can be made and are shown as such."""

from __future__ import annotations

import errno
import os
import shutil
import socket
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from dlfs import Catalog
from tests.fsutil import Mount, Mounter, dlfs

OTHER, THIRD = 43_210, 43_211
"""Two uids (and gids) no one uses: processes run as them with ``subprocess(user=)``."""

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as other users")


@pytest.fixture
def reachable() -> Iterator[Path]:
    """A folder other users may reach (pytest's own are the runner's alone)."""
    path = Path(tempfile.mkdtemp(prefix="dlfs-folders-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def draft(reachable: Path, home: Path, published: str, mounter: Mounter) -> Mount:
    """A child draft of the generated tree, mounted read-write for every user."""
    with Catalog(home) as cat:
        cat.create_version("cats", ["cats@latest"])
    return mounter("cats@draft", reachable / "mnt", "-o", "allow_other")


def _as(uid: int, *argv: str) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` as user and group ``uid``."""
    return subprocess.run(
        argv, user=uid, group=uid, extra_groups=[], capture_output=True, text=True
    )


def test_folder_modes_owners_and_times_persist_and_publish(
    home: Path, draft: Mount, mounter: Mounter, tmp_path: Path
) -> None:
    shared = draft.path / "shared"
    shared.mkdir(mode=0o755)
    os.chmod(shared, 0o1777)
    os.chown(shared, OTHER, OTHER)
    os.utime(shared, ns=(5_000_000_000, 7_000_000_000))
    (draft.path / "nest" / "x").mkdir(parents=True)
    assert (draft.path / "nest").stat().st_nlink == 3, "2 + its one sub-folder"
    dlfs(home, "umount", str(draft.path))
    again = mounter("cats@draft", tmp_path / "mnt2").path
    st = (again / "shared").stat()
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o1777, OTHER, OTHER)
    assert st.st_mtime_ns == 7_000_000_000
    dlfs(home, "umount", str(again))
    with Catalog(home) as cat:
        v = cat.publish("cats")
    pub = mounter(f"cats@{v.id}", tmp_path / "pub").path
    st = (pub / "shared").stat()
    assert (stat.S_IMODE(st.st_mode), st.st_uid) == (0o1555, OTHER), "published: no write bits"
    assert st.st_mtime_ns == 7_000_000_000
    assert (pub / "nest").stat().st_nlink == 3


def test_other_users_meet_the_folder_permissions(draft: Mount) -> None:
    private = draft.path / "private"
    private.mkdir(mode=0o700)
    assert _as(OTHER, "ls", str(draft.path)).returncode == 0
    assert _as(OTHER, "ls", str(private)).returncode != 0, "0700 of root: refused"
    box = draft.path / "box"
    box.mkdir()
    os.chown(box, OTHER, OTHER)
    made = _as(OTHER, "sh", "-c", f"mkdir {box}/d && touch {box}/f")
    assert made.returncode == 0, made.stderr
    st = (box / "f").stat()
    assert (st.st_uid, st.st_gid) == (OTHER, OTHER), "owned by who made it"
    assert (box / "d").stat().st_uid == OTHER
    assert _as(THIRD, "touch", f"{box}/g").returncode != 0, "0755 of OTHER: refused"


def test_sticky_folder_guards_other_users_entries(draft: Mount) -> None:
    tmp = draft.path / "tmp"
    tmp.mkdir()
    os.chmod(tmp, 0o1777)
    assert _as(OTHER, "touch", f"{tmp}/mine").returncode == 0
    removed = _as(THIRD, "rm", "-f", f"{tmp}/mine")
    assert removed.returncode != 0 and (tmp / "mine").exists(), "sticky: not THIRD's to remove"
    renamed = _as(THIRD, "mv", f"{tmp}/mine", f"{tmp}/theirs")
    assert renamed.returncode != 0
    assert _as(OTHER, "rm", f"{tmp}/mine").returncode == 0, "its owner may"
    assert not (tmp / "mine").exists()


def test_set_group_id_folder_gives_its_group(draft: Mount) -> None:
    team = draft.path / "team"
    team.mkdir()
    os.chown(team, 0, OTHER)
    os.chmod(team, 0o2777)
    assert _as(THIRD, "sh", "-c", f"touch {team}/f && mkdir {team}/d").returncode == 0
    assert (team / "f").stat().st_gid == OTHER
    st = (team / "d").stat()
    assert st.st_gid == OTHER and st.st_mode & stat.S_ISGID


def test_folder_times_move_with_its_entries(draft: Mount) -> None:
    folder = draft.path / "deep"
    for change in (
        lambda: (folder / "new.txt").write_bytes(b"x"),
        lambda: os.rename(folder / "new.txt", folder / "renamed.txt"),
        lambda: os.unlink(folder / "renamed.txt"),
        lambda: os.mkdir(folder / "sub"),
        lambda: os.rmdir(folder / "sub"),
    ):
        os.utime(folder, ns=(1_000_000_000, 1_000_000_000))
        change()
        st = folder.stat()
        assert st.st_mtime_ns > 1_000_000_000 and st.st_ctime_ns > 1_000_000_000


def test_fifos_sockets_and_devices_are_kept_and_publish(
    home: Path, draft: Mount, mounter: Mounter, tmp_path: Path
) -> None:
    os.mkfifo(draft.path / "pipe", 0o640)
    os.mknod(draft.path / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(draft.path / "sock"))
    assert stat.S_ISFIFO(os.stat(draft.path / "pipe").st_mode)
    assert stat.S_ISSOCK(os.stat(draft.path / "sock").st_mode)
    with pytest.raises(OSError) as exc:
        os.mkfifo(draft.path / "pipe")
    assert exc.value.errno == errno.EEXIST
    dlfs(home, "umount", str(draft.path))
    with Catalog(home) as cat:
        v = cat.publish("cats")
    pub = mounter(f"cats@{v.id}", tmp_path / "pub").path
    st = os.stat(pub / "null")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3)
    assert stat.S_ISFIFO(os.stat(pub / "pipe").st_mode)
    assert stat.S_IMODE(os.stat(pub / "pipe").st_mode) == 0o440

"""Projects in real mounts, checked as real Unix users.

A project with a Unix group is mounted with ``allow_other`` and ``default_permissions``
and presents its files with that group and modes that let the group in and no one
else (``dlfs.access``): a member of the group reads (and writes a draft mounted
read-write), an outsider gets ``EACCES``. The two users and the group are made with
``useradd``/``groupadd`` for this module and removed after; commands run as them
through ``setpriv``. The catalog mount shows ``MNT/<project>/<dataset>/<version>``.
"""

from __future__ import annotations

import errno
import grp
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dlfs import Catalog
from tests.fsutil import Mounter

pytestmark = pytest.mark.skipif(
    os.getuid() != 0 or shutil.which("useradd") is None or shutil.which("setpriv") is None,
    reason="needs root, useradd and setpriv to act as other users",
)


@dataclass
class Users:
    group: str
    gid: int
    member: str
    outsider: str


@pytest.fixture(scope="module")
def users() -> Iterator[Users]:
    """A group with one member, and a user outside it; removed after the module."""
    tag = uuid.uuid4().hex[:6]
    group, member, outsider = f"dlfsg{tag}", f"dlfsm{tag}", f"dlfso{tag}"
    made: list[list[str]] = []
    try:
        subprocess.run(["groupadd", group], check=True)
        made.append(["groupdel", group])
        for user, extra in ((member, ["-G", group]), (outsider, [])):
            subprocess.run(["useradd", "-M", "-N", "-s", "/bin/sh", *extra, user], check=True)
            made.append(["userdel", user])
        yield Users(group, grp.getgrnam(group).gr_gid, member, outsider)
    finally:
        for cmd in reversed(made):
            subprocess.run(cmd, capture_output=True)


@pytest.fixture
def place() -> Iterator[Path]:
    """A folder other users can reach (pytest's own tmp folders are 0700)."""
    path = Path(tempfile.mkdtemp(prefix="dlfs-projects-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def as_user(user: str, *argv: str) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` as ``user`` with that user's groups."""
    pw = pwd.getpwnam(user)
    return subprocess.run(
        ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--init-groups", *argv],
        capture_output=True,
        text=True,
        timeout=60,
    )


def _vision(home: Path, users: Users) -> str:
    """Project ``vision`` of the test group, with ``vision/cats`` published once."""
    with Catalog(home) as cat:
        cat.create_project("vision", group=users.group)
        cat.create_dataset("cats", project="vision")
        cat.add_bytes("vision/cats", "train/a.txt", b"meow\n")
        return cat.publish("vision/cats").ref


def test_a_member_of_the_group_reads_an_outsider_gets_eacces(
    home: Path, users: Users, mounter: Mounter, place: Path
) -> None:
    ref = _vision(home, users)
    m = mounter(ref, place / "mnt")
    st = os.stat(m.path / "train/a.txt")
    assert (st.st_gid, stat.S_IMODE(st.st_mode)) == (users.gid, 0o440)
    root = os.stat(m.path)
    assert (root.st_gid, stat.S_IMODE(root.st_mode)) == (users.gid, 0o550)
    ok = as_user(users.member, "cat", str(m.path / "train/a.txt"))
    assert (ok.returncode, ok.stdout) == (0, "meow\n"), ok.stderr
    denied = as_user(users.outsider, "cat", str(m.path / "train/a.txt"))
    assert denied.returncode != 0 and "Permission denied" in denied.stderr
    listing = as_user(users.outsider, "ls", str(m.path))
    assert listing.returncode != 0 and "Permission denied" in listing.stderr


def test_a_member_writes_a_draft_mounted_read_write_until_the_project_is_read_only(
    home: Path, users: Users, mounter: Mounter, place: Path
) -> None:
    ref = _vision(home, users)
    with Catalog(home) as cat:
        cat.create_version("vision/cats", [ref])
    m = mounter("vision/cats@draft", place / "draft")
    st = os.stat(m.path / "train/a.txt")
    assert (st.st_gid, stat.S_IMODE(st.st_mode)) == (users.gid, 0o660)
    wrote = as_user(users.member, "sh", "-c", f"echo purr > '{m.path}/train/b.txt'")
    assert wrote.returncode == 0, wrote.stderr
    refused = as_user(users.outsider, "sh", "-c", f"echo hiss > '{m.path}/train/c.txt'")
    assert refused.returncode != 0 and "Permission denied" in refused.stderr
    mounter.cleanup()
    with Catalog(home) as cat:
        assert b"".join(cat.cat("vision/cats@draft", "train/b.txt")) == b"purr\n"
        assert cat.project("vision").set(read_only=True)["read_only"]
    frozen = mounter("vision/cats@draft", place / "frozen")
    with pytest.raises(OSError) as exc:
        (frozen.path / "train/d.txt").write_bytes(b"no")
    assert exc.value.errno == errno.EROFS


def test_catalog_mount_shows_projects_and_names_with_spaces(
    home: Path, users: Users, mounter: Mounter, place: Path
) -> None:
    ref = _vision(home, users)
    with Catalog(home) as cat:
        cat.create_dataset("myDataset One")
        cat.add_bytes("myDataset One", "x.txt", b"x\n")
        spaced = cat.publish("myDataset One").id
    m = mounter(None, place / "all")
    assert sorted(os.listdir(m.path)) == ["myDataset One", "vision"]
    assert (m.path / "myDataset One" / spaced / "x.txt").read_bytes() == b"x\n"
    assert sorted(os.listdir(m.path / "vision")) == ["cats"]
    vid = ref.split("@")[1]
    assert os.readlink(m.path / "vision/cats/v0") == vid
    assert (m.path / "vision/cats/v0/train/a.txt").read_bytes() == b"meow\n"
    assert os.stat(m.path / "vision").st_gid == users.gid
    ok = as_user(users.member, "cat", str(m.path / "vision/cats/latest/train/a.txt"))
    assert (ok.returncode, ok.stdout) == (0, "meow\n"), ok.stderr
    assert as_user(users.outsider, "ls", str(m.path / "myDataset One")).returncode == 0
    denied = as_user(users.outsider, "ls", str(m.path / "vision"))
    assert denied.returncode != 0 and "Permission denied" in denied.stderr

"""A draft mount behaves like a directory for everyday tools: modes, owners, symlinks,
``user.*`` xattrs, ``st_nlink`` and times, through a real mount, a remount and a
publish; ``cp -a``, ``tar -x`` and ``rsync -a`` of a tree with all of them round-trip."""

from __future__ import annotations

import errno
import os
import shutil
import stat
import subprocess
import time
from pathlib import Path

import pytest

from dlfs import Catalog
from tests.fsutil import Mount, Mounter, dlfs


@pytest.fixture
def draft(home: Path, published: str, mounter: Mounter, tmp_path: Path) -> Mount:
    """A child draft of the published generated tree, mounted read-write."""
    with Catalog(home) as cat:
        cat.create_version("cats", ["cats@latest"])
    return mounter("cats@draft", tmp_path / "mnt")


def _remount(home: Path, mounter: Mounter, draft: Mount, tmp_path: Path) -> Path:
    dlfs(home, "umount", str(draft.path))
    return mounter("cats@draft", tmp_path / "mnt2").path


def _publish_and_mount(home: Path, draft: Mount, mounter: Mounter, tmp_path: Path) -> Path:
    dlfs(home, "umount", str(draft.path))
    with Catalog(home) as cat:
        v = cat.publish("cats")
    return mounter(f"cats@{v.id}", tmp_path / "pub").path


def _user_xattrs(path: Path) -> dict[str, bytes]:
    names = [n for n in os.listxattr(path, follow_symlinks=False) if n.startswith("user.")]
    return {
        n: os.getxattr(path, n, follow_symlinks=False)
        for n in names
        if not n.startswith("user.dlfs.")
    }


def test_chmod_chown_persist_across_remount_and_publish(
    home: Path, draft: Mount, mounter: Mounter, tmp_path: Path
) -> None:
    script = draft.path / "run.sh"
    script.write_bytes(b"#!/bin/sh\necho hello\n")
    os.chmod(script, 0o755)
    os.chown(draft.path / "one.bin", 1234, 5678)
    assert subprocess.run([str(script)], capture_output=True).stdout == b"hello\n"
    again = _remount(home, mounter, draft, tmp_path)
    assert stat.S_IMODE((again / "run.sh").stat().st_mode) == 0o755
    st = (again / "one.bin").stat()
    assert (st.st_uid, st.st_gid) == (1234, 5678)
    dlfs(home, "umount", str(again))
    with Catalog(home) as cat:
        v = cat.publish("cats")
    pub = mounter(f"cats@{v.id}", tmp_path / "pub").path
    assert stat.S_IMODE((pub / "run.sh").stat().st_mode) == 0o555, "published: no write bits"
    assert subprocess.run([str(pub / "run.sh")], capture_output=True).stdout == b"hello\n"
    assert (pub / "one.bin").stat().st_uid == 1234


def test_symlinks_in_a_draft_and_after_publish(
    home: Path, draft: Mount, mounter: Mounter, tmp_path: Path
) -> None:
    os.symlink("one.bin", draft.path / "latest")
    os.symlink("../text", draft.path / "deep" / "up")
    assert os.readlink(draft.path / "latest") == "one.bin"
    assert (draft.path / "latest").read_bytes() == (draft.path / "one.bin").read_bytes()
    assert os.lstat(draft.path / "latest").st_size == len("one.bin")
    with pytest.raises(OSError) as exc:
        os.symlink("x", draft.path / "latest")
    assert exc.value.errno == errno.EEXIST
    listing = subprocess.run(["ls", "-l", str(draft.path)], capture_output=True, text=True)
    assert "latest -> one.bin" in listing.stdout
    with Catalog(home) as cat:
        assert {e.name: e.link for e in cat.ls("cats@draft")}["latest"] == "one.bin"
    pub = _publish_and_mount(home, draft, mounter, tmp_path)
    assert os.readlink(pub / "latest") == "one.bin"
    assert os.readlink(pub / "deep" / "up") == "../text"
    catalog = mounter(None, tmp_path / "all").path
    assert os.readlink(catalog / "cats" / "latest" / "latest") == "one.bin"
    assert "latest -> one.bin" in dlfs(home, "ls", "cats", "-l").out


def test_user_xattrs_round_trip_through_publish(
    home: Path, draft: Mount, mounter: Mounter, tmp_path: Path
) -> None:
    path = draft.path / "one.bin"
    os.setxattr(path, "user.origin", b"camera-7")
    os.setxattr(path, "user.bin", bytes(range(256)))
    assert _user_xattrs(path) == {"user.origin": b"camera-7", "user.bin": bytes(range(256))}
    os.removexattr(path, "user.bin")
    with pytest.raises(OSError) as exc:
        os.getxattr(path, "user.bin")
    assert exc.value.errno == errno.ENODATA
    os.setxattr(path, "user.dlfs.metadata", b'{"k": 1}')
    pub = _publish_and_mount(home, draft, mounter, tmp_path)
    assert _user_xattrs(pub / "one.bin") == {"user.origin": b"camera-7"}
    assert os.getxattr(pub / "one.bin", "user.dlfs.metadata") == b'{"k":1}'


def test_nlink_after_unlink_and_rename(draft: Mount) -> None:
    mnt = draft.path
    (mnt / "a").write_bytes(b"a")
    (mnt / "b").write_bytes(b"b")
    with open(mnt / "a", "rb") as fa, open(mnt / "b", "rb") as fb:
        assert os.fstat(fa.fileno()).st_nlink == 1
        os.rename(mnt / "a", mnt / "b")  # b is replaced while open
        assert os.fstat(fb.fileno()).st_nlink == 0
        assert os.stat(mnt / "b").st_nlink == 1
        os.unlink(mnt / "b")
        assert os.fstat(fa.fileno()).st_nlink == 0
        assert fa.read() == b"a"


def test_rename_over_files_and_folders(draft: Mount) -> None:
    mnt = draft.path
    (mnt / "src").write_bytes(b"new")
    (mnt / "dst").write_bytes(b"old")
    os.rename(mnt / "src", mnt / "dst")
    assert (mnt / "dst").read_bytes() == b"new" and not (mnt / "src").exists()
    (mnt / "d1").mkdir()
    (mnt / "d1" / "f").write_bytes(b"f")
    (mnt / "d2").mkdir()
    os.rename(mnt / "d1", mnt / "d2")  # over an empty folder
    assert (mnt / "d2" / "f").read_bytes() == b"f"
    (mnt / "d3").mkdir()
    (mnt / "d3" / "g").write_bytes(b"g")
    with pytest.raises(OSError) as exc:
        os.rename(mnt / "d2", mnt / "d3")
    assert exc.value.errno == errno.ENOTEMPTY
    with pytest.raises(OSError) as exc:
        os.rename(mnt / "dst", mnt / "d3")
    assert exc.value.errno == errno.EISDIR


def test_utimensat_omit_and_now(draft: Mount) -> None:
    path = draft.path / "t.txt"
    path.write_bytes(b"t")
    os.utime(path, ns=(1_000_000_000, 2_000_000_000))
    subprocess.run(["touch", "-a", str(path)], check=True)  # mtime: UTIME_OMIT
    assert path.stat().st_mtime_ns == 2_000_000_000
    before = time.time()
    subprocess.run(["touch", "-m", str(path)], check=True)  # mtime: UTIME_NOW
    assert path.stat().st_mtime >= before - 1


def _tree_with_everything(root: Path) -> Path:
    (root / "sub").mkdir(parents=True)
    (root / "run.sh").write_bytes(b"#!/bin/sh\necho hi\n")
    os.chmod(root / "run.sh", 0o755)
    (root / "private.txt").write_bytes(b"secret-ish\n")
    os.chmod(root / "private.txt", 0o600)
    (root / "sub" / "data.bin").write_bytes(os.urandom(70_000))
    os.symlink("../run.sh", root / "sub" / "run")
    os.symlink("sub", root / "folderlink")
    os.symlink("nowhere", root / "dangling")
    try:
        os.setxattr(root / "sub" / "data.bin", "user.label", b"cat")
    except OSError:
        pytest.skip("the temporary folder keeps no user.* xattrs")
    return root


def _modes(root: Path) -> dict[str, tuple[int, str | None]]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            st = os.lstat(path)
            link = os.readlink(path) if stat.S_ISLNK(st.st_mode) else None
            if stat.S_ISREG(st.st_mode) or link is not None:
                out[str(path.relative_to(root))] = (stat.S_IMODE(st.st_mode) | 0o222, link)
    return out


@pytest.mark.parametrize("tool", ["cp", "tar", "rsync"])
def test_tools_round_trip_modes_links_and_xattrs(
    home: Path, draft: Mount, mounter: Mounter, tmp_path: Path, tool: str
) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed")
    src = _tree_with_everything(tmp_path / "posix-src")
    dst = draft.path / "copy"
    if tool == "cp":
        subprocess.run(["cp", "-a", str(src), str(dst)], check=True)
    elif tool == "tar":
        dst.mkdir()
        archive = tmp_path / "t.tar"
        subprocess.run(["tar", "--xattrs", "-cf", str(archive), "-C", str(src), "."], check=True)
        subprocess.run(
            ["tar", "--xattrs", "--xattrs-include=user.*", "-xpf", str(archive), "-C", str(dst)],
            check=True,
        )
    else:
        subprocess.run(["rsync", "-a", f"{src}/", str(dst)], check=True)  # -a: no xattrs
    pub = _publish_and_mount(home, draft, mounter, tmp_path) / "copy"
    done = subprocess.run(["diff", "-r", "--no-dereference", str(src), str(pub)])
    assert done.returncode == 0
    assert _modes(pub) == _modes(src)  # write bits aside: a published version is read-only
    if tool != "rsync":
        assert _user_xattrs(pub / "sub" / "data.bin") == {"user.label": b"cat"}


def test_hard_links_share_an_inode_in_the_session(draft: Mount) -> None:
    mnt = draft.path
    (mnt / "orig").write_bytes(b"one")
    os.link(mnt / "orig", mnt / "twin")
    a, b = os.stat(mnt / "orig"), os.stat(mnt / "twin")
    assert a.st_ino == b.st_ino and a.st_nlink == b.st_nlink == 2
    (mnt / "twin").write_bytes(b"written through the twin")
    assert (mnt / "orig").read_bytes() == b"written through the twin"
    os.chmod(mnt / "orig", 0o600)
    assert stat.S_IMODE(os.stat(mnt / "twin").st_mode) == 0o600
    os.unlink(mnt / "orig")
    left = os.stat(mnt / "twin")
    assert left.st_ino == a.st_ino and left.st_nlink == 1
    assert (mnt / "twin").read_bytes() == b"written through the twin"


def test_renaming_over_a_hard_link_leaves_the_other_name(draft: Mount) -> None:
    mnt = draft.path
    (mnt / "dst").write_bytes(b"dst")
    os.link(mnt / "dst", mnt / "dstlnk")
    assert os.stat(mnt / "dstlnk").st_nlink == 2
    (mnt / "src").write_bytes(b"src")
    os.rename(mnt / "src", mnt / "dst")
    assert os.stat(mnt / "dstlnk").st_nlink == 1
    assert (mnt / "dstlnk").read_bytes() == b"dst" and (mnt / "dst").read_bytes() == b"src"

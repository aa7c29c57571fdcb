"""The tools people copy trees with, into a draft mount: ``cp -a``, ``tar -x`` and
``rsync -a`` of a tree with modes, owners, symlinks, ``user.*`` xattrs and nested
folders, then ``dlfs publish``, then the published version mounted read-only compared
with the source: ``diff -r`` for names and bytes, ``lstat`` for types, modes and
owners, ``readlink`` for links, the ``user.*`` xattrs as ``getfattr -d`` shows them.

``cp -a`` keeps xattrs, ``tar`` with ``--xattrs`` on both sides, ``rsync -aX`` with
``--filter='-x user.dlfs.*'`` (without it rsync tries to remove the ``user.dlfs.*``
attributes dlfs computes, fails, and exits 23). Folders keep no mode or owner of
their own (docs/mounting.md): their type is checked, not their mode."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from tests.fsutil import Mount, Mounter, dlfs

TOOLS = ("cp", "tar", "rsync")


def _copy(tool: str, src: Path, dst: Path) -> None:
    """Copy the contents of ``src`` into the existing folder ``dst`` as a user would."""
    if tool == "cp":
        cmd = f"cp -a {src}/. {dst}/"
    elif tool == "tar":
        x = "--xattrs --xattrs-include='user.*'"
        cmd = f"tar -C {src} {x} -cf - . | tar -C {dst} {x} -xf -"
    else:
        cmd = f"rsync -aX --filter='-x user.dlfs.*' {src}/ {dst}/"
    done = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, text=True)
    assert done.returncode == 0, f"{cmd}: {done.stderr}"


OWNED = "images/train/b/img_001.jpg"
"""The source file that belongs to another user (65534:65534)."""
XATTRS = {
    "labels/classes.txt": {"user.origin": b"annotators v2"},
    "bin/prepare.sh": {"user.kind": b"script", "user.empty": b""},
}
LINKS = {"labels/latest": "classes.txt", "images/current": "train", "dangling": "nowhere/x"}


def make_source(root: Path) -> Path:
    """Nested folders, an executable script, a private file, a read-only file, an
    empty file and an empty folder; a file of another owner, symlinks (to a file, to a
    folder, dangling) and ``user.*`` xattrs on two files."""
    files = {
        "README.md": (b"# a dataset\n", 0o644),
        "bin/prepare.sh": (b"#!/bin/sh\necho prepared\n", 0o755),
        "secret/token.txt": (b"not for everyone\n", 0o600),
        "labels/classes.txt": (b"cat\ndog\n", 0o444),
        "images/train/a/img_000.jpg": (os.urandom(70_000), 0o644),
        "images/train/b/img_001.jpg": (os.urandom(1), 0o640),
        "images/val/empty.jpg": (b"", 0o644),
    }
    for rel, (data, mode) in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        path.chmod(mode)
    (root / "empty_folder").mkdir()
    (root / "secret").chmod(0o700)
    os.chown(root / OWNED, 65534, 65534)
    for rel, target in LINKS.items():
        (root / rel).symlink_to(target)
    for rel, attrs in XATTRS.items():
        for name, value in attrs.items():
            os.setxattr(root / rel, name, value)
    return root


@pytest.fixture
def draft(home: Path, mounter: Mounter, tmp_path: Path) -> Mount:
    """An empty dataset's draft, mounted read-write."""
    dlfs(home, "dataset", "create", "tools")
    return mounter("tools@draft", tmp_path / "mnt")


def copy_and_publish(
    tool: str, home: Path, draft: Mount, mounter: Mounter, tmp_path: Path
) -> tuple[Path, Path]:
    """Copy a fresh source tree into the draft with ``tool``, publish, mount the new
    version read-only: ``(source, published mount)``."""
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed")
    src = make_source(tmp_path / "src")
    _copy(tool, src, draft.path)
    out = dlfs(home, "publish", "tools", "--json").json()
    assert isinstance(out, dict)
    return src, mounter(f"tools@{out['id']}", tmp_path / "published").path


@pytest.mark.parametrize("tool", TOOLS)
def test_copy_publish_diff(tool: str, home: Path, draft: Mount, mounter: Mounter, tmp_path: Path):
    src, published = copy_and_publish(tool, home, draft, mounter, tmp_path)
    done = subprocess.run(
        ["diff", "-r", "--no-dereference", str(src), str(published)], capture_output=True
    )
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    assert sorted(p.name for p in (published / "images").iterdir()) == ["current", "train", "val"]
    assert list((published / "empty_folder").iterdir()) == []


def tree_attrs(root: Path, drop_write: bool = False) -> dict[str, tuple[object, ...]]:
    """Each path under ``root``: type; for files and links, permission bits (less the
    write bits with ``drop_write``), owner and link target; the ``user.*`` xattrs of
    files, but dlfs's own."""
    out: dict[str, tuple[object, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            st = path.lstat()
            perms = stat.S_IMODE(st.st_mode)
            if drop_write and not stat.S_ISLNK(st.st_mode):  # a link is always 0777
                perms &= ~0o222
            kind = stat.S_IFMT(st.st_mode)
            rel = str(path.relative_to(root))
            if stat.S_ISDIR(st.st_mode):
                out[rel] = (kind,)
                continue
            link = os.readlink(path) if stat.S_ISLNK(st.st_mode) else None
            found = {}
            if link is None:
                for attr in os.listxattr(path):
                    if attr.startswith("user.") and not attr.startswith("user.dlfs."):
                        found[attr] = os.getxattr(path, attr)
            out[rel] = (kind, oct(perms), (st.st_uid, st.st_gid), link, found)
    return out


@pytest.mark.parametrize("tool", TOOLS)
def test_copy_keeps_modes_owners_links_xattrs(
    tool: str, home: Path, draft: Mount, mounter: Mounter, tmp_path: Path
):
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed")
    src = make_source(tmp_path / "src")
    _copy(tool, src, draft.path)
    want = tree_attrs(src)
    assert tree_attrs(draft.path) == want  # the draft, as written
    assert want[OWNED][2] == (65534, 65534) and want["labels/latest"][3] == "classes.txt"
    assert want["bin/prepare.sh"][4] == XATTRS["bin/prepare.sh"]
    out = dlfs(home, "publish", "tools", "--json").json()
    assert isinstance(out, dict)
    published = mounter(f"tools@{out['id']}", tmp_path / "published").path
    assert tree_attrs(published) == tree_attrs(src, drop_write=True)
    done = subprocess.run(
        ["diff", "-r", "--no-dereference", str(src), str(published)], capture_output=True
    )
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()

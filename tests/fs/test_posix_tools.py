"""The tools people copy trees with, into a draft mount: ``cp -a``, ``tar -x`` and
``rsync -a`` of a tree with modes and nested folders, then ``dlfs publish``, then the
published version mounted read-only compared with the source by ``diff -r`` (and by
``stat``, for what ``diff`` does not look at)."""

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
        cmd = f"tar -C {src} -cf - . | tar -C {dst} -xf -"
    else:
        cmd = f"rsync -a {src}/ {dst}/"
    done = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, text=True)
    assert done.returncode == 0, f"{cmd}: {done.stderr}"


def make_source(root: Path) -> Path:
    """Nested folders, an executable script, a private file, a read-only file, an
    empty file and an empty folder."""
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
    done = subprocess.run(["diff", "-r", str(src), str(published)], capture_output=True)
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    assert sorted(p.name for p in (published / "images").iterdir()) == ["train", "val"]
    assert list((published / "empty_folder").iterdir()) == []


def _tree_stat(root: Path) -> dict[str, tuple[str, int]]:
    """Each path under ``root``: its type and permission bits."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            st = path.lstat()
            kind = "d" if stat.S_ISDIR(st.st_mode) else "f"
            out[str(path.relative_to(root))] = (kind, stat.S_IMODE(st.st_mode))
    return out

"""The whole catalog mounted: datasets, version ids, tag symlinks, live updates."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from dlfs import Catalog
from tests.fsutil import Mounter, wait_for


def test_datasets_versions_and_tags(
    home: Path, source: Path, published: str, mounter: Mounter, tmp_path: Path
):
    with Catalog(home) as cat:
        cat.create_dataset("dogs")  # a draft only: an empty folder
        cat.tag(published, ["gold"])
    vid = published.split("@")[1]
    m = mounter(None, tmp_path / "mnt")
    assert sorted(os.listdir(m.path)) == ["cats", "dogs"]
    assert sorted(os.listdir(m.path / "cats")) == sorted([vid, "gold", "latest", "v0"])
    assert os.listdir(m.path / "dogs") == []
    for tag in ("latest", "v0", "gold"):
        link = m.path / "cats" / tag
        assert link.is_symlink()
        assert os.readlink(link) == vid
    assert (m.path / "cats" / vid).is_dir() and not (m.path / "cats" / vid).is_symlink()
    rel = "images/train/img_007.jpg"
    expected = (source / rel).read_bytes()
    assert (m.path / "cats" / vid / rel).read_bytes() == expected
    assert (m.path / "cats/latest" / rel).read_bytes() == expected
    assert os.getxattr(m.path / "cats" / vid, "user.dlfs.version").decode() == vid
    assert os.getxattr(m.path / "cats/latest/text/hello.txt", "user.dlfs.metadata")
    with pytest.raises(FileNotFoundError):
        (m.path / "cats/v7").stat()
    with pytest.raises(FileNotFoundError):
        (m.path / "nope").stat()
    with pytest.raises(OSError) as exc:
        os.mkdir(m.path / "birds")
    assert exc.value.errno == errno.EROFS


def test_new_versions_and_datasets_appear_without_remount(
    home: Path, published: str, mounter: Mounter, tmp_path: Path
):
    m = mounter(None, tmp_path / "mnt")
    old = published.split("@")[1]
    assert os.readlink(m.path / "cats/latest") == old
    assert not (m.path / "cats/latest/added.txt").exists()
    with Catalog(home) as cat:
        draft = cat.create_version("cats", ["cats@latest"])
        cat.add_bytes(draft.ref, "added.txt", b"added after mounting\n")
        assert draft.id not in os.listdir(m.path / "cats")  # drafts are not shown
        new = cat.publish(draft.ref).id
        cat.create_dataset("birds")
    names = os.listdir(m.path / "cats")
    assert new in names and old in names and "v1" in names
    assert os.readlink(m.path / "cats/v1") == new
    assert wait_for(lambda: os.readlink(m.path / "cats/latest") == new, 5)
    assert (m.path / "cats" / new / "added.txt").read_bytes() == b"added after mounting\n"
    assert wait_for(lambda: (m.path / "cats/latest/added.txt").exists(), 5)
    assert "birds" in os.listdir(m.path)
    assert (m.path / "birds").is_dir()
    # The old version is still there, unchanged.
    assert not (m.path / "cats" / old / "added.txt").exists()

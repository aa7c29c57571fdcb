"""Modes, owners, symlinks, ``user.*`` xattrs and ``st_nlink`` in a draft view, and what
the published view then shows: the rules of a draft mount without a kernel."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dlfs import Catalog
from dlfs.errors import AlreadyExists, InvalidInput, NoAttribute, NotPermitted, NotSupported
from dlfs.home import Home
from dlfs.mountviews import open_mount_view
from dlfs.view import open_view


@pytest.fixture
def draft(tmp_path: Path) -> Iterator[Any]:
    home = tmp_path / "home"
    with Catalog(home) as cat:
        cat.create_dataset("cats")
        cat.add_bytes("cats", "run.sh", b"#!/bin/sh\necho hi\n")
    view = open_mount_view(Home.at(home), "cats@draft")
    view.home_path, view.closed = home, False
    try:
        yield view
    finally:
        if not view.closed:
            view.close()


def _write(view: Any, name: str, data: bytes) -> None:
    fh, _node = view.create(view.root(), name, 0o644, os.O_WRONLY)
    view.write(fh, 0, data)
    view.flush(fh)
    view.release(fh)


def _publish(view: Any) -> Any:
    home = view.home_path
    view.close()
    view.closed = True
    with Catalog(home) as cat:
        v = cat.publish("cats")
    return open_view(Home.at(home), f"cats@{v.id}")


def test_chmod_and_chown_persist_and_publish_without_write_bits(draft: Any) -> None:
    node = draft.lookup(draft.root(), "run.sh")
    assert stat.S_IMODE(node.mode) == 0o644
    draft.setattr(node, mode=stat.S_IFREG | 0o755)
    draft.setattr(node, uid=1234, gid=5678)
    again = draft.lookup(draft.root(), "run.sh")
    assert stat.S_IMODE(again.mode) == 0o755 and (again.uid, again.gid) == (1234, 5678)
    assert draft.getxattr(again, "user.dlfs.item") != node.ref.encode(), "a new item"
    published = _publish(draft)
    try:
        pub = published.lookup(published.root(), "run.sh")
        assert stat.S_IMODE(pub.mode) == 0o555 and (pub.uid, pub.gid) == (1234, 5678)
    finally:
        published.close()


def test_symlinks_are_made_read_and_published(draft: Any) -> None:
    link = draft.symlink(draft.root(), "latest", "run.sh")
    assert stat.S_ISLNK(link.mode) and link.size == len("run.sh")
    assert draft.readlink(draft.lookup(draft.root(), "latest")) == "run.sh"
    with pytest.raises(AlreadyExists):
        draft.symlink(draft.root(), "latest", "other")
    with pytest.raises(InvalidInput):
        draft.symlink(draft.root(), "bad", "")
    with pytest.raises(InvalidInput, match="not a symlink"):
        draft.readlink(draft.lookup(draft.root(), "run.sh"))
    listed = {name: n for _pos, name, n in draft.listing(draft.root()).entries_from(0)}
    assert stat.S_ISLNK(listed["latest"].mode) and stat.S_ISREG(listed["run.sh"].mode)
    published = _publish(draft)
    try:
        pub = published.lookup(published.root(), "latest")
        assert stat.S_ISLNK(pub.mode) and published.readlink(pub) == "run.sh"
    finally:
        published.close()


def test_hard_links_and_special_files_stay_refused(draft: Any) -> None:
    node = draft.lookup(draft.root(), "run.sh")
    with pytest.raises(NotPermitted):
        draft.link(node, draft.root(), "hard")
    with pytest.raises(NotPermitted):
        draft.mknod(draft.root(), "fifo", stat.S_IFIFO | 0o644, 0)


def test_user_xattrs_round_trip_and_publish(draft: Any) -> None:
    node = draft.lookup(draft.root(), "run.sh")
    with pytest.raises(NoAttribute):
        draft.getxattr(node, "user.origin")
    draft.setxattr(node, "user.origin", b"camera-7\x00\xff")
    draft.setxattr(node, "user.checksum", b"abc")
    assert draft.getxattr(node, "user.origin") == b"camera-7\x00\xff"
    assert {"user.origin", "user.checksum", "user.dlfs.metadata"} <= set(draft.listxattr(node))
    draft.removexattr(node, "user.checksum")
    with pytest.raises(NoAttribute):
        draft.removexattr(node, "user.checksum")
    with pytest.raises(NotSupported):
        draft.setxattr(node, "trusted.x", b"1")
    draft.setxattr(node, "user.dlfs.metadata", b'{"k": 1}')  # dlfs's own still work
    assert draft.getxattr(node, "user.origin") == b"camera-7\x00\xff"
    published = _publish(draft)
    try:
        pub = published.lookup(published.root(), "run.sh")
        assert published.getxattr(pub, "user.origin") == b"camera-7\x00\xff"
        assert "user.checksum" not in published.listxattr(pub)
        assert published.getxattr(pub, "user.dlfs.metadata") == b'{"k":1}'
    finally:
        published.close()


def test_mode_and_xattrs_survive_a_rewrite(draft: Any) -> None:
    node = draft.lookup(draft.root(), "run.sh")
    draft.setattr(node, mode=0o750)
    draft.setxattr(node, "user.k", b"v")
    fh = draft.open(node, os.O_WRONLY | os.O_TRUNC)
    draft.write(fh, 0, b"new bytes")
    draft.flush(fh)
    draft.release(fh)
    again = draft.lookup(draft.root(), "run.sh")
    assert stat.S_IMODE(again.mode) == 0o750 and again.size == 9
    assert draft.getxattr(again, "user.k") == b"v"


def test_nlink_of_an_open_unlinked_file_is_zero(draft: Any) -> None:
    _write(draft, "tmp.bin", b"x")
    node = draft.lookup(draft.root(), "tmp.bin")
    fh = draft.open(node, os.O_RDWR)
    assert draft.getattr(node).nlink == 1
    draft.unlink(draft.root(), "tmp.bin")
    assert draft.getattr(node).nlink == 0
    draft.release(fh)


def test_chmod_of_a_file_being_written_is_kept(draft: Any) -> None:
    fh, node = draft.create(draft.root(), "new.sh", 0o600, os.O_WRONLY)
    draft.write(fh, 0, b"#!/bin/sh\n")
    draft.setattr(node, mode=0o700)  # cp -a: fchmod before close
    draft.flush(fh)
    draft.release(fh)
    assert stat.S_IMODE(draft.lookup(draft.root(), "new.sh").mode) == 0o700

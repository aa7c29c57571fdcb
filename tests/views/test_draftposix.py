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


def test_hard_links_are_one_file_in_the_session_and_two_after_publish(draft: Any) -> None:
    root = draft.root()
    node = draft.lookup(root, "run.sh")
    with pytest.raises(NotPermitted):
        draft.link(draft.mkdir(root, "d", 0o755), root, "d2")
    with pytest.raises(AlreadyExists):
        draft.link(node, root, "run.sh")
    hard = draft.link(node, root, "hard")
    assert hard.nlink == 2 and draft.lookup(root, "run.sh").nlink == 2
    draft.setattr(hard, mode=stat.S_IFREG | 0o700)
    assert stat.S_IMODE(draft.lookup(root, "run.sh").mode) == 0o700, "one file, two names"
    fh = draft.open(hard, os.O_WRONLY | os.O_TRUNC)
    draft.write(fh, 0, b"new bytes")
    draft.flush(fh)
    draft.release(fh)
    first = draft.lookup(root, "run.sh")
    assert (first.size, first.blob) == (9, draft.lookup(root, "hard").blob)
    draft.unlink(root, "run.sh")
    assert draft.lookup(root, "hard").nlink == 1
    draft.link(draft.lookup(root, "hard"), root, "again")
    published = _publish(draft)
    try:
        a, b = (published.lookup(published.root(), n) for n in ("hard", "again"))
        assert a.blob == b.blob and a.nlink == b.nlink == 1, "two files sharing a blob"
    finally:
        published.close()


def test_special_files_keep_type_and_device_and_hand_out_no_bytes(draft: Any) -> None:
    draft.mknod(draft.root(), "fifo", stat.S_IFIFO | 0o640, 0)
    draft.mknod(draft.root(), "sock", stat.S_IFSOCK | 0o600, 0)
    dev = os.makedev(1, 3)
    draft.mknod(draft.root(), "null", stat.S_IFCHR | 0o666, dev)
    draft.mknod(draft.root(), "disk", stat.S_IFBLK | 0o660, os.makedev(8, 1))
    with pytest.raises(AlreadyExists):
        draft.mknod(draft.root(), "fifo", stat.S_IFIFO | 0o640, 0)
    fifo = draft.lookup(draft.root(), "fifo")
    assert stat.S_ISFIFO(fifo.mode) and stat.S_IMODE(fifo.mode) == 0o640 and fifo.size == 0
    with pytest.raises(InvalidInput):
        draft.open(fifo, os.O_RDONLY)
    published = _publish(draft)
    try:
        nodes = {n: published.lookup(published.root(), n) for n in ("fifo", "sock", "null", "disk")}
        assert stat.S_ISFIFO(nodes["fifo"].mode) and stat.S_ISSOCK(nodes["sock"].mode)
        assert stat.S_ISCHR(nodes["null"].mode) and nodes["null"].rdev == dev
        assert stat.S_ISBLK(nodes["disk"].mode) and nodes["disk"].rdev == os.makedev(8, 1)
        assert stat.S_IMODE(nodes["null"].mode) == 0o444, "published: no write bits"
        with pytest.raises(InvalidInput):
            published.open(nodes["null"], os.O_RDONLY)
    finally:
        published.close()


def test_folders_keep_mode_owner_and_times_through_publish(draft: Any) -> None:
    folder = draft.mkdir(draft.root(), "shared", 0o755)
    assert stat.S_ISDIR(folder.mode) and stat.S_IMODE(folder.mode) == 0o755
    draft.setattr(folder, mode=stat.S_IFDIR | 0o1777)
    draft.setattr(folder, uid=1234, gid=5678)
    draft.setattr(folder, mtime_ns=3_000_000_000)
    again = draft.lookup(draft.root(), "shared")
    assert stat.S_IMODE(again.mode) == 0o1777 and (again.uid, again.gid) == (1234, 5678)
    assert again.mtime_ns == 3_000_000_000
    root = draft.getattr(draft.root())
    draft.setattr(root, mode=stat.S_IFDIR | 0o750)
    assert stat.S_IMODE(draft.getattr(draft.root()).mode) == 0o750
    published = _publish(draft)
    try:
        shared = published.lookup(published.root(), "shared")
        assert stat.S_IMODE(shared.mode) == 0o1555, "sticky kept, write bits dropped"
        assert (shared.uid, shared.gid) == (1234, 5678)
        assert shared.mtime_ns == 3_000_000_000
        assert stat.S_IMODE(published.root().mode) == 0o550
    finally:
        published.close()


def test_folder_nlink_and_times_follow_its_entries(draft: Any) -> None:
    root = draft.root()
    assert draft.getattr(root).nlink == 2
    a = draft.mkdir(root, "a", 0o755)
    draft.mkdir(root, "b", 0o755)
    assert draft.getattr(root).nlink == 4 and a.nlink == 2
    draft.setattr(a, mtime_ns=1_000_000_000)
    _write_in(draft, a, "f", b"x")
    moved = draft.lookup(root, "a")
    assert moved.mtime_ns > 1_000_000_000 and moved.ctime_ns >= moved.mtime_ns
    for change in (
        lambda: draft.rename(a, "f", a, "g", 0),
        lambda: draft.unlink(a, "g"),
        lambda: draft.mkdir(a, "sub", 0o700),
    ):
        draft.setattr(a, mtime_ns=1_000_000_000)
        change()
        assert draft.lookup(root, "a").mtime_ns > 1_000_000_000
    assert draft.lookup(root, "a").nlink == 3
    draft.rmdir(root, "b")
    assert draft.getattr(root).nlink == 3


def test_new_entries_belong_to_their_maker_and_set_gid_folders_pass_their_group(
    draft: Any,
) -> None:
    folder = draft.mkdir(draft.root(), "team", 0o755, (1000, 1000))
    assert (folder.uid, folder.gid) == (1000, 1000)
    draft.setattr(folder, mode=stat.S_IFDIR | 0o2775, gid=4000)
    sub = draft.mkdir(folder, "sub", 0o755, (2000, 2000))
    assert (sub.uid, sub.gid) == (2000, 4000) and sub.mode & stat.S_ISGID
    fh, made = draft.create(folder, "note", 0o640, os.O_WRONLY, (2000, 2000))
    assert (made.uid, made.gid) == (2000, 4000), "the kernel checks this node's owner"
    draft.release(fh)
    note = draft.lookup(folder, "note")
    assert (note.uid, note.gid) == (2000, 4000) and stat.S_IMODE(note.mode) == 0o640
    mine = draft.mkdir(draft.root(), "mine", 0o700, (os.getuid(), os.getgid()))
    assert (mine.uid, mine.gid) == (-1, -1), "the mounting user's: nothing kept"


def _write_in(view: Any, folder: Any, name: str, data: bytes) -> None:
    fh, _node = view.create(folder, name, 0o644, os.O_WRONLY)
    view.write(fh, 0, data)
    view.flush(fh)
    view.release(fh)


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

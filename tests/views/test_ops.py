"""The pyfuse3 adapter called directly (no kernel): errno table, replies, inode counts."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
from dlfsd.inodes import InodeTable
from dlfsd.ops import Operations, errno_of
from pyfuse3 import ROOT_INODE, FUSEError

from dlfs import errors
from dlfs.errors import NameTooLong, NoAttribute, StaleInode
from dlfs.home import Home
from dlfs.view import CACHE_TTL, open_view


@pytest.fixture
def ops(home: Path, published: str) -> Iterator[Operations]:
    view = open_view(Home.at(home), published)
    try:
        yield Operations(view)
    finally:
        view.close()


def call(fn: Any, *args: Any) -> Any:
    async def run() -> Any:
        return await fn(*args)

    return trio.run(run)


def fuse_errno(fn: Any, *args: Any) -> int:
    with pytest.raises(FUSEError) as exc:
        call(fn, *args)
    return exc.value.errno


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (errors.NotFound("x"), errno.ENOENT),
        (NoAttribute("x"), errno.ENODATA),
        (NameTooLong("x"), errno.ENAMETOOLONG),
        (errors.ReadOnly("x"), errno.EROFS),
        (errors.Corrupt("x"), errno.EIO),
        (errors.Unavailable("x"), errno.EIO),
        (errors.NotADirectory("x"), errno.ENOTDIR),
        (errors.IsADirectory("x"), errno.EISDIR),
        (errors.NotEmpty("x"), errno.ENOTEMPTY),
        (errors.AlreadyExists("x"), errno.EEXIST),
        (errors.InvalidInput("x"), errno.EINVAL),
        (StaleInode("x"), errno.ESTALE),
        (errors.DlfsError("x"), errno.EIO),
        (RuntimeError("a bug"), errno.EIO),
    ],
)
def test_errno_table(exc: BaseException, code: int):
    assert errno_of(exc) == code


def test_lookup_getattr_and_negative_entries(ops: Operations):
    entry = call(ops.lookup, ROOT_INODE, b"text", None)
    assert entry.st_ino > ROOT_INODE and stat.S_ISDIR(entry.st_mode)
    assert entry.entry_timeout == entry.attr_timeout == CACHE_TTL
    hello = call(ops.lookup, entry.st_ino, b"hello.txt", None)
    assert hello.st_size == 12 and stat.S_IMODE(hello.st_mode) == 0o444
    assert call(ops.getattr, hello.st_ino, None).st_mtime_ns == hello.st_mtime_ns
    # A miss in a published folder is cached by the kernel (st_ino 0), not an error.
    miss = call(ops.lookup, ROOT_INODE, b"nope", None)
    assert miss.st_ino == 0 and miss.entry_timeout == CACHE_TTL
    assert fuse_errno(ops.lookup, ROOT_INODE, b"x" * 256, None) == errno.ENAMETOOLONG
    assert call(ops.lookup, entry.st_ino, b"..", None).st_ino == ROOT_INODE
    assert fuse_errno(ops.getattr, 10**9, None) == errno.ESTALE


def test_same_content_at_two_paths_gets_two_inodes(ops: Operations):
    a = call(ops.lookup, ROOT_INODE, b"dup", None)
    b = call(ops.lookup, a.st_ino, b"copy_of_img_000.jpg", None)
    train = call(ops.lookup, call(ops.lookup, ROOT_INODE, b"images", None).st_ino, b"train", None)
    c = call(ops.lookup, train.st_ino, b"img_000.jpg", None)
    assert b.st_ino != c.st_ino and b.st_size == c.st_size
    assert call(ops.lookup, a.st_ino, b"copy_of_img_000.jpg", None).st_ino == b.st_ino


def test_open_read_release_and_xattrs(ops: Operations, source: Path):
    text = call(ops.lookup, ROOT_INODE, b"text", None)
    hello = call(ops.lookup, text.st_ino, b"hello.txt", None)
    info = call(ops.open, hello.st_ino, os.O_RDONLY, None)
    assert info.keep_cache
    assert call(ops.read, info.fh, 0, 4096) == (source / "text/hello.txt").read_bytes()
    call(ops.release, info.fh)
    assert fuse_errno(ops.open, hello.st_ino, os.O_WRONLY, None) == errno.EROFS
    names = call(ops.listxattr, hello.st_ino, None)
    assert b"user.dlfs.metadata" in names
    assert b'"greeting"' in call(ops.getxattr, hello.st_ino, b"user.dlfs.metadata", None)
    code = fuse_errno(ops.getxattr, hello.st_ino, b"security.selinux", None)
    assert code == errno.ENODATA


def test_large_reads_go_through_a_worker_thread(ops: Operations, source: Path):
    big = call(ops.lookup, ROOT_INODE, b"big", None)
    large = call(ops.lookup, big.st_ino, b"large.bin", None)
    info = call(ops.open, large.st_ino, os.O_RDONLY, None)
    data = (source / "big/large.bin").read_bytes()
    assert call(ops.read, info.fh, 1 << 20, 131072) == data[1 << 20 : (1 << 20) + 131072]
    call(ops.release, info.fh)


def test_every_write_handler_is_erofs(ops: Operations):
    root = ROOT_INODE
    one = call(ops.lookup, root, b"one.bin", None).st_ino
    calls: list[tuple[Any, ...]] = [
        (ops.create, root, b"new", 0o644, os.O_WRONLY, None),
        (ops.mkdir, root, b"new", 0o755, None),
        (ops.mknod, root, b"new", stat.S_IFIFO | 0o644, 0, None),
        (ops.symlink, root, b"new", b"one.bin", None),
        (ops.link, one, root, b"new", None),
        (ops.unlink, root, b"one.bin", None),
        (ops.rmdir, root, b"empty_folder", None),
        (ops.rename, root, b"one.bin", root, b"two.bin", 0, None),
        (ops.setxattr, one, b"user.dlfs.metadata", b"{}", None),
        (ops.removexattr, one, b"user.dlfs.metadata", None),
    ]
    for fn, *args in calls:
        assert fuse_errno(fn, *args) == errno.EROFS, fn.__name__


def test_inode_counts_and_forget(ops: Operations):
    table = InodeTable(ops.view.root())
    a = table.remember(ROOT_INODE, "a", ops.view.root())
    assert table.remember(ROOT_INODE, "a", ops.view.root()) == a
    b = table.assign(ROOT_INODE, "b", ops.view.root())
    table.drop_unused(b)  # a readdir entry the kernel did not take
    with pytest.raises(StaleInode):
        table.node(b)
    table.forget(a, 1)
    assert table.node(a) is not None
    table.forget(a, 1)
    with pytest.raises(StaleInode):
        table.node(a)
    assert table.remember(ROOT_INODE, "a", ops.view.root()) > b  # numbers never reused
    table.forget(ROOT_INODE, 5)
    assert table.node(ROOT_INODE) is not None
    assert len(table) == 2

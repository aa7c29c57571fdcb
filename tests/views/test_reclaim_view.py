"""The draft view's use of space without a kernel: superseded blobs reclaimed at
each commit, appends that take the blob's file back instead of copying it, and the
blob put back when a write lands before the end."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dlfs import Catalog
from dlfs.home import Home
from dlfs.mountviews import open_mount_view

MIB = 1 << 20


@pytest.fixture
def view(home: Path) -> Iterator[Any]:
    with Catalog(home) as cat:
        cat.create_dataset("ds")
    v: Any = open_mount_view(Home.at(home), "ds@draft")
    try:
        yield v
    finally:
        v.close()


def blobs(home: Path) -> dict[str, int]:
    """Blob id -> inode, of the local store's blob files."""
    root = home / "blobs"
    return {
        e.name: e.inode()
        for shard in os.scandir(root)
        if shard.is_dir() and len(shard.name) == 2
        for e in os.scandir(shard.path)
        if len(e.name) == 32
    }


def append(view: Any, data: bytes) -> None:
    node = view.lookup(view.root(), "f")
    fh = view.open(node, os.O_WRONLY | os.O_APPEND)
    view.write(fh, node.size, data)
    view.flush(fh)
    view.release(fh)


def content(view: Any) -> bytes:
    node = view.lookup(view.root(), "f")
    fh = view.open(node, os.O_RDONLY)
    try:
        return bytes(view.read(fh, 0, node.size + 1))
    finally:
        view.release(fh)


def test_appends_keep_one_blob_file_and_no_copy(view: Any, home: Path):
    fh, _node = view.create(view.root(), "f", 0o644, os.O_WRONLY)
    view.write(fh, 0, b"a" * MIB)
    view.flush(fh)
    view.release(fh)
    first = blobs(home)
    assert len(first) == 1
    expected = b"a" * MIB
    for i in range(5):
        append(view, bytes([98 + i]) * 1000)
        expected += bytes([98 + i]) * 1000
        now = blobs(home)
        assert len(now) == 1, "the superseded blob is reclaimed at the commit"
        assert set(now.values()) == set(first.values()), "the same file, not a copy"
    assert content(view) == expected
    with Catalog(home) as cat:
        assert cat.fsck() == []


def test_a_write_before_the_end_puts_the_blob_back(view: Any, home: Path):
    fh, _node = view.create(view.root(), "f", 0o644, os.O_WRONLY)
    view.write(fh, 0, b"a" * MIB)
    view.release(fh)
    node = view.lookup(view.root(), "f")
    fh = view.open(node, os.O_WRONLY)
    view.write(fh, MIB, b"tail")  # takes the blob back...
    held = blobs(home)
    assert held == {}, "taken back: the mount's alone while open"
    view.write(fh, 0, b"HEAD")  # ...and a write before its end puts it back
    assert len(blobs(home)) == 1
    with Catalog(home) as cat:  # what the catalog names is whole meanwhile
        assert b"".join(cat.cat("ds@draft", "f")) == b"a" * MIB
    view.release(fh)
    assert content(view) == b"HEAD" + b"a" * (MIB - 4) + b"tail"
    assert len(blobs(home)) == 1


def test_a_close_without_commit_puts_the_blob_back(view: Any, home: Path):
    fh, _node = view.create(view.root(), "f", 0o644, os.O_WRONLY)
    view.write(fh, 0, b"a" * MIB)
    view.release(fh)
    node = view.lookup(view.root(), "f")
    fh = view.open(node, os.O_WRONLY)
    view.write(fh, MIB, b"tail")
    view.unlink(view.root(), "f")  # removed while open: nothing is committed
    view.release(fh)
    with Catalog(home) as cat:
        assert cat.fsck() == []


def test_a_pointer_copy_made_while_taken_back_keeps_its_bytes(view: Any, home: Path):
    fh, _node = view.create(view.root(), "f", 0o644, os.O_WRONLY)
    view.write(fh, 0, b"a" * MIB)
    view.release(fh)
    node = view.lookup(view.root(), "f")
    fh = view.open(node, os.O_WRONLY)
    view.write(fh, MIB, b"tail")  # taken back
    view.mkdir(view.root(), "g", 0o755)
    with Catalog(home) as cat:
        cat.cp("ds@draft", ["f"], "g")  # another process names the old bytes now
    view.release(fh)
    assert content(view) == b"a" * MIB + b"tail"
    with Catalog(home) as cat:
        assert b"".join(cat.cat("ds@draft", "g/f")) == b"a" * MIB
        assert cat.fsck() == []

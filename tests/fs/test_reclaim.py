"""A draft mount does not fill the disk: the bytes a close supersedes are reclaimed as
the mount goes, and nothing another version, draft, import or mount reaches is."""

from __future__ import annotations

import os
from pathlib import Path

from dlfs import Catalog
from tests.fsutil import Mounter, dlfs

CHUNK = 256 << 10
APPENDS = 20


def store_bytes(home: Path) -> int:
    """The bytes of every blob in the local store (block manifests aside: 16 bytes a
    block)."""
    root = home / "blobs"
    return sum(
        e.stat().st_size
        for shard in os.scandir(root)
        if shard.is_dir() and len(shard.name) == 2
        for e in os.scandir(shard.path)
        if len(e.name) == 32
    )


def blob_inodes(home: Path) -> set[int]:
    root = home / "blobs"
    return {
        e.inode()
        for shard in os.scandir(root)
        if shard.is_dir() and len(shard.name) == 2
        for e in os.scandir(shard.path)
        if len(e.name) == 32
    }


def chunk(i: int) -> bytes:
    return bytes([i % 251]) * (CHUNK - 1) + b"\n"


def test_appends_keep_the_store_within_twice_the_file(home: Path, mounter: Mounter, tmp_path: Path):
    with Catalog(home) as cat:
        cat.create_dataset("logs")
    mnt = tmp_path / "mnt"
    mounter("logs@draft", mnt)
    worst = 0
    inodes = []
    for i in range(APPENDS):
        with open(mnt / "log.bin", "ab") as f:  # each `>>`: an open and a close
            f.write(chunk(i))
        worst = max(worst, store_bytes(home) / ((i + 1) * CHUNK))
        inodes.append(blob_inodes(home))
    # From 1 MiB on, each append goes on in the blob's own file (taken back, renamed
    # as the new blob): the file is never copied again.
    big = [s for i, s in enumerate(inodes) if (i + 1) * CHUNK > 1 << 20]
    assert all(len(s) == 1 for s in big) and len(set.union(*big)) == 1, inodes
    expected = b"".join(chunk(i) for i in range(APPENDS))
    assert (mnt / "log.bin").read_bytes() == expected
    assert worst <= 2.0, f"the store held {worst:.2f}x the file while mounted"
    dlfs(home, "umount", str(mnt))
    with Catalog(home) as cat:
        cat.publish("logs")
        assert b"".join(cat.cat("logs@latest", "log.bin")) == expected
    assert store_bytes(home) == len(expected)  # 1.0x


def test_rewrites_keep_what_other_versions_and_datasets_reach(
    home: Path, mounter: Mounter, tmp_path: Path
):
    old, mine, shared = b"published bytes\n" * 1000, b"draft bytes\n" * 1000, b"shared\n" * 999
    with Catalog(home) as cat:
        cat.create_dataset("a")
        cat.add_bytes("a", "f.txt", old)
        cat.publish("a")
        cat.create_version("a", ["a@latest"])
        cat.create_dataset("b")
    ro = mounter("a@latest", tmp_path / "ro")  # a second mount, reading the parent
    mnt = tmp_path / "rw"
    mounter("a@draft", mnt)
    (mnt / "f.txt").write_bytes(mine)  # supersedes the published blob: kept
    (mnt / "g.txt").write_bytes(shared)
    with Catalog(home) as cat:  # an import dedups against the draft's blob
        cat.add_bytes("b", "same.txt", shared)
    (mnt / "g.txt").write_bytes(b"other\n")  # supersedes it here: kept for b
    (mnt / "f.txt").write_bytes(b"again\n")  # supersedes `mine`: reclaimed
    assert (ro.path / "f.txt").read_bytes() == old
    with Catalog(home) as cat:
        assert b"".join(cat.cat("a@latest", "f.txt")) == old
        assert b"".join(cat.cat("b@draft", "same.txt")) == shared
        assert b"".join(cat.cat("a@draft", "g.txt")) == b"other\n"
        assert cat.fsck() == []
    sizes = store_bytes(home)
    assert sizes == len(old) + len(shared) + len(b"other\n") + len(b"again\n")


def test_a_reader_keeps_the_bytes_it_opened(home: Path, mounter: Mounter, tmp_path: Path):
    first = b"first version\n" * 5000
    with Catalog(home) as cat:
        cat.create_dataset("r")
    mnt = tmp_path / "mnt"
    mounter("r@draft", mnt)
    (mnt / "f").write_bytes(first)
    with open(mnt / "f", "rb") as reader:
        assert reader.read(10) == first[:10]
        (mnt / "f").write_bytes(b"second\n")  # supersedes `first`, which the reader holds
        rest = reader.read()
    assert rest in (first[10:], b"")  # its own bytes (or the end of the new ones), no EIO
    (mnt / "f").write_bytes(b"third\n")  # the reader is gone: `first` goes now
    assert store_bytes(home) == len(b"third\n")

"""dlfs.view driven directly, without a kernel: the semantics the daemon adapts."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from dlfs import Catalog, nodes, view
from dlfs.errors import (
    Corrupt,
    IsADirectory,
    NameTooLong,
    NoAttribute,
    NotADirectory,
    NotFound,
    ReadOnly,
    Unavailable,
)
from dlfs.home import Home
from dlfs.stores import localread
from dlfs.stores.base import BlobStore
from dlfs.stores.local import LocalStore
from dlfs.stores.localread import LocalReader
from dlfs.view import Node, Role, View, open_view

META = {"label": "cat", "score": 0.75}
ANNOTATIONS = [{"type": "box", "coords": [1, 2, 3, 4]}]
BIG = bytes(range(256)) * 9000  # 2.3 MB: above the inline verification limit


@pytest.fixture
def published(catalog: Catalog, sample: Path) -> str:
    """A published version of the sample tree plus a big file; returns its ref."""
    catalog.create_dataset("cats")
    catalog.add("cats", [sample])
    catalog.add_bytes("cats", "big/blob.bin", BIG)
    catalog.set_meta("cats", "train/a.jpg", metadata=META, annotations=ANNOTATIONS)
    return catalog.publish("cats").ref


@pytest.fixture
def open_views(home: Path) -> Iterator[Callable[..., View]]:
    """Open views on the test catalog; all are closed afterwards."""
    opened: list[View] = []

    def make(ref: str | None = None, **kw: object) -> View:
        v = open_view(Home.at(home), ref, **kw)  # type: ignore[arg-type]
        opened.append(v)
        return v

    yield make
    for v in opened:
        v.close()


def local_reader(v: View) -> LocalReader:
    """The reader of the local store a view reads through (its caches are checked)."""
    store = v.reads.store(v.root().dataset)
    assert isinstance(store, LocalStore)
    return store.reader()


def walk(v: View, node: Node, prefix: str = "") -> dict[str, Node]:
    """Every path under ``node`` (via listings), with its node."""
    out: dict[str, Node] = {}
    for _pos, name, child in v.listing(node).entries_from(0):
        path = prefix + name
        out[path] = child
        if child.role == Role.FOLDER:
            out.update(walk(v, child, path + "/"))
    return out


def resolve(v: View, path: str) -> Node:
    node = v.root()
    for part in path.split("/"):
        node = v.lookup(node, part)
    return node


def read_all(v: View, node: Node, chunk: int = 128 * 1024) -> bytes:
    fh = v.open(node, os.O_RDONLY)
    try:
        parts = []
        offset = 0
        while data := read_like_the_daemon(v, fh, offset, chunk):
            parts.append(data)
            offset += len(data)
        return b"".join(parts)
    finally:
        v.release(fh)


def read_like_the_daemon(v: View, fh: int, offset: int, size: int) -> bytes:
    """``read_nowait``, then ``read`` in a worker thread if that would block."""
    data = v.read_nowait(fh, offset, size)
    if data is None:
        with ThreadPoolExecutor(1) as pool:
            data = pool.submit(v.read, fh, offset, size).result()
    return data


def evict(path: Path) -> None:
    """Drop a file's pages from the page cache."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def blob_file(home: Path, blob: str) -> Path:
    return home / "blobs" / blob[:2] / blob


# -- one version ------------------------------------------------------------------------


def test_tree_matches_the_source(published: str, open_views: Callable[..., View], sample: Path):
    v = open_views(published)
    nodes = walk(v, v.root())
    files = {p: n for p, n in nodes.items() if n.role == Role.FILE}
    expected = {str(p.relative_to(sample)): p for p in sample.rglob("*") if p.is_file()}
    assert set(files) == set(expected) | {"big/blob.bin"}
    for path, src in expected.items():
        assert files[path].size == src.stat().st_size
        assert read_all(v, files[path]) == src.read_bytes()
    assert read_all(v, files["big/blob.bin"]) == BIG


def test_attributes_are_stable_and_read_only(
    published: str, open_views: Callable[..., View], catalog: Catalog
):
    v = open_views(published)
    info = catalog.version(published).info()
    root = v.root()
    assert root.mode == stat.S_IFDIR | 0o555
    assert root.cache and root.ttl == view.CACHE_TTL
    folder = v.lookup(root, "train")
    assert folder.mode == stat.S_IFDIR | 0o555
    assert 0 < folder.mtime_ns <= root.mtime_ns  # folders: when their entries changed
    item = catalog.item(published, "train/a.jpg")
    node = resolve(v, "train/a.jpg")
    assert node.mode == stat.S_IFREG | 0o444
    assert node.mtime_ns == int(item.mtime * 1e9)
    assert (node.ref, node.blob, node.size) == (item.id, item.blob, item.size)
    assert v.uid == os.getuid() and v.gid == os.getgid()
    assert info["id"] == node.version
    again = open_views(published)
    assert walk(again, again.root()) == walk(v, v.root())


def test_lookup_errors(published: str, open_views: Callable[..., View]):
    v = open_views(published)
    with pytest.raises(NotFound):
        v.lookup(v.root(), "nope")
    with pytest.raises(NameTooLong):
        v.lookup(v.root(), "x" * 256)
    with pytest.raises(NotFound):  # a name that is not UTF-8 (from os.fsdecode)
        v.lookup(v.root(), os.fsdecode(b"caf\xe9.jpg"))
    v.lookup(v.root(), "cat.jpg")
    with pytest.raises(NotADirectory):
        v.lookup(v.lookup(v.root(), "cat.jpg"), "x")
    with pytest.raises(NotADirectory):
        v.listing(v.lookup(v.root(), "cat.jpg"))
    with pytest.raises(IsADirectory):
        v.open(v.root(), os.O_RDONLY)


def test_listing_pages_and_resumes(
    published: str, open_views: Callable[..., View], monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(nodes, "LISTING_PAGE", 2)
    v = open_views(published)
    names = [name for _pos, name, _node in v.listing(v.root()).entries_from(0)]
    assert names == sorted(names) == ["big", "cat.jpg", "train", "val"]
    listing = v.listing(v.root())
    first = list(zip(range(3), listing.entries_from(0), strict=False))
    resume = first[-1][1][0]
    rest = [name for _pos, name, _node in listing.entries_from(resume)]
    assert [e[1][1] for e in first] + rest == names
    assert [name for _p, name, _n in listing.entries_from(1)] == names[1:]


def test_published_listings_are_remembered(published: str, open_views: Callable[..., View]):
    v = open_views(published)
    train = v.lookup(v.root(), "train")
    first = [n for _p, n, _node in v.listing(train).entries_from(0)]
    queries: list[str] = []
    v.db.conn.set_trace_callback(queries.append)
    assert [n for _p, n, _node in v.listing(train).entries_from(0)] == first
    assert queries == []  # immutable: listed once, then from memory


def test_reads_at_offsets(published: str, open_views: Callable[..., View]):
    v = open_views(published)
    fh = v.open(resolve(v, "train/b.jpg"), os.O_RDONLY)
    assert v.read(fh, 0, 3) == b"BBB"
    assert v.read(fh, 6998, 100) == b"BB"
    assert v.read(fh, 7000, 100) == b""
    assert v.read(fh, 10**9, 100) == b""
    v.release(fh)


def test_xattrs(published: str, open_views: Callable[..., View], catalog: Catalog):
    v = open_views(published)
    node = resolve(v, "train/a.jpg")
    assert v.listxattr(node) == [
        "user.dlfs.item",
        "user.dlfs.blob",
        "user.dlfs.metadata",
        "user.dlfs.annotations",
    ]
    assert v.listxattr(v.root()) == [
        "user.dlfs.version",
        "user.dlfs.state",
        "user.dlfs.dataset",
        "user.dlfs.version_metadata",
    ]
    assert json.loads(v.getxattr(node, "user.dlfs.metadata")) == META
    assert json.loads(v.getxattr(node, "user.dlfs.annotations")) == ANNOTATIONS
    item = catalog.item(published, "train/a.jpg")
    assert v.getxattr(node, "user.dlfs.item").decode() == item.id
    assert v.getxattr(node, "user.dlfs.blob").decode() == item.blob
    root = v.root()
    assert v.getxattr(root, "user.dlfs.version").decode() == root.version
    assert v.getxattr(root, "user.dlfs.state") == b"published"
    assert v.getxattr(root, "user.dlfs.dataset") == b"cats"
    assert v.getxattr(root, "user.dlfs.version_metadata") == b"{}"
    assert v.listxattr(v.lookup(root, "train")) == []
    with pytest.raises(NoAttribute):
        v.getxattr(node, "user.dlfs.nope")
    with pytest.raises(NoAttribute):
        v.getxattr(root, "user.dlfs.blob")


def test_foreign_xattrs_never_touch_the_catalog(published: str, open_views: Callable[..., View]):
    v = open_views(published)
    node = resolve(v, "train/a.jpg")
    queries: list[str] = []
    v.db.conn.set_trace_callback(queries.append)
    for name in ("security.selinux", "system.posix_acl_access", "trusted.x", "user.other"):
        with pytest.raises(NoAttribute):
            v.getxattr(node, name)
    assert v.getxattr(node, "user.dlfs.blob").decode() == node.blob  # from the node
    assert v.getxattr(node, "user.dlfs.item").decode() == node.ref
    v.getattr(node)
    fh = v.open(node, os.O_RDONLY)
    v.release(fh)
    assert queries == []


@pytest.mark.parametrize(
    "write",
    [
        lambda v, n, r: v.open(n, os.O_WRONLY),
        lambda v, n, r: v.open(n, os.O_RDWR),
        lambda v, n, r: v.open(n, os.O_RDONLY | os.O_TRUNC),
        lambda v, n, r: v.refuse("write"),
    ],
)
def test_every_write_is_refused(
    published: str, open_views: Callable[..., View], write: Callable[[View, Node, Node], object]
):
    v = open_views(published)
    with pytest.raises(ReadOnly, match="published"):
        write(v, v.lookup(v.root(), "cat.jpg"), v.root())
    assert [name for _p, name, _n in v.listing(v.root()).entries_from(0)] == [
        "big",
        "cat.jpg",
        "train",
        "val",
    ]


def test_statfs(published: str, open_views: Callable[..., View]):
    v = open_views(published)
    stats = v.statfs()
    total = sum(len(data) for data in (b"meow" * 1000, b"A" * 5000, b"B" * 7000))
    total += len(b"deep file\n") + 5000 + len(BIG)
    assert stats.files == 6
    assert stats.blocks == -(-total // stats.block_size)
    assert stats.name_max == 255


# -- verification -----------------------------------------------------------------------


@pytest.mark.expect_log("is unreadable")
def test_corrupt_blob_fails_and_others_still_read(
    published: str, open_views: Callable[..., View], home: Path, catalog: Catalog
):
    item = catalog.item(published, "train/b.jpg")
    blob_file(home, item.blob).write_bytes(b"X" * item.size)
    v = open_views(published)
    node = resolve(v, "train/b.jpg")
    for _ in range(2):  # and it stays failed (reported once, not re-hashed)
        fh = v.open(node, os.O_RDONLY)
        with pytest.raises(Corrupt):
            v.read(fh, 0, 4096)
        v.release(fh)
    assert read_all(v, resolve(v, "cat.jpg")) == b"meow" * 1000


@pytest.mark.expect_log("is unreadable")
def test_missing_blob_fails_only_that_file(
    published: str, open_views: Callable[..., View], home: Path, catalog: Catalog
):
    item = catalog.item(published, "cat.jpg")
    blob_file(home, item.blob).unlink()
    v = open_views(published)
    node = resolve(v, "cat.jpg")  # the tree is fine: only reading fails
    fh = v.open(node, os.O_RDONLY)
    with pytest.raises(Unavailable):
        v.read(fh, 0, 10)
    assert read_all(v, resolve(v, "train/deep/c.txt")) == b"deep file\n"


@pytest.mark.expect_log("is unreadable")
def test_large_blob_is_read_off_the_event_loop(
    published: str, open_views: Callable[..., View], home: Path, catalog: Catalog
):
    v = open_views(published)
    node = resolve(v, "big/blob.bin")
    fh = v.open(node, os.O_RDONLY)
    assert v.read_nowait(fh, 100, 10) is None  # too big to hash inline: a thread does
    with ThreadPoolExecutor(1) as pool:
        assert pool.submit(v.read, fh, 100, 10).result() == BIG[100:110]
    assert v.read_nowait(fh, len(BIG) - 3, 10) == BIG[-3:]  # verified, open: inline
    # A corrupt large blob fails before any byte is served.
    item = catalog.item(published, "big/blob.bin")
    corrupt = bytearray(BIG)
    corrupt[-1] ^= 1
    blob_file(home, item.blob).write_bytes(bytes(corrupt))
    fresh = open_views(published)
    fh = fresh.open(resolve(fresh, "big/blob.bin"), os.O_RDONLY)
    assert fresh.read_nowait(fh, 0, 10) is None
    with ThreadPoolExecutor(1) as pool, pytest.raises(Corrupt):
        pool.submit(fresh.read, fh, 0, 10).result()


def test_first_reads_run_inline_while_the_disk_is_fast_and_in_threads_when_slow(
    published: str, open_views: Callable[..., View], monkeypatch: pytest.MonkeyPatch
):
    v = open_views(published)
    fh = v.open(resolve(v, "cat.jpg"), os.O_RDONLY)
    assert v.read_nowait(fh, 0, 4) == b"meow"  # opened and verified inline
    monkeypatch.setattr(localread, "INLINE_COLD_MAX", -1.0)  # every disk is slow from now on
    fh = v.open(resolve(v, "train/b.jpg"), os.O_RDONLY)
    assert v.read_nowait(fh, 0, 3) is None  # left to a worker thread
    with ThreadPoolExecutor(1) as pool:
        assert bytes(pool.submit(v.read, fh, 0, 3).result()) == b"BBB"
    assert v.read_nowait(fh, 3, 3) == b"BBB"  # verified and open: served at once


@pytest.mark.expect_log("is unreadable")
def test_replaced_blob_file_is_verified_again(
    published: str,
    open_views: Callable[..., View],
    home: Path,
    catalog: Catalog,
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setattr(localread, "FD_CACHE", 1)
    v = open_views(published)
    assert read_all(v, resolve(v, "train/b.jpg")) == b"B" * 7000
    assert read_all(v, resolve(v, "cat.jpg")) == b"meow" * 1000  # evicts b.jpg's fd
    item = catalog.item(published, "train/b.jpg")
    path = blob_file(home, item.blob)
    tmp = path.with_name("tmp")
    tmp.write_bytes(b"C" * 7000)
    os.replace(tmp, path)
    fh = v.open(resolve(v, "train/b.jpg"), os.O_RDONLY)
    with pytest.raises(Corrupt):
        v.read(fh, 0, 10)


def test_fd_cache_stays_bounded(
    published: str, open_views: Callable[..., View], monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(localread, "FD_CACHE", 2)
    v = open_views(published)
    files = {p: n for p, n in walk(v, v.root()).items() if n.role == Role.FILE}
    for _round in range(2):
        for node in files.values():
            read_all(v, node)
    assert len(local_reader(v)._fds) <= 2


# -- the whole catalog ------------------------------------------------------------------


def test_catalog_view_shows_datasets_versions_and_tags(
    published: str, open_views: Callable[..., View], catalog: Catalog
):
    catalog.create_dataset("dogs")  # only a draft: an empty folder
    v = open_views()
    root = v.root()
    assert root.role == Role.CATALOG and not root.cache
    assert [n for _p, n, _node in v.listing(root).entries_from(0)] == ["cats", "dogs"]
    cats = v.lookup(root, "cats")
    vid = published.split("@")[1]
    entries = {n: node for _p, n, node in v.listing(cats).entries_from(0)}
    assert set(entries) == {vid, "latest", "v0"}
    assert entries[vid].role == Role.VERSION
    assert v.readlink(entries["latest"]) == vid
    assert v.readlink(v.lookup(cats, "v0")) == vid
    assert [n for _p, n, _node in v.listing(v.lookup(root, "dogs")).entries_from(0)] == []
    version_root = v.lookup(cats, vid)
    assert read_all(v, resolve_from(v, version_root, "train/b.jpg")) == b"B" * 7000
    with pytest.raises(NotFound):
        v.lookup(cats, "v9")
    with pytest.raises(ReadOnly, match="catalog"):
        v.refuse("make a folder")


def resolve_from(v: View, node: Node, path: str) -> Node:
    for part in path.split("/"):
        node = v.lookup(node, part)
    return node


def test_catalog_view_sees_new_versions_and_datasets(
    published: str, open_views: Callable[..., View], catalog: Catalog
):
    v = open_views()
    cats = v.lookup(v.root(), "cats")
    draft = catalog.create_version("cats", ["cats@latest"])
    catalog.add_bytes(draft.ref, "new.txt", b"new")
    draft_id = draft.id
    with pytest.raises(NotFound):  # drafts are not part of the catalog mount
        v.lookup(cats, draft_id)
    v1 = catalog.publish(draft.ref)
    names = {n for _p, n, _node in v.listing(cats).entries_from(0)}
    assert {v1.id, "v1", "latest"} <= names
    assert v.readlink(v.lookup(cats, "latest")) == v1.id
    assert read_all(v, resolve_from(v, v.lookup(cats, v1.id), "new.txt")) == b"new"
    catalog.create_dataset("birds")
    assert "birds" in {n for _p, n, _node in v.listing(v.root()).entries_from(0)}
    assert v.getattr(v.root()).mtime_ns >= v.root().mtime_ns


# -- drafts -----------------------------------------------------------------------------


def test_draft_view_is_live_and_read_only(
    published: str, open_views: Callable[..., View], catalog: Catalog
):
    draft = catalog.create_version("cats", ["cats@latest"])
    v = open_views(draft.ref)
    assert not v.root().cache and v.mode == "draft"
    before = [n for _p, n, _node in v.listing(v.lookup(v.root(), "train")).entries_from(0)]
    catalog.add_bytes(draft.ref, "train/new.txt", b"fresh")
    after = [n for _p, n, _node in v.listing(v.lookup(v.root(), "train")).entries_from(0)]
    assert set(after) - set(before) == {"new.txt"}  # a draft's listings are not kept
    node = resolve(v, "train/new.txt")
    assert not node.cache and node.ttl == view.LIVE_TTL
    assert read_all(v, node) == b"fresh"
    assert v.getxattr(v.root(), "user.dlfs.state") == b"draft"
    with pytest.raises(ReadOnly, match="draft"):
        v.refuse("make a folder")


# -- laziness ---------------------------------------------------------------------------


class CountingStore(LocalStore):
    """A local store that counts what is asked of it."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.paths: list[str] = []

    def local_file(self, blob: str) -> str | None:
        self.paths.append(blob)
        return super().local_file(blob)


def build_big(catalog: Catalog, tmp_path: Path) -> str:
    """A version with 111,110 files (10 files copied as pointers, 10x per level)."""
    src = tmp_path / "ten"
    src.mkdir()
    for i in range(10):
        (src / f"f{i}.txt").write_bytes(f"file {i}\n".encode())
    catalog.create_dataset("big")
    catalog.add("big", [src], to="a")
    previous = "a"
    for level in "bcde":
        catalog.mkdir("big", [level])
        for i in range(10):
            catalog.cp("big", [previous], f"{level}/{i}")
        previous = level
    return catalog.publish("big").ref


def test_a_big_version_is_opened_lazily(
    catalog: Catalog, tmp_path: Path, home: Path, open_views: Callable[..., View]
):
    ref = build_big(catalog, tmp_path)
    assert catalog.version(ref).info()["files"] == 111_110
    store = CountingStore(home / "blobs")

    def stores(url: str) -> BlobStore:
        return store

    queries: list[str] = []
    v = open_views(ref, stores=stores)
    v.db.conn.set_trace_callback(queries.append)
    node = resolve(v, "e/3/1/4/1/f5.txt")
    assert len(queries) == 6  # one index probe per path component
    assert store.paths == []  # nothing read from the store yet
    assert read_all(v, node) == b"file 5\n"
    assert set(store.paths) == {node.blob}  # only the blob that was read
    folder = v.lookup(v.root(), "e")
    queries.clear()
    names = [n for _p, n, _node in v.listing(folder).entries_from(0)]
    assert names == [str(i) for i in range(10)] and len(queries) == 1


# -- large blobs: verified block by block ----------------------------------------------

BLOCK = 64 * 1024
LARGE = os.urandom(5 * BLOCK + 123)


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Local stores made from now on cut blobs in blocks of 64 KiB."""
    monkeypatch.setattr("dlfs.stores.local.BLOCK_SIZE", BLOCK)


@pytest.fixture
def large(small_blocks: None, catalog: Catalog) -> str:
    catalog.create_dataset("dogs")
    catalog.add_bytes("dogs", "large.bin", LARGE)
    return catalog.publish("dogs").ref


def test_hashed_blocks_serve_their_reads_and_are_let_go(
    large: str, open_views: Callable[..., View]
):
    v = open_views(large)
    node = resolve(v, "large.bin")
    fh = v.open(node, os.O_RDONLY)
    half = BLOCK // 2
    assert bytes(read_like_the_daemon(v, fh, 0, half)) == LARGE[:half]
    # Block 0 was read from the disk to be hashed; those bytes serve the next read.
    assert local_reader(v)._kept.size >= BLOCK
    assert bytes(read_like_the_daemon(v, fh, half, half)) == LARGE[half:BLOCK]
    v.release(fh)
    assert read_all(v, node, chunk=half) == LARGE
    assert local_reader(v)._kept.size == 0  # each block was let go once read to its end


def test_large_blob_gets_a_manifest_and_streams(
    large: str,
    open_views: Callable[..., View],
    home: Path,
    catalog: Catalog,
    monkeypatch: pytest.MonkeyPatch,
):
    blob = catalog.item(large, "large.bin").blob
    manifest = home / "blobs" / blob[:2] / f"{blob}.blocks"
    assert manifest.exists()
    monkeypatch.setattr(localread, "INLINE_COLD_MAX", -1.0)  # a slow disk: first reads in threads
    v = open_views(large)
    fh = v.open(resolve(v, "large.bin"), os.O_RDONLY)
    assert v.read_nowait(fh, 0, 10) is None  # first block: a worker thread
    with ThreadPoolExecutor(1) as pool:
        assert pool.submit(v.read, fh, 0, 10).result() == LARGE[:10]
    assert read_all(v, resolve(v, "large.bin"), chunk=10_000) == LARGE
    assert v.read_nowait(fh, 3 * BLOCK + 5, 10) == LARGE[3 * BLOCK + 5 : 3 * BLOCK + 15]


@pytest.mark.expect_log("is unreadable")
def test_corrupt_block_fails_only_its_reads(
    large: str, open_views: Callable[..., View], home: Path, catalog: Catalog
):
    path = blob_file(home, catalog.item(large, "large.bin").blob)
    damaged = bytearray(LARGE)
    damaged[2 * BLOCK + 7] ^= 1
    path.write_bytes(bytes(damaged))
    v = open_views(large)
    node = resolve(v, "large.bin")
    fh = v.open(node, os.O_RDONLY)
    for offset in (2 * BLOCK, 3 * BLOCK - 10, 2 * BLOCK - 5):  # block 2, or touching it
        with pytest.raises(Corrupt):
            read_like_the_daemon(v, fh, offset, 10)
    assert read_like_the_daemon(v, fh, 0, 100) == LARGE[:100]
    assert read_like_the_daemon(v, fh, 4 * BLOCK, 100) == LARGE[4 * BLOCK : 4 * BLOCK + 100]
    assert read_like_the_daemon(v, fh, 2 * BLOCK - 10, 10) == LARGE[2 * BLOCK - 10 : 2 * BLOCK]


@pytest.mark.expect_log("is unreadable")
@pytest.mark.parametrize("damage", ["garbage", "missing-hash", "wrong-size"])
def test_damaged_manifest_makes_the_blob_corrupt(
    large: str, open_views: Callable[..., View], home: Path, catalog: Catalog, damage: str
):
    from dlfs.stores.manifest import Manifest

    blob = catalog.item(large, "large.bin").blob
    manifest = home / "blobs" / blob[:2] / f"{blob}.blocks"
    if damage == "garbage":
        manifest.write_bytes(manifest.read_bytes()[:-3])
    elif damage == "missing-hash":
        doc = json.loads(manifest.read_bytes())
        doc["hashes"].pop()
        manifest.write_text(json.dumps(doc))
    else:  # a valid manifest of another size
        good = Manifest.decode(blob, manifest.read_bytes())
        other = Manifest(blob, good.size - 1, good.block_size, good.hashes)
        manifest.write_bytes(other.encode())
    v = open_views(large)
    fh = v.open(resolve(v, "large.bin"), os.O_RDONLY)
    with pytest.raises(Corrupt):
        read_like_the_daemon(v, fh, 0, 10)


@pytest.mark.expect_log("is unreadable")
def test_large_blob_without_manifest_is_hashed_whole(
    large: str, open_views: Callable[..., View], home: Path, catalog: Catalog
):
    blob = catalog.item(large, "large.bin").blob
    (home / "blobs" / blob[:2] / f"{blob}.blocks").unlink()
    v = open_views(large)
    assert read_all(v, resolve(v, "large.bin")) == LARGE
    path = blob_file(home, blob)
    damaged = bytearray(LARGE)
    damaged[-1] ^= 1
    path.write_bytes(bytes(damaged))
    fresh = open_views(large)
    fh = fresh.open(resolve(fresh, "large.bin"), os.O_RDONLY)
    with pytest.raises(Corrupt):
        read_like_the_daemon(fresh, fh, 0, 10)


def test_a_remote_file_read_to_its_end_is_not_warmed_again(
    s3: Any, catalog: Catalog, sample: Path, open_views: Callable[..., View]
):
    # The kernel keeps the pages of an immutable file once read, so opening it again
    # must not cost a background job; a file not read yet is still warmed.
    catalog.create_dataset("far", storage=f"s3://{s3.bucket()}/data")
    catalog.add("far", [sample])
    v = open_views(catalog.publish("far").ref)
    warmed: list[str] = []
    v.reads._prefetch.opened = lambda key, warm, *_: warmed.append(key)  # type: ignore[method-assign]
    first, other = resolve(v, "train/a.jpg"), resolve(v, "train/b.jpg")
    assert read_all(v, first) == (sample / "train/a.jpg").read_bytes()
    fh = v.open(first, os.O_RDONLY)
    v.release(fh)
    assert warmed == []
    fh = v.open(other, os.O_RDONLY)
    v.release(fh)
    assert warmed == [other.blob]

"""dlfs.inodenumbers without a kernel: inode numbers handed out by one worker of a
mount mean the same path in every other worker (each with its own view and catalog
connection, as after the fork), and ``forget`` anywhere is harmless."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dlfs import Catalog
from dlfs.errors import NotFound, StaleInode
from dlfs.home import Home
from dlfs.inodenumbers import FIRST, ROOT, InodeLog, SharedInodes
from dlfs.nodes import Listing, Node, Role
from dlfs.view import View, open_view


@pytest.fixture
def published(catalog: Catalog, sample: Path) -> str:
    catalog.create_dataset("cats")
    catalog.add("cats", [sample])
    return catalog.publish("cats").ref


@pytest.fixture
def workers(home: Path) -> Iterator[Callable[[str | None, int], list[tuple[View, SharedInodes]]]]:
    """``make(ref, n)``: n workers, each with its own view, sharing n inode logs."""
    views: list[View] = []
    logs: list[InodeLog] = []

    def make(ref: str | None, n: int) -> list[tuple[View, SharedInodes]]:
        made = [InodeLog() for _ in range(n)]
        logs.extend(made)
        out = []
        for w in range(n):
            v = open_view(Home.at(home), ref)
            views.append(v)
            out.append((v, SharedInodes(v.root(), made, w, v.lookup)))
        return out

    yield make
    for v in views:
        v.close()
    for log in logs:
        log.close()


def walk(view: View, inodes: SharedInodes, path: str) -> int:
    """What lookups from the root do: the inode of ``path``."""
    ino = ROOT
    for name in path.split("/"):
        ino = inodes.remember(ino, name, view.lookup(inodes.node(ino), name))
    return ino


def test_a_number_from_one_worker_names_the_same_file_in_another(
    workers: Callable[..., list[tuple[View, SharedInodes]]], published: str
) -> None:
    (v0, t0), (v1, t1) = workers(published, 2)
    ino = walk(v0, t0, "train/deep/c.txt")
    node = t1.node(ino)  # worker 1 never looked anything up
    assert node == t0.node(ino)
    assert node.role == Role.FILE
    assert node.size == len(b"deep file\n")
    fh = v1.open(node, 0)
    assert bytes(v1.read(fh, 0, 100)) == b"deep file\n"
    folder = t1.parent(ino)
    assert t1.node(folder).role == Role.FOLDER
    assert t1.parent(t1.parent(folder)) == ROOT


def test_a_path_keeps_one_number_whichever_worker_is_asked(
    workers: Callable[..., list[tuple[View, SharedInodes]]], published: str
) -> None:
    (v0, t0), (v1, t1) = workers(published, 2)
    a0 = walk(v0, t0, "train/a.jpg")
    b1 = walk(v1, t1, "train/b.jpg")
    assert (a0 - FIRST) % 2 == 0 and (b1 - FIRST) % 2 == 1  # each worker its own numbers
    assert walk(v0, t0, "train/a.jpg") == a0  # asked again: the same number
    assert walk(v1, t1, "train/a.jpg") == a0  # asked another worker: the same too
    assert walk(v0, t0, "train/b.jpg") == b1
    assert t0.parent(a0) == t1.parent(b1)  # one train/ for both
    assert len({a0, b1, t0.parent(a0)}) == 3


def test_forget_in_any_worker_is_harmless(
    workers: Callable[..., list[tuple[View, SharedInodes]]], published: str
) -> None:
    (v0, t0), (_v1, t1) = workers(published, 2)
    ino = walk(v0, t0, "cat.jpg")
    t1.forget(ino, 5)
    t0.forget(ino, 1)
    t0.drop_unused(ino)
    assert t1.node(ino).size == 4000
    assert t0.node(ino).size == 4000


def test_unknown_numbers_are_stale(
    workers: Callable[..., list[tuple[View, SharedInodes]]], published: str
) -> None:
    (_v0, t0), (_v1, t1) = workers(published, 2)
    for ino in (0, FIRST, FIRST + 1, FIRST + 1000):
        with pytest.raises(StaleInode):
            t1.node(ino)
        with pytest.raises(StaleInode):
            t0.parent(ino)


def test_live_catalog_nodes_are_read_again_in_every_worker(
    workers: Callable[..., list[tuple[View, SharedInodes]]],
    published: str,
    catalog: Catalog,
    sample: Path,
) -> None:
    (v0, t0), (_v1, t1) = workers(None, 2)
    tag = walk(v0, t0, "cats/latest")
    first = t1.node(tag).ref
    assert first == published.split("@")[1]
    catalog.create_version("cats", ["cats@latest"])
    catalog.add_bytes("cats", "new.txt", b"new")
    second = catalog.publish("cats").id
    assert t1.node(tag).ref == second  # the tag moved: no remount, no new lookup
    assert t0.node(tag).ref == second
    catalog.delete_dataset("cats", force=True)
    with pytest.raises(NotFound):
        t1.node(walk(v0, t0, "cats"))


def test_a_listing_resumes_anywhere() -> None:
    """A worker may get a readdir continuing a listing another worker started."""
    node = Node(Role.FILE, 0o444, 0, 0, 1.0, True)
    names = [f"f{i:03d}" for i in range(10)]

    def fetch(after: str, limit: int) -> list[tuple[str, Node]]:
        return [(n, node) for n in names if n > after][:limit]

    assert [n for _, n, _ in Listing([], fetch).entries_from(7)] == names[7:]
    assert list(Listing([], fetch).entries_from(10)) == []
    assert list(Listing([], fetch).entries_from(12)) == []

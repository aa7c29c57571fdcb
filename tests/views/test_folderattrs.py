"""A folder's mode, owner and times, set in a draft view, are part of the folder's id
(not of its children's) and travel with publish, clone, merge and push/pull."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import xxhash

from dlfs import Catalog
from dlfs.home import Home
from dlfs.mountviews import open_mount_view
from dlfs.objects import EMPTY_TREE, tree_id
from dlfs.view import open_view
from tests.conftest import make_tree


@pytest.fixture
def published(tmp_path: Path) -> Iterator[tuple[Path, str, str]]:
    """A catalog whose ``cats`` has ``v0`` (plain folders) and ``v1`` (the same, with
    ``team`` given mode 02750, owner 1234:5678 and an mtime, in a draft view)."""
    home = tmp_path / "home"
    src = make_tree(tmp_path / "src", {"team/sub/a.txt": b"a", "team/b.txt": b"b"})
    with Catalog(home) as cat:
        cat.create_dataset("cats")
        cat.add("cats", [src])
        v0 = cat.publish("cats").id
        cat.create_version("cats", ["cats@latest"])
    view = open_mount_view(Home.at(home), "cats@draft")
    try:
        team = view.lookup(view.root(), "team")
        view.setattr(team, mode=stat.S_IFDIR | 0o2750, uid=1234, gid=5678)
        view.setattr(team, mtime_ns=4_000_000_000)
    finally:
        view.close()
    with Catalog(home) as cat:
        v1 = cat.publish("cats").id
    yield home, v0, v1


def _team(home: Path, ref: str) -> Any:
    view = open_view(Home.at(home), ref)
    try:
        team = view.lookup(view.root(), "team")
        sub = view.lookup(team, "sub")
        return team, sub, view.lookup(team, "b.txt")
    finally:
        view.close()


def test_plain_folders_keep_their_ids() -> None:
    old = xxhash.xxh3_128().hexdigest()  # the id of the empty folder before schema 6
    assert EMPTY_TREE == old == tree_id([], "")
    assert tree_id([], '{"mode":448}') != old


def test_folder_attributes_change_its_id_not_its_childrens(
    published: tuple[Path, str, str],
) -> None:
    home, v0, v1 = published
    team0, sub0, b0 = _team(home, f"cats@{v0}")
    team1, sub1, b1 = _team(home, f"cats@{v1}")
    assert team0.ref != team1.ref, "the folder's attributes are part of its id"
    assert (sub0.ref, b0.ref) == (sub1.ref, b1.ref), "its children are untouched"
    assert stat.S_IMODE(team1.mode) == 0o2550, "published: no write bits"
    assert (team1.uid, team1.gid, team1.mtime_ns) == (1234, 5678, 4_000_000_000)
    assert stat.S_IMODE(team0.mode) == 0o555 and team0.uid == -1


def test_clone_and_merge_carry_folder_attributes(published: tuple[Path, str, str]) -> None:
    home, v0, v1 = published
    with Catalog(home) as cat:
        cat.clone(f"cats@{v1}", "copy")
        cat.merge("both", [f"cats@{v1}", f"cats@{v0}"])
        copy, both = cat.publish("copy").id, cat.publish("both").id
    for ref in (f"copy@{copy}", f"both@{both}"):
        team, _sub, _b = _team(home, ref)
        assert (stat.S_IMODE(team.mode), team.uid, team.gid) == (0o2550, 1234, 5678), ref


def test_push_and_pull_carry_folder_attributes(
    s3: Any, published: tuple[Path, str, str], tmp_path: Path
) -> None:
    home, _v0, v1 = published
    remote = f"s3://{s3.bucket()}/team"
    with Catalog(home) as a, Catalog(tmp_path / "b") as b:
        a.push(f"cats@{v1}", remote)
        b.pull(remote, f"cats@{v1}")
    team, _sub, _b = _team(tmp_path / "b", f"cats@{v1}")
    assert (stat.S_IMODE(team.mode), team.uid, team.mtime_ns) == (0o2550, 1234, 4_000_000_000)

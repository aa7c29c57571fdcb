"""Views (``--where`` / ``--group-by``) without a kernel: :mod:`dlfs.arranged` through
:class:`dlfs.view.View`, and the naming rule of :mod:`dlfs.viewspec`."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dlfs import Catalog, arranged
from dlfs.errors import InvalidInput, NotFound, ReadOnly
from dlfs.home import Home
from dlfs.labelindex import index_labels
from dlfs.mountviews import open_mount_view
from dlfs.view import Node, Role, View, open_view
from dlfs.viewspec import EMPTY_NAME, NONE_NAME, ViewSpec, value_name

FILES: dict[str, tuple[dict[str, Any], list[Any]]] = {
    "train/a.jpg": ({"split": "train", "id": 1}, [{"label": "dog"}]),
    "train/b.jpg": ({"split": "train", "id": 2.0}, [{"label": "cat"}, {"label": "dog"}]),
    "train/deep/c.jpg": ({"split": "val"}, []),
    "val/d.jpg": ({"split": "val", "tags": ["x", "y", 3]}, [{"label": "cat", "box": [1]}]),
    "val/e.jpg": ({"split": ""}, [{"label": "a/b"}, "not an annotation", {"no": "label"}]),
    "other/f.txt": ({"split": 7}, [{"label": "@odd"}]),
    "top.txt": ({}, [{"label": "dog"}]),
}


@pytest.fixture
def pets(catalog: Catalog) -> str:
    """A published version of :data:`FILES` (bytes: the path); returns its ref."""
    catalog.create_dataset("pets")
    for path, (meta, ann) in FILES.items():
        catalog.add_bytes("pets", path, path.encode(), metadata=meta, annotations=ann)
    return catalog.publish("pets").ref


@pytest.fixture
def views(home: Path) -> Iterator[Callable[..., View]]:
    opened: list[View] = []

    def make(ref: str, where: str | None = None, group_by: str | None = None) -> View:
        v = open_view(Home.at(home), ref, spec=ViewSpec.parse(where, group_by))
        opened.append(v)
        return v

    yield make
    for v in opened:
        v.close()


def walk(v: View, node: Node | None = None, prefix: str = "") -> dict[str, bytes]:
    """Every file under ``node`` (via listings and lookups) with its bytes."""
    node = v.root() if node is None else node
    out: dict[str, bytes] = {}
    for _pos, name, child in v.listing(node).entries_from(0):
        assert v.lookup(node, name) == child  # a lookup finds what the listing shows
        if child.is_dir:
            out.update(walk(v, child, prefix + name + "/"))
        else:
            fh = v.open(child, os.O_RDONLY)
            out[prefix + name] = bytes(v.read(fh, 0, child.size + 1))
            v.release(fh)
    return out


WHERES = [
    'label == "dog"',
    'metadata.split == "val"',
    "label == null",
    'path == "train/deep/c.jpg"',
    'label == "nothing"',
    'name == "b.jpg" or metadata.id == 1',
]


@pytest.mark.parametrize("expr", WHERES)
def test_a_where_view_shows_what_a_filtered_clone_holds(
    catalog: Catalog, pets: str, views: Callable[..., View], expr: str
) -> None:
    clone = catalog.clone(pets, "cut", where=expr, publish=True)
    assert walk(views(pets, where=expr)) == walk(views(clone.ref))


def test_folders_without_a_matching_item_are_left_out(
    pets: str, views: Callable[..., View]
) -> None:
    v = views(pets, where='metadata.split == "train"')
    names = [n for _p, n, _node in v.listing(v.root()).entries_from(0)]
    assert names == ["train"]
    train = v.lookup(v.root(), "train")
    assert [n for _p, n, _node in v.listing(train).entries_from(0)] == ["a.jpg", "b.jpg"]
    with pytest.raises(NotFound):
        v.lookup(train, "deep")
    with pytest.raises(NotFound):
        v.lookup(v.root(), "top.txt")


def test_group_by_label_puts_each_item_under_each_of_its_labels(
    pets: str, views: Callable[..., View]
) -> None:
    v = views(pets, group_by="label")
    tree = walk(v)
    assert sorted(tree) == sorted(
        [
            "dog/train/a.jpg",
            "dog/train/b.jpg",
            "dog/top.txt",
            "cat/train/b.jpg",
            "cat/val/d.jpg",
            f"{NONE_NAME}/train/deep/c.jpg",
            "a%2Fb/val/e.jpg",
            "%40odd/other/f.txt",
        ]
    )
    assert all(data == path.split("/", 1)[1].encode() for path, data in tree.items())


def test_group_by_metadata_and_where_combine(pets: str, views: Callable[..., View]) -> None:
    v = views(pets, where='label != "cat"', group_by="metadata.split")
    assert sorted(walk(v)) == sorted(
        [
            "7/other/f.txt",  # a number is its JSON text
            f"{NONE_NAME}/top.txt",
            f"{EMPTY_NAME}/val/e.jpg",
            "train/train/a.jpg",
            "val/train/deep/c.jpg",
        ]
    )
    lists = views(pets, group_by="metadata.tags")
    assert sorted(p for p in walk(lists) if "d.jpg" in p) == [
        "3/val/d.jpg",
        "x/val/d.jpg",
        "y/val/d.jpg",
    ]
    ids = views(pets, group_by="metadata.id")
    assert sorted(n for _p, n, _node in ids.listing(ids.root()).entries_from(0)) == [
        "1",
        "2",
        NONE_NAME,
    ]


def test_a_view_of_a_draft_is_read_only_and_live(catalog: Catalog, pets: str, home: Path) -> None:
    catalog.create_version("pets", ["pets@latest"])
    catalog.add_bytes("pets", "new/g.jpg", b"g", annotations=[{"label": "dog"}])
    v = open_mount_view(Home.at(home), "pets@draft", spec=ViewSpec.parse(None, "label"))
    try:
        assert isinstance(v, View)
        assert not v.writable
        with pytest.raises(ReadOnly, match="view"):
            v.refuse("write")
        assert "dog/new/g.jpg" in walk(v)
        catalog.add_bytes("pets", "new/h.jpg", b"h", annotations=[{"label": "fox"}])
        assert "fox/new/h.jpg" in walk(v)
    finally:
        v.close()


def test_a_published_view_refuses_writes(pets: str, views: Callable[..., View]) -> None:
    v = views(pets, group_by="label")
    dog = v.lookup(v.root(), "dog")
    assert dog.role == Role.FOLDER and dog.cache
    with pytest.raises(ReadOnly, match="--group-by label"):
        v.open(v.lookup(v.lookup(dog, "train"), "a.jpg"), os.O_WRONLY)


@pytest.mark.parametrize(
    ("where", "group_by", "message"),
    [
        ("label ==", None, "invalid --where expression"),
        (None, "labels", "invalid --group-by key"),
        (None, "metadata.", "invalid --group-by key"),
        (None, "metadata.a b", "invalid --group-by key"),
    ],
)
def test_bad_options_are_one_clear_error(
    where: str | None, group_by: str | None, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        ViewSpec.parse(where, group_by)


def test_folder_names_never_clash() -> None:
    values: list[Any] = [
        "dog", "a/b", "a%2Fb", "%", "@none", "@empty", "", ".", "..", "7", 7, 7.0, 7.5,
        "7.5", "true", True, "false", False, "null", "-1", -1, "x" * 300, "x" * 301,
        "é" * 200, "%" * 100,
    ]  # fmt: skip
    names = [value_name(v) for v in values]
    assert len(set(names)) == len(values) - 1  # 7.0 is 7: one folder
    for name in names:
        assert 0 < len(name.encode()) <= 255 and "/" not in name and name not in (".", "..")
    assert value_name(7.0) == value_name(7) == "7"
    assert value_name("7") == "%37"
    assert NONE_NAME not in names and value_name("") == EMPTY_NAME


def test_the_label_index_follows_the_items(catalog: Catalog, pets: str) -> None:
    row = catalog.db.version_get(catalog.version(pets).id)
    assert row is not None
    found = {(label or "") for _tree, label in catalog.db.subtree_labels(row["root"])}
    assert found == {"dog", "cat", "a/b", "@odd", ""}


def test_the_catalog_view_has_by_and_where_folders_in_each_version(
    catalog: Catalog, pets: str, home: Path, views: Callable[..., View]
) -> None:
    v = open_view(Home.at(home))
    try:
        version = v.lookup(v.lookup(v.root(), "pets"), pets.split("@")[1])
        listed = [n for _p, n, _node in v.listing(version).entries_from(0)]
        assert "@by" not in listed and "@where" not in listed  # walks stay the version's
        by = v.lookup(v.lookup(version, "@by"), "label")
        assert walk(v, by) == walk(views(pets, group_by="label"))
        expr = 'path != "train/a.jpg"'.replace("/", "%2F")
        where = v.lookup(v.lookup(version, "@where"), expr)
        assert walk(v, where) == walk(views(pets, where='path != "train/a.jpg"'))
        both = v.lookup(v.lookup(where, "@by"), "metadata.split")
        expected = walk(views(pets, where='path != "train/a.jpg"', group_by="metadata.split"))
        assert walk(v, both) == expected
        with pytest.raises(InvalidInput):
            v.lookup(v.lookup(version, "@where"), "label ==")
        with pytest.raises(NotFound):
            v.lookup(version, "@nope")
    finally:
        v.close()


@pytest.mark.parametrize("how", ["indexed", "not indexed", "label too big to load"])
def test_every_way_of_listing_a_label_shows_the_same(
    home: Path, pets: str, views: Callable[..., View], monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    expected = sorted(
        f"{value_name(a['label'])}/{path}" if a else f"{NONE_NAME}/{path}"
        for path, (_meta, ann) in FILES.items()
        for a in ([x for x in ann if isinstance(x, dict) and "label" in x] or [None])
    )
    if how == "not indexed":  # a version published before the index existed
        conn = sqlite3.connect(home / "catalog.db")
        with conn:
            conn.execute("DELETE FROM tree_labels")
            conn.execute("DELETE FROM trees_labelled")
        conn.close()
    if how == "label too big to load":
        monkeypatch.setattr(arranged, "LABEL_LOAD", 0)
    assert sorted(walk(views(pets, group_by="label"))) == expected


def test_publish_indexes_the_labels_of_new_folders(catalog: Catalog, pets: str) -> None:
    row = catalog.db.version_get(catalog.version(pets).id)
    assert row is not None
    assert sorted(catalog.db.tree_labels(row["root"])) == ["@odd", "a/b", "cat", "dog"]
    assert catalog.db.tree_labelled(row["root"]) is True  # train/deep/c.jpg has none
    assert index_labels(catalog.db, row["root"]) == 0  # nothing left to do

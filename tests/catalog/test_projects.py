"""Projects through the Python API and the library, no kernel: namespaces of datasets,
refs ``PROJECT/NAME@SPEC``, read-only projects, deletion, the migration of a catalog
made before projects, names with spaces, push/pull keeping the project, and the
access rule that a project's mounts present (checked on the views, and in real mounts
by ``tests/fs/test_project_mounts.py``)."""

from __future__ import annotations

import os
import pwd
import stat
from pathlib import Path
from typing import Any

import pytest

from dlfs import Catalog, InvalidInput, NotEmpty, NotFound, ReadOnly
from dlfs.access import AccessRule
from dlfs.errors import AlreadyExists, Conflict
from dlfs.home import Home
from dlfs.nodes import DIR_MODE, Node, Role
from dlfs.view import View, open_view
from tests.conftest import catalog_dump
from tests.helpers import downgrade_catalog


def _published(cat: Catalog, name: str, data: bytes = b"meow\n") -> str:
    cat.create_dataset(name)
    cat.add_bytes(name, "a.txt", data)
    return cat.publish(name).ref


def test_datasets_live_in_projects_and_refs_name_them(catalog: Catalog) -> None:
    vision = catalog.create_project("vision", description="pictures")
    cats = catalog.create_dataset("cats", project="vision")
    assert cats.name == "vision/cats"
    catalog.add_bytes("vision/cats", "a.txt", b"vision cat\n")
    v0 = catalog.publish("vision/cats")
    _published(catalog, "cats", b"default cat\n")  # same name, default project
    assert catalog.version("vision/cats@v0").id == v0.id
    assert catalog.version("vision/cats@v0").read_bytes("a.txt") == b"vision cat\n"
    assert catalog.version("cats@v0").read_bytes("a.txt") == b"default cat\n"
    assert catalog.version("default/cats@v0").read_bytes("a.txt") == b"default cat\n"
    assert [d.name for d in vision.datasets()] == ["vision/cats"]
    assert [d.name for d in catalog.project("default").datasets()] == ["cats"]
    assert [d.name for d in catalog.datasets(project="vision")] == ["vision/cats"]
    assert sorted(d.name for d in catalog.datasets()) == ["cats", "vision/cats"]
    assert [p.name for p in catalog.projects()] == ["default", "vision"]
    info = vision.info()
    me = pwd.getpwuid(os.getuid()).pw_name
    assert (info["owner"], info["group"], info["read_only"]) == (me, None, False)
    assert info["uid"] == os.getuid() and info["datasets"] == ["vision/cats"]
    assert catalog.dataset("vision/cats").info()["name"] == "vision/cats"


def test_names_with_spaces(catalog: Catalog) -> None:
    ref = _published(catalog, "myDataset One")
    assert catalog.version("myDataset One@v0").ref == ref
    assert [e.name for e in catalog.ls("myDataset One@v0")] == ["a.txt"]
    catalog.create_project("vision")
    catalog.create_dataset("vision/big cats")
    assert catalog.dataset("vision/big cats").name == "vision/big cats"
    for bad in ("cats ", " cats", "a/b/c", "vi sion/cats", "cats\t1"):
        with pytest.raises(InvalidInput):
            catalog.create_dataset(bad)


def test_bad_project_input_changes_nothing(catalog: Catalog, home: Path) -> None:
    _published(catalog, "cats")
    catalog.create_project("vision")
    catalog.create_dataset("vision/dogs")
    before = catalog_dump(home)
    bad: list[tuple[Any, type[Exception]]] = [
        (lambda: catalog.create_project("vision"), AlreadyExists),
        (lambda: catalog.create_project("cats"), AlreadyExists),  # a default dataset's name
        (lambda: catalog.create_project("a b"), InvalidInput),
        (lambda: catalog.create_project("p", group="no-such-group-here"), InvalidInput),
        (lambda: catalog.create_dataset("nope/cats"), NotFound),
        (lambda: catalog.create_dataset("vision"), Conflict),  # a project's name
        (lambda: catalog.create_dataset("x", project="no such"), InvalidInput),
        (lambda: catalog.project("nope"), NotFound),
        (lambda: catalog.datasets(project="nope"), NotFound),
        (lambda: catalog.set_project("vision"), InvalidInput),
        (lambda: catalog.set_project("vision", group="0", no_group=True), InvalidInput),
        (lambda: catalog.delete_project("default"), InvalidInput),
        (lambda: catalog.delete_project("vision"), NotEmpty),
    ]
    for call, error in bad:
        with pytest.raises(error):
            call()
        assert catalog_dump(home) == before


def test_a_read_only_project_takes_no_new_drafts_publishes_edits_or_deletes(
    catalog: Catalog, home: Path
) -> None:
    catalog.create_project("vision")
    catalog.create_dataset("vision/cats")
    catalog.add_bytes("vision/cats", "a.txt", b"a")
    v0 = catalog.publish("vision/cats")
    catalog.create_version("vision/cats", [v0.ref])
    catalog.create_dataset("vision/empty")
    assert catalog.project("vision").set(read_only=True)["read_only"]
    before = catalog_dump(home)
    refused = [
        lambda: catalog.create_dataset("vision/dogs"),
        lambda: catalog.create_version("vision/cats", [v0.ref]),
        lambda: catalog.add_bytes("vision/cats", "b.txt", b"b"),
        lambda: catalog.rm("vision/cats", ["a.txt"]),
        lambda: catalog.publish("vision/cats"),
        lambda: catalog.snapshot("vision/cats"),
        lambda: catalog.delete_version("vision/cats@draft"),
        lambda: catalog.delete_dataset("vision/empty", all_versions=True),
        lambda: catalog.delete_project("vision", force=True),
        lambda: catalog.clone(v0.ref, "vision/copy"),
    ]
    for call in refused:
        with pytest.raises(ReadOnly, match="read-only"):
            call()
        assert catalog_dump(home) == before
    # reading goes on, and other projects are not affected
    assert catalog.version("vision/cats@v0").read_bytes("a.txt") == b"a"
    assert catalog.ls("vision/cats@draft")
    catalog.clone(v0.ref, "copy")
    catalog.project("vision").set(read_only=False)
    catalog.add_bytes("vision/cats", "b.txt", b"b")
    assert catalog.publish("vision/cats").read_bytes("b.txt") == b"b"


def test_deleting_a_project_with_datasets_needs_force(catalog: Catalog) -> None:
    catalog.create_project("vision")
    assert catalog.delete_project("vision") == []
    catalog.create_project("vision")
    catalog.create_dataset("vision/cats")
    catalog.add_bytes("vision/cats", "a.txt", b"a")
    catalog.publish("vision/cats")
    with pytest.raises(NotEmpty, match="add --force"):
        catalog.delete_project("vision")
    assert catalog.delete_project("vision", force=True) == ["vision/cats"]
    assert [p.name for p in catalog.projects()] == ["default"]
    with pytest.raises(NotFound):
        catalog.dataset("vision/cats")


def test_a_catalog_made_before_projects_keeps_working(home: Path) -> None:
    with Catalog(home) as cat:
        ref = _published(cat, "cats")
    downgrade_catalog(home, 4)  # no projects (nor any later step)
    with Catalog(home) as cat:
        assert cat.version("cats@v0").ref == ref
        assert [d.name for d in cat.project("default").datasets()] == ["cats"]
        assert cat.project("default").info()["uid"] == os.getuid()


def test_push_and_pull_keep_the_project(s3: Any, tmp_path: Path) -> None:
    a, b = Catalog(tmp_path / "a"), Catalog(tmp_path / "b")
    try:
        bucket = s3.bucket()
        remote = f"s3://{bucket}/team"
        a.create_project("vision")
        a.create_dataset("vision/cats")
        a.add_bytes("vision/cats", "a.txt", b"vision cat\n")
        v0 = a.publish("vision/cats", tags=["gold"])
        a.push("vision/cats@gold", remote)
        _published(a, "cats", b"default cat\n")
        a.push("cats@v0", remote)
        keys = s3.keys(bucket, "team/")
        assert f"team/projects/vision/datasets/cats/versions/{v0.id}.json.gz" in keys
        assert any(k.startswith("team/datasets/cats/versions/") for k in keys)
        pulled = b.pull(remote, "vision/cats@gold")
        assert pulled.created_dataset and pulled.version == v0.id
        assert [p.name for p in b.projects()] == ["default", "vision"]  # made by the pull
        assert b.version("vision/cats@gold").read_bytes("a.txt") == b"vision cat\n"
        assert b.pull(remote, "cats").created_dataset
        assert b.version("cats@v0").read_bytes("a.txt") == b"default cat\n"
    finally:
        a.close()
        b.close()


def test_the_access_rule_gives_the_group_what_the_owner_has_and_caps_it() -> None:
    read = AccessRule(owner=0, group=1234, writable=False)
    write = read._replace(writable=True)
    file, exe, folder = stat.S_IFREG | 0o644, stat.S_IFREG | 0o4755, DIR_MODE
    assert read.present(file, -1, -1) == (stat.S_IFREG | 0o440, 0, 1234)
    assert write.present(file, -1, -1) == (stat.S_IFREG | 0o660, 0, 1234)
    assert read.present(exe, 42, 7) == (stat.S_IFREG | 0o550, 42, 1234)  # the item's owner
    assert write.present(stat.S_IFREG | 0o600, -1, -1) == (stat.S_IFREG | 0o660, 0, 1234)
    assert read.present(folder, -1, -1) == (stat.S_IFDIR | 0o550, 0, 1234)
    link = stat.S_IFLNK | 0o777
    assert read.present(link, -1, -1) == (link, 0, 1234)


def _names(view: View, node: Node) -> list[str]:
    return [name for _pos, name, _node in view.listing(node).entries_from(0)]


def test_catalog_view_shows_project_folders_with_their_rule(catalog: Catalog, home: Path) -> None:
    gid = os.getgid()
    _published(catalog, "cats")
    catalog.create_project("vision", group=str(gid))
    catalog.create_dataset("vision/dogs")
    catalog.add_bytes("vision/dogs", "a.txt", b"dog")
    vid = catalog.publish("vision/dogs").id
    view = open_view(Home.at(home))
    try:
        root = view.root()
        assert _names(view, root) == ["cats", "vision"]
        vision = view.lookup(root, "vision")
        assert vision.role == Role.CATALOG and _names(view, vision) == ["dogs"]
        assert view.attributes(vision)[1:] == (os.getuid(), gid)
        dogs = view.lookup(vision, "dogs")
        assert stat.S_IMODE(view.attributes(dogs)[0]) == 0o550
        file = view.lookup(view.lookup(dogs, vid), "a.txt")
        assert view.attributes(file) == (stat.S_IFREG | 0o440, os.getuid(), gid)
        cats = view.lookup(root, "cats")
        assert stat.S_IMODE(view.attributes(cats)[0]) == 0o555  # no rule: as before
        with pytest.raises(NotFound):
            view.lookup(root, "default")
        assert view.shared
    finally:
        view.close()

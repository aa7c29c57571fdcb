"""Version metadata and comments (ClearML): set on any version, recorded, carried by
push/pull; the initial draft ``Current``; publish/snapshot comments."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import dlfs
from dlfs import Catalog
from dlfs.errors import DlfsError, InvalidInput
from tests.conftest import Cli, catalog_dump

MASKS = {"0": "background", "255": "cat", "128,0,0": ["dog", "animal"]}


def published_with_file(cat: Catalog, name: str = "shapes") -> dlfs.Version:
    cat.create_dataset(name)
    cat.add_bytes(name, "a.txt", b"a")
    return cat.publish(name)


def test_metadata_and_comment_of_a_published_version_keep_its_content_and_id(
    catalog: Catalog,
) -> None:
    v0 = published_with_file(catalog)
    root, files = v0.info()["id"], [f.to_json() for f in v0.files()]
    tree = catalog.db.version_get(v0.id)["root"]  # type: ignore[index]
    assert v0.set_metadata({"mask_labels": MASKS, "review.by": "ann"}) == {
        "mask_labels": MASKS,
        "review": {"by": "ann"},
    }
    assert v0.set_metadata([("review.score", 0.5)], remove=["review.by", "nosuch"]) == {
        "mask_labels": MASKS,
        "review": {"score": 0.5},
    }
    assert v0.set_comment("masks checked") == "masks checked"
    again = catalog.version("shapes@v0")
    assert again.id == root and again.metadata["mask_labels"] == MASKS
    assert again.comment == "masks checked"
    assert [f.to_json() for f in again.files()] == files
    assert catalog.db.version_get(v0.id)["root"] == tree  # type: ignore[index]
    changes = v0.changes
    assert [sorted(c) for c in changes] == [
        ["at", "set", "who"],
        ["at", "remove", "set", "who"],
        ["at", "comment", "who"],
    ]
    assert changes[1]["remove"] == ["review.by"]  # the missing key is not recorded
    assert all(c["who"] and c["at"].endswith("Z") for c in changes)
    # setting what is there records nothing
    v0.set_comment("masks checked")
    v0.set_metadata(remove=["nosuch"])
    assert len(v0.changes) == 3


def test_a_drafts_metadata_and_changes_follow_it_through_publish(catalog: Catalog) -> None:
    ds = catalog.create_dataset("shapes")
    draft = ds.draft()
    assert draft.name == "Current"  # ClearML's name for the working version
    draft.set_metadata({"stage": "labelling"})
    draft.set_comment("work in progress")
    v0 = draft.publish(comment="first cut")
    assert v0.metadata == {"stage": "labelling"} and v0.comment == "first cut"
    assert [c.get("comment") for c in v0.changes] == [None, "work in progress"]
    assert v0.name is None, "a published version gives the name Current up"
    catalog.create_version("shapes", ["shapes@v0"])
    v1, current = ds.snapshot(comment="second", child_comment="round 3")
    assert (v1.comment, current.comment, current.name) == ("second", "round 3", "Current")
    assert v1.id != current.id and v1.state == "published" and current.state == "draft"


@pytest.mark.parametrize(
    ("assignments", "remove"),
    [
        ({"mask_labels": {"x": "cat"}}, ()),
        ({"mask_labels": {"256": "cat"}}, ()),
        ({"mask_labels": {"1,2": "cat"}}, ()),
        ({"mask_labels": {"1": 3}}, ()),
        ({"mask_labels": ["cat"]}, ()),
        ([("x", object())], ()),
        ([("x", float("nan"))], ()),
        ([(1, 2)], ()),
        ([("a",)], ()),
        ([("", 1)], ()),
        ([("a..b", 1)], ()),
        ("ab", ()),
        (None, ()),
        ((), "key"),
        ((), [3]),
    ],
)
def test_bad_version_metadata_is_one_error_and_changes_nothing(
    catalog: Catalog, home: Path, assignments: Any, remove: Any
) -> None:
    v0 = published_with_file(catalog)
    before = catalog_dump(home)
    with pytest.raises(InvalidInput):
        v0.set_metadata(assignments, remove)
    assert catalog_dump(home) == before


@pytest.mark.parametrize("comment", [None, 3, "a\0b", "x" * ((64 << 10) + 1)])
def test_bad_comments_are_refused(catalog: Catalog, home: Path, comment: Any) -> None:
    v0 = published_with_file(catalog)
    catalog.create_version("shapes", ["shapes@v0"])
    before = catalog_dump(home)
    with pytest.raises(InvalidInput):
        v0.set_comment(comment)
    assert catalog_dump(home) == before
    if comment is not None:  # publish without a comment is fine
        with pytest.raises(InvalidInput):
            catalog.publish("shapes@draft", comment=comment)
        assert catalog_dump(home) == before


def test_bad_dataset_metadata_raises_dlfs_errors(catalog: Catalog, home: Path) -> None:
    ds = catalog.create_dataset("shapes")
    before = catalog_dump(home)
    for bad in ([("x", object())], [(1, 2)], [("a",)], "ab", None, [("", 1)], [("a..b", 1)]):
        with pytest.raises(DlfsError):
            ds.set_metadata(bad)  # type: ignore[arg-type]
    assert catalog_dump(home) == before


def test_version_meta_comment_show_on_the_cli(cli: Cli, home: Path) -> None:
    cli("dataset", "create", "shapes")
    cli("add", "shapes", str(Path(__file__)), "--to", "code")
    assert cli("version", "list", "shapes", "--json").json()[0]["name"] == "Current"  # type: ignore[index]
    vid = cli("publish", "shapes", "--comment", "first cut", "--json").json()["id"]  # type: ignore[index]
    meta = cli("version", "meta", "shapes@v0", f"mask_labels={json.dumps(MASKS)}", "a.b=1").json()
    assert meta == {"mask_labels": MASKS, "a": {"b": 1}}
    assert cli("version", "meta", "shapes", "--remove", "a").json() == {"mask_labels": MASKS}
    assert "set" in cli("version", "comment", "shapes@v0", "checked by ann").out
    shown = cli("version", "show", f"shapes@{vid[:6]}", "--json").json()
    assert isinstance(shown, dict)
    assert (shown["id"], shown["comment"], shown["metadata"]) == (
        vid,
        "checked by ann",
        {"mask_labels": MASKS},
    )
    assert [sorted(c) for c in shown["changes"]] == [
        ["at", "set", "who"],
        ["at", "remove", "who"],
        ["at", "comment", "who"],
    ]
    text = cli("version", "show", "shapes").out
    assert "comment: checked by ann" in text and 'comment "checked by ann"' in text
    assert cli("version", "meta", "shapes@v0").json() == {"mask_labels": MASKS}

    before = catalog_dump(home)
    for args in (
        ["version", "meta", "shapes", 'mask_labels={"x": "cat"}'],
        ["version", "meta", "shapes", "novalue"],
        ["version", "meta", "shapes", "a=nan"],
        ["version", "meta", "nosuch", "a=1"],
        ["version", "comment", "shapes@nosuch", "x"],
        ["version", "show", "shapes@nosuch"],
        ["publish", "shapes@v0", "--comment", "x"],
    ):
        res = cli(*args, ok=False)
        assert res.code == 1 and res.err.startswith("dlfs: error: "), args
        assert res.err.count("\n") == 1, res.err
    assert catalog_dump(home) == before

    cli("version", "create", "shapes", "--from", "shapes@v0")
    out = cli("snapshot", "shapes", "--comment", "two", "--child-comment", "three", "--json")
    snap = out.json()
    assert isinstance(snap, dict)
    assert (snap["comment"], snap["child"]["comment"]) == ("two", "three")
    assert snap["child"]["name"] == "Current" and snap["id"] != snap["child"]["id"]


def test_push_and_pull_carry_metadata_and_its_changes(s3: Any, tmp_path: Path) -> None:
    remote = f"s3://{s3.bucket()}/team"  # type: ignore[attr-defined]
    with Catalog(tmp_path / "a") as a, Catalog(tmp_path / "b") as b:
        v0 = published_with_file(a)
        v0.set_metadata({"mask_labels": MASKS})
        a.push("shapes@v0", remote)
        pulled = b.pull(remote, "shapes@latest")
        w0 = b.version(f"shapes@{pulled.version}")
        assert w0.metadata == {"mask_labels": MASKS} and len(w0.changes) == 1
        assert w0.changes == v0.changes

        v0.set_comment("reviewed")
        v0.set_metadata(remove=["mask_labels"])
        a.push("shapes@v0", remote)
        again = b.pull(remote, "shapes@latest")
        assert again.already and again.updated and again.files == 1
        assert (w0.metadata, w0.comment) == ({}, "reviewed")
        assert w0.changes == v0.changes
        dump = catalog_dump(b.home.root)
        third = b.pull(remote, "shapes@latest")
        assert third.already and not third.updated
        assert catalog_dump(b.home.root) == dump


def test_repull_says_it_has_the_files_and_changed_nothing(s3: Any, tmp_path: Path) -> None:
    remote = f"s3://{s3.bucket()}/team"  # type: ignore[attr-defined]
    a, b = Cli(tmp_path / "a"), Cli(tmp_path / "b")
    a("dataset", "create", "cats")
    a("add", "cats", str(Path(__file__)))
    old = a("publish", "cats", "--json").json()["id"]  # type: ignore[index]
    a("push", "cats", remote)
    a("version", "create", "cats", "--from", "cats")
    new = a("publish", "cats", "--tag", "gold", "--json").json()["id"]  # type: ignore[index]
    a("push", "cats", remote)
    out = b("pull", remote, "cats@gold").out
    assert "files=1" in out and "latest stays" not in out
    out = b("pull", remote, "cats@gold").out
    assert "already here" in out and "(1 files), nothing changed" in out
    # the rule for latest: the most recently published, not the last pulled
    out = b("pull", remote, f"cats@{old}").out
    assert f"latest stays on {new[:12]}: it was published later" in out
    listing = b("version", "list", "cats", "--json").json()
    assert {v["id"]: v["tags"] for v in listing} == {  # type: ignore[index]
        new: ["latest", "v0", "gold"],
        old: ["v1"],
    }

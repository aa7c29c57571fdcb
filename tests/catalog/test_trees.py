"""Copy-on-write drafts: children are O(1), publish touches changed folders only."""

from __future__ import annotations

from pathlib import Path

import pytest

from dlfs import Catalog
from dlfs.errors import AlreadyExists, InvalidInput, IsADirectory, NotADirectory, NotFound
from tests.conftest import SAMPLE, make_tree


def row_counts(catalog: Catalog) -> tuple[int, int]:
    db = catalog.db
    entries = db.conn.execute("SELECT count(*) FROM tree_entries").fetchone()[0]
    items = db.conn.execute("SELECT count(*) FROM items").fetchone()[0]
    return entries, items


@pytest.fixture
def v0(catalog: Catalog, tmp_path: Path) -> Catalog:
    files = {f"d{d}/f{i}.bin": f"{d}-{i}".encode() for d in range(20) for i in range(25)}
    catalog.create_dataset("big")
    catalog.add("big", [make_tree(tmp_path / "big", files)])
    catalog.publish("big")
    return catalog


def test_a_child_version_copies_no_rows(v0: Catalog) -> None:
    before = row_counts(v0)
    child = v0.create_version("big", parents=["big@v0"])
    assert row_counts(v0) == before
    assert len(child.files()) == 500


def test_publish_after_a_small_change_copies_only_the_changed_folders(v0: Catalog) -> None:
    v0.create_version("big", parents=["big@v0"])
    before_entries, _ = row_counts(v0)
    v0.add_bytes("big", "d3/f0.bin", b"changed")
    v1 = v0.publish("big")
    after_entries, _ = row_counts(v0)
    # one new folder (25 entries) and a new root (20 entries); the other 19 are shared
    assert after_entries - before_entries == 25 + 20
    assert v1.read_bytes("d3/f0.bin") == b"changed"
    assert v0.version("big@v0").read_bytes("d3/f0.bin") == b"3-0"
    mutable = v0.db.conn.execute("SELECT count(*) FROM trees WHERE draft IS NOT NULL").fetchone()
    assert mutable[0] == 0


def test_republishing_the_same_content_gives_the_same_root(v0: Catalog) -> None:
    v0.create_version("big", parents=["big@v0"])
    v0.add_bytes("big", "tmp", b"x")
    v0.rm("big", ["tmp"])
    v1 = v0.publish("big")
    roots = {v0.db.version_get(v.id)["root"] for v in (v0.version("big@v0"), v1)}  # type: ignore[index]
    assert len(roots) == 1


def test_folder_operations_on_a_draft(catalog: Catalog, sample: Path) -> None:
    catalog.create_dataset("cats")
    catalog.add("cats", [sample])
    catalog.mkdir("cats", ["new/deeper"], parents=True)
    catalog.mv("cats", ["train/a.jpg", "train/b.jpg"], "new")
    catalog.mv("cats", ["cat.jpg"], "kitty.jpg")
    catalog.cp("cats", ["train"], "train-copy")
    catalog.rm("cats", ["val"], recursive=True)
    draft = catalog.draft("cats")
    assert {f.path for f in draft.files()} == {
        "kitty.jpg",
        "new/a.jpg",
        "new/b.jpg",
        "train/deep/c.txt",
        "train-copy/deep/c.txt",
    }
    names = {e.name: e.is_dir for e in draft.ls()}
    assert names["new"] and not names["kitty.jpg"]
    assert [e.name for e in draft.ls("new/deeper")] == []
    kitty = draft.item("kitty.jpg")
    assert kitty.blob == catalog.version("cats@draft").item("kitty.jpg").blob


def test_copies_are_pointers_and_edits_do_not_leak(catalog: Catalog, sample: Path) -> None:
    catalog.create_dataset("cats")
    catalog.add("cats", [sample])
    catalog.cp("cats", ["train"], "copy")
    before = catalog.draft("cats").item("copy/a.jpg")
    assert before.id == catalog.draft("cats").item("train/a.jpg").id
    catalog.add_bytes("cats", "copy/deep/new.txt", b"only in the copy")
    assert "train/deep/new.txt" not in {f.path for f in catalog.draft("cats").files()}


def test_errors_on_drafts(catalog: Catalog, sample: Path) -> None:
    catalog.create_dataset("cats")
    catalog.add("cats", [sample])
    with pytest.raises(IsADirectory, match="use -r"):
        catalog.rm("cats", ["train"])
    with pytest.raises(NotFound):
        catalog.rm("cats", ["nope"])
    with pytest.raises(AlreadyExists):
        catalog.mkdir("cats", ["train"])
    with pytest.raises(NotFound):
        catalog.mkdir("cats", ["a/b/c"])
    with pytest.raises(NotADirectory):
        catalog.mkdir("cats", ["cat.jpg/x"], parents=True)
    with pytest.raises(InvalidInput, match="into itself"):
        catalog.mv("cats", ["train"], "train/deep")
    with pytest.raises(InvalidInput, match="not an existing folder"):
        catalog.mv("cats", ["cat.jpg", "val"], "missing")
    with pytest.raises(InvalidInput, match="escape"):
        catalog.mv("cats", ["cat.jpg"], "../../etc")
    assert {f.path for f in catalog.draft("cats").files()} == set(SAMPLE)


def test_item_metadata_and_annotations_on_drafts(catalog: Catalog, sample: Path) -> None:
    catalog.create_dataset("cats")
    catalog.add("cats", [sample])
    before = catalog.draft("cats").item("cat.jpg")
    item = catalog.set_meta(
        "cats", "cat.jpg", [("split", "train"), ("q.score", 0.7)], [{"label": "cat"}]
    )
    assert item.metadata == {"split": "train", "q": {"score": 0.7}}
    assert item.annotations == [{"label": "cat"}]
    assert item.origin == before.origin and item.blob == before.blob and item.id != before.id
    with pytest.raises(InvalidInput, match="JSON list"):
        catalog.set_meta("cats", "cat.jpg", annotations={"label": "x"})  # type: ignore[arg-type]
    v0 = catalog.publish("cats")
    assert v0.item("cat.jpg").metadata["split"] == "train"

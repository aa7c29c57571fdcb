"""Datasets and versions: the draft/publish lifecycle, tags, refs, snapshots."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dlfs import Catalog
from dlfs.errors import AlreadyExists, Ambiguous, Conflict, InvalidInput, NotFound, ReadOnly
from tests.conftest import SAMPLE, Cli, catalog_dump


def published(catalog: Catalog, sample: Path, name: str = "cats"):  # type: ignore[no-untyped-def]
    catalog.create_dataset(name)
    catalog.add(name, [sample])
    return catalog.publish(name)


def test_a_new_dataset_starts_with_one_empty_draft(catalog: Catalog) -> None:
    ds = catalog.create_dataset("cats", description="cat pictures", tags=["pets"])
    (draft,) = ds.versions()
    assert draft.state == "draft" and draft.files() == []
    info = ds.info()
    assert info["description"] == "cat pictures" and info["tags"] == ["pets"]
    assert info["files"] == 0 and info["drafts"] == 1 and info["published"] == 0


def test_creating_an_existing_dataset_needs_exist_ok(catalog: Catalog) -> None:
    catalog.create_dataset("cats")
    with pytest.raises(AlreadyExists, match="already exists"):
        catalog.create_dataset("cats")
    assert catalog.create_dataset("cats", exist_ok=True).name == "cats"
    assert len(catalog.dataset("cats").versions()) == 1


def test_publish_gives_new_id_auto_tags_and_latest(catalog: Catalog, sample: Path) -> None:
    catalog.create_dataset("cats")
    draft_id = catalog.draft("cats").id
    catalog.add("cats", [sample])
    v0 = catalog.publish("cats", tags=["gold"])
    assert re.fullmatch(r"[a-z2-7]{40}", v0.id) and v0.id != draft_id
    assert v0.state == "published" and v0.tags == ["latest", "v0", "gold"]
    assert sorted(f.path for f in v0.files()) == sorted(SAMPLE)
    catalog.create_version("cats", parents=["cats@v0"])
    catalog.rm("cats", ["cat.jpg"])
    v1 = catalog.publish("cats")
    assert v1.tags == ["latest", "v1"]
    assert v0.tags == ["v0", "gold"]
    assert catalog.version("cats").id == v1.id
    assert catalog.version("cats@v0").id == v0.id
    assert "cat.jpg" not in {f.path for f in v1.files()}
    assert "cat.jpg" in {f.path for f in v0.files()}


def test_published_versions_never_change(catalog: Catalog, sample: Path) -> None:
    v0 = published(catalog, sample)
    before = [(f.path, f.id) for f in v0.files()]
    with pytest.raises(ReadOnly, match="published and read-only"):
        catalog.rm("cats@v0", ["cat.jpg"])
    with pytest.raises(ReadOnly):
        catalog.add("cats@v0", [sample])
    with pytest.raises(Conflict, match="already published"):
        catalog.publish("cats@v0")
    with pytest.raises(ReadOnly, match="cannot be deleted"):
        catalog.delete_version("cats@v0")
    assert [(f.path, f.id) for f in v0.files()] == before


def test_refs_resolve_by_id_tag_name_draft_and_prefix(catalog: Catalog, sample: Path) -> None:
    v0 = published(catalog, sample)
    draft = catalog.create_version("cats", parents=["cats@v0"], version_name="next")
    assert catalog.version(f"cats@{v0.id}").id == v0.id
    assert catalog.version("cats@latest").id == v0.id
    assert catalog.version("cats@next").id == draft.id
    assert catalog.version("cats@draft").id == draft.id
    assert catalog.version(f"cats@{v0.id[:6]}").id == v0.id
    with pytest.raises(NotFound, match="unknown ref"):
        catalog.version("cats@nosuchthing")
    with pytest.raises(NotFound, match="no dataset named 'dogs'"):
        catalog.version("dogs@v0")
    with pytest.raises(InvalidInput):
        catalog.version("cats@")


def test_an_ambiguous_prefix_lists_the_matches(catalog: Catalog) -> None:
    catalog.create_dataset("cats")
    ds = catalog.db.dataset_by_name("cats")
    assert ds is not None
    twins = ["abcd" + "a" * 36, "abcd" + "b" * 36]
    with catalog.db.transaction():
        for vid in twins:
            catalog.db.version_insert(vid, ds["id"], "draft", None, "0" * 32)
    with pytest.raises(Ambiguous) as err:
        catalog.version("cats@abcd")
    assert all(t in str(err.value) for t in twins)
    assert catalog.version("cats@abcda").id == twins[0]
    with pytest.raises(NotFound):
        catalog.version("cats@abc")  # shorter than 4: never a prefix


def test_several_drafts_make_draft_ambiguous_with_candidates(catalog: Catalog) -> None:
    catalog.create_dataset("cats")
    extra = catalog.create_version("cats", version_name="exp")
    with pytest.raises(Ambiguous) as err:
        catalog.draft("cats")
    assert extra.id in str(err.value) and "'exp'" in str(err.value)


def test_children_come_from_published_versions_only(catalog: Catalog, sample: Path) -> None:
    catalog.create_dataset("cats")
    with pytest.raises(Conflict, match="child of draft"):
        catalog.create_version("cats", parents=["cats@draft"])


def test_child_of_two_parents_is_their_union(catalog: Catalog, tmp_path: Path) -> None:
    from tests.conftest import make_tree

    catalog.create_dataset("cats")
    catalog.add("cats", [make_tree(tmp_path / "a", {"x/1": b"one", "same": b"A"})])
    catalog.publish("cats", name="first")
    catalog.create_version("cats", version_name="root2")
    catalog.add("cats@root2", [make_tree(tmp_path / "b", {"x/2": b"two", "same": b"B"})])
    catalog.publish("cats@root2")
    child = catalog.create_version("cats", parents=["cats@v0", "cats@v1"])
    assert {f.path for f in child.files()} == {"x/1", "x/2", "same"}
    assert child.read_bytes("same") == b"B"
    assert child.info()["parents"] == [catalog.version("cats@v0").id, catalog.version("cats@v1").id]


def test_version_create_exist_ok_returns_the_named_version(catalog: Catalog) -> None:
    catalog.create_dataset("cats")
    a = catalog.create_version("cats", version_name="exp")
    with pytest.raises(AlreadyExists):
        catalog.create_version("cats", version_name="exp")
    assert catalog.create_version("cats", version_name="exp", exist_ok=True).id == a.id


def test_snapshot_publishes_and_starts_a_child_named_current(
    catalog: Catalog, sample: Path
) -> None:
    catalog.create_dataset("cats")
    catalog.add("cats", [sample])
    pub, child = catalog.snapshot("cats", comment="first cut")
    assert pub.state == "published" and pub.name is not None and pub.name.startswith("snapshot ")
    assert pub.info()["comment"] == "first cut"
    assert child.state == "draft" and child.name == "Current"
    assert child.info()["parents"] == [pub.id]
    assert {f.path for f in child.files()} == set(SAMPLE)
    pub2, child2 = catalog.snapshot("cats", publish_name="round 2", child_name="Next")
    assert pub2.name == "round 2" and child2.name == "Next"
    assert pub2.tags == ["latest", "v1"]


def test_only_drafts_can_be_deleted(catalog: Catalog, sample: Path) -> None:
    published(catalog, sample)
    draft = catalog.create_version("cats", parents=["cats@v0"])
    catalog.delete_version("cats@draft")
    with pytest.raises(NotFound):
        catalog.version(f"cats@{draft.id}")


def test_tags_name_one_version_and_can_move_with_force(catalog: Catalog, sample: Path) -> None:
    published(catalog, sample)
    catalog.create_version("cats", parents=["cats@v0"])
    catalog.rm("cats", ["cat.jpg"])
    catalog.publish("cats")
    assert catalog.tag("cats@v0", ["gold", "reviewed"]) == ["v0", "gold", "reviewed"]
    with pytest.raises(AlreadyExists, match="already names"):
        catalog.tag("cats@v1", ["gold"])
    catalog.tag("cats@v1", ["gold"], force=True)
    assert catalog.version("cats@gold").id == catalog.version("cats@v1").id
    catalog.untag("cats", "reviewed")
    with pytest.raises(NotFound):
        catalog.version("cats@reviewed")
    with pytest.raises(InvalidInput, match="automatic"):
        catalog.untag("cats", "latest")
    catalog.create_version("cats", parents=["cats@v1"])
    with pytest.raises(Conflict, match="draft"):
        catalog.tag("cats@draft", ["x"])


def test_dataset_delete_rules(catalog: Catalog, sample: Path, home: Path) -> None:
    from tests.conftest import blob_files

    catalog.create_dataset("empty")
    catalog.delete_dataset("empty")
    catalog.create_dataset("drafty")
    catalog.add("drafty", [sample])
    with pytest.raises(Conflict, match="not empty"):
        catalog.delete_dataset("drafty")
    catalog.delete_dataset("drafty", all_versions=True)
    published(catalog, sample)
    with pytest.raises(Conflict, match="--force"):
        catalog.delete_dataset("cats", all_versions=True)
    assert blob_files(home)
    removed = catalog.delete_dataset("cats", force=True, delete_sources=True)
    assert len(removed) == 4  # five files, two of them identical
    assert blob_files(home) == set()
    assert catalog.datasets() == []


def test_delete_sources_keeps_blobs_another_dataset_uses(
    catalog: Catalog, sample: Path, home: Path
) -> None:
    from tests.conftest import blob_files

    published(catalog, sample, "cats")
    published(catalog, sample, "dogs")
    before = blob_files(home)
    assert catalog.delete_dataset("cats", force=True, delete_sources=True) == []
    assert blob_files(home) == before
    assert catalog.version("dogs").read_bytes("cat.jpg") == SAMPLE["cat.jpg"]


def test_dataset_tags_and_metadata(catalog: Catalog) -> None:
    ds = catalog.create_dataset("cats")
    assert ds.tag(add=["a", "b"]) == ["a", "b"]
    assert ds.tag(remove=["a"]) == ["b"]
    assert ds.tag(remove=["a", "never"]) == ["b"], "removing a tag it lacks is a no-op"
    assert ds.set_metadata([("owner", "ann"), ("quality.score", 0.9)]) == {
        "owner": "ann",
        "quality": {"score": 0.9},
    }
    assert ds.info()["metadata"]["quality"]["score"] == 0.9


def test_dataset_tag_remove_of_a_missing_tag_says_so(cli: Cli, home: Path) -> None:
    cli("dataset", "create", "cats", "--tag", "pets")
    before = catalog_dump(home)
    res = cli("dataset", "tag", "cats", "--remove", "never")
    assert "has no tag 'never': nothing to remove" in res.out
    assert catalog_dump(home) == before
    cli("dataset", "tag", "cats", "--remove", "pets")
    assert cli("dataset", "show", "cats", "--json").json()["tags"] == []  # type: ignore[index]

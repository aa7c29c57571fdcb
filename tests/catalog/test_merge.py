"""``dlfs merge``: lineage merges items, unrelated items are summed, recipes must agree."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dlfs import Catalog, Conflict, InvalidInput
from dlfs.ops.merge import deep_merge, place, recipe_labels, renamed, union
from dlfs.versions import create_dataset
from tests.catalog.test_clone import put_version, spec_of
from tests.conftest import Cli


def annotate(cli: Cli, tmp_path: Path, ref: str, path: str, ann: list[Any]) -> None:
    f = tmp_path / "ann.json"
    f.write_text(json.dumps(ann))
    cli("meta", ref, path, "--annotations", str(f))


@pytest.fixture
def team_clones(cli: Cli, sample: Path, tmp_path: Path) -> tuple[str, str]:
    """``gold`` (the sample, published) and two published clones annotated by two teams."""
    cli("dataset", "create", "gold")
    cli("add", "gold", str(sample))
    cli("meta", "gold", "cat.jpg", "--set", 'source="camera"', "--set", 'cam={"iso": 100}')
    annotate(cli, tmp_path, "gold", "cat.jpg", [{"label": "cat"}])
    cli("publish", "gold")
    cli("clone", "gold", "team-a")
    cli("clone", "gold", "team-b")
    annotate(cli, tmp_path, "team-a", "cat.jpg", [{"label": "cat"}, {"label": "ear", "x": 1}])
    cli("meta", "team-a", "cat.jpg", "--set", 'by="a"', "--set", "cam.f=2")
    annotate(cli, tmp_path, "team-b", "cat.jpg", [{"label": "cat"}, {"label": "tail"}])
    cli("meta", "team-b", "cat.jpg", "--set", 'by="b"', "--set", "cam.iso=200")
    annotate(cli, tmp_path, "team-b", "train/a.jpg", [{"label": "paw"}])
    cli("mv", "team-b", "train/b.jpg", "renamed-b.jpg")
    cli("publish", "team-a")
    cli("publish", "team-b")
    return "team-a", "team-b"


def test_merge_of_clones_merges_annotations_onto_one_item(
    cli: Cli, catalog: Catalog, team_clones: tuple[str, str]
) -> None:
    out = cli("merge", "both", "team-a", "team-b", "--json").json()
    assert isinstance(out, dict)
    assert {"id", "name", "state", "tags"} <= set(out) and out["state"] == "draft"
    merged = {f.path: f for f in catalog.draft("both").files()}
    gold = {f.path: f for f in catalog.version("gold").files()}
    # one item per lineage, at the first ref's path
    assert sorted(merged) == sorted(gold)
    cat = merged["cat.jpg"]
    assert cat.origin == gold["cat.jpg"].origin and cat.blob == gold["cat.jpg"].blob
    assert cat.annotations == [{"label": "cat"}, {"label": "ear", "x": 1}, {"label": "tail"}]
    assert cat.metadata == {"source": "camera", "by": "b", "cam": {"iso": 200, "f": 2}}
    assert merged["train/a.jpg"].annotations == [{"label": "paw"}]
    assert merged["train/b.jpg"].origin == gold["train/b.jpg"].origin  # moved in b: a's path
    info = catalog.dataset("both").info()
    assert info["kind"] == "merge"
    assert [s["dataset"] for s in info["sources"]] == ["team-a", "team-b"]
    # and in the other order, the first ref's path and the other's metadata win
    cli("merge", "both2", "team-b", "team-a")
    merged2 = {f.path: f for f in catalog.draft("both2").files()}
    assert "renamed-b.jpg" in merged2 and "train/b.jpg" not in merged2
    assert merged2["cat.jpg"].metadata["by"] == "a"
    assert merged2["cat.jpg"].annotations == [
        {"label": "cat"},
        {"label": "tail"},
        {"label": "ear", "x": 1},
    ]


def test_no_metadata_and_no_annotations_drop_them_as_clone_does(
    cli: Cli, catalog: Catalog, team_clones: tuple[str, str]
) -> None:
    cli("merge", "m", "team-a", "team-b", "--no-metadata", "--publish")
    merged = {f.path: f for f in catalog.version("m").files()}
    assert all(f.metadata == {} for f in merged.values())
    assert [a["label"] for a in merged["cat.jpg"].annotations] == ["cat", "ear", "tail"]
    assert merged["train/a.jpg"].annotations == [{"label": "paw"}]
    cli("merge", "n", "team-a", "team-b", "--no-annotations")
    merged = {f.path: f for f in catalog.draft("n").files()}
    assert all(f.annotations == [] for f in merged.values())
    assert merged["cat.jpg"].metadata["by"] == "b"
    gold = catalog.version("gold").item("cat.jpg")
    assert merged["cat.jpg"].origin == gold.origin and merged["cat.jpg"].blob == gold.blob
    # the same as a clone without them, item for item
    cli("clone", "n@draft", "n-bare", "--no-metadata", "--no-annotations")
    cli("merge", "both-bare", "team-a", "team-b", "--no-metadata", "--no-annotations")
    assert {f.path: f.id for f in catalog.draft("both-bare").files()} == {
        f.path: f.id for f in catalog.draft("n-bare").files()
    }


def test_merge_of_a_version_with_itself_changes_nothing(
    cli: Cli, catalog: Catalog, team_clones: tuple[str, str]
) -> None:
    cli("merge", "same", "gold", "gold@v0", "--publish")
    assert spec_of(catalog, "same") == spec_of(catalog, "gold")
    assert catalog.version("same")._row()["root"] == catalog.version("gold")._row()["root"]


def test_merge_of_unrelated_datasets_sums_items(
    cli: Cli, catalog: Catalog, sample: Path, tmp_path: Path
) -> None:
    cli("dataset", "create", "one")
    cli("add", "one", str(sample), "--to", "one")
    cli("publish", "one")
    cli("dataset", "create", "two")
    cli("add", "two", str(sample), "--to", "two")
    cli("add", "two", str(sample / "cat.jpg"))
    cli("publish", "two")
    home = tmp_path / "home" / "blobs"
    blobs = sorted(home.rglob("*"))
    res = cli("merge", "sum", "one", "two", "--publish", "--json").json()
    assert isinstance(res, dict) and res["files"] == 11
    assert sorted(home.rglob("*")) == blobs
    got = spec_of(catalog, "sum")
    assert got == {**spec_of(catalog, "one"), **spec_of(catalog, "two")}


def test_unrelated_items_on_one_path_are_summed_by_default_or_refused(
    cli: Cli, catalog: Catalog
) -> None:
    put_version(catalog, "a", {"x.jpg": ("o1", "b1", {}, []), "d/y.jpg": ("o2", "b2", {}, [])})
    put_version(catalog, "b", {"x.jpg": ("o3", "b3", {}, []), "d/y.jpg": ("o4", "b4", {}, [])})
    before = catalog.db.dump()
    res = cli("merge", "m", "a", "b", "--on-conflict", "fail", ok=False)
    assert res.code == 1 and res.err.count("\n") == 1
    assert res.err == (
        "dlfs: error: cannot merge: unrelated items want the same path: d/y.jpg, x.jpg"
        " (use --on-conflict rename to keep both)\n"
    )
    assert catalog.db.dump() == before
    # Dataloop: "items will be summed up": both land, the later one renamed
    res = cli("merge", "m", "a", "b")
    assert res.err.splitlines() == [
        "conflict: d/y.jpg of b is also in a: kept as d/y (2).jpg",
        "conflict: x.jpg of b is also in a: kept as x (2).jpg",
    ]
    got = {p: v[0] for p, v in spec_of(catalog, "m@draft").items()}
    assert got == {"x.jpg": "o1", "x (2).jpg": "o3", "d/y.jpg": "o2", "d/y (2).jpg": "o4"}
    version = catalog.merge("m-api", ["a", "b"])
    assert [c.to_json() for c in version.conflicts] == [
        {"kind": "path", "path": "d/y.jpg", "refs": ["a", "b"], "took": "d/y (2).jpg"},
        {"kind": "path", "path": "x.jpg", "refs": ["a", "b"], "took": "x (2).jpg"},
    ]


def test_clones_that_changed_one_items_bytes_are_reported_or_refused(
    cli: Cli, catalog: Catalog, home: Path
) -> None:
    put_version(catalog, "a", {"x.jpg": ("o1", "b1", {}, []), "same.jpg": ("o2", "b2", {}, [])})
    put_version(catalog, "b", {"x.jpg": ("o1", "b3", {}, []), "same.jpg": ("o2", "b2", {}, [])})
    put_version(catalog, "c", {"x.jpg": ("o1", "b4", {}, [])})
    before = catalog.db.dump()
    res = cli("merge", "m", "a", "b", "c", "--on-conflict", "fail", ok=False)
    assert res.code == 1 and res.err == (
        "dlfs: error: cannot merge: copies of one item hold different bytes: x.jpg (a, b, c)"
        " (without --on-conflict fail the last ref's bytes are taken)\n"
    )
    assert catalog.db.dump() == before
    res = cli("merge", "m", "a", "b", "c", "--json")
    assert res.err == "conflict: content differs at x.jpg in a, b, c: took c's bytes\n"
    out = res.json()
    assert isinstance(out, dict)
    assert out["conflicts"] == [
        {"kind": "content", "path": "x.jpg", "refs": ["a", "b", "c"], "took": "c"}
    ]
    got = spec_of(catalog, "m@draft")
    assert got["x.jpg"][:2] == ("o1", "b4") and got["same.jpg"][:2] == ("o2", "b2")
    with pytest.raises(Conflict, match=r"different bytes: x\.jpg"):
        catalog.merge("m2", ["a", "b"], on_conflict="fail")


def test_rename_keeps_both_deterministically(cli: Cli, catalog: Catalog) -> None:
    put_version(
        catalog,
        "a",
        {"x.jpg": ("o1", "b1", {}, []), "d/y": ("o2", "b2", {}, []), "f": ("o5", "b5", {}, [])},
    )
    put_version(
        catalog,
        "b",
        {
            "x.jpg": ("o3", "b3", {}, []),
            "x (2).jpg": ("o4", "b4", {}, []),
            "d/y": ("o6", "b6", {}, []),
            "f/inner": ("o7", "b7", {}, []),
        },
    )
    put_version(catalog, "c", {"x.jpg": ("o8", "b8", {}, []), "x (2).jpg": ("o1", "b1", {}, [])})
    cli("merge", "m", "a", "b", "c", "--on-conflict", "rename")
    got = {p: v[0] for p, v in spec_of(catalog, "m@draft").items()}
    assert got == {
        "x.jpg": "o1",  # a's, and c's copy of o1 merged onto it
        "x (2).jpg": "o4",  # b's own file of that name keeps it
        "x (3).jpg": "o3",  # b's x.jpg, renamed
        "x (4).jpg": "o8",  # c's x.jpg, renamed
        "d/y": "o2",
        "d/y (2)": "o6",
        "f (2)": "o5",  # a folder keeps its name; the file is renamed
        "f/inner": "o7",
    }
    cli("merge", "m2", "a", "b", "c", "--on-conflict", "rename")
    assert spec_of(catalog, "m2@draft") == spec_of(catalog, "m@draft")


def test_copies_within_one_version_stay_distinct(catalog: Catalog) -> None:
    # a `cp` in a draft keeps the lineage: one origin at two paths of one version
    put_version(catalog, "a", {"p.jpg": ("o", "b", {"n": 1}, []), "q.jpg": ("o", "b", {}, [])})
    put_version(
        catalog,
        "b",
        {"q.jpg": ("o", "b", {}, [{"label": "q"}]), "r.jpg": ("o", "b", {}, [{"label": "r"}])},
    )
    catalog.merge("m", ["a", "b"])
    got = spec_of(catalog, "m@draft")
    assert got == {
        "p.jpg": ("o", "b", {"n": 1}, [{"label": "r"}]),  # paired with b's leftover copy
        "q.jpg": ("o", "b", {}, [{"label": "q"}]),  # paired by path
    }


def test_merge_keeps_empty_folders_and_the_last_content(catalog: Catalog) -> None:
    ref_a = put_version(catalog, "a", {"f/x": ("o", "old", {}, [])})
    ref_b = put_version(catalog, "b", {"f/x": ("o", "newer", {}, [])})
    catalog.create_version("a", [ref_a])
    catalog.mkdir("a", ["empty/inner"], parents=True)
    catalog.merge("m", ["a@draft", ref_b])
    assert [e.name for e in catalog.ls("m@draft")] == ["empty", "f"]
    assert [e.name for e in catalog.ls("m@draft", "empty")] == ["inner"]
    assert catalog.draft("m").item("f/x").blob == "newer"


# -- refusals -------------------------------------------------------------------------------


def _recipe(cli: Cli, tmp_path: Path, name: str, recipe: Any) -> None:
    f = tmp_path / f"{name}.json"
    f.write_text(json.dumps(recipe))
    cli("dataset", "create", name, "--labels", str(f))
    cli("publish", name)


def test_different_recipes_refuse_naming_the_labels(
    cli: Cli, catalog: Catalog, tmp_path: Path
) -> None:
    _recipe(cli, tmp_path, "a", {"labels": ["cat", "dog", "cow"]})
    _recipe(cli, tmp_path, "b", {"labels": ["cat", "dog", "bird"]})
    _recipe(cli, tmp_path, "c", {"labels": ["dog", "cow", "cat"]})
    _recipe(cli, tmp_path, "d", {"cat": {"color": "red"}, "dog": {}})
    _recipe(cli, tmp_path, "e", {"cat": {"color": "blue"}, "dog": {}})
    before = catalog.db.dump()
    res = cli("merge", "m", "a", "b", ok=False)
    assert res.code == 1
    assert res.err == (
        "dlfs: error: cannot merge a and b: their label recipes differ"
        " (only in a: cow; only in b: bird)\n"
    )
    res = cli("merge", "m", "d", "e", ok=False)
    assert "their label recipes differ (defined differently: cat)" in res.err
    res = cli("merge", "m", "a", "c", ok=False)  # same labels, another order
    assert "same labels, in another order or with other settings" in res.err
    assert catalog.db.dump() == before
    plain = put_version(catalog, "plain", {})
    before = catalog.db.dump()
    res = cli("merge", "m", "d", plain, ok=False)
    assert "only in d: cat, dog" in res.err
    assert catalog.db.dump() == before
    cli("merge", "m", "a", "a", "--publish")
    assert catalog.dataset("m").info()["labels"] == {"labels": ["cat", "dog", "cow"]}


def test_different_storages_refuse(catalog: Catalog) -> None:
    put_version(catalog, "here", {"x": ("o", "b", {}, [])})
    with catalog.db.transaction():
        create_dataset(catalog.db, "there", storage="s3://bucket/data")
    before = catalog.db.dump()
    with pytest.raises(Conflict, match=r"cannot merge across storages \(here in 'local'"):
        catalog.merge("m", ["here", "there@draft"])
    assert catalog.db.dump() == before


def test_bad_merge_input(cli: Cli, catalog: Catalog) -> None:
    put_version(catalog, "a", {"x": ("o", "b", {}, [])})
    before = catalog.db.dump()
    res = cli("merge", "m", "a", ok=False)
    assert res.code == 2 and "give at least two refs" in res.err
    res = cli("merge", "m", "a", "a", "--on-conflict", "ignore", ok=False)
    assert res.code == 2
    for args, message in [
        (["a", "a", "a"], "dataset 'a' already exists"),
        (["m", "a", "nope"], "no dataset named 'nope'"),
        (["m", "a", "a@draft"], "has no draft"),
    ]:
        res = cli("merge", *args, ok=False)
        assert res.code == 1 and message in res.err, res.err
    with pytest.raises(InvalidInput, match="at least two refs"):
        catalog.merge("m", ["a"])
    with pytest.raises(InvalidInput, match="invalid --on-conflict"):
        catalog.merge("m", ["a", "a"], on_conflict="skip")
    assert catalog.db.dump() == before


# -- the pieces --------------------------------------------------------------------------------


def test_deep_merge_and_union() -> None:
    assert deep_merge({"a": {"b": 1, "c": 2}, "d": 1}, {"a": {"b": 3}, "d": {"x": 1}}) == {
        "a": {"b": 3, "c": 2},
        "d": {"x": 1},
    }
    assert union([[1, {"a": 1}], [{"a": 1}, 2, 1], [3, 2]]) == [1, {"a": 1}, 2, 3]
    assert union([[{"a": 1, "b": 2}], [{"b": 2, "a": 1}]]) == [{"a": 1, "b": 2}]


def test_renamed_and_place() -> None:
    assert renamed("a/b.jpg", 2) == "a/b (2).jpg"
    assert renamed("a/b.tar.gz", 3) == "a/b.tar (3).gz"
    assert renamed(".hidden", 2) == ".hidden (2)"
    assert renamed("x", 2) == "x (2)"
    assert place(["a", "b", "a", "a (2)"], {"b"}, True) == ["a", "b (2)", "a (3)", "a (2)"]


def test_recipe_labels_reads_lists_and_objects() -> None:
    assert recipe_labels(None) == {}
    assert set(recipe_labels(["a", {"label": "b"}, {"name": "c"}, {"tag": "d"}])) == set("abcd")
    assert set(recipe_labels({"labels": {"x": {}, "y": 1}})) == {"x", "y"}

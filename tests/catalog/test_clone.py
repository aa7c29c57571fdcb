"""``dlfs clone``: O(1) clones that share binaries, filters, and isolation."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dlfs import Catalog, Conflict, InvalidInput
from dlfs.objects import canonical_json, item_id
from dlfs.ops.clone import Globs, build_paths, glob_regex
from dlfs.versions import create_dataset, publish
from tests.conftest import SAMPLE, Cli, make_tree

# -- helpers shared with test_merge and test_diff --------------------------------------

Spec = dict[str, tuple[str, str, dict[str, Any], list[Any]]]  # path: (origin, blob, meta, ann)


def put_version(cat: Catalog, name: str, files: Spec, published: bool = True) -> str:
    """A dataset ``name`` whose first version holds ``files``, built directly in the
    catalog (no blobs: these tests never read bytes). Returns ``name@<version id>``."""
    db = cat.db
    with db.transaction():
        rows, entries = [], []
        for path, (origin, blob, meta, ann) in files.items():
            m, a = canonical_json(meta), canonical_json(ann)
            size = len(blob)
            iid = item_id(origin, blob, size, m, a)
            rows.append((iid, origin, blob, size, 1.0, m, a, ""))
            entries.append((path.split("/"), iid, size))
        db.items_put(rows)
        root = build_paths(db, entries)
        ds, _ = create_dataset(db, name, root=root)
        (draft,) = db.versions_of(ds["id"])
        vid = publish(db, draft) if published else draft["id"]
    return f"{name}@{vid}"


def spec_of(cat: Catalog, ref: str) -> Spec:
    """The ``files`` of a version, in the form :func:`put_version` takes."""
    return {i.path: (i.origin, i.blob, i.metadata, i.annotations) for i in cat.version(ref).files()}


def blob_files(home: Path) -> list[str]:
    """The files of the local blob store."""
    return sorted(str(p.relative_to(home)) for p in (home / "blobs").rglob("*") if p.is_file())


def add_item(
    cli: Cli, tmp_path: Path, ref: str, path: str, data: bytes, meta: str = "", ann: Any = None
) -> None:
    """Add one file to a draft through the CLI, with metadata and annotations."""
    src = tmp_path / "in" / path.rsplit("/", 1)[-1]
    src.parent.mkdir(parents=True, exist_ok=True)
    src.write_bytes(data)
    folder = path.rsplit("/", 1)[0] if "/" in path else ""
    cli("add", ref, str(src), "--to", folder)
    sets = [a for kv in meta.split() for a in ("--set", kv)] if meta else []
    if ann is not None:
        (tmp_path / "ann.json").write_text(json.dumps(ann))
        sets += ["--annotations", str(tmp_path / "ann.json")]
    if sets:
        cli("meta", ref, path, *sets)


@pytest.fixture
def cats(cli: Cli, sample: Path, tmp_path: Path) -> str:
    """A published dataset ``cats`` (the sample tree, one annotated item)."""
    labels = tmp_path / "labels.json"
    labels.write_text('{"labels": ["cat", "dog"]}')
    cli("dataset", "create", "cats", "--labels", str(labels))
    cli("add", "cats", str(sample))
    (tmp_path / "ann.json").write_text('[{"label": "cat"}]')
    cli(
        "meta", "cats", "cat.jpg", "--set", "score=0.9", "--annotations", str(tmp_path / "ann.json")
    )
    cli("publish", "cats")
    return "cats"


# -- O(1) and shared binaries ----------------------------------------------------------


def test_unfiltered_clone_is_o1_and_shares_binaries(
    cli: Cli, cats: str, catalog: Catalog, home: Path
) -> None:
    blobs = blob_files(home)
    before = catalog.db.row_counts()
    out = cli("clone", "cats", "kittens", "--json").json()
    assert isinstance(out, dict)
    assert {"id", "name", "state", "tags"} <= set(out)
    assert out["state"] == "draft" and out["tags"] == [] and out["dataset"] == "kittens"
    after = catalog.db.row_counts()
    for table in ("items", "tree_entries", "trees", "blobs"):
        assert after[table] == before[table], table
    assert after["datasets"] == before["datasets"] + 1
    assert after["versions"] == before["versions"] + 1
    assert blob_files(home) == blobs
    src = catalog.version("cats")
    clone = catalog.draft("kittens")
    assert clone._row()["root"] == src._row()["root"]
    assert [f.to_json() for f in clone.files()] == [f.to_json() for f in src.files()]
    assert clone.read_bytes("train/b.jpg") == src.read_bytes("train/b.jpg")
    info = catalog.dataset("kittens").info()
    assert info["kind"] == "clone"
    assert info["labels"] == {"labels": ["cat", "dog"]}
    assert info["storage"] == "local"
    assert info["sources"] == [
        {"dataset": "cats", "version": src.id, "state": "published", "root": src._row()["root"]}
    ]


def test_clone_without_metadata_or_annotations_keeps_lineage_and_bytes(
    cli: Cli, cats: str, catalog: Catalog, home: Path
) -> None:
    blobs = blob_files(home)
    cli("clone", "cats", "bare", "--no-metadata", "--no-annotations", "--publish")
    cli("clone", "cats", "nometa", "--no-metadata")
    cli("clone", "cats", "noann", "--no-annotations")
    assert blob_files(home) == blobs
    src = {f.path: f for f in catalog.version("cats").files()}
    for name, meta, ann in (
        ("bare", False, False),
        ("nometa", False, True),
        ("noann", True, False),
    ):
        ref = name if name == "bare" else f"{name}@draft"
        got = {f.path: f for f in catalog.version(ref).files()}
        assert got.keys() == src.keys()
        for path, item in got.items():
            assert item.origin == src[path].origin
            assert item.blob == src[path].blob and item.size == src[path].size
            assert item.metadata == (src[path].metadata if meta else {})
            assert item.annotations == (src[path].annotations if ann else [])
    assert catalog.version("bare").item("cat.jpg").id != src["cat.jpg"].id
    # items without metadata or annotations stay the very same records
    assert catalog.version("bare").item("train/b.jpg").id == src["train/b.jpg"].id


def test_publish_flag_and_text_output(cli: Cli, cats: str) -> None:
    out = cli("clone", "cats@v0", "gold", "--publish", "--json").json()
    assert isinstance(out, dict)
    assert out["state"] == "published" and out["tags"] == ["latest", "v0"]
    assert out["files"] == 5
    text = cli("clone", "cats", "other").out
    assert text.startswith("cloned cats -> other@") and "draft" in text and "files=5" in text


# -- isolation ---------------------------------------------------------------------------


def test_edits_of_a_clone_never_show_in_its_source_and_back(
    cli: Cli, cats: str, catalog: Catalog, tmp_path: Path
) -> None:
    cli("clone", "cats", "exp")
    source_before = spec_of(catalog, "cats")
    cli("rm", "exp", "train/a.jpg")
    cli("mv", "exp", "val/a.jpg", "moved.jpg")
    cli("meta", "exp", "cat.jpg", "--set", 'split="test"')
    add_item(cli, tmp_path, "exp", "new/file.bin", b"fresh")
    cli("publish", "exp")
    assert spec_of(catalog, "cats") == source_before
    clone_after = spec_of(catalog, "exp")
    assert "train/a.jpg" not in clone_after and "moved.jpg" in clone_after
    # and the reverse: a new version of the source leaves the clone alone
    cli("version", "create", "cats", "--from", "cats@latest")
    cli("rm", "cats", "-r", "train")
    cli("meta", "cats", "cat.jpg", "--set", 'split="other"')
    cli("publish", "cats")
    assert spec_of(catalog, "exp") == clone_after
    assert spec_of(catalog, "cats@v0") == source_before


def test_clone_of_a_draft_freezes_a_copy_and_leaves_the_draft_alone(
    cli: Cli, cats: str, catalog: Catalog, tmp_path: Path
) -> None:
    cli("version", "create", "cats", "--from", "cats@latest")
    cli("rm", "cats", "val/a.jpg")
    cli("meta", "cats", "train/b.jpg", "--set", "hard=true")
    draft = catalog.draft("cats")
    root_before = draft._row()["root"]
    spec_before = spec_of(catalog, f"cats@{draft.id}")
    cli("clone", "cats@draft", "snap")
    assert catalog.draft("cats")._row()["root"] == root_before  # still the same mutable tree
    assert spec_of(catalog, "snap@draft") == spec_before
    cli("meta", "cats", "train/b.jpg", "--set", "hard=false")
    add_item(cli, tmp_path, "cats", "later.jpg", b"later")
    assert spec_of(catalog, "snap@draft") == spec_before
    sources = catalog.dataset("snap").info()["sources"]
    assert sources[0]["state"] == "draft" and sources[0]["version"] == draft.id


# -- filters ------------------------------------------------------------------------------

FILES: dict[str, tuple[dict[str, Any], list[Any]]] = {
    "a.jpg": ({"split": "train", "score": 0.9}, [{"label": "dog"}]),
    "b.png": ({"split": "val", "score": 0.4}, [{"label": "cat"}, {"label": "dog"}]),
    "train/c.jpg": ({"split": "train", "score": 0.6}, [{"label": "cat"}]),
    "train/d.jpg": ({"split": "train"}, []),
    "train/deep/e.jpg": ({"split": "train", "score": 0.51}, [{"label": "bird"}]),
    "train/deep/f.txt": ({}, [{"box": [1, 2]}]),
    "val/g.jpg": ({"split": "val", "score": 1}, [{"label": "dog"}]),
    "val/h.png": ({"split": "val", "score": 0.2, "reviewed": True}, []),
    "val/sub/i.jpg": ({"split": "val", "score": 0.7}, [{"label": "dog"}, {"label": "dog"}]),
    "other/x.jpg": ({"score": "high"}, [{"label": "cat"}]),
}


def _labels(ann: list[Any]) -> set[str]:
    return {a["label"] for a in ann if isinstance(a, dict) and "label" in a}


def _score(meta: dict[str, Any]) -> float | None:
    s = meta.get("score")
    return s if isinstance(s, int | float) else None


CASES: list[tuple[list[str], Any]] = [
    (["--include", "train/*.jpg"], lambda p, m, a: p in ("train/c.jpg", "train/d.jpg")),
    (["--include", "train/**.jpg"], lambda p, m, a: p.startswith("train/") and p.endswith(".jpg")),
    (["--include", "**/*.png"], lambda p, m, a: p.endswith(".png")),
    (["--include", "*.jpg"], lambda p, m, a: p == "a.jpg"),
    (["--include", "val"], lambda p, m, a: p.startswith("val/")),
    (["--include", "train/deep", "--include", "*.png"],
     lambda p, m, a: p.startswith("train/deep/") or p == "b.png"),
    (["--include", "?.[jp]*"], lambda p, m, a: p in ("a.jpg", "b.png")),
    (["--include", "val/[!g]*"], lambda p, m, a: p in ("val/h.png", "val/sub/i.jpg")),
    (["--where", 'label == "dog"'], lambda p, m, a: "dog" in _labels(a)),
    (["--where", 'label != "dog"'], lambda p, m, a: "dog" not in _labels(a)),
    (["--where", "label == null"], lambda p, m, a: not _labels(a)),
    (["--where", 'metadata.split == "train" and metadata.score > 0.5'],
     lambda p, m, a: m.get("split") == "train" and (_score(m) or 0) > 0.5),
    (["--where", 'not (label in ["cat", "bird"]) or metadata.reviewed == true'],
     lambda p, m, a: not (_labels(a) & {"cat", "bird"}) or m.get("reviewed") is True),
    (["--where", "metadata.score >= 0.7", "--include", "val/**"],
     lambda p, m, a: p.startswith("val/") and (_score(m) or 0) >= 0.7),
    (["--where", 'metadata.score == "high"'], lambda p, m, a: p == "other/x.jpg"),
    (["--where", "size > 100"], lambda p, m, a: False),
]  # fmt: skip


@pytest.fixture
def varied(catalog: Catalog) -> str:
    spec: Spec = {
        p: (f"o{i}", f"{i:032x}", meta, ann) for i, (p, (meta, ann)) in enumerate(FILES.items())
    }
    return put_version(catalog, "varied", spec)


@pytest.mark.parametrize(("args", "expected"), CASES)
def test_filters_select_exactly_the_right_items(
    cli: Cli, catalog: Catalog, varied: str, args: list[str], expected: Any
) -> None:
    cli("clone", "varied", "subset", *args)
    got = spec_of(catalog, "subset@draft")
    want = {p for p, (m, a) in FILES.items() if expected(p, m, a)}
    assert set(got) == want
    src = spec_of(catalog, "varied")
    for path in want:
        assert got[path] == src[path]  # the very same items: lineage, bytes, meta, annotations


def test_filtered_clone_drops_empty_folders_and_shares_named_ones(
    cli: Cli, catalog: Catalog, varied: str
) -> None:
    cli("clone", "varied", "dogs", "--where", 'label == "dog"')
    assert [e.name for e in catalog.ls("dogs@draft")] == ["a.jpg", "b.png", "val"]
    assert [e.name for e in catalog.ls("dogs@draft", "val")] == ["g.jpg", "sub"]
    before = catalog.db.row_counts()
    cli("clone", "varied", "deep", "--include", "train/deep")
    after = catalog.db.row_counts()
    # the named folder is shared whole: only the new root and one new folder are stored
    assert after["tree_entries"] - before["tree_entries"] == 2
    assert after["items"] == before["items"]
    src_deep = catalog.ls("varied", "train")[-1]
    assert src_deep.name == "deep"
    nothing = cli("clone", "varied", "none", "--where", "size > 100", "--json").json()
    assert isinstance(nothing, dict) and nothing["files"] == 0


def test_filters_combine_with_dropping_metadata(cli: Cli, catalog: Catalog, varied: str) -> None:
    cli("clone", "varied", "x", "--where", 'label == "cat"', "--no-metadata")
    got = spec_of(catalog, "x@draft")
    assert set(got) == {"b.png", "train/c.jpg", "other/x.jpg"}
    assert all(meta == {} for _o, _b, meta, _a in got.values())
    assert got["b.png"][3] == [{"label": "cat"}, {"label": "dog"}]


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("train/*.jpg", "train/a.jpg", True),
        ("train/*.jpg", "train/deep/a.jpg", False),
        ("train/**.jpg", "train/deep/a.jpg", True),
        ("train/**/*.jpg", "train/a.jpg", True),
        ("train/**/*.jpg", "train/x/y/a.jpg", True),
        ("**/*.jpg", "a.jpg", True),
        ("**", "a/b/c", True),
        ("*", "a/b", False),
        ("/train/?.jpg", "train/a.jpg", True),
        ("./train/?.jpg", "train/ab.jpg", False),
        ("[ab].jpg", "b.jpg", True),
        ("[!ab].jpg", "c.jpg", True),
        ("[!ab].jpg", "a.jpg", False),
        ("a[/]b", "a/b", False),
        ("[x", "[x", True),
        ("a.jpg", "aXjpg", False),
        ("(a)+", "(a)+", True),
    ],
)
def test_glob_syntax(pattern: str, path: str, matches: bool) -> None:
    assert bool(glob_regex(pattern).match(path)) is matches


# -- bad input changes nothing -------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["cats", "cats"], "dataset 'cats' already exists"),
        (["cats", "bad:name"], "invalid dataset name 'bad:name'"),
        (["nope", "x"], "no dataset named 'nope'"),
        (["cats@v9", "x"], "unknown ref 'cats@v9'"),
        (["cats", "x", "--where", "label == dog"], "unknown name 'dog'"),
        (["cats", "x", "--include", "/"], "invalid --include pattern '/': it is empty"),
        (["cats", "x", "--storage", "s3://elsewhere"], "cannot clone cats into storage"),
    ],
)
def test_bad_clone_is_one_line_and_changes_nothing(
    cli: Cli, cats: str, catalog: Catalog, args: list[str], message: str
) -> None:
    before = catalog.db.dump()
    res = cli("clone", *args, ok=False)
    assert res.code == 1
    assert res.err.startswith("dlfs: error: ") and res.err.count("\n") == 1, res.err
    assert message in res.err
    assert catalog.db.dump() == before


def test_clone_needs_a_published_version_or_an_explicit_draft(cli: Cli, catalog: Catalog) -> None:
    cli("dataset", "create", "empty")
    res = cli("clone", "empty", "x", ok=False)
    assert "has no published version yet" in res.err
    cli("clone", "empty@draft", "x")
    assert catalog.draft("x").files() == []


def test_library_refuses_another_storage(catalog: Catalog, varied: str) -> None:
    with pytest.raises(Conflict, match="a clone shares its source's binaries"):
        catalog.clone("varied", "x", storage="s3://bucket/prefix")
    with pytest.raises(InvalidInput, match="invalid --where"):
        catalog.clone("varied", "x", where="metadata.")
    assert catalog.db.dataset_by_name("x") is None
    same = catalog.clone("varied", "x", storage="local")
    assert same.state == "draft"


# -- new lineage -------------------------------------------------------------------------


def test_new_lineage_after_a_pointer_copy(catalog: Catalog, varied: str) -> None:
    catalog.create_version("varied", ["varied@latest"])
    catalog.cp("varied", ["train"], "copy")
    catalog.cp("varied", ["a.jpg"], "a2.jpg")
    files = {f.path: f for f in catalog.draft("varied").files()}
    assert files["copy/c.jpg"].origin == files["train/c.jpg"].origin  # a pointer copy
    changed = catalog.new_lineage("varied", ["copy", "a2.jpg"])
    assert changed == 5
    after = {f.path: f for f in catalog.draft("varied").files()}
    for path in ("copy/c.jpg", "copy/d.jpg", "copy/deep/e.jpg", "copy/deep/f.txt", "a2.jpg"):
        src = files[path.replace("copy/", "train/").replace("a2.jpg", "a.jpg")]
        assert after[path].origin != src.origin
        assert (after[path].blob, after[path].metadata, after[path].annotations) == (
            src.blob,
            src.metadata,
            src.annotations,
        )
    for path in files:
        if not path.startswith("copy/") and path != "a2.jpg":
            assert after[path] == files[path]
    assert len({after[p].origin for p in after if p.startswith("copy/")}) == 4
    with pytest.raises(InvalidInput, match="name a path"):
        catalog.new_lineage("varied", [""])


def test_globs_skip_only_folders_no_pattern_can_reach() -> None:
    g = Globs(["train/*.jpg", "x/**/y", "q/[ab]/*"])
    reach = {f: g.may_match_under(f) for f in ["train", "train/deep", "x", "x/z/w", "q/a"]}
    assert reach == {"train": True, "train/deep": False, "x": True, "x/z/w": True, "q/a": True}
    assert not g.may_match_under("q/c") and not g.may_match_under("val")


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.lists(
            st.sampled_from(["a", "b", "*", "?", "/", "[ab]", "[!a]", "**/", "**", "["]),
            min_size=1,
            max_size=6,
        ).map("".join),
        min_size=1,
        max_size=2,
    ),
    st.lists(st.sampled_from(["a", "b", "ab", "ba"]), min_size=2, max_size=5),
)
def test_glob_pruning_is_sound(patterns: list[str], parts: list[str]) -> None:
    try:
        g = Globs(patterns)
    except InvalidInput:
        return
    path = "/".join(parts)
    if g(path):
        for k in range(1, len(parts)):
            assert g.may_match_under("/".join(parts[:k])), (patterns, path, k)


def test_the_walk_through_in_the_docs_runs(tmp_path: Path, home: Path) -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "clone-merge.md").read_text()
    block = doc.split("```console\n", 1)[1].split("```", 1)[0]
    work = tmp_path / "work"
    make_tree(work / "photos", SAMPLE)
    (work / "labels.json").write_text('{"labels": ["cat", "dog"]}')
    (work / "dog.json").write_text('[{"label": "dog"}]')
    (work / "ear.json").write_text('[{"label": "dog"}, {"label": "ear"}]')
    outputs = {}
    for line in block.splitlines():
        assert line.startswith("$ dlfs "), line
        args = shlex.split(line[2:])
        res = Cli(home)(*args[1:], ok=False, cwd=work)
        assert res.code == 0, (line, res.err)
        outputs[line[2:]] = res.out
    assert outputs["dlfs diff pets pets-all"] == (
        "M  train/a.jpg  (annotations)\n0 added, 0 removed, 1 modified, 0 moved\n"
    )
    with Catalog(home) as cat:
        item = cat.version("pets-all").item("train/a.jpg")
        assert item.annotations == [{"label": "dog"}, {"label": "ear"}]
        assert [f.path for f in cat.version("dogs").files()] == ["train/a.jpg"]
        assert len(cat.draft("train-only").files()) == 3

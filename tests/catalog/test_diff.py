"""``dlfs diff``: exact against a brute-force comparison, and O(changes)."""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dlfs import Catalog
from dlfs.ops.diff import Diff
from tests.catalog.test_clone import Spec, put_version
from tests.conftest import Cli

# -- the user's view -------------------------------------------------------------------


def test_diff_of_two_versions(cli: Cli, sample: Path, tmp_path: Path) -> None:
    cli("dataset", "create", "cats")
    cli("add", "cats", str(sample))
    cli("publish", "cats")
    cli("version", "create", "cats", "--from", "cats@latest")
    cli("rm", "cats", "val/a.jpg")
    cli("mv", "cats", "train/deep/c.txt", "c.txt")
    cli("meta", "cats", "c.txt", "--set", "moved=true")
    cli("meta", "cats", "cat.jpg", "--set", 'split="train"')
    (tmp_path / "ann.json").write_text('[{"label": "cat"}]')
    cli("meta", "cats", "cat.jpg", "--annotations", str(tmp_path / "ann.json"))
    new = tmp_path / "new"
    new.mkdir()
    (new / "b.jpg").write_bytes(b"other bytes")
    (new / "z.jpg").write_bytes(b"new file")
    cli("add", "cats", str(new / "b.jpg"), "--to", "train")  # new bytes, same lineage
    cli("add", "cats", str(new / "z.jpg"), "--to", "train/deep")
    cli("publish", "cats")
    out = cli("diff", "cats@v0", "cats@v1").out
    assert out.splitlines() == [
        "R  train/deep/c.txt -> c.txt  (metadata)",
        "M  cat.jpg  (metadata, annotations)",
        "M  train/b.jpg  (content)",
        "A  train/deep/z.jpg",
        "D  val/a.jpg",
        "1 added, 1 removed, 2 modified, 1 moved",
    ]
    got = cli("diff", "cats@v0", "cats", "--json").json()
    assert isinstance(got, dict)
    assert got["summary"] == {"added": 1, "removed": 1, "modified": 2, "moved": 1}
    assert [m["path"] for m in got["modified"]] == ["cat.jpg", "train/b.jpg"]
    assert got["modified"][0]["changes"] == ["metadata", "annotations"]
    assert got["moved"][0]["from"] == "train/deep/c.txt" and got["moved"][0]["to"] == "c.txt"
    assert got["added"][0]["path"] == "train/deep/z.jpg" and got["added"][0]["item"]
    assert got["removed"] == [{"path": "val/a.jpg", "item": got["removed"][0]["item"]}]
    assert got["a"].startswith("cats@") and got["b"].startswith("cats@")
    back = cli("diff", "cats@v1", "cats@v0", "--json").json()
    assert isinstance(back, dict)
    assert back["summary"] == {"added": 1, "removed": 1, "modified": 2, "moved": 1}
    assert back["added"][0]["path"] == "val/a.jpg"
    same = cli("diff", "cats@v1", "cats@latest").out
    assert same == "0 added, 0 removed, 0 modified, 0 moved\n"


def test_diff_reads_drafts_and_other_datasets(cli: Cli, sample: Path) -> None:
    cli("dataset", "create", "cats")
    cli("add", "cats", str(sample))
    cli("publish", "cats")
    cli("clone", "cats", "kittens")
    cli("rm", "kittens", "-r", "train")
    got = cli("diff", "cats", "kittens@draft", "--json").json()
    assert isinstance(got, dict)
    assert [r["path"] for r in got["removed"]] == ["train/a.jpg", "train/b.jpg", "train/deep/c.txt"]
    res = cli("diff", "cats", "nope", ok=False)
    assert res.code == 1 and "no dataset named 'nope'" in res.err


def test_replacing_an_item_by_another_lineage_is_removed_and_added(catalog: Catalog) -> None:
    a = put_version(catalog, "a", {"x": ("o1", "b1", {}, []), "y": ("o2", "b2", {}, [])})
    b = put_version(catalog, "b", {"x": ("o3", "b1", {}, []), "z": ("o1", "b1", {}, [])})
    d = catalog.diff(a, b)
    assert [(c.old_path, c.path) for c in d.moved] == [("x", "z")]
    assert [c.path for c in d.added] == ["x"]
    assert [c.path for c in d.removed] == ["y"]
    assert d.modified == []


def test_a_file_that_becomes_a_folder(catalog: Catalog) -> None:
    a = put_version(catalog, "a", {"f": ("o1", "b1", {}, []), "g/h": ("o2", "b2", {}, [])})
    b = put_version(catalog, "b", {"f/x": ("o3", "b1", {}, []), "g": ("o2", "b2", {}, [])})
    d = catalog.diff(a, b)
    assert [c.path for c in d.added] == ["f/x"]
    assert [c.path for c in d.removed] == ["f"]
    assert [(c.old_path, c.path, c.changes) for c in d.moved] == [("g/h", "g", ())]


def test_diff_is_o_changes(catalog: Catalog) -> None:
    spec: Spec = {
        f"d{i:03}/f{j:02}.jpg": (f"o{i}.{j}", f"b{i}.{j}", {"i": i}, [])
        for i in range(200)
        for j in range(20)
    }
    a = put_version(catalog, "big", spec)
    catalog.create_version("big", [a])
    catalog.set_meta("big", "d123/f07.jpg", [("i", -1)])
    b = catalog.publish("big").ref
    calls: list[str] = []
    real = catalog.db.raw_entries

    def counting(tree: str) -> list[tuple[str, int, str, int]]:
        calls.append(tree)
        return real(tree)

    catalog.db.raw_entries = counting  # type: ignore[method-assign]
    d = catalog.diff(a, b)
    assert [(c.path, c.changes) for c in d.modified] == [("d123/f07.jpg", ("metadata",))]
    assert len(calls) == 4  # the two roots, the two d123 folders: nothing else is read


# -- exact against brute force ------------------------------------------------------------

FOLDERS = ["", "a/", "a/b/", "c/", "c/a/"]
NAMES = ["x", "y", "z", "a", "c"]  # "a" and "c" may also be folders: files turn into folders
items = st.tuples(
    st.sampled_from(["o1", "o2", "o3", "o4", "o5", "o6"]),
    st.sampled_from(["b1", "b2", "b3"]),
    st.sampled_from([{}, {"k": 1}, {"k": 2}]),
    st.sampled_from([[], [{"label": "cat"}], [{"label": "dog"}]]),
)
paths = st.builds(lambda f, n: f + n, st.sampled_from(FOLDERS), st.sampled_from(NAMES))


def tidy(spec: dict[str, Any]) -> Spec:
    """Drop files that stand where another file needs a folder."""
    folders = {p.rsplit("/", 1)[0] for p in spec if "/" in p}
    folders |= {f.rsplit("/", 1)[0] for f in folders if "/" in f}
    return {p: v for p, v in spec.items() if p not in folders}


@st.composite
def version_pairs(draw: st.DrawFn) -> tuple[Spec, Spec]:
    a = tidy(draw(st.dictionaries(paths, items, max_size=14)))
    b = dict(a)
    for _ in range(draw(st.integers(0, 8))):
        op = draw(st.sampled_from(["add", "remove", "modify", "move", "replace"]))
        keys = sorted(b)
        if op == "add" or not keys:
            b[draw(paths)] = draw(items)
            continue
        path = draw(st.sampled_from(keys))
        origin, blob, meta, ann = b[path]
        if op == "remove":
            del b[path]
        elif op == "modify":
            b[path] = (origin, draw(st.sampled_from(["b1", "b4"])), draw(items)[2], ann)
        elif op == "move":
            del b[path]
            b[draw(paths)] = (origin, blob, meta, draw(items)[3])
        else:
            b[path] = draw(items)
    return a, tidy(b)


def brute_force(a: Spec, b: Spec) -> dict[str, list[Any]]:
    """The diff of two flat ``{path: item}`` maps, straight from the definitions."""

    def what(x: tuple[str, str, Any, Any], y: tuple[str, str, Any, Any]) -> tuple[str, ...]:
        parts = [("content", x[1] != y[1]), ("metadata", x[2] != y[2])]
        parts.append(("annotations", x[3] != y[3]))
        return tuple(name for name, differs in parts if differs)

    modified = []
    only_a = [p for p in a if p not in b]
    only_b = [p for p in b if p not in a]
    for p in a.keys() & b.keys():
        if a[p] == b[p]:
            continue
        if a[p][0] == b[p][0]:
            modified.append((p, what(a[p], b[p])))
        else:
            only_a.append(p)
            only_b.append(p)
    olds: dict[str, list[str]] = defaultdict(list)
    news: dict[str, list[str]] = defaultdict(list)
    for p in sorted(only_a):
        olds[a[p][0]].append(p)
    for p in sorted(only_b):
        news[b[p][0]].append(p)
    moved, removed, added = [], [], []
    for origin in olds.keys() | news.keys():
        o, n = olds[origin], news[origin]
        moved += [(x, y, what(a[x], b[y])) for x, y in zip(o, n, strict=False)]
        removed += o[len(n) :]
        added += n[len(o) :]
    return {
        "added": sorted(added),
        "removed": sorted(removed),
        "modified": sorted(modified),
        "moved": sorted(moved, key=lambda m: m[1]),
    }


def observed(d: Diff) -> dict[str, list[Any]]:
    return {
        "added": [c.path for c in d.added],
        "removed": [c.path for c in d.removed],
        "modified": [(c.path, c.changes) for c in d.modified],
        "moved": [(c.old_path, c.path, c.changes) for c in d.moved],
    }


_names = itertools.count()


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(version_pairs())
def test_diff_is_exact_on_random_trees(catalog: Catalog, pair: tuple[Spec, Spec]) -> None:
    a, b = pair
    n = next(_names)
    ref_a = put_version(catalog, f"a{n}", a)
    ref_b = put_version(catalog, f"b{n}", b, published=n % 2 == 0)
    d = catalog.diff(ref_a, ref_b)
    assert observed(d) == brute_force(a, b)
    assert d.empty is (a == b)
    back = catalog.diff(ref_b, ref_a)
    assert observed(back) == brute_force(b, a)
    json.dumps(d.to_json())

"""Bad input gets one clear error line, exit status 1, and changes nothing."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from dlfs.jsonvalues import MAX_ANNOTATIONS
from tests.conftest import SAMPLE, Cli, blob_files, catalog_dump, make_tree


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """cats: v0 published, a child draft with the sample; dogs: one empty draft."""
    root = tmp_path_factory.mktemp("template")
    cli = Cli(root / "home")
    src = make_tree(root / "src", SAMPLE)
    cli("dataset", "create", "cats")
    cli("add", "cats", str(src))
    cli("publish", "cats")
    cli("version", "create", "cats", "--from", "cats@v0")
    cli("dataset", "create", "dogs")
    return root / "home"


@pytest.fixture
def ready(template: Path, home: Path, tmp_path: Path) -> Cli:
    """A copy of the template catalog, and two JSON files (one invalid)."""
    shutil.copytree(template, home)
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "obj.json").write_text('{"label": "cat"}')
    (tmp_path / "deep.json").write_text(DEEP)
    (tmp_path / "dup.json").write_text('[{"x": 1, "x": 2}]')
    (tmp_path / "nan.json").write_text("[NaN]")
    with open(tmp_path / "huge.json", "wb") as f:  # sparse: refused before it is read
        f.truncate(MAX_ANNOTATIONS + 1)
    bad_names = tmp_path / "badnames"
    (bad_names / "sub").mkdir(parents=True)
    (bad_names / "ok.txt").write_bytes(b"fine")
    with open(os.fsencode(bad_names / "sub") + b"/b\xff.txt", "wb") as f:
        f.write(b"a name that is not UTF-8")
    return Cli(home)


def v0_id(cli: Cli) -> str:
    return str(cli("version", "list", "cats", "--published", "--json").json()[0]["id"])  # type: ignore[index]


DEEP = "[" * 10_000 + "]" * 10_000

CASES = {
    "unknown dataset": (["ls", "nope@v0"], "no dataset named 'nope'"),
    "unknown ref": (["ls", "cats@nosuchtag"], "unknown ref 'cats@nosuchtag'"),
    "no published version": (["ls", "dogs"], "has no published version yet"),
    "publish published": (["publish", "cats@v0"], "already published"),
    "delete published": (["version", "delete", "cats@v0"], "cannot be deleted"),
    "child of a draft": (
        ["version", "create", "cats", "--from", "cats@draft"],
        "children are made from published versions only",
    ),
    "write to published": (["rm", "cats@v0", "cat.jpg"], "published and read-only"),
    "add to published": (["add", "cats@v0", "{sample}"], "published and read-only"),
    "name is dot-dot": (["mkdir", "cats", ".."], "escape the dataset"),
    "path escapes": (["ls", "cats", "train/../../x"], "escape the dataset"),
    "add escapes": (["add", "cats", "{sample}", "--to", "../up"], "escape the dataset"),
    "mv escapes": (["mv", "cats", "cat.jpg", "../../etc/passwd"], "escape the dataset"),
    "invalid metadata JSON": (["meta", "cats", "cat.jpg", "--set", "k={bad"], "invalid JSON"),
    "annotations not JSON": (
        ["meta", "cats", "cat.jpg", "--annotations", "{tmp}/bad.json"],
        "invalid JSON",
    ),
    "annotations not a list": (
        ["meta", "cats", "cat.jpg", "--annotations", "{tmp}/obj.json"],
        "must be a JSON list",
    ),
    "labels not JSON": (["dataset", "create", "x", "--labels", "{tmp}/bad.json"], "invalid JSON"),
    "dataset meta not JSON": (["dataset", "meta", "cats", "owner=ann"], "invalid JSON value"),
    "deep --set": (["meta", "cats", "cat.jpg", "--set", "k=" + DEEP], "nested deeper than 64"),
    "deep annotations": (
        ["meta", "cats", "cat.jpg", "--annotations", "{tmp}/deep.json"],
        "nested deeper than 64",
    ),
    "deep labels": (
        ["dataset", "create", "x", "--labels", "{tmp}/deep.json"],
        "nested deeper than 64",
    ),
    "NaN --set": (["meta", "cats", "cat.jpg", "--set", "k=NaN"], "NaN is not a JSON number"),
    "-Infinity dataset meta": (["dataset", "meta", "cats", "k=-Infinity"], "Infinity is not"),
    "duplicate key --set": (
        ["meta", "cats", "cat.jpg", "--set", 'k={"a": 1, "a": 2}'],
        "duplicate key 'a'",
    ),
    "duplicate key annotations": (
        ["meta", "cats", "cat.jpg", "--annotations", "{tmp}/dup.json"],
        "duplicate key 'x'",
    ),
    "annotations over the limit": (
        ["meta", "cats", "cat.jpg", "--annotations", "{tmp}/huge.json"],
        "over the limit of 16777216 bytes",
    ),
    "name not UTF-8": (["add", "cats", "{tmp}/badnames"], "badnames/sub/b\\xff.txt"),
    "dataset exists": (["dataset", "create", "cats"], "already exists"),
    "bad dataset name": (["dataset", "create", "a:b"], "invalid dataset name"),
    "dataset in a missing project": (["dataset", "create", "nope/b"], "no project named"),
    "dataset name ends in a space": (["dataset", "create", "cats "], "invalid dataset name"),
    "dataset named like a project": (["dataset", "create", "default"], "is a project"),
    "dataset in a bad --project": (["dataset", "create", "x", "--project", "a b"], "invalid proj"),
    "project bad name": (["project", "create", "bad name"], "invalid project name"),
    "project exists": (["project", "create", "default"], "already exists"),
    "project named like a dataset": (["project", "create", "cats"], "a dataset of the default"),
    "project of no group": (["project", "create", "p", "--group", "no-such-grp"], "no Unix group"),
    "project show missing": (["project", "show", "nope"], "no project named 'nope'"),
    "project set nothing": (["project", "set", "default"], "nothing to set"),
    "project set both": (["project", "set", "default", "--group", "0", "--no-group"], "either"),
    "project delete default": (["project", "delete", "default"], "cannot be deleted"),
    "reserved tag": (["publish", "cats", "--tag", "latest"], "reserved"),
    "tag taken": (["tag", "cats@v0", "v0"], "reserved"),
    "missing source": (["add", "cats", "{tmp}/missing"], "no such file or folder"),
    "rm folder without -r": (["rm", "cats", "train"], "is a folder (use -r)"),
    "missing file": (["cat", "cats@v0", "nope.jpg"], "no such file or folder"),
    "delete non-empty dataset": (["dataset", "delete", "cats"], "published version"),
    "untag auto": (["untag", "cats", "v0"], "automatic"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_changes_nothing(
    case: str, ready: Cli, home: Path, sample: Path, tmp_path: Path
) -> None:
    args, message = CASES[case]
    args = [a.replace("{sample}", str(sample)).replace("{tmp}", str(tmp_path)) for a in args]
    before = catalog_dump(home), blob_files(home)
    res = ready(*args, ok=False)
    assert res.code == 1, res
    lines = res.err.strip().splitlines()
    assert len(lines) == 1, res.err
    assert lines[0].startswith("dlfs: error: ") and message in lines[0], lines[0]
    assert (catalog_dump(home), blob_files(home)) == before


def test_ambiguous_prefix_lists_matches(ready: Cli, home: Path) -> None:
    import sqlite3

    conn = sqlite3.connect(home / "catalog.db")
    dataset = conn.execute("SELECT id FROM datasets WHERE name = 'cats'").fetchone()[0]
    for suffix in "ab":
        conn.execute(
            "INSERT INTO versions(id, dataset, state, root, created_at) VALUES (?,?,?,?,0)",
            ("zzzz" + suffix * 36, dataset, "draft", "0" * 32),
        )
    conn.commit()
    conn.close()
    before = catalog_dump(home)
    res = ready("ls", "cats@zzzz", ok=False)
    assert res.code == 1 and "ambiguous" in res.err
    assert "zzzz" + "a" * 36 in res.err and "zzzz" + "b" * 36 in res.err
    assert catalog_dump(home) == before


def test_usage_errors_exit_2(ready: Cli) -> None:
    res = ready("publish", ok=False)
    assert res.code == 2 and "Missing argument" in res.err
    res = ready("no-such-command", ok=False)
    assert res.code == 2


def test_a_file_over_a_folder_in_one_add_changes_nothing(
    ready: Cli, home: Path, tmp_path: Path
) -> None:
    src = make_tree(tmp_path / "clash", {"new.txt": b"fresh bytes", "train": b"a file"})
    before = catalog_dump(home), blob_files(home)
    res = ready("add", "cats", str(src), ok=False)
    assert res.code == 1 and "a folder exists" in res.err
    assert (catalog_dump(home), blob_files(home)) == before

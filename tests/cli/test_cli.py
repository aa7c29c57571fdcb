"""The ``dlfs`` command as a user runs it: the quick start, JSON output, listings."""

from __future__ import annotations

import hashlib
from pathlib import Path

from tests.conftest import SAMPLE, Cli


def test_quick_start(cli: Cli, sample: Path) -> None:
    cli("init")
    cli("dataset", "create", "cats", "--description", "cat pictures", "--tag", "pets")
    assert "added 5 file(s)" in cli("add", "cats", str(sample)).out
    v0 = cli("publish", "cats", "--tag", "gold", "--json").json()
    assert isinstance(v0, dict)
    assert v0["state"] == "published" and v0["tags"] == ["latest", "v0", "gold"]
    assert {"id", "name", "state", "tags"} <= set(v0)
    assert cli("ls", "cats").out.split() == ["cat.jpg", "train/", "val/"]
    assert cli.bytes("cat", "cats@gold", "train/b.jpg") == SAMPLE["train/b.jpg"]
    assert "has no draft" in cli("snapshot", "cats", ok=False).err
    cli("version", "create", "cats", "--from", "cats@latest")
    snap = cli("snapshot", "cats", "--json").json()
    assert isinstance(snap, dict) and snap["state"] == "published"
    listing = cli("version", "list", "cats", "--json").json()
    assert isinstance(listing, list)
    assert [v["state"] for v in listing] == ["published", "published", "draft"]
    assert snap["child"]["id"] == listing[-1]["id"]
    assert listing[-1]["name"] == "Current"
    assert len(cli("version", "list", "cats", "--drafts", "--json").json()) == 1  # type: ignore[arg-type]


def test_listings_have_json(cli: Cli, sample: Path) -> None:
    cli("dataset", "create", "cats")
    cli("add", "cats", str(sample), "--to", "imgs")
    entries = cli("ls", "cats@draft", "imgs/train", "--json").json()
    assert isinstance(entries, list)
    by_name = {e["name"]: e for e in entries}
    assert by_name["a.jpg"]["size"] == 5000 and by_name["deep"]["type"] == "dir"
    datasets = cli("dataset", "list", "--json").json()
    assert isinstance(datasets, list) and datasets[0]["name"] == "cats"
    assert datasets[0]["files"] == 5  # nothing published yet: the draft is counted
    show = cli("dataset", "show", "cats", "--json").json()
    assert isinstance(show, dict) and show["version_list"][0]["files"] == 5
    long = cli("ls", "cats@draft", "imgs", "-l").out
    assert "cat.jpg" in long and "4000" in long


def test_meta_shows_and_sets(cli: Cli, sample: Path, tmp_path: Path) -> None:
    cli("dataset", "create", "cats")
    cli("add", "cats", str(sample))
    ann = tmp_path / "ann.json"
    ann.write_text('[{"label": "cat", "box": [1, 2, 3, 4]}]')
    item = cli("meta", "cats", "cat.jpg", "--set", 'split="train"', "--annotations", str(ann))
    got = item.json()
    assert isinstance(got, dict)
    assert got["metadata"] == {"split": "train"} and got["annotations"][0]["label"] == "cat"
    cli("publish", "cats")
    shown = cli("meta", "cats@v0", "cat.jpg").json()
    assert isinstance(shown, dict) and shown["metadata"] == {"split": "train"}
    blob = hashlib.sha256(cli.bytes("cat", "cats", "cat.jpg")).hexdigest()
    assert blob == hashlib.sha256(SAMPLE["cat.jpg"]).hexdigest()


def test_folder_ops_through_the_cli(cli: Cli, sample: Path) -> None:
    cli("dataset", "create", "cats")
    cli("add", "cats", str(sample))
    cli("mkdir", "cats", "all")
    cli("mv", "cats", "train", "val", "all")
    cli("cp", "cats", "cat.jpg", "all/cat-copy.jpg")
    cli("rm", "cats", "-r", "all/val")
    assert cli("ls", "cats@draft", "all").out.split() == ["cat-copy.jpg", "train/"]
    a = cli("meta", "cats@draft", "cat.jpg").json()
    b = cli("meta", "cats@draft", "all/cat-copy.jpg").json()
    assert isinstance(a, dict) and isinstance(b, dict) and a["item"] == b["item"]


def test_log_and_tags(cli: Cli, sample: Path) -> None:
    cli("dataset", "create", "cats")
    cli("add", "cats", str(sample))
    cli("publish", "cats", "--name", "first")
    cli("version", "create", "cats", "--from", "cats@first", "--name", "second")
    cli("rm", "cats", "cat.jpg")
    cli("publish", "cats")
    assert cli("tag", "cats@v0", "gold").out.split() == ["v0", "gold"]
    cli("untag", "cats", "gold")
    log = cli("log", "cats").out
    assert log.index("latest,v1") < log.index("v0")
    assert "name: second" in log and "parents:" in log


def test_gc_and_fsck(cli: Cli, sample: Path, home: Path) -> None:
    cli("dataset", "create", "cats")
    cli("add", "cats", str(sample))
    cli("publish", "cats")
    assert cli("fsck").out.strip() == "ok"
    cli("dataset", "create", "tmp")
    cli("add", "tmp", str(sample / "cat.jpg"))
    cli("add", "tmp", str(sample / "train"), "--to", "x")
    cli("rm", "tmp", "-r", "x")
    assert "removed 0 blob(s)" in cli("gc").out  # cat.jpg is still used by both
    blob = next((home / "blobs").glob("??/*"))
    blob.write_bytes(b"rotten")
    res = cli("fsck", ok=False)
    assert res.code == 1 and f"blob {blob.name} is missing or corrupt" in res.out


def test_help_for_every_command(cli: Cli) -> None:
    from dlfs.cli import cli as group

    assert cli("--help").out.startswith("Usage: dlfs")
    for name, command in group.commands.items():
        assert command.help, f"dlfs {name} has no help"
        assert cli(name, "--help").code == 0


def test_cp_keeps_lineage_unless_asked(cli: Cli, sample: Path) -> None:
    cli("dataset", "create", "cats")
    cli("add", "cats", str(sample))
    cli("cp", "cats", "train", "same")
    cli("cp", "cats", "train", "fresh", "--new-lineage")

    def origin(path: str) -> str:
        got = cli("meta", "cats@draft", path).json()
        assert isinstance(got, dict)
        return str(got["origin"])

    assert origin("same/a.jpg") == origin("train/a.jpg")
    assert origin("fresh/a.jpg") != origin("train/a.jpg")
    fresh = cli("meta", "cats@draft", "fresh/b.jpg").json()
    old = cli("meta", "cats@draft", "train/b.jpg").json()
    assert isinstance(fresh, dict) and isinstance(old, dict) and fresh["blob"] == old["blob"]

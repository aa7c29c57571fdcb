"""``dlfs project ...``, ``dlfs dataset list --project`` and names with spaces, through
the real command: what a user types and reads; a read-only project refuses changes in
one line and leaves the catalog as it was."""

from __future__ import annotations

import os
from pathlib import Path

from tests.helpers import Cli, catalog_dump


def test_projects_from_the_command_line(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_bytes(b"a\n")
    made = cli("project", "create", "vision", "--group", str(os.getgid()), "--json").json()
    assert isinstance(made, dict) and made["gid"] == os.getgid()
    cli("dataset", "create", "cats", "--project", "vision")
    cli("dataset", "create", "dogs")
    cli("add", "vision/cats", str(tmp_path / "a.txt"))
    assert "vision/cats@" in cli("publish", "vision/cats").out
    assert cli("ls", "vision/cats@v0").out.split() == ["a.txt"]
    listed = cli("dataset", "list", "--project", "vision", "--json").json()
    assert [d["name"] for d in listed] == ["vision/cats"]  # type: ignore[union-attr,index]
    everyone = cli("dataset", "list", "--project", "default", "--json").json()
    assert [d["name"] for d in everyone] == ["dogs"]  # type: ignore[union-attr,index]
    table = cli("project", "list").out.splitlines()
    assert table[0].split() == ["NAME", "OWNER", "GROUP", "STATE", "DATASETS"]
    assert [line.split()[0] for line in table[1:]] == ["default", "vision"]
    shown = cli("project", "show", "vision").out
    assert "read-only: no" in shown and "  vision/cats" in shown
    assert "read-only: yes" in cli("project", "set", "vision", "--read-only").out
    assert cli("project", "set", "vision", "--no-group", "--json").json()["group"] is None  # type: ignore[call-overload,index]
    cli("project", "set", "vision", "--writable")
    out = cli("project", "delete", "vision", "--force").out
    assert out.strip() == "deleted project vision and 1 dataset(s): vision/cats"
    assert cli("project", "list", "--json").json() == [
        cli("project", "show", "default", "--json").json()
    ]


def test_names_with_spaces_are_quoted_refs(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "x.txt").write_bytes(b"x\n")
    cli("dataset", "create", "myDataset One")
    cli("add", "myDataset One", str(tmp_path / "x.txt"))
    cli("publish", "myDataset One")
    assert cli("ls", "myDataset One@v0").out.split() == ["x.txt"]
    assert cli.bytes("cat", "myDataset One@latest", "x.txt") == b"x\n"
    assert "myDataset One" in cli("dataset", "list").out


def test_a_read_only_project_refuses_in_one_line_and_changes_nothing(
    cli: Cli, home: Path, tmp_path: Path
) -> None:
    (tmp_path / "a.txt").write_bytes(b"a\n")
    cli("project", "create", "vision")
    cli("dataset", "create", "vision/cats")
    cli("add", "vision/cats", str(tmp_path / "a.txt"))
    cli("publish", "vision/cats")
    cli("version", "create", "vision/cats", "--from", "vision/cats@v0")
    cli("project", "set", "vision", "--read-only")
    before = catalog_dump(home)
    for args in (
        ["dataset", "create", "vision/dogs"],  # the API test tries every other change
        ["add", "vision/cats", str(tmp_path / "a.txt"), "--to", "again"],
        ["publish", "vision/cats"],
        ["dataset", "delete", "vision/cats", "--force"],
    ):
        res = cli(*args, ok=False)
        assert res.code == 1, (args, res)
        lines = res.err.strip().splitlines()
        assert len(lines) == 1 and "project 'vision' is read-only" in lines[0], (args, res.err)
        assert catalog_dump(home) == before, args
    assert cli("ls", "vision/cats@v0").out.split() == ["a.txt"]

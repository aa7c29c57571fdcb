"""``dlfs add`` with symlinks in the source, as a user runs it: a link is stored as a
link, ``--follow-symlinks`` follows links inside the source only and says in one line
which link it did not follow; ``dlfs ls -l`` shows links and modes."""

from __future__ import annotations

import os
from pathlib import Path

from tests.conftest import Cli, make_tree


def _source(tmp_path: Path) -> Path:
    src = make_tree(tmp_path / "src", {"labels/all.txt": b"cat\ndog\n", "run.sh": b"#!/bin/sh\n"})
    os.chmod(src / "run.sh", 0o755)
    secret = make_tree(tmp_path / "outside", {"passwd": b"root:x:0:0:secret"}) / "passwd"
    os.symlink(secret, src / "p")
    os.symlink("labels/all.txt", src / "labels.txt")
    return src


def test_add_stores_symlinks_as_symlinks(cli: Cli, tmp_path: Path) -> None:
    src = _source(tmp_path)
    cli("dataset", "create", "ds")
    done = cli("add", "ds", str(src))
    assert done.err == ""
    long = cli("ls", "ds@draft", "-l").out
    assert f"p -> {tmp_path / 'outside' / 'passwd'}" in long
    assert "labels.txt -> labels/all.txt" in long
    assert "0755" in next(line for line in long.splitlines() if line.endswith("run.sh"))
    assert b"secret" not in cli.bytes("cat", "ds@draft", "p")
    by_name = {e["name"]: e for e in cli("ls", "ds@draft", "--json").json()}  # type: ignore[union-attr]
    assert by_name["p"]["type"] == "link" and by_name["labels.txt"]["target"] == "labels/all.txt"


def test_follow_symlinks_never_follows_a_link_out_of_the_source(cli: Cli, tmp_path: Path) -> None:
    src = _source(tmp_path)
    cli("dataset", "create", "ds")
    done = cli("add", "ds", str(src), "--follow-symlinks")
    warnings = [line for line in done.err.splitlines() if line.strip()]
    assert len(warnings) == 1 and warnings[0].startswith("dlfs: warning: not following")
    assert str(src / "p") in warnings[0]
    assert cli.bytes("cat", "ds@draft", "labels.txt") == b"cat\ndog\n", "followed: inside"
    assert b"secret" not in cli.bytes("cat", "ds@draft", "p")
    assert "p -> " in cli("ls", "ds@draft", "-l").out

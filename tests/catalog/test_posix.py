"""POSIX attributes of items: symlinks, modes and ``user.*`` xattrs through ``dlfs add``,
diff, clone, merge and push/pull (no kernel: the catalog and its API)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from dlfs import Catalog
from dlfs.items import ItemRecord
from dlfs.posixattrs import Posix
from tests.conftest import make_tree


def _entries(catalog: Catalog, ref: str, path: str = "") -> dict[str, Any]:
    return {e.name: e.to_json() for e in catalog.ls(ref, path)}


def _xattrs_work(path: Path) -> bool:
    try:
        os.setxattr(path, "user.probe", b"1")
        os.removexattr(path, "user.probe")
    except OSError:
        return False
    return True


def test_an_item_without_posix_attributes_keeps_its_old_id() -> None:
    plain = ItemRecord("o" * 32, "b" * 32, 3, 1.0)
    assert plain.posix == "" and plain.id == ItemRecord("o" * 32, "b" * 32, 3, 2.0).id
    # the id items had before schema 3 (objects.item_id of five fields)
    import xxhash

    old = xxhash.xxh3_128_hexdigest(f'["{"o" * 32}","{"b" * 32}",3,{{}},[]]'.encode())
    assert plain.id == old
    assert plain._replace(posix=Posix(mode=0o755).text()).id != old


def test_symlinks_are_stored_as_symlinks_and_never_read_through(
    catalog: Catalog, tmp_path: Path
) -> None:
    src = make_tree(tmp_path / "src", {"real/a.txt": b"a", "b.txt": b"b"})
    secret = make_tree(tmp_path / "outside", {"passwd": b"root:x:0:0"}) / "passwd"
    os.symlink(secret, src / "p")
    os.symlink("real", src / "linkdir")
    os.symlink("b.txt", src / "linkfile")
    os.symlink("missing", src / "dangling")
    os.mkfifo(src / "fifo")
    catalog.create_dataset("cats")
    catalog.add("cats", [src])
    top = _entries(catalog, "cats@draft")
    assert set(top) == {"real", "b.txt", "p", "linkdir", "linkfile", "dangling"}
    assert top["p"]["type"] == "link" and top["p"]["target"] == str(secret)
    assert top["linkdir"]["target"] == "real" and top["dangling"]["target"] == "missing"
    assert top["p"]["size"] == 0, "no byte of the target is imported"
    assert catalog.draft("cats").read_bytes("p") == b""


def test_follow_symlinks_follows_links_inside_the_source_only(
    catalog: Catalog, tmp_path: Path
) -> None:
    src = make_tree(tmp_path / "src", {"real/a.txt": b"a", "b.txt": b"b"})
    secret = make_tree(tmp_path / "outside", {"passwd": b"root:x:0:0"}) / "passwd"
    os.symlink(secret, src / "p")
    os.symlink("real", src / "linkdir")
    os.symlink("b.txt", src / "linkfile")
    os.symlink("..", src / "real" / "up")  # a loop back to the source root
    warned: list[str] = []
    catalog.create_dataset("cats")
    catalog.add("cats", [src], follow_symlinks=True, warn=warned.append)
    top = _entries(catalog, "cats@draft")
    assert top["linkfile"]["type"] == "file" and top["linkdir"]["type"] == "dir"
    assert catalog.draft("cats").read_bytes("linkdir/a.txt") == b"a"
    assert top["p"]["type"] == "link", "a link out of the source is not followed"
    assert b"root" not in catalog.draft("cats").read_bytes("p")
    assert len(warned) == 1 and "not following" in warned[0] and str(src / "p") in warned[0]


def test_modes_and_user_xattrs_are_imported(catalog: Catalog, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", {"run.sh": b"#!/bin/sh\n", "data.txt": b"d"})
    os.chmod(src / "run.sh", 0o755)
    os.chmod(src / "data.txt", 0o600)
    xattrs = _xattrs_work(src / "data.txt")
    if xattrs:
        os.setxattr(src / "data.txt", "user.origin", b"camera-7\x00\xff")
    catalog.create_dataset("cats")
    catalog.add("cats", [src])
    top = _entries(catalog, "cats@draft")
    assert top["run.sh"]["mode"] == "0755" and top["data.txt"]["mode"] == "0600"
    if xattrs:
        item = catalog.db.item_get(top["data.txt"]["item"])
        assert Posix.parse(item["posix"]).xattr("user.origin") == b"camera-7\x00\xff"


def test_diff_clone_and_merge_carry_modes_and_links(catalog: Catalog, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", {"run.sh": b"#!/bin/sh\n"})
    os.symlink("run.sh", src / "latest")
    catalog.create_dataset("cats")
    catalog.add("cats", [src])
    v0 = catalog.publish("cats")
    catalog.create_version("cats", ["cats@latest"])
    os.chmod(src / "run.sh", 0o755)
    catalog.add("cats", [src / "run.sh"])
    v1 = catalog.publish("cats")
    d = catalog.diff(v0, v1)
    assert [(c.path, c.changes) for c in d.modified] == [("run.sh", ("mode",))]
    catalog.clone(v1, "copy")
    copy = _entries(catalog, "copy@draft")
    assert copy["run.sh"]["mode"] == "0755" and copy["latest"]["target"] == "run.sh"
    catalog.merge("both", [v0, v1])
    both = _entries(catalog, "both@draft")
    assert both["run.sh"]["mode"] == "0755" and both["latest"]["type"] == "link"


def test_push_and_pull_carry_posix_attributes(s3: Any, tmp_path: Path) -> None:
    a, b = Catalog(tmp_path / "a"), Catalog(tmp_path / "b")
    try:
        src = make_tree(tmp_path / "src", {"run.sh": b"#!/bin/sh\n", "plain": b"p"})
        os.chmod(src / "run.sh", 0o755)
        os.chmod(src / "plain", 0o644)
        os.symlink("run.sh", src / "latest")
        a.create_dataset("cats")
        a.add("cats", [src])
        v = a.publish("cats")
        remote = f"s3://{s3.bucket()}/team"
        a.push(f"cats@{v.id}", remote)
        b.pull(remote, f"cats@{v.id}")
        assert _entries(b, f"cats@{v.id}") == _entries(a, f"cats@{v.id}")
        got = _entries(b, f"cats@{v.id}")
        assert got["run.sh"]["mode"] == "0755" and got["latest"]["target"] == "run.sh"
    finally:
        a.close()
        b.close()

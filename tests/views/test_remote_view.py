"""A pushed version viewed straight from its remote (dlfs.ops.remotemount), against the
real S3 server: the same tree, attributes and bytes as the same version pulled, nothing
in the node's catalog, and a damaged or missing folder object is Corrupt (EIO)."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any

import pytest

from dlfs import Catalog
from dlfs.errors import Corrupt, NotFound, errno_of
from dlfs.home import Home
from dlfs.nodes import Node, Role
from dlfs.ops.remotemount import open_remote_view
from dlfs.view import View, open_view
from tests.conftest import catalog_dump


def walk(v: View, node: Node, prefix: str = "") -> dict[str, Any]:
    """Every path under ``node``: its attributes, and a file's bytes and xattrs."""
    out: dict[str, Any] = {}
    for _pos, name, child in v.listing(node).entries_from(0):
        path = f"{prefix}{name}"
        looked = v.lookup(node, name)
        assert looked == child
        facts: dict[str, Any] = {
            "role": child.role,
            "mode": child.mode,
            "size": child.size,
            "mtime": child.mtime_ns,
            "blob": child.blob,
        }
        if child.role == Role.FILE:
            fh = v.open(child, os.O_RDONLY)
            try:
                facts["bytes"] = bytes(v.read(fh, 0, child.size + 10))
            finally:
                v.release(fh)
            facts["xattrs"] = {a: v.getxattr(child, a) for a in v.listxattr(child)}
        out[path] = facts
        if child.is_dir:
            out.update(walk(v, child, f"{path}/"))
    return out


@pytest.fixture
def pushed(s3: Any, tmp_path: Path) -> tuple[str, str, str]:
    """``(remote url, bucket, version id)`` of a version with nested folders."""
    bucket = s3.bucket()
    url = f"s3://{bucket}/team"
    src = tmp_path / "src"
    for rel, data in {
        "a.txt": b"alpha",
        "sub/b.bin": os.urandom(200_000),
        "sub/deeper/c.txt": b"gamma" * 100,
        "sub/deeper/empty": b"",
        "z/d.txt": b"delta",
    }.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)
    with Catalog(tmp_path / "a") as a:
        a.create_dataset("cats")
        a.add("cats", [src])
        a.set_meta("cats", "a.txt", [("label", "tabby")])
        vid = a.publish("cats", tags=["gold"]).id
        a.push("cats@gold", url)
    return url, bucket, vid


def test_a_remote_view_shows_what_a_pull_shows(pushed: Any, tmp_path: Path) -> None:
    url, _bucket, vid = pushed
    node = Catalog(tmp_path / "node")
    before = catalog_dump(node.home.root)
    node.close()
    remote = open_remote_view(Home.at(tmp_path / "node"), url, "cats@gold")
    try:
        assert remote.root().version == vid
        seen = walk(remote, remote.root())
        stats = remote.statfs()
    finally:
        remote.close()
    assert catalog_dump(tmp_path / "node") == before, "nothing inserted"
    with Catalog(tmp_path / "b") as b:
        b.pull(url, "cats@gold")
    pulled = open_view(Home.at(tmp_path / "b"), f"cats@{vid}")
    try:
        assert seen == walk(pulled, pulled.root())
        assert stats == pulled.statfs()
    finally:
        pulled.close()
    assert sorted(p for p, f in seen.items() if f["role"] == Role.FILE) == [
        "a.txt",
        "sub/b.bin",
        "sub/deeper/c.txt",
        "sub/deeper/empty",
        "z/d.txt",
    ]


@pytest.mark.expect_log("remote folder .*does not match its id")
@pytest.mark.expect_log("remote folder .*is missing")
def test_a_damaged_or_missing_folder_object_is_eio(s3: Any, pushed: Any, tmp_path: Path) -> None:
    url, bucket, _vid = pushed
    client = s3.client()
    view = open_remote_view(Home.at(tmp_path / "node"), url, "cats@gold")
    try:
        sub = view.lookup(view.root(), "sub")
        key = f"team/folders/{sub.ref}"
        folder = json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read())
        folder["entries"][0][0] = "renamed"  # a listing that is not the folder's
        client.put_object(Bucket=bucket, Key=key, Body=json.dumps(folder).encode())
        with pytest.raises(Corrupt) as exc:
            list(view.listing(sub).entries_from(0))
        assert errno_of(exc.value) == errno.EIO
        z = view.lookup(view.root(), "z")
        client.delete_object(Bucket=bucket, Key=f"team/folders/{z.ref}")
        with pytest.raises(Corrupt, match="missing"):
            view.lookup(z, "d.txt")
        assert view.lookup(view.root(), "a.txt").size == 5, "the rest still reads"
    finally:
        view.close()


def test_unknown_refs(pushed: Any, tmp_path: Path) -> None:
    url, _bucket, _vid = pushed
    with pytest.raises(NotFound):
        open_remote_view(Home.at(tmp_path / "node"), url, "cats@nope")
    with pytest.raises(NotFound):
        open_remote_view(Home.at(tmp_path / "node"), url, "dogs@latest")

"""dlfs gc --remote: what no pushed version reaches goes, after a grace period; what a
version or a push in progress needs stays (real S3 server on loopback)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dlfs import Catalog
from dlfs.errors import Conflict
from dlfs.ops import push as push_ops
from tests.conftest import Cli


def _two_versions(home: Path, url: str) -> tuple[str, str]:
    with Catalog(home) as a:
        a.create_dataset("cats")
        a.add_bytes("cats", "keep.txt", b"kept by both versions")
        a.add_bytes("cats", "old.txt", b"only in the first")
        v1 = a.publish("cats").id
        a.create_version("cats", ["cats@latest"])
        a.add_bytes("cats", "new.txt", b"only in the second")
        v2 = a.publish("cats").id
        a.push(f"cats@{v1}", url)
        a.push(f"cats@{v2}", url)
    return v1, v2


def test_unreachable_objects_go_after_the_grace_period(s3: Any, tmp_path: Path, cli: Cli) -> None:
    bucket = s3.bucket()
    url = f"s3://{bucket}/team"
    v1, v2 = _two_versions(tmp_path / "a", url)
    client = s3.client()
    # what a push killed before its version document leaves behind
    client.put_object(Bucket=bucket, Key="team/blobs/" + "ab" * 16, Body=b"orphan bytes")
    client.put_object(Bucket=bucket, Key="team/blobs/" + "ab" * 16 + ".blocks", Body=b"[]")
    client.put_object(Bucket=bucket, Key="team/folders/" + "cd" * 16, Body=b"{}")
    before = set(s3.keys(bucket))
    with Catalog(tmp_path / "b") as b:
        young = b.gc_remote(url)  # default grace: 24 hours
        assert (young.blobs_removed, young.folders_removed, young.kept_young) == (0, 0, 3)
        assert set(s3.keys(bucket)) == before
        done = b.gc_remote(url, grace_hours=0)
    assert (done.versions, done.blobs_removed, done.folders_removed) == (2, 1, 1)
    assert done.bytes_freed == len(b"orphan bytes") + 2 + 2
    assert set(s3.keys(bucket)) == before - {
        "team/blobs/" + "ab" * 16,
        "team/blobs/" + "ab" * 16 + ".blocks",
        "team/folders/" + "cd" * 16,
    }
    with Catalog(tmp_path / "c") as c:  # both versions still read whole
        for vid in (v1, v2):
            c.pull(url, f"cats@{vid}")
        assert c.version(f"cats@{v1}").read_bytes("old.txt") == b"only in the first"
        assert c.version(f"cats@{v2}").read_bytes("new.txt") == b"only in the second"
    out = cli("gc", "--remote", url, "--grace", "0")
    assert "removed 0 blob(s) and 0 folder(s), 0 bytes" in out.out


def test_a_push_in_progress_holds_gc_off_and_a_gc_holds_pushes_off(s3: Any, tmp_path: Path) -> None:
    bucket = s3.bucket()
    url = f"s3://{bucket}/team"
    _v1, v2 = _two_versions(tmp_path / "a", url)
    client = s3.client()
    client.put_object(Bucket=bucket, Key="team/blobs/" + "ef" * 16, Body=b"being pushed")
    with Catalog(tmp_path / "a") as a:
        remote = a._remote(url)
        with push_ops.pushing(remote, v2):  # a push that has sent a blob, no document yet
            with pytest.raises(Conflict, match="in progress"):
                a.gc_remote(url, grace_hours=0)
            assert "team/blobs/" + "ef" * 16 in s3.keys(bucket), "the push's blob stays"
            assert "team/gc.json" not in s3.keys(bucket)
        client.put_object(Bucket=bucket, Key="team/gc.json", Body=b'{"started_at": 9e99}')
        with pytest.raises(Conflict, match=r"gc .* is running"):
            a.push(f"cats@{v2}", url)
        client.delete_object(Bucket=bucket, Key="team/gc.json")
        assert not [k for k in s3.keys(bucket) if k.startswith("team/pushes/")]
        assert a.gc_remote(url, grace_hours=0).blobs_removed == 1

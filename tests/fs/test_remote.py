"""A dataset stored in S3 (a real server on loopback), mounted for real."""

from __future__ import annotations

import errno
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from dlfs import Catalog, mountregistry
from dlfs.home import Home
from tests.fsutil import Mounter


def s3_ref(home: Path, source: Path, s3: Any) -> tuple[str, str]:
    bucket = s3.bucket()
    with Catalog(home) as cat:
        cat.create_dataset("remote", storage=f"s3://{bucket}/data")
        cat.add("remote", [source])
        return cat.publish("remote").ref, bucket


def test_an_s3_dataset_round_trips_through_the_block_cache(
    s3: Any, home: Path, source: Path, mounter: Mounter, tmp_path: Path
) -> None:
    ref, _bucket = s3_ref(home, source, s3)
    cache = tmp_path / "blocks"
    m = mounter(ref, tmp_path / "mnt", "--cache-dir", str(cache), "--cache-size", "1G")
    proc = subprocess.run(["diff", "-r", str(source), str(m.path)], capture_output=True)
    assert proc.returncode == 0, proc.stdout.decode()
    assert any(p.is_file() for p in cache.rglob("*"))  # --cache-dir is the block cache


@pytest.mark.expect_log("is unreadable")
def test_a_corrupt_s3_object_is_eio(
    s3: Any,
    home: Path,
    source: Path,
    mounter: Mounter,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DLFS_S3_TIMEOUT", "1")  # the daemon gives up on bad bytes sooner
    monkeypatch.setenv("DLFS_S3_ATTEMPT_TIMEOUT", "1")
    ref, bucket = s3_ref(home, source, s3)
    with Catalog(home) as cat:
        blob = cat.item(ref, "text/hello.txt").blob
    [key] = [k for k in s3.keys(bucket) if blob in k]
    s3.client().put_object(Bucket=bucket, Key=key, Body=b"HELLO WORLD\n")
    m = mounter(ref, tmp_path / "mnt")
    with pytest.raises(OSError) as exc:
        (m.path / "text/hello.txt").read_bytes()
    assert exc.value.errno == errno.EIO
    assert (m.path / "one.bin").read_bytes() == b"x"
    log = mountregistry.log_path(Home.at(home), m.path).read_text()
    assert f"blob {blob}" in log and "is unreadable" in log  # one line says why


def test_a_draft_of_an_s3_dataset_mounts_read_write(
    s3: Any, home: Path, source: Path, mounter: Mounter, tmp_path: Path
) -> None:
    """Files written into the draft of an S3 dataset through a read-write mount are
    read back through it (old files from S3, new ones as written), go to the bucket
    when published, and a fresh mount of the published version reads them from S3."""
    ref, bucket = s3_ref(home, source, s3)
    with Catalog(home) as cat:
        cat.create_version("remote", [ref])
    draft = mounter("remote@draft", tmp_path / "draft")
    big = bytes(range(256)) * 1024 + b"tail"  # several 64 KiB S3 blocks
    (draft.path / "written.bin").write_bytes(big)
    with open(draft.path / "text" / "hello.txt", "ab") as f:
        f.write(b"appended in the draft\n")
    (draft.path / "one.bin").unlink()
    assert (draft.path / "written.bin").read_bytes() == big
    hello = (source / "text" / "hello.txt").read_bytes() + b"appended in the draft\n"
    assert (draft.path / "text" / "hello.txt").read_bytes() == hello
    assert not (draft.path / "one.bin").exists()
    untouched = (source / "big" / "large.bin").read_bytes()
    assert (draft.path / "big" / "large.bin").read_bytes() == untouched  # from S3
    with Catalog(home) as cat:
        published = cat.publish("remote")
        new_ref = published.ref
        blobs = {published.item(p).blob for p in ("written.bin", "text/hello.txt")}
    stored = set(s3.keys(bucket))
    assert all(any(blob in key for key in stored) for blob in blobs)
    m = mounter(new_ref, tmp_path / "published", "--cache-dir", str(tmp_path / "fresh"))
    assert (m.path / "written.bin").read_bytes() == big
    assert (m.path / "text" / "hello.txt").read_bytes() == hello
    assert not (m.path / "one.bin").exists()
    assert (m.path / "text" / "hello.txt").stat().st_size == len(hello)


@pytest.mark.expect_log("remote folder .*is missing")
def test_a_version_mounted_straight_from_its_remote(
    s3: Any, home: Path, source: Path, mounter: Mounter, tmp_path: Path
) -> None:
    bucket = s3.bucket()
    url = f"s3://{bucket}/team"
    with Catalog(tmp_path / "origin") as origin:  # another machine's catalog
        origin.create_dataset("cats")
        origin.add("cats", [source])
        vid = origin.publish("cats", tags=["gold"]).id
        origin.push("cats@gold", url)
    Catalog(home).close()  # this node's catalog: it never pulls cats
    m = mounter("cats@gold", tmp_path / "mnt", "--remote", url)
    proc = subprocess.run(["diff", "-r", str(source), str(m.path)], capture_output=True)
    assert proc.returncode == 0, proc.stdout.decode()
    [record] = [r for r in mountregistry.records(Home.at(home)) if r.version == vid]
    assert record.mode == "published"
    with Catalog(home) as node:
        assert not node.datasets(), "nothing was pulled"
    # a folder object gone from the remote: EIO for that folder, never a wrong listing
    folder = next(p for p in source.iterdir() if p.is_dir())
    head = s3.client().get_object(Bucket=bucket, Key=f"team/datasets/cats/versions/{vid}.head.json")
    tree = json.loads(head["Body"].read())["version"]["root"]
    m2 = mounter("cats@gold", tmp_path / "mnt2", "--remote", url)
    assert (m2.path / "one.bin").read_bytes() == b"x"
    keys = [k for k in s3.keys(bucket, "team/folders/") if not k.endswith(tree)]
    for key in keys:
        s3.client().delete_object(Bucket=bucket, Key=key)
    with pytest.raises(OSError) as exc:
        list((m2.path / folder.name).iterdir())
    assert exc.value.errno == errno.EIO

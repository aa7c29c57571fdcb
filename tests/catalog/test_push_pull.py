"""push/pull between two catalogs (two DLFS_HOMEs) sharing one S3 server."""

from __future__ import annotations

import gzip
import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from dlfs import Catalog
from dlfs.errors import AlreadyExists, Conflict, Corrupt, NotFound, Unavailable
from dlfs.objects import blob_id, canonical_json
from dlfs.ops import versiondoc
from tests.conftest import SAMPLE, Cli, catalog_dump

BLOCK = 64 * 1024


@pytest.fixture
def two(tmp_path: Path) -> Any:
    a, b = Catalog(tmp_path / "a"), Catalog(tmp_path / "b")
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def test_push_then_pull_into_another_catalog(s3: Any, two: Any, sample: Path) -> None:
    a, b = two
    bucket = s3.bucket()
    remote = f"s3://{bucket}/team"
    big = os.urandom(2 * BLOCK + 9)
    a.create_dataset("cats", description="cat pictures", labels={"cat": 1})
    a.add("cats", [sample])
    a.set_meta("cats", "cat.jpg", [("label", "tabby")], annotations=[{"box": [1, 2, 3, 4]}])
    v0 = a.publish("cats")
    a.create_version("cats", ["cats@latest"])
    a.add_bytes("cats", "big.bin", big)
    v1 = a.publish("cats", tags=["gold"])

    pushed = a.push("cats@gold", remote)
    assert (pushed.version, pushed.uploaded, pushed.present) == (v1.id, 5, 0)
    assert pushed.tags == ["gold", "latest"]
    again = a.push("cats@gold", remote)
    assert (again.uploaded, again.present) == (0, 5), "no blob is sent twice"

    pulled = b.pull(remote, "cats@gold")
    assert pulled.version == v1.id and pulled.created_dataset
    assert pulled.storage == remote
    w1 = b.version(f"cats@{v1.id}")
    assert w1.tags == ["latest", "v0", "gold"]  # auto tags renumbered here
    assert w1.info()["parents"] == [v0.id]
    assert w1.name == v1.name
    assert [f.to_json() for f in w1.files()] == [f.to_json() for f in v1.files()]
    assert b.dataset("cats").info()["labels"] == {"cat": 1}
    assert not list(b.home.blobs.glob("??/*")), "blobs stay in S3"
    for path, data in {**SAMPLE, "big.bin": big}.items():
        assert w1.read_bytes(path) == data
    assert b.item("cats", "cat.jpg").annotations == [{"box": [1, 2, 3, 4]}]

    # the older version, by id prefix: v1 here, and latest stays on the newer one
    a.push(f"cats@{v0.id}", remote)
    older = b.pull(remote, f"cats@{v0.id[:8]}")
    assert b.version(f"cats@{older.version}").tags == ["v1"]
    assert b.version("cats@latest").id == v1.id
    # pulling what is here already changes nothing
    dump = catalog_dump(b.home.root)
    assert b.pull(remote, "cats@gold").already
    assert catalog_dump(b.home.root) == dump
    # a child of the pulled version reads the same S3 blobs
    b.create_version("cats", ["cats@gold"])
    b.add_bytes("cats", "new.txt", b"made on b")
    v2 = b.publish("cats")
    assert v2.read_bytes("big.bin") == big
    assert set(s3.keys(bucket, "team/blobs/")) >= {f"team/blobs/{f.blob}" for f in v2.files()}


def test_push_of_an_s3_dataset_to_its_own_storage_copies_nothing(
    s3: Any, two: Any, sample: Path
) -> None:
    a, b = two
    bucket = s3.bucket()
    url = f"s3://{bucket}/store"
    a.create_dataset("d", storage=url)
    a.add("d", [sample])
    a.publish("d")
    keys = set(s3.keys(bucket, "store/blobs/"))
    result = a.push("d", url)
    assert result.uploaded == 0
    assert set(s3.keys(bucket, "store/blobs/")) == keys
    pulled = b.pull(url, "d")
    assert b.version(f"d@{pulled.version}").read_bytes("train/a.jpg") == SAMPLE["train/a.jpg"]
    # and to another prefix: copied through, checked on the way
    other = a.push("d", f"s3://{bucket}/mirror")
    assert other.uploaded == 4 and other.present == 0


def test_linked_versions_travel_as_references(s3: Any, two: Any) -> None:
    a, b = two
    bucket = s3.bucket()
    s3.client().put_object(Bucket=bucket, Key="raw/x.txt", Body=b"linked bytes")
    a.link("ext", f"s3://{bucket}/raw")
    a.publish("ext")
    result = a.push("ext", f"s3://{bucket}/remote")
    assert result.uploaded == 0
    assert not s3.keys(bucket, "remote/blobs/")
    pulled = b.pull(f"s3://{bucket}/remote", "ext")
    assert pulled.storage == f"linked:s3://{bucket}/raw"
    assert b.version("ext").read_bytes("x.txt") == b"linked bytes"


def test_pull_bad_input_changes_nothing(
    s3: Any, two: Any, sample: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DLFS_S3_TIMEOUT", "1.5")  # a damaged record is fetched again until then
    monkeypatch.setenv("DLFS_S3_ATTEMPT_TIMEOUT", "0.5")
    a, b = two
    bucket = s3.bucket()
    remote = f"s3://{bucket}/r"
    a.create_dataset("d")
    a.add("d", [sample])
    with pytest.raises(Conflict, match="draft"):
        a.push("d@draft", remote)
    a.publish("d", tags=["gold"])
    a.push("d", remote)
    b.create_dataset("d")  # same name, local storage
    b.pull(remote, "d@gold", as_name="x")
    a.create_version("d", ["d@latest"])
    a.add_bytes("d", "more.txt", b"more")
    a.publish("d")
    a.tag("d@latest", ["gold"], force=True)
    a.push("d@gold", remote)
    before = catalog_dump(b.home.root)
    with pytest.raises(NotFound):
        b.pull(remote, "d@nosuchtag")
    with pytest.raises(NotFound, match="no dataset named"):
        b.pull(remote, "nope")
    with pytest.raises(Conflict, match="--as"):
        b.pull(remote, "d")
    with pytest.raises(AlreadyExists, match="--force"):
        b.pull(remote, "d@gold", as_name="x")
    assert catalog_dump(b.home.root) == before
    # a damaged record is refused
    client = s3.client()
    latest = json.loads(
        client.get_object(Bucket=bucket, Key="r/datasets/d/tags/latest.json")["Body"].read()
    )
    key = f"r/datasets/d/versions/{latest['version']}.json.gz"
    good = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    lines = gzip.decompress(good).splitlines(keepends=True)
    for n, line in enumerate(lines):
        record = json.loads(line)
        if isinstance(record, list) and record[0] == "i":
            record[4] += 1  # an item's size
            lines[n] = json.dumps(record).encode() + b"\n"
            break
    client.put_object(Bucket=bucket, Key=key, Body=gzip.compress(b"".join(lines)))
    with pytest.raises(Corrupt):
        b.pull(remote, "d", as_name="copy")
    assert catalog_dump(b.home.root) == before
    cut = gzip.decompress(good).splitlines(keepends=True)[:-2]  # no check line
    client.put_object(Bucket=bucket, Key=key, Body=gzip.compress(b"".join(cut)))
    with pytest.raises(Corrupt, match=r"cut short|damaged"):
        b.pull(remote, "d", as_name="copy")
    assert catalog_dump(b.home.root) == before
    client.put_object(Bucket=bucket, Key=key, Body=good)
    moved = b.pull(remote, "d@gold", as_name="x", force=True)
    assert "gold" in moved.tags


def test_push_pull_cli_two_homes(s3: Any, tmp_path: Path, sample: Path) -> None:
    bucket = s3.bucket()
    remote = f"s3://{bucket}/shared"
    a, b = Cli(tmp_path / "home-a"), Cli(tmp_path / "home-b")
    a("dataset", "create", "cats")
    a("add", "cats", str(sample))
    vid = a("publish", "cats", "--tag", "gold", "--json").json()["id"]  # type: ignore[index]
    pushed = a("push", "cats@gold", remote, "--json").json()
    assert pushed["version"] == vid and pushed["uploaded"] == 4  # type: ignore[index]
    pulled = b("pull", remote, "cats@gold", "--json").json()
    assert pulled["version"] == vid  # type: ignore[index]
    assert b.bytes("cat", "cats@gold", "train/deep/c.txt") == SAMPLE["train/deep/c.txt"]
    listing = b("version", "list", "cats", "--json").json()
    assert [v["id"] for v in listing] == [vid]  # type: ignore[attr-defined]
    res = b("pull", remote, "cats@nosuch", ok=False)
    assert res.code == 1 and res.err.startswith("dlfs: error: ")


def test_eight_pushes_at_once_leave_every_tag_complete_and_latest_newest(
    s3: Any, tmp_path: Path
) -> None:
    bucket = s3.bucket()
    remote = f"s3://{bucket}/team"
    home = tmp_path / "a"
    ids: list[str] = []
    with Catalog(home) as a:
        a.create_dataset("cats")
        for n in range(8):
            if n:
                a.create_version("cats", ["cats@latest"])
            a.add_bytes("cats", f"f{n}.txt", f"file {n} ".encode() * (n + 1))
            ids.append(a.publish("cats", tags=[f"t{n}"]).id)
    barrier = threading.Barrier(8)

    def push(vid: str) -> Any:
        with Catalog(home) as c:
            barrier.wait()
            return c.push(f"cats@{vid}", remote)

    with ThreadPoolExecutor(8) as pool:  # oldest last: the most chances to undo latest
        results = list(pool.map(push, reversed(ids)))
    assert sorted(r.version for r in results) == sorted(ids)
    tags = {
        k.rsplit("/", 1)[1].removesuffix(".json")
        for k in s3.keys(bucket, "team/datasets/cats/tags/")
    }
    assert tags == {"latest", *(f"t{n}" for n in range(8))}
    with Catalog(tmp_path / "b") as b:
        assert b.pull(remote, "cats@latest").version == ids[-1], "latest is the newest"
        for n in range(8):
            assert b.pull(remote, f"cats@t{n}").version == ids[n]
        for n, vid in enumerate(ids):  # every version complete: each of its files reads
            v = b.version(f"cats@{vid}")
            for k in range(n + 1):
                assert v.read_bytes(f"f{k}.txt") == f"file {k} ".encode() * (k + 1)


def test_documents_of_format_1_still_pull(s3: Any, two: Any, sample: Path) -> None:
    a, b = two
    bucket = s3.bucket()
    remote = f"s3://{bucket}/old"
    a.create_dataset("cats")
    a.add("cats", [sample])
    v = a.publish("cats")
    a.push("cats@latest", remote)
    client = s3.client()
    key = f"old/datasets/cats/versions/{v.id}.json.gz"
    doc = versiondoc.decode(client.get_object(Bucket=bucket, Key=key)["Body"].read(), v.id)
    doc["format"] = "dlfs-version/1"  # as an older dlfs wrote it: one JSON document
    body = canonical_json({"doc": doc, "check": blob_id(canonical_json(doc).encode())})
    client.put_object(Bucket=bucket, Key=key, Body=gzip.compress(body.encode()))
    pulled = b.pull(remote, "cats")
    assert pulled.version == v.id and pulled.files == len(SAMPLE)
    for path, data in SAMPLE.items():
        assert b.version(f"cats@{v.id}").read_bytes(path) == data


def test_a_push_cut_at_any_step_leaves_earlier_versions_whole(
    s3: Any, proxy: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = s3.bucket()
    remote = f"s3://{bucket}/team"
    monkeypatch.setenv("DLFS_S3_ENDPOINT", proxy.endpoint)  # every request can be spoiled
    monkeypatch.setenv("DLFS_S3_TIMEOUT", "1")
    with Catalog(tmp_path / "a") as a:
        a.create_dataset("cats")
        a.add_bytes("cats", "one.txt", b"first version")
        v1 = a.publish("cats", tags=["gold"]).id
        a.push("cats@gold", remote)
        a.create_version("cats", ["cats@latest"])
        for n in range(20):
            a.add_bytes("cats", f"new/{n}.txt", f"second {n}".encode())
        v2 = a.publish("cats", tags=["silver"]).id

        def cut(_size: int) -> None:
            raise KeyboardInterrupt  # the push dies among its blobs

        for kill in ("blobs", "folders/", "versions/", "tags/"):
            proxy.clear()
            if kill != "blobs":  # the first write of that step never lands
                proxy.fail("500", times=1000, match=kill, method="PUT")
            with pytest.raises((KeyboardInterrupt, Unavailable)):
                a.push(f"cats@{v2}", remote, progress=cut if kill == "blobs" else None)
            proxy.clear()
            with Catalog(tmp_path / f"node-{kill.strip('/')}") as node:
                for spec in ("latest", "gold", v1):
                    assert node.pull(remote, f"cats@{spec}").version == v1, (kill, spec)
                with pytest.raises(NotFound):
                    node.pull(remote, "cats@silver")
                assert node.version(f"cats@{v1}").read_bytes("one.txt") == b"first version"
        assert a.push(f"cats@{v2}", remote).tags == ["silver", "latest"], "pushed again: whole"
    with Catalog(tmp_path / "last") as node:
        assert node.pull(remote, "cats@latest").version == v2
        assert node.version(f"cats@{v2}").read_bytes("new/7.txt") == b"second 7"

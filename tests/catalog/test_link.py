"""Linked buckets: objects indexed in place, sync semantics, and reads that never return
other bytes than the ones a version recorded."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from dlfs import Catalog
from dlfs.errors import Conflict, Corrupt, InvalidInput, NotFound
from tests.conftest import Cli, catalog_dump

BLOCK = 64 * 1024


def put(s3: Any, bucket: str, key: str, data: bytes) -> None:
    s3.client().put_object(Bucket=bucket, Key=key, Body=data)


def delete(s3: Any, bucket: str, key: str) -> None:
    s3.client().delete_object(Bucket=bucket, Key=key)


def paths(cat: Catalog, ref: str) -> set[str]:
    return {f.path for f in cat.files(ref)}


def test_link_indexes_objects_in_place(s3: Any, catalog: Catalog) -> None:
    bucket = s3.bucket()
    big = os.urandom(3 * BLOCK + 1)
    objects = {
        "raw/top.txt": b"top",
        "raw/a/1.jpg": b"one",
        "raw/a/b/2.jpg": big,
        "raw/a/": b"",  # a folder marker: no item
        "raw/empty/": b"",  # an empty prefix: no folder
        "raw/bad//name.jpg": b"x",  # an empty part: skipped
        "raw/dots/../up.jpg": b"x",  # '..': skipped
        "rawhide/other.jpg": b"not under the prefix",
        "elsewhere/z.jpg": b"not under the prefix",
    }
    for key, data in objects.items():
        put(s3, bucket, key, data)
    before = set(s3.keys(bucket))
    result = catalog.link("photos", f"s3://{bucket}/raw")
    assert (result.added, result.skipped, result.folder_markers) == (3, 2, 2)
    assert set(s3.keys(bucket)) == before, "nothing written to the bucket"
    assert not list(catalog.home.blobs.glob("??/*")), "nothing copied locally"
    assert paths(catalog, "photos@draft") == {"top.txt", "a/1.jpg", "a/b/2.jpg"}
    assert {e.name for e in catalog.ls("photos@draft")} == {"top.txt", "a"}
    info = catalog.dataset("photos").info()
    assert info["kind"] == "linked" and info["storage"] == f"linked:s3://{bucket}/raw"
    draft = catalog.draft("photos")
    assert draft.read_bytes("a/b/2.jpg") == big
    store = catalog.store(info["storage"])
    blob = draft.item("a/b/2.jpg").blob
    assert store.read(blob, BLOCK - 2, BLOCK + 4) == big[BLOCK - 2 : 2 * BLOCK + 2]
    last_modified = s3.keys(bucket)["raw/a/1.jpg"]["LastModified"].timestamp()
    assert draft.item("a/1.jpg").mtime == pytest.approx(last_modified)
    v = catalog.publish("photos")
    assert v.read_bytes("top.txt") == b"top"


def test_sync_adds_removes_and_renews(s3: Any, catalog: Catalog) -> None:
    bucket = s3.bucket()
    put(s3, bucket, "p/keep.txt", b"keep")
    put(s3, bucket, "p/change.txt", b"old")
    put(s3, bucket, "p/gone/only.txt", b"bye")
    put(s3, bucket, "p/old-name.txt", b"moving")
    catalog.link("d", f"s3://{bucket}/p")
    catalog.set_meta("d", "keep.txt", [("label", "cat")])
    before = {p: catalog.item("d@draft", p) for p in paths(catalog, "d@draft")}

    put(s3, bucket, "p/change.txt", b"new content")
    delete(s3, bucket, "p/gone/only.txt")
    put(s3, bucket, "p/new-name.txt", b"moving")
    delete(s3, bucket, "p/old-name.txt")
    put(s3, bucket, "p/added/x.txt", b"fresh")
    result = catalog.sync("d")
    assert (result.added, result.removed, result.changed, result.unchanged) == (2, 2, 1, 1)
    assert paths(catalog, "d@draft") == {"keep.txt", "change.txt", "new-name.txt", "added/x.txt"}
    assert "gone" not in {e.name for e in catalog.ls("d@draft")}, "emptied folder pruned"
    keep = catalog.item("d@draft", "keep.txt")
    assert keep == before["keep.txt"] and keep.metadata == {"label": "cat"}
    changed = catalog.item("d@draft", "change.txt")
    assert changed.origin != before["change.txt"].origin and changed.id != before["change.txt"].id
    assert catalog.draft("d").read_bytes("change.txt") == b"new content"
    renamed = catalog.item("d@draft", "new-name.txt")
    assert renamed.origin != before["old-name.txt"].origin
    # a second sync finds nothing to do
    again = catalog.sync("d")
    assert (again.added, again.removed, again.changed, again.unchanged) == (0, 0, 0, 4)


def test_changed_object_is_an_error_never_other_bytes(s3: Any, catalog: Catalog) -> None:
    bucket = s3.bucket()
    put(s3, bucket, "p/small.txt", b"original")
    big = os.urandom(2 * BLOCK + 3)
    put(s3, bucket, "p/big.bin", big)
    catalog.link("d", f"s3://{bucket}/p")
    v = catalog.publish("d")
    assert v.read_bytes("small.txt") == b"original"
    store = catalog.store(f"linked:s3://{bucket}/p")
    small = v.item("small.txt").blob
    assert store.has(small)
    put(s3, bucket, "p/small.txt", b"tampered")
    assert not store.has(small)
    put(s3, bucket, "p/big.bin", os.urandom(len(big)))
    fresh = Catalog(catalog.home.root)  # a new process: nothing cached in memory
    try:
        with pytest.raises(Corrupt, match="changed after it was indexed"):
            fresh.version(v.ref).read_bytes("big.bin")
        # what was read before comes from the cache: the recorded bytes, still
        assert fresh.version(v.ref).read_bytes("small.txt") == b"original"
        delete(s3, bucket, "p/big.bin")
        with pytest.raises(Corrupt, match="deleted"):
            fresh.version(v.ref).read_bytes("big.bin")
    finally:
        fresh.close()


def test_versioned_bucket_reads_the_recorded_version(s3: Any, catalog: Catalog) -> None:
    bucket = s3.bucket(versioned=True)
    put(s3, bucket, "p/a.txt", b"version one")
    big = os.urandom(2 * BLOCK + 5)
    put(s3, bucket, "p/big.bin", big)
    result = catalog.link("d", f"s3://{bucket}/p")
    assert result.versioned
    v1 = catalog.publish("d")
    put(s3, bucket, "p/a.txt", b"version two")
    put(s3, bucket, "p/big.bin", b"small now")
    delete(s3, bucket, "p/big.bin")
    catalog.create_version("d", ["d@latest"])
    catalog.sync("d")
    v2 = catalog.publish("d")
    assert paths(catalog, v2.ref) == {"a.txt"}
    assert v2.read_bytes("a.txt") == b"version two"
    assert v1.read_bytes("a.txt") == b"version one"
    assert v1.read_bytes("big.bin") == big


def test_linked_dataset_bad_input_changes_nothing(
    s3: Any, catalog: Catalog, home: Path, sample: Path
) -> None:
    bucket = s3.bucket()
    put(s3, bucket, "p/a.txt", b"a")
    catalog.link("d", f"s3://{bucket}/p")
    catalog.create_dataset("plain")
    before = catalog_dump(home)
    with pytest.raises(Conflict, match="dlfs sync"):
        catalog.add("d", [sample])
    with pytest.raises(InvalidInput, match="not linked"):
        catalog.sync("plain")
    with pytest.raises(Conflict):
        catalog.link("plain", f"s3://{bucket}/p")
    with pytest.raises(Conflict):
        catalog.link("d", f"s3://{bucket}/other")
    with pytest.raises(NotFound, match="no such bucket"):
        catalog.link("e", "s3://no-such-bucket-here/p")
    with pytest.raises(InvalidInput):
        catalog.link("f", "s3:/x")
    assert catalog_dump(home) == before
    assert set(s3.keys(bucket)) == {"p/a.txt"}


def test_link_and_sync_cli(s3: Any, cli: Cli, home: Path) -> None:
    bucket = s3.bucket()
    put(s3, bucket, "imgs/x/1.jpg", b"one")
    res = cli("link", "pics", f"s3://{bucket}/imgs", "--json").json()
    assert res["added"] == 1  # type: ignore[index]
    assert cli.bytes("cat", "pics@draft", "x/1.jpg") == b"one"
    put(s3, bucket, "imgs/x/2.jpg", b"two")
    put(s3, bucket, "imgs/x/", b"")  # a folder marker, as S3 consoles make them
    out = cli("sync", "pics").out
    assert "1 added" in out and "1 folder marker(s) skipped" in out
    assert json.loads(cli("ls", "pics@draft", "x", "--json").out)[1]["name"] == "2.jpg"
    before = catalog_dump(home)
    res2 = cli("add", "pics", str(home), ok=False)
    assert res2.code == 1 and res2.err.startswith("dlfs: error: ")
    assert catalog_dump(home) == before

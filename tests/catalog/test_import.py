"""``dlfs add``: folders keep their structure, identical bytes are stored once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dlfs import Catalog
from dlfs.errors import IsADirectory, NotFound
from tests.conftest import SAMPLE, blob_files, make_tree


def test_a_folder_brings_its_contents_and_a_file_lands_under_its_name(
    catalog: Catalog, sample: Path, tmp_path: Path
) -> None:
    catalog.create_dataset("cats")
    catalog.add("cats", [sample], to="imported")
    single = make_tree(tmp_path / "one", {"solo.txt": b"solo"}) / "solo.txt"
    catalog.add("cats", [single])
    paths = {f.path for f in catalog.draft("cats").files()}
    assert paths == {f"imported/{p}" for p in SAMPLE} | {"solo.txt"}
    for rel, data in SAMPLE.items():
        assert catalog.draft("cats").read_bytes(f"imported/{rel}") == data


def test_identical_bytes_are_stored_once(catalog: Catalog, sample: Path, home: Path) -> None:
    catalog.create_dataset("cats")
    catalog.add("cats", [sample])
    assert len(blob_files(home)) == len(set(SAMPLE.values()))
    catalog.add("cats", [sample], to="again")
    assert len(blob_files(home)) == len(set(SAMPLE.values()))
    for blob in blob_files(home):
        path = home / "blobs" / blob[:2] / blob
        assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert not list((home / "blobs" / ".staging").glob("*/*"))


def test_re_adding_a_path_keeps_lineage_metadata_and_annotations(
    catalog: Catalog, tmp_path: Path
) -> None:
    catalog.create_dataset("cats")
    catalog.add("cats", [make_tree(tmp_path / "v1", {"a.jpg": b"old"})])
    catalog.set_meta("cats", "a.jpg", [("split", "train")], [{"label": "cat"}])
    old = catalog.draft("cats").item("a.jpg")
    result = catalog.add("cats", [make_tree(tmp_path / "v2", {"a.jpg": b"new bytes"})])
    new = catalog.draft("cats").item("a.jpg")
    assert result.replaced == 1
    assert new.origin == old.origin and new.blob != old.blob
    assert new.metadata == {"split": "train"} and new.annotations == [{"label": "cat"}]
    assert catalog.draft("cats").read_bytes("a.jpg") == b"new bytes"


def test_large_files_stream_in_chunks(catalog: Catalog, tmp_path: Path) -> None:
    data = os.urandom(3 << 20) + b"tail"
    src = make_tree(tmp_path / "big", {"big.bin": data})
    catalog.create_dataset("big")
    catalog.add("big", [src])
    assert catalog.draft("big").read_bytes("big.bin") == data


def test_many_files_in_many_folders(catalog: Catalog, tmp_path: Path) -> None:
    files = {f"f{d}/s{d % 3}/{i}.txt": f"{d}/{i}".encode() for d in range(12) for i in range(30)}
    catalog.create_dataset("many")
    result = catalog.add("many", [make_tree(tmp_path / "many", files)])
    assert result.files == len(files)
    got = {f.path: catalog.draft("many").read_bytes(f.path) for f in catalog.draft("many").files()}
    assert got == files


def test_symlinks_are_kept_as_symlinks_and_special_files_skipped(
    catalog: Catalog, tmp_path: Path
) -> None:
    src = make_tree(tmp_path / "src", {"real/a.txt": b"a", "b.txt": b"b"})
    os.symlink(src / "real", src / "linkdir")
    os.symlink(src / "b.txt", src / "linkfile")
    os.mkfifo(src / "fifo")
    catalog.create_dataset("cats")
    catalog.add("cats", [src])
    paths = {f.path for f in catalog.draft("cats").files()}
    assert paths == {"real/a.txt", "b.txt", "linkfile", "linkdir"}
    links = {e.name: e.link for e in catalog.ls("cats@draft") if e.link is not None}
    assert links == {"linkdir": str(src / "real"), "linkfile": str(src / "b.txt")}


def test_add_refuses_to_put_a_file_over_a_folder(catalog: Catalog, tmp_path: Path) -> None:
    catalog.create_dataset("cats")
    catalog.add("cats", [make_tree(tmp_path / "a", {"x/y": b"y"})])
    with pytest.raises(IsADirectory, match="a folder exists"):
        catalog.add("cats", [make_tree(tmp_path / "b", {"x": b"file"}) / "x"])
    with pytest.raises(NotFound, match="no such file"):
        catalog.add("cats", [tmp_path / "missing"])
    assert {f.path for f in catalog.draft("cats").files()} == {"x/y"}


def test_large_blobs_get_a_block_manifest_that_fsck_checks(
    catalog: Catalog, tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dlfs.stores.manifest import Manifest, hash_file_blocks

    block = 64 * 1024
    monkeypatch.setattr("dlfs.stores.local.BLOCK_SIZE", block)
    large = os.urandom(3 * block + 5)
    tree = make_tree(tmp_path / "src", {"large.bin": large, "small.bin": b"s" * block})
    catalog.create_dataset("big")
    catalog.add("big", [tree])
    blobs = {f.path: f.blob for f in catalog.draft("big").files()}
    shard = home / "blobs" / blobs["large.bin"][:2]
    manifest = Manifest.decode(
        blobs["large.bin"], (shard / f"{blobs['large.bin']}.blocks").read_bytes()
    )
    whole, hashes = hash_file_blocks(shard / blobs["large.bin"], block)
    assert (manifest.size, manifest.block_size, manifest.hashes) == (
        len(large),
        block,
        tuple(hashes),
    )
    assert whole == blobs["large.bin"]
    small = home / "blobs" / blobs["small.bin"][:2] / f"{blobs['small.bin']}.blocks"
    assert not small.exists()  # one block: its id is its hash
    assert blob_files(home) == {*blobs.values(), f"{blobs['large.bin']}.blocks"}
    assert catalog.fsck() == []
    forged = Manifest(manifest.blob, manifest.size, block, (hashes[1], *hashes[1:]))
    (shard / f"{blobs['large.bin']}.blocks").write_bytes(forged.encode())
    assert catalog.fsck() == [
        f"the block manifest of blob {blobs['large.bin']} does not match its bytes"
    ]

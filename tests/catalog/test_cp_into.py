"""``dlfs cp SRC_REF:PATH... DST_REF:FOLDER``: items of other datasets into a draft's
folder as pointers, lineage kept (Dataloop's "clone items to a folder")."""

from __future__ import annotations

from pathlib import Path

import pytest

from dlfs import Catalog
from dlfs.errors import (
    AlreadyExists,
    Conflict,
    InvalidInput,
    NotADirectory,
    NotFound,
    ReadOnly,
)
from dlfs.versions import create_dataset
from tests.conftest import SAMPLE, Cli, blob_files, catalog_dump


def test_items_of_other_versions_land_in_a_folder_as_pointers(
    catalog: Catalog, sample: Path, home: Path
) -> None:
    catalog.create_dataset("cats")
    catalog.add("cats", [sample])
    catalog.publish("cats")
    catalog.create_dataset("pool")
    catalog.add_bytes("pool", "keep.txt", b"kept")
    catalog.add_bytes("pool", "x.txt", b"x")
    blobs = blob_files(home)
    placed = catalog.cp_into(
        ["cats@v0:cat.jpg", "cats:train/deep", "pool@draft:x.txt"], "pool:from/cats"
    )
    assert placed == ["from/cats/cat.jpg", "from/cats/deep", "from/cats/x.txt"]
    assert blob_files(home) == blobs, "no byte is copied"
    src = catalog.version("cats@v0")
    got = {f.path: f for f in catalog.draft("pool").files()}
    assert got["from/cats/cat.jpg"].id == src.item("cat.jpg").id, "the same item: lineage kept"
    assert got["from/cats/deep/c.txt"].origin == src.item("train/deep/c.txt").origin
    assert catalog.draft("pool").read_bytes("from/cats/cat.jpg") == SAMPLE["cat.jpg"]
    assert catalog.version("cats@v0").info()["files"] == 5, "the source is unchanged"
    # a later merge treats the copy as the source's item; --new-lineage makes new ones
    catalog.cp_into(["cats:val"], "pool:fresh", new_lineage=True)
    fresh = catalog.draft("pool").item("fresh/val/" + _first(catalog, "cats", "val"))
    assert fresh.origin != src.item("val/" + _first(catalog, "cats", "val")).origin


def _first(catalog: Catalog, ref: str, folder: str) -> str:
    return catalog.ls(ref, folder)[0].name


@pytest.mark.parametrize(
    ("sources", "dest", "error"),
    [
        (["cats@v0:nosuch.jpg"], "pool:in", NotFound),
        (["cats@v0:cat.jpg", "cats@v0:cat.jpg"], "pool:in", AlreadyExists),
        (["cats@v0:"], "pool:in", InvalidInput),
        (["cats@v0"], "pool:in", InvalidInput),
        (["nosuch:cat.jpg"], "pool:in", NotFound),
        (["cats@v0:cat.jpg"], "cats@v0:in", ReadOnly),
        (["cats@v0:cat.jpg"], "pool:keep.txt", NotADirectory),
        (["cats@v0:cat.jpg"], "remote:in", Conflict),
    ],
)
def test_bad_copies_change_nothing(
    catalog: Catalog, sample: Path, home: Path, sources: list[str], dest: str, error: type
) -> None:
    catalog.create_dataset("cats")
    catalog.add("cats", [sample])
    catalog.publish("cats")
    catalog.create_dataset("pool")
    catalog.add_bytes("pool", "keep.txt", b"kept")
    with catalog.db.transaction():  # a dataset in another storage (no server needed)
        create_dataset(catalog.db, "remote", storage="s3://elsewhere/p")
    before = catalog_dump(home)
    with pytest.raises(error):
        catalog.cp_into(sources, dest)
    assert catalog_dump(home) == before


def test_cp_between_datasets_on_the_cli(cli: Cli, sample: Path, home: Path) -> None:
    cli("dataset", "create", "cats")
    cli("add", "cats", str(sample))
    cli("publish", "cats")
    cli("dataset", "create", "pool")
    out = cli("cp", "cats@v0:cat.jpg", "cats:train", "pool:imported").out
    assert out.splitlines() == ["copied imported/cat.jpg", "copied imported/train"]
    assert cli.bytes("cat", "pool@draft", "imported/train/a.jpg") == SAMPLE["train/a.jpg"]
    before = catalog_dump(home)
    res = cli("cp", "cats@v0:cat.jpg", "pool:imported", ok=False)
    assert (
        res.code == 1
        and res.err == "dlfs: error: already exists: imported/cat.jpg in pool:imported\n"
    )
    assert catalog_dump(home) == before

"""The Python API as a script or notebook uses it: handles, file objects, listing
datasets by their metadata, the exception tree. (Mounting: tests/fs/test_context_manager.py.)
"""

from __future__ import annotations

import inspect
import io
from pathlib import Path
from typing import Any

import pytest

import dlfs
from dlfs import Catalog
from tests.conftest import SAMPLE, Cli, catalog_dump


@pytest.fixture
def cats(catalog: Catalog, sample: Path) -> dlfs.Version:
    """Dataset ``cats`` with ``sample`` published as v0 (tagged ``gold``)."""
    ds = catalog.create_dataset("cats", description="cat pictures", tags=["pets"])
    ds.add(sample)
    return ds.publish(tags=["gold"], name="first")


# -- the public surface -----------------------------------------------------------------


def test_the_public_surface_is_exported_and_typed() -> None:
    for name in dlfs.__all__:
        assert hasattr(dlfs, name), name
    assert (Path(dlfs.__file__).parent / "py.typed").exists()
    # Every public method and function is annotated.
    for obj in (dlfs.Catalog, dlfs.Dataset, dlfs.Version, dlfs.mount):
        members = [obj] if callable(obj) and not isinstance(obj, type) else vars(obj).values()
        for fn in members:
            if callable(fn) and not getattr(fn, "__name__", "_").startswith("_"):
                signature = inspect.signature(fn)
                assert signature.return_annotation is not inspect.Signature.empty, fn
                for p in list(signature.parameters.values())[1:]:
                    if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and p.name != "self":
                        assert p.annotation is not p.empty, f"{fn.__qualname__}({p.name})"


def test_exceptions_form_one_hierarchy() -> None:
    errors = [getattr(dlfs, n) for n in dlfs.__all__ if n[0].isupper()]
    errors = [e for e in errors if isinstance(e, type) and issubclass(e, Exception)]
    assert {e.__name__ for e in errors} >= {
        "DlfsError",
        "NotFound",
        "Ambiguous",
        "AlreadyExists",
        "InvalidInput",
        "ReadOnly",
        "Conflict",
        "Corrupt",
        "Unavailable",
    }
    assert all(issubclass(e, dlfs.DlfsError) for e in errors)
    for sub in (dlfs.NotEmpty, dlfs.NotADirectory, dlfs.IsADirectory):
        assert issubclass(sub, dlfs.Conflict)


def test_a_caller_catches_one_base_class(catalog: Catalog) -> None:
    with pytest.raises(dlfs.DlfsError):
        catalog.version("nope@v0")
    with pytest.raises(dlfs.NotFound, match="no dataset named 'nope'"):
        catalog.dataset("nope")


# -- datasets ---------------------------------------------------------------------------


def test_create_dataset_and_its_properties(catalog: Catalog) -> None:
    ds = catalog.create_dataset(
        "cats", description="cat pictures", tags=["pets"], labels={"labels": ["cat"]}
    )
    assert ds == catalog.dataset("cats") and ds.name == "cats"
    assert (ds.description, ds.tags, ds.labels, ds.storage, ds.kind) == (
        "cat pictures",
        ["pets"],
        {"labels": ["cat"]},
        "local",
        "plain",
    )
    assert ds.latest is None and ds.metadata == {}
    assert catalog.create_dataset("cats", exist_ok=True) == ds
    with pytest.raises(dlfs.AlreadyExists):
        catalog.create_dataset("cats")


@pytest.fixture
def table(catalog: Catalog) -> Catalog:
    """Four datasets with custom metadata, as in Dataloop's dataset table."""
    rows = {
        "ants": {"owner": "ann", "score": 0.5, "stage": {"name": "raw"}},
        "bees": {"owner": "bob", "score": 0.9},
        "cats": {"owner": "ann", "score": 0.7, "stage": {"name": "gold"}},
        "dogs": {"owner": "cid"},
    }
    for name, meta in rows.items():
        ds = catalog.create_dataset(name, tags=["pets"] if name in ("cats", "dogs") else [])
        ds.set_metadata(list(meta.items()))
    return catalog


def names(datasets: list[dlfs.Dataset]) -> list[str]:
    return [d.name for d in datasets]


def test_datasets_are_listed_by_name(table: Catalog) -> None:
    assert names(table.datasets()) == ["ants", "bees", "cats", "dogs"]


def test_datasets_filtered_by_metadata_tags_and_predicates(table: Catalog) -> None:
    assert names(table.datasets(where={"metadata.owner": "ann"})) == ["ants", "cats"]
    assert names(table.datasets(where={"metadata.stage.name": "gold"})) == ["cats"]
    assert names(table.datasets(where={"metadata.owner": "ann", "tags": "pets"})) == ["cats"]
    assert names(table.datasets(where={"metadata.score": None})) == ["dogs"]
    over = table.datasets(where={"metadata.score": lambda s: s is not None and s > 0.6})
    assert names(over) == ["bees", "cats"]
    assert names(table.datasets(where=lambda ds: ds.metadata.get("owner") == "bob")) == ["bees"]
    # JSON equality: a number never equals a string.
    assert table.datasets(where={"metadata.score": "0.5"}) == []


def test_datasets_sorted_by_metadata(table: Catalog) -> None:
    assert names(table.datasets(sort="metadata.score")) == ["ants", "cats", "bees", "dogs"]
    # Descending; a dataset without the field still comes last.
    assert names(table.datasets(sort="-metadata.score")) == ["bees", "cats", "ants", "dogs"]
    # Ties broken by the next key, then by name.
    assert names(table.datasets(sort=["metadata.owner", "-metadata.score"])) == [
        "cats",
        "ants",
        "bees",
        "dogs",
    ]
    assert names(table.datasets(where={"tags": "pets"}, sort="-name")) == ["dogs", "cats"]


def test_an_unknown_field_is_a_clear_error(table: Catalog) -> None:
    with pytest.raises(dlfs.InvalidInput, match=r"unknown dataset field 'owner'.*metadata\.KEY"):
        table.datasets(where={"owner": "ann"})
    with pytest.raises(dlfs.InvalidInput, match="unknown dataset field 'score'"):
        table.datasets(sort="-score")


def test_dataset_list_filters_and_sorts_on_the_command_line(table: Catalog, cli: Cli) -> None:
    out = cli("dataset", "list", "--where", 'metadata.owner="ann"', "--sort", "-metadata.score")
    assert [line.split()[0] for line in out.out.splitlines()[1:]] == ["cats", "ants"]
    res = cli("dataset", "list", "--sort", "owner", ok=False)
    assert res.code == 1 and res.err.startswith("dlfs: error: unknown dataset field")


# -- drafts, publishing, versions -----------------------------------------------------------


def test_add_paths_and_bytes_with_metadata(catalog: Catalog, sample: Path) -> None:
    ds = catalog.create_dataset("cats")
    draft = ds.draft()
    result = draft.add(sample / "train", to="train", metadata={"split": "train"})
    assert result.files == 3
    draft.add(b"a,b\n1,2\n", to="tables/t.csv", annotations=[{"label": "table"}])
    draft.add(sample / "cat.jpg")
    assert draft.item("train/deep/c.txt").metadata == {"split": "train"}
    assert draft.item("tables/t.csv").annotations == [{"label": "table"}]
    assert draft.item("cat.jpg").metadata == {}
    origin = draft.item("cat.jpg").origin
    draft.add(b"new bytes", to="cat.jpg")  # replaces the bytes, keeps the lineage
    assert draft.item("cat.jpg").origin == origin
    assert draft.read_bytes("cat.jpg") == b"new bytes"


def test_set_meta_returns_the_updated_item_on_a_first_edit(
    catalog: Catalog, cats: dlfs.Version
) -> None:
    # A child draft shares its parent's folders until the first change re-points them.
    draft = catalog.dataset("cats").create_version(parents=[cats.ref])
    item = draft.set_meta("train/a.jpg", annotations=[{"label": "cat"}])
    assert item.annotations == [{"label": "cat"}]
    assert draft.item("train/a.jpg") == item


def test_invalid_metadata_changes_nothing(catalog: Catalog, sample: Path, home: Path) -> None:
    catalog.create_dataset("cats")
    before = catalog_dump(home)
    with pytest.raises(dlfs.InvalidInput):
        catalog.dataset("cats").add(sample, metadata=["not", "an", "object"])  # type: ignore[arg-type]
    assert catalog_dump(home) == before


def test_publish_snapshot_and_versions(catalog: Catalog, cats: dlfs.Version) -> None:
    ds = catalog.dataset("cats")
    assert cats.state == "published" and cats.name == "first"
    assert cats.tags == ["latest", "v0", "gold"] and ds.latest == cats
    assert ds.version("gold") == catalog.version("cats@v0") == cats
    with pytest.raises(dlfs.Conflict, match="already published"):
        cats.publish()
    child = ds.create_version(parents=["cats@v0"], name="cleanup")
    assert child.state == "draft" and child.parents == [cats.id]
    child.rm("cat.jpg")
    v1, current = ds.snapshot(comment="without the cat", child_metadata={"round": 2})
    assert v1.tags == ["latest", "v1"] and v1.comment == "without the cat"
    assert current.name == "Current" and current.metadata == {"round": 2}
    assert ds.versions(published=True) == [cats, v1]
    assert ds.versions(drafts=True) == [current]
    assert [e["id"] for e in ds.log()] == [cats.id, v1.id, current.id]


def test_draft_edits_through_the_handle(catalog: Catalog, cats: dlfs.Version) -> None:
    draft = catalog.dataset("cats").create_version(parents=[cats.ref])
    draft.mkdir("extra/deep", parents=True)
    draft.mv("cat.jpg", "extra")
    draft.cp(["train/a.jpg", "train/b.jpg"], "extra/deep")
    draft.rm("val", recursive=True)
    item = draft.set_meta("extra/cat.jpg", score=0.9, split="test")
    assert item.metadata == {"score": 0.9, "split": "test"}
    draft.set_meta("extra/cat.jpg", annotations=[{"label": "cat"}])
    v1 = draft.publish()
    paths = [f.path for f in v1.files()]
    assert paths == [
        "extra/cat.jpg",
        "extra/deep/a.jpg",
        "extra/deep/b.jpg",
        "train/a.jpg",
        "train/b.jpg",
        "train/deep/c.txt",
    ]
    assert v1.item("extra/cat.jpg").annotations == [{"label": "cat"}]
    assert v1.item("extra/cat.jpg").metadata["split"] == "test"
    with pytest.raises(dlfs.ReadOnly):
        v1.mkdir("nope")
    scratch = catalog.dataset("cats").create_version(name="scratch")
    scratch.delete()
    with pytest.raises(dlfs.NotFound):
        catalog.version("cats@scratch")


# -- reading --------------------------------------------------------------------------------


def test_open_reads_verified_bytes_like_a_file(cats: dlfs.Version) -> None:
    with cats.open("train/b.jpg") as f:
        assert isinstance(f, io.BufferedIOBase) and isinstance(f, dlfs.VersionFile)
        assert f.readable() and f.seekable() and not f.writable()
        assert f.size == 7000 and f.path == "train/b.jpg" and f.mode == "rb"
        assert f.read(3) == b"BBB" and f.tell() == 3
        f.seek(-10, io.SEEK_END)
        assert f.read() == b"B" * 10 and f.read() == b""
        f.seek(0)
        assert f.read() == SAMPLE["train/b.jpg"]
    assert f.closed
    with cats.open("train/deep/c.txt") as f:
        assert f.readlines() == [b"deep file\n"]


def test_open_refuses_folders_missing_paths_and_corrupt_blobs(
    cats: dlfs.Version, home: Path
) -> None:
    with pytest.raises(dlfs.IsADirectory):
        cats.open("train")
    with pytest.raises(dlfs.NotFound, match="no such file or folder: train/zzz"):
        cats.open("train/zzz")
    blob = cats.item("cat.jpg").blob
    path = home / "blobs" / blob[:2] / blob
    path.chmod(0o600)
    path.write_bytes(b"meow" * 999 + b"woof")
    with pytest.raises(dlfs.Corrupt, match="do not match its hash"):
        cats.open("cat.jpg")
    path.unlink()
    with pytest.raises(dlfs.NotFound, match="missing"):
        cats.open("cat.jpg")


def test_files_items_stat_and_exists(cats: dlfs.Version) -> None:
    assert [f.path for f in cats.files()] == sorted(SAMPLE)
    item = cats.item("train/a.jpg")
    assert (item.size, item.metadata, item.annotations) == (5000, {}, [])
    assert item.blob == cats.item("val/a.jpg").blob  # same bytes, one blob
    assert cats.stat("").is_dir and cats.stat("train").is_dir
    assert cats.stat("train/a.jpg").size == 5000
    assert cats.exists("train/deep") and not cats.exists("train/nope")
    assert not cats.exists("cat.jpg/below")


# -- clone, merge, diff -------------------------------------------------------------------


def test_clone_merge_and_diff_with_handles(catalog: Catalog, cats: dlfs.Version) -> None:
    team_a = catalog.dataset("cats").clone("team-a", publish=True)
    team_b = cats.clone("team-b")
    team_b.set_meta("train/a.jpg", annotations=[{"label": "ear"}])
    team_b = team_b.publish()
    jpgs = cats.clone("jpgs", include=["**/*.jpg"], where='path != "cat.jpg"', publish=True)
    assert [f.path for f in jpgs.files()] == ["train/a.jpg", "train/b.jpg", "val/a.jpg"]
    merged = catalog.merge("cats-all", [team_a, team_b], publish=True)
    assert merged.item("train/a.jpg").annotations == [{"label": "ear"}]
    diff = cats.diff(merged)
    assert [(c.path, c.changes) for c in diff.modified] == [("train/a.jpg", ("annotations",))]
    assert catalog.diff("cats@v0", merged).modified == diff.modified
    assert cats.diff(cats).empty


def test_open_reads_a_blob_stored_in_s3_by_checked_blocks(
    s3: Any, catalog: Catalog, tmp_path: Path
) -> None:
    """A file larger than one block (64 KiB in the tests) is read by ranges, every
    block checked; the fsspec filesystem reads it the same way."""
    big = bytes(range(256)) * 1024 + b"tail"  # 4 blocks and a bit
    ds = catalog.create_dataset("remote", storage=f"s3://{s3.bucket()}/data")
    ds.add(big, to="big.bin")
    version = ds.publish()
    with version.open("big.bin") as f:
        f.seek(65536 * 2 + 10)
        assert f.read(100) == big[65536 * 2 + 10 : 65536 * 2 + 110]
        f.seek(-4, io.SEEK_END)
        assert f.read() == b"tail"
        f.seek(0)
        assert f.read() == big
    from dlfs.fsspec import DlfsFileSystem

    fs = DlfsFileSystem(home=catalog.home.root)
    assert fs.cat_file(f"{version.ref}/big.bin", 70000, 70010) == big[70000:70010]

"""Datasets built from manifests (JSON Lines, CSV, COCO) and versions written back as
manifests: round trips, COCO's mapping, bad rows refused with their line and nothing
changed, dry runs, linked datasets."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from dlfs import Catalog
from dlfs.errors import Conflict, Corrupt, InvalidInput, NotFound, TooLarge
from dlfs.jsonvalues import MAX_METADATA
from tests.conftest import blob_files, catalog_dump, make_tree

FILES = {
    "img/cat/1.jpg": b"\xff\xd8 cat one" * 50,
    "img/cat/2.jpg": b"\xff\xd8 cat two" * 70,
    "img/dog/3.jpg": b"\xff\xd8 dog" * 40,
    "notes.txt": b"no labels here\n",
}


def rows() -> list[dict[str, Any]]:
    """A manifest's rows over :data:`FILES`: given paths, default paths, values."""
    return [
        {
            "src": "img/cat/1.jpg",
            "path": "train/cat/1.jpg",
            "metadata": {"split": "train", "camera": {"iso": 800}},
            "annotations": [{"label": "cat", "box": [1, 2, 30, 40]}],
        },
        {
            "src": "img/cat/2.jpg",
            "path": "train/cat/2.jpg",
            "metadata": {"split": "train"},
            "annotations": [{"label": "cat"}, {"label": "toy", "score": 0.5}],
        },
        {"src": "img/dog/3.jpg", "metadata": {"split": "val"}, "annotations": ["dog"]},
        {"src": "notes.txt"},
    ]


def write_jsonl(path: Path, items: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in items))
    return path


def write_csv(path: Path, items: list[dict[str, Any]]) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["src", "path", "metadata", "annotations"])
        for r in items:
            w.writerow(
                [
                    r["src"],
                    r.get("path", ""),
                    json.dumps(r["metadata"]) if "metadata" in r else "",
                    json.dumps(r["annotations"]) if "annotations" in r else "",
                ]
            )
    return path


def content(cat: Catalog, ref: str) -> dict[str, tuple[Any, Any, bytes]]:
    """``{path: (metadata, annotations, bytes)}`` of a version."""
    v = cat.version(ref) if "@draft" not in ref else cat.draft(ref)
    return {f.path: (f.metadata, f.annotations, v.read_bytes(f.path)) for f in cat.files(ref)}


@pytest.fixture
def src(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "src", FILES)


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_import_then_export_round_trips(
    catalog: Catalog, src: Path, tmp_path: Path, fmt: str
) -> None:
    writer = write_jsonl if fmt == "jsonl" else write_csv
    manifest = writer(src / f"manifest.{fmt}", rows())
    catalog.create_dataset("pets")
    result = catalog.import_manifest("pets", manifest)
    assert (result.rows, len(result.added), result.replaced) == (4, 4, [])
    v1 = catalog.publish("pets")
    first = content(catalog, v1.ref)
    assert first == {
        "train/cat/1.jpg": (
            rows()[0]["metadata"],
            rows()[0]["annotations"],
            FILES["img/cat/1.jpg"],
        ),
        "train/cat/2.jpg": (
            rows()[1]["metadata"],
            rows()[1]["annotations"],
            FILES["img/cat/2.jpg"],
        ),
        "img/dog/3.jpg": ({"split": "val"}, ["dog"], FILES["img/dog/3.jpg"]),  # default path
        "notes.txt": ({}, [], FILES["notes.txt"]),
    }

    out = tmp_path / "out"
    exported = catalog.export_manifest(v1.ref, out / f"back.{fmt}", with_files=out / "files")
    assert (exported.files, exported.format) == (4, fmt)
    assert exported.copied_bytes == sum(len(b) for b in FILES.values())
    catalog.create_dataset("again")
    catalog.import_manifest("again", out / f"back.{fmt}")
    assert content(catalog, "again@draft") == first


def test_export_src_is_the_path_and_reads_back_beside_a_copy(
    catalog: Catalog, src: Path, tmp_path: Path
) -> None:
    catalog.create_dataset("pets")
    catalog.import_manifest("pets", write_jsonl(src / "m.jsonl", rows()))
    v1 = catalog.publish("pets")
    catalog.export_manifest(v1.ref, tmp_path / "m.jsonl")
    lines = [json.loads(x) for x in (tmp_path / "m.jsonl").read_text().splitlines()]
    assert [(r["src"], r["path"]) for r in lines] == [
        (p, p) for p in ["img/dog/3.jpg", "notes.txt", "train/cat/1.jpg", "train/cat/2.jpg"]
    ]
    copy = make_tree(tmp_path / "copy", {f.path: v1.read_bytes(f.path) for f in v1.files()})
    catalog.create_dataset("again")
    catalog.import_manifest("again", tmp_path / "m.jsonl", images=copy)
    assert content(catalog, "again@draft") == content(catalog, v1.ref)


def test_export_with_files_needs_an_empty_folder(
    catalog: Catalog, src: Path, tmp_path: Path
) -> None:
    catalog.create_dataset("pets")
    catalog.import_manifest("pets", write_jsonl(src / "m.jsonl", rows()))
    make_tree(tmp_path / "full", {"keep.txt": b"mine"})
    with pytest.raises(InvalidInput, match="not an empty folder"):
        catalog.export_manifest("pets@draft", tmp_path / "x.jsonl", with_files=tmp_path / "full")
    assert not (tmp_path / "x.jsonl").exists()
    assert (tmp_path / "full/keep.txt").read_bytes() == b"mine"


def coco_doc() -> dict[str, Any]:
    return {
        "info": {"description": "tiny"},
        "images": [
            {"id": 7, "file_name": "a/1.jpg", "width": 64, "height": 48},
            {"id": 9, "file_name": "b.jpg", "width": 32, "height": 32},
            {"id": 11, "file_name": "empty.jpg", "width": 8, "height": 8},
        ],
        "annotations": [
            {"id": 1, "image_id": 7, "category_id": 2, "bbox": [1, 1, 10, 10], "iscrowd": 0},
            {"id": 2, "image_id": 9, "category_id": 1, "bbox": [0, 0, 5, 5], "iscrowd": 0},
            {"id": 3, "image_id": 7, "category_id": 1, "bbox": [2, 2, 4, 4], "iscrowd": 0},
        ],
        "categories": [
            {"id": 1, "name": "cat", "supercategory": "animal"},
            {"id": 2, "name": "dog", "supercategory": "animal"},
            {"id": 3, "name": "bird", "supercategory": "animal"},
        ],
    }


def test_coco_images_become_items_and_categories_labels(catalog: Catalog, tmp_path: Path) -> None:
    images = make_tree(
        tmp_path / "images", {"a/1.jpg": b"one", "b.jpg": b"two", "empty.jpg": b"three"}
    )
    (tmp_path / "ann").mkdir()
    manifest = tmp_path / "ann" / "instances.json"
    manifest.write_text(json.dumps(coco_doc()))
    catalog.create_dataset("coco")
    result = catalog.import_manifest("coco", manifest, images=images)
    assert result.labels == {
        "labels": ["cat", "dog", "bird"],
        "categories": coco_doc()["categories"],
    }
    assert catalog.dataset("coco").info()["labels"] == result.labels
    item = catalog.item("coco@draft", "a/1.jpg")
    assert item.metadata == {"id": 7, "width": 64, "height": 48}
    assert item.annotations == [
        {"id": 1, "category_id": 2, "bbox": [1, 1, 10, 10], "iscrowd": 0, "label": "dog"},
        {"id": 3, "category_id": 1, "bbox": [2, 2, 4, 4], "iscrowd": 0, "label": "cat"},
    ]
    assert catalog.item("coco@draft", "empty.jpg").annotations == []
    assert catalog.draft("coco").read_bytes("b.jpg") == b"two"

    v1 = catalog.publish("coco")
    catalog.export_manifest(v1.ref, tmp_path / "back.json")
    back = json.loads((tmp_path / "back.json").read_text())
    want = coco_doc()
    assert back["categories"] == want["categories"]
    key = lambda d: d["id"]  # noqa: E731
    assert sorted(back["images"], key=key) == sorted(want["images"], key=key)
    assert sorted(back["annotations"], key=key) == sorted(want["annotations"], key=key)
    catalog.create_dataset("coco2")
    catalog.import_manifest("coco2", tmp_path / "back.json", images=images)
    assert content(catalog, "coco2@draft") == content(catalog, v1.ref)


def test_coco_categories_must_fit_an_existing_recipe(catalog: Catalog, tmp_path: Path) -> None:
    make_tree(tmp_path, {"a/1.jpg": b"1", "b.jpg": b"2", "empty.jpg": b"3"})
    (tmp_path / "c.json").write_text(json.dumps(coco_doc()))
    catalog.create_dataset("narrow", labels={"labels": ["cat"]})
    before = catalog_dump(catalog.home.root)
    with pytest.raises(InvalidInput, match=r"not in the labels recipe.*dog, bird"):
        catalog.import_manifest("narrow", tmp_path / "c.json")
    assert catalog_dump(catalog.home.root) == before
    catalog.create_dataset("wide", labels=["bird", "cat", "dog", "fish"])
    assert catalog.import_manifest("wide", tmp_path / "c.json").labels is None
    assert catalog.dataset("wide").info()["labels"] == ["bird", "cat", "dog", "fish"]


BAD_JSONL = [
    # (the third line, what the error says)
    ('{"path": "x.jpg"}', "line 3: missing src"),
    ('{"src": "gone.jpg"}', "line 3: no such file: .*gone.jpg"),
    ('{"src": "img", "path": "x"}', "line 3: not a regular file"),
    ('{"src": "notes.txt", "metadata": {"a": 1', "line 3: invalid JSON"),
    ('{"src": "notes.txt", "metadata": {"a": 1, "a": 2}}', "line 3: invalid JSON.*duplicate key"),
    ('{"src": "notes.txt", "path": "a.jpg"}', "line 3: duplicate path a.jpg \\(also line 1\\)"),
    ('{"src": "notes.txt", "path": "a.jpg/x"}', "line 3: a.jpg is the file of line 1"),
    ('{"src": "notes.txt", "path": "b/../../x"}', "line 3: invalid path"),
    ('{"src": "notes.txt", "path": "' + "n" * 300 + '"}', "line 3: invalid name"),
    ('{"src": "notes.txt", "metadata": [1]}', "line 3: metadata must be a JSON object"),
    ('{"src": "notes.txt", "annotations": {"a": 1}}', "line 3: annotations must be a JSON list"),
    ('{"src": "notes.txt", "labels": []}', "line 3: unknown key 'labels'"),
    ('{"src": "s3://bucket/k.jpg"}', "line 3: s3://bucket/k.jpg is an S3 object"),
    ('["notes.txt"]', "line 3: a row must be a JSON object"),
]


@pytest.mark.parametrize(("third", "error"), BAD_JSONL)
def test_a_bad_row_is_refused_with_its_line_and_nothing_changes(
    catalog: Catalog, src: Path, third: str, error: str
) -> None:
    catalog.create_dataset("pets")
    catalog.add("pets", [src / "notes.txt"], to="old")
    manifest = src / "m.jsonl"
    first = '{"src": "img/cat/1.jpg", "path": "a.jpg"}'
    manifest.write_text(f"{first}\n\n{third}\n")  # line 2 is blank: skipped
    before, blobs = catalog_dump(catalog.home.root), blob_files(catalog.home.root)
    with pytest.raises(InvalidInput if "no such" not in error else NotFound, match=error):
        catalog.import_manifest("pets", manifest)
    assert catalog_dump(catalog.home.root) == before
    assert blob_files(catalog.home.root) == blobs


def test_too_large_metadata_is_e2big_with_its_line(catalog: Catalog, src: Path) -> None:
    catalog.create_dataset("pets")
    big = {"src": "notes.txt", "metadata": {"blob": "x" * MAX_METADATA}}
    manifest = write_jsonl(src / "m.jsonl", [{"src": "img/cat/1.jpg"}, big])
    before = catalog_dump(catalog.home.root)
    with pytest.raises(TooLarge, match="line 2: metadata is over the limit"):
        catalog.import_manifest("pets", manifest)
    assert catalog_dump(catalog.home.root) == before


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("old/notes.txt/x.jpg", "line 1: old/notes.txt is a file in the draft"),
        ("old", "line 1: a folder is at old in the draft"),
    ],
)
def test_a_row_that_clashes_with_the_draft_is_refused(
    catalog: Catalog, src: Path, path: str, error: str
) -> None:
    catalog.create_dataset("pets")
    catalog.add("pets", [src / "notes.txt"], to="old")
    before = catalog_dump(catalog.home.root)
    with pytest.raises(InvalidInput, match=error):
        catalog.import_manifest(
            "pets", write_jsonl(src / "m.jsonl", [{"src": "notes.txt", "path": path}])
        )
    assert catalog_dump(catalog.home.root) == before


def test_bad_csv_rows_name_their_line(catalog: Catalog, src: Path) -> None:
    catalog.create_dataset("pets")
    before = catalog_dump(catalog.home.root)
    cases = {
        "src,path,metadata\nnotes.txt,a,{}\nnotes.txt,b,{bad\n": "line 3: invalid JSON",
        'src,metadata\n"notes.txt","{""a"":\n1}"\nnotes.txt,x\n': "line 4: invalid JSON",
        "src,path\nnotes.txt,a,extra\n": "line 2: 3 cells, the header has 2 columns",
        "src,label\nnotes.txt,cat\n": "line 1: unknown column 'label'",
        "path\na\n": "line 1: the header has no 'src' column",
    }
    for text, error in cases.items():
        (src / "m.csv").write_text(text)
        with pytest.raises(InvalidInput, match=error):
            catalog.import_manifest("pets", src / "m.csv")
    assert catalog_dump(catalog.home.root) == before


def test_bad_coco_names_the_place(catalog: Catalog, tmp_path: Path) -> None:
    make_tree(tmp_path, {"a/1.jpg": b"1", "b.jpg": b"2", "empty.jpg": b"3"})
    catalog.create_dataset("coco")
    doc = coco_doc()
    doc["annotations"][1]["image_id"] = 99
    (tmp_path / "c.json").write_text(json.dumps(doc))
    with pytest.raises(InvalidInput, match=r"annotations\[1\]: image_id 99 names no image"):
        catalog.import_manifest("coco", tmp_path / "c.json")
    doc = coco_doc()
    doc["images"][2]["file_name"] = "missing.jpg"
    (tmp_path / "c.json").write_text(json.dumps(doc))
    with pytest.raises(NotFound, match=r"images\[2\]: no such file"):
        catalog.import_manifest("coco", tmp_path / "c.json")
    assert catalog.files("coco@draft") == []
    assert catalog.dataset("coco").info()["labels"] is None


def test_dry_run_shows_the_change_and_makes_none(catalog: Catalog, src: Path) -> None:
    catalog.create_dataset("pets")
    catalog.import_manifest("pets", write_jsonl(src / "m1.jsonl", [rows()[3]]))
    before, blobs = catalog_dump(catalog.home.root), blob_files(catalog.home.root)
    result = catalog.import_manifest("pets", write_jsonl(src / "m.jsonl", rows()), dry_run=True)
    assert result.dry_run
    assert sorted(result.added) == ["img/dog/3.jpg", "train/cat/1.jpg", "train/cat/2.jpg"]
    assert result.replaced == ["notes.txt"]
    assert result.bytes == sum(len(b) for b in FILES.values())
    assert catalog_dump(catalog.home.root) == before
    assert blob_files(catalog.home.root) == blobs


def test_a_row_on_an_existing_file_keeps_its_lineage(catalog: Catalog, src: Path) -> None:
    catalog.create_dataset("pets")
    catalog.add("pets", [src / "notes.txt"], metadata={"keep": True})
    old = catalog.item("pets@draft", "notes.txt")
    manifest = write_jsonl(src / "m.jsonl", [{"src": "img/dog/3.jpg", "path": "notes.txt"}])
    result = catalog.import_manifest("pets", manifest)
    assert result.replaced == ["notes.txt"]
    new = catalog.item("pets@draft", "notes.txt")
    assert (new.origin, new.metadata) == (old.origin, {"keep": True})
    assert catalog.draft("pets").read_bytes("notes.txt") == FILES["img/dog/3.jpg"]


def test_a_failure_after_bytes_were_staged_leaves_no_blob(catalog: Catalog, src: Path) -> None:
    """The draft is published by another process while the import copies bytes: the
    import fails and none of the bytes it staged stays in the store."""
    catalog.create_dataset("pets")
    catalog.add("pets", [src / "notes.txt"])
    blobs = blob_files(catalog.home.root)
    other = Catalog(catalog.home.root)
    published: list[str] = []

    def publish_meanwhile(_n: int) -> None:
        if not published:
            published.append(other.publish("pets").id)

    manifest = write_jsonl(src / "m.jsonl", rows()[:3])
    try:
        with pytest.raises(Conflict, match="published or deleted meanwhile"):
            catalog.import_manifest("pets", manifest, progress=publish_meanwhile)
    finally:
        other.close()
    assert blob_files(catalog.home.root) == blobs
    assert [f.path for f in catalog.files("pets@latest")] == ["notes.txt"]


def test_format_by_extension_content_or_flag(catalog: Catalog, src: Path) -> None:
    catalog.create_dataset("pets")
    text = json.dumps({"src": "notes.txt"}) + "\n"
    (src / "list.txt").write_text(text)  # no known extension: JSON Lines by content
    assert catalog.import_manifest("pets", src / "list.txt", dry_run=True).added == ["notes.txt"]
    (src / "list.csv").write_text(text)  # a .csv that is JSON Lines, forced
    result = catalog.import_manifest("pets", src / "list.csv", format="jsonl", dry_run=True)
    assert result.added == ["notes.txt"]
    with pytest.raises(InvalidInput, match="unknown column"):
        catalog.import_manifest("pets", src / "list.csv", dry_run=True)
    with pytest.raises(NotFound, match="no such manifest"):
        catalog.import_manifest("pets", src / "none.jsonl")


def test_s3_rows_become_linked_items(s3: Any, catalog: Catalog, tmp_path: Path) -> None:
    bucket = s3.bucket()
    for key, data in {"raw/a.jpg": b"AAA", "raw/sub/b.jpg": b"BBBB", "other/c.jpg": b"C"}.items():
        s3.client().put_object(Bucket=bucket, Key=key, Body=data)
    s3.client().put_object(Bucket=bucket, Key="raw/late.jpg", Body=b"late")
    catalog.link("linked", f"s3://{bucket}/raw")
    catalog.rm("linked", ["a.jpg", "sub", "late.jpg"], recursive=True)
    manifest = write_jsonl(
        tmp_path / "m.jsonl",
        [
            {"src": f"s3://{bucket}/raw/a.jpg", "path": "cats/a.jpg", "metadata": {"k": 1}},
            {"src": f"s3://{bucket}/raw/sub/b.jpg", "annotations": [{"label": "dog"}]},
        ],
    )
    result = catalog.import_manifest("linked", manifest)
    assert (sorted(result.added), result.bytes) == (["cats/a.jpg", "sub/b.jpg"], 7)
    assert not blob_files(catalog.home.root), "nothing copied"
    draft = catalog.draft("linked")
    assert draft.read_bytes("cats/a.jpg") == b"AAA"
    assert catalog.item("linked@draft", "sub/b.jpg").annotations == [{"label": "dog"}]
    assert catalog.sync("linked").added == 1  # late.jpg only: the imported items stand
    catalog.export_manifest("linked@draft", tmp_path / "back.jsonl")
    back = [json.loads(x) for x in (tmp_path / "back.jsonl").read_text().splitlines()]
    assert back[0] == {
        "src": f"s3://{bucket}/raw/a.jpg",
        "path": "cats/a.jpg",
        "metadata": {"k": 1},
        "annotations": [],
    }

    before = catalog_dump(catalog.home.root)
    bad = [
        ({"src": f"s3://{bucket}/raw/none.jpg", "path": "x"}, "line 2: no such object"),
        ({"src": f"s3://{bucket}/other/c.jpg", "path": "x"}, "line 2: .* is not under the linked"),
        ({"src": "local.jpg"}, "line 2: local.jpg is a local file"),
    ]
    for row, error in bad:
        write_jsonl(manifest, [{"src": f"s3://{bucket}/raw/a.jpg", "path": "y"}, row])
        with pytest.raises((InvalidInput, NotFound), match=error):
            catalog.import_manifest("linked", manifest)
    assert catalog_dump(catalog.home.root) == before


def test_export_with_files_never_writes_a_corrupt_byte(
    catalog: Catalog, src: Path, tmp_path: Path
) -> None:
    catalog.create_dataset("pets")
    catalog.import_manifest("pets", write_jsonl(src / "m.jsonl", rows()))
    v1 = catalog.publish("pets")
    blob = v1.item("train/cat/1.jpg").blob
    stored = catalog.home.root / "blobs" / blob[:2] / blob
    stored.write_bytes(b"\0" * stored.stat().st_size)  # same size, wrong bytes
    out = tmp_path / "out"
    with pytest.raises(Corrupt):
        catalog.export_manifest(v1, out / "m.jsonl", with_files=out)
    assert not (out / "m.jsonl").exists()
    written = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert written == {"img/dog/3.jpg", "notes.txt"}  # the files before it, whole
    assert (out / "notes.txt").read_bytes() == FILES["notes.txt"]

"""``dlfs import`` and ``dlfs export`` from the command line: what they print, one
error line and exit 1 for a bad row, a dry run that changes nothing."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import Cli, blob_files, catalog_dump, make_tree


def test_import_dry_run_then_import_then_export(cli: Cli, home: Path, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", {"a.jpg": b"aaa", "sub/b.jpg": b"bbbb"})
    (src / "m.jsonl").write_text(
        json.dumps({"src": "a.jpg", "path": "cats/a.jpg", "annotations": [{"label": "cat"}]})
        + "\n"
        + json.dumps({"src": "sub/b.jpg", "metadata": {"split": "val"}})
        + "\n"
    )
    cli("dataset", "create", "pets")
    before = catalog_dump(home)
    dry = cli("import", "pets", str(src / "m.jsonl"), "--dry-run")
    assert dry.out.splitlines() == [
        "+ cats/a.jpg",
        "+ sub/b.jpg",
        "would import 2 file(s), 7B: 2 new, 0 replaced",
    ]
    assert catalog_dump(home) == before
    assert cli("import", "pets", str(src / "m.jsonl")).out.startswith("imported 2 file(s)")
    assert cli("meta", "pets@draft", "cats/a.jpg").json()["annotations"] == [{"label": "cat"}]  # type: ignore[index]

    out = tmp_path / "out"
    res = cli("export", "pets@draft", str(out / "m.csv"), "--with-files", str(out), "--json")
    assert res.json() == {"files": 2, "format": "csv", "copied_bytes": 7, "dropped_annotations": 0}
    assert (out / "cats/a.jpg").read_bytes() == b"aaa"
    lines = (out / "m.csv").read_text().splitlines()
    assert lines[0] == "src,path,metadata,annotations"
    assert lines[1] == 'cats/a.jpg,cats/a.jpg,{},"[{""label"":""cat""}]"'


def test_a_bad_row_is_one_error_line_and_exit_1(cli: Cli, home: Path, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", {"a.jpg": b"aaa"})
    (src / "m.csv").write_text("src,path,metadata\na.jpg,x.jpg,{}\nmissing.jpg,y.jpg,{}\n")
    cli("dataset", "create", "pets")
    before, blobs = catalog_dump(home), blob_files(home)
    res = cli("import", "pets", str(src / "m.csv"), ok=False)
    assert res.code == 1
    assert res.err.splitlines() == [
        f"dlfs: error: {src / 'm.csv'}: line 3: no such file: {src / 'missing.jpg'}"
    ]
    assert catalog_dump(home) == before and blob_files(home) == blobs
    res = cli("import", "pets", str(src / "m.csv"), "--format", "coco", ok=False)
    assert res.code == 1
    assert res.err.count("\n") == 1
    assert res.err.startswith(f"dlfs: error: {src / 'm.csv'}: invalid JSON for a COCO file")


def test_coco_sets_the_labels(cli: Cli, tmp_path: Path) -> None:
    make_tree(tmp_path / "images", {"1.jpg": b"one"})
    coco = {
        "images": [{"id": 1, "file_name": "1.jpg"}],
        "annotations": [{"id": 5, "image_id": 1, "category_id": 3}],
        "categories": [{"id": 3, "name": "cat"}],
    }
    (tmp_path / "coco.json").write_text(json.dumps(coco))
    cli("dataset", "create", "c")
    res = cli("import", "c", str(tmp_path / "coco.json"), "--images", str(tmp_path / "images"))
    assert res.out.splitlines()[-1] == 'set the dataset\'s labels: ["cat"]'
    assert cli("dataset", "show", "c", "--json").json()["labels"]["labels"] == ["cat"]  # type: ignore[index]

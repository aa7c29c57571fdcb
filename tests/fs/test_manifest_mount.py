"""A COCO file imported, published and mounted: each image's annotations (with their
category names as labels) and metadata are what ``getfattr`` reads on the file."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from tests.conftest import Cli, make_tree
from tests.fsutil import Mounter


def test_coco_annotations_read_through_xattrs(cli: Cli, mounter: Mounter, tmp_path: Path) -> None:
    images = {"train/1.jpg": b"\xff\xd8one", "train/2.jpg": b"\xff\xd8two"}
    make_tree(tmp_path / "coco", images)
    coco = {
        "images": [
            {"id": 1, "file_name": "train/1.jpg", "width": 4, "height": 3},
            {"id": 2, "file_name": "train/2.jpg", "width": 5, "height": 5},
        ],
        "annotations": [
            {"id": 10, "image_id": 1, "category_id": 1, "bbox": [0, 0, 2, 2]},
            {"id": 11, "image_id": 1, "category_id": 2, "bbox": [1, 1, 2, 1]},
        ],
        "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}],
    }
    (tmp_path / "coco/instances.json").write_text(json.dumps(coco))
    cli("dataset", "create", "coco")
    cli("import", "coco", str(tmp_path / "coco/instances.json"))
    cli("publish", "coco")
    m = mounter("coco", tmp_path / "mnt")

    one = m.path / "train/1.jpg"
    assert one.read_bytes() == images["train/1.jpg"]
    annotations = json.loads(os.getxattr(one, "user.dlfs.annotations"))
    assert [(a["id"], a["label"], a["bbox"]) for a in annotations] == [
        (10, "cat", [0, 0, 2, 2]),
        (11, "dog", [1, 1, 2, 1]),
    ]
    metadata = json.loads(os.getxattr(one, "user.dlfs.metadata"))
    assert metadata == {"id": 1, "width": 4, "height": 3}
    assert json.loads(os.getxattr(m.path / "train/2.jpg", "user.dlfs.annotations")) == []
    if shutil.which("getfattr"):  # the tool itself, where it is installed
        out = subprocess.run(
            ["getfattr", "-n", "user.dlfs.annotations", "--only-values", str(one)],
            capture_output=True,
            check=True,
        ).stdout
        assert json.loads(out) == annotations

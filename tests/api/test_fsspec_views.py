"""Views through fsspec: ``dlfs://REF/@by/KEY/...`` and ``dlfs://REF/@where/EXPR/...``
show what the mounted view shows, read-only."""

from __future__ import annotations

from pathlib import Path

import fsspec
import pytest

from dlfs import Catalog
from dlfs.fsspec import DlfsFileSystem, InvalidArgumentError
from dlfs.home import Home
from dlfs.view import View, open_view
from dlfs.viewspec import ViewSpec

FILES = {
    "a/1.jpg": [{"label": "dog"}],
    "a/2.jpg": [{"label": "cat"}, {"label": "dog"}],
    "b/3.jpg": [],
    "4.jpg": [{"label": "cat"}],
}


@pytest.fixture
def ref(catalog: Catalog) -> str:
    catalog.create_dataset("pets")
    for path, ann in FILES.items():
        catalog.add_bytes("pets", path, path.encode(), annotations=ann, metadata={"p": path})
    return catalog.publish("pets").ref


def view_files(v: View) -> dict[str, int]:
    out: dict[str, int] = {}

    def walk(node: object, prefix: str) -> None:
        for _pos, name, child in v.listing(node).entries_from(0):  # type: ignore[arg-type]
            if child.is_dir:
                walk(child, prefix + name + "/")
            else:
                out[prefix + name] = child.size

    walk(v.root(), "")
    return out


def test_fsspec_paths_show_the_view(home: Path, ref: str) -> None:
    fs = fsspec.filesystem("dlfs", home=str(home))
    assert isinstance(fs, DlfsFileSystem)
    base = "pets/@by/label"
    assert fs.ls(base, detail=False) == [f"{base}/@none", f"{base}/cat", f"{base}/dog"]
    found = {p[len(base) + 1 :]: fs.info(p)["size"] for p in fs.find(base)}
    v = open_view(Home.at(home), ref, spec=ViewSpec.parse(None, "label"))
    try:
        assert found == view_files(v)
    finally:
        v.close()
    assert fs.cat_file(f"{base}/dog/a/2.jpg") == b"a/2.jpg"
    where = 'pets/@where/metadata.p != "a%2F1.jpg"/@by/label'
    assert sorted(fs.find(where)) == [
        f"{where}/@none/b/3.jpg",
        f"{where}/cat/4.jpg",
        f"{where}/cat/a/2.jpg",
        f"{where}/dog/a/2.jpg",
    ]
    with pytest.raises(FileNotFoundError):
        fs.cat_file(f"{where}/dog/a/1.jpg")  # in the version, not in this view
    with pytest.raises(PermissionError):
        fs.pipe_file(f"{base}/dog/a/new.jpg", b"x")
    with pytest.raises(InvalidArgumentError):
        fs.ls("pets/@by/colour")
    for change in (
        lambda: fs.rm(f"{base}/dog/a/1.jpg"),
        lambda: fs.mkdir(f"{base}/dog/z"),
        lambda: fs.mv(f"{base}/dog/a/1.jpg", "pets/x.jpg"),
    ):
        with pytest.raises(PermissionError):
            change()

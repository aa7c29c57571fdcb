"""Views mounted through the kernel: ``dlfs mount --where / --group-by``, the catalog
mount's ``@by`` / ``@where`` folders and ``dlfs.mount(ref, where=..., group_by=...)``."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import pytest

import dlfs
from dlfs import Catalog
from tests.fsutil import Mounter, is_mounted, own_mounts
from tests.fsutil import dlfs as run_dlfs
from tests.helpers import catalog_dump

LABELS = ["cat", "dog", "fox"]


def files() -> dict[str, tuple[dict[str, Any], list[Any]]]:
    """Items stored by source and shard, their classes in the annotations."""
    out: dict[str, tuple[dict[str, Any], list[Any]]] = {}
    for i in range(24):
        labels = [LABELS[i % 3]] + ([LABELS[(i + 1) % 3]] if i % 4 == 0 else [])
        ann: list[Any] = [{"label": x, "box": [i, 0, 4, 4]} for x in labels]
        if i % 7 == 6:
            ann = []
        split = "train" if i % 5 else "val"
        out[f"src{i % 2}/shard{i % 3}/img_{i:03}.jpg"] = ({"split": split, "n": i}, ann)
    return out


@pytest.fixture
def pets(home: Path) -> str:
    with Catalog(home) as cat:
        cat.create_dataset("pets")
        for path, (meta, ann) in files().items():
            cat.add_bytes("pets", path, path.encode() * 100, metadata=meta, annotations=ann)
        return cat.publish("pets").ref


def tree_of(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (os.walk) with its bytes."""
    out = {}
    for folder, _dirs, names in os.walk(root):
        for name in names:
            path = Path(folder) / name
            out[str(path.relative_to(root))] = path.read_bytes()
    return out


def test_a_where_mount_equals_the_filtered_clone(
    home: Path, pets: str, mounter: Mounter, tmp_path: Path
) -> None:
    expr = 'label == "dog" and metadata.split == "train"'
    with Catalog(home) as cat:
        clone = cat.clone(pets, "dogs", where=expr, publish=True).ref
    view = mounter(pets, tmp_path / "view", "--where", expr)
    plain = mounter(clone, tmp_path / "clone")
    expected = tree_of(plain.path)
    assert expected and tree_of(view.path) == expected
    assert sorted(os.listdir(view.path)) == sorted(os.listdir(plain.path))


def test_an_imagefolder_walk_finds_each_item_under_each_label(
    pets: str, mounter: Mounter, tmp_path: Path
) -> None:
    m = mounter(pets, tmp_path / "mnt", "--group-by", "label")
    seen: dict[str, set[str]] = {}
    for cls in sorted(os.listdir(m.path)):  # torchvision's ImageFolder: class = first folder
        for folder, _dirs, names in os.walk(m.path / cls):
            for name in names:
                rel = str((Path(folder) / name).relative_to(m.path / cls))
                assert (Path(folder) / name).read_bytes() == rel.encode() * 100
                seen.setdefault(rel, set()).add(cls)
    expected = {
        path: {a["label"] for a in ann} or {"@none"} for path, (_meta, ann) in files().items()
    }
    assert seen == expected


def test_views_are_read_only_also_of_a_draft(
    home: Path, pets: str, mounter: Mounter, tmp_path: Path
) -> None:
    with Catalog(home) as cat:
        cat.create_version("pets", ["pets@latest"])
    for ref, where in ((pets, "mnt"), ("pets@draft", "draft")):
        m = mounter(ref, tmp_path / where, "--group-by", "metadata.split")
        assert sorted(os.listdir(m.path)) == ["train", "val"]
        shard = next((m.path / "train/src0").iterdir())
        writes: list[tuple[Any, ...]] = [
            (Path.write_bytes, m.path / "train/new.txt", b"x"),
            (os.mkdir, m.path / "val/src9"),
            (os.unlink, next(shard.iterdir())),
            (os.rename, m.path / "train/src0", m.path / "train/src7"),
        ]
        for call, *args in writes:
            with pytest.raises(OSError) as exc:
                call(*args)
            assert exc.value.errno == errno.EROFS


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--where", "label = 'dog'"], "invalid --where expression at column 7"),
        (["--where", ""], "empty expression"),
        (["--group-by", "class"], "invalid --group-by key 'class'"),
        (["--group-by", "metadata."], "invalid --group-by key"),
    ],
)
def test_bad_view_options_fail_with_one_line(
    home: Path, pets: str, tmp_path: Path, options: list[str], message: str
) -> None:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    before = catalog_dump(home)
    res = run_dlfs(home, "mount", *options, pets, str(mnt), ok=False)
    assert res.code == 1
    assert res.err.startswith("dlfs: error: ") and res.err.count("\n") == 1
    assert message in res.err
    assert not is_mounted(mnt)
    assert own_mounts(home) == []
    assert catalog_dump(home) == before


def test_the_catalog_mount_and_the_python_api_serve_the_same_view(
    home: Path, pets: str, mounter: Mounter, tmp_path: Path
) -> None:
    m = mounter(None, tmp_path / "mnt")
    version = m.path / "pets" / pets.split("@")[1]
    assert "@by" not in os.listdir(version)
    by_path = tree_of(version / "@by/label")
    where = version / "@where" / "metadata.n < 10"
    with dlfs.mount(pets, home=home, group_by="label") as root:
        assert tree_of(root) == by_path
    with dlfs.mount(pets, home=home, where="metadata.n < 10", group_by="label") as root:
        assert tree_of(root) == tree_of(where / "@by/label")
    with pytest.raises(OSError) as exc:
        os.stat(version / "@where" / "metadata.n <")
    assert exc.value.errno == errno.EINVAL


def test_dlfs_mounts_shows_the_view(
    home: Path, pets: str, mounter: Mounter, tmp_path: Path
) -> None:
    mounter(pets, tmp_path / "mnt", "--where", "metadata.n < 3", "--group-by", "label")
    [entry] = own_mounts(home)
    assert entry["view"] == '--where "metadata.n < 3" --group-by label'
    assert entry["mode"] == "published"
    assert "--group-by label" in run_dlfs(home, "mounts").out

"""The data tools ML people use, over a mounted version and through ``dlfs://``.

Hugging Face ``datasets`` (``imagefolder`` over a mount, ``data_files`` through
fsspec), pyarrow's datasets over ``dlfs://``, pandas. Each test is skipped only when
its package is missing; the bootstrap installs them (``datasets``, ``pyarrow``,
``pillow`` and ``pandas`` are dev extras). PyTorch's ``DataLoader`` with several
workers has its own test beside the example it runs (``test_examples.py``).
"""

from __future__ import annotations

import gc
import io
import os
import shutil
from pathlib import Path

import pytest

from dlfs import Catalog
from dlfs.fsspec import DlfsFileSystem
from tests.fsutil import Mounter

FUSE_OK = os.path.exists("/dev/fuse") and shutil.which("fusermount3") is not None
COLOURS = {"cat": (200, 30, 30), "dog": (30, 200, 30), "bird": (30, 30, 200)}


@pytest.fixture
def offline_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Hugging Face caches under the test's folder, and its Hub is a closed port on
    loopback, so nothing reaches the network. (Not ``HF_HUB_OFFLINE``: offline mode
    refuses every URL that is not a local path, ``dlfs://`` included; the packaged
    builders used here need no Hub.)"""
    cache = tmp_path / "hf"
    monkeypatch.setenv("HF_HOME", str(cache))
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    return cache


def _images(root: Path) -> dict[str, str]:
    """A class-per-folder image tree (3 classes, 7 PNGs); returns path -> class."""
    image_mod = pytest.importorskip("PIL.Image", reason="pillow is not installed")
    made: dict[str, str] = {}
    for label, colour in COLOURS.items():
        count = {"cat": 3, "dog": 2, "bird": 2}[label]
        for i in range(count):
            path = root / "train" / label / f"{label}{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            image_mod.new("RGB", (8 + i, 6), colour).save(path)
            made[f"train/{label}/{path.name}"] = label
    return made


def _published(home: Path, source: Path, name: str) -> str:
    with Catalog(home) as cat:
        cat.create_dataset(name)
        cat.add(name, [source])  # the contents of source, at the root
        return cat.publish(name).ref


@pytest.mark.fuse
@pytest.mark.skipif(not FUSE_OK, reason="needs /dev/fuse and fusermount3")
def test_hugging_face_imagefolder_over_a_mounted_version(
    home: Path, tmp_path: Path, mounter: Mounter, offline_hub: Path
) -> None:
    hf = pytest.importorskip("datasets", reason="datasets is not installed")
    source = tmp_path / "src"
    made = _images(source)
    ref = _published(home, source, "pets")
    mnt = mounter(ref, tmp_path / "mnt").path

    ds = hf.load_dataset("imagefolder", data_dir=str(mnt), split="train")

    names = ds.features["label"].names
    assert sorted(names) == sorted(COLOURS)
    assert len(ds) == len(made)
    seen = sorted((names[row["label"]], row["image"].getpixel((0, 0))) for row in ds)
    want = sorted((label, COLOURS[label]) for label in made.values())
    assert seen == want


def test_hugging_face_data_files_through_dlfs_urls(
    home: Path, tmp_path: Path, offline_hub: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hf = pytest.importorskip("datasets", reason="datasets is not installed")
    source = tmp_path / "src"
    (source / "splits").mkdir(parents=True)
    (source / "splits" / "train.csv").write_text("text,label\nhello,1\nworld,0\nagain,1\n")
    (source / "splits" / "test.csv").write_text("text,label\nbye,0\n")
    ref = _published(home, source, "texts")
    monkeypatch.setenv("DLFS_HOME", str(home))

    ds = hf.load_dataset(
        "csv",
        data_files={
            "train": f"dlfs://{ref}/splits/train.csv",
            "test": f"dlfs://{ref}/splits/test.csv",
        },
    )

    assert ds["train"]["text"] == ["hello", "world", "again"]
    assert ds["train"]["label"] == [1, 0, 1]
    assert ds["test"]["text"] == ["bye"]


def test_pyarrow_dataset_reads_parquet_shards_through_dlfs(home: Path, tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow", reason="pyarrow is not installed")
    pq = pytest.importorskip("pyarrow.parquet")
    pads = pytest.importorskip("pyarrow.dataset")
    from pyarrow.fs import FSSpecHandler, PyFileSystem

    source = tmp_path / "src"
    (source / "shards").mkdir(parents=True)
    for shard in range(3):
        table = pa.table({"id": [shard * 10 + i for i in range(4)], "shard": [shard] * 4})
        pq.write_table(table, source / "shards" / f"part-{shard}.parquet")
    ref = _published(home, source, "tables")

    fs = PyFileSystem(FSSpecHandler(DlfsFileSystem(home=home)))
    dataset = pads.dataset(f"{ref}/shards", filesystem=fs, format="parquet")

    table = dataset.to_table()
    assert sorted(table.column("id").to_pylist()) == [
        s * 10 + i for s in range(3) for i in range(4)
    ]
    assert sorted(os.path.basename(f) for f in dataset.files) == [
        f"part-{s}.parquet" for s in range(3)
    ]
    filtered = dataset.to_table(filter=pads.field("shard") == 2)
    assert filtered.column("id").to_pylist() == [20, 21, 22, 23]
    # pyarrow's scanner threads must end while pyarrow is alive: left to the final
    # teardown of the interpreter they can abort it (apache/arrow#39162).
    del dataset, fs
    gc.collect()


def test_pandas_reads_parquet_through_dlfs(home: Path, tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas", reason="pandas is not installed")
    pytest.importorskip("pyarrow", reason="pyarrow is not installed")
    source = tmp_path / "src"
    source.mkdir()
    frame = pd.DataFrame({"x": [1, 2, 3], "y": ["a", "b", "c"]})
    buffer = io.BytesIO()
    frame.to_parquet(buffer)
    (source / "frame.parquet").write_bytes(buffer.getvalue())
    ref = _published(home, source, "frames")

    back = pd.read_parquet(f"dlfs://{ref}/frame.parquet", storage_options={"home": str(home)})

    assert back.equals(frame)

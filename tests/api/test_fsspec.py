"""The fsspec filesystem against a real catalog.

fsspec's basic behaviours (ls, info, open, cat, walk, find, glob, exists) are checked
by comparing every answer with fsspec's own ``LocalFileSystem`` over the folder the
version was imported from: the same names, types, sizes and bytes.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import fsspec
import pytest
from fsspec.implementations.local import LocalFileSystem

import dlfs
from dlfs import Catalog
from dlfs.fsspec import DlfsFileSystem
from tests.conftest import make_tree

FILES = {
    "iris.csv": b"sepal,petal,species\n5.1,1.4,setosa\n7.0,4.7,versicolor\n6.3,6.0,virginica\n",
    "notes.txt": b"line one\nline two\n",
    "empty.bin": b"",
    "images/train/001.jpg": bytes(range(256)) * 40,
    "images/train/002.jpg": b"\xff\xd8" + b"x" * 3000,
    "images/val/003.jpg": b"\xff\xd8" + b"y" * 100,
    "images/val/nested/deeper/004.png": b"\x89PNG" + b"z" * 10,
    "with space/ünï.txt": b"unicode\n",
}


@pytest.fixture
def source(tmp_path: Path) -> Path:
    root = make_tree(tmp_path / "src", FILES)
    (root / "images" / "empty-folder").mkdir()
    return root


@pytest.fixture
def ref(catalog: Catalog, source: Path) -> str:
    ds = catalog.create_dataset("tables")
    ds.add(source)
    ds.publish(tags=["gold"])
    return "tables@v0"


@pytest.fixture
def fs(home: Path, ref: str) -> DlfsFileSystem:
    return DlfsFileSystem(home=home)


@pytest.fixture
def local(source: Path) -> Iterator[tuple[LocalFileSystem, str]]:
    yield LocalFileSystem(), source.as_posix()


def rel(paths: object, prefix: str) -> object:
    """Strip ``prefix/`` from every path in a result (lists, dicts, walk tuples)."""
    if isinstance(paths, str):
        return paths[len(prefix) :].lstrip("/")
    if isinstance(paths, dict):
        return {rel(k, prefix): v for k, v in paths.items()}
    return sorted(rel(p, prefix) for p in paths)  # type: ignore[attr-defined]


# -- the basic behaviours, compared with LocalFileSystem -------------------------------------


@pytest.mark.parametrize("sub", ["", "images", "images/train", "images/val/nested", "notes.txt"])
def test_ls_matches_local(
    fs: DlfsFileSystem, local: tuple[LocalFileSystem, str], ref: str, sub: str
) -> None:
    lfs, root = local
    ours = fs.ls(f"{ref}/{sub}".rstrip("/"), detail=True)
    theirs = lfs.ls(f"{root}/{sub}".rstrip("/"), detail=True)

    def shape(infos: list[dict[str, object]], prefix: str) -> set[object]:
        return {
            (rel(i["name"], prefix), i["type"], i["size"] if i["type"] == "file" else 0)
            for i in infos
        }

    assert shape(ours, ref) == shape(theirs, root)
    assert rel(fs.ls(f"{ref}/{sub}".rstrip("/"), detail=False), ref) == rel(
        lfs.ls(f"{root}/{sub}".rstrip("/"), detail=False), root
    )


def test_info_matches_local(
    fs: DlfsFileSystem, local: tuple[LocalFileSystem, str], ref: str
) -> None:
    lfs, root = local
    for path in [*FILES, "images", "images/empty-folder", "with space"]:
        ours, theirs = fs.info(f"{ref}/{path}"), lfs.info(f"{root}/{path}")
        assert ours["name"] == f"{ref}/{path}"
        assert ours["type"] == theirs["type"], path
        if ours["type"] == "file":
            assert ours["size"] == theirs["size"] == len(FILES[path])
            assert len(ours["blob"]) == 32 and ours["item"]
    top = fs.info(f"dlfs://{ref}")
    assert top["type"] == "directory" and top["state"] == "published" and len(top["version"]) == 40


def test_walk_find_and_glob_match_local(
    fs: DlfsFileSystem, local: tuple[LocalFileSystem, str], ref: str
) -> None:
    lfs, root = local
    assert rel(fs.find(ref), ref) == rel(lfs.find(root), root) == sorted(FILES)
    assert rel(fs.find(ref, withdirs=True), ref) == rel(lfs.find(root, withdirs=True), root)
    assert rel(fs.find(f"{ref}/images", maxdepth=2), ref) == rel(
        lfs.find(f"{root}/images", maxdepth=2), root
    )
    ours = {rel(d, ref): (sorted(ds), sorted(fs_)) for d, ds, fs_ in fs.walk(ref)}
    theirs = {rel(d, root): (sorted(ds), sorted(fs_)) for d, ds, fs_ in lfs.walk(root)}
    assert ours == theirs
    for pattern in ["*.csv", "images/*/*.jpg", "images/**/*.png", "**/*.txt", "images/?al"]:
        assert rel(fs.glob(f"{ref}/{pattern}"), ref) == rel(lfs.glob(f"{root}/{pattern}"), root), (
            pattern
        )
    assert rel(fs.glob(f"dlfs://{ref}/images/*"), ref) == [
        "images/empty-folder",
        "images/train",
        "images/val",
    ]


def test_open_cat_and_ranges_match_local(
    fs: DlfsFileSystem, local: tuple[LocalFileSystem, str], ref: str
) -> None:
    lfs, root = local
    for path, data in FILES.items():
        assert fs.cat(f"{ref}/{path}") == lfs.cat(f"{root}/{path}") == data
        with fs.open(f"{ref}/{path}", "rb") as f:
            assert f.read() == data
    path = "images/train/001.jpg"
    for start, end in [(0, 10), (100, None), (-20, None), (5, -5), (None, 3), (20000, None)]:
        assert fs.cat_file(f"{ref}/{path}", start, end) == lfs.cat_file(
            f"{root}/{path}", start, end
        )
    assert fs.cat([f"{ref}/notes.txt", f"{ref}/iris.csv"]) == {
        f"{ref}/notes.txt": FILES["notes.txt"],
        f"{ref}/iris.csv": FILES["iris.csv"],
    }
    with fs.open(f"{ref}/notes.txt", "r") as text:
        assert text.readlines() == ["line one\n", "line two\n"]
    assert fs.head(f"{ref}/iris.csv", 5) == b"sepal"
    assert fs.tail(f"{ref}/notes.txt", 4) == b"two\n"
    assert fs.size(f"{ref}/notes.txt") == len(FILES["notes.txt"])


def test_exists_isdir_isfile(fs: DlfsFileSystem, ref: str) -> None:
    assert fs.exists(ref) and fs.exists(f"{ref}/iris.csv") and fs.exists("tables")
    assert not fs.exists(f"{ref}/nope") and not fs.exists("nope@v0/x")
    assert not fs.exists("tables@v9") and not fs.exists(f"{ref}/iris.csv/below")
    assert fs.isdir(f"{ref}/images") and not fs.isdir(f"{ref}/iris.csv")
    assert fs.isfile(f"{ref}/iris.csv") and not fs.isfile(f"{ref}/images")


def test_the_root_lists_datasets_and_bare_names_mean_latest(
    fs: DlfsFileSystem, catalog: Catalog, ref: str
) -> None:
    catalog.create_dataset("zebras")
    assert fs.ls("", detail=False) == ["tables", "zebras"]
    assert fs.ls("dlfs://", detail=False) == ["tables", "zebras"]
    assert fs.cat("tables/notes.txt") == fs.cat("tables@gold/notes.txt") == FILES["notes.txt"]
    assert fs.ls("zebras@draft") == []


def test_projects_are_folders_of_their_datasets(
    fs: DlfsFileSystem, catalog: Catalog, ref: str
) -> None:
    catalog.create_project("vision")
    catalog.create_dataset("big cats", project="vision")
    catalog.add_bytes("vision/big cats", "a/b.txt", b"roar")
    catalog.publish("vision/big cats")
    assert fs.ls("", detail=False) == ["tables", "vision"]
    assert fs.ls("vision", detail=False) == ["vision/big cats"]
    assert fs.cat("dlfs://vision/big cats@v0/a/b.txt") == b"roar"
    assert fs.cat("vision/big cats/a/b.txt") == b"roar"  # latest
    assert fs.ls("vision/big cats@v0/a", detail=False) == ["vision/big cats@v0/a/b.txt"]


def test_ukey_checksum_and_modified_are_stable(fs: DlfsFileSystem, ref: str) -> None:
    a, b = f"{ref}/images/train/001.jpg", "tables@gold/images/train/001.jpg"
    assert fs.ukey(a) == fs.ukey(b) == fs.info(a)["blob"]
    assert fs.checksum(a) == fs.checksum(a)
    assert fs.modified(a).timestamp() == pytest.approx(fs.info(a)["mtime"], abs=1e-5)


# -- errors ------------------------------------------------------------------------------


def test_errors_are_the_oserrors_fsspec_users_expect(fs: DlfsFileSystem, ref: str) -> None:
    with pytest.raises(FileNotFoundError) as missing:
        fs.cat(f"{ref}/nope.csv")
    assert isinstance(missing.value.__cause__, dlfs.NotFound)
    with pytest.raises(FileNotFoundError, match="no dataset named 'nope'"):
        fs.ls("nope@v0")
    with pytest.raises(IsADirectoryError):
        fs.cat(f"{ref}/images")
    with pytest.raises(NotADirectoryError):
        fs.ls(f"{ref}/iris.csv/x")
    with pytest.raises(PermissionError) as readonly:
        fs.pipe(f"{ref}/new.txt", b"x")
    assert readonly.value.errno == errno.EROFS
    with pytest.raises(PermissionError):
        fs.rm(f"{ref}/iris.csv")
    with pytest.raises(ValueError, match="'rb', 'wb' or 'xb'"):
        fs.open(f"{ref}/notes.txt", "ab")


def test_a_corrupt_blob_is_eio_never_wrong_bytes(
    fs: DlfsFileSystem, catalog: Catalog, home: Path, ref: str
) -> None:
    blob = catalog.version(ref).item("notes.txt").blob
    path = home / "blobs" / blob[:2] / blob
    path.chmod(0o600)
    path.write_bytes(b"line one\nline TWO\n")
    with pytest.raises(OSError) as bad:
        fs.cat(f"{ref}/notes.txt")
    assert bad.value.errno == errno.EIO and isinstance(bad.value.__cause__, dlfs.Corrupt)


# -- drafts ------------------------------------------------------------------------------


def test_drafts_are_writable_a_file_at_a_time(
    fs: DlfsFileSystem, catalog: Catalog, ref: str
) -> None:
    draft = catalog.dataset("tables").create_version(parents=[ref], name="edit")
    origin = draft.item("notes.txt").origin
    fs.pipe("tables@edit/new/hello.txt", b"hello")
    with fs.open("tables@edit/notes.txt", "wb") as f:
        f.write(b"rewritten\n")
    with fs.open("dlfs://tables/out.txt", "w") as text:  # bare name: the draft, for writing
        text.write("written as text\n")
    fs.makedirs("tables@edit/made/deep")
    fs.makedirs("tables@edit/made/deep", exist_ok=True)
    with pytest.raises(FileExistsError):
        fs.makedirs("tables@edit/made/deep")
    fs.cp_file("tables@edit/iris.csv", "tables@edit/made/iris.csv")
    fs.mv("tables@edit/with space", "tables@edit/renamed")
    fs.rm("tables@edit/images", recursive=True)
    fs.rm_file("tables@edit/empty.bin")
    with pytest.raises(FileExistsError):
        fs.open("tables@edit/new/hello.txt", "xb")
    # An exception inside the with block stores nothing.
    with pytest.raises(RuntimeError), fs.open("tables@edit/aborted.txt", "wb") as f:
        f.write(b"half")
        raise RuntimeError("stop")
    assert draft.item("notes.txt").origin == origin  # a rewrite keeps the lineage
    assert fs.cat("tables@edit/notes.txt") == b"rewritten\n"
    assert [f.path for f in draft.files()] == [
        "iris.csv",
        "made/iris.csv",
        "new/hello.txt",
        "notes.txt",
        "out.txt",
        "renamed/ünï.txt",
    ]
    assert draft.item("made/iris.csv").blob == draft.item("iris.csv").blob
    assert draft.read_bytes("out.txt") == b"written as text\n"
    assert fs.isdir("tables@edit/made/deep")
    # The published version did not change.
    assert sorted(f.path for f in catalog.version(ref).files()) == sorted(FILES)


# -- registration, libraries, threads --------------------------------------------------------


def test_urls_work_with_storage_options_and_dlfs_home(
    home: Path, ref: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"dlfs://{ref}/iris.csv"
    with fsspec.open(url, "rb", home=str(home)) as f:
        assert f.read() == FILES["iris.csv"]
    monkeypatch.setenv("DLFS_HOME", str(home))
    with fsspec.open(url, "rt") as text:
        assert text.readline() == "sepal,petal,species\n"
    fs, path = fsspec.core.url_to_fs(url)
    assert isinstance(fs, DlfsFileSystem) and path == f"{ref}/iris.csv"


def test_the_protocol_is_registered_by_the_entry_point(home: Path, ref: str) -> None:
    # A fresh interpreter that never imports dlfs.fsspec itself.
    code = (
        "import fsspec, sys\n"
        f"fs = fsspec.filesystem('dlfs', home={str(home)!r})\n"
        f"sys.stdout.buffer.write(fs.cat({ref + '/notes.txt'!r}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True)
    assert out.stdout == FILES["notes.txt"]


def test_pandas_reads_a_csv_through_dlfs(home: Path, ref: str) -> None:
    pd = pytest.importorskip("pandas")
    df = pd.read_csv(f"dlfs://{ref}/iris.csv", storage_options={"home": str(home)})
    assert list(df.columns) == ["sepal", "petal", "species"]
    assert df["species"].tolist() == ["setosa", "versicolor", "virginica"]
    assert df["petal"].sum() == pytest.approx(12.1)


def test_pyarrow_reads_through_dlfs_when_installed(home: Path, ref: str) -> None:
    pa_csv = pytest.importorskip("pyarrow.csv", reason="pyarrow is not installed")
    from pyarrow.fs import FSSpecHandler, PyFileSystem

    pafs = PyFileSystem(FSSpecHandler(DlfsFileSystem(home=home)))
    with pafs.open_input_file(f"{ref}/iris.csv") as f:
        table = pa_csv.read_csv(f)
    assert table.num_rows == 3


def test_one_filesystem_serves_many_threads(fs: DlfsFileSystem, ref: str) -> None:
    results: dict[str, bytes] = {}
    errors: list[BaseException] = []

    def read(path: str) -> None:
        try:
            for _ in range(5):
                results[path] = fs.cat(f"{ref}/{path}")
                fs.ls(f"{ref}/images")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=read, args=(p,)) for p in FILES]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and results == FILES


def test_a_forked_child_opens_its_own_catalog(fs: DlfsFileSystem, ref: str) -> None:
    assert fs.cat(f"{ref}/notes.txt") == FILES["notes.txt"]  # the parent's connection
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit status
        try:
            ok = fs.cat(f"{ref}/notes.txt") == FILES["notes.txt"]
        except BaseException:
            ok = False
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0

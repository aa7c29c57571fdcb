"""A published version mounted for real: bytes, attributes, xattrs, EROFS, tools, faults."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import random
import stat
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from dlfsd.readahead import READ_AHEAD_KIB, bdi_setting

from dlfs import Catalog
from tests.fsutil import (
    ANNOTATIONS,
    META,
    Mounter,
    Shared,
    dlfs,
    is_mounted,
    own_mounts,
    process_alive,
)


def source_files(root: Path) -> dict[str, Path]:
    return {str(p.relative_to(root)): p for p in sorted(root.rglob("*")) if p.is_file()}


def tree_stats(root: Path) -> dict[str, tuple[int, int, int]]:
    """``path -> (mode, size, mtime_ns)`` for everything under ``root``."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            st = path.lstat()
            out[str(path.relative_to(root))] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return out


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- bytes ------------------------------------------------------------------------------


def test_diff_r_matches_the_source(shared: Shared):
    proc = subprocess.run(["diff", "-r", str(shared.source), str(shared.path)], capture_output=True)
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()


def test_sha256_of_every_file(shared: Shared):
    expected = source_files(shared.source)
    assert set(source_files(shared.path)) == set(expected)
    for rel, src in expected.items():
        assert sha256(shared.path / rel) == sha256(src), rel


def test_reads_at_any_offset(shared: Shared):
    data = (shared.source / "big/large.bin").read_bytes()
    with open(shared.path / "big/large.bin", "rb", buffering=0) as f:
        for offset, size in [(0, 1), (131071, 2), (len(data) - 5, 100), (1 << 20, 300_000)]:
            f.seek(offset)
            assert f.read(size) == data[offset : offset + size]
        f.seek(len(data) + 10)
        assert f.read(10) == b""


@pytest.mark.skipif(os.geteuid() != 0, reason="only root may change a mount's read-ahead")
def test_the_mount_reads_ahead_a_mebibyte(shared: Shared):
    # What the kernel asks the daemon for per request; its default is 128 KiB.
    assert int(Path(bdi_setting(str(shared.path))).read_text()) == READ_AHEAD_KIB


def test_sixteen_threads_read_the_right_bytes(shared: Shared):
    expected = {rel: p.read_bytes() for rel, p in source_files(shared.source).items()}
    jobs = [rel for rel in expected for _ in range(4)]
    random.Random(1).shuffle(jobs)

    def read(rel: str) -> bool:
        chunk = random.Random(rel).choice([4096, 65536, 1 << 20])
        with open(shared.path / rel, "rb") as f:
            parts = []
            while block := f.read(chunk):
                parts.append(block)
        return b"".join(parts) == expected[rel]

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(read, jobs))
    assert all(results)


# -- attributes -------------------------------------------------------------------------


def test_modes_sizes_owner_and_times(shared: Shared):
    with Catalog(shared.home) as cat:
        info = cat.version(shared.ref).info()
        items = {i.path: i for i in cat.files(shared.ref)}
        published_ns = int(cat.db.version_get(info["id"])["published_at"] * 1e9)
    stats = tree_stats(shared.path)
    for rel, (mode, size, mtime_ns) in stats.items():
        if rel in items:
            assert mode == stat.S_IFREG | 0o444, rel
            assert size == items[rel].size
            assert mtime_ns == int(items[rel].mtime * 1e9)
        else:
            assert mode == stat.S_IFDIR | 0o555, rel
            assert 0 < mtime_ns <= published_ns, rel  # when its entries last changed
    root = shared.path.stat()
    assert (root.st_uid, root.st_gid) == (os.getuid(), os.getgid())
    assert stat.S_IMODE(root.st_mode) == 0o555
    assert (shared.path / "empty_folder").is_dir()
    assert os.listdir(shared.path / "empty_folder") == []


def test_attributes_stable_across_remounts(shared: Shared, tmp_path: Path):
    before = tree_stats(shared.path)
    mounter = Mounter(shared.home)
    try:
        m1 = mounter(shared.ref, tmp_path / "again")
        first = tree_stats(m1.path)
        dlfs(shared.home, "umount", str(m1.path))
        m2 = mounter(shared.ref, tmp_path / "again")
        assert first == tree_stats(m2.path) == before
    finally:
        mounter.cleanup()


def test_missing_names_and_long_names(shared: Shared):
    with pytest.raises(FileNotFoundError):
        (shared.path / "nope.txt").stat()
    with pytest.raises(OSError) as exc:
        (shared.path / ("x" * 256)).stat()
    assert exc.value.errno == errno.ENAMETOOLONG
    assert (shared.path / "names" / ("n" * 255)).read_bytes() == b"longest name\n"
    with pytest.raises(FileNotFoundError):
        os.stat(os.fsencode(shared.path) + b"/caf\xe9.jpg")  # not UTF-8
    with pytest.raises(NotADirectoryError):
        (shared.path / "one.bin" / "x").stat()
    with pytest.raises(IsADirectoryError):
        (shared.path / "text").read_bytes()


def test_statfs(shared: Shared):
    st = os.statvfs(shared.path)
    total = sum(p.stat().st_size for p in source_files(shared.source).values())
    assert st.f_blocks * st.f_frsize >= total
    assert st.f_bfree == st.f_bavail == 0
    assert st.f_namemax == 255


# -- extended attributes ----------------------------------------------------------------


def test_xattrs_carry_metadata_and_annotations(shared: Shared):
    path = shared.path / "text/hello.txt"
    assert set(os.listxattr(path)) == {
        "user.dlfs.item",
        "user.dlfs.blob",
        "user.dlfs.metadata",
        "user.dlfs.annotations",
    }
    assert json.loads(os.getxattr(path, "user.dlfs.metadata")) == META
    assert json.loads(os.getxattr(path, "user.dlfs.annotations")) == ANNOTATIONS
    with Catalog(shared.home) as cat:
        item = cat.item(shared.ref, "text/hello.txt")
    assert os.getxattr(path, "user.dlfs.item").decode() == item.id
    assert os.getxattr(path, "user.dlfs.blob").decode() == item.blob
    other = shared.path / "one.bin"
    assert json.loads(os.getxattr(other, "user.dlfs.metadata")) == {}
    assert json.loads(os.getxattr(other, "user.dlfs.annotations")) == []


def test_version_root_xattrs(shared: Shared):
    assert os.getxattr(shared.path, "user.dlfs.version").decode() == shared.ref.split("@")[1]
    assert os.getxattr(shared.path, "user.dlfs.state") == b"published"
    assert os.getxattr(shared.path, "user.dlfs.dataset") == b"cats"


@pytest.mark.parametrize(
    "name", ["security.selinux", "system.posix_acl_access", "user.other", "user.dlfs.nope"]
)
def test_foreign_xattrs_are_absent(shared: Shared, name: str):
    with pytest.raises(OSError) as exc:
        os.getxattr(shared.path / "text/hello.txt", name)
    assert exc.value.errno == errno.ENODATA


# -- every kind of write is EROFS ---------------------------------------------------------

WRITES: dict[str, Callable[[Path], object]] = {
    "open for write": lambda m: os.open(m / "one.bin", os.O_RDWR),
    "open for append": lambda m: os.open(m / "one.bin", os.O_WRONLY | os.O_APPEND),
    "open with truncate": lambda m: os.open(m / "one.bin", os.O_WRONLY | os.O_TRUNC),
    "create": lambda m: os.open(m / "new.txt", os.O_WRONLY | os.O_CREAT | os.O_EXCL),
    "mkdir": lambda m: os.mkdir(m / "newdir"),
    "rmdir": lambda m: os.rmdir(m / "empty_folder"),
    "unlink": lambda m: os.unlink(m / "one.bin"),
    "rename": lambda m: os.rename(m / "one.bin", m / "two.bin"),
    "rename dir": lambda m: os.rename(m / "text", m / "texts"),
    "truncate": lambda m: os.truncate(m / "one.bin", 0),
    "utime": lambda m: os.utime(m / "one.bin", (0, 0)),
    "chmod": lambda m: os.chmod(m / "one.bin", 0o666),
    "chown": lambda m: os.chown(m / "one.bin", os.getuid(), os.getgid()),
    "setxattr": lambda m: os.setxattr(m / "one.bin", "user.dlfs.metadata", b"{}"),
    "removexattr": lambda m: os.removexattr(m / "one.bin", "user.dlfs.metadata"),
    "link": lambda m: os.link(m / "one.bin", m / "hard.bin"),
    "symlink": lambda m: os.symlink("one.bin", m / "soft.bin"),
    "mkfifo": lambda m: os.mkfifo(m / "fifo"),
}


@pytest.mark.parametrize("write", list(WRITES))
def test_every_write_is_erofs(shared: Shared, write: str):
    with pytest.raises(OSError) as exc:
        WRITES[write](shared.path)
    assert exc.value.errno == errno.EROFS
    assert (shared.path / "one.bin").read_bytes() == b"x"


@pytest.mark.parametrize(
    "command",
    [
        ["touch", "one.bin"],
        ["touch", "brand-new"],
        ["rm", "-f", "one.bin"],
        ["rm", "-rf", "text"],
        ["mv", "one.bin", "moved.bin"],
        ["mkdir", "x"],
        ["truncate", "-s", "0", "one.bin"],
        ["chmod", "777", "one.bin"],
        ["ln", "one.bin", "hard"],
        ["ln", "-s", "one.bin", "soft"],
        ["cp", "one.bin", "copy.bin"],
    ],
)
def test_shell_writes_fail_read_only(shared: Shared, command: list[str]):
    proc = subprocess.run(command, cwd=shared.path, capture_output=True, text=True)
    assert proc.returncode != 0
    assert "Read-only file system" in proc.stderr
    assert sorted(os.listdir(shared.path)) == sorted(os.listdir(shared.source))


# -- tools --------------------------------------------------------------------------------


def test_ls_find_du(shared: Shared):
    ls = subprocess.run(["ls", "-lR", str(shared.path)], capture_output=True, text=True)
    assert ls.returncode == 0 and "-r--r--r--" in ls.stdout and "dr-xr-xr-x" in ls.stdout
    find = subprocess.run(
        ["find", ".", "-type", "f"], cwd=shared.path, capture_output=True, text=True
    )
    assert find.returncode == 0
    found = sorted(line[2:] for line in find.stdout.splitlines())
    assert found == sorted(source_files(shared.source))
    dirs = subprocess.run(
        ["find", ".", "-type", "d"], cwd=shared.path, capture_output=True, text=True
    )
    src_dirs = subprocess.run(
        ["find", ".", "-type", "d"], cwd=shared.source, capture_output=True, text=True
    )
    assert sorted(dirs.stdout.splitlines()) == sorted(src_dirs.stdout.splitlines())
    du = subprocess.run(
        ["du", "-sb", "--apparent-size", str(shared.path)], capture_output=True, text=True
    )
    assert du.returncode == 0
    total = sum(p.stat().st_size for p in source_files(shared.source).values())
    assert int(du.stdout.split()[0]) == total


def test_tar_and_cp_r_round_trip(shared: Shared, tmp_path: Path):
    out = tmp_path / "untarred"
    out.mkdir()
    tar = subprocess.run(
        f"tar -cf - -C '{shared.path}' . | tar -xf - -C '{out}'", shell=True, capture_output=True
    )
    assert tar.returncode == 0, tar.stderr
    assert subprocess.run(["diff", "-r", str(shared.source), str(out)]).returncode == 0
    copy = tmp_path / "copied"
    assert subprocess.run(["cp", "-r", str(shared.path), str(copy)]).returncode == 0
    assert subprocess.run(["diff", "-r", str(shared.source), str(copy)]).returncode == 0
    sums = subprocess.run(
        ["sha256sum", "big/large.bin"], cwd=shared.path, capture_output=True, text=True
    )
    assert sums.stdout.split()[0] == sha256(shared.source / "big/large.bin")


# -- faults: a bad blob is EIO for that file only ---------------------------------------------


def blob_path(home: Path, ref: str, rel: str) -> Path:
    with Catalog(home) as cat:
        blob = cat.item(ref, rel).blob
    return home / "blobs" / blob[:2] / blob


@pytest.mark.expect_log("is unreadable")
@pytest.mark.parametrize("rel", ["text/hello.txt", "big/large.bin"])
def test_corrupt_blob_is_eio_and_the_rest_still_reads(
    home: Path, source: Path, published: str, mounter: Mounter, tmp_path: Path, rel: str
):
    path = blob_path(home, published, rel)
    size = path.stat().st_size
    path.write_bytes(b"\0" * size)  # same size, wrong bytes
    m = mounter(published, tmp_path / "mnt")
    for _ in range(2):
        with pytest.raises(OSError) as exc:
            (m.path / rel).read_bytes()
        assert exc.value.errno == errno.EIO
    assert (m.path / rel).stat().st_size == size  # listing and stat still work
    assert (m.path / "images/val/img_003.jpg").read_bytes() == (
        source / "images/val/img_003.jpg"
    ).read_bytes()
    assert process_alive(m.pid)
    status = own_mounts(home)
    assert [s["state"] for s in status] == ["ok"]  # type: ignore[index]
    with open(m.home / "logs" / Path(status[0]["log"]).name) as log:  # type: ignore[index]
        assert "unreadable" in log.read()


@pytest.mark.expect_log("is unreadable")
def test_missing_blob_is_eio_only_when_read(
    home: Path, source: Path, published: str, mounter: Mounter, tmp_path: Path
):
    blob_path(home, published, "images/train/img_005.jpg").unlink()
    m = mounter(published, tmp_path / "mnt")  # mounting reads no blob
    names = os.listdir(m.path / "images/train")
    assert "img_005.jpg" in names
    with pytest.raises(OSError) as exc:
        (m.path / "images/train/img_005.jpg").read_bytes()
    assert exc.value.errno == errno.EIO
    for rel in ("images/train/img_004.jpg", "images/train/img_006.jpg", "big/large.bin"):
        assert (m.path / rel).read_bytes() == (source / rel).read_bytes()
    dlfs(home, "umount", str(m.path))
    assert not is_mounted(m.path)

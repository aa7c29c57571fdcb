"""A draft mounted read-write through the real ``dlfs mount``: every operation and
errno, extended attributes, lineage, readers of files being written, the one-writer
rule, publishing while mounted, and the staging area left clean."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from dlfs import Catalog, draftlock
from dlfs.errors import Conflict
from dlfs.home import Home
from dlfs.stores.local import LocalStore
from tests.fsutil import ANNOTATIONS, META, Mount, Mounter, dlfs, is_mounted, own_mounts


@pytest.fixture
def draft(home: Path, published: str, mounter: Mounter, tmp_path: Path) -> Mount:
    """A child draft of the published generated tree, mounted read-write."""
    with Catalog(home) as cat:
        cat.create_version("cats", ["cats@latest"])
    return mounter("cats@draft", tmp_path / "mnt")


def errno_of(call: Callable[[], object]) -> int:
    with pytest.raises(OSError) as exc:
        call()
    assert exc.value.errno is not None
    return exc.value.errno


def item(home: Path, path: str, ref: str = "cats@draft") -> dict[str, object]:
    with Catalog(home) as cat:
        return cat.item(ref, path).to_json()


def draft_bytes(home: Path, path: str) -> bytes:
    with Catalog(home) as cat:
        return b"".join(cat.cat("cats@draft", path))


# -- files ------------------------------------------------------------------------------


def test_create_write_read(home: Path, draft: Mount):
    mnt = draft.path
    (mnt / "new.txt").write_bytes(b"hello draft\n")
    assert (mnt / "new.txt").read_bytes() == b"hello draft\n"
    st = (mnt / "new.txt").stat()
    assert st.st_size == 12 and oct(st.st_mode & 0o777) == "0o644"
    assert "new.txt" in os.listdir(mnt)
    assert draft_bytes(home, "new.txt") == b"hello draft\n"  # committed on close
    (mnt / "empty.bin").touch()
    assert (mnt / "empty.bin").stat().st_size == 0
    assert item(home, "empty.bin")["size"] == 0
    big = os.urandom(3 * 1024 * 1024 + 5)
    (mnt / "text" / "big.bin").write_bytes(big)
    assert (mnt / "text" / "big.bin").read_bytes() == big
    assert draft_bytes(home, "text/big.bin") == big


def test_writes_at_random_offsets_and_truncate(home: Path, draft: Mount):
    path = draft.path / "images" / "train" / "img_001.jpg"
    model = bytearray(path.read_bytes())
    with open(path, "r+b") as f:
        for offset, data in [(10, b"XYZ"), (len(model) + 100, b"past the end"), (0, b"start")]:
            f.seek(offset)
            f.write(data)
            if offset > len(model):
                model.extend(b"\0" * (offset - len(model)))
            model[offset : offset + len(data)] = data
        f.flush()
        assert path.read_bytes() == bytes(model)  # another handle sees the staged bytes
        f.truncate(50)
        del model[50:]
    assert path.read_bytes() == bytes(model)
    assert draft_bytes(home, "images/train/img_001.jpg") == bytes(model)
    os.truncate(path, 20)  # truncate(2) of a file nobody has open
    assert path.read_bytes() == bytes(model[:20]) and path.stat().st_size == 20
    os.truncate(path, 30)
    assert path.read_bytes() == bytes(model[:20]) + b"\0" * 10
    with open(path, "wb") as f:  # O_TRUNC
        f.write(b"rewritten")
    with open(path, "ab") as f:  # O_APPEND
        f.write(b" and appended")
    assert path.read_bytes() == b"rewritten and appended"
    assert draft_bytes(home, "images/train/img_001.jpg") == b"rewritten and appended"


def test_reading_a_file_open_for_writing(draft: Mount):
    path = draft.path / "one.bin"
    early = open(path, "rb")  # noqa: SIM115 - a reader opened before the writer
    try:
        with open(path, "r+b", buffering=0) as writer:
            writer.write(b"new bytes")
            assert path.read_bytes() == b"new bytes"
            early.seek(0)
            assert early.read() == b"new bytes"
            writer.write(b" and more")
            with open(path, "rb") as reader:
                assert reader.read() == b"new bytes and more"
            assert path.stat().st_size == len(b"new bytes and more")
    finally:
        early.close()
    assert path.read_bytes() == b"new bytes and more"


def test_a_created_file_is_visible_before_it_is_closed(home: Path, draft: Mount):
    path = draft.path / "text" / "growing.log"
    with open(path, "wb", buffering=0) as f:
        f.write(b"line 1\n")
        assert "growing.log" in os.listdir(draft.path / "text")
        assert path.stat().st_size == 7
        assert path.read_bytes() == b"line 1\n"
        with Catalog(home) as cat:  # not in the catalog until it is closed
            assert "growing.log" not in [e.name for e in cat.ls("cats@draft", "text")]
    assert draft_bytes(home, "text/growing.log") == b"line 1\n"


def test_fsync_and_statfs(home: Path, draft: Mount):
    path = draft.path / "synced.bin"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.write(fd, b"durable")
        os.fsync(fd)
        assert draft_bytes(home, "synced.bin") == b"durable"  # committed by fsync
        os.write(fd, b" and more")
        os.fdatasync(fd)
        assert draft_bytes(home, "synced.bin") == b"durable and more"
    finally:
        os.close(fd)
    st = os.statvfs(draft.path)
    assert st.f_bavail > 0 and st.f_bfree > 0 and st.f_files > 0 and st.f_namemax == 255


# -- the tree -------------------------------------------------------------------------------


def test_mkdir_rmdir_unlink_and_their_errors(home: Path, draft: Mount):
    mnt = draft.path
    (mnt / "new" / "deeper").mkdir(parents=True)
    assert (mnt / "new" / "deeper").is_dir()
    assert oct((mnt / "new").stat().st_mode & 0o777) == "0o755"
    assert errno_of(lambda: (mnt / "new").mkdir()) == errno.EEXIST
    assert errno_of(lambda: (mnt / "one.bin").mkdir()) == errno.EEXIST
    assert errno_of(lambda: (mnt / "nope" / "x").mkdir()) == errno.ENOENT
    assert errno_of(lambda: (mnt / "nope" / "x.txt").write_bytes(b"x")) == errno.ENOENT
    assert errno_of(lambda: (mnt / "new").rmdir()) == errno.ENOTEMPTY
    assert errno_of(lambda: (mnt / "one.bin").rmdir()) == errno.ENOTDIR
    assert errno_of(lambda: (mnt / "new").unlink()) == errno.EISDIR
    assert errno_of(lambda: (mnt / "missing.txt").unlink()) == errno.ENOENT
    assert errno_of(lambda: (mnt / ("n" * 256)).write_bytes(b"x")) == errno.ENAMETOOLONG
    (mnt / "new" / "deeper").rmdir()
    (mnt / "new").rmdir()
    assert not (mnt / "new").exists()
    (mnt / "one.bin").unlink()
    assert not (mnt / "one.bin").exists()
    assert errno_of(lambda: (mnt / "one.bin").read_bytes()) == errno.ENOENT
    shutil.rmtree(mnt / "images")
    assert not (mnt / "images").exists()
    with Catalog(home) as cat:
        names = {e.name for e in cat.ls("cats@draft")}
    assert {"one.bin", "images", "new"}.isdisjoint(names) and "text" in names
    (mnt / "one.bin").write_bytes(b"a new file under an old name")  # a fresh inode
    assert (mnt / "one.bin").read_bytes() == b"a new file under an old name"


def test_rename_files_and_folders(home: Path, draft: Mount):
    mnt = draft.path
    hello = item(home, "text/hello.txt")
    os.rename(mnt / "text" / "hello.txt", mnt / "text" / "hi.txt")  # in one folder
    os.rename(mnt / "text" / "hi.txt", mnt / "hi.txt")  # across folders
    assert (mnt / "hi.txt").read_bytes() == b"hello world\n"
    assert item(home, "hi.txt")["item"] == hello["item"]  # the same item, moved
    os.rename(mnt / "hi.txt", mnt / "one.bin")  # replacing a file
    assert (mnt / "one.bin").read_bytes() == b"hello world\n"
    assert not (mnt / "hi.txt").exists()
    os.rename(mnt / "images", mnt / "text" / "pictures")  # a folder with its contents
    assert len(os.listdir(mnt / "text" / "pictures" / "train")) == 30
    (mnt / "empty_target").mkdir()
    os.rename(mnt / "deep", mnt / "empty_target")  # over an empty folder
    assert (mnt / "empty_target" / "a" / "b" / "c" / "d" / "e" / "leaf.txt").exists()
    assert errno_of(lambda: os.rename(mnt / "text", mnt / "big")) == errno.ENOTEMPTY
    assert errno_of(lambda: os.rename(mnt / "text", mnt / "empty.txt")) == errno.ENOTDIR
    assert errno_of(lambda: os.rename(mnt / "empty.txt", mnt / "big")) == errno.EISDIR
    assert errno_of(lambda: os.rename(mnt / "text", mnt / "text" / "pictures" / "x")) in (
        errno.EINVAL,
    )
    assert errno_of(lambda: os.rename(mnt / "missing", mnt / "x")) == errno.ENOENT
    with Catalog(home) as cat:
        paths = {f.path for f in cat.files("cats@draft")}
    assert "text/pictures/train/img_000.jpg" in paths and "one.bin" in paths
    assert not any(p.startswith("images/") for p in paths)


def test_open_files_follow_renames(home: Path, draft: Mount):
    mnt = draft.path
    (mnt / "work").mkdir()
    with open(mnt / "work" / "out.txt", "wb", buffering=0) as f:
        f.write(b"first half, ")
        os.rename(mnt / "work", mnt / "moved")  # the folder of an open file
        os.rename(mnt / "moved" / "out.txt", mnt / "moved" / "final.txt")
        f.write(b"second half")
    assert (mnt / "moved" / "final.txt").read_bytes() == b"first half, second half"
    assert draft_bytes(home, "moved/final.txt") == b"first half, second half"
    with open(mnt / "moved" / "final.txt", "r+b", buffering=0) as f:
        (mnt / "moved" / "final.txt").unlink()  # removed while open: writes still work
        f.write(b"gone")
        f.seek(0)
        assert f.read(4) == b"gone"
    assert not (mnt / "moved" / "final.txt").exists()
    assert os.listdir(mnt / "moved") == []
    with Catalog(home) as cat:
        assert cat.ls("cats@draft", "moved") == []
    # A working directory inside a folder that moves keeps working.
    script = "mv ../moved ../elsewhere && echo written > here.txt && ls"
    out = subprocess.run(["sh", "-c", script], cwd=mnt / "moved", capture_output=True)
    assert out.returncode == 0 and out.stdout == b"here.txt\n"
    assert (mnt / "elsewhere" / "here.txt").read_bytes() == b"written\n"


def test_hard_links_and_special_files_are_listed(draft: Mount):
    mnt = draft.path
    os.link(mnt / "one.bin", mnt / "hard")
    os.mkfifo(mnt / "fifo")
    assert errno_of(lambda: os.link(mnt / "deep", mnt / "deep2")) == errno.EPERM
    before = ["big", "deep", "dup", "empty.txt", "empty_folder", "images", "names", "one.bin"]
    assert sorted(os.listdir(mnt)) == sorted([*before, "text", "hard", "fifo"])


def test_chmod_is_kept_and_times_follow_utimensat(home: Path, draft: Mount):
    path = draft.path / "stamped.txt"
    path.write_bytes(b"x")
    os.chmod(path, 0o600)
    assert path.stat().st_mode & 0o777 == 0o600
    os.utime(path, ns=(1_500_000_000_000_000_000, 1_600_000_000_000_000_000))
    assert path.stat().st_mtime_ns == 1_600_000_000_000_000_000
    subprocess.run(["touch", "-a", "-d", "@1700000000", str(path)], check=True)  # UTIME_OMIT
    assert path.stat().st_mtime_ns == 1_600_000_000_000_000_000
    assert item(home, "stamped.txt")["mtime"] == 1_600_000_000
    before = (draft.path / "one.bin").stat().st_mtime_ns  # an item from the parent version
    os.utime(draft.path / "one.bin", ns=(0, 1_000_000_000))
    assert (draft.path / "one.bin").stat().st_mtime_ns == before


# -- metadata and lineage -------------------------------------------------------------------


def test_metadata_and_annotations_as_xattrs(home: Path, draft: Mount):
    path = draft.path / "one.bin"
    os.setxattr(path, "user.dlfs.metadata", b'{"label": "cat", "score": 0.9}')
    os.setxattr(path, "user.dlfs.annotations", json.dumps(ANNOTATIONS).encode())
    got = item(home, "one.bin")
    assert got["metadata"] == {"label": "cat", "score": 0.9}
    assert got["annotations"] == ANNOTATIONS
    assert json.loads(os.getxattr(path, "user.dlfs.metadata")) == got["metadata"]
    assert os.getxattr(path, "user.dlfs.item").decode() == got["item"]
    for bad in (b"{not json", b"[1, 2]", b"\xff"):
        assert errno_of(lambda b=bad: os.setxattr(path, "user.dlfs.metadata", b)) == errno.EINVAL
    assert errno_of(lambda: os.setxattr(path, "user.dlfs.annotations", b"{}")) == errno.EINVAL
    assert errno_of(lambda: os.setxattr(path, "trusted.other", b"x")) == errno.EOPNOTSUPP
    assert errno_of(lambda: os.setxattr(path, "user.dlfs.blob", b"x")) == errno.EPERM
    assert item(home, "one.bin")["metadata"] == {"label": "cat", "score": 0.9}  # unchanged
    os.removexattr(path, "user.dlfs.metadata")
    os.removexattr(path, "user.dlfs.annotations")
    got = item(home, "one.bin")
    assert got["metadata"] == {} and got["annotations"] == []
    assert path.read_bytes() == b"x"
    new = draft.path / "tagged.txt"  # on a file still open for writing
    with open(new, "wb", buffering=0) as f:
        f.write(b"some ")
        os.setxattr(new, "user.dlfs.metadata", b'{"k": 1}')
        f.write(b"bytes")
    got = item(home, "tagged.txt")
    assert got["metadata"] == {"k": 1} and new.read_bytes() == b"some bytes"


def test_rewrites_keep_lineage_and_untouched_files_keep_their_item(home: Path, draft: Mount):
    before = item(home, "text/hello.txt")
    untouched = item(home, "one.bin")
    path = draft.path / "text" / "hello.txt"
    path.write_bytes(b"rewritten in place\n")
    after = item(home, "text/hello.txt")
    assert after["blob"] != before["blob"] and after["item"] != before["item"]
    for key in ("origin", "metadata", "annotations"):
        assert after[key] == before[key]
    assert after["metadata"] == META and after["annotations"] == ANNOTATIONS
    # An editor's or rsync's save: write a temporary file, rename it over the old one.
    tmp = draft.path / "text" / ".hello.txt.swp"
    tmp.write_bytes(b"saved atomically\n")
    os.rename(tmp, path)
    saved = item(home, "text/hello.txt")
    assert path.read_bytes() == b"saved atomically\n"
    assert (saved["origin"], saved["metadata"]) == (before["origin"], META)
    # A file with a lineage of its own keeps it when moved over another.
    os.rename(draft.path / "one.bin", path)
    assert item(home, "text/hello.txt")["origin"] == untouched["origin"]
    assert item(home, "empty.txt") == item(home, "empty.txt", published_ref(home))


def published_ref(home: Path) -> str:
    with Catalog(home) as cat:
        return cat.version("cats@latest").ref


# -- concurrency ------------------------------------------------------------------------------


def test_eight_writers_on_distinct_files(home: Path, draft: Mount):
    (draft.path / "par").mkdir()
    expected: dict[str, bytes] = {}
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            rnd = os.urandom
            for i in range(12):
                data = rnd(1 + (n * 7919 + i * 104729) % (300 * 1024))
                name = f"par/w{n}_{i}.bin"
                with open(draft.path / name, "wb") as f:
                    for start in range(0, len(data), 50_000):
                        f.write(data[start : start + 50_000])
                expected[name] = data
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    assert len(expected) == 96
    for name, data in expected.items():
        assert (draft.path / name).read_bytes() == data
    with Catalog(home) as cat:
        version = cat.publish("cats")
        for name, data in expected.items():
            assert version.read_bytes(name) == data


# -- the one-writer rule, publishing while mounted ----------------------------------------------


def test_a_second_writable_mount_is_refused(
    home: Path, draft: Mount, mounter: Mounter, tmp_path: Path
):
    (tmp_path / "second").mkdir()
    res = dlfs(home, "mount", "cats@draft", str(tmp_path / "second"), ok=False)
    assert res.code == 1 and res.err.count("\n") == 1
    assert "already mounted read-write" in res.err and str(draft.path) in res.err
    assert not is_mounted(tmp_path / "second")
    ro = mounter("cats@draft", tmp_path / "third", "-o", "ro")  # read-only is fine
    (draft.path / "seen.txt").write_bytes(b"from the writable mount")
    assert (ro.path / "seen.txt").read_bytes() == b"from the writable mount"
    assert errno_of(lambda: (ro.path / "x").write_bytes(b"x")) == errno.EROFS


def test_publish_while_mounted(home: Path, draft: Mount):
    mnt = draft.path
    (mnt / "closed.txt").write_bytes(b"closed before publishing")
    (mnt / "images" / "val").rename(mnt / "validation")
    with open(mnt / "open.txt", "wb", buffering=0) as f:
        f.write(b"still being written")
        before = dlfs(home, "log", "cats", "--json").out
        with pytest.MonkeyPatch.context() as env:
            env.setenv("DLFS_PUBLISH_WAIT", "0.5")  # the default waits 5 s
            res = dlfs(home, "publish", "cats", ok=False)
        assert res.code == 1 and res.err.count("\n") == 1
        assert "open for writing" in res.err and str(mnt) in res.err
        assert dlfs(home, "log", "cats", "--json").out == before  # nothing changed
        f.write(b", then closed")
    out = dlfs(home, "publish", "cats", "--json").json()
    assert isinstance(out, dict)
    with Catalog(home) as cat:
        v = cat.version(f"cats@{out['id']}")
        assert v.read_bytes("closed.txt") == b"closed before publishing"
        assert v.read_bytes("open.txt") == b"still being written, then closed"
        assert "validation" in {e.name for e in v.ls()}
    # The mount now shows the published version, read-only.
    assert os.getxattr(mnt, "user.dlfs.state") == b"published"
    assert os.getxattr(mnt, "user.dlfs.version").decode() == out["id"]
    assert (mnt / "open.txt").read_bytes() == b"still being written, then closed"
    assert len(os.listdir(mnt / "validation")) == 8
    assert errno_of(lambda: (mnt / "after.txt").write_bytes(b"x")) == errno.EROFS
    assert errno_of(lambda: (mnt / "closed.txt").unlink()) == errno.EROFS
    assert errno_of(lambda: os.open(mnt / "closed.txt", os.O_RDWR)) == errno.EROFS
    [record] = own_mounts(home)
    assert record["state"] == "ok"
    assert (record["mode"], record["version"]) == ("published", out["id"])


def test_deleting_a_mounted_draft_is_refused(home: Path, draft: Mount):
    res = dlfs(home, "version", "delete", "cats@draft", ok=False)
    assert res.code == 1 and "mounted read-write" in res.err


def test_unmounting_leaves_no_staging_and_no_locks(home: Path, draft: Mount):
    mnt = draft.path
    (mnt / "a.txt").write_bytes(b"a")
    with open(mnt / "b.txt", "wb") as f:
        f.write(b"b")
    staging = home / "blobs" / ".staging"
    assert [p.name for p in staging.iterdir() if p.name.startswith(f"{draft.pid}-")]
    dlfs(home, "umount", str(mnt))
    assert not [p for p in staging.iterdir() if p.name.startswith(f"{draft.pid}-")]
    assert sorted(p.name for p in Home.at(home).mounts.iterdir()) == []
    assert draft_bytes(home, "b.txt") == b"b"


def test_cp_r_into_the_draft_then_publish(home: Path, draft: Mount, source: Path):
    subprocess.run(["cp", "-r", str(source), str(draft.path / "copy")], check=True)
    done = subprocess.run(["diff", "-r", str(source), str(draft.path / "copy")])
    assert done.returncode == 0
    if shutil.which("rsync"):
        (source / "text" / "hello.txt").write_bytes(b"changed at the source\n")
        subprocess.run(["rsync", "-a", f"{source}/", str(draft.path / "copy")], check=True)
        assert (draft.path / "copy" / "text" / "hello.txt").read_bytes() == (
            b"changed at the source\n"
        )
    with Catalog(home) as cat:
        v = cat.publish("cats")
        assert v.read_bytes("copy/big/large.bin") == (source / "big" / "large.bin").read_bytes()
        assert v.read_bytes("copy/names/" + "n" * 255) == b"longest name\n"


def test_the_draft_locks(home: Path):
    """The protocol of dlfs.draftlock, without a mount: one holder of a draft's mount
    lock; a publish waits for writers, then refuses; a crashed holder frees it all."""
    where, draft_id = Home.at(home), "d" * 40
    lock = draftlock.MountLock.acquire(where, draft_id, "/mnt/x")
    try:
        assert draftlock.mounted_at(where, draft_id) == f"at /mnt/x (pid {os.getpid()})"
        with pytest.raises(Conflict, match="already mounted read-write at /mnt/x"):
            draftlock.MountLock.acquire(where, draft_id, "/mnt/y")
        lock.start_writing()
        threading.Timer(0.3, lock.stop_writing).start()  # the last writer closes soon
        start = time.monotonic()
        with draftlock.publishing(where, draft_id, wait=5) as guard:
            assert guard.mounted and time.monotonic() - start >= 0.25
            guard.published(draft_id, "n" * 40)
        assert lock.published_as() == "n" * 40
        lock.start_writing()
        with (
            pytest.raises(Conflict, match="files are open for writing"),
            draftlock.publishing(where, draft_id, wait=0.1),
        ):
            pass
    finally:
        lock.release()
    assert draftlock.mounted_at(where, draft_id) is None
    assert list(where.mounts.iterdir()) == []
    with draftlock.publishing(where, draft_id) as guard:
        assert not guard.mounted


def test_large_files_get_a_valid_block_manifest(home: Path, draft: Mount):
    """Like imported blobs, a blob over one block written through the mount has its
    block manifest, whether it was written in order or not."""
    store = LocalStore(home / "blobs")
    data = bytearray(os.urandom(9 * 1024 * 1024 + 3))
    path = draft.path / "big" / "nine.bin"
    path.write_bytes(data)
    blob = str(item(home, "big/nine.bin")["blob"])
    assert store.manifest_path(blob).exists() and store.check_manifest(blob) is None
    with open(path, "r+b") as f:  # out of order: hashed again on close
        f.seek(5 * 1024 * 1024)
        f.write(b"patched")
    data[5 * 1024 * 1024 : 5 * 1024 * 1024 + 7] = b"patched"
    assert path.read_bytes() == bytes(data)
    blob = str(item(home, "big/nine.bin")["blob"])
    assert store.manifest_path(blob).exists() and store.check_manifest(blob) is None
    assert draft_bytes(home, "big/nine.bin") == bytes(data)

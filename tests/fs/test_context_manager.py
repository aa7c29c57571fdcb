"""``with dlfs.mount(...) as root:``: mounted through the same code path as ``dlfs
mount``, and unmounted when the block ends, also when it raises."""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import dlfs
from dlfs import mountregistry
from dlfs.home import Home
from tests.fsutil import is_mounted, process_alive, wait_for


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Temporary mountpoints go under this test's tmp_path."""
    where = tmp_path / "tmp"
    where.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(where))
    return where


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[set[int]]:
    """Pids of the daemons a test started; whatever is left is cleaned up."""
    pids: set[int] = set()
    try:
        yield pids
    finally:
        for path in [p for p in mountregistry.proc_mounts() if p.startswith(str(tmp_path))]:
            subprocess.run(["fusermount3", "-u", "-z", path], capture_output=True)
        for pid in pids:
            if process_alive(pid):
                os.kill(pid, 15)
        left = [p for p in mountregistry.proc_mounts() if p.startswith(str(tmp_path))]
        assert not left, f"mounts left behind: {left}"


def daemon_of(home: Path, root: Path, pids: set[int]) -> int:
    record = mountregistry.read_record(Home.at(home), root)
    assert record is not None
    pids.add(record.pid)
    return record.pid


def test_mounts_in_a_temp_dir_and_unmounts_at_the_end(
    published: str, home: Path, private_tmp: Path, daemons: set[int]
) -> None:
    with dlfs.mount(published, home=home) as root:
        assert root.parent == private_tmp and is_mounted(root)
        assert (root / "text" / "hello.txt").read_bytes() == b"hello world\n"
        assert os.getxattr(root, "user.dlfs.version").decode() == published.split("@")[1]
        pid = daemon_of(home, root, daemons)
    assert not is_mounted(root)
    assert not root.exists()  # the temporary folder is gone too
    assert wait_for(lambda: not process_alive(pid))
    assert mountregistry.read_record(Home.at(home), root) is None


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_unmounts_when_the_block_raises(
    published: str,
    home: Path,
    private_tmp: Path,
    daemons: set[int],
    monkeypatch: pytest.MonkeyPatch,
    error: type[BaseException],
) -> None:
    monkeypatch.setenv("DLFS_HOME", str(home))  # the default catalog
    with pytest.raises(error, match="inside the block"), dlfs.mount(published) as root:
        pid = daemon_of(home, root, daemons)
        assert (root / "one.bin").read_bytes() == b"x"
        raise error("inside the block")
    assert str(root) not in mountregistry.proc_mounts()
    assert not root.exists()
    assert wait_for(lambda: not process_alive(pid))


def test_files_left_open_do_not_keep_the_mount(
    published: str, home: Path, private_tmp: Path, daemons: set[int]
) -> None:
    with dlfs.mount(published, home=home) as root:
        pid = daemon_of(home, root, daemons)
        held = open(root / "big" / "large.bin", "rb")  # noqa: SIM115 - held on purpose
    try:
        assert not is_mounted(root)  # detached at once
        assert len(held.read(1000)) == 1000  # and still served
        assert process_alive(pid)
    finally:
        held.close()
    assert wait_for(lambda: not process_alive(pid))


def test_a_version_handle_mounts_at_a_given_mountpoint(
    published: str, home: Path, tmp_path: Path, daemons: set[int]
) -> None:
    target = tmp_path / "mnt"
    target.mkdir()
    with dlfs.Catalog(home) as cat:
        version = cat.version(published)
        with version.mount(target) as root:
            assert root == target and is_mounted(target)
            daemon_of(home, root, daemons)
            assert sorted(p.name for p in (root / "images" / "val").iterdir())[0] == "img_000.jpg"
    assert not is_mounted(target) and target.is_dir()  # a given mountpoint is kept


def test_the_whole_catalog(
    published: str, home: Path, private_tmp: Path, daemons: set[int]
) -> None:
    with dlfs.Catalog(home) as cat, cat.mount() as root:
        daemon_of(home, root, daemons)
        assert os.readlink(root / "cats" / "latest") == published.split("@")[1]
        assert (root / "cats" / "latest" / "one.bin").read_bytes() == b"x"
    assert not is_mounted(root)


def test_a_bad_ref_or_busy_mountpoint_starts_nothing(
    published: str, home: Path, private_tmp: Path, daemons: set[int]
) -> None:
    with (
        pytest.raises(dlfs.NotFound, match=r"unknown ref|no dataset"),
        dlfs.mount("cats@nope", home=home),
    ):
        pytest.fail("mounted an unknown ref")
    with pytest.raises(dlfs.NotFound), dlfs.mount("dogs", home=home):
        pytest.fail("mounted an unknown dataset")
    assert list(private_tmp.iterdir()) == []  # no temporary folder left
    with dlfs.mount(published, home=home) as root:
        daemon_of(home, root, daemons)
        with pytest.raises(dlfs.Conflict, match="is busy"), dlfs.mount(published, root, home=home):
            pytest.fail("mounted twice")
        assert is_mounted(root)  # the refused second mount did not touch the first
    assert not is_mounted(root)


def test_a_draft_written_in_the_block_can_be_published_after_it(
    home: Path, private_tmp: Path, daemons: set[int]
) -> None:
    with dlfs.Catalog(home) as cat:
        ds = cat.create_dataset("notes")
        with dlfs.mount("notes@draft", home=home) as root:
            daemon_of(home, root, daemons)
            (root / "todo").mkdir()
            (root / "todo" / "a.txt").write_bytes(b"written through the mount")
        assert not is_mounted(root)
        published = ds.publish()  # the unmount released the draft
        assert published.read_bytes("todo/a.txt") == b"written through the mount"

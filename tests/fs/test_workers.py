"""One mount served by several processes (``dlfs mount --workers N``), through real
FUSE mounts: requests really spread, every byte is right, and the processes live
and die together (``dlfs umount``, SIGTERM, a worker killed with SIGKILL)."""

from __future__ import annotations

import errno
import os
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from dlfs import mountregistry
from dlfs.home import Home
from tests.fsutil import Mounter, dlfs, is_mounted, process_alive, wait_for

WORKER_XATTR = "user.dlfs.debug.worker"


def files_of(root: Path) -> list[Path]:
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())


def workers_of(home: Path, path: Path) -> list[int]:
    record = mountregistry.read_record(Home.at(home), path)
    assert record is not None
    return record.workers


def test_requests_spread_over_the_workers_and_every_byte_is_right(
    mounter: Mounter, published: str, source: Path, home: Path, tmp_path: Path
) -> None:
    m = mounter(published, tmp_path / "mnt", "--workers", "2")
    pids = workers_of(home, m.path)
    assert len(pids) == 2 and pids[0] == m.pid
    assert all(process_alive(p) for p in pids)
    listed = dlfs(home, "mounts", "--json").out
    assert all(str(p) in listed for p in pids)
    files = files_of(source)
    assert files_of(m.path) == files

    def check(rel: Path) -> int:
        assert (m.path / rel).read_bytes() == (source / rel).read_bytes(), rel
        return int(os.getxattr(m.path / rel, WORKER_XATTR))

    seen: set[int] = set()
    with ThreadPoolExecutor(4) as pool:
        for _ in range(200):  # until both workers answered (each round is many requests)
            seen.update(pool.map(check, files))
            if len(seen) > 1:
                break
    assert seen == set(pids), "requests did not reach both workers"


def test_a_path_keeps_its_inode_number_whichever_worker_answers(
    mounter: Mounter, published: str, source: Path, home: Path, tmp_path: Path
) -> None:
    """Listings answered by either worker hand the kernel the same numbers (a
    renumbered entry would change ``st_ino`` under ``find``, ``tar``, ``rsync``)."""
    m = mounter(published, tmp_path / "mnt", "--workers", "2")

    def numbers(_: int) -> dict[str, int]:
        out = {}
        for folder, dirs, files in os.walk(m.path):
            for name in dirs + files:
                path = os.path.join(folder, name)
                out[path] = os.lstat(path).st_ino
        return out

    with ThreadPoolExecutor(4) as pool:
        passes = list(pool.map(numbers, range(16)))
    assert len(passes[0]) == len(files_of(source)) + sum(1 for p in source.rglob("*") if p.is_dir())
    assert all(p == passes[0] for p in passes)
    assert len(set(passes[0].values())) == len(passes[0])  # one path, one number


def reading_the_device(pid: int) -> list[str]:
    """The threads of ``pid`` that sleep inside a read of ``/dev/fuse``."""
    stuck = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            if (task / "wchan").read_text() == "fuse_dev_do_read":
                stuck.append(task.name)
        except OSError:  # the thread ended
            pass
    return stuck


def test_no_idle_worker_sleeps_inside_a_read_of_the_device(
    mounter: Mounter, published: str, source: Path, home: Path, tmp_path: Path
) -> None:
    """Each request wakes every process waiting on ``/dev/fuse``; one that then read
    it would sleep there holding its GIL (pyfuse3 reads with it), its threads and the
    replies they owe stalled until another request came: with none coming, the mount
    hung (with 2 workers over S3). The processes take turns instead, so between
    requests none is in that read."""
    m = mounter(published, tmp_path / "mnt", "--workers", "3")
    pids = workers_of(home, m.path)
    sleeps = {(t / "wchan").read_text() for t in Path(f"/proc/{pids[0]}/task").iterdir()}
    if sleeps <= {"", "0"}:
        pytest.skip("this kernel does not show where a thread sleeps")
    folders = [m.path, *(m.path / p.relative_to(source) for p in source.rglob("*") if p.is_dir())]
    with ThreadPoolExecutor(8) as pool:
        for _ in range(25):  # a process that lost the race stays in the read: look often
            list(pool.map(os.listdir, folders * 8))  # listings are never cached: requests
            assert wait_for(lambda: not any(reading_the_device(p) for p in pids), timeout=2), {
                p: reading_the_device(p) for p in pids
            }


def test_umount_ends_every_worker(
    mounter: Mounter, published: str, home: Path, tmp_path: Path
) -> None:
    m = mounter(published, tmp_path / "mnt", "--workers", "3")
    pids = workers_of(home, m.path)
    assert len(pids) == 3
    dlfs(home, "umount", str(m.path))
    assert not is_mounted(m.path)
    assert wait_for(lambda: not any(process_alive(p) for p in pids))


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_or_sigint_to_the_daemon_ends_every_worker(
    mounter: Mounter, published: str, home: Path, tmp_path: Path, signum: signal.Signals
) -> None:
    m = mounter(published, tmp_path / "mnt", "--workers", "2")
    pids = workers_of(home, m.path)
    assert len(pids) == 2
    os.kill(m.pid, signum)
    assert wait_for(lambda: not any(process_alive(p) for p in pids))
    assert not is_mounted(m.path)
    assert mountregistry.read_record(Home.at(home), m.path) is None


@pytest.mark.expect_log(r"worker process \d+ was killed by SIGKILL: unmounting")
def test_a_worker_killed_unmounts_cleanly_with_one_log_line(
    mounter: Mounter, published: str, source: Path, home: Path, tmp_path: Path
) -> None:
    m = mounter(published, tmp_path / "mnt", "--workers", "2")
    pids = workers_of(home, m.path)
    os.kill(pids[1], signal.SIGKILL)
    assert wait_for(lambda: not any(process_alive(p) for p in pids))
    assert not is_mounted(m.path)
    log = mountregistry.log_path(Home.at(home), m.path).read_text()
    assert f"worker process {pids[1]} was killed by SIGKILL: unmounting" in log
    try:  # nothing hangs: the folder is empty or answers ENOTCONN
        os.listdir(m.path)
    except OSError as exc:
        assert exc.errno == errno.ENOTCONN


def test_the_catalog_mount_is_served_by_workers_too(
    mounter: Mounter, published: str, home: Path, tmp_path: Path
) -> None:
    m = mounter(None, tmp_path / "mnt", "--workers", "2")
    assert len(workers_of(home, m.path)) == 2
    name, vid = published.split("@")
    assert os.readlink(m.path / name / "latest") == vid


def test_a_draft_is_served_by_one_process(
    mounter: Mounter, published: str, home: Path, tmp_path: Path
) -> None:
    name = published.split("@")[0]
    dlfs(home, "version", "create", name, "--from", published)
    m = mounter(f"{name}@draft", tmp_path / "mnt", "--workers", "4")
    assert workers_of(home, m.path) == [m.pid]
    (m.path / "new.txt").write_bytes(b"written")
    assert (m.path / "new.txt").read_bytes() == b"written"


def test_by_default_a_version_is_served_by_one_process_per_two_cores_up_to_8(
    mounter: Mounter, published: str, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DLFS_WORKERS", raising=False)
    m = mounter(published, tmp_path / "mnt")
    assert len(workers_of(home, m.path)) == max(1, min(len(os.sched_getaffinity(0)) // 2, 8))


def test_a_bad_worker_count_starts_nothing(published: str, home: Path, tmp_path: Path) -> None:
    (tmp_path / "mnt").mkdir()
    res = dlfs(home, "mount", "--workers", "0", published, str(tmp_path / "mnt"), ok=False)
    assert res.code != 0
    assert "--workers must be between 1 and 64" in res.err
    assert not is_mounted(tmp_path / "mnt")

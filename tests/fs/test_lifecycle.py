"""Mount lifecycle: readiness, the registry, signals, stale mounts, errors, laziness."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from dlfs import Catalog
from tests.fsutil import Mounter, dlfs, is_mounted, own_mounts, process_alive, wait_for


def mounts_json(home: Path) -> list[dict[str, object]]:
    return own_mounts(home)


def test_mount_returns_ready_and_is_listed(
    home: Path, source: Path, published: str, mounter: Mounter, tmp_path: Path
):
    m = mounter("cats", tmp_path / "mnt")  # the bare name: cats@latest
    # Usable the moment the command returns: no waiting, no retry.
    assert is_mounted(m.path)
    assert sorted(os.listdir(m.path)) == sorted(os.listdir(source))
    [entry] = mounts_json(home)
    assert entry["mountpoint"] == str(m.path)
    assert entry["ref"] == "cats"
    assert entry["version"] == published.split("@")[1]
    assert entry["pid"] == m.pid and entry["state"] == "ok" and entry["mode"] == "published"
    table = dlfs(home, "mounts").out
    assert str(m.path) in table and "ok" in table and str(m.pid) in table
    options = subprocess.run(["findmnt", "-no", "OPTIONS", str(m.path)], capture_output=True)
    assert b"ro," in options.stdout and b"allow_other" not in options.stdout


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_unmounts_cleanly(
    home: Path, published: str, mounter: Mounter, tmp_path: Path, signum: int
):
    m = mounter(published, tmp_path / "mnt")
    os.kill(m.pid, signum)  # the daemon these tests started
    assert wait_for(lambda: not process_alive(m.pid))
    assert not is_mounted(m.path)
    assert mounts_json(home) == []
    assert os.listdir(m.path) == []  # the plain folder again


def test_umount_unmounts_and_waits_for_the_daemon(
    home: Path, published: str, mounter: Mounter, tmp_path: Path
):
    m = mounter(published, tmp_path / "mnt")
    res = dlfs(home, "umount", str(m.path))
    assert res.out.startswith("unmounted")
    assert not is_mounted(m.path) and not process_alive(m.pid)
    assert mounts_json(home) == []
    again = dlfs(home, "umount", str(m.path), ok=False)
    assert again.code == 1 and again.err.startswith("dlfs: error: nothing is mounted")


def test_umount_of_a_busy_mount(home: Path, published: str, mounter: Mounter, tmp_path: Path):
    m = mounter(published, tmp_path / "mnt")
    with open(m.path / "one.bin", "rb") as f:
        res = dlfs(home, "umount", str(m.path), ok=False)
        assert res.code == 1 and "busy" in res.err and res.err.count("\n") == 1
        assert is_mounted(m.path) and f.read() == b"x"
        dlfs(home, "umount", "--lazy", str(m.path))
        assert not is_mounted(m.path)
        assert f.read() == b""  # the open file still works
    assert wait_for(lambda: not process_alive(m.pid))


def test_killed_daemon_leaves_a_stale_mount_that_umount_clears(
    home: Path, published: str, mounter: Mounter, tmp_path: Path
):
    m = mounter(published, tmp_path / "mnt")
    os.kill(m.pid, signal.SIGKILL)
    assert wait_for(lambda: not process_alive(m.pid))
    assert is_mounted(m.path)
    with pytest.raises(OSError) as exc:
        os.listdir(m.path)
    assert exc.value.errno in (errno.ENOTCONN, errno.ECONNABORTED)
    [entry] = mounts_json(home)
    assert entry["state"] == "stale" and entry["pid"] == m.pid
    assert "stale" in dlfs(home, "mounts").out
    res = dlfs(home, "umount", str(m.path))
    assert "stale" in res.out
    assert not is_mounted(m.path)
    assert mounts_json(home) == []


def test_mount_on_a_stale_path_clears_it_first(
    home: Path, source: Path, published: str, mounter: Mounter, tmp_path: Path
):
    m = mounter(published, tmp_path / "mnt")
    os.kill(m.pid, signal.SIGKILL)
    assert wait_for(lambda: not process_alive(m.pid))
    again = mounter(published, m.path)
    assert again.pid != m.pid
    assert (again.path / "text/hello.txt").read_bytes() == b"hello world\n"
    [entry] = mounts_json(home)
    assert entry["state"] == "ok" and entry["pid"] == again.pid
    mounted = [
        line for line in Path("/proc/mounts").read_text().splitlines() if str(m.path) in line
    ]
    assert len(mounted) == 1


def test_foreground_stays_in_front_and_ctrl_c_unmounts(
    home: Path, published: str, mounter: Mounter, tmp_path: Path
):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    mounter.track(mnt)
    env = {**os.environ, "DLFS_HOME": str(home)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "dlfs", "mount", "--foreground", published, str(mnt)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert wait_for(lambda: is_mounted(mnt) and mounts_json(home) != [], 30)
        [entry] = mounts_json(home)
        assert entry["pid"] == proc.pid  # the command became the daemon
        assert (mnt / "one.bin").read_bytes() == b"x"
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert b"ready" in err  # the foreground logs to stderr too
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not is_mounted(mnt)
    assert mounts_json(home) == []


def test_allow_other_is_opt_in(home: Path, published: str, mounter: Mounter, tmp_path: Path):
    m = mounter(published, tmp_path / "mnt", "-o", "allow_other")
    options = subprocess.run(["findmnt", "-no", "OPTIONS", str(m.path)], capture_output=True)
    assert b"allow_other" in options.stdout


def test_a_draft_mounts_read_only_with_o_ro(
    home: Path, published: str, mounter: Mounter, tmp_path: Path
):
    with Catalog(home) as cat:
        draft = cat.create_version("cats", ["cats@latest"])
        cat.add_bytes(draft.ref, "draft.txt", b"in the draft\n")
    m = mounter("cats@draft", tmp_path / "mnt", "-o", "ro")
    assert (m.path / "draft.txt").read_bytes() == b"in the draft\n"
    assert os.getxattr(m.path, "user.dlfs.state") == b"draft"
    with pytest.raises(OSError) as exc:
        (m.path / "new.txt").write_bytes(b"x")
    assert exc.value.errno == errno.EROFS
    [entry] = mounts_json(home)
    assert entry["mode"] == "draft"


# -- errors: one line, exit 1, nothing changed ------------------------------------------------


def catalog_state(home: Path) -> tuple[str, str]:
    return dlfs(home, "dataset", "list", "--json").out, dlfs(home, "log", "cats", "--json").out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["cats@nope", "{mnt}"], "unknown ref"),
        (["dogs", "{mnt}"], "no dataset named 'dogs'"),
        (["cats", "{tmp}/missing"], "does not exist"),
        (["cats", "{tmp}/file.txt"], "not a directory"),
        (["-o", "bogus", "cats", "{mnt}"], "unknown mount option"),
        (["-o", "rw", "cats", "{mnt}"], "read-only"),
        (["--cache-size", "lots", "cats", "{mnt}"], "invalid size"),
        (["--prefetch-memory", "lots", "cats", "{mnt}"], "invalid size"),
        (["--prefetch-memory", "0", "cats", "{mnt}"], "must be positive"),
    ],
)
def test_bad_mounts_fail_with_one_line(
    home: Path, published: str, tmp_path: Path, args: list[str], message: str
):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    (tmp_path / "file.txt").write_text("not a folder")
    before = catalog_state(home)
    args = [a.format(mnt=mnt, tmp=tmp_path) for a in args]
    res = dlfs(home, "mount", *args, ok=False)
    assert res.code == 1
    assert res.err.startswith("dlfs: error: ") and res.err.count("\n") == 1
    assert message in res.err
    assert not is_mounted(mnt)
    assert catalog_state(home) == before
    assert mounts_json(home) == []


def test_a_busy_mountpoint_is_refused(home: Path, published: str, mounter: Mounter, tmp_path: Path):
    m = mounter(published, tmp_path / "mnt")
    before = catalog_state(home)
    res = dlfs(home, "mount", published, str(m.path), ok=False)
    assert res.code == 1 and res.err.count("\n") == 1
    assert res.err.startswith("dlfs: error: ") and "busy" in res.err
    assert catalog_state(home) == before
    assert [e["pid"] for e in mounts_json(home)] == [m.pid]
    assert (m.path / "one.bin").read_bytes() == b"x"  # the first mount still serves


def test_cache_options_are_recorded(home: Path, published: str, mounter: Mounter, tmp_path: Path):
    m = mounter(
        published,
        tmp_path / "mnt",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--cache-size",
        "2G",
        "--prefetch-memory",
        "256M",
    )
    from dlfs.home import Home
    from dlfs.mountregistry import read_record

    record = read_record(Home.at(home), m.path)
    assert record is not None
    assert record.cache_dir == str(tmp_path / "cache") and record.cache_size == 2 << 30
    assert record.prefetch_memory == 256 << 20


# -- laziness -------------------------------------------------------------------------------


@pytest.mark.expect_log("is unreadable: .*is missing")
def test_a_big_version_mounts_without_reading_it(home: Path, mounter: Mounter, tmp_path: Path):
    """111,110 files; a blob deleted before mounting only fails when it is read."""
    src = tmp_path / "ten"
    src.mkdir()
    for i in range(10):
        (src / f"f{i}.txt").write_bytes(f"file {i}\n".encode())
    with Catalog(home) as cat:
        cat.create_dataset("big")
        cat.add("big", [src], to="a")
        previous = "a"
        for level in "bcde":
            cat.mkdir("big", [level])
            for i in range(10):
                cat.cp("big", [previous], f"{level}/{i}")
            previous = level
        ref = cat.publish("big").ref
        assert cat.version(ref).info()["files"] == 111_110
        blob = cat.item(ref, "a/f3.txt").blob
    (home / "blobs" / blob[:2] / blob).unlink()
    m = mounter(ref, tmp_path / "mnt")
    assert (m.path / "e/9/0/4/2/f5.txt").read_bytes() == b"file 5\n"
    assert sorted(os.listdir(m.path / "e/9/0/4")) == [str(i) for i in range(10)]
    assert (m.path / "e/1/2/3/4/f3.txt").stat().st_size == len(b"file 3\n")
    with pytest.raises(OSError) as exc:
        (m.path / "e/1/2/3/4/f3.txt").read_bytes()
    assert exc.value.errno == errno.EIO
    assert os.statvfs(m.path).f_files == 111_110

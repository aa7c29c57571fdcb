"""The mount(8) helper ``packaging/mount.dlfs``, called the way mount(8) calls it,
and through ``mount -t fuse.dlfs`` and an fstab line for real.

mount(8) looks for helpers in /sbin only and runs them with a standard PATH, so the
``mount -t`` tests run in a private mount namespace (``unshare -m``) where /sbin and
/usr/local/bin are overlaid with a folder holding the helper and a ``dlfs`` link:
the helper is installed exactly as packaging/README.md says, and nothing is
installed on the machine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dlfs import mounthelper, mountregistry
from dlfs.errors import InvalidInput
from dlfs.home import Home
from tests.fsutil import is_mounted, process_alive, wait_for

ROOT = Path(__file__).resolve().parents[2]
HELPER = ROOT / "packaging" / "mount.dlfs"
VENV_BIN = Path(sys.executable).parent


def helper_env(**extra: str) -> dict[str, str]:
    """The environment of a root shell with dlfs on PATH (as after installing it)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DLFS_", "PYTHON"))}
    env["PATH"] = f"{VENV_BIN}:/usr/sbin:/usr/bin:/sbin:/bin"
    env.update(extra)
    return env


def run(*args: str | Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, env=helper_env(**env), timeout=120
    )


@pytest.fixture
def mnt(tmp_path: Path, home: Path) -> Iterator[Path]:
    """A mountpoint; whatever a test leaves mounted there is cleared, and only the
    daemons recorded in this test's catalog are ever signalled."""
    path = tmp_path / "mnt"
    path.mkdir()
    try:
        yield path
    finally:
        clear(home, path)
        assert not is_mounted(path)


def clear(home: Path, path: Path) -> None:
    """Unmount ``path`` and stop its daemon, if this test's catalog recorded one."""
    record = mountregistry.read_record(Home.at(home), path)
    if is_mounted(path):
        subprocess.run(["fusermount3", "-u", "-z", str(path)], capture_output=True)
    if record is not None and mountregistry.daemon_alive(record):
        os.kill(record.pid, 15)


def daemon_pid(home: Path, path: Path) -> int:
    record = mountregistry.read_record(Home.at(home), path)
    assert record is not None, "mounted but no record"
    return record.pid


# -- parsing (no mount) ------------------------------------------------------------------


def test_options_are_sorted_into_dlfs_fuse_and_ignored_ones() -> None:
    req = mounthelper.parse(
        [
            "cats@v1",
            "/mnt/cats",
            "-o",
            "ro,allow_other,home=/var/lib/dlfs,_netdev,nofail",
            "-o",
            "cache-size=2G,cache_dir=/var/cache/dlfs,x-systemd.automount,rw",
            "-v",
        ],
        environ={},
    )
    assert (req.source, req.ref, req.mountpoint) == ("cats@v1", "cats@v1", "/mnt/cats")
    assert req.options == ["ro", "allow_other"]
    assert (req.home, req.cache_size, req.cache_dir) == ("/var/lib/dlfs", "2G", "/var/cache/dlfs")
    assert req.ignored == ["_netdev", "nofail", "x-systemd.automount", "rw"]
    assert req.verbose and not req.fake


def test_remote_option_is_dlfs_own() -> None:
    req = mounthelper.parse(
        ["cats@gold", "/mnt/cats", "-o", "ro,remote=s3://ml-data/team,_netdev"], environ={}
    )
    assert (req.ref, req.remote, req.options) == ("cats@gold", "s3://ml-data/team", ["ro"])


def test_home_from_the_environment_and_the_whole_catalog() -> None:
    req = mounthelper.parse(["catalog:", "/mnt/all", "-o", "rw"], environ={"DLFS_HOME": "/srv"})
    assert req.ref is None and req.home == "/srv" and req.options == []


def test_unknown_options_fail_unless_sloppy() -> None:
    with pytest.raises(InvalidInput, match="unknown mount option 'bogus'"):
        mounthelper.parse(["cats", "/m", "-o", "ro,bogus"], environ={})
    req = mounthelper.parse(["cats", "/m", "-s", "-o", "ro,bogus"], environ={})
    assert req.options == ["ro"] and req.ignored == ["bogus"]


@pytest.mark.parametrize(
    "argv",
    [["cats"], ["cats", "/m", "extra"], ["cats", "/m", "-t", "ext4"], ["cats", "/m", "-N", "1"]],
)
def test_bad_command_lines_are_usage_errors(argv: list[str]) -> None:
    with pytest.raises(mounthelper.UsageError):
        mounthelper.parse(argv, environ={})


# -- called as mount(8) calls it -------------------------------------------------------------


def test_mounts_as_mount_calls_it_and_umount_unmounts(
    published: str, home: Path, mnt: Path
) -> None:
    res = run(HELPER, published, mnt, "-o", f"ro,nosuid,home={home},_netdev")
    assert res.returncode == 0, res.stderr
    assert res.stdout == "" and res.stderr == ""  # quiet without -v
    assert mountregistry.proc_mounts()[str(mnt)] == ("dlfs", "fuse.dlfs")
    pid = daemon_pid(home, mnt)
    assert (mnt / "text" / "hello.txt").read_bytes() == b"hello world\n"
    assert len((mnt / "big" / "large.bin").read_bytes()) == 3 * 1024 * 1024 + 17
    assert os.getxattr(mnt, "user.dlfs.version").decode() == published.split("@")[1]
    # umount(8), as a user or systemd would, ends the daemon cleanly.
    res = run("umount", mnt)
    assert res.returncode == 0, res.stderr
    assert wait_for(lambda: not process_alive(pid))
    assert not is_mounted(mnt) and mountregistry.read_record(Home.at(home), mnt) is None


def test_verbose_fake_and_the_whole_catalog(published: str, home: Path, mnt: Path) -> None:
    res = run(HELPER, "catalog:", mnt, "-f", "-v", "-o", f"home={home}")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("mount.dlfs: would mount the whole catalog")
    assert not is_mounted(mnt)
    # The same helper, as the command the package installs next to `dlfs`.
    res = run(VENV_BIN / "mount.dlfs", published, mnt, "-fv", "-o", f"home={home}")
    assert res.returncode == 0 and res.stdout.startswith(f"mount.dlfs: would mount {published}")
    res = run(HELPER, "catalog:", mnt, "-v", "-o", "rw,defaults", DLFS_HOME=str(home))
    assert res.returncode == 0, res.stderr
    assert (
        "ignored options: rw,defaults" in res.stdout and "mounted the whole catalog" in res.stdout
    )
    assert (mnt / "cats" / "latest" / "one.bin").read_bytes() == b"x"
    assert run("umount", mnt).returncode == 0


def test_failures_are_one_line_and_mount_nothing(published: str, home: Path, mnt: Path) -> None:
    cases = [
        (["cats@nope", mnt, "-o", f"home={home}"], 32, "mount.dlfs: error: unknown ref"),
        ([published, mnt, "-o", f"bogus,home={home}"], 32, "unknown mount option 'bogus'"),
        ([published, mnt / "missing", "-o", f"home={home}"], 32, "does not exist"),
        ([published], 1, "mount.dlfs: error: expected SOURCE and MOUNTPOINT"),
    ]
    for args, code, message in cases:
        res = run(HELPER, *args)
        assert res.returncode == code, (args, res.stderr)
        assert message in res.stderr.splitlines()[0], res.stderr
        assert not is_mounted(mnt)


def test_the_interpreter_comes_from_dlfs_python(published: str, home: Path, mnt: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "DLFS_PYTHON": sys.executable}
    res = subprocess.run(
        [str(HELPER), published, str(mnt), "-o", f"home={home}"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    assert (mnt / "one.bin").read_bytes() == b"x"
    assert run("umount", mnt).returncode == 0
    if shutil.which(
        "dlfs", path="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/opt/dlfs/.venv/bin"
    ):
        return  # installed system-wide here: the helper would find it
    res = subprocess.run(
        [str(HELPER), published, str(mnt)],
        capture_output=True,
        text=True,
        env={"PATH": "/nowhere"},
        timeout=60,
    )
    assert res.returncode == 32 and "the dlfs command is not on PATH" in res.stderr


# -- mount -t fuse.dlfs and /etc/fstab, for real -----------------------------------------------


def can_overlay() -> bool:
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    probe = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "true"], capture_output=True
    )
    return probe.returncode == 0


@pytest.mark.skipif(not can_overlay(), reason="needs root and unshare -m (mount namespaces)")
def test_mount_t_fuse_dlfs_and_an_fstab_line(
    published: str, home: Path, mnt: Path, tmp_path: Path
) -> None:
    sbin, local_bin = tmp_path / "sbin", tmp_path / "local-bin"
    sbin.mkdir()
    local_bin.mkdir()
    shutil.copy2(HELPER, sbin / "mount.fuse.dlfs")  # install -m 755 ... /sbin/mount.fuse.dlfs
    (local_bin / "dlfs").symlink_to(VENV_BIN / "dlfs")  # ln -s .venv/bin/dlfs /usr/local/bin/
    fstab = tmp_path / "fstab"
    fstab.write_text(f"{published}  {mnt}  fuse.dlfs  ro,home={home},_netdev,nofail  0 0\n")
    real_sbin, real_local = os.path.realpath("/sbin"), os.path.realpath("/usr/local/bin")
    script = f"""
set -e
trap 'umount -l {mnt} 2>/dev/null || true' EXIT
mount -t overlay overlay -o lowerdir={sbin}:{real_sbin} {real_sbin}
mount -t overlay overlay -o lowerdir={local_bin}:{real_local} {real_local}
mount -t fuse.dlfs {published} {mnt} -o ro,home={home}
findmnt -n -o FSTYPE,SOURCE {mnt}
cat {mnt}/text/hello.txt
umount {mnt}
echo unmounted
mount -T {fstab} {mnt}
ls {mnt}/images
umount {mnt}
echo done
"""
    res = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", script],
        capture_output=True,
        text=True,
        env=helper_env(),
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    lines = res.stdout.split()
    assert lines[:5] == ["fuse.dlfs", "dlfs", "hello", "world", "unmounted"]
    assert lines[-3:] == ["train", "val", "done"]
    # Each daemon exited after its umount: nothing is left in the registry.
    assert wait_for(lambda: mountregistry.records(Home.at(home)) == [])


# -- the systemd unit ------------------------------------------------------------------------


UNIT = ROOT / "packaging" / "dlfs@.service"


def unit_commands(text: str) -> dict[str, list[str]]:
    """``{ExecStartPre: command line, ...}`` of a unit file's [Service] section."""
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.startswith("Exec"):
            found.setdefault(key, []).append(value)
    return found


def expand(command: str, env: dict[str, str]) -> list[str]:
    """Expand a command line as systemd does: ``${VAR}`` is one word, ``$VAR`` alone
    splits into zero or more words."""
    words: list[str] = []
    for word in command.split():
        if word.startswith("${") and word.endswith("}"):
            words.append(env.get(word[2:-1], ""))
        elif word.startswith("$"):
            words.extend(env.get(word[1:], "").split())
        else:
            words.append(word)
    return words


def test_the_systemd_unit_is_valid(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    # A copy whose dlfs is the one of this checkout (the template names /usr/local/bin).
    instance = tmp_path / "dlfs@cats.service"
    instance.write_text(UNIT.read_text().replace("/usr/local/bin/dlfs", str(VENV_BIN / "dlfs")))
    res = subprocess.run([analyze, "verify", str(instance)], capture_output=True, text=True)
    assert res.returncode == 0 and res.stderr.strip() == "", res.stderr


@pytest.mark.parametrize("whole_catalog", [False, True])
def test_the_systemd_unit_commands_mount_and_unmount(
    published: str, home: Path, tmp_path: Path, whole_catalog: bool
) -> None:
    """Run the unit's commands as systemd would, with a config file as documented."""
    mountpoint = tmp_path / "srv" / "cats"  # made by ExecStartPre
    conf = {
        "DLFS_HOME": str(home),
        "DLFS_REF": "" if whole_catalog else published,
        "DLFS_MOUNTPOINT": str(mountpoint),
        "DLFS_MOUNT_OPTIONS": "-o noatime",
    }
    commands = unit_commands(UNIT.read_text())
    assert set(commands) == {"ExecStartPre", "ExecStart", "ExecStop"}

    def execute(key: str) -> None:
        for line in commands[key]:
            argv = expand(line, conf)
            if argv[0] == "/usr/local/bin/dlfs":
                argv[0] = str(VENV_BIN / "dlfs")
            res = subprocess.run(argv, capture_output=True, text=True, timeout=120)
            assert res.returncode == 0, (argv, res.stderr)

    try:
        execute("ExecStartPre")
        execute("ExecStart")
        pid = daemon_pid(home, mountpoint)
        inside = mountpoint / "cats" / "latest" if whole_catalog else mountpoint
        assert (inside / "one.bin").read_bytes() == b"x"
        execute("ExecStop")
        assert not is_mounted(mountpoint) and not process_alive(pid)
    finally:
        clear(home, mountpoint)

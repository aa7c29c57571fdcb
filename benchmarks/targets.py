"""What the read benches read: the same tree, served four (five) ways.

- ``plain``: the source directory itself (the physical limit);
- ``bindfs``: bindfs of it, a C passthrough tuned for speed, as issue 3 names it;
- ``passthrough``: :mod:`benchmarks.passthrough`, the Python (pyfuse3 + trio) peer;
- ``dlfs``: the same tree imported into a dlfs catalog, published, and mounted with
  ``dlfs mount cats@latest MNT``;
- ``dlfs-w1``: the same, mounted with ``--workers 1`` (one serving process), when
  ``dlfs mount`` has that option (issue 17).

A target is a context manager factory: ``with target.mounted() as root:`` yields a
folder whose layout is the source tree's, mounted fresh (so the kernel has forgotten
it), and unmounts in a ``finally`` whatever happens. Every process a target starts is
stopped by its own pid.
"""

from __future__ import annotations

import abc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from dlfsd.readahead import READ_AHEAD_KIB, bdi_setting

from benchmarks import system

BINDFS_OPTIONS = "ro,kernel_cache,entry_timeout=300,attr_timeout=300"
DATASET = "cats"
DLFS = [sys.executable, "-m", "dlfs"]


class Target(abc.ABC):
    """One way of serving the source tree."""

    name: str
    description: str

    def __init__(self, source: Path, scratch: Path) -> None:
        self.source = source
        self.scratch = scratch

    def skip_reason(self) -> str | None:
        """Why this target cannot run here (None: it can)."""
        return None

    def prepare(self) -> dict[str, Any]:
        """One-time set-up before any mount; returns figures worth reporting."""
        return {}

    @abc.abstractmethod
    @contextmanager
    def mounted(self) -> Iterator[Path]:
        """A fresh mount of the tree, unmounted on exit."""

    def _mountpoint(self) -> Path:
        return Path(tempfile.mkdtemp(prefix=f"{self.name}-", dir=self.scratch))


class Plain(Target):
    name = "plain"
    description = "the source directory (ext4), no FUSE"

    @contextmanager
    def mounted(self) -> Iterator[Path]:
        yield self.source


class _Process(Target):
    """A FUSE server run in front as a child process, unmounted with fusermount3."""

    def command(self, mountpoint: Path) -> list[str]:
        raise NotImplementedError

    def ready(self, mountpoint: Path) -> None:
        """Wait, after the mount appeared, for what the server does before reading."""

    @contextmanager
    def mounted(self) -> Iterator[Path]:
        mnt = self._mountpoint()
        proc = subprocess.Popen(
            self.command(mnt), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        try:
            system.wait_for_mount(mnt, proc)
            self.ready(mnt)
            yield mnt
        finally:
            system.unmount(mnt)
            system.stop(proc)
            if proc.stderr:
                proc.stderr.close()
            _rmdir(mnt)


class Bindfs(_Process):
    name = "bindfs"
    description = f"bindfs --multithreaded -o {BINDFS_OPTIONS}"

    def skip_reason(self) -> str | None:
        return None if shutil.which("bindfs") else "bindfs is not installed"

    def command(self, mountpoint: Path) -> list[str]:
        return [
            "bindfs",
            "-f",
            "--multithreaded",
            "-o",
            BINDFS_OPTIONS,
            str(self.source),
            str(mountpoint),
        ]


class Passthrough(_Process):
    name = "passthrough"
    description = "benchmarks/passthrough.py: pyfuse3 + trio, timeouts 300 s, keep_cache"

    def command(self, mountpoint: Path) -> list[str]:
        return [sys.executable, "-m", "benchmarks.passthrough", str(self.source), str(mountpoint)]

    def ready(self, mountpoint: Path) -> None:
        """Its read-ahead raised, as dlfs's daemon does before saying it is mounted
        (root only; a file opened before keeps the old read-ahead)."""
        if os.geteuid() != 0:
            return
        setting = Path(bdi_setting(str(mountpoint)))
        deadline = time.monotonic() + 5
        while int(setting.read_text()) < READ_AHEAD_KIB and time.monotonic() < deadline:
            time.sleep(0.01)


class Dlfs(Target):
    """The tree imported into a catalog of its own (cached beside the tree)."""

    name = "dlfs"
    description = f"dlfs mount {DATASET}@latest (tree imported with dlfs add, published)"
    mount_args: tuple[str, ...] = ()
    """Extra ``dlfs mount`` arguments (``--workers 1`` for ``dlfs-w1``)."""

    def __init__(self, source: Path, scratch: Path, reimport: bool = False) -> None:
        super().__init__(source, scratch)
        self.home = source.parent / "dlfs-home"
        self.stamp = source.parent / "dlfs-import.json"
        self.reimport = reimport
        self._workers: list[int] = []

    def dlfs(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [*DLFS, "--home", str(self.home), *args], capture_output=True, text=True
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"dlfs {' '.join(args)} failed: {done.stderr.strip()}")
        return done

    def skip_reason(self) -> str | None:
        done = subprocess.run([*DLFS, "mount", "--help"], capture_output=True, text=True)
        if done.returncode != 0:
            return "`dlfs mount` does not exist yet (dlfs/cli/mount.py, daemon/ in progress)"
        return None

    def prepare(self) -> dict[str, Any]:
        """Import the tree, unless a catalog imported by the same import code exists."""
        code = _import_code_digest()
        if not self.reimport and self.stamp.exists():
            stamp = json.loads(self.stamp.read_text())
            same_code = stamp.get("code") == code
            if same_code and self.dlfs("ls", f"{DATASET}@latest", check=False).returncode == 0:
                return {"import": stamp, "import_cached": True}
        shutil.rmtree(self.home, ignore_errors=True)
        self.stamp.unlink(missing_ok=True)
        self.dlfs("dataset", "create", DATASET)
        print(f"bench: importing {self.source} into dlfs ...", file=sys.stderr, flush=True)
        start = time.perf_counter()
        self.dlfs("add", DATASET, str(self.source))
        added = time.perf_counter()
        self.dlfs("publish", DATASET)
        figures = {
            "add_s": added - start,
            "publish_s": time.perf_counter() - added,
            "code": code,
        }
        self.stamp.write_text(json.dumps(figures) + "\n")
        return {"import": figures, "import_cached": False}

    def _record(self, mountpoint: Path) -> dict[str, Any]:
        done = self.dlfs("mounts", "--json", check=False)
        try:
            mounts = json.loads(done.stdout)
        except ValueError:
            return {}
        if isinstance(mounts, dict):
            mounts = mounts.get("mounts", [])
        for m in mounts if isinstance(mounts, list) else []:
            where = m.get("mountpoint") or m.get("path") or m.get("mount")
            if where and Path(where).resolve() == mountpoint.resolve():
                return dict(m)
        return {}

    def _daemon_pid(self, mountpoint: Path) -> int | None:
        pid = self._record(mountpoint).get("pid")
        return int(pid) if pid else None

    def worker_usage(self) -> list[tuple[int, float, int]]:
        """``(pid, CPU seconds, RSS bytes)`` of each process serving the current mount."""
        out = []
        for pid in self._workers:
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                with open(f"/proc/{pid}/statm") as f:
                    rss_pages = int(f.read().split()[1])
            except (OSError, IndexError, ValueError):
                continue
            cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            out.append((pid, cpu, rss_pages * os.sysconf("SC_PAGESIZE")))
        return out

    @contextmanager
    def mounted(self) -> Iterator[Path]:
        mnt = self._mountpoint()
        pid = None
        try:
            self.dlfs("mount", *self.mount_args, f"{DATASET}@latest", str(mnt))
            system.wait_for_mount(mnt, None, timeout=10)
            record = self._record(mnt)
            pid = int(record["pid"]) if record.get("pid") else None
            self._workers = [int(p) for p in record.get("workers") or ([pid] if pid else [])]
            before = {p: cpu for p, cpu, _rss in self.worker_usage()}
            yield mnt
            usage = self.worker_usage()
            shown = "  ".join(
                f"{p}: {cpu - before.get(p, 0.0):.2f} s CPU, {rss >> 20} MiB RSS"
                for p, cpu, rss in usage
            )
            print(f"bench: {self.name} workers  {shown}", file=sys.stderr, flush=True)
        finally:
            self.dlfs("umount", str(mnt), check=False)
            system.unmount(mnt)
            if pid is not None:
                _wait_gone(pid)
            _rmdir(mnt)


class DlfsOneWorker(Dlfs):
    """The same catalog served by one process (``--workers 1``), beside the default."""

    name = "dlfs-w1"
    description = f"dlfs mount --workers 1 {DATASET}@latest (one process)"
    mount_args = ("--workers", "1")


def _import_code_digest() -> str:
    """A digest of the code that decides what an import writes (catalog schema, ids,
    importer, stores): when it changes, the cached dlfs catalog is imported again."""
    import hashlib

    import dlfs

    root = Path(dlfs.__file__).parent
    digest = hashlib.sha256()
    files = [root / "objects.py", root / "ops" / "importer.py"]
    files += sorted((root / "catalog").glob("*.py")) + sorted((root / "stores").glob("*.py"))
    for path in files:
        if path.exists():
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def _wait_gone(pid: int, timeout: float = 10) -> None:
    """Wait for a daemon this run mounted to exit; SIGTERM it by pid if it lingers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    with suppress(ProcessLookupError):
        os.kill(pid, 15)


def _rmdir(path: Path) -> None:
    try:
        path.rmdir()
    except OSError as exc:
        print(f"bench: cannot remove mountpoint {path}: {exc}", file=sys.stderr)


def make(names: tuple[str, ...], source: Path, scratch: Path, reimport: bool) -> list[Target]:
    """The targets named, in the order given."""
    out: list[Target] = []
    for name in names:
        if name == "plain":
            out.append(Plain(source, scratch))
        elif name == "bindfs":
            out.append(Bindfs(source, scratch))
        elif name == "passthrough":
            out.append(Passthrough(source, scratch))
        elif name == "dlfs":
            out.append(Dlfs(source, scratch, reimport))
        elif name == "dlfs-w1":
            out.append(DlfsOneWorker(source, scratch, reimport and "dlfs" not in names))
        else:
            raise SystemExit(f"unknown target {name!r}")
    return out

"""The machine under the benchmarks: page cache, mounts, and what it is.

Cold means the kernel forgets everything it cached: ``sync`` then
``echo 3 > /proc/sys/vm/drop_caches`` (root only) and, for a FUSE target, a fresh
mount. Mounts made here are always undone with ``fusermount3 -u``, then ``-u -z`` if
the first attempt finds the mount busy.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

_warned = False


def drop_caches() -> bool:
    """Flush dirty pages and drop the page, dentry and inode caches.

    Returns False (and warns once) when this process may not, in which case "cold"
    figures are really warm.
    """
    global _warned
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError as exc:
        if not _warned:
            print(f"bench: cannot drop caches ({exc}); cold figures are warm", file=sys.stderr)
            _warned = True
        return False


def wait_for_mount(path: Path, proc: subprocess.Popen[bytes] | None, timeout: float = 30) -> None:
    """Return once ``path`` is a mountpoint; raise if ``proc`` dies or time runs out."""
    deadline = time.monotonic() + timeout
    while not os.path.ismount(path):
        if proc is not None and proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise RuntimeError(f"mount of {path} failed (exit {proc.returncode}): {err.strip()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{path} is not mounted after {timeout:.0f} s")
        time.sleep(0.02)


def unmount(path: Path) -> None:
    """Unmount a FUSE mount; lazily if it is busy. Quiet when nothing is mounted."""
    if not os.path.ismount(path):
        return
    done = subprocess.run(["fusermount3", "-u", str(path)], capture_output=True)
    if done.returncode != 0 and os.path.ismount(path):
        subprocess.run(["fusermount3", "-u", "-z", str(path)], capture_output=True)


def stop(proc: subprocess.Popen[bytes], timeout: float = 10) -> None:
    """Wait for a process this run started to exit; SIGTERM, then SIGKILL, by pid."""
    try:
        proc.wait(timeout=timeout)
        return
    except subprocess.TimeoutExpired:
        proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _cmd(*args: str) -> str:
    try:
        out = subprocess.run(args, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (out.stdout or out.stderr).strip()


def _meminfo_gib() -> float:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / (1 << 20)
    return 0.0


def _cpu_model() -> str:
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


def _disk(path: Path) -> dict[str, Any]:
    source = _cmd("findmnt", "-n", "-o", "SOURCE", "-T", str(path))
    fstype = _cmd("findmnt", "-n", "-o", "FSTYPE", "-T", str(path))
    name = Path(source).name
    rotational = None
    rot = Path(f"/sys/block/{name}/queue/rotational")
    if rot.exists():
        rotational = rot.read_text().strip() == "1"
    usage = shutil.disk_usage(path)
    return {
        "device": source,
        "fstype": fstype,
        "rotational_flag": rotational,
        "size_gib": round(usage.total / (1 << 30)),
        "free_gib": round(usage.free / (1 << 30)),
    }


def machine(data_dir: Path) -> dict[str, Any]:
    """What the figures were measured on."""
    import pyfuse3
    import trio

    bindfs = _cmd("bindfs", "--version").splitlines()
    fuse = _cmd("fusermount3", "--version")
    return {
        "nproc": os.cpu_count(),
        "cpu": _cpu_model(),
        "memory_gib": round(_meminfo_gib(), 1),
        "kernel": platform.release(),
        "os": _cmd("sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"),
        "disk": _disk(data_dir),
        "python": platform.python_version(),
        "pyfuse3": pyfuse3.__version__,
        "trio": trio.__version__,
        "bindfs": bindfs[0] if bindfs else None,
        "fusermount3": fuse,
        "git": _cmd("git", "-C", str(Path(__file__).parent), "rev-parse", "--short", "HEAD"),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
    }

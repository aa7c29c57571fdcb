"""Cold small files through one mount served by 1 or N processes, with each process's
CPU: ``python -m benchmarks.workers_cpu DIR [ROUNDS]``.

ROUNDS (default ``1,2,bindfs,2,1``) says what to mount in turn: a number is ``dlfs
mount --workers N``, ``bindfs`` a read-only bindfs of the source tree. Each round runs
two cold passes over 2,000 files of 16-256 KiB in 20 folders (made in DIR on the
first run, with a catalog beside them), each on a fresh mount after dropping the
page cache: 4 reader threads, then 1. It prints files/s, the daemon CPU per file
(all processes together, from ``/proc/PID/stat``) and each process's share of it.
Needs root (to drop caches) and FUSE; about a minute per round on a quiet 2-core
machine. Ratios mean something only within one run (see ``docs/performance.md``).
"""

from __future__ import annotations

import functools
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

FILES = 2_000
TICK = os.sysconf("SC_CLK_TCK")


def build(src: Path, home: Path) -> None:
    """The files (seeded, so every run reads the same bytes) and a published version."""
    from dlfs import Catalog

    rng = random.Random(7)
    pool = rng.randbytes(1 << 20)
    for i in range(FILES):
        folder = src / f"d{i % 20:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        size = rng.randint(16, 256) * 1024
        at = rng.randint(0, len(pool) - size)
        (folder / f"f{i:05d}.bin").write_bytes(i.to_bytes(8, "little") + pool[at : at + size - 8])
    with Catalog(home) as cat:
        cat.create_dataset("cats")
        cat.add("cats", [src])
        cat.publish("cats")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def drop_caches() -> None:
    os.sync()
    Path("/proc/sys/vm/drop_caches").write_text("3")


def read_files(root: Path, paths: list[str], threads: int) -> float:
    """Read every file whole, ``threads`` readers sharing the list; files/s."""

    def reader(part: list[str]) -> None:
        buf = bytearray(1 << 20)
        for rel in part:
            fd = os.open(os.path.join(root, rel), os.O_RDONLY)
            try:
                while os.readv(fd, [buf]):
                    pass
            finally:
                os.close(fd)

    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(reader, [paths[i::threads] for i in range(threads)]))
    return len(paths) / (time.perf_counter() - start)


@contextmanager
def mounted(what: str, src: Path, home: Path, mnt: Path) -> Iterator[list[int]]:
    """Mount ``what``; the pids serving it (none for bindfs)."""
    if what == "bindfs":
        subprocess.run(["bindfs", "-r", str(src), str(mnt)], check=True)
        try:
            yield []
        finally:
            subprocess.run(["fusermount3", "-u", str(mnt)], check=True)
        return
    dlfs = [sys.executable, "-m", "dlfs", "--home", str(home)]
    subprocess.run(
        [*dlfs, "mount", "--workers", what, "cats@latest", str(mnt)],
        check=True,
        capture_output=True,
    )
    try:
        out = subprocess.run(
            [*dlfs, "mounts", "--json"], check=True, capture_output=True, text=True
        ).stdout
        mine = [m for m in json.loads(out) if str(mnt) in (m.get("mountpoint"), m.get("path"))]
        record = mine[0]
        yield [int(p) for p in record.get("workers") or [record["pid"]]]
    finally:
        subprocess.run([*dlfs, "umount", str(mnt)], check=True, capture_output=True)


def measure(
    what: str, src: Path, home: Path, mnt: Path, run: Callable[[Path], float]
) -> tuple[float, list[float]]:
    with mounted(what, src, home, mnt) as pids:
        drop_caches()
        before = [cpu_seconds(p) for p in pids]
        rate = run(mnt)
        used = [cpu_seconds(p) - b for p, b in zip(pids, before, strict=True)]
    return rate, used


def main() -> None:
    base = Path(sys.argv[1]).resolve()
    rounds = (sys.argv[2] if len(sys.argv) > 2 else "1,2,bindfs,2,1").split(",")
    src, home, mnt = base / "src", base / "home", base / "mnt"
    if not home.exists():
        build(src, home)
    paths = sorted(str(p.relative_to(src)) for p in src.rglob("*.bin"))
    random.Random(3).shuffle(paths)
    mnt.mkdir(exist_ok=True)

    def read(root: Path, threads: int) -> float:
        return read_files(root, paths, threads)

    for what in rounds:
        label = "bindfs" if what == "bindfs" else f"dlfs --workers {what}"
        for threads in (4, 1):
            rate, used = measure(what, src, home, mnt, functools.partial(read, threads=threads))
            line = f"{label:18} {threads} reader(s): {rate:7.0f} files/s"
            total = sum(used)
            if total:
                shares = " / ".join(f"{u / total:.0%}" for u in used)
                line += f", daemon CPU {total * 1e3 / len(paths):.2f} ms/file ({shares})"
            print(line, flush=True)


if __name__ == "__main__":
    main()

"""Writing into a draft mount vs bindfs: ``python -m benchmarks.bench_writes``.

What is timed, for each target, on the same source tree (read once first, so every
copy reads it from the page cache and only the writing differs):

- ``small``: ``cp -r`` of ``N`` files of ~100 KiB (50-150 KiB, distinct contents) in
  ``N/200`` folders into the target (default 20,000 files);
- ``large``: ``cp`` of one file of ``L`` MiB (default 1,024);

Targets: ``plain`` (an ext4 folder: the floor, for reference), ``bindfs`` (``bindfs
--multithreaded`` of an empty ext4 folder, read-write, default options) and ``dlfs``
(a fresh catalog's empty draft mounted with ``dlfs mount cats@draft``). After the
dlfs copy, ``sync`` is timed (writing the copied bytes to the disk: a publish
flushes what the mount wrote, so this much is part of the first publish after a big
copy), then ``publish`` of that draft, in process (the library call ``dlfs publish``
makes); its cost is O(changed folders): the count of mutable folders it froze is
shown beside it. Copies are checked (file count and the bytes of a sample).

Rounds alternate the targets; the figure is the median. Settings:
``DLFS_BENCH_WRITE_FILES`` (20,000; 2,000 with ``DLFS_BENCH_QUICK=1``),
``DLFS_BENCH_WRITE_LARGE_MIB`` (1,024; 256 quick), ``DLFS_BENCH_WRITE_ROUNDS`` (3; 1
quick), ``DLFS_BENCH_DIR`` (where the scratch goes; default the system temp dir).
The generated source is kept there between runs (``bench-writes-src-*``); everything
else is deleted.
"""

from __future__ import annotations

import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dlfs.api import Catalog

TARGETS = ("plain", "bindfs", "dlfs")
DLFS = [sys.executable, "-m", "dlfs"]
POOL_BYTES = 64 << 20


def _log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def _int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return default if value in (None, "") else int(value)


def make_source(base: Path, files: int, large_mib: int) -> Path:
    """The source tree (kept between runs): ``small/dNNN/fNNNNN.bin`` and ``large.bin``."""
    root = base / f"bench-writes-src-{files}-{large_mib}"
    if (root / ".complete").exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    _log(f"generating {files:,} files of ~100 KiB and {large_mib} MiB in {root}")
    rnd = random.Random(11)
    pool = rnd.randbytes(POOL_BYTES)
    folders = max(1, files // 200)
    for i in range(files):
        folder = root / "small" / f"d{i % folders:03d}"
        if i < folders:
            folder.mkdir(parents=True)
        size = rnd.randint(50 << 10, 150 << 10)
        start = rnd.randrange(0, POOL_BYTES - size)
        header = f"file {i}\n".encode()
        (folder / f"f{i:05d}.bin").write_bytes(header + pool[start : start + size - len(header)])
    with open(root / "large.bin", "wb") as out:
        for mib in range(large_mib):
            start = (mib * 7919 * 4096) % (POOL_BYTES - (1 << 20))
            out.write(f"MiB {mib}\n".encode().ljust(64) + pool[start : start + (1 << 20) - 64])
    (root / ".complete").touch()
    return root


def _warm(root: Path) -> None:
    """Read the whole source so every copy reads it from the page cache."""
    subprocess.run(["tar", "-cf", "/dev/null", "-C", str(root), "."], check=True)


def _timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - start


def _wait_mounted(path: Path, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not os.path.ismount(path):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"bindfs did not mount {path}")
        time.sleep(0.02)


@contextmanager
def mounted(target: str, scratch: Path) -> Iterator[tuple[Path, Path | None]]:
    """A fresh, empty, writable folder of ``target``: ``(folder, dlfs home or None)``;
    unmounted and deleted afterwards. Processes started here are stopped by pid."""
    work = Path(tempfile.mkdtemp(prefix=f"{target}-", dir=scratch))
    try:
        if target == "plain":
            (work / "dst").mkdir()
            yield work / "dst", None
        elif target == "bindfs":
            (work / "dst").mkdir()
            (work / "mnt").mkdir()
            proc = subprocess.Popen(
                ["bindfs", "-f", "--multithreaded", str(work / "dst"), str(work / "mnt")],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                _wait_mounted(work / "mnt", proc)
                yield work / "mnt", None
            finally:
                subprocess.run(["fusermount3", "-u", "-z", str(work / "mnt")], check=False)
                proc.terminate()
                proc.wait(timeout=30)
        else:
            home = work / "home"
            env = {**os.environ, "DLFS_HOME": str(home)}
            subprocess.run(
                [*DLFS, "dataset", "create", "cats"], env=env, check=True, stdout=subprocess.DEVNULL
            )
            (work / "mnt").mkdir()
            subprocess.run(
                [*DLFS, "mount", "cats@draft", str(work / "mnt")],
                env=env,
                check=True,
                stdout=subprocess.DEVNULL,
            )
            try:
                yield work / "mnt", home
            finally:
                done = subprocess.run([*DLFS, "umount", str(work / "mnt")], env=env, check=False)
                if done.returncode != 0:
                    subprocess.run([*DLFS, "umount", "--lazy", str(work / "mnt")], env=env)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _check(src: Path, dst: Path, files: int) -> None:
    copied = sum(len(f) for _d, _s, f in os.walk(dst / "small"))
    if copied != files:
        raise RuntimeError(f"{dst}: {copied} files copied, expected {files}")
    sample = sorted((src / "small").rglob("*.bin"))[:: max(1, files // 50)]
    for path in sample:
        rel = path.relative_to(src)
        if (dst / rel).read_bytes() != path.read_bytes():
            raise RuntimeError(f"{dst / rel} differs from its source")
    if (dst / "large.bin").stat().st_size != (src / "large.bin").stat().st_size:
        raise RuntimeError(f"{dst}/large.bin has the wrong size")


def _publish(home: Path) -> tuple[float, int]:
    with Catalog(home) as cat:
        folders = cat.db.draft_tree_count(cat.draft("cats").id)
        start = time.perf_counter()
        cat.publish("cats")
        return time.perf_counter() - start, folders


def one_round(target: str, src: Path, scratch: Path, files: int) -> dict[str, float]:
    """Copy the small files, then the large one, into a fresh ``target``."""
    _warm(src)
    with mounted(target, scratch) as (dst, home):
        small = _timed(["cp", "-r", str(src / "small"), str(dst / "small")])
        large = _timed(["cp", str(src / "large.bin"), str(dst / "large.bin")])
        _check(src, dst, files)
        out = {"small_s": small, "large_s": large}
        if home is not None:
            # What reaches the disk first (publish flushes what the mount wrote, so a
            # published version survives power loss), then publish proper.
            out["flush_s"] = _timed(["sync"])
            out["publish_s"], out["folders_frozen"] = _publish(home)
    return out


def run(files: int, large_mib: int, rounds: int, base: Path) -> dict[str, Any]:
    """Every round of every target; the medians and the ratios to bindfs."""
    src = make_source(base, files, large_mib)
    scratch = Path(tempfile.mkdtemp(prefix="bench-writes-", dir=base))
    samples: dict[str, list[dict[str, float]]] = {t: [] for t in TARGETS}
    available = [t for t in TARGETS if t != "bindfs" or shutil.which("bindfs")]
    try:
        for r in range(rounds):
            for target in available:
                _log(f"round {r + 1}/{rounds}: {target}")
                samples[target].append(one_round(target, src, scratch, files))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    small_mib = sum(p.stat().st_size for p in (src / "small").rglob("*.bin")) / 2**20
    medians = {
        t: {k: statistics.median(s[k] for s in runs) for k in runs[0]}
        for t, runs in samples.items()
        if runs
    }
    result: dict[str, Any] = {
        "files": files,
        "small_mib": round(small_mib, 1),
        "large_mib": large_mib,
        "rounds": rounds,
        "medians": medians,
        "samples": samples,
    }
    if "bindfs" in medians and "dlfs" in medians:
        b, d = medians["bindfs"], medians["dlfs"]
        result["dlfs_vs_bindfs"] = {
            "small": round(b["small_s"] / d["small_s"], 2),
            "large": round(b["large_s"] / d["large_s"], 2),
        }
    return result


def print_table(result: dict[str, Any]) -> None:
    """The figures as a small table (speed: files/s and MiB/s; ratio vs bindfs)."""
    files, large = result["files"], result["large_mib"]
    print(
        f"writes: cp -r of {files:,} files ({result['small_mib']:.0f} MiB) and cp of one"
        f" {large} MiB file, median of {result['rounds']} round(s)"
    )
    print(
        f"{'target':8} {'small s':>8} {'files/s':>8} {'large s':>8} {'MiB/s':>7}"
        f" {'sync s':>7} {'publish s':>9}"
    )
    for target, m in result["medians"].items():
        if "publish_s" in m:
            pub = f"{m['flush_s']:7.2f} {m['publish_s']:9.3f}"
        else:
            pub = f"{'-':>7} {'-':>9}"
        print(
            f"{target:8} {m['small_s']:8.2f} {files / m['small_s']:8.0f}"
            f" {m['large_s']:8.2f} {large / m['large_s']:7.0f} {pub}"
        )
    for target, runs in result["samples"].items():
        if len(runs) > 1:
            small = ", ".join(f"{r['small_s']:.2f}" for r in runs)
            big = ", ".join(f"{r['large_s']:.2f}" for r in runs)
            print(f"  {target} rounds: small {small} s; large {big} s")
    ratio = result.get("dlfs_vs_bindfs")
    if ratio:
        print(
            f"dlfs vs bindfs (speed, >= 0.5 wanted): small {ratio['small']:.2f}x,"
            f" large {ratio['large']:.2f}x"
        )
    dlfs = result["medians"].get("dlfs")
    if dlfs and "folders_frozen" in dlfs:
        print(
            f"publish froze {dlfs['folders_frozen']:.0f} changed folders"
            f" ({files:,} files) in {dlfs['publish_s']:.3f} s"
        )


def measure() -> dict[str, Any]:
    """Run the benchmark with the settings of the environment; return the figures."""
    quick = os.environ.get("DLFS_BENCH_QUICK") == "1"
    files = _int("DLFS_BENCH_WRITE_FILES", 2_000 if quick else 20_000)
    large_mib = _int("DLFS_BENCH_WRITE_LARGE_MIB", 256 if quick else 1_024)
    rounds = _int("DLFS_BENCH_WRITE_ROUNDS", 1 if quick else 3)
    base = Path(os.environ.get("DLFS_BENCH_DIR") or tempfile.gettempdir())
    base.mkdir(parents=True, exist_ok=True)
    return run(files, large_mib, rounds, base)


def main() -> None:
    """Run the benchmark and print its table (``make bench`` calls this; use
    :func:`measure` for the figures as a dict)."""
    print_table(measure())


if __name__ == "__main__":
    main()

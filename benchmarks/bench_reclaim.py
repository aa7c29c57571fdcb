"""Disk used by a draft mount: ``python -m benchmarks.bench_reclaim``.

Two writers run in a fresh catalog's draft, mounted with ``dlfs mount``:

- ``append``: ``A`` appends of 1 MiB to one file, each an ``open(..., "ab")``, a
  write and a close (what ``cat chunk >> file`` does); default 40;
- ``fsx``: an fsx-style driver (:func:`fsx`): ``N`` random operations on one file
  of at most 4 MiB (write at a random offset, truncate, read and check against a
  model), each in its own open and close, so every operation commits; default 2,000.

After every close the blob store's size (the blob files of ``<home>/blobs``: block
manifests, 16 bytes a block, and the staging folder aside) is divided by the file's
size: the worst ratio while mounted is shown, then the ratio after unmounting and
publishing (``dlfs publish`` in process), and the time the writer took. Settings:
``DLFS_BENCH_RECLAIM_APPENDS`` (40; 10 with ``DLFS_BENCH_QUICK=1``),
``DLFS_BENCH_RECLAIM_OPS`` (2,000; 300 quick), ``DLFS_BENCH_DIR`` (the scratch).
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from dlfs.api import Catalog

DLFS = [sys.executable, "-m", "dlfs"]
MIB = 1 << 20
FSX_MAX = 4 * MIB


def _int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return default if value in (None, "") else int(value)


def store_bytes(home: Path) -> int:
    """The bytes of the blob files of the local store."""
    root = home / "blobs"
    if not root.is_dir():
        return 0
    return sum(
        e.stat().st_size
        for shard in os.scandir(root)
        if shard.is_dir() and len(shard.name) == 2
        for e in os.scandir(shard.path)
        if len(e.name) == 32
    )


def _dlfs(home: Path, *args: str) -> None:
    env = {**os.environ, "DLFS_HOME": str(home)}
    subprocess.run([*DLFS, "--home", str(home), *args], check=True, env=env, capture_output=True)


def appends(path: Path, count: int, probe: Any) -> bytes:
    """``count`` appends of 1 MiB, each its own open and close; the expected bytes."""
    expected = bytearray()
    for i in range(count):
        chunk = bytes([i % 251]) * (MIB - 1) + b"\n"
        with open(path, "ab") as f:
            f.write(chunk)
        expected += chunk
        probe(len(expected))
    return bytes(expected)


def fsx(path: Path, ops: int, probe: Any, seed: int = 15) -> bytes:
    """fsx-style: random writes, truncates and checked reads on one file, each op in
    its own open and close; a read that differs from the model raises."""
    rng = random.Random(seed)
    model = bytearray()
    path.write_bytes(b"")
    for n in range(ops):
        op = rng.random()
        if op < 0.55:
            off = rng.randrange(0, min(len(model) + 65536, FSX_MAX - 1))
            data = rng.randbytes(rng.randrange(1, min(65536, FSX_MAX - off) + 1))
            with open(path, "r+b") as f:
                f.seek(off)
                f.write(data)
            if off > len(model):
                model += bytes(off - len(model))
            model[off : off + len(data)] = data
        elif op < 0.7:
            size = rng.randrange(0, FSX_MAX)
            os.truncate(path, size)
            model = model[:size] + bytes(max(0, size - len(model)))
        else:
            off = rng.randrange(0, len(model) + 1)
            with open(path, "rb") as f:
                f.seek(off)
                got = f.read(65536)
            if got != bytes(model[off : off + 65536]):
                raise AssertionError(f"fsx: op {n}: read at {off} differs from the model")
            continue
        probe(len(model))
    return bytes(model)


def run(kind: str, count: int, scratch: Path) -> dict[str, Any]:
    """One writer in a fresh draft mount; its worst and final store ratios."""
    home, mnt = scratch / f"home-{kind}", scratch / f"mnt-{kind}"
    mnt.mkdir(parents=True)
    with Catalog(home) as cat:
        cat.create_dataset("ds")
    _dlfs(home, "mount", "ds@draft", str(mnt))
    worst = 0.0

    def probe(size: int) -> None:
        nonlocal worst
        if size:
            worst = max(worst, store_bytes(home) / size)

    try:
        start = time.perf_counter()
        writer = appends if kind == "append" else fsx
        expected = writer(mnt / "file.bin", count, probe)
        seconds = time.perf_counter() - start
        mounted = store_bytes(home) / max(1, len(expected))
    finally:
        _dlfs(home, "umount", str(mnt))
    with Catalog(home) as cat:
        cat.publish("ds")
        got = b"".join(cat.cat("ds@latest", "file.bin"))
    if got != expected:
        raise AssertionError(f"{kind}: the published file differs from what was written")
    return {
        "ops": count,
        "file_bytes": len(expected),
        "seconds": round(seconds, 2),
        "worst_mounted": round(worst, 2),
        "end_mounted": round(mounted, 2),
        "after_publish": round(store_bytes(home) / max(1, len(expected)), 2),
    }


def measure() -> dict[str, Any]:
    quick = os.environ.get("DLFS_BENCH_QUICK") == "1"
    n_append = _int("DLFS_BENCH_RECLAIM_APPENDS", 10 if quick else 40)
    n_ops = _int("DLFS_BENCH_RECLAIM_OPS", 300 if quick else 2000)
    base = os.environ.get("DLFS_BENCH_DIR") or None
    scratch = Path(tempfile.mkdtemp(prefix="bench-reclaim-", dir=base))
    try:
        return {"append": run("append", n_append, scratch), "fsx": run("fsx", n_ops, scratch)}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def print_table(out: dict[str, Any]) -> None:
    print(
        "| writer | ops | file | writer time | store/file, worst mounted | at the end |"
        " after publish |"
    )
    print("|---|---|---|---|---|---|---|")
    for kind, r in out.items():
        print(
            f"| {kind} | {r['ops']} | {r['file_bytes'] / MIB:.1f} MiB | {r['seconds']} s"
            f" | {r['worst_mounted']}x | {r['end_mounted']}x | {r['after_publish']}x |"
        )


def main() -> dict[str, Any]:
    out = measure()
    print_table(out)
    return out


if __name__ == "__main__":
    main()

"""What reading a dataset means, as a training job or a person at a shell does it.

Each workload reads a mounted tree (relative paths are the source tree's) and returns
named figures. The read suite runs each one twice on a fresh mount: cold, then warm.

- ``small_1t`` / ``small_4t``: read whole small files in a shuffled order, 1 or 4
  reader threads (files/s);
- ``large``: read every large file sequentially in 1 MiB reads (MB/s, 10^6 bytes);
- ``walk``: ``os.walk`` of the small-file tree plus an ``lstat`` of every entry
  (entries/s);
- ``wide``: ``os.scandir`` of the 100,000-entry folder plus an ``lstat`` of every
  entry (entries/s);
- ``open``: open + read the first 4 KiB + close of a sample of small files, one at a
  time (latency p50 and p99, microseconds; lower is better).
"""

from __future__ import annotations

import os
import random
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from benchmarks import dataset
from benchmarks.config import ReadSpec

MiB = 1 << 20
Figures = dict[str, float]


@dataclass(frozen=True)
class Figure:
    """How to read one figure: its unit and which way is better."""

    key: str
    label: str
    unit: str
    higher_is_better: bool = True


FIGURES = [
    Figure("small_1t", "small files, 1 thread", "files/s"),
    Figure("small_4t", "small files, 4 threads", "files/s"),
    Figure("large", "large sequential read", "MB/s"),
    Figure("walk", "os.walk + stat", "entries/s"),
    Figure("wide", "100k-entry folder: scandir + stat", "entries/s"),
    Figure("open_p50", "open + 4 KiB, p50", "us", higher_is_better=False),
    Figure("open_p99", "open + 4 KiB, p99", "us", higher_is_better=False),
]
FIGURE = {f.key: f for f in FIGURES}


@dataclass(frozen=True)
class Workload:
    """A named read of a mounted tree, producing one or more figures."""

    name: str
    run: Callable[[Path], Figures]


def _read_whole(path: str, buf: bytearray) -> int:
    fd = os.open(path, os.O_RDONLY)
    try:
        total = 0
        while n := os.readv(fd, [buf]):
            total += n
        return total
    finally:
        os.close(fd)


def read_files(root: Path, paths: list[str], threads: int) -> float:
    """Read every file whole, ``threads`` readers sharing the list; files/s."""

    def reader(part: list[str]) -> None:
        buf = bytearray(MiB)
        for rel in part:
            _read_whole(os.path.join(root, rel), buf)

    parts = [paths[i::threads] for i in range(threads)]
    start = time.perf_counter()
    if threads == 1:
        reader(paths)
    else:
        with ThreadPoolExecutor(threads) as pool:
            for future in [pool.submit(reader, p) for p in parts]:
                future.result()
    return len(paths) / (time.perf_counter() - start)


def read_large(root: Path, paths: list[str]) -> float:
    """Read each file sequentially in 1 MiB reads; MB/s."""
    buf = bytearray(MiB)
    total = 0
    start = time.perf_counter()
    for rel in paths:
        total += _read_whole(os.path.join(root, rel), buf)
    return total / 1e6 / (time.perf_counter() - start)


def walk(top: Path) -> float:
    """``os.walk`` plus an ``lstat`` of every entry; entries/s."""
    count = 0
    start = time.perf_counter()
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            os.lstat(os.path.join(dirpath, name))
            count += 1
    return count / (time.perf_counter() - start)


def list_folder(folder: Path) -> float:
    """``os.scandir`` of one folder plus an ``lstat`` of every entry; entries/s."""
    count = 0
    start = time.perf_counter()
    with os.scandir(folder) as it:
        for entry in it:
            entry.stat(follow_symlinks=False)
            count += 1
    return count / (time.perf_counter() - start)


def open_latency(root: Path, paths: list[str]) -> Figures:
    """Open, read the first 4 KiB, close, one file at a time; p50 and p99 in us."""
    times = []
    for rel in paths:
        path = os.path.join(root, rel)
        start = time.perf_counter()
        fd = os.open(path, os.O_RDONLY)
        try:
            os.read(fd, 4096)
        finally:
            os.close(fd)
        times.append(time.perf_counter() - start)
    cuts = statistics.quantiles(times, n=100, method="inclusive")
    return {"open_p50": cuts[49] * 1e6, "open_p99": cuts[98] * 1e6}


def suite(spec: ReadSpec, latency_sample: int, seed: int = 7) -> list[Workload]:
    """The read workloads over the read dataset, with one fixed shuffle for all."""
    rng = random.Random(seed)
    small = dataset.small_paths(spec)
    shuffled = rng.sample(small, len(small))
    sample = rng.sample(small, min(latency_sample, len(small)))
    large = dataset.large_paths(spec)
    return [
        Workload("small_1t", lambda root: {"small_1t": read_files(root, shuffled, 1)}),
        Workload("small_4t", lambda root: {"small_4t": read_files(root, shuffled, 4)}),
        Workload("large", lambda root: {"large": read_large(root, large)}),
        Workload("walk", lambda root: {"walk": walk(root / dataset.SMALL)}),
        Workload("wide", lambda root: {"wide": list_folder(root / dataset.WIDE)}),
        Workload("open", lambda root: open_latency(root, sample)),
    ]

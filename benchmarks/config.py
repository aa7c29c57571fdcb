"""What to generate and how often to measure it: env vars, with ``--quick`` defaults.

Every knob is an env var so that a slower or faster machine can fit the run in its
time budget without touching code. ``--quick`` shrinks everything for development;
its data lives beside the full-size data (each tree is cached under a name that
includes its spec), so switching modes does not regenerate anything.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
ALL_TARGETS = ("plain", "bindfs", "passthrough", "dlfs-w1", "dlfs")


def _int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return default if value in (None, "") else int(value)


def _pair(text: str) -> tuple[int, int]:
    items, _, folders = text.partition(":")
    return int(items), int(folders or 100)


@dataclass(frozen=True)
class ReadSpec:
    """The dataset the read benches mount: small files, large files, one wide folder."""

    small_files: int = 20_000
    small_folders: int = 100
    small_min_kib: int = 16
    small_max_kib: int = 256
    large_files: int = 2
    large_mib: int = 512
    wide_entries: int = 100_000
    seed: int = 3


@dataclass(frozen=True)
class AddSpec:
    """The tree ``dlfs add`` and ``cp -r`` copy: ~100 KiB files, some duplicates."""

    files: int = 20_000
    folders: int = 100
    mean_kib: int = 100
    duplicate_percent: int = 5
    seed: int = 2


@dataclass(frozen=True)
class Config:
    """One run's settings (see :func:`load`)."""

    data_dir: Path
    quick: bool
    repeat: int
    read: ReadSpec
    add: AddSpec
    publish_sizes: tuple[tuple[int, int], ...]  # (items, folders)
    publish_nested: tuple[int, ...]  # item counts of the nested layout (folders of <= 100)
    publish_changes: int
    latency_sample: int
    add_cache: str  # "cold" or "warm"
    warm_passes: int
    targets: tuple[str, ...] = field(default=ALL_TARGETS)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["data_dir"] = str(self.data_dir)
        return out


def load(quick: bool = False, targets: tuple[str, ...] | None = None) -> Config:
    """The settings from the environment (``DLFS_BENCH_*``), scaled down by ``quick``."""
    q = quick
    read = ReadSpec(
        small_files=_int("DLFS_BENCH_SMALL_FILES", 2_000 if q else 20_000),
        small_folders=_int("DLFS_BENCH_SMALL_FOLDERS", 20 if q else 100),
        small_min_kib=_int("DLFS_BENCH_SMALL_MIN_KIB", 16),
        small_max_kib=_int("DLFS_BENCH_SMALL_MAX_KIB", 256),
        large_files=_int("DLFS_BENCH_LARGE_FILES", 2),
        large_mib=_int("DLFS_BENCH_LARGE_MIB", 64 if q else 512),
        wide_entries=_int("DLFS_BENCH_WIDE_ENTRIES", 10_000 if q else 100_000),
    )
    add = AddSpec(
        files=_int("DLFS_BENCH_ADD_FILES", 2_000 if q else 20_000),
        folders=_int("DLFS_BENCH_ADD_FOLDERS", 20 if q else 100),
        mean_kib=_int("DLFS_BENCH_ADD_KIB", 100),
    )
    sizes = os.environ.get("DLFS_BENCH_PUBLISH_SIZES") or (
        "10000:100,1000:100,10000:1000" if q else "100000:100,1000:100,100000:10000"
    )
    add_cache = os.environ.get("DLFS_BENCH_ADD_CACHE", "cold")
    if add_cache not in ("cold", "warm"):
        raise SystemExit("DLFS_BENCH_ADD_CACHE must be 'cold' or 'warm'")
    return Config(
        data_dir=Path(os.environ.get("DLFS_BENCH_DIR") or REPO / "bench-data").resolve(),
        quick=quick,
        repeat=_int("DLFS_BENCH_REPEAT", 1 if q else 3),
        read=read,
        add=add,
        publish_sizes=tuple(_pair(s) for s in sizes.split(",")),
        publish_nested=tuple(
            int(n)
            for n in (
                os.environ.get("DLFS_BENCH_PUBLISH_NESTED")
                or ("10000,1000" if q else "100000,1000")
            ).split(",")
        ),
        publish_changes=_int("DLFS_BENCH_PUBLISH_CHANGES", 10),
        latency_sample=_int("DLFS_BENCH_LATENCY_SAMPLE", 200 if q else 1_000),
        add_cache=add_cache,
        warm_passes=_int("DLFS_BENCH_WARM_PASSES", 1 if q else 3),
        targets=targets or ALL_TARGETS,
    )

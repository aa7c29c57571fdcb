"""Generated source trees, built once and cached under the bench-data dir.

Each tree lives in ``<data_dir>/<kind>-<hash of its spec>/tree`` with the spec
written beside it (``spec.json``) only once the tree is complete, so an interrupted
build is simply built again. Contents are pseudo-random (seeded slices of a random
pool, each file prefixed with its own index), so files are distinct unless a spec asks
for duplicates, and nothing compresses or deduplicates by accident.

Layouts (paths relative to ``tree``):

- read: ``small/gNN/dNN/fNNNNNN.bin`` (the small files, in ``small_folders`` leaf
  folders two levels deep), ``large/bigN.bin``, ``wide/eNNNNNN`` (empty files, one
  folder);
- add: ``pNN/fNNNNNN.bin``, ~``mean_kib`` each, some exact duplicates;
- publish: ``pNNNNN/iNNNNNN.txt``, one line each, in ``folders`` folders.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks.config import AddSpec, ReadSpec

KiB = 1024
MiB = 1024 * KiB
POOL = 16 * MiB


def _pool(seed: int) -> bytes:
    return random.Random(seed).randbytes(POOL + 2 * MiB)


def _write(path: Path, header: int, pool: bytes, offset: int, size: int) -> None:
    data = header.to_bytes(8, "little") + pool[offset : offset + max(size - 8, 0)]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data[:size])
    finally:
        os.close(fd)


def cached(data_dir: Path, kind: str, spec: Any, build: Callable[[Path], None]) -> Path:
    """The tree for ``spec``, built by ``build(path)`` unless a complete one exists.

    Older trees of the same kind are pruned, keeping the two most recently used (so a
    ``--quick`` tree and a full-size one live side by side).
    """
    text = json.dumps({"kind": kind, **asdict(spec)}, sort_keys=True)
    digest = hashlib.sha256(text.encode()).hexdigest()[:10]
    home = data_dir / f"{kind}-{digest}"
    stamp = home / "spec.json"
    tree = home / "tree"
    if stamp.exists() and tree.is_dir():
        os.utime(stamp)
        return tree
    _prune(data_dir, kind, keep=1)
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    partial = home / "tree.partial"
    print(f"bench: generating {kind} data in {home} ...", file=sys.stderr, flush=True)
    start = time.perf_counter()
    build(partial)
    os.sync()
    partial.rename(tree)
    stamp.write_text(text + "\n")
    print(f"bench: generated in {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    return tree


def _prune(data_dir: Path, kind: str, keep: int) -> None:
    homes = sorted(
        (p for p in data_dir.glob(f"{kind}-*") if (p / "spec.json").exists()),
        key=lambda p: (p / "spec.json").stat().st_mtime,
        reverse=True,
    )
    for old in homes[keep:]:
        shutil.rmtree(old, ignore_errors=True)


# -- the read dataset ---------------------------------------------------------------


def small_folder(spec: ReadSpec, index: int) -> str:
    """The leaf folder (relative path) of small file ``index``."""
    per_level = math.ceil(math.sqrt(spec.small_folders))
    folder = index * spec.small_folders // spec.small_files
    return f"small/g{folder // per_level:02d}/d{folder % per_level:02d}"


def small_paths(spec: ReadSpec) -> list[str]:
    """Every small file, relative to the tree root, in creation order."""
    return [f"{small_folder(spec, i)}/f{i:06d}.bin" for i in range(spec.small_files)]


def large_paths(spec: ReadSpec) -> list[str]:
    return [f"large/big{k}.bin" for k in range(spec.large_files)]


WIDE = "wide"
SMALL = "small"


def build_read(spec: ReadSpec, root: Path) -> None:
    rng = random.Random(spec.seed)
    pool = _pool(spec.seed)
    for i, rel in enumerate(small_paths(spec)):
        path = root / rel
        if i == 0 or not path.parent.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
        size = rng.randint(spec.small_min_kib * KiB, spec.small_max_kib * KiB)
        _write(path, i, pool, rng.randrange(POOL), size)
    (root / "large").mkdir()
    block = 4 * MiB
    for k, rel in enumerate(large_paths(spec)):
        with open(root / rel, "wb") as f:
            for b in range(spec.large_mib * MiB // block):
                off = rng.randrange(POOL - block + 2 * MiB)
                f.write((k * 1_000_000 + b).to_bytes(8, "little") + pool[off : off + block - 8])
    wide = root / WIDE
    wide.mkdir()
    for i in range(spec.wide_entries):
        os.close(os.open(wide / f"e{i:06d}", os.O_WRONLY | os.O_CREAT, 0o644))


def read_tree(data_dir: Path, spec: ReadSpec) -> Path:
    """The read dataset (see the module docstring), generated on first use."""
    return cached(data_dir, "read", spec, lambda root: build_read(spec, root))


# -- the tree dlfs add and cp -r copy -------------------------------------------------


def build_add(spec: AddSpec, root: Path) -> None:
    rng = random.Random(spec.seed)
    pool = _pool(spec.seed)
    made: list[tuple[int, int, int]] = []
    for i in range(spec.files):
        folder = root / f"p{i * spec.folders // spec.files:02d}"
        if not folder.exists():
            folder.mkdir(parents=True)
        if made and rng.randrange(100) < spec.duplicate_percent:
            header, offset, size = made[rng.randrange(len(made))]
        else:
            low, high = spec.mean_kib * KiB // 2, spec.mean_kib * KiB * 3 // 2
            header, offset, size = i, rng.randrange(POOL), rng.randint(low, high)
            made.append((header, offset, size))
        _write(folder / f"f{i:06d}.bin", header, pool, offset, size)


def add_tree(data_dir: Path, spec: AddSpec) -> Path:
    """The ``dlfs add`` vs ``cp -r`` tree, generated on first use."""
    return cached(data_dir, "add", spec, lambda root: build_add(spec, root))


# -- the trees publish starts from ------------------------------------------------------


@dataclass(frozen=True)
class PublishSpec:
    items: int
    folders: int
    fanout: int = 0  # > 0: nested folders of at most ``fanout`` entries each


def publish_path(spec: PublishSpec, index: int) -> str:
    """Flat: ``folders`` folders of items/folders files. Nested: every folder holds at
    most ``fanout`` entries, with as many levels as that needs (a balanced tree)."""
    if spec.fanout <= 0:
        return f"p{index * spec.folders // spec.items:05d}/i{index:06d}.txt"
    parts = []
    group = index // spec.fanout
    while True:
        parts.append(f"n{group % spec.fanout:03d}")
        group //= spec.fanout
        if group == 0:
            break
    levels = max(1, _levels(spec.items, spec.fanout) - 1)
    parts += ["n000"] * (levels - len(parts))
    return "/".join(reversed(parts)) + f"/i{index:06d}.txt"


def _levels(items: int, fanout: int) -> int:
    levels, capacity = 1, fanout
    while capacity < items:
        levels += 1
        capacity *= fanout
    return levels


def build_publish(spec: PublishSpec, root: Path) -> None:
    for i in range(spec.items):
        path = root / publish_path(spec, i)
        if not path.parent.exists():
            path.parent.mkdir(parents=True)
        path.write_bytes(f"item {i}\n".encode())


def publish_tree(data_dir: Path, spec: PublishSpec) -> Path:
    """``items`` one-line files in ``folders`` folders, generated on first use."""
    kind = f"publish{spec.items}x{spec.folders}" + (f"n{spec.fanout}" if spec.fanout else "")
    return cached(data_dir, kind, spec, lambda root: build_publish(spec, root))

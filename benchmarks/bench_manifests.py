"""Importing from a manifest and exporting one: ``python -m benchmarks.bench_manifests``.

What is timed, in process (the library calls ``dlfs import`` and ``dlfs export``
make), each round in a fresh catalog, on the same source of ``N`` small files (1-4
KiB, distinct contents) in ``N/100`` folders, read once first so that every copy
reads them from the page cache:

- ``add``: ``dlfs add`` of the folder: the floor, for reference;
- ``import --dry-run`` and ``import`` of a JSON Lines manifest listing every file with
  a metadata object and an annotation (the files land at other paths than their
  source ones, so nothing is shared with ``add``'s layout);
- ``export jsonl`` and ``export coco`` of the published version (no files copied).

Rounds are in order; the figure is the median. Settings: ``DLFS_BENCH_MANIFEST_FILES``
(10,000; 2,000 with ``DLFS_BENCH_QUICK=1``), ``DLFS_BENCH_MANIFEST_ROUNDS`` (3; 1
quick), ``DLFS_BENCH_DIR`` (where the scratch goes; default the system temp dir).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dlfs import Catalog

STEPS = ("add", "import --dry-run", "import", "export jsonl", "export coco")


def make_source(base: Path, files: int) -> tuple[Path, Path]:
    """``files`` small files under ``base/src`` and the manifest listing them."""
    rng = random.Random(19)
    src = base / "src"
    rows = []
    for i in range(files):
        rel = f"shard{i // 100:04d}/{i:07d}.bin"
        path = src / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(rng.randint(1024, 4096)))
        rows.append(
            {
                "src": f"src/{rel}",
                "path": f"label{i % 10}/{i:07d}.bin",
                "metadata": {"index": i, "split": "train" if i % 5 else "val"},
                "annotations": [{"label": f"label{i % 10}", "box": [0, 0, 8, 8]}],
            }
        )
    manifest = base / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    for path in src.rglob("*"):  # into the page cache
        if path.is_file():
            path.read_bytes()
    return src, manifest


def _time(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def one_round(base: Path, src: Path, manifest: Path, files: int) -> dict[str, float]:
    """The steps' seconds in fresh catalogs; the results are checked."""
    out: dict[str, float] = {}
    home = base / "home-add"
    with Catalog(home) as cat:
        cat.create_dataset("add")
        out["add"] = _time(lambda: cat.add("add", [src]))
    shutil.rmtree(home)
    home = base / "home-import"
    with Catalog(home) as cat:
        cat.create_dataset("m")
        out["import --dry-run"] = _time(lambda: cat.import_manifest("m", manifest, dry_run=True))
        out["import"] = _time(lambda: cat.import_manifest("m", manifest))
        v = cat.publish("m")
        assert v.info()["files"] == files
        out["export jsonl"] = _time(lambda: cat.export_manifest(v, base / "out.jsonl"))
        out["export coco"] = _time(lambda: cat.export_manifest(v, base / "out.json"))
    shutil.rmtree(home)
    return out


def measure() -> dict[str, Any]:
    """Run the rounds; the medians by step."""
    quick = os.environ.get("DLFS_BENCH_QUICK") == "1"
    files = int(os.environ.get("DLFS_BENCH_MANIFEST_FILES") or (2_000 if quick else 10_000))
    rounds = int(os.environ.get("DLFS_BENCH_MANIFEST_ROUNDS") or (1 if quick else 3))
    base_dir = os.environ.get("DLFS_BENCH_DIR")
    if base_dir:
        Path(base_dir).mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="bench-manifests-", dir=base_dir))
    try:
        src, manifest = make_source(base, files)
        runs = [one_round(base, src, manifest, files) for _ in range(rounds)]
    finally:
        shutil.rmtree(base, ignore_errors=True)
    medians = {s: round(statistics.median(r[s] for r in runs), 3) for s in STEPS}
    return {"files": files, "rounds": rounds, "seconds": medians}


def print_table(result: dict[str, Any]) -> None:
    """The medians, with files per second."""
    print(f"manifests: {result['files']:,} files, median of {result['rounds']} round(s)")
    print(f"{'step':18} {'seconds':>8} {'files/s':>9}")
    for step, seconds in result["seconds"].items():
        print(f"{step:18} {seconds:8.2f} {result['files'] / seconds:9,.0f}")


def main() -> dict[str, Any]:
    """Run the benchmark, print its table, and return the figures."""
    result = measure()
    print_table(result)
    return result


if __name__ == "__main__":
    main()

"""Views at scale: ``python -m benchmarks.bench_views``.

A version of ``N`` items (default 1,000,000, in ``N/1000`` folders of 1,000) with
1,000 labels (item ``i`` is labelled ``l{i % 1000:03}``, so each label has ``N/1000``
items spread over every folder) is built through the catalog layer in bulk, with
made-up blob ids (nothing here reads a byte). Then, through real FUSE mounts made by
the ``dlfs mount`` command (times include its interpreter start-up):

- opening the view a daemon serves, plain and ``--group-by label`` (in process), and
  mounting the version plain and as ``--group-by label``;
- the view's first ``ls MNT`` (the labels: one query over the version's folders and
  the label index, kept for the life of the mount) and a second one;
- ``ls -l`` of a label folder (its ``N/1000`` sub-folders), and of one folder inside it
  (the label's items there), beside ``ls -l`` of a plain folder of 1,000 files;
- a walk of a whole label (``os.walk`` + ``stat``: ``N/1000`` files in as many folders).

Settings: ``DLFS_BENCH_VIEWS_ITEMS`` (default 1,000,000; 100,000 with
``DLFS_BENCH_QUICK=1``), ``DLFS_BENCH_DIR`` (where the scratch catalog goes). The
catalog is deleted afterwards.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import bench_versioning as versioning
from dlfs.api import Catalog
from dlfs.catalog import CatalogDB
from dlfs.home import Home
from dlfs.objects import canonical_json
from dlfs.view import open_view
from dlfs.viewspec import ViewSpec

PER_FOLDER = 1_000
LABELS = 1_000


def _log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def build(db: CatalogDB, name: str, n: int) -> str:
    """A published dataset ``name`` of ``n`` labelled items ``d{k:04}/{i:07}.jpg``
    (item ``i`` labelled ``l{i % 1000:03}``); returns the version id."""
    return versioning.build(
        db,
        name,
        n,
        lambda i: canonical_json([{"label": f"l{i % LABELS:03}"}]),
        metadata=lambda i: canonical_json({"i": i}),
        folder_digits=4,
    )


def timed(what: str, rows: list[dict[str, Any]], job: Callable[[], int]) -> None:
    """Time ``job`` (which returns how many entries it saw) and append a row."""
    start = time.perf_counter()
    entries = job()
    seconds = time.perf_counter() - start
    rows.append({"operation": what, "entries": entries, "seconds": round(seconds, 4)})
    _log(f"{what}: {seconds:.3f}s ({entries:,} entries)")


def ls_l(folder: Path) -> int:
    """``ls -l``: list a folder and stat every entry."""
    count = 0
    with os.scandir(folder) as it:
        for entry in it:
            entry.stat(follow_symlinks=False)
            count += 1
    return count


def walk(folder: Path) -> int:
    """``find -ls``: every file under ``folder``, each stat'ed."""
    count = 0
    for top, _dirs, names in os.walk(folder):
        for name in names:
            os.stat(os.path.join(top, name))
            count += 1
    return count


def run(n: int, scratch: Path) -> dict[str, Any]:
    """Build the version under ``scratch``, mount it plain and as a view, time both."""
    home = scratch / "home"
    rows: list[dict[str, Any]] = []
    with Catalog(home) as cat:
        start = time.perf_counter()
        vid = build(cat.db, "big", n)
        build_s = time.perf_counter() - start
    _log(f"built a {n:,}-item version with {LABELS:,} labels in {build_s:.1f}s")
    env = {**os.environ, "DLFS_HOME": str(home)}
    plain, view = scratch / "plain", scratch / "view"
    plain.mkdir()
    view.mkdir()

    def dlfs(*args: str) -> int:
        subprocess.run([sys.executable, "-m", "dlfs", *args], check=True, env=env, text=True)
        return 0

    ref = f"big@{vid}"

    def opened(spec: ViewSpec | None) -> int:
        view = open_view(Home.at(home), ref, spec=spec)
        view.close()
        return 0

    timed("open the view the daemon serves: plain (in process)", rows, lambda: opened(None))
    by_label = ViewSpec.parse(None, "label")
    timed("open the view the daemon serves: --group-by label", rows, lambda: opened(by_label))
    try:
        timed("dlfs mount big (plain, CLI)", rows, lambda: dlfs("mount", ref, str(plain)))
        timed(
            "dlfs mount big --group-by label (CLI)",
            rows,
            lambda: dlfs("mount", "--group-by", "label", ref, str(view)),
        )
        timed("ls -l plain/d0000 (1,000 files)", rows, lambda: ls_l(plain / "d0000"))
        timed("ls view (the labels, first time)", rows, lambda: len(os.listdir(view)))
        timed("ls view (again)", rows, lambda: len(os.listdir(view)))
        timed("ls -l view/l123 (its folders)", rows, lambda: ls_l(view / "l123"))
        timed("ls -l view/l123/d0007 (its items there)", rows, lambda: ls_l(view / "l123/d0007"))
        timed("find -ls view/l124 (a whole label)", rows, lambda: walk(view / "l124"))
        timed("find -ls plain/d0001 (1,000 files)", rows, lambda: walk(plain / "d0001"))
    finally:
        for mnt in (view, plain):
            subprocess.run(
                [sys.executable, "-m", "dlfs", "umount", "--lazy", str(mnt)],
                env=env,
                capture_output=True,
            )
    return {"items": n, "labels": LABELS, "build_seconds": round(build_s, 1), "rows": rows}


def print_table(result: dict[str, Any]) -> None:
    """The figures as a markdown table."""
    print(f"views of a {result['items']:,}-item version with {result['labels']:,} labels:")
    print("| operation | entries | seconds |")
    print("| --- | --- | --- |")
    for r in result["rows"]:
        print(f"| {r['operation']} | {r['entries']:,} | {r['seconds']:.3f} |")


def measure() -> dict[str, Any]:
    """Run the benchmark and return the figures (for ``make bench``)."""
    quick = os.environ.get("DLFS_BENCH_QUICK") == "1"
    n = int(os.environ.get("DLFS_BENCH_VIEWS_ITEMS") or (100_000 if quick else 1_000_000))
    if n < PER_FOLDER * 10 or n % PER_FOLDER:
        raise SystemExit(f"DLFS_BENCH_VIEWS_ITEMS must be a multiple of {PER_FOLDER * 10:,}")
    base = os.environ.get("DLFS_BENCH_DIR")
    if base:
        Path(base).mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="bench-views-", dir=base))
    try:
        return run(n, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    print_table(measure())

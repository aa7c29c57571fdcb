"""Clone, merge and diff at scale: ``python -m benchmarks.bench_versioning``.

A version of ``N`` items (default 1,000,000, in ``N/1000`` folders of 1,000) is built
directly through the catalog layer with bulk inserts: the items are records with
made-up blob ids, since clone, merge and diff never read a byte. Then, each timed in
process (the library call ``dlfs`` makes, without interpreter start-up):

- ``clone`` unfiltered (O(1): no tree or item row is written), also once through the
  CLI to show the whole command;
- ``clone --include 'd??3'`` (10% of the folders, each shared whole);
- ``clone --where 'metadata.bucket == 3'`` (10% of the items, each one tested);
- ``clone --no-metadata`` (a new record for every item);
- ``merge`` of two 100,000-item clones of it whose items were annotated by two teams
  (built in bulk, same lineage, different annotations): every item is matched by
  lineage and gets the union of the annotations;
- ``diff`` of the version and a child of it with 100 items changed in 100 folders.

Rows added to ``items`` and ``tree_entries`` are shown beside each time: that is what
makes the O(1) and O(changes) claims checkable. Settings: ``DLFS_BENCH_VERSIONING_ITEMS``
(default 1,000,000; 100,000 with ``DLFS_BENCH_QUICK=1``), ``DLFS_BENCH_DIR`` (where the
scratch catalog goes; default the system temp dir). The catalog is deleted afterwards.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dlfs.api import Catalog
from dlfs.catalog import CatalogDB
from dlfs.objects import DIR, FILE, canonical_json, item_id, tree_id
from dlfs.versions import create_dataset, publish

PER_FOLDER = 1_000
LABELS = ("cat", "dog", "bird")


def _log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def _metadata(i: int) -> str:
    split = "train" if i % 5 else "val"
    return canonical_json({"bucket": i % 10, "score": (i % 100) / 100, "split": split})


_META = [_metadata(i) for i in range(100)]  # item i has _META[i % 100]


def build(
    db: CatalogDB,
    name: str,
    n: int,
    annotations: Callable[[int], str],
    kind: str = "plain",
    sources: list[dict[str, Any]] | None = None,
    metadata: Callable[[int], str] | None = None,
    folder_digits: int = 3,
) -> str:
    """A published dataset ``name`` of ``n`` items ``d{k:03}/{i:07}.jpg`` (``folder_digits``
    digits of ``k``); item ``i`` has origin ``i`` whatever the dataset, so datasets built
    here are clones of each other, the annotations ``annotations(i)`` and the metadata
    ``metadata(i)`` (default: one of 100 objects). Returns the version id."""
    root_entries = []
    with db.transaction():
        for start in range(0, n, PER_FOLDER):
            items, entries = [], []
            for i in range(start, min(n, start + PER_FOLDER)):
                origin, blob, size = f"{i:032x}", f"{i:032x}"[::-1], 1_000 + i % 4_096
                meta = _META[i % 100] if metadata is None else metadata(i)
                ann = annotations(i)
                iid = item_id(origin, blob, size, meta, ann)
                items.append((iid, origin, blob, size, 1.7e9, meta, ann, ""))
                entries.append((f"{i:07}.jpg", FILE, iid, size))
            db.items_stage(items)
            folder = tree_id((e[0], e[1], e[2]) for e in entries)
            db.entries_put(folder, entries)
            db.tree_register(folder, len(entries), sum(e[3] for e in entries))
            root_entries.append((f"d{start // PER_FOLDER:0{folder_digits}}", DIR, folder, 0))
        db.items_unstage()
        root = tree_id((e[0], e[1], e[2]) for e in root_entries)
        db.entries_put(root, root_entries)
        db.tree_register(root, n, sum(1_000 + i % 4_096 for i in range(n)))
        ds, _ = create_dataset(db, name, kind=kind, sources=sources, root=root)
        (draft,) = db.versions_of(ds["id"])
        return publish(db, draft)


@contextmanager
def timed(cat: Catalog, rows: list[dict[str, Any]], what: str, n: int) -> Iterator[None]:
    """Time the block; append a row with its seconds and the rows it added."""
    before = cat.db.row_counts()
    start = time.perf_counter()
    yield
    seconds = time.perf_counter() - start
    after = cat.db.row_counts()
    row = {
        "operation": what,
        "items": n,
        "seconds": round(seconds, 3),
        "new_items": after["items"] - before["items"],
        "new_tree_entries": after["tree_entries"] - before["tree_entries"],
    }
    rows.append(row)
    _log(f"{what}: {seconds:.3f}s")


def print_table(rows: list[dict[str, Any]]) -> None:
    """The figures as a markdown table."""
    header = ["operation", "items", "seconds", "new item rows", "new tree entries"]
    lines = [header, ["---"] * len(header)]
    for r in rows:
        lines.append(
            [
                f"`{r['operation']}`",
                f"{r['items']:,}",
                f"{r['seconds']:.3f}",
                f"{r['new_items']:,}",
                f"{r['new_tree_entries']:,}",
            ]
        )
    for line in lines:
        print("| " + " | ".join(line) + " |")


def run(n: int, scratch: Path) -> dict[str, Any]:
    """Build the data under ``scratch`` and time every operation; return the figures."""
    home = scratch / "home"
    rows: list[dict[str, Any]] = []
    with Catalog(home) as cat:
        start = time.perf_counter()
        v0 = build(cat.db, "big", n, lambda i: canonical_json([{"label": LABELS[i % 3]}]))
        build_s = time.perf_counter() - start
        _log(f"built a {n:,}-item version in {build_s:.1f}s")
        big = f"big@{v0}"
        tenth = n // 10

        with timed(cat, rows, "clone big all", n):
            cat.clone(big, "all")
        env = {**os.environ, "DLFS_HOME": str(home)}
        with timed(cat, rows, "dlfs clone big all-cli (CLI, with start-up)", n):
            subprocess.run(
                [sys.executable, "-m", "dlfs", "clone", big, "all-cli"],
                check=True,
                env=env,
                capture_output=True,
            )
        with timed(cat, rows, "clone big part --include 'd??3'", tenth):
            assert cat.clone(big, "part", include=["d??3"]).info()["files"] == tenth
        with timed(cat, rows, "clone big tenth --where 'metadata.bucket == 3'", tenth):
            tenth_v = cat.clone(big, "tenth", where="metadata.bucket == 3", publish=True)
        assert tenth_v.info()["files"] == tenth
        with timed(cat, rows, "clone big bare --no-metadata", n):
            cat.clone(big, "bare", metadata=False)

        m = min(100_000, n)
        src = [{"dataset": "big", "version": v0, "state": "published"}]
        team_a = build(
            cat.db,
            "team-a",
            m,
            lambda i: canonical_json([{"label": LABELS[i % 3]}, {"label": "team-a"}]),
            "clone",
            src,
        )
        team_b = build(
            cat.db,
            "team-b",
            m,
            lambda i: canonical_json([{"label": LABELS[i % 3]}, {"label": "team-b"}]),
            "clone",
            src,
        )
        with timed(cat, rows, "merge both team-a team-b", m):
            merged = cat.merge("both", [f"team-a@{team_a}", f"team-b@{team_b}"])
        first = merged.item("d000/0000000.jpg")
        assert [a["label"] for a in first.annotations] == ["cat", "team-a", "team-b"]

        cat.create_version("big", [big])
        for k in range(100):
            folder = (k * (n // PER_FOLDER)) // 100
            path = f"d{folder:03}/{folder * PER_FOLDER + k % PER_FOLDER:07}.jpg"
            cat.set_meta("big", path, [("reviewed", True)])
        v1 = cat.publish("big").id
        with timed(cat, rows, "diff big@v0 big@v1 (100 items changed)", n):
            d = cat.diff(big, f"big@{v1}")
        assert len(d.modified) == 100 and not (d.added or d.removed or d.moved)
    size = sum(p.stat().st_size for p in home.glob("catalog.db*"))  # checkpointed on close
    return {"items": n, "build_seconds": round(build_s, 1), "catalog_bytes": size, "rows": rows}


def main() -> dict[str, Any]:
    """Run the benchmark, print its table, and return the figures (for ``make bench``)."""
    quick = os.environ.get("DLFS_BENCH_QUICK") == "1"
    n = int(os.environ.get("DLFS_BENCH_VERSIONING_ITEMS") or (100_000 if quick else 1_000_000))
    if n < PER_FOLDER * 10 or n % PER_FOLDER:
        raise SystemExit(f"DLFS_BENCH_VERSIONING_ITEMS must be a multiple of {PER_FOLDER * 10:,}")
    base = os.environ.get("DLFS_BENCH_DIR")
    if base:
        Path(base).mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="bench-versioning-", dir=base))
    try:
        result = run(n, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(
        f"clone/merge/diff on a {n:,}-item version (built in {result['build_seconds']}s;"
        f" catalog {result['catalog_bytes'] / 2**20:.0f} MiB at the end):"
    )
    print_table(result["rows"])
    return result


if __name__ == "__main__":
    main()

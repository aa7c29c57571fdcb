"""The foundation benches (issue 2): publish costs O(changed folders); ``dlfs add``
keeps up with ``cp -r``.

Publish: a version of N one-line items in 100 folders is imported and published; then,
``repeat`` times, a child version is made, ``publish_changes`` files in as many
folders are rewritten, and the child is published. The publish is timed in process
(the library call the CLI makes, without interpreter start-up) and once through the
CLI. With copy-on-write folders the time depends on the folders changed, not on N, so
the ratio between the largest and smallest N should be about 1.

Add: the same tree of ~100 KiB files is copied by ``cp -r`` into a plain folder and
imported by ``dlfs add`` into a fresh catalog, both on the bench-data file system,
alternating which goes first. Both start cold (``sync`` + drop caches) unless
``DLFS_BENCH_ADD_CACHE=warm`` (the tree read once before each). ``dlfs add`` makes its
blobs durable (``syncfs``) before it returns; ``cp -r`` does not, so ``cp -r; sync`` is
shown too.
"""

from __future__ import annotations

import cProfile
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import dataset, system
from benchmarks.config import Config

DLFS = [sys.executable, "-m", "dlfs"]


def _log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def publish_cost(cfg: Config, scratch: Path) -> dict[str, Any]:
    """Import, then publish children with ``publish_changes`` changed files."""
    sizes = {
        f"{items}:{folders}": _publish(cfg, scratch, items, folders)
        for items, folders in cfg.publish_sizes
    }
    (big, big_f), (small, small_f) = cfg.publish_sizes[0], cfg.publish_sizes[1]
    ratio = sizes[f"{big}:{big_f}"]["publish_ms"] / sizes[f"{small}:{small_f}"]["publish_ms"]
    nested = {
        f"{items}:n{NESTED_FANOUT}": _publish(cfg, scratch, items, 0, NESTED_FANOUT)
        for items in cfg.publish_nested
    }
    times = [r["publish_ms"] for r in nested.values()]
    return {
        "changes": cfg.publish_changes,
        "sizes": sizes,
        "ratio": ratio,
        "nested": nested,
        "nested_ratio": times[0] / times[1] if len(times) > 1 else None,
    }


NESTED_FANOUT = 100
"""Folder size of the nested layout: a balanced tree with at most 100 entries a folder."""


def _publish(
    cfg: Config, scratch: Path, items: int, folders: int, fanout: int = 0
) -> dict[str, Any]:
    from dlfs.api import Catalog

    spec = dataset.PublishSpec(items, folders, fanout)
    tree = dataset.publish_tree(cfg.data_dir, spec)
    home = Path(tempfile.mkdtemp(prefix="publish-", dir=scratch))
    changes = min(cfg.publish_changes, items)
    try:
        with Catalog(home) as cat:
            cat.create_dataset("p")
            start = time.perf_counter()
            cat.add("p", [tree])
            imported = time.perf_counter() - start
            cat.publish("p")
            child_s, publish_s = [], []
            for rep in range(max(cfg.repeat, 3) + 1):
                start = time.perf_counter()
                child = cat.create_version("p", parents=["p@latest"])
                child_ms = (time.perf_counter() - start) * 1e3
                for k in range(changes):
                    # one file in each of `changes` folders spread over the tree
                    index = (k * items // changes + rep) % items
                    data = f"changed {rep}\n".encode()
                    cat.add_bytes(child.ref, dataset.publish_path(spec, index), data)
                if rep == 0:
                    ref = child.ref  # published by the CLI below, for the user's view
                    continue
                start = time.perf_counter()
                cat.publish(child.ref)
                publish_s.append((time.perf_counter() - start) * 1e3)
                child_s.append(child_ms)
        start = time.perf_counter()
        subprocess.run(
            [*DLFS, "--home", str(home), "publish", ref], check=True, capture_output=True
        )
        cli_ms = (time.perf_counter() - start) * 1e3
    finally:
        shutil.rmtree(home, ignore_errors=True)
    out = {
        "items": items,
        "folders": folders if not fanout else f"nested, <= {fanout} a folder",
        "import_s": imported,
        "child_ms": statistics.median(child_s),
        "publish_ms": statistics.median(publish_s),
        "publish_ms_all": publish_s,
        "publish_cli_ms": cli_ms,
    }
    _log(
        f"publish: {items:,} items in {out['folders']} folders: import {imported:.1f} s,"
        f" child {out['child_ms']:.1f} ms, publish {out['publish_ms']:.1f} ms"
        f" (CLI {cli_ms:.0f} ms)"
    )
    return out


def _tree_bytes(tree: Path) -> tuple[int, int]:
    files = size = 0
    for dirpath, _dirs, names in os.walk(tree):
        for name in names:
            files += 1
            size += os.lstat(os.path.join(dirpath, name)).st_size
    return files, size


def _warm(tree: Path) -> None:
    subprocess.run(["sh", "-c", f"find '{tree}' -type f -exec cat {{}} + >/dev/null"], check=True)


def _timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - start


def add_vs_cp(cfg: Config, scratch: Path, profile: bool = False) -> dict[str, Any]:
    """``dlfs add`` and ``cp -r`` of the same tree, medians over ``repeat`` runs."""
    tree = dataset.add_tree(cfg.data_dir, cfg.add)
    files, nbytes = _tree_bytes(tree)
    cp_s, cp_sync_s, dlfs_s = [], [], []
    stored = 0

    def prepare() -> None:
        if cfg.add_cache == "cold":
            system.drop_caches()
        else:
            _warm(tree)
            os.sync()

    def run_cp() -> None:
        dest = scratch / "cp-copy"
        prepare()
        took = _timed(["cp", "-r", str(tree), str(dest)])
        start = time.perf_counter()
        os.sync()
        cp_s.append(took)
        cp_sync_s.append(took + time.perf_counter() - start)
        shutil.rmtree(dest)
        _log(f"add: cp -r {took:.2f} s (+ sync {cp_sync_s[-1] - took:.2f} s)")

    def run_dlfs() -> None:
        nonlocal stored
        home = scratch / "add-home"
        subprocess.run(
            [*DLFS, "--home", str(home), "dataset", "create", "a"], check=True, capture_output=True
        )
        prepare()
        took = _timed([*DLFS, "--home", str(home), "add", "a", str(tree)])
        dlfs_s.append(took)
        stored = _tree_bytes(home / "blobs")[1]
        shutil.rmtree(home)
        _log(f"add: dlfs add {took:.2f} s")

    for rep in range(cfg.repeat):
        first, second = (run_cp, run_dlfs) if rep % 2 == 0 else (run_dlfs, run_cp)
        first()
        second()
    os.sync()
    out = {
        "files": files,
        "bytes": nbytes,
        "stored_bytes": stored,
        "cache": cfg.add_cache,
        "cp_s": statistics.median(cp_s),
        "cp_sync_s": statistics.median(cp_sync_s),
        "dlfs_s": statistics.median(dlfs_s),
        "samples": {"cp_s": cp_s, "cp_sync_s": cp_sync_s, "dlfs_s": dlfs_s},
    }
    out["ratio"] = out["dlfs_s"] / out["cp_s"]
    out["ratio_vs_cp_sync"] = out["dlfs_s"] / out["cp_sync_s"]
    if profile:
        out["profile"] = profile_add(cfg, scratch, tree)
    return out


def profile_add(cfg: Config, scratch: Path, tree: Path) -> str:
    """``dlfs add`` in process under cProfile; the top functions by cumulative time.

    The profile is written to ``<data_dir>/add.prof`` for ``snakeviz`` or ``pstats``.
    Only the calling thread is profiled: time in the importer's worker threads shows
    as the main thread waiting on them.
    """
    from dlfs.api import Catalog

    home = scratch / "profile-home"
    prof = cProfile.Profile()
    with Catalog(home) as cat:
        cat.create_dataset("a")
        prepare = system.drop_caches if cfg.add_cache == "cold" else lambda: _warm(tree)
        prepare()
        prof.enable()
        cat.add("a", [tree])
        prof.disable()
    shutil.rmtree(home, ignore_errors=True)
    path = cfg.data_dir / "add.prof"
    prof.dump_stats(path)
    import io

    text = io.StringIO()
    pstats.Stats(prof, stream=text).sort_stats("cumulative").print_stats(25)
    return text.getvalue()


def run(cfg: Config, scratch: Path, profile: bool = False) -> dict[str, Any]:
    return {"publish": publish_cost(cfg, scratch), "add": add_vs_cp(cfg, scratch, profile)}

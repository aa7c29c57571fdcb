"""Reading S3 through a mount: dlfs vs ``rclone mount`` vs ``s3fs``, same server, same run,
with a loopback bucket (0 ms) and one that answers like a real bucket (30 ms).

``python -m benchmarks.bench_s3`` puts the same files in one bucket twice: as a dlfs
S3 dataset (``dlfs add`` into ``s3://bucket/dlfs``) and as plain objects under
``plain/`` for the other two. Then, for each server latency (``DLFS_BENCH_S3_LATENCIES``,
default ``0,30`` ms: ``s3range --latency-ms``) and each client that is installed:

- first read: seconds to read one 4 KiB file right after a fresh mount, before any
  timed pass (what a client is still starting: dlfs' daemon builds its S3 client in a
  thread at mount, 1.5-2 s under load), so that the passes measure reading;
- small files, cold, in three orders, each on a fresh mount (for dlfs an empty block
  cache) with the page cache dropped, every small file read whole by ``READERS``
  threads (a data loader with workers), files/s:
  *listing order* (a ``tar``-like walk: folder by folder, names in order),
  *shuffled* (an epoch of training) without a plan, and *shuffled with a plan*: the
  same order handed to ``dlfs.prefetch(mountpoint, paths)`` first (inside the timed
  pass). Only dlfs has plans: its row says ``n/a`` while ``dlfs.prefetch`` does not
  exist; the others read the shuffled order again (cold) in that row;
- small files, warm: the listing-order pass again on the same mount, the median of
  ``DLFS_BENCH_S3_WARM_PASSES`` passes (3);
- large file, cold and warm: one file read sequentially in 1 MiB reads, MB/s; and
  cold again from a server that caps each connection at ``DLFS_BENCH_S3_RATE_MBS``
  (100 MB/s, ``s3range --rate-mbs``): above the cap only by reading ranges in parallel;
- memory (dlfs): ``DLFS_BENCH_S3_MEM_FILES`` (16) large files of
  ``DLFS_BENCH_S3_MEM_MIB`` each read at once; the daemon's RSS (its processes summed,
  from ``/proc/PID/status``): the peak (``VmHWM``) and the most seen while reading,
  beside its prefetch budget (``--prefetch-memory DLFS_BENCH_S3_PREFETCH_MEMORY``, 1G,
  when ``dlfs mount`` has that option).

When ``dlfs mount`` has ``--workers``, the small-file cold rows also run dlfs with
``--workers 1`` (column ``dlfs -w1``) beside the default.

The server is ``benchmarks/s3range``, run as its own process (it shares no GIL with the
reader threads here), once per latency over the same folder, stopped by pid (moto,
used before, keeps objects in memory and tops out near 280 GETs/s).
Settings: ``DLFS_BENCH_S3_FILES`` (default 2,000; 300 with ``--quick``),
``DLFS_BENCH_S3_LARGE_MIB`` (128; 32), ``DLFS_BENCH_S3_READERS`` (8),
``DLFS_BENCH_S3_MEM_MIB`` (64; 16), ``DLFS_BENCH_DIR`` (scratch folder, default the
system temp dir). Clients missing from the machine (``rclone``, ``s3fs`` from Debian;
``make bench`` installs them) are skipped and said so.

Targets (issue 16), at 30 ms: cold small files 10x the better peer in listing order and
shuffled with a plan, 2x shuffled without; cold large file 2x; with the cap, at least 4x
one connection's cap; memory within the budget + 200 MiB. At 0 ms: no figure below
today's (the earlier targets: 4x cold small, 10x warm, 1.2x cold large).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from benchmarks.s3clients import (
    CHUNK,
    Dlfs,
    Rclone,
    S3fs,
    Target,
    make_files,
    publish_to_s3,
    s3range,
    upload_plain,
    use_server_credentials,
)
from benchmarks.system import drop_caches

__all__ = [  # what other benches take from here
    "Dlfs",
    "make_files",
    "measure",
    "publish_to_s3",
    "run",
    "s3range",
    "small_pass",
    "use_server_credentials",
]

MIB = 1 << 20
ORDERS = ("listing", "shuffled", "planned")
FIRST = "first.bin"  # read right after each mount, before a timed pass: see first_read


def _log(message: str) -> None:
    print(f"bench: s3: {message}", file=sys.stderr, flush=True)


def _int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return default if not value else int(value)


# -- what this dlfs can do -------------------------------------------------------------


def mount_help() -> str:
    """``dlfs mount --help`` of the dlfs being measured (its options tell what exists)."""
    cmd = [sys.executable, "-m", "dlfs", "mount", "--help"]
    return subprocess.run(cmd, capture_output=True, text=True).stdout


def plan_function() -> Callable[..., Any] | None:
    """``dlfs.prefetch`` if this dlfs has access plans, else None."""
    import dlfs

    fn = getattr(dlfs, "prefetch", None)
    return fn if callable(fn) else None


# -- the daemon's memory ----------------------------------------------------------------


def process_tree(pid: int) -> list[int]:
    """``pid`` and every process below it (a daemon's workers)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(children.get(p, []))
    return tree


def status_kib(pids: Sequence[int], field: str) -> int:
    """``field`` of ``/proc/PID/status`` (``VmRSS``, ``VmHWM``) summed over ``pids``, KiB."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith(field + ":"):
                    total += int(line.split()[1])
        except OSError:
            continue  # a worker gone
    return total


class RssSampler:
    """The most RSS a process tree had, sampled every 50 ms while in the block."""

    def __init__(self, pid: int) -> None:
        self.pids = process_tree(pid)
        self.most = status_kib(self.pids, "VmRSS")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.most = max(self.most, status_kib(self.pids, "VmRSS"))

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# -- passes ------------------------------------------------------------------------------


def _read(path: Path) -> int:
    n = 0
    with open(path, "rb", buffering=0) as f:
        while chunk := f.read(CHUNK):
            n += len(chunk)
    return n


def small_pass(
    root: Path,
    rels: list[str],
    readers: int,
    expect: int,
    before: Callable[[], object] | None = None,
) -> float:
    """Files per second reading every small file whole, in the order of ``rels``
    (handed out in that order to ``readers`` threads); ``before`` (giving a plan) runs
    inside the timed part."""
    start = time.perf_counter()
    if before is not None:
        before()
    with ThreadPoolExecutor(readers) as pool:
        total = sum(pool.map(lambda r: _read(root / r), rels))
    elapsed = time.perf_counter() - start
    if total != expect:
        raise RuntimeError(f"read {total} bytes, expected {expect}")
    return len(rels) / elapsed


def large_pass(root: Path, rel: str, expect: int) -> float:
    """MB/s reading the large file in order."""
    start = time.perf_counter()
    n = _read(root / rel)
    elapsed = time.perf_counter() - start
    if n != expect:
        raise RuntimeError(f"read {n} bytes, expected {expect}")
    return n / elapsed / 1e6


def first_read(root: Path) -> float:
    """Seconds to read ``FIRST`` (4 KiB) right after a mount. A client's first read
    waits for what the client is still starting (dlfs' daemon builds its S3 client in
    a thread at mount: 1.5-2 s on a loaded machine), once a mount; paid here, outside
    the timed passes, so that those measure reading, and shown on its own row."""
    start = time.perf_counter()
    _read(root / FIRST)
    return time.perf_counter() - start


def orders(small: list[str], seed: int = 16) -> dict[str, list[str]]:
    """The small files in listing order (folder by folder, names in order) and
    shuffled (one epoch); ``planned`` is the shuffled order, given as a plan."""
    listing = sorted(small)
    shuffled = list(listing)
    random.Random(seed).shuffle(shuffled)
    return {"listing": listing, "shuffled": shuffled, "planned": shuffled}


def measure_small(
    target: Target,
    mnt: Path,
    small: list[str],
    sizes: dict[str, int],
    readers: int,
    warm_passes: int,
    plan: Callable[..., Any] | None,
) -> dict[str, float | None]:
    """The cold small-file figure in each order (a fresh mount each), and warm in
    listing order; ``small_planned`` is None for dlfs without plans."""
    expect = sum(sizes[r] for r in small)
    out: dict[str, float | None] = {}
    for order, rels in orders(small).items():
        before = None
        if order == "planned" and isinstance(target, Dlfs):
            if plan is None:
                out["small_planned"] = None
                continue
            before = functools.partial(plan, mnt, rels)
        with target.mounted(mnt) as root:
            drop_caches()
            first = first_read(root)
            if order == "listing":
                out["first_read"] = first
            out[f"small_{order}"] = small_pass(root, rels, readers, expect, before)
            if order == "listing" and warm_passes:
                out["small_warm"] = statistics.median(
                    small_pass(root, rels, readers, expect) for _ in range(warm_passes)
                )
    return out


def measure_large(
    target: Target, mnt: Path, large: str, size: int, warm_passes: int
) -> dict[str, float | None]:
    """The large file cold, then warm (median of ``warm_passes``)."""
    with target.mounted(mnt) as root:
        drop_caches()
        first_read(root)
        out: dict[str, float | None] = {"large_cold": large_pass(root, large, size)}
        if warm_passes:
            out["large_warm"] = statistics.median(
                large_pass(root, large, size) for _ in range(warm_passes)
            )
    return out


def measure(
    target: Target,
    mnt: Path,
    small: list[str],
    large: str,
    sizes: dict[str, int],
    readers: int,
    warm_passes: int = 3,
    plan: Callable[..., Any] | None = None,
) -> dict[str, float | None]:
    """Every small-file and large-file figure of one target."""
    out = measure_small(target, mnt, small, sizes, readers, warm_passes, plan)
    out |= measure_large(target, mnt, large, sizes[large], warm_passes)
    return out


def measure_memory(dlfs: Dlfs, mnt: Path, files: list[str], sizes: dict[str, int]) -> dict:
    """The dlfs daemon's RSS while ``files`` are all read at once, one thread each."""
    with dlfs.mounted(mnt) as root:
        drop_caches()
        first_read(root)
        if not dlfs.pid:
            raise RuntimeError("dlfs mount did not say its daemon's pid")
        with RssSampler(dlfs.pid) as rss:
            start = time.perf_counter()
            with ThreadPoolExecutor(len(files)) as pool:
                total = sum(pool.map(lambda r: _read(root / r), files))
            elapsed = time.perf_counter() - start
        peak = status_kib(rss.pids, "VmHWM")
    if total != sum(sizes[r] for r in files):
        raise RuntimeError(f"read {total} bytes of {len(files)} files: short")
    return {
        "files": len(files),
        "mb_s": total / elapsed / 1e6,
        "processes": len(rss.pids),
        "peak_mib": peak / 1024,
        "during_mib": rss.most / 1024,
    }


# -- tables ------------------------------------------------------------------------------

FIGURES: dict[str, str] = {
    "first_read": "first read after a fresh mount (s; outside the timed passes)",
    "small_listing": "small files cold, listing order (files/s)",
    "small_warm": "small files warm, listing order (files/s)",
    "small_shuffled": "small files cold, shuffled, no plan (files/s)",
    "small_planned": "small files cold, shuffled, plan given first (files/s)",
    "large_cold": "large file cold (MB/s)",
    "large_warm": "large file warm (MB/s)",
    "large_capped": "large file cold, {rate:g} MB/s per connection (MB/s)",
}
TARGETS = {  # the goals: dlfs / the better of rclone and s3fs
    0: {"small_listing": 4.0, "small_warm": 10.0, "large_cold": 1.2},
    30: {"small_listing": 10.0, "small_shuffled": 2.0, "small_planned": 10.0, "large_cold": 2.0},
}
PEERS = ("rclone", "s3fs")


def _cell(value: float | None, measured: bool, digits: int = 1) -> str:
    if value is None:
        return "n/a" if measured else "-"
    return f"{value:,.{digits}f}"


def rows(results: dict[str, dict[str, float | None]], latency: int, rate: float) -> list[dict]:
    """One row per figure: each client's value, dlfs / the better peer, the target."""
    names = list(results)
    out = []
    for key, label in FIGURES.items():
        if not any(key in results[n] for n in names):
            continue
        row: dict[str, str] = {"server": f"{latency} ms", "figure": label.format(rate=rate)}
        for n in names:
            row[n] = _cell(results[n].get(key), key in results[n], 2 if key == "first_read" else 1)
        peers = [v for n in PEERS if (v := results.get(n, {}).get(key))]
        mine = results.get("dlfs", {}).get(key)
        better = max(peers) if key != "first_read" and peers else None
        row["dlfs / best peer"] = f"{mine / better:.1f}x" if mine and better else "-"
        goal = TARGETS.get(latency, {}).get(key)
        if key == "large_capped":
            row["target"] = f">= 4x the cap (dlfs: {mine / rate:.1f}x)" if mine else ">= 4x cap"
        else:
            row["target"] = f">= {goal:g}x" if goal else "-"
        out.append(row)
    return out


def text_table(table: list[dict]) -> str:
    header = [k for k in table[0] if k != "server"]
    lines = [" | ".join(header)]
    lines += [" | ".join(r[k] for k in header) for r in table]
    return "\n".join(lines)


def memory_line(mem: dict | None, budget: str | None) -> str:
    if mem is None:
        return "memory: not measured"
    said = f"--prefetch-memory {budget}" if budget else "n/a (dlfs mount has no --prefetch-memory)"
    return (
        f"memory: dlfs daemon ({mem['processes']} process(es)) reading {mem['files']} large"
        f" files at once ({mem['mb_s']:,.0f} MB/s): peak RSS (VmHWM) {mem['peak_mib']:,.0f} MiB,"
        f" most seen during {mem['during_mib']:,.0f} MiB; prefetch budget: {said}"
    )


# -- the run -----------------------------------------------------------------------------


def _latencies() -> list[int]:
    text = os.environ.get("DLFS_BENCH_S3_LATENCIES") or "0,30"
    return [int(v) for v in text.split(",") if v.strip()]


def run(quick: bool = False) -> dict[str, Any]:
    """Run the benchmark; return its figures (also printed as tables)."""
    count = _int("DLFS_BENCH_S3_FILES", 300 if quick else 2000)
    large_mib = _int("DLFS_BENCH_S3_LARGE_MIB", 32 if quick else 128)
    readers = _int("DLFS_BENCH_S3_READERS", 8)
    warm_passes = max(1, _int("DLFS_BENCH_S3_WARM_PASSES", 3))
    rate = float(os.environ.get("DLFS_BENCH_S3_RATE_MBS") or 100)
    mem_files = _int("DLFS_BENCH_S3_MEM_FILES", 16)
    mem_mib = _int("DLFS_BENCH_S3_MEM_MIB", 16 if quick else 64)
    latencies = _latencies()
    server = os.environ.get("DLFS_BENCH_S3_SERVER") or "s3range"
    if server != "s3range":
        raise SystemExit(
            f"DLFS_BENCH_S3_SERVER={server}: only s3range can add a latency and keep the"
            " objects between its runs (one server process per latency)"
        )
    help_text = mount_help()
    workers = "--workers" in help_text
    budget = (
        (os.environ.get("DLFS_BENCH_S3_PREFETCH_MEMORY") or "1G")
        if ("--prefetch-memory" in help_text)
        else None
    )
    plan = plan_function()
    _log(
        f"dlfs: plans {'yes' if plan else 'n/a'}, --workers {'yes' if workers else 'n/a'},"
        f" --prefetch-memory {'yes' if budget else 'n/a'}"
    )
    base = os.environ.get("DLFS_BENCH_DIR") or tempfile.gettempdir()
    scratch = Path(tempfile.mkdtemp(prefix="dlfs-bench-s3-", dir=base))
    serve = s3range
    use_server_credentials()
    tables: dict[str, Any] = {}
    all_rows: list[dict] = []
    try:
        with serve(scratch) as endpoint:
            use_server_credentials(endpoint)
            import boto3

            bucket = "bench"
            boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=bucket)
            _log(f"making {count} small files, {large_mib} MiB, {mem_files} x {mem_mib} MiB")
            data = scratch / "data"
            small, large = make_files(data, count, large_mib)
            many = make_many(data, mem_files, mem_mib)
            (data / FIRST).write_bytes(random.Random(5).randbytes(4096))
            sizes = {r: (data / r).stat().st_size for r in [*small, large, *many]}
            home = scratch / "home"
            start = time.perf_counter()
            ref = publish_to_s3(home, data, bucket)
            _log(f"dlfs add to S3: {time.perf_counter() - start:.1f} s")
            start = time.perf_counter()
            upload_plain(endpoint, bucket, data, [FIRST, *small, large])
            _log(f"plain upload (boto3, 16 threads): {time.perf_counter() - start:.1f} s")
        mnt = scratch / "mnt"
        mnt.mkdir()
        cache = scratch / "cache"
        dlfs = Dlfs(home, ref, cache)
        one = Dlfs(home, ref, cache, ["--workers", "1"], name="dlfs -w1") if workers else None
        mem_dlfs = Dlfs(home, ref, cache, ["--prefetch-memory", budget] if budget else [])
        for latency in latencies:
            results: dict[str, dict[str, float | None]] = {}
            mem = None
            with serve(scratch, latency_ms=latency) as endpoint:
                _log(f"server: {server} at {endpoint}, {latency} ms a request")
                use_server_credentials(endpoint)
                peers = [Rclone(endpoint, bucket), S3fs(endpoint, bucket, scratch)]
                for target in [dlfs, *([one] if one else []), *peers]:
                    if not target.available():
                        _log(f"{target.name}: not installed, skipped")
                        continue
                    _log(f"{target.name}: measuring at {latency} ms")
                    try:
                        if target is one:
                            got = measure_small(target, mnt, small, sizes, readers, 0, plan)
                        else:
                            got = measure(
                                target, mnt, small, large, sizes, readers, warm_passes, plan
                            )
                        results[target.name] = got
                    except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
                        _log(f"{target.name}: failed: {exc}")
                try:
                    mem = measure_memory(mem_dlfs, mnt, many, sizes)
                except (RuntimeError, OSError) as exc:
                    _log(f"memory: failed: {exc}")
            with serve(scratch, latency_ms=latency, rate_mbs=rate) as endpoint:
                use_server_credentials(endpoint)
                peers = [Rclone(endpoint, bucket), S3fs(endpoint, bucket, scratch)]
                for target in [dlfs, *peers]:
                    if target.name not in results:
                        continue
                    _log(f"{target.name}: large file at {latency} ms, {rate:g} MB/s a connection")
                    try:
                        cold = measure_large(target, mnt, large, sizes[large], 0)
                        results[target.name]["large_capped"] = cold["large_cold"]
                    except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
                        _log(f"{target.name}: failed: {exc}")
            table = rows(results, latency, rate)
            all_rows += table
            print(f"\n== S3 at {latency} ms a request ({server}) ==")
            if table:
                print(text_table(table))
            print(memory_line(mem, budget), flush=True)
            tables[f"{latency}ms"] = {"results": results, "memory": mem}
        return {
            "server": server,
            "files": count,
            "large_mib": large_mib,
            "readers": readers,
            "warm_passes": warm_passes,
            "rate_mbs": rate,
            "memory_files": [mem_files, mem_mib],
            "prefetch_memory": budget,
            "plans": plan is not None,
            "workers_option": workers,
            "latencies": tables,
            "rows": all_rows,
        }
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def make_many(root: Path, count: int, mib: int) -> list[str]:
    """``count`` large files of ``mib`` MiB (``many/mNN.bin``), read at once for memory."""
    rng = random.Random(17)
    (root / "many").mkdir(parents=True, exist_ok=True)
    rels = []
    for i in range(count):
        rel = f"many/m{i:02d}.bin"
        with open(root / rel, "wb") as f:
            for _ in range(mib):
                f.write(rng.randbytes(MIB))
        rels.append(rel)
    return rels


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Entry point: ``python -m benchmarks.bench_s3 [--quick] [--json FILE]``."""
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_s3",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--quick", action="store_true", help="small data")
    p.add_argument("--json", type=Path, help="also write the figures to this file")
    args = p.parse_args(argv)
    quick = args.quick or os.environ.get("DLFS_BENCH_QUICK") == "1"
    out = run(quick)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()

"""Pushing a version to S3: ``dlfs push`` vs ``rclone copy --transfers 16`` of the same
files to the same server, in the same run, at 0 and 30 ms a request.

``python -m benchmarks.bench_push`` makes two trees: ``DLFS_BENCH_PUSH_FILES`` small
files (3,000; 300 with ``--quick``) of 40-80 bytes in 30 folders, and one file of
``DLFS_BENCH_PUSH_LARGE_MIB`` (256; 32). Each is published as a dlfs dataset in a
local catalog. Then, for each server latency (``DLFS_BENCH_S3_LATENCIES``, default
``0,30`` ms: ``s3range --latency-ms``, a fresh server folder each time), each into a
new, empty bucket:

- small: seconds of ``dlfs push bench@latest s3://B/p`` (the CLI, a new process, as a
  user runs it) against ``rclone copy SRC remote:B/plain --transfers 16``;
- large: MB/s of the same two for the large file.

The ratio column is dlfs / rclone in seconds (small; at most 1.0 is the issue 21
target) or rclone / dlfs in MB/s (large; at most 1.0 again). rclone missing from the
machine (Debian's ``rclone``; ``make bench`` installs it) leaves its cells empty.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.s3clients import ACCESS_KEY, SECRET_KEY, s3range, use_server_credentials

MB = 1e6


def _int(name: str, default: int) -> int:
    text = os.environ.get(name)
    return int(text) if text else default


def _latencies() -> list[int]:
    text = os.environ.get("DLFS_BENCH_S3_LATENCIES", "0,30")
    return [int(x) for x in text.split(",") if x.strip()]


def make_trees(root: Path, count: int, large_mib: int) -> tuple[Path, Path]:
    """``root/small`` (``count`` files of 40-80 bytes) and ``root/large`` (one file)."""
    rng = random.Random(21)
    small = root / "small"
    for i in range(count):
        path = small / f"d{i % 30:02d}" / f"f{i:05d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(rng.randint(40, 80)))
    large = root / "large"
    large.mkdir(parents=True, exist_ok=True)
    with open(large / "big.bin", "wb") as f:
        for _ in range(large_mib):
            f.write(rng.randbytes(1 << 20))
    return small, large


def _dlfs(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "dlfs", "--home", str(home), *args]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"dlfs {args[0]} failed: {(done.stderr or done.stdout).strip()}")
    return done


def publish(home: Path, name: str, tree: Path) -> str:
    """Import ``tree`` into a local dataset ``name`` and publish it."""
    from dlfs.api import Catalog

    with Catalog(home) as cat:
        cat.create_dataset(name)
        cat.add(name, [tree])
        return cat.publish(name).ref


def _bucket(endpoint: str) -> str:
    import boto3
    from botocore.config import Config

    name = f"push-{time.monotonic_ns() % 10**12}"
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}),
    ).create_bucket(Bucket=name)
    return name


def time_push(home: Path, ref: str, endpoint: str) -> float:
    bucket = _bucket(endpoint)
    start = time.perf_counter()
    _dlfs(home, "push", ref, f"s3://{bucket}/p", "--endpoint-url", endpoint)
    return time.perf_counter() - start


def time_rclone(tree: Path, endpoint: str) -> float | None:
    if shutil.which("rclone") is None:
        return None
    bucket = _bucket(endpoint)
    env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
    env |= {
        "RCLONE_CONFIG_BENCH_TYPE": "s3",
        "RCLONE_CONFIG_BENCH_PROVIDER": "Other",
        "RCLONE_CONFIG_BENCH_ENDPOINT": endpoint,
        "RCLONE_CONFIG_BENCH_ACCESS_KEY_ID": ACCESS_KEY,
        "RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY": SECRET_KEY,
        "RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE": "true",
    }
    cmd = ["rclone", "copy", str(tree), f"bench:{bucket}/plain", "--transfers", "16"]
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"rclone copy failed: {done.stderr.strip()[-500:]}")
    return time.perf_counter() - start


def run(quick: bool = False) -> dict[str, Any]:
    count = _int("DLFS_BENCH_PUSH_FILES", 300 if quick else 3000)
    large_mib = _int("DLFS_BENCH_PUSH_LARGE_MIB", 32 if quick else 256)
    base = Path(os.environ.get("DLFS_BENCH_DIR") or tempfile.gettempdir())
    base.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="bench-push-", dir=base))
    rows: list[dict[str, Any]] = []
    try:
        small, large = make_trees(scratch / "src", count, large_mib)
        home = scratch / "home"
        use_server_credentials()
        small_ref = publish(home, "small", small)
        large_ref = publish(home, "large", large)
        size = large_mib * (1 << 20)
        for latency in _latencies():
            server = scratch / f"server-{latency}"
            server.mkdir()
            with s3range(server.resolve(), latency_ms=latency) as endpoint:
                d = time_push(home, small_ref, endpoint)
                r = time_rclone(small, endpoint)
                rows.append(
                    _row(f"push {count} small files (s)", latency, d, r, d / r if r else None)
                )
                d = time_push(home, large_ref, endpoint)
                r = time_rclone(large, endpoint)
                dm, rm = size / d / MB, (size / r / MB if r else None)
                rows.append(
                    _row(f"push one {large_mib} MiB file (MB/s)", latency, dm, rm,
                         rm / dm if rm else None)
                )  # fmt: skip
            shutil.rmtree(server, ignore_errors=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return {"files": count, "large_mib": large_mib, "rows": rows}


def _row(what: str, latency: int, dlfs: float, rclone: float | None, ratio: float | None) -> dict:
    return {"what": what, "latency_ms": latency, "dlfs": dlfs, "rclone": rclone, "ratio": ratio}


def text_table(result: dict[str, Any]) -> str:
    lines = [f"{'':40} {'ms':>4} {'dlfs':>9} {'rclone':>9} {'ratio':>6}"]
    for row in result["rows"]:
        r = "-" if row["rclone"] is None else f"{row['rclone']:.2f}"
        q = "-" if row["ratio"] is None else f"{row['ratio']:.2f}"
        lines.append(f"{row['what']:40} {row['latency_ms']:>4} {row['dlfs']:>9.2f} {r:>9} {q:>6}")
    lines.append("ratio: dlfs/rclone seconds (small), rclone/dlfs MB/s (large); target <= 1.0")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    quick = "--quick" in (argv or sys.argv[1:]) or os.environ.get("DLFS_BENCH_QUICK") == "1"
    result = run(quick)
    print(text_table(result), flush=True)
    if "--json" in (argv or sys.argv[1:]):
        print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()

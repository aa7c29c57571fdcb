"""Mounting a pushed version straight from its remote: time to usable and the daemon's
memory after a walk of the whole tree.

``python -m benchmarks.bench_remote_mount [N] [LATENCY_MS]`` (default 200000 items,
30 ms; ``--quick``: 20000) builds a published version of N items in 1,000-item folders
(:func:`benchmarks.bench_versioning.build`: records only, no bytes), writes its
records, folder objects, head and tags to a ``benchmarks/s3range`` bucket
(:func:`dlfs.ops.push.write`), then, against the same bucket answering each request
LATENCY_MS late, from a node catalog that never pulled it: ``dlfs mount --remote``
(seconds until it returns), the first ``ls`` of the root, a walk of every file
(``os.walk``), and the daemon's RSS (its processes summed) after the walk.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import bench_push
from benchmarks.bench_versioning import build
from benchmarks.s3clients import s3range, use_server_credentials


def _mib(pid: int, field: str) -> int:
    pids = [pid] + [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    total = 0
    for p in pids:
        total += int(Path(f"/proc/{p}/status").read_text().split(f"{field}:")[1].split()[0])
    return total // 1024


def measure(n: int, latency: float, base: Path) -> dict[str, Any]:
    from dlfs.api import Catalog
    from dlfs.ops import push

    scratch = Path(tempfile.mkdtemp(prefix="bench-rmount-", dir=base))
    dlfs = [sys.executable, "-m", "dlfs", "--home", str(scratch / "node")]
    try:
        with Catalog(scratch / "a") as a:
            vid = build(a.db, "big", n, lambda i: "[]")
            row = a.db.version_get(vid)
            assert row is not None
            doc = push.collect(a.db, row)
        (scratch / "srv").mkdir()
        with s3range(scratch / "srv") as endpoint:
            os.environ["DLFS_S3_ENDPOINT"] = endpoint
            bucket = bench_push._bucket(endpoint)
            with Catalog(scratch / "b") as b:
                push.write(b._remote(f"s3://{bucket}/r"), doc)
        del doc
        with s3range(scratch / "srv", latency_ms=latency) as endpoint:
            os.environ["DLFS_S3_ENDPOINT"] = endpoint
            Catalog(scratch / "node").close()
            mnt = scratch / "mnt"
            mnt.mkdir()
            start = time.perf_counter()
            out = subprocess.run(
                [*dlfs, "mount", "--remote", f"s3://{bucket}/r", "big@latest", str(mnt)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            mounted = time.perf_counter()
            entries = len(os.listdir(mnt))
            listed = time.perf_counter()
            files = sum(len(f) for _root, _dirs, f in os.walk(mnt))
            walked = time.perf_counter()
            found = re.search(r"pid (\d+)", out)
            rss = _mib(int(found.group(1)), "VmRSS") if found else -1
            subprocess.run([*dlfs, "umount", str(mnt)], capture_output=True, check=True)
        return {
            "items": n,
            "latency_ms": latency,
            "mount_s": mounted - start,
            "first_ls_s": listed - mounted,
            "root_entries": entries,
            "walk_s": walked - listed,
            "files": files,
            "daemon_rss_mib": rss,
        }
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = sys.argv[1:] if argv is None else argv
    quick = "--quick" in args or os.environ.get("DLFS_BENCH_QUICK") == "1"
    nums = [a for a in args if not a.startswith("-")]
    n = int(nums[0]) if nums else (20_000 if quick else 200_000)
    latency = float(nums[1]) if len(nums) > 1 else 30.0
    base = Path(os.environ.get("DLFS_BENCH_DIR") or tempfile.gettempdir())
    base.mkdir(parents=True, exist_ok=True)
    use_server_credentials()
    r = measure(n, latency, base)
    print(
        f"{r['items']} items at {r['latency_ms']:g} ms: dlfs mount --remote {r['mount_s']:.2f} s,"
        f" first ls {r['first_ls_s']:.3f} s, walk of {r['files']} files {r['walk_s']:.1f} s,"
        f" daemon RSS after the walk {r['daemon_rss_mib']} MiB"
    )
    return r


if __name__ == "__main__":
    main()

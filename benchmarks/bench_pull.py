"""Pulling a large version: the peak memory and time of ``dlfs pull``.

``python -m benchmarks.bench_pull [N ...]`` (default 100000 and 400000 items; with
``--quick`` 20000) builds a published version of N items in a scratch catalog
(:func:`benchmarks.bench_versioning.build`: records only, no bytes), puts its pushed
document and ``latest`` tag on a fresh ``benchmarks/s3range`` bucket, then runs
``dlfs pull`` in a new process that prints its own peak RSS (``VmHWM``) when it exits:
the figure a node pays before its first read. Scratch under ``DLFS_BENCH_DIR``.
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

_CHILD = (
    "import atexit, runpy, sys; atexit.register(lambda: print('VmHWM', "
    "open('/proc/self/status').read().split('VmHWM:')[1].split()[0], file=sys.stderr)); "
    "sys.argv = ['dlfs'] + sys.argv[1:]; runpy.run_module('dlfs', run_name='__main__')"
)


def measure(n: int, base: Path) -> dict[str, Any]:
    """Build, push (the document only) and pull a version of ``n`` items."""
    from dlfs.api import Catalog
    from dlfs.objects import canonical_json
    from dlfs.ops import push, versiondoc

    scratch = Path(tempfile.mkdtemp(prefix="bench-pull-", dir=base))
    try:
        with Catalog(scratch / "a") as a:
            vid = build(a.db, "big", n, lambda i: "[]")
            row = a.db.version_get(vid)
            assert row is not None
            data = versiondoc.encode(push.collect(a.db, row))
        (scratch / "srv").mkdir()
        with s3range(scratch / "srv") as endpoint:
            os.environ["DLFS_S3_ENDPOINT"] = endpoint
            bucket = bench_push._bucket(endpoint)
            url = f"s3://{bucket}/r"
            with Catalog(scratch / "b") as b:
                remote = b._remote(url)
                remote.put_object(f"datasets/big/versions/{vid}.json.gz", data)
                stamp = {"version": vid, "published_at": 1.0}
                remote.put_object("datasets/big/tags/latest.json", canonical_json(stamp).encode())
            start = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-c", _CHILD, "--home", str(scratch / "b"), "pull", url, "big"],
                capture_output=True,
                text=True,
                check=True,
            )
            seconds = time.perf_counter() - start
        found = re.search(r"VmHWM (\d+)", done.stderr)
        peak = int(found.group(1)) / 1024 if found else float("nan")
        return {"items": n, "document_bytes": len(data), "seconds": seconds, "peak_mib": peak}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = sys.argv[1:] if argv is None else argv
    quick = "--quick" in args or os.environ.get("DLFS_BENCH_QUICK") == "1"
    sizes = [int(a) for a in args if a.isdigit()] or ([20_000] if quick else [100_000, 400_000])
    base = Path(os.environ.get("DLFS_BENCH_DIR") or tempfile.gettempdir())
    base.mkdir(parents=True, exist_ok=True)
    use_server_credentials()
    rows = [measure(n, base) for n in sizes]
    print(f"{'items':>10} {'document':>10} {'seconds':>8} {'peak RSS':>9}")
    for r in rows:
        print(
            f"{r['items']:>10} {r['document_bytes'] / 1e6:>8.1f}MB {r['seconds']:>8.1f}"
            f" {r['peak_mib']:>7.0f}MB"
        )
    return {"rows": rows}


if __name__ == "__main__":
    main()

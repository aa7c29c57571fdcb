"""Reading S3 through a mount: dlfs vs ``rclone mount`` vs ``s3fs``, same server, same run.

``python -m benchmarks.bench_s3`` starts a loopback S3 server, puts the same files in
one bucket twice: as a dlfs S3 dataset (``dlfs add`` into ``s3://bucket/dlfs``) and as
plain objects under ``plain/`` for the other two. Then, for each target that is
installed:

- small files, cold: a fresh mount (and for dlfs an empty block cache), the page
  cache dropped, every small file read whole by ``READERS`` threads (a data loader
  with workers): files/s;
- small files, warm: the same pass again on the same mount, the median of
  ``DLFS_BENCH_S3_WARM_PASSES`` passes (3), as the read suite does: the first pass
  after a cold one also pays for what the cold pass left running (a client's cache
  writes);
- large file, cold and warm: one file read sequentially in 1 MiB reads: MB/s.

The server is ``benchmarks/s3range.py`` by default: a small S3-compatible server over
a scratch folder that answers a ranged GET with ``sendfile`` from the object's file,
run as its own process (so it shares no GIL with the reader threads here) and stopped
by pid at the end. ``DLFS_BENCH_S3_SERVER=moto`` uses ``moto_server`` instead, as
before; moto copies the whole object for every ranged GET and tops out near 280
GETs/s, so with it the figures mostly measure moto. The results say which server
was used (``"server"``).
Settings: ``DLFS_BENCH_S3_FILES`` (default 2,000; 300 with ``--quick``),
``DLFS_BENCH_S3_LARGE_MIB`` (default 128; 32), ``DLFS_BENCH_S3_READERS`` (8),
``DLFS_BENCH_S3_SERVER`` (``s3range`` or ``moto``), ``DLFS_BENCH_DIR`` (scratch folder,
default the system temp dir). Targets missing from the machine (``rclone``, ``s3fs``
from Debian) are skipped and said so. The issue's targets: dlfs at least 4x the
better of the two on cold small files, 10x warm, 1.2x on the cold large file.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks.system import drop_caches, stop, unmount, wait_for_mount

ACCESS_KEY = "bench-access-key"
SECRET_KEY = "bench-secret-key"
CHUNK = 1 << 20


def _log(message: str) -> None:
    print(f"bench: s3: {message}", file=sys.stderr, flush=True)


def _int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return default if not value else int(value)


# -- the server and the data ---------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def _server_process(
    cmd: list[str], port: int, log: Path, what: str, cwd: Path | None = None
) -> Iterator[str]:
    """Run ``cmd`` (a server on ``port``) in its own session until the block ends;
    wait until it answers; stop it by pid at the end."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=cwd
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    tail = log.read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"{what} did not start: {tail}") from None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
        stop(proc)


@contextmanager
def moto(scratch: Path) -> Iterator[str]:
    """A moto S3 server on a free loopback port; stopped by pid at the end."""
    port = _free_port()
    exe = Path(sys.executable).with_name("moto_server")
    cmd = [str(exe), "-H", "127.0.0.1", "-p", str(port)]
    with _server_process(cmd, port, scratch / "moto.log", "moto_server") as endpoint:
        yield endpoint


@contextmanager
def s3range(scratch: Path) -> Iterator[str]:
    """``benchmarks.s3range`` over ``scratch/s3`` on a free loopback port, in its own
    process; stopped by pid at the end."""
    port = _free_port()
    root = (scratch / "s3").resolve()
    cmd = [sys.executable, "-m", "benchmarks.s3range", str(root), "--port", str(port)]
    repo = Path(__file__).resolve().parent.parent  # where ``benchmarks`` imports from
    log = scratch / "s3range.log"
    with _server_process(cmd, port, log, "s3range", cwd=repo) as endpoint:
        yield endpoint


SERVERS = {"s3range": s3range, "moto": moto}


def make_files(root: Path, count: int, large_mib: int) -> tuple[list[str], str]:
    """``count`` small files (16-256 KiB) in 20 folders and one large file."""
    rng = random.Random(7)
    small = []
    for i in range(count):
        rel = f"small/d{i % 20:02d}/f{i:05d}.bin"
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(rng.randint(16, 256) * 1024))
        small.append(rel)
    large = "large/big.bin"
    (root / "large").mkdir(exist_ok=True)
    with open(root / large, "wb") as f:
        for _ in range(large_mib):
            f.write(rng.randbytes(CHUNK))
    return small, large


def upload_plain(endpoint: str, bucket: str, root: Path, rels: list[str]) -> None:
    """The files as plain objects ``plain/<path>`` (what rclone and s3fs read)."""
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, max_pool_connections=16),
    )
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda r: client.upload_file(str(root / r), bucket, f"plain/{r}"), rels))


# -- targets -------------------------------------------------------------------------


class Target:
    """A way to mount the bucket read-only at a folder."""

    name = ""
    binary = ""

    def available(self) -> bool:
        return shutil.which(self.binary) is not None

    @contextmanager
    def mounted(self, mnt: Path) -> Iterator[Path]:
        """The mounted tree (the folder holding ``small/`` and ``large/``)."""
        raise NotImplementedError
        yield mnt


class Dlfs(Target):
    name = "dlfs"
    binary = "dlfs"

    def __init__(self, home: Path, ref: str, cache: Path) -> None:
        self.home, self.ref, self.cache = home, ref, cache

    def available(self) -> bool:
        return True

    @contextmanager
    def mounted(self, mnt: Path) -> Iterator[Path]:
        shutil.rmtree(self.cache, ignore_errors=True)  # cold: an empty block cache
        cmd = [sys.executable, "-m", "dlfs", "--home", str(self.home), "mount", self.ref]
        cmd += [str(mnt), "--cache-dir", str(self.cache), "--cache-size", "20G"]
        subprocess.run(cmd, check=True, capture_output=True)
        try:
            yield mnt
        finally:
            subprocess.run(
                [sys.executable, "-m", "dlfs", "--home", str(self.home), "umount", str(mnt)],
                capture_output=True,
            )
            unmount(mnt)


class Rclone(Target):
    name = "rclone"
    binary = "rclone"

    def __init__(self, endpoint: str, bucket: str) -> None:
        self.endpoint, self.bucket = endpoint, bucket

    @contextmanager
    def mounted(self, mnt: Path) -> Iterator[Path]:
        env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}  # http: none
        env |= {
            "RCLONE_CONFIG_BENCH_TYPE": "s3",
            "RCLONE_CONFIG_BENCH_PROVIDER": "Other",
            "RCLONE_CONFIG_BENCH_ENDPOINT": self.endpoint,
            "RCLONE_CONFIG_BENCH_ACCESS_KEY_ID": ACCESS_KEY,
            "RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY": SECRET_KEY,
            "RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE": "true",
        }
        cmd = ["rclone", "mount", f"bench:{self.bucket}/plain", str(mnt), "--read-only"]
        cmd += ["--vfs-cache-mode", "off", "--dir-cache-time", "1h"]
        proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
        try:
            wait_for_mount(mnt, proc)
            yield mnt
        finally:
            unmount(mnt)
            stop(proc)


class S3fs(Target):
    name = "s3fs"
    binary = "s3fs"

    def __init__(self, endpoint: str, bucket: str, scratch: Path) -> None:
        self.endpoint, self.bucket = endpoint, bucket
        self.passwd = scratch / "s3fs.passwd"
        self.passwd.write_text(f"{ACCESS_KEY}:{SECRET_KEY}\n")
        self.passwd.chmod(0o600)

    @contextmanager
    def mounted(self, mnt: Path) -> Iterator[Path]:
        opts = f"url={self.endpoint},use_path_request_style,passwd_file={self.passwd},ro"
        cmd = ["s3fs", f"{self.bucket}:/plain", str(mnt), "-f", "-o", opts]
        proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
        try:
            wait_for_mount(mnt, proc)
            yield mnt
        finally:
            unmount(mnt)
            stop(proc)


# -- measuring -----------------------------------------------------------------------


def _read(path: Path) -> int:
    n = 0
    with open(path, "rb", buffering=0) as f:
        while chunk := f.read(CHUNK):
            n += len(chunk)
    return n


def small_pass(root: Path, rels: list[str], readers: int, expect: int) -> float:
    """Files per second reading every small file whole with ``readers`` threads."""
    start = time.perf_counter()
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


def measure(
    target: Target,
    mnt: Path,
    small: list[str],
    large: str,
    sizes: dict[str, int],
    readers: int,
    warm_passes: int = 3,
) -> dict[str, float]:
    """Cold and warm figures of one target (a fresh mount for each cold pass; warm:
    the median of ``warm_passes`` passes after it, as in the read suite)."""
    small_bytes = sum(sizes[r] for r in small)
    out: dict[str, float] = {}
    with target.mounted(mnt) as root:
        drop_caches()
        out["small_cold"] = small_pass(root, small, readers, small_bytes)
        out["small_warm"] = statistics.median(
            small_pass(root, small, readers, small_bytes) for _ in range(warm_passes)
        )
    with target.mounted(mnt) as root:
        drop_caches()
        out["large_cold"] = large_pass(root, large, sizes[large])
        out["large_warm"] = statistics.median(
            large_pass(root, large, sizes[large]) for _ in range(warm_passes)
        )
    return out


FIGURES: dict[str, tuple[str, float]] = {
    "small_cold": ("small files cold (files/s)", 4.0),
    "small_warm": ("small files warm (files/s)", 10.0),
    "large_cold": ("large file cold (MB/s)", 1.2),
    "large_warm": ("large file warm (MB/s)", 0.0),
}


def table(results: dict[str, dict[str, float]]) -> str:
    """A text table with dlfs' ratio to the better peer and the issue's target."""
    names = list(results)
    lines = [" | ".join(["figure", *names, "dlfs / best peer", "target"])]
    for key, (label, goal) in FIGURES.items():
        row = [label] + [f"{results[n].get(key, 0):,.1f}" for n in names]
        peers = [results[n][key] for n in names if n != "dlfs" and key in results[n]]
        ratio = results.get("dlfs", {}).get(key, 0) / max(peers) if peers else None
        row.append("-" if ratio is None else f"{ratio:.1f}x")
        row.append(f">= {goal}x" if goal else "-")
        lines.append(" | ".join(row))
    return "\n".join(lines)


def use_server_credentials(endpoint: str | None = None) -> None:
    """Point boto3 (and dlfs, at ``endpoint``) at the bench server's fixed keys."""
    os.environ.update(
        AWS_ACCESS_KEY_ID=ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=SECRET_KEY,
        AWS_DEFAULT_REGION="us-east-1",
    )
    if endpoint is not None:
        os.environ["DLFS_S3_ENDPOINT"] = endpoint


def publish_to_s3(home: Path, data: Path, bucket: str) -> str:
    """Import ``data`` into a dataset stored in ``s3://bucket/dlfs``; its published ref."""
    from dlfs.api import Catalog

    with Catalog(home) as cat:
        cat.create_dataset("bench", storage=f"s3://{bucket}/dlfs")
        cat.add("bench", [data])
        return cat.publish("bench").ref


def run(quick: bool = False) -> dict[str, Any]:
    """Run the benchmark; return its figures (also printed as a table)."""
    count = _int("DLFS_BENCH_S3_FILES", 300 if quick else 2000)
    large_mib = _int("DLFS_BENCH_S3_LARGE_MIB", 32 if quick else 128)
    readers = _int("DLFS_BENCH_S3_READERS", 8)
    warm_passes = max(1, _int("DLFS_BENCH_S3_WARM_PASSES", 3))
    server = os.environ.get("DLFS_BENCH_S3_SERVER") or "s3range"
    if server not in SERVERS:
        raise SystemExit(f"DLFS_BENCH_S3_SERVER: {server!r} is not one of {', '.join(SERVERS)}")
    base = os.environ.get("DLFS_BENCH_DIR") or tempfile.gettempdir()
    scratch = Path(tempfile.mkdtemp(prefix="dlfs-bench-s3-", dir=base))
    use_server_credentials()
    try:
        with SERVERS[server](scratch) as endpoint:
            _log(f"server: {server} at {endpoint}")
            use_server_credentials(endpoint)
            import boto3

            bucket = "bench"
            boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=bucket)
            _log(f"making {count} small files and {large_mib} MiB")
            data = scratch / "data"
            small, large = make_files(data, count, large_mib)
            sizes = {r: (data / r).stat().st_size for r in [*small, large]}
            home = scratch / "home"
            start = time.perf_counter()
            ref = publish_to_s3(home, data, bucket)
            _log(f"dlfs add to S3: {time.perf_counter() - start:.1f} s")
            start = time.perf_counter()
            upload_plain(endpoint, bucket, data, [*small, large])
            _log(f"plain upload (boto3, 16 threads): {time.perf_counter() - start:.1f} s")
            targets: list[Target] = [
                Dlfs(home, ref, scratch / "cache"),
                Rclone(endpoint, bucket),
                S3fs(endpoint, bucket, scratch),
            ]
            mnt = scratch / "mnt"
            mnt.mkdir()
            results: dict[str, dict[str, float]] = {}
            for target in targets:
                if not target.available():
                    _log(f"{target.name}: not installed, skipped")
                    continue
                _log(f"{target.name}: measuring")
                try:
                    results[target.name] = measure(
                        target, mnt, small, large, sizes, readers, warm_passes
                    )
                except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
                    _log(f"{target.name}: failed: {exc}")
            print(table(results))
            return {
                "server": server,
                "files": count,
                "large_mib": large_mib,
                "readers": readers,
                "warm_passes": warm_passes,
                "results": results,
            }
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Entry point: ``python -m benchmarks.bench_s3 [--quick] [--json FILE]``."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_s3", description=__doc__)
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

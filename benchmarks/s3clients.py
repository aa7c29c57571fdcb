"""The clients and the server of ``bench_s3``: an S3 server process (``s3range``, with
a bucket's latency and a per-connection cap if asked), the data put in
it, and the three ways to mount the bucket (dlfs, ``rclone mount``, ``s3fs``).
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from benchmarks.system import stop, unmount, wait_for_mount

ACCESS_KEY = "bench-access-key"
SECRET_KEY = "bench-secret-key"
CHUNK = 1 << 20


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
def s3range(scratch: Path, latency_ms: float = 0, rate_mbs: float = 0) -> Iterator[str]:
    """``benchmarks.s3range`` over ``scratch/s3`` on a free loopback port, in its own
    process, answering each request ``latency_ms`` after it arrives and capping each
    connection at ``rate_mbs`` MB/s (0: none); stopped by pid at the end. The objects
    stay in ``scratch/s3``: a later server over the same scratch serves them again."""
    port = _free_port()
    root = (scratch / "s3").resolve()
    cmd = [sys.executable, "-m", "benchmarks.s3range", str(root), "--port", str(port)]
    cmd += ["--latency-ms", str(latency_ms), "--rate-mbs", str(rate_mbs)]
    repo = Path(__file__).resolve().parent.parent  # where ``benchmarks`` imports from
    log = scratch / f"s3range-{latency_ms:g}ms-{rate_mbs:g}mbs.log"
    with _server_process(cmd, port, log, "s3range", cwd=repo) as endpoint:
        yield endpoint


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
    """``dlfs mount`` of the published version; ``options``: more ``dlfs mount``
    options (``--workers 1``...), ``name`` says which in the tables."""

    name = "dlfs"
    binary = "dlfs"

    def __init__(
        self, home: Path, ref: str, cache: Path, options: Sequence[str] = (), name: str = "dlfs"
    ) -> None:
        self.home, self.ref, self.cache = home, ref, cache
        self.options, self.name = list(options), name
        self.pid = 0  # the daemon of the current mount

    def available(self) -> bool:
        return True

    @contextmanager
    def mounted(self, mnt: Path) -> Iterator[Path]:
        shutil.rmtree(self.cache, ignore_errors=True)  # cold: an empty block cache
        cmd = [sys.executable, "-m", "dlfs", "--home", str(self.home), "mount", self.ref]
        cmd += [str(mnt), "--cache-dir", str(self.cache), "--cache-size", "20G", *self.options]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"dlfs mount failed: {(done.stderr or done.stdout).strip()}")
        found = re.search(r"\(pid (\d+)\)", done.stdout)
        self.pid = int(found.group(1)) if found else 0
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

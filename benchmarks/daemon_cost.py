"""Where a cold small file's time goes: what the serving daemon spends on each one.

For each FUSE server, reads a sample of small files cold (page cache dropped, fresh
mount) and prints files/s beside the daemon's user and system CPU per file and its
context switches per file (all its threads, from ``/proc/<pid>/task/*/status``).
These are the figures behind the "cannot be met here" notes in
``docs/performance.md``: a pyfuse3 daemon is one process, so its CPU per file bounds
its files/s, and on these VMs every thread switch is expensive.

Local (the read bench's dataset, ``DLFS_BENCH_DIR``; builds it if missing)::

    python -m benchmarks.daemon_cost [--files 4000] [--threads 1] [--targets dlfs,passthrough]

S3 (2,000 files of 16-256 KiB on an ``s3range`` server, 8 readers, dlfs only)::

    python -m benchmarks.daemon_cost --s3 [--files 1000]

Root only (it drops the page cache). Not part of ``make bench``: a diagnostic.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import tempfile
import time
from pathlib import Path

from benchmarks import config, dataset, system, targets, workloads


def daemon_of(mountpoint: Path) -> int:
    """The pid of the process serving ``mountpoint`` (its path is on its command line)."""
    wanted = str(mountpoint).encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if wanted in argv and b"umount" not in argv:
            return int(entry)
    raise RuntimeError(f"no process serves {mountpoint}")


def usage(pid: int) -> tuple[float, float, int]:
    """User seconds, system seconds and context switches of ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    switches = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            status = Path(f"/proc/{pid}/task/{task}/status").read_text()
        except OSError:
            continue  # the thread ended
        for line in status.splitlines():
            if "ctxt_switches:" in line:  # voluntary_ and nonvoluntary_
                switches += int(line.split()[1])
    return int(fields[11]) / tick, int(fields[12]) / tick, switches


def report(
    name: str,
    count: int,
    seconds: float,
    before: tuple[float, float, int],
    after: tuple[float, float, int],
) -> None:
    user, system_, switches = (b - a for a, b in zip(before, after, strict=True))
    print(
        f"{name:12} {count / seconds:8,.0f} files/s   daemon per file: "
        f"user {user / count * 1e6:4.0f} us, system {system_ / count * 1e6:4.0f} us, "
        f"{switches / count:5.1f} context switches"
    )


def local(files: int, threads: int, names: tuple[str, ...]) -> None:
    cfg = config.load()
    tree = dataset.read_tree(cfg.data_dir, cfg.read)
    paths = random.Random(7).sample(dataset.small_paths(cfg.read), files)
    scratch = Path(tempfile.mkdtemp(prefix="cost-", dir=cfg.data_dir))
    try:
        for target in targets.make(names, tree, scratch, False):
            target.prepare()
            system.drop_caches()
            with target.mounted() as root:
                pid = daemon_of(root)
                before = usage(pid)
                start = time.perf_counter()
                workloads.read_files(root, paths, threads)
                seconds = time.perf_counter() - start
                report(f"{target.name} {threads}t", files, seconds, before, usage(pid))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def s3(files: int) -> None:
    from benchmarks import bench_s3 as b

    scratch = Path(tempfile.mkdtemp(prefix="cost-s3-", dir=config.load().data_dir))
    b.use_server_credentials()
    try:
        with b.s3range(scratch) as endpoint:
            b.use_server_credentials(endpoint)
            import boto3

            boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="bench")
            data = scratch / "data"
            small, _large = b.make_files(data, files, 8)
            total = sum((data / rel).stat().st_size for rel in small)
            ref = b.publish_to_s3(scratch / "home", data, "bench")
            mnt = scratch / "mnt"
            mnt.mkdir()
            with b.Dlfs(scratch / "home", ref, scratch / "cache").mounted(mnt) as root:
                pid = daemon_of(mnt)
                system.drop_caches()
                before = usage(pid)
                rate = b.small_pass(root, small, 8, total)
                report("dlfs s3 8t", files, files / rate, before, usage(pid))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.daemon_cost")
    parser.add_argument("--files", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--targets", default="dlfs,passthrough")
    parser.add_argument("--s3", action="store_true")
    args = parser.parse_args(argv)
    if args.s3:
        s3(args.files or 1000)
    else:
        local(args.files or 4000, args.threads, tuple(args.targets.split(",")))


if __name__ == "__main__":
    main()

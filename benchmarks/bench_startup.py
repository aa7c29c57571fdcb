"""Start-up and mount time: ``python -m benchmarks.bench_startup``.

What a user waits for before a command does anything, beside a bare ``python -c
pass`` of the same interpreter (issue 20: at most 0.2 s for ``dlfs --help``, ``ls``,
``log`` and ``cat``; at most 0.5 s for ``dlfs mount`` of a 1,000,000-item version and
of a catalog of 100 datasets, until the mount answers).

dlfs runs from a compiled copy of its sources (``dlfs/`` and the daemon as ``dlfsd/``,
byte-compiled by ``compileall`` into a scratch folder put first on ``PYTHONPATH``), as
a wheel installed by pip is: this checkout's editable install under
``PYTHONDONTWRITEBYTECODE=1`` (as the test machines set it) compiles every module at
every start, which no installed copy does. One row shows that case for comparison.
The environment is the project's virtualenv, which has pandas, numpy and pyarrow
installed (dev extras), so the figures include whatever they would cost.

Each figure is the median of ``DLFS_BENCH_STARTUP_RUNS`` (default 5) runs. The big
version is built directly through the catalog layer (``bench_versioning.build``):
``DLFS_BENCH_STARTUP_ITEMS`` items (default 1,000,000; 100,000 with
``DLFS_BENCH_QUICK=1``).
"""

from __future__ import annotations

import compileall
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from dlfs.api import Catalog
from dlfs.objects import canonical_json

ROOT = Path(__file__).resolve().parents[1]
CLI_TARGET = 0.2
MOUNT_TARGET = 0.5


def _log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def compiled_copy(scratch: Path) -> Path:
    """dlfs and its daemon copied under ``scratch/site`` and byte-compiled there."""
    site = scratch / "site"
    shutil.copytree(ROOT / "dlfs", site / "dlfs", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "daemon", site / "dlfsd", ignore=shutil.ignore_patterns("__pycache__"))
    compileall.compile_dir(str(site), quiet=1)
    return site


def _env(home: Path, site: Path | None, scratch: Path) -> dict[str, str]:
    """The environment of a timed command: the compiled copy first on the path, or
    (``site`` None) this checkout compiled at every start (an empty pyc prefix and no
    writing of pyc files)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DLFS_")}
    env["DLFS_HOME"] = str(home)
    env["CWD"] = str(scratch)
    if site is not None:
        env["PYTHONPATH"] = str(site)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env.pop("PYTHONPYCACHEPREFIX", None)
    else:
        env["PYTHONPATH"] = f"{ROOT}:{scratch / 'shim'}"
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env["PYTHONPYCACHEPREFIX"] = str(scratch / "no-pyc")
    return env


def _seconds(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    # from the scratch folder: `python -m` looks first in the working folder, and a
    # checkout there would shadow the copy on PYTHONPATH
    subprocess.run(
        argv, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=env["CWD"]
    )
    return time.perf_counter() - start


def _median(runs: int, fn: Any) -> float:
    return statistics.median(fn() for _ in range(runs))


def build_catalog(home: Path, items: int, datasets: int) -> dict[str, str]:
    """A catalog with a published ``big`` of ``items`` items, ``datasets`` small
    published datasets and one text file to ``cat``; returns refs by role."""
    from benchmarks.bench_versioning import build

    with Catalog(home) as cat:
        start = time.perf_counter()
        big = build(cat.db, "big", items, lambda i: canonical_json([{"label": "cat"}]))
        _log(f"built a {items:,}-item version in {time.perf_counter() - start:.1f}s")
        text = home.parent / "hello.txt"
        text.write_text("hello\n")
        for k in range(datasets):
            cat.create_dataset(f"small{k:03}")
            cat.add(f"small{k:03}", [text])
            cat.publish(f"small{k:03}")
    return {"big": f"big@{big}", "small": "small000@v0"}


def _mount_seconds(env: dict[str, str], ref: str | None, mnt: Path) -> tuple[float, float, float]:
    """``dlfs mount`` until the mount answers a ``stat`` of its root; then the first
    listing of the root (every entry's attributes: ``ls -l``); then ``dlfs umount``."""
    dlfs = [sys.executable, "-m", "dlfs"]
    start = time.perf_counter()
    subprocess.run(
        [*dlfs, "mount", *([ref] if ref else []), str(mnt)],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        cwd=env["CWD"],
    )
    os.stat(mnt)
    mounted = time.perf_counter() - start
    start = time.perf_counter()
    for entry in os.scandir(mnt):
        entry.stat(follow_symlinks=False)
    listed = time.perf_counter() - start
    start = time.perf_counter()
    subprocess.run(
        [*dlfs, "umount", str(mnt)], env=env, check=True, stdout=subprocess.DEVNULL, cwd=env["CWD"]
    )
    return mounted, listed, time.perf_counter() - start


def measure() -> dict[str, Any]:
    """Build the catalog, time every command; return the figures."""
    quick = os.environ.get("DLFS_BENCH_QUICK") == "1"
    items = int(os.environ.get("DLFS_BENCH_STARTUP_ITEMS") or (100_000 if quick else 1_000_000))
    runs = int(os.environ.get("DLFS_BENCH_STARTUP_RUNS") or (3 if quick else 5))
    base = Path(os.environ.get("DLFS_BENCH_DIR") or tempfile.gettempdir())
    base.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="dlfs-startup-", dir=base))
    try:
        home = scratch / "home"
        refs = build_catalog(home, items, 100)
        site = compiled_copy(scratch)
        env = _env(home, site, scratch)
        py = sys.executable
        have = subprocess.run(
            [py, "-c", "import pandas, numpy, pyarrow"], env=env, capture_output=True
        )
        rows: list[dict[str, Any]] = []

        def row(what: str, argv: list[str], target: float | None, e: dict[str, str] = env) -> None:
            _seconds(argv, e)  # the first run pays the page cache
            rows.append(
                {
                    "what": what,
                    "seconds": _median(runs, lambda: _seconds(argv, e)),
                    "target": target,
                }
            )

        row("python -c pass", [py, "-c", "pass"], None)
        row(
            "python -c 'import pandas, numpy, pyarrow'",
            [py, "-c", "import pandas, numpy, pyarrow"],
            None,
        )
        dlfs = [py, "-m", "dlfs"]
        row("dlfs --help", [*dlfs, "--help"], CLI_TARGET)
        row("dlfs --version", [*dlfs, "--version"], CLI_TARGET)
        row("dlfs dataset list (101 datasets)", [*dlfs, "dataset", "list"], CLI_TARGET)
        row("dlfs log big", [*dlfs, "log", "big"], CLI_TARGET)
        row(
            f"dlfs ls {refs['big']} d000 (1,000 items)",
            [*dlfs, "ls", refs["big"], "d000"],
            CLI_TARGET,
        )
        row(
            "dlfs cat small000@v0 hello.txt", [*dlfs, "cat", refs["small"], "hello.txt"], CLI_TARGET
        )
        (scratch / "shim").mkdir()
        (scratch / "shim" / "dlfsd").symlink_to(ROOT / "daemon")
        editable = _env(home, None, scratch)
        row(
            "dlfs --version (this checkout, compiled at each start)",
            [*dlfs, "--version"],
            None,
            editable,
        )

        mnt = scratch / "mnt"
        mnt.mkdir()
        workers = os.environ.get("DLFS_WORKERS") or "the default"
        for what, ref in (
            (f"dlfs mount big ({items:,} items)", refs["big"]),
            ("dlfs mount (catalog, 101 datasets)", None),
        ):
            _mount_seconds(env, ref, mnt)
            times = [_mount_seconds(env, ref, mnt) for _ in range(runs)]
            for at, suffix, target in (
                (0, f", until its root answers (workers: {workers})", MOUNT_TARGET),
                (1, ": then the first ls -l of its root", None),
                (2, ": then dlfs umount", None),
            ):
                rows.append(
                    {
                        "what": what + suffix,
                        "seconds": statistics.median(t[at] for t in times),
                        "target": target,
                    }
                )
        return {
            "items": items,
            "runs": runs,
            "pandas_numpy_pyarrow_installed": have.returncode == 0,
            "rows": rows,
        }
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def print_table(result: dict[str, Any]) -> None:
    """The figures as a markdown table, with the ratio to ``python -c pass``."""
    rows = result["rows"]
    bare = rows[0]["seconds"]
    installed = "installed" if result["pandas_numpy_pyarrow_installed"] else "NOT installed"
    print(
        f"\nStart-up (median of {result['runs']}; pandas, numpy, pyarrow {installed};"
        " dlfs byte-compiled as a wheel install is)\n"
    )
    print("| command | seconds | x python -c pass | target | met |")
    print("|---|---|---|---|---|")
    for r in rows:
        target = r["target"]
        met = "-" if target is None else ("yes" if r["seconds"] <= target else "no")
        print(
            f"| {r['what']} | {r['seconds']:.3f} | {r['seconds'] / bare:.1f}x |"
            f" {'-' if target is None else f'<= {target}'} | {met} |"
        )


def main() -> dict[str, Any]:
    """Run, print, return the figures (for ``make bench``)."""
    result = measure()
    print_table(result)
    return result


if __name__ == "__main__":
    main()

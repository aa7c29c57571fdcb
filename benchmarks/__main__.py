"""``python -m benchmarks``: run the benches, print the tables, save ``results.json``.

Sections, in order: ``foundation`` (publish cost, ``dlfs add`` vs ``cp -r``),
``reads`` (plain / bindfs / passthrough / dlfs, cold and warm), then the benches other
modules of this package own, each run through its ``main()`` when its module exists:
``versioning`` (clone/merge/diff, ``bench_versioning.py``), ``writes`` (writing into a
draft mount, ``bench_writes.py``), ``s3`` (reading S3 through a mount,
``bench_s3.py``), ``startup`` (start-up and mount time, ``bench_startup.py``),
``manifests`` (``dlfs import``/``export``, ``bench_manifests.py``), ``views``
(``--group-by label`` of a big version, ``bench_views.py``), ``push`` (``dlfs push``
vs ``rclone copy``, ``bench_push.py``), ``pull`` (the memory of a large pull,
``bench_pull.py``), ``remote-mount`` (``bench_remote_mount.py``) and
``posix`` (pjdfstest in a draft mount, ``posix.py``; only with
``--only posix``: it is a conformance count, not a timing); a module with
``measure()`` and ``print_table()`` is run through those instead, so its figures
reach ``results.json``. They get ``DLFS_BENCH_DIR`` (the bench-data dir) and, with
``--quick``, ``DLFS_BENCH_QUICK=1``.

Results are written after each section, so a failed run keeps what it measured;
``--report FILE`` prints the tables of a saved run again (markdown with
``--markdown``).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from benchmarks import config, foundation, reads, report, system

EXTRA = {
    "versioning": ("benchmarks.bench_versioning", "clone/merge/diff"),
    "writes": ("benchmarks.bench_writes", "writes into a draft mount"),
    "reclaim": ("benchmarks.bench_reclaim", "disk used by a draft mount"),
    "s3": ("benchmarks.bench_s3", "reading S3 through a mount"),
    "startup": ("benchmarks.bench_startup", "start-up and mount time"),
    "manifests": ("benchmarks.bench_manifests", "import from and export to manifests"),
    "views": ("benchmarks.bench_views", "views (--group-by label) of a big version"),
    "push": ("benchmarks.bench_push", "dlfs push vs rclone copy"),
    "pull": ("benchmarks.bench_pull", "dlfs pull of a large version: memory"),
    "remote-mount": ("benchmarks.bench_remote_mount", "dlfs mount --remote of a large version"),
    "posix": ("benchmarks.posix", "POSIX conformance (pjdfstest) of a draft mount"),
}
SECTIONS = ("foundation", "reads", *EXTRA)
DEFAULT_SECTIONS = tuple(s for s in SECTIONS if s != "posix")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="small data, one repetition")
    p.add_argument(
        "--only",
        action="append",
        choices=SECTIONS,
        help="run only this section (repeatable; default: all)",
    )
    p.add_argument(
        "--targets",
        default=",".join(config.ALL_TARGETS),
        help="read targets, comma-separated (default: %(default)s)",
    )
    p.add_argument(
        "--reimport", action="store_true", help="import the read dataset into dlfs again"
    )
    p.add_argument("--profile-add", action="store_true", help="also profile dlfs add (cProfile)")
    p.add_argument("--out", type=Path, help="results file (default: <bench dir>/results.json)")
    p.add_argument("--report", type=Path, metavar="FILE", help="print the tables of a saved run")
    p.add_argument("--markdown", action="store_true", help="with --report: markdown tables")
    return p


def _extra(section: str, data_dir: Path, quick: bool) -> dict[str, Any] | None:
    """Run another module's bench through its ``main()``, if that module exists."""
    name, title = EXTRA[section]
    if importlib.util.find_spec(name) is None:
        print(f"bench: {title}: {name} is not there yet", file=sys.stderr)
        return None
    print(f"== {title} ==", flush=True)
    module = importlib.import_module(name)
    os.environ["DLFS_BENCH_DIR"] = str(data_dir)
    if quick:
        os.environ["DLFS_BENCH_QUICK"] = "1"
    argv, sys.argv = sys.argv, [name]
    try:
        if hasattr(module, "measure") and hasattr(module, "print_table"):
            out = module.measure()  # the figures as a dict, for results.json
            module.print_table(out)
        else:
            out = module.main()
    except SystemExit as exc:
        out = {"exit": exc.code}
    finally:
        sys.argv = argv
    return out if isinstance(out, dict) else {"returned": repr(out)}


def _save(path: Path, results: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=1, default=str) + "\n")
    tmp.replace(path)


def _clean(scratch: Path) -> None:
    """Remove the run's scratch folder, never through a mount left behind."""
    for dirpath, dirnames, _files in os.walk(scratch):
        for d in list(dirnames):
            path = Path(dirpath, d)
            if os.path.ismount(path):
                system.unmount(path)
                if os.path.ismount(path):
                    print(f"bench: {path} is still mounted; leaving {scratch}", file=sys.stderr)
                    return
                dirnames.remove(d)
    shutil.rmtree(scratch, ignore_errors=True)


def _terminate(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through every finally: mounts come down


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.report:
        print(report.render(json.loads(args.report.read_text()), markdown=args.markdown))
        return 0
    names = tuple(t for t in args.targets.split(",") if t)
    cfg = config.load(quick=args.quick, targets=names)
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    out = args.out or cfg.data_dir / ("results-quick.json" if args.quick else "results.json")
    sections = args.only or list(DEFAULT_SECTIONS)
    signal.signal(signal.SIGTERM, _terminate)

    command = (
        "make bench"
        if not argv and not sys.argv[1:]
        else "python -m benchmarks " + " ".join(sys.argv[1:] if argv is None else argv)
    )
    results: dict[str, Any] = {
        "command": command,
        "machine": system.machine(cfg.data_dir),
        "config": cfg.to_json(),
    }
    results["loadavg_before"] = os.getloadavg()
    started = time.perf_counter()
    scratch = Path(tempfile.mkdtemp(prefix="run-", dir=cfg.data_dir))
    failed = False
    try:
        for section in sections:
            t0 = time.perf_counter()
            print(f"== {section} ==", file=sys.stderr, flush=True)
            try:
                if section == "foundation":
                    results["foundation"] = foundation.run(cfg, scratch, args.profile_add)
                elif section == "reads":
                    results["reads"] = reads.run(cfg, scratch, args.reimport)
                else:
                    results[section] = _extra(section, cfg.data_dir, args.quick)
            except Exception:
                failed = True
                traceback.print_exc()
                results.setdefault("errors", {})[section] = traceback.format_exc()
            results.setdefault("section_s", {})[section] = time.perf_counter() - t0
            results.setdefault("loadavg_after", {})[section] = os.getloadavg()
            results["duration_s"] = time.perf_counter() - started
            _save(out, results)
    finally:
        _clean(scratch)
    print(report.render(results))
    profile = results.get("foundation", {}).get("add", {}).get("profile")
    if profile:
        print("\n== dlfs add profile (cProfile, main thread) ==\n" + profile)
    print(f"\nresults: {out} ({results['duration_s'] / 60:.1f} min)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

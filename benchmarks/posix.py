"""POSIX conformance of a draft mount: pjdfstest, ``python -m benchmarks --only posix``.

Not a timed bench and not part of ``make test``: it runs the pjdfstest suite
(pjd/pjdfstest, built by ``scripts/pjdfstest.sh``) as root inside each target and
counts what fails. Targets, side by side in one run:

- ``dlfs``: a throwaway catalog (``DLFS_HOME`` in a temp dir), an empty dataset, its
  draft mounted read-write with ``dlfs mount NAME@draft -o allow_other`` (the suite
  switches to other uids, which a FUSE mount refuses without ``allow_other``);
- ``plain``: a folder of the bench dir's filesystem (ext4 here: 0 failures expected);
- ``bindfs``: ``bindfs --multithreaded`` of an empty folder, read-write, with the read
  bench's kernel caches (``kernel_cache,entry_timeout=300,attr_timeout=300``).

Printed: failures per test file and per syscall folder, the total tests and
failures of each target, and the failure causes grouped by what the suite tried and
got (``chmod: expected 0 got EPERM``). Every mount is unmounted in a ``finally``.

Settings: ``DLFS_POSIX_TARGETS`` (default ``dlfs,plain``), ``DLFS_POSIX_TESTS``
(space-separated test paths under the suite's ``tests/``, e.g. ``chmod rename/00.t``;
default all), ``DLFS_BENCH_DIR`` (where the scratch goes). Or directly:
``python -m benchmarks.posix --targets dlfs,bindfs chmod rename``.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TARGETS = ("dlfs", "plain", "bindfs")
SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "pjdfstest.sh"
DLFS = [sys.executable, "-m", "dlfs"]
DATASET = "posix"
BINDFS_OPTIONS = "kernel_cache,entry_timeout=300,attr_timeout=300,allow_other"

_FILE = re.compile(r"^(?P<path>\S+\.t) \.+ ?(?P<rest>.*)$")
_PLAN = re.compile(r"^1\.\.(\d+)")
_RESULT = re.compile(r"^(?P<not>not )?ok (?P<n>\d+)(?P<rest>.*)$")
_TRIED = re.compile(r"- tried '(?P<cmd>.*)', expected (?P<exp>.*), got (?P<got>.*)$")


def _log(message: str) -> None:
    print(f"posix: {message}", file=sys.stderr, flush=True)


@dataclass
class FileResult:
    """One ``.t`` file: its plan, and the numbers and messages of its failed tests."""

    name: str  # e.g. "chmod/00.t"
    planned: int = 0
    ran: int = 0
    failed: dict[int, str] = field(default_factory=dict)

    @property
    def failures(self) -> int:
        """Failed tests plus those planned and never run (the script died)."""
        return len(self.failed) + max(0, self.planned - self.ran)

    @property
    def group(self) -> str:
        """The syscall folder, e.g. ``chmod``."""
        return self.name.split("/", 1)[0]


def _cause(message: str) -> str:
    """``chmod: expected 0 got EPERM`` from a failure line; values become ``<v>``."""
    m = _TRIED.search(message)
    if not m:
        return "(no message: a test_check or a dead script)"
    words = m["cmd"].split(" : ")[-1].split()
    i = 0
    while i < len(words) and words[i].startswith("-"):  # -u UID, -g GIDS, -U UMASK
        i += 2
    call = words[i] if i < len(words) else "?"
    if call in ("stat", "lstat", "fstat") and len(words) > i + 2:
        call = f"{call} {words[-1]}"  # the field checked: mode, nlink, uid, atime...
    exp, got = m["exp"].strip(), m["got"].strip()

    def value(v: str) -> str:
        return v if re.fullmatch(r"[A-Z][A-Z0-9_]*|0|", v) else "<v>"

    return f"{call}: expected {value(exp)} got {value(got) or '(nothing)'}"


def parse(output: str, tests_dir: str = "") -> list[FileResult]:
    """The files of a ``prove -v`` run with what failed in each."""
    files: list[FileResult] = []
    current: FileResult | None = None
    for line in output.splitlines():
        m = _FILE.match(line)
        if m:
            path = m["path"]
            marker = "/tests/"
            name = path.split(marker, 1)[1] if marker in path else path.removeprefix(tests_dir)
            current = FileResult(name.lstrip("/"))
            files.append(current)
            line = m["rest"]
        if current is None:
            continue
        if p := _PLAN.match(line):
            current.planned = int(p[1])
        elif r := _RESULT.match(line):
            current.ran += 1
            if r["not"] and "# TODO" not in r["rest"]:
                current.failed[int(r["n"])] = r["rest"]
    return files


def summarize(files: list[FileResult]) -> dict[str, Any]:
    """Totals, failures per file and per group, and the causes counted."""
    causes: Counter[str] = Counter()
    for f in files:
        causes.update(_cause(msg) for msg in f.failed.values())
        if f.planned > f.ran:
            causes[f"(not run: {f.group} script stopped early)"] += f.planned - f.ran
    first: dict[str, Counter[str]] = {}
    for f in files:  # the first failure of a file is its likeliest root cause
        if f.failed:
            first.setdefault(f.group, Counter())[_cause(f.failed[min(f.failed)])] += 1
    groups: Counter[str] = Counter()
    group_tests: Counter[str] = Counter()
    for f in files:
        groups[f.group] += f.failures
        group_tests[f.group] += max(f.planned, f.ran)
    return {
        "files": len(files),
        "tests": sum(max(f.planned, f.ran) for f in files),
        "failures": sum(f.failures for f in files),
        "failed_files": sum(1 for f in files if f.failures),
        "per_file": {f.name: [f.failures, max(f.planned, f.ran)] for f in files if f.failures},
        "per_group": {g: [groups[g], group_tests[g]] for g in sorted(group_tests)},
        "causes": dict(causes.most_common()),
        "first_causes": {g: dict(c.most_common()) for g, c in sorted(first.items())},
    }


def _wait_mounted(path: Path, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not os.path.ismount(path):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"bindfs did not mount {path}")
        time.sleep(0.02)


@contextmanager
def mounted(target: str, scratch: Path) -> Iterator[Path]:
    """A fresh, empty, writable folder of ``target``; unmounted and deleted afterwards."""
    work = Path(tempfile.mkdtemp(prefix=f"posix-{target}-", dir=scratch))
    os.chmod(work, 0o755)  # the suite's other uids must reach the mountpoint
    try:
        if target == "plain":
            (work / "dst").mkdir()
            yield work / "dst"
        elif target == "bindfs":
            (work / "dst").mkdir()
            (work / "mnt").mkdir()
            command = ["bindfs", "-f", "--multithreaded", "-o", BINDFS_OPTIONS]
            proc = subprocess.Popen(
                [*command, str(work / "dst"), str(work / "mnt")],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                _wait_mounted(work / "mnt", proc)
                yield work / "mnt"
            finally:
                subprocess.run(["fusermount3", "-u", "-z", str(work / "mnt")], check=False)
                proc.terminate()
                proc.wait(timeout=30)
        elif target == "dlfs":
            env = {**os.environ, "DLFS_HOME": str(work / "home")}
            subprocess.run(
                [*DLFS, "dataset", "create", DATASET],
                env=env,
                check=True,
                stdout=subprocess.DEVNULL,
            )
            (work / "mnt").mkdir()
            subprocess.run(
                [*DLFS, "mount", f"{DATASET}@draft", str(work / "mnt"), "-o", "allow_other"],
                env=env,
                check=True,
                stdout=subprocess.DEVNULL,
            )
            try:
                yield work / "mnt"
            finally:
                done = subprocess.run([*DLFS, "umount", str(work / "mnt")], env=env, check=False)
                if done.returncode != 0:
                    subprocess.run([*DLFS, "umount", "--lazy", str(work / "mnt")], env=env)
                logs = work / "home" / "logs"
                if logs.is_dir():  # the daemon's log, for a look at what it said
                    keep = scratch / f"posix-dlfs-logs-{int(time.time())}"
                    shutil.copytree(logs, keep, dirs_exist_ok=True)
                    _log(f"daemon logs kept in {keep}")
        else:
            raise ValueError(f"unknown target {target!r} (one of {', '.join(TARGETS)})")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run_suite(target: str, scratch: Path, tests: list[str]) -> dict[str, Any]:
    """pjdfstest inside a fresh folder of ``target``: the summary, with its raw output
    saved beside the scratch dir."""
    if target == "bindfs" and not shutil.which("bindfs"):
        return {"skipped": "bindfs is not installed"}
    started = time.perf_counter()
    with mounted(target, scratch) as folder:
        _log(f"{target}: running pjdfstest in {folder}")
        done = subprocess.run(
            ["bash", str(SCRIPT), "run", str(folder), "-v", *tests],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            check=False,
        )
    raw = scratch / f"posix-{target}.tap"
    raw.write_text(done.stdout)
    out = summarize(parse(done.stdout))
    out["seconds"] = round(time.perf_counter() - started, 1)
    out["tap"] = str(raw)
    if out["files"] == 0:
        raise RuntimeError(f"{target}: pjdfstest ran no test (exit {done.returncode})")
    return out


def measure(targets: list[str] | None = None, tests: list[str] | None = None) -> dict[str, Any]:
    """Run the suite on each target; the summaries by target."""
    if os.geteuid() != 0:
        raise SystemExit("posix: pjdfstest must run as root")
    targets = targets or os.environ.get("DLFS_POSIX_TARGETS", "dlfs,plain").split(",")
    tests = tests if tests is not None else os.environ.get("DLFS_POSIX_TESTS", "").split()
    subprocess.run(["bash", str(SCRIPT), "build"], check=True, stdout=subprocess.DEVNULL)
    base = Path(os.environ.get("DLFS_BENCH_DIR") or tempfile.gettempdir())
    base.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="posix-run-", dir=base))
    os.chmod(scratch, 0o755)
    results: dict[str, Any] = {"tests": tests or "all", "scratch": str(scratch)}
    for target in targets:
        results[target] = run_suite(target, scratch, tests)
    return results


def print_table(results: dict[str, Any]) -> None:
    """Totals per target, then failures per syscall folder and per file, then causes."""
    targets = [t for t in TARGETS if isinstance(results.get(t), dict)]
    ran = [t for t in targets if "skipped" not in results[t]]
    print("\n== POSIX conformance (pjdfstest, as root) ==")
    for t in targets:
        r = results[t]
        if "skipped" in r:
            print(f"{t:>7}: skipped ({r['skipped']})")
            continue
        print(
            f"{t:>7}: {r['failures']:,} of {r['tests']:,} tests failed, in "
            f"{r['failed_files']} of {r['files']} files ({r['seconds']:.0f} s; TAP: {r['tap']})"
        )
    if not ran:
        return
    groups = sorted({g for t in ran for g in results[t]["per_group"]})
    print("\nfailures per syscall folder (failed/tests):")
    print(f"{'folder':<16}" + "".join(f"{t:>14}" for t in ran))
    for g in groups:
        cells = []
        for t in ran:
            failed, total = results[t]["per_group"].get(g, [0, 0])
            cells.append(f"{failed}/{total}")
        print(f"{g:<16}" + "".join(f"{c:>14}" for c in cells))
    for t in ran:
        per_file = results[t]["per_file"]
        if not per_file:
            continue
        print(f"\n{t}: failures per file")
        for name, (failed, total) in sorted(per_file.items()):
            print(f"  {name:<22} {failed:>4}/{total}")
        print(f"\n{t}: the first failure of each failing file, per folder (files)")
        for g, counts in results[t]["first_causes"].items():
            shown = "; ".join(f"{c} ({n})" for c, n in counts.items())
            print(f"  {g:<16} {shown}")
        print(f"\n{t}: causes of all failures (what the suite tried, expected and got)")
        for cause, n in results[t]["causes"].items():
            print(f"  {n:>5}  {cause}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.posix", description=__doc__)
    p.add_argument("--targets", default=None, help="comma-separated: dlfs,plain,bindfs")
    p.add_argument("tests", nargs="*", help="test paths under tests/ (default: all)")
    args = p.parse_args(argv)
    targets = args.targets.split(",") if args.targets else None
    results = measure(targets, args.tests or None)
    print_table(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())

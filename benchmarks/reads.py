"""The read suite: every workload on every target, cold then warm, side by side.

Order matters on a noisy machine: for each repetition, for each workload, every
target runs back to back (the order of targets rotates between repetitions), so a
burst of noise from a neighbour lands on all of them rather than on one. Each
measurement is: unmount, ``sync`` + drop caches, mount, run the workload (cold), run
it ``warm_passes`` more times (warm: the median of those passes), unmount. The figure
kept is the median over repetitions.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import dataset, report, system, targets, workloads
from benchmarks.config import Config


def run(cfg: Config, scratch: Path, reimport: bool = False) -> dict[str, Any]:
    """Generate (or reuse) the dataset, measure, and summarize."""
    tree = dataset.read_tree(cfg.data_dir, cfg.read)
    info: dict[str, dict[str, Any]] = {}
    active: list[targets.Target] = []
    for target in targets.make(cfg.targets, tree, scratch, reimport):
        reason = target.skip_reason()
        info[target.name] = {"description": target.description, "skipped": reason}
        if reason:
            print(f"bench: skipping {target.name}: {reason}", file=sys.stderr, flush=True)
            continue
        info[target.name].update(target.prepare())
        active.append(target)

    suite = workloads.suite(cfg.read, cfg.latency_sample)
    samples: dict[str, dict[str, list[float]]] = {t.name: {} for t in active}
    for rep in range(cfg.repeat):
        order = active[rep % len(active) :] + active[: rep % len(active)] if active else []
        for workload in suite:
            for target in order:
                start = time.perf_counter()
                system.drop_caches()
                with target.mounted() as root:
                    cold = workload.run(root)
                    passes = [workload.run(root) for _ in range(cfg.warm_passes)]
                warm = {k: statistics.median(p[k] for p in passes) for k in cold}
                figs = samples[target.name]
                for key, value in cold.items():
                    figs.setdefault(f"{key}_cold", []).append(value)
                for key, value in warm.items():
                    figs.setdefault(f"{key}_warm", []).append(value)
                shown = "  ".join(
                    f"{k} {report.num(cold[k])} / {report.num(warm[k])}" for k in cold
                )
                print(
                    f"bench: [{rep + 1}/{cfg.repeat}] {target.name:<11} {workload.name:<8}"
                    f" cold/warm: {shown}  ({time.perf_counter() - start:.1f} s)",
                    file=sys.stderr,
                    flush=True,
                )
    return {
        "dataset": str(tree),
        "targets": info,
        "samples": samples,
        **report.summarize(samples),
    }

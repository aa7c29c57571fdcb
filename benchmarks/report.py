"""Medians, ratios, targets and tables, from the figures of one run.

A *speed ratio* ``a/b`` is how many times better ``a`` does than ``b`` on a figure:
``a / b`` for throughputs, ``b / a`` for latencies, so above 1.0 always means ``a``
is better. The geometric mean of a target is taken over every figure (cold and warm)
that both targets have.

Everything here works on plain JSON (``results.json``), so the tables in
``docs/performance.md`` can be printed again from a saved run:
``python -m benchmarks --report bench-data/results.json``.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from typing import Any

from benchmarks.workloads import FIGURE, FIGURES

MODES = ("cold", "warm")
READ_TARGETS = ("plain", "bindfs", "passthrough", "dlfs", "dlfs-w1")
SHORT = {"plain": "plain", "bindfs": "bindfs", "passthrough": "pt", "dlfs": "dlfs", "dlfs-w1": "w1"}


def median(values: Iterable[float]) -> float | None:
    values = list(values)
    return statistics.median(values) if values else None


def figure_keys() -> list[str]:
    """``small_1t_cold``, ``small_1t_warm``, ... in table order."""
    return [f"{f.key}_{mode}" for f in FIGURES for mode in MODES]


def _base(key: str) -> str:
    return key.rsplit("_", 1)[0]


def speed_ratio(key: str, a: float | None, b: float | None) -> float | None:
    """How many times better ``a`` is than ``b`` on figure ``key``."""
    if not a or not b:
        return None
    return a / b if FIGURE[_base(key)].higher_is_better else b / a


def geomean(values: Iterable[float | None]) -> float | None:
    logs = [math.log(v) for v in values if v]
    return math.exp(sum(logs) / len(logs)) if logs else None


def summarize(samples: dict[str, dict[str, list[float]]]) -> dict[str, Any]:
    """Medians per target and figure, speed ratios, geomeans vs bindfs, and checks."""
    medians = {t: {k: median(v) for k, v in figs.items()} for t, figs in samples.items()}
    ratios: dict[str, dict[str, float | None]] = {}
    pairs = (
        ("passthrough", "bindfs"),
        ("dlfs", "bindfs"),
        ("dlfs", "passthrough"),
        ("dlfs", "dlfs-w1"),
    )
    for a, b in pairs:
        if a in medians and b in medians:
            ratios[f"{a}/{b}"] = {
                k: speed_ratio(k, medians[a].get(k), medians[b].get(k)) for k in figure_keys()
            }
    geo = {}
    for t in medians:
        if "bindfs" in medians:
            geo[t] = geomean(
                speed_ratio(k, medians[t].get(k), medians["bindfs"].get(k)) for k in figure_keys()
            )
    return {
        "medians": medians,
        "ratios": ratios,
        "geomean_vs_bindfs": geo,
        "checks": checks(ratios, geo),
    }


def checks(ratios: dict[str, dict[str, float | None]], geo: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 3's targets for dlfs, each with the measured ratio and PASS/FAIL."""
    vs_bindfs = ratios.get("dlfs/bindfs")
    vs_pt = ratios.get("dlfs/passthrough")
    if vs_bindfs is None or vs_pt is None:
        return []
    out = []

    def add(name: str, value: float | None, threshold: float) -> None:
        ok = value is not None and value >= threshold
        out.append({"target": name, "value": value, "threshold": threshold, "pass": ok})

    for key in figure_keys():
        add(f"{key} vs passthrough", vs_pt.get(key), 1.0)
    add("wide_cold vs bindfs", vs_bindfs.get("wide_cold"), 1.0)
    add("large_cold vs bindfs", vs_bindfs.get("large_cold"), 0.9)
    add("large_warm vs bindfs", vs_bindfs.get("large_warm"), 0.9)
    add("small_1t_cold vs bindfs", vs_bindfs.get("small_1t_cold"), 0.6)
    add("small_4t_cold vs bindfs", vs_bindfs.get("small_4t_cold"), 0.6)
    add("geomean vs bindfs", geo.get("dlfs"), 0.65)
    return out


# -- printing ---------------------------------------------------------------------------


def num(v: float | None) -> str:
    if v is None:
        return "-"
    if v >= 100:
        return f"{v:,.0f}"
    if v < 1:
        return f"{v:.3f}"
    return f"{v:.2f}" if v < 10 else f"{v:.1f}"


def _ratio(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}x"


def _table(header: list[str], rows: list[list[str]], markdown: bool, left: int = 1) -> str:
    """Columns, the first ``left`` of them left-aligned and the rest right-aligned."""
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)
    widths = [max(len(c) for c in col) for col in zip(header, *rows, strict=True)]
    out = []
    for row in [header, *rows]:
        pairs = enumerate(zip(row, widths, strict=True))
        cells = [c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in pairs]
        out.append("  ".join(cells).rstrip())
    return "\n".join(out)


def reads_table(reads: dict[str, Any], markdown: bool = False) -> str:
    """Every figure for every target, with the speed ratios."""
    medians = reads["medians"]
    targets = [t for t in READ_TARGETS if t in medians]
    ratio_cols = list(reads["ratios"])
    header = ["figure", *targets, *[_short(r) for r in ratio_cols]]
    rows = []
    for f in FIGURES:
        for mode in MODES:
            key = f"{f.key}_{mode}"
            rows.append(
                [
                    f"{f.label}, {mode} ({f.unit})",
                    *[num(medians[t].get(key)) for t in targets],
                    *[_ratio(reads["ratios"][r].get(key)) for r in ratio_cols],
                ]
            )
    geo = reads["geomean_vs_bindfs"]
    rows.append(
        [
            "geomean vs bindfs",
            *[_ratio(geo.get(t)) for t in targets],
            *["" for _ in ratio_cols],
        ]
    )
    return _table(header, rows, markdown)


def _short(pair: str) -> str:
    a, b = pair.split("/")
    return f"{SHORT[a]}/{SHORT[b]}"


def checks_table(reads: dict[str, Any], markdown: bool = False) -> str:
    rows = [
        [
            c["target"],
            _ratio(c["value"]),
            f">= {c['threshold']:.2f}x",
            "PASS" if c["pass"] else "FAIL",
        ]
        for c in reads["checks"]
    ]
    return _table(["dlfs target", "measured", "wanted", "result"], rows, markdown)


def foundation_tables(found: dict[str, Any], markdown: bool = False) -> str:
    parts = []
    pub = found.get("publish")
    if pub:
        rows = [
            [
                f"{r['items']:,}",
                r["folders"] if isinstance(r["folders"], str) else f"{r['folders']:,}",
                f"{r['import_s']:.1f}",
                f"{r['child_ms']:.1f}",
                f"{r['publish_ms']:.1f}",
                f"{r['publish_cli_ms']:.0f}",
            ]
            for r in [*pub["sizes"].values(), *pub.get("nested", {}).values()]
        ]
        header = [
            "items",
            "folders",
            "import (s)",
            "child version (ms)",
            f"publish, {pub['changes']} files changed (ms)",
            "same, `dlfs publish` (ms)",
        ]
        parts.append(_table(header, rows, markdown))
        first, second = list(pub["sizes"].values())[:2]
        parts.append(
            f"publish time, {first['items']:,} items / {second['items']:,} items:"
            f" {_ratio(pub['ratio'])} (wanted: about equal, <= 1.50x):"
            f" {'PASS' if pub['ratio'] <= 1.5 else 'FAIL'}"
        )
        if pub.get("nested_ratio"):
            big, small = list(pub["nested"].values())[:2]
            parts.append(
                f"nested layout (folders of <= 100 entries), publish time, {big['items']:,}"
                f" items / {small['items']:,} items: {_ratio(pub['nested_ratio'])}"
                " (O(changed folders x folder size): about equal when folders are of a"
                " bounded size)"
            )
    add = found.get("add")
    if add:
        rows = [
            ["cp -r", f"{add['cp_s']:.2f}", "1.00x"],
            ["cp -r; sync", f"{add['cp_sync_s']:.2f}", _ratio(add["cp_sync_s"] / add["cp_s"])],
            ["dlfs add", f"{add['dlfs_s']:.2f}", _ratio(add["ratio"])],
        ]
        parts.append(
            f"{add['files']:,} files, {add['bytes'] / 1e9:.2f} GB, {add['cache']} cache;"
            f" dlfs stored {add['stored_bytes'] / 1e9:.2f} GB"
        )
        parts.append(_table(["copy", "seconds (median)", "time vs cp -r"], rows, markdown))
        verdict = "PASS" if add["ratio"] <= 2.0 else "FAIL"
        parts.append(f"dlfs add / cp -r = {add['ratio']:.2f}x (target <= 2.00x): {verdict}")
    return "\n\n".join(parts)


def machine_table(results: dict[str, Any], markdown: bool = False) -> str:
    m = results.get("machine", {})
    disk = m.get("disk", {})
    rows = [
        ["command", f"`{results.get('command')}`" if markdown else str(results.get("command"))],
        ["when", f"{m.get('date')} (git {m.get('git')})"],
        ["cpu", f"{m.get('nproc')} x {m.get('cpu')}"],
        ["memory", f"{m.get('memory_gib')} GiB"],
        ["kernel", f"{m.get('kernel')} ({m.get('os')})"],
        [
            "disk",
            f"{disk.get('device')} {disk.get('fstype')}, {disk.get('size_gib')} GiB"
            f" (virtual disk; rotational flag {disk.get('rotational_flag')})",
        ],
        [
            "software",
            f"Python {m.get('python')}, pyfuse3 {m.get('pyfuse3')}, trio"
            f" {m.get('trio')}, {m.get('bindfs')}, {m.get('fusermount3')}",
        ],
        ["run time", f"{results.get('duration_s', 0) / 60:.1f} min"],
    ]
    if results.get("loadavg_before"):
        after = ", ".join(f"{k} {v[0]:.1f}" for k, v in results.get("loadavg_after", {}).items())
        load = f"{results['loadavg_before'][0]:.1f} at start; after each section: {after}"
        rows.append(["load average (1 min)", load])
    return _table(["machine", ""], rows, markdown, left=2)


def rows_table(rows: list[dict[str, Any]], markdown: bool = False) -> str:
    """A list of flat dicts (e.g. the clone/merge/diff section's) as a table."""
    header = list(rows[0])
    body = [[_cell(v) for v in r.values()] for r in rows]
    return _table(header, body, markdown)


EXTRA_TITLES = {
    "versioning": "clone/merge/diff",
    "writes": "writes into a draft mount",
    "s3": "reading S3 through a mount",
}


def extra_table(section: Any, markdown: bool = False) -> str | None:
    """The figures another module's bench returned, if they have a known shape: a
    list of ``rows``, or ``medians`` / ``results`` as {target: {figure: value}}."""
    if not isinstance(section, dict):
        return None
    if isinstance(section.get("rows"), list) and section["rows"]:
        return rows_table(section["rows"], markdown)
    for key in ("medians", "results"):
        per_target = section.get(key)
        if isinstance(per_target, dict) and all(isinstance(v, dict) for v in per_target.values()):
            targets = list(per_target)
            figures = list(dict.fromkeys(f for v in per_target.values() for f in v))
            body = [[f, *[_cell(per_target[t].get(f)) for t in targets]] for f in figures]
            return _table(["figure", *targets], body, markdown)
    return None


def _cell(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return "-" if v is None else str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return num(v)
    return str(v)


def render(results: dict[str, Any], markdown: bool = False) -> str:
    """Every table of a run."""
    parts = [machine_table(results, markdown)]
    if results.get("foundation"):
        parts.append("== foundation ==" if not markdown else "### Foundation")
        parts.append(foundation_tables(results["foundation"], markdown))
    reads = results.get("reads")
    if reads:
        parts.append("== reads ==" if not markdown else "### Reads")
        lines = []
        for name, t in reads["targets"].items():
            state = f"skipped: {t['skipped']}" if t.get("skipped") else t["description"]
            if t.get("import"):
                cached = ", reused from an earlier run" if t.get("import_cached") else ""
                state += (
                    f"; import: dlfs add {t['import']['add_s']:.1f} s,"
                    f" publish {t['import']['publish_s']:.1f} s{cached}"
                )
            lines.append(f"{'- ' if markdown else '  '}{name}: {state}")
        parts.append("\n".join(lines))
        parts.append(reads_table(reads, markdown))
        if reads["checks"]:
            parts.append(checks_table(reads, markdown))
            passed = sum(c["pass"] for c in reads["checks"])
            parts.append(f"dlfs targets met: {passed}/{len(reads['checks'])}")
    for section, title in EXTRA_TITLES.items():
        table = extra_table(results.get(section), markdown)
        if table:
            parts.append(f"== {title} ==" if not markdown else f"### {title}")
            parts.append(table)
    return "\n\n".join(parts)

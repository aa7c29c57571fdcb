"""Every example in the docs runs.

The ```python blocks of README.md and docs/*.md run, one file at a time, in order and
in one namespace (a later block uses what an earlier one made), in a fresh process
with a fresh catalog (``$DLFS_HOME``), temporary files (and the mountpoints of
``dlfs.mount``) under the test's tmp_path, and a working folder holding the sample
files the docs name (:data:`FIXTURES`). Blocks that mount need FUSE, as the real ones
do. The ```sh blocks marked ``<!-- test: sh -->`` run too, with ``bash -e``, in such a
folder, with ``dlfs`` on PATH.

A block that is not meant to run is marked by ``<!-- no-test: why -->`` on the line
before it; the reason is required, and the marker is used sparingly (a test counts
them).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from dlfs import mountregistry
from tests.conftest import make_tree

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FUSE_OK = os.path.exists("/dev/fuse") and shutil.which("fusermount3") is not None
MAX_NO_TEST = 6

FIXTURES: dict[str, bytes] = {
    "photos/train/cat/001.jpg": b"\xff\xd8\xff\xe0" + b"cat one" * 300,
    "photos/train/cat/002.jpg": b"\xff\xd8\xff\xe0" + b"cat two" * 200,
    "photos/train/dog/001.jpg": b"\xff\xd8\xff\xe0" + b"dog one" * 250,
    "photos/val/003.jpg": b"\xff\xd8\xff\xe0" + b"val three" * 100,
    "labels.json": json.dumps({"labels": ["cat", "dog"]}).encode(),
    "iris.csv": (
        b"sepal,petal,species\n5.1,1.4,setosa\n4.9,1.4,setosa\n"
        b"7.0,4.7,versicolor\n6.4,4.5,versicolor\n6.3,6.0,virginica\n"
    ),
}

FENCE = re.compile(r"^```(\S*)[^\n]*\n(.*?)^```\s*$", re.M | re.S)
MARK = re.compile(r"<!--\s*(no-test|test: sh)\b(.*?)-->\s*$")


@dataclass
class Block:
    doc: Path
    line: int
    lang: str
    code: str
    mark: str | None
    reason: str

    @property
    def where(self) -> str:
        return f"{self.doc.relative_to(ROOT)}:{self.line}"


def blocks(doc: Path) -> list[Block]:
    """The fenced code blocks of a Markdown file, with the marker before each."""
    text = doc.read_text()
    found = []
    for m in FENCE.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        before = text[: m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        mark = MARK.search(before)
        found.append(
            Block(
                doc,
                line,
                m.group(1),
                m.group(2),
                mark.group(1) if mark else None,
                mark.group(2).strip(" :") if mark else "",
            )
        )
    return found


def runnable(doc: Path, lang: str) -> list[Block]:
    if lang == "python":
        return [b for b in blocks(doc) if b.lang == "python" and b.mark != "no-test"]
    return [b for b in blocks(doc) if b.lang == "sh" and b.mark == "test: sh"]


def docs_with(lang: str) -> list[Path]:
    return [d for d in DOCS if runnable(d, lang)]


RUNNER = """
import json, sys
namespace = {"__name__": "__main__"}
for where, code in json.load(open(sys.argv[1])):
    print(f"--- {where}", flush=True)
    exec(compile(code, where, "exec"), namespace)
"""


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    work = make_tree(tmp_path / "work", FIXTURES)
    (tmp_path / "tmp").mkdir()
    return work


def environment(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DLFS_")}
    env["DLFS_HOME"] = str(tmp_path / "home")
    env["TMPDIR"] = str(tmp_path / "tmp")
    # Hugging Face datasets (docs/python-api.md) caches under the test, and its Hub is
    # a closed port (offline mode would refuse dlfs:// URLs too).
    env["HF_HOME"] = str(tmp_path / "hf")
    env["HF_ENDPOINT"] = "http://127.0.0.1:9"
    env.pop("HF_HUB_OFFLINE", None)
    env.pop("HF_DATASETS_OFFLINE", None)
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '/usr/bin:/bin')}"
    return env


def check_nothing_left_mounted(tmp_path: Path) -> None:
    left = [p for p in mountregistry.proc_mounts() if p.startswith(str(tmp_path))]
    for path in left:
        subprocess.run(["fusermount3", "-u", "-z", path], capture_output=True)
    assert left == [], f"the examples left mounts behind: {left}"


@pytest.mark.parametrize("doc", docs_with("python"), ids=lambda d: d.name)
def test_python_examples_run(doc: Path, workdir: Path, tmp_path: Path) -> None:
    todo = runnable(doc, "python")
    if not FUSE_OK and any("mount(" in b.code for b in todo):
        pytest.skip("the examples mount: needs /dev/fuse and fusermount3")
    script = tmp_path / "blocks.json"
    script.write_text(json.dumps([[b.where, b.code] for b in todo]))
    try:
        res = subprocess.run(
            [sys.executable, "-c", RUNNER, str(script)],
            cwd=workdir,
            env=environment(tmp_path),
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        check_nothing_left_mounted(tmp_path)
    assert res.returncode == 0, f"{res.stdout[-2000:]}\n{res.stderr[-4000:]}"


@pytest.mark.parametrize("doc", docs_with("sh"), ids=lambda d: d.name)
def test_marked_shell_examples_run(doc: Path, workdir: Path, tmp_path: Path) -> None:
    if not FUSE_OK:
        pytest.skip("needs /dev/fuse and fusermount3")
    for block in runnable(doc, "sh"):
        try:
            res = subprocess.run(
                ["bash", "-e", "-u", "-o", "pipefail", "-c", block.code],
                cwd=workdir,
                env=environment(tmp_path),
                capture_output=True,
                text=True,
                timeout=300,
            )
        finally:
            check_nothing_left_mounted(tmp_path)
        assert res.returncode == 0, f"{block.where}\n{res.stdout[-2000:]}\n{res.stderr[-3000:]}"


def test_the_no_test_marker_is_rare_and_explained() -> None:
    marked = [b for d in DOCS for b in blocks(d) if b.mark == "no-test"]
    assert all(b.reason for b in marked), [b.where for b in marked if not b.reason]
    assert len(marked) <= MAX_NO_TEST, [b.where for b in marked]
    # A marker always stands right before a block.
    for doc in DOCS:
        text = doc.read_text()
        n_markers = len(re.findall(r"<!--\s*(?:no-test|test: sh)\b", text))
        assert n_markers == sum(1 for b in blocks(doc) if b.mark), doc.name


def test_the_python_examples_are_found() -> None:
    # The API guide and the README are tested: a broken fence would silently skip them.
    names = {d.name for d in docs_with("python")}
    assert {"python-api.md", "README.md"} <= names, names

"""The scripts in examples/ run as their docstrings say.

examples/torch_dataset.py needs torch, which the bootstrap does not install (its CPU
build is large): the test is skipped, with that reason, where torch is missing.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dlfs import Catalog, mountregistry

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
FUSE_OK = os.path.exists("/dev/fuse") and shutil.which("fusermount3") is not None


def run_example(script: str, *args: str, tmp_path: Path) -> str:
    """Run an example with its temporary files (and mountpoints) under ``tmp_path``."""
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    env.pop("DLFS_HOME", None)
    res = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    left = [p for p in mountregistry.proc_mounts() if p.startswith(str(tmp_path))]
    assert left == [], f"the example left mounts behind: {left}"
    return res.stdout


@pytest.mark.fuse
@pytest.mark.skipif(not FUSE_OK, reason="needs /dev/fuse and fusermount3")
@pytest.mark.skipif(
    importlib.util.find_spec("torch") is None,
    reason="torch is not installed (pip install torch; the bootstrap leaves it out)",
)
def test_torch_dataset_trains_from_a_mounted_version(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with Catalog(home) as cat:
        ds = cat.create_dataset("pets")
        for label, fill in (("cat", b"m"), ("dog", b"w")):
            for i in range(12):
                ds.add(fill * (100 + i) + bytes([i]), to=f"train/{label}/{i:02d}.bin")
        ds.add(b"not a sample", to="README.txt")
        ref = ds.publish().ref
    out = run_example(
        "torch_dataset.py", "pets@v0", "--home", str(home), "--workers", "2", tmp_path=tmp_path
    )
    assert re.search(r"24 files in 2 classes, 72 samples read by 2 workers", out), out
    assert ref.startswith("pets@")
    out = run_example("torch_dataset.py", "--demo", "--workers", "2", tmp_path=tmp_path)
    assert "72 files in 3 classes" in out and "accuracy" in out

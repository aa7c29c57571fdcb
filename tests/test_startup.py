"""Start-up stays light: ``dlfs --help``, ``dlfs ls``, ``dlfs log``, ``dlfs cat`` and
the daemon's start import none of the heavy data libraries (pandas, numpy, pyarrow,
boto3, fsspec) when the command does not need them, whether or not they are
installed (with them absent the check passes trivially). No timing: each command
runs in a fresh interpreter, which reports the modules it loaded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Cli

HEAVY = ("pandas", "numpy", "pyarrow", "boto3", "botocore", "fsspec")

PROBE = """
import json, os, runpy, sys
heavy, args = json.loads(sys.argv[1]), json.loads(sys.argv[2])
try:
    if args[0] == "dlfsd":
        sys.argv = args
        import dlfsd.main
    else:
        sys.argv = ["dlfs", *args]
        runpy.run_module("dlfs", run_name="__main__", alter_sys=True)
except SystemExit:
    pass
finally:
    with open(os.environ["PROBE_OUT"], "w") as out:
        json.dump(sorted(m for m in heavy if m in sys.modules), out)
"""


def loaded_by(args: list[str], home: Path, tmp_path: Path) -> list[str]:
    """The heavy modules a fresh interpreter loaded running ``dlfs args``."""
    out = tmp_path / "loaded.json"
    env = {**os.environ, "DLFS_HOME": str(home), "PROBE_OUT": str(out)}
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(HEAVY), json.dumps(args)],
        capture_output=True,
        env=env,
    )
    assert out.exists(), proc.stderr.decode()
    return list(json.loads(out.read_text()))


@pytest.fixture(scope="module")
def catalog_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("startup")
    src = root / "src"
    src.mkdir()
    (src / "a.txt").write_text("hello\n")
    cli = Cli(root / "home")
    cli("dataset", "create", "cats")
    cli("add", "cats", str(src))
    cli("publish", "cats")
    return root / "home"


@pytest.mark.parametrize(
    "args",
    [["--help"], ["--version"], ["ls", "cats"], ["log", "cats"], ["cat", "cats", "a.txt"]],
    ids=lambda a: " ".join(a),
)
def test_commands_load_no_heavy_library(args: list[str], catalog_home: Path, tmp_path: Path):
    assert loaded_by(args, catalog_home, tmp_path) == []


def test_the_daemons_start_loads_no_heavy_library(catalog_home: Path, tmp_path: Path):
    assert loaded_by(["dlfsd", "--help"], catalog_home, tmp_path) == []


def test_pandas_still_imports_after_dlfs():
    """The import guard of sqlite_utils leaves no trace: a program that imports dlfs
    and then pandas gets pandas (when it is installed)."""
    code = (
        "import dlfs, dlfs.catalog, importlib.util, sys\n"
        "if importlib.util.find_spec('pandas'):\n"
        "    import pandas\n"
        "    assert pandas.DataFrame({'a': [1]}).shape == (1, 1)\n"
        "assert 'pandas' not in sys.modules or sys.modules['pandas'] is not None\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True)
    assert proc.returncode == 0, proc.stderr.decode()


def test_the_daemon_does_not_load_the_catalog_api():
    """``import dlfs.<module>`` loads that module, not the whole public surface: the
    daemon's start pays for its view, not for the catalog API, handles and sampler."""
    code = (
        "import json, sys\n"
        "import dlfsd.main\n"
        "print(json.dumps([m for m in ('dlfs.api', 'dlfs.handles', 'dlfs.sampler')"
        " if m in sys.modules]))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == []


def test_the_public_names_still_come_from_the_package():
    code = (
        "import dlfs\n"
        "from dlfs import Catalog, PlannedSampler, Version, mount, prefetch\n"
        "assert Catalog.__module__ == 'dlfs.api' and Version.__module__ == 'dlfs.handles'\n"
        "assert callable(mount) and callable(prefetch) and PlannedSampler\n"
        "assert sorted(dlfs.__all__) == sorted(set(dlfs.__all__))\n"
        "assert all(getattr(dlfs, name) is not None for name in dlfs.__all__)\n"
        "try:\n"
        "    dlfs.nothing_here\n"
        "except AttributeError:\n"
        "    pass\n"
        "else:\n"
        "    raise SystemExit('no AttributeError')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr

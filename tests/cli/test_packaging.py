"""Shell completion as shipped in packaging/completion: current, and working in bash."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMPLETION = ROOT / "packaging" / "completion"
VENV_BIN = Path(sys.executable).parent


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_the_shipped_completion_scripts_are_current(shell: str) -> None:
    env = {**os.environ, "_DLFS_COMPLETE": f"{shell}_source"}
    out = subprocess.run(
        [sys.executable, "-m", "dlfs"], capture_output=True, text=True, env=env, check=True
    ).stdout
    assert (COMPLETION / f"dlfs.{shell}").read_text() == out, (
        f"regenerate: _DLFS_COMPLETE={shell}_source dlfs > packaging/completion/dlfs.{shell}"
    )


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_bash_completes_commands_and_options() -> None:
    script = f"""
source {COMPLETION / "dlfs.bash"}
complete -p dlfs
COMP_WORDS=(dlfs data); COMP_CWORD=1; _dlfs_completion dlfs; echo "${{COMPREPLY[@]}}"
COMP_WORDS=(dlfs dataset l); COMP_CWORD=2; COMPREPLY=(); _dlfs_completion dlfs
echo "${{COMPREPLY[@]}}"
COMP_WORDS=(dlfs mount --c); COMP_CWORD=2; COMPREPLY=(); _dlfs_completion dlfs
echo "${{COMPREPLY[@]}}"
"""
    env = {**os.environ, "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}"}
    res = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0] == "complete -o nosort -F _dlfs_completion dlfs"
    assert lines[1:] == ["dataset", "list", "--cache-dir --cache-size"]

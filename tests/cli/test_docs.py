"""The docs stay honest: every command is documented, README's commands exist."""

from __future__ import annotations

import re
from pathlib import Path

import click

from dlfs.cli import cli

ROOT = Path(__file__).resolve().parents[2]
DOCS = "\n".join(p.read_text() for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))])


def all_commands(group: click.Group, prefix: str = "dlfs") -> list[str]:
    names = []
    for name, command in group.commands.items():
        full = f"{prefix} {name}"
        if isinstance(command, click.Group):
            names.extend(all_commands(command, full))
        else:
            names.append(full)
    return names


def test_every_command_is_documented() -> None:
    missing = [c for c in all_commands(cli) if not re.search(re.escape(c) + r"\b", DOCS)]
    assert missing == [], f"commands without docs: {missing}"


def test_every_command_has_help() -> None:
    def walk(group: click.Group) -> None:
        for name, command in group.commands.items():
            assert command.help, f"{name} has no help text"
            if isinstance(command, click.Group):
                walk(command)

    walk(cli)


def test_readme_make_targets_exist() -> None:
    makefile = (ROOT / "Makefile").read_text()
    for target in re.findall(r"^make (\w+)", (ROOT / "README.md").read_text(), re.M):
        assert re.search(rf"^{target}:", makefile, re.M), target

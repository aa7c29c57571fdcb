"""``dlfs project create|list|show|set|delete``: parsing and printing only.

Each command is one call into :class:`dlfs.api.Catalog`; the semantics live in
:mod:`dlfs.projects` (namespaces, read-only projects) and :mod:`dlfs.access` (what a
project's mounts show).
"""

from __future__ import annotations

from typing import Any

import click

from dlfs.cli.core import Context, cli, emit, pass_ctx, table


@cli.group()
def project() -> None:
    """Create, list, show, set and delete projects (namespaces of datasets)."""


def _show(info: dict[str, Any]) -> None:
    click.echo(f"project: {info['name']}")
    click.echo(f"owner: {info['owner']}")
    click.echo(f"group: {info['group'] or '-'}")
    click.echo(f"read-only: {'yes' if info['read_only'] else 'no'}")
    if info["description"]:
        click.echo(f"description: {info['description']}")
    click.echo(f"datasets: {len(info['datasets'])}")
    for name in info["datasets"]:
        click.echo(f"  {name}")


@project.command("create")
@click.argument("name")
@click.option("--group", default=None, help="Unix group (name or gid) let in to its mounts.")
@click.option("--description", default="", help="What the project is for.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def project_create(
    c: Context, name: str, group: str | None, description: str, as_json: bool
) -> None:
    """Create project NAME, owned by you; its datasets are named NAME/DATASET."""
    info = c.catalog.create_project(name, group, description).info()
    if as_json:
        emit(info)
    else:
        click.echo(f"project {info['name']} (owner {info['owner']}, group {info['group'] or '-'})")


@project.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def project_list(c: Context, as_json: bool) -> None:
    """List projects, by name."""
    infos = [p.info() for p in c.catalog.projects()]
    if as_json:
        emit(infos)
        return
    rows = [
        [
            i["name"],
            i["owner"],
            i["group"] or "-",
            "read-only" if i["read_only"] else "writable",
            str(len(i["datasets"])),
        ]
        for i in infos
    ]
    table(rows, ["NAME", "OWNER", "GROUP", "STATE", "DATASETS"])


@project.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def project_show(c: Context, name: str, as_json: bool) -> None:
    """Show a project: owner, group, read-only flag, datasets."""
    info = c.catalog.project_info(name)
    if as_json:
        emit(info)
    else:
        _show(info)


@project.command("set")
@click.argument("name")
@click.option(
    "--read-only/--writable",
    "read_only",
    default=None,
    help="No new drafts, publishes, edits or deletes in it / allow them again.",
)
@click.option("--group", default=None, help="Unix group (name or gid) let in to its mounts.")
@click.option("--no-group", is_flag=True, help="Take the group away: mounts as before.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def project_set(
    c: Context,
    name: str,
    read_only: bool | None,
    group: str | None,
    no_group: bool,
    as_json: bool,
) -> None:
    """Change a project's read-only flag or group."""
    info = c.catalog.set_project(name, read_only, group, no_group)
    if as_json:
        emit(info)
    else:
        _show(info)


@project.command("delete")
@click.argument("name")
@click.option("--force", is_flag=True, help="Also delete its datasets, every version.")
@pass_ctx
def project_delete(c: Context, name: str, force: bool) -> None:
    """Delete an empty project (with --force, its datasets too)."""
    deleted = c.catalog.delete_project(name, force)
    suffix = f" and {len(deleted)} dataset(s): {', '.join(deleted)}" if deleted else ""
    click.echo(f"deleted project {name}{suffix}")

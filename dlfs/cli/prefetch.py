"""``dlfs prefetch``: hand a mount the order in which files will be read (:mod:`dlfs.plan`)."""

from __future__ import annotations

import sys

import click

from dlfs import plan
from dlfs.cli.core import Context, cli, pass_ctx


@cli.command()
@click.argument("target", metavar="MOUNTPOINT")
@click.option(
    "--from",
    "source",
    metavar="LIST",
    help="File of paths to read, one a line, in order ('-': standard input).",
)
@click.option("--cancel", is_flag=True, help="Withdraw the plan in force.")
@pass_ctx
def prefetch(c: Context, target: str, source: str | None, cancel: bool) -> None:
    """Tell the mount at MOUNTPOINT (or of a ref mounted once) in which order files
    will be read: its daemon fetches them a bounded number of files ahead of the
    reader. Paths are relative to the mount, or absolute under it. A new plan
    replaces the one in force; --cancel withdraws it. A plan naming a path that is
    not a file of the mount is refused (the plan in force stays).
    """
    if cancel == (source is not None):
        raise click.UsageError("give either --from LIST or --cancel")
    mountpoint = plan.mountpoint_of(target, c.home)
    if cancel:
        plan.give(mountpoint, [])
        click.echo(f"plan withdrawn at {mountpoint}")
        return
    assert source is not None
    if source == "-":
        text = sys.stdin.read()
    else:
        with open(source, encoding="utf-8") as f:
            text = f.read()
    paths = [line for line in text.splitlines() if line.strip()]
    given = plan.give(mountpoint, plan.relative_paths(mountpoint, paths))
    click.echo(f"plan of {given.files} files given to {mountpoint}")

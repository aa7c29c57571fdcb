"""``dlfs mount``, ``dlfs umount``, ``dlfs mounts``: printing over :mod:`dlfs.mounts`."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from dlfs import mountregistry, mounts
from dlfs.cli.core import Context, cli, emit, pass_ctx, table
from dlfs.home import Home


@cli.command(context_settings={"ignore_unknown_options": False})
@click.argument("args", nargs=-1, required=True, metavar="[REF] MOUNTPOINT")
@click.option("-f", "--foreground", is_flag=True, help="Stay in front; Ctrl-C unmounts.")
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False),
    help="Folder of the read cache for remote storage (recorded; used with S3).",
)
@click.option("--cache-size", metavar="SIZE", help="Read cache size, e.g. 10G (recorded).")
@click.option(
    "--prefetch-memory",
    metavar="SIZE",
    help="Memory for blocks fetched ahead of readers (remote storage), e.g. 512M; shared"
    " by all open files (recorded).",
)
@click.option(
    "--workers",
    type=int,
    default=None,
    metavar="N",
    help="Processes serving a published version or the catalog"
    " (default: one per two cores, at most 8; a draft: 1).",
)
@click.option(
    "--where",
    metavar="EXPR",
    help="A view: only the items EXPR selects (the language of clone --where,"
    " e.g. 'label == \"dog\"'); read-only.",
)
@click.option(
    "--group-by",
    metavar="KEY",
    help="A view: MOUNTPOINT/<value>/<path> for each value of KEY (label or"
    " metadata.FIELD); items without one under @none; read-only.",
)
@click.option(
    "--remote",
    metavar="s3://BUCKET/PREFIX",
    help="Mount REF as pushed there, read from the remote without pulling it.",
)
@click.option(
    "-o",
    "options",
    multiple=True,
    metavar="OPTS",
    help="Mount options, comma-separated: allow_other, allow_root, noatime...",
)
@pass_ctx
def mount(
    c: Context,
    args: tuple[str, ...],
    foreground: bool,
    cache_dir: str | None,
    cache_size: str | None,
    prefetch_memory: str | None,
    workers: int | None,
    where: str | None,
    group_by: str | None,
    remote: str | None,
    options: tuple[str, ...],
) -> None:
    """Mount a version (REF) or, without REF, the whole catalog at MOUNTPOINT.

    Returns once the mount is usable; the daemon runs in the background and logs
    under the catalog's logs/ folder. A published version is read-only; a draft
    (NAME@draft) is read-write (one writable mount per draft; -o ro for a read-only
    one): edit it with any tool, then 'dlfs publish'. The whole catalog shows
    MOUNTPOINT/<dataset>/<version id>/, with each tag as a symlink.

    --where and --group-by mount a view of REF instead: only the matching items,
    arranged under a folder per value (see docs/mounting.md, "Views"); nothing is
    copied and a view is always read-only.

    With --remote s3://BUCKET/PREFIX, REF is a version pushed there, mounted
    read-only straight from the remote (nothing is pulled into this catalog).
    """
    if len(args) > 2:
        raise click.UsageError("give at most a REF and a MOUNTPOINT")
    ref, mountpoint = (None, args[0]) if len(args) == 1 else args
    home = c.catalog.home
    record = mounts.mount(
        home,
        mountpoint,
        ref,
        options=list(options),
        cache_dir=cache_dir,
        cache_size=cache_size,
        prefetch_memory=prefetch_memory,
        foreground=foreground,
        workers=workers,
        where=where,
        group_by=group_by,
        remote=remote,
    )
    what = f"{record.ref} ({record.version})" if record.ref else "the catalog"
    note = {"draft": " read-only", "writable": " read-write"}.get(record.mode, "")
    if where is not None or group_by is not None:
        note = " (a read-only view)"
    click.echo(f"mounted {what}{note} at {record.mountpoint} (pid {record.pid})")


@cli.command()
@click.argument("mountpoint", type=click.Path())
@click.option("--lazy", is_flag=True, help="Detach now even if files are open there.")
@pass_ctx
def umount(c: Context, mountpoint: str, lazy: bool) -> None:
    """Unmount MOUNTPOINT cleanly, or clear a stale mount left by a dead daemon."""
    done = mounts.unmount(Home.at(c.home), mountpoint, lazy)
    click.echo(f"{done} {mountregistry.normalize(mountpoint)}")


@cli.command("mounts")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def mounts_(c: Context, as_json: bool) -> None:
    """List mounts: mountpoint, ref, version id, daemon pid, state (ok or stale)."""
    found = mountregistry.status(Home.at(c.home))
    if as_json:
        emit([m.to_json() for m in found])
        return
    rows = [
        [
            m.mountpoint,
            (m.ref or ("-" if m.pid is None else "(catalog)")) + (f" {m.view}" if m.view else ""),
            m.version or "-",
            str(m.pid or "-"),
            m.state,
            _when(m.started_at),
            ",".join(str(p) for p in m.workers) or "-",
        ]
        for m in found
    ]
    table(rows, ["MOUNTPOINT", "REF", "VERSION", "PID", "STATE", "SINCE", "WORKERS"])


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")

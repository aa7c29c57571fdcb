"""``dlfs link``, ``dlfs sync``, ``dlfs push``, ``dlfs pull``: printing over the storage
methods of :class:`dlfs.api.Catalog`.

Each takes ``--endpoint-url`` for S3-compatible servers (the same as setting
``DLFS_S3_ENDPOINT``); credentials come from boto3's usual configuration.
"""

from __future__ import annotations

import os

import click

from dlfs.cli.core import Context, cli, emit, human_size, pass_ctx, progress_bar


def _endpoint(_ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value:
        os.environ["DLFS_S3_ENDPOINT"] = value


endpoint_option = click.option(
    "--endpoint-url",
    metavar="URL",
    expose_value=False,
    callback=_endpoint,
    help="S3-compatible endpoint (default: $DLFS_S3_ENDPOINT, else AWS).",
)


@cli.command()
@click.argument("name")
@click.argument("url", metavar="s3://BUCKET/PREFIX")
@endpoint_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def link(c: Context, name: str, url: str, as_json: bool) -> None:
    """Index the objects under URL into dataset NAME's draft, in place (no copy).

    NAME is created as a linked dataset if it does not exist. Folders come from key
    prefixes; keys that are not valid paths are skipped and counted.
    """
    with progress_bar("link") as bar:
        result = c.catalog.link(name, url, bar)
    if as_json:
        emit(result.to_json())
        return
    click.echo(
        f"linked {url} to {name}: {result.added} added, {result.unchanged} unchanged"
        + _skipped(result.skipped, result.skipped_keys)
        + _markers(result.folder_markers)
    )


@cli.command()
@click.argument("name")
@endpoint_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def sync(c: Context, name: str, as_json: bool) -> None:
    """Index the linked bucket of NAME again into its draft.

    New objects are added, deleted ones removed; a changed object (new ETag) becomes a
    new item, and a renamed one a new item at its new path.
    """
    with progress_bar("sync") as bar:
        result = c.catalog.sync(name, bar)
    if as_json:
        emit(result.to_json())
        return
    click.echo(
        f"synced {name}: {result.added} added, {result.removed} removed,"
        f" {result.changed} changed, {result.unchanged} unchanged"
        + _skipped(result.skipped, result.skipped_keys)
        + _markers(result.folder_markers)
    )


def _markers(count: int) -> str:
    return f"; {count} folder marker(s) skipped (keys ending in '/')" if count else ""


def _skipped(count: int, keys: list[str]) -> str:
    if not count:
        return ""
    shown = ", ".join(repr(k) for k in keys) + (", ..." if count > len(keys) else "")
    return f"; {count} key(s) skipped, not valid paths ({shown})"


@cli.command()
@click.argument("ref")
@click.argument("url", metavar="s3://BUCKET/PREFIX")
@endpoint_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def push(c: Context, ref: str, url: str, as_json: bool) -> None:
    """Copy published version REF (records and missing blobs) to URL."""
    with progress_bar("push") as bar:
        result = c.catalog.push(ref, url, bar)
    if as_json:
        emit(result.to_json())
        return
    click.echo(
        f"pushed {result.dataset}@{result.version} to {result.url}: {result.uploaded} blob(s)"
        f" uploaded ({human_size(result.bytes_uploaded)}), {result.present} already there;"
        f" tags {','.join(result.tags) or '-'}"
    )


@cli.command()
@click.argument("url", metavar="s3://BUCKET/PREFIX")
@click.argument("ref")
@click.option("--as", "as_name", metavar="NAME", help="Local dataset name (default: the same).")
@click.option("--force", is_flag=True, help="Move local user tags the version brings.")
@endpoint_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def pull(c: Context, url: str, ref: str, as_name: str | None, force: bool, as_json: bool) -> None:
    """Bring version REF (NAME@SPEC as pushed to URL) into this catalog, same id.

    SPEC is a version id, a unique id prefix, a user tag or latest (the default). Its
    binaries stay in S3 and are read on demand.
    """
    with progress_bar("pull") as bar:
        result = c.catalog.pull(url, ref, as_name, force, bar)
    if as_json:
        emit(result.to_json())
        return
    if result.already:
        change = "metadata updated" if result.updated else "nothing changed"
        click.echo(
            f"already here: {result.dataset}@{result.version} ({result.files} files),"
            f" {change}  tags={','.join(result.tags) or '-'}"
        )
        return
    click.echo(
        f"pulled {result.dataset}@{result.version}  tags={','.join(result.tags) or '-'}"
        f"  files={result.files}  storage={result.storage}"
    )
    if result.latest and result.latest != result.version:
        click.echo(f"latest stays on {result.latest[:12]}: it was published later")

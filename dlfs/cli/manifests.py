"""``dlfs import`` and ``dlfs export``: printing over
:meth:`dlfs.api.Catalog.import_manifest` and :meth:`dlfs.api.Catalog.export_manifest`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

import click

from dlfs.cli.core import Context, cli, emit, human_size, pass_ctx, progress_bar
from dlfs.cli.storage import endpoint_option
from dlfs.ops.manifest_formats import FORMATS

F = TypeVar("F", bound=Callable[..., Any])


def format_option(default: str) -> Callable[[F], F]:
    """``--format``, with what happens without it."""
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(FORMATS),
        default=None,
        help=f"The manifest's format (default: {default}).",
    )


@cli.command("import")
@click.argument("ref")
@click.argument("manifest", type=click.Path(dir_okay=False))
@format_option("by the file's extension, else its content")
@click.option(
    "--images",
    type=click.Path(file_okay=False),
    default=None,
    help="Folder relative sources are in (default: the manifest's folder).",
)
@click.option("--dry-run", is_flag=True, help="Check every row and show what would change.")
@endpoint_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def import_(
    c: Context,
    ref: str,
    manifest: str,
    fmt: str | None,
    images: str | None,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Put the files a manifest lists (JSON Lines, CSV or COCO) into a draft, with
    their metadata and annotations: every row or none."""
    with progress_bar("import") as bar:
        result = c.catalog.import_manifest(ref, manifest, fmt, images, dry_run, bar)
    if as_json:
        info = result.to_json()
        if dry_run:
            info.update(added_paths=result.added, replaced_paths=result.replaced)
        emit(info)
        return
    if dry_run:
        for path in result.added:
            click.echo(f"+ {path}")
        for path in result.replaced:
            click.echo(f"~ {path}")
    verb = "would import" if dry_run else "imported"
    click.echo(
        f"{verb} {result.rows} file(s), {human_size(result.bytes)}: {len(result.added)} new,"
        f" {len(result.replaced)} replaced"
    )
    if result.labels is not None:
        labels = json.dumps(result.labels["labels"], ensure_ascii=False)
        click.echo(f"{'would set' if dry_run else 'set'} the dataset's labels: {labels}")


@cli.command("export")
@click.argument("ref")
@click.argument("file", type=click.Path(dir_okay=False))
@format_option("by the extension: .jsonl, .csv, .json for COCO; else jsonl")
@click.option(
    "--with-files",
    type=click.Path(file_okay=False),
    default=None,
    help="Copy the (verified) bytes into this new or empty folder; src points there.",
)
@endpoint_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def export(
    c: Context, ref: str, file: str, fmt: str | None, with_files: str | None, as_json: bool
) -> None:
    """Write a version's files (paths, metadata, annotations) as a JSON Lines, CSV or
    COCO manifest that 'dlfs import' reads back."""
    with progress_bar("export") as bar:
        result = c.catalog.export_manifest(ref, file, fmt, with_files, bar)
    if as_json:
        emit(result.to_json())
        return
    msg = f"exported {result.files} file(s) to {file} ({result.format})"
    if with_files is not None:
        msg += f", {human_size(result.copied_bytes)} copied to {with_files}"
    click.echo(msg)
    if result.dropped_annotations:
        click.echo(
            f"dlfs: warning: {result.dropped_annotations} annotation(s) are not JSON objects"
            " and have no place in COCO: left out",
            err=True,
        )

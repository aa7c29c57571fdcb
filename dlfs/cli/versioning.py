"""``dlfs clone``, ``dlfs merge``, ``dlfs diff``: parsing and printing only.

Each command is one call into :class:`dlfs.api.Catalog`; the semantics live in
:mod:`dlfs.ops.clone`, :mod:`dlfs.ops.merge`, :mod:`dlfs.ops.diff` and the filter
language in :mod:`dlfs.ops.where`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import click

from dlfs.cli.core import Context, cli, emit, pass_ctx, version_line


@contextmanager
def _item_progress(label: str, total: int) -> Iterator[Callable[[int], None] | None]:
    """A progress bar counting files on a terminal, nothing otherwise."""
    if not sys.stderr.isatty():
        yield None
        return
    from tqdm import tqdm

    with tqdm(total=total, unit=" files", desc=label, leave=False) as bar:
        yield bar.update


@cli.command()
@click.argument("ref")
@click.argument("new")
@click.option(
    "--include",
    "include",
    multiple=True,
    metavar="GLOB",
    help="Clone only items whose path matches (repeatable; * stays in a folder, ** crosses).",
)
@click.option(
    "--where",
    "where",
    default=None,
    metavar="EXPR",
    help="""Clone only items matching EXPR, e.g. 'label == "dog"' or
    'metadata.split == "train" and metadata.score > 0.5'.""",
)
@click.option("--no-metadata", is_flag=True, help="Give the clone's items empty metadata.")
@click.option("--no-annotations", is_flag=True, help="Give the clone's items no annotations.")
@click.option("--publish", is_flag=True, help="Publish the clone's first version.")
@click.option(
    "--storage",
    default=None,
    help="Must be the source's storage: clones share its binaries (default: the source's).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the new version as JSON.")
@pass_ctx
def clone(
    c: Context,
    ref: str,
    new: str,
    include: tuple[str, ...],
    where: str | None,
    no_metadata: bool,
    no_annotations: bool,
    publish: bool,
    storage: str | None,
    as_json: bool,
) -> None:
    """Clone version REF into a new dataset NEW, pointing at the same binaries.

    REF is NAME (its latest published version), NAME@SPEC, or NAME@draft (frozen as
    it is now). Without filters and with metadata and annotations the clone costs
    O(1) whatever the size. The first version is a draft unless --publish.
    """
    catalog = c.catalog
    filtered = bool(include or where or no_metadata or no_annotations)
    total = catalog.version(ref).info()["files"] if filtered and sys.stderr.isatty() else 0
    with _item_progress("clone", total) as bar:
        version = catalog.clone(
            ref,
            new,
            list(include),
            where,
            metadata=not no_metadata,
            annotations=not no_annotations,
            publish=publish,
            storage=storage,
            progress=bar,
        )
    info = version.info()
    if as_json:
        emit(info)
    else:
        click.echo(f"cloned {ref} -> {version_line(info)}  files={info['files']}")


@cli.command()
@click.argument("new")
@click.argument("refs", nargs=-1, required=True)
@click.option("--no-metadata", is_flag=True, help="Give the merged items empty metadata.")
@click.option("--no-annotations", is_flag=True, help="Give the merged items no annotations.")
@click.option(
    "--on-conflict",
    type=click.Choice(["rename", "fail"]),
    default="rename",
    show_default=True,
    help="""rename: keep unrelated items on one path as 'a.jpg', 'a (2).jpg' and take the
    last ref's bytes of an item whose copies differ (each reported); fail: refuse both.""",
)
@click.option("--publish", is_flag=True, help="Publish the merge's first version.")
@click.option("--json", "as_json", is_flag=True, help="Print the new version as JSON.")
@pass_ctx
def merge(
    c: Context,
    new: str,
    refs: tuple[str, ...],
    no_metadata: bool,
    no_annotations: bool,
    on_conflict: str,
    publish: bool,
    as_json: bool,
) -> None:
    """Merge versions REF REF... into a new dataset NEW.

    Items of one lineage (clones of one another) become one item with the union of
    their annotations and their merged metadata (later refs win) and the last ref's
    bytes; unrelated items are summed. Each conflict is reported on stderr. Datasets
    with different label recipes or storages cannot be merged.
    """
    if len(refs) < 2:
        raise click.UsageError("give at least two refs to merge")
    version = c.catalog.merge(
        new,
        list(refs),
        metadata=not no_metadata,
        annotations=not no_annotations,
        on_conflict=on_conflict,
        publish=publish,
    )
    info = version.info()
    for conflict in version.conflicts:
        click.echo(f"conflict: {conflict.line()}", err=True)
    if as_json:
        emit({**info, "conflicts": [c.to_json() for c in version.conflicts]})
    else:
        click.echo(f"merged {' '.join(refs)} -> {version_line(info)}  files={info['files']}")


@cli.command()
@click.argument("a")
@click.argument("b")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def diff(c: Context, a: str, b: str, as_json: bool) -> None:
    """Show the items added (A), removed (D), modified (M) and moved (R) from A to B.

    Modified and moved items say what changed: content, metadata, annotations.
    Items are matched by lineage; equal folders are skipped, so the cost follows the
    size of the change, not of the versions.
    """
    result = c.catalog.diff(a, b)
    if as_json:
        emit(result.to_json())
        return
    for line in result.lines():
        click.echo(line)
    s = result.summary()
    click.echo(
        f"{s['added']} added, {s['removed']} removed, {s['modified']} modified, {s['moved']} moved"
    )

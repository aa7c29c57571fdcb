"""The ``dlfs`` command group, its shared helpers, and the catalog commands.

Argument parsing and printing over :mod:`dlfs.api`, nothing more.

Errors print as one line ``dlfs: error: ...`` on stderr with exit status 1; usage
errors exit 2 (click's convention). Listing and creating commands take ``--json``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import click

from dlfs import jsonvalues
from dlfs.api import Catalog
from dlfs.errors import DlfsError
from dlfs.names import parse_assignment, parse_json


class Context:
    """What every command gets: the catalog home, opened on first use."""

    def __init__(self, home: str | None) -> None:
        self.home = home
        self._catalog: Catalog | None = None

    @property
    def catalog(self) -> Catalog:
        if self._catalog is None:
            self._catalog = Catalog(self.home)
        return self._catalog


pass_ctx = click.make_pass_decorator(Context)


def emit(data: Any) -> None:
    """Print one JSON document."""
    click.echo(json.dumps(data, indent=2, sort_keys=False, ensure_ascii=False))


def human_size(n: int) -> str:
    """``1536`` -> ``1.5K``."""
    size = float(n)
    for unit in ("B", "K", "M", "G", "T"):
        if size < 1024 or unit == "T":
            return f"{int(size)}{unit}" if unit == "B" else f"{size:.1f}{unit}"
        size /= 1024
    raise AssertionError


def table(rows: list[list[str]], header: list[str]) -> None:
    """Print left-aligned columns."""
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=False)]
    for row in [header, *rows]:
        click.echo("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=False)).rstrip())


@contextmanager
def progress_bar(label: str, total: int | None = None) -> Iterator[Callable[[int], None] | None]:
    """A byte progress bar on a terminal (tqdm), nothing otherwise."""
    if not sys.stderr.isatty():
        yield None
        return
    from tqdm import tqdm

    with tqdm(total=total, unit="B", unit_scale=True, desc=label, leave=False) as bar:
        yield bar.update


def version_line(v: dict[str, Any]) -> str:
    tags = ",".join(v["tags"]) or "-"
    name = v["name"] or "-"
    return f"{v['dataset']}@{v['id']}  {v['state']}  tags={tags}  name={name}"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--home",
    envvar="DLFS_HOME",
    type=click.Path(file_okay=False),
    help="Catalog folder (default $DLFS_HOME or ~/.local/share/dlfs).",
)
@click.version_option(package_name="dlfs")
@click.pass_context
def cli(ctx: click.Context, home: str | None) -> None:
    """dlfs: versioned datasets for machine learning, mounted as plain directories."""
    ctx.obj = Context(home)


@cli.command()
@pass_ctx
def init(c: Context) -> None:
    """Create the catalog (also done on first use)."""
    click.echo(f"catalog at {c.catalog.home.root}")


# -- datasets ---------------------------------------------------------------------


@cli.group()
def dataset() -> None:
    """Create, list, show, tag and delete datasets."""


@dataset.command("create")
@click.argument("name")
@click.option("--description", default="", help="What the dataset holds.")
@click.option("--tag", "tags", multiple=True, help="A dataset tag (repeatable).")
@click.option("--labels", type=click.Path(exists=True, dir_okay=False), help="Label recipe JSON.")
@click.option("--storage", default="local", help="Where binaries live (default: local).")
@click.option("--exist-ok", is_flag=True, help="Reuse an existing dataset of that name.")
@click.option("--project", default=None, help="The project (as PROJECT/NAME does).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def dataset_create(
    c: Context,
    name: str,
    description: str,
    tags: tuple[str, ...],
    labels: str | None,
    storage: str,
    exist_ok: bool,
    project: str | None,
    as_json: bool,
) -> None:
    """Create dataset NAME (or PROJECT/NAME) with one empty draft."""
    recipe = None
    if labels:
        recipe = jsonvalues.read_file(labels, f"labels file {labels}", jsonvalues.MAX_METADATA)
    ds = c.catalog.create_dataset(name, description, list(tags), recipe, storage, exist_ok, project)
    info = ds.info()
    if as_json:
        emit(info)
    else:
        click.echo(f"dataset {info['name']} ({info['storage']})")


@dataset.command("list")
@click.option(
    "--where",
    "conditions",
    multiple=True,
    metavar="FIELD=JSONVALUE",
    help="Keep datasets whose FIELD equals the value, e.g. metadata.owner='\"ann\"' (repeatable).",
)
@click.option(
    "--sort", "sort", multiple=True, metavar="FIELD", help="Sort by FIELD (-FIELD: descending)."
)
@click.option("--project", default=None, help="Only the datasets of this project.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def dataset_list(
    c: Context,
    conditions: tuple[str, ...],
    sort: tuple[str, ...],
    project: str | None,
    as_json: bool,
) -> None:
    """List datasets, by name, or filtered and sorted by their fields and custom metadata."""
    where = dict(parse_assignment(text) for text in conditions) or None
    found = c.catalog.datasets(where=where, sort=list(sort), project=project)
    infos = [d.info() for d in found]
    if as_json:
        emit(infos)
        return
    rows = [
        [
            i["name"],
            i["kind"],
            str(i["files"]),
            human_size(i["bytes"]),
            f"{i['published']}+{i['drafts']}d",
            (i["latest"] or "-")[:12],
            i["description"],
        ]
        for i in infos
    ]
    table(rows, ["NAME", "KIND", "FILES", "SIZE", "VERSIONS", "LATEST", "DESCRIPTION"])


@dataset.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def dataset_show(c: Context, name: str, as_json: bool) -> None:
    """Show a dataset: counts, size, versions."""
    info = c.catalog.dataset(name).info(detail=True)
    if as_json:
        emit(info)
        return
    for key in ("name", "project", "kind", "description", "storage", "files"):
        click.echo(f"{key}: {info[key]}")
    click.echo(f"size: {human_size(info['bytes'])} ({info['bytes']} bytes)")
    click.echo(f"tags: {', '.join(info['tags']) or '-'}")
    click.echo(f"labels: {json.dumps(info['labels'])}")
    click.echo(f"metadata: {json.dumps(info['metadata'])}")
    click.echo(f"versions: {info['published']} published, {info['drafts']} draft(s)")
    for v in info["version_list"]:
        click.echo(f"  {version_line(v)}  files={v['files']}")


@dataset.command("delete")
@click.argument("name")
@click.option("--all-versions", is_flag=True, help="Also delete its drafts.")
@click.option("--force", is_flag=True, help="Also delete published versions.")
@click.option("--delete-sources", is_flag=True, help="Also delete blobs no longer used.")
@pass_ctx
def dataset_delete(
    c: Context, name: str, all_versions: bool, force: bool, delete_sources: bool
) -> None:
    """Delete a dataset (only an empty one unless told otherwise)."""
    removed = c.catalog.delete_dataset(name, all_versions, force, delete_sources)
    msg = f"deleted dataset {name}"
    if delete_sources:
        msg += f" and {len(removed)} blob(s)"
    click.echo(msg)


@dataset.command("tag")
@click.argument("name")
@click.option("--add", "add", multiple=True, help="Tag to add (repeatable).")
@click.option("--remove", "remove", multiple=True, help="Tag to remove (repeatable).")
@pass_ctx
def dataset_tag(c: Context, name: str, add: tuple[str, ...], remove: tuple[str, ...]) -> None:
    """Add or remove a dataset's own tags."""
    if not add and not remove:
        raise click.UsageError("give --add TAG or --remove TAG")
    ds = c.catalog.dataset(name)
    lacking = [t for t in dict.fromkeys(remove) if t not in ds.tags and t not in add]
    tags = ds.tag(list(add), list(remove))
    for t in lacking:
        click.echo(f"dataset {name!r} has no tag {t!r}: nothing to remove")
    click.echo(" ".join(tags))


@dataset.command("meta")
@click.argument("name")
@click.argument("assignments", nargs=-1, required=True)
@pass_ctx
def dataset_meta(c: Context, name: str, assignments: tuple[str, ...]) -> None:
    """Set custom metadata: KEY=JSONVALUE (dotted keys nest)."""
    pairs = [parse_assignment(a) for a in assignments]
    emit(c.catalog.dataset(name).set_metadata(pairs))


# -- content of drafts -------------------------------------------------------------


@cli.command()
@click.argument("ref")
@click.argument("sources", nargs=-1, required=True, type=click.Path())
@click.option("--to", "to", default="", help="Folder in the dataset (default: root).")
@click.option(
    "--follow-symlinks",
    is_flag=True,
    help="Follow symlinks that point inside the source (others stay symlinks).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def add(
    c: Context, ref: str, sources: tuple[str, ...], to: str, follow_symlinks: bool, as_json: bool
) -> None:
    """Copy local files and folders into a draft; symlinks are stored as symlinks."""
    total = sum(_size_of(Path(s)) for s in sources) if sys.stderr.isatty() else None

    def warn(line: str) -> None:
        click.echo(f"dlfs: warning: {line}", err=True)

    with progress_bar("add", total) as bar:
        result = c.catalog.add(
            ref, list(sources), to, bar, follow_symlinks=follow_symlinks, warn=warn
        )
    if as_json:
        emit({"files": result.files, "bytes": result.bytes, "replaced": result.replaced})
    else:
        click.echo(
            f"added {result.files} file(s), {human_size(result.bytes)}"
            + (f" ({result.replaced} replaced)" if result.replaced else "")
        )


def _size_of(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


@cli.command()
@click.argument("ref")
@click.argument("paths", nargs=-1, required=True)
@click.option("-p", "--parents", is_flag=True, help="Make parents; no error if it exists.")
@pass_ctx
def mkdir(c: Context, ref: str, paths: tuple[str, ...], parents: bool) -> None:
    """Make folders in a draft."""
    c.catalog.mkdir(ref, list(paths), parents)


@cli.command()
@click.argument("ref")
@click.argument("paths", nargs=-1, required=True)
@pass_ctx
def mv(c: Context, ref: str, paths: tuple[str, ...]) -> None:
    """Move items in a draft: mv REF SRC... DST."""
    if len(paths) < 2:
        raise click.UsageError("give at least one SRC and a DST")
    c.catalog.mv(ref, list(paths[:-1]), paths[-1])


@cli.command()
@click.argument("ref")
@click.argument("paths", nargs=-1, required=True)
@click.option("--new-lineage", is_flag=True, help="Give the copies new lineage (merge keeps both).")
@pass_ctx
def cp(c: Context, ref: str, paths: tuple[str, ...], new_lineage: bool) -> None:
    """Copy items as pointers (no bytes copied): cp REF SRC... DST in a draft, or
    cp SRC_REF:PATH... DST_REF:FOLDER from any versions into a draft's folder."""
    if ":" in ref and paths and ":" in paths[-1]:
        for path in c.catalog.cp_into([ref, *paths[:-1]], paths[-1], new_lineage):
            click.echo(f"copied {path}")
        return
    if len(paths) < 2:
        raise click.UsageError("give at least one SRC and a DST")
    c.catalog.cp(ref, list(paths[:-1]), paths[-1], new_lineage)


@cli.command()
@click.argument("ref")
@click.argument("paths", nargs=-1, required=True)
@click.option("-r", "--recursive", is_flag=True, help="Remove folders and their contents.")
@pass_ctx
def rm(c: Context, ref: str, paths: tuple[str, ...], recursive: bool) -> None:
    """Remove files (and folders with -r) from a draft."""
    c.catalog.rm(ref, list(paths), recursive)


@cli.command()
@click.argument("ref")
@click.argument("path")
@click.option("--set", "assignments", multiple=True, help="KEY=JSONVALUE (drafts only).")
@click.option(
    "--annotations",
    type=click.Path(exists=True, dir_okay=False),
    help="Replace the annotations with this JSON list (drafts only).",
)
@pass_ctx
def meta(
    c: Context, ref: str, path: str, assignments: tuple[str, ...], annotations: str | None
) -> None:
    """Show (or, on a draft, set) a file's metadata and annotations."""
    if assignments or annotations:
        pairs = [parse_assignment(a) for a in assignments]
        ann = None
        if annotations:
            ann = jsonvalues.read_file(
                annotations, f"annotations file {annotations}", jsonvalues.MAX_ANNOTATIONS
            )
        item = c.catalog.set_meta(ref, path, pairs, ann)
    else:
        item = c.catalog.item(ref, path)
    emit(item.to_json())


# -- versions ---------------------------------------------------------------------


@cli.command()
@click.argument("ref")
@click.option("--tag", "tags", multiple=True, help="A user tag (repeatable).")
@click.option("--name", default=None, help="A name for the version.")
@click.option("--comment", default=None, help="A comment on the published version.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def publish(
    c: Context,
    ref: str,
    tags: tuple[str, ...],
    name: str | None,
    comment: str | None,
    as_json: bool,
) -> None:
    """Publish a draft: immutable, new id, next vN tag and latest."""
    info = c.catalog.publish(ref, list(tags), name, comment).info()
    if as_json:
        emit(info)
    else:
        click.echo(f"published {version_line(info)}")


@cli.command()
@click.argument("name")
@click.option("--publish-name", default=None, help="Name of the published version.")
@click.option("--child-name", default=None, help="Name of the new draft (default Current).")
@click.option("--child-metadata", default=None, help="JSON object for the new draft.")
@click.option("--comment", default=None, help="Comment on the published version.")
@click.option("--child-comment", default="", help="Comment on the new draft.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def snapshot(
    c: Context,
    name: str,
    publish_name: str | None,
    child_name: str | None,
    child_metadata: str | None,
    comment: str | None,
    child_comment: str,
    as_json: bool,
) -> None:
    """Publish the draft of NAME and start a child draft in its place.

    The published version gets a new id; both ids are printed.
    """
    meta_value = None if child_metadata is None else parse_json(child_metadata, "--child-metadata")
    pub, child = c.catalog.snapshot(
        name, publish_name, child_name, meta_value, comment, child_comment
    )
    info = {"published": pub.info(), "draft": child.info()}
    if as_json:
        emit({**info["published"], "child": info["draft"]})
    else:
        click.echo(f"published {version_line(info['published'])}")
        click.echo(f"draft     {version_line(info['draft'])}")


@cli.group()
def version() -> None:
    """Create, list and delete versions."""


@version.command("create")
@click.argument("name")
@click.option("--from", "parents", multiple=True, help="A published parent ref (repeatable).")
@click.option("--name", "version_name", default=None, help="A name for the version.")
@click.option("--exist-ok", is_flag=True, help="Return the version of that name if it exists.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def version_create(
    c: Context,
    name: str,
    parents: tuple[str, ...],
    version_name: str | None,
    exist_ok: bool,
    as_json: bool,
) -> None:
    """Make a draft: a child of --from versions, or an empty root version."""
    info = c.catalog.create_version(name, list(parents), version_name, exist_ok).info()
    if as_json:
        emit(info)
    else:
        click.echo(f"draft {version_line(info)}")


@version.command("list")
@click.argument("name")
@click.option("--published", is_flag=True, help="Only published versions.")
@click.option("--drafts", is_flag=True, help="Only drafts.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def version_list(c: Context, name: str, published: bool, drafts: bool, as_json: bool) -> None:
    """List the versions of a dataset, oldest first."""
    infos = [v.info() for v in c.catalog.dataset(name).versions(published, drafts)]
    if as_json:
        emit(infos)
        return
    rows = [
        [
            i["id"],
            i["state"],
            ",".join(i["tags"]) or "-",
            i["name"] or "-",
            str(i["files"]),
            human_size(i["bytes"]),
            i["published_at"] or i["created_at"],
        ]
        for i in infos
    ]
    table(rows, ["ID", "STATE", "TAGS", "NAME", "FILES", "SIZE", "TIME"])


@version.command("delete")
@click.argument("ref")
@pass_ctx
def version_delete(c: Context, ref: str) -> None:
    """Delete a draft (published versions cannot be deleted)."""
    c.catalog.delete_version(ref)
    click.echo(f"deleted {ref}")


@cli.command()
@click.argument("ref")
@click.argument("tags", nargs=-1, required=True)
@click.option("--force", is_flag=True, help="Move tags that name another version.")
@pass_ctx
def tag(c: Context, ref: str, tags: tuple[str, ...], force: bool) -> None:
    """Tag a published version."""
    click.echo(" ".join(c.catalog.tag(ref, list(tags), force)))


@cli.command()
@click.argument("name")
@click.argument("tag")
@pass_ctx
def untag(c: Context, name: str, tag: str) -> None:
    """Remove a user tag."""
    c.catalog.untag(name, tag)


@cli.command()
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def log(c: Context, name: str, as_json: bool) -> None:
    """The history of a dataset, newest first, with parents."""
    infos = c.catalog.log(name)
    if as_json:
        emit(infos)
        return
    for i in reversed(infos):
        click.echo(f"{i['state']:9} {i['id']}  {','.join(i['tags']) or '-'}")
        click.echo(f"          name: {i['name'] or '-'}   files: {i['files']}")
        click.echo(f"          time: {i['published_at'] or i['created_at']}")
        if i["parents"]:
            click.echo(f"          parents: {' '.join(i['parents'])}")
        if i["comment"]:
            click.echo(f"          comment: {i['comment']}")


# -- reading ------------------------------------------------------------------------


@cli.command()
@click.argument("ref")
@click.argument("path", default="")
@click.option("-l", "long", is_flag=True, help="Long listing: size, time, item.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def ls(c: Context, ref: str, path: str, long: bool, as_json: bool) -> None:
    """List a folder of a version."""
    entries = c.catalog.ls(ref, path)
    if as_json:
        emit([e.to_json() for e in entries])
        return
    for e in entries:
        name = e.name + ("/" if e.is_dir else "")
        if long:
            from datetime import UTC, datetime

            when = datetime.fromtimestamp(e.mtime, UTC).strftime("%Y-%m-%d %H:%M")
            kind = "d" if e.is_dir else "l" if e.link is not None else "-"
            target = "" if e.link is None else f" -> {e.link}"
            click.echo(
                f"{kind} {e.mode:04o} {e.size:>12} {when} {(e.blob or '-')[:12]:12} {name}{target}"
            )
        else:
            click.echo(name)


@cli.command()
@click.argument("ref")
@click.argument("path")
@pass_ctx
def cat(c: Context, ref: str, path: str) -> None:
    """Write a file's bytes to stdout (verified; corrupt bytes are an error)."""
    out = sys.stdout.buffer
    for chunk in c.catalog.cat(ref, path):
        out.write(chunk)
    out.flush()


# -- maintenance --------------------------------------------------------------------


@cli.command()
@click.option(
    "--remote",
    metavar="s3://BUCKET/PREFIX",
    help="Collect a push remote instead: blobs and folders no pushed version reaches.",
)
@click.option(
    "--grace",
    type=float,
    default=24.0,
    show_default=True,
    metavar="HOURS",
    help="With --remote: keep unreachable objects younger than this.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def gc(c: Context, remote: str | None, grace: float, as_json: bool) -> None:
    """Remove catalog rows and blobs that no version uses.

    With --remote, remove the blobs and folder objects of a push remote that no
    version pushed there reaches (older than --grace hours; never while a push to it
    is in progress). Only pushed versions count: do not collect a prefix that is also
    a dataset's S3 storage.
    """
    if remote is None:
        stats = c.catalog.gc()
        click.echo(f"removed {stats['blobs_removed']} blob(s)")
        return
    result = c.catalog.gc_remote(remote, grace)
    if as_json:
        emit(result.to_json())
        return
    click.echo(
        f"removed {result.blobs_removed} blob(s) and {result.folders_removed} folder(s),"
        f" {result.bytes_freed} bytes, from {result.url} ({result.versions} version(s) kept"
        f" whole; {result.kept_young} unreachable object(s) younger than {grace:g} h kept)"
    )


@cli.command()
@pass_ctx
def fsck(c: Context) -> None:
    """Verify every local blob against its hash."""
    with progress_bar("fsck") as bar:
        problems = c.catalog.fsck(bar)
    for p in problems:
        click.echo(p)
    if problems:
        fail(f"{len(problems)} problem(s) found")
    click.echo("ok")


def fail(message: str) -> NoReturn:
    """Print ``dlfs: error: message`` and exit 1."""
    click.echo(f"dlfs: error: {message}", err=True)
    sys.exit(1)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``dlfs`` command."""
    try:
        cli.main(args=argv, prog_name="dlfs", standalone_mode=False)
    except click.exceptions.Abort:
        fail("aborted")
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except DlfsError as exc:
        fail(str(exc))
    except (OSError, UnicodeError) as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        click.echo("dlfs: interrupted", err=True)
        sys.exit(130)

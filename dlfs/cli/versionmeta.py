"""``dlfs version meta``, ``dlfs version comment``, ``dlfs version show``: parsing and
printing over :meth:`dlfs.api.Catalog.set_version_metadata` and friends (the rules are
in :mod:`dlfs.versionmeta`)."""

from __future__ import annotations

import json

import click

from dlfs.cli.core import Context, emit, pass_ctx, version, version_line
from dlfs.names import parse_assignment


@version.command("meta")
@click.argument("ref")
@click.argument("assignments", nargs=-1, metavar="[KEY=JSONVALUE]...")
@click.option("--remove", "remove", multiple=True, metavar="KEY", help="Remove a key (repeatable).")
@pass_ctx
def version_meta(
    c: Context, ref: str, assignments: tuple[str, ...], remove: tuple[str, ...]
) -> None:
    """Show, or set, the metadata of version REF, draft or published.

    KEY=JSONVALUE sets a key (dotted keys nest: a.b=1); the content and id of the
    version do not change, and every change is recorded (dlfs version show). A bare
    NAME means NAME@latest. Example: dlfs version meta cats@v1
    mask_labels='{"0": "background", "255": "cat"}'
    """
    if assignments or remove:
        pairs = [parse_assignment(a) for a in assignments]
        emit(c.catalog.set_version_metadata(ref, pairs, list(remove)))
    else:
        emit(c.catalog.version(ref).metadata)


@version.command("comment")
@click.argument("ref")
@click.argument("text")
@pass_ctx
def version_comment(c: Context, ref: str, text: str) -> None:
    """Replace the comment of version REF, draft or published (recorded)."""
    c.catalog.set_version_comment(ref, text)
    click.echo(f"comment of {c.catalog.version(ref).ref} set")


@version.command("show")
@click.argument("ref")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def version_show(c: Context, ref: str, as_json: bool) -> None:
    """Show version REF: ids, tags, files, metadata, comment and their changes."""
    v = c.catalog.version(ref)
    info = {**v.info(), "changes": c.catalog.version_changes(v.ref)}
    if as_json:
        emit(info)
        return
    click.echo(version_line(info))
    click.echo(
        f"files={info['files']}  bytes={info['bytes']}  parents={','.join(info['parents']) or '-'}"
    )
    click.echo(f"comment: {info['comment']}")
    click.echo(f"metadata: {json.dumps(info['metadata'], ensure_ascii=False, sort_keys=True)}")
    for ch in info["changes"]:
        what = (
            f"comment {json.dumps(ch['comment'], ensure_ascii=False)}"
            if "comment" in ch
            else " ".join(
                [
                    f"{k}={json.dumps(val, ensure_ascii=False)}"
                    for k, val in ch.get("set", {}).items()
                ]
                + [f"-{k}" for k in ch.get("remove", [])]
            )
        )
        click.echo(f"  {ch['at']}  {ch['who']}  {what}")

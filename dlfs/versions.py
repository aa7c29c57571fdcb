"""Datasets, versions, drafts, publish, snapshots, tags, and ref resolution.

The lifecycle (ClearML's): a dataset starts with one empty draft; ``publish`` freezes a
draft into an immutable version with a new globally unique id, the next auto tag
``vN`` and ``latest``; children are drafts made from published versions only;
``snapshot`` publishes the draft and puts a child draft in its place. Only drafts can
be deleted.

Refs (Starwhale's): ``NAME@SPEC`` where SPEC is tried as a full id, a tag, a version
name, ``draft``, then a unique id prefix of 4 or more characters.

Every function here runs inside the caller's transaction and raises a
:class:`dlfs.errors.DlfsError` before changing anything when the input is bad.
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime
from typing import Any

from dlfs import jsonvalues, projects
from dlfs.catalog import CatalogDB, Row
from dlfs.errors import (
    AlreadyExists,
    Ambiguous,
    Conflict,
    InvalidInput,
    NotEmpty,
    NotFound,
    ReadOnly,
)
from dlfs.labelindex import index_labels
from dlfs.names import (
    DEFAULT_PROJECT,
    check_dataset_name,
    check_user_tag,
    is_auto_tag,
    project_of,
)
from dlfs.objects import DIR, VERSION_ID_RE, new_version_id
from dlfs.trees import build_tree, ensure_empty_tree, freeze, totals
from dlfs.versionmeta import check_comment

PREFIX_MIN = 4
CURRENT = "Current"
"""The name of a dataset's first draft and of a snapshot's new draft (ClearML's)."""
_PREFIX_RE = re.compile(r"^[a-z2-7]+$")


# -- refs ---------------------------------------------------------------------------


def parse_ref(ref: str) -> tuple[str, str | None]:
    """Split ``NAME@SPEC`` into ``(NAME, SPEC)``; a bare name gives ``(NAME, None)``."""
    name, sep, spec = ref.partition("@")
    if not name:
        raise InvalidInput(f"invalid ref {ref!r}: expected NAME or NAME@SPEC")
    if sep and not spec:
        raise InvalidInput(f"invalid ref {ref!r}: nothing after '@'")
    return name, (spec if sep else None)


def dataset_row(db: CatalogDB, name: str) -> Row:
    """The dataset named ``name`` (``PROJECT/NAME``; ``default/NAME`` is ``NAME``);
    :class:`NotFound` names the known ones if it is missing."""
    row = db.dataset_by_name(name.removeprefix(f"{DEFAULT_PROJECT}/"))
    if row is None:
        known = db.dataset_names()
        hint = f" (datasets: {', '.join(known[:10])})" if known else " (the catalog is empty)"
        raise NotFound(f"no dataset named {name!r}{hint}")
    return row


def storage_of(db: CatalogDB, dataset: int) -> str:
    """The storage URL of a dataset (by numeric id): where its blobs live;
    :class:`NotFound` once the dataset was deleted."""
    row = db.dataset_by_id(dataset)
    if row is None:
        raise NotFound("the dataset was deleted")
    return str(row["storage"])


def _describe(row: Row, db: CatalogDB) -> str:
    tags = db.tags_of_version(row["id"])
    bits = [row["state"]]
    if row["name"]:
        bits.append(f"name {row['name']!r}")
    if tags:
        bits.append("tags " + ",".join(tags))
    return f"{row['id']} ({'; '.join(bits)})"


def resolve(db: CatalogDB, ref: str, write: bool = False) -> Row:
    """The version row a ref names.

    A bare ``NAME`` means ``NAME@latest`` for reading and ``NAME@draft`` for writing;
    ``write`` (a ref to change) is :class:`ReadOnly` in a read-only project.
    """
    name, spec = parse_ref(ref)
    ds = dataset_row(db, name)
    if write:
        projects.check_writable(db, ds["name"])
    if spec is None:
        spec = "draft" if write else "latest"
    if VERSION_ID_RE.match(spec):
        row = db.version_get(spec)
        if row is not None and row["dataset"] == ds["id"]:
            return row
    tagged = db.tag_get(ds["id"], spec)
    if tagged is not None:
        row = db.version_get(tagged)
        assert row is not None
        return row
    named = db.versions_by_name(ds["id"], spec)
    if named:
        return named[0]
    if spec == "draft":
        drafts = db.versions_of(ds["id"], "draft")
        if len(drafts) == 1:
            return drafts[0]
        if not drafts:
            raise NotFound(
                f"dataset {name!r} has no draft: make one with"
                f" 'dlfs version create {name} --from {name}@latest'"
            )
        listing = "; ".join(_describe(d, db) for d in drafts)
        raise Ambiguous(f"dataset {name!r} has {len(drafts)} drafts, name one by id: {listing}")
    if len(spec) >= PREFIX_MIN and _PREFIX_RE.match(spec):
        matches = db.versions_by_prefix(ds["id"], spec)
        if len(matches) == 1:
            return matches[0]
        if matches:
            listing = "; ".join(_describe(m, db) for m in matches)
            raise Ambiguous(f"ref {ref!r} is ambiguous, it matches: {listing}")
    if spec == "latest":
        raise NotFound(
            f"dataset {name!r} has no published version yet: publish its draft"
            f" ('dlfs publish {name}') or read {name}@draft"
        )
    raise NotFound(f"unknown ref {ref!r}: no version id, tag, name or id prefix matches")


def resolve_draft(db: CatalogDB, ref: str) -> Row:
    """The draft a ref names; a published version is :class:`ReadOnly`."""
    row = resolve(db, ref, write=True)
    if row["state"] != "draft":
        raise ReadOnly(
            f"{ref} is published and read-only; edit a child draft"
            f" ('dlfs version create {parse_ref(ref)[0]} --from {ref}')"
        )
    return row


def resolve_published(db: CatalogDB, ref: str) -> Row:
    """The published version a ref names; a draft is a :class:`Conflict`."""
    row = resolve(db, ref)
    if row["state"] != "published":
        raise Conflict(f"{ref} is a draft; publish it first ('dlfs publish {ref}')")
    return row


# -- datasets -----------------------------------------------------------------------


def create_dataset(
    db: CatalogDB,
    name: str,
    description: str = "",
    tags: list[str] | None = None,
    labels: Any = None,
    storage: str = "local",
    exist_ok: bool = False,
    kind: str = "plain",
    sources: list[dict[str, Any]] | None = None,
    root: str | None = None,
) -> tuple[Row, bool]:
    """Create a dataset with one draft (over ``root``, empty by default).

    Returns ``(dataset row, created)``; with ``exist_ok`` an existing dataset is
    returned unchanged.
    """
    name = check_dataset_name(name)
    existing = db.dataset_by_name(name)
    if existing is not None:
        if exist_ok:
            return existing, False
        raise AlreadyExists(f"dataset {name!r} already exists (use --exist-ok to reuse it)")
    projects.admit(db, name)
    labels_text = None if labels is None else jsonvalues.labels_text(labels)
    dataset_tags = [_check_dataset_tag(t) for t in (tags or [])]
    ds = db.dataset_insert(
        name,
        kind,
        description,
        labels_text,
        storage,
        "{}",
        json.dumps(sorted(set(dataset_tags))),
        json.dumps(sources or []),
    )
    start = root if root is not None else ensure_empty_tree(db)
    db.version_insert(new_version_id(), ds, "draft", CURRENT, start)
    row = db.dataset_by_id(ds)
    assert row is not None
    return row, True


def _check_dataset_tag(tag: str) -> str:
    if not tag or "\0" in tag or len(tag) > 128:
        raise InvalidInput(f"invalid dataset tag {tag!r}")
    return tag


def dataset_tag(db: CatalogDB, name: str, add: list[str], remove: list[str]) -> list[str]:
    """Add and remove a dataset's own tags; return the new list. Removing a tag the
    dataset does not have changes nothing."""
    ds = dataset_row(db, name)
    tags = set(json.loads(ds["tags"]))
    for tag in [*add, *remove]:
        if not isinstance(tag, str):
            raise InvalidInput(f"invalid dataset tag {tag!r}: tags are strings")
    tags.difference_update(remove)
    tags.update(_check_dataset_tag(t) for t in add)
    result = sorted(tags)
    db.dataset_update(ds["id"], tags=json.dumps(result))
    return result


def dataset_meta(db: CatalogDB, name: str, assignments: list[tuple[str, Any]]) -> dict[str, Any]:
    """Set custom metadata keys of a dataset (dotted keys nest); return the result."""
    from dlfs.names import check_assignments, set_dotted

    pairs = check_assignments(assignments, "dataset metadata")
    ds = dataset_row(db, name)
    meta = json.loads(ds["metadata"])
    for key, value in pairs:
        set_dotted(meta, key, value)
    db.dataset_update(ds["id"], metadata=jsonvalues.metadata_text(meta))
    return dict(meta)


def delete_dataset(db: CatalogDB, name: str, all_versions: bool, force: bool) -> int:
    """Delete a dataset; return its numeric id.

    By default only an empty dataset (no published version, empty drafts) goes;
    ``all_versions`` also deletes non-empty drafts; ``force`` also published versions.
    """
    ds = dataset_row(db, name)
    projects.check_writable(db, ds["name"])
    published = db.versions_of(ds["id"], "published")
    drafts = db.versions_of(ds["id"], "draft")
    if published and not force:
        raise Conflict(
            f"dataset {name!r} has {len(published)} published version(s);"
            " published versions are kept unless you add --force"
        )
    if not all_versions and not force:
        for d in drafts:
            if totals(db, d["root"])[0] or db.entry_count(d["root"]):
                raise NotEmpty(
                    f"dataset {name!r} is not empty; add --all-versions to delete its drafts"
                )
    children = {c for v in published for c in db.version_children(v["id"])} - {
        v["id"] for v in published + drafts
    }
    if children:
        raise Conflict(
            f"dataset {name!r} has versions that other datasets' versions derive from"
            f" ({len(children)}); delete those first"
        )
    db.dataset_delete(ds["id"])
    return int(ds["id"])


# -- versions -----------------------------------------------------------------------


def _check_version_name(db: CatalogDB, dataset: int, name: str | None) -> None:
    if name is None:
        return
    if not name or len(name) > 200 or "\0" in name:
        raise InvalidInput(f"invalid version name {name!r}")
    if VERSION_ID_RE.match(name) or is_auto_tag(name) or name == "draft":
        raise InvalidInput(f"version name {name!r} would read as an id or a reserved tag")
    if db.versions_by_name(dataset, name):
        raise AlreadyExists(f"a version named {name!r} already exists")


def _check_free_tags(db: CatalogDB, dataset: int, tags: list[str], vid: str | None) -> None:
    for tag in tags:
        check_user_tag(tag)
        other = db.tag_get(dataset, tag)
        if other is not None and other != vid:
            raise AlreadyExists(
                f"tag {tag!r} already names version {other};"
                " move it with 'dlfs tag REF TAG --force' or 'dlfs untag'"
            )


def publish(
    db: CatalogDB,
    draft: Row,
    tags: list[str] | None = None,
    name: str | None = None,
    comment: str | None = None,
) -> str:
    """Freeze a draft into a published version; return its new id.

    The version gets a new globally unique id, the next ``vN``, ``latest`` and the user
    ``tags``; a draft named ``Current`` gives that name up unless ``name`` is given.
    Cost: O(changed folders) (each frozen, and its labels indexed:
    :mod:`dlfs.labelindex`).
    """
    if draft["state"] != "draft":
        raise Conflict(f"version {draft['id']} is already published; versions are immutable")
    dataset = draft["dataset"]
    if comment is not None:
        check_comment(comment)
    tags = list(dict.fromkeys(tags or []))
    _check_free_tags(db, dataset, tags, None)
    if name is not None and name != draft["name"]:
        _check_version_name(db, dataset, name)
    root, _files, _bytes = freeze(db, draft["root"])
    index_labels(db, root)  # the new folders only: the others are indexed already
    vid = new_version_id()
    db.version_rekey(draft["id"], vid)
    fields: dict[str, Any] = {"state": "published", "root": root, "published_at": time.time()}
    if name is not None:
        fields["name"] = name
    elif draft["name"] == CURRENT:
        fields["name"] = None  # "Current" names the working draft; the next one takes it
    if comment is not None:
        fields["comment"] = comment
    db.version_update(vid, **fields)
    db.tag_set(dataset, f"v{db.dataset_take_auto_tag(dataset)}", vid, auto=True)
    db.tag_set(dataset, "latest", vid, auto=True)
    for tag in tags:
        db.tag_set(dataset, tag, vid, auto=False)
    return vid


def create_version(
    db: CatalogDB,
    dataset: Row,
    parents: list[Row],
    name: str | None = None,
    exist_ok: bool = False,
    metadata: dict[str, Any] | None = None,
    comment: str = "",
) -> tuple[str, bool]:
    """Make a draft: a child of published ``parents``, or an empty root version.

    With several parents the child's tree is their union, later parents winning on a
    path both have. Returns ``(version id, created)``.
    """
    projects.check_writable(db, dataset["name"])
    check_comment(comment)
    if name is not None:
        existing = db.versions_by_name(dataset["id"], name)
        if existing:
            if exist_ok:
                return existing[0]["id"], False
            raise AlreadyExists(
                f"dataset {dataset['name']!r} already has a version named {name!r}"
                " (use --exist-ok to reuse it)"
            )
        _check_version_name(db, dataset["id"], name)
    for parent in parents:
        if parent["state"] != "published":
            raise Conflict(
                f"cannot create a child of draft {parent['id']}: children are made from"
                " published versions only (publish it first)"
            )
        if parent["dataset"] != dataset["id"]:
            other = db.dataset_by_id(parent["dataset"])
            assert other is not None
            if other["storage"] != dataset["storage"]:
                raise Conflict(
                    f"cannot derive from {other['name']!r}: its binaries are in"
                    f" {other['storage']}, this dataset's in {dataset['storage']}"
                )
    if not parents:
        root = ensure_empty_tree(db)
    else:
        root = parents[0]["root"]
        for parent in parents[1:]:
            root = overlay(db, root, parent["root"])
    vid = new_version_id()
    db.version_insert(
        vid,
        dataset["id"],
        "draft",
        name,
        root,
        metadata=jsonvalues.metadata_text(metadata or {}, "version metadata"),
        comment=comment,
        parents=[p["id"] for p in parents],
    )
    return vid, True


def overlay(db: CatalogDB, base: str, top: str) -> str:
    """The union of two immutable trees, ``top`` winning where both have a path."""
    if base == top:
        return base
    merged = {e[0]: e for e in db.raw_entries(base)}
    for name, kind, ref, size in db.raw_entries(top):
        old = merged.get(name)
        if old is not None and old[1] == DIR and kind == DIR:
            merged[name] = (name, DIR, overlay(db, old[2], ref), 0)
        else:
            merged[name] = (name, kind, ref, size)
    return build_tree(db, list(merged.values()), db.tree_attrs(top))


def snapshot(
    db: CatalogDB,
    dataset: Row,
    publish_name: str | None = None,
    child_name: str | None = None,
    child_metadata: dict[str, Any] | None = None,
    comment: str | None = None,
    child_comment: str = "",
) -> tuple[str, str]:
    """Publish the dataset's draft and put a child draft in its place.

    Returns ``(published id, child id)``: the draft's id is not kept (see ``publish``).
    """
    draft = resolve_draft(db, f"{dataset['name']}@draft")
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    published = publish(db, draft, name=publish_name or f"snapshot {stamp}", comment=comment)
    row = db.version_get(published)
    assert row is not None
    child, _ = create_version(
        db,
        dataset,
        [row],
        name=child_name or CURRENT,
        metadata=child_metadata,
        comment=child_comment,
    )
    return published, child


def delete_version(db: CatalogDB, row: Row) -> None:
    """Delete a draft; published versions are immutable and stay."""
    if row["state"] != "draft":
        raise ReadOnly(f"version {row['id']} is published and cannot be deleted; only drafts can")
    db.version_delete(row["id"])


def tag_version(db: CatalogDB, row: Row, tags: list[str], force: bool = False) -> list[str]:
    """Add user tags to a published version (``force`` moves them from another)."""
    if row["state"] != "published":
        raise Conflict(f"version {row['id']} is a draft: tags name published versions only")
    if not force:
        _check_free_tags(db, row["dataset"], tags, row["id"])
    for tag in tags:
        check_user_tag(tag)
    for tag in tags:
        db.tag_set(row["dataset"], tag, row["id"], auto=False)
    return db.tags_of_version(row["id"])


def untag(db: CatalogDB, name: str, tag: str) -> None:
    """Remove a user tag from a dataset's version."""
    ds = dataset_row(db, name)
    if is_auto_tag(tag):
        raise InvalidInput(f"tag {tag!r} is automatic and cannot be removed")
    if db.tag_get(ds["id"], tag) is None:
        raise NotFound(f"dataset {name!r} has no tag {tag!r}")
    db.tag_delete(ds["id"], tag)


# -- descriptions (what the CLI prints and --json shows) ----------------------------


def version_info(db: CatalogDB, row: Row, dataset_name: str | None = None) -> dict[str, Any]:
    """A JSON-ready description of a version."""
    if dataset_name is None:
        ds = db.dataset_by_id(row["dataset"])
        dataset_name = ds["name"] if ds else "?"
    files, nbytes = totals(db, row["root"])
    return {
        "id": row["id"],
        "dataset": dataset_name,
        "name": row["name"],
        "state": row["state"],
        "tags": db.tags_of_version(row["id"]),
        "parents": db.version_parents(row["id"]),
        "files": files,
        "bytes": nbytes,
        "metadata": json.loads(row["metadata"]),
        "comment": row["comment"],
        "created_at": _iso(row["created_at"]),
        "published_at": _iso(row["published_at"]),
    }


def dataset_fields(ds: Row) -> dict[str, Any]:
    """The user-facing fields of a dataset row, JSON decoded (``created_at`` as a
    timestamp)."""
    return {
        "name": ds["name"],
        "kind": ds["kind"],
        "description": ds["description"],
        "tags": json.loads(ds["tags"]),
        "labels": None if ds["labels"] is None else json.loads(ds["labels"]),
        "storage": ds["storage"],
        "metadata": json.loads(ds["metadata"]),
        "created_at": ds["created_at"],
    }


def dataset_info(db: CatalogDB, ds: Row, detail: bool = False) -> dict[str, Any]:
    """A JSON-ready description of a dataset (with its versions when ``detail``)."""
    versions = db.versions_of(ds["id"])
    latest = db.tag_get(ds["id"], "latest")
    current = db.version_get(latest) if latest else (versions[-1] if versions else None)
    files, nbytes = totals(db, current["root"]) if current else (0, 0)
    info: dict[str, Any] = {
        "id": ds["id"],
        **dataset_fields(ds),
        "project": project_of(ds["name"]),
        "sources": json.loads(ds["sources"]),
        "created_at": _iso(ds["created_at"]),
        "latest": latest,
        "versions": len(versions),
        "published": sum(1 for v in versions if v["state"] == "published"),
        "drafts": sum(1 for v in versions if v["state"] == "draft"),
        "files": files,
        "bytes": nbytes,
    }
    if detail:
        info["version_list"] = [version_info(db, v, ds["name"]) for v in versions]
    return info


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")

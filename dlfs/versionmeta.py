"""A version's metadata and comment: set on any version, draft or published, recorded.

As in ClearML, a version's metadata (its mask-label map, a review note, a score) and its
comment describe the version; they are not its content. They may change after
publishing without changing the version's files, tree or id, so published content
stays immutable. Each change is recorded with who made it and when
(``version_changes``), shown by ``dlfs version show``, and carried by push and pull
with the version (:func:`history` / :func:`adopt`).

Conventions: ``mask_labels`` (ClearML's mask-label map) maps a mask pixel value to the
label it stands for: keys are one value ``"255"`` or an RGB(A) value ``"255,0,0"``
(each 0-255), values a label name or a list of them. It is checked when set.

Every function runs inside the caller's transaction and raises a
:class:`dlfs.errors.DlfsError` before changing anything when the input is bad.
"""

from __future__ import annotations

import getpass
import json
import os
import time
from datetime import UTC, datetime
from typing import Any

from dlfs import jsonvalues
from dlfs.catalog import CatalogDB, Row
from dlfs.errors import InvalidInput
from dlfs.names import check_assignments, remove_dotted, set_dotted

MASK_LABELS = "mask_labels"
"""The metadata key of ClearML's mask-label map (see the module doc)."""

MAX_COMMENT = 64 << 10
"""The longest comment of a version: 64 KiB of UTF-8."""


def who() -> str:
    """The user a change is recorded under: the login name, else ``uid N``."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no $USER
        return f"uid {os.getuid()}"


def check_mask_labels(value: Any) -> None:
    """:class:`InvalidInput` unless ``value`` is a mask-label map (module doc)."""
    if not isinstance(value, dict):
        raise InvalidInput(f"{MASK_LABELS} must be a JSON object of pixel value -> label")
    for key, labels in value.items():
        parts = key.split(",")
        if len(parts) not in (1, 3, 4) or not all(
            p.strip().isdigit() and int(p) <= 255 for p in parts
        ):
            raise InvalidInput(
                f"{MASK_LABELS}: key {key!r} is not a pixel value ('255' or '255,0,0')"
            )
        names = labels if isinstance(labels, list) else [labels]
        if not names or not all(isinstance(n, str) and n for n in names):
            raise InvalidInput(
                f"{MASK_LABELS}: value of {key!r} must be a label name or a list of them"
            )


def set_metadata(
    db: CatalogDB, row: Row, assignments: Any = (), remove: Any = ()
) -> dict[str, Any]:
    """Set (dotted) keys of a version's metadata and remove others; return all of it.

    Removing a key that is not there changes nothing. A change is recorded only when
    the metadata differs afterwards.
    """
    pairs = check_assignments(assignments, "version metadata")
    if isinstance(remove, str) or not all(isinstance(k, str) and k for k in remove):
        raise InvalidInput("keys to remove must be a list of non-empty strings")
    meta = json.loads(row["metadata"])
    for key, value in pairs:
        if key == MASK_LABELS:
            check_mask_labels(value)
        set_dotted(meta, key, value)
    removed = [key for key in remove if remove_dotted(meta, key)]
    text = jsonvalues.metadata_text(meta, "version metadata")
    if text != row["metadata"]:
        change: dict[str, Any] = {}
        if pairs:
            change["set"] = dict(pairs)
        if removed:
            change["remove"] = removed
        db.version_update(row["id"], metadata=text)
        _record(db, row["id"], change)
    return dict(json.loads(text))


def check_comment(comment: Any) -> str:
    """``comment`` if it is a valid version comment, else :class:`InvalidInput`."""
    if not isinstance(comment, str) or "\0" in comment:
        raise InvalidInput("a version comment must be text without NUL characters")
    if len(comment.encode("utf-8", "surrogatepass")) > MAX_COMMENT:
        raise InvalidInput(f"a version comment is limited to {MAX_COMMENT} bytes")
    return comment


def set_comment(db: CatalogDB, row: Row, comment: Any) -> str:
    """Replace a version's comment; return it."""
    check_comment(comment)
    if comment != row["comment"]:
        db.version_update(row["id"], comment=comment)
        _record(db, row["id"], {"comment": comment})
    return comment


def _record(db: CatalogDB, vid: str, change: dict[str, Any]) -> None:
    text = jsonvalues.canonical_text(change, "a change", 4 * jsonvalues.MAX_METADATA)
    db.version_change_add(vid, time.time(), who(), text)


def changes(db: CatalogDB, vid: str) -> list[dict[str, Any]]:
    """The recorded changes of a version, oldest first: ``{"at", "who", ...}`` with
    ``set``/``remove`` (metadata) or ``comment``."""
    return [
        {"at": _iso(r["at"]), "who": r["who"], **json.loads(r["change"])}
        for r in db.version_changes(vid)
    ]


# -- push and pull ------------------------------------------------------------------


def history(db: CatalogDB, vid: str) -> list[list[Any]]:
    """The changes of a version as a version document carries them:
    ``[[at, who, change text], ...]``."""
    return [[r["at"], r["who"], r["change"]] for r in db.version_changes(vid)]


def adopt(db: CatalogDB, row: Row, doc_version: dict[str, Any]) -> bool:
    """Bring a pulled version document's metadata, comment and changes into version
    ``row`` (already here); return whether anything changed.

    The changes of both sides are kept (in time order); the metadata and comment are
    those of the side whose last change is newer. A document without ``history`` (an
    older dlfs pushed it) is only read for changes when this side has none.
    """
    theirs = [tuple(h) for h in doc_version.get("history", [])]
    ours = [tuple(h) for h in history(db, row["id"])]
    merged = sorted(set(ours) | set(theirs), key=lambda h: (h[0], h[1], h[2]))
    newer = theirs and (not ours or max(theirs)[0] > max(ours)[0])
    changed = False
    if merged != ours:
        db.version_changes_replace(row["id"], merged)
        changed = True
    if newer or (not ours and not theirs):
        fields = {
            k: doc_version[k]
            for k in ("metadata", "comment")
            if k in doc_version and doc_version[k] != row[k]
        }
        if fields:
            db.version_update(row["id"], **fields)
            changed = True
    return changed


def put_history(db: CatalogDB, vid: str, doc_version: dict[str, Any]) -> None:
    """Record the changes a pulled version document carries (a new version)."""
    db.version_changes_replace(vid, [tuple(h) for h in doc_version.get("history", [])])


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")

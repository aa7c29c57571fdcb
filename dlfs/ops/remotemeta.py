"""A pushed version's metadata, comment and their changes, which move after publish.

A version document never changes once pushed (it is written only if absent), but a
version's metadata and comment do (:mod:`dlfs.versionmeta`). Each push therefore
also merges them, after writing the document, into the version's *meta object*
(``.../versions/<id>.meta.json``, key in :func:`dlfs.ops.push.meta_key`): the
changes of both sides are kept, in time order, and the metadata and comment are
those of the side whose last change is newer, as a pull merges them into a catalog.
The write is conditional on the ETag read (or on nothing being there) and tried
again on a lost race, so concurrent pushes of one version from two catalogs lose no
change. A pull and a remote mount read the meta object over the document's own
values when it exists.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from dlfs.errors import Conflict, Corrupt
from dlfs.objects import canonical_json
from dlfs.ops import push

if TYPE_CHECKING:
    from dlfs.stores.s3 import S3Store

FIELDS = ("metadata", "comment", "history")


def merged(ours: dict[str, Any], theirs: dict[str, Any] | None) -> dict[str, Any]:
    """The meta object after merging version fields ``ours`` into ``theirs``."""
    history = [list(h) for h in ours.get("history") or []]
    mine: dict[str, Any] = {**{k: ours.get(k) for k in FIELDS}, "history": history}
    if theirs is None:
        return mine
    a = {tuple(h) for h in history}
    b = {tuple(h) for h in theirs.get("history") or []}
    changes = sorted(a | b, key=lambda h: (h[0], h[1], h[2]))
    newest = mine if max(a, default=(0,))[0] >= max(b, default=(0,))[0] else theirs
    return {
        "metadata": newest.get("metadata"),
        "comment": newest.get("comment"),
        "history": [list(h) for h in changes],
    }


def update(remote: S3Store, name: str, version: dict[str, Any]) -> None:
    """Merge a pushed version's metadata, comment and changes into its meta object."""
    key = push.meta_key(name, version["id"])
    for _ in range(push.TAG_RACES):
        found = remote.get_object_tagged(key)
        theirs, etag = (None, None) if found is None else (_parse(found[0], key), found[1])
        body = canonical_json(merged(version, theirs)).encode()
        if found is not None and body == found[0]:
            return
        if remote.put_object_if(key, body, etag):
            return
    raise Conflict(f"the metadata of {name}@{version['id']} keeps changing; push again")


def read(remote: S3Store, name: str, vid: str) -> dict[str, Any] | None:
    """The meta object of version ``vid`` (None when its pushes predate it)."""
    key = push.meta_key(name, vid)
    data = remote.get_object(key)
    return None if data is None else _parse(data, key)


def apply(version: dict[str, Any], meta: dict[str, Any] | None) -> dict[str, Any]:
    """A version document's version fields with the meta object's over them."""
    return version if meta is None else {**version, **{k: meta[k] for k in FIELDS}}


def _parse(data: bytes, key: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
        if not isinstance(value, dict) or not all(k in value for k in FIELDS):
            raise ValueError(key)
    except ValueError as exc:
        raise Corrupt(f"the version metadata object {key} is damaged") from exc
    return value

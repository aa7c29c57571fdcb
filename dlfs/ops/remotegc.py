"""``dlfs gc --remote URL``: remove what no version pushed to a remote reaches.

A remote only grows: blobs and folder objects are shared by versions and never
rewritten, and nobody deletes a version document. :func:`collect_remote` reads every
version document there (``datasets/<name>/versions/<id>.json.gz``, and
``projects/<project>/datasets/...``; each checked), and
removes the blobs (with their block manifests) and the folder objects that none of
them names, except those younger than the grace period (default
:data:`GRACE_HOURS`): objects a push wrote after this gc listed the versions.

A push in progress is never broken. Each push keeps a marker under ``pushes/`` while it
writes (:func:`dlfs.ops.push.pushing`); a gc writes its own marker (``gc.json``), then
refuses (:class:`Conflict`) while any push marker younger than the grace period (at
least an hour) is there, and a push refuses while a gc marker younger than
:data:`dlfs.ops.push.GC_MARKER_TTL` is there. Each side writes before it looks, so of a
push and a gc that start together at least one sees the other (S3 reads are strongly
consistent). A push killed without removing its marker holds gc off for the grace
period; a gc killed holds pushes off for an hour.

Only pushed versions count: a prefix that is also the storage of some catalog's S3
dataset (blobs of versions that were never pushed) must not be collected this way.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dlfs.errors import Conflict, InvalidInput
from dlfs.objects import canonical_json
from dlfs.ops import push

if TYPE_CHECKING:
    from dlfs.stores.s3 import S3Store

GRACE_HOURS = 24.0
"""Objects younger than this are kept even when no version reaches them."""


@dataclass
class RemoteGc:
    """What a remote gc did."""

    url: str
    versions: int = 0
    blobs_removed: int = 0
    folders_removed: int = 0
    bytes_freed: int = 0
    kept_young: int = 0

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def collect_remote(remote: S3Store, grace: float) -> RemoteGc:
    """Remove the unreachable blobs and folder objects of ``remote`` older than
    ``grace`` seconds (see the module docstring)."""
    if grace < 0:
        raise InvalidInput("the grace period cannot be negative")
    start = time.time()
    result = RemoteGc(remote.url)
    remote.put_object(push.GC_MARKER, canonical_json({"started_at": start}).encode())
    try:
        held = max(grace, push.GC_MARKER_TTL)
        busy = [k for k, _n, t in remote.objects(push.PUSHES) if start - t < held]
        if busy:
            raise Conflict(
                f"{len(busy)} push(es) to {remote.url} in progress ({busy[0]}): gc again"
                " later (a push marker older than the grace period, or an hour, is ignored)"
            )
        blobs: set[str] = set()
        folders: set[str] = set()
        documents = [*remote.objects("datasets/"), *remote.objects("projects/")]
        for key, _size, _mtime in documents:
            found = _version_document(key)
            if found is None:
                continue
            _head, records = push.fetch(remote, *found)
            for tag, fields in records:  # streamed; a damaged document stops the gc
                if tag == "b":
                    blobs.add(fields[0])
                elif tag == "t":
                    folders.add(fields[0])
            result.versions += 1
        cutoff = start - grace
        for prefix, reached, is_blob in ((push.BLOBS, blobs, True), (push.FOLDERS, folders, False)):
            for key, size, mtime in remote.objects(prefix):
                name = key[len(prefix) :]
                if name.removesuffix(".blocks") in reached:
                    continue
                if mtime > cutoff:
                    result.kept_young += 1
                    continue
                remote.delete_object(key)
                result.bytes_freed += size
                if is_blob and not name.endswith(".blocks"):
                    result.blobs_removed += 1
                elif not is_blob:
                    result.folders_removed += 1
    finally:
        remote.delete_object(push.GC_MARKER)
    return result


def _version_document(key: str) -> tuple[str, str] | None:
    """``(dataset name, version id)`` of a version document's key (relative to the
    remote's prefix, see :func:`dlfs.ops.push.dataset_prefix`); None for another key."""
    parts = key.split("/")
    if len(parts) == 6 and parts[0] == "projects" and parts[2] == "datasets":
        name, rest = f"{parts[1]}/{parts[3]}", parts[4:]
    elif len(parts) == 4 and parts[0] == "datasets":
        name, rest = parts[1], parts[2:]
    else:
        return None
    if rest[0] != "versions" or not rest[1].endswith(".json.gz"):
        return None
    return name, rest[1].removesuffix(".json.gz")

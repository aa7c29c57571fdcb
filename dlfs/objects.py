"""Content addressing: how blobs, items, trees and versions get their ids.

- blob id: xxh3-128 of the bytes, 32 lowercase hex digits.
- item id: xxh3-128 of the canonical JSON of (origin, blob, size, metadata,
  annotations). The mtime is kept beside the item but is not part of its identity, so
  rewriting a file with the same bytes does not make it "modified".
- tree id: xxh3-128 of the sorted entries (kind, name, ref) of one folder. Equal
  subtrees have equal ids, which is what makes diff O(changes).
- version id: 40 characters of base32 (``[a-z2-7]``) from 200 random bits: globally
  unique, kept when a version is copied to another catalog.
- origin: a random lineage id given to an item when it is first imported and kept
  through clones and edits.

Ids of mutable draft folders start with ``~`` so they can never equal a content id.
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Iterable
from typing import Any

import xxhash

BLOB_ID_RE = re.compile(r"^[0-9a-f]{32}$")
VERSION_ID_RE = re.compile(r"^[a-z2-7]{40}$")
MUTABLE_PREFIX = "~"

FILE = 0
DIR = 1


def new_hasher() -> Any:
    """A streaming hasher for blob ids (``update`` bytes, then ``hexdigest``)."""
    return xxhash.xxh3_128()


def blob_id(data: bytes) -> str:
    """The blob id of ``data``."""
    return xxhash.xxh3_128_hexdigest(data)


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no spaces: equal values give equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def item_id(
    origin: str, blob: str, size: int, metadata: str, annotations: str, posix: str = ""
) -> str:
    """The id of an item record; ``metadata``/``annotations``/``posix`` are canonical
    JSON text (``posix`` may be ``""``: no POSIX attributes, the id items had before
    they could carry any)."""
    tail = f",{posix}" if posix else ""
    record = f'["{origin}","{blob}",{size},{metadata},{annotations}{tail}]'
    return xxhash.xxh3_128_hexdigest(record.encode())


def tree_id(entries: Iterable[tuple[str, int, str]], posix: str = "") -> str:
    """The id of a folder from its ``(name, kind, ref)`` entries, in any order, and
    its own attributes ``posix`` (canonical JSON; ``""``, none, gives the id folders
    had before they could keep any)."""
    h = xxhash.xxh3_128()
    for name, kind, ref in sorted(entries, key=lambda e: e[0].encode()):
        h.update(b"%d\0%s\0%s\n" % (kind, name.encode(), ref.encode()))
    if posix:
        h.update(b"posix\0%s\n" % posix.encode())
    return h.hexdigest()


EMPTY_TREE = tree_id([])


def new_version_id() -> str:
    """A fresh globally unique version id: 40 chars of lowercase base32."""
    return base64.b32encode(os.urandom(25)).decode().lower()


def new_origin() -> str:
    """A fresh lineage id for a newly imported item."""
    return os.urandom(16).hex()


def new_mutable_tree_id() -> str:
    """An id for a draft's mutable folder (never equal to a content id)."""
    return MUTABLE_PREFIX + os.urandom(16).hex()


def is_mutable(tree: str) -> bool:
    """True for a draft's mutable folder id."""
    return tree.startswith(MUTABLE_PREFIX)

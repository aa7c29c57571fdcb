"""The stored form of a pushed version's records, read as a stream.

Format 2 (written since issue 21) is gzip of JSON Lines, so a pull of a version of
millions of items never holds them all::

    {"format": "dlfs-version/2", "dataset": {...}, "version": {...}, ...}   the head
    ["t", tree id, files, bytes, [[name, kind, ref, size], ...]]            each folder
    ["i", item id, origin, blob, size, mtime, metadata, annotations(, posix)]  each item
    ["b", blob id, size]                                                    each blob
    ["e", blob, bucket, key, etag, version id, size, mtime]                 linked objects
    {"check": xxh3-128 of every line above, newlines included}

The first line carries every field of the document that is not a list of records
(present or added later: it is the document minus ``trees``, ``items``, ``blobs`` and
``external``). Format 1 (one gzipped JSON ``{"doc": ..., "check": ...}``) is still
read. :func:`records` checks as it goes and raises :class:`BadBody` at the end when
the check does not match or the stream was cut, so a caller inserting inside a
transaction rolls back a damaged document whole.
"""

from __future__ import annotations

import gzip
import io
import json
import zlib
from collections.abc import Iterator
from typing import Any

import xxhash

from dlfs.errors import BadBody, Corrupt
from dlfs.objects import blob_id, canonical_json

FORMAT_V1 = "dlfs-version/1"
FORMAT = "dlfs-version/2"
RECORDS = {"trees": "t", "items": "i", "blobs": "b", "external": "e"}
"""The record lists of a document and the tag of their lines."""

Record = tuple[str, list[Any]]


def encode(doc: dict[str, Any]) -> bytes:
    """The stored form of a version document (format 2)."""
    out = io.BytesIO()
    check = xxhash.xxh3_128()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as gz:
        head = {k: v for k, v in doc.items() if k not in RECORDS}
        head["format"] = FORMAT
        lines = [canonical_json(head)]
        for name, tag in RECORDS.items():
            lines.extend(canonical_json([tag, *rec]) for rec in doc[name])
        for line in lines:
            data = line.encode() + b"\n"
            check.update(data)
            gz.write(data)
        gz.write(canonical_json({"check": check.hexdigest()}).encode() + b"\n")
    return out.getvalue()


def records(data: bytes, vid: str) -> tuple[dict[str, Any], Iterator[Record]]:
    """The head of a stored document and an iterator of its ``(tag, fields)`` records
    (tags as in :data:`RECORDS`). :class:`BadBody` for a damaged document (from the
    iterator when the damage is past the head), :class:`Corrupt` for another format
    or another version's document."""
    what = f"the pushed records of version {vid}"
    try:
        stream = gzip.GzipFile(fileobj=io.BytesIO(data))
        first = stream.readline()
        head = json.loads(first)
    except (OSError, EOFError, ValueError, zlib.error) as exc:
        raise BadBody(f"{what} are damaged") from exc
    if not isinstance(head, dict):
        raise BadBody(f"{what} are damaged")
    if "doc" in head and "check" in head:  # format 1: one JSON document
        doc = _decode_v1(head, what)
        _check_head(doc, vid, FORMAT_V1)
        return _head_of(doc), _records_of(doc)
    _check_head(head, vid, FORMAT)
    return head, _stream(stream, first, what)


CHUNK = 1 << 20
"""Bytes of the decompressed document parsed at once (one ``json.loads`` per chunk of
lines, not one per line)."""


def _stream(stream: gzip.GzipFile, first: bytes, what: str) -> Iterator[Record]:
    check = xxhash.xxh3_128(first)
    tags = set(RECORDS.values())
    rest = b""
    try:
        while True:
            block = stream.read(CHUNK)
            data = rest + block
            cut = data.rfind(b"\n") + 1
            lines, rest = data[:cut], data[cut:]
            if not block and rest:
                raise BadBody(f"{what} are cut short")
            end = lines.find(b"\n{")  # the check line, the only object after the head
            if lines.startswith(b"{"):
                end = -1
            body = lines if end < 0 and not lines.startswith(b"{") else lines[: end + 1]
            if body:
                check.update(body)
                for value in json.loads(b"[" + body.rstrip(b"\n").replace(b"\n", b",") + b"]"):
                    if not isinstance(value, list) or not value or value[0] not in tags:
                        raise BadBody(f"{what} are damaged (an unknown record)")
                    yield value[0], value[1:]
            if len(body) < len(lines) or (not body and lines):
                tail = json.loads(lines[len(body) :])
                if tail.get("check") != check.hexdigest() or rest or stream.read(1):
                    raise BadBody(f"{what} are damaged (their check does not match)")
                return
            if not block:
                raise BadBody(f"{what} are cut short")
    except (OSError, EOFError, ValueError, AttributeError, zlib.error) as exc:
        raise BadBody(f"{what} are damaged") from exc


def decode(data: bytes, vid: str) -> dict[str, Any]:
    """A whole stored document (either format) as one dict, checked."""
    head, recs = records(data, vid)
    doc: dict[str, Any] = {**head, **{name: [] for name in RECORDS}}
    names = {tag: name for name, tag in RECORDS.items()}
    for tag, fields in recs:
        doc[names[tag]].append(fields)
    return doc


def _decode_v1(outer: dict[str, Any], what: str) -> dict[str, Any]:
    try:
        doc = outer["doc"]
        ok = outer["check"] == blob_id(canonical_json(doc).encode())
    except (KeyError, TypeError, ValueError) as exc:
        raise BadBody(f"{what} are damaged") from exc
    if not ok or not isinstance(doc, dict):
        raise BadBody(f"{what} are damaged")
    return doc


def _check_head(head: dict[str, Any], vid: str, fmt: str) -> None:
    if head.get("format") != fmt:
        raise Corrupt(f"version {vid} was pushed in format {head.get('format')!r}, not {fmt}")
    try:
        named = head["version"]["id"]
    except (KeyError, TypeError):
        raise BadBody(f"the pushed records of version {vid} are damaged") from None
    if named != vid:
        raise Corrupt(f"the pushed records of version {vid} name version {named}")


def _head_of(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k not in RECORDS}


def _records_of(doc: dict[str, Any]) -> Iterator[Record]:
    for name, tag in RECORDS.items():
        for rec in doc.get(name, []):
            yield tag, list(rec)

"""Block manifests: the xxh3-128 of every block of a large blob.

A blob larger than one block (by default :data:`DEFAULT_BLOCK_SIZE`, 4 MiB)
gets a manifest next to it, in every store: ``<blob id>.blocks`` in S3, and
``blobs/<2 hex>/<blob id>.blocks`` in the local store. Readers check each block
against its hash the first time they serve it, so a large blob streams instead of
being hashed whole before its first byte. The manifest carries a checksum of its own
fields: a damaged one is refused (:class:`dlfs.stores.retry.BadBody`, a
:class:`dlfs.errors.Corrupt`), never trusted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from dlfs.errors import BadBody
from dlfs.objects import blob_id, canonical_json, new_hasher

__all__ = ["DEFAULT_BLOCK_SIZE", "BlockHasher", "Manifest", "hash_file_blocks"]

DEFAULT_BLOCK_SIZE = 4 << 20
"""The default block size: of a large blob's manifest, and of remote stores' reads."""


@dataclass(frozen=True)
class Manifest:
    """The per-block hashes of one large blob."""

    blob: str
    size: int
    block_size: int
    hashes: tuple[str, ...]

    @property
    def blocks(self) -> int:
        """How many blocks the blob has."""
        return len(self.hashes)

    def span(self, index: int) -> tuple[int, int]:
        """``(offset, length)`` of block ``index``."""
        start = index * self.block_size
        return start, min(self.block_size, self.size - start)

    def encode(self) -> bytes:
        """JSON with a checksum of its own fields."""
        body = {
            "format": 1,
            "blob": self.blob,
            "size": self.size,
            "block_size": self.block_size,
            "hashes": list(self.hashes),
        }
        return canonical_json({**body, "check": blob_id(canonical_json(body).encode())}).encode()

    @classmethod
    def decode(cls, blob: str, data: bytes) -> Manifest:
        """Parse and check a manifest; :class:`BadBody` if it is damaged."""
        try:
            doc = json.loads(data)
            check = doc.pop("check")
            ok = check == blob_id(canonical_json(doc).encode())
            m = cls(doc["blob"], int(doc["size"]), int(doc["block_size"]), tuple(doc["hashes"]))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise BadBody(f"the block manifest of blob {blob} is damaged") from exc
        if not ok or m.blob != blob or m.block_size <= 0:
            raise BadBody(f"the block manifest of blob {blob} is damaged")
        if len(m.hashes) != max(1, -(-m.size // m.block_size)):
            raise BadBody(f"the block manifest of blob {blob} is damaged")
        return m


class BlockHasher:
    """Hashes a stream whole (the blob id) and per block, in one pass."""

    def __init__(self, block_size: int = DEFAULT_BLOCK_SIZE) -> None:
        self.block_size = block_size
        self.size = 0
        self.hashes: list[str] = []
        self._whole = new_hasher()
        self._block = new_hasher()
        self._in_block = 0

    def update(self, chunk: bytes | memoryview) -> None:
        """Feed the next bytes of the stream."""
        self._whole.update(chunk)
        n = len(chunk)
        self.size += n
        pos = 0
        while pos < n:
            take = min(n - pos, self.block_size - self._in_block)
            self._block.update(chunk[pos : pos + take])
            self._in_block += take
            pos += take
            if self._in_block == self.block_size:
                self.hashes.append(str(self._block.hexdigest()))
                self._block.reset()
                self._in_block = 0

    def finish(self) -> tuple[str, list[str]]:
        """The blob id and the hash of every block (call once, at the end)."""
        if self._in_block:
            self.hashes.append(str(self._block.hexdigest()))
            self._in_block = 0
        return str(self._whole.hexdigest()), self.hashes

    def copy(self) -> BlockHasher:
        """An independent hasher in the same state (to go on from here later)."""
        other = BlockHasher(self.block_size)
        other.size, other.hashes, other._in_block = self.size, list(self.hashes), self._in_block
        other._whole, other._block = self._whole.copy(), self._block.copy()
        return other

    def blob_so_far(self) -> str:
        """The blob id of the bytes fed so far; more may follow (an xxh3 digest does
        not end the hash)."""
        return str(self._whole.hexdigest())

    def manifest_so_far(self) -> Manifest | None:
        """The manifest of the bytes fed so far (None up to one block); more may
        follow."""
        if self.size <= self.block_size:
            return None
        tail = [str(self._block.hexdigest())] if self._in_block else []
        return Manifest(self.blob_so_far(), self.size, self.block_size, (*self.hashes, *tail))

    def manifest(self, blob: str) -> Manifest | None:
        """The manifest of the stream hashed as ``blob`` (after :meth:`finish`); None
        for a blob no larger than one block."""
        if self.size <= self.block_size:
            return None
        return Manifest(blob, self.size, self.block_size, tuple(self.hashes))


def hash_file_blocks(path: Path, block_size: int) -> tuple[str, list[str]]:
    """The blob id of the file at ``path`` and the hash of each of its blocks."""
    hasher = BlockHasher(block_size)
    with open(path, "rb") as f:
        while data := f.read(block_size):
            hasher.update(data)
    return hasher.finish()

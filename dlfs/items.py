"""Items as values: a file's bytes with its lineage, metadata and annotations.

An :class:`ItemRecord` is what the ``items`` table keeps, and its :attr:`~ItemRecord.id`
is computed here and nowhere else (from :func:`dlfs.objects.item_id`). The rules of
changing an item are its methods, so every path that edits items (the API, a draft
mount, clone, merge, import) follows them alike:

- new bytes (:meth:`ItemRecord.rewritten`): same origin, metadata and annotations;
- new metadata or annotations (:meth:`ItemRecord.relabelled`): same origin, blob, size
  and mtime;
- a new file (:meth:`ItemRecord.new`): a fresh origin.

``metadata`` and ``annotations`` are canonical JSON text (:func:`dlfs.objects.canonical_json`), as
stored; the mtime is kept beside the item and is not part of its id.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple, Protocol

from dlfs import jsonvalues
from dlfs.objects import item_id, new_origin

EMPTY_METADATA = "{}"
EMPTY_ANNOTATIONS = "[]"

ItemRow = tuple[str, str, str, int, float, str, str]
"""``(id, origin, blob, size, mtime, metadata, annotations)``: a row of ``items``."""


class Fields(Protocol):
    """A row with named columns (``sqlite3.Row``, a dict)."""

    def __getitem__(self, key: str) -> Any: ...


class ItemRecord(NamedTuple):
    """One item: an immutable value; edits return a new record (with a new id)."""

    origin: str
    blob: str
    size: int
    mtime: float
    metadata: str = EMPTY_METADATA
    annotations: str = EMPTY_ANNOTATIONS

    @property
    def id(self) -> str:
        """The item id: xxh3-128 of origin, blob, size, metadata and annotations."""
        return item_id(self.origin, self.blob, self.size, self.metadata, self.annotations)

    @classmethod
    def new(
        cls,
        blob: str,
        size: int,
        mtime: float,
        metadata: str = EMPTY_METADATA,
        annotations: str = EMPTY_ANNOTATIONS,
    ) -> ItemRecord:
        """A new item: a fresh lineage id (origin)."""
        return cls(new_origin(), blob, size, mtime, metadata, annotations)

    @classmethod
    def from_row(cls, row: Fields) -> ItemRecord:
        """The record of an ``items`` row."""
        return cls(
            row["origin"],
            row["blob"],
            row["size"],
            row["mtime"],
            row["metadata"],
            row["annotations"],
        )

    def row(self) -> ItemRow:
        """The ``items`` row of this record, its id first."""
        return (self.id, *self)

    def rewritten(self, blob: str, size: int, mtime: float) -> ItemRecord:
        """The same item with other bytes: lineage, metadata and annotations kept."""
        return self._replace(blob=blob, size=size, mtime=mtime)

    def relabelled(self, metadata: str | None = None, annotations: str | None = None) -> ItemRecord:
        """The same bytes and lineage with other metadata and/or annotations (canonical
        JSON text; None keeps the current value)."""
        return self._replace(
            metadata=self.metadata if metadata is None else metadata,
            annotations=self.annotations if annotations is None else annotations,
        )

    def lineage_of(self, donor: ItemRecord) -> ItemRecord:
        """These bytes under ``donor``'s lineage, metadata and annotations (a file saved
        over another by a rename takes the replaced file's identity)."""
        return self._replace(
            origin=donor.origin, metadata=donor.metadata, annotations=donor.annotations
        )


def canonical_labels(
    metadata: Mapping[str, Any] | None, annotations: list[Any] | None
) -> tuple[str | None, str | None]:
    """Values as the canonical text :meth:`ItemRecord.relabelled` takes, checked
    against the rules and limits of :mod:`dlfs.jsonvalues`."""
    return (
        None if metadata is None else jsonvalues.metadata_text(metadata),
        None if annotations is None else jsonvalues.annotations_text(annotations),
    )

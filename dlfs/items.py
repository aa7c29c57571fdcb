"""Items as values: a file's bytes with its lineage, metadata and annotations.

An :class:`ItemRecord` is what the ``items`` table keeps, and its :attr:`~ItemRecord.id`
is computed here and nowhere else (from :func:`dlfs.objects.item_id`). The rules of
changing an item are its methods, so every path that edits items (the API, a draft
mount, clone, merge, import) follows them alike:

- new bytes (:meth:`ItemRecord.rewritten`): same origin, metadata and annotations;
- new metadata or annotations (:meth:`ItemRecord.relabelled`): same origin, blob, size
  and mtime;
- a new file (:meth:`ItemRecord.new`): a fresh origin.

``metadata`` and ``annotations`` are canonical JSON text (:func:`canonical_json`), as
stored; the mtime is kept beside the item and is not part of its id. ``posix`` is the
item's POSIX attributes (mode, owner, symlink target, ``user.*`` xattrs) as
:class:`dlfs.posixattrs.Posix` keeps them, ``""`` for none: part of the id, kept
through rewrites (``chmod +x`` survives an edit) and relabels.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple, Protocol

from dlfs.objects import canonical_json, item_id, new_origin
from dlfs.posixattrs import Posix

EMPTY_METADATA = "{}"
EMPTY_ANNOTATIONS = "[]"

ItemRow = tuple[str, str, str, int, float, str, str, str]
"""``(id, origin, blob, size, mtime, metadata, annotations, posix)``: a row of ``items``."""


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
    posix: str = ""

    @property
    def id(self) -> str:
        """The item id: xxh3-128 of origin, blob, size, metadata, annotations and
        (when it has any) the POSIX attributes."""
        return item_id(
            self.origin, self.blob, self.size, self.metadata, self.annotations, self.posix
        )

    @classmethod
    def new(
        cls,
        blob: str,
        size: int,
        mtime: float,
        metadata: str = EMPTY_METADATA,
        annotations: str = EMPTY_ANNOTATIONS,
        posix: str = "",
    ) -> ItemRecord:
        """A new item: a fresh lineage id (origin)."""
        return cls(new_origin(), blob, size, mtime, metadata, annotations, posix)

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
            _posix_of(row),
        )

    def row(self) -> ItemRow:
        """The ``items`` row of this record, its id first."""
        return (self.id, *self)

    def rewritten(self, blob: str, size: int, mtime: float) -> ItemRecord:
        """The same item with other bytes: lineage, metadata, annotations and POSIX
        attributes kept (a symlink's target aside: bytes make it a file)."""
        posix = Posix.parse(self.posix)
        kept = posix._replace(link=None).text() if posix.is_link else self.posix
        return self._replace(blob=blob, size=size, mtime=mtime, posix=kept)

    def relabelled(
        self,
        metadata: str | None = None,
        annotations: str | None = None,
        posix: str | None = None,
    ) -> ItemRecord:
        """The same bytes and lineage with other metadata, annotations and/or POSIX
        attributes (canonical JSON text; None keeps the current value)."""
        return self._replace(
            metadata=self.metadata if metadata is None else metadata,
            annotations=self.annotations if annotations is None else annotations,
            posix=self.posix if posix is None else posix,
        )

    def lineage_of(self, donor: ItemRecord) -> ItemRecord:
        """These bytes under ``donor``'s lineage, metadata, annotations and POSIX
        attributes (a file saved over another by a rename takes the replaced file's
        identity: an editor's save keeps the mode and xattrs; a link's target is not
        taken)."""
        donor_posix = Posix.parse(donor.posix)
        return self._replace(
            origin=donor.origin,
            metadata=donor.metadata,
            annotations=donor.annotations,
            posix=self.posix if donor_posix.is_link else donor.posix,
        )


def _posix_of(row: Fields) -> str:
    try:
        return str(row["posix"] or "")
    except (IndexError, KeyError):  # a row from a query that does not select it
        return ""


def canonical_labels(
    metadata: Mapping[str, Any] | None, annotations: list[Any] | None
) -> tuple[str | None, str | None]:
    """Checked values as the canonical text :meth:`ItemRecord.relabelled` takes."""
    return (
        None if metadata is None else canonical_json(metadata),
        None if annotations is None else canonical_json(annotations),
    )

"""The handles of the Python API: :class:`Dataset` and :class:`Version`, and the
values it returns, :class:`Entry` and :class:`Item`.

A handle holds a :class:`dlfs.Catalog` and a name or an id, nothing else: its
properties read the catalog each time, and each of its methods is one call of the
catalog method of the same name (whose docstring is the full story), with the
dataset or version filled in. Signatures are spelled out rather than forwarded with
``*args, **kwargs`` so that type checkers, editors and the API reference see them.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dlfs import apiargs, mounts, versions
from dlfs.catalog import Row
from dlfs.errors import Conflict, NotFound
from dlfs.names import join_path
from dlfs.objects import DIR
from dlfs.ops import diff as diff_ops
from dlfs.ops import importer
from dlfs.posixattrs import Posix
from dlfs.reader import VersionFile

if TYPE_CHECKING:
    from dlfs.api import Catalog
    from dlfs.ops.merge import MergeConflict

Progress = Callable[[int], None]
"""Called with counts of work done (bytes, or files visited)."""


@dataclass(frozen=True)
class Entry:
    """One file or folder of a version, as ``ls`` shows it."""

    path: str
    name: str
    is_dir: bool
    size: int
    mtime: float
    item: str | None
    blob: str | None
    link: str | None = None
    """The target of a symlink; None for files and folders."""
    mode: int = 0o644
    """The permission bits a file keeps (folders: 0o755)."""

    def to_json(self) -> dict[str, Any]:
        out = {
            "path": self.path,
            "name": self.name,
            "type": "dir" if self.is_dir else "link" if self.link is not None else "file",
            "size": self.size,
            "mtime": self.mtime,
            "item": self.item,
            "blob": self.blob,
            "mode": f"{self.mode:04o}",
        }
        if self.link is not None:
            out["target"] = self.link
        return out

    @classmethod
    def from_row(cls, folder: list[str], e: Row, dir_time: float) -> Entry:
        """The entry of tree entry ``e`` of ``folder``; folders show ``dir_time``."""
        is_dir = e["kind"] == DIR
        posix = Posix.parse(None if is_dir else e["posix"])
        return cls(
            path=join_path([*folder, e["name"]]),
            name=e["name"],
            is_dir=is_dir,
            size=0 if is_dir else e["size"],
            mtime=dir_time if is_dir else e["mtime"],
            item=None if is_dir else e["ref"],
            blob=None if is_dir else e["blob"],
            link=posix.link,
            mode=0o755 if is_dir else stat.S_IMODE(posix.file_mode(True)),
        )


@dataclass(frozen=True)
class Item:
    """A file of a version with its lineage, metadata and annotations."""

    path: str
    id: str
    origin: str
    blob: str
    size: int
    mtime: float
    metadata: dict[str, Any]
    annotations: list[Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "item": self.id,
            "origin": self.origin,
            "blob": self.blob,
            "size": self.size,
            "mtime": self.mtime,
            "metadata": self.metadata,
            "annotations": self.annotations,
        }

    @classmethod
    def from_row(cls, path: str, row: Row) -> Item:
        """The item of catalog row ``row``, found at ``path``."""
        return cls(
            path=path,
            id=row["id"],
            origin=row["origin"],
            blob=row["blob"],
            size=row["size"],
            mtime=row["mtime"],
            metadata=json.loads(row["metadata"]),
            annotations=json.loads(row["annotations"]),
        )


@apiargs.checked
class Dataset:
    """A handle on a dataset by name; properties read the catalog each time."""

    def __init__(self, catalog: Catalog, name: str) -> None:
        self.catalog = catalog
        self.name = name

    def __repr__(self) -> str:
        return f"Dataset({self.name!r})"

    def info(self, detail: bool = False) -> dict[str, Any]:
        """A JSON-ready description (with the version list when ``detail``)."""
        db = self.catalog.db
        with db.snapshot():
            return versions.dataset_info(db, versions.dataset_row(db, self.name), detail)

    def draft(self) -> Version:
        """The dataset's single draft."""
        return self.catalog.draft(f"{self.name}@draft")

    def versions(self, published: bool = False, drafts: bool = False) -> list[Version]:
        """Versions oldest first; ``published`` or ``drafts`` keep only that state."""
        db = self.catalog.db
        row = versions.dataset_row(db, self.name)
        state = "published" if published and not drafts else "draft" if drafts else None
        return [Version(self.catalog, v["id"]) for v in db.versions_of(row["id"], state)]

    def snapshot(
        self,
        publish_name: str | None = None,
        child_name: str | None = None,
        child_metadata: dict[str, Any] | None = None,
        comment: str | None = None,
        child_comment: str = "",
    ) -> tuple[Version, Version]:
        """See :meth:`Catalog.snapshot`."""
        return self.catalog.snapshot(
            self.name, publish_name, child_name, child_metadata, comment, child_comment
        )

    def create_version(
        self, parents: list[str] | None = None, name: str | None = None, exist_ok: bool = False
    ) -> Version:
        """See :meth:`Catalog.create_version`."""
        return self.catalog.create_version(self.name, parents, name, exist_ok)

    def tag(self, add: list[str] = (), remove: list[str] = ()) -> list[str]:  # type: ignore[assignment]
        """Add and remove the dataset's own tags; return them (see
        :meth:`Catalog.tag_dataset`)."""
        return self.catalog.tag_dataset(self.name, list(add), list(remove))

    def set_metadata(self, assignments: list[tuple[str, Any]]) -> dict[str, Any]:
        """Set custom metadata keys; return all of it (see
        :meth:`Catalog.set_dataset_metadata`)."""
        return self.catalog.set_dataset_metadata(self.name, assignments)

    # -- python api conveniences ----------------------------------------------------

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Dataset) and other.catalog is self.catalog and other.name == self.name
        )

    def __hash__(self) -> int:
        return hash((id(self.catalog), self.name))

    def _row(self) -> Row:
        return versions.dataset_row(self.catalog.db, self.name)

    @property
    def kind(self) -> str:
        """``dataset``, ``clone``, ``merge`` or ``linked``."""
        return str(self._row()["kind"])

    @property
    def description(self) -> str:
        return str(self._row()["description"])

    @property
    def tags(self) -> list[str]:
        """The dataset's own tags (versions have theirs: :attr:`Version.tags`)."""
        return list(json.loads(self._row()["tags"]))

    @property
    def metadata(self) -> dict[str, Any]:
        """The dataset's custom metadata (see :meth:`set_metadata`)."""
        return dict(json.loads(self._row()["metadata"]))

    @property
    def labels(self) -> Any:
        """The label recipe, or ``None``."""
        labels = self._row()["labels"]
        return None if labels is None else json.loads(labels)

    @property
    def storage(self) -> str:
        """Where the binaries live: ``local``, ``s3://...`` or ``linked:s3://...``."""
        return str(self._row()["storage"])

    @property
    def latest(self) -> Version | None:
        """The latest published version, or ``None`` before the first publish."""
        vid = self.catalog.db.tag_get(self._row()["id"], "latest")
        return None if vid is None else Version(self.catalog, vid)

    def version(self, spec: str = "latest") -> Version:
        """The version ``NAME@spec`` names: a tag, a name, an id or id prefix, ``draft``."""
        return self.catalog.version(f"{self.name}@{spec}")

    def add(
        self,
        source: str | os.PathLike[str] | bytes,
        to: str = "",
        metadata: dict[str, Any] | None = None,
        annotations: list[Any] | None = None,
    ) -> importer.AddResult:
        """Add to the dataset's draft (see :meth:`Version.add`)."""
        return self.draft().add(source, to, metadata, annotations)

    def publish(
        self, tags: list[str] | None = None, name: str | None = None, comment: str | None = None
    ) -> Version:
        """Publish the dataset's draft (see :meth:`Version.publish`)."""
        return self.draft().publish(tags, name, comment)

    def clone(
        self,
        name: str,
        version: str = "latest",
        include: list[str] | None = None,
        where: str | None = None,
        metadata: bool = True,
        annotations: bool = True,
        publish: bool = False,
    ) -> Version:
        """Clone version ``version`` (default ``latest``) into a new dataset ``name``;
        see :meth:`Catalog.clone`. Returns the clone's first version."""
        return self.catalog.clone(
            f"{self.name}@{version}",
            name,
            include=include,
            where=where,
            metadata=metadata,
            annotations=annotations,
            publish=publish,
        )

    def log(self) -> list[dict[str, Any]]:
        """The history of the dataset (see :meth:`Catalog.log`)."""
        return self.catalog.log(self.name)

    def delete(
        self, all_versions: bool = False, force: bool = False, delete_sources: bool = False
    ) -> list[str]:
        """Delete the dataset (see :meth:`Catalog.delete_dataset`)."""
        return self.catalog.delete_dataset(self.name, all_versions, force, delete_sources)


@apiargs.checked
class Version:
    """A handle on one version by id. A draft's id changes when it is published: use
    the :class:`Version` that :meth:`publish` returns."""

    def __init__(self, catalog: Catalog, vid: str) -> None:
        self.catalog = catalog
        self.id = vid

    def __repr__(self) -> str:
        return f"Version({self.ref!r})"

    def _row(self) -> Row:
        row = self.catalog.db.version_get(self.id)
        if row is None:
            raise NotFound(f"version {self.id} no longer exists (published or deleted)")
        return row

    @property
    def dataset(self) -> str:
        ds = self.catalog.db.dataset_by_id(self._row()["dataset"])
        assert ds is not None
        return str(ds["name"])

    @property
    def ref(self) -> str:
        return f"{self.dataset}@{self.id}"

    @property
    def state(self) -> str:
        return str(self._row()["state"])

    @property
    def name(self) -> str | None:
        name = self._row()["name"]
        return None if name is None else str(name)

    @property
    def tags(self) -> list[str]:
        return self.catalog.db.tags_of_version(self.id)

    def info(self) -> dict[str, Any]:
        """A JSON-ready description."""
        return versions.version_info(self.catalog.db, self._row())

    def files(self) -> list[Item]:
        """Every file, in path order."""
        return self.catalog.files(self.ref)

    def ls(self, path: str = "") -> list[Entry]:
        """See :meth:`Catalog.ls`."""
        return self.catalog.ls(self.ref, path)

    def item(self, path: str) -> Item:
        """See :meth:`Catalog.item`."""
        return self.catalog.item(self.ref, path)

    def read_bytes(self, path: str) -> bytes:
        """The whole content of a file, verified."""
        return b"".join(self.catalog.cat(self.ref, path))

    def add(
        self,
        source: str | os.PathLike[str] | bytes,
        to: str = "",
        metadata: dict[str, Any] | None = None,
        annotations: list[Any] | None = None,
        progress: Progress | None = None,
    ) -> importer.AddResult:
        """Add a local file or folder into folder ``to`` of this draft (a file lands
        under its own name, a folder brings its contents); or, given bytes, write
        them as the file at path ``to``. ``metadata`` and ``annotations``, when
        given, are set on every file added; a file that lands on an existing path
        keeps the item's lineage (and its metadata and annotations unless given)."""
        if isinstance(source, bytes):
            return self.catalog.add_bytes(self.ref, to, source, metadata, annotations)
        return self.catalog.add(self.ref, [source], to, progress, metadata, annotations)

    def publish(
        self, tags: list[str] | None = None, name: str | None = None, comment: str | None = None
    ) -> Version:
        """Publish this draft; return the published version."""
        if self.state != "draft":
            raise Conflict(f"version {self.id} is already published")
        return self.catalog.publish(self.ref, tags, name, comment)

    def set_metadata(
        self,
        assignments: Mapping[str, Any] | Sequence[tuple[str, Any]] = (),
        remove: Sequence[str] = (),
    ) -> dict[str, Any]:
        """Set and remove keys of this version's metadata, draft or published (see
        :meth:`Catalog.set_version_metadata`)::

            version.set_metadata({"mask_labels": {"0": "background", "255": "dog"}})
        """
        return self.catalog.set_version_metadata(self.ref, assignments, remove)

    def set_comment(self, comment: str) -> str:
        """Replace this version's comment (see :meth:`Catalog.set_version_comment`)."""
        return self.catalog.set_version_comment(self.ref, comment)

    @property
    def changes(self) -> list[dict[str, Any]]:
        """The recorded changes of its metadata and comment (who, when), oldest first."""
        return self.catalog.version_changes(self.ref)

    # -- python api conveniences ----------------------------------------------------

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Version) and other.catalog is self.catalog and other.id == self.id

    def __hash__(self) -> int:
        return hash((id(self.catalog), self.id))

    @property
    def parents(self) -> list[str]:
        """The ids of the versions this one was made from."""
        return list(self.catalog.db.version_parents(self.id))

    @property
    def metadata(self) -> dict[str, Any]:
        """The version's metadata (``set_metadata``, ``snapshot(child_metadata=...)``)."""
        return dict(json.loads(self._row()["metadata"]))

    @property
    def comment(self) -> str | None:
        comment = self._row()["comment"]
        return None if comment is None else str(comment)

    def open(self, path: str, buffer_size: int = 1 << 20) -> VersionFile:
        """The file at ``path`` as a read-only binary file object reading verified
        bytes (see :meth:`Catalog.open`)::

            with version.open("train/a.jpg") as f:
                head = f.read(16)
        """
        return self.catalog.open(self.ref, path, buffer_size)

    def stat(self, path: str = "") -> Entry:
        """See :meth:`Catalog.stat`."""
        return self.catalog.stat(self.ref, path)

    def exists(self, path: str) -> bool:
        """True when ``path`` names a file or folder of this version."""
        try:
            self.stat(path)
        except (NotFound, Conflict):
            return False
        return True

    def diff(self, other: str | Version) -> diff_ops.Diff:
        """What changed from this version to ``other`` (see :meth:`Catalog.diff`)."""
        return self.catalog.diff(self, other)

    def clone(
        self,
        name: str,
        include: list[str] | None = None,
        where: str | None = None,
        metadata: bool = True,
        annotations: bool = True,
        publish: bool = False,
    ) -> Version:
        """Clone this version into a new dataset ``name`` (see :meth:`Catalog.clone`)."""
        return self.catalog.clone(
            self,
            name,
            include=include,
            where=where,
            metadata=metadata,
            annotations=annotations,
            publish=publish,
        )

    def mount(
        self, mountpoint: str | os.PathLike[str] | None = None, **kwargs: Any
    ) -> contextlib.AbstractContextManager[Path]:
        """Mount this version for a ``with`` block (see :func:`dlfs.mount`)."""
        return mounts.mounted(self, mountpoint, **kwargs)

    def tag(self, *tags: str, force: bool = False) -> list[str]:
        """Add user tags to this published version; return all its tags."""
        return self.catalog.tag(self.ref, list(tags), force)

    def delete(self) -> None:
        """Delete this draft (published versions are immutable)."""
        self.catalog.delete_version(self.ref)

    def mkdir(self, path: str, parents: bool = False) -> None:
        """Make a folder in this draft (with ``parents``, its missing parents too)."""
        self.catalog.mkdir(self.ref, [path], parents)

    def rm(self, path: str, recursive: bool = False) -> None:
        """Remove a file (a folder with ``recursive``) from this draft."""
        self.catalog.rm(self.ref, [path], recursive)

    def mv(self, source: str | Sequence[str], dest: str) -> None:
        """Move items of this draft, as ``mv`` does (see :meth:`Catalog.mv`)."""
        self.catalog.mv(self.ref, [source] if isinstance(source, str) else list(source), dest)

    def cp(self, source: str | Sequence[str], dest: str) -> None:
        """Copy items of this draft as pointers (see :meth:`Catalog.cp`)."""
        self.catalog.cp(self.ref, [source] if isinstance(source, str) else list(source), dest)

    def set_meta(
        self,
        path: str,
        metadata: dict[str, Any] | None = None,
        annotations: list[Any] | None = None,
        **assignments: Any,
    ) -> Item:
        """Replace the metadata and/or annotations of a file of this draft, or set
        single metadata keys (``set_meta("a.jpg", split="train")``); return the item."""
        return self.catalog.set_meta(
            self.ref, path, list(assignments.items()), annotations, metadata
        )


class MergedVersion(Version):
    """The first version of a merge (:meth:`Catalog.merge`), with the conflicts the
    merge met: ``conflicts``, each a :class:`dlfs.ops.merge.MergeConflict` (``kind``,
    ``path``, ``refs``, ``took``, ``line()``, ``to_json()``)."""

    def __init__(self, catalog: Catalog, vid: str, conflicts: list[MergeConflict]) -> None:
        super().__init__(catalog, vid)
        self.conflicts = conflicts

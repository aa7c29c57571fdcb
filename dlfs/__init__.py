"""dlfs: a versioned dataset store for machine learning, mounted as plain directories.

The public surface is re-exported here: :class:`Catalog` and its handles
(:class:`Dataset`, :class:`Version`, :class:`Item`, :class:`Entry`,
:class:`VersionFile`), the :func:`mount` context manager, and the exception tree
rooted at :class:`DlfsError`::

    DlfsError
    ├── NotFound        a dataset, version, ref, path or blob that does not exist
    ├── Ambiguous       a ref or name that matches more than one thing
    ├── AlreadyExists   creating something whose name is taken
    ├── InvalidInput    a bad name, path, tag, JSON value or argument
    ├── ReadOnly        writing to a published version
    ├── NotPermitted    an operation dlfs never allows (hard links, symlinks in drafts)
    ├── NotSupported    an extended attribute or flag dlfs does not keep
    ├── Conflict        an operation the current state forbids
    │   ├── NotEmpty        a folder or dataset that must be empty is not
    │   ├── NotADirectory   a path used as a folder names a file
    │   └── IsADirectory    a path used as a file names a folder
    ├── Corrupt         bytes that fail their hash check, or a damaged catalog
    └── Unavailable     storage that cannot be reached after bounded retries
"""

from dlfs.api import Catalog
from dlfs.errors import (
    AlreadyExists,
    Ambiguous,
    Conflict,
    Corrupt,
    DlfsError,
    InvalidInput,
    IsADirectory,
    NotADirectory,
    NotEmpty,
    NotFound,
    NotPermitted,
    NotSupported,
    ReadOnly,
    Unavailable,
)
from dlfs.handles import Dataset, Entry, Item, Version
from dlfs.mounts import mounted as mount
from dlfs.reader import VersionFile

__all__ = [
    "AlreadyExists",
    "Ambiguous",
    "Catalog",
    "Conflict",
    "Corrupt",
    "Dataset",
    "DlfsError",
    "Entry",
    "InvalidInput",
    "IsADirectory",
    "Item",
    "NotADirectory",
    "NotEmpty",
    "NotFound",
    "NotPermitted",
    "NotSupported",
    "ReadOnly",
    "Unavailable",
    "Version",
    "VersionFile",
    "mount",
]

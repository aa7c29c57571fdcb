"""dlfs: a versioned dataset store for machine learning, mounted as plain directories.

The public surface is re-exported here: :class:`Catalog` and its handles
(:class:`Dataset`, :class:`Version`, :class:`Item`, :class:`Entry`,
:class:`VersionFile`), the :func:`mount` context manager, and the exception tree
rooted at :class:`DlfsError`: every class carries the errno it stands for as ``errno``,
and :mod:`dlfs.errors` draws the tree with them.
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
    TooLarge,
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
    "TooLarge",
    "Unavailable",
    "Version",
    "VersionFile",
    "mount",
]

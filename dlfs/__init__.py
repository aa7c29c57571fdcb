"""dlfs: a versioned dataset store for machine learning, mounted as plain directories.

The public surface is re-exported here: :class:`Catalog` and its handles, and the
exception tree rooted at :class:`DlfsError`.
"""

from dlfs.api import Catalog, Dataset, Entry, Item, Version
from dlfs.errors import (
    AlreadyExists,
    Ambiguous,
    Conflict,
    Corrupt,
    DlfsError,
    InvalidInput,
    NotFound,
    ReadOnly,
    Unavailable,
)

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
    "Item",
    "NotFound",
    "ReadOnly",
    "Unavailable",
    "Version",
]

"""dlfs: a versioned dataset store for machine learning, mounted as plain directories.

The public surface is re-exported here: :class:`Catalog` and its handles
(:class:`Dataset`, :class:`Version`, :class:`Item`, :class:`Entry`,
:class:`VersionFile`), the :func:`mount` context manager, and the exception tree
rooted at :class:`DlfsError`, each class carrying the errno it stands for as
``errno`` (:mod:`dlfs.errors`)::

    DlfsError                   EIO           anything not more specific below
    ├── NotFound                ENOENT        a dataset, version, ref, path or blob that
    │   │                                     does not exist
    │   └── NoAttribute         ENODATA       no extended attribute of that name
    ├── Ambiguous               EINVAL        a ref or name that matches more than one thing
    ├── AlreadyExists           EEXIST        creating something whose name is taken
    ├── InvalidInput            EINVAL        a bad name, path, tag, JSON value or argument
    │   └── NameTooLong         ENAMETOOLONG  a name over 255 bytes
    ├── ReadOnly                EROFS         writing to a published version
    ├── NotPermitted            EPERM         an operation dlfs never allows (hard links,
    │                                         symlinks in drafts)
    ├── NotSupported            EOPNOTSUPP    an extended attribute or flag dlfs does not keep
    ├── Conflict                EBUSY         an operation the current state forbids
    │   ├── NotEmpty            ENOTEMPTY     a folder or dataset that must be empty is not
    │   ├── NotADirectory       ENOTDIR       a path used as a folder names a file
    │   └── IsADirectory        EISDIR        a path used as a file names a folder
    ├── StaleInode              ESTALE        the kernel named an inode the daemon forgot
    ├── Corrupt                 EIO           bytes that fail their hash check, or a
    │   │                                     damaged catalog
    │   └── BadBody             EIO           fetched bytes damaged in transit (retried)
    └── Unavailable             EIO           storage that cannot be reached after bounded
        │                                     retries
        ├── TemporaryFailure    EIO           a remote failure that may pass (retried)
        └── BlobMissing         EIO           a store has no bytes for a blob the catalog
                                              names
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

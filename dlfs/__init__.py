"""dlfs: a versioned dataset store for machine learning, mounted as plain directories.

The public surface is re-exported here: :class:`Catalog` and its handles
(:class:`Dataset`, :class:`Project`, :class:`Version`, :class:`Item`, :class:`Entry`,
:class:`VersionFile`), the :func:`mount` context manager, :func:`prefetch` (an
access plan: the order in which files of a mount will be read) and
:class:`PlannedSampler` (which gives it each epoch), and the exception tree
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
from dlfs.plan import Plan
from dlfs.plan import prefetch as prefetch
from dlfs.projectapi import Project
from dlfs.reader import VersionFile
from dlfs.sampler import PlannedSampler

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
    "Plan",
    "PlannedSampler",
    "Project",
    "ReadOnly",
    "TooLarge",
    "Unavailable",
    "Version",
    "VersionFile",
    "mount",
    "prefetch",
]

"""dlfs: a versioned dataset store for machine learning, mounted as plain directories.

The public surface is re-exported here: :class:`Catalog` and its handles
(:class:`Dataset`, :class:`Project`, :class:`Version`, :class:`Item`, :class:`Entry`,
:class:`VersionFile`), the :func:`mount` context manager, :func:`prefetch` (an
access plan: the order in which files of a mount will be read) and
:class:`PlannedSampler` (which gives it each epoch), and the exception tree
rooted at :class:`DlfsError`: every class carries the errno it stands for as ``errno``,
and :mod:`dlfs.errors` draws the tree with them.
"""

from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from dlfs.api import Catalog
    from dlfs.handles import Dataset, Entry, Item, Version
    from dlfs.mounts import mounted as mount
    from dlfs.plan import Plan
    from dlfs.plan import prefetch as prefetch
    from dlfs.projectapi import Project
    from dlfs.reader import VersionFile
    from dlfs.sampler import PlannedSampler

# The rest of the public surface is imported on first use (PEP 562), so that a
# program importing one module of dlfs (the daemon: dlfs.view, dlfs.mountviews...)
# does not pay for the catalog API, the handles and the sampler at start-up.
_LAZY = {
    "Catalog": ("dlfs.api", "Catalog"),
    "Dataset": ("dlfs.handles", "Dataset"),
    "Entry": ("dlfs.handles", "Entry"),
    "Item": ("dlfs.handles", "Item"),
    "Version": ("dlfs.handles", "Version"),
    "mount": ("dlfs.mounts", "mounted"),
    "Plan": ("dlfs.plan", "Plan"),
    "prefetch": ("dlfs.plan", "prefetch"),
    "Project": ("dlfs.projectapi", "Project"),
    "VersionFile": ("dlfs.reader", "VersionFile"),
    "PlannedSampler": ("dlfs.sampler", "PlannedSampler"),
}


def __getattr__(name: str) -> Any:
    try:
        module, attribute = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'dlfs' has no attribute {name!r}") from None
    import importlib

    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value
    return value


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

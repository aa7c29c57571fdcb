"""The ``dlfs`` command line: argument parsing and printing over :mod:`dlfs.api`.

``core`` defines the group, the shared helpers (``emit``, ``table``, ``fail``...) and
the catalog commands; each other module adds the commands of one area to that group
(``mount``: mounting; ``prefetch``: access plans; ``versioning``: clone, merge, diff;
``storage``: link, sync, push, pull; ``projects``: projects; ``manifests``: import,
export; ``versionmeta``: version metadata and comments). Errors print as one line
``dlfs: error: ...`` with exit status 1; usage errors exit 2.
"""

from dlfs.cli import core, manifests, mount, prefetch, projects, storage, versioning, versionmeta
from dlfs.cli.core import cli, main

__all__ = [
    "cli",
    "core",
    "main",
    "manifests",
    "mount",
    "prefetch",
    "projects",
    "storage",
    "versioning",
    "versionmeta",
]

"""The ``dlfs`` command line: argument parsing and printing over :mod:`dlfs.api`.

``core`` defines the group, the shared helpers (``emit``, ``table``, ``fail``...) and
the catalog commands; each other module adds the commands of one area to that group
(``mount``: mounting; ``versioning``: clone, merge, diff). Errors print as one line
``dlfs: error: ...`` with exit status 1; usage errors exit 2.
"""

from dlfs.cli import core
from dlfs.cli.core import cli, main

for _module in ("dlfs.cli.mount", "dlfs.cli.versioning", "dlfs.cli.storage"):
    try:
        __import__(_module)
    except ModuleNotFoundError as _exc:
        if _exc.name != _module:
            raise

__all__ = ["cli", "core", "main"]

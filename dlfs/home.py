"""Where a catalog lives on disk, and who may read it.

$DLFS_HOME/             (default ~/.local/share/dlfs), mode 0700
  catalog.db            the SQLite catalog (+ -wal, -shm), mode 0600
  blobs/ab/<id>         the local blob store
  mounts/<hash>.json    one record per running mount (see dlfs.mounts)
  logs/                 daemon logs
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_HOME = "~/.local/share/dlfs"


def default_home() -> Path:
    """``$DLFS_HOME``, or ``~/.local/share/dlfs``."""
    return Path(os.environ.get("DLFS_HOME") or os.path.expanduser(DEFAULT_HOME))


@dataclass(frozen=True)
class Home:
    """The folder of one catalog."""

    root: Path

    @classmethod
    def at(cls, root: str | os.PathLike[str] | None = None) -> Home:
        """The home at ``root``, or the default one."""
        return cls(Path(root).expanduser().absolute() if root else default_home().absolute())

    @property
    def catalog_path(self) -> Path:
        return self.root / "catalog.db"

    @property
    def blobs(self) -> Path:
        return self.root / "blobs"

    @property
    def mounts(self) -> Path:
        return self.root / "mounts"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def exists(self) -> bool:
        """True when a catalog was created here."""
        return self.catalog_path.exists()

    def create(self) -> None:
        """Create the folders, private to their owner (0700)."""
        for path in (self.root, self.blobs, self.mounts, self.logs):
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(path, 0o700)

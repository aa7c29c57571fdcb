"""The dlfs exception tree.

Every failure the library reports is a :class:`DlfsError`; callers catch the subclass
that matches what they can handle. The daemon maps each subclass to one errno in a
single table, the CLI prints ``dlfs: error: <message>`` and exits 1.

    DlfsError
    ├── NotFound        a dataset, version, ref, path or blob that does not exist
    ├── Ambiguous       a ref or name that matches more than one thing
    ├── AlreadyExists   creating something whose name is taken
    ├── InvalidInput    a bad name, path, tag, JSON value or argument
    ├── ReadOnly        writing to a published version
    ├── NotPermitted    an operation dlfs never allows (hard links, symlinks in drafts)
    ├── NotSupported    an extended attribute or flag dlfs does not keep
    ├── Conflict        an operation the current state forbids (non-empty folder,
    │                   publishing twice, a busy mount, different label recipes...)
    ├── Corrupt         bytes that fail their hash check, or a damaged catalog
    └── Unavailable     storage that cannot be reached after bounded retries
"""

from __future__ import annotations


class DlfsError(Exception):
    """Base of every error dlfs raises on purpose; ``str(err)`` is one clear line."""


class NotFound(DlfsError):
    """The named dataset, version, ref, path or blob does not exist."""


class Ambiguous(DlfsError):
    """A ref, prefix or name matches more than one object."""


class AlreadyExists(DlfsError):
    """The name is already taken."""


class InvalidInput(DlfsError):
    """A name, path, tag, JSON document or argument is malformed."""


class ReadOnly(DlfsError):
    """The target is a published version, which never changes."""


class NotPermitted(DlfsError):
    """The operation is never allowed on this kind of object (hard links, symlinks)."""


class NotSupported(DlfsError):
    """dlfs does not keep this (an extended attribute outside ``user.dlfs.``, a flag)."""


class Conflict(DlfsError):
    """The operation is not allowed in the current state."""


class NotEmpty(Conflict):
    """A folder or dataset that must be empty is not."""


class NotADirectory(Conflict):
    """A path used as a folder names a file."""


class IsADirectory(Conflict):
    """A path used as a file names a folder."""


class Corrupt(DlfsError):
    """Stored bytes or records fail their integrity check."""


class Unavailable(DlfsError):
    """A store could not be reached after bounded retries."""


class NameTooLong(InvalidInput):
    """A name longer than 255 bytes was looked up (``ENAMETOOLONG``)."""


class NoAttribute(NotFound):
    """The node has no extended attribute of that name (``ENODATA``)."""

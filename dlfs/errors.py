"""The dlfs exception tree.

Every failure the library reports is a :class:`DlfsError`; callers catch the subclass
that matches what they can handle. Each class carries the errno it stands for as the
class attribute ``errno`` (Mountpoint-S3's ``ToErrno``), so every edge derives its
answer from the error itself: the daemon replies ``FUSEError(exc.errno)``, the fsspec
filesystem raises ``OSError(exc.errno, ...)``, the CLI prints ``dlfs: error:
<message>`` and exits 1. A subclass inherits its parent's errno unless it names its
own.

    DlfsError                   EIO           anything not more specific below
    ├── NotFound                ENOENT        a dataset, version, ref, path or blob that
    │   │                                     does not exist
    │   └── NoAttribute         ENODATA       no extended attribute of that name
    ├── Ambiguous               EINVAL        a ref or name that matches more than one thing
    ├── AlreadyExists           EEXIST        creating something whose name is taken
    ├── InvalidInput            EINVAL        a bad name, path, tag, JSON value or argument
    │   ├── NameTooLong         ENAMETOOLONG  a name over 255 bytes
    │   └── TooLarge            E2BIG         a value over a documented size limit
    │                                         (metadata, annotations: dlfs.jsonvalues)
    ├── ReadOnly                EROFS         writing to a published version
    ├── NotPermitted            EPERM         an operation dlfs never allows (hard links,
    │                                         symlinks in drafts)
    ├── NotSupported            EOPNOTSUPP    an extended attribute or flag dlfs does not keep
    ├── Conflict                EBUSY         an operation the current state forbids
    │   │                                     (publishing twice, a busy mount, different
    │   │                                     label recipes...)
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

Failures of the local system that are not dlfs's own (an ``OSError`` from the disk,
``MemoryError``) keep their errno when it says what went wrong: :data:`KEPT_ERRNOS`
(``EFBIG`` for a file over the disk's size limit, ``ENOSPC``, ``EDQUOT``...).
:func:`errno_of` is the one mapping every edge uses; ``EIO`` is left for storage that
cannot be reached or bytes that are corrupt.

:class:`TemporaryFailure` and :class:`BadBody` are raised by the raw remote stores and
retried by :mod:`dlfs.stores.retry`; what escapes the retries is plain
:class:`Unavailable` or :class:`Corrupt`.
"""

from __future__ import annotations

import errno
from typing import ClassVar


class DlfsError(Exception):
    """Base of every error dlfs raises on purpose; ``str(err)`` is one clear line."""

    errno: ClassVar[int] = errno.EIO
    """The errno this error stands for at the filesystem edges."""


class NotFound(DlfsError):
    """The named dataset, version, ref, path or blob does not exist."""

    errno = errno.ENOENT


class NoAttribute(NotFound):
    """The node has no extended attribute of that name (``ENODATA``)."""

    errno = errno.ENODATA


class Ambiguous(DlfsError):
    """A ref, prefix or name matches more than one object."""

    errno = errno.EINVAL


class AlreadyExists(DlfsError):
    """The name is already taken."""

    errno = errno.EEXIST


class InvalidInput(DlfsError):
    """A name, path, tag, JSON document or argument is malformed."""

    errno = errno.EINVAL


class NameTooLong(InvalidInput):
    """A name longer than 255 bytes was looked up or made (``ENAMETOOLONG``)."""

    errno = errno.ENAMETOOLONG


class TooLarge(InvalidInput):
    """A value over one of dlfs's documented limits (``E2BIG``, as ``setxattr(2)``
    answers a value too large for the file system)."""

    errno = errno.E2BIG


class ReadOnly(DlfsError):
    """The target is a published version, which never changes."""

    errno = errno.EROFS


class NotPermitted(DlfsError):
    """The operation is never allowed on this kind of object (hard links, symlinks)."""

    errno = errno.EPERM


class NotSupported(DlfsError):
    """dlfs does not keep this (an extended attribute outside ``user.dlfs.``, a flag)."""

    errno = errno.EOPNOTSUPP


class Conflict(DlfsError):
    """The operation is not allowed in the current state."""

    errno = errno.EBUSY


class NotEmpty(Conflict):
    """A folder or dataset that must be empty is not."""

    errno = errno.ENOTEMPTY


class NotADirectory(Conflict):
    """A path used as a folder names a file."""

    errno = errno.ENOTDIR


class IsADirectory(Conflict):
    """A path used as a file names a folder."""

    errno = errno.EISDIR


class StaleInode(DlfsError):
    """The kernel named an inode the daemon has forgotten (``ESTALE``)."""

    errno = errno.ESTALE


class Corrupt(DlfsError):
    """Stored bytes or records fail their integrity check."""

    errno = errno.EIO


class BadBody(Corrupt):
    """Fetched bytes failed their length or hash check (likely damaged in transit);
    :mod:`dlfs.stores.retry` fetches them again, and reports :class:`Corrupt` if they
    keep failing."""


class Unavailable(DlfsError):
    """A store could not be reached after bounded retries."""

    errno = errno.EIO


class TemporaryFailure(Unavailable):
    """A failure that may go away by itself: connection, timeout, 5xx, short body;
    :mod:`dlfs.stores.retry` tries again, and reports :class:`Unavailable` once its
    deadline has passed."""


class BlobMissing(Unavailable):
    """A store has no bytes for a blob the catalog names: unreadable like an
    unreachable store (``EIO`` through a mount); :meth:`dlfs.Version.open` reports it
    as :class:`NotFound`."""


KEPT_ERRNOS = frozenset(
    {
        errno.EFBIG,  # a file over the local disk's maximum size
        errno.ENOSPC,  # the local disk is full
        errno.EDQUOT,  # the user's quota is spent
        errno.EMFILE,  # too many open files (this process)
        errno.ENFILE,  # too many open files (the system)
        errno.ENOMEM,  # out of memory
        errno.EACCES,  # the home folder's permissions refuse us
        errno.EROFS,  # the home folder is on a read-only file system
        errno.ENAMETOOLONG,
        errno.EOVERFLOW,
    }
)
"""The errnos an ``OSError`` of the local system keeps when it reaches an edge (the
daemon's reply, the CLI's exit): each means what POSIX says, and none is ``EIO``'s
"the data cannot be had"."""


def errno_of(exc: BaseException) -> int:
    """The errno that stands for ``exc`` at every edge: a :class:`DlfsError` names its
    own; an ``OSError`` keeps its errno when it is in :data:`KEPT_ERRNOS`; a
    ``MemoryError`` is ``ENOMEM``; anything else (a bug, an I/O error of the disk) is
    ``EIO``."""
    if isinstance(exc, DlfsError):
        return exc.errno
    if isinstance(exc, OSError) and exc.errno in KEPT_ERRNOS:
        return exc.errno
    if isinstance(exc, MemoryError):
        return errno.ENOMEM
    return errno.EIO


def is_expected(exc: BaseException) -> bool:
    """True when ``exc`` is an answer, not a bug: a :class:`DlfsError`, or a failure of
    the local system that keeps its errno (see :func:`errno_of`)."""
    return isinstance(exc, DlfsError) or errno_of(exc) != errno.EIO

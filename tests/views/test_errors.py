"""Errors carry their errno, and every edge answers that errno (no kernel, fast)."""

from __future__ import annotations

import errno
import logging
import os

import pytest
import trio
from dlfsd.ops import errno_of, fuse_error, fuse_errors
from pyfuse3 import FUSEError

from dlfs import errors
from dlfs.errors import DlfsError
from dlfs.fsspec import InvalidArgumentError, os_error


def subclasses(cls: type[DlfsError]) -> list[type[DlfsError]]:
    """``cls`` and every class below it, in a stable order."""
    found = [cls]
    for sub in cls.__subclasses__():
        found += subclasses(sub)
    return found


ALL = sorted(set(subclasses(DlfsError)), key=lambda c: c.__name__)
IDS = [c.__name__ for c in ALL]

EXPECTED = {
    "DlfsError": errno.EIO,
    "NotFound": errno.ENOENT,
    "NoAttribute": errno.ENODATA,
    "Ambiguous": errno.EINVAL,
    "AlreadyExists": errno.EEXIST,
    "InvalidInput": errno.EINVAL,
    "NameTooLong": errno.ENAMETOOLONG,
    "TooLarge": errno.E2BIG,
    "ReadOnly": errno.EROFS,
    "NotPermitted": errno.EPERM,
    "NotSupported": errno.EOPNOTSUPP,
    "Conflict": errno.EBUSY,
    "NotEmpty": errno.ENOTEMPTY,
    "NotADirectory": errno.ENOTDIR,
    "IsADirectory": errno.EISDIR,
    "StaleInode": errno.ESTALE,
    "Corrupt": errno.EIO,
    "BadBody": errno.EIO,
    "Unavailable": errno.EIO,
    "TemporaryFailure": errno.EIO,
    "BlobMissing": errno.EIO,
}
"""The mapping the daemon has always answered, written out once more on purpose."""


def test_every_error_class_lives_in_errors_module():
    assert {c.__module__ for c in ALL} == {"dlfs.errors"}
    assert {c.__name__ for c in ALL} == set(EXPECTED)
    assert all(getattr(errors, c.__name__) is c for c in ALL)


@pytest.mark.parametrize("cls", ALL, ids=IDS)
def test_class_carries_its_errno(cls: type[DlfsError]):
    assert type(cls.errno) is int
    assert cls.errno == EXPECTED[cls.__name__]
    assert cls("x").errno == cls.errno


@pytest.mark.parametrize("cls", ALL, ids=IDS)
def test_daemon_answers_the_errno(cls: type[DlfsError], caplog: pytest.LogCaptureFixture):
    exc = cls("x")
    assert errno_of(exc) == cls.errno
    with caplog.at_level(logging.ERROR):
        assert fuse_error(exc).errno == cls.errno
    assert not caplog.records  # library errors are answers, not bugs


@pytest.mark.parametrize("cls", ALL, ids=IDS)
def test_fsspec_raises_the_errno(cls: type[DlfsError]):
    err = os_error(cls("went wrong"), "cats@v1/a.txt")
    assert isinstance(err, OSError)
    assert err.errno == cls.errno
    assert err.strerror == "went wrong" and err.filename == "cats@v1/a.txt"


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (errors.NotFound("x"), FileNotFoundError),
        (errors.IsADirectory("x"), IsADirectoryError),
        (errors.NotADirectory("x"), NotADirectoryError),
        (errors.AlreadyExists("x"), FileExistsError),
        (errors.ReadOnly("x"), PermissionError),
        (errors.NotPermitted("x"), PermissionError),
        (errors.InvalidInput("x"), ValueError),
        (errors.Ambiguous("x"), ValueError),
    ],
)
def test_fsspec_keeps_the_exception_types_users_catch(exc: DlfsError, kind: type[Exception]):
    err = os_error(exc, "p")
    assert isinstance(err, kind)
    assert isinstance(err, InvalidArgumentError) == isinstance(err, ValueError)


def test_fsspec_conflict_is_ebusy_as_in_the_daemon():
    err = os_error(errors.Conflict("publishing twice"), "cats@draft")
    assert type(err) is OSError and err.errno == errno.EBUSY
    assert not isinstance(err, ValueError)


def test_fuse_error_keeps_its_errno():
    assert errno_of(FUSEError(errno.EXDEV)) == errno.EXDEV
    exc = FUSEError(errno.EXDEV)
    assert fuse_error(exc) is exc


@pytest.mark.expect_log("unexpected error in a request")
def test_unknown_exception_is_eio_and_logged(caplog: pytest.LogCaptureFixture):
    bug = RuntimeError("a bug")
    assert errno_of(bug) == errno.EIO
    with caplog.at_level(logging.ERROR, logger="dlfsd.ops"):
        assert fuse_error(bug).errno == errno.EIO
    [record] = caplog.records
    assert record.exc_info is not None and record.exc_info[1] is bug


@pytest.mark.parametrize(
    "code", [errno.EFBIG, errno.ENOSPC, errno.EDQUOT, errno.EMFILE, errno.ENOMEM, errno.EACCES]
)
def test_local_failures_keep_their_errno(code: int, caplog: pytest.LogCaptureFixture):
    exc = OSError(code, os.strerror(code))
    assert errno_of(exc) == errors.errno_of(exc) == code
    with caplog.at_level(logging.WARNING, logger="dlfsd.ops"):
        assert fuse_error(exc).errno == code
    [record] = caplog.records  # one line saying why, no traceback
    assert record.levelno == logging.WARNING and record.exc_info is None


def test_memory_error_is_enomem():
    assert errno_of(MemoryError()) == errno.ENOMEM


@pytest.mark.expect_log("unexpected error in a request")
def test_an_io_error_of_the_disk_stays_eio():
    assert errno_of(OSError(errno.EIO, "I/O error")) == errno.EIO
    assert fuse_error(OSError(errno.EIO, "I/O error")).errno == errno.EIO


def test_decorated_handler_answers_fuse_errors():
    @fuse_errors
    async def handler(exc: BaseException | None) -> str:
        if exc is not None:
            raise exc
        return "ok"

    async def run(exc: BaseException | None) -> str:
        return await handler(exc)

    assert trio.run(run, None) == "ok"
    with pytest.raises(FUSEError) as raised:
        trio.run(run, errors.NotEmpty("x"))
    assert raised.value.errno == errno.ENOTEMPTY
    assert raised.value.__cause__ is None and raised.value.__suppress_context__
    assert handler.__name__ == "handler"

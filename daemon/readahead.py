"""The read-ahead of a FUSE mount: how much the kernel asks for per read request.

The kernel gives a new FUSE mount the default read-ahead of 128 KiB, so a sequential
read reaches the daemon as 128 KiB requests, and a small file of 256 KiB as two. Each
request costs a Python daemon tens of microseconds before any of its code runs
(``docs/performance.md``), so bigger requests mean fewer of them: at
:data:`READ_AHEAD_KIB` a 512 MiB file takes 512 requests instead of 4,096 (libfuse
already lets requests be up to 1 MiB).

The setting lives in sysfs, on the mount's backing device (its BDI, named by the
mount's device number), and only root may change it. Other users keep the default.
"""

from __future__ import annotations

import logging
import re

log = logging.getLogger(__name__)

READ_AHEAD_KIB = 1024
"""The read-ahead the daemon gives its mount (KiB), when it may."""


def bdi_setting(mountpoint: str) -> str:
    """The sysfs file that holds the read-ahead of the file system mounted at
    ``mountpoint``, found in ``/proc/self/mountinfo`` without touching the mount (its
    daemon may not be serving yet). ``FileNotFoundError`` if nothing is mounted there.
    """
    device = None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split(" ", 5)
            if len(fields) > 4 and _unescape(fields[4]) == mountpoint:
                device = fields[2]  # the last one mounted there wins
    if device is None:
        raise FileNotFoundError(f"nothing is mounted at {mountpoint}")
    return f"/sys/class/bdi/{device}/read_ahead_kb"


def _unescape(path: str) -> str:
    """A mountinfo path with its octal escapes (``\\040`` for a space) decoded."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), path)


def raise_read_ahead(mountpoint: str, kib: int = READ_AHEAD_KIB) -> int | None:
    """Raise the read-ahead of the mount at ``mountpoint`` to at least ``kib`` KiB.
    Call it once the mount answered a request (the kernel sets the read-ahead when
    the daemon answers ``INIT``, lowering anything set before) and before files are
    opened there (a file keeps the read-ahead it was opened with).

    Returns the read-ahead now in effect (KiB), or None when it cannot be read. Never
    lowers it, and never fails: without the right to change it (not root) the mount
    keeps what it has, which is logged.
    """
    try:
        path = bdi_setting(mountpoint)
        with open(path) as f:
            current = int(f.read())
    except (OSError, ValueError) as exc:
        log.info("cannot read the read-ahead of %s: %s", mountpoint, exc)
        return None
    if current >= kib:
        return current
    try:
        with open(path, "w") as f:
            f.write(str(kib))
    except OSError as exc:
        log.info("read-ahead of %s left at %d KiB: %s", mountpoint, current, exc.strerror)
        return current
    return kib

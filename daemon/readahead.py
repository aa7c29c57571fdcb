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
import os

log = logging.getLogger(__name__)

READ_AHEAD_KIB = 1024
"""The read-ahead the daemon gives its mount (KiB), when it may."""


def bdi_setting(mountpoint: str) -> str:
    """The sysfs file that holds the read-ahead of the file system at ``mountpoint``."""
    dev = os.stat(mountpoint).st_dev
    return f"/sys/class/bdi/{os.major(dev)}:{os.minor(dev)}/read_ahead_kb"


def raise_read_ahead(mountpoint: str, kib: int = READ_AHEAD_KIB) -> int | None:
    """Raise the read-ahead of the mount at ``mountpoint`` to at least ``kib`` KiB.

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

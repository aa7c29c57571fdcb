"""The mount(8) helper: ``/etc/fstab`` lines and ``mount -t fuse.dlfs``.

mount(8) runs an external helper for a filesystem type ``fuse.dlfs`` as::

    /sbin/mount.fuse.dlfs SOURCE MOUNTPOINT [-sfnv] [-N NAMESPACE] [-o OPTIONS] [-t TYPE]

(``mount -t dlfs`` would run ``/sbin/mount.dlfs`` the same way). ``packaging/mount.dlfs``
is that program: a small shell script that finds the Python of the dlfs installation
and runs :func:`main` here, which mounts exactly as ``dlfs mount`` does
(:func:`dlfs.mounts.mount`) and returns once the mount is ready. So an fstab line::

    cats@v1  /mnt/cats  fuse.dlfs  ro,allow_other,home=/var/lib/dlfs,_netdev  0 0

mounts version ``cats@v1`` of the catalog ``/var/lib/dlfs`` at ``/mnt/cats``;
``umount /mnt/cats`` unmounts it and the daemon exits. SOURCE is a ref, or
``catalog:`` for the whole catalog.

OPTIONS, comma-separated:

- dlfs's own: ``home=PATH`` (the catalog; default ``$DLFS_HOME``, then
  ``~/.local/share/dlfs``), ``cache_dir=PATH`` and ``cache_size=SIZE`` (the block
  cache of remote stores, as ``dlfs mount --cache-dir/--cache-size``),
  ``remote=s3://BUCKET/PREFIX`` (SOURCE as pushed there, read from the remote without
  pulling it, as ``dlfs mount --remote``);
- mount options dlfs passes to FUSE (``ro``, ``allow_other``, ``allow_root``,
  ``auto_unmount``, ``noatime``, ``nodev``, ``nosuid``, ``noexec``, ``dev``, ``suid``,
  ``exec``, ``default_permissions``);
- options meant for mount(8), systemd or other tools, which are ignored: ``rw`` (what
  mount(8) passes whenever ``ro`` is not given: what may be written is decided as
  ``dlfs mount`` decides it), ``defaults``, ``auto``, ``noauto``, ``nofail``, ``user``, ``users``,
  ``nouser``, ``owner``, ``group``, ``_netdev`` and other ``_...`` options, ``x-...``,
  ``comment=...``, ``sync``/``async`` and the ``atime`` family but ``noatime``;
- anything else is an error (exit 32), unless ``-s`` (sloppy) is given: then it is
  ignored.

Flags: ``-f`` checks everything and mounts nothing (fake), ``-v`` prints what is done,
``-n`` (do not write /etc/mtab) has nothing to do. Exit status as mount(8) documents
it: 0 mounted, 1 incorrect invocation, 32 mount failure, with one line
``mount.dlfs: error: ...`` on stderr.
"""

from __future__ import annotations

import getopt
import os
import sys
from dataclasses import dataclass, field

from dlfs import mounts
from dlfs.errors import DlfsError, InvalidInput
from dlfs.home import Home

PROG = "mount.dlfs"
USAGE = f"usage: {PROG} SOURCE MOUNTPOINT [-sfnv] [-o OPTIONS] [-t fuse.dlfs]"
EXIT_USAGE = 1
EXIT_FAILURE = 32
WHOLE_CATALOG = "catalog:"

IGNORED = frozenset(
    {
        "rw",
        "defaults",
        "auto",
        "noauto",
        "nofail",
        "user",
        "users",
        "nouser",
        "owner",
        "group",
        "sync",
        "async",
        "atime",
        "relatime",
        "norelatime",
        "strictatime",
        "nostrictatime",
        "lazytime",
        "nolazytime",
        "diratime",
        "nodiratime",
        "silent",
        "loud",
    }
)
IGNORED_PREFIXES = ("_", "x-", "comment=")


class UsageError(Exception):
    """A command line mount(8) should not have produced."""


@dataclass
class Request:
    """What one helper call asks for."""

    source: str
    mountpoint: str
    ref: str | None
    home: str | None = None
    cache_dir: str | None = None
    cache_size: str | None = None
    remote: str | None = None
    options: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    fake: bool = False
    verbose: bool = False


def parse(argv: list[str], environ: dict[str, str] | None = None) -> Request:
    """The :class:`Request` of a helper command line (``argv`` without the program)."""
    try:
        opts, args = getopt.gnu_getopt(argv, "sfnvhN:o:t:")
    except getopt.GetoptError as exc:
        raise UsageError(str(exc)) from None
    if len(args) != 2:
        raise UsageError("expected SOURCE and MOUNTPOINT")
    source, mountpoint = args
    flags = {flag for flag, _ in opts}
    if "-h" in flags:
        raise UsageError("help")
    sloppy = "-s" in flags
    req = Request(
        source,
        mountpoint,
        None if source == WHOLE_CATALOG else source,
        fake="-f" in flags,
        verbose="-v" in flags,
    )
    for flag, value in opts:
        if flag == "-t" and value not in ("fuse.dlfs", "dlfs", "fuse"):
            raise UsageError(f"this helper mounts fuse.dlfs, not {value}")
        if flag == "-N":
            raise UsageError("-N (another mount namespace) is not supported")
        if flag == "-o":
            for opt in value.split(","):
                _option(req, opt.strip(), sloppy)
    if req.home is None:
        env = os.environ if environ is None else environ
        req.home = env.get("DLFS_HOME") or None
    return req


def _option(req: Request, opt: str, sloppy: bool) -> None:
    key, sep, value = opt.partition("=")
    key = key.replace("-", "_") if sep else key
    if not opt:
        return
    if sep and key in ("home", "cache_dir", "cache_size", "remote"):
        if not value:
            raise UsageError(f"option {key}= needs a value")
        setattr(req, key, value)
    elif opt in IGNORED or opt.startswith(IGNORED_PREFIXES):
        req.ignored.append(opt)
    elif opt in mounts.ALLOWED_OPTIONS:
        if opt not in req.options:
            req.options.append(opt)
    elif sloppy:
        req.ignored.append(opt)
    else:
        allowed = ", ".join(
            sorted([*mounts.ALLOWED_OPTIONS, "home=", "cache_dir=", "cache_size=", "remote="])
        )
        raise InvalidInput(f"unknown mount option {opt!r} (dlfs accepts: {allowed})")


def run(req: Request) -> str:
    """Mount what ``req`` asks for (or, for ``-f``, only check it); the report line."""
    home = Home.at(req.home)
    what = req.ref or "the whole catalog"
    if req.fake:
        mounts.mount_options(req.options)
        if req.remote is not None:
            mounts.resolve_remote_ref(home, req.remote, req.ref)
        else:
            mounts.resolve_ref(home, req.ref)
        mounts.check_mountpoint(home, req.mountpoint)
        return f"{PROG}: would mount {what} of {home.root} at {req.mountpoint}"
    record = mounts.mount(
        home,
        req.mountpoint,
        req.ref,
        options=req.options,
        cache_dir=req.cache_dir,
        cache_size=req.cache_size,
        remote=req.remote,
    )
    return f"{PROG}: mounted {what} ({record.version or 'catalog'}) at {record.mountpoint}"


def main(argv: list[str] | None = None) -> None:
    """Entry point: ``mount.dlfs SOURCE MOUNTPOINT [-sfnv] [-o OPTIONS]``."""
    args = sys.argv[1:] if argv is None else argv
    try:
        req = parse(args)
        line = run(req)
    except UsageError as exc:
        if str(exc) != "help":
            print(f"{PROG}: error: {exc}", file=sys.stderr)
        print(USAGE, file=sys.stderr)
        sys.exit(EXIT_USAGE)
    except DlfsError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        sys.exit(EXIT_FAILURE)
    if req.verbose:
        if req.ignored:
            print(f"{PROG}: ignored options: {','.join(req.ignored)}")
        print(line)
    sys.exit(0)


if __name__ == "__main__":
    main()

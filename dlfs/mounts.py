"""Running mounts: starting the daemon, stale mounts, unmounting, and
:func:`mounted`, the ``with`` block that ``dlfs.mount`` is.

No FUSE import here: the daemon (``dlfsd``) is started as a separate process
(``python -m dlfsd``), and this module only reads ``/proc``, writes small JSON files
and runs ``fusermount3``.

The registry of running mounts is :mod:`dlfs.mountregistry` (its names are
re-exported here). A record whose daemon is gone while ``/proc/mounts`` still lists
the mount is *stale*: :func:`unmount` clears such a mount with ``fusermount3 -u``
(``-z`` as a fallback), and :func:`mount` clears one left on the path it is asked to
use.

:func:`mount` returns only when the mount is usable: the daemon forks into the
background and reports on a pipe, one line, ``ok`` once the kernel has been served a
first request, or ``error: <message>``; if it dies before either, the error names its
log file.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from dlfs import draftlock, versions
from dlfs.catalog import CatalogDB
from dlfs.errors import (
    Conflict,
    DlfsError,
    InvalidInput,
    NotADirectory,
    NotFound,
    Unavailable,
)
from dlfs.home import Home
from dlfs.labelindex import index_labels
from dlfs.mountregistry import (
    FSTYPE,
    MountRecord,
    daemon_alive,
    log_path,
    normalize,
    probe,
    proc_mounts,
    record_at,
    unregister,
)
from dlfs.stores.registry import parse_size
from dlfs.viewspec import ViewSpec

if TYPE_CHECKING:
    from dlfs.handles import Version

READY_TIMEOUT = 60.0
EXIT_TIMEOUT = 10.0

BASE_OPTIONS = ("fsname=dlfs", "subtype=dlfs", "default_permissions")
ALLOWED_OPTIONS = frozenset(
    {
        "rw",
        "allow_other",
        "allow_root",
        "auto_unmount",
        "default_permissions",
        "ro",
        "noatime",
        "nodev",
        "nosuid",
        "noexec",
        "dev",
        "suid",
        "exec",
    }
)


# -- mounting -------------------------------------------------------------------------


def _split(extra: list[str] | tuple[str, ...]) -> list[str]:
    return [o.strip() for group in extra for o in group.split(",") if o.strip()]


def read_only_requested(extra: list[str] | tuple[str, ...] = ()) -> bool:
    """True when the ``-o`` options ask for ``ro`` (a draft mounted read-only)."""
    return "ro" in _split(extra)


def mount_options(
    extra: list[str] | tuple[str, ...] = (), writable: bool = False, shared: bool = False
) -> list[str]:
    """The FUSE mount options: dlfs's own, plus the ``-o`` options a user gave.

    ``-o`` takes comma-separated options; those dlfs knows are accepted
    (``allow_other``, ``allow_root``, ``auto_unmount``, ``noatime``, ``nodev``...),
    anything unknown is refused with one clear line. ``ro`` is added unless the mount
    is ``writable`` (a draft) and the user did not ask for ``ro``; ``rw`` is accepted
    for a draft and refused otherwise. ``allow_other`` is added for a ``shared`` mount
    (a project with a Unix group: :mod:`dlfs.access`).
    """
    options = list(BASE_OPTIONS) + (["allow_other"] if shared else [])
    read_only = not writable
    for opt in _split(extra):
        if opt == "rw":
            if not writable:
                raise InvalidInput(
                    "-o rw: published versions and the catalog are read-only"
                    " (drafts mount read-write)"
                )
            continue
        if opt not in ALLOWED_OPTIONS:
            allowed = ", ".join(sorted(ALLOWED_OPTIONS))
            raise InvalidInput(f"unknown mount option {opt!r} (dlfs accepts: {allowed})")
        if opt == "ro":
            read_only = True
        elif opt not in options:
            options.append(opt)
    if read_only:
        options.append("ro")
    return options


def check_mountpoint(home: Home, mountpoint: str | os.PathLike[str]) -> Path:
    """The normalized mountpoint, ready to mount on.

    A stale dlfs mount there is cleared first. Raises :class:`Conflict` when
    something live is mounted there, :class:`NotFound` or :class:`NotADirectory`
    when the path is not an existing folder.
    """
    path = normalize(mountpoint)
    mounted = proc_mounts()
    if str(path) in mounted:
        source, fstype = mounted[str(path)]
        record = record_at(home, str(path))
        if fstype == FSTYPE and (
            (record is not None and not daemon_alive(record))
            or (record is None and probe(str(path)) == "stale")
        ):
            clear_stale(home, path)
        else:
            owner = f" (pid {record.pid}, {record.ref or 'the whole catalog'})" if record else ""
            raise Conflict(
                f"mountpoint {path} is busy: {source} ({fstype}) is mounted there{owner};"
                f" unmount it first ('dlfs umount {path}')"
            )
    try:
        st = path.stat()
    except FileNotFoundError:
        raise NotFound(f"mountpoint {path} does not exist") from None
    except OSError as exc:
        raise Unavailable(f"mountpoint {path} is unusable: {exc.strerror}") from exc
    if not stat.S_ISDIR(st.st_mode):
        raise NotADirectory(f"mountpoint {path} is not a directory")
    return path


def resolve_ref(home: Home, ref: str | None) -> tuple[str | None, str | None, str]:
    """``(exact ref NAME@ID, version id, mode)`` of what ``ref`` names (``None``: the
    whole catalog, mode ``catalog``). Raises :class:`NotFound` for an unknown ref."""
    if ref is None:
        return None, None, "catalog"
    if not home.exists():
        raise NotFound(f"no catalog at {home.root} (create one with 'dlfs init')")
    db = CatalogDB(home.catalog_path, readonly=True)
    try:
        row = versions.resolve(db, ref)
        ds = db.dataset_by_id(row["dataset"])
        assert ds is not None
        return f"{ds['name']}@{row['id']}", str(row["id"]), str(row["state"])
    finally:
        db.close()


def resolve_remote_ref(home: Home, remote: str, ref: str | None) -> tuple[str, str, str]:
    """``(NAME@ID, version id, "published")`` of what ``ref`` names on the remote
    ``s3://bucket/prefix``; :class:`NotFound` when nothing matches."""
    from dlfs.ops import push
    from dlfs.stores.registry import StoreRegistry

    if ref is None:
        raise InvalidInput("--remote mounts one version: give NAME@SPEC")
    if not home.exists():
        raise NotFound(f"no catalog at {home.root} (create one with 'dlfs init')")
    store = StoreRegistry(home).s3(remote)
    name, vid = push.resolve_remote(store, ref)
    push.read_head(store, name, vid)  # mountable from there: pushed with its folders
    return f"{name}@{vid}", vid, "published"


MAX_WORKERS = 64
"""The most processes one mount may be served by."""


DEFAULT_WORKERS_MAX = 8
"""The default serves with one process per two cores up to this many."""


def default_workers() -> int:
    """How many processes serve a read-only mount when ``--workers`` is not given:
    ``$DLFS_WORKERS``, else one per two cores this process may run on (the readers
    need the others; each worker also pays for passing the turn at reading the
    device, see ``docs/architecture.md``), at least one and at most
    :data:`DEFAULT_WORKERS_MAX`."""
    value = os.environ.get("DLFS_WORKERS")
    if value is None:
        return max(1, min(len(os.sched_getaffinity(0)) // 2, DEFAULT_WORKERS_MAX))
    try:
        count = int(value)
    except ValueError:
        count = 0
    if not 1 <= count <= MAX_WORKERS:
        raise InvalidInput(f"DLFS_WORKERS must be between 1 and {MAX_WORKERS}, not {value!r}")
    return count


def daemon_command(
    home: Home,
    mountpoint: Path,
    ref: str | None,
    exact: str | None,
    options: list[str],
    cache_dir: str | None,
    cache_size: int | None,
    prefetch_memory: int | None = None,
    workers: int | None = None,
    where: str | None = None,
    group_by: str | None = None,
    remote: str | None = None,
) -> list[str]:
    """The command line that runs the daemon for one mount."""
    argv = [sys.executable, "-m", "dlfsd", str(mountpoint), "--home", str(home.root)]
    argv += ["--log", str(log_path(home, mountpoint))]
    if ref is not None and exact is not None:
        argv += ["--ref", exact, "--display-ref", ref]
    for opt in options:
        if opt not in BASE_OPTIONS:
            argv += ["-o", opt]
    if cache_dir is not None:
        argv += ["--cache-dir", cache_dir]
    if cache_size is not None:
        argv += ["--cache-size", str(cache_size)]
    if prefetch_memory is not None:
        argv += ["--prefetch-memory", str(prefetch_memory)]
    if workers is not None:
        argv += ["--workers", str(workers)]
    if where is not None:
        argv += ["--where", where]
    if group_by is not None:
        argv += ["--group-by", group_by]
    if remote is not None:
        argv += ["--remote", remote]
    return argv


def mount(
    home: Home,
    mountpoint: str | os.PathLike[str],
    ref: str | None = None,
    *,
    options: list[str] | tuple[str, ...] = (),
    cache_dir: str | None = None,
    cache_size: str | None = None,
    prefetch_memory: str | None = None,
    foreground: bool = False,
    timeout: float = READY_TIMEOUT,
    workers: int | None = None,
    where: str | None = None,
    group_by: str | None = None,
    remote: str | None = None,
) -> MountRecord:
    """Mount the version ``ref`` names (``None``: the whole catalog) at ``mountpoint``.

    ``remote`` (``s3://bucket/prefix``): mount ``ref`` as pushed there, read from the
    remote without pulling it (:mod:`dlfs.ops.remotemount`); read-only.

    Returns the registry record once the mount answers requests. With
    ``foreground`` the calling process *becomes* the daemon (exec): this never
    returns, and the process exits when the mount is unmounted.

    Everything that can be checked is checked before the daemon starts (ref,
    mountpoint, options, sizes, a draft already mounted read-write), so a bad input
    fails with one clear :class:`DlfsError` and starts nothing. A draft is mounted
    read-write (one writable mount per draft), or read-only with ``-o ro``.

    ``workers`` processes serve a published version or the whole catalog (default:
    :func:`default_workers`); a draft is served by one (see ``docs/architecture.md``).

    ``where`` and ``group_by`` mount a view of the version (:mod:`dlfs.viewspec`):
    only the items ``where`` selects, under a folder per value of ``group_by``;
    always read-only.
    """
    mount_options(options, writable=True)  # syntax first
    spec = ViewSpec.parse(where, group_by)
    if spec is not None and ref is None:
        raise InvalidInput(
            "--where and --group-by need a REF; on the catalog mount a version's views"
            " are MNT/<dataset>/<version>/@where/EXPR/ and .../@by/KEY/"
        )
    if workers is not None and not 1 <= workers <= MAX_WORKERS:
        raise InvalidInput(f"--workers must be between 1 and {MAX_WORKERS}, not {workers}")
    if workers is None:
        default_workers()  # a bad $DLFS_WORKERS fails here, with one line
    size = None if cache_size is None else parse_size(cache_size)
    ahead = None if prefetch_memory is None else parse_size(prefetch_memory)
    if ahead is not None and ahead <= 0:
        raise InvalidInput("the prefetch memory must be positive, e.g. 512M")
    exact: str | None
    vid: str | None
    if remote is not None:
        if spec is not None:
            raise InvalidInput("--where and --group-by do not apply to --remote mounts yet")
        exact, vid, mode = resolve_remote_ref(home, remote, ref)
    else:
        exact, vid, mode = resolve_ref(home, ref)
    writable = mode == "draft" and not read_only_requested(options) and spec is None
    opts = mount_options(options, writable=writable)
    if writable and vid is not None:
        where = draftlock.mounted_at(home, vid)
        if where is not None:
            raise Conflict(
                f"draft {vid} is already mounted read-write {where}: a draft has at most"
                " one writable mount (unmount it, or mount this one with -o ro)"
            )
    path = check_mountpoint(home, mountpoint)
    if spec is not None and spec.group is not None and spec.group.is_label and vid is not None:
        _index_labels(home, vid)
    if cache_dir is not None:
        cache_dir = str(Path(cache_dir).expanduser().absolute())
    home.logs.mkdir(mode=0o700, parents=True, exist_ok=True)
    argv = daemon_command(
        home, path, ref, exact, opts, cache_dir, size, ahead, workers, where, group_by, remote
    )
    if foreground:
        _exec_foreground(argv)
    return _start_background(home, path, argv, timeout)


def _index_labels(home: Home, vid: str) -> None:
    """Index the labels of a published version's folders not indexed yet (a version
    published before the index existed, or pulled): see :mod:`dlfs.labelindex`."""
    db = CatalogDB(home.catalog_path)
    try:
        with db.transaction():
            row = db.version_get(vid)
            if row is not None and row["state"] == "published":
                index_labels(db, row["root"])
    finally:
        db.close()


def _exec_foreground(argv: list[str]) -> NoReturn:
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(argv[0], [*argv, "--foreground"])


def _start_background(home: Home, path: Path, argv: list[str], timeout: float) -> MountRecord:
    log = log_path(home, path)
    read_fd, write_fd = os.pipe()
    try:
        with open(log, "ab") as log_file:
            os.chmod(log, 0o600)
            # The child forks the real daemon and exits at once (so it is reaped
            # here and the daemon is nobody's zombie); the daemon keeps write_fd.
            proc = subprocess.Popen(
                [*argv, "--daemonize", "--ready-fd", str(write_fd)],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=log_file,
                pass_fds=(write_fd,),
                cwd="/",
            )
        os.close(write_fd)
        write_fd = -1
        pid, outcome = _read_report(read_fd, timeout)
        code = proc.wait(timeout=timeout)
    finally:
        if write_fd >= 0:
            os.close(write_fd)
        os.close(read_fd)
    if outcome == "ok":
        record = record_at(home, str(path))
        if record is None:
            raise Unavailable(f"the daemon mounted {path} but left no record; see {log}")
        return record
    if outcome is not None and outcome.startswith("error: "):
        raise _daemon_error(outcome[len("error: ") :])
    if outcome is None:
        if pid is not None:
            # Our own daemon, stuck: stop it (SIGTERM unmounts if it got that far).
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        raise Unavailable(f"the dlfs daemon did not get ready in {timeout:.0f} s; see {log}")
    raise Unavailable(
        f"the dlfs daemon exited (status {code}) before {path} was mounted; see {log}"
    )


def _daemon_error(message: str) -> DlfsError:
    kind, _, text = message.partition(": ")
    classes: dict[str, type[DlfsError]] = {
        "NotFound": NotFound,
        "Conflict": Conflict,
        "InvalidInput": InvalidInput,
        "NotADirectory": NotADirectory,
    }
    return classes.get(kind, Unavailable)(text or message)


def _read_report(fd: int, timeout: float) -> tuple[int | None, str | None]:
    """What the daemon reports on its pipe: ``(pid, outcome)``.

    The daemon writes ``pid N`` and then ``ok`` or ``error: <message>``, one per line.
    The outcome is ``""`` if the pipe closed first and None after ``timeout``.
    """
    deadline = time.monotonic() + timeout
    data = b""
    pid: int | None = None
    while True:
        *lines, rest = data.split(b"\n")
        for raw in lines:
            line = raw.decode(errors="replace")
            if line.startswith("pid ") and line[4:].isdigit():
                pid = int(line[4:])
            elif line:
                return pid, line
        left = deadline - time.monotonic()
        if left <= 0:
            return pid, None
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            return pid, None
        chunk = os.read(fd, 4096)
        if not chunk:
            return pid, ""
        data = rest + chunk


# -- unmounting -----------------------------------------------------------------------


def fusermount(path: str, lazy: bool = False) -> tuple[bool, str]:
    """Run ``fusermount3 -u [-z] path``; ``(succeeded, stderr)``."""
    cmd = ["fusermount3", "-u", *(["-z"] if lazy else []), path]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        raise Unavailable("fusermount3 is not installed (Debian: apt-get install fuse3)") from None
    return proc.returncode == 0, proc.stderr.strip()


def clear_stale(home: Home, mountpoint: str | os.PathLike[str]) -> None:
    """Unmount a mount nobody serves (``-z`` when a plain unmount fails) and forget it."""
    path = str(normalize(mountpoint))
    if path in proc_mounts():
        ok, err = fusermount(path)
        if not ok:
            ok, err = fusermount(path, lazy=True)
        if not ok and path in proc_mounts():
            raise Conflict(f"cannot clear the stale mount at {path}: {err}")
    unregister(home, path)


def _wait_gone(record: MountRecord, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while daemon_alive(record):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def unmount(home: Home, mountpoint: str | os.PathLike[str], lazy: bool = False) -> str:
    """Unmount a dlfs mount and wait for its daemon to exit; return what was done
    (``unmounted``, ``detached`` or ``cleared stale mount``).

    A mount in use fails with :class:`Conflict` unless ``lazy``: then it is detached
    at once and its daemon keeps serving the files still open, exiting after the
    last one is closed. Raises :class:`NotFound` when nothing is mounted
    there and :class:`InvalidInput` for a mount that is not dlfs's.
    """
    path = str(normalize(mountpoint))
    mounted = proc_mounts()
    record = record_at(home, path)
    if path in mounted and mounted[path][1] != FSTYPE:
        raise InvalidInput(f"{path} is not a dlfs mount ({mounted[path][1]})")
    alive = record is not None and daemon_alive(record)
    if path not in mounted:
        if record is None:
            raise NotFound(f"nothing is mounted at {path}")
        if alive:
            _stop(record)
        unregister(home, path)
        return "unmounted"
    if record is None and probe(path) != "stale":
        # A live dlfs mount of another catalog (or an unregistered one): unmount it.
        ok, err = fusermount(path, lazy)
        if not ok:
            raise _busy(path, err)
        return "unmounted"
    if not alive:
        clear_stale(home, path)
        return "cleared stale mount"
    assert record is not None
    ok, err = fusermount(path, lazy)
    if not ok:
        raise _busy(path, err)
    if lazy:
        # Detached: the daemon serves the files still open, then exits by itself.
        return "detached"
    if not _wait_gone(record, EXIT_TIMEOUT):
        _stop(record)
    unregister(home, path, record.pid)
    return "unmounted"


def _busy(path: str, err: str) -> Conflict:
    if "busy" in err.lower():
        return Conflict(
            f"{path} is busy: a process has files open there;"
            " close them, or detach it now with 'dlfs umount --lazy'"
        )
    return Conflict(f"cannot unmount {path}: {err or 'fusermount3 failed'}")


def _stop(record: MountRecord) -> None:
    """Ask the daemon of ``record`` to exit (SIGTERM unmounts cleanly) and wait."""
    if daemon_alive(record):
        try:
            os.kill(record.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        _wait_gone(record, EXIT_TIMEOUT)


# -- for the length of a with block (dlfs.mount) ----------------------------------------


@contextlib.contextmanager
def mounted(
    ref: str | Version | None = None,
    mountpoint: str | os.PathLike[str] | None = None,
    *,
    home: str | os.PathLike[str] | None = None,
    options: Sequence[str] = (),
    cache_dir: str | None = None,
    cache_size: str | None = None,
    prefetch_memory: str | None = None,
    timeout: float = READY_TIMEOUT,
    workers: int | None = None,
    where: str | None = None,
    group_by: str | None = None,
    remote: str | None = None,
) -> Iterator[Path]:
    """Mount a version for the length of a ``with`` block; yield its root folder.

    The mount is made exactly as ``dlfs mount`` makes it (:func:`dlfs.mounts.mount`:
    a background daemon, ready when this returns) in a new private temporary folder,
    or at ``mountpoint`` when given, and unmounted when the block ends, also when it
    raises. Files still open then (a ``DataLoader`` worker that has not exited...)
    do not keep it: the mount is detached, and its daemon exits once they are
    closed. The temporary folder is removed.

    ``ref`` is a ref (``"cats@v1"``, ``"cats"`` for ``cats@latest``), a
    :class:`Version`, or ``None`` for the whole catalog. ``home`` is the catalog
    (default ``$DLFS_HOME``; a :class:`Version` brings its own). ``options``,
    ``cache_dir``, ``cache_size``, ``prefetch_memory``, ``workers``, ``where``,
    ``group_by`` and ``remote`` are those of ``dlfs mount`` (``where`` and ``group_by``
    mount a read-only view: ``dlfs.mount("cats@v1", group_by="label")``; ``remote``,
    ``s3://bucket/prefix``, mounts ``ref`` as pushed there, not pulled).

    ```python
    with dlfs.mount("cats@v1") as root:
        print(sorted(p.name for p in root.iterdir()))
    ```
    """
    if ref is not None and not isinstance(ref, str):  # a Version handle
        home = ref.catalog.home.root if home is None else home
        ref = ref.ref
    catalog_home = Home.at(home)
    made: Path | None = None
    if mountpoint is None:
        made = target = Path(tempfile.mkdtemp(prefix="dlfs-mount-"))
    else:
        target = Path(mountpoint)
    try:
        record = mount(
            catalog_home,
            target,
            ref,
            options=list(options),
            cache_dir=cache_dir,
            cache_size=cache_size,
            prefetch_memory=prefetch_memory,
            timeout=timeout,
            workers=workers,
            where=where,
            group_by=group_by,
            remote=remote,
        )
    except BaseException:
        if made is not None:
            made.rmdir()
        raise
    root = Path(record.mountpoint)
    try:
        yield root
    except BaseException:
        # The block's own error is what the caller needs: an unmount problem is not
        # allowed to replace it.
        with contextlib.suppress(DlfsError):
            _unmount(catalog_home, root)
        raise
    else:
        _unmount(catalog_home, root)
    finally:
        if made is not None:
            with contextlib.suppress(OSError):
                made.rmdir()


def _unmount(home: Home, root: Path) -> None:
    """Unmount ``root``; detach it (``--lazy``) when files are still open there."""
    try:
        unmount(home, root)
    except Conflict:
        unmount(home, root, lazy=True)

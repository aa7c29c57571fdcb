"""The registry of running mounts, and what ``/proc`` says about them.

The registry is one JSON file per running mount under ``<home>/mounts/``, named by a
hash of the mountpoint, written by the daemon once its mount exists and removed by
the daemon when it unmounts. A record whose daemon is gone while ``/proc/mounts``
still lists the mount is *stale*: the kernel answers "Transport endpoint is not
connected" there (:mod:`dlfs.mounts` clears such mounts).

This module only reads ``/proc`` and reads and writes the small JSON files; starting
and stopping daemons is :mod:`dlfs.mounts`, which re-exports these names.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dlfs import draftlock
from dlfs.home import Home

FSTYPE = "fuse.dlfs"


@dataclass
class MountRecord:
    """What the registry knows about one mount."""

    mountpoint: str
    ref: str | None
    """The ref as given (``None``: the whole catalog)."""
    version: str | None
    """The version id mounted (``None``: the whole catalog)."""
    pid: int
    pid_start: int
    """The daemon's start time in clock ticks since boot (``/proc/PID/stat``), so a
    recycled pid is not mistaken for the daemon."""
    log: str
    started_at: float
    mode: str = "published"
    """``published``, ``writable`` (a draft served read-write), ``draft`` (a draft
    served read-only, ``-o ro``) or ``catalog``."""
    options: list[str] = field(default_factory=list)
    cache_dir: str | None = None
    cache_size: int | None = None
    prefetch_memory: int | None = None
    view: str = ""
    """A view's options (``--where ... --group-by ...``); empty for a plain mount."""
    workers: list[int] = field(default_factory=list)
    """The pids of every process serving the mount, the daemon (``pid``) first; empty
    until they all serve (and for a daemon serving alone, before ``--workers``)."""

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MountRecord:
        """The record from :meth:`to_json`'s output (unknown keys ignored)."""
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class MountStatus:
    """A mount as ``dlfs mounts`` shows it.

    ``state`` is ``ok`` (served by a live daemon), ``stale`` (the daemon is gone or
    does not answer; clear it with ``dlfs umount``) or ``unmounted`` (the daemon is
    alive but the mount is not there: starting or stopping).
    """

    mountpoint: str
    ref: str | None
    version: str | None
    pid: int | None
    state: str
    mode: str | None = None
    log: str | None = None
    started_at: float | None = None
    workers: list[int] = field(default_factory=list)
    """The pids of the processes serving the mount (see :class:`MountRecord`)."""
    view: str = ""
    """A view's options (see :class:`MountRecord`)."""

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


# -- mountpoints and /proc ------------------------------------------------------------


def normalize(mountpoint: str | os.PathLike[str]) -> Path:
    """The absolute, symlink-free form of a mountpoint (without touching a stale mount)."""
    return Path(os.path.realpath(os.path.abspath(os.path.expanduser(os.fspath(mountpoint)))))


def record_path(home: Home, mountpoint: str | os.PathLike[str]) -> Path:
    """Where the record of the mount at ``mountpoint`` lives."""
    return _record_file(home, str(normalize(mountpoint)))


def _record_file(home: Home, normalized: str) -> Path:
    # No realpath here: the daemon calls this while its own mount may not answer.
    key = hashlib.sha256(os.fsencode(normalized)).hexdigest()[:20]
    return home.mounts / f"{key}.json"


def log_path(home: Home, mountpoint: str | os.PathLike[str]) -> Path:
    """The log file of the daemon serving ``mountpoint``."""
    return home.logs / f"mount-{record_path(home, mountpoint).stem}.log"


def _unescape(field_: str) -> str:
    # /proc/mounts escapes space, tab, newline and backslash as \ooo.
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field_)


def proc_mounts() -> dict[str, tuple[str, str]]:
    """Every mount of this mount namespace: mountpoint -> ``(source, fstype)``."""
    found: dict[str, tuple[str, str]] = {}
    with open("/proc/self/mounts", encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3:
                found[_unescape(parts[1])] = (_unescape(parts[0]), parts[2])
    return found


def process_start(pid: int) -> int | None:
    """The start time of a live process (clock ticks since boot); None if it is gone
    or a zombie."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            data = f.read()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: split after the last ')'.
    fields = data[data.rfind(")") + 2 :].split()
    if not fields or fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def daemon_alive(record: MountRecord) -> bool:
    """True while the process that wrote ``record`` runs."""
    return process_start(record.pid) == record.pid_start


def probe(mountpoint: str, timeout: float = 2.0) -> str:
    """``ok``, ``stale`` (ENOTCONN: nobody serves it) or ``hung`` (no answer in time).

    Lists the folder (the kernel never caches listings here) in a helper thread, so
    a hung daemon cannot hang the caller.
    """
    result: list[str] = []

    def run() -> None:
        try:
            with os.scandir(mountpoint) as it:
                next(it, None)
            result.append("ok")
        except OSError as exc:
            result.append("stale" if exc.errno in (errno.ENOTCONN, errno.ECONNABORTED) else "ok")

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    return result[0] if result else "hung"


# -- the registry -----------------------------------------------------------------------


def register(home: Home, record: MountRecord) -> Path:
    """Write the record of a running mount (atomically); return its path."""
    home.mounts.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = _record_file(home, record.mountpoint)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record.to_json(), indent=2))
    os.replace(tmp, path)
    return path


def unregister(home: Home, mountpoint: str, pid: int | None = None) -> None:
    """Remove the record of the *normalized* ``mountpoint`` (only if it belongs to
    ``pid``, when given). Never touches the mountpoint itself."""
    path = _record_file(home, mountpoint)
    record = _load(path)
    if record is not None and pid is not None and record.pid != pid:
        return
    path.unlink(missing_ok=True)


def read_record(home: Home, mountpoint: str | os.PathLike[str]) -> MountRecord | None:
    """The record of ``mountpoint``, or None."""
    return _load(record_path(home, mountpoint))


def record_at(home: Home, normalized: str) -> MountRecord | None:
    """The record of an already *normalized* mountpoint, or None; the path itself is
    not touched (its mount may be stale)."""
    return _load(_record_file(home, normalized))


def _load(path: Path) -> MountRecord | None:
    try:
        return MountRecord.from_json(json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def records(home: Home) -> list[MountRecord]:
    """Every record in the registry, by mountpoint."""
    if not home.mounts.is_dir():
        return []
    found = [_load(p) for p in home.mounts.glob("*.json")]
    return sorted((r for r in found if r is not None), key=lambda r: r.mountpoint)


def status(home: Home) -> list[MountStatus]:
    """Every mount of this catalog, and every stale dlfs mount on the machine
    (whatever catalog it came from: ``dlfs umount`` can clear it).

    Records left by a daemon that died after its mount was already gone are removed
    on the way (there is nothing to clear).
    """
    mounted = proc_mounts()
    out: list[MountStatus] = []
    seen: set[str] = set()
    for rec in records(home):
        alive = daemon_alive(rec)
        is_mounted = rec.mountpoint in mounted
        if not alive and not is_mounted:
            unregister(home, rec.mountpoint, rec.pid)
            continue
        seen.add(rec.mountpoint)
        state = ("ok" if is_mounted else "unmounted") if alive else "stale"
        version, mode = rec.version, rec.mode
        if mode == "writable" and version:
            became = draftlock.published_as(home, version)
            if became:  # the daemon now serves the version the draft became, read-only
                version, mode = became, "published"
        out.append(
            MountStatus(
                rec.mountpoint,
                rec.ref,
                version,
                rec.pid,
                state,
                mode,
                rec.log,
                rec.started_at,
                rec.workers,
                rec.view,
            )
        )
    for path, (_source, fstype) in sorted(mounted.items()):
        # Another catalog's live mounts are its business; a dead one is anyone's.
        if fstype == FSTYPE and path not in seen and probe(path) == "stale":
            out.append(MountStatus(path, None, None, None, "stale"))
    return out

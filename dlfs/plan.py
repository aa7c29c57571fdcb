"""The access plan: a reader says in which order it will read files, and the daemon
warms them a bounded distance ahead of it.

**The channel.** A plan is a file of paths, one a line (UTF-8, relative to the mount
root), written by the client into a private spool folder (:func:`spool`). The client
hands it to the daemon with a ``getxattr`` on the mount root whose *name* carries the
plan file's path: ``user.dlfs.plan=/run/user/1000/dlfs-plans/....plan``; the value
returned is the daemon's answer (``ok 1000`` or ``error NotFound: ...``). Why a read
of an attribute: it is a FUSE request, so it works on every kind of mount alike
(published versions and the catalog mount are mounted ``ro``, where the kernel refuses
``setxattr`` and any write to a control file with ``EROFS`` before the daemon hears of
it); it needs no socket, listener thread or stale socket file; it reaches the daemon
with the kernel's permission check and the caller's uid (the daemon reads only a
regular file that uid owns); and an attribute name holds a path (255 bytes) where a
value could not hold a plan of 100,000 paths (64 KiB). The getxattr is answered once
per plan file: the kernel may ask twice (a size probe, then the value), and the second
ask gets the first answer (:class:`AccessPlan` keys answers by the file's inode and
mtime).

**Bad input.** A plan naming a path that is not a file of the mount is refused as a
whole, with one error naming the first few (``NotFound: 2 of 1000 planned paths are
not files in the mount: a.jpg, b/c.jpg``), and the plan in force, if any, stays.

**Withdrawing.** An empty plan withdraws the plan in force (``dlfs.prefetch(mnt, [])``,
:meth:`Plan.cancel`, ``dlfs prefetch MNT --cancel``). A new plan replaces the old one.
The plan file stays in the spool while its plan is in force, and the client removes it
when the plan is replaced or withdrawn; the daemon drops a plan whose file is gone
within :data:`CHECK_EVERY` opens that move it on (one ``stat`` each). That is how a
plan handed to one process of a mount served by several (each any request may reach)
is withdrawn by a request that reached another.

**Ahead of the reader.** The daemon resolves the paths when the plan arrives, warms
the first :data:`AHEAD_FILES` files (at most :data:`AHEAD_BYTES` bytes, at least one
file) with :meth:`dlfs.reads.FileReads.warm`, and moves on as the reader does: the
*position* is the furthest plan entry this process saw opened (the first entry past
the position with the opened file's blob), and the plan keeps warming up to
:data:`AHEAD_FILES` entries past it. With several processes serving one mount, the one
holding the plan sees only its share of the opens; since the position is the furthest
entry seen, not a count, it lags the reader by the few files the other processes
served since, and the lead stays close to :data:`AHEAD_FILES`. The caches it fills (the
S3 disk block cache, the page cache) are shared by all processes. Nothing runs in the
background of its own: warming happens when the plan arrives and on opens, and stops
when the mount's reads are closed (unmount).
"""

from __future__ import annotations

import bisect
import logging
import os
import secrets
import stat
import tempfile
from collections.abc import Awaitable, Callable, Generator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar

from dlfs import errors
from dlfs.errors import DlfsError, InvalidInput, NotFound
from dlfs.nodes import Node, Role
from dlfs.objects import blob_id

if TYPE_CHECKING:
    from dlfs.reads import FileReads

log = logging.getLogger(__name__)

T = TypeVar("T")

XATTR = "user.dlfs.plan"
"""The attribute name of the channel: ``XATTR`` alone withdraws the plan in force,
``XATTR + "=" + path`` gives the plan in file ``path``."""

AHEAD_FILES = 64
"""Plan entries warmed past the reader's position at most."""

AHEAD_BYTES = 256 << 20
"""Bytes of those entries at most (one file is always warmed, whatever its size)."""

MAX_PLAN_BYTES = 256 << 20
"""A larger plan file is refused (about 4 million paths)."""

CHECK_EVERY = 8
"""Advances between two checks that the plan file still exists (one ``stat``)."""

RESOLVE_STEP = 32
"""Paths resolved between two checkpoints of the daemon's event loop."""

SHOW_MISSING = 5
"""Missing paths named in the error of a refused plan."""


class PlanView(Protocol):
    """What a plan needs of a view (:class:`dlfs.view.View`, :class:`DraftView`)."""

    reads: FileReads

    def root(self) -> Node: ...
    def lookup(self, parent: Node, name: str) -> Node: ...
    def readlink(self, node: Node) -> str: ...


# -- the daemon side ------------------------------------------------------------------


class AccessPlan:
    """The plan in force in one daemon process, over one view.

    :meth:`answer` (:meth:`request` without an event loop) answers the channel's
    ``getxattr``; :meth:`opened` is told of every file opened while :attr:`active`
    (the daemon checks that attribute first, so a mount without a plan pays one
    attribute read per open). Both run on the daemon's event loop and never wait on
    a fetch.
    """

    def __init__(
        self, view: PlanView, ahead_files: int = AHEAD_FILES, ahead_bytes: int = AHEAD_BYTES
    ) -> None:
        self._view = view
        self._ahead_files = max(1, ahead_files)
        self._ahead_bytes = ahead_bytes
        self._nodes: list[Node] = []
        self._at: dict[str, list[int]] = {}
        """Blob -> the plan indices that read it, ascending."""
        self._position = -1
        """The furthest plan entry seen opened."""
        self._issued = -1
        """The last plan entry handed to :meth:`FileReads.warm`."""
        self._file: tuple[str, int] | None = None
        """The plan file (path, inode): the plan holds while it exists."""
        self._offsets: list[int] = [0]
        """``_offsets[i]``: the bytes of the plan's first ``i`` files."""
        self._advances = 0
        self.active = False
        """True while a plan is in force (an attribute: the daemon reads it per open)."""
        self._answered: tuple[tuple[str, int, int, int], bytes] | None = None

    @property
    def position(self) -> int:
        """The furthest plan entry seen opened (-1: none yet)."""
        return self._position

    @property
    def issued(self) -> int:
        """The last plan entry sent to be warmed (-1: none)."""
        return self._issued

    def request(self, name: str, uid: int) -> bytes:
        """Answer the channel's attribute ``name`` asked by ``uid``: take the plan it
        names (or withdraw the plan in force) and return the answer, ``ok N`` or
        ``error CLASS: message`` (the client raises that class)."""
        return _drain(self._answer(name, uid))

    async def answer(self, name: str, uid: int, checkpoint: Callable[[], Awaitable[None]]) -> bytes:
        """:meth:`request` for an event loop: ``await checkpoint()`` after every
        :data:`RESOLVE_STEP` paths resolved, so that a plan of 100,000 paths lets the
        requests of the readers through while it is resolved."""
        steps = self._answer(name, uid)
        while True:
            try:
                next(steps)
            except StopIteration as done:
                return done.value
            await checkpoint()

    def _answer(self, name: str, uid: int) -> Generator[None, None, bytes]:
        try:
            return (yield from self._request(name, uid)).encode()
        except DlfsError as exc:
            return f"error {type(exc).__name__}: {exc}".encode()

    def _request(self, name: str, uid: int) -> Generator[None, None, str]:
        if name == XATTR:
            self.withdraw()
            return "ok 0"
        if not name.startswith(XATTR + "="):
            raise InvalidInput(f"not a plan attribute: {name}")
        path = name[len(XATTR) + 1 :]
        fd = _open_plan(path, uid)
        try:
            st = os.fstat(fd)
            key = (path, st.st_ino, st.st_mtime_ns, st.st_size)
            if self._answered is not None and self._answered[0] == key:
                return self._answered[1].decode()  # the kernel's second ask
            text = _read_all(fd, st.st_size)
        finally:
            os.close(fd)
        try:
            paths = [line for line in text.decode("utf-8").split("\n") if line]
        except UnicodeDecodeError:
            raise InvalidInput(f"plan file {path} is not UTF-8 text") from None
        if not paths:
            self.withdraw()
            return "ok 0"
        nodes = yield from self._resolve(paths)
        answer = self._take(nodes, (path, st.st_ino))
        self._answered = (key, answer.encode())
        return answer

    def start(self, paths: list[str], file: tuple[str, int]) -> str:
        """Put the plan of ``paths`` (relative to the mount root) in force, from plan
        file ``file`` (path, inode); warm its first files. An empty list withdraws.
        A path that is not a file of the mount refuses the whole plan
        (:class:`NotFound`), leaving the plan in force as it was."""
        if not paths:
            self.withdraw()
            return "ok 0"
        return self._take(self.resolve(paths), file)

    def _take(self, nodes: list[Node], file: tuple[str, int]) -> str:
        at: dict[str, list[int]] = {}
        for i, node in enumerate(nodes):
            at.setdefault(node.blob, []).append(i)
        offsets = [0]
        for node in nodes:
            offsets.append(offsets[-1] + node.size)
        self._nodes, self._at, self._file, self._offsets = nodes, at, file, offsets
        self.active = True
        self._view.reads.planned = True
        self._position = self._issued = -1
        self._advance()
        log.info("access plan of %d files from %s", len(nodes), file[0])
        return f"ok {len(nodes)}"

    def resolve(self, paths: list[str]) -> list[Node]:
        """The file node of each path, through the view; :class:`NotFound` naming the
        first few paths that are not files of the mount."""
        return _drain(self._resolve(paths))

    def _resolve(self, paths: list[str]) -> Generator[None, None, list[Node]]:
        view = self._view
        root = view.root()
        folders: dict[str, Node] = {"": root}
        nodes: list[Node] = []
        missing: list[str] = []
        for i, path in enumerate(paths, 1):
            node = self._walk(view, folders, path)
            if node is None or node.role != Role.FILE:
                missing.append(path)
            else:
                nodes.append(node)
            if i % RESOLVE_STEP == 0:
                yield
        if missing:
            shown = ", ".join(missing[:SHOW_MISSING])
            more = ", ..." if len(missing) > SHOW_MISSING else ""
            raise NotFound(
                f"{len(missing)} of {len(paths)} planned paths are not files in the "
                f"mount: {shown}{more}"
            )
        return nodes

    @staticmethod
    def _walk(view: PlanView, folders: dict[str, Node], path: str) -> Node | None:
        folder, _, name = path.strip("/").rpartition("/")
        parent = folders.get(folder)
        if parent is None:
            parent = AccessPlan._walk(view, folders, folder)
            if parent is None:
                return None
            folders[folder] = parent
        try:
            node = view.lookup(parent, name)
            if node.role == Role.TAG:  # the catalog mount's tag symlinks name a sibling
                node = view.lookup(parent, view.readlink(node))
        except DlfsError:
            return None
        return node

    def withdraw(self) -> None:
        """Drop the plan in force (files already being warmed finish)."""
        if self._file is not None:
            log.info("access plan from %s withdrawn", self._file[0])
        self._nodes, self._at, self._file, self._offsets = [], {}, None, [0]
        self.active = False
        self._view.reads.planned = False
        self._position = self._issued = -1

    def opened(self, node: Node) -> None:
        """A file was opened: if the plan reads it past the position, that is the new
        position, and the plan warms further ahead."""
        indices = self._at.get(node.blob)
        if indices is None:
            return
        i = bisect.bisect_right(indices, self._position)
        if i == len(indices):
            return  # read before, as planned; the position stays
        self._position = indices[i]
        if self._issued < self._position + self._ahead_files:
            self._advances += 1
            if self._advances % CHECK_EVERY == 0 and not self._still_given():
                return
            self._advance()

    def _still_given(self) -> bool:
        """False (and the plan withdrawn) once its plan file was removed or replaced:
        the client withdrew it, maybe through another process of this mount."""
        assert self._file is not None
        path, ino = self._file
        try:
            same = os.stat(path).st_ino == ino
        except OSError:
            same = False
        if not same:
            self.withdraw()
        return same

    def _advance(self) -> None:
        nodes = self._nodes
        start = max(self._issued, self._position) + 1
        end = min(len(nodes), self._position + 1 + self._ahead_files)
        offsets, base = self._offsets, self._offsets[self._position + 1]
        reads = self._view.reads
        for i in range(start, end):
            node = nodes[i]
            if i > self._position + 1 and offsets[i + 1] - base > self._ahead_bytes:
                break
            try:
                queued = reads.warm(node)
            except DlfsError as exc:  # e.g. the store cannot be opened: reads will say
                log.debug("warming %s failed: %s", node.blob, exc)
                queued = True
            if not queued and node.blob and node.size > 0:
                break  # the warming pool is full: try again at the next open
            self._issued = i


def _drain(steps: Generator[None, None, T]) -> T:
    """Run a generator of steps to its end; its return value."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value


def _open_plan(path: str, uid: int) -> int:
    """An open descriptor of plan file ``path``: a regular file owned by ``uid`` (or
    any, for root), not a symlink, at most :data:`MAX_PLAN_BYTES`."""
    if not os.path.isabs(path):
        raise InvalidInput(f"the plan file must be an absolute path: {path}")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as exc:
        raise NotFound(f"cannot open plan file {path}: {exc.strerror}") from None
    st = os.fstat(fd)
    problem = None
    if not stat.S_ISREG(st.st_mode):
        problem = "not a regular file"
    elif uid != 0 and st.st_uid != uid:
        problem = "owned by another user"
    elif st.st_size > MAX_PLAN_BYTES:
        problem = f"larger than {MAX_PLAN_BYTES >> 20} MiB"
    if problem is not None:
        os.close(fd)
        raise InvalidInput(f"plan file {path} is {problem}")
    return fd


def _read_all(fd: int, size: int) -> bytes:
    chunks: list[bytes] = []
    while True:
        chunk = os.read(fd, max(size, 1 << 16))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


# -- the client side ------------------------------------------------------------------


@dataclass
class Plan:
    """A plan handed to a mount (what :func:`prefetch` returns)."""

    mountpoint: Path
    files: int
    """How many files the plan names (0: a withdrawal)."""
    file: Path | None
    """The plan file in the spool, kept while the plan is in force."""

    def cancel(self) -> None:
        """Withdraw the plan (a no-op when another plan replaced it already)."""
        if self.file is None:
            return
        if self.file.exists():
            withdraw(self.mountpoint)
        self.file = None


def spool() -> Path:
    """The private folder of this user's plan files: ``$XDG_RUNTIME_DIR/dlfs-plans``
    or ``<tmp>/dlfs-plans-<uid>``, mode 0700, made on first use."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime):
        folder = Path(runtime) / "dlfs-plans"
    else:
        folder = Path(tempfile.gettempdir()) / f"dlfs-plans-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    st = folder.lstat()
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        raise InvalidInput(f"the plan spool {folder} is not a folder of this user")
    return folder


def _mount_tag(mountpoint: Path) -> str:
    """The prefix of the plan files of one mount in the spool."""
    return blob_id(os.fsencode(mountpoint))[:16]


def relative_paths(mountpoint: Path, paths: Iterable[str | os.PathLike[str]]) -> list[str]:
    """``paths`` relative to the mount root: relative ones as given, absolute ones
    under ``mountpoint``; :class:`InvalidInput` for one outside it, one with ``..``,
    or one with a newline."""
    root = os.fspath(mountpoint)
    out = []
    for p in paths:
        text = os.fspath(p)
        if os.path.isabs(text):
            rel = os.path.relpath(text, root)
            if rel == "." or rel.startswith(".."):
                raise InvalidInput(f"not a path under the mount {root}: {text}")
            text = rel
        norm = os.path.normpath(text) if text else text
        if not text or norm == "." or norm.startswith("..") or "\n" in text or "\0" in text:
            raise InvalidInput(f"not a path of a file in the mount: {text!r}")
        out.append(norm)
    return out


def ask(mountpoint: Path, name: str) -> str:
    """Send the channel's ``getxattr`` ``name`` to the mount at ``mountpoint`` and
    return the daemon's answer, raising the error it names."""
    try:
        answer = os.getxattr(mountpoint, name).decode("utf-8", "replace")
    except OSError as exc:
        raise InvalidInput(
            f"{mountpoint} does not take access plans (is it a dlfs mount?): {exc.strerror}"
        ) from None
    if answer.startswith("ok "):
        return answer
    kind, _, message = answer.removeprefix("error ").partition(": ")
    cls = getattr(errors, kind, DlfsError)
    if not (isinstance(cls, type) and issubclass(cls, DlfsError)):
        cls = DlfsError
    raise cls(message or answer)


def give(mountpoint: Path, paths: list[str]) -> Plan:
    """Hand the plan of ``paths`` (relative to the mount root) to the mount at
    ``mountpoint``, replacing the plan in force; an empty list withdraws it."""
    if not paths:
        withdraw(mountpoint)
        return Plan(mountpoint, 0, None)
    folder = spool()
    tag = _mount_tag(mountpoint)
    file = folder / f"{tag}-{secrets.token_hex(8)}.plan"
    if len(os.fsencode(f"{XATTR}={file}")) > 255:
        raise InvalidInput(f"the plan spool path is too long for the channel: {folder}")
    data = "".join(p + "\n" for p in paths).encode("utf-8", "surrogateescape")
    fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        answer = ask(mountpoint, f"{XATTR}={file}")
    except BaseException:
        file.unlink(missing_ok=True)
        raise
    _remove_plans(folder, tag, keep=file)
    return Plan(mountpoint, int(answer.split()[1]), file)


def withdraw(mountpoint: Path) -> None:
    """Withdraw the plan in force at ``mountpoint`` (none in force: nothing happens)."""
    folder = spool()
    tag = _mount_tag(mountpoint)
    _remove_plans(folder, tag)
    ask(mountpoint, XATTR)


def _remove_plans(folder: Path, tag: str, keep: Path | None = None) -> None:
    for old in folder.glob(f"{tag}-*.plan"):
        if old != keep:
            old.unlink(missing_ok=True)


def prefetch(
    target: str | os.PathLike[str],
    paths: Iterable[str | os.PathLike[str]],
    *,
    home: str | os.PathLike[str] | None = None,
) -> Plan:
    """Tell the mount ``target`` the exact order in which files will be read: its
    daemon warms them (S3 blocks into the block cache, local files into the page
    cache) a bounded number of files ahead of the reader (see :mod:`dlfs.plan`).

    ``target`` is a mountpoint (a path, or a string naming a folder), or a ref
    (``"pets@v1"``) mounted once in catalog ``home`` (default ``$DLFS_HOME``).
    ``paths`` are relative to the mount root, or absolute under it. The plan replaces
    the one in force; an empty ``paths`` withdraws it, as :meth:`Plan.cancel` does.
    Raises :class:`NotFound` naming the first few paths that are not files of the
    mount (the plan in force is kept), :class:`InvalidInput` for a path outside it,
    and :class:`NotFound` / :class:`Ambiguous` for a ref mounted nowhere / twice.
    """
    mountpoint = mountpoint_of(target, home)
    return give(mountpoint, relative_paths(mountpoint, paths))


def mountpoint_of(
    target: str | os.PathLike[str], home: str | os.PathLike[str] | None = None
) -> Path:
    """The mountpoint ``target`` names: itself when it is a folder, else the one
    mount of ref ``target`` recorded in catalog ``home``."""
    from dlfs import mountregistry, mounts  # the catalog: only for a ref
    from dlfs.errors import Ambiguous
    from dlfs.home import Home

    if not isinstance(target, str) or os.path.isdir(target):
        return Path(os.path.abspath(target))
    if os.sep in target or target in (".", ".."):
        raise NotFound(f"no such folder: {target}")
    where = Home.at(home)
    exact, version, _mode = mounts.resolve_ref(where, target)
    found = sorted(
        {
            r.mountpoint
            for r in mountregistry.records(where)
            if r.version == version or (exact is not None and r.ref == exact)
        }
    )
    if not found:
        raise NotFound(f"{target} is not mounted (dlfs mounts lists the mounts)")
    if len(found) > 1:
        raise Ambiguous(f"{target} is mounted at {', '.join(found)}: name the mountpoint")
    return Path(found[0])

"""Many S3 GETs in flight from one thread: an asyncio loop over keep-alive connections.

A thread per GET costs the daemon ~1.4 ms of CPU and dozens of context switches per
cold file (GIL hand-offs between the worker, the fetch pool and the caller), and caps
the GETs in flight at the number of threads: at 30 ms a request, 8 threads read ~250
small files/s. A :class:`GetLoop` runs one background thread with an asyncio event
loop that sends GETs signed by :class:`dlfs.stores.s3http.SignedGetter` (the same
SigV4 headers, the same ``User-Agent``) on keep-alive connections it multiplexes, up
to :data:`MAX_STREAMS` background GETs at once plus the ones a reader waits for.
:meth:`GetLoop.get` returns a ``concurrent.futures.Future`` at once.

Every rule of the read path holds here:

- the body is read whole (``Content-Length`` or chunked), a body cut short or a
  ``Content-Range`` that is not the one asked for is retried;
- ``check`` runs on the body in the loop thread before the future completes: it
  verifies the bytes (the blob id, or each block's manifest hash) and raises
  :class:`dlfs.errors.BadBody` to have them fetched again; a future never holds
  unverified bytes;
- retries follow the store's :class:`dlfs.stores.retry.RetryPolicy`: only temporary
  failures, each attempt bounded by ``attempt_timeout``, the whole call by
  ``timeout`` (then :class:`Unavailable`, or :class:`Corrupt` for bytes that kept
  failing their check), one attempt while the endpoint is presumed down;
- an answer this module does not understand (a redirect, an unfamiliar error) is
  handed to ``fallback``, the blocking boto3 path, run in a thread;
- :meth:`GetLoop.close` cancels every GET in flight (their futures are cancelled)
  and stops the thread at once: an unmount never waits for the network.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

from dlfs.errors import BadBody, Corrupt, TemporaryFailure
from dlfs.stores.retry import RetryPolicy, call_async
from dlfs.stores.s3http import USER_AGENT, SignedGetter, _connect_name, _raise_failure

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_STREAMS = 64
"""Background GETs (prefetch, read-ahead) in flight at most; a GET a reader waits for
does not queue behind them."""

MAX_IDLE = 96
"""Idle keep-alive connections kept."""

_LINE_MAX = 64 * 1024


class _Fallback(Exception):
    """The answer is one to leave to boto3."""


class GetLoop:
    """GETs of one endpoint, many at once, from one event-loop thread (see the module
    docstring). Thread-safe; the thread starts on the first GET."""

    def __init__(self, getter: SignedGetter, retry: RetryPolicy, streams: int = MAX_STREAMS):
        self.getter = getter
        self.retry = retry
        self.streams = streams
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._idle: list[_Connection] = []
        self._slots: asyncio.Semaphore | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.in_flight = 0
        """GETs started and not finished (read by tests and benchmarks)."""

    # -- the thread ---------------------------------------------------------------------

    def _start(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._closed:
                raise RuntimeError("the GET loop is closed")
            if self._loop is None:
                loop = asyncio.new_event_loop()
                ready = threading.Event()

                def run() -> None:
                    asyncio.set_event_loop(loop)
                    self._slots = asyncio.Semaphore(self.streams)
                    ready.set()
                    try:
                        loop.run_forever()
                    finally:
                        with contextlib.suppress(Exception):
                            loop.close()

                self._thread = threading.Thread(target=run, name="dlfs-s3loop", daemon=True)
                self._thread.start()
                ready.wait()
                self._loop = loop
            return self._loop

    def close(self) -> None:
        """Cancel every GET in flight, close the connections, stop the thread."""
        with self._lock:
            self._closed = True
            loop, self._loop = self._loop, None
        if loop is None:
            return

        async def shutdown() -> None:
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            for conn in self._idle:
                conn.close()
            self._idle.clear()
            if tasks:
                await asyncio.wait(tasks, timeout=1.0)
            await asyncio.sleep(0)  # the transports' close callbacks
            loop.stop()

        with contextlib.suppress(RuntimeError):
            asyncio.run_coroutine_threadsafe(shutdown(), loop)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(3.0)

    # -- GETs ---------------------------------------------------------------------------

    def get(
        self,
        bucket: str,
        key: str,
        byte_range: tuple[int, int] | None,
        total: int | None,
        check: Callable[[bytes], T],
        fallback: Callable[[], T],
        what: str,
        *,
        urgent: bool = False,
        on_error: Callable[[Exception], Exception] | None = None,
    ) -> Future[T]:
        """Start a GET (``byte_range``: first and last byte, inclusive; ``total``: the
        object's recorded size). The future holds ``check(body)``, or the final error.
        ``urgent``: a reader waits for it (it skips the queue of background GETs);
        ``on_error`` maps a final error (a missing object) to the one to raise."""
        fut: Future[T] = Future()
        try:
            loop = self._start()
        except RuntimeError:
            fut.cancel()
            return fut
        args = (bucket, key, byte_range, total, check, fallback, what, urgent, fut, on_error)

        def begin() -> None:
            if fut.done():
                return
            task = loop.create_task(self._call(*args))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

            def dropped(f: Future[T]) -> None:
                if f.cancelled():  # nobody wants it any more: stop the GET
                    with contextlib.suppress(RuntimeError):
                        loop.call_soon_threadsafe(task.cancel)

            fut.add_done_callback(dropped)

        try:
            loop.call_soon_threadsafe(begin)
        except RuntimeError:  # closed meanwhile
            fut.cancel()
        return fut

    async def _call(
        self,
        bucket: str,
        key: str,
        byte_range: tuple[int, int] | None,
        total: int | None,
        check: Callable[[bytes], T],
        fallback: Callable[[], T],
        what: str,
        urgent: bool,
        fut: Future[T],
        on_error: Callable[[Exception], Exception] | None,
    ) -> None:
        try:
            if urgent:
                result = await self._retried(bucket, key, byte_range, total, check, what)
            else:
                assert self._slots is not None
                async with self._slots:
                    if fut.done():
                        return
                    result = await self._retried(bucket, key, byte_range, total, check, what)
        except _Fallback:
            loop = asyncio.get_running_loop()
            try:
                result = await loop.run_in_executor(None, fallback)
            except Exception as exc:
                _settle(fut, None, exc)
                return
        except asyncio.CancelledError:
            fut.cancel()
            raise
        except Exception as exc:
            _settle(fut, None, on_error(exc) if on_error is not None else exc)
            return
        _settle(fut, result, None)

    async def _retried(
        self,
        bucket: str,
        key: str,
        byte_range: tuple[int, int] | None,
        total: int | None,
        check: Callable[[bytes], T],
        what: str,
    ) -> T:
        """What :meth:`RetryPolicy.call` does, without a thread."""

        async def attempt() -> T:
            return check(await self._attempt(bucket, key, byte_range, total))

        return await call_async(self.retry, attempt, what)

    async def _attempt(
        self, bucket: str, key: str, byte_range: tuple[int, int] | None, total: int | None
    ) -> bytes:
        """One GET: the body, checked for range and length (not yet for content)."""
        g = self.getter
        what = f"s3://{bucket}/{key}"
        host, path, query = g.target(bucket, key, None)
        url = f"{path}?{query}" if query else path
        headers = g.sign(host, path, query, g.credentials(), _amz_date())
        if byte_range is not None:
            headers["range"] = f"bytes={byte_range[0]}-{byte_range[1]}"
        headers["user-agent"] = USER_AGENT
        headers["accept-encoding"] = "identity"
        request = (
            f"GET {url} HTTP/1.1\r\n"
            + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            + "\r\n"
        ).encode()
        status, reply, body = await self.exchange(host, request, what)
        if status not in (200, 206):
            _raise_failure(status, body, what)
            raise _Fallback()
        if byte_range is not None:
            first, last = byte_range
            cr = reply.get("content-range", "")
            parts = cr.removeprefix("bytes ").replace("/", "-").split("-")
            if status != 206 or len(parts) != 3 or not all(p.isdigit() for p in parts):
                raise BadBody(f"{what}: the server ignored the byte range")
            if total is not None and int(parts[2]) != total:
                raise Corrupt(f"{what}: the object is {parts[2]} bytes, expected {total}")
            if int(parts[0]) != first:
                raise BadBody(f"{what}: the server sent another range")
            if len(body) != last - first + 1:
                raise BadBody(f"{what}: got {len(body)} of {last - first + 1} bytes")
        elif total is not None and len(body) != total:
            raise BadBody(f"{what}: got {len(body)} bytes, expected {total}")
        return body

    # -- other requests (the write path: dlfs.stores.s3send) ------------------------------

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        """Run ``coro`` on the loop's thread; cancelled by :meth:`close` like a GET."""
        fut: Future[T] = Future()
        try:
            loop = self._start()
        except RuntimeError:
            coro.close()
            fut.cancel()
            return fut

        async def run() -> None:
            try:
                result = await coro
            except asyncio.CancelledError:
                fut.cancel()
                raise
            except Exception as exc:
                _settle(fut, None, exc)
                return
            _settle(fut, result, None)

        def begin() -> None:
            task = loop.create_task(run())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        try:
            loop.call_soon_threadsafe(begin)
        except RuntimeError:
            coro.close()
            fut.cancel()
        return fut

    async def exchange(
        self, host: str, request: bytes, what: str
    ) -> tuple[int, dict[str, str], bytes]:
        """Send one whole request (head and body) on a keep-alive connection to
        ``host``; its status, headers and body. A reused connection the server had
        closed is replaced once; other connection failures are
        :class:`TemporaryFailure`."""
        for again in (True, False):
            conn, reused = await self._connect(host)
            self.in_flight += 1
            try:
                status, reply, body, keep = await conn.exchange(request, what)
            except (ConnectionError, OSError) as exc:
                conn.close()
                if reused and again and not conn.got_bytes:
                    continue  # the server closed an idle keep-alive connection
                raise TemporaryFailure(f"{what}: the connection failed ({exc!r})") from exc
            except BaseException:
                conn.close()
                raise
            finally:
                self.in_flight -= 1
            if keep and len(self._idle) < MAX_IDLE and not self._closed:
                self._idle.append(conn)
            else:
                conn.close()
            return status, reply, body
        raise AssertionError("unreachable")

    async def _connect(self, host: str) -> tuple[_Connection, bool]:
        while self._idle:
            conn = self._idle.pop()
            if conn.usable():
                return conn, True
            conn.close()
        g = self.getter
        loop = asyncio.get_running_loop()
        try:
            _t, conn = await loop.create_connection(
                _Connection,
                _connect_name(host),
                g.port,
                ssl=g._context if g.https else None,
            )
        except OSError as exc:
            raise TemporaryFailure(f"cannot connect to {host}: {exc}") from exc
        return conn, False


class _Connection(asyncio.BufferedProtocol):
    """One keep-alive HTTP/1.1 connection, one exchange at a time. A body with a
    ``Content-Length`` is received straight into a buffer of its size (no copies);
    a chunked one (error replies) is gathered and decoded at its end."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._head = bytearray()
        self._scratch = bytearray(64 * 1024)
        self._body: bytearray | None = None
        self._pos = 0
        self._done: asyncio.Future[None] | None = None
        self._status = 0
        self._headers: dict[str, str] = {}
        self._keep = True
        self._chunked = False
        self._to_eof = False
        self._lost = False
        self.got_bytes = False

    # -- the protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        done = self._done
        if done is not None and not done.done():
            if self._to_eof and self._body is None:
                self._body = bytearray(self._head)
                done.set_result(None)
            else:
                done.set_exception(ConnectionResetError("the server closed the connection"))

    def get_buffer(self, sizehint: int) -> memoryview:
        body = self._body
        if body is not None and not self._chunked and not self._to_eof and self._pos < len(body):
            return memoryview(body)[self._pos :]
        return memoryview(self._scratch)

    def buffer_updated(self, nbytes: int) -> None:
        self.got_bytes = True
        body = self._body
        if body is not None and not self._chunked and not self._to_eof:
            if self._pos < len(body):
                self._pos += nbytes
                if self._pos == len(body):
                    self._finish()
            return  # bytes past the body: nothing is pipelined, ignore them
        self._head += memoryview(self._scratch)[:nbytes]
        self._advance()

    def eof_received(self) -> bool | None:
        return False  # close the transport: connection_lost reports

    # -- one exchange ------------------------------------------------------------------

    def usable(self) -> bool:
        """True when the connection can carry another request."""
        return not self._lost and self.transport is not None and not self.transport.is_closing()

    def close(self) -> None:
        """Close the connection."""
        if self.transport is not None:
            self.transport.close()

    async def exchange(self, request: bytes, what: str) -> tuple[int, dict[str, str], bytes, bool]:
        """Send ``request``; the status, headers, whole body, and whether the
        connection can be kept."""
        assert self.transport is not None
        self._head.clear()
        self._body, self._pos, self._status, self._headers = None, 0, 0, {}
        self._keep, self._chunked, self._to_eof, self.got_bytes = True, False, False, False
        self._done = asyncio.get_running_loop().create_future()
        if self._lost:
            raise ConnectionResetError("the connection is closed")
        self.transport.write(request)
        await self._done
        body = bytes(self._body) if self._body is not None else b""
        return self._status, self._headers, body, self._keep and not self._to_eof

    def _advance(self) -> None:
        """Parse what has come (headers, then a chunked body)."""
        if self._status == 0:
            end = self._head.find(b"\r\n\r\n")
            if end < 0:
                if len(self._head) > _LINE_MAX:
                    self._fail("headers too long")
                return
            lines = bytes(self._head[:end]).decode("latin-1").split("\r\n")
            rest = bytes(self._head[end + 4 :])
            self._head.clear()
            parts = lines[0].split(None, 2)
            if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
                self._fail("not an HTTP answer")
                return
            self._status = int(parts[1])
            self._keep = parts[0] == "HTTP/1.1"
            for line in lines[1:]:
                name, _, value = line.partition(":")
                self._headers[name.strip().lower()] = value.strip()
            conn = self._headers.get("connection", "").lower()
            if conn == "close":
                self._keep = False
            elif conn == "keep-alive":
                self._keep = True
            if "chunked" in self._headers.get("transfer-encoding", "").lower():
                self._chunked = True
                self._head += rest
            elif "content-length" in self._headers:
                try:
                    length = int(self._headers["content-length"])
                except ValueError:
                    self._fail("a bad Content-Length")
                    return
                self._body = bytearray(length)
                n = min(length, len(rest))
                self._body[:n] = rest[:n]
                self._pos = n
                if n == length:
                    self._finish()
                return
            elif self._status in (204, 304) or 100 <= self._status < 200:
                self._body = bytearray()
                self._finish()
                return
            else:
                self._to_eof = True
                self._head += rest
                return
        if self._chunked:
            try:
                body = _dechunk(self._head)
            except TemporaryFailure as exc:
                self._fail(str(exc))
                return
            if body is not None:
                self._body = body
                self._chunked = False
                self._pos = len(body)
                self._finish()

    def _finish(self) -> None:
        if self._done is not None and not self._done.done():
            self._done.set_result(None)

    def _fail(self, why: str) -> None:
        self._keep = False
        if self._done is not None and not self._done.done():
            self._done.set_exception(TemporaryFailure(why))
        self.close()


def _dechunk(data: bytearray) -> bytearray | None:
    """The decoded body of a complete chunked message, None while incomplete."""
    out = bytearray()
    pos = 0
    while True:
        eol = data.find(b"\r\n", pos)
        if eol < 0:
            return None
        try:
            n = int(bytes(data[pos:eol]).split(b";")[0].strip(), 16)
        except ValueError:
            raise TemporaryFailure("a bad chunk") from None
        pos = eol + 2
        if n == 0:
            return out if data.find(b"\r\n", pos) >= 0 else None
        if len(data) < pos + n + 2:
            return None
        out += data[pos : pos + n]
        pos += n + 2


def _amz_date() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())


def _settle(fut: Future[Any], result: Any, exc: BaseException | None) -> None:
    """Complete a future unless its consumer cancelled it meanwhile."""
    with contextlib.suppress(Exception):  # InvalidStateError: cancelled
        if exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(result)

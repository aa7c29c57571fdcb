"""s3range's HTTP side: request bodies, one exchange (a request and its answer), the
keep-alive connection, the server and its pacing (``latency_ms``, ``rate_mbs``)."""

from __future__ import annotations

import contextlib
import itertools
import os
import socket
import socketserver
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, Protocol
from urllib.parse import parse_qsl, unquote
from xml.sax.saxutils import escape

from benchmarks.s3range.app import App
from benchmarks.s3range.store import IO_CHUNK, S3Error, Store, _http_date

XML_HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n'
SMALL_BODY = 256 * 1024  # answers up to this size go out in one send (header + pread)
MAX_DRAIN = 1 << 20  # a body left unread up to this size is drained, else we close
IDLE_TIMEOUT = 600  # seconds an idle keep-alive connection is kept

REASONS = {
    100: "Continue",
    200: "OK",
    204: "No Content",
    206: "Partial Content",
    304: "Not Modified",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    411: "Length Required",
    412: "Precondition Failed",
    416: "Requested Range Not Satisfiable",
    500: "Internal Server Error",
    501: "Not Implemented",
}


# -- request bodies -------------------------------------------------------------------


class Source(Protocol):
    def read(self, n: int, /) -> bytes: ...
    def readline(self, limit: int, /) -> bytes: ...


class LengthBody:
    """Exactly ``length`` bytes of the connection."""

    def __init__(self, rfile: BinaryIO, length: int) -> None:
        self.rfile, self.remaining = rfile, length

    def read(self, n: int) -> bytes:
        return self._take(self.rfile.read, n)

    def readline(self, limit: int = 65536) -> bytes:
        return self._take(self.rfile.readline, limit)

    def _take(self, read: Callable[[int], bytes], n: int) -> bytes:
        if self.remaining <= 0:
            return b""
        data = read(min(n, self.remaining))
        if not data:
            raise ConnectionError("the body was cut short")
        self.remaining -= len(data)
        return data

    def finished(self) -> bool:
        return self.remaining <= 0


class ChunkedBody:
    """Chunked framing: HTTP ``Transfer-Encoding: chunked`` and ``aws-chunked`` alike
    (``size[;ext]\\r\\n data \\r\\n ... 0[;ext]\\r\\n trailers \\r\\n``)."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.left = 0
        self.done = False
        self.trailers: dict[str, str] = {}

    def _next_chunk(self) -> None:
        line = self.source.readline(4096)
        if not line.endswith(b"\n"):
            raise S3Error(400, "IncompleteBody", "bad chunk header")
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise S3Error(400, "IncompleteBody", "bad chunk size") from None
        if size:
            self.left = size
            return
        while True:  # trailers up to an empty line
            line = self.source.readline(65536)
            if not line or line in (b"\r\n", b"\n"):
                break
            name, _, value = line.decode("latin-1").partition(":")
            self.trailers[name.strip().lower()] = value.strip()
        self.done = True

    def read(self, n: int) -> bytes:
        if self.done:
            return b""
        if not self.left:
            self._next_chunk()
            if self.done:
                return b""
        data = self.source.read(min(n, self.left))
        if not data:
            raise ConnectionError("the body was cut short")
        self.left -= len(data)
        if not self.left and self.source.readline(4) not in (b"\r\n", b"\n"):
            raise S3Error(400, "IncompleteBody", "a chunk does not end with CRLF")
        return data

    def readline(self, limit: int = 65536) -> bytes:
        out = bytearray()
        while len(out) < limit:
            c = self.read(1)
            if not c:
                break
            out += c
            if c == b"\n":
                break
        return bytes(out)

    def finished(self) -> bool:
        return self.done


# -- the HTTP side ----------------------------------------------------------------------

_request_ids = itertools.count(1)
_date_cache: tuple[int, str] = (0, "")


def _now_date() -> str:
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, _http_date(now))
    return _date_cache[1]


class Exchange:
    """One request on a connection, and the means to answer it."""

    def __init__(self, conn: Connection, method: str, target: str, headers: dict[str, str]):
        self.conn = conn
        self.sock = conn.sock
        self.method = method
        self.headers = headers
        if target.startswith(("http://", "https://")):
            target = "/" + target.split("/", 3)[3] if target.count("/") >= 3 else "/"
        path, _, query = target.partition("?")
        self.path = unquote(path)
        self.query = dict(parse_qsl(query, keep_blank_values=True)) if query else {}
        self.head = method == "HEAD"
        self.close = False
        self.answered = False
        self._raw: LengthBody | ChunkedBody | None = None
        self._body: LengthBody | ChunkedBody | None = None
        self.request_id = f"{next(_request_ids):016X}"

    # the body

    def has_body(self) -> bool:
        h = self.headers
        return "transfer-encoding" in h or int(h.get("content-length") or 0) > 0

    def body(self) -> LengthBody | ChunkedBody:
        """The request body, decoded (``aws-chunked`` too); sends 100 Continue."""
        if self._body is not None:
            return self._body
        h = self.headers
        if "chunked" in h.get("transfer-encoding", "").lower():
            raw: LengthBody | ChunkedBody = ChunkedBody(self.conn.rfile)
        else:
            try:
                raw = LengthBody(self.conn.rfile, int(h.get("content-length") or 0))
            except ValueError:
                raise S3Error(400, "InvalidArgument", "bad Content-Length") from None
        if "100-continue" in h.get("expect", "").lower():
            self.sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        self._raw = raw
        encoding = h.get("content-encoding", "").lower()
        sha = h.get("x-amz-content-sha256", "")
        if "aws-chunked" in encoding or sha.startswith("STREAMING-"):
            self._body = ChunkedBody(raw)
        else:
            self._body = raw
        return self._body

    def read_all(self, limit: int = 16 << 20) -> bytes:
        body = self.body()
        chunks, n = [], 0
        while data := body.read(IO_CHUNK):
            chunks.append(data)
            n += len(data)
            if n > limit:
                raise S3Error(400, "MaxMessageLengthExceeded", "the request is too large")
        return b"".join(chunks)

    def finish_body(self) -> None:
        """Make the connection ready for the next request: drain what is left of a
        small body; close the connection if the body is big or was never asked for
        after ``Expect: 100-continue``."""
        if self._raw is None:
            if not self.has_body():
                return
            if "100-continue" in self.headers.get("expect", "").lower():
                self.close = True
                return
            try:
                if int(self.headers.get("content-length") or -1) > MAX_DRAIN:
                    self.close = True
                    return
            except ValueError:
                self.close = True
                return
            self.body()
        assert self._raw is not None
        drained = 0
        with contextlib.suppress(S3Error):
            while not self._raw.finished() and drained <= MAX_DRAIN:
                drained += len(self._raw.read(65536))
        if not self._raw.finished():
            self.close = True

    # answers

    def _head(self, status: int, headers: list[tuple[str, str]], length: int) -> bytes:
        lines = [
            f"HTTP/1.1 {status} {REASONS.get(status, 'Unknown')}\r\n"
            f"Date: {_now_date()}\r\nServer: s3range\r\n"
            f"x-amz-request-id: {self.request_id}\r\n"
        ]
        lines.extend(f"{k}: {v}\r\n" for k, v in headers)
        if status != 304:
            lines.append(f"Content-Length: {length}\r\n")
        if self.close:
            lines.append("Connection: close\r\n")
        lines.append("\r\n")
        return "".join(lines).encode("latin-1", "replace")

    def send(self, status: int, headers: list[tuple[str, str]], body: bytes = b"") -> None:
        if self.answered:
            return
        self.answered = True
        self.finish_body()
        head = self._head(status, headers, len(body))
        self.conn.out(head if self.head or status == 304 else head + body)

    def send_xml(self, status: int, xml: str, headers: list[tuple[str, str]] | None = None) -> None:
        body = (XML_HEAD + xml).encode()
        self.send(status, [("Content-Type", "application/xml"), *(headers or [])], body)

    def send_file(
        self, status: int, headers: list[tuple[str, str]], fd: int, offset: int, length: int
    ) -> None:
        self.answered = True
        self.finish_body()
        head = self._head(status, headers, length)
        if self.head or length == 0:
            self.conn.out(head)
        elif length <= SMALL_BODY:
            data = os.pread(fd, length, offset)
            if len(data) != length:  # the file shrank under us: cannot keep the promise
                self.close = True
                raise ConnectionError("object changed while being read")
            self.conn.out(head + data)
        else:
            self.conn.out(head)
            out = self.sock.fileno()
            pacer = self.conn.pacer
            while length > 0:
                piece = min(length, 1 << 30 if pacer is None else pacer.piece)
                if pacer is not None:
                    pacer.wait(piece)
                sent = os.sendfile(out, fd, offset, piece)
                if sent == 0:
                    self.close = True
                    raise ConnectionError("object changed while being read")
                offset += sent
                length -= sent

    def send_error(self, err: S3Error) -> None:
        if self.head:
            self.send(err.status, err.headers)
            return
        fields = "".join(f"<{k}>{escape(v)}</{k}>" for k, v in err.fields.items())
        xml = (
            f"<Error><Code>{err.code}</Code><Message>{escape(err.message)}</Message>{fields}"
            f"<Resource>{escape(self.path)}</Resource><RequestId>{self.request_id}</RequestId>"
            "</Error>"
        )
        self.send_xml(err.status, xml, err.headers)


class Pacer:
    """One connection's download cap: its bytes leave no faster than ``rate`` bytes/s,
    as a real bucket's per-connection throughput is capped."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.piece = int(min(1 << 20, max(16 << 10, rate / 100)))  # ~10 ms of the link
        self.free = 0.0  # when the bytes booked so far have all gone through the link

    def wait(self, n: int) -> None:
        """Book ``n`` bytes on the link and sleep until they would have arrived."""
        now = time.monotonic()
        self.free = max(now, self.free) + n / self.rate
        time.sleep(self.free - now)


class Connection(socketserver.BaseRequestHandler):
    """A keep-alive connection: requests one after the other, each answered no sooner
    than the server's ``latency`` after it arrived, at most ``rate`` bytes/s (its own
    thread sleeps: other connections are not held up)."""

    server: Server

    def out(self, data: bytes) -> None:
        """Send ``data``, paced by the connection's download cap if there is one."""
        if self.pacer is None:
            self.sock.sendall(data)
            return
        view = memoryview(data)
        for i in range(0, len(view), self.pacer.piece):
            piece = view[i : i + self.pacer.piece]
            self.pacer.wait(len(piece))
            self.sock.sendall(piece)

    def handle(self) -> None:
        self.pacer = Pacer(self.server.rate) if self.server.rate else None
        latency = self.server.latency
        self.sock: socket.socket = self.request
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # idle connections are dropped by the kernel's receive timeout, the socket
        # itself stays blocking (so os.sendfile can be used on it)
        timeval = struct.pack("ll", IDLE_TIMEOUT, 0)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)
        self.rfile = self.sock.makefile("rb", 65536)
        app = self.server.app
        try:
            while True:
                line = self.rfile.readline(65537)
                arrived = time.monotonic()
                if not line:
                    return
                if line in (b"\r\n", b"\n"):
                    continue
                parts = line.decode("latin-1").split()
                if len(parts) != 3 or not parts[2].startswith("HTTP/"):
                    self.sock.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                    return
                method, target, version = parts
                headers: dict[str, str] = {}
                for _ in range(500):
                    h = self.rfile.readline(65537)
                    if h in (b"\r\n", b"\n", b""):
                        break
                    name, _, value = h.decode("latin-1").partition(":")
                    k, v = name.strip().lower(), value.strip()
                    headers[k] = f"{headers[k]},{v}" if k in headers else v
                ex = Exchange(self, method, target, headers)
                conn_hdr = headers.get("connection", "").lower()
                if "close" in conn_hdr or (version == "HTTP/1.0" and "keep-alive" not in conn_hdr):
                    ex.close = True
                if latency and (wait := arrived + latency - time.monotonic()) > 0:
                    time.sleep(wait)
                app.handle(ex)
                if ex.close:
                    return
        except (OSError, ValueError):
            return  # the peer went away, timed out, or sent garbage
        finally:
            with contextlib.suppress(OSError):
                self.rfile.close()


class Server(socketserver.ThreadingTCPServer):
    """The listening socket; ``endpoint`` is the URL to give clients. ``latency_ms``:
    each request is answered that long after it arrives; ``rate_mbs``: each
    connection's answers leave at most that many MB (10^6 bytes) per second; 0: none."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(
        self,
        root: Path,
        host: str = "127.0.0.1",
        port: int = 0,
        latency_ms: float = 0.0,
        rate_mbs: float = 0.0,
    ) -> None:
        if latency_ms < 0 or rate_mbs < 0:
            raise ValueError("latency_ms and rate_mbs must be 0 or more")
        self.latency = latency_ms / 1000
        self.rate = rate_mbs * 1e6
        self.app = App(Store(Path(root)))
        if ":" in host:  # an IPv6 literal
            self.address_family = socket.AF_INET6
        super().__init__((host, port), Connection)
        self.host, self.port = self.server_address[:2]
        name = f"[{self.host}]" if ":" in self.host else self.host
        self.endpoint = f"http://{name}:{self.port}"

    def server_close(self) -> None:
        super().server_close()
        self.app.store.close()


@contextlib.contextmanager
def serve(
    root: Path | str,
    host: str = "127.0.0.1",
    port: int = 0,
    latency_ms: float = 0.0,
    rate_mbs: float = 0.0,
) -> Iterator[Server]:
    """Serve ``root`` from a thread of this process (port 0: a free one) while in the
    block; yields the server (``.endpoint``, ``.port``). ``latency_ms`` and
    ``rate_mbs`` as for :class:`Server`."""
    server = Server(Path(root), host, port, latency_ms, rate_mbs)
    thread = threading.Thread(
        target=server.serve_forever, args=(0.05,), name="s3range", daemon=True
    )
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()

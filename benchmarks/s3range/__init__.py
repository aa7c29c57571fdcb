"""s3range: a small, fast S3-compatible server over a folder, for the benchmarks.

Why: ``bench_s3`` reads S3 through FUSE mounts, and mounts read objects in byte
ranges. ``moto_server`` copies the whole object for every ranged GET and tops out
near 280 GETs/s, so with moto the benchmark measured moto. This server answers a
ranged GET with ``pread``/``sendfile`` from the object's file and nothing else, so
the server is no longer the bottleneck of any client on the machine.

It is a benchmark fixture, not a product: there is **no authentication** (any
signature, SigV4 or none, is accepted unchecked), no ACLs, no versioning, no
encryption, no virtual-hosted addressing; only path-style ``/bucket/key``.

Layout under ``ROOT``: each bucket is a folder ``ROOT/<bucket>/``; each object one
file in it, named by its key percent-escaped into a single flat name (so keys ``a``
and ``a/b`` can both exist; names longer than 240 bytes become ``%%<sha256>``), and a
journal ``ROOT/<bucket>/%%s3range.jsonl`` that keeps ETag, Content-Type, Last-Modified
and user metadata (``%%`` never starts an escaped key). Metadata is held in memory and
the journal is replayed (and compacted) at start; a file found without a journal
entry is adopted with its MD5 as ETag. Temporary files and multipart parts live in
``ROOT/.s3range/``.

Supported:

- HTTP/1.1 with keep-alive, one thread per connection, ``Expect: 100-continue``,
  request bodies with ``Content-Length`` or ``Transfer-Encoding: chunked``, and
  ``Content-Encoding: aws-chunked`` bodies (``STREAMING-UNSIGNED-PAYLOAD-TRAILER``,
  ``STREAMING-AWS4-HMAC-SHA256-PAYLOAD``...; chunk signatures and trailing checksums
  are skipped, not checked);
- objects: GET (``Range: bytes=a-b``, ``bytes=a-``, ``bytes=-n``: 206 with
  Content-Range, 416 ``InvalidRange`` when unsatisfiable, a multi-range or malformed
  header is ignored as HTTP says), HEAD, ``If-Match`` (412) and ``If-None-Match``
  (304), PUT (``Content-MD5`` checked when given; ``If-None-Match: *`` and
  ``If-Match`` checked atomically with the write: 412), CopyObject, DeleteObject,
  DeleteObjects; ETag is the quoted MD5, ``"<md5 of part md5s>-N"`` after multipart;
- multipart: CreateMultipartUpload, UploadPart, CompleteMultipartUpload,
  AbortMultipartUpload, ListMultipartUploads (no part-size minimum is enforced);
- buckets: ListBuckets, CreateBucket, HeadBucket, DeleteBucket, GetBucketLocation,
  GetBucketVersioning (always unversioned), ListObjectsV2 and ListObjects (v1) with
  prefix, delimiter, max-keys (at most 1,000), continuation-token / start-after /
  marker, ``encoding-type=url``, keys in UTF-8 binary order, XML as AWS writes it;
- errors as S3 error XML with S3's codes and status (none in a HEAD answer's body).

Not supported (501 ``NotImplemented``): versions, ACLs, policies, tagging, ListParts,
UploadPartCopy, and any other sub-resource. Nothing is logged per request.

A real bucket's latency and bandwidth: ``--latency-ms MS`` answers each request MS
milliseconds after it arrived (the connection's own thread sleeps, so other
connections are not held up: N requests in flight on N connections take about one
delay); ``--rate-mbs R`` caps each connection's download at R MB/s (10^6 bytes/s), as
a real bucket caps one connection (~50-100 MB/s), so a client reads faster only by
reading ranges in parallel. Both default to 0 (none).

Use: ``python -m benchmarks.s3range ROOT [--host 127.0.0.1] [--port 9000]
[--latency-ms MS] [--rate-mbs R]``, or in Python
``with serve(root, latency_ms=30) as server: server.endpoint``.

Modules: ``store`` (buckets as folders, the journal), ``wire`` (HTTP, the connection,
the server and its pacing), ``app`` (the S3 operations).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmarks.s3range.app import App
from benchmarks.s3range.store import S3Error, Store, file_name
from benchmarks.s3range.wire import Server, serve

__all__ = ["App", "S3Error", "Server", "Store", "file_name", "main", "serve"]


def _not_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r}: must be a finite number, 0 or more")
    return value


def main(argv: list[str] | None = None) -> None:
    """``python -m benchmarks.s3range ROOT [--host H] [--port N] [--latency-ms MS]
    [--rate-mbs R]``."""
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.s3range",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("root", type=Path, help="the folder holding the buckets")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9000, help="0: a free port (printed)")
    p.add_argument(
        "--latency-ms",
        type=_not_negative,
        default=0.0,
        metavar="MS",
        help="answer each request MS milliseconds after it arrives (default 0)",
    )
    p.add_argument(
        "--rate-mbs",
        type=_not_negative,
        default=0.0,
        metavar="R",
        help="cap each connection's download rate at R MB/s (10^6 bytes; default 0: none)",
    )
    args = p.parse_args(argv)
    server = Server(args.root, args.host, args.port, args.latency_ms, args.rate_mbs)
    print(f"s3range: serving {args.root} at {server.endpoint}", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()

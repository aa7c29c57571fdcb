"""The benchmarks' S3 server (``benchmarks/s3range.py``) against a real boto3 client."""

from __future__ import annotations

import hashlib
import http.client
import random
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

from benchmarks.s3range import serve

MIB = 1 << 20


def _client(endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="test-key",
        aws_secret_access_key="test-secret",
        config=Config(s3={"addressing_style": "path"}, retries={"total_max_attempts": 1}),
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The server on a free loopback port over a temp folder; stopped at the end."""
    root = tmp_path_factory.mktemp("s3range")
    with serve(root) as srv:
        yield srv


@pytest.fixture(scope="module")
def s3(server: Any) -> Any:
    return _client(server.endpoint)


@pytest.fixture
def bucket(s3: Any) -> str:
    name = f"t-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


def _data(n: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(n)


def _code(exc: ClientError) -> str:
    return str(exc.response["Error"]["Code"])


def _status(exc: ClientError) -> int:
    return int(exc.response["ResponseMetadata"]["HTTPStatusCode"])


def test_put_get_head_round_trip(s3: Any, bucket: str) -> None:
    small, large = _data(1000, 1), _data(700 * 1024 + 3, 2)  # pread path, sendfile path
    for key, data in (("small.bin", small), ("dir/large.bin", large)):
        put = s3.put_object(Bucket=bucket, Key=key, Body=data, ContentType="x/y")
        assert put["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
        got = s3.get_object(Bucket=bucket, Key=key)
        assert got["Body"].read() == data
        assert got["ContentLength"] == len(data)
        assert got["ContentType"] == "x/y"
        assert got["ETag"] == put["ETag"]
        head = s3.head_object(Bucket=bucket, Key=key)
        assert head["ContentLength"] == len(data)
        assert head["ETag"] == put["ETag"]
        assert head["AcceptRanges"] == "bytes"
        assert head["LastModified"].year >= 2024
    # a key and a "folder" of the same name both exist
    s3.put_object(Bucket=bucket, Key="dir", Body=b"file named dir")
    assert s3.get_object(Bucket=bucket, Key="dir")["Body"].read() == b"file named dir"
    assert s3.get_object(Bucket=bucket, Key="dir/large.bin")["Body"].read() == large
    s3.put_object(Bucket=bucket, Key="empty", Body=b"")
    assert s3.get_object(Bucket=bucket, Key="empty")["Body"].read() == b""


def test_user_metadata_and_overwrite(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"one", Metadata={"mtime": "123.5"})
    assert s3.head_object(Bucket=bucket, Key="k")["Metadata"] == {"mtime": "123.5"}
    s3.put_object(Bucket=bucket, Key="k", Body=b"second")
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"second"
    assert s3.head_object(Bucket=bucket, Key="k")["Metadata"] == {}


@pytest.mark.parametrize(
    ("spec", "start", "end"),
    [
        ("bytes=10-99", 10, 99),
        ("bytes=1000-", 1000, 999_999),
        ("bytes=-500", 999_500, 999_999),
        ("bytes=5-400000", 5, 400_000),  # above the one-send size: sendfile
        ("bytes=999990-2000000", 999_990, 999_999),  # the end is clamped
        ("bytes=-2000000", 0, 999_999),
    ],
)
def test_ranged_get(s3: Any, bucket: str, spec: str, start: int, end: int) -> None:
    data = _data(1_000_000, 3)
    s3.put_object(Bucket=bucket, Key="r", Body=data)
    got = s3.get_object(Bucket=bucket, Key="r", Range=spec)
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert got["ContentRange"] == f"bytes {start}-{end}/{len(data)}"
    body = got["Body"].read()
    assert body == data[start : end + 1]
    assert got["ContentLength"] == len(body)


def test_many_ranges_on_one_connection(s3: Any, bucket: str) -> None:
    data = _data(300_000, 4)
    s3.put_object(Bucket=bucket, Key="r", Body=data)
    rng = random.Random(5)
    for _ in range(50):
        a = rng.randrange(len(data))
        b = min(len(data) - 1, a + rng.randrange(70_000))
        got = s3.get_object(Bucket=bucket, Key="r", Range=f"bytes={a}-{b}")["Body"].read()
        assert got == data[a : b + 1]


def test_unsatisfiable_range_is_416(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="r", Body=b"0123456789")
    for spec in ("bytes=10-20", "bytes=-0"):
        with pytest.raises(ClientError) as e:
            s3.get_object(Bucket=bucket, Key="r", Range=spec)
        assert _status(e.value) == 416
        assert _code(e.value) == "InvalidRange"
    # a malformed range is ignored: the whole object
    got = s3.get_object(Bucket=bucket, Key="r", Range="bytes=5-2")
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert got["Body"].read() == b"0123456789"


def test_if_match(s3: Any, bucket: str) -> None:
    etag = s3.put_object(Bucket=bucket, Key="m", Body=b"abc")["ETag"]
    got = s3.get_object(Bucket=bucket, Key="m", IfMatch=etag, Range="bytes=1-1")
    assert got["Body"].read() == b"b"
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="m", IfMatch='"0123456789abcdef0123456789abcdef"')
    assert _status(e.value) == 412
    assert _code(e.value) == "PreconditionFailed"
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="m", IfNoneMatch=etag)
    assert _status(e.value) == 304


def test_conditional_put(s3: Any, bucket: str) -> None:
    first = s3.put_object(Bucket=bucket, Key="c", Body=b"one", IfNoneMatch="*")["ETag"]
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="c", Body=b"two", IfNoneMatch="*")
    assert _status(e.value) == 412
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="c", Body=b"two", IfMatch='"0" ')
    assert _status(e.value) == 412
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="absent", Body=b"two", IfMatch=first)
    assert _status(e.value) == 404
    s3.put_object(Bucket=bucket, Key="c", Body=b"two", IfMatch=first)
    assert s3.get_object(Bucket=bucket, Key="c")["Body"].read() == b"two"


def test_conditional_puts_at_once_have_one_winner(s3: Any, bucket: str) -> None:
    etag = s3.put_object(Bucket=bucket, Key="race", Body=b"start")["ETag"]

    def put(n: int) -> bool:
        try:
            s3.put_object(Bucket=bucket, Key="race", Body=f"{n}".encode(), IfMatch=etag)
        except ClientError as exc:
            assert _status(exc) == 412
            return False
        return True

    with ThreadPoolExecutor(8) as pool:
        won = [n for n, ok in enumerate(pool.map(put, range(16))) if ok]
    assert len(won) == 1
    assert s3.get_object(Bucket=bucket, Key="race")["Body"].read() == f"{won[0]}".encode()


def test_multipart_upload_file(s3: Any, bucket: str, tmp_path: Path) -> None:
    data = _data(3 * 5 * MIB + 12_345, 6)
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    config = TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB)
    s3.upload_file(str(src), bucket, "big/file.bin", Config=config)
    head = s3.head_object(Bucket=bucket, Key="big/file.bin")
    assert head["ContentLength"] == len(data)
    parts = [data[i : i + 5 * MIB] for i in range(0, len(data), 5 * MIB)]
    assert len(parts) == 4
    joined = b"".join(hashlib.md5(p).digest() for p in parts)
    assert head["ETag"] == f'"{hashlib.md5(joined).hexdigest()}-4"'
    assert s3.get_object(Bucket=bucket, Key="big/file.bin")["Body"].read() == data
    got = s3.get_object(
        Bucket=bucket, Key="big/file.bin", Range=f"bytes={5 * MIB - 7}-{5 * MIB + 6}"
    )
    assert got["Body"].read() == data[5 * MIB - 7 : 5 * MIB + 7]
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_multipart_abort_and_errors(s3: Any, bucket: str) -> None:
    up = s3.create_multipart_upload(Bucket=bucket, Key="x")["UploadId"]
    etag = s3.upload_part(Bucket=bucket, Key="x", UploadId=up, PartNumber=1, Body=b"p1")["ETag"]
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(
            Bucket=bucket,
            Key="x",
            UploadId=up,
            MultipartUpload={"Parts": [{"PartNumber": 2, "ETag": etag}]},
        )
    assert _code(e.value) == "InvalidPart"
    s3.abort_multipart_upload(Bucket=bucket, Key="x", UploadId=up)
    with pytest.raises(ClientError) as e:
        s3.abort_multipart_upload(Bucket=bucket, Key="x", UploadId=up)
    assert _code(e.value) == "NoSuchUpload"
    assert _status(e.value) == 404
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="x")
    assert _status(e.value) == 404


def test_list_objects_v2(s3: Any, bucket: str) -> None:
    keys = ["p/a", "p/b", "p/c", "p/d", "p/e"]
    extra = ["p/sub/x", "p/sub/y", "p/sub2/z", "q", "o"]
    for k in keys + extra:
        s3.put_object(Bucket=bucket, Key=k, Body=k.encode())
    everything = s3.list_objects_v2(Bucket=bucket)
    assert [o["Key"] for o in everything["Contents"]] == sorted(keys + extra)
    assert everything["KeyCount"] == 10
    assert not everything["IsTruncated"]
    assert [o["Size"] for o in everything["Contents"]] == [len(k) for k in sorted(keys + extra)]
    top = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
    assert [o["Key"] for o in top["Contents"]] == ["o", "q"]
    assert [p["Prefix"] for p in top["CommonPrefixes"]] == ["p/"]
    under = s3.list_objects_v2(Bucket=bucket, Prefix="p/", Delimiter="/")
    assert [o["Key"] for o in under["Contents"]] == keys
    assert [p["Prefix"] for p in under["CommonPrefixes"]] == ["p/sub/", "p/sub2/"]
    assert under["KeyCount"] == 7
    # pages of 2 over the 5 keys (and the two prefixes)
    seen, pages, token = [], 0, None
    while True:
        args = {"Bucket": bucket, "Prefix": "p/", "Delimiter": "/", "MaxKeys": 2}
        page = s3.list_objects_v2(**args, **({"ContinuationToken": token} if token else {}))
        pages += 1
        assert page["KeyCount"] <= 2
        seen += [o["Key"] for o in page.get("Contents", [])]
        seen += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        if not page["IsTruncated"]:
            break
        token = page["NextContinuationToken"]
    assert seen == [*keys, "p/sub/", "p/sub2/"]
    assert pages == 4
    plain = s3.list_objects_v2(Bucket=bucket, Prefix="p/", MaxKeys=2)
    assert [o["Key"] for o in plain["Contents"]] == ["p/a", "p/b"]
    assert plain["IsTruncated"]
    after = s3.list_objects_v2(Bucket=bucket, Prefix="p/", StartAfter="p/d")
    assert [o["Key"] for o in after["Contents"]] == ["p/e", "p/sub/x", "p/sub/y", "p/sub2/z"]
    paged = [
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, PaginationConfig={"PageSize": 3}
        )
        for o in page["Contents"]
    ]
    assert paged == sorted(keys + extra)


def test_list_objects_v1_marker(s3: Any, bucket: str) -> None:
    keys = [f"k{i}" for i in range(5)] + ["d/1", "d/2"]
    for k in keys:
        s3.put_object(Bucket=bucket, Key=k, Body=b"x")
    first = s3.list_objects(Bucket=bucket, MaxKeys=2)
    assert [o["Key"] for o in first["Contents"]] == ["d/1", "d/2"]
    assert first["IsTruncated"]
    rest = s3.list_objects(Bucket=bucket, Marker="k1")
    assert [o["Key"] for o in rest["Contents"]] == ["k2", "k3", "k4"]
    assert not rest["IsTruncated"]
    seen, marker = [], ""
    while True:
        page = s3.list_objects(Bucket=bucket, Delimiter="/", MaxKeys=2, Marker=marker)
        seen += [o["Key"] for o in page.get("Contents", [])]
        seen += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        if not page["IsTruncated"]:
            break
        marker = page["NextMarker"]
    assert sorted(seen) == ["d/", "k0", "k1", "k2", "k3", "k4"]
    assert len(seen) == 6


def test_odd_keys_and_url_encoding(s3: Any, bucket: str, server: Any) -> None:
    keys = ["a b+c", "caf\u00e9/\u00fcber", "x&y<z>", ".hidden", "..", "t/"]
    for k in keys:
        s3.put_object(Bucket=bucket, Key=k, Body=k.encode())
    for k in keys:
        assert s3.get_object(Bucket=bucket, Key=k)["Body"].read() == k.encode()
    listed = s3.list_objects_v2(Bucket=bucket)  # boto3 asks for encoding-type=url, decodes
    want = sorted(keys, key=lambda k: k.encode())
    assert [o["Key"] for o in listed["Contents"]] == want
    assert [o["Key"] for o in s3.list_objects(Bucket=bucket)["Contents"]] == want
    conn = http.client.HTTPConnection(urlsplit(server.endpoint).netloc)
    conn.request("GET", f"/{bucket}?list-type=2&encoding-type=url&delimiter=/")
    xml = conn.getresponse().read().decode()
    conn.request("GET", f"/{bucket}?list-type=2")
    plain = conn.getresponse().read().decode()
    conn.close()
    assert "<Key>a%20b%2Bc</Key>" in xml
    assert "<Prefix>caf%C3%A9/</Prefix>" in xml
    assert "<Key>x&amp;y&lt;z&gt;</Key>" in plain
    assert "<EncodingType>url</EncodingType>" in xml
    assert xml.count('xmlns="http://s3.amazonaws.com/doc/2006-03-01/"') == 1


def test_delete(s3: Any, bucket: str) -> None:
    for k in ("a", "b", "c"):
        s3.put_object(Bucket=bucket, Key=k, Body=b"x")
    s3.delete_object(Bucket=bucket, Key="a")
    s3.delete_object(Bucket=bucket, Key="never-there")
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="a")
    assert _code(e.value) == "NoSuchKey"
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="a")
    assert _status(e.value) == 404
    out = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "b"}, {"Key": "c"}]})
    assert sorted(d["Key"] for d in out["Deleted"]) == ["b", "c"]
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0
    s3.delete_bucket(Bucket=bucket)
    with pytest.raises(ClientError) as e:
        s3.head_bucket(Bucket=bucket)
    assert _status(e.value) == 404


def test_buckets_and_errors(s3: Any, bucket: str) -> None:
    assert bucket in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    s3.head_bucket(Bucket=bucket)
    assert "Status" not in s3.get_bucket_versioning(Bucket=bucket)
    assert s3.get_bucket_location(Bucket=bucket)["LocationConstraint"] is None
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="no-such-bucket", Key="k")
    assert _code(e.value) == "NoSuchBucket"
    with pytest.raises(ClientError) as e:
        s3.list_objects_v2(Bucket="no-such-bucket")
    assert _code(e.value) == "NoSuchBucket"
    s3.put_object(Bucket=bucket, Key="src", Body=b"copied bytes")
    s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"})
    assert s3.get_object(Bucket=bucket, Key="dst")["Body"].read() == b"copied bytes"


def _raw_put(endpoint: str, path: str, headers: dict[str, str], body: bytes) -> int:
    conn = http.client.HTTPConnection(urlsplit(endpoint).netloc, timeout=10)
    try:
        conn.putrequest("PUT", path)
        for k, v in headers.items():
            conn.putheader(k, v)
        conn.endheaders()
        if headers.get("Expect") == "100-continue":
            # the server must say 100 Continue before the body
            line = conn.sock.recv(64)
            assert line.startswith(b"HTTP/1.1 100 Continue\r\n\r\n"), line
        conn.send(body)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def _aws_chunks(data: bytes, size: int, signed: bool) -> bytes:
    out = b""
    for i in range(0, len(data), size):
        piece = data[i : i + size]
        ext = ";chunk-signature=" + "0" * 64 if signed else ""
        out += f"{len(piece):x}{ext}\r\n".encode() + piece + b"\r\n"
    if signed:
        return out + b"0;chunk-signature=" + b"0" * 64 + b"\r\n\r\n"
    return out + b"0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n"


@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_aws_chunked_put(server: Any, s3: Any, bucket: str, signed: bool, framing: str) -> None:
    data = _data(200_000, 7)
    body = _aws_chunks(data, 65536, signed)
    headers = {
        "Content-Encoding": "aws-chunked",
        "x-amz-decoded-content-length": str(len(data)),
        "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
        if signed
        else "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
        "Expect": "100-continue",
        "Authorization": "AWS4-HMAC-SHA256 Credential=x/20240101/us-east-1/s3/aws4_request",
    }
    if framing == "length":
        headers["Content-Length"] = str(len(body))
        wire = body
    else:
        headers["Transfer-Encoding"] = "chunked"
        wire = b"".join(
            f"{len(body[i : i + 1000]):x}\r\n".encode() + body[i : i + 1000] + b"\r\n"
            for i in range(0, len(body), 1000)
        )
        wire += b"0\r\n\r\n"
    assert _raw_put(server.endpoint, f"/{bucket}/chunked", headers, wire) == 200
    got = s3.get_object(Bucket=bucket, Key="chunked")
    assert got["Body"].read() == data
    assert got["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
    assert "ContentEncoding" not in got


def test_bad_content_md5_is_refused(server: Any, s3: Any, bucket: str) -> None:
    headers = {"Content-Length": "3", "Content-MD5": "AAAAAAAAAAAAAAAAAAAAAA=="}
    assert _raw_put(server.endpoint, f"/{bucket}/md5", headers, b"abc") == 400
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="md5")


def test_state_survives_a_restart(tmp_path: Path) -> None:
    data = _data(50_000, 8)
    with serve(tmp_path) as srv:
        s3 = _client(srv.endpoint)
        s3.create_bucket(Bucket="keep")
        etag = s3.put_object(Bucket="keep", Key="a/b", Body=data, Metadata={"m": "1"})["ETag"]
        s3.put_object(Bucket="keep", Key="gone", Body=b"x")
        s3.delete_object(Bucket="keep", Key="gone")
    with serve(tmp_path) as srv:
        s3 = _client(srv.endpoint)
        head = s3.head_object(Bucket="keep", Key="a/b")
        assert (head["ETag"], head["Metadata"]) == (etag, {"m": "1"})
        assert s3.get_object(Bucket="keep", Key="a/b")["Body"].read() == data
        assert [o["Key"] for o in s3.list_objects_v2(Bucket="keep")["Contents"]] == ["a/b"]

"""Signed GETs without boto3: the same signature botocore computes, real GETs."""

from __future__ import annotations

import os
import re
import socket
import time
from typing import Any

import boto3
import pytest
from botocore.config import Config

from dlfs.errors import Corrupt, NotFound, TemporaryFailure
from dlfs.stores.s3http import Credentials, SignedGetter, fast_get_enabled

KEYS = [
    "plain/a.bin",
    "with space/ünïcödé+plus%percent~tilde",
    "a//double/slash",
    "odd=?&#;:@,$!'()*[]",
    "blobs/0123456789abcdef0123456789abcdef",
]


class Captured(Exception):
    """Raised from botocore's before-send hook, carrying the request it would send."""

    def __init__(self, request: Any) -> None:
        super().__init__("captured")
        self.request = request


ACCESS_KEY = "AKIDEXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"


def example_client(endpoint: str, token: str | None = None) -> Any:
    """A boto3 client with the example credentials, path-style, in eu-west-3."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="eu-west-3",
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        aws_session_token=token,
        config=Config(s3={"addressing_style": "path"}),
    )


def example_getter(endpoint: str, token: str | None = None) -> SignedGetter:
    """A getter with the same credentials and region as :func:`example_client`."""
    return SignedGetter(
        endpoint,
        "eu-west-3",
        lambda: Credentials(ACCESS_KEY, SECRET_KEY, token),
        path_style=True,
        timeout=2,
    )


def botocore_request(endpoint: str, bucket: str, key: str, **params: Any) -> Any:
    """The GetObject request boto3 would send (signed), captured before sending."""
    client = example_client(endpoint, params.pop("token", None))

    def capture(request: Any, **_kw: Any) -> None:
        raise Captured(request)

    client.meta.events.register("before-send.s3.GetObject", capture)
    with pytest.raises(Captured) as caught:
        client.get_object(Bucket=bucket, Key=key, **params)
    return caught.value.request


def assert_signed_alike(
    getter: SignedGetter, request: Any, host: str, path: str, query: str
) -> None:
    """Our signature of ``GET path?query`` on ``host`` is the one in boto3's ``request``."""
    theirs = {k.lower(): v for k, v in request.headers.items()}
    theirs = {k: v.decode() if isinstance(v, bytes) else v for k, v in theirs.items()}
    signed = re.search(r"SignedHeaders=([^,]+)", theirs["authorization"]).group(1).split(";")
    mine = {"host", "x-amz-content-sha256", "x-amz-date", "x-amz-security-token"}
    extra = {name: theirs[name] for name in signed if name not in mine}  # e.g. checksum mode
    ours = getter.sign(
        host, path, query, getter.credentials(), theirs["x-amz-date"], extra=extra or None
    )
    assert ours["authorization"] == theirs["authorization"]


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("version", [None, "3/L4kqtJl+cV:z~ZQ=="])
@pytest.mark.parametrize("token", [None, "FwoGZXIvYXdzEJr//session+token="])
def test_signature_is_the_one_botocore_computes(
    key: str, version: str | None, token: str | None
) -> None:
    endpoint = "https://s3.example.test:8443"
    params: dict[str, Any] = {"token": token}
    if version:
        params["VersionId"] = version
    request = botocore_request(endpoint, "my-bucket", key, **params)
    getter = example_getter(endpoint, token)
    host, path, query = getter.target("my-bucket", key, version)
    assert request.url == f"{endpoint}{path}" + (f"?{query}" if query else "")
    assert_signed_alike(getter, request, host, path, query)


def test_aws_endpoints_use_the_bucket_host_unless_the_name_is_not_a_dns_label() -> None:
    getter = SignedGetter(
        "https://s3.eu-west-3.amazonaws.com",
        "eu-west-3",
        lambda: Credentials("a", "b"),
        path_style=False,
        timeout=1,
    )
    assert getter.target("data", "x/y.bin", None) == (
        "data.s3.eu-west-3.amazonaws.com",
        "/x/y.bin",
        "",
    )
    assert getter.target("my.dotted.bucket", "k", None)[1] == "/my.dotted.bucket/k"


@pytest.fixture
def getter(s3: Any) -> SignedGetter:
    return SignedGetter(
        s3.endpoint,
        "us-east-1",
        lambda: Credentials(os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"]),
        path_style=True,
        timeout=2,
    )


def test_gets_whole_objects_ranges_and_versions_from_a_real_server(
    s3: Any, getter: SignedGetter
) -> None:
    bucket = s3.bucket(versioned=True)
    client = s3.client()
    data = {key: os.urandom(1000 + i) for i, key in enumerate(KEYS)}
    for key, body in data.items():
        client.put_object(Bucket=bucket, Key=key, Body=body)
    for key, body in data.items():
        assert getter.get(bucket, key).body == body
        part = getter.get(bucket, key, byte_range=(10, 99))
        assert part.status == 206 and part.body == body[10:100]
    key = KEYS[1]
    first = client.head_object(Bucket=bucket, Key=key)
    client.put_object(Bucket=bucket, Key=key, Body=b"replaced")
    old = getter.get(bucket, key, version_id=first["VersionId"])
    assert old.body == data[key]
    assert getter.get(bucket, key).body == b"replaced"
    with pytest.raises(Corrupt):  # the object changed since its ETag was recorded
        getter.get(bucket, key, if_match=first["ETag"])
    with pytest.raises(NotFound):
        getter.get(bucket, "no/such/key")
    getter.close()


def test_an_unreachable_server_is_a_temporary_failure_within_the_timeout() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nobody listens here once closed
    getter = SignedGetter(
        f"http://127.0.0.1:{port}",
        "us-east-1",
        lambda: Credentials("a", "b"),
        path_style=True,
        timeout=1,
    )
    start = time.monotonic()
    with pytest.raises(TemporaryFailure):
        getter.get("bucket", "key")
    assert time.monotonic() - start < 2


def test_fast_gets_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "DLFS_S3_FAST_GET"):
        monkeypatch.delenv(name, raising=False)
    assert fast_get_enabled()
    monkeypatch.setenv("DLFS_S3_FAST_GET", "0")
    assert not fast_get_enabled()
    monkeypatch.delenv("DLFS_S3_FAST_GET")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    assert not fast_get_enabled()  # proxies are boto3's business


def test_an_ipv6_endpoint_gets_a_bracketed_host_signed_like_botocore(tmp_path: Any) -> None:
    from benchmarks.s3range import serve

    with serve(tmp_path, host="::1") as server:
        endpoint = server.endpoint
        assert endpoint == f"http://[::1]:{server.port}"
        request = botocore_request(endpoint, "v6", KEYS[1])
        getter = example_getter(endpoint)
        host, path, query = getter.target("v6", KEYS[1], None)
        assert host == f"[::1]:{server.port}"  # what botocore sends, and HTTP wants
        assert_signed_alike(getter, request, host, path, query)

        client = example_client(endpoint)
        client.create_bucket(Bucket="v6")
        client.put_object(Bucket="v6", Key=KEYS[1], Body=b"over IPv6")
        assert getter.get("v6", KEYS[1]).body == b"over IPv6"
        getter.close()

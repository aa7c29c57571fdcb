"""The rules and limits of JSON values (dlfs.jsonvalues), alone and through every
Python API that takes metadata, annotations or labels: a refused value is one line
naming what is wrong, and nothing changes."""

from __future__ import annotations

import errno
import math
from pathlib import Path
from typing import Any

import pytest

from dlfs import Catalog, InvalidInput, TooLarge, jsonvalues
from dlfs.jsonvalues import MAX_ANNOTATIONS, MAX_DEPTH, MAX_METADATA
from tests.conftest import blob_files, catalog_dump


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    return value


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("[" * 10_000 + "]" * 10_000, "nested deeper than 64 levels"),
        ("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), "nested deeper than 64 levels"),
        ("NaN", "NaN is not a JSON number"),
        ('{"x": [Infinity]}', "Infinity is not a JSON number"),
        ("-Infinity", "-Infinity is not a JSON number"),
        ('{"a": 1, "b": {"c": 2, "c": 3}}', "duplicate key 'c'"),
        (b"\xff", "invalid JSON"),
        ("{", "invalid JSON"),
    ],
)
def test_parse_refuses_with_one_line(text: str | bytes, reason: str) -> None:
    with pytest.raises(InvalidInput) as err:
        jsonvalues.parse(text, "thing")
    message = str(err.value)
    assert reason in message and "thing" in message and "\n" not in message
    assert err.value.errno == errno.EINVAL


def test_parse_takes_what_the_rules_allow() -> None:
    deepest = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert jsonvalues.parse(deepest, "x") is not None
    assert jsonvalues.parse('{"a": 1.5e300, "b": "\\u00e9"}', "x") == {"a": 1.5e300, "b": "é"}


def test_values_are_checked_as_they_are_written() -> None:
    assert jsonvalues.metadata_text({"b": 1, "a": [True, None]}) == '{"a":[true,null],"b":1}'
    for bad in ({"x": math.nan}, {"x": math.inf}, nested(MAX_DEPTH + 1), {"x": {1, 2}}):
        with pytest.raises(InvalidInput):
            jsonvalues.metadata_text(bad)
    cycle: list[Any] = []
    cycle.append(cycle)
    with pytest.raises(InvalidInput, match="nested deeper"):
        jsonvalues.annotations_text(cycle)
    with pytest.raises(TooLarge) as err:
        jsonvalues.metadata_text({"x": "y" * MAX_METADATA})
    assert err.value.errno == errno.E2BIG
    jsonvalues.annotations_text(["y" * MAX_METADATA])  # annotations may be larger
    with pytest.raises(TooLarge):
        jsonvalues.annotations_text(["y" * MAX_ANNOTATIONS])


def test_read_file_refuses_a_large_file_before_reading_it(tmp_path: Path) -> None:
    path = tmp_path / "huge.json"
    with open(path, "wb") as f:
        f.truncate(100)
    with pytest.raises(TooLarge, match="100 bytes, over the limit of 99 bytes"):
        jsonvalues.read_file(path, "annotations file", 99)


BAD_METADATA = [{"x": math.nan}, nested(100), {"x": "y" * MAX_METADATA}]


def test_every_api_refuses_and_changes_nothing(catalog: Catalog, home: Path) -> None:
    catalog.create_dataset("d")
    catalog.add_bytes("d", "f.txt", b"hello")
    before = catalog_dump(home), blob_files(home)
    for meta in BAD_METADATA:
        with pytest.raises(InvalidInput):
            catalog.set_meta("d", "f.txt", metadata=meta)
        with pytest.raises(InvalidInput):
            catalog.set_meta("d", "f.txt", assignments=[("a.b", meta)])
        with pytest.raises(InvalidInput):
            catalog.add_bytes("d", "g.txt", b"new", metadata=meta)
        with pytest.raises(InvalidInput):
            catalog.dataset("d").set_metadata([("k", meta)])
        with pytest.raises(InvalidInput):
            catalog.create_dataset("e", labels=meta)
    for ann in ([math.inf], [nested(100)], ["y" * MAX_ANNOTATIONS]):
        with pytest.raises(InvalidInput):
            catalog.set_meta("d", "f.txt", annotations=ann)
    assert (catalog_dump(home), blob_files(home)) == before
    item = catalog.set_meta("d", "f.txt", assignments=[("k", nested(MAX_DEPTH - 1))])
    assert item.metadata == {"k": nested(MAX_DEPTH - 1)}


def test_scalars_are_values_too() -> None:
    assert jsonvalues.parse("0.5", "x") == 0.5
    assert jsonvalues.parse('"a"', "x") == "a"
    assert jsonvalues.canonical_text(None, "x", 10) == "null"

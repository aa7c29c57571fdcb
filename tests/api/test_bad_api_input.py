"""Every bad input to the Python API raises a :class:`dlfs.DlfsError` subclass (here
:class:`InvalidInput`), never a bare ``TypeError``/``AttributeError``, and changes
nothing (:mod:`dlfs.apiargs`)."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest

import dlfs
from dlfs import Catalog
from dlfs.errors import InvalidInput
from tests.conftest import catalog_dump

BAD: list[Any] = [None, 3, 2.5, True, object(), b"x", ["x"], {"a": 1}, "", ("a", "b", "c")]
# Calls that leave the catalog or need a server or FUSE: their checks are the same code.
SKIP = {"close", "mount", "open", "cat", "link", "sync", "push", "pull", "store", "gc", "fsck"}
GOOD = {
    "ref": "x@v0",
    "name": "x",
    "path": "a.txt",
    "source": "a.txt",
    "dest": "b",
    "paths": ["a.txt"],
    "sources": ["a.txt"],
    "a": "x@v0",
    "b": "x@v0",
    "refs": ["x@v0", "x@v0"],
    "new": "y",
    "tag": "gold",
    "tags": ["gold"],
    "assignments": [],
    "comment": "c",
    "to": "q.txt",
    "data": b"x",
    "other": "x@v0",
}


def calls(obj: object) -> list[tuple[str, str, dict[str, Any]]]:
    """(method, parameter, arguments) with one bad argument, for each method."""
    out = []
    for name in dir(obj):
        if (
            name.startswith("_")
            or name in SKIP
            or not inspect.isfunction(getattr(type(obj), name, None))
        ):
            continue
        params = [
            p
            for p in inspect.signature(getattr(obj, name)).parameters.values()
            if p.kind == p.POSITIONAL_OR_KEYWORD
        ]
        required = {p.name: GOOD.get(p.name, "x") for p in params if p.default is p.empty}
        for p in params:
            for bad in BAD:
                out.append((name, p.name, {**required, p.name: bad}))
    return out


def test_no_bad_argument_escapes_as_a_bare_exception(catalog: Catalog, home: Path) -> None:
    catalog.create_dataset("x")
    catalog.add_bytes("x", "a.txt", b"a")
    v0 = catalog.publish("x")
    draft = catalog.create_version("x", ["x@v0"])
    escaped = []
    for obj in (catalog, catalog.dataset("x"), draft, v0):
        for method, param, args in calls(obj):
            before = catalog_dump(home)
            try:
                getattr(obj, method)(**args)
            except dlfs.DlfsError:
                if catalog_dump(home) != before:
                    escaped.append(f"{method}({param}={args[param]!r}) changed the catalog")
            except Exception as exc:  # the very thing this test looks for
                escaped.append(f"{type(obj).__name__}.{method}({param}={args[param]!r}): {exc!r}")
        if escaped:
            break
    assert escaped == []


def test_the_error_names_the_method_and_the_argument(catalog: Catalog) -> None:
    ds = catalog.create_dataset("x")
    with pytest.raises(InvalidInput, match=r"Catalog.ls: path must be str, got int 3"):
        catalog.ls("x@draft", 3)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match=r"Dataset.tag: add must be"):
        ds.tag(add="ab")  # type: ignore[arg-type]  # a string is not a list of tags
    with pytest.raises(InvalidInput, match=r"where must be a mapping"):
        catalog.datasets(where=3)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match=r"invalid JSON for metadata"):
        ds.set_metadata([("x", object())])
    with pytest.raises(InvalidInput):
        ds.set_metadata([(1, 2)])  # type: ignore[list-item]
    with pytest.raises(InvalidInput):
        catalog.version(None)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match=r"Catalog.add: sources must be"):
        catalog.add("x", "photos")  # type: ignore[arg-type]  # one path is not a list
    assert catalog.files("x@draft") == []

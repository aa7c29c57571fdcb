"""Names and paths users give are validated before anything changes."""

from __future__ import annotations

import pytest

from dlfs.errors import InvalidInput
from dlfs.names import (
    DEFAULT_PROJECT,
    check_dataset_name,
    check_name,
    check_project_name,
    check_user_tag,
    parse_assignment,
    project_of,
    set_dotted,
    split_path,
)


@pytest.mark.parametrize("bad", ["", ".", "..", "a/b", "a\0b", "x" * 256])
def test_bad_item_names_are_refused(bad: str) -> None:
    with pytest.raises(InvalidInput):
        check_name(bad)


def test_a_255_byte_name_is_fine_but_256_utf8_bytes_are_not() -> None:
    assert check_name("x" * 255)
    with pytest.raises(InvalidInput, match="longer than 255 bytes"):
        check_name("é" * 128)


def test_paths_cannot_escape_the_dataset() -> None:
    assert split_path("/a//b/./c/") == ["a", "b", "c"]
    assert split_path("") == [] and split_path("/") == []
    with pytest.raises(InvalidInput, match="escape"):
        split_path("a/../../etc")


@pytest.mark.parametrize("tag", ["latest", "draft", "v0", "v12", "has space", "-x"])
def test_reserved_and_malformed_tags_are_refused(tag: str) -> None:
    with pytest.raises(InvalidInput):
        check_user_tag(tag)


def test_assignments_take_json_values_and_dotted_keys() -> None:
    assert parse_assignment('split="train"') == ("split", "train")
    assert parse_assignment("score=0.5") == ("score", 0.5)
    with pytest.raises(InvalidInput, match="invalid JSON value"):
        parse_assignment("split=train")
    with pytest.raises(InvalidInput, match="KEY=JSONVALUE"):
        parse_assignment("novalue")
    meta: dict[str, object] = {"a": {"x": 1}}
    set_dotted(meta, "a.y", 2)
    assert meta == {"a": {"x": 1, "y": 2}}


def test_dataset_names_take_a_project_and_inner_spaces() -> None:
    assert check_dataset_name("myDataset One") == "myDataset One"
    assert check_dataset_name("vision/cats") == "vision/cats"
    assert check_dataset_name("default/cats") == "cats"  # the default project is bare
    assert (project_of("vision/big cats"), project_of("cats")) == ("vision", DEFAULT_PROJECT)
    for bad in ("", "cats ", " cats", "-cats", "a/b/c", "a b/cats", "/cats", "cats/", "c\tt"):
        with pytest.raises(InvalidInput):
            check_dataset_name(bad)
    for bad in ("", "a b", "-a", "a" * 65, "a@b"):
        with pytest.raises(InvalidInput):
            check_project_name(bad)

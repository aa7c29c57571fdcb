"""The ``--where`` filter language: what each form selects, and the errors it gives."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dlfs.errors import InvalidInput
from dlfs.ops.where import Subject, equal, labels_of, parse

DOG = Subject(
    path="train/dogs/rex.jpg",
    size=1234,
    metadata={
        "split": "train",
        "score": 0.75,
        "count": 3,
        "reviewed": True,
        "tags": ["hard", "night", 7],
        "camera": {"model": "X100", "iso": 800},
        "weird key": {"x": "y"},
        "nothing": None,
    },
    annotations=[
        {"label": "dog", "box": [0, 0, 10, 10]},
        {"label": "ball"},
        {"box": [1, 2, 3, 4]},  # no label: ignored
        "not an object",  # ignored
        {"label": 5},  # not a string: ignored
    ],
)
BARE = Subject(path="x.txt", size=0, metadata={}, annotations=[])


def check(expr: str, subject: Subject = DOG) -> bool:
    return parse(expr).matches(subject)


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ('label == "dog"', True),
        ('label == "cat"', False),
        ('label != "dog"', False),  # != is "no annotation labelled dog"
        ('label != "cat"', True),
        ('label in ["cat", "ball"]', True),
        ('label not in ["cat", "ball"]', False),
        ("label == null", False),
        ('metadata.split == "train"', True),
        ('metadata.split == "train" and metadata.score > 0.5', True),
        ('metadata.split == "train" and metadata.score > 0.8', False),
        ('metadata.split == "val" or metadata.score >= 0.75', True),
        ("metadata.score < 0.75", False),
        ("metadata.score <= 0.75", True),
        ("metadata.count == 3.0", True),
        ("metadata.count == 3", True),
        ("metadata.reviewed == true", True),
        ("metadata.reviewed == 1", False),  # booleans are not numbers
        ("metadata.count == true", False),
        ('metadata.count > "2"', False),  # mixed types never order
        ('metadata.split > "t"', True),  # strings order by code point
        ("metadata.missing == null", True),
        ("metadata.nothing == null", True),
        ("metadata.split.deeper == null", True),  # through a non-object
        ("metadata.missing != null", False),
        ('metadata.camera.model == "X100"', True),
        ("metadata.camera.iso >= 800", True),
        ('metadata."weird key".x == "y"', True),
        ("metadata.'weird key'.x == 'y'", True),
        ('"hard" in metadata.tags', True),
        ("7 in metadata.tags", True),
        ('"day" in metadata.tags', False),
        ('"day" not in metadata.tags', True),
        ('"x" in metadata.split', False),  # only lists contain
        ('metadata.tags == ["hard", "night", 7]', True),
        ('metadata.camera == null or path == "train/dogs/rex.jpg"', True),
        ('name == "rex.jpg"', True),
        ("size > 1000 and size < 2000", True),
        ('not label == "dog"', False),
        ('not not label == "dog"', True),
        ('not (label == "cat" or label == "dog")', False),
        ('(label == "cat" or label == "dog") and metadata.count == 3', True),
        ('label == "cat" or label == "dog" and metadata.count == 4', False),  # and binds tighter
        ('"dog" == label', True),
        ("-1 < metadata.count", True),
        ("metadata.score == 7.5e-1", True),
    ],
)
def test_expressions(expr: str, expected: bool) -> None:
    assert check(expr) is expected


def test_items_without_labels_have_the_null_label() -> None:
    assert check("label == null", BARE)
    assert not check("label != null", BARE)
    assert not check('label == "dog"', BARE)
    assert check('label != "dog"', BARE)
    assert check('label not in ["dog"]', BARE)


def test_strings_take_json_escapes() -> None:
    subject = Subject(metadata={"s": "a\"b\\c\n\u00e9'd"})
    assert check(r'metadata.s == "a\"b\\c\n\u00e9\'d"', subject)
    assert check(r"metadata.s == 'a\"b\\c\n\u00e9\'d'", subject)
    with pytest.raises(InvalidInput, match=r"unknown escape '\\q'"):
        parse(r'metadata.s == "\q"')


def test_labels_of_reads_the_documented_shape() -> None:
    assert labels_of(DOG.annotations) == ["dog", "ball"]
    assert labels_of([{"label": "a"}, {"label": "a"}]) == ["a"]
    assert labels_of({"label": "a"}) == []  # not a list
    assert labels_of(None) == []


def test_filter_says_what_it_reads() -> None:
    assert parse('label == "dog"').uses_annotations
    assert not parse('label == "dog"').uses_metadata
    assert parse("metadata.a == 1").uses_metadata
    plain = parse('path == "a" and size > 1')
    assert not plain.uses_metadata and not plain.uses_annotations


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("", "column 1: empty expression"),
        ("   ", "column 4: empty expression"),
        ('label = "dog"', "column 7: unexpected '= \"dog\"' (compare with '==')"),
        ("label == dog", "column 10: unknown name 'dog' (fields are label, metadata.KEY"),
        ("label ==", "column 9: expected a value after '==', found the end"),
        ('label "dog"', "column 7: expected a comparison (==, !=, <, <=, >, >=, in) after 'label'"),
        ("metadata == 1", "column 10: expected '.KEY' after 'metadata'"),
        ("metadata. == 1", "column 11: expected a key after '.'"),
        ('(label == "a"', "column 14: expected ')', found the end"),
        ('label == "a")', "column 13: expected 'and', 'or' or the end of the expression"),
        ('label == "a" and', "column 17: expected a value, found the end"),
        ("label in [1, label]", "column 14: expected a string, number, true, false or null"),
        ("label in [1 2]", "column 13: expected ',' or ']' in a list"),
        ("size not == 1", "column 10: expected 'in' after 'not'"),
        ('label == "unterminated', "column 10: unexpected"),
        ("__import__('os').system('true')", "column 1: unknown name '__import__'"),
        ("size == 01", "column 10: expected 'and', 'or'"),
        ("metadata.a == 1; rm -rf /", "column 16: unexpected ';"),
    ],
)
def test_errors_name_the_column(expr: str, message: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse(expr)
    text = str(info.value)
    assert text.startswith("invalid --where expression at "), text
    assert message in text, text
    assert "\n" not in text


def test_nesting_and_length_are_bounded() -> None:
    assert check("(" * 60 + "size == 1234" + ")" * 60)
    with pytest.raises(InvalidInput, match="nested more than 64 levels"):
        parse("(" * 100 + "size == 1" + ")" * 100)
    with pytest.raises(InvalidInput, match="nested more than 64 levels"):
        parse("not " * 100 + "size == 1")
    with pytest.raises(InvalidInput, match="too long"):
        parse("size == 1 or " * 1000 + "size == 2")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.floats(-5, 5) | st.text(max_size=3),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=6,
)


@settings(max_examples=200, deadline=None)
@given(json_values, json_values)
def test_equality_is_json_equality(a: Any, b: Any) -> None:
    import json

    def canon(v: Any) -> str:
        # JSON equality: numbers by value (1 == 1.0), booleans only booleans.
        if isinstance(v, bool) or v is None or isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, int | float):
            return repr(float(v))
        if isinstance(v, list):
            return "[" + ",".join(canon(x) for x in v) + "]"
        return "{" + ",".join(f"{json.dumps(k)}:{canon(v[k])}" for k in sorted(v)) + "}"

    assert equal(a, b) is (canon(a) == canon(b))
    assert equal(a, a)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_any_text_parses_or_fails_cleanly(text: str) -> None:
    try:
        f = parse(text)
    except InvalidInput as exc:
        assert str(exc).startswith(("invalid --where expression", "--where expression"))
        return
    assert f.matches(DOG) in (True, False)
    assert f.matches(BARE) in (True, False)

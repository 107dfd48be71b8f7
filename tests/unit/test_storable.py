"""The rules every stored text and JSON value passes (``headwater.domain.storable``)."""

from __future__ import annotations

from typing import Any

import pytest

from headwater.domain.storable import (
    PROFILE,
    REQUEST,
    Limits,
    check_document,
    check_string,
    check_text,
    document_problem,
)
from headwater.errors import InvalidRequest

SMALL = Limits(max_depth=3, max_keys=4, max_bytes=40, max_key_length=5)


def _nested(depth: int) -> Any:
    value: Any = []
    for _ in range(depth - 1):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("plain", None),
        ("émoji 🙂 and 中文", None),
        ("a\x00b", "must not contain NUL characters"),
        ("\ud800", "must be valid Unicode text"),
        ("x\udfffy", "must be valid Unicode text"),
        ("\ud83d\ude42", "must be valid Unicode text"),  # a pair as two code points is no pair
    ],
)
def test_text(text: str, problem: str | None) -> None:
    assert check_text(text) == problem


@pytest.mark.parametrize(
    ("value", "found"),
    [
        ({"a": [1, 2.5, True, None, "x"]}, None),
        (_nested(3), None),
        (_nested(4), ("f.0.0.0", "must not be nested more than 3 levels deep")),
        ({"a": {"b": {"c": {}}}}, ("f.a.b.c", "must not be nested more than 3 levels deep")),
        ({"a": 1, "b": {"c": 1, "d": 1, "e": 1}}, ("f", "must have at most 4 keys in all")),
        ({"toolong": 1}, ("f", "keys must be at most 5 characters")),
        ({"\ud800": 1}, ("f", "keys must be valid Unicode text")),
        ({"a": {"b\x00": 1}}, ("f.a", "keys must not contain NUL characters")),
        ({"a": ["ok", "\udc00"]}, ("f.a.1", "must be valid Unicode text")),
        ({"a": float("nan")}, ("f.a", "must be a finite number")),
        ({"a": float("-inf")}, ("f.a", "must be a finite number")),
        ({"a": 2**53}, None),
        ({"a": -(2**53) - 1}, ("f.a", "is too large a number")),
        ({"a": object()}, ("f.a", "must be a JSON value")),
        ({"a": "x" * 40}, ("f", "must be at most 40 bytes as JSON")),
        ({"a": "é" * 15}, None),  # 38 bytes as UTF-8
        ({"a": "é" * 17}, ("f", "must be at most 40 bytes as JSON")),
    ],
)
def test_document(value: Any, found: tuple[str, str] | None) -> None:
    assert document_problem(value, "f", SMALL) == found


def test_a_whole_body_names_the_place_without_a_prefix() -> None:
    assert document_problem({"profile": {"x": "\ud800"}}, "", REQUEST) == (
        "profile.x",
        "must be valid Unicode text",
    )
    assert document_problem(["\x00"], "", REQUEST) == ("0", "must not contain NUL characters")
    assert document_problem("\x00", "", REQUEST) == ("body", "must not contain NUL characters")


def test_any_depth_is_checked_without_exhausting_the_stack() -> None:
    problem = document_problem(_nested(100_000), "profile", PROFILE)
    assert problem is not None and "nested more than 16 levels" in problem[1]


def test_refusals_are_okta_400s_naming_the_field() -> None:
    with pytest.raises(InvalidRequest) as refused:
        check_document({"a": {"b": "\ud800"}}, "profile")
    assert refused.value.code == "E0000001"
    assert refused.value.causes == ["profile.a.b: must be valid Unicode text"]
    assert check_document({"a": 1}, "profile") == {"a": 1}


@pytest.mark.parametrize(
    ("text", "cause"),
    [
        ("", "name: must not be empty"),
        ("x" * 11, "name: must be at most 10 characters"),
        ("a\x00", "name: must not contain NUL characters"),
        ("\ud800", "name: must be valid Unicode text"),
    ],
)
def test_strings(text: str, cause: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        check_string(text, "name", max_length=10, min_length=1)
    assert refused.value.causes == [cause]
    assert check_string("fine", "name", max_length=10, min_length=1) == "fine"

"""Ids made in bulk are the ids ``new_id`` makes: prefix, 17 base-62 characters, time-ordered."""

from __future__ import annotations

import re

from headwater import ids

SHAPE = re.compile(r"^evt[0-9A-Za-z]{17}$")


def test_ids_made_in_bulk_are_unique_ordered_and_follow_the_single_ones() -> None:
    before = ids.new_id("evt")
    many = ids.new_ids("evt", 5000)
    after = ids.new_id("evt")
    assert len(set(many)) == 5000
    assert all(SHAPE.match(made) for made in many)
    # The time part is consecutive microseconds: the list is sorted and sits between the two.
    assert [before, *many, after] == sorted([before, *many, after])
    assert ids.new_ids("evt", 0) == []


def test_encoding_is_base_62_on_a_fixed_width() -> None:
    assert ids._encode(0, 8) == "00000000"
    assert ids._encode(61, 3) == "00z"
    assert ids._encode(62, 3) == "010"
    assert ids._encode(62**9 - 1, 9) == "z" * 9
    value = 123_456_789_012
    digits = []
    for _ in range(9):
        value, rem = divmod(value, 62)
        digits.append(ids._ALPHABET[rem])
    assert ids._encode(123_456_789_012, 9) == "".join(reversed(digits))

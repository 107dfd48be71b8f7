"""The pure part of CSV imports: reading rows from bytes, the header, one row, the status."""

from __future__ import annotations

import io

import pytest

from headwater.domain import csv_import as c
from headwater.domain.lifecycle import Action, Status
from headwater.errors import InvalidRequest

HEADER = (
    "login,email,firstName,lastName,groups,status,startYear:integer,score:number,remote:boolean"
)


def rows(text: bytes) -> list[c.CsvRow]:
    return list(c.read_rows(io.BytesIO(text)))


def header(cells: str = HEADER, match: c.MatchKey = c.MatchKey.LOGIN) -> c.Header:
    return c.parse_header(cells.split(","), match)


def parse(line: str, number: int = 2) -> c.UserRow:
    _, row = rows(f"{HEADER}\n{line}\n".encode())
    return c.user_row(header(), c.CsvRow(number, row.cells, row.problem))


def test_rows_know_their_line_even_across_quoted_newlines_and_blank_lines() -> None:
    found = rows(b'a,b\n1,"two\nlines"\n\n3,4\n')
    assert [(r.line, r.cells) for r in found] == [
        (1, ["a", "b"]),
        (2, ["1", "two\nlines"]),
        (5, ["3", "4"]),
    ]


def test_a_bom_is_dropped_and_crlf_is_read() -> None:
    assert rows(b"\xef\xbb\xbflogin\r\nx@y.zz\r\n")[0].cells == ["login"]
    assert rows(b"\xef\xbb\xbflogin\r\nx@y.zz\r\n")[1].cells == ["x@y.zz"]


def test_broken_utf8_rejects_its_row_by_line_and_reading_goes_on() -> None:
    found = rows(b"a\nok\nbad\xff\xfe\nfine\n")
    assert [r.cells for r in found] == [["a"], ["ok"], None, ["fine"]]
    assert found[2].line == 3
    assert found[2].problem == "not valid UTF-8 (byte 0xff at position 4 of line 3)"


def test_a_malformed_row_is_reported_and_the_next_one_read() -> None:
    found = rows(b'a,b\n"x"y,1\n2,3\n')
    assert found[1].cells is None and found[1].line == 2
    assert "not a valid CSV row" in (found[1].problem or "")
    assert found[2].cells == ["2", "3"]


def test_header_maps_standard_names_case_insensitively_and_keeps_custom_ones() -> None:
    parsed = header("LOGIN,Email,firstname,LastName,employeeNumber,badgeColour,groups,Status")
    assert [col.attribute for col in parsed.columns] == [
        "login",
        "email",
        "firstName",
        "lastName",
        "employeeNumber",
        "badgeColour",
    ]
    assert parsed.groups == 6 and parsed.status == 7
    assert parsed.missing_for_create() == []
    assert header("login,email").missing_for_create() == ["firstName", "lastName"]


@pytest.mark.parametrize(
    ("cells", "cause"),
    [
        ("email,firstName", "header: the match key column 'login' is missing"),
        ("login,login", "header: column 'login' appears twice"),
        ("login,first name", "header: column 'first name' is not an attribute name"),
        ("login,email:integer", "header: email is a standard attribute, always text"),
    ],
)
def test_unusable_headers_are_refused(cells: str, cause: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        header(cells)
    assert any(text.startswith(cause) for text in raised.value.causes)


def test_match_key_column_must_exist() -> None:
    with pytest.raises(InvalidRequest):
        header("login,email", c.MatchKey.EMPLOYEE_NUMBER)
    assert (
        header("login,employeeNumber", c.MatchKey.EMPLOYEE_NUMBER).match.value == "employeeNumber"
    )


def test_a_good_row_types_its_typed_columns_and_splits_groups() -> None:
    row = parse("a@b.cc,a@b.cc,Ann,Bee, Eng ; Ops|Eng ,active,2021,1.5,yes")
    assert row.attributes == {
        "login": "a@b.cc",
        "email": "a@b.cc",
        "firstName": "Ann",
        "lastName": "Bee",
        "startYear": 2021,
        "score": 1.5,
        "remote": True,
    }
    assert row.groups == ("Eng", "Ops")
    assert row.status == Status.ACTIVE


def test_blank_cells_set_nothing() -> None:
    row = parse("a@b.cc,,,,,,,,")
    assert row.attributes == {"login": "a@b.cc"}
    assert row.groups == () and row.status is None


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("a@b.cc,a@b.cc,A,B,,,soon,,", "startYear: 'soon' is not an integer"),
        ("a@b.cc,a@b.cc,A,B,,,,NaN,", "score: must be a finite number"),
        ("a@b.cc,a@b.cc,A,B,,,,,maybe", "remote: 'maybe' is not true or false"),
        ("a@b.cc,not-an-email,A,B,,,,,", "email: Does not match required pattern"),
        ("a@b.cc,a@b.cc,A,B,,GONE,,,", "status: 'GONE' is not one of"),
        (",a@b.cc,A,B,,,,,", "login: the match key is blank"),
        ("a@b.cc,a@b.cc,A", "3 cells where the header has 9 columns"),
    ],
)
def test_bad_rows_say_why(line: str, reason: str) -> None:
    with pytest.raises(c.RowError) as raised:
        parse(line)
    assert str(raised.value).startswith(reason)


@pytest.mark.parametrize(
    ("current", "wanted", "action"),
    [
        ("ACTIVE", Status.ACTIVE, None),
        ("PROVISIONED", Status.ACTIVE, None),
        ("STAGED", Status.ACTIVE, Action.ACTIVATE),
        ("DEPROVISIONED", Status.PROVISIONED, Action.ACTIVATE),
        ("SUSPENDED", Status.ACTIVE, Action.UNSUSPEND),
        ("ACTIVE", Status.SUSPENDED, Action.SUSPEND),
        ("ACTIVE", Status.DEPROVISIONED, Action.DEACTIVATE),
        ("SUSPENDED", Status.DEPROVISIONED, Action.DEACTIVATE),
        ("DEPROVISIONED", Status.DEPROVISIONED, None),
        ("ACTIVE", None, None),
    ],
)
def test_status_actions(current: str, wanted: Status | None, action: Action | None) -> None:
    assert c.status_action(current, wanted) == action


def test_unreachable_status_is_a_row_error() -> None:
    with pytest.raises(c.RowError, match="a PROVISIONED person cannot become SUSPENDED"):
        c.status_action("PROVISIONED", Status.SUSPENDED)


def test_group_files() -> None:
    parsed = c.parse_group_header(["Name", "description"])
    found = rows(b"name,description\nEng,Builders\n,nameless\n")
    assert c.group_row(parsed, found[1]).profile == {"name": "Eng", "description": "Builders"}
    with pytest.raises(c.RowError, match="name: The field cannot be left blank"):
        c.group_row(parsed, found[2])
    with pytest.raises(InvalidRequest):
        c.parse_group_header(["title"])

"""The import/export file formats: streaming readers (line numbers, encodings, malformed input) and writers."""

from __future__ import annotations

import datetime as dt
import io
import json
from decimal import Decimal
from typing import Any
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bapp_cli.errors import InvalidInput, UsageError
from bapp_cli.services.transfer import formats
from bapp_cli.services.transfer.formats import RecordWriter, RejectsWriter, RowError, Source, SourceRow, format_for


def rows_of(data: bytes, fmt: str) -> list[SourceRow]:
    source = Source(fmt, io.BytesIO(data))
    return [row for _, rows in source.sections() for row in rows]


def sections_of(data: bytes, fmt: str) -> dict[str | None, list[SourceRow]]:
    return {name: list(rows) for name, rows in Source(fmt, io.BytesIO(data)).sections()}


def test_format_comes_from_the_flag_then_the_extension() -> None:
    assert format_for("a.CSV", None, default=None) == "csv"
    assert format_for("dir.v2/rows.jsonl", None, default=None) == "jsonl"
    assert format_for("rows.txt", "tsv", default=None) == "tsv"
    assert format_for(None, None, default="json") == "json"
    with pytest.raises(UsageError, match="cannot tell the format of stdin"):
        format_for("-", None, default=None)
    # a file without an extension is named as itself, not as stdin (the message said stdin for any path)
    with pytest.raises(InvalidInput, match="cannot tell the format of 'rows' from its name") as refused:
        format_for("rows", None, default=None)
    assert refused.value.hint == "name it .csv, .tsv, .json, .jsonl or .toml, or pass --input-format " + "|".join(
        formats.FORMATS
    )
    assert format_for("backup", None, default="json") == "json"
    with pytest.raises(UsageError, match="unknown format 'xml'"):
        format_for("a.csv", "xml", default=None)


def test_csv_with_a_bom_empty_cells_and_multi_line_cells_keeps_line_numbers() -> None:
    data = '\ufeffemail,name\r\nada@example.com,"Ada\nLovelace"\r\n\r\nbob@example.com,\r\n'.encode()
    headers: list[list[str]] = []
    source = Source("csv", io.BytesIO(data), on_header=headers.append)
    rows = [row for _, items in source.sections() for row in items]
    assert headers == [["email", "name"]]
    assert [(row.line, dict(row.values)) for row in rows] == [
        (2, {"email": "ada@example.com", "name": "Ada\nLovelace"}),
        (5, {"email": "bob@example.com", "name": None}),
    ]
    assert rows[1].original == {"email": "bob@example.com", "name": ""}
    assert source.bytes_read == len(data)


def test_tsv_and_a_row_with_the_wrong_number_of_cells() -> None:
    rows = rows_of(b"a\tb\n1\t2\n1\t2\t3\n", "tsv")
    assert rows[0].values == {"a": "1", "b": "2"}
    assert (rows[1].values, rows[1].problem) == (
        {},
        RowError(3, None, "3 cells, but the header has 2 columns; the cells after its last column: '3'"),
    )


@pytest.mark.parametrize(
    ("data", "line", "message"),
    [
        ("email\nada@example.com\nrené@exämple.com\n".encode("latin-1"), 3, "not UTF-8"),
        ("email\nada@example.com\n".encode("utf-16"), 1, "not UTF-8"),
        (b'email,name\nada@example.com,"Ada\n', 2, "malformed CSV"),
        # a quote left open takes the rest of the file: named by its line, not the file's last (it said line 4)
        (
            b'email,name\n"ada@example.com,Ada\nbob@example.com,Bob\ncy@example.com,Cy\n',
            2,
            "runs from this line to line 4",
        ),
        (b'"email,name\nada@example.com,Ada\n', 1, "malformed header (unexpected end of data; a quoted cell runs from"),
        (b"", 1, "a header row naming the columns is required"),
        (b"email,email\n", 1, "column given twice: email"),
        # it said 'unknown column' of a field with no name ('line 1, field : unknown column')
        (b"email,name,\nada@example.com,Ada,\n", 1, "line 1: column 3 of the header has no name"),
        # a classic-Mac file (CR alone ends each line) or a bare CR in a cell: said so, not csv's advice to open
        # the file in universal-newline mode
        (b"email,name\rada@example.com,Ada\r", 1, "malformed header (a carriage return outside quotes: lines end"),
        (b"email,name\nada@example.com,A\rda\n", 2, "malformed CSV (a carriage return outside quotes: lines end in LF"),
    ],
    ids=[
        "latin-1",
        "utf-16",
        "unterminated-quote",
        "stray-quote",
        "stray-quote-in-header",
        "empty",
        "duplicate-column",
        "unnamed-column",
        "cr-lines",
        "cr-cell",
    ],
)
def test_a_broken_csv_file_is_refused_naming_its_line(data: bytes, line: int, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        rows_of(data, "csv")
    assert caught.value.exit_code == 6
    assert message in caught.value.message and caught.value.message.startswith(f"line {line}: ")
    assert caught.value.details[0]["line"] == line


def test_a_csv_line_or_cell_past_the_bound_of_a_record_is_refused_naming_its_line() -> None:
    with mock.patch.object(formats, "MAX_VALUE_BYTES", 1 << 20):  # the real bound, 64 MB, of every format's record
        with pytest.raises(InvalidInput) as line:
            rows_of(b"email\n" + b"x" * ((1 << 20) + 1) + b"\n", "csv")
        # a stray quote: the cell swallows line after line, each short
        with pytest.raises(InvalidInput) as cell:
            rows_of(b'email\n"' + (b"x" * 1000 + b"\n") * 1100, "csv")
    assert line.value.message.startswith("line 2: a line longer than 1048576 bytes")
    # named by the line the quote opened on (it said line 1049, where the bound was reached), and where it ran to
    assert cell.value.message.startswith(
        "line 2: malformed CSV (field larger than field limit (1048576);"
        " a quoted cell runs from this line to line 1049)"
    )


def test_json_array_rows_start_on_their_own_lines() -> None:
    data = b'[\n  {"a": 1},\n  {"a": 2,\n   "b": [1, 2]}, 7,\n  null\n]\n'
    rows = rows_of(data, "json")
    assert [(row.line, dict(row.values), row.problem) for row in rows] == [
        (2, {"a": 1}, None),
        (3, {"a": 2, "b": [1, 2]}, None),
        (4, {}, RowError(4, None, "expected an object, found int")),
        (5, {}, RowError(5, None, "expected an object, found null")),  # it said "found NoneType"
    ]


def test_json_document_with_sections_and_a_header() -> None:
    data = b'{"bapp": {"format": "x"},\n "clients": [{"email": "a@b.co"}],\n "skills": []}'
    found = sections_of(data, "json")
    assert list(found) == ["bapp", "clients", "skills"]
    assert found["bapp"][0].original == {"value": {"format": "x"}}
    # a section that is no array says so (it said 'expected an object, found dict' of an object), in TOML too:
    # `[clients]` for `[[clients]]` is one table, and an array's items that are no tables are bad rows each
    assert found["bapp"][0].problem == RowError(1, None, "expected an array of objects, found dict")
    assert [row.line for row in found["clients"]] == [2]
    toml = sections_of(b'[clients]\nemail = "a@b.co"\n[[skills]]\nslug = "x"\n', "toml")
    assert toml["clients"][0].problem == RowError(1, None, "expected an array of tables ([[clients]]), found dict")
    assert [row.problem for row in sections_of(b"clients = [1]\n", "toml")["clients"]] == [
        RowError(1, None, "expected an object, found int")
    ]


@pytest.mark.parametrize(
    ("data", "line"),
    [
        (b'[\n{"a": 1},\n{"a": }\n]', 3),
        (b'[{"a": 1}\n{"a": 2}]', 2),
        (b'[{"a": 1}', 1),
        (b"[1] [2]", 1),
        (b"42", 1),
        (b'[{"a": "\xff"}]', 1),
    ],
    ids=["bad-value", "missing-comma", "truncated", "extra-data", "not-an-array", "not-utf8"],
)
def test_malformed_json_is_refused_with_its_line(data: bytes, line: int) -> None:
    with pytest.raises(InvalidInput) as caught:
        rows_of(data, "json")
    assert caught.value.details[0]["line"] == line
    assert caught.value.exit_code == 6


@settings(max_examples=60, deadline=None)
@given(
    document=st.lists(
        st.dictionaries(
            st.text(max_size=8),
            st.recursive(
                st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                max_leaves=8,
            ),
            max_size=5,
        ),
        max_size=6,
    ),
    chunk=st.integers(min_value=1, max_value=40),
    indent=st.sampled_from([None, 0, 2]),
)
def test_the_streaming_json_reader_agrees_with_json_loads(
    document: list[dict[str, Any]], chunk: int, indent: int | None
) -> None:
    """Whatever the chunk boundaries, the incremental reader yields exactly what json.loads does."""
    text = json.dumps(document, indent=indent, ensure_ascii=False)
    with mock.patch.object(formats, "READ_CHUNK", chunk):
        rows = rows_of(text.encode(), "json")
    assert [dict(row.original) for row in rows] == json.loads(text)
    for row in rows:  # a control character anywhere makes the row a bad one; otherwise the values are as given
        held = formats.control_character(row.original)
        if held is None:
            assert (row.values, row.problem) == (row.original, None)
        else:
            assert row.values == {} and row.problem is not None and row.problem.field == held[0]
            assert f"U+{ord(held[1]):04X}" in row.problem.message


def test_jsonl_bad_lines_are_bad_rows_not_a_bad_file() -> None:
    rows = rows_of(b'{"a": 1}\n\n{"a": \n[1]\n', "jsonl")
    assert [(row.line, dict(row.values), row.problem) for row in rows] == [
        (1, {"a": 1}, None),
        (3, {}, RowError(3, None, "not valid JSON (Expecting value)")),
        (4, {}, RowError(4, None, "expected an object, found list")),
    ]


def test_toml_tables_carry_the_line_of_their_header() -> None:
    data = b'# clients\n[[clients]]\nemail = "a@b.co"\n\n[[clients]]\nemail = "c@d.co"\nname = "C"\n'
    found = sections_of(data, "toml")
    assert [(row.line, dict(row.values)) for row in found["clients"]] == [
        (2, {"email": "a@b.co"}),
        (5, {"email": "c@d.co", "name": "C"}),
    ]
    with pytest.raises(InvalidInput) as caught:
        rows_of(b'[[clients]]\nemail = "a@b.co"\nemail = 3\n', "toml")
    assert caught.value.details[0]["line"] == 3


def test_an_inline_array_of_rows_carries_the_line_of_its_key() -> None:
    # its rows were said to be on the line of their index in it: the third row of a one-line array on line 3
    data = b'# clients\n\nclients = [{ email = "a@b.co" }, 2, { email = 3 }]\n'
    assert [row.line for row in sections_of(data, "toml")["clients"]] == [3, 3, 3]
    spread = b'skills = [{ slug = "s" }]\n"clients" = [\n  { email = "a@b.co" },\n  { email = "c@d.co" },\n]\n'
    assert [row.line for rows in sections_of(spread, "toml").values() for row in rows] == [1, 2, 2]


def test_a_header_line_inside_a_multi_line_string_is_no_table_of_its_own() -> None:
    # the headers were found by a pattern over the whole text: a `[[clients]]` line in a string moved every later
    # table's line up, so an error named a line above the table it was about; the quotes in a comment or a one-line
    # string open no multi-line string
    data = (
        b"[[clients]] # '''\n"
        b'email = "a@b.co"\nname = """Ada\n[[clients]]\n"""\n'
        b'company = \'"""\'\n'
        b"[[clients]]\nemail = 'c@d.co'\nname = '''C\n  [[clients]]'''\n"
        b"[[clients]]\nemail = 3\n"
    )
    assert [row.line for row in rows_of(data, "toml")] == [1, 7, 11]


@pytest.mark.parametrize(
    "cut", [b"[[clie", b'[[clients]]\nemail = "a@b.co"\nna', b'[[clients]]\nemail = "a@b.co"\nname = ']
)
def test_a_truncated_toml_file_is_refused_naming_its_last_line(cut: bytes) -> None:
    # tomllib says "at end of document", with no line, of a file cut short: that is its last line
    with pytest.raises(InvalidInput) as caught:
        rows_of(cut, "toml")
    line = cut.count(b"\n") + 1
    assert caught.value.details == [{"line": line, "field": None, "message": caught.value.details[0]["message"]}]
    assert caught.value.message.startswith(f"line {line}: malformed TOML")


def test_a_quoted_header_is_found_in_a_file_holding_a_multi_line_string() -> None:
    # a multi-line string had every string blanked, a header's quoted key too: the rows were numbered by position
    text = b'[["clients"]]\nemail = "a"\nnote = """\n[[clients]]\n"""\n\n[[ \'clients\' ]] # b\nemail = "b"\n'
    assert [row.line for row in rows_of(text, "toml")] == [1, 7]


def test_a_header_whose_quoted_key_holds_an_escape_is_found() -> None:
    # [["cli\u0065nts"]] was no header: its row was given the next header's line (7), the row after it its position (3)
    text = b'[[clients]]\nemail = "a"\n\n[["cli\\u0065nts"]]\nemail = "b"\n\n[[clients]]\nemail = "c"\n'
    assert [row.line for row in rows_of(text, "toml")] == [1, 4, 7]


def test_a_malformed_toml_file_is_refused_at_the_line_tomllib_names() -> None:
    # tomllib's "Expected newline or end of document … (at line 1, …)" was read as a file cut short: its last line
    with pytest.raises(InvalidInput) as caught:
        rows_of(b"a = 1 b\n\n\n", "toml")
    assert caught.value.message.startswith("line 1: malformed TOML (Expected newline or end of document")


RECORD = {
    "id": 7,
    "email": "ada@example.com",
    "when": dt.datetime(2030, 1, 2, 3, 4, 5, 123456, tzinfo=dt.UTC),
    "on": dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
    "day": dt.date(2030, 1, 2),
    "amount": Decimal("30"),
    "flag": True,
    "none": None,
    "answers": [{"question": "Q", "answer": ["a", "b"], "position": 0, "empty": None}],
}


def write(fmt: str, records: list[dict[str, Any]]) -> str:
    stream = io.StringIO()
    writer = RecordWriter(stream, fmt, list(RECORD), kind="things")
    for record in records:
        writer.write(record)
    writer.close()
    return stream.getvalue()


@pytest.mark.parametrize("fmt", ["csv", "json", "jsonl", "toml"])
def test_writers_hold_about_a_chunk_of_text_however_long_the_records(fmt: str) -> None:
    # an `export all` inbox row may hold megabytes: the writer wrote every thousand records, so a thousand such rows
    # (gigabytes) were held before the first write; it writes once it holds more than READ_CHUNK characters
    held: list[int] = []
    stream = mock.Mock(write=lambda text: held.append(len(text)))
    writer = RecordWriter(stream, fmt, list(RECORD), kind="things")
    for _ in range(3):
        writer.write({**RECORD, "email": "x" * formats.READ_CHUNK})
    assert len(held) == 3 and all(length < 3 * formats.READ_CHUNK for length in held), held
    writer.close()
    assert len(held) == 4


def test_writers_render_instants_money_and_nesting_as_documented() -> None:
    csv_text = write("csv", [RECORD])
    assert csv_text.splitlines() == [
        "id,email,when,on,day,amount,flag,none,answers",
        "7,ada@example.com,2030-01-02T03:04:05.123456Z,2030-01-02T03:04:05Z,2030-01-02,30.00,true,,"
        '"[{""question"":""Q"",""answer"":[""a"",""b""],""position"":0,""empty"":null}]"',
    ]
    assert json.loads(write("json", [RECORD, RECORD]))[1]["amount"] == "30.00"
    assert json.loads(write("json", [])) == []
    line = json.loads(write("jsonl", [RECORD]))
    assert (line["when"], line["none"], line["flag"]) == ("2030-01-02T03:04:05.123456Z", None, True)
    toml_text = write("toml", [RECORD])
    assert "none" not in toml_text and "empty" not in toml_text  # TOML has no null: absent means null
    back = sections_of(toml_text.encode(), "toml")["things"][0].values
    assert back["when"] == RECORD["when"] and back["amount"] == "30.00" and back["answers"][0]["answer"] == ["a", "b"]
    # instants read as everywhere else (UTC, `Z`); every record is its own [[things]] table, nested ones included
    assert "when = 2030-01-02T03:04:05.123456Z\n" in toml_text and "on = 2030-01-02T03:04:05Z\n" in toml_text
    nested_only = {"id": None, "answers": [{"question": "Q"}]}
    three = write("toml", [RECORD, nested_only, RECORD])
    tables = sections_of(three.encode(), "toml")["things"]
    assert [table.values.get("id") for table in tables] == [7, None, 7]
    assert [three.splitlines()[table.line - 1] for table in tables] == ["[[things]]"] * 3
    assert tables[1].values["answers"] == [{"question": "Q"}]


def test_the_rejects_file_keeps_the_row_as_given_plus_an_error() -> None:
    stream = io.StringIO()
    rejects = RejectsWriter(stream, "csv")
    rejects("clients", SourceRow(3, {"email": None}, {"email": "", "name": "x"}), "email: required")
    rejects.close()
    assert stream.getvalue() == "email,name,error\n,x,email: required\n"
    stream = io.StringIO()
    rejects = RejectsWriter(stream, "json", all_kinds=True)
    rejects("clients", SourceRow(3, {}, {"email": "a"}), "bad")
    rejects("bookings", SourceRow(9, {}, {"client": "b"}), "worse")
    rejects.close()
    assert json.loads(stream.getvalue()) == {
        "clients": [{"email": "a", "error": "bad"}],
        "bookings": [{"client": "b", "error": "worse"}],
    }
    # a JSON, JSONL or TOML row keeps only the keys it had: the first rejected row's keys, added as null, cleared
    # those columns when the fixed row was imported again (an absent key leaves a column alone, a null clears it)
    for fmt in ("json", "jsonl", "toml"):
        stream = io.StringIO()
        rejects = RejectsWriter(stream, fmt)
        rejects("clients", SourceRow(1, {}, {"email": "a", "company": "Acme"}), "bad")
        rejects("clients", SourceRow(2, {}, {"email": "b"}), "worse")
        rejects.close()
        read = [
            dict(row.values)
            for _, rows in Source(fmt, io.BytesIO(stream.getvalue().encode())).sections()
            for row in rows
        ]
        assert read == [{"email": "a", "company": "Acme"}, {"email": "b"}], fmt  # the `error` note is no value

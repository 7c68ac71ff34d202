"""The one CSV/TSV cell rule (services/spreadsheet.py): formulas neutralised, and exactly reversible."""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal
from types import SimpleNamespace

from hypothesis import given
from hypothesis import strategies as st

from bapp_cli.services.spreadsheet import cell_text, neutralise, restore_cell
from bapp_cli.services.transfer.formats import RecordWriter, Source


def test_cells_a_spreadsheet_would_run_get_an_apostrophe() -> None:
    for risky in ("=1+1", "+44 20", "-x", "@SUM(A1)", "\tcmd", "\rcmd", "'=x", "''@x"):
        assert neutralise(risky) == "'" + risky
    for safe in ("Ada", "", "'quoted'", "O'Neil", " =x", "é=", "'"):
        assert neutralise(safe) == safe


def test_only_text_is_neutralised_and_raw_leaves_it() -> None:
    assert cell_text("=cmd") == "'=cmd" and cell_text("=cmd", raw=True) == "=cmd"
    assert cell_text(-5) == "-5" and cell_text(Decimal("-1.5")) == "-1.50" and cell_text(None) == ""
    assert cell_text(dt.datetime(2031, 3, 3, 10, tzinfo=dt.UTC)) == "2031-03-03T10:00:00Z"
    assert cell_text(["=a"]) == '["=a"]' and cell_text({"q": "-a"}) == '{"q":"-a"}'


@given(st.text(alphabet=st.sampled_from("'=+-@\t\rab "), max_size=8) | st.text(max_size=12))
def test_restore_undoes_neutralise_for_every_text(text: str) -> None:
    assert restore_cell(neutralise(text)) == text
    # and a cell a spreadsheet would run never leaves bapp
    assert not neutralise(text).startswith(("=", "+", "-", "@", "\t", "\r"))


@given(
    st.lists(
        # no carriage return: the CSV writer leaves a lone CR unquoted, which no CSV reader reads back
        st.text(alphabet=st.sampled_from("'=+-@\t\n ab,\"é\\u{}[]"), min_size=1, max_size=10),
        min_size=1,
        max_size=6,
    ),
    st.sampled_from(["csv", "tsv"]),
    st.booleans(),
)
def test_what_an_export_writes_an_import_reads_back(names: list[str], fmt: str, raw: bool) -> None:
    stream = io.StringIO()
    writer = RecordWriter(stream, fmt, ["id", "name"], kind="things", raw=raw)
    for index, name in enumerate(names, start=1):
        writer.write({"id": index, "name": name})
    writer.close()
    source = Source(fmt, io.BytesIO(stream.getvalue().encode()), raw=raw)
    rows = [row for _, section in source.sections() for row in section]
    assert [row.values["name"] for row in rows] == names
    if not raw:
        written = csv.reader(io.StringIO(stream.getvalue()), delimiter="," if fmt == "csv" else "\t")
        assert not any(cell.startswith(("=", "+", "-", "@", "\t")) for row in written for cell in row)


class _Label(str):
    """A str subclass: the exact-type lookup misses it, the general path must give the same cell."""


def test_the_row_formatter_gives_every_cell_exactly_as_cell_text() -> None:
    from bapp_cli.services.spreadsheet import cell_row_formatter

    berlin = dt.timezone(dt.timedelta(hours=1))
    values = [
        None, True, False, 0, -5, 1.5, "", "Ada", "=cmd", "'@x", _Label("-x"), Decimal("3"), Decimal("-1.5"),
        dt.datetime(2031, 3, 3, 10, tzinfo=dt.UTC), dt.datetime(2031, 3, 3, 10, 0, 0, 120, tzinfo=dt.UTC),
        dt.datetime(2031, 3, 3, 11, tzinfo=berlin), dt.datetime(2031, 3, 3, 10), dt.date(2031, 3, 3),
        ["=a", Decimal("2"), dt.datetime(2031, 1, 1, tzinfo=dt.UTC)], {"q": "-a"}, ("x", 1),
    ]  # fmt: skip
    for raw in (False, True):
        assert cell_row_formatter(raw=raw)(values) == [cell_text(value, raw=raw) for value in values]
    assert cell_row_formatter()([dt.datetime(2031, 3, 3, 11, tzinfo=berlin)]) == ["2031-03-03T10:00:00Z"]
    assert cell_row_formatter()([_Label("-x")]) == ["'-x"]


def test_a_record_writer_writes_as_records_arrive() -> None:
    """Streamed: a long export reaches its stream in pieces while records are still coming, not at close."""
    writes: list[int] = []

    class Recording(io.StringIO):
        def write(self, text: str) -> int:
            writes.append(len(text))
            return super().write(text)

    stream = Recording()
    writer = RecordWriter(stream, "csv", ["reference", "note"], kind="bookings")
    for index in range(20_000):
        writer.write({"reference": f"BK-{index:08d}", "note": "=x"})
    assert len(writes) > 3  # several flushes before close
    writer.close()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 20_001 and lines[1] == "BK-00000000,'=x"


def test_a_lone_carriage_return_is_quoted_in_every_chunk_and_every_flush_without_touching_other_lines() -> None:
    # The CR-quoting writer runs only for a chunk (a listing's thousand rows, a RecordWriter's flush) whose text
    # holds a CR: a CR past the first chunk, or beside a quoted CRLF, must still come out quoted, and every line
    # of the chunk must still end in LF alone, as the LF writer writes it.
    from bapp_cli.cli.output import write_delimited

    rows = [[f"client {n}", "x" * 40] for n in range(2500)]
    rows[1500] = ["Carriage\rreturn", "a\r\nb"]
    rows[1501] = ["line\nfeed", ""]
    for fmt, delimiter in (("csv", ","), ("tsv", "\t")):
        listing = io.StringIO()
        assert write_delimited(listing, fmt, ["name", "note"], rows) == 2500
        records = io.StringIO()
        writer = RecordWriter(records, fmt, ["name", "note"], kind="clients")
        assert writer.write_all({"name": name, "note": note} for name, note in rows) == 2500
        for written in (listing.getvalue(), records.getvalue()):
            assert list(csv.reader(io.StringIO(written, newline=""), delimiter=delimiter)) == [["name", "note"], *rows]
            wide = delimiter + "x" * 40
            assert written.startswith(f"name{delimiter}note\nclient 0{wide}\n")
            quoted = f'"Carriage\rreturn"{delimiter}"a\r\nb"\n"line\nfeed"{delimiter}\n'
            assert f"client 1499{wide}\n{quoted}client 1502{wide}\n" in written


def _csv_writer_text(rows: list[list[object]], delimiter: str) -> str:
    """What csv.writer writes of `rows` (the way `delimited_text` wrote them until it wrote a column at a time): LF
    line ends, and a chunk holding a CR written again ending in CRLF, so that CR is quoted as LF is."""
    lines: list[str] = []  # one write per row
    csv.writer(SimpleNamespace(write=lines.append), delimiter=delimiter, lineterminator="\n").writerows(rows)
    if "\r" not in "".join(lines):
        return "".join(lines)
    lines.clear()
    csv.writer(SimpleNamespace(write=lines.append), delimiter=delimiter, lineterminator="\r\n").writerows(rows)
    return "".join(line[:-2] + "\n" for line in lines)


class _Text(str):
    """A str subclass (what a driver or a caller might hand over): csv.writer took its text as it is."""


class _Shown:
    def __str__(self) -> str:  # needs quotes: written as its str, as csv.writer wrote any object
        return 'a, "b"'


# every kind of cell a caller could pass (cell_text's strings, a cursor's text, numbers and dates, anything with a
# str); the text alphabet is the characters that decide quoting, and some that do not (NUL, VT, FF, NEL, LS)
_TEXT = st.text(alphabet=",\"\n\r\t\0 a'é\x0b\x0c\x85\u2028")
_CELLS = (
    st.none()
    | st.integers()
    | st.floats()  # nan, inf and -0.0 too: csv.writer wrote a float's str
    | st.booleans()
    | st.decimals()
    | st.dates()
    | st.just(_Shown())
    | _TEXT
    | _TEXT.map(_Text)
)


@given(st.integers(0, 4).flatmap(lambda width: st.lists(st.lists(_CELLS, min_size=width, max_size=width))))
def test_delimited_text_writes_the_bytes_csv_writer_wrote(rows: list[list[object]]) -> None:
    from bapp_cli.services.spreadsheet import delimited_text

    for fmt, delimiter in (("csv", ","), ("tsv", "\t")):
        assert delimited_text(rows, fmt) == _csv_writer_text(rows, delimiter)
    # a row's one empty cell quoted (else the line reads as no cell); rows with no cells an empty line each
    assert delimited_text([[""], [None], ["a"]], "csv") == '""\n""\na\n'
    assert delimited_text([[], []], "csv") == "\n\n"

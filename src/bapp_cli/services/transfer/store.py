"""SQL pieces the importers share: lookups by key, shifted instants in SQL.

The set-based writes themselves live in `bapp_cli.db.bulk` (the sync uses them too).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from sqlalchemy import Executable, SQLColumnExpression, func, literal_column
from sqlalchemy.orm import Session

from bapp_cli.db.bulk import any_of


def rows_keyed(session: Session, query: Any, keys: Iterable[Any] | None) -> list[Any]:
    """The rows of `query` (a select) whose first column is one of `keys` (empty keys left out) — every row
    when `keys` is None — in one statement: the keys are one bound list (`any_of`), so one import batch's
    keys need no chunking — the batch itself bounds them — and no keys need no statement."""
    if keys is None:
        return list(session.execute(query))
    wanted = sorted({key for key in keys if key})
    return list(session.execute(query.where(any_of(session, query.selected_columns[0], wanted)))) if wanted else []


def exported(session: Session, columns: Sequence[str], query: Executable) -> Iterator[dict[str, Any]]:
    """An export's records: the rows of `query` as `columns`, streamed."""
    for row in session.execute(query.execution_options(yield_per=2000)):
        yield dict(zip(columns, row, strict=True))


def shifted(column: SQLColumnExpression[Any], minutes: int, *, dialect: str) -> SQLColumnExpression[Any]:
    """`column + minutes` in SQL. SQLite's datetime() drops fractions of a second, so callers widen their
    windows by a minute and then filter exactly in Python."""
    if minutes == 0:
        return column
    if dialect == "sqlite":
        return func.datetime(column, f"{minutes:+d} minutes")
    return column + literal_column(f"INTERVAL '{int(minutes)} minutes'")

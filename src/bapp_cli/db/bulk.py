"""Set-based writes for large batches (a sync's thousands of event types, an import's batches), on both backends.

The ORM's unit of work and even Core's executemany build and process a parameter dictionary per row;
at tens of thousands of rows that bookkeeping costs more than the database work (SPEC P2, P3).

On SQLite a batch is staged into a constraint-free temporary copy of the columns at C speed and moved with
ONE `INSERT … SELECT`. Two reasons, both measured on the bookings table (P3): per-row `executemany`
re-evaluates every CHECK constraint's `IN (…)` list for each row (SQLite builds the list afresh per
statement run), which costs about as much as the row itself; and one statement runs without holding
Python's GIL. Values are converted to what SQLAlchemy itself would store (UTC text with microseconds,
floats for numerics, JSON text), so rows written here read back exactly like rows written by the ORM. On
PostgreSQL the same rows go through a Core `executemany`, which psycopg pipelines. Everything runs in the
session's own transaction: atomicity, --dry-run and rollback are unchanged.
"""

from __future__ import annotations

import datetime as dt
import json
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, cast

from sqlalchemy import JSON, Boolean, Date, FromClause, Numeric, Table, bindparam, insert, update
from sqlalchemy.orm import Session

from bapp_cli.db.types import UTCDateTime

# one lookup per batch, and still well under every backend's parameter limit (SQLite 32,766; PostgreSQL 65,535)
CHUNK = 5000


def chunks(values: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def is_sqlite(session: Session) -> bool:
    return session.get_bind().dialect.name == "sqlite"


def sqlite_instant(value: dt.datetime | None) -> str | None:
    """An instant as SQLAlchemy stores it in SQLite: naive UTC text with microseconds."""
    if value is None:
        return None
    if value.tzinfo is not dt.UTC:
        if value.tzinfo is None or value.utcoffset() is None:
            # as UTCDateTime does: a guessed zone would silently move a booking
            raise ValueError("naive datetime refused: instants must be timezone-aware")
        value = value.astimezone(dt.UTC)
    return value.isoformat(" ", "microseconds")[:26]


def _json_text(value: Any) -> str | None:
    if value is None:
        return None
    return "[]" if value == [] else json.dumps(value)


def _converter(column_type: Any) -> Callable[[Any], Any] | None:
    if isinstance(column_type, UTCDateTime):
        return sqlite_instant
    if isinstance(column_type, Boolean):
        return lambda value: None if value is None else int(value)
    if isinstance(column_type, Numeric):
        return lambda value: None if value is None else float(value)
    if isinstance(column_type, Date):
        return lambda value: None if value is None else value.isoformat()
    if isinstance(column_type, JSON):
        return _json_text
    return None


def insert_rows(
    session: Session,
    clause: FromClause,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    deferred: bool = False,
) -> Callable[[], None] | None:
    """Insert `rows` (tuples of Python values in `columns` order) set-based.

    With `deferred` (SQLite), the rows are staged and the final INSERT … SELECT is returned for the caller
    to run — in a thread, say — before anything else uses the connection.
    """
    if not rows:
        return None
    table = cast(Table, clause)
    if not is_sqlite(session):
        session.execute(insert(table), [dict(zip(columns, row, strict=True)) for row in rows])
        return None
    # Columns holding one value for the whole batch (a source, a currency, `now`, nulls) are bound once in
    # the INSERT … SELECT; the others are converted column by column and staged.
    data: list[Sequence[Any]] = list(zip(*rows, strict=True))
    staged: list[str] = []
    staged_data: list[Sequence[Any]] = []
    constants: dict[str, Any] = {}
    for name, column in zip(columns, data, strict=True):
        convert = _converter(table.c[name].type)
        first = column[0]
        if column.count(first) == len(column):
            constants[f"c_{len(constants)}"] = convert(first) if convert is not None else first
            continue
        staged.append(name)
        staged_data.append([convert(value) for value in column] if convert is not None else column)
    names = ", ".join(columns)
    picks = []
    constant_names = iter(constants)
    for name in columns:
        picks.append(name if name in staged else f":{next(constant_names)}")
    if not staged:  # every row alike: stage one column anyway, for the row count
        staged, staged_data = [columns[0]], [data[0]]
        picks[0] = columns[0]
    staged_names = ", ".join(staged)
    stage = f"bapp_stage_{table.name}_{zlib.crc32(staged_names.encode()):08x}"
    driver = session.connection().connection.driver_connection
    assert driver is not None  # an open connection always has one
    cursor = driver.cursor()
    # A constraint-free copy of the columns takes the rows at C speed (staged here, holding the GIL: a
    # thread binding row by row would fight the main thread for it); the one INSERT … SELECT then checks
    # the real table's constraints once per statement rather than once per row, without the GIL.
    cursor.execute(f"CREATE TEMP TABLE IF NOT EXISTS {stage} AS SELECT {staged_names} FROM main.{table.name} WHERE 0")
    cursor.executemany(
        f"INSERT INTO temp.{stage} VALUES ({', '.join('?' * len(staged))})", zip(*staged_data, strict=True)
    )
    select_list = ", ".join(picks)

    def finish() -> None:
        try:
            cursor.execute(
                f"INSERT INTO main.{table.name} ({names}) SELECT {select_list} FROM temp.{stage} ORDER BY rowid",
                constants,
            )
            cursor.execute(f"DELETE FROM temp.{stage}")
        finally:
            cursor.close()

    if deferred:
        return finish
    finish()
    return None


def update_rows(session: Session, clause: FromClause, changes: Sequence[Mapping[str, Any]]) -> None:
    """UPDATE each row by id; rows are grouped by the set of columns they change."""
    table = cast(Table, clause)
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for change in changes:
        columns = tuple(sorted(name for name in change if name != "id"))
        if columns:
            groups.setdefault(columns, []).append({"_id": change["id"], **{name: change[name] for name in columns}})
    for columns, params in groups.items():
        statement = (
            update(table)
            .where(table.c.id == bindparam("_id"))
            .values({name: bindparam(name, type_=table.c[name].type) for name in columns})
        )
        for part in chunks(params):
            session.execute(statement.execution_options(synchronize_session=False), list(part))

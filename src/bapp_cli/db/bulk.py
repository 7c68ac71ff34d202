"""Set-based writes for large batches (a sync's thousands of event types, an import's batches), on both backends.

The ORM's unit of work builds and tracks an object per row; at tens of thousands of rows that bookkeeping
costs more than the database work. These helpers send a batch as one Core statement instead, in the
session's own transaction, with SQLAlchemy's own column types converting the values, so a row written
here reads back exactly like a row written by the ORM: atomicity, --dry-run and rollback are unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, cast

from sqlalchemy import FromClause, Table, bindparam, insert, update
from sqlalchemy.orm import Session

# The one size of a set-based step: rows per import batch and values per `IN (…)` lookup. Well under every
# backend's parameter limit (SQLite 32,766; PostgreSQL 65,535) and a few MB of rows in memory at a time.
CHUNK = 5000


def chunks(values: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def is_sqlite(session: Session) -> bool:
    return session.get_bind().dialect.name == "sqlite"


def insert_rows(session: Session, clause: FromClause, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Insert `rows` (tuples of Python values in `columns` order) with one executemany."""
    if rows:
        session.execute(insert(cast(Table, clause)), [dict(zip(columns, row, strict=True)) for row in rows])


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

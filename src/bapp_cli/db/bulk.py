"""Set-based writes for large batches (sync, import): one prepared statement, executemany on the driver.

SQLAlchemy's executemany path builds and processes a parameter dictionary per row through several
layers; at tens of thousands of rows that bookkeeping costs more than the database work. Here each
column's bind processor (the same conversion SQLAlchemy would apply: UTC instants, JSON, booleans,
money) is looked up once and applied in a tight loop, and the rows go to the DB-API cursor as tuples —
inside the session's own transaction, so atomicity and rollback are unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Column, Table
from sqlalchemy.orm import Session

Processor = Callable[[Any], Any] | None


def _processors(session: Session, table: Table, columns: Sequence[str]) -> list[Processor]:
    dialect = session.get_bind().dialect
    processors: list[Processor] = []
    for name in columns:
        column: Column[Any] = table.c[name]
        processors.append(column.type.dialect_impl(dialect).bind_processor(dialect))
    return processors


def _placeholder(session: Session) -> str:
    return "?" if session.get_bind().dialect.name == "sqlite" else "%s"


def _apply(processor: Callable[[Any], Any], values: list[Any]) -> list[Any]:
    """Convert values, once per distinct value: batch columns repeat the same instant (`now`) per row."""
    seen: dict[Any, Any] = {}
    converted: list[Any] = []
    for value in values:
        if value is None:
            converted.append(None)
            continue
        try:
            result = seen[value]
        except KeyError:
            result = seen[value] = processor(value)
        except TypeError:  # unhashable (JSON lists and dicts): convert each
            result = processor(value)
        converted.append(result)
    return converted


def _converted(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[str], processors: list[Processor]
) -> list[tuple[Any, ...]]:
    """Parameter tuples, converted a column at a time (one comprehension per column, not per cell)."""
    converted_columns = []
    for name, processor in zip(columns, processors, strict=True):
        values = [row.get(name) for row in rows]
        if processor is not None:
            values = _apply(processor, values)
        converted_columns.append(values)
    return list(zip(*converted_columns, strict=True))


def insert_many(session: Session, table: Table, rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> int:
    """INSERT every row (missing keys → NULL) in the session's transaction; returns the row count."""
    if not rows:
        return 0
    mark = _placeholder(session)
    statement = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({', '.join(mark for _ in columns)})"
    parameters = _converted(rows, columns, _processors(session, table, columns))
    cursor = session.connection().connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.executemany(statement, parameters)
    finally:
        cursor.close()
    return len(parameters)


def update_many(
    session: Session, table: Table, rows: Sequence[Mapping[str, Any]], columns: Sequence[str], *, key: str = "id"
) -> int:
    """UPDATE `columns` of each row matched on `key`; every row must carry every column."""
    if not rows:
        return 0
    mark = _placeholder(session)
    assignments = ", ".join(f"{name} = {mark}" for name in columns)
    statement = f"UPDATE {table.name} SET {assignments} WHERE {key} = {mark}"
    parameters = _converted(rows, [*columns, key], _processors(session, table, [*columns, key]))
    cursor = session.connection().connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.executemany(statement, parameters)
    finally:
        cursor.close()
    return len(parameters)

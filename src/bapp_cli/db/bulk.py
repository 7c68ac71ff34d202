"""Set-based writes for large batches (a sync's thousands of event types, an import's batches), on both backends.

The ORM's unit of work builds and tracks an object per row; at tens of thousands of rows that bookkeeping
costs more than the database work. These helpers send a batch as Core statements instead, in the
session's own transaction, with SQLAlchemy's own column types converting the values, so a row written
here reads back exactly like a row written by the ORM: atomicity, --dry-run and rollback are unchanged.

An insert stages the batch in a constraint-free temporary table and moves it with ONE `INSERT … SELECT`:
the target's CHECK constraints and indexes are then worked once per statement rather than once per
executed row, and a column holding one value for the whole batch (a source, a currency, `now`) is bound
once instead of converted for every row (each measured with bench/import.py: README, "Import", Speed).
`stage_rows` is that staging on its own, for a batch that is read rather than moved (the bookings
import's overlap lookup joins its staged slots against the bookings).
"""

from __future__ import annotations

import functools
import json
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent import futures
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, cast

from sqlalchemy import (
    ARRAY,
    Column,
    ColumnElement,
    FromClause,
    Integer,
    MetaData,
    Table,
    any_,
    bindparam,
    delete,
    func,
    insert,
    literal,
    literal_column,
    null,
    select,
    text,
    update,
)
from sqlalchemy.exc import StatementError
from sqlalchemy.orm import QueryableAttribute, Session
from sqlalchemy.schema import CreateTable

# The one size of a set-based step: rows per import batch and per UPDATE executemany. Well under every
# backend's parameter limit (SQLite 32,766; PostgreSQL 65,535) and a few MB of rows in memory at a time.
CHUNK = 5000


def any_of(
    session: Session, column: ColumnElement[Any] | QueryableAttribute[Any], values: Iterable[Any]
) -> ColumnElement[bool]:
    """`column IN (values)` with the values as ONE bound parameter (a JSON array on SQLite, an array on
    PostgreSQL): every lookup of the importers. One statement text whatever their number — an `IN (?, …)`
    list is a new text, so a new prepared statement in SQLite's per-connection cache, for every length — no
    parameter limit, and no per-value rendering and binding, which cost a 100,000-row bookings import more
    CPU than its lookups' SQL."""
    if is_sqlite(session):
        return column.in_(select(literal_column("value")).select_from(func.json_each(json.dumps(list(values)))))
    return column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))


def is_sqlite(session: Session) -> bool:
    return session.get_bind().dialect.name == "sqlite"


def reset_sequences(session: Session, tables: Sequence[FromClause]) -> None:
    """After rows were inserted with explicit ids, PostgreSQL's id sequences (of the tables given) must move past
    them, which explicit ids never do (SQLite's INTEGER PRIMARY KEY takes max(id) + 1 by itself)."""
    for table in () if is_sqlite(session) else tables:
        highest = select(func.max(table.c.id)).scalar_subquery()
        sequence = func.pg_get_serial_sequence(cast(Table, table).name, "id")
        session.execute(select(func.setval(sequence, func.coalesce(highest, 1), highest.is_not(None))))


def insert_rows(
    session: Session,
    clause: FromClause,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    mover: Mover | None = None,
) -> None:
    """Insert `rows` (tuples of Python values in `columns` order), in their order. With a `mover`, the
    `INSERT … SELECT` from the stage runs on its thread: the caller must not use the session before
    `mover.wait()`."""
    if not rows:
        return
    table = cast(Table, clause)
    data = list(zip(*rows, strict=True))
    varying = [name for name, values in zip(columns, data, strict=True) if values.count(values[0]) != len(values)]
    constants = {name: values[0] for name, values in zip(columns, data, strict=True) if name not in varying}
    stage = stage_rows(session, table, range(len(rows)), {name: data[columns.index(name)] for name in varying})
    # a constant None is SQL NULL, as a None in a row is (a typed literal of JSON would store JSON null)
    picks = [null() if value is None else literal(value, type_=table.c[name].type) for name, value in constants.items()]
    move = insert(table).from_select(
        [*varying, *constants],
        select(*(stage.c[name] for name in varying), *picks).select_from(stage).order_by(stage.c.position),
    )
    if mover is None:
        session.execute(move)
        session.execute(delete(stage))
        if "id" in columns:  # a restore's kept ids: the ids the database gives next must come after them
            reset_sequences(session, [table])
    else:
        mover.start(lambda: (session.execute(move), session.execute(delete(stage))))


def stage_rows(
    session: Session, clause: FromClause, positions: Sequence[int], data: Mapping[str, Sequence[Any]]
) -> Table:
    """Stage rows in the temporary table of `clause` for `data`'s columns (see `_stage`): row i is
    `positions[i]` and `data[name][i]` for each column. The caller reads the stage, then empties it."""
    table = cast(Table, clause)
    stage = _stage(table, list(data))
    session.execute(CreateTable(stage, if_not_exists=True))
    connection = session.connection()
    dialect = connection.dialect
    # The staged values go to the driver's executemany as tuples, each column converted by its type's own
    # bind processor in one pass (so they are stored exactly as through `insert(stage)`): a Core insert
    # would build, and process, a parameter dict per row — a second of CPU on a 100,000-row import.
    staged: list[Sequence[Any]] = [positions]
    try:
        for name, values in data.items():
            process = table.c[name].type._cached_bind_processor(dialect)
            staged.append(values if process is None else list(map(process, values)))
    except (TypeError, ValueError) as exc:  # as SQLAlchemy reports a value its type refuses
        raise StatementError(str(exc), str(stage.name), None, exc) from exc
    marker = "?" if dialect.paramstyle == "qmark" else "%s"
    names = ", ".join(dialect.identifier_preparer.quote(name) for name in ("position", *data))
    sql = f"INSERT INTO {stage.name} ({names}) VALUES ({', '.join([marker] * len(staged))})"
    connection.exec_driver_sql(sql, list(zip(*staged, strict=True)))
    return stage


# SQLite's page cache during a bulk import (`tune_for_backfill`), in KiB; its default is 2 MB
BACKFILL_CACHE_KIB = 16_384


def tune_for_backfill(session: Session, clause: FromClause, unread: Sequence[str]) -> Callable[[], None]:
    """Set SQLite up for a long import into `clause`, in the session's transaction; returns the step that undoes it
    after the last batch (nothing to do on PostgreSQL).

    The (person, time) indexes take rows in random places for a history spread over years; a 16 MB page cache keeps
    them in memory for the import: about 2 s less system CPU on bench/import.py's 100k rows. Into an empty table (a
    first backfill, a restore), the `unread` indexes (those no statement of the import reads) are dropped and built
    once at the end by one sort, rather than taking an entry a row in random places: about 2 s less CPU there
    (docs/benchmarks.md). In the import's own transaction, so an import refused, stopped or run with --dry-run rolls
    the drop back with the rest; and race-free: the import began with BEGIN IMMEDIATE, so no other writer adds a row
    between the look and the drop."""
    if not is_sqlite(session):
        return lambda: None
    table = cast(Table, clause)
    cache_pages = int(session.scalar(text("PRAGMA cache_size")) or 0)
    session.execute(text(f"PRAGMA cache_size = -{BACKFILL_CACHE_KIB}"))
    dropped: list[str] = []
    if session.scalar(select(table.c.id).limit(1)) is None:
        listed = text("SELECT sql FROM sqlite_master WHERE type = 'index' AND name = :name")
        for name in unread:
            if (sql := session.scalar(listed, {"name": name})) is not None:
                session.execute(text(f"DROP INDEX {name}"))
                dropped.append(sql)

    def untune() -> None:
        for sql in dropped:
            session.execute(text(sql))
        session.execute(text(f"PRAGMA cache_size = {cache_pages}"))

    return untune


class Mover:
    """One database step at a time on a second thread. Both drivers release the GIL while a statement
    runs, so a batch's `INSERT … SELECT` (the largest single cost of a bookings import) proceeds while
    the caller reads and validates the next batch, which needs no database. The caller hands the session
    over: it is not touched again before `wait()`, which re-raises what the step raised."""

    def __init__(self) -> None:
        self.running: Future[Any] | None = None

    def start(self, step: Callable[[], Any]) -> None:
        self.wait()
        self.running = _worker().submit(step)

    def wait(self) -> None:
        running, self.running = self.running, None
        if running is not None:
            running.result()

    def __enter__(self) -> Mover:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        # On the way out of an error (or Ctrl-C) the step still ends before the caller rolls back, and
        # its own outcome no longer matters: the error in flight is the one reported.
        if kind is None:
            self.wait()
        elif self.running is not None:
            futures.wait([self.running])
            self.running = None


@functools.cache
def _worker() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(1, thread_name_prefix="bapp-mover")


_STAGES: dict[tuple[str, tuple[str, ...]], Table] = {}


def _stage(table: Table, names: Sequence[str]) -> Table:
    """The temporary table a batch of `table` with these varying columns is staged in: the same column
    types (so SQLAlchemy converts values as for the real table), no constraints, a position for order."""
    key = (table.name, tuple(names))
    stage = _STAGES.get(key)
    if stage is None:
        digest = zlib.crc32(",".join(names).encode())
        stage = _STAGES[key] = Table(
            f"bapp_stage_{table.name}_{digest:08x}",
            MetaData(),
            Column("position", Integer, primary_key=True),  # on SQLite the rowid: read in order, never sorted
            *(Column(name, table.c[name].type) for name in names),
            prefixes=["TEMPORARY"],
        )
    return stage


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
        for start in range(0, len(params), CHUNK):
            session.execute(statement.execution_options(synchronize_session=False), params[start : start + CHUNK])

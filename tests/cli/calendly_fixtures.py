"""Shared pieces of the Calendly sync tests: the fake server wired into `bapp`, and a database snapshot.

The snapshot reads every table in primary-key order on either backend, so "nothing changed" is checked on
the data itself rather than on a counter the code under test could forget to update.
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, MetaData, select

from bapp_cli.db.engine import make_engine
from tests.conftest import Bapp
from tests.fakes.calendly_server import DEFAULT_TOKEN, DEFAULT_USER_URI, FakeCalendly, make_event_type

# Short waits so retry paths finish in milliseconds; the production defaults are exercised by the client's
# own tests. The read timeout stays well above a loaded CI machine's response time.
FAST_RETRIES = {
    "BAPP_CALENDLY_BACKOFF": "0.01",
    "BAPP_CALENDLY_MAX_WAIT": "0.05",
    "BAPP_CALENDLY_TIMEOUT": "2",
}
USER = DEFAULT_USER_URI
TOKEN = DEFAULT_TOKEN


def catalogue(count: int = 12, **overrides: Any) -> list[dict[str, Any]]:
    return [make_event_type(i, **overrides) for i in range(count)]


@pytest.fixture(scope="module")
def fake_server() -> Iterator[FakeCalendly]:
    with FakeCalendly() as fake:
        yield fake


@pytest.fixture
def fake(fake_server: FakeCalendly) -> FakeCalendly:
    """The module's fake Calendly under a path of this test's own (FakeCalendly.begin_test, so that a request of an
    earlier test that reaches it late is a stray, answered 404), reset to a 12-type catalogue with no faults and no
    recorded requests."""
    return reset_for_test(fake_server)


def reset_for_test(fake_server: FakeCalendly) -> FakeCalendly:
    """What the `fake` fixture does, for a module's own fixture that resets the fake further."""
    if fake_server.strays:  # said, not failed: the test they reached is not the one that sent them
        warnings.warn(f"requests of an earlier test reached the fake Calendly: {fake_server.strays}", stacklevel=1)
        fake_server.strays.clear()
    fake_server.begin_test()
    fake_server.clear_faults()
    fake_server.clear_requests()
    fake_server.set_event_types(catalogue())
    return fake_server


@pytest.fixture
def cbapp(bapp: Bapp, fake: FakeCalendly) -> Bapp:
    """`bapp` pointed at the fake Calendly with a valid token."""
    bapp.env.update(
        {"CALENDLY_API_KEY": TOKEN, "CALENDLY_API_BASE_URL": fake.base_url, **FAST_RETRIES},
    )
    return bapp


def _plain(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


# What reflection reads of a schema for a snapshot: its tables, their columns and types, their primary keys.
_SCHEMA_QUERIES = {
    "sqlite": "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name",
    "postgresql": (
        "SELECT c.relname, a.attnum, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, "
        "(SELECT i.indkey::text FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary) "
        "FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid "
        "WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p') "
        "AND a.attnum > 0 AND NOT a.attisdropped ORDER BY 1, 2"
    ),
}
# Reflecting the whole schema was most of a snapshot's cost (~0.07 CPU s, 0.2-0.3 s wall on PostgreSQL, twice
# in most tests that take one), and nearly every database of a run has the one schema at head. It is reflected
# once per schema seen: one query reads the schema, and any difference in it (a migration test's older revision,
# a table added by hand) is another schema, reflected afresh.
_reflected: dict[tuple[Any, ...], MetaData] = {}


def _reflect(engine: Engine) -> MetaData:
    with engine.connect() as connection:
        schema = (engine.dialect.name, *map(tuple, connection.exec_driver_sql(_SCHEMA_QUERIES[engine.dialect.name])))
    if schema not in _reflected:
        metadata = MetaData()
        metadata.reflect(engine)
        _reflected[schema] = metadata
    return _reflected[schema]


def snapshot(database_url: str, *, skip: Sequence[str] = ()) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table (but `skip`), in primary-key order, as plain comparable values."""
    engine: Engine = make_engine(database_url)
    try:
        metadata = _reflect(engine)
        result: dict[str, list[tuple[Any, ...]]] = {}
        with engine.connect() as connection:
            for name, table in sorted(metadata.tables.items()):
                if name in skip:
                    continue
                order = list(table.primary_key.columns) or list(table.columns)
                rows = connection.execute(select(table).order_by(*order)).all()
                result[name] = [tuple(_plain(value) for value in row) for row in rows]
        return result
    finally:
        engine.dispose()


def sync_runs(database_url: str) -> list[dict[str, Any]]:
    engine = make_engine(database_url)
    try:
        table = _reflect(engine).tables["sync_runs"]
        with engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(select(table).order_by(table.c.id))]
    finally:
        engine.dispose()


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("Error:")]

"""Engines and the unit of work.

One unit of work per command: it is committed at the end, rolled back on error or `--dry-run`.
SQLite runs with foreign keys on, WAL, a busy timeout, and transactions that bapp begins itself:
write transactions use BEGIN IMMEDIATE so that two writers serialise at the start of the transaction
instead of one failing at commit — this is what makes check-then-insert rules (booking overlap) safe
across processes on SQLite.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session

from bapp_cli.db.dbapi import (
    BUSY_TIMEOUT_MS,
    check_sqlite_file,
    check_sqlite_query,
    database_failure,
    libpq_parameters,
    patiently,
    session_options,
    settled,
    sqlite_file,
    wait_sql,
)
from bapp_cli.db.migration import ensure_at_head
from bapp_cli.db.types import local_date
from bapp_cli.errors import ConfigError, DatabaseNotReady

__all__ = ["database_failure", "make_engine", "unit_of_work"]

WRITE_OPTION = "bapp_write"
# a unit of work's own wait for another writer at its BEGIN, in ms, instead of the engine's busy timeout
BUSY_OPTION = "bapp_busy_timeout_ms"

# psycopg logs what it ignores while unwinding a pipeline a Ctrl-C interrupted ("error ignored terminating
# <psycopg.Pipeline … host=… user=…>"); with no handler of bapp's, Python's last-resort handler printed that
# on stderr after "Interrupted; nothing was changed." `--verbose --verbose` (a root handler) still shows it.
# SQLAlchemy's pool logs the rollback that then fails as it takes the connection back ("Exception during reset or
# similar"), with a traceback holding the interrupted statement's rows.
for _chatty in ("psycopg", "sqlalchemy.pool"):
    logging.getLogger(_chatty).addHandler(logging.NullHandler())


def make_engine(
    url: str,
    *,
    create_sqlite_file: bool = False,
    busy_timeout_ms: int = BUSY_TIMEOUT_MS,
    connect_timeout: int = 10,
    workers: int | None = None,
) -> Engine:
    """An engine for `url`. A missing SQLite file is created only when asked (by `db upgrade`).

    ``connect_timeout`` is the whole seconds to wait for PostgreSQL to answer (the settings' BAPP_CONNECT_TIMEOUT).

    ``busy_timeout_ms`` bounds how long a statement waits for another writer's lock (SQLite's busy timeout,
    PostgreSQL's lock_timeout): a command's is the busy_timeout setting; the webhook receiver must answer within
    Calendly's 15 s, so it would rather answer 503 (retry later) past its --busy-timeout than wait the CLI's 30 s.

    ``workers`` makes it the engine of a long-lived service of that many threads (the webhook receiver): its
    pool holds a connection for each, so none waits for one (SQLAlchemy's 5 + 10, then 30 s) past the busy
    timeout; and a pooled PostgreSQL connection is tested before it is reused, and replaced if the server has
    closed it (a restart, a failover, an idle-session timeout). A command's engine lives for seconds, and would
    pay a round trip per transaction for nothing.
    """
    try:
        parsed = make_url(url)
        parsed.port  # noqa: B018 - a malformed port or host (`postgresql://[::1`) fails here, not deep in the driver
    except (ArgumentError, ValueError):
        raise ConfigError(
            "the database URL is not valid", hint="check --database-url / BAPP_DATABASE_URL", code="database_url"
        ) from None
    path = sqlite_file(url)
    if parsed.get_backend_name() == "sqlite":
        check_sqlite_query(url)  # before SQLAlchemy reads it, so that its words are the plain reads' too
    if path is not None:
        check_sqlite_file(url, path, creating=create_sqlite_file)
        if create_sqlite_file:
            # SQLite makes the file where a link at `path` points: that folder, not the link's own
            folder = Path(os.path.realpath(path)).parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                # exist_ok lets a folder alone be there: mkdir's "File exists" said a file of that name is
                said = "it is a file" if isinstance(exc, FileExistsError) else exc.strerror
                raise DatabaseNotReady(
                    f"cannot create the database folder {folder}: {said}",
                    hint="choose a --database-url in a folder this user can write",
                    code="database_unwritable",
                ) from None
    kwargs: dict[str, Any] = {} if workers is None else {"pool_size": workers}
    try:
        if parsed.get_backend_name() == "postgresql":
            parameters = libpq_parameters(url)  # the URL the plain reads refuse, refused here too
            kwargs["pool_pre_ping"] = workers is not None
            # libpq's reading of the URL, as the plain reads connect (dbapi.connect_postgresql), over SQLAlchemy's: a
            # parameter given twice was a tuple to the driver (`?sslmode=require&sslmode=disable`: exit 4, where the
            # plain reads took the last), and an empty `?host=`/`?port=` was dropped (another server than theirs).
            # The URL's own connect_timeout is honoured over bapp's (README); JIT off (the compile step alone was seen
            # adding ~0.3 s to the progress table) and the lock timeout go around the URL's own options
            options = session_options(parameters, busy_timeout_ms)
            kwargs["connect_args"] = {"connect_timeout": connect_timeout, **parameters, **options}
        engine = create_engine(url, **kwargs)
    except ImportError as exc:  # e.g. a PostgreSQL URL on an installation without the driver
        raise ConfigError(
            f"the database driver {exc.name or ''} is not installed".replace("  ", " "),
            hint="install bapp with its PostgreSQL extra: pip install 'bapp[postgres]'",
            code="database_driver",
        ) from None
    except ArgumentError:  # a backend or plugin SQLAlchemy cannot load: the settings refuse such URLs first
        raise ConfigError(
            "the database URL is not valid", hint="check --database-url / BAPP_DATABASE_URL", code="database_url"
        ) from None
    if engine.dialect.name == "sqlite":
        _configure_sqlite(engine, busy_timeout_ms)
    return engine


def _configure_sqlite(engine: Engine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the driver so BEGIN is ours (see module docstring).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        # the first to read the file: where another program holding it (sqlite3's exclusive locking mode) is waited for
        patiently("PRAGMA journal_mode = WAL", dbapi_connection, busy_timeout_ms)
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()
        dbapi_connection.create_function("bapp_local_date", 2, local_date, deterministic=True)

    @event.listens_for(engine, "begin")
    def on_begin(connection: Any) -> None:
        if connection.get_execution_options().get(WRITE_OPTION, False):
            driver = connection.connection.driver_connection
            waiting = connection.get_execution_options().get(BUSY_OPTION, busy_timeout_ms)
            patiently("BEGIN IMMEDIATE", driver, waiting, execute=connection.exec_driver_sql)
        else:
            connection.exec_driver_sql("BEGIN")


def command_zone(session: Session) -> dt.tzinfo:
    """The zone of the command whose unit of work `session` is (--timezone); UTC for a session made elsewhere."""
    zone: dt.tzinfo = session.info.get("zone", dt.UTC)
    return zone


@contextlib.contextmanager
def unit_of_work(
    engine: Engine,
    *,
    write: bool = True,
    dry_run: bool = False,
    actor: str = "unknown",
    command: str = "",
    at_head: bool = True,
    zone: str = "UTC",
    busy_timeout_ms: int | None = None,
) -> Iterator[Session]:
    """The one transaction of a command: commit on success, roll back on error or dry run; at the head revision
    (else exit 5), as `dbapi.writing` is, unless `at_head` is False (the receiver, which parks a delivery then).
    The session keeps the command's actor, path and `zone` (--timezone, an IANA name: `command_zone` reads it).
    `busy_timeout_ms`: how long SQLite's BEGIN (PostgreSQL: any statement) waits for another writer's lock, if not
    the engine's busy timeout."""
    bind = engine.execution_options(**{WRITE_OPTION: write})
    if busy_timeout_ms is not None:
        bind = bind.execution_options(**{BUSY_OPTION: busy_timeout_ms})
    if engine.dialect.name == "postgresql":
        # a read: one snapshot, as the plain reads' (db.dbapi.connect). A write: the server's default read-only
        # setting, set again, for a pooled connection given back by a read is reset to READ WRITE, which made a
        # read-only database writable; and READ COMMITTED, whatever the database's or role's default isolation, as
        # a write that waited for another's lock must see what that one committed (services.booking._lock_request)
        writer = {"postgresql_readonly": None, "isolation_level": "READ COMMITTED"}
        snapshot = {"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}
        bind = bind.execution_options(**(writer if write else snapshot))
    session = Session(bind=bind, expire_on_commit=False, autoflush=True)
    session.info.update(actor=actor, command=command, zone=ZoneInfo(zone))
    with settled(session, keep=write and not dry_run):
        session.begin()
        if busy_timeout_ms is not None and engine.dialect.name == "postgresql":
            session.connection().exec_driver_sql(wait_sql(busy_timeout_ms))
        if at_head:
            # asked as the transaction's first statement, not on a connection of its own before it: a `db upgrade`
            # or `downgrade` that commits between the two had the write made to a schema this bapp does not know (a
            # migration locks alembic_version, so it waits for this transaction, or this read for its end)
            ensure_at_head(engine, session)
        yield session

"""Engines and the unit of work.

One unit of work per command: it is committed at the end, rolled back on error or `--dry-run`.
SQLite runs with foreign keys on, WAL, a busy timeout, and transactions that bapp begins itself:
write transactions use BEGIN IMMEDIATE so that two writers serialise at the start of the transaction
instead of one failing at commit — this is what makes check-then-insert rules (booking overlap) safe
across processes on SQLite.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError
from sqlalchemy.orm import Session

from bapp_cli.errors import ConfigError, DatabaseNotReady

SQLITE_BUSY_TIMEOUT_MS = 30_000
WRITE_OPTION = "bapp_write"


def sqlite_path(url: str) -> Path | None:
    """The file behind a SQLite URL, or None for other backends and in-memory databases."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return None
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def make_engine(
    url: str, *, create_sqlite_file: bool = False, busy_timeout_ms: int | None = None, connect_timeout: int = 10
) -> Engine:
    """An engine for `url`. A missing SQLite file is created only when asked (by `db upgrade`).

    ``connect_timeout`` is the whole seconds to wait for PostgreSQL to answer (the settings' BAPP_CONNECT_TIMEOUT).

    ``busy_timeout_ms`` bounds how long a statement waits for another writer's lock (SQLite's busy
    timeout, PostgreSQL's lock_timeout) — the webhook receiver must answer within Calendly's 15 s, so it
    would rather answer 503 (retry later) than wait the CLI's 30 s.
    """
    try:
        parsed = make_url(url)
        parsed.port  # noqa: B018 - a malformed port or host (`postgresql://[::1`) fails here, not deep in the driver
    except (ArgumentError, ValueError):
        raise ConfigError(
            "the database URL is not valid", hint="check --database-url / BAPP_DATABASE_URL", code="database_url"
        ) from None
    path = sqlite_path(url)
    if path is not None:
        if create_sqlite_file:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise DatabaseNotReady(
                    f"cannot create the database folder {path.parent}: {exc.strerror}",
                    hint="choose a --database-url in a folder this user can write",
                    code="database_unwritable",
                ) from None
        elif not path.exists():
            raise DatabaseNotReady(f"database file {path} does not exist", hint="run `bapp db upgrade`")
    kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() == "postgresql":
        kwargs["pool_pre_ping"] = False
        kwargs["connect_args"] = {
            "connect_timeout": connect_timeout,
            # JIT compilation pays off for long analytical queries; a CLI's queries are short, and the
            # compile step alone was seen adding ~0.3 s to the progress table.
            "options": "-c jit=off"
            + (f" -c lock_timeout={int(busy_timeout_ms)}" if busy_timeout_ms is not None else ""),
        }
    try:
        engine = create_engine(url, **kwargs)
    except ImportError as exc:  # e.g. a PostgreSQL URL on an installation without the driver
        raise ConfigError(
            f"the database driver {exc.name or ''} is not installed".replace("  ", " "),
            hint="install bapp with its PostgreSQL extra: pip install 'bapp[postgres]'",
            code="database_driver",
        ) from None
    if engine.dialect.name == "sqlite":
        _configure_sqlite(engine, SQLITE_BUSY_TIMEOUT_MS if busy_timeout_ms is None else int(busy_timeout_ms))
    return engine


def _configure_sqlite(engine: Engine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the driver so BEGIN is ours (see module docstring).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection: Any) -> None:
        write = connection.get_execution_options().get(WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


@contextlib.contextmanager
def unit_of_work(
    engine: Engine,
    *,
    write: bool = True,
    dry_run: bool = False,
    actor: str = "unknown",
    command: str = "",
) -> Iterator[Session]:
    """The one transaction of a command: commit on success, roll back on error or dry run."""
    bind = engine.execution_options(**{WRITE_OPTION: write})
    session = Session(bind=bind, expire_on_commit=False, autoflush=True)
    session.info["actor"] = actor
    session.info["command"] = command
    try:
        session.begin()
        yield session
        if dry_run or not write:
            session.rollback()
        else:
            session.commit()
    except Exception as exc:
        session.rollback()
        failure = database_failure(exc)
        if failure is not None:
            raise failure from None
        raise
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


# SQLSTATE of a write in a read-only PostgreSQL transaction (default_transaction_read_only, a standby).
_PG_READ_ONLY = "25006"


def database_failure(exc: BaseException) -> DatabaseNotReady | None:
    """The "database not ready" (exit 5) that a low-level failure amounts to, or None if it is not one.

    The database itself failing — unreachable, read-only (an immutable or read-only SQLite file, a read-only
    PostgreSQL), not a database at all (a garbage file) — is a state the user can fix, not a bug in bapp.
    Constraint violations and programming errors stay what they are. The raw sqlite3 errors come from the
    bulk writer, which drives the driver connection directly.
    """
    import sqlite3

    original: BaseException = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    if isinstance(original, sqlite3.Error):
        if not isinstance(original, sqlite3.OperationalError) and type(original) is not sqlite3.DatabaseError:
            return None
    elif getattr(original, "sqlstate", None) == _PG_READ_ONLY:
        pass
    elif not isinstance(exc, OperationalError):
        return None
    text = str(original).strip().splitlines()[0] if str(original).strip() else type(original).__name__
    lowered = text.lower()
    if "readonly" in lowered or "read-only" in lowered or "read only" in lowered:
        return DatabaseNotReady(
            f"the database cannot be written: {text}",
            hint="check that this user may write the database (file permissions, an immutable attribute, "
            "a read-only mount or a read-only PostgreSQL)",
            code="database_read_only",
        )
    if "not a database" in lowered or "malformed" in lowered:
        return DatabaseNotReady(
            f"the database file is not a SQLite database bapp can use: {text}",
            hint="check --database-url / BAPP_DATABASE_URL; `bapp db upgrade` creates a new file at a new path",
            code="database_not_a_database",
        )
    return DatabaseNotReady(f"database error: {text}", code="database_error")

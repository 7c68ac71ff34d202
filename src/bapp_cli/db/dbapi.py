"""Plain DB-API connections for the read commands that must start fast: no SQLAlchemy, no Alembic.

`bookings`, `clients`, `pathways` and `sessions` list and show, `builders list`, `skills list`, `badges list`,
`progress show` and `export bookings` read through this module. Importing SQLAlchemy alone costs about twice a
whole `sqlite-utils rows` run, so these reads open the driver themselves (stdlib sqlite3, or psycopg for
PostgreSQL), check that the schema is at head with one query, and run SQL text with `:name` parameters
(rewritten to psycopg's `%(name)s`). The database hands over text: `instant` and `money` are the per-backend SQL
for bapp's instant and money forms, so a listing writes the cursor's rows as they come. The same SQL serves the
ORM commands on their session's own connection (`Database.of_session`): the record a write prints, the exports.

Failures read exactly as the SQLAlchemy path's: the same DatabaseNotReady (exit 5) and ConfigError (exit 4).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import re
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast
from urllib.parse import unquote  # pathlib's import: no start-up cost

from bapp_cli.db.batches import BATCH_SIZE
from bapp_cli.db.domains import MAX_INT32
from bapp_cli.errors import (
    BappError,
    Busy,
    ConfigError,
    Conflict,
    DatabaseNotReady,
    UnreadableValue,
    committed,
    quoted,
)

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

# sqlite3 looks every None it binds up in its adapter table; with no entry, Python 3.11 formats and drops an
# AttributeError for `PrepareProtocol.__adapt__`, ~1,600 instructions a NULL (by callgrind; a 10,000-type first sync
# binds ~27,000, 0.8-0.9 % of its instructions). An empty dict's `get` hands None back as None in C (no Python frame,
# ~190 instructions fewer than a lambda), still bound as NULL. The table is the process's, and db/engine.py imports
# this module: the ORM's NULLs on SQLite go this way too.
_NOTHING: dict[None, None] = {}
sqlite3.register_adapter(type(None), _NOTHING.get)

# How long a statement waits for another writer's lock before the command is busy (exit 75): SQLite's busy
# timeout, PostgreSQL's lock_timeout (without one, a psql session's LOCK TABLE made a command wait for ever). The
# default of the busy_timeout setting (config.py), which commands pass in as `busy_timeout_ms`.
BUSY_TIMEOUT_MS = 30_000
# SQLite waits for another process's lock in its busy handler, in C, where Python runs no signal handler: a Ctrl-C
# (or a SIGTERM) came only when the whole busy timeout had run out, 30 s later. A write transaction's BEGIN (and the
# engine's first statement) waits in turns this long instead, asked again from Python until the busy timeout has
# passed, so a stop is seen within a turn.
_BUSY_TURN_MS = 100
# The head of the migration chain, kept here so the per-command "at head?" check parses no scripts.
# tests/db/test_migrations.py proves it equals Alembic's own head.
HEAD_REVISION = "0020_audit_entity_index"
# SQLSTATE of a write in a read-only PostgreSQL transaction (default_transaction_read_only, a standby).
_PG_READ_ONLY = "25006"
# SQLSTATE of the server ending a session left idle in a transaction (idle_in_transaction_session_timeout, which a
# URL's ?options= or a role may set): the connection is lost, as when the server goes away, not a bug
_PG_IDLE_IN_TRANSACTION_TIMEOUT = "25P03"
# SQLSTATE of a lock not granted within lock_timeout (BUSY_TIMEOUT_MS, the webhook receiver's --busy-timeout).
_PG_LOCK_NOT_AVAILABLE = "55P03"
# SQLSTATE of the transaction the server ended to break a deadlock (two writers each waiting for a lock the other
# holds): the other went on, so, as after a lock wait that ran out, the same command works when run again
_PG_DEADLOCK_DETECTED = "40P01"
# SQLSTATE of a write to a row another session changed after this transaction's snapshot, under a
# default_transaction_isolation of REPEATABLE READ or SERIALIZABLE (a database's or role's): as after a deadlock
_PG_SERIALIZATION_FAILURE = "40001"
# SQLSTATE of a unique index refusing an insert, and what the message says another session did meanwhile; and of a
# foreign key refusing a row whose referent another session removed (a hold Calendly turned down takes its account)
_PG_MEANWHILE = {"23505": "wrote the same record", "23503": "removed a record this one refers to"}
# SQLSTATE of a statement on a table the role was not granted (a reporting role, a grant forgotten)
_PG_INSUFFICIENT_PRIVILEGE = "42501"
# SQLSTATE of text the database's encoding has no character for (a LATIN1 database, and the seeded pathways' emoji)
_PG_UNTRANSLATABLE = "22P05"
# SQLSTATE of PL/pgSQL's RAISE EXCEPTION (its default), and SQLite's error of a trigger's RAISE(ABORT|FAIL|ROLLBACK):
# bapp makes no triggers or functions, so a raise is from one of the database's own (another program's, an admin's)
_PG_RAISED = "P0001"
_SQLITE_TRIGGER_RAISED = "SQLITE_CONSTRAINT_TRIGGER"
# SQLSTATEs of a unique index and of a check refusing a row, and SQLite's errors of the same (naming the key's columns,
# or the check)
_PG_KEPT_OUT = frozenset(("23505", "23514"))
_SQLITE_KEPT_OUT = frozenset(("SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY", "SQLITE_CONSTRAINT_CHECK"))
# SQLSTATE of a table that is not there (alembic_version before `db upgrade`)
_PG_UNDEFINED_TABLE = "42P01"
# the words SQLAlchemy takes for a boolean (sqlalchemy.util.asbool)
_TRUTH = {word: True for word in ("true", "yes", "on", "y", "t", "1")} | {
    word: False for word in ("false", "no", "off", "n", "f", "0")
}
# the query parameters SQLAlchemy's pysqlite dialect takes, each with the reading it gives its value
_PYSQLITE_PARAMETERS: dict[str, Callable[[str], Any]] = {
    "uri": lambda value: _TRUTH[value.strip().lower()],
    "timeout": float,
    "isolation_level": str,
    "detect_types": lambda value: _c_int(value),
    "check_same_thread": lambda value: _TRUTH[value.strip().lower()],
    "cached_statements": lambda value: _c_int(value),
}
# a streamed read's server-side cursor is named, and each name is one open cursor's of its connection
_CURSOR_NUMBERS = itertools.count()
_NAMED_PARAMETER = re.compile(r"(?<!:):([a-z_][a-z0-9_]*)")
# libpq's whole-number options besides the port, which it reads only as it connects (fe-connect.c's parse_int_param)
_LIBPQ_INTEGERS = frozenset(
    ("connect_timeout", "keepalives", "keepalives_idle", "keepalives_interval", "keepalives_count", "tcp_user_timeout")
)
# libpq refusing an option's value (`?sslmode=bogus`, `?keepalives=abc`, `?hostaddr=x`, a port past 65535) before it
# asks any server: its text quotes the option and the value, not the URL
_BAD_OPTION_VALUE = re.compile(r"connection is bad: .*(invalid (\w+ value|port number)|could not parse network addr)")
# the server refusing a setting of the URL's `?options=` as the session starts (an unknown name, a bad value, one
# out of range, a server-start-only setting, `-c name` with no value): the URL's fault, as a value libpq refuses is.
# Each of those names the parameter; no refusal of the login or the server's state (exit 5) does
_BAD_SERVER_OPTION = re.compile(r"FATAL: +(.*(\bparameter\b|requires a value)|invalid command-line argument)")


def sqlite_file(url: str) -> Path | None:
    """The file behind a `sqlite:///PATH` URL, or None for other backends and in-memory databases."""
    scheme, _, rest = url.partition("://")
    if scheme.lower() != "sqlite" or not rest.startswith("/"):
        return None
    # its %-escapes undone, as SQLAlchemy's engine reads it: `p%25q.db` was the file p%q.db to the engine (`db upgrade`
    # made it) and p%25q.db to the plain reads and the file checks ("database file p%25q.db does not exist", exit 5)
    path = unquote(rest[1:].partition("?")[0])
    return Path(path) if path and path != ":memory:" else None


def check_sqlite_file(url: str, path: Path, *, creating: bool = False) -> None:
    """Refuse (exit 5) the SQLite database `path` of `url` when it is a directory or the URL's path ends as one's name
    (`sqlite:///data/`, which `db upgrade` made a file called data), or a file not there unless `db upgrade` is
    `creating` it. SQLite's own word for a directory was "unable to open database file", naming neither."""
    import stat

    from bapp_cli.config import names_a_directory

    try:
        mode: int | None = path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        mode = None
    except OSError as exc:  # a name too long for the file system, a loop of links: was exit 1 (R9)
        raise DatabaseNotReady(
            f"cannot open the database file {path}: {exc.strerror}",
            hint="check --database-url / BAPP_DATABASE_URL",
            code="database_not_a_database",
        ) from None
    if (mode is not None and stat.S_ISDIR(mode)) or names_a_directory(url.partition("?")[0]):
        raise DatabaseNotReady(
            f"the database URL names a directory ({path}), not a file",
            hint="give --database-url / BAPP_DATABASE_URL a file's path: sqlite:///FOLDER/bapp.db",
            code="database_not_a_database",
        )
    if not creating and mode is None:
        raise DatabaseNotReady(f"database file {path} does not exist", hint="run `bapp db upgrade`")
    if mode is not None and not stat.S_ISREG(mode):  # a FIFO, socket or device: SQLite said only "disk I/O error"
        raise not_a_database("it is not a regular file")
    if mode is not None:  # an empty file is a new database; one unreadable, SQLite says why
        # refused before anything is made beside it: SQLite refused a garbage file only once a migration or sync had
        # left its lock file there
        with contextlib.suppress(OSError), path.open("rb") as file:
            if (head := file.read(16)) and head != b"SQLite format 3\x00":
                raise not_a_database("file is not a database")


def not_a_database(reason: str) -> DatabaseNotReady:
    return DatabaseNotReady(
        f"the database file is not a SQLite database bapp can use: {reason}",
        hint="check --database-url / BAPP_DATABASE_URL; `bapp db upgrade` creates a new file at a new path",
        code="database_not_a_database",
    )


def check_sqlite_query(url: str) -> None:
    """Refuse (exit 4) a SQLite URL's query parameter that SQLAlchemy's pysqlite dialect does not take, or whose value
    it cannot read (`?timeout=abc`): one reading of the URL for the engine (db.engine.make_engine) and the plain reads,
    which took no notice of the values. SQLite's own URI parameters (`?uri=true&mode=ro`) are refused too: the engine
    handed them to SQLite as part of the file's name, and made a new, empty file of that name."""
    from urllib.parse import parse_qsl

    given = parse_qsl(url.partition("?")[2])  # as SQLAlchemy parses it: one with no value is dropped
    names = [name for name, _ in given]
    # one given twice was a tuple to SQLAlchemy (the engine's TypeError, exit 4), and ignored by the plain reads
    twice = list(dict.fromkeys(name for name in names if names.count(name) > 1))
    refused = [f"{name} given twice" for name in twice]
    for name, value in given:
        if name in twice:
            continue
        try:
            taken = _PYSQLITE_PARAMETERS[name](value)
        except (KeyError, ValueError):  # a name it does not take, or a value it cannot read (a boolean's: KeyError)
            refused.append(f"{name}={value}" if name in _PYSQLITE_PARAMETERS else name)
            continue
        # With uri=true SQLite reads a path starting `file:` as its URI (`file:x.db` is x.db), where the plain reads
        # and bapp's checks of the file read a path: `db upgrade` made x.db, then every command said "database file
        # file:x.db does not exist" (and with both files there, the two doors read different databases)
        if name == "uri" and taken and str(sqlite_file(url)).startswith("file:"):  # `file%3Ax.db` too
            refused.append(f"uri={value} with a file: path")
    if refused:
        raise ConfigError(
            f"the database URL is not valid: a query parameter the driver cannot take ({', '.join(refused)})",
            hint="check the `?…` part of --database-url / BAPP_DATABASE_URL",
            code="database_url",
        )


def _c_int(text: str) -> int:
    """`text` as SQLAlchemy reads a whole number (int), and the driver takes it: a C int (else OverflowError as the
    engine first connects, exit 1), or ValueError."""
    number = int(text)
    if not -MAX_INT32 - 1 <= number <= MAX_INT32:
        raise ValueError(f"{text} is past a C int")
    return number


def patiently(
    statement: str, connection: sqlite3.Connection, busy_timeout_ms: int, execute: Callable[[str], Any] | None = None
) -> None:
    """Run `statement`, one that takes a lock outside any transaction (BEGIN IMMEDIATE, the switch to WAL), on the
    SQLite `connection` (through `execute` if given: the engine's, so that its events see it), waiting up to
    `busy_timeout_ms` for another process's lock in short turns (see _BUSY_TURN_MS). The busy timeout is the
    connection's again afterwards, for any other wait."""
    deadline = time.monotonic() + busy_timeout_ms / 1000
    connection.execute(f"PRAGMA busy_timeout = {min(busy_timeout_ms, _BUSY_TURN_MS)}")
    try:
        while True:
            try:
                (execute or connection.execute)(statement)
                return
            except Exception as exc:
                busy = getattr(getattr(exc, "orig", None) or exc, "sqlite_errorcode", None) == sqlite3.SQLITE_BUSY
                if not busy or time.monotonic() >= deadline:
                    raise
    finally:
        # closed already when a stop came in `execute`, which SQLAlchemy answers by closing the connection
        with contextlib.suppress(sqlite3.ProgrammingError):
            connection.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")


def instant_sql(dialect: str, column: str) -> str:
    """SQL for `column` as `services.instants.instant_text` writes it: `2031-03-03T10:00:00Z`, with
    microseconds only when there are some. SQLite holds naive UTC text (`2031-03-03 10:00:00.000000`,
    see db/types.py); PostgreSQL a timestamptz. A function of the dialect alone, so SQLAlchemy queries
    render it too (services.progress). PostgreSQL's YYYY writes 1 BC as 0001: an instant before year 1 is written
    with its era, text no reader takes (UnreadableValue), as psycopg refuses to load it (a comparison costs a fifth
    of taking an era marker off every instant's text)."""
    if dialect == "postgresql":
        utc = f"{column} AT TIME ZONE 'UTC'"
        text = f"replace(to_char({utc}, 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), '.000000Z', 'Z')"
        before_year_1 = f"to_char({utc}, 'YYYY-MM-DD HH24:MI:SS BC')"  # NULL stays NULL
        return f"CASE WHEN {column} >= TIMESTAMPTZ '0001-01-01 00:00:00+00' THEN {text} ELSE {before_year_1} END"
    return f"replace(replace({column} || 'Z', '.000000Z', 'Z'), ' ', 'T')"


class Database:
    """One read-only connection: SQL text in, driver rows out, inside one snapshot until `close`."""

    def __init__(
        self, connection: Any, dialect: str, *, orm_connection: Any = None, busy_timeout_ms: int = BUSY_TIMEOUT_MS
    ) -> None:
        self.connection = connection
        self.dialect = dialect
        # how long its statements wait for another writer's lock (PostgreSQL: its session's lock_timeout)
        self.busy_timeout_ms = busy_timeout_ms
        # An ORM command's own SQLAlchemy connection: its statements go through it (exec_driver_sql), so the
        # engine's events see them as every other statement of the command (the statement counts of P4).
        self.orm_connection = orm_connection

    @classmethod
    def of_session(cls, session: Session) -> Database:
        """The plain view of an ORM session's own connection and transaction, its pending changes flushed."""
        session.flush()
        connection = session.connection()
        return cls(connection.connection.driver_connection, connection.dialect.name, orm_connection=connection)

    @classmethod
    def of(cls, source: Database | Session) -> Database:
        """`source` itself, or the plain view of an ORM session: a plain read serves ORM commands unchanged."""
        return source if isinstance(source, Database) else cls.of_session(source)

    def rows(
        self, sql: str, parameters: Mapping[str, Any] | None = None, *, streamed: bool = False
    ) -> Iterator[tuple[Any, ...]]:
        """The rows of `sql` as they are fetched (`:name` parameters on both backends). `streamed`: a batch at a time
        from a server-side cursor on PostgreSQL, in the transaction's snapshot, where psycopg's cursor takes the whole
        result into memory at once (SQLite's steps through its rows as they are fetched either way)."""
        streamed = streamed and self.dialect == "postgresql"
        arguments: dict[str, Any] | None = dict(parameters or {})
        if self.dialect == "postgresql":
            # psycopg reads `%` as a placeholder only when it is given parameters (SQLAlchemy passes none for {})
            arguments = arguments or None
            if arguments:
                sql = _NAMED_PARAMETER.sub(r"%(\1)s", sql.replace("%", "%%"))
        try:
            if self.orm_connection is not None:
                options = {"yield_per": BATCH_SIZE} if streamed else None  # SQLAlchemy's server-side cursor
                cursor = self.orm_connection.exec_driver_sql(sql, arguments, execution_options=options)
            else:
                connection = self.connection
                cursor = connection.cursor(f"bapp_rows_{next(_CURSOR_NUMBERS)}") if streamed else connection.cursor()
                cursor.execute(sql, arguments)
        except Exception as exc:
            raise database_failure(exc) or exc from None
        return _fetched(cursor)

    def one(self, sql: str, parameters: Mapping[str, Any] | None = None) -> tuple[Any, ...] | None:
        return next(self.rows(sql, parameters), None)

    def instant(self, column: str) -> str:
        return instant_sql(self.dialect, column)

    def money(self, column: str) -> str:
        """SQL for a money column as two-decimal text (SQLite stores it as a number, PostgreSQL as numeric(10,2)).
        On SQLite a value that is no number (raw SQL's text), or is negative against the schema's check, reads
        as NULL, which the reader refuses as UnreadableValue (money columns are NOT NULL), as db.types.Money
        does: printf would have written text as 0.00."""
        if self.dialect == "postgresql":
            return f"CAST({column} AS TEXT)"
        return f"CASE WHEN typeof({column}) IN ('integer', 'real') AND {column} >= 0 THEN printf('%.2f', {column}) END"

    def json_text(self, column: str) -> str:
        """SQL for a json column as its text, for `json_values.stored_json` to decode: psycopg would decode json itself,
        and SQLite hands over a bare number raw SQL stored as a number, a blob as bytes (text here, as its JSON
        functions read one, and as the ORM's reads get it: `types.Json`)."""
        return f"CAST({column} AS TEXT)"

    def contains(self, column: str, parameter: str) -> str:
        """`column` contains the LIKE pattern `:parameter`, ignoring case (as SQLAlchemy's ilike renders it)."""
        if self.dialect == "postgresql":
            return f"{column} ILIKE :{parameter} ESCAPE '\\'"
        return f"lower({column}) LIKE lower(:{parameter}) ESCAPE '\\'"

    def spreadsheet_safe(self, column: str) -> str:
        """SQL for a text column as `services.spreadsheet.neutralise` writes it into CSV/TSV: an apostrophe in
        front when the text is apostrophes (or nothing) followed by = + - @, a tab or a carriage return."""
        # code points of = + - @ tab CR, and of the apostrophe (39). A first, rough test rules out nearly every
        # cell before ltrim runs: on SQLite a comparison of bytes (such a text is below "A" in every built-in
        # collation), cheaper than a function call (P6); PostgreSQL's collation may order punctuation after
        # letters, so there it tests the first character's code.
        triggers = "61, 43, 45, 64, 9, 13"
        if self.dialect == "postgresql":
            code, rough = "ascii", f"ascii({column}) IN ({triggers}, 39)"
        else:
            code, rough = "unicode", f"{column} < 'A'"
        prefixed = f"{code}(ltrim({column}, '''')) IN ({triggers})"
        return f"CASE WHEN {rough} AND {prefixed} THEN '''' || {column} ELSE {column} END"

    def window(self, limit: int | None, offset: int, parameters: dict[str, Any]) -> str:
        """LIMIT/OFFSET SQL, its values put in `parameters` (SQLite takes an OFFSET only after a LIMIT, where
        -1 means none)."""
        window = ""
        if limit is not None or (offset and self.dialect == "sqlite"):
            parameters["page_limit"] = -1 if limit is None else limit
            window = "LIMIT :page_limit"
        if offset:
            parameters["page_offset"] = offset
            window += " OFFSET :page_offset"
        return window

    def stored_instant(self, value: dt.datetime) -> Any:
        """An aware instant as the backend stores it: SQLite's naive UTC text (db/types.py), compared as text."""
        utc = value.astimezone(dt.UTC)
        if self.dialect == "postgresql":
            return utc
        return utc.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")

    def close(self) -> None:
        try:
            # a connection the server ended (idle_in_transaction_session_timeout while a slow reader held a listing's
            # rows back) has nothing to roll back: its "the connection is lost" took the place of the server's reason
            if not getattr(self.connection, "broken", False):  # psycopg's; SQLite's connections have none
                self.connection.rollback()
        finally:
            self.connection.close()


def _fetched(cursor: Any) -> Iterator[tuple[Any, ...]]:
    try:
        while batch := cursor.fetchmany(BATCH_SIZE):
            yield from batch
    except Exception as exc:
        raise database_failure(exc) or exc from None
    finally:
        # A command that failed midway has closed the connection before this generator is collected: closing
        # the cursor then raised again, printed on stderr as an "Exception ignored" traceback.
        with contextlib.suppress(sqlite3.ProgrammingError):
            cursor.close()


def connect(
    url: str, *, connect_timeout: int = 10, busy_timeout_ms: int = BUSY_TIMEOUT_MS, at_head: bool = True
) -> Database:
    """A read connection to the database at `url` (a URL the settings have checked), at the head revision unless
    `at_head` is False (`writing`, which asks inside its transaction), waiting `busy_timeout_ms` for a lock."""
    if url.startswith("postgresql"):
        database = connect_postgresql(url, connect_timeout, busy_timeout_ms=busy_timeout_ms)
    else:
        path = sqlite_file(url)
        if path is None:
            raise ConfigError(
                "the database URL is not valid", hint="check --database-url / BAPP_DATABASE_URL", code="database_url"
            )
        check_sqlite_query(url)
        check_sqlite_file(url, path)
        try:
            # isolation_level None: the BEGIN below is ours, and makes every query of the command one snapshot
            # absolute, as SQLAlchemy opens it: SQLite built to take URIs always (Debian's) read a relative `file:x.db`
            # as the URI of x.db, another file than the engine's and the checks' `file:x.db`
            connection = sqlite3.connect(path.absolute(), isolation_level=None, check_same_thread=False)
            # a first read, where another program holding the file (sqlite3's exclusive locking mode) is waited for
            patiently("PRAGMA schema_version", connection, busy_timeout_ms)
            connection.execute("BEGIN")
        except sqlite3.Error as exc:
            raise database_failure(exc) or exc from None
        database = Database(connection, "sqlite", busy_timeout_ms=busy_timeout_ms)
    if not at_head:
        return database
    try:
        ensure_at_head(database)
    except BaseException:
        database.close()
        raise
    return database


def connect_postgresql(
    url: str, connect_timeout: int = 10, *, over_the_url: bool = False, busy_timeout_ms: int = BUSY_TIMEOUT_MS
) -> Database:
    """A read-only connection, waiting the URL's own connect_timeout, else `connect_timeout` (always that one when
    `over_the_url`: shell completion's 2 seconds, lest a TAB wait a URL's minute, or psycopg's 130 s for 0)."""
    try:
        import psycopg
    except ImportError:
        raise ConfigError(
            "the database driver psycopg is not installed",
            hint="install bapp with its PostgreSQL extra: pip install 'bapp[postgres]'",
            code="database_driver",
        ) from None
    parameters = libpq_parameters(url)
    if over_the_url:
        parameters.pop("connect_timeout", None)
    options = session_options(parameters, busy_timeout_ms)
    try:
        # the URL's own connect_timeout is honoured over bapp's (README), as the engine's connect_args do
        connection = psycopg.connect(**{"connect_timeout": connect_timeout, **parameters, **options})
        # one snapshot for all of a read's statements, as SQLite's read transaction is (psycopg says both in its BEGIN,
        # no round trip of their own): at READ COMMITTED a row committed between two of them (a pathway and an
        # enrolment in it) was seen by the second only, and a command's reads disagreed (exit 1: KeyError)
        connection.read_only, connection.isolation_level = True, psycopg.IsolationLevel.REPEATABLE_READ
    except psycopg.Error as exc:  # as the engine path says it (db.migration.ensure_at_head)
        raise unreachable(exc) from None
    return Database(connection, "postgresql", busy_timeout_ms=busy_timeout_ms)


def wait_sql(busy_timeout_ms: int) -> str:
    """PostgreSQL's statement making this transaction wait `busy_timeout_ms` for a lock, not its session's
    lock_timeout (a stopped Calendly run's failed-run record waited the whole 30 s for a writer holding sync_runs, or
    a migration queued for alembic_version). Its first: the head check's read of alembic_version waits no longer."""
    return f"SET LOCAL lock_timeout = {int(busy_timeout_ms)}"


def session_options(parameters: Mapping[str, Any], lock_timeout_ms: int) -> dict[str, str]:
    """libpq's `options` for a session of bapp's: the URL's own `?options=` (a search_path, a statement_timeout)
    kept between bapp's settings. A later `-c` wins, so the URL may turn JIT back on but not lift the lock
    timeout: that bound is what makes another writer's lock exit 75 (README), not a wait for ever; nor change
    the DateStyle psycopg reads values in (its text timestamps ISO; config.resolve_settings drops PGDATESTYLE,
    which would beat it). And its `client_encoding`, UTF8: psycopg writes and reads text in the session's encoding,
    and any other (`PGCLIENTENCODING=LATIN1`, a URL's `?client_encoding=`; both beat an `options` one) cannot hold
    every name (`clients add`: UnicodeEncodeError, exit 1)."""
    # jit=off: JIT compilation pays off for long analytical queries, not a CLI's short ones
    after = f"-c lock_timeout={lock_timeout_ms} -c DateStyle=ISO"
    return {"options": f"-c jit=off {parameters.get('options', '')} {after}", "client_encoding": "UTF8"}


def libpq_parameters(url: str) -> dict[str, Any]:
    """A PostgreSQL URL (its driver installed) as libpq's parameters, once libpq has parsed it. One it cannot
    parse is exit 4 on every path, the engine's too, whose parser lets through what libpq refuses (a bad %-escape,
    `?host=%zz`, taken for a host name to look up; a `?key` without `=`, dropped). So are ports and whole
    numbers (a connect_timeout, keepalives) libpq would refuse only as it connects: psycopg looks the hosts up
    first, so beside a host that does not resolve a port past 65535, or ports not matching the hosts, read as "cannot
    reach" (exit 5), and a timeout that is no whole number went unseen while bapp's own replaced it."""
    import psycopg

    try:
        parameters = psycopg.conninfo.conninfo_to_dict("postgresql://" + url.partition("://")[2])
        ports = str(parameters.get("port", "")).split(",")  # one per host, or one for all; empty is the default
        # as many as the hosts the URL names, if more than one (none named: PGHOST's, which libpq matches itself)
        hosts = {len(str(parameters[key]).split(",")) for key in ("host", "hostaddr") if key in parameters}
        if len(ports) > 1 and hosts - {len(ports)}:
            raise psycopg.ProgrammingError("could not match the ports to the hosts")
        if not all(port == "" or 0 < _libpq_integer(port) < 65536 for port in ports):
            raise psycopg.ProgrammingError("invalid port number")
        for name in _LIBPQ_INTEGERS.intersection(parameters):  # zero or less: no timeout, no keepalives…
            _libpq_integer(str(parameters[name]))
    except psycopg.ProgrammingError:  # a malformed port, host, query, escape or whole number
        # no detail: libpq's text may quote the whole URL, password and all, where the password cannot be found
        # to scrub it (`unreachable` gets only the engine's errors, of a URL SQLAlchemy has parsed)
        raise ConfigError(
            "the database URL is not valid", hint="check --database-url / BAPP_DATABASE_URL", code="database_url"
        ) from None
    return parameters


def _libpq_integer(text: str) -> int:
    """`text` as libpq reads an integer option (a C int, blanks around it), or ProgrammingError as psycopg's."""
    import psycopg

    # its digits after the zeros leading them, ten at most: int() of all of them refuses 4,301 digits (exit 1)
    found = re.fullmatch(r"\s*([-+]?)0*([0-9]{1,10})\s*", text)
    if not found or not -MAX_INT32 - 1 <= (number := int(found[1] + found[2])) <= MAX_INT32:
        raise psycopg.ProgrammingError(f"invalid integer value {text!r}")
    return number


def unreachable(exc: BaseException) -> DatabaseNotReady | ConfigError:
    """A connection PostgreSQL never answered (exit 5), or refused for its login, or a URL libpq cannot use:
    the URL's user, password and options are configuration (exit 4), as a token Calendly refuses is."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    import socket  # loaded already: psycopg uses it

    libpq_refused = type(exc).__name__ == "ProgrammingError" and getattr(exc, "sqlstate", "") is None  # no server's
    # psycopg looks a host name up with the port before libpq checks the port: one the resolver cannot take
    # (`?port=-1`) reads as a host that does not resolve
    bad_port = text.startswith("failed to resolve host") and f"[Errno {socket.EAI_SERVICE}]" in text
    if libpq_refused or bad_port or _BAD_OPTION_VALUE.match(text) or _BAD_SERVER_OPTION.search(text):
        # libpq takes an option from its PG* environment variables too, which the server's refusal cannot tell apart
        # (PGTZ=Mars/X, PGSSLMODE=bogus): a hint naming the URL alone sent the user to a URL with nothing wrong in it
        hint = "check --database-url / BAPP_DATABASE_URL (an unknown `?option`, or a value it cannot take) and the "
        hint += "PG* environment variables libpq reads (PGSSLMODE, PGTZ…)"
        return ConfigError(f"the database URL is not valid: {text}", hint=hint, code="database_url")
    # No SQLSTATE reaches a login refused (psycopg's sqlstate is None): the server's words, in its lc_messages, and
    # libpq's flag for a password it needed and had none, whatever the language its own message is in
    if "authentication failed" in text or getattr(getattr(exc, "pgconn", None), "needs_password", False):
        hint = "check the user and password in --database-url / BAPP_DATABASE_URL"
        return ConfigError(f"the database refused the login: {text}", hint=hint, code="database_login")
    return DatabaseNotReady(f"cannot reach the database: {text}")


def ensure_at_head(database: Database) -> None:
    """Refuse a database that is not at the head revision (exit 5), as db.migration.ensure_at_head does."""
    try:
        found = list(database.rows("SELECT version_num FROM alembic_version"))
    except Exception as exc:  # a missing table reads differently on each backend
        text = exc.message if isinstance(exc, DatabaseNotReady) else str(exc)
        # the table missing (SQLite's words; PostgreSQL's 42P01, which `rows` maps to database_no_table), not there
        # but refused to this user: that is no schema to make, and `db upgrade` would be refused as well
        if "no such table" in text or getattr(exc, "code", None) == "database_no_table":
            raise DatabaseNotReady("the database has no schema yet", hint="run `bapp db upgrade`") from None
        if isinstance(exc, (DatabaseNotReady, Busy)):  # another process holding the database is busy, not down
            raise
        if (failure := database_failure(exc)) is not None and failure.code != "database_error":
            raise failure from None  # a file that is no SQLite database, as the engine's commands say it
        raise DatabaseNotReady(f"cannot reach the database: {text}".splitlines()[0]) from None
    revision = the_revision(found)
    if revision is not None and revision != HEAD_REVISION and revision not in known_revisions():
        raise newer_revision_error(revision)
    if revision != HEAD_REVISION:
        raise DatabaseNotReady(
            f"the database is at revision {revision or 'base'}, not at head {HEAD_REVISION}",
            hint="run `bapp db upgrade`",
        )


def the_revision(rows: list[Any]) -> str | None:
    """The one revision alembic_version's `rows` hold (None: empty). Two or more (one inserted by hand, a restore
    over another database's) name no schema: whichever the database returned first was read, at head or not."""
    if len(rows) > 1:
        # as the database holds them, escapes escaped, each cut as every echo is (a hand-written one may be 5,000 long)
        listed = ", ".join(sorted(quoted(row[0]) for row in rows))
        raise DatabaseNotReady(
            f"the database's alembic_version holds {len(rows)} revisions ({listed}), where it holds one",
            hint="delete the rows that are not the revision its tables are at (`bapp db history` lists them)",
            code="database_revisions",
        )
    return rows[0][0] if rows else None


def script_location() -> Path:
    package_dir = Path(__file__).resolve().parent.parent
    shipped = package_dir / "migrations"
    if (shipped / "env.py").exists():
        return shipped
    source_tree = package_dir.parent.parent / "migrations"
    if (source_tree / "env.py").exists():
        return source_tree
    raise BappError("the migration scripts are missing from this installation")


def known_revisions() -> set[str]:
    """Every revision of this installation's chain: each script's `revision`, read without Alembic."""
    found = re.compile(r'^revision(?:: str)? = "([^"]+)"', re.MULTILINE)
    revisions = set()
    for script in (script_location() / "versions").glob("*.py"):
        match = found.search(script.read_text(encoding="utf-8"))
        if match:
            revisions.add(match.group(1))
    return revisions


def newer_revision_error(revision: str) -> DatabaseNotReady:
    """A database stamped with a revision this bapp has never heard of: a newer bapp migrated it."""
    return DatabaseNotReady(
        f"the database is at revision {quoted(revision)}, which this bapp does not know: it was made by a newer bapp",
        hint="install the newer bapp that migrated it; this one cannot migrate a revision it does not know",
        code="database_newer",
    )


class Settleable(Protocol):
    """A DB-API connection or an ORM session: what a transaction's end needs of either."""

    def commit(self) -> None: ...
    def rollback(self) -> None: ...
    def close(self) -> None: ...


@contextlib.contextmanager
def settled(handle: Settleable, *, keep: bool) -> Iterator[None]:
    """End a command's transaction on ``handle``: commit when the block succeeds and ``keep`` (not a dry
    run), roll back otherwise; a database error leaves as bapp's own error; ``handle`` is closed either way.
    One ending for the plain connection (`writing`) and the ORM session (`engine.unit_of_work`)."""
    handled = sys.exc_info()[1]
    try:
        yield
        if keep:
            # marked first: a stop signal that comes while the commit runs is raised as soon as commit() returns,
            # before any next statement, and what it committed stands (psycopg's wait for the answer may raise
            # it sooner, with the COMMIT sent: the server's answer is then unknown, and most likely done)
            committed[0] = True
            handle.commit()
        else:
            handle.rollback()
    except BaseException as exc:
        # Interrupted (Ctrl-C, SIGTERM): a rollback that fails — psycopg left busy in an executemany's pipeline —
        # must not put its error in the interrupt's place; closing the connection below discards the transaction.
        # psycopg, stopped as it ends such a pipeline, raises "cannot exit pipeline mode while busy" in the
        # interrupt's place itself (from the executemany): that is the interrupt too. One that was being handled as
        # the transaction began (a run recording its stop) is not this transaction's.
        stop = next((link for link in _chain(exc, handled) if isinstance(link, KeyboardInterrupt)), None)
        if stop is not None or not isinstance(exc, Exception):
            with contextlib.suppress(Exception):
                handle.rollback()
            raise stop or exc from None
        handle.rollback()
        failure = database_failure(exc)
        if failure is not None:
            raise failure from None
        raise
    finally:
        handle.close()


def _chain(exc: BaseException | None, until: BaseException | None) -> Iterator[BaseException]:
    """`exc` and the exceptions its traceback shows it was raised from or while handling, nearest first, up to
    `until`; one raised `from None` (a command's own words for its stop, in the interrupt's place) stands alone."""
    while exc is not None and exc is not until:
        yield exc
        exc = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)


def database_failure(exc: BaseException) -> DatabaseNotReady | Busy | Conflict | ConfigError | None:
    """The "database not ready" (exit 5), "busy" (exit 75) or "written meanwhile" (exit 8) that a low-level failure
    amounts to, or None if it is not one.

    The database itself failing — unreachable, read-only (an immutable or read-only SQLite file, a read-only
    PostgreSQL), not a database at all (a garbage file) — is a state the user can fix, not a bug in bapp.
    Another writer holding a lock past the wait (SQLite's busy timeout, PostgreSQL's lock_timeout), or the server
    ending this transaction to break a deadlock with another, is busy: the same command works once that writer is
    done. A unique index refusing a key on PostgreSQL is another
    session's insert of it since bapp looked it up (a conflict); other constraint violations and programming
    errors stay what they are. `exc` is a driver's error, or SQLAlchemy's wrapper of one (its `orig`).
    """
    original: BaseException = getattr(exc, "orig", None) or exc
    if type(original).__name__ == "StaleDataError":  # the ORM's UPDATE/DELETE matched no row: deleted meanwhile
        return Conflict("another session removed a record this one changes meanwhile", code="written_meanwhile")
    if type(original).__name__ == "DataError" and str(original).startswith("timestamp too"):
        # psycopg cannot load an instant PostgreSQL holds past Python's years 1 to 9999 (raw SQL's; R9)
        return UnreadableValue("an instant outside years 1 to 9999", str(original).partition(": ")[2].strip("'"))
    if getattr(original, "sqlstate", None) == _PG_RAISED or (
        getattr(original, "sqlite_errorname", None) == _SQLITE_TRIGGER_RAISED
    ):
        return DatabaseNotReady(
            f"a trigger in the database refused the change: {str(original).strip().splitlines()[0]}",
            hint="the trigger is not bapp's: change or drop it (or ask whoever made it), then run the command again",
            code="database_trigger",
        )
    if (refused_by := _not_bapps_constraint(original)) is not None:
        return DatabaseNotReady(
            f"a constraint of the database's own refused the change: {refused_by}",
            hint="the constraint is not bapp's: change or drop it (or ask whoever made it), then run the command again",
            code="database_constraint",
        )
    if isinstance(original, sqlite3.Error):
        if not isinstance(original, sqlite3.OperationalError) and type(original) is not sqlite3.DatabaseError:
            return None
    elif (done := _PG_MEANWHILE.get(getattr(original, "sqlstate", None) or "")) is not None:
        # bapp looks every natural key, and every row it refers to, up before it writes, so on PostgreSQL (where
        # writers do not take turns as on SQLite) a key taken or a referent gone at the write was another session's
        # change after that look-up
        detail = getattr(original, "diag", None)
        return Conflict(
            f"another session {done} meanwhile: {getattr(detail, 'message_detail', '') or original}",
            hint="run the command again: it will see that record",
            code="written_meanwhile",
        )
    elif getattr(original, "sqlstate", None) in (
        _PG_LOCK_NOT_AVAILABLE,
        _PG_DEADLOCK_DETECTED,
        _PG_SERIALIZATION_FAILURE,
    ):
        return _locked(str(original).strip().splitlines()[0] if str(original).strip() else "lock timeout")
    elif getattr(original, "sqlstate", None) in (_PG_READ_ONLY, _PG_IDLE_IN_TRANSACTION_TIMEOUT):
        pass
    elif getattr(original, "sqlstate", None) == _PG_UNDEFINED_TABLE:  # a schema changed by hand: as SQLite's words
        return DatabaseNotReady(f"database error: {str(original).strip().splitlines()[0]}", code="database_no_table")
    elif getattr(original, "sqlstate", None) == _PG_UNTRANSLATABLE:  # the database's setting: no change of text helps
        return DatabaseNotReady(
            f"the database's encoding cannot hold bapp's text: {str(original).strip().splitlines()[0]}",
            hint="bapp keeps its text in UTF-8: create the database with --encoding UTF8 (createdb; CREATE DATABASE … "
            "ENCODING 'UTF8' TEMPLATE template0), then run `bapp db upgrade`",
            code="database_encoding",
        )
    elif getattr(original, "sqlstate", None) == _PG_INSUFFICIENT_PRIVILEGE:  # the role's grants: a setting, not a bug
        return DatabaseNotReady(
            f"the database refused this user: {str(original).strip().splitlines()[0]}",
            hint="grant this user the tables (and CREATE on the schema for `bapp db upgrade`), or use their owner",
            code="database_permission",
        )
    elif type(original).__name__ == "ProgrammingError" and getattr(original, "sqlstate", "") is None:
        return unreachable(original)  # libpq refused the URL itself (the engine's first connection): no server asked
    elif not any(kind.__name__ == "OperationalError" for kind in type(exc).__mro__ + type(original).__mro__):
        return None
    text = str(original).strip().splitlines()[0] if str(original).strip() else type(original).__name__
    lowered = text.lower()
    read_only = getattr(original, "sqlstate", None) == _PG_READ_ONLY  # by its code: its words are the server's language
    # "unable to open": SQLite's CANTOPEN for a file that is there (checked first), as every reader of a WAL database
    # makes its -wal and -shm files beside it: a folder or mount read-only to this user, where every command (reads
    # too) said "database error: unable to open database file", naming neither
    if read_only or re.search("readonly|read-only|read only|unable to open database file", lowered):
        return DatabaseNotReady(
            f"the database cannot be written: {text}",
            hint="check that this user may write the database and its folder (file permissions, an immutable "
            "attribute, a read-only mount or a read-only PostgreSQL)",
            code="database_read_only",
        )
    if isinstance(original, sqlite3.OperationalError) and ("database is locked" in lowered or "is locked" in lowered):
        return _locked(text)
    if "not a database" in lowered or "malformed" in lowered:
        return not_a_database(text)
    # the engine's first connection, refused or never answered (psycopg's connection attempt gives its error the
    # pgconn it tried, or times out), as every path says it: `db upgrade` said "database error: connection failed".
    # A host name that does not resolve fails in psycopg's own look-up, before libpq, with no pgconn: every write
    # and `db upgrade` said "database error" (code database_error) where the reads said "cannot reach"
    login = unreachable(original)  # a login or URL refused (exit 4), else "cannot reach the database"
    connecting = getattr(original, "pgconn", None) is not None or type(original).__name__ == "ConnectionTimeout"
    if connecting or text.startswith("failed to resolve host") or isinstance(login, ConfigError):
        return login
    return DatabaseNotReady(f"database error: {text}", code="database_error")


def _not_bapps_constraint(original: BaseException) -> str | None:
    """The words of a unique index or a check refusing a row when it is none of bapp's (one an administrator added to
    its tables), else None: a key of bapp's refused is another session's meanwhile, or a bug, and stays that."""
    if getattr(original, "sqlstate", None) in _PG_KEPT_OUT:
        named = getattr(getattr(original, "diag", None), "constraint_name", None)
    elif getattr(original, "sqlite_errorname", None) in _SQLITE_KEPT_OUT:
        # "UNIQUE constraint failed: users.email", "CHECK constraint failed: ck_bookings_status"
        named = str(original).partition(": ")[2]
    else:
        return None
    from sqlalchemy import PrimaryKeyConstraint, UniqueConstraint

    from bapp_cli.db.models import Base  # only once a write was refused

    bapps = {"alembic_version_pkc", "alembic_version.version_num"}
    for table in Base.metadata.tables.values():
        keys = [key for key in table.constraints if isinstance(key, PrimaryKeyConstraint | UniqueConstraint)]
        for key in (*keys, *(index for index in table.indexes if index.unique)):
            bapps.add(", ".join(f"{table.name}.{column.name}" for column in key.columns))  # SQLite names the columns
        bapps.update(str(key.name) for key in table.constraints)
        bapps.update(str(index.name) for index in table.indexes)
    return None if not named or named in bapps else str(original).strip().splitlines()[0]


def _locked(text: str) -> Busy:
    return Busy(
        f"the database is busy: {text}",
        hint="another process (a bapp import, sync or pull, an sqlite3 or psql session) holds it; run this again later",
        code="database_locked",
    )


# -- writing ---------------------------------------------------------------------------------------------


class Transaction(Database):
    """A write transaction on a plain connection (a Calendly sync's, P2): `rows` as `Database`, plus
    `insert` and `execute_many`. The audit's actor and command ride along, as in a unit of work's
    `session.info`."""

    def __init__(
        self, connection: Any, dialect: str, *, orm_connection: Any = None, actor: str = "unknown", command: str = ""
    ) -> None:
        super().__init__(connection, dialect, orm_connection=orm_connection)
        self.actor, self.command = actor, command

    @classmethod
    def of_session(cls, session: Session) -> Transaction:
        """The plain view of an ORM unit of work (the webhook receiver's), writing inside its transaction."""
        plain = cast(Transaction, super().of_session(session))
        plain.actor, plain.command = str(session.info.get("actor", "unknown")), str(session.info.get("command", ""))
        return plain

    @classmethod
    def of_unit(cls, source: Transaction | Session) -> Transaction:
        """`source` itself, or the plain view of an ORM unit of work: its writers serve both unchanged."""
        return source if isinstance(source, Transaction) else cls.of_session(source)

    def insert(self, table: str, values: Mapping[str, Any]) -> int:
        """Insert one row (JSON as text, instants as given: stored as `stored_instant` says); returns its id."""
        names = ", ".join(values)
        markers = ", ".join(f":{name}" for name in values)
        stored = {name: self.stored_instant(v) if isinstance(v, dt.datetime) else v for name, v in values.items()}
        found = self.one(f"INSERT INTO {table} ({names}) VALUES ({markers}) RETURNING id", stored)
        assert found is not None
        return int(found[0])

    def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """One statement with `?` markers over many rows of stored values (psycopg's `%s` on PostgreSQL)."""
        if not rows:
            return
        if self.dialect == "postgresql":
            sql = sql.replace("?", "%s")
        try:
            if self.orm_connection is not None:
                self.orm_connection.exec_driver_sql(sql, list(rows))
            else:
                cursor = self.connection.cursor()
                cursor.executemany(sql, rows)
                cursor.close()
        except Exception as exc:
            raise database_failure(exc) or exc from None


@contextlib.contextmanager
def writing(
    url: str,
    *,
    connect_timeout: int = 10,
    dry_run: bool = False,
    actor: str = "unknown",
    command: str = "",
    on: Database | None = None,
    busy_timeout_ms: int = BUSY_TIMEOUT_MS,
) -> Iterator[Transaction]:
    """A command's one write transaction on a plain connection, as `db.engine.unit_of_work` is on the ORM's:
    at head (else exit 5), committed at the end, rolled back on an error or a dry run. SQLite is set up as
    the engine sets it up — foreign keys, WAL, and BEGIN IMMEDIATE, so writers serialise at the start.

    ``on``: a read connection of this database opened earlier (a sync's, whose temporary tables hold rows
    staged for this transaction), which the transaction takes over — its read ends, the head is checked
    again inside the transaction, and it is closed at the end as a new one would be. ``busy_timeout_ms``: how long
    SQLite's BEGIN (PostgreSQL: any statement) waits for another writer's lock: the busy_timeout setting, or a
    moment only for a stopped sync's failed-run record."""
    reader = on or connect(url, connect_timeout=connect_timeout, busy_timeout_ms=busy_timeout_ms, at_head=False)
    connection = reader.connection
    try:
        connection.rollback()  # the read connect began (a survey's, with on=): the write is a transaction of its own
        if reader.dialect == "sqlite":
            connection.execute("PRAGMA foreign_keys = ON")
            # both wait for another program's lock (the switch to WAL for one holding the whole file: the sqlite3
            # shell's exclusive locking mode), in short turns, so that a Ctrl-C is seen as they wait
            patiently("PRAGMA journal_mode = WAL", connection, busy_timeout_ms)
            connection.execute("PRAGMA synchronous = NORMAL")
            patiently("BEGIN IMMEDIATE", connection, busy_timeout_ms)
        else:
            import psycopg

            # the server's default read-only setting: a read-only database stays one (exit 5); READ COMMITTED, not a
            # database's or role's default REPEATABLE READ: a write sees what writers it waited for committed
            connection.read_only, connection.isolation_level = None, psycopg.IsolationLevel.READ_COMMITTED
            if busy_timeout_ms != reader.busy_timeout_ms:  # else it is the session's lock_timeout already
                connection.execute(wait_sql(busy_timeout_ms))
        # asked inside the transaction, not before it: a migration that committed between the two (on SQLite one
        # that held the write lock as the check read) had this write made to a schema this bapp does not know
        ensure_at_head(reader)
    except Exception as exc:
        connection.close()
        raise database_failure(exc) or exc from None
    with settled(connection, keep=not dry_run):
        yield Transaction(connection, reader.dialect, actor=actor, command=command)

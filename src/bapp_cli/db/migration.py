"""Alembic glue: the chain is configured in code (no alembic.ini, no logging takeover).

The migration scripts live in top-level `migrations/`; the wheel ships them as `bapp_cli/migrations`,
and an editable install finds them beside `src/`. Upgrades serialise on a named lock so two processes
upgrading at once cannot both run the same revision.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, inspect, text

from bapp_cli.db import dbapi
from bapp_cli.db.dbapi import HEAD_REVISION, Database, known_revisions, newer_revision_error, script_location
from bapp_cli.errors import ECHO_LENGTH, BappError, DatabaseNotReady, InvalidInput, cut_echo, quoted

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

__all__ = [
    "HEAD_REVISION",
    "downgrade",
    "ensure_at_head",
    "known_revisions",
    "newer_revision_error",
    "script_location",
    "upgrade",
]

MIGRATION_LOCK_WAIT_SECONDS = 300.0


def _config(connection: Any) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(script_location()))
    config.attributes["connection"] = connection
    return config


# the triggers of the tables that are still there (the tables a downgrade dropped took theirs with them)
_TRIGGERS = (
    "SELECT t.name, t.sql FROM sqlite_master t JOIN sqlite_master o ON o.type = 'table' AND o.name = t.tbl_name"
    " WHERE t.type = 'trigger'"
)


def _run(
    engine: Engine, action: str, revision: str, warn: Callable[[str], None] | None = None
) -> tuple[str | None, str | None]:
    """Migrate under the lock; returns the revision before and after. `warn` is told what a migration changed
    that the user should know of (a renamed pathway), once the run has committed.

    Nothing touches the database before the lock is held: on a brand-new SQLite file even the first
    connection (which switches the journal to WAL) must not race another process's upgrade.
    """
    from alembic import command
    from alembic.util import CommandError
    from sqlalchemy.exc import DBAPIError, PendingRollbackError

    from bapp_cli.db.engine import WRITE_OPTION
    from bapp_cli.db.locks import named_lock

    # a step (`base+N`) Python's int() refuses to read: exit 1 inside Alembic. \d, as Alembic's step and int() read
    # digits: those of every script too (U+0663, an Arabic-Indic 3)
    if re.search(r"\d{4301}", revision):
        hint = "bapp's chain of migrations is short: `bapp db history` lists them"
        raise InvalidInput(f"cannot {action} to {quoted(revision)}: not a revision", hint=hint, code="invalid_revision")
    if "@" in revision:  # Alembic reads `<branch>@base` as base whatever the branch: `zz@base` dropped every table
        hint = "bapp's migrations are one line without branches: `bapp db history` lists them"
        raise InvalidInput(
            f"cannot {action} to {quoted(revision)}: no branch names", hint=hint, code="invalid_revision"
        )
    with named_lock(engine, "migrations", wait_seconds=MIGRATION_LOCK_WAIT_SECONDS, what="migration"):
        before = current_revision(engine)
        if before is not None and before not in known_revisions():
            raise newer_revision_error(before)
        if action == "upgrade" and before is not None:
            _refuse_older(before, revision)
        if before is None and (version_table := _revision_lost(engine)) is not None:
            # alembic_version emptied or dropped by hand: the run would create every table again, refused by the
            # first ("users already exists"), whose words pointed at dropping it; the tables hold the user's data
            recreate = "" if version_table == "empty" else f"`{VERSION_TABLE_SQL}`, then "
            raise DatabaseNotReady(
                f"cannot {action}: the database holds bapp's tables but no revision (its alembic_version is "
                f"{version_table}), so bapp cannot tell which migrations it has had",
                hint=f"put back the revision its tables are at, e.g. {recreate}`INSERT INTO alembic_version "
                f"(version_num) VALUES ('{HEAD_REVISION}')` if they are at head (then `bapp db check`), or restore "
                "a backup",
                code="revision_missing",
            )
        # a write transaction from its BEGIN (IMMEDIATE on SQLite), so another writer is waited for (busy timeout):
        # a deferred one that read first was refused at once (busy, exit 75) when it came to write
        with engine.execution_options(**{WRITE_OPTION: True}).connect() as connection:
            sqlite = engine.dialect.name == "sqlite"
            if sqlite:
                # Batch migrations rebuild tables; SQLite would enforce FKs mid-rebuild. The pragma only
                # works outside a transaction, so it goes straight to the driver connection.
                connection.connection.driver_connection.execute("PRAGMA foreign_keys = OFF")  # type: ignore[union-attr]
            config = _config(connection)
            said: list[str] = config.attributes.setdefault("warnings", [])
            # Ours, so Alembic runs every step in it: it would commit each migration on its own on SQLite (DDL
            # it does not count as transactional), and a run stopped or refused midway left a revision between
            connection.begin()
            try:
                if not sqlite and before is not None:
                    # Waits for every transaction that has read the revision (a receiver's delivery asks it in its
                    # own, then writes), and every read of it after this waits for the run's end and sees its
                    # revision: no delivery is applied to a schema its bapp does not know. Taken before any step, so
                    # it holds nothing such a transaction waits for (their at-head read comes first). SQLite's write
                    # lock already serialises them.
                    connection.exec_driver_sql("LOCK TABLE alembic_version IN ACCESS EXCLUSIVE MODE")
                triggers = connection.exec_driver_sql(_TRIGGERS).fetchall() if sqlite else []
                if action == "upgrade":
                    command.upgrade(config, revision)
                else:
                    command.downgrade(config, revision)
                # a table SQLite's batch mode rebuilt lost its triggers with the original (bapp makes none: the
                # user's own, an audit say); made again on the table that is still there
                kept = {name for name, _ in connection.exec_driver_sql(_TRIGGERS)} if sqlite else set()
                for name, sql in triggers:
                    if name not in kept:
                        connection.exec_driver_sql(sql)
            except (CommandError, AssertionError) as exc:
                # an unknown target, one on the wrong side of the current revision, or one Alembic's own
                # argument checks (asserts) refuse, such as an empty name
                connection.rollback()
                reason = str(exc).splitlines()[0] if str(exc).strip() else "not a revision"
                # what Alembic echoes (the target again, or a part of it: quoted, or a word of its own) cut as bapp's
                # own echo is: 5,000 characters that name no revision came back whole, twice
                reason = re.sub(rf"(?<!\w)'.*'|\S{{{ECHO_LENGTH + 1},}}", lambda echoed: cut_echo(echoed[0]), reason)
                raise InvalidInput(
                    f"cannot {action} to {quoted(revision)}: {reason}",
                    hint="`bapp db history` lists the revisions; `head` and `base` are the two ends",
                    code="invalid_revision",
                ) from None
            except PendingRollbackError as exc:
                # SQLite's batch mode, stopped (Ctrl-C, SIGTERM) while it copies a table, drops its copy on the
                # connection the stop invalidated: the stop is what happened, and the run's transaction is undone
                if isinstance(exc.__context__, KeyboardInterrupt):
                    raise exc.__context__ from None
                raise
            except DBAPIError as exc:
                # The database refused a step: a view or rule of another program's on a column 0013 retypes, a
                # missing privilege. The whole run is one transaction, so the database stays at `before`.
                connection.rollback()
                reason = " ".join(str(exc.orig or exc).split())  # the driver's message with its DETAIL line
                # busy, read-only, a full disk, a login or a grant as every command says them; SQLite's refusal of
                # the step's SQL (SQLITE_ERROR, an OperationalError: "database error: …") as a migration's refusal
                failure = dbapi.database_failure(exc)
                # a trigger, unique index or check of the user's refusing a step's change is a step refused, which
                # names the revision the database is at
                step_sql = getattr(exc.orig, "sqlite_errorname", None) == "SQLITE_ERROR"
                if failure is None or failure.code in ("database_trigger", "database_constraint") or step_sql:
                    failure = DatabaseNotReady(
                        f"cannot {action} to {quoted(revision)}; the database, left at revision {before or 'base'}, "
                        f"refused: {reason}",
                        hint="change or drop what it names (a view of your own can be made again afterwards), then "
                        "rerun",
                        code="migration_refused",
                    )
                raise failure from None
            connection.commit()
            if warn is not None:
                for message in said:
                    warn(message)
            if sqlite:
                # a read, begun deferred: never a wait for a writer that took the database once the run committed
                connection.execution_options(**{WRITE_OPTION: False})
                problems = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                connection.rollback()
                connection.connection.driver_connection.execute("PRAGMA foreign_keys = ON")  # type: ignore[union-attr]
                if problems:
                    raise BappError(f"migration left {len(problems)} broken foreign keys: {problems[:3]}")
        return before, current_revision(engine)


def _refuse_older(before: str, revision: str) -> None:
    """Alembic takes an upgrade to a revision below the current one as nothing to do (bapp said "Already
    at"), where a downgrade to one above is refused: refused the same way (exit 6), pointing down. The target is
    resolved as Alembic's upgrade resolves it, so a relative one (`head-1`, `0014_session_slug_rule-2`) is taken
    as the revision it names; one Alembic cannot resolve (an unknown name, `-1`, past either end) is left to its
    own answer."""
    from alembic.script import ScriptDirectory
    from alembic.script.revision import RevisionError
    from alembic.util import CommandError

    scripts = ScriptDirectory(str(script_location()))
    # Alembic's argument checks assert (an empty name); a relative target past either end resolves to None. The
    # resolver is Alembic's private one (its upgrade's own): should a release rename or reshape it, the check is
    # skipped (Alembic's "Already at" answer, as before 17f16ce), never exit 1
    with contextlib.suppress(CommandError, RevisionError, AssertionError, AttributeError, TypeError):
        targets = scripts.revision_map._parse_upgrade_target(before, revision, assert_relative_length=True)
        older = [script.revision for script in scripts.walk_revisions("base", before)][1:]
        names = [getattr(target, "revision", target) for target in targets]  # a Revision, "base", or None past an end
        if not names or any(name == "base" or name in older for name in names):
            raise InvalidInput(
                f"cannot upgrade to {quoted(revision)}: it is below the database's revision {before}",
                hint=f"`bapp db downgrade {cut_echo(revision)}` goes down to it",
                code="invalid_revision",
            )


def upgrade(
    engine: Engine, revision: str = "head", warn: Callable[[str], None] | None = None
) -> tuple[str | None, str | None]:
    return _run(engine, "upgrade", revision, warn)


def downgrade(engine: Engine, revision: str) -> tuple[str | None, str | None]:
    return _run(engine, "downgrade", revision)


# Every table 0001_baseline creates, which every revision keeps: all of them together are bapp's, even with
# alembic_version gone, where one of these names alone (another program's users table) is no sign of bapp.
BASELINE_TABLES = frozenset(
    {"users", "client_profiles", "builder_profiles", "session_types", "bookings", "sync_runs", "audit_entries"}
)
# alembic_version as Alembic creates it, for the hint that puts a dropped one back
VERSION_TABLE_SQL = "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)"


def _revision_lost(engine: Engine) -> str | None:
    """How bapp's tables are there with no revision: beside an alembic_version that is "empty" (a `db downgrade
    base` leaves it empty with no table of bapp's), or with it "missing"; None when they are not."""
    with engine.connect() as connection:
        names = set(inspect(connection).get_table_names())
    if "alembic_version" in names:
        from bapp_cli.db.models import Base  # not before: a new database's `db upgrade` has no use for the models

        return "empty" if names & set(Base.metadata.tables) else None
    return "missing" if names >= BASELINE_TABLES else None


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        return dbapi.the_revision(list(connection.execute(text("SELECT version_num FROM alembic_version"))))


def ensure_at_head(engine: Engine, session: Session | None = None) -> None:
    """Refuse to work on a database that is not at the head revision (exit 5): the plain reads' check, on
    a connection of `engine`, or in `session`'s transaction (begun on `engine`)."""
    from sqlalchemy.exc import DBAPIError

    try:
        connection = engine.connect() if session is None else session.connection()
    except DBAPIError as exc:  # as the plain reads say it (db.dbapi.connect); SQLite's connect-time PRAGMAs wait
        # out another process's lock (its exclusive locking mode, a rollback journal's write): busy, not down (a
        # file that is no database, or cannot be written, in its own words; a server gone as every command says it)
        raise (dbapi.database_failure(exc) or dbapi.unreachable(exc.orig or exc)) from None
    if session is not None:
        # through the session's SQLAlchemy connection, as its other statements go: one found lost here is let go, so
        # the rollback that follows the refusal does not fail on it in turn (and hide the refusal's words)
        dbapi.ensure_at_head(Database.of_session(session))
        return
    with connection:
        dbapi.ensure_at_head(Database(connection.connection.driver_connection, engine.dialect.name))


def history() -> list[dict[str, Any]]:
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory(str(script_location()))
    rows = []
    for script in reversed(list(scripts.walk_revisions())):
        rows.append(
            {
                "revision": script.revision,
                "down_revision": script.down_revision,
                "description": script.doc,
                "is_head": script.is_head,
            }
        )
    return rows


def script_heads() -> tuple[str, ...]:
    from alembic.script import ScriptDirectory

    return tuple(ScriptDirectory(str(script_location())).get_heads())


def schema_drift(engine: Engine) -> list[str]:
    """Differences between the models and the migrated database (empty when they agree); a database not at the head
    revision is refused first (exit 5), as every command refuses it: what it lacks is a migration to run.

    The revision and the whole catalogue are read in one read transaction (one snapshot, REPEATABLE READ on
    PostgreSQL): read on a connection of their own and statement by statement, a migration committed meanwhile was
    drift reported (exit 1) between two revisions. On PostgreSQL a migration waits for the check's end (its lock of
    alembic_version), on SQLite the check reads the state before it."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from bapp_cli.db.engine import unit_of_work
    from bapp_cli.db.models import Base

    # a table of the user's own beside bapp's (notes, a report's) is no disagreement of the models and migrations
    opts = {"compare_type": True, "include_name": lambda name, kind, _: kind != "table" or name in Base.metadata.tables}
    with unit_of_work(engine, write=False) as session:
        context = MigrationContext.configure(session.connection(), opts=opts)
        return [repr(diff) for diff in compare_metadata(context, Base.metadata)]

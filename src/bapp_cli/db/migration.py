"""Alembic glue: the chain is configured in code (no alembic.ini, no logging takeover).

The migration scripts live in top-level `migrations/`; the wheel ships them as `bapp_cli/migrations`,
and an editable install finds them beside `src/`. Upgrades serialise on a named lock so two processes
upgrading at once cannot both run the same revision.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, inspect, text

from bapp_cli.errors import BappError, DatabaseNotReady, InvalidInput

# The head of the chain, kept here so the per-command "at head?" check needs no script parsing.
# tests/db/test_migrations.py proves it equals Alembic's own head.
HEAD_REVISION = "0011_no_show_order"
MIGRATION_LOCK_WAIT_SECONDS = 300.0


def script_location() -> Path:
    package_dir = Path(__file__).resolve().parent.parent
    shipped = package_dir / "migrations"
    if (shipped / "env.py").exists():
        return shipped
    source_tree = package_dir.parent.parent / "migrations"
    if (source_tree / "env.py").exists():
        return source_tree
    raise BappError("the migration scripts are missing from this installation")


def _config(connection: Any) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(script_location()))
    config.attributes["connection"] = connection
    return config


def _run(engine: Engine, action: str, revision: str) -> tuple[str | None, str | None]:
    """Migrate under the lock; returns the revision before and after.

    Nothing touches the database before the lock is held: on a brand-new SQLite file even the first
    connection (which switches the journal to WAL) must not race another process's upgrade.
    """
    from alembic import command
    from alembic.util import CommandError

    from bapp_cli.db.locks import named_lock

    with named_lock(engine, "migrations", wait_seconds=MIGRATION_LOCK_WAIT_SECONDS, what="migration"):
        before = current_revision(engine)
        if before is not None and before not in known_revisions():
            raise newer_revision_error(before)
        with engine.connect() as connection:
            sqlite = engine.dialect.name == "sqlite"
            if sqlite:
                # Batch migrations rebuild tables; SQLite would enforce FKs mid-rebuild. The pragma only
                # works outside a transaction, so it goes straight to the driver connection.
                connection.connection.driver_connection.execute("PRAGMA foreign_keys = OFF")  # type: ignore[union-attr]
            config = _config(connection)
            try:
                if action == "upgrade":
                    command.upgrade(config, revision)
                else:
                    command.downgrade(config, revision)
            except (CommandError, AssertionError) as exc:
                # an unknown target, one on the wrong side of the current revision, or one Alembic's own
                # argument checks (asserts) refuse, such as an empty name
                connection.rollback()
                reason = str(exc).splitlines()[0] if str(exc).strip() else "not a revision"
                raise InvalidInput(
                    f"cannot {action} to {revision!r}: {reason}",
                    hint="`bapp db history` lists the revisions; `head` and `base` are the two ends",
                    code="invalid_revision",
                ) from None
            connection.commit()
            if sqlite:
                problems = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                connection.rollback()
                connection.connection.driver_connection.execute("PRAGMA foreign_keys = ON")  # type: ignore[union-attr]
                if problems:
                    raise BappError(f"migration left {len(problems)} broken foreign keys: {problems[:3]}")
        return before, current_revision(engine)


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str | None]:
    return _run(engine, "upgrade", revision)


def downgrade(engine: Engine, revision: str) -> tuple[str | None, str | None]:
    return _run(engine, "downgrade", revision)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def ensure_at_head(engine: Engine) -> None:
    """Refuse to work on a database that is not at the head revision (exit 5)."""
    try:
        with engine.connect() as connection:
            revision = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except Exception as exc:  # a missing table reads differently on each backend
        from sqlalchemy.exc import DBAPIError

        if not isinstance(exc, DBAPIError):
            raise
        if "alembic_version" in str(exc.orig) or "no such table" in str(exc.orig):
            raise DatabaseNotReady("the database has no schema yet", hint="run `bapp db upgrade`") from None
        raise DatabaseNotReady(f"cannot reach the database: {exc.orig}".splitlines()[0]) from None
    if revision is not None and revision != HEAD_REVISION and revision not in known_revisions():
        raise newer_revision_error(revision)
    if revision != HEAD_REVISION:
        raise DatabaseNotReady(
            f"the database is at revision {revision or 'base'}, not at head {HEAD_REVISION}",
            hint="run `bapp db upgrade`",
        )


def known_revisions() -> set[str]:
    """Every revision of this installation's chain (read from the scripts: only on the error paths)."""
    from alembic.script import ScriptDirectory

    return {script.revision for script in ScriptDirectory(str(script_location())).walk_revisions()}


def newer_revision_error(revision: str) -> DatabaseNotReady:
    """A database stamped with a revision this bapp has never heard of: a newer bapp migrated it."""
    return DatabaseNotReady(
        f"the database is at revision {revision}, which this bapp does not know: it was made by a newer bapp",
        hint="install the newer bapp that migrated it; this one cannot migrate a revision it does not know",
        code="database_newer",
    )


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
    """Differences between the models and the migrated database (empty when they agree)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from bapp_cli.db.models import Base

    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diffs = compare_metadata(context, Base.metadata)
    return [repr(diff) for diff in diffs]

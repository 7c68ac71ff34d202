"""`bapp db check` reads the database's revision and its whole catalogue as one state.

It read the revision on a connection of its own, then the catalogue in many statements on another, each at READ
COMMITTED on PostgreSQL: a `db downgrade` committed meanwhile had it compare the models with a schema between two
revisions, and report drift (exit 1: "the schema differs from the models", a bug in bapp's migrations) where there
was none, before the downgrade or after it (then: not at head, exit 5).
"""

from __future__ import annotations

from typing import Any

import pytest

from bapp_cli.db import migration
from bapp_cli.db.engine import make_engine
from bapp_cli.errors import Busy
from tests.conftest import Bapp
from tests.db.test_read_snapshot import slip_in  # noqa: F401 (fixture)


@pytest.mark.parametrize("after", ["the revision", "the catalogue"])
def test_db_check_reads_one_state_while_a_migration_commits(
    bapp: Bapp,
    slip_in: Any,  # noqa: F811
    after: str,
) -> None:
    waited: list[str] = []

    def downgrade() -> None:
        engine = make_engine(bapp.database_url, busy_timeout_ms=1000)  # PostgreSQL: its lock waits for the check's end
        try:
            migration.downgrade(engine, "0011_no_show_order")  # 0012's partial booking indexes go
        except Busy as exc:
            waited.append(exc.message)
        finally:
            engine.dispose()

    # right after the revision's read, or once the catalogue's reading has begun (past any first connection's queries)
    marker = "sqlite_master" if bapp.database_url.startswith("sqlite") else "pg_class"
    marker = "alembic_version" if after == "the revision" else marker
    slipped = slip_in(marker, downgrade)
    during = bapp("db", "check", "--json")
    assert slipped, "the migration was not slipped in"
    assert (during.exit_code, during.stdout) == (0, "[]\n"), during.stderr  # the state before the migration
    # SQLite: committed meanwhile (WAL), seen by the next command; PostgreSQL: it waited for the check to end
    after = bapp("db", "check")
    if waited:
        assert bapp.database_url.startswith("postgresql") and after.exit_code == 0, waited
    else:
        assert after.exit_code == 5 and "not at head" in after.stderr, after.stderr

"""text_collation_c: on PostgreSQL every text column compares as SQLite's do, by code point

Revision ID: 0013_text_collation_c
Revises: 0012_partial_booking_indexes

SQLite compares text by code point (its BINARY collation) and folds case for ASCII only, in lower() and
LIKE. A PostgreSQL database takes its collation from the server's locale, and most are created in one
such as en_US.UTF-8, which sorts case and accents together and makes ILIKE fold every letter: the same
listing came out in another order on each backend (ángel@ before emile@ on one, after zed@ on the
other), so a page boundary fell elsewhere, and `--search É` found émile@ on PostgreSQL only. The "C"
collation, which every PostgreSQL has, is code point order and ASCII-only folding: with it on every text
column, every ORDER BY, comparison and ILIKE of bapp's — and any written later — agrees with SQLite's
whatever the server's locale. SQLite has nothing to change.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_text_collation_c"
down_revision = "0012_partial_booking_indexes"
branch_labels = None
depends_on = None


# bapp's tables at this revision: a database it shares with other programs keeps theirs as they are
_TABLES = (
    "audit_entries",
    "badges",
    "bookings",
    "builder_profiles",
    "calendly_invitations",
    "client_profiles",
    "enrolments",
    "pathway_tiers",
    "pathways",
    "session_type_pathways",
    "session_types",
    "skill_pathway_links",
    "skills",
    "sync_runs",
    "user_skill_progress",
    "users",
    "webhook_deliveries",
)


def _collate(collation: str) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    inspector, quote = sa.inspect(bind), bind.dialect.identifier_preparer.quote
    for table in _TABLES:
        for column in inspector.get_columns(table):
            reflected = column["type"]
            if isinstance(reflected, sa.String):  # VARCHAR(n) and TEXT; rebuilt without the collation reflected
                type_ = type(reflected)(length=reflected.length).compile(dialect=bind.dialect)
                altered = f"ALTER TABLE {quote(table)} ALTER COLUMN {quote(column['name'])}"
                op.execute(f'{altered} TYPE {type_} COLLATE "{collation}"')


def upgrade() -> None:
    _collate("C")


def downgrade() -> None:
    _collate("default")

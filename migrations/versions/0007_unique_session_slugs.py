"""unique_session_slugs: one session type per slug

Revision ID: 0007_unique_session_slugs
Revises: 0006_create_user_skill_progress

A local session type and a synced one could share a slug, after which `sessions show SLUG` and every
booking by slug refused as ambiguous. Existing clashes are renamed before the unique index is built:
in each group of equal slugs the lowest id (the oldest type, the one scripts have been using) keeps the
slug and the others become `slug-2`, `slug-3`, … in id order, skipping any slug already taken, so the
same database always upgrades to the same result.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_unique_session_slugs"
down_revision = "0006_create_user_skill_progress"
branch_labels = None
depends_on = None

MAX_SLUG_LENGTH = 200  # session_types.slug is String(200)


def _suffixed(base: str, number: int) -> str:
    suffix = f"-{number}"
    return base[: MAX_SLUG_LENGTH - len(suffix)] + suffix


def upgrade() -> None:
    connection = op.get_bind()
    session_types = sa.table("session_types", sa.column("id", sa.Integer), sa.column("slug", sa.String))
    rows = connection.execute(
        sa.select(session_types.c.id, session_types.c.slug)
        .where(session_types.c.slug.is_not(None))
        .order_by(session_types.c.slug, session_types.c.id)
    ).all()
    taken = {slug for _, slug in rows}
    seen: set[str] = set()
    for type_id, slug in rows:
        if slug not in seen:
            seen.add(slug)
            continue
        number = 2
        while _suffixed(slug, number) in taken:
            number += 1
        renamed = _suffixed(slug, number)
        taken.add(renamed)
        connection.execute(session_types.update().where(session_types.c.id == type_id).values(slug=renamed))
    op.drop_index("ix_session_types_slug", table_name="session_types")
    op.create_index("ix_session_types_slug", "session_types", ["slug"], unique=True)


def downgrade() -> None:
    # The renamed duplicates keep their new slugs: nothing records which of them were renamed.
    op.drop_index("ix_session_types_slug", table_name="session_types")
    op.create_index("ix_session_types_slug", "session_types", ["slug"])

"""session_slug_rule: every session-type slug keeps the one rule `sessions add` has

Revision ID: 0014_session_slug_rule
Revises: 0013_text_collation_c

`import sessions` and the Calendly sync stored slugs `sessions add` refuses (`Bad Slug!`, `Play_Lab`),
which no command could then name, and slugs of digits alone (`2024`), which every command reads as an id.
Such a slug becomes the one the rule gives it now (what the sync and a restore do with such a slug:
letters and digits kept, lowercase, every other run of characters one hyphen, `session-` before digits
alone), numbered `-2`, `-3`, … when that is taken, in id order, so the same database always upgrades to
the same result; a slug with nothing left becomes NULL (the type is still named by its id). `bapp db
upgrade` says what was renamed.
"""

from __future__ import annotations

import re

import sqlalchemy as sa
from alembic import context, op

revision = "0014_session_slug_rule"
down_revision = "0013_text_collation_c"
branch_labels = None
depends_on = None

MAX_SLUG_LENGTH = 200  # session_types.slug is String(200)
_RULE = re.compile(r"^(?![0-9]+$)[a-z0-9]+(?:-[a-z0-9]+)*$")


def _conformed(slug: str) -> str | None:
    # services.session_values.session_slug as it is at this revision (a migration does not follow the code)
    conformed = re.sub(r"[^a-z0-9]+", "-", slug.lower()).strip("-")[:MAX_SLUG_LENGTH].strip("-")
    return f"session-{conformed}"[:MAX_SLUG_LENGTH] if conformed.isdigit() else conformed or None


def _suffixed(base: str, number: int) -> str:
    suffix = f"-{number}"  # a cut that ends on a hyphen would give `--N`, which breaks the rule
    return base[: MAX_SLUG_LENGTH - len(suffix)].rstrip("-") + suffix


def upgrade() -> None:
    connection = op.get_bind()
    session_types = sa.table("session_types", sa.column("id", sa.Integer), sa.column("slug", sa.String))
    query = sa.select(session_types.c.id, session_types.c.slug).where(session_types.c.slug.is_not(None))
    rows = connection.execute(query.order_by(session_types.c.id)).all()
    taken = {slug for _, slug in rows}
    for type_id, slug in rows:
        if _RULE.match(slug):
            continue
        base = renamed = _conformed(slug)
        number = 1
        while renamed is not None and renamed in taken:
            number += 1
            renamed = _suffixed(base or "", number)
        taken.add(renamed)
        connection.execute(session_types.update().where(session_types.c.id == type_id).values(slug=renamed))
        said = f"is now {renamed!r}" if renamed is not None else "has none now (name it by its id)"
        # told once the run has committed (bapp_cli.db.migration)
        context.config.attributes.setdefault("warnings", []).append(f"session type {type_id}: slug {slug!r} {said}")


def downgrade() -> None:
    # The renamed slugs stay: nothing records what they were, and the old code reads them as well.
    pass

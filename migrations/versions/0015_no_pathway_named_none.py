"""no_pathway_named_none: a pathway called `none` gets a free slug, its badges with it

Revision ID: 0015_no_pathway_named_none
Revises: 0014_session_slug_rule

`none` means "no pathway" in `bookings list --pathway none` and in the reports' rows, so the slug rule
refuses it (in any case, as it reads every slug); an earlier bapp accepted it. Such a pathway becomes
`none-2` (`none-3`, … when that is taken), in id order, as 0014 numbers a clashing session slug, so the
same database always upgrades to the same result; a restore of an old backup gives it the same slug. Its
badges' keys (`tier:none:1`, `pathway:none`) follow it, as they name the pathway by slug. `bapp db
upgrade` says what was renamed.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

revision = "0015_no_pathway_named_none"
down_revision = "0014_session_slug_rule"
branch_labels = None
depends_on = None


def upgrade() -> None:
    connection = op.get_bind()
    pathways = sa.table("pathways", sa.column("id", sa.Integer), sa.column("slug", sa.String))
    badges = sa.table("badges", sa.column("id", sa.Integer), sa.column("key", sa.String))
    rows = connection.execute(sa.select(pathways.c.id, pathways.c.slug).order_by(pathways.c.id)).all()
    taken = {slug for _, slug in rows}
    for pathway_id, slug in rows:
        if slug.strip().lower() != "none":
            continue
        number = 2
        while f"none-{number}" in taken:
            number += 1
        renamed = f"none-{number}"
        taken.add(renamed)
        connection.execute(pathways.update().where(pathways.c.id == pathway_id).values(slug=renamed))
        # badge keys name the pathway as stored: `pathway:<slug>` and `tier:<slug>:<n>` (exact case)
        keys = sa.or_(badges.c.key == f"pathway:{slug}", badges.c.key.startswith(f"tier:{slug}:", autoescape=True))
        for badge_id, key in connection.execute(sa.select(badges.c.id, badges.c.key).where(keys)).all():
            kind, _, rest = key.partition(":")
            if rest == slug or rest.startswith(f"{slug}:"):  # LIKE ignores case on SQLite
                new_key = f"{kind}:{renamed}{rest[len(slug) :]}"
                connection.execute(badges.update().where(badges.c.id == badge_id).values(key=new_key))
        said = f"pathway {slug!r} (id {pathway_id}) is now {renamed!r}: 'none' means no pathway"
        context.config.attributes.setdefault("warnings", []).append(said)  # told once the run has committed


def downgrade() -> None:
    # The renamed pathways stay: the old code reads `none-2` as well, and `none` would only come back to
    # be renamed again by the next upgrade.
    pass

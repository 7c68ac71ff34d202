"""hold_made: a booking held for Calendly records the account and enrolment holding it made

Revision ID: 0016_hold_made
Revises: 0015_no_pathway_named_none

A hold Calendly turns down is removed, and with it the client's account and enrolment the hold made, when
they are still as it left them (changed or used since, they are someone's and stay). The sending process
knew what it made; a `calendly reconcile` that removes the hold later, in another process, did not, and
kept both. ``calendly_hold_made`` records them on the hold (JSON: each as the hold left it). Holds from
before this revision have none, and their removal keeps the account and the enrolment as before.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016_hold_made"
down_revision = "0015_no_pathway_named_none"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # batch mode: SQLite cannot drop columns in place, and the downgrade below must work there too
    with op.batch_alter_table("bookings") as batch:
        batch.add_column(sa.Column("calendly_hold_made", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("bookings") as batch:
        batch.drop_column("calendly_hold_made")

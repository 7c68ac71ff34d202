"""no_show_order: bookings keep the time of the last no-show change applied from Calendly

Revision ID: 0011_no_show_order
Revises: 0010_portable_badges

``invitee_no_show.created`` / ``.deleted`` deliveries do not change the invitee's ``updated_at``, so the
ordering that makes invitee deliveries safe (``remote_updated_at``) cannot order them: a ``.created``
retried by Calendly after its ``.deleted`` would mark the booking again. ``calendly_no_show_at`` holds
the ``created_at`` of the no-show change last applied (or pushed from bapp); an older delivery changes
nothing.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from bapp_cli.db.types import UTCDateTime

revision = "0011_no_show_order"
down_revision = "0010_portable_badges"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # batch mode: SQLite cannot drop columns in place, and the downgrade below must work there too
    with op.batch_alter_table("bookings") as batch:
        batch.add_column(sa.Column("calendly_no_show_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("bookings") as batch:
        batch.drop_column("calendly_no_show_at")

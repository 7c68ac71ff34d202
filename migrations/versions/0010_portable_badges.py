"""portable_badges: a badge can be revoked (when, and why) so its Open Badges credential stops verifying

Revision ID: 0010_portable_badges
Revises: 0006_create_user_skill_progress
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from bapp_cli.db.types import UTCDateTime

revision = "0010_portable_badges"
down_revision = "0009_webhook_inbox"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # batch mode: SQLite cannot drop columns in place, and the downgrade below must work there too
    with op.batch_alter_table("badges") as batch:
        batch.add_column(sa.Column("revoked_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("revocation_reason", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("badges") as batch:
        batch.drop_column("revocation_reason")
        batch.drop_column("revoked_at")

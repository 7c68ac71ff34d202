"""webhook_inbox: deliveries and pulled invitees that could not be applied yet, kept until they are

Revision ID: 0009_webhook_inbox
Revises: 0006_create_user_skill_progress
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from bapp_cli.db.types import UTCDateTime

revision = "0009_webhook_inbox"
down_revision = "0008_calendly_write_through"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event", sa.String(64), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("body_sha256", sa.String(64), nullable=False),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column("invitee_uri", sa.String(500), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_attempt_at", UTCDateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("applied_at", UTCDateTime(), nullable=True),
        sa.Column("outcome", sa.String(200), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_deliveries"),
        sa.UniqueConstraint("body_sha256", name="uq_webhook_deliveries_body_sha256"),
        sa.CheckConstraint("status IN ('pending', 'applied')", name="ck_webhook_deliveries_status"),
        sa.CheckConstraint("source IN ('receiver', 'apply', 'pull')", name="ck_webhook_deliveries_source"),
    )
    op.create_index("ix_webhook_deliveries_invitee_uri", "webhook_deliveries", ["invitee_uri"])
    op.create_index("ix_webhook_deliveries_status", "webhook_deliveries", ["status"])


def downgrade() -> None:
    op.drop_table("webhook_deliveries")

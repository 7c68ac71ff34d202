"""add_booking_enhancements: payment, answers, Calendly links, idempotency, source, cancellation

Revision ID: 0003_add_booking_enhancements
Revises: 0002_add_pathway_tracking
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from bapp_cli.db.types import UTCDateTime

revision = "0003_add_booking_enhancements"
down_revision = "0002_add_pathway_tracking"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("bookings") as batch:
        # server defaults give rows that predate this revision valid values
        batch.add_column(sa.Column("payment_status", sa.String(16), nullable=False, server_default="not_required"))
        batch.add_column(sa.Column("amount", sa.Numeric(10, 2), nullable=False, server_default="0"))
        batch.add_column(sa.Column("currency", sa.String(3), nullable=False, server_default="GBP"))
        batch.add_column(
            sa.Column("custom_question_responses", sa.JSON(), nullable=False, server_default=sa.text("'[]'"))
        )
        batch.add_column(sa.Column("calendly_event_uri", sa.String(500), nullable=True))
        batch.add_column(sa.Column("calendly_invitee_uri", sa.String(500), nullable=True))
        batch.add_column(sa.Column("idempotency_key", sa.String(200), nullable=True))
        batch.add_column(sa.Column("request_fingerprint", sa.String(64), nullable=True))
        batch.add_column(sa.Column("source", sa.String(16), nullable=False, server_default="cli"))
        batch.add_column(sa.Column("cancellation_reason", sa.Text(), nullable=True))
        batch.add_column(sa.Column("cancelled_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("remote_updated_at", UTCDateTime(), nullable=True))
        batch.create_index("ix_bookings_calendly_event_uri", ["calendly_event_uri"])
        batch.create_unique_constraint("uq_bookings_calendly_invitee_uri", ["calendly_invitee_uri"])
        batch.create_unique_constraint("uq_bookings_idempotency_key", ["idempotency_key"])
        batch.create_check_constraint(
            "ck_bookings_payment_status", "payment_status IN ('not_required', 'unpaid', 'paid', 'refunded')"
        )
        batch.create_check_constraint("ck_bookings_source", "source IN ('cli', 'import', 'calendly')")
        batch.create_check_constraint("ck_bookings_amount_non_negative", "amount >= 0")


def downgrade() -> None:
    with op.batch_alter_table("bookings") as batch:
        batch.drop_constraint("ck_bookings_amount_non_negative", type_="check")
        batch.drop_constraint("ck_bookings_source", type_="check")
        batch.drop_constraint("ck_bookings_payment_status", type_="check")
        batch.drop_constraint("uq_bookings_idempotency_key", type_="unique")
        batch.drop_constraint("uq_bookings_calendly_invitee_uri", type_="unique")
        batch.drop_index("ix_bookings_calendly_event_uri")
        for column in (
            "remote_updated_at",
            "cancelled_at",
            "cancellation_reason",
            "source",
            "request_fingerprint",
            "idempotency_key",
            "calendly_invitee_uri",
            "calendly_event_uri",
            "custom_question_responses",
            "currency",
            "amount",
            "payment_status",
        ):
            batch.drop_column(column)

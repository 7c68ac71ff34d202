"""calendly_write_through: bookings made in Calendly hold their intent; single-use scheduling links

Revision ID: 0008_calendly_write_through
Revises: 0006_create_user_skill_progress

A booking sent to Calendly is committed first with ``calendly_state = 'requested'`` and the number of
``POST /invitees`` sent so far (``calendly_attempts``, raised *before* each send): after a lost answer or a
killed process, ``calendly reconcile`` knows a request may have reached Calendly and looks it up instead of
resending blindly. ``calendly_invitations`` records the single-use links of ``bookings link``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from bapp_cli.db.types import UTCDateTime

revision = "0008_calendly_write_through"
down_revision = "0007_unique_session_slugs"
branch_labels = None
depends_on = None

_STATES = "calendly_state IS NULL OR calendly_state IN ('requested', 'unknown', 'booked', 'failed')"


def upgrade() -> None:
    with op.batch_alter_table("bookings") as batch:
        batch.add_column(sa.Column("calendly_state", sa.String(16), nullable=True))
        batch.add_column(sa.Column("calendly_attempts", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("calendly_requested_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("calendly_cancel_url", sa.String(500), nullable=True))
        batch.add_column(sa.Column("calendly_reschedule_url", sa.String(500), nullable=True))
        batch.add_column(sa.Column("calendly_join_url", sa.String(500), nullable=True))
        batch.add_column(sa.Column("calendly_no_show_uri", sa.String(500), nullable=True))
        batch.create_check_constraint("ck_bookings_calendly_state", _STATES)
        batch.create_index("ix_bookings_calendly_state", ["calendly_state"])
    op.create_table(
        "calendly_invitations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("session_type_id", sa.Integer(), nullable=False),
        sa.Column("booking_url", sa.String(500), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("booking_id", sa.Integer(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_calendly_invitations"),
        sa.ForeignKeyConstraint(["client_id"], ["users.id"], name="fk_calendly_invitations_client_id_users"),
        sa.ForeignKeyConstraint(
            ["session_type_id"], ["session_types.id"], name="fk_calendly_invitations_session_type_id_session_types"
        ),
        sa.ForeignKeyConstraint(["booking_id"], ["bookings.id"], name="fk_calendly_invitations_booking_id_bookings"),
        sa.UniqueConstraint("booking_url", name="uq_calendly_invitations_booking_url"),
        sa.CheckConstraint("status IN ('open', 'used')", name="ck_calendly_invitations_status"),
    )
    op.create_index("ix_calendly_invitations_client_status", "calendly_invitations", ["client_id", "status"])


def downgrade() -> None:
    op.drop_index("ix_calendly_invitations_client_status", table_name="calendly_invitations")
    op.drop_table("calendly_invitations")
    with op.batch_alter_table("bookings") as batch:
        batch.drop_index("ix_bookings_calendly_state")
        batch.drop_constraint("ck_bookings_calendly_state", type_="check")
        batch.drop_column("calendly_no_show_uri")
        batch.drop_column("calendly_join_url")
        batch.drop_column("calendly_reschedule_url")
        batch.drop_column("calendly_cancel_url")
        batch.drop_column("calendly_requested_at")
        batch.drop_column("calendly_attempts")
        batch.drop_column("calendly_state")

"""baseline: people, session types, bookings, sync runs and the audit trail

Revision ID: 0001_baseline
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from bapp_cli.db.types import UTCDateTime

revision = "0001_baseline"
down_revision = None
branch_labels = None
depends_on = None


def _timestamps() -> list[sa.Column]:  # type: ignore[type-arg]
    return [
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("name", sa.String(200), nullable=True),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("email", name="uq_users_email"),
    )
    op.create_table(
        "client_profiles",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("company", sa.String(200), nullable=True),
        sa.Column("industry", sa.String(200), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_client_profiles"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_client_profiles_user_id_users"),
        sa.UniqueConstraint("user_id", name="uq_client_profiles_user_id"),
    )
    op.create_table(
        "builder_profiles",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("display_name", sa.String(200), nullable=True),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("calendly_user_uri", sa.String(500), nullable=True),
        sa.Column("buffer_minutes", sa.Integer(), nullable=False),
        sa.Column("minimum_notice_hours", sa.Integer(), nullable=False),
        sa.Column("max_advance_days", sa.Integer(), nullable=True),
        sa.Column("accepting_bookings", sa.Boolean(), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name="pk_builder_profiles"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_builder_profiles_user_id_users"),
        sa.UniqueConstraint("user_id", name="uq_builder_profiles_user_id"),
        sa.UniqueConstraint("calendly_user_uri", name="uq_builder_profiles_calendly_user_uri"),
        sa.CheckConstraint("buffer_minutes >= 0", name="ck_builder_profiles_buffer_minutes_non_negative"),
        sa.CheckConstraint("minimum_notice_hours >= 0", name="ck_builder_profiles_minimum_notice_non_negative"),
        sa.CheckConstraint(
            "max_advance_days IS NULL OR max_advance_days > 0", name="ck_builder_profiles_max_advance_positive"
        ),
    )
    op.create_table(
        "session_types",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("calendly_uri", sa.String(500), nullable=True),
        sa.Column("slug", sa.String(200), nullable=True),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("duration_minutes", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("color", sa.String(7), nullable=True),
        sa.Column("scheduling_url", sa.String(500), nullable=True),
        sa.Column("is_secret", sa.Boolean(), nullable=False),
        sa.Column("remote_active", sa.Boolean(), nullable=False),
        sa.Column("owner_uri", sa.String(500), nullable=True),
        sa.Column("builder_id", sa.Integer(), nullable=True),
        sa.Column("calendly_position", sa.Integer(), nullable=True),
        sa.Column("remote_updated_at", UTCDateTime(), nullable=True),
        sa.Column("remote_deleted_at", UTCDateTime(), nullable=True),
        sa.Column("present_in_last_sync", sa.Boolean(), nullable=False),
        sa.Column("last_synced_at", UTCDateTime(), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name="pk_session_types"),
        sa.ForeignKeyConstraint(["builder_id"], ["users.id"], name="fk_session_types_builder_id_users"),
        sa.UniqueConstraint("calendly_uri", name="uq_session_types_calendly_uri"),
        sa.CheckConstraint("kind IN ('solo', 'group')", name="ck_session_types_kind"),
        sa.CheckConstraint("duration_minutes > 0", name="ck_session_types_duration_positive"),
    )
    op.create_index("ix_session_types_slug", "session_types", ["slug"])
    op.create_index("ix_session_types_builder_id", "session_types", ["builder_id"])
    op.create_table(
        "bookings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reference", sa.String(16), nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("builder_id", sa.Integer(), nullable=True),
        sa.Column("session_type_id", sa.Integer(), nullable=False),
        sa.Column("start_time", UTCDateTime(), nullable=False),
        sa.Column("end_time", UTCDateTime(), nullable=False),
        sa.Column("client_timezone", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name="pk_bookings"),
        sa.ForeignKeyConstraint(["client_id"], ["users.id"], name="fk_bookings_client_id_users"),
        sa.ForeignKeyConstraint(["builder_id"], ["users.id"], name="fk_bookings_builder_id_users"),
        sa.ForeignKeyConstraint(
            ["session_type_id"], ["session_types.id"], name="fk_bookings_session_type_id_session_types"
        ),
        sa.UniqueConstraint("reference", name="uq_bookings_reference"),
        sa.CheckConstraint(
            "status IN ('pending', 'confirmed', 'completed', 'cancelled', 'no_show')", name="ck_bookings_status"
        ),
        sa.CheckConstraint("end_time > start_time", name="ck_bookings_end_after_start"),
    )
    op.create_index("ix_bookings_builder_time", "bookings", ["builder_id", "start_time"])
    op.create_index("ix_bookings_client_time", "bookings", ["client_id", "start_time"])
    op.create_index("ix_bookings_session_time", "bookings", ["session_type_id", "start_time"])
    op.create_index("ix_bookings_start_time", "bookings", ["start_time"])
    op.create_table(
        "sync_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("fetched", sa.Integer(), nullable=False),
        sa.Column("created", sa.Integer(), nullable=False),
        sa.Column("updated", sa.Integer(), nullable=False),
        sa.Column("unchanged", sa.Integer(), nullable=False),
        sa.Column("deactivated", sa.Integer(), nullable=False),
        sa.Column("reactivated", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_sync_runs"),
        sa.CheckConstraint("kind IN ('event_types', 'bookings')", name="ck_sync_runs_kind"),
        sa.CheckConstraint("status IN ('running', 'succeeded', 'failed')", name="ck_sync_runs_status"),
    )
    op.create_index("ix_sync_runs_started_at", "sync_runs", ["started_at"])
    op.create_table(
        "audit_entries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("command", sa.String(200), nullable=False),
        sa.Column("entity", sa.String(64), nullable=False),
        sa.Column("entity_key", sa.String(500), nullable=True),
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_entries"),
    )
    op.create_index("ix_audit_entries_at", "audit_entries", ["at"])


def downgrade() -> None:
    op.drop_table("audit_entries")
    op.drop_table("sync_runs")
    op.drop_table("bookings")
    op.drop_table("session_types")
    op.drop_table("builder_profiles")
    op.drop_table("client_profiles")
    op.drop_table("users")

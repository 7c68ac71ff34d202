"""create_user_skill_progress: per-client skill progress and permanent badges

Revision ID: 0006_create_user_skill_progress
Revises: 0005_add_skill_enhancements
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from bapp_cli.db.types import UTCDateTime

revision = "0006_create_user_skill_progress"
down_revision = "0005_add_skill_enhancements"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "user_skill_progress",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("skill_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=True),
        sa.Column("completed_at", UTCDateTime(), nullable=True),
        sa.Column("completion_method", sa.String(32), nullable=True),
        sa.Column("validated_by_id", sa.Integer(), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_attempt_at", UTCDateTime(), nullable=True),
        sa.Column("pathway_id", sa.Integer(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_user_skill_progress"),
        sa.ForeignKeyConstraint(["client_id"], ["users.id"], name="fk_user_skill_progress_client_id_users"),
        sa.ForeignKeyConstraint(["skill_id"], ["skills.id"], name="fk_user_skill_progress_skill_id_skills"),
        sa.ForeignKeyConstraint(["validated_by_id"], ["users.id"], name="fk_user_skill_progress_validated_by_id_users"),
        sa.ForeignKeyConstraint(["pathway_id"], ["pathways.id"], name="fk_user_skill_progress_pathway_id_pathways"),
        sa.UniqueConstraint("client_id", "skill_id", name="uq_user_skill_progress_client_id_skill_id"),
        sa.CheckConstraint(
            "status IN ('not_started', 'in_progress', 'completed')", name="ck_user_skill_progress_status"
        ),
        sa.CheckConstraint(
            "completion_method IS NULL OR completion_method IN ('manual', 'assessment', 'builder_validation', 'auto')",
            name="ck_user_skill_progress_completion_method",
        ),
        sa.CheckConstraint("attempts >= 0", name="ck_user_skill_progress_attempts_non_negative"),
    )
    op.create_index("ix_user_skill_progress_skill_status", "user_skill_progress", ["skill_id", "status"])
    op.create_table(
        "badges",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(100), nullable=False),
        sa.Column("awarded_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_badges"),
        sa.ForeignKeyConstraint(["client_id"], ["users.id"], name="fk_badges_client_id_users"),
        sa.UniqueConstraint("client_id", "key", name="uq_badges_client_id_key"),
    )


def downgrade() -> None:
    op.drop_table("badges")
    op.drop_table("user_skill_progress")

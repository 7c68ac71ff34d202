"""add_pathway_tracking: pathways, their tiers, enrolments, and the three default pathways

Revision ID: 0002_add_pathway_tracking
Revises: 0001_baseline
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from alembic import op

from bapp_cli.db.types import UTCDateTime

revision = "0002_add_pathway_tracking"
down_revision = "0001_baseline"
branch_labels = None
depends_on = None

# The pathways that ship by default: Accelerate, Pivot and Play, three tiers each.
DEFAULT_PATHWAYS = [
    (
        "accelerate",
        "Accelerate",
        "Fast-track your AI implementation journey with focused, intensive learning",
        "🚀",
        "#10B981",
        [
            ("Foundation", "Build a solid foundation in AI concepts and tools"),
            ("Application", "Apply AI tools to real-world scenarios"),
            ("Mastery", "Master advanced AI techniques and strategies"),
        ],
    ),
    (
        "pivot",
        "Pivot",
        "Transition your career or business model to leverage AI opportunities",
        "🔄",
        "#3B82F6",
        [
            ("Assessment", "Assess your current skills and identify gaps"),
            ("Transition", "Build new skills while leveraging existing strengths"),
            ("Integration", "Integrate AI into your professional identity"),
        ],
    ),
    (
        "play",
        "Play",
        "Explore AI through creative experimentation and playful discovery",
        "🎨",
        "#8B5CF6",
        [
            ("Exploration", "Explore AI tools through fun experiments"),
            ("Creation", "Create projects that inspire and engage"),
            ("Innovation", "Push boundaries with innovative AI applications"),
        ],
    ),
]


def upgrade() -> None:
    pathways = op.create_table(
        "pathways",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(64), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("icon", sa.String(16), nullable=True),
        sa.Column("color", sa.String(7), nullable=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("archived", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_pathways"),
        sa.UniqueConstraint("slug", name="uq_pathways_slug"),
    )
    tiers = op.create_table(
        "pathway_tiers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("pathway_id", sa.Integer(), nullable=False),
        sa.Column("tier", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_pathway_tiers"),
        sa.ForeignKeyConstraint(["pathway_id"], ["pathways.id"], name="fk_pathway_tiers_pathway_id_pathways"),
        sa.UniqueConstraint("pathway_id", "tier", name="uq_pathway_tiers_pathway_id_tier"),
        sa.CheckConstraint("tier >= 1", name="ck_pathway_tiers_tier_positive"),
    )
    op.create_table(
        "enrolments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("pathway_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("completed_at", UTCDateTime(), nullable=True),
        sa.Column("builder_id", sa.Integer(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_enrolments"),
        sa.ForeignKeyConstraint(["client_id"], ["users.id"], name="fk_enrolments_client_id_users"),
        sa.ForeignKeyConstraint(["pathway_id"], ["pathways.id"], name="fk_enrolments_pathway_id_pathways"),
        sa.ForeignKeyConstraint(["builder_id"], ["users.id"], name="fk_enrolments_builder_id_users"),
        sa.UniqueConstraint("client_id", "pathway_id", name="uq_enrolments_client_id_pathway_id"),
        sa.CheckConstraint("status IN ('active', 'paused', 'completed')", name="ck_enrolments_status"),
    )
    op.create_index("ix_enrolments_pathway_status", "enrolments", ["pathway_id", "status"])
    op.create_index("ix_enrolments_builder_id", "enrolments", ["builder_id"])

    with op.batch_alter_table("bookings") as batch:
        batch.add_column(sa.Column("pathway_id", sa.Integer(), nullable=True))
        batch.create_foreign_key("fk_bookings_pathway_id_pathways", "pathways", ["pathway_id"], ["id"])
        batch.create_index("ix_bookings_pathway_time", ["pathway_id", "start_time"])

    now = dt.datetime.now(dt.UTC)
    for position, (slug, name, description, icon, color, tier_rows) in enumerate(DEFAULT_PATHWAYS):
        pathway_id = position + 1
        op.bulk_insert(
            pathways,
            [
                {
                    "id": pathway_id,
                    "slug": slug,
                    "name": name,
                    "description": description,
                    "icon": icon,
                    "color": color,
                    "position": position,
                    "archived": False,
                    "created_at": now,
                    "updated_at": now,
                }
            ],
        )
        op.bulk_insert(
            tiers,
            [
                {"pathway_id": pathway_id, "tier": number, "name": tier_name, "description": tier_description}
                for number, (tier_name, tier_description) in enumerate(tier_rows, start=1)
            ],
        )
    if op.get_bind().dialect.name == "postgresql":
        # explicit ids above do not advance the identity sequence
        op.execute("SELECT setval(pg_get_serial_sequence('pathways', 'id'), (SELECT MAX(id) FROM pathways))")


def downgrade() -> None:
    with op.batch_alter_table("bookings") as batch:
        batch.drop_index("ix_bookings_pathway_time")
        batch.drop_constraint("fk_bookings_pathway_id_pathways", type_="foreignkey")
        batch.drop_column("pathway_id")
    op.drop_table("enrolments")
    op.drop_table("pathway_tiers")
    op.drop_table("pathways")

"""add_skill_enhancements: skills with domain and fundamental flag, linked to pathway tiers

Revision ID: 0005_add_skill_enhancements
Revises: 0004_session_type_enhancements
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from bapp_cli.db.types import UTCDateTime

revision = "0005_add_skill_enhancements"
down_revision = "0004_session_type_enhancements"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "skills",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(100), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("domain", sa.String(100), nullable=True),
        sa.Column("is_fundamental", sa.Boolean(), nullable=False),
        sa.Column("archived", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_skills"),
        sa.UniqueConstraint("slug", name="uq_skills_slug"),
    )
    op.create_table(
        "skill_pathway_links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("skill_id", sa.Integer(), nullable=False),
        sa.Column("pathway_id", sa.Integer(), nullable=False),
        sa.Column("tier", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_skill_pathway_links"),
        sa.ForeignKeyConstraint(["skill_id"], ["skills.id"], name="fk_skill_pathway_links_skill_id_skills"),
        sa.ForeignKeyConstraint(["pathway_id"], ["pathways.id"], name="fk_skill_pathway_links_pathway_id_pathways"),
        sa.ForeignKeyConstraint(
            ["pathway_id", "tier"],
            ["pathway_tiers.pathway_id", "pathway_tiers.tier"],
            name="fk_skill_pathway_links_pathway_tier",
        ),
        sa.UniqueConstraint("skill_id", "pathway_id", name="uq_skill_pathway_links_skill_id_pathway_id"),
    )
    op.create_index("ix_skill_pathway_links_pathway_tier", "skill_pathway_links", ["pathway_id", "tier"])


def downgrade() -> None:
    op.drop_table("skill_pathway_links")
    op.drop_table("skills")

"""add_session_type_enhancements: curated category, auth, price, order, questions, pathway links

Revision ID: 0004_session_type_enhancements
Revises: 0003_add_booking_enhancements
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_session_type_enhancements"
down_revision = "0003_add_booking_enhancements"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("session_types") as batch:
        batch.add_column(sa.Column("duration_options", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("custom_questions", sa.JSON(), nullable=False, server_default=sa.text("'[]'")))
        batch.add_column(sa.Column("invitee_limit", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("category", sa.String(16), nullable=False, server_default="specialized"))
        batch.add_column(sa.Column("requires_auth", sa.Boolean(), nullable=False, server_default=sa.true()))
        batch.add_column(sa.Column("price", sa.Numeric(10, 2), nullable=False, server_default="0"))
        batch.add_column(sa.Column("currency", sa.String(3), nullable=False, server_default="GBP"))
        batch.add_column(sa.Column("display_order", sa.Integer(), nullable=False, server_default="0"))
        batch.create_check_constraint("ck_session_types_category", "category IN ('free', 'pathway', 'specialized')")
        batch.create_check_constraint("ck_session_types_price_non_negative", "price >= 0")
        batch.create_index("ix_session_types_bookable_order", ["category", "display_order"])
    op.create_table(
        "session_type_pathways",
        sa.Column("session_type_id", sa.Integer(), nullable=False),
        sa.Column("pathway_id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("session_type_id", "pathway_id", name="pk_session_type_pathways"),
        sa.ForeignKeyConstraint(
            ["session_type_id"], ["session_types.id"], name="fk_session_type_pathways_session_type_id_session_types"
        ),
        sa.ForeignKeyConstraint(["pathway_id"], ["pathways.id"], name="fk_session_type_pathways_pathway_id_pathways"),
    )
    op.create_index("ix_session_type_pathways_pathway_id", "session_type_pathways", ["pathway_id"])


def downgrade() -> None:
    op.drop_table("session_type_pathways")
    with op.batch_alter_table("session_types") as batch:
        batch.drop_index("ix_session_types_bookable_order")
        batch.drop_constraint("ck_session_types_price_non_negative", type_="check")
        batch.drop_constraint("ck_session_types_category", type_="check")
        for column in (
            "display_order",
            "currency",
            "price",
            "requires_auth",
            "category",
            "invitee_limit",
            "custom_questions",
            "duration_options",
        ):
            batch.drop_column(column)

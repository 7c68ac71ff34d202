"""partial_booking_indexes: the bookings indexes on Calendly's and the idempotency columns skip NULLs

Revision ID: 0012_partial_booking_indexes
Revises: 0011_no_show_order

Most bookings never have a Calendly event or invitee URI, an idempotency key or a write-through state
(every imported one, every booking made at the terminal without a key), yet each of them took an entry in
the four indexes on those columns. Partial indexes (``WHERE column IS NOT NULL``) hold only the rows that
have a value: an import writes no entry in them, and the lookups by value (a webhook or pull by invitee
URI, an idempotency key, the write-through rows to reconcile) use them as before. A partial UNIQUE index
keeps the columns unique wherever they have a value, as the unique constraints did (NULLs never clashed).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_partial_booking_indexes"
down_revision = "0011_no_show_order"
branch_labels = None
depends_on = None

# index name → (column, unique)
_INDEXES = {
    "ix_bookings_calendly_event_uri": ("calendly_event_uri", False),
    "uq_bookings_calendly_invitee_uri": ("calendly_invitee_uri", True),
    "uq_bookings_idempotency_key": ("idempotency_key", True),
    "ix_bookings_calendly_state": ("calendly_state", False),
}


def upgrade() -> None:
    # batch mode: SQLite drops a unique constraint only by rebuilding the table
    with op.batch_alter_table("bookings") as batch:
        for name, (_, unique) in _INDEXES.items():
            if unique:
                batch.drop_constraint(name, type_="unique")
            else:
                batch.drop_index(name)
    for name, (column, unique) in _INDEXES.items():
        where = sa.text(f"{column} IS NOT NULL")
        op.create_index(name, "bookings", [column], unique=unique, sqlite_where=where, postgresql_where=where)


def downgrade() -> None:
    for name in _INDEXES:
        op.drop_index(name, table_name="bookings")
    with op.batch_alter_table("bookings") as batch:
        for name, (column, unique) in _INDEXES.items():
            if unique:
                batch.create_unique_constraint(name, [column])
            else:
                batch.create_index(name, [column])

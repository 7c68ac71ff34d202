"""audit_entity_index: the audit log is read by entity and key, newest first, through an index

Revision ID: 0020_audit_entity_index
Revises: 0019_names_in_nfc

`bookings no-show --undo` and Calendly's deletion of a no-show mark read the status a booking had before
from its audit rows (db.audit.moved_from: `WHERE entity = ? AND entity_key = ? ORDER BY id DESC`). The
audit log had no index but its time's, so each such read walked the whole log, which only ever grows: at
100,000 rows 12-46 ms on SQLite and 23-27 ms on PostgreSQL, 0.3-0.5 ms through this index. It holds (entity,
entity_key, id): the two compared, then the order read, so PostgreSQL walks one key's entries backwards with
no sort (SQLite keeps the rowid, the id, in every index anyway). Not partial: the rows without a key are few
(an import's, a sync's), and moved_from reads any entity's rows. Each audit row written costs an index entry
(100,000 rows: 0.2 s more CPU on SQLite, none measurable on PostgreSQL), and a command writes one or a few.
"""

from __future__ import annotations

from alembic import op

revision = "0020_audit_entity_index"
down_revision = "0019_names_in_nfc"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_audit_entries_entity_key", "audit_entries", ["entity", "entity_key", "id"])


def downgrade() -> None:
    op.drop_index("ix_audit_entries_entity_key", table_name="audit_entries")

"""names_in_nfc: the names and titles an earlier bapp stored with combining accents are rewritten in NFC

Revision ID: 0019_names_in_nfc
Revises: 0018_checks_without_in_lists

Every door stores a name or title in NFC now (services.plain_text.name_text): `Café` typed as `Cafe` + U+0301
(NFD, as macOS file names and some keyboards give it) is stored as the `Café` the web and Calendly send, and a
`--search` term is read in NFC. An earlier bapp stored such a name as typed, so `pathways list --search café`
did not find it and an export held two spellings of one name. The alternative, a search that compares both
spellings, needs the text normalised in SQL: PostgreSQL's normalize() at every row of every search, and on
SQLite a Python function per row; and the exports would still hold two spellings. So the names are rewritten
once, here: lossless for what they say (NFC and NFD read alike), and no column rewritten is unique. Only rows
whose text changes are written; `updated_at` stays, the name being the same. A name whose NFC form is longer
than its column (a few rare characters decompose under NFC) stays as it is: PostgreSQL would refuse it.
"""

from __future__ import annotations

import unicodedata

import sqlalchemy as sa
from alembic import op

revision = "0019_names_in_nfc"
down_revision = "0018_checks_without_in_lists"
branch_labels = None
depends_on = None

# table → its name columns and their lengths, as the models have them at this revision
_NAMES = {
    "users": {"name": 200},
    "client_profiles": {"company": 200, "industry": 200},
    "builder_profiles": {"display_name": 200},
    "pathways": {"name": 100},
    "pathway_tiers": {"name": 100},
    "skills": {"name": 200, "domain": 100},
    "session_types": {"title": 300},
}


def upgrade() -> None:
    connection = op.get_bind()
    for name, columns in _NAMES.items():
        table = sa.table(name, sa.column("id", sa.Integer), *(sa.column(column, sa.String) for column in columns))
        changed = []
        for row in connection.execute(sa.select(table).order_by(table.c.id)).mappings():
            values = {column: row[column] and unicodedata.normalize("NFC", row[column]) for column in columns}
            values = {
                column: value
                for column, value in values.items()
                if value != row[column] and len(value) <= columns[column]
            }
            if values:
                changed.append({"key": row["id"], **values})
        for values in changed:  # few: most names are typed in NFC, as the web and Calendly send them
            key = values.pop("key")
            connection.execute(table.update().where(table.c.id == key).values(**values))


def downgrade() -> None:
    # The names stay in NFC: an earlier bapp reads them as it reads a name typed so.
    pass

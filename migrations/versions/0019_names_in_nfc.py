"""names_in_nfc: the names and titles an earlier bapp stored with combining accents are rewritten in NFC

Revision ID: 0019_names_in_nfc
Revises: 0018_checks_without_in_lists

Every door stores a name or title in NFC now (services.plain_text.nfc): `Café` typed as `Cafe` + U+0301
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


# rows read and written at a time: a big database's names are not all held at once (a client-side cursor on
# PostgreSQL would hold every row read), and the rows to rewrite go in one statement per batch, not one each
_BATCH = 10_000


def upgrade() -> None:
    connection = op.get_bind()
    for name, columns in _NAMES.items():
        table = sa.table(name, sa.column("id", sa.Integer), *(sa.column(column, sa.String) for column in columns))
        page = sa.select(table).order_by(table.c.id).limit(_BATCH)
        # "new_…": a bindparam may not share its column's name in an UPDATE's SET
        rewrite = table.update().where(table.c.id == sa.bindparam("key"))
        rewrite = rewrite.values({column: sa.bindparam(f"new_{column}") for column in columns})
        rows = connection.execute(page).mappings().all()
        while rows:
            changed = []
            for row in rows:
                values = {column: _in_nfc(row[column], length) for column, length in columns.items()}
                if any(values[column] != row[column] for column in columns):
                    changed.append({"key": row["id"], **{f"new_{column}": value for column, value in values.items()}})
            if changed:
                connection.execute(rewrite, changed)
            rows = connection.execute(page.where(table.c.id > rows[-1]["id"])).mappings().all()


def _in_nfc(text: str | None, length: int) -> str | None:
    """`text` in NFC; as it is when that would not fit its column of `length`."""
    written = text and unicodedata.normalize("NFC", text)
    return written if written is None or len(written) <= length else text


def downgrade() -> None:
    # The names stay in NFC: an earlier bapp reads them as it reads a name typed so.
    pass

"""The SQL that makes a text cell spreadsheet-safe (db.dbapi.Database.spreadsheet_safe, used by the CSV/TSV
listings and exports) writes exactly what services.spreadsheet.neutralise writes, on both backends: its quick
first test must never let a formula through, nor mark a harmless cell."""

from __future__ import annotations

from sqlalchemy.orm import Session

from bapp_cli.db.dbapi import Database
from bapp_cli.services.spreadsheet import FORMULA_TRIGGERS, neutralise

# every trigger alone, after apostrophes and before text; the characters on either side of the quick test's
# bound ("A") and of each trigger; letters, digits, other scripts, the empty text
TEXTS = [
    *(prefix + trigger + tail for trigger in FORMULA_TRIGGERS for prefix in ("", "'", "'''") for tail in ("", "1+1")),
    *"?>[`~ !#$%&()*,./0:;<AZaz'",
    "'",
    "''",
    "'x",
    "x=1",
    " =1",
    "Zoë",
    "éclair",
    "漢字",
    "ascii@example.com",
    "-5",
    "",
]


def test_the_sql_neutralises_as_the_python_does(session: Session) -> None:
    db = Database.of_session(session)
    safe = db.spreadsheet_safe("CAST(:text AS TEXT)")
    for value in TEXTS:
        assert db.one(f"SELECT {safe}", {"text": value}) == (neutralise(value),), repr(value)
    assert db.one(f"SELECT {safe}", {"text": None}) == (None,)

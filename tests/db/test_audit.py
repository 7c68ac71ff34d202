"""Audit rows: the bulk writer stores exactly what the one-row writer stores, on both backends."""

from __future__ import annotations

import datetime as dt
import decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from bapp_cli.db.audit import MAX_VALUE_LENGTH, record_audit, record_audits
from bapp_cli.db.models import AuditEntry


def test_record_audits_writes_record_audits_rows(session: Session) -> None:
    changes = {
        "at": dt.datetime(2030, 1, 15, 9, 30, tzinfo=dt.UTC),
        "fee": decimal.Decimal("12.50"),
        "note": "x" * (MAX_VALUE_LENGTH + 20),
        "tags": list(range(60)),
    }
    record_audit(session, "badge", "one", changes)
    record_audit(session, "badge", None)
    session.flush()
    assert record_audits(session, "badge", [("one", changes), (None, None)]) == 2
    assert record_audits(session, "badge", []) == 0

    rows = [
        (entry.actor, entry.command, entry.entity, entry.entity_key, entry.changes, entry.at is not None)
        for entry in session.scalars(select(AuditEntry).order_by(AuditEntry.id))
    ]
    assert rows[:2] == rows[2:]
    assert rows[0][:4] == ("test", "pytest", "badge", "one")
    assert rows[0][4]["note"].endswith("…") and len(rows[0][4]["tags"]) == 50 and rows[0][4]["fee"] == "12.50"
    assert rows[1][3:5] == (None, {})

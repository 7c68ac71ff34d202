"""Audit rows: the bulk writer stores exactly what the one-row writer stores, on both backends."""

from __future__ import annotations

import datetime as dt
import decimal
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from bapp_cli.db.audit import MAX_VALUE_LENGTH, moved_from, record_audit, record_audits
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


def test_moved_from_reads_one_keys_rows_through_the_index_in_its_order(session: Session) -> None:
    """`bookings no-show --undo` reads the booking's audit rows (db.audit.moved_from): through the index on
    (entity, entity_key, id), newest first with no sort, not a scan of the whole log (migration 0020)."""
    record_audit(session, "booking", "BK-1", {"status": ["confirmed", "no_show"]})
    record_audit(session, "booking", "BK-2", {"status": ["pending", "confirmed"]})
    session.flush()
    connection = session.connection()
    statements: list[tuple[str, Any]] = []

    def seen(_connection: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        statements.append((statement, parameters))

    event.listen(connection, "before_cursor_execute", seen)
    try:
        assert moved_from(session, "booking", "BK-1", "status", to="no_show") == "confirmed"
    finally:
        event.remove(connection, "before_cursor_execute", seen)
    ((statement, parameters),) = statements
    if connection.dialect.name == "sqlite":
        plan = " ".join(
            str(row[-1]) for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
        )
        assert "USING INDEX ix_audit_entries_entity_key" in plan and "TEMP B-TREE" not in plan, plan
    else:
        # a two-row table is cheaper to scan: forbid that, so the plan shows whether the index serves the read
        connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
        plan = " ".join(row[0] for row in connection.exec_driver_sql(f"EXPLAIN {statement}", parameters))
        assert "Index Scan Backward using ix_audit_entries_entity_key" in plan and "Sort" not in plan, plan

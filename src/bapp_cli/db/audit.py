"""Audit rows: every mutating command writes one, in its own transaction, and they are never deleted."""

from __future__ import annotations

import datetime as dt
import decimal
import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # a Calendly sync writes its audit row without SQLAlchemy (record_audit_plain)
    from sqlalchemy.orm import Session

    from bapp_cli.db.dbapi import Transaction

MAX_VALUE_LENGTH = 500


def _compact(value: Any) -> Any:
    """Keep audit JSON short and serialisable."""
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, str) and len(value) > MAX_VALUE_LENGTH:
        return value[:MAX_VALUE_LENGTH] + "…"
    if isinstance(value, dict):
        return {str(k): _compact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_compact(v) for v in value[:50]]
    return value


def apply_changes(target: Any, wanted: dict[str, Any]) -> dict[str, Any]:
    """Set each attribute of `target` that `wanted` changes; returns {attribute: [old, new]}, an audit row's
    changes (empty when every value was already so)."""
    changes = {name: [getattr(target, name), value] for name, value in wanted.items() if getattr(target, name) != value}
    for name, (_, value) in changes.items():
        setattr(target, name, value)
    return changes


def _row(session: Session, entity: str, key: str | None, changes: dict[str, Any] | None) -> dict[str, Any]:
    return _values(
        str(session.info.get("actor", "unknown")), str(session.info.get("command", "")), entity, key, changes
    )


def _values(actor: str, command: str, entity: str, key: str | None, changes: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "actor": actor,
        "command": command,
        "entity": entity,
        "entity_key": key,
        "changes": _compact(changes or {}),
    }


def record_audit(session: Session, entity: str, key: str | None, changes: dict[str, Any] | None = None) -> None:
    """Add an audit row to the session's transaction; actor and command come from the unit of work."""
    from bapp_cli.db.models import AuditEntry

    session.add(AuditEntry(**_row(session, entity, key, changes)))


def stamp_and_audit(
    session: Session, row: Any, entity: str, key: str, changes: dict[str, Any], *, now: dt.datetime
) -> None:
    """Stamp a changed row's `updated_at`, flush it (its record is read next, often in plain SQL) and audit
    the change: the end of every catalogue and booking edit."""
    row.updated_at = now
    session.flush()
    record_audit(session, entity, key, changes)


def record_audits(session: Session, entity: str, entries: Iterable[tuple[str | None, dict[str, Any] | None]]) -> int:
    """`record_audit` for many (key, changes) of one entity at once: one INSERT (executemany), same rows.

    For set-based writers that would otherwise add an ORM object per row; returns the number of rows.
    """
    from sqlalchemy import insert

    from bapp_cli.db.models import AuditEntry

    rows = [_row(session, entity, key, changes) for key, changes in entries]
    if rows:
        session.execute(insert(AuditEntry), rows)
    return len(rows)


def moved_from(session: Session, entity: str, key: str, name: str, *, to: str) -> str:
    """The value `name` had before the newest audit row of `entity` `key` that moved it (recorded as [old, new], as
    `apply_changes` gives it), if that move took it `to`; else "". Read newest first, row by row, through the index on
    (entity, entity_key, id) (migration 0020): the key's rows alone, in that order, however long the log."""
    from sqlalchemy import select

    from bapp_cli.db.models import AuditEntry

    rows = select(AuditEntry.changes).filter_by(entity=entity, entity_key=key).order_by(AuditEntry.id.desc())
    for changes in session.scalars(rows):
        # a row's JSON as stored, whatever it holds: a value not shaped so is no move
        if isinstance(changes, dict) and isinstance(moved := changes.get(name), list) and len(moved) == 2:
            return str(moved[0]) if moved[1] == to else ""
    return ""


def record_audit_plain(
    transaction: Transaction, entity: str, key: str | None, changes: dict[str, Any], *, at: dt.datetime
) -> None:
    """`record_audit` on a plain write transaction (a Calendly sync's): the same row, its JSON as the ORM
    writes it (json.dumps)."""
    row = _values(transaction.actor, transaction.command, entity, key, changes)
    transaction.insert("audit_entries", {**row, "changes": json.dumps(row["changes"]), "at": at})

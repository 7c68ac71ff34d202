"""db.bulk, the set-based writer of the sync and the imports, on both backends.

Its promise: rows it writes read back (and, on SQLite, are stored) exactly like rows the ORM writes, in
the session's own transaction, and it refuses what the ORM's types refuse.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, cast

import pytest
from sqlalchemy import Table, event, select, text
from sqlalchemy.exc import StatementError
from sqlalchemy.orm import Session

from bapp_cli.db import bulk
from bapp_cli.db.models import SessionType

SESSION_TYPES = cast(Table, SessionType.__table__)
WHEN = dt.datetime(2030, 3, 4, 5, 6, 7, 891011, tzinfo=dt.UTC)
COLUMNS = (
    "slug", "title", "duration_minutes", "duration_options", "is_secret", "remote_active", "custom_questions",
    "remote_updated_at", "price", "category", "requires_auth", "currency", "display_order", "enabled",
    "present_in_last_sync", "kind", "created_at", "updated_at",
)  # fmt: skip


def _values(slug: str, *, when: dt.datetime = WHEN, options: list[int] | None = None) -> dict[str, Any]:
    questions = [{"name": "Goal?", "type": "text", "position": 0, "enabled": True, "required": False}]
    return {
        "slug": slug,
        "title": "A session",
        "duration_minutes": 45,
        "duration_options": options,
        "is_secret": True,
        "remote_active": False,
        "custom_questions": questions,
        # another zone on purpose: stored as the same UTC instant
        "remote_updated_at": when.astimezone(dt.timezone(dt.timedelta(hours=5, minutes=30))),
        "price": Decimal("12.50"),
        "category": "pathway",
        "requires_auth": False,
        "currency": "EUR",
        "display_order": 3,
        "enabled": True,
        "present_in_last_sync": True,
        "kind": "solo",
        "created_at": when,
        "updated_at": when,
    }


def _read(session: Session, slug: str) -> dict[str, Any]:
    row = session.execute(select(SESSION_TYPES).where(SESSION_TYPES.c.slug == slug)).mappings().one()
    return {name: row[name] for name in COLUMNS if name != "slug"}


@pytest.mark.parametrize("varied", [True, False], ids=["values-vary", "one-value-per-column"])
def test_inserted_rows_read_back_like_orm_rows(session: Session, varied: bool) -> None:
    session.add(SessionType(**_values("orm", options=[30, 60])))
    session.flush()
    rows = [_values("bulk-0", options=[30, 60]), _values("bulk-1", options=[30, 60])]
    if varied:
        rows[1].update(title="Another session", duration_options=[15])
    bulk.insert_rows(session, SESSION_TYPES, COLUMNS, [tuple(row[name] for name in COLUMNS) for row in rows])
    session.commit()

    orm = _read(session, "orm")
    first = _read(session, "bulk-0")
    assert first == orm
    assert first["remote_updated_at"] == WHEN and first["price"] == Decimal("12.50")
    assert _read(session, "bulk-1")["duration_options"] == ([15] if varied else [30, 60])
    if session.get_bind().dialect.name == "sqlite":
        # byte-for-byte the same storage, so SQL comparisons and sorting treat both rows alike
        stored = session.execute(
            text(
                "SELECT slug, remote_updated_at, created_at, price, is_secret, custom_questions, duration_options"
                " FROM session_types WHERE slug IN ('orm', 'bulk-0') ORDER BY slug"
            )
        ).all()
        assert stored[0][1:] == stored[1][1:]


def test_none_is_sql_null_in_json_columns(session: Session) -> None:
    bulk.insert_rows(session, SESSION_TYPES, COLUMNS, [tuple(_values("none").values())])
    assert session.scalar(select(SESSION_TYPES.c.duration_options.is_(None)).where(SESSION_TYPES.c.slug == "none"))


def test_naive_instants_are_refused_before_anything_is_written(session: Session) -> None:
    naive = _values("naive")
    naive["created_at"] = WHEN.replace(tzinfo=None)
    rows = [tuple(_values("fine").values()), tuple(naive.values())]
    # UTCDateTime refuses it, wrapped by SQLAlchemy, on both backends
    with pytest.raises(StatementError, match="naive"):
        bulk.insert_rows(session, SESSION_TYPES, COLUMNS, rows)
    session.rollback()
    assert session.scalar(select(SESSION_TYPES.c.id).where(SESSION_TYPES.c.slug.in_(["fine", "naive"]))) is None


def test_updates_are_grouped_by_the_columns_they_change(session: Session) -> None:
    rows = [tuple(_values(f"up-{index}").values()) for index in range(3)]
    bulk.insert_rows(session, SESSION_TYPES, COLUMNS, rows)
    ids = {
        slug: type_id
        for slug, type_id in session.execute(
            select(SESSION_TYPES.c.slug, SESSION_TYPES.c.id).where(SESSION_TYPES.c.slug.like("up-%"))
        )
    }
    later = WHEN + dt.timedelta(days=1)
    bulk.update_rows(
        session,
        SESSION_TYPES,
        [
            {"id": ids["up-0"], "title": "Renamed", "updated_at": later},
            {"id": ids["up-1"], "price": Decimal("99.00")},
            {"id": ids["up-2"], "title": "Also renamed", "updated_at": later},
        ],
    )
    session.commit()
    assert _read(session, "up-0")["title"] == "Renamed" and _read(session, "up-0")["updated_at"] == later
    assert _read(session, "up-1")["price"] == Decimal("99.00") and _read(session, "up-1")["title"] == "A session"
    assert _read(session, "up-2")["title"] == "Also renamed"


def test_any_of_finds_each_row_once_in_one_statement_text_whatever_the_number_of_values(session: Session) -> None:
    # One bound list, not an `IN (?, …)` per length: SQLite's driver keeps a prepared statement per text
    # (128 per connection), and one new length per import batch grew a long import's memory without bound.
    bulk.insert_rows(session, SESSION_TYPES, COLUMNS, [tuple(_values(f"any-{index}").values()) for index in range(40)])
    texts: set[str] = set()
    engine = session.get_bind()

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        texts.add(statement)

    event.listen(engine, "before_cursor_execute", seen)
    try:
        for count in (1, 3, 17, 40):
            wanted = [f"any-{index}" for index in range(count)] + ["any-0", "absent"]  # a repeat, a miss
            slugs = session.scalars(
                select(SESSION_TYPES.c.slug).where(bulk.any_of(session, SESSION_TYPES.c.slug, wanted))
            )
            assert sorted(slugs) == sorted(f"any-{index}" for index in range(count))
        assert (
            session.scalars(select(SESSION_TYPES.c.slug).where(bulk.any_of(session, SESSION_TYPES.c.slug, []))).all()
            == []
        )
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert len(texts) == 1, texts


def test_instants_are_bound_as_sqlalchemy_writes_a_sqlite_datetime() -> None:
    # UTCDateTime binds in one function of its own; what it stores must stay SQLAlchemy's DATETIME text,
    # or rows written before and after would compare and sort differently in SQL.
    from sqlalchemy import DateTime
    from sqlalchemy.dialects import sqlite

    from bapp_cli.db.types import UTCDateTime

    dialect = sqlite.dialect()
    ours = UTCDateTime()._cached_bind_processor(dialect)
    theirs = DateTime().dialect_impl(dialect).bind_processor(dialect)
    assert ours is not None and theirs is not None
    # UTC values take a shorter path than others (no checks): whole seconds, a microsecond and years before 1000
    # (zero-padded) must come out as SQLAlchemy's text all the same
    for when in (
        WHEN,
        dt.datetime(1, 1, 1, 0, 0, 0, 1, tzinfo=dt.UTC),
        dt.datetime(2030, 3, 4, 5, 6, 7, tzinfo=dt.UTC),
        dt.datetime(999, 12, 31, 23, 59, 59, tzinfo=dt.UTC),
        WHEN.astimezone(dt.timezone(-dt.timedelta(hours=7))),
        WHEN.astimezone(dt.timezone(dt.timedelta(0))),  # UTC's offset, but not `dt.UTC`
    ):
        assert ours(when) == theirs(when.astimezone(dt.UTC).replace(tzinfo=None))
    assert ours(None) is None
    with pytest.raises(ValueError, match="naive"):  # the shorter path takes no naive value: it is refused
        ours(WHEN.replace(tzinfo=None))

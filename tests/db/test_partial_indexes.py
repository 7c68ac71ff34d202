"""The bookings indexes on Calendly's columns and the idempotency key are partial (migration 0012): they hold
only the rows with a value, yet keep those values unique and serve the lookups by value, on both backends."""

from __future__ import annotations

import subprocess
import sys

import pytest
from sqlalchemy import Connection, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bapp_cli.db.engine import make_engine
from bapp_cli.db.models import Base, Booking
from tests.services.test_booking_factories import add_booking, add_client, add_session_type, at

# the lookup each partial index serves: the webhook and pull by invitee URI, the idempotency key, the
# event's bookings, the write-through rows to reconcile
LOOKUPS = {
    "uq_bookings_calendly_invitee_uri": "SELECT id FROM bookings WHERE calendly_invitee_uri = :value",
    "uq_bookings_idempotency_key": "SELECT id FROM bookings WHERE idempotency_key = :value",
    "ix_bookings_calendly_event_uri": "SELECT id FROM bookings WHERE calendly_event_uri = :value",
    "ix_bookings_calendly_state": "SELECT id FROM bookings WHERE calendly_state IN ('requested', :value)",
}


def _bookings(session: Session, count: int) -> list[Booking]:
    client = add_client(session)
    session_type = add_session_type(session, "Partial index check")
    return [add_booking(session, client=client, session_type=session_type, start=at(days=1 + n)) for n in range(count)]


@pytest.mark.parametrize("column", ["calendly_invitee_uri", "idempotency_key"])
def test_many_bookings_without_a_value_and_no_two_with_the_same_one(session: Session, column: str) -> None:
    first, second, third = _bookings(session, 3)  # all three NULL in the column: no clash
    session.execute(update(Booking).where(Booking.id == first.id).values({column: "same"}))
    with pytest.raises(IntegrityError), session.begin_nested():
        session.execute(update(Booking).where(Booking.id == second.id).values({column: "same"}))
    session.execute(update(Booking).where(Booking.id == third.id).values({column: "other"}))


def test_the_indexes_hold_no_row_without_a_value(session: Session) -> None:
    """What saves an import the index work: a booking with none of the values takes no entry."""
    _bookings(session, 2)
    _assert_partial(session.connection())


def test_the_models_create_the_same_partial_indexes(empty_database_url: str) -> None:
    """The models name no dialect's keyword (loading them imports neither dialect); the backend creating the
    tables gives the conditions in its own, so the models build the migrations' partial indexes."""
    engine = make_engine(empty_database_url, create_sqlite_file=True)
    try:
        with engine.begin() as connection:
            Base.metadata.create_all(connection)
            _assert_partial(connection)
    finally:
        engine.dispose()


def test_loading_the_models_imports_no_dialect() -> None:
    """Every command that loads the models would otherwise pay for importing the PostgreSQL dialect."""
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, bapp_cli.db.models; print(*(m for m in sys.modules if '.dialects.' in m))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert loaded == []


def _assert_partial(connection: Connection) -> None:
    for name in LOOKUPS:
        if connection.dialect.name == "sqlite":
            sql = connection.execute(text("SELECT sql FROM sqlite_master WHERE name = :name"), {"name": name}).scalar()
            assert sql is not None and sql.endswith(f"WHERE {_column(name)} IS NOT NULL"), sql
        else:
            predicate = connection.execute(
                text("SELECT pg_get_expr(indpred, indrelid) FROM pg_index WHERE indexrelid = CAST(:name AS regclass)"),
                {"name": name},
            ).scalar()
            assert predicate == f"({_column(name)} IS NOT NULL)"


@pytest.mark.parametrize("name", sorted(LOOKUPS))
def test_the_lookups_by_value_use_the_partial_index(session: Session, name: str) -> None:
    _bookings(session, 3)
    if session.get_bind().dialect.name == "sqlite":
        plan = " ".join(
            str(row[-1]) for row in session.execute(text(f"EXPLAIN QUERY PLAN {LOOKUPS[name]}"), {"value": "x"})
        )
    else:
        # a three-row table is cheaper to scan: forbid that, so the plan shows whether the index is usable at all
        session.execute(text("SET LOCAL enable_seqscan = off"))
        plan = " ".join(row[0] for row in session.execute(text(f"EXPLAIN {LOOKUPS[name]}"), {"value": "x"}))
    assert name in plan, plan


def _column(index_name: str) -> str:
    return index_name.removeprefix("uq_bookings_").removeprefix("ix_bookings_")

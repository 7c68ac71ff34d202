"""The booking state machine (pending, confirmed, completed, cancelled, no-show), payments, and listing filters."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from bapp_cli.db.models import AuditEntry, Booking
from bapp_cli.errors import Conflict, InvalidInput, NotFound
from bapp_cli.services.booking import change_booking_status
from bapp_cli.services.plain_reads import BookingFilters, booking_views
from tests.services.test_booking_factories import (
    NOW,
    add_booking,
    add_builder,
    add_client,
    add_session_type,
    at,
    audit_entries,
    get_pathway,
)


@pytest.fixture
def world(session: Session) -> dict[str, Any]:
    coach = add_builder(session)
    ada = add_client(session)
    chat = add_session_type(session, "Free Chat", category="free", builder=coach)
    return {"coach": coach, "ada": ada, "chat": chat}


def booking(session: Session, world: dict[str, Any], *, status: str, payment: str = "unpaid", **kw: Any) -> Booking:
    item = add_booking(session, client=world["ada"], session_type=world["chat"], status=status, **kw)
    item.payment_status = payment
    session.flush()
    return item


PAST = at(days=-1)
FUTURE = at(days=1)


@pytest.mark.parametrize(
    ("start", "before", "command", "after"),
    [
        (FUTURE, "pending", "confirm", "confirmed"),
        (FUTURE, "pending", "cancel", "cancelled"),
        (FUTURE, "confirmed", "cancel", "cancelled"),
        (PAST, "confirmed", "complete", "completed"),
        (PAST, "confirmed", "no-show", "no_show"),
    ],
)
def test_legal_moves(
    session: Session, world: dict[str, Any], start: dt.datetime, before: str, command: str, after: str
) -> None:
    item = booking(session, world, status=before, start=start)
    change = change_booking_status(session, item.reference.lower(), command, now=NOW)
    assert change.booking.status == after and item.status == after
    assert change.changes == {"status": [before, after]}
    entry = audit_entries(session, "booking")[-1]
    assert entry.entity_key == item.reference and entry.changes["status"] == [before, after]


@pytest.mark.parametrize(
    ("before", "command", "allowed"),
    [
        ("pending", "complete", "allowed: confirm, cancel"),
        ("pending", "no-show", "allowed: confirm, cancel"),
        ("confirmed", "confirm", "allowed: cancel, complete, no-show"),
        ("completed", "cancel", "(no status change is allowed from completed)"),
        ("cancelled", "confirm", "(no status change is allowed from cancelled)"),
        ("no_show", "complete", "(allowed: no-show --undo)"),
    ],
)
def test_illegal_moves_are_conflicts_naming_the_allowed_ones(
    session: Session, world: dict[str, Any], before: str, command: str, allowed: str
) -> None:
    item = booking(session, world, status=before, start=PAST)
    audits = len(audit_entries(session, "booking"))
    with pytest.raises(Conflict) as caught:
        change_booking_status(session, item.reference, command, now=NOW)
    assert caught.value.exit_code == 8
    assert f"booking {item.reference} is {before}; cannot {command}" in caught.value.message
    assert allowed in caught.value.message
    assert item.status == before and len(audit_entries(session, "booking")) == audits


@pytest.mark.parametrize("command", ["complete", "no-show"])
def test_completed_and_no_show_only_after_the_start(session: Session, world: dict[str, Any], command: str) -> None:
    item = booking(session, world, status="confirmed", start=FUTURE)
    with pytest.raises(Conflict) as caught:
        change_booking_status(session, item.reference, command, now=NOW)
    assert "before it has started" in caught.value.message and caught.value.hint == "allowed now: cancel"
    assert item.status == "confirmed"


def test_cancel_keeps_the_reason_and_time(session: Session, world: dict[str, Any]) -> None:
    item = booking(session, world, status="confirmed", start=FUTURE)
    change_booking_status(session, item.reference, "cancel", now=NOW, reason="  client is ill ")
    assert (item.cancellation_reason, item.cancelled_at) == ("client is ill", NOW)
    assert audit_entries(session, "booking")[-1].changes["reason"] == "client is ill"


def test_confirm_paid_records_the_payment(session: Session, world: dict[str, Any]) -> None:
    item = booking(session, world, status="pending", start=FUTURE)
    change = change_booking_status(session, item.reference, "confirm", now=NOW, paid=True)
    assert (item.status, item.payment_status) == ("confirmed", "paid")
    assert change.changes == {"status": ["pending", "confirmed"], "payment_status": ["unpaid", "paid"]}
    free = booking(session, world, status="pending", payment="not_required", start=at(days=2))
    with pytest.raises(Conflict) as caught:
        change_booking_status(session, free.reference, "confirm", now=NOW, paid=True)
    assert "payment is not_required" in caught.value.message
    assert free.status == "pending"


def test_payment_moves(session: Session, world: dict[str, Any]) -> None:
    item = booking(session, world, status="confirmed", start=FUTURE)
    with pytest.raises(Conflict) as early_refund:
        change_booking_status(session, item.reference, "refund", now=NOW)
    assert "payment is unpaid; cannot refund (allowed: mark-paid)" in early_refund.value.message
    assert change_booking_status(session, item.reference, "mark-paid", now=NOW).booking.payment_status == "paid"
    assert change_booking_status(session, item.reference, "refund", now=NOW).booking.payment_status == "refunded"
    with pytest.raises(Conflict) as twice:
        change_booking_status(session, item.reference, "refund", now=NOW)
    assert "no payment change is allowed from refunded" in twice.value.message
    free = booking(session, world, status="confirmed", payment="not_required", start=at(days=3))
    with pytest.raises(Conflict):
        change_booking_status(session, free.reference, "mark-paid", now=NOW)
    assert [entry.changes for entry in audit_entries(session, "booking")] == [
        {"payment_status": ["unpaid", "paid"]},
        {"payment_status": ["paid", "refunded"]},
    ]


def test_unknown_reference_is_not_found(session: Session, world: dict[str, Any]) -> None:
    with pytest.raises(NotFound) as caught:
        change_booking_status(session, "BK-NOPE2345", "confirm", now=NOW)
    assert caught.value.exit_code == 7


def test_listing_filters_and_order(session: Session, world: dict[str, Any]) -> None:
    bob = add_client(session, "bob@example.com", "Bob")
    other = add_builder(session, "other@example.com")
    clinic = add_session_type(session, "Clinic", builder=other)
    first = booking(session, world, status="confirmed", start=at(days=2))
    second = booking(session, world, status="cancelled", start=at(days=1))
    past = booking(session, world, status="completed", start=at(days=-3))
    third = add_booking(session, client=bob, session_type=clinic, start=at(days=1, hours=3))
    third.pathway_id = get_pathway(session, "pivot").id
    session.flush()

    def refs(limit: int | None = None, **filters: Any) -> list[str]:
        return [view.reference for view in booking_views(session, BookingFilters(**filters), limit=limit)]

    assert refs() == [past.reference, second.reference, third.reference, first.reference]
    assert refs(client_email="BOB@example.com") == [third.reference]
    assert refs(builder_email="coach@example.com", status="confirmed") == [first.reference]
    assert refs(pathway="pivot") == [third.reference]
    assert refs(pathway="none") == [past.reference, second.reference, first.reference]
    assert refs(session="clinic") == [third.reference]
    assert refs(start_from=at(days=1), start_to=at(days=2)) == [second.reference, third.reference]
    assert refs(upcoming=NOW) == [third.reference, first.reference]
    assert refs(limit=1, newest_first=True) == [first.reference]
    with pytest.raises(InvalidInput):
        refs(status="done")
    with pytest.raises(InvalidInput):
        refs(limit=0)
    assert session.scalars(select(AuditEntry)).all() == []


def test_listing_reads_a_no_show_as_the_command_spells_it(session: Session, world: dict[str, Any]) -> None:
    # the service reads a status as `bookings list --status` does (db.domains.STATUS_SPELLINGS): stored no_show
    missed = booking(session, world, status="no_show", start=at(days=-1))
    booking(session, world, status="completed", start=at(days=-2))
    for spelling in ("no-show", "No-Show", "no_show"):
        views = booking_views(session, BookingFilters(status=spelling))
        assert [(view.reference, view.status) for view in views] == [(missed.reference, "no_show")]
    with pytest.raises(InvalidInput, match="'no show' is not one of pending, confirmed, completed, cancelled, no_show"):
        booking_views(session, BookingFilters(status="no show"))


@pytest.mark.parametrize("who", ["builder", "client"])
def test_undo_refuses_a_slot_booked_while_it_was_a_no_show(session: Session, world: dict[str, Any], who: str) -> None:
    """Rule 6 holds for a booking taking its slot back: the undone no-show would double-book."""
    from bapp_cli.services.calendly_write import undo_no_show

    item = booking(session, world, status="no_show", start=FUTURE)
    if who == "builder":  # another client with the same builder, 15 minutes into it
        other = add_booking(
            session, client=add_client(session, "bo@example.com"), session_type=world["chat"], start=FUTURE + MIN15
        )
    else:  # the same client with another builder
        elsewhere = add_session_type(
            session, "Elsewhere", category="free", builder=add_builder(session, "x@example.com")
        )
        other = add_booking(session, client=world["ada"], session_type=elsewhere, start=FUTURE + MIN15)
    with pytest.raises(Conflict) as caught:
        undo_no_show(session, item.reference, now=NOW)
    assert caught.value.exit_code == 8 and caught.value.code == "overlap"
    assert f"{who} " in caught.value.message and f"already has booking {other.reference}" in caught.value.message
    assert caught.value.hint == "cancel or move the clashing booking first"
    assert item.status == "no_show"
    other.status = "cancelled"  # the slot free again: the undo goes through
    assert undo_no_show(session, item.reference, now=NOW).booking.status == "confirmed"


MIN15 = dt.timedelta(minutes=15)

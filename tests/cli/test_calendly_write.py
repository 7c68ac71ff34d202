"""Issue 13 / R8: bookings that are real in Calendly, against the local fake Calendly over real HTTP.

Every test checks both sides afterwards: the invitees the fake holds and the bookings in bapp's database.
"""

# ruff: noqa: F811  (pytest fixtures imported from calendly_fixtures are parameters by design)

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from bapp_cli.db.engine import make_engine
from bapp_cli.db.models import AuditEntry, Booking
from tests.cli.calendly_fixtures import (
    USER,
    cbapp,  # noqa: F401 (fixture)
    error_lines,
    fake_server,  # noqa: F401 (fixture)
)
from tests.cli.calendly_fixtures import fake as plain_fake  # noqa: F401 (fixture)
from tests.conftest import Bapp
from tests.fakes.calendly_server import API_ORIGIN, FakeCalendly

FREE_TYPE = f"{API_ORIGIN}/event_types/ET00000000"  # "Free Discovery Call 0": free, solo, inbound_call
FREE = "free-discovery-call-0"
ANSWERS = ("--answer", "Company name=Acme", "--answer", "What would you like to achieve?=Ship an agent")
CLIENT = "ava@client.example"


@pytest.fixture
def fake(plain_fake: FakeCalendly) -> Iterator[FakeCalendly]:
    plain_fake.reset_writes()
    yield plain_fake
    plain_fake.reset_writes()


@pytest.fixture
def synced(cbapp: Bapp, fake: FakeCalendly) -> Bapp:
    result = cbapp("calendly", "sync", "--user", USER, "--json")
    assert result.exit_code == 0, result.stderr
    return cbapp


def slot(days: int = 2, hour: int = 10) -> dt.datetime:
    day = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0) + dt.timedelta(days=days)
    return day.replace(hour=hour)


def z(moment: dt.datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def create(bapp: Bapp, start: dt.datetime, *extra: str, client: str = CLIENT, session: str = FREE) -> Any:
    return bapp(
        "bookings", "create", "--client", client, "--session", session, "--start", z(start), *ANSWERS, "--json", *extra
    )


def bookings(database_url: str) -> list[Booking]:
    engine = make_engine(database_url)
    try:
        from sqlalchemy.orm import Session

        with Session(engine) as session:
            return list(session.scalars(select(Booking).order_by(Booking.id)))
    finally:
        engine.dispose()


def audit_rows(database_url: str) -> list[AuditEntry]:
    engine = make_engine(database_url)
    try:
        from sqlalchemy.orm import Session

        with Session(engine) as session:
            return list(session.scalars(select(AuditEntry).order_by(AuditEntry.id)))
    finally:
        engine.dispose()


def posts(fake: FakeCalendly, path: str = "/invitees") -> list[Any]:
    return [request.json() for request in fake.requests if request.method == "POST" and request.path == path]


# -- happy path --------------------------------------------------------------------------------------


def test_a_booking_goes_through_calendly_with_its_uris(synced: Bapp, fake: FakeCalendly) -> None:
    start = slot()
    result = create(synced, start)
    assert result.exit_code == 0, result.stderr
    record = result.json()
    invitees = fake.invitees_of(FREE_TYPE)
    assert len(invitees) == 1
    assert record["calendly_invitee_uri"] == invitees[0]["uri"]
    assert record["calendly_event_uri"] == invitees[0]["event"]
    assert record["status"] == "confirmed" and record["payment_status"] == "not_required"
    [booking] = bookings(synced.database_url)
    assert booking.calendly_state == "booked"
    assert booking.calendly_cancel_url == invitees[0]["cancel_url"]
    assert booking.calendly_reschedule_url == invitees[0]["reschedule_url"]
    assert booking.calendly_join_url and booking.calendly_join_url.startswith("https://zoom.example/j/")
    assert booking.end_time == start + dt.timedelta(minutes=15)
    [body] = posts(fake)
    assert body["event_type"] == FREE_TYPE
    assert body["start_time"] == start.strftime("%Y-%m-%dT%H:%M:%S.000000Z")
    assert body["invitee"] == {"name": "ava", "email": CLIENT, "timezone": "UTC"}
    # inbound_call is the type's one location and it is not round robin: sent
    assert body["location"] == {"kind": "inbound_call"}


def test_the_answers_sent_are_the_validated_ones_in_calendlys_question_order(synced: Bapp, fake: FakeCalendly) -> None:
    result = synced(
        "bookings", "create", "--client", CLIENT, "--session", "specialized-architecture-review-4",
        "--start", z(slot()), "--create-account", "--json",
        "--answer", "topics=RAG", "--answer", "Topics=Agents", "--answer", "experience with ai=some",
        "--answer", "What would you like to achieve?=  Ship it  ", "--answer", "Company name=Acme",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    [body] = posts(fake)
    assert body["questions_and_answers"] == [
        {"question": "Company name", "answer": "Acme", "position": 0},
        {"question": "What would you like to achieve?", "answer": "Ship it", "position": 1},
        {"question": "Experience with AI", "answer": "Some", "position": 2},
        {"question": "Topics", "answer": "RAG\nAgents", "position": 3},
    ]
    assert result.json()["custom_question_responses"][3] == {
        "question": "Topics",
        "answer": ["RAG", "Agents"],
        "position": 3,
    }


def test_a_start_that_is_not_an_open_slot_is_refused_with_the_nearest(synced: Bapp, fake: FakeCalendly) -> None:
    start = slot(hour=10) + dt.timedelta(minutes=30)
    result = create(synced, start)
    assert result.exit_code == 8, result.stderr
    assert error_lines(result.stderr) == [
        f"Error: start: {z(start)} is not an open slot of 'Free Discovery Call 0' in Calendly"
    ]
    assert f"nearest open starts: {z(slot(hour=9))}, {z(slot(hour=10))}, {z(slot(hour=11))}" in result.stderr
    assert bookings(synced.database_url) == []
    assert posts(fake) == []


ALREADY_FILLED = json.dumps(
    {
        "title": "Invalid Argument",
        "message": "The supplied parameters are invalid.",
        "details": [
            {"parameter": "event.start_time", "message": "That start time has been filled", "code": "already_filled"}
        ],
    }
).encode()


@pytest.mark.parametrize("status", [400, 409])
def test_a_slot_taken_meanwhile_exits_8_and_keeps_nothing(synced: Bapp, fake: FakeCalendly, status: int) -> None:
    fake.fail_next("/invitees", status, body=ALREADY_FILLED if status == 400 else None)
    result = create(synced, slot())
    assert result.exit_code == 8, result.stderr
    [line] = error_lines(result.stderr)
    assert "is no longer open in Calendly" in line
    assert "nearest open starts:" in result.stderr
    assert bookings(synced.database_url) == []
    assert fake.invitees_of(FREE_TYPE) == []
    # the held booking's history stays: created, then removed with the reason
    removed = [
        row.changes for row in audit_rows(synced.database_url) if row.entity == "booking" and "removed" in row.changes
    ]
    assert removed == [{"removed": "slot taken in Calendly", "calendly_state": ["requested", None]}]


def test_the_plan_refusal_exits_4_and_keeps_nothing(synced: Bapp, fake: FakeCalendly) -> None:
    fake.refuse_plan_next()
    result = create(synced, slot())
    assert result.exit_code == 4, result.stderr
    [line] = error_lines(result.stderr)
    assert "only available on paid Calendly plans" in line
    assert "--local-only" in result.stderr and "bookings link" in result.stderr
    assert bookings(synced.database_url) == []


def test_a_429_waits_for_the_reset_then_books(synced: Bapp, fake: FakeCalendly) -> None:
    fake.booking_rate_limit_next(reset=0.01, times=2)
    result = create(synced, slot())
    assert result.exit_code == 0, result.stderr
    assert len(posts(fake)) == 3  # a 429 was not taken, so sending again is safe
    assert len(fake.invitees_of(FREE_TYPE)) == 1
    assert [b.calendly_state for b in bookings(synced.database_url)] == ["booked"]


def test_429_over_the_cap_exits_9_naming_the_limits_and_keeps_nothing(synced: Bapp, fake: FakeCalendly) -> None:
    fake.booking_rate_limit_next(reset=30, times=None)
    result = create(synced, slot())
    assert result.exit_code == 9, result.stderr
    [line] = error_lines(result.stderr)
    assert "rate limited (HTTP 429)" in line
    assert "Calendly accepts again in 30 s" in line
    assert "10 a minute, 50 an hour and 100 a day" in line
    assert bookings(synced.database_url) == []
    assert fake.invitees_of(FREE_TYPE) == []


# -- lost answers: never resend blindly --------------------------------------------------------------


@pytest.mark.parametrize("fault", ["reset", "timeout"])
def test_a_lost_answer_is_looked_up_not_resent(synced: Bapp, fake: FakeCalendly, fault: str) -> None:
    if fault == "reset":
        fake.apply_then_reset_next()
    else:
        fake.apply_then_delay_next(seconds=4)  # BAPP_CALENDLY_TIMEOUT is 2 s
    result = create(synced, slot())
    assert result.exit_code == 0, result.stderr
    assert len(posts(fake)) == 1  # never resent: Calendly had it
    [invitee] = fake.invitees_of(FREE_TYPE)
    [booking] = bookings(synced.database_url)
    assert booking.calendly_invitee_uri == invitee["uri"]
    assert booking.calendly_event_uri == invitee["event"]
    assert booking.calendly_state == "booked" and booking.status == "confirmed"
    assert "found the booking in Calendly" in result.stderr


def test_a_5xx_that_created_nothing_is_resent_once(synced: Bapp, fake: FakeCalendly) -> None:
    fake.fail_next("/invitees", 503)
    result = create(synced, slot())
    assert result.exit_code == 0, result.stderr
    assert len(posts(fake)) == 2
    assert len(fake.invitees_of(FREE_TYPE)) == 1
    [booking] = bookings(synced.database_url)
    assert booking.calendly_attempts == 2 and booking.calendly_state == "booked"
    assert "resent once" in result.stderr


def test_still_unknown_stays_pending_exits_9_and_reconcile_gives_it_up(synced: Bapp, fake: FakeCalendly) -> None:
    fake.fail_next("/invitees", 503, times=2)
    result = create(synced, slot())
    assert result.exit_code == 9, result.stderr
    [line] = error_lines(result.stderr)
    assert "it stays pending" in line
    assert "bapp calendly reconcile" in result.stderr
    [booking] = bookings(synced.database_url)
    assert (booking.status, booking.calendly_state, booking.calendly_attempts) == ("pending", "unknown", 2)
    # already resent once: reconcile looks again and waits, never sends a third time
    waiting = synced("calendly", "reconcile", "--json")
    assert waiting.exit_code == 0, waiting.stderr
    assert [r["action"] for r in waiting.json()] == ["waiting"]
    assert len(posts(fake)) == 2
    gave_up = synced("calendly", "reconcile", "--give-up-after", "0", "--json")
    assert [r["action"] for r in gave_up.json()] == ["failed"]
    [booking] = bookings(synced.database_url)
    assert (booking.status, booking.calendly_state) == ("cancelled", "failed")
    assert fake.invitees_of(FREE_TYPE) == []


def test_an_unknown_booking_that_calendly_has_is_attached_by_reconcile(synced: Bapp, fake: FakeCalendly) -> None:
    fake.apply_then_reset_next()
    fake.fail_next("/scheduled_events", 500, times=None)  # and the lookup cannot be made either
    result = create(synced, slot())
    assert result.exit_code == 9, result.stderr
    assert "could not be asked" in error_lines(result.stderr)[0]
    [booking] = bookings(synced.database_url)
    assert (booking.status, booking.calendly_state, booking.calendly_invitee_uri) == ("pending", "unknown", None)
    dry = synced("calendly", "reconcile", "--dry-run", "--json")
    assert dry.exit_code == 9  # Calendly still cannot be asked: nothing resent
    fake.clear_faults()
    dry = synced("calendly", "reconcile", "--dry-run", "--json")
    assert [r["action"] for r in dry.json()] == ["attached"]
    assert bookings(synced.database_url)[0].calendly_state == "unknown"  # a dry run changes nothing
    settled = synced("calendly", "reconcile", "--json")
    assert settled.exit_code == 0, settled.stderr
    assert [r["action"] for r in settled.json()] == ["attached"]
    assert len(posts(fake)) == 1
    [invitee] = fake.invitees_of(FREE_TYPE)
    [booking] = bookings(synced.database_url)
    assert (booking.status, booking.calendly_state, booking.calendly_invitee_uri) == (
        "confirmed",
        "booked",
        invitee["uri"],
    )


def test_the_pull_completes_a_held_booking_instead_of_creating_a_second(synced: Bapp, fake: FakeCalendly) -> None:
    fake.apply_then_reset_next()
    fake.fail_next("/scheduled_events", 500, times=6)  # the first try and all five retries of the lookup
    assert create(synced, slot()).exit_code == 9
    pulled = synced("calendly", "pull-bookings", "--json")
    assert pulled.exit_code == 0, pulled.stderr
    assert pulled.json()["created"] == 0 and pulled.json()["updated"] == 1
    [invitee] = fake.invitees_of(FREE_TYPE)
    [booking] = bookings(synced.database_url)
    assert (booking.calendly_invitee_uri, booking.calendly_state, booking.status) == (
        invitee["uri"],
        "booked",
        "confirmed",
    )

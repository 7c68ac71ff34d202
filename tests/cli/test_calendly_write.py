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
    return bapp("bookings", "create", "--client", client, "--session", session, "--start", z(start), *ANSWERS, "--json", *extra)


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

"""A bookings import checks each row's own unique values (Calendly invitee URI, idempotency key) against the
database and the earlier rows of the file — never another row's, on both backends."""

from __future__ import annotations

import io

import pytest
from sqlalchemy.orm import Session

from bapp_cli.db.models import Booking
from bapp_cli.errors import InvalidInput
from bapp_cli.services.transfer.formats import Source
from bapp_cli.services.transfer.importer import ImportOptions
from bapp_cli.services.transfer.kinds import import_data
from tests.services.test_booking_factories import NOW, add_session_type, count

HEADER = "client,session,start_time,calendly_invitee_uri,idempotency_key\n"


def _import(session: Session, rows: str) -> None:
    source = Source("csv", io.BytesIO((HEADER + rows).encode()))
    with session.begin_nested():
        import_data(session, "bookings", source, options=ImportOptions(), now=NOW)


def test_a_row_without_a_unique_value_does_not_take_the_next_rows_value(session: Session) -> None:
    # Lines 2 and 4 have no invitee URI or key: the URI and key of lines 3 and 5 are theirs alone.
    add_session_type(session, "Intro", slug="intro", duration=30)
    _import(
        session,
        "ada@example.com,intro,2029-01-01T10:00Z,,\n"
        "bob@example.com,intro,2029-01-02T10:00Z,https://api.calendly.com/invitees/1,key-1\n"
        "cy@example.com,intro,2029-01-03T10:00Z,,\n"
        "di@example.com,intro,2029-01-04T10:00Z,https://api.calendly.com/invitees/2,key-2\n",
    )
    assert count(session, Booking) == 4


def test_a_unique_value_twice_in_the_file_is_refused_on_its_second_line(session: Session) -> None:
    add_session_type(session, "Intro", slug="intro", duration=30)
    with pytest.raises(InvalidInput) as caught:
        _import(
            session,
            "bob@example.com,intro,2029-01-02T10:00Z,https://api.calendly.com/invitees/1,key-1\n"
            "cy@example.com,intro,2029-01-03T10:00Z,https://api.calendly.com/invitees/1,key-2\n"
            "di@example.com,intro,2029-01-04T10:00Z,,key-1\n"
            "ed@example.com,intro,2029-01-05T10:00Z,,\n",
        )
    assert [(item["line"], item["field"], item["message"]) for item in caught.value.details] == [
        (3, "calendly_invitee_uri", "'https://api.calendly.com/invitees/1' is already on line 2"),
        (4, "idempotency_key", "'key-1' is already on line 2"),
    ]
    assert count(session, Booking) == 0

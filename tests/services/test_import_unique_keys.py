"""A bookings import checks each row's own unique values (Calendly invitee URI, idempotency key) against the
database and the earlier rows of the file — never another row's, on both backends."""

from __future__ import annotations

import io
import json

import pytest
from sqlalchemy.orm import Session

from bapp_cli.db.models import Booking
from bapp_cli.errors import InvalidInput
from bapp_cli.services.transfer.formats import Source
from bapp_cli.services.transfer.importer import ImportOptions
from bapp_cli.services.transfer.kinds import import_data
from tests.services.test_booking_factories import NOW, add_booking, add_client, add_session_type, count

HEADER = "client,session,start_time,calendly_invitee_uri,idempotency_key\n"
_ONE_A_BATCH = ImportOptions(batch_size=1)
_ONE_A_BATCH_ON_ERROR = ImportOptions(batch_size=1, continue_on_error=True)


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


def test_a_column_only_a_later_batch_gives_is_still_resolved_and_checked(session: Session) -> None:
    # A JSON Lines file's rows need not share keys: with one row a batch, the first batches give no invitee URI,
    # idempotency key or time zone, the later ones do — and are checked against the database, the bookings earlier
    # batches wrote, and the catalogue as if every row had them.
    intro = add_session_type(session, "Intro", slug="intro", duration=30)
    taken = add_booking(session, client=add_client(session), session_type=intro, start=NOW)
    taken.calendly_invitee_uri, taken.idempotency_key = "https://api.calendly.com/invitees/A", "key-A"
    session.flush()

    def booking(client: str, start: str, **cells: str) -> dict[str, str]:
        return {"client": f"{client}@example.com", "session": "intro", "start_time": start, **cells}

    rows = [
        booking("ada", "2029-01-01T10:00Z"),
        # no reference: the booking that holds the invitee URI is the one it updates
        booking("ada", NOW.isoformat(), status="cancelled", calendly_invitee_uri="https://api.calendly.com/invitees/A"),
        booking("bob", "2029-01-03T10:00Z", idempotency_key="key-A"),
        booking("cy", "2029-01-04T10:00Z", idempotency_key="key-4"),
        booking("di", "2029-01-05T10:00Z", idempotency_key="key-4"),
        booking("ed", "2029-01-06T10:00Z", client_timezone="Mars/X"),
        {"client": "not an e-mail", "start_time": "2029-01-07T10:00Z"},  # the client's error, then the session's
    ]
    text = "\n".join(json.dumps(row) for row in rows)
    with pytest.raises(InvalidInput) as caught, session.begin_nested():
        import_data(session, "bookings", Source("jsonl", io.BytesIO(text.encode())), options=_ONE_A_BATCH, now=NOW)
    assert [(item["line"], item["field"]) for item in caught.value.details] == [
        (3, "idempotency_key"),
        (5, "idempotency_key"),
        (6, "client_timezone"),
        (7, "client"),
        (7, "session_id"),
    ]
    assert f"already belongs to booking {taken.reference}" in caught.value.details[0]["message"]
    with session.begin_nested():
        summary = import_data(
            session, "bookings", Source("jsonl", io.BytesIO(text.encode())), options=_ONE_A_BATCH_ON_ERROR, now=NOW
        )
    assert (summary.total("created"), summary.total("updated")) == (2, 1)
    session.refresh(taken)
    assert taken.status == "cancelled"

"""A bookings import moves each batch's staged bookings into the table on a second thread (`bulk.Mover`)
while it reads the next batch: a failure of that statement still stops the import, is the error
reported, and leaves nothing written — on both backends."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from sqlalchemy import event, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from bapp_cli.db.models import Booking, Pathway, User
from bapp_cli.services.transfer.bookings import BookingImporter
from bapp_cli.services.transfer.formats import Source, SourceRow
from bapp_cli.services.transfer.importer import ImportOptions
from bapp_cli.services.transfer.kinds import import_data
from tests.services.test_booking_factories import NOW, add_builder, add_session_type, count

# A trigger refuses the third booking, so the failure happens in the second batch's background insert
# (batches of two rows) and surfaces while the third batch is being handled.
TRIGGERS = {
    "sqlite": [
        "CREATE TEMP TRIGGER refuse_boom BEFORE INSERT ON main.bookings WHEN NEW.reference = 'BK-BOOM' "
        "BEGIN SELECT RAISE(ABORT, 'refused by the test trigger'); END"
    ],
    "postgresql": [
        "CREATE FUNCTION refuse_boom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF NEW.reference = 'BK-BOOM' THEN RAISE EXCEPTION 'refused by the test trigger'; END IF; "
        "RETURN NEW; END $$",
        "CREATE TRIGGER refuse_boom BEFORE INSERT ON bookings FOR EACH ROW EXECUTE FUNCTION refuse_boom()",
    ],
}


def _import(session: Session, references: list[str]) -> None:
    rows = "".join(
        f"{reference},ada@example.com,intro,2029-01-0{day}T10:00Z\n" for day, reference in enumerate(references, 1)
    )
    source = Source("csv", io.BytesIO(("reference,client,session,start_time\n" + rows).encode()))
    with session.begin_nested():
        import_data(session, "bookings", source, options=ImportOptions(batch_size=2), now=NOW)


def test_a_failed_background_insert_stops_the_import_and_nothing_is_written(session: Session) -> None:
    add_session_type(session, "Intro", slug="intro", duration=30)
    with session.begin_nested():
        for statement in TRIGGERS[session.get_bind().dialect.name]:
            session.execute(text(statement))
        with pytest.raises(DBAPIError, match="refused by the test trigger"):
            _import(session, ["BK-ONE", "BK-TWO", "BK-BOOM", "BK-FOUR", "BK-FIVE"])
        assert count(session, Booking) == count(session, User) == 0
        # the session is usable again, and the same import without the refused row goes through whole
        _import(session, ["BK-ONE", "BK-TWO", "BK-THREE", "BK-FOUR", "BK-FIVE"])
        assert count(session, Booking) == 5


def test_the_last_batch_is_in_the_table_when_the_import_returns(session: Session) -> None:
    add_session_type(session, "Intro", slug="intro", duration=30)
    _import(session, ["BK-ONE", "BK-TWO", "BK-THREE"])
    assert sorted(session.scalars(Booking.__table__.select().with_only_columns(Booking.reference))) == [
        "BK-ONE",
        "BK-THREE",
        "BK-TWO",
    ]


def test_a_restore_with_and_without_ids_writes_the_kept_ids_first(session: Session) -> None:
    """In a restore, rows that keep their id are written before the rows that take the next ones, so an
    id-less booking never takes an id a later one of the document keeps (or shares the session with the
    mover's thread)."""
    document = {
        "sessions": [{"id": 1, "slug": "intro", "title": "Intro", "duration_minutes": 30}],
        "bookings": [
            {"reference": "BK-NEW", "client": "ada@example.com", "session": "intro", "start_time": "2029-01-01T10:00Z"},
            {"id": 1, "reference": "BK-KEPT", "client": "bo@example.com", "session": "intro",
             "start_time": "2029-01-02T10:00Z"},
        ],
    }  # fmt: skip
    source = Source("json", io.BytesIO(json.dumps(document).encode()))
    with session.begin_nested():
        summary = import_data(session, "all", source, options=ImportOptions(), now=NOW)
    assert summary.restored and summary.rejected == 0, summary.errors
    ids = dict(session.execute(Booking.__table__.select().with_only_columns(Booking.reference, Booking.id)).all())
    assert ids["BK-KEPT"] == 1 and ids["BK-NEW"] > 1


def test_a_restore_writes_the_clients_that_keep_their_ids_first(session: Session) -> None:
    """As bookings do: the id-less client was written first and took id 1, which the next row keeps (SQLite:
    IntegrityError, exit 1); and PostgreSQL's sequence, which explicit ids do not move, is moved past them."""
    document = b'{"clients": [{"email": "cy@example.com"}, {"id": 1, "email": "di@example.com"}]}'
    with session.begin_nested():
        summary = import_data(session, "all", Source("json", io.BytesIO(document)), options=ImportOptions(), now=NOW)
    assert summary.restored and summary.rejected == 0, summary.errors
    users = dict(session.execute(select(User.email, User.id)).all())
    assert users["di@example.com"] == 1 and users["cy@example.com"] > 1


def test_a_batch_resolves_the_names_its_rows_give_without_the_database(session: Session) -> None:
    """Each batch resolves its rows' names while the previous batch's insert may still hold the session on
    the mover's thread, so the builders and pathways a row may name are read when the import starts."""
    add_session_type(session, "Intro", slug="intro", duration=30)
    add_builder(session, "coach@example.com")
    importer = BookingImporter(session, NOW, ImportOptions())
    statements: list[str] = []

    def record(_connection: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    cells = {"client": "ada@example.com", "session": "intro", "builder": "coach@example.com", "pathway": "pivot"}
    bind = session.connection()
    event.listen(bind, "before_cursor_execute", record)
    try:
        lookups = importer._lookups([(SourceRow(2, cells, cells), cells)])
    finally:
        event.remove(bind, "before_cursor_execute", record)
    assert statements == []
    assert lookups["builder"]["coach@example.com"] == session.scalar(select(User.id))
    assert lookups["pathway"]["pivot"] == session.scalar(select(Pathway.id).where(Pathway.slug == "pivot"))

"""The import/export service on both backends: the booking rules in bulk, upserts, batches, completions,
and property-based round trips of clients and bookings."""

from __future__ import annotations

import datetime as dt
import io
import json
import re
import string
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bapp_cli.db.models import (
    AuditEntry,
    Badge,
    Booking,
    ClientProfile,
    Enrolment,
    Skill,
    SkillPathwayLink,
    User,
    UserSkillProgress,
)
from bapp_cli.errors import InvalidInput
from bapp_cli.services.enrolment import enrol
from bapp_cli.services.plain_text import nfc
from bapp_cli.services.transfer.bookings import derived_reference
from bapp_cli.services.transfer.formats import RecordWriter, Source, SourceRow
from bapp_cli.services.transfer.importer import ImportOptions, ImportSummary, refusal
from bapp_cli.services.transfer.kinds import export_data, import_data
from bapp_cli.services.transfer.learning import BadgeRow
from tests.services.test_booking_factories import (
    NOW,
    add_booking,
    add_builder,
    add_client,
    add_session_type,
    count,
    get_pathway,
    question,
)

HEADER = "client,session,start_time,status,client_timezone,pathway,amount"


def load(session: Session, kind: str, text: str, fmt: str = "csv", **options: Any) -> ImportSummary:
    """An import in a savepoint, rolled back when it raises — as the command's unit of work does."""
    source = Source(fmt, io.BytesIO(text.encode()))
    with session.begin_nested():
        return import_data(session, kind, source, options=ImportOptions(**options), now=NOW)


def refused(session: Session, kind: str, text: str, fmt: str = "csv", **options: Any) -> list[tuple[int, str, str]]:
    with pytest.raises(InvalidInput) as caught:
        load(session, kind, text, fmt, **options)
    return [(detail["line"], detail["field"], detail["message"]) for detail in caught.value.details]


def dump(session: Session, kind: str, fmt: str = "json") -> Any:
    stream = io.StringIO()
    export_data(session, kind, stream, fmt)
    return json.loads(stream.getvalue()) if fmt == "json" else stream.getvalue()


def csv_of(*rows: str) -> str:
    return "\n".join([HEADER, *rows]) + "\n"


def test_a_backfill_creates_clients_enrols_and_reimports_as_unchanged(session: Session) -> None:
    coach = add_builder(session, buffer_minutes=15)
    add_session_type(session, "Intro", slug="intro", duration=30, builder=coach)
    add_session_type(session, "Paid review", slug="review", duration=60, price="40.00", builder=coach)
    text = csv_of(
        "Ada@Example.com,intro,2029-06-01T10:00,completed,Europe/London,accelerate,",
        "bob@example.com,review,2029-06-02T10:00:00Z,,UTC,,",
        "bob@example.com,review,2030-02-01T10:00:00+01:00,,UTC,,25.00",
    )
    summary = load(session, "bookings", text)
    assert summary.as_record() == {
        "kind": "bookings",
        "created": 3,
        "updated": 0,
        "unchanged": 0,
        "rejected": 0,
        "dry_run": False,
        "clients_created": 2,
        "enrolled": 1,
        "badges_awarded": 0,
        "pathways_completed": 0,
    }
    records = dump(session, "bookings")
    first, paid, future = records
    assert (first["client"], first["start_time"], first["end_time"]) == (
        "ada@example.com",
        "2029-06-01T09:00:00Z",  # naive, read in the row's client_timezone (BST)
        "2029-06-01T09:30:00Z",
    )
    assert (first["status"], first["payment_status"], first["amount"], first["builder"]) == (
        "completed",
        "not_required",
        "0.00",
        "coach@example.com",
    )
    assert first["reference"] == derived_reference(
        "ada@example.com", "intro", dt.datetime(2029, 6, 1, 9, tzinfo=dt.UTC)
    )
    # rule 8 defaults: a priced session is pending and unpaid at the session's price
    assert (paid["status"], paid["payment_status"], paid["amount"], paid["currency"]) == (
        "pending",
        "unpaid",
        "40.00",
        "GBP",
    )
    assert (future["amount"], future["start_time"]) == ("25.00", "2030-02-01T09:00:00Z")
    assert first["source"] == "import" and first["created_at"] == "2030-01-01T09:00:00Z"
    enrolment = session.scalars(select(Enrolment)).one()
    assert (enrolment.status, enrolment.builder_id, enrolment.start_date) == ("active", coach.id, dt.date(2029, 6, 1))
    assert count(session, ClientProfile) == 2

    again = load(session, "bookings", text)
    assert (again.total("created"), again.total("updated"), again.total("unchanged")) == (0, 0, 3)
    audit = session.scalars(select(AuditEntry).where(AuditEntry.entity == "import")).all()
    assert [(entry.entity_key, entry.changes["created"], entry.changes["unchanged"]) for entry in audit] == [
        ("bookings", 3, 0),
        ("bookings", 0, 3),
    ]


def test_a_row_updates_only_the_columns_it_has(session: Session) -> None:
    add_session_type(session, "Intro", slug="intro", duration=30)
    client = add_client(session)
    booking = add_booking(session, client=client, session_type=_intro(session), start=NOW)
    booking.client_timezone = "Europe/Paris"
    session.flush()
    text = (
        "reference,status,client,session,start_time\n"
        f"{booking.reference.lower()},cancelled,ada@example.com,intro,{NOW.isoformat()}\n"
    )
    assert load(session, "bookings", text).total("updated") == 1
    session.refresh(booking)
    assert (booking.status, booking.client_timezone, booking.updated_at) == ("cancelled", "Europe/Paris", NOW)


def test_an_empty_cell_clears_a_nullable_column_and_keeps_the_answers(session: Session) -> None:
    # An update's columns come from the cells the row has: a value sets, an empty nullable cell clears,
    # an empty answers cell leaves the answers, a column the file lacks is left alone.
    coach = add_builder(session)
    other = add_builder(session, "other@example.com")
    add_session_type(session, "Intro", slug="intro", builder=coach)
    booking = add_booking(session, client=add_client(session), session_type=_intro(session), start=NOW)
    booking.calendly_event_uri = "https://api.calendly.com/scheduled_events/E1"
    booking.custom_question_responses = [{"question": "Goal", "answer": "ship", "position": 0}]
    booking.cancellation_reason = "kept"
    session.flush()
    text = (
        "reference,client,session,start_time,builder,calendly_event_uri,custom_question_responses,currency\n"
        f"{booking.reference},ada@example.com,intro,{NOW.isoformat()},other@example.com,,,eur\n"
    )
    assert load(session, "bookings", text).total("updated") == 1
    session.refresh(booking)
    assert (booking.builder_id, booking.calendly_event_uri, booking.currency) == (other.id, None, "EUR")
    assert booking.custom_question_responses == [{"question": "Goal", "answer": "ship", "position": 0}]
    assert booking.cancellation_reason == "kept"
    assert load(session, "bookings", text).total("unchanged") == 1


def _intro(session: Session) -> Any:
    from bapp_cli.db.models import SessionType

    return session.scalars(select(SessionType).where(SessionType.slug == "intro")).one()


def test_every_bad_row_is_listed_with_its_line_and_field_and_nothing_is_written(session: Session) -> None:
    add_session_type(
        session,
        "Intro",
        slug="intro",
        duration=30,
        duration_options=[30, 45],
        questions=[question("Goal", required=True), question("Tier", "single_select", position=1, choices=["A", "B"])],
    )
    answers = '"[{""question"":""Goal"",""answer"":""x""},{""question"":""Tier"",""answer"":""C""}]"'
    good = '"[{""question"":""Goal"",""answer"":""ship""}]"'
    text = (
        "client,session,start_time,end_time,status,pathway,custom_question_responses\n"
        f"ada@example,intro,2029-01-01T10:00Z,,completed,,{good}\n"  # 2
        f"ada@example.com,nope,2029-01-01T10:00Z,,completed,,{good}\n"  # 3
        f"ada@example.com,intro,2029-01-01T25:00,,completed,,{good}\n"  # 4
        f"ada@example.com,intro,2029-01-02T10:00Z,2029-01-02T10:20Z,completed,,{good}\n"  # 5 (20 min not offered)
        f"ada@example.com,intro,2029-01-03T10:00Z,,done,,{good}\n"  # 6
        f"ada@example.com,intro,2029-01-04T10:00Z,,completed,,{answers}\n"  # 7
        "ada@example.com,intro,2029-01-05T10:00Z,,completed,,\n"  # 8: required answer missing
        f"ada@example.com,intro,2029-01-06T10:00Z,,completed,narnia,{good}\n"  # 9
        f"ada@example.com,intro,2029-01-07T10:00Z,2029-01-07T10:45Z,completed,,{good}\n"  # 10: fine
    )
    problems = refused(session, "bookings", text)
    assert [(line, field) for line, field, _ in problems] == [
        (2, "client"),
        (3, "session"),
        (4, "start_time"),
        (5, "end_time"),
        (6, "status"),
        (7, "custom_question_responses"),
        (8, "custom_question_responses"),
        (9, "pathway"),
    ]
    messages = dict(((line, field), message) for line, field, message in problems)
    assert "is not a valid e-mail address" in messages[(2, "client")]
    assert "hour must be in 0..23" in messages[(4, "start_time")]
    assert "not offered by 'Intro' (durations: 30, 45)" in messages[(5, "end_time")]
    assert "'C' is not one of: A, B" in messages[(7, "custom_question_responses")]
    assert "'Goal': required" in messages[(8, "custom_question_responses")]
    assert count(session, Booking) == count(session, User) == 0

    summary = load(session, "bookings", text, continue_on_error=True)
    assert (summary.total("created"), summary.rejected) == (1, 8)
    assert count(session, Booking) == 1
    # an answers cell that is not JSON, or an answer of the wrong type, is one error under the file's own field
    # names (the union list | Json[list] gave two a cell, under `custom_question_responses.list[AnswerItem]` and
    # `.json[list[AnswerItem]]`; an answer's under `….answer.constrained-str`)
    bad_answers = (
        "client,session,start_time,custom_question_responses\nada@example.com,intro,2029-02-01T10:00Z,not json\n"
        'ada@example.com,intro,2029-02-02T10:00Z,"[{""question"":""Goal"",""answer"":5}]"\n'
    )
    assert refused(session, "bookings", bad_answers) == [
        (2, "custom_question_responses", "not valid JSON (Expecting value)"),
        (3, "custom_question_responses[0].answer", "Input should be a valid string"),
        (3, "custom_question_responses[0].answer", "Input should be a valid list"),
    ]


def test_money_cells_take_ascii_digits_and_a_point_as_sessions_add_does(session: Session) -> None:
    # pydantic's Decimal read `1_000` as 1000 and Arabic-Indic digits as theirs, where `--price` now refuses both
    add_session_type(session, "Intro", slug="intro", duration=30)
    bookings = csv_of(
        *(
            f"ada@example.com,intro,2029-02-0{day}T10:00Z,,,,{amount}"
            for day, amount in enumerate(("1_000", "٤٥", "1e2", "-0.5", "12.345", "45"), start=1)
        )
    )
    problems = refused(session, "bookings", bookings)
    assert [(line, field) for line, field, _ in problems] == [(line, "amount") for line in range(2, 7)]
    assert [message for _, _, message in problems] == [
        "'1_000' is not an amount (digits, and at most two decimals after a point)",
        "'٤٥' is not an amount (digits, and at most two decimals after a point)",
        "'1e2' is not an amount (digits, and at most two decimals after a point)",
        "'-0.5' must be between 0.00 and 99999999.99",
        "'12.345' is not an amount (digits, and at most two decimals after a point)",
    ]
    # a JSON file's numbers are amounts too, read as their text is
    load(
        session,
        "bookings",
        json.dumps(
            [{"client": "bob@example.com", "session": "intro", "start_time": "2029-03-01T10:00Z", "amount": 45.5}]
        ),
        "json",
    )
    assert session.scalar(select(Booking.amount)) == Decimal("45.50")
    # a JSON true is no amount, though Python holds True == 1.0: the amounts read once per text take no number (`Money`)
    rows = [{"client": "cy@example.com", "session": "intro", "start_time": "2029-03-02T10:00Z", "amount": 1.0}]
    rows.append(rows[0] | {"start_time": "2029-03-03T10:00Z", "amount": True})
    assert refused(session, "bookings", "\n".join(map(json.dumps, rows)), "jsonl") == [
        (2, "amount", "True is not an amount (digits, and at most two decimals after a point)")
    ]
    sessions = "title,duration_minutes,price\nRoom,30,1_000\nHall,30,٤٥\nYard,30,25.10\n"
    assert [(line, field) for line, field, _ in refused(session, "sessions", sessions)] == [(2, "price"), (3, "price")]


def test_a_json_or_toml_number_is_the_amount_it_spells_held_to_two_decimals(session: Session) -> None:
    # as the README says: the text grammar refuses `1_000`, `1e3` and `+5` as typos, but in TOML or JSON they are
    # numbers their format defines, read as such; a number with a third decimal is refused as its text is
    toml = "".join(
        f'[[sessions]]\ntitle = "{title}"\nduration_minutes = 30\nprice = {price}\n'
        for title, price in (("Room", "1_000"), ("Hall", "+5"), ("Yard", "12.5"))
    )
    load(session, "sessions", toml, "toml")
    # written out, not json.dumps'd: Python would write 1e3 as 1000.0
    prices = (
        '{"title": "Deck", "duration_minutes": 30, "price": 1e3}, {"title": "Loft", "duration_minutes": 30, "price": 0}'
    )
    load(session, "sessions", f"[{prices}]", "json")
    held = {row["title"]: row["price"] for row in dump(session, "sessions")}
    assert held == {"Room": "1000.00", "Hall": "5.00", "Yard": "12.50", "Deck": "1000.00", "Loft": "0.00"}
    bad = '[{"title": "Barn", "duration_minutes": 30, "price": 30.555}]'
    assert refused(session, "sessions", bad, "json") == [
        (1, "price", "30.555 is not an amount (digits, and at most two decimals after a point)")
    ]


def test_rule_4_pathway_sessions_infer_the_one_active_enrolment_or_refuse(session: Session) -> None:
    add_session_type(session, "Coaching", slug="coaching", category="pathway", pathways=["accelerate", "pivot"])
    ada = add_client(session)
    session.add(Enrolment(client_id=ada.id, pathway_id=get_pathway(session, "pivot").id, start_date=NOW.date()))
    session.flush()
    text = csv_of(
        "ada@example.com,coaching,2029-01-01T10:00Z,completed,,,",
        "new@example.com,coaching,2029-01-02T10:00Z,completed,,,",
        "new@example.com,coaching,2029-01-03T10:00Z,completed,,play,",
        "new@example.com,coaching,2029-01-04T10:00Z,completed,,accelerate,",
        "new@example.com,coaching,2029-01-05T10:00Z,completed,,,",  # enrolled by the row above
    )
    problems = refused(session, "bookings", text)
    assert [(line, field) for line, field, _ in problems] == [(3, "pathway"), (4, "pathway")]
    assert "not actively enrolled in any of them; choose one of: accelerate, pivot" in problems[0][2]
    assert "'play' is not linked to 'Coaching'" in problems[1][2]
    summary = load(session, "bookings", text, continue_on_error=True)
    assert summary.total("created") == 3
    pathways = dict(session.execute(select(Booking.start_time, Booking.pathway_id).order_by(Booking.start_time)).all())
    assert list(pathways.values()) == [get_pathway(session, slug).id for slug in ("pivot", "accelerate", "accelerate")]


@pytest.mark.parametrize("batch_size", [2, 100])
def test_overlaps_against_the_database_and_earlier_rows_the_first_row_keeps_the_slot(
    session: Session, batch_size: int
) -> None:
    coach = add_builder(session, buffer_minutes=15)
    intro = add_session_type(session, "Intro", slug="intro", duration=60, builder=coach)
    add_session_type(session, "Workshop", slug="workshop", duration=60, builder=coach, kind="group", invitee_limit=2)
    # another builder's session: a row booking it clashes with nobody but its client
    add_session_type(session, "Chat", slug="chat", duration=30, builder=add_builder(session, "second@example.com"))
    other = add_client(session, "other@example.com")
    existing = add_booking(
        session, client=other, session_type=intro, start=dt.datetime(2030, 3, 1, 9, tzinfo=dt.UTC), minutes=60
    )
    text = csv_of(
        "a@example.com,intro,2030-03-01T10:10Z,confirmed,,,",  # 2: within the builder's 15-minute buffer
        "b@example.com,intro,2030-03-02T09:00Z,pending,,,",  # 3: fine
        "c@example.com,intro,2030-03-02T09:30Z,confirmed,,,",  # 4: overlaps row 3 (same builder)
        "c@example.com,intro,2030-03-02T09:30Z,completed,,,",  # 5: same key as row 4
        "d@example.com,intro,2030-03-03T09:00Z,cancelled,,,",  # 6: cancelled rows hold no slot
        "e@example.com,workshop,2030-03-04T09:00Z,confirmed,,,",  # 7: group: shared slot
        "f@example.com,workshop,2030-03-04T09:00Z,confirmed,,,",  # 8
        "g@example.com,workshop,2030-03-04T09:00Z,confirmed,,,",  # 9: full (limit 2)
        "b@example.com,chat,2030-03-02T09:30Z,confirmed,,,",  # 10: client b is busy at 09:00-10:00
    )
    problems = refused(session, "bookings", text, batch_size=batch_size)
    assert [(line, field) for line, field, _ in problems] == [
        (2, "start_time"),
        (4, "start_time"),
        (5, "start_time"),  # row 4 and 5 give no reference: the cells they share are named
        (9, "start_time"),
        (10, "start_time"),
    ]
    messages = [message for _, _, message in problems]
    assert f"builder coach@example.com already has booking {existing.reference}" in messages[0]
    assert "(with a 15-minute buffer)" in messages[0]
    assert "is full (2 invitees)" in messages[3]
    # row 3's booking is the file's, not the database's: named by its line in its batch, else as an earlier row's
    earlier = "the booking on line 3" if batch_size > 8 else "a booking of an earlier row of the file"
    assert messages[4].startswith(f"client b@example.com already has {earlier} at 2030-03-02T09:00:00Z–10:00Z")
    assert count(session, Booking) == 1
    summary = load(session, "bookings", text, batch_size=batch_size, continue_on_error=True)
    assert (summary.total("created"), summary.rejected) == (4, 5)
    allowed = load(session, "bookings", text, batch_size=batch_size, allow_overlap=True, continue_on_error=True)
    # every slot is taken now, but row 5 still repeats row 4's key
    assert (allowed.total("created"), allowed.total("unchanged"), allowed.rejected) == (4, 4, 1)


def test_past_and_cancelled_rows_of_a_pathway_session_keep_their_archived_pathway(session: Session) -> None:
    """History is kept as it was: a row that holds no slot may name the pathway its session was linked to
    before that pathway was archived (it enrols nobody); a row that holds one may not."""
    add_session_type(session, "Review", slug="review", category="pathway", pathways=["accelerate", "pivot"])
    get_pathway(session, "accelerate").archived = True
    session.flush()
    text = csv_of(
        "a@example.com,review,2029-03-04T09:00Z,completed,,accelerate,",
        "b@example.com,review,2029-03-05T09:00Z,cancelled,,accelerate,",
    )
    assert load(session, "bookings", text).total("created") == 2
    accelerate = get_pathway(session, "accelerate").id
    assert list(session.scalars(select(Booking.pathway_id))) == [accelerate, accelerate]
    assert count(session, Enrolment) == 0
    active = csv_of("c@example.com,review,2030-03-06T09:00Z,confirmed,,accelerate,")
    assert [problem[1:] for problem in refused(session, "bookings", active)] == [
        ("pathway", "'accelerate' is archived and takes no new bookings")
    ]


@pytest.mark.parametrize("batch_size", [1, 100])
def test_a_group_session_without_a_builder_still_fills_up(session: Session, batch_size: int) -> None:
    """Its seats are counted against the database (batch_size 1) and the batch's earlier rows alike."""
    add_session_type(session, "Open Lab", slug="open-lab", duration=60, kind="group", invitee_limit=2)
    text = csv_of(*(f"{name}@example.com,open-lab,2030-03-04T09:00Z,confirmed,,," for name in "efg"))
    problems = refused(session, "bookings", text, batch_size=batch_size)
    assert [(line, field) for line, field, _ in problems] == [(4, "start_time")]
    assert "is full (2 invitees)" in problems[0][2]


@pytest.mark.parametrize("batch_size", [1, 100])
def test_a_row_refused_for_an_overlap_plans_nothing_a_later_row_could_lean_on(
    session: Session, batch_size: int
) -> None:
    """Rows are decided in file order and a refused row plans nothing: the client and the enrolment it
    would have brought do not exist for the rows after it, in its batch or a later one."""
    coach = add_builder(session)
    intro = add_session_type(session, "Intro", slug="intro", duration=60, builder=coach)
    add_session_type(session, "Coaching", slug="coaching", category="pathway", pathways=["accelerate", "pivot"])
    nine = dt.datetime(2030, 3, 1, 9, tzinfo=dt.UTC)
    add_booking(session, client=add_client(session, "other@example.com"), session_type=intro, start=nine, minutes=60)
    text = csv_of(
        "new@example.com,intro,2030-03-01T09:30Z,confirmed,,accelerate,",  # 2: overlaps: refused
        "new@example.com,coaching,2029-01-05T10:00Z,completed,,,",  # 3: needs the enrolment row 2 would bring
    )
    problems = refused(session, "bookings", text, batch_size=batch_size)
    assert [(line, field) for line, field, _ in problems] == [(2, "start_time"), (3, "pathway")]
    assert "not actively enrolled in any of them" in problems[1][2]
    summary = load(session, "bookings", text, batch_size=batch_size, continue_on_error=True)
    assert (summary.total("created"), summary.rejected, summary.as_record()["enrolled"]) == (0, 2, 0)
    assert count(session, User, User.email == "new@example.com") == 0


@pytest.mark.parametrize("batch_size", [1, 100])
def test_a_booking_an_earlier_row_moves_frees_its_old_slot_for_the_rows_after_it(
    session: Session, batch_size: int
) -> None:
    """Overlaps are judged against the database as the earlier rows of the file leave it."""
    coach = add_builder(session)
    intro = add_session_type(session, "Intro", slug="intro", duration=60, builder=coach)
    nine = dt.datetime(2030, 3, 1, 9, tzinfo=dt.UTC)
    moved = add_booking(session, client=add_client(session), session_type=intro, start=nine, minutes=60)
    header = "reference,client,session,start_time\n"
    move = f"{moved.reference},ada@example.com,intro,2030-03-01T12:00Z\n"
    take = ",new@example.com,intro,2030-03-01T09:00Z\n"
    problems = refused(session, "bookings", header + take + move, batch_size=batch_size)
    assert [(line, field) for line, field, _ in problems] == [(2, "start_time")]
    assert f"already has booking {moved.reference} at 2030-03-01T09:00:00Z–10:00Z" in problems[0][2]
    summary = load(session, "bookings", header + move + take, batch_size=batch_size)
    assert (summary.total("created"), summary.total("updated")) == (1, 1)
    starts = session.execute(select(Booking.start_time).order_by(Booking.start_time)).scalars().all()
    assert [start.hour for start in starts] == [9, 12]


@pytest.mark.parametrize(("batch_size", "message"), [(1, "appears earlier in the file"), (100, "is already on line 2")])
def test_a_second_row_for_a_booking_the_file_already_updated_is_refused(
    session: Session, batch_size: int, message: str
) -> None:
    add_session_type(session, "Intro", slug="intro", duration=30)
    booking = add_booking(session, client=add_client(session), session_type=_intro(session), start=NOW)
    text = (
        "reference,status,client,session,start_time\n"
        f"{booking.reference},cancelled,ada@example.com,intro,{NOW.isoformat()}\n"
        f"{booking.reference},completed,ada@example.com,intro,{NOW.isoformat()}\n"
    )
    problems = refused(session, "bookings", text, batch_size=batch_size)
    assert problems == [(3, "reference", f"{booking.reference} {message}")]
    session.refresh(booking)
    assert booking.status == "confirmed"


def test_unique_keys_and_unknown_clients(session: Session) -> None:
    add_session_type(session, "Intro", slug="intro", duration=30)
    client = add_client(session)
    taken = add_booking(session, client=client, session_type=_intro(session), start=NOW)
    taken.idempotency_key = "key-1"
    taken.calendly_invitee_uri = "https://api.calendly.com/invitees/A"
    session.flush()
    text = (
        "client,session,start_time,status,idempotency_key,calendly_invitee_uri\n"
        "ada@example.com,intro,2029-01-01T10:00Z,completed,key-1,\n"
        "ada@example.com,intro,2029-01-02T10:00Z,completed,key-2,\n"
        "ada@example.com,intro,2029-01-03T10:00Z,completed,key-2,\n"
        "ada@example.com,intro,2029-01-04T10:00Z,completed,,https://api.calendly.com/invitees/B\n"
        "new@example.com,intro,2029-01-05T10:00Z,completed,,\n"
    )
    problems = refused(session, "bookings", text, create_clients=False)
    assert [(line, field) for line, field, _ in problems] == [
        (2, "idempotency_key"),
        (4, "idempotency_key"),
        (6, "client"),
    ]
    assert f"already belongs to booking {taken.reference}" in problems[0][2]
    # a row naming a known invitee updates that booking, whatever its reference
    text = (
        "client,session,start_time,status,calendly_invitee_uri\n"
        f"ada@example.com,intro,{NOW.isoformat()},cancelled,https://api.calendly.com/invitees/A\n"
    )
    assert load(session, "bookings", text).total("updated") == 1
    session.refresh(taken)
    assert taken.status == "cancelled"


def test_calendly_rows_keep_their_answers_and_any_answers_can_be_allowed(session: Session) -> None:
    add_session_type(session, "Intro", slug="intro", duration=30, questions=[question("Goal", required=True)])
    text = (
        "client,session,start_time,status,source,custom_question_responses\n"
        'ada@example.com,intro,2029-01-01T10:00Z,completed,calendly,"[{""question"":""Other"",""answer"":""x""}]"\n'
        "ada@example.com,intro,2029-01-02T10:00Z,completed,,\n"
    )
    assert [line for line, _, _ in refused(session, "bookings", text)] == [3]
    summary = load(session, "bookings", text, allow_any_answers=True)
    assert summary.total("created") == 2
    answers = [record["custom_question_responses"] for record in dump(session, "bookings")]
    assert answers == [[{"question": "Other", "answer": "x", "position": 0}], []]


def test_clients_upsert_and_builders_keep_their_rules(session: Session) -> None:
    add_builder(session, "coach@example.com")
    text = (
        "email,name,company,industry\n"
        "Ada@Example.com,Ada,Analytical,\n"
        "coach@example.com,Cora,,Coaching\n"
        "bad,,,\n"
        f"long@example.com,{'x' * 201},,\n"
        f"longer@example.com,,{'x' * 1001},\n"  # the limit it names is 200 too, not a first one of 1000
    )
    problems = refused(session, "clients", text)
    assert problems == [
        (4, "email", "'bad' is not a valid e-mail address"),
        (5, "name", "201 characters; at most 200"),
        (6, "company", "1,001 characters; at most 200"),
    ]
    summary = load(session, "clients", text, continue_on_error=True)
    assert (summary.total("created"), summary.rejected) == (2, 3)  # the builder gained a client profile
    changed = load(session, "clients", "email,company\nada@example.com,Engines\n")
    assert changed.total("updated") == 1
    assert [(row["email"], row["name"], row["company"]) for row in dump(session, "clients")] == [
        ("ada@example.com", "Ada", "Engines"),
        ("coach@example.com", "Cora", None),
    ]
    builders = (
        "email,name,timezone,buffer_minutes,max_advance_days\n"
        "coach@example.com,,Europe/Paris,10,\n"
        "new@example.com,Nia,Mars/Base,,\n"
        "fresh@example.com,Fay,Europe/Rome,5,30\n"
    )
    # `builders add --calendly-user`'s refusal names the column (it named no field: 'calendly-user: …')
    bad_uris = (
        "email,name,calendly_user\nuri@example.com,Uri,not a uri\n"
        f"url@example.com,,https://{'x' * 600}\nnamed@example.com,{'x' * 1001},\n"
    )
    example = " (e.g. https://api.calendly.com/users/AAAA (see `bapp calendly whoami`))"
    assert refused(session, "builders", bad_uris) == [
        (2, "calendly_user", "'not a uri' is not a URI" + example),
        (3, "calendly_user", f"'https://{'x' * 51}… is not a URI" + example),  # cut as every echo (errors.quoted)
        (4, "name", "1,001 characters; at most 200"),
    ]
    assert [(line, field) for line, field, _ in refused(session, "builders", builders)] == [(3, "timezone")]
    summary = load(session, "builders", builders, continue_on_error=True)
    assert (summary.total("created"), summary.total("updated"), summary.rejected) == (1, 1, 1)
    exported = {row["email"]: row for row in dump(session, "builders")}
    assert (exported["coach@example.com"]["timezone"], exported["coach@example.com"]["buffer_minutes"]) == (
        "Europe/Paris",
        10,
    )
    assert exported["fresh@example.com"]["max_advance_days"] == 30


def test_progress_completions_award_badges_and_complete_enrolments(session: Session) -> None:
    catalogue = (
        "slug,name,is_fundamental,links\n"
        "s1,Skill one,true,accelerate:1\n"
        's2,Skill two,false,"accelerate:1, pivot:2"\n'
        "s3,Skill three,false,[]\n"
    )
    assert load(session, "skills", catalogue).total("created") == 3
    add_client(session)
    add_builder(session, "coach@example.com")
    progress = (
        "client,skill,status,completed_via,validated_by,pathway\n"
        "ada@example.com,s1,completed,,,accelerate\n"
        "ada@example.com,s2,completed,builder_validation,,\n"
        "ada@example.com,s3,in_progress,,,\n"
    )
    problems = refused(session, "progress", progress)
    assert problems == [(3, "validated_by", "a builder_validation completion needs validated_by")]
    progress = progress.replace("builder_validation,,", "builder_validation,coach@example.com,")
    summary = load(session, "progress", progress)
    # s1 and s2 make up accelerate's tier 1, s2 alone pivot's tier 2, s1 is the one fundamental skill
    assert summary.as_record()["badges_awarded"] == 3 and summary.as_record()["enrolled"] == 1
    assert set(session.scalars(select(Badge.key))) == {"tier:accelerate:1", "tier:pivot:2", "fundamentals"}
    rows = {row["skill"]: row for row in dump(session, "progress")}
    assert (rows["s1"]["pathway"], rows["s1"]["attempts"], rows["s1"]["completed_via"]) == ("accelerate", 1, "manual")
    assert rows["s2"]["validated_by"] == "coach@example.com" and rows["s3"]["completed_at"] is None
    assert load(session, "progress", progress).total("unchanged") == 3
    # archiving a skill is a catalogue change: the tier's remaining skills may now be complete
    assert load(session, "skills", "slug,archived\ns3,true\n").total("updated") == 1
    enrolments = load(
        session,
        "enrolments",
        "client,pathway,status,completed_at\nada@example.com,pivot,active,2029-01-01T00:00Z\n",
        continue_on_error=True,
    )
    assert enrolments.rejected == 1


def test_a_later_batch_s_older_history_starts_the_enrolment_an_earlier_batch_opened(session: Session) -> None:
    """`import progress` starts an enrolment it opens at the earliest history of its rows (228f795), but only of
    the batch that opened it: ada's 2024-01 completion, a batch after her 2024-03 start that opened the
    enrolment, left it starting in March. The later batch now moves it back (one UPDATE per batch). An
    enrolment the import found (bo's, from `clients enroll`) keeps its start, as before."""
    assert load(session, "skills", "slug,name,links\ns1,One,accelerate:1\ns2,Two,accelerate:2\n").total("created") == 2
    for email in ("ada@example.com", "bo@example.com"):
        add_client(session, email)
    enrol(session, add_client(session, "cy@example.com"), get_pathway(session, "accelerate"), now=NOW)
    progress = (
        "client,skill,status,started_at,completed_at,pathway\n"
        "ada@example.com,s2,in_progress,2024-03-01T10:00:00Z,,accelerate\n"
        "bo@example.com,s1,in_progress,2024-04-01T10:00:00Z,,accelerate\n"
        "ada@example.com,s1,completed,2024-02-01T10:00:00Z,2024-02-10T10:00:00Z,accelerate\n"
        "cy@example.com,s1,completed,2024-01-01T10:00:00Z,2024-01-10T10:00:00Z,accelerate\n"
        "ada@example.com,s2,completed,2023-12-30T10:00:00Z,2024-01-15T10:00:00Z,\n"  # a repeat: refused
        "bo@example.com,s2,in_progress,2024-05-01T10:00:00Z,,accelerate\n"  # later: no change
    )
    summary = load(session, "progress", progress, batch_size=1, continue_on_error=True)
    assert (summary.rejected, summary.as_record()["enrolled"]) == (1, 2)
    starts = {row["client"]: row["start_date"] for row in dump(session, "enrolments")}
    assert starts == {
        "ada@example.com": "2024-02-01",  # was 2024-03-01, her first batch's
        "bo@example.com": "2024-04-01",
        "cy@example.com": NOW.date().isoformat(),  # enrolled before the import
    }


def test_learning_rows_a_rule_refuses_name_their_line_field_and_reason(session: Session) -> None:
    add_client(session)
    assert load(session, "skills", "slug,name,links\ns1,Skill one,accelerate:1\ns2,Skill two,accelerate:1\n")
    assert load(session, "skills", "slug,archived\ns2,true\n").total("updated") == 1
    get_pathway(session, "play").archived = True
    session.flush()
    enrolments = (
        "client,pathway,status,completed_at\n"
        "ada@example.com,accelerate,active,\n"
        "ada@example.com,accelerate,paused,\n"
        "ada@example.com,pivot,active,2029-01-01T00:00Z\n"
        "ada@example.com,play,active,\n"
        "nobody@example.com,pivot,active,\n"
    )
    assert refused(session, "enrolments", enrolments) == [
        (3, "pathway", "this enrolment is already on line 2"),
        (4, "completed_at", "only a completed enrolment has a completion time"),
        (5, "pathway", "'play' is archived and takes no new enrolments"),
        (6, "client", "no client with e-mail 'nobody@example.com' (import clients first)"),
    ]
    progress = (
        "client,skill,status\nada@example.com,s1,in_progress\nada@example.com,s1,completed\nada@example.com,s2,\n"
    )
    assert refused(session, "progress", progress) == [
        (3, "skill", "this progress row is already on line 2"),
        (4, "skill", "the skill is archived and cannot be assigned"),
    ]
    # a batch apart, a repeated key read "this progress row is already on earlier in the file"
    assert refused(session, "progress", progress, batch_size=1)[0] == (
        3,
        "skill",
        "this progress row appears earlier in the file",
    )
    # every learning kind refuses a key it does not know (their rows extend one schema base that forbids them)
    for kind, row in (("enrolments", {"pathway": "pivot"}), ("progress", {"skill": "s1"})):
        text = json.dumps([{"client": "ada@example.com", **row, "colour": "red"}])
        assert [(field, message) for _, field, message in refused(session, kind, text, "json")] == [
            ("colour", "unknown column")
        ]
    with pytest.raises(ValidationError, match="colour\n  Extra inputs are not permitted"):  # badges: backups only
        TypeAdapter(BadgeRow).validate_python({"client": "ada@example.com", "key": "fundamentals", "colour": "red"})


def test_skills_links_sync_exactly_and_refuse_unknown_tiers(session: Session) -> None:
    load(session, "skills", 'slug,name,links\nprompting,Prompting,"[""accelerate:1"",""pivot:1""]"\n')
    skill = session.scalars(select(Skill)).one()
    assert count(session, SkillPathwayLink) == 2
    assert load(session, "skills", "slug,links\nprompting,accelerate:2\n").total("updated") == 1
    links = session.execute(
        select(SkillPathwayLink.pathway_id, SkillPathwayLink.tier).where(SkillPathwayLink.skill_id == skill.id)
    ).all()
    assert [tuple(link) for link in links] == [(get_pathway(session, "accelerate").id, 2)]
    problems = refused(session, "skills", "slug,name,links\nx,X,accelerate:9\ny,Y,nowhere:1\nBad Slug,Z,\n")
    # a bad slug names the file's column, slug (it named `skills add`'s argument, skill, which a skills file lacks)
    assert [(line, field) for line, field, _ in problems] == [(2, "links"), (3, "links"), (4, "slug")]
    # a rule's prefix that is no column of any kind ("link" is the option's name) stays in the message
    assert refused(session, "skills", "slug,name,links\nz,Z,accelerate\n") == [
        (2, None, "link: 'accelerate' is not PATHWAY:TIER (e.g. accelerate:1)")
    ]


def test_a_refusal_names_a_field_only_when_its_prefix_is_a_column() -> None:
    row = SourceRow(line=7, values={}, original={})
    [named] = refusal(row, InvalidInput("skill: 'Bad Slug' is not a valid skill slug")).errors
    [plain] = refusal(row, InvalidInput("ann@example.org: is not a client")).errors
    assert (named.field, named.message) == ("skill", "'Bad Slug' is not a valid skill slug")
    assert (plain.field, plain.message, plain.text()) == (None, *["ann@example.org: is not a client"] * 2)


def test_pathways_tiers_and_sessions_import_with_their_rules(session: Session) -> None:
    text = json.dumps(
        [
            {
                "slug": "data-leaders",
                "name": "Data Leaders",
                "color": "#112233",
                "tiers": [{"tier": 1, "name": "Start"}],
            },
            {"slug": "bad", "name": "Bad", "tiers": [{"tier": 2, "name": "Gap"}]},
            {"slug": "accelerate", "tiers": [{"tier": 4, "name": "Beyond"}]},
            # a new record's required columns are named first, before its lists (as for every kind)
            {"slug": "unnamed", "tiers": [{"tier": 2, "name": "Gap"}]},
        ]
    )
    problems = refused(session, "pathways", text, "json")
    assert [(line, field) for line, field, _ in problems] == [(1, "tiers"), (1, "name")]
    summary = load(session, "pathways", text, "json", continue_on_error=True)
    assert (summary.total("created"), summary.total("updated"), summary.rejected) == (1, 1, 2)
    sessions = (
        "slug,title,duration_minutes,category,pathways,price\n"
        "coaching,Coaching,60,pathway,data-leaders,10\n"
        "lonely,Lonely,60,pathway,,\n"
        "pricey,Pricey,30,specialized,,1.234\n"
        "long,Long,2000,free,,\n"
        "untitled,,30,pathway,,\n"
    )
    problems = refused(session, "sessions", sessions)
    expected = [(3, "pathways"), (4, "price"), (5, "duration_minutes"), (6, "title")]
    assert [(line, field) for line, field, _ in problems] == expected
    load(session, "sessions", sessions, continue_on_error=True)
    record = dump(session, "sessions")[0]
    assert (record["slug"], record["pathways"], record["price"], record["requires_auth"], record["bookable"]) == (
        "coaching",
        ["data-leaders"],
        "10.00",
        True,
        True,
    )


def test_a_tier_number_given_as_true_is_refused_not_read_as_tier_1(session: Session) -> None:
    # pydantic's lax int read JSON true (and 1.0) as 1: `"tier": true` created tier 1 without a word
    rows = [
        {"slug": f"p{n}", "name": f"P{n}", "tiers": [{"tier": tier, "name": "Start"}]}
        for n, tier in enumerate([True, 1.0])
    ]
    problems = refused(session, "pathways", "\n".join(map(json.dumps, rows)), "jsonl")
    assert [(line, field) for line, field, _ in problems] == [(1, "tiers[0].tier"), (2, "tiers[0].tier")]
    assert all("valid integer" in message for _, _, message in problems), problems


def test_an_archived_pathway_takes_no_new_session_links_but_keeps_its_own(session: Session) -> None:
    from bapp_cli.services.pathway_admin import archive_pathway

    load(session, "sessions", "slug,title,duration_minutes,category,pathways\nlab,Lab,60,pathway,accelerate\n")
    archive_pathway(session, "accelerate", now=NOW)
    problems = refused(
        session, "sessions", "slug,title,duration_minutes,category,pathways\nnew,New,60,pathway,accelerate\n"
    )
    assert problems == [(2, "pathways", "pathway 'accelerate' is archived and takes no new sessions")]
    summary = load(session, "sessions", "slug,title,pathways\nlab,Lab again,accelerate\n")  # a link it has stays
    assert summary.total("updated") == 1


def test_export_streams_kinds_in_every_format(session: Session) -> None:
    add_session_type(session, "Intro", slug="intro", duration=30)
    load(session, "bookings", csv_of("ada@example.com,intro,2029-01-01T10:00Z,completed,,,"))
    csv_text = dump(session, "bookings", "csv")
    assert csv_text.splitlines()[0].startswith("id,reference,client,client_name,builder,session_id,session,")
    jsonl = dump(session, "clients", "jsonl")
    assert json.loads(jsonl)["email"] == "ada@example.com"
    toml_text = dump(session, "bookings", "toml")
    assert toml_text.startswith("[[bookings]]\n") and "pathway" not in toml_text


@pytest.mark.parametrize("fmt", ["csv", "tsv", "json", "jsonl", "toml"])
def test_an_export_of_nothing_imports_back_as_nothing(session: Session, fmt: str) -> None:
    # TOML has no empty array of tables, so an export of no skills is an empty document, which the import refused
    # as 'the document holds no 'skills'' (exit 6) where every other format's empty export imported back
    assert load(session, "skills", "[]", "json").as_record()["created"] == 0  # (the session's first statement)
    empty = io.StringIO()
    export_data(session, "skills", empty, fmt)
    assert load(session, "skills", empty.getvalue(), fmt).as_record()["created"] == 0
    with pytest.raises(InvalidInput, match="the document holds no 'skills' \\(it holds: pathways\\)"):
        load(session, "skills", '[[pathways]]\nslug = "x"\n', "toml")  # another kind's document still is no skills


# -- property-based round trips ---------------------------------------------------------------------------

NAME_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")) | st.sampled_from(["'", '"', ",", ";", "-"]),
    max_size=40,
).map(str.strip)
EMAILS = st.from_regex(r"[a-z0-9]{1,10}(\.[a-z0-9]{1,5})?@[a-z]{1,8}\.(com|org|example)", fullmatch=True)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    clients=st.dictionaries(EMAILS, st.tuples(NAME_TEXT, NAME_TEXT, NAME_TEXT), min_size=1, max_size=8),
    fmt=st.sampled_from(["csv", "tsv", "json", "jsonl", "toml"]),
)
# names are stored in NFC (services.plain_text.nfc): a decomposed accent, and a CJK compatibility ideograph, which
# NFC writes as its unified one (U+F900 as U+8C48)
@example(clients={"0@a.com": ("Cafe\u0301", "", "\uf900")}, fmt="csv")
def test_clients_round_trip_through_every_format(
    session: Session, clients: dict[str, tuple[str, str, str]], fmt: str
) -> None:
    records = [
        {"email": email, "name": name or None, "company": company or None, "industry": industry or None}
        for email, (name, company, industry) in sorted(clients.items())
    ]
    stream = io.StringIO()
    writer = RecordWriter(stream, fmt, ["email", "name", "company", "industry"], kind="clients")
    for record in records:
        writer.write(record)
    writer.close()
    savepoint = session.begin_nested()
    try:
        assert load(session, "clients", stream.getvalue(), fmt).total("created") == len(records)
        exported = dump(session, "clients")
        assert [{key: row[key] for key in records[0]} for row in exported] == [
            {key: nfc(value) for key, value in record.items()} for record in records
        ]
        again = io.StringIO()
        export_data(session, "clients", again, fmt)
        assert load(session, "clients", again.getvalue(), fmt).total("unchanged") == len(records)
    finally:
        savepoint.rollback()


STARTS = st.datetimes(min_value=dt.datetime(2025, 1, 1), max_value=dt.datetime(2035, 1, 1)).map(
    lambda value: value.replace(second=0, microsecond=0, tzinfo=dt.UTC)
)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(
        st.tuples(
            st.sampled_from(["ada@example.com", "bob@example.com", "cy@example.org"]),
            st.sampled_from(["intro", "review"]),
            STARTS,
            st.sampled_from(["completed", "cancelled", "no_show", "pending", "confirmed"]),
            st.sampled_from(["UTC", "Europe/London", "America/New_York", "Asia/Kolkata"]),
            st.sampled_from([None, "accelerate", "play"]),
            st.decimals(min_value=0, max_value=9999, places=2, allow_nan=False, allow_infinity=False),
            NAME_TEXT,
        ),
        min_size=1,
        max_size=12,
        unique_by=lambda row: (row[0], row[1], row[2]),
    ),
    fmt=st.sampled_from(["csv", "json", "jsonl", "toml"]),
)
def test_bookings_round_trip_export_import_export(session: Session, rows: list[tuple[Any, ...]], fmt: str) -> None:
    savepoint = session.begin_nested()
    try:
        if not session.scalar(select(func.count()).select_from(Booking)) and not _has_intro(session):
            add_session_type(session, "Intro", slug="intro", duration=30)
            add_session_type(session, "Review", slug="review", duration=60, price="20.00")
        columns = [
            "client",
            "session",
            "start_time",
            "status",
            "client_timezone",
            "pathway",
            "amount",
            "cancellation_reason",
        ]
        stream = io.StringIO()
        writer = RecordWriter(stream, fmt, columns, kind="bookings")
        for row in rows:
            writer.write(dict(zip(columns, (*row[:6], Decimal(row[6]), row[7] or None), strict=True)))
        writer.close()
        summary = load(session, "bookings", stream.getvalue(), fmt, allow_overlap=True)
        assert (summary.total("created"), summary.rejected) == (len(rows), 0)
        exported = dump(session, "bookings")
        by_key = {(item["client"], item["session"], item["start_time"]): item for item in exported}
        for client, slug, start, status, zone, pathway, amount, reason in rows:
            item = by_key[(client, slug, start.isoformat().replace("+00:00", "Z"))]
            assert (item["status"], item["client_timezone"], item["pathway"], item["amount"]) == (
                status,
                zone,
                pathway,
                f"{Decimal(amount):.2f}",
            )
            assert item["cancellation_reason"] == (reason or None)
        # what was exported imports back unchanged, in any format
        again = io.StringIO()
        export_data(session, "bookings", again, fmt)
        assert load(session, "bookings", again.getvalue(), fmt, allow_overlap=True).total("unchanged") == len(rows)
        assert dump(session, "bookings") == exported
    finally:
        savepoint.rollback()


def _has_intro(session: Session) -> bool:
    from bapp_cli.db.models import SessionType

    return session.scalar(select(SessionType.id).where(SessionType.slug == "intro")) is not None


def test_derived_references_use_the_reference_alphabet() -> None:
    reference = derived_reference("a@b.co", "intro", NOW)
    assert reference.startswith("BK-") and len(reference) == 11
    assert set(reference[3:]) <= set("23456789ABCDEFGHJKMNPQRSTUVWXYZ")
    assert reference == derived_reference("a@b.co", "intro", NOW)
    assert reference != derived_reference("a@b.co", "intro", NOW + dt.timedelta(minutes=1))
    assert not set(reference[3:]) & set(string.ascii_lowercase)


def test_user_skill_progress_rows_are_set_based(session: Session) -> None:
    """A progress import of many rows issues a bounded number of statements (no per-row queries)."""
    from sqlalchemy import event

    load(session, "skills", "slug,name,links\n" + "".join(f"k{i},K{i},play:1\n" for i in range(30)))
    load(session, "clients", "email\n" + "".join(f"c{i}@example.com\n" for i in range(40)))
    statements: list[str] = []
    listener = lambda *args: statements.append(args[2])  # noqa: E731
    bind = session.connection().engine
    event.listen(bind, "before_cursor_execute", listener)
    try:
        text = "client,skill,status\n" + "".join(
            f"c{i}@example.com,k{j},completed\n" for i in range(40) for j in range(30)
        )
        summary = load(session, "progress", text)
    finally:
        event.remove(bind, "before_cursor_execute", listener)
    assert summary.total("created") == 1200
    assert count(session, UserSkillProgress) == 1200
    # the completion rules (services.progress) insert each badge they award, with its audit row, one by one;
    # everything the import itself runs is bounded
    ours = [
        statement
        for statement in statements
        if not statement.startswith(("INSERT INTO audit_entries", "INSERT INTO badges"))
    ]
    assert len(ours) < 30, "\n".join(ours)
    assert count(session, Badge) == 40


def _loaded_with_statement_texts(session: Session, kind: str, text: str, *, batch_size: int) -> tuple[Any, set[str]]:
    """The import's summary, and every distinct SQL text it sent."""
    from sqlalchemy import event

    texts: set[str] = set()

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        texts.add(statement)

    engine = session.get_bind()
    event.listen(engine, "before_cursor_execute", seen)
    try:
        return load(session, kind, text, batch_size=batch_size), texts
    finally:
        event.remove(engine, "before_cursor_execute", seen)


def test_a_long_import_looks_clients_up_in_one_statement_text_not_one_per_batch(session: Session) -> None:
    """Flat memory: SQLite's driver keeps every prepared statement of the last 128 texts, and an `IN (…)`
    list's text changes with its length. Batches with 1 to 40 distinct clients each must look clients up
    in ONE text (the values are one bound list: `bulk.any_of`), never one text per batch."""

    add_session_type(session, "Intro", slug="intro", duration=30)
    first = dt.datetime(2029, 1, 1, tzinfo=dt.UTC)
    rows = [
        f"c{batch}-{index % (batch + 1)}@example.com,intro,{start.isoformat()},completed,,,"
        for batch in range(40)
        for index in range(50)
        if (start := first + dt.timedelta(hours=50 * batch + index))
    ]
    summary, texts = _loaded_with_statement_texts(session, "bookings", csv_of(*rows), batch_size=50)
    assert (summary.total("created"), summary.rejected) == (2000, 0)
    lookups = [statement for statement in texts if statement.startswith("SELECT")]
    assert len([statement for statement in lookups if "client_profiles" in statement]) == 1, lookups
    # on PostgreSQL two of them are the import's share locks on the skills and pathways (db.locks.lock_for_import)
    assert len(lookups) <= 12, "\n".join(lookups)


def test_a_builders_import_reads_no_builder_record_back_per_row(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The import writes its summary alone: `builders add/update` print the builder's record (a plain read of it,
    `list_builders`), which each row of a builders import read back and dropped, a query per row (2,000 builders:
    about 2.3 s more CPU). Both its new and its changed rows read none."""
    import bapp_cli.services.builders as builders

    reads: list[Any] = []
    monkeypatch.setattr(builders, "list_builders", lambda *args, **kwargs: reads.append(kwargs) or [{}])
    rows = "".join(f"b{index}@example.com,Builder {index},UTC,5\n" for index in range(20))
    summary = load(session, "builders", "email,name,timezone,buffer_minutes\n" + rows)
    assert (summary.total("created"), reads) == (20, [])
    summary = load(session, "builders", "email,name,timezone,buffer_minutes\n" + rows.replace(",5", ",10"))
    assert (summary.total("updated"), reads) == (20, [])


def test_a_bookings_backfill_asks_nothing_of_the_history_of_the_clients_it_creates(session: Session) -> None:
    """P3's path: the enrolments a bookings import opens for the clients it creates (who have no history) need no
    completion rules, which cost a query per pathway and batch; those of clients already here still have them
    (tests/cli/test_import.py::test_an_enrolment_the_bookings_import_makes_for_a_finished_pathway_is_completed)."""
    add_session_type(session, "Intro", slug="intro", duration=30)
    first = dt.datetime(2029, 1, 1, tzinfo=dt.UTC)
    # 15 clients, each enrolled in accelerate by one batch and in pivot by a later one
    rows = [
        f"c{i % 15}@example.com,intro,{(first + dt.timedelta(hours=i)).isoformat()},completed,,"
        f"{('accelerate', 'pivot')[i // 15]},"
        for i in range(30)
    ]
    summary, texts = _loaded_with_statement_texts(session, "bookings", csv_of(*rows), batch_size=10)
    record = summary.as_record()
    assert (record["created"], record["enrolled"], record["clients_created"]) == (30, 30, 15)
    assert [text for text in texts if "user_skill_progress" in text] == []


def test_a_progress_import_looks_keys_up_in_one_text_whatever_the_batch(session: Session) -> None:
    """Every importer's lookups are `bulk.any_of`, not only the bookings import's: batches with 1 to 20
    distinct clients look their clients and their stored progress up in ONE text each (an `IN (…)` list
    would be one text per length, each a prepared statement SQLite's driver keeps)."""

    load(session, "skills", "slug,name,links\n" + "".join(f"k{i},K{i},play:1\n" for i in range(400)))
    load(session, "clients", "email\n" + "".join(f"c{i}@example.com\n" for i in range(20)))
    rows = [f"c{row % (row // 20 + 1)}@example.com,k{row},in_progress\n" for row in range(400)]
    summary, texts = _loaded_with_statement_texts(
        session, "progress", "client,skill,status\n" + "".join(rows), batch_size=20
    )
    assert (summary.total("created"), summary.rejected) == (400, 0)
    lookups = [text for text in texts if text.startswith("SELECT")]  # nothing completes: the import's own reads
    assert len([text for text in lookups if "client_profiles" in text]) == 1, lookups
    assert len([text for text in lookups if "FROM user_skill_progress \nWHERE" in text]) == 1, lookups
    assert not [text for text in lookups if re.search(r"IN \((\?|%\()", text)], lookups


def test_a_batch_ends_once_its_rows_took_a_few_megabytes_of_the_file(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A record may be 64 MB: a batch of 5,000 such rows is held whole until it is written, so a batch also ends once
    its rows took MAX_BATCH_BYTES of the input. A CSV reader keeps its longest cell at 4 bytes a character, so one is
    made anew after a long row: the line numbers after it (and a quoted cell over two lines) stay right."""
    from bapp_cli.services.transfer.people import ClientImporter

    sizes: list[int] = []
    apply = ClientImporter.apply
    monkeypatch.setattr(ClientImporter, "apply", lambda self, rows: sizes.append(len(rows)) or apply(self, rows))
    long = "x" * (1 << 20)  # a quarter of MAX_BATCH_BYTES
    rows = [f"long{index}@example.org,{long}" for index in range(8)]
    text = "email,company\nann@example.org,A\n" + "\n".join(rows) + '\nbob@example.org,"two\nlines"\nnot-an-email,B\n'
    problems = refused(session, "clients", text)
    assert sizes == [5, 4, 2]  # each ends with the long row that took it past the bound; the 2 rows left
    assert [(line, field) for line, field, _ in problems] == [
        *((line, "company") for line in range(3, 11)),
        (13, "email"),
    ]


def test_a_backup_with_an_archived_pathway_merges_into_a_database_with_data(session: Session) -> None:
    """A backup's archived pathway arrives with its links, sessions, enrolments, progress and bookings (one holding a
    slot too): the pathways section gave it the backup's state, so they are its history, not new additions the
    archived pathway refuses (a merge of a backup with one was exit 6). Merged into its own database it still
    changes nothing."""
    from bapp_cli.services.pathway_admin import archive_pathway

    def merge(
        backup: dict[str, Any],
    ) -> ImportSummary:  # later than the seeding: an enrolment it wrote is not this one's
        source = Source("json", io.BytesIO(json.dumps(backup).encode()))
        with session.begin_nested():
            return import_data(session, "all", source, options=ImportOptions(), now=NOW + dt.timedelta(days=1))

    with session.begin_nested() as seeded:
        load(session, "clients", "email\nada@example.com\n")
        load(session, "skills", "slug,name,links\nplan,Plan,accelerate:1\n")
        load(session, "sessions", "slug,title,duration_minutes,category,pathways\nlab,Lab,60,pathway,accelerate\n")
        load(session, "enrolments", "client,pathway\nada@example.com,accelerate\n")
        load(session, "progress", "client,skill,status\nada@example.com,plan,in_progress\n")
        load(session, "bookings", csv_of("ada@example.com,lab,2029-03-04T09:00Z,confirmed,,accelerate,"))
        archive_pathway(session, "accelerate", now=NOW)  # a booking that holds a slot keeps it
        load(session, "skills", "slug,archived\nplan,true\n")
        backup = dump(session, "all")
        before = {kind: dump(session, kind) for kind in ("pathways", "skills", "sessions", "enrolments", "progress")}
        itself = merge(backup)  # into its own database: nothing changes
        assert (itself.total("created"), itself.total("updated"), itself.rejected) == (0, 0, 0)
        assert {kind: dump(session, kind) for kind in before} == before
        seeded.rollback()
    load(session, "clients", "email\nbea@example.com\n")  # a database with data: a merge, not a restore
    summary = merge(backup)
    assert (summary.restored, summary.rejected) == (False, 0)
    kinds = summary.as_record()["kinds"]
    assert [kinds[kind]["created"] for kind in ("skills", "sessions", "enrolments", "progress", "bookings")] == [1] * 5
    merged = {kind: dump(session, kind) for kind in ("pathways", "skills", "sessions", "enrolments", "progress")}
    assert merged["pathways"][0]["archived"] and merged["skills"][0]["archived"]
    assert merged["skills"][0]["links"] == ["accelerate:1"] and merged["sessions"][0]["pathways"] == ["accelerate"]
    assert [(row["client"], row["pathway"]) for row in merged["enrolments"]] == [("ada@example.com", "accelerate")]
    assert [(row["client"], row["skill"]) for row in merged["progress"]] == [("ada@example.com", "plan")]
    assert [(row["status"], row["pathway"]) for row in dump(session, "bookings")] == [("confirmed", "accelerate")]


def test_a_new_progress_row_needing_an_enrolment_in_an_archived_pathway_is_refused(session: Session) -> None:
    """`skills assign ada s1 --pathway accelerate` refuses an archived accelerate for Ada, who is not enrolled in it
    (it takes no new enrolments), and takes it for Bob, who is. `import progress` added Ada's row under accelerate
    anyway, without the enrolment the command makes (exit 0), or moved her pathway-less s2 row under it; now both are
    refused as the command refuses them. A backup
    whose own pathways section archived accelerate still brings its row in as history."""
    from bapp_cli.services.pathway_admin import archive_pathway

    load(session, "clients", "email\nada@example.com\nbob@example.com\n")
    load(session, "skills", "slug,name,links\ns1,S1,accelerate:1\ns2,S2,accelerate:1\n")
    load(session, "enrolments", "client,pathway\nbob@example.com,accelerate\n")
    load(session, "progress", "client,skill,pathway\nada@example.com,s2,\n")  # a row under no pathway
    archive_pathway(session, "accelerate", now=NOW)
    rows = [
        "client,skill,pathway,status",
        "ada@example.com,s1,accelerate,in_progress",
        "bob@example.com,s1,accelerate,",
        "ada@example.com,s2,accelerate,",  # moved under it
    ]
    source = Source("csv", io.BytesIO("\n".join(rows).encode()))
    summary = import_data(session, "progress", source, options=ImportOptions(continue_on_error=True), now=NOW)
    assert [(error.line, error.field, error.message) for error in summary.errors] == [
        (line, "pathway", "'accelerate' is archived and takes no new enrolments") for line in (2, 4)
    ]
    assert [(row["client"], row["skill"], row["pathway"]) for row in dump(session, "progress")] == [
        ("ada@example.com", "s2", None),
        ("bob@example.com", "s1", "accelerate"),
    ]
    document = {"bapp": dump(session, "all")["bapp"], "pathways": [{"slug": "accelerate", "archived": True}]}
    document["progress"] = [
        {"client": "ada@example.com", "skill": "s1", "pathway": "accelerate", "status": "in_progress"}
    ]
    source = Source("json", io.BytesIO(json.dumps(document).encode()))
    assert import_data(session, "all", source, options=ImportOptions(), now=NOW).errors == []


def test_a_backup_header_adds_nothing_to_a_pathway_or_skill_its_own_sections_did_not_archive(session: Session) -> None:
    """A backup's archived pathway or skill keeps its history because the backup's own section archived it. A document
    with the `bapp` header whose sections never said so (hand-made, or merged after the database archived one) adds
    no link, session, enrolment, progress row or booking to it, as the per-kind imports and the commands refuse them:
    the header alone let each one in but the booking."""
    from bapp_cli.services.pathway_admin import archive_pathway

    load(session, "clients", "email\nada@example.com\n")
    load(session, "skills", "slug,name\nplan,Plan\nold,Old\n")
    load(session, "sessions", "slug,title,duration_minutes,category,pathways\nlab,Lab,60,pathway,accelerate\n")
    archive_pathway(session, "accelerate", now=NOW)
    load(session, "skills", "slug,archived\nold,true\n")
    lab = {"slug": "talk", "title": "Talk", "duration_minutes": 60, "category": "pathway", "pathways": ["accelerate"]}
    booking = {
        "client": "ada@example.com",
        "session": "lab",
        "start_time": "2029-03-04T09:00Z",
        "pathway": "accelerate",
        "status": "confirmed",
    }
    document = {
        "bapp": dump(session, "all")["bapp"],
        "pathways": [{"slug": "pivot", "archived": True}],  # archived here: its own history would be taken
        "skills": [{"slug": "plan", "links": ["accelerate:1"]}, {"slug": "old", "links": ["pivot:1"]}],
        "sessions": [lab],
        "enrolments": [{"client": "ada@example.com", "pathway": "accelerate"}],
        "progress": [{"client": "ada@example.com", "skill": "old", "status": "in_progress"}],
        "bookings": [booking],
    }
    source = Source("json", io.BytesIO(json.dumps(document).encode()))
    summary = import_data(session, "all", source, options=ImportOptions(continue_on_error=True), now=NOW)
    assert [(error.field, error.message) for error in summary.errors] == [
        ("links", "pathway 'accelerate' is archived and takes no new skill links"),
        ("links", "skill 'old' is archived and takes no new links"),
        ("pathways", "pathway 'accelerate' is archived and takes no new sessions"),
        ("pathway", "'accelerate' is archived and takes no new enrolments"),
        ("skill", "the skill is archived and cannot be assigned"),
        ("pathway", "'accelerate' is archived and takes no new bookings"),
    ]
    assert summary.as_record()["kinds"]["pathways"]["updated"] == 1


def test_a_backup_row_refused_archives_nothing_and_lets_no_history_in(session: Session) -> None:
    """Only a pathway or skill row the import takes lets the backup's later records in as its history: a refused
    row (here a gap in the tiers, `--continue-on-error`) archived nothing, so a pathway or skill archived in this
    database still refuses a new enrolment or progress row, as it would without the row. The refused row let both in.
    A taken row's archived skill still brings its new links (its history)."""
    from bapp_cli.services.pathway_admin import archive_pathway

    load(session, "clients", "email\nada@example.com\n")
    load(session, "skills", "slug,name,links\nold,Old,\nkept,Kept,\n")
    archive_pathway(session, "play", now=NOW)
    load(session, "skills", "slug,archived\nold,true\nkept,true\n")
    document = {
        "bapp": dump(session, "all")["bapp"],
        "pathways": [{"slug": "play", "archived": True, "tiers": [{"tier": 9, "name": "Gap"}]}],
        "skills": [
            {"slug": "old", "archived": True, "name": ""},
            {"slug": "kept", "archived": True, "links": ["pivot:1"]},
        ],
        "enrolments": [{"client": "ada@example.com", "pathway": "play"}],
        "progress": [{"client": "ada@example.com", "skill": "old", "status": "in_progress"}],
    }
    source = Source("json", io.BytesIO(json.dumps(document).encode()))
    summary = import_data(session, "all", source, options=ImportOptions(continue_on_error=True), now=NOW)
    assert [(error.kind, error.field) for error in summary.errors] == [
        ("pathways", "tiers"),
        ("skills", "name"),
        ("enrolments", "pathway"),
        ("progress", "skill"),
    ]
    assert [row["links"] for row in dump(session, "skills") if row["slug"] == "kept"] == [["pivot:1"]]
    assert dump(session, "enrolments") == [] and dump(session, "progress") == []


@pytest.mark.parametrize("fmt", ["csv", "json", "toml"])
def test_an_archived_pathway_keeps_its_skill_links_but_takes_no_new_ones(session: Session, fmt: str) -> None:
    """`export skills` imports back into its own database (or a copy) unchanged, an archived pathway's links and an
    archived skill's included: only a link the row adds is refused, as `skills link` refuses it. Moving them to another
    database is `import all` of a backup (`test_a_backup_with_an_archived_pathway_merges_…`)."""
    from bapp_cli.services.pathway_admin import archive_pathway

    load(
        session, "skills", "slug,name,links\nplan,Plan,accelerate:1\nbuild,Build,accelerate:2;pivot:1\nold,Old,play:1\n"
    )
    archive_pathway(session, "accelerate", now=NOW)
    load(session, "skills", "slug,archived\nold,true\n")
    exported = dump(session, "skills", fmt)
    back = load(session, "skills", exported if fmt != "json" else json.dumps(exported), fmt).as_record()
    assert (back["unchanged"], back["updated"], back["rejected"]) == (3, 0, 0)
    kept = load(session, "skills", "slug,name,links\nbuild,Builder,accelerate:2;pivot:1\nold,Older,play:1\n")
    assert kept.total("updated") == 2  # another column changed, the archived pathway's (and skill's) links kept
    assert refused(
        session, "skills", "slug,name,links\nnew,New,accelerate:1\nplan,,accelerate:2\nold,,play:1;pivot:1\n"
    ) == [
        (2, "links", "pathway 'accelerate' is archived and takes no new skill links"),
        (3, "links", "pathway 'accelerate' is archived and takes no new skill links"),
        (4, "links", "skill 'old' is archived and takes no new links"),
    ]


def _bookings_indexes(session: Session) -> list[tuple[Any, ...]]:
    """Each index of the bookings table: its name, columns, uniqueness and (a partial one's) condition."""
    from sqlalchemy import inspect

    indexes = inspect(session.connection()).get_indexes("bookings")
    options = [sorted((key, str(value)) for key, value in i.get("dialect_options", {}).items()) for i in indexes]
    return sorted((i["name"], i["column_names"], i["unique"], where) for i, where in zip(indexes, options, strict=True))


def test_a_backfill_into_an_empty_table_leaves_every_bookings_index_as_it_was(session: Session) -> None:
    """Into an empty bookings table the import drops the indexes it never reads and builds them at the end
    (SQLite; `UNREAD_INDEXES`): whether it writes the rows, is refused, or finds rows already there, the
    table ends with every index it had, and the rebuilt ones hold every row."""
    add_session_type(session, "Intro", slug="intro", duration=30)
    indexes = _bookings_indexes(session)
    assert {"ix_bookings_start_time", "ix_bookings_pathway_time"} <= {index[0] for index in indexes}
    rows = [f"c{i}@example.com,intro,2029-01-0{i + 1}T10:00Z,completed,,{('', 'pivot')[i % 2]}," for i in range(5)]
    bad = "c9@example.com,intro,never,completed,,,"
    assert refused(session, "bookings", csv_of(*rows, bad))[0][:2] == (7, "start_time")
    assert _bookings_indexes(session) == indexes
    assert load(session, "bookings", csv_of(*rows), batch_size=2).total("created") == 5
    assert _bookings_indexes(session) == indexes
    by_start = select(Booking.start_time).with_hint(Booking, "INDEXED BY ix_bookings_start_time", "sqlite")
    assert len(session.scalars(by_start.where(Booking.start_time > dt.datetime(2029, 1, 1, tzinfo=dt.UTC))).all()) == 5
    assert load(session, "bookings", csv_of(rows[0].replace("c0@", "c8@")), batch_size=2).total("created") == 1
    assert _bookings_indexes(session) == indexes

"""`create_booking`: one test per booking rule and per refusal, on SQLite and PostgreSQL.

Every refusal checks the error type (exit code), that the message names the field, and that nothing was
written — no booking, user, enrolment or audit row — even inside the same transaction.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, event, select
from sqlalchemy.orm import Session

from bapp_cli.db.models import AuditEntry, Booking, BuilderProfile, ClientProfile, Enrolment, Pathway, User
from bapp_cli.errors import BappError, Conflict, InvalidInput, NotFound
from bapp_cli.services import booking as booking_service
from bapp_cli.services.answers import AnswerInput
from bapp_cli.services.booking import BookingRequest, bookable_slots, create_booking
from bapp_cli.services.enrolment import enrol
from bapp_cli.services.instants import instant_text
from tests.services.test_booking_factories import (
    NOW,
    add_booking,
    add_builder,
    add_client,
    add_session_type,
    at,
    count,
    get_pathway,
    question,
)
from tests.services.test_progress_factories import counting_statements


def book(session: Session, /, **fields: Any) -> booking_service.BookingCreated:
    values: dict[str, Any] = {"client_email": "ada@example.com", "session": "free-chat", "start": at(days=1)}
    values.update(fields)
    return create_booking(session, BookingRequest(**values), now=NOW)


def snapshot(session: Session) -> tuple[int, int, int, int, int]:
    return (
        count(session, Booking),
        count(session, User),
        count(session, ClientProfile),
        count(session, Enrolment),
        count(session, AuditEntry),
    )


def refused(session: Session, error: type[BappError], /, *, field: str, **fields: Any) -> BappError:
    """Run a booking that must be refused with `error`, naming `field`, having written nothing."""
    before = snapshot(session)
    with pytest.raises(error) as caught:
        book(session, **fields)
    assert field in caught.value.message, caught.value.message
    assert snapshot(session) == before
    return caught.value


@pytest.fixture
def world(session: Session) -> dict[str, Any]:
    coach = add_builder(session)
    ada = add_client(session)
    return {
        "coach": coach,
        "ada": ada,
        "free": add_session_type(session, "Free Chat", category="free", builder=coach),
        "review": add_session_type(
            session, "Accelerate Review", category="pathway", builder=coach, pathways=["accelerate"], price="30.00"
        ),
        "clinic": add_session_type(session, "Agent Clinic", category="specialized", builder=coach, price="0.00"),
    }


# -- rule 1: a bookable session and a builder who accepts bookings -------------------------------------------


def test_unknown_session_is_not_found(session: Session, world: dict[str, Any]) -> None:
    error = refused(session, NotFound, field="session", session="no-such-session")
    assert error.exit_code == 7


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"enabled": False}, "disabled locally"),
        ({"calendly_uri": "https://api.calendly.com/event_types/X", "remote_active": False}, "inactive in Calendly"),
        ({"remote_deleted_at": NOW}, "deleted in Calendly"),
        ({"present_in_last_sync": False}, "missing from the last Calendly sync"),
    ],
)
def test_unbookable_session_is_refused_with_the_reason(
    session: Session, world: dict[str, Any], change: dict[str, Any], reason: str
) -> None:
    for name, value in change.items():
        setattr(world["free"], name, value)
    session.flush()
    error = refused(session, InvalidInput, field="session", client_email="new@example.com")
    assert reason in error.message
    assert error.exit_code == 6


def test_builder_not_accepting_bookings_is_refused(session: Session, world: dict[str, Any]) -> None:
    session.scalars(select(booking_service.BuilderProfile)).one().accepting_bookings = False
    session.flush()
    error = refused(session, InvalidInput, field="builder")
    assert "not accepting" in error.message and "--accepting" in (error.hint or "")


def test_unknown_builder_is_not_found(session: Session, world: dict[str, Any]) -> None:
    refused(session, NotFound, field="builder", builder_email="ghost@example.com")


def test_builder_defaults_to_the_session_owner_and_can_be_given(session: Session, world: dict[str, Any]) -> None:
    other = add_builder(session, "other@example.com")
    assert book(session).booking.builder == "coach@example.com"
    given = book(session, builder_email="OTHER@example.com", start=at(days=2))
    assert given.booking.builder == other.email


# -- rule 2: a future start within the builder's window; an offered duration --------------------------------


def test_past_start_is_refused_and_allow_past_records_it(session: Session, world: dict[str, Any]) -> None:
    error = refused(session, InvalidInput, field="start", start=NOW - dt.timedelta(hours=1))
    assert "--allow-past" in (error.hint or "")
    refused(session, InvalidInput, field="start", start=NOW)
    created = book(session, start=NOW - dt.timedelta(days=3), allow_past=True)
    assert created.booking.start_time == NOW - dt.timedelta(days=3)


def test_minimum_notice_and_maximum_advance(session: Session, world: dict[str, Any]) -> None:
    profile = session.scalars(select(booking_service.BuilderProfile)).one()
    profile.minimum_notice_hours = 24
    profile.max_advance_days = 30
    session.flush()
    error = refused(session, InvalidInput, field="start", start=at(days=0, hours=23))
    assert "24 hours' notice" in error.message and "2030-01-02T09:00:00Z" in error.message
    error = refused(session, InvalidInput, field="start", start=at(days=30, minutes=1))
    assert "30 days ahead" in error.message
    assert book(session, start=at(days=0, hours=24)).booking.status == "confirmed"
    assert book(session, start=at(days=30)).booking.status == "confirmed"
    # --allow-past skips every time rule (backfills)
    assert book(session, start=at(days=0, hours=2), allow_past=True).existing is False


def test_duration_must_be_the_sessions_or_one_of_its_options(session: Session, world: dict[str, Any]) -> None:
    world["free"].duration_options = [30, 60]
    session.flush()
    error = refused(session, InvalidInput, field="duration", duration=45)
    assert error.hint == "choose one of: 30, 60"
    created = book(session, duration=60).booking
    assert created.end_time - created.start_time == dt.timedelta(minutes=60)
    default = book(session, start=at(days=2)).booking
    assert default.end_time - default.start_time == dt.timedelta(minutes=30)


# -- rule 3: accounts -------------------------------------------------------------------------------------


def test_free_session_creates_the_account(session: Session, world: dict[str, Any]) -> None:
    created = book(session, client_email="  New.Person@Example.COM ", name="New Person")
    assert created.account_created is True
    assert created.booking.client == "new.person@example.com"
    assert created.booking.client_name == "New Person"
    user = session.scalars(select(User).where(User.email == "new.person@example.com")).one()
    assert session.scalars(select(ClientProfile).where(ClientProfile.user_id == user.id)).one()
    assert [entry.entity for entry in session.scalars(select(AuditEntry).order_by(AuditEntry.id))] == [
        "client",
        "booking",
    ]


def test_existing_client_is_not_a_new_account(session: Session, world: dict[str, Any]) -> None:
    assert book(session).account_created is False
    assert count(session, User) == 2


def test_session_requiring_an_account_refuses_an_unknown_email(session: Session, world: dict[str, Any]) -> None:
    error = refused(session, InvalidInput, field="client", client_email="new@example.com", session="agent-clinic")
    assert error.hint is not None and "--create-account" in error.hint
    created = book(session, client_email="new@example.com", session="agent-clinic", create_account=True)
    assert created.account_created is True


def test_invalid_email_is_refused(session: Session, world: dict[str, Any]) -> None:
    refused(session, InvalidInput, field="client", client_email="not-an-email")


def test_public_specialized_session_needs_no_account(session: Session, world: dict[str, Any]) -> None:
    world["clinic"].requires_auth = False
    session.flush()
    assert book(session, client_email="walk.in@example.com", session="agent-clinic").account_created is True


# -- rule 4: pathways -------------------------------------------------------------------------------------


def test_pathway_session_uses_the_single_active_linked_enrolment(session: Session, world: dict[str, Any]) -> None:
    enrol(session, world["ada"], get_pathway(session, "accelerate"), now=NOW)
    created = book(session, session="accelerate-review")
    assert created.booking.pathway == "accelerate"
    assert created.enrolled is False


def test_pathway_session_without_enrolment_lists_the_choices(session: Session, world: dict[str, Any]) -> None:
    error = refused(session, InvalidInput, field="pathway", session="accelerate-review")
    assert "choose one of: accelerate" in error.message and error.hint == "pass --pathway P"


def test_pathway_session_with_several_active_enrolments_is_ambiguous(session: Session, world: dict[str, Any]) -> None:
    review = world["review"]
    session.add(
        booking_service.SessionTypePathway(session_type_id=review.id, pathway_id=get_pathway(session, "pivot").id)
    )
    for slug in ("accelerate", "pivot", "play"):
        enrol(session, world["ada"], get_pathway(session, slug), now=NOW)
    error = refused(session, InvalidInput, field="pathway", session="accelerate-review")
    assert "several" in error.message and "accelerate, pivot" in error.message and "play" not in error.message


def test_pathway_not_linked_to_the_session_is_refused(session: Session, world: dict[str, Any]) -> None:
    error = refused(session, InvalidInput, field="pathway", session="accelerate-review", pathway="play")
    assert "not linked" in error.message


def test_unknown_pathway_is_not_found(session: Session, world: dict[str, Any]) -> None:
    refused(session, NotFound, field="pathway", pathway="juggling")


@pytest.mark.parametrize(
    ("zone", "now", "today"),
    [
        ("Pacific/Auckland", NOW + dt.timedelta(hours=12), dt.date(2030, 1, 2)),  # 21:00 UTC: the 2nd there (UTC+13)
        ("Pacific/Pago_Pago", NOW, dt.date(2029, 12, 31)),  # 09:00 UTC: still the 31st there (UTC-11)
    ],
    ids=["east", "west"],
)
def test_a_booking_enrols_the_client_from_the_user_s_today(
    session: Session, world: dict[str, Any], zone: str, now: dt.datetime, today: dt.date
) -> None:
    """The enrolment a booking opens starts today in the command's zone (--timezone, kept on its session by the
    unit of work), as `clients enroll` starts one: it started on UTC's day, the user's yesterday east of UTC."""
    session.info["zone"] = ZoneInfo(zone)
    request = BookingRequest("ada@example.com", "accelerate-review", at(days=1), pathway="accelerate")
    assert create_booking(session, request, now=now).enrolled is True
    assert session.scalars(select(Enrolment.start_date)).one() == today != now.date()


def test_booking_with_a_pathway_enrols_the_client_with_the_builder_as_coach(
    session: Session, world: dict[str, Any]
) -> None:
    created = book(session, session="accelerate-review", pathway="ACCELERATE")
    assert created.enrolled is True and created.booking.pathway == "accelerate"
    enrolment = session.scalars(select(Enrolment)).one()
    assert (enrolment.status, enrolment.builder_id, enrolment.start_date) == ("active", world["coach"].id, NOW.date())
    (audited,) = session.scalars(select(AuditEntry.changes).where(AuditEntry.entity == "enrolment"))
    assert audited == {"status": "active", "start_date": NOW.date().isoformat(), "builder": "coach@example.com"}
    # any session may carry a pathway; a second booking finds the enrolment
    again = book(session, session="free-chat", pathway="accelerate", start=at(days=2))
    assert again.enrolled is False and again.booking.pathway == "accelerate"


def test_a_booking_that_gives_an_enrolment_its_coach_audits_it(session: Session, world: dict[str, Any]) -> None:
    # the coach decides whose dashboard (`reports client-progress --builder`) shows the client: a change to it
    # is audited like every other, not left to be guessed from the booking's row
    enrol(session, world["ada"], get_pathway(session, "accelerate"), now=NOW)
    assert session.scalars(select(Enrolment)).one().builder_id is None
    book(session, session="accelerate-review")
    assert session.scalars(select(Enrolment)).one().builder_id == world["coach"].id
    entries = session.scalars(select(AuditEntry).where(AuditEntry.entity == "enrolment").order_by(AuditEntry.id))
    assert [(entry.entity_key, entry.changes) for entry in entries][1:] == [
        ("ada@example.com:accelerate", {"builder": [None, "coach@example.com"]})
    ]


def test_archived_pathway_takes_no_bookings(session: Session, world: dict[str, Any]) -> None:
    get_pathway(session, "play").archived = True
    session.flush()
    error = refused(session, InvalidInput, field="pathway", pathway="play")
    assert "archived" in error.message


def test_pathway_session_linked_to_nothing_is_refused(session: Session, world: dict[str, Any]) -> None:
    add_session_type(session, "Orphan Review", category="pathway", builder=world["coach"])
    error = refused(session, InvalidInput, field="session", session="orphan-review")
    assert "--pathway" in (error.hint or "")


# -- rule 5: answers --------------------------------------------------------------------------------------


def test_answers_are_validated_and_stored_normalised(session: Session, world: dict[str, Any]) -> None:
    world["free"].custom_questions = [
        question("Tools you use", "multi_select", position=1, choices=["Python", "Zapier", "Excel"]),
        question("What do you want to build?", "text", position=0, required=True),
    ]
    session.flush()
    answers = [
        AnswerInput("tools you use", "zapier"),
        AnswerInput("  WHAT DO YOU WANT TO BUILD? ", "A chatbot"),
        AnswerInput("Tools you use", "Python"),
    ]
    created = book(session, answers=answers)
    stored = session.scalars(select(Booking)).one().custom_question_responses
    assert stored == [
        {"question": "What do you want to build?", "answer": "A chatbot", "position": 0},
        {"question": "Tools you use", "answer": ["Zapier", "Python"], "position": 1},
    ]
    assert created.booking.custom_question_responses == stored


def test_missing_required_answer_is_refused(session: Session, world: dict[str, Any]) -> None:
    world["free"].custom_questions = [question("Company size", "single_select", required=True, choices=["1-10"])]
    session.flush()
    error = refused(session, InvalidInput, field="Company size")
    assert "required" in error.message


# -- rule 6: overlaps -------------------------------------------------------------------------------------


def test_builder_overlap_is_a_conflict(session: Session, world: dict[str, Any]) -> None:
    other_client = add_client(session, "bob@example.com", "Bob")
    existing = add_booking(session, client=other_client, session_type=world["free"], start=at(days=1))
    error = refused(session, Conflict, field="builder", start=at(days=1, minutes=15))
    assert existing.reference in error.message and error.exit_code == 8
    assert "--allow-overlap" in (error.hint or "")
    # back to back is fine without a buffer
    assert book(session, start=at(days=1, minutes=30)).existing is False


def test_builder_buffer_counts_on_both_sides(session: Session, world: dict[str, Any]) -> None:
    session.scalars(select(booking_service.BuilderProfile)).one().buffer_minutes = 15
    bob = add_client(session, "bob@example.com", "Bob")
    add_booking(session, client=bob, session_type=world["free"], start=at(days=1))  # 09:00-09:30
    refused(session, Conflict, field="builder", start=at(days=1, minutes=40))  # 10 min after: inside the buffer
    refused(session, Conflict, field="builder", start=at(days=1, minutes=-40))  # ends 10 min before
    assert book(session, start=at(days=1, minutes=45)).existing is False
    assert book(session, start=at(days=1, minutes=-45), client_email="carol@example.com").existing is False


def test_client_overlap_with_another_builder_is_a_conflict(session: Session, world: dict[str, Any]) -> None:
    other = add_builder(session, "other@example.com")
    theirs = add_session_type(session, "Other Chat", category="free", builder=other)
    existing = add_booking(session, client=world["ada"], session_type=theirs, start=at(days=1))
    error = refused(session, Conflict, field="client", start=at(days=1, minutes=29))
    assert existing.reference in error.message


def test_cancelled_and_finished_bookings_do_not_block(session: Session, world: dict[str, Any]) -> None:
    bob = add_client(session, "bob@example.com", "Bob")
    for status in ("cancelled", "completed", "no_show"):
        add_booking(session, client=bob, session_type=world["free"], start=at(days=1), status=status)
    assert book(session, start=at(days=1)).existing is False


def test_allow_overlap_skips_the_check(session: Session, world: dict[str, Any]) -> None:
    bob = add_client(session, "bob@example.com", "Bob")
    add_booking(session, client=bob, session_type=world["free"], start=at(days=1))
    assert book(session, allow_overlap=True).existing is False
    assert count(session, Booking) == 2


def test_group_session_shares_a_slot_up_to_its_invitee_limit(session: Session, world: dict[str, Any]) -> None:
    add_session_type(session, "Group Lab", category="free", builder=world["coach"], kind="group", invitee_limit=2)
    book(session, session="group-lab", client_email="one@example.com")
    book(session, session="group-lab", client_email="two@example.com")
    error = refused(session, Conflict, field="group session", session="group-lab", client_email="three@example.com")
    assert "full (2 invitees)" in error.message
    # another session of the same builder at that time still conflicts
    refused(session, Conflict, field="builder", session="free-chat", client_email="four@example.com")


def test_group_session_without_a_builder_still_stops_at_its_invitee_limit(
    session: Session, world: dict[str, Any]
) -> None:
    # a group event type whose Calendly owner is no builder here has no builder: its limit went unchecked
    add_session_type(session, "Open Lab", category="free", kind="group", invitee_limit=2)
    book(session, session="open-lab", client_email="one@example.com")
    book(session, session="open-lab", client_email="two@example.com")
    error = refused(session, Conflict, field="group session", session="open-lab", client_email="three@example.com")
    assert "full (2 invitees)" in error.message and error.exit_code == 8
    assert book(session, session="open-lab", client_email="three@example.com", start=at(days=2)).existing is False


def test_overlap_checks_search_the_person_and_time_indexes(
    session: Session, engine: Engine, world: dict[str, Any]
) -> None:
    """P5: the overlap queries the service really runs are bounded index range scans, not table scans."""
    captured: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        if "FROM bookings" in statement and "bookings.end_time >" in statement:
            captured.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        book(session)
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    assert len(captured) == 2, captured  # builder, then client
    connection = session.connection()
    if engine.dialect.name == "sqlite":
        plans = [
            " ".join(str(row[-1]) for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", params))
            for sql, params in captured
        ]
        assert "ix_bookings_builder_time (builder_id=? AND start_time>? AND start_time<?)" in plans[0]
        assert "ix_bookings_client_time (client_id=? AND start_time>? AND start_time<?)" in plans[1]
    else:
        # An empty test table makes a sequential scan cheapest; with it ruled out the planner shows
        # whether the person/time index can serve the query's conditions at all.
        connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
        plans = [
            "\n".join(str(row[0]) for row in connection.exec_driver_sql(f"EXPLAIN {sql}", params))
            for sql, params in captured
        ]
        # which of the bookings indexes it picks depends on statistics; that the scan is an index range
        # bounded on both sides of the time window does not
        for plan in plans:
            assert "Seq Scan" not in plan, plan
            condition = next(line for line in plan.splitlines() if "Index Cond" in line)
            assert "start_time <" in condition and "start_time >" in condition, plan


def _slots(session_type: Any, starts: list[dt.datetime]) -> list[dict[str, Any]]:
    """`sessions slots`' records of Calendly's open times (services.calendly_write.open_slots)."""
    length = dt.timedelta(minutes=session_type.duration_minutes)
    return [{"start_time": start, "end_time": start + length} for start in starts]


def test_bookable_slots_are_exactly_the_times_bookings_create_takes(session: Session, world: dict[str, Any]) -> None:
    # `sessions slots` leaves out what `bookings create` would refuse; the edges of each rule, asked of both
    coach, bob = world["coach"], add_client(session, "bob@example.com", "Bob")
    profile = session.scalars(select(BuilderProfile).where(BuilderProfile.user_id == coach.id)).one()
    profile.buffer_minutes, profile.minimum_notice_hours, profile.max_advance_days = 15, 3, 2
    lab = add_session_type(session, "Group Lab", category="free", builder=coach, kind="group", invitee_limit=2)
    for start, minutes, status, session_type in (
        (at(0, hours=4), 60, "confirmed", world["clinic"]),
        (at(0, hours=6), 30, "cancelled", world["clinic"]),
        (at(0, hours=8), 30, "pending", world["clinic"]),  # still waiting for Calendly
        (at(days=1, hours=1), 30, "confirmed", lab),  # one seat of two taken
        (at(days=1, hours=3), 30, "confirmed", lab),
        (at(days=1, hours=3), 30, "confirmed", lab),  # full
    ):
        add_booking(session, client=bob, session_type=session_type, start=start, minutes=minutes, status=status)
    # Every quarter hour where a rule has an edge, each window with free starts on both sides: from the past through
    # the notice, the buffers, the cancelled and the pending booking (to 10:00); the group lab's seats (the next day,
    # 0:00 to 4:30); the horizon (from an hour before it to 1:45 past it); and a free noon on either day. Every start
    # costs a `book` attempt: the 118 starts between the windows asked nothing new of any rule, for ~2/3 of its time.
    windows = [(-1, 41), (48, 53), (96, 115), (144, 149), (188, 200)]  # quarter-hour steps from NOW, half-open
    starts = [at(0, minutes=15 * step) for first, end in windows for step in range(first, end)]
    for session_type in (world["free"], lab):
        slots = _slots(session_type, starts)
        kept = {slot["start_time"] for slot in bookable_slots(session, session_type.id, slots, now=NOW)}
        taken = set()
        for start in starts:
            with contextlib.suppress(InvalidInput, Conflict), session.begin_nested() as attempt:
                book(session, session=session_type.slug, client_email="new@example.com", start=start)
                taken.add(start)
                attempt.rollback()
        assert kept == taken, sorted(kept ^ taken)
        # the notice's edge; the 4:00-5:00 booking's buffer, met on either side; the horizon's edge
        assert at(0, hours=2, minutes=45) not in kept and at(0, hours=3) in kept and at(0, hours=3, minutes=15) in kept
        assert (
            at(0, hours=3, minutes=30) not in kept and at(0, hours=5) not in kept and at(0, hours=5, minutes=15) in kept
        )
        assert at(0, hours=6) in kept and at(0, hours=8) not in kept and at(days=2) in kept
        assert at(days=2, minutes=15) not in kept
    assert at(days=1, hours=1) in kept and at(days=1, hours=3) not in kept


def test_bookable_slots_see_a_long_booking_that_began_before_the_first_slot(
    session: Session, world: dict[str, Any]
) -> None:
    # the one read covers the slots' window, and each slot is bisected on the bookings' starts: a booking of nearly a
    # day that began 18 hours before the first slot still holds the slots it meets, and its buffer after it
    coach = world["coach"]
    profile = session.scalars(select(BuilderProfile).where(BuilderProfile.user_id == coach.id)).one()
    profile.buffer_minutes = 15
    add_booking(session, client=world["ada"], session_type=world["clinic"], start=at(days=1), minutes=23 * 60)
    starts = [at(days=1, hours=18, minutes=15 * step) for step in range(6 * 4)]  # 18:00 to 23:45 the next day
    slots = _slots(world["free"], starts)
    kept = [slot["start_time"] for slot in bookable_slots(session, world["free"].id, slots, now=NOW)]
    assert kept[0] == at(days=1, hours=23, minutes=15), kept  # the booking ends at 23:00, its buffer at 23:15


def test_bookable_slots_read_the_bookings_once_however_many_slots(
    session: Session, engine: Engine, world: dict[str, Any]
) -> None:
    # a year of 15-minute slots is some 12,000: one overlap query per slot took seconds on either backend
    add_booking(session, client=world["ada"], session_type=world["free"], start=at(days=3))
    reads: list[str] = []

    def capture(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        reads.append(statement)

    def statements(days: int) -> int:
        starts = [at(days=1, minutes=15 * step) for step in range(4 * 24 * days)]
        reads.clear()
        event.listen(engine, "before_cursor_execute", capture)
        try:
            kept = list(bookable_slots(session, world["free"].id, _slots(world["free"], starts), now=NOW))
        finally:
            event.remove(engine, "before_cursor_execute", capture)
        assert len(kept) == len(starts) - 3  # the booking's half hour, and the slot before it
        return len(reads)

    assert statements(days=30) == statements(days=3) <= 3  # the session type, the builder, the bookings


def test_a_refused_calendly_start_names_its_nearest_with_the_same_reads_however_many_starts(
    session: Session, world: dict[str, Any]
) -> None:
    # the exit-8 hint's bookable_slots resolved the builder and client again and read the client's bookings once
    # per open start: a week of Calendly's 15-minute starts was some 700 statements, where a day's was some 100
    add_booking(session, client=world["ada"], session_type=world["free"], start=at(days=3))

    def statements(days: int) -> int:
        open_starts = tuple(at(days=1, minutes=15 * step + 5) for step in range(4 * 24 * days))
        with counting_statements() as reads, pytest.raises(Conflict) as caught:
            book(session, calendly_open_starts=open_starts)
        assert caught.value.code == "not_an_open_slot"
        assert caught.value.hint is not None and caught.value.hint.startswith("nearest open starts: ")
        return len(reads)

    # the request's own reads and the hint's two (7 on SQLite); on PostgreSQL its locks besides: the tables, the
    # writers' shared key (db.locks.REPLAY_WRITERS), the client's and the builder's
    assert statements(days=7) == statements(days=1) <= 11


def test_a_refused_calendly_starts_hint_leaves_out_the_starts_a_client_booking_begun_before_them_holds(
    session: Session, world: dict[str, Any]
) -> None:
    # the hint reads the client's bookings once, for the open starts' window: one begun before the first open start,
    # with another builder (so that only the client's side sees it), still holds the starts it meets; with
    # --allow-overlap, as `bookings create` then takes them, they are named
    elsewhere = add_session_type(session, "Elsewhere", builder=add_builder(session, "other@example.com"))
    add_booking(session, client=world["ada"], session_type=elsewhere, start=at(days=1), minutes=105)  # 09:00-10:45
    open_starts = tuple(at(days=1, hours=1, minutes=30 * step) for step in range(5))  # 10:00 to 12:00

    def named(**fields: Any) -> list[dt.datetime]:
        with pytest.raises(Conflict) as caught:
            book(session, start=at(days=1, hours=2, minutes=5), calendly_open_starts=open_starts, **fields)
        assert caught.value.code == "not_an_open_slot" and caught.value.hint is not None
        return [start for start in open_starts if instant_text(start) in caught.value.hint]

    assert named() == list(open_starts[2:])  # 11:00, 11:30, 12:00: the booking holds 10:00 and 10:30
    assert named(allow_overlap=True) == list(open_starts[1:4])  # 10:30, 11:00, 11:30: the nearest to 11:05


def test_a_client_the_booking_creates_is_enrolled_without_asking_their_history(
    session: Session, world: dict[str, Any]
) -> None:
    # a new account has no history to be complete with: enrol ran the completion rules (and took their lock) anyway
    with counting_statements() as statements:
        created = book(
            session,
            client_email="new@example.com",
            session="accelerate-review",
            pathway="accelerate",
            create_account=True,
        )
    assert (created.account_created, created.enrolled, created.booking.pathway) == (True, True, "accelerate")
    assert not [statement for statement in statements if "user_skill_progress" in statement]
    with counting_statements() as statements:  # a client already here may have finished it: still asked
        assert book(session, session="accelerate-review", pathway="accelerate", start=at(days=2)).enrolled
    assert [statement for statement in statements if "user_skill_progress" in statement]


# -- rule 7: idempotency ----------------------------------------------------------------------------------


def test_idempotent_repeat_returns_the_same_booking(session: Session, world: dict[str, Any]) -> None:
    first = book(session, idempotency_key="req-1", answers=[])
    audits = count(session, AuditEntry)
    again = book(session, idempotency_key="req-1", client_email="ADA@example.com", session=str(world["free"].id))
    assert again.existing is True and first.existing is False
    assert again.booking.reference == first.booking.reference
    assert count(session, Booking) == 1 and count(session, AuditEntry) == audits
    # even once the session stopped being bookable, the repeat answers with the original
    world["free"].enabled = False
    session.flush()
    assert book(session, idempotency_key="req-1").booking.reference == first.booking.reference


def test_a_repeat_after_a_sync_changed_the_sessions_duration_or_owner_returns_the_same_booking(
    session: Session, world: dict[str, Any]
) -> None:
    # The fingerprint took the session's duration and owner for what the request left out, as they were then: once a
    # sync changed either, the same command repeated was 'already used … with other data' (exit 8), not the booking.
    first = book(session, idempotency_key="req-1")
    world["free"].duration_minutes = 45
    world["free"].builder_id = add_builder(session, "new-owner@example.com").id
    session.flush()
    assert book(session, idempotency_key="req-1").booking.reference == first.booking.reference
    # what the request names is still compared as named
    for other in ({"duration": 45}, {"builder_email": "new-owner@example.com"}):
        refused(session, Conflict, field="idempotency-key", idempotency_key="req-1", **other)
    assert count(session, Booking) == 1


def test_a_repeat_after_the_booking_itself_changed_length_or_builder_returns_the_same_booking(
    session: Session, world: dict[str, Any]
) -> None:
    # The repeat read what it left out as the booking now has it: once an import or Calendly changed the booking's
    # end or builder (the session type as it was), the same command repeated was exit 8, not the booking.
    first = book(session, idempotency_key="req-1")
    booking = session.scalars(select(Booking)).one()
    booking.builder_id = add_builder(session, "reassigned@example.com").id
    booking.end_time += dt.timedelta(minutes=15)
    session.flush()
    assert book(session, idempotency_key="req-1").booking.reference == first.booking.reference
    # the type's length changed by a sync, the booking's builder by an import: each is read where it is unchanged
    booking.end_time -= dt.timedelta(minutes=15)
    world["free"].duration_minutes = 45
    session.flush()
    assert book(session, idempotency_key="req-1").booking.reference == first.booking.reference
    refused(session, Conflict, field="idempotency-key", idempotency_key="req-1", builder_email="reassigned@example.com")
    assert count(session, Booking) == 1


def test_same_key_with_other_data_is_a_conflict(session: Session, world: dict[str, Any]) -> None:
    first = book(session, idempotency_key="req-1")
    error = refused(session, Conflict, field="idempotency-key", idempotency_key="req-1", start=at(days=2))
    assert first.booking.reference in error.message


# -- rule 8: status and payment from the price -----------------------------------------------------------


def test_free_booking_is_confirmed_and_paid_one_pending(session: Session, world: dict[str, Any]) -> None:
    free = book(session).booking
    assert (free.status, free.payment_status, free.amount, free.currency) == (
        "confirmed",
        "not_required",
        Decimal("0.00"),
        "GBP",
    )
    world["review"].currency = "EUR"
    paid = book(session, session="accelerate-review", pathway="accelerate", start=at(days=3)).booking
    assert (paid.status, paid.payment_status, paid.amount, paid.currency) == (
        "pending",
        "unpaid",
        Decimal("30.00"),
        "EUR",
    )


# -- the record, the audit row, references ---------------------------------------------------------------


def test_result_record_has_the_contract_keys_and_an_audit_row(session: Session, world: dict[str, Any]) -> None:
    created = book(session, client_timezone="Europe/London", idempotency_key="k")
    record = created.as_record()
    assert list(record) == [
        *booking_service.BOOKING_COLUMNS,
        "account_created",
        "enrolled",
        "pathways_completed",
        "existing",
    ]
    assert record["client_timezone"] == "Europe/London" and record["source"] == "cli"
    assert record["reference"].startswith("BK-")
    entry = session.scalars(select(AuditEntry).where(AuditEntry.entity == "booking")).one()
    assert entry.entity_key == record["reference"]
    assert entry.changes["client"] == "ada@example.com" and entry.changes["status"] == "confirmed"


def test_unknown_client_timezone_is_refused(session: Session, world: dict[str, Any]) -> None:
    refused(session, InvalidInput, field="timezone", client_timezone="Mars/Olympus")


def test_reference_collision_is_retried(
    session: Session, world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    bob = add_client(session, "bob@example.com", "Bob")
    add_booking(session, client=bob, session_type=world["clinic"], start=at(days=5), reference="BK-22222222")
    supplied = iter(["BK-22222222", "BK-33333333"])
    monkeypatch.setattr(booking_service, "generate_reference", lambda: next(supplied))
    assert book(session).booking.reference == "BK-33333333"
    assert count(session, Booking) == 2


def test_sql_looking_text_is_stored_literally(session: Session, world: dict[str, Any]) -> None:
    world["free"].custom_questions = [question("Notes", "text")]
    session.flush()
    hostile = "Robert'); DROP TABLE bookings;--"
    created = book(session, client_email="o'brien@example.com", name=hostile, answers=[AnswerInput("Notes", hostile)])
    assert created.booking.client_name == hostile
    assert session.scalars(select(Booking)).one().custom_question_responses[0]["answer"] == hostile
    assert session.scalars(select(User).where(User.email == "o'brien@example.com")).one().name == hostile
    assert count(session, Pathway) == 3

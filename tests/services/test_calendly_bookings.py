"""Invitees become bookings (pull and webhook share one applier), on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from bapp_cli.calendly.models import EventType, Invitee, ScheduledEvent, WebhookPayload
from bapp_cli.calendly.webhooks import parse_webhook
from bapp_cli.db.domains import REASON_LIMIT
from bapp_cli.db.models import (
    AuditEntry,
    Booking,
    BuilderProfile,
    ClientProfile,
    Enrolment,
    Pathway,
    SessionType,
    SyncRun,
    User,
    WebhookDelivery,
)
from bapp_cli.errors import ConfigError, Conflict, InvalidInput
from bapp_cli.services.booking import REFERENCE_LENGTH, change_booking_status
from bapp_cli.services.calendly_bookings import (
    BookedInvitee,
    BookingPullReport,
    InviteeApplier,
    apply_webhook,
    list_runs,
    parse_bookings_listing,
    pathway_question_pattern,
    pull_bookings,
    within,
)
from bapp_cli.services.calendly_runs import bookings_pull_job, record_run
from bapp_cli.services.calendly_write import undo_no_show
from bapp_cli.services.people import MAX_TEXT
from bapp_cli.services.sync import sync_event_types
from tests.fakes.calendly_server import (
    API_ORIGIN,
    DEFAULT_USER_URI,
    make_event_type,
    make_invitee,
    make_scheduled_event,
)
from tests.services.test_progress_factories import counting_statements

NOW = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)
START = dt.datetime(2026, 4, 1, 9, 0, tzinfo=dt.UTC)
BOOKED = dt.datetime(2026, 3, 1, 8, 0, tzinfo=dt.UTC)
PATTERN = pathway_question_pattern(None)
# make_event_type's rotation: 0 free, 1 accelerate, 2 pivot, 3 play (pathway sessions), 4 specialized
FREE, ACCELERATE, PIVOT, PLAY, SPECIALIZED = 0, 1, 2, 3, 4


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def type_uri(i: int) -> str:
    return f"{API_ORIGIN}/event_types/ET{i:08d}"


@pytest.fixture
def catalogue(session: Session) -> Session:
    """A builder who owns the fake's event types, and types 0–5 synced from Calendly."""
    builder = User(email="ada@example.com", name="Ada Builder")
    session.add(builder)
    session.flush()
    session.add(BuilderProfile(user_id=builder.id, calendly_user_uri=DEFAULT_USER_URI))
    listing = [EventType.model_validate(make_event_type(i)) for i in range(6)]
    sync_event_types(session, listing, source="api", started_at=NOW, clock=lambda: NOW)
    session.commit()
    return session


def event(n: int, type_index: int, *, start: dt.datetime = START, **overrides: Any) -> dict[str, Any]:
    return {**make_scheduled_event(n, type_uri(type_index), start), **overrides}


def invitee(
    scheduled: dict[str, Any],
    j: int,
    *,
    updated: dt.datetime = BOOKED,
    answers: list[tuple[str, str]] | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    qa = None if answers is None else [{"question": q, "answer": a, "position": n} for n, (q, a) in enumerate(answers)]
    raw = make_invitee(scheduled["uri"], j, created_at=BOOKED, questions_and_answers=qa)
    return {**raw, "updated_at": iso(updated), **overrides}


def item(scheduled: dict[str, Any], person: dict[str, Any]) -> BookedInvitee:
    return BookedInvitee(Invitee.model_validate(person), ScheduledEvent.model_validate(scheduled))


def cancelled(person: dict[str, Any], *, at: dt.datetime, reason: str | None = "Clash", **more: Any) -> dict[str, Any]:
    cancellation = {"canceled_by": "Client", "reason": reason, "canceler_type": "invitee", "created_at": iso(at)}
    return {**person, "status": "canceled", "updated_at": iso(at), "cancellation": cancellation, **more}


def apply(session: Session, *items: BookedInvitee, pattern: re.Pattern[str] = PATTERN) -> list[Any]:
    applier = InviteeApplier(session, now=NOW, pathway_question=pattern)
    outcomes = [applier.apply(entry) for entry in items]
    session.commit()
    session.expire_all()
    return outcomes


def booking(session: Session, invitee_uri: str) -> Booking:
    return session.scalars(select(Booking).where(Booking.calendly_invitee_uri == invitee_uri)).one()


def pathway_slug(session: Session, found: Booking) -> str | None:
    return session.scalar(select(Pathway.slug).where(Pathway.id == found.pathway_id)) if found.pathway_id else None


def count(session: Session, model: Any) -> int:
    return int(session.scalar(select(func.count()).select_from(model)) or 0)


def enrolments(session: Session, email: str) -> list[str]:
    return sorted(
        session.scalars(
            select(Pathway.slug)
            .join(Enrolment, Enrolment.pathway_id == Pathway.id)
            .join(User, User.id == Enrolment.client_id)
            .where(User.email == email)
        )
    )


def set_price(session: Session, type_index: int, price: str) -> None:
    session.execute(
        update(SessionType).where(SessionType.calendly_uri == type_uri(type_index)).values(price=Decimal(price))
    )
    session.commit()


# -- creation --------------------------------------------------------------------------------------


def test_an_invitee_becomes_a_booking_with_account_answers_and_audit(catalogue: Session) -> None:
    session = catalogue
    scheduled = event(1, SPECIALIZED, start=START - dt.timedelta(days=400))  # past starts are accepted
    person = invitee(
        scheduled,
        1,
        email="New.Client@Example.com",
        timezone="America/New_York",
        answers=[
            ("Company name", "Acme"),
            ("Topics", "Agents\nRAG\nSomething of my own"),  # newline-joined multi-select with an "other"
            ("experience with ai", "Some"),
            ("A question the type no longer has", "kept anyway"),
        ],
    )
    [outcome] = apply(session, item(scheduled, person))
    assert (outcome.action, outcome.booking_status) == ("created", "confirmed")
    assert "account created for new.client@example.com" in outcome.note
    found = booking(session, person["uri"])
    client = session.get(User, found.client_id)
    assert client is not None and (client.email, client.name) == ("new.client@example.com", "Client 1")
    builder = session.get(User, found.builder_id)
    assert builder is not None and builder.email == "ada@example.com"
    assert (found.source, found.calendly_event_uri, found.reference) == (
        "calendly",
        scheduled["uri"],
        outcome.reference,
    )
    assert (found.start_time, found.end_time) == (
        START - dt.timedelta(days=400),
        START - dt.timedelta(days=400, minutes=-30),
    )
    assert (found.status, found.payment_status, found.amount, found.currency) == (
        "confirmed",
        "not_required",
        Decimal("0.00"),
        "GBP",
    )
    assert found.client_timezone == "America/New_York"
    assert found.remote_updated_at == BOOKED
    assert found.pathway_id is None  # a specialized session and no pathway question
    assert found.custom_question_responses == [
        {"question": "Company name", "answer": "Acme", "position": 0},
        {"question": "Experience with AI", "answer": "Some", "position": 2},  # the session type's spelling
        {"question": "Topics", "answer": ["Agents", "RAG", "Something of my own"], "position": 3},
        {"question": "A question the type no longer has", "answer": "kept anyway", "position": 3},
    ]
    audit = session.scalars(select(AuditEntry).where(AuditEntry.entity_key == found.reference)).one()
    assert audit.changes["source"] == "calendly" and audit.changes["invitee"] == person["uri"]


def test_a_builder_booked_as_an_invitee_is_made_a_client_not_given_an_account(catalogue: Session) -> None:
    # ada, a builder, already has an account: only her client profile is new, yet the note said "account
    # created for ada@example.com" and the booking's audit account_created true
    scheduled = event(1, FREE)
    person = invitee(scheduled, 1, email="ada@example.com")
    [outcome] = apply(catalogue, item(scheduled, person))
    assert "client profile created for ada@example.com" in outcome.note and "account" not in outcome.note
    audit = catalogue.scalars(select(AuditEntry).where(AuditEntry.entity_key == outcome.reference)).one()
    assert audit.changes["account_created"] is False


def test_price_sets_status_and_a_calendly_payment_makes_it_paid(catalogue: Session) -> None:
    session = catalogue
    set_price(session, SPECIALIZED, "95.00")
    first, second = event(1, SPECIALIZED), event(2, SPECIALIZED, start=START + dt.timedelta(hours=3))
    unpaid = invitee(first, 1)
    payment = {"external_id": "ch_1", "provider": "stripe", "amount": 95.0, "currency": "GBP", "successful": True}
    paid = invitee(second, 2, payment=payment)
    outcomes = apply(session, item(first, unpaid), item(second, paid))
    assert [o.booking_status for o in outcomes] == ["pending", "confirmed"]
    assert booking(session, unpaid["uri"]).payment_status == "unpaid"
    assert booking(session, paid["uri"]).amount == Decimal("95.00")
    assert booking(session, paid["uri"]).payment_status == "paid"
    # the payment lands later (a newer invitee): pending/unpaid becomes confirmed/paid
    [later] = apply(session, item(first, {**unpaid, "payment": payment, "updated_at": iso(BOOKED + dt.timedelta(1))}))
    assert later.action == "updated"
    assert (booking(session, unpaid["uri"]).status, booking(session, unpaid["uri"]).payment_status) == (
        "confirmed",
        "paid",
    )


@pytest.mark.parametrize(
    ("price", "amount", "currency", "recorded", "warning"),
    [
        ("0.00", 30.0, "USD", ("paid", Decimal("30.00"), "USD"), ""),  # the price bapp holds not curated yet
        ("25.00", 19.99, "EUR", ("paid", Decimal("19.99"), "EUR"), ""),  # another price and currency in Calendly
        ("25.00", 1e12, "GBP", ("paid", Decimal("25.00"), "GBP"), "'GBP' cannot be recorded"),  # no booking holds it
        ("25.00", 25.0, "pounds", ("paid", Decimal("25.00"), "GBP"), "'pounds' cannot be recorded"),
    ],
)
def test_a_calendly_payment_records_what_calendly_took(
    catalogue: Session, price: str, amount: float, currency: str, recorded: tuple[str, Decimal, str], warning: str
) -> None:
    # A synced session type costs 0.00 in bapp until someone curates its price: a paid invitee was recorded
    # as not_required 0.00, the payment lost (and `bookings refund` refused). What Calendly charged is the
    # booking's amount; a charge bapp cannot store keeps the session's price, with a warning.
    session = catalogue
    set_price(session, SPECIALIZED, price)
    scheduled = event(1, SPECIALIZED)
    payment = {"external_id": "ch_1", "provider": "stripe", "amount": amount, "currency": currency, "successful": True}
    person = invitee(scheduled, 1, payment=payment)
    [outcome] = apply(session, item(scheduled, person))
    found = booking(session, person["uri"])
    assert (found.status, (found.payment_status, found.amount, found.currency)) == ("confirmed", recorded)
    assert (warning in " ".join(outcome.warnings)) if warning else not outcome.warnings


@pytest.mark.parametrize(
    ("price", "amount", "currency"),
    [
        ("0.00", 45.0, "GBP"),  # the examples' Nina: a synced session not priced yet, the payment seen late
        ("25.00", 19.99, "EUR"),
        ("25.00", 0.0, "USD"),  # a 0.00 charge (a full discount) is free, not paid
        ("0.00", 1e12, "GBP"),  # a charge no booking can hold leaves the price
    ],
)
def test_a_calendly_payment_seen_later_records_what_it_records_on_first_sight(
    catalogue: Session, price: str, amount: float, currency: str
) -> None:
    # One decision whether the payment comes with the first delivery or a later one: a later one left a
    # booking at not_required 0.00 (the payment lost), and made a 0.00 charge "paid" where creation said free.
    session = catalogue
    set_price(session, SPECIALIZED, price)
    payment = {"external_id": "ch_1", "provider": "stripe", "amount": amount, "currency": currency, "successful": True}
    first, later = event(1, SPECIALIZED), event(2, SPECIALIZED, start=START + dt.timedelta(days=1))
    at_once, unpaid = invitee(first, 1, payment=payment), invitee(later, 2)
    apply(session, item(later, unpaid))
    outcomes = apply(session, item(first, at_once), item(later, {**unpaid, "updated_at": iso(NOW), "payment": payment}))
    assert outcomes[0].warnings == outcomes[1].warnings
    on_first_sight, seen_later = (booking(session, person["uri"]) for person in (at_once, unpaid))
    terms = [
        (found.status, found.payment_status, found.amount, found.currency) for found in (on_first_sight, seen_later)
    ]
    assert terms[0] == terms[1]


@pytest.mark.parametrize("status", ["completed", "no_show", "cancelled"])
def test_a_calendly_payment_on_a_booking_no_longer_active_here_is_said_not_dropped(
    catalogue: Session, status: str
) -> None:
    # A payment Calendly shows later on a booking completed, marked a no-show or cancelled here cannot make it paid
    # (its status is settled), but money was taken: it was dropped without a word (for a cancelled one, the
    # warning said only that it stays cancelled).
    session = catalogue
    set_price(session, SPECIALIZED, "30.00")
    payment = {"external_id": "ch_1", "provider": "stripe", "amount": 30.0, "currency": "GBP", "successful": True}
    scheduled = event(1, SPECIALIZED)
    unpaid = invitee(scheduled, 1)
    apply(session, item(scheduled, unpaid))
    session.execute(update(Booking).where(Booking.calendly_invitee_uri == unpaid["uri"]).values(status=status))
    [outcome] = apply(session, item(scheduled, {**unpaid, "updated_at": iso(NOW), "payment": payment}))
    assert any("payment" in warning and status in warning for warning in outcome.warnings), outcome.warnings
    assert booking(session, unpaid["uri"]).payment_status == "unpaid"  # said, not recorded


def test_unknown_event_type_and_bad_email_are_skipped_and_nothing_is_written(catalogue: Session) -> None:
    session = catalogue
    unknown = event(1, 999)
    good_type = event(2, FREE)
    outcomes = apply(
        session,
        item(unknown, invitee(unknown, 1)),
        item(good_type, invitee(good_type, 2, email="not an address")),
    )
    assert [o.action for o in outcomes] == ["skipped", "skipped"]
    assert type_uri(999) in outcomes[0].note and "calendly sync" in outcomes[0].note
    assert "invitee email" in outcomes[1].note
    assert count(session, Booking) == 0
    assert session.scalar(select(func.count()).select_from(User).where(User.email.like("client%"))) == 0


def test_impossible_times_and_zones_are_repaired_with_a_warning(catalogue: Session) -> None:
    session = catalogue
    # Calendly's own sample payloads carry end_time == start_time
    scheduled = event(1, FREE, end_time=iso(START))
    [outcome] = apply(session, item(scheduled, invitee(scheduled, 1, timezone="America/New York")))
    found = booking(session, outcome_uri(scheduled, 1))
    assert found.end_time == START + dt.timedelta(minutes=15)  # make_event_type(0) lasts 15 minutes
    assert found.client_timezone == "UTC"
    assert len(outcome.warnings) == 2


def outcome_uri(scheduled: dict[str, Any], j: int) -> str:
    return f"{scheduled['uri']}/invitees/INV{j:08d}"


# -- pathways --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "slug"),
    [
        ("Pivot", "pivot"),
        ("  PLAY ", "play"),
        ("accelerate", "accelerate"),
        ("🚀 Accelerate – fast track", "accelerate"),
    ],
)
def test_pathway_from_the_pathway_question_enrols_the_client(catalogue: Session, answer: str, slug: str) -> None:
    session = catalogue
    scheduled = event(1, FREE)
    person = invitee(scheduled, 1, answers=[("Company name", "Acme"), ("Which Pathway are you on?", answer)])
    [outcome] = apply(session, item(scheduled, person))
    found = booking(session, person["uri"])
    assert pathway_slug(session, found) == slug
    assert enrolments(session, "client1@example.com") == [slug]
    enrolment = session.scalars(select(Enrolment)).one()
    assert (enrolment.status, enrolment.builder_id) == ("active", found.builder_id)  # the builder coaches
    assert outcome.warnings == ()


def test_an_answer_spelt_in_other_code_points_names_the_pathway_it_reads_as(catalogue: Session) -> None:
    session = catalogue  # 'Café' stored in NFC; answers typed with a combining accent (NFD)
    session.execute(update(Pathway).where(Pathway.slug == "play").values(name="Caf\u00e9"))
    session.execute(update(Pathway).where(Pathway.slug == "pivot").values(name="Cafe"))
    session.commit()
    one, two = event(1, FREE), event(2, FREE, start=START + dt.timedelta(hours=2))
    exact = invitee(one, 1, answers=[("Your pathway", "CAFE\u0301")])
    decorated = invitee(two, 2, answers=[("Your pathway", "Cafe\u0301 \u2013 fast track")])
    outcomes = apply(session, item(one, exact), item(two, decorated))
    assert [outcome.warnings for outcome in outcomes] == [(), ()]
    assert [pathway_slug(session, booking(session, p["uri"])) for p in (exact, decorated)] == ["play", "play"]


def test_an_invitee_name_over_its_limit_is_cut_before_the_character_the_limit_would_split(catalogue: Session) -> None:
    # cut at MAX_TEXT code points after NFC, a name kept a letter without its marks (q of q̃ read as a plain q), the
    # first of two marks, or a joined emoji's first half and its joiner (U+200D) last
    session = catalogue
    first = "a" * (MAX_TEXT - 1)
    names = [
        first + "q\u0303",
        first[1:] + "q\u0323\u0303",
        first[1:] + "\U0001f469\u200d\U0001f4bb",
        first + "bc",
        first[1:] + " q\u0303",
        first[1:] + "\U0001f3f4\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f",  # England's flag
    ]
    people = []
    for n, name in enumerate(names, start=1):
        scheduled = event(n, FREE, start=START + dt.timedelta(hours=2 * n))
        people.append(item(scheduled, invitee(scheduled, n, name=name)))
    apply(session, *people)
    stored = [session.scalar(select(User.name).where(User.email == p.invitee.email)) for p in people]
    assert stored == [first, first[1:], first[1:], first + "b", first[1:], first[1:]]  # nor one ending in a space


def test_a_cancellation_reason_over_its_limit_is_cut_before_the_character_the_limit_would_split(
    catalogue: Session,
) -> None:
    # cut by code point, it kept a letter without its mark (q of q̃ read as a plain q), as an invitee's name did
    session = catalogue
    scheduled = event(1, FREE)
    person = invitee(scheduled, 1)
    apply(session, item(scheduled, person))
    reason = "a" * (REASON_LIMIT - 1) + "q\u0303"
    apply(session, item(scheduled, cancelled(person, at=BOOKED + dt.timedelta(days=2), reason=reason)))
    assert booking(session, person["uri"]).cancellation_reason == "a" * (REASON_LIMIT - 1)


def test_unknown_or_archived_pathway_answers_give_no_pathway_and_a_warning(catalogue: Session) -> None:
    session = catalogue
    session.execute(update(Pathway).where(Pathway.slug == "play").values(archived=True))
    session.commit()
    one, two = event(1, FREE), event(2, FREE, start=START + dt.timedelta(hours=2))
    unknown = invitee(one, 1, answers=[("Your pathway", "Not sure yet")])
    archived = invitee(two, 2, answers=[("Your pathway", "Play")])
    outcomes = apply(session, item(one, unknown), item(two, archived))
    assert [o.action for o in outcomes] == ["created", "created"]
    assert "names no known pathway" in outcomes[0].warnings[0]
    assert "archived" in outcomes[1].warnings[0]
    assert booking(session, unknown["uri"]).pathway_id is None
    assert booking(session, archived["uri"]).pathway_id is None
    assert count(session, Enrolment) == 0


def test_the_pathway_question_pattern_is_configurable(catalogue: Session) -> None:
    session = catalogue
    scheduled = event(1, FREE)
    person = invitee(scheduled, 1, answers=[("Which pathway?", "Pivot"), ("Learning track", "Play")])
    apply(session, item(scheduled, person), pattern=pathway_question_pattern(r"learning\s+track"))
    assert pathway_slug(session, booking(session, person["uri"])) == "play"
    with pytest.raises(ConfigError, match=r"calendly\.pathway_question"):
        pathway_question_pattern("track(")
    # re.compile raises OverflowError / RecursionError for these, not re.error
    for pattern in ("a{99999999999}", "(" * 1000 + ")" * 1000):
        with pytest.raises(ConfigError, match=r"calendly\.pathway_question: a regular expression too large to compile"):
            pathway_question_pattern(pattern)


def test_a_pathway_session_without_an_answer_uses_its_linked_pathway(catalogue: Session) -> None:
    session = catalogue
    scheduled = event(1, PIVOT)
    person = invitee(scheduled, 1)
    [outcome] = apply(session, item(scheduled, person))
    assert pathway_slug(session, booking(session, person["uri"])) == "pivot"
    assert "enrolled in pivot" in outcome.note


@pytest.mark.parametrize(
    ("zone", "now", "today"),
    [
        ("Pacific/Auckland", NOW, dt.date(2026, 3, 3)),  # 12:00 UTC: already the 3rd there (UTC+13)
        ("Pacific/Pago_Pago", NOW - dt.timedelta(hours=6), dt.date(2026, 3, 1)),  # 06:00 UTC: the 1st there (UTC-11)
    ],
    ids=["east", "west"],
)
def test_an_invitee_enrols_the_client_from_the_user_s_today(
    catalogue: Session, zone: str, now: dt.datetime, today: dt.date
) -> None:
    """A pull or a webhook (one applier) opens the enrolment today in the command's zone (the receiver's settings'
    --timezone as well), as `clients enroll` does: it started on UTC's day."""
    session = catalogue
    session.info["zone"] = ZoneInfo(zone)
    scheduled = event(1, PIVOT)
    person = invitee(scheduled, 1, answers=[("Which Pathway are you on?", "Pivot")])
    InviteeApplier(session, now=now, pathway_question=PATTERN).apply(item(scheduled, person))
    assert session.scalars(select(Enrolment.start_date)).one() == today != now.date()


def test_the_clients_a_pull_creates_are_enrolled_without_asking_their_history(catalogue: Session) -> None:
    # enrol ran the completion rules (a query on user_skill_progress, and on PostgreSQL their advisory lock) for every
    # enrolment, even a client's the same invitee had just created, who has no history: a pull creating 600 such
    # enrolments took 2.88 CPU s on SQLite, 2.50 without (median of three)
    session = catalogue
    known = User(email="known@example.com")
    session.add(known)
    session.flush()
    session.add(ClientProfile(user_id=known.id))
    session.commit()
    people = [(event(n, PIVOT, start=START + dt.timedelta(hours=n)), n) for n in range(1, 4)]
    fresh = [item(scheduled, invitee(scheduled, n)) for scheduled, n in people]
    scheduled = event(9, PIVOT, start=START + dt.timedelta(hours=9))
    again = item(scheduled, invitee(scheduled, 9, email="known@example.com"))
    with counting_statements() as statements:
        outcomes = apply(session, *fresh)
    assert [outcome.action for outcome in outcomes] == ["created"] * 3
    assert [enrolments(session, f"client{n}@example.com") for n in range(1, 4)] == [["pivot"]] * 3
    assert not [statement for statement in statements if "user_skill_progress" in statement]
    with counting_statements() as statements:  # a client bapp already held may have finished it: still asked
        apply(session, again)
    assert enrolments(session, "known@example.com") == ["pivot"]
    assert [statement for statement in statements if "user_skill_progress" in statement]


# -- changes, cancellations, out-of-order deliveries ------------------------------------------------


def test_same_or_older_deliveries_change_nothing(catalogue: Session) -> None:
    session = catalogue
    scheduled = event(1, FREE)
    person = invitee(scheduled, 1, answers=[("Company name", "Acme")])
    newer = {**person, "updated_at": iso(BOOKED + dt.timedelta(hours=1)), "timezone": "Asia/Tokyo"}
    apply(session, item(scheduled, newer))
    before = booking(session, person["uri"]).updated_at
    audits = count(session, AuditEntry)
    outcomes = apply(session, item(scheduled, newer), item(scheduled, person))
    assert [(o.action, o.note) for o in outcomes] == [
        ("unchanged", ""),
        ("unchanged", "older than the version applied"),
    ]
    found = booking(session, person["uri"])
    assert (found.client_timezone, found.updated_at, count(session, AuditEntry)) == ("Asia/Tokyo", before, audits)


def test_a_newer_invitee_updates_answers_and_times(catalogue: Session) -> None:
    session = catalogue
    scheduled = event(1, FREE)
    person = invitee(scheduled, 1, answers=[("Company name", "Acme")])
    apply(session, item(scheduled, person))
    later = dt.timedelta(hours=2)
    moved = {**scheduled, "start_time": iso(START + later), "end_time": iso(START + later + dt.timedelta(minutes=15))}
    changed = invitee(moved, 1, updated=BOOKED + dt.timedelta(days=1), answers=[("Company name", "Acme Ltd")])
    [outcome] = apply(session, item(moved, changed))
    assert outcome.action == "updated"
    assert "start_time" in outcome.note and "custom_question_responses" in outcome.note
    found = booking(session, person["uri"])
    assert found.start_time == START + later
    assert found.custom_question_responses[0]["answer"] == "Acme Ltd"


def test_a_cancel_cancels_with_its_reason_and_a_late_duplicate_create_is_ignored(catalogue: Session) -> None:
    session = catalogue
    scheduled = event(1, FREE)
    person = invitee(scheduled, 1)
    apply(session, item(scheduled, person))
    cancel_at = BOOKED + dt.timedelta(days=2)
    [outcome] = apply(session, item(scheduled, cancelled(person, at=cancel_at, reason="Feeling unwell")))
    assert (outcome.action, outcome.booking_status, outcome.note) == ("cancelled", "cancelled", "Feeling unwell")
    found = booking(session, person["uri"])
    assert (found.status, found.cancellation_reason, found.cancelled_at) == ("cancelled", "Feeling unwell", cancel_at)
    [late] = apply(session, item(scheduled, person))  # a retried invitee.created from before the cancel
    assert late.action == "unchanged"
    assert booking(session, person["uri"]).status == "cancelled"


def test_a_cancel_before_its_create_makes_a_cancelled_booking_that_the_create_cannot_revive(
    catalogue: Session,
) -> None:
    session = catalogue
    scheduled = event(1, PLAY)
    person = invitee(scheduled, 1)
    cancel = cancelled(person, at=BOOKED + dt.timedelta(minutes=5), reason=None)
    [first] = apply(session, item(scheduled, cancel))
    assert (first.action, first.booking_status) == ("created", "cancelled")
    found = booking(session, person["uri"])
    assert (found.cancellation_reason, found.pathway_id is not None) == (None, True)
    assert count(session, Enrolment) == 0  # a booking that never stood enrols nobody
    [second] = apply(session, item(scheduled, person))
    assert second.action == "unchanged" and booking(session, person["uri"]).status == "cancelled"
    assert count(session, Booking) == 1


def test_a_host_cancelled_event_cancels_its_invitees(catalogue: Session) -> None:
    session = catalogue
    scheduled = event(1, FREE)
    person = invitee(scheduled, 1)
    apply(session, item(scheduled, person))
    gone = {
        **scheduled,
        "status": "canceled",
        "cancellation": {"canceled_by": "Ada", "reason": "Builder ill", "canceler_type": "host"},
    }
    [outcome] = apply(session, item(gone, {**person, "updated_at": iso(BOOKED + dt.timedelta(days=1))}))
    assert outcome.action == "cancelled"
    assert booking(session, person["uri"]).cancellation_reason == "Builder ill"


def test_final_states_stay_final(catalogue: Session) -> None:
    session = catalogue
    first, second = event(1, FREE), event(2, FREE, start=START + dt.timedelta(hours=1))
    done, dropped = invitee(first, 1), invitee(second, 2)
    apply(session, item(first, done), item(second, dropped))
    session.execute(update(Booking).where(Booking.calendly_invitee_uri == done["uri"]).values(status="completed"))
    session.execute(update(Booking).where(Booking.calendly_invitee_uri == dropped["uri"]).values(status="cancelled"))
    session.commit()
    outcomes = apply(
        session,
        item(first, cancelled(done, at=BOOKED + dt.timedelta(days=1))),
        item(second, {**dropped, "updated_at": iso(BOOKED + dt.timedelta(days=1))}),
    )
    assert [o.action for o in outcomes] == ["unchanged", "unchanged"]
    assert "is completed, not cancellable" in outcomes[0].warnings[0] and "stays cancelled" in outcomes[1].warnings[0]
    assert booking(session, done["uri"]).status == "completed"
    assert booking(session, dropped["uri"]).status == "cancelled"


@pytest.mark.parametrize("order", ["old half first", "new half first"])
def test_a_reschedule_cancels_the_old_booking_and_carries_pathway_and_payment(catalogue: Session, order: str) -> None:
    session = catalogue
    set_price(session, FREE, "30.00")
    old_event = event(1, FREE)
    payment = {"external_id": "ch_1", "provider": "stripe", "amount": 30.0, "currency": "GBP", "successful": True}
    original = invitee(old_event, 1, payment=payment, answers=[("Pathway", "Pivot")])
    apply(session, item(old_event, original))
    old_reference = booking(session, original["uri"]).reference

    moved_at = BOOKED + dt.timedelta(days=3)
    new_event = event(2, FREE, start=START + dt.timedelta(days=7))
    new_half = invitee(new_event, 2, updated=moved_at, email=original["email"], old_invitee=original["uri"])
    old_half = cancelled(original, at=moved_at, reason=None, rescheduled=True, new_invitee=new_half["uri"])
    halves = [item(old_event, old_half), item(new_event, new_half)]
    if order == "new half first":
        halves.reverse()
    outcomes = apply(session, *halves)

    old, new = booking(session, original["uri"]), booking(session, new_half["uri"])
    assert old.reference == old_reference and old.start_time == START  # the old row and its time stay
    assert (old.status, new.status) == ("cancelled", "confirmed")
    # whichever half came first, the old booking names the new one (README); old half first, it said "Rescheduled"
    assert old.cancellation_reason == f"Rescheduled to {new.reference}"
    assert (new.payment_status, pathway_slug(session, new)) == ("paid", "pivot")  # carried over
    assert new.start_time == START + dt.timedelta(days=7)
    by_action = sorted((o.action, o.replaced) for o in outcomes)
    if order == "old half first":
        assert by_action == [("created", None), ("rescheduled", None)]
    else:
        assert by_action == [("created", old_reference), ("unchanged", None)]
    assert count(session, Booking) == 2
    # and nothing moves when both halves come again
    assert {o.action for o in apply(session, *halves)} == {"unchanged"}


def test_a_reschedule_whose_old_half_comes_first_names_the_new_booking_and_keeps_the_clients_reason(
    catalogue: Session,
) -> None:
    session = catalogue
    old_event, new_event = event(1, FREE), event(2, FREE, start=START + dt.timedelta(days=7))
    original = invitee(old_event, 1)
    apply(session, item(old_event, original))
    moved_at = BOOKED + dt.timedelta(days=3)
    new_half = invitee(new_event, 2, updated=moved_at, email=original["email"], old_invitee=original["uri"])
    old_half = cancelled(original, at=moved_at, reason="Moving house", rescheduled=True, new_invitee=new_half["uri"])
    # as Calendly sends them, each delivery on its own
    assert [outcome.action for outcome in apply(session, item(old_event, old_half))] == ["rescheduled"]
    assert booking(session, original["uri"]).cancellation_reason == "Rescheduled: Moving house"
    [created] = apply(session, item(new_event, new_half))
    new = booking(session, new_half["uri"])
    assert (created.action, created.replaced) == ("created", None)  # counted once, by the old half
    assert booking(session, original["uri"]).cancellation_reason == f"Rescheduled to {new.reference}: Moving house"
    assert {o.action for o in apply(session, item(old_event, old_half), item(new_event, new_half))} == {"unchanged"}
    assert booking(session, original["uri"]).cancellation_reason == f"Rescheduled to {new.reference}: Moving house"


def test_the_old_halfs_reason_naming_the_new_booking_is_cut_before_the_character_the_limit_would_split(
    catalogue: Session,
) -> None:
    # "Rescheduled: <the client's reason>", cut whole, became "Rescheduled to BK-…: <it>" cut by code point, which
    # kept the q of q̃ at the limit without its mark
    session = catalogue
    old_event, new_event = event(1, FREE), event(2, FREE, start=START + dt.timedelta(days=7))
    original = invitee(old_event, 1)
    apply(session, item(old_event, original))
    moved_at = BOOKED + dt.timedelta(days=3)
    new_half = invitee(new_event, 2, updated=moved_at, email=original["email"], old_invitee=original["uri"])
    kept = "a" * (REASON_LIMIT - len("Rescheduled to BK-: q") - REFERENCE_LENGTH)
    reason = kept + "q\u0303"
    old_half = cancelled(original, at=moved_at, reason=reason, rescheduled=True, new_invitee=new_half["uri"])
    apply(session, item(old_event, old_half))
    assert booking(session, original["uri"]).cancellation_reason == f"Rescheduled: {reason}"  # within the limit
    apply(session, item(new_event, new_half))
    new = booking(session, new_half["uri"])
    assert booking(session, original["uri"]).cancellation_reason == f"Rescheduled to {new.reference}: {kept}"


def _paid_at_30_gbp(session: Session) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A booking paid in Calendly at 30.00 GBP, applied: its event, the event it is rescheduled to a week later,
    its payment and its invitee."""
    set_price(session, FREE, "30.00")
    old_event, new_event = event(1, FREE), event(2, FREE, start=START + dt.timedelta(days=7))
    payment = {"external_id": "ch_1", "provider": "stripe", "amount": 30.0, "currency": "GBP", "successful": True}
    original = invitee(old_event, 1, payment=payment)
    apply(session, item(old_event, original))
    return old_event, new_event, payment, original


@pytest.mark.parametrize(("price", "currency"), [("0.00", "GBP"), ("45.00", "EUR")])
def test_a_reschedule_keeps_the_price_paid_when_the_session_price_changed_since(
    catalogue: Session, price: str, currency: str
) -> None:
    # A reschedule moves the booking: the payment it carries over was for the old booking's amount, so that
    # amount and currency go with it. The session's price now (made free, or repriced) would record a payment
    # of 45.00 EUR never made, or drop the 30.00 GBP paid as "not_required".
    session = catalogue
    old_event, new_event, _, original = _paid_at_30_gbp(session)
    session.execute(
        update(SessionType).where(SessionType.calendly_uri == type_uri(FREE)).values(price=price, currency=currency)
    )
    moved_at = BOOKED + dt.timedelta(days=3)
    new_half = invitee(new_event, 2, updated=moved_at, email=original["email"], old_invitee=original["uri"])
    old_half = cancelled(original, at=moved_at, reason=None, rescheduled=True, new_invitee=new_half["uri"])
    apply(session, item(old_event, old_half), item(new_event, new_half))
    new = booking(session, new_half["uri"])
    assert (new.status, new.payment_status, new.amount, new.currency) == ("confirmed", "paid", Decimal("30.00"), "GBP")


@pytest.mark.parametrize("order", ["old half first", "new half first"])
def test_a_reschedule_of_a_refunded_booking_keeps_it_refunded(catalogue: Session, order: str) -> None:
    # Calendly keeps the rescheduled invitee's payment, refunded here or not: taking it as a payment made the
    # new booking "paid" again, open to a second `bookings refund` of money already returned.
    session = catalogue
    old_event, new_event, payment, original = _paid_at_30_gbp(session)
    change_booking_status(session, booking(session, original["uri"]).reference, "refund", now=NOW)
    session.commit()
    moved_at = BOOKED + dt.timedelta(days=3)
    new_half = invitee(
        new_event, 2, updated=moved_at, email=original["email"], old_invitee=original["uri"], payment=payment
    )
    old_half = cancelled(original, at=moved_at, reason=None, rescheduled=True, new_invitee=new_half["uri"])
    halves = [item(old_event, old_half), item(new_event, new_half)]
    apply(session, *(halves if order == "old half first" else reversed(halves)))
    new = booking(session, new_half["uri"])
    assert (new.status, new.payment_status, new.amount, new.currency) == (
        "confirmed",
        "refunded",
        Decimal("30.00"),
        "GBP",
    )
    with pytest.raises(Conflict, match="payment is refunded"):
        change_booking_status(session, new.reference, "refund", now=NOW)


def test_a_reschedule_does_not_carry_an_archived_pathway(catalogue: Session) -> None:
    session = catalogue
    old_event, new_event = event(1, FREE), event(2, FREE, start=START + dt.timedelta(days=7))
    original = invitee(old_event, 1, answers=[("Pathway", "Pivot")])
    apply(session, item(old_event, original))
    session.execute(update(Pathway).where(Pathway.slug == "pivot").values(archived=True))
    session.commit()
    moved = invitee(new_event, 2, email=original["email"], old_invitee=original["uri"])
    [outcome] = apply(session, item(new_event, moved))
    assert outcome.replaced == booking(session, original["uri"]).reference
    assert booking(session, moved["uri"]).pathway_id is None
    # said, as an archived answer is (it was dropped without a word, and a pathway session chose another)
    assert outcome.warnings == (f"pathway 'pivot' (of {outcome.replaced}) is archived; not carried over",)


# -- the pull as a whole ---------------------------------------------------------------------------


def listing() -> list[BookedInvitee]:
    one, two, three = event(1, FREE), event(2, ACCELERATE), event(3, 999)
    return [
        item(one, invitee(one, 1)),
        item(one, cancelled(invitee(one, 2), at=BOOKED + dt.timedelta(hours=1))),
        item(two, invitee(two, 3, answers=[("Topics", "RAG")])),
        item(three, invitee(three, 4)),
    ]


def test_a_pull_records_its_run_and_a_second_pull_changes_nothing(catalogue: Session) -> None:
    session = catalogue
    ticks = iter(range(100))
    clock = lambda: NOW + dt.timedelta(seconds=next(ticks))  # noqa: E731
    report = pull_bookings(session, listing(), source="api", started_at=NOW, clock=clock, pathway_question=PATTERN)
    session.commit()
    assert report.as_record() == {
        "run_id": report.run_id,
        "status": "succeeded",
        "dry_run": False,
        "fetched": 4,
        "created": 3,
        "updated": 0,
        "cancelled": 0,
        "rescheduled": 0,
        "unchanged": 0,
        "skipped": 1,
        "warnings": 0,
    }
    run = session.get(SyncRun, report.run_id)
    assert run is not None
    assert (run.kind, run.source, run.status, run.created, run.skipped, run.fetched) == (
        "bookings",
        "api",
        "succeeded",
        3,
        1,
        4,
    )
    rows = {table: count(session, table) for table in (Booking, User, Enrolment, AuditEntry)}
    again = pull_bookings(session, listing(), source="api", started_at=NOW, clock=clock, pathway_question=PATTERN)
    session.commit()
    assert (again.unchanged, again.created, again.skipped) == (3, 0, 1)
    assert {table: count(session, table) for table in (Booking, User, Enrolment, AuditEntry)} == rows
    assert [view["kind"] for view in list_runs(session)] == ["bookings", "bookings", "event_types"]
    assert [view["run_id"] for view in list_runs(session, kind="bookings")] == [again.run_id, report.run_id]


def test_a_dry_run_pull_records_no_run(catalogue: Session) -> None:
    session = catalogue
    report = pull_bookings(
        session, listing(), source="file", started_at=NOW, clock=lambda: NOW, pathway_question=PATTERN, dry_run=True
    )
    assert (report.run_id, report.created) == (None, 3)
    assert session.scalar(select(func.count()).select_from(SyncRun).where(SyncRun.kind == "bookings")) == 0


def test_failed_pulls_are_recorded_as_bookings_runs(catalogue: Session) -> None:
    session = catalogue
    failed = BookingPullReport(
        run_id=None, status="failed", dry_run=False, source="api", error="Calendly GET /scheduled_events: HTTP 500"
    )
    run_id = record_run(session, failed, started_at=NOW, finished_at=NOW)
    session.commit()
    [view] = list_runs(session, kind="bookings")
    assert (view["run_id"], view["status"], view["error"]) == (
        run_id,
        "failed",
        "Calendly GET /scheduled_events: HTTP 500",
    )
    with pytest.raises(InvalidInput, match="kind"):
        list_runs(session, kind="everything")


@pytest.mark.parametrize(
    ("started", "type_index", "price", "payment", "expected"),
    [
        (dt.timedelta(hours=2), FREE, "0", "not_required", "completed"),  # ended
        (dt.timedelta(hours=2), SPECIALIZED, "40", "unpaid", "completed"),
        (dt.timedelta(minutes=10), FREE, "0", "not_required", "confirmed"),  # still running
        (dt.timedelta(minutes=10), SPECIALIZED, "40", "unpaid", "pending"),
        (dt.timedelta(minutes=10), SPECIALIZED, "40", "paid", "confirmed"),
    ],
)
def test_undo_and_calendlys_no_show_deleted_restore_the_same_status(
    catalogue: Session, started: dt.timedelta, type_index: int, price: str, payment: str, expected: str
) -> None:
    """One rule (services.rule_book.restored_status) behind both ways a no-show mark is taken back."""
    session = catalogue
    set_price(session, type_index, price)
    start = NOW - started  # the events last 30 minutes
    by_webhook, by_undo = event(31, type_index, start=start), event(32, type_index, start=start)
    people = invitee(by_webhook, 31), invitee(by_undo, 32)
    apply(session, item(by_webhook, people[0]), item(by_undo, people[1]))
    uris = [person["uri"] for person in people]
    marked = update(Booking).where(Booking.calendly_invitee_uri.in_(uris))
    session.execute(marked.values(status="no_show", payment_status=payment))
    session.commit()
    # the undo first: one builder's two bookings at one time, and only the undo keeps rule 6 (Calendly cannot)
    undone = undo_no_show(session, booking(session, uris[1]).reference, now=NOW).booking
    applier = InviteeApplier(session, now=NOW, pathway_question=PATTERN)
    taken_back = applier.apply_no_show(item(by_webhook, people[0]), marked=False, changed_at=NOW)
    session.commit()
    assert (taken_back.booking_status, undone.status) == (expected, expected)
    assert [booking(session, uri).status for uri in uris] == [expected, expected]


@pytest.mark.parametrize("door", ["undo", "calendly"])
@pytest.mark.parametrize(
    ("marked_by", "before"), [("bapp", "confirmed"), ("calendly", "confirmed"), ("calendly", "pending")]
)
def test_a_no_show_taken_back_before_the_end_returns_to_the_status_it_had_before_the_mark(
    catalogue: Session, door: str, marked_by: str, before: str
) -> None:
    # A priced booking staff confirmed before it was paid (`bookings confirm`) went back to pending when its no-show
    # mark was taken back, by `no-show --undo` or Calendly's deletion alike: rule 8 read the price and payment alone.
    # The mark's audit row records the status it moved from: confirmed comes back confirmed; pending stays pending.
    session = catalogue
    set_price(session, SPECIALIZED, "40")
    scheduled = event(35, SPECIALIZED, start=NOW - dt.timedelta(minutes=10))  # still running
    person = invitee(scheduled, 35)
    apply(session, item(scheduled, person))
    found = booking(session, person["uri"])
    assert (found.status, found.payment_status) == ("pending", "unpaid")
    if before == "confirmed":
        change_booking_status(session, found, "confirm", now=NOW)
    mark = {"uri": f"{API_ORIGIN}/invitee_no_shows/NS35", "created_at": iso(NOW - dt.timedelta(minutes=5))}
    delivery: dict[str, Any] = {"event": "invitee_no_show.created", "created_at": mark["created_at"]}
    delivery["payload"] = {**person, "no_show": mark, "scheduled_event": scheduled}
    if marked_by == "bapp":
        change_booking_status(session, found, "no-show", now=NOW)
    else:
        apply_webhook(session, WebhookPayload.model_validate(delivery), now=NOW, pathway_question=PATTERN)
    session.commit()
    assert booking(session, person["uri"]).status == "no_show"
    if door == "undo":
        back = undo_no_show(session, found.reference, now=NOW).booking.status
    else:
        taken_back = WebhookPayload.model_validate(
            {**delivery, "event": "invitee_no_show.deleted", "created_at": iso(NOW)}
        )
        back = apply_webhook(session, taken_back, now=NOW, pathway_question=PATTERN).booking_status
    session.commit()
    assert back == booking(session, person["uri"]).status == before


def test_the_status_before_a_no_show_is_read_past_audit_rows_that_record_no_move(catalogue: Session) -> None:
    # the audit log's JSON is read as stored: rows that move no status (or are no mapping at all) are passed over
    session = catalogue
    set_price(session, SPECIALIZED, "40")
    scheduled = event(36, SPECIALIZED, start=NOW - dt.timedelta(minutes=10))
    person = invitee(scheduled, 36)
    apply(session, item(scheduled, person))
    found = booking(session, person["uri"])
    change_booking_status(session, found, "confirm", now=NOW)
    change_booking_status(session, found, "no-show", now=NOW)
    for changes in (["not", "a", "mapping"], {"status": "no_show"}, {"status": [1]}, "text", {"note": "x"}):
        session.add(AuditEntry(actor="t", command="t", entity="booking", entity_key=found.reference, changes=changes))
    session.commit()
    assert undo_no_show(session, found.reference, now=NOW).booking.status == "confirmed"


def test_calendlys_no_show_deleted_brings_the_booking_back_over_a_clash_and_says_so(catalogue: Session) -> None:
    # Marked a no-show in Calendly, the booking held no slot here, and bapp booked the builder in it (a booking made
    # here, which Calendly never saw); Calendly then took the mark back: the booking came back confirmed, silently
    # double-booking the builder. Calendly's event never left its calendar, so its word stands (refusing would leave
    # bapp disagreeing with it for good: the deletion is not delivered again), and the clash is said and audited.
    session = catalogue
    start = NOW - dt.timedelta(minutes=10)  # still running: taken back to an active status
    scheduled = event(34, FREE, start=start)
    person = invitee(scheduled, 34)
    mark = {"uri": f"{API_ORIGIN}/invitee_no_shows/NS34", "created_at": iso(NOW - dt.timedelta(minutes=5))}
    payload = {**person, "no_show": mark, "scheduled_event": scheduled}
    marked = {"event": "invitee_no_show.created", "created_at": mark["created_at"], "payload": payload}
    apply_webhook(session, WebhookPayload.model_validate(marked), now=NOW, pathway_question=PATTERN)
    session.commit()
    missed = booking(session, person["uri"])
    assert missed.status == "no_show"
    other = User(email="bo@example.com")
    session.add(other)
    session.flush()
    meanwhile = Booking(
        **{name: getattr(missed, name) for name in ("builder_id", "session_type_id", "start_time", "end_time")},
        client_id=other.id, status="confirmed", payment_status="not_required", source="cli", reference="BK-CLASH001",
    )  # fmt: skip
    session.add(meanwhile)
    session.commit()
    taken_back = {**marked, "event": "invitee_no_show.deleted", "created_at": iso(NOW)}
    outcome = apply_webhook(session, WebhookPayload.model_validate(taken_back), now=NOW, pathway_question=PATTERN)
    session.commit()
    assert (outcome.action, outcome.booking_status) == ("updated", "confirmed")
    assert booking(session, person["uri"]).status == "confirmed"
    [warning] = outcome.warnings
    assert warning.startswith("back from no-show into a clash (start: builder ada@example.com already ")
    assert "has booking BK-CLASH001 at " in warning and warning.endswith("): cancel or move one")
    audited = session.scalars(select(AuditEntry).where(AuditEntry.entity_key == missed.reference)).all()
    assert [row.changes["clash"] for row in audited if "clash" in row.changes] == [warning]
    # the same deletion again (Calendly's retry) is older than the change applied: nothing more is said
    again = apply_webhook(session, WebhookPayload.model_validate(taken_back), now=NOW, pathway_question=PATTERN)
    assert (again.action, again.warnings) == ("unchanged", ())


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # only SQLite keeps text in an integer column
def test_calendlys_no_show_deleted_is_applied_when_its_slot_cannot_be_checked(catalogue: Session) -> None:
    # The clash check of a deletion only warns (Calendly's word stands), yet a value it reads that bapp cannot decode
    # (text in the builder's buffer, put there by raw SQL on SQLite) failed the whole delivery: exit 5, a 503 that
    # Calendly retries for a day and then gives up on. Before the check existed the deletion applied; it still does,
    # saying the slot was not checked and why. PostgreSQL's integer column cannot hold such a value.
    session = catalogue
    scheduled = event(38, FREE, start=NOW - dt.timedelta(minutes=10))
    person = invitee(scheduled, 38)
    mark = {"uri": f"{API_ORIGIN}/invitee_no_shows/NS38", "created_at": iso(NOW - dt.timedelta(minutes=5))}
    marked = {"event": "invitee_no_show.created", "created_at": mark["created_at"]}
    marked["payload"] = {**person, "no_show": mark, "scheduled_event": scheduled}
    apply_webhook(session, WebhookPayload.model_validate(marked), now=NOW, pathway_question=PATTERN)
    session.execute(text("UPDATE builder_profiles SET buffer_minutes = 'ten'"))
    session.commit()
    taken_back = WebhookPayload.model_validate({**marked, "event": "invitee_no_show.deleted", "created_at": iso(NOW)})
    outcome = apply_webhook(session, taken_back, now=NOW, pathway_question=PATTERN)
    session.commit()
    assert (outcome.action, outcome.booking_status) == ("updated", "confirmed")
    [warning] = outcome.warnings
    assert warning.startswith("back from no-show, its slot not checked (") and "buffer_minutes" in warning
    audited = session.scalars(select(AuditEntry.changes).filter_by(entity_key=outcome.reference)).all()
    assert [changes["clash"] for changes in audited if "clash" in changes] == [warning]


def _marked_a_no_show_by_webhook(session: Session, number: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """A booking made ten minutes ago that a delivery has marked a no-show, committed: (its invitee, that delivery)."""
    scheduled = event(number, FREE, start=NOW - dt.timedelta(minutes=10))
    person = invitee(scheduled, number)
    mark = {"uri": f"{API_ORIGIN}/invitee_no_shows/NS{number}", "created_at": iso(NOW - dt.timedelta(minutes=5))}
    marked: dict[str, Any] = {"event": "invitee_no_show.created", "created_at": mark["created_at"]}
    marked["payload"] = {**person, "no_show": mark, "scheduled_event": scheduled}
    apply_webhook(session, WebhookPayload.model_validate(marked), now=NOW, pathway_question=PATTERN)
    session.commit()
    return person, marked


def test_calendlys_no_show_deleted_takes_every_key_of_its_rule_6_check_in_its_first_turn(
    catalogue: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Taking its slot back is checked under the keys a creation takes (rule 6). A delivery takes the client's key first;
    # had the check then taken the builder's, a creation for that client holding the builder's (lock_keys sorts one
    # call's keys) and waiting for the client's would deadlock with it on PostgreSQL. So the builder's comes in the
    # first call, and later calls add no key, nor (naming CALENDLY_BOOKINGS) the writers' lock a pull holds.
    from bapp_cli.db import locks
    from bapp_cli.services import booking as rules
    from bapp_cli.services import calendly_bookings as doors

    session = catalogue
    person, marked = _marked_a_no_show_by_webhook(session, 37)
    builder = booking(session, person["uri"]).builder_id
    calls: list[set[str]] = []

    def spied(session: Session, *names: str, **modes: Any) -> None:
        calls.append(set(names))
        locks.lock_keys(session, *names, **modes)

    monkeypatch.setattr(doors, "lock_keys", spied)
    monkeypatch.setattr(rules, "lock_keys", spied)
    taken_back = WebhookPayload.model_validate({**marked, "event": "invitee_no_show.deleted", "created_at": iso(NOW)})
    assert apply_webhook(session, taken_back, now=NOW, pathway_question=PATTERN).booking_status == "confirmed"
    first, *later = calls
    assert {locks.CALENDLY_BOOKINGS, locks.client_lock_key(person["email"]), f"builder:{builder}"} <= first
    assert later and all(locks.CALENDLY_BOOKINGS in names and names <= first for names in later)


@pytest.mark.parametrize("door", ["pull", "webhook"])
def test_a_no_show_mark_kept_on_a_booking_cancelled_here_is_audited(catalogue: Session, door: str) -> None:
    # Cancelled in bapp, then marked a no-show in Calendly: the first pull (or delivery) to see the mark kept its time
    # and URI on the booking, the status staying cancelled (a warning said so), and wrote no audit entry for it.
    session = catalogue
    scheduled = event(33, FREE, start=NOW - dt.timedelta(hours=2))
    person = invitee(scheduled, 33)
    apply(session, item(scheduled, person))
    cancelled_here = booking(session, person["uri"])
    cancelled_here.status = "cancelled"
    session.commit()
    mark = {"uri": f"{API_ORIGIN}/invitee_no_shows/NS33", "created_at": iso(NOW - dt.timedelta(minutes=30))}
    seen = item(scheduled, {**person, "no_show": mark})
    if door == "pull":
        pull_bookings(session, [seen], source="api", started_at=NOW, clock=lambda: NOW, pathway_question=PATTERN)
    else:
        payload = {**person, "no_show": mark, "scheduled_event": scheduled}
        delivery = {"event": "invitee_no_show.created", "created_at": mark["created_at"], "payload": payload}
        apply_webhook(session, WebhookPayload.model_validate(delivery), now=NOW, pathway_question=PATTERN)
    session.commit()
    found = booking(session, person["uri"])
    assert (found.status, found.calendly_no_show_uri) == ("cancelled", mark["uri"])
    audited = session.scalars(select(AuditEntry).where(AuditEntry.entity_key == found.reference)).all()
    assert [row.changes.get("no_show") for row in audited if "calendly_no_show_at" in row.changes] == [True]


def test_webhook_events_other_than_invitee_ones_are_ignored(catalogue: Session) -> None:
    payload = WebhookPayload.model_validate(
        {"event": "event_type.updated", "created_at": iso(NOW), "payload": {"uri": type_uri(1)}}
    )
    result = apply_webhook(catalogue, payload, now=NOW, pathway_question=PATTERN)
    assert result.as_record()["action"] == "ignored"
    assert count(catalogue, Booking) == 0


# -- saved listings (no database) ------------------------------------------------------------------


def test_saved_listings_in_each_shape_parse_to_the_same_invitees() -> None:
    one, two = event(1, FREE), event(2, PLAY, start=START + dt.timedelta(days=2))
    one["invitees"] = [invitee(one, 1), invitee(one, 2)]
    two["invitees"] = {"collection": [invitee(two, 3)], "pagination": {"next_page": None}}
    shapes = [
        {"collection": [one, two], "pagination": {}},
        [{"collection": [one]}, {"collection": [two]}],
        [one, two],
    ]
    parsed = [parse_bookings_listing(json.dumps(shape), name="saved.json") for shape in shapes]
    uris = [[entry.invitee.uri for entry in entries] for entries in parsed]
    assert uris[0] == uris[1] == uris[2] and len(uris[0]) == 3
    assert [entry.invitee.uri for entry in within(parsed[0], START + dt.timedelta(days=1), None)] == [
        two["invitees"]["collection"][0]["uri"]
    ]
    assert len(within(parsed[0], None, START + dt.timedelta(days=1))) == 2


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON (line 1"),
        ('{"events": []}', "'collection' array"),
        ("42", "expected a listing page"),
    ],
)
def test_unreadable_saved_listings_are_invalid_input(content: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=re.escape(message)):
        parse_bookings_listing(content, name="saved.json")


def test_every_bad_item_of_a_saved_listing_is_reported_with_its_place() -> None:
    good = event(1, FREE)
    good["invitees"] = [invitee(good, 1)]
    no_invitees = event(2, FREE)
    bad_event = {**event(3, FREE), "start_time": "yesterday", "invitees": []}
    bad_invitee = event(4, FREE)
    bad_invitee["invitees"] = [invitee(bad_invitee, 4), {**invitee(bad_invitee, 5), "status": "maybe"}]
    with pytest.raises(InvalidInput) as caught:
        parse_bookings_listing(json.dumps([good, no_invitees, bad_event, bad_invitee]), name="saved.json")
    details = caught.value.details
    assert [(d["row"], d.get("field")) for d in details] == [
        ("[1]", "invitees"),
        ("[2]", "start_time"),
        ("[3].invitees[1]", "status"),
    ]
    assert caught.value.message.startswith("saved.json: 3 invalid value(s) in the listing; first: [1] invitees")


# -- real shapes (R7) ------------------------------------------------------------------------------

SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "reference" / "calendly-samples"


def sample(name: str) -> Any:
    return json.loads((SAMPLES / name).read_text())


def sync_type(session: Session, uri: str, questions: list[dict[str, Any]] | None = None) -> None:
    raw = {**make_event_type(50, custom_questions=questions), "uri": uri}
    sync_event_types(session, [EventType.model_validate(raw)], source="api", started_at=NOW, clock=lambda: NOW)
    session.commit()


def test_calendlys_own_webhook_sample_applies(session: Session) -> None:
    body = (SAMPLES / "calendlyr" / "objects_webhooks_payload.json").read_bytes()
    payload = parse_webhook(body)
    assert payload.payload is not None
    sync_type(session, payload.payload.scheduled_event.event_type or "")
    result = apply_webhook(session, payload, now=NOW, pathway_question=PATTERN)
    session.commit()
    assert (result.action, result.booking_status) == ("created", "confirmed")
    # the sample's event ends when it starts: the booking gets the session's 15 minutes, with a warning
    assert any("ends at or before its start" in warning for warning in result.warnings)
    found = booking(session, payload.payload.uri)
    assert (found.client_timezone, found.end_time - found.start_time) == ("America/New_York", dt.timedelta(minutes=15))


def test_a_captured_rescheduled_invitee_with_a_multi_select_answer_applies(session: Session) -> None:
    checkboxes = {
        "name": "Checkboxes Question",
        "type": "multi_select",
        "position": 3,
        "enabled": True,
        "required": False,
        "answer_choices": ["A1", "A2"],
        "include_other": True,
    }
    scheduled = sample("koshilife/scheduled_event_001.json")["resource"]
    person = sample("koshilife/scheduled_event_invitee_301.json")["resource"]
    sync_type(session, scheduled["event_type"], [checkboxes])
    [outcome] = apply(session, item(scheduled, person))
    assert (outcome.action, outcome.booking_status) == ("created", "cancelled")
    found = booking(session, person["uri"])
    assert found.cancellation_reason == "Rescheduled: I have to be absent next week, sorry."
    answers = {entry["question"]: entry["answer"] for entry in found.custom_question_responses}
    assert answers["Checkboxes Question"] == ["A1", "Other"]
    assert answers["Multiple Lines Question"] == "text1\ntext2\ntext3"  # a text answer keeps its lines
    assert found.client_timezone == "Asia/Tokyo"


def test_a_pull_parks_what_it_could_not_apply_once_without_applying_it_again(
    catalogue: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """R8: the invitee a pull skipped goes to the inbox as the pull left it — applied once, parked once."""
    session = catalogue
    applied: list[str] = []
    apply_one = InviteeApplier.apply

    def counted(applier: InviteeApplier, entry: BookedInvitee) -> Any:
        applied.append(entry.invitee.uri)
        return apply_one(applier, entry)

    monkeypatch.setattr(InviteeApplier, "apply", counted)
    items = listing()
    job = bookings_pull_job(since=None, until=None, pathway_question=PATTERN, rules=(), reading=None)  # a saved listing
    report = job.apply(session, items, source="file", started_at=NOW, clock=lambda: NOW, dry_run=False)
    session.commit()
    assert applied == [entry.invitee.uri for entry in items]
    [parked] = session.scalars(select(WebhookDelivery)).all()
    assert (parked.invitee_uri, parked.source, parked.status, parked.attempts) == (
        items[3].invitee.uri,
        "pull",
        "pending",
        1,
    )
    assert (
        parked.last_error
        == report.outcomes[3].note
        == f"unknown event type {type_uri(999)}; run `bapp calendly sync` first"
    )


def test_calendlys_no_show_deleted_takes_its_types_key_first_though_a_sync_makes_it_a_group_meanwhile(
    catalogue: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The keys are read before they are taken, under CALENDLY_BOOKINGS: no writer changes the booking's client, builder
    # or type meanwhile, but a sync may make its type a group (it takes no key), and the check, reading it after, took
    # the group's key in a later call, after the client's: the deadlock the first turn avoids, with a group creation.
    from bapp_cli.db import locks
    from bapp_cli.services import booking as rules
    from bapp_cli.services import calendly_bookings as doors

    session = catalogue
    person, marked = _marked_a_no_show_by_webhook(session, 39)
    type_id = booking(session, person["uri"]).session_type_id
    assert session.get_one(SessionType, type_id).kind == "solo"
    calls: list[set[str]] = []

    def spied(session: Session, *names: str, **modes: Any) -> None:
        calls.append(set(names))
        locks.lock_keys(session, *names, **modes)
        if len(calls) == 1:  # the sync's change, committed after the keys were read
            session.execute(update(SessionType).where(SessionType.id == type_id).values(kind="group"))

    monkeypatch.setattr(doors, "lock_keys", spied)
    monkeypatch.setattr(rules, "lock_keys", spied)
    taken_back = WebhookPayload.model_validate({**marked, "event": "invitee_no_show.deleted", "created_at": iso(NOW)})
    assert apply_webhook(session, taken_back, now=NOW, pathway_question=PATTERN).booking_status == "confirmed"
    first, *later = calls
    assert later and all(names <= first for names in later), calls
    assert f"session:{type_id}" in first

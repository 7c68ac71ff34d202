"""Bookings: creation under the eight booking rules (README "Booking rules"), the status machine, listing.

`create_booking` checks every rule before it writes anything, in this order: the session type and the
builder (rule 1), the time window and duration (2), the account (3), the pathway (4), the answers (5),
overlaps (6); idempotency (7) is settled first of all, so a repeat returns the earlier booking even if a
rule would now refuse it; status and payment follow from the price (8). Rules 4, 6 and 8 are decided by
services.rule_book, which the import and the Calendly doors ask too. The caller's unit of work is the
one transaction: a refusal or `--dry-run` leaves the database as it was.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import heapq
import json
import secrets
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bapp_cli.db.audit import apply_changes, record_audit, stamp_and_audit
from bapp_cli.db.domains import REASON_LIMIT
from bapp_cli.db.locks import booking_keys, lock_keys, lock_rows
from bapp_cli.db.models import Booking, BuilderProfile, Enrolment, Pathway, SessionType, SessionTypePathway, User
from bapp_cli.errors import BappError, Conflict, InvalidInput
from bapp_cli.services.answers import AnswerInput, answer_values, questions_from, validate_answers
from bapp_cli.services.builders import bounded_settings
from bapp_cli.services.enrolment import CompletionOutcome, enrol
from bapp_cli.services.instants import check_in_range, get_zone, instant_text
from bapp_cli.services.pathways import answer_key, get_pathway
from bapp_cli.services.people import clean_name, clean_text, ensure_client, find_user, get_builder, normalise_email
from bapp_cli.services.plain_reads import BOOKING_COLUMNS as BOOKING_COLUMNS  # where the record is defined
from bapp_cli.services.plain_reads import BookingView, booking_not_found, booking_view  # read as `bookings show` does
from bapp_cli.services.rule_book import (
    ACTIVE_STATUSES,
    LONGEST_BOOKING,
    NearbyBooking,
    PathwayFacts,
    Refusal,
    SessionFacts,
    choose_pathway,
    find_clash,
    price_status,
)
from bapp_cli.services.session_types import check_bookable, get_session_type
from bapp_cli.services.session_values import offered_minutes

CREATED_COLUMNS = (*BOOKING_COLUMNS, "account_created", "enrolled", "pathways_completed", "existing")
# No 0/O, 1/I/L: references are read out over the phone and typed by hand.
REFERENCE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
REFERENCE_LENGTH = 8
REFERENCE_ATTEMPTS = 8
# The longest booking allowed (the rule book's), in the minutes a duration is given in. It bounds the overlap query's
# window from below as well as above, so the (person, start_time) indexes are scanned over a short range whatever the
# size of the history.
MAX_BOOKING_MINUTES = LONGEST_BOOKING // dt.timedelta(minutes=1)
MAX_KEY_LENGTH = 200
# calendly_state of a booking sent to Calendly whose answer bapp has not recorded yet (services.calendly_write)
PENDING_STATES = ("requested", "unknown")


def waiting_for_calendly(booking: Booking, *, hint: str = "run `bapp calendly reconcile` first") -> Conflict:
    """The refusal of a move on a booking in PENDING_STATES, which a reconcile may yet delete."""
    return Conflict(
        f"booking {booking.reference} is still waiting for Calendly's confirmation", hint=hint, code="calendly_pending"
    )


@dataclass(frozen=True)
class BookingRequest:
    """What `bookings create` asks for; `start` is already an aware instant (see services.instants)."""

    client_email: str
    session: str
    start: dt.datetime
    client_timezone: str = "UTC"
    name: str | None = None
    duration: int | None = None
    builder_email: str | None = None
    pathway: str | None = None
    answers: Sequence[AnswerInput] = ()
    create_account: bool = False
    idempotency_key: str | None = None
    allow_past: bool = False
    allow_overlap: bool = False
    source: str = "cli"
    # Calendly's open starts for the session (README "Booking in Calendly"): when given, the start must be
    # one of them and the booking is held as pending with calendly_state "requested" until Calendly answers.
    calendly_open_starts: tuple[dt.datetime, ...] | None = None


# who a request books with and for, as create_booking resolved them (builder, their settings, client), and whether
# it allows an overlap: what bookable_slots, given one, holds a slot to without reading them again
Resolved = tuple[User | None, BuilderProfile | None, User | None, bool]


@dataclass(frozen=True)
class BookingCreated:
    booking: BookingView
    account_created: bool
    enrolled: bool
    existing: bool
    pathways_completed: list[str] = field(default_factory=list)  # the enrolment made completed, as `skills` say

    def as_record(self) -> dict[str, Any]:
        """The booking's record, then what its creation did (the rest of CREATED_COLUMNS, named as here)."""
        rest = CREATED_COLUMNS[len(BOOKING_COLUMNS) :]
        return self.booking.as_record() | {name: getattr(self, name) for name in rest}


@dataclass(frozen=True)
class StatusChange:
    """The result of a status or payment command."""

    booking: BookingView
    changes: dict[str, list[str]] = field(default_factory=dict)


# -- reading ----------------------------------------------------------------------------------------


def get_booking(session: Session, reference: str, *, for_update: bool = False) -> Booking:
    query = select(Booking).where(named := Booking.reference == reference.strip().upper())
    # for_update, on PostgreSQL: two staff changing the same booking at once serialise here; SQLite's write
    # transactions are already exclusive (BEGIN IMMEDIATE). First, as every door that writes a client's bookings, it
    # waits for any import (db.locks.PEOPLE_TABLES) and takes the client's key (db.locks.client_lock_key): holding
    # the row, a change waited at its write for an import's hold on the table, or (`no-show --undo`'s overlap check)
    # for the key a Calendly delivery held while it waited for the row, each for the other (a deadlock). All the keys
    # a creation of it takes (_lock_request), at once: the client's alone, then the builder's in the overlap check,
    # met a creation holding the builder's, sorted first, and waiting for the client's
    if for_update:
        theirs = select(User.email, SessionType, Booking.builder_id).where(named, User.id == Booking.client_id)
        if found := session.execute(theirs.filter(SessionType.id == Booking.session_type_id)).one_or_none():
            _lock_request(session, *found, None)
    if (booking := session.scalars(query.with_for_update() if for_update else query).one_or_none()) is None:
        raise booking_not_found(reference)
    return booking


# -- creation ---------------------------------------------------------------------------------------


def generate_reference() -> str:
    return "BK-" + "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(REFERENCE_LENGTH))


def resolve_builder(
    session: Session, email: str | None, owner_id: int | None
) -> tuple[User | None, BuilderProfile | None]:
    """`--builder`, else the owner (the session type's, or a booking's builder); an owner without a builder
    profile has default settings. Their settings are held to the bounds of `builders add/update`."""
    if email is not None:
        return bounded_settings(*get_builder(session, email))
    owner_and_profile = select(User, BuilderProfile).outerjoin(BuilderProfile, BuilderProfile.user_id == User.id)
    # one_or_none: no owner finds no row; nor does, as with the session.get it replaced, a missing owner named
    # by a database whose foreign keys were not enforced, which books without builder settings (not exit 1)
    found = session.execute(owner_and_profile.where(User.id == owner_id)).one_or_none()
    return bounded_settings(found[0], found[1]) if found is not None else (None, None)


def allowed_durations(session_type: SessionType) -> list[int]:
    return offered_minutes(session_type.duration_minutes, session_type.duration_options)


def _check_duration(session_type: SessionType, duration: int | None) -> int:
    minutes = session_type.duration_minutes if duration is None else duration
    if minutes not in (allowed := allowed_durations(session_type)):
        raise InvalidInput(
            f"duration: {minutes} minutes is not offered by {session_type.title!r}",
            hint="choose one of: " + ", ".join(str(option) for option in allowed),
            code="invalid_duration",
        )
    if minutes > MAX_BOOKING_MINUTES:
        raise InvalidInput(f"duration: {minutes} minutes is longer than {MAX_BOOKING_MINUTES}", code="invalid_duration")
    return minutes


def _check_time(start: dt.datetime, now: dt.datetime, builder: User | None, profile: BuilderProfile | None) -> None:
    if start <= now:
        hint = "pass --allow-past to record a past booking"
        raise InvalidInput(f"start: {instant_text(start)} is not in the future", hint=hint, code="past_start")
    if profile is None or builder is None:
        return
    hours = profile.minimum_notice_hours
    if hours and start < (earliest := now + dt.timedelta(hours=hours)):
        raise InvalidInput(
            f"start: {builder.email} needs {hours} hours' notice; "
            f"the earliest start is {instant_text(earliest.replace(microsecond=0))}",
            code="too_soon",
        )
    if profile.max_advance_days and start > (latest := now + dt.timedelta(days=profile.max_advance_days)):
        raise InvalidInput(
            f"start: {builder.email} takes bookings at most {profile.max_advance_days} days ahead; "
            f"the latest start is {instant_text(latest.replace(microsecond=0))}",
            code="too_far_ahead",
        )


def _refuse_with(refusal: Refusal) -> BappError:
    """A rule book refusal as the command's error: a clash with other bookings is a conflict (exit 8)."""
    return (Conflict if refusal.conflict else InvalidInput)(refusal.text, hint=refusal.hint, code=refusal.code)


def linked_pathways(session: Session, session_type: SessionType) -> list[Pathway]:
    """The session type's linked, non-archived pathways in display order (rule 4's choices); none unless
    it is a pathway session: the links decide nothing for other sessions (nothing is read for them)."""
    if session_type.category != "pathway":
        return []
    links = select(Pathway).join(SessionTypePathway, SessionTypePathway.pathway_id == Pathway.id)
    active = links.where(SessionTypePathway.session_type_id == session_type.id, Pathway.archived.is_(False))
    return list(session.scalars(active.order_by(Pathway.position, Pathway.slug)))


def pick_pathway(
    session: Session,
    session_type: SessionType,
    requested: Pathway | None,
    client: User | None,
    linked: list[Pathway],
    *,
    warnings: list[str] | None = None,
) -> Pathway | None:
    """Rule 4 (services.rule_book.choose_pathway) over the session's links (``linked_pathways``) and the
    client's active enrolments, read only when they can decide. With ``warnings``, Calendly's lenient form:
    nothing is refused, and what bapp could not decide is added there; else a refusal is raised."""
    enrolled: set[int] = set()
    if linked and client is not None and (requested is None or requested.archived):
        active = select(Enrolment.pathway_id).where(Enrolment.client_id == client.id, Enrolment.status == "active")
        enrolled.update(session.scalars(active))
    choice = choose_pathway(
        SessionFacts.of(session_type),
        [PathwayFacts.of(pathway) for pathway in linked],
        PathwayFacts.of(requested) if requested is not None else None,
        enrolled,
        lenient=warnings is not None,
    )
    if isinstance(choice, Refusal):
        raise _refuse_with(choice)
    if choice.warning is not None and warnings is not None:
        warnings.append(choice.warning)
    chosen = choice.pathway.id if choice.pathway is not None else None
    return next((pathway for pathway in (requested, *linked) if pathway is not None and pathway.id == chosen), None)


def _nearby(
    session: Session, column: Any, owner: User | SessionType | None, start: dt.datetime, end: dt.datetime
) -> list[NearbyBooking]:
    """Active bookings of one person or session type (none without one) that may intersect [start, end), via
    the (`column`, start_time) index."""
    if owner is None:
        return []
    pending = Booking.calendly_state.in_(PENDING_STATES)
    near = select(Booking.reference, Booking.start_time, Booking.end_time, Booking.session_type_id, pending).where(
        column == owner.id,
        Booking.status.in_(ACTIVE_STATUSES),
        Booking.start_time < end,
        Booking.start_time > start - LONGEST_BOOKING,
        Booking.end_time > start,
    )
    return [NearbyBooking(*row) for row in session.execute(near)]


def _fingerprint(
    request: BookingRequest,
    client_email: str,
    session_type_id: int,
    start: dt.datetime,
    booked: tuple[int, int | None],
    timezone: str,
) -> str:
    """A digest of the request as it affects the booking, so a retried command matches its first run; a duration
    or builder it leaves out is read as ``booked`` (minutes, builder id) says."""
    answers: dict[str, list[str]] = {}
    for answer in request.answers:
        answers.setdefault(answer_key(answer.question), []).extend(answer_values(answer))
    document = {
        "client": client_email,
        "session_type": session_type_id,
        "start": start.isoformat(),
        "duration": request.duration if request.duration is not None else booked[0],
        "builder": booked[1],
        "pathway": request.pathway.strip().lower() if request.pathway else None,
        "answers": {key: sorted(values) for key, values in sorted(answers.items())},
        "timezone": timezone,
    }
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


def insert_booking(session: Session, booking: Booking) -> None:
    """Insert with a fresh random reference, retrying the (astronomically rare) collision."""
    for _ in range(REFERENCE_ATTEMPTS):
        booking.reference = generate_reference()
        try:
            # A savepoint, so that a collision on PostgreSQL does not abort the whole transaction.
            with session.begin_nested():
                session.add(booking)
                session.flush()
            return
        except IntegrityError:
            if session.scalar(select(Booking.id).where(Booking.reference == booking.reference)) is None:
                raise
    raise Conflict("could not find a free booking reference; try again")


def creation_audit(
    booking: Booking,
    client_email: str,
    builder: User | None,
    pathway: Pathway | None,
    *,
    account_created: bool,
    enrolled: bool,
) -> dict[str, Any]:
    """The audit record of a new booking, one shape whether it was booked here or came from Calendly."""
    return {
        "client": client_email,
        "session": booking.session_type_id,
        "start": booking.start_time,
        "end": booking.end_time,
        "builder": builder.email if builder is not None else None,
        "pathway": pathway.slug if pathway is not None else None,
        "status": booking.status,
        "payment_status": booking.payment_status,
        "amount": booking.amount,
        "account_created": account_created,
        "enrolled": enrolled,
    }


def _lock_request(
    session: Session, email: str, session_type: SessionType, builder_id: int | None, key: str | None, *held: str
) -> None:
    """Rules 6 and 7 are check-then-insert, so concurrent creations for the same builder, client, slot or
    key must not interleave between the check and the insert. PostgreSQL (READ COMMITTED) gets
    transaction-scoped advisory locks on those keys, taken before any read of bookings: a second
    transaction waits here and, once the first commits, its later statements see the first's booking; an
    import, which holds the whole bookings and users tables instead, is waited for here too.
    On SQLite this is a no-op because the unit of work began with BEGIN IMMEDIATE, which already lets
    only one writer in at a time across processes (see db/engine.py)."""
    group = session_type.id if session_type.kind == "group" else None
    lock_keys(session, *booking_keys(email, builder_id, group, key), *held, people=True)


def _builder_side(session_type: SessionType, builder: User | None) -> tuple[Any, User | SessionType | None]:
    """The column and owner (for ``_nearby``) of the bookings a new one of the session type may clash with: its
    builder's; without a builder, a group session's own, so that its invitee limit still counts seats."""
    group_alone = builder is None and session_type.kind == "group"
    return (Booking.session_type_id, session_type) if group_alone else (Booking.builder_id, builder)


def _check_overlap(
    session: Session,
    session_type: SessionType,
    start: dt.datetime,
    end: dt.datetime,
    builder: User | None,
    profile: BuilderProfile | None,
    client: User | None,
    hint: str | None = None,
    near_builder: Sequence[NearbyBooking] | None = None,
    near_client: Sequence[NearbyBooking] | None = None,
) -> None:
    """Rule 6 (the decision is services.rule_book.find_clash's) over the builder's bookings nearby, widened by their
    buffer, and the client's (each read here unless ``near_builder`` or ``near_client`` holds them, or more);
    ``hint``, the way out instead of the rule book's."""
    buffer = (profile.buffer_minutes or 0) if profile is not None else 0
    margin = dt.timedelta(minutes=buffer)
    if near_builder is None:
        near_builder = _nearby(session, *_builder_side(session_type, builder), start - margin, end + margin)
    clash = find_clash(
        SessionFacts.of(session_type),
        start,
        end,
        builder_email=builder.email if builder is not None else None,
        builder_bookings=near_builder,
        buffer_minutes=buffer,
        client_email=client.email if client is not None else None,
        client_bookings=_nearby(session, Booking.client_id, client, start, end) if near_client is None else near_client,
    )
    if clash is not None:
        raise _refuse_with(replace(clash, hint=hint or clash.hint))


def bookable_slots(
    session: Session, session_type_id: int, slots: Sequence[Any], *, now: dt.datetime, by: Resolved | None = None
) -> Iterator[Any]:
    """Those of ``slots`` (records with a ``start_time`` and an ``end_time``, in start order) at which the session
    type's owner would take a booking from any client, or a request's builder from its client (``by``: the builder,
    their settings and the client as `create_booking` resolved them, and whether it allows an overlap, which then
    asks no rule 6): their notice and horizon (rule 2), their bookings, buffer and a group's seats (rule 6).
    Calendly's open times (`sessions slots`, the nearest a refused `bookings create` names) know none of these, nor
    any booking made in bapp alone. The builder's and the client's bookings are read once for all the slots (a
    year's may be 12,000); each slot is checked against the builder's starting from a longest booking and the
    buffer before it to the buffer after it."""
    session_type = session.get_one(SessionType, session_type_id)
    builder, profile, client, overlaps = by or (*resolve_builder(session, None, session_type.builder_id), None, False)
    buffer = (profile.buffer_minutes or 0) if profile is not None else 0
    margin, reach = dt.timedelta(minutes=buffer), dt.timedelta(minutes=buffer) + LONGEST_BOOKING
    window = (slots[0]["start_time"] - margin, slots[-1]["end_time"] + margin) if slots else (now, now)
    held = sorted(_nearby(session, *_builder_side(session_type, builder), *window), key=lambda booking: booking.start)
    starts, theirs = [booking.start for booking in held], _nearby(session, Booking.client_id, client, *window)
    for slot in slots:
        with contextlib.suppress(InvalidInput, Conflict):  # what bookings create would refuse it with
            _check_time(start := slot["start_time"], now, builder, profile)
            near = held[bisect_left(starts, start - reach) : bisect_left(starts, (end := slot["end_time"]) + margin)]
            if not overlaps:  # nor is rule 6 asked of a booking made with --allow-overlap
                _check_overlap(session, session_type, start, end, builder, profile, client, None, near, theirs)
            yield slot


def restorable(session: Session, booking: Booking, status: str, *held: str) -> str:
    """``status``, the one ``no-show --undo`` takes the booking back to, or why it cannot: the booking is not
    a no-show, or, back in an active status, its slot was booked while it held none (rule 6, under the keys a
    creation for the same people takes; in a read-only transaction too, as PostgreSQL allows those locks).
    ``held``: keys the caller holds (Calendly's deletion of the mark: CALENDLY_BOOKINGS, and these, see apply_webhook),
    named again so that db.locks.lock_keys takes no writers' lock after them (a pull holding it waits for those)."""
    if booking.status != "no_show":
        raise Conflict(f"booking {booking.reference} is {booking.status}: nothing to undo", code="illegal_transition")
    if status in ACTIVE_STATUSES:
        session_type = session.get_one(SessionType, booking.session_type_id)
        builder, profile = resolve_builder(session, None, booking.builder_id)
        client = session.get_one(User, booking.client_id)
        _lock_request(session, client.email, session_type, booking.builder_id, None, *held)
        hint = "cancel or move the clashing booking first"  # there is no --allow-overlap to take it back
        _check_overlap(session, session_type, booking.start_time, booking.end_time, builder, profile, client, hint)
    return status


def create_booking(session: Session, request: BookingRequest, *, now: dt.datetime) -> BookingCreated:
    """Create one booking under the booking rules (see the module docstring for the order)."""
    if request.start.tzinfo is None:
        raise ValueError("BookingRequest.start must be timezone-aware")
    email = normalise_email(request.client_email, field="client")
    timezone = get_zone(request.client_timezone, field="timezone").key
    # typed text under the one rule (services.plain_text), as the import takes it: a backup holding it restores
    key = clean_text(request.idempotency_key, "idempotency-key", max_length=MAX_KEY_LENGTH)
    if key is None and request.idempotency_key is not None:
        raise InvalidInput("idempotency-key: must not be empty", code="invalid_key")
    name = clean_name(request.name, "name")
    session_type = get_session_type(session, request.session)
    builder, profile = resolve_builder(session, request.builder_email, session_type.builder_id)
    requested_pathway = get_pathway(session, request.pathway) if request.pathway else None
    start = request.start.astimezone(dt.UTC)
    check_in_range(start, field="start")  # in UTC too, as stored: a backup holding it restores
    booked = (session_type.duration_minutes, builder.id if builder is not None else None)

    _lock_request(session, email, session_type, booked[1], key)
    earlier = session.scalars(select(Booking).where(Booking.idempotency_key == key)).one_or_none() if key else None
    if earlier is not None:
        # A repeat is read as its first run was: a duration or builder it leaves out was the session type's then,
        # and the booking's. Either may have changed since (a sync changes the type, an import or Calendly the
        # booking), so the repeat matches if it does when read by either, now.
        lengths = {booked[0], (earlier.end_time - earlier.start_time) // dt.timedelta(minutes=1)}
        owners = {booked[1]} if request.builder_email is not None else {booked[1], earlier.builder_id}
        fits = {_fingerprint(request, email, session_type.id, start, (m, b), timezone) for m in lengths for b in owners}
        if earlier.request_fingerprint not in fits:
            raise Conflict(
                f"idempotency-key: {key!r} was already used for booking {earlier.reference} with other data",
                hint="use a new key for a different booking",
                code="idempotency_conflict",
            )
        return BookingCreated(booking_view(session, earlier.id), False, False, True)

    # Rule 1
    check_bookable(session_type, builder, profile)
    # Rule 2
    end = start + dt.timedelta(minutes=_check_duration(session_type, request.duration))
    check_in_range(end, field="end_time")  # so too the end (the import checks an end_time)
    if not request.allow_past:
        _check_time(start, now, builder, profile)
    # Rule 3
    client = find_user(session, email)
    if client is None and session_type.requires_auth and not request.create_account:
        raise InvalidInput(
            f"client: {email} has no account and {session_type.title!r} requires one",
            hint="add --create-account to create the account with the booking (or `bapp clients add` first)",
            code="account_required",
        )
    # Rule 4, over the pathways as they stand till commit: on PostgreSQL an archive in flight was read past, and a
    # client enrolled already (enrol reads nothing again) booked the archived pathway (SQLite's writers take turns)
    if requested_pathway is not None or session_type.category == "pathway":
        lock_rows(session, Pathway)
    pathway = pick_pathway(session, session_type, requested_pathway, client, linked_pathways(session, session_type))
    # Rule 5
    responses = validate_answers(questions_from(session_type.custom_questions), request.answers)
    # Rule 6
    if not request.allow_overlap:
        _check_overlap(session, session_type, start, end, builder, profile, client)
    # A booking sent to Calendly must start at one of Calendly's open slots (exit 8 otherwise).
    if request.calendly_open_starts is not None and start not in request.calendly_open_starts:
        # the nearest that bapp's rules take too: Calendly's open times know nothing of them
        near = [{"start_time": other, "end_time": other + (end - start)} for other in request.calendly_open_starts]
        by = (builder, profile, client, request.allow_overlap)  # as resolved here: read again, ~1 statement a start
        takes = [slot["start_time"] for slot in bookable_slots(session, session_type.id, near, now=now, by=by)]
        raise Conflict(
            f"start: {instant_text(start)} is not an open slot of {session_type.title!r} in Calendly",
            hint=nearest_hint(takes, start, "no open starts near it; see `bapp sessions slots`"),
            code="not_an_open_slot",
        )

    # Every rule holds: write.
    new_account = client is None
    client, _, _ = ensure_client(session, email, name=name)
    enrolled, earned = False, CompletionOutcome()
    if pathway is not None:  # a client who has done every skill of the pathway is enrolled completed (enrol)
        _, enrolled, _, earned = enrol(session, client, pathway, now=now, builder=builder, new_client=new_account)
    # Rule 8
    status, payment_status = price_status(session_type.price)
    booking = Booking(
        client_id=client.id,
        builder_id=builder.id if builder is not None else None,
        session_type_id=session_type.id,
        start_time=start,
        end_time=end,
        client_timezone=timezone,
        status=status,
        payment_status=payment_status,
        amount=session_type.price,
        currency=session_type.currency,
        pathway_id=pathway.id if pathway is not None else None,
        custom_question_responses=responses,
        idempotency_key=key,
        request_fingerprint=_fingerprint(request, email, session_type.id, start, booked, timezone),
        source=request.source,
        created_at=now,
        updated_at=now,
    )
    if request.calendly_open_starts is not None:
        # The intent is committed before POST /invitees is sent, and the attempt counted before it too:
        # whatever happens to the answer, reconcile knows a request may have reached Calendly.
        booking.status, booking.calendly_state, booking.calendly_attempts = "pending", "requested", 1
        booking.calendly_requested_at = now
    insert_booking(session, booking)
    audit = creation_audit(booking, email, builder, pathway, account_created=new_account, enrolled=enrolled)
    record_audit(session, "booking", booking.reference, audit)
    return BookingCreated(booking_view(session, booking.id), new_account, enrolled, False, earned.pathways_completed)


def nearest_hint(starts: Sequence[dt.datetime], wanted: dt.datetime, otherwise: str) -> str:
    """The hint of a start that is not open: the three open starts closest to ``wanted``, in time order, if any."""
    nearest = sorted(heapq.nsmallest(3, starts, key=lambda start: (abs((start - wanted).total_seconds()), start)))
    return f"nearest open starts: {', '.join(map(instant_text, nearest))}" if nearest else otherwise


# -- status machine ---------------------------------------------------------------------------------

# command → (the field it moves, from → to). completed and cancelled are final; no_show is until `no-show --undo`.
MOVES: dict[str, tuple[str, dict[str, str]]] = {
    "confirm": ("status", {"pending": "confirmed"}),
    "cancel": ("status", {"pending": "cancelled", "confirmed": "cancelled"}),
    "complete": ("status", {"confirmed": "completed"}),
    "no-show": ("status", {"confirmed": "no_show"}),
    "mark-paid": ("payment_status", {"unpaid": "paid"}),
    "refund": ("payment_status", {"paid": "refunded"}),
}
# These record what happened at the session, so they cannot precede it.
AFTER_START = ("complete", "no-show")


def _allowed(name: str, current: str) -> list[str]:
    """The commands that move the booking's field `name` on from `current`."""
    return [command for command, (field, moves) in MOVES.items() if field == name and current in moves]


def status_move(booking: Booking, command: str, *, now: dt.datetime, shown: str | None = None) -> tuple[str, str]:
    """The field `command` moves and the value it takes it to, or the Conflict (exit 8) naming the moves
    allowed from where the booking stands (`shown`: the command as the user typed it). Checked before
    Calendly is asked to change a booking too, so Calendly never makes a move bapp refuses."""
    name, table = MOVES[command]
    current = getattr(booking, name)
    if current not in table:
        allowed = _allowed(name, current) + (["no-show --undo"] if current == "no_show" else [])
        what, state = ("status", f"is {current}") if name == "status" else ("payment", f"payment is {current}")
        options = f"allowed: {', '.join(allowed)}" if allowed else f"no {what} change is allowed from {current}"
        message = f"booking {booking.reference} {state}; cannot {shown or command} ({options})"
        raise Conflict(message, code="illegal_transition")
    if command in AFTER_START and booking.start_time > now:
        allowed = [other for other in _allowed("status", booking.status) if other not in AFTER_START]
        raise Conflict(
            f"booking {booking.reference} starts at {instant_text(booking.start_time)}; "
            f"it cannot be marked {table[current]} before it has started",
            hint="allowed now: " + ", ".join(allowed),
            code="illegal_transition",
        )
    return name, table[current]


def clean_reason(reason: str | None) -> str | None:
    """A cancellation's reason as kept: trimmed, none when blank, at most REASON_LIMIT characters (exit 6), as every
    door keeps one."""
    return clean_text(reason, "reason", max_length=REASON_LIMIT)


def change_booking_status(
    session: Session,
    reference: str | Booking,
    command: str,
    *,
    now: dt.datetime,
    reason: str | None = None,
    paid: bool = False,
) -> StatusChange:
    """Apply `confirm`, `cancel`, `complete` or `no-show` (with `--paid` for confirm; complete and no-show
    only once the booking has started), or a payment's `mark-paid` or `refund` (unpaid → paid → refunded;
    not_required stays). `reference`: the booking's, or the booking itself when the caller has already read
    it locked (FOR UPDATE), so it is not read twice."""
    booking = reference if isinstance(reference, Booking) else get_booking(session, reference, for_update=True)
    if command != "cancel" and booking.calendly_state in PENDING_STATES:
        # reconcile deletes a held booking Calendly turns down: a confirmation or payment recorded here would go too
        raise waiting_for_calendly(booking)
    wanted = dict([status_move(booking, command, now=now)])
    if paid:
        wanted.update([status_move(booking, "mark-paid", now=now, shown="confirm --paid")])
    cleaned_reason = clean_reason(reason)
    changes = apply_changes(booking, wanted)
    if cancelled := wanted.get("status") == "cancelled":
        booking.cancelled_at, booking.cancellation_reason = now, cleaned_reason
    audit = {**changes, "reason": cleaned_reason} if cancelled and cleaned_reason else changes
    audit_change(session, booking, audit, now=now)
    return StatusChange(booking_view(session, booking.id), changes)


def audit_change(session: Session, booking: Booking, changes: dict[str, Any], *, now: dt.datetime) -> None:
    """Stamp a change made to a booking and audit it, flushed: its view is read next, in plain SQL."""
    stamp_and_audit(session, booking, "booking", booking.reference, changes, now=now)

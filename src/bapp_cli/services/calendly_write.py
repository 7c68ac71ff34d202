"""Bookings that are real in Calendly (README "Booking in Calendly"; docs/reliability.md R8): open slots,
write-through booking, reconcile, cancel and no-show pushed to Calendly, single-use scheduling links.

The database and Calendly cannot share a transaction, and ``POST /invitees`` has no idempotency key, so a
booking made through Calendly goes in steps, each its own unit of work handed in by the caller:

1. every local booking rule (as for `bookings create`) is checked, rolled back, before Calendly is asked
   anything; then those rules and "the start is one of Calendly's open slots" are checked, and the booking
   is committed as ``pending`` with ``calendly_state = 'requested'`` and ``calendly_attempts = 1`` — the
   intent, recorded before anything is sent; it holds the slot against other bapp processes;
2. ``POST /invitees`` is sent (outside any transaction);
3. the answer settles it: 201 → the invitee and event URIs, links, end time and join URL are recorded,
   ``calendly_state = 'booked'`` and the status follows the price (free: confirmed, else pending and
   unpaid); slot taken, a definite refusal, or an invitee another booking has (Calendly's one seat of the
   client in a group event) → the pending booking is deleted (its audit rows stay); a
   lost answer (timeout, reset, 5xx) → Calendly is *asked* (scheduled events of the invitee's e-mail at
   that start, then their invitees):
   found → as 201; not found → resent once (the attempt counted first) where a start takes one invitee,
   else left for reconcile; still unknown → ``unknown``.

A process killed anywhere in between leaves a ``requested`` booking that :func:`reconcile_bookings` (or
the pull / a webhook, which match an incoming invitee to it by e-mail, event type and start) resolves.
Callers hold the ``calendly-writes`` lock (``CALENDLY_WRITE_LOCK``) around a booking and around a
reconcile, so a reconcile never mistakes a booking still in flight for a lost one.

Services never commit: ``transaction`` is the caller's unit-of-work factory, entered once per step.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import KW_ONLY, dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select, union_all, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bapp_cli import errors
from bapp_cli.config import email_key, with_ascii_domain
from bapp_cli.db.audit import apply_changes, moved_from, record_audit
from bapp_cli.db.domains import URI_LENGTH
from bapp_cli.db.locks import CALENDLY_BOOKINGS, client_lock_key, lock_keys
from bapp_cli.db.models import Booking, CalendlyInvitation, ClientProfile, Enrolment, Pathway, SessionType, User
from bapp_cli.db.models import UserSkillProgress as Progress
from bapp_cli.errors import BappError, Conflict, DatabaseNotReady, Interrupted, InvalidInput, NotFound, RemoteError
from bapp_cli.errors import Busy as DatabaseBusy
from bapp_cli.services.booking import (
    PENDING_STATES,
    BookingCreated,
    BookingRequest,
    StatusChange,
    audit_change,
    change_booking_status,
    clean_reason,
    create_booking,
    get_booking,
    nearest_hint,
    resolve_builder,
    restorable,
    status_move,
    waiting_for_calendly,
)
from bapp_cli.services.instants import SUPPORTED_YEARS, instant_text, out_of_range
from bapp_cli.services.people import get_client
from bapp_cli.services.plain_reads import BookingView, booking_view
from bapp_cli.services.rule_book import LONGEST_BOOKING, price_status, restored_status
from bapp_cli.services.session_types import check_bookable, get_session_type

if TYPE_CHECKING:
    from bapp_cli.calendly.client import CalendlyClient
    from bapp_cli.calendly.models import EventType, Invitee, ScheduledEvent

CALENDLY_WRITE_LOCK = "calendly-writes"
# what of an enrolment, or an account, a held booking made is compared when the hold is turned down: changed
# (a pause, a coach; a name or company an import gave), it is someone's and stays. Recorded on the hold
# (`calendly_hold_made`, see `_as_recorded`), so a later reconcile that removes it compares them too.
ENROLMENT_MADE = (Enrolment.id, Enrolment.status, Enrolment.start_date, Enrolment.completed_at, Enrolment.builder_id)
ACCOUNT_MADE = (User.id, User.name, User.updated_at, ClientProfile.company, ClientProfile.industry)
SLOT_COLUMNS = ("session", "start_time", "end_time", "invitees_remaining", "scheduling_url")
RECONCILE_COLUMNS = ("booking", "client", "start_time", "action", "calendly_state", "status", "note")
LINK_COLUMNS = ("client", "session", "booking_url", "status", "created_at")
# Calendly refuses a start in the past; a minute's margin covers clock skew and latency (the Ruby client
# uses the same buffer).
SLOT_LEAD = dt.timedelta(minutes=1)
WINDOW = dt.timedelta(days=31)
# How far around a requested start to look for open slots (for the check and the "nearest" hint).
NEAR = dt.timedelta(days=3)
# The reason kept for a waiting booking whose invitee a lookup finds cancelled in Calendly.
CANCELLED = "cancelled in Calendly"
# What a reconcile row says when Calendly holds an invitee of a booking cancelled here: a person must act
# there, so the command warns of it even in cron (`calendly reconcile`).
CANCEL_THERE = "so cancel the invitee in Calendly too"
# What a resend that failed leaves (calendly_state, status), by the error's code; any other refusal removed it.
# (Calendly's answer that `_finish` gave up, too long a URI or a time out of range, is failed and cancelled here;
# one with the invitee of another booking, removed.)
GIVEN_UP = ("failed", "cancelled")
# A row of a booking whose lookup Calendly answered unreadably: left pending; the reconcile exits 9 once done
UNREADABLE = "unreadable"
RESEND_FAILED = {"outcome_unknown": ("unknown", "pending"), "uri_too_long": GIVEN_UP, "instant_out_of_range": GIVEN_UP}

# The caller's unit of work: ``transaction()`` commits on success, ``transaction(dry_run=True)`` rolls back,
# ``transaction(write=False)`` reads (never marked as committed: errors.committed).
Transaction = Callable[..., AbstractContextManager[Session]]


# -- open slots --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CalendlySession:
    """What the write side needs of a session type, read once so no ORM object outlives its transaction."""

    id: int
    label: str
    title: str
    event_type_uri: str
    duration_minutes: int
    kind: str
    owner_uri: str | None

    @classmethod
    def of(cls, session_type: SessionType) -> CalendlySession:
        same = {name: getattr(session_type, name) for name in ("id", "title", "duration_minutes", "kind", "owner_uri")}
        return cls(
            label=session_type.slug or str(session_type.id), event_type_uri=session_type.calendly_uri or "", **same
        )


def calendly_session(session: Session, identifier: str, *, bookable: bool = False) -> CalendlySession:
    """The session type, which must be backed by a Calendly event type (exit 6 with a hint otherwise), and with
    `bookable` (`sessions slots`) pass rule 1 as its owner's booking would: `sessions available` offers no
    other, and `bookings create` would refuse each of its times (exit 6 saying why)."""
    session_type = get_session_type(session, identifier)
    if not session_type.calendly_uri:
        raise InvalidInput(
            f"session: {session_type.title!r} has no Calendly event type (it was added locally)",
            hint="only session types synced from Calendly (`bapp calendly sync`) have Calendly slots; "
            "book it with --local-only",
            code="not_in_calendly",
        )
    if bookable:
        check_bookable(session_type, *resolve_builder(session, None, session_type.builder_id))
    return CalendlySession.of(session_type)


def open_slots(
    client: CalendlyClient, target: CalendlySession, *, start: dt.datetime, end: dt.datetime, now: dt.datetime
) -> list[dict[str, Any]]:
    """Open starts in [start, end) from ``GET /event_type_available_times``, in windows of at most 31 days
    requested back to back; the first window begins a minute after now (Calendly refuses a past start).
    Each slot is its ``SLOT_COLUMNS``, in that order."""
    low = max(start.astimezone(dt.UTC), now + SLOT_LEAD)
    slots: dict[dt.datetime, dict[str, Any]] = {}  # by start: a start listed twice is one slot
    while low < end:
        high = min(end, low + WINDOW)
        for item in client.list_available_times(target.event_type_uri, low, high):
            if item.status == "available" and low <= item.start_time < high:
                end_time = item.start_time + dt.timedelta(minutes=target.duration_minutes)
                slot = (target.label, item.start_time, end_time, item.invitees_remaining, item.scheduling_url)
                slots.setdefault(item.start_time, dict(zip(SLOT_COLUMNS, slot, strict=True)))
        low = high
    return [slots[start] for start in sorted(slots)]


def _starts_near(
    client: CalendlyClient, target: CalendlySession, start: dt.datetime, now: dt.datetime
) -> list[dt.datetime]:
    """Calendly's open starts within ``NEAR`` of ``start``; none, and nothing asked, once that window has
    passed (``open_slots`` begins at now)."""
    return [slot["start_time"] for slot in open_slots(client, target, start=start - NEAR, end=start + NEAR, now=now)]


# -- booking through Calendly ------------------------------------------------------------------------


# A booking settled with Calendly: the booking as it now stands, and what to tell the user of Calendly's part.
CalendlySettled = tuple["BookingView", list[str]]


def invitee_body(booking: Booking, client: User, event_type: EventType, *, name: str | None) -> dict[str, Any]:
    """The ``POST /invitees`` body of a held booking: the validated answers in Calendly's question order,
    each with its position and the question text exactly as synced; a location only when the event type
    has exactly one and is not round robin (Calendly refuses one there)."""
    body: dict[str, Any] = {
        "event_type": event_type.uri,
        "start_time": booking.start_time.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
        "invitee": {
            "name": name or client.name or client.email.split("@", 1)[0],
            "email": client.email,
            "timezone": booking.client_timezone,
        },
        "questions_and_answers": [
            {
                "question": item["question"],
                # Calendly joins the choices of a multi-select answer with newlines
                "answer": "\n".join(item["answer"]) if isinstance(item["answer"], list) else str(item["answer"]),
                "position": int(item["position"]),
            }
            for item in sorted(booking.custom_question_responses or [], key=lambda item: int(item.get("position", 0)))
        ],
    }
    place = event_type.locations[0] if len(event_type.locations) == 1 else None
    # ask_invitee and outbound_call need a value only the invitee has
    if place and event_type.pooling_type != "round_robin" and place.kind not in ("ask_invitee", "outbound_call"):
        body["location"] = {"kind": place.kind}
        if place.kind in ("physical", "custom") and place.location:  # the kinds that carry an address or text
            body["location"]["location"] = place.location
    return body


@dataclass
class _Sent:
    """One held booking on its way to Calendly, read in one transaction and used across the next ones."""

    # the booking's own fields, under its names
    id: int
    reference: str
    start_time: dt.datetime
    status: str
    calendly_state: str | None
    calendly_attempts: int
    _: KW_ONLY
    email: str
    requested_at: dt.datetime
    target: CalendlySession
    body: dict[str, Any] = field(default_factory=dict)
    scope: tuple[str | None, str | None] = (None, None)
    # the client's "account" holding it created, and the "enrolment" it opened, each as it left them (none: a
    # hold from before migration 0016, whose removal keeps both, or one that made neither)
    made: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, booking: Booking, email: str, target: CalendlySession, **more: Any) -> _Sent:
        same = {own.name: getattr(booking, own.name) for own in fields(cls) if not own.kw_only}
        requested_at = booking.calendly_requested_at or booking.created_at
        made = booking.calendly_hold_made if isinstance(booking.calendly_hold_made, dict) else {}
        return cls(**same, email=email, requested_at=requested_at, target=target, made=made, **more)


@contextlib.contextmanager
def _stays_pending(reference: str) -> Iterator[None]:
    """Ctrl-C (or a stop signal), or the database failing (a lost connection) or busy, once a booking is held and may
    be in Calendly, whether it lands in the request, the lookup of a lost answer, a resend or the recording of
    the answer: the generic "nothing was changed", or the driver's words alone, would leave the user guessing.
    It stays pending for reconcile, which asks before it resends."""
    stays = f"while Calendly was asked about booking {reference}; it stays pending (Calendly may have it)"
    hint = "run `bapp calendly reconcile` to look it up before booking anything else for this slot"
    try:
        yield
    except KeyboardInterrupt:
        raise Interrupted(stays, hint=hint) from None
    # the unit of work's translation of the driver's error; busy too (another writer held on past the wait, as
    # when recording Calendly's answer or removing a hold it turned down): "run this again" would be refused
    except (DatabaseNotReady, DatabaseBusy) as failure:
        failure.message, failure.hint = f"{failure.message}, {stays}", hint
        raise


@dataclass
class CalendlyWriter:
    """Sends held bookings to Calendly and settles them (the steps of the module docstring); ``user`` /
    ``organization`` are the configured scope that lookups search (see ``_scope``)."""

    transaction: Transaction
    client: CalendlyClient
    _: KW_ONLY
    clock: Callable[[], dt.datetime]
    user: str | None = None
    organization: str | None = None

    def _scope(self, owner_uri: str | None) -> tuple[str | None, str | None]:
        """Where to look a booking up: the configured scope, else the event type's owning user, else (a team's
        type) the token's organization, else the token's own user — as ``GET /scheduled_events`` requires."""
        if self.user or self.organization:
            return self.user, self.organization or None
        if owner_uri and "/users/" in owner_uri:
            return owner_uri, None
        me = self.client.get_current_user()
        # a team's type or another profile's: only an organization-wide listing can see its events
        return (None, me.current_organization) if owner_uri else (me.uri, None)

    # -- create -----------------------------------------------------------------------------------

    def book(self, request: BookingRequest, *, dry_run: bool = False) -> tuple[BookingCreated, list[str]]:
        """A write-through ``bookings create``: the booking, and what to tell the user of Calendly's part."""
        with self.transaction(dry_run=True) as session:
            target = calendly_session(session, request.session)
            # bapp's own rules, rolled back, before Calendly is asked: a refusal costs no request, and a repeat of
            # a used idempotency key (rule 7) needs none, so it returns its booking with Calendly unreachable too
            if (created := create_booking(session, request, now=self.clock())).existing:
                return _not_sent(created)
            # The same booking again (--allow-overlap) while the first waits for Calendly's answer would be sent a
            # second time, and a group event would hold the client twice: reconcile settles the first.
            client, start = created.booking.client, request.start
            if waiting := match_held_booking(session, email=client, session_type_id=target.id, start=start):
                raise waiting_for_calendly(waiting)
        event_type = self.client.get_event_type(target.event_type_uri)
        # Everything that needs Calendly before the send is asked before the hold is committed, so a
        # failure here leaves nothing pending.
        scope = self._scope(target.owner_uri)
        now = self.clock()
        held = replace(request, calendly_open_starts=tuple(_starts_near(self.client, target, request.start, now)))
        with self.transaction(dry_run=dry_run) as session:
            created = create_booking(session, held, now=now)
            if created.existing or dry_run:  # existing: made by another command since the rehearsal above
                return _not_sent(created)
            booking = get_booking(session, created.booking.reference)
            client_user = session.get_one(User, booking.client_id)
            body = invitee_body(booking, client_user, event_type, name=request.name)
            made = {"account": created.account_created, "enrolment": created.enrolled}
            # on the hold itself: a reconcile (another process, later) that removes it needs them as much as _send
            booking.calendly_hold_made = {what: _as_recorded(session, booking, what) for what in made if made[what]}
            sent = _Sent.of(booking, client_user.email, target, body=body, scope=scope)
        # Resent at once only where a start takes one invitee: a first request still under way in Calendly (a
        # timeout) that lands after the resend is then refused as taken, where in a group event, or a pooled one
        # (round robin: an event for each free host), it would be a second booking. Those wait for reconcile.
        with _stays_pending(sent.reference):
            view, notes = self._send(sent, resend_allowed=event_type.kind == "solo" and event_type.pooling_type is None)
        return replace(created, booking=view), notes

    def _send(self, sent: _Sent, *, resend_allowed: bool) -> CalendlySettled:
        from bapp_cli.calendly.client import OutcomeUnknown, SlotTaken

        try:
            invitee = self.client.create_invitee(sent.body)
        except SlotTaken as taken:
            # After a resend, "taken" may be our own first request landing late: ask before deleting.
            if (found := None if resend_allowed else self._lookup_or_unknown(sent, taken.message)) is not None:
                return self._finish(sent, *found, notes=["found in Calendly after the resend was refused"])
            hint = "see `bapp sessions slots`"
            with contextlib.suppress(BappError):  # the hint is a courtesy; the refusal is what matters
                starts = _starts_near(self.client, sent.target, sent.start_time, self.clock())
                hint = nearest_hint(starts, sent.start_time, hint)
            self._update(sent, removed="slot taken in Calendly")  # after the hint's request: a stop there keeps it
            raise Conflict(
                f"{instant_text(sent.start_time)} is no longer open in Calendly for {sent.target.title!r}: "
                "someone else took it",
                hint=hint,
                code="slot_taken",
            ) from taken
        except OutcomeUnknown as lost:
            if (found := self._lookup_or_unknown(sent, lost.message)) is not None:
                return self._finish(sent, *found, notes=["the answer was lost; found the booking in Calendly"])
            if resend_allowed and self._update(sent, resend=True, calendly_attempts=sent.calendly_attempts + 1):
                view, notes = self._send(sent, resend_allowed=False)
                return view, ["the answer was lost and Calendly had no booking; resent once", *notes]
            hint = "run `bapp calendly reconcile` to look it up again before booking anything else for this slot"
            raise self._left_unknown(sent, f"({lost.message})", hint=hint) from None
        except BappError:
            # A definite refusal (403 plan or scope, 429 over the cap, 4xx): nothing was created in Calendly.
            self._update(sent, removed="refused by Calendly")
            raise
        return self._finish(sent, invitee, None, notes=[])

    def _lookup_or_unknown(self, sent: _Sent, why: str) -> tuple[Invitee, ScheduledEvent | None] | None:
        """The lookup, where a failure to ask is *not* "not found": resending then could double-book, so
        the booking is left ``unknown`` for reconcile and the command fails (exit 9)."""
        try:
            return self._lookup(sent)
        except BappError as failed:
            why = f"({why}) and could not be asked about it ({failed.message})"
            hint = "run `bapp calendly reconcile` once Calendly answers again"
            raise self._left_unknown(sent, why, hint=hint) from None

    def _left_unknown(self, sent: _Sent, why: str, *, hint: str) -> RemoteError:
        """Neither Calendly's answer nor a lookup said what became of the booking: it is marked ``unknown``
        for reconcile, and the command fails (exit 9). ``why`` is the reason in parentheses."""
        self._update(sent, calendly_state="unknown")
        message = f"Calendly did not confirm booking {sent.reference} {why}; it stays pending"
        return RemoteError(message, hint=hint, code="outcome_unknown")

    def _lookup(self, sent: _Sent) -> tuple[Invitee, ScheduledEvent | None] | None:
        """The held booking's invitee, if Calendly has one: the invitee of the client's e-mail at an event of
        this type at this start (``GET /scheduled_events?invitee_email&min_start_time&max_start_time``, then
        that event's invitees), not already attached to another booking (a group session's earlier one).
        An active one first, else one cancelled in Calendly since it was made (by the client's cancel link, a
        reschedule, the host) — not one cancelled before this booking was first sent: it is this booking,
        which must not be sent again as if Calendly had never had it."""
        at = select(Booking.calendly_invitee_uri).filter_by(session_type_id=sent.target.id, start_time=sent.start_time)
        others = at.where(Booking.id != sent.id)  # the bookings at its start but itself
        with self.transaction(write=False) as session:
            attached = set(session.scalars(others))
        # asked by the address as sent (its domain in Unicode) and, a domain not ASCII, by its xn-- form too: a Calendly
        # that keeps and filters by that form has the booking all the same; its answer compared as bapp keys addresses
        spellings = dict.fromkeys((sent.email, with_ascii_domain(sent.email)))
        found = [
            (invitee, event)
            for spelling in spellings
            for event in self.client.list_scheduled_events(
                *sent.scope,
                min_start_time=sent.start_time,
                max_start_time=sent.start_time + dt.timedelta(minutes=1),
                invitee_email=spelling,
            )
            # at this start only: one Calendly placed elsewhere (never documented) is resent, and a pull brings it in
            # as a booking of its own; a wider window would take the client's own booking near it for this one, unmade
            if event.event_type == sent.target.event_type_uri and event.start_time == sent.start_time
            for invitee in self.client.list_event_invitees(event.uri, email=spelling)
            if email_key(invitee.email) == email_key(sent.email)
            and invitee.uri not in attached
            # clocks apart by up to SLOT_LEAD
            and (invitee.status == "active" or invitee.created_at >= sent.requested_at - SLOT_LEAD)
        ]
        return min(found, key=lambda pair: pair[0].status != "active", default=None)

    def _update(self, sent: _Sent, *, removed: str | None = None, resend: bool = False, **wanted: Any) -> bool:
        """Change the booking while it is still held (another process may have settled it meanwhile), or
        delete it when it never became a Calendly booking (``removed``: why), with an audit row of either;
        whether it was still held. Not to count a ``resend`` of one cancelled here meanwhile (`bookings cancel
        --local-only` while its answer was awaited or looked up): Calendly must not book a session the client
        no longer wants. Locked, so such a cancel waits for the count, or the count sees the cancel."""
        with self.transaction() as session:
            if removed:  # the client's key before the booking, as their bookings and Calendly's deliveries take them
                lock_keys(session, client_lock_key(sent.email), people=True)
            booking = session.get(Booking, sent.id, with_for_update=True)
            cancelled = resend and booking is not None and booking.status == "cancelled"
            if booking is None or booking.calendly_state not in PENDING_STATES or cancelled:
                return False
            if removed:
                session.delete(booking)
                wanted = {"removed": removed, "calendly_state": [booking.calendly_state, None]}
                record_audit(session, "booking", sent.reference, wanted)
                _unmake(session, booking, sent, removed)
            else:
                audit_change(session, booking, apply_changes(booking, wanted), now=self.clock())
        return True

    def _finish(
        self, sent: _Sent, invitee: Invitee, event: ScheduledEvent | None, *, notes: list[str], dry_run: bool = False
    ) -> CalendlySettled:
        """Record Calendly's invitee on the held booking (``dry_run``: what that would make of it)."""
        too_long = max(len(invitee.uri), len(invitee.event)) > URI_LENGTH  # keys, which cannot be cut as its links are
        if event is None and not too_long:
            try:
                event = self.client.get_scheduled_event(invitee.event)
            except BappError as exc:  # the booking exists; the details can come with the next pull
                notes.append(f"event details not fetched ({exc.message})")
        # its updated_at and its event's end are stored too: past bapp's years, the backup `export all` then wrote
        # did not restore (a pulled or delivered invitee with such a time is parked)
        # its start too, which bapp takes as Calendly's (attach_invitee)
        named = {"event start_time": event.start_time, "event end_time": event.end_time} if event else {}
        times = {"updated_at": invitee.updated_at, **named}
        late = [f"{name} {out_of_range(at)}" for name, at in times.items() if at.year not in SUPPORTED_YEARS]
        if problem := "URIs too long for bapp" if too_long else next(iter(late), None):
            self._give_up(sent, f"Calendly's invitee: {problem}", note="", dry_run=dry_run)
            # a dry run (reconcile's) says what the run would do, as its records do
            why = f"Calendly booked {sent.reference} as invitee {invitee.uri}: {problem}; "
            why += f"{'it would be cancelled here' if dry_run else 'cancelled here'}, {CANCEL_THERE}"
            code = "uri_too_long" if too_long else "instant_out_of_range"  # as an instant bapp is given is refused
            raise RemoteError(why, hint="book again once it is cancelled in Calendly", code=code)
        with self.transaction(dry_run=dry_run) as session:
            # a pull's lock: one under way has read its invitees' bookings and would insert this one again
            lock_keys(session, CALENDLY_BOOKINGS, people=True)
            if (booking := session.get(Booking, sent.id)) is None:
                raise NotFound(
                    f"booking {sent.reference} vanished while Calendly booked it; run `bapp calendly pull-bookings`"
                )
            twin = select(Booking.reference).filter_by(calendly_invitee_uri=invitee.uri).where(Booking.id != sent.id)
            if (other := session.scalar(twin)) is None:
                attach_invitee(session, booking, invitee, event, now=self.clock())
                if event is not None and event.start_time != sent.start_time:  # taken as Calendly's (attach_invitee)
                    booked, asked = instant_text(event.start_time), instant_text(sent.start_time)
                    notes.append(f"Calendly booked {booked}, not {asked} as asked")
                if invitee.status == "canceled" and booking.status != "cancelled":
                    change_booking_status(session, booking, "cancel", now=self.clock(), reason=CANCELLED)
                elif invitee.status == "active" and booking.status == "cancelled":  # `cancel --local-only` meanwhile
                    notes.append(f"cancelled here while Calendly booked it, {CANCEL_THERE}")
                return booking_view(session, booking.id), notes
        # Calendly answered with an invitee it already held, another booking's (the client's seat in a group event, one
        # an address): nothing new was booked there, so the hold goes, as for a slot taken
        if not dry_run:
            self._update(sent, removed=f"Calendly answered with the invitee of booking {other}")
        raise Conflict(
            f"Calendly answered booking {sent.reference} with invitee {invitee.uri}, which is booking {other}: "
            "the client is already booked there",
            hint=f"see `bapp bookings show {other}`",
            code="already_booked",
        )

    # -- reconcile ----------------------------------------------------------------------------------

    def reconcile(self, *, give_up_after: dt.timedelta, dry_run: bool = False) -> Iterator[dict[str, Any]]:
        """Resolve every pending Calendly-bound booking: attach what Calendly has, resend once what it
        does not (unless the start has passed or the booking was already resent), give up after
        ``give_up_after`` (the booking is cancelled locally and marked ``failed``). Each booking's row is
        yielded once it is settled, so a run stopped partway still has the rows of what it settled."""
        with self.transaction(write=False) as session:
            theirs = select(Booking, User.email, SessionType).join(User, User.id == Booking.client_id)
            typed = theirs.join(SessionType, SessionType.id == Booking.session_type_id)
            held = typed.where(Booking.calendly_state.in_(PENDING_STATES))
            in_order = held.order_by(Booking.start_time, Booking.reference)
            pending = [_Sent.of(row, email, CalendlySession.of(kind)) for row, email, kind in session.execute(in_order)]
        event_types = functools.cache(self.client.get_event_type)  # fetched once per type, only to resend
        for sent in pending:
            with _stays_pending(sent.reference):  # Ctrl-C ends the reconcile; the bookings before it stay settled
                sent.scope = self._scope(sent.target.owner_uri)
                row = self._reconcile_one(sent, event_types, give_up_after=give_up_after, dry_run=dry_run)
            if row["action"] != "skipped":
                yield {"booking": sent.reference, "client": sent.email, "start_time": sent.start_time, **row}

    def _reconcile_one(
        self, sent: _Sent, event_types: Callable[[str], EventType], *, give_up_after: dt.timedelta, dry_run: bool
    ) -> dict[str, Any]:
        """What became of one pending booking: its action, note, calendly_state and status (pending unless
        said); ``skipped`` when another process settled it meanwhile."""
        from bapp_cli.calendly.client import UnreadableAnswer

        now = self.clock()
        try:
            found = self._lookup(sent)
        except UnreadableAnswer as exc:
            # an answer about this booking alone (a value bapp cannot read): it stays pending, said, and the run goes
            # on; stopping there stopped every run there, the later bookings never settled (the command exits 9).
            # Never given up, whatever its age: Calendly answered about it, so it may well hold it (the lookup asks
            # for this client at this start), and giving it up would free here a slot the client has there. Held, it
            # is attached once its answer can be read (a bapp that reads the value, or Calendly's value mended).
            return _reconciled(UNREADABLE, exc.message, calendly_state=sent.calendly_state)
        if found is not None:
            try:
                status = self._finish(sent, *found, notes=[], dry_run=dry_run)[0].status
            except (RemoteError, Conflict) as exc:  # given up or removed by `_finish`: one failed row as for a resend's
                if exc.code == "written_meanwhile":  # the database's conflict, not Calendly's answer: it stays pending
                    raise
                return _reconciled("failed", exc.message, *RESEND_FAILED.get(exc.code, ("removed", "removed")))
            note = f"found invitee {found[0].uri}"
            if found[0].status == "canceled":
                note, status = f"{note}, {CANCELLED} since: not resent", "cancelled"
            elif status == "cancelled":
                note += f"; the booking was cancelled here meanwhile, {CANCEL_THERE}"
            return _reconciled("attached", note, calendly_state="booked", status=status)
        if sent.status == "cancelled":
            # Cancelled here while it waited (`bookings cancel --local-only`): Calendly does not have it, and
            # sending it now would book a session the client no longer wants.
            note = "not found in Calendly, and cancelled here meanwhile; not resent"
            return self._give_up(sent, None, note=note, dry_run=dry_run)
        too_old = now - sent.requested_at >= give_up_after
        if sent.calendly_attempts < 2 and sent.start_time > now + SLOT_LEAD and not too_old:
            try:
                event_type = event_types(sent.target.event_type_uri)
            except NotFound:
                # deleted in Calendly: it can never be booked there, so there is nothing to wait for
                note = "not found in Calendly, and its event type is gone from Calendly; given up"
                return self._give_up(sent, "its Calendly event type was deleted", note=note, dry_run=dry_run)
            if dry_run:
                return _reconciled("would resend", "not found in Calendly", calendly_state=sent.calendly_state)
            with self.transaction(write=False) as session:  # there: only _update deletes one, under the lock this holds
                held = session.get_one(Booking, sent.id)
                # no name given: the client's name as bapp knows it, as a first send without --name
                sent.body = invitee_body(held, session.get_one(User, held.client_id), event_type, name=None)
            if not self._update(sent, resend=True, calendly_attempts=sent.calendly_attempts + 1):
                return {"action": "skipped"}  # one cancelled meanwhile: the next reconcile reports it failed
            try:
                view, notes = self._send(sent, resend_allowed=False)
            except (DatabaseNotReady, DatabaseBusy):  # failing or busy (its answer recorded, or the hold removed)
                raise  # not Calendly's answer, which may have booked it: it stays pending, said by _stays_pending
            except BappError as exc:
                return _reconciled("resent", exc.message, *RESEND_FAILED.get(exc.code, ("removed", "removed")))
            note = "; ".join(["booked in Calendly", *notes])  # one at another start than asked says so
            return _reconciled("resent", note, calendly_state="booked", status=view.status)
        if too_old or sent.start_time <= now:
            reason = "Calendly never confirmed the booking"
            return self._give_up(sent, reason, note="not found in Calendly; given up", dry_run=dry_run)
        note = "not found in Calendly and already resent; it will be given up after the configured age"
        return _reconciled("waiting", note, calendly_state=sent.calendly_state)

    def _give_up(self, sent: _Sent, reason: str | None, *, note: str, dry_run: bool) -> dict[str, Any]:
        """A pending booking Calendly does not have and will not get: cancelled here for ``reason`` (None: it
        already was, and keeps its own reason and time), marked failed."""
        if not dry_run:
            cancel: dict[str, Any] = dict(status="cancelled", cancellation_reason=reason, cancelled_at=self.clock())
            self._update(sent, calendly_state="failed", **(cancel if reason else {}))
        return _reconciled("failed", note, *GIVEN_UP)


def _unmake(session: Session, booking: Booking, sent: _Sent, why: str) -> None:
    """What holding ``booking`` made goes with it when Calendly turns it down ("nothing kept"): the enrolment it
    opened, unless another booking of the client or their progress now is in that pathway (progress enrols one not
    enrolled: it relies on this one), or it was changed since (a pause, a coach: someone's, which a delete of it as
    it was made leaves, also while their change is under way), and the account it created, unless it was changed
    since (an import's name or company: someone's, read as it now is under a lock) or any other row now refers to it
    (a foreign key, none cascading; a badge's among them). The caller holds the client's key, as every booking of
    theirs takes it: one made meanwhile is seen here, or finds no account and makes one; and this takes their
    progress's key.

    The badges an enrolment made completed awarded (the client had done every skill) stay, unlike the enrolment: a
    badge rests on skills alone, which the refusal leaves as they were (SPEC 2.6: permanent once awarded; `skills
    complete` awards it to a client in no pathway). A credential exported meanwhile names the badge's id as its
    status-list index, which a deleted row would leave unmarked in the published list and, on SQLite, hand to the
    next badge; a revoked one would block the client's genuine award (`badges`' unique key per client and key)."""
    lock_keys(session, f"progress:{booking.client_id}")  # after the booking's row: a progress door takes neither
    opened, account, email = sent.made.get("enrolment") or {}, sent.made.get("account"), sent.email
    owned = {"client_id": booking.client_id, "pathway_id": booking.pathway_id}
    theirs = union_all(*(select(model.id).filter_by(**owned) for model in (Booking, Progress)))
    unused = opened and session.scalar(theirs.limit(1)) is None
    if unused and _as_recorded(session, booking, "enrolment") == opened:  # locked: a change under way is waited for
        session.execute(delete(Enrolment).filter_by(**owned))
        slug = session.get_one(Pathway, booking.pathway_id).slug
        record_audit(session, "enrolment", f"{email}:{slug}", {"removed": why})
    if account and _as_recorded(session, booking, "account") == account:
        with contextlib.suppress(IntegrityError), session.begin_nested():
            session.execute(delete(ClientProfile).filter_by(user_id=booking.client_id))
            session.execute(delete(User).filter_by(id=booking.client_id))
            record_audit(session, "client", email, {"removed": why})


def restore_account_stamps(session: Session, booking_ids: list[int]) -> None:
    """`import all` of a backup writes each account anew, stamped (updated_at) with the restore's time, where the
    record of a restored hold keeps the stamp of the account it made: an account otherwise as recorded takes that
    stamp back, so that a reconcile removing the hold removes the account too, as in the backed-up database. One
    read of every hold with its account, no row lock: the restore holds the tables."""
    held = select(Booking.calendly_hold_made, *ACCOUNT_MADE).join(User, User.id == Booking.client_id)
    stamps = []
    for row in session.execute(held.join(ClientProfile).where(Booking.id.in_(booking_ids))):
        restored = row._asdict()
        recorded = (restored.pop("calendly_hold_made") or {}).get("account")
        if isinstance(recorded, dict) and {**recorded, "updated_at": 0} == {**_recorded(restored), "updated_at": 0}:
            with contextlib.suppress(TypeError, ValueError, OverflowError):  # no stamp bapp wrote: the restore's stays
                stamp = dt.datetime.fromisoformat(str(recorded.get("updated_at"))).astimezone(dt.UTC)
                stamps.append({"id": restored["id"], "updated_at": stamp})
    if stamps:
        session.execute(update(User), stamps)


def _as_recorded(session: Session, booking: Booking, made: str) -> dict[str, Any] | None:
    """The client's "account" (ACCOUNT_MADE) or their "enrolment" in the booking's pathway (ENROLMENT_MADE) as a
    hold records what it made (JSON: dates as ISO text, no None, which a TOML backup cannot carry), read under a row
    lock; None when there is none."""
    account = select(*ACCOUNT_MADE).join(ClientProfile).where(User.id == booking.client_id)
    enrolment = select(*ENROLMENT_MADE).filter_by(client_id=booking.client_id, pathway_id=booking.pathway_id)
    row = session.execute((account if made == "account" else enrolment).with_for_update()).one_or_none()
    return None if row is None else _recorded(row._asdict())


def _recorded(values: dict[str, Any]) -> dict[str, Any]:
    """`values` as a hold records them: JSON, dates as ISO text, no None (which a TOML backup cannot carry)."""
    known = [(name, value) for name, value in values.items() if value is not None]
    return {name: value.isoformat() if isinstance(value, dt.date) else value for name, value in known}


def _not_sent(created: BookingCreated) -> tuple[BookingCreated, list[str]]:
    """A booking ``book`` does not send: a dry run's, or a repeat's (rule 7: made before, under the same
    idempotency key), with a note when that one still waits for Calendly's answer."""
    waiting = created.existing and created.booking.calendly_state in PENDING_STATES
    if not created.existing:  # a dry run's: shown as Calendly's answer leaves it (rule 8), as the run would print it
        created.booking["status"] = price_status(created.booking.amount)[0]
    return created, ["it is still waiting for Calendly: run `bapp calendly reconcile`"] if waiting else []


def _reconciled(action: str, note: str, calendly_state: str | None, status: str = "pending") -> dict[str, Any]:
    """The outcome columns of one row of the reconcile report."""
    return {"calendly_state": calendly_state, "status": status, "action": action, "note": note}


def attach_invitee(
    session: Session, booking: Booking, invitee: Invitee, event: ScheduledEvent | None, *, now: dt.datetime
) -> None:
    """Record what Calendly holds for a held booking; then its status follows the price (rule 8). A booking
    not held (already settled, or changed meanwhile) keeps its own."""
    held = booking.status == "pending" and booking.calendly_state in PENDING_STATES
    fresh: dict[str, Any] = {
        "calendly_invitee_uri": invitee.uri,
        "calendly_event_uri": invitee.event,
        # cut to their columns, as the join URL is: PostgreSQL refuses a longer one (SQLite keeps it whole)
        "calendly_cancel_url": invitee.cancel_url and invitee.cancel_url[:URI_LENGTH],
        "calendly_reschedule_url": invitee.reschedule_url and invitee.reschedule_url[:URI_LENGTH],
        "calendly_state": "booked",
        "remote_updated_at": invitee.updated_at,
        "status": price_status(booking.amount, paid=booking.payment_status != "unpaid")[0] if held else booking.status,
    }
    if event is not None:
        # Calendly's start, as the pull takes it: one answered at another start than asked (said by `_finish`) kept the
        # start asked, Calendly's end after it. An end at or before the start, or more than a day after it (which no
        # booking may be: the overlap checks reach back a day and the backup would not restore), is not taken: the
        # booking keeps the length it was asked for
        start, asked = event.start_time, booking.end_time - booking.start_time
        fresh["start_time"] = start
        fresh["end_time"] = event.end_time if start < event.end_time <= start + LONGEST_BOOKING else start + asked
        if event.location is not None and event.location.join_url:
            fresh["calendly_join_url"] = event.location.join_url[:URI_LENGTH]
    if changes := apply_changes(booking, fresh):
        audit_change(session, booking, {"source": "calendly", **changes}, now=now)


# -- matching invitees that arrive by pull or webhook ------------------------------------------------


def match_held_booking(session: Session, *, email: str, session_type_id: int, start: dt.datetime) -> Booking | None:
    """A booking bapp sent to Calendly and has not settled yet, for this client, event type and start: an
    incoming invitee that matches it *is* that booking, never a second one (docs/reliability.md R8)."""
    held = select(Booking).filter_by(session_type_id=session_type_id, start_time=start, calendly_invitee_uri=None)
    theirs = held.where(Booking.calendly_state.in_(PENDING_STATES)).join(User, User.id == Booking.client_id)
    return session.scalars(theirs.where(User.email == email).order_by(Booking.id).limit(1)).one_or_none()


def use_invitation(session: Session, booking: Booking, *, now: dt.datetime) -> str | None:
    """Mark the client's oldest open scheduling link for this session type as used by ``booking``."""
    links = select(CalendlyInvitation).filter_by(client_id=booking.client_id, session_type_id=booking.session_type_id)
    oldest = links.filter_by(status="open").order_by(CalendlyInvitation.created_at, CalendlyInvitation.id).limit(1)
    invitation = session.scalars(oldest).one_or_none()
    if invitation is None:
        return None
    invitation.status, invitation.booking_id, invitation.used_at = "used", booking.id, now
    return invitation.booking_url


# -- cancel and no-show, Calendly first --------------------------------------------------------------


def change_status(
    transaction: Transaction,
    open_client: Callable[[bool], AbstractContextManager[CalendlyClient | None]],
    reference: str,
    command: str,
    *,
    clock: Callable[[], dt.datetime],
    local_only: bool = False,
    reason: str | None = None,
    dry_run: bool = False,
) -> tuple[StatusChange, list[str]]:
    """``bookings cancel``, ``no-show`` and ``no-show --undo`` (``command`` "undo"): a booking that lives
    in Calendly is changed there first, then here; with ``local_only``, or one Calendly does not hold, here
    only. Returns the change and what to tell the user about Calendly's side.

    The local rules are checked before Calendly is asked, so Calendly never makes a move bapp then refuses.
    ``POST /invitee_no_shows`` has no idempotency key: an invitee Calendly already marks (a rerun after a
    lost answer, or a mark made in Calendly) is not marked twice, and a lost answer is settled by asking;
    if Calendly cannot be asked, the lost answer's exit 9 stands and the rerun asks first. Calendly's own
    delivery of the change may be applied between the remote call and the local half: the booking is then
    already where the command takes it, which is the command succeeding, not a refused move. A ``dry_run``
    checks every rule bapp keeps (a group event and a booking still waiting for Calendly too) and that a token is
    configured, in the turn a real run waits for, asks and sends Calendly nothing, and rolls the local change back.
    """
    reason = clean_reason(reason)

    def checked() -> tuple[str | None, str | None]:
        """What Calendly is asked to change (none: here only) and the no-show mark bapp keeps, once every local
        rule passes (exit 8, 6 otherwise); read again in the turn, where another change may have come first."""
        with transaction(write=False) as session:
            booking = get_booking(session, reference)
            if not local_only and booking.calendly_state in PENDING_STATES:
                hint = "run `bapp calendly reconcile` first (or pass --local-only to change it here only)"
                raise waiting_for_calendly(booking, hint=hint)
            if local_only or not (booking.calendly_event_uri or booking.calendly_invitee_uri):
                return None, None
            if command != "undo":
                status_move(booking, command, now=clock())
            elif refused := back_from_no_show(session, booking, clock())[1]:
                raise refused  # checked here too, before Calendly takes the mark back
            # only cancelling goes by the event, which a group's invitees share
            if command == "cancel" and session.get_one(SessionType, booking.session_type_id).kind == "group":
                raise Conflict(
                    f"booking {booking.reference} is one invitee of a group event; cancelling the event in "
                    "Calendly would cancel every invitee",
                    hint="cancel it from the invitee's cancel link in Calendly (the pull then cancels it here), "
                    "or pass --local-only",
                    code="group_event",
                )
            mark = booking.calendly_no_show_uri
            invitee_uri = booking.calendly_invitee_uri or (mark if command == "undo" else None)
            return booking.calendly_event_uri if command == "cancel" else invitee_uri, mark

    notes: list[str] = []
    remote, mark = checked()
    asked = False  # set once the turn is had and the booking read again in it, as neither asks Calendly anything
    try:
        # The turn lasts until the change is recorded here: a cancel and a no-show of one booking (or two of
        # either) each passed the check above, and both reached Calendly. The one that waited reads the booking
        # again and is refused as if it had run second. A change here only takes it too (without a client): a
        # `cancel --local-only` recorded while a no-show was made in Calendly had the no-show refused here.
        with open_client(bool(remote)) as client:
            remote, mark = checked() if remote else (None, None)
            if remote and client and not dry_run:  # a dry run's client is opened only to prove a token is set
                asked = True
                try:
                    if command == "no-show":
                        mark = _calendly_no_show(client, remote) or _mark_no_show(client, remote)
                    elif command == "cancel" and not client.cancel_event(remote, reason):
                        notes.append("Calendly already had the event cancelled")
                    # A mark made in Calendly (a delivery or pull before its URI was kept) is looked up.
                    elif command == "undo" and (mark := mark or _calendly_no_show(client, remote)):
                        client.delete_invitee_no_show(mark)
                except NotFound as gone:  # deleted there, or another account's: only bapp's side is left
                    verb = {"cancel": "cancel", "no-show": "no-show", "undo": "no-show --undo"}[command]
                    gone.hint = f"`bapp bookings {verb} {reference} --local-only` changes it in bapp only"
                    raise
            with transaction(dry_run=dry_run) as session:
                now = clock()
                if command == "undo":
                    return undo_no_show(session, reference, now=now), notes
                # locked first, so that the status read here is the one the change is made from
                booking = get_booking(session, reference, for_update=True)
                # already where the change made in Calendly takes it (its delivery came first): nothing left to do
                if asked and booking.status == {"cancel": "cancelled", "no-show": "no_show"}[command]:
                    change = StatusChange(booking_view(session, booking.id), {})
                else:
                    change = change_booking_status(session, booking, command, now=now, reason=reason)
                if asked and command == "no-show":
                    # stamped so that the delivery of that same mark, or an older one, arriving later changes
                    # nothing (see ``InviteeApplier.apply_no_show``); cut to its column, as the pull cuts it
                    booking.calendly_no_show_uri, booking.calendly_no_show_at = mark and mark[:URI_LENGTH], now
    except KeyboardInterrupt:
        from bapp_cli.errors import committed

        # Waiting for the turn, nothing was asked; stopped once the change was committed here, the generic
        # message says that what was committed stands.
        if not asked or committed[0]:
            raise
        # In the round trip or in recording its answer (the rolled-back change here, perhaps waiting for another
        # writer's lock), bapp changed nothing, but Calendly may have: the generic "nothing was changed" would
        # mislead. Running the command again is safe: a cancel Calendly already made counts as done, and a no-show
        # mark is looked up before one is made.
        what = {"cancel": "cancel", "no-show": "mark as a no-show", "undo": "take back the no-show of"}[command]
        stop = f"while Calendly was asked to {what} booking {reference}; bapp changed nothing, Calendly may have"
        raise Interrupted(stop, hint="run the command again: it settles both sides, doing nothing twice") from None
    return change, notes


def _calendly_no_show(client: CalendlyClient, invitee_uri: str) -> str | None:
    """The URI of the no-show Calendly holds for the invitee, if any (its ``no_show``); NotFound when
    Calendly no longer has the invitee or its event."""
    return no_show.uri if (no_show := client.get_invitee(invitee_uri).no_show) is not None else None


def _mark_no_show(client: CalendlyClient, invitee_uri: str) -> str:
    """``POST /invitee_no_shows``; a lost answer is settled by asking whether the mark is there."""
    from bapp_cli.calendly.client import OutcomeUnknown

    try:
        return client.create_invitee_no_show(invitee_uri).uri
    except OutcomeUnknown:
        with contextlib.suppress(BappError):  # Calendly cannot be asked: the lost answer stands
            if found := _calendly_no_show(client, invitee_uri):
                return found
        raise  # not marked there either: the lost answer stands


def back_from_no_show(session: Session, booking: Booking, now: dt.datetime, *held: str) -> tuple[str, BappError | None]:
    """The status a no-show goes back to when its mark is taken back, here (``no-show --undo``) or in
    Calendly (``invitee_no_show.deleted``) alike (services.rule_book.restored_status), and why it may not
    (services.booking.restorable: not a no-show, or its slot booked meanwhile, or a stored value its check cannot
    read), which the undo is refused for and Calendly's deletion, which cannot be, warns of. ``held``: the keys the
    caller holds.

    The status before the mark is read from the audit row of the mark (here or Calendly's: the booking's latest status
    move, to no_show), the one place it is kept; without it (a no-show imported as such, or a database restored from
    a backup, which does not carry the audit log) rule 8 decides, as it always did (README "Booking rules")."""
    was = moved_from(session, "booking", booking.reference, "status", to="no_show")
    paid = booking.payment_status
    back = restored_status(end=booking.end_time, now=now, amount=booking.amount, payment_status=paid, was=was)
    try:
        return restorable(session, booking, back, *held), None
    # a value raw SQL stored, which the check cannot read; not a database that failed: that fails the whole delivery
    except (Conflict, errors.UnreadableValue) as refused:
        return back, refused


def undo_no_show(session: Session, reference: str, *, now: dt.datetime) -> StatusChange:
    """``no-show --undo``: a no-show recorded by mistake goes back to the status the rule book restores
    (services.rule_book.restored_status, the same as Calendly's ``invitee_no_show.deleted``)."""
    booking = get_booking(session, reference, for_update=True)
    back, refused = back_from_no_show(session, booking, now)
    if refused:
        raise refused
    booking.status = back
    # the URI cleared, and stamped now: a late delivery of the mark just taken back must not bring it back
    booking.calendly_no_show_uri, booking.calendly_no_show_at = None, now
    audit_change(session, booking, {"status": ["no_show", booking.status], "undo": "no-show"}, now=now)
    return StatusChange(booking_view(session, booking.id), {"status": ["no_show", booking.status]})


# -- single-use scheduling links ---------------------------------------------------------------------


def create_link(
    transaction: Transaction,
    open_client: Callable[[], AbstractContextManager[CalendlyClient]],
    client_email: str,
    session_ref: str,
    *,
    clock: Callable[[], dt.datetime],
) -> dict[str, Any]:
    """``bookings link``: a single-use scheduling link (``POST /scheduling_links``) for a known client and a
    bookable Calendly session type, recorded as an open invitation once Calendly has made it."""
    with transaction(write=False) as session:
        client, _ = get_client(session, client_email)
        target = calendly_session(session, session_ref)
        check_bookable(session.get_one(SessionType, target.id), None, None)  # the session alone, by design
    with open_client() as calendly:
        booking_url = calendly.create_scheduling_link(target.event_type_uri).booking_url
    with transaction() as session:
        client, _ = get_client(session, client_email)
        # Calendly's, so looked up as bapp's own keys are before a write: the column's unique key refusing it was exit 1
        if session.scalar(select(CalendlyInvitation.id).filter_by(booking_url=booking_url[:URI_LENGTH])) is not None:
            raise RemoteError(f"Calendly answered with a scheduling link already recorded, {booking_url}: not new")
        now = clock()
        # status: the column's default, open
        invitation = CalendlyInvitation(
            client_id=client.id, session_type_id=target.id, booking_url=booking_url[:URI_LENGTH], created_at=now
        )
        session.add(invitation)
        session.flush()
        link = {"client": client.email, "session": target.label, "booking_url": booking_url}
        record_audit(session, "calendly_invitation", str(invitation.id), link)
    return {**link, "status": "open", "created_at": now}

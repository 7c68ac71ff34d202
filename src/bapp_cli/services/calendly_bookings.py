"""Bookings from Calendly (README "Calendly bookings"): scheduled events and their invitees become bookings.

Two doors, one rule book. ``pull_bookings`` applies a fetched (or saved) listing of scheduled events and
their invitees — the cron job; ``apply_webhook`` applies one verified ``invitee.created`` /
``invitee.canceled`` delivery. Both hand every invitee to :class:`InviteeApplier`, so a booking looks the
same whichever door it came through.

How an invitee becomes a booking:

* keyed on the invitee URI (``bookings.calendly_invitee_uri``), source ``calendly``;
* session type by the event's event-type URI; an unknown type is *skipped* and reported (run
  ``calendly sync`` first), never a crash;
* client by the invitee's e-mail; the account is created when missing (the visitor booked in Calendly,
  as rule 3 of README "Booking rules" creates an account with a booking);
* times are Calendly's; past starts are accepted (a pull is also a backfill) and the overlap rule is not
  applied: Calendly has already decided availability and the booking exists whatever bapp thinks, so
  refusing it would only make the database disagree with the calendar. Bookability is not enforced for
  the same reason (a type disabled locally still records what Calendly booked);
* answers from ``questions_and_answers`` normalised by :func:`answers_from_calendly` (a multi-select answer
  becomes a list; "other" answers are kept as typed), never refused;
* pathway from the answer to the first question matching ``calendly.pathway_question`` (a case-insensitive
  regular expression, default ``pathway``), matched to a pathway slug or name (or one whole-word name in
  a decorated choice such as "🚀 Accelerate"); an unknown or archived answer gives no pathway and a
  warning. Without a usable answer, a rescheduled booking keeps the pathway of the booking it replaces,
  and a *pathway* session falls back to rule 4's lenient form (services.rule_book.choose_pathway): the
  one linked pathway the client is actively enrolled in, else its only linked pathway (a Calendly
  booking cannot be refused, so "ask the client" becomes a warning). A booking with a pathway enrols the
  client (rule 4), its builder becoming the coach;
* status from the price (rule 8); a successful Calendly payment makes it confirmed/paid, at the amount and
  currency Calendly took (the price bapp holds may not be set, or be in another currency), whether it comes
  on first sight or later; a payment already recorded here stays.

Changes after the first sight:

* ``remote_updated_at`` holds the invitee ``updated_at`` last applied. A delivery that is not newer
  changes nothing (``unchanged``): duplicates and out-of-order webhook retries are harmless. The one
  exception is a cancellation carrying the same ``updated_at`` as an active copy: cancelled wins.
* a canceled invitee cancels its booking with Calendly's reason; ``completed`` and ``no_show`` bookings
  are not cancelled and stay (warning), as do bookings cancelled here (a later "active" never revives them).
* a cancel that arrives before its create creates the booking directly in the cancelled state, stamped
  with the cancel's ``updated_at``; the late create is then older and cannot resurrect it.
* a reschedule (in Calendly: a cancel and a create) is two invitees. The old one, ``rescheduled: true``, cancels its
  booking with the reason "Rescheduled" (counted as ``rescheduled``); the new one (``old_invitee`` set)
  creates the new booking, carrying over the old booking's pathway, its price and its payment (refunded stays
  refunded). The old booking keeps its row, time and answers, so history is not lost; whichever half arrives
  first, the old booking ends cancelled and the new one active.

Run records (pulls only) follow the event-type sync: a successful pull writes its ``sync_runs`` row
(``kind = "bookings"``) in the same transaction as its changes; a failed one rolls back and the caller
records the failure with :func:`bapp_cli.services.calendly_runs.record_run`; a dry run writes
nothing. The run row has the sync's counters, so ``deactivated`` holds the bookings cancelled and
``reactivated`` the bookings rescheduled by that pull.

Concurrency: every apply takes one transaction-scoped lock (``calendly:bookings``; PostgreSQL advisory,
SQLite's BEGIN IMMEDIATE already serialises writers), so a pull and a webhook never apply the same
invitee at once; a webhook also takes the ``client:<email>`` lock that ``bookings create`` uses. Recording
Calendly's answer to a write-through booking (services.calendly_write) takes it too, alone: a pull that has
read its invitees' bookings must not see one attached before that invitee's turn.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from bapp_cli.calendly.models import NO_SHOW_WEBHOOK_EVENTS, Invitee, ScheduledEvent, WebhookPayload
from bapp_cli.config import DEFAULT_PATHWAY_QUESTION, compile_pattern
from bapp_cli.db.audit import apply_changes, record_audit
from bapp_cli.db.bulk import any_of
from bapp_cli.db.domains import REASON_LIMIT, URI_LENGTH
from bapp_cli.db.locks import CALENDLY_BOOKINGS, booking_keys, client_lock_key, lock_keys, lock_rows
from bapp_cli.db.models import SYNC_KINDS, Booking, Pathway, SessionType, SyncRun, User
from bapp_cli.errors import ConfigError, Conflict, InvalidInput
from bapp_cli.services.answers import answers_from_calendly, questions_from
from bapp_cli.services.booking import audit_change, creation_audit, insert_booking, linked_pathways, pick_pathway
from bapp_cli.services.calendly_runs import RUN_HEAD, RunReport, listing_error_details, read_listing, record_run
from bapp_cli.services.calendly_write import attach_invitee, back_from_no_show, match_held_booking, use_invitation
from bapp_cli.services.enrolment import enrol
from bapp_cli.services.instants import SUPPORTED_YEARS, out_of_range, zone_key
from bapp_cli.services.listing import Page
from bapp_cli.services.pathways import answer_key, answer_names
from bapp_cli.services.people import MAX_TEXT, ensure_client, normalise_email
from bapp_cli.services.plain_reads import builder_ids_by_calendly_uri
from bapp_cli.services.plain_text import cut_whole, nfc
from bapp_cli.services.rule_book import ACTIVE_STATUSES, LONGEST_BOOKING, price_status
from bapp_cli.services.session_values import parse_currency, parse_price

RESCHEDULED_REASON = "Rescheduled"
# an invitee whose event type Calendly would not give, or bapp could not store (to a pull, the receiver): why, and
# what may be done (`webhook list` has the IDs)
NOT_FETCHED = (
    "not added from Calendly ({}); the next pull asks again, or `bapp calendly webhook retry --discard ID` gives the "
    "invitee up"
)
# Longer Calendly values than a column keeps (a name: MAX_TEXT, a reason: REASON_LIMIT) are cut, not refused: before
# a character the limit would split (cut_whole).
_INVITEES = TypeAdapter(list[Invitee])


# -- inputs ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BookedInvitee:
    """One invitee with the scheduled event it belongs to: what a pull item and a webhook both carry."""

    invitee: Invitee
    event: ScheduledEvent

    @property
    def no_show_at(self) -> dt.datetime | None:
        """When Calendly marked the invitee a no-show, as a listed invitee shows it (its ``no_show``), else None."""
        return None if (mark := self.invitee.no_show) is None else mark.created_at or self.invitee.updated_at


def pathway_question_pattern(text: str | None) -> re.Pattern[str]:
    """The ``calendly.pathway_question`` setting as a case-insensitive pattern (a plain word is a substring).

    A broken regular expression is a configuration error (exit 4), found before anything is fetched.
    """
    hint = "use a word that the pathway question contains, e.g. `pathway`"
    return compile_pattern(
        (text or "").strip() or DEFAULT_PATHWAY_QUESTION, "calendly.pathway_question", ConfigError, hint=hint
    )


def parse_bookings_listing(
    content: bytes | str, *, name: str, on_cleaned: Callable[[list[str]], None] | None = None
) -> list[BookedInvitee]:
    """A saved listing (``pull-bookings --from-file``): scheduled events, each with an ``invitees`` array.

    Accepted shapes: a ``GET /scheduled_events`` page ``{collection, pagination}``, a list of such pages,
    or a bare list of events; each event's ``invitees`` is the invitee list or its page. Every bad item is
    reported with its place and field (InvalidInput, exit 6); nothing is applied from a bad file.
    """

    def validate(collection: list[Any], prefix: str, details: list[dict[str, Any]]) -> Iterable[BookedInvitee]:
        for index, raw in enumerate(collection):
            where = f"{prefix}[{index}]"
            try:
                event = ScheduledEvent.model_validate(raw)
            except ValidationError as exc:
                details.extend(listing_error_details(exc, where))
                continue
            invitees = raw.get("invitees") if isinstance(raw, Mapping) else None
            if isinstance(invitees, Mapping):
                invitees = invitees.get("collection")
            if not isinstance(invitees, list):
                details.append({"row": where, "field": "invitees", "message": "must be an array of invitees"})
                continue
            try:
                yield from (BookedInvitee(invitee, event) for invitee in _INVITEES.validate_python(invitees))
            except ValidationError as exc:
                details.extend(listing_error_details(exc, f"{where}.invitees"))

    hint = "save scheduled events (each with an 'invitees' array) as a page, a list of pages or a list"
    return read_listing(
        content, name=name, items="scheduled events", hint=hint, validate=validate, on_cleaned=on_cleaned
    )


def within(items: Iterable[BookedInvitee], since: dt.datetime | None, until: dt.datetime | None) -> list[BookedInvitee]:
    """The items whose event starts in [since, until), as the API's min/max_start_time filters select."""
    low, high = since or dt.datetime.min.replace(tzinfo=dt.UTC), until or dt.datetime.max.replace(tzinfo=dt.UTC)
    return [item for item in items if low <= item.event.start_time < high]


# -- results ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InviteeOutcome:
    """What applying one invitee did; for a webhook delivery (``calendly webhook apply``, the receiver) also
    which ``event`` it was, and for one re-applied from the webhook inbox (``webhook retry``) its row ``id``."""

    action: str
    invitee_uri: str
    reference: str | None = None
    booking_status: str | None = None
    note: str = ""
    warnings: tuple[str, ...] = ()
    # the booking a reschedule's new half cancelled on the way (counted once as rescheduled)
    replaced: str | None = None
    # a no-show's booking created on the way (the invitee first seen with its mark): a pull counts it as created
    created: bool = False
    event: str = ""
    dry_run: bool = False
    id: int | None = None

    @property
    def wrote(self) -> bool:
        return self.action not in ("unchanged", "skipped", "ignored", "parked")

    @property
    def applied(self) -> bool:
        return self.action not in ("skipped", "parked")

    def as_record(self) -> dict[str, Any]:
        """A delivery's record (``DELIVERY_COLUMNS``, ``webhook apply``), or with an ``id`` a retry's
        (``RETRY_COLUMNS``): the fields under those names, a blank URI or note as null."""
        named = {**vars(self), "booking": self.reference, "warnings": list(self.warnings)}
        named.update(invitee_uri=self.invitee_uri or None, note=self.note or None)
        return {name: named[name] for name in (DELIVERY_COLUMNS if self.id is None else RETRY_COLUMNS)}

    def describe(self) -> str:
        booking = f"  {self.reference} ({self.booking_status})" if self.reference else ""
        return f"{self.action:<11} {self.invitee_uri}{booking}" + (f": {self.note}" if self.note else "")


# The actions with a counter of their own in the report; any other counts as updated if it wrote (no_show), else
# unchanged.
_COUNTED = ("created", "updated", "cancelled", "rescheduled", "skipped")
# The record of a pull (then its count of warnings), of one delivery (``webhook apply``, the receiver's
# answer) and of a ``webhook retry`` row: the inbox row, then what applying it did.
PULL_COLUMNS = (*RUN_HEAD, "cancelled", "rescheduled", "unchanged", "skipped")
DELIVERY_COLUMNS = ("event", "dry_run", "action", "invitee_uri", "booking", "booking_status", "note", "warnings")
RETRY_COLUMNS = ("id", "event", "invitee_uri", "action", "booking", "booking_status", "note")


@dataclass
class BookingPullReport(RunReport):
    """The summary of one ``calendly pull-bookings`` run."""

    kind = "bookings"
    recorded_as = ("cancelled", "rescheduled")
    columns = PULL_COLUMNS
    cancelled: int = 0
    rescheduled: int = 0
    outcomes: list[InviteeOutcome] = field(default_factory=list)

    @property
    def warnings(self) -> list[str]:
        return [warning for outcome in self.outcomes for warning in outcome.warnings]

    def count(self, outcome: InviteeOutcome) -> None:
        self.outcomes.append(outcome)
        action = "created" if outcome.created else outcome.action
        counter = action if action in _COUNTED else "updated" if outcome.wrote else "unchanged"
        setattr(self, counter, getattr(self, counter) + 1)
        if outcome.replaced is not None:
            self.rescheduled += 1

    def as_record(self) -> dict[str, Any]:
        return {**super().as_record(), "warnings": len(self.warnings)}


# One row of ``calendly status``: an event-type sync or a bookings pull, its sync_runs columns in this order.
RUN_COLUMNS = (
    *("run_id", "started_at", "finished_at", "status", "source", "fetched", "created", "updated", "unchanged"),
    *("deactivated", "reactivated", "error", "kind", "skipped"),
)


# -- applying invitees-----------------------------------------------------------------------------


class InviteeApplier:
    """Applies invitees to bookings inside the caller's transaction (see the module docstring).

    Lookups (session types, builders, pathways, bookings by invitee URI) are read at most once for the
    applier's life, which is one pull or one webhook.
    """

    def __init__(
        self,
        session: Session,
        *,
        now: dt.datetime,
        pathway_question: re.Pattern[str],
        unfetched: Mapping[str, str] = {},
    ) -> None:
        self.session, self.now, self.pathway_question = session, now, pathway_question
        # an event type the pull or the receiver could not fetch or store → why: said with the way out, not "sync
        # first" (a sync brings neither a type deleted in Calendly nor one the token may not read)
        self.unfetched = unfetched
        self._session_types: dict[str, SessionType | None] = {}
        # per session type (one object per row in the session), worked out once
        self._questions = functools.cache(lambda session_type: questions_from(session_type.custom_questions))
        self._linked = functools.cache(functools.partial(linked_pathways, session))
        self._bookings: dict[str, Booking | None] = {}
        self._builders = builder_ids_by_calendly_uri(session)

    @functools.cached_property
    def _pathways(self) -> list[Pathway]:
        """Every pathway in display order, under a share lock held to commit (db.locks.lock_rows): on PostgreSQL an
        archive not yet committed was read past, and enrolling in the pathway chosen refused the whole apply, which
        Calendly has booked (SQLite's writers take turns). Taken when a booking may first get a pathway, not for
        every invitee: a no-change pull wrote no lock, a delivery of another session did not wait for an archive."""
        return sorted(lock_rows(self.session, Pathway), key=lambda row: (row.position, row.slug))

    # -- lookups ----------------------------------------------------------------------------------

    def _session_type(self, uri: str | None) -> SessionType | None:
        """The session type synced from event type ``uri``, read when first needed and kept for the
        applier's life: a no-change pull creates nothing and reads none, a webhook reads one, whatever the
        size of the catalogue."""
        if uri and uri not in self._session_types:
            query = select(SessionType).where(SessionType.calendly_uri == uri)
            self._session_types[uri] = self.session.scalars(query).one_or_none()
        return self._session_types[uri] if uri else None

    def preload(self, invitee_uris: Sequence[str]) -> None:
        """Fetch the bookings of many invitees in one query (a no-change pull then reads, never writes)."""
        wanted = [uri for uri in dict.fromkeys(invitee_uris) if uri not in self._bookings]
        if wanted:
            query = select(Booking).where(any_of(self.session, Booking.calendly_invitee_uri, wanted))
            found = {booking.calendly_invitee_uri: booking for booking in self.session.scalars(query)}
            self._bookings.update((uri, found.get(uri)) for uri in wanted)

    def _booking(self, invitee_uri: str) -> Booking | None:
        self.preload([invitee_uri])
        return self._bookings[invitee_uri]

    def _builder(self, event: ScheduledEvent, session_type: SessionType) -> User | None:
        """The event's host when they are a known builder (round robin, teams), else the type's owner."""
        hosts = (self._builders.get(membership.user) for membership in event.event_memberships)
        user_id = next(filter(None, hosts), session_type.builder_id)
        return self.session.get(User, user_id) if user_id is not None else None

    def _pathway_named(self, text: str) -> Pathway | None:
        """The pathway one part of an answer (stripped, never blank) names: by slug or name, else by the one
        whole-word match."""
        wanted = answer_key(text)
        for pathway in self._pathways:
            if wanted in answer_names(pathway):
                return pathway
        # Answer choices often decorate the name ("🚀 Accelerate – fast track"): accept one whole-word match, in the
        # same key (an NFD 'é' would otherwise end a word after 'e': 'Café' would name a pathway 'Cafe')
        found = [
            pathway
            for pathway in self._pathways
            if re.search(rf"\b(?:{'|'.join(map(re.escape, answer_names(pathway)))})\b", wanted)
        ]
        return found[0] if len(found) == 1 else None

    def _answered_pathway(self, invitee: Invitee, warnings: list[str]) -> Pathway | None:
        asked = (item for item in invitee.questions_and_answers if self.pathway_question.search(item.question))
        if (item := next(asked, None)) is None:
            return None
        parts = [part.strip() for part in item.answer.split("\n") if part.strip()]
        matches = list(dict.fromkeys(p for p in (self._pathway_named(part) for part in parts) if p is not None))
        if len(matches) == 1 and not matches[0].archived:
            return matches[0]
        if len(matches) == 1:
            warnings.append(f"pathway {matches[0].slug!r} (answer to {item.question!r}) is archived; not taken")
        elif matches:
            warnings.append(f"answer to {item.question!r} names several pathways; none taken from it")
        else:
            warnings.append(f"answer {item.answer[:100]!r} to {item.question!r} names no known pathway")
        return None

    def _remote_fields(self, item: BookedInvitee, session_type: SessionType, warnings: list[str]) -> dict[str, Any]:
        """The booking's fields that Calendly owns: times, the client's zone, the answers, the event."""
        invitee, event = item.invitee, item.event
        start, end = event.start_time, event.end_time
        if not start < end <= start + LONGEST_BOOKING:
            # Calendly's own sample payloads carry end == start; a booking must end after it starts, and last at most
            # a day (a booking bapp holds, e.g. its own sent to Calendly, keeps its length; a new one takes its type's)
            own = self._booking(invitee.uri)
            length = own.end_time - own.start_time if own else dt.timedelta(minutes=session_type.duration_minutes)
            end, minutes = start + length, length // dt.timedelta(minutes=1)
            warnings.append(f"event ends at or before its start, or over a day after; end set from the {minutes} min")
        timezone = zone_key(invitee.timezone or "UTC")
        if timezone is None:
            given = str(invitee.timezone).strip()
            warnings.append(f"invitee timezone {given[:64]!r} is not an IANA zone; UTC recorded")
            timezone = "UTC"
        answers = [answer.model_dump() for answer in invitee.questions_and_answers]
        return {
            "start_time": start,
            "end_time": end,
            "client_timezone": timezone,
            "custom_question_responses": answers_from_calendly(answers, self._questions(session_type)),
            "calendly_event_uri": event.uri,
        }

    @staticmethod
    def _cancelled(item: BookedInvitee) -> bool:
        # When a host cancels the event, every invitee goes with it.
        return item.invitee.status == "canceled" or item.event.status == "canceled"

    @staticmethod
    def _cancellation(item: BookedInvitee) -> tuple[dt.datetime, str | None]:
        details = item.invitee.cancellation or item.event.cancellation
        reason = (details.reason or "").strip() if details is not None else ""
        if item.invitee.rescheduled:
            reason = f"{RESCHEDULED_REASON}: {reason}" if reason else RESCHEDULED_REASON
        return (details and details.created_at) or item.invitee.updated_at, cut_whole(reason, REASON_LIMIT) or None

    # -- apply ------------------------------------------------------------------------------------

    def apply(self, item: BookedInvitee, *kept: dt.datetime) -> InviteeOutcome:
        """Create, update or cancel the booking of one invitee; never raises for bad remote data. ``kept``: other
        times from Calendly the caller stores with it (a no-show's), held to the same years."""
        from bapp_cli.calendly.client import names_an_invitee  # httpx, loaded by a command that reads Calendly only

        uri = item.invitee.uri
        if not names_an_invitee(uri, item.event.uri) or len(uri) > URI_LENGTH or len(item.event.uri) > URI_LENGTH:
            return InviteeOutcome("skipped", uri[:URI_LENGTH], note="invitee or event URI not one, or too long")
        times = (item.event.start_time, item.event.end_time, item.invitee.created_at, item.invitee.updated_at)
        for moment in (*times, self._cancellation(item)[0], *kept):  # every time it may store
            # bapp's instants stay within these years (services.instants): past them a time overflows as soon as
            # it is shown in a zone or moved by a buffer, and a backup holding it does not restore: parked, not stored
            if moment.year not in SUPPORTED_YEARS:
                return InviteeOutcome("skipped", uri, note=f"time {out_of_range(moment)}")
        return self._create(item) if (existing := self._booking(uri)) is None else self._update(existing, item)

    def _create(self, item: BookedInvitee) -> InviteeOutcome:
        invitee, event = item.invitee, item.event
        session_type = self._session_type(event.event_type)
        if session_type is None:
            why = self.unfetched.get(event.event_type or "")
            advice = NOT_FETCHED.format(why) if why else "run `bapp calendly sync` first"
            note = f"unknown event type {event.event_type or '(none)'}; {advice}"
            return InviteeOutcome("skipped", invitee.uri, note=note)
        try:
            email = normalise_email(invitee.email, field="invitee email")
        except InvalidInput as exc:
            return InviteeOutcome("skipped", invitee.uri, note=exc.message)

        held = match_held_booking(self.session, email=email, session_type_id=session_type.id, start=event.start_time)
        if held is not None:
            return self._attach_held(held, item)
        # An event longer than a booking may be is parked, not stored (one bapp holds keeps its length: _remote_fields):
        # stored, the overlap checks (which reach back a longest booking) missed its tail; its backup did not restore
        if event.end_time - event.start_time > LONGEST_BOOKING:
            return InviteeOutcome("skipped", invitee.uri, note="event lasts more than a day, the longest a booking may")
        warnings: list[str] = []
        cancelled = self._cancelled(item)
        builder = self._builder(event, session_type)
        remote = self._remote_fields(item, session_type, warnings)
        replaced = self._booking(invitee.old_invitee) if invitee.old_invitee else None
        name = cut_whole(nfc(invitee.name or "").strip(), MAX_TEXT).rstrip()  # cut before a space, it ended in one
        client, _, made = ensure_client(self.session, email, name=name or None)
        # The answered pathway, else the one of the booking this one replaces, else rule 4's lenient choice
        # (services.rule_book.choose_pathway): Calendly has booked it, so nothing is refused.
        requested = self._answered_pathway(invitee, warnings)
        if session_type.category == "pathway" or (replaced is not None and replaced.pathway_id is not None):
            _ = self._pathways  # read now for its lock: as they stand till commit, what rule 4 or a reschedule takes
        if requested is None and replaced is not None and replaced.pathway_id is not None:
            requested = self.session.get(Pathway, replaced.pathway_id)
            if requested is not None and requested.archived:  # as an archived answer is: said, then rule 4 chooses
                warnings.append(f"pathway {requested.slug!r} (of {replaced.reference}) is archived; not carried over")
        linked = self._linked(session_type)
        pathway = pick_pathway(self.session, session_type, requested, client, linked, warnings=warnings)
        enrolled = False
        if pathway is not None and not cancelled and not pathway.archived:
            new_account = made == "account"  # no history yet: enrol runs no completion rules for it
            enrolled = enrol(self.session, client, pathway, now=self.now, builder=builder, new_client=new_account)[1]

        # a reschedule moves its booking at the price agreed (and paid) for it, not today's
        terms = _settled(_charged(invitee, warnings), replaced or session_type)
        cancelled_at, reason = self._cancellation(item) if cancelled else (None, None)
        booking = Booking(
            **remote,
            client_id=client.id,
            builder_id=builder.id if builder is not None else None,
            session_type_id=session_type.id,
            **(terms | {"status": "cancelled"} if cancelled else terms),
            pathway_id=pathway.id if pathway is not None else None,
            calendly_invitee_uri=invitee.uri,
            source="calendly",
            cancellation_reason=reason,
            cancelled_at=cancelled_at,
            remote_updated_at=invitee.updated_at,
            created_at=self.now,
            updated_at=self.now,
        )
        insert_booking(self.session, booking)
        self._bookings[invitee.uri] = booking

        invitation = use_invitation(self.session, booking, now=self.now)
        notes = [  # what happened on the way, the blank ones left out
            f"booked through the link {invitation}" if invitation is not None else "",
            f"rescheduled from {replaced.reference}" if replaced is not None else "",
            ("arrived cancelled" + (f" ({reason})" if reason else "")) if cancelled else "",
            f"{made} created for {email}" if made else "",
            f"enrolled in {pathway.slug}" if enrolled and pathway is not None else "",
        ]
        replaced_reference = None
        moved = f"{RESCHEDULED_REASON} to {booking.reference}"  # the old booking's reason, whichever half came first
        if replaced is not None and replaced.status in ACTIVE_STATUSES:
            # The new half came first: the old slot is free in Calendly whatever order deliveries take.
            self._cancel(replaced, invitee.created_at, moved)
            replaced_reference = replaced.reference
        elif replaced is not None and (said := replaced.cancellation_reason or "").split(":")[0] == RESCHEDULED_REASON:
            # The old half came first ("Rescheduled", then the client's reason): it names the new booking too, as the
            # other order's does (README); the old booking did not say where it went
            named = cut_whole(moved + said.removeprefix(RESCHEDULED_REASON), REASON_LIMIT)
            self._audit(replaced, {"cancellation_reason": [said, named]})
            replaced.cancellation_reason = named
        created = creation_audit(booking, email, builder, pathway, account_created=made == "account", enrolled=enrolled)
        rescheduled_from = replaced.reference if replaced is not None else None
        audit = {"source": "calendly", "invitee": invitee.uri, **created, "rescheduled_from": rescheduled_from}
        record_audit(self.session, "booking", booking.reference, audit)
        return _outcome("created", item, booking, "; ".join(filter(None, notes)), warnings, replaced=replaced_reference)

    def _attach_held(self, held: Booking, item: BookedInvitee) -> InviteeOutcome:
        """The invitee of a booking bapp sent with POST /invitees whose answer it has not recorded yet
        (lost, or the process was killed): it completes that booking instead of creating a second one."""
        attach_invitee(self.session, held, item.invitee, item.event, now=self.now)
        self._bookings[item.invitee.uri] = held
        warnings = []
        if self._cancelled(item) and held.status in ACTIVE_STATUSES:
            self._cancel(held, *self._cancellation(item))
        elif not self._cancelled(item) and held.status == "cancelled":
            # cancelled here while it waited (`bookings cancel --local-only`); Calendly still holds the session
            warnings.append(
                f"booking {held.reference} was cancelled in bapp while it waited for Calendly, which still has "
                "it: cancel the invitee in Calendly too"
            )
        return _outcome("updated", item, held, "matched the booking bapp sent to Calendly", warnings)

    def _cancel(self, booking: Booking, when: dt.datetime, reason: str | None) -> None:
        self._audit(booking, {"status": [booking.status, "cancelled"], "reason": reason})
        booking.status, booking.cancelled_at, booking.cancellation_reason = "cancelled", when, reason

    def _audit(self, booking: Booking, changes: dict[str, Any]) -> None:
        """Stamp a change Calendly made to a known booking and audit it as Calendly's."""
        audit_change(self.session, booking, {"source": "calendly", **changes}, now=self.now)

    def _update(self, booking: Booking, item: BookedInvitee) -> InviteeOutcome:
        invitee = item.invitee
        cancelled = self._cancelled(item)
        known = booking.remote_updated_at
        if known is not None and (
            invitee.updated_at < known
            or (invitee.updated_at == known and not (cancelled and booking.status in ACTIVE_STATUSES))
        ):
            note = "older than the version applied" if invitee.updated_at < known else ""
            return _outcome("unchanged", item, booking, note)

        warnings: list[str] = []
        changes: dict[str, Any] = {}
        action = "updated"
        if cancelled:
            when, reason = self._cancellation(item)
            if booking.status in ACTIVE_STATUSES:
                wanted = {"status": "cancelled", "cancelled_at": when, "cancellation_reason": reason}
                changes = apply_changes(booking, wanted)
                action = "rescheduled" if invitee.rescheduled else "cancelled"
            elif booking.status == "cancelled":
                # "Rescheduled to BK-…" (set by the new half) says more than the old half's own reason.
                if reason and not (booking.cancellation_reason or "").startswith(RESCHEDULED_REASON):
                    changes = apply_changes(booking, {"cancellation_reason": reason})
            else:
                warnings.append(f"booking is {booking.status}, not cancellable; Calendly's cancellation not applied")
        elif booking.status in ACTIVE_STATUSES:
            fresh = self._remote_fields(item, self.session.get_one(SessionType, booking.session_type_id), warnings)
            answered = self._answered_pathway(invitee, warnings) if booking.pathway_id is None else None
            if answered is not None:  # an answer that now names a pathway enrols the client in it
                fresh["pathway_id"] = answered.id
                client = self.session.get_one(User, booking.client_id)
                builder = self.session.get(User, booking.builder_id) if booking.builder_id else None
                enrol(self.session, client, answered, now=self.now, builder=builder)
            # paid in Calendly since: as if paid on first sight (a payment already recorded here stays)
            charged = _charged(invitee, warnings) if booking.payment_status in ("unpaid", "not_required") else None
            if charged is not None:
                fresh |= _settled(charged, booking)
            changes = apply_changes(booking, fresh)
        else:  # cancelled, completed or a no-show here, which Calendly does not change; a payment it shows is said
            if booking.status == "cancelled":
                warnings.append("booking is cancelled here and stays cancelled (Calendly shows the invitee active)")
            if booking.payment_status in ("unpaid", "not_required") and _charged(invitee, []) is not None:
                warnings.append(f"Calendly shows a payment on this booking, {booking.status} here; it is not recorded")
        booking.remote_updated_at = invitee.updated_at
        if not changes:
            return _outcome("unchanged", item, booking, warnings=warnings)
        self._audit(booking, changes)
        note = ", ".join(name for name in changes if name != "status")
        if action != "updated":
            note = booking.cancellation_reason or ""
        return _outcome(action, item, booking, note, warnings)

    # -- no-shows (invitee_no_show.created / .deleted) ---------------------------------------------

    def apply_no_show(self, item: BookedInvitee, *, marked: bool, changed_at: dt.datetime) -> InviteeOutcome:
        """Mark the invitee's booking a no-show (``marked``) or take the mark back.

        The invitee is applied first, so a no-show that arrives before its booking still lands (or is
        skipped, and then parked, like any invitee). Taking a mark back restores ``completed`` for a
        session that has ended and the active status its payment implies for one that has not. A
        cancelled booking stays cancelled (a warning says so); a repeated delivery changes nothing.

        ``changed_at`` is when the change happened in Calendly (the delivery's ``created_at``). A no-show
        does not move the invitee's ``updated_at``, so deliveries are ordered by ``calendly_no_show_at``
        instead: one not newer than the change last applied (a ``.created`` retried after its
        ``.deleted``) changes nothing.
        """
        first = self.apply(item, changed_at)
        if first.action == "skipped":
            return first
        booking = self._booking(item.invitee.uri)
        assert booking is not None  # apply() created or found it
        previous, clashed = booking.status, {}
        warnings = list(first.warnings)
        known = booking.calendly_no_show_at
        if known is None or changed_at > known:
            booking.calendly_no_show_at = changed_at
            # kept so that `bookings no-show --undo` can delete in Calendly a mark made there
            if not marked:
                booking.calendly_no_show_uri = None
            elif item.invitee.no_show is not None:
                booking.calendly_no_show_uri = item.invitee.no_show.uri[:URI_LENGTH]
            if marked and previous in ("pending", "confirmed", "completed"):
                booking.status = "no_show"
            elif not marked and previous == "no_show":
                # Calendly's word stands (its event never left its calendar, and a deletion answered is not delivered
                # again), though bapp booked the builder or the client in the slot while it held none: taken back all
                # the same, the clash said and kept in the booking's audit row, for someone to cancel or move one; and
                # when the check cannot read a stored value (raw SQL's; the undo's exit 5), that said instead: a 503
                # here is retried for a day, then Calendly gives up the delivery
                booking.status, clash = back_from_no_show(self.session, booking, self.now, CALENDLY_BOOKINGS)
                if isinstance(clash, Conflict):
                    warnings.append(f"back from no-show into a clash ({clash.message}): cancel or move one")
                elif clash is not None:
                    warnings.append(f"back from no-show, its slot not checked ({clash.message})")
                if clash is not None:
                    clashed = {"clash": warnings[-1]}
            elif previous == "cancelled":
                warnings.append("booking is cancelled; Calendly's no-show mark not applied")
        if booking.status == previous:
            if stamped := known is None or changed_at > known:  # the mark kept, though the status stays (cancelled)
                self._audit(booking, {"no_show": marked, "calendly_no_show_at": [known, changed_at]})
            note = first.note or ("" if stamped else "older than the no-show change applied")
            return _outcome(first.action if first.wrote else "unchanged", item, booking, note, warnings)
        self._audit(booking, {"status": [previous, booking.status], "no_show": marked, **clashed})
        if not marked:
            return _outcome("updated", item, booking, f"no-show mark removed ({booking.status})", warnings)
        # a booking applying the invitee created, or the one a reschedule's new half cancelled: a pull counts them
        created, replaced = first.action == "created", first.replaced
        return _outcome("no_show", item, booking, "marked no-show", warnings, replaced=replaced, created=created)


def _charged(invitee: Invitee, warnings: list[str]) -> dict[str, Any] | None:
    """None unless Calendly says the invitee paid; then what it took, as the booking's amount and currency
    whatever the price bapp holds (0.00 until someone sets it, or another currency) — none for a charge no
    booking can hold (said), which leaves the price."""
    if (payment := invitee.payment) is None or payment.successful is not True:
        return None
    with contextlib.suppress(InvalidInput):
        return {"amount": parse_price(str(payment.amount)), "currency": parse_currency(str(payment.currency))}
    warnings.append(f"Calendly's payment of {payment.amount} {payment.currency!r} cannot be recorded; the price stands")
    return {}


def _settled(charged: dict[str, Any] | None, agreed: Booking | SessionType) -> dict[str, Any]:
    """A Calendly booking's amount, currency, status and payment status: the price ``agreed`` (the session
    type's for a new booking; a booking's own, a reschedule's old one or one whose payment Calendly shows
    later), Calendly's charge taken in (see _charged), then rule 8. A payment that booking holds stays as it
    stands here: refunded stays refunded, though Calendly goes on showing the charge on a rescheduled invitee."""
    amount, carried = (agreed.amount, agreed.payment_status) if isinstance(agreed, Booking) else (agreed.price, "")
    terms = {"amount": amount, "currency": agreed.currency, **(charged or {})}
    status, payment = price_status(terms["amount"], paid=charged is not None or carried in ("paid", "refunded"))
    return {**terms, "status": status, "payment_status": "refunded" if carried == "refunded" else payment}


def _outcome(
    action: str, item: BookedInvitee, booking: Booking, note: str = "", warnings: Sequence[str] = (), **more: Any
) -> InviteeOutcome:
    """What applying ``item`` did to ``booking``, as it now stands."""
    return InviteeOutcome(action, item.invitee.uri, booking.reference, booking.status, note, tuple(warnings), **more)


# -- use cases -------------------------------------------------------------------------------------


def pull_bookings(
    session: Session,
    listing: Sequence[BookedInvitee],
    *,
    source: str,
    started_at: dt.datetime,
    clock: Callable[[], dt.datetime],
    pathway_question: re.Pattern[str],
    dry_run: bool = False,
    unfetched: Mapping[str, str] = {},
) -> BookingPullReport:
    """Apply a complete listing in the caller's transaction and (unless ``dry_run``) record the run; ``unfetched``:
    the event types the pull could not fetch, each with why (InviteeApplier.unfetched)."""
    lock_keys(session, CALENDLY_BOOKINGS, people=True, every_client=True)  # invitee after invitee (db.locks)
    report = BookingPullReport(run_id=None, status="succeeded", dry_run=dry_run, source=source, fetched=len(listing))
    applier = InviteeApplier(session, now=clock(), pathway_question=pathway_question, unfetched=unfetched)
    applier.preload([item.invitee.uri for item in listing])
    for item in listing:  # a no-show made in Calendly is seen here too, or one whose delivery was lost stayed unknown
        at = item.no_show_at
        report.count(applier.apply(item) if at is None else applier.apply_no_show(item, marked=True, changed_at=at))
    session.flush()
    if not dry_run:
        report.run_id = record_run(session, report, started_at=started_at, finished_at=clock())
        if changes := [outcome.describe() for outcome in report.outcomes if outcome.wrote]:
            audit = {**report.as_record(), "changes": changes, "warnings": report.warnings}
            record_audit(session, "calendly_pull", str(report.run_id), audit)
    return report


def apply_webhook(
    session: Session,
    payload: WebhookPayload,
    *,
    now: dt.datetime,
    pathway_question: re.Pattern[str],
    dry_run: bool = False,
    unfetched: Mapping[str, str] = {},
) -> InviteeOutcome:
    """Apply one verified delivery: ``invitee.created`` / ``invitee.canceled`` and the two no-show events.
    Other events are acknowledged (``ignored``) so that the receiver answers 2xx and Calendly does not
    retry them for a day. ``unfetched``: its event type, when the receiver could not fetch it, with why."""
    if payload.payload is None:
        return InviteeOutcome("ignored", "", note=f"{payload.event} not applied", event=payload.event, dry_run=dry_run)
    invitee = payload.payload
    keys = [client_lock_key(invitee.email)]
    if payload.event == "invitee_no_show.deleted":
        # it may take its slot back, checked (rule 6) under the keys a creation takes: all in one sorted turn, as
        # db.locks.lock_keys orders them, never the builder's after the client's (a creation holding it waits for that).
        # Read under the caller's CALENDLY_BOOKINGS, held by every writer of Calendly's bookings; none changes a
        # booking's client, builder or type. Its type's kind may change (a sync) before the check: its key, any kind.
        # Plain columns, no booking object: read before the lock, it would stand in the session for the one read after
        slot = select(Booking.builder_id, Booking.session_type_id).where(Booking.calendly_invitee_uri == invitee.uri)
        for builder, type_id in session.execute(slot):
            keys = booking_keys(invitee.email, builder, type_id)
    lock_keys(session, CALENDLY_BOOKINGS, *keys, people=True)
    applier = InviteeApplier(session, now=now, pathway_question=pathway_question, unfetched=unfetched)
    item = BookedInvitee(invitee, invitee.scheduled_event)
    if payload.event in NO_SHOW_WEBHOOK_EVENTS:
        marked = payload.event == "invitee_no_show.created"
        outcome = applier.apply_no_show(item, marked=marked, changed_at=payload.created_at)
    else:
        outcome = applier.apply(item)
    session.flush()
    return replace(outcome, event=payload.event, dry_run=dry_run)


def list_runs(
    session: Session, *, limit: int = 10, kind: str | None = None, offset: int = 0, search: str | None = None
) -> list[dict[str, Any]]:
    """Recent event-type syncs and bookings pulls (or one ``kind``), newest first; ``search`` looks in the
    status, source and error text. Each run is its ``RUN_COLUMNS``, in that order."""
    page = Page(limit=limit, offset=offset, search=search)
    query = select(SyncRun.id.label("run_id"), *(getattr(SyncRun, name) for name in RUN_COLUMNS[1:]))
    if kind is not None:
        if kind not in SYNC_KINDS:
            raise InvalidInput(f"kind: {kind!r} is not one of {', '.join(SYNC_KINDS)}", code="invalid_kind")
        query = query.where(SyncRun.kind == kind)
    newest_first = query.order_by(SyncRun.started_at.desc(), SyncRun.id.desc())
    runs = session.execute(page.window(newest_first, SyncRun.status, SyncRun.source, SyncRun.error))
    return [dict(run._mapping) for run in runs]

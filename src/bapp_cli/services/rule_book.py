"""The booking and skill-progress rules, written once: pure functions over plain values.

Every entry point that makes a booking — `bookings create`, `import bookings`, a Calendly pull or webhook —
fetches its facts its own way (one query, a cache, a staged batch) and asks these functions for the
decision. A refusal is a value (:class:`Refusal`), not an exception: interactive booking raises it as its
error, the import reports it as the row's error, and Calendly, which cannot refuse what the calendar
already holds, turns the lenient form into a warning. Nothing here reads the clock, the database or the
settings, so the same facts give the same decision whichever door they came through.

The rules (README "Booking rules" tells the user the same):

* pathway (rule 4): any booking may carry a pathway, but an archived one takes no booking that holds a
  slot. A *pathway* session needs one of its linked, non-archived pathways: the requested one must be
  among them; without a request, the client's one active enrolment among them is taken, else the client
  is asked to choose. Calendly (lenient) never refuses: it takes what was requested, else the one active
  enrolment, else the only linked pathway, else no pathway and a warning;
* status from the price (rule 8): free → confirmed, nothing to pay; priced → pending and unpaid until
  paid, then confirmed and paid; a no-show whose mark is taken back is completed once it has ended,
  else back to the status its price and payment give;
* overlaps (rule 6): no two active bookings of one builder (with the builder's buffer on both sides) or
  one client intersect; a group session lets clients share one slot (the same session at the same start)
  up to its invitee limit;
* skill progress: not_started → in_progress → completed, only forward by assignment, back only by an
  explicit reset; what each status implies (a start time, a completion's time, method, validator and
  attempt) is filled in by :func:`settle_progress`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from dataclasses import dataclass, fields, replace
from decimal import Decimal
from typing import Any, Self

from bapp_cli.db.domains import MAX_INT32
from bapp_cli.services.instants import instant_text

# Only these hold a slot: cancelled, completed and no-show bookings never block a new one.
ACTIVE_STATUSES = ("pending", "confirmed")
OVERLAP_HINT = "pick another time, or pass --allow-overlap to book it anyway"
# A clash with a booking still waiting for Calendly's answer: if it is this same booking, --allow-overlap is refused
# (exit 8, calendly_pending: it would be sent twice), and a reconcile may yet find that it was never made.
PENDING_HINT = "it is still waiting for Calendly's answer: run `bapp calendly reconcile` first"
# Rule 2's longest booking. The overlap checks reach back this far (and a buffer) for bookings that may still run.
LONGEST_BOOKING = dt.timedelta(days=1)


@dataclass(frozen=True)
class _RowFacts:
    """The facts of a database row: its fields of the same names, read once, so the rules never see the row."""

    @classmethod
    def of(cls, row: Any) -> Self:
        return cls(*(getattr(row, item.name) for item in fields(cls)))


@dataclass(frozen=True)
class PathwayFacts(_RowFacts):
    """One pathway as the rules see it."""

    id: int
    slug: str
    archived: bool


@dataclass(frozen=True)
class SessionFacts(_RowFacts):
    """One session type as the rules see it."""

    id: int
    title: str
    category: str  # "pathway" sessions need a linked pathway
    kind: str  # "group" sessions share a slot up to invitee_limit
    invitee_limit: int | None
    price: Decimal


@dataclass(frozen=True)
class Refusal:
    """Why a rule refuses. Each entry point turns it into its own error, row error or warning."""

    field: str  # the input it names: "pathway", "session", "start", "validated_by", ...
    code: str  # the machine-readable code of the error ("pathway_required", "overlap", ...)
    message: str  # what is wrong, without the field name (a row error prints that in its own column)
    hint: str | None = None
    conflict: bool = False  # a clash with other bookings (exit 8) rather than bad input (exit 6)

    @property
    def text(self) -> str:
        """The message with the field it names in front, as a command's error prints it."""
        return f"{self.field}: {self.message}"


# -- pathway (rule 4) ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PathwayChoice:
    pathway: PathwayFacts | None
    warning: str | None = None  # only under lenient=True


def choose_pathway(
    session: SessionFacts,
    linked: Sequence[PathwayFacts],
    requested: PathwayFacts | None,
    enrolled: Collection[int],
    *,
    lenient: bool,
    holds_slot: bool = True,
) -> PathwayChoice | Refusal:
    """The booking's pathway, or why there can be none.

    ``linked``: the session's linked, non-archived pathways in display order; ``enrolled``: the ids of the
    client's active enrolments. ``lenient=False`` (interactive booking, import) refuses; ``lenient=True``
    (Calendly) never does: it takes the request as it stands (the client chose it in Calendly), else the
    one active enrolment among the linked pathways, else the only linked pathway, else none with a
    warning. There an archived request counts as none: the caller words that warning, as it knows where
    the request came from. ``holds_slot=False`` is an imported cancelled or past booking, which may name
    an archived pathway (history is kept as it was).
    """
    if requested is not None and requested.archived:
        if lenient:
            requested = None
        elif holds_slot:
            return Refusal("pathway", "pathway_archived", f"{requested.slug!r} is archived and takes no new bookings")
        else:  # history as it was: ``linked`` leaves archived pathways out, so their links cannot be checked
            return PathwayChoice(requested)
    if session.category != "pathway" or (lenient and requested is not None):
        return PathwayChoice(requested)
    if not lenient and not linked:
        return Refusal(
            "session",
            "pathway_required",
            f"{session.title!r} is a pathway session but is linked to no (active) pathway",
            hint=f"link one: `bapp sessions update {session.id} --pathway P`",
        )
    if requested is not None:  # only when not lenient: the lenient form took the request above
        if requested.id not in {pathway.id for pathway in linked}:
            choices = ", ".join(pathway.slug for pathway in linked)
            return Refusal(
                "pathway",
                "pathway_not_linked",
                f"{requested.slug!r} is not linked to {session.title!r}; choose one of: {choices}",
            )
        return PathwayChoice(requested)
    active = [pathway for pathway in linked if pathway.id in enrolled]
    if len(active) == 1:
        return PathwayChoice(active[0])
    if lenient:
        if len(linked) == 1:
            return PathwayChoice(linked[0])
        missing = "no single linked pathway" if linked else "no linked pathway"
        return PathwayChoice(None, f"pathway session {session.title!r} booked without a pathway answer and {missing}")
    reason = "is actively enrolled in several of them" if active else "is not actively enrolled in any of them"
    return Refusal(
        "pathway",
        "pathway_required",
        f"{session.title!r} needs a pathway and the client {reason}; choose one of: "
        + ", ".join(pathway.slug for pathway in (active or linked)),
        hint="pass --pathway P",
    )


# -- status from the price (rule 8) --------------------------------------------------------------------


def price_status(price: Decimal, *, paid: bool = False) -> tuple[str, str]:
    """(status, payment_status) of a new booking: free → ("confirmed", "not_required"); priced and paid →
    ("confirmed", "paid"); priced → ("pending", "unpaid")."""
    if price <= 0:
        return "confirmed", "not_required"
    return ("confirmed", "paid") if paid else ("pending", "unpaid")


def restored_status(*, end: dt.datetime, now: dt.datetime, amount: Decimal, payment_status: str, was: str = "") -> str:
    """The status a no-show returns to when its mark is taken back (`bookings no-show --undo`, Calendly's
    ``invitee_no_show.deleted``): completed once the booking has ended; before that, the status it had before the
    mark (``was``, where it is known) if confirmed or completed: staff may confirm a priced booking unpaid, and a mark
    taken back as a mistake does not take that back; else the active status its price and payment give (rule 8:
    pending while a priced booking is unpaid, else confirmed)."""
    kept = was if was in ("confirmed", "completed") else price_status(amount, paid=payment_status != "unpaid")[0]
    return "completed" if end <= now else kept


# -- overlaps (rule 6) ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class NearbyBooking:
    """An active booking of the same builder or client near the new one (a superset is fine: the exact
    intersection is checked here)."""

    reference: str
    start: dt.datetime
    end: dt.datetime
    session_type_id: int
    pending: bool = False  # still waiting for Calendly's answer (services.booking.PENDING_STATES)
    # how messages name it instead of by its reference: an import's own booking, which a refused file never creates
    name: str = ""


def span_text(start: dt.datetime, end: dt.datetime) -> str:
    """A booking's time in messages: ``2026-01-05T10:00:00Z–11:00Z``; an end on another day (in UTC) with its date,
    ``2026-01-05T23:30:00Z–2026-01-06T00:30:00Z``, where ``–00:30Z`` read as the start's day, before it began."""
    end = end.astimezone(dt.UTC)
    until = instant_text(end) if end.date() != start.astimezone(dt.UTC).date() else f"{end:%H:%M}Z"
    return f"{instant_text(start)}–{until}"


def _intersecting(bookings: Sequence[NearbyBooking], start: dt.datetime, end: dt.datetime) -> list[NearbyBooking]:
    near = [booking for booking in bookings if booking.start < end and booking.end > start]
    return sorted(near, key=lambda booking: (booking.start, booking.reference))


def find_clash(
    session: SessionFacts,
    start: dt.datetime,
    end: dt.datetime,
    *,
    builder_email: str | None,
    builder_bookings: Sequence[NearbyBooking],
    buffer_minutes: int,
    client_email: str | None,
    client_bookings: Sequence[NearbyBooking],
) -> Refusal | None:
    """Rule 6 for a booking of ``session`` over [start, end), or None when it fits.

    ``builder_bookings`` / ``client_bookings``: the active bookings of the builder and of the client near
    that span (however the caller found them); without a builder (``builder_email`` None), a group
    session's own bookings there, so that its seats are still counted. The builder's are checked with the
    buffer on both sides; a group session's bookings at the same start share the slot until
    ``invitee_limit`` is reached. The earliest clash is the one reported: the builder's first, then the
    group's limit, then the client's.
    """
    mine = span_text(start, end)
    buffer = dt.timedelta(minutes=buffer_minutes)
    clashes = _intersecting(builder_bookings, start - buffer, end + buffer)
    if session.kind == "group":
        same_slot = [other for other in clashes if other.session_type_id == session.id and other.start == start]
        clashes = [other for other in clashes if other not in same_slot]
        limit = session.invitee_limit
        # without a builder the bookings given are the session's own: only their seats count
        if (not clashes or builder_email is None) and limit is not None and len(same_slot) >= limit:
            return _overlap(f"group session {session.title!r} at {mine} is full ({limit} invitees)")
    if clashes and builder_email is not None:
        with_buffer = f" (with a {buffer_minutes}-minute buffer)" if buffer_minutes else ""
        return _clash(f"builder {builder_email}", clashes[0], mine + with_buffer)
    if client_email is not None and (clashes := _intersecting(client_bookings, start, end)):
        return _clash(f"client {client_email}", clashes[0], mine)
    return None


def _overlap(message: str, other: NearbyBooking | None = None) -> Refusal:
    """Rule 6's refusal (exit 8): a full group session, or a clash with ``other``."""
    hint = "pick another time" if other is None else PENDING_HINT if other.pending else OVERLAP_HINT
    return Refusal("start", "overlap", message, hint=hint, conflict=True)


def _clash(who: str, other: NearbyBooking, mine: str) -> Refusal:
    span, booking = span_text(other.start, other.end), other.name or f"booking {other.reference}"
    return _overlap(f"{who} already has {booking} at {span} overlapping {mine}", other)


# -- skill progress --------------------------------------------------------------------------------------

PROGRESS_ORDER = ("not_started", "in_progress", "completed")


@dataclass(frozen=True)
class ProgressState:
    """A client's progress in one skill: the status and the stamps it implies."""

    status: str = "not_started"
    started_at: dt.datetime | None = None
    completed_at: dt.datetime | None = None
    completion_method: str | None = None
    validated_by_id: int | None = None
    attempts: int = 0
    last_attempt_at: dt.datetime | None = None


PROGRESS_FIELDS = tuple(field.name for field in fields(ProgressState))  # the progress row's columns of the same names


def progress_advances(current: str, wanted: str) -> bool:
    """Whether assigning ``wanted`` moves progress at ``current`` forward (assignment never goes back;
    going back is an explicit reset)."""
    return PROGRESS_ORDER.index(wanted) > PROGRESS_ORDER.index(current)


def assigned_pathway(linked: Collection[int], enrolled: Collection[int]) -> int | None:
    """The pathway a progress row is assigned under when none is named: the one pathway linked to the skill
    that the client is enrolled in, if exactly one."""
    candidates = [pathway_id for pathway_id in linked if pathway_id in enrolled]
    return candidates[0] if len(candidates) == 1 else None


def settle_progress(state: ProgressState, *, now: dt.datetime) -> ProgressState | Refusal:
    """Fill in what the status implies, refusing what contradicts it.

    A started or completed skill has a start time (its completion's, else now). A completed one has its
    completion time (now unless given), a method (``builder_validation`` when a validator is named, else
    ``manual``; ``builder_validation`` needs the validator), at least one attempt and a last attempt time
    (its completion's). Only a completed skill has a completion time, method or validator.
    """
    if state.status == "completed":
        method = state.completion_method or ("builder_validation" if state.validated_by_id is not None else "manual")
        if method == "builder_validation" and state.validated_by_id is None:
            return Refusal("validated_by", "missing_validator", "a builder_validation completion needs validated_by")
        completed_at = state.completed_at or now
        state = replace(
            state,
            completed_at=completed_at,
            completion_method=method,
            last_attempt_at=state.last_attempt_at or completed_at,
            attempts=state.attempts or 1,
        )
    else:
        for name, given in (
            ("completed_at", state.completed_at),
            ("completed_via", state.completion_method),
            ("validated_by", state.validated_by_id),
        ):
            if given is not None:
                return Refusal(name, "completion_without_completed", "only a completed skill has this")
    if state.status != "not_started" and state.started_at is None:
        state = replace(state, started_at=state.completed_at or now)
    return state


def move_progress(
    state: ProgressState,
    status: str,
    *,
    now: dt.datetime,
    completion_method: str | None = None,
    validated_by_id: int | None = None,
) -> ProgressState | Refusal:
    """A change made now (``skills assign|start|complete|reset``): completing counts a new attempt, stamped
    now with its method and validator, unless the count is at its bound; starting stamps the start once;
    not_started is :func:`reset_progress`."""
    if status == "not_started":
        return reset_progress(state)
    if status == "completed":
        if state.attempts >= MAX_INT32:  # one more overflowed PostgreSQL's column; SQLite's held what no import takes
            return Refusal("attempts", "attempts_at_bound", f"{state.attempts} attempts already, the most bapp counts")
        state = replace(
            state,
            completed_at=now,
            completion_method=completion_method,
            validated_by_id=validated_by_id,
            attempts=state.attempts + 1,
            last_attempt_at=now,
        )
    return settle_progress(replace(state, status=status), now=now)


def reset_progress(state: ProgressState) -> ProgressState:
    """Back to not_started (``skills reset``): attempts stay as history; the stamps of the status go."""
    return ProgressState(attempts=state.attempts, last_attempt_at=state.last_attempt_at)

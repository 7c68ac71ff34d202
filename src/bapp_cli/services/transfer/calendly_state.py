"""What only a backup carries of the two-way Calendly state (docs/reliability.md R8).

Three sections of `export all`, after `bookings` and `badges`, read back only by `import all` of a backup
document (one with its `bapp` header) — never by a per-kind import:

- `calendly_bookings`: the write-through state of each booking that has one (`calendly_state`, attempts,
  request time, cancel/reschedule/join URLs, the no-show URI and time, what a hold made), keyed by the
  booking's reference. A plain `import bookings` refuses these columns: a row saying `requested` would make
  `calendly reconcile` send a real booking to Calendly (one saying what a hold made, delete an account), so
  only a restore of what bapp itself recorded may set it.
- `calendly_invitations`: the single-use scheduling links (`bookings link`), open or used, keyed by URL.
- `webhook_inbox`: the deliveries still *pending* in the inbox. They were accepted (Calendly got its 2xx
  and will not send them again), so leaving them behind would drop them (R8). Applied rows are a log, like
  the audit log, and stay behind.

A restore keeps ids; a merge into a database with data matches on the natural keys and ignores ids.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Annotated, Any, Literal, Required

from pydantic import Field, StringConstraints
from sqlalchemy import String, cast, func, or_, select, update
from sqlalchemy.orm import Session
from typing_extensions import TypedDict

from bapp_cli.db.domains import MAX_INBOX_BODY, MAX_INBOX_ERROR, MAX_INT32
from bapp_cli.db.models import CALENDLY_STATES, Booking, CalendlyInvitation, SessionType, User, WebhookDelivery
from bapp_cli.errors import BappError
from bapp_cli.services.calendly_write import restore_account_stamps
from bapp_cli.services.people import normalise_email
from bapp_cli.services.plain_text import headers_without_controls, json_with_controls_escaped
from bapp_cli.services.transfer.catalogue import Wide
from bapp_cli.services.transfer.formats import RowError, SourceRow, object_row
from bapp_cli.services.transfer.importer import (
    CLIENT_IDS,
    CREATED,
    UNCHANGED,
    UPDATED,
    Email,
    IdOrKey,
    Int32,
    KindImporter,
    RowId,
    RowResult,
    When,
    problem,
    refusal,
)
from bapp_cli.services.transfer.store import exported, rows_keyed

Reference = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=16)]


class CalendlyBookingRow(TypedDict, total=False):
    reference: Required[Reference]
    calendly_state: Literal["requested", "unknown", "booked", "failed"] | None
    calendly_attempts: Annotated[int, Field(ge=0, le=MAX_INT32)] | None
    calendly_requested_at: When | None
    calendly_cancel_url: Wide | None
    calendly_reschedule_url: Wide | None
    calendly_join_url: Wide | None
    calendly_no_show_uri: Wide | None
    calendly_no_show_at: When | None
    calendly_hold_made: dict[str, Any] | None


# the booking columns of the write-through state: a backup restores them, `import bookings` refuses them
WRITE_STATE_COLUMNS = tuple(CalendlyBookingRow.__annotations__)[1:]
_INSTANT_COLUMNS = ("calendly_requested_at", "calendly_no_show_at")
_STATE_COLUMNS = [getattr(Booking, name) for name in WRITE_STATE_COLUMNS]
# a booking has a write-through state when any of its columns says something (the attempts: not 0)
_HAS_STATE = or_(
    Booking.calendly_attempts != 0,
    *(column.is_not(None) for column in _STATE_COLUMNS if column.key != "calendly_attempts"),
)


# -- calendly_bookings ------------------------------------------------------------------------------------

assert CALENDLY_STATES == ("requested", "unknown", "booked", "failed")


class CalendlyBookingImporter(KindImporter):
    """Sets the write-through state of bookings the same document's `bookings` section (or the database)
    holds. A restore sets every column of the state, so it is exact; a merge into a database with data
    sets it only on bookings that have none yet (the database's own state is newer than a backup's)."""

    kind = "calendly_bookings"
    schema = CalendlyBookingRow

    def apply(self, rows: Sequence[SourceRow]) -> list[RowResult]:
        valid, results = self.validate(rows)
        wanted: list[tuple[SourceRow, str, dict[str, Any]]] = []
        for row, values in valid:
            state = {name: values.get(name) or None for name in WRITE_STATE_COLUMNS}  # blank text is none
            errors: list[RowError] = []  # each bad instant is listed, under its column
            for name in _INSTANT_COLUMNS:
                try:
                    state[name] = self.instant(values.get(name), name)
                except BappError as exc:
                    errors.append(problem(exc, name, row.line))
            if errors:
                results.append(RowResult(row, errors=errors))
                continue
            state["calendly_attempts"] = values.get("calendly_attempts") or 0
            wanted.append((row, values["reference"].upper(), state))
        query = select(Booking.reference, Booking.id, _HAS_STATE, *_STATE_COLUMNS)
        found: dict[str, Sequence[Any]] = {
            row[0]: row[1:] for row in rows_keyed(self.session, query, [key for _, key, _ in wanted])
        }
        changes: list[dict[str, Any]] = []
        for row, reference, state in wanted:
            existing = found.get(reference)
            if existing is None:
                results.append(RowResult(row, errors=[RowError(row.line, "reference", f"no booking {reference!r}")]))
                continue
            booking_id, has_state, *current = existing
            # Merging into a database that has its own state for this booking keeps it: that state is newer
            # than any backup of it (a stale `requested` must not make reconcile send it again).
            kept = not self.restore and has_state
            # (instants compare as instants: the database hands them back aware, as `self.instant` reads them)
            if kept or all(old == state[name] for name, old in zip(WRITE_STATE_COLUMNS, current, strict=True)):
                results.append(RowResult(row, outcome=UNCHANGED))
                continue
            changes.append({"id": booking_id, **state})
            results.append(RowResult(row, outcome=UPDATED))
        if changes:
            self.session.execute(update(Booking), changes)
        if self.restore:  # a merge keeps the stamps of the accounts the database holds
            restore_account_stamps(self.session, [change["id"] for change in changes if change["calendly_hold_made"]])
        return results


def export_calendly_bookings(session: Session) -> Iterator[dict[str, Any]]:
    """The write-through state of every booking that has any, by reference."""
    query = select(Booking.reference, *_STATE_COLUMNS).where(_HAS_STATE).order_by(Booking.reference)
    return exported(session, ("reference", *WRITE_STATE_COLUMNS), query)


# -- calendly_invitations ---------------------------------------------------------------------------------


class InvitationRow(TypedDict, total=False):
    id: RowId | None
    client: Required[Email]
    session: Required[IdOrKey]
    booking_url: Required[Wide]
    status: Literal["open", "used"] | None
    booking: Reference | None
    created_at: When | None
    used_at: When | None


INVITATION_COLUMNS = tuple(InvitationRow.__annotations__)


class InvitationImporter(KindImporter):
    kind = "calendly_invitations"
    schema = InvitationRow

    def __post_init__(self) -> None:
        # a session type by its id, slug or Calendly URI, as a backup names it (no slug is digits alone, so
        # none is another type's id: session_types.check_session_slug)
        named = select(SessionType.id, SessionType.slug, SessionType.calendly_uri)
        self.sessions: dict[str, int] = {
            name: type_id for type_id, *names in self.session.execute(named) for name in (str(type_id), *names) if name
        }

    def apply(self, rows: Sequence[SourceRow]) -> list[RowResult]:
        def settle(row: SourceRow, values: dict[str, Any]) -> dict[str, Any]:
            values["client"] = normalise_email(values["client"], field="client")
            values["booking"] = (values.get("booking") or "").upper() or None
            values["created_at"] = self.instant(values.get("created_at"), "created_at") or self.now
            return values | {"used_at": self.instant(values.get("used_at"), "used_at")}

        parsed, results = self.settled(rows, settle)
        clients = self._ids(CLIENT_IDS, parsed, "client")
        bookings = self._ids(select(Booking.reference, Booking.id), parsed, "booking")
        held = self._ids(select(CalendlyInvitation.booking_url, CalendlyInvitation.id), parsed, "booking_url")
        for row, values in parsed:
            session = self.renamed.get(("session", values["session"]), values["session"])  # a restore's converted
            found = {"client": clients.get(values["client"]), "session": self.sessions.get(session)}
            if values["booking"]:
                found["booking"] = bookings.get(values["booking"])
            errors = [
                RowError(row.line, name, f"no {'client with e-mail' if name == 'client' else name} {values[name]!r}")
                for name, row_id in found.items()
                if row_id is None
            ]
            if errors:
                results.append(RowResult(row, errors=errors))
                continue
            if values["booking_url"] in held:
                # a link already here (or earlier in the file) keeps what it is: the database's own record
                # is newer than a backup's (an `open` must not reopen a used link)
                results.append(RowResult(row, outcome=UNCHANGED))
                continue
            invitation = CalendlyInvitation(
                id=values.get("id") if self.restore else None,  # a restore keeps it (one given twice: `validate`)
                client_id=found["client"],
                session_type_id=found["session"],
                booking_id=found.get("booking"),
                booking_url=values["booking_url"],
                status=values.get("status") or "open",
                created_at=values["created_at"],
                used_at=values["used_at"],
            )
            self.session.add(invitation)
            results.append(RowResult(row, outcome=CREATED))
            self.session.flush()
            held[values["booking_url"]] = invitation.id
        return results

    def _ids(self, query: Any, parsed: Sequence[tuple[SourceRow, dict[str, Any]]], name: str) -> dict[str, int]:
        """{key: id} of the rows' values of `name` that are there; `query` selects (key, id)."""
        return {row[0]: row[1] for row in rows_keyed(self.session, query, [values[name] for _, values in parsed])}


def export_invitations(session: Session) -> Iterator[dict[str, Any]]:
    # the session by the key that survives a restore best: its Calendly URI, else its slug, else its id
    session_key = func.coalesce(
        func.nullif(SessionType.calendly_uri, ""), func.nullif(SessionType.slug, ""), cast(SessionType.id, String)
    )
    named = {"client": User.email, "session": session_key, "booking": Booking.reference}
    query = (
        select(*(named[name] if name in named else getattr(CalendlyInvitation, name) for name in INVITATION_COLUMNS))
        .join(User, User.id == CalendlyInvitation.client_id)
        .join(SessionType, SessionType.id == CalendlyInvitation.session_type_id)
        .outerjoin(Booking, Booking.id == CalendlyInvitation.booking_id)
        .order_by(CalendlyInvitation.id)
    )
    return exported(session, INVITATION_COLUMNS, query)


# -- webhook_inbox -----------------------------------------------------------------------------------------


class InboxRow(TypedDict, total=False):
    id: RowId | None
    event: Required[Annotated[str, StringConstraints(max_length=64)]]
    source: Required[Literal["receiver", "apply", "pull"]]
    body: Required[Annotated[str, StringConstraints(max_length=MAX_INBOX_BODY)]]
    body_sha256: Required[Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]]
    headers: dict[str, Annotated[str, StringConstraints(max_length=500)]] | None
    invitee_uri: Wide | None
    status: Literal["pending", "applied"] | None
    received_at: Required[When]
    attempts: Int32 | None
    last_attempt_at: When | None
    last_error: Annotated[str, StringConstraints(max_length=MAX_INBOX_ERROR)] | None
    applied_at: When | None
    outcome: Annotated[str, StringConstraints(max_length=200)] | None


class InboxImporter(KindImporter):
    """Pending deliveries, kept as received; one already in the inbox (by its body's digest) is left as is."""

    kind = "webhook_inbox"
    schema = InboxRow

    def apply(self, rows: Sequence[SourceRow]) -> list[RowResult]:
        valid, results = self.validate([_as_kept(row) if row.problem else row for row in rows])
        query = select(WebhookDelivery.body_sha256)
        digests = {row[0] for row in rows_keyed(self.session, query, [values["body_sha256"] for _, values in valid])}
        for row, values in valid:
            if values["body_sha256"] in digests:
                results.append(RowResult(row, outcome=UNCHANGED))
                continue
            try:
                stamps = ("received_at", "last_attempt_at", "applied_at")
                instants = {name: self.instant(values.get(name), name) for name in stamps}
            except BappError as exc:
                results.append(refusal(row, exc))
                continue
            kept = ("event", "source", "body", "body_sha256", "last_error", "outcome")  # as they were, or None
            delivery = WebhookDelivery(
                id=values.get("id") if self.restore else None,
                **{name: values.get(name) for name in kept},
                headers=dict(values.get("headers") or {}),
                invitee_uri=values.get("invitee_uri") or None,
                status=values.get("status") or "pending",
                attempts=values.get("attempts") if values.get("attempts") is not None else 1,
                **instants,
            )
            self.session.add(delivery)
            results.append(RowResult(row, outcome=CREATED))
            digests.add(values["body_sha256"])
        self.session.flush()
        return results


def export_inbox(session: Session) -> Iterator[dict[str, Any]]:
    """The deliveries still pending, oldest first, each as the inbox now stores one on arrival (`kept_delivery`)."""
    columns = [getattr(WebhookDelivery, name) for name in InboxRow.__annotations__]
    query = select(*columns).where(WebhookDelivery.status == "pending").order_by(WebhookDelivery.id)
    return (kept_delivery(row._asdict()) for row in session.execute(query))


def kept_delivery(delivery: dict[str, Any]) -> dict[str, Any]:
    """An inbox row as the inbox now stores one on arrival: its kept headers (the sender's unsigned text) without
    control characters (238a4e2), its body's raw DEL and C1 characters as \\u escapes (b37c999), the same document.
    A row an older bapp parked may hold either raw, which no text bapp stores may: its export writes it so, and the
    import of a backup written before that reads it so, where it refused the row and the backup did not restore."""
    headers, body = headers_without_controls(delivery["headers"] or {}), json_with_controls_escaped(delivery["body"])
    return delivery | {"headers": headers, "body": body}


def _as_kept(row: SourceRow) -> SourceRow:
    """A backup's inbox row the reader refused, read again once cleaned as `kept_delivery`: taken, or refused for
    what is still wrong (a control character elsewhere is named in its own field, not in the body that had one
    too); a row not of an inbox row's shape is left as refused."""
    item, headers = row.original, row.original.get("headers") or {}
    texts = isinstance(headers, dict) and all(isinstance(value, str) for value in headers.values())
    if not texts or not isinstance(item.get("body"), str):
        return row
    return object_row(row.line, kept_delivery({**item, "headers": headers}))

"""Bookings in bulk: the import that backfills history, and the export.

Imports are backfills (CLI.md): past starts and any status are accepted, so the rules about making a new
reservation *now* (bookable session, builder accepting, notice and advance windows, future start) do not
apply. Every rule about what a booking *is* does, per row, exactly as `bookings create` checks it:

- the session exists (by `session`: id, slug or Calendly URI; or `session_id`); the duration (from
  `end_time`, default the session's) is one the session offers and at most a day;
- the client's e-mail is valid; an unknown client is created with the booking, as a free booking creates
  an account (rule 3) — `create_clients=False` refuses such rows instead; `client_name` names them;
- instants are ISO 8601; a naive one is read in the row's `client_timezone` (default `--timezone`);
- the pathway (rule 4): a *pathway* session needs one of its linked pathways; when the row gives none,
  the client's one active enrolment among them is used, else the row is refused listing the choices;
  any booking may carry a pathway, and the client is enrolled in it (coach: the booking's builder, who
  also coaches an enrolment that has none, as `enrol` does) unless the booking is cancelled; an archived
  pathway takes no active (pending/confirmed) bookings;
- answers (rule 5) validate against the session's questions — except Calendly rows (`source` calendly),
  whose answers are normalised without refusal, as the Calendly door does (`allow_any_answers` treats
  every row so, for backfills from systems that never asked the questions); a row giving the booking it
  updates its own session, answers, or start and end, keeps them unchecked against the session's questions
  and durations as they are now, so an export imports back unchanged;
- overlaps (rule 6), for rows that end up pending or confirmed, unless `allow_overlap`: against the
  database and against every earlier row of the file; the first row in the file keeps the slot;
- references (the natural key), invitee URIs and idempotency keys are unique; a row without a reference
  gets one derived from client, session and start, so importing the same file twice changes nothing;
- defaults follow rule 8: status from the price (confirmed when free, else pending), payment
  `not_required` when the amount is 0 else `unpaid`, amount and currency from the session.

A row that matches an existing booking updates only the columns the file has (an empty cell clears a
nullable column). Restores (`import all` into an empty database) take rows as recorded: ids, creation
times, answers and pathways are kept as they are and the catalogue-dependent rules are not re-run.

How (issue 16, README "Import"): rows are read and validated in batches (one pydantic TypeAdapter per
batch); each distinct reference of a batch (client e-mail, session, builder, pathway) is resolved once;
the rows that take an active slot are staged in a temporary table, and one query per person (builder,
client) finds the active bookings near each in the database, while the slots the batch's accepted rows
hold are kept by person in start order and bisected; the rule book
(`services.rule_book`) then decides each row in file order exactly as `bookings create` would: pathway,
status from the price, overlap and its message. What was accepted is written set-based (`db.bulk`).
Nothing outlives a batch but the counts, so memory stays flat however long the file.
"""

from __future__ import annotations

import bisect
import datetime as dt
import hashlib
import operator
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Annotated, Any, Literal, NotRequired, Required

from pydantic import BeforeValidator, StringConstraints
from sqlalchemy import and_, delete, func, select
from sqlalchemy.orm import Session
from typing_extensions import TypedDict

from bapp_cli.db import bulk
from bapp_cli.db.domains import MAX_INT32, QUESTION_LIMIT, REASON_LIMIT, as_status
from bapp_cli.db.models import (
    Booking,
    BuilderProfile,
    ClientProfile,
    Enrolment,
    Pathway,
    SessionType,
    SessionTypePathway,
    User,
)
from bapp_cli.errors import BappError, InvalidInput
from bapp_cli.services import answers
from bapp_cli.services.answers import AnswerInput, Question, answers_from_calendly, questions_from, validate_answers
from bapp_cli.services.booking import (
    MAX_BOOKING_MINUTES,
    PENDING_STATES,
    REFERENCE_ALPHABET,
    REFERENCE_LENGTH,
    allowed_durations,
)
from bapp_cli.services.builders import MAX_BUFFER_MINUTES, unreadable_setting
from bapp_cli.services.enrolment import enrolment_day
from bapp_cli.services.instants import LATEST_YEAR, get_zone, out_of_range
from bapp_cli.services.people import normalise_email
from bapp_cli.services.plain_reads import ANSWERS, session_key
from bapp_cli.services.plain_reads import EXPORT_COLUMNS as EXPORT_COLUMNS  # the record `export bookings` writes
from bapp_cli.services.plain_text import nfc
from bapp_cli.services.rule_book import (
    ACTIVE_STATUSES,
    NearbyBooking,
    PathwayFacts,
    Refusal,
    SessionFacts,
    choose_pathway,
    find_clash,
    price_status,
)
from bapp_cli.services.session_values import parse_currency
from bapp_cli.services.transfer import catalogue, store
from bapp_cli.services.transfer.calendly_state import WRITE_STATE_COLUMNS
from bapp_cli.services.transfer.formats import RowError, SourceRow
from bapp_cli.services.transfer.importer import (
    CREATED,
    UNCHANGED,
    UPDATED,
    Email,
    IdOrKey,
    Int32,
    KindImporter,
    Money,
    RowId,
    RowResult,
    Touched,
    When,
    problem,
)

WRITE_STATE_REFUSAL = (
    "is Calendly's write-through state, restored only by `bapp import all` of a backup, never by a bookings import"
)
REFERENCE_PATTERN = re.compile(r"^[A-Z0-9][A-Z0-9-]{0,15}$")
# The bookings indexes no statement of an import reads (its lookups go by reference, and by person and time)
UNREAD_INDEXES = ("ix_bookings_start_time", "ix_bookings_pathway_time")


# `no-show` too, as every door reads a status (db.domains.STATUS_SPELLINGS); the case is as exact as every column's
Status = Annotated[Literal["pending", "confirmed", "completed", "cancelled", "no_show"], BeforeValidator(as_status)]
AnswerText = Annotated[str, StringConstraints(max_length=answers.TEXT_LIMIT)]


class AnswerItem(TypedDict):
    question: Required[Annotated[str, StringConstraints(max_length=QUESTION_LIMIT)]]
    answer: NotRequired[AnswerText | list[AnswerText] | None]  # none: null, as TOML (which has no null) writes it
    position: NotRequired[Int32 | None]


class BookingRow(TypedDict, total=False):
    """A booking row: the keys of the booking record; `session_title` and `category` are informational."""

    id: RowId | None
    reference: Annotated[str, StringConstraints(strip_whitespace=True, max_length=16)] | None
    client: Required[Email]
    client_name: Annotated[str, StringConstraints(strip_whitespace=True, max_length=200), BeforeValidator(nfc)] | None
    builder: Email | None
    session: IdOrKey | None
    session_id: RowId | None
    session_title: Any
    category: Any
    start_time: Required[When]
    end_time: When | None
    client_timezone: Annotated[str, StringConstraints(strip_whitespace=True, max_length=64)] | None
    status: Status | None
    payment_status: Literal["not_required", "unpaid", "paid", "refunded"] | None
    amount: Money | None
    currency: Annotated[str, StringConstraints(strip_whitespace=True, max_length=3)] | None
    pathway: Annotated[str, StringConstraints(strip_whitespace=True, max_length=64)] | None
    # one member, not list | Json[list]: a union's errors named each member's type and gave two for one cell
    custom_question_responses: Annotated[list[AnswerItem], BeforeValidator(catalogue.json_value)] | None
    calendly_event_uri: catalogue.Wide | None
    calendly_invitee_uri: catalogue.Wide | None
    idempotency_key: Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)] | None
    source: Literal["cli", "import", "calendly"] | None
    created_at: When | None
    cancellation_reason: Annotated[str, StringConstraints(max_length=REASON_LIMIT)] | None
    cancelled_at: When | None
    request_fingerprint: Annotated[str, StringConstraints(strip_whitespace=True, max_length=64)] | None
    remote_updated_at: When | None


# -- reference data, loaded once per import -----------------------------------------------------------


@dataclass(frozen=True)
class SessionInfo:
    facts: SessionFacts  # what the rule book decides by
    key: str  # the natural key used in derived references: Calendly URI, else slug, else id
    duration: int
    span: dt.timedelta  # the duration, as added to a start
    durations: tuple[int, ...]
    currency: str
    builder_id: int | None
    questions: tuple[Question, ...]
    asks: bool  # an enabled required question: a booking without answers is refused


class References:
    """The small tables a booking row refers to, read once: session types, pathways, builders."""

    def __init__(self, session: Session, pathways: Iterable[Any]) -> None:
        self.sessions: dict[int, SessionInfo] = {}
        self.session_names: dict[str, int] = {}  # Calendly URI, or slug (unique since migration 0007) → id
        for row in session.execute(select(SessionType).order_by(SessionType.id)).scalars():
            questions = questions_from(row.custom_questions)
            self.sessions[row.id] = SessionInfo(
                facts=SessionFacts.of(row),
                key=row.calendly_uri or row.slug or str(row.id),
                duration=row.duration_minutes,
                span=dt.timedelta(minutes=row.duration_minutes),
                durations=tuple(allowed_durations(row)),
                currency=row.currency,
                builder_id=row.builder_id,
                questions=tuple(questions),
                asks=any(question.required and question.enabled for question in questions),
            )
            self.session_names.update((name, row.id) for name in (row.calendly_uri, row.slug) if name)
        self.pathways_by_id = {row.id: PathwayFacts(*row) for row in pathways}  # KindImporter.pathways' rows
        self.linked: dict[int, list[PathwayFacts]] = {}  # session id → non-archived linked pathways, in order
        links = select(SessionTypePathway.session_type_id, SessionTypePathway.pathway_id).join(Pathway)
        links = links.where(Pathway.archived.is_(False)).order_by(Pathway.position, Pathway.slug)
        for session_type_id, pathway_id in session.execute(links):
            self.linked.setdefault(session_type_id, []).append(self.pathways_by_id[pathway_id])
        query = select(User.id, User.email, BuilderProfile.buffer_minutes).join(BuilderProfile)
        builders = session.execute(query).all()
        # by builder user id (None is no builder's): the buffer in minutes (read through `buffer`), the e-mail
        self.buffers: dict[int | None, int] = {user_id: buffer for user_id, _, buffer in builders}
        self.builder_emails: dict[int | None, str] = {user_id: email for user_id, email, _ in builders}
        # for messages: also the e-mail of a session's builder who has no builder profile
        missing = {info.builder_id for info in self.sessions.values()} - set(self.builder_emails)
        self.builder_emails.update(store.rows_keyed(session, select(User.id, User.email), missing))

    def buffer(self, owner: int | None) -> int:
        """Rule 6's buffer in minutes of the builder a row books (`owner`, their user id; None: none, 0 minutes), held
        to the bounds `builders update` keeps it in: a larger one overflowed the overlap arithmetic (R9). Checked as the
        rows reach each builder, not as all are read: another builder's settings, or the notice and horizon the import
        does not apply, do not stop it."""
        if not 0 <= (value := self.buffers.get(owner, 0)) <= MAX_BUFFER_MINUTES:
            raise unreadable_setting(self.builder_emails[owner], "buffer_minutes", value)
        return value


# each digest byte picks a letter; the bias of 256 mod 31 does not matter for uniqueness
_LETTERS = bytes(ord(REFERENCE_ALPHABET[byte % len(REFERENCE_ALPHABET)]) for byte in range(256))


def derived_reference(email: str, session_key: str, start: dt.datetime) -> str:
    """A stable reference for a row that has none: the same client, session and start give the same one."""
    digest = hashlib.blake2b(f"{email}\n{session_key}\n{start.isoformat()}".encode(), digest_size=REFERENCE_LENGTH)
    return "BK-" + digest.digest().translate(_LETTERS).decode()


# -- one row, after validation -----------------------------------------------------------------------


@dataclass(slots=True)
class Draft:
    row: SourceRow
    given: Mapping[str, Any]  # the validated row: which columns it has decides what an update touches
    email: str
    session: SessionInfo
    columns: dict[str, Any]  # the booking columns the file's cells set, as stored (None: empty or absent); instants
    key: str  # the reference: given, else derived, else (settled by the batch) the invitee URI's booking's
    held: list[tuple[RowError, tuple[str, ...]]]  # refusals an update that leaves these columns is spared (`_draft`)
    # settled by the batch
    existing: Mapping[str, Any] | None = None
    outcome: str = UNCHANGED
    values: dict[str, Any] = field(default_factory=dict)


# The booking columns an import compares and sets: all but the id, the reference (the key), the two
# timestamps and Calendly's write-through state (restored only by `import all`).
COMPARED = tuple(
    column.name
    for column in Booking.__table__.c
    if column.name not in ("id", "reference", "created_at", "updated_at", *WRITE_STATE_COLUMNS)
)
WRITE_COLUMNS = ("reference", *COMPARED, "created_at", "updated_at")
_compared = operator.itemgetter(*COMPARED)
SLOT_COLUMNS = frozenset({"start_time", "end_time", "status", "client_id", "builder_id", "session_type_id"})
# File columns an update takes when the row has them → the booking column each sets (most share its name).
# A new session brings its builder unless the row names one.
COLUMN_OF = {
    **dict.fromkeys(("builder", "session", "session_id"), "builder_id"),
    "pathway": "pathway_id",
    # the rest are named in the file as in the table; the client, session and times are the row's own
    **{name: name for name in COMPARED if name not in ("client_id", "session_type_id", "start_time", "end_time")},
}


class BookingImporter(KindImporter):
    kind = "bookings"
    schema = BookingRow
    required = (("client",), ("session", "session_id"), ("start_time",))
    refused = dict.fromkeys(WRITE_STATE_COLUMNS, WRITE_STATE_REFUSAL)

    def __post_init__(self) -> None:
        # the builders and pathways rows name (KindImporter's), read now rather than first in a later batch's
        # `_lookups`, which runs while the previous batch's insert still has the session (`mover`)
        self.references = References(self.session, self.pathways.values())
        _ = self.builders
        self.dialect = self.session.get_bind().dialect.name
        self.check_overlaps = not self.restore and not self.options.allow_overlap
        # stable keys (CLI.md); an enrolment opened for a client who had done every skill of its pathway is completed
        self.extra = Counter(clients_created=0, enrolled=0, badges_awarded=0, pathways_completed=0)
        # The ids of the clients this import creates, who have no history to complete an enrolment: it holds the
        # users table (db.locks.lock_for_import), so every id after the last one now is its own
        self.new_clients = range((self.session.scalar(select(func.max(User.id))) or 0) + 1, MAX_INT32 + 1)
        # what this import has written: a file's second row for a key an earlier batch wrote is a duplicate
        self.touched = Touched(self.session, Booking.__table__)
        # the indexes dropped and the page cache widened for the import (SQLite): undone after the last batch
        self.untune = bulk.tune_for_backfill(self.session, Booking.__table__, UNREAD_INDEXES)

    def finish(self) -> None:
        self.untune()

    def _client_id(self, email: str) -> int:
        """The client's user id; 0 for one this batch creates (or none yet)."""
        return self.users[email][0] if email in self.users else 0

    # -- per row ---------------------------------------------------------------------------------------

    def _lookups(self, valid: Sequence[tuple[SourceRow, Mapping[str, Any]]]) -> dict[str, dict[Any, Any]]:
        """What each distinct reference cell of the batch names — the client's e-mail normalised, the
        session, the builder's id, the zone's key, the currency, the pathway's id — or the BappError that
        refuses it. Each value is resolved once a batch; nothing outlives the batch."""

        def session(name: str, raw: Any) -> SessionInfo:
            named = self.renamed.get(("session", str(raw).strip()), str(raw))  # a restore's converted `2024`
            _, key = session_key(named)  # read as every command reads it: no slug is digits alone
            session_id = key if isinstance(key, int) else self.references.session_names.get(key, -1)
            if (found := self.references.sessions.get(session_id)) is None:
                raise InvalidInput(f"{name}: no session type {str(raw).strip()!r} (see `bapp sessions list --all`)")
            return found

        resolvers: dict[str, Callable[[Any], Any]] = {
            "client": lambda raw: normalise_email(raw, field="client"),
            "session": lambda raw: session("session", raw),
            "session_id": lambda raw: session("session_id", raw),
            "builder": self.builder,
            "client_timezone": lambda raw: get_zone(raw, field="client_timezone").key,
            "currency": parse_currency,
            "pathway": lambda raw: self.pathway(raw).id,
        }
        lookups: dict[str, dict[Any, Any]] = {}
        for name, resolve in resolvers.items():
            # a column no row gives has no table, so `_draft` does not look at it; but the builder's place checks
            # that a session is given
            if not (raws := {values.get(name) for _, values in valid} - {None}) and name != "builder":
                continue
            table = lookups[name] = {}
            for raw in raws:
                try:
                    table[raw] = resolve(raw)
                except BappError as exc:
                    table[raw] = exc
        return lookups

    def _draft(
        self, row: SourceRow, values: Mapping[str, Any], lookups: dict[str, dict[Any, Any]]
    ) -> Draft | list[RowError]:
        line, get = row.line, values.get
        # a row's errors keep their order (the first is the summary's): client, session, builder, zone, the
        # times, the reference, then the currency's and the pathway's (`late`), the key, then the catalogue's (`held`)
        errors: list[RowError] = []
        late: list[RowError] = []
        # What the session's durations and questions refuse now (answers are required of a new booking only), each
        # with the columns that spare it: a row that updates a booking and gives these as the booking holds them
        # (`_match_existing`) keeps what was taken when it was stored — Calendly's, a backfill's --allow-any-answers,
        # before the catalogue changed — so a booking's own export imports back unchanged.
        held: list[tuple[RowError, tuple[str, ...]]] = []
        named: dict[str, Any] = {}
        for name, table in lookups.items():
            if name == "builder" and get("session") is None and get("session_id") is None:  # after the client's
                errors.append(RowError(line, "session_id", "session: required (an id, slug or Calendly URI)"))
            raw = get(name)
            if raw is None or (name == "session_id" and get("session") is not None):  # `session` wins
                continue
            found = table[raw]
            if isinstance(found, BappError):
                (late if name in ("currency", "pathway") else errors).append(problem(found, name, line))
            else:
                named[name] = found
        info: SessionInfo | None = named.get("session") or named.get("session_id")
        zone = named.get("client_timezone", self.options.timezone)
        # the booking columns the row's cells set, as stored (an empty text cell is no value), and the start, end and
        # creation time, the row's own; `_draft` reads only the columns some row of the batch has (`apply`)
        columns: dict[str, Any] = dict(
            _BLANK_CELLS,
            source=get("source") or "import",
            session_type_id=info.facts.id if info else None,  # the session the held checks below were made against
            builder_id=named.get("builder", info.builder_id if info else None),
            pathway_id=named.get("pathway"),
            client_timezone=zone,
            currency=named.get("currency"),
            amount=get("amount"),
        )
        for name in self.text_cells:
            columns[name] = get(name) or None
        for name in self.instant_cells:
            if (raw := get(name)) is not None:
                try:
                    columns[name] = self.instant(raw, name, zone=zone)
                except BappError as exc:
                    errors.append(problem(exc, name, line))
        start, end = columns["start_time"], columns["end_time"]
        if start is not None and info is not None:
            minutes = info.duration if end is None else (end - start).total_seconds() / 60
            checked = end is not None and not self.restore and columns["source"] != "calendly"
            wrong = None
            if end is not None and end <= start:
                wrong = "must be after start_time"
            elif minutes > MAX_BOOKING_MINUTES:
                wrong = f"a booking lasts at most {MAX_BOOKING_MINUTES} minutes"
            elif start.year == LATEST_YEAR and (ends := start + dt.timedelta(minutes=minutes)).year > LATEST_YEAR:
                wrong = out_of_range(ends)
            elif checked and minutes not in info.durations:
                offered = ", ".join(str(option) for option in info.durations)
                offer = f"a {minutes:g}-minute booking is not offered by {info.facts.title!r} (durations: {offered})"
                held.append((RowError(line, "end_time", offer), ("session_type_id", "start_time", "end_time")))
            if wrong is not None:
                errors.append(RowError(line, "end_time", wrong))
        if (reference := get("reference")) is not None and not REFERENCE_PATTERN.match(reference := reference.upper()):
            errors.append(RowError(line, "reference", f"{reference!r} is not a booking reference (e.g. BK-7Q2M9X4D)"))
        errors += late
        if info is not None:  # none given: refused if the session asks any, unless the row updates a booking
            items = get(ANSWERS)
            try:
                columns[ANSWERS] = self._answers(info, items or [], columns["source"])
            except BappError as exc:
                columns[ANSWERS] = _as_recorded(items or [])
                spared_by = () if items is None else (ANSWERS, "session_type_id")
                # each answer's problem, else the one refusal
                held.append((RowError(line, ANSWERS, "; ".join(map(str, exc.details)) or exc.message), spared_by))
        if get("idempotency_key") == "":
            errors.append(RowError(line, "idempotency_key", "must not be empty"))
        if errors:
            return errors + [error for error, spared_by in held if spared_by]  # missing answers: a new booking's only
        assert info is not None and start is not None
        key = reference or derived_reference(named["client"], info.key, start)
        draft = Draft(row, values, named["client"], info, columns, key, held)
        self._settle_values(draft)  # as a new booking, until the batch finds the one it updates
        return draft

    def _answers(self, info: SessionInfo, items: Sequence[Mapping[str, Any]], source: str) -> list[dict[str, Any]]:
        if self.restore:
            return _as_recorded(items)
        if source == "calendly" or self.options.allow_any_answers:
            return answers_from_calendly(items, info.questions)
        if not items and not info.asks:
            return []
        inputs = [
            AnswerInput(item["question"], "" if (answer := item.get("answer")) is None else answer) for item in items
        ]
        return validate_answers(info.questions, inputs, field="custom_question_responses")

    # -- per batch -------------------------------------------------------------------------------------

    def apply(self, rows: Sequence[SourceRow]) -> list[RowResult]:
        """Validate the batch, resolve its references once, find overlap candidates in SQL, decide each row
        in file order with the rule book (an earlier row keeps the slot), then write what was accepted."""
        # What a batch looks up lives for the batch, so memory stays flat however many clients the file holds:
        # e-mail → (user id, has a client profile, has a name), id 0 for a client this batch creates;
        # client id → pathway id → enrolment status; and (client id, pathway id) → a coachless enrolment's id
        self.users: dict[str, tuple[int, bool, bool]] = {}
        self.enrolments: dict[int, dict[int, str]] = {}
        self.coachless: dict[tuple[int, int], int] = {}
        valid, results = self.validate(rows)
        drafts: list[Draft] = []
        lookups = self._lookups(valid)
        given = set().union(*(values for _, values in valid))  # the columns some row has: `_draft` reads only those
        self.text_cells = [name for name in _TEXT_CELLS if name in given]
        self.instant_cells = [name for name in _INSTANTS if name in given]
        for row, values in valid:
            draft = self._draft(row, values, lookups)
            if isinstance(draft, list):
                results.append(RowResult(row, errors=draft))
            else:
                drafts.append(draft)
        self.mover.wait()  # the previous batch's bookings are in: the session is ours again
        query = select(User.email, User.id, User.name, ClientProfile.id).outerjoin(ClientProfile)
        for email, user_id, name, profile_id in store.rows_keyed(self.session, query, [d.email for d in drafts]):
            self.users[email] = (user_id, profile_id is not None, bool(name))
        drafts = self._match_existing(drafts, results)
        for draft in drafts:
            if draft.existing is not None:
                self._settle_values(draft)
        self._load_enrolments(drafts)
        plan = _Plan(self.enrolments, {order for order, draft in enumerate(drafts) if self._takes_slot(draft)})
        nearby = self._nearby(drafts, plan.takes_slot)
        refusals = [self._decide(order, draft, plan, nearby.get(order, ())) for order, draft in enumerate(drafts)]
        self._write(plan)  # the bookings' insert now runs on the mover's thread: the rest overlaps it
        for draft, refusal in zip(drafts, refusals, strict=True):
            results.append(RowResult(draft.row, outcome=draft.outcome, errors=[refusal] if refusal else []))
        self.extra["clients_created"] += len(plan.new_users)
        return results

    def _load_enrolments(self, drafts: Sequence[Draft]) -> None:
        """The enrolments rule 4 may consult: those of the batch's known clients whose bookings, as the rows
        leave them, have a pathway (a row that leaves it alone keeps the booking's) or are of a pathway session."""
        booked = (draft for draft in drafts if _final(draft)["pathway_id"] or draft.session.facts.category == "pathway")
        wanted = (self._client_id(draft.email) for draft in booked)
        query = select(Enrolment.client_id, Enrolment.pathway_id, Enrolment.status, Enrolment.id, Enrolment.builder_id)
        for client_id, pathway_id, status, enrolment_id, coach in store.rows_keyed(self.session, query, wanted):
            self.enrolments.setdefault(client_id, {})[pathway_id] = status
            if coach is None:
                self.coachless[(client_id, pathway_id)] = enrolment_id

    def _match_existing(self, drafts: list[Draft], results: list[RowResult]) -> list[Draft]:
        """Settle each row's key (its reference) and the booking it updates; enforce the unique keys."""
        # the unique columns some row of the batch gives
        unique = [name for name in ("calendly_invitee_uri", "idempotency_key") if name in self.text_cells]
        owners = {name: self._owners(name, drafts) for name in unique}
        by_uri = owners.get("calendly_invitee_uri", {})
        for draft in drafts if by_uri else ():  # a row without a reference updates the booking that holds its URI
            if draft.given.get("reference") is None and (owner := by_uri.get(draft.columns["calendly_invitee_uri"])):
                draft.key = owner
        query = select(Booking.reference, Booking.id, *(Booking.__table__.c[n] for n in (*COMPARED, "calendly_state")))
        rows = store.rows_keyed(self.session, query, (draft.key for draft in drafts))
        existing = {row.reference: row._mapping for row in rows}
        # column → value → the line that gave it first
        first: dict[str, dict[Any, int]] = {"reference": {}, "calendly_invitee_uri": {}, "idempotency_key": {}}
        kept: list[Draft] = []
        for draft in drafts:
            line, key = draft.row.line, draft.key
            found = existing.get(key)
            # the catalogue's refusals, but of a row that gives the booking it updates its own values (`_draft`); a row
            # they refuse is refused as for a bad cell in `_draft`: it takes none of its keys from the file's later rows
            errors = [e for e, names in draft.held if found is None or any(draft.columns[n] != found[n] for n in names)]
            if not errors:
                # a row without a reference is keyed by its invitee URI's booking, else by its client, session and
                # start: name that column, not a reference the file never gave (nor a refused file ever creates)
                field, what = ("reference", key)
                if draft.given.get("reference") is None:
                    via_uri = key == by_uri.get(draft.columns["calendly_invitee_uri"])
                    field, what = ("calendly_invitee_uri", f"its booking {key}") if via_uri else _BY_CELLS
                if key in first["reference"]:
                    errors.append(RowError(line, field, f"{what} is already on line {first['reference'][key]}"))
                elif found is not None and found["id"] in self.touched:
                    errors.append(RowError(line, field, f"{what} appears earlier in the file"))
                first["reference"].setdefault(key, line)
                for label, owner_of in owners.items():
                    if (value := draft.columns[label]) is None:
                        continue
                    owner = owner_of.get(value)
                    if owner is not None and owner != key:
                        errors.append(RowError(line, label, f"{value!r} already belongs to booking {owner}"))
                    elif value in first[label]:
                        errors.append(RowError(line, label, f"{value!r} is already on line {first[label][value]}"))
                    first[label].setdefault(value, line)
            if errors:
                results.append(RowResult(draft.row, errors=errors))
                continue
            draft.existing = found
            kept.append(draft)
        return kept

    def _owners(self, name: str, drafts: Sequence[Draft]) -> dict[str, str]:
        """The bookings that already hold the rows' values of a unique column: value → reference."""
        query = select(Booking.__table__.c[name], Booking.reference)
        return dict(store.rows_keyed(self.session, query, (draft.columns[name] for draft in drafts)))

    def _settle_values(self, draft: Draft) -> None:
        """The booking as the row leaves it (`draft.values`: what changes) — everything but the pathway,
        which may depend on enrolments earlier rows create, and a new booking's client id, set as it is
        written. A new booking needs nothing of the database: drafting settles every row so, before the
        batch waits for the previous one's insert (the main thread's time to spare), and a row that turns
        out to update a booking is settled again against it."""
        existing, info, given = draft.existing, draft.session, draft.columns
        if existing is None:  # a new booking: rule 8's defaults from the price, the session's duration
            amount = given["amount"] if given["amount"] is not None else info.facts.price
            status, payment = price_status(amount)
            draft.outcome = CREATED
            draft.values = {
                **given,
                "session_type_id": info.facts.id,
                "end_time": given["end_time"] or given["start_time"] + info.span,
                "status": given["status"] or status,
                "payment_status": given["payment_status"] or payment,
                "amount": amount,
                "currency": given["currency"] or info.currency,
            }
            return
        new = {
            "session_type_id": info.facts.id,
            "start_time": given["start_time"],
            # none given: the booking's own duration
            "end_time": given["end_time"] or given["start_time"] + (existing["end_time"] - existing["start_time"]),
            "status": given["status"] or existing["status"],
            "payment_status": given["payment_status"] or existing["payment_status"],
            "amount": given["amount"] if given["amount"] is not None else existing["amount"],
        }
        # the booking's own answers, as its export writes them, stay as stored under the session they were taken for:
        # not trimmed by its questions as they are now. Moved to another session, they are taken as that one asks them.
        own = existing["session_type_id"] == info.facts.id
        if own and (answers := draft.given.get(ANSWERS)) is not None and _as_recorded(answers) == existing[ANSWERS]:
            given[ANSWERS] = existing[ANSWERS]
        new["client_id"] = self._client_id(draft.email)
        for name, value in draft.given.items():
            # a cell with a value, or an empty one that clears a nullable column
            if (value is not None or name in NULLABLE_INPUTS) and (column := COLUMN_OF.get(name)) is not None:
                new[column] = given[column]
        draft.values = {name: value for name, value in new.items() if existing[name] != value}
        draft.outcome = UPDATED if draft.values else UNCHANGED

    # -- overlaps (rule 6): candidates in SQL, the decision in the rule book ------------------------------

    def _takes_slot(self, draft: Draft) -> bool:
        """Checked for overlaps: created or changed in a way that could make it overlap (an amount change
        never does), and active — unless overlaps are allowed, or restored as recorded."""
        moved = draft.outcome == CREATED or (draft.outcome == UPDATED and not SLOT_COLUMNS.isdisjoint(draft.values))
        return self.check_overlaps and moved and _final(draft)["status"] in ACTIVE_STATUSES

    def _nearby(self, drafts: Sequence[Draft], takes_slot: set[int]) -> dict[int, list[_Nearby]]:
        """For each row that takes an active slot (by its position in the batch), the active bookings in the
        database near it of its builder and its client (the batch's earlier rows are `_Plan.near`'s).
        A superset — SQLite's datetime() drops fractions of a second, so the window is a minute wider and
        the rule book filters exactly."""
        orders = sorted(takes_slot)
        if not orders:
            return {}
        finals = [_final(drafts[order]) for order in orders]
        names = ("builder_id", "session_type_id", "start_time", "end_time")
        slots = {name: [final[name] for final in finals] for name in names}
        slots["reference"] = [drafts[order].key for order in orders]
        slots["client_id"] = [self._client_id(drafts[order].email) or None for order in orders]
        # each slot's position is its row's place in the batch
        stage = bulk.stage_rows(self.session, Booking.__table__, orders, slots)
        slot, booking = stage.c, Booking.__table__.c
        widest = max(self.references.buffer(final["builder_id"]) for final in finals)
        found: dict[int, list[_Nearby]] = {}
        people = [("client", "client", 0), ("builder", "builder", widest)]
        if any(final["builder_id"] is None for final in finals):
            # a group session without a builder: its own bookings there count its seats (the rule book)
            people.append(("builder", "session_type", 0))
        for person, column, margin in people:
            # A booking starts before the slot ends and ends after it starts, `margin` minutes (and a minute
            # of slack) wider; the lower bound on its start keeps the (person, start_time) index scan short.
            slack = margin + 1
            window = and_(
                booking[f"{column}_id"] == slot[f"{column}_id"],
                *((slot.builder_id.is_(None),) if column == "session_type" else ()),
                booking.reference != slot.reference,
                booking.status.in_(ACTIVE_STATUSES),
                booking.start_time < store.shifted(slot.end_time, slack, dialect=self.dialect),
                booking.start_time
                > store.shifted(slot.start_time, -(MAX_BOOKING_MINUTES + slack), dialect=self.dialect),
                booking.end_time > store.shifted(slot.start_time, -slack, dialect=self.dialect),
            )
            columns = (booking.id, booking.reference, booking.start_time, booking.end_time, booking.session_type_id)
            query = select(slot.position, *columns).join_from(stage, Booking, window)
            for order, row_id, *other in self.session.execute(query):
                # one an earlier batch created (`Touched`) is the file's too: a refused file never creates it
                name = _EARLIER_ROWS if row_id > self.touched.floor else ""
                found.setdefault(order, []).append((person, replace(NearbyBooking(*other), name=name)))
        self.session.execute(delete(stage))
        return found

    # -- deciding one row, in file order -----------------------------------------------------------------

    def _decide(self, order: int, draft: Draft, plan: _Plan, nearby: Sequence[_Nearby]) -> RowError | None:
        """Accept the row into the plan (a client to create, an enrolment, the booking) or refuse it; nothing
        is planned for a refused row, so later rows never lean on it."""
        if draft.outcome == UPDATED and draft.existing and draft.existing["calendly_state"] in PENDING_STATES:
            # as `bookings confirm` and the rest refuse it (services.booking.waiting_for_calendly): a reconcile deletes
            # a held booking Calendly turns down, and what this row changed (a payment, a status) would go with it
            why = f"booking {draft.key} is still waiting for Calendly: run `bapp calendly reconcile` first"
            return RowError(draft.row.line, "reference", why)
        user = self.users.get(draft.email)
        if user is None and not self.options.create_clients:
            return RowError(draft.row.line, "client", f"no client with e-mail {draft.email!r} (add it first)")
        enrolment: RowError | tuple[int, tuple[int | None, dt.date]] | None = None
        if draft.outcome != UNCHANGED:
            enrolment = self._pathway(draft, plan)
            if isinstance(enrolment, RowError):
                return enrolment
            if order in plan.takes_slot and (clash := self._clash(draft, plan, nearby)) is not None:
                return clash
        # accepted: plan what it writes — the client (created, given a profile or a first name) and the rest
        name = draft.given.get("client_name") or None
        user_id, has_profile, has_name = user or (0, True, False)
        if user is None:
            plan.new_users.setdefault(draft.email, name)
        elif not has_profile:
            plan.new_profiles.add(draft.email)
        if name and not has_name and user_id:
            plan.names[user_id] = name
        self.users[draft.email] = (user_id, True, has_name or bool(name))
        # the enrolment the booking brings, (pathway id, (builder id, start date)): the client is enrolled
        # (coached by the first accepted row with a builder) or, as `enrol` does, a coachless enrolment is
        # coached by the row's builder; a coach already there stays
        if isinstance(enrolment, tuple):
            key, (coach, start) = (draft.email, enrolment[0]), enrolment[1]
            planned = plan.new_enrolments.get(key)
            if plan.status_of(user_id, *key) is None or (planned and planned[0] is None):
                plan.new_enrolments[key] = (coach, planned[1] if planned else start)
            elif coach is not None and (coachless := self.coachless.pop((user_id, key[1]), None)) is not None:
                plan.coaches[coachless] = coach
        if order in plan.takes_slot:
            plan.hold(draft)
        if draft.outcome == CREATED:
            plan.inserts.append(draft)
        elif draft.outcome == UPDATED:
            plan.updates.append(draft)
            if not SLOT_COLUMNS.isdisjoint(draft.values):
                plan.moved.add(draft.key)
        return None

    def _pathway(self, draft: Draft, plan: _Plan) -> RowError | tuple[int, tuple[int | None, dt.date]] | None:
        """Rule 4 for a row that creates a booking or changes its pathway or status: the pathway (given, or
        the client's one active enrolment among the session's), and the enrolment the booking brings."""
        changes = draft.values
        chooses = draft.existing is None or "pathway_id" in changes  # the row sets the pathway
        if self.restore or not (chooses or "status" in changes):
            return None
        final, facts = _final(draft), draft.session.facts
        pathway = self.references.pathways_by_id.get(final["pathway_id"]) if final["pathway_id"] else None
        if pathway is not None and pathway.archived and not self.refuses_new("pathways", pathway):
            return None  # a backup's archived pathway: its booking is its history, as a restore's (no enrolment either)
        if pathway is None and facts.category != "pathway":
            return None  # the rule book's answer too: no pathway needed, none given, no enrolment to bring
        linked = self.references.linked.get(facts.id, [])
        if draft.columns["source"] == "calendly" or not chooses:
            # Calendly's rows, and updates that leave the pathway alone, keep the pathway they have: only
            # the rule that an archived pathway holds no slot applies, as to a session that needs none.
            facts = replace(facts, category="")
        # the client's active enrolments matter only where the session needs a pathway
        enrolled: list[int] = []
        if facts.category == "pathway":
            client_id = self._client_id(draft.email)
            enrolled = [item.id for item in linked if plan.status_of(client_id, draft.email, item.id) == "active"]
        holds_slot = final["status"] in ACTIVE_STATUSES
        choice = choose_pathway(facts, linked, pathway, enrolled, lenient=False, holds_slot=holds_slot)
        if isinstance(choice, Refusal):
            return RowError(draft.row.line, choice.field, choice.message)
        if choice.pathway is not pathway:  # the rule book hands back one of References' own pathways
            pathway = choice.pathway
            changes["pathway_id"] = pathway.id if pathway is not None else None
        if pathway is None or pathway.archived or final["status"] == "cancelled":
            return None
        return pathway.id, (final["builder_id"], enrolment_day(self.session, final["start_time"]))

    def _clash(self, draft: Draft, plan: _Plan, nearby: Sequence[_Nearby]) -> RowError | None:
        """Rule 6 against the database as the earlier rows leave it: a booking an accepted earlier row moved
        counts where that row put it, never where it was."""
        final = _final(draft)
        builder_id = final["builder_id"]
        buffer = self.references.buffer(builder_id)
        mine = {
            "client": plan.near(("client", draft.email), final, dt.timedelta()),
            "builder": plan.near(("builder", builder_id), final, dt.timedelta(minutes=buffer)),
        }
        for person, booking in nearby:
            if booking.reference not in plan.moved:  # a database booking an accepted row moved is not there
                mine[person].append(booking)
        if not mine["client"] and not mine["builder"]:
            return None
        builder_email = self.references.builder_emails.get(builder_id, "?") if builder_id is not None else None
        refusal = find_clash(
            draft.session.facts,
            final["start_time"],
            final["end_time"],
            builder_email=builder_email,
            builder_bookings=mine["builder"],
            buffer_minutes=buffer,
            client_email=draft.email,
            client_bookings=mine["client"],
        )
        if refusal is None:
            return None
        # the rule book names the input "start"; the import names the file's column
        return RowError(draft.row.line, "start_time", f"{refusal.message} (pass --allow-overlap to import it anyway)")

    # -- writing ---------------------------------------------------------------------------------------

    def _write(self, plan: _Plan) -> None:
        session, now = self.session, self.now
        users = [(email, name, now, now) for email, name in plan.new_users.items()]
        bulk.insert_rows(session, User.__table__, ("email", "name", "created_at", "updated_at"), users)
        for email, user_id in store.rows_keyed(session, select(User.email, User.id), plan.new_users):
            self.users[email] = (user_id, True, self.users[email][2])
        profiles = [(self.users[email][0], now) for email in (*plan.new_users, *sorted(plan.new_profiles))]
        bulk.insert_rows(session, ClientProfile.__table__, ("user_id", "created_at"), profiles)
        bulk.update_rows(session, User.__table__, [{"id": key, "name": name} for key, name in plan.names.items()])
        coached = [{"id": key, "builder_id": coach, "updated_at": now} for key, coach in plan.coaches.items()]
        bulk.update_rows(session, Enrolment.__table__, coached)  # the enrolments held before; then the new ones
        opened = {(self.users[email][0], pathway): held for (email, pathway), held in plan.new_enrolments.items()}
        self.extra.update(self.open_enrolments(opened, new_clients=self.new_clients))
        for draft in (*plan.inserts, *plan.updates):  # a client this batch created has its id now
            if draft.existing is None or "client_id" in draft.values:
                draft.values["client_id"] = self.users[draft.email][0]
        changes = [{"id": (draft.existing or {})["id"], **draft.values, "updated_at": now} for draft in plan.updates]
        bulk.update_rows(session, Booking.__table__, changes)
        for change in changes:
            self.touched.add(change["id"])
        # A restore keeps the ids it was given (written first, so the others take ids after them). The other
        # bookings' `INSERT … SELECT` runs on the mover's thread while the next batch is read and validated:
        # nothing may use the session after it until `mover.wait()`.
        rows: dict[bool, list[tuple[Any, ...]]] = {True: [], False: []}  # by whether the row keeps its id
        for draft in plan.inserts:
            row_id = draft.given.get("id") if self.restore else None
            row = (draft.key, *_compared(draft.values), draft.columns["created_at"] or now, now)
            rows[row_id is not None].append(row if row_id is None else (*row, row_id))
        bulk.insert_rows(session, Booking.__table__, (*WRITE_COLUMNS, "id"), rows[True])  # the sequence moved past them
        bulk.insert_rows(session, Booking.__table__, WRITE_COLUMNS, rows[False], mover=self.mover)


# An overlap candidate in the database: whose ("client" or "builder"), and the booking
_Nearby = tuple[str, NearbyBooking]
_START = operator.attrgetter("start")
_EARLIER_ROWS = "a booking of an earlier row of the file"
_BY_CELLS = ("start_time", "this client, session and start")
_LONGEST = dt.timedelta(minutes=MAX_BOOKING_MINUTES)


def _as_recorded(answers: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Answers as a booking stores them: each one's question, answer and position (None when it had none)."""
    return [{key: item.get(key) for key in ("question", "answer", "position")} for item in answers]


def _final(draft: Draft) -> dict[str, Any]:
    """The booking as this row leaves it."""
    return draft.values if draft.existing is None else {**draft.existing, **draft.values}


# the booking columns a cell sets as it is (an empty one: none)
_TEXT_CELLS = (
    *("calendly_event_uri", "calendly_invitee_uri", "request_fingerprint", "cancellation_reason"),
    *("status", "payment_status", "idempotency_key"),
)
_INSTANTS = ("start_time", "end_time", "created_at", "cancelled_at", "remote_updated_at")
_BLANK_CELLS = dict.fromkeys((*_TEXT_CELLS, *_INSTANTS))  # a draft's columns but those `_draft` sets every row
# The file columns whose empty cell clears what they set in an update (a nullable column)
NULLABLE_INPUTS = frozenset(name for name, column in COLUMN_OF.items() if Booking.__table__.c[column].nullable)


@dataclass
class _Plan:
    """What one batch will write, and which of its rows were accepted so far."""

    enrolments: dict[int, dict[int, str]]
    takes_slot: set[int]
    # the slots the batch's accepted rows hold, by ("client", e-mail) and ("builder", id), in start order
    held: dict[tuple[str, Any], list[NearbyBooking]] = field(default_factory=dict)
    moved: set[str] = field(default_factory=set)  # references of existing bookings an accepted row moved
    new_users: dict[str, str | None] = field(default_factory=dict)
    new_profiles: set[str] = field(default_factory=set)
    names: dict[int, str] = field(default_factory=dict)
    new_enrolments: dict[tuple[str, int], tuple[int | None, dt.date]] = field(default_factory=dict)
    coaches: dict[int, int] = field(default_factory=dict)  # enrolment id → the builder now coaching it
    inserts: list[Draft] = field(default_factory=list)
    updates: list[Draft] = field(default_factory=list)

    def hold(self, draft: Draft) -> None:
        final = _final(draft)
        name = f"the booking on line {draft.row.line}" if draft.existing is None else ""  # not one of the database
        booking = NearbyBooking(draft.key, final["start_time"], final["end_time"], final["session_type_id"], name=name)
        for person in (("client", draft.email), ("builder", final["builder_id"])):
            bisect.insort(self.held.setdefault(person, []), booking, key=_START)

    def near(self, person: tuple[str, Any], final: Mapping[str, Any], margin: dt.timedelta) -> list[NearbyBooking]:
        """The earlier accepted rows' slots of `person` that could meet [start, end) widened by `margin`: a
        booking lasts at most MAX_BOOKING_MINUTES, so none starting earlier can."""
        held = self.held.get(person, [])
        low = bisect.bisect_left(held, final["start_time"] - _LONGEST - margin, key=_START)
        return held[low : bisect.bisect_right(held, final["end_time"] + margin, key=_START)]

    def status_of(self, client_id: int, email: str, pathway_id: int) -> str | None:
        """The client's enrolment status in a pathway, counting the enrolments this batch will create."""
        if (email, pathway_id) in self.new_enrolments:
            return "active"
        return self.enrolments.get(client_id, {}).get(pathway_id)


# -- export ----------------------------------------------------------------------------------------------


def export_bookings(session: Session) -> Iterator[dict[str, Any]]:
    """Every booking as its record (the plain read of `export bookings`, on the session's own connection and
    transaction), instants as datetimes for the typed formats of a backup (TOML)."""
    from bapp_cli.db.dbapi import Database
    from bapp_cli.services.plain_reads import INSTANT_COLUMNS, instant_value
    from bapp_cli.services.plain_reads import export_bookings as plain_export

    for record in plain_export(Database.of_session(session)).records():
        for name in INSTANT_COLUMNS:
            record[name] = instant_value(record[name], f"bookings.{name}", of=f"booking {record['reference']}")
        yield record

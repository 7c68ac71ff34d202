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
  any booking may carry a pathway, and the client is enrolled in it (coach: the booking's builder) unless
  the booking is cancelled; an archived pathway takes no active (pending/confirmed) bookings;
- answers (rule 5) validate against the session's questions — except Calendly rows (`source` calendly),
  whose answers are normalised without refusal, as the Calendly door does (`allow_any_answers` treats
  every row so, for backfills from systems that never asked the questions);
- overlaps (rule 6), for rows that end up pending or confirmed, unless `allow_overlap`: against the
  database and against every earlier row of the file; the first row in the file keeps the slot;
- references (the natural key), invitee URIs and idempotency keys are unique; a row without a reference
  gets one derived from client, session and start, so importing the same file twice changes nothing;
- defaults follow rule 8: status from the price (confirmed when free, else pending), payment
  `not_required` when the amount is 0 else `unpaid`, amount and currency from the session.

A row that matches an existing booking updates only the columns the file has (an empty cell clears a
nullable column). Restores (`import all` into an empty database) take rows as recorded: ids, creation
times, answers and pathways are kept as they are and the catalogue-dependent rules are not re-run.

Speed (SPEC P3): rows are validated in batches by pydantic, references resolve with one query per batch
from caches of the small tables, and each batch is written set-based (see `bapp_cli.db.bulk`). On SQLite
the batch's big INSERT … SELECT runs in a worker thread, without the GIL, while the next batch is read and
validated. Overlaps are found by one self-join per batch over the rows just written — the (person,
start_time) indexes bound each probe to a day, and earlier batches of the file are already in the table
within the same transaction. A big import into a small table builds the indexes it never reads once, at
the end.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import operator
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Annotated, Any, Literal, NotRequired, Required, cast

from pydantic import ConfigDict, Field, Json, StringConstraints
from sqlalchemy import Table, and_, func, select, text
from sqlalchemy.orm import Session, aliased
from typing_extensions import TypedDict

from bapp_cli.db import bulk
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
from bapp_cli.services.answers import AnswerInput, answers_from_calendly, questions_from, validate_answers
from bapp_cli.services.booking import (
    ACTIVE_STATUSES,
    BOOKING_COLUMNS,
    MAX_BOOKING_MINUTES,
    REFERENCE_ALPHABET,
    REFERENCE_LENGTH,
    allowed_durations,
)
from bapp_cli.services.instants import get_zone
from bapp_cli.services.listing import STREAM_BATCH
from bapp_cli.services.people import normalise_email
from bapp_cli.services.session_types import MAX_PRICE, parse_currency
from bapp_cli.services.transfer import store
from bapp_cli.services.transfer.calendly_state import WRITE_STATE_COLUMNS, refused_write_state
from bapp_cli.services.transfer.formats import SourceRow
from bapp_cli.services.transfer.importer import (
    CREATED,
    UNCHANGED,
    UPDATED,
    Email,
    IdOrKey,
    Int32,
    KindImporter,
    RowError,
    RowId,
    RowResult,
    Touched,
    When,
    problem,
)

EXPORT_COLUMNS = (
    "id",
    *BOOKING_COLUMNS[:5],
    "session",
    *BOOKING_COLUMNS[5:],
    "cancellation_reason",
    "cancelled_at",
    "request_fingerprint",
    "remote_updated_at",
)
WRITE_STATE_REFUSAL = (
    "is Calendly's write-through state, restored only by `bapp import all` of a backup, never by a bookings import"
)
REFERENCE_PATTERN = re.compile(r"^[A-Z0-9][A-Z0-9-]{0,15}$")
MAX_REASON_LENGTH = 2000
# per-client caches are cleared past this size, so a file of a million distinct clients stays in flat memory
CACHE_LIMIT = 50_000
CACHE_KIB = 16_384
# Indexes an import never reads (the overlap check uses the builder and client ones), rebuilt at the end
# when the table was small enough for a rebuild to cost less than the row-by-row upkeep.
DEFERRED_INDEXES = frozenset(
    {"ix_bookings_pathway_time", "ix_bookings_session_time", "ix_bookings_start_time", "ix_bookings_calendly_event_uri"}
)
DEFER_INDEXES_BELOW = 200_000

Money = Annotated[Decimal, Field(ge=0, le=MAX_PRICE, max_digits=10, decimal_places=2)]
Status = Literal["pending", "confirmed", "completed", "cancelled", "no_show"]
Payment = Literal["not_required", "unpaid", "paid", "refunded"]


class AnswerItem(TypedDict):
    __pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[misc]
    question: Required[Annotated[str, StringConstraints(max_length=1000)]]
    answer: Required[
        Annotated[str, StringConstraints(max_length=10_000)]
        | list[Annotated[str, StringConstraints(max_length=10_000)]]
        | None
    ]
    position: NotRequired[Int32 | None]


Answers = list[AnswerItem] | Json[list[AnswerItem]]


class BookingRow(TypedDict, total=False):
    """A booking row: the keys of the booking record; `session_title` and `category` are informational."""

    __pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[misc]
    id: RowId | None
    reference: Annotated[str, StringConstraints(strip_whitespace=True, max_length=16)] | None
    client: Required[Email]
    client_name: Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)] | None
    builder: Email | None
    session: IdOrKey | None
    session_id: RowId | None
    session_title: Any
    category: Any
    start_time: Required[When]
    end_time: When | None
    client_timezone: Annotated[str, StringConstraints(strip_whitespace=True, max_length=64)] | None
    status: Status | None
    payment_status: Payment | None
    amount: Money | None
    currency: Annotated[str, StringConstraints(strip_whitespace=True, max_length=3)] | None
    pathway: Annotated[str, StringConstraints(strip_whitespace=True, max_length=64)] | None
    custom_question_responses: Answers | None
    calendly_event_uri: Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)] | None
    calendly_invitee_uri: Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)] | None
    idempotency_key: Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)] | None
    source: Literal["cli", "import", "calendly"] | None
    created_at: When | None
    cancellation_reason: Annotated[str, StringConstraints(max_length=MAX_REASON_LENGTH)] | None
    cancelled_at: When | None
    request_fingerprint: Annotated[str, StringConstraints(strip_whitespace=True, max_length=64)] | None
    remote_updated_at: When | None


# -- reference data, loaded once per import -----------------------------------------------------------


@dataclass(frozen=True)
class SessionInfo:
    id: int
    key: str  # the natural key used in derived references: Calendly URI, else slug, else id
    title: str
    duration: int
    durations: tuple[int, ...]
    price: Decimal
    currency: str
    category: str
    kind: str
    invitee_limit: int | None
    builder_id: int | None
    custom_questions: Any


@dataclass(frozen=True)
class PathwayInfo:
    id: int
    slug: str
    archived: bool


@dataclass
class Catalogue:
    sessions: dict[int, SessionInfo]
    by_uri: dict[str, int]
    by_slug: dict[str, list[int]]
    pathways: dict[str, PathwayInfo]
    pathways_by_id: dict[int, PathwayInfo]
    linked: dict[int, list[PathwayInfo]]  # session id → non-archived linked pathways in display order
    builders: dict[str, int]  # builder e-mail → user id
    buffers: dict[int, int]  # builder user id → buffer minutes
    builder_emails: dict[int, str]
    questions: dict[int, Any] = field(default_factory=dict)
    required: dict[int, bool] = field(default_factory=dict)

    @classmethod
    def load(cls, session: Session) -> Catalogue:
        sessions: dict[int, SessionInfo] = {}
        by_uri: dict[str, int] = {}
        by_slug: dict[str, list[int]] = {}
        for row in session.execute(
            select(
                SessionType.id,
                SessionType.slug,
                SessionType.calendly_uri,
                SessionType.title,
                SessionType.duration_minutes,
                SessionType.duration_options,
                SessionType.price,
                SessionType.currency,
                SessionType.category,
                SessionType.kind,
                SessionType.invitee_limit,
                SessionType.builder_id,
                SessionType.custom_questions,
            ).order_by(SessionType.id)
        ):
            probe = SessionType(duration_minutes=row.duration_minutes, duration_options=row.duration_options)
            sessions[row.id] = SessionInfo(
                id=row.id,
                key=row.calendly_uri or row.slug or str(row.id),
                title=row.title,
                duration=row.duration_minutes,
                durations=tuple(allowed_durations(probe)),
                price=row.price,
                currency=row.currency,
                category=row.category,
                kind=row.kind,
                invitee_limit=row.invitee_limit,
                builder_id=row.builder_id,
                custom_questions=row.custom_questions,
            )
            if row.calendly_uri:
                by_uri[row.calendly_uri] = row.id
            if row.slug:
                by_slug.setdefault(row.slug, []).append(row.id)
        pathways = {
            slug: PathwayInfo(pathway_id, slug, archived)
            for pathway_id, slug, archived in session.execute(
                select(Pathway.id, Pathway.slug, Pathway.archived).order_by(Pathway.position, Pathway.slug)
            )
        }
        pathways_by_id = {info.id: info for info in pathways.values()}
        linked: dict[int, list[PathwayInfo]] = {}
        for session_type_id, pathway_id in session.execute(
            select(SessionTypePathway.session_type_id, SessionTypePathway.pathway_id)
            .join(Pathway, Pathway.id == SessionTypePathway.pathway_id)
            .order_by(Pathway.position, Pathway.slug)
        ):
            info = pathways_by_id[pathway_id]
            if not info.archived:
                linked.setdefault(session_type_id, []).append(info)
        builders: dict[str, int] = {}
        buffers: dict[int, int] = {}
        for user_id, email, buffer in session.execute(
            select(User.id, User.email, BuilderProfile.buffer_minutes).join(
                BuilderProfile, BuilderProfile.user_id == User.id
            )
        ):
            builders[email] = user_id
            buffers[user_id] = buffer
        owner_ids = {info.builder_id for info in sessions.values() if info.builder_id is not None}
        emails = {user_id: email for email, user_id in builders.items()}
        missing = owner_ids - set(emails)
        if missing:
            emails.update(dict(session.execute(select(User.id, User.email).where(User.id.in_(missing))).all()))
        return cls(sessions, by_uri, by_slug, pathways, pathways_by_id, linked, builders, buffers, emails)

    def asks(self, info: SessionInfo) -> bool:
        """Whether the session has an enabled required question (a booking without answers is refused)."""
        found = self.required.get(info.id)
        if found is None:
            found = self.required[info.id] = any(
                question.required and question.enabled for question in self.questions_of(info)
            )
        return found

    def questions_of(self, info: SessionInfo) -> Any:
        found = self.questions.get(info.id)
        if found is None:
            found = self.questions[info.id] = questions_from(info.custom_questions)
        return found


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
    client_name: str | None
    session: SessionInfo
    builder_id: int | None
    start: dt.datetime
    end: dt.datetime | None  # None: from the duration (session's, or the existing booking's)
    zone: str
    reference: str | None  # given by the file
    status: str | None
    payment_status: str | None
    amount: Decimal | None
    currency: str | None
    pathway: PathwayInfo | None
    answers: list[dict[str, Any]] | None
    event_uri: str | None
    invitee_uri: str | None
    idempotency_key: str | None
    source: str
    created_at: dt.datetime | None
    cancellation_reason: str | None
    cancelled_at: dt.datetime | None
    fingerprint: str | None
    remote_updated_at: dt.datetime | None
    id: RowId | None
    # settled by the batch
    key: str = ""
    existing: Mapping[str, Any] | None = None
    outcome: str = UNCHANGED
    values: dict[str, Any] = field(default_factory=dict)


WRITE_COLUMNS = (
    "reference",
    "client_id",
    "builder_id",
    "session_type_id",
    "start_time",
    "end_time",
    "client_timezone",
    "status",
    "payment_status",
    "amount",
    "currency",
    "pathway_id",
    "custom_question_responses",
    "calendly_event_uri",
    "calendly_invitee_uri",
    "idempotency_key",
    "request_fingerprint",
    "source",
    "cancellation_reason",
    "cancelled_at",
    "remote_updated_at",
    "created_at",
    "updated_at",
)
COMPARED = WRITE_COLUMNS[1:-2]
_compared = operator.itemgetter(*COMPARED)
# file column → the column(s) it sets
COLUMN_OF = {
    "builder": "builder_id",
    "client_timezone": "client_timezone",
    "status": "status",
    "payment_status": "payment_status",
    "amount": "amount",
    "currency": "currency",
    "pathway": "pathway_id",
    "custom_question_responses": "custom_question_responses",
    "calendly_event_uri": "calendly_event_uri",
    "calendly_invitee_uri": "calendly_invitee_uri",
    "idempotency_key": "idempotency_key",
    "request_fingerprint": "request_fingerprint",
    "source": "source",
    "cancellation_reason": "cancellation_reason",
    "cancelled_at": "cancelled_at",
    "remote_updated_at": "remote_updated_at",
}


class BookingImporter(KindImporter):
    kind = "bookings"
    schema = BookingRow
    required = (("client",), ("session", "session_id"), ("start_time",))
    batch_size = 4000

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.catalogue = Catalogue.load(self.session)
        self.dialect = self.session.get_bind().dialect.name
        self.emails: dict[str, str | RowError] = {}
        self.zones: dict[str, str | BappError] = {}
        # e-mail → (user id, has a client profile, has a name)
        self.users: dict[str, tuple[int, bool, bool]] = {}
        self.enrolments: dict[int, dict[int, str]] = {}
        self.session_refs: dict[tuple[str, Any], SessionInfo | BappError] = {}
        self.touched = Touched(self.session, Booking.__table__)
        self.known_enrolments: dict[int, dict[int, str]] = {}
        self.pending: _Pending | None = None
        self.pipelined = self.dialect == "sqlite"
        self.batches = 0
        self.dropped: list[Any] = []
        self.cache_pages: int | None = None
        if self.dialect == "sqlite":
            # The five (person, time) indexes take rows in random places for a history spread over years;
            # a 16 MB page cache (the default is 2 MB) keeps them in memory for the length of the import.
            self.cache_pages = int(self.session.execute(text("PRAGMA cache_size")).scalar_one())
            self.session.execute(text(f"PRAGMA cache_size = -{CACHE_KIB}"))
        self.extra = {"clients_created": 0, "enrolled": 0}

    # -- Calendly's write-through state is never imported here --------------------------------------

    def check_header(self, columns: Sequence[str]) -> None:
        refused = refused_write_state(columns)
        if refused:
            problems = [RowError(1, name, WRITE_STATE_REFUSAL) for name in refused]
            raise InvalidInput(
                f"bookings: the column {refused[0]!r} {WRITE_STATE_REFUSAL}; nothing was written",
                hint="drop the calendly_state… columns: a booking imported here is never sent to Calendly",
                details=[item.as_detail() for item in problems],
                code="bad_columns",
            )
        super().check_header(columns)

    def validate(self, rows: Sequence[SourceRow]) -> tuple[list[tuple[SourceRow, dict[str, Any]]], list[RowResult]]:
        valid, rejected = super().validate(rows)
        for result in rejected:
            result.errors = [
                RowError(error.line, error.field, WRITE_STATE_REFUSAL, error.kind)
                if error.field in WRITE_STATE_COLUMNS
                else error
                for error in result.errors
            ]
        return valid, rejected

    # -- per row ---------------------------------------------------------------------------------------

    def _email(self, raw: str, name: str, line: int) -> str | RowError:
        cached = self.emails.get(raw)
        if cached is None:
            if len(self.emails) > CACHE_LIMIT:
                self.emails.clear()
            try:
                cached = normalise_email(raw, field=name)
            except BappError as exc:
                cached = problem(exc, name, line)
            self.emails[raw] = cached
        if isinstance(cached, RowError):
            return RowError(line, cached.field, cached.message)
        return cached

    def _zone(self, raw: str | None) -> str:
        if raw is None:
            return self.options.timezone
        cached = self.zones.get(raw)
        if cached is None:
            try:
                cached = get_zone(raw, field="client_timezone").key
            except BappError as exc:
                cached = exc
            self.zones[raw] = cached
        if isinstance(cached, BappError):
            raise cached
        return cached

    def _session(self, values: Mapping[str, Any]) -> SessionInfo:
        ident = values.get("session")
        name = "session"
        if ident is None:
            ident = values.get("session_id")
            name = "session_id"
            if ident is None:
                raise InvalidInput("session: required (an id, slug or Calendly URI)")
        cached = self.session_refs.get((name, ident))
        if cached is None:
            try:
                cached = self._find_session(name, str(ident).strip())
            except BappError as exc:
                cached = exc
            self.session_refs[(name, ident)] = cached
        if isinstance(cached, BappError):
            raise cached
        return cached

    def _find_session(self, name: str, text: str) -> SessionInfo:
        catalogue = self.catalogue
        if text.isascii() and text.isdigit():  # not str.isdigit alone: '²' is a digit int() refuses
            found = catalogue.sessions.get(int(text))
        elif "://" in text:
            found = catalogue.sessions.get(catalogue.by_uri.get(text, -1))
        else:
            ids = catalogue.by_slug.get(text.lower(), [])
            if len(ids) > 1:
                raise InvalidInput(f"{name}: slug {text!r} names several session types; use the id or Calendly URI")
            found = catalogue.sessions.get(ids[0]) if ids else None
        if found is None:
            raise InvalidInput(f"{name}: no session type {text!r} (see `bapp sessions list --all`)")
        return found

    def _draft(self, row: SourceRow, values: Mapping[str, Any]) -> Draft | list[RowError]:
        line = row.line
        errors: list[RowError] = []
        email = self._email(values["client"], "client", line)
        if isinstance(email, RowError):
            errors.append(email)
        session_info: SessionInfo | None = None
        try:
            session_info = self._session(values)
        except BappError as exc:
            errors.append(problem(exc, "session" if values.get("session") is not None else "session_id", line))
        builder_id: int | None = None
        builder = values.get("builder")
        if builder is not None:
            builder_email = self._email(builder, "builder", line)
            if isinstance(builder_email, RowError):
                errors.append(builder_email)
            else:
                builder_id = self.catalogue.builders.get(builder_email)
                if builder_id is None:
                    errors.append(RowError(line, "builder", f"no builder with e-mail {builder_email!r}"))
        elif session_info is not None:
            builder_id = session_info.builder_id
        zone = self.options.timezone
        try:
            zone = self._zone(values.get("client_timezone"))
        except BappError as exc:
            errors.append(problem(exc, "client_timezone", line))
        start = end = created = cancelled = remote = None
        for name in _INSTANTS:
            raw = values.get(name)
            if raw is None:
                continue
            try:
                instant = self.instant(raw, name, zone=zone)
            except BappError as exc:
                errors.append(problem(exc, name, line))
                continue
            if name == "start_time":
                start = instant
            elif name == "end_time":
                end = instant
            elif name == "created_at":
                created = instant
            elif name == "cancelled_at":
                cancelled = instant
            else:
                remote = instant
        source = values.get("source") or "import"
        checked = not self.restore and source != "calendly"
        if start is not None and session_info is not None:
            minutes = session_info.duration if end is None else (end - start).total_seconds() / 60
            if end is not None and end <= start:
                errors.append(RowError(line, "end_time", "must be after start_time"))
            elif minutes > MAX_BOOKING_MINUTES:
                errors.append(RowError(line, "end_time", f"a booking lasts at most {MAX_BOOKING_MINUTES} minutes"))
            elif checked and end is not None and minutes not in session_info.durations:
                errors.append(
                    RowError(
                        line,
                        "end_time",
                        f"a {minutes:g}-minute booking is not offered by {session_info.title!r} "
                        f"(durations: {', '.join(str(option) for option in session_info.durations)})",
                    )
                )
        reference = values.get("reference")
        if reference is not None:
            reference = reference.upper()
            if not REFERENCE_PATTERN.match(reference):
                errors.append(
                    RowError(line, "reference", f"{reference!r} is not a booking reference (e.g. BK-7Q2M9X4D)")
                )
        currency = values.get("currency")
        if currency is not None:
            try:
                currency = parse_currency(currency)
            except BappError as exc:
                errors.append(problem(exc, "currency", line))
        pathway: PathwayInfo | None = None
        pathway_slug = values.get("pathway")
        if pathway_slug is not None:
            pathway = self.catalogue.pathways.get(pathway_slug.lower())
            if pathway is None:
                known = ", ".join(self.catalogue.pathways) or "none"
                errors.append(RowError(line, "pathway", f"no pathway {pathway_slug!r} (known: {known})"))
        answers: list[dict[str, Any]] | None = None
        items = values.get("custom_question_responses")
        if items is not None and session_info is not None:
            try:
                answers = self._answers(session_info, items, source)
            except BappError as exc:
                errors.append(RowError(line, "custom_question_responses", _answer_problems(exc)))
        key = values.get("idempotency_key")
        if key is not None and not key:
            errors.append(RowError(line, "idempotency_key", "must not be empty"))
        if errors:
            return errors
        assert session_info is not None and start is not None and isinstance(email, str)
        amount = values.get("amount")
        return Draft(
            row=row,
            given=values,
            email=email,
            client_name=values.get("client_name") or None,
            session=session_info,
            builder_id=builder_id,
            start=start,
            end=end,
            zone=zone,
            reference=reference,
            status=values.get("status"),
            payment_status=values.get("payment_status"),
            amount=amount.quantize(Decimal("0.01")) if amount is not None else None,
            currency=currency,
            pathway=pathway,
            answers=answers,
            event_uri=values.get("calendly_event_uri") or None,
            invitee_uri=values.get("calendly_invitee_uri") or None,
            idempotency_key=key,
            source=source,
            created_at=created,
            cancellation_reason=values.get("cancellation_reason") or None,
            cancelled_at=cancelled,
            fingerprint=values.get("request_fingerprint") or None,
            remote_updated_at=remote,
            id=values.get("id"),
        )

    def _answers(self, info: SessionInfo, items: Sequence[Mapping[str, Any]], source: str) -> list[dict[str, Any]]:
        if self.restore:
            return [
                {"question": item["question"], "answer": item["answer"], "position": item.get("position")}
                for item in items
            ]
        questions = self.catalogue.questions_of(info)
        if source == "calendly" or self.options.allow_any_answers:
            return answers_from_calendly(items, questions)
        if not items and not any(question.required and question.enabled for question in questions):
            return []
        inputs = []
        for item in items:
            answer = item["answer"]
            inputs.append(AnswerInput(item["question"], answer if answer is not None else ""))
        return validate_answers(questions, inputs, field="custom_question_responses")

    # -- per batch -------------------------------------------------------------------------------------

    def apply(self, rows: Sequence[SourceRow]) -> list[RowResult]:
        """Prepare this batch while the previous one's insert runs, settle that one, then start this one.

        Returns the previous batch's results (`drain` returns the last batch's). The preparation is pure
        Python (validation, rule checks that need no query); only the worker thread touches the database
        meanwhile, and every later step waits for it.
        """
        try:
            prepared = self._prepare(rows)
        except BaseException:
            self.abort()
            raise
        settled = self._settle()
        self._begin(*prepared)
        return settled

    def drain(self) -> list[RowResult]:
        return self._settle()

    def abort(self) -> None:
        """Wait for a running insert before the caller rolls the transaction back."""
        if self.pending is not None and self.pending.worker is not None:
            self.pending.worker.join()
        self.pending = None

    def _prepare(self, rows: Sequence[SourceRow]) -> tuple[list[Draft], list[RowResult]]:
        valid, results = self.validate(rows)
        drafts: list[Draft] = []
        for row, values in valid:
            draft = self._draft(row, values)
            if isinstance(draft, list):
                results.append(RowResult(row, errors=draft))
            else:
                drafts.append(draft)
        return drafts, results

    def _begin(self, drafts: list[Draft], results: list[RowResult]) -> None:
        if self.pipelined and not self.batches and len(drafts) >= self.batch_size // 2:
            self._defer_indexes()
        self.batches += 1
        self._resolve_clients(drafts)
        drafts = self._match_existing(drafts, results)
        self._load_enrolments(drafts)
        savepoint = self.session.begin_nested()
        plan = _Plan(self.enrolments)
        accepted = [draft for draft in drafts if self._plan_row(draft, plan, results)]
        insert = self._write(plan, deferred=self.pipelined)
        self.pending = _Pending(results, accepted, plan, savepoint, _Worker(insert) if insert is not None else None)

    def _settle(self) -> list[RowResult]:
        pending = self.pending
        if pending is None:
            return []
        self.pending = None
        if pending.worker is not None:
            pending.worker.finish()
        results, accepted, plan, savepoint = pending.results, pending.accepted, pending.plan, pending.savepoint
        check_overlaps = not self.restore and not self.options.allow_overlap
        while True:
            refused = self._overlaps(accepted) if check_overlaps else {}
            if not refused:
                savepoint.commit()
                break
            # Take the refused rows out and write the batch again: what the others decided (a client to
            # create, an enrolment a later row's pathway relies on) may have depended on them.
            savepoint.rollback()
            for draft in accepted:
                if draft.key in refused:
                    results.append(RowResult(draft.row, errors=[refused[draft.key]]))
            drafts = [draft for draft in accepted if draft.key not in refused]
            for draft in drafts:
                self.users.pop(draft.email, None)
            self.known_enrolments.clear()
            self._resolve_clients(drafts)
            self._load_enrolments(drafts)
            savepoint = self.session.begin_nested()
            plan = _Plan(self.enrolments)
            accepted = [draft for draft in drafts if self._plan_row(draft, plan, results)]
            self._write(plan, deferred=False)
        for draft in accepted:
            results.append(RowResult(draft.row, outcome=draft.outcome))
        self.extra["clients_created"] += plan.clients_created
        self.extra["enrolled"] += len(plan.new_enrolments)
        for email, pathway_id in plan.new_enrolments:
            self.known_enrolments.setdefault(self.users[email][0], {})[pathway_id] = "active"
        return sorted(results, key=lambda result: result.row.line)

    def _defer_indexes(self) -> None:
        """A big import into a small table builds the indexes the import does not read afterwards, in one
        sorted pass each, instead of updating them row by row (DDL is transactional in SQLite: a failed or
        dry-run import rolls the drop back with everything else)."""
        if int(self.session.scalar(select(func.coalesce(func.max(Booking.id), 0))) or 0) > DEFER_INDEXES_BELOW:
            return
        for index in cast(Table, Booking.__table__).indexes:
            if index.name in DEFERRED_INDEXES:
                index.drop(self.session.connection())
                self.dropped.append(index)

    def finish(self) -> None:
        for index in self.dropped:
            index.create(self.session.connection())
        self.dropped.clear()
        if self.cache_pages is not None:
            self.session.execute(text(f"PRAGMA cache_size = {int(self.cache_pages)}"))

    def _resolve_clients(self, drafts: Sequence[Draft]) -> None:
        if len(self.users) > CACHE_LIMIT:
            self.users.clear()
        wanted = sorted({draft.email for draft in drafts if draft.email not in self.users})
        for part in bulk.chunks(wanted):
            rows = self.session.execute(
                select(User.id, User.email, User.name, ClientProfile.id)
                .outerjoin(ClientProfile, ClientProfile.user_id == User.id)
                .where(User.email.in_(part))
            )
            for user_id, email, name, profile_id in rows:
                self.users[email] = (user_id, profile_id is not None, bool(name))

    def _load_enrolments(self, drafts: Sequence[Draft]) -> None:
        """The enrolments rule 4 may consult for the batch's known clients: queried once per client (one
        query per batch) and then kept, with the ones this import adds, up to the cache limit."""
        known = self.known_enrolments
        if len(known) > CACHE_LIMIT:
            known.clear()
        wanted = sorted(
            {
                self.users[draft.email][0]
                for draft in drafts
                if draft.email in self.users
                and self.users[draft.email][0] not in known
                and (draft.pathway is not None or draft.session.category == "pathway")
            }
        )
        for client_id in wanted:
            known[client_id] = {}
        for part in bulk.chunks(wanted):
            for client_id, pathway_id, status in self.session.execute(
                select(Enrolment.client_id, Enrolment.pathway_id, Enrolment.status).where(Enrolment.client_id.in_(part))
            ):
                known[client_id][pathway_id] = status
        self.enrolments = known

    def _match_existing(self, drafts: list[Draft], results: list[RowResult]) -> list[Draft]:
        """Settle each row's key (its reference) and the booking it updates; enforce the unique keys."""
        invitee_owner = self._owners(Booking.calendly_invitee_uri, [d.invitee_uri for d in drafts if d.invitee_uri])
        key_owner = self._owners(Booking.idempotency_key, [d.idempotency_key for d in drafts if d.idempotency_key])
        for draft in drafts:
            if draft.reference is not None:
                draft.key = draft.reference
            elif draft.invitee_uri is not None and draft.invitee_uri in invitee_owner:
                draft.key = invitee_owner[draft.invitee_uri]
            else:
                draft.key = derived_reference(draft.email, draft.session.key, draft.start)
        existing = self._existing([draft.key for draft in drafts])
        first_line: dict[str, int] = {}
        first_invitee: dict[str, int] = {}
        first_key: dict[str, int] = {}
        kept: list[Draft] = []
        for draft in drafts:
            line = draft.row.line
            errors: list[RowError] = []
            found = existing.get(draft.key)
            if draft.key in first_line:
                errors.append(RowError(line, "reference", f"{draft.key} is already on line {first_line[draft.key]}"))
            elif found is not None and found["id"] in self.touched:
                errors.append(RowError(line, "reference", f"{draft.key} appears earlier in the file"))
            first_line.setdefault(draft.key, line)
            for value, owners, label, first in (
                (draft.invitee_uri, invitee_owner, "calendly_invitee_uri", first_invitee),
                (draft.idempotency_key, key_owner, "idempotency_key", first_key),
            ):
                if value is None:
                    continue
                owner = owners.get(value)
                if owner is not None and owner != draft.key:
                    errors.append(RowError(line, label, f"{value!r} already belongs to booking {owner}"))
                elif value in first:
                    errors.append(RowError(line, label, f"{value!r} is already on line {first[value]}"))
                first.setdefault(value, line)
            if errors:
                results.append(RowResult(draft.row, errors=errors))
                continue
            draft.existing = found
            kept.append(draft)
        return kept

    def _owners(self, column: Any, values: Sequence[str]) -> dict[str, str]:
        owners: dict[str, str] = {}
        for part in bulk.chunks(sorted(set(values))):
            owners.update(self.session.execute(select(column, Booking.reference).where(column.in_(part))).all())
        return owners

    def _existing(self, references: Sequence[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        table = Booking.__table__
        columns = [table.c.id, table.c.reference, table.c.updated_at, *(table.c[name] for name in COMPARED)]
        for part in bulk.chunks(sorted(set(references))):
            for row in self.session.execute(select(*columns).where(table.c.reference.in_(part))):
                found[row.reference] = dict(row._mapping)
        return found

    def _plan_row(self, draft: Draft, plan: _Plan, results: list[RowResult]) -> bool:
        """Decide one row — the values to write, a client to create, a pathway, an enrolment — or refuse it."""
        existing = draft.existing
        user = self.users.get(draft.email)
        if user is None:
            if not self.options.create_clients:
                return self._refuse(draft, results, "client", f"no client with e-mail {draft.email!r} (add it first)")
            plan.new_users.setdefault(draft.email, draft.client_name)
            user = self.users[draft.email] = (0, True, bool(draft.client_name))
        elif not user[1]:
            plan.new_profiles.add(draft.email)
            self.users[draft.email] = (user[0], True, user[2])
        if draft.client_name and not user[2] and user[0]:
            plan.names[user[0]] = draft.client_name
            self.users[draft.email] = (user[0], True, True)
        client_id = user[0]
        session_info = draft.session
        present = _present(draft.given) if existing is not None else frozenset()

        amount = draft.amount if draft.amount is not None else (existing["amount"] if existing else session_info.price)
        status = draft.status or (existing["status"] if existing else ("pending" if amount > 0 else "confirmed"))
        payment = draft.payment_status or (
            existing["payment_status"] if existing else ("not_required" if amount == 0 else "unpaid")
        )
        start = draft.start
        if draft.end is not None:
            end = draft.end
        elif existing is not None:
            end = start + (existing["end_time"] - existing["start_time"])
        else:
            end = start + dt.timedelta(minutes=session_info.duration)
        new: dict[str, Any] = {
            "client_id": client_id,
            "session_type_id": session_info.id,
            "start_time": start,
            "end_time": end,
            "status": status,
            "amount": amount,
            "payment_status": payment,
        }
        if existing is None or "builder" in present or "session" in present or "session_id" in present:
            new["builder_id"] = draft.builder_id
        if existing is None or "client_timezone" in present:
            new["client_timezone"] = draft.zone
        if existing is None or "currency" in present:
            new["currency"] = draft.currency or session_info.currency
        pathway = draft.pathway
        if existing is None or "pathway" in present:
            new["pathway_id"] = pathway.id if pathway is not None else None
        elif existing["pathway_id"] is not None:
            pathway = self.catalogue.pathways_by_id.get(existing["pathway_id"])
        checked = not self.restore and draft.source != "calendly"
        answers = draft.answers
        if answers is None and existing is None:
            answers = []
            if checked and not self.options.allow_any_answers and self.catalogue.asks(session_info):
                try:
                    answers = self._answers(session_info, [], draft.source)
                except BappError as exc:
                    return self._refuse(draft, results, "custom_question_responses", _answer_problems(exc))
        if answers is not None:
            new["custom_question_responses"] = answers
        for name, value in (
            ("calendly_event_uri", draft.event_uri),
            ("calendly_invitee_uri", draft.invitee_uri),
            ("idempotency_key", draft.idempotency_key),
            ("request_fingerprint", draft.fingerprint),
            ("cancellation_reason", draft.cancellation_reason),
            ("cancelled_at", draft.cancelled_at),
            ("remote_updated_at", draft.remote_updated_at),
        ):
            if existing is None or name in present:
                new[name] = value
        if existing is None or "source" in present:
            new["source"] = draft.source

        changes = new if existing is None else {name: value for name, value in new.items() if existing[name] != value}
        if existing is not None and not changes:
            draft.outcome = UNCHANGED
            draft.values = {}
            return True
        # Rule 4, for rows that create a booking or change its pathway or status.
        if not self.restore and ("pathway_id" in changes or "status" in changes or existing is None):
            active = status in ACTIVE_STATUSES
            if pathway is not None and pathway.archived and active:
                return self._refuse(
                    draft, results, "pathway", f"{pathway.slug!r} is archived and takes no new bookings"
                )
            if checked and session_info.category == "pathway" and (existing is None or "pathway_id" in changes):
                linked = self.catalogue.linked.get(session_info.id, [])
                choices = ", ".join(item.slug for item in linked)
                if not linked:
                    return self._refuse(
                        draft, results, "session", f"{session_info.title!r} is a pathway session linked to no pathway"
                    )
                if pathway is not None and pathway not in linked:
                    return self._refuse(
                        draft,
                        results,
                        "pathway",
                        f"{pathway.slug!r} is not linked to {session_info.title!r}; choose one of: {choices}",
                    )
                if pathway is None:
                    enrolled = [item for item in linked if plan.status_of(client_id, draft.email, item.id) == "active"]
                    if len(enrolled) != 1:
                        why = "several of them" if enrolled else "none of them"
                        return self._refuse(
                            draft,
                            results,
                            "pathway",
                            f"{session_info.title!r} needs a pathway and the client is actively enrolled in {why}; "
                            f"choose one of: {', '.join(item.slug for item in (enrolled or linked))}",
                        )
                    pathway = enrolled[0]
                    changes["pathway_id"] = pathway.id
            if (
                pathway is not None
                and not pathway.archived
                and status != "cancelled"
                and plan.status_of(client_id, draft.email, pathway.id) is None
            ):
                builder_id = changes.get("builder_id", existing["builder_id"] if existing else None)
                plan.new_enrolments[(draft.email, pathway.id)] = (builder_id, start.date())
        draft.outcome = CREATED if existing is None else UPDATED
        draft.values = changes
        (plan.inserts if existing is None else plan.updates).append(draft)
        return True

    @staticmethod
    def _refuse(draft: Draft, results: list[RowResult], name: str, message: str) -> bool:
        results.append(RowResult(draft.row, errors=[RowError(draft.row.line, name, message)]))
        return False

    # -- writing ---------------------------------------------------------------------------------------

    def _write(self, plan: _Plan, *, deferred: bool) -> Callable[[], None] | None:
        """Write the batch; with `deferred`, the bookings' final set-based insert is returned to be run."""
        session = self.session
        now = self.now
        if plan.new_users:
            emails = list(plan.new_users)
            bulk.insert_rows(
                session,
                User.__table__,
                ("email", "name", "created_at", "updated_at"),
                [(email, plan.new_users[email], now, now) for email in emails],
            )
            for part in bulk.chunks(emails):
                for user_id, email in self.session.execute(select(User.id, User.email).where(User.email.in_(part))):
                    self.users[email] = (user_id, True, self.users[email][2])
            plan.clients_created = len(emails)
        profiles = [*plan.new_users, *sorted(plan.new_profiles)]
        if profiles:
            bulk.insert_rows(
                session,
                ClientProfile.__table__,
                ("user_id", "created_at"),
                [(self.users[email][0], now) for email in profiles],
            )
        if plan.names:
            bulk.update_rows(session, User.__table__, [{"id": key, "name": name} for key, name in plan.names.items()])
        later: list[Callable[[], None]] = []
        if plan.new_enrolments:
            finish_enrolments = bulk.insert_rows(
                session,
                Enrolment.__table__,
                ("client_id", "pathway_id", "status", "start_date", "builder_id", "created_at", "updated_at"),
                [
                    (self.users[email][0], pathway_id, "active", start_date, builder_id, now, now)
                    for (email, pathway_id), (builder_id, start_date) in plan.new_enrolments.items()
                ],
                deferred=deferred,
            )
            if finish_enrolments is not None:
                later.append(finish_enrolments)
        with_ids = [draft for draft in plan.inserts if self.restore and draft.id is not None]
        for group, columns in (
            ([draft for draft in plan.inserts if draft not in with_ids] if with_ids else plan.inserts, WRITE_COLUMNS),
            (with_ids, (*WRITE_COLUMNS, "id")),
        ):
            if not group:
                continue
            rows_out = []
            for draft in group:
                values = draft.values
                values["client_id"] = self.users[draft.email][0]
                row = (draft.key, *_compared(values), draft.created_at or now, now)
                rows_out.append((*row, draft.id) if len(columns) > len(WRITE_COLUMNS) else row)
            finish = bulk.insert_rows(session, Booking.__table__, columns, rows_out, deferred=deferred)
            if finish is not None:
                later.append(finish)
        if plan.updates:
            changes = []
            for draft in plan.updates:
                assert draft.existing is not None
                change = dict(draft.values)
                if "client_id" in change:
                    change["client_id"] = self.users[draft.email][0]
                changes.append({"id": draft.existing["id"], **change, "updated_at": now})
                self.touched.add(draft.existing["id"])
            bulk.update_rows(session, Booking.__table__, changes)
        if not later:
            return None

        def finish_all() -> None:
            for finish in later:
                finish()

        return finish_all

    # -- overlaps (rule 6) -------------------------------------------------------------------------------

    def _overlaps(self, accepted: Sequence[Draft]) -> dict[str, RowError]:
        """Rows of this batch that overlap an active booking; of two rows of the file, the first keeps the slot."""
        written = [draft for draft in accepted if _moves_slot(draft) and _final(draft)["status"] in ACTIVE_STATUSES]
        if not written:
            return {}
        order = {draft.key: index for index, draft in enumerate(written)}
        clashes: dict[str, list[tuple[str, str, dt.datetime, dt.datetime, int]]] = {}
        buffers = self.catalogue.buffers
        widest = max((buffers.get(_final(draft)["builder_id"] or 0, 0) for draft in written), default=0)
        for person, margin in (("client_id", 0), ("builder_id", widest)):
            for other_ref, new_ref, other_start, other_end, other_session in self._candidates(
                list(order), person, margin
            ):
                clashes.setdefault(new_ref, []).append((person, other_ref, other_start, other_end, other_session))
        refused: dict[str, RowError] = {}
        slots: dict[tuple[int, dt.datetime], int] = {}
        for draft in written:
            values = _final(draft)
            start, end = values["start_time"], values["end_time"]
            info = self.catalogue.sessions[values["session_type_id"]]
            buffer = dt.timedelta(minutes=buffers.get(values["builder_id"] or 0, 0))
            same_slot = 0
            reason: str | None = None
            for person, other_ref, other_start, other_end, other_session in clashes.get(draft.key, []):
                if other_ref in order and (other_ref in refused or order[other_ref] > order[draft.key]):
                    continue  # a later row of the file (it yields to this one), or one already refused
                pad = buffer if person == "builder_id" else dt.timedelta()
                if not (other_start < end + pad and other_end > start - pad):
                    continue
                if (
                    person == "builder_id"
                    and info.kind == "group"
                    and other_session == info.id
                    and other_start == start
                ):
                    same_slot += 1
                    continue
                if person == "client_id":
                    who = f"client {draft.email}"
                else:
                    who = f"builder {self.catalogue.builder_emails.get(values['builder_id'], '?')}"
                with_buffer = f" (with a {int(pad.total_seconds()) // 60}-minute buffer)" if pad else ""
                reason = (
                    f"{who} already has booking {other_ref} at {_when(other_start, other_end)}"
                    f" overlapping {_when(start, end)}{with_buffer}"
                )
                break
            if reason is None and info.kind == "group" and info.invitee_limit is not None:
                taken = slots.get((info.id, start), same_slot)
                if taken >= info.invitee_limit:
                    reason = (
                        f"group session {info.title!r} at {_when(start, end)} is full ({info.invitee_limit} invitees)"
                    )
                else:
                    slots[(info.id, start)] = taken + 1
            if reason is not None:
                refused[draft.key] = RowError(
                    draft.row.line, "start_time", f"{reason} (pass --allow-overlap to import it anyway)"
                )
        return refused

    def _candidates(
        self, references: Sequence[str], person: str, margin: int
    ) -> Iterator[tuple[str, str, dt.datetime, dt.datetime, int]]:
        """Active bookings near each written row of the same person (a superset: exact checks follow)."""
        new = aliased(Booking)
        other = aliased(Booking)
        new_person = getattr(new, person)
        other_person = getattr(other, person)
        slack = margin + 1  # SQLite's datetime() drops fractions of a second
        statuses = list(ACTIVE_STATUSES)
        window = and_(
            other_person == new_person,
            other.id != new.id,
            other.status.in_(statuses),
            other.start_time < store.shifted(new.end_time, slack, dialect=self.dialect),
            other.start_time > store.shifted(new.start_time, -(MAX_BOOKING_MINUTES + slack), dialect=self.dialect),
            other.end_time > store.shifted(new.start_time, -slack, dialect=self.dialect),
        )
        for part in bulk.chunks(list(references)):
            query = (
                select(other.reference, new.reference, other.start_time, other.end_time, other.session_type_id)
                .join(other, window)
                .where(new.reference.in_(part), new.status.in_(statuses), new_person.is_not(None))
            )
            yield from self.session.execute(query)


def _present(values: Mapping[str, Any]) -> frozenset[str]:
    """The columns a row sets: those with a value, and nullable ones given empty (which clears them)."""
    return frozenset(name for name, value in values.items() if value is not None or name in NULLABLE_INPUTS)


def _final(draft: Draft) -> dict[str, Any]:
    """The booking as this row leaves it."""
    if draft.existing is None:
        return draft.values
    return {**draft.existing, **draft.values}


SLOT_COLUMNS = frozenset({"start_time", "end_time", "status", "client_id", "builder_id", "session_type_id"})


def _moves_slot(draft: Draft) -> bool:
    """Created, or changed in a way that could make it overlap (an amount change never does)."""
    return draft.outcome == CREATED or (draft.outcome == UPDATED and not SLOT_COLUMNS.isdisjoint(draft.values))


def _answer_problems(exc: BappError) -> str:
    return "; ".join(str(detail) for detail in exc.details) if exc.details else exc.message


_INSTANTS = ("start_time", "end_time", "created_at", "cancelled_at", "remote_updated_at")
NULLABLE_INPUTS = frozenset(
    {
        "builder",
        "pathway",
        "calendly_event_uri",
        "calendly_invitee_uri",
        "idempotency_key",
        "request_fingerprint",
        "cancellation_reason",
        "cancelled_at",
        "remote_updated_at",
        "custom_question_responses",
    }
)


class _Worker:
    """Runs a batch's final insert in a thread: SQLite does the work without holding the GIL, so the next
    batch is read and validated meanwhile (two cores, one transaction: nothing else uses the connection
    until `finish`)."""

    def __init__(self, work: Callable[[], None]) -> None:
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(work,), name="bapp-import-writer", daemon=True)
        self.thread.start()

    def _run(self, work: Callable[[], None]) -> None:
        try:
            work()
        except BaseException as exc:  # handed to the main thread in finish()
            self.error = exc

    def join(self) -> None:
        self.thread.join()

    def finish(self) -> None:
        self.thread.join()
        if self.error is not None:
            raise self.error


@dataclass
class _Pending:
    """A batch whose rows are written (or being written) but whose overlaps are not yet checked."""

    results: list[RowResult]
    accepted: list[Draft]
    plan: _Plan
    savepoint: Any
    worker: _Worker | None


@dataclass
class _Plan:
    """What one batch will write."""

    enrolments: dict[int, dict[int, str]]
    new_users: dict[str, str | None] = field(default_factory=dict)
    new_profiles: set[str] = field(default_factory=set)
    names: dict[int, str] = field(default_factory=dict)
    new_enrolments: dict[tuple[str, int], tuple[int | None, dt.date]] = field(default_factory=dict)
    inserts: list[Draft] = field(default_factory=list)
    updates: list[Draft] = field(default_factory=list)
    clients_created: int = 0

    def status_of(self, client_id: int, email: str, pathway_id: int) -> str | None:
        """The client's enrolment status in a pathway, counting the enrolments this batch will create."""
        if (email, pathway_id) in self.new_enrolments:
            return "active"
        return self.enrolments.get(client_id, {}).get(pathway_id)


def _when(start: dt.datetime, end: dt.datetime) -> str:
    return f"{start.isoformat().replace('+00:00', 'Z')}–{end.strftime('%H:%M')}Z"


# -- export ----------------------------------------------------------------------------------------------


def export_bookings(session: Session) -> Iterator[dict[str, Any]]:
    """Every booking as its record, ordered by start time then reference, streamed in batches.

    A Core select on the session's connection, each column labelled with its record key: rows arrive in
    batches as tuples and become records without ORM loading."""
    client = User.__table__.alias("client")
    builder = User.__table__.alias("builder")
    table = Booking.__table__.c
    types = SessionType.__table__.c
    joined = {
        "client": client.c.email,
        "client_name": client.c.name,
        "builder": builder.c.email,
        "session_id": table.session_type_id,
        "session": types.calendly_uri,  # else the slug when it names one session type, else the id
        "session_title": types.title,
        "category": types.category,
        "pathway": Pathway.__table__.c.slug,
    }
    # every other record key is the booking column of that name
    record_columns = {name: joined[name] if name in joined else table[name] for name in EXPORT_COLUMNS}
    query = (
        select(*(column.label(name) for name, column in record_columns.items()), types.slug.label("slug"))
        .select_from(Booking.__table__)
        .join(client, client.c.id == table.client_id)
        .outerjoin(builder, builder.c.id == table.builder_id)
        .join(SessionType.__table__, types.id == table.session_type_id)
        .outerjoin(Pathway.__table__, Pathway.__table__.c.id == table.pathway_id)
        .order_by(table.start_time, table.reference)
    )
    slugs = _unique_slugs(session)
    for row in session.connection().execute(query.execution_options(yield_per=STREAM_BATCH)):
        record = row._asdict()
        slug = record.pop("slug")
        if not record["session"]:
            record["session"] = slug if slug in slugs else str(record["session_id"])
        yield record


def _unique_slugs(session: Session) -> set[str]:
    """Slugs that name exactly one session type (others are exported by id)."""
    from sqlalchemy import func

    return set(
        session.scalars(
            select(SessionType.slug)
            .where(SessionType.slug.is_not(None))
            .group_by(SessionType.slug)
            .having(func.count() == 1)
        )
    )

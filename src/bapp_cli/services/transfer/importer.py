"""The import driver shared by every kind: batches, pydantic row validation, outcomes, the summary.

An importer for a kind validates a batch of rows (pydantic for shape and types, then the services' own
rule functions), resolves references with one query per batch, and writes set-based. It returns one
outcome per row: created, updated, unchanged, or the row's errors. The driver counts them, hands rejected
rows to the rejects writer, and — unless `continue_on_error` — refuses the whole import with every bad
row listed (line and field), which the caller's unit of work turns into "nothing written".
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Required, TypeVar, get_origin, get_type_hints

from pydantic import BeforeValidator, ConfigDict, Field, PlainValidator, StringConstraints, TypeAdapter, ValidationError
from pydantic.types import GetPydanticSchema
from pydantic_core import core_schema
from sqlalchemy import func, select
from sqlalchemy.engine import Row
from sqlalchemy.orm import Session

from bapp_cli.db.bulk import CHUNK, Mover, insert_rows
from bapp_cli.db.domains import MAX_INT32, URI_LENGTH
from bapp_cli.db.models import BuilderProfile, ClientProfile, Enrolment, Pathway, User
from bapp_cli.errors import BappError, InvalidInput, rule_message, too_long
from bapp_cli.services.emails import normalise_email
from bapp_cli.services.instants import check_in_range, parse_instant, read_iso
from bapp_cli.services.progress import record_completions
from bapp_cli.services.session_values import read_amount
from bapp_cli.services.skills import earned_counts
from bapp_cli.services.transfer.formats import RowError, Source, SourceRow

CREATED = "created"
UPDATED = "updated"
UNCHANGED = "unchanged"
OUTCOMES = (CREATED, UPDATED, UNCHANGED)  # also the names of Tally's counts
# Beyond this many bad rows the error keeps counting but stops listing (the rejects file has them all).
MAX_LISTED_ERRORS = 100_000
# A batch also ends once its rows took this much of the input: a record may be 64 MB, and a batch of them is
# held (as cells, values and validated rows) until it is written.
MAX_BATCH_BYTES = 4 << 20

# Cells the kinds' row schemas share. The bounds only limit what is read: an e-mail address is checked by
# normalise_email, an instant (text, or a TOML date/datetime) by `KindImporter.instant`. Any other value is no
# date (pydantic's own datetime read a number as seconds since 1970, start_date = 20310101 as 1970-08-24), and
# the union's one error names the cell, not pydantic's inner names for each of its members.
Email = Annotated[str, StringConstraints(strip_whitespace=True, max_length=320)]
_TEXT_OR_DATE = core_schema.union_schema(
    [core_schema.str_schema(strip_whitespace=True, max_length=64), core_schema.is_instance_schema(dt.date)],
    custom_error_type="not_a_date_or_time",
    custom_error_message="should be a date or time, as text of at most 64 characters",
)
When = Annotated[str | dt.date, GetPydanticSchema(lambda _type, _handler: _TEXT_OR_DATE)]


def _id_as_text(value: Any) -> Any:
    # JSON and TOML carry an id as a number (`"session": 2`); ids are documented as accepted wherever a
    # natural key is, so a whole number is read as its text rather than refused as "not a string".
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


# Whole numbers are bounded by what an INTEGER column holds on PostgreSQL (32 bits): a larger one in a file
# is a refused cell naming its line and field, never an overflow from the database (issue 15 #14).
RowId = Annotated[int, Field(ge=1, le=MAX_INT32)]
Int32 = Annotated[int, Field(ge=-MAX_INT32 - 1, le=MAX_INT32)]

IdOrKey = Annotated[str, BeforeValidator(_id_as_text), StringConstraints(strip_whitespace=True, max_length=URI_LENGTH)]
# money by the one grammar of every door: pydantic's Decimal read `1_000` and `١٠٠` (and is slower per cell); a text
# cell read once per distinct text, as a file's amounts are a few prices (a Decimal is immutable: rows may share it);
# text only, as the cache would answer a JSON true with a 1.0's amount (equal keys)
_read_amount_text = functools.lru_cache(maxsize=1024)(read_amount)
Money = Annotated[
    Decimal, PlainValidator(lambda value: (_read_amount_text if type(value) is str else read_amount)(value))
]


@dataclass
class RowResult:
    row: SourceRow
    outcome: str | None = None
    errors: list[RowError] = field(default_factory=list)


@dataclass(frozen=True)
class ImportOptions:
    """How to import: see `bapp import --help` for the flags behind each field."""

    timezone: str = "UTC"
    continue_on_error: bool = False
    dry_run: bool = False
    allow_overlap: bool = False
    allow_any_answers: bool = False
    create_clients: bool = True
    source_name: str = "-"
    batch_size: int | None = None


@dataclass
class Tally:
    kind: str
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    extra: dict[str, int] = field(default_factory=dict)

    def as_record(self, dry_run: bool) -> dict[str, Any]:
        counts = {name: value for name, value in asdict(self).items() if name != "extra"}
        return counts | {"dry_run": dry_run} | self.extra


@dataclass
class ImportSummary:
    """The result of `bapp import`: `{kind, created, updated, unchanged, rejected, dry_run}` (+ per-kind
    counts for `all`, and what a kind created on the side, e.g. `clients_created` for bookings)."""

    kind: str
    tallies: list[Tally]
    dry_run: bool
    errors: list[RowError] = field(default_factory=list)
    restored: bool = False
    renamed: dict[tuple[str, str], str] = field(default_factory=dict)  # a restore's (KindImporter.renamed)
    # import all's: builders.calendly_users_held_twice, which a backup restores as it holds them
    shared_calendly_users: dict[str, list[str]] = field(default_factory=dict)

    @property
    def rejected(self) -> int:
        return sum(tally.rejected for tally in self.tallies)

    def total(self, name: str) -> int:
        return sum(int(getattr(tally, name)) for tally in self.tallies)

    def as_record(self) -> dict[str, Any]:
        # one kind's summary is the same under `import all`'s `kinds` as on its own
        kinds = {tally.kind: tally.as_record(self.dry_run) for tally in self.tallies}
        if self.kind != "all":
            return kinds[self.kind]
        totals = {name: self.total(name) for name in (*OUTCOMES, "rejected")}
        return {"kind": "all", **totals, "dry_run": self.dry_run, "restored": self.restored, "kinds": kinds}


# every client's e-mail and user id: the kinds whose rows name a client narrow it to a batch (`rows_keyed`)
CLIENT_IDS = select(User.email, User.id).join(ClientProfile, ClientProfile.user_id == User.id)
RejectSink = Callable[[str, SourceRow, str], None]
Settled = TypeVar("Settled")


class Touched:
    """The rows of one table this import has written, in flat memory: a file's second row for a key
    that an earlier batch already wrote is a duplicate, not an update.

    Rows created by the import have ids above the highest id when it began (writers of the same table
    wait for the import's transaction: SQLite's write lock, PostgreSQL's table lock for bookings); rows it
    updated are marked in a bitmap indexed by id — a million ids cost 125 kB, not a set of a million keys.
    """

    def __init__(self, session: Session, table: Any) -> None:
        self.floor = int(session.scalar(select(func.max(table.c.id))) or 0)
        self.bits = bytearray()

    def add(self, row_id: int) -> None:
        byte = row_id >> 3
        if byte >= len(self.bits):
            self.bits.extend(bytes(byte - len(self.bits) + 1 + (len(self.bits) >> 1)))
        self.bits[byte] |= 1 << (row_id & 7)

    def __contains__(self, row_id: int) -> bool:
        byte = row_id >> 3
        return row_id > self.floor or (byte < len(self.bits) and bool(self.bits[byte] & (1 << (row_id & 7))))


def problem(exc: BappError, name: str | None, line: int) -> RowError:
    """A service rule's refusal as a row error; the rule's own `field: ` prefix becomes the field (an option's name,
    `calendly-user`, is its column's: `calendly_user`)."""
    head, separator, rest = exc.message.partition(": ")
    message = rest if separator and name is not None and head.replace("-", "_") == name else exc.message
    return RowError(line, name, f"{message} ({exc.hint})" if exc.hint and exc.code != "invalid_email" else message)


# Every column some import kind takes (each importer adds its schema's as it is defined; `kinds` imports
# them all before any row is read). The rules are shared across kinds and name their field by its domain
# name (a skills row's bad slug is "skill: …"), so any kind's column counts as a field, and nothing else
# does: "ann@example.org: …" or "the skill is archived: …" is a message, not a field.
_COLUMNS: set[str] = set()


def refusal(row: SourceRow, exc: BappError) -> RowResult:
    """A row a service rule refused; the message's `field: ` prefix names the field when it is a column."""
    head = exc.message.partition(": ")[0].replace("-", "_")
    return RowResult(row, errors=[problem(exc, head if head in _COLUMNS else None, row.line)])


@functools.cache
def _adapter(schema: Any) -> TypeAdapter[Any]:
    """The validator of a batch of `schema` rows: a column (or a nested item's key) no schema names is an error."""
    return TypeAdapter(list[schema], config=ConfigDict(extra="forbid"))


def _field_of(location: Sequence[Any]) -> str | None:
    """pydantic's error location as a field path: `custom_question_responses[0].answer`, without the names pydantic
    gives a union's members (`list[AnswerItem]`, `json[…]`, `constrained-str`), which are no field of the file."""
    parts = [str(part) for part in location if isinstance(part, int) or str(part).isidentifier()]
    return parts[0] + "".join(f"[{part}]" if part.isdigit() else f".{part}" for part in parts[1:]) if parts else None


def _message(error: Mapping[str, Any], refused: Mapping[str, str]) -> str:
    if (kind := error.get("type")) == "extra_forbidden":
        return refused.get(str(error["loc"][-1]), "unknown column")
    if kind == "string_too_long":
        return too_long(len(error["input"]), error["ctx"]["max_length"])
    # a null (JSON's, TOML's round trip, an empty CSV cell) where a field needs a value is one missing: pydantic's
    # "Input should be a valid string" named a type the file never chose. Not a list's item (`answer_choices[0]`):
    # nothing there is missing, the list holds a null where it may hold none
    named = isinstance(error["loc"][-1], str)
    return "required" if kind == "missing" or (error["input"] is None and named) else rule_message(error)


@dataclass(eq=False)
class KindImporter(ABC):
    """Base of the per-kind importers: column checks and pydantic validation of a batch. What every importer
    of one run shares: the session, the clock, the options, and `restore` — `import all` of a backup into an
    empty database, where ids and creation times are kept and history is taken as it was recorded."""

    kind: ClassVar[str]
    schema: ClassVar[Any]  # a TypedDict (validated with extra columns forbidden: `_adapter`)
    # each group: one of these columns is needed; none given: each column the schema marks Required
    required: ClassVar[tuple[tuple[str, ...], ...]] = ()
    refused: ClassVar[Mapping[str, str]] = {}  # columns a kind knows but never takes → why, in place of "unknown"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "schema" in vars(cls):
            _COLUMNS.update(cls.schema.__annotations__)

    session: Session
    now: dt.datetime
    options: ImportOptions
    restore: bool = False
    # what a restore renamed, for the sections after it: ("pathway" or "session", the backup's slug) → the new slug
    renamed: dict[tuple[str, str], str] = field(default_factory=dict)
    # (client id, key) of each badge this run's completion rules awarded, shared by `import all`'s kinds: the badges
    # section gives these the backup's award and revocation (`BadgeImporter`); never an id range, which a badge
    # another command awards meanwhile would fall in (PostgreSQL: `skills complete` waits for an import of skills,
    # pathways or all, db.locks.lock_for_import, not for one of progress or badges)
    awarded: set[tuple[int, str]] = field(default_factory=set)
    # `import all` of a document with its `bapp` header: the pathways and skills its own sections archived, as
    # ("pathways" or "skills", slug) (`RowImporter.existing`); None: no header
    recorded: set[tuple[str, str]] | None = None
    extra: dict[str, int] = field(default_factory=dict, init=False)
    kept_ids: set[int | None] = field(default_factory=set, init=False)  # the ids a restore's rows gave (`validate`)
    # a batch's last statement may still run while the next batch is read
    mover: Mover = field(default_factory=Mover, init=False)

    def __post_init__(self) -> None:  # noqa: B027 - an optional hook: the kinds with lookups of their own
        """A kind's own set-up (what it reads once per import), once the shared fields are set. Empty here, so
        a kind's override calls super() only to run a parent kind's (`RowImporter`, `_PeopleImporter`, …)."""

    def check_header(self, columns: Sequence[str]) -> None:
        """CSV/TSV: unknown or missing columns make the whole file bad (line 1)."""
        known = get_type_hints(self.schema, include_extras=True)
        unknown = f"unknown column; the columns of {self.kind} are: {', '.join(known)}"
        problems = [RowError(1, name, self.refused.get(name, unknown)) for name in columns if name not in known]
        groups = self.required or tuple((name,) for name, hint in known.items() if get_origin(hint) is Required)
        for group in groups:
            if not any(name in columns for name in group):
                alternatives = f" (or {', '.join(group[1:])})" if len(group) > 1 else ""
                problems.append(RowError(1, group[0], "required column is missing" + alternatives))
        if problems:
            message = f"{self.kind}: the header does not match ({problems[0].text()}); nothing was written"
            raise InvalidInput(message, details=[item.as_detail() for item in problems], code="bad_columns")

    def validate(self, rows: Sequence[SourceRow]) -> tuple[list[tuple[SourceRow, dict[str, Any]]], list[RowResult]]:
        """Shape and types of every row of the batch at once; returns (valid rows, rejected rows).

        A restore keeps the ids its rows give: one an earlier row of the kind gave is a bad row, where the table's
        key refused the second insert (exit 1). Restores only: `kept_ids` holds every id the kind's rows gave."""
        rejected = [RowResult(row, errors=[row.problem]) for row in rows if row.problem is not None]
        candidates = [row for row in rows if row.problem is None]
        adapter = _adapter(self.schema)
        try:
            values = adapter.validate_python([row.values for row in candidates])
            good = candidates
        except ValidationError as exc:
            by_index: dict[int, list[RowError]] = {}
            for error in exc.errors(include_url=False):
                index, *location = error["loc"]
                found = RowError(candidates[int(index)].line, _field_of(location), _message(error, self.refused))
                by_index.setdefault(int(index), []).append(found)
            good = [row for index, row in enumerate(candidates) if index not in by_index]
            rejected.extend(RowResult(candidates[index], errors=errors) for index, errors in sorted(by_index.items()))
            values = adapter.validate_python([row.values for row in good]) if good else []
        if not self.restore:
            return list(zip(good, values, strict=True)), rejected
        kept = []
        for row, item in zip(good, values, strict=True):
            if (wanted := item.get("id")) is not None and wanted in self.kept_ids:
                rejected.append(RowResult(row, errors=[RowError(row.line, "id", f"id {wanted} repeats")]))
            else:
                kept.append((row, item))
                self.kept_ids.add(wanted)
        return kept, rejected

    def settled(
        self, rows: Sequence[SourceRow], settle: Callable[[SourceRow, dict[str, Any]], Settled]
    ) -> tuple[list[tuple[SourceRow, Settled]], list[RowResult]]:
        """`validate`, then `settle(row, values)` each valid row in order: a rule's refusal (a BappError whose
        message starts with the column it is about) rejects that row. Returns (settled rows, rejected rows)."""
        valid, results = self.validate(rows)
        settled: list[tuple[SourceRow, Settled]] = []
        for row, values in valid:
            try:
                settled.append((row, settle(row, values)))
            except BappError as exc:
                results.append(refusal(row, exc))
        return settled, results

    @abstractmethod
    def apply(self, rows: Sequence[SourceRow]) -> list[RowResult]:
        """Write one validated batch; a result per row, in any order (the driver takes them in file order)."""

    def finish(self) -> None:  # noqa: B027 - an optional hook: most kinds need nothing at the end
        """After the last batch: completion rules, sequences."""

    def open_enrolments(
        self, opened: Mapping[tuple[int, int], tuple[int | None, dt.date]], *, new_clients: Collection[int] = ()
    ) -> Counter[str]:
        """Insert the active enrolments a batch of bookings or progress opens, (client id, pathway id) → (coach id,
        start date), counted in `enrolled`, then complete those in a pathway their client had finished: not the
        `new_clients` the import created, who have no history (no query per pathway and batch of a backfill)."""
        self.extra["enrolled"] += len(opened)
        columns = ("client_id", "pathway_id", "status", "builder_id", "start_date", "created_at", "updated_at")
        rows = [(*pair, "active", *values, self.now, self.now) for pair, values in opened.items()]
        insert_rows(self.session, Enrolment.__table__, columns, rows)  # no rows: nothing written
        return self.complete_opened((pathway, client) for client, pathway in opened if client not in new_clients)

    def complete_opened(self, opened: Iterable[tuple[int, int]]) -> Counter[str]:
        """The enrolments this batch opened, as (pathway id, client id), in a pathway their client had finished:
        completed at once, as services.enrolment.enrol completes one, but dated as the history met it (never
        before the start), as `import progress` dates its badges. Each badge awarded is noted in `awarded`. A
        restore keeps the statuses it restores."""
        award = functools.partial(record_completions, self.session, now=self.now, fundamentals=False, dated=True)
        earned: Counter[str] = Counter()
        for pathway_id, pairs in itertools.groupby([] if self.restore else sorted(opened), key=lambda pair: pair[0]):
            outcomes = award(pathway_ids=[pathway_id], client_ids=[client for _, client in pairs])
            earned.update(earned_counts(outcomes, self.awarded))
        return earned

    def refuses_new(self, kind: str, record: Any) -> bool:
        """Whether `record`, a pathway or a skill, is archived and refuses a link, session, enrolment or progress row
        as a new one: not as its history, a restore's or a backup's whose own section archived it. Only those: a
        header is no licence for records of a pathway or skill the document never said was archived."""
        return record.archived and not (self.restore or (kind, record.slug) in (self.recorded or ()))

    # -- value helpers shared by the kinds ---------------------------------------------------------------

    @functools.cached_property
    def pathways(self) -> dict[str, Row[int, str, bool]]:
        """Every pathway (id, slug, archived) by slug, in `pathways list` order, read once, when a row first
        names one."""
        listed = select(Pathway.id, Pathway.slug, Pathway.archived).order_by(Pathway.position, Pathway.slug)
        return {row.slug: row for row in self.session.execute(listed)}

    def pathway(self, name: str, field: str = "pathway") -> Row[int, str, bool]:
        """The pathway a row names (any case, or as the backup named one its restore renamed), or a refusal
        naming the column and the known slugs."""
        found = self.pathways.get(self.renamed.get(("pathway", name.strip())) or name.strip().lower())
        if found is None:
            raise InvalidInput(f"{field}: no pathway {name!r} (known: {', '.join(self.pathways) or 'none'})")
        return found

    @functools.cached_property
    def builders(self) -> dict[str, int]:
        """Every builder's user id by e-mail, read once, when a row first names one."""
        return dict(self.session.execute(select(User.email, User.id).join(BuilderProfile)).all())

    def builder(self, email: str | None, field: str = "builder") -> int | None:
        """The user id of the builder a row names (None when it names none), or a refusal naming the column."""
        if email is None:
            return None
        address = normalise_email(email, field=field)
        if address not in self.builders:
            raise InvalidInput(f"{field}: no builder with e-mail {address!r}")
        return self.builders[address]

    def instant(self, value: Any, name: str, *, zone: str | None = None) -> dt.datetime | None:
        """An aware UTC instant from ISO text or a TOML date/datetime; naive ones are read in `zone` or --timezone. A
        booking's start needs a time, as `--start` does: midnight is not what a row giving a date meant."""
        if value is None:
            return None
        # a TOML date or datetime reads as its text does: a date is the first instant of its day, which is not
        # 00:00 where the clocks skip or repeat midnight (a TOML date there was refused, its text was not)
        value = str(value)
        # the fast path of parse_instant for the common case: text with an offset (already stripped and
        # length-checked by the row schema); anything else takes the full path and its messages
        parsed = read_iso(value)
        if isinstance(parsed, dt.datetime) and parsed.tzinfo is not None and parsed.utcoffset() is not None:
            check_in_range(parsed, field=name, text=value)  # as typed first: near year 9999, UTC would overflow
            instant = parsed.astimezone(dt.UTC)
        else:
            zone = zone or self.options.timezone
            instant = parse_instant(value, timezone=zone, field=name, require_time=name == "start_time")
        check_in_range(instant, field=name)  # and in UTC, where it is stored: a backup holding it restores
        return instant


def run_kind(
    importer: KindImporter,
    rows: Iterable[SourceRow],
    *,
    source: Source,
    errors: list[RowError],
    rejects: RejectSink | None,
    on_batch: Callable[[int], None] | None = None,
    label: str | None = None,
) -> Tally:
    """Feed `rows` (read from `source`) to `importer` in batches; count outcomes; collect errors and rejects."""
    tally = Tally(importer.kind)
    with importer.mover:
        # the one chunk size of set-based work, for every kind (its bytes bound a batch of long records)
        for batch in _batches(rows, source, importer.options.batch_size or CHUNK):
            for result in sorted(importer.apply(batch), key=lambda result: result.row.line):
                if not result.errors:
                    outcome = result.outcome if result.outcome in OUTCOMES else UNCHANGED
                    setattr(tally, outcome, getattr(tally, outcome) + 1)
                    continue
                tally.rejected += 1
                room = max(MAX_LISTED_ERRORS - len(errors), 0)
                errors.extend(error if label is None else replace(error, kind=label) for error in result.errors[:room])
                if rejects is not None:
                    rejects(importer.kind, result.row, "; ".join(error.text() for error in result.errors))
            if on_batch is not None:
                on_batch(len(batch))
        importer.mover.wait()
        importer.finish()
    tally.extra = dict(importer.extra)
    return tally


def _batches(rows: Iterable[SourceRow], source: Source, size: int) -> Iterator[list[SourceRow]]:
    """`rows` in lists of `size`, each cut short once its rows took MAX_BATCH_BYTES of the source."""
    batch, start = [], source.bytes_read
    for row in rows:
        batch.append(row)
        if len(batch) == size or source.bytes_read - start > MAX_BATCH_BYTES:
            yield batch
            batch, start = [], source.bytes_read
    if batch:
        yield batch


def refuse_if_bad(summary: ImportSummary, *, continue_on_error: bool) -> None:
    """All-or-nothing: any bad row refuses the import (exit 6) listing every bad row."""
    if not summary.rejected or continue_on_error:
        return
    where = f" (first: line {summary.errors[0].line}, {summary.errors[0].text()})" if summary.errors else ""
    message = f"{summary.rejected} bad row{'s' if summary.rejected != 1 else ''}{where}; nothing was written"
    hint = (
        "fix the rows listed, or pass --continue-on-error to import the good rows (--rejects PATH keeps the bad ones)"
    )
    raise InvalidInput(message, hint=hint, details=[error.as_detail() for error in summary.errors], code="bad_rows")

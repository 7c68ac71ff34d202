"""The ordinary reads in plain SQL: `bookings list/show`, `export bookings`, `sessions list/show`, `clients list/show`,
`builders list`, `pathways list/show`, `skills list`.

These commands run on a DB-API connection (db.dbapi) and never import SQLAlchemy: its import alone costs
twice a whole `sqlite-utils rows` run (docs/benchmarks.md, P7). The database hands over text — instants
in bapp's one form (`services.instants.instant_text`), money as two-decimal text, and, for CSV/TSV, user
text already made spreadsheet-safe (`services.spreadsheet`) — so a listing writes the driver's rows as
they come (P6). Each query returns the record keys and an iterator of row tuples in that order.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from bapp_cli.config import calendly_user_uri
from bapp_cli.db.batches import BATCH_SIZE
from bapp_cli.db.dbapi import Database
from bapp_cli.db.domains import BOOKING_STATUSES, ENROLMENT_STATUSES, MAX_INT32, SESSION_CATEGORIES, as_status
from bapp_cli.db.json_values import stored_json
from bapp_cli.errors import InvalidInput, NotFound, UnreadableValue, quoted
from bapp_cli.services.emails import normalise_email
from bapp_cli.services.listing import ALL, Page
from bapp_cli.services.spreadsheet import COMPACT_JSON

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

# A booking's export record, in the order `import bookings` reads it: each column's SQL and what it holds —
# "typed": text people typed (the booking form, imported files), a cell a spreadsheet could run as a formula;
# "instant": written as bapp's instant text; "money"; "answers"; "": bapp's own constrained words and numbers.
# `session` names the session type by Calendly URI, else by its slug (unique since migration 0007), else by id.
_EXPORT_SQL = {
    "id": ("b.id", ""),
    "reference": ("b.reference", ""),
    "client": ("c.email", "typed"),
    "client_name": ("c.name", "typed"),
    "builder": ("bu.email", "typed"),
    "session_id": ("b.session_type_id", ""),
    "session": ("COALESCE(NULLIF(t.calendly_uri, ''), t.slug, CAST(t.id AS TEXT))", "typed"),
    "session_title": ("t.title", "typed"),
    "category": ("t.category", ""),
    "start_time": ("b.start_time", "instant"),
    "end_time": ("b.end_time", "instant"),
    "client_timezone": ("b.client_timezone", "typed"),
    "status": ("b.status", ""),
    "payment_status": ("b.payment_status", ""),
    "amount": ("b.amount", "money"),
    "currency": ("b.currency", ""),
    "pathway": ("p.slug", "typed"),
    "custom_question_responses": ("b.custom_question_responses", "answers"),
    "calendly_event_uri": ("b.calendly_event_uri", "typed"),
    "calendly_invitee_uri": ("b.calendly_invitee_uri", "typed"),
    "idempotency_key": ("b.idempotency_key", "typed"),
    "source": ("b.source", ""),
    "created_at": ("b.created_at", "instant"),
    "cancellation_reason": ("b.cancellation_reason", "typed"),
    "cancelled_at": ("b.cancelled_at", "instant"),
    "request_fingerprint": ("b.request_fingerprint", ""),
    "remote_updated_at": ("b.remote_updated_at", "instant"),
}
EXPORT_COLUMNS = tuple(_EXPORT_SQL)
_EXPORT_ONLY = ("id", "session", "cancellation_reason", "cancelled_at", "request_fingerprint", "remote_updated_at")
# a booking's record in `bookings list` and `show` and every command's result
BOOKING_COLUMNS = tuple(name for name in EXPORT_COLUMNS if name not in _EXPORT_ONLY)
INSTANT_COLUMNS = frozenset(name for name, (_, holds) in _EXPORT_SQL.items() if holds == "instant")
ANSWERS = "custom_question_responses"
_BOOKINGS_FROM = """
FROM bookings b
JOIN users c ON c.id = b.client_id
LEFT JOIN users bu ON bu.id = b.builder_id
JOIN session_types t ON t.id = b.session_type_id
LEFT JOIN pathways p ON p.id = b.pathway_id"""


@dataclass(frozen=True)
class Rows:
    """A query's record keys and its rows (tuples in that order), streamed from the cursor."""

    columns: tuple[str, ...]
    rows: Iterable[Sequence[Any]]

    def records(self) -> Iterator[dict[str, Any]]:
        columns = self.columns
        return (dict(zip(columns, row, strict=True)) for row in self.rows)


@dataclass(frozen=True)
class BookingFilters:
    client_email: str | None = None
    builder_email: str | None = None
    pathway: str | None = None  # a slug, or "none" for bookings without a pathway
    status: str | None = None
    session: str | None = None
    start_from: dt.datetime | None = None
    start_to: dt.datetime | None = None
    upcoming: dt.datetime | None = None  # now: only pending/confirmed bookings yet to start
    newest_first: bool = False
    booking_id: int | None = None  # one booking (a command's result)
    client_id: int | None = None  # a client the caller has already found, rather than `client_email`


class _Where:
    """A plain read's conditions (all must hold) with their `:name` parameters, then its page's window;
    `searched`: the columns `page.search` looks in."""

    def __init__(self, db: Database, page: Page, *searched: str) -> None:
        self.db, self.page = db, page
        self.conditions: list[str] = []
        self.parameters: dict[str, Any] = {}
        if page.searching:
            found = " OR ".join(db.contains(column, "search") for column in searched)
            self.add(f"({found})", search=page.pattern)

    def add(self, condition: str, **values: Any) -> None:
        self.conditions.append(condition)
        self.parameters.update(values)

    def rows(self, select: str, order: str, *, streamed: bool = False) -> Iterator[tuple[Any, ...]]:
        """The rows of `select` (the SELECT … FROM …) that meet the conditions, ordered by `order`, paged;
        `streamed` as `Database.rows` when the page may hold more than a batch: a server-side cursor's round trips
        (declare, fetch, fetch, close) buy nothing for one that fits a batch (`clients show`'s recent bookings)."""
        condition = f" WHERE {' AND '.join(self.conditions)}" if self.conditions else ""
        window = self.db.window(limit := self.page.limit, self.page.offset, self.parameters)
        streamed = streamed and (limit is None or limit > BATCH_SIZE)
        return self.db.rows(f"{select}{condition} ORDER BY {order} {window}", self.parameters, streamed=streamed)


def _booking_expressions(db: Database, *, cells: bool, safe: bool) -> dict[str, str]:
    """SQL for each booking record key: `cells` for CSV/TSV, where typed text is spreadsheet-safe if `safe`."""
    expressions = {}
    for name, (column, holds) in _EXPORT_SQL.items():
        if holds == "instant":
            column = db.instant(column)
        elif holds == "money":
            column = db.money(column)
        elif holds == "typed" and safe:
            column = db.spreadsheet_safe(column)
        elif holds == "answers" and cells and db.dialect == "sqlite":  # SQLite minifies it (see `_with_answers`)
            # json() keeps an escape and a number's spelling (1e5, 1.50, -0) as stored, where bapp's JSON writes the
            # value: such text comes as it is, a space in front, for Python to write (6 µs a row, P6). A real number is
            # sought (json_tree) only where a GLOB finds its marks, each GLOB starting with a character SQLite scans for
            # (one starting with a class cost 3 times as much): a date, an e-mail or a price in an answer stays in C.
            # Text that is no strict JSON comes as it is too, before json_tree or json() could fail the query (which
            # names no booking) or take it as JSON5 (NaN, Infinity: SQLite 3.42+), for Python to refuse naming it.
            spelt = " OR ".join(f"{column} GLOB '*{mark}*'" for mark in (".[0-9]", "e[0-9+-]", "E[0-9+-]"))
            real = f"({spelt}) AND EXISTS (SELECT 1 FROM json_tree({column}) WHERE type = 'real')"
            kept = f"instr({column}, '\\u') OR instr({column}, '\\/') OR {column} GLOB '*-0[^0-9]*'"
            column = (
                f"CASE WHEN {kept} OR NOT json_valid({column}) OR {real} THEN ' ' || {column} ELSE json({column}) END"
            )
        elif holds == "answers":
            column = db.json_text(column)
        expressions[name] = column
    return expressions


def _with_answers(
    db: Database, columns: Sequence[str], rows: Iterable[Sequence[Any]], *, cells: bool
) -> Iterator[Sequence[Any]]:
    """Rows with the answers column decoded (a list), or for cells as compact JSON text, as every other JSON
    bapp writes. SQLite's json() has already minified it (see `_booking_expressions`) unless it would keep the
    text spelt otherwise than bapp writes JSON, a `\\u` escape above all (stored JSON is ASCII; a cell keeps
    non-ASCII letters as they are): only those rows, and on PostgreSQL every row that answers something, are
    decoded here. An amount SQLite could not read (`Database.money`) or an instant that is no date is refused."""
    index, amount, reference = columns.index(ANSWERS), columns.index("amount"), columns.index("reference")
    minified = db.dialect == "sqlite"
    # SQLite keeps raw SQL's text in a DATETIME column ('garbageZ'), PostgreSQL years Python has not (10000, 1 BC:
    # `Database.instant`). Checked by the parse alone, the error built only when one fails (P6).
    instants = [at for at, name in enumerate(columns) if name in INSTANT_COLUMNS]
    for row in rows:
        if row[amount] is None:
            raise unreadable_stored(db, "bookings.amount", "reference", row[reference], of=f"booking {row[reference]}")
        try:
            for at in instants:
                if row[at] is not None:
                    dt.datetime.fromisoformat(row[at])
        except ValueError:
            raise unreadable_stored(
                db, f"bookings.{columns[at]}", "reference", row[reference], of=f"booking {row[reference]}"
            ) from None
        found = row[index]
        if cells and (found is None or found == "[]" or (minified and found[:1] != " ")):
            yield row
        else:
            spelt = found[1:] if cells and minified else found  # the space that marked it is not stored text
            found = stored_json(spelt, f"bookings.{ANSWERS}", of=f"booking {row[reference]}")
            yield (*row[:index], COMPACT_JSON(found) if cells else found, *row[index + 1 :])


def list_bookings(
    db: Database,
    filters: BookingFilters,
    *,
    page: Page = ALL,
    cells: bool = False,
    raw: bool = False,
    columns: Sequence[str] = BOOKING_COLUMNS,
) -> Rows:
    """Bookings matching every filter, ordered by start time, streamed; `page.search` looks in the
    reference, the client's e-mail and name, and the session title. The filters are checked (and the
    people, pathway and session they name looked up) before the first row is read. `columns`: the record
    keys, or also other booking columns (`calendly_state`). `cells`: as CSV/TSV cells (answers as JSON
    text), spreadsheet-safe unless `raw`."""
    where = _Where(db, page, "b.reference", "t.title", "c.email", "c.name")
    if filters.booking_id is not None:
        where.add("b.id = :booking", booking=filters.booking_id)
    if filters.client_id is not None:
        where.add("b.client_id = :client", client=filters.client_id)
    elif filters.client_email is not None:
        where.add("b.client_id = :client", client=person(db, filters.client_email, "client", "u.id")[0])
    if filters.builder_email is not None:
        where.add("b.builder_id = :builder", builder=person(db, filters.builder_email, "builder", "u.id")[0])
    if filters.pathway is not None:
        if filters.pathway.strip().lower() == "none":
            where.add("b.pathway_id IS NULL")
        else:
            where.add("b.pathway_id = :pathway", pathway=pathway_id(db, filters.pathway))
    if filters.status is not None:
        where.add("b.status = :status", status=check_status(filters.status, BOOKING_STATUSES))
    if filters.session is not None:
        where.add("b.session_type_id = :session", session=session_type_id(db, filters.session))
    starts = (("start_from", ">=", filters.start_from), ("start_to", "<", filters.start_to))
    for name, operator, instant in (*starts, ("now", ">=", filters.upcoming)):
        if instant:
            where.add(f"b.start_time {operator} :{name}", **{name: db.stored_instant(instant)})
    if filters.upcoming:
        where.add("b.status IN ('pending', 'confirmed')")
    # Ties go by id, the order bookings were recorded: the start-time index holds it, so the rows come
    # already in order (a tie-break by reference made SQLite sort every row again, P6).
    order = "b.start_time DESC, b.id DESC" if filters.newest_first else "b.start_time, b.id"
    expressions = _booking_expressions(db, cells=cells, safe=cells and not raw)
    select = ", ".join(expressions.get(name, f"b.{name}") for name in columns)
    # streamed unless it reads one booking (a command's result): a listing or an export may hold any number
    rows = where.rows(f"SELECT {select}{_BOOKINGS_FROM}", order, streamed=filters.booking_id is None)
    return Rows(tuple(columns), _with_answers(db, columns, rows, cells=cells))


def export_bookings(db: Database, *, cells: bool = False, raw: bool = False) -> Rows:
    """Every booking as its export record, ordered by start time then id, streamed. `cells`: as
    CSV/TSV cells (answers as JSON text), spreadsheet-safe unless `raw`."""
    return list_bookings(db, BookingFilters(), cells=cells, raw=raw, columns=EXPORT_COLUMNS)


# -- the names a filter or a command gives ---------------------------------------------------------------


def person(db: Database, email: str, role: str, columns: str) -> tuple[Any, ...]:
    """`columns` of the client or builder with `email` (`u` their user, `p` their profile), or NotFound."""
    normalised = normalise_email(email, field=role)
    sql = f"SELECT {columns} FROM users u JOIN {role}_profiles p ON p.user_id = u.id WHERE u.email = :email"
    found = db.one(sql, {"email": normalised})
    if found is None:  # the one wording of every lookup by e-mail (people.get_client and get_builder's too)
        hint = f"add one with `bapp {role}s add`"
        raise NotFound(f"no {role} with e-mail {quoted(normalised)}", hint=hint, code=f"{role}_not_found")
    return found


def builder_ids_by_calendly_uri(source: Database | Session) -> dict[str, int]:
    """Builders' user ids by their Calendly user URI as Calendly writes it (config.calendly_user_uri, which it names
    owners and hosts by), however `builders add` stored it: how a Calendly owner or host is recognised as a builder
    (by a sync, on its plain connection, and by a pull, on its ORM session's)."""
    sql = "SELECT calendly_user_uri, user_id FROM builder_profiles WHERE calendly_user_uri <> ''"
    return {calendly_user_uri(uri) or uri: user_id for uri, user_id in Database.of(source).rows(sql)}


def pathway_id(db: Database, slug: str) -> int:
    """A pathway's id by its slug in any case (services.pathways.get_pathway's lookup too), or NotFound naming
    the slugs there are."""
    found = db.one("SELECT id FROM pathways WHERE slug = :slug", {"slug": slug.strip().lower()})
    if found is None:
        known = ", ".join(row[0] for row in db.rows("SELECT slug FROM pathways ORDER BY position, slug"))
        raise NotFound(
            f"no pathway {quoted(slug)}", hint=f"known pathways: {known or 'none'}", code="pathway_not_found"
        )
    return int(found[0])


def check_tier(source: Database | Session, slug: str, tier: int, field: str) -> None:
    """That pathway `slug` has tier `tier`: a link, `skills assign --tier` and `skills list --tier` refuse one it has
    not (a filter's typo is no empty answer, as an unknown pathway is none)."""
    sql = "SELECT 1 FROM pathway_tiers t JOIN pathways p ON p.id = t.pathway_id WHERE p.slug = :slug AND t.tier = :tier"
    if Database.of(source).one(sql, {"slug": slug, "tier": tier}) is None:
        hint = f"see `bapp pathways show {slug}`, or add it with `bapp pathways set-tier`"
        raise InvalidInput(f"{field}: pathway {slug!r} has no tier {tier}", hint=hint, code="unknown_tier")


def session_key(identifier: str) -> tuple[str, int | str]:
    """The column a reference names a session type by, and its value: digits alone are an id (no slug is
    digits alone: session_types.check_session_slug), a URI is a Calendly URI, anything else a slug in any
    case. Every command and import that names a session type reads the reference here."""
    ident = identifier.strip()
    if ident.isascii() and ident.isdigit():  # not str.isdigit alone: '²' is a digit int() refuses
        # nor digits past 4,300 (exit 1): past 19 they are no id, as one past MAX_INT32 is none
        return "id", int(ident) if len(ident.lstrip("0")) <= 19 else MAX_INT32 + 1
    return ("calendly_uri", ident) if "://" in ident else ("slug", ident.lower())


def session_type_id(db: Database, identifier: str) -> int:
    """A session type by id, Calendly URI or slug (slugs are unique: migration 0007)."""
    ident = identifier.strip()
    if not ident:
        raise InvalidInput("session: an id, slug or Calendly URI is required", code="invalid_session")
    column, value = session_key(ident)
    shown = quoted(ident).strip("'") if column == "id" else quoted(ident)  # an id's digits shown bare, as ids are
    named = {"id": "id ", "calendly_uri": "Calendly URI "}.get(column, "slug ") + shown
    # an id past the column's range names no row; asking the database would overflow
    too_large = isinstance(value, int) and value > MAX_INT32
    found = None if too_large else db.one(f"SELECT id FROM session_types WHERE {column} = :value", {"value": value})
    if found is None:
        raise NotFound(f"no session type with {named}", hint="see `bapp sessions list --all`", code="session_not_found")
    return int(found[0])


def parse_category(value: str) -> str:
    """A session category as stored (lowercase), or InvalidInput naming them (session_types re-exports it)."""
    return check_status(value, SESSION_CATEGORIES, field="category")


def check_status(status: str, statuses: Sequence[str] = ENROLMENT_STATUSES, *, field: str = "status") -> str:
    """`status` as stored (lowercase, `no-show` as no_show), if it is one of `statuses` (an enrolment's unless
    told), else InvalidInput naming them, its code `invalid_<field>`."""
    cleaned = as_status(status.strip().lower())
    if cleaned not in statuses:
        raise InvalidInput(f"{field}: {quoted(status)} is not one of {', '.join(statuses)}", code=f"invalid_{field}")
    return cleaned


def instant_value(text: str | None, column: str = "an instant", *, of: str | None = None) -> dt.datetime | None:
    """An instant the database handed over as text, as an aware datetime (for a table in local time); text
    that is no instant (raw SQL's, on SQLite) is UnreadableValue naming `column`."""
    try:
        return None if text is None else dt.datetime.fromisoformat(text)
    except ValueError:
        raise UnreadableValue(column, text.removesuffix("Z") if text else text, of=of) from None


def among_ids(ids: Iterable[int]) -> str:
    """` IN (1, 2)` for row ids (none: `IN (NULL)`, which matches nothing), written into the SQL: integers bapp read
    itself, each made an int, so nothing a user typed; one statement whatever their number."""
    return f" IN ({', '.join(str(int(key)) for key in ids) or 'NULL'})"


def whole(value: Any, column: str, *, of: str) -> Any:
    """A whole number (or None) the database handed over; text raw SQL put in an INTEGER column, which SQLite
    keeps, is UnreadableValue naming `column`, as db.types.Whole refuses it on the ORM's reads."""
    if value is None or type(value) is int:
        return value
    raise UnreadableValue(column, value, of=of)


def unreadable_stored(db: Database, column: str, key_column: str, key: Any, *, of: str) -> UnreadableValue:
    """The error for a `column` (`table.name`) the query could not read (a money column `Database.money` read
    as NULL, an instant that is no date), showing the value stored in the row whose `key_column` is `key`."""
    table, _, name = column.partition(".")
    found = db.one(f"SELECT {name} FROM {table} WHERE {key_column} = :key", {"key": key})
    return UnreadableValue(column, found[0] if found else ..., of=of)


# -- the session catalogue -------------------------------------------------------------------------------

SESSION_COLUMNS = (
    "id",
    "slug",
    "title",
    "description",
    "category",
    "requires_auth",
    "bookable",
    "enabled",
    "is_secret",
    "duration_minutes",
    "duration_options",
    "price",
    "currency",
    "display_order",
    "pathways",
    "builder",
    "calendly_uri",
    "scheduling_url",
    "custom_questions",
)


# "Bookable": locally enabled, active in Calendly (or local-only), not deleted there, still listed
# (`session_types.check_bookable` is the same rule over a loaded row).
BOOKABLE = (
    "(t.enabled AND (t.calendly_uri IS NULL OR t.remote_active) AND t.remote_deleted_at IS NULL "
    "AND t.present_in_last_sync)"
)
_FLAGS = ("requires_auth", "bookable", "enabled", "is_secret")  # SQLite hands booleans over as 0 and 1
# the categories in the order clients see them (the domain's order)
_CATEGORY_ORDER = (
    "CASE t.category "
    + " ".join(f"WHEN '{name}' THEN {index}" for index, name in enumerate(SESSION_CATEGORIES))
    + " ELSE 99 END"
)


def list_session_types(
    db: Database,
    *,
    include_all: bool = False,
    category: str | None = None,
    pathway: str | None = None,
    builder: str | None = None,
    ids: Iterable[int] | None = None,
    available_to: str | None = None,
    page: Page = ALL,
) -> list[dict[str, Any]]:
    """Session records: bookable types (all with `include_all`; only those of `ids` if given), grouped by
    category then display order; `page.search` looks in slug and title. Two queries: the types, then their
    pathways. The one way a session record is read: `sessions list`, `show`, `available`, the export.

    `available_to` "client" or "anonymous" (`sessions available`): only what a client with an account, or
    a visitor without one, may book — no secret types, none of a builder not accepting bookings, and for a
    visitor none that needs an account; there
    `pathway` narrows only the pathway sessions to its own (free and specialized ones stay)."""
    where = _Where(db, page, "t.slug", "t.title")
    if available_to is not None:
        where.add("NOT t.is_secret" + (" AND NOT t.requires_auth" if available_to == "anonymous" else ""))
        # nor a builder's who takes no new bookings: rule 1 would refuse each
        where.add("NOT EXISTS (SELECT 1 FROM builder_profiles WHERE user_id = t.builder_id AND NOT accepting_bookings)")
    among = ""  # `ids` as SQL, for the types and their links
    if ids is not None:
        among = among_ids(ids)
        where.add(f"t.id{among}")
    if not include_all:
        where.add(BOOKABLE)
    if category is not None:
        where.add("t.category = :category", category=parse_category(category))
    if pathway is not None or available_to is not None:
        # what may be booked: a pathway session only under a linked pathway that is not archived (rule 4)
        conditions, parameters = (["NOT p.archived"] if available_to is not None else []), {}
        if pathway is not None:
            conditions.append("p.id = :pathway")
            parameters["pathway"] = pathway_id(db, pathway)
        links = "SELECT session_type_id FROM session_type_pathways JOIN pathways p ON p.id = pathway_id"
        linked = f"t.id IN ({links} WHERE {' AND '.join(conditions)})"
        where.add(f"(t.category <> 'pathway' OR {linked})" if available_to is not None else linked, **parameters)
    if builder is not None:
        where.add("t.builder_id = :builder", builder=person(db, builder, "builder", "u.id")[0])
    expressions = {"bookable": BOOKABLE, "price": db.money("t.price"), "pathways": "NULL", "builder": "bu.email"}
    expressions |= {name: db.json_text(f"t.{name}") for name in ("duration_options", "custom_questions")}
    select = ", ".join(expressions.get(name, f"t.{name}") for name in SESSION_COLUMNS)
    rows = where.rows(
        f"SELECT {select} FROM session_types t LEFT JOIN users bu ON bu.id = t.builder_id",
        f"{_CATEGORY_ORDER}, t.display_order, t.price, t.title, t.id",
    )
    records = {row[0]: dict(zip(SESSION_COLUMNS, row, strict=True)) for row in rows}  # by id, in order
    for record in records.values():
        record |= {name: bool(record[name]) for name in _FLAGS}
        if record["price"] is None:
            raise unreadable_stored(db, "session_types.price", "id", record["id"], of=f"row {record['id']}")
        record["price"] = Decimal(record["price"])  # as the ORM hands it over: `available` computes with it
        for name in ("duration_options", "custom_questions"):
            record[name] = stored_json(record[name], f"session_types.{name}", of=f"row {record['id']}")
        for name in ("duration_minutes", "display_order"):
            whole(record[name], f"session_types.{name}", of=f"row {record['id']}")
        record["pathways"] = []
    links = "SELECT l.session_type_id, p.slug FROM session_type_pathways l JOIN pathways p ON p.id = l.pathway_id"
    links += f" WHERE l.session_type_id{among}" if among else ""  # one type's show or update: its links alone
    for session_type, slug in db.rows(f"{links} ORDER BY p.position, p.slug") if records else ():
        if session_type in records:
            records[session_type]["pathways"].append(slug)
    return list(records.values())


# -- progress: the catalogue, one client's progress and badges, `clients show` ----------------------------
# Computed from the progress rows and the catalogue's links, never stored as counters (services.progress
# has the rules); the ORM commands read the same SQL on their session's connection (`Database.of`).

FUNDAMENTALS_KEY = "fundamentals"
FUNDAMENTALS_NAME = "Fundamentals"
CLIENT_COLUMNS = ("email", "name", "company", "industry", "created_at")
RECENT_BOOKINGS = 10


def percent(completed: int, total: int) -> int:
    """Whole percent, rounded down; nothing linked is 0 %, not an error."""
    return (completed * 100) // total if total > 0 else 0


def tier_badge_key(pathway_slug: str, tier: int) -> str:
    return f"tier:{pathway_slug}:{tier}"


def pathway_badge_key(pathway_slug: str) -> str:
    return f"pathway:{pathway_slug}"


@dataclass(frozen=True)
class PathwayInfo:
    id: int
    slug: str
    name: str
    icon: str | None
    color: str | None
    position: int
    tiers: dict[int, str]  # tier number → name, in order
    totals: dict[int, int]  # tier number → non-archived skills linked

    @property
    def total(self) -> int:
        return sum(self.totals.values())


@dataclass(frozen=True)
class Catalogue:
    """The small, client-independent part of every computation: pathways, tiers, linked-skill counts."""

    pathways: dict[int, PathwayInfo]
    fundamentals: int  # non-archived fundamental skills

    def _badge_parts(self, key: str) -> tuple[str, PathwayInfo | None, int | None]:
        """`tier:<slug>:<n>` → ("tier", its pathway, n); `pathway:<slug>` → ("pathway", its pathway, None)."""
        kind, _, rest = key.partition(":")
        slug, _, number = rest.rpartition(":") if kind == "tier" else (rest, "", "")
        info = next((info for info in self.pathways.values() if info.slug == slug), None)
        return kind, info, int(number) if number.isascii() and number.isdigit() else None

    def badge_name(self, key: str) -> str:
        """A badge's human name from the current catalogue (a renamed pathway renames its badges)."""
        kind, info, number = self._badge_parts(key)
        if key == FUNDAMENTALS_KEY:
            return FUNDAMENTALS_NAME
        if kind == "pathway" and info is not None:
            return f"{info.name} complete"
        if kind == "tier" and info is not None and number in info.tiers:
            return f"{info.name} · {info.tiers[number]}"
        return key

    def badge_order(self, key: str) -> tuple[int, int, int, str]:
        """Badges in catalogue order: per pathway its tiers then the pathway badge; fundamentals last."""
        kind, info, number = self._badge_parts(key)
        if key == FUNDAMENTALS_KEY:
            return (1 << 30, 0, 0, key)
        return (info.position if info else (1 << 29), 0 if kind == "tier" else 1, number or 0, key)


def load_catalogue(source: Database | Session) -> Catalogue:
    """Three small queries, independent of the number of clients."""
    db = Database.of(source)
    tiers: dict[int, dict[int, str]] = defaultdict(dict)
    totals: dict[int, dict[int, int]] = defaultdict(dict)
    for pathway, tier, name, linked in db.rows(
        "SELECT t.pathway_id, t.tier, t.name, count(s.id) FROM pathway_tiers t "
        "LEFT JOIN skill_pathway_links l ON l.pathway_id = t.pathway_id AND l.tier = t.tier "
        "LEFT JOIN skills s ON s.id = l.skill_id AND NOT s.archived "
        "GROUP BY t.pathway_id, t.tier, t.name ORDER BY t.pathway_id, t.tier"
    ):
        tiers[pathway][whole(tier, "pathway_tiers.tier", of=f"pathway row {pathway}")] = name  # sorted as numbers
        totals[pathway][tier] = int(linked)
    rows = db.rows("SELECT id, slug, name, icon, color, position FROM pathways")
    pathways = {}
    for key, slug, name, icon, color, position in rows:
        position = whole(position, "pathways.position", of=f"pathway {slug}")  # badges are sorted by it
        pathways[key] = PathwayInfo(key, slug, name, icon, color, position, tiers[key], totals[key])
    fundamentals = db.one("SELECT count(*) FROM skills WHERE is_fundamental AND NOT archived")
    return Catalogue(pathways, int(fundamentals[0]) if fundamentals else 0)


PROGRESS_COLUMNS = (
    *("pathway", "name", "start_date", "status", "builder", "completed_at"),
    *("progress", "tiers", "completed", "total", "percent"),
)
SKILL_COLUMNS = ("skill", "name", "status", "completed_at", "completed_via")
BADGE_COLUMNS = ("key", "name", "awarded_at", "revoked_at")


def _counted(skills: list[dict[str, Any]]) -> dict[str, int]:
    """The completed, total and percent of skills counted together: a tier, an enrolment, the fundamentals."""
    completed = sum(1 for item in skills if item["status"] == "completed")
    return {"completed": completed, "total": len(skills), "percent": percent(completed, len(skills))}


def _progress_record(*values: Any, skills: list[dict[str, Any]]) -> dict[str, Any]:
    """A PROGRESS_COLUMNS record: `values` up to its `tiers`, then the counts of all its `skills`."""
    return {**dict(zip(PROGRESS_COLUMNS[:8], values, strict=True)), **_counted(skills)}


@dataclass(frozen=True)
class ClientProgress:
    client: str
    client_name: str | None
    pathways: list[dict[str, Any]]  # PROGRESS_COLUMNS records: each enrolment, then the Fundamentals group
    badges: list[dict[str, Any]]  # key, name, awarded_at, revoked_at (datetimes; revoked_at None if held)
    looks: dict[str, tuple[str | None, str | None]]  # pathway slug → icon, colour (the tree shows them)


def _client(db: Database, email: str) -> tuple[Any, ...]:
    """The client's id, e-mail, name, company, industry and profile creation instant (text), or NotFound."""
    return person(db, email, "client", f"u.id, u.email, u.name, p.company, p.industry, {db.instant('p.created_at')}")


def _badges(db: Database, client_id: int, catalogue: Catalogue, page: Page = ALL) -> list[dict[str, Any]]:
    # the page is cut after the catalogue's order, which SQL does not know (badges awarded together tie on their
    # time): a client holds a few dozen badges at most
    where = _Where(db, Page(search=page.search), "key")
    where.add("client_id = :client", client=client_id)
    # a revoked badge stays in the record (badges are permanent), marked with when its credential was revoked
    instants = f"{db.instant('awarded_at')}, {db.instant('revoked_at')}"
    rows = where.rows(f"SELECT key, {instants} FROM badges", "awarded_at, id")
    awarded = [(instant_value(at, "badges.awarded_at", of=key), key, revoked) for key, at, revoked in rows]
    ordered = sorted(awarded, key=lambda row: (row[0], catalogue.badge_order(row[1])))[page.offset :][: page.limit]
    return [
        {
            "key": key,
            "name": catalogue.badge_name(key),
            "awarded_at": at,
            "revoked_at": instant_value(revoked, "badges.revoked_at", of=key),
        }
        for at, key, revoked in ordered
    ]


def list_badges(source: Database | Session, email: str, *, page: Page = ALL) -> list[dict[str, Any]]:
    """A client's badges, oldest first; `page.search` looks in the badge key (e.g. `tier:accelerate:1`)."""
    db = Database.of(source)
    return _badges(db, _client(db, email)[0], load_catalogue(db), page)


def show_progress(source: Database | Session, email: str, *, pathway: str | None = None) -> ClientProgress:
    """Every enrolment of a client with tiers, skills and statuses; then Fundamentals; then badges."""
    db = Database.of(source)
    return _progress_of(db, _client(db, email), pathway)


def _progress_of(db: Database, client: tuple[Any, ...], pathway: str | None) -> ClientProgress:
    """`show_progress` for the client `_client` found."""
    client_id, client_email, client_name, *_ = client
    parameters = {"client": client_id}
    only = ""
    if pathway is not None:
        parameters["only"] = pathway_id(db, pathway)
        only = " AND e.pathway_id = :only"
    enrolment_query = (
        f"SELECT e.pathway_id, CAST(e.start_date AS TEXT), e.status, bu.email, {db.instant('e.completed_at')} "
        "FROM enrolments e JOIN pathways p ON p.id = e.pathway_id LEFT JOIN users bu ON bu.id = e.builder_id "
        f"WHERE e.client_id = :client{only} ORDER BY p.position, p.slug"
    )
    enrolments = list(db.rows(enrolment_query, parameters))
    catalogue = load_catalogue(db)  # holds each enrolment's pathway: the read is one snapshot (db.dbapi.connect)
    progress = f"SELECT skill_id, status, {db.instant('completed_at')}, completion_method FROM user_skill_progress"
    statuses = {
        skill_id: (status, instant_value(completed_at, "user_skill_progress.completed_at"), via)
        for skill_id, status, completed_at, via in db.rows(f"{progress} WHERE client_id = :client", parameters)
    }

    def skills(groups: str, tail: str) -> Iterator[tuple[Any, dict[str, Any]]]:
        """((pathway, tier), SKILL_COLUMNS record) of each non-archived skill `tail` picks, by slug."""
        for pathway_key, tier, skill_id, slug, name in db.rows(
            f"SELECT {groups}, s.id, s.slug, s.name FROM skills s {tail} AND NOT s.archived ORDER BY s.slug", parameters
        ):
            found = statuses.get(skill_id, ("not_started", None, None))
            yield (pathway_key, tier), dict(zip(SKILL_COLUMNS, (slug, name, *found), strict=True))

    linked: dict[tuple[int, int], list[dict[str, Any]]] = defaultdict(list)
    enrolled = f"SELECT e.pathway_id FROM enrolments e WHERE e.client_id = :client{only}"
    links = f"JOIN skill_pathway_links l ON l.skill_id = s.id WHERE l.pathway_id IN ({enrolled})"
    for group, skill in skills("l.pathway_id, l.tier", links) if enrolments else ():
        linked[group].append(skill)
    records = []
    for pathway_key, start_date, status, builder, completed_at in enrolments:
        info = catalogue.pathways[pathway_key]
        by_tier = {number: linked[(pathway_key, number)] for number in info.tiers}
        # the seed's shape always has tier1..tier3; extra tiers follow as tier4, tier5…
        grouped = {f"tier{number}": by_tier.get(number, []) for number in sorted({1, 2, 3, *by_tier})}
        tiers = [{"tier": number, "name": name, **_counted(by_tier[number])} for number, name in info.tiers.items()]
        every_skill = [item for tier_skills in by_tier.values() for item in tier_skills]
        try:
            start = dt.date.fromisoformat(start_date)
        except ValueError:
            raise UnreadableValue("enrolments.start_date", start_date, of=f"{client_email} in {info.slug}") from None
        completed = instant_value(completed_at, "enrolments.completed_at", of=f"{client_email} in {info.slug}")
        values: tuple[Any, ...] = (info.slug, info.name, start, status, builder, completed, grouped, tiers)
        records.append(_progress_record(*values, skills=every_skill))
    badges = _badges(db, client_id, catalogue)
    fundamentals = [] if only else [skill for _, skill in skills("NULL, NULL", "WHERE s.is_fundamental")]
    if fundamentals:
        all_done = all(item["status"] == "completed" for item in fundamentals)
        earned = next((badge["awarded_at"] for badge in badges if badge["key"] == FUNDAMENTALS_KEY), None)
        status, completed = ("completed", earned) if all_done else ("active", None)
        values = (None, FUNDAMENTALS_NAME, None, status, None, completed, {"fundamentals": fundamentals}, [])
        records.append(_progress_record(*values, skills=fundamentals))
    looks = {info.slug: (info.icon, info.color) for info in catalogue.pathways.values()}
    return ClientProgress(client_email, client_name, records, badges, looks)


def show_client(db: Database, email: str) -> dict[str, Any]:
    """`clients show`: profile, enrolments (with progress %), the 10 most recent bookings, and badges.

    Percentages and badges are `progress show`'s and `badges list`'s: the same reads."""
    client = _client(db, email)
    client_id, client_email, *profile, created_at = client
    created = instant_value(created_at, "client_profiles.created_at", of=client_email)
    progress = _progress_of(db, client, None)  # the client found once, not again by e-mail
    enrolment = ("pathway", "status", "start_date", "completed_at", "builder", "percent")
    recent = BookingFilters(client_id=client_id, newest_first=True)
    bookings = list_bookings(db, recent, page=Page(limit=RECENT_BOOKINGS))
    return {
        **dict(zip(CLIENT_COLUMNS, (client_email, *profile, created), strict=True)),
        "enrolments": [
            {key: item[key] for key in enrolment} for item in progress.pathways if item["pathway"] is not None
        ],
        "bookings": list(bookings.records()),
        "badges": progress.badges,
    }


def show_session_type(source: Database | Session, identifier: str) -> dict[str, Any]:
    """`sessions show`: the session record of one session type, by id, slug or Calendly URI."""
    db = Database.of(source)
    return list_session_types(db, include_all=True, ids=[session_type_id(db, identifier)])[0]


# -- bookings one at a time: `bookings show` and every booking command's result ------------------------------

# what `bookings show` adds to the record: why and when the booking was cancelled (null while it is not)
CANCELLATION_COLUMNS = ("cancellation_reason", "cancelled_at")


class BookingView(dict[str, Any]):
    """A booking's record (BOOKING_COLUMNS), where a booking sent to Calendly stands (`calendly_state`, not a
    record column: exports stay as they are) and why and when it was cancelled (CANCELLATION_COLUMNS, which only
    `bookings show` adds to its record), as `list_bookings` reads them; fields read as attributes too."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def as_record(self, *also: str) -> dict[str, Any]:
        return {name: self[name] for name in (*BOOKING_COLUMNS, *also)}


def booking_views(
    source: Database | Session, filters: BookingFilters, *, limit: int | None = None
) -> list[BookingView]:
    """Bookings matching every filter as views (amounts as Decimal, instants as datetimes): `list_bookings`
    on a plain connection or an ORM session's own transaction, ordered by start time (newest first when asked)."""
    columns = (*BOOKING_COLUMNS, "calendly_state", *CANCELLATION_COLUMNS)
    views = []
    found = list_bookings(Database.of(source), filters, page=Page(limit=limit), columns=columns)
    for record in found.records():
        record["amount"] = Decimal(record["amount"])
        for name in ("start_time", "end_time", "created_at", "cancelled_at"):
            record[name] = instant_value(record[name], f"bookings.{name}", of=f"booking {record['reference']}")
        views.append(BookingView(record))
    return views


def booking_view(source: Database | Session, booking_id: int) -> BookingView:
    for view in booking_views(source, BookingFilters(booking_id=booking_id)):
        return view
    # the record joins the booking's client and session type: one was deleted with foreign keys off (R9)
    raise UnreadableValue("bookings.client_id or session_type_id", of=f"row {booking_id} (a row that is not there)")


def booking_not_found(reference: str) -> NotFound:
    return NotFound(
        f"no booking {quoted(reference.strip())}", hint="see `bapp bookings list`", code="booking_not_found"
    )


def show_booking(db: Database, reference: str) -> BookingView:
    """`bookings show`: a booking by its reference in any case, or NotFound."""
    found = db.one("SELECT id FROM bookings WHERE reference = :reference", {"reference": reference.strip().upper()})
    if found is None:
        raise booking_not_found(reference)
    return booking_view(db, found[0])


# -- the people and the catalogue: `clients list`, `builders list`, `pathways list/show`, `skills list` ------
# The write commands that print the same record afterwards, and the exports, read it here too, on their session's
# connection (`Database.of`).


def list_clients(
    source: Database | Session,
    *,
    pathway: str | None = None,
    status: str | None = None,
    builder: str | None = None,
    page: Page = ALL,
    with_id: bool = False,
) -> Iterator[dict[str, Any]]:
    """Client records (CLIENT_COLUMNS) by e-mail, streamed. `pathway`/`status` filter on enrolments; `builder`
    keeps the clients that builder coaches (enrolment) or has a booking with; `page.search` looks in e-mail,
    name, company, industry. `with_id`: the user's id first (`export clients`).

    The filters are checked before the first row is read, so a bad one fails before any output."""
    db = Database.of(source)
    where = _Where(db, page, "u.email", "u.name", "p.company", "p.industry")
    # an enrolment in the pathway, at the status: each given one a condition (as `list_skills` filters its links)
    enrolled: dict[str, Any] = {"pathway_id": pathway_id(db, pathway) if pathway is not None else None}
    enrolled["status"] = check_status(status) if status is not None else None
    if wanted := [f" AND e.{column} = :{column}" for column, value in enrolled.items() if value is not None]:
        where.add(f"EXISTS (SELECT 1 FROM enrolments e WHERE e.client_id = u.id{''.join(wanted)})", **enrolled)
    if builder is not None:
        coached = "EXISTS (SELECT 1 FROM enrolments e WHERE e.client_id = u.id AND e.builder_id = :builder)"
        booked = "EXISTS (SELECT 1 FROM bookings b WHERE b.client_id = u.id AND b.builder_id = :builder)"
        where.add(f"({coached} OR {booked})", builder=person(db, builder, "builder", "u.id")[0])
    columns = ("u.id, " if with_id else "") + f"u.email, u.name, p.company, p.industry, {db.instant('p.created_at')}"
    clients = f"SELECT {columns} FROM users u JOIN client_profiles p ON p.user_id = u.id"
    rows = where.rows(clients, "u.email", streamed=True)  # a listing or an export: any number of rows
    keys: tuple[str, ...] = ("id", *CLIENT_COLUMNS) if with_id else CLIENT_COLUMNS

    def record(row: tuple[Any, ...]) -> dict[str, Any]:
        created = instant_value(row[-1], "client_profiles.created_at", of=row[-5])
        return dict(zip(keys, (*row[:-1], created), strict=True))

    return map(record, rows)


# the builder record (`builders list --json`; `export builders` adds the id)
BUILDER_COLUMNS = (
    "email",
    "name",
    "calendly_user",
    "timezone",
    "buffer_minutes",
    "minimum_notice_hours",
    "max_advance_days",
    "accepting_bookings",
    "created_at",
)


def list_builders(
    source: Database | Session, *, page: Page = ALL, with_id: bool = False, email: str | None = None
) -> list[dict[str, Any]]:
    """Builders by e-mail (the one with `email` alone: `builders add/update`'s result); `page.search` looks in
    e-mail and name. `with_id`: with the user's id (`export builders`)."""
    db = Database.of(source)
    shown_name = "COALESCE(NULLIF(p.display_name, ''), u.name)"  # their own display name, else the account's
    where = _Where(db, page, "u.email", shown_name)
    if email is not None:
        where.add("u.email = :email", email=email)
    settings = "p.timezone, p.buffer_minutes, p.minimum_notice_hours, p.max_advance_days, p.accepting_bookings"
    columns = f"u.id, u.email, {shown_name}, p.calendly_user_uri, {settings}, {db.instant('p.created_at')}"
    rows = where.rows(f"SELECT {columns} FROM users u JOIN builder_profiles p ON p.user_id = u.id", "u.email")
    records = []
    for user_id, *values, accepting, created_at in rows:
        for at, name in enumerate(BUILDER_COLUMNS[4:7], start=4):
            whole(values[at], f"builder_profiles.{name}", of=f"builder {values[0]}")
        created = instant_value(created_at, "builder_profiles.created_at", of=values[0])
        record = dict(zip(BUILDER_COLUMNS, (*values, bool(accepting), created), strict=True))
        records.append({"id": user_id} | record if with_id else record)
    return records


PATHWAY_COLUMNS = ("slug", "name", "description", "icon", "color", "position", "archived", "tiers")


def list_pathways(
    source: Database | Session, *, slug: str | None = None, page: Page = ALL, stored: bool = False
) -> list[dict[str, Any]]:
    """Pathway records in display order (the one `slug` names alone), each tier {tier, name, description, skills}
    with the slugs of the non-archived skills linked to it (three queries); `page.search` looks in slug and name.
    `stored`: with the row's id and creation time too (`export pathways`)."""
    db = Database.of(source)
    where = _Where(db, page, "slug", "name")
    if slug is not None:
        where.add("id = :pathway", pathway=pathway_id(db, slug))
    columns = "slug, name, description, icon, color, position, archived, id, " + db.instant("created_at")
    records = {}
    for *values, archived, key, created_at in where.rows(f"SELECT {columns} FROM pathways", "position, slug"):
        whole(values[-1], "pathways.position", of=f"pathway {values[0]}")
        records[key] = dict(zip(PATHWAY_COLUMNS[:-1], (*values, bool(archived)), strict=True))
        if stored:
            records[key] |= {"id": key, "created_at": instant_value(created_at, "pathways.created_at", of=values[0])}
    among = among_ids(records)  # the ids the query above read
    skills: defaultdict[tuple[int, int], list[str]] = defaultdict(list)
    links = "SELECT l.pathway_id, l.tier, s.slug FROM skill_pathway_links l JOIN skills s ON s.id = l.skill_id"
    for key, tier, skill in db.rows(f"{links} WHERE NOT s.archived AND l.pathway_id{among} ORDER BY s.slug"):
        skills[(key, tier)].append(skill)
    tiers: defaultdict[int, list[dict[str, Any]]] = defaultdict(list)
    for key, tier, name, description in db.rows(
        f"SELECT pathway_id, tier, name, description FROM pathway_tiers WHERE pathway_id{among} ORDER BY tier"
    ):
        tier = whole(tier, "pathway_tiers.tier", of=f"pathway {records[key]['slug']}")
        tiers[key].append({"tier": tier, "name": name, "description": description, "skills": skills[(key, tier)]})
    return [record | {"tiers": tiers[key]} for key, record in records.items()]


# a skill of the catalogue (`skills list`; a progress record's skills are SKILL_COLUMNS)
CATALOGUE_SKILL_COLUMNS = ("slug", "name", "description", "domain", "is_fundamental", "archived", "links")


def skill_links(source: Database | Session, skill_ids: Iterable[int] | None = None) -> dict[int, dict[int, str]]:
    """Each skill's links (of every skill, or of `skill_ids`): pathway id → "pathway:tier", in display order."""
    db = Database.of(source)
    among = "" if skill_ids is None else f" WHERE l.skill_id{among_ids(skill_ids)}"
    links: dict[int, dict[int, str]] = defaultdict(dict)
    for skill, pathway, slug, tier in db.rows(
        "SELECT l.skill_id, p.id, p.slug, l.tier FROM skill_pathway_links l JOIN pathways p ON p.id = l.pathway_id"
        f"{among} ORDER BY p.position, p.slug"
    ):
        links[skill][pathway] = f"{slug}:{whole(tier, 'skill_pathway_links.tier', of=f'skill row {skill}')}"
    return links


def list_skills(
    source: Database | Session,
    *,
    pathway: str | None = None,
    tier: int | None = None,
    fundamental: bool = False,
    include_archived: bool = False,
    page: Page = ALL,
    slug: str | None = None,
) -> list[dict[str, Any]]:
    """Skill records (CATALOGUE_SKILL_COLUMNS) by slug (the one `slug` names alone: a catalogue change's result),
    filtered by pathway (and tier), fundamental flag; archived ones only when asked; `page.search` looks in slug,
    name and domain."""
    db = Database.of(source)
    where = _Where(db, page, "s.slug", "s.name", "s.domain")
    linked_to = {"pathway_id": pathway_id(db, pathway) if pathway is not None else None, "tier": tier}
    if pathway is not None and tier is not None:
        check_tier(db, pathway.strip().lower(), tier, "tier")
    if linked := [f"{column} = :{column}" for column, value in linked_to.items() if value is not None]:
        where.add(f"s.id IN (SELECT skill_id FROM skill_pathway_links WHERE {' AND '.join(linked)})", **linked_to)
    if slug is not None:
        where.add("s.slug = :slug", slug=slug)
    if fundamental:
        where.add("s.is_fundamental")
    if not include_archived:
        where.add("NOT s.archived")
    columns = "s.id, s.slug, s.name, s.description, s.domain, s.is_fundamental, s.archived"
    found = list(where.rows(f"SELECT {columns} FROM skills s", "s.slug"))
    links = skill_links(db, [row[0] for row in found]) if found else {}
    records = []
    for key, *values, is_fundamental, archived in found:
        fields = (*values, bool(is_fundamental), bool(archived), [*links[key].values()])
        records.append(dict(zip(CATALOGUE_SKILL_COLUMNS, fields, strict=True)))
    return records

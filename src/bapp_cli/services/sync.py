"""Calendly event-type sync: classify, apply a whole listing in one transaction.

The listing is fetched completely before anything is written (the run itself — lock, fetch, run records —
is :mod:`bapp_cli.services.calendly_runs`). Meanwhile each page is planned (:class:`SyncPlan`) against the
catalogue read as the first page was fetched; :func:`sync_event_types` then applies the listing inside the
caller's one transaction, writing that plan only if the catalogue it reads there is still the same:

* matched on the event-type URI; new types are created and classified (config rules, else the built-in
  defaults: free words → free, a pathway's name or slug → pathway, else specialized); known ones get
  their Calendly-owned fields updated and nothing else (the curated fields change only by admin command
  or ``--reclassify``);
* types missing from the listing are marked not bookable (``present_in_last_sync`` false); types that
  come back are marked present again;
* only rows that differ are written, so a no-change run writes no session-type rows at all.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from operator import is_, itemgetter
from typing import TYPE_CHECKING, Any, NamedTuple, cast

from bapp_cli.config import calendly_user_uri, compile_pattern
from bapp_cli.db import domains
from bapp_cli.db.domains import DESCRIPTION_LIMIT, QUESTION_LIMIT, SESSION_CATEGORIES, SESSION_KINDS, URI_LENGTH
from bapp_cli.db.json_values import stored_json
from bapp_cli.errors import BappError, ConfigError, Conflict, InvalidInput, RemoteError, quoted, too_long
from bapp_cli.services.calendly_runs import RUN_HEAD, RunReport, listing_error_details, read_listing, record_run
from bapp_cli.services.plain_reads import builder_ids_by_calendly_uri, instant_value, unreadable_stored
from bapp_cli.services.plain_text import nfc
from bapp_cli.services.session_values import SlugBook, session_slug

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from bapp_cli.calendly.models import EventType, ListedEventType
    from bapp_cli.db.dbapi import Database, Transaction

SYNC_COLUMNS = (*RUN_HEAD, "unchanged", "deactivated", "reactivated")

# Fields Calendly owns and sync keeps current; everything else on a session type is curated locally and never
# touched here (README "Cron: keeping the catalogue in step with Calendly").
OWNED_FIELDS = (
    *("slug", "title", "description", "duration_minutes", "duration_options", "kind", "color", "scheduling_url"),
    *("is_secret", "remote_active", "custom_questions", "owner_uri", "builder_id", "calendly_position"),
    *("remote_updated_at", "remote_deleted_at"),
)
CLASSIFIED_FIELDS = ("category", "requires_auth", "price", "currency")
# A new type's row as SyncPlan.add builds it: the staged values (stage_event_types, in this order), then the
# planned ones; the run's instant last.
_STAGED = ("calendly_uri", *(name for name in OWNED_FIELDS if name != "builder_id"))
_INSERTED = (*_STAGED, "builder_id", "display_order", *CLASSIFIED_FIELDS, "present_in_last_sync", "enabled")
_STAMPED = ("last_synced_at", "created_at", "updated_at")
_NEW_TYPES = "temp.sync_new_types"  # SyncPlan.read: new types' rows staged as their pages are planned
_PER_TYPE = len(_STAGED) + 2  # the values that differ from type to type: the rest come from its classification
_staged_values = itemgetter(*_STAGED[2:])  # after the URI and the slug

# Column sizes of SessionType: a value that does not fit is an invalid listing, reported with its field,
# rather than a database error halfway through the apply (as are a colour and lengths that break db.domains'
# rules, which the import of a backup holds every session type to).
_URI_FIELDS = ("uri", "scheduling_url", "profile.owner")
_TEXT_LENGTHS = {"name": domains.MAX_TITLE_LENGTH, "slug": domains.MAX_SESSION_SLUG_LENGTH}
_MAX_LENGTHS = _TEXT_LENGTHS | dict.fromkeys(_URI_FIELDS, URI_LENGTH)
# The built-in "free" words for names or slugs (slugs use hyphens between words).
_FREE_WORDS = re.compile(r"\b(?:free|getting[\s_-]+started|intro|discovery|back[\s_-]+to[\s_-]+work)", re.IGNORECASE)
_RULE_KEYS = frozenset({"pattern", "field", "category", "requires_auth", "pathways", "price", "currency"})
_RULE_FIELDS = {"name": ("name",), "slug": ("slug",), "any": ("name", "slug")}


# -- classification ----------------------------------------------------------------------------------


class Classification(NamedTuple):
    """The curated fields a new (or reclassified) type starts with, and which rule chose them. A named tuple, as
    is SyncChange: a first sync makes one of each a type, and as frozen dataclasses their making, hashing and
    comparing were 3 % of its instructions (callgrind, bench/sync.py's 10,000 types: 5.98 → 5.81 billion)."""

    category: str
    requires_auth: bool
    pathways: tuple[str, ...] = ()
    price: Decimal | None = None
    currency: str | None = None
    rule: int | None = None

    def describe(self) -> str:
        access = "account" if self.requires_auth else "public"
        linked = f", pathways {'+'.join(self.pathways)}" if self.pathways else ""
        source = f", rule {self.rule}" if self.rule is not None else ""
        return f"{self.category}, {access}{linked}{source}"


@dataclass(frozen=True)
class ClassificationRule:
    """One ``[[calendly.rules]]`` table: a case-insensitive regex on name and/or slug → the classification
    it gives (whose ``rule`` is the table's number)."""

    pattern: re.Pattern[str]
    fields: tuple[str, ...]
    gives: Classification

    def matches(self, name: str, slug: str) -> bool:
        return any(self.pattern.search(name if part == "name" else slug) for part in self.fields)


def parse_rules(raw: Sequence[Any]) -> list[ClassificationRule]:
    """Validate the config's rules up front, so a typo fails the run before anything is fetched (exit 4)."""
    from bapp_cli.services.session_values import default_requires_auth, parse_currency, parse_price

    rules: list[ClassificationRule] = []
    for number, entry in enumerate(raw, start=1):
        label = f"calendly.rules[{number}]"
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{label} must be a table", hint="see examples/config.toml")
        if unknown := sorted(set(entry) - _RULE_KEYS):
            raise ConfigError(
                f"{label}: unknown key {quoted(unknown[0])}", hint="rule keys: " + ", ".join(sorted(_RULE_KEYS))
            )
        if not isinstance(pattern_text := entry.get("pattern"), str) or not pattern_text:
            raise ConfigError(f"{label}: 'pattern' (a regular expression) is required")
        try:
            pattern = compile_pattern(pattern_text, f"{label}.pattern")
            price = parse_price(entry["price"], field=f"{label}.price") if "price" in entry else None
            currency = (
                parse_currency(str(entry["currency"]), field=f"{label}.currency") if "currency" in entry else None
            )
        except InvalidInput as exc:
            raise ConfigError(exc.message) from None
        # a TOML array or table is no key of _RULE_FIELDS: asked as one, it raised TypeError (exit 1)
        if not isinstance(field_name := entry.get("field", "any"), str) or field_name not in _RULE_FIELDS:
            raise ConfigError(f"{label}: field must be one of name, slug, any (not {quoted(field_name)})")
        if not isinstance(category := entry.get("category"), str) or category.strip().lower() not in SESSION_CATEGORIES:
            raise ConfigError(
                f"{label}: category must be one of {', '.join(SESSION_CATEGORIES)} (not {quoted(category)})"
            )
        category = category.strip().lower()
        if (requires_auth := entry.get("requires_auth")) is not None and not isinstance(requires_auth, bool):
            raise ConfigError(f"{label}: requires_auth must be true or false")
        pathways = entry.get("pathways", [])
        pathways = [pathways] if isinstance(pathways, str) else pathways
        if not isinstance(pathways, list) or not all(isinstance(item, str) and item.strip() for item in pathways):
            raise ConfigError(f"{label}: pathways must be a list of pathway slugs")
        access = default_requires_auth(category) if requires_auth is None else requires_auth
        linked = tuple(dict.fromkeys(item.strip().lower() for item in pathways))
        gives = Classification(category, access, linked, price, currency, rule=number)
        rules.append(ClassificationRule(pattern, _RULE_FIELDS[field_name], gives))
    return rules


class Classifier:
    """Rules first (in order, first match wins), then the built-in defaults: free words → free, a pathway's
    name or slug as a whole word → pathway linked to it, otherwise specialized."""

    def __init__(self, rules: Sequence[ClassificationRule], pathways: Mapping[str, tuple[str, bool]]) -> None:
        """``pathways`` maps every known slug to (name, archived)."""
        for rule in rules:
            for slug in rule.gives.pathways:
                if slug not in pathways:
                    raise ConfigError(
                        f"calendly.rules[{rule.gives.rule}]: no pathway {quoted(slug)}",
                        hint="known pathways: " + (", ".join(sorted(pathways)) or "none"),
                    )
        self._rules = list(rules)
        self._archived = {slug for slug, (_, archived) in pathways.items() if archived}
        self._detectors = [
            (slug, re.compile(rf"\b(?:{re.escape(name)}|{re.escape(slug)})\b", re.IGNORECASE))
            for slug, (name, archived) in pathways.items()
            if not archived
        ]

    def _detect_pathways(self, name: str, slug: str) -> tuple[str, ...]:
        return tuple(found for found, pattern in self._detectors if pattern.search(name) or pattern.search(slug))

    def classify(self, name: str, slug: str) -> Classification:
        for rule in self._rules:
            if rule.matches(name, slug):
                # Archived pathways take no new links, even when a rule names them.
                linked = tuple(item for item in rule.gives.pathways if item not in self._archived)
                if rule.gives.category == "pathway" and not linked:
                    linked = self._detect_pathways(name, slug)
                return rule.gives._replace(pathways=linked)
        if _FREE_WORDS.search(name) or _FREE_WORDS.search(slug):
            return Classification("free", False)
        detected = self._detect_pathways(name, slug)  # () for none, the default
        return Classification("pathway" if detected else "specialized", True, detected)


# -- listings --------------------------------------------------------------------------------------


def parse_listing(
    content: bytes | str, *, name: str, on_cleaned: Callable[[list[str]], None] | None = None
) -> list[ListedEventType]:
    """A saved listing of event types (``--from-file``, the shapes of :func:`read_listing`). Every bad item
    is reported with its page and index (exit 6)."""
    from pydantic import TypeAdapter, ValidationError

    from bapp_cli.calendly.pages import ListedEventType

    listing = TypeAdapter(list[ListedEventType])  # built here: a sync from the API never needs it (~30 ms)

    def validate(collection: list[Any], where: str, details: list[dict[str, Any]]) -> list[ListedEventType]:
        try:
            return listing.validate_python(collection)
        except ValidationError as exc:
            details.extend(listing_error_details(exc, where))
            return []

    hint = "save the body of GET /event_types, a list of such pages, or a list of event types"
    return read_listing(content, name=name, items="event types", hint=hint, validate=validate, on_cleaned=on_cleaned)


# -- results ---------------------------------------------------------------------------------------


class SyncChange(NamedTuple):
    """One planned or applied change, rendered as one stderr line by ``--dry-run``/``--verbose``."""

    action: str  # create, update, deactivate, reactivate
    uri: str
    title: str
    fields: tuple[str, ...] = ()
    note: str = ""

    def describe(self) -> str:
        fields = f": {', '.join(self.fields)}" if self.fields else ""
        note = f" ({self.note})" if self.note else ""
        return f"{self.action:<10} {self.uri}  {self.title!r}{fields}{note}"


@dataclass
class SyncReport(RunReport):
    """The summary of one run (the keys of `calendly sync --json`, docs/cli.md)."""

    kind = "event_types"
    columns = SYNC_COLUMNS
    deactivated: int = 0
    reactivated: int = 0
    changes: list[SyncChange] = field(default_factory=list)


# -- the apply -------------------------------------------------------------------------------------


# a question as stored: Calendly's shape, in its order, with the models' defaults filled in
_QUESTION_DEFAULTS: dict[str, Any] = dict(
    name=None, type=None, position=None, enabled=True, required=False, answer_choices=[], include_other=False
)


def _stored_question(question: Mapping[str, Any]) -> Mapping[str, Any]:
    """`question` with the defaults filled in and its texts cut to what a session row's import reads of them
    (QUESTION_LIMIT characters each), so that the backup of the type restores, as an answer's are cut."""
    given = question.get("answer_choices")
    texts = (question["name"], question["type"], *(given or ()))
    # Calendly sends every key (validated in the stored order) and short texts, so the copy is rarely needed
    if len(question) == len(_QUESTION_DEFAULTS) and given is not None and max(map(len, texts)) <= QUESTION_LIMIT:
        return question
    name, kind, *choices = (text[:QUESTION_LIMIT] for text in texts)
    return {**_QUESTION_DEFAULTS, **question, "name": name, "type": kind, "answer_choices": choices}


def stage_event_types(items: Iterable[ListedEventType | EventType], source: str) -> list[dict[str, Any]]:
    """Each listed type as its row's Calendly-owned values but ``builder_id`` (which needs the database):
    the part of the apply done page by page while the next page is still on its way. A type that cannot
    be stored raises RemoteError for the API, InvalidInput for a file, naming its field."""
    error_type: type[BappError] = RemoteError if source == "api" else InvalidInput
    origin = "Calendly listing" if source == "api" else "listing file"
    staged = []
    for entry in items:
        item: Mapping[str, Any] = entry if isinstance(entry, Mapping) else entry.model_dump()
        uri, name, slug, kind = item["uri"], nfc(item.get("name")), item.get("slug"), item.get("kind", "solo")
        owner = item["profile"]["owner"] if item.get("profile") else None
        fields = {"uri": uri, "name": name, "slug": slug}
        fields |= {"scheduling_url": item.get("scheduling_url"), "profile.owner": owner}
        if not uri.strip():
            problem: str | None = "uri: must not be empty"
        elif kind not in SESSION_KINDS:
            problem = f"kind: {kind!r} is not one of {', '.join(SESSION_KINDS)}"
        elif (color := item.get("color")) is not None and not domains.COLOR_PATTERN.fullmatch(color):
            problem = f"color: {color[:20]!r} is not a #RRGGBB colour"
        elif not 0 < item["duration"] <= domains.MAX_DURATION_MINUTES:
            problem = f"duration: {item['duration']} is not between 1 and {domains.MAX_DURATION_MINUTES} minutes"
        elif off := [n for n in item.get("duration_options") or () if not 0 < n <= domains.MAX_DURATION_MINUTES]:
            problem = f"duration_options: {off[0]} is not between 1 and {domains.MAX_DURATION_MINUTES} minutes"
        else:
            past = [name for name, value in fields.items() if value is not None and len(value) > _MAX_LENGTHS[name]]
            problem = too_long(len(fields[past[0]]), _MAX_LENGTHS[past[0]], past[0]) if past else None
        if problem is not None:
            raise error_type(f"{origin}: invalid event type {uri[:200]}: {problem}", code="invalid_listing")
        staged.append(
            {
                "calendly_uri": uri,
                "slug": session_slug(slug) if slug else None,  # Calendly's, unless it breaks the one rule
                # Calendly allows a null name (e.g. some managed types); a session type always needs a title.
                "title": (name or "").strip() or slug or uri.rstrip("/").rsplit("/", 1)[-1],
                # cut to what an import reads, as a question's texts are (_stored_question)
                "description": (text := item.get("description_plain")) and text[:DESCRIPTION_LIMIT],
                "duration_minutes": item["duration"],
                "duration_options": item.get("duration_options") or None,
                "kind": kind,
                "color": item.get("color"),
                "scheduling_url": item.get("scheduling_url"),
                "is_secret": item.get("secret", False),
                "remote_active": item["active"],
                "custom_questions": [_stored_question(question) for question in item.get("custom_questions") or ()],
                "owner_uri": owner,
                "calendly_position": item.get("position"),
                "remote_updated_at": item["updated_at"],
                "remote_deleted_at": item.get("deleted_at"),
            }
        )
    return staged


@dataclass(frozen=True)
class Catalogue:
    """What a sync plans against, read in one transaction; two readings compare equal when nothing a plan
    depends on changed in between."""

    types: tuple[dict[str, Any], ...]  # every session type under _READ's names, its values as the ORM reads them
    builders: dict[str, int]  # builder user ids by Calendly user URI
    pathways: tuple[tuple[str, int, str, Any], ...]  # slug, id, name, archived (true or 1 as the driver says)
    links: frozenset[tuple[int, str]]  # (session type id, pathway slug), read only for --reclassify

    @classmethod
    def read(cls, db: Database, *, reclassify: bool) -> Catalogue:
        columns = ", ".join(
            db.money(name) if name == "price" else db.json_text(name) if name in _JSON else name for name in _READ
        )
        links = "SELECT session_type_id, slug FROM session_type_pathways JOIN pathways ON pathways.id = pathway_id"
        return cls(
            types=tuple(_read_row(row, db) for row in db.rows(f"SELECT {columns} FROM session_types")),
            builders=builder_ids_by_calendly_uri(db),
            pathways=tuple(db.rows("SELECT slug, id, name, archived FROM pathways")),
            links=frozenset(db.rows(links)) if reclassify else frozenset(),
        )


_READ = ("id", "calendly_uri", "present_in_last_sync", *OWNED_FIELDS, *CLASSIFIED_FIELDS)
_JSON = ("duration_options", "custom_questions")
_BOOLEANS = ("is_secret", "remote_active", "requires_auth", "present_in_last_sync", "enabled")
_INSTANTS = ("remote_updated_at", "remote_deleted_at", *_STAMPED)


def _read_row(values: Sequence[Any], db: Database) -> dict[str, Any]:
    """A session type as read by the driver, in the ORM's Python values where a comparison or a change line
    needs them: SQLite hands over JSON and instants as text (naive UTC, db/types.py), and booleans as 0/1
    (equal to False/True, but printed as such); the price comes as two-decimal text on both. A value SQLite
    holds that is none of these (raw SQL's) is UnreadableValue, as the plain reads say it."""
    row = dict(zip(_READ, values, strict=True))
    of = f"row {row['id']}"
    row["requires_auth"] = bool(row["requires_auth"])  # the one boolean a change line (--reclassify) shows
    row |= {name: stored_json(row[name], f"session_types.{name}", of=of) for name in _JSON}
    for name in _INSTANTS[:2]:
        if isinstance(row[name], str):
            stored = cast(dt.datetime, instant_value(row[name], f"session_types.{name}", of=of))
            row[name] = stored.replace(tzinfo=dt.UTC)  # naive UTC text on SQLite
    if row["price"] is None:  # Database.money's NULL: a price SQLite cannot read as one
        raise unreadable_stored(db, "session_types.price", "id", row["id"], of=of)
    row["price"] = Decimal(row["price"])
    return row


def _storing(db: Database) -> dict[str, Callable[[Any], Any]]:
    """How the columns of session_types that need it are stored, as the models' column types bind them:
    instants as db.stored_instant, JSON as text (NULL for None), and on SQLite, which has no decimal, a
    price as a float, and a boolean as 0 or 1: bound as they are, sqlite3 adapts each bool through a failing
    protocol lookup (~3,000 instructions a value, 50,000 values in a 10,000-type first sync). The JSON text is
    pydantic-core's, compact UTF-8: the same document as json.dumps writes, in a third of its time (a first
    sync serialises every type's questions: 13 % of its instructions went to json.dumps)."""
    from pydantic_core import to_json  # loaded already: the listing was parsed with it

    def unless_null(store: Callable[[Any], Any]) -> Callable[[Any], Any]:
        return lambda value: None if value is None else store(value)

    as_json = unless_null(lambda value: to_json(value).decode())
    storing = dict.fromkeys(_INSTANTS, unless_null(db.stored_instant)) | dict.fromkeys(_JSON, as_json)
    if db.dialect == "sqlite":
        storing |= {"price": float} | dict.fromkeys(_BOOLEANS, int)
    return storing


class SyncPlan:
    """The changes a listing makes to the catalogue, planned page by page as the pages arrive: pages given
    before the catalogue is read (:meth:`read`, on the survey thread) wait for it.

    A type listed twice (pages shifting under the cursor) makes the plan stale: the later copy wins, so the
    listing is planned again whole (:meth:`covers` says whether a plan can be written as it is)."""

    def __init__(self, rules: Sequence[ClassificationRule], *, reclassify: bool) -> None:
        self.rules, self.reclassify = rules, reclassify
        self.catalogue: Catalogue | None = None
        self.given: list[dict[str, Any]] = []  # every staged type, in order; the first `planned` are planned
        self.planned = 0
        self.seen: set[str] = set()
        self.inserts: list[list[Any]] = []  # rows of _INSERTED, stored values
        self.new_links: dict[str, tuple[str, ...]] = {}  # by URI: a new type's and a reclassified type's
        self.updates: list[dict[str, Any]] = []
        self.unlinked: set[int] = set()  # reclassified types whose links new_links replaces
        self.kept: list[tuple[dict[str, Any] | None, dict[str, Any], int | None, str | None]] = []  # plan_type's
        self.report = SyncReport(run_id=None, status="succeeded", dry_run=False, source="api")

    def read(self, db: Database, catalogue: Catalogue | None = None, *, stage: bool = False) -> None:
        """Plan against ``catalogue``, else the one read from ``db``. ``stage``: ``db`` is the connection the
        plan will be written in (a sync's survey connection, which its write transaction takes over): its read
        ends here, and on SQLite new types' rows go into a temporary table there as their pages are planned."""
        catalogue = catalogue or Catalogue.read(db, reclassify=self.reclassify)
        pathways = {slug: (name, archived) for slug, _, name, archived in catalogue.pathways}
        self.classifier = Classifier(self.rules, pathways)
        self.existing = {row["calendly_uri"]: row for row in catalogue.types if row["calendly_uri"] is not None}
        self.slugs = SlugBook({row["slug"]: row["id"] for row in catalogue.types if row["slug"] is not None})
        self.links: dict[int, set[str]] = {}
        for type_id, slug in catalogue.links:
            self.links.setdefault(type_id, set()).add(slug)
        # A new type's row is stored as its page is planned, while the next page is on its way: after the
        # last page, only the one executemany is left to do.
        self.storing = _storing(db)
        self.per_type = [
            (at, self.storing[name]) for at, name in enumerate(_INSERTED[:_PER_TYPE]) if name in self.storing
        ]
        # the few distinct classifications, each stored and described once: (values, description)
        self.classified: dict[Classification, tuple[list[Any], str]] = {}
        self.staged = 0  # how many of `inserts` are in the temporary table
        self.staged_on: Transaction | None = None
        if stage:
            # The catalogue's read ends: the fetch holds no snapshot, and on SQLite the temporary table below is
            # made outside any transaction (a later rollback would take it away).
            db.connection.rollback()
        if stage and db.dialect == "sqlite":
            from bapp_cli.db.dbapi import Transaction

            # After the last page only one INSERT … SELECT is left, not an executemany binding ~30 values a row
            # (bench/sync.py, 10,000 new types: 0.05 s of CPU moved into the wait for the pages, and the
            # write after the last page 0.1 s shorter). The temporary table is the connection's own and in
            # memory: no lock on the database, and nothing to clean up when the connection closes.
            db.connection.execute("PRAGMA temp_store = MEMORY")
            db.connection.execute(f"CREATE TEMP TABLE {_NEW_TYPES} ({', '.join(_INSERTED)})")
            self.staged_on = Transaction(db.connection, db.dialect)  # its writer, on the temporary table only
        self.catalogue = catalogue  # last: from here on the pages are planned as they are given

    def covers(self, listing: Sequence[dict[str, Any]], catalogue: Catalogue) -> bool:
        """Whether this plan, once what waits is planned, is the one of ``listing`` against ``catalogue``."""
        if catalogue != self.catalogue:
            return False
        self.add(())
        return len(self.seen) == len(self.given) == len(listing) and all(map(is_, self.given, listing))

    def add(self, staged: Iterable[dict[str, Any]]) -> None:
        self.given.extend(staged)
        if self.catalogue is None:
            return
        builders = self.catalogue.builders
        for listed in self.given[self.planned :]:
            self.planned += 1
            uri = listed["calendly_uri"]
            if uri in self.seen:
                continue  # a stale plan: covers() refuses it
            self.seen.add(uri)
            # Team-owned types (/teams/…) and types without a profile have no builder.
            builder_id = builders.get(listed["owner_uri"]) if listed["owner_uri"] else None
            self.plan_type(self.existing.get(uri), listed, builder_id)
        if self.staged_on is not None and len(self.inserts) > self.staged:
            self.staged_on.execute_many(
                f"INSERT INTO {_NEW_TYPES} VALUES ({', '.join(['?'] * len(_INSERTED))})", self.inserts[self.staged :]
            )
            self.staged = len(self.inserts)

    def plan_type(
        self, row: dict[str, Any] | None, listed: dict[str, Any], builder: int | None, numbered: str | None = None
    ) -> None:
        """A new type's row (``row`` None) or a known type's update, if it has changed. Slugs are unique: one
        whose Calendly slug is another's is numbered (issue 15 #6) and planned after the listing's last page
        (a new one is inserted after the others), from the slug it was ``numbered`` meanwhile (which it gives
        up if it takes another): the holder may give it up later in the listing, as in a swap (A's becomes B's
        and B's A's), a rotation, or a chain. The old slug of one renamed (or listed without one) is free at once."""
        current = numbered or (row["slug"] if row else None)
        slug = self.slugs.claim(listed["slug"], current=current, holder=row["id"] if row else None)
        if slug != listed["slug"] and numbered is None:
            self.kept.append((row, listed, builder, slug))
            return
        if row is None:
            self._plan_new(listed, builder, slug)
            return
        desired = {**listed, "builder_id": builder, "slug": slug}
        changed = [name for name in OWNED_FIELDS if row[name] != desired[name]]
        values = {name: desired[name] for name in changed}
        changed += self._reclassify(row, listed, values) if self.reclassify else []  # described, for the report
        report, returning = self.report, not row["present_in_last_sync"]
        if not values and not returning and row["id"] not in self.unlinked:
            report.unchanged += 1
            return
        self.updates.append({"id": row["id"], **values, "present_in_last_sync": True})
        if returning:
            report.reactivated += 1
            action, note = "reactivate", "back in the listing"
        else:
            report.updated += 1
            action, note = "update", ""
        report.changes.append(SyncChange(action, row["calendly_uri"], desired["title"], tuple(changed), note=note))

    def _plan_new(self, listed: dict[str, Any], builder: int | None, slug: str | None) -> None:
        """A new type's row, classified once per classification, and its change line."""
        # by Calendly's slug, which the rules name, not the numbered one a clash (or a swap under way) gives
        classification = self.classifier.classify(listed["title"], listed["slug"] or "")
        if classification not in self.classified:
            price = Decimal("0.00") if classification.price is None else classification.price
            currency = classification.currency or "GBP"
            # then present in the listing, and enabled
            curated = (classification.category, classification.requires_auth, price, currency, True, True)
            stored = list(map(self.stored, _INSERTED[_PER_TYPE:], curated))
            self.classified[classification] = (stored, classification.describe())
        classified, note = self.classified[classification]
        # A new type's display order starts at its Calendly position.
        uri, report = listed["calendly_uri"], self.report
        inserted = [uri, slug, *_staged_values(listed), builder, listed["calendly_position"] or 0]
        for index, process in self.per_type:
            inserted[index] = process(inserted[index])
        self.inserts.append(inserted + classified)
        if classification.pathways:
            self.new_links[uri] = classification.pathways
        report.created += 1
        if slug != listed["slug"]:  # claim gives back a missing slug (None) as it is
            note = f"{note}; slug {slug} ({listed['slug']} is taken)"
        report.changes.append(SyncChange("create", uri, listed["title"], note=note))

    def stored(self, column: str, value: Any) -> Any:
        """``value`` as it is stored in ``column`` of session_types."""
        return value if (store := self.storing.get(column)) is None else store(value)

    def _reclassify(self, row: dict[str, Any], listed: Mapping[str, Any], values: dict[str, Any]) -> list[str]:
        """The curated fields (and pathway links) --reclassify changes on a known type, described."""
        classification = self.classifier.classify(listed["title"], listed["slug"] or "")
        described = []
        for name in CLASSIFIED_FIELDS:  # a price or currency no rule sets (None) stays as it is
            value = getattr(classification, name)
            if value is not None and row[name] != value:
                described.append(f"{name} {row[name]}→{value}")
                values[name] = value
        if (current := self.links.get(row["id"], set())) != set(classification.pathways):
            described.append(f"pathways {'+'.join(sorted(current)) or '-'}→{'+'.join(classification.pathways) or '-'}")
            self.unlinked.add(row["id"])
            self.new_links[row["calendly_uri"]] = classification.pathways
        return described


def add_fetched_event_types(
    session: Session,
    fetched: Sequence[EventType],
    *,
    rules: Sequence[ClassificationRule],
    clock: Callable[[], dt.datetime],
) -> None:
    """Event types fetched one by one (`GET /event_types/{uuid}`: a delivery's or a pull's that no sync brought)
    stored as a partial sync (nothing vanishes), in a savepoint: one that cannot be stored raises its BappError with
    the session as it was, so the caller's invitees park rather than the delivery or the pull failing."""
    with session.begin_nested():
        sync_event_types(session, fetched, source="api", started_at=clock(), clock=clock, rules=rules, partial=True)


def sync_event_types(
    source_db: Transaction | Session,
    listing: Sequence[EventType] | Sequence[dict[str, Any]],
    *,
    source: str,
    started_at: dt.datetime,
    clock: Callable[[], dt.datetime],
    rules: Sequence[ClassificationRule] = (),
    dry_run: bool = False,
    allow_empty: bool = False,
    reclassify: bool = False,
    partial: bool = False,
    plan: SyncPlan | None = None,
    owner: str | None = None,
) -> SyncReport:
    """Apply a complete listing in the caller's transaction and (unless ``dry_run``) record the run. The
    transaction is a plain one (``calendly sync``) or an ORM unit of work's (the webhook receiver's), written
    through its connection.

    ``partial``: the listing is a few types fetched one by one (a webhook for a type not synced yet),
    not the scope's whole catalogue — nothing is deactivated for being absent and no run is recorded
    (the changes are audited). ``plan``: the listing's plan made while it was fetched, against a catalogue
    read before this transaction; it is written only if the catalogue read now is the same, else the
    listing is planned again. ``owner``: the listing is one Calendly user's (``--user``, ``calendly.user`` or the
    token's own), its URI as config.calendly_user_uri writes it: only the types that user owns can vanish from it.

    Raises Conflict (exit 8) for an empty listing while synced types exist, unless ``allow_empty``; an
    item that cannot be stored raises as :func:`stage_event_types` says. The listing may come staged by it.
    """
    from bapp_cli.db.dbapi import Transaction

    db = Transaction.of_unit(source_db)
    staged = [entry if isinstance(entry, Mapping) else stage_event_types([entry], source)[0] for entry in listing]
    catalogue = Catalogue.read(db, reclassify=reclassify)
    if plan is None or not plan.covers(staged, catalogue):
        plan = SyncPlan(rules, reclassify=reclassify)
        plan.read(db, catalogue)
        # a type listed twice (pages shifting under the cursor): the later copy wins, in the first one's place
        plan.add({entry["calendly_uri"]: entry for entry in staged}.values())
    # Now that every type renamed in the listing has given its old slug up; shorter slugs first, so that a type
    # numbered `alpha-2` while `alpha` was another's has moved to `alpha` before one wanting `alpha-2` is planned.
    for kept in sorted(plan.kept, key=lambda kept: len(kept[1]["slug"])):
        plan.plan_type(*kept)
    report = plan.report
    report.dry_run, report.source, report.fetched = dry_run, source, len(listing)
    report.skipped = len(listing) - len(plan.seen)
    listed_before = {} if partial else plan.existing  # a few types fetched one by one make none vanish
    vanished = [row for uri, row in listed_before.items() if uri not in plan.seen and row["present_in_last_sync"]]
    # a user's listing says nothing of another user's types, nor of a team's, which are listed for their members
    # only (per-user syncs of two members would take them off and bring them back in turn): theirs alone vanish
    # the owner as Calendly tells users apart (config.calendly_user_uri), as the scope's user is given
    vanished = [row for row in vanished if owner is None or calendly_user_uri(row["owner_uri"] or "") == owner]
    if vanished and not plan.seen and not allow_empty:  # an empty listing would make every listed type vanish
        raise Conflict(
            f"the Calendly listing is empty but {len(vanished)} synced session types are still listed; "
            "refusing to make them all unbookable",
            hint="check the scope (--user/--organization); pass --allow-empty if every type really is gone",
            code="empty_listing",
        )
    report.deactivated = len(vanished)
    report.changes += (
        SyncChange("deactivate", row["calendly_uri"], row["title"], note="gone from the listing") for row in vanished
    )

    now = clock()
    _write(db, plan, [row["id"] for row in vanished], now=now)

    from bapp_cli.db.audit import record_audit_plain

    if not dry_run and not partial:
        report.run_id = record_run(db, report, started_at=started_at, finished_at=clock())
    if report.changes and (partial or not dry_run):  # one change a row written
        changes = {"changes": [change.describe() for change in report.changes]}
        key = "fetched" if partial else str(report.run_id)
        record_audit_plain(db, "calendly_sync", key, changes if partial else {**report.as_record(), **changes}, at=now)
    return report


def _write(db: Transaction, plan: SyncPlan, gone: Sequence[int], *, now: dt.datetime) -> None:
    """One executemany per kind of change, nothing for unchanged rows."""
    assert plan.catalogue is not None
    pathway_ids = {slug: pathway_id for slug, pathway_id, _, _ in plan.catalogue.pathways}
    # Thousands of rows on a first sync, stored as their pages were planned.
    stamp = plan.stored("updated_at", now)
    # a renamed type's old slug may be another's now (SlugBook.claim), whatever order the writes below run in
    renamed = [(update["id"],) for update in plan.updates if "slug" in update]
    db.execute_many("UPDATE session_types SET slug = NULL WHERE id = ?", renamed)
    inserted = f"INSERT INTO session_types ({', '.join((*_INSERTED, *_STAMPED))})"
    staged = plan.staged if plan.staged_on is not None and plan.staged_on.connection is db.connection else 0
    if staged:  # in the listing's order, as the executemany below would insert them
        db.execute_many(f"{inserted} SELECT *, ?, ?, ? FROM {_NEW_TYPES} ORDER BY rowid", [(stamp,) * 3])
    # then those planned after the last page (a slug another held meanwhile)
    markers = ", ".join(["?"] * len(_INSERTED + _STAMPED))
    db.execute_many(f"{inserted} VALUES ({markers})", [(*row, stamp, stamp, stamp) for row in plan.inserts[staged:]])
    # one executemany per set of changed fields; a vanished type is marked not present
    groups: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}
    for change in (*plan.updates, *({"id": type_id, "present_in_last_sync": False} for type_id in gone)):
        columns = (*sorted(name for name in change if name != "id"), "last_synced_at", "updated_at")
        values = [plan.stored(name, change[name]) for name in columns[:-2]]
        groups.setdefault(columns, []).append((*values, stamp, stamp, change["id"]))
    for columns, rows in groups.items():
        db.execute_many(f"UPDATE session_types SET {', '.join(f'{name} = ?' for name in columns)} WHERE id = ?", rows)
    db.execute_many("DELETE FROM session_type_pathways WHERE session_type_id = ?", [(key,) for key in plan.unlinked])
    # the links, found by URI (a new type's id is the database's)
    db.execute_many(
        "INSERT INTO session_type_pathways (session_type_id, pathway_id) "
        "SELECT id, ? FROM session_types WHERE calendly_uri = ?",
        [(pathway_ids[slug], uri) for uri, slugs in plan.new_links.items() for slug in slugs],
    )

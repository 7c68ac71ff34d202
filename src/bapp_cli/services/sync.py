"""Calendly event-type sync: classify, apply a whole listing in one transaction.

The listing is fetched completely before anything is written (the run itself — lock, fetch, run records —
is :mod:`bapp_cli.services.calendly_runs`); :func:`sync_event_types` then applies it inside the caller's one
transaction:

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
from operator import itemgetter
from typing import TYPE_CHECKING, Any, cast

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import Row, Table, delete, select, update
from sqlalchemy.orm import Session

from bapp_cli.calendly.models import EventType, ListedEventType
from bapp_cli.db import bulk
from bapp_cli.db.audit import record_audit
from bapp_cli.db.batches import BATCH_SIZE, batches
from bapp_cli.db.models import Pathway, SessionType, SessionTypePathway
from bapp_cli.errors import BappError, ConfigError, Conflict, InvalidInput, RemoteError
from bapp_cli.services.calendly_runs import (
    SOURCES,
    RunReport,
    invalid_listing,
    listing_error_details,
    listing_pages,
    record_run,
)
from bapp_cli.services.people import builder_ids_by_calendly_uri
from bapp_cli.services.session_types import (
    CATEGORY_ORDER,
    SlugBook,
    default_requires_auth,
    parse_currency,
    parse_price,
)

if TYPE_CHECKING:
    from bapp_cli.calendly.client import CalendlyClient

SYNC_COLUMNS = (
    "run_id",
    "status",
    "dry_run",
    "fetched",
    "created",
    "updated",
    "unchanged",
    "deactivated",
    "reactivated",
)
WHOAMI_COLUMNS = ("uri", "name", "email", "organization")

# Fields Calendly owns and sync keeps current; everything else on a session type is curated locally and never
# touched here (README "Cron: keeping the catalogue in step with Calendly").
OWNED_FIELDS = (
    "slug",
    "title",
    "description",
    "duration_minutes",
    "duration_options",
    "kind",
    "color",
    "scheduling_url",
    "is_secret",
    "remote_active",
    "custom_questions",
    "owner_uri",
    "builder_id",
    "calendly_position",
    "remote_updated_at",
    "remote_deleted_at",
)
CLASSIFIED_FIELDS = ("category", "requires_auth", "price", "currency")

# Column sizes of SessionType: a value that does not fit is an invalid listing, reported with its field,
# rather than a database error halfway through the apply.
_MAX_LENGTHS = {"uri": 500, "name": 300, "slug": 200, "color": 7, "scheduling_url": 500, "profile.owner": 500}
_KINDS = ("solo", "group")
# The built-in "free" words for names or slugs (slugs use hyphens between words).
_FREE_WORDS = re.compile(r"\b(?:free|getting[\s_-]+started|intro|discovery|back[\s_-]+to[\s_-]+work)", re.IGNORECASE)
_RULE_KEYS = frozenset({"pattern", "field", "category", "requires_auth", "pathways", "price", "currency"})
_RULE_FIELDS = {"name": ("name",), "slug": ("slug",), "any": ("name", "slug")}
_LISTING = TypeAdapter(list[ListedEventType])


# -- classification ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClassificationRule:
    """One ``[[calendly.rules]]`` table: a case-insensitive regex on name and/or slug → curated fields."""

    number: int
    pattern: re.Pattern[str]
    fields: tuple[str, ...]
    category: str
    requires_auth: bool | None = None
    pathways: tuple[str, ...] = ()
    price: Decimal | None = None
    currency: str | None = None

    @property
    def label(self) -> str:
        return f"calendly.rules[{self.number}]"

    def matches(self, name: str, slug: str) -> bool:
        values = {"name": name, "slug": slug}
        return any(self.pattern.search(values[part]) for part in self.fields)


@dataclass(frozen=True)
class Classification:
    """The curated fields a new (or reclassified) type starts with, and which rule chose them."""

    category: str
    requires_auth: bool
    pathways: tuple[str, ...]
    price: Decimal | None = None
    currency: str | None = None
    rule: int | None = None

    def describe(self) -> str:
        access = "account" if self.requires_auth else "public"
        linked = f", pathways {'+'.join(self.pathways)}" if self.pathways else ""
        source = f", rule {self.rule}" if self.rule is not None else ""
        return f"{self.category}, {access}{linked}{source}"


def parse_rules(raw: Sequence[Any]) -> list[ClassificationRule]:
    """Validate the config's rules up front, so a typo fails the run before anything is fetched (exit 4)."""
    rules: list[ClassificationRule] = []
    for number, entry in enumerate(raw, start=1):
        label = f"calendly.rules[{number}]"
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{label} must be a table", hint="see examples/config.toml")
        unknown = sorted(set(entry) - _RULE_KEYS)
        if unknown:
            raise ConfigError(
                f"{label}: unknown key {unknown[0]!r}", hint="rule keys: " + ", ".join(sorted(_RULE_KEYS))
            )
        pattern_text = entry.get("pattern")
        if not isinstance(pattern_text, str) or not pattern_text:
            raise ConfigError(f"{label}: 'pattern' (a regular expression) is required")
        try:
            pattern = re.compile(pattern_text, re.IGNORECASE)
        except re.error as exc:
            raise ConfigError(f"{label}: pattern {pattern_text!r} is not a valid regular expression ({exc})") from None
        field_name = entry.get("field", "any")
        if field_name not in _RULE_FIELDS:
            raise ConfigError(f"{label}: field must be one of name, slug, any (not {field_name!r})")
        category = entry.get("category")
        if not isinstance(category, str) or category.strip().lower() not in CATEGORY_ORDER:
            raise ConfigError(f"{label}: category must be one of {', '.join(CATEGORY_ORDER)} (not {category!r})")
        requires_auth = entry.get("requires_auth")
        if requires_auth is not None and not isinstance(requires_auth, bool):
            raise ConfigError(f"{label}: requires_auth must be true or false")
        pathways = entry.get("pathways", [])
        if isinstance(pathways, str):
            pathways = [pathways]
        if not isinstance(pathways, list) or not all(isinstance(item, str) and item.strip() for item in pathways):
            raise ConfigError(f"{label}: pathways must be a list of pathway slugs")
        try:
            price = parse_price(entry["price"], field=f"{label}.price") if "price" in entry else None
            currency = (
                parse_currency(str(entry["currency"]), field=f"{label}.currency") if "currency" in entry else None
            )
        except InvalidInput as exc:
            raise ConfigError(exc.message) from None
        rules.append(
            ClassificationRule(
                number=number,
                pattern=pattern,
                fields=_RULE_FIELDS[field_name],
                category=category.strip().lower(),
                requires_auth=requires_auth,
                pathways=tuple(dict.fromkeys(item.strip().lower() for item in pathways)),
                price=price,
                currency=currency,
            )
        )
    return rules


class Classifier:
    """Rules first (in order, first match wins), then the built-in defaults: free words → free, a pathway's
    name or slug as a whole word → pathway linked to it, otherwise specialized."""

    def __init__(self, rules: Sequence[ClassificationRule], pathways: Mapping[str, tuple[str, bool]]) -> None:
        """``pathways`` maps every known slug to (name, archived)."""
        for rule in rules:
            for slug in rule.pathways:
                if slug not in pathways:
                    raise ConfigError(
                        f"{rule.label}: no pathway {slug!r}",
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
                linked = tuple(item for item in rule.pathways if item not in self._archived)
                if rule.category == "pathway" and not linked:
                    linked = self._detect_pathways(name, slug)
                return Classification(
                    category=rule.category,
                    requires_auth=default_requires_auth(rule.category)
                    if rule.requires_auth is None
                    else rule.requires_auth,
                    pathways=linked,
                    price=rule.price,
                    currency=rule.currency,
                    rule=rule.number,
                )
        if _FREE_WORDS.search(name) or _FREE_WORDS.search(slug):
            return Classification("free", False, ())
        detected = self._detect_pathways(name, slug)
        if detected:
            return Classification("pathway", True, detected)
        return Classification("specialized", True, ())


def load_classifier(session: Session, rules: Sequence[ClassificationRule]) -> Classifier:
    rows = session.execute(select(Pathway.slug, Pathway.name, Pathway.archived)).all()
    return Classifier(rules, {slug: (name, archived) for slug, name, archived in rows})


# -- listings --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CalendlyIdentity:
    """Who the token belongs to (``bapp calendly whoami``)."""

    uri: str
    name: str
    email: str
    organization: str

    def as_record(self) -> dict[str, Any]:
        return {"uri": self.uri, "name": self.name, "email": self.email, "organization": self.organization}


def whoami(client: CalendlyClient) -> CalendlyIdentity:
    user = client.get_current_user()
    return CalendlyIdentity(user.uri, user.name, user.email, user.current_organization)


def parse_listing(content: bytes | str, *, name: str) -> list[ListedEventType]:
    """A saved listing (``--from-file``): one page ``{collection, pagination}``, a list of pages, or a bare
    list of event types. Every bad item is reported with its page and index (exit 6)."""
    pages = listing_pages(
        content,
        name=name,
        items="event types",
        hint="save the body of GET /event_types, a list of such pages, or a list of event types",
    )
    items: list[ListedEventType] = []
    details: list[dict[str, Any]] = []
    for prefix, collection in pages:
        if not isinstance(collection, list):
            details.append({"field": prefix or "(top level)", "message": "must be an array of event types"})
            continue
        try:
            items.extend(_LISTING.validate_python(collection))
        except ValidationError as exc:
            details.extend(listing_error_details(exc, prefix, skip=0))
    if details:
        raise invalid_listing(name, details)
    return items


# -- results ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SyncChange:
    """One planned or applied change, rendered as one stderr line by ``--dry-run``/``--verbose``."""

    action: str  # create, update, deactivate, reactivate
    uri: str
    title: str
    fields: tuple[str, ...] = ()
    note: str = ""

    def describe(self) -> str:
        line = f"{self.action:<10} {self.uri}  {self.title!r}"
        if self.fields:
            line += ": " + ", ".join(self.fields)
        if self.note:
            line += f" ({self.note})"
        return line


@dataclass
class SyncReport(RunReport):
    """The summary of one run (the keys of `calendly sync --json`, docs/cli.md)."""

    deactivated: int = 0
    reactivated: int = 0
    changes: list[SyncChange] = field(default_factory=list)

    def as_record(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in SYNC_COLUMNS}

    @property
    def rows_written(self) -> int:
        return self.created + self.updated + self.deactivated + self.reactivated


# -- the apply -------------------------------------------------------------------------------------


_EXISTING_COLUMNS = (
    SessionType.id,
    SessionType.calendly_uri,
    SessionType.present_in_last_sync,
    *(getattr(SessionType, name) for name in OWNED_FIELDS),
    *(getattr(SessionType, name) for name in CLASSIFIED_FIELDS),
)
# a question as stored: Calendly's shape, in its order, with the models' defaults filled in
_QUESTION_DEFAULTS: dict[str, Any] = {
    "name": None,
    "type": None,
    "position": None,
    "enabled": True,
    "required": False,
    "answer_choices": [],
    "include_other": False,
}


def stage_event_types(items: Iterable[ListedEventType | EventType], source: str) -> list[dict[str, Any]]:
    """Each listed type as its row's Calendly-owned values but ``builder_id`` (which needs the database):
    the part of the apply done page by page while the next page is still on its way. A type that cannot
    be stored raises RemoteError for the API, InvalidInput for a file, naming its field."""
    error_type: type[BappError] = RemoteError if source == "api" else InvalidInput
    origin = "Calendly listing" if source == "api" else "listing file"
    staged = []
    for entry in items:
        item: Mapping[str, Any] = entry.model_dump() if isinstance(entry, EventType) else entry
        uri, name, slug, kind = item["uri"], item.get("name"), item.get("slug"), item.get("kind", "solo")
        owner = item["profile"]["owner"] if item.get("profile") else None
        fields = {"uri": uri, "name": name, "slug": slug, "color": item.get("color")}
        fields |= {"scheduling_url": item.get("scheduling_url"), "profile.owner": owner}
        if not uri.strip():
            problem: str | None = "uri: must not be empty"
        elif kind not in _KINDS:
            problem = f"kind: {kind!r} is not one of {', '.join(_KINDS)}"
        else:
            too_long = [name for name, value in fields.items() if value is not None and len(value) > _MAX_LENGTHS[name]]
            problem = f"{too_long[0]}: longer than {_MAX_LENGTHS[too_long[0]]} characters" if too_long else None
        if problem is not None:
            raise error_type(f"{origin}: invalid event type {uri[:200]}: {problem}", code="invalid_listing")
        staged.append(
            {
                "calendly_uri": uri,
                "slug": slug.lower() if slug else None,
                # Calendly allows a null name (e.g. some managed types); a session type always needs a title.
                "title": (name or "").strip() or slug or uri.rstrip("/").rsplit("/", 1)[-1],
                "description": item.get("description_plain"),
                "duration_minutes": item["duration"],
                "duration_options": item.get("duration_options") or None,
                "kind": kind,
                "color": item.get("color"),
                "scheduling_url": item.get("scheduling_url"),
                "is_secret": item.get("secret", False),
                "remote_active": item["active"],
                "custom_questions": [
                    # Calendly sends every key (validated in the stored order), so the copy is rarely needed
                    question
                    if len(question) == len(_QUESTION_DEFAULTS) and question["answer_choices"] is not None
                    else {**_QUESTION_DEFAULTS, **question, "answer_choices": question.get("answer_choices") or []}
                    for question in item.get("custom_questions") or ()
                ],
                "owner_uri": owner,
                "calendly_position": item.get("position"),
                "remote_updated_at": item["updated_at"],
                "remote_deleted_at": item.get("deleted_at"),
            }
        )
    return staged


def sync_event_types(
    session: Session,
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
) -> SyncReport:
    """Apply a complete listing in the caller's transaction and (unless ``dry_run``) record the run.

    ``partial``: the listing is a few types fetched one by one (a webhook for a type not synced yet),
    not the scope's whole catalogue — nothing is deactivated for being absent and no run is recorded
    (the changes are audited).

    Raises Conflict (exit 8) for an empty listing while synced types exist, unless ``allow_empty``; an
    item that cannot be stored raises as :func:`stage_event_types` says. The listing may come staged by it.
    """
    if source not in SOURCES:
        raise ValueError(f"unknown sync source {source!r}")
    now = clock()
    report = SyncReport(run_id=None, status="succeeded", dry_run=dry_run, source=source, fetched=len(listing))
    by_uri: dict[str, dict[str, Any]] = {}
    for entry in listing:
        staged = stage_event_types([entry], source)[0] if isinstance(entry, EventType) else entry
        # a type listed twice (pages shifting under the cursor): the later copy wins
        by_uri[staged["calendly_uri"]] = staged
    report.skipped = len(listing) - len(by_uri)

    existing: dict[str, Row[Any]] = {
        row.calendly_uri: row
        for row in session.execute(select(*_EXISTING_COLUMNS).where(SessionType.calendly_uri.is_not(None)))
    }
    if not by_uri and not allow_empty and not partial:
        still_listed = sum(1 for row in existing.values() if row.present_in_last_sync)
        if still_listed:
            raise Conflict(
                f"the Calendly listing is empty but {still_listed} synced session types are still listed; "
                "refusing to make them all unbookable",
                hint="check the scope (--user/--organization); pass --allow-empty if every type really is gone",
                code="empty_listing",
            )

    builders = builder_ids_by_calendly_uri(session)
    classifier = load_classifier(session, rules)
    pathway_ids: dict[str, int] = {
        slug: pathway_id for slug, pathway_id in session.execute(select(Pathway.slug, Pathway.id))
    }

    inserts: list[dict[str, Any]] = []
    new_links: dict[str, tuple[str, ...]] = {}
    updates: list[dict[str, Any]] = []
    relinks: dict[int, tuple[str, ...]] = {}
    current_links: dict[int, set[str]] = {}
    if reclassify and existing:
        for type_id, slug in session.execute(
            select(SessionTypePathway.session_type_id, Pathway.slug).join(
                Pathway, Pathway.id == SessionTypePathway.pathway_id
            )
        ):
            current_links.setdefault(type_id, set()).add(slug)

    slugs = SlugBook.load(session)
    for uri, desired in by_uri.items():
        listed_slug = desired["slug"]
        # Team-owned types (/teams/…) and types without a profile have no builder.
        desired["builder_id"] = builders.get(desired["owner_uri"]) if desired["owner_uri"] else None
        row = existing.get(uri)
        # Slugs are unique: a Calendly slug a local type already has gets a numbered one (issue 15 #6).
        desired["slug"] = slugs.claim(
            desired["slug"], current=row.slug if row is not None else None, holder=row.id if row is not None else None
        )
        if row is None:
            classification = classifier.classify(desired["title"], desired["slug"] or "")
            values = {
                **desired,
                "present_in_last_sync": True,
                "last_synced_at": now,
                "category": classification.category,
                "requires_auth": classification.requires_auth,
                # A new type's display order starts at its Calendly position.
                "display_order": desired["calendly_position"] if desired["calendly_position"] is not None else 0,
                "price": classification.price if classification.price is not None else Decimal("0.00"),
                "currency": classification.currency or "GBP",
                "enabled": True,
                "created_at": now,
                "updated_at": now,
            }
            inserts.append(values)
            if classification.pathways:
                new_links[uri] = classification.pathways
            report.created += 1
            note = classification.describe()
            if listed_slug and desired["slug"] != listed_slug:
                note = f"{note}; slug {desired['slug']} ({listed_slug} is taken)"
            report.changes.append(SyncChange("create", uri, desired["title"], note=note))
            continue
        changed = [name for name in OWNED_FIELDS if getattr(row, name) != desired[name]]
        values = {name: desired[name] for name in changed}
        curated_changed: list[str] = []
        if reclassify:
            classification = classifier.classify(desired["title"], desired["slug"] or "")
            wanted: dict[str, Any] = {
                "category": classification.category,
                "requires_auth": classification.requires_auth,
            }
            if classification.price is not None:
                wanted["price"] = classification.price
            if classification.currency is not None:
                wanted["currency"] = classification.currency
            for name, value in wanted.items():
                if getattr(row, name) != value:
                    curated_changed.append(f"{name} {getattr(row, name)}→{value}")
                    values[name] = value
            if current_links.get(row.id, set()) != set(classification.pathways):
                curated_changed.append(
                    f"pathways {'+'.join(sorted(current_links.get(row.id, set()))) or '-'}"
                    f"→{'+'.join(classification.pathways) or '-'}"
                )
                relinks[row.id] = classification.pathways
        returning = not row.present_in_last_sync
        if not values and not returning and row.id not in relinks:
            report.unchanged += 1
            continue
        updates.append({"id": row.id, **values, "present_in_last_sync": True, "last_synced_at": now, "updated_at": now})
        fields = tuple(changed) + tuple(curated_changed)
        if returning:
            report.reactivated += 1
            report.changes.append(SyncChange("reactivate", uri, desired["title"], fields, note="back in the listing"))
        else:
            report.updated += 1
            report.changes.append(SyncChange("update", uri, desired["title"], fields))

    vanished = (
        [] if partial else [row for uri, row in existing.items() if uri not in by_uri and row.present_in_last_sync]
    )
    for row in vanished:
        report.deactivated += 1
        report.changes.append(SyncChange("deactivate", row.calendly_uri, row.title, note="gone from the listing"))

    _write(session, inserts, new_links, updates, relinks, vanished, pathway_ids, now)

    if partial and report.rows_written:
        record_audit(session, "calendly_sync", "fetched", {"changes": [change.describe() for change in report.changes]})
    if not dry_run and not partial:
        report.run_id = record_run(
            session,
            report,
            kind="event_types",
            started_at=started_at,
            finished_at=clock(),
            deactivated=report.deactivated,
            reactivated=report.reactivated,
        )
        if report.rows_written:
            record_audit(
                session,
                "calendly_sync",
                str(report.run_id),
                {**report.as_record(), "changes": [change.describe() for change in report.changes]},
            )
    return report


def _write(
    session: Session,
    inserts: list[dict[str, Any]],
    new_links: Mapping[str, tuple[str, ...]],
    updates: list[dict[str, Any]],
    relinks: Mapping[int, tuple[str, ...]],
    vanished: Sequence[Row[Any]],
    pathway_ids: Mapping[str, int],
    now: dt.datetime,
) -> None:
    """Bulk statements only: one executemany per kind of change, nothing for unchanged rows."""
    links: list[dict[str, int]] = []
    table = cast(Table, SessionType.__table__)
    if inserts:
        # Thousands of rows on a first sync: the set-based path (db.bulk) rather than the ORM.
        columns = list(inserts[0])
        bulk.insert_rows(session, table, columns, list(map(itemgetter(*columns), inserts)))
        if new_links:
            created = (
                session.execute(
                    select(SessionType.id, SessionType.calendly_uri).where(
                        SessionType.calendly_uri.in_(list(new_links))
                    )
                )
                if len(new_links) <= BATCH_SIZE
                else session.execute(select(SessionType.id, SessionType.calendly_uri))
            )
            for type_id, uri in created:
                links.extend(
                    {"session_type_id": type_id, "pathway_id": pathway_ids[slug]}
                    for slug in new_links.get(uri or "", ())
                )
    bulk.update_rows(session, table, updates)  # one executemany per set of changed fields
    if relinks:
        ids = list(relinks)
        for chunk in batches(ids):
            session.execute(delete(SessionTypePathway).where(SessionTypePathway.session_type_id.in_(chunk)))
        links.extend(
            {"session_type_id": type_id, "pathway_id": pathway_ids[slug]}
            for type_id, slugs in relinks.items()
            for slug in slugs
        )
    if links:
        bulk.insert_rows(
            session,
            cast(Table, SessionTypePathway.__table__),
            ("session_type_id", "pathway_id"),
            [(link["session_type_id"], link["pathway_id"]) for link in links],
        )
    gone = [row.id for row in vanished]
    for chunk in batches(gone):
        session.execute(
            update(SessionType)
            .where(SessionType.id.in_(chunk))
            .values(present_in_last_sync=False, last_synced_at=now, updated_at=now)
            .execution_options(synchronize_session=False)
        )

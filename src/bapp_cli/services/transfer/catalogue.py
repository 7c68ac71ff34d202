"""The catalogue in bulk: pathways (with tiers), skills (with their tier links) and session types.

These are small tables (tens to thousands of rows), so rows are applied one by one through the ORM, but
every value passes the same checks as `pathways add/update/set-tier`, `skills add/update/link/unlink` and
`sessions add/update` (shared functions of `pathway_admin`, `skills` and `session_types`), and lookups
are cached per import. A row updates only the columns it has; list columns (`tiers`, `links`,
`pathways`) say the whole list: a skill's links and a session's pathways are made exactly those given,
tiers given are added or renamed (tiers are never deleted: skills link to them).
"""

from __future__ import annotations

import re
from abc import abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Annotated, Any, ClassVar, Literal, NotRequired, Required

from pydantic import BeforeValidator, Field, StringConstraints
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session
from typing_extensions import TypedDict

from bapp_cli.db import bulk
from bapp_cli.db.audit import apply_changes
from bapp_cli.db.domains import DESCRIPTION_LIMIT, MAX_DURATION_MINUTES, MAX_INT32, QUESTION_LIMIT, URI_LENGTH
from bapp_cli.db.models import Base, Pathway, PathwayTier, SessionType, SessionTypePathway, Skill, SkillPathwayLink
from bapp_cli.db.types import UTCDateTime
from bapp_cli.errors import InvalidInput, UnreadableDocument, read_json
from bapp_cli.services import pathway_admin
from bapp_cli.services.progress import record_completions
from bapp_cli.services.session_types import check_title, link_pathways, parse_category, row_slug
from bapp_cli.services.session_values import SlugBook, default_requires_auth, parse_currency, session_slug
from bapp_cli.services.skills import SKILL_FIELDS, check_skill_slug, earned_counts, parse_link, skill_links
from bapp_cli.services.transfer.formats import SourceRow
from bapp_cli.services.transfer.importer import (
    CREATED,
    UNCHANGED,
    UPDATED,
    Int32,
    KindImporter,
    Money,
    RowId,
    RowResult,
    When,
)


def json_value(value: Any) -> Any:
    """A nested value (objects, lists of objects) in a CSV cell is JSON (each kind's: a booking's answers too)."""
    if isinstance(value, str):
        try:
            return read_json(value)
        except UnreadableDocument as exc:
            raise ValueError(f"not valid JSON ({exc.problem})") from None
    return value


def _json_list(value: Any) -> Any:
    """A list column in a CSV cell: JSON (`["a:1","b:2"]`), or plain items separated by commas."""
    if isinstance(value, str) and not value.lstrip().startswith("["):
        return [item.strip() for item in re.split(r"[,;]", value) if item.strip()]
    return json_value(value)


# Limits here only bound what is read; the services' checks (with their own messages) decide.
Text8 = Annotated[str, StringConstraints(strip_whitespace=True, max_length=8)]
Text32 = Annotated[str, StringConstraints(strip_whitespace=True, max_length=32)]
Text64 = Annotated[str, StringConstraints(strip_whitespace=True, max_length=64)]
# as wide as the widest key a row names a record by, a Calendly URI: slugs, builders, Calendly's URIs and links
Wide = Annotated[str, StringConstraints(strip_whitespace=True, max_length=URI_LENGTH)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, max_length=1000)]
LongText = Annotated[str, StringConstraints(max_length=DESCRIPTION_LIMIT)]
NameList = Annotated[list[Name], BeforeValidator(_json_list)]


class TierItem(TypedDict):
    tier: Required[Annotated[int, Field(strict=True, ge=1, le=pathway_admin.MAX_TIERS)]]  # JSON true is no tier 1
    name: Required[Name]
    description: NotRequired[LongText | None]
    skills: NotRequired[Any]  # informational (`pathways show`): links are imported with skills


class PathwayRow(TypedDict, total=False):
    id: RowId | None
    slug: Required[Text64]
    name: Name | None
    description: LongText | None
    icon: Text64 | None
    color: Text32 | None
    position: Annotated[int, Field(ge=0, le=MAX_INT32)] | None
    archived: bool | None
    tiers: Annotated[list[TierItem], BeforeValidator(json_value)] | None
    created_at: When | None


class SkillRow(TypedDict, total=False):
    id: RowId | None
    slug: Required[Name]
    name: Name | None
    description: LongText | None
    domain: Name | None
    is_fundamental: bool | None
    archived: bool | None
    links: NameList | None
    created_at: When | None


class QuestionItem(TypedDict):
    name: Required[Name]  # QUESTION_LIMIT characters, as the type; a blank one too, as a sync stores it
    type: Required[Name]
    # each as the default when none (null, or left out as TOML writes a null): `_question`
    position: NotRequired[Int32 | None]
    enabled: NotRequired[bool | None]
    required: NotRequired[bool | None]
    answer_choices: NotRequired[list[Annotated[str, StringConstraints(max_length=QUESTION_LIMIT)]] | None]
    include_other: NotRequired[bool | None]


class SessionRow(TypedDict, total=False):
    id: RowId | None
    slug: Wide | None
    title: Name | None
    description: LongText | None
    category: Text32 | None
    requires_auth: bool | None
    bookable: Any  # derived from the other columns; read-only
    enabled: bool | None
    is_secret: bool | None
    duration_minutes: Annotated[int, Field(ge=1, le=MAX_DURATION_MINUTES)] | None
    duration_options: (
        Annotated[list[Annotated[int, Field(ge=1, le=MAX_DURATION_MINUTES)]], BeforeValidator(_json_list)] | None
    )
    price: Money | None
    currency: Text8 | None
    display_order: Int32 | None
    pathways: NameList | None
    builder: Wide | None
    calendly_uri: Wide | None
    scheduling_url: Wide | None
    custom_questions: Annotated[list[QuestionItem], BeforeValidator(json_value)] | None
    kind: Literal["solo", "group"] | None
    color: Text32 | None
    invitee_limit: Annotated[int, Field(ge=1, le=MAX_INT32)] | None
    owner_uri: Wide | None
    calendly_position: Int32 | None
    remote_active: bool | None
    remote_updated_at: When | None
    remote_deleted_at: When | None
    present_in_last_sync: bool | None
    last_synced_at: When | None
    created_at: When | None


# the columns a row names its record by, or that the importer sets by its own rules
_KEYS = ("id", "slug", "created_at", "calendly_uri")


class RowImporter(KindImporter):
    """One row at a time through the ORM; refusals are collected per row before anything is changed."""

    model: ClassVar[type[Base]]
    # How a row's values of the model's columns are checked and stored where a rule of the admin commands
    # applies; any other column: text trimmed (blank is none), instants read as instants, the rest as
    # given. A null clears a nullable column and leaves a NOT NULL one as it is.
    rules: ClassVar[Mapping[str, Callable[[Any], Any]]] = {}
    needed: ClassVar[tuple[str, ...]] = ("name",)  # the columns a row that creates a record must give

    def __post_init__(self) -> None:
        self.seen: dict[str, int] = {}  # natural key → the line of the file that gave it first

    def apply(self, rows: Sequence[SourceRow]) -> list[RowResult]:
        applied, results = self.settled(rows, self.apply_row)
        self.session.flush()
        return results + [RowResult(row, outcome=outcome) for row, outcome in applied]

    @abstractmethod
    def apply_row(self, row: SourceRow, values: dict[str, Any]) -> str:
        """Create or update one row; returns its outcome (created, updated, unchanged)."""

    def given(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """The stored values of the model's columns the row has."""
        columns = self.model.__table__.columns
        wanted: dict[str, Any] = {}
        for name, value in values.items():
            column = columns.get(name)
            if column is None or name in _KEYS or (value is None and not column.nullable):
                continue  # a null leaves a NOT NULL column as it is
            if value is None:
                wanted[name] = None
            elif name in self.rules:
                wanted[name] = self.rules[name](value)
            elif isinstance(column.type, UTCDateTime):
                wanted[name] = self.instant(value, name)
            else:  # text trimmed (blank is none), other values as they are
                wanted[name] = (value.strip() or None) if isinstance(value, str) else value
        return wanted

    def seen_once(self, key: str, line: int, name: str) -> None:
        if key in self.seen:
            raise InvalidInput(f"{name}: {key!r} is already on line {self.seen[key]}")
        self.seen[key] = line

    def restore_id(self, model: Any, values: Mapping[str, Any]) -> dict[str, Any]:
        """In a restore the row keeps its id (when that id is free); a row without one takes the next id after
        those kept so far, on PostgreSQL too: its sequence, which kept ids do not move, is moved past them first."""
        wanted = values.get("id") if self.restore else None
        if wanted is not None and self.session.get(model, wanted) is not None:
            raise InvalidInput(f"id: {wanted} is taken by another {model.__tablename__[:-1]}")
        if self.restore and wanted is None:  # rare: a backup's rows all have ids; a hand-made document's may not
            bulk.reset_sequences(self.session, [model.__table__])
        return {} if wanted is None else {"id": wanted}

    def existing(
        self, key: str, row: SourceRow, values: Mapping[str, Any], column: Any = None
    ) -> tuple[Any, dict[str, Any]]:
        """(record, wanted): the record whose `column` (its slug unless told) is `key` — a key an earlier row
        gave is refused — or None for a new one, whose `needed` columns are checked first of the row's list
        and link columns, as for every kind; and the stored values of the columns the row gives (`given`)."""
        column = self.model.__table__.c.slug if column is None else column
        self.seen_once(key, row.line, column.key)
        wanted = self.given(values)
        record = self.session.scalars(select(self.model).where(column == key)).one_or_none()
        if record is None and (missing := [name for name in self.needed if name not in wanted]):
            raise InvalidInput(f"{missing[0]}: required for a new {self.model.__tablename__[:-1].replace('_', ' ')}")
        return record, wanted

    def upsert(
        self, record: Any, slug: str | None, values: Mapping[str, Any], wanted: dict[str, Any]
    ) -> tuple[Any, dict[str, Any] | None]:
        """Update `record` with `wanted`, or (when there is none, see `existing`) create it from the columns
        the file gives (the model's defaults for the others), created now or when the file says, keeping its
        id in a restore, and flushed, so that its id is there for the rows that point at it. Returns the
        record and {field: [old, new]} of what changed (None: created)."""
        created_at = self.instant(values.get("created_at"), "created_at")
        # a backup's archived record: its later sections' records are its history (only once its row is taken)
        if values.get("archived") and self.recorded is not None:
            self.recorded.add((self.kind, str(slug)))
        if record is not None:
            if changes := apply_changes(record, wanted):
                record.updated_at = self.now
            return record, changes
        stamps = {"created_at": created_at or self.now, "updated_at": self.now}
        record = self.model(slug=slug, **stamps, **self.restore_id(self.model, values), **wanted)
        self.session.add(record)
        self.session.flush()
        return record, None


def _outcome(changes: dict[str, Any] | None) -> str:
    return CREATED if changes is None else UPDATED if changes else UNCHANGED


# -- pathways ---------------------------------------------------------------------------------------------


class PathwayImporter(RowImporter):
    kind = "pathways"
    schema = PathwayRow
    model = Pathway
    rules = pathway_admin.PATHWAY_FIELDS

    def apply_row(self, row: SourceRow, values: dict[str, Any]) -> str:
        given = values["slug"]  # `none`, which an earlier bapp accepted: a restore takes it, to rename in `finish`
        slug = given if self.restore and given.lower() == "none" else pathway_admin.check_pathway_slug(given)
        pathway, wanted = self.existing(slug, row, values)
        tiers = sorted(values.get("tiers") or [], key=lambda item: item["tier"])
        existing_tiers: dict[int, PathwayTier] = {}
        if pathway is not None:
            if self.restore and values.get("id") is not None and values["id"] != pathway.id:
                raise InvalidInput(f"id: pathway {slug!r} has id {pathway.id} here, {values['id']} in the backup")
            stored_tiers = self.session.scalars(select(PathwayTier).filter_by(pathway_id=pathway.id))
            existing_tiers = {tier.tier: tier for tier in stored_tiers}
            if self.restore and values.get("created_at") is not None:
                wanted["created_at"] = self.instant(values["created_at"], "created_at")
        numbers = sorted(set(existing_tiers) | {item["tier"] for item in tiers})
        if len({item["tier"] for item in tiers}) != len(tiers):
            raise InvalidInput("tiers: a tier number is given twice")
        if numbers != list(range(1, len(numbers) + 1)):
            raise InvalidInput(f"tiers: tiers are numbered 1, 2, 3… without gaps; this row would leave tiers {numbers}")
        for item in tiers:
            pathway_admin.check_name(item["name"], field=f"tiers[{item['tier']}].name")
        if not self.restore:  # a restore takes the backup's pathways as they were, two that read alike too
            pathway_admin.refuse_ambiguous(self.session, pathway, slug=slug, name=wanted.get("name"))
        if pathway is None and "position" not in wanted:
            wanted["position"] = pathway_admin.next_position(self.session)
        pathway, changes = self.upsert(pathway, slug, values, wanted)
        outcome = _outcome(changes)
        for item in tiers:
            named = {"description": None} | pathway_admin.pathway_fields(
                name=item["name"], description=item.get("description")
            )
            tier = existing_tiers.get(item["tier"])
            if tier is None:
                self.session.add(PathwayTier(pathway_id=pathway.id, tier=item["tier"], **named))
            elif not apply_changes(tier, named):
                continue
            outcome = outcome if outcome == CREATED else UPDATED
        return outcome

    def finish(self) -> None:
        """A restored pathway called `none` (which now means no pathway; none other can be) gets the slug 0015
        gives a database's: the first free `none-N`, in id order, once every slug of the backup is held."""
        called_none = select(Pathway).where(func.lower(Pathway.slug) == "none").order_by(Pathway.id)
        for pathway in self.session.scalars(called_none).all():
            taken = set(self.session.scalars(select(Pathway.slug)))  # with the last one renamed (autoflush)
            free = next(f"none-{number}" for number in range(2, len(taken) + 3) if f"none-{number}" not in taken)
            self.renamed[("pathway", pathway.slug)], pathway.slug = free, free  # flushed by the next read (autoflush)


# -- skills -----------------------------------------------------------------------------------------------


class SkillImporter(RowImporter):
    kind = "skills"
    schema = SkillRow
    model = Skill
    rules = SKILL_FIELDS  # as `skills add/update` check them

    def __post_init__(self) -> None:
        super().__post_init__()
        self.tiers = set(self.session.execute(select(PathwayTier.pathway_id, PathwayTier.tier)).all())
        # what the completion rules must look at once every row is in (badges are awarded
        # the moment a catalogue change completes a tier)
        self.touched_pathways: set[int] = set()
        self.fundamentals_changed = False
        self.extra = {"badges_awarded": 0, "pathways_completed": 0}  # keys stable whatever the data (CLI.md)

    def _links(self, texts: Sequence[str], skill: Skill | None, current: dict[int, int]) -> dict[int, int]:
        links: dict[int, int] = {}
        for text in texts:
            slug, tier = parse_link(text)
            pathway = self.pathway(slug, "links")
            if (pathway.id, tier) not in self.tiers:
                raise InvalidInput(f"links: pathway {pathway.slug!r} has no tier {tier}")
            if links.setdefault(pathway.id, tier) != tier:
                raise InvalidInput(f"links: {pathway.slug!r} is given twice with different tiers")
            if current.get(pathway.id) != tier:  # a new link
                if self.refuses_new("pathways", pathway):
                    raise InvalidInput(f"links: pathway {pathway.slug!r} is archived and takes no new skill links")
                if skill is not None and self.refuses_new("skills", skill):
                    raise InvalidInput(f"links: skill {skill.slug!r} is archived and takes no new links")
        return links

    def apply_row(self, row: SourceRow, values: dict[str, Any]) -> str:
        slug = check_skill_slug(values["slug"], "slug")  # the skills file's column, not `skills add`'s argument
        skill, wanted = self.existing(slug, row, values)
        current: dict[int, int] = {}  # pathway id → the tier the skill is linked at
        if skill is not None:
            linked = select(SkillPathwayLink.pathway_id, SkillPathwayLink.tier).filter_by(skill_id=skill.id)
            current = {pathway_id: tier for pathway_id, tier in self.session.execute(linked)}
        # a backup's row archiving the skill brings its links as its history (`upsert` notes it once the row is taken)
        own = None if values.get("archived") and self.recorded is not None else skill
        links = self._links(values.get("links") or [], own, current) if "links" in values else None
        skill, changes = self.upsert(skill, slug, values, wanted)
        if changes and "archived" in changes:
            self.touched_pathways.update(current)
            self.fundamentals_changed |= skill.is_fundamental
        self.fundamentals_changed |= bool(changes and "is_fundamental" in changes)
        outcome = _outcome(changes)
        if links is not None and links != current:
            if outcome != CREATED:
                outcome = UPDATED
                skill.updated_at = self.now
            dropped = [pathway_id for pathway_id, tier in current.items() if links.get(pathway_id) != tier]
            unlinked = bulk.any_of(self.session, SkillPathwayLink.pathway_id, dropped)
            self.session.execute(delete(SkillPathwayLink).where(SkillPathwayLink.skill_id == skill.id, unlinked))
            self.touched_pathways.update(dropped)
            for pathway_id, tier in links.items():
                if current.get(pathway_id) != tier:
                    self.session.add(SkillPathwayLink(skill_id=skill.id, pathway_id=pathway_id, tier=tier))
                    self.touched_pathways.add(pathway_id)  # a tier that had no skills may now be complete
            self.session.flush()
        return outcome

    def finish(self) -> None:
        if self.restore or not (self.touched_pathways or self.fundamentals_changed):
            return
        self.session.flush()
        outcomes = record_completions(
            self.session, now=self.now, pathway_ids=self.touched_pathways, fundamentals=self.fundamentals_changed
        )
        self.extra = earned_counts(outcomes, self.awarded)


def export_skills(session: Session) -> Iterator[dict[str, Any]]:
    """Every skill by slug; its links as `skills list` reads them (skills.skill_links), in pathway order."""
    links = skill_links(session)
    for skill in session.scalars(select(Skill).order_by(Skill.slug)):
        yield {
            name: list(links[skill.id].values()) if name == "links" else getattr(skill, name)
            for name in SkillRow.__annotations__  # what the import reads (`kinds._write_kind`)
        }


# -- session types ----------------------------------------------------------------------------------------


def _calendly_color(value: str) -> str:
    """A session type's colour is Calendly's and stays as Calendly spells it (a pathway's is upper case)."""
    pathway_admin.check_color(value)
    return value


class SessionImporter(RowImporter):
    kind = "sessions"
    schema = SessionRow
    required = (("calendly_uri", "slug", "title", "id"),)
    model = SessionType
    needed = ("title", "duration_minutes")
    rules: ClassVar[Mapping[str, Callable[[Any], Any]]] = {
        "title": check_title,
        "category": parse_category,
        "currency": parse_currency,
        "color": _calendly_color,
    }

    def __post_init__(self) -> None:
        super().__post_init__()
        # sync's allocator, over every slug held now: a slug handed out here stays taken
        held = self.session.execute(select(SessionType.slug, SessionType.id).where(SessionType.slug.is_not(None)))
        self.slugs = SlugBook({slug: type_id for slug, type_id in held if slug is not None})
        self.made_up: list[tuple[str | None, SessionType, str]] = []  # slugs handed out in `finish`

    def apply_row(self, row: SourceRow, values: dict[str, Any]) -> str:
        given_slug = values.get("slug")
        slug = row_slug(given_slug, values.get("title") or "", restore=self.restore)
        # a title-only row imported before a8cc80c made the type its title's slug of that time names (`cr-me-br-l-e`,
        # accented letters dropped): it still names that type, so that importing the same file again changes nothing
        former = session_slug(values.get("title") or "") if given_slug is None else None
        if former and slug and self.slugs.is_free(slug) and not self.slugs.is_free(former):
            slug = former
        # a backup's slug from before the rule names its own row (`Play_Lab` after `play-lab` is another type, and
        # `!!!` or '' one without a slug), and the slug the rule gives it is numbered when taken, as 0014 does
        key = values.get("calendly_uri") or (given_slug if self.restore and given_slug is not None else slug)
        if key is None:
            raise InvalidInput("slug: a session row needs a calendly_uri, a slug, or a title with a-z or 0-9 in it")
        # Slugs are unique (0007), so a slug names one type, local or synced: `slug,invitee_limit`
        # updates the synced type it names rather than trying to create another.
        key_column = SessionType.calendly_uri if values.get("calendly_uri") else SessionType.slug
        session_type, wanted = self.existing(key, row, values, key_column)
        if "custom_questions" in values:
            wanted["custom_questions"] = [
                _question(item, index) for index, item in enumerate(values["custom_questions"] or [])
            ]
        if "builder" in values:
            wanted["builder_id"] = self.builder(values["builder"])
        if values.get("calendly_uri"):
            wanted["calendly_uri"] = values["calendly_uri"]
        pathways = (  # each once, in the order given
            list(dict.fromkeys(self.pathway(name, "pathways") for name in values["pathways"] or []))
            if "pathways" in values
            else None
        )
        current: set[int] = set()  # the pathways linked now
        if session_type is not None:
            linked = select(SessionTypePathway.pathway_id).where(SessionTypePathway.session_type_id == session_type.id)
            current = set(self.session.scalars(linked))
        closed = {one.id for one in self.pathways.values() if self.refuses_new("pathways", one)}  # to new sessions
        if archived := [one.slug for one in pathways or () if one.id in closed and one.id not in current]:
            raise InvalidInput(f"pathways: pathway {archived[0]!r} is archived and takes no new sessions")
        category = wanted.get("category", "specialized" if session_type is None else session_type.category)
        links_after = current if pathways is None else {pathway.id for pathway in pathways}
        changes_links = session_type is None or category != session_type.category or links_after != current
        # as `sessions update`: linked to archived pathways alone, every booking would be refused (rule 4); said of a
        # change only, so that a pathway session `pathways archive` left without an open pathway still re-imports
        if changes_links and category == "pathway" and links_after <= closed and not self.restore:
            raise InvalidInput("pathways: a pathway session needs at least one pathway that is not archived")
        holder = None if session_type is None else session_type.id
        given = given_slug is not None and (slug == given_slug or not self.restore)  # the row's own: refused if taken
        if slug is not None and given:
            if not self.slugs.is_free(slug, for_type=holder):
                raise InvalidInput(f"slug: {slug!r} is taken by another session type; slugs are unique")
            slug = self.slugs.claim(slug, holder=holder)
            if session_type is not None:
                wanted["slug"] = slug
        if session_type is None:
            wanted.setdefault("category", category)
            wanted.setdefault("requires_auth", default_requires_auth(category))
        session_type, changes = self.upsert(session_type, slug if given else None, values, wanted)
        if changes is None and slug is not None and not given:  # a title's, or a backup's converted: in `finish`
            self.made_up.append((given_slug, session_type, slug))
        outcome = _outcome(changes)
        if pathways is not None and links_after != current:
            link_pathways(self.session, session_type.id, [pathway.id for pathway in pathways])
            if outcome == UNCHANGED:
                session_type.updated_at = self.now
                outcome = UPDATED
        return outcome

    def finish(self) -> None:
        """The slugs rows did not give as they are — a backup's converted (`Play_Lab`), then a title's — are handed
        out once every slug rows gave is held, in id order, numbered as 0014 numbers a database's: `2024` of id
        3 before `session-2024` of id 4 is `session-2024-2` (it took the slug, and id 4 was refused as taken).
        The later sections of a backup name the type by its converted slug through `renamed`."""
        for given, session_type, slug in sorted(self.made_up, key=lambda item: (item[0] is None, item[1].id)):
            session_type.slug = self.slugs.claim(slug, holder=session_type.id)
            self.renamed.update({("session", given): str(session_type.slug)} if given else {})  # claim(str) is a str


def _question(item: Mapping[str, Any], index: int) -> dict[str, Any]:
    """A custom question in the stored (Calendly) shape: its keys in Calendly's order, defaults for those not given."""
    defaults = {"position": index, "enabled": True, "required": False, "answer_choices": None, "include_other": False}
    given = {key: value for key, value in item.items() if value is not None}
    stored = {"name": given["name"], "type": given["type"], **defaults, **given}
    return stored | {"answer_choices": list(stored["answer_choices"] or [])}


def export_sessions(session: Session) -> Iterator[dict[str, Any]]:
    """Every session record by id, with what a backup needs beyond it to restore the Calendly-owned state
    exactly (those columns alone read beside the records, not every type loaded a second time)."""
    from bapp_cli.services.session_types import SESSION_COLUMNS, session_records

    stored = [name for name in SessionRow.__annotations__ if name not in SESSION_COLUMNS]
    query = select(SessionType.id, *(SessionType.__table__.c[name] for name in stored))
    rest = {row[0]: row[1:] for row in session.execute(query)}
    for record in sorted(session_records(session), key=lambda record: record["id"]):
        yield record | dict(zip(stored, rest[record["id"]], strict=True))

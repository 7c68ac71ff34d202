"""Enrolments, skill progress and badges in bulk — set-based, like bookings, since they grow with clients.

Rules are those of `clients enroll|set-status` and `skills assign|start|complete|reset`: the client must
exist (import clients first), pathways and skills by slug, an archived pathway takes no new enrolments
and an archived skill no new progress rows; a completion time only on a completed row; completing
stamps its method (manual, or builder_validation when a validating builder is named — who must be a
builder); a progress row under a pathway enrols the client in it. Once every row is in, the completion
rules run for the clients whose skills were completed, so badges and completed enrolments follow exactly
as if the skills had been completed by hand. Badges themselves are imported only from a backup.
"""

from __future__ import annotations

from abc import abstractmethod
from collections import Counter
from collections.abc import Hashable, Iterator, Mapping, Sequence
from functools import partial
from typing import Annotated, Any, Literal, Required

from pydantic import ConfigDict, Field, StringConstraints
from sqlalchemy import FromClause, select
from sqlalchemy.engine import Row
from sqlalchemy.orm import Session, aliased
from typing_extensions import TypedDict

from bapp_cli.db import bulk
from bapp_cli.db.batches import batches
from bapp_cli.db.domains import MAX_INT32
from bapp_cli.db.models import Badge, Enrolment, Pathway, Skill, User, UserSkillProgress
from bapp_cli.errors import BappError, InvalidInput, quoted
from bapp_cli.services.clients import ENROLMENT_COLUMNS
from bapp_cli.services.enrolment import enrolment_day
from bapp_cli.services.instants import instant_text, parse_day
from bapp_cli.services.people import normalise_email
from bapp_cli.services.progress import record_completions
from bapp_cli.services.rule_book import PROGRESS_FIELDS, ProgressState, Refusal, assigned_pathway, settle_progress
from bapp_cli.services.skills import check_note, check_skill_slug, earned_counts, skill_links
from bapp_cli.services.transfer.formats import SourceRow
from bapp_cli.services.transfer.importer import (
    CLIENT_IDS,
    CREATED,
    UNCHANGED,
    UPDATED,
    Email,
    KindImporter,
    RowId,
    RowResult,
    Touched,
    When,
    refusal,
)
from bapp_cli.services.transfer.store import exported, rows_keyed

Slug = Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)]


class _ClientRow(TypedDict, total=False):
    """The columns every kind here starts with (a row belongs to a client); the kinds' rows extend it, and
    pydantic carries its `extra="forbid"` to them."""

    __pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[misc]
    id: RowId | None
    client: Required[Email]


class EnrolmentRow(_ClientRow, total=False):
    pathway: Required[Slug]
    status: Literal["active", "paused", "completed"] | None
    start_date: When | None
    completed_at: When | None
    builder: Email | None
    percent: Any  # shown by `clients show`; computed, not imported
    created_at: When | None


class SkillProgressRow(_ClientRow, total=False):
    skill: Required[Slug]
    status: Literal["not_started", "in_progress", "completed"] | None
    started_at: When | None
    completed_at: When | None
    completed_via: Literal["manual", "assessment", "builder_validation", "auto"] | None
    validated_by: Email | None
    pathway: Slug | None
    notes: str | None  # measured by check_note once trimmed, as the commands measure --note
    attempts: Annotated[int, Field(ge=0, le=MAX_INT32)] | None  # PostgreSQL's integer column
    last_attempt_at: When | None
    created_at: When | None
    # the row's last change: `progress table`'s last activity, which a restore must not move to its own time
    updated_at: When | None


class BadgeRow(_ClientRow, total=False):
    key: Required[Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]]
    name: Any  # the badge's display name, derived from the catalogue
    awarded_at: When | None
    # a revoked credential (`bapp badges revoke`) stays revoked through a backup and restore
    revoked_at: When | None
    revocation_reason: Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)] | None


ENROLMENT_EXPORT_COLUMNS = ("id", *ENROLMENT_COLUMNS, "created_at")
BADGE_EXPORT_COLUMNS = ("id", "client", "key", "awarded_at", "revoked_at", "revocation_reason")


class _PeopleImporter(KindImporter):
    """A kind whose rows each belong to a client (enrolments, progress, badges): a batch is validated, each
    row read by `parse_row`, its clients looked up in one query, the stored rows read by `prepare`,
    then each row settled by `apply_row` into inserts and updates of `table`, written together.

    Shared lookups: clients by e-mail (one query per batch), builders, pathways and skills (cached)."""

    table: FromClause

    def __post_init__(self) -> None:
        self.pathways_by_id = {pathway.id: pathway for pathway in self.pathways.values()}

    @abstractmethod
    def parse_row(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """One validated row's values after the kind's rules, with its client's e-mail as `email`."""

    @abstractmethod
    def prepare(self, client_ids: list[int], items: list[dict[str, Any]]) -> None:
        """The batch's stored rows, read before `apply_row` settles each of its rows."""

    @abstractmethod
    def apply_row(self, row: SourceRow, item: dict[str, Any], client_id: int) -> RowResult:
        """One row against the stored ones: an insert, an update or unchanged; a rule's refusal (a BappError
        whose message starts with the column it is about) rejects the row."""

    def apply(self, rows: Sequence[SourceRow]) -> list[RowResult]:
        parsed, results = self.settled(rows, lambda row, values: self.parse_row(values))
        clients: dict[str, int] = dict(rows_keyed(self.session, CLIENT_IDS, [item["email"] for _, item in parsed]))
        self.inserts: list[dict[str, Any]] = []
        self.updates: list[dict[str, Any]] = []
        self.first: dict[Hashable, int] = {}
        self.prepare(list(clients.values()), [item for _, item in parsed])
        for row, item in parsed:
            try:
                if (client_id := clients.get(item["email"])) is None:
                    raise InvalidInput(f"client: no client with e-mail {quoted(item['email'])} (import clients first)")
                results.append(self.apply_row(row, item, client_id))
            except BappError as exc:
                results.append(refusal(row, exc))
        self.write()
        return results

    def write(self) -> None:
        # a backup's rows may carry their id: those go first, so that ids the database assigns come after them
        for with_id in (True, False):
            group = [values for values in self.inserts if ("id" in values) == with_id]
            columns = tuple(group[0]) if group else ()  # (no rows: nothing written)
            bulk.insert_rows(self.session, self.table, columns, [[item[name] for name in columns] for item in group])
        bulk.update_rows(self.session, self.table, self.updates)

    def stored(self, table: FromClause, client_ids: Sequence[int], *conditions: Any) -> list[Row[Any]]:
        """The batch's clients' rows of `table`, every column (`rows_keyed`: one query, the clients one list)."""
        by_client = select(table.c.client_id, *(column for column in table.c if column.name != "client_id"))
        return rows_keyed(self.session, by_client.where(*conditions), client_ids)

    def check_once(self, row: SourceRow, key: Hashable, written: bool, field: str, what: str) -> None:
        """Refuses the row when an earlier row of this batch (or, `written`, an earlier batch) wrote the key."""
        if key not in self.first and not written:
            self.first[key] = row.line
            return
        where = f"is already on line {self.first[key]}" if key in self.first else "appears earlier in the file"
        raise InvalidInput(f"{field}: this {what} {where}")

    def insert(self, row: SourceRow, item: Mapping[str, Any], values: dict[str, Any]) -> RowResult:
        """A new row, stamped now unless the file dates it; a backup's id is kept on restore."""
        stamps = {"created_at": item.get("created_at") or self.now, "updated_at": item.get("updated_at") or self.now}
        kept_id = {"id": item["id"]} if self.restore and item["id"] is not None else {}
        self.inserts.append({**values, **(stamps if "updated_at" in self.table.c else {}), **kept_id})
        return RowResult(row, outcome=CREATED)

    def update(self, row: SourceRow, found: Mapping[Any, Any], wanted: Mapping[str, Any]) -> RowResult:
        if change := {name: value for name, value in wanted.items() if found[name] != value}:
            stamp = {"updated_at": self.now} if "updated_at" in self.table.c else {}  # (badges have none)
            self.updates.append({"id": found["id"], **change, **stamp})
        return RowResult(row, outcome=UPDATED if change else UNCHANGED)

    def email(self, values: Mapping[str, Any], name: str) -> str | None:
        return normalise_email(values[name], field=name) if values.get(name) is not None else None


# -- enrolments -------------------------------------------------------------------------------------------


class EnrolmentImporter(_PeopleImporter):
    kind = "enrolments"
    schema = EnrolmentRow
    table = Enrolment.__table__

    # An enrolment an earlier batch wrote is recognised by its updated_at (this import's `now`), so this
    # kind needs no Touched record of its own.

    def parse_row(self, values: Mapping[str, Any]) -> dict[str, Any]:
        pathway = self.pathway(values["pathway"])
        item: dict[str, Any] = {"email": self.email(values, "client"), "id": values.get("id"), "pathway_id": pathway.id}
        item |= {"status": values.get("status"), "created_at": self.instant(values.get("created_at"), "created_at")}
        if (day := values.get("start_date")) is not None:
            # a TOML date or datetime reads as its text does: an instant's day is its day in --timezone, not at
            # the offset it was written with (the same start_date was a day apart in TOML and in CSV)
            item["start_date"] = parse_day(str(day), timezone=self.options.timezone, field="start_date")
        if "completed_at" in values:
            item["completed_at"] = self.instant(values["completed_at"], "completed_at")
        if "builder" in values:
            item["builder_id"] = self.builder(values["builder"])
        return item

    def prepare(self, client_ids: list[int], items: list[dict[str, Any]]) -> None:
        self.existing = {(row.client_id, row.pathway_id): row._mapping for row in self.stored(self.table, client_ids)}

    def apply_row(self, row: SourceRow, item: dict[str, Any], client_id: int) -> RowResult:
        found = self.existing.get((client_id, item["pathway_id"]))
        written = found is not None and found["updated_at"] == self.now
        self.check_once(row, (client_id, item["pathway_id"]), written, "pathway", "enrolment")
        status = item.get("status") or (found["status"] if found else "active")
        completed_at = item["completed_at"] if "completed_at" in item else (found["completed_at"] if found else None)
        if (stated := item.get("completed_at")) is not None and status != "completed":
            raise InvalidInput("completed_at: only a completed enrolment has a completion time")
        if stated is not None and stated > self.now and not self.restore:  # history, as `import progress` reads it
            raise InvalidInput(f"completed_at: {instant_text(stated)} is after this import ({instant_text(self.now)})")
        completed_at = (completed_at or self.now) if status == "completed" else None  # as `clients set-status` stamps
        # a new enrolment starts today, or the day it was completed: never after it ended
        started = found["start_date"] if found else enrolment_day(self.session, completed_at or self.now)
        start = item.get("start_date") or started
        values: dict[str, Any] = {"status": status, "start_date": start, "completed_at": completed_at}
        # as stored, the dates are not this row's: read in another --timezone, they may fall on other days
        kept = self.restore or (found is not None and all(found[name] == value for name, value in values.items()))
        # the user's day, as `clients set-status … completed` judges it; but with a completed_at the file gives, the
        # start_date is a day in the zone the file was written in (bapp's export under another --timezone)
        done = completed_at and enrolment_day(self.session, completed_at, anywhere=stated is not None)
        if done and not kept and start > done:  # completed before it starts, it would end before it began
            raise InvalidInput(f"start_date: {start} is after the day the enrolment is completed ({done})")
        if found is not None:
            return self.update(row, found, values | {name: item[name] for name in ("builder_id",) if name in item})
        if self.refuses_new("pathways", pathway := self.pathways_by_id[item["pathway_id"]]):
            raise InvalidInput(f"pathway: {pathway.slug!r} is archived and takes no new enrolments")
        values |= {"client_id": client_id, "pathway_id": item["pathway_id"], "builder_id": item.get("builder_id")}
        return self.insert(row, item, values)

    def write(self) -> None:
        super().write()
        self.complete_opened((new["pathway_id"], new["client_id"]) for new in self.inserts if new["status"] == "active")


def export_enrolments(session: Session) -> Iterator[dict[str, Any]]:
    client, coach = aliased(User), aliased(User)
    columns = (Enrolment.status, Enrolment.start_date, Enrolment.completed_at, coach.email, Enrolment.created_at)
    query = (
        select(Enrolment.id, client.email, Pathway.slug, *columns)
        .join(client, client.id == Enrolment.client_id)
        .join(Pathway, Pathway.id == Enrolment.pathway_id)
        .outerjoin(coach, coach.id == Enrolment.builder_id)
        .order_by(client.email, Pathway.position, Pathway.slug)
    )
    return exported(session, ENROLMENT_EXPORT_COLUMNS, query)


# -- progress ---------------------------------------------------------------------------------------------

_COMPLETION_STAMPS = ("completed_at", "completion_method", "validated_by_id")
_PROGRESS_COLUMNS = (*PROGRESS_FIELDS, "pathway_id", "notes")


class ProgressImporter(_PeopleImporter):
    kind = "progress"
    schema = SkillProgressRow
    table = UserSkillProgress.__table__

    def __post_init__(self) -> None:
        super().__post_init__()
        skills = select(Skill.slug, Skill.id, Skill.archived, Skill.is_fundamental)
        self.skills = {skill.slug: skill for skill in self.session.execute(skills)}
        self.links = skill_links(self.session)
        self.touched = Touched(self.session, self.table)
        self.enrolments_opened = Touched(self.session, Enrolment.__table__)  # (by the ids above those it found)
        self.completed_clients: set[int] = set()
        self.completed_pathways: set[int] = set()
        self.completed_fundamental = False
        self.extra = Counter(enrolled=0, badges_awarded=0, pathways_completed=0)  # stable keys (CLI.md); update adds

    def parse_row(self, values: Mapping[str, Any]) -> dict[str, Any]:
        slug = values["skill"].strip().lower()
        skill = self.skills.get(slug)
        if skill is None:
            check_skill_slug(values["skill"])  # one that can be no skill's is invalid, as the skills verbs say
            raise InvalidInput(f"skill: no skill {quoted(slug)} (see `bapp skills list --all`)")
        item: dict[str, Any] = {"email": self.email(values, "client"), "skill_id": skill.id, "id": values.get("id")}
        item |= {"refuses_new": self.refuses_new("skills", skill), "fundamental": skill.is_fundamental}
        stamps = ("started_at", "completed_at", "last_attempt_at", "created_at", "updated_at")
        item |= {name: self.instant(values[name], name) for name in stamps if name in values}
        if "completed_via" in values:
            item["completion_method"] = values["completed_via"]
        if "validated_by" in values:
            item["validated_by_id"] = self.builder(values["validated_by"], "validated_by")
        if "notes" in values:
            item["notes"] = check_note(values["notes"], field="notes")
        item.update({name: values[name] for name in ("attempts", "status") if values.get(name) is not None})
        if "pathway" in values:
            pathway = self.pathway(values["pathway"]) if values["pathway"] is not None else None
            item["pathway_id"] = pathway.id if pathway is not None else None
            if pathway is not None and not self.restore and pathway.id not in self.links[skill.id]:
                # refused by apply_row unless the row keeps it: `skills unlink` leaves progress rows where they were
                item["unlinked"] = f"pathway: skill {slug!r} is not linked to pathway {pathway.slug!r}"
        return item

    def prepare(self, client_ids: list[int], items: list[dict[str, Any]]) -> None:
        skills = bulk.any_of(self.session, self.table.c.skill_id, sorted({item["skill_id"] for item in items}))
        progress = self.stored(self.table, client_ids, skills)
        self.existing = {(row.client_id, row.skill_id): row._mapping for row in progress}
        stored = self.stored(Enrolment.__table__, client_ids)
        self.enrolled = {(row.client_id, row.pathway_id) for row in stored}
        # the enrolments an earlier batch opened (not another command's, stamped by its own clock): this batch's
        # older history starts them earlier still
        opened = (row for row in stored if row.id in self.enrolments_opened and row.created_at == self.now)
        self.opened = {(row.client_id, row.pathway_id): row for row in opened}
        # → the day (the user's) of the earliest history of its rows; of one opened before, its start so far
        self.new_enrolments = {pair: row.start_date for pair, row in self.opened.items()}

    def apply_row(self, row: SourceRow, item: dict[str, Any], client_id: int) -> RowResult:
        found = self.existing.get((client_id, item["skill_id"]))
        written = found is not None and found["id"] in self.touched
        self.check_once(row, (client_id, item["skill_id"]), written, "skill", "progress row")
        values = self._settle(item, found)
        if "unlinked" in item and (found is None or found["pathway_id"] != item["pathway_id"]):
            raise InvalidInput(item["unlinked"])
        if found is None and item["refuses_new"]:
            raise InvalidInput("skill: the skill is archived and cannot be assigned")
        if found is None and "pathway_id" not in item and not self.restore:
            # as `skills assign` without --pathway
            linked = self.links[item["skill_id"]]
            enrolled = {pathway_id for pathway_id in linked if (client_id, pathway_id) in self.enrolled}
            values["pathway_id"] = assigned_pathway(linked, enrolled)
        enrolment = (client_id, pathway_id := values["pathway_id"])  # _settle gives every column
        unenrolled = pathway_id is not None and not self.restore and enrolment not in self.enrolled
        # as `skills assign --pathway`: an archived pathway takes no new enrolment, so no row newly under it needing
        # one (a row that keeps its pathway passes)
        moved = unenrolled and (found is None or found["pathway_id"] != pathway_id)
        if moved and self.refuses_new("pathways", pathway := self.pathways_by_id[pathway_id]):
            raise InvalidInput(f"pathway: {pathway.slug!r} is archived and takes no new enrolments")
        if enrolment in self.new_enrolments or (unenrolled and not self.pathways_by_id[pathway_id].archived):
            # from the earliest history its rows give (never after now), so the days to complete hold (7b35081)
            history = filter(None, (values["started_at"], values["completed_at"]))
            earliest = enrolment_day(self.session, min([self.now, *history]))
            self.new_enrolments[enrolment] = min(earliest, self.new_enrolments.get(enrolment, earliest))
            self.enrolled.add(enrolment)
        if values["status"] == "completed" and (found is None or found["status"] != "completed"):
            self.completed_clients.add(client_id)
            self.completed_pathways.update(self.links[item["skill_id"]])
            self.completed_fundamental |= item["fundamental"]
        if found is None:
            return self.insert(row, item, {"client_id": client_id, "skill_id": item["skill_id"], **values})
        if (result := self.update(row, found, values)).outcome == UPDATED:
            self.touched.add(found["id"])
        return result

    def _settle(self, item: Mapping[str, Any], found: Mapping[Any, Any] | None) -> dict[str, Any]:
        """The row's values over the stored ones, after services.rule_book.settle_progress. A row that
        leaves the completed status drops the stored completion; one it gives itself is refused."""
        values = {name: item[name] for name in _PROGRESS_COLUMNS if name in item}
        kept = dict(found) if found is not None else {}
        status = values.get("status") or kept.get("status") or "not_started"
        if status != "completed":
            kept = {name: value for name, value in kept.items() if name not in _COMPLETION_STAMPS}
        merged = {**kept, **values, "status": status}
        state = ProgressState(**{name: merged[name] for name in PROGRESS_FIELDS if merged.get(name) is not None})
        settled = settle_progress(state, now=self.now)
        if isinstance(settled, Refusal):
            raise InvalidInput(settled.text)
        # its times are history: none after this import, no start after the completion (a restore keeps a
        # backup's as recorded: a clock that ran fast, or stepped back, wrote them so)
        bounds = {"completed_at": self.now, "last_attempt_at": self.now, "started_at": settled.completed_at or self.now}
        for name, limit in bounds.items() if not self.restore else ():
            if (value := getattr(settled, name)) is not None and value > limit:
                after = f"{'this import' if limit is self.now else 'completed_at'} ({instant_text(limit)})"
                raise InvalidInput(f"{name}: {instant_text(value)} is after {after}")
        merged.update(vars(settled))
        return {name: merged.get(name) for name in _PROGRESS_COLUMNS}

    def write(self) -> None:
        super().write()  # the progress rows first: an enrolment opened is completed by the history they hold
        starts = self.new_enrolments
        moved = [(row.id, starts[pair]) for pair, row in self.opened.items() if starts[pair] < row.start_date]
        bulk.update_rows(self.session, Enrolment.__table__, [{"id": key, "start_date": day} for key, day in moved])
        opening = {pair: (None, day) for pair, day in starts.items() if pair not in self.opened}
        self.extra.update(self.open_enrolments(opening))

    def finish(self) -> None:
        award = partial(record_completions, self.session, now=self.now, fundamentals=self.completed_fundamental)
        # a bounded share of the clients per call: the rules hold their clients' open enrolments as objects;
        # dated as the history met each badge, not at this import (a backfill); a restore keeps what it restores
        for part in batches(sorted(self.completed_clients) if not self.restore else [], bulk.CHUNK):
            outcomes = award(pathway_ids=self.completed_pathways, client_ids=part, dated=True)
            self.extra.update(earned_counts(outcomes, self.awarded))


def export_progress(session: Session) -> Iterator[dict[str, Any]]:
    client, validator, row = aliased(User), aliased(User), UserSkillProgress
    stored = (row.status, row.started_at, row.completed_at, row.completion_method, validator.email, Pathway.slug)
    stamps = (row.notes, row.attempts, row.last_attempt_at, row.created_at, row.updated_at)
    query = (
        select(row.id, client.email, Skill.slug, *stored, *stamps)
        .join(client, client.id == row.client_id)
        .join(Skill, Skill.id == row.skill_id)
        .outerjoin(validator, validator.id == row.validated_by_id)
        .outerjoin(Pathway, Pathway.id == row.pathway_id)
        .order_by(client.email, Skill.slug)
    )
    return exported(session, tuple(SkillProgressRow.__annotations__), query)  # what the import reads


# -- badges (backups only) ---------------------------------------------------------------------------------


class BadgeImporter(_PeopleImporter):
    kind = "badges"
    schema = BadgeRow
    table = Badge.__table__

    def __post_init__(self) -> None:
        super().__post_init__()
        self.extra = {"conflicts_kept": 0}  # held here, revoked in the backup or the reverse: kept as held
        self.seen: set[tuple[int, str]] = set()  # every badge of the file so far, to find one listed twice

    def parse_row(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """The row as the badge's columns: a reason is kept only with the revocation it explains."""
        stamps = {name: self.instant(values.get(name), name) for name in ("revoked_at", "awarded_at")}
        kind, *parts = values["key"].split(":")  # `tier:<slug>:<n>`, `pathway:<slug>`: a renamed pathway's new slug
        key = ":".join([kind, self.renamed.get(("pathway", parts[0]), parts[0]), *parts[1:]]) if parts else kind
        item = {"email": self.email(values, "client"), "key": key, "id": values.get("id"), **stamps}
        return item | {"revocation_reason": values.get("revocation_reason") if stamps["revoked_at"] else None}

    def prepare(self, client_ids: list[int], items: list[dict[str, Any]]) -> None:
        self.held = {(row.client_id, row.key): row._mapping for row in self.stored(self.table, client_ids)}

    def apply_row(self, row: SourceRow, item: dict[str, Any], client_id: int) -> RowResult:
        found = self.held.get(key := (client_id, item["key"]))
        self.check_once(row, key, key in self.seen, "key", "badge")  # batches apart, too: a badge inserted, then
        self.seen.add(key)  # updated by the later row, or the later row taken for another issue of it
        values = {name: item[name] for name in ("key", "revoked_at", "revocation_reason")}
        values["awarded_at"] = item["awarded_at"] or (found["awarded_at"] if found is not None else self.now)
        if found is None:
            return self.insert(row, item, {"client_id": client_id, **values})
        if key not in self.awarded:
            # held before this import: badges are permanent, never re-dated; nor is its credential revoked (or
            # restored) by a backup's revocation, which was of another issue of the badge (README: Backups) —
            # counted, so that the operator can `badges revoke` it if it should be
            self.extra["conflicts_kept"] += (found["revoked_at"] is None) != (values["revoked_at"] is None)
            return RowResult(row, outcome=UNCHANGED)
        # awarded by this import (its progress or skills section), as the backup's history met it: it takes the
        # backup's own award and revocation, so a merge never brings back valid a badge the backup had revoked
        return self.update(row, found, values)


def export_badges(session: Session) -> Iterator[dict[str, Any]]:
    query = (
        select(Badge.id, User.email, Badge.key, Badge.awarded_at, Badge.revoked_at, Badge.revocation_reason)
        .join(User, User.id == Badge.client_id)
        .order_by(User.email, Badge.key)
    )
    return exported(session, BADGE_EXPORT_COLUMNS, query)

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

import datetime as dt
from abc import abstractmethod
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from typing import Annotated, Any, Literal, Required

from pydantic import ConfigDict, Field, StringConstraints
from sqlalchemy import select
from sqlalchemy.orm import Session, aliased
from typing_extensions import TypedDict

from bapp_cli.db import bulk
from bapp_cli.db.models import (
    Badge,
    BuilderProfile,
    ClientProfile,
    Enrolment,
    Pathway,
    Skill,
    SkillPathwayLink,
    User,
    UserSkillProgress,
)
from bapp_cli.errors import BappError, InvalidInput
from bapp_cli.services.clients import ENROLMENT_COLUMNS
from bapp_cli.services.instants import parse_day
from bapp_cli.services.people import normalise_email
from bapp_cli.services.progress import record_completions
from bapp_cli.services.rule_book import PROGRESS_FIELDS, ProgressState, Refusal, assigned_pathway, settle_progress
from bapp_cli.services.skills import MAX_NOTE_LENGTH
from bapp_cli.services.transfer.formats import SourceRow
from bapp_cli.services.transfer.importer import (
    CREATED,
    UNCHANGED,
    UPDATED,
    Email,
    KindImporter,
    RowError,
    RowId,
    RowResult,
    Touched,
    When,
    refusal,
)

ENROLMENT_EXPORT_COLUMNS = ("id", *ENROLMENT_COLUMNS, "created_at")
PROGRESS_EXPORT_COLUMNS = (
    "id",
    "client",
    "skill",
    "status",
    "started_at",
    "completed_at",
    "completed_via",
    "validated_by",
    "pathway",
    "notes",
    "attempts",
    "last_attempt_at",
    "created_at",
)
BADGE_EXPORT_COLUMNS = ("id", "client", "key", "awarded_at", "revoked_at", "revocation_reason")

Slug = Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)]


def _rejected(row: SourceRow, field: str, message: str) -> RowResult:
    return RowResult(row, errors=[RowError(row.line, field, message)])


def _repeated(row: SourceRow, first_line: int | None, field: str, what: str) -> RowResult:
    """A row whose natural key an earlier row of this import (or an earlier batch) already wrote."""
    where = f"line {first_line}" if first_line is not None else "earlier in the file"
    return _rejected(row, field, f"this {what} is already on {where}")


def _unknown_client(row: SourceRow, email: str) -> RowResult:
    return _rejected(row, "client", f"no client with e-mail {email!r} (import clients first)")


def _insert(session: Session, table: Any, rows: Sequence[Mapping[str, Any]]) -> None:
    """Rows as dicts of one shape, except that a backup's rows may carry their id: those go first, so
    that ids the database assigns to the others come after them."""
    for with_id in (True, False):
        group = [row for row in rows if ("id" in row) == with_id]
        if group:
            bulk.insert_rows(session, table, tuple(group[0]), [tuple(row.values()) for row in group])


class EnrolmentRow(TypedDict, total=False):
    __pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[misc]
    id: RowId | None
    client: Required[Email]
    pathway: Required[Slug]
    status: Literal["active", "paused", "completed"] | None
    start_date: When | None
    completed_at: When | None
    builder: Email | None
    percent: Any  # shown by `clients show`; computed, not imported
    created_at: When | None


class SkillProgressRow(TypedDict, total=False):
    __pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[misc]
    id: RowId | None
    client: Required[Email]
    skill: Required[Slug]
    status: Literal["not_started", "in_progress", "completed"] | None
    started_at: When | None
    completed_at: When | None
    completed_via: Literal["manual", "assessment", "builder_validation", "auto"] | None
    validated_by: Email | None
    pathway: Slug | None
    notes: Annotated[str, StringConstraints(max_length=MAX_NOTE_LENGTH + 1)] | None
    attempts: Annotated[int, Field(ge=0)] | None
    last_attempt_at: When | None
    created_at: When | None


class BadgeRow(TypedDict, total=False):
    __pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[misc]
    id: RowId | None
    client: Required[Email]
    key: Required[Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]]
    name: Any  # the badge's display name, derived from the catalogue
    awarded_at: When | None
    # a revoked credential (`bapp badges revoke`) stays revoked through a backup and restore
    revoked_at: When | None
    revocation_reason: Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)] | None


class _PeopleImporter(KindImporter):
    """Shared lookups: clients by e-mail (one query per batch), builders, pathways and skills (cached)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pathways = {
            slug: (pathway_id, archived)
            for slug, pathway_id, archived in self.session.execute(select(Pathway.slug, Pathway.id, Pathway.archived))
        }
        self.pathway_slugs = {pathway_id: slug for slug, (pathway_id, _) in self.pathways.items()}
        self.builders = dict(
            self.session.execute(
                select(User.email, User.id).join(BuilderProfile, BuilderProfile.user_id == User.id)
            ).all()
        )

    def parse(self, rows: Sequence[SourceRow]) -> tuple[list[tuple[SourceRow, dict[str, Any]]], list[RowResult]]:
        """The batch validated, then each row read by `parse_row`; a rule's refusal rejects that row."""
        valid, results = self.validate(rows)
        parsed: list[tuple[SourceRow, dict[str, Any]]] = []
        for row, values in valid:
            try:
                parsed.append((row, self.parse_row(values)))
            except BappError as exc:
                results.append(refusal(row, exc))
        return parsed, results

    @abstractmethod
    def parse_row(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """One validated row's values after the kind's rules, with its client's e-mail as `email`."""

    def clients(self, emails: Sequence[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        for part in bulk.chunks(sorted(set(emails))):
            found.update(
                self.session.execute(
                    select(User.email, User.id)
                    .join(ClientProfile, ClientProfile.user_id == User.id)
                    .where(User.email.in_(part))
                ).all()
            )
        return found

    def email(self, values: Mapping[str, Any], name: str) -> str | None:
        value = values.get(name)
        return normalise_email(value, field=name) if value is not None else None

    def builder(self, email: str | None, name: str) -> int | None:
        if email is None:
            return None
        found = self.builders.get(email)
        if found is None:
            raise InvalidInput(f"{name}: no builder with e-mail {email!r}")
        return found

    def pathway(self, slug: str | None, name: str = "pathway") -> tuple[int, bool] | None:
        if slug is None:
            return None
        found = self.pathways.get(slug.strip().lower())
        if found is None:
            raise InvalidInput(f"{name}: no pathway {slug!r} (known: {', '.join(sorted(self.pathways))})")
        return found

    def enrolments(self, client_ids: Sequence[int]) -> dict[tuple[int, int], dict[str, Any]]:
        found: dict[tuple[int, int], dict[str, Any]] = {}
        for part in bulk.chunks(sorted(set(client_ids))):
            for row in self.session.execute(select(Enrolment.__table__).where(Enrolment.client_id.in_(part))):
                found[(row.client_id, row.pathway_id)] = dict(row._mapping)
        return found


# -- enrolments -------------------------------------------------------------------------------------------


class EnrolmentImporter(_PeopleImporter):
    kind = "enrolments"
    schema = EnrolmentRow
    required = (("client",), ("pathway",))
    batch_size = 5000

    # An enrolment an earlier batch wrote is recognised by its updated_at (this import's `now`), so this
    # kind needs no Touched record of its own.

    def parse_row(self, values: Mapping[str, Any]) -> dict[str, Any]:
        email = self.email(values, "client")
        pathway = self.pathway(values["pathway"])
        assert email is not None and pathway is not None
        item: dict[str, Any] = {"email": email, "pathway_id": pathway[0], "archived": pathway[1]}
        if values.get("status") is not None:
            item["status"] = values["status"]
        if values.get("start_date") is not None:
            item["start_date"] = self._day(values["start_date"])
        if "completed_at" in values:
            item["completed_at"] = self.instant(values["completed_at"], "completed_at")
        if "builder" in values:
            item["builder_id"] = self.builder(self.email(values, "builder"), "builder")
        item["created_at"] = self.instant(values.get("created_at"), "created_at")
        item["id"] = values.get("id")
        return item

    def apply(self, rows: Sequence[SourceRow]) -> list[RowResult]:
        parsed, results = self.parse(rows)
        clients = self.clients([item["email"] for _, item in parsed])
        existing = self.enrolments(list(clients.values()))
        inserts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        first: dict[tuple[str, int], int] = {}
        for row, item in parsed:
            client_id = clients.get(item["email"])
            if client_id is None:
                results.append(_unknown_client(row, item["email"]))
                continue
            key = (item["email"], item["pathway_id"])
            found = existing.get((client_id, item["pathway_id"]))
            if key in first or (found is not None and found["updated_at"] == self.now):
                results.append(_repeated(row, first.get(key), "pathway", "enrolment"))
                continue
            first[key] = row.line
            status = item.get("status") or (found["status"] if found else "active")
            completed_at = (
                item.get("completed_at") if "completed_at" in item else (found["completed_at"] if found else None)
            )
            if status == "completed" and completed_at is None:
                completed_at = self.now  # as `clients set-status … completed` stamps it
            elif status != "completed":
                if item.get("completed_at") is not None:
                    results.append(_rejected(row, "completed_at", "only a completed enrolment has a completion time"))
                    continue
                completed_at = None
            if found is None:
                if item["archived"] and not self.restore:
                    message = f"{self.pathway_slugs[item['pathway_id']]!r} is archived and takes no new enrolments"
                    results.append(_rejected(row, "pathway", message))
                    continue
                inserts.append(
                    {
                        "client_id": client_id,
                        "pathway_id": item["pathway_id"],
                        "status": status,
                        "start_date": item.get("start_date") or self.now.date(),
                        "completed_at": completed_at,
                        "builder_id": item.get("builder_id"),
                        "created_at": item["created_at"] or self.now,
                        "updated_at": self.now,
                        **({"id": item["id"]} if self.restore and item["id"] is not None else {}),
                    }
                )
                results.append(RowResult(row, outcome=CREATED))
                continue
            wanted = {"status": status, "completed_at": completed_at}
            for name in ("start_date", "builder_id"):
                if name in item:
                    wanted[name] = item[name]
            change = {name: value for name, value in wanted.items() if found[name] != value}
            if change:
                updates.append({"id": found["id"], **change, "updated_at": self.now})
            results.append(RowResult(row, outcome=UPDATED if change else UNCHANGED))
        _insert(self.session, Enrolment.__table__, inserts)
        bulk.update_rows(self.session, Enrolment.__table__, updates)
        return sorted(results, key=lambda result: result.row.line)

    def _day(self, value: Any) -> dt.date:
        if isinstance(value, dt.datetime):
            return value.date()
        if isinstance(value, dt.date):
            return value
        return parse_day(str(value), timezone=self.options.timezone, field="start_date")


def export_enrolments(session: Session) -> Iterator[dict[str, Any]]:
    client = aliased(User)
    coach = aliased(User)
    query = (
        select(
            Enrolment.id,
            client.email,
            Pathway.slug,
            Enrolment.status,
            Enrolment.start_date,
            Enrolment.completed_at,
            coach.email,
            Enrolment.created_at,
        )
        .join(client, client.id == Enrolment.client_id)
        .join(Pathway, Pathway.id == Enrolment.pathway_id)
        .outerjoin(coach, coach.id == Enrolment.builder_id)
        .order_by(client.email, Pathway.position, Pathway.slug)
        .execution_options(yield_per=2000)
    )
    for row in session.execute(query):
        yield dict(zip(ENROLMENT_EXPORT_COLUMNS, row, strict=True))


# -- progress ---------------------------------------------------------------------------------------------

_COMPLETION_STAMPS = ("completed_at", "completion_method", "validated_by_id")
_PROGRESS_COLUMNS = (
    "status",
    "started_at",
    "completed_at",
    "completion_method",
    "validated_by_id",
    "pathway_id",
    "notes",
    "attempts",
    "last_attempt_at",
)


class ProgressImporter(_PeopleImporter):
    kind = "progress"
    schema = SkillProgressRow
    required = (("client",), ("skill",))
    batch_size = 5000

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.skills = {
            slug: (skill_id, archived, fundamental)
            for slug, skill_id, archived, fundamental in self.session.execute(
                select(Skill.slug, Skill.id, Skill.archived, Skill.is_fundamental)
            )
        }
        self.links: dict[int, set[int]] = defaultdict(set)
        for skill_id, pathway_id in self.session.execute(
            select(SkillPathwayLink.skill_id, SkillPathwayLink.pathway_id)
        ):
            self.links[skill_id].add(pathway_id)
        self.touched = Touched(self.session, UserSkillProgress.__table__)
        self.completed_clients: set[int] = set()
        self.completed_pathways: set[int] = set()
        self.completed_fundamental = False
        self.extra = {"enrolled": 0}

    def parse_row(self, values: Mapping[str, Any]) -> dict[str, Any]:
        email = self.email(values, "client")
        slug = values["skill"].strip().lower()
        skill = self.skills.get(slug)
        if skill is None:
            raise InvalidInput(f"skill: no skill {slug!r} (see `bapp skills list --all`)")
        item: dict[str, Any] = {"email": email, "skill_id": skill[0], "archived": skill[1], "fundamental": skill[2]}
        for name in ("started_at", "completed_at", "last_attempt_at", "created_at"):
            if name in values:
                item[name] = self.instant(values[name], name)
        if "completed_via" in values:
            item["completion_method"] = values["completed_via"]
        if "validated_by" in values:
            item["validated_by_id"] = self.builder(self.email(values, "validated_by"), "validated_by")
        if "notes" in values:
            notes = values["notes"]
            if notes is not None and len(notes) > MAX_NOTE_LENGTH:
                raise InvalidInput(f"notes: longer than {MAX_NOTE_LENGTH} characters")
            item["notes"] = (notes or "").strip() or None
        item.update({name: values[name] for name in ("attempts", "status") if values.get(name) is not None})
        if "pathway" in values:
            pathway = self.pathway(values["pathway"])
            item["pathway_id"] = pathway[0] if pathway is not None else None
            if pathway is not None and not self.restore and pathway[0] not in self.links.get(skill[0], set()):
                raise InvalidInput(
                    f"pathway: skill {slug!r} is not linked to pathway {values['pathway'].strip().lower()!r}"
                )
        item["id"] = values.get("id")
        return item

    def apply(self, rows: Sequence[SourceRow]) -> list[RowResult]:
        parsed, results = self.parse(rows)
        clients = self.clients([item["email"] for _, item in parsed])
        existing = self._existing(list(clients.values()), [item["skill_id"] for _, item in parsed])
        enrolled = {(client_id, pathway_id) for (client_id, pathway_id) in self.enrolments(list(clients.values()))}
        inserts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        new_enrolments: dict[tuple[int, int], None] = {}
        first: dict[tuple[str, int], int] = {}
        for row, item in parsed:
            client_id = clients.get(item["email"])
            if client_id is None:
                results.append(_unknown_client(row, item["email"]))
                continue
            key = (item["email"], item["skill_id"])
            found = existing.get((client_id, item["skill_id"]))
            if key in first or (found is not None and found["id"] in self.touched):
                results.append(_repeated(row, first.get(key), "skill", "progress row"))
                continue
            first[key] = row.line
            try:
                values = self._settle(item, found)
            except BappError as exc:
                results.append(refusal(row, exc))
                continue
            if found is None and item["archived"] and not self.restore:
                results.append(_rejected(row, "skill", "the skill is archived and cannot be assigned"))
                continue
            if found is None and "pathway_id" not in item and not self.restore:
                # as `skills assign` without --pathway
                linked = self.links.get(item["skill_id"], set())
                values["pathway_id"] = assigned_pathway(
                    linked, {pathway_id for pathway_id in linked if (client_id, pathway_id) in enrolled}
                )
            pathway_id = values.get("pathway_id")
            if (
                pathway_id is not None
                and not self.restore
                and (client_id, pathway_id) not in enrolled
                and not self.pathways[self.pathway_slugs[pathway_id]][1]
            ):
                new_enrolments[(client_id, pathway_id)] = None
                enrolled.add((client_id, pathway_id))
            if values["status"] == "completed" and (found is None or found["status"] != "completed"):
                self.completed_clients.add(client_id)
                self.completed_pathways.update(self.links.get(item["skill_id"], set()))
                self.completed_fundamental |= item["fundamental"]
            if found is None:
                inserts.append(
                    {
                        "client_id": client_id,
                        "skill_id": item["skill_id"],
                        **values,
                        "created_at": item.get("created_at") or self.now,
                        "updated_at": self.now,
                        **({"id": item["id"]} if self.restore and item["id"] is not None else {}),
                    }
                )
                results.append(RowResult(row, outcome=CREATED))
                continue
            change = {name: value for name, value in values.items() if found[name] != value}
            if change:
                updates.append({"id": found["id"], **change, "updated_at": self.now})
                self.touched.add(found["id"])
            results.append(RowResult(row, outcome=UPDATED if change else UNCHANGED))
        self._write(inserts, updates, new_enrolments)
        return sorted(results, key=lambda result: result.row.line)

    def _settle(self, item: Mapping[str, Any], found: Mapping[str, Any] | None) -> dict[str, Any]:
        """The row's values over the stored ones, after services.rule_book.settle_progress. A row that
        leaves the completed status drops the stored completion; one it gives itself is refused."""
        values = {name: item[name] for name in _PROGRESS_COLUMNS if name in item}
        status = values.get("status") or (found["status"] if found is not None else None) or "not_started"
        kept = dict(found) if found is not None else {}
        if status != "completed":
            for name in _COMPLETION_STAMPS:
                kept.pop(name, None)
        merged = {**kept, **values, "status": status}
        settled = settle_progress(
            ProgressState(**{name: merged[name] for name in PROGRESS_FIELDS if merged.get(name) is not None}),
            now=self.now,
        )
        if isinstance(settled, Refusal):
            raise InvalidInput(settled.text)
        merged.update(vars(settled))
        return {name: merged.get(name) for name in _PROGRESS_COLUMNS}

    def _existing(self, client_ids: Sequence[int], skill_ids: Sequence[int]) -> dict[tuple[int, int], dict[str, Any]]:
        found: dict[tuple[int, int], dict[str, Any]] = {}
        skills = sorted(set(skill_ids))
        for part in bulk.chunks(sorted(set(client_ids))):
            table = UserSkillProgress.__table__
            for row in self.session.execute(
                select(table).where(table.c.client_id.in_(part), table.c.skill_id.in_(skills))
            ):
                found[(row.client_id, row.skill_id)] = dict(row._mapping)
        return found

    def _write(
        self, inserts: list[dict[str, Any]], updates: list[dict[str, Any]], new_enrolments: dict[tuple[int, int], None]
    ) -> None:
        if new_enrolments:
            bulk.insert_rows(
                self.session,
                Enrolment.__table__,
                ("client_id", "pathway_id", "status", "start_date", "created_at", "updated_at"),
                [
                    (client_id, pathway_id, "active", self.now.date(), self.now, self.now)
                    for client_id, pathway_id in new_enrolments
                ],
            )
            self.extra["enrolled"] += len(new_enrolments)
        _insert(self.session, UserSkillProgress.__table__, inserts)
        bulk.update_rows(self.session, UserSkillProgress.__table__, updates)

    def finish(self) -> None:
        if self.restore or not self.completed_clients:
            return
        outcomes: dict[int, Any] = {}
        for part in bulk.chunks(sorted(self.completed_clients)):
            outcomes.update(
                record_completions(
                    self.session,
                    now=self.now,
                    pathway_ids=self.completed_pathways,
                    fundamentals=self.completed_fundamental,
                    client_ids=part,
                )
            )
        self.extra["badges_awarded"] = sum(len(outcome.badges_awarded) for outcome in outcomes.values())
        self.extra["pathways_completed"] = sum(len(outcome.pathways_completed) for outcome in outcomes.values())


def export_progress(session: Session) -> Iterator[dict[str, Any]]:
    client = aliased(User)
    validator = aliased(User)
    row_table = UserSkillProgress
    query = (
        select(
            row_table.id,
            client.email,
            Skill.slug,
            row_table.status,
            row_table.started_at,
            row_table.completed_at,
            row_table.completion_method,
            validator.email,
            Pathway.slug,
            row_table.notes,
            row_table.attempts,
            row_table.last_attempt_at,
            row_table.created_at,
        )
        .join(client, client.id == row_table.client_id)
        .join(Skill, Skill.id == row_table.skill_id)
        .outerjoin(validator, validator.id == row_table.validated_by_id)
        .outerjoin(Pathway, Pathway.id == row_table.pathway_id)
        .order_by(client.email, Skill.slug)
        .execution_options(yield_per=2000)
    )
    for row in session.execute(query):
        yield dict(zip(PROGRESS_EXPORT_COLUMNS, row, strict=True))


# -- badges (backups only) ---------------------------------------------------------------------------------


class BadgeImporter(_PeopleImporter):
    kind = "badges"
    schema = BadgeRow
    required = (("client",), ("key",))
    batch_size = 5000

    def parse_row(self, values: Mapping[str, Any]) -> dict[str, Any]:
        revoked = self.instant(values.get("revoked_at"), "revoked_at")
        badge = {
            "key": values["key"],
            "awarded_at": self.instant(values.get("awarded_at"), "awarded_at"),
            "revoked_at": revoked,
            "revocation_reason": values.get("revocation_reason") if revoked else None,
        }
        return {
            "email": normalise_email(values["client"], field="client"),
            "key": values["key"],
            "id": values.get("id"),
            "badge": badge,
        }

    def apply(self, rows: Sequence[SourceRow]) -> list[RowResult]:
        parsed, results = self.parse(rows)
        clients = self.clients([item["email"] for _, item in parsed])
        held: set[tuple[int, str]] = set()
        for part in bulk.chunks(sorted(set(clients.values()))):
            held.update(self.session.execute(select(Badge.client_id, Badge.key).where(Badge.client_id.in_(part))).all())
        inserts: list[dict[str, Any]] = []
        for row, item in parsed:
            client_id = clients.get(item["email"])
            if client_id is None:
                results.append(_unknown_client(row, item["email"]))
                continue
            if (client_id, item["key"]) in held:
                results.append(RowResult(row, outcome=UNCHANGED))  # badges are permanent: never re-dated
                continue
            held.add((client_id, item["key"]))
            inserts.append(
                {"client_id": client_id, **item["badge"], "awarded_at": item["badge"]["awarded_at"] or self.now}
            )
            if self.restore and item["id"] is not None:
                inserts[-1]["id"] = item["id"]
            results.append(RowResult(row, outcome=CREATED))
        _insert(self.session, Badge.__table__, inserts)
        return sorted(results, key=lambda result: result.row.line)


def export_badges(session: Session) -> Iterator[dict[str, Any]]:
    query = (
        select(Badge.id, User.email, Badge.key, Badge.awarded_at, Badge.revoked_at, Badge.revocation_reason)
        .join(User, User.id == Badge.client_id)
        .order_by(User.email, Badge.key)
    )
    for row in session.execute(query):
        yield dict(zip(BADGE_EXPORT_COLUMNS, row, strict=True))

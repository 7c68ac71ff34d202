"""Skills: the catalogue (add, update, link, unlink, archive, list) and each client's progress (assign,
start, complete, reset), whose status rule is services.rule_book's (README "Booking rules", at its end).

A skill sits in a pathway at exactly one tier, and that tier must exist. Archived pathways take no new
links; archived skills take no new links and no new progress rows but keep their history. Every change
that can complete something (a skill completed, or a catalogue change that shrinks a tier) runs the
completion rules of `services.progress`, so badges are awarded at the moment their criteria are met.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bapp_cli.db.audit import apply_changes, record_audit, stamp_and_audit
from bapp_cli.db.locks import client_lock_key, lock_keys
from bapp_cli.db.models import (
    COMPLETION_METHODS,
    PROGRESS_STATUSES,
    Enrolment,
    Pathway,
    Skill,
    SkillPathwayLink,
    User,
    UserSkillProgress,
)
from bapp_cli.errors import Conflict, InvalidInput, NotFound, quoted
from bapp_cli.services.enrolment import CompletionOutcome, enrol
from bapp_cli.services.pathway_admin import check_name, checked_fields, checked_slug, clean_description
from bapp_cli.services.pathways import get_pathway
from bapp_cli.services.people import get_builder, get_client, normalise_email
from bapp_cli.services.plain_reads import check_tier
from bapp_cli.services.plain_reads import list_skills as list_skills  # a change's result is `skills list`'s record
from bapp_cli.services.plain_reads import skill_links as skill_links  # read by the imports too
from bapp_cli.services.plain_text import nfc
from bapp_cli.services.progress import check_status, record_completions
from bapp_cli.services.rule_book import (
    PROGRESS_FIELDS,
    ProgressState,
    Refusal,
    assigned_pathway,
    move_progress,
    progress_advances,
    settle_progress,
)

SKILL_SLUG_PATTERN = re.compile(r"^[a-z0-9]+(?:[-_][a-z0-9]+)*$")
MAX_SKILL_SLUG_LENGTH = 100
MAX_SKILL_NAME_LENGTH = 200
MAX_DOMAIN_LENGTH = 100
MAX_NOTE_LENGTH = 10_000


# -- the catalogue ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SkillChange:
    """A catalogue change: the skill as it now stands (its CATALOGUE_SKILL_COLUMNS record), what changed, and the badges
    it let clients earn."""

    skill: dict[str, Any]
    changed: dict[str, Any]
    badges_awarded: int = 0
    pathways_completed: int = 0


def check_skill_slug(value: str, field: str = "skill") -> str:
    hint = "use lowercase letters, digits, hyphens and underscores, e.g. 'prompt-design'"
    return checked_slug(value, SKILL_SLUG_PATTERN, MAX_SKILL_SLUG_LENGTH, field=field, what="skill", hint=hint)


def get_skill(session: Session, slug: str, *, for_new_rows: bool = False) -> Skill:
    """The skill named by `slug`; `for_new_rows` (a new link or progress row, which an archived skill refuses):
    read under a share lock, so that on PostgreSQL an archive not yet committed is waited for and seen, not read
    past (SQLite's writers already take turns)."""
    query = select(Skill).where(Skill.slug == (key := slug.strip().lower()))
    if (skill := session.scalars(query.with_for_update(read=True) if for_new_rows else query).one_or_none()) is None:
        check_skill_slug(slug)  # no skill's slug ('', 'a b'): invalid (exit 6), as `skills assign` says, not unknown
        raise NotFound(f"no skill {quoted(key)}", hint="see `bapp skills list`", code="skill_not_found")
    return skill


def parse_link(text: str) -> tuple[str, int]:
    """`accelerate:1` → ("accelerate", 1); the field is named in the error."""
    pathway, separator, tier = text.strip().rpartition(":")
    tier = tier.strip()
    # isascii: '²' passes isdigit but not int(); the length: int() refuses 4,301 digits (exit 1); 1-999 keeps a
    # 30-digit tier from reaching SQL
    number = int(tier) if tier.isascii() and tier.isdigit() and len(tier) <= 9 else 0
    if not separator or not pathway.strip() or not 1 <= number <= 999:
        raise InvalidInput(f"link: {quoted(text)} is not PATHWAY:TIER (e.g. accelerate:1)", code="invalid_link")
    return pathway.strip(), number


def _resolve_link(session: Session, text: str) -> tuple[Pathway, int]:
    slug, tier = parse_link(text)
    pathway = get_pathway(session, slug, for_new_links=True)
    check_tier(session, pathway.slug, tier, "link")
    return pathway, tier


# How each field a skill is given is checked and stored: one statement of the rules for add and update.
SKILL_FIELDS: dict[str, Callable[[Any], Any]] = {
    "name": partial(check_name, max_length=MAX_SKILL_NAME_LENGTH),
    "description": clean_description,
    "domain": lambda value: clean_description(nfc(value), "domain", MAX_DOMAIN_LENGTH),  # a name: in NFC
    "is_fundamental": bool,
}


def _view(session: Session, skill: Skill) -> dict[str, Any]:
    return list_skills(session, slug=skill.slug, include_archived=True)[0]


def _changed(
    session: Session,
    skill: Skill,
    changes: dict[str, Any],
    now: dt.datetime,
    *,
    pathway_ids: Collection[int] = (),
    fundamentals: bool = False,
) -> SkillChange:
    """Stamp and audit a catalogue change, then award what it completed in the pathways (and fundamentals)
    it may have shrunk — `record_completions` does nothing for an empty scope."""
    earned: dict[str, int] = {}
    if changes:
        stamp_and_audit(session, skill, "skill", skill.slug, changes, now=now)
        earned = earned_counts(record_completions(session, now=now, pathway_ids=pathway_ids, fundamentals=fundamentals))
    return SkillChange(_view(session, skill), changes, **earned)


def earned_counts(outcomes: dict[int, CompletionOutcome], noted: set[Any] | None = None) -> dict[str, int]:
    """How many badges and pathway completions the completion rules awarded, over every client; `noted` (`import
    all`'s KindImporter.awarded) also gets each badge awarded, as (client id, key)."""
    awarded = [(client, key) for client, outcome in outcomes.items() for key in outcome.badges_awarded]
    if noted is not None:
        noted.update(awarded)
    completed = sum(len(outcome.pathways_completed) for outcome in outcomes.values())
    return {"badges_awarded": len(awarded), "pathways_completed": completed}


def add_skill(
    session: Session,
    slug: str,
    *,
    name: str,
    now: dt.datetime,
    description: str | None = None,
    domain: str | None = None,
    fundamental: bool = False,
    links: Sequence[str] = (),
) -> SkillChange:
    """A new skill, optionally linked to pathway tiers (one tier per pathway)."""
    canonical = check_skill_slug(slug)
    fields = checked_fields(SKILL_FIELDS, name=name, description=description, domain=domain, is_fundamental=fundamental)
    # read locked: on PostgreSQL the skills table is locked (ROW SHARE, found or not) before the links' pathways, as
    # `skills link` and an import of the whole catalogue (db.locks.lock_for_import) take the two; the pathways first,
    # the command held them waiting to insert while the import held the skills waiting for them: a deadlock
    if session.scalar(select(Skill.id).where(Skill.slug == canonical).with_for_update(read=True)) is not None:
        raise Conflict(f"skill {canonical!r} already exists", hint="change it with `bapp skills update`")
    seen: dict[int, int] = {}
    for pathway, tier in [_resolve_link(session, text) for text in links]:
        if seen.setdefault(pathway.id, tier) != tier:
            twice = f"link: {pathway.slug!r} is given twice with different tiers; a skill sits at one tier per pathway"
            raise InvalidInput(twice, code="duplicate_link")
    skill = Skill(slug=canonical, **fields, archived=False, created_at=now, updated_at=now)
    session.add(skill)
    session.flush()
    for pathway_id, tier in seen.items():
        session.add(SkillPathwayLink(skill_id=skill.id, pathway_id=pathway_id, tier=tier))
    view = _view(session, skill)
    changes = {"name": skill.name, "domain": skill.domain, "is_fundamental": fundamental, "links": view["links"]}
    record_audit(session, "skill", canonical, changes)
    return SkillChange(view, changes)


def _skill_to_change(session: Session, slug: str, *, for_new_rows: bool = False) -> Skill:
    """The skill a catalogue change (update, link, unlink, archive) works on, read once the change holds the progress
    lock: as a progress door, the rules it runs complete enrolments a Calendly pull may hold (db.locks)."""
    lock_keys(session, progress=True)
    return get_skill(session, slug, for_new_rows=for_new_rows)


def update_skill(
    session: Session,
    slug: str,
    *,
    now: dt.datetime,
    name: str | None = None,
    description: str | None = None,
    domain: str | None = None,
    fundamental: bool | None = None,
) -> SkillChange:
    """Rename, describe, re-domain or (un)flag a skill as fundamental; only the fields given change."""
    skill = _skill_to_change(session, slug)
    wanted = checked_fields(SKILL_FIELDS, name=name, description=description, domain=domain, is_fundamental=fundamental)
    changes = apply_changes(skill, wanted)
    # one fewer fundamental skill: clients who had done all the others now have them all; the first one: clients
    # who had done it have them all (the catalogue import checks either change too)
    return _changed(session, skill, changes, now, fundamentals="is_fundamental" in changes)


def _link_of(session: Session, skill: Skill, pathway: Pathway) -> SkillPathwayLink | None:
    """The skill's link to the pathway (at most one: a skill sits at one tier per pathway), locked: on PostgreSQL
    a link another transaction is moving or removing is read once that one has committed, so a link it removed
    meanwhile reads as none (not moved: exit 1, nor removed twice, audited as if it had been)."""
    by_pair = (SkillPathwayLink.skill_id == skill.id, SkillPathwayLink.pathway_id == pathway.id)
    return session.scalars(select(SkillPathwayLink).where(*by_pair).with_for_update()).one_or_none()


def link_skill(session: Session, slug: str, link: str, *, now: dt.datetime) -> SkillChange:
    """Link a skill to PATHWAY:TIER, or move it to that tier when it already sits in the pathway."""
    skill = _skill_to_change(session, slug, for_new_rows=True)
    if skill.archived:
        raise InvalidInput(f"skill: {skill.slug!r} is archived and takes no new links", code="skill_archived")
    pathway, tier = _resolve_link(session, link)
    existing = _link_of(session, skill, pathway)
    changes: dict[str, Any] = {}
    if existing is None:
        session.add(SkillPathwayLink(skill_id=skill.id, pathway_id=pathway.id, tier=tier))
        changes = {"link": f"{pathway.slug}:{tier}"}
    elif existing.tier != tier:
        changes = {"link": [f"{pathway.slug}:{existing.tier}", f"{pathway.slug}:{tier}"]}
        existing.tier = tier
    # a move: the tier it left may now be complete for clients who had done everything else there; a new
    # link to a tier that had no skills completes it for clients who had already done this one
    return _changed(session, skill, changes, now, pathway_ids=[pathway.id])


def unlink_skill(session: Session, slug: str, pathway: str, *, now: dt.datetime) -> SkillChange:
    """Remove a skill from a pathway; progress rows stay (they are the client's history)."""
    skill = _skill_to_change(session, slug)
    target = get_pathway(session, pathway)
    if (link := _link_of(session, skill, target)) is None:
        raise NotFound(f"skill {skill.slug!r} is not linked to pathway {target.slug!r}", code="link_not_found")
    session.delete(link)
    return _changed(session, skill, {"unlinked": f"{target.slug}:{link.tier}"}, now, pathway_ids=[target.id])


def archive_skill(session: Session, slug: str, *, now: dt.datetime) -> SkillChange:
    """Archive a skill: it leaves every tier's count and the fundamentals, but its history stays."""
    skill = _skill_to_change(session, slug)
    changes = apply_changes(skill, {"archived": True})  # none when it already was: nothing audited, nothing checked
    linked = skill_links(session, [skill.id])[skill.id]  # pathway id → its link
    return _changed(session, skill, changes, now, pathway_ids=linked, fundamentals=skill.is_fundamental)


# -- a client's progress ------------------------------------------------------------------------------


# What a progress command returns: its record (the keys it prints, then what it earned and the pathways it
# enrolled the client in) and the names of the badges it awarded, for the command's messages.
ProgressResult = tuple[dict[str, Any], dict[str, str]]


def _with_outcome(record: dict[str, Any], outcome: CompletionOutcome, enrolled: list[str]) -> ProgressResult:
    earned = {"badges_awarded": outcome.badges_awarded, "pathways_completed": outcome.pathways_completed}
    return {**record, **earned, "enrolled": enrolled}, outcome.badge_names


# a progress row's note (`field`: "note" for the commands' --note, "notes" for an import's column)
check_note = partial(clean_description, field="note", max_length=MAX_NOTE_LENGTH)


def _completion(
    session: Session, via: str | None, validated_by: str | None, now: dt.datetime
) -> tuple[str | None, User | None]:
    """How a completion is stamped: method and validating builder, settled by services.rule_book (the default
    method, a validator for builder_validation) once up front, so that a refusal comes before any change."""
    # checked here to be named as the flag (get_builder would name a malformed one "builder:")
    validated = normalise_email(validated_by, field="validated_by") if validated_by is not None else None
    validator = get_builder(session, validated)[0] if validated is not None else None
    method = via.strip().lower() if via is not None else None
    if method is not None and method not in COMPLETION_METHODS:
        raise InvalidInput(f"via: {via!r} is not one of {', '.join(COMPLETION_METHODS)}", code="invalid_method")
    stamped = ProgressState("completed", completion_method=method, validated_by_id=validator.id if validator else None)
    settled = settle_progress(stamped, now=now)
    if isinstance(settled, Refusal):
        # the only refusal of a completion (missing_validator), in the command's words as before the rule book
        message = "validated_by: a builder_validation completion needs --validated-by EMAIL"
        raise InvalidInput(message, code=settled.code)
    return settled.completion_method, validator


def _apply_status(
    row: UserSkillProgress, status: str, completion: tuple[str | None, User | None] | None, now: dt.datetime, of: str
) -> None:
    """Move a row to `status` (services.rule_book.move_progress), stamping what that status means; `of` names
    the client and the skill in a refusal."""
    state = ProgressState(**{name: getattr(row, name) for name in PROGRESS_FIELDS})
    method, validator = completion or (None, None)
    validator_id = validator.id if validator else None
    moved = move_progress(state, status, now=now, completion_method=method, validated_by_id=validator_id)
    if isinstance(moved, Refusal):  # the count of attempts at its bound (_completion settled method and validator)
        hint = "lower the row's attempts with `bapp import progress`, then complete it"
        raise InvalidInput(f"{moved.field} of {of}: {moved.message}", hint=hint, code=moved.code)
    for name, value in vars(moved).items():
        setattr(row, name, value)
    row.updated_at = now


def _after_completion(
    session: Session, client: User, completed_skills: Sequence[Skill], now: dt.datetime
) -> CompletionOutcome:
    if not completed_skills:
        return CompletionOutcome()
    session.flush()  # the rules count the completed rows in SQL
    linked = skill_links(session, [skill.id for skill in completed_skills])
    pathway_ids, fundamental = set().union(*linked.values()), any(skill.is_fundamental for skill in completed_skills)
    outcomes = record_completions(
        session, now=now, pathway_ids=pathway_ids, fundamentals=fundamental, client_ids=[client.id]
    )
    return outcomes.get(client.id, CompletionOutcome())


def assign_skills(
    session: Session,
    email: str,
    skills: Sequence[str] = (),
    *,
    now: dt.datetime,
    pathway: str | None = None,
    tier: int | None = None,
    status: str = "not_started",
    via: str | None = None,
    validated_by: str | None = None,
    note: str | None = None,
) -> ProgressResult:
    """Give a client skills (named, or every skill of a pathway or one of its tiers) at `status`.

    Idempotent: a skill already at `status` or beyond is left alone (going back needs a reset).
    Assigning under a pathway the client is not enrolled in enrols them.
    """
    wanted_status = check_status(status, PROGRESS_STATUSES)
    clean_note = check_note(note)
    if tier is not None and pathway is None:
        raise InvalidInput("tier: --tier selects skills of a pathway; give --pathway too", code="tier_without_pathway")
    if tier is not None and skills:
        raise InvalidInput("tier: give SKILL arguments or --pathway/--tier, not both", code="tier_with_skills")
    if not skills and pathway is None:
        raise InvalidInput("skill: name one or more skills, or --pathway", code="no_skills")
    if wanted_status != "completed" and (via is not None or validated_by is not None):
        raise InvalidInput("via: --via and --validated-by go with --status completed", code="via_without_completion")
    completion = _completion(session, via, validated_by, now) if wanted_status == "completed" else None
    client, _ = get_client(session, email)
    # after a progress import (db.locks); under a pathway, which it may enrol in, after any import and under the key
    # `clients enroll` and a booking take (else both inserted the enrolment: exit 8), first, as Calendly's _unmake
    if pathway is not None:
        lock_keys(session, client_lock_key(client.email), people=True)
    lock_keys(session, f"progress:{client.id}", people=pathway is not None, progress=True)
    target = get_pathway(session, pathway) if pathway is not None else None

    if skills:
        chosen = [get_skill(session, slug, for_new_rows=True) for slug in dict.fromkeys(map(check_skill_slug, skills))]
        if target is not None:
            linked = skill_links(session, [skill.id for skill in chosen])
            if unlinked := [skill.slug for skill in chosen if target.id not in linked[skill.id]]:
                message = f"skill: {unlinked[0]!r} is not linked to pathway {target.slug!r}"
                raise InvalidInput(message, code="skill_not_in_pathway")
    else:
        assert target is not None
        query = (
            select(Skill)
            .join(SkillPathwayLink, SkillPathwayLink.skill_id == Skill.id)
            .where(SkillPathwayLink.pathway_id == target.id, Skill.archived.is_(False))
            # locked as get_skill's for_new_rows: a skill being archived is waited for and left out
            .order_by(SkillPathwayLink.tier, Skill.slug)
            .with_for_update(read=True, of=Skill)
        )
        if tier is not None:
            check_tier(session, target.slug, tier, "tier")
            query = query.where(SkillPathwayLink.tier == tier)
        chosen = list(session.scalars(query))

    # an enrolment made in a pathway whose every skill the client had done is completed as it is made (enrol)
    made, on_enrolment = False, CompletionOutcome()
    if target is not None:
        _, made, _, on_enrolment = enrol(session, client, target, now=now)
    enrolled = [target.slug] if target is not None and made else []
    # the rows after enrolling, which flushes: a new row flushed before its note is set would be UPDATEd with
    # the column's own onupdate clock instead of `now`
    rows, new = _progress_rows(session, client, chosen, now, pathway_id=target.id if target is not None else None)
    by_outcome: dict[str, list[str]] = {"assigned": [], "updated": [], "unchanged": []}
    completed_now: list[Skill] = []
    for skill in chosen:
        row, created = rows[skill.id], skill.id in new
        # a new row is moved to the wanted status whatever it is (not_started stamps nothing)
        changes: dict[str, Any] = {}
        if created or progress_advances(row.status, wanted_status):
            changes["status"] = [row.status, wanted_status]
            _apply_status(row, wanted_status, completion, now, f"{client.email} in {skill.slug}")
        if clean_note is not None and row.notes != clean_note:
            changes["notes"] = clean_note
            row.notes, row.updated_at = clean_note, now
        by_outcome["assigned" if created else "updated" if changes else "unchanged"].append(skill.slug)
        if changes:  # a new row's audit names the status it was assigned at
            audited = {"assigned": wanted_status} if created else changes
            record_audit(session, "skill_progress", f"{client.email}:{skill.slug}", audited)
        if "status" in changes and wanted_status == "completed":  # a completed row never moves again here
            completed_now.append(skill)
    session.flush()
    record = {"client": client.email, "pathway": target.slug if target else None, "tier": tier, "status": wanted_status}
    outcome = _after_completion(session, client, completed_now, now)
    # what the enrolment earned first: never among those, which award badges not held and complete open enrolments
    outcome.badges_awarded[:0] = on_enrolment.badges_awarded
    outcome.badge_names.update(on_enrolment.badge_names)
    outcome.pathways_completed[:0] = on_enrolment.pathways_completed
    return _with_outcome(record | by_outcome, outcome, enrolled)


def _progress_rows(
    session: Session,
    client: User,
    skills: Sequence[Skill],
    now: dt.datetime,
    *,
    pathway_id: int | None = None,
    create: bool = True,
) -> tuple[dict[int, UserSkillProgress], set[int]]:
    """The client's progress rows in these skills by skill id, and the ids of those added now: a missing row
    is added not_started (ProgressState's defaults) under `pathway_id`, or without one under
    services.rule_book.assigned_pathway's choice; an archived skill takes no new row. `create=False` adds none."""
    query = select(UserSkillProgress).where(
        UserSkillProgress.client_id == client.id, UserSkillProgress.skill_id.in_([skill.id for skill in skills])
    )
    rows = {row.skill_id: row for row in session.scalars(query)}
    missing = [skill for skill in skills if skill.id not in rows] if create else []
    if archived := [skill.slug for skill in missing if skill.archived]:
        raise InvalidInput(f"skill: {archived[0]!r} is archived and cannot be assigned", code="skill_archived")
    under: dict[int, int | None] = {}
    if missing and pathway_id is None:
        enrolled = set(session.scalars(select(Enrolment.pathway_id).where(Enrolment.client_id == client.id)))
        linked = skill_links(session, [skill.id for skill in missing])
        under = {skill_id: assigned_pathway(pathways, enrolled) for skill_id, pathways in linked.items()}
    for skill in missing:
        stamps = {"pathway_id": pathway_id or under.get(skill.id), "created_at": now, "updated_at": now}
        rows[skill.id] = UserSkillProgress(client_id=client.id, skill_id=skill.id, **stamps, **vars(ProgressState()))
        session.add(rows[skill.id])
    return rows, {skill.id for skill in missing}


def move_skill(
    session: Session,
    email: str,
    skill_slug: str,
    status: str,
    *,
    now: dt.datetime,
    via: str | None = None,
    validated_by: str | None = None,
    note: str | None = None,
) -> ProgressResult:
    """`skills start|complete|reset`: the client's progress row in the skill moved to `status`, read under the
    client's progress lock (the one `assign_skills` takes), audited, with what a completion earned. A missing
    row is created not_started (a reset needs one). A row already at `status` changes nothing but its note;
    a reset also clears a start stamp. The record is the row as it now stands; `changed` says whether anything
    was written (a note too), and the audit names everything that was (the move, then its note).

    A completion counts an attempt and stamps its time, method and validating builder (settled before any
    change); completing an already completed skill changes nothing (so a repeated script run neither
    inflates attempts nor awards twice). A completed skill must be reset before it is started again; a
    reset keeps attempts and notes as history, and badges are never taken back."""
    completion = _completion(session, via, validated_by, now) if status == "completed" else None
    note = check_note(note)
    client, _ = get_client(session, email)
    lock_keys(session, f"progress:{client.id}", progress=True)  # then the skill, as assign_skills: one order
    skill = get_skill(session, skill_slug, for_new_rows=True)
    rows, new = _progress_rows(session, client, [skill], now, create=status != "not_started")
    if skill.id not in rows:  # a reset needs a row
        hint = f"assign it with `bapp skills assign {client.email} {skill.slug}`"
        raise NotFound(f"skill {skill.slug!r} is not assigned to {client.email}", hint=hint, code="progress_not_found")
    row, previous = rows[skill.id], None if new else rows[skill.id].status
    if status == "in_progress" and row.status == "completed":
        hint = f"reset it first with `bapp skills reset {client.email} {skill.slug} --yes`"
        message = f"skill {skill.slug!r} is already completed for {client.email}"
        raise Conflict(message, hint=hint, code="already_completed")
    changes: dict[str, Any] = {}
    if row.status != status or (status == "not_started" and row.started_at is not None):
        _apply_status(row, status, completion, now, f"{client.email} in {skill.slug}")
        changes = {"status": [previous, status], **({"reset": True} if status == "not_started" else {})}
        if completion is not None:
            changes |= {"via": completion[0], "validated_by": completion[1] and completion[1].email}
    if note is not None and row.notes != note:
        row.notes, row.updated_at = note, now
        changes["notes"] = note  # after the move it went with, if any: the audit is the note's record
    if changes:
        record_audit(session, "skill_progress", f"{client.email}:{skill.slug}", changes)
    outcome = _after_completion(session, client, [skill] if "status" in changes and status == "completed" else [], now)
    session.flush()
    validator = session.get(User, row.validated_by_id) if row.validated_by_id is not None else None
    pathway = session.get(Pathway, row.pathway_id) if row.pathway_id is not None else None
    record: dict[str, Any] = {"client": client.email, "skill": skill.slug}
    record |= {"status": row.status, "previous_status": previous, "changed": bool(changes)}
    record |= {name: getattr(row, name) for name in ("attempts", "started_at", "completed_at")}
    record |= {"completed_via": row.completion_method, "validated_by": validator.email if validator else None}
    record |= {"pathway": pathway.slug if pathway else None, "notes": row.notes}
    return _with_outcome(record, outcome, [])


# `skills start`, `skills complete` and `skills reset`: one move each (see move_skill)
start_skill = partial(move_skill, status="in_progress")
complete_skill = partial(move_skill, status="completed")
reset_skill = partial(move_skill, status="not_started")

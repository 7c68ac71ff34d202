"""Pathways and their tiers: lookup (any case in, lowercase slug stored) and read models."""

from __future__ import annotations

import unicodedata
from collections import defaultdict
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bapp_cli.db.dbapi import Database
from bapp_cli.db.locks import lock_rows
from bapp_cli.db.models import Pathway, Skill, SkillPathwayLink
from bapp_cli.errors import InvalidInput
from bapp_cli.services.plain_reads import list_pathways as list_pathways  # read by the admin commands and exports
from bapp_cli.services.plain_reads import pathway_id


def answer_names(pathway: Pathway) -> tuple[str, str]:
    """What a Calendly answer may call a pathway, compared casefolded: its slug and its name. The booking doors
    match an answer against these (services.calendly_bookings), and no two pathways may share one
    (services.pathway_admin.refuse_ambiguous), so an answer never reads as two."""
    return pathway.slug.casefold(), answer_key(pathway.name)


def answer_key(text: str) -> str:
    """How an answer and a pathway's name, or a question's text or choice, compare (services.answers): trimmed,
    casefolded and in NFC, so that 'Café' typed with a combining accent is the 'Café' it reads as (e-mail
    addresses compare in NFC too)."""
    return unicodedata.normalize("NFC", text.strip().casefold())


def get_pathway(session: Session, slug: str, *, for_new_links: bool = False) -> Pathway:
    """The pathway named by `slug` in any case; archived ones refuse new enrolments, bookings, links."""
    # for a new link, read under a share lock: on PostgreSQL an archive not yet committed was read past, and the
    # archived pathway took the link; now it is waited for and seen (SQLite's writers already take turns). Every
    # pathway's, in id order (db.locks.lock_rows): `skills add --link b:1 --link a:1` or `sessions add --pathway b
    # --pathway a` took b's, then waited for a's held by a renumbering (`pathways update --position`, id order)
    # waiting for b's: a deadlock
    if for_new_links:
        lock_rows(session, Pathway)
    pathway = session.get_one(Pathway, pathway_id(Database.of_session(session), slug))
    if for_new_links and pathway.archived:
        said = f"pathway {pathway.slug!r} is archived and takes no new enrolments, bookings or skill links"
        raise InvalidInput(said, code="pathway_archived")
    return pathway


def tier_skills(session: Session, column: Any, *where: Any) -> defaultdict[tuple[int, int], list[Any]]:
    """The non-archived skills linked to each (pathway id, tier) (of the links `where` selects), as their
    `column` (a slug or a name) in its order; a tier without any reads as none."""
    rows = session.execute(
        select(SkillPathwayLink.pathway_id, SkillPathwayLink.tier, column)
        .join(Skill, Skill.id == SkillPathwayLink.skill_id)
        .where(Skill.archived.is_(False), *where)
        .order_by(column)
    )
    skills: defaultdict[tuple[int, int], list[Any]] = defaultdict(list)
    for pathway, tier, value in rows:
        skills[(pathway, tier)].append(value)
    return skills

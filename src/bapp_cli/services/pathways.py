"""Pathways and their tiers: lookup (any case in, lowercase slug stored) and read models."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bapp_cli.db.models import Pathway, PathwayTier, Skill, SkillPathwayLink
from bapp_cli.errors import InvalidInput
from bapp_cli.services.listing import ALL, Page
from bapp_cli.services.plain_reads import pathway_not_found

PATHWAY_COLUMNS = ("slug", "name", "description", "icon", "color", "position", "archived", "tiers")


@dataclass(frozen=True)
class TierView:
    tier: int
    name: str
    description: str | None
    skills: list[str] = field(default_factory=list)

    def as_record(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PathwayView:
    id: int
    slug: str
    name: str
    description: str | None
    icon: str | None
    color: str | None
    position: int
    archived: bool
    tiers: list[TierView]

    def as_record(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in PATHWAY_COLUMNS} | {
            "tiers": [tier.as_record() for tier in self.tiers]
        }


def normalise_slug(value: str) -> str:
    return value.strip().lower()


def get_pathway(session: Session, slug: str, *, for_new_links: bool = False) -> Pathway:
    """The pathway named by `slug` in any case; archived ones refuse new enrolments, bookings, links."""
    wanted = normalise_slug(slug)
    pathway = session.scalars(select(Pathway).where(Pathway.slug == wanted)).one_or_none()
    if pathway is None:
        known = session.scalars(select(Pathway.slug).order_by(Pathway.position, Pathway.slug)).all()
        raise pathway_not_found(slug, known)
    if for_new_links and pathway.archived:
        raise InvalidInput(
            f"pathway {pathway.slug!r} is archived and takes no new enrolments, bookings or skill links",
            code="pathway_archived",
        )
    return pathway


def list_pathways(session: Session, *, slug: str | None = None, page: Page = ALL) -> list[PathwayView]:
    """Pathways in display order with their tiers and the skills linked to each tier (three queries);
    `page.search` looks in slug and name."""
    query = select(Pathway).order_by(Pathway.position, Pathway.slug)
    if slug is not None:
        query = query.where(Pathway.id == get_pathway(session, slug).id)
    found = page.matching(Pathway.slug, Pathway.name)
    if found is not None:
        query = query.where(found)
    pathways = session.scalars(page.window(query)).all()
    ids = [pathway.id for pathway in pathways]
    tiers_by_pathway: dict[int, list[PathwayTier]] = defaultdict(list)
    skills_by_tier: dict[tuple[int, int], list[str]] = defaultdict(list)
    if ids:
        for tier in session.scalars(
            select(PathwayTier).where(PathwayTier.pathway_id.in_(ids)).order_by(PathwayTier.tier)
        ):
            tiers_by_pathway[tier.pathway_id].append(tier)
        rows = session.execute(
            select(SkillPathwayLink.pathway_id, SkillPathwayLink.tier, Skill.slug)
            .join(Skill, Skill.id == SkillPathwayLink.skill_id)
            .where(SkillPathwayLink.pathway_id.in_(ids), Skill.archived.is_(False))
            .order_by(Skill.slug)
        )
        for pathway_id, tier_number, skill_slug in rows:
            skills_by_tier[(pathway_id, tier_number)].append(skill_slug)
    return [
        PathwayView(
            **{name: getattr(pathway, name) for name in ("id", *PATHWAY_COLUMNS) if name != "tiers"},
            tiers=[
                TierView(tier.tier, tier.name, tier.description, skills_by_tier.get((pathway.id, tier.tier), []))
                for tier in tiers_by_pathway.get(pathway.id, [])
            ],
        )
        for pathway in pathways
    ]

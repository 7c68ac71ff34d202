"""Pathway management: add, rename, describe, reorder and archive pathways and their tiers.

Slugs come in any case and are stored lowercase. A slug may not contain `:` because skill links
(`accelerate:1`) and badge keys (`tier:accelerate:1`) use it as a separator. Archiving keeps history:
nothing is deleted, the pathway only stops taking new enrolments, bookings and skill links.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from itertools import product
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bapp_cli.db.audit import apply_changes, stamp_and_audit
from bapp_cli.db.domains import COLOR_PATTERN, DESCRIPTION_LIMIT
from bapp_cli.db.locks import PATHWAY_ORDER, lock_keys
from bapp_cli.db.models import Pathway, PathwayTier
from bapp_cli.errors import Conflict, InvalidInput, check_length, quoted
from bapp_cli.services.pathways import answer_key, answer_names, get_pathway, list_pathways
from bapp_cli.services.plain_text import nfc, without_controls

SLUG_PATTERN = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")  # the base of the two below; skills allow `_` too
# not "none": `bookings list --pathway none` and the reports' "none" row mean bookings without a pathway
PATHWAY_SLUG_PATTERN = re.compile(r"^(?!none$)" + SLUG_PATTERN.pattern[1:])
# a session type's: not digits alone, since wherever a session is named a number names its id
SESSION_SLUG_PATTERN = re.compile(r"^(?![0-9]+$)" + SLUG_PATTERN.pattern[1:])
MAX_PATHWAY_SLUG_LENGTH = 64  # not a session type's (db.domains.MAX_SESSION_SLUG_LENGTH)
MAX_NAME_LENGTH = 100
MAX_ICON_LENGTH = 16
MAX_TIERS = 20


@dataclass(frozen=True)
class TierSpec:
    """A tier as typed by an admin: `--tier 'Foundation: Build a solid foundation'`."""

    name: str
    description: str | None = None

    @classmethod
    def parse(cls, text: str, *, field: str = "tier") -> TierSpec:
        name, _, description = text.partition(":")
        return cls(check_name(name, field=field), clean_description(description, field=f"{field} description"))


def checked_slug(value: str, pattern: re.Pattern[str], max_length: int, *, field: str, what: str, hint: str) -> str:
    """A pathway's, a skill's or a session type's slug as stored (lowercase), or InvalidInput naming the field."""
    slug = value.strip().lower()
    if not slug or len(slug) > max_length or not pattern.match(slug):
        raise InvalidInput(f"{field}: {quoted(value)} is not a valid {what} slug", hint=hint, code="invalid_slug")
    return slug


def check_pathway_slug(value: str) -> str:
    hint = "use lowercase letters, digits and single hyphens, e.g. 'data-leaders' ('none' means no pathway)"
    return checked_slug(value, PATHWAY_SLUG_PATTERN, MAX_PATHWAY_SLUG_LENGTH, field="slug", what="pathway", hint=hint)


def check_name(
    value: str, *, field: str = "name", max_length: int = MAX_NAME_LENGTH, code: str = "invalid_name"
) -> str:
    """A name or title as stored: NFC, trimmed, no control characters, not empty, at most `max_length` characters."""
    name = without_controls(nfc(value).strip(), field)
    if not name:
        raise InvalidInput(f"{field}: must not be empty", code=code)
    return check_length(name, max_length, field, code=code)


def check_color(value: str) -> str:
    if not COLOR_PATTERN.fullmatch(value.strip()):
        raise InvalidInput(f"color: {value!r} is not a #RRGGBB colour", code="invalid_color")
    return value.strip().upper()


def clean_description(value: str | None, field: str = "description", max_length: int = DESCRIPTION_LIMIT) -> str | None:
    """A description (or a pathway's icon, a skill's domain or note, named `field`): trimmed, blank or None is
    none, and refused when longer than `max_length`."""
    text = (without_controls(value.strip(), field) or None) if value is not None else None
    # the code names the kind of field: a tier's ('tier 2 description') is a description's
    return text and check_length(text, max_length, field, code=f"invalid_{field.split()[-1]}")


# How each field a pathway is given is checked and stored: the one statement of these rules, for
# `pathways add/update` and the pathways import alike.
PATHWAY_FIELDS: dict[str, Callable[[str], Any]] = {
    "name": check_name,
    "description": clean_description,
    "icon": partial(clean_description, field="icon", max_length=MAX_ICON_LENGTH),
    "color": check_color,
}


def checked_fields(rules: Mapping[str, Callable[[Any], Any]], **given: Any) -> dict[str, Any]:
    """The stored values of the fields given a value (None: not given), each after its rule in `rules` (a pathway's
    PATHWAY_FIELDS, a skill's skills.SKILL_FIELDS), in the order given."""
    return {name: rules[name](value) for name, value in given.items() if value is not None}


pathway_fields = partial(checked_fields, PATHWAY_FIELDS)


def refuse_ambiguous(session: Session, pathway: Pathway | None, **given: str | None) -> None:
    """A Calendly answer names a pathway by its slug or name in any case (calendly_bookings takes the first that
    reads so): a new slug or name `given` to `pathway` (None: a new one) that reads as another pathway's would send
    its answers to either. A value the pathway already has is not refused: an older database may hold two."""
    others = session.scalars(select(Pathway).where(Pathway.id != (pathway and pathway.id)).order_by(Pathway.slug))
    for (field, value), other in product(given.items(), list(others)):
        if value not in (None, getattr(pathway, field, None)) and answer_key(value) in answer_names(other):
            hint = "a Calendly answer names a pathway by slug or name, in any case: choose another"
            raise Conflict(f"{field}: {value!r} already names pathway {other.slug!r}", hint=hint)


def next_position(session: Session) -> int:
    """Where a new pathway goes: after the last one in display order."""
    return session.scalar(select(func.coalesce(func.max(Pathway.position) + 1, 0))) or 0


# What every management command returns: the pathway record as it now stands, and {field: [old, new]} of
# what changed (empty when the values were already so).
PathwayChange = tuple[dict[str, Any], dict[str, Any]]


def _changed(
    session: Session,
    pathway: Pathway,
    changes: dict[str, Any],
    now: dt.datetime,
    *,
    audited: tuple[str, str] | None = None,
) -> PathwayChange:
    """Stamp, flush and audit (as `audited`: entity and key, by default the pathway) what changed, if anything."""
    if changes:
        stamp_and_audit(session, pathway, *(audited or ("pathway", pathway.slug)), changes, now=now)
    return list_pathways(session, slug=pathway.slug)[0], changes


def add_pathway(
    session: Session, slug: str, *, name: str, now: dt.datetime, tiers: Sequence[TierSpec] = (), **optional: str | None
) -> PathwayChange:
    """A new pathway at the end of the display order, with tiers numbered 1, 2, 3… in the given order;
    `optional`: the other fields of PATHWAY_FIELDS (description, icon, color), None when not given."""
    lock_keys(session, PATHWAY_ORDER)  # one writer of the display order at a time: see update_pathway
    canonical = check_pathway_slug(slug)
    fields = pathway_fields(name=name, **optional)
    if len(tiers) > MAX_TIERS:
        raise InvalidInput(f"tier: at most {MAX_TIERS} tiers", code="too_many_tiers")
    if session.scalar(select(Pathway.id).where(Pathway.slug == canonical)) is not None:
        raise Conflict(f"pathway {canonical!r} already exists", hint="change it with `bapp pathways update`")
    refuse_ambiguous(session, None, slug=canonical, name=fields["name"])
    pathway = Pathway(
        slug=canonical, position=next_position(session), archived=False, created_at=now, updated_at=now, **fields
    )
    session.add(pathway)
    session.flush()
    for number, tier in enumerate(tiers, start=1):
        session.add(PathwayTier(pathway_id=pathway.id, tier=number, name=tier.name, description=tier.description))
    changes = {name: fields.get(name) for name in ("name", "icon", "color")} | {"tiers": [tier.name for tier in tiers]}
    return _changed(session, pathway, changes, now)


def update_pathway(
    session: Session, slug: str, *, now: dt.datetime, position: int | None = None, **fields: str | None
) -> PathwayChange:
    """Rename, describe, recolour or move a pathway; only the fields given change (`fields`: those of
    PATHWAY_FIELDS, None when not given)."""
    # The display order is read whole and renumbered: on PostgreSQL two moves at once each renumbered the order
    # they had read, and the second overwrote the first's rows only where its own numbers differed, leaving
    # positions neither asked for (two at 0). Taken before the pathway is read: _move compares its position.
    lock_keys(session, PATHWAY_ORDER)
    pathway = get_pathway(session, slug)
    wanted = pathway_fields(**fields)
    refuse_ambiguous(session, pathway, name=wanted.get("name"))
    changes = apply_changes(pathway, wanted)
    if position is not None:
        changes.update(_move(session, pathway, position))
    return _changed(session, pathway, changes, now)


def _move(session: Session, pathway: Pathway, position: int) -> dict[str, Any]:
    """Put `pathway` at `position` (0 = first; `pathways update --position` takes no less) and renumber the rest
    0…n-1 so positions stay a clean order."""
    others = select(Pathway).where(Pathway.id != pathway.id).order_by(Pathway.position, Pathway.slug)
    ordered = list(session.scalars(others))
    ordered.insert(min(position, len(ordered)), pathway)
    previous = pathway.position
    for index, item in enumerate(ordered):
        item.position = index  # the ORM writes only the positions that change
    return {"position": [previous, pathway.position]} if previous != pathway.position else {}


def set_tier(
    session: Session, slug: str, number: int, *, name: str, now: dt.datetime, description: str | None = None
) -> PathwayChange:
    """Rename or describe tier `number`, or add it when it is the next one (tiers stay 1…n without gaps)."""
    pathway = get_pathway(session, slug)
    # its row locked before its tiers are read: on PostgreSQL two adding the next tier at once each read the same
    # last one, and the second failed on the first's insert (exit 8) where it now waits and renames it, as on SQLite
    session.refresh(pathway, ["updated_at"], with_for_update=True)
    wanted = pathway_fields(name=name, description=description)
    # one at most: a pathway's tier numbers are unique
    tier = session.scalar(select(PathwayTier).filter_by(pathway_id=pathway.id, tier=number))
    # one rule at both doors: `pathways add --tier 'NAME: DESCRIPTION'` ends a tier's name at a colon. A tier an import
    # named with one keeps its name (--name is required, also to change the description alone)
    if ":" in wanted["name"] and (tier is None or tier.name != wanted["name"]):
        hint = "a tier's description is given with --description"
        raise InvalidInput(f"name: {quoted(name)} holds ':', which ends a tier's name", hint=hint, code="invalid_name")
    if tier is None:
        highest = session.scalar(select(func.max(PathwayTier.tier)).where(PathwayTier.pathway_id == pathway.id)) or 0
        if number < 1 or number != highest + 1 or number > MAX_TIERS:
            # at the most tiers there is no next one to point at; with one, not 'tiers 1–1'
            held = {0: "no tiers yet", 1: "only tier 1"}.get(highest, f"tiers 1–{highest}")
            then = f"; the next new tier is {highest + 1}" if highest < MAX_TIERS else ", the most a pathway may have"
            raise InvalidInput(f"tier: {pathway.slug!r} has {held}{then}", code="invalid_tier")
        session.add(PathwayTier(pathway_id=pathway.id, tier=number, **wanted))
        changes = {"tier": number, "added": True, **wanted, "description": wanted.get("description")}
    else:
        changes = apply_changes(tier, wanted)
        if changes:
            changes["tier"] = number
    return _changed(session, pathway, changes, now, audited=("pathway_tier", f"{pathway.slug}:{number}"))


def archive_pathway(session: Session, slug: str, *, now: dt.datetime) -> PathwayChange:
    """Archive a pathway: history stays, new enrolments, bookings and skill links are refused."""
    pathway = get_pathway(session, slug)
    return _changed(session, pathway, apply_changes(pathway, {"archived": True}), now)

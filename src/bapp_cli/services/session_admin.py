"""Session-type administration (``bapp sessions list|show|add|update``): the admin view and the curated fields.

Admins edit only the curated fields (those Calendly does not own) — category, requires_auth, linked pathways, price and
currency, display order, the local enable switch — on any session type. ``add`` creates local-only types
(no Calendly URI), which sync never touches. Everything is validated before the first write.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bapp_cli.db.audit import apply_changes, record_audit, stamp_and_audit
from bapp_cli.db.domains import MAX_DURATION_MINUTES
from bapp_cli.db.models import Pathway, SessionType
from bapp_cli.errors import Conflict, InvalidInput
from bapp_cli.services import session_types
from bapp_cli.services.pathway_admin import clean_description
from bapp_cli.services.pathways import get_pathway
from bapp_cli.services.people import get_builder
from bapp_cli.services.session_values import default_requires_auth, parse_currency, parse_price, title_slug


@dataclass(frozen=True)
class NewSessionType:
    """Input of ``sessions add``; strings are parsed here so every error names its flag."""

    title: str
    duration_minutes: int
    category: str | None = None  # None: specialized
    requires_auth: bool | None = None
    pathways: Sequence[str] | None = None
    price: str | None = None
    currency: str | None = None
    builder: str | None = None
    description: str | None = None
    slug: str | None = None
    display_order: int | None = None


@dataclass(frozen=True)
class SessionTypeChanges:
    """Input of ``sessions update``: None means "leave as is"."""

    category: str | None = None
    requires_auth: bool | None = None
    pathways: Sequence[str] | None = None
    clear_pathways: bool = False
    price: str | None = None
    currency: str | None = None
    display_order: int | None = None
    enabled: bool | None = None

    @property
    def empty(self) -> bool:
        return not self.pathways and replace(self, pathways=None) == SessionTypeChanges()


def _linked_pathways(session: Session, slugs: Sequence[str] | None) -> list[Pathway]:
    """The pathways `slugs` name, each once, in the order given (the session holds one object per row)."""
    return list(dict.fromkeys(get_pathway(session, slug, for_new_links=True) for slug in slugs or ()))


def add_session_type(session: Session, draft: NewSessionType, *, now: dt.datetime) -> dict[str, Any]:
    """Create a local-only session type (sync never touches it: it has no Calendly URI)."""
    title = session_types.check_title(draft.title)
    if not 1 <= draft.duration_minutes <= MAX_DURATION_MINUTES:
        message = f"duration: {draft.duration_minutes} is not between 1 and {MAX_DURATION_MINUTES} minutes"
        raise InvalidInput(message, code="invalid_duration")
    category = session_types.parse_category("specialized" if draft.category is None else draft.category)
    # a title without a letter a-z or a digit (`日本語`, `---`) gives none: said of the title, not as a slug ''
    if (slug := session_types.check_session_slug(draft.slug) if draft.slug is not None else title_slug(title)) is None:
        raise InvalidInput(f"title: {title!r} gives no slug (no a-z or 0-9)", hint="pass --slug", code="invalid_slug")
    price = parse_price(draft.price) if draft.price is not None else Decimal("0.00")
    currency = parse_currency(draft.currency) if draft.currency is not None else "GBP"
    pathways = _linked_pathways(session, draft.pathways)
    if category == "pathway" and not pathways:
        message = "pathway: a pathway session needs at least one --pathway"
        raise InvalidInput(message, hint="pass --pathway SLUG", code="pathway_needed")
    builder_id = get_builder(session, draft.builder)[0].id if draft.builder is not None else None
    if session.scalar(select(SessionType.id).where(SessionType.slug == slug).limit(1)) is not None:
        hint = "choose another title or pass --slug"
        raise Conflict(f"a session type with slug {slug!r} already exists", hint=hint, code="duplicate_session")
    # no calendly_uri: local only; kind, enabled, present_in_last_sync and custom_questions take the model's defaults
    session_type = SessionType(
        slug=slug,
        title=title,
        description=clean_description(draft.description),  # trimmed, blank none: as a pathway's or a skill's
        duration_minutes=draft.duration_minutes,
        builder_id=builder_id,
        category=category,
        requires_auth=default_requires_auth(category) if draft.requires_auth is None else draft.requires_auth,
        price=price,
        currency=currency,
        display_order=draft.display_order if draft.display_order is not None else 0,
        created_at=now,
        updated_at=now,
    )
    session.add(session_type)
    session.flush()
    session_types.link_pathways(session, session_type.id, [pathway.id for pathway in pathways])
    view = session_types.session_records(session, [session_type.id])[0]
    audited = ("slug", "title", "category", "requires_auth", "pathways", "price", "currency")
    record_audit(session, "session_type", str(session_type.id), {name: view[name] for name in audited})
    return view


def update_session_type(
    session: Session, identifier: str, changes: SessionTypeChanges, *, now: dt.datetime
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Change curated fields only; returns the session record and {field: new value} of what changed (empty
    when the values were already so). A category change without ``requires_auth`` takes the category's default."""
    session_type = session_types.get_session_type(session, identifier)
    wanted: dict[str, Any] = {}
    if changes.category is not None:
        wanted["category"] = session_types.parse_category(changes.category)
        if changes.requires_auth is None and wanted["category"] != session_type.category:
            wanted["requires_auth"] = default_requires_auth(wanted["category"])
    parsers: dict[str, Callable[[Any], Any]] = {"price": parse_price, "currency": parse_currency}
    for name in ("requires_auth", "price", "currency", "display_order", "enabled"):
        if (value := getattr(changes, name)) is not None:
            wanted[name] = parsers.get(name, lambda given: given)(value)

    before = session_types.session_records(session, [session_type.id])[0]
    added = _linked_pathways(session, changes.pathways)
    kept = [] if changes.clear_pathways else list(before["pathways"])
    new_links = kept + [pathway.slug for pathway in added if pathway.slug not in kept]
    links = session.execute(select(Pathway.id, Pathway.archived).where(Pathway.slug.in_(new_links))).all()
    relinked = set(new_links) != set(before["pathways"])
    pathway_after = wanted.get("category", session_type.category) == "pathway"
    # an archived pathway takes no bookings (rule 4): linked to those alone, every booking would be refused. Said of a
    # change to the category or the links only: a pathway session `pathways archive` left without an open pathway
    # still takes its other updates, given its category again or not
    if pathway_after and (relinked or session_type.category != "pathway") and all(old for _, old in links):
        message = "pathway: a pathway session needs at least one linked pathway that is not archived"
        raise InvalidInput(message, hint="pass --pathway SLUG, or change --category", code="pathway_needed")

    changed = {name: new for name, (_, new) in apply_changes(session_type, wanted).items()}
    if relinked:
        changed["pathways"] = new_links
        session_types.link_pathways(session, session_type.id, [pathway_id for pathway_id, _ in links])
    if not changed:  # the record read first still stands
        return before, changed
    stamp_and_audit(session, session_type, "session_type", str(session_type.id), changed, now=now)
    return session_types.session_records(session, [session_type.id])[0], changed

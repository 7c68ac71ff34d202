"""The sync's slug planning settles in one run: whatever Calendly renames, swaps, drops or adds, a re-sync of
the same listing changes nothing, and no two session types share a slug."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bapp_cli.db.dbapi import Database
from bapp_cli.db.models import SessionType
from bapp_cli.services.sync import SyncPlan, stage_event_types, sync_event_types
from tests.fakes.calendly_server import make_event_type
from tests.services.test_sync import START, clock, items, uri


def listing_of(types: list[tuple[int, str | None]]) -> list[dict[str, Any]]:
    return [{**make_event_type(n, name=f"Type {n}"), "slug": slug} for n, slug in types]


def slugs(session: Session) -> dict[str | None, str | None]:
    """Every session type's slug by its Calendly URI (None: a local type)."""
    session.expire_all()
    rows = session.scalars(select(SessionType)).all()
    held = [row.slug for row in rows if row.slug is not None]
    assert len(held) == len(set(held)), f"a slug held twice: {sorted(held)}"
    return {row.calendly_uri or f"local {row.id}": row.slug for row in rows}


def sync(session: Session, types: list[tuple[int, str | None]], *, paged: bool = False, **options: Any) -> Any:
    """One sync of ``types`` (n, Calendly slug); ``paged``: planned page by page as `calendly sync` plans it."""
    listing, plan = items(*listing_of(types)), None
    if paged:  # one type a page, the catalogue read after the first
        plan = SyncPlan([], reclassify=False)
        plan.add(stage_event_types(listing[:1], "api"))
        plan.read(Database.of(session))
        for entry in listing[1:]:
            plan.add(stage_event_types([entry], "api"))
        session.rollback()
        listing = plan.given
    report = sync_event_types(session, listing, source="api", started_at=START, clock=clock(), plan=plan, **options)
    session.rollback() if options.get("dry_run") else session.commit()  # as `calendly sync --dry-run` ends
    return report


def test_a_slug_a_type_gives_up_for_none_is_free_in_the_same_sync(session: Session) -> None:
    """A type Calendly lists without a slug kept its old one booked in the plan: the type taking it was
    numbered (`gamma-2`) and the next sync moved it to `gamma`."""
    sync(session, [(0, "gamma"), (1, "delta")])
    report = sync(session, [(0, None), (1, "gamma")])
    assert report.updated == 2
    assert slugs(session) == {uri(0): None, uri(1): "gamma"}
    again = sync(session, [(0, None), (1, "gamma")])
    assert (again.updated, again.unchanged) == (0, 2)

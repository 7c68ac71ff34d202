"""The sync's slug planning settles in one run: whatever Calendly renames, swaps, drops or adds, a re-sync of
the same listing changes nothing, and no two session types share a slug."""

from __future__ import annotations

import random
from typing import Any

import pytest
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from bapp_cli.db.dbapi import Database
from bapp_cli.db.models import SessionType, SessionTypePathway
from bapp_cli.services.session_values import session_slug
from bapp_cli.services.sync import SyncPlan, stage_event_types, sync_event_types
from tests.fakes.calendly_server import make_event_type
from tests.services.test_sync import START, clock, items, uri

# Slugs that number each other (`alpha-2` is both `alpha` numbered and a slug of its own) make the chains.
ALPHABET = ("alpha", "alpha-2", "alpha-2-2", "beta", "beta-2")


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


def random_listing(rng: random.Random) -> list[tuple[int, str | None]]:
    """Up to 6 of the types 0-5 in any order (the rest vanish; one not synced before is new), each with a slug
    of the alphabet or none; Calendly's slugs are unique in a user's listing, though not always in an
    organization's."""
    chosen = rng.sample(range(6), rng.randint(1, 6))
    pool = [*ALPHABET, None]
    wanted = rng.sample(pool, len(chosen)) if rng.random() < 0.8 else rng.choices(pool, k=len(chosen))
    return list(zip(chosen, wanted, strict=True))


def test_a_slug_a_type_gives_up_for_none_is_free_in_the_same_sync(session: Session) -> None:
    """A type Calendly lists without a slug kept its old one booked in the plan: the type taking it was
    numbered (`gamma-2`) and the next sync moved it to `gamma`."""
    sync(session, [(0, "gamma"), (1, "delta")])
    report = sync(session, [(0, None), (1, "gamma")])
    assert report.updated == 2
    assert slugs(session) == {uri(0): None, uri(1): "gamma"}
    again = sync(session, [(0, None), (1, "gamma")])
    assert (again.updated, again.unchanged) == (0, 2)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        # a new type listed before the type that gives its slug up: it was numbered `alpha-2`
        ([(0, "alpha")], [(1, "alpha"), (0, "omega")]),
        # a new type wanting `alpha-2` while a renamed type held it on its way to `alpha`: `alpha-2-2`
        ([(0, "alpha"), (1, "beta")], [(1, "alpha"), (2, "alpha-2"), (0, "omega")]),
        # a known type wanting `alpha-2` while a third held it, set aside before the one that holds `alpha-2` on its
        # way to `alpha` once the third gave it up: it kept `alpha-2-2`
        (
            [(0, "alpha"), (1, "beta"), (2, "two"), (3, "alpha-2")],
            [(2, "alpha-2"), (3, "delta"), (1, "alpha"), (0, "omega")],
        ),
    ],
)
def test_a_type_numbered_while_another_holds_its_slug_for_a_moment_is_not(
    session: Session, first: list[tuple[int, str | None]], second: list[tuple[int, str | None]]
) -> None:
    sync(session, first)
    sync(session, second)
    assert set(slugs(session).values()) == {slug for _, slug in second}
    again = sync(session, second)
    assert (again.created, again.updated) == (0, 0)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_random_listings_settle_in_one_sync(session: Session) -> None:
    """Random listings of up to 6 types over a few slugs that number each other, some with a local type
    holding one of them: after each sync (whole or page by page), a dry run and a real re-sync of the same
    listing change nothing, every slug is unique, and a type has the slug Calendly calls it unless another
    type holds that slug."""
    rng = random.Random(19)
    for case in range(60):
        session.execute(delete(SessionTypePathway))
        session.execute(delete(SessionType))
        if rng.random() < 0.3:
            title = f"Local {case}"
            session.add(SessionType(title=title, slug=rng.choice(ALPHABET), category="free", duration_minutes=30))
        session.commit()
        for _ in range(3):
            types = random_listing(rng)
            sync(session, types, paged=rng.random() < 0.5)
            synced = slugs(session)
            seen = (case, types, synced)
            for n, wanted in types:
                others = [slug for key, slug in synced.items() if key != uri(n)]
                assert synced[uri(n)] == wanted or (wanted in others and None not in (wanted, synced[uri(n)])), seen
            for dry_run in (True, False):
                again = sync(session, types, dry_run=dry_run)
                assert again.changes == [], (*seen, [change.describe() for change in again.changes])
                assert slugs(session) == synced


@pytest.mark.parametrize(
    ("text", "slug"),
    [
        ("abc-123", "abc-123"),  # a slug already: kept as it is, without the pattern
        ("Ab-C", "ab-c"),
        ("A--B", "a-b"),  # a run of hyphens is one
        ("-a-", "a"),
        ("a_b c", "a-b-c"),
        ("2024", "session-2024"),
        ("ſlug", "lug"),  # not ASCII: through the pattern, which keeps ASCII letters and digits only
        ("a-²", "a"),  # ² is alphanumeric to str.isalnum, not to the slug rule
        ("-", None),
    ],
)
def test_session_slug_keeps_as_it_is_only_a_text_that_is_a_slug_already(text: str, slug: str | None) -> None:
    """The calendly sync's shortcut past the pattern (P2) gives what the pattern gives."""
    assert session_slug(text) == slug

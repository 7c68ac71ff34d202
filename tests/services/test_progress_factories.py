"""Builders for skills/progress tests: catalogue, clients and coaches made through the real services."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, event, select
from sqlalchemy.orm import Session

from bapp_cli.db.models import BuilderProfile, Pathway, User
from bapp_cli.services.enrolment import enrol
from bapp_cli.services.people import ensure_client
from bapp_cli.services.skills import add_skill

NOW = dt.datetime(2030, 1, 15, 9, 30, tzinfo=dt.UTC)
LATER = NOW + dt.timedelta(days=3)


def skill(session: Session, slug: str, *links: str, fundamental: bool = False) -> None:
    add_skill(session, slug, name=slug.replace("-", " ").title(), now=NOW, links=links, fundamental=fundamental)


def client(session: Session, email: str = "ada@example.com", *enrolled: str) -> User:
    user, _, _ = ensure_client(session, email, name=email.split("@")[0].title())
    for slug in enrolled:
        enrol(session, user, pathway(session, slug), now=NOW)
    return user


def builder(session: Session, email: str = "bob@example.com") -> User:
    user = User(email=email, name=email.split("@")[0].title())
    session.add(user)
    session.flush()
    session.add(BuilderProfile(user_id=user.id, display_name=user.name))
    session.flush()
    return user


def pathway(session: Session, slug: str) -> Pathway:
    return session.scalars(select(Pathway).where(Pathway.slug == slug)).one()


def small_catalogue(session: Session) -> None:
    """accelerate: tier 1 = a1, a2, a3; tier 2 = a4; tier 3 empty. pivot: tier 1 = shared, tier 2 = p2, tier 3 = p3.
    `shared` also sits in accelerate tier 2; two fundamentals (f1, f2)."""
    skill(session, "a1", "accelerate:1")
    skill(session, "a2", "accelerate:1")
    skill(session, "a3", "accelerate:1")
    skill(session, "a4", "accelerate:2")
    skill(session, "shared", "accelerate:2", "pivot:1")
    skill(session, "p2", "pivot:2")
    skill(session, "p3", "pivot:3")
    skill(session, "f1", fundamental=True)
    skill(session, "f2", "play:1", fundamental=True)


@contextmanager
def counting_statements() -> Iterator[list[str]]:
    """Every SQL statement any engine sends while the block runs."""
    statements: list[str] = []

    def count(*args: object) -> None:
        statements.append(str(args[2]))

    listener: Callable[..., None] = count
    event.listen(Engine, "before_cursor_execute", listener)
    try:
        yield statements
    finally:
        event.remove(Engine, "before_cursor_execute", listener)

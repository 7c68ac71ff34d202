"""Factories for the booking, availability and client tests: people, session types, questions, bookings.

Session types are created straight through the ORM (the sync and `sessions add` are another feature), with
custom questions in Calendly's shape. Functions flush; the caller commits when another process or the
in-process CLI must see the rows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bapp_cli.db.engine import make_engine
from bapp_cli.db.models import (
    AuditEntry,
    Booking,
    BuilderProfile,
    ClientProfile,
    Pathway,
    SessionType,
    SessionTypePathway,
    User,
)
from bapp_cli.services.booking import REFERENCE_ALPHABET, generate_reference

# The injected clock of service tests: every start below is relative to it.
NOW = dt.datetime(2030, 1, 1, 9, 0, tzinfo=dt.UTC)


def at(days: float = 1, hours: float = 0, minutes: float = 0) -> dt.datetime:
    """An instant relative to NOW."""
    return NOW + dt.timedelta(days=days, hours=hours, minutes=minutes)


def question(
    name: str,
    kind: str = "string",
    *,
    position: int = 0,
    enabled: bool = True,
    required: bool = False,
    choices: Sequence[str] | None = None,
    include_other: bool = False,
) -> dict[str, Any]:
    """A custom question exactly as Calendly's event-type payload spells it."""
    return {
        "name": name,
        "type": kind,
        "position": position,
        "enabled": enabled,
        "required": required,
        "answer_choices": list(choices) if choices is not None else [],
        "include_other": include_other,
    }


def add_builder(session: Session, email: str = "coach@example.com", **settings: Any) -> User:
    user = User(email=email, name=settings.pop("name", "Cora Coach"))
    session.add(user)
    session.flush()
    session.add(BuilderProfile(user_id=user.id, **settings))
    session.flush()
    return user


def add_client(session: Session, email: str = "ada@example.com", name: str | None = "Ada") -> User:
    user = User(email=email, name=name)
    session.add(user)
    session.flush()
    session.add(ClientProfile(user_id=user.id))
    session.flush()
    return user


def get_pathway(session: Session, slug: str) -> Pathway:
    return session.scalars(select(Pathway).where(Pathway.slug == slug)).one()


def add_session_type(
    session: Session,
    title: str,
    *,
    category: str = "specialized",
    requires_auth: bool | None = None,
    builder: User | None = None,
    pathways: Sequence[str] = (),
    price: str = "0.00",
    duration: int = 30,
    questions: Sequence[dict[str, Any]] = (),
    slug: str | None = None,
    **fields: Any,
) -> SessionType:
    session_type = SessionType(
        title=title,
        slug=slug or title.lower().replace(" ", "-"),
        category=category,
        requires_auth=requires_auth if requires_auth is not None else category != "free",
        builder_id=builder.id if builder is not None else None,
        price=Decimal(price),
        duration_minutes=duration,
        custom_questions=list(questions),
        **fields,
    )
    session.add(session_type)
    session.flush()
    for pathway_slug in pathways:
        session.add(
            SessionTypePathway(session_type_id=session_type.id, pathway_id=get_pathway(session, pathway_slug).id)
        )
    session.flush()
    return session_type


def add_booking(
    session: Session,
    *,
    client: User,
    session_type: SessionType,
    start: dt.datetime,
    builder: User | None = None,
    minutes: int = 30,
    status: str = "confirmed",
    reference: str | None = None,
) -> Booking:
    booking = Booking(
        reference=reference or generate_reference(),
        client_id=client.id,
        builder_id=builder.id if builder is not None else session_type.builder_id,
        session_type_id=session_type.id,
        start_time=start,
        end_time=start + dt.timedelta(minutes=minutes),
        status=status,
        payment_status="not_required",
    )
    session.add(booking)
    session.flush()
    return booking


def count(session: Session, model: Any, *conditions: Any) -> int:
    return int(session.scalar(select(func.count()).select_from(model).where(*conditions)) or 0)


def audit_entries(session: Session, entity: str) -> list[AuditEntry]:
    return list(session.scalars(select(AuditEntry).where(AuditEntry.entity == entity).order_by(AuditEntry.id)))


def seed_session(database_url: str) -> Iterator[Session]:
    """A session for arranging rows before the CLI runs (commit first) and checking the database after.

    CLI test modules wrap it: `@pytest.fixture(name="seed")`.
    """
    engine = make_engine(database_url)
    with Session(bind=engine, expire_on_commit=False) as db_session:
        yield db_session
        db_session.rollback()
    engine.dispose()


def test_references_are_bk_and_eight_unambiguous_characters() -> None:
    references = {generate_reference() for _ in range(200)}
    assert len(references) == 200
    for reference in references:
        assert reference.startswith("BK-") and len(reference) == 11
        assert set(reference[3:]) <= set(REFERENCE_ALPHABET)
    assert not set("0O1IL") & set(REFERENCE_ALPHABET)

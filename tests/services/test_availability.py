"""Availability by authentication (the booking rules): who sees what, filters, order, and a fixed query count."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, event, update
from sqlalchemy.orm import Session

from bapp_cli.db.models import Pathway
from bapp_cli.errors import InvalidInput, NotFound
from bapp_cli.services.availability import list_available_sessions
from tests.services.test_booking_factories import NOW, add_builder, add_client, add_session_type


@pytest.fixture
def catalogue(session: Session) -> dict[str, Any]:
    coach = add_builder(session)
    other = add_builder(session, "other@example.com")
    add_client(session)
    add = add_session_type
    add(session, "Intro Call", category="free", builder=coach, display_order=2)
    add(session, "Getting Started", category="free", builder=coach, display_order=1)
    add(session, "Accelerate Review", category="pathway", builder=coach, pathways=["accelerate"], price="30.00")
    add(session, "Pivot Review", category="pathway", builder=other, pathways=["pivot"], price="20.00")
    add(session, "Cheap Clinic", category="specialized", builder=other, price="10.00", display_order=5)
    add(session, "Agent Clinic", category="specialized", builder=coach, price="50.00", display_order=5)
    add(session, "Beta Clinic", category="specialized", builder=coach, price="50.00", display_order=5)
    add(session, "Open Office Hours", category="specialized", requires_auth=False, builder=coach, display_order=9)
    add(session, "Secret VIP", category="free", is_secret=True)
    add(session, "Disabled Intro", category="free", enabled=False)
    add(
        session,
        "Deleted Intro",
        category="free",
        calendly_uri="https://api.calendly.com/event_types/D",
        remote_deleted_at=NOW,
    )
    add(
        session,
        "Inactive Intro",
        category="free",
        calendly_uri="https://api.calendly.com/event_types/I",
        remote_active=False,
    )
    add(session, "Vanished Intro", category="free", present_in_last_sync=False)
    return {"coach": coach}


def titles(session: Session, **filters: Any) -> list[str]:
    return [record["title"] for record in list_available_sessions(session, **filters).sessions]


def test_anonymous_visitors_see_bookable_public_sessions_only(session: Session, catalogue: dict[str, Any]) -> None:
    assert titles(session) == ["Getting Started", "Intro Call", "Open Office Hours"]


def test_clients_see_every_bookable_non_secret_session_in_order(session: Session, catalogue: dict[str, Any]) -> None:
    # category, then display order, then price, then title
    assert titles(session, client_email="ADA@example.com") == [
        "Getting Started",
        "Intro Call",
        "Pivot Review",
        "Accelerate Review",
        "Cheap Clinic",
        "Agent Clinic",
        "Beta Clinic",
        "Open Office Hours",
    ]


def test_pathway_filter_narrows_only_pathway_sessions(session: Session, catalogue: dict[str, Any]) -> None:
    assert titles(session, client_email="ada@example.com", pathway="Accelerate") == [
        "Getting Started",
        "Intro Call",
        "Accelerate Review",
        "Cheap Clinic",
        "Agent Clinic",
        "Beta Clinic",
        "Open Office Hours",
    ]


def test_a_pathway_session_of_archived_pathways_only_is_not_available(
    session: Session, catalogue: dict[str, Any]
) -> None:
    # an archived pathway takes no new bookings, so its sessions would all be refused (rule 4): not offered
    add_session_type(session, "Joint Review", category="pathway", pathways=["pivot", "play"])
    session.execute(update(Pathway).where(Pathway.slug == "pivot").values(archived=True))
    pathway_sessions = titles(session, client_email="ada@example.com", category="pathway")
    assert pathway_sessions == ["Joint Review", "Accelerate Review"]  # Joint Review still books under play
    assert titles(session, client_email="ada@example.com", category="pathway", pathway="pivot") == []
    assert titles(session, client_email="ada@example.com", category="pathway", pathway="play") == ["Joint Review"]


def test_category_and_builder_filters(session: Session, catalogue: dict[str, Any]) -> None:
    assert titles(session, client_email="ada@example.com", category="Pathway") == ["Pivot Review", "Accelerate Review"]
    assert titles(session, client_email="ada@example.com", builder_email="other@example.com") == [
        "Pivot Review",
        "Cheap Clinic",
    ]
    assert titles(session, category="pathway") == []


def test_records_have_the_session_keys_in_category_order(session: Session, catalogue: dict[str, Any]) -> None:
    availability = list_available_sessions(session, client_email="ada@example.com")
    first = availability.sessions[0]
    assert list(first)[:3] == ["id", "slug", "title"] and first["bookable"] is True
    assert first["builder"] == "coach@example.com"
    review = next(record for record in availability.sessions if record["title"] == "Accelerate Review")
    assert review["pathways"] == ["accelerate"]
    assert [record["category"] for record in availability.sessions] == ["free"] * 2 + ["pathway"] * 2 + [
        "specialized"
    ] * 4


def test_bad_filters_are_refused(session: Session, catalogue: dict[str, Any]) -> None:
    with pytest.raises(NotFound) as unknown_client:
        list_available_sessions(session, client_email="ghost@example.com")
    assert unknown_client.value.exit_code == 7
    with pytest.raises(InvalidInput) as bad_category:
        list_available_sessions(session, category="vip")
    assert bad_category.value.message.startswith("category:")
    with pytest.raises(NotFound):
        list_available_sessions(session, pathway="juggling")
    with pytest.raises(InvalidInput):
        list_available_sessions(session, client_email="not an email")


def test_statement_count_does_not_grow_with_the_catalogue(
    session: Session, engine: Engine, catalogue: dict[str, Any]
) -> None:
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    def listing() -> int:
        statements.clear()
        event.listen(engine, "before_cursor_execute", count)
        try:
            list_available_sessions(session, client_email="ada@example.com")
        finally:
            event.remove(engine, "before_cursor_execute", count)
        return len(statements)

    small = listing()
    for index in range(60):
        add_session_type(
            session, f"Extra {index}", category="pathway", builder=catalogue["coach"], pathways=["play", "pivot"]
        )
    assert listing() == small <= 4


def test_a_session_of_a_builder_not_accepting_bookings_is_not_available(
    session: Session, catalogue: dict[str, Any]
) -> None:
    # rule 1 refuses every booking of theirs, so none is offered; their colleague's stay, as do admin listings
    away = add_builder(session, "away@example.com", accepting_bookings=False)
    add_session_type(session, "Away Intro", category="free", builder=away)
    add_session_type(session, "Away Clinic", category="specialized", builder=away)
    assert titles(session) == ["Getting Started", "Intro Call", "Open Office Hours"]
    assert "Away Clinic" not in titles(session, client_email="ada@example.com")
    assert titles(session, client_email="ada@example.com", builder_email="away@example.com") == []
    assert titles(session, client_email="ada@example.com", builder_email="other@example.com") == [
        "Pivot Review",
        "Cheap Clinic",
    ]

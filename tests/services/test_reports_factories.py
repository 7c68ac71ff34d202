"""A small dashboard data set whose every figure is worked out by hand below (used by the report tests).

Catalogue (test_progress_factories.small_catalogue): accelerate tier 1 = a1 a2 a3, tier 2 = a4 shared,
tier 3 = `old` (archived after clients completed it) → 5 linked skills; pivot = shared, p2, p3 → 3;
play = f2 → 1; f1 is a fundamental linked nowhere.

| client | enrolment (start)              | completed skills        | percent | status    | days |
|--------|--------------------------------|-------------------------|---------|-----------|------|
| ada    | accelerate (01-15)             | a1 a2 a3 shared old     | 4/5 80  | active    |      |
| ada    | pivot (01-10)                  | shared p2 p3 (01-18)    | 3/3 100 | completed | 8    |
| bo     | accelerate (01-15)             | a1 old                  | 1/5 20  | paused    |      |
| cy     | pivot (01-05)                  | shared p2 p3 (01-18)    | 3/3 100 | completed | 13   |
| dee    | play (01-15)                   | f1 (fundamental)        | 0/1 0   | active    |      |
| eve    | pivot (01-15)                  | p2                      | 1/3 33  | active    |      |

Completions per skill (archived `old` never counts): p2 3, a1 2, shared 2, p3 2, a2 1, a3 1, f1 1.

Bookings (coach1 = cora, coach2 = dan); the period used by the tests is [2030-02-01, 2030-03-01):
| ref | pathway    | status    | start (UTC)       | builder | in period              |
|-----|------------|-----------|-------------------|---------|------------------------|
| B1  | accelerate | confirmed | 2030-02-01 00:00  | cora    | yes (from is inclusive)|
| B2  | accelerate | cancelled | 2030-02-10 10:00  | cora    | yes                    |
| B3  | pivot      | completed | 2030-02-20 10:00  | dan     | yes                    |
| B4  | —          | pending   | 2030-02-15 10:00  | cora    | yes                    |
| B5  | accelerate | confirmed | 2030-03-01 00:00  | cora    | no (to is exclusive)   |
| B6  | pivot      | no_show   | 2030-01-31 23:59  | dan     | no                     |
| B7  | —          | confirmed | 2030-02-28 23:30  | dan     | yes                    |
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.orm import Session

from bapp_cli.db.models import Booking
from bapp_cli.services.clients import set_client_status
from bapp_cli.services.enrolment import enrol
from bapp_cli.services.skills import archive_skill, complete_skill
from tests.services.test_booking_factories import add_booking, add_builder, add_session_type, question
from tests.services.test_progress_factories import LATER, NOW, client, pathway, skill, small_catalogue

PERIOD_FROM = dt.datetime(2030, 2, 1, tzinfo=dt.UTC)
PERIOD_TO = dt.datetime(2030, 3, 1, tzinfo=dt.UTC)

# bookings: reference → (pathway, status, start, builder key, client key)
BOOKINGS: dict[str, tuple[str | None, str, dt.datetime, str, str]] = {
    "BK-B1": ("accelerate", "confirmed", dt.datetime(2030, 2, 1, 0, 0, tzinfo=dt.UTC), "cora", "ada"),
    "BK-B2": ("accelerate", "cancelled", dt.datetime(2030, 2, 10, 10, 0, tzinfo=dt.UTC), "cora", "bo"),
    "BK-B3": ("pivot", "completed", dt.datetime(2030, 2, 20, 10, 0, tzinfo=dt.UTC), "dan", "cy"),
    "BK-B4": (None, "pending", dt.datetime(2030, 2, 15, 10, 0, tzinfo=dt.UTC), "cora", "dee"),
    "BK-B5": ("accelerate", "confirmed", dt.datetime(2030, 3, 1, 0, 0, tzinfo=dt.UTC), "cora", "ada"),
    "BK-B6": ("pivot", "no_show", dt.datetime(2030, 1, 31, 23, 59, tzinfo=dt.UTC), "dan", "eve"),
    "BK-B7": (None, "confirmed", dt.datetime(2030, 2, 28, 23, 30, tzinfo=dt.UTC), "dan", "eve"),
}
ANSWERS = [
    {"question": "What are you building?", "answer": "A bakery ordering bot", "position": 0},
    {"question": "Tools", "answer": ["ChatGPT", "Zapier"], "position": 1},
]


def dashboard_data(session: Session) -> dict[str, Any]:
    """Build the data set of the module docstring through the real services; returns people by key."""
    small_catalogue(session)
    skill(session, "old", "accelerate:3")
    cora = add_builder(session, "cora@coach.example", name="Cora Coach")
    dan = add_builder(session, "dan@coach.example", name="Dan Coach")
    people = {
        "ada": client(session, "ada@example.com"),
        "bo": client(session, "bo@example.com"),
        "cy": client(session, "cy@example.com"),
        "dee": client(session, "dee@example.com"),
        "eve": client(session, "eve@example.com"),
    }
    accelerate, pivot, play = (pathway(session, slug) for slug in ("accelerate", "pivot", "play"))
    enrol(session, people["ada"], accelerate, now=NOW, builder=cora)
    enrol(session, people["ada"], pivot, now=NOW, builder=dan, start_date=dt.date(2030, 1, 10))
    enrol(session, people["bo"], accelerate, now=NOW, builder=cora)
    enrol(session, people["cy"], pivot, now=NOW, builder=dan, start_date=dt.date(2030, 1, 5))
    enrol(session, people["dee"], play, now=NOW, builder=cora)
    enrol(session, people["eve"], pivot, now=NOW)

    for slug in ("a1", "a2", "a3", "old"):
        complete_skill(session, "ada@example.com", slug, now=NOW)
    for slug in ("shared", "p2", "p3"):
        complete_skill(session, "ada@example.com", slug, now=LATER)
        complete_skill(session, "cy@example.com", slug, now=LATER)
    complete_skill(session, "bo@example.com", "a1", now=NOW)
    complete_skill(session, "bo@example.com", "old", now=NOW)
    complete_skill(session, "dee@example.com", "f1", now=NOW)
    complete_skill(session, "eve@example.com", "p2", now=NOW)
    archive_skill(session, "old", now=LATER)
    set_client_status(session, "bo@example.com", "accelerate", "paused", now=LATER)

    coaching = add_session_type(
        session,
        "Pathway Coaching",
        category="pathway",
        builder=cora,
        pathways=["accelerate", "pivot"],
        questions=[
            question("What are you building?"),
            question("Tools", "multi_select", choices=["ChatGPT", "Zapier"]),
        ],
    )
    intro = add_session_type(session, "Free Intro", category="free", builder=dan)
    builders = {"cora": cora, "dan": dan}
    for reference, (slug, status, start, coach, who) in BOOKINGS.items():
        booking: Booking = add_booking(
            session,
            client=people[who],
            session_type=coaching if slug else intro,
            start=start,
            builder=builders[coach],
            status=status,
            reference=reference,
        )
        booking.pathway_id = pathway(session, slug).id if slug else None
        if reference == "BK-B1":
            booking.custom_question_responses = ANSWERS
    session.flush()
    return {**people, **builders}

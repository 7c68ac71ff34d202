"""The dashboard reports against the hand-computed data set of test_reports_factories.

Every figure is checked on SQLite and PostgreSQL, with paused and completed enrolments, an archived skill,
bookings outside the period and bookings with no pathway, and against an empty database.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from bapp_cli.db.models import Enrolment, Pathway, Skill, SkillPathwayLink, User, UserSkillProgress
from bapp_cli.errors import InvalidInput, NotFound
from bapp_cli.services.instants import instant_text
from bapp_cli.services.plain_reads import percent
from bapp_cli.services.progress import TABLE_TIERS
from bapp_cli.services.reports import (
    ANALYTICS_COLUMNS,
    CLIENT_PROGRESS_COLUMNS,
    Period,
    client_progress,
    count_bookings_by_pathway,
    list_bookings_by_pathway,
    one_decimal,
    pathway_analytics,
)
from bapp_cli.services.skills import assign_skills, reset_skill
from tests.services.test_booking_factories import add_booking, add_client, add_session_type
from tests.services.test_progress_factories import LATER, NOW, counting_statements
from tests.services.test_reports_factories import ANSWERS, PERIOD_FROM, PERIOD_TO, dashboard_data

PERIOD = Period(PERIOD_FROM, PERIOD_TO)


def skills(*pairs: tuple[str, int]) -> list[dict[str, object]]:
    names = {"a1": "A1", "a2": "A2", "p2": "P2", "p3": "P3", "shared": "Shared"}
    return [{"skill": slug, "name": names[slug], "completions": count} for slug, count in pairs]


def test_one_decimal_rounds_half_up_and_is_none_over_nothing() -> None:
    assert one_decimal(233, 3) == 77.7
    assert one_decimal(1, 8) == 0.1  # 0.125 → 0.1
    assert one_decimal(3, 16) == 0.2  # 0.1875 → 0.2
    assert one_decimal(1, 20) == 0.1  # 0.05 half up, not to even
    assert one_decimal(2, 3, scale=100) == 66.7
    assert one_decimal(5, 0) is None  # a mean of nothing is absent (CLI.md: null), not 0.0


def test_pathway_analytics_matches_the_hand_computed_figures(session: Session) -> None:
    dashboard_data(session)
    report = pathway_analytics(session, period=PERIOD)
    assert report.as_records() == [
        {
            "pathway": "accelerate",
            "enrolled": 2,
            "active": 1,
            "paused": 1,
            "completed": 0,
            "average_percent": 50.0,  # (80 + 20) / 2
            "completion_rate": 0.0,
            "average_days_to_complete": None,  # none completed: a mean of nothing (CLI.md: absent is null)
            # a1 2, shared 2 (ties by slug), then a2 1 before a3 1; the archived `old` (2) never counts
            "top_skills": skills(("a1", 2), ("shared", 2), ("a2", 1)),
            "bookings": 2,  # B1 (at from) and B2 (cancelled still counts); B5 starts at `to`
        },
        {
            "pathway": "pivot",
            "enrolled": 3,
            "active": 1,
            "paused": 0,
            "completed": 2,
            "average_percent": 77.7,  # (100 + 100 + 33) / 3
            "completion_rate": 66.7,  # 2 / 3
            "average_days_to_complete": 10.5,  # (8 + 13) / 2
            "top_skills": skills(("p2", 3), ("p3", 2), ("shared", 2)),
            "bookings": 1,  # B3; B6 is before the period
        },
        {
            "pathway": "play",
            "enrolled": 1,
            "active": 1,
            "paused": 0,
            "completed": 0,
            "average_percent": 0.0,
            "completion_rate": 0.0,
            "average_days_to_complete": None,
            "top_skills": [],  # f2 was never completed
            "bookings": 0,
        },
        {
            "pathway": None,
            "enrolled": 6,
            "active": 3,
            "paused": 1,
            "completed": 2,
            "average_percent": 55.5,  # (80 + 20 + 100 + 100 + 33 + 0) / 6
            "completion_rate": 33.3,  # 2 / 6
            "average_days_to_complete": 10.5,
            # every skill ranks here: p2 3, then a1, p3, shared at 2 (by slug)
            "top_skills": skills(("p2", 3), ("a1", 2), ("p3", 2)),
            "bookings": 5,  # B1 B2 B3 and the two without a pathway, B4 and B7
        },
    ]
    assert list(report.as_records()[0]) == list(ANALYTICS_COLUMNS)
    assert report.as_records(totals=False) == report.as_records()[:3]


def test_analytics_period_applies_to_bookings_only(session: Session) -> None:
    dashboard_data(session)
    everything = pathway_analytics(session)
    assert [row["bookings"] for row in everything.records] == [3, 2, 0, 7]
    from_only = pathway_analytics(session, period=Period(PERIOD_FROM))
    assert [row["bookings"] for row in from_only.records] == [3, 1, 0, 6]
    to_only = pathway_analytics(session, period=Period(end=PERIOD_FROM))
    assert [row["bookings"] for row in to_only.records] == [0, 1, 0, 1]
    # enrolment figures do not move with the period
    assert [row["average_percent"] for row in from_only.as_records(totals=False)] == [50.0, 77.7, 0.0]


def test_analytics_on_an_empty_database_counts_zeros_and_averages_nothing(session: Session) -> None:
    """Its averages were 0.0 (no progress, done the day they started); CLI.md: an absent value is null."""
    report = pathway_analytics(session, period=PERIOD)
    zeros = {
        "enrolled": 0,
        "active": 0,
        "paused": 0,
        "completed": 0,
        "average_percent": None,
        "completion_rate": None,
        "average_days_to_complete": None,
        "top_skills": [],
        "bookings": 0,
    }
    assert report.as_records() == [{"pathway": slug, **zeros} for slug in ("accelerate", "pivot", "play", None)]


def test_bookings_by_pathway_counts_per_status_in_the_period(session: Session) -> None:
    dashboard_data(session)
    report = count_bookings_by_pathway(session, period=PERIOD)
    assert report.as_records() == [
        {
            "pathway": "accelerate",
            "pending": 0,
            "confirmed": 1,
            "completed": 0,
            "cancelled": 1,
            "no_show": 0,
            "total": 2,
        },
        {"pathway": "pivot", "pending": 0, "confirmed": 0, "completed": 1, "cancelled": 0, "no_show": 0, "total": 1},
        {"pathway": "play", "pending": 0, "confirmed": 0, "completed": 0, "cancelled": 0, "no_show": 0, "total": 0},
        {"pathway": "none", "pending": 1, "confirmed": 1, "completed": 0, "cancelled": 0, "no_show": 0, "total": 2},
        {"pathway": None, "pending": 1, "confirmed": 2, "completed": 1, "cancelled": 1, "no_show": 0, "total": 5},
    ]
    all_time = {row["pathway"]: row["total"] for row in count_bookings_by_pathway(session).as_records()}
    assert all_time == {"accelerate": 3, "pivot": 2, "play": 0, "none": 2, None: 7}


def test_bookings_by_pathway_for_one_builder(session: Session) -> None:
    dashboard_data(session)
    report = count_bookings_by_pathway(session, period=PERIOD, builder="CORA@coach.example")
    assert report.builder == "cora@coach.example"
    assert [(row["pathway"], row["total"]) for row in report.as_records()] == [
        ("accelerate", 2),
        ("pivot", 0),
        ("play", 0),
        ("none", 1),
        (None, 3),
    ]
    with pytest.raises(NotFound):
        count_bookings_by_pathway(session, builder="ada@example.com")  # a client, not a builder


def test_bookings_by_pathway_on_an_empty_database(session: Session) -> None:
    report = count_bookings_by_pathway(session, period=PERIOD)
    assert [(row["pathway"], row["total"]) for row in report.as_records()] == [
        ("accelerate", 0),
        ("pivot", 0),
        ("play", 0),
        ("none", 0),
        (None, 0),
    ]
    assert list_bookings_by_pathway(session, period=PERIOD) == {}


def test_listing_groups_bookings_by_pathway_in_display_order(session: Session) -> None:
    dashboard_data(session)
    groups = list_bookings_by_pathway(session, period=PERIOD)
    assert [(label.key, [view.reference for view in views]) for label, views in groups.items()] == [
        ("accelerate", ["BK-B1", "BK-B2"]),
        ("pivot", ["BK-B3"]),
        ("none", ["BK-B4", "BK-B7"]),  # play has none in the period and is left out
    ]
    first = next(iter(groups.values()))[0]
    assert (first.client, first.session_title, first.category, first.status) == (
        "ada@example.com",
        "Pathway Coaching",
        "pathway",
        "confirmed",
    )
    assert first.custom_question_responses == ANSWERS
    label = next(iter(groups))
    assert label.icon == "🚀" and label.color == "#10B981"
    dan = list_bookings_by_pathway(session, builder="dan@coach.example")
    assert [(label.key, [view.reference for view in views]) for label, views in dan.items()] == [
        ("pivot", ["BK-B6", "BK-B3"]),
        ("none", ["BK-B7"]),
    ]


def test_client_progress_rows_with_counts(session: Session) -> None:
    dashboard_data(session)
    rows = list(client_progress(session)[1])
    assert [list(row) for row in rows] == [list(CLIENT_PROGRESS_COLUMNS)] * 6

    def brief(row: dict[str, object]) -> tuple[object, ...]:
        tiers = tuple((row[f"tier{n}_completed"], row[f"tier{n}_total"], row[f"tier{n}_percent"]) for n in (1, 2, 3))
        return (row["client"], row["pathway"], row["status"], *tiers, row["completed"], row["total"], row["percent"])

    assert [brief(row) for row in rows] == [
        ("ada@example.com", "accelerate", "active", (3, 3, 100), (1, 2, 50), (0, 0, 0), 4, 5, 80),
        ("bo@example.com", "accelerate", "paused", (1, 3, 33), (0, 2, 0), (0, 0, 0), 1, 5, 20),
        ("ada@example.com", "pivot", "completed", (1, 1, 100), (1, 1, 100), (1, 1, 100), 3, 3, 100),
        ("cy@example.com", "pivot", "completed", (1, 1, 100), (1, 1, 100), (1, 1, 100), 3, 3, 100),
        ("eve@example.com", "pivot", "active", (0, 1, 0), (1, 1, 100), (0, 1, 0), 1, 3, 33),
        ("dee@example.com", "play", "active", (0, 1, 0), (0, 0, 0), (0, 0, 0), 0, 1, 0),
    ]
    # badges of that pathway: ada keeps tier 3 of accelerate although its only skill was archived since
    assert [row["badges"] for row in rows] == [2, 1, 4, 4, 1, 0]
    when = [instant_text(LATER), instant_text(NOW)]
    assert [row["last_activity"] for row in rows] == [when[0], when[1], when[0], when[0], when[1], None]


def test_client_progress_filters(session: Session) -> None:
    dashboard_data(session)
    _, records = client_progress(session, builder="cora@coach.example")
    coached = [(row["client"], row["pathway"]) for row in records]
    assert coached == [("ada@example.com", "accelerate"), ("bo@example.com", "accelerate"), ("dee@example.com", "play")]
    pivot = [row["client"] for row in client_progress(session, pathway="PIVOT")[1]]
    assert pivot == ["ada@example.com", "cy@example.com", "eve@example.com"]
    labels, records = client_progress(session, pathway="pivot")
    assert [labels[row["pathway"]].icon for row in records] == ["🔄"] * 3
    with pytest.raises(NotFound):
        client_progress(session, pathway="nope")
    assert list(client_progress(session, builder="dan@coach.example", pathway="play")[1]) == []


def test_a_period_must_not_end_before_it_starts() -> None:
    with pytest.raises(InvalidInput, match=r"^to: "):
        Period(PERIOD_TO, PERIOD_FROM)
    with pytest.raises(InvalidInput, match=r"^to: "):
        Period(PERIOD_FROM, PERIOD_FROM)


def _grow(session: Session, clients: int) -> None:
    """More clients, enrolments, progress and bookings: the report queries must not multiply."""
    from bapp_cli.services.enrolment import enrol
    from bapp_cli.services.skills import complete_skill
    from tests.services.test_progress_factories import pathway

    free = add_session_type(session, "Extra Intro", category="free")
    for index in range(clients):
        user = add_client(session, f"extra{index}@example.com", name=None)
        enrol(session, user, pathway(session, ("accelerate", "pivot", "play")[index % 3]), now=NOW)
        complete_skill(session, user.email, "a1", now=NOW)
        booking = add_booking(
            session, client=user, session_type=free, start=PERIOD_FROM + dt.timedelta(hours=index), status="pending"
        )
        booking.pathway_id = None
    session.flush()


def test_statement_count_does_not_depend_on_data_size(session: Session) -> None:
    dashboard_data(session)

    def counts() -> list[int]:
        sizes = []
        for run in (
            lambda: pathway_analytics(session, period=PERIOD),
            lambda: count_bookings_by_pathway(session, period=PERIOD, builder="cora@coach.example"),
            lambda: list(client_progress(session, builder="cora@coach.example")[1]),
            lambda: list_bookings_by_pathway(session, period=PERIOD),
        ):
            session.expunge_all()
            with counting_statements() as statements:
                run()
            sizes.append(len(statements))
        return sizes

    small = counts()
    _grow(session, 12)
    assert pathway_analytics(session, period=PERIOD).records[-1]["enrolled"] == 18
    assert counts() == small
    assert small[0] <= 5  # pathways, enrolment figures, two top-skill rankings, bookings


def _counted_by_hand(session: Session) -> dict[tuple[str, str], tuple[int, int, tuple[int, ...]]]:
    """Per (client, pathway) enrolment: completed and linked skills and completed per tier (1–3), counted in
    Python from the raw rows — independently of `select_enrolment_counts`, which both reports share."""
    live = set(session.scalars(select(Skill.id).where(Skill.archived.is_(False))))
    links = session.execute(select(SkillPathwayLink.pathway_id, SkillPathwayLink.skill_id, SkillPathwayLink.tier))
    linked: dict[int, list[tuple[int, int]]] = {}
    for pathway_id, skill_id, tier in links:
        if skill_id in live:
            linked.setdefault(pathway_id, []).append((skill_id, tier))
    completed = {
        (row.client_id, row.skill_id)
        for row in session.execute(
            select(UserSkillProgress.client_id, UserSkillProgress.skill_id).where(
                UserSkillProgress.status == "completed"
            )
        )
    }
    counted = {}
    for email, slug, client_id, pathway_id in session.execute(
        select(User.email, Pathway.slug, Enrolment.client_id, Enrolment.pathway_id)
        .join(User, User.id == Enrolment.client_id)
        .join(Pathway, Pathway.id == Enrolment.pathway_id)
    ):
        done = [tier for skill_id, tier in linked.get(pathway_id, []) if (client_id, skill_id) in completed]
        tiers = tuple(done.count(number) for number in TABLE_TIERS)
        counted[(email, slug)] = (len(done), len(linked.get(pathway_id, [])), tiers)
    return counted


def test_both_reports_count_what_the_raw_rows_say(session: Session) -> None:
    """Analytics folds the per-enrolment counts in SQL; client progress streams them from the progress table;
    both come from one query. Each is checked against a count made by hand from the raw rows (archived,
    in-progress and reset skills, a skill shared by two pathways), so a wrong shared query fails here even
    though the two reports would still agree with each other."""
    from bapp_cli.services.progress import progress_records

    dashboard_data(session)
    _grow(session, 9)
    assign_skills(session, "eve@example.com", ["p3"], now=LATER, status="in_progress")
    assign_skills(session, "bo@example.com", ["a2"], now=LATER, status="completed")
    reset_skill(session, "bo@example.com", "a2", now=LATER)
    expected = _counted_by_hand(session)
    # the hand count itself reads the module docstring's table
    assert expected[("ada@example.com", "accelerate")] == (4, 5, (3, 1, 0))
    assert expected[("bo@example.com", "accelerate")] == (1, 5, (1, 0, 0))
    assert expected[("eve@example.com", "pivot")] == (1, 3, (0, 1, 0))

    lines = list(client_progress(session)[1])
    assert {
        (line["client"], line["pathway"]): (
            line["completed"],
            line["total"],
            tuple(line[f"tier{number}_completed"] for number in TABLE_TIERS),
        )
        for line in lines
    } == expected
    # the progress table's records: the counts just checked, as percentages the database divided
    percents = ("tier1_percent", "tier2_percent", "tier3_percent", "percent")
    assert [
        tuple(record[name] for name in ("client", "pathway", *percents)) for record in progress_records(session)
    ] == [
        (
            line["client"],
            line["pathway"],
            *(percent(line[f"tier{n}_completed"], line[f"tier{n}_total"]) for n in TABLE_TIERS),
            percent(line["completed"], line["total"]),
        )
        for line in lines
    ]
    analytics = pathway_analytics(session)
    for row in analytics.as_records(totals=False):
        mine = [counts for (_, slug), counts in expected.items() if slug == row["pathway"]]
        assert row["enrolled"] == len(mine)
        assert row["average_percent"] == one_decimal(sum(percent(done, total) for done, total, _ in mine), len(mine))
    assert analytics.records[-1]["average_percent"] == one_decimal(sum(line["percent"] for line in lines), len(lines))


def test_a_completion_dated_before_its_start_counts_no_days(session: Session) -> None:
    # `clients enroll --start` reads the day in --timezone; completed at once east of UTC, the UTC
    # completion date is the day before: it took no time, not a negative number of days
    pathway = session.scalars(select(Pathway).where(Pathway.slug == "play")).one()
    for email, start, completed in (
        ("east@example.com", dt.date(2031, 1, 10), dt.datetime(2031, 1, 9, 23, tzinfo=dt.UTC)),
        ("west@example.com", dt.date(2031, 1, 10), dt.datetime(2031, 1, 14, 9, tzinfo=dt.UTC)),
    ):
        client = add_client(session, email)
        session.add(
            Enrolment(
                client_id=client.id, pathway_id=pathway.id, status="completed", start_date=start, completed_at=completed
            )
        )
    session.flush()
    play = pathway_analytics(session).as_records()[2]
    assert (play["pathway"], play["completed"], play["average_days_to_complete"]) == ("play", 2, 2.0)  # (0 + 4) / 2


def test_days_to_complete_count_the_completion_day_in_the_commands_zone(session: Session) -> None:
    # README: an enrolment's dates are days in the user's zone (--timezone), the day it is completed among them; the
    # report counted to the completion's UTC date instead, a day short in Auckland (and floored at 0). Started on
    # the 10th there, completed on the 11th at 09:00 (20:00 UTC on the 10th), it took a day; on the 15th at 01:00
    # (12:00 UTC on the 14th), five; on the 14th at 22:00 (09:00 UTC), four.
    pathway = session.scalars(select(Pathway).where(Pathway.slug == "play")).one()
    completions = (dt.datetime(2031, 1, 10, 20), dt.datetime(2031, 1, 14, 12), dt.datetime(2031, 1, 14, 9))
    for number, completed in enumerate(completions):
        client = add_client(session, f"auckland{number}@example.com")
        enrolment = Enrolment(client_id=client.id, pathway_id=pathway.id, status="completed")
        session.add(enrolment)
        enrolment.start_date, enrolment.completed_at = dt.date(2031, 1, 10), completed.replace(tzinfo=dt.UTC)
    session.flush()
    assert pathway_analytics(session).as_records()[2]["average_days_to_complete"] == 2.7  # (0 + 4 + 4) / 3 in UTC
    session.info["zone"] = ZoneInfo("Pacific/Auckland")
    play = pathway_analytics(session).as_records()[2]
    assert (play["pathway"], play["average_days_to_complete"]) == ("play", 3.3)  # (1 + 5 + 4) / 3

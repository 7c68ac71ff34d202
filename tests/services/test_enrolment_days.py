"""An enrolment's dates are days in the command's zone (--timezone) at every door, on SQLite and PostgreSQL.

`clients enroll` and `clients set-status` read today in the user's zone, while `skills assign --pathway`,
bookings (interactive and Calendly's) and the completion rules behind `skills complete` and catalogue changes
read UTC's: east of UTC an enrolment started on the user's today and completed later that day was moved back a
day; west of it one started on the user's tomorrow and completed at once kept its start. Each door now reads the
day through services.enrolment.enrolment_day, in the zone db.engine.unit_of_work keeps on the command's session
(here set on the test's session, as the unit of work sets it). The clock is fixed: 20:00 UTC in Auckland
(UTC+13) is already tomorrow, 05:00 UTC in Pago Pago (UTC-11) still yesterday.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from bapp_cli.db.models import Enrolment
from bapp_cli.services.clients import enroll_client
from bapp_cli.services.skills import assign_skills, complete_skill, unlink_skill
from tests.services.test_booking_factories import audit_entries
from tests.services.test_progress_factories import NOW, client, skill, small_catalogue

EAST = ("Pacific/Auckland", dt.datetime(2030, 1, 20, 20, 0, tzinfo=dt.UTC))  # the 21st there
WEST = ("Pacific/Pago_Pago", dt.datetime(2030, 1, 21, 5, 0, tzinfo=dt.UTC))  # the 20th there


def in_zone(session: Session, zone: str) -> None:
    session.info["zone"] = ZoneInfo(zone)


@pytest.mark.parametrize(("zone", "now"), [EAST, WEST], ids=["east", "west"])
def test_skills_assign_with_a_pathway_starts_the_enrolment_on_the_user_s_today(
    session: Session, zone: str, now: dt.datetime
) -> None:
    in_zone(session, zone)
    small_catalogue(session)
    client(session)
    result, _ = assign_skills(session, "ada@example.com", pathway="accelerate", now=now)
    assert result["enrolled"] == ["accelerate"]
    today = now.astimezone(ZoneInfo(zone)).date()
    assert today != now.date()
    assert session.scalars(select(Enrolment.start_date)).one() == today  # was UTC's day


@pytest.mark.parametrize(
    ("zone", "now", "kept"),
    [(*EAST, dt.date(2030, 1, 21)), (*WEST, dt.date(2030, 1, 20))],
    ids=["east", "west"],
)
def test_skills_complete_judges_a_start_still_ahead_by_the_user_s_day(
    session: Session, zone: str, now: dt.datetime, kept: dt.date
) -> None:
    """An enrolment starting on the 21st, completed by `skills complete`: east of UTC the 21st is the user's today,
    so the start stands (it was brought back to the 20th, UTC's day); west of UTC it is the user's tomorrow, so the
    start is brought back to their today, the 20th (it stayed on the 21st, after the day it was completed)."""
    in_zone(session, zone)
    small_catalogue(session)
    client(session)
    complete_skill(session, "ada@example.com", "shared", now=NOW)
    complete_skill(session, "ada@example.com", "p2", now=NOW)
    enroll_client(session, "ada@example.com", "pivot", now=now, start_date=dt.date(2030, 1, 21))
    outcome, _ = complete_skill(session, "ada@example.com", "p3", now=now)
    assert outcome["pathways_completed"] == ["pivot"]
    enrolment = session.scalars(select(Enrolment)).one()
    assert (enrolment.status, enrolment.start_date, enrolment.completed_at) == ("completed", kept, now)
    moved = {"start_date": ["2030-01-21", kept.isoformat()]} if kept != dt.date(2030, 1, 21) else {}
    assert audit_entries(session, "enrolment")[-1].changes == {"status": ["active", "completed"], **moved}


@pytest.mark.parametrize(
    ("zone", "now", "kept"),
    [(*EAST, dt.date(2030, 1, 21)), (*WEST, dt.date(2030, 1, 20))],
    ids=["east", "west"],
)
def test_a_catalogue_change_judges_a_start_still_ahead_by_the_user_s_day(
    session: Session, zone: str, now: dt.datetime, kept: dt.date
) -> None:
    """`skills unlink` of the one skill left undone completes the enrolment (services.skills._changed): the same
    rule, the same day."""
    in_zone(session, zone)
    small_catalogue(session)
    skill(session, "p4", "pivot:3")
    client(session)
    for slug in ("shared", "p2", "p3"):
        complete_skill(session, "ada@example.com", slug, now=NOW)
    enroll_client(session, "ada@example.com", "pivot", now=now, start_date=dt.date(2030, 1, 21))
    unlink_skill(session, "p4", "pivot", now=now)
    enrolment = session.scalars(select(Enrolment)).one()
    assert (enrolment.status, enrolment.start_date, enrolment.completed_at) == ("completed", kept, now)

"""The commands' enrolment days are the user's (the global --timezone), on SQLite and PostgreSQL.

tests/services/test_enrolment_days.py shows each service's day on a fixed clock, east and west of UTC; these run
the commands, whose unit of work hands the zone on, on the real clock where the day is today (a zone whose day
differs from UTC's now: 14 hours east, or 11 west) and on the file's instants where the day comes from history.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.cli.test_progress_cli import seed
from tests.conftest import Bapp, restore_backup
from tests.services.test_progress_factories import client, small_catalogue

EAST = ("Pacific/Auckland", "2025-01-20T20:00:00Z", "2025-01-21")  # UTC+13: already the 21st there
WEST = ("Pacific/Pago_Pago", "2025-01-21T05:00:00Z", "2025-01-20")  # UTC-11: still the 20th there


def users_today() -> tuple[str, str]:
    """A zone whose today is not UTC's now, and that day."""
    now = dt.datetime.now(dt.UTC)
    zone = "Pacific/Kiritimati" if now.hour >= 10 else "Pacific/Pago_Pago"  # UTC+14, UTC-11
    today = now.astimezone(ZoneInfo(zone)).date()
    assert today != now.date()
    return zone, today.isoformat()


def ada_with_catalogue(bapp: Bapp) -> None:
    seed(bapp, lambda session: (small_catalogue(session), client(session)))


def start_dates(bapp: Bapp, email: str = "ada@example.com") -> dict[str, str]:
    shown = bapp("clients", "show", email, "--json")
    assert shown.exit_code == 0, shown.stderr
    return {item["pathway"]: item["start_date"] for item in shown.json()["enrolments"]}


def test_skills_assign_with_a_pathway_starts_the_enrolment_on_the_user_s_today(bapp: Bapp) -> None:
    ada_with_catalogue(bapp)
    zone, today = users_today()
    result = bapp("--timezone", zone, "skills", "assign", "ada@example.com", "--pathway", "accelerate")
    assert result.exit_code == 0, result.stderr
    assert start_dates(bapp) == {"accelerate": today}  # was UTC's day


def test_import_enrolments_starts_a_row_without_a_start_on_the_user_s_today(bapp: Bapp, tmp_path: Path) -> None:
    ada_with_catalogue(bapp)
    zone, today = users_today()
    rows = tmp_path / "enrolments.csv"
    rows.write_text("client,pathway,status\nada@example.com,accelerate,active\n")
    result = bapp("--timezone", zone, "import", "enrolments", str(rows))
    assert result.exit_code == 0, result.stderr
    assert start_dates(bapp) == {"accelerate": today}  # was UTC's day


def test_import_enrolments_refuses_a_completed_row_that_starts_after_its_completion(bapp: Bapp, tmp_path: Path) -> None:
    """A completed row with no completed_at is completed now; one whose start is still ahead ended before it began
    (it was stamped so), as `clients set-status … completed` refuses one (exit 8): a bad row naming the line and
    the field, nothing written. A start on the user's today, or one before a completed_at given, is taken."""
    ada_with_catalogue(bapp)
    zone, today = users_today()
    tomorrow = (dt.date.fromisoformat(today) + dt.timedelta(days=1)).isoformat()
    rows = tmp_path / "enrolments.csv"
    rows.write_text(
        "client,pathway,status,start_date,completed_at\n"
        f"ada@example.com,accelerate,completed,{today},\n"
        f"ada@example.com,pivot,completed,{tomorrow},\n"
    )
    refused = bapp("--timezone", zone, "import", "enrolments", str(rows))
    assert refused.exit_code == 6, refused.stderr
    assert f"line 3, start_date: {tomorrow} is after the day the enrolment is completed ({today})" in refused.stderr
    assert start_dates(bapp) == {}
    history = tmp_path / "history.csv"
    history.write_text(
        "client,pathway,status,start_date,completed_at\n"
        "ada@example.com,accelerate,completed,2025-01-21,2025-01-20T20:00:00Z\n"  # the 21st in Auckland
        "ada@example.com,pivot,completed,2025-01-22,2025-01-20T20:00:00Z\n"
    )
    refused = bapp("--timezone", "Pacific/Auckland", "import", "enrolments", str(history))
    assert refused.exit_code == 6, refused.stderr
    assert "line 3, start_date: 2025-01-22 is after the day the enrolment is completed (2025-01-21)" in refused.stderr
    # an enrolment as stored is not the row's doing: read in UTC, Auckland's 21st is after its completion's day
    history.write_text(history.read_text().splitlines(keepends=True)[0] + history.read_text().splitlines()[1] + "\n")
    assert bapp("--timezone", "Pacific/Auckland", "import", "enrolments", str(history)).exit_code == 0
    again = bapp("import", "enrolments", str(history), "--json")
    assert again.exit_code == 0 and again.json()["unchanged"] == 1, again.stderr
    assert start_dates(bapp) == {"accelerate": "2025-01-21"}
    rows.write_text(f"client,pathway,status,start_date\nada@example.com,pivot,completed,{today}\n")
    taken = bapp("--timezone", zone, "import", "enrolments", str(rows))
    assert taken.exit_code == 0, taken.stderr
    assert start_dates(bapp) == {"accelerate": "2025-01-21", "pivot": today}
    # a new one without a start starts on the day it was completed (it started today, after it had ended)
    history.write_text("client,pathway,status,completed_at\nada@example.com,play,completed,2025-01-20T20:00:00Z\n")
    assert bapp("--timezone", "Pacific/Auckland", "import", "enrolments", str(history)).exit_code == 0
    assert start_dates(bapp)["play"] == "2025-01-21"


@pytest.mark.parametrize(("zone", "started", "day"), [EAST, WEST], ids=["east", "west"])
def test_import_progress_starts_the_enrolment_it_opens_on_the_user_s_day_of_the_history(
    bapp: Bapp, tmp_path: Path, zone: str, started: str, day: str
) -> None:
    """The enrolment an import opens starts on the day of the earliest history its rows give: UTC's day, a day
    off the user's on either side."""
    ada_with_catalogue(bapp)
    rows = tmp_path / "progress.csv"
    rows.write_text(f"client,skill,pathway,status,started_at\nada@example.com,a1,accelerate,in_progress,{started}\n")
    result = bapp("--timezone", zone, "import", "progress", str(rows))
    assert result.exit_code == 0, result.stderr
    assert start_dates(bapp) == {"accelerate": day}


@pytest.mark.parametrize(("zone", "start", "day"), [EAST, WEST], ids=["east", "west"])
def test_import_bookings_starts_the_enrolment_it_opens_on_the_user_s_day_of_the_booking(
    catalogue: Bapp, tmp_path: Path, zone: str, start: str, day: str
) -> None:
    rows = tmp_path / "bookings.csv"
    rows.write_text(
        "client,session,start_time,status,pathway\n"
        f"ava.chen@client.example,accelerate-foundation-coaching,{start},completed,accelerate\n"
    )
    result = catalogue("--timezone", zone, "import", "bookings", str(rows), "--allow-any-answers")
    assert result.exit_code == 0, result.stderr
    assert start_dates(catalogue, "ava.chen@client.example") == {"accelerate": day}  # was the booking's UTC day


def test_import_enrolments_takes_bapp_s_export_written_under_another_timezone(
    bapp: Bapp, second_database_url: str, tmp_path: Path
) -> None:
    """An enrolment started on Auckland's 21st and completed there that morning (the 20th at 20:00 UTC) is exported
    as bapp keeps it. Imported where --timezone is UTC, its completion falls on the 20th, and the import refused
    bapp's own export as a start after the day it was completed (exit 6). A start_date beside a completed_at the
    file gives is a day in the zone the file was written in: refused only after that instant's latest day in any
    zone (UTC+14), so a start two days late still is."""
    ada_with_catalogue(bapp)
    elsewhere, _ = restore_backup(bapp, second_database_url, tmp_path)  # the catalogue and Ada, no enrolment yet
    history = tmp_path / "history.csv"
    history.write_text(
        "client,pathway,status,start_date,completed_at\n"
        "ada@example.com,accelerate,completed,2025-01-21,2025-01-20T20:00:00Z\n"
    )
    assert bapp("--timezone", "Pacific/Auckland", "import", "enrolments", str(history)).exit_code == 0
    exported = tmp_path / "enrolments.csv"
    assert bapp("export", "enrolments", "-o", str(exported)).exit_code == 0
    imported = elsewhere("import", "enrolments", str(exported))
    assert imported.exit_code == 0, imported.stderr
    assert start_dates(elsewhere) == {"accelerate": "2025-01-21"}
    history.write_text(
        "client,pathway,status,start_date,completed_at\n"
        "ada@example.com,pivot,completed,2025-01-22,2025-01-20T20:00:00Z\n"
    )
    refused = elsewhere("import", "enrolments", str(history))
    assert refused.exit_code == 6, refused.stderr
    assert "line 2, start_date: 2025-01-22 is after the day the enrolment is completed (2025-01-21)" in refused.stderr

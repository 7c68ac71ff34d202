"""`bapp reports …` through the real CLI on both backends: keys, formats, tables, periods, errors.

The figures themselves are checked in tests/services/test_reports.py; these tests check what a script or a
person sees, that the reports write nothing, and that the statement count does not grow with the data.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from bapp_cli.db.engine import make_engine, unit_of_work
from bapp_cli.db.models import AuditEntry, Booking, Enrolment, Pathway, User, UserSkillProgress
from tests.conftest import Bapp
from tests.services.test_booking_factories import add_booking, add_client, add_session_type
from tests.services.test_progress_factories import NOW, counting_statements, pathway
from tests.services.test_reports_factories import PERIOD_FROM, dashboard_data

ANALYTICS_KEYS = [
    "pathway",
    "enrolled",
    "active",
    "paused",
    "completed",
    "average_percent",
    "completion_rate",
    "average_days_to_complete",
    "top_skills",
    "bookings",
]
COUNT_KEYS = ["pathway", "pending", "confirmed", "completed", "cancelled", "no_show", "total"]
PROGRESS_KEYS = [
    "client",
    "pathway",
    "status",
    "tier1_completed",
    "tier1_total",
    "tier1_percent",
    "tier2_completed",
    "tier2_total",
    "tier2_percent",
    "tier3_completed",
    "tier3_total",
    "tier3_percent",
    "completed",
    "total",
    "percent",
    "badges",
    "last_activity",
]
FEBRUARY = ("--from", "2030-02-01", "--to", "2030-03-01")
# tables off a terminal are drawn this wide, whatever the shell running the tests exports
WIDE: dict[str, str | None] = {"COLUMNS": "200"}


def seed(bapp: Bapp, build: Callable[[Session], Any]) -> Any:
    engine = make_engine(bapp.database_url)
    try:
        with unit_of_work(engine, actor="test", command="seed") as session:
            return build(session)
    finally:
        engine.dispose()


def table_counts(bapp: Bapp) -> tuple[int, ...]:
    """Rows in the tables a report could touch by mistake."""
    engine = make_engine(bapp.database_url)
    try:
        with engine.connect() as connection:
            return tuple(
                int(connection.scalar(select(func.count()).select_from(model)) or 0)
                for model in (AuditEntry, Booking, Enrolment, UserSkillProgress)
            )
    finally:
        engine.dispose()


def test_pathway_analytics_json_keys_totals_and_period(bapp: Bapp) -> None:
    seed(bapp, dashboard_data)
    before = table_counts(bapp)
    result = bapp("reports", "pathway-analytics", *FEBRUARY, "--json")
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    rows = result.json()
    assert all(list(row) == ANALYTICS_KEYS for row in rows)
    assert [row["pathway"] for row in rows] == ["accelerate", "pivot", "play", None]
    pivot, totals = rows[1], rows[3]
    assert pivot == {
        "pathway": "pivot",
        "enrolled": 3,
        "active": 1,
        "paused": 0,
        "completed": 2,
        "average_percent": 77.7,
        "completion_rate": 66.7,
        "average_days_to_complete": 10.5,
        "top_skills": [
            {"skill": "p2", "name": "P2", "completions": 3},
            {"skill": "p3", "name": "P3", "completions": 2},
            {"skill": "shared", "name": "Shared", "completions": 2},
        ],
        "bookings": 1,
    }
    assert (totals["enrolled"], totals["average_percent"], totals["bookings"]) == (6, 55.5, 5)
    assert table_counts(bapp) == before  # a report writes nothing, not even an audit row

    no_totals = bapp("reports", "pathway-analytics", "--no-totals", "--format", "jsonl")
    assert [json.loads(line)["pathway"] for line in no_totals.stdout.splitlines()] == ["accelerate", "pivot", "play"]
    # without a period every booking counts
    assert [line["bookings"] for line in bapp("reports", "pathway-analytics", "--json").json()] == [3, 2, 0, 7]


def test_pathway_analytics_csv_encodes_top_skills_as_json(bapp: Bapp) -> None:
    seed(bapp, dashboard_data)
    result = bapp("reports", "pathway-analytics", "--format", "csv")
    assert result.exit_code == 0 and result.stderr == ""
    header, accelerate, *_, totals = list(csv.reader(io.StringIO(result.stdout)))
    assert header == ANALYTICS_KEYS
    assert accelerate[:8] == ["accelerate", "2", "1", "1", "0", "50.0", "0.0", ""]  # none completed: no mean
    assert json.loads(accelerate[8])[0] == {"skill": "a1", "name": "A1", "completions": 2}
    assert totals[0] == "" and totals[1] == "6" and totals[9] == "7"


def test_pathway_analytics_table(bapp: Bapp) -> None:
    seed(bapp, dashboard_data)
    result = bapp("reports", "pathway-analytics", *FEBRUARY, "--format", "table", env=WIDE)
    assert result.exit_code == 0, result.stderr
    text = result.stdout
    assert "Pathway analytics" in text
    lines = {
        line.split()[1] if line.split()[0] in "🚀🔄🎨" else line.split()[0]: line
        for line in text.splitlines()
        if line.strip()
    }
    assert "77.7%" in lines["Pivot"] and "66.7%" in lines["Pivot"] and "10.5" in lines["Pivot"]
    assert "3× P2" in lines["Pivot"]
    assert "█" in lines["Accelerate"] and "50.0%" in lines["Accelerate"]
    assert "55.5%" in lines["Total"] and "33.3%" in lines["Total"]
    assert "period for bookings: bookings starting from 2030-02-01 00:00 UTC up to (not including) 2030-03-01" in text


def test_bookings_by_pathway_json_csv_and_table(bapp: Bapp) -> None:
    seed(bapp, dashboard_data)
    result = bapp("reports", "bookings-by-pathway", *FEBRUARY, "--json")
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    rows = result.json()
    assert all(list(row) == COUNT_KEYS for row in rows)
    assert [(row["pathway"], row["total"]) for row in rows] == [
        ("accelerate", 2),
        ("pivot", 1),
        ("play", 0),
        ("none", 2),
        (None, 5),
    ]
    assert rows[-1] == {
        "pathway": None,
        "pending": 1,
        "confirmed": 2,
        "completed": 1,
        "cancelled": 1,
        "no_show": 0,
        "total": 5,
    }

    piped = bapp("reports", "bookings-by-pathway", "--builder", "dan@coach.example")  # tsv off a terminal
    assert list(csv.reader(io.StringIO(piped.stdout), delimiter="\t")) == [
        COUNT_KEYS,
        ["accelerate", "0", "0", "0", "0", "0", "0"],
        ["pivot", "0", "0", "1", "0", "1", "2"],
        ["play", "0", "0", "0", "0", "0", "0"],
        ["none", "0", "1", "0", "0", "0", "1"],
        ["", "0", "1", "1", "0", "1", "3"],
    ]

    drawn = bapp("reports", "bookings-by-pathway", *FEBRUARY, "--format", "table", env=WIDE)
    assert drawn.exit_code == 0
    lines = [line for line in drawn.stdout.splitlines() if line.strip()]
    accelerate = next(line for line in lines if "Accelerate" in line)
    assert "🚀" in accelerate and "██████ 2" in accelerate
    assert [line.split()[:2] for line in lines if line.split()[0] in ("No", "Total")] == [
        ["No", "pathway"],
        ["Total", "1"],
    ]


def test_bookings_by_pathway_list_groups_bookings_with_answers(bapp: Bapp) -> None:
    seed(bapp, dashboard_data)
    # naive times are read in --timezone: New York midnight is 05:00 UTC, so B1 (00:00 UTC on 1 Feb) falls
    # out of the period and B5 (00:00 UTC on 1 March) falls in
    args = ("--timezone", "America/New_York", "reports", "bookings-by-pathway", "--list", *FEBRUARY)
    result = bapp(*args, "--json")
    assert result.exit_code == 0, result.stderr
    rows = result.json()
    assert [(row["pathway"], row["reference"]) for row in rows] == [
        ("accelerate", "BK-B2"),
        ("accelerate", "BK-B5"),
        ("pivot", "BK-B3"),
        (None, "BK-B4"),
        (None, "BK-B7"),
    ]
    assert {"client", "session_title", "start_time", "status", "category", "custom_question_responses"} <= set(rows[0])

    drawn = bapp(
        "--timezone",
        "Europe/Paris",
        "reports",
        "bookings-by-pathway",
        "--list",
        *FEBRUARY,
        "--format",
        "table",
        env=WIDE,
    )
    assert drawn.exit_code == 0, drawn.stderr
    text = drawn.stdout
    assert text.index("🚀 Accelerate") < text.index("🔄 Pivot") < text.index("No pathway")
    assert "🎨 Play" not in text  # no bookings in the period
    b1 = next(line for line in text.splitlines() if "2030-02-01 01:00 CET" in line)
    assert "ada@example.com" in text and "Pathway Coaching" in b1 and "confirmed" in b1 and "pathway" in b1
    assert "What are you building?: A bakery ordering bot" in text and "Tools: ChatGPT, Zapier" in text
    assert "2 bookings" in text and "1 booking" in text


def test_client_progress_json_tsv_and_table(bapp: Bapp) -> None:
    seed(bapp, dashboard_data)
    result = bapp("reports", "client-progress", "--pathway", "Pivot", "--json")
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    rows = result.json()
    assert all(list(row) == PROGRESS_KEYS for row in rows)
    assert rows[2] == {
        "client": "eve@example.com",
        "pathway": "pivot",
        "status": "active",
        "tier1_completed": 0,
        "tier1_total": 1,
        "tier1_percent": 0,
        "tier2_completed": 1,
        "tier2_total": 1,
        "tier2_percent": 100,
        "tier3_completed": 0,
        "tier3_total": 1,
        "tier3_percent": 0,
        "completed": 1,
        "total": 3,
        "percent": 33,
        "badges": 1,
        "last_activity": "2030-01-15T09:30:00Z",
    }
    piped = bapp("reports", "client-progress", "--builder", "cora@coach.example")
    parsed = list(csv.reader(io.StringIO(piped.stdout), delimiter="\t"))
    assert parsed[0] == PROGRESS_KEYS
    assert [(row[0], row[1], row[2], row[14]) for row in parsed[1:]] == [
        ("ada@example.com", "accelerate", "active", "80"),
        ("bo@example.com", "accelerate", "paused", "20"),
        ("dee@example.com", "play", "active", "0"),
    ]
    drawn = bapp("reports", "client-progress", "--format", "table", env=WIDE)
    assert drawn.exit_code == 0
    ada = next(line for line in drawn.stdout.splitlines() if "ada@example.com" in line and "Accelerate" in line)
    assert "3/3 100%" in ada and "1/2  50%" in ada and "80%" in ada and "4/5" in ada and "🏅 2" in ada


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_report_tables_on_a_narrow_terminal_cut_no_figure_and_drop_no_column_unsaid(bapp: Bapp) -> None:
    # At 80 columns Rich cut the analytics table's figures to '6…' and '0…', and the --list table gave the
    # e-mail its width and the session, status, category and answers none, dropping them without a word
    seed(bapp, dashboard_data)
    statuses = {row["status"] for row in bapp("reports", "bookings-by-pathway", "--list", "--json").json()}
    for width in (80, 60):
        for args in (("pathway-analytics",), ("bookings-by-pathway",), ("bookings-by-pathway", "--list")):
            drawn = bapp("reports", *args, "--format", "table", env={"COLUMNS": str(width)})
            assert drawn.exit_code == 0, drawn.stderr
            assert "…" not in drawn.stdout, drawn.stdout
            assert max(len(line.rstrip()) for line in drawn.stdout.splitlines()) <= width
            if args[-1] == "--list":  # the status is what a booking is judged by: it stays
                assert all(status.replace("_", " ") in drawn.stdout for status in statuses), drawn.stdout
    narrow = bapp("reports", "pathway-analytics", "--format", "table", env={"COLUMNS": "60"})
    assert "not shown at this width: top skills" in narrow.stdout


def test_client_progress_at_60_columns_keeps_the_pathway_a_row_is_told_apart_by(bapp: Bapp) -> None:
    # At 60 columns the pathway was left out though the table fitted with one space between its columns: a client
    # in two pathways showed two rows that could not be told apart
    assert bapp("clients", "add", "maya@client.example", "--name", "Maya").exit_code == 0
    for slug in ("accelerate", "pivot"):
        assert bapp("clients", "enroll", "maya@client.example", slug).exit_code == 0
    drawn = bapp("reports", "client-progress", "--format", "table", env={"COLUMNS": "60"})
    assert drawn.exit_code == 0, drawn.stderr
    lines = drawn.stdout.splitlines()
    assert max(len(line.rstrip()) for line in lines) <= 60 and "…" not in drawn.stdout
    assert "pathway" not in drawn.stdout.partition("not shown at this width:")[2], drawn.stdout
    rows = [line for line in lines if "maya@client.example" in line]
    assert len(rows) == 2 and "🚀" in rows[0] and "Pivot" in rows[1], drawn.stdout


def test_client_progress_table_shows_a_pathway_added_while_the_report_ran(
    bapp: Bapp, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The report reads the pathways' labels, then the enrolments in a second statement. On PostgreSQL (READ
    # COMMITTED) a pathway and an enrolment in it committed between the two made the table's pathway cell a KeyError:
    # exit 1. Committed here exactly there, by another connection.
    from bapp_cli.services import reports

    assert bapp("clients", "add", "maya@client.example", "--name", "Maya").exit_code == 0
    read_labels = reports._pathways

    def labels_then_a_new_pathway(session: Session) -> Any:
        labels = read_labels(session)
        seed(bapp, enrol_in_a_new_pathway)
        return labels

    def enrol_in_a_new_pathway(other: Session) -> None:
        added = Pathway(slug="late-joiners", name="Late Joiners", position=99)
        other.add(added)
        other.flush()
        maya = other.scalars(select(User.id).where(User.email == "maya@client.example")).one()
        other.add(Enrolment(client_id=maya, pathway_id=added.id, start_date=dt.date(2030, 1, 6)))

    monkeypatch.setattr(reports, "_pathways", labels_then_a_new_pathway)
    drawn = bapp("reports", "client-progress", "--format", "table", env=WIDE)
    assert drawn.exit_code == 0, drawn.stderr
    maya = [line for line in drawn.stdout.splitlines() if "maya@client.example" in line]
    assert all("late-joiners" in line for line in maya), drawn.stdout  # shown by its slug when PostgreSQL sees it


PERCENT_COLUMNS = (("avg progress", "average_percent"), ("completion", "completion_rate"))


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_report_figures_are_shown_whole_or_named_as_left_out_at_every_width(bapp: Bapp) -> None:
    # Wrapped to fit, a percent cell (bar, padding, figure: one "word" to Rich) was folded mid-number: at 75
    # columns the completion rates read '0.' over '0%', at 85 '0' over '.0%', at 100 '0.0' over '%'
    seed(bapp, dashboard_data)
    rows = bapp("reports", "pathway-analytics", "--json").json()
    for width in range(60, 131, 5):
        drawn = bapp("reports", "pathway-analytics", "--format", "table", env={"COLUMNS": str(width)}).stdout
        left_out = drawn.partition("not shown at this width:")[2]
        shown = [key for column, key in PERCENT_COLUMNS if column not in left_out]
        expected = sorted(f"{row[key]:.1f}%" for row in rows for key in shown)
        assert sorted(re.findall(r"\d+\.\d%", drawn)) == expected, (width, drawn)


def test_empty_database_gives_zero_counts_and_no_averages(bapp: Bapp) -> None:
    """CLI.md: absent values are null. A mean over nobody was 0.0 (read as "no progress", or "completed the day
    they started"): now null in json, blank in csv, — in a table."""
    analytics = bapp("reports", "pathway-analytics", "--json")
    assert analytics.exit_code == 0 and analytics.stderr == ""
    averages = ("average_percent", "completion_rate", "average_days_to_complete")
    assert [(row["pathway"], row["enrolled"], *(row[key] for key in averages)) for row in analytics.json()] == [
        (pathway, 0, None, None, None) for pathway in ("accelerate", "pivot", "play", None)
    ]
    header, *lines = list(csv.reader(io.StringIO(bapp("reports", "pathway-analytics", "--format", "csv").stdout)))
    assert {line[header.index(key)] for line in lines for key in averages} == {""}
    drawn = bapp("reports", "pathway-analytics", "--format", "table", env=WIDE).stdout
    assert "0.0" not in drawn and drawn.count("—") == 4 * 4  # three averages and top skills, on four rows
    counts = bapp("reports", "bookings-by-pathway", "--json")
    assert counts.exit_code == 0 and {row["total"] for row in counts.json()} == {0}
    assert bapp("reports", "bookings-by-pathway", "--list", "--json").json() == []
    assert bapp("reports", "client-progress", "--json").json() == []
    for command in ("pathway-analytics", "bookings-by-pathway", "client-progress"):
        drawn = bapp("reports", command, "--format", "table", env=WIDE)
        assert drawn.exit_code == 0 and drawn.stderr == ""


def test_pathway_analytics_counts_days_to_the_completion_day_in_timezone(bapp: Bapp) -> None:
    # an enrolment's days are days in --timezone (README); started on the 10th in Auckland and completed there on
    # the 11th at 09:00 (20:00 UTC on the 10th), it took a day, which the report gave as 0 (the UTC date, floored)
    def completed_in_auckland(session: Session) -> None:
        user, play = add_client(session, "kiri@example.com"), pathway(session, "play")
        start, completed = dt.date(2031, 1, 10), dt.datetime(2031, 1, 10, 20, tzinfo=dt.UTC)
        session.add(Enrolment(client_id=user.id, pathway_id=play.id, status="completed", start_date=start))
        session.flush()
        session.execute(update(Enrolment).where(Enrolment.client_id == user.id).values(completed_at=completed))

    seed(bapp, completed_in_auckland)
    for zone, days in (("Pacific/Auckland", 1.0), ("UTC", 0.0), ("America/Los_Angeles", 0.0)):
        result = bapp("--timezone", zone, "reports", "pathway-analytics", "--json")
        assert result.exit_code == 0, result.stderr
        assert [(row["pathway"], row["average_days_to_complete"]) for row in result.json()][2:] == [
            ("play", days),
            (None, days),
        ], zone


def test_days_to_complete_in_a_zone_postgresql_also_spells_as_a_fixed_abbreviation(bapp: Bapp) -> None:
    # CET is an IANA zone with summer time and, to PostgreSQL's AT TIME ZONE, the abbreviation of a fixed UTC+1:
    # completed at 00:30 on 11 June in CET (CEST, 22:30 UTC on the 10th), a day after its start on the 10th, the
    # report gave 0 days on PostgreSQL (23:30 on the 10th) and 1 on SQLite
    def completed_in_cet_summer(session: Session) -> None:
        user, play = add_client(session, "ilse@example.com"), pathway(session, "play")
        start, completed = dt.date(2031, 6, 10), dt.datetime(2031, 6, 10, 22, 30, tzinfo=dt.UTC)
        session.add(Enrolment(client_id=user.id, pathway_id=play.id, status="completed", start_date=start))
        session.flush()
        session.execute(update(Enrolment).where(Enrolment.client_id == user.id).values(completed_at=completed))

    seed(bapp, completed_in_cet_summer)
    for zone in ("CET", "Europe/Berlin"):
        result = bapp("--timezone", zone, "reports", "pathway-analytics", "--json")
        assert result.exit_code == 0, result.stderr
        assert [row["average_days_to_complete"] for row in result.json()][2:] == [1.0, 1.0], zone


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_timezone_the_postgresql_server_does_not_know_is_exit_6_not_1(bapp: Bapp, tmp_path: Path) -> None:
    # the completion's day is read in --timezone by the server's AT TIME ZONE: a zone in Python's data but not in
    # the server's (a new zone, older tzdata there; here one of Python's own making) was exit 1, a DataError
    (tmp_path / "zones" / "Atlantis").mkdir(parents=True)
    (tmp_path / "zones" / "Atlantis" / "Poseidonia").write_bytes(
        Path("/usr/share/zoneinfo/Pacific/Auckland").read_bytes()
    )
    seed(bapp, dashboard_data)
    zones = {"PYTHONTZPATH": f"{tmp_path / 'zones'}{os.pathsep}/usr/share/zoneinfo"}
    result = bapp.process("--timezone", "Atlantis/Poseidonia", "reports", "pathway-analytics", "--json", env=zones)
    assert result.exit_code == 6 and result.stdout == "", result.stderr
    assert result.stderr.startswith("Error: the database does not know the timezone 'Atlantis/Poseidonia'\n")


def test_bad_input_and_unknown_names_have_documented_exit_codes(bapp: Bapp) -> None:
    seed(bapp, dashboard_data)
    # not a date and time: a bad flag value, exit 2 as CLI.md has it (it was 6, an invalid row's code)
    bad = bapp("reports", "pathway-analytics", "--from", "February", "--json")
    assert bad.exit_code == 2 and bad.stdout == ""
    assert "Error: Invalid value for '--from': 'February' is not a valid date and time" in bad.stderr
    assert json.loads(bad.stderr.splitlines()[-1])["error"]["code"] == "usage"
    backwards = bapp("reports", "bookings-by-pathway", "--from", "2030-03-01", "--to", "2030-02-01")
    assert backwards.exit_code == 6 and backwards.stdout == ""
    assert backwards.stderr.startswith("Error: to: 2030-02-01T00:00:00Z must be after from (2030-03-01T00:00:00Z)\n")
    zone = bapp("--timezone", "Mars/Olympus", "reports", "pathway-analytics", "--from", "2030-02-01")
    assert zone.exit_code == 2 and zone.stdout == ""  # a bad flag value (CLI.md), as --from's; it was 6
    nobody = bapp("reports", "bookings-by-pathway", "--builder", "nobody@coach.example")
    assert nobody.exit_code == 7 and nobody.stdout == ""
    assert "Error: no builder with e-mail 'nobody@coach.example'" in nobody.stderr
    unknown = bapp("reports", "client-progress", "--pathway", "juggling")
    assert unknown.exit_code == 7 and unknown.stdout == "" and "no pathway 'juggling'" in unknown.stderr


def test_help_defines_every_figure() -> None:
    from typer.testing import CliRunner

    from bapp_cli.cli.app import app

    runner = CliRunner()
    analytics = runner.invoke(app, ["reports", "pathway-analytics", "--help"]).output
    for text in (
        "completed ÷ enrolled",
        "average_days_to_complete",
        "each client weighs the same",
        "[--from, --to) applies to bookings only",
        "Examples:",
    ):
        assert text in analytics
    counts = runner.invoke(app, ["reports", "bookings-by-pathway", "--help"]).output
    assert '"none" for bookings without a pathway' in counts and "null for the totals object" in counts
    progress = runner.invoke(app, ["reports", "client-progress", "--help"]).output
    assert "rounded down to a whole percent" in progress and "Examples:" in progress


def test_statements_do_not_grow_with_the_data(bapp: Bapp) -> None:
    seed(bapp, dashboard_data)
    commands = [
        ("reports", "pathway-analytics", *FEBRUARY, "--json"),
        ("reports", "bookings-by-pathway", "--builder", "cora@coach.example", "--json"),
        ("reports", "client-progress", "--json"),
    ]

    def count() -> list[int]:
        sizes = []
        for command in commands:
            with counting_statements() as statements:
                assert bapp(*command).exit_code == 0
            sizes.append(len(statements))
        return sizes

    small = count()
    with counting_statements() as statements:
        assert bapp(*commands[0]).exit_code == 0
    # pathway-analytics sends the same four queries on both backends (SQLite's look for a completion with no date
    # is a sum in the main aggregate, with a naming query only when it is not 0), PostgreSQL's set_config of the
    # transaction's TimeZone before them; P4 counts them and SQLite's BEGIN, and the transaction's at-head read,
    # asked once, first (db.engine.unit_of_work)
    sent = [text for text in statements if text != "BEGIN"]
    postgresql = bapp.database_url.startswith("postgresql")
    assert (sent[0], len(sent)) == ("SELECT version_num FROM alembic_version", 6 if postgresql else 5), sent

    def grow(session: Session) -> None:
        from bapp_cli.services.enrolment import enrol
        from bapp_cli.services.skills import complete_skill

        intro = add_session_type(session, "More Intro", category="free")
        for index in range(15):
            user = add_client(session, f"more{index}@example.com", name=None)
            enrol(session, user, pathway(session, "pivot"), now=NOW)
            complete_skill(session, user.email, "p2", now=NOW)
            add_booking(session, client=user, session_type=intro, start=PERIOD_FROM, status="confirmed")

    seed(bapp, grow)
    assert bapp(*commands[0]).json()[1]["enrolled"] == 18
    assert count() == small

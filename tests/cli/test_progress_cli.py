"""`bapp progress show|table` and `bapp badges list` through the real CLI, on both backends."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from bapp_cli.db.engine import make_engine, unit_of_work
from bapp_cli.db.locks import COMPLETION_RULES, lock_id
from bapp_cli.db.models import Badge, Enrolment
from bapp_cli.services.clients import enroll_client
from bapp_cli.services.enrolment import enrol
from bapp_cli.services.skills import archive_skill, assign_skills, complete_skill, link_skill
from tests.conftest import Bapp, eventually
from tests.postgres_server import waits_for_lock
from tests.services.test_booking_factories import audit_entries
from tests.services.test_progress_factories import (
    LATER,
    NOW,
    builder,
    client,
    counting_statements,
    pathway,
    small_catalogue,
)

SHOW_KEYS = [
    "pathway",
    "name",
    "start_date",
    "status",
    "builder",
    "completed_at",
    "progress",
    "tiers",
    "completed",
    "total",
    "percent",
]
TABLE_KEYS = [
    "client",
    "pathway",
    "status",
    "tier1_percent",
    "tier2_percent",
    "tier3_percent",
    "percent",
    "badges",
    "last_activity",
]


def seed(bapp: Bapp, build: Callable[[Session], Any], **command: str) -> Any:
    """`build` in a unit of work as a command's, with its `command` settings (the zone: --timezone)."""
    engine = make_engine(bapp.database_url)
    try:
        with unit_of_work(engine, actor="test", command="seed", **command) as session:
            return build(session)
    finally:
        engine.dispose()


def ada_in_accelerate(session: Session) -> None:
    small_catalogue(session)
    coach = builder(session, "bob@example.com")
    ada = client(session, "ada@example.com")
    enrol(session, ada, pathway(session, "accelerate"), now=NOW, builder=coach)
    for slug in ("a1", "a2", "a3"):
        complete_skill(session, ada.email, slug, now=NOW)
    assign_skills(session, ada.email, ["a4"], now=LATER, status="in_progress")
    complete_skill(session, ada.email, "f1", now=LATER, via="assessment")


def test_progress_show_json_is_the_client_pathway_shape(bapp: Bapp) -> None:
    seed(bapp, ada_in_accelerate)
    result = bapp("progress", "show", "ADA@example.com", "--json")
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    accelerate, fundamentals = result.json()
    assert list(accelerate) == SHOW_KEYS and list(fundamentals) == SHOW_KEYS
    done = {"status": "completed", "completed_at": "2030-01-15T09:30:00Z", "completed_via": "manual"}
    assert accelerate == {
        "pathway": "accelerate",
        "name": "Accelerate",
        "start_date": "2030-01-15",
        "status": "active",
        "builder": "bob@example.com",
        "completed_at": None,
        "progress": {
            "tier1": [{"skill": slug, "name": slug.title(), **done} for slug in ("a1", "a2", "a3")],
            "tier2": [
                {"skill": "a4", "name": "A4", "status": "in_progress", "completed_at": None, "completed_via": None},
                {
                    "skill": "shared",
                    "name": "Shared",
                    "status": "not_started",
                    "completed_at": None,
                    "completed_via": None,
                },
            ],
            "tier3": [],
        },
        "tiers": [
            {"tier": 1, "name": "Foundation", "completed": 3, "total": 3, "percent": 100},
            {"tier": 2, "name": "Application", "completed": 0, "total": 2, "percent": 0},
            {"tier": 3, "name": "Mastery", "completed": 0, "total": 0, "percent": 0},
        ],
        "completed": 3,
        "total": 5,
        "percent": 60,
    }
    assert fundamentals["pathway"] is None and fundamentals["name"] == "Fundamentals"
    assert (fundamentals["completed"], fundamentals["total"], fundamentals["percent"]) == (1, 2, 50)
    assert [item["completed_via"] for item in fundamentals["progress"]["fundamentals"]] == ["assessment", None]

    only = bapp("progress", "show", "ada@example.com", "--pathway", "Accelerate", "--json")
    assert [item["pathway"] for item in only.json()] == ["accelerate"]


def test_progress_show_tree_on_a_terminal_layout(bapp: Bapp) -> None:
    seed(bapp, ada_in_accelerate)
    result = bapp("--timezone", "Europe/Paris", "progress", "show", "ada@example.com", "--format", "table")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Ada  <ada@example.com>")
    text = result.stdout
    assert "Accelerate (accelerate)  active  coach bob@example.com  since 2030-01-15  3/5  ██████░░░░ 60%" in text
    assert "Tier 1 · Foundation  3/3  ██████████ 100%" in text
    assert "Tier 3 · Mastery  0/0  ░░░░░░░░░░ 0%" in text
    assert "✔ A1 (a1)  via manual" in text and "◐ A4 (a4)" in text and "○ Shared (shared)" in text
    assert "★ Fundamentals  1/2  █████░░░░░ 50%" in text
    assert "🏅 Accelerate · Foundation  2030-01-15 10:30 CET" in text
    assert "Badges (1)" in text


def test_a_tier_whose_skills_are_all_archived_reads_as_having_no_active_skills(bapp: Bapp) -> None:
    # tier 3's one skill archived, the tree and the tier badge's criteria said "no skills linked yet" of a tier that
    # has one linked: what is true of both a tier without skills and this one is that it has no active skills
    seed(bapp, ada_in_accelerate)
    assert bapp("skills", "add", "gone", "--name", "Gone", "--link", "accelerate:3").exit_code == 0
    assert bapp("skills", "archive", "gone", "--yes").exit_code == 0
    tree = bapp("progress", "show", "ada@example.com", "--format", "table").stdout
    tier_three = tree[tree.index("Tier 3 · Mastery") :].splitlines()
    assert "no active skills" in tier_three[1] and "linked" not in tree
    achievements = bapp("badges", "achievements", "--json")
    assert achievements.exit_code == 0, achievements.stderr
    criteria = {row["key"]: row["criteria"] for row in achievements.json()}
    assert criteria["tier:accelerate:3"].endswith(": no active skills.")
    assert criteria["pathway:accelerate"].endswith("; Mastery (no active skills).")


def test_progress_table_json_csv_and_filters(bapp: Bapp) -> None:
    def build(session: Session) -> None:
        ada_in_accelerate(session)
        grace = client(session, "grace@example.com", "pivot", "accelerate")
        complete_skill(session, grace.email, "shared", now=NOW)

    seed(bapp, build)
    result = bapp("progress", "table", "--json")
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    rows = result.json()
    assert all(list(row) == TABLE_KEYS for row in rows)
    assert rows == [
        {
            "client": "ada@example.com",
            "pathway": "accelerate",
            "status": "active",
            "tier1_percent": 100,
            "tier2_percent": 0,
            "tier3_percent": 0,
            "percent": 60,
            "badges": 1,
            "last_activity": "2030-01-18T09:30:00Z",
        },
        {
            "client": "grace@example.com",
            "pathway": "accelerate",
            "status": "active",
            "tier1_percent": 0,
            "tier2_percent": 50,
            "tier3_percent": 0,
            "percent": 20,
            "badges": 0,
            "last_activity": "2030-01-15T09:30:00Z",
        },
        {
            "client": "grace@example.com",
            "pathway": "pivot",
            "status": "active",
            "tier1_percent": 100,
            "tier2_percent": 0,
            "tier3_percent": 0,
            "percent": 33,
            "badges": 1,
            "last_activity": "2030-01-15T09:30:00Z",
        },
    ]
    piped = bapp("progress", "table", "--pathway", "PIVOT")  # tsv when stdout is not a terminal
    assert piped.exit_code == 0
    assert list(csv.reader(io.StringIO(piped.stdout), delimiter="\t")) == [
        TABLE_KEYS,
        ["grace@example.com", "pivot", "active", "100", "0", "0", "33", "1", "2030-01-15T09:30:00Z"],
    ]
    coached = bapp("progress", "table", "--builder", "bob@example.com", "--format", "jsonl")
    assert [line.count('"client"') for line in coached.stdout.splitlines()] == [1]
    assert bapp("progress", "table", "--status", "completed", "--json").json() == []
    drawn = bapp("progress", "table", "--format", "table")
    assert "██████░░░░  60%" in drawn.stdout and "grace@example.com" in drawn.stdout


def test_progress_errors_have_documented_exit_codes(bapp: Bapp) -> None:
    seed(bapp, ada_in_accelerate)
    missing = bapp("progress", "show", "nobody@example.com", "--json")
    assert missing.exit_code == 7 and missing.stdout == ""
    assert "Error: no client with e-mail 'nobody@example.com'" in missing.stderr
    assert '"code": "client_not_found"' in missing.stderr
    bad_status = bapp("progress", "table", "--status", "done")
    assert bad_status.exit_code == 2 and bad_status.stdout == ""  # CLI.md: a bad flag value is a usage error
    assert "Error: Invalid value for '--status': 'done' is not one of active, paused, completed" in bad_status.stderr
    assert bapp("progress", "table", "--pathway", "nowhere").exit_code == 7
    assert bapp("progress", "table", "--builder", "ada@example.com").exit_code == 7
    assert bapp("progress", "show", "not-an-email").exit_code == 6


def test_badges_list(bapp: Bapp) -> None:
    seed(bapp, ada_in_accelerate)
    result = bapp("badges", "list", "ada@example.com", "--json")
    assert result.exit_code == 0, result.stderr
    badge = {"key": "tier:accelerate:1", "name": "Accelerate · Foundation", "awarded_at": "2030-01-15T09:30:00Z"}
    assert result.json() == [badge | {"revoked_at": None}]

    def badge_counts() -> list[int]:
        """The badges column of `progress table` and `reports client-progress` (ada's one enrolment)."""
        tables = (("progress", "table"), ("reports", "client-progress"))
        return [row["badges"] for command in tables for row in bapp(*command, "--json").json()]

    assert badge_counts() == [1, 1]
    # a revoked badge stays listed, marked with when its credential was revoked
    revoked = bapp("badges", "revoke", "ada@example.com", "tier:accelerate:1", "--reason", "awarded in error", "--json")
    assert revoked.exit_code == 0, revoked.stderr
    assert badge_counts() == [0, 0]  # the tables count the badges the client holds: a revoked one is not
    listed = bapp("badges", "list", "ada@example.com", "--json").json()
    assert [(row["key"], row["revoked_at"] is not None) for row in listed] == [("tier:accelerate:1", True)]
    assert listed[0]["revoked_at"] == revoked.json()["revoked_at"]
    # and so in every format: TSV, CSV and the table listed only key, name and awarded_at, a revoked badge as held
    tsv = bapp("badges", "list", "ada@example.com", "--format", "tsv").stdout.splitlines()
    assert tsv == [
        "key\tname\tawarded_at\trevoked_at",
        f"tier:accelerate:1\t{badge['name']}\t{badge['awarded_at']}\t{listed[0]['revoked_at']}",
    ]
    assert "revoked at" in bapp("badges", "list", "ada@example.com", "--format", "table").stdout
    shown = bapp("clients", "show", "ada@example.com", "--format", "table", env={"COLUMNS": "200"}).stdout
    assert "Badges: Accelerate · Foundation (revoked)" in shown  # not listed as one held
    tree = bapp("--timezone", "UTC", "progress", "show", "ada@example.com", "--format", "table").stdout
    assert "Accelerate · Foundation  2030-01-15 09:30 UTC, revoked " in tree
    assert bapp("badges", "revoke", "ada@example.com", "tier:accelerate:1", "--reason", "again").exit_code == 8
    # a renamed pathway renames its badges; the badge itself is untouched
    assert bapp("pathways", "update", "accelerate", "--name", "Turbo").exit_code == 0
    assert bapp("badges", "list", "ada@example.com", "--json").json()[0]["name"] == "Turbo · Foundation"
    assert bapp("badges", "list", "nobody@example.com").exit_code == 7


def test_progress_table_statement_count_does_not_grow_with_clients(bapp: Bapp) -> None:
    def clients(first: int, count: int) -> Callable[[Session], None]:
        def build(session: Session) -> None:
            for index in range(first, first + count):
                user = client(session, f"client{index}@example.com", "accelerate", "pivot")
                complete_skill(session, user.email, "a1", now=NOW)
                complete_skill(session, user.email, "shared", now=NOW)

        return build

    seed(bapp, small_catalogue)
    seed(bapp, clients(0, 2))
    with counting_statements() as few:
        small = bapp("progress", "table", "--json")
    seed(bapp, clients(2, 10))
    with counting_statements() as many:
        large = bapp("progress", "table", "--json")
    assert (len(small.json()), len(large.json())) == (4, 24)
    assert len(few) == len(many)
    assert len(many) <= 10


def test_concurrent_completions_of_a_tier_award_its_badge_once(bapp: Bapp) -> None:
    """Two processes complete the last two skills of a tier at once: whichever commits second must see
    the other's completion and award the badge (per-client lock on PostgreSQL, IMMEDIATE on SQLite)."""

    def build(session: Session) -> None:
        small_catalogue(session)
        ada = client(session, "ada@example.com", "accelerate")
        complete_skill(session, ada.email, "a1", now=NOW)

    seed(bapp, build)
    first = bapp.popen("skills", "complete", "ada@example.com", "a2", "--json")
    second = bapp.popen("skills", "complete", "ada@example.com", "a3", "--json")
    outputs = [process.communicate(timeout=60) for process in (first, second)]
    assert [process.returncode for process in (first, second)] == [0, 0], outputs
    import json

    awarded = [json.loads(stdout)["badges_awarded"] for stdout, _ in outputs]
    assert sorted(awarded) == [[], ["tier:accelerate:1"]]

    def count(session: Session) -> int:
        return session.scalar(select(func.count()).select_from(Badge).where(Badge.key == "tier:accelerate:1")) or 0

    assert seed(bapp, count) == 1
    assert seed(bapp, lambda session: session.scalar(select(func.count()).select_from(Enrolment))) == 1


def until_it_waits(bapp: Bapp, engine: Engine, process: subprocess.Popen[str]) -> None:
    """Until `process` (a command) waits for a lock the test's transaction holds, or ends; on SQLite at once: its
    writer waits for the test's whole transaction anyway."""
    deadline = time.monotonic() + 30
    while not bapp.database_url.startswith("sqlite") and process.poll() is None and time.monotonic() < deadline:
        with engine.connect() as connection:
            if connection.scalar(text("SELECT count(*) FROM pg_locks WHERE NOT granted")):
                return
        time.sleep(0.05)


def test_a_completion_while_a_skill_is_archived_still_awards_the_badge(bapp: Bapp) -> None:
    """Ada has done a1 of tier 1 (a1, a2, a3). An admin archives a3 while Ada completes a2 in another process:
    either way round the tier is now done, so its badge must be awarded. On PostgreSQL each transaction
    checked the criteria around the other's uncommitted change — the archive saw a2 not done, the completion
    saw a3 still counted — and neither awarded it: the badge was lost for good (criteria are checked only at
    the moment they are met). Now the two checks take turns, the second seeing the first's change."""

    def build(session: Session) -> None:
        small_catalogue(session)
        ada = client(session, "ada@example.com", "accelerate")
        complete_skill(session, ada.email, "a1", now=NOW)

    seed(bapp, build)
    engine = make_engine(bapp.database_url)
    try:
        with unit_of_work(engine, actor="test", command="archive") as admin:
            assert archive_skill(admin, "a3", now=NOW).badges_awarded == 0  # a2 is not done yet
            completing = bapp.popen("skills", "complete", "ada@example.com", "a2", "--json")
            until_it_waits(bapp, engine, completing)  # for the archive's checks to end
        stdout, stderr = completing.communicate(timeout=60)
    finally:
        engine.dispose()
    assert completing.returncode == 0, stderr
    assert json.loads(stdout)["badges_awarded"] == ["tier:accelerate:1"]
    held = seed(bapp, lambda session: list(session.scalars(select(Badge.key))))
    assert held == ["tier:accelerate:1"]


def test_a_completion_while_a_skill_is_linked_to_the_tier_awards_no_badge(bapp: Bapp) -> None:
    """Ada has done a1 and a2 of tier 1 (a1, a2, a3). An admin links a4 to tier 1 while Ada completes a3 in
    another process: the completion's checks wait for the link's and see a4 in the tier, so no badge is awarded
    for a tier Ada has not finished, and her percent (3 of 4) agrees."""

    def build(session: Session) -> None:
        small_catalogue(session)
        ada = client(session, "ada@example.com", "accelerate")
        for done in ("a1", "a2"):
            complete_skill(session, ada.email, done, now=NOW)

    seed(bapp, build)
    engine = make_engine(bapp.database_url)
    try:
        with unit_of_work(engine, actor="test", command="link") as admin:
            assert link_skill(admin, "a4", "accelerate:1", now=NOW).badges_awarded == 0
            completing = bapp.popen("skills", "complete", "ada@example.com", "a3", "--json")
            until_it_waits(bapp, engine, completing)
        stdout, stderr = completing.communicate(timeout=60)
    finally:
        engine.dispose()
    assert completing.returncode == 0, stderr
    assert json.loads(stdout)["badges_awarded"] == []
    assert seed(bapp, lambda session: list(session.scalars(select(Badge.key)))) == []
    tiers = bapp("progress", "show", "ada@example.com", "--json").json()[0]["tiers"]
    assert (tiers[0]["completed"], tiers[0]["total"], tiers[0]["percent"]) == (3, 4, 75)


@pytest.mark.parametrize("door", ["clients enroll", "import enrolments"])
def test_an_enrolment_made_while_its_pathway_is_finished_is_completed(bapp: Bapp, tmp_path: Path, door: str) -> None:
    """Ada has done shared and p2 of pivot's three tiers and is not enrolled in it. She completes p3 while
    another process enrols her there (`clients enroll`, or `import enrolments`): either way round she has
    finished the pathway, so the enrolment must be completed. On PostgreSQL the enrolment's completion rules
    read around the completion's uncommitted row, and the completion's did not see the uncommitted enrolment:
    it stayed active at 100 %, for good. Now every door's rules take turns (db.locks.COMPLETION_RULES)."""

    def build(session: Session) -> None:
        small_catalogue(session)
        for slug in ("shared", "p2"):
            complete_skill(session, client(session, "ada@example.com").email, slug, now=NOW)

    seed(bapp, build)
    source = tmp_path / "enrolments.csv"
    source.write_text("client,pathway,status\nada@example.com,pivot,active\n")
    command = [*door.split(), *(["ada@example.com", "pivot"] if door == "clients enroll" else [str(source)])]
    engine = make_engine(bapp.database_url)
    try:
        with unit_of_work(engine, actor="test", command="complete") as coach:
            completed, _ = complete_skill(coach, "ada@example.com", "p3", now=NOW)
            assert completed["pathways_completed"] == []  # not enrolled yet
            enrolling = bapp.popen(*command, "--json")
            until_it_waits(bapp, engine, enrolling)  # its rules, for the completion's to commit
        _, stderr = enrolling.communicate(timeout=60)
    finally:
        engine.dispose()
    assert enrolling.returncode == 0, stderr
    (enrolment,) = bapp("clients", "show", "ada@example.com", "--json").json()["enrolments"]
    assert (enrolment["pathway"], enrolment["status"], enrolment["percent"]) == ("pivot", "completed", 100)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # SQLite's writers take turns whole
def test_a_command_the_server_ends_to_break_a_deadlock_is_busy_exit_75(bapp: Bapp) -> None:
    """Two writers each waiting for a lock the other holds: PostgreSQL ends one (SQLSTATE 40P01), whose command
    said "database error: deadlock detected", exit 5, as for a database to fix. The other went on, and the
    same command works when run again: busy, exit 75. Here a session holding the completion rules' key asks for
    the progress key a `skills complete` holds while it waits for the rules' key (the order a Calendly pull that
    ran the rules for one enrolment, or an import that ran them for one section, may meet)."""
    ada = seed(bapp, lambda session: (small_catalogue(session), client(session, "ada@example.com").id)[1])
    engine = make_engine(bapp.database_url)
    try:
        with engine.connect() as admin:  # the command looks for a deadlock 3 s into its wait, the holder 60 s into its
            admin.execute(
                text(f"ALTER DATABASE \"{bapp.database_url.rpartition('/')[2]}\" SET deadlock_timeout = '3s'")
            )
            admin.commit()
        with engine.connect() as holder:
            holder.execute(text("SET deadlock_timeout = '60s'"))
            holder.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_id(COMPLETION_RULES)})
            completing = bapp.popen("skills", "complete", "ada@example.com", "p3", "--json")
            eventually(
                lambda: waits_for_lock(engine, "%pg_advisory_xact_lock%"), "the completion to wait for the rules"
            )
            holder.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_id(f"progress:{ada}")})  # the cycle
            holder.rollback()
        _, stderr = completing.communicate(timeout=60)
    finally:
        engine.dispose()
    assert completing.returncode == 75, stderr
    assert stderr.startswith("Error: the database is busy: deadlock detected"), stderr
    assert bapp("skills", "complete", "ada@example.com", "p3").exit_code == 0  # run again, it works


@pytest.mark.parametrize("door", ["skills complete", "import progress", "clients enroll"])
def test_an_automatic_completion_brings_a_start_still_ahead_back_to_its_day(
    bapp: Bapp, tmp_path: Path, door: str
) -> None:
    """Ada's enrolment in pivot starts next month when she finishes the pathway: by `skills complete` of its
    last skill, an `import progress` row completing it, or enrolling her (from then) once she has done it all.
    None of these doors can refuse the completion, and it stamped `completed_at` now, before the start: the
    enrolment ended before it began. It now starts the (UTC) day it is completed, in the same transaction, and
    the audit entry of the completion names both start dates; the analytics count 0 days, not fewer."""
    ahead = (dt.datetime.now(dt.UTC) + dt.timedelta(days=40)).date()

    def build(session: Session) -> None:
        small_catalogue(session)
        ada = client(session, "ada@example.com")
        for slug in ("shared", "p2", *(["p3"] if door == "clients enroll" else [])):
            complete_skill(session, ada.email, slug, now=NOW)
        if door != "clients enroll":
            enrol(session, ada, pathway(session, "pivot"), now=NOW, start_date=ahead)

    seed(bapp, build)
    source = tmp_path / "progress.csv"
    source.write_text("client,skill,status\nada@example.com,p3,completed\n")
    command = {
        "skills complete": ["skills", "complete", "ada@example.com", "p3"],
        "import progress": ["import", "progress", str(source)],
        "clients enroll": ["clients", "enroll", "ada@example.com", "pivot", "--start", ahead.isoformat()],
    }[door]
    before = dt.datetime.now(dt.UTC)
    done = bapp(*command, "--json")
    assert done.exit_code == 0, done.stderr
    (enrolment,) = bapp("clients", "show", "ada@example.com", "--json").json()["enrolments"]
    completed_at = dt.datetime.fromisoformat(enrolment["completed_at"])
    assert enrolment["status"] == "completed" and before <= completed_at <= dt.datetime.now(dt.UTC)
    assert enrolment["start_date"] == completed_at.date().isoformat()  # was `ahead`, after the completion
    audited = seed(bapp, lambda session: [entry.changes for entry in audit_entries(session, "enrolment")])
    assert audited[-1] == {
        "status": ["active", "completed"],
        "start_date": [ahead.isoformat(), completed_at.date().isoformat()],
    }
    (analytics,) = [row for row in bapp("reports", "pathway-analytics", "--json").json() if row["pathway"] == "pivot"]
    assert (analytics["completed"], analytics["average_days_to_complete"]) == (1, 0.0)


def test_an_enrolment_started_on_the_user_s_today_east_of_utc_is_not_moved_by_its_completion(bapp: Bapp) -> None:
    """`clients enroll` starts an enrolment on the user's today (099c209); a client who has finished the pathway
    is completed at once, and the completion rules (6238e2d) read a start after the completion's UTC day as still
    ahead. East of UTC the user's today is UTC's tomorrow: at 20:00 UTC in Auckland (UTC+13, already the 21st)
    the new enrolment's start, the 21st, was brought back to the 20th, the user's yesterday (audited as
    ["2030-01-21", "2030-01-20"]), though it was completed on the user's 21st. The day is now the user's."""
    now = dt.datetime(2030, 1, 20, 20, 0, tzinfo=dt.UTC)

    def build(session: Session) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        small_catalogue(session)
        ada = client(session, "ada@example.com")
        for slug in ("shared", "p2", "p3"):
            complete_skill(session, ada.email, slug, now=NOW)
        enrolled = enroll_client(session, "ada@example.com", "pivot", now=now)
        return enrolled, [entry.changes for entry in audit_entries(session, "enrolment")]

    enrolled, audited = seed(bapp, build, zone="Pacific/Auckland")
    assert (enrolled["status"], enrolled["start_date"], enrolled["completed_at"]) == (
        "completed",
        dt.date(2030, 1, 21),
        now,
    )
    assert audited == [
        {"status": "active", "start_date": "2030-01-21", "builder": None},
        {"status": ["active", "completed"]},  # no start moved
    ]
    (shown,) = bapp("clients", "show", "ada@example.com", "--json").json()["enrolments"]
    assert (shown["start_date"], shown["completed_at"]) == ("2030-01-21", "2030-01-20T20:00:00Z")


def test_progress_show_and_clients_show_hold_an_enrolment_in_a_pathway_added_while_they_ran(
    bapp: Bapp, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The pathways (the catalogue) were read before the client's enrolments. On PostgreSQL (READ COMMITTED) a
    # pathway and an enrolment in it committed between the two statements gave an enrolment with no pathway: exit 1
    # (KeyError) in every format. Committed here exactly there, by another connection.
    from bapp_cli.db.models import Pathway, User
    from bapp_cli.services import plain_reads

    assert bapp("clients", "add", "maya@client.example", "--name", "Maya").exit_code == 0
    read_catalogue, added = plain_reads.load_catalogue, []

    def catalogue_then_a_new_pathway(source: Any) -> Any:
        catalogue = read_catalogue(source)
        engine = make_engine(bapp.database_url)
        try:
            with unit_of_work(engine, actor="test", command="seed") as other:
                pathway = Pathway(slug=f"late-{len(added)}", name="Late Joiners", position=99)
                other.add(pathway)
                other.flush()
                maya = other.scalars(select(User.id).where(User.email == "maya@client.example")).one()
                other.add(Enrolment(client_id=maya, pathway_id=pathway.id, start_date=dt.date(2030, 1, 6)))
                added.append(pathway.slug)
        finally:
            engine.dispose()
        return catalogue

    monkeypatch.setattr(plain_reads, "load_catalogue", catalogue_then_a_new_pathway)
    for command in (("progress", "show", "maya@client.example"), ("clients", "show", "maya@client.example")):
        for output in (("--json",), ("--format", "table")):
            shown = bapp(*command, *output)
            assert shown.exit_code == 0, (command, output, shown.stderr)


def test_a_tier_the_pathway_does_not_have_is_null_not_zero(bapp: Bapp) -> None:
    # CLI.md: absent values are null; a one-tier pathway's tier 2 and 3 printed 0 % (0 of 0 in client-progress),
    # as a tier it has with nothing linked does (accelerate's tier 3 in small_catalogue)
    seed(bapp, ada_in_accelerate)
    assert bapp("pathways", "add", "solo", "--name", "Solo", "--tier", "Only: the one").exit_code == 0
    assert bapp("skills", "add", "s1", "--name", "S1", "--link", "solo:1").exit_code == 0
    assigned = bapp("skills", "assign", "ada@example.com", "--pathway", "solo", "--status", "completed")
    assert assigned.exit_code == 0, assigned.stderr
    rows = {row["pathway"]: row for row in bapp("progress", "table", "--json").json()}
    tiers = ("tier1_percent", "tier2_percent", "tier3_percent", "percent")
    assert [rows["solo"][key] for key in tiers] == [100, None, None, 100]
    assert rows["accelerate"]["tier3_percent"] == 0
    report = {row["pathway"]: row for row in bapp("reports", "client-progress", "--json").json()}["solo"]
    assert [report[f"tier2_{part}"] for part in ("completed", "total", "percent")] == [None] * 3
    piped = bapp("progress", "table", "--pathway", "solo", "--format", "csv").stdout
    assert [row[3:7] for row in csv.reader(io.StringIO(piped))][1] == ["100", "", "", "100"]
    for report in ("progress", "table"), ("reports", "client-progress"):
        drawn = bapp(*report, "--format", "table", env={"COLUMNS": "200"})
        assert drawn.exit_code == 0, drawn.stderr
        solo = next(line for line in drawn.stdout.splitlines() if "Solo" in line or "solo" in line)
        assert solo.count("—") == 2 and "100%" in solo, drawn.stdout  # its badges and last activity are shown

    def no_tier_3(session: Session) -> None:  # no pathway has one: the column has no pathway's total to pick
        session.execute(text("DELETE FROM skill_pathway_links WHERE tier = 3"))
        session.execute(text("DELETE FROM pathway_tiers WHERE tier = 3"))

    seed(bapp, no_tier_3)
    rows = bapp("reports", "client-progress", "--json").json()
    assert {(row["tier3_completed"], row["tier3_total"], row["tier3_percent"]) for row in rows} == {(None, None, None)}


def test_a_fourth_tier_counts_in_percent_and_progress_show_though_the_table_shows_tiers_1_to_3(bapp: Bapp) -> None:
    """`progress table` (and `reports client-progress`) keep CLI.md's three tier columns, which scripts read,
    while `pathways set-tier` allows more: `percent` counts every tier's skills, and `progress show` lists the
    tiers beyond 3 (as the help and README say). This pins what the code already did."""
    for made in (
        bapp("clients", "add", "ada@example.com"),
        bapp("pathways", "add", "four", "--name", "Four", "--tier", "One", "--tier", "Two", "--tier", "Three"),
        bapp("pathways", "set-tier", "four", "4", "--name", "Showcase"),
        *(bapp("skills", "add", f"s{n}", "--name", f"S{n}", "--link", f"four:{n}") for n in (1, 2, 3, 4)),
        bapp("skills", "assign", "ada@example.com", "s1", "s2", "s3", "--pathway", "four", "--status", "completed"),
    ):
        assert made.exit_code == 0, made.stderr
    (row,) = bapp("progress", "table", "--json").json()
    assert list(row) == TABLE_KEYS
    assert [row[key] for key in ("tier1_percent", "tier2_percent", "tier3_percent", "percent")] == [100, 100, 100, 75]
    (report,) = bapp("reports", "client-progress", "--json").json()
    assert (report["completed"], report["total"], report["percent"]) == (3, 4, 75)
    (shown,) = bapp("progress", "show", "ada@example.com", "--json").json()
    assert [(tier["tier"], tier["name"], tier["percent"]) for tier in shown["tiers"]][3:] == [(4, "Showcase", 0)]
    assert (shown["completed"], shown["total"], shown["percent"], shown["status"]) == (3, 4, 75, "active")
    assert bapp("skills", "complete", "ada@example.com", "s4").exit_code == 0
    (row,) = bapp("progress", "table", "--json").json()
    assert (row["percent"], row["status"], row["badges"]) == (100, "completed", 5)  # four tier badges, the pathway's

"""`bapp clients …` and `bapp builders …` end to end: exit codes, stdout, stderr, and the database after."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bapp_cli.db.models import (
    AuditEntry,
    Badge,
    BuilderProfile,
    ClientProfile,
    Enrolment,
    Skill,
    SkillPathwayLink,
    User,
    UserSkillProgress,
)
from bapp_cli.services.builders import BUILDER_COLUMNS
from bapp_cli.services.clients import CLIENT_COLUMNS, enroll_client, set_client_status
from tests.conftest import Bapp, Result
from tests.services.test_booking_factories import (
    add_booking,
    add_builder,
    add_client,
    add_session_type,
    audit_entries,
    count,
    get_pathway,
    seed_session,
)


@pytest.fixture(name="seed")
def seed_fixture(database_url: str) -> Iterator[Session]:
    yield from seed_session(database_url)


def test_clients_add_list_and_duplicates(bapp: Bapp, seed: Session) -> None:
    added = bapp("clients", "add", " Ada@Example.COM ", "--name", "Ada Lovelace", "--company", "Analytical", "--json")
    assert added.exit_code == 0 and added.stderr == ""
    record = added.json()
    assert list(record) == list(CLIENT_COLUMNS)
    assert (record["email"], record["name"], record["company"], record["industry"]) == (
        "ada@example.com",
        "Ada Lovelace",
        "Analytical",
        None,
    )
    duplicate = bapp("clients", "add", "ADA@example.com")
    assert duplicate.exit_code == 8 and duplicate.stdout == ""
    assert duplicate.stderr.startswith("Error: client 'ada@example.com' already exists")
    bad = bapp("clients", "add", "ada at example.com")
    assert bad.exit_code == 6 and bad.stderr.startswith("Error: email: 'ada at example.com' is not a valid e-mail")
    too_long = bapp("clients", "add", "long@example.com", "--company", "x" * 201)
    assert too_long.exit_code == 6 and "company: 201 characters" in too_long.stderr
    assert bapp("clients", "add", "bob@example.com").exit_code == 0
    listed = bapp("clients", "list")
    assert listed.stdout.splitlines() == [
        "\t".join(CLIENT_COLUMNS),
        f"ada@example.com\tAda Lovelace\tAnalytical\t\t{record['created_at']}",
        listed.stdout.splitlines()[2],
    ]
    assert listed.stdout.splitlines()[2].startswith("bob@example.com\t")
    seed.rollback()
    assert count(seed, User) == count(seed, ClientProfile) == 2
    assert [(entry.entity, entry.entity_key, entry.command) for entry in audit_entries(seed, "client")] == [
        ("client", "ada@example.com", "bapp clients add"),
        ("client", "bob@example.com", "bapp clients add"),
    ]


def test_an_idn_address_in_punycode_is_the_same_client(bapp: Bapp, seed: Session, tmp_path: Path) -> None:
    """An internationalised domain in Unicode or in its xn-- (Punycode) form, of either case, is one address: two
    clients were stored for it. Kept in the Unicode form people type; found by either."""
    added = bapp("clients", "add", "ana@xn--exmple-cua.com", "--name", "Ana", "--json")
    assert (added.exit_code, added.json()["email"]) == (0, "ana@exämple.com"), added.stderr
    for typed in ("ana@exämple.com", "Ana@XN--EXMPLE-CUA.COM", "ana@EXÄMPLE.com"):
        again = bapp("clients", "add", typed)
        assert again.exit_code == 8 and "already exists" in again.stderr, again.stderr
        shown = bapp("clients", "show", typed, "--json")
        assert (shown.exit_code, shown.json()["email"]) == (0, "ana@exämple.com"), shown.stderr
    rows = tmp_path / "clients.csv"
    rows.write_text("email,name\nbo@xn--bcher-kva.de,Bo\nBO@bücher.de,Bo\n")
    twice = bapp("import", "clients", str(rows))
    assert twice.exit_code == 6 and "line 3, email: 'bo@bücher.de' is already on line 2" in twice.stderr, twice.stderr
    rows.write_text("email,name\nANA@xn--exmple-cua.com,Ana\nbo@xn--bcher-kva.de,Bo\n")
    imported = bapp("import", "clients", str(rows), "--json")
    assert imported.exit_code == 0, imported.stderr
    assert (imported.json()["created"], imported.json()["unchanged"]) == (1, 1)  # ana is the client added above
    seed.rollback()
    assert sorted(seed.scalars(select(User.email))) == ["ana@exämple.com", "bo@bücher.de"]
    # an xn-- label that is Punycode of no Unicode name stays as typed (a false "same" makes two addresses one)
    ascii_only = bapp("clients", "add", "cy@xn--a-b.example", "--json")
    assert (ascii_only.exit_code, ascii_only.json()["email"]) == (0, "cy@xn--a-b.example"), ascii_only.stderr


def test_a_builder_can_become_a_client(bapp: Bapp, seed: Session) -> None:
    assert bapp("builders", "add", "coach@example.com", "--name", "Cora").exit_code == 0
    result = bapp("clients", "add", "coach@example.com", "--json")
    assert result.exit_code == 0 and result.json()["email"] == "coach@example.com"
    seed.rollback()
    assert count(seed, User) == 1 and count(seed, ClientProfile) == 1 and count(seed, BuilderProfile) == 1


def test_a_dry_run_of_enroll_and_set_status_says_what_would_happen(bapp: Bapp, seed: Session) -> None:
    """The line a person reads (-v shows it off a terminal) said "Enrolled …" and "… is now paused …" on a dry run,
    which wrote nothing (skills assign --pathway's "Enrolled …" too): it says "Would …", as other dry runs do."""
    add_client(seed)
    seed.commit()
    client = "ada@example.com"
    for args, would, did in [
        (
            ("enroll", client, "accelerate"),
            f"Would enroll {client} in accelerate.",
            f"Enrolled {client} in accelerate.",
        ),
        (
            ("enroll", client, "accelerate", "--start", "2021-01-06"),
            f"Would update {client}'s enrolment in accelerate.",
            f"Updated {client}'s enrolment in accelerate.",
        ),
        (
            ("set-status", client, "accelerate", "paused"),
            f"{client} would be paused in accelerate.",
            f"{client} is now paused in accelerate.",
        ),
    ]:
        dry = bapp("-v", "clients", *args, "--dry-run", "--json")
        real = bapp("-v", "clients", *args, "--json")
        assert (dry.exit_code, real.exit_code) == (0, 0), dry.stderr + real.stderr
        assert [line for line in dry.stderr.splitlines() if client in line] == [would], dry.stderr
        assert [line for line in real.stderr.splitlines() if client in line] == [did], real.stderr
        assert "Dry run: nothing was written." in dry.stderr
    # skills assign --pathway enrols the client where it must, and said so on a dry run too
    assigned = bapp("-v", "skills", "assign", client, "--pathway", "pivot", "--dry-run", "--json")
    assert assigned.exit_code == 0, assigned.stderr
    assert f"Would enroll {client} in pivot." in assigned.stderr.splitlines(), assigned.stderr


def test_enroll_and_set_status(bapp: Bapp, seed: Session) -> None:
    add_client(seed)
    add_builder(seed)
    seed.commit()
    enrolled = bapp(
        "clients", "enroll", "ada@example.com", "Accelerate", "--builder", "coach@example.com",
        "--start", "2021-01-06", "--json",
    )  # fmt: skip
    assert enrolled.exit_code == 0, enrolled.stderr
    assert enrolled.json() == {
        "client": "ada@example.com",
        "pathway": "accelerate",
        "status": "active",
        "start_date": "2021-01-06",
        "completed_at": None,
        "builder": "coach@example.com",
        "enrolled": True,
        "changed": True,
    }
    again = bapp("clients", "enroll", "ada@example.com", "accelerate", "--json")
    assert again.exit_code == 0 and (again.json()["enrolled"], again.json()["changed"]) == (False, False)
    paused = bapp("clients", "set-status", "ada@example.com", "accelerate", "paused", "--json")
    assert paused.exit_code == 0 and (paused.json()["status"], paused.json()["changed"]) == ("paused", True)
    completed = bapp("clients", "set-status", "ada@example.com", "ACCELERATE", "completed", "--json")
    assert completed.json()["completed_at"] is not None
    bad_status = bapp("clients", "set-status", "ada@example.com", "accelerate", "finished")
    assert bad_status.exit_code == 2  # CLI.md: a bad value on the command line is a usage error, as --status's
    assert "Invalid value for 'status': 'finished' is not one of active, paused, completed" in bad_status.stderr
    not_enrolled = bapp("clients", "set-status", "ada@example.com", "pivot", "paused")
    assert not_enrolled.exit_code == 7 and "Hint: enrol first" in not_enrolled.stderr
    assert bapp("clients", "enroll", "ghost@example.com", "pivot").exit_code == 7
    assert bapp("clients", "enroll", "ada@example.com", "juggling").exit_code == 7
    # no such day: a --start that is no date is a bad flag value, a usage error (CLI.md: exit 2)
    assert bapp("clients", "enroll", "ada@example.com", "pivot", "--start", "2031-02-30").exit_code == 2
    seed.rollback()
    enrolment = seed.scalars(select(Enrolment)).one()
    assert (enrolment.status, enrolment.start_date) == ("completed", dt.date(2021, 1, 6))
    assert [entry.changes for entry in audit_entries(seed, "enrolment")] == [
        {"status": "active", "start_date": "2021-01-06", "builder": "coach@example.com"},  # its start too
        {"status": ["active", "paused"]},
        {"status": ["paused", "completed"]},
    ]


def test_an_enrolment_is_not_completed_by_hand_before_it_starts(bapp: Bapp, seed: Session) -> None:
    """`clients set-status … completed` of an enrolment starting in the future stamped `completed_at` now, before
    the start, and `reports pathway-analytics` then counted negative days. It is refused (exit 8, naming the
    start; nothing written) until the start is moved; a start of today completes."""
    add_client(seed)
    seed.commit()
    today = dt.datetime.now(dt.UTC).date()
    tomorrow = today + dt.timedelta(days=1)
    assert bapp("clients", "enroll", "ada@example.com", "accelerate", "--start", tomorrow.isoformat()).exit_code == 0
    refused = bapp("clients", "set-status", "ada@example.com", "accelerate", "Completed", "--json")
    assert refused.exit_code == 8, refused.stderr
    said = f"Error: ada@example.com's enrolment in accelerate starts on {tomorrow}: it cannot be completed before it"
    assert refused.stderr.startswith(said), refused.stderr
    assert "Hint: move its start to today or before: `bapp clients enroll ada@example.com accelerate --start" in (
        refused.stderr
    )
    assert refused.stdout == ""
    # paused or active is no completion: allowed before the start
    assert bapp("clients", "set-status", "ada@example.com", "accelerate", "paused").exit_code == 0
    seed.rollback()
    enrolment = seed.scalars(select(Enrolment)).one()
    assert (enrolment.status, enrolment.completed_at) == ("paused", None)
    assert [entry.changes for entry in audit_entries(seed, "enrolment")][-1] == {"status": ["active", "paused"]}

    assert bapp("clients", "enroll", "ada@example.com", "accelerate", "--start", today.isoformat()).exit_code == 0
    completed = bapp("clients", "set-status", "ada@example.com", "accelerate", "completed", "--json")
    assert completed.exit_code == 0, completed.stderr
    assert completed.json()["start_date"] == today.isoformat()
    assert completed.json()["completed_at"] >= f"{today.isoformat()}T00:00:00"


def test_a_completed_enrolment_is_not_moved_to_start_after_its_completion(bapp: Bapp, seed: Session) -> None:
    """The other door to an enrolment completed before it starts: `clients enroll --start` of a completed
    enrolment took a start after its completion (exit 0), and `reports pathway-analytics` counted negative days.
    It is refused as set-status is (exit 8, naming the completion; nothing written); a start up to that day,
    or a move after reopening it, is taken."""
    add_client(seed)
    seed.commit()
    assert bapp("clients", "enroll", "ada@example.com", "accelerate", "--start", "2021-01-04").exit_code == 0
    assert bapp("clients", "set-status", "ada@example.com", "accelerate", "completed").exit_code == 0
    done = seed.scalars(select(Enrolment.completed_at)).one().date()
    later = (done + dt.timedelta(days=1)).isoformat()
    for output in ((), ("--json",)):
        refused = bapp("clients", "enroll", "ada@example.com", "accelerate", "--start", later, *output)
        assert refused.exit_code == 8, refused.stderr
        said = f"Error: ada@example.com's enrolment in accelerate was completed on {done}: it cannot start later"
        assert refused.stderr.startswith(said), refused.stderr
        assert "`bapp clients set-status ada@example.com accelerate active`" in refused.stderr
        assert refused.stdout == ""
    seed.rollback()
    assert seed.scalars(select(Enrolment.start_date)).one() == dt.date(2021, 1, 4)
    assert len(audit_entries(seed, "enrolment")) == 2  # the enrolment and its completion: nothing for the refusals

    on_the_day = bapp("clients", "enroll", "ada@example.com", "accelerate", "--start", done.isoformat(), "--json")
    assert (on_the_day.exit_code, on_the_day.json()["start_date"]) == (0, done.isoformat()), on_the_day.stderr
    assert bapp("clients", "set-status", "ada@example.com", "accelerate", "active").exit_code == 0
    moved = bapp("clients", "enroll", "ada@example.com", "accelerate", "--start", later, "--json")
    assert (moved.exit_code, moved.json()["start_date"]) == (0, later), moved.stderr


def test_enrolment_commands_say_what_they_did(bapp: Bapp, seed: Session) -> None:
    add_client(seed)
    seed.commit()
    said = [
        bapp("--verbose", "clients", *args).stderr
        for args in (
            ("enroll", "ada@example.com", "accelerate"),
            ("enroll", "ada@example.com", "Accelerate"),
            ("set-status", "ada@example.com", "accelerate", "paused"),
            ("set-status", "ada@example.com", "accelerate", "paused"),
        )
    ]
    assert said == [
        "Enrolled ada@example.com in accelerate.\n",
        "ada@example.com was already enrolled in accelerate (active); nothing changed.\n",
        "ada@example.com is now paused in accelerate.\n",
        "ada@example.com was already paused in accelerate; nothing changed.\n",
    ]


def test_enrolling_a_client_who_has_done_the_whole_pathway_says_it_completed(bapp: Bapp, seed: Session) -> None:
    """The enrolment is completed as it is made (README); `clients enroll` said only "Enrolled …", where `skills
    assign --pathway` and `bookings create` say the pathway completed: it says so too (a dry run in its words)."""
    for made in (
        bapp("clients", "add", "ada@example.com"),
        bapp("pathways", "add", "solo", "--name", "Solo", "--tier", "Only: the one"),
        bapp("skills", "add", "s1", "--name", "S1", "--link", "solo:1"),
        bapp("skills", "complete", "ada@example.com", "s1"),
    ):
        assert made.exit_code == 0, made.stderr
    enroll = ("-v", "clients", "enroll", "ada@example.com", "solo", "--json")
    said = [bapp(*enroll, *dry).stderr.splitlines() for dry in (("--dry-run",), (), ())]
    rehearsed = ["Would enroll ada@example.com in solo.", "🎉 Pathway would be completed: solo"]
    assert said == [
        ["Dry run: nothing was written.", *rehearsed],
        ["Enrolled ada@example.com in solo.", "🎉 Pathway completed: solo"],
        ["ada@example.com was already enrolled in solo (completed); nothing changed."],
    ]


def test_enroll_of_an_enrolled_client_applies_a_new_coach_or_start_and_says_so(bapp: Bapp, seed: Session) -> None:
    # --builder and --start were dropped without a word on an existing enrolment (a missing coach was set but
    # reported as "nothing changed"): a repeat asking for other values applies them, says so and audits them
    add_client(seed)
    add_builder(seed)
    other_id = add_builder(seed, "other@example.com").id
    seed.commit()
    runs = [
        ("--start", "2031-01-06"),
        ("--builder", "coach@example.com"),
        ("--builder", "other@example.com", "--start", "2031-02-03"),
        ("--builder", "Other@example.com", "--start", "2031-02-03"),
        (),
    ]
    results = [
        bapp("--verbose", "clients", "enroll", "ada@example.com", "accelerate", *args, "--json") for args in runs
    ]
    assert [result.exit_code for result in results] == [0] * 5
    keys = ("builder", "start_date", "enrolled", "changed")
    assert [tuple(result.json()[key] for key in keys) for result in results] == [
        (None, "2031-01-06", True, True),
        ("coach@example.com", "2031-01-06", False, True),
        ("other@example.com", "2031-02-03", False, True),
        ("other@example.com", "2031-02-03", False, False),
        ("other@example.com", "2031-02-03", False, False),
    ]
    assert [result.stderr for result in results[1:4]] == [
        "Updated ada@example.com's enrolment in accelerate.\n",
        "Updated ada@example.com's enrolment in accelerate.\n",
        "ada@example.com was already enrolled in accelerate (active); nothing changed.\n",
    ]
    seed.rollback()
    enrolment = seed.scalars(select(Enrolment)).one()
    assert (enrolment.builder_id, enrolment.start_date) == (other_id, dt.date(2031, 2, 3))
    assert [entry.changes for entry in audit_entries(seed, "enrolment")][1:] == [
        {"builder": [None, "coach@example.com"]},
        {"builder": ["coach@example.com", "other@example.com"], "start_date": ["2031-01-06", "2031-02-03"]},
    ]


def test_archived_pathway_takes_no_enrolments(bapp: Bapp, seed: Session) -> None:
    add_client(seed)
    get_pathway(seed, "play").archived = True
    seed.commit()
    result = bapp("clients", "enroll", "ada@example.com", "play")
    assert result.exit_code == 6 and "archived" in result.stderr
    seed.rollback()
    assert count(seed, Enrolment) == 0


def test_list_filters(bapp: Bapp, seed: Session) -> None:
    coach = add_builder(seed)
    ada, bob, cy = (add_client(seed, f"{name}@example.com", name) for name in ("ada", "bob", "cy"))
    accelerate, pivot = get_pathway(seed, "accelerate"), get_pathway(seed, "pivot")
    start = dt.date(2031, 1, 1)
    seed.add_all(
        [
            Enrolment(
                client_id=ada.id, pathway_id=accelerate.id, status="active", start_date=start, builder_id=coach.id
            ),
            Enrolment(client_id=bob.id, pathway_id=accelerate.id, status="paused", start_date=start),
            Enrolment(client_id=bob.id, pathway_id=pivot.id, status="active", start_date=start),
        ]
    )
    chat = add_session_type(seed, "Chat", category="free", builder=coach)
    add_booking(seed, client=cy, session_type=chat, start=dt.datetime(2031, 1, 2, 10, tzinfo=dt.UTC))
    seed.commit()

    def emails(*args: str) -> list[str]:
        result = bapp("clients", "list", *args, "--json")
        assert result.exit_code == 0, result.stderr
        return [item["email"] for item in result.json()]

    assert emails("--pathway", "accelerate") == ["ada@example.com", "bob@example.com"]
    assert emails("--pathway", "accelerate", "--status", "active") == ["ada@example.com"]
    assert emails("--status", "active") == ["ada@example.com", "bob@example.com"]
    assert emails("--status", " Paused ") == ["bob@example.com"]  # as every --status filter reads it
    assert emails("--builder", "coach@example.com") == ["ada@example.com", "cy@example.com"]
    sleeping = bapp("clients", "list", "--status", "sleeping")
    assert sleeping.exit_code == 2  # CLI.md: a bad flag value is a usage error, named before the database is read
    assert "Invalid value for '--status': 'sleeping' is not one of active, paused, completed" in sleeping.stderr
    assert bapp("clients", "list", "--builder", "ghost@example.com").exit_code == 7


def test_show_has_enrolments_with_progress_bookings_and_badges(bapp: Bapp, seed: Session) -> None:
    coach = add_builder(seed)
    ada = add_client(seed, name="Ada")
    accelerate = get_pathway(seed, "accelerate")
    seed.add(Enrolment(client_id=ada.id, pathway_id=accelerate.id, status="active", start_date=dt.date(2031, 1, 1)))
    skills = [Skill(slug=f"s{index}", name=f"Skill {index}") for index in range(3)]
    seed.add_all(skills)
    seed.flush()
    seed.add_all([SkillPathwayLink(skill_id=skill.id, pathway_id=accelerate.id, tier=1) for skill in skills])
    seed.add(UserSkillProgress(client_id=ada.id, skill_id=skills[0].id, status="completed"))
    seed.add(Badge(client_id=ada.id, key="tier:accelerate:1"))
    chat = add_session_type(seed, "Chat", category="free", builder=coach)
    for day in range(1, 13):
        add_booking(seed, client=ada, session_type=chat, start=dt.datetime(2031, 1, day, 10, tzinfo=dt.UTC))
    seed.commit()
    shown = bapp("clients", "show", "ADA@example.com", "--json")
    assert shown.exit_code == 0, shown.stderr
    record = shown.json()
    assert list(record) == [*CLIENT_COLUMNS, "enrolments", "bookings", "badges"]
    assert record["enrolments"] == [
        {
            "pathway": "accelerate",
            "status": "active",
            "start_date": "2031-01-01",
            "completed_at": None,
            "builder": None,
            "percent": 33,
        }
    ]
    assert len(record["bookings"]) == 10 and record["bookings"][0]["start_time"] == "2031-01-12T10:00:00Z"
    assert [(badge["key"], bool(badge["name"])) for badge in record["badges"]] == [("tier:accelerate:1", True)]
    table = bapp("clients", "show", "ada@example.com", "-f", "table", env={"COLUMNS": "200"})
    assert table.exit_code == 0
    assert "Enrolments" in table.stdout and "33%" in table.stdout and record["badges"][0]["name"] in table.stdout
    missing = bapp("clients", "show", "ghost@example.com")
    assert missing.exit_code == 7 and missing.stderr.startswith("Error: no client with e-mail 'ghost@example.com'")


def test_builders_add_update_list(bapp: Bapp, seed: Session) -> None:
    added = bapp(
        "builders", "add", "Coach@Example.com", "--name", "Cora Coach", "--timezone", "Europe/London",
        "--buffer", "15", "--minimum-notice", "24", "--max-advance", "60",
        "--calendly-user", "https://api.calendly.com/users/AAAA", "--json",
    )  # fmt: skip
    assert added.exit_code == 0, added.stderr
    record = added.json()
    assert list(record) == list(BUILDER_COLUMNS)
    assert {key: record[key] for key in BUILDER_COLUMNS[:-1]} == {
        "email": "coach@example.com",
        "name": "Cora Coach",
        "calendly_user": "https://api.calendly.com/users/AAAA",
        "timezone": "Europe/London",
        "buffer_minutes": 15,
        "minimum_notice_hours": 24,
        "max_advance_days": 60,
        "accepting_bookings": True,
    }
    assert bapp("builders", "add", "coach@example.com").exit_code == 8
    taken = bapp("builders", "add", "other@example.com", "--calendly-user", "https://api.calendly.com/users/AAAA")
    assert taken.exit_code == 8 and "already belongs to builder coach@example.com" in taken.stderr
    for args, field in [
        (["--buffer", "1441"], "buffer: 1441 is out of range"),
        (["--calendly-user", "not a uri"], "calendly-user: 'not a uri' is not a URI"),
        (["--max-advance", "99999"], "max-advance: 99999 is out of range"),
    ]:
        bad = bapp("builders", "add", "new@example.com", *args)
        assert bad.exit_code == 6 and bad.stderr.startswith(f"Error: {field}"), bad.stderr
    negative = bapp("builders", "add", "new@example.com", "--buffer", "-5")  # the parser's rule: exit 2 (#24)
    assert negative.exit_code == 2 and "Invalid value for '--buffer': -5 is not in the range" in negative.stderr
    zone = bapp("builders", "add", "new@example.com", "--timezone", "Mars/Base")  # the parser's too
    assert zone.exit_code == 2 and "Invalid value for '--timezone': unknown timezone 'Mars/Base'" in zone.stderr
    updated = bapp("builders", "update", "coach@example.com", "--not-accepting", "--max-advance", "0", "--json")
    assert updated.exit_code == 0
    assert (updated.json()["accepting_bookings"], updated.json()["max_advance_days"]) == (False, None)
    assert bapp("builders", "update", "ghost@example.com", "--buffer", "5").exit_code == 7
    listed = bapp("builders", "list", "--json")
    assert [item["email"] for item in listed.json()] == ["coach@example.com"]
    table = bapp("builders", "list", "-f", "table", env={"COLUMNS": "200"})
    assert "coach@example.com" in table.stdout and "Europe/London" in table.stdout
    seed.rollback()
    assert count(seed, User) == 1  # refused adds wrote nothing, not even the user
    changes = [json.dumps(entry.changes, sort_keys=True) for entry in audit_entries(seed, "builder")]
    assert len(changes) == 2
    assert '"accepting_bookings": [true, false]' in changes[1] and '"max_advance_days": [60, null]' in changes[1]
    assert all(entry.command.startswith("bapp builders ") for entry in seed.scalars(select(AuditEntry)))


def test_a_notice_as_long_as_the_advance_is_refused_for_it_leaves_no_start(
    bapp: Bapp, seed: Session, tmp_path: Path
) -> None:
    # 48 hours' notice within 1 day ahead: every `bookings create` refused, `sessions slots` never showed a time
    for notice, advance in [("48", "1"), ("24", "1")]:  # at 24 h and 1 day the earliest start is the latest
        refused = bapp("builders", "add", "coach@example.com", "--minimum-notice", notice, "--max-advance", advance)
        assert refused.exit_code == 6, refused.stderr
        assert refused.stderr.startswith(f"Error: minimum-notice: {notice} hours' notice leaves no start within")
    assert bapp("builders", "add", "coach@example.com", "--minimum-notice", "23", "--max-advance", "1").exit_code == 0
    for args, code in [
        (["--minimum-notice", "24"], 6),  # against the advance it has
        (["--max-advance", "0"], 0),  # no limit: any notice leaves a window
        (["--minimum-notice", "48"], 0),
        (["--max-advance", "2"], 6),
        (["--max-advance", "3"], 0),
    ]:
        result = bapp("builders", "update", "coach@example.com", *args)
        assert result.exit_code == code, (args, result.stderr)
    rows = tmp_path / "builders.csv"
    rows.write_text("email,minimum_notice_hours,max_advance_days\nrow@example.com,72,3\n")
    imported = bapp("import", "builders", str(rows))
    assert imported.exit_code == 6 and "72 hours' notice leaves no start" in imported.stderr, imported.stderr
    seed.rollback()
    stored = seed.execute(select(BuilderProfile.minimum_notice_hours, BuilderProfile.max_advance_days)).all()
    assert stored == [(48, 3)]  # the refused adds wrote nothing
    # settings a builder already holds (an older bapp let them) are no change: their re-import still runs
    seed.execute(update(BuilderProfile).values(max_advance_days=1))
    seed.commit()
    rows.write_text("email,name,minimum_notice_hours,max_advance_days\ncoach@example.com,Cora,48,1\n")
    assert bapp("import", "builders", str(rows)).exit_code == 0


def test_a_backup_holding_a_notice_as_long_as_the_advance_restores_and_merges(bapp: Bapp, tmp_path: Path) -> None:
    # a bapp before the rule stored 48 hours' notice within 1 day ahead; the backup it wrote then was refused, exit 6
    backup = tmp_path / "backup.json"
    assert bapp("export", "all", "-o", str(backup)).exit_code == 0  # the empty database: its header and pathways
    document = json.loads(backup.read_text())
    old = {"timezone": "UTC", "buffer_minutes": 0, "minimum_notice_hours": 48, "max_advance_days": 1}
    document["builders"] = [{"id": 7, "email": "coach@example.com", "accepting_bookings": True, **old}]
    backup.write_text(json.dumps(document))
    restored = bapp("import", "all", str(backup), "--json")
    assert restored.exit_code == 0, restored.stderr
    assert restored.json()["restored"] is True
    # merged into a database with data: the backup's settings are its own, as the restore takes them
    document["builders"] = [
        {"email": "second@example.com", **old},
        {"email": "coach@example.com", **old, "buffer_minutes": 5},
    ]
    backup.write_text(json.dumps(document))
    merged = bapp("import", "all", str(backup), "--json")
    assert merged.exit_code == 0, merged.stderr
    assert merged.json()["restored"] is False
    listed = bapp("builders", "list", "--json").json()
    assert [(row["email"], row["minimum_notice_hours"], row["max_advance_days"]) for row in listed] == [
        ("coach@example.com", 48, 1),
        ("second@example.com", 48, 1),
    ]
    # a document without the header is no backup: the rule holds, as in `import builders`
    backup.write_text(json.dumps({"builders": [{"email": "third@example.com", **old}]}))
    refused = bapp("import", "all", str(backup))
    assert refused.exit_code == 6 and "48 hours' notice leaves no start" in refused.stderr, refused.stderr
    # and a change of the restored builder goes through the door
    assert bapp("builders", "update", "coach@example.com", "--minimum-notice", "47").exit_code == 6
    assert bapp("builders", "update", "coach@example.com", "--minimum-notice", "23").exit_code == 0


@pytest.mark.parametrize("zone", ["localtime", "posixrules", "Factory", "posix/Europe/London", "right/Europe/London"])
def test_a_zone_name_that_is_no_iana_key_is_refused_wherever_a_zone_is_given(
    bapp: Bapp, seed: Session, tmp_path: Path, zone: str
) -> None:
    # each opened a file of this machine's zoneinfo (localtime: its own clock) and was stored as given: the same
    # builder read another zone, or none, on another machine; the setting read naive times in this machine's zone
    assert bapp("builders", "add", "coach@example.com", "--timezone", "Europe/Paris").exit_code == 0
    add = bapp("builders", "add", "new@example.com", "--timezone", zone)
    update = bapp("builders", "update", "coach@example.com", "--timezone", zone)
    rows = tmp_path / "builders.csv"
    rows.write_text(f"email,timezone\nrow@example.com,{zone}\n")
    imported = bapp("import", "builders", str(rows))
    flag = bapp("--timezone", zone, "pathways", "list")
    environment = bapp("pathways", "list", env={"BAPP_TIMEZONE": zone})
    (bapp.home / "config.toml").write_text(f"timezone = {json.dumps(zone)}\n")
    configured = bapp("pathways", "list")
    for result, code, message in [
        # a flag's value, refused by the parser (CLI.md: exit 2; it was 6), a row's and a setting's by their checks
        (add, 2, f"Error: Invalid value for '--timezone': unknown timezone {zone!r}"),
        (update, 2, f"Error: Invalid value for '--timezone': unknown timezone {zone!r}"),
        (imported, 6, f"line 2, field timezone: unknown timezone {zone!r}"),
        (flag, 2, f"Error: Invalid value for '--timezone': unknown timezone {zone!r}"),
        (environment, 4, f"BAPP_TIMEZONE, key timezone: unknown timezone {zone!r}"),
        (configured, 4, f"key timezone: unknown timezone {zone!r}"),
    ]:
        assert (result.exit_code, message in result.stderr) == (code, True), result.stderr
    seed.rollback()
    assert seed.scalars(select(BuilderProfile.timezone)).all() == ["Europe/Paris"]


def test_a_zone_with_surrounding_blanks_is_read_alike_at_every_door(bapp: Bapp, seed: Session, tmp_path: Path) -> None:
    # a --timezone flag and a row's zone were read trimmed, BAPP_TIMEZONE and the config file's `timezone` as typed:
    # " Pacific/Auckland " was exit 4 there and exit 6 for `config set`, while `config init --timezone` took it
    zone = " Pacific/Auckland "
    add_client(seed)
    seed.commit()
    rows = tmp_path / "builders.csv"
    rows.write_text(f"email,timezone\nrow@example.com,{zone}\n")
    assert bapp("import", "builders", str(rows)).exit_code == 0
    assert bapp("--timezone", zone, "builders", "add", "coach@example.com", "--timezone", zone).exit_code == 0
    # the start of an enrolment is a day in the user's zone: 23:30 UTC is the next morning in Auckland
    enrol = ("clients", "enroll", "ada@example.com", "Accelerate", "--start", "2031-03-03T23:30Z", "--json")
    enrolled = bapp(*enrol, env={"BAPP_TIMEZONE": zone})
    assert (enrolled.exit_code, enrolled.stderr) == (0, "")
    assert enrolled.json()["start_date"] == "2031-03-04"
    assert bapp("config", "set", "timezone", zone).exit_code == 0  # stored as every door reads it, as init stores it
    assert (bapp.home / "config.toml").read_text() == 'timezone = "Pacific/Auckland"\n'
    (bapp.home / "config.toml").write_text(f"timezone = {json.dumps(zone)}\n")
    listed = bapp("clients", "list")
    assert (listed.exit_code, listed.stderr) == (0, "")
    seed.rollback()
    assert seed.scalars(select(BuilderProfile.timezone)).all() == ["Pacific/Auckland"] * 2


def test_a_calendly_user_held_in_another_spelling_is_taken(bapp: Bapp, seed: Session) -> None:
    """`--calendly-user` was compared as typed, where a sync or pull tells builders apart as Calendly writes a user's
    URI (config.calendly_user_uri): two builders held one Calendly user, its events going to either. One stored in
    another spelling (the host in capitals, a slash after the uuid) is taken too: exit 8."""
    user = "https://api.calendly.com/users/AAAA"
    held = ("--calendly-user", "https://API.Calendly.com/users/AAAA/")
    assert bapp("builders", "add", "coach@example.com", *held).exit_code == 0
    added = bapp("builders", "add", "spare@example.com", "--calendly-user", user)
    assert added.exit_code == 8 and "already belongs to builder coach@example.com" in added.stderr
    assert bapp("builders", "add", "spare@example.com").exit_code == 0
    updated = bapp("builders", "update", "spare@example.com", "--calendly-user", f" {user}/ ")
    assert updated.exit_code == 8 and "already belongs to builder coach@example.com" in updated.stderr
    # the holder may write it afresh, and another user (a uuid keeps its case) is free
    assert bapp("builders", "update", "coach@example.com", "--calendly-user", user).exit_code == 0
    assert bapp("builders", "update", "spare@example.com", "--calendly-user", user.lower()).exit_code == 0


def test_builders_an_earlier_bapp_let_hold_one_calendly_user_re_import_and_restore(
    bapp: Bapp, seed: Session, tmp_path: Path
) -> None:
    """An earlier bapp compared --calendly-user as typed, so two builders may hold one user in two spellings. Their
    rows re-import, a backup of them restores and a builder may write their own again (each refused, exit 6 or 8,
    once the spellings were compared); a builder taking that user anew is refused. The restore warns of the pair."""
    user = "https://api.calendly.com/users/AAAA"
    assert bapp("builders", "add", "coach@example.com", "--calendly-user", user).exit_code == 0
    assert bapp("builders", "add", "spare@example.com").exit_code == 0
    held = update(BuilderProfile).where(BuilderProfile.calendly_user_uri.is_(None))
    seed.execute(held.values(calendly_user_uri=f"{user.replace('api', 'API')}/"))
    seed.commit()
    seed.close()
    backup, builders = tmp_path / "backup.json", tmp_path / "builders.json"
    assert bapp("export", "all", "-o", str(backup)).exit_code == 0
    assert bapp("export", "builders", "-o", str(builders)).exit_code == 0
    assert bapp("import", "builders", str(builders)).exit_code == 0
    assert bapp("builders", "update", "spare@example.com", "--calendly-user", f"{user}/ ").exit_code == 0
    assert bapp("builders", "add", "third@example.com", "--calendly-user", f"{user}/").exit_code == 8
    assert bapp("db", "downgrade", "base", "--yes").exit_code == 0 and bapp("db", "upgrade").exit_code == 0
    restored = bapp("import", "all", str(backup), "--json")
    assert restored.exit_code == 0, restored.stderr
    listed = bapp("builders", "list", "--json").json()
    assert [builder["calendly_user"] for builder in listed] == [user, "https://API.calendly.com/users/AAAA/"]
    # restored as it was, but not without a word (a sync or pull gives that user's events to one of them alone)
    warned = [line for line in restored.stderr.splitlines() if line.startswith("Warning:")]
    assert warned == [
        f"Warning: builders coach@example.com and spare@example.com hold Calendly user {user}, each in its own "
        "spelling: a sync or pull gives its event types and events to one of them alone "
        "(`bapp builders update EMAIL --calendly-user URI`)"
    ], restored.stderr


def test_builders_list_searches_the_name_it_shows(bapp: Bapp, seed: Session) -> None:
    # The listing shows a builder's own display name (`--name`) before the account's, but --search looked in the
    # account's alone: a builder renamed Bob was found by the name they had before and not by Bob, and a client
    # who also coaches was found only by their client name.
    assert bapp("clients", "add", "ava@example.com", "--name", "Ava Chen").exit_code == 0
    assert bapp("builders", "add", "ava@example.com", "--name", "Coach Ava").exit_code == 0
    assert bapp("builders", "add", "cora@example.com", "--name", "Cora Coach").exit_code == 0
    assert bapp("builders", "update", "cora@example.com", "--name", "Bob").exit_code == 0

    def found(text: str) -> list[tuple[str, str]]:
        listed = bapp("builders", "list", "--search", text, "--json")
        assert listed.exit_code == 0, listed.stderr
        return [(item["email"], item["name"]) for item in listed.json()]

    assert found("bob") == [("cora@example.com", "Bob")]
    assert found("cora coach") == []
    assert found("coach") == [("ava@example.com", "Coach Ava")]
    assert found("chen") == []
    assert bapp("builders", "update", "ava@example.com", "--name", "").exit_code == 0  # back to the account's name
    assert found("chen") == [("ava@example.com", "Ava Chen")]


def test_a_builder_showing_the_account_name_re_imports_unchanged(bapp: Bapp, seed: Session, tmp_path: Path) -> None:
    # The export writes the name a builder shows: their own, else the account's. Re-importing it took the account's
    # name as the builder's own (an update, audited): the builder no longer followed the account's name.
    assert bapp("clients", "add", "ava@example.com", "--name", "Ava Chen").exit_code == 0
    assert bapp("builders", "add", "ava@example.com").exit_code == 0
    exported = tmp_path / "builders.json"
    assert bapp("export", "builders", "-o", str(exported)).exit_code == 0
    again = bapp("import", "builders", str(exported), "--json")
    assert again.exit_code == 0 and (again.json()["updated"], again.json()["unchanged"]) == (0, 1), again.stderr
    assert seed.scalars(select(BuilderProfile.display_name)).all() == [None]


@pytest.mark.parametrize("fmt", ["json", "toml"])
def test_a_restore_keeps_whether_a_builder_s_name_is_their_own(
    bapp: Bapp, tmp_path: Path, second_database_url: str, fmt: str
) -> None:
    # A backup wrote the name a builder shows; restored into an empty database, where no account held it yet, it
    # became the builder's own: the restored builder no longer followed the account's name (renamed by a clients
    # import, or by `clients add --name` of a builder). Ava and Cy follow their account's; Bo's own name is pinned.
    for command in (
        ("clients", "add", "ava@example.com", "--name", "Ava Chen"),
        ("builders", "add", "ava@example.com"),
        ("builders", "add", "bo@example.com", "--name", "Bo Lee"),
        ("clients", "add", "bo@example.com"),
        ("builders", "add", "cy@example.com", "--name", "Cy"),
        ("builders", "update", "cy@example.com", "--name", ""),
    ):
        assert bapp(*command).exit_code == 0
    backup, again = tmp_path / f"backup.{fmt}", tmp_path / f"again.{fmt}"
    assert bapp("export", "all", "-o", str(backup)).exit_code == 0
    restored = Bapp(second_database_url, tmp_path / "restored")
    assert restored("import", "all", str(backup), "--dry-run").exit_code == 0
    assert restored("builders", "list", "--json").json() == []
    assert (restored_run := restored("import", "all", str(backup), "--json")).exit_code == 0, restored_run.stderr
    assert restored_run.json()["restored"] is True
    assert restored("export", "all", "-o", str(again)).exit_code == 0
    assert again.read_text() == backup.read_text()
    merged = bapp("import", "all", str(backup), "--json")  # a merge of the backup into its own database
    assert merged.exit_code == 0 and merged.json()["updated"] == 0, merged.stderr
    renames = tmp_path / "renames.csv"
    renames.write_text("email,name\nava@example.com,Ava Smith\nbo@example.com,Bo Smith\n")
    for app in (bapp, restored):
        assert app("import", "clients", str(renames)).exit_code == 0
        assert app("clients", "add", "cy@example.com", "--name", "Cy Dee").exit_code == 0
    names = [(item["email"], item["name"]) for item in restored("builders", "list", "--json").json()]
    assert names == [("ava@example.com", "Ava Smith"), ("bo@example.com", "Bo Lee"), ("cy@example.com", "Cy Dee")]
    assert restored("builders", "list", "--json").json() == bapp("builders", "list", "--json").json()


@pytest.mark.parametrize("fmt", ["json", "toml"])
def test_a_restore_keeps_a_builder_client_without_a_name(
    bapp: Bapp, tmp_path: Path, second_database_url: str, fmt: str
) -> None:
    # The builders section, restored first, names the new account after the builder's own name; the clients
    # section then gives the account's (null). TOML has no null: its row left the name out, which reads as "leave
    # it", so a TOML restore listed the client under the builder's name (a JSON one was exact).
    assert bapp("builders", "add", "x@example.com", "--name", "Coach X").exit_code == 0
    assert bapp("clients", "add", "x@example.com", "--name", "Xavier", "--company", "X Ltd").exit_code == 0
    blanks = tmp_path / "blanks.csv"
    blanks.write_text("email,name,company\nx@example.com,,\n")
    assert bapp("import", "clients", str(blanks)).exit_code == 0
    backup = tmp_path / f"backup.{fmt}"
    assert bapp("export", "all", "-o", str(backup)).exit_code == 0
    restored = Bapp(second_database_url, tmp_path / "restored")
    assert restored("import", "all", str(backup)).exit_code == 0
    assert restored("clients", "list", "--json").json() == bapp("clients", "list", "--json").json()
    assert restored("clients", "list", "--json").json()[0]["name"] is None


@pytest.mark.parametrize("fmt", ["json", "toml"])
def test_a_restore_keeps_the_account_name_a_builder_s_own_name_hides(
    bapp: Bapp, tmp_path: Path, second_database_url: str, fmt: str
) -> None:
    # A builder's own name hides their account's, which no section of a backup held for a builder who is no client:
    # the restored account was named after the builder, so clearing the builder's own name showed "Dr X", not the
    # account's "Coach X". A merge of the backup gives the account its name too.
    assert bapp("builders", "add", "x@example.com", "--name", "Coach X").exit_code == 0  # the account's name too
    assert bapp("builders", "update", "x@example.com", "--name", "Dr X").exit_code == 0
    backup, again = tmp_path / f"backup.{fmt}", tmp_path / f"again.{fmt}"
    assert bapp("export", "all", "-o", str(backup)).exit_code == 0
    restored = Bapp(second_database_url, tmp_path / "restored")
    assert restored("import", "all", str(backup)).exit_code == 0
    assert restored("export", "all", "-o", str(again)).exit_code == 0
    assert again.read_text() == backup.read_text()
    for app in (bapp, restored):
        assert app("builders", "update", "x@example.com", "--name", "").exit_code == 0
    assert [item["name"] for item in restored("builders", "list", "--json").json()] == ["Coach X"]
    assert restored("import", "all", str(backup)).exit_code == 0  # a merge: the builder's own name is back
    assert restored("export", "all", "-o", str(again)).exit_code == 0
    assert again.read_text() == backup.read_text()
    assert restored("builders", "update", "x@example.com", "--name", "").exit_code == 0
    assert [item["name"] for item in restored("builders", "list", "--json").json()] == ["Coach X"]


def test_a_backup_s_builder_row_names_the_account_unless_refused(bapp: Bapp, tmp_path: Path) -> None:
    # Merged into a database holding the builder, a backup's row without a name of the builder's own gives the
    # account its name and clears the builder's own; a refused row (--continue-on-error) renames no account.
    assert bapp("clients", "add", "ava@example.com", "--name", "Ava Chen").exit_code == 0
    assert bapp("builders", "add", "ava@example.com", "--name", "Coach Ava").exit_code == 0
    backup = tmp_path / "backup.json"

    def merge(timezone: str) -> Result:
        row = {"email": "ava@example.com", "name": "Ava Smith", "own_name": False, "timezone": timezone}
        rows = [row, {"email": "bo@example.com", "name": "Bo", "own_name": True}]  # a good row: all refused is exit 6
        backup.write_text(json.dumps({"bapp": {"format": "bapp-backup", "version": 3}, "builders": rows}))
        return bapp("import", "all", str(backup), "--continue-on-error", "--json")

    assert merge("Nowhere/Land").json()["rejected"] == 1
    assert bapp("clients", "show", "ava@example.com", "--json").json()["name"] == "Ava Chen"
    assert merge("UTC").json()["updated"] == 1
    assert bapp("clients", "show", "ava@example.com", "--json").json()["name"] == "Ava Smith"
    renames = tmp_path / "renames.csv"
    renames.write_text("email,name\nava@example.com,Ava Jones\n")
    assert bapp("import", "clients", str(renames)).exit_code == 0
    assert [item["name"] for item in bapp("builders", "list", "--json").json()] == ["Ava Jones", "Bo"]


def test_a_builder_row_without_a_name_imports_for_an_account_with_a_blank_name(
    bapp: Bapp, seed: Session, tmp_path: Path
) -> None:
    # The re-import rule above dropped the row's name when it equalled the account's; for an account whose name
    # is blank (raw SQL, an older bapp) and a file without a name column, there was no name to drop: exit 1.
    assert bapp("builders", "add", "ava@example.com", "--timezone", "UTC").exit_code == 0
    seed.execute(update(User).values(name=""))
    seed.commit()
    settings = tmp_path / "builders.csv"
    settings.write_text("email,buffer_minutes\nava@example.com,15\n")
    imported = bapp("import", "builders", str(settings), "--json")
    assert imported.exit_code == 0 and imported.json()["updated"] == 1, imported.stderr
    assert seed.scalars(select(BuilderProfile.buffer_minutes)).all() == [15]


def test_a_builder_becoming_a_client_takes_the_name_given(bapp: Bapp, seed: Session) -> None:
    # `clients add --name` of a builder's e-mail kept the account's name and dropped the one given, while its
    # audit row said the name given was set: the client's name (in listings, bookings, progress) was not the one
    # typed, and the log said it was. The builder's own name (their display name) stays as it was.
    assert bapp("builders", "add", "coach@example.com", "--name", "Cora Coach").exit_code == 0
    added = bapp("clients", "add", "coach@example.com", "--name", "Cora Client", "--json")
    assert added.exit_code == 0, added.stderr
    assert added.json()["name"] == "Cora Client"
    assert bapp("clients", "show", "coach@example.com", "--json").json()["name"] == "Cora Client"
    assert [item["name"] for item in bapp("builders", "list", "--json").json()] == ["Cora Coach"]
    seed.rollback()
    assert seed.scalars(select(User.name)).one() == "Cora Client"
    assert [entry.changes["name"] for entry in audit_entries(seed, "client")] == ["Cora Client"]
    # without --name the account's name stays
    assert bapp("builders", "add", "bob@example.com", "--name", "Bob").exit_code == 0
    assert bapp("clients", "add", "bob@example.com", "--json").json()["name"] == "Bob"


def test_an_enrolment_s_start_is_compared_with_today_in_the_user_s_zone(bapp: Bapp, seed: Session) -> None:
    """`clients set-status … completed` refuses an enrolment that starts after today, and `clients enroll --start`
    one past the day the enrolment was completed: both days were UTC's while the start is a day in --timezone,
    so a user east of UTC was refused on their own today (and one west of it allowed their tomorrow). A zone
    whose day differs from UTC's now (14 hours east, or 11 west) shows both."""
    add_client(seed)
    seed.commit()
    now = dt.datetime.now(dt.UTC)
    zone = "Pacific/Kiritimati" if now.hour >= 10 else "Pacific/Pago_Pago"  # UTC+14, UTC-11
    today = now.astimezone(ZoneInfo(zone)).date()
    assert today != now.date()
    tomorrow = (today + dt.timedelta(days=1)).isoformat()

    ahead = bapp("--timezone", zone, "clients", "enroll", "ada@example.com", "accelerate", "--start", tomorrow)
    assert ahead.exit_code == 0, ahead.stderr
    refused = bapp("--timezone", zone, "clients", "set-status", "ada@example.com", "accelerate", "completed")
    assert refused.exit_code == 8, refused.stderr
    assert f"starts on {tomorrow}: it cannot be completed before it starts" in refused.stderr
    enrolled = bapp(
        "--timezone", zone, "clients", "enroll", "ada@example.com", "accelerate", "--start", today.isoformat()
    )
    assert enrolled.exit_code == 0, enrolled.stderr
    completed = bapp("--timezone", zone, "clients", "set-status", "ada@example.com", "accelerate", "completed")
    assert completed.exit_code == 0, completed.stderr  # on the user's today
    # completed today, in the zone: a start of today stands, tomorrow is refused
    later = bapp("--timezone", zone, "clients", "enroll", "ada@example.com", "accelerate", "--start", tomorrow)
    assert later.exit_code == 8 and f"was completed on {today}: it cannot start later" in later.stderr
    again = bapp("--timezone", zone, "clients", "enroll", "ada@example.com", "accelerate", "--start", today.isoformat())
    assert again.exit_code == 0, again.stderr


@pytest.mark.parametrize(
    ("zone", "now"),
    [
        ("Pacific/Pago_Pago", dt.datetime(2026, 12, 7, 5, 0, tzinfo=dt.UTC)),  # UTC-11: still the 6th there
        ("Pacific/Auckland", dt.datetime(2026, 12, 6, 20, 0, tzinfo=dt.UTC)),  # UTC+13: already the 7th there
    ],
)
def test_an_enrolment_s_default_start_is_today_in_the_user_s_zone(seed: Session, zone: str, now: dt.datetime) -> None:
    """`clients enroll` without --start starts the enrolment today: that was UTC's today, while `clients set-status
    … completed` (19703d9) refuses a start after the user's today. West of UTC in the evening the default start
    was the user's tomorrow, so the enrolment just made could not be completed that day (exit 8, "starts on
    2026-12-07"); east of UTC it started on the user's yesterday. It now starts on the user's today. A fixed clock
    shows both whatever the hour of the run (the CLI's unit of work keeps --timezone on the session)."""
    add_client(seed)
    today = now.astimezone(ZoneInfo(zone)).date()
    seed.info["zone"] = ZoneInfo(zone)  # as the command's unit of work keeps --timezone
    enrolled = enroll_client(seed, "ada@example.com", "accelerate", now=now)
    assert enrolled["start_date"] == today
    completed = set_client_status(seed, "ada@example.com", "accelerate", "completed", now=now)
    assert (completed["status"], completed["start_date"]) == ("completed", today)


def test_clients_enroll_without_start_starts_on_today_in_timezone(bapp: Bapp, seed: Session) -> None:
    """The command itself, on the real clock: the test above pins the service's clock, this one shows that
    `clients enroll` hands --timezone on for the default start. A zone whose day differs from UTC's now (14 hours
    east, or 11 west) tells the two apart; a repeat without --start keeps the start, in any zone."""
    add_client(seed)
    seed.commit()
    now = dt.datetime.now(dt.UTC)
    zone = "Pacific/Kiritimati" if now.hour >= 10 else "Pacific/Pago_Pago"  # UTC+14, UTC-11
    today = now.astimezone(ZoneInfo(zone)).date().isoformat()
    enrolled = bapp("--timezone", zone, "clients", "enroll", "ada@example.com", "accelerate", "--json")
    assert enrolled.exit_code == 0 and enrolled.json()["start_date"] == today, enrolled.stderr
    assert [entry.changes["start_date"] for entry in audit_entries(seed, "enrolment")] == [today]
    again = bapp("clients", "enroll", "ada@example.com", "accelerate", "--json")  # UTC: another day, no --start
    assert (again.json()["start_date"], again.json()["changed"]) == (today, False)
    assert bapp("clients", "show", "ada@example.com", "--json").json()["enrolments"][0]["start_date"] == today

"""`bapp bookings …` and `bapp sessions available` end to end: exit codes, stdout, stderr, and the database after.

The CLI uses the real clock, so starts are in 2031 and later.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from bapp_cli.db.models import AuditEntry, Booking, ClientProfile, Enrolment, User
from bapp_cli.services.booking import CREATED_COLUMNS
from tests.conftest import REPO, Bapp, Result
from tests.services.test_booking_factories import (
    add_builder,
    add_client,
    add_session_type,
    count,
    question,
    seed_session,
)

START = "2031-06-02T10:00:00Z"
WIDE: dict[str, str | None] = {"COLUMNS": "200"}  # Rich tables wrap cells at its default 80 columns


@pytest.fixture(name="seed")
def seed_fixture(database_url: str) -> Iterator[Session]:
    yield from seed_session(database_url)


@pytest.fixture
def world(seed: Session) -> Session:
    coach = add_builder(seed)
    add_client(seed)
    add_session_type(
        seed,
        "Getting Started",
        category="free",
        builder=coach,
        questions=[question("What do you want to build?", "text", required=True)],
    )
    add_session_type(
        seed,
        "Accelerate Review",
        category="pathway",
        builder=coach,
        pathways=["accelerate", "pivot"],
        price="30.00",
        questions=[
            question("Tools", "multi_select", position=1, choices=["Python", "Zapier", "Excel"]),
            question("Company size", "single_select", position=0, required=True, choices=["1-10", "11-50"]),
        ],
    )
    add_session_type(seed, "Agent Clinic", category="specialized", builder=coach)
    seed.commit()
    return seed


def create(bapp: Bapp, *args: str, start: str = START, session: str = "getting-started") -> Result:
    base = ["bookings", "create", "--session", session, "--start", start, "--json"]
    if session == "getting-started" and "--answer" not in args:
        base += ["--answer", "What do you want to build?=An agent"]
    return bapp(*base, *args)


def unchanged(seed: Session, before: tuple[int, int, int]) -> None:
    seed.rollback()
    assert (count(seed, Booking), count(seed, User), count(seed, AuditEntry)) == before


def totals(seed: Session) -> tuple[int, int, int]:
    seed.rollback()
    return count(seed, Booking), count(seed, User), count(seed, AuditEntry)


def test_free_booking_creates_the_account(bapp: Bapp, world: Session) -> None:
    result = create(bapp, "--client", "New.Person@Example.com", "--name", "New Person")
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    record = result.json()
    assert list(record) == list(CREATED_COLUMNS)
    assert record["client"] == "new.person@example.com" and record["client_name"] == "New Person"
    assert (record["account_created"], record["enrolled"], record["existing"]) == (True, False, False)
    assert (record["status"], record["payment_status"], record["amount"]) == ("confirmed", "not_required", "0.00")
    assert (record["start_time"], record["end_time"]) == ("2031-06-02T10:00:00Z", "2031-06-02T10:30:00Z")
    assert record["custom_question_responses"] == [
        {"question": "What do you want to build?", "answer": "An agent", "position": 0}
    ]
    world.rollback()
    stored = world.scalars(select(Booking)).one()
    assert stored.reference == record["reference"] and stored.source == "cli"
    user = world.scalars(select(User).where(User.email == "new.person@example.com")).one()
    assert world.scalars(select(ClientProfile).where(ClientProfile.user_id == user.id)).one()
    audit = world.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()
    assert [(entry.entity, entry.actor, entry.command) for entry in audit] == [
        ("client", "tester", "bapp bookings create"),
        ("booking", "tester", "bapp bookings create"),
    ]


def test_session_needing_an_account_refuses_an_unknown_client(bapp: Bapp, world: Session) -> None:
    before = totals(world)
    result = create(bapp, "--client", "new@example.com", session="agent-clinic")
    assert result.exit_code == 6
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0] == "Error: client: new@example.com has no account and 'Agent Clinic' requires one"
    assert lines[1].startswith("Hint: add --create-account")
    assert json.loads(lines[2])["error"]["code"] == "account_required"
    unchanged(world, before)
    again = create(bapp, "--client", "new@example.com", "--create-account", session="agent-clinic")
    assert again.exit_code == 0 and again.json()["account_created"] is True


def test_pathway_booking_with_answers_enrols_the_client(bapp: Bapp, world: Session) -> None:
    result = create(
        bapp,
        "--client",
        "ada@example.com",
        "--pathway",
        "Pivot",
        "--answer",
        "company size=11-50",
        "--answer",
        "Tools=python",
        "--answer",
        "TOOLS=Excel",
        session="accelerate-review",
    )
    assert result.exit_code == 0, result.stderr
    record = result.json()
    assert (record["pathway"], record["enrolled"], record["status"], record["payment_status"]) == (
        "pivot",
        True,
        "pending",
        "unpaid",
    )
    assert record["amount"] == "30.00"
    assert record["custom_question_responses"] == [
        {"question": "Company size", "answer": "11-50", "position": 0},
        {"question": "Tools", "answer": ["Python", "Excel"], "position": 1},
    ]
    world.rollback()
    enrolment = world.scalars(select(Enrolment)).one()
    assert enrolment.status == "active" and enrolment.builder_id is not None
    assert world.scalars(select(Booking)).one().custom_question_responses == record["custom_question_responses"]


def test_an_answer_spelled_with_combining_accents_is_the_choice_it_reads_as(bapp: Bapp, world: Session) -> None:
    # 'Café' typed as 'Cafe' + U+0301 (NFD, as some keyboards and macOS file names give it) is the choice 'Café'
    # (NFC) it reads as, and is stored in the session type's own spelling, like a choice in another case
    coach = world.scalars(select(User).where(User.email == "coach@example.com")).one()
    add_session_type(
        world,
        "Tasting",
        category="free",
        builder=coach,
        questions=[
            question("Boisson préférée", "single_select", required=True, choices=["Thé", "Café"]),
            question("Extras", "multi_select", position=1, choices=["Crème", "Sucre"]),
        ],
    )
    world.commit()
    nfd = "Boisson pre\u0301fe\u0301re\u0301e=CAFE\u0301"
    refused = create(
        bapp, "--client", "ada@example.com", "--answer", nfd, "--answer", "Extras=cre\u0301me", session="tasting"
    )
    assert refused.exit_code == 6, refused.stderr  # an acute accent is not the choice's grave one
    assert refused.stderr.splitlines()[0] == "Error: answer 'Extras': 'cre\u0301me' is not one of: Crème, Sucre"
    result = create(
        bapp, "--client", "ada@example.com", "--answer", nfd, "--answer", "Extras=cre\u0300me", session="tasting"
    )
    assert result.exit_code == 0, result.stderr
    expected = [
        {"question": "Boisson préférée", "answer": "Café", "position": 0},
        {"question": "Extras", "answer": ["Crème"], "position": 1},
    ]
    assert result.json()["custom_question_responses"] == expected
    world.rollback()
    assert world.scalars(select(Booking)).one().custom_question_responses == expected


def test_a_booking_that_enrols_a_client_who_has_done_the_whole_pathway_says_it_completed(
    bapp: Bapp, world: Session
) -> None:
    """Enrolling a client who has done every skill of the pathway completes the enrolment at once (README). The
    booking said nothing of it: the result now lists it in `pathways_completed`, and the human output says it as
    `skills` commands do (a dry run too, in its words)."""
    for made in (
        bapp("pathways", "add", "solo", "--name", "Solo", "--tier", "Only: the one"),
        bapp("skills", "add", "s1", "--name", "S1", "--link", "solo:1"),
        bapp("skills", "complete", "ada@example.com", "s1"),
    ):
        assert made.exit_code == 0, made.stderr
    book = ["-v", "bookings", "create", "--client", "ada@example.com", "--session", "agent-clinic", "--json"]
    rehearsed = bapp(*book, "--pathway", "solo", "--start", START, "--dry-run")
    assert rehearsed.exit_code == 0 and rehearsed.json()["pathways_completed"] == ["solo"], rehearsed.stderr
    assert "🎉 Pathway would be completed: solo" in rehearsed.stderr.splitlines()
    booked = bapp(*book, "--pathway", "solo", "--start", START, "--idempotency-key", "k")
    assert (booked.json()["enrolled"], booked.json()["pathways_completed"]) == (True, ["solo"]), booked.stderr
    assert "🎉 Pathway completed: solo" in booked.stderr.splitlines()
    # its repeat returns it and did nothing (enrolled false): completed nothing either, the key kept
    repeat = bapp(*book, "--pathway", "solo", "--start", START, "--idempotency-key", "k")
    assert [repeat.json()[key] for key in ("existing", "enrolled", "pathways_completed")] == [True, False, []]
    assert "🎉" not in repeat.stderr
    world.rollback()
    assert world.scalars(select(Enrolment.status)).one() == "completed"
    # a second booking finds the enrolment made: nothing completed by it
    again = bapp(*book, "--pathway", "solo", "--start", "2031-06-03T10:00:00Z")
    assert (again.json()["enrolled"], again.json()["pathways_completed"]) == (False, []), again.stderr
    assert "🎉" not in again.stderr


def test_pathway_session_without_a_pathway_lists_the_choices(bapp: Bapp, world: Session) -> None:
    before = totals(world)
    result = create(bapp, "--client", "ada@example.com", "--answer", "Company size=1-10", session="accelerate-review")
    assert result.exit_code == 6
    assert "pathway: 'Accelerate Review' needs a pathway" in result.stderr
    assert "choose one of: accelerate, pivot" in result.stderr
    unchanged(world, before)


def test_answers_file_in_both_shapes(bapp: Bapp, world: Session, tmp_path: Path) -> None:
    as_object = tmp_path / "answers.json"
    as_object.write_text(json.dumps({"Company size": "1-10", "Tools": ["Zapier", "Python"]}), encoding="utf-8")
    first = create(
        bapp, "--client", "ada@example.com", "--pathway", "accelerate", "--answers-file", str(as_object),
        session="accelerate-review",
    )  # fmt: skip
    assert first.exit_code == 0, first.stderr
    assert first.json()["custom_question_responses"][1]["answer"] == ["Zapier", "Python"]
    as_list = tmp_path / "calendly.json"
    as_list.write_text(json.dumps([{"question": "Company size", "answer": "11-50", "position": 0}]), encoding="utf-8")
    second = create(
        bapp, "--client", "ada@example.com", "--pathway", "accelerate", "--answers-file", str(as_list),
        start="2031-06-03T10:00:00Z", session="accelerate-review",
    )  # fmt: skip
    assert second.exit_code == 0, second.stderr
    assert second.json()["custom_question_responses"] == [
        {"question": "Company size", "answer": "11-50", "position": 0}
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{broken", "Error: answers-file: not valid JSON (line 1, column 2"),
        (None, "Error: answers-file: cannot read"),
        (b"\xff\xfe{}", "Error: answers-file: "),
        ("[" * 100_000 + "]" * 100_000, "Error: answers-file: not valid JSON (arrays or objects nested too deeply)"),
        ('{"Goal": "Ship \\ud800 it"}', "Error: answers-file: key 'Goal': holds an unpaired \\u surrogate escape"),
        (
            '{"a": ' * 100_000 + "1" + "}" * 100_000,
            "Error: answers-file: not valid JSON (arrays or objects nested too deeply)",
        ),
    ],
)
def test_bad_answers_file_is_refused(
    bapp: Bapp, world: Session, tmp_path: Path, content: str | bytes | None, message: str
) -> None:
    path = tmp_path / "answers.json"
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    elif isinstance(content, bytes):
        path.write_bytes(content)
    before = totals(world)
    result = create(bapp, "--client", "ada@example.com", "--answers-file", str(path))
    assert result.exit_code == 6 and result.stdout == ""
    assert result.stderr.startswith(message)
    unchanged(world, before)


def test_invalid_answers_are_refused_naming_the_question(bapp: Bapp, world: Session) -> None:
    before = totals(world)
    result_args = [
        "bookings", "create", "--session", "accelerate-review", "--start", START, "--json",
        "--client", "ada@example.com", "--pathway", "accelerate",
        "--answer", "Company size=enormous", "--answer", "Budget=lots",
    ]  # fmt: skip
    result = bapp(*result_args)
    assert result.exit_code == 6
    lines = result.stderr.splitlines()
    assert lines[:2] == ["Error: answers: 2 problems", "Hint: the session's questions: 'Company size', 'Tools'"]
    assert json.loads(lines[2])["error"]["details"] == [
        "answer 'Budget': the session has no such question",
        "answer 'Company size': 'enormous' is not one of: 1-10, 11-50",
    ]
    plain = bapp(*(arg for arg in result_args if arg != "--json"))
    assert plain.stderr.splitlines()[1:3] == [
        "  answer 'Budget': the session has no such question",
        "  answer 'Company size': 'enormous' is not one of: 1-10, 11-50",
    ]
    unchanged(world, before)


def test_overlap_is_exit_8_and_allow_overlap_books_it(bapp: Bapp, world: Session) -> None:
    assert create(bapp, "--client", "ada@example.com").exit_code == 0
    before = totals(world)
    clash = create(bapp, "--client", "bob@example.com", start="2031-06-02T10:15:00Z")
    assert clash.exit_code == 8 and clash.stdout == ""
    assert clash.stderr.startswith("Error: start: builder coach@example.com already has booking BK-")
    assert "Hint: pick another time, or pass --allow-overlap" in clash.stderr
    unchanged(world, before)
    forced = create(bapp, "--client", "bob@example.com", "--allow-overlap", start="2031-06-02T10:15:00Z")
    assert forced.exit_code == 0


def test_an_overlap_across_midnight_names_each_bookings_days(bapp: Bapp, world: Session) -> None:
    # the clash's end was written as a time alone: a booking of 23:45–00:15 read "…T23:45:00Z–00:15Z", which says
    # nothing of the next day; create, import and reconcile share the message (rule_book.find_clash)
    first = create(bapp, "--client", "ada@example.com", start="2031-06-02T23:45:00Z")
    assert first.exit_code == 0, first.stderr
    clash = create(bapp, "--client", "bob@example.com", start="2031-06-03T00:00:00Z")
    assert clash.exit_code == 8
    reference = first.json()["reference"]
    assert clash.stderr.startswith(
        f"Error: start: builder coach@example.com already has booking {reference} at"
        " 2031-06-02T23:45:00Z–2031-06-03T00:15:00Z overlapping 2031-06-03T00:00:00Z–00:30Z"
    ), clash.stderr


def test_idempotency_key_returns_the_same_booking_and_refuses_other_data(bapp: Bapp, world: Session) -> None:
    first = create(bapp, "--client", "ada@example.com", "--idempotency-key", "order-77")
    repeat = create(bapp, "--client", "ADA@example.com", "--idempotency-key", "order-77")
    assert first.exit_code == repeat.exit_code == 0
    assert repeat.json()["reference"] == first.json()["reference"] and repeat.json()["existing"] is True
    # a retry that succeeds is silent on stderr (CLI.md: a cron run that succeeds prints nothing there);
    # `existing` says it, and --verbose (or a terminal) shows the note
    assert repeat.stderr == ""
    retry = ["bookings", "create", "--session", "getting-started", "--start", START, "--client", "ada@example.com"]
    verbose = bapp(
        "--verbose", *retry, "--answer", "What do you want to build?=An agent", "--idempotency-key", "order-77"
    )
    assert verbose.exit_code == 0 and "already exists for this idempotency key" in verbose.stderr
    before = totals(world)
    assert before[0] == 1
    other = create(bapp, "--client", "ada@example.com", "--idempotency-key", "order-77", start="2031-06-03T10:00:00Z")
    assert other.exit_code == 8
    assert f"was already used for booking {first.json()['reference']} with other data" in other.stderr
    unchanged(world, before)


def test_a_repeat_after_an_import_gave_the_booking_another_builder_returns_it(
    bapp: Bapp, world: Session, tmp_path: Path
) -> None:
    # The repeat read the --builder it left out as the booking's builder now: once an import had reassigned the
    # booking (the session still the coach's, as at the first run), the same command was exit 8, not the booking.
    first = create(bapp, "--client", "ada@example.com", "--idempotency-key", "order-78")
    assert bapp("builders", "add", "other@example.com", "--name", "Other").exit_code == 0
    rows = tmp_path / "reassigned.csv"
    rows.write_text(
        f"reference,client,session,start_time,builder\n{first.json()['reference']},ada@example.com,getting-started,{START},other@example.com\n"
    )
    assert bapp("import", "bookings", str(rows)).exit_code == 0
    repeat = create(bapp, "--client", "ada@example.com", "--idempotency-key", "order-78")
    assert repeat.exit_code == 0, repeat.stderr
    assert repeat.json()["existing"] is True and repeat.json()["builder"] == "other@example.com"
    assert repeat.json()["reference"] == first.json()["reference"]


def test_dry_run_checks_everything_and_writes_nothing(bapp: Bapp, world: Session) -> None:
    before = totals(world)
    result = create(bapp, "--client", "walk.in@example.com", "--dry-run")
    assert result.exit_code == 0
    assert result.json()["account_created"] is True and result.json()["reference"].startswith("BK-")
    assert "Dry run: every rule passed" in result.stderr
    unchanged(world, before)
    # what it would do beside the booking, as a real run says what it did (a dry run said nothing of it)
    walk_in = ["--client", "walk.in@example.com", "--create-account", "--pathway", "pivot"]
    review = ["--session", "accelerate-review", "--start", START, "--answer", "Company size=1-10"]
    said = bapp("-v", "bookings", "create", *review, *walk_in, "--dry-run")
    assert said.exit_code == 0 and said.stderr.splitlines()[1:] == [
        "Would create an account for walk.in@example.com.",
        "Would enroll walk.in@example.com in pivot.",
    ], said.stderr
    unchanged(world, before)
    refused = create(bapp, "--client", "walk.in@example.com", "--dry-run", start="2020-01-01T10:00Z")
    assert refused.exit_code == 6 and "start: 2020-01-01T10:00:00Z is not in the future" in refused.stderr


@pytest.mark.parametrize(
    ("args", "start", "instant"),
    [
        (["--timezone", "Europe/London"], "2031-03-29T10:00", "2031-03-29T10:00:00Z"),  # GMT: last day before BST
        (["--timezone", "Europe/London"], "2031-03-30T10:00", "2031-03-30T09:00:00Z"),  # BST
        (["--timezone", "America/New_York"], "2031-03-10 10:00", "2031-03-10T14:00:00Z"),  # EDT
        ([], "2031-03-30T10:00+02:00", "2031-03-30T08:00:00Z"),
    ],
)
def test_naive_starts_are_read_in_the_timezone_across_dst(
    bapp: Bapp, world: Session, args: list[str], start: str, instant: str
) -> None:
    result = create(bapp, "--client", "ada@example.com", *args, start=start)
    assert result.exit_code == 0, result.stderr
    assert result.json()["start_time"] == instant
    assert result.json()["client_timezone"] == (args[1] if args else "UTC")


def test_global_timezone_reads_naive_starts_too(bapp: Bapp, world: Session) -> None:
    result = bapp(
        "--timezone", "Europe/London", "bookings", "create", "--client", "ada@example.com",
        "--session", "getting-started", "--start", "2031-07-01T10:00", "--answer", "What do you want to build?=x",
        "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert (result.json()["start_time"], result.json()["client_timezone"]) == ("2031-07-01T09:00:00Z", "Europe/London")


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--client", "not-an-email"], 6, "Error: client: 'not-an-email' is not a valid e-mail address"),
        (["--client", "ada@example.com", "--session", "no-such-thing"], 7, "Error: no session type with slug"),
        (["--client", "ada@example.com", "--session", "999"], 7, "Error: no session type with id 999"),
        (["--client", "ada@example.com", "--pathway", "juggling"], 7, "Error: no pathway 'juggling'"),
        (["--client", "ada@example.com", "--builder", "ghost@example.com"], 7, "Error: no builder with e-mail"),
        (  # no such day: a bad flag value, the parser's usage error (CLI.md: exit 2)
            ["--client", "ada@example.com", "--start", "2031-02-30T10:00"],
            2,
            "Error: Invalid value for '--start': '2031-02-30T10:00' is not a",
        ),
        (  # no such zone: a bad flag value too
            ["--client", "ada@example.com", "--timezone", "Mars/Olympus"],
            2,
            "Error: Invalid value for '--timezone': unknown timezone 'Mars/Olympus'",
        ),
        (["--client", "ada@example.com", "--start", "2031-03-30T01:30", "--timezone", "Europe/London"], 6, "not exist"),
        (["--client", "ada@example.com", "--duration", "45"], 6, "Error: duration: 45 minutes is not offered"),
        (["--client", "ada@example.com", "--answer", "no separator"], 6, "Error: answer: 'no separator' is not"),
    ],
)
def test_bad_booking_flags_are_refused_and_nothing_is_written(
    bapp: Bapp, world: Session, args: list[str], code: int, message: str
) -> None:
    before = totals(world)
    base = ["bookings", "create", "--session", "getting-started", "--start", START]
    base += ["--answer", "What do you want to build?=x"]
    result = bapp(*base, *args)
    assert result.exit_code == code, result.stderr
    assert result.stdout == ""
    assert message in next(line for line in result.stderr.splitlines() if line.startswith("Error:"))
    unchanged(world, before)


def test_sql_looking_text_is_stored_literally(bapp: Bapp, world: Session) -> None:
    hostile = "x'); DROP TABLE bookings; --"
    result = create(
        bapp, "--client", "robert@example.com", "--name", hostile, "--answer", f"What do you want to build?={hostile}"
    )
    assert result.exit_code == 0, result.stderr
    world.rollback()
    assert world.scalars(select(User.name).where(User.email == "robert@example.com")).one() == hostile
    assert world.scalars(select(Booking)).one().custom_question_responses[0]["answer"] == hostile


def test_status_commands_follow_the_state_machine(bapp: Bapp, world: Session) -> None:
    paid = create(
        bapp, "--client", "ada@example.com", "--pathway", "accelerate", "--answer", "Company size=1-10",
        session="accelerate-review",
    ).json()["reference"]  # fmt: skip
    illegal = bapp("bookings", "complete", paid)
    assert illegal.exit_code == 8 and illegal.stdout == ""
    assert illegal.stderr.startswith(f"Error: booking {paid} is pending; cannot complete (allowed: confirm, cancel)")
    confirmed = bapp("bookings", "confirm", paid.lower(), "--paid", "--json")
    assert confirmed.exit_code == 0, confirmed.stderr
    assert (confirmed.json()["status"], confirmed.json()["payment_status"]) == ("confirmed", "paid")
    early = bapp("bookings", "no-show", paid)
    assert early.exit_code == 8 and "before it has started" in early.stderr
    refunded = bapp("bookings", "refund", paid, "-f", "tsv")
    assert refunded.exit_code == 0 and refunded.stdout.splitlines()[0].startswith("reference\tclient\t")
    cancelled = bapp("bookings", "cancel", paid, "--reason", "moved abroad", "--json")
    assert cancelled.exit_code == 0 and cancelled.json()["status"] == "cancelled"
    final = bapp("bookings", "confirm", paid)
    assert final.exit_code == 8 and "no status change is allowed from cancelled" in final.stderr
    assert bapp("bookings", "mark-paid", "BK-NOPE2345").exit_code == 7
    world.rollback()
    stored = world.scalars(select(Booking)).one()
    assert (stored.status, stored.payment_status, stored.cancellation_reason) == (
        "cancelled",
        "refunded",
        "moved abroad",
    )
    commands = [entry.command for entry in world.scalars(select(AuditEntry).where(AuditEntry.entity == "booking"))]
    assert commands == [
        "bapp bookings create",
        "bapp bookings confirm",
        "bapp bookings refund",
        "bapp bookings cancel",
    ]


def test_cancelling_a_paid_booking_says_the_payment_stays(bapp: Bapp, world: Session) -> None:
    # cancelling moves no money, and said nothing of it: staff were left to guess whether it was refunded
    paid = create(
        bapp, "--client", "ada@example.com", "--pathway", "accelerate", "--answer", "Company size=1-10",
        session="accelerate-review",
    ).json()["reference"]  # fmt: skip
    assert bapp("bookings", "confirm", paid, "--paid").exit_code == 0
    cancelled = bapp("--verbose", "bookings", "cancel", paid, "--json")
    assert cancelled.exit_code == 0, cancelled.stderr
    assert (cancelled.json()["status"], cancelled.json()["payment_status"]) == ("cancelled", "paid")
    assert f"{paid}: the payment stays recorded; `bapp bookings refund {paid}` records a refund.\n" in cancelled.stderr
    unpaid = create(bapp, "--client", "bob@example.com", start="2031-01-01T10:00Z").json()["reference"]
    quiet = bapp("--verbose", "bookings", "cancel", unpaid)
    assert quiet.exit_code == 0 and "payment" not in quiet.stderr  # nothing was paid: nothing to say


def test_past_bookings_complete_and_no_show(bapp: Bapp, world: Session) -> None:
    refs = [
        create(bapp, "--client", "ada@example.com", "--allow-past", start=start).json()["reference"]
        for start in ("2024-01-01T10:00Z", "2024-01-02T10:00Z")
    ]
    assert bapp("bookings", "complete", refs[0]).exit_code == 0
    assert bapp("bookings", "no-show", refs[1]).exit_code == 0
    listed = bapp("bookings", "list", "--client", "ada@example.com", "--json").json()
    assert [(item["reference"], item["status"]) for item in listed] == [(refs[0], "completed"), (refs[1], "no_show")]


def test_list_takes_the_status_as_the_no_show_command_spells_it(bapp: Bapp, world: Session) -> None:
    # `bookings no-show REF` then `bookings list --status no-show` was refused (exit 2): the status is stored as
    # no_show. Both spellings (any case) list the no-shows, which every output still writes no_show.
    refs = [
        create(bapp, "--client", "ada@example.com", "--allow-past", start=start).json()["reference"]
        for start in ("2024-01-01T10:00Z", "2024-01-02T10:00Z")
    ]
    assert bapp("bookings", "complete", refs[0]).exit_code == 0
    assert bapp("bookings", "no-show", refs[1]).exit_code == 0
    for spelling in ("no-show", " No-Show", "no_show"):
        listed = bapp("bookings", "list", "--status", spelling, "--json")
        assert listed.exit_code == 0, listed.stderr
        assert [(item["reference"], item["status"]) for item in listed.json()] == [(refs[1], "no_show")]
    assert bapp("bookings", "list", "--status", "no-show", "-f", "csv").stdout.splitlines()[1].count(",no_show,") == 1
    unknown = bapp("bookings", "list", "--status", "no show")
    assert unknown.exit_code == 2 and unknown.stdout == ""
    assert "'no show' is not one of pending, confirmed, completed, cancelled, no_show" in unknown.stderr


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # reading the date is the same on both
def test_a_date_filter_in_a_zone_whose_midnight_is_skipped_starts_at_the_first_local_instant(
    bapp: Bapp, world: Session
) -> None:
    # Cairo's clocks go from 00:00 to 01:00 on 25 April 2031: that day begins at 22:00 UTC the day before
    late = create(bapp, "--client", "ada@example.com", start="2031-04-24T21:30Z").json()["reference"]
    early = create(bapp, "--client", "bob@example.com", start="2031-04-24T22:30Z").json()["reference"]
    cairo = ("--timezone", "Africa/Cairo", "bookings", "list", "--json")
    assert [item["reference"] for item in bapp(*cairo, "--from", "2031-04-25").json()] == [early]
    assert [item["reference"] for item in bapp(*cairo, "--to", "2031-04-25").json()] == [late]


LISTING = str(REPO / "examples/calendly/scheduled_events.json")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # reading the option: no backend's part
@pytest.mark.parametrize(
    ("command", "code", "refusal"),
    [
        # not a date and time, as not one of the statuses is not a status: a bad flag value, the parser's usage
        # error (CLI.md: exit 2) naming the flag; they were exit 6, an invalid row's code
        (("bookings", "list", "--from"), 2, "Invalid value for '--from': '' is not a valid date and time"),
        (("bookings", "list", "--to"), 2, "Invalid value for '--to': '' is not"),
        (("bookings", "list", "--status"), 2, "Invalid value for '--status': '' is not one of pending"),
        (("sessions", "slots", "intro", "--from"), 2, "Invalid value for '--from': '' is not"),
        (("calendly", "pull-bookings", "--from-file", LISTING, "--since"), 2, "Invalid value for '--since': '' is not"),
        (("calendly", "pull-bookings", "--from-file", LISTING, "--until"), 2, "Invalid value for '--until': '' is not"),
        (("reports", "bookings-by-pathway", "--from"), 2, "Invalid value for '--from': '' is not"),
        (("reports", "pathway-analytics", "--to"), 2, "Invalid value for '--to': '' is not"),
        (("clients", "enroll", "ada@example.com", "accelerate", "--start"), 2, "Invalid value for '--start': '' is"),
        (
            ("bookings", "create", "--client", "ada@example.com", "--session", "getting-started", "--start"),
            2,
            "Invalid value for '--start'",
        ),
    ],
)
def test_an_empty_filter_is_refused_not_dropped(
    bapp: Bapp, world: Session, command: tuple[str, ...], code: int, refusal: str
) -> None:
    # `--from "$DAY"` with DAY unset listed every booking (and pulled the default 30 days, listed slots from now),
    # where an empty --client, --pathway or a report's --from is refused
    create(bapp, "--client", "ada@example.com")
    result = bapp(*command, "", "--json")
    assert result.exit_code == code, result.stdout
    assert result.stdout == "" and f"Error: {refusal}" in result.stderr
    if "create" in command:  # a date and time that breaks a rule (a past start) is still invalid input
        past = bapp(*command, "2020-01-06T10:00Z", "--answer", "What do you want to build?=An agent")
        assert past.exit_code == 6 and "start: 2020-01-06T10:00:00Z is not in the future" in past.stderr


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # reading the options: no backend's part
def test_a_list_period_that_ends_before_it_starts_is_refused(bapp: Bapp, world: Session) -> None:
    # an inverted or empty [from, to) listed no bookings, as if there were none; refused in the reports' words
    create(bapp, "--client", "ada@example.com", start="2031-10-26T00:30Z")
    for period, message in (
        (("2031-10-27", "2031-10-26"), "to: 2031-10-26T00:00:00Z must be after from (2031-10-27T00:00:00Z)"),
        (
            ("2031-10-26T01:30+01:00", "2031-10-26T00:30Z"),
            "to: 2031-10-26T00:30:00Z must be after from (2031-10-26T00:30:00Z)",
        ),
    ):
        result = bapp("bookings", "list", "--from", period[0], "--to", period[1], "--json")
        assert result.exit_code == 6 and result.stderr.startswith(f"Error: {message}\n"), result.stderr
    assert len(bapp("bookings", "list", "--from", "2031-10-26", "--to", "2031-10-27", "--json").json()) == 1


def test_list_and_show_render_every_format(bapp: Bapp, world: Session) -> None:
    first = create(bapp, "--client", "ada@example.com").json()["reference"]
    second = create(bapp, "--client", "bob@example.com", start="2031-06-01T10:00Z").json()["reference"]
    listed = bapp("bookings", "list")
    assert listed.exit_code == 0
    rows = listed.stdout.splitlines()
    assert rows[0].split("\t")[:3] == ["reference", "client", "client_name"] and len(rows) == 3
    assert rows[1].startswith(second) and rows[2].startswith(first)
    table = bapp("--timezone", "Europe/London", "bookings", "list", "-f", "table", env=WIDE)
    assert first in table.stdout and "2031-06-02 11:00 BST" in table.stdout
    assert [item["reference"] for item in bapp("bookings", "list", "--from", "2031-06-02", "--json").json()] == [first]
    assert bapp("bookings", "list", "--status", "done").exit_code == 2  # a bad flag value: a usage error (CLI.md)
    assert bapp("bookings", "list", "--from", "yesterday").exit_code == 2  # not a date and time: a usage error too
    shown = bapp("bookings", "show", first, "-f", "table", env=WIDE)
    assert shown.exit_code == 0 and "What do you want to build?: An agent" in shown.stdout
    assert bapp("bookings", "show", first, "--json").json()["reference"] == first
    missing = bapp("bookings", "show", "BK-ZZZZZZZZ")
    assert missing.exit_code == 7 and missing.stderr.startswith("Error: no booking 'BK-ZZZZZZZZ'")


def test_show_says_why_and_when_a_booking_was_cancelled(bapp: Bapp, world: Session) -> None:
    # the reason `cancel --reason` (or Calendly) gave and the time were stored but shown nowhere but an export
    reference = create(bapp, "--client", "ada@example.com").json()["reference"]
    active = bapp("bookings", "show", reference, "--json").json()
    assert (active["cancellation_reason"], active["cancelled_at"]) == (None, None)
    assert bapp("bookings", "cancel", reference, "--reason", "client asked to move it").exit_code == 0
    shown = bapp("bookings", "show", reference, "--json").json()
    assert shown["cancellation_reason"] == "client asked to move it"
    cancelled_at = dt.datetime.fromisoformat(shown["cancelled_at"])
    assert abs(cancelled_at - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=5)
    assert list(shown)[-2:] == ["cancellation_reason", "cancelled_at"]  # after the record's keys, which stay
    table = bapp("--timezone", "Europe/London", "bookings", "show", reference, "-f", "table", env=WIDE)
    assert "cancellation reason" in table.stdout and "client asked to move it" in table.stdout
    local = cancelled_at.astimezone(ZoneInfo("Europe/London"))
    assert re.search(rf"cancelled at +{local:%Y-%m-%d %H:%M %Z}", table.stdout), table.stdout
    # the list and the other commands' records keep their keys (CLI.md's booking record)
    assert "cancellation_reason" not in bapp("bookings", "list", "--json").json()[0]


def test_sessions_available_anonymous_and_client(bapp: Bapp, world: Session) -> None:
    anonymous = bapp("sessions", "available", "--json")
    assert anonymous.exit_code == 0 and anonymous.stderr == ""
    assert [item["title"] for item in anonymous.json()] == ["Getting Started"]
    client = bapp("sessions", "available", "--client", "ada@example.com", "--json")
    assert [item["title"] for item in client.json()] == ["Getting Started", "Accelerate Review", "Agent Clinic"]
    assert client.json()[1]["price"] == "30.00" and client.json()[1]["pathways"] == ["accelerate", "pivot"]
    table = bapp("sessions", "available", "--client", "ada@example.com", "-f", "table", env=WIDE)
    positions = [table.stdout.index(heading) for heading in ("Free Sessions", "Learning Pathway", "Specialized")]
    assert positions == sorted(positions)
    # a price in the words of sessions list: 'free' here read as the category beside 'Free Sessions'
    catalogue = bapp("sessions", "list", "-f", "table", env=WIDE).stdout
    assert "no charge" in catalogue and "no charge" in table.stdout and " free " not in table.stdout
    assert "30.00 GBP" in table.stdout
    assert bapp("sessions", "available", "--pathway", "play", "--client", "ada@example.com", "--json").json()[1][
        "title"
    ] == ("Agent Clinic")
    both = bapp("sessions", "available", "--client", "ada@example.com", "--anonymous")
    assert both.exit_code == 2 and "cannot be used together" in both.stderr
    unknown = bapp("sessions", "available", "--client", "ghost@example.com")
    assert unknown.exit_code == 7 and unknown.stdout == ""


@pytest.mark.parametrize("named", [True, False])
def test_a_booking_under_a_pathway_being_archived_is_refused_though_the_client_is_enrolled(
    bapp: Bapp, world: Session, named: bool
) -> None:
    """Ada is enrolled in accelerate. An admin archives it (not yet committed) while she books Accelerate Review in it
    (--pathway accelerate, or no --pathway: rule 4 takes her one active enrolment). On PostgreSQL the booking read
    accelerate as it was, active, and since she was enrolled nothing read it again: the archived pathway took a
    booking holding a slot (exit 0), which rule 4 refuses. It now waits for the archive and is refused as it would be
    after it (exit 6, nothing written). On SQLite the booking's writer waits for the archive's whole transaction."""
    from bapp_cli.db.engine import make_engine, unit_of_work
    from bapp_cli.services.pathway_admin import archive_pathway
    from tests.cli.test_progress_cli import until_it_waits

    assert bapp("clients", "enroll", "ada@example.com", "accelerate").exit_code == 0
    before = totals(world)
    options = ["--pathway", "accelerate"] if named else []
    command = ["bookings", "create", "--session", "accelerate-review", "--start", START, "--json"]
    command += ["--client", "ada@example.com", "--answer", "Company size=1-10", *options]
    engine = make_engine(bapp.database_url)
    try:
        with unit_of_work(engine, actor="test", command="archive") as admin:
            archive_pathway(admin, "accelerate", now=dt.datetime.now(dt.UTC))
            racing = bapp.popen(*command)
            until_it_waits(bapp, engine, racing)  # for the archive to commit
        stdout, stderr = racing.communicate(timeout=60)
    finally:
        engine.dispose()
    assert (racing.returncode, stdout) == (6, ""), stderr
    code = "pathway_archived" if named else "pathway_required"
    assert f'"code": "{code}"' in stderr, stderr
    world.rollback()
    assert count(world, Booking) == before[0]

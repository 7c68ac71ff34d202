"""Issue 13 / R8: bookings that are real in Calendly, against the local fake Calendly over real HTTP.

Every test checks both sides afterwards: the invitees the fake holds and the bookings in bapp's database.
"""

# ruff: noqa: F811  (pytest fixtures imported from calendly_fixtures are parameters by design)

from __future__ import annotations

import datetime as dt
import json
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import insert, select, update

from bapp_cli.db.engine import make_engine
from bapp_cli.db.models import (
    AuditEntry,
    Badge,
    Booking,
    CalendlyInvitation,
    Pathway,
    PathwayTier,
    SkillPathwayLink,
    User,
    UserSkillProgress,
)
from tests.cli.calendly_fixtures import (
    USER,
    catalogue,
    cbapp,  # noqa: F401 (fixture)
    error_lines,
    fake_server,  # noqa: F401 (fixture)
)
from tests.cli.calendly_fixtures import fake as plain_fake  # noqa: F401 (fixture)
from tests.conftest import Bapp, SeededCopies
from tests.fakes.calendly_server import API_ORIGIN, FakeCalendly, Fault

FREE_TYPE = f"{API_ORIGIN}/event_types/ET00000000"  # "Free Discovery Call 0": free, solo, inbound_call
FREE = "free-discovery-call-0"
ANSWERS = ("--answer", "Company name=Acme", "--answer", "What would you like to achieve?=Ship an agent")
CLIENT = "ava@client.example"
OTHER = "ben@client.example"


@pytest.fixture
def fake(plain_fake: FakeCalendly) -> Iterator[FakeCalendly]:
    plain_fake.reset_writes()
    yield plain_fake
    plain_fake.reset_writes()


@pytest.fixture(scope="module")
def synced_copies(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeededCopies]:
    yield from SeededCopies.per_module(tmp_path_factory)


@pytest.fixture
def synced(cbapp: Bapp, fake: FakeCalendly, synced_copies: SeededCopies) -> Bapp:
    """`cbapp` with the fake's catalogue synced: by the module's first test on a backend, a copy of that database
    for each later one (the `fake` fixture gives every test the same 12 types)."""

    def sync() -> None:
        result = cbapp("calendly", "sync", "--user", USER, "--json")
        assert result.exit_code == 0, result.stderr

    synced_copies.seed_or_copy(cbapp.database_url, sync)
    return cbapp


def slot(days: int = 2, hour: int = 10) -> dt.datetime:
    day = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0) + dt.timedelta(days=days)
    return day.replace(hour=hour)


def z(moment: dt.datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def create(
    bapp: Bapp,
    start: dt.datetime,
    *extra: str,
    client: str = CLIENT,
    session: str = FREE,
    env: dict[str, str | None] | None = None,
) -> Any:
    args = ("bookings", "create", "--client", client, "--session", session, "--start", z(start), *ANSWERS)
    return bapp(*args, "--json", *extra, env=env)


def bookings(database_url: str) -> list[Booking]:
    engine = make_engine(database_url)
    try:
        from sqlalchemy.orm import Session

        with Session(engine) as session:
            return list(session.scalars(select(Booking).order_by(Booking.id)))
    finally:
        engine.dispose()


def reconciled_refused(bapp: Bapp, fake: FakeCalendly) -> Any:
    """A reconcile whose resent booking Calendly refuses: the hold is removed and no booking is left; the client's
    `clients show --json` after it (what the hold made may stay or go)."""
    fake.refuse_plan_next()
    settled = bapp("calendly", "reconcile", "--json")
    assert settled.exit_code == 0, settled.stderr
    assert [(row["action"], row["status"]) for row in settled.json()] == [("resent", "removed")]
    assert bookings(bapp.database_url) == []
    return bapp("clients", "show", CLIENT, "--json")


def audit_rows(database_url: str) -> list[AuditEntry]:
    engine = make_engine(database_url)
    try:
        from sqlalchemy.orm import Session

        with Session(engine) as session:
            return list(session.scalars(select(AuditEntry).order_by(AuditEntry.id)))
    finally:
        engine.dispose()


def assert_booked_in_calendly(synced: Bapp, fake: FakeCalendly) -> None:
    """The one booking is confirmed and carries the one invitee Calendly holds."""
    [invitee] = fake.invitees_of(FREE_TYPE)
    [booking] = bookings(synced.database_url)
    assert (booking.calendly_invitee_uri, booking.calendly_state, booking.status) == (
        invitee["uri"],
        "booked",
        "confirmed",
    )


def posts(fake: FakeCalendly, path: str = "/invitees") -> list[Any]:
    return [request.json() for request in fake.requests if request.method == "POST" and request.path == path]


# -- happy path --------------------------------------------------------------------------------------


def test_a_booking_goes_through_calendly_with_its_uris(synced: Bapp, fake: FakeCalendly) -> None:
    start = slot()
    result = create(synced, start)
    assert result.exit_code == 0, result.stderr
    record = result.json()
    invitees = fake.invitees_of(FREE_TYPE)
    assert len(invitees) == 1
    assert record["calendly_invitee_uri"] == invitees[0]["uri"]
    assert record["calendly_event_uri"] == invitees[0]["event"]
    assert record["status"] == "confirmed" and record["payment_status"] == "not_required"
    [booking] = bookings(synced.database_url)
    assert booking.calendly_state == "booked"
    assert booking.calendly_cancel_url == invitees[0]["cancel_url"]
    assert booking.calendly_reschedule_url == invitees[0]["reschedule_url"]
    assert booking.calendly_join_url and booking.calendly_join_url.startswith("https://zoom.example/j/")
    assert booking.end_time == start + dt.timedelta(minutes=15)
    [body] = posts(fake)
    assert body["event_type"] == FREE_TYPE
    assert body["start_time"] == start.strftime("%Y-%m-%dT%H:%M:%S.000000Z")
    assert body["invitee"] == {"name": "ava", "email": CLIENT, "timezone": "UTC"}
    # inbound_call is the type's one location and it is not round robin: sent
    assert body["location"] == {"kind": "inbound_call"}


def test_the_answers_sent_are_the_validated_ones_in_calendlys_question_order(synced: Bapp, fake: FakeCalendly) -> None:
    result = synced(
        "bookings", "create", "--client", CLIENT, "--session", "specialized-architecture-review-4",
        "--start", z(slot()), "--create-account", "--json",
        "--answer", "topics=RAG", "--answer", "Topics=Agents", "--answer", "experience with ai=some",
        "--answer", "What would you like to achieve?=  Ship it  ", "--answer", "Company name=Acme",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    [body] = posts(fake)
    assert body["questions_and_answers"] == [
        {"question": "Company name", "answer": "Acme", "position": 0},
        {"question": "What would you like to achieve?", "answer": "Ship it", "position": 1},
        {"question": "Experience with AI", "answer": "Some", "position": 2},
        {"question": "Topics", "answer": "RAG\nAgents", "position": 3},
    ]
    assert result.json()["custom_question_responses"][3] == {
        "question": "Topics",
        "answer": ["RAG", "Agents"],
        "position": 3,
    }


def test_a_start_that_is_not_an_open_slot_is_refused_with_the_nearest(synced: Bapp, fake: FakeCalendly) -> None:
    start = slot(hour=10) + dt.timedelta(minutes=30)
    result = create(synced, start)
    assert result.exit_code == 8, result.stderr
    assert error_lines(result.stderr) == [
        f"Error: start: {z(start)} is not an open slot of 'Free Discovery Call 0' in Calendly"
    ]
    assert f"nearest open starts: {z(slot(hour=9))}, {z(slot(hour=10))}, {z(slot(hour=11))}" in result.stderr
    assert bookings(synced.database_url) == []
    assert posts(fake) == []


def test_the_nearest_open_starts_named_are_ones_bookings_create_takes(synced: Bapp, fake: FakeCalendly) -> None:
    # the hint named Calendly's nearest open starts as they were: one inside the buffer of the builder's booking made
    # in bapp alone, and one at the client's own booking, each of which `bookings create` then refused (exit 8)
    coach = "coach@example.com"
    assert synced("builders", "add", coach, "--calendly-user", USER, "--buffer", "30").exit_code == 0
    assert synced("calendly", "sync", "--user", USER).exit_code == 0  # the coach owns the synced types now
    for title, builder in (("Coached", ("--builder", coach)), ("Alone", ())):
        assert (
            synced("sessions", "add", "--title", title, "--duration", "60", "--category", "free", *builder).exit_code
            == 0
        )
    for client, session, hour in (("bo@client.example", "coached", 12), (CLIENT, "alone", 15)):
        local = ("bookings", "create", "--client", client, "--session", session, "--start", z(slot(days=3, hour=hour)))
        assert synced(*local).exit_code == 0
    start = slot(days=3, hour=14) + dt.timedelta(minutes=30)
    result = create(synced, start)
    assert result.exit_code == 8, result.stderr
    # 13:00 (15 minutes, within the coach's 30 after 12:00-13:00) and 15:00 (the client's) are nearer, but refused
    named = [slot(days=3, hour=hour) for hour in (11, 14, 16)]
    assert f"nearest open starts: {', '.join(map(z, named))}" in result.stderr
    for taken in named:
        assert create(synced, taken, "--dry-run").exit_code == 0
    for refused in (13, 15):
        assert create(synced, slot(days=3, hour=refused), "--dry-run").exit_code == 8
    # with --allow-overlap those are taken, so named: the hint left them out (and named 11:00, 16:00 instead)
    result = create(synced, start, "--allow-overlap")
    assert result.exit_code == 8, result.stderr
    named = [slot(days=3, hour=hour) for hour in (13, 14, 15)]
    assert f"nearest open starts: {', '.join(map(z, named))}" in result.stderr
    for taken in named:
        assert create(synced, taken, "--allow-overlap", "--dry-run").exit_code == 0
    assert posts(fake) == []


ALREADY_FILLED = json.dumps(
    {
        "title": "Invalid Argument",
        "message": "The supplied parameters are invalid.",
        "details": [
            {"parameter": "event.start_time", "message": "That start time has been filled", "code": "already_filled"}
        ],
    }
).encode()


@pytest.mark.parametrize("status", [400, 409])
def test_a_slot_taken_meanwhile_exits_8_and_keeps_nothing(synced: Bapp, fake: FakeCalendly, status: int) -> None:
    fake.fail_next("/invitees", status, body=ALREADY_FILLED if status == 400 else None)
    result = create(synced, slot())
    assert result.exit_code == 8, result.stderr
    [line] = error_lines(result.stderr)
    assert "is no longer open in Calendly" in line
    assert "nearest open starts:" in result.stderr
    assert bookings(synced.database_url) == []
    assert fake.invitees_of(FREE_TYPE) == []
    # the held booking's history stays: created, then removed with the reason
    removed = [
        row.changes for row in audit_rows(synced.database_url) if row.entity == "booking" and "removed" in row.changes
    ]
    assert removed == [{"removed": "slot taken in Calendly", "calendly_state": ["requested", None]}]


def test_a_booking_calendly_turns_down_keeps_no_account_or_enrolment_it_made(synced: Bapp, fake: FakeCalendly) -> None:
    # The held booking was removed, but the account it had created and the enrolment it had opened stayed: after
    # "exit 8, nothing kept" the client was enrolled in a pathway they had no booking in (and counted in it).
    fake.fail_next("/invitees", 409)
    taken = create(synced, slot())  # a new client: the free session makes the account
    assert taken.exit_code == 8, taken.stderr
    assert synced("clients", "add", OTHER).exit_code == 0
    fake.refuse_plan_next()
    coaching = ("--pathway", "accelerate", "--answer", "Company name=Acme")
    refused = synced(
        "bookings", "create", "--client", OTHER, "--session", "accelerate-foundation-coaching-1",
        "--start", z(slot(hour=11)), *coaching, "--json",
    )  # fmt: skip
    assert refused.exit_code == 4, refused.stderr
    assert bookings(synced.database_url) == [] and fake.invitees_of(FREE_TYPE) == []
    shown = synced("clients", "show", OTHER, "--json")
    assert shown.exit_code == 0, shown.stderr
    assert shown.json()["enrolments"] == []  # the existing client stays, without the enrolment
    assert synced("clients", "show", CLIENT).exit_code == 7  # the account made for the booking went with it
    removed = [row.changes for row in audit_rows(synced.database_url) if "removed" in row.changes]
    assert [entry["removed"] for entry in removed] == [
        "slot taken in Calendly",
        "slot taken in Calendly",
        "refused by Calendly",
        "refused by Calendly",
    ]
    # the booking made again is made afresh: account, enrolment and all
    again = synced(
        "bookings", "create", "--client", OTHER, "--session", "accelerate-foundation-coaching-1",
        "--start", z(slot(hour=11)), *coaching, "--json",
    )  # fmt: skip
    assert again.exit_code == 0, again.stderr
    assert again.json()["enrolled"] is True


def test_a_turned_down_booking_leaves_an_account_or_enrolment_another_booking_uses(
    synced: Bapp, fake: FakeCalendly
) -> None:
    first = synced(
        "bookings", "create", "--client", OTHER, "--session", "accelerate-foundation-coaching-1",
        "--start", z(slot(hour=11)), "--pathway", "accelerate", "--answer", "Company name=Acme", "--local-only",
        "--create-account", "--json",
    )  # fmt: skip
    assert first.exit_code == 0, first.stderr
    fake.fail_next("/invitees", 409)
    assert create(synced, slot(), client=OTHER).exit_code == 8
    assert [b.reference for b in bookings(synced.database_url)] == [first.json()["reference"]]
    shown = synced("clients", "show", OTHER, "--json")
    assert [e["pathway"] for e in shown.json()["enrolments"]] == ["accelerate"]


@pytest.mark.parametrize("door", ["create", "reconcile"])
def test_a_turned_down_booking_leaves_the_badges_its_enrolment_s_completion_awarded_and_their_credentials_valid(
    synced: Bapp, fake: FakeCalendly, tmp_path: Path, door: str
) -> None:
    # A client who had done every skill of accelerate (under no pathway, its badges not held: a backup restored without
    # them) was enrolled completed by the hold, which awarded the pathway's badges. Calendly's refusal (of the send, or
    # of reconcile's resend) deleted them with the enrolment: a credential exported meanwhile then named a badge id no
    # row had (on SQLite the next badge took that id, and with it the credential's status-list bit), and its bit in the
    # published list was never set. Badges rest on skills alone (SPEC 2.6), which the refusal does not undo: they stay.
    assert synced("clients", "add", OTHER).exit_code == 0
    earlier = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    engine = make_engine(synced.database_url)
    try:
        with engine.begin() as connection:
            accelerate = connection.scalar(select(Pathway.id).filter_by(slug="accelerate"))
            tiers = connection.scalars(select(PathwayTier.tier).filter_by(pathway_id=accelerate)).all()
        for tier in tiers:
            linked = ("skills", "add", f"skill-{tier}", "--name", f"Skill {tier}", "--link", f"accelerate:{tier}")
            assert synced(*linked).exit_code == 0
        with engine.begin() as connection:
            client_id = connection.scalar(select(User.id).filter_by(email=OTHER))
            skills = connection.scalars(select(SkillPathwayLink.skill_id).filter_by(pathway_id=accelerate)).all()
            done = {"client_id": client_id, "status": "completed", "completed_at": earlier, "attempts": 1}
            connection.execute(insert(UserSkillProgress), [{**done, "skill_id": skill} for skill in skills])
            connection.execute(insert(Badge).values(client_id=client_id, key="tier:accelerate:1", awarded_at=earlier))
    finally:
        engine.dispose()
    init = ("badges", "issuer", "init", "--name", "BuildAppsWith", "--url", "https://buildappswith.example/")
    assert synced(*init).exit_code == 0
    exported = tmp_path / "ben.jwt"
    coaching = (
        "--session",
        "accelerate-foundation-coaching-1",
        "--pathway",
        "accelerate",
        "--answer",
        "Company name=Acme",
    )
    if door == "create":
        fake.refuse_plan_next()
        refused = synced("bookings", "create", "--client", OTHER, "--start", z(slot(hour=11)), *coaching, "--json")
        assert refused.exit_code == 4, refused.stderr
        assert synced("badges", "export", OTHER, "-o", str(exported)).exit_code == 0
    else:  # a group booking's answer lost: left for reconcile, whose resend Calendly refuses; exported in between
        fake.fail_next("/invitees", 503)
        group = ("--session", "accelerate-mastery-deep-dive-6", "--pathway", "accelerate")
        lost = synced("bookings", "create", "--client", OTHER, "--start", z(slot()), *group, *ANSWERS, "--json")
        assert lost.exit_code == 9, lost.stderr
        assert synced("badges", "export", OTHER, "-o", str(exported)).exit_code == 0
        reconciled_refused(synced, fake)
    shown = synced("clients", "show", OTHER, "--json").json()
    assert shown["enrolments"] == []  # the enrolment goes; what the client earned stays
    held = {badge.key: badge.id for badge in bookings_badges(synced.database_url)}
    assert sorted(held) == ["pathway:accelerate", "tier:accelerate:1", *(f"tier:accelerate:{t}" for t in tiers[1:])]
    assert not [row for row in audit_rows(synced.database_url) if row.entity == "badge" and "removed" in row.changes]

    def verified() -> list[tuple[str, str]]:
        listing = tmp_path / "revocations.jwt"
        assert synced("badges", "status-list", "-o", str(listing)).exit_code == 0
        rows = []
        for check in (("--against-db",), ("--status-list", str(listing))):
            result = synced("badges", "verify", str(exported), *check, "--json")
            assert result.exit_code == 0, result.stderr
            rows += [(row["badge"], row["status"]) for row in result.json()]
        return rows

    checked = verified()
    assert {status for _, status in checked} == {"valid"} and len(checked) == 2 * len(held)
    # booked again, and taken: the enrolment is made completed; the badges it would award are the ones held (one
    # each, as awards are keyed), so the credential exported before still names them
    again = synced("bookings", "create", "--client", OTHER, "--start", z(slot(hour=11)), *coaching, "--json")
    assert again.exit_code == 0, again.stderr
    enrolled = synced("clients", "show", OTHER, "--json").json()["enrolments"]
    assert [(row["pathway"], row["status"]) for row in enrolled] == [("accelerate", "completed")]
    assert {badge.key: badge.id for badge in bookings_badges(synced.database_url)} == held
    assert {status for _, status in verified()} == {"valid"}


def bookings_badges(database_url: str) -> list[Badge]:
    engine = make_engine(database_url)
    try:
        from sqlalchemy.orm import Session

        with Session(engine) as session:
            return list(session.scalars(select(Badge).order_by(Badge.id)))
    finally:
        engine.dispose()


@pytest.mark.parametrize("meanwhile", ["nothing", "import clients", "set-status", "held before 0016"])
def test_a_hold_reconcile_removes_takes_the_account_and_enrolment_its_send_made_as_the_send_would(
    synced: Bapp, fake: FakeCalendly, tmp_path: Path, meanwhile: str
) -> None:
    # A group booking's answer was lost (left for reconcile, exit 9); the resend of `calendly reconcile` was refused,
    # which removed the hold but left the account and the enrolment its send made (a client enrolled in a pathway
    # they had no booking in), where the send's own removal deletes them: reconcile, another process, did not know
    # what the send made. Changed meanwhile, they stay, as there; a hold written before 0016 keeps both.
    group = ("--session", "accelerate-mastery-deep-dive-6", "--pathway", "accelerate", "--create-account")
    fake.fail_next("/invitees", 503)
    lost = synced("bookings", "create", "--client", CLIENT, "--start", z(slot()), *group, *ANSWERS, "--json")
    assert lost.exit_code == 9, lost.stderr
    if meanwhile == "import clients":
        (clients := tmp_path / "clients.csv").write_text(f"email,name,company\n{CLIENT},Ava Chen,Chen Logistics\n")
        assert synced("import", "clients", str(clients)).exit_code == 0
    elif meanwhile == "set-status":
        assert synced("clients", "set-status", CLIENT, "accelerate", "paused").exit_code == 0
    elif meanwhile == "held before 0016":
        engine = make_engine(synced.database_url)
        try:
            with engine.begin() as connection:
                connection.execute(update(Booking).values(calendly_hold_made=None))
        finally:
            engine.dispose()
    shown = reconciled_refused(synced, fake)
    if meanwhile == "nothing":
        assert shown.exit_code == 7, shown.stdout
        return
    assert shown.exit_code == 0, shown.stderr
    enrolments = [(e["pathway"], e["status"]) for e in shown.json()["enrolments"]]
    assert (
        enrolments
        == {
            "import clients": [],  # the account is the import's; the enrolment, unchanged and unused, the hold's
            "set-status": [("accelerate", "paused")],  # and the account it refers to
            "held before 0016": [("accelerate", "active")],
        }[meanwhile]
    )


def test_the_plan_refusal_exits_4_and_keeps_nothing(synced: Bapp, fake: FakeCalendly) -> None:
    fake.refuse_plan_next()
    result = create(synced, slot())
    assert result.exit_code == 4, result.stderr
    [line] = error_lines(result.stderr)
    assert "only available on paid Calendly plans" in line
    assert "--local-only" in result.stderr and "bookings link" in result.stderr
    assert bookings(synced.database_url) == []


def test_a_refusal_whose_body_is_nested_too_deeply_is_still_a_refusal(synced: Bapp, fake: FakeCalendly) -> None:
    # reading the 403's body for Calendly's scope error hit RecursionError: exit 1, the booking left held
    fake.fail_next("/invitees", 403, body=b"[" * 100_000 + b"]" * 100_000)
    result = create(synced, slot())
    assert result.exit_code == 4, result.stderr
    [line] = error_lines(result.stderr)
    assert "Calendly refused (HTTP 403" in line
    assert bookings(synced.database_url) == []
    assert fake.invitees_of(FREE_TYPE) == []


def test_a_429_waits_for_the_reset_then_books(synced: Bapp, fake: FakeCalendly) -> None:
    fake.booking_rate_limit_next(reset=0.01, times=2)
    result = create(synced, slot())
    assert result.exit_code == 0, result.stderr
    assert len(posts(fake)) == 3  # a 429 was not taken, so sending again is safe
    assert len(fake.invitees_of(FREE_TYPE)) == 1
    assert [b.calendly_state for b in bookings(synced.database_url)] == ["booked"]


def test_429_over_the_cap_exits_9_naming_the_limits_and_keeps_nothing(synced: Bapp, fake: FakeCalendly) -> None:
    fake.booking_rate_limit_next(reset=30, times=None)
    result = create(synced, slot())
    assert result.exit_code == 9, result.stderr
    [line] = error_lines(result.stderr)
    assert "rate limited (HTTP 429)" in line
    assert "Calendly accepts again in 30 s" in line
    assert "10 a minute, 50 an hour and 100 a day" in line
    assert bookings(synced.database_url) == []
    assert fake.invitees_of(FREE_TYPE) == []


def test_a_429_reset_past_every_wait_left_is_not_sent_again(synced: Bapp, fake: FakeCalendly) -> None:
    # the waits left reach 0.25 s (5 of BAPP_CALENDLY_MAX_WAIT's 0.05 s): a reset an hour away gives up on the first
    fake.booking_rate_limit_next(reset=3600, times=None)
    result = create(synced, slot())
    assert result.exit_code == 9, result.stderr
    [line] = error_lines(result.stderr)
    assert "rate limited (HTTP 429); Calendly accepts again in 3600 s (at " in line
    assert "past the 0.25 s of waits left: try again then" in line and "10 a minute" in line
    assert len(posts(fake)) == 1
    assert bookings(synced.database_url) == []


def test_a_429_reset_past_the_calendar_exits_9_without_a_date(synced: Bapp, fake: FakeCalendly) -> None:
    # 1e308 seconds from now has no date: formatting one was an OverflowError (exit 1)
    fake.booking_rate_limit_next(reset=1e308, times=None)
    result = create(synced, slot())
    assert result.exit_code == 9, result.stderr
    [line] = error_lines(result.stderr)
    assert "rate limited (HTTP 429)" in line and "Calendly accepts again in 1" in line and "(at " not in line
    assert bookings(synced.database_url) == []


# -- lost answers: never resend blindly --------------------------------------------------------------

# An answer lost to the read timeout is waited for: half a second, not the suite's 2 s, while the fake holds it
# for far longer. A GET answered late under load is retried (it is idempotent); the POST never is, either way.
LOST_TO_A_TIMEOUT = {"BAPP_CALENDLY_TIMEOUT": "0.5"}


@pytest.mark.parametrize("fault", ["reset", "timeout"])
def test_a_lost_answer_is_looked_up_not_resent(synced: Bapp, fake: FakeCalendly, fault: str) -> None:
    if fault == "reset":
        fake.apply_then_reset_next()
    else:
        fake.apply_then_delay_next(seconds=4)  # 8 times bapp's read timeout
    result = create(synced, slot(), env=LOST_TO_A_TIMEOUT)
    assert result.exit_code == 0, result.stderr
    assert len(posts(fake)) == 1  # never resent: Calendly had it
    [invitee] = fake.invitees_of(FREE_TYPE)
    [booking] = bookings(synced.database_url)
    assert booking.calendly_invitee_uri == invitee["uri"]
    assert booking.calendly_event_uri == invitee["event"]
    assert booking.calendly_state == "booked" and booking.status == "confirmed"
    assert "found the booking in Calendly" in result.stderr
    # an ASCII address is asked for once; only a domain not ASCII is asked by its xn-- form too
    assert len([request for request in fake.requests if request.path == "/scheduled_events"]) == 1


@pytest.mark.parametrize("part", ["head", "body"])
def test_a_trickled_answer_ends_at_the_deadline_and_is_looked_up_not_resent(
    synced: Bapp, fake: FakeCalendly, part: Literal["head", "body"]
) -> None:
    # Booked, then its answer sent a byte every 0.05 s: no read ever meets the 0.5 s read timeout, and the answer
    # would take minutes. The attempt's deadline (1 s: connect plus read timeout) ends it as a lost answer. A real
    # process: without the deadline it hangs, and is killed at `timeout`.
    fake.trickle_next("/invitees", part)
    args = ("bookings", "create", "--client", CLIENT, "--session", FREE, "--start", z(slot()), *ANSWERS, "--json")
    started = time.monotonic()
    result = synced.process(*args, env=LOST_TO_A_TIMEOUT, timeout=45)
    assert result.exit_code == 0, result.stderr
    assert time.monotonic() - started < 1 + 15  # the one attempt's deadline, the look-up, the process's start
    assert len(posts(fake)) == 1  # never resent: Calendly had it
    assert_booked_in_calendly(synced, fake)
    assert "found the booking in Calendly" in result.stderr


def test_a_lost_answer_is_looked_up_in_the_configured_user_s_events_however_it_is_typed(
    synced: Bapp, fake: FakeCalendly
) -> None:
    # calendly.user with a trailing slash and the host in capitals is the user the sync lists (calendly_user_uri); the
    # look-up asked Calendly for the events of that text, which are no one's: the booking Calendly made was said to be
    # someone else's (exit 8)
    typed = USER.replace("https://api.calendly.com", "HTTPS://API.Calendly.COM") + "/"
    (synced.home / "config.toml").write_text(f'[calendly]\nuser = "{typed}"\n')
    fake.apply_then_reset_next()
    result = create(synced, slot())
    assert result.exit_code == 0 and "found the booking in Calendly" in result.stderr, result.stderr
    assert len(posts(fake)) == 1
    assert {request.params.get("user") for request in fake.requests if request.path == "/scheduled_events"} == {USER}


def test_a_201_cut_short_is_looked_up_and_kept_not_deleted(synced: Bapp, fake: FakeCalendly) -> None:
    # Calendly booked it and the answer's body arrived cut short: the booking is Calendly's, not refused.
    fake.truncate_next("/invitees")
    result = create(synced, slot())
    assert result.exit_code == 0, result.stderr
    assert len(posts(fake)) == 1  # never resent: Calendly had it
    assert_booked_in_calendly(synced, fake)
    assert "found the booking in Calendly" in result.stderr


@pytest.mark.parametrize("pooling", ["solo", "group"])
def test_a_lost_answer_is_found_when_calendly_keeps_the_invitee_s_domain_in_punycode(
    synced: Bapp, fake: FakeCalendly, monkeypatch: pytest.MonkeyPatch, pooling: str
) -> None:
    # bapp keys and sends an address with its domain in Unicode; a Calendly that keeps (and filters by) the xn-- form
    # of it was asked by the Unicode form alone and its answer compared as text: the booking it had was "not found".
    # Resent where a start takes one invitee, the resend was refused as taken and the held booking deleted (exit 8,
    # "someone else took it", the client's own booking orphaned in Calendly); a group's was left for a reconcile that
    # would not find it either, and resent it: the client twice in the event.
    ascii_client, type_uri = "ana@xn--bcher-kva.example", FREE_TYPE
    session: tuple[str, ...] = ("--session", FREE)
    if pooling == "group":
        session = ("--session", "accelerate-mastery-deep-dive-6", "--pathway", "accelerate")
        type_uri = f"{API_ORIGIN}/event_types/ET00000006"
    book = fake.writes.create_invitee

    def kept_in_ascii(data: Any) -> Any:
        reply = book(data)  # under the fake's lock: its own record changed, as its listings and filters read it
        for invitee in (item for bucket in fake._invitees.values() for item in bucket if "@" in item["email"]):
            invitee["email"] = ascii_client if invitee["email"].endswith("bücher.example") else invitee["email"]
        return reply

    monkeypatch.setattr(fake.writes, "create_invitee", kept_in_ascii)
    fake.apply_then_reset_next()
    args = ("bookings", "create", "--client", "Ana@Bücher.example", "--start", z(slot()), *session, *ANSWERS)
    result = synced(*args, "--create-account", "--json")
    assert result.exit_code == 0 and "found the booking in Calendly" in result.stderr, result.stderr
    assert len(posts(fake)) == 1  # never resent: Calendly had it
    [invitee] = fake.invitees_of(type_uri)
    [booking] = bookings(synced.database_url)
    assert (booking.calendly_invitee_uri, booking.calendly_state) == (invitee["uri"], "booked")
    assert synced("calendly", "pull-bookings", "--json").json()["created"] == 0


def test_an_answer_with_the_invitee_of_another_booking_removes_the_hold_exit_8_not_a_crash(
    synced: Bapp, fake: FakeCalendly, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A second seat of the client's in a group event (--allow-overlap) that Calendly answers with the invitee it already
    # holds for them (one invitee an address): recording it broke the unique invitee URI, exit 1 on SQLite, and on
    # PostgreSQL exit 8 "run the command again", which would send it again; either way the hold stayed for reconcile.
    answers: list[Any] = []
    book = fake.writes.create_invitee

    def the_first_answer_again(data: Any) -> Any:
        if not answers:
            answers.append(book(data))
        return answers[0]

    monkeypatch.setattr(fake.writes, "create_invitee", the_first_answer_again)
    group = ("--session", "accelerate-mastery-deep-dive-6", "--pathway", "accelerate", "--create-account")
    first = create(synced, slot(), *group)
    assert first.exit_code == 0, first.stderr
    second = create(synced, slot(), *group, "--allow-overlap")
    assert second.exit_code == 8, second.stderr
    assert len(posts(fake)) == 2 and first.json()["reference"] in error_lines(second.stderr)[0]
    kept = [(booking.reference, booking.calendly_invitee_uri) for booking in bookings(synced.database_url)]
    assert kept == [(first.json()["reference"], first.json()["calendly_invitee_uri"])]
    assert synced("calendly", "reconcile", "--json").json() == []


def _alter_answers(
    fake: FakeCalendly, monkeypatch: pytest.MonkeyPatch, write: str, alter: Callable[[dict[str, Any]], None]
) -> None:
    """Lets `alter` change the resource of each answer the fake gives to `write` (its `create_invitee`,
    `create_no_show`) before it is sent, as a Calendly answering with odd data would."""
    answer = getattr(fake.writes, write)

    def altered(data: Any) -> Any:
        reply = answer(data)
        resource = json.loads(reply.body)["resource"]
        alter(resource)
        return type(reply)(reply.status, json.dumps({"resource": resource}).encode())

    monkeypatch.setattr(fake.writes, write, altered)


@pytest.mark.parametrize(("status", "body"), [(202, b""), (204, b""), (200, b'{"resource": {"uri": null}}')])
def test_a_2xx_calendly_acted_on_is_looked_up_never_taken_for_a_refusal(
    synced: Bapp, fake: FakeCalendly, status: int, body: bytes
) -> None:
    # Calendly booked and answered a success other than 200/201: it was read as a refusal and the held
    # booking deleted, Calendly's booking left for the pull to bring in as if made elsewhere
    fake.add_fault(Fault("/invitees", "apply_then_status", status=status, body=body))
    result = create(synced, slot())
    assert result.exit_code == 0, result.stderr
    assert_booked_in_calendly(synced, fake)
    assert len(posts(fake)) == 1  # never resent


@pytest.mark.parametrize("acted", [True, False])
def test_a_redirect_answering_post_invitees_is_looked_up_never_taken_for_a_refusal(
    synced: Bapp, fake: FakeCalendly, acted: bool
) -> None:
    # Calendly's API never redirects, so a 3xx is some proxy's, which may come after the booking was made (a 303
    # "see other" says so): it was read as Calendly's refusal (exit 9) and the held booking deleted while Calendly
    # kept the invitee. Asked instead: found, it is attached; not there, it is resent once, as after a 5xx
    action = "apply_then_status" if acted else "status"
    fake.add_fault(Fault("/invitees", action, status=303 if acted else 302, body=b"", headers={"Location": "/x"}))
    result = create(synced, slot())
    assert result.exit_code == 0, result.stderr
    assert_booked_in_calendly(synced, fake)
    assert len(posts(fake)) == (1 if acted else 2)


def test_links_longer_than_their_column_are_cut_not_a_crash(
    synced: Bapp, fake: FakeCalendly, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Calendly booked it and answered with cancel and reschedule links past the 500 characters bapp keeps:
    # PostgreSQL refused the row (exit 1, "value too long"), and every reconcile and pull after it failed
    # the same way on the stored invitee; SQLite kept them whole. Cut as the join URL already was.
    long = "?utm_content=" + "x" * 600

    def with_long_links(resource: dict[str, Any]) -> None:
        # called under the fake's lock: its stored invitee, so that lookups and the pull see the same links
        [stored] = [one for ones in fake._invitees.values() for one in ones if one["uri"] == resource["uri"]]
        for link in ("cancel_url", "reschedule_url"):
            stored[link] = resource[link] = resource[link] + long

    _alter_answers(fake, monkeypatch, "create_invitee", with_long_links)
    result = create(synced, slot())
    assert result.exit_code == 0, result.stderr
    assert_booked_in_calendly(synced, fake)
    [booking] = bookings(synced.database_url)
    [invitee] = fake.invitees_of(FREE_TYPE)
    assert booking.calendly_cancel_url == invitee["cancel_url"][:500]
    assert booking.calendly_reschedule_url == invitee["reschedule_url"][:500]
    pulled = synced("calendly", "pull-bookings", "--json")
    assert pulled.exit_code == 0 and pulled.json()["created"] == 0, pulled.stderr


@pytest.mark.parametrize("key", ["uri", "event"])
def test_a_booking_whose_uris_are_too_long_to_record_fails_naming_it_never_a_crash(
    synced: Bapp, fake: FakeCalendly, monkeypatch: pytest.MonkeyPatch, key: str
) -> None:
    # Calendly booked it and answered with an invitee or event URI past the 500 characters bapp keeps: keys,
    # which cannot be cut as the links are. PostgreSQL refused the row (exit 1, "value too long") and the
    # booking Calendly made was left pending, as if not sent; SQLite kept it whole.
    answered: list[str] = []

    def with_a_long_uri(resource: dict[str, Any]) -> None:
        resource[key] += "?utm_content=" + "x" * 600
        answered.append(resource["uri"])

    _alter_answers(fake, monkeypatch, "create_invitee", with_a_long_uri)
    result = create(synced, slot())
    assert result.exit_code == 9, result.stderr
    assert f"invitee {answered[0]}" in result.stderr
    assert "so cancel the invitee in Calendly too" in result.stderr
    [booking] = bookings(synced.database_url)
    assert (booking.calendly_state, booking.status, booking.calendly_invitee_uri) == ("failed", "cancelled", None)
    assert len(fake.invitees_of(FREE_TYPE)) == 1 and len(posts(fake)) == 1  # booked there once, never resent


def left_unknown_twice(bapp: Bapp, fake: FakeCalendly) -> dict[str, Any]:
    """Two bookings, 2 and 3 days ahead, that Calendly booked while their answers were lost and their lookups
    failed: both left unknown for reconcile. The fake's stored invitee of the first (alter it under fake._lock)."""
    fake.fail_next("/scheduled_events", 500, times=None)  # the lookups fail: each booking is left unknown
    fake.apply_then_reset_next()
    assert create(bapp, slot(days=2)).exit_code == 9
    [invitee] = fake.invitees_of(FREE_TYPE)
    fake.apply_then_reset_next()
    assert create(bapp, slot(days=3)).exit_code == 9
    fake.clear_faults()
    with fake._lock:
        return next(item for items in fake._invitees.values() for item in items if item["uri"] == invitee["uri"])


def test_reconcile_gives_up_a_found_booking_whose_uris_are_too_long_and_goes_on(
    synced: Bapp, fake: FakeCalendly
) -> None:
    # the lookup finds Calendly's invitee of the first waiting booking with a URI too long to record: the run
    # gave that booking up (failed, cancelled) but stopped there with exit 9, the later ones left for the next
    # run; its dry run stopped the same way. Now it is one failed row, as a resend's too-long answer is.
    stored = left_unknown_twice(synced, fake)
    with fake._lock:
        stored["uri"] += "?utm_content=" + "x" * 600
    dry = synced("calendly", "reconcile", "--dry-run", "--json")
    assert dry.exit_code == 0, dry.stderr
    first, second = dry.json()
    assert (first["action"], first["calendly_state"], first["status"]) == ("failed", "failed", "cancelled")
    assert f"invitee {stored['uri']}" in first["note"]
    # Calendly still holds that invitee: the row says to cancel it there, and so does a warning, which cron shows
    assert first["note"].endswith("; it would be cancelled here, so cancel the invitee in Calendly too")
    assert f"Warning: {first['booking']}: failed (" in dry.stderr and second["booking"] not in dry.stderr
    assert second["action"] == "attached"
    states = [
        (booking.calendly_state, booking.status, booking.calendly_invitee_uri)
        for booking in bookings(synced.database_url)
    ]
    assert states == [("unknown", "pending", None)] * 2
    result = synced("calendly", "reconcile", "--json")
    assert result.exit_code == 0, result.stderr
    first, second = result.json()
    assert (first["action"], first["calendly_state"], first["status"]) == ("failed", "failed", "cancelled")
    assert first["note"].endswith("URIs too long for bapp; cancelled here, so cancel the invitee in Calendly too")
    assert f"Warning: {first['booking']}: failed (" in result.stderr
    assert (second["action"], second["calendly_state"], second["status"]) == ("attached", "booked", "confirmed")
    given_up, booked = bookings(synced.database_url)
    assert (given_up.calendly_state, given_up.status, given_up.calendly_invitee_uri) == ("failed", "cancelled", None)
    assert (booked.calendly_state, booked.status) == ("booked", "confirmed")
    assert len(posts(fake)) == 2  # each sent once, never resent


def test_reconcile_removes_a_booking_found_as_another_booking_s_invitee_and_goes_on(
    synced: Bapp, fake: FakeCalendly
) -> None:
    # the lookup skips the invitees of the bookings at its start, read before Calendly is asked; one that another
    # booking has all the same (a pull or a delivery meanwhile attached it, stood in for here by one at another start)
    # made `_finish` remove the hold with exit 8: the reconcile stopped there, the later bookings left for the next run
    first_invitee = left_unknown_twice(synced, fake)["uri"]
    other = create(synced, slot(days=4))
    assert other.exit_code == 0, other.stderr
    engine = make_engine(synced.database_url)
    with engine.begin() as connection:
        has_it = Booking.reference == other.json()["reference"]
        connection.execute(update(Booking).where(has_it).values(calendly_invitee_uri=first_invitee))
    engine.dispose()
    result = synced("calendly", "reconcile", "--json")
    assert result.exit_code == 0, result.stderr
    first, second = result.json()
    assert (first["action"], first["calendly_state"], first["status"]) == ("failed", "removed", "removed")
    assert f"which is booking {other.json()['reference']}" in first["note"]
    assert (second["action"], second["calendly_state"], second["status"]) == ("attached", "booked", "confirmed")
    assert [booking.calendly_state for booking in bookings(synced.database_url)] == ["booked", "booked"]
    assert len(posts(fake)) == 3  # each sent once, never resent


def test_reconcile_goes_on_past_a_booking_whose_lookup_answer_it_cannot_read_and_exits_9_at_the_end(
    synced: Bapp, fake: FakeCalendly
) -> None:
    # Calendly's answer to the first waiting booking's lookup held a value bapp cannot read (an invitee's `rescheduled`
    # that is no boolean): the run stopped there with exit 9 at every run, the later bookings never settled and that one
    # never given up. Now it is one row that leaves it pending, the others are settled, and the run exits 9 naming it.
    # Never given up past the give-up age either: the answer is about this booking (its own invitee, which Calendly
    # holds), and giving it up cancelled it here while the client stayed booked there. Readable, it is attached.
    stored = left_unknown_twice(synced, fake)
    with fake._lock:
        stored["rescheduled"] = "maybe"
    result = synced("calendly", "reconcile", "--give-up-after", "0", "--json")
    assert result.exit_code == 9, result.stderr
    first, second = json.loads(result.stdout)
    assert (first["action"], first["calendly_state"], first["status"]) == ("unreadable", "unknown", "pending")
    assert "rescheduled" in first["note"]
    assert (second["action"], second["calendly_state"], second["status"]) == ("attached", "booked", "confirmed")
    assert f"Error: Calendly's answer about {first['booking']} could not be read; left pending" in result.stderr
    assert [booking.calendly_state for booking in bookings(synced.database_url)] == ["unknown", "booked"]
    with fake._lock:
        stored["rescheduled"] = False
    again = synced("calendly", "reconcile", "--give-up-after", "0", "--json")
    assert again.exit_code == 0, again.stderr
    [attached] = again.json()
    assert (attached["booking"], attached["action"], attached["status"]) == (first["booking"], "attached", "confirmed")
    assert len(posts(fake)) == 2  # each sent once, never resent


def test_reconcile_goes_on_past_a_lookup_that_lists_an_event_whose_uri_names_no_scheduled_event(
    synced: Bapp, fake: FakeCalendly
) -> None:
    # its invitees are asked for at that URI: refused as the user's input (exit 6), the run stopped there every time
    stored = left_unknown_twice(synced, fake)
    with fake._lock:
        event = next(event for event in fake._scheduled_events if event["uri"] == stored["event"])
        event["uri"] = event["uri"].replace("/scheduled_events/", "/events/")
    result = synced("calendly", "reconcile", "--json")
    assert result.exit_code == 9, result.stderr
    first, second = json.loads(result.stdout)
    assert (first["action"], first["status"]) == ("unreadable", "pending") and "collection[0].uri" in first["note"]
    assert (second["action"], second["status"]) == ("attached", "confirmed")


def _with_a_long_uri(resource: dict[str, Any]) -> None:
    resource["uri"] += "?utm_content=" + "x" * 600


def _updated_in_3000(resource: dict[str, Any]) -> None:
    resource["updated_at"] = "3000-01-01T00:00:00Z"


@pytest.mark.parametrize(
    ("answer", "problem"),
    [(_with_a_long_uri, "URIs too long for bapp"), (_updated_in_3000, "updated_at '3000-01-01T00:00:00Z' is outside")],
)
def test_a_resend_answered_with_what_bapp_cannot_keep_reports_the_booking_given_up(
    synced: Bapp, fake: FakeCalendly, monkeypatch: pytest.MonkeyPatch, answer: Callable[[Any], None], problem: str
) -> None:
    # reconcile's resend was answered with an invitee URI too long to record: the booking was given up (failed,
    # cancelled) but its record said calendly_state and status "removed"; so was one with a time past bapp's years
    # once its give-up had its own code (instant_out_of_range)
    fake.fail_next("/invitees", 500, times=1)
    fake.fail_next("/scheduled_events", 500, times=None)  # the lookup fails too: left unknown, not resent
    assert create(synced, slot()).exit_code == 9
    fake.clear_faults()
    _alter_answers(fake, monkeypatch, "create_invitee", answer)
    result = synced("calendly", "reconcile", "--json")
    assert result.exit_code == 0, result.stderr
    [row] = result.json()
    assert (row["action"], row["calendly_state"], row["status"]) == ("resent", "failed", "cancelled")
    assert problem in row["note"]
    assert row["note"].endswith("; cancelled here, so cancel the invitee in Calendly too")
    assert f"Warning: {row['booking']}: resent (" in result.stderr
    [booking] = bookings(synced.database_url)
    assert (booking.calendly_state, booking.status) == ("failed", "cancelled")


def test_an_invitee_updated_past_the_supported_years_is_given_up_not_stored(
    synced: Bapp, fake: FakeCalendly, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the booked invitee's updated_at was stored as remote_updated_at whatever its year (a pull or a delivery
    # parks such an invitee): the backup `export all` then wrote did not restore ('import all', exit 6)
    _alter_answers(
        fake, monkeypatch, "create_invitee", lambda resource: resource.update(updated_at="3000-01-01T00:00:00Z")
    )
    result = create(synced, slot())
    assert result.exit_code == 9, result.stderr
    assert "updated_at '3000-01-01T00:00:00Z' is outside the supported range 1900-01-01 to 2999-12-31" in result.stderr
    # its own code, naming the reason: it was uri_too_long's, the other answer given up so
    assert json.loads(result.stderr.splitlines()[-1])["error"]["code"] == "instant_out_of_range"
    assert "cancelled here, so cancel the invitee in Calendly too" in result.stderr
    [booking] = bookings(synced.database_url)
    assert (booking.calendly_state, booking.status, booking.remote_updated_at) == ("failed", "cancelled", None)


def test_an_event_ending_past_the_supported_years_is_given_up_not_stored(
    synced: Bapp, fake: FakeCalendly, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the event's end_time was recorded as the booking's end whatever its year, by bookings create (the event
    # fetched after its invitee) and by reconcile (the event found with it), where a pull or a delivery parks
    # such an event: the backup `export all` then wrote did not restore ('import all', exit 6)

    def ending_in_3000(resource: dict[str, Any]) -> None:
        [event] = [event for event in fake._scheduled_events if event["uri"] == resource["event"]]  # lock held
        event["end_time"] = "3000-01-01T00:00:00Z"

    _alter_answers(fake, monkeypatch, "create_invitee", ending_in_3000)
    problem = "event end_time '3000-01-01T00:00:00Z' is outside the supported range 1900-01-01 to 2999-12-31"
    result = create(synced, slot(days=2))
    assert result.exit_code == 9, result.stderr
    assert f"{problem}; cancelled here, so cancel the invitee in Calendly too" in result.stderr
    fake.fail_next("/scheduled_events", 500, times=None)  # the answer lost and the lookup failing: left unknown
    fake.apply_then_reset_next()
    assert create(synced, slot(days=3)).exit_code == 9
    fake.clear_faults()
    reconciled = synced("calendly", "reconcile", "--json")
    assert reconciled.exit_code == 0, reconciled.stderr
    [row] = reconciled.json()
    assert (row["action"], row["calendly_state"], row["status"]) == ("failed", "failed", "cancelled")
    assert row["note"].endswith(f"{problem}; cancelled here, so cancel the invitee in Calendly too")
    states = [
        (booking.calendly_state, booking.status, booking.end_time.year) for booking in bookings(synced.database_url)
    ]
    assert states == [("failed", "cancelled", slot().year)] * 2
    assert len(posts(fake)) == 2  # each sent once, never resent


def test_an_event_longer_than_a_day_leaves_the_booking_its_own_length(
    synced: Bapp, fake: FakeCalendly, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the event's end was taken whatever its distance: a 30-hour booking was stored, whose tail the overlap checks
    # (which reach back a day, the longest a booking may be) missed, and whose backup did not restore

    def lasting_30_hours(resource: dict[str, Any]) -> None:
        [event] = [event for event in fake._scheduled_events if event["uri"] == resource["event"]]  # lock held
        event["end_time"] = z(dt.datetime.fromisoformat(event["start_time"]) + dt.timedelta(hours=30))

    _alter_answers(fake, monkeypatch, "create_invitee", lasting_30_hours)
    result = create(synced, slot())
    assert result.exit_code == 0, result.stderr
    assert result.json()["end_time"] == z(slot() + dt.timedelta(minutes=15))
    [booking] = bookings(synced.database_url)
    assert (booking.calendly_state, booking.end_time - booking.start_time) == ("booked", dt.timedelta(minutes=15))
    # the pull (and a webhook) of this invitee parked it for its event's length: exit 3 on every pull after, and a
    # no-show or payment Calendly marked on it never applied. The booking is bapp's: it keeps its length, as here
    pulled = synced("calendly", "pull-bookings", "--json")
    assert pulled.exit_code == 0, pulled.stderr
    [booking] = bookings(synced.database_url)
    assert booking.end_time - booking.start_time == dt.timedelta(minutes=15)


def test_a_5xx_that_created_nothing_is_resent_once(synced: Bapp, fake: FakeCalendly) -> None:
    fake.fail_next("/invitees", 503)
    result = create(synced, slot())
    assert result.exit_code == 0, result.stderr
    assert len(posts(fake)) == 2
    assert len(fake.invitees_of(FREE_TYPE)) == 1
    [booking] = bookings(synced.database_url)
    assert booking.calendly_attempts == 2 and booking.calendly_state == "booked"
    assert "resent once" in result.stderr


@pytest.mark.parametrize("pooling", ["group", "round_robin"])
def test_a_lost_answer_where_a_start_takes_more_invitees_is_left_for_reconcile_not_resent(
    synced: Bapp, fake: FakeCalendly, pooling: str
) -> None:
    # A POST /invitees that timed out may still be under way in Calendly: the create looked it up at once (nothing
    # there yet) and resent it, and the first landed after the second. A group event held the client twice, and
    # the pull made the other invitee a second booking. Where a start takes one invitee the late one is refused as
    # taken; a group or round robin start takes more, so the booking waits for reconcile, run later.
    session, type_uri = ("--session", FREE), FREE_TYPE
    if pooling == "group":
        session = ("--session", "accelerate-mastery-deep-dive-6", "--pathway", "accelerate", "--create-account")
        type_uri = f"{API_ORIGIN}/event_types/ET00000006"
    else:  # one invitee an event, but as many events at a start as hosts are free (the fake has one host)
        fake.set_event_types([{**item, "pooling_type": "round_robin"} for item in catalogue()])
    held = fake.delay_next("/invitees", seconds=60)  # carried out once released, long after bapp's timeout
    args = ("bookings", "create", "--client", CLIENT, "--start", z(slot()), *session, *ANSWERS, "--json")
    result = synced(*args, env=LOST_TO_A_TIMEOUT)
    assert result.exit_code == 9, result.stderr
    assert "it stays pending" in error_lines(result.stderr)[0] and "bapp calendly reconcile" in result.stderr
    assert len(posts(fake)) == 1
    held.released.set()
    deadline = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30)
    while not fake.invitees_of(type_uri) and dt.datetime.now(dt.UTC) < deadline:
        time.sleep(0.05)  # the late request landing in Calendly
    settled = synced("calendly", "reconcile", "--json")
    assert [row["action"] for row in settled.json()] == ["attached"], settled.stderr
    assert synced("calendly", "pull-bookings", "--json").json()["created"] == 0
    [invitee] = fake.invitees_of(type_uri)
    [booking] = bookings(synced.database_url)
    assert (booking.calendly_invitee_uri, booking.calendly_state) == (invitee["uri"], "booked")
    assert len(posts(fake)) == 1


def test_still_unknown_stays_pending_exits_9_and_reconcile_gives_it_up(synced: Bapp, fake: FakeCalendly) -> None:
    fake.fail_next("/invitees", 503, times=2)
    result = create(synced, slot(), "--json")
    assert result.exit_code == 9, result.stderr
    [line] = error_lines(result.stderr)
    assert "it stays pending" in line
    # the code every write whose outcome is unknown has (cancel, link, webhook subscribe): it was calendly_unknown
    assert json.loads(result.stderr.splitlines()[-1])["error"]["code"] == "outcome_unknown"
    assert "bapp calendly reconcile" in result.stderr
    [booking] = bookings(synced.database_url)
    assert (booking.status, booking.calendly_state, booking.calendly_attempts) == ("pending", "unknown", 2)
    shown = synced("bookings", "show", booking.reference, "--json")
    assert shown.json()["status"] == "pending"
    assert "waiting for Calendly's confirmation" in shown.stderr
    # already resent once: reconcile looks again and waits, never sends a third time
    waiting = synced("calendly", "reconcile", "--json")
    assert waiting.exit_code == 0, waiting.stderr
    assert [r["action"] for r in waiting.json()] == ["waiting"]
    assert len(posts(fake)) == 2
    gave_up = synced("calendly", "reconcile", "--give-up-after", "0", "--json")
    assert [r["action"] for r in gave_up.json()] == ["failed"]
    [booking] = bookings(synced.database_url)
    assert (booking.status, booking.calendly_state) == ("cancelled", "failed")
    assert "given up" in synced("bookings", "show", booking.reference).stderr
    assert fake.invitees_of(FREE_TYPE) == []


def test_a_booking_calendly_made_then_cancelled_before_reconcile_is_never_resent(
    synced: Bapp, fake: FakeCalendly
) -> None:
    # Calendly booked it, the answer was lost, and the client cancelled it with the link of Calendly's e-mail
    # before reconcile ran: the lookup asked for active invitees only, found none and resent the booking, so
    # the client was booked again for the session they had cancelled
    fake.apply_then_reset_next()
    fake.fail_next("/scheduled_events", 500, times=6)  # the first try and all five retries of the lookup
    assert create(synced, slot()).exit_code == 9
    fake.clear_faults()
    [invitee] = fake.invitees_of(FREE_TYPE)
    with fake._lock:
        fake.writes.cancel_event(invitee["event"].rsplit("/", 1)[1], {"reason": "cannot make it"})
    dry = synced("calendly", "reconcile", "--dry-run", "--json")
    assert [(row["action"], row["status"]) for row in dry.json()] == [("attached", "cancelled")]
    assert bookings(synced.database_url)[0].status == "pending"  # a dry run changes nothing
    result = synced("calendly", "reconcile", "--json")
    assert result.exit_code == 0, result.stderr
    [row] = result.json()
    assert (row["action"], row["calendly_state"], row["status"]) == ("attached", "booked", "cancelled")
    assert len(posts(fake)) == 1 and fake.invitees_of(FREE_TYPE) == []
    [booking] = bookings(synced.database_url)
    assert (booking.status, booking.calendly_invitee_uri) == ("cancelled", invitee["uri"])
    assert booking.cancellation_reason == "cancelled in Calendly"
    pulled = synced("calendly", "pull-bookings", "--json")  # the pull agrees: the same booking, nothing new
    assert pulled.exit_code == 0 and pulled.json()["created"] == 0, pulled.stderr
    assert len(bookings(synced.database_url)) == 1


def test_an_invitee_cancelled_before_the_booking_was_sent_is_not_taken_for_it(synced: Bapp, fake: FakeCalendly) -> None:
    # the client had booked this slot on Calendly's page and cancelled it an hour ago; bapp's POST is lost
    # before Calendly acts: the lookup must not take that old invitee for this booking (it would attach it and
    # cancel the booking), but find nothing and resend once
    start = slot()
    old = fake.book_as_visitor(FREE_TYPE, start, CLIENT)
    an_hour_ago = z(dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
    with fake._lock:
        fake.writes.cancel_event(old["event"].rsplit("/", 1)[1], {"reason": "changed my mind"})
        [stored] = [item for items in fake._invitees.values() for item in items if item["uri"] == old["uri"]]
        stored["created_at"] = an_hour_ago
    fake.reset_next("/invitees")
    result = create(synced, start, "--json")
    assert result.exit_code == 0, result.stderr
    assert result.json()["status"] == "confirmed" and len(posts(fake)) == 2
    [booking] = bookings(synced.database_url)
    assert booking.status == "confirmed" and booking.calendly_invitee_uri not in (None, old["uri"])


def test_an_unknown_booking_that_calendly_has_is_attached_by_reconcile(synced: Bapp, fake: FakeCalendly) -> None:
    fake.apply_then_reset_next()
    fake.fail_next("/scheduled_events", 500, times=None)  # and the lookup cannot be made either
    result = create(synced, slot())
    assert result.exit_code == 9, result.stderr
    assert "could not be asked" in error_lines(result.stderr)[0]
    [booking] = bookings(synced.database_url)
    assert (booking.status, booking.calendly_state, booking.calendly_invitee_uri) == ("pending", "unknown", None)
    dry = synced("calendly", "reconcile", "--dry-run", "--json")
    assert dry.exit_code == 9  # Calendly still cannot be asked: nothing resent
    fake.clear_faults()
    dry = synced("calendly", "reconcile", "--dry-run", "--json")
    # the record's status is the booking's (what attaching makes it), as for a resent one
    rows = [(r["action"], r["calendly_state"], r["status"]) for r in dry.json()]
    assert rows == [("attached", "booked", "confirmed")]
    assert bookings(synced.database_url)[0].calendly_state == "unknown"  # a dry run changes nothing
    # and says so: its rows are a real run's, and a piped dry run said nothing else (as every --dry-run does)
    assert dry.stderr.splitlines() == ["Dry run: nothing was written."]
    settled = synced("calendly", "reconcile", "--json")
    assert settled.exit_code == 0, settled.stderr
    assert "Dry run" not in settled.stderr
    assert [(r["action"], r["status"]) for r in settled.json()] == [("attached", "confirmed")]
    assert len(posts(fake)) == 1
    [invitee] = fake.invitees_of(FREE_TYPE)
    [booking] = bookings(synced.database_url)
    assert (booking.status, booking.calendly_state, booking.calendly_invitee_uri) == (
        "confirmed",
        "booked",
        invitee["uri"],
    )


def test_the_same_booking_again_while_the_first_waits_for_calendly_is_refused_not_sent_twice(
    synced: Bapp, fake: FakeCalendly
) -> None:
    # The answer was lost and Calendly could not be asked (exit 9); the rerun met the client's overlap with the
    # waiting booking, whose hint offered --allow-overlap: taken, the booking was sent again and Calendly's group
    # event held the client twice, each invitee attached to a booking of its own by reconcile
    group = ("--session", "accelerate-mastery-deep-dive-6", "--pathway", "accelerate", "--create-account")
    args = ("bookings", "create", "--client", CLIENT, "--start", z(slot()), *group, *ANSWERS, "--json")
    fake.apply_then_reset_next()
    fake.fail_next("/scheduled_events", 500, times=None)
    assert synced(*args).exit_code == 9
    fake.clear_faults()
    # Without --allow-overlap the clash with the waiting booking points at reconcile, not at --allow-overlap
    rerun = synced(*args)
    assert rerun.exit_code == 8 and "overlapping" in rerun.stderr, rerun.stderr
    assert "bapp calendly reconcile" in rerun.stderr and "--allow-overlap" not in rerun.stderr
    again = synced(*args, "--allow-overlap")
    assert again.exit_code == 8, again.stderr
    [line] = error_lines(again.stderr)
    assert "is still waiting for Calendly's confirmation" in line and "bapp calendly reconcile" in again.stderr
    assert len(posts(fake)) == 1
    # Another client at that start is another booking: sent
    other = synced(*(OTHER if arg == CLIENT else arg for arg in args))
    assert other.exit_code == 0, other.stderr
    assert len(posts(fake)) == 2
    settled = synced("calendly", "reconcile", "--json")
    assert [row["action"] for row in settled.json()] == ["attached"], settled.stderr
    invitees = fake.invitees_of(f"{API_ORIGIN}/event_types/ET00000006")
    [booking] = [b for b in bookings(synced.database_url) if b.calendly_invitee_uri == invitees[0]["uri"]]
    assert booking.calendly_state == "booked"
    assert {b.calendly_state for b in bookings(synced.database_url)} == {"booked"}


def test_the_pull_completes_a_held_booking_instead_of_creating_a_second(synced: Bapp, fake: FakeCalendly) -> None:
    fake.apply_then_reset_next()
    fake.fail_next("/scheduled_events", 500, times=6)  # the first try and all five retries of the lookup
    assert create(synced, slot()).exit_code == 9
    pulled = synced("calendly", "pull-bookings", "--json")
    assert pulled.exit_code == 0, pulled.stderr
    assert pulled.json()["created"] == 0 and pulled.json()["updated"] == 1
    assert_booked_in_calendly(synced, fake)


# -- which way a booking goes ------------------------------------------------------------------------


def test_local_only_and_never_book_in_bapp_only(synced: Bapp, fake: FakeCalendly) -> None:
    local = create(synced, slot(hour=9), "--local-only")
    assert local.exit_code == 0, local.stderr
    never = create(synced, slot(hour=11), env={"BAPP_BOOKINGS_CALENDLY": "never"})
    assert never.exit_code == 0, never.stderr
    assert posts(fake) == []
    assert [(b.calendly_state, b.calendly_invitee_uri) for b in bookings(synced.database_url)] == [(None, None)] * 2
    # `never` still gives way to an explicit --calendly
    forced = create(synced, slot(hour=13), "--calendly", env={"BAPP_BOOKINGS_CALENDLY": "never"})
    assert forced.exit_code == 0, forced.stderr
    assert len(posts(fake)) == 1


def test_auto_without_a_token_books_locally_with_one_warning(synced: Bapp, fake: FakeCalendly) -> None:
    result = create(synced, slot(), env={"CALENDLY_API_KEY": None})
    assert result.exit_code == 0, result.stderr
    assert result.stderr.splitlines() == [
        "Warning: no Calendly token configured: booked in bapp only, not in Calendly (see bookings.calendly)"
    ]
    assert posts(fake) == []
    assert bookings(synced.database_url)[0].calendly_state is None
    # a dry run said it twice, the second time wrongly: "… was not written", then "Warning: … booked in bapp only"
    dry = create(synced, slot(hour=11), "--dry-run", env={"CALENDLY_API_KEY": None})
    assert dry.exit_code == 0, dry.stderr
    reference = dry.json()["reference"]
    assert dry.stderr.splitlines() == [
        f"Dry run: every rule passed; booking {reference} was not written; it would be booked in bapp only: no"
        " Calendly token configured (see bookings.calendly)."
    ]
    assert len(bookings(synced.database_url)) == 1 and posts(fake) == []


@pytest.mark.parametrize("how", [("--calendly",), ()])
def test_calendly_or_always_without_a_token_exits_4(synced: Bapp, fake: FakeCalendly, how: tuple[str, ...]) -> None:
    env: dict[str, str | None] = {"CALENDLY_API_KEY": None, "BAPP_BOOKINGS_CALENDLY": "always"}
    result = create(synced, slot(), *how, env=env)
    assert result.exit_code == 4, result.stderr
    assert error_lines(result.stderr) == [
        "Error: no Calendly token configured, and this booking must go through Calendly"
    ]
    assert bookings(synced.database_url) == []


def test_a_bad_mode_setting_exits_4(synced: Bapp) -> None:
    result = create(synced, slot(), env={"BAPP_BOOKINGS_CALENDLY": "sometimes"})
    assert result.exit_code == 4
    assert "bookings.calendly: 'sometimes' is not one of auto, always, never" in result.stderr


def test_a_local_session_type_is_never_sent(synced: Bapp, fake: FakeCalendly) -> None:
    added = synced("sessions", "add", "--title", "Local chat", "--duration", "30", "--category", "free", "--json")
    assert added.exit_code == 0, added.stderr
    local = synced("bookings", "create", "--client", CLIENT, "--session", "local-chat", "--start", z(slot()), "--json")
    assert local.exit_code == 0, local.stderr
    assert posts(fake) == []
    forced = synced(
        "bookings", "create", "--client", CLIENT, "--session", "local-chat", "--start", z(slot(hour=12)), "--calendly"
    )
    assert forced.exit_code == 6
    assert "has no Calendly event type" in forced.stderr and "--local-only" in forced.stderr


def test_a_dry_run_checks_the_slot_and_sends_nothing(synced: Bapp, fake: FakeCalendly) -> None:
    result = create(synced, slot(), "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert "Dry run" in result.stderr
    assert posts(fake) == [] and bookings(synced.database_url) == []
    refused = create(synced, slot() + dt.timedelta(minutes=5), "--dry-run")
    assert refused.exit_code == 8


@pytest.mark.parametrize("session", [FREE, "specialized-architecture-review-4"])
def test_a_dry_run_prints_the_booking_the_run_makes(synced: Bapp, fake: FakeCalendly, session: str) -> None:
    # the dry run printed the hold as committed before Calendly is asked, pending (a free session's too), where the
    # run prints the booking as Calendly's answer leaves it: confirmed when free, else pending until paid
    extra = ("--create-account",) if session != FREE else ()
    if session != FREE:
        assert synced("sessions", "update", session, "--price", "40").exit_code == 0
    dry = create(synced, slot(), "--dry-run", *extra, session=session)
    assert dry.exit_code == 0, dry.stderr
    real = create(synced, slot(), *extra, session=session)
    assert real.exit_code == 0, real.stderr
    differ = ("reference", "created_at", "calendly_event_uri", "calendly_invitee_uri")
    assert {k: v for k, v in dry.json().items() if k not in differ} == {
        k: v for k, v in real.json().items() if k not in differ
    }
    assert real.json()["status"] == ("confirmed" if session == FREE else "pending")


def test_a_repeat_of_a_used_idempotency_key_returns_the_booking_without_asking_calendly(
    synced: Bapp, fake: FakeCalendly
) -> None:
    # A repeat asked Calendly for the event type and the open starts before rule 7 returned the booking, so with
    # Calendly down the retry meant to be safe failed (exit 9) instead of returning the booking it had made.
    first = create(synced, slot(), "--idempotency-key", "order-1")
    assert first.exit_code == 0, first.stderr
    fake.fail_next("/invitees", 503, times=2)  # left pending (unknown): the repeat says it is still waiting
    held = create(synced, slot(days=3), "--idempotency-key", "order-2")
    assert held.exit_code == 9, held.stderr
    fake.fail_next("/", 503, times=None)
    asked = len(fake.requests)
    for key, start, waiting in [("order-1", slot(), False), ("order-2", slot(days=3), True)]:
        repeat = create(synced, start, "--idempotency-key", key)
        assert repeat.exit_code == 0, repeat.stderr
        assert repeat.json()["existing"] is True
        assert ("still waiting for Calendly" in repeat.stderr) is waiting
    assert repeat.json()["reference"] == bookings(synced.database_url)[1].reference
    assert len(fake.requests) == asked and len(bookings(synced.database_url)) == 2


# -- cancel and no-show go to Calendly first ---------------------------------------------------------


def test_cancel_goes_to_calendly_first(synced: Bapp, fake: FakeCalendly) -> None:
    reference = create(synced, slot()).json()["reference"]
    result = synced("bookings", "cancel", reference, "--reason", "client moved abroad", "--json")
    assert result.exit_code == 0, result.stderr
    assert result.json()["status"] == "cancelled"
    [body] = posts(
        fake, f"/scheduled_events/{bookings(synced.database_url)[0].calendly_event_uri.rsplit('/', 1)[-1]}/cancellation"
    )
    assert body == {"reason": "client moved abroad"}
    assert fake.invitees_of(FREE_TYPE) == []  # the invitee is cancelled in Calendly
    again = synced("bookings", "cancel", reference)
    assert again.exit_code == 8  # the local rule refuses before Calendly is asked
    assert len([r for r in fake.requests if r.path.endswith("/cancellation")]) == 1


def test_a_cancel_whose_answers_are_all_lost_says_calendly_may_have_cancelled_it(
    synced: Bapp, fake: FakeCalendly
) -> None:
    # each retry reached Calendly, which cancelled the event (and told the client): "…; gave up after 5 retries", and
    # nothing more, read as a cancel that failed, where a rerun settles both sides
    reference = create(synced, slot()).json()["reference"]
    event = bookings(synced.database_url)[0].calendly_event_uri.rsplit("/", 1)[-1]
    fake.apply_then_reset_next(f"/scheduled_events/{event}/cancellation", times=None)
    lost = synced("bookings", "cancel", reference)
    assert lost.exit_code == 9 and bookings(synced.database_url)[0].status == "confirmed"
    assert "the request may have been received" in lost.stderr and "run the command again" in lost.stderr, lost.stderr
    fake.clear_faults()
    assert synced("bookings", "cancel", reference).exit_code == 0  # already cancelled there: done


def test_a_dry_run_cancel_or_no_show_sends_calendly_nothing(synced: Bapp, fake: FakeCalendly) -> None:
    """--dry-run checks the move and rolls it back here: Calendly, which cannot roll back, is asked nothing (a
    cancel there e-mails the client)."""
    reference, event, _ = _past_booking(synced, fake, 903)
    try:
        asked = len(fake.requests)
        marked = synced("bookings", "no-show", reference, "--dry-run", "--json")
        assert marked.exit_code == 0, marked.stderr
        assert marked.json()["status"] == "no_show" and "Dry run: nothing was written." in marked.stderr
        assert len(fake.requests) == asked and bookings(synced.database_url)[0].status == "confirmed"
    finally:
        _drop_event(fake, event)
    upcoming = create(synced, slot()).json()["reference"]
    asked = len(fake.requests)
    result = synced("bookings", "cancel", upcoming, "--reason", "moved", "--dry-run", "--json")
    assert result.exit_code == 0, result.stderr
    assert result.json()["status"] == "cancelled" and "Dry run: nothing was written." in result.stderr
    assert len(fake.requests) == asked and len(fake.invitees_of(FREE_TYPE)) == 1
    assert {b.reference: b.status for b in bookings(synced.database_url)}[upcoming] == "confirmed"
    # without a token the real run is refused (exit 4): the dry run, exit 0 then, says so too
    tokenless = synced("bookings", "cancel", upcoming, "--dry-run", env={"CALENDLY_API_KEY": None})
    assert tokenless.exit_code == 4 and "Error: no Calendly token configured" in tokenless.stderr


def test_cancelling_an_event_gone_from_calendly_exits_7_pointing_at_local_only(
    synced: Bapp, fake: FakeCalendly
) -> None:
    reference = create(synced, slot()).json()["reference"]
    fake.fail_next("/scheduled_events", 404)  # the cancellation: deleted there, or another account's
    result = synced("bookings", "cancel", reference)
    assert result.exit_code == 7, result.stderr
    assert f"Hint: `bapp bookings cancel {reference} --local-only` changes it in bapp only" in result.stderr
    assert bookings(synced.database_url)[0].status == "confirmed"


def test_a_cancel_whose_calendly_notice_is_applied_first_still_succeeds(synced: Bapp, fake: FakeCalendly) -> None:
    import time

    reference = create(synced, slot()).json()["reference"]
    # Calendly cancels at once and holds its answer; meanwhile its invitee.canceled reaches bapp (here by
    # a pull) and cancels the booking before `bookings cancel` gets to its local step
    # The held answer outlasts the pull by far even on a loaded machine (the pull must finish inside it).
    fake.apply_then_delay_next("/scheduled_events/", seconds=8)
    process = synced.popen("bookings", "cancel", reference, "--json")
    deadline = time.monotonic() + 30
    while not [r for r in fake.requests if r.path.endswith("/cancellation")] and time.monotonic() < deadline:
        time.sleep(0.05)
    pulled = synced("calendly", "pull-bookings", "--json")
    assert pulled.exit_code == 0, pulled.stderr
    assert bookings(synced.database_url)[0].status == "cancelled"  # the notice won the race
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert json.loads(out)["status"] == "cancelled"


def test_already_cancelled_in_calendly_counts_as_done(synced: Bapp, fake: FakeCalendly) -> None:
    reference = create(synced, slot()).json()["reference"]
    event_uuid = bookings(synced.database_url)[0].calendly_event_uri.rsplit("/", 1)[-1]
    with fake._lock:
        fake.writes.cancel_event(event_uuid, {"reason": "host cancelled"})
    result = synced("bookings", "cancel", reference, "--json")
    assert result.exit_code == 0, result.stderr
    assert bookings(synced.database_url)[0].status == "cancelled"


@pytest.mark.parametrize(("status", "body"), [(202, b""), (204, b""), (200, b"<html>cancelled</html>")])
def test_a_cancel_calendly_answers_with_any_2xx_is_done(
    synced: Bapp, fake: FakeCalendly, status: int, body: bytes
) -> None:
    # Calendly cancelled and answered a success other than 200/201, or one whose body cannot be read (a proxy's
    # page): it was taken for a refusal (exit 9), and the booking stayed confirmed here, cancelled in Calendly
    reference = create(synced, slot()).json()["reference"]
    fake.add_fault(Fault("/scheduled_events/", "apply_then_status", status=status, body=body))
    result = synced("bookings", "cancel", reference, "--json")
    assert result.exit_code == 0, result.stderr
    assert result.json()["status"] == "cancelled" and fake.invitees_of(FREE_TYPE) == []
    assert "already" not in result.stderr


def test_cancel_of_an_event_in_the_past_exits_8(synced: Bapp, fake: FakeCalendly) -> None:
    reference = create(synced, slot()).json()["reference"]
    event_uuid = bookings(synced.database_url)[0].calendly_event_uri.rsplit("/", 1)[-1]
    with fake._lock:
        event = next(e for e in fake._scheduled_events if e["uri"].endswith(event_uuid))
        event["start_time"] = "2020-01-01T10:00:00.000000Z"
    result = synced("bookings", "cancel", reference)
    assert result.exit_code == 8
    assert error_lines(result.stderr) == [f"Error: Calendly will not cancel event {event_uuid}: Event in the past"]
    assert bookings(synced.database_url)[0].status == "confirmed"


def test_local_only_cancel_leaves_calendly_alone(synced: Bapp, fake: FakeCalendly) -> None:
    reference = create(synced, slot()).json()["reference"]
    result = synced("bookings", "cancel", reference, "--local-only")
    assert result.exit_code == 0, result.stderr
    assert len(fake.invitees_of(FREE_TYPE)) == 1
    assert not [r for r in fake.requests if r.path.endswith("/cancellation")]


def test_a_booking_waiting_for_calendly_is_changed_nowhere_until_reconciled(synced: Bapp, fake: FakeCalendly) -> None:
    fake.fail_next("/invitees", 503, times=2)
    assert create(synced, slot()).exit_code == 9
    [booking] = bookings(synced.database_url)
    for args in (("cancel",), ("no-show",), ("no-show", "--undo")):
        refused = synced("bookings", *args, booking.reference)
        assert refused.exit_code == 8, refused.stderr
        [line] = error_lines(refused.stderr)
        assert line == f"Error: booking {booking.reference} is still waiting for Calendly's confirmation"
        assert "bapp calendly reconcile" in refused.stderr
    assert not [r for r in fake.requests if r.path.endswith("/cancellation") or r.path == "/invitee_no_shows"]
    assert bookings(synced.database_url)[0].status == "pending"
    local = synced("bookings", "cancel", booking.reference.lower(), "--local-only", "--json")
    assert local.exit_code == 0, local.stderr
    assert local.json()["status"] == bookings(synced.database_url)[0].status == "cancelled"


def test_cancelling_one_invitee_of_a_group_event_is_refused_before_calendly_is_asked(
    synced: Bapp, fake: FakeCalendly
) -> None:
    from bapp_cli.db.models import SessionType

    reference = create(synced, slot()).json()["reference"]
    engine = make_engine(synced.database_url)
    try:
        with engine.begin() as connection:
            connection.execute(SessionType.__table__.update().values(kind="group"))
    finally:
        engine.dispose()
    refused = synced("bookings", "cancel", reference, "--json")
    assert refused.exit_code == 8, refused.stderr
    assert "one invitee of a group event" in refused.stderr and "--local-only" in refused.stderr
    assert not [r for r in fake.requests if r.path.endswith("/cancellation")]
    assert len(fake.invitees_of(FREE_TYPE)) == 1 and bookings(synced.database_url)[0].status == "confirmed"


def test_no_show_and_undo_round_trip_through_calendly(synced: Bapp, fake: FakeCalendly) -> None:
    from tests.fakes.calendly_server import make_invitee, make_scheduled_event

    past = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(days=1)
    event = make_scheduled_event(901, FREE_TYPE, past, duration_minutes=15)
    invitee = make_invitee(event["uri"], 901, email=CLIENT)
    fake.add_scheduled_event(event, [invitee])
    try:
        assert synced("calendly", "pull-bookings", "--json").exit_code == 0
        [booking] = bookings(synced.database_url)
        marked = synced("bookings", "no-show", booking.reference, "--json")
        assert marked.exit_code == 0, marked.stderr
        assert marked.json()["status"] == "no_show"
        assert posts(fake, "/invitee_no_shows") == [{"invitee": invitee["uri"]}]
        no_show_uri = bookings(synced.database_url)[0].calendly_no_show_uri
        assert no_show_uri and fake.invitees_of(FREE_TYPE)[0]["no_show"]["uri"] == no_show_uri
        # answered 202 (any 2xx is Calendly acting): it was a refusal, exit 9, though the mark was gone
        fake.add_fault(Fault("/invitee_no_shows/", "apply_then_status", status=202))
        undone = synced("bookings", "no-show", booking.reference, "--undo", "--json")
        assert undone.exit_code == 0, undone.stderr
        assert undone.json()["status"] == "completed"  # it ended yesterday (services.rule_book.restored_status)
        assert [r.path for r in fake.requests if r.method == "DELETE"] == [
            f"/invitee_no_shows/{no_show_uri.rsplit('/', 1)[-1]}"
        ]
        assert fake.invitees_of(FREE_TYPE)[0]["no_show"] is None
        assert bookings(synced.database_url)[0].calendly_no_show_uri is None
    finally:
        with fake._lock:
            fake._scheduled_events = [e for e in fake._scheduled_events if e["uri"] != event["uri"]]


def test_an_undo_whose_answers_are_all_lost_is_done_by_the_rerun_it_hints_at(synced: Bapp, fake: FakeCalendly) -> None:
    # Calendly deleted the mark and every answer was lost: the hint's rerun meets 404, which counts as done
    from tests.fakes.calendly_server import make_invitee, make_scheduled_event

    past = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(days=1)
    event = make_scheduled_event(902, FREE_TYPE, past, duration_minutes=15)
    fake.add_scheduled_event(event, [make_invitee(event["uri"], 902, email=CLIENT)])
    try:
        assert synced("calendly", "pull-bookings").exit_code == 0
        [booking] = bookings(synced.database_url)
        assert synced("bookings", "no-show", booking.reference).exit_code == 0
        fake.add_fault(Fault("/invitee_no_shows/", "apply_then_reset", times=None))
        lost = synced("bookings", "no-show", booking.reference, "--undo")
        assert lost.exit_code == 9 and "Hint: run the command again" in lost.stderr, lost.stderr
        assert fake.invitees_of(FREE_TYPE)[0]["no_show"] is None
        assert bookings(synced.database_url)[0].status == "no_show"
        fake.clear_faults()
        again = synced("bookings", "no-show", booking.reference, "--undo", "--json")
        assert again.exit_code == 0 and again.json()["status"] == "completed", again.stderr
    finally:
        with fake._lock:
            fake._scheduled_events = [e for e in fake._scheduled_events if e["uri"] != event["uri"]]


def test_an_undo_into_a_slot_booked_meanwhile_is_refused_before_calendly_is_asked(
    synced: Bapp, fake: FakeCalendly
) -> None:
    from tests.fakes.calendly_server import make_invitee, make_scheduled_event

    started = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(minutes=5)  # running: back to active
    event = make_scheduled_event(902, FREE_TYPE, started, duration_minutes=60)
    fake.add_scheduled_event(event, [make_invitee(event["uri"], 902, email=CLIENT)])
    try:
        assert synced("calendly", "pull-bookings", "--json").exit_code == 0
        [booking] = bookings(synced.database_url)
        assert synced("bookings", "no-show", booking.reference, "--json").exit_code == 0
        assert (
            synced("sessions", "add", "--title", "Local chat", "--duration", "30", "--category", "free").exit_code == 0
        )
        args = ("--client", CLIENT, "--session", "local-chat", "--start", z(started), "--allow-past", "--json")
        meanwhile = synced("bookings", "create", *args)
        assert meanwhile.exit_code == 0, meanwhile.stderr
        undone = synced("bookings", "no-show", booking.reference, "--undo", "--json")
        assert undone.exit_code == 8, undone.stderr
        assert f"client {CLIENT} already has booking {meanwhile.json()['reference']}" in undone.stderr
        assert "cancel or move the clashing booking first" in undone.stderr
        assert [r for r in fake.requests if r.method == "DELETE"] == []  # Calendly keeps its mark, as bapp does
        assert {b.reference: b.status for b in bookings(synced.database_url)}[booking.reference] == "no_show"
    finally:
        _drop_event(fake, event)


def _past_booking(synced: Bapp, fake: FakeCalendly, number: int) -> tuple[str, dict[str, Any], dict[str, Any]]:
    from tests.fakes.calendly_server import make_invitee, make_scheduled_event

    past = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(days=1)
    event = make_scheduled_event(number, FREE_TYPE, past, duration_minutes=15)
    invitee = make_invitee(event["uri"], number, email=CLIENT)
    fake.add_scheduled_event(event, [invitee])
    assert synced("calendly", "pull-bookings", "--json").exit_code == 0
    [booking] = bookings(synced.database_url)
    return booking.reference, event, invitee


def _drop_event(fake: FakeCalendly, event: dict[str, Any]) -> None:
    with fake._lock:
        fake._scheduled_events = [e for e in fake._scheduled_events if e["uri"] != event["uri"]]
        fake._invitees.pop(event["uri"].rsplit("/", 1)[-1], None)  # the fake serves both backends' runs


@pytest.mark.parametrize("answer", ["reset", 204])  # a 204 was a refusal (exit 9), though Calendly marked it
def test_a_no_show_whose_answer_is_lost_is_looked_up_not_sent_twice(
    synced: Bapp, fake: FakeCalendly, answer: str | int
) -> None:
    reference, event, _ = _past_booking(synced, fake, 902)
    try:
        if answer == "reset":
            fake.apply_then_reset_next("/invitee_no_shows")
        else:
            fake.add_fault(Fault("/invitee_no_shows", "apply_then_status", status=int(answer)))
        marked = synced("bookings", "no-show", reference, "--json")
        assert marked.exit_code == 0, marked.stderr
        assert marked.json()["status"] == "no_show"
        assert len(posts(fake, "/invitee_no_shows")) == 1  # Calendly had it: not sent again
        held = fake.invitees_of(FREE_TYPE)[0]["no_show"]["uri"]
        assert bookings(synced.database_url)[0].calendly_no_show_uri == held
    finally:
        _drop_event(fake, event)


def test_a_no_show_rerun_after_exit_9_does_not_mark_calendly_twice(synced: Bapp, fake: FakeCalendly) -> None:
    reference, event, _ = _past_booking(synced, fake, 903)
    try:
        # the answer is lost and Calendly cannot be asked either: exit 9, nothing changed here
        fake.apply_then_reset_next("/invitee_no_shows")
        fake.fail_next("/scheduled_events/", 503, times=20)
        lost = synced("bookings", "no-show", reference)
        assert lost.exit_code == 9, lost.stderr
        assert bookings(synced.database_url)[0].status == "confirmed"
        fake.clear_faults()
        again = synced("bookings", "no-show", reference, "--json")
        assert again.exit_code == 0, again.stderr
        assert len(posts(fake, "/invitee_no_shows")) == 1
        assert bookings(synced.database_url)[0].calendly_no_show_uri == fake.invitees_of(FREE_TYPE)[0]["no_show"]["uri"]
    finally:
        _drop_event(fake, event)


def test_a_no_show_for_an_invitee_calendly_no_longer_knows_exits_7_pointing_at_local_only(
    synced: Bapp, fake: FakeCalendly
) -> None:
    # Calendly answered 404: it was exit 9 ("remote service failed", as if a retry could help) with no way out
    reference, event, _ = _past_booking(synced, fake, 905)
    try:
        with fake._lock:
            fake._invitees[event["uri"].rsplit("/", 1)[-1]] = []  # gone from Calendly
        result = synced("bookings", "no-show", reference)
        assert result.exit_code == 7, result.stderr
        assert f"Hint: `bapp bookings no-show {reference} --local-only` changes it in bapp only" in result.stderr
        assert bookings(synced.database_url)[0].status == "confirmed"
    finally:
        _drop_event(fake, event)


@pytest.mark.parametrize("undo", [False, True])
def test_a_no_show_of_an_event_gone_from_calendly_exits_7_pointing_at_local_only(
    synced: Bapp, fake: FakeCalendly, undo: bool
) -> None:
    # the invitee listing asked first answered 404: it was exit 9 ("remote service failed") with no hint
    reference, event, _ = _past_booking(synced, fake, 907)
    if undo:  # marked in bapp only: the mark is looked up in Calendly
        assert synced("bookings", "no-show", reference, "--local-only").exit_code == 0
    _drop_event(fake, event)
    verb = "no-show --undo" if undo else "no-show"
    result = synced("bookings", *verb.split(), reference)
    assert result.exit_code == 7, result.stderr
    assert f"Hint: `bapp bookings {verb} {reference} --local-only` changes it in bapp only" in result.stderr
    assert bookings(synced.database_url)[0].status == ("no_show" if undo else "confirmed")


def test_a_no_show_mark_uri_longer_than_its_column_is_cut_not_a_crash(
    synced: Bapp, fake: FakeCalendly, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Calendly marked it and answered with a mark URI past the 500 characters bapp keeps: PostgreSQL refused
    # the row (exit 1, "value too long") after Calendly had acted; SQLite kept it whole. Cut as the pull cuts it.
    reference, event, _ = _past_booking(synced, fake, 906)
    answered: list[str] = []

    def with_a_long_uri(resource: dict[str, Any]) -> None:
        resource["uri"] += "?utm_content=" + "x" * 600
        answered.append(resource["uri"])

    _alter_answers(fake, monkeypatch, "create_no_show", with_a_long_uri)
    try:
        result = synced("bookings", "no-show", reference, "--json")
        assert result.exit_code == 0, result.stderr
        [booking] = bookings(synced.database_url)
        assert booking.status == "no_show"
        assert booking.calendly_no_show_uri == answered[0][:500]
    finally:
        _drop_event(fake, event)


def test_undo_deletes_in_calendly_a_mark_bapp_did_not_make(synced: Bapp, fake: FakeCalendly) -> None:
    reference, event, invitee = _past_booking(synced, fake, 904)
    try:
        # marked in bapp only, then in Calendly by hand: the URI is not known here
        assert synced("bookings", "no-show", reference, "--local-only").exit_code == 0
        with fake._lock:
            reply = fake.writes.create_no_show({"invitee": invitee["uri"]})
        assert reply.status == 201
        undone = synced("bookings", "no-show", reference, "--undo", "--json")
        assert undone.exit_code == 0, undone.stderr
        assert fake.invitees_of(FREE_TYPE)[0]["no_show"] is None
    finally:
        _drop_event(fake, event)


def test_no_show_before_the_start_is_refused_before_calendly_is_asked(synced: Bapp, fake: FakeCalendly) -> None:
    reference = create(synced, slot()).json()["reference"]
    result = synced("bookings", "no-show", reference)
    assert result.exit_code == 8
    assert posts(fake, "/invitee_no_shows") == []


# -- single-use links --------------------------------------------------------------------------------


def test_a_link_is_recorded_and_the_booking_made_through_it_uses_it(synced: Bapp, fake: FakeCalendly) -> None:
    assert synced("clients", "add", CLIENT, "--name", "Ava Chen").exit_code == 0
    result = synced("bookings", "link", "--client", CLIENT, "--session", FREE, "--json")
    assert result.exit_code == 0, result.stderr
    record = result.json()
    assert record["booking_url"].startswith("https://calendly.com/s/") and record["status"] == "open"
    assert posts(fake, "/scheduling_links") == [{"max_event_count": 1, "owner": FREE_TYPE, "owner_type": "EventType"}]
    fake.book_as_visitor(FREE_TYPE, slot(), CLIENT, "Ava Chen")
    pulled = synced("--verbose", "calendly", "pull-bookings", "--json")
    assert pulled.exit_code == 0, pulled.stderr
    assert pulled.json()["created"] == 1
    assert f"booked through the link {record['booking_url']}" in pulled.stderr
    engine = make_engine(synced.database_url)
    try:
        from sqlalchemy.orm import Session

        from bapp_cli.db.models import CalendlyInvitation

        with Session(engine) as session:
            [invitation] = session.scalars(select(CalendlyInvitation))
            assert invitation.status == "used" and invitation.booking_id == bookings(synced.database_url)[0].id
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("status", "body"), [(202, b'{"resource": {"booking_url": "https://calendly.com/s/A2"}}'), (204, b"")]
)
def test_any_2xx_to_a_link_is_calendly_having_made_it(
    synced: Bapp, fake: FakeCalendly, status: int, body: bytes
) -> None:
    # a 202 with the link in its body was read as a refusal (exit 9), the link Calendly made never recorded
    assert synced("clients", "add", CLIENT).exit_code == 0
    fake.add_fault(Fault("/scheduling_links", "apply_then_status", status=status, body=body))
    result = synced("bookings", "link", "--client", CLIENT, "--session", FREE, "--json")
    assert len(posts(fake, "/scheduling_links")) == 1  # sent once, never again
    if body:
        assert result.exit_code == 0, result.stderr
        assert result.json()["booking_url"] == "https://calendly.com/s/A2"
    else:  # made, but the answer does not say where: nothing to record, and said as a lost answer, not a refusal
        assert result.exit_code == 9
        assert "HTTP 204 but" in result.stderr and "the request was received" in result.stderr
    engine = make_engine(synced.database_url)
    try:
        from sqlalchemy.orm import Session

        from bapp_cli.db.models import CalendlyInvitation

        with Session(engine) as session:
            urls = session.scalars(select(CalendlyInvitation.booking_url)).all()
        assert urls == (["https://calendly.com/s/A2"] if body else [])
    finally:
        engine.dispose()


def test_a_link_calendly_answers_again_is_refused_as_its_answer_not_a_crash(synced: Bapp, fake: FakeCalendly) -> None:
    # the link Calendly answered with was recorded without a look-up, as no key of bapp's is: one already recorded
    # broke the unique booking_url, exit 1 (IntegrityError) on SQLite and exit 8 "run the command again" on PostgreSQL
    assert synced("clients", "add", CLIENT).exit_code == 0
    body = b'{"resource": {"booking_url": "https://calendly.com/s/A2"}}'
    fake.add_fault(Fault("/scheduling_links", "apply_then_status", status=201, body=body, times=2))
    assert synced("bookings", "link", "--client", CLIENT, "--session", FREE).exit_code == 0
    again = synced("bookings", "link", "--client", CLIENT, "--session", FREE, "--json")
    assert again.exit_code == 9, again.stderr
    assert "a scheduling link already recorded, https://calendly.com/s/A2" in error_lines(again.stderr)[0]
    engine = make_engine(synced.database_url)
    try:
        with engine.connect() as connection:
            urls = connection.scalars(select(CalendlyInvitation.booking_url)).all()
        assert urls == ["https://calendly.com/s/A2"]  # recorded once
    finally:
        engine.dispose()


def test_a_link_whose_answer_is_lost_says_a_rerun_is_safe_and_the_rerun_records_one(
    synced: Bapp, fake: FakeCalendly
) -> None:
    # Calendly lists no scheduling links, so a lost answer cannot be looked up: exit 9 said only "the request may
    # have been received, so it was not resent", leaving the user to guess whether a rerun would leave a second
    # link about. It may, but the first is one no one has the address of: no one can book through it.
    assert synced("clients", "add", CLIENT).exit_code == 0
    fake.apply_then_reset_next("/scheduling_links")
    lost = synced("bookings", "link", "--client", CLIENT, "--session", FREE, "--json")
    assert lost.exit_code == 9, lost.stderr
    assert "was not resent" in lost.stderr and "no one can book through it: run the command again" in lost.stderr
    assert len(posts(fake, "/scheduling_links")) == 1  # never resent by bapp itself
    again = synced("bookings", "link", "--client", CLIENT, "--session", FREE, "--json")
    assert again.exit_code == 0, again.stderr
    assert len(posts(fake, "/scheduling_links")) == 2
    engine = make_engine(synced.database_url)
    try:
        from sqlalchemy.orm import Session

        from bapp_cli.db.models import CalendlyInvitation

        with Session(engine) as session:
            urls = session.scalars(select(CalendlyInvitation.booking_url)).all()
        assert urls == [again.json()["booking_url"]]  # the link the user was given, the one kept
    finally:
        engine.dispose()


def test_a_link_for_an_unknown_client_exits_7(synced: Bapp, fake: FakeCalendly) -> None:
    result = synced("bookings", "link", "--client", "nobody@client.example", "--session", FREE)
    assert result.exit_code == 7
    assert posts(fake, "/scheduling_links") == []


def test_a_link_for_a_session_that_is_not_bookable_exits_6_saying_why(synced: Bapp, fake: FakeCalendly) -> None:
    assert synced("clients", "add", CLIENT).exit_code == 0
    assert synced("sessions", "update", FREE, "--disable").exit_code == 0
    result = synced("bookings", "link", "--client", CLIENT, "--session", FREE)
    assert result.exit_code == 6
    assert "is not bookable (it is disabled locally)" in result.stderr
    assert posts(fake, "/scheduling_links") == []


# -- open slots --------------------------------------------------------------------------------------


def test_slots_lists_open_starts_in_windows_of_31_days(synced: Bapp, fake: FakeCalendly) -> None:
    taken = slot(hour=10)
    assert create(synced, taken).exit_code == 0
    fake.clear_requests()
    result = synced("sessions", "slots", FREE, "--days", "40", "--json")
    assert result.exit_code == 0, result.stderr
    records = result.json()
    starts = [r["start_time"] for r in records]
    assert z(taken).replace("+00:00", "Z") not in [s.replace(".000000", "") for s in starts]
    assert list(records[0]) == ["session", "start_time", "end_time", "invitees_remaining", "scheduling_url"]
    assert all(r["session"] == FREE and r["invitees_remaining"] == 1 for r in records)
    windows = [r.params for r in fake.requests if r.path == "/event_type_available_times"]
    assert len(windows) == 2
    first_start = dt.datetime.fromisoformat(windows[0]["start_time"])
    assert dt.timedelta(0) < first_start - dt.datetime.now(dt.UTC) <= dt.timedelta(minutes=1)
    assert windows[0]["end_time"] == windows[1]["start_time"]  # back to back
    assert dt.datetime.fromisoformat(windows[0]["end_time"]) - first_start == dt.timedelta(days=31)


def test_slots_table_has_a_column_per_day_in_the_viewers_zone(synced: Bapp, fake: FakeCalendly) -> None:
    day = slot(days=3, hour=0)
    result = synced(
        "sessions", "slots", FREE, "--from", day.date().isoformat(), "--days", "1", "--timezone", "Asia/Tokyo",
        "--format", "table", env={"COLUMNS": "200"},
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    # the fake opens 09:00–16:00 UTC, which is 18:00–01:00 the next day in Tokyo
    assert "18:00" in result.stdout and "00:00" in result.stdout
    assert "09:00" not in result.stdout
    assert "Asia/Tokyo" in result.stdout


def test_a_booking_ending_past_the_supported_range_is_refused_before_calendly_is_asked(
    synced: Bapp, fake: FakeCalendly
) -> None:
    # its start is in range (checked before Calendly), its end was checked only after Calendly's open slots
    fake.clear_requests()
    result = create(synced, dt.datetime(2999, 12, 31, 23, 50, tzinfo=dt.UTC))
    assert result.exit_code == 6, result.stderr
    expected = "Error: end_time: '3000-01-01T00:05:00Z' is outside the supported range 1900-01-01 to 2999-12-31"
    assert error_lines(result.stderr) == [expected]
    assert fake.requests == []
    assert bookings(synced.database_url) == []


def test_slots_of_a_local_session_type_exit_6(synced: Bapp) -> None:
    assert synced("sessions", "add", "--title", "Local chat", "--duration", "30").exit_code == 0
    result = synced("sessions", "slots", "local-chat")
    assert result.exit_code == 6
    assert "has no Calendly event type" in result.stderr


def test_slots_of_a_builder_not_accepting_bookings_exit_6_as_bookings_create(synced: Bapp, fake: FakeCalendly) -> None:
    # slots listed times that `bookings create` then refused (rule 1), where `sessions available` offers none
    # of that builder's sessions; `bookings link` still makes a link (its booking comes in through Calendly)
    assert synced("builders", "add", "coach@example.com", "--calendly-user", USER).exit_code == 0
    assert synced("clients", "add", CLIENT).exit_code == 0
    assert synced("calendly", "sync", "--user", USER).exit_code == 0  # the coach owns the synced types now
    assert synced("builders", "update", "coach@example.com", "--not-accepting").exit_code == 0
    fake.clear_requests()
    result = synced("sessions", "slots", FREE, "--json")
    assert result.exit_code == 6 and result.stdout == ""
    assert result.stderr.startswith("Error: builder: coach@example.com is not accepting bookings\n")
    assert json.loads(result.stderr.splitlines()[-1])["error"]["code"] == "not_accepting"
    assert fake.requests == []  # Calendly is not asked for times no booking may take
    assert "not accepting bookings" in create(synced, slot(hour=10)).stderr  # what each listed time would meet
    assert synced("bookings", "link", "--client", CLIENT, "--session", FREE).exit_code == 0
    assert synced("builders", "update", "coach@example.com", "--accepting").exit_code == 0
    assert synced("sessions", "slots", FREE, "--json").json()
    # rule 1's first half too, which `sessions available` applies as well
    assert synced("sessions", "update", FREE, "--disable").exit_code == 0
    disabled = synced("sessions", "slots", FREE)
    assert disabled.exit_code == 6 and "is not bookable (it is disabled locally)" in disabled.stderr


def test_slots_leave_out_starts_the_builders_rules_refuse(synced: Bapp, fake: FakeCalendly) -> None:
    # Calendly knows neither the builder's notice and horizon in bapp nor their bookings made in bapp alone: slots
    # listed tomorrow's times to a builder who needs 48 hours' notice, and the hour of a local booking, each of
    # which `bookings create` then refused (exit 6, exit 8)
    coach = "coach@example.com"
    settings = ("--minimum-notice", "48", "--max-advance", "5", "--buffer", "30")
    assert synced("builders", "add", coach, "--calendly-user", USER, *settings).exit_code == 0
    assert synced("calendly", "sync", "--user", USER).exit_code == 0  # the coach owns the synced types now
    local = ("--title", "Local chat", "--duration", "60", "--category", "free", "--builder", coach)
    assert synced("sessions", "add", *local).exit_code == 0
    busy = slot(days=3, hour=12)
    held = ("bookings", "create", "--client", "bo@client.example", "--session", "local-chat", "--start", z(busy))
    assert synced(*held).exit_code == 0
    now = dt.datetime.now(dt.UTC)
    result = synced("sessions", "slots", FREE, "--days", "10", "--json")
    assert result.exit_code == 0, result.stderr
    starts = [dt.datetime.fromisoformat(record["start_time"]) for record in result.json()]
    assert starts and all(
        now + dt.timedelta(hours=48) <= start <= now + dt.timedelta(days=5, minutes=1) for start in starts
    )
    # the 15-minute FREE session within 30 minutes of 12:00-13:00 is refused; an hour either side is not
    assert busy - dt.timedelta(hours=1) in starts and busy + dt.timedelta(hours=2) in starts
    assert busy not in starts and busy + dt.timedelta(hours=1) not in starts
    first = create(synced, starts[0])
    assert first.exit_code == 0, first.stderr  # what is listed can be booked
    assert create(synced, busy + dt.timedelta(hours=1), client="cy@client.example").exit_code == 8


def test_the_token_never_appears_in_output_errors_or_audit_rows(synced: Bapp, fake: FakeCalendly) -> None:
    from tests.cli.calendly_fixtures import TOKEN

    booking = ("bookings", "create", "--client", CLIENT, "--session", FREE, *ANSWERS, "--start")
    results = [synced("--debug", "-vv", *booking, z(slot(hour=9)))]
    fake.refuse_plan_next()
    results.append(synced("--debug", *booking, z(slot(hour=11))))
    fake.booking_rate_limit_next(reset=30, times=None)
    results.append(synced("--debug", "-vv", *booking, z(slot(hour=12))))
    fake.clear_faults()
    fake.apply_then_reset_next()
    fake.fail_next("/scheduled_events", 500, times=None)
    results.append(synced("--debug", *booking, z(slot(hour=13))))
    results.append(synced("--debug", "calendly", "reconcile"))
    fake.clear_faults()
    results.append(synced("--debug", "-vv", "calendly", "reconcile", "--json"))
    reference = bookings(synced.database_url)[0].reference
    results.append(synced("--debug", "bookings", "cancel", reference, "--json"))
    assert [r.exit_code for r in results] == [0, 4, 9, 9, 9, 0, 0]
    for result in results:
        assert TOKEN not in result.stdout and TOKEN not in result.stderr
    assert all(TOKEN not in json.dumps(row.changes) for row in audit_rows(synced.database_url))


def _apply_invitee_created(synced: Bapp, fake: FakeCalendly, invitee: dict[str, Any], tmp_path: Any) -> Any:
    """`calendly webhook apply` of Calendly's signed invitee.created delivery for `invitee`."""
    import time

    from bapp_cli.calendly.webhooks import make_signature_header

    event = fake.scheduled_event(invitee["event"])
    envelope = {"event": "invitee.created", "created_at": invitee["created_at"], "created_by": USER}
    body = json.dumps({**envelope, "payload": {**invitee, "scheduled_event": event}}).encode()
    path = tmp_path / "delivery.json"
    path.write_bytes(body)
    key = "whsec-r8-test"
    signature = make_signature_header(body, key, timestamp=int(time.time()))
    return synced(
        "calendly", "webhook", "apply", str(path), "--signature", signature, "--json",
        env={"CALENDLY_WEBHOOK_SIGNING_KEY": key},
    )  # fmt: skip


def test_a_webhook_of_the_invitee_completes_the_held_booking(synced: Bapp, fake: FakeCalendly, tmp_path: Any) -> None:
    fake.apply_then_reset_next()
    fake.fail_next("/scheduled_events", 500, times=6)
    assert create(synced, slot()).exit_code == 9
    [invitee] = fake.invitees_of(FREE_TYPE)
    result = _apply_invitee_created(synced, fake, invitee, tmp_path)
    assert result.exit_code == 0, result.stderr
    assert result.json()["action"] == "updated"
    [booking] = bookings(synced.database_url)
    assert (booking.calendly_invitee_uri, booking.calendly_state, booking.status) == (
        invitee["uri"],
        "booked",
        "confirmed",
    )
    assert synced("calendly", "reconcile", "--json").json() == []  # nothing left to settle


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_reconcile_run_while_an_error_is_handled_further_up_still_shows_its_rows(synced: Bapp) -> None:
    # reconcile told a run stopped partway from a finished one by sys.exc_info(), which also sees an exception
    # a caller is handling: run from such a handler (an embedding script's retry), it showed nothing, not []
    try:
        raise LookupError("the caller's own")
    except LookupError:
        result = synced("calendly", "reconcile", "--json")
    assert result.exit_code == 0, result.stderr
    assert result.json() == []


# -- Ctrl-C while Calendly is being asked --------------------------------------------------------------


def _assert_left_pending(synced: Bapp, stderr: str) -> None:
    """The held booking is still pending, and the one error line says so (not "nothing was changed")."""
    [booking] = bookings(synced.database_url)
    assert (booking.status, booking.calendly_state) == ("pending", "requested")
    assert "nothing was changed" not in stderr
    [line] = error_lines(stderr)
    assert f"booking {booking.reference}" in line and "stays pending" in line
    assert "bapp calendly reconcile" in stderr


def _interrupt_during_post(
    app: Bapp,
    fake: FakeCalendly,
    path: str,
    *args: str,
    method: str = "POST",
    held: Fault | None = None,
    stop: int = signal.SIGINT,
) -> tuple[int, str, str]:
    """Run `bapp *args` as a process, SIGINT it once its ``method`` request to ``path`` is held by the fake
    (by ``held``, else by a hang of the next request to ``path``): its exit code, stderr and stdout."""
    import time

    fake.clear_requests()
    fake.add_fault(held or Fault(path, "hang", seconds=10))
    process = app.popen(*args, env={"BAPP_CALENDLY_TIMEOUT": "30"})
    deadline = time.monotonic() + 60
    while not any(r.method == method and r.path.startswith(path) and held_by(r, held) for r in fake.requests):
        assert time.monotonic() < deadline and process.poll() is None, process.communicate()
        time.sleep(0.02)
    process.send_signal(stop)
    stdout, stderr = process.communicate(timeout=60)
    return process.returncode, stderr, stdout


def test_ctrl_c_while_calendly_books_says_the_booking_waits_for_reconcile(synced: Bapp, fake: FakeCalendly) -> None:
    # it said "Interrupted; nothing was changed." while the held booking stayed pending and Calendly may
    # have booked it
    args = ("bookings", "create", "--client", CLIENT, "--session", FREE, "--start", z(slot()), *ANSWERS)
    code, stderr, _ = _interrupt_during_post(synced, fake, "/invitees", *args)
    assert code == 130, stderr
    _assert_left_pending(synced, stderr)


def test_ctrl_c_while_a_taken_slots_nearest_starts_are_asked_keeps_the_booking_pending(
    synced: Bapp, fake: FakeCalendly
) -> None:
    # Calendly refused the slot as taken; Ctrl-C came while the nearest open starts were asked for the hint.
    # The message says the booking stays pending, so it must still be there (it was removed before the request)
    import time

    fake.fail_next("/invitees", 409)
    fake.add_fault(Fault("/event_type_available_times", "delay"))  # the check before the hold goes through
    hang = fake.add_fault(Fault("/event_type_available_times", "hang", seconds=10))  # the hint's request
    fake.clear_requests()
    args = ("bookings", "create", "--client", CLIENT, "--session", FREE, "--start", z(slot()), *ANSWERS)
    process = synced.popen(*args, env={"BAPP_CALENDLY_TIMEOUT": "30"})
    deadline = time.monotonic() + 60
    while len([r for r in fake.requests if r.path == "/event_type_available_times"]) < 2:
        assert time.monotonic() < deadline and process.poll() is None, process.communicate()
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    hang.released.set()
    assert process.returncode == 130, stderr
    _assert_left_pending(synced, stderr)


def test_ctrl_c_of_a_dry_run_booking_says_nothing_was_changed(synced: Bapp, fake: FakeCalendly) -> None:
    # the session type was read in a write transaction, whose commit (of nothing) marked the run as having
    # committed: stopped while Calendly was asked for the event type, a --dry-run said "Interrupted; what was
    # committed before the stop stands." (5e8f011)
    args = ("bookings", "create", "--client", CLIENT, "--session", FREE, "--start", z(slot()), *ANSWERS, "--dry-run")
    code, stderr, _ = _interrupt_during_post(synced, fake, "/event_types/", *args, method="GET")
    assert code == 130, stderr
    assert stderr.strip().splitlines()[-1] == "Interrupted; nothing was changed."
    assert bookings(synced.database_url) == []


@pytest.mark.parametrize(("stop", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_a_stop_signal_while_calendly_books_exits_with_the_signals_code(
    synced: Bapp, fake: FakeCalendly, stop: int, code: int
) -> None:
    # SIGTERM and SIGHUP unwind as Ctrl-C does, with 128 + the signal (R3): here it was 130 whatever the signal,
    # and it said "interrupted" of each, the word of README's 130
    args = ("bookings", "create", "--client", CLIENT, "--session", FREE, "--start", z(slot()), *ANSWERS)
    exit_code, stderr, _ = _interrupt_during_post(synced, fake, "/invitees", *args, stop=stop)
    assert exit_code == code, stderr
    _assert_left_pending(synced, stderr)
    how = "terminated" if stop == signal.SIGTERM else "hung up"
    assert error_lines(stderr)[0].startswith(f"Error: {how} while Calendly was asked about booking "), stderr


def held_by(request: Any, fault: Fault | None) -> bool:
    return fault is None or all(request.params.get(name) == value for name, value in fault.params.items())


def test_ctrl_c_while_a_lost_answer_is_looked_up_says_the_booking_waits_for_reconcile(
    synced: Bapp, fake: FakeCalendly
) -> None:
    # Ctrl-C after the POST's answer was lost, while Calendly was asked for the booking: it said "Interrupted;
    # nothing was changed." while the held booking stayed pending and Calendly may have booked it
    fake.fail_next("/invitees", 500)
    args = ("bookings", "create", "--client", CLIENT, "--session", FREE, "--start", z(slot()), *ANSWERS)
    code, stderr, _ = _interrupt_during_post(synced, fake, "/scheduled_events", *args, method="GET")
    assert code == 130, stderr
    _assert_left_pending(synced, stderr)


@pytest.mark.parametrize(
    ("stop", "code", "shown"), [(signal.SIGINT, 130, "--json"), (signal.SIGTERM, 143, "--format=csv")]
)
def test_ctrl_c_while_reconcile_looks_one_up_keeps_the_ones_it_settled(
    synced: Bapp, fake: FakeCalendly, stop: int, code: int, shown: str
) -> None:
    # it said "Interrupted; nothing was changed." after it had completed the bookings before the one it asked
    # about (here it resent the first); then it showed no row for those, and the next reconcile lists none of them
    fake.fail_next("/invitees", 500, times=2)
    fake.fail_next("/scheduled_events", 500, times=None)  # the lookups fail too: both left unknown
    assert create(synced, slot(hour=10)).exit_code == 9
    assert create(synced, slot(hour=11), client="ben@client.example").exit_code == 9
    fake.clear_faults()
    ben = Fault("/scheduled_events", "hang", seconds=10, params={"invitee_email": "ben@client.example"})
    exit_code, stderr, stdout = _interrupt_during_post(
        synced, fake, "/scheduled_events", "calendly", "reconcile", shown, method="GET", held=ben, stop=stop
    )
    assert exit_code == code, stderr
    ava, held = bookings(synced.database_url)
    if shown == "--json":
        [row] = json.loads(stdout)
        assert (row["booking"], row["action"], row["status"]) == (ava.reference, "resent", "confirmed")
    else:
        header, row, *more = stdout.splitlines()
        assert (
            header.startswith("booking,") and row.startswith(f"{ava.reference},") and ",resent,booked,confirmed," in row
        ), stdout
        assert more == []
    assert (ava.calendly_state, ava.status, held.calendly_state) == ("booked", "confirmed", "unknown")
    assert "nothing was changed" not in stderr
    [line] = error_lines(stderr)
    assert f"booking {held.reference}" in line and "stays pending" in line


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_ctrl_c_while_reconcile_says_a_settled_booking_still_shows_its_row(
    synced: Bapp, fake: FakeCalendly, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the row was kept only after its line was said: a stop while saying it (a slow terminal) dropped the row
    # of a booking already resent and committed from the rows shown
    fake.fail_next("/invitees", 500, times=1)
    fake.fail_next("/scheduled_events", 500, times=None)  # the lookup fails too: left unknown
    assert create(synced, slot()).exit_code == 9
    fake.clear_faults()

    def stopped(*_: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("bapp_cli.cli.output.OutputSink.info", stopped)
    result = synced("calendly", "reconcile", "--json")
    assert result.exit_code == 130, result.stderr
    [booking] = bookings(synced.database_url)
    assert (booking.status, booking.calendly_state) == ("confirmed", "booked")
    [row] = result.json()
    assert (row["booking"], row["action"]) == (booking.reference, "resent")


def test_ctrl_c_while_calendly_cancels_says_calendly_may_have(synced: Bapp, fake: FakeCalendly) -> None:
    made = create(synced, slot())
    assert made.exit_code == 0, made.stderr
    reference = made.json()["reference"]
    code, stderr, _ = _interrupt_during_post(synced, fake, "/scheduled_events/", "bookings", "cancel", reference)
    assert code == 130, stderr
    assert "nothing was changed" not in stderr
    [line] = error_lines(stderr)
    assert "Calendly may have" in line and reference in line
    assert "run the command again" in stderr
    assert bookings(synced.database_url)[0].status == "confirmed"


def test_ctrl_c_while_reconcile_resends_stops_the_reconcile(synced: Bapp, fake: FakeCalendly) -> None:
    fake.fail_next("/invitees", 500, times=1)
    fake.fail_next("/scheduled_events", 500, times=None)  # the lookup fails too: left unknown
    assert create(synced, slot()).exit_code == 9
    fake.clear_faults()
    [booking] = bookings(synced.database_url)
    code, stderr, _ = _interrupt_during_post(synced, fake, "/invitees", "calendly", "reconcile", "--json")
    assert code == 130, stderr
    assert "nothing was changed" not in stderr and "stays pending" in error_lines(stderr)[0]
    [after] = bookings(synced.database_url)
    assert (after.status, after.calendly_state) == ("pending", booking.calendly_state)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_reconcile_stopped_with_its_reader_gone_still_says_which_booking_stays_pending(
    synced: Bapp, fake: FakeCalendly
) -> None:
    # a stopped run shows the rows it settled; its reader gone (`| head`), that write's closed pipe took the
    # stop's place: exit 141 and not a word that Ben's resent booking stays pending (Calendly may have it)
    import time

    fake.apply_then_reset_next()  # Calendly books Ava's, the answer is lost...
    fake.fail_next("/scheduled_events", 500, times=None)  # ...and no lookup can be made: left unknown
    assert create(synced, slot(hour=10)).exit_code == 9
    fake.fail_next("/invitees", 500)  # Ben's never reaches Calendly
    assert create(synced, slot(hour=11), client="ben@client.example").exit_code == 9
    fake.clear_faults()
    fake.clear_requests()
    fake.add_fault(Fault("/invitees", "hang", seconds=10))  # Ben's resend, once Ava's is attached
    process = synced.popen("calendly", "reconcile", "--json", env={"BAPP_CALENDLY_TIMEOUT": "30"})
    deadline = time.monotonic() + 60
    while not any(r.method == "POST" and r.path.startswith("/invitees") for r in fake.requests):
        assert time.monotonic() < deadline and process.poll() is None, process.communicate()
        time.sleep(0.02)
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()
    process.send_signal(signal.SIGINT)
    stderr = process.stderr.read()
    assert process.wait(timeout=60) == 130, stderr
    ava, ben = bookings(synced.database_url)
    assert (ava.calendly_state, ben.calendly_state) == ("booked", "unknown")  # Ava's attached, committed
    assert f"booking {ben.reference}; it stays pending" in error_lines(stderr)[0], stderr


def test_reconcile_gives_up_a_booking_whose_event_type_is_gone_and_goes_on(synced: Bapp, fake: FakeCalendly) -> None:
    # the resend fetched the event type, and Calendly's 404 ended the whole reconcile with exit 7: every
    # reconcile stopped at this booking until its give-up age, and the pending bookings after it waited too
    fake.fail_next("/invitees", 500, times=1)
    fake.fail_next("/scheduled_events", 500, times=None)  # the lookup fails too: left unknown, not resent
    assert create(synced, slot()).exit_code == 9
    fake.clear_faults()
    fake.set_event_types(catalogue()[1:])  # ET00000000 deleted in Calendly
    result = synced("calendly", "reconcile", "--json")
    assert result.exit_code == 0, result.stderr
    [row] = result.json()
    assert (row["action"], row["calendly_state"], row["status"]) == ("failed", "failed", "cancelled")
    assert "event type" in row["note"]
    [booking] = bookings(synced.database_url)
    assert (booking.status, booking.calendly_state) == ("cancelled", "failed")
    assert posts(fake) == [posts(fake)[0]]  # never resent


def test_reconcile_never_resends_a_booking_cancelled_here_meanwhile(synced: Bapp, fake: FakeCalendly) -> None:
    # the pending booking was cancelled with --local-only (as the refusal suggests); reconcile then found
    # nothing in Calendly and resent it: the client was booked in Calendly for a session cancelled in bapp
    fake.fail_next("/invitees", 500, times=1)
    fake.fail_next("/scheduled_events", 500, times=None)  # the lookup fails too: left unknown, not resent
    assert create(synced, slot()).exit_code == 9
    fake.clear_faults()
    [booking] = bookings(synced.database_url)
    cancelled = synced("bookings", "cancel", booking.reference, "--local-only")
    assert cancelled.exit_code == 0, cancelled.stderr
    result = synced("calendly", "reconcile", "--json")
    assert result.exit_code == 0, result.stderr
    [row] = result.json()
    assert (row["action"], row["calendly_state"], row["status"]) == ("failed", "failed", "cancelled")
    assert "not resent" in row["note"]
    assert len(posts(fake)) == 1 and fake.invitees_of(FREE_TYPE) == []
    [after] = bookings(synced.database_url)
    assert (after.status, after.calendly_state) == ("cancelled", "failed")
    assert synced("calendly", "reconcile", "--json").json() == []  # settled: not looked at again


def test_reconcile_warns_that_calendly_still_has_a_booking_cancelled_here_meanwhile(
    synced: Bapp, fake: FakeCalendly
) -> None:
    # Calendly booked it, the answer was lost, and it was cancelled with --local-only: reconcile attached the
    # invitee Calendly holds and said to cancel it there only in the row's note, which a cron run never shows
    fake.apply_then_reset_next()
    fake.fail_next("/scheduled_events", 500, times=6)
    assert create(synced, slot()).exit_code == 9
    fake.clear_faults()
    [booking] = bookings(synced.database_url)
    assert synced("bookings", "cancel", booking.reference, "--local-only").exit_code == 0
    result = synced("calendly", "reconcile", "--json")
    assert result.exit_code == 0, result.stderr
    [row] = result.json()
    assert (row["action"], row["status"]) == ("attached", "cancelled")
    assert row["note"].endswith("so cancel the invitee in Calendly too")
    assert f"Warning: {booking.reference}: attached (" in result.stderr


def test_a_webhook_for_a_held_booking_cancelled_here_warns_that_calendly_still_has_it(
    synced: Bapp, fake: FakeCalendly, tmp_path: Any
) -> None:
    # the held booking was cancelled with --local-only; Calendly's invitee then arrived and was attached
    # silently: bapp said cancelled, Calendly kept the session, and nobody was told
    fake.apply_then_reset_next()
    fake.fail_next("/scheduled_events", 500, times=6)
    assert create(synced, slot()).exit_code == 9
    [booking] = bookings(synced.database_url)
    assert synced("bookings", "cancel", booking.reference, "--local-only").exit_code == 0
    [invitee] = fake.invitees_of(FREE_TYPE)
    result = _apply_invitee_created(synced, fake, invitee, tmp_path)
    assert result.exit_code == 0, result.stderr
    record = result.json()
    assert (record["action"], record["booking_status"]) == ("updated", "cancelled")
    assert any("cancel the invitee in Calendly" in warning for warning in record["warnings"])
    [after] = bookings(synced.database_url)
    assert (after.calendly_invitee_uri, after.calendly_state, after.status) == (invitee["uri"], "booked", "cancelled")


def test_a_cancel_calendly_no_longer_knows_says_how_to_cancel_here(synced: Bapp, fake: FakeCalendly) -> None:
    # exit 7 "Calendly has no scheduled event …" left support with a booking they could not cancel, and no
    # word of --local-only
    made = create(synced, slot())
    assert made.exit_code == 0, made.stderr
    reference = made.json()["reference"]
    fake.fail_next("/scheduled_events/", 404)
    refused = synced("bookings", "cancel", reference)
    assert refused.exit_code == 7, refused.stderr
    assert "Calendly has no scheduled event" in error_lines(refused.stderr)[0]
    assert f"bapp bookings cancel {reference} --local-only" in refused.stderr
    assert bookings(synced.database_url)[0].status == "confirmed"


def test_a_booking_waiting_for_calendly_cannot_be_confirmed_then_lost_to_a_refused_resend(
    synced: Bapp, fake: FakeCalendly
) -> None:
    # `bookings confirm` was accepted on a booking still waiting for Calendly; reconcile then resent it, Calendly
    # said the slot was taken, and the held booking was deleted although support had confirmed it
    fake.fail_next("/invitees", 500, times=1)
    fake.fail_next("/scheduled_events", 500, times=None)  # the lookup fails too: left unknown, not resent
    assert create(synced, slot()).exit_code == 9
    fake.clear_faults()
    [booking] = bookings(synced.database_url)
    refused = synced("bookings", "confirm", booking.reference)
    assert refused.exit_code == 8, refused.stderr
    assert error_lines(refused.stderr) == [
        f"Error: booking {booking.reference} is still waiting for Calendly's confirmation"
    ]
    assert "bapp calendly reconcile" in refused.stderr
    [after] = bookings(synced.database_url)
    assert (after.status, after.calendly_state) == ("pending", "unknown")


def next_clock_change(zone: ZoneInfo, *, forward: bool) -> dt.date:
    """The first day, a week or more from today, on which ``zone``'s clocks go forward (or back)."""
    day = dt.date.today() + dt.timedelta(days=7)
    while True:
        before, after = (dt.datetime.combine(d, dt.time(), zone).strftime("%z") for d in (day, day + dt.timedelta(1)))
        if before != after and (int(after) > int(before)) == forward:
            return day
        day += dt.timedelta(days=1)


@pytest.mark.parametrize("forward", [True, False])
def test_slots_days_are_whole_local_days_across_a_clock_change(synced: Bapp, fake: FakeCalendly, forward: bool) -> None:
    # 7 days from a local midnight end at a local midnight: 24 h × 7 would end an hour later when the clocks go
    # forward in between (an open start of the 8th day shown) and an hour early when they go back (one hidden)
    zone = ZoneInfo("Europe/London")
    first_day = next_clock_change(zone, forward=forward) - dt.timedelta(days=3)
    end = dt.datetime.combine(first_day + dt.timedelta(days=7), dt.time(), zone).astimezone(dt.UTC)
    inside, outside = end - dt.timedelta(minutes=30), end + dt.timedelta(minutes=30)
    fake.set_open_starts(FREE_TYPE, [inside, outside])
    args = ("--from", first_day.isoformat(), "--days", "7", "--timezone", zone.key, "--json")
    result = synced("sessions", "slots", FREE, *args)
    assert result.exit_code == 0, result.stderr
    assert [record["start_time"] for record in result.json()] == [z(inside)]


def test_slots_without_from_are_whole_days_from_today(synced: Bapp, fake: FakeCalendly) -> None:
    # 2 days from now ran to this time of day the day after tomorrow: a third column, cut at this hour. A zone
    # whose clock is near noon now, so that the old window held a start half an hour into that third day
    hours = 12 - dt.datetime.now(dt.UTC).hour  # local noon: UTC plus this many hours (Etc/GMT-N is UTC+N)
    zone = ZoneInfo("Etc/GMT" + (f"{-hours:+d}" if hours else ""))
    today = dt.datetime.now(zone).date()
    end = dt.datetime.combine(today + dt.timedelta(days=2), dt.time(), zone)
    inside, outside = end - dt.timedelta(minutes=30), end + dt.timedelta(minutes=30)
    fake.set_open_starts(FREE_TYPE, [inside, outside])
    result = synced("sessions", "slots", FREE, "--days", "2", "--timezone", zone.key, "--json")
    assert result.exit_code == 0, result.stderr
    assert [record["start_time"] for record in result.json()] == [z(inside.astimezone(dt.UTC))]
    assert result.stderr == ""  # today's midnight is the default start, no past --from to speak of
    table = synced("sessions", "slots", FREE, "--days", "2", "--timezone", zone.key, "-f", "table")
    assert table.exit_code == 0 and (today + dt.timedelta(days=2)).strftime("%a %d %b") not in table.stdout


def test_slots_in_the_hour_the_clocks_repeat_show_their_offset(synced: Bapp, fake: FakeCalendly) -> None:
    # 01:30 comes twice the night the clocks go back: two bare "01:30" lines told them apart in no way, and
    # `bookings create --start …T01:30` refuses that time without the offset the table now shows
    zone = ZoneInfo("Europe/London")
    day = next_clock_change(zone, forward=False)
    first = dt.datetime.combine(day, dt.time(1, 30), zone).astimezone(dt.UTC)  # fold 0: summer time
    fake.set_open_starts(FREE_TYPE, [first, first + dt.timedelta(hours=1), first + dt.timedelta(hours=2)])
    args = ("--from", day.isoformat(), "--days", "1", "--timezone", zone.key, "--format", "table")
    result = synced("sessions", "slots", FREE, *args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.stderr
    assert "01:30+01:00" in result.stdout and "01:30+00:00" in result.stdout
    assert "02:30 " in result.stdout and "02:30+" not in result.stdout  # once only: as it always was
    shown = ("--start", f"{day.isoformat()}T01:30+00:00")  # the later 01:30 as the table shows it books that slot
    booked = synced("bookings", "create", "--client", CLIENT, "--session", FREE, *shown, *ANSWERS, "--json")
    assert booked.exit_code == 0, booked.stderr
    assert booked.json()["start_time"] == z(first + dt.timedelta(hours=1))


def test_slots_of_many_days_stay_whole_on_an_80_column_terminal(synced: Bapp, fake: FakeCalendly) -> None:
    # 14 days side by side (the help's own example) were cut by Rich to `09…` under `T…`: no time could be read.
    # The days a terminal cannot hold whole go on in a table below
    first_day = dt.date.today() + dt.timedelta(days=10)
    starts = [dt.datetime.combine(first_day + dt.timedelta(days=n), dt.time(9, 30), dt.UTC) for n in range(14)]
    fake.set_open_starts(FREE_TYPE, starts)
    args = ("--from", first_day.isoformat(), "--days", "14", "--timezone", "UTC", "--format", "table")
    result = synced("sessions", "slots", FREE, *args, env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.stderr
    assert "…" not in result.stdout and max(len(line) for line in result.stdout.splitlines()) <= 80
    assert result.stdout.count("09:30") == 14
    assert all(start.strftime("%a %d %b") in result.stdout for start in starts)


def test_slots_with_no_open_times_name_the_first_day_in_the_viewers_zone(synced: Bapp, fake: FakeCalendly) -> None:
    fake.set_open_starts(FREE_TYPE, [])
    first_day = (dt.date.today() + dt.timedelta(days=10)).isoformat()
    args = ("--from", first_day, "--days", "2", "--timezone", "Asia/Tokyo", "--format", "table")
    result = synced("sessions", "slots", FREE, *args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.stderr
    assert f"in the 2 days from {first_day})" in result.stdout  # its UTC date is the day before


def test_an_answer_booked_at_another_start_than_asked_is_recorded_at_calendlys_start_and_said(
    synced: Bapp, fake: FakeCalendly, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Calendly answered 201 with an invitee of an event an hour later than the start sent: bapp kept the start it had
    # asked for and took the event's end, a 75-minute booking from 10:00 to 11:15 that Calendly holds at 11:00, said
    # "Booked" with no word of the other time. Its slot is Calendly's, as the pull takes it, and the user is told.
    later = slot() + dt.timedelta(hours=1)

    def an_hour_later(resource: dict[str, Any]) -> None:
        [event] = [event for event in fake._scheduled_events if event["uri"] == resource["event"]]  # lock held
        event["start_time"], event["end_time"] = z(later), z(later + dt.timedelta(minutes=15))

    _alter_answers(fake, monkeypatch, "create_invitee", an_hour_later)
    result = create(synced, slot())
    assert result.exit_code == 0, result.stderr
    assert (result.json()["start_time"], result.json()["end_time"]) == (z(later), z(later + dt.timedelta(minutes=15)))
    assert f"Calendly booked {z(later)}, not {z(slot())} as asked" in result.stderr
    [booking] = bookings(synced.database_url)
    assert (booking.calendly_state, booking.start_time, booking.end_time - booking.start_time) == (
        "booked",
        later,
        dt.timedelta(minutes=15),
    )
    # audited as Calendly's change, as a pull's move of a booking is
    [moved] = [row.changes for row in audit_rows(synced.database_url) if "start_time" in row.changes]
    assert moved["source"] == "calendly" and len(moved["start_time"]) == 2, moved
    pulled = synced("calendly", "pull-bookings", "--json")
    assert pulled.exit_code == 0 and pulled.json()["created"] == 0, pulled.stderr


@pytest.mark.parametrize("kind", ["bookings", "all"])
def test_a_booking_waiting_for_calendly_cannot_be_changed_by_an_import_then_lost_to_a_refused_resend(
    synced: Bapp, fake: FakeCalendly, tmp_path: Path, kind: str
) -> None:
    # `bookings confirm` and `mark-paid` refuse a booking still waiting for Calendly, but `import bookings` updated it:
    # confirmed and paid, then reconcile resent it, Calendly said the slot was taken, and the booking was deleted with
    # the payment support had recorded. The import refuses the row as the commands refuse the move.
    fake.fail_next("/invitees", 500, times=1)
    fake.fail_next("/scheduled_events", 500, times=None)  # the lookup fails too: left unknown, not resent
    assert create(synced, slot()).exit_code == 9
    fake.clear_faults()
    [held] = bookings(synced.database_url)
    row = {"reference": held.reference, "client": CLIENT, "session": FREE, "start_time": z(slot())}
    rows = tmp_path / "paid.json"  # `import all` reads one document of kinds: its bookings as `import bookings` does
    rows.write_text(json.dumps({"bookings": [{**row, "status": "confirmed", "payment_status": "paid"}]}))
    refused = synced("import", kind, str(rows))
    assert refused.exit_code == 6, refused.stderr
    assert f"(first: line 1, reference: booking {held.reference} is still waiting for Calendly" in refused.stderr
    assert "run `bapp calendly reconcile` first); nothing was written" in refused.stderr
    [after] = bookings(synced.database_url)
    assert (after.status, after.payment_status, after.calendly_state) == ("pending", "not_required", "unknown")
    # a row that leaves it as it is changes nothing, and is no refusal
    rows.write_text(json.dumps({"bookings": [row]}))
    unchanged = synced("import", kind, str(rows), "--json")
    assert unchanged.exit_code == 0, unchanged.stderr


def test_an_event_starting_past_the_supported_years_is_given_up_not_stored(
    synced: Bapp, fake: FakeCalendly, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the booking takes the start Calendly booked: one past bapp's years was stored, as its end once was (above)

    def starting_in_3000(resource: dict[str, Any]) -> None:
        [event] = [event for event in fake._scheduled_events if event["uri"] == resource["event"]]  # lock held
        event["start_time"] = "3000-01-01T00:00:00Z"

    _alter_answers(fake, monkeypatch, "create_invitee", starting_in_3000)
    result = create(synced, slot())
    assert result.exit_code == 9, result.stderr
    problem = "event start_time '3000-01-01T00:00:00Z' is outside the supported range 1900-01-01 to 2999-12-31"
    assert f"{problem}; cancelled here, so cancel the invitee in Calendly too" in result.stderr
    [booking] = bookings(synced.database_url)
    assert (booking.calendly_state, booking.status, booking.start_time) == ("failed", "cancelled", slot())


def test_a_resend_booked_at_another_start_than_asked_is_said_in_the_reconcile_row(
    synced: Bapp, fake: FakeCalendly, monkeypatch: pytest.MonkeyPatch
) -> None:
    # reconcile's resend answered at another start: the booking took Calendly's start, but the row said only
    # "booked in Calendly" beside the start asked (what `_send` noted was dropped)
    fake.fail_next("/invitees", 500, times=1)
    fake.fail_next("/scheduled_events", 500, times=None)  # the lookup fails too: left unknown, not resent
    assert create(synced, slot()).exit_code == 9
    fake.clear_faults()
    later = slot() + dt.timedelta(hours=1)

    def an_hour_later(resource: dict[str, Any]) -> None:
        [event] = [event for event in fake._scheduled_events if event["uri"] == resource["event"]]  # lock held
        event["start_time"], event["end_time"] = z(later), z(later + dt.timedelta(minutes=15))

    _alter_answers(fake, monkeypatch, "create_invitee", an_hour_later)
    result = synced("calendly", "reconcile", "--json")
    assert result.exit_code == 0, result.stderr
    [row] = result.json()
    assert (row["action"], row["calendly_state"]) == ("resent", "booked"), row
    assert row["note"] == f"booked in Calendly; Calendly booked {z(later)}, not {z(slot())} as asked"
    [booking] = bookings(synced.database_url)
    assert booking.start_time == later

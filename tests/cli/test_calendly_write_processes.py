"""R8 with real processes against the local fake Calendly: a create killed with SIGKILL around its
POST /invitees, then `calendly reconcile` (in-process: only the killed create is about a process); and
two processes booking one Calendly slot at once."""

# ruff: noqa: F811  (pytest fixtures imported from the fixture modules are parameters by design)

from __future__ import annotations

import contextlib
import json
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.cli.calendly_fixtures import (
    cbapp,  # noqa: F401 (fixture)
    fake_server,  # noqa: F401 (fixture)
)
from tests.cli.calendly_fixtures import fake as plain_fake  # noqa: F401 (fixture)
from tests.cli.test_calendly_write import (
    ANSWERS,
    CLIENT,
    FREE,
    FREE_TYPE,
    OTHER,
    assert_booked_in_calendly,
    bookings,
    create,
    fake,  # noqa: F401 (fixture)
    posts,
    slot,
    synced,  # noqa: F401 (fixture)
    synced_copies,  # noqa: F401 (fixture)
    z,
)
from tests.conftest import Bapp
from tests.fakes.calendly_server import FakeCalendly, Fault

pytestmark = pytest.mark.slow
# The scripted delays below are the window the process is killed in; its own read timeout must be longer.
PATIENT = {"BAPP_CALENDLY_TIMEOUT": "60"}
# bapp's wait for another writer (the busy_timeout setting), cut from its 30 s where a test holds the database past it
SHORT_BUSY_WAIT = {"BAPP_BUSY_TIMEOUT": "0.5"}


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _create_args(client: str = CLIENT) -> tuple[str, ...]:
    return ("bookings", "create", "--client", client, "--session", FREE, "--start", z(slot()), *ANSWERS)


def _create(bapp: Bapp, client: str = CLIENT) -> subprocess.Popen[str]:
    return bapp.popen(*_create_args(client), "--json", env=PATIENT)


def _wait_for_post(process: subprocess.Popen[str], fake: FakeCalendly) -> subprocess.Popen[str]:
    _wait_for(lambda: fake.count("/invitees") == 1, "the POST to reach Calendly")
    return process


def _create_held(synced: Bapp, fake: FakeCalendly, seconds: float = 30) -> tuple[Fault, subprocess.Popen[str]]:
    """A `bookings create` whose POST has reached Calendly, its answer held until the fault is released."""
    held = fake.add_fault(Fault("/invitees", "delay", seconds=seconds))
    return held, _wait_for_post(_create(synced), fake)


def _end_every_other_session(database_url: str) -> None:
    """PostgreSQL drops every session of the database but this one (a restart, a failover)."""
    from sqlalchemy import text

    from bapp_cli.db.engine import make_engine

    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            others = "datname = current_database() AND pid <> pg_backend_pid()"
            connection.execute(text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE {others}"))
    finally:
        engine.dispose()


def _cancel_here_then_answer(synced: Bapp, held: Fault, process: subprocess.Popen[str]) -> str:
    """`bookings cancel --local-only` of the one booking while Calendly holds its answer; then the answer,
    and the asking process's stderr once it ends."""
    [booking] = bookings(synced.database_url)
    cancelled = synced("bookings", "cancel", booking.reference, "--local-only")
    assert cancelled.exit_code == 0, cancelled.stderr
    held.released.set()
    _, stderr = process.communicate(timeout=60)
    return stderr


def _kill(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=30)
    assert process.returncode == -signal.SIGKILL


def test_killed_after_calendly_booked_then_reconcile_attaches(synced: Bapp, fake: FakeCalendly) -> None:
    # Calendly creates the invitee, then holds its answer: the process is killed while waiting for it.
    fake.apply_then_delay_next(seconds=20)
    process = _create(synced)
    _wait_for(lambda: len(fake.invitees_of(FREE_TYPE)) == 1, "Calendly to hold the invitee")
    _kill(process)
    [held] = bookings(synced.database_url)
    assert (held.status, held.calendly_state, held.calendly_attempts, held.calendly_invitee_uri) == (
        "pending",
        "requested",
        1,
        None,
    )
    result = synced("calendly", "reconcile", "--json")
    assert result.exit_code == 0, result.stderr
    assert [r["action"] for r in result.json()] == ["attached"]
    assert_booked_in_calendly(synced, fake)
    assert len(posts(fake)) == 1  # never resent


def test_killed_before_calendly_took_it_then_reconcile_resends_once(synced: Bapp, fake: FakeCalendly) -> None:
    # The request is held before Calendly acts on it: the process dies with nothing booked in Calendly.
    fake.hang_next("/invitees", seconds=20)
    process = _wait_for_post(_create(synced), fake)
    _kill(process)
    assert fake.invitees_of(FREE_TYPE) == []
    result = synced("calendly", "reconcile", "--json")
    assert result.exit_code == 0, result.stderr
    assert [r["action"] for r in result.json()] == ["resent"]
    [invitee] = fake.invitees_of(FREE_TYPE)
    [booking] = bookings(synced.database_url)
    assert (booking.calendly_invitee_uri, booking.calendly_attempts, booking.status) == (invitee["uri"], 2, "confirmed")
    again = synced("calendly", "reconcile", "--json")
    assert again.exit_code == 0 and again.json() == []


def test_two_processes_booking_one_calendly_slot_make_one_booking(synced: Bapp, fake: FakeCalendly) -> None:
    first = _create(synced, "ava@client.example")
    second = _create(synced, "ben@client.example")
    outcomes = []
    for process in (first, second):
        _, stderr = process.communicate(timeout=120)
        outcomes.append((process.returncode, stderr))
    assert sorted(code for code, _ in outcomes) == [0, 8], outcomes
    loser = next(stderr for code, stderr in outcomes if code == 8)
    assert len([line for line in loser.splitlines() if line.startswith("Error:")]) == 1
    assert len(fake.invitees_of(FREE_TYPE)) == 1
    [booking] = bookings(synced.database_url)
    assert booking.calendly_state == "booked"


def test_a_booking_cancelled_here_while_its_answer_is_awaited_is_never_resent(synced: Bapp, fake: FakeCalendly) -> None:
    # `bookings cancel --local-only` while the POST's answer was awaited: the answer was lost, the lookup found
    # nothing, and the create resent it on the state it had read before: Calendly booked a cancelled session
    held = fake.hang_next("/invitees", seconds=30)  # never carried out; reset once the cancel is in
    process = _wait_for_post(_create(synced), fake)
    stderr = _cancel_here_then_answer(synced, held, process)
    assert process.returncode == 9, stderr
    assert len(posts(fake)) == 1 and fake.invitees_of(FREE_TYPE) == []
    result = synced("calendly", "reconcile", "--json")
    assert result.exit_code == 0, result.stderr
    [row] = result.json()
    assert (row["action"], row["calendly_state"], row["status"]) == ("failed", "failed", "cancelled")
    assert len(posts(fake)) == 1 and fake.invitees_of(FREE_TYPE) == []


def test_an_account_a_turned_down_hold_made_stays_when_a_booking_made_meanwhile_uses_it(
    synced: Bapp, fake: FakeCalendly
) -> None:
    # The hold made the account; while Calendly was asked, the client booked a local session with it. The slot
    # was then taken in Calendly: the hold goes, and so would the account, but for the booking that now uses it.
    assert synced("sessions", "add", "--title", "Local chat", "--duration", "30", "--category", "free").exit_code == 0
    held, process = _create_held(synced, fake)
    meanwhile = synced(
        "bookings", "create", "--client", CLIENT, "--session", "local-chat", "--start", z(slot(days=4)), "--json"
    )
    assert meanwhile.exit_code == 0, meanwhile.stderr
    assert meanwhile.json()["account_created"] is False  # the hold's account
    fake.book_as_visitor(FREE_TYPE, slot(), "someone@else.example")  # the slot goes while the answer is held
    held.released.set()
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 8, stderr
    assert [b.reference for b in bookings(synced.database_url)] == [meanwhile.json()["reference"]]
    assert synced("clients", "show", CLIENT).exit_code == 0


def test_an_account_a_turned_down_hold_made_stays_when_an_import_changed_it_meanwhile(
    synced: Bapp, fake: FakeCalendly, tmp_path: Path
) -> None:
    # The hold made the account; while Calendly was asked, `import clients` gave it a name and a company (the
    # client's record now, audited as updated). The slot was then taken: the hold's removal deleted the account,
    # and the import's change with it.
    held, process = _create_held(synced, fake)
    (clients := tmp_path / "clients.csv").write_text(f"email,name,company\n{CLIENT},Ava Chen,Chen Logistics\n")
    imported = synced("import", "clients", str(clients), "--json")
    assert imported.exit_code == 0, imported.stderr
    fake.book_as_visitor(FREE_TYPE, slot(), "someone@else.example")  # the slot goes while the answer is held
    held.released.set()
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 8, stderr
    assert bookings(synced.database_url) == []
    shown = synced("clients", "show", CLIENT, "--json")
    assert shown.exit_code == 0, shown.stderr
    assert (shown.json()["name"], shown.json()["company"]) == ("Ava Chen", "Chen Logistics")


@contextlib.contextmanager
def _holding_the_clients_key(database_url: str) -> Iterator[None]:
    """Another writer holds, till the block ends, what the removal of a turned-down hold of CLIENT takes first: the
    SQLite write lock, or the client's key (a PostgreSQL advisory lock)."""
    from sqlalchemy import text

    from bapp_cli.db.engine import make_engine
    from bapp_cli.db.locks import lock_id

    if database_url.startswith("sqlite"):
        holder = sqlite3.connect(database_url.removeprefix("sqlite:///"), isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            holder.close()
        return
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": lock_id(f"client:{CLIENT}")})
            connection.commit()
            yield
    finally:
        engine.dispose()


def test_a_database_busy_while_a_turned_down_hold_is_removed_says_it_stays_pending_and_what_to_do(
    synced: Bapp, fake: FakeCalendly
) -> None:
    # The slot was taken in Calendly, and another writer held the database past bapp's wait while the hold was being
    # removed: exit 75 with "the database is busy … run this again later", where running the create again is refused
    # (the hold still waits for Calendly). It says the hold stays pending, and that reconcile settles it.
    synced.env.update(SHORT_BUSY_WAIT)
    held, process = _create_held(synced, fake, seconds=60)
    with _holding_the_clients_key(synced.database_url):
        fake.book_as_visitor(FREE_TYPE, slot(), "someone@else.example")  # the slot goes while the answer is held
        held.released.set()
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 75, stderr
    [line] = [line for line in stderr.splitlines() if line.startswith("Error:")]
    assert "database is busy" in line and "it stays pending" in line, stderr
    assert "bapp calendly reconcile" in stderr
    [booking] = bookings(synced.database_url)
    assert booking.calendly_state == "requested"
    # and the way out works: reconcile asks, finds nothing, resends once, and the refusal removes the hold
    settled = synced("calendly", "reconcile", "--json")
    assert settled.exit_code == 0, settled.stderr
    assert [(row["action"], row["status"]) for row in settled.json()] == [("resent", "removed")]
    assert bookings(synced.database_url) == []


def test_a_database_busy_while_reconcile_removes_a_resend_calendly_refused_is_not_reported_as_removed(
    synced: Bapp, fake: FakeCalendly
) -> None:
    # reconcile resent a hold Calendly never got, the slot was taken meanwhile, and another writer held the database
    # past bapp's wait while the hold was being removed: reconcile took the database's "busy" for Calendly's refusal,
    # printed the booking "removed" and exited 0, while it stayed pending (as `bookings create` says in that case).
    synced.env.update(SHORT_BUSY_WAIT)
    fake.hang_next("/invitees", seconds=20)
    _kill(_wait_for_post(_create(synced), fake))
    held = fake.add_fault(Fault("/invitees", "delay", seconds=60))
    process = synced.popen("calendly", "reconcile", "--json", env=PATIENT)
    _wait_for(lambda: fake.count("/invitees") == 2, "the resend to reach Calendly")
    with _holding_the_clients_key(synced.database_url):
        fake.book_as_visitor(FREE_TYPE, slot(), "someone@else.example")  # the slot goes while the answer is held
        held.released.set()
        stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 75, (stdout, stderr)
    assert "database is busy" in stderr and "it stays pending" in stderr and "removed" not in stdout, (stdout, stderr)
    [booking] = bookings(synced.database_url)
    assert (booking.status, booking.calendly_state, booking.calendly_attempts) == ("pending", "requested", 2)


@pytest.mark.parametrize(
    ("meanwhile", "status"),
    [
        (("clients", "set-status", OTHER, "accelerate", "paused"), "paused"),
        (("skills", "assign", OTHER, "--pathway", "accelerate", "--tier", "1"), "active"),
    ],
)
def test_an_enrolment_a_turned_down_hold_made_stays_when_it_was_changed_or_used_meanwhile(
    synced: Bapp, fake: FakeCalendly, meanwhile: tuple[str, ...], status: str
) -> None:
    # The hold enrolled the client; while Calendly was asked, a staff member paused that enrolment (their change,
    # audited), or gave the client progress in the pathway (which enrols one not enrolled yet). The slot was then
    # taken: the hold's removal deleted the enrolment, and the pause with it, or left progress in a pathway the
    # client was not enrolled in.
    from sqlalchemy import select

    from bapp_cli.db.engine import make_engine
    from bapp_cli.db.models import SessionType

    coaching = "accelerate-foundation-coaching-1"
    engine = make_engine(synced.database_url)
    try:
        with engine.connect() as connection:
            uri = connection.scalar(select(SessionType.calendly_uri).where(SessionType.slug == coaching))
    finally:
        engine.dispose()
    assert synced("clients", "add", OTHER).exit_code == 0
    skill = ("skills", "add", "prompt-design", "--name", "Prompt design", "--link", "accelerate:1")
    assert synced(*skill).exit_code == 0
    held = fake.add_fault(Fault("/invitees", "delay", seconds=30))
    process = synced.popen(
        "bookings", "create", "--client", OTHER, "--session", coaching, "--start", z(slot(hour=11)),
        "--pathway", "accelerate", "--answer", "Company name=Acme", "--json", env=PATIENT,
    )  # fmt: skip
    _wait_for(lambda: fake.count("/invitees") == 1, "the POST to reach Calendly")
    changed = synced(*meanwhile)
    assert changed.exit_code == 0, changed.stderr
    fake.book_as_visitor(uri, slot(hour=11), "someone@else.example")  # the slot goes while the answer is held
    held.released.set()
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 8, stderr
    assert bookings(synced.database_url) == []
    shown = synced("clients", "show", OTHER, "--json")
    assert [(e["pathway"], e["status"]) for e in shown.json()["enrolments"]] == [("accelerate", status)]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_client_enrolled_while_the_hold_that_made_the_account_is_turned_down_keeps_it(
    synced: Bapp, fake: FakeCalendly
) -> None:
    # `clients enroll` read the account the hold had made, then the hold was turned down and took the account with
    # it: the enrolment's insert met the account gone, a foreign key PostgreSQL refused, and the command exited 1
    # (a bapp bug, with the driver's words), later 8. It now takes the client's key before it reads the account, as
    # the removal of a turned-down hold does: the removal waits for the enrolment, sees it, and keeps the account.
    from sqlalchemy import text

    from bapp_cli.db.engine import make_engine

    held, process = _create_held(synced, fake)
    engine = make_engine(synced.database_url)
    try:
        # the pathway the enrolment locks once it has read the account, held by the test
        with engine.connect() as holder, engine.connect() as watcher:
            holder.execute(text("SELECT id FROM pathways WHERE slug = 'accelerate' FOR UPDATE"))
            enroll = synced.popen("clients", "enroll", CLIENT, "accelerate", "--json")
            waiting = text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")

            def waits(processes: int) -> Callable[[], bool]:
                def probe() -> bool:
                    count = watcher.execute(waiting).scalar()
                    watcher.rollback()  # the statistics are a snapshot per transaction
                    return count == processes

                return probe

            _wait_for(waits(1), "the enrolment to wait for the pathway")
            fake.book_as_visitor(FREE_TYPE, slot(), "someone@else.example")  # the slot goes: the hold is refused
            held.released.set()
            _wait_for(waits(2), "the hold's removal to wait for the client's key, which the enrolment holds")
            holder.rollback()
            _, stderr = process.communicate(timeout=60)
            assert process.returncode == 8, stderr
        _, stderr = enroll.communicate(timeout=60)
    finally:
        engine.dispose()
    assert enroll.returncode == 0, stderr
    assert json.loads(synced("clients", "show", CLIENT, "--json").stdout)["enrolments"][0]["pathway"] == "accelerate"


def test_a_booking_cancelled_here_that_calendly_then_books_warns_to_cancel_it_there(
    synced: Bapp, fake: FakeCalendly
) -> None:
    # `bookings cancel --local-only` while the POST's answer was awaited, then Calendly's 201: the create exited 0
    # saying nothing, and nothing would (the booking is settled, so reconcile never sees it), while Calendly kept a
    # session the client had cancelled. Reconcile and a webhook warn of that very state; the create now does too.
    held, process = _create_held(synced, fake)
    stderr = _cancel_here_then_answer(synced, held, process)
    assert process.returncode == 0, stderr
    [booking] = bookings(synced.database_url)
    assert (booking.status, booking.calendly_state) == ("cancelled", "booked")
    assert [invitee["uri"] for invitee in fake.invitees_of(FREE_TYPE)] == [booking.calendly_invitee_uri]
    assert f"Warning: {booking.reference}: cancelled here while Calendly booked it, so cancel the invitee in " in stderr


def test_a_booking_cancelled_here_while_reconcile_looks_it_up_is_never_resent(synced: Bapp, fake: FakeCalendly) -> None:
    # reconcile decided on the status it read before its lookup: a cancel made during the lookup was resent
    fake.fail_next("/invitees", 500)
    fake.fail_next("/scheduled_events", 500, times=None)  # the lookup fails too: left unknown, not resent
    assert synced(*_create_args(), "--json").exit_code == 9
    fake.clear_faults()
    fake.clear_requests()
    held = fake.delay_next("/scheduled_events", seconds=30)  # the lookup, answered once the cancel is in
    process = synced.popen("calendly", "reconcile", "--json", env=PATIENT)
    _wait_for(lambda: fake.count("/scheduled_events") == 1, "reconcile's lookup to reach Calendly")
    stderr = _cancel_here_then_answer(synced, held, process)
    assert process.returncode == 0, stderr
    assert posts(fake) == [] and fake.invitees_of(FREE_TYPE) == []
    again = synced("calendly", "reconcile", "--json")  # the next one says what became of it
    [row] = again.json()
    assert (row["action"], row["calendly_state"], row["status"]) == ("failed", "failed", "cancelled")
    assert posts(fake) == []


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_connection_lost_after_calendly_booked_leaves_the_intent_for_reconcile(
    synced: Bapp, fake: FakeCalendly
) -> None:
    # PostgreSQL drops every session of bapp's (a restart, a failover) while Calendly's answer is on its way:
    # the answer cannot be recorded, but the intent committed before the send is there, and reconcile finds it
    held = fake.apply_then_delay_next(seconds=30)  # booked in Calendly; answered once the sessions are gone
    process = _create(synced)
    _wait_for(lambda: len(fake.invitees_of(FREE_TYPE)) == 1, "Calendly to hold the invitee")
    _end_every_other_session(synced.database_url)
    held.released.set()
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 5, stderr
    assert "Traceback" not in stderr and len([line for line in stderr.splitlines() if line.startswith("Error:")]) == 1
    # not only the driver's "terminating connection": the booking may be in Calendly, and reconcile settles it
    assert "database error:" in stderr and "it stays pending (Calendly may have it)" in stderr, stderr
    assert "run `bapp calendly reconcile`" in stderr
    [booking] = bookings(synced.database_url)
    assert (booking.status, booking.calendly_state, booking.calendly_invitee_uri) == ("pending", "requested", None)
    result = synced("calendly", "reconcile", "--json")
    assert result.exit_code == 0, result.stderr
    assert [row["action"] for row in result.json()] == ["attached"]
    assert_booked_in_calendly(synced, fake)
    assert len(posts(fake)) == 1  # never resent


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_an_answer_recorded_while_a_pull_runs_waits_for_the_pull_not_a_second_booking(
    synced: Bapp, fake: FakeCalendly
) -> None:
    # A pull read the bookings of its invitees (none had this one), then the create recorded Calendly's answer
    # and committed before the pull's turn came: the pull inserted a second booking of that invitee (exit 8).
    from sqlalchemy import text

    from bapp_cli.db.engine import make_engine

    earlier = ("bookings", "create", "--client", "ben@client.example", "--session", FREE, "--start", z(slot(hour=9)))
    assert synced(*earlier, *ANSWERS).exit_code == 0
    held = fake.apply_then_delay_next(seconds=60)  # booked in Calendly; answered while the pull is under way
    process = _create(synced)
    _wait_for(lambda: len(fake.invitees_of(FREE_TYPE)) == 2, "Calendly to hold the invitee")
    engine = make_engine(synced.database_url)
    waiting = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
    try:
        with engine.connect() as blocker, engine.connect() as watcher:
            # ben's booking, older here than in Calendly, is the pull's first write: held, the pull stops there
            # with every booking it preloaded in hand and ava's invitee still to come
            blocker.execute(text("UPDATE bookings SET remote_updated_at = remote_updated_at - interval '1 hour'"))
            blocker.commit()
            blocker.execute(text("SELECT 1 FROM bookings WHERE status = 'confirmed' FOR UPDATE"))

            def waiters() -> int:
                count = watcher.execute(text(waiting)).scalar_one()
                watcher.rollback()  # a transaction sees one snapshot of pg_stat_activity
                return int(count)

            pull = synced.popen("calendly", "pull-bookings", "--json")
            _wait_for(lambda: waiters() == 1, "the pull to wait for ben's row")
            held.released.set()
            # the create records the answer, or (fixed) waits for the pull's lock before it does
            _wait_for(
                lambda: process.poll() is not None or waiters() == 2,
                "the create to record its answer or wait for the pull",
            )
            blocker.rollback()
    finally:
        engine.dispose()
    _, pull_stderr = pull.communicate(timeout=60)
    _, stderr = process.communicate(timeout=60)
    assert pull.returncode == 0, pull_stderr
    assert process.returncode == 0, stderr
    ava = [booking for booking in bookings(synced.database_url) if booking.start_time == slot()]
    assert len(ava) == 1 and (ava[0].calendly_state, ava[0].status) == ("booked", "confirmed")
    assert {invitee["uri"] for invitee in fake.invitees_of(FREE_TYPE)} == {
        booking.calendly_invitee_uri for booking in bookings(synced.database_url)
    }


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_reconcile_stopped_by_the_database_shows_the_bookings_it_settled_before(
    synced: Bapp, fake: FakeCalendly
) -> None:
    # it exited 5 with nothing on stdout, though it had attached Ava's booking before the database went away
    fake.apply_then_reset_next()  # Calendly books Ava's, the answer is lost...
    fake.fail_next("/scheduled_events", 500, times=None)  # ...and no lookup can be made: both left unknown
    assert create(synced, slot(hour=10)).exit_code == 9
    fake.fail_next("/invitees", 500)  # Ben's never reaches Calendly
    assert create(synced, slot(hour=11), client="ben@client.example").exit_code == 9
    fake.clear_faults()
    held = fake.apply_then_delay_next(seconds=30)  # Ben's resend: booked, its answer held
    process = synced.popen("calendly", "reconcile", "--json", env=PATIENT)
    _wait_for(lambda: fake.count("/invitees") == 3, "the resend of Ben's booking")
    _end_every_other_session(synced.database_url)
    held.released.set()
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 5, (stdout, stderr)
    ava, ben = bookings(synced.database_url)
    assert (ava.calendly_state, ben.calendly_state) == ("booked", "unknown")
    assert [(row["booking"], row["action"]) for row in json.loads(stdout)] == [(ava.reference, "attached")]
    assert "it stays pending (Calendly may have it)" in stderr


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_connection_lost_while_reconcile_resends_is_not_reported_as_removed(synced: Bapp, fake: FakeCalendly) -> None:
    # reconcile resends a booking Calendly never got; Calendly books it, and PostgreSQL drops bapp's sessions
    # before the answer is recorded. Reconcile took the database error for Calendly's refusal and reported
    # the booking "removed" (exit 0), while it stayed pending and in Calendly.
    fake.hang_next("/invitees", seconds=20)
    _kill(_wait_for_post(_create(synced), fake))
    held = fake.apply_then_delay_next(seconds=30)
    process = synced.popen("calendly", "reconcile", "--json", env=PATIENT)
    _wait_for(lambda: len(fake.invitees_of(FREE_TYPE)) == 1, "Calendly to hold the resent invitee")
    _end_every_other_session(synced.database_url)
    held.released.set()
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 5, (stdout, stderr)
    assert "it stays pending (Calendly may have it)" in stderr and "removed" not in stdout, (stdout, stderr)
    [booking] = bookings(synced.database_url)
    assert (booking.status, booking.calendly_invitee_uri) == ("pending", None)
    again = synced("calendly", "reconcile", "--json")
    assert again.exit_code == 0, again.stderr
    assert [row["action"] for row in again.json()] == ["attached"]
    assert_booked_in_calendly(synced, fake)
    assert len(posts(fake)) == 2  # the first send, which Calendly never got, and the one resend


def _asleep(process: subprocess.Popen[str]) -> bool:
    """Whether the process sleeps in time.sleep (a named lock's poll), not in a read of a socket or pipe."""
    try:
        return "nanosleep" in Path(f"/proc/{process.pid}/wchan").read_text()
    except OSError:
        return False


def _after_a_no_show(synced: Bapp, fake: FakeCalendly, second: str, *extra: str) -> tuple[list[tuple[str, int]], str]:
    """`bookings no-show` of a past booking, then `bookings <second>` of it: the no-show's POST /invitee_no_shows
    is held until the second has either asked Calendly anything or sleeps waiting for its turn (polling the lock
    twice in a row). Each one's stderr and exit, and the URI of Calendly's no-show mark."""
    from tests.cli.test_calendly_write import _drop_event, _past_booking

    reference, event, _ = _past_booking(synced, fake, 904)
    try:
        held = fake.delay_next("/invitee_no_shows", seconds=50)
        processes = [synced.popen("bookings", "no-show", reference, "--json", env=PATIENT)]
        _wait_for(lambda: fake.count("/invitee_no_shows") == 1, "the mark to reach Calendly", timeout=60)
        asked = fake.count("/")
        processes.append(synced.popen("bookings", second, reference, *extra, "--json", env=PATIENT))
        asleep: list[bool] = []

        def second_asked_or_waits() -> bool:
            asleep.append(_asleep(processes[1]))
            return fake.count("/") > asked or asleep[-2:] == [True, True] or processes[1].poll() is not None

        _wait_for(second_asked_or_waits, f"the {second} to ask Calendly too or wait for its turn", timeout=60)
        held.released.set()
        outcomes = [(process.communicate(timeout=120)[1], process.returncode) for process in processes]
        return outcomes, fake.invitees_of(FREE_TYPE)[0]["no_show"]["uri"]
    finally:
        _drop_event(fake, event)


def test_two_processes_marking_one_booking_a_no_show_mark_calendly_once(synced: Bapp, fake: FakeCalendly) -> None:
    # Both asked Calendly whether the invitee was marked (not yet), then both marked it: Calendly held two
    # no-shows, bapp kept the URI of one, and `no-show --undo` took back only that one, Calendly still saying
    # no-show. Their round trips take turns now, and the second reads the booking again in its turn: a no-show
    # already, it is refused (exit 8) as a second no-show run after the first is, asking Calendly nothing.
    outcomes, mark = _after_a_no_show(synced, fake, "no-show")
    assert len(posts(fake, "/invitee_no_shows")) == 1
    assert [code for _, code in outcomes] == [0, 8], outcomes
    assert "is no_show; cannot no-show" in outcomes[1][0], outcomes
    [booking] = bookings(synced.database_url)
    assert booking.status == "no_show"
    assert booking.calendly_no_show_uri == mark


def test_a_cancel_waiting_for_a_no_shows_turn_is_refused_without_asking_calendly(
    synced: Bapp, fake: FakeCalendly
) -> None:
    # Both read the booking confirmed before either had its turn, so once the no-show was made in Calendly (and
    # here) the cancel was sent too: Calendly had both asked of one booking. The cancel reads the booking again
    # in its turn and is refused as a cancel run after the no-show is (exit 8), before Calendly is asked.
    outcomes, mark = _after_a_no_show(synced, fake, "cancel")
    assert [request.path for request in fake.requests if request.path.endswith("/cancellation")] == []
    assert [code for _, code in outcomes] == [0, 8], outcomes
    assert "is no_show; cannot cancel" in outcomes[1][0], outcomes
    [booking] = bookings(synced.database_url)
    assert (booking.status, booking.calendly_no_show_uri) == ("no_show", mark)


@pytest.mark.parametrize("second", [("complete",), ("cancel", "--local-only")])
def test_a_change_here_waits_for_a_no_shows_turn_and_is_refused_as_after_it(
    synced: Bapp, fake: FakeCalendly, second: tuple[str, ...]
) -> None:
    # `bookings complete` (or `cancel --local-only`) while a no-show was being made in Calendly was recorded at once;
    # the no-show's own half was then refused (exit 8), Calendly marked: bapp said completed, Calendly no-show, and
    # nothing said so. Changes made in bapp alone take the same turn now: they wait, and are refused as after it.
    outcomes, mark = _after_a_no_show(synced, fake, *second)
    assert [code for _, code in outcomes] == [0, 8], outcomes
    assert f"is no_show; cannot {second[0]}" in outcomes[1][0], outcomes
    [booking] = bookings(synced.database_url)
    assert (booking.status, booking.calendly_no_show_uri) == ("no_show", mark)


def test_a_no_show_killed_in_its_turn_does_not_hold_the_next_one_up(synced: Bapp, fake: FakeCalendly) -> None:
    # The turn is a lock the system lets go of with its holder (a PostgreSQL session, an flock): a no-show killed
    # while Calendly had its mark under way leaves none behind for the next change to wait out (exit 75 after 60 s).
    from tests.cli.test_calendly_write import _drop_event, _past_booking

    reference, event, _ = _past_booking(synced, fake, 905)
    try:
        held = fake.delay_next("/invitee_no_shows", seconds=50)
        killed = synced.popen("bookings", "no-show", reference, "--json", env=PATIENT)
        _wait_for(lambda: fake.count("/invitee_no_shows") == 1, "the mark to reach Calendly", timeout=60)
        killed.kill()
        killed.communicate(timeout=30)
        held.released.set()  # Calendly carries the mark out all the same
        _wait_for(lambda: fake.invitees_of(FREE_TYPE)[0]["no_show"] is not None, "Calendly to hold the mark")
        started = time.monotonic()
        again = synced("bookings", "no-show", reference, "--json")
        assert again.exit_code == 0, again.stderr
        assert time.monotonic() - started < 30  # not the 60 s wait for a turn
        assert len(posts(fake, "/invitee_no_shows")) == 1  # found, not marked twice
        [booking] = bookings(synced.database_url)
        assert (booking.status, booking.calendly_no_show_uri) == (
            "no_show",
            fake.invitees_of(FREE_TYPE)[0]["no_show"]["uri"],
        )
    finally:
        _drop_event(fake, event)


def test_ctrl_c_while_a_no_show_waits_for_its_turn_says_nothing_was_changed(synced: Bapp, fake: FakeCalendly) -> None:
    # The wait for the turn was inside the round trip's Ctrl-C handling: stopped there, before asking Calendly
    # anything, the command said "while Calendly was asked to mark as a no-show …; Calendly may have".
    from tests.cli.test_calendly_write import _drop_event, _past_booking

    reference, event, _ = _past_booking(synced, fake, 906)
    try:
        held, asked = fake.delay_next("/invitee_no_shows", seconds=50), fake.count("/scheduled_events/")
        first = synced.popen("bookings", "no-show", reference, "--json", env=PATIENT)
        _wait_for(lambda: fake.count("/invitee_no_shows") == 1, "the first mark to reach Calendly", timeout=60)
        waiting = synced.popen("bookings", "no-show", reference, "--json", env=PATIENT)
        asleep: list[bool] = []

        def waits_for_its_turn() -> bool:
            asleep.append(_asleep(waiting))
            return asleep[-2:] == [True, True]

        _wait_for(waits_for_its_turn, "the second to wait for its turn", timeout=60)
        waiting.send_signal(signal.SIGINT)
        _, stderr = waiting.communicate(timeout=60)
        assert waiting.returncode == 130, stderr
        assert "nothing was changed" in stderr and "Calendly may have" not in stderr, stderr
        assert fake.count("/scheduled_events/") == asked + 1  # the first's look at the invitee only
        held.released.set()
        assert first.wait(timeout=120) == 0
    finally:
        _drop_event(fake, event)


def test_ctrl_c_while_a_cancel_waits_to_record_calendlys_answer_says_calendly_may_have(
    synced: Bapp, fake: FakeCalendly
) -> None:
    # Calendly had cancelled the event; the stop came while bapp waited to record it (another writer held the
    # booking's row, or SQLite's write lock), outside the round trip's Ctrl-C handling: "Interrupted; nothing was
    # changed." (exit 130), though Calendly had changed.
    import sqlite3

    from sqlalchemy import text

    from bapp_cli.db.engine import make_engine

    made = create(synced, slot(days=3))
    assert made.exit_code == 0, made.stderr
    reference = made.json()["reference"]
    engine = make_engine(synced.database_url)
    try:
        with engine.connect() as holder:
            if engine.dialect.name == "sqlite":
                raw = sqlite3.connect(synced.database_url.removeprefix("sqlite:///"), isolation_level=None)
                raw.execute("BEGIN IMMEDIATE")
            else:
                holder.execute(text("SELECT id FROM bookings WHERE reference = :r FOR UPDATE"), {"r": reference})
            fake.clear_requests()
            process = synced.popen("bookings", "cancel", reference, env=PATIENT)
            _wait_for(lambda: len(fake.requests) == 1 and fake.requests[0].method == "POST", "Calendly's cancel")
            if engine.dialect.name == "sqlite":
                asleep: list[bool] = []
                _wait_for(lambda: asleep.append(_asleep(process)) or asleep[-2:] == [True, True], "the busy wait")
            else:
                waiting = text("SELECT count(*) FROM pg_locks WHERE NOT granted")
                with engine.connect() as looking:
                    _wait_for(lambda: looking.execute(waiting).scalar_one() > 0, "the wait for the row lock")
            process.send_signal(signal.SIGINT)
            if engine.dialect.name == "sqlite":
                # SQLite's busy handler sees no signal: let its next try in, and the stop (pending since the kill,
                # before the lock was free) is raised as the write returns, before its commit. Held, the wait would
                # end only at bapp's 30 s busy timeout.
                raw.rollback()
                raw.close()
            _, stderr = process.communicate(timeout=90)
            holder.rollback()
    finally:
        engine.dispose()
    assert process.returncode == 130, stderr
    assert "nothing was changed" not in stderr, stderr
    assert "Calendly may have" in stderr and reference in stderr and "run the command again" in stderr, stderr
    assert [(request.method, request.path.rsplit("/")[-1]) for request in fake.requests] == [("POST", "cancellation")]
    assert bookings(synced.database_url)[0].status == "confirmed"
    again = synced("bookings", "cancel", reference)
    assert again.exit_code == 0, again.stderr  # Calendly's side already done: the cancel counts as done
    assert bookings(synced.database_url)[0].status == "cancelled"

"""R2: concurrent `bookings create` in real processes — exactly one wins a contested slot, on both backends
(and one of two conflicting status changes of a booking).

To make the processes really meet inside their transactions, the test holds a barrier on the database
while they start, waits until every one of them is blocked on it, then releases it:
- SQLite: the test holds the write lock (BEGIN IMMEDIATE); each process blocks in SQLite's busy handler
  at the start of its own write transaction (seen as a nanosleep in /proc/PID/wchan).
- PostgreSQL: the test holds ACCESS EXCLUSIVE on `bookings`; each process blocks at its first read of
  bookings or on the advisory lock in front of it (seen in pg_stat_activity).
The barrier does not depend on bapp's mechanism: without it (e.g. deferred SQLite transactions, or no
advisory locks on PostgreSQL) the released processes would all see a free slot and more than one would win.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from bapp_cli.db.engine import make_engine
from bapp_cli.db.models import Booking, Enrolment, SessionType
from tests.cli.test_import import _wait_for, _writing, write
from tests.conftest import Bapp, with_batches_of
from tests.services.test_booking_factories import (
    add_booking,
    add_builder,
    add_client,
    add_session_type,
    audit_entries,
    count,
)

# Two rounds: the barrier makes every round's racers meet inside their transactions, so a round is the whole case and
# the second shows the builder rule refusing only what overlaps (the first round's booking is on another day); rounds
# three to five repeated the second, at three process starts (~1 CPU s each) a round
ROUNDS = 2
RACERS = 3
BLOCK_TIMEOUT = 30.0
# Rows per batch of the import processes below (conftest.with_batches_of): an import held between its batches needs
# one more row than a batch, not the 5,001 that the default of 5,000 asked for (~1 CPU s a process to say the same)
BATCH = 100
pytestmark = pytest.mark.slow


@pytest.fixture
def engine_and_slot(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    with Session(engine) as session:
        coach = add_builder(session)
        add_session_type(session, "Race Slot", category="free", builder=coach, duration=30)
        session.commit()
    yield engine
    engine.dispose()


def _sleeping_in_sqlite(process: subprocess.Popen[str]) -> bool:
    try:
        return "nanosleep" in Path(f"/proc/{process.pid}/wchan").read_text()
    except OSError:
        return False


@contextlib.contextmanager
def barrier_probe(database_url: str, engine: Engine) -> Iterator[Callable[[list[subprocess.Popen[str]]], bool]]:
    """A probe telling whether processes are all blocked on a lock someone else holds (see the module docstring)."""
    if engine.dialect.name == "sqlite":
        yield lambda processes: all(_sleeping_in_sqlite(process) for process in processes)
        return
    with engine.connect() as observer:

        def probe(processes: list[subprocess.Popen[str]]) -> bool:
            waiting = observer.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND wait_event_type = 'Lock'"
                )
            ).scalar_one()
            observer.rollback()
            return waiting >= len(processes)

        yield probe


@contextlib.contextmanager
def barrier(
    database_url: str, engine: Engine, table: str = "bookings"
) -> Iterator[Callable[[list[subprocess.Popen[str]]], bool]]:
    """Hold the database (on PostgreSQL, `table`: one the racers read) while processes start; yields a probe telling
    whether they are all blocked."""
    if engine.dialect.name == "sqlite":
        holder = sqlite3.connect(str(make_url(database_url).database), isolation_level=None, timeout=30)
        holder.execute("BEGIN IMMEDIATE")
        try:
            with barrier_probe(database_url, engine) as probe:
                yield probe
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        return
    with engine.connect() as holder, barrier_probe(database_url, engine) as probe:
        holder.execute(text(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"))
        try:
            yield probe
        finally:
            holder.rollback()


def race(
    bapp: Bapp, database_url: str, engine: Engine, commands: list[list[str]], table: str = "bookings"
) -> list[tuple[int, str, str]]:
    """Start every command behind the barrier (on `table`), release it once all are blocked, collect the results."""
    with barrier(database_url, engine, table) as all_blocked:
        processes = [bapp.popen(*command) for command in commands]
        deadline = time.monotonic() + BLOCK_TIMEOUT
        consecutive = 0
        while consecutive < 2:  # twice in a row, so a passing sleep is not mistaken for the busy handler
            finished = [process for process in processes if process.poll() is not None]
            assert not finished, f"a racer finished before the barrier opened: {finished[0].communicate()}"
            assert time.monotonic() < deadline, "the racers never all blocked on the barrier"
            consecutive = consecutive + 1 if all_blocked(processes) else 0
            time.sleep(0.05)
    results = []
    for process in processes:
        stdout, stderr = process.communicate(timeout=60)
        results.append((process.returncode, stdout, stderr))
    return results


def test_overlapping_creations_for_one_builder_have_exactly_one_winner(
    bapp: Bapp, database_url: str, engine_and_slot: Engine
) -> None:
    engine = engine_and_slot
    for round_number in range(ROUNDS):
        day = f"2031-08-{round_number + 1:02d}"
        commands = [
            # different clients and different (overlapping) starts: only the builder rule can refuse
            ["bookings", "create", "--client", f"racer{round_number}-{index}@example.com", "--session", "race-slot",
             "--start", f"{day}T10:{index * 10:02d}:00Z", "--json"]
            for index in range(RACERS)
        ]  # fmt: skip
        results = race(bapp, database_url, engine, commands)
        codes = sorted(code for code, _, _ in results)
        assert codes == [0] + [8] * (RACERS - 1), [(code, err) for code, _, err in results]
        for code, stdout, stderr in results:
            if code == 8:
                assert stdout == "" and "Error: start: builder coach@example.com already has booking BK-" in stderr
            else:
                assert json.loads(stdout)["start_time"].startswith(day)
        with Session(engine) as session:
            assert count(session, Booking) == round_number + 1  # one booking per round


def test_clients_racing_for_the_last_seat_of_a_group_session_have_exactly_one_winner(
    bapp: Bapp, database_url: str, engine_and_slot: Engine
) -> None:
    # a group session without a builder: the racers, each a client of their own, share no key but the group's, under
    # which its seats are counted; without it every racer saw one seat left and took it
    start = dt.datetime(2031, 8, 20, 10, tzinfo=dt.UTC)
    with Session(engine_and_slot) as session:
        lab = add_session_type(session, "Group Lab", category="free", kind="group", invitee_limit=2)
        add_booking(session, client=add_client(session, "seated@example.com"), session_type=lab, start=start)
        session.commit()
    commands = [
        ["bookings", "create", "--client", f"seat{index}@example.com", "--session", "group-lab",
         "--start", "2031-08-20T10:00:00Z", "--json"]
        for index in range(RACERS)
    ]  # fmt: skip
    results = race(bapp, database_url, engine_and_slot, commands)
    assert sorted(code for code, _, _ in results) == [0] + [8] * (RACERS - 1), [err for _, _, err in results]
    for code, stdout, stderr in results:
        assert code == 0 or (stdout == "" and "is full (2 invitees)" in stderr), stderr
    with Session(engine_and_slot) as session:
        assert count(session, Booking) == 2  # the seat held before and the one winner's


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_overlapping_creations_have_one_winner_in_a_database_defaulting_to_repeatable_read(
    bapp: Bapp, database_url: str, engine_and_slot: Engine
) -> None:
    """A database's (or role's) default_transaction_isolation of REPEATABLE READ: each creation's snapshot was taken
    before it waited for the builder's advisory lock, so it never saw the winner's booking, and all three overlapping
    bookings of one builder were made. Writes run at READ COMMITTED whatever the default."""
    engine = engine_and_slot
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        name = make_url(database_url).database
        connection.execute(text(f"ALTER DATABASE \"{name}\" SET default_transaction_isolation = 'repeatable read'"))
    engine.dispose()  # its pooled connections began before the setting
    commands = [
        ["bookings", "create", "--client", f"racer{index}@example.com", "--session", "race-slot",
         "--start", f"2031-08-01T10:{index * 10:02d}:00Z"]
        for index in range(RACERS)
    ]  # fmt: skip
    results = race(bapp, database_url, engine, commands)
    assert sorted(code for code, _, _ in results) == [0] + [8] * (RACERS - 1), results
    with Session(engine) as session:
        assert count(session, Booking) == 1


def test_concurrent_repeats_of_one_idempotent_request_create_one_booking(
    bapp: Bapp, database_url: str, engine_and_slot: Engine
) -> None:
    command = ["bookings", "create", "--client", "ada@example.com", "--session", "race-slot",
               "--start", "2031-09-01T10:00:00Z", "--idempotency-key", "retry-me", "--json"]  # fmt: skip
    results = race(bapp, database_url, engine_and_slot, [command] * RACERS)
    assert [code for code, _, _ in results] == [0] * RACERS, [err for _, _, err in results]
    records = [json.loads(stdout) for _, stdout, _ in results]
    assert len({record["reference"] for record in records}) == 1
    assert sorted(record["existing"] for record in records) == [False] + [True] * (RACERS - 1)
    with Session(engine_and_slot) as session:
        assert session.scalars(select(Booking.idempotency_key)).all() == ["retry-me"]


def test_a_creation_during_an_import_of_the_same_slot_has_one_winner(
    bapp: Bapp, database_url: str, engine_and_slot: Engine, tmp_path: Path
) -> None:
    # The import holds its transaction open (its input is a FIFO the test has not closed) after writing a
    # batch that books the slot `bookings create` then asks for: for a client the file creates and for one
    # who already exists. On PostgreSQL the import holds the bookings table rather than per-person keys;
    # a creation used to check the slot around it, then wait only at its insert: it then booked the slot a
    # second time (exit 0), or failed on the client the import had just created (exit 1).
    assert bapp("clients", "add", "old@example.com").exit_code == 0
    contested = {"new@example.com": "2031-10-01T10:00:00Z", "old@example.com": "2031-10-02T10:00:00Z"}
    rows = [f"{client},race-slot,{start},confirmed" for client, start in contested.items()]
    rows += [f"filler{index}@example.com,race-slot,2029-01-01T10:00:00Z,completed" for index in range(BATCH)]
    fifo = tmp_path / "bookings.csv"
    os.mkfifo(fifo)
    importer = bapp.popen("import", "bookings", str(fifo), "--json", python=with_batches_of(BATCH))
    with open(fifo, "w") as writer:
        writer.write("client,session,start_time,status\n" + "\n".join(rows) + "\n")
        writer.flush()
        _wait_for(lambda: _writing(database_url), "the import's write transaction")
        creations = [
            bapp.popen("bookings", "create", "--client", client, "--session", "race-slot", "--start", start)
            for client, start in contested.items()
        ]
        with barrier_probe(database_url, engine_and_slot) as all_blocked:
            _wait_for(lambda: all_blocked(creations), "the creations to wait for the import")
    assert importer.wait(timeout=60) == 0, importer.communicate()
    for creation in creations:
        stdout, stderr = creation.communicate(timeout=60)
        assert creation.returncode == 8, stderr
        assert "already has booking BK-" in stderr and stdout == ""
    with Session(engine_and_slot) as session:
        starts = session.scalars(select(Booking.start_time).where(Booking.status == "confirmed")).all()
        assert len(starts) == len(contested)  # the import's two bookings, no second one in either slot


def test_two_imports_of_the_same_clients_at_once_both_succeed(
    bapp: Bapp, database_url: str, engine_and_slot: Engine, tmp_path: Path
) -> None:
    # The first import holds its transaction open (a FIFO the test has not closed) after writing a batch of
    # clients; a second import of the same clients (a bookings import creates them too) waits for it, then
    # finds them. On PostgreSQL only bookings imports held anything: the second inserted the same e-mail and
    # failed on the unique index once the first committed (exit 1).
    clients = [f"client{index}@example.com" for index in range(BATCH + 1)]
    fifo = tmp_path / "clients.csv"
    os.mkfifo(fifo)
    first = bapp.popen("import", "clients", str(fifo), "--json", python=with_batches_of(BATCH))
    bookings = "\n".join(f"{email},race-slot,2029-01-01T10:00:00Z,completed" for email in clients)
    with open(fifo, "w") as writer:
        writer.write("email\n" + "\n".join(clients) + "\n")
        writer.flush()
        _wait_for(lambda: _writing(database_url), "the first import's write transaction")
        others = [
            bapp.popen(
                "import",
                "clients",
                write(tmp_path, "same.csv", "email\n" + "\n".join(clients)),
                "--json",
                python=with_batches_of(BATCH),
            ),
            bapp.popen(
                "import",
                "bookings",
                write(tmp_path, "b.csv", "client,session,start_time,status\n" + bookings),
                "--json",
                python=with_batches_of(BATCH),
            ),
        ]
        with barrier_probe(database_url, engine_and_slot) as all_blocked:
            _wait_for(lambda: all_blocked(others), "the other imports to wait for the first")
    stdout, stderr = first.communicate(timeout=60)
    assert first.returncode == 0 and json.loads(stdout)["created"] == len(clients), stderr
    summaries = []
    for other in others:
        stdout, stderr = other.communicate(timeout=60)
        assert other.returncode == 0, stderr
        summaries.append(json.loads(stdout))
    assert summaries[0]["unchanged"] == len(clients) and summaries[0]["created"] == 0
    assert summaries[1]["created"] == len(clients) and summaries[1]["clients_created"] == 0


def test_a_client_created_by_another_session_meanwhile_is_a_conflict(
    bapp: Bapp, database_url: str, engine_and_slot: Engine
) -> None:
    # Another session (psql, another program) adds the client and has not committed when `clients add` checks
    # the e-mail: the command's insert waits, then finds it taken. SQLite's writers take turns, so the command
    # checks only after the commit; on PostgreSQL the unique index refused the insert, an unexpected error (exit 1).
    statements = [
        "INSERT INTO users (email, created_at, updated_at) VALUES ('taken@example.com', {now}, {now})",
        "INSERT INTO client_profiles (user_id, created_at)"
        " SELECT id, {now} FROM users WHERE email = 'taken@example.com'",
    ]
    if engine_and_slot.dialect.name == "sqlite":
        holder: Any = sqlite3.connect(str(make_url(database_url).database), isolation_level=None, timeout=30)
        holder.execute("BEGIN IMMEDIATE")
        now = "'2030-01-01 00:00:00.000000'"
    else:
        import psycopg

        holder = psycopg.connect(database_url.replace("+psycopg", ""))
        now = "now()"
    try:
        for statement in statements:
            holder.execute(statement.format(now=now))
        process = bapp.popen("clients", "add", "taken@example.com")
        with barrier_probe(database_url, engine_and_slot) as all_blocked:
            _wait_for(lambda: all_blocked([process]), "the command to wait for the other session")
        holder.commit()
    finally:
        holder.close()
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 8, stderr
    assert stdout == "" and "taken@example.com" in stderr and "unexpected" not in stderr


@pytest.mark.parametrize(
    ("first", "second"),
    [(["cancel", "--reason", "ill"], ["complete"]), (["no-show"], ["cancel"]), (["complete"], ["no-show"])],
)
def test_conflicting_status_changes_of_one_booking_have_exactly_one_winner(
    bapp: Bapp, database_url: str, engine_and_slot: Engine, first: list[str], second: list[str]
) -> None:
    # Both read the booking confirmed before either writes: a move must be decided on the row as it stands
    # once the other has committed (SQLite's write lock, PostgreSQL's FOR UPDATE), else both would "win"
    with Session(engine_and_slot) as session:
        slot = session.scalars(select(SessionType)).one()
        client = add_client(session)
        start = dt.datetime(2026, 1, 5, 10, tzinfo=dt.UTC)  # started: complete and no-show are allowed
        reference = add_booking(session, client=client, session_type=slot, start=start).reference
        session.commit()
    results = race(
        bapp, database_url, engine_and_slot, [["bookings", *first, reference], ["bookings", *second, reference]]
    )
    codes = [code for code, _, _ in results]
    assert sorted(codes) == [0, 8], [err for _, _, err in results]
    won, lost = (first, second) if codes[0] == 0 else (second, first)
    final = {"cancel": "cancelled", "complete": "completed", "no-show": "no_show"}[won[0]]
    assert f"is {final}; cannot {lost[0]}" in results[codes.index(8)][2]
    with Session(engine_and_slot) as session:
        assert session.scalars(select(Booking.status)).one() == final
        moves = [entry.changes["status"] for entry in audit_entries(session, "booking")]
        assert moves == [["confirmed", final]]  # one change recorded, by the winner


@pytest.mark.parametrize(
    ("status", "payment", "first", "second", "final"),
    [
        ("confirmed", "paid", ["refund"], ["refund"], "refunded"),
        ("confirmed", "unpaid", ["mark-paid"], ["mark-paid"], "paid"),
        ("pending", "unpaid", ["confirm", "--paid"], ["mark-paid"], "paid"),
    ],
)
def test_two_payment_moves_of_one_booking_at_once_record_it_once(
    bapp: Bapp,
    database_url: str,
    engine_and_slot: Engine,
    status: str,
    payment: str,
    first: list[str],
    second: list[str],
    final: str,
) -> None:
    # Two staff recording the same refund (or payment) at once: one records it, the other is told it is
    # already there (exit 8, never 1), and the audit holds one move, never a double refund.
    with Session(engine_and_slot) as session:
        slot = session.scalars(select(SessionType)).one()
        booking = add_booking(
            session,
            client=add_client(session),
            session_type=slot,
            start=dt.datetime(2026, 1, 5, 10, tzinfo=dt.UTC),
            status=status,
        )
        booking.payment_status, booking.amount = payment, 30
        reference = booking.reference
        session.commit()
    results = race(
        bapp, database_url, engine_and_slot, [["bookings", *first, reference], ["bookings", *second, reference]]
    )
    codes = [code for code, _, _ in results]
    assert sorted(codes) == [0, 8], [err for _, _, err in results]
    assert f"payment is {final}; cannot" in results[codes.index(8)][2]
    with Session(engine_and_slot) as session:
        assert session.scalars(select(Booking.payment_status)).one() == final
        moves = [entry.changes["payment_status"] for entry in audit_entries(session, "booking")]
        assert moves == [[payment, final]]


def test_every_door_keys_a_client_by_the_address_as_bapp_stores_it() -> None:
    # A booking, Calendly's deliveries and pulls, and the removal of a hold Calendly turned down each spelt the key
    # themselves, two trusting their caller to have normalised the address: one key, whatever case or form it came in.
    from bapp_cli.db.locks import client_lock_key
    from bapp_cli.services.emails import normalise_email

    typed = (" Ann@X.com ", "ann@x.com", "ANN@X.COM", "Ünïcode.User@Exämple.com", "U\u0308nïcode.user@exämple.com")
    assert {client_lock_key(email) for email in typed[:3]} == {f"client:{normalise_email('ann@x.com')}"}
    assert client_lock_key(typed[3]) == client_lock_key(typed[4]) == f"client:{normalise_email(typed[3])}"
    # as Calendly sends an internationalised domain (Punycode), which normalise_email keys in Unicode
    assert client_lock_key("ünïcode.user@XN--EXMPLE-CUA.COM") == client_lock_key(typed[3])


@pytest.mark.parametrize(
    ("command", "start"),
    [(("cancel", "--reason", "moved"), "2031-11-03T10:00:00Z"), (("no-show", "--undo"), "2021-11-03T10:00:00Z")],
    ids=["cancel", "no-show-undo"],
)
def test_a_status_change_during_an_import_that_changes_the_booking_waits_for_it(
    bapp: Bapp, database_url: str, engine_and_slot: Engine, tmp_path: Path, command: tuple[str, ...], start: str
) -> None:
    # `bookings cancel|no-show --undo|…` read the booking FOR UPDATE, then wrote it: on PostgreSQL the row lock is
    # granted beside an import (which holds the bookings and users tables in a mode that lets rows be locked), and the
    # change then waited at its write for the import's table lock, holding the row; the import's later batch, which
    # changes that booking, waited for the row: each waited for the other, and the server ended one (deadlock
    # detected: busy, exit 75), often the long import. The change now waits for any import before it reads the
    # booking, as the doors that create one do, and then changes the booking as the import left it. The import holds
    # its transaction open (a FIFO the test has not closed) after writing its first batch.
    book = ("bookings", "create", "--client", "ada@example.com", "--session", "race-slot", "--start", start)
    made = bapp(*book, *(["--allow-past"] if start < "2026" else []), "--json")
    assert made.exit_code == 0, made.stderr
    reference = made.json()["reference"]
    if command[0] == "no-show":
        assert bapp("bookings", "no-show", reference).exit_code == 0
    status = bapp("bookings", "show", reference, "--json").json()["status"]
    rows = [f",filler{index}@example.com,race-slot,2029-01-01T10:00:00Z,completed," for index in range(BATCH + 1)]
    fifo = tmp_path / "bookings.csv"
    os.mkfifo(fifo)
    importer = bapp.popen("import", "bookings", str(fifo), "--json", python=with_batches_of(BATCH))
    with open(fifo, "w") as writer:
        writer.write("reference,client,session,start_time,status,client_timezone\n" + "\n".join(rows) + "\n")
        writer.flush()
        _wait_for(lambda: _writing(database_url), "the import's write transaction")
        change = bapp.popen("bookings", command[0], reference, *command[1:], "--json")
        with barrier_probe(database_url, engine_and_slot) as all_blocked:
            _wait_for(lambda: all_blocked([change]), "the change to wait for the import")
        writer.write(f"{reference},ada@example.com,race-slot,{start},{status},Europe/Paris\n")
    stdout, stderr = importer.communicate(timeout=60)
    assert importer.returncode == 0 and json.loads(stdout)["updated"] == 1, stderr
    stdout, stderr = change.communicate(timeout=60)
    assert change.returncode == 0, stderr
    assert json.loads(stdout)["client_timezone"] == "Europe/Paris"  # the booking as the import left it


def test_a_builder_made_a_client_during_an_import_that_makes_them_one_waits_for_it(
    bapp: Bapp, database_url: str, engine_and_slot: Engine, tmp_path: Path
) -> None:
    # `clients add coach@example.com --name Coach` of a builder added their client profile, then renamed the account,
    # without waiting for an import first. On PostgreSQL the rename waited for an import's hold on users, holding the
    # new profile, while the import's later batch, which makes the coach a client too, waited for that profile: each
    # waited for the other, and the server ended one (deadlock detected: busy, exit 75), often the long import. The
    # command now waits for any import first, as `clients enroll` does, and then finds the coach a client (exit 8,
    # already exists). The import holds its transaction open (a FIFO the test has not closed) after its first batch.
    fifo = tmp_path / "clients.csv"
    os.mkfifo(fifo)
    importer = bapp.popen("import", "clients", str(fifo), "--json", python=with_batches_of(BATCH))
    with open(fifo, "w") as writer:
        writer.write("email\n" + "".join(f"client{index}@example.com\n" for index in range(BATCH + 1)))
        writer.flush()
        _wait_for(lambda: _writing(database_url), "the import's write transaction")
        adding = bapp.popen("clients", "add", "coach@example.com", "--name", "Coach")
        with barrier_probe(database_url, engine_and_slot) as all_blocked:
            _wait_for(lambda: all_blocked([adding]), "the command to wait for the import")
        writer.write("coach@example.com\n")
    stdout, stderr = importer.communicate(timeout=60)
    assert importer.returncode == 0 and json.loads(stdout)["created"] == BATCH + 2, stderr
    _, stderr = adding.communicate(timeout=60)
    assert adding.returncode == 8 and "client 'coach@example.com' already exists" in stderr, stderr


def test_a_no_show_undone_takes_the_client_s_key_before_the_booking_s_row(
    bapp: Bapp, database_url: str, engine_and_slot: Engine
) -> None:
    # `bookings no-show --undo` of a booking still under way puts it back in its slot, checking rule 6 under the keys
    # a creation takes (the client's among them): it locked the booking's row first, then waited for the client's
    # key, which a Calendly delivery or pull for that client takes before it changes the client's bookings. On
    # PostgreSQL, with such a door holding the key and going on to the booking's row, each waited for the other and
    # the server ended one (deadlock detected: busy, exit 75). The undo now takes the keys first, as every door
    # does, then the row. The test's transaction plays the delivery (the key, then the row); on SQLite the writers
    # take turns whole.
    from bapp_cli.db.locks import client_lock_key, lock_id

    start = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    book = ("bookings", "create", "--client", "ada@example.com", "--session", "race-slot", "--start", start)
    reference = bapp(*book, "--allow-past", "--json").json()["reference"]
    assert bapp("bookings", "no-show", reference).exit_code == 0
    postgres = engine_and_slot.dialect.name == "postgresql"
    with engine_and_slot.connect() as delivery:
        if postgres:  # the undo's own check finds any deadlock first, whichever of the two it ends
            delivery.execute(text("SET deadlock_timeout = '60s'"))
            delivery.execute(
                text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_id(client_lock_key("ada@example.com"))}
            )
        undo = bapp.popen("bookings", "no-show", reference, "--undo", "--json")
        with barrier_probe(database_url, engine_and_slot) as all_blocked:
            _wait_for(lambda: undo.poll() is not None or all_blocked([undo]), "the undo to wait for the key")
        if postgres:
            delivery.execute(text("SELECT id FROM bookings WHERE reference = :r FOR UPDATE"), {"r": reference})
        delivery.commit()
    stdout, stderr = undo.communicate(timeout=60)
    assert undo.returncode == 0, stderr
    assert json.loads(stdout)["status"] == "confirmed"


def test_a_no_show_undone_takes_the_keys_a_creation_takes_in_its_order(
    bapp: Bapp, database_url: str, engine_and_slot: Engine
) -> None:
    # The undo's locked read took the client's key, then (its rule-6 check) the builder's: a creation for the same
    # client and builder takes the two sorted (db.locks.lock_keys), so when the builder's came first each held one
    # and waited for the other, and PostgreSQL ended one (deadlock detected: busy, exit 75). The undo now takes all
    # the keys a creation of its booking takes, at once. The test's transaction plays that creation: the builder's
    # key, then the client's (an address picked so that they sort in that order); on SQLite the writers take turns.
    from bapp_cli.db.locks import client_lock_key, lock_id

    with engine_and_slot.connect() as connection:
        builder = connection.execute(text("SELECT builder_id FROM session_types WHERE slug = 'race-slot'")).scalar()
    builder_key = lock_id(f"builder:{builder}")
    email = next(
        f"ada{n}@example.com" for n in range(100) if lock_id(client_lock_key(f"ada{n}@example.com")) > builder_key
    )
    start = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    book = ("bookings", "create", "--client", email, "--session", "race-slot", "--start", start)
    reference = bapp(*book, "--allow-past", "--json").json()["reference"]
    assert bapp("bookings", "no-show", reference).exit_code == 0
    postgres = engine_and_slot.dialect.name == "postgresql"
    with engine_and_slot.connect() as creation:
        if postgres:  # the undo's own check finds any deadlock first, whichever of the two it ends
            creation.execute(text("SET deadlock_timeout = '60s'"))
            creation.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": builder_key})
        undo = bapp.popen("bookings", "no-show", reference, "--undo", "--json")
        with barrier_probe(database_url, engine_and_slot) as all_blocked:
            _wait_for(lambda: undo.poll() is not None or all_blocked([undo]), "the undo to wait for the builder's key")
        if postgres and undo.poll() is None:
            creation.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_id(client_lock_key(email))})
        creation.commit()
    stdout, stderr = undo.communicate(timeout=60)
    assert undo.returncode == 0, stderr
    assert json.loads(stdout)["status"] == "confirmed"


def test_two_staff_enrolling_one_client_at_once_both_succeed(
    bapp: Bapp, database_url: str, engine_and_slot: Engine
) -> None:
    # `clients enroll` is idempotent: a repeat says it enrolled no one (exit 0). Two at once, on PostgreSQL, both found
    # no enrolment, both inserted it, and the unique index refused the second (exit 8, "run the command again")
    with Session(engine_and_slot) as session:
        add_client(session)
        session.commit()
    enroll = ["clients", "enroll", "ada@example.com", "accelerate", "--json"]
    results = race(bapp, database_url, engine_and_slot, [enroll, enroll], table="enrolments")
    assert [code for code, _, _ in results] == [0, 0], [err for _, _, err in results]
    assert sorted(json.loads(stdout)["enrolled"] for _, stdout, _ in results) == [False, True]
    with Session(engine_and_slot) as session:
        assert [entry.changes["status"] for entry in audit_entries(session, "enrolment")] == ["active"]


def test_two_status_changes_of_one_enrolment_at_once_audit_each_from_where_it_stood(
    bapp: Bapp, database_url: str, engine_and_slot: Engine
) -> None:
    # Both read the enrolment active; on PostgreSQL both wrote, and the audit said active → paused and active →
    # completed: the second change's "from" was a status the enrolment no longer had
    with Session(engine_and_slot) as session:
        add_client(session)
        session.commit()
    assert bapp("clients", "enroll", "ada@example.com", "accelerate", "--start", "2026-01-01").exit_code == 0
    moves = [["clients", "set-status", "ada@example.com", "accelerate", status] for status in ("paused", "completed")]
    results = race(bapp, database_url, engine_and_slot, moves, table="enrolments")
    assert [code for code, _, _ in results] == [0, 0], [err for _, _, err in results]
    with Session(engine_and_slot) as session:
        changes = [entry.changes["status"] for entry in audit_entries(session, "enrolment")][1:]
        assert changes[0][0] == "active" and changes[1][0] == changes[0][1], changes
        assert session.scalars(select(Enrolment.status)).one() == changes[1][1]


def test_skills_assigned_under_a_pathway_while_staff_enrol_the_client_in_it_both_succeed(
    bapp: Bapp, database_url: str, engine_and_slot: Engine
) -> None:
    # `skills assign --pathway` enrols the client too: it took the client's progress key, not the key `clients enroll`
    # and a booking take, so on PostgreSQL both inserted the enrolment and the second was refused (exit 8)
    with Session(engine_and_slot) as session:
        add_client(session)
        session.commit()
    enroll = ["clients", "enroll", "ada@example.com", "accelerate"]
    results = race(
        bapp,
        database_url,
        engine_and_slot,
        [enroll, ["skills", "assign", "ada@example.com", "--pathway", "accelerate"]],
        table="enrolments",
    )
    assert [code for code, _, _ in results] == [0, 0], [err for _, _, err in results]
    with Session(engine_and_slot) as session:
        assert [entry.changes["status"] for entry in audit_entries(session, "enrolment")] == ["active"]


def test_a_client_added_while_their_first_booking_makes_them_is_booked_either_way(
    bapp: Bapp, database_url: str, engine_and_slot: Engine
) -> None:
    # `clients add` took no client key, a booking of a new client does and makes the account: on PostgreSQL both found
    # no account, both inserted it, and the unique index refused the second, often the booking (exit 8 "written
    # meanwhile"). Now one waits for the other: the booking finds the client added, or `clients add` the one booked
    add = ["clients", "add", "new@example.com", "--name", "New"]
    book = ["bookings", "create", "--client", "new@example.com", "--session", "race-slot"]
    book += ["--start", "2031-08-01T10:00:00Z"]
    (added, _, refused), (booked, _, stderr) = race(bapp, database_url, engine_and_slot, [add, book], table="users")
    assert booked == 0, stderr
    assert added == 0 or (added == 8 and "client 'new@example.com' already exists" in refused), refused


def test_a_client_another_session_removes_while_they_are_enrolled_is_not_left_half_enrolled(
    bapp: Bapp, database_url: str, engine_and_slot: Engine
) -> None:
    # Another session (psql) removes the client `clients enroll` has read: on PostgreSQL the enrolment's foreign key
    # waits for that removal, then refuses the row (23503), written meanwhile (exit 8, not 1); SQLite's writers take
    # turns, so the command reads after the removal: no such client (7). Never an enrolment of no one.
    with Session(engine_and_slot) as session:
        add_client(session)
        session.commit()
    removal = ["DELETE FROM client_profiles", "DELETE FROM users WHERE email = 'ada@example.com'"]
    if engine_and_slot.dialect.name == "sqlite":
        holder: Any = sqlite3.connect(str(make_url(database_url).database), isolation_level=None, timeout=30)
        holder.execute("BEGIN IMMEDIATE")
    else:
        import psycopg

        holder = psycopg.connect(database_url.replace("+psycopg", ""))
    try:
        for statement in removal:
            holder.execute(statement)
        process = bapp.popen("clients", "enroll", "ada@example.com", "accelerate")
        with barrier_probe(database_url, engine_and_slot) as all_blocked:
            _wait_for(lambda: all_blocked([process]), "the enrolment to wait for the removal")
        holder.commit()
    finally:
        holder.close()
    _, stderr = process.communicate(timeout=60)
    expected = {"sqlite": (7, "no client"), "postgresql": (8, "another session removed a record this one refers to")}
    code, message = expected[engine_and_slot.dialect.name]
    assert process.returncode == code and message in stderr and "Traceback" not in stderr, stderr
    with Session(engine_and_slot) as session:
        assert count(session, Enrolment) == 0


# Another program's write transaction on the SQLite file, held until a line comes on stdin, then committed
_IMMEDIATE_HOLDER = """
import sqlite3, sys
holder = sqlite3.connect(sys.argv[1], isolation_level=None)
holder.execute("BEGIN IMMEDIATE")
holder.execute("UPDATE session_types SET title = title")
print("held", flush=True)
sys.stdin.readline()
holder.execute("COMMIT")
"""


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_bookings_create_waits_the_busy_timeout_for_another_process_writing_the_sqlite_file(
    bapp: Bapp, database_url: str, engine_and_slot: Engine
) -> None:
    """Another process holds BEGIN IMMEDIATE: `bookings create` waits the busy timeout, then is busy (exit 75) having
    written nothing; let go while it waits, it books. (A harness once saw exit 0 under such a hold: the hold had ended
    before the command's wait did, its start taking seconds on a loaded machine.)"""
    book = ["bookings", "create", "--client", "ada@example.com", "--session", "race-slot"]
    book += ["--start", "2031-10-01T10:00:00Z"]
    path = str(make_url(database_url).database)
    holder = subprocess.Popen(
        [sys.executable, "-c", _IMMEDIATE_HOLDER, path], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdin is not None and holder.stdout.readline() == "held\n"
        started = time.monotonic()
        refused = bapp.popen(*book, env={"BAPP_BUSY_TIMEOUT": "1"})
        _, stderr = refused.communicate(timeout=60)
        seconds = time.monotonic() - started
        assert (
            refused.returncode == 75
            and "Error: the database is busy: database is locked" in stderr
            and "Traceback" not in stderr
        ), stderr
        # the setting's second, not the default's 30 s (the rest is the process's start, seconds on a loaded machine)
        assert 1.0 <= seconds < 20 and holder.poll() is None, seconds
        with Session(engine_and_slot) as session:
            assert count(session, Booking) == 0
        waiting = bapp.popen(*book)  # the default busy timeout: 30 s
        _wait_for(lambda: _sleeping_in_sqlite(waiting), "bookings create to wait for the other process")
        holder.stdin.write("commit\n")
        holder.stdin.close()
        assert holder.wait(timeout=10) == 0
    finally:
        holder.kill()
    stdout, stderr = waiting.communicate(timeout=60)
    assert waiting.returncode == 0 and "BK-" in stdout, stderr
    with Session(engine_and_slot) as session:
        assert count(session, Booking) == 1

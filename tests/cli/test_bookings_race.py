"""R2: concurrent `bookings create` in real processes — exactly one wins a contested slot, on both backends.

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
import json
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from bapp_cli.db.engine import make_engine
from bapp_cli.db.models import Booking
from tests.conftest import Bapp
from tests.services.test_booking_factories import add_builder, add_session_type, count

ROUNDS = 5
RACERS = 3
BLOCK_TIMEOUT = 30.0
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
def barrier(database_url: str, engine: Engine) -> Iterator[Callable[[list[subprocess.Popen[str]]], bool]]:
    """Hold the database while processes start; yields a probe telling whether they are all blocked."""
    if engine.dialect.name == "sqlite":
        holder = sqlite3.connect(str(make_url(database_url).database), isolation_level=None, timeout=30)
        holder.execute("BEGIN IMMEDIATE")
        try:
            yield lambda processes: all(_sleeping_in_sqlite(process) for process in processes)
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        return
    with engine.connect() as holder, engine.connect() as observer:
        holder.execute(text("LOCK TABLE bookings IN ACCESS EXCLUSIVE MODE"))

        def probe(processes: list[subprocess.Popen[str]]) -> bool:
            waiting = observer.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND wait_event_type = 'Lock'"
                )
            ).scalar_one()
            observer.rollback()
            return waiting >= len(processes)

        try:
            yield probe
        finally:
            holder.rollback()


def race(bapp: Bapp, database_url: str, engine: Engine, commands: list[list[str]]) -> list[tuple[int, str, str]]:
    """Start every command behind the barrier, release it once all are blocked, collect the results."""
    with barrier(database_url, engine) as all_blocked:
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

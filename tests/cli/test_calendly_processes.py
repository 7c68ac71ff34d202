"""R2 and R3 with real processes: overlapping syncs, and a sync killed with SIGKILL in the middle of its apply."""

# ruff: noqa: F811  (pytest fixtures imported from calendly_fixtures are parameters by design)

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from bapp_cli.db.engine import make_engine
from tests.cli.calendly_fixtures import (
    USER,
    catalogue,
    cbapp,  # noqa: F401 (fixture)
    error_lines,
    fake,  # noqa: F401 (fixture)
    fake_server,  # noqa: F401 (fixture)
    snapshot,
    sync_runs,
)
from tests.conftest import Bapp
from tests.fakes.calendly_server import FakeCalendly, make_event_type

pytestmark = pytest.mark.slow
# Longer than the fake's scripted delays, so the delayed request is waited for rather than retried.
PATIENT = {"BAPP_CALENDLY_TIMEOUT": "30"}


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _finish(process: subprocess.Popen[str], timeout: float = 60) -> tuple[int, str, str]:
    stdout, stderr = process.communicate(timeout=timeout)
    return process.returncode, stdout, stderr


def test_a_second_sync_exits_75_at_once_while_the_first_holds_the_lock(cbapp: Bapp, fake: FakeCalendly) -> None:
    # The first run's listing request is answered late, so it is inside its run (holding the lock) while the
    # second one starts. The lock is taken before any request, so a request seen by the fake proves it.
    # The first run's answer is held up to 15 s (released once the second has given up); the second, given
    # 10 s to start and give up even on a loaded machine, cannot have waited for it.
    held = fake.delay_next("/event_types", seconds=15.0)
    first = cbapp.popen("calendly", "sync", "--user", USER, "--json", env=PATIENT)
    _wait_for(lambda: fake.count("/event_types") >= 1, "the first sync to reach Calendly")
    started = time.monotonic()
    code, stdout, stderr = _finish(cbapp.popen("calendly", "sync", "--user", USER, "--json"))
    assert code == 75, stderr
    assert time.monotonic() - started < 10  # exited at once, not after the first run
    assert stdout == ""
    assert error_lines(stderr) == ["Error: another Calendly sync is running"]
    assert "--wait" in stderr
    assert first.poll() is None  # the first run was still going when the second gave up
    held.released.set()
    code, stdout, stderr = _finish(first)
    assert code == 0, stderr
    assert json.loads(stdout)["created"] == 12
    assert [run["status"] for run in sync_runs(cbapp.database_url)] == ["succeeded"]  # busy runs leave no record


def test_a_wait_that_runs_out_suggests_a_longer_one(cbapp: Bapp, fake: FakeCalendly) -> None:
    # The second run was given --wait already: telling it to "pass --wait SECONDS" would be no way out.
    held = fake.delay_next("/event_types", seconds=15.0)
    first = cbapp.popen("calendly", "sync", "--user", USER, "--json", env=PATIENT)
    _wait_for(lambda: fake.count("/event_types") >= 1, "the first sync to reach Calendly")
    code, stdout, stderr = _finish(cbapp.popen("calendly", "sync", "--user", USER, "--json", "--wait", "1"))
    assert stdout == ""
    assert code == 75, stderr
    assert error_lines(stderr) == ["Error: another Calendly sync is running"]
    assert "a longer --wait" in stderr
    assert "pass --wait" not in stderr
    held.released.set()
    assert _finish(first)[0] == 0


def test_with_wait_the_second_sync_runs_after_the_first(cbapp: Bapp, fake: FakeCalendly) -> None:
    fake.delay_next("/event_types", seconds=1.5)
    first = cbapp.popen("calendly", "sync", "--user", USER, "--json", env=PATIENT)
    _wait_for(lambda: fake.count("/event_types") >= 1, "the first sync to reach Calendly")
    second = cbapp.popen("calendly", "sync", "--user", USER, "--json", "--wait", "60")
    first_code, first_out, first_err = _finish(first)
    second_code, second_out, second_err = _finish(second)
    assert (first_code, second_code) == (0, 0), first_err + second_err
    assert (first_err, second_err) == ("", "")
    assert json.loads(first_out)["created"] == 12
    assert json.loads(second_out)["unchanged"] == 12  # ran afterwards, against the committed catalogue
    runs = sync_runs(cbapp.database_url)
    assert [run["status"] for run in runs] == ["succeeded", "succeeded"]
    assert runs[1]["started_at"] >= runs[0]["finished_at"]


def _install_slow_run_insert(database_url: str) -> None:
    """Make inserting a sync_runs row take far longer than the test waits.

    The sync inserts its run record after every session-type write of the apply, so a process stuck here is
    exactly mid-apply: rows written, transaction not committed.
    """
    engine = make_engine(database_url)
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(
                text(
                    "CREATE FUNCTION slow_run_insert() RETURNS trigger LANGUAGE plpgsql AS "
                    "$$ BEGIN PERFORM pg_sleep(60); RETURN NEW; END $$"
                )
            )
            connection.execute(
                text(
                    "CREATE TRIGGER slow_run_insert BEFORE INSERT ON sync_runs "
                    "FOR EACH ROW EXECUTE FUNCTION slow_run_insert()"
                )
            )
            # what the server does when the client dies: notice it and roll back the open transaction
            database = connection.execute(text("SELECT current_database()")).scalar_one()
            connection.execute(text(f"ALTER DATABASE \"{database}\" SET client_connection_check_interval = '100ms'"))
        else:
            # SQLite cannot sleep in a trigger; a large cross join keeps the statement busy instead.
            connection.execute(text("CREATE TABLE burn (x INTEGER)"))
            connection.execute(
                text(
                    "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 3000) "
                    "INSERT INTO burn SELECT x FROM n"
                )
            )
            connection.execute(
                text(
                    "CREATE TRIGGER slow_run_insert BEFORE INSERT ON sync_runs BEGIN "
                    "SELECT count(*) FROM burn a, burn b, burn c WHERE a.x + b.x + c.x < 0; END"
                )
            )
    engine.dispose()


def _remove_slow_run_insert(database_url: str) -> None:
    engine = make_engine(database_url)
    with engine.begin() as connection:
        connection.execute(
            text("DROP TRIGGER slow_run_insert" + (" ON sync_runs" if engine.dialect.name == "postgresql" else ""))
        )
    engine.dispose()


def _apply_in_progress(database_url: str) -> bool:
    """Whether another connection has a write transaction open (the sync's apply)."""
    if database_url.startswith("postgresql"):
        return _open_transactions(database_url) >= 1
    # Read the kernel's lock table rather than try BEGIN IMMEDIATE: that probe takes the very lock the writer it
    # waits for needs, fifty times a second, so on a loaded machine the writer may lose its turns to it.
    # bapp's SQLite runs in WAL mode, where a writer mid-transaction holds byte 120 (WAL_WRITE_LOCK) of the
    # database's -shm file as a POSIX write lock.
    shared_memory = Path(database_url.removeprefix("sqlite:///") + "-shm")
    if not shared_memory.exists():  # no connection is open: nobody writes
        return False
    status = shared_memory.stat()
    file_id = f"{os.major(status.st_dev):02x}:{os.minor(status.st_dev):02x}:{status.st_ino}"
    wal_write_lock = 120
    for fields in (line.split() for line in Path("/proc/locks").read_text().splitlines()):
        if fields[1:4] == ["POSIX", "ADVISORY", "WRITE"] and fields[5] == file_id:
            end = fields[7]
            if int(fields[6]) <= wal_write_lock and (end == "EOF" or wal_write_lock <= int(end)):
                return True
    return False


def _open_transactions(database_url: str) -> int:
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            return int(
                connection.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                        "AND pid <> pg_backend_pid() AND xact_start IS NOT NULL"
                    )
                ).scalar_one()
            )
    finally:
        engine.dispose()


def _awaiting_calendly(pid: int) -> Callable[[], bool]:
    """A check that process `pid` has done all it can until Calendly answers: one thread asleep in poll() (the request
    held), every other asleep on a futex (a queue, an event, a lock), none runnable nor waiting for the database (a
    socket to PostgreSQL is waited on in epoll), twice in a row. Linux's /proc/PID/task/*/wchan."""
    seen: list[bool] = []

    def asleep() -> bool:
        tasks = Path(f"/proc/{pid}/task")
        with contextlib.suppress(OSError):  # ended: never
            wchans = [(task / "wchan").read_text() for task in tasks.iterdir()]
            polling = [wchan for wchan in wchans if wchan.startswith("poll_schedule_timeout")]
            seen.append(len(polling) == 1 and all("futex" in wchan for wchan in wchans if wchan not in polling))
        return seen[-2:] == [True, True]

    return asleep


def _sleeping_in_the_trigger(database_url: str) -> bool:
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            asleep = (
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event = 'PgSleep'"
            )
            return bool(connection.execute(text(asleep)).scalar_one())
    finally:
        engine.dispose()


def test_a_sync_killed_mid_apply_leaves_the_database_as_it_was(cbapp: Bapp, fake: FakeCalendly) -> None:
    """R3: SIGKILL while the apply's rows are written but not committed."""
    assert cbapp("calendly", "sync", "--user", USER).exit_code == 0
    changed = catalogue(8)
    changed[0] = make_event_type(0, name="Renamed Discovery Call")
    fake.set_event_types([*changed, *(make_event_type(i) for i in range(100, 160))])
    _install_slow_run_insert(cbapp.database_url)
    before = snapshot(cbapp.database_url)
    fake.clear_requests()

    process = cbapp.popen("calendly", "sync", "--user", USER, "--json")
    _wait_for(lambda: fake.count("/event_types") >= 1, "the listing to be fetched")
    postgres = cbapp.database_url.startswith("postgresql")
    _wait_for(lambda: _apply_in_progress(cbapp.database_url), "the apply's write transaction to open")
    if postgres:  # the apply's rows are written: its run record's insert sleeps in the trigger
        _wait_for(lambda: _sleeping_in_the_trigger(cbapp.database_url), "the apply to reach the run record")
    else:  # SQLite's trigger burns CPU in bapp's own process, where nothing tells it from the apply
        time.sleep(0.5)  # the apply of 68 types takes milliseconds: by now it sits in the slow run insert
    assert process.poll() is None, process.communicate()
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=30)
    assert process.returncode == -signal.SIGKILL

    if postgres:
        _wait_for(lambda: _open_transactions(cbapp.database_url) == 0, "the server to roll the dead client back")
    assert snapshot(cbapp.database_url) == before  # not a row of the apply, and no run record either
    _remove_slow_run_insert(cbapp.database_url)
    after = cbapp("calendly", "sync", "--user", USER, "--json")  # the lock died with the process
    assert after.exit_code == 0, after.stderr
    assert (after.json()["created"], after.json()["updated"], after.json()["deactivated"]) == (60, 1, 4)


def test_a_slug_taken_while_the_pages_are_in_flight_is_honoured_by_the_apply(cbapp: Bapp, fake: FakeCalendly) -> None:
    """The sync plans each page against the catalogue it read while the first page was in flight; a local type
    created after that read (here: holding the slug of a listed type) must still be seen by the write: the
    plan is checked against the catalogue inside the write transaction and made again when it changed."""
    from sqlalchemy.orm import Session

    from bapp_cli.db.models import SessionType

    slug = make_event_type(0)["slug"]
    held = fake.delay_next("/event_types", seconds=30.0)  # released once the local type is committed
    syncing = cbapp.popen("calendly", "sync", "--user", USER, "--json", env=PATIENT)
    _wait_for(lambda: fake.count("/event_types") >= 1, "the sync to reach Calendly")
    # the catalogue is read on a thread meanwhile: once it is, the local type committed next is not in what the pages
    # are planned against (a sleep of 3 s was taken to mean it)
    _wait_for(_awaiting_calendly(syncing.pid), "the sync to read the catalogue")
    engine = make_engine(cbapp.database_url)
    try:
        with Session(engine) as session:
            session.add(
                SessionType(title="Local", slug=slug, category="free", requires_auth=False, duration_minutes=30)
            )
            session.commit()
    finally:
        engine.dispose()
    assert syncing.poll() is None, "the sync finished before the catalogue changed"
    held.released.set()
    code, stdout, stderr = _finish(syncing)
    assert code == 0, stderr
    assert json.loads(stdout)["created"] == 12
    slugs = {title: taken for title, taken in snapshot_slugs(cbapp.database_url)}
    assert slugs["Local"] == slug
    assert slugs[make_event_type(0)["name"]] == f"{slug}-2"


def snapshot_slugs(database_url: str) -> list[tuple[str, str]]:
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text("SELECT title, slug FROM session_types"))]
    finally:
        engine.dispose()


def test_a_sync_runs_without_sqlalchemy_on_either_backend(cbapp: Bapp, fake: FakeCalendly, tmp_path: Path) -> None:
    """P2: the whole sync — lock, head check, config rules, catalogue read, the write, the audit and the run
    record, a failed run's record too — runs on plain DB-API connections (sqlite3 or psycopg): the process
    never imports SQLAlchemy, and writes what the tests of services/test_sync.py prove the apply writes. Its pages
    are read with calendly.pages alone: the API's other models (calendly.models) are never built."""
    (tmp_path / "config.toml").write_text(
        '[[calendly.rules]]\npattern = "creative"\ncategory = "pathway"\nprice = "12.50"\n'
    )
    probe = (
        "import sys; from bapp_cli.cli.launcher import main; sys.argv = ['bapp', *sys.argv[1:]]\n"
        "try:\n    main()\nexcept SystemExit as done:\n    code = done.code\n"
        "print('loaded', 'sqlalchemy' in sys.modules, 'bapp_cli.calendly.models' in sys.modules, file=sys.stderr)\n"
        "sys.exit(code)"
    )

    def sync(*args: str) -> tuple[int, dict[str, Any], str]:
        done = subprocess.run(
            [sys.executable, "-c", probe, "calendly", "sync", "--user", USER, "--json", *args],
            env=cbapp._environment(None),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.stderr.splitlines()[-1] == "loaded False False", done.stderr
        return done.returncode, json.loads(done.stdout or "{}"), done.stderr

    code, first, stderr = sync()
    assert (code, first["created"], first["status"]) == (0, 12, "succeeded"), stderr

    def titles() -> list[str]:
        engine = make_engine(cbapp.database_url)
        try:
            with engine.connect() as connection:
                return list(connection.scalars(text("SELECT title FROM session_types ORDER BY id")))
        finally:
            engine.dispose()

    assert len(titles()) == 12
    creative = [item for item in cbapp("sessions", "list", "--all", "--json").json() if "Creative" in item["title"]]
    assert {(item["category"], item["price"]) for item in creative} == {("pathway", "12.50")}  # the rule applied
    renamed = make_event_type(0, name="Renamed While Plain")
    fake.set_event_types([renamed, *[make_event_type(i) for i in range(1, 11)], make_event_type(40)])
    before = snapshot(cbapp.database_url)
    code, planned, stderr = sync("--dry-run")
    assert (code, planned["created"], planned["updated"], planned["deactivated"]) == (0, 1, 1, 1), stderr
    assert snapshot(cbapp.database_url) == before  # the dry run rolled back
    code, applied, stderr = sync()
    assert (code, applied["created"], applied["updated"], applied["deactivated"]) == (0, 1, 1, 1), stderr
    assert titles()[0] == "Renamed While Plain" and len(titles()) == 13
    fake.fail_next("/event_types", status=500, times=None)
    code, failed, stderr = sync()
    assert (code, failed["status"]) == (9, "failed"), stderr
    runs = sync_runs(cbapp.database_url)
    assert [(run["status"], run["created"]) for run in runs] == [("succeeded", 12), ("succeeded", 1), ("failed", 0)]


def _terminated_while_calendly_answers(
    cbapp: Bapp, fake: FakeCalendly, command: str, path: str, *flags: str
) -> tuple[int, str, str]:
    """Runs `calendly <command>`, sends it SIGTERM while Calendly's answer to `path` is awaited; (code, out, err)."""
    held = fake.delay_next(path, seconds=30.0)
    run = cbapp.popen("calendly", command, "--user", USER, *flags, env=PATIENT)
    _wait_for(lambda: fake.count(path) >= 1, "the run to reach Calendly")
    _wait_for(_awaiting_calendly(run.pid), "the run to await the answer")  # not a sleep of 0.5 s
    run.send_signal(signal.SIGTERM)
    try:
        return _finish(run)
    finally:
        held.released.set()


@pytest.mark.parametrize(("command", "path"), [("sync", "/event_types"), ("pull-bookings", "/scheduled_events")])
def test_a_run_stopped_by_a_signal_is_recorded_as_failed(
    cbapp: Bapp, fake: FakeCalendly, command: str, path: str
) -> None:
    # a cron run stopped by `timeout` (SIGTERM), a hang-up or Ctrl-C left no run record: `calendly status` showed
    # the last run that finished as the latest, however many were stopped since
    code, stdout, stderr = _terminated_while_calendly_answers(cbapp, fake, command, path, "--json")
    assert code == 143, stderr
    assert error_lines(stderr) == ["Error: terminated with nothing applied, recorded as failed run 1"]
    [recorded] = sync_runs(cbapp.database_url)
    assert (recorded["status"], recorded["error"]) == (
        "failed",
        "interrupted (Ctrl-C or a stop signal); nothing applied",
    )
    assert (json.loads(stdout)["status"], json.loads(stdout)["run_id"]) == ("failed", 1)
    status = cbapp("calendly", "status", "--json")
    assert [(run["status"], run["error"]) for run in status.json()] == [(recorded["status"], recorded["error"])]


@pytest.mark.parametrize(("command", "path"), [("sync", "/event_types"), ("pull-bookings", "/scheduled_events")])
def test_a_dry_run_stopped_by_a_signal_records_nothing(
    cbapp: Bapp, fake: FakeCalendly, command: str, path: str
) -> None:
    # a dry run records no run (127b4e5 records a stopped one as failed): stopped, it says nothing was changed
    code, stdout, stderr = _terminated_while_calendly_answers(cbapp, fake, command, path, "--dry-run")
    assert (code, stdout) == (143, ""), stderr
    assert stderr.splitlines()[-1] == "Terminated; nothing was changed."
    assert sync_runs(cbapp.database_url) == []

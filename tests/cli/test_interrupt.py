"""Exit 130: Ctrl-C (SIGINT) mid-command stops cleanly, says so in one line, and writes nothing — or, stopped
after its commit, says that what it committed stands."""

# ruff: noqa: F811  (pytest fixtures imported from calendly_fixtures are parameters by design)

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bapp_cli.db.dbapi import BUSY_TIMEOUT_MS
from bapp_cli.db.engine import make_engine
from tests.cli.calendly_fixtures import (
    USER,
    cbapp,  # noqa: F401 (fixture)
    error_lines,
    fake,  # noqa: F401 (fixture)
    fake_server,  # noqa: F401 (fixture)
    snapshot,
    sync_runs,
)
from tests.conftest import REPO, Bapp, eventually
from tests.fakes.calendly_server import FakeCalendly, make_event_type
from tests.postgres_server import waits_for_lock


def test_ctrl_c_during_a_sync_exits_130_with_nothing_written_but_its_failed_run(
    cbapp: Bapp, fake: FakeCalendly
) -> None:
    before = snapshot(cbapp.database_url, skip=["sync_runs"])
    fake.delay_next("/event_types", seconds=20)  # the first page hangs, as a slow network would
    # the child sees the Ctrl-C even when the suite runs in the background (tests/conftest.py, pytest_configure)
    process = cbapp.popen("calendly", "sync", "--user", USER, env={"BAPP_CALENDLY_TIMEOUT": "30"})
    deadline = time.monotonic() + 30
    while fake.count("/event_types") == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert fake.count("/event_types") == 1, "the sync never reached Calendly"
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 130
    assert stderr.strip().splitlines() == ["Error: interrupted with nothing applied, recorded as failed run 1"]
    assert stdout.splitlines()[1].startswith("1\tfailed\t")  # the failed run's summary, as any failed run's
    assert snapshot(cbapp.database_url, skip=["sync_runs"]) == before
    # recorded, so that `calendly status` does not show the last run that finished as the latest
    assert [(run["status"], run["error"]) for run in sync_runs(cbapp.database_url)] == [
        ("failed", "interrupted (Ctrl-C or a stop signal); nothing applied")
    ]


def test_a_sync_terminated_after_its_commit_does_not_say_nothing_was_changed(bapp: Bapp, tmp_path: Path) -> None:
    """Stopped while it shows its changes (or retries parked deliveries), a sync has committed: it said
    "Terminated; nothing was changed." of 3,000 new session types and their run record."""
    listing = tmp_path / "listing.json"
    listing.write_text(json.dumps([make_event_type(i) for i in range(200)]))
    # stderr is not read: the change lines (~24 kB) fill its pipe of one page, so the sync waits there, committed
    # (3,000 types filled a default pipe of 64 kB, at ~15 times the sync's work)
    reader, writer = os.pipe()
    fcntl.fcntl(writer, fcntl.F_SETPIPE_SZ, 4096)
    process = subprocess.Popen(
        [sys.executable, "-m", "bapp_cli", "--verbose", "calendly", "sync", "--from-file", str(listing)],
        env=bapp._environment(None),
        stdout=subprocess.PIPE,
        stderr=writer,
        text=True,
        cwd=REPO,
    )
    os.close(writer)
    try:
        eventually(lambda: bool(sync_runs(bapp.database_url)), "the sync to commit", timeout=60)
        eventually(lambda: "pipe" in Path(f"/proc/{process.pid}/wchan").read_text(), "the change lines to wait")
        assert len(sync_runs(bapp.database_url)) == 1
        process.send_signal(signal.SIGTERM)
        with os.fdopen(reader, encoding="utf-8") as errors:
            stderr = errors.read()
        stdout = process.communicate(timeout=60)[0]
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=30)
    assert process.returncode == 143
    assert stderr.splitlines()[-1] == "Terminated; what was committed before the stop stands."
    assert stdout == ""  # the summary never came
    assert [(run["status"], run["created"]) for run in sync_runs(bapp.database_url)] == [("succeeded", 200)]


@pytest.mark.parametrize(
    ("stop", "code", "said"),
    [(signal.SIGINT, 130, "Interrupted"), (signal.SIGTERM, 143, "Terminated"), (signal.SIGHUP, 129, "Hung up")],
    ids=["ctrl-c", "sigterm", "sighup"],
)
def test_a_stop_while_the_output_waits_at_the_exit_says_what_was_committed(
    bapp: Bapp, tmp_path: Path, stop: signal.Signals, code: int, said: str
) -> None:
    """An import that committed its good row and said its exit 3 leaves its summary on stdout for the exit's flush;
    Ctrl-C while that waits for a reader that does not read went up to the launcher, which said "Interrupted;
    nothing was changed." of the committed row; SIGTERM or SIGHUP, bapp's handlers already put back, killed it
    where it stood, saying nothing. Said as any stop after a commit is now, with its exit code, nothing more."""
    rows, rejects = tmp_path / "clients.csv", tmp_path / "rejects.csv"
    command = ("import", "clients", str(rows), "--continue-on-error", "--rejects")
    _clients_and_bad_rows(rows, padding=0)
    assert bapp(*command, str(rejects), "--dry-run").exit_code == 3
    # a pipe of one page, which the rejects leave 30 bytes short of full: the summary (one write of ~100 bytes,
    # which a pipe takes whole or not at all) waits at the exit, after the commit
    _clients_and_bad_rows(rows, padding=4096 - 30 - rejects.stat().st_size)
    reader, writer = os.pipe()
    fcntl.fcntl(writer, fcntl.F_SETPIPE_SZ, 4096)
    process = subprocess.Popen(
        [sys.executable, "-m", "bapp_cli", *command, "/dev/stdout", "--json"],
        env=bapp._environment(None),
        stdout=writer,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    os.close(writer)
    try:
        eventually(lambda: "pipe" in Path(f"/proc/{process.pid}/wchan").read_text(), "the summary to wait")
        process.send_signal(stop)
        with contextlib.suppress(subprocess.TimeoutExpired):  # read after: its reading would let the summary through
            process.wait(timeout=10)
        with os.fdopen(reader, "rb") as output:
            written = output.read()
        stderr = process.communicate(timeout=30)[1]
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=30)
    assert process.returncode == code
    assert error_lines(stderr)[0] == "Error: 30 rows rejected; they are in /dev/stdout" and "Traceback" not in stderr
    assert stderr.splitlines()[-1] == f"{said}; what was committed before the stop stands."
    assert len(written) == 4096 - 30  # the rejects; the summary is dropped with the stop
    assert bapp("clients", "show", "good@example.com").exit_code == 0


def _clients_and_bad_rows(path: Path, *, padding: int) -> None:
    """A clients file of one good row and 30 bad ones (no e-mail), their names `padding` characters longer."""
    names = [f"Client {n} " + "x" * min(150, max(0, padding - 150 * n)) for n in range(30)]
    bad = [f"bad{n}-not-an-email,{name}" for n, name in enumerate(names)]
    path.write_text("\n".join(["email,name", "good@example.com,Good", *bad]) + "\n")


def test_an_interrupted_error_is_named_after_the_signal_that_stopped_the_command() -> None:
    # cli.app rewrote the first "interrupted" in any Interrupted error's message to "hung up" or "terminated"
    # by string search; the error now names its stop itself, with the exit code of that signal
    from bapp_cli.errors import Interrupted, stop_signal

    assert (Interrupted("while x").message, Interrupted("while x").exit_code) == ("interrupted while x", 130)
    for signum, words, code in ((signal.SIGHUP, "hung up while x", 129), (signal.SIGTERM, "terminated while x", 143)):
        stop_signal[:] = [signum]
        try:
            error = Interrupted("while x", hint="h")
        finally:
            stop_signal.clear()
        assert (error.message, error.exit_code, error.hint, error.code) == (words, code, "h", "interrupted")


# Holds the database until stdin closes: "write", its write lock (an import, a sync, an sqlite3 or psql session
# mid-write); "all" of it, reads too (the sqlite3 shell's exclusive locking mode; a psql session's ALTER TABLE).
_HOLDER = """
import sqlite3, sys
url, what = sys.argv[1:]
if url.startswith("sqlite"):
    holder = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    if what == "all":
        holder.execute("PRAGMA locking_mode = EXCLUSIVE")
        holder.execute("BEGIN")
        holder.execute("UPDATE alembic_version SET version_num = version_num")
        holder.execute("COMMIT")
    else:
        holder.execute("BEGIN IMMEDIATE")
else:
    import psycopg

    holder = psycopg.connect(url.replace("+psycopg", ""))
    holder.execute("SET idle_in_transaction_session_timeout = '60s'")  # never outlives a test that failed
    # "runs": the tables a run writes and its run records' (a stopped run's record waits for that lock)
    tables = {"all": "alembic_version IN ACCESS EXCLUSIVE", "runs": "users, session_types, sync_runs IN EXCLUSIVE"}
    tables = tables.get(what, "users, session_types IN EXCLUSIVE")
    holder.execute(f"LOCK TABLE {tables} MODE")
print("held", flush=True)
if what == "version":  # then, told so, a migration's lock of the revision, queued behind the readers of it
    import threading

    migration = psycopg.connect(url.replace("+psycopg", ""))
    sys.stdin.readline()
    lock = "LOCK TABLE alembic_version IN ACCESS EXCLUSIVE MODE"
    threading.Thread(target=migration.execute, args=(lock,), daemon=True).start()
sys.stdin.read()
"""


def test_ctrl_c_while_waiting_for_another_writers_lock_exits_130_at_once_with_nothing_written(bapp: Bapp) -> None:
    """SQLite waited for the lock in its busy handler, in C, where Python sees no signal: a Ctrl-C was seen only
    when the other writer let go, or the 30 s busy timeout ran out. Both writers: the ORM's (clients add) and the
    plain one's (a sync, dry run: a stopped real run waits for the lock again to record its failed run)."""
    listing = str(REPO / "examples" / "calendly" / "event_types.json")
    _stop_while_held(
        bapp,
        "write",
        [("clients", "add", "waiting@example.com"), ("calendly", "sync", "--dry-run", "--from-file", listing)],
    )


def test_ctrl_c_while_another_program_holds_the_whole_database_exits_130_at_once(bapp: Bapp) -> None:
    # waited for at the first read of the file: the engine's switch to WAL (clients list), the plain reads' (sessions)
    _stop_while_held(bapp, "all", [("clients", "list"), ("sessions", "list")])


def _stop_while_held(bapp: Bapp, what: str, commands: list[tuple[str, ...]]) -> None:
    """Each command, started while another process holds `what` of the database, stopped by a Ctrl-C as it waits:
    exit 130 within a moment, nothing written."""
    before = snapshot(bapp.database_url)
    database = bapp.database_url.removeprefix("sqlite:///")
    with _holding(bapp, what):
        for command in commands:
            process = bapp.popen(*command)
            try:
                # waiting for the lock (were it stopped before, it would exit 130 at once on the old code too)
                eventually(functools.partial(_connected, process.pid, database), "the command to open the database")
                _waiting_for_the_lock(process, bapp.database_url)
                assert process.poll() is None, process.communicate()
                process.send_signal(signal.SIGINT)
                stopped = time.monotonic()
                # the old code stopped only when the busy timeout ran out, never before this
                _stdout, stderr = process.communicate(timeout=BUSY_TIMEOUT_MS / 1000 * 2 / 3)
            finally:
                process.kill()
                process.wait()
            # well short of the 30 s wait, with room for a loaded machine: a Ctrl-C there takes ~0.3 s, seen up to ~4 s
            # under CPU hogs (PostgreSQL: psycopg cancels the statement on a new connection before it stops)
            assert time.monotonic() - stopped < BUSY_TIMEOUT_MS / 1000 / 3, (command, "the Ctrl-C waited for the lock")
            assert (process.returncode, stderr) == (130, "Interrupted; nothing was changed.\n"), command
    assert snapshot(bapp.database_url) == before


@contextlib.contextmanager
def _holding(bapp: Bapp, what: str) -> Iterator[subprocess.Popen[str]]:
    """Another process holding `what` of the database (_HOLDER) until the block ends; it reads its stdin's lines."""
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, bapp.database_url, what],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        yield holder
    finally:
        holder.communicate("")  # lets go


def _waiting_for_the_lock(process: subprocess.Popen[str], database_url: str) -> None:
    """Returns once `process` waits for the other process's lock (a sleep of a second or more was taken to mean it
    did): on SQLite it sleeps in the busy handler, seen twice in a row (it wakes every few milliseconds to try
    again); on PostgreSQL a session waits for a lock (the holder's own do not)."""
    if database_url.startswith("sqlite"):
        asleep: list[bool] = []

        def sleeping_twice() -> bool:
            with contextlib.suppress(OSError):  # not there: ended
                asleep.append("nanosleep" in Path(f"/proc/{process.pid}/wchan").read_text())
            return asleep[-2:] == [True, True]

        eventually(sleeping_twice, "the wait for the lock")
        return
    engine = make_engine(database_url)
    try:
        eventually(lambda: waits_for_lock(engine, "%"), "the wait for the lock")
    finally:
        engine.dispose()


def _connected(pid: int, database: str) -> bool:
    links = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):  # closed meanwhile
            links.append(os.readlink(fd))
    return any(link == database or link.startswith("socket:") for link in links)


# SQLite's writer holds the whole file: only the "write" case is SQLite's (generated, not skipped)
@pytest.mark.parametrize(
    ("database_url", "held"),
    [("sqlite", "write"), ("postgresql", "write"), ("postgresql", "runs"), ("postgresql", "version")],
    indirect=["database_url"],
)
@pytest.mark.parametrize(
    ("command", "listing"), [("sync", "event_types.json"), ("pull-bookings", "scheduled_events.json")]
)  # the sync's plain write transaction, the pull's ORM one
def test_a_run_stopped_while_waiting_for_another_writer_ends_at_once_its_record_not_waiting_30_s(
    bapp: Bapp, command: str, listing: str, held: str
) -> None:
    """A Calendly run (not a dry run) records the failed run of a stop in a transaction of its own, which waited for
    the very writer's lock the run was stopped waiting for: on SQLite the Ctrl-C ended the command only when the 30 s
    busy timeout ran out. It now waits a moment for that lock; still held, the record is skipped, and said so.
    On PostgreSQL the record waited the whole lock_timeout (30 s) when the other writer held sync_runs too ("runs"),
    or a migration had queued for alembic_version behind the run's read of it ("version"), as `db upgrade` does."""
    before = snapshot(bapp.database_url, skip=["sync_runs"])
    database = bapp.database_url.removeprefix("sqlite:///")
    with _holding(bapp, held) as holder:
        process = bapp.popen("calendly", command, "--from-file", str(REPO / "examples" / "calendly" / listing))
        try:
            eventually(functools.partial(_connected, process.pid, database), "the sync to open the database")
            _waiting_for_the_lock(process, bapp.database_url)
            assert process.poll() is None, process.communicate()
            if held == "version":
                assert holder.stdin is not None
                holder.stdin.write("queue the migration's lock\n")
                holder.stdin.flush()
                engine = make_engine(bapp.database_url)
                try:
                    eventually(lambda: waits_for_lock(engine, "LOCK TABLE alembic_version%"), "the migration to queue")
                finally:
                    engine.dispose()
            process.send_signal(signal.SIGINT)
            stopped = time.monotonic()
            _stdout, stderr = process.communicate(timeout=BUSY_TIMEOUT_MS / 1000 * 2 / 3)
        finally:
            process.kill()
            process.wait()
        assert time.monotonic() - stopped < BUSY_TIMEOUT_MS / 1000 / 3, "the failed run's record waited for the lock"
        assert process.returncode == 130, stderr
        if bapp.database_url.startswith("sqlite") or held != "write":  # the whole file, sync_runs, the revision
            assert stderr.startswith("Error: interrupted with nothing applied; its failed run was not recorded ("), (
                stderr
            )
            assert "the database is busy" in stderr
        else:  # the writer locks the tables the run writes, not its runs': recorded
            assert stderr == "Error: interrupted with nothing applied, recorded as failed run 1\n", stderr
    assert snapshot(bapp.database_url, skip=["sync_runs"]) == before

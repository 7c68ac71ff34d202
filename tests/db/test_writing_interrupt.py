"""A Ctrl-C while `dbapi.writing` waits for another program's lock is seen within a moment.

SQLite waits for a lock in its busy handler, in C, where Python runs no signal handler: a wait that is not made in
`dbapi.patiently`'s short turns sees a Ctrl-C only when the 30 s busy timeout has run out. `writing`'s BEGIN IMMEDIATE
waited in turns, but its switch to WAL did not: on a file in a rollback journal, with `on=` (a sync's survey
connection, opened before the lock was taken) it is the first statement to wait for another program's lock (here the
sqlite3 shell's exclusive locking mode after a write).
"""

from __future__ import annotations

import contextlib
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from bapp_cli.db.dbapi import BUSY_TIMEOUT_MS
from tests.cli.test_hardening_terminal import _EXCLUSIVE_HOLDER
from tests.conftest import REPO, Bapp

# Opens the read connection a sync surveys on, waits for "go" on stdin, then takes it over to write.
_WRITER = """
import sys
from bapp_cli.db import dbapi
url = sys.argv[1]
survey = dbapi.connect(url)
survey.connection.rollback()
print("surveyed", flush=True)
sys.stdin.readline()
with dbapi.writing(url, on=survey):
    pass
print("wrote", flush=True)
"""


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # PostgreSQL has no switch to WAL to wait in
def test_ctrl_c_while_writing_takes_over_a_read_connection_and_waits_to_switch_to_wal(bapp: Bapp) -> None:
    path = bapp.database_url.removeprefix("sqlite:///")
    # in a rollback journal (another program set it so): the switch to WAL then needs the file to itself
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as journal:
        assert journal.execute("PRAGMA journal_mode = DELETE").fetchone() == ("delete",)
    writer = subprocess.Popen(
        [sys.executable, "-c", _WRITER, bapp.database_url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    holder = None
    try:
        assert writer.stdout is not None and writer.stdout.readline() == "surveyed\n"
        holder = subprocess.Popen(
            [sys.executable, "-c", _EXCLUSIVE_HOLDER, path], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        assert writer.stdin is not None
        writer.stdin.write("go\n")
        writer.stdin.flush()
        time.sleep(1.0)  # waiting for the lock by now (were it stopped before, the old code stopped at once too)
        assert writer.poll() is None, writer.communicate()
        writer.send_signal(signal.SIGINT)
        stopped = time.monotonic()
        _stdout, stderr = writer.communicate(timeout=BUSY_TIMEOUT_MS / 1000 * 2 / 3)
        # a turn is 0.1 s; the old code waited out the 30 s busy timeout first
        assert time.monotonic() - stopped < BUSY_TIMEOUT_MS / 1000 / 3, "the Ctrl-C waited for the lock"
        assert "KeyboardInterrupt" in stderr and "wrote" not in _stdout, stderr
    finally:
        writer.kill()
        writer.wait()
        if holder is not None:
            holder.communicate("")

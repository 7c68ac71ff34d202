"""A throwaway PostgreSQL cluster for the test suite: initdb + pg_ctl into a temporary directory.

Run as root, the server runs as the `postgres` user (PostgreSQL refuses to run as root). The cluster
uses password authentication over TCP so that tests see a real password in the URL (R6, secrets).
Set BAPP_TEST_POSTGRES_URL to use an existing server instead (it must allow CREATE DATABASE).
"""

from __future__ import annotations

import glob
import hashlib
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

PASSWORD = "pg-Secret-7f3a"

# Stops the cluster once the test process is gone. `stop()` runs at the end of a normal session, but a
# test run killed by a signal (a CI timeout, ^C twice) never gets there, and its server would go on
# holding a port and a temporary directory until the machine restarts.
_WATCHDOG = """
import os, shutil, subprocess, sys, time
owner, directory, stop = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
while os.path.isdir(directory):
    try:
        os.kill(owner, 0)
    except ProcessLookupError:
        subprocess.run(stop, capture_output=True)
        shutil.rmtree(directory, ignore_errors=True)
        break
    time.sleep(1)
"""


def find_binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    return candidates[0] if candidates else None


# Where the cluster lives: a RAM disk when the machine has one with room to spare. On ext4 every CREATE
# DATABASE (one per fresh test database, some 700 a run) spent ~0.3 s of kernel time creating its few
# hundred relation files, the inode allocator skipping the many inodes the suite had just deleted; on
# tmpfs it takes ~0.02 s. The cluster is throwaway (fsync=off already), so memory loses nothing.
RAM_DISK = Path("/dev/shm")
RAM_DISK_ROOM = 2 * 1024**3


def scratch_directory() -> str | None:
    try:
        stats = os.statvfs(RAM_DISK)
    except OSError:
        return None
    if stats.f_bavail * stats.f_frsize < RAM_DISK_ROOM or not os.access(RAM_DISK, os.W_OK | os.X_OK):
        return None
    return str(RAM_DISK)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class TemporaryPostgres:
    def __init__(self) -> None:
        self.initdb = find_binary("initdb")
        self.pg_ctl = find_binary("pg_ctl")
        self.directory: Path | None = None
        self.port = 0
        self.started = False

    @property
    def available(self) -> bool:
        return bool(self.initdb and self.pg_ctl)

    def _as_postgres(self, command: list[str]) -> list[str]:
        if os.geteuid() != 0:
            return command
        return ["runuser", "-u", "postgres", "--", *command]

    def start(self) -> str:
        assert self.initdb and self.pg_ctl
        ram_disk = scratch_directory()
        try:
            self._initialise(ram_disk)
        except subprocess.CalledProcessError:
            if ram_disk is None:
                raise
            # the RAM disk is only a speed-up: a cluster it cannot hold goes where it always went
            self._initialise(None)
        assert self.directory is not None
        data = self.directory / "data"
        self.port = free_port()
        # WAL is capped (1 GB by default): on the RAM disk it is memory the machine's other work needs. No
        # autovacuum: its launcher visits every database in turn (hundreds of short-lived ones a run), a worker
        # process each time, to tidy tables that are thrown away minutes later.
        options = (
            f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200 -c max_wal_size=96MB "
            "-c min_wal_size=32MB -c autovacuum=off"
        )
        subprocess.run(
            self._as_postgres(
                [self.pg_ctl, "-D", str(data), "-o", options, "-l", str(self.directory / "log"), "-w", "start"]
            ),
            check=True,
            capture_output=True,
        )
        self.started = True
        subprocess.Popen(
            [sys.executable, "-c", _WATCHDOG, str(os.getpid()), str(self.directory), *self._stop_command()],
            start_new_session=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return self.url("postgres")

    def _initialise(self, parent: str | None) -> None:
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
        self.directory = Path(tempfile.mkdtemp(prefix="bapp-pg-", dir=parent))
        password_file = self.directory / "pw"
        # md5, not SCRAM: a real password all the same (a wrong one is refused), but SCRAM's 4,096 rounds of hashing
        # cost each new connection ~4.5 ms of the client's CPU (~1 ms with md5), and the suite opens thousands. The
        # password is given hashed, as PostgreSQL stores md5 passwords ("md5" + md5(password + user)): stored in
        # SCRAM's form, md5 authentication would do SCRAM's exchange anyway.
        password_file.write_text("md5" + hashlib.md5(f"{PASSWORD}postgres".encode()).hexdigest() + "\n")
        if os.geteuid() == 0:
            postgres = pwd.getpwnam("postgres")
            os.chown(self.directory, postgres.pw_uid, postgres.pw_gid)
            os.chown(password_file, postgres.pw_uid, postgres.pw_gid)
        command = [self.initdb or "initdb", "-D", str(self.directory / "data"), "-U", "postgres", "--auth-local=trust"]
        command += ["--auth-host=md5", f"--pwfile={password_file}", "-E", "UTF8", "--no-sync"]
        # The locale of a typical production server, not "C": en-US sorts case and accents together and
        # folds every letter's case, as en_US.UTF-8 does, so the suite sees the orders and matches a real
        # PostgreSQL gives (the C locale gave SQLite's, and hid that bapp's did not). ICU, not libc: a
        # Debian image has no en_US.UTF-8 unless generated, and every PostgreSQL 15 package has ICU.
        command += ["--locale-provider=icu", "--icu-locale=en-US", "--locale=C.UTF-8"]
        initialised = subprocess.run(self._as_postgres(command), capture_output=True, text=True)
        if initialised.returncode != 0:
            print(f"initdb in {self.directory} failed: {initialised.stderr.strip()}", file=sys.stderr)
            initialised.check_returncode()

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres:{PASSWORD}@127.0.0.1:{self.port}/{database}"

    def _stop_command(self) -> list[str]:
        assert self.pg_ctl and self.directory
        return self._as_postgres([self.pg_ctl, "-D", str(self.directory / "data"), "-m", "immediate", "stop"])

    def stop(self) -> None:
        if self.started and self.directory is not None and self.pg_ctl:
            subprocess.run(self._stop_command(), capture_output=True)
            self.started = False
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None


def waits_for_lock(engine: Any, query: str) -> bool:
    """Whether a session of PostgreSQL's waits for a lock in a statement like ``query`` (a LIKE pattern)."""
    from sqlalchemy import text

    with engine.connect() as connection:
        found = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE :query"
        return bool(connection.execute(text(found), {"query": query}).scalar())

"""The suite's throwaway PostgreSQL goes away with the test process, however that process ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.postgres_server import TemporaryPostgres

REPO = Path(__file__).resolve().parent.parent

_OWNER = """
import sys, time
from tests.postgres_server import TemporaryPostgres
server = TemporaryPostgres()
server.start()
print(server.directory, server.port, flush=True)
time.sleep(600)
"""


def _postmaster_running(directory: Path) -> bool:
    found = subprocess.run(["pgrep", "-f", f"postgres -D {directory}/data"], capture_output=True)
    return found.returncode == 0


def test_a_killed_test_run_leaves_no_postgres_behind() -> None:
    if not TemporaryPostgres().available:
        if os.environ.get("CI") or os.environ.get("BAPP_REQUIRE_POSTGRES"):
            pytest.fail("PostgreSQL binaries (initdb, pg_ctl) not found, and PostgreSQL tests are required")
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) not found")
    owner = subprocess.Popen(
        [sys.executable, "-c", _OWNER], cwd=REPO, stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        assert owner.stdout is not None
        directory = Path(owner.stdout.readline().split()[0])
        assert _postmaster_running(directory)
    finally:
        owner.send_signal(signal.SIGKILL)
        owner.wait()
    try:
        deadline = time.monotonic() + 30
        while (directory.exists() or _postmaster_running(directory)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _postmaster_running(directory)
        assert not directory.exists()
    finally:
        # a failure here must not itself leave the server it is about behind
        subprocess.run(["pkill", "-INT", "-f", f"postgres -D {directory}/data"], capture_output=True)

"""Exit 130: Ctrl-C (SIGINT) mid-command stops cleanly, says so in one line, and writes nothing — or, stopped
after its commit, says that what it committed stands."""

# ruff: noqa: F811  (pytest fixtures imported from calendly_fixtures are parameters by design)

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

from tests.cli.calendly_fixtures import (
    USER,
    cbapp,  # noqa: F401 (fixture)
    fake,  # noqa: F401 (fixture)
    fake_server,  # noqa: F401 (fixture)
    snapshot,
    sync_runs,
)
from tests.conftest import Bapp
from tests.fakes.calendly_server import FakeCalendly, make_event_type


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
    listing.write_text(json.dumps([make_event_type(i) for i in range(3000)]))
    # stderr is not read: the change lines (~300 kB) fill its pipe, so the sync waits there, committed
    process = bapp.popen("--verbose", "calendly", "sync", "--from-file", str(listing))
    deadline = time.monotonic() + 60
    while not sync_runs(bapp.database_url) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(sync_runs(bapp.database_url)) == 1, "the sync never committed"
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 143
    assert stderr.splitlines()[-1] == "Terminated; what was committed before the stop stands."
    assert stdout == ""  # the summary never came
    assert [(run["status"], run["created"]) for run in sync_runs(bapp.database_url)] == [("succeeded", 3000)]


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

"""`sessions slots --from` a past day: Calendly offers only future slots, and the command says so on stderr
(exit 0: what it lists is still right) instead of printing an empty or shortened listing without a word."""

# ruff: noqa: F811  (pytest fixtures imported from calendly_fixtures are parameters by design)

from __future__ import annotations

import datetime as dt

import pytest

from tests.cli.calendly_fixtures import (
    USER,
    cbapp,  # noqa: F401 (fixture)
    fake,  # noqa: F401 (fixture)
    fake_server,  # noqa: F401 (fixture)
)
from tests.conftest import Bapp
from tests.fakes.calendly_server import FakeCalendly

FREE = "free-discovery-call-0"
NOTE = "Calendly offers only future slots"


@pytest.fixture
def synced(cbapp: Bapp, fake: FakeCalendly) -> Bapp:
    result = cbapp("calendly", "sync", "--user", USER, "--json")
    assert result.exit_code == 0, result.stderr
    fake.clear_requests()
    return cbapp


def _asked(fake: FakeCalendly) -> list[str]:
    return [request.path for request in fake.requests if request.path == "/event_type_available_times"]


def test_a_window_wholly_in_the_past_says_why_it_is_empty(synced: Bapp, fake: FakeCalendly) -> None:
    result = synced("sessions", "slots", FREE, "--from", "2020-01-06", "--days", "7", "--json")
    assert result.exit_code == 0, result.stderr
    assert result.json() == []
    assert f"--from 2020-01-06: {NOTE}; none in that window." in result.stderr
    assert _asked(fake) == []  # nothing to ask Calendly for


def test_a_window_starting_in_the_past_lists_from_now_and_says_so(synced: Bapp, fake: FakeCalendly) -> None:
    yesterday = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).date().isoformat()
    result = synced("sessions", "slots", FREE, "--from", yesterday, "--days", "4", "--json")
    assert result.exit_code == 0, result.stderr
    starts = [dt.datetime.fromisoformat(record["start_time"]) for record in result.json()]
    assert starts and all(start > dt.datetime.now(dt.UTC) for start in starts)
    assert f"--from {yesterday}: {NOTE}; from now on." in result.stderr


def test_a_future_window_has_no_note(synced: Bapp) -> None:
    tomorrow = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).date().isoformat()
    result = synced("sessions", "slots", FREE, "--from", tomorrow, "--days", "2", "--json")
    assert result.exit_code == 0, result.stderr
    assert result.json() and NOTE not in result.stderr
    assert NOTE not in synced("sessions", "slots", FREE, "--json").stderr


def test_quiet_drops_the_note(synced: Bapp) -> None:
    result = synced("--quiet", "sessions", "slots", FREE, "--from", "2020-01-06", "--json")
    assert result.exit_code == 0 and NOTE not in result.stderr

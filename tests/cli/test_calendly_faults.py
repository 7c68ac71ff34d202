"""R1: every injected Calendly fault gives its documented exit code, a one-line reason, and no change.

Each case starts from a synced catalogue, changes the fake's catalogue (so a wrongly successful run would
write rows), injects the fault and runs the real CLI. A failed run's only write is its own `sync_runs`
row; everything else must be identical. Transient faults that clear are retried to success.
"""

# ruff: noqa: F811  (pytest fixtures imported from calendly_fixtures are parameters by design)

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any, Literal

import pytest

from tests.cli.calendly_fixtures import (
    TOKEN,
    USER,
    catalogue,
    cbapp,  # noqa: F401 (fixture)
    error_lines,
    fake,  # noqa: F401 (fixture)
    fake_server,  # noqa: F401 (fixture)
    snapshot,
    sync_runs,
)
from tests.conftest import Bapp, SeededCopies
from tests.fakes.calendly_server import FakeCalendly, make_event_type

Inject = Callable[[FakeCalendly], Any]

# (fault, exit code, a phrase of the one-line reason)
FATAL: dict[str, tuple[Inject, int, str]] = {
    "429 until retries run out": (
        lambda f: f.rate_limit_next("/event_types", reset=0, times=None),
        9,
        "rate limited (HTTP 429); gave up after 5 retries",
    ),
    "503 until retries run out": (
        lambda f: f.fail_next("/event_types", 503, times=None),
        9,
        "HTTP 503 Service Unavailable; gave up after 5 retries",
    ),
    "connection reset every time": (
        lambda f: f.reset_next("/event_types", times=None),
        9,
        "connection closed or reset before a complete response",
    ),
    "read timeout every time": (
        lambda f: f.delay_next("/event_types", seconds=1.0, times=None),
        9,
        "no response within the read timeout (0.3 s)",
    ),
    "truncated JSON": (lambda f: f.truncate_next("/event_types"), 9, "response is not valid JSON"),
    "schema-invalid item": (
        lambda f: f.invalid_item(page=2, index=3, field="duration", value="sixty"),
        9,
        "invalid response: collection[3].duration: Input should be a valid integer",
    ),
    # a rule's ValueError said as its own words, without pydantic's "Value error, " before them
    "an instant with no UTC form": (
        lambda f: f.invalid_item(page=2, index=3, field="updated_at", value="9999-12-31T23:59:59-14:00"),
        9,
        "invalid response: collection[3].updated_at: the instant is outside the calendar's years 1 to 9999 in UTC",
    ),
    "stale page token twice": (
        lambda f: f.stale_page_token("/event_types", times=None),
        9,
        "page token rejected again after restarting the listing",
    ),
    # one request's fault, the sync's first: no stray request of an earlier test can take it (calendly_fixtures.fake)
    "401": (lambda f: f.fail_next("/event_types", 401), 4, "Calendly refused the token (HTTP 401"),
    "403": (lambda f: f.fail_next("/event_types", 403), 4, "Calendly denied access to GET /event_types (HTTP 403"),
    "pagination loop": (lambda f: f.loop_pagination(at_page=3, back_to=2), 9, "pagination loop"),
    # valid JSON of the wrong shape: read as the last page, it made the types of pages 3 and on unbookable
    "a page that does not say what follows it": (
        lambda f: f.fail_next(
            "/event_types",
            200,
            body=json.dumps({"collection": catalogue(3), "pagination": {}}).encode(),
            with_page_token=True,
        ),
        9,
        "page 2 has no pagination.next_page; the listing's end is unknown",
    ),
    "foreign next_page": (
        lambda f: f.foreign_next_page(at_page=1, origin="http://calendly.evil.test:8080"),
        9,
        "links its next page to another origin (http://calendly.evil.test:8080",
    ),
    # an xn-- label that is no Punycode: reading its host raised idna's UnicodeError, not InvalidURL (exit 1)
    "next_page on a host that is no IDNA name": (
        lambda f: f.foreign_next_page(at_page=1, origin="http://xn--zz-"),
        9,
        "page 1 has a malformed next_page URL",
    ),
}

TRANSIENT: dict[str, Inject] = {
    "429 once": lambda f: f.rate_limit_next("/event_types", reset=0.05),
    "500/502/503 burst": lambda f: [f.fail_next("/event_types", status) for status in (500, 502, 503)],
    "connection reset once": lambda f: f.reset_next("/event_types"),
    "read timeout once": lambda f: f.delay_next("/event_types", seconds=1.0),
    "stale page token once": lambda f: f.stale_page_token("/event_types", times=1),
}


@pytest.fixture(scope="module")
def synced_copies(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeededCopies]:
    yield from SeededCopies.per_module(tmp_path_factory)


def _prepare(cbapp: Bapp, fake: FakeCalendly, copies: SeededCopies) -> None:
    """The synced catalogue (synced once per backend, a copy of that for each later case), then the fake's
    catalogue changed."""

    def sync() -> None:
        fake.set_event_types(catalogue(250))  # three pages of 100
        assert cbapp("calendly", "sync", "--user", USER).exit_code == 0

    copies.seed_or_copy(cbapp.database_url, sync)
    changed = catalogue(240)
    changed[0] = make_event_type(0, name="Renamed Discovery Call")
    fake.set_event_types([*changed, make_event_type(900)])
    fake.clear_requests()


@pytest.mark.parametrize("case", list(FATAL))
def test_fault_fails_the_run_with_its_exit_code_and_changes_nothing(
    case: str, cbapp: Bapp, fake: FakeCalendly, synced_copies: SeededCopies
) -> None:
    inject, exit_code, reason = FATAL[case]
    _prepare(cbapp, fake, synced_copies)
    before = snapshot(cbapp.database_url, skip=["sync_runs"])
    runs_before = len(sync_runs(cbapp.database_url))
    inject(fake)
    result = cbapp("calendly", "sync", "--user", USER, env={"BAPP_CALENDLY_TIMEOUT": "0.3"})
    assert result.exit_code == exit_code, result.stderr
    errors = error_lines(result.stderr)
    assert len(errors) == 1 and "\n" not in errors[0]
    assert reason in errors[0]
    assert [line for line in result.stderr.splitlines() if not line.startswith(("Error:", "Hint:"))] == []
    assert TOKEN not in result.stdout + result.stderr
    header, values = result.stdout.splitlines()
    assert dict(zip(header.split("\t"), values.split("\t"), strict=True))["status"] == "failed"
    assert snapshot(cbapp.database_url, skip=["sync_runs"]) == before
    runs = sync_runs(cbapp.database_url)
    assert len(runs) == runs_before + 1
    assert runs[-1]["status"] == "failed" and reason in runs[-1]["error"]
    assert (runs[-1]["created"], runs[-1]["updated"], runs[-1]["deactivated"]) == (0, 0, 0)
    fake.clear_faults()


@pytest.mark.parametrize("case", list(TRANSIENT))
def test_transient_fault_is_retried_and_the_run_succeeds_silently(
    case: str, cbapp: Bapp, fake: FakeCalendly, synced_copies: SeededCopies
) -> None:
    _prepare(cbapp, fake, synced_copies)
    TRANSIENT[case](fake)
    result = cbapp("calendly", "sync", "--user", USER, "--json", env={"BAPP_CALENDLY_TIMEOUT": "0.3"})
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    summary = result.json()
    assert (summary["created"], summary["updated"], summary["deactivated"]) == (1, 1, 10)
    assert fake.count("/event_types") > 3  # the fault really was hit and retried


def test_a_429_whose_reset_is_hours_away_fails_at_once_saying_when(
    cbapp: Bapp, fake: FakeCalendly, synced_copies: SeededCopies
) -> None:
    # a cron sync sat through every wait (5 of a minute each) to fail all the same: the reset was out of their reach
    _prepare(cbapp, fake, synced_copies)
    before = snapshot(cbapp.database_url, skip=["sync_runs"])
    fake.rate_limit_next("/event_types", reset=7200, times=None)
    result = cbapp("calendly", "sync", "--user", USER)
    assert result.exit_code == 9, result.stderr
    [error] = error_lines(result.stderr)
    assert error.startswith(
        "Error: Calendly GET /event_types: rate limited (HTTP 429); Calendly accepts again in 7200 s (at "
    ), error
    assert error.endswith(", past the 0.25 s of waits left: try again then"), error  # 5 waits of 0.05 s at most
    assert fake.count("/event_types") == 1  # not asked again: Calendly was sure to refuse
    assert snapshot(cbapp.database_url, skip=["sync_runs"]) == before
    assert sync_runs(cbapp.database_url)[-1]["status"] == "failed"
    fake.clear_faults()


# -- a trickled answer: httpx's read timeout bounds each read, bapp's deadline the whole attempt -------------------

# A 0.5 s read timeout: each attempt has 1 s in all (its connect timeout, 0.5 s, plus the read timeout), while the
# fake sends a byte every 0.05 s, so no single read ever times out and the answer would take minutes. Run as a real
# process: an attempt without a deadline hangs, and its process is killed at `timeout` (a clean failure).
TRICKLE_TIMEOUTS = {"BAPP_CALENDLY_TIMEOUT": "0.5"}
DEADLINE_REASON = "timed out: no complete response within 1 s (connect + read timeout)"


@pytest.mark.parametrize("part", ["head", "body"])
def test_an_answer_trickled_every_time_ends_at_the_deadline_with_exit_9(
    part: Literal["head", "body"], cbapp: Bapp, fake: FakeCalendly
) -> None:
    fake.trickle_next("/event_types", part, times=None)
    started = time.monotonic()
    result = cbapp.process("calendly", "sync", "--user", USER, env=TRICKLE_TIMEOUTS, timeout=45)
    elapsed = time.monotonic() - started
    assert result.exit_code == 9, result.stderr
    [error] = error_lines(result.stderr)
    assert error.startswith(f"Error: Calendly GET /event_types: {DEADLINE_REASON}"), error
    assert error.endswith("; gave up after 5 retries"), error
    assert TOKEN not in result.stdout + result.stderr
    assert fake.count("/event_types") == 6  # retried within the budget: a GET is safe to ask again
    assert elapsed < 6 * 1 + 15, elapsed  # six attempts of 1 s, their short back-offs, the process's start
    assert sync_runs(cbapp.database_url)[-1]["status"] == "failed"


def test_an_answer_trickled_once_is_asked_again(cbapp: Bapp, fake: FakeCalendly) -> None:
    fake.trickle_next("/event_types", "body")
    result = cbapp.process("calendly", "sync", "--user", USER, "--json", env=TRICKLE_TIMEOUTS, timeout=45)
    assert result.exit_code == 0, result.stderr
    assert result.json()["created"] == 12
    assert fake.count("/event_types") == 2

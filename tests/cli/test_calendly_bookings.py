"""`bapp calendly pull-bookings` against a real local fake Calendly, on both backends."""

# ruff: noqa: F811  (pytest fixtures imported from calendly_fixtures are parameters by design)

from __future__ import annotations

import datetime as dt
import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli.calendly_fixtures import (
    FAST_RETRIES,
    TOKEN,
    USER,
    catalogue,
    error_lines,
    fake_server,  # noqa: F401 (fixture)
    reset_for_test,
    snapshot,
    sync_runs,
)
from tests.conftest import REPO, Bapp, SeededCopies
from tests.fakes.calendly_server import API_ORIGIN, FakeCalendly, make_event_type, make_invitee, make_scheduled_event

SUMMARY_KEYS = [
    "run_id",
    "status",
    "dry_run",
    "fetched",
    "created",
    "updated",
    "cancelled",
    "rescheduled",
    "unchanged",
    "skipped",
    "warnings",
]
EXAMPLES = REPO / "examples" / "calendly"
# Days from now, so the default window (30 days back, no end) holds the realistic set.
TODAY = dt.datetime.now(dt.UTC).replace(hour=9, minute=0, second=0, microsecond=0)
# make_event_type's rotation: 0 free, 1 accelerate, 2 pivot, 3 play (pathway sessions), 4 specialized, 6 group
FREE, ACCELERATE, PIVOT, PLAY, SPECIALIZED, GROUP = 0, 1, 2, 3, 4, 6


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def type_uri(i: int) -> str:
    return f"{API_ORIGIN}/event_types/ET{i:08d}"


def scheduled(n: int, type_index: int, days: float, **overrides: Any) -> dict[str, Any]:
    return {**make_scheduled_event(n, type_uri(type_index), TODAY + dt.timedelta(days=days)), **overrides}


def person(
    event: dict[str, Any], j: int, answers: list[tuple[str, str]] | None = None, **overrides: Any
) -> dict[str, Any]:
    qa = None if answers is None else [{"question": q, "answer": a, "position": n} for n, (q, a) in enumerate(answers)]
    booked = TODAY - dt.timedelta(days=2, minutes=-j)
    return {**make_invitee(event["uri"], j, created_at=booked, questions_and_answers=qa), **overrides}


def cancelled(invitee: dict[str, Any], reason: str | None, **overrides: Any) -> dict[str, Any]:
    at = iso(TODAY - dt.timedelta(days=1))
    cancellation = {"canceled_by": invitee["name"], "reason": reason, "canceler_type": "invitee", "created_at": at}
    return {**invitee, "status": "canceled", "updated_at": at, "cancellation": cancellation, **overrides}


def realistic(fake: FakeCalendly) -> dict[str, str]:
    """Active, canceled and rescheduled invitees, multi-select and "other" answers, a group event, an event
    type bapp has never synced, and an event before the default window. Returns invitee URIs by role."""
    intro = scheduled(1, FREE, 3)
    olivia = person(intro, 1, [("Company name", "Grant & Co"), ("Which pathway interests you?", "Accelerate")])
    coaching = scheduled(2, ACCELERATE, 4)
    nina = person(coaching, 2, [("Company name", "Kowalski"), ("Topics", "Agents\nRAG\nMy own bakery bot")])
    dropped_event = scheduled(3, SPECIALIZED, 5, status="canceled")
    ravi = cancelled(person(dropped_event, 3, [("Company name", "Patel")]), "Found the answer elsewhere")
    old_event = scheduled(4, PLAY, 6, status="canceled")
    new_event = scheduled(5, PLAY, 9)
    moved = person(new_event, 5, [("Company name", "Okafor")], email="client4@example.com")
    sam_old = cancelled(person(old_event, 4, [("Company name", "Okafor")]), None, rescheduled=True)
    sam_old["new_invitee"] = moved["uri"]
    moved["old_invitee"] = sam_old["uri"]
    group = scheduled(6, GROUP, 10)
    crew = [person(group, 6), cancelled(person(group, 7), "Team changed plans")]
    unknown = scheduled(7, 99, 11)
    stranger = person(unknown, 8)
    ancient = scheduled(8, FREE, -45)
    for event, invitees in (
        (intro, [olivia]),
        (coaching, [nina]),
        (dropped_event, [ravi]),
        (old_event, [sam_old]),
        (new_event, [moved]),
        (group, crew),
        (unknown, [stranger]),
        (ancient, [person(ancient, 9)]),
    ):
        fake.add_scheduled_event(event, invitees)
    return {
        "olivia": olivia["uri"],
        "nina": nina["uri"],
        "ravi": ravi["uri"],
        "sam_old": sam_old["uri"],
        "sam_new": moved["uri"],
        "crew_in": crew[0]["uri"],
        "crew_out": crew[1]["uri"],
        "unknown": stranger["uri"],
    }


# the note of an invitee of the realistic set's type 99, which the pull asks Calendly for and is answered 404
UNFETCHED_99 = (
    f"unknown event type {type_uri(99)}; not added from Calendly (Calendly has no event type ET00000099); the next "
    "pull asks again, or `bapp calendly webhook retry --discard ID` gives the invitee up"
)


@pytest.fixture
def fake(fake_server: FakeCalendly) -> FakeCalendly:
    """The module's fake Calendly reset as calendly_fixtures.fake resets it, and with no scheduled events: those an
    earlier test added are not this test's."""
    reset_for_test(fake_server)
    fake_server.clear_scheduled_events()
    return fake_server


@pytest.fixture(scope="module")
def synced_copies(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeededCopies]:
    yield from SeededCopies.per_module(tmp_path_factory)


@pytest.fixture
def pbapp(bapp: Bapp, fake: FakeCalendly, synced_copies: SeededCopies) -> Bapp:
    """`bapp` pointed at the fake, with the fake's event types synced (the pull needs its session types). Synced over
    HTTP by the module's first such test of each backend; every later one gets a copy of that database, not a sync of
    its own (~0.3 CPU s each, 61 tests): the sync is not what these tests test (test_calendly.py does)."""
    bapp.env.update({"CALENDLY_API_KEY": TOKEN, "CALENDLY_API_BASE_URL": fake.base_url, **FAST_RETRIES})

    def sync() -> None:
        assert bapp("calendly", "sync", "--user", USER).exit_code == 0

    synced_copies.seed_or_copy(bapp.database_url, sync)
    fake.clear_requests()
    return bapp


def bookings_by_invitee(app: Bapp) -> dict[str, dict[str, Any]]:
    result = app("bookings", "list", "--json")
    assert result.exit_code == 0, result.stderr
    return {row["calendly_invitee_uri"]: row for row in result.json()}


def test_an_invitee_whose_uri_names_no_invitee_is_parked_not_stored_for_a_no_show_to_refuse(
    pbapp: Bapp, fake: FakeCalendly
) -> None:
    # stored, a later `bookings no-show` asked Calendly at that URI and refused it as the user's input (exit 6)
    event = scheduled(9, FREE, -1)
    good, odd = person(event, 1), person(event, 2, uri=f"{API_ORIGIN}/invitees/INV00000002")
    fake.add_scheduled_event(event, [good, odd])
    result = pbapp("calendly", "pull-bookings")
    assert result.exit_code == 3, result.stderr
    assert f"not applied: {odd['uri']}: invitee or event URI not one, or too long" in result.stderr
    assert list(bookings_by_invitee(pbapp)) == [good["uri"]]


def test_a_pull_turns_the_realistic_set_into_bookings_and_parks_what_it_cannot_apply(
    pbapp: Bapp, fake: FakeCalendly
) -> None:
    uris = realistic(fake)
    result = pbapp("calendly", "pull-bookings")
    # R8: the invitee of a type not synced is never skipped silently — named on stderr, parked, exit 3
    assert result.exit_code == 3, result.stderr
    assert result.stderr.splitlines()[:2] == [
        f"not applied: {uris['unknown']}: {UNFETCHED_99}",
        "Error: 1 of 8 invitees could not be applied; parked in the webhook inbox",
    ]
    header, values = result.stdout.splitlines()  # piped: TSV with a header
    assert header.split("\t") == SUMMARY_KEYS
    # 8 invitees in the window (the 45-day-old event is outside it): 7 created (Sam's old booking arrives
    # already cancelled), the unknown event type skipped
    assert values.split("\t")[1:] == ["succeeded", "false", "8", "7", "0", "0", "0", "0", "1", "0"]

    rows = bookings_by_invitee(pbapp)
    assert uris["unknown"] not in rows and len(rows) == 7
    olivia = rows[uris["olivia"]]
    assert (olivia["client"], olivia["pathway"], olivia["status"], olivia["source"]) == (
        "client1@example.com",
        "accelerate",
        "confirmed",
        "calendly",
    )
    assert olivia["builder"] is None  # the fake's owner is no bapp builder
    nina = rows[uris["nina"]]
    assert nina["pathway"] == "accelerate"  # the session's only linked pathway
    assert {"question": "Topics", "answer": ["Agents", "RAG", "My own bakery bot"], "position": 3} in nina[
        "custom_question_responses"
    ]
    assert rows[uris["ravi"]]["status"] == "cancelled"
    assert (rows[uris["sam_old"]]["status"], rows[uris["sam_new"]]["status"]) == ("cancelled", "confirmed")
    assert (rows[uris["crew_in"]]["status"], rows[uris["crew_out"]]["status"]) == ("confirmed", "cancelled")
    shown = pbapp("bookings", "show", rows[uris["ravi"]]["reference"], "--json").json()
    assert shown["start_time"] == iso(TODAY + dt.timedelta(days=5)).replace(".000000", "")
    client = pbapp("clients", "show", "client1@example.com", "--json").json()
    assert [enrolment["pathway"] for enrolment in client["enrolments"]] == ["accelerate"]

    listing = [request for request in fake.requests if request.path == "/scheduled_events"]
    assert len(listing) == 1
    params = listing[0].params
    assert (params["user"], params["sort"], "status" in params) == (USER, "start_time:asc", False)
    since = dt.datetime.fromisoformat(params["min_start_time"].replace("Z", "+00:00"))
    assert abs((dt.datetime.now(dt.UTC) - dt.timedelta(days=30) - since).total_seconds()) < 120
    invitee_requests = [request for request in fake.requests if request.path.endswith("/invitees")]
    assert len(invitee_requests) == 7 and all("status" not in request.params for request in invitee_requests)

    runs = sync_runs(pbapp.database_url)
    assert [(run["kind"], run["status"], run["created"], run["skipped"]) for run in runs] == [
        ("event_types", "succeeded", 12, 0),
        ("bookings", "succeeded", 7, 1),
    ]
    [parked] = pbapp("calendly", "webhook", "list", "--pending", "--json").json()
    assert (parked["invitee_uri"], parked["source"], parked["event"]) == (uris["unknown"], "pull", "invitee.created")


def test_a_second_pull_changes_nothing_and_verbose_reports_the_skip(pbapp: Bapp, fake: FakeCalendly) -> None:
    uris = realistic(fake)
    assert pbapp("calendly", "pull-bookings").exit_code == 3
    before = snapshot(pbapp.database_url, skip=["sync_runs", "webhook_deliveries"])
    again = pbapp("--verbose", "calendly", "pull-bookings", "--json")
    assert again.exit_code == 3, again.stderr
    summary = again.json()
    assert list(summary) == SUMMARY_KEYS
    assert (summary["created"], summary["updated"], summary["cancelled"], summary["unchanged"]) == (0, 0, 0, 7)
    assert summary["skipped"] == 1
    assert again.stderr.splitlines()[:2] == [
        f"skipped     {uris['unknown']}: {UNFETCHED_99}",
        f"not applied: {uris['unknown']}: {UNFETCHED_99}",
    ]
    assert snapshot(pbapp.database_url, skip=["sync_runs", "webhook_deliveries"]) == before
    [parked] = pbapp("calendly", "webhook", "list", "--json").json()  # parked once, however often it is met
    assert parked["status"] == "pending" and parked["attempts"] >= 2


def test_cancellations_and_reschedules_follow_on_the_next_pull(pbapp: Bapp, fake: FakeCalendly) -> None:
    first = scheduled(1, FREE, 3)
    stays, leaves, moves = person(first, 1), person(first, 2), person(first, 3)
    fake.add_scheduled_event(first, [stays, leaves, moves])
    assert pbapp("calendly", "pull-bookings").exit_code == 0
    # Calendly a day later: one invitee cancelled, one moved to a later event
    later = scheduled(2, FREE, 6)
    moved = person(later, 4, email="client3@example.com", old_invitee=moves["uri"])
    now_shown = [stays, cancelled(leaves, "Ill"), cancelled(moves, None, rescheduled=True, new_invitee=moved["uri"])]
    with FakeCalendly(event_types=catalogue()) as tomorrow:
        tomorrow.add_scheduled_event(first, now_shown)
        tomorrow.add_scheduled_event(later, [moved])
        result = pbapp(
            "--verbose", "calendly", "pull-bookings", "--json", env={"CALENDLY_API_BASE_URL": tomorrow.base_url}
        )
    assert result.exit_code == 0, result.stderr
    summary = result.json()
    assert (summary["created"], summary["cancelled"], summary["rescheduled"], summary["unchanged"]) == (1, 1, 1, 1)
    rows = bookings_by_invitee(pbapp)
    assert [rows[invitee["uri"]]["status"] for invitee in (stays, leaves, moves, moved)] == [
        "confirmed",
        "cancelled",
        "cancelled",
        "confirmed",
    ]
    lines = result.stderr.splitlines()
    assert sorted(line.split()[0] for line in lines) == ["cancelled", "created", "rescheduled"]
    assert any(line.startswith("created") and "rescheduled from BK-" in line for line in lines)


def test_an_invitee_of_an_event_type_no_sync_lists_is_applied_by_the_pull_fetching_that_type(
    pbapp: Bapp, fake: FakeCalendly
) -> None:
    # A type deleted in Calendly before bapp synced it (a backfill, or created and deleted between two syncs) is in
    # no listing, so no sync brings it: its invitees were parked for ever, every pull exiting 3 ("run sync first").
    fake.add_event_type(make_event_type(40, deleted_at=TODAY - dt.timedelta(days=1)))
    kept, lost = scheduled(1, 40, 3), scheduled(2, 41, 4)  # type 41: none in Calendly either (404), parked as before
    booked, stranded = person(kept, 1), person(lost, 2)
    fake.add_scheduled_event(kept, [booked])
    fake.add_scheduled_event(lost, [stranded])
    result = pbapp("calendly", "pull-bookings", "--json")
    assert result.exit_code == 3, result.stderr
    assert (result.json()["created"], result.json()["skipped"]) == (1, 1)
    assert result.stderr.splitlines()[0].startswith(
        f"not applied: {stranded['uri']}: unknown event type {type_uri(41)}"
    )
    row = bookings_by_invitee(pbapp)[booked["uri"]]
    assert (row["status"], row["session_title"]) == ("confirmed", "Getting Started Intro 40")
    assert (fake.count("/event_types/ET00000040"), fake.count("/event_types/ET00000041")) == (1, 1)
    shown = pbapp("sessions", "show", str(row["session_id"]), "--json").json()
    assert shown["bookable"] is False  # stored as Calendly has it: deleted

    fake.clear_requests()
    before = snapshot(pbapp.database_url, skip=["sync_runs", "webhook_deliveries"])
    again = pbapp("calendly", "pull-bookings", "--json")
    assert again.exit_code == 3 and again.json()["unchanged"] == 1, again.stderr
    assert snapshot(pbapp.database_url, skip=["sync_runs", "webhook_deliveries"]) == before
    assert fake.count("/event_types/ET00000040") == 0  # known now: not asked again


def test_an_invitee_whose_event_type_the_pull_cannot_fetch_is_parked_saying_why_not_to_sync_first(
    pbapp: Bapp, fake: FakeCalendly, tmp_path: Path
) -> None:
    # The pull asked Calendly for a type no sync lists and was answered 404 (deleted there) or 403 (the token may not
    # read it), and still told the user "run `bapp calendly sync` first", which brings neither. The parked invitee's
    # note and stderr now say what the fetch said, and the ways out the README documents for a parked invitee.
    lost, hidden = scheduled(1, 41, 3), scheduled(2, 42, 4)
    gone, withheld = person(lost, 1), person(hidden, 2)
    fake.add_scheduled_event(lost, [gone])
    fake.add_scheduled_event(hidden, [withheld])
    fake.fail_next("/event_types/ET00000042", 403)
    # one fetched that bapp cannot store (a slug longer than it keeps) said "sync first" too: a sync stores it no more
    fake.add_event_type(make_event_type(50, name="x" * 201))
    fake.add_scheduled_event(odd := scheduled(3, 50, 5), [unstorable := person(odd, 3)])
    result = pbapp("calendly", "pull-bookings")
    assert result.exit_code == 3, result.stderr
    said = {line.split(": ")[1]: line for line in result.stderr.splitlines() if line.startswith("not applied:")}
    way_out = "the next pull asks again, or `bapp calendly webhook retry --discard ID` gives the invitee up"
    assert (
        f"unknown event type {type_uri(41)}; not added from Calendly (Calendly has no event type" in said[gone["uri"]]
    )
    assert f"unknown event type {type_uri(42)}; not added from Calendly (" in said[withheld["uri"]]
    assert "403" in said[withheld["uri"]]
    assert f"unknown event type {type_uri(50)}; not added from Calendly (" in said[unstorable["uri"]]
    assert "slug: 201 characters; at most 200" in said[unstorable["uri"]]
    assert all(way_out in line and "sync` first" not in line for line in said.values()), said
    parked = pbapp("calendly", "webhook", "list", "--pending", "--json").json()
    assert {row["invitee_uri"] for row in parked} == set(said)
    # as the inbox keeps them: the pull's retry of what was parked before re-applied these too, at once, and their
    # note went back to "sync first" (and their count to 2) while the pull's stderr said a sync brings neither
    assert all(said[row["invitee_uri"]].endswith(row["last_error"]) and row["attempts"] == 1 for row in parked), parked
    # no fetch tried (a saved listing): the old advice stands, as a sync may bring the type
    (saved := tmp_path / "listing.json").write_text(json.dumps([{**lost, "invitees": [gone]}]))
    from_file = pbapp("calendly", "pull-bookings", "--from-file", str(saved))
    assert from_file.exit_code == 3, from_file.stderr
    assert from_file.stderr.splitlines()[0].endswith(f"{type_uri(41)}; run `bapp calendly sync` first")


def test_a_no_show_made_in_calendly_is_applied_by_a_pull_and_parked_as_one_when_it_cannot_be(
    pbapp: Bapp, fake: FakeCalendly
) -> None:
    # Marked in Calendly while no receiver ran (its delivery lost, or no receiver at all): the pull, which lists the
    # invitee with its no_show, is the one door left. It was read as a plain invitee: the booking stayed confirmed.
    def marked(event: dict[str, Any], j: int) -> dict[str, Any]:
        mark = {"uri": f"{API_ORIGIN}/invitee_no_shows/NS{j}", "created_at": iso(TODAY - dt.timedelta(hours=j))}
        return {**person(event, j), "no_show": mark}

    seen, unsynced = scheduled(1, FREE, -2), scheduled(2, 99, -2)
    absent, waiting = marked(seen, 1), marked(unsynced, 2)
    fake.add_scheduled_event(seen, [absent])
    fake.add_scheduled_event(unsynced, [waiting])
    result = pbapp("calendly", "pull-bookings", "--json")
    assert result.exit_code == 3, result.stderr
    summary = result.json()
    # the booking is created by the pull, marked on the way
    assert (summary["created"], summary["updated"], summary["unchanged"], summary["skipped"]) == (1, 0, 0, 1)
    assert bookings_by_invitee(pbapp)[absent["uri"]]["status"] == "no_show"
    # parked as the no-show it is: the invitee alone would come back from the inbox confirmed
    [parked] = pbapp("calendly", "webhook", "list", "--pending", "--json").json()
    assert (parked["invitee_uri"], parked["event"]) == (waiting["uri"], "invitee_no_show.created")

    before = snapshot(pbapp.database_url, skip=["sync_runs", "webhook_deliveries"])
    again = pbapp("calendly", "pull-bookings", "--json")
    assert again.exit_code == 3 and (again.json()["updated"], again.json()["unchanged"]) == (0, 1), again.stderr
    assert snapshot(pbapp.database_url, skip=["sync_runs", "webhook_deliveries"]) == before
    fake.add_event_type(make_event_type(99))  # the type synced: the sync's retry applies the parked no-show
    assert pbapp("calendly", "sync", "--user", USER).exit_code == 0
    assert bookings_by_invitee(pbapp)[waiting["uri"]]["status"] == "no_show"
    assert pbapp("calendly", "webhook", "list", "--pending", "--json").json() == []


def test_a_pull_counts_a_booking_it_creates_as_created_when_calendly_already_shows_it_a_no_show(
    pbapp: Bapp, fake: FakeCalendly
) -> None:
    # The summary's created counts the bookings a pull creates. One it created and marked at once was counted as
    # updated (created 0); a reschedule's new half so marked (new half first, so it cancels the old booking) was not
    # counted as rescheduled either.
    def marked(invitee: dict[str, Any]) -> dict[str, Any]:
        return {**invitee, "no_show": {"uri": f"{API_ORIGIN}/invitee_no_shows/NS1", "created_at": iso(TODAY)}}

    known_event, old_event = scheduled(1, FREE, -2), scheduled(3, FREE, 2)
    known, old = person(known_event, 1), person(old_event, 3)
    fake.add_scheduled_event(known_event, [known])
    fake.add_scheduled_event(old_event, [old])
    assert pbapp("calendly", "pull-bookings").exit_code == 0
    fresh_event, new_event = scheduled(2, FREE, -2), scheduled(4, FREE, -1)
    moved = person(new_event, 4, email="client3@example.com", old_invitee=old["uri"])
    with FakeCalendly(event_types=catalogue()) as later:  # the old event is not listed: the new half cancels it
        later.add_scheduled_event(known_event, [marked(known)])
        later.add_scheduled_event(fresh_event, [marked(person(fresh_event, 2))])
        later.add_scheduled_event(new_event, [marked(moved)])
        result = pbapp(
            "--verbose", "calendly", "pull-bookings", "--json", env={"CALENDLY_API_BASE_URL": later.base_url}
        )
    assert result.exit_code == 0, result.stderr
    summary = result.json()
    assert (summary["created"], summary["updated"], summary["rescheduled"], summary["unchanged"]) == (2, 1, 1, 0)
    assert [row["status"] for row in bookings_by_invitee(pbapp).values()].count("no_show") == 3


def test_every_page_is_pulled_even_after_a_stale_page_token(sqlite_template: Path, tmp_path: Path) -> None:
    # Paging is HTTP behaviour, the same on either backend, and 105 events cost 105 invitee requests: run once.
    database = tmp_path / "bapp.db"
    shutil.copyfile(sqlite_template, database)
    app = Bapp(f"sqlite:///{database}", tmp_path)
    with FakeCalendly(event_types=catalogue()) as fake:
        app.env.update({"CALENDLY_API_KEY": TOKEN, "CALENDLY_API_BASE_URL": fake.base_url, **FAST_RETRIES})
        assert app("calendly", "sync", "--user", USER).exit_code == 0
        for n in range(1, 106):
            event = scheduled(n, FREE, 1 + n / 24)
            fake.add_scheduled_event(event, [person(event, n)])
        fake.stale_page_token("/scheduled_events")
        fake.clear_requests()
        result = app("calendly", "pull-bookings", "--json")
        assert result.exit_code == 0, result.stderr
        assert (result.json()["fetched"], result.json()["created"]) == (105, 105)
        listing = [request for request in fake.requests if request.path == "/scheduled_events"]
    # page 1, page 2 refused as stale, then resumed from the last start time reached
    assert [("page_token" in r.params, r.params["min_start_time"]) for r in listing] == [
        (False, listing[0].params["min_start_time"]),
        (True, listing[0].params["min_start_time"]),
        (False, iso(TODAY + dt.timedelta(days=1 + 100 / 24))),
    ]
    assert len(bookings_by_invitee(app)) == 105


def test_dry_run_prints_the_plan_and_writes_nothing(pbapp: Bapp, fake: FakeCalendly) -> None:
    realistic(fake)
    before = snapshot(pbapp.database_url)
    result = pbapp("calendly", "pull-bookings", "--dry-run", "--json")
    assert result.exit_code == 3, result.stderr
    assert result.json() | {"run_id": None} == {
        "run_id": None,
        "status": "succeeded",
        "dry_run": True,
        "fetched": 8,
        "created": 7,
        "updated": 0,
        "cancelled": 0,
        "rescheduled": 0,
        "unchanged": 0,
        "skipped": 1,
        "warnings": 0,
    }
    lines = [
        line for line in result.stderr.splitlines() if not line.startswith(("not applied:", "Error:", "Hint:", "{"))
    ]
    assert lines[0] == "Dry run: 7 change(s) planned, nothing written."
    assert sorted(line.split()[0] for line in lines[1:]) == ["created"] * 7 + ["skipped"]
    assert "1 of 8 invitees could not be applied; would be parked (dry run)" in result.stderr
    assert snapshot(pbapp.database_url) == before  # not even a run record


def test_the_window_is_passed_to_calendly(pbapp: Bapp, fake: FakeCalendly) -> None:
    realistic(fake)
    result = pbapp(
        "--timezone",
        "Europe/London",
        "calendly",
        "pull-bookings",
        "--since",
        "2020-01-01",
        "--until",
        "2099-01-01T00:00Z",
    )
    assert result.exit_code == 3, result.stderr  # the realistic set's invitee of an unsynced type
    [listing] = [request for request in fake.requests if request.path == "/scheduled_events"]
    params = listing.params
    assert (params["min_start_time"], params["max_start_time"]) == (
        "2020-01-01T00:00:00.000000Z",  # London is on UTC in January
        "2099-01-01T00:00:00.000000Z",
    )
    assert result.stdout.splitlines()[1].split("\t")[3] == "9"  # the old event is inside this window


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("--since", "2030-02-01", "--until", "2030-01-01"), 6, "Error: until: must be later than --since"),
        # no --since given: the window starts at its default, which the message names rather than a flag not given
        (("--until", "2020-01-01"), 6, "Error: until: must be later than --since's default, 30 days ago"),
        # not a date and time: a bad flag value, exit 2 as CLI.md has it (it was 6, an invalid row's code)
        (("--since", "next tuesday"), 2, "Error: Invalid value for '--since': 'next tuesday' is not a valid date"),
        (("--user", USER, "--organization", "https://api.calendly.com/organizations/O"), 2, "Error: --user and"),
        # an empty scope was no scope: the pull ran for the token's own user
        (("--user", ""), 2, "Error: --user is empty"),
        (("--organization", " "), 2, "Error: --organization is empty"),
    ],
)
def test_bad_flags_are_refused_before_calendly_is_called(
    pbapp: Bapp, fake: FakeCalendly, args: tuple[str, ...], code: int, message: str
) -> None:
    result = pbapp("calendly", "pull-bookings", *args)
    assert result.exit_code == code
    assert result.stdout == ""
    assert error_lines(result.stderr)[0].startswith(message)
    assert fake.requests == []


@pytest.mark.parametrize(
    ("fault", "code", "reason"),
    [
        ("listing", 9, "Calendly GET /scheduled_events: HTTP 500"),
        ("invitees", 9, "/invitees: HTTP 503"),
        ("token", 4, "Calendly refused the token (HTTP 401"),
        # its invitees are asked for at its URI: one naming no scheduled event was exit 6, the user's input blamed
        ("event uri", 9, "invalid response: collection[7].uri: not a Calendly scheduled event URI"),
    ],
)
def test_a_failed_fetch_changes_nothing_and_is_recorded(
    pbapp: Bapp, fake: FakeCalendly, fault: str, code: int, reason: str
) -> None:
    realistic(fake)
    if fault == "listing":
        fake.fail_next("/scheduled_events", 500, times=None)
    elif fault == "invitees":
        fake.fail_next("/scheduled_events/EV00000005/invitees", 503, times=None)  # a late event's invitees
    elif fault == "event uri":
        fake.add_scheduled_event(scheduled(9, FREE, 12, uri=f"{API_ORIGIN}/event_types/EV00000009"))
    else:
        fake.fail_next("/scheduled_events", 401)
    before = snapshot(pbapp.database_url, skip=["sync_runs"])
    result = pbapp("calendly", "pull-bookings", "--json")
    assert result.exit_code == code
    assert json.loads(result.stdout)["status"] == "failed"
    [line] = error_lines(result.stderr)
    assert reason in line
    assert TOKEN not in result.stdout + result.stderr
    assert snapshot(pbapp.database_url, skip=["sync_runs"]) == before
    last = sync_runs(pbapp.database_url)[-1]
    assert (last["kind"], last["status"]) == ("bookings", "failed") and reason in last["error"]


def test_status_shows_both_kinds_of_run(pbapp: Bapp, fake: FakeCalendly) -> None:
    realistic(fake)
    assert pbapp("calendly", "pull-bookings").exit_code == 3  # one invitee parked
    runs = pbapp("calendly", "status", "--json").json()
    assert [(run["kind"], run["created"], run["skipped"]) for run in runs] == [
        ("bookings", 7, 1),
        ("event_types", 12, 0),
    ]
    only = pbapp("calendly", "status", "--kind", "bookings", "--json").json()
    assert [run["kind"] for run in only] == ["bookings"]
    table = pbapp("calendly", "status", "--format", "table")
    assert table.exit_code == 0 and "bookings" in table.stdout and "types" in table.stdout
    wrong = pbapp("calendly", "status", "--kind", "everything")
    assert wrong.exit_code == 2 and "--kind" in wrong.stderr


# -- saved listings -------------------------------------------------------------------------------


@pytest.fixture
def examples_bapp(bapp: Bapp) -> Bapp:
    """The examples' catalogue synced from its saved listing, and the demo's coach (no Calendly token)."""
    assert (
        bapp("builders", "add", "priya@coach.example", "--calendly-user", f"{API_ORIGIN}/users/BAWPRIYA0001").exit_code
        == 0
    )
    synced = bapp("calendly", "sync", "--from-file", str(EXAMPLES / "event_types.json"))
    assert synced.exit_code == 0, synced.stderr
    return bapp


def test_a_builder_s_calendly_user_written_another_way_is_still_recognised_as_owner_and_host(bapp: Bapp) -> None:
    """A builder's Calendly user stored with a trailing slash or its host in capitals (as `builders add` takes it,
    and as a database holds it) is the user Calendly names: the types it owns and the events it hosts are theirs."""
    typed = f"{API_ORIGIN}/users/BAWPRIYA0001/".replace("api.calendly.com", "API.Calendly.com")
    assert bapp("builders", "add", "priya@coach.example", "--calendly-user", typed).exit_code == 0
    assert bapp("calendly", "sync", "--from-file", str(EXAMPLES / "event_types.json")).exit_code == 0
    owned = [row["builder"] for row in bapp("sessions", "list", "--json").json() if row["builder"]]
    assert owned and set(owned) == {"priya@coach.example"}
    pulled = bapp("calendly", "pull-bookings", "--from-file", str(EXAMPLES / "scheduled_events.json"))
    assert pulled.exit_code == 3, pulled.stderr  # the invitee of a type never synced, as below
    olivia = next(row for row in bapp("bookings", "list", "--json").json() if row["client"].startswith("olivia"))
    assert olivia["builder"] == "priya@coach.example"


def test_the_example_listing_pulls_from_a_file(examples_bapp: Bapp) -> None:
    listing = str(EXAMPLES / "scheduled_events.json")
    result = examples_bapp("calendly", "pull-bookings", "--from-file", listing, "--json")
    assert result.exit_code == 3, result.stderr  # the listing's invitee of a type never synced is parked
    summary = result.json()
    assert (summary["fetched"], summary["created"], summary["skipped"], summary["warnings"]) == (7, 6, 1, 1)
    rows = examples_bapp("bookings", "list", "--json").json()
    olivia = next(row for row in rows if row["client"] == "olivia.grant@client.example")
    assert (olivia["pathway"], olivia["builder"]) == ("accelerate", "priya@coach.example")  # "🚀 Accelerate"
    nina = next(row for row in rows if row["client"] == "nina@client.example")
    # her 45.00 GBP Stripe payment, though the synced session costs 0.00 in bapp (no price set yet)
    assert [nina[key] for key in ("status", "payment_status", "amount", "currency")] == [
        "confirmed",
        "paid",
        "45.00",
        "GBP",
    ]
    assert summary["run_id"] == sync_runs(examples_bapp.database_url)[-1]["id"]
    again = examples_bapp("calendly", "pull-bookings", "--from-file", listing, "--json")
    assert (again.json()["unchanged"], again.json()["created"]) == (6, 0)
    runs = sync_runs(examples_bapp.database_url)
    assert [(run["kind"], run["source"]) for run in runs[-2:]] == [("bookings", "file"), ("bookings", "file")]


def test_a_bad_saved_listing_is_exit_6_with_every_place_named(examples_bapp: Bapp, tmp_path: Path) -> None:
    listing = json.loads((EXAMPLES / "scheduled_events.json").read_text())
    listing["collection"][1]["invitees"][0]["email"] = None
    listing["collection"][3]["start_time"] = "soon"
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(listing))
    before = snapshot(examples_bapp.database_url)
    result = examples_bapp("calendly", "pull-bookings", "--from-file", str(path))
    assert result.exit_code == 6
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0].startswith(
        f"Error: {path}: 2 invalid value(s) in the listing; first: collection[1].invitees[0] email"
    )
    assert lines[1:] == [
        "  row collection[1].invitees[0], field email: Input should be a valid string",
        "  row collection[3], field start_time: Input should be a valid datetime or date, input is too short",
    ]
    assert snapshot(examples_bapp.database_url) == before


def test_a_saved_listing_nested_too_deeply_is_exit_6_not_a_crash(examples_bapp: Bapp, tmp_path: Path) -> None:
    # crashed with exit 1: RecursionError from the JSON parser (a lone surrogate, which crashed the insert, is
    # now removed as it is read: test_calendly_control_text)
    path = tmp_path / "listing.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    before = snapshot(examples_bapp.database_url)
    result = examples_bapp("calendly", "pull-bookings", "--from-file", str(path))
    assert result.exit_code == 6, result.stderr
    assert result.stderr.splitlines()[0] == f"Error: {path}: not valid JSON (arrays or objects nested too deeply)"
    assert snapshot(examples_bapp.database_url) == before


def test_a_listing_on_stdin_with_a_window(examples_bapp: Bapp) -> None:
    content = (EXAMPLES / "scheduled_events.json").read_text()
    result = examples_bapp(
        "calendly",
        "pull-bookings",
        "--from-file",
        "-",
        "--since",
        "2031-05-07",
        "--until",
        "2031-05-09",
        "--json",
        stdin=content,
    )
    assert result.exit_code == 0, result.stderr
    assert (result.json()["fetched"], result.json()["created"]) == (2, 2)


# -- overlapping pulls (real processes) ----------------------------------------------------------


@pytest.mark.slow
def test_a_second_pull_exits_75_while_the_first_holds_the_lock(pbapp: Bapp, fake: FakeCalendly) -> None:
    realistic(fake)
    # Held 15 s, like the sync's test: the second pull must start, and give up, while the first still waits,
    # even when the machine is loaded (3 s was not enough under a parallel suite on 2 busy cores).
    held = fake.delay_next("/scheduled_events", seconds=15.0)  # released once the second pull has given up
    first = pbapp.popen("calendly", "pull-bookings", "--json", env={"BAPP_CALENDLY_TIMEOUT": "30"})
    deadline = time.monotonic() + 30
    while fake.count("/scheduled_events") < 1:
        assert time.monotonic() < deadline, "the first pull never reached Calendly"
        time.sleep(0.02)
    second = pbapp.process("calendly", "pull-bookings", "--json")
    assert second.exit_code == 75, second.stderr
    assert second.stdout == ""
    assert error_lines(second.stderr) == ["Error: another Calendly bookings pull is running"]
    assert first.poll() is None
    held.released.set()
    stdout, stderr = first.communicate(timeout=60)
    assert first.returncode == 3, stderr  # the realistic set's invitee of an unsynced type is parked
    assert json.loads(stdout)["created"] == 7
    assert [run["kind"] for run in sync_runs(pbapp.database_url)] == ["event_types", "bookings"]


@pytest.mark.slow
def test_a_pull_killed_mid_apply_leaves_the_database_as_it_was(pbapp: Bapp, fake: FakeCalendly) -> None:
    """R3: SIGKILL while the bookings are written but not committed (held in the run record's insert)."""
    import signal

    from tests.cli.test_calendly_processes import (
        _apply_in_progress,
        _install_slow_run_insert,
        _open_transactions,
        _remove_slow_run_insert,
        _wait_for,
    )

    realistic(fake)
    _install_slow_run_insert(pbapp.database_url)
    before = snapshot(pbapp.database_url)
    process = pbapp.popen("calendly", "pull-bookings", "--json")

    def applying() -> bool:
        assert process.poll() is None, process.communicate()  # a pull that ended says why, not "timed out"
        return _apply_in_progress(pbapp.database_url)

    _wait_for(applying, "the pull's write transaction to open")
    time.sleep(0.5)  # applying 8 invitees takes milliseconds: by now the pull sits in the slow run insert
    assert process.poll() is None, process.communicate()
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=30)
    assert process.returncode == -signal.SIGKILL
    if pbapp.database_url.startswith("postgresql"):
        _wait_for(lambda: _open_transactions(pbapp.database_url) == 0, "the server to roll the dead client back")
    assert snapshot(pbapp.database_url) == before  # no booking, client, enrolment, audit row or run record
    _remove_slow_run_insert(pbapp.database_url)
    after = pbapp("calendly", "pull-bookings", "--json")  # and the lock died with the process
    assert after.exit_code == 3, after.stderr  # applied, but for the realistic set's unsynced type
    assert after.json()["created"] == 7


@pytest.mark.parametrize("stdout", ["closed pipe", "/dev/full"])
def test_a_pull_leaving_invitees_parked_is_exit_3_naming_them_with_its_output_gone(
    pbapp: Bapp, fake: FakeCalendly, stdout: str
) -> None:
    # a run that ends 3 must say so, and what it parked, whatever became of its rows' reader (141) or disk (74)
    uris = realistic(fake)
    result = pbapp.process("calendly", "pull-bookings", "--json", stdout=stdout)
    assert result.exit_code == 3, result.stderr
    assert result.stderr.splitlines()[:2] == [
        f"not applied: {uris['unknown']}: {UNFETCHED_99}",
        "Error: 1 of 8 invitees could not be applied; parked in the webhook inbox",
    ]
    [parked] = pbapp("calendly", "webhook", "list", "--pending", "--json").json()
    assert parked["invitee_uri"] == uris["unknown"]

"""`bapp calendly whoami|sync|status` against a real local fake Calendly, on both backends."""

# ruff: noqa: F811  (pytest fixtures imported from calendly_fixtures are parameters by design)

from __future__ import annotations

import gc
import json
import weakref
from pathlib import Path
from typing import Any

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
from tests.conftest import Bapp
from tests.fakes.calendly_server import DEFAULT_ORGANIZATION_URI, FakeCalendly, make_event_type

SUMMARY_KEYS = [
    "run_id",
    "status",
    "dry_run",
    "fetched",
    "created",
    "updated",
    "unchanged",
    "deactivated",
    "reactivated",
]
STATUS_KEYS = [
    "run_id",
    "started_at",
    "finished_at",
    "status",
    "source",
    "fetched",
    "created",
    "updated",
    "unchanged",
    "deactivated",
    "reactivated",
    "error",
    "kind",  # added with bookings pulls, which share `calendly status`
    "skipped",
]
# Row bookkeeping that legitimately differs between two databases holding the same catalogue.
VOLATILE = {"created_at", "updated_at", "last_synced_at"}


def test_whoami_prints_the_token_user(cbapp: Bapp, fake: FakeCalendly) -> None:
    result = cbapp("calendly", "whoami", "--json")
    assert result.exit_code == 0, result.stderr
    assert result.json() == {
        "uri": USER,
        "name": "Ada Builder",
        "email": "ada@example.com",
        "organization": DEFAULT_ORGANIZATION_URI,
    }
    assert result.stderr == ""
    assert fake.requests[-1].headers["authorization"] == f"Bearer {TOKEN}"


def test_a_token_user_without_a_uri_is_calendly_s_answer_failing_not_bad_input(cbapp: Bapp, fake: FakeCalendly) -> None:
    # the token's user scopes the listing: an empty one was exit 6, "a Calendly listing needs a user or an
    # organization URI"
    fake.fail_next("/users/me", 200, body=json.dumps({"resource": {**fake.user, "uri": ""}}).encode())
    result = cbapp("calendly", "sync")
    assert result.exit_code == 9, result.stderr
    assert "GET /users/me: invalid response: resource.uri" in error_lines(result.stderr)[0]


def test_no_token_is_exit_4_naming_where_the_token_goes(cbapp: Bapp) -> None:
    result = cbapp("calendly", "whoami", env={"CALENDLY_API_KEY": None})
    assert result.exit_code == 4
    assert result.stdout == ""
    assert error_lines(result.stderr) == ["Error: no Calendly token configured"]
    assert "CALENDLY_API_KEY" in result.stderr and "calendly.token_file" in result.stderr


def test_token_file_is_read_and_never_echoed(cbapp: Bapp, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("wrong-token-from-a-file\n")
    (tmp_path / "config.toml").write_text(f'[calendly]\ntoken_file = "{token_file}"\n')
    result = cbapp("calendly", "sync", "--user", USER, "--json", env={"CALENDLY_API_KEY": None})
    assert result.exit_code == 4
    assert "refused the token" in result.stderr
    assert "wrong-token-from-a-file" not in result.stdout + result.stderr
    assert json.loads(result.stdout)["status"] == "failed"


def test_a_failed_sync_whose_reader_is_gone_still_exits_with_its_own_error(cbapp: Bapp, fake: FakeCalendly) -> None:
    # a failed run's summary goes to stdout before its error; a cron job's `| logger` gone, that write's closed
    # pipe took the error's place: exit 141 and nothing said, where Calendly's failure is exit 9 and its words
    fake.fail_next("/event_types", 500, times=None)
    process = cbapp.popen("calendly", "sync", "--user", USER, "--json")
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # before the run writes anything
    stderr = process.stderr.read()
    assert process.wait(timeout=60) == 9, stderr
    assert error_lines(stderr) == [
        "Error: Calendly GET /event_types: HTTP 500 Internal Server Error; gave up after 5 retries"
    ]


def test_sync_creates_the_catalogue_silently(cbapp: Bapp, fake: FakeCalendly) -> None:
    result = cbapp("calendly", "sync", "--user", USER)
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""  # cron-silent
    header, values = result.stdout.splitlines()  # piped: TSV with a header
    assert header.split("\t") == SUMMARY_KEYS
    assert values.split("\t")[1:] == ["succeeded", "false", "12", "12", "0", "0", "0", "0"]
    listing = [request for request in fake.requests if request.path == "/event_types"]
    assert listing and all(request.params["user"] == USER and "active" not in request.params for request in listing)
    sessions = cbapp("sessions", "list", "--all", "--json").json()
    assert sorted(item["calendly_uri"] for item in sessions) == sorted(item["uri"] for item in catalogue())
    runs = sync_runs(cbapp.database_url)
    assert [(run["status"], run["source"], run["created"]) for run in runs] == [("succeeded", "api", 12)]


def test_a_second_sync_changes_no_row(cbapp: Bapp, fake: FakeCalendly) -> None:
    assert cbapp("calendly", "sync", "--user", USER).exit_code == 0
    before = snapshot(cbapp.database_url, skip=["sync_runs"])
    result = cbapp("calendly", "sync", "--user", USER, "--json")
    assert result.exit_code == 0, result.stderr
    summary = result.json()
    assert list(summary) == SUMMARY_KEYS
    assert (summary["unchanged"], summary["created"], summary["updated"]) == (12, 0, 0)
    assert snapshot(cbapp.database_url, skip=["sync_runs"]) == before
    assert len(sync_runs(cbapp.database_url)) == 2


def test_types_whose_slug_is_taken_settle_in_one_sync_over_pages_and_a_failed_page_writes_none(
    cbapp: Bapp, fake: FakeCalendly
) -> None:
    """A new type whose Calendly slug is taken is planned, and written, after the listing's last page (its holder
    may give the slug up later in the listing): over two pages of the API (SQLite stages the first page's new rows as
    it arrives, PostgreSQL writes every row after the last), a failing second page writes none of it, a dry run
    plans what the sync then writes, and the next sync changes nothing."""

    def typed(n: int, slug: str) -> dict[str, Any]:
        return {**make_event_type(n, name=f"Type {n}"), "slug": slug}

    assert cbapp("sessions", "add", "--title", "Local", "--slug", "held", "--duration", "30").exit_code == 0
    fake.set_event_types([typed(n, f"s{n}") for n in range(150)])
    assert cbapp("calendly", "sync", "--user", USER).exit_code == 0
    # on page 1, new types wanting the slug type 149 gives up on page 2, that slug numbered, and the local type's,
    # after one whose slug is free (staged on SQLite)
    wanted = [typed(203, "fresh"), typed(200, "s149"), typed(201, "s149-2"), typed(202, "held")]
    fake.set_event_types([*wanted, *(typed(n, f"s{n}") for n in range(149)), typed(149, "moved")])
    before = snapshot(cbapp.database_url, skip=["sync_runs"])
    fake.fail_next("/event_types", 500, times=None, with_page_token=True)
    assert cbapp("calendly", "sync", "--user", USER).exit_code == 9
    assert snapshot(cbapp.database_url, skip=["sync_runs"]) == before
    fake.clear_faults()
    dry = cbapp("calendly", "sync", "--user", USER, "--dry-run")
    real = cbapp("--verbose", "calendly", "sync", "--user", USER, "--json")
    assert real.exit_code == 0, real.stderr
    assert (real.json()["created"], real.json()["updated"], real.json()["unchanged"]) == (4, 1, 149)
    assert dry.stderr.splitlines()[1:] == real.stderr.splitlines()
    slugs = {item["title"]: item["slug"] for item in cbapp("sessions", "list", "--json").json()}
    assert [slugs[f"Type {n}"] for n in (203, 200, 201, 202, 149)] == ["fresh", "s149", "s149-2", "held-2", "moved"]
    again = cbapp("calendly", "sync", "--user", USER, "--dry-run", "--json").json()
    assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, 154)


def test_verbose_lists_each_change_and_dry_run_writes_nothing(cbapp: Bapp, fake: FakeCalendly) -> None:
    assert cbapp("calendly", "sync", "--user", USER).exit_code == 0
    fake.set_event_types([make_event_type(0, name="Free Discovery Call (renamed)"), *catalogue()[1:10]])
    fake.add_event_type(make_event_type(40))
    before = snapshot(cbapp.database_url)
    dry = cbapp("calendly", "sync", "--user", USER, "--dry-run", "--json")
    assert dry.exit_code == 0, dry.stderr
    assert dry.json() | {"run_id": None} == {
        "run_id": None,
        "status": "succeeded",
        "dry_run": True,
        "fetched": 11,
        "created": 1,
        "updated": 1,
        "unchanged": 9,
        "deactivated": 2,
        "reactivated": 0,
    }
    lines = dry.stderr.splitlines()
    assert lines[0] == "Dry run: 4 change(s) planned, nothing written."
    assert sorted(line.split()[0] for line in lines[1:]) == ["create", "deactivate", "deactivate", "update"]
    assert any("ET00000000" in line and "title" in line for line in lines)
    assert snapshot(cbapp.database_url) == before  # not even a run record
    real = cbapp("--verbose", "calendly", "sync", "--user", USER, "--json")
    assert real.exit_code == 0
    assert sorted(line.split()[0] for line in real.stderr.splitlines()) == [
        "create",
        "deactivate",
        "deactivate",
        "update",
    ]
    assert real.json()["run_id"] is not None


def test_from_file_and_api_give_the_same_catalogue(cbapp: Bapp, fake: FakeCalendly, tmp_path: Path) -> None:
    listing = tmp_path / "listing.json"
    pages = [{"collection": catalogue()[:5], "pagination": {}}, {"collection": catalogue()[5:], "pagination": {}}]
    listing.write_text(json.dumps(pages))
    from_file = cbapp("calendly", "sync", "--from-file", str(listing), "--json", env={"CALENDLY_API_KEY": None})
    assert from_file.exit_code == 0, from_file.stderr
    assert from_file.json()["created"] == 12
    assert fake.requests == []  # no token needed, nothing fetched
    first = cbapp("sessions", "list", "--all", "--json").json()
    from_api = cbapp("calendly", "sync", "--user", USER, "--json")
    assert from_api.exit_code == 0
    assert from_api.json()["unchanged"] == 12  # the API listing matches what the file produced, field for field
    assert cbapp("sessions", "list", "--all", "--json").json() == first
    assert [run["source"] for run in sync_runs(cbapp.database_url)] == ["file", "api"]


def test_from_stdin(cbapp: Bapp) -> None:
    result = cbapp("calendly", "sync", "--from-file", "-", "--json", stdin=json.dumps(catalogue(3)))
    assert result.exit_code == 0, result.stderr
    assert result.json()["created"] == 3


def test_a_bad_listing_file_is_exit_6_and_not_a_run(cbapp: Bapp, tmp_path: Path) -> None:
    raw = catalogue(3)
    raw[2]["duration"] = "sixty"
    listing = tmp_path / "bad.json"
    listing.write_text(json.dumps(raw))
    before = snapshot(cbapp.database_url)
    result = cbapp("calendly", "sync", "--from-file", str(listing))
    assert result.exit_code == 6
    assert result.stdout == ""
    assert error_lines(result.stderr) == [
        f"Error: {listing}: 1 invalid value(s) in the listing; first: [2] duration: "
        "Input should be a valid integer, unable to parse string as an integer"
    ]
    assert snapshot(cbapp.database_url) == before
    missing = cbapp("calendly", "sync", "--from-file", str(tmp_path / "nope.json"))
    assert missing.exit_code == 6 and "cannot read" in missing.stderr


def test_a_run_in_a_process_that_goes_on_leaves_its_objects_collectable(cbapp: Bapp, tmp_path: Path) -> None:
    # every run froze all the process had alive as it ended (gc.freeze): in a process that goes on (this one, a program
    # calling main), a cycle alive across a run was never collected once dropped, so memory grew with each run
    class Kept:
        itself: Kept

    kept = Kept()
    kept.itself = kept  # a cycle: reference counting alone never frees it
    collected = weakref.ref(kept)
    listing = tmp_path / "listing.json"
    listing.write_text(json.dumps(catalogue(3)))
    assert cbapp("calendly", "sync", "--from-file", str(listing)).exit_code == 0
    del kept
    gc.collect()
    assert collected() is None, "the run froze the caller's objects"


def test_scope_comes_from_flags_then_config_then_the_token_user(
    cbapp: Bapp, fake: FakeCalendly, tmp_path: Path
) -> None:
    assert cbapp("calendly", "sync").exit_code == 0
    assert [request.path for request in fake.requests][:2] == ["/users/me", "/event_types"]
    assert fake.requests[1].params["user"] == USER
    fake.clear_requests()
    (tmp_path / "config.toml").write_text(f'[calendly]\norganization = "{DEFAULT_ORGANIZATION_URI}"\n')
    assert cbapp("calendly", "sync").exit_code == 0
    assert fake.requests[0].path == "/event_types"
    assert fake.requests[0].params["organization"] == DEFAULT_ORGANIZATION_URI
    fake.clear_requests()
    assert cbapp("calendly", "sync", "--user", USER).exit_code == 0
    assert "organization" not in fake.requests[0].params and fake.requests[0].params["user"] == USER
    both = cbapp("calendly", "sync", "--user", USER, "--organization", DEFAULT_ORGANIZATION_URI)
    assert both.exit_code == 2 and "cannot be combined" in both.stderr
    fake.clear_requests()
    empty = cbapp("calendly", "sync", "--organization", "")  # it synced the configured organization's
    assert empty.exit_code == 2 and empty.stderr.startswith("Error: --organization is empty")
    assert fake.requests == []


def test_a_user_sync_makes_only_that_users_types_vanish(cbapp: Bapp, fake: FakeCalendly) -> None:
    """From a user's listing only that user's own types vanish: another user's are not in it, and a team's are
    listed for its members only (two members' syncs would flip it); an organization's listing covers every type."""
    other, team = "https://api.calendly.com/users/OTHER", "https://api.calendly.com/teams/T1"
    fake.set_event_types([*catalogue(3), make_event_type(5, owner_uri=other), make_event_type(7, owner_uri=team)])
    assert cbapp("calendly", "sync", "--organization", DEFAULT_ORGANIZATION_URI).exit_code == 0

    def bookable() -> dict[str, bool]:
        listed = cbapp("sessions", "list", "--all", "--json").json()
        return {item["calendly_uri"].rsplit("/", 1)[1]: item["bookable"] for item in listed}

    assert bookable() == dict.fromkeys(["ET00000000", "ET00000001", "ET00000002", "ET00000005", "ET00000007"], True)
    fake.set_event_types([make_event_type(0), make_event_type(2), make_event_type(5, owner_uri=other)])
    result = cbapp("calendly", "sync", "--user", USER, "--json")
    assert result.exit_code == 0, result.stderr
    assert result.json()["deactivated"] == 1  # its own ET00000001, not the team's ET00000007
    assert bookable() == {
        **{"ET00000000": True, "ET00000001": False, "ET00000002": True},
        **{"ET00000005": True, "ET00000007": True},
    }
    fake.set_event_types([make_event_type(0), make_event_type(2)])
    mine_again = cbapp("calendly", "sync", "--json")  # the token's own user: still not the other's scope
    assert (mine_again.exit_code, mine_again.json()["deactivated"]) == (0, 0)
    assert bookable()["ET00000005"] is True
    everyone = cbapp("calendly", "sync", "--organization", DEFAULT_ORGANIZATION_URI, "--json")
    assert (everyone.exit_code, everyone.json()["deactivated"]) == (0, 2)  # the other user's and the team's
    assert bookable() == {
        **{"ET00000000": True, "ET00000001": False, "ET00000002": True},
        **{"ET00000005": False, "ET00000007": False},
    }
    fake.set_event_types([])
    theirs = cbapp("calendly", "sync", "--user", other, "--json")  # nothing of theirs is listed any more
    assert (theirs.exit_code, theirs.json()["deactivated"]) == (0, 0)


@pytest.mark.parametrize(
    "typed",
    [f"{USER}/", f"  {USER}  ", USER.replace("https://api.calendly.com", "HTTPS://API.Calendly.COM")],
    ids=["trailing-slash", "spaces", "scheme-and-host-case"],
)
def test_a_user_typed_another_way_is_the_same_user(cbapp: Bapp, fake: FakeCalendly, tmp_path: Path, typed: str) -> None:
    """--user and calendly.user name the user Calendly names: a trailing slash, spaces or the case of the scheme and
    host neither ask Calendly for another user's listing nor spare the user's own types that left it."""
    fake.set_event_types(catalogue(3))
    assert cbapp("calendly", "sync", "--user", USER).exit_code == 0
    fake.set_event_types(catalogue(2))
    flagged = cbapp("calendly", "sync", "--user", typed, "--dry-run", "--json")
    assert (flagged.exit_code, flagged.json()["deactivated"]) == (0, 1), flagged.stderr
    # (spaces around a URL in the config file are refused as no URL at all, exit 4)
    (tmp_path / "config.toml").write_text(f'[calendly]\nuser = "{typed.strip()}"\n')
    configured = cbapp("calendly", "sync", "--json")
    assert (configured.exit_code, configured.json()["deactivated"]) == (0, 1), configured.stderr
    assert {request.params["user"] for request in fake.requests if request.path == "/event_types"} == {USER}


def test_a_scope_user_that_is_no_user_uri_is_refused_before_any_request(
    cbapp: Bapp, fake: FakeCalendly, tmp_path: Path
) -> None:
    """An organization's or a team's URI (or no URI) as --user listed nothing of the user's: exit 2 for the flag,
    exit 4 for the config key, each naming the value, with nothing asked of Calendly and no run recorded."""
    for value in (DEFAULT_ORGANIZATION_URI, "https://api.calendly.com/teams/T1", "USER0001", f"{USER}?x=1"):
        flagged = cbapp("calendly", "sync", "--user", value)
        assert flagged.exit_code == 2, flagged.stderr
        assert error_lines(flagged.stderr)[0] == f"Error: --user: {value!r} is not a Calendly user URI"
        pulled = cbapp("calendly", "pull-bookings", "--user", value)
        assert pulled.exit_code == 2 and "is not a Calendly user URI" in pulled.stderr, pulled.stderr
    config = tmp_path / "config.toml"
    config.write_text(f'[calendly]\nuser = "{DEFAULT_ORGANIZATION_URI}"\n')
    configured = cbapp("calendly", "sync")
    assert configured.exit_code == 4, configured.stderr
    assert f"key calendly.user: {DEFAULT_ORGANIZATION_URI!r} is not a Calendly user URI" in configured.stderr
    config.write_text("")
    refused = cbapp("config", "set", "calendly.user", DEFAULT_ORGANIZATION_URI)
    assert refused.exit_code == 6 and config.read_text() == "", refused.stderr
    assert fake.requests == [] and sync_runs(cbapp.database_url) == []
    # a password in the URI is masked, as every URL bapp shows is (the config key's always was)
    with_password = USER.replace("https://", "https://me:s3cret@")
    flagged = cbapp("calendly", "sync", "--user", with_password)
    assert flagged.exit_code == 2 and "me:****@" in flagged.stderr and "s3cret" not in flagged.stderr, flagged.stderr


def test_a_bad_rule_in_the_config_is_exit_4_before_any_request(cbapp: Bapp, fake: FakeCalendly, tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text('[[calendly.rules]]\npattern = "("\ncategory = "free"\n')
    result = cbapp("calendly", "sync", "--user", USER)
    assert result.exit_code == 4
    assert error_lines(result.stderr)[0].startswith("Error: calendly.rules[1].pattern: not a valid regular expression")
    assert fake.requests == []
    assert sync_runs(cbapp.database_url) == []


@pytest.mark.parametrize(
    "rule",
    [
        "{long} = 1",
        'category = "{long}"',
        'category = "free"\nfield = "{long}"',
        'category = "free"\nprice = "{long}"',  # parse_price and parse_currency, the same at every door
        'category = "free"\ncurrency = "{long}"',
    ],
)
def test_a_long_bad_value_in_a_rule_is_echoed_cut(cbapp: Bapp, fake: FakeCalendly, tmp_path: Path, rule: str) -> None:
    # a rule's unknown key, category or field came back whole: 5,000 characters filled the terminal
    (tmp_path / "config.toml").write_text('[[calendly.rules]]\npattern = "x"\n' + rule.format(long="x" * 5000) + "\n")
    result = cbapp("calendly", "sync", "--user", USER)
    assert result.exit_code == 4 and error_lines(result.stderr)[0].startswith("Error: calendly.rules[1]")
    assert "x" * 61 not in result.stderr and "…" in result.stderr, result.stderr
    assert fake.requests == []


def test_config_rules_classify_new_types(cbapp: Bapp, fake: FakeCalendly, tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(
        "[[calendly.rules]]\n"
        'pattern = "architecture"\ncategory = "specialized"\nrequires_auth = false\nprice = "120.00"\n'
        "[[calendly.rules]]\n"
        'pattern = "creative"\ncategory = "pathway"\npathways = ["play", "pivot"]\n'
    )
    assert cbapp("calendly", "sync", "--user", USER).exit_code == 0
    sessions = {item["calendly_uri"].rsplit("/", 1)[1]: item for item in cbapp("sessions", "list", "--json").json()}
    review = sessions["ET00000004"]
    assert (review["category"], review["requires_auth"], review["price"]) == ("specialized", False, "120.00")
    assert sessions["ET00000003"]["pathways"] == ["pivot", "play"]
    assert sessions["ET00000000"]["category"] == "free"  # no rule: built-in default


def test_reclassify_relinks_known_types_beside_new_ones(cbapp: Bapp, fake: FakeCalendly, tmp_path: Path) -> None:
    """The command's write (on SQLite from rows and links staged while the pages came, services/sync.py)
    replaces a reclassified type's links, links a new type, and leaves the others' links as they were."""
    assert cbapp("calendly", "sync", "--user", USER).exit_code == 0

    def links() -> dict[str, list[str]]:
        listed = cbapp("sessions", "list", "--json").json()
        return {item["calendly_uri"].rsplit("/", 1)[1]: item["pathways"] for item in listed}

    before = links()
    assert before["ET00000003"] == ["play"] and before["ET00000002"] == ["pivot"]  # the built-in defaults
    fake.set_event_types([*catalogue(), make_event_type(13)])  # "Accelerate Mastery Deep Dive"
    (tmp_path / "config.toml").write_text(
        '[[calendly.rules]]\npattern = "creative"\ncategory = "pathway"\npathways = ["play", "pivot"]\n'
    )
    result = cbapp("calendly", "sync", "--user", USER, "--reclassify", "--json")
    assert result.exit_code == 0, result.stderr
    assert (result.json()["created"], result.json()["updated"]) == (1, 2)  # ET00000003 and ET00000010
    after = links()
    assert after["ET00000003"] == after["ET00000010"] == ["pivot", "play"]
    assert after["ET00000013"] == ["accelerate"]
    assert {uri: slugs for uri, slugs in after.items() if uri not in ("ET00000003", "ET00000010", "ET00000013")} == {
        uri: slugs for uri, slugs in before.items() if uri not in ("ET00000003", "ET00000010")
    }
    again = cbapp("calendly", "sync", "--user", USER, "--reclassify", "--json")
    assert (again.json()["updated"], again.json()["unchanged"]) == (0, 13)
    assert links() == after


def test_empty_listing_guard(cbapp: Bapp, fake: FakeCalendly) -> None:
    assert cbapp("calendly", "sync", "--user", USER).exit_code == 0
    fake.set_event_types([])
    before = snapshot(cbapp.database_url, skip=["sync_runs"])
    refused = cbapp("calendly", "sync", "--user", USER, "--json")
    assert refused.exit_code == 8
    assert error_lines(refused.stderr) == [
        "Error: the Calendly listing is empty but 12 synced session types are still listed; "
        "refusing to make them all unbookable"
    ]
    assert "--allow-empty" in refused.stderr
    assert refused.json()["status"] == "failed"
    assert snapshot(cbapp.database_url, skip=["sync_runs"]) == before
    runs = sync_runs(cbapp.database_url)
    assert (runs[-1]["status"], runs[-1]["fetched"]) == ("failed", 0)
    assert "listing is empty" in runs[-1]["error"]
    allowed = cbapp("calendly", "sync", "--user", USER, "--allow-empty", "--json")
    assert allowed.exit_code == 0 and allowed.json()["deactivated"] == 12
    assert cbapp("sessions", "list", "--json").json() == []


def test_status_lists_recent_runs_newest_first(cbapp: Bapp, fake: FakeCalendly) -> None:
    empty = cbapp("calendly", "status", "--json")
    assert empty.exit_code == 0 and empty.json() == []
    assert cbapp("calendly", "sync", "--user", USER).exit_code == 0
    fake.fail_next("/event_types", 401)
    assert cbapp("calendly", "sync", "--user", USER).exit_code == 4
    runs = cbapp("calendly", "status", "--json").json()
    assert [list(run) for run in runs] == [STATUS_KEYS, STATUS_KEYS]
    assert [run["status"] for run in runs] == ["failed", "succeeded"]
    assert runs[0]["error"].startswith("Calendly refused the token (HTTP 401")
    assert runs[1]["created"] == 12 and runs[1]["started_at"].endswith("Z")
    assert len(cbapp("calendly", "status", "--limit", "1", "--json").json()) == 1
    table = cbapp("calendly", "status", "--format", "table")
    assert table.exit_code == 0 and "Calendly syncs" in table.stdout and "refused the token" in table.stdout
    # the error goes under the table: in the 'started' column it read a word or two a line at 80 columns
    narrow = cbapp("calendly", "status", "--format", "table", env={"COLUMNS": "80"}).stdout.splitlines()
    assert any(line.startswith("run 2: Calendly refused the token (HTTP 401") for line in narrow), narrow


def test_the_token_never_appears_in_any_output(cbapp: Bapp, fake: FakeCalendly) -> None:
    """R6 across success, verbose, failures and the recorded error."""
    outputs = []
    for args in (
        ("calendly", "whoami", "--json"),
        ("-vv", "calendly", "sync", "--user", USER, "--json"),
        ("calendly", "status", "--json"),
    ):
        outputs.append(cbapp(*args))
    for status in (401, 403, 500):
        fake.fail_next("/", status, times=None)
        outputs.append(cbapp("--debug", "calendly", "sync", "--user", USER, "--format", "json"))
        fake.clear_faults()
    outputs.append(cbapp("calendly", "status", "--format", "table"))
    assert {result.exit_code for result in outputs} == {0, 4, 9}
    for result in outputs:
        assert TOKEN not in result.stdout and TOKEN not in result.stderr
    for run in sync_runs(cbapp.database_url):
        assert TOKEN not in (run["error"] or "")


def test_a_listing_of_the_real_sample_event_types_syncs(cbapp: Bapp, tmp_path: Path) -> None:
    """R7: every captured event type of the public client libraries, as one saved listing."""
    collected = []
    samples = Path(__file__).resolve().parents[3] / "shared" / "reference" / "calendly-samples"
    for path in sorted(samples.glob("*/*event_type*.json")):
        body = json.loads(path.read_text())
        collected.extend(body["collection"] if "collection" in body else [body["resource"]])
    assert len(collected) >= 8, f"calendly-samples not found under {samples}"
    listing = tmp_path / "samples.json"
    listing.write_text(json.dumps([{"collection": collected, "pagination": {"next_page": None}}]))
    result = cbapp("calendly", "sync", "--from-file", str(listing), "--json")
    assert result.exit_code == 0, result.stderr
    unique = {item["uri"] for item in collected}
    assert (result.json()["fetched"], result.json()["created"]) == (len(collected), len(unique))
    sessions = cbapp("sessions", "list", "--all", "--json").json()
    assert {item["calendly_uri"] for item in sessions} == unique
    again = cbapp("calendly", "sync", "--from-file", str(listing), "--json")
    assert again.json()["unchanged"] == len(unique)

"""Issue 15 #21, #22, #24: every list command pages and searches in SQL, bad option values are one usage
error naming the option, and narrow terminals keep the key columns whole. Both backends."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from bapp_cli.db.engine import make_engine
from tests.cli.command_tree import leaf_commands
from tests.conftest import Bapp, SeededCopies

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
# the list commands and the one listing of runs; the walk below finds every `list` by itself
LISTINGS = {
    ("clients", "list"): (),
    ("bookings", "list"): (),
    ("builders", "list"): (),
    ("sessions", "list"): ("--all",),
    ("skills", "list"): (),
    ("pathways", "list"): (),
    ("badges", "list"): ("ava.chen@client.example",),
    ("calendly", "status"): (),
    ("calendly", "webhook", "list"): (),
    ("progress", "table"): (),
}


def test_every_list_command_has_limit_offset_and_search() -> None:
    lists = {path for path, _ in leaf_commands() if path[-1] == "list"}
    assert lists <= set(LISTINGS), f"add the new list command to LISTINGS: {sorted(lists - set(LISTINGS))}"
    for path, command in leaf_commands():
        if path in LISTINGS:
            options = {option for param in command.params for option in param.opts}
            assert {"--limit", "--offset", "--search"} <= options, path


@pytest.fixture(scope="module")
def worlds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeededCopies]:
    yield from SeededCopies.per_module(tmp_path_factory)


@pytest.fixture
def world(bapp: Bapp, worlds: SeededCopies) -> Bapp:
    """The examples imported and pulled: seeded once per backend, each test on its own copy."""
    worlds.seed_or_copy(bapp.database_url, lambda: _seed(bapp))
    return bapp


def _seed(bapp: Bapp) -> None:
    for args in (
        ("builders", "add", "priya@coach.example", "--name", "Priya Shah"),
        ("builders", "add", "omar@coach.example", "--name", "Omar Reyes"),
        ("calendly", "sync", "--from-file", str(EXAMPLES / "calendly/event_types.json")),
        ("import", "all", str(EXAMPLES / "catalog.toml")),
        ("import", "clients", str(EXAMPLES / "clients.csv")),
        ("import", "bookings", str(EXAMPLES / "bookings.csv")),
        ("clients", "add", "percent@client.example", "--name", "Fifty_Percent", "--company", "100% Real"),
        ("skills", "assign", "ava.chen@client.example", "--pathway", "play", "--status", "completed"),
    ):
        result = bapp(*args)
        assert result.exit_code == 0, (args, result.stderr)
    # the saved listing holds invitees bapp cannot apply yet: they are parked (exit 3), so the inbox has rows
    pulled = bapp("calendly", "pull-bookings", "--from-file", str(EXAMPLES / "calendly/scheduled_events.json"))
    assert pulled.exit_code == 3, pulled.stderr


def _emails(result: Any) -> list[str]:
    assert result.exit_code == 0, result.stderr
    return [row["email"] for row in result.json()]


def test_clients_page_and_search_in_sql(world: Bapp, monkeypatch: pytest.MonkeyPatch) -> None:
    everyone = _emails(world("clients", "list", "--json"))
    assert len(everyone) > 4 and everyone == sorted(everyone)
    assert _emails(world("clients", "list", "--limit", "2", "--offset", "1", "--json")) == everyone[1:3]
    assert _emails(world("clients", "list", "--offset", str(len(everyone)), "--json")) == []
    # case-insensitive, on e-mail, name, company and industry
    assert _emails(world("clients", "list", "--search", "CHEN LOG", "--json")) == ["ava.chen@client.example"]
    assert _emails(world("clients", "list", "--search", "education", "--json")) == ["ben.okoro@client.example"]
    # LIKE wildcards in the text are matched literally
    assert _emails(world("clients", "list", "--search", "100%", "--json")) == ["percent@client.example"]
    assert _emails(world("clients", "list", "--search", "y__", "--json")) == []
    assert _emails(world("clients", "list", "--search", "fifty_", "--json")) == ["percent@client.example"]

    # the listing is a plain read (services.plain_reads): its SQL is what its connection is handed
    from bapp_cli.db.dbapi import Database

    statements: list[str] = []
    rows = Database.rows

    def remember(self: Database, statement: str, *args: Any, **options: Any) -> Any:
        statements.append(statement)
        return rows(self, statement, *args, **options)

    monkeypatch.setattr(Database, "rows", remember)
    _emails(world("clients", "list", "--search", "chen", "--limit", "1", "--offset", "0", "--json"))
    listing = [text for text in statements if "client_profiles" in text and "ORDER BY" in text]
    assert listing and re.search(r"LIKE", listing[-1], re.IGNORECASE) and "LIMIT" in listing[-1]


@pytest.mark.parametrize(("path", "before"), sorted(LISTINGS.items()))
def test_each_listing_honours_limit_offset_and_search(
    world: Bapp, path: tuple[str, ...], before: tuple[str, ...]
) -> None:
    full = world(*path, *before, "--format", "jsonl")
    assert full.exit_code == 0, full.stderr
    rows = full.stdout.splitlines()
    assert rows, f"{path}: the fixture should give every listing some rows"
    one = world(*path, *before, "--limit", "1", "--offset", "0", "--format", "jsonl")
    assert one.stdout.splitlines() == rows[:1]
    beyond = world(*path, *before, "--offset", str(len(rows)), "--format", "jsonl")
    assert beyond.exit_code == 0 and beyond.stdout == ""
    nothing = world(*path, *before, "--search", "no-such-text-anywhere", "--format", "jsonl")
    assert nothing.exit_code == 0 and nothing.stdout == ""


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the order is bapp's, not the database's
def test_badges_awarded_together_page_in_the_order_the_whole_list_shows(bapp: Bapp) -> None:
    # one completion awards two tier badges at the same instant; the list shows them in the pathways' display
    # order (pivot moved first), so each page must too, not in the order the rows were inserted
    for args in (
        ("skills", "add", "s1", "--name", "S1", "--link", "accelerate:1", "--link", "pivot:1"),
        ("pathways", "update", "pivot", "--position", "0"),
        ("clients", "add", "a@x.example"),
        ("skills", "complete", "a@x.example", "s1"),
    ):
        assert bapp(*args).exit_code == 0, args
    listing = ("badges", "list", "a@x.example", "--format", "jsonl")
    whole = bapp(*listing).stdout.splitlines()
    assert [json.loads(line)["key"] for line in whole] == ["tier:pivot:1", "tier:accelerate:1"]
    pages = [bapp(*listing, "--limit", "1", "--offset", str(offset)).stdout.splitlines() for offset in (0, 1)]
    assert pages == [whole[:1], whole[1:]]


@pytest.mark.parametrize(
    "args",
    [
        ("bookings", "list", "--limit", "-1"),
        ("calendly", "status", "--limit", "-3"),
        ("clients", "list", "--offset", "-1"),
        ("sessions", "list", "--limit", "99999999999999999999"),
        ("sessions", "update", "1", "--display-order", "99999999999999999999"),
        (
            "bookings",
            "create",
            "--client",
            "a@b.example",
            "--session",
            "1",
            "--start",
            "2031-01-01T10:00Z",
            "--duration",
            "99999999999999999999",
        ),
        ("calendly", "sync", "--wait", "nan"),
        ("calendly", "reconcile", "--give-up-after", "nan"),
        ("calendly", "webhook", "serve", "--busy-timeout", "nan"),
        ("calendly", "webhook", "serve", "--read-timeout", "nan"),
        ("calendly", "webhook", "serve", "--read-timeout", "0.05"),
        ("clients", "list", "--search", "tab\there"),
        ("sessions", "slots", "free-intro", "--days", "367"),
    ],
)
def test_a_bad_option_value_is_a_usage_error_naming_the_option(bapp: Bapp, args: tuple[str, ...]) -> None:
    result = bapp(*args)
    assert result.exit_code == 2, result.stderr
    option = next(arg for arg in reversed(args) if arg.startswith("--"))
    assert f"Invalid value for '{option}'" in result.stderr
    assert "Traceback" not in result.stderr


WORD = re.compile(r"\S+")


@pytest.mark.parametrize(
    ("args", "keys"),
    [
        (("bookings", "list"), ("reference", "status", "amount", "client")),
        (("sessions", "list"), ("id", "price", "state")),
        (("progress", "table"), ("client", "status")),
        (("clients", "list"), ("email",)),
        # these three were drawn by Rich alone, which cut every column: `accele…`, `accelerat…` for accelerate:3
        (("skills", "list"), ("slug",)),
        (("pathways", "list"), ("slug",)),
        (("calendly", "status"), ("run_id", "status")),
        # drawn by Rich alone too: `priya@coac…` at 80 columns, a title's long word `Practition…`
        (("sessions", "available", "--client", "ava.chen@client.example"), ("id", "builder")),
    ],
)
def test_key_columns_stay_whole_at_60_columns(world: Bapp, args: tuple[str, ...], keys: tuple[str, ...]) -> None:
    assert world("clients", "enroll", "ava.chen@client.example", "play").exit_code in (0, 8)
    records = world(*args, "--json").json()
    narrow = world(*args, "--format", "table", env={"COLUMNS": "60"})
    assert narrow.exit_code == 0, narrow.stderr
    lines = narrow.stdout.splitlines()
    assert max(len(line.rstrip()) for line in lines) <= 60
    assert "…" not in narrow.stdout
    words = set(WORD.findall(narrow.stdout))
    shown = narrow.stdout
    for record in records:
        for key in keys:
            value = {
                "amount": lambda r: f"{r['amount']}",
                "state": lambda r: "bookable" if r["bookable"] else None,
            }.get(key, lambda r, key=key: r.get(key))(record)
            if value is None or value == "":
                continue
            text = str(value) if key != "price" else None
            if text is None:
                continue
            assert text in words or text in shown, f"{key} {text!r} is not whole at 60 columns:\n{shown}"
    if args[:2] == ("sessions", "available"):  # it fits at 60 with one space between its columns: all shown
        assert {"title", "minutes", "price", "pathways", "builder", "account"} <= words, shown
    else:
        assert "not shown at this width:" in shown


def test_a_key_value_wider_than_the_terminal_is_folded_whole_not_cut(bapp: Bapp) -> None:
    """A key column's width was measured capped at the terminal's (Rich's Measurement.get), so an e-mail or a
    pathway name wider than the terminal seemed to fit exactly, was held on one line and cut with '…'."""
    email = "a.client.with.a.rather.long.address.for.the.newsletter@mail.subdomain.example.com"  # 82
    name = "Leadership, Strategy and Change for Data and AI Transformation Programmes"  # 73
    assert bapp("clients", "add", email, "--name", "Ada").exit_code == 0
    assert bapp("pathways", "update", "accelerate", "--name", name).exit_code == 0
    for command, whole in ((("clients", "list"), email), (("reports", "pathway-analytics"), name)):
        narrow = bapp(*command, "--format", "table", env={"COLUMNS": "60"})
        assert narrow.exit_code == 0, narrow.stderr
        assert "…" not in narrow.stdout, narrow.stdout
        lines = narrow.stdout.splitlines()
        assert max(len(line.rstrip()) for line in lines) <= 60
        folded = next(index for index, line in enumerate(lines) if whole[:20] in line)
        shown = "".join("".join(lines[folded : folded + 3]).split())  # folded or wrapped, every character there
        assert "".join(whole.split()) in shown, narrow.stdout


def test_a_one_column_listing_wider_than_the_terminal_is_folded_not_cut(bapp: Bapp) -> None:
    """A table of one column was measured as Rich measures a table, each column capped at the terminal's width,
    so one wider than the terminal seemed to fit: `db check` at 40 columns cut the drifted column's name,
    `Column('the_newsletter_tools_own_su…`, the one thing the listing is read for."""
    name = "the_newsletter_tools_own_subscription_preference_flag"
    engine = make_engine(bapp.database_url)
    with engine.begin() as connection:
        connection.execute(text(f"ALTER TABLE users ADD COLUMN {name} VARCHAR(20)"))
    engine.dispose()
    narrow = bapp("db", "check", "--format", "table", env={"COLUMNS": "40"})
    assert narrow.exit_code == 1, narrow.stderr  # drift (README, exit codes)
    assert "…" not in narrow.stdout, narrow.stdout
    assert max(len(line.rstrip()) for line in narrow.stdout.splitlines()) <= 40
    assert name in "".join(narrow.stdout.split()), narrow.stdout


def test_client_detail_tables_cut_nothing_at_60_columns(world: Bapp) -> None:
    # `clients show` drew its enrolments and recent bookings with Rich alone: at 80 columns a payment read
    # 'not_requi…', at 60 references and statuses lost their ends too
    shown = 0
    for email in _emails(world("clients", "list", "--json")):
        detail = world("clients", "show", email, "--json").json()
        if not detail["bookings"]:
            continue
        narrow = world("clients", "show", email, "--format", "table", env={"COLUMNS": "60"})
        assert narrow.exit_code == 0, narrow.stderr
        assert "…" not in narrow.stdout, narrow.stdout
        assert max(len(line.rstrip()) for line in narrow.stdout.splitlines()) <= 60
        words = set(WORD.findall(narrow.stdout))
        for booking in detail["bookings"]:
            assert {booking["reference"], booking["status"], booking["payment_status"]} <= words, narrow.stdout
        for enrolment in detail["enrolments"]:
            assert {enrolment["pathway"], enrolment["status"]} <= words, narrow.stdout
        shown += 1
    assert shown


def test_show_commands_cut_no_value_on_a_narrow_terminal(world: Bapp) -> None:
    # the one-record tables of `… show` were drawn by Rich alone: at 80 columns (a default terminal) a
    # session's booking link read 'https://calendly.com/buildappswith/accelerate-foundation-c…', at 40 a
    # client's e-mail 'carla.diaz@client.exa…'; folded over two lines instead, every character stays
    sessions = world("sessions", "list", "--json").json()
    link = max((row for row in sessions if row.get("scheduling_url")), key=lambda row: len(row["scheduling_url"]))
    for width, args, value in (
        (80, ("sessions", "show", str(link["id"])), link["scheduling_url"]),
        (40, ("clients", "show", "carla.diaz@client.example"), "carla.diaz@client.example"),
    ):
        shown = world(*args, "--format", "table", env={"COLUMNS": str(width)})
        assert shown.exit_code == 0, shown.stderr
        assert "…" not in shown.stdout, shown.stdout
        assert value in re.sub(r"\s", "", shown.stdout), shown.stdout


def test_text_sorts_and_matches_by_code_point_on_both_backends(bapp: Bapp) -> None:
    # The suite's PostgreSQL has a typical server's locale (en-US), which sorts accents and case together
    # and folds every letter: listings came out in another order than on SQLite, so pages broke elsewhere,
    # and a search for É found émile@ on PostgreSQL only. Every text column now compares as SQLite's do.
    names = {"zed": "Zed", "émile": "Emile", "emile": "Emile", "ángel": "Angel", "Bob": "Bob"}
    for local, name in names.items():
        email = f"{local}@coach.example"
        assert bapp("builders", "add", email, "--name", name).exit_code == 0
        assert bapp("clients", "add", email.replace("coach", "client"), "--name", name).exit_code == 0
    by_code_point = [f"{local}@coach.example" for local in ("bob", "emile", "zed", "ángel", "émile")]
    assert _emails(bapp("builders", "list", "--json")) == by_code_point
    clients = [email.replace("coach", "client") for email in by_code_point]
    assert _emails(bapp("clients", "list", "--json")) == clients  # the plain read, not the ORM
    assert _emails(bapp("clients", "list", "--limit", "2", "--offset", "3", "--json")) == clients[3:]
    # case is folded for ASCII letters only, as SQLite's lower() and LIKE do
    assert _emails(bapp("clients", "list", "--search", "BOB", "--json")) == ["bob@client.example"]
    assert _emails(bapp("clients", "list", "--search", "é", "--json")) == ["émile@client.example"]
    assert _emails(bapp("clients", "list", "--search", "É", "--json")) == []
    assert _emails(bapp("builders", "list", "--search", "Á", "--json")) == []

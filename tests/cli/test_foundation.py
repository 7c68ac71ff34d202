"""The foundation's contracts: start-up weight, readiness (exit 5), db commands, formats, errors."""

from __future__ import annotations

import csv
import io
import json
import os
import pty
import select
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import text

from bapp_cli import __version__
from bapp_cli.db import migration
from bapp_cli.db.engine import make_engine
from bapp_cli.errors import quoted
from tests.conftest import REPO, Bapp

PATHWAY_KEYS = ["slug", "name", "description", "icon", "color", "position", "archived", "tiers"]
TIER_NAMES = {
    "accelerate": ["Foundation", "Application", "Mastery"],
    "pivot": ["Assessment", "Transition", "Integration"],
    "play": ["Exploration", "Creation", "Innovation"],
}


def imported_modules(*args: str) -> set[str]:
    completed = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "bapp_cli", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "COLUMNS": "100"},
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    modules = set()
    for line in completed.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            modules.add(line.rsplit("|", 1)[1].strip())
    return modules


@pytest.mark.parametrize("args", [("--help",), ("--version",), ("db", "--help"), ("pathways", "list", "--help")])
def test_start_up_imports_no_heavy_library(args: tuple[str, ...]) -> None:
    modules = imported_modules(*args)
    assert "bapp_cli.cli.launcher" in modules  # the measurement really saw bapp's imports
    # Typer itself may use pydantic to coerce values; bapp's own API models must not load
    heavy = {
        name
        for name in modules
        if name.split(".")[0] in {"sqlalchemy", "httpx", "alembic", "rich"}
        or name.startswith(("bapp_cli.services", "bapp_cli.db", "bapp_cli.calendly"))
    }
    assert heavy == set()


def test_upgrading_a_new_database_leaves_the_models_unloaded(tmp_path: Path) -> None:
    """Only Alembic's autogenerate reads the models' metadata: `db upgrade` loading them for nothing was a tenth of its
    run. The schema the migrations build is the models' all the same (`db check`)."""
    bapp = Bapp("sqlite:///" + str(tmp_path / "new.db"), tmp_path)
    upgraded = bapp.process("db", "upgrade", env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert upgraded.exit_code == 0, upgraded.stderr[-2000:]
    lines = upgraded.stderr.splitlines()
    imported = {line.rsplit("|", 1)[1].strip() for line in lines if line.startswith("import time:")}
    assert "bapp_cli.db.migration" in imported  # the measurement really saw the migration run
    assert "bapp_cli.db.models" not in imported
    assert bapp("db", "check").exit_code == 0


def test_the_models_annotations_are_objects() -> None:
    """Every writing command builds the models at start-up: annotations written as strings (`from __future__ import
    annotations`) are evaluated once more, column by column, by SQLAlchemy (~15 % of building them)."""
    from bapp_cli.db.models import Base

    written_as_text = [
        f"{mapper.class_.__name__}.{name}"
        for mapper in Base.registry.mappers
        for name, annotation in mapper.class_.__annotations__.items()
        if isinstance(annotation, str)
    ]
    assert written_as_text == []


def test_the_annotations_typer_reads_at_start_up_are_objects() -> None:
    """Every command builds the root's options, import's and export's, and the commands of its group from their
    annotations: those written as text (`from __future__ import annotations`) Typer compiled and evaluated twice each
    (its inspect.signature and get_type_hints), ~1.6 % of a writing command's instructions and ~8 % of a plain read's.
    An output_command's wrapper (it has __wrapped__) carries the annotations it evaluated once."""
    import importlib

    from bapp_cli.cli.app import GROUPS, app

    callbacks = [app.registered_callback.callback, *(command.callback for command in app.registered_commands)]
    for group in GROUPS:
        commands = importlib.import_module(f"bapp_cli.cli.{group}").app.registered_commands
        callbacks += [command.callback for command in commands if hasattr(command.callback, "__wrapped__")]
    assert len(callbacks) > 60  # the root's callback, import, export and every output command
    written_as_text = [
        f"{callback.__qualname__}.{name}"
        for callback in callbacks
        if callback is not None
        for name, annotation in callback.__annotations__.items()
        if isinstance(annotation, str)
    ]
    assert written_as_text == []


def test_version_prints_the_package_version(tmp_path: Path) -> None:
    result = Bapp("sqlite:///" + str(tmp_path / "x.db"), tmp_path)("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"bapp {__version__}"
    assert not (tmp_path / "x.db").exists()  # --version touches no database


def test_every_command_has_summary_and_examples(tmp_path: Path) -> None:
    import typer.main

    from bapp_cli.cli.app import app

    def walk(command, path):  # type: ignore[no-untyped-def]
        children = getattr(command, "commands", None)
        if children:
            for name, child in children.items():
                yield from walk(child, [*path, name])
        else:
            yield path, command

    commands = list(walk(typer.main.get_command(app), []))
    assert len(commands) >= 8
    for path, command in commands:
        help_text = command.help or ""
        assert help_text.strip().splitlines()[0].strip(), f"{path} has no summary"
        assert "Examples:" in help_text, f"{path} has no Examples block"


def test_not_migrated_database_exits_5_then_upgrade_makes_it_ready(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nested' / 'dir' / 'bapp.db'}"
    bapp = Bapp(url, tmp_path)
    result = bapp("pathways", "list")
    assert result.exit_code == 5
    assert "Error:" in result.stderr and "Hint: run `bapp db upgrade`" in result.stderr
    assert result.stdout == ""
    assert not (tmp_path / "nested").exists()  # a read command never creates the file

    assert bapp("db", "upgrade").exit_code == 0
    assert (tmp_path / "nested" / "dir" / "bapp.db").exists()
    listing = bapp("pathways", "list", "--json")
    assert listing.exit_code == 0, listing.stderr
    rows = listing.json()
    assert [row["slug"] for row in rows] == ["accelerate", "pivot", "play"]
    assert all(list(row) == PATHWAY_KEYS for row in rows)
    assert {row["slug"]: [tier["name"] for tier in row["tiers"]] for row in rows} == TIER_NAMES
    assert list(rows[0]["tiers"][0]) == ["tier", "name", "description", "skills"]


def test_db_current_and_history(bapp: Bapp) -> None:
    current = bapp("db", "current", "--json")
    assert current.exit_code == 0
    assert current.json() == {"revision": migration.HEAD_REVISION, "head": migration.HEAD_REVISION, "at_head": True}
    history = bapp("db", "history", "--json").json()
    assert history[-1]["revision"] == migration.HEAD_REVISION and history[-1]["is_head"] is True
    assert bapp("db", "check").exit_code == 0


def test_partially_migrated_database_is_refused(bapp: Bapp) -> None:
    assert bapp("db", "downgrade", "0005_add_skill_enhancements", "--yes").exit_code == 0
    result = bapp("pathways", "list")
    assert result.exit_code == 5
    assert "not at head" in result.stderr and "bapp db upgrade" in result.stderr
    current = bapp("db", "current", "--json")
    assert current.exit_code == 5
    assert json.loads(current.stdout)["revision"] == "0005_add_skill_enhancements"
    # the drift check, and the Calendly writer under its lock (whose first transaction asks; no request is sent: the
    # API's address is one nothing answers at), refuse it as well
    unreachable = {"CALENDLY_API_KEY": "test-token", "CALENDLY_API_BASE_URL": "http://127.0.0.1:9"}
    for command in (("db", "check"), ("calendly", "reconcile")):
        refused = bapp(*command, env=unreachable)
        assert refused.exit_code == 5 and "not at head" in refused.stderr, (command, refused.stderr)
    assert bapp("db", "upgrade").exit_code == 0
    assert bapp("pathways", "list").exit_code == 0


def test_a_hand_written_revision_is_echoed_escaped_and_cut_as_every_echo(bapp: Bapp) -> None:
    """version_num as written by hand was echoed whole and raw: ESC and all (a terminal's colours changed), and on
    SQLite, whose column holds any length, 5,000 characters of it."""
    sqlite = bapp.database_url.startswith("sqlite")
    engine = make_engine(bapp.database_url)
    for written in ["0099\x1b[31mfuture", *(["0099_" + "x" * 4995] if sqlite else [])]:
        with engine.begin() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": written})
        for args in (("clients", "list"), ("db", "current")):
            result = bapp(*args)
            assert result.exit_code == 5 and "made by a newer bapp" in result.stderr, (args, result.stderr)
            assert "\x1b" not in result.stderr and "x" * 100 not in result.stderr, (args, result.stderr)
            assert f"at revision {quoted(written)}, which" in result.stderr, (args, result.stderr)
    with engine.begin() as connection:  # and beside another, the two listed
        connection.execute(text("INSERT INTO alembic_version (version_num) VALUES (:v)"), {"v": written + "2"})
    result = bapp("db", "current")
    assert result.exit_code == 5 and f"holds 2 revisions ({quoted(written)}, {quoted(written + '2')})" in result.stderr
    assert "\x1b" not in result.stderr and "x" * 100 not in result.stderr
    engine.dispose()


def test_two_revisions_in_alembic_version_are_refused_not_read_as_whichever_comes_first(bapp: Bapp) -> None:
    """A second row in alembic_version (inserted by hand, a restore over another database's) was read as the first
    row the database returned: `db current` said at head (exit 0) and every command ran on an unknown schema, while
    `db upgrade` failed on Alembic's "overlaps" (exit 6). Now each is exit 5, naming both revisions."""
    engine = make_engine(bapp.database_url)
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO alembic_version (version_num) VALUES ('0005_add_skill_enhancements')"))
    both = f"holds 2 revisions ('0005_add_skill_enhancements', '{migration.HEAD_REVISION}')"
    for command in (("db", "current"), ("pathways", "list"), ("clients", "add", "ada@example.com"), ("db", "upgrade")):
        result = bapp(*command)
        assert result.exit_code == 5 and both in result.stderr and result.stdout == "", (command, result.stderr)
    assert '"code": "database_revisions"' in bapp("db", "current", "--json").stderr
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM alembic_version WHERE version_num = '0005_add_skill_enhancements'"))
    engine.dispose()
    assert bapp("db", "current").exit_code == 0 and bapp("clients", "list").exit_code == 0


def test_downgrade_needs_yes_without_a_terminal(bapp: Bapp) -> None:
    result = bapp("db", "downgrade", "base")
    assert result.exit_code == 2
    assert "--yes" in result.stderr
    assert bapp("db", "current").exit_code == 0  # nothing was changed


@pytest.mark.parametrize("args", [("downgrade", " "), ("downgrade", "", "--yes"), ("upgrade", " "), ("upgrade", "\t")])
def test_a_blank_revision_is_a_usage_error_before_any_question(bapp: Bapp, args: tuple[str, ...]) -> None:
    # downgrade asked to confirm "Downgrade the database to  ?" (on a terminal, a prompt); the others were exit 6
    result = bapp("db", *args)
    assert result.exit_code == 2, result.stderr
    assert result.stderr.splitlines()[0] == "Error: REVISION is empty"
    assert "--yes" not in result.stderr
    assert bapp("db", "current").exit_code == 0  # nothing was changed


def test_a_long_unknown_revision_is_echoed_cut(bapp: Bapp) -> None:
    """`db upgrade`/`downgrade` with 5,000 characters that name no revision echoed them whole, twice (bapp's words and
    Alembic's), as the downgrade's question echoed them once, and the hint to a target below the database whole:
    every other unknown reference is echoed cut."""
    long, relative, below = "x" * 5000, "head-" + "9" * 300, "x" * 5000 + "@base"
    for args in (
        ("upgrade", long),
        ("downgrade", long, "--yes"),
        ("downgrade", long),
        ("upgrade", relative),
        ("upgrade", below),
    ):
        result = bapp("db", *args)
        assert result.exit_code in (2, 6), result.stderr
        assert len(result.stderr) < 400 and "…" in result.stderr, result.stderr
    assert bapp("db", "current").exit_code == 0  # nothing was changed


@pytest.mark.parametrize("target", ["zz@base", "0001_baseline@base", "x@head", "@base"])
def test_a_branch_named_target_is_refused_not_read_as_base(bapp: Bapp, target: str) -> None:
    # Alembic reads `<anything>@base` as base: `db downgrade --yes zz@base` exited 0 having dropped every table
    assert bapp("clients", "add", "keep@example.com").exit_code == 0
    for args in (("downgrade", target, "--yes"), ("upgrade", target)):
        result = bapp("db", *args)
        assert result.exit_code == 6 and "no branch names" in result.stderr, result.stderr
    assert bapp("db", "current").exit_code == 0
    assert [client["email"] for client in bapp("clients", "list", "--json").json()] == ["keep@example.com"]


def test_downgrade_to_base_and_back_with_data_present(bapp: Bapp) -> None:
    engine = make_engine(bapp.database_url)
    with engine.begin() as connection:
        connection.execute(
            text("INSERT INTO users (email, created_at, updated_at) VALUES ('keep@example.com', :n, :n)"),
            {"n": "2030-01-01 00:00:00" if engine.dialect.name == "sqlite" else "2030-01-01T00:00:00Z"},
        )
    assert bapp("db", "downgrade", "0001_baseline", "--yes").exit_code == 0
    assert bapp("db", "upgrade").exit_code == 0
    with engine.connect() as connection:
        assert connection.execute(text("SELECT email FROM users")).scalars().all() == ["keep@example.com"]
    assert bapp("db", "downgrade", "base", "--yes").exit_code == 0
    assert bapp("db", "upgrade").exit_code == 0
    assert bapp("pathways", "list", "--json").exit_code == 0
    engine.dispose()


@pytest.mark.parametrize(
    ("change", "drift"),
    [
        ("ALTER TABLE users ADD COLUMN nickname VARCHAR(20)", "nickname"),
        # a table created beside bapp's (notes, a report's scratch table) was drift: exit 1, "a bug in bapp", for
        # what is no disagreement of the models and the migrations
        ("CREATE TABLE my_notes (id INTEGER PRIMARY KEY, note TEXT)", None),
    ],
)
def test_db_check_reports_drift_with_exit_1(bapp: Bapp, change: str, drift: str | None) -> None:
    engine = make_engine(bapp.database_url)
    with engine.begin() as connection:
        connection.execute(text(change))
    engine.dispose()
    result = bapp("db", "check", "--json")
    assert result.exit_code == (0 if drift is None else 1), result.stderr
    if drift is None:
        assert result.json() == []
    else:
        assert drift in result.stdout and "differs from the models" in result.stderr


def test_concurrent_upgrades_serialise(empty_database_url: str, tmp_path: Path) -> None:
    bapp = Bapp(empty_database_url, tmp_path)
    processes = [bapp.popen("db", "upgrade") for _ in range(3)]
    outcomes = [(process.wait(timeout=120), process.stderr.read()) for process in processes]  # type: ignore[union-attr]
    assert [code for code, _ in outcomes] == [0, 0, 0], outcomes
    assert bapp("db", "current").exit_code == 0
    assert len(bapp("pathways", "list", "--json").json()) == 3  # seeded once, not twice


# -- output formats -------------------------------------------------------------------------------


def test_piped_default_is_tsv_with_header(bapp: Bapp) -> None:
    result = bapp("pathways", "list")
    assert result.exit_code == 0
    rows = list(csv.reader(io.StringIO(result.stdout), delimiter="\t"))
    assert rows[0] == PATHWAY_KEYS
    assert [row[0] for row in rows[1:]] == ["accelerate", "pivot", "play"]
    assert json.loads(rows[1][7])[0]["name"] == "Foundation"  # nested values are JSON in cells
    assert result.stderr == ""  # success in a pipe is silent


def test_each_format(bapp: Bapp) -> None:
    as_json = bapp("pathways", "list", "--format", "json").json()
    assert bapp("pathways", "list", "--json").json() == as_json
    jsonl = [json.loads(line) for line in bapp("pathways", "list", "-f", "jsonl").stdout.splitlines()]
    assert jsonl == as_json
    csv_rows = list(csv.DictReader(io.StringIO(bapp("pathways", "list", "-f", "csv").stdout)))
    assert [row["slug"] for row in csv_rows] == ["accelerate", "pivot", "play"]
    assert csv_rows[0]["archived"] == "false"
    table = bapp("pathways", "list", "-f", "table")
    assert table.exit_code == 0 and "Accelerate" in table.stdout and "Foundation" in table.stdout
    assert bapp("pathways", "list", env={"BAPP_FORMAT": "jsonl"}).stdout.count("\n") == 3
    single = bapp("pathways", "show", "PiVoT", "--json").json()
    assert single["slug"] == "pivot" and list(single) == PATHWAY_KEYS


def test_unknown_format_is_a_usage_error(bapp: Bapp) -> None:
    result = bapp("pathways", "list", "--format", "xml")
    assert result.exit_code == 2
    assert "unknown format 'xml'" in result.stderr


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_format_beside_json_is_checked_too(bapp: Bapp) -> None:
    """`--json` is `--format json`: a --format naming something else beside it is a bad flag value (exit 2),
    never silently dropped for JSON — as a bad BAPP_FORMAT beside --json is refused (exit 4)."""
    unknown = bapp("pathways", "list", "--json", "--format", "xml")
    assert unknown.exit_code == 2 and unknown.stdout == ""
    assert "unknown format 'xml'" in unknown.stderr
    other = bapp("pathways", "list", "--format", "csv", "--json")
    assert other.exit_code == 2 and other.stdout == ""
    assert "--json" in other.stderr and "csv" in other.stderr
    assert bapp("pathways", "list", "--format", "JSON", "--json").json()[0]["slug"] == "accelerate"


def run_in_terminal(bapp: Bapp, *args: str) -> str:
    """Run bapp with stdout on a pseudo-terminal, as a person at a terminal would."""
    leader, follower = pty.openpty()
    env = bapp._environment({"COLUMNS": "120", "TERM": "xterm"})
    process = subprocess.Popen(
        [sys.executable, "-m", "bapp_cli", *args], stdout=follower, stderr=subprocess.PIPE, env=env, cwd=REPO
    )
    os.close(follower)
    chunks = []
    while True:
        ready, _, _ = select.select([leader], [], [], 30)
        if not ready:
            break
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    process.wait(timeout=30)
    os.close(leader)
    assert process.returncode == 0
    return b"".join(chunks).decode()


def test_terminal_default_is_a_table(bapp: Bapp) -> None:
    screen = run_in_terminal(bapp, "pathways", "list")
    assert "Pathways" in screen and "Exploration" in screen
    assert "\t" not in screen and not screen.lstrip().startswith("[")
    assert "\x1b[" in screen  # colour on a terminal
    plain = run_in_terminal(bapp, "--no-color", "pathways", "show", "accelerate")
    assert "Tier 1: Foundation" in plain and "\x1b[3" not in plain


EMAIL = "ada@example.com"
# Every command that takes --dry-run, with arguments that pass its rules on the seeded database below; the
# Calendly ones that need the API (a token, invitees or holds to look up) are left out.
DRY_RUNS = {
    ("builders", "add"): ("cora@example.com", "--name", "Cora"),
    ("builders", "update"): ("coach@example.com", "--buffer", "15", "--not-accepting"),
    ("clients", "add"): ("grace@example.com", "--name", "Grace"),
    ("clients", "enroll"): (EMAIL, "pivot"),
    ("clients", "set-status"): (EMAIL, "accelerate", "paused"),
    ("bookings", "confirm"): ("BK-PEND0001", "--paid"),
    ("bookings", "complete"): ("BK-PAST0001",),
    ("bookings", "no-show"): ("BK-PAST0001",),
    ("bookings", "cancel"): ("BK-PEND0001", "--reason", "moved"),
    ("bookings", "mark-paid"): ("BK-PEND0001",),
    ("bookings", "refund"): ("BK-PAID0001",),
    ("pathways", "archive"): ("play", "--yes"),
    ("skills", "archive"): ("ai-literacy", "--yes"),
    ("skills", "reset"): (EMAIL, "ai-literacy", "--yes"),
    ("pathways", "add"): ("sandbox", "--name", "Sandbox"),
    ("pathways", "update"): ("accelerate", "--name", "Accelerated"),
    ("pathways", "set-tier"): ("accelerate", "4", "--name", "Beyond"),
    ("sessions", "add"): ("--title", "Sprint", "--duration", "60"),
    ("sessions", "update"): ("office-hours", "--price", "9"),
    ("skills", "add"): ("new-skill", "--name", "New skill"),
    ("skills", "update"): ("ai-literacy", "--name", "Literacy"),
    ("skills", "link"): ("ai-literacy", "play:3"),
    ("skills", "unlink"): ("ai-literacy", "accelerate"),
    ("skills", "assign"): (EMAIL, "custom-assistants"),
    ("skills", "start"): (EMAIL, "prompt-engineering"),
    ("skills", "complete"): (EMAIL, "prompt-engineering"),
    ("badges", "revoke"): (EMAIL, "tier:accelerate:1", "--reason", "test"),
    ("bookings", "create"): ("--client", EMAIL, "--session", "office-hours", "--start", "2031-01-06T10:00Z"),
    ("import",): ("clients", str(REPO / "examples/clients.csv")),
    ("calendly", "sync"): ("--from-file", str(REPO / "examples/calendly/event_types.json")),
    ("calendly", "webhook", "retry"): (),
}
NEEDS_CALENDLY = {("calendly", "pull-bookings"), ("calendly", "reconcile"), ("calendly", "webhook", "apply")}
# Commands that change something yet take no --dry-run, and why: `db` migrates, `config` edits the settings file,
# `badges issuer init` makes the signing key, `bookings link` and the webhook subscriptions are made in Calendly (a
# dry run could show none of them), `webhook serve` applies what Calendly delivers.
NO_DRY_RUN = {("db", "upgrade"), ("db", "downgrade"), ("badges", "issuer", "init"), ("bookings", "link")}
NO_DRY_RUN |= {("config", verb) for verb in ("init", "set", "unset")}
NO_DRY_RUN |= {("calendly", "webhook", verb) for verb in ("subscribe", "unsubscribe", "serve")}


def _seed_for_dry_runs(bapp: Bapp, tmp_path: Path) -> None:
    """The records DRY_RUNS' arguments name: the example catalogue, a client with a tier done, a builder, two
    sessions and three bookings (pending, paid, past)."""
    assert bapp("import", "all", str(REPO / "examples/catalog.toml")).exit_code == 0
    assert bapp("sessions", "add", "--title", "Office hours", "--duration", "30", "--category", "free").exit_code == 0
    priced = ("--duration", "60", "--category", "specialized", "--price", "50")
    assert bapp("sessions", "add", "--title", "Coaching", *priced).exit_code == 0
    tier = ("skills", "assign", EMAIL, "--pathway", "accelerate", "--tier", "1", "--status", "completed", "--json")
    assert bapp("clients", "add", EMAIL).exit_code == 0
    assert bapp("builders", "add", "coach@example.com").exit_code == 0
    assert bapp(*tier).json()["badges_awarded"] == ["tier:accelerate:1"]
    booking = {"client": EMAIL, "session": "coaching", "amount": "50.00"}
    rows = [
        booking | {"reference": "BK-PEND0001", "start_time": "2031-02-03T10:00Z", "status": "pending"},
        booking | {"reference": "BK-PAID0001", "start_time": "2031-02-04T10:00Z", "status": "confirmed"},
        {"reference": "BK-PAST0001", "client": EMAIL, "session": "office-hours", "start_time": "2024-01-06T10:00Z"},
    ]
    rows[1]["payment_status"], rows[2]["status"] = "paid", "confirmed"
    (tmp_path / "bookings.json").write_text(json.dumps(rows))
    assert bapp("import", "bookings", str(tmp_path / "bookings.json")).exit_code == 0


# Commands whose real run prints what their dry run, run just before, printed: in turn, each real run changing
# what the next finds
DRY_THEN_REAL = [
    ("builders", "update", "coach@example.com", "--buffer", "15", "--not-accepting"),
    ("clients", "enroll", EMAIL, "pivot"),
    ("clients", "set-status", EMAIL, "pivot", "paused"),
    ("skills", "reset", EMAIL, "ai-literacy", "--yes"),
    ("bookings", "confirm", "BK-PEND0001"),
    ("bookings", "mark-paid", "BK-PEND0001"),
    ("bookings", "refund", "BK-PEND0001"),
    ("bookings", "cancel", "BK-PEND0001", "--reason", "moved"),
    ("bookings", "no-show", "BK-PAST0001"),
    ("bookings", "no-show", "BK-PAST0001", "--undo"),
    ("pathways", "archive", "play", "--yes"),
    ("skills", "archive", "ai-literacy", "--yes"),
]


def test_a_dry_run_prints_what_the_real_run_prints(bapp: Bapp, tmp_path: Path) -> None:
    """--dry-run 'prints what a real run prints' (README): the record a script reads is the same, the dry run's
    rolled back and the real run's kept, for the booking moves made through the Calendly path too."""
    _seed_for_dry_runs(bapp, tmp_path)
    for command in DRY_THEN_REAL:
        dry, real = (bapp(*command, *flags, "--json") for flags in (("--dry-run",), ()))
        assert dry.exit_code == real.exit_code == 0, (command, dry.stderr, real.stderr)
        assert dry.json() == real.json(), command


def test_every_dry_run_says_on_stderr_that_nothing_was_written(bapp: Bapp, tmp_path: Path) -> None:
    """A dry run's output is the record a real run prints, so only stderr tells a script (or a cron log) that
    nothing was written: every --dry-run says so there, off a terminal too (or in its summary's `dry_run`), and
    the database is as it was. `pathways`, `sessions` and `skills` changes said it in a line shown on a terminal
    only, so a piped dry run read as done; `builders`, `clients`, the booking status moves and the archives took no
    --dry-run at all. A dry run needs --yes where the real run does, though it asks no question on a terminal."""
    from tests.cli.command_tree import leaf_commands

    dry_runs = {path for path, command in leaf_commands() if any("--dry-run" in p.opts for p in command.params)}
    assert dry_runs - NEEDS_CALENDLY == set(DRY_RUNS), "add the new --dry-run command to DRY_RUNS"
    # the rest only read (or print): a new command is one or the other, or takes --dry-run
    reads = {("db", "current"), ("db", "history"), ("db", "check"), ("config", "show"), ("config", "path")}
    reads |= {("calendly", verb) for verb in ("whoami", "status")} | {("export",)}
    reads |= {("calendly", "webhook", verb) for verb in ("sign", "list", "subscriptions")}
    reads |= {("badges", verb) for verb in ("list", "achievements", "export", "verify", "status-list")}
    reads |= {(group, verb) for group in ("pathways", "sessions", "clients", "bookings") for verb in ("list", "show")}
    reads |= {("skills", "list"), ("builders", "list"), ("sessions", "slots"), ("sessions", "available")}
    reads |= {("progress", "show"), ("progress", "table"), ("badges", "issuer", "show")}
    reads |= {("reports", verb) for verb in ("bookings-by-pathway", "client-progress", "pathway-analytics")}
    commands = {path for path, _ in leaf_commands()}
    assert commands - reads - dry_runs == NO_DRY_RUN, "a command that changes the database takes --dry-run"
    _seed_for_dry_runs(bapp, tmp_path)
    before = bapp("export", "all", "--format", "json").stdout
    for (*path, verb), arguments in DRY_RUNS.items():
        result = bapp(*path, verb, *arguments, "--dry-run", "--json")
        assert result.exit_code == 0, (path, verb, result.stderr)
        assert bapp("export", "all", "--format", "json").stdout == before, (path, verb)
        if "--yes" in arguments:  # off a terminal the real run needs it: so does the dry run, which runs every check
            unconfirmed = bapp(*path, verb, *(a for a in arguments if a != "--yes"), "--dry-run")
            assert unconfirmed.exit_code == 2 and "pass --yes to confirm" in unconfirmed.stderr, (path, verb)
        said = [line for line in result.stderr.splitlines() if line.startswith("Dry run")]
        if not said:  # or its summary says so, as an import's does: `"dry_run": true`
            assert result.json().get("dry_run") is True, (path, verb, result.stderr)
            continue
        assert len(said) == 1 and ("nothing" in said[0] or "not written" in said[0]), (path, verb, result.stderr)


# -- errors -----------------------------------------------------------------------------------------


def test_not_found_exit_7_with_json_error_line(bapp: Bapp) -> None:
    result = bapp("pathways", "show", "nope", "--json")
    assert result.exit_code == 7
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert lines[0] == "Error: no pathway 'nope'"
    error = json.loads(lines[-1])["error"]
    assert error["code"] == "pathway_not_found" and error["message"] == "no pathway 'nope'"
    assert error["details"] == []
    plain = bapp("pathways", "show", "nope")
    assert "Hint: known pathways: accelerate, pivot, play" in plain.stderr
    assert "{" not in plain.stderr


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("asked", [("--format", "JSON"), ("--format=Jsonl",), ("-fJSON",)])
def test_json_asked_in_capitals_gives_the_json_error_line_too(bapp: Bapp, asked: tuple[str, ...]) -> None:
    # --format takes its value in any case (the data comes out as JSON), so the error line follows it
    result = bapp("pathways", "show", "nope", *asked)
    assert result.exit_code == 7
    assert json.loads(result.stderr.splitlines()[-1])["error"]["code"] == "pathway_not_found"


def test_usage_errors_exit_2(bapp: Bapp) -> None:
    unknown_flag = bapp("pathways", "list", "--bogus")
    assert unknown_flag.exit_code == 2
    assert "No such option" in unknown_flag.stderr and "--bogus" in unknown_flag.stderr
    missing = bapp("pathways", "show")
    assert missing.exit_code == 2 and "Missing argument" in missing.stderr
    unknown_command = bapp("nosuchgroup")
    assert unknown_command.exit_code == 2


# Every flag (and argument) that takes one of a few names, with what it names in the error
ONE_OF = [
    (("bookings", "list", "--status", "done"), "'--status'", "pending, confirmed, completed, cancelled, no_show"),
    (("clients", "list", "--status", "done"), "'--status'", "active, paused, completed"),
    (("clients", "set-status", "ada@example.com", "accelerate", "done"), "'status'", "active, paused, completed"),
    (("progress", "table", "--status", "done"), "'--status'", "active, paused, completed"),
    (("skills", "assign", "ada@example.com", "ai-literacy", "--status", "done"), "'--status'", "not_started, in_"),
    (("skills", "assign", "ada@example.com", "ai-literacy", "--via", "post"), "'--via'", "manual, assessment, "),
    (("skills", "complete", "ada@example.com", "ai-literacy", "--via", "post"), "'--via'", "manual, assessment, "),
    (("sessions", "list", "--category", "premium"), "'--category'", "free, pathway, specialized"),
    (("sessions", "add", "--title", "T", "--duration", "30", "--category", "premium"), "'--category'", "free, "),
    (("sessions", "update", "1", "--category", "premium"), "'--category'", "free, pathway, specialized"),
    (("calendly", "status", "--kind", "sync"), "'--kind'", "event_types, bookings"),
    (("calendly", "webhook", "subscriptions", "--scope", "team"), "'--scope'", "user, organization"),
]


@pytest.mark.parametrize(
    ("args", "flag", "names"), ONE_OF, ids=lambda value: "-".join(value) if isinstance(value, tuple) else None
)
def test_a_value_that_is_not_one_a_flag_takes_is_a_usage_error_naming_the_flag(
    bapp: Bapp, args: tuple[str, ...], flag: str, names: str
) -> None:
    """CLI.md: a bad flag value is exit 2. `--status done` was exit 6 ("invalid input") on the list commands, as a
    bad row is; now the parser refuses it, naming the flag and what it takes, before the database is read."""
    result = bapp(*args, "--json")
    assert result.exit_code == 2, result.stderr
    assert f"Error: Invalid value for {flag}: " in result.stderr and names in result.stderr
    assert json.loads(result.stderr.splitlines()[-1])["error"]["code"] == "usage"
    assert result.stdout == ""


@pytest.mark.parametrize(
    "command",
    [
        ("--timezone", "ZONE", "pathways", "list"),
        (
            "bookings",
            "create",
            "--client",
            "a@b.example",
            "--session",
            "x",
            "--start",
            "2031-01-01",
            "--timezone",
            "ZONE",
        ),
        ("sessions", "slots", "x", "--timezone", "ZONE"),
        ("builders", "add", "coach@example.com", "--timezone", "ZONE"),
        ("builders", "update", "coach@example.com", "--timezone", "ZONE"),
        ("config", "init", "--timezone", "ZONE"),
    ],
)
def test_an_unknown_timezone_flag_is_a_usage_error_naming_it(bapp: Bapp, command: tuple[str, ...]) -> None:
    """CLI.md: a bad flag value is exit 2. A --timezone naming no IANA zone, the global one's or a command's, was exit 6
    (invalid input, a bad row's code); the parser now refuses it naming the flag, before the database or the config
    file is touched. BAPP_TIMEZONE and the config file's `timezone` are settings: exit 4 naming where (test_clients)."""
    for zone in ("Mars/Olympus", "localtime", " "):
        result = bapp(*(zone if word == "ZONE" else word for word in command))
        assert (result.exit_code, result.stdout) == (2, ""), result.stderr
        said = "--timezone is empty" if zone == " " else f"Invalid value for '--timezone': unknown timezone {zone!r}"
        assert f"Error: {said}" in result.stderr, result.stderr
    assert not (bapp.home / "config.toml").exists()
    assert bapp(*("Europe/London" if word == "ZONE" else word for word in command)).exit_code != 2


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_login_postgresql_refuses_is_configuration_exit_4_on_every_path(bapp: Bapp) -> None:
    # the URL's user and password are configuration, like a token Calendly refuses (exit 4), not an unreachable
    # database (exit 5); the plain reads, the ORM's unit of work and the migrations each connect their own way
    password = urlsplit(bapp.database_url).password
    assert password
    # a : in it, its parts not scrubbed from the message (its `pass` is every "password" in it): no reader splits it
    wrong = bapp.database_url.replace(f":{password}@", ":Wrong:pass:9@")
    for command in (("sessions", "list"), ("clients", "add", "ada@example.com"), ("db", "upgrade")):
        result = bapp(*command, env={"BAPP_DATABASE_URL": wrong})
        assert result.exit_code == 4, (command, result.stderr)
        assert result.stderr.startswith("Error: the database refused the login: ")
        assert "password authentication failed" in result.stderr
        assert "Hint: check the user and password" in result.stderr
        assert "Wrong:pass:9" not in result.stderr and password not in result.stderr


SAID_OF_BAPP_DATABASE_URL = "environment variable BAPP_DATABASE_URL, key database_url: "


@pytest.mark.parametrize(
    "host_and_option",
    [
        *(
            f"127.0.0.1:1/none?{option}"
            for option in (
                "foo=bar",
                "sslmode=bogus",
                "keepalives=abc",
                "hostaddr=bogus",
                "port=abc",
                "port=99999",
                "port=-1",
            )
        ),
        # psycopg looks a host name up with the port before libpq checks the port: beside `localhost` that read
        # as a host that does not resolve (exit 5, 'cannot reach the database'), beside an address as exit 4;
        # beside a name that cannot resolve, a port past 65535 was exit 5 ('cannot reach the database'); one in the
        # host part is now refused as a setting, naming it (tests/db/test_database_urls.py)
        "localhost/none?port=-1",
        "db.invalid/none?port=0",
        "db.invalid:5432/none?port=70000",
        # bapp's own timeout (BAPP_CONNECT_TIMEOUT) replaced the URL's, so one psycopg cannot read went unseen
        "127.0.0.1:1/none?connect_timeout=abc",
        "db.invalid/none?connect_timeout=99999999999",
        # past the 4,300 digits int() reads: exit 1 ('unexpected error: ValueError')
        *(f"db.invalid/none?{name}={'9' * 4400}" for name in ("connect_timeout", "port")),
        # libpq's other whole-number options, and a port per host that leaves a host without one, were read as
        # "cannot reach the database" (exit 5) beside a host that does not resolve (the plain reads for the latter)
        *(f"db.invalid/none?{name}=abc" for name in ("keepalives", "keepalives_count", "tcp_user_timeout")),
        "db.invalid,db2.invalid/none?port=1,2,3",
    ],
)
def test_a_postgresql_url_option_libpq_cannot_take_is_exit_4_on_every_path(
    tmp_path: Path, host_and_option: str
) -> None:
    # libpq refuses an unknown option or a bad value before asking any server; `db upgrade` (the engine's first
    # connection) was exit 1 for `?foo=bar`, a bad value was exit 5 everywhere ("cannot reach the database"), and
    # `?port=abc` was exit 1 on the ORM's paths (SQLAlchemy reads that one itself)
    bapp = Bapp(f"postgresql+psycopg://nobody:pw@{host_and_option}", tmp_path)
    for command in (("sessions", "list"), ("clients", "add", "ada@example.com"), ("db", "upgrade")):
        result = bapp(*command)
        assert result.exit_code == 4, (command, result.stderr)
        # refused with the settings, naming where the URL was given, but for the values libpq takes in only as
        # it connects (an sslmode, a hostaddr), which it refuses in its own words
        where = "" if "sslmode" in host_and_option or "hostaddr" in host_and_option else SAID_OF_BAPP_DATABASE_URL
        assert result.stderr.startswith(f"Error: {where}the database URL is not valid"), result.stderr
        assert ":pw@" not in result.stderr


def test_a_postgresql_host_that_does_not_resolve_is_the_same_error_on_every_path(tmp_path: Path) -> None:
    # psycopg looks the host up itself, before libpq, so its error carries no connection: the plain reads said
    # "cannot reach the database" (code database_not_ready), every write and `db upgrade` "database error" (code
    # database_error), for the same URL
    bapp = Bapp("postgresql+psycopg://nobody:s3cretpw@db.invalid/none", tmp_path)
    for command in (("sessions", "list"), ("clients", "add", "ada@example.com"), ("db", "upgrade")):
        result = bapp(*command, "--json") if command[0] != "db" else bapp(*command, env={"BAPP_FORMAT": "json"})
        assert result.exit_code == 5, (command, result.stderr)
        assert result.stderr.startswith("Error: cannot reach the database: failed to resolve host 'db.invalid'")
        assert '"code": "database_not_ready"' in result.stderr and "s3cretpw" not in result.stderr, result.stderr


def test_a_postgresql_urls_own_connect_timeout_is_honoured_on_every_path(tmp_path: Path) -> None:
    # a server that takes the connection and never answers: BAPP_CONNECT_TIMEOUT replaced the URL's 2 seconds,
    # so each command waited an hour (the test's own timeout ends it). The three paths wait side by side: each
    # sits out libpq's 2 s (its least), and one after another that was 6 s of an idle worker.
    with socket.create_server(("127.0.0.1", 0), backlog=8) as silent:
        port = silent.getsockname()[1]
        bapp = Bapp(f"postgresql://nobody:pw@127.0.0.1:{port}/none?connect_timeout=2", tmp_path)
        commands = (("sessions", "list"), ("clients", "add", "ada@example.com"), ("db", "upgrade"))
        running = [(command, bapp.popen(*command, env={"BAPP_CONNECT_TIMEOUT": "3600"})) for command in commands]
        try:
            for command, process in running:
                _stdout, stderr = process.communicate(timeout=60)
                assert process.returncode == 5, (command, stderr)
                assert "connection timeout expired" in stderr
        finally:
            for _command, process in running:
                process.kill()
                process.wait()


@pytest.mark.parametrize("empty_database_url", ["postgresql"], indirect=True)
def test_a_postgresql_urls_own_options_reach_the_server_on_every_path(empty_database_url: str, tmp_path: Path) -> None:
    # bapp's own `-c jit=off -c lock_timeout=…` replaced a URL's `?options=`, on the plain reads and the ORM's
    # engine alike: a search_path naming bapp's schema went unseen, so every command used `public`
    from bapp_cli.db.dbapi import connect_postgresql

    admin = make_engine(empty_database_url)
    with admin.begin() as connection:
        connection.execute(text("CREATE SCHEMA elsewhere"))
    admin.dispose()
    # the URL's lock_timeout loses to bapp's (its busy exit), its jit=on wins over bapp's jit=off
    url = f"{empty_database_url}?options=-c%20search_path%3Delsewhere%20-c%20jit%3Don%20-c%20lock_timeout%3D0"
    settings = ("search_path", "jit", "lock_timeout")
    engine = make_engine(url)
    with engine.connect() as connection:
        assert [connection.exec_driver_sql(f"SHOW {name}").scalar() for name in settings] == ["elsewhere", "on", "30s"]
    engine.dispose()
    plain = connect_postgresql(url)
    try:
        assert [plain.one(f"SHOW {name}") for name in settings] == [("elsewhere",), ("on",), ("30s",)]
    finally:
        plain.close()
    # and commands use it: the schema is built in `elsewhere`, where both paths find the client added
    in_elsewhere = Bapp(url, tmp_path)
    assert in_elsewhere("db", "upgrade").exit_code == 0
    assert in_elsewhere("clients", "add", "ada@example.com").exit_code == 0
    listed = in_elsewhere("sessions", "list", "--json")
    assert listed.exit_code == 0, listed.stderr
    shown = in_elsewhere("clients", "show", "ada@example.com")
    assert shown.exit_code == 0, shown.stderr
    in_public = Bapp(empty_database_url, tmp_path)("sessions", "list")
    assert in_public.exit_code == 5 and "no schema yet" in in_public.stderr
    # a setting the server refuses as the session starts is the URL's fault, as a value libpq refuses is
    # whatever the refusal's words: a bad number, one out of range, a Boolean that is none, a -c with no value
    for setting in ("statement_timeout%3Dabc", "statement_timeout%3D-1", "jit%3Dmaybe", "statement_timeout"):
        refused = Bapp(f"{empty_database_url}?options=-c%20{setting}", tmp_path)
        for command in (("sessions", "list"), ("clients", "add", "ada@example.com"), ("db", "upgrade")):
            result = refused(*command)
            assert result.exit_code == 4, (setting, command, result.stderr)
            assert result.stderr.startswith("Error: the database URL is not valid"), result.stderr
            assert setting.partition("%")[0] in result.stderr


@pytest.mark.parametrize("empty_database_url", ["postgresql"], indirect=True)
def test_a_urls_options_cannot_change_how_values_are_read(empty_database_url: str, tmp_path: Path) -> None:
    # psycopg reads timestamps in DateStyle ISO and text in a real encoding: a URL's -c DateStyle=German made every
    # read of a timestamp "unexpected error: NotImplementedError" (exit 1), -c client_encoding=SQL_ASCII a TypeError
    assert Bapp(empty_database_url, tmp_path)("db", "upgrade").exit_code == 0
    for setting in ("DateStyle%3DGerman", "client_encoding%3DSQL_ASCII"):
        bapp = Bapp(f"{empty_database_url}?options=-c%20{setting}", tmp_path)
        for command in (("clients", "add", f"{setting[:4].lower()}@example.com"), ("clients", "list", "--json")):
            result = bapp(*command)
            assert result.exit_code == 0, (setting, command, result.stderr)
        assert bapp("export", "all").exit_code == 0
        assert bapp("clients", "list", "--json").json()[-1]["created_at"].endswith("Z")


@pytest.mark.parametrize("empty_database_url", ["postgresql"], indirect=True)
def test_the_environments_pgdatestyle_cannot_change_how_timestamps_are_read(
    empty_database_url: str, tmp_path: Path
) -> None:
    # libpq sends PGDATESTYLE as a startup setting of its own, which the server applies after the options' DateStyle
    # ISO: every ORM read of a timestamp was "unexpected error: NotImplementedError: can't parse timestamptz" (exit 1)
    bapp = Bapp(empty_database_url, tmp_path)
    assert bapp("db", "upgrade").exit_code == 0
    env: dict[str, str | None] = {"PGDATESTYLE": "SQL, DMY"}
    for command in (("clients", "add", "ada@example.com"), ("clients", "list", "--json"), ("export", "all")):
        result = bapp(*command, env=env)
        assert result.exit_code == 0, (command, result.stderr)
    assert bapp("clients", "list", "--json", env=env).json()[0]["created_at"].endswith("Z")


def test_pgdatestyle_is_dropped_once_where_the_environment_is_read_not_by_each_connection_s_options(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # session_options, a builder of a connection's options, popped PGDATESTYLE from the process's environment every
    # time it ran. It is dropped once, where bapp resolves its settings from the process's environment; settings
    # resolved from a given mapping (config show's checks, the tests') leave the process's alone
    from bapp_cli.config import resolve_settings
    from bapp_cli.db.dbapi import session_options

    monkeypatch.setenv("PGDATESTYLE", "SQL, DMY")
    assert "DateStyle=ISO" in session_options({}, 1000)["options"]
    resolve_settings(config_path=None, flags={}, environ={"PGDATESTYLE": "SQL, DMY"}, read_file=False)
    assert os.environ.get("PGDATESTYLE") == "SQL, DMY"
    resolve_settings(config_path=None, flags={}, read_file=False)
    assert "PGDATESTYLE" not in os.environ


@pytest.mark.parametrize("empty_database_url", ["postgresql"], indirect=True)
def test_an_encoding_from_the_environment_or_the_url_cannot_change_how_text_is_sent(
    empty_database_url: str, tmp_path: Path
) -> None:
    # libpq sends PGCLIENTENCODING (or a URL's ?client_encoding=) as a setting the server applies after the options'
    # client_encoding=UTF8, and psycopg encodes in the session's encoding: with LATIN1, `clients add` of a Polish
    # name and `export all` (a pathway's icon, an emoji) were "unexpected error: UnicodeEncodeError" (exit 1)
    bapp = Bapp(empty_database_url, tmp_path)
    assert bapp("db", "upgrade").exit_code == 0
    latin1_url = f"{empty_database_url}?client_encoding=LATIN1"
    for n, (url, env) in enumerate([(empty_database_url, {"PGCLIENTENCODING": "LATIN1"}), (latin1_url, {})]):
        added = bapp("--database-url", url, "clients", "add", f"{n}@example.com", "--name", "Łukasz 日本", env=env)
        assert added.exit_code == 0, added.stderr
        assert bapp("--database-url", url, "clients", "list", "--json", env=env).json()[-1]["name"] == "Łukasz 日本"
        exported = bapp("--database-url", url, "export", "all", env=env)
        assert exported.exit_code == 0 and "🚀" in exported.stdout, exported.stderr
        # the plain reads' own connection
        assert bapp("--database-url", url, "sessions", "list", "--json", env=env).exit_code == 0


def test_a_session_the_server_ends_as_idle_in_a_transaction_is_a_lost_connection() -> None:
    # a URL's -c idle_in_transaction_session_timeout=1 (or a role's) ended sessions between two statements of
    # `sessions list`: psycopg's InternalError 25P03 was "unexpected error" (exit 1), not a database state
    import psycopg.errors
    from sqlalchemy.exc import InternalError

    from bapp_cli.db.dbapi import database_failure

    ended = psycopg.errors.IdleInTransactionSessionTimeout("terminating connection due to idle-in-transaction timeout")
    for raised in (ended, InternalError("SELECT 1", {}, ended)):
        failure = database_failure(raised)
        assert failure is not None and failure.exit_code == 5
        assert failure.message == "database error: terminating connection due to idle-in-transaction timeout"


@pytest.mark.parametrize(
    "command",
    [
        ("pathways", "list"),
        ("db", "upgrade"),
        ("db", "downgrade", "base", "--yes"),
        ("db", "current", "--json"),
        ("db", "check"),
    ],
)
@pytest.mark.parametrize("server", ["refusing", "silent"])
def test_unreachable_database_exits_5(tmp_path: Path, command: tuple[str, ...], server: str) -> None:
    # the db commands said "database error: connection failed: …" (code database_error) where every other command
    # says "cannot reach the database" (database_not_ready); a server that never answers timed out the same way
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel completes the connection; nothing ever answers libpq's first message
        port = silent.getsockname()[1] if server == "silent" else 1
        bapp = Bapp(f"postgresql+psycopg://nobody:pw@127.0.0.1:{port}/none", tmp_path)
        result = bapp(*command, env={"BAPP_CONNECT_TIMEOUT": "1", "BAPP_FORMAT": "json"})
    assert result.exit_code == 5, result.stderr
    assert result.stderr.startswith("Error: cannot reach the database: connection")
    assert json.loads(result.stderr.splitlines()[-1])["error"]["code"] == "database_not_ready"
    assert ":pw@" not in result.stderr


def test_unexpected_error_is_one_line_and_traceback_only_with_debug(bapp: Bapp, mocker) -> None:  # type: ignore[no-untyped-def]
    mocker.patch("bapp_cli.services.plain_reads.list_pathways", side_effect=RuntimeError("boom"))
    result = bapp("pathways", "list")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == "Error: unexpected error: RuntimeError: boom"
    assert "Traceback" not in result.stderr
    debug = bapp("--debug", "pathways", "list")
    assert debug.exit_code == 1 and "Traceback" in debug.stderr


def test_upgrade_to_an_older_revision_is_refused_as_downgrade_to_a_newer_one_is(bapp: Bapp) -> None:
    """Alembic takes an upgrade below the current revision as nothing to do: it said 'Already at' (exit 0)."""
    assert bapp("db", "downgrade", "0005_add_skill_enhancements", "--yes").exit_code == 0
    newer = bapp("db", "downgrade", "0007_unique_session_slugs", "--yes")
    older = bapp("db", "upgrade", "0003_add_booking_enhancements")
    assert (newer.exit_code, older.exit_code) == (6, 6), older.stdout + older.stderr
    assert "0003_add_booking_enhancements" in older.stderr and "0005_add_skill_enhancements" in older.stderr
    assert "bapp db downgrade" in older.stderr
    assert json.loads(bapp("db", "current", "--json").stdout)["revision"] == "0005_add_skill_enhancements"
    for same in ("0005_add_skill_enhancements", "0005"):  # the current one is no error: nothing to do
        assert bapp("db", "upgrade", same).exit_code == 0
    assert bapp("db", "upgrade").exit_code == 0


def test_upgrade_to_a_relative_revision_below_the_current_one_is_refused_as_a_named_one_is(bapp: Bapp) -> None:
    """`db upgrade head-1` at head said 'Already at 0015_…' (exit 0), where `db upgrade 0014_…` is exit 6: Alembic
    resolves a relative target itself, so bapp's check of the named revision never saw one."""
    for relative in ("head-1", "0013_text_collation_c+1", "base+1"):
        older = bapp("db", "upgrade", relative)
        assert older.exit_code == 6, (relative, older.stdout + older.stderr)
        assert "below the database's revision 0020_audit_entity_index" in older.stderr
    # the current revision reached relatively is nothing to do, as it is by name
    assert bapp("db", "upgrade", "0019_names_in_nfc+1").exit_code == 0
    assert bapp("db", "downgrade", "0013_text_collation_c", "--yes").exit_code == 0
    assert bapp("db", "upgrade", "head-1").exit_code == 0  # upward it goes where it says
    assert json.loads(bapp("db", "current", "--json").stdout)["revision"] == "0019_names_in_nfc"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # Alembic's resolver, not the database
def test_an_alembic_whose_private_upgrade_resolver_changed_shape_skips_the_relative_check_never_exit_1(
    bapp: Bapp, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check above calls Alembic's private resolver (RevisionMap._parse_upgrade_target) as Alembic 1.13-1.x define
    it; a release that made its arguments keyword-only (Alembic's own call names them) would have made every `db
    upgrade` to a target an unexpected error (exit 1): the check is skipped instead, Alembic's upgrade unchanged."""
    from alembic.script.revision import RevisionMap

    resolve = RevisionMap._parse_upgrade_target

    def keyword_only(self: RevisionMap, *positional: object, **named: Any) -> Any:
        if positional:
            raise TypeError("_parse_upgrade_target() takes 1 positional argument")
        return resolve(self, **named)

    monkeypatch.setattr(RevisionMap, "_parse_upgrade_target", keyword_only)
    assert bapp("db", "upgrade", "head-1").exit_code == 0  # Alembic's "Already at", as before the check
    assert bapp("db", "upgrade", "head").exit_code == 0


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # help only
def test_downgrade_help_warns_that_badge_revocations_go_below_0010(bapp: Bapp) -> None:
    """It spoke of dropped tables only; 0010's downgrade drops columns, and with them every revocation."""
    shown = " ".join(bapp("db", "downgrade", "--help").stdout.split())
    assert "columns" in shown and "revoked badge counts as valid again" in shown and "0010_portable_badges" in shown


@pytest.mark.parametrize(
    ("damage", "state", "way_back"),
    [
        ("DELETE FROM alembic_version", "empty", []),
        ("DROP TABLE alembic_version", "missing", [migration.VERSION_TABLE_SQL]),
    ],
)
def test_a_lost_revision_beside_bapps_tables_is_refused_with_the_data_kept_and_the_way_back(
    bapp: Bapp, damage: str, state: str, way_back: list[str]
) -> None:
    # alembic_version emptied or dropped by hand (or a copy that left it out), then `db upgrade`: it ran every
    # migration again, refused by the first ("users already exists"), whose hint said to change or drop what it
    # names — the users table, all data
    assert bapp("clients", "add", "ada@example.com", "--name", "Ada").exit_code == 0
    engine = make_engine(bapp.database_url)
    with engine.begin() as connection:
        connection.execute(text(damage))
    for command in (("db", "upgrade"), ("db", "downgrade", "base", "--yes")):
        result = bapp(*command)
        assert result.exit_code == 5, result.stderr
        assert f"holds bapp's tables but no revision (its alembic_version is {state})" in result.stderr, result.stderr
        assert "drop" not in result.stderr.lower() and "INSERT INTO alembic_version" in result.stderr
        assert all(sql in result.stderr for sql in way_back), result.stderr
    for command in (("db", "check"), ("clients", "list")):
        assert bapp(*command).exit_code == 5
    # the hint's way back, word for word
    with engine.begin() as connection:
        for sql in way_back:
            connection.execute(text(sql))
        connection.execute(text(f"INSERT INTO alembic_version (version_num) VALUES ('{migration.HEAD_REVISION}')"))
    engine.dispose()
    assert bapp("db", "check").exit_code == 0
    assert bapp("db", "upgrade").exit_code == 0
    assert [row["email"] for row in bapp("clients", "list", "--json").json()] == ["ada@example.com"]

"""`bapp import …` end to end on both backends: R4 bad input, all-or-nothing, --continue-on-error with a
rejects file, --dry-run, stdin, re-imports, and R3 — an import killed with SIGKILL in the middle."""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import gc
import json
import os
import re
import signal
import sqlite3
import subprocess
import time
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from sqlalchemy import create_engine, inspect, select, text
from sqlalchemy.orm import Session

from bapp_cli.db.models import AuditEntry, Booking, ClientProfile, Enrolment, User
from tests.conftest import Bapp, with_batches_of
from tests.services.test_booking_factories import add_builder, add_session_type, count, question, seed_session

HEADER = "client,session,start_time,status,client_timezone,pathway,amount\n"


@pytest.fixture(name="seed")
def seed_fixture(database_url: str) -> Iterator[Session]:
    yield from seed_session(database_url)


@pytest.fixture(name="catalogue")
def catalogue_fixture(seed: Session) -> Session:
    coach = add_builder(seed, "coach@example.com", buffer_minutes=10)
    add_session_type(seed, "Intro", slug="intro", duration=30, builder=coach)
    add_session_type(
        seed,
        "Review",
        slug="review",
        duration=60,
        price="40.00",
        builder=coach,
        questions=[question("Repo", required=True)],
    )
    seed.commit()
    return seed


def write(tmp_path: Path, name: str, content: str | bytes) -> str:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return str(path)


def nothing_written(seed: Session) -> None:
    seed.rollback()
    assert count(seed, Booking) == 0
    assert count(seed, User) == 1  # the coach
    assert count(seed, AuditEntry, AuditEntry.entity == "import") == 0


def test_a_backfill_imports_then_reimports_as_unchanged(bapp: Bapp, catalogue: Session, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "bookings.csv",
        "\ufeff"
        + HEADER
        + "Ada@Example.com,intro,2029-06-01T10:00,completed,Europe/London,accelerate,\n"
        + "bob@example.com,intro,2029-06-01T10:00:00Z,no_show,UTC,,0\n",
    )
    result = bapp("import", "bookings", path, "--json")
    assert (result.exit_code, result.stderr) == (0, "")
    assert result.json() == {
        "kind": "bookings",
        "created": 2,
        "updated": 0,
        "unchanged": 0,
        "rejected": 0,
        "dry_run": False,
        "clients_created": 2,
        "enrolled": 1,
        "badges_awarded": 0,
        "pathways_completed": 0,
    }
    again = bapp("import", "bookings", path)
    assert again.exit_code == 0 and again.stderr == ""
    assert again.stdout.splitlines() == [
        "kind\tcreated\tupdated\tunchanged\trejected\tdry_run\tclients_created\tenrolled\tbadges_awarded\t"
        "pathways_completed",
        "bookings\t0\t0\t2\t0\tfalse\t0\t0\t0\t0",
    ]
    catalogue.rollback()
    bookings = catalogue.scalars(select(Booking).order_by(Booking.start_time)).all()
    assert [(booking.status, booking.source, booking.start_time.hour) for booking in bookings] == [
        ("completed", "import", 9),  # 10:00 in London (BST) is 09:00Z
        ("no_show", "import", 10),
    ]
    entries = catalogue.scalars(select(AuditEntry).where(AuditEntry.entity == "import")).all()
    assert [(entry.command, entry.entity_key, entry.actor, entry.changes["created"]) for entry in entries] == [
        ("bapp import", "bookings", "tester", 2),
        ("bapp import", "bookings", "tester", 0),
    ]


def test_a_status_spelt_as_the_no_show_command_imports_as_no_show(
    bapp: Bapp, catalogue: Session, tmp_path: Path
) -> None:
    # a hand-made file may spell the status as `bookings no-show` does, as `bookings list --status` takes it;
    # stored (and exported) no_show. The case stays exact, as in every column, and another spelling is a bad row.
    rows = "ada@example.com,intro,2029-06-01T10:00Z,no-show,,,\nbob@example.com,intro,2029-06-02T10:00Z,No-Show,,,\n"
    path = write(tmp_path, "bookings.csv", HEADER + rows)
    refused = bapp("import", "bookings", path)
    assert refused.exit_code == 6 and "1 bad row (first: line 3, status: " in refused.stderr, refused.stderr
    assert "'no_show'" in refused.stderr and "nothing was written" in refused.stderr
    nothing_written(catalogue)
    json_rows = [
        {"client": "ada@example.com", "session": "intro", "start_time": "2029-06-01T10:00Z", "status": "no-show"}
    ]
    result = bapp("import", "bookings", write(tmp_path, "bookings.json", json.dumps(json_rows)), "--json")
    assert (result.exit_code, result.stderr, result.json()["created"]) == (0, "", 1)
    catalogue.rollback()
    assert catalogue.scalars(select(Booking.status)).all() == ["no_show"]
    assert [row["status"] for row in json.loads(bapp("export", "bookings").stdout)] == ["no_show"]


R4_CASES: list[tuple[str, str, bytes | str, tuple[int, str | None], str]] = [
    (
        "malformed-csv",
        "b.csv",
        HEADER + 'ada@example.com,intro,"2029-01-01T10:00Z,completed,,,\n',
        (2, None),
        "malformed",
    ),
    (
        "malformed-json",
        "b.json",
        '[\n{"client": "ada@example.com",\n "session": "intro" "start_time": 1}\n]',
        (3, None),
        "malformed JSON",
    ),
    (
        "malformed-toml",
        "b.toml",
        '[[bookings]]\nclient = "ada@example.com"\nsession = intro\n',
        (3, None),
        "malformed TOML",
    ),
    (
        "wrong-encoding",
        "b.csv",
        (HEADER + "josé@example.com,intro,2029-01-01T10:00Z,,,,\n").encode("latin-1"),
        (2, None),
        "not UTF-8",
    ),
    (
        "missing-column",
        "b.csv",
        "client,session\nada@example.com,intro\n",
        (1, "start_time"),
        "required column is missing",
    ),
    (
        "unknown-column",
        "b.csv",
        "client,session,start_time,colour\nada@example.com,intro,2029-01-01T10:00Z,red\n",
        (1, "colour"),
        "unknown column",
    ),
    (
        "invalid-email",
        "b.csv",
        HEADER + "ada.example.com,intro,2029-01-01T10:00Z,,,,\n",
        (2, "client"),
        "is not a valid e-mail",
    ),
    (
        "unknown-session",
        "b.csv",
        HEADER + "ada@example.com,tea-party,2029-01-01T10:00Z,,,,\n",
        (2, "session"),
        "no session type 'tea-party'",
    ),
    # refused where the builder's cell is read, though no row of the batch names a builder
    (
        "missing-session",
        "b.csv",
        HEADER + "ada@example.com,,2029-01-01T10:00Z,,,,\n",
        (2, "session_id"),
        "session: required (an id, slug or Calendly URI)",
    ),
    (
        "unknown-pathway",
        "b.jsonl",
        '{"client": "ada@example.com", "session": "intro", "start_time": "2029-01-01T10:00Z", "pathway": "atlantis"}\n',
        (1, "pathway"),
        "no pathway 'atlantis'",
    ),
    (
        "impossible-date",
        "b.csv",
        HEADER + "ada@example.com,intro,2029-02-30T10:00,,,,\n",
        (2, "start_time"),
        "day is out of range",
    ),
    (
        "skipped-local-hour",
        "b.csv",
        HEADER + "ada@example.com,intro,2029-03-25T01:30,,Europe/London,,\n",
        (2, "start_time"),
        "does not exist in Europe/London",
    ),
    (
        "unknown-zone",
        "b.csv",
        HEADER + "ada@example.com,intro,2029-01-01T10:00,,Mars/Olympus,,\n",
        (2, "client_timezone"),
        "unknown timezone",
    ),
    (
        "huge-field",
        "b.csv",
        "client,session,start_time,client_name\nada@example.com,intro,2029-01-01T10:00Z," + "x" * 50_000 + "\n",
        (2, "client_name"),
        "50,000 characters; at most 200",
    ),
    # a line of 1.1 MB is read (a record may be 64 MB in every format, test_transfer_formats); its cell is refused
    (
        "huge-cell",
        "b.csv",
        HEADER + "ada@example.com,intro," + "9" * 1_100_000 + ",,,,\n",
        (2, "start_time"),
        "as text of at most 64 characters",
    ),
    (
        "missing-answer",
        "b.toml",
        '[[bookings]]\nclient = "ada@example.com"\nsession = "review"\nstart_time = 2029-01-01T10:00:00Z\n',
        (1, "custom_question_responses"),
        "'Repo': required",
    ),
]


@pytest.mark.parametrize(("case", "name", "content", "where", "message"), R4_CASES, ids=[case[0] for case in R4_CASES])
def test_r4_bad_input_is_refused_whole_naming_the_row(
    bapp: Bapp,
    catalogue: Session,
    tmp_path: Path,
    case: str,
    name: str,
    content: str | bytes,
    where: tuple[int, str | None],
    message: str,
) -> None:
    path = write(tmp_path, name, content)
    result = bapp("import", "bookings", path)
    assert result.exit_code == 6, (case, result.stderr)
    assert result.stdout == ""
    assert result.stderr.startswith("Error: ")
    line, field = where
    located = f"line {line}, field {field}: " if field else f"line {line}: "
    assert located in result.stderr and message in result.stderr, result.stderr
    assert "nothing was written" in result.stderr.splitlines()[0]
    nothing_written(catalogue)


def test_sql_looking_and_unusual_strings_are_stored_literally(bapp: Bapp, catalogue: Session, tmp_path: Path) -> None:
    hostile = "Robert'); DROP TABLE bookings;--"
    answer = 'x" OR 1=1; -- \u202e'
    path = write(
        tmp_path,
        "b.json",
        json.dumps(
            [
                {
                    "client": "bobby@example.com",
                    "client_name": hostile,
                    "session": "review",
                    "start_time": "2029-01-01T10:00:00Z",
                    "status": "cancelled",
                    "cancellation_reason": "'; DELETE FROM users; --",
                    "custom_question_responses": [{"question": "repo", "answer": answer}],
                }
            ]
        ),
    )
    result = bapp("import", "bookings", path, "--json")
    assert result.exit_code == 0, result.stderr
    catalogue.rollback()
    booking = catalogue.scalars(select(Booking)).one()
    assert booking.cancellation_reason == "'; DELETE FROM users; --"
    assert booking.custom_question_responses == [{"question": "Repo", "answer": answer, "position": 0}]
    assert catalogue.scalars(select(User.name).where(User.email == "bobby@example.com")).one() == hostile
    assert count(catalogue, User) == 2


def test_every_bad_row_is_listed_and_json_errors_carry_them_all(bapp: Bapp, catalogue: Session, tmp_path: Path) -> None:
    days = [dt.date(2029, 1, 1) + dt.timedelta(days=index) for index in range(120)]
    rows = [f"c{index}@example.com,intro,{day}T10:00Z,completed,,," for index, day in enumerate(days)]
    rows[5] = "bad-email,intro,2029-01-06T10:00Z,completed,,,"
    rows[50] = "c50@example.com,intro,2029-01-51T10:00Z,completed,,,"
    rows[119] = "c119@example.com,nope,2029-01-01T10:00Z,completed,,,"
    path = write(tmp_path, "b.csv", HEADER + "\n".join(rows) + "\n")
    result = bapp("import", "bookings", path, "--json")
    assert result.exit_code == 6 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert (
        lines[0]
        == "Error: 3 bad rows (first: line 7, client: 'bad-email' is not a valid e-mail address); nothing was written"
    )
    assert lines[1].startswith("Hint: fix the rows listed, or pass --continue-on-error")
    payload = json.loads(lines[-1])
    assert payload["error"]["code"] == "bad_rows"
    assert [(item["line"], item["field"]) for item in payload["error"]["details"]] == [
        (7, "client"),
        (52, "start_time"),
        (121, "session"),
    ]
    nothing_written(catalogue)


def test_continue_on_error_with_every_row_rejected_is_bad_input_not_partial_success(
    bapp: Bapp, catalogue: Session, tmp_path: Path
) -> None:
    path = write(tmp_path, "b.csv", HEADER + "bad,intro,2030-06-02T10:00Z,confirmed,,,\n")
    rejects = tmp_path / "rejected.csv"
    result = bapp("import", "bookings", path, "--continue-on-error", "--rejects", str(rejects), "--json")
    assert result.exit_code == 6
    assert result.stdout == ""
    assert result.stderr.startswith(f"Error: every row was rejected (1); nothing was written; they are in {rejects}\n")
    with open(rejects, newline="") as handle:
        assert [row["client"] for row in csv.DictReader(handle)] == ["bad"]
    nothing_written(catalogue)


def test_continue_on_error_commits_the_good_rows_and_writes_the_rejects(
    bapp: Bapp, catalogue: Session, tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        "b.csv",
        HEADER
        + "ada@example.com,intro,2030-06-01T10:00Z,confirmed,,,\n"
        + "bob@example.com,intro,2030-06-01T10:05Z,confirmed,,,\n"  # the coach is busy (buffer 10)
        + "bad,intro,2030-06-02T10:00Z,confirmed,,,\n"
        + "cy@example.com,intro,2030-06-03T10:00Z,confirmed,,,\n",
    )
    rejects = tmp_path / "rejected.csv"
    result = bapp("import", "bookings", path, "--continue-on-error", "--rejects", str(rejects), "--json")
    assert result.exit_code == 3
    assert (result.json()["created"], result.json()["rejected"]) == (2, 2)
    assert result.stderr.startswith(f"Error: 2 rows rejected; they are in {rejects}\n")
    with open(rejects, newline="") as handle:
        rejected = list(csv.DictReader(handle))
    assert [row["client"] for row in rejected] == ["bob@example.com", "bad"]
    assert rejected[0]["error"].startswith("start_time: builder coach@example.com already has the booking on line 2 at")
    assert rejected[1]["error"] == "client: 'bad' is not a valid e-mail address"
    assert list(rejected[0]) == [*HEADER.strip().split(","), "error"]
    catalogue.rollback()
    assert count(catalogue, Booking) == 2


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # reading the file: no backend's part
@pytest.mark.parametrize(
    ("fmt", "rows"),
    [
        ("csv", "email,name\nada@example.com,Ada\nbo.example.com,Bo\n"),
        ("tsv", "email\tname\nada@example.com\tAda\nbo.example.com\tBo\n"),
        ("json", '[{"email": "ada@example.com", "name": "Ada"}, {"email": "bo.example.com", "name": "Bo"}]'),
        ("jsonl", '{"email": "ada@example.com", "name": "Ada"}\n{"email": "bo.example.com", "name": "Bo"}\n'),
        ("toml", '[[clients]]\nemail = "ada@example.com"\n[[clients]]\nemail = "bo.example.com"\nname = "Bo"\n'),
    ],
    ids=lambda value: value if value in ("csv", "tsv", "json", "jsonl", "toml") else "",
)
def test_a_rejects_file_with_its_rows_fixed_imports_as_it_is(bapp: Bapp, tmp_path: Path, fmt: str, rows: str) -> None:
    # the workflow README gives: fix the rows in the rejects file, then import it. Its `error` column (no kind has a
    # field of that name) was refused as an unknown column, so the file had to be edited twice
    rejects = tmp_path / f"rejected.{fmt}"
    first = bapp(
        "import", "clients", write(tmp_path, f"clients.{fmt}", rows), "--continue-on-error", "--rejects", str(rejects)
    )
    assert first.exit_code == 3, first.stderr
    assert "error" in rejects.read_text()
    rejects.write_text(rejects.read_text().replace("bo.example.com", "bo@example.com"))
    again = bapp("import", "clients", str(rejects), "--json")
    assert (again.exit_code, again.stderr) == (0, "")
    assert (again.json()["created"], again.json()["rejected"]) == (1, 0)
    listed = bapp("clients", "list", "--json")
    assert sorted(client["email"] for client in listed.json()) == ["ada@example.com", "bo@example.com"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # reading the file: no backend's part
def test_a_toml_error_names_its_tables_line_after_a_string_holding_a_header(bapp: Bapp, tmp_path: Path) -> None:
    # a `[[clients]]` line inside a multi-line string was counted as a table's header: the bad row was said to be on 4
    rows = '[[clients]]\nemail = "ada@example.com"\nname = """Ada\n[[clients]]\nLovelace"""\n\n'
    rows += '[[clients]]\nemail = "bo"\n'
    result = bapp("import", "clients", write(tmp_path, "clients.toml", rows))
    assert result.exit_code == 6
    assert "line 7, field email: 'bo' is not a valid e-mail address" in result.stderr, result.stderr


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # reading the file: no backend's part
@pytest.mark.parametrize("header", ['[["clients"]]', "[[ 'clients' ]]", '[[ "clients" ]] # the clients', "[[clients]]"])
def test_a_toml_error_names_its_tables_line_whatever_the_headers_quotes(
    bapp: Bapp, tmp_path: Path, header: str
) -> None:
    # a quoted key was not taken for a header: rows were numbered by position, the third table's bad row "line 3"
    rows = "".join(
        f'# client {n}\n{header}\nemail = "{email}"\n\n' for n, email in enumerate(("a@b.co", "c@d.co", "e"))
    )
    result = bapp("import", "clients", write(tmp_path, "clients.toml", rows.replace("\n", "\r\n")))
    assert result.exit_code == 6
    assert "line 10, field email: 'e' is not a valid e-mail address" in result.stderr, result.stderr
    # a table, not an array of tables, is refused at its own header's line, not at line 1
    table = header.replace("[[", "[").replace("]]", "]")
    result = bapp("import", "clients", write(tmp_path, "table.toml", f"# one client\n\n{table}\n"))
    assert result.exit_code == 6 and "line 3: expected an array of tables ([[clients]])" in result.stderr, result.stderr


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # reading the file: no backend's part
def test_a_short_first_rejected_row_loses_no_column_of_the_rows_after_it(bapp: Bapp, tmp_path: Path) -> None:
    # a CSV rejects file's header is its first rejected row's columns; a row with cells missing had only those it
    # had, so the name and company of every rejected row after it were left out of the file that keeps them
    rows = "email,name,company\nada@example.com\nbo.example.com,Bo,Acme\n"
    rejects = tmp_path / "rejected.csv"
    result = bapp("import", "clients", write(tmp_path, "c.csv", rows), "--continue-on-error", "--rejects", str(rejects))
    assert result.exit_code == 6, result.stderr  # every row rejected
    with rejects.open(newline="") as handle:
        kept = [{key: value for key, value in row.items() if key != "error"} for row in csv.DictReader(handle)]
    assert kept == [
        {"email": "ada@example.com", "name": "", "company": ""},
        {"email": "bo.example.com", "name": "Bo", "company": "Acme"},
    ]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # reading the file: no backend's part
def test_a_rejected_row_with_more_cells_than_the_header_keeps_the_extra_ones(bapp: Bapp, tmp_path: Path) -> None:
    # the cells past the header's last column were dropped from the rejects file, which is there to keep what the
    # user wrote: a value with an unquoted comma (Lovelace, Countess) lost its tail. They are named in the row's
    # error, so the row keeps the header's columns and stays importable once fixed
    rows = "email,name\nada@example.com,Ada Lovelace, Countess,of Lovelace\nbo@example.com,Bo\n"
    rejects = tmp_path / "rejected.csv"
    result = bapp("import", "clients", write(tmp_path, "c.csv", rows), "--continue-on-error", "--rejects", str(rejects))
    assert result.exit_code == 3, result.stderr
    with rejects.open(newline="") as handle:
        [row] = list(csv.DictReader(handle))
    assert (row["email"], row["name"]) == ("ada@example.com", "Ada Lovelace")
    assert row["error"].endswith(
        "4 cells, but the header has 2 columns; the cells after its last column: ' Countess', 'of Lovelace'"
    )
    assert "the cells after its last column: ' Countess', 'of Lovelace'" in result.stderr


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # reading the file: no backend's part
def test_the_rejects_file_of_a_very_wide_row_imports_as_it_is(bapp: Bapp, tmp_path: Path) -> None:
    # 300,000 cells past the header's last one (600 kB of `,x`) were all named in the row's error, at five
    # bytes each: the rejects file's line grew past the 1 MiB an import reads, so it was refused whole (exit 6,
    # "a line longer than"), not importable as it is, as README says it is; stderr held the 1.5 MB line too
    rows = "email,name\nada@example.com,Ada" + ",x" * 300_000 + "\nbo@example.com,Bo\n"
    rejects = tmp_path / "rejected.csv"
    result = bapp("import", "clients", write(tmp_path, "c.csv", rows), "--continue-on-error", "--rejects", str(rejects))
    assert result.exit_code == 3, result.stderr[:500]
    again = bapp("import", "clients", str(rejects), "--json")  # the kept columns are a good row: `error` is ignored
    assert again.exit_code == 0, again.stderr[:500]
    assert again.json()["created"] == 1
    assert "the cells after its last column: 'x', 'x'" in result.stderr and len(result.stderr) < 2000


def test_dry_run_reports_and_writes_nothing(bapp: Bapp, catalogue: Session, tmp_path: Path) -> None:
    path = write(tmp_path, "b.csv", HEADER + "ada@example.com,intro,2029-01-01T10:00Z,completed,,,\n")
    result = bapp("import", "bookings", path, "--dry-run", "--json")
    assert result.exit_code == 0 and result.stderr == ""
    assert (result.json()["created"], result.json()["dry_run"]) == (1, True)
    nothing_written(catalogue)


def test_the_collector_runs_less_often_during_an_import_and_as_before_after_it(
    bapp: Bapp, catalogue: Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The import raises the collector's youngest threshold while its batches run (seen from the freeze after each
    batch) and puts it back when it ends, refused or not: the process may run other commands (as tests do)."""
    before = gc.get_threshold()
    seen: list[int] = []
    monkeypatch.setattr(gc, "freeze", lambda: seen.append(gc.get_threshold()[0]))
    good = write(tmp_path, "b.csv", HEADER + "ada@example.com,intro,2029-01-01T10:00Z,completed,,,\n")
    assert bapp("import", "bookings", good).exit_code == 0
    assert seen == [10_000] and gc.get_threshold() == before
    bad = write(tmp_path, "bad.csv", HEADER + "ada@example.com,intro,not a time,completed,,,\n")
    assert bapp("import", "bookings", bad).exit_code == 6
    assert seen == [10_000, 10_000] and gc.get_threshold() == before


def test_an_import_in_a_process_that_goes_on_leaves_its_objects_collectable(
    bapp: Bapp, catalogue: Session, tmp_path: Path
) -> None:
    # each batch freezes what is alive (gc.freeze): in a process that goes on (this one, a program calling main), a
    # cycle of the caller's alive during the import was never collected once dropped
    class Kept:
        itself: Kept

    kept = Kept()
    kept.itself = kept  # a cycle: reference counting alone never frees it
    collected = weakref.ref(kept)
    path = write(tmp_path, "b.csv", HEADER + "ada@example.com,intro,2029-01-01T10:00Z,completed,,,\n")
    assert bapp("import", "bookings", path).exit_code == 0
    del kept
    gc.collect()
    assert collected() is None, "the import froze the caller's objects"


def test_stdin_needs_a_format_and_kinds_and_files_are_checked(bapp: Bapp, catalogue: Session) -> None:
    data = "email,name\nada@example.com,Ada\n"
    missing = bapp("import", "clients", "-", stdin=data)
    assert missing.exit_code == 2 and "cannot tell the format of stdin" in missing.stderr
    assert "Hint: pass --input-format csv|tsv|json|jsonl|toml" in missing.stderr
    result = bapp("import", "clients", "-", "--input-format", "csv", "--json", stdin=data)
    assert result.exit_code == 0 and result.json()["created"] == 1
    jsonl = bapp("import", "clients", "-", "--input-format", "jsonl", "--json", stdin='{"email": "ada@example.com"}\n')
    assert jsonl.json()["unchanged"] == 1
    unknown = bapp("import", "widgets", "x.csv")
    assert unknown.exit_code == 2 and "unknown kind 'widgets'" in unknown.stderr
    absent = bapp("import", "clients", "/no/such/file.csv")
    assert absent.exit_code == 6 and "cannot read /no/such/file.csv" in absent.stderr
    # an empty path (an unset "$FILE") was "cannot tell the format of stdin" (exit 2), as if stdin had been asked for
    empty = bapp("import", "clients", "", stdin=data)
    assert empty.exit_code == 6 and "cannot tell the format of '' from its name" in empty.stderr, empty.stderr
    catalogue.rollback()
    assert count(catalogue, ClientProfile) == 1


def test_the_kinds_the_commands_take_are_the_kinds_the_services_read_and_write() -> None:
    """cli.transfer checks a kind before the database is opened; the services then trust it, so the two lists
    must agree: every kind but `all` is a registered one, and every registered one the commands do not name
    is a backup-only section."""
    from bapp_cli.cli.transfer import KINDS
    from bapp_cli.services.transfer.kinds import BACKUP_ONLY, REGISTRY

    assert KINDS[-1] == "all"
    assert set(KINDS[:-1]) <= set(REGISTRY)
    assert set(REGISTRY) - set(KINDS) == {"badges", *BACKUP_ONLY}


def test_import_all_merges_into_a_database_that_is_not_empty(bapp: Bapp, catalogue: Session, tmp_path: Path) -> None:
    document = {
        "clients": [{"email": "ada@example.com", "name": "Ada"}],
        "enrolments": [{"client": "ada@example.com", "pathway": "play", "status": "paused"}],
        "bookings": [{"client": "ada@example.com", "session": "intro", "start_time": "2029-01-01T10:00:00Z"}],
    }
    path = write(tmp_path, "some.json", json.dumps(document))
    result = bapp("import", "all", path, "--json")
    assert result.exit_code == 0, result.stderr
    summary = result.json()
    assert (summary["restored"], summary["created"]) == (False, 3)
    assert list(summary["kinds"]) == ["clients", "enrolments", "bookings"]
    out_of_order = write(tmp_path, "bad.json", json.dumps({"bookings": [], "clients": []}))
    refused = bapp("import", "all", out_of_order)
    assert refused.exit_code == 6 and "'clients' comes after 'bookings'" in refused.stderr
    csv_all = bapp("import", "all", write(tmp_path, "all.csv", "email\n"))
    assert csv_all.exit_code == 2 and "one JSON or TOML document" in csv_all.stderr
    catalogue.rollback()
    assert catalogue.scalars(select(Enrolment.status)).one() == "paused"


def test_answers_a_booking_holds_import_back_unchanged_though_the_questions_would_refuse_them(
    bapp: Bapp, catalogue: Session, tmp_path: Path
) -> None:
    # A backfill with --allow-any-answers stores answers as given: to a question the session never asked, untrimmed
    # (the session's questions may also change after a booking). The booking's own export, imported again, and its
    # backup merged back must change nothing: they were refused (exit 6) and trimmed (counted updated).
    answers = [
        {"question": "Repo", "answer": " bapp  ", "position": 0},
        {"question": "Legacy", "answer": "x", "position": 1},
    ]
    rows = [{"client": "ada@example.com", "session": "review", "start_time": "2029-01-01T10:00:00Z"}]
    backfill = write(tmp_path, "backfill.json", json.dumps([{**rows[0], "custom_question_responses": answers}]))
    assert bapp("import", "bookings", backfill, "--allow-any-answers").exit_code == 0
    for fmt in ("csv", "json"):
        exported = tmp_path / f"bookings.{fmt}"
        assert bapp("export", "bookings", "-o", str(exported)).exit_code == 0
        again = bapp("import", "bookings", str(exported), "--json")
        assert again.exit_code == 0, again.stderr
        assert (again.json()["updated"], again.json()["unchanged"]) == (0, 1)
    backup = tmp_path / "backup.json"
    assert bapp("export", "all", "-o", str(backup)).exit_code == 0
    merged = bapp("import", "all", str(backup), "--json")
    assert merged.exit_code == 0, merged.stderr
    assert merged.json()["kinds"]["bookings"]["unchanged"] == 1
    # answers that differ from the booking's are checked against the session's questions, as before
    edited = [{**rows[0], "custom_question_responses": [{**answers[1], "answer": "y"}]}]
    refused = bapp("import", "bookings", write(tmp_path, "edited.json", json.dumps(edited)))
    assert refused.exit_code == 6 and "'Legacy': the session has no such question" in refused.stderr
    catalogue.rollback()
    assert catalogue.scalars(select(Booking.custom_question_responses)).one() == answers


def test_a_booking_imports_back_unchanged_after_its_session_s_duration_changed(
    bapp: Bapp, catalogue: Session, tmp_path: Path
) -> None:
    # A session's durations change (a Calendly sync, `import sessions`) after it was booked: the booking's own
    # export, imported again, and its backup merged back were refused (exit 6, "not offered"); they change nothing.
    rows = [{"client": "ada@example.com", "session": "intro", "start_time": "2029-01-01T10:00:00Z"}]
    assert bapp("import", "bookings", write(tmp_path, "rows.json", json.dumps(rows))).exit_code == 0
    backup, exported = tmp_path / "backup.json", tmp_path / "bookings.csv"
    assert bapp("export", "all", "-o", str(backup)).exit_code == 0
    assert bapp("export", "bookings", "-o", str(exported)).exit_code == 0
    longer = write(tmp_path, "sessions.json", json.dumps([{"slug": "intro", "duration_minutes": 45}]))
    assert bapp("import", "sessions", longer).exit_code == 0
    again = bapp("import", "bookings", str(exported), "--json")
    assert again.exit_code == 0, again.stderr
    assert (again.json()["updated"], again.json()["unchanged"]) == (0, 1)
    merged = bapp("import", "all", str(backup), "--json")
    assert merged.exit_code == 0, merged.stderr
    assert merged.json()["kinds"]["bookings"]["unchanged"] == 1
    # a booking moved to a length the session does not offer is refused, as before
    moved = [{**rows[0], "end_time": "2029-01-01T10:40:00Z"}]
    refused = bapp("import", "bookings", write(tmp_path, "moved.json", json.dumps(moved)))
    assert refused.exit_code == 6 and "a 40-minute booking is not offered" in refused.stderr
    catalogue.rollback()
    assert catalogue.scalars(select(Booking.end_time)).one() == dt.datetime(2029, 1, 1, 10, 30, tzinfo=dt.UTC)


def test_a_booking_moved_to_another_session_is_checked_against_that_session_though_its_values_are_its_own(
    bapp: Bapp, catalogue: Session, tmp_path: Path
) -> None:
    # A booking's own start, end and answers are spared today's checks only against its own session: a row that moves
    # it to another session (same reference) with them must meet that session's durations and questions.
    start, end = "2029-01-01T10:00:00Z", "2029-01-01T10:30:00Z"
    rows = [
        {"client": "ada@example.com", "session": "intro", "start_time": start, "end_time": end},
        {
            "client": "bob@example.com",
            "session": "review",
            "start_time": "2029-01-02T10:00:00Z",
            "custom_question_responses": [{"question": "Repo", "answer": "bapp"}],
        },
    ]
    assert bapp("import", "bookings", write(tmp_path, "rows.json", json.dumps(rows))).exit_code == 0
    catalogue.rollback()
    sessions = catalogue.scalars(select(Booking.session_type_id).order_by(Booking.start_time)).all()
    booked = catalogue.execute(
        select(Booking.reference, Booking.custom_question_responses).order_by(Booking.start_time)
    )
    (first, _), (second, answers) = booked.all()
    moved = [  # to a session of other durations, then to one that asks no question, with the booking's own values
        {**rows[0], "reference": first, "session": "review", "custom_question_responses": answers},
        {**rows[1], "reference": second, "session": "intro", "end_time": "2029-01-02T10:30:00Z"},
        {**rows[1], "reference": second, "custom_question_responses": answers},  # its own session: as before, unchanged
    ]
    problems = ["a 30-minute booking is not offered by 'Review'", "'Repo': the session has no such question", None]
    for row, problem in zip(moved, problems, strict=True):
        result = bapp("import", "bookings", write(tmp_path, "moved.json", json.dumps([row])), "--json")
        if problem is None:
            assert (result.exit_code, result.json()["unchanged"]) == (0, 1), result.stderr
        else:
            assert result.exit_code == 6 and problem in result.stderr, result.stderr
    catalogue.rollback()
    assert catalogue.scalars(select(Booking.session_type_id).order_by(Booking.start_time)).all() == sessions


def test_a_row_refused_for_its_own_cells_is_not_also_refused_for_answers_an_update_need_not_give(
    bapp: Bapp, catalogue: Session, tmp_path: Path
) -> None:
    # Answers are required of a new booking only, and a refused row is never matched to the booking it names: the
    # refusal listed its bad cell and also "required" answers the row, an update of a booking that has them, need
    # not give.
    row = {"client": "ada@example.com", "session": "review", "start_time": "2029-01-01T10:00:00Z"}
    given = [{**row, "custom_question_responses": [{"question": "Repo", "answer": "bapp"}]}]
    assert bapp("import", "bookings", write(tmp_path, "rows.json", json.dumps(given))).exit_code == 0
    catalogue.rollback()
    reference = catalogue.scalars(select(Booking.reference)).one()
    update = [{**row, "reference": reference, "status": "completed", "idempotency_key": ""}]
    result = bapp("import", "bookings", write(tmp_path, "update.json", json.dumps(update)), "--json")
    assert result.exit_code == 6
    details = json.loads(result.stderr.splitlines()[-1])["error"]["details"]
    assert [(item["line"], item["field"]) for item in details] == [(1, "idempotency_key")]


@pytest.mark.parametrize("form", ["json", "csv"])
def test_a_booking_moved_to_another_session_with_its_own_answers_takes_them_as_that_session_asks_them(
    bapp: Bapp, catalogue: Session, tmp_path: Path, form: str
) -> None:
    # A booking's own answers stay as stored only under its own session: moved to another that asks the same question
    # (its name in other letters' case, at another position), they are stored as that session asks it, as before they
    # were spared — not with the first session's name and position.
    pair = add_session_type(
        catalogue, "Pair", slug="pair", duration=60, questions=[question("Goal"), question("REPO", position=1)]
    )
    catalogue.commit()
    row = {"client": "bob@example.com", "session": "review", "start_time": "2029-01-02T10:00:00Z"}
    answers = [{"question": "Repo", "answer": "bapp", "position": 0}]
    path = write(tmp_path, "rows.json", json.dumps([{**row, "custom_question_responses": answers}]))
    assert bapp("import", "bookings", path).exit_code == 0
    catalogue.rollback()
    reference, stored = catalogue.execute(select(Booking.reference, Booking.custom_question_responses)).one()
    assert stored == answers
    moved = {**row, "reference": reference, "session": "pair", "custom_question_responses": stored}
    if form == "json":
        path = write(tmp_path, "moved.json", json.dumps([moved]))
    else:
        path = str(tmp_path / "moved.csv")
        with open(path, "w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=list(moved))
            writer.writeheader()
            writer.writerow({**moved, "custom_question_responses": json.dumps(stored)})
    result = bapp("import", "bookings", path, "--json")
    assert (result.exit_code, result.json()["updated"]) == (0, 1), result.stderr
    catalogue.rollback()
    booked = catalogue.execute(select(Booking.session_type_id, Booking.custom_question_responses)).one()
    assert tuple(booked) == (pair.id, [{"question": "REPO", "answer": "bapp", "position": 1}])


def test_a_row_refused_for_its_answers_or_length_does_not_keep_its_keys_from_a_later_row(
    bapp: Bapp, catalogue: Session, tmp_path: Path
) -> None:
    # A row refused for its answers or its length books nothing: the reference, invitee URI and idempotency key it gives
    # are free for a later row of the file, as they are after a row refused for a bad cell (--continue-on-error).
    keys = {"reference": "BK-FIRST", "calendly_invitee_uri": "https://api.calendly.com/i/1", "idempotency_key": "k1"}
    good = {**keys, "client": "bob@example.com", "session": "review", "start_time": "2029-01-02T10:00:00Z"}
    good["custom_question_responses"] = [{"question": "Repo", "answer": "bapp"}]
    refused = [
        {**good, "custom_question_responses": [{"question": "Nope", "answer": "x"}]},
        {**good, "end_time": "2029-01-02T10:30:00Z"},  # Review offers 60 minutes only
    ]
    path = write(tmp_path, "rows.json", json.dumps([*refused, good]))
    rejects = str(tmp_path / "rejected.json")
    result = bapp("import", "bookings", path, "--continue-on-error", "--rejects", rejects, "--json")
    assert (result.exit_code, result.stdout and result.json()["created"]) == (3, 1), result.stderr  # partial
    assert [error["field"] for error in json.loads(result.stderr.splitlines()[-1])["error"]["details"]] == [
        "custom_question_responses",
        "end_time",
    ]
    catalogue.rollback()
    assert catalogue.scalars(select(Booking.reference)).all() == ["BK-FIRST"]


@pytest.mark.parametrize("dry_run", [(), ("--dry-run",)])
def test_each_kind_summary_of_import_all_is_the_summary_of_that_kind_alone(
    bapp: Bapp, catalogue: Session, tmp_path: Path, dry_run: tuple[str, ...]
) -> None:
    # README: `import all` adds each kind's summary under `kinds`; those left out `dry_run`, which the summary of
    # `bapp import bookings` has (and its other keys came after the kind's own counts)
    rows = [{"client": "ada@example.com", "session": "intro", "start_time": "2029-01-01T10:00:00Z"}]
    alone = bapp("import", "bookings", write(tmp_path, "rows.json", json.dumps(rows)), "--json", "--dry-run")
    assert alone.exit_code == 0, alone.stderr
    whole = bapp("import", "all", write(tmp_path, "all.json", json.dumps({"bookings": rows})), "--json", *dry_run)
    assert whole.exit_code == 0, whole.stderr
    expected = {**alone.json(), "dry_run": bool(dry_run)}
    assert list(whole.json()["kinds"]["bookings"].items()) == list(expected.items())


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # reading the file: no backend's part
def test_toml_dates_and_datetimes_read_as_their_text_does(bapp: Bapp, catalogue: Session, tmp_path: Path) -> None:
    # Santiago's clocks skip midnight on 2031-09-07: the day, as text, is its first instant (01:00 -03:00); and an
    # instant's day is its day in --timezone, whatever offset it was written with (23:30 -05:00 is 01:30 -03:00)
    document = """
[[clients]]
email = "ada@example.com"
[[enrolments]]
client = "ada@example.com"
pathway = "play"
start_date = 2031-01-01T23:30:00-05:00
[[bookings]]
client = "ada@example.com"
session = "intro"
start_time = 2031-09-08T10:00:00Z
created_at = 2031-09-07
"""
    result = bapp("--timezone", "America/Santiago", "import", "all", write(tmp_path, "some.toml", document))
    assert result.exit_code == 0, result.stderr
    catalogue.rollback()
    assert catalogue.scalars(select(Enrolment.start_date)).one() == dt.date(2031, 1, 2)
    assert catalogue.scalars(select(Booking.created_at)).one() == dt.datetime(2031, 9, 7, 4, tzinfo=dt.UTC)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # reading the file: no backend's part
@pytest.mark.parametrize(
    ("name", "document", "cell"),
    [
        (
            "some.toml",
            '[[enrolments]]\nclient = "ada@example.com"\npathway = "play"\nstart_date = 20310101',
            "1, start_date",
        ),
        ("some.json", '[{"client": "ada@example.com", "session": "intro", "start_time": 1.9e9}]', "1, start_time"),
        ("bool.json", '[{"client": "ada@example.com", "session": "intro", "start_time": true}]', "1, start_time"),
        (
            "long.json",
            '[{"client": "ada@example.com", "session": "intro", "start_time": "%s"}]' % ("2" * 65),
            "1, start_time",
        ),
    ],
)
def test_a_date_cell_refuses_a_number_or_a_boolean_in_one_error_naming_it(
    bapp: Bapp, catalogue: Session, tmp_path: Path, name: str, document: str, cell: str
) -> None:
    # pydantic read a number as seconds since 1970: start_date = 20310101 was the 24th of August 1970, and a
    # JSON start_time of 1.9e9 a booking in March 2030
    bapp("clients", "add", "ada@example.com")
    kind = "enrolments" if name.endswith("toml") else "bookings"
    result = bapp("import", kind, write(tmp_path, name, document))
    assert result.exit_code == 6, result.stderr
    # one error naming the cell, not one per member of the union with pydantic's names for them
    assert f"line {cell}: should be a date or time, as text of at most 64 characters" in result.stderr
    assert "json-or-python" not in result.stderr and "constrained-str" not in result.stderr
    catalogue.rollback()
    assert catalogue.scalars(select(Enrolment)).all() == [] and catalogue.scalars(select(Booking)).all() == []


def test_a_big_import_in_several_batches_leaves_every_index_and_no_drift(
    bapp: Bapp, catalogue: Session, tmp_path: Path
) -> None:
    """More rows than one batch: the import's temporary tables leave no trace in the schema."""
    first = dt.datetime(2029, 1, 1, tzinfo=dt.UTC)
    rows = [
        f"c{index % 700}@example.com,intro,{(first + dt.timedelta(minutes=37 * index)).isoformat()},completed,,,"
        for index in range(6_000)
    ]
    path = write(tmp_path, "big.csv", HEADER + "\n".join(rows) + "\n")
    result = bapp("import", "bookings", path, "--json")
    assert result.exit_code == 0 and result.json()["created"] == 6_000, result.stderr
    engine = catalogue.get_bind()
    indexes = {index["name"] for index in inspect(engine).get_indexes("bookings")}
    assert {"ix_bookings_pathway_time", "ix_bookings_session_time", "ix_bookings_start_time"} <= indexes
    assert {"ix_bookings_calendly_event_uri", "ix_bookings_builder_time", "ix_bookings_client_time"} <= indexes
    check = bapp("db", "check", "--json")
    assert check.exit_code == 0 and check.json() == [], check.stdout
    listed = bapp("bookings", "list", "--client", "c1@example.com", "--json")
    assert len(listed.json()) == 9


# -- R3: a real process killed mid-import ------------------------------------------------------------------


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _writing(database_url: str) -> bool:
    """The import holds an open write transaction that has inserted rows."""
    if database_url.startswith("sqlite"):
        connection = sqlite3.connect(database_url.removeprefix("sqlite:///"), timeout=0, isolation_level=None)
        try:
            connection.execute("BEGIN IMMEDIATE")
            connection.execute("ROLLBACK")
            return False
        except sqlite3.OperationalError:
            return True
        finally:
            connection.close()
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            query = (
                "SELECT count(*) FROM pg_locks JOIN pg_class ON pg_class.oid = pg_locks.relation "
                "WHERE pg_class.relname = 'users' AND pg_locks.mode = 'RowExclusiveLock' "
                "AND pg_locks.pid <> pg_backend_pid()"
            )
            return bool(connection.execute(text(query)).scalar_one())
    finally:
        engine.dispose()


# Rows per batch of the import process below (conftest.with_batches_of); its input, more than a pipe holds
BATCH = 100
TWO_BATCHES = [
    f"client{index}@example.com,intro,2029-01-01T{index % 24:02d}:00Z,completed,,," for index in range(2_000)
]


@contextlib.contextmanager
def import_mid_write(
    bapp: Bapp, tmp_path: Path, *extra: str, interruptible: bool = False
) -> Iterator[subprocess.Popen[str]]:
    """An `import bookings` of many full batches from a FIFO held open, yielded once it writes in its open
    transaction: once the write returns, the reader has taken all but a pipe-buffer (64 kB, some 1,100 rows) of it,
    so its first batches (and their new clients) are written, and the import then waits for more input."""
    fifo = tmp_path / "bookings.csv"
    os.mkfifo(fifo)
    # See tests/cli/test_interrupt.py: a suite started in the background ignores SIGINT, and the child
    # would inherit that; a Python-level handler here is reset to the default in the child.
    saved = signal.signal(signal.SIGINT, signal.default_int_handler) if interruptible else None
    try:
        process = bapp.popen("import", "bookings", str(fifo), "--json", *extra, python=with_batches_of(BATCH))
    finally:
        if saved is not None:
            signal.signal(signal.SIGINT, saved)
    with open(fifo, "w") as writer:
        writer.write(HEADER)
        writer.write("\n".join(TWO_BATCHES) + "\n")
        writer.flush()
        _wait_for(lambda: _writing(bapp.database_url), "the import's write transaction")
        assert process.poll() is None, process.communicate()
        yield process


def test_r3_an_import_killed_with_sigkill_leaves_the_database_as_it_was(
    bapp: Bapp, catalogue: Session, tmp_path: Path
) -> None:
    with import_mid_write(bapp, tmp_path) as process:
        time.sleep(0.5)
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=30)
    assert process.returncode == -signal.SIGKILL
    if bapp.database_url.startswith("postgresql"):
        _wait_for(lambda: not _writing(bapp.database_url), "the server to roll the dead client back")
    nothing_written(catalogue)
    # into an empty table SQLite's import drops the indexes it never reads until its end: the kill rolled that back
    indexes = {index["name"] for index in inspect(catalogue.get_bind()).get_indexes("bookings")}
    assert {"ix_bookings_start_time", "ix_bookings_pathway_time"} <= indexes, indexes
    after = bapp("import", "bookings", write(tmp_path, "small.csv", HEADER + TWO_BATCHES[0] + "\n"), "--json")
    assert after.exit_code == 0 and after.json()["created"] == 1


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGHUP])
def test_r3_an_import_stopped_with_sigterm_or_sighup_unwinds_like_ctrl_c(
    bapp: Bapp, catalogue: Session, tmp_path: Path, stop: signal.Signals
) -> None:
    # `timeout`, systemd and `kill` send SIGTERM, a closed terminal or SSH session SIGHUP: Python's default
    # death left the rejects file's temporary `.partial` behind (an export's too) and said nothing; it now
    # unwinds as Ctrl-C does, with the status a shell gives a process the signal stopped
    rejects = tmp_path / "rejects.csv"
    with import_mid_write(bapp, tmp_path, "--continue-on-error", "--rejects", str(rejects)) as process:
        assert [path.name for path in tmp_path.glob(".rejects.csv.*.partial")]  # open, being written
        process.send_signal(stop)
        stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 128 + stop, stderr
    # a hang-up said "Terminated", the word of README's 143, not its own 129's
    how = "Terminated" if stop == signal.SIGTERM else "Hung up"
    assert stderr.strip().splitlines() == [f"{how}; nothing was changed."] and stdout == ""
    nothing_written(catalogue)
    assert not rejects.exists() and not list(tmp_path.glob(".*.partial"))


def test_summary_keys_do_not_depend_on_what_the_rows_earned(bapp: Bapp, seed: Session, tmp_path: Path) -> None:
    # CLI.md: JSON keys are stable. A skills or progress import that awards nothing still says so with zeros,
    # so a script reading .badges_awarded never meets a missing key.
    skills = bapp("import", "skills", write(tmp_path, "skills.csv", "slug,name\nprompting,Prompting\n"), "--json")
    assert (skills.exit_code, skills.json()["badges_awarded"]) == (0, 0)
    assert bapp("import", "clients", write(tmp_path, "clients.csv", "email\nada@example.com\n")).exit_code == 0
    rows = write(tmp_path, "progress.csv", "client,skill,status\nada@example.com,prompting,in_progress\n")
    progress = bapp("import", "progress", rows, "--format", "tsv")
    assert progress.exit_code == 0, progress.stderr
    assert progress.stdout.splitlines() == [
        "kind\tcreated\tupdated\tunchanged\trejected\tdry_run\tenrolled\tbadges_awarded\tpathways_completed",
        "progress\t1\t0\t0\t0\tfalse\t0\t0\t0",
    ]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # reading the document: no backend's part
def test_import_all_of_an_array_says_so_not_none(bapp: Bapp, tmp_path: Path) -> None:
    # one kind's rows given to `import all` read 'the document holds None, which is not a kind'
    rows = tmp_path / "skills.json"
    rows.write_text('[{"slug": "x", "name": "X"}]')
    result = bapp("import", "all", str(rows))
    assert result.exit_code == 6
    assert result.stderr.startswith("Error: the document is an array of rows\nHint: its top-level keys are kinds: ")


@pytest.mark.parametrize("kind", ["all", "clients"])
def test_a_document_naming_a_kind_twice_is_refused(bapp: Bapp, tmp_path: Path, kind: str) -> None:
    # `import all` imported both `clients` arrays (ann and bob) while the summary's kinds.clients counted only the
    # second; `import clients` took the first array and never read on: bob's row was dropped without a word
    document = '{"clients": [{"email": "ann@example.com"}],\n"clients": [{"email": "bob@example.com"}]}'
    result = bapp("import", kind, write(tmp_path, "twice.json", document))
    assert result.exit_code == 6, result.stderr
    assert result.stderr.startswith("Error: the document holds 'clients' twice; nothing was written")
    assert bapp("clients", "list", "--format", "tsv").stdout == "email\tname\tcompany\tindustry\tcreated_at\n"


def test_a_client_given_twice_in_a_one_line_json_array_is_a_bad_row(bapp: Bapp, tmp_path: Path) -> None:
    # a duplicate e-mail was found by its line differing from the first's: the rows of a one-line array (`jq -c`,
    # json.dumps) all share line 1, so both were inserted and the unique index refused the second: exit 1 on
    # SQLite ('unexpected error: IntegrityError'), exit 8 'another session wrote the same record' on PostgreSQL
    rows = write(tmp_path, "clients.json", '[{"email": "ann@example.com"}, {"email": "ANN@example.com", "name": "A"}]')
    result = bapp("import", "clients", rows)
    assert result.exit_code == 6, result.stderr
    assert "line 1, field email: 'ann@example.com' is already on line 1" in result.stderr
    assert bapp("clients", "list", "--format", "tsv").stdout == "email\tname\tcompany\tindustry\tcreated_at\n"


def test_a_booking_given_twice_without_a_reference_is_named_by_its_cells_not_a_reference_never_made(
    bapp: Bapp, catalogue: Session, tmp_path: Path
) -> None:
    # the second row was refused as "field reference: BK-… is already on line 2": a column the file does not have,
    # and a reference derived for a booking the refused file never creates
    row = "ada@example.com,intro,2029-06-01T10:00:00Z,completed,UTC,,\n"
    result = bapp("import", "bookings", write(tmp_path, "bookings.csv", HEADER + row + row))
    assert result.exit_code == 6, result.stderr
    assert "line 3, field start_time: this client, session and start is already on line 2" in result.stderr
    assert "BK-" not in result.stderr
    given = "reference," + HEADER + "BK-7Q2M9X4D," + row + "BK-7Q2M9X4D," + row
    result = bapp("import", "bookings", write(tmp_path, "given.csv", given))
    assert "line 3, field reference: BK-7Q2M9X4D is already on line 2" in result.stderr
    nothing_written(catalogue)


def test_a_booking_given_twice_through_its_invitee_uri_is_named_by_that_column_not_a_reference_column(
    bapp: Bapp, catalogue: Session, tmp_path: Path
) -> None:
    # rows without a reference update the booking holding their invitee URI: the second was refused as "field
    # reference: BK-… is already on line 2", a column the file does not have
    header = "client,session,start_time,status,calendly_invitee_uri\n"
    uri = "https://api.calendly.com/scheduled_events/E/invitees/I"
    assert (
        bapp(
            "import",
            "bookings",
            write(tmp_path, "a.csv", f"{header}ada@example.com,intro,2029-06-01T10:00Z,completed,{uri}\n"),
        ).exit_code
        == 0
    )
    catalogue.rollback()
    reference = catalogue.scalars(select(Booking.reference)).one()
    rows = "".join(f"ada@example.com,intro,2029-06-01T{hour}:00Z,completed,{uri}\n" for hour in (11, 12))
    result = bapp("import", "bookings", write(tmp_path, "b.csv", header + rows))
    assert result.exit_code == 6, result.stderr
    assert f"line 3, field calendly_invitee_uri: its booking {reference} is already on line 2" in result.stderr
    assert "field reference" not in result.stderr


def test_a_row_overlapping_an_earlier_row_of_the_file_names_that_line_not_a_reference_never_made(
    bapp: Bapp, catalogue: Session, tmp_path: Path
) -> None:
    # the refusal named the earlier row's booking by the reference derived for it, "already has booking BK-…": a
    # booking the refused file never creates, and a value found nowhere in the file
    rows = (
        "ada@example.com,intro,2030-06-01T10:00Z,confirmed,,,\n"
        + "bob@example.com,intro,2030-06-01T10:30Z,confirmed,,,\n"
    )
    result = bapp("import", "bookings", write(tmp_path, "bookings.csv", HEADER + rows), "--json")
    assert result.exit_code == 6, result.stderr
    message = "builder coach@example.com already has the booking on line 2 at 2030-06-01T10:00:00Z–10:30Z overlapping"
    assert f"line 3, start_time: {message}" in result.stderr
    assert f'"line": 3, "field": "start_time", "message": "{message}' in result.stderr
    assert "BK-" not in result.stderr
    rejects = tmp_path / "rejected.csv"
    result = bapp(
        "import",
        "bookings",
        write(tmp_path, "again.csv", HEADER + rows),
        "--continue-on-error",
        "--rejects",
        str(rejects),
    )
    assert result.exit_code == 3, result.stderr
    with open(rejects, newline="") as handle:
        assert [row["error"].startswith(f"start_time: {message}") for row in csv.DictReader(handle)] == [True]
    # a booking in the database keeps its reference: the file's line 2 is now one
    catalogue.rollback()
    reference = catalogue.scalars(select(Booking.reference)).one()
    result = bapp("import", "bookings", write(tmp_path, "third.csv", HEADER + rows.splitlines()[1] + "\n"))
    assert f"already has booking {reference} at 2030-06-01T10:00:00Z–10:30Z" in result.stderr, result.stderr


@pytest.mark.parametrize("kind", ["clients", "enrolments", "progress", "badges", "bookings"])
def test_a_restore_refuses_an_id_its_backup_gives_twice_as_a_bad_row(bapp: Bapp, tmp_path: Path, kind: str) -> None:
    # an edited backup (or two merged by hand) whose rows of a kind repeat an id: both were inserted with it and the
    # table's key refused the second, exit 1 on SQLite ('unexpected error: IntegrityError … UNIQUE constraint
    # failed: users.id'), exit 8 'another session wrote the same record meanwhile' on PostgreSQL
    def two(**row: str) -> list[dict[str, Any]]:
        return [{"id": 1, "client": email, **row} for email in ("ann@example.com", "bob@example.com")]

    rows = {
        "clients": [{"id": 1, "email": "ann@example.com"}, {"id": 1, "email": "bob@example.com"}],
        "enrolments": two(pathway="accelerate"),
        "progress": two(skill="s1", status="in_progress"),
        "badges": two(key="fundamentals", awarded_at="2030-01-01T00:00:00Z"),
        "bookings": [
            {"id": 1, "reference": f"BK-{letter * 8}", "client": email, "session": "intro", "status": "confirmed"}
            | {"start_time": f"2031-01-0{day}T10:00:00Z"}
            for letter, email, day in (("A", "ann@example.com", 1), ("B", "bob@example.com", 2))
        ],
    }
    document = {
        "bapp": {"format": "bapp-backup", "version": 2},
        "skills": [{"id": 1, "slug": "s1", "name": "S1"}],
        "clients": [{"id": 1, "email": "ann@example.com"}, {"id": 2, "email": "bob@example.com"}],
        "sessions": [{"id": 1, "slug": "intro", "title": "Intro", "duration_minutes": 30, "category": "free"}],
    } | {kind: rows[kind]}
    result = bapp("import", "all", write(tmp_path, "backup.json", json.dumps(document, indent=1)))
    assert result.exit_code == 6, result.stderr
    assert "field id: id 1 repeats" in result.stderr
    assert bapp("clients", "list", "--format", "tsv").stdout == "email\tname\tcompany\tindustry\tcreated_at\n"


@pytest.mark.parametrize("fmt", ["json", "toml"])
def test_a_backup_row_without_a_required_column_is_refused_as_without_it(bapp: Bapp, tmp_path: Path, fmt: str) -> None:
    # Under a backup's header a column a row leaves out is null (TOML cannot write one), but a required one is not:
    # a row without its e-mail, or an inbox row without its source, was refused for a null it never gave ("email:
    # Input should be a valid string", "source: Input should be 'receiver', 'apply' or 'pull'")
    document = {
        "bapp": {"format": "bapp-backup", "version": 3},
        "clients": [{"name": "Ann"}],
        "webhook_inbox": [{"event": "invitee.created", "body_sha256": "0" * 64, "received_at": "2030-01-01T00:00:00Z"}],
    }
    text = json.dumps(document) if fmt == "json" else tomli_w.dumps(document)
    result = bapp("import", "all", write(tmp_path, f"backup.{fmt}", text))
    assert result.exit_code == 6, result.stderr
    fields = re.findall(r"field (\w+): (.*)", result.stderr)
    assert fields == [("email", "required"), ("source", "required"), ("body", "required")], result.stderr


NULLED_ROWS = [
    ("clients", {"email": None, "name": "Ann"}, ["email"]),
    ("builders", {"email": None}, ["email"]),
    ("skills", {"slug": None, "name": "S"}, ["slug"]),
    ("pathways", {"slug": "p", "tiers": [{"tier": None, "name": None}]}, ["tiers[0].tier", "tiers[0].name"]),
    ("progress", {"client": None, "skill": None}, ["client", "skill"]),
    ("bookings", {"client": None, "session": "intro", "start_time": None}, ["client", "start_time"]),
    ("enrolments", {"client": "ann@example.com", "pathway": None}, ["pathway"]),
]


@pytest.mark.parametrize(
    ("fmt", "kind", "row", "nulled"),
    [(fmt, *case) for fmt in ("json", "jsonl") for case in NULLED_ROWS]
    + [("json", "all", {"skills": [{"slug": None}], "clients": [{"email": None}]}, ["slug", "email"])]
    + [("csv", "clients", {"email": None, "name": "Ann"}, ["email"])],  # an empty cell is a null
)
def test_a_null_where_a_value_is_needed_is_refused_as_required(
    bapp: Bapp, tmp_path: Path, fmt: str, kind: str, row: dict[str, Any], nulled: list[str]
) -> None:
    # was pydantic's own words for the type it expected: "field email: Input should be a valid string"
    text = json.dumps(row if kind == "all" or fmt == "jsonl" else [row])
    if fmt == "csv":
        text = ",".join(row) + "\n" + ",".join(value or "" for value in row.values())
    result = bapp("import", kind, write(tmp_path, f"rows.{fmt}", text + "\n"))
    assert result.exit_code == 6, result.stderr
    line = 2 if fmt == "csv" else 1
    assert re.findall(rf"  line {line}, field (\S+): (.*)", result.stderr) == [(name, "required") for name in nulled]


def test_a_null_item_of_a_list_is_no_missing_field(bapp: Bapp, tmp_path: Path) -> None:
    # nothing is missing there: the list holds a null where it may hold none, said in pydantic's words
    question = {"name": "Goal", "type": "single_select", "answer_choices": ["A", None]}
    row = {"slug": "intro", "title": "Intro", "duration_minutes": 30, "custom_questions": [question, None]}
    result = bapp("import", "sessions", write(tmp_path, "sessions.json", json.dumps([row])))
    assert result.exit_code == 6, result.stderr
    assert re.findall(r"  line 1, field (\S+): (.*)", result.stderr) == [
        ("custom_questions[0].answer_choices[1]", "Input should be a valid string"),
        ("custom_questions[1]", "Input should be a valid dictionary"),
    ]


def test_toml_tables_and_arrays_of_tables_where_a_value_belongs_are_bad_rows_naming_line_and_field(
    bapp: Bapp, tmp_path: Path
) -> None:
    text = (
        '[[clients]]\nemail = "a@example.com"\nname = { first = "A" }\n\n'  # an inline table for a name
        '[[clients]]\nemail = "b@example.com"\n[[clients.company]]\nname = "B"\n\n'  # an array of tables
        '[[clients]]\nemail = ["c@example.com"]\nindustry = 2030-01-01\n'  # an array, a date
    )
    result = bapp("import", "clients", write(tmp_path, "clients.toml", text))
    assert result.exit_code == 6, result.stderr
    assert re.findall(r"  line (\d+), field (\S+): ", result.stderr) == [
        ("1", "name"),
        ("5", "company"),
        ("10", "email"),
        ("10", "industry"),
    ]


def test_an_imported_booking_coaches_a_coachless_enrolment_as_bookings_create_does(bapp: Bapp) -> None:
    """README rule 4: booking under a pathway makes the builder the client's coach. `bookings create` (and
    Calendly) give a coachless enrolment the booking's builder; `import bookings` left it coachless, so the
    client dropped out of that builder's `reports client-progress --builder` and `progress table --builder`.
    A coach already there stays, whichever door; within one file, the first row with a builder coaches."""
    steps = [
        ("builders", "add", "bob@coach.example"),
        ("builders", "add", "eve@coach.example"),
        ("sessions", "add", "--title", "Intro", "--duration", "30"),  # no builder
        ("sessions", "add", "--title", "Bob 1:1", "--duration", "30", "--builder", "bob@coach.example"),
    ]
    for step in steps:
        assert bapp(*step).exit_code == 0, step
    for email in ("ann", "bea", "cy", "dan"):
        assert bapp("clients", "add", f"{email}@client.example").exit_code == 0
    for email, coach in (("ann", None), ("bea", None), ("dan", "eve@coach.example")):
        coached = ("--builder", coach) if coach else ()
        assert bapp("clients", "enroll", f"{email}@client.example", "accelerate", *coached).exit_code == 0
    created = bapp(
        "bookings", "create", "--client", "ann@client.example", "--session", "bob-1-1", "--start", "2031-01-06T10:00Z",
        "--pathway", "accelerate", "--json",
    )  # fmt: skip
    assert created.exit_code == 0, created.stderr
    rows = [
        "bea@client.example,bob-1-1,2031-01-07T10:00:00Z,accelerate",  # enrolled, coachless: bob coaches now
        "cy@client.example,intro,2031-01-08T10:00:00Z,accelerate",  # enrols cy, no builder to coach
        "cy@client.example,bob-1-1,2031-01-09T10:00:00Z,accelerate",  # the first row with a builder coaches
        "dan@client.example,bob-1-1,2031-01-10T10:00:00Z,accelerate",  # eve coaches already and stays
    ]
    csv_text = "client,session,start_time,pathway\n" + "\n".join(rows) + "\n"
    imported = bapp("import", "bookings", "-", "--input-format", "csv", "--json", stdin=csv_text)
    assert imported.exit_code == 0, imported.stderr
    assert (imported.json()["created"], imported.json()["enrolled"]) == (4, 1)
    coaches = {row["client"]: row["builder"] for row in bapp("export", "enrolments", "--format", "json").json()}
    assert coaches == {
        "ann@client.example": "bob@coach.example",
        "bea@client.example": "bob@coach.example",
        "cy@client.example": "bob@coach.example",
        "dan@client.example": "eve@coach.example",
    }
    report = bapp("reports", "client-progress", "--builder", "bob@coach.example", "--json").json()
    assert [row["client"] for row in report] == ["ann@client.example", "bea@client.example", "cy@client.example"]


def test_a_row_that_reactivates_a_booking_under_a_pathway_its_client_is_enrolled_in_keeps_the_one_enrolment(
    bapp: Bapp,
) -> None:
    """A row that only changes a booking's status (no `pathway` column) keeps the booking's pathway, and a
    booking brought back from cancelled enrols its client as a new one does. The client's enrolments were
    read only for rows that named a pathway, so an enrolled client got a second one planned: exit 1
    (the enrolments' unique key), not the update; now the one enrolment stays and the builder coaches it."""
    for step in (
        ("builders", "add", "bob@coach.example"),
        ("sessions", "add", "--title", "Bob 1:1", "--duration", "30", "--builder", "bob@coach.example"),
        ("clients", "add", "ann@client.example"),
        ("clients", "enroll", "ann@client.example", "accelerate"),  # no coach
    ):
        assert bapp(*step).exit_code == 0, step
    booking = "BK-7Q2M9X4D,ann@client.example,bob-1-1,2031-01-07T10:00:00Z"
    cancelled = f"reference,client,session,start_time,pathway,status\n{booking},accelerate,cancelled\n"
    assert bapp("import", "bookings", "-", "--input-format", "csv", stdin=cancelled).exit_code == 0
    confirmed = f"reference,client,session,start_time,status\n{booking},confirmed\n"
    imported = bapp("import", "bookings", "-", "--input-format", "csv", "--json", stdin=confirmed)
    assert imported.exit_code == 0, imported.stderr
    assert (imported.json()["updated"], imported.json()["enrolled"]) == (1, 0)
    enrolments = bapp("export", "enrolments", "--format", "json").json()
    assert [(row["client"], row["pathway"], row["builder"]) for row in enrolments] == [
        ("ann@client.example", "accelerate", "bob@coach.example")
    ]
    shown = bapp("bookings", "show", "BK-7Q2M9X4D", "--json").json()
    assert (shown["status"], shown["pathway"]) == ("confirmed", "accelerate")


def test_an_imported_history_dates_its_badges_and_completions_when_the_data_met_them(
    bapp: Bapp, tmp_path: Path
) -> None:
    """`import progress` backfills history: a badge is awarded, and a completed pathway's enrolment
    completed, at the latest completion of the skills that met it (never after now) — they were stamped at
    the import, so `reports pathway-analytics` counted the days from the start to the backfill (about three
    years here) rather than the 60 the client took. A skill completed by hand is still dated now."""
    before = dt.datetime.now(dt.UTC).isoformat()
    skills = "slug,name,links\ns1,One,accelerate:1\ns2,Two,accelerate:2\ns3,Three,accelerate:3\n"
    assert bapp("import", "skills", write(tmp_path, "skills.csv", skills)).exit_code == 0
    for email in ("ann", "bea", "cy"):
        assert bapp("clients", "add", f"{email}@client.example").exit_code == 0
    enrolment = "client,pathway,status,start_date\nann@client.example,accelerate,active,2024-01-01\n"
    assert bapp("import", "enrolments", write(tmp_path, "enrolments.csv", enrolment)).exit_code == 0
    progress = (
        "client,skill,status,completed_at\n"
        "ann@client.example,s1,completed,2024-01-11T10:00:00Z\n"
        "ann@client.example,s3,completed,2024-03-01T12:00:00Z\n"  # tier 3 and the pathway: the latest of three
        "ann@client.example,s2,completed,2024-02-01T10:00:00Z\n"
        "cy@client.example,s1,completed,2024-01-11T10:00:00Z\n"
    )  # (a completion dated later than the import is a bad row: test_an_imported_progress_row_is_history)
    imported = bapp("import", "progress", write(tmp_path, "progress.csv", progress), "--json")
    assert imported.exit_code == 0, imported.stderr
    assert (imported.json()["badges_awarded"], imported.json()["pathways_completed"]) == (5, 1)
    assert bapp("skills", "complete", "cy@client.example", "s2").exit_code == 0  # by hand: now

    badges = {
        (row["client"], row["key"]): row["awarded_at"]
        for row in bapp("export", "all", "--format", "json").json()["badges"]
    }
    historic = {key: when for key, when in badges.items() if when.startswith("2024")}
    assert historic == {
        ("ann@client.example", "tier:accelerate:1"): "2024-01-11T10:00:00Z",
        ("ann@client.example", "tier:accelerate:2"): "2024-02-01T10:00:00Z",
        ("ann@client.example", "tier:accelerate:3"): "2024-03-01T12:00:00Z",
        ("ann@client.example", "pathway:accelerate"): "2024-03-01T12:00:00Z",
        ("cy@client.example", "tier:accelerate:1"): "2024-01-11T10:00:00Z",
    }
    now = dt.datetime.now(dt.UTC).isoformat()
    assert before[:19] <= badges[("cy@client.example", "tier:accelerate:2")][:19] <= now[:19]
    enrolments = bapp("export", "enrolments", "--format", "json").json()
    assert [(row["client"], row["completed_at"]) for row in enrolments] == [
        ("ann@client.example", "2024-03-01T12:00:00Z")
    ]
    analytics = bapp("reports", "pathway-analytics", "--json").json()
    assert [row["average_days_to_complete"] for row in analytics if row["pathway"] == "accelerate"] == [60.0]


def test_an_imported_history_older_than_an_enrolment_completes_it_as_it_starts_not_before(
    bapp: Bapp, tmp_path: Path
) -> None:
    """`import progress` dates a completed pathway's enrolment at the history's time, but an enrolment never
    completes before it starts: an admin may have enrolled one from a later day than the history's (the
    import itself enrolled a client it names with a pathway from today; now from the history's first day).
    Such an enrolment was completed on 2024-03-01 with a start date after it; it now completes at its start.
    Its badges keep the history's time."""
    skills = "slug,name,links\ns1,One,accelerate:1\ns2,Two,accelerate:2\ns3,Three,accelerate:3\n"
    assert bapp("import", "skills", write(tmp_path, "skills.csv", skills)).exit_code == 0
    for email in ("ann", "bea", "cy"):
        assert bapp("clients", "add", f"{email}@client.example").exit_code == 0
    enrolments = (
        "client,pathway,status,start_date\n"
        "bea@client.example,accelerate,active,2024-03-10\n"  # after her last completion
        "cy@client.example,accelerate,active,2024-01-01\n"  # before it: completed when the history says
    )
    assert bapp("import", "enrolments", write(tmp_path, "enrolments.csv", enrolments)).exit_code == 0
    history = "".join(
        f"{email}@client.example,s{number},completed,2024-0{number}-01T10:00:00Z,accelerate\n"
        for email in ("ann", "bea", "cy")
        for number in (1, 2, 3)
    )
    progress = write(tmp_path, "progress.csv", "client,skill,status,completed_at,pathway\n" + history)
    imported = bapp("import", "progress", progress, "--json")
    assert imported.exit_code == 0, imported.stderr
    assert (imported.json()["enrolled"], imported.json()["pathways_completed"]) == (1, 3)  # ann by the import

    completed = {
        row["client"]: (row["start_date"], row["completed_at"])
        for row in bapp("export", "enrolments", "--format", "json").json()
    }
    assert completed == {
        # enrolled by the import: from her history's first day (it was today, her 60 days counted as 0)
        "ann@client.example": ("2024-01-01", "2024-03-01T10:00:00Z"),
        "bea@client.example": ("2024-03-10", "2024-03-10T00:00:00Z"),
        "cy@client.example": ("2024-01-01", "2024-03-01T10:00:00Z"),
    }
    badges = bapp("export", "all", "--format", "json").json()["badges"]
    assert {row["awarded_at"] for row in badges if row["key"] == "pathway:accelerate"} == {"2024-03-01T10:00:00Z"}
    analytics = bapp("reports", "pathway-analytics", "--json").json()
    assert [row["average_days_to_complete"] for row in analytics if row["pathway"] == "accelerate"] == [40.0]


def test_an_enrolment_the_progress_import_makes_starts_on_its_rows_earliest_day(bapp: Bapp, tmp_path: Path) -> None:
    # it started today whatever the history its rows gave; now on the earliest started_at or completed_at of the
    # rows that enrol the client (any order in the file), in UTC as the enrolment's completion is compared
    skills = "slug,name,links\ns1,One,accelerate:1\ns2,Two,accelerate:2\n"
    assert bapp("import", "skills", write(tmp_path, "skills.csv", skills)).exit_code == 0
    assert bapp("clients", "add", "dee@client.example").exit_code == 0
    progress = write(
        tmp_path,
        "progress.csv",
        "client,skill,status,started_at,completed_at,pathway\n"
        "dee@client.example,s2,completed,2024-02-01T09:00:00Z,2024-02-10T09:00:00Z,accelerate\n"
        "dee@client.example,s1,in_progress,2023-12-15T23:30:00Z,,accelerate\n",
    )
    imported = bapp("import", "progress", progress, "--json")
    assert imported.exit_code == 0 and imported.json()["enrolled"] == 1, imported.stderr
    (enrolment,) = bapp("export", "enrolments", "--format", "json").json()
    assert (enrolment["start_date"], enrolment["status"]) == ("2023-12-15", "active")


def test_an_enrolment_made_after_its_client_finished_the_pathway_is_completed_at_once(
    bapp: Bapp, tmp_path: Path
) -> None:
    # "completed at the moment the criteria are met": the pathway's skills completed under another pathway (they are
    # linked to both), an enrolment made afterwards stayed active at 100 %, by `clients enroll` or an import alike
    skills = "slug,name,links\n" + "".join(f's{tier},S{tier},"accelerate:{tier},pivot:{tier}"\n' for tier in (1, 2, 3))
    assert bapp("import", "skills", write(tmp_path, "skills.csv", skills)).exit_code == 0
    for email in ("ann", "bea", "cy"):
        assert bapp("clients", "add", f"{email}@client.example").exit_code == 0
        assert bapp("clients", "enroll", f"{email}@client.example", "pivot").exit_code == 0
    history = "".join(
        f"{email}@client.example,s{number},completed,2024-0{number}-01T10:00:00Z,pivot\n"
        for email in ("ann", "bea")
        for number in (1, 2, 3)
    )
    progress = write(tmp_path, "progress.csv", "client,skill,status,completed_at,pathway\n" + history)
    assert bapp("import", "progress", progress).exit_code == 0
    enrolled = bapp("clients", "enroll", "ann@client.example", "accelerate", "--json")
    assert enrolled.exit_code == 0, enrolled.stderr
    assert (enrolled.json()["status"], enrolled.json()["enrolled"]) == ("completed", True)
    # the import: bea has finished accelerate (completed, dated as her history met it, not before her start), cy not
    enrolments = (
        "client,pathway,status,start_date\n"
        "bea@client.example,accelerate,active,2024-01-01\n"
        "cy@client.example,accelerate,active,2024-01-01\n"
    )
    assert bapp("import", "enrolments", write(tmp_path, "enrolments.csv", enrolments)).exit_code == 0
    states = {
        row["client"]: (row["status"], row["completed_at"])
        for row in bapp("export", "enrolments", "--format", "json").json()
        if row["pathway"] == "accelerate"
    }
    assert states["bea@client.example"] == ("completed", "2024-03-01T10:00:00Z")
    assert states["cy@client.example"] == ("active", None)
    assert states["ann@client.example"][0] == "completed"
    shown = bapp("clients", "show", "bea@client.example", "--json").json()
    assert {(row["pathway"], row["status"], row["percent"]) for row in shown["enrolments"]} == {
        ("accelerate", "completed", 100),
        ("pivot", "completed", 100),
    }


def test_a_bookings_import_says_the_pathways_its_enrolments_completed(
    bapp: Bapp, catalogue: Session, tmp_path: Path
) -> None:
    # as `bookings create` says it (pathways_completed): the import enrolled ann in accelerate, whose skills she had
    # all completed under pivot, so the enrolment was completed as it was made, and the summary said nothing of it
    skills = "slug,name,links\n" + "".join(f's{tier},S{tier},"accelerate:{tier},pivot:{tier}"\n' for tier in (1, 2, 3))
    assert bapp("import", "skills", write(tmp_path, "skills.csv", skills)).exit_code == 0
    assert bapp("clients", "add", "ann@client.example").exit_code == 0
    assert bapp("clients", "enroll", "ann@client.example", "pivot").exit_code == 0
    history = "".join(f"ann@client.example,s{n},completed,2024-0{n}-01T10:00:00Z,pivot\n" for n in (1, 2, 3))
    progress = write(tmp_path, "progress.csv", "client,skill,status,completed_at,pathway\n" + history)
    assert bapp("import", "progress", progress).exit_code == 0
    booked = HEADER + "ann@client.example,intro,2029-06-01T10:00:00Z,,UTC,accelerate,\n"
    imported = bapp("import", "bookings", write(tmp_path, "bookings.csv", booked), "--json")
    assert imported.exit_code == 0, imported.stderr
    summary = imported.json()
    # accelerate's badges she held already: the progress import's completion rules awarded them (its skills' pathways)
    assert (summary["enrolled"], summary["pathways_completed"], summary["badges_awarded"]) == (1, 1, 0)
    shown = bapp("clients", "show", "ann@client.example", "--json").json()
    assert ("accelerate", "completed") in {(row["pathway"], row["status"]) for row in shown["enrolments"]}


def test_a_skills_import_says_the_pathways_its_catalogue_change_completed(bapp: Bapp, tmp_path: Path) -> None:
    # as `skills archive` and the progress import say it: archiving s4, the one skill of accelerate's tier 3 ann had
    # not done, completed her enrolment; the summary counted the badges and not the completion (both doors)
    skills = "slug,name,links\n" + "".join(f"s{n},S{n},accelerate:{min(n, 3)}\n" for n in (1, 2, 3, 4))
    assert bapp("import", "skills", write(tmp_path, "skills.csv", skills)).exit_code == 0
    assert bapp("clients", "add", "ann@client.example").exit_code == 0
    assert bapp("clients", "enroll", "ann@client.example", "accelerate").exit_code == 0
    for skill in ("s1", "s2", "s3"):
        assert bapp("skills", "complete", "ann@client.example", skill).exit_code == 0
    archived = write(tmp_path, "archived.json", '{"skills": [{"slug": "s4", "archived": true}]}')
    merged = bapp("import", "all", archived, "--json", "--dry-run")
    assert merged.exit_code == 0, merged.stderr
    summary = merged.json()["kinds"]["skills"]
    assert (summary["badges_awarded"], summary["pathways_completed"]) == (2, 1)  # tier 3's badge and the pathway's
    imported = bapp("import", "skills", write(tmp_path, "archived.csv", "slug,archived\ns4,true\n"), "--json")
    assert imported.exit_code == 0, imported.stderr
    assert (imported.json()["badges_awarded"], imported.json()["pathways_completed"]) == (2, 1)
    again = bapp("import", "skills", write(tmp_path, "archived.csv", "slug,archived\ns4,true\n"), "--json")
    assert (again.json()["unchanged"], again.json()["pathways_completed"]) == (1, 0)  # the key stays, at 0


def test_an_enrolment_the_progress_import_makes_for_a_finished_pathway_is_completed(bapp: Bapp, tmp_path: Path) -> None:
    # as `clients enroll` and `import enrolments` complete such an enrolment: the progress import enrolled ann in
    # accelerate (a row naming it) when her skills, linked to both pathways, were already completed under pivot
    skills = "slug,name,links\n" + "".join(f's{tier},S{tier},"accelerate:{tier},pivot:{tier}"\n' for tier in (1, 2, 3))
    assert bapp("import", "skills", write(tmp_path, "skills.csv", skills)).exit_code == 0
    assert bapp("clients", "add", "ann@client.example").exit_code == 0
    assert bapp("clients", "enroll", "ann@client.example", "pivot").exit_code == 0
    head = "client,skill,status,completed_at,pathway\n"
    history = "".join(
        f"ann@client.example,s{number},completed,2024-0{number}-01T10:00:00Z,pivot\n" for number in (1, 2, 3)
    )
    assert bapp("import", "progress", write(tmp_path, "pivot.csv", head + history)).exit_code == 0
    moved = head + "ann@client.example,s3,completed,2024-03-01T10:00:00Z,accelerate\n"
    for dry_run in (True, False):
        imported = bapp("import", "progress", write(tmp_path, "moved.csv", moved), "--json", *(["--dry-run"] * dry_run))
        assert imported.exit_code == 0, imported.stderr
        assert (imported.json()["enrolled"], imported.json()["pathways_completed"]) == (1, 1)
    states = {
        row["pathway"]: (row["status"], row["completed_at"])
        for row in bapp("export", "enrolments", "--format", "json").json()
    }
    assert states["accelerate"] == ("completed", "2024-03-01T10:00:00Z")


def test_an_enrolment_the_bookings_import_makes_for_a_finished_pathway_is_completed(bapp: Bapp, tmp_path: Path) -> None:
    # as `bookings create` completes it (services.enrolment.enrol): ann's skills, linked to both pathways, were
    # completed under pivot; a booking row under accelerate enrolled her there, active at 100 %
    skills = "slug,name,links\n" + "".join(f's{tier},S{tier},"accelerate:{tier},pivot:{tier}"\n' for tier in (1, 2, 3))
    assert bapp("import", "skills", write(tmp_path, "skills.csv", skills)).exit_code == 0
    assert bapp("sessions", "add", "--title", "Intro", "--duration", "30").exit_code == 0
    for email in ("ann", "bea"):
        assert bapp("clients", "add", f"{email}@client.example").exit_code == 0
        assert bapp("clients", "enroll", f"{email}@client.example", "pivot").exit_code == 0
    history = "".join(f"ann@client.example,s{number},completed,pivot\n" for number in (1, 2, 3))
    history += "bea@client.example,s1,completed,pivot\n"  # bea has not finished it
    assert (
        bapp("import", "progress", write(tmp_path, "progress.csv", "client,skill,status,pathway\n" + history)).exit_code
        == 0
    )
    rows = "client,session,start_time,pathway\n" + "".join(
        f"{email}@client.example,intro,2031-01-0{day}T10:00:00Z,accelerate\n" for day, email in ((6, "ann"), (7, "bea"))
    )
    imported = bapp("import", "bookings", write(tmp_path, "bookings.csv", rows), "--json")
    assert imported.exit_code == 0, imported.stderr
    assert imported.json()["enrolled"] == 2
    states = {
        row["client"]: row["status"]
        for row in bapp("export", "enrolments", "--format", "json").json()
        if row["pathway"] == "accelerate"
    }
    assert states == {"ann@client.example": "completed", "bea@client.example": "active"}


def test_an_imported_progress_row_is_history(bapp: Bapp, tmp_path: Path, second_database_url: str) -> None:
    """`import progress` took a completion dated after the import (2099) and a start after the completion as
    they came, where bapp's own doors never write either (badges and enrolments were then capped at the
    import, the progress row was not). Each is a bad row naming its field (exit 6, nothing written), whether the
    row gives both times or meets the one stored. A restore keeps a backup's times as recorded: bapp wrote them,
    by a clock that may have run fast, or stepped back between a start and its completion."""
    skills = "slug,name,links\ns1,One,accelerate:1\ns2,Two,accelerate:2\ns3,Three,accelerate:3\n"
    assert bapp("import", "skills", write(tmp_path, "skills.csv", skills)).exit_code == 0
    for email in ("ann", "bea"):
        assert bapp("clients", "add", f"{email}@client.example").exit_code == 0
    assert bapp("skills", "start", "ann@client.example", "s3").exit_code == 0  # started today
    before = bapp("export", "all", "--format", "json").stdout
    progress = (
        "client,skill,status,started_at,completed_at\n"
        "ann@client.example,s1,completed,,2099-01-01T00:00:00Z\n"
        "ann@client.example,s2,completed,2024-02-01T00:00:00Z,2024-01-01T00:00:00Z\n"
        "bea@client.example,s1,in_progress,2099-01-01T00:00:00Z,\n"
        "bea@client.example,s2,completed,2024-01-01T00:00:00Z,2024-01-01T00:00:00Z\n"  # a good row
    )
    refused = bapp("import", "progress", write(tmp_path, "progress.csv", progress))
    assert refused.exit_code == 6, refused.stderr
    (now,) = set(re.findall(r"after this import \((.+?)\)", refused.stderr))
    assert [line for line in refused.stderr.splitlines() if line.startswith("  line")] == [
        f"  line 2, field completed_at: 2099-01-01T00:00:00Z is after this import ({now})",
        "  line 3, field started_at: 2024-02-01T00:00:00Z is after completed_at (2024-01-01T00:00:00Z)",
        f"  line 4, field started_at: 2099-01-01T00:00:00Z is after this import ({now})",
    ]
    assert "3 bad rows" in refused.stderr and "nothing was written" in refused.stderr
    # a completion before the start stored today (no started_at column: the stored one stands)
    completion = "client,skill,status,completed_at\nann@client.example,s3,completed,2024-01-01T00:00:00Z\n"
    refused = bapp("import", "progress", write(tmp_path, "completion.csv", completion))
    started = json.loads(before)["progress"][0]["started_at"]
    assert f"line 2, field started_at: {started} is after completed_at (2024-01-01T00:00:00Z)" in refused.stderr
    assert refused.exit_code == 6 and bapp("export", "all", "--format", "json").stdout == before

    backup = json.loads(before)
    ahead = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).isoformat().replace("+00:00", "Z")
    backup["progress"][0] |= {"status": "completed", "completed_at": ahead, "completed_via": "manual", "attempts": 1}
    backup["progress"][0] |= {"last_attempt_at": ahead, "started_at": "2099-01-01T00:00:00Z"}
    restored = Bapp(second_database_url, tmp_path / "restored")
    result = restored("import", "all", write(tmp_path, "backup.json", json.dumps(backup)))
    assert result.exit_code == 0, result.stderr
    (row,) = restored("export", "progress", "--format", "json").json()
    assert (row["started_at"], row["completed_at"]) == ("2099-01-01T00:00:00Z", ahead)


def test_an_imported_enrolment_s_completion_is_history(bapp: Bapp, tmp_path: Path, second_database_url: str) -> None:
    """`import enrolments` took a completed_at after the import (2099) as it came, where `import progress` refuses
    one (8f38ecc) and no command of bapp writes one: `reports pathway-analytics` then counted the days to 2099.
    It is a bad row naming its line and field (exit 6, nothing written), for a new enrolment and for one
    stored; a restore keeps a backup's completion as recorded (its clock may have run fast)."""
    for email in ("ann", "bea"):
        assert bapp("clients", "add", f"{email}@client.example").exit_code == 0
    assert bapp("clients", "enroll", "bea@client.example", "accelerate").exit_code == 0
    before = bapp("export", "all", "--format", "json").stdout
    enrolments = (
        "client,pathway,status,completed_at\n"
        "ann@client.example,accelerate,completed,2099-01-01T00:00:00Z\n"
        "bea@client.example,accelerate,completed,2099-01-01T00:00:00+02:00\n"
        "ann@client.example,pivot,completed,2024-01-01T00:00:00Z\n"  # a good row
    )
    refused = bapp("import", "enrolments", write(tmp_path, "enrolments.csv", enrolments))
    assert refused.exit_code == 6, refused.stderr
    (now,) = set(re.findall(r"after this import \((.+?)\)", refused.stderr))
    assert [line for line in refused.stderr.splitlines() if line.startswith("  line")] == [
        f"  line 2, field completed_at: 2099-01-01T00:00:00Z is after this import ({now})",
        f"  line 3, field completed_at: 2098-12-31T22:00:00Z is after this import ({now})",
    ]
    assert "2 bad rows" in refused.stderr and bapp("export", "all", "--format", "json").stdout == before

    backup = json.loads(before)
    ahead = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).isoformat().replace("+00:00", "Z")
    backup["enrolments"][0] |= {"status": "completed", "completed_at": ahead}
    restored = Bapp(second_database_url, tmp_path / "restored")
    result = restored("import", "all", write(tmp_path, "backup.json", json.dumps(backup)))
    assert result.exit_code == 0, result.stderr
    (row,) = restored("export", "enrolments", "--format", "json").json()
    assert (row["status"], row["completed_at"]) == ("completed", ahead)

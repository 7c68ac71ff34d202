"""Every door that stores text refuses control characters other than tab and line breaks, as `import` does.

Before, `clients add --name $'a\\x1b[31m'` (and builders, pathways, skills, sessions, notes, booking names)
stored the text; `export all` then wrote a backup that `import all` refused (the row's control character), so
a database built at the command line did not restore. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from tests.conftest import Bapp, restore_backup

ESC = "x\x1b[31my\x07"

DOORS = [
    ("clients", "add", "c1@example.com", "--name", ESC),
    ("clients", "add", "c2@example.com", "--company", ESC),
    ("builders", "add", "b1@example.com", "--name", ESC),
    ("builders", "add", "b2@example.com", "--calendly-user", f"https://api.calendly.com/users/{ESC}"),
    ("pathways", "add", "new-path", "--name", ESC),
    ("pathways", "add", "new-path", "--name", "New", "--description", ESC),
    ("skills", "add", "new-skill", "--name", ESC),
    ("skills", "add", "new-skill", "--name", "New", "--domain", ESC),
    ("skills", "add", "new-skill", "--name", "New", "--description", ESC),
    ("sessions", "add", "--duration", "30", "--title", ESC),
    ("sessions", "add", "--title", "New", "--duration", "30", "--description", ESC),
]


@pytest.mark.parametrize("command", DOORS, ids=lambda command: "-".join(command[:2]) + command[-2])
def test_a_control_character_is_refused_naming_the_field_and_nothing_is_stored(
    bapp: Bapp, command: tuple[str, ...]
) -> None:
    before = bapp("export", "all", "--format", "json")
    result = bapp(*command)
    assert result.exit_code == 6, result.stderr
    field = command[-2].removeprefix("--")
    assert f"{field}: holds the control character U+001B" in result.stderr
    assert bapp("export", "all", "--format", "json").stdout == before.stdout


def test_tabs_and_line_breaks_are_kept_and_what_the_commands_store_restores(
    bapp: Bapp, tmp_path: Path, second_database_url: str
) -> None:
    assert bapp("clients", "add", "t@example.com", "--name", "Tab\there\nand a line").exit_code == 0
    assert bapp("skills", "add", "s-one", "--name", "S", "--description", "one\r\ntwo").exit_code == 0
    restored, _ = restore_backup(bapp, second_database_url, tmp_path)
    assert restored("clients", "show", "t@example.com", "--json").json()["name"] == "Tab\there\nand a line"


QUESTION = "What brings you to BuildAppsWith?"
BOOKING = ("bookings", "create", "--client", "ava.chen@client.example", "--session", "getting-started-free-intro")


def test_an_answer_holding_a_control_character_is_refused_naming_its_question(catalogue: Bapp, tmp_path: Path) -> None:
    answers = tmp_path / "answers.json"
    answers.write_text(f'{{"{QUESTION}": "Agents\\u0007", "Which best describes you?": "Founder"}}')
    before = catalogue("export", "all", "--format", "json")
    for given in (
        ("--answer", f"{QUESTION}=Agents\x1b[2J", "--answer", "Which best describes you?=Founder"),
        ("--answers-file", str(answers)),
    ):
        result = catalogue(*BOOKING, "--start", "2031-01-06T10:00Z", *given)
        assert result.exit_code == 6, result.stderr
        assert f"answer {QUESTION!r}: holds the control character U+00" in result.stderr
        assert catalogue("export", "all", "--format", "json").stdout == before.stdout


def test_a_typed_name_and_the_same_name_in_an_import_cell_are_refused_alike(bapp: Bapp, tmp_path: Path) -> None:
    names = ("Tab\there", "Line\nbreak", "Carriage\rreturn", "Escape\x1b", "Del\x7f", "C1\x9b", "Bell\x07")
    for number, name in enumerate(names):
        email = f"rule{number}@client.example"
        rows = tmp_path / "clients.csv"
        rows.write_text(f'email,name\n{email},"{name}"\n', encoding="utf-8")
        imported = bapp("import", "clients", str(rows), "--dry-run")
        typed = bapp("clients", "add", email, "--name", name)
        assert (imported.exit_code, typed.exit_code) in ((0, 0), (6, 6)), (name, imported.stderr, typed.stderr)


def test_an_idempotency_key_holding_a_control_character_is_refused_as_the_restore_would(
    catalogue: Bapp, tmp_path: Path, second_database_url: str
) -> None:
    # bookings create stored such a key, and `import all` then refused the backup holding it (the row's control
    # character): nothing restored. A key is refused as the other typed text is; a blank or long one as before.
    answers = ("--answer", f"{QUESTION}=Agents", "--answer", "Which best describes you?=Founder")
    before = catalogue("export", "all", "--format", "json")
    for key, message in (
        (ESC, "idempotency-key: holds the control character U+001B"),
        ("   ", "idempotency-key: must not be empty"),
        ("k" * 201, "idempotency-key: 201 characters; at most 200"),
    ):
        result = catalogue(*BOOKING, "--start", "2031-01-06T10:00Z", *answers, "--idempotency-key", key)
        assert result.exit_code == 6, result.stderr
        assert result.stderr.startswith(f"Error: {message}")
        assert catalogue("export", "all", "--format", "json").stdout == before.stdout
    kept = catalogue(*BOOKING, "--start", "2031-01-06T10:00Z", *answers, "--idempotency-key", " a\tkey ", "--json")
    assert kept.exit_code == 0, kept.stderr
    assert kept.json()["idempotency_key"] == "a\tkey"
    restored, _ = restore_backup(catalogue, second_database_url, tmp_path)
    assert restored("bookings", "show", kept.json()["reference"], "--json").json()["idempotency_key"] == "a\tkey"


@pytest.mark.parametrize("fmt", ["csv", "tsv"])
def test_a_lone_carriage_return_is_quoted_in_csv_and_tsv_so_the_text_reads_back(
    bapp: Bapp, tmp_path: Path, fmt: str
) -> None:
    # Python 3.11's csv writer quotes a cell only for the characters of its line terminator ("\n"): a name holding
    # a carriage return alone went out bare, where a spreadsheet or any CSV reader ends the row, and `bapp import`
    # refused bapp's own export ("a carriage return outside quotes"). Both writers: listings and exports.
    name = "Carriage\rreturn"
    assert bapp("clients", "add", "cr@example.com", "--name", name).exit_code == 0
    exported = tmp_path / f"clients.{fmt}"
    assert bapp("export", "clients", "-o", str(exported)).exit_code == 0
    delimiter = "\t" if fmt == "tsv" else ","
    for written in (bapp("clients", "list", "--format", fmt).stdout, exported.read_bytes().decode()):
        header, row = csv.reader(io.StringIO(written, newline=""), delimiter=delimiter)
        assert row[header.index("name")] == name
        assert written.count("\n") == 2 and "\r\n" not in written  # lines still end in LF alone
    imported = bapp("import", "clients", str(exported), "--json")
    assert imported.exit_code == 0, imported.stderr
    assert imported.json()["unchanged"] == 1


@pytest.mark.parametrize("fmt", ["csv", "tsv"])
def test_a_quoted_lone_carriage_return_imports_exactly_and_comes_back_quoted_in_the_rejects_file(
    bapp: Bapp, tmp_path: Path, fmt: str
) -> None:
    # The rejects file is the third CSV/TSV writer: a rejected row's cells went out as the export's did, a lone CR
    # bare, so the file to fix and import again was refused ("a carriage return outside quotes").
    delimiter = "\t" if fmt == "tsv" else ","
    given = tmp_path / f"clients.{fmt}"
    rows = [["email", "name"], ["cr@example.com", "Carriage\rreturn"], ["not-an-email", "Bad\rrow"]]
    given.write_bytes("".join(delimiter.join(f'"{cell}"' for cell in row) + "\n" for row in rows).encode())
    rejects = tmp_path / f"rejected.{fmt}"
    result = bapp("import", "clients", str(given), "--continue-on-error", "--rejects", str(rejects), "--json")
    assert result.exit_code == 3, result.stderr
    assert (result.json()["created"], result.json()["rejected"]) == (1, 1)
    assert bapp("clients", "show", "cr@example.com", "--json").json()["name"] == "Carriage\rreturn"
    header, rejected = csv.reader(io.StringIO(rejects.read_bytes().decode(), newline=""), delimiter=delimiter)
    assert rejected[: header.index("error")] == ["not-an-email", "Bad\rrow"]
    assert "\r\n" not in rejects.read_bytes().decode()

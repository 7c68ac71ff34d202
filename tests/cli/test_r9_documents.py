"""R9 for JSON and TOML documents a user hands bapp: besides a malformed document, Python's readers refuse a
number of more than 4300 digits (ValueError) and arrays nested a thousand deep (RecursionError). Each reader
of a user's document — import files of every format, the config file, --answers-file, credentials and keys
for `badges verify` — reports them with its documented exit code and a message naming the file and the
problem, and writes nothing."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from bapp_cli.errors import InvalidInput
from bapp_cli.services.transfer.formats import Source
from tests.conftest import REPO, Bapp

HUGE = "9" * 5000
DEEP = "[" * 5000 + "]" * 5000


@pytest.mark.parametrize("value", [HUGE, DEEP], ids=["huge-number", "deep-nesting"])
@pytest.mark.parametrize("fmt", ["json", "toml"])
def test_a_json_or_toml_import_file_holding_it_is_a_bad_file_naming_its_line(fmt: str, value: str) -> None:
    data = f'[\n{{"email": "a@b.example",\n "name": {value}}}]' if fmt == "json" else f"[[clients]]\nname = {value}"
    with pytest.raises(InvalidInput) as refused:
        [row for _, rows in Source(fmt, io.BytesIO(data.encode())).sections() for row in rows]
    assert refused.value.exit_code == 6
    said = "a number longer than 4300 digits" if value is HUGE else "nested too deeply"
    assert said in refused.value.message and "set_int_max_str_digits" not in refused.value.message
    if fmt == "json":
        assert refused.value.message.startswith("line 2: malformed JSON")


@pytest.mark.parametrize("value", [HUGE, DEEP], ids=["huge-number", "deep-nesting"])
def test_a_jsonl_line_holding_it_is_a_bad_row(value: str) -> None:
    data = f'{{"email": "ok@b.example"}}\n{{"email": "a@b.example", "name": {value}}}\n'.encode()
    rows = [row for _, items in Source("jsonl", io.BytesIO(data)).sections() for row in items]
    assert rows[0].problem is None
    assert rows[1].problem is not None and rows[1].problem.line == 2
    assert "not valid JSON" in rows[1].problem.message


@pytest.mark.parametrize("fmt", ["json", "jsonl", "toml", "csv"])
def test_import_of_a_file_with_a_huge_number_is_exit_6_and_writes_nothing(bapp: Bapp, tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"clients.{fmt}"
    path.write_text(
        {
            "json": f'[{{"email": "a@b.example", "name": {HUGE}}}]',
            "jsonl": f'{{"email": "a@b.example", "name": {HUGE}}}\n',
            "toml": f'[[clients]]\nemail = "a@b.example"\nname = {HUGE}\n',
            # a nested value in a CSV cell is JSON too: pathways' tiers
            "csv": f'slug,name,tiers\nnew-path,New,"[{{""tier"": {HUGE}}}]"\n',
        }[fmt]
    )
    kind = "pathways" if fmt == "csv" else "clients"
    result = bapp("import", kind, str(path))
    assert result.exit_code == 6, result.stderr
    assert "Traceback" not in result.stderr and "unexpected error" not in result.stderr
    assert bapp("clients", "show", "a@b.example").exit_code == 7
    assert bapp("pathways", "show", "new-path").exit_code == 7


@pytest.mark.parametrize("value", [HUGE, DEEP], ids=["huge-number", "deep-nesting"])
def test_a_config_file_holding_it_is_exit_4_without_a_traceback(bapp: Bapp, value: str) -> None:
    Path(bapp.env["BAPP_CONFIG"]).write_text(f"timezone = {value}\n")
    for command in (("config", "show"), ("clients", "list")):
        result = bapp(*command)
        assert result.exit_code == 4, result.stderr
        assert "is not valid TOML" in result.stderr and "Traceback" not in result.stderr
        assert "set_int_max_str_digits" not in result.stderr


@pytest.mark.parametrize("value", [HUGE, DEEP], ids=["huge-number", "deep-nesting"])
def test_an_answers_file_holding_it_is_exit_6(bapp: Bapp, tmp_path: Path, value: str) -> None:
    answers = tmp_path / "answers.json"
    answers.write_text(f'{{"Question": {value}}}')
    result = bapp(
        "bookings", "create", "--client", "a@b.example", "--session", "1", "--start", "2031-01-01T10:00Z",
        "--answers-file", str(answers),
    )  # fmt: skip
    assert result.exit_code == 6, result.stderr
    assert "answers-file: not valid JSON" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("value", [HUGE, DEEP], ids=["huge-number", "deep-nesting"])
def test_badges_verify_of_credentials_or_a_key_holding_it_is_exit_6(bapp: Bapp, tmp_path: Path, value: str) -> None:
    document = tmp_path / "document.json"
    document.write_text(f'[{{"jwt": {value}}}]')
    token = tmp_path / "one.jwt"
    token.write_text("a.b.c\n")
    for arguments in ((str(document),), (str(token), "--key", str(document))):
        result = bapp("badges", "verify", *arguments)
        assert result.exit_code == 6, result.stderr
        assert "not valid JSON" in result.stderr or "not JSON" in result.stderr
        assert "Traceback" not in result.stderr and "unexpected error" not in result.stderr


def test_the_database_is_untouched_by_a_refused_toml_import(bapp: Bapp, tmp_path: Path) -> None:
    path = tmp_path / "clients.toml"
    path.write_text(f'[[clients]]\nemail = "ok@b.example"\n\n[[clients]]\nemail = "a@b.example"\nname = {DEEP}\n')
    assert bapp("import", "clients", str(path)).exit_code == 6
    listed = bapp("clients", "list", "--json")
    assert listed.exit_code == 0 and listed.json() == []


@pytest.mark.parametrize("command", [("calendly", "sync"), ("calendly", "pull-bookings")])
def test_a_saved_calendly_listing_nested_too_deeply_is_exit_6(
    bapp: Bapp, tmp_path: Path, command: tuple[str, ...]
) -> None:
    listing = tmp_path / "listing.json"
    listing.write_text(DEEP)
    result = bapp(*command, "--from-file", str(listing))
    assert result.exit_code == 6, result.stderr
    assert "not valid JSON (arrays or objects nested too deeply)" in result.stderr
    assert "Traceback" not in result.stderr and "unexpected error" not in result.stderr


def test_a_synced_duration_past_an_integer_column_is_an_invalid_listing(bapp: Bapp, tmp_path: Path) -> None:
    saved = _example_listing(tmp_path, duration=2**64)
    result = bapp("calendly", "sync", "--from-file", str(saved))
    assert result.exit_code == 6, result.stderr
    assert "duration: Input should be less than or equal to 2147483647" in result.stderr
    assert bapp("sessions", "list", "--all", "--json").json() == []


def test_imported_progress_attempts_past_an_integer_column_are_a_bad_row(catalogue: Bapp, tmp_path: Path) -> None:
    # SQLite's integer is 64 bits and stored it; PostgreSQL's is 32 and the import ended in exit 1
    rows = tmp_path / "progress.json"
    rows.write_text(json.dumps([{"client": "ava.chen@client.example", "skill": "ai-literacy", "attempts": 2**31}]))
    catalogue("import", "all", str(REPO / "examples/catalog.toml"))
    result = catalogue("import", "progress", str(rows))
    assert result.exit_code == 6, result.stderr
    assert "attempts: Input should be less than or equal to 2147483647" in result.stderr
    rows.write_text(json.dumps([{"client": "ava.chen@client.example", "skill": "ai-literacy", "attempts": 2**31 - 1}]))
    assert catalogue("import", "progress", str(rows)).exit_code == 0


def test_completing_a_skill_whose_attempts_are_at_an_integer_columns_bound_is_refused(
    catalogue: Bapp, tmp_path: Path
) -> None:
    # one more attempt than 2³¹ − 1 overflowed PostgreSQL's column (exit 1) and was stored on SQLite, where no
    # backup of it would restore (the import refuses past the bound)
    rows = tmp_path / "progress.json"
    rows.write_text(json.dumps([{"client": "ava.chen@client.example", "skill": "ai-literacy", "attempts": 2**31 - 1}]))
    catalogue("import", "all", str(REPO / "examples/catalog.toml"))
    assert catalogue("import", "progress", str(rows)).exit_code == 0
    for command in (("skills", "complete"), ("skills", "assign", "--status", "completed")):
        result = catalogue(*command, "ava.chen@client.example", "ai-literacy")
        assert result.exit_code == 6, (command, result.stderr)
        assert "attempts of ava.chen@client.example in ai-literacy: 2147483647 attempts already" in result.stderr
    shown = catalogue("export", "progress", "--format", "json").json()
    assert [(row["status"], row["attempts"]) for row in shown] == [("not_started", 2**31 - 1)]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("instant", ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+01:00"])
def test_a_synced_instant_with_no_utc_form_is_an_invalid_listing(bapp: Bapp, tmp_path: Path, instant: str) -> None:
    # valid ISO instants whose UTC form is past year 9999 or before year 1: OverflowError (exit 1); the second was
    # then said to be "past the end of the calendar"
    saved = _example_listing(tmp_path, updated_at=instant)
    result = bapp("calendly", "sync", "--from-file", str(saved))
    assert result.exit_code == 6, result.stderr
    said = "field updated_at: the instant is outside the calendar's years 1 to 9999 in UTC"
    assert said in result.stderr
    assert bapp("sessions", "list", "--all", "--json").json() == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_zone_less_instant_in_a_saved_listing_is_refused_whatever_the_machine_zone(
    bapp: Bapp, tmp_path: Path
) -> None:
    """Calendly always sends UTC with its offset; an instant without one in a hand-made listing is ambiguous and
    refused (exit 6, naming the field and the record), never read in the machine's zone (TZ, as cron has it)."""
    types = _example_listing(tmp_path, updated_at="2031-01-01T10:00:00")
    events = json.loads((REPO / "examples/calendly/scheduled_events.json").read_text())
    events["collection"][0]["start_time"] = "2031-05-05T09:00:00"
    events["collection"][1]["invitees"][0]["created_at"] = "2026-11-02T10:04:00"
    saved_events = tmp_path / "events.json"
    saved_events.write_text(json.dumps(events))
    for command, places in (
        (("sync", "--from-file", str(types)), ["row [0].collection[0], field updated_at"]),
        (
            ("pull-bookings", "--from-file", str(saved_events)),
            ["row collection[0], field start_time", "row collection[1].invitees[0], field created_at"],
        ),
    ):
        result = bapp.process("calendly", *command, env={"TZ": "Asia/Tokyo"})
        assert result.exit_code == 6, result.stderr
        for place in places:
            assert f"  {place}: Input should have timezone info\n" in result.stderr, (place, result.stderr)
    assert bapp("sessions", "list", "--all", "--json").json() == []
    assert bapp("bookings", "list", "--json").json() == []


def test_a_saved_event_type_listing_with_an_unpaired_surrogate_is_stored_without_it(bapp: Bapp, tmp_path: Path) -> None:
    # it crashed the insert (exit 1), then was refused (exit 6); it is removed as the listing is read
    saved = _example_listing(tmp_path, name="Intro \ud800call")
    result = bapp("calendly", "sync", "--from-file", str(saved))
    assert result.exit_code == 0, result.stderr
    assert "Warning: removed control characters from the text Calendly sent" in result.stderr
    titles = [row["title"] for row in bapp("sessions", "list", "--all", "--json").json()]
    assert "Intro call" in titles


def test_a_saved_listing_holding_a_utf8_encoded_lone_surrogate_is_not_valid_json(bapp: Bapp, tmp_path: Path) -> None:
    """The raw bytes of half a surrogate pair (ED A0 80) are no UTF-8, so no JSON, as the API door's parser says:
    json.loads(bytes) let them through as a lone surrogate, which no cleaning saw (it looks for \\u escapes) and
    no database stores. A type's name crashed the insert (exit 1), a question's text too once sync stored
    questions through pydantic-core; a booking's text likewise."""
    types = _example_listing(tmp_path, name="Intro MARK call")
    events = tmp_path / "events.json"
    events.write_bytes((REPO / "examples/calendly/scheduled_events.json").read_bytes())
    questions = json.loads(types.read_text())
    page = questions if isinstance(questions, dict) else questions[0]
    page["collection"][0] |= {
        "name": "Intro call",
        "custom_questions": [{"name": "Why MARK?", "type": "text", "position": 0}],
    }
    asked = tmp_path / "questions.json"
    asked.write_text(json.dumps(questions))
    sent = events.read_bytes().replace(b'"Olivia Gra', b'"MARK Olivia Gra', 1)
    assert sent != events.read_bytes()
    events.write_bytes(sent)
    for command, saved in (("sync", types), ("sync", asked), ("pull-bookings", events)):
        saved.write_bytes(saved.read_bytes().replace(b"MARK", b"\xed\xa0\x80"))
        result = bapp("calendly", command, "--from-file", str(saved))
        assert result.exit_code == 6, (command, result.stderr)
        assert f"{saved.name}: not valid JSON (" in result.stderr and "unexpected error" not in result.stderr
    assert bapp("sessions", "list", "--all", "--json").json() == []
    assert bapp("bookings", "list", "--json").json() == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_toml_rejects_file_keeps_each_rows_datetime_as_written(bapp: Bapp, tmp_path: Path) -> None:
    """A TOML row's datetime goes back to the rejects file as the row gave it: a local one (read in the row's zone)
    not moved to this machine's zone, one whose UTC form would pass year 9999 not a crash (exit 1)."""
    import tomllib

    source = tmp_path / "bookings.toml"
    source.write_text(
        '[[bookings]]\nclient = "a@b.example"\nsession = "nope"\nstart_time = 2031-03-03T10:00:00\n\n'
        '[[bookings]]\nclient = "a@b.example"\nsession = "nope"\nstart_time = 9999-12-31T23:59:59-14:00\n'
    )
    rejects = tmp_path / "rejected.toml"
    result = bapp.process(
        "import",
        "bookings",
        str(source),
        "--continue-on-error",
        "--rejects",
        str(rejects),
        env={"TZ": "America/New_York"},
    )
    assert result.exit_code == 6, result.stderr
    assert "Traceback" not in result.stderr
    given = tomllib.loads(source.read_text())["bookings"]
    written = tomllib.loads(rejects.read_text())["bookings"]
    assert [row["start_time"] for row in written] == [row["start_time"] for row in given]


def _example_listing(tmp_path: Path, **first_type: Any) -> Path:
    """The example event-type listing, its first type's fields replaced, saved as JSON (ensure_ascii: a lone
    surrogate is written as its \\u escape)."""
    listing = json.loads((REPO / "examples/calendly/event_types.json").read_text())
    page = listing if isinstance(listing, dict) else listing[0]
    page["collection"][0].update(first_type)
    saved = tmp_path / "listing.json"
    saved.write_text(json.dumps(listing))
    return saved

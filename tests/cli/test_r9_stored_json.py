"""R9 for stored JSON another program wrote: what no output can hold — a number past a float's range (1e400), NaN and
Infinity (SQLite's JSON5), a lone UTF-16 surrogate — is exit 5 naming the column on every read of every JSON column,
on both backends, as `bookings list/show` refuse a booking's answers (tests/cli/test_r9_database_values.py)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.exc import DBAPIError

from tests.cli.test_r9_database_values import (
    CLIENT,
    CREATE,
    LOCAL_SESSION,
    SESSION,
    SYNC,
    UNWRITABLE,
    _execute,
    _refused,
    _seeded,
)
from tests.conftest import Bapp, SeededCopies

ANSWERS = "custom_question_responses"


@pytest.fixture(scope="module")
def seeded_copies(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeededCopies]:
    yield from SeededCopies.per_module(tmp_path_factory)


def _stored(bapp: Bapp, table: str, column: str, stored: str, where: str, **parameters: object) -> bool:
    """Put `stored` in `table.column` where `where` holds, as raw SQL; False where PostgreSQL's json type refuses it
    (NaN and Infinity: proved refused here, the state cannot arise there)."""
    postgresql = bapp.database_url.startswith("postgresql")
    update = f"UPDATE {table} SET {column} = {'CAST(:stored AS json)' if postgresql else ':stored'} WHERE {where}"
    if postgresql and ("NaN" in stored or "Infinity" in stored):
        with pytest.raises(DBAPIError):
            _execute(bapp, update, stored=stored, **parameters)
        return False
    _execute(bapp, update, stored=stored, **parameters)
    return True


@pytest.mark.parametrize("column", ["custom_questions", "duration_options"])
@pytest.mark.parametrize("stored", UNWRITABLE)
def test_session_type_json_no_output_can_hold_is_exit_5_on_every_read(
    bapp: Bapp, seeded_copies: SeededCopies, stored: str, column: str
) -> None:
    _seeded(bapp, seeded_copies)
    (row,) = (item["id"] for item in bapp("sessions", "list", "--all", "--json").json() if item["slug"] == SESSION)
    value = f'[{{"name": "Q", "type": "text", "required": false, "x": {stored}}}]'
    if column == "duration_options":
        value = f"[30, {stored}]"
    if not _stored(bapp, "session_types", column, value, "slug = :slug", slug=SESSION):
        return
    named = f"session_types.{column} of row {row}"
    for command in (
        ("sessions", "show", SESSION, "--json"),
        ("sessions", "list", "--format", "json"),
        ("sessions", "available", "--client", CLIENT, "--json"),
        ("export", "sessions", "--format", "csv"),
        ("export", "all"),
        SYNC,
    ):
        _refused(bapp, command, named)
    # the ORM's reads of the session type (to change it; a booking's questions and durations): the column, its row
    # unknown there, as for every column the ORM decodes
    for command in (
        ("sessions", "update", SESSION, "--display-order", "2"),
        ("bookings", "create", "--client", CLIENT, "--session", SESSION, *CREATE[6:]),
    ):
        _refused(bapp, command, f"session_types.{column} (")


@pytest.mark.parametrize("stored", UNWRITABLE)
def test_answers_no_output_can_hold_are_exit_5_for_the_commands_that_change_a_booking(
    bapp: Bapp, seeded_copies: SeededCopies, stored: str
) -> None:
    _seeded(bapp, seeded_copies)
    created = bapp(*CREATE[:-1], "--json")
    assert created.exit_code == 0, created.stderr
    reference, status = created.json()["reference"], created.json()["status"]
    answers = f'[{{"question": "q", "answer": {stored}}}]'
    if not _stored(bapp, "bookings", "custom_question_responses", answers, "reference = :ref", ref=reference):
        return
    for command in (("bookings", "confirm", reference), ("bookings", "cancel", reference)):
        _refused(bapp, (*command, "--json"), "bookings.custom_question_responses")
    # nothing changed: the booking is as it was
    _execute(bapp, "UPDATE bookings SET custom_question_responses = '[]' WHERE reference = :ref", ref=reference)
    assert bapp("bookings", "show", reference, "--json").json()["status"] == status


def test_a_blob_holding_json_text_is_read_as_that_text_on_every_path(bapp: Bapp, seeded_copies: SeededCopies) -> None:
    """SQLite keeps a blob raw SQL put in a JSON column (PostgreSQL's json takes none: checked); every read takes it
    as its text, as SQLite's own JSON functions do. The ORM's reads (`bookings create`, `bookings cancel`) took it so
    where the plain reads (`sessions show`, `bookings show`, the JSON export) refused it, the CSV export took it."""
    _seeded(bapp, seeded_copies)
    durations, answers = b"[30, 60]", b'[{"question": "q", "answer": "a"}]'
    if bapp.database_url.startswith("postgresql"):
        with pytest.raises(DBAPIError):
            _execute(bapp, "UPDATE session_types SET duration_options = CAST(:blob AS json)", blob=durations)
        return
    _execute(
        bapp, "UPDATE session_types SET duration_options = :blob WHERE slug = :slug", blob=durations, slug=LOCAL_SESSION
    )
    reference = _succeeded(bapp, *CREATE[:-1])["reference"]
    update = f"UPDATE bookings SET {ANSWERS} = :blob WHERE reference = :ref"
    _execute(bapp, update, blob=answers, ref=reference)
    assert _succeeded(bapp, "sessions", "show", LOCAL_SESSION)["duration_options"] == [30, 60]
    assert _succeeded(bapp, "bookings", "show", reference)[ANSWERS] == [{"question": "q", "answer": "a"}]
    for fmt, records in (("json", json.loads), ("csv", lambda text: csv.DictReader(io.StringIO(text)))):
        exported = bapp("export", "bookings", "--format", fmt)
        assert exported.exit_code == 0, exported.stderr
        (answered,) = (row[ANSWERS] for row in records(exported.stdout) if row["reference"] == reference)
        assert answered == ([{"question": "q", "answer": "a"}] if fmt == "json" else '[{"question":"q","answer":"a"}]')
    assert _succeeded(bapp, "bookings", "cancel", reference)["status"] == "cancelled"


def _succeeded(bapp: Bapp, *command: str) -> Any:
    result = bapp(*command, "--json")
    assert result.exit_code == 0, (command, result.stderr)
    return result.json()

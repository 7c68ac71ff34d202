"""R9 for database state: a value bapp cannot read — put in by raw SQL or another program — is exit 5 naming the
column (UnreadableValue), on the ORM commands and the plain reads alike, never exit 1 or a traceback.

SQLite keeps whatever raw SQL puts in a column: text in a money, integer or date column, JSON that is none.
PostgreSQL's typed columns refuse every one of those values, which each case proves on that backend.
Instants stored hours from year 1 or 9999 (before the models bounded them) are legal on both backends, and
their tables render in every zone.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text, update
from sqlalchemy.exc import DBAPIError

from bapp_cli.db.dbapi import sqlite_file
from bapp_cli.db.engine import make_engine
from bapp_cli.db.models import Booking
from bapp_cli.errors import quoted
from tests.conftest import Bapp, SeededCopies

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SESSION = "accelerate-foundation-coaching"
LOCAL_SESSION = "office-hours"  # added by `_seeded`: no questions, no account needed
CLIENT = "ava.chen@client.example"
LOCAL_SETTINGS = ("--no-requires-auth", "--builder", "coach@example.com")
CREATE = ("bookings", "create", "--client", "ava.chen@client.example", "--session", LOCAL_SESSION)
CREATE += ("--start", "2031-09-01T10:00Z", "--dry-run")
SYNC = ("calendly", "sync", "--from-file", str(EXAMPLES / "calendly" / "event_types.json"))


@pytest.fixture(scope="module")
def seeded_copies(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeededCopies]:
    yield from SeededCopies.per_module(tmp_path_factory)


def _seeded(bapp: Bapp, copies: SeededCopies) -> str:
    """The example catalogue, clients, bookings and a local session; the reference of the first booking.

    Seeded once per backend and copied for each later test (the seed is seven commands, the copy one)."""
    copies.seed_or_copy(bapp.database_url, lambda: _seed(bapp))
    listed = bapp("bookings", "list", "--client", "ava.chen@client.example", "--json")
    return str(listed.json()[0]["reference"])


def _seed(bapp: Bapp) -> None:
    for step in (
        SYNC,
        ("import", "clients", str(EXAMPLES / "clients.csv")),
        ("import", "bookings", str(EXAMPLES / "bookings.csv")),
        ("builders", "add", "coach@example.com"),
        ("sessions", "add", "--title", "Office Hours", "--duration", "30", "--category", "free", *LOCAL_SETTINGS),
        ("clients", "enroll", "ava.chen@client.example", "accelerate"),
    ):
        result = bapp(*step, "--format", "tsv")
        assert result.exit_code == 0, (step, result.stderr)


def _execute(bapp: Bapp, sql: str, **parameters: object) -> None:
    engine = make_engine(bapp.database_url)
    try:
        with engine.begin() as connection:
            connection.execute(text(sql), parameters)
    finally:
        engine.dispose()


# (raw SQL, the column the error names, the commands that read it); `:ref` is the first booking's reference
CASES = [
    (
        f"UPDATE session_types SET custom_questions = 'not json' WHERE slug = '{SESSION}'",
        "session_types.custom_questions",
        [
            ("sessions", "list", "--format", "json"),
            ("sessions", "list", "--format", "table"),
            ("sessions", "show", SESSION),
            ("sessions", "available", "--client", "ava.chen@client.example"),
            ("export", "all"),
            ("export", "sessions", "--format", "csv"),
            ("sessions", "update", SESSION, "--display-order", "2"),
            SYNC,
        ],
    ),
    (
        "UPDATE bookings SET amount = 'abc' WHERE reference = :ref",
        "bookings.amount",
        [
            ("bookings", "show", ":ref"),
            ("bookings", "cancel", ":ref"),
            # the plain reads: SQLite's printf once wrote it as 0.00, and a backup kept that
            ("export", "bookings", "--format", "csv"),
            ("bookings", "list", "--format", "tsv"),
            ("bookings", "list", "--format", "json"),
            ("clients", "show", "ava.chen@client.example"),
            ("export", "all"),
        ],
    ),
    (
        f"UPDATE session_types SET price = 'lots' WHERE slug = '{SESSION}'",
        "session_types.price",
        [
            ("sessions", "list", "--format", "csv"),
            ("sessions", "show", SESSION),
            ("export", "sessions", "--format", "csv"),
            ("sessions", "available", "--client", "ava.chen@client.example"),
            SYNC,
        ],
    ),
    (
        "UPDATE bookings SET custom_question_responses = '[1.5, {nope' WHERE reference = :ref",
        "custom_question_responses of booking ",
        [
            ("bookings", "list", "--format", "json"),
            ("bookings", "show", ":ref"),
            ("export", "bookings"),
            ("export", "all", "--format", "toml"),
            ("clients", "show", "ava.chen@client.example"),
            # the CSV query's too, where SQLite's json(), or json_tree() seeking the real number, would fail unnamed
            ("bookings", "list", "--format", "csv"),
            ("export", "bookings", "--format", "csv"),
        ],
    ),
    (
        "UPDATE bookings SET start_time = 'garbage', end_time = 'zzz' WHERE reference = :ref",
        "bookings.",
        [
            ("bookings", "list", "--format", "table"),
            ("bookings", "show", ":ref"),
            ("export", "all"),
            ("clients", "show", "ava.chen@client.example", "--format", "table"),
        ],
    ),
    (
        "UPDATE enrolments SET start_date = 'soon'",
        "enrolments.start_date",
        [
            ("clients", "show", "ava.chen@client.example"),
            ("progress", "show", "ava.chen@client.example"),
            ("export", "enrolments"),
            ("clients", "set-status", "ava.chen@client.example", "accelerate", "paused"),
        ],
    ),
    (
        f"UPDATE session_types SET duration_minutes = 'long' WHERE slug = '{LOCAL_SESSION}'",
        "session_types.duration_minutes",
        [CREATE],
    ),
    (
        "UPDATE pathways SET position = 'first' WHERE slug = 'accelerate'",
        "pathways.position",
        [
            ("pathways", "show", "accelerate"),
            ("pathways", "list"),
            ("progress", "show", "ava.chen@client.example"),
            ("export", "all"),
        ],
    ),
    (
        "UPDATE builder_profiles SET buffer_minutes = 'lots'",
        "builder_profiles.buffer_minutes",
        [("builders", "list"), ("builders", "list", "--format", "csv"), ("export", "builders")],
    ),
    (
        "UPDATE client_profiles SET created_at = 'then'",
        "client_profiles.created_at",
        [("clients", "list"), ("clients", "list", "--format", "csv"), ("export", "clients")],
    ),
]


@pytest.mark.parametrize(("sql", "column", "commands"), CASES, ids=[case[1] for case in CASES])
def test_a_value_bapp_cannot_read_is_exit_5_naming_its_column(
    bapp: Bapp, seeded_copies: SeededCopies, sql: str, column: str, commands: list[tuple[str, ...]]
) -> None:
    reference = _seeded(bapp, seeded_copies)
    if bapp.database_url.startswith("postgresql"):
        with pytest.raises(DBAPIError):  # a typed column: the state cannot arise on this backend
            _execute(bapp, sql, ref=reference)
        return
    _execute(bapp, sql, ref=reference)
    for index, command in enumerate(commands):
        arguments = [reference if arg == ":ref" else arg for arg in command]
        # the first as a real process: a streamed read that failed midway once printed an "Exception ignored"
        # traceback when its cursor was collected after the connection had closed
        result = bapp.process(*arguments) if index == 0 else bapp(*arguments)
        assert result.exit_code == 5, (command, result.stderr)
        assert "Error: the database holds a value bapp cannot read: " in result.stderr, (command, result.stderr)
        assert column in result.stderr.splitlines()[0], (command, result.stderr)
        assert "Traceback" not in result.stderr and "unexpected" not in result.stderr


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("assignments", "column", "value", "commands"),
    [
        (
            "start_time = 'garbage', end_time = 'zzz'",
            "start_time",
            "garbage",
            [("bookings", "list", "--json"), ("bookings", "list", "--format", "csv")],
        ),
        (  # a nullable column, and a date SQLite's own date functions would take
            "cancelled_at = '2031-02-30 10:00:00'",
            "cancelled_at",
            "2031-02-30 10:00:00",
            [("export", "bookings"), ("export", "bookings", "--format", "csv")],
        ),
    ],
    ids=["start_time", "cancelled_at"],
)
def test_an_instant_that_is_no_date_is_exit_5_from_the_plain_reads_too(
    bapp: Bapp, seeded_copies: SeededCopies, assignments: str, column: str, value: str, commands: list[tuple[str, ...]]
) -> None:
    """The plain reads hand the database's instant text on as it comes (P6): 'garbage' came out as "garbageZ"
    in JSON, CSV and the export, a backup that could not be restored."""
    reference = _seeded(bapp, seeded_copies)
    _execute(bapp, f"UPDATE bookings SET {assignments} WHERE reference = :ref", ref=reference)
    expected = (
        f"Error: the database holds a value bapp cannot read: bookings.{column} of booking {reference} ({value!r})"
    )
    for index, command in enumerate(commands):
        result = bapp.process(*command) if index == 0 else bapp(*command)
        assert result.exit_code == 5 and result.stderr.splitlines()[0] == expected, (command, result.stderr)
        assert value[:10] not in result.stdout, command  # not written before the error


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_last_activity_that_is_no_date_is_exit_5_from_the_progress_listings(
    bapp: Bapp, seeded_copies: SeededCopies
) -> None:
    """`reports client-progress` and `progress table` hand the latest progress instant on as SQL text: 'garbage'
    came out as "garbageZ" in every format, where the plain reads refuse it."""
    _seeded(bapp, seeded_copies)
    for step in (
        ("skills", "add", "prompts", "--name", "Prompts", "--link", "accelerate:1"),
        ("skills", "start", "ava.chen@client.example", "prompts"),
    ):
        assert bapp(*step).exit_code == 0, step
    _execute(bapp, "UPDATE user_skill_progress SET updated_at = 'garbage'")
    expected = (
        "Error: the database holds a value bapp cannot read: user_skill_progress.updated_at of "
        "ava.chen@client.example in accelerate ('garbage')"
    )
    commands = [("reports", "client-progress", "--json"), ("reports", "client-progress", "-f", "csv")]
    for index, command in enumerate([*commands, ("progress", "table", "--format", "tsv")]):
        result = bapp.process(*command) if index == 0 else bapp(*command)
        assert result.exit_code == 5 and result.stderr.splitlines()[0] == expected, (command, result.stderr)
        assert "garbage" not in result.stdout, command


@pytest.mark.parametrize(
    ("sql", "column", "commands"),
    [
        # a booking copies its session's duration and price: its insert broke the schema's own checks (exit 1)
        *(
            (
                f"UPDATE session_types SET duration_minutes = {minutes} WHERE slug = '{LOCAL_SESSION}'",
                "duration",
                [CREATE],
            )
            for minutes in (-30, 0)
        ),
        (
            f"UPDATE session_types SET price = -5 WHERE slug = '{LOCAL_SESSION}'",
            "session_types.price",
            [CREATE, ("sessions", "list", "--format", "csv"), ("export", "all")],
        ),
        (
            "UPDATE bookings SET amount = -5 WHERE reference = :ref",
            "bookings.amount",
            [("export", "bookings", "--format", "csv"), ("bookings", "show", ":ref"), ("export", "all")],
        ),
    ],
)
def test_a_value_that_breaks_the_schema_s_check_is_exit_5(
    bapp: Bapp, seeded_copies: SeededCopies, sql: str, column: str, commands: list[tuple[str, ...]]
) -> None:
    reference = _seeded(bapp, seeded_copies)
    if bapp.database_url.startswith("postgresql"):
        with pytest.raises(DBAPIError, match="check constraint"):  # the server enforces its checks
            _execute(bapp, sql, ref=reference)
        return
    engine = make_engine(bapp.database_url)
    try:
        with engine.begin() as connection:  # raw SQL with SQLite's checks turned off
            connection.exec_driver_sql("PRAGMA ignore_check_constraints = 1")
            connection.execute(text(sql), {"ref": reference})
    finally:
        engine.dispose()
    for command in commands:
        result = bapp(*[reference if arg == ":ref" else arg for arg in command])
        assert result.exit_code == 5, (command, result.stderr)
        assert column in result.stderr.splitlines()[0], (command, result.stderr)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # numeric columns hold numbers on PostgreSQL
def test_the_message_shows_a_long_or_hostile_value_escaped_and_cut(bapp: Bapp, seeded_copies: SeededCopies) -> None:
    reference = _seeded(bapp, seeded_copies)
    hostile = "\x1b[31m" + "9" * 500
    _execute(bapp, "UPDATE bookings SET amount = :value WHERE reference = :ref", value=hostile, ref=reference)
    result = bapp("bookings", "show", reference, "--json")
    assert result.exit_code == 5
    first = result.stderr.splitlines()[0]
    # named as `bookings list` names it: the same read
    unreadable = f"Error: the database holds a value bapp cannot read: bookings.amount of booking {reference} "
    assert first.startswith(unreadable + "('\\x1b[31m999")
    assert first.endswith("…)") and len(first) < 160 and "\x1b" not in result.stderr
    assert '"code": "database_value"' in result.stderr


def test_an_instant_near_year_1_or_9999_renders_in_every_zone(bapp: Bapp, seeded_copies: SeededCopies) -> None:
    reference = _seeded(bapp, seeded_copies)
    edges = {  # a zone west of UTC cannot hold year 1's first hours, one east of it 9999's last
        reference: dt.datetime(1, 1, 1, tzinfo=dt.UTC),
    }
    listed = bapp("bookings", "list", "--json").json()
    edges[listed[-1]["reference"]] = dt.datetime(9999, 12, 31, 22, tzinfo=dt.UTC)
    engine = make_engine(bapp.database_url)
    with engine.begin() as connection:
        for ref, start in edges.items():
            instants = {"start_time": start, "end_time": start + dt.timedelta(hours=1)}
            connection.execute(update(Booking).where(Booking.reference == ref).values(**instants))
    engine.dispose()
    for zone in ("America/Los_Angeles", "Pacific/Kiritimati"):
        for command in (
            ("bookings", "list", "--format", "table"),
            ("bookings", "show", reference, "--format", "table"),
            ("clients", "show", "ava.chen@client.example", "--format", "table"),
            ("reports", "bookings-by-pathway", "--list", "--format", "table"),
        ):
            result = bapp("--timezone", zone, *command, env={"COLUMNS": "200"})
            assert result.exit_code == 0, (zone, command, result.stderr)
            assert "Traceback" not in result.stderr
        # where the zone cannot hold it, the instant is shown in UTC: the truth, not a guess
        table = bapp("--timezone", zone, "bookings", "list", "--format", "table", env={"COLUMNS": "200"}).stdout
        assert "0001-01-01 00:00" in table and "9999-12-31" in table
    listed_json = {row["reference"]: row["start_time"] for row in bapp("bookings", "list", "--json").json()}
    assert listed_json[reference] == "0001-01-01T00:00:00Z"


# Valid JSON of another shape than bapp writes: both backends store it, so both must read it. Questions and
# durations of another shape add nothing (as the booking rules always treated them); answers show as they are.
SHAPES = ["null", "5", '"text"', '{"a": 1}', "[1, 2]", '[{"name": ["x"], "position": "p", "answer_choices": 5}]']


@pytest.mark.parametrize("stored", SHAPES)
def test_stored_json_of_another_shape_is_read_on_both_backends(
    bapp: Bapp, seeded_copies: SeededCopies, stored: str
) -> None:
    reference = _seeded(bapp, seeded_copies)
    cast = "CAST(:stored AS json)" if bapp.database_url.startswith("postgresql") else ":stored"
    _execute(bapp, f"UPDATE session_types SET custom_questions = {cast}, duration_options = {cast}", stored=stored)
    _execute(
        bapp,
        f"UPDATE bookings SET custom_question_responses = {cast} WHERE reference = :ref",
        stored=stored,
        ref=reference,
    )
    for command in (
        ("sessions", "show", SESSION, "--format", "table"),
        ("sessions", "list", "--format", "table"),
        ("sessions", "available", "--format", "table"),
        ("bookings", "show", reference, "--format", "table"),
        ("reports", "bookings-by-pathway", "--list", "--format", "table"),
        ("export", "all", "--format", "toml"),
        CREATE,
        (*CREATE, "--duration", "45"),
        SYNC,  # last: it writes Calendly's questions and durations back
    ):
        result = bapp(*command, env={"COLUMNS": "200"})
        assert result.exit_code in (0, 6), (command, result.stderr)  # 6: 45 minutes is not offered
        assert "Traceback" not in result.stderr and "unexpected" not in result.stderr
    shown = bapp("bookings", "show", reference, "--format", "table", env={"COLUMNS": "200"}).stdout
    shown_as = {"null": "—", "5": "5", '"text"': "text", '{"a": 1}': "{'a': 1}", "[1, 2]": "1"}
    expected = shown_as.get(stored, "None: None")
    assert f"answers {expected}" in [" ".join(line.split()) for line in shown.splitlines()], shown


# (an answer as another program spelt it, as bapp writes it)
SPELLINGS = [('"a\\/b"', '"a/b"'), ('"\\u00e9"', '"é"'), ("1e5", "100000.0"), ("1.50", "1.5"), ("-0", "0"), ("7", "7")]


@pytest.mark.parametrize(("stored", "written"), SPELLINGS)
def test_answers_spelt_otherwise_are_written_alike_on_both_backends(
    bapp: Bapp, seeded_copies: SeededCopies, stored: str, written: str
) -> None:
    # a CSV cell on SQLite kept another program's spelling (json() minifies, nothing more) where PostgreSQL's and
    # every JSON output wrote the value as bapp writes JSON
    cells = _answers_cells(bapp, seeded_copies, f'[{{"question": "q", "answer": {stored}}}]')
    assert cells == [f'[{{"question":"q","answer":{written}}}]'] * 2


# (answers as another program spelt them, as bapp writes them, None: as stored): numbers beside text that looks like
# one (a date's -0, an e-mail's e-, a price's .5), which the SQL must tell apart
DOCUMENTS = [('["e-mail", 2E1]', '["e-mail",20.0]'), ('["2026-01-05", -0]', '["2026-01-05",0]')]
DOCUMENTS += [('["£1.50 by e-mail, 2026-01-05"]', None)]


@pytest.mark.parametrize(("stored", "written"), DOCUMENTS)
def test_numbers_beside_text_like_them_are_written_alike_on_both_backends(
    bapp: Bapp, seeded_copies: SeededCopies, stored: str, written: str | None
) -> None:
    assert _answers_cells(bapp, seeded_copies, stored) == [written or stored] * 2


# answers Python reads but no JSON holds: a number past a float's range, NaN and Infinity (SQLite's JSON5), a lone
# UTF-16 surrogate; PostgreSQL's json type refuses all but the first
UNWRITABLE = ["1e400", "-1e400", "NaN", "-Infinity", '"\\ud800"', '"\\udc00 and \\ud83d\\ude00"']


@pytest.mark.parametrize("stored", UNWRITABLE)
def test_answers_no_json_can_hold_are_exit_5_naming_the_booking_on_both_backends(
    bapp: Bapp, seeded_copies: SeededCopies, stored: str
) -> None:
    reference = _seeded(bapp, seeded_copies)
    update = "UPDATE bookings SET custom_question_responses = {} WHERE reference = :ref"
    answers = f'[{{"question": "q", "answer": {stored}}}]'
    if bapp.database_url.startswith("postgresql") and stored in ("NaN", "-Infinity"):
        with pytest.raises(DBAPIError):
            _execute(bapp, update.format("CAST(:stored AS json)"), stored=answers, ref=reference)
        return
    cast = "CAST(:stored AS json)" if bapp.database_url.startswith("postgresql") else ":stored"
    _execute(bapp, update.format(cast), stored=answers, ref=reference)
    named = f"custom_question_responses of booking {reference}"
    for command in (("bookings", "list"), ("export", "bookings"), ("bookings", "show", reference)):
        for output in ("json", "csv"):
            shown = f"{named} ({quoted(answers)})"  # the text as stored: SQLite's CSV query once put a space before it
            _refused(bapp, (*command, "--format", output), shown)
    for command in (("export", "all"), ("export", "all", "--format", "toml"), ("clients", "show", CLIENT, "--json")):
        _refused(bapp, command, named)


def _refused(bapp: Bapp, command: tuple[str, ...], named: str) -> None:
    """`command` is exit 5, the first line of its error naming `named`."""
    result = bapp(*command)
    assert result.exit_code == 5, (command, result.stdout, result.stderr)
    assert named in result.stderr.splitlines()[0], (command, result.stderr)


def _answers_cells(bapp: Bapp, seeded_copies: SeededCopies, answers: str) -> list[str]:
    """The answers cell of a booking that holds `answers`, in `bookings list` and `export bookings` CSV."""
    reference = _seeded(bapp, seeded_copies)
    cast = "CAST(:stored AS json)" if bapp.database_url.startswith("postgresql") else ":stored"
    _execute(
        bapp,
        f"UPDATE bookings SET custom_question_responses = {cast} WHERE reference = :ref",
        stored=answers,
        ref=reference,
    )
    cells = []
    for command in (("bookings", "list"), ("export", "bookings")):
        rows = csv.DictReader(io.StringIO(bapp(*command, "--format", "csv").stdout))
        cells.append({row["reference"]: row["custom_question_responses"] for row in rows}[reference])
    return cells


# SQLite's text of such a year is the unreadable text the cases above cover
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize("stored", ["10000-01-01 00:00:00+00", "0001-01-01 00:00:00+00 BC"])
def test_an_instant_postgresql_holds_past_python_years_is_exit_5(
    bapp: Bapp, seeded_copies: SeededCopies, stored: str
) -> None:
    reference = _seeded(bapp, seeded_copies)
    _execute(
        bapp,
        "UPDATE bookings SET start_time = CAST(:at AS timestamptz), "
        "end_time = CAST(:at AS timestamptz) + interval '1 hour' WHERE reference = :ref",
        at=stored,
        ref=reference,
    )
    # bookings show: psycopg refuses to load it (it was exit 1); the listings read the instant as text, which wrote
    # 1 BC as year 1 (exit 0) and 10000 as a year no reader takes
    listings = (("bookings", "list"), ("bookings", "list", "--json"), ("export", "bookings", "--format", "csv"))
    for command in (("bookings", "show", reference), *listings):
        result = bapp(*command)
        assert result.exit_code == 5, (command, result.stdout, result.stderr)
        assert "the database holds a value bapp cannot read: an instant outside years 1 to 9999" in result.stderr
        assert stored.split(" ")[0] in result.stderr and "unexpected" not in result.stderr
    # every other plain read parses the instant text: 1 BC's is no longer year 1's
    _execute(bapp, "UPDATE client_profiles SET created_at = CAST(:at AS timestamptz)", at=stored)
    result = bapp("clients", "list")
    assert result.exit_code == 5, (result.stdout, result.stderr)
    assert "cannot read: client_profiles.created_at of " in result.stderr and "unexpected" not in result.stderr


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # PostgreSQL always enforces foreign keys
def test_a_booking_whose_client_row_was_deleted_with_foreign_keys_off_is_exit_5(
    bapp: Bapp, seeded_copies: SeededCopies
) -> None:
    reference = _seeded(bapp, seeded_copies)
    path = sqlite_file(bapp.database_url)
    assert path is not None
    with contextlib.closing(sqlite3.connect(path)) as connection:  # foreign keys off, as another program may have
        client = "SELECT client_id FROM bookings WHERE reference = ?"
        connection.execute(f"DELETE FROM users WHERE id = ({client})", (reference,))
        connection.commit()
    result = bapp("bookings", "show", reference)
    assert result.exit_code == 5, result.stderr
    assert "bookings.client_id or session_type_id of row" in result.stderr and "unexpected" not in result.stderr
    assert reference not in bapp("bookings", "list").stdout  # the listings join the client: they leave it out


@pytest.mark.parametrize(
    ("column", "stored", "flag"),
    [
        ("max_advance_days", 100_000_000, "--max-advance"),
        ("buffer_minutes", 2_000_000_000, "--buffer"),
        ("minimum_notice_hours", 2_000_000_000, "--minimum-notice"),
    ],
)
def test_a_builder_setting_past_bapp_bounds_is_exit_5_not_an_overflow(
    bapp: Bapp, seeded_copies: SeededCopies, column: str, stored: int, flag: str
) -> None:
    # within the schema's checks on both backends, past the bounds of `builders update`: the time rules'
    # date arithmetic overflowed (exit 1)
    _seeded(bapp, seeded_copies)
    _execute(bapp, f"UPDATE builder_profiles SET {column} = :stored", stored=stored)
    result = bapp(*CREATE)
    assert result.exit_code == 5, result.stderr
    assert f"builder_profiles.{column} of builder coach@example.com ({stored})" in result.stderr
    # the hint said "correct or clear it with SQL": the command that sets it, which then mends it
    assert f"Hint: set it with `bapp builders update coach@example.com {flag} N`" in result.stderr, result.stderr
    assert bapp("builders", "update", "coach@example.com", flag, "0").exit_code == 0
    assert bapp(*CREATE).exit_code == 0


def test_a_builder_buffer_past_bapp_bounds_is_exit_5_for_a_no_show_undo_and_slots_too(
    bapp: Bapp, seeded_copies: SeededCopies
) -> None:
    # the undo of a no-show still under way takes its slot back under rule 6, whose buffer arithmetic overflowed
    # (exit 1); `sessions slots` reads the same settings before asking Calendly
    _seeded(bapp, seeded_copies)
    started = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)).isoformat(timespec="seconds")
    booked = bapp(*CREATE[:-3], "--start", started, "--allow-past", "--json")
    assert booked.exit_code == 0, booked.stderr
    reference = booked.json()["reference"]
    assert bapp("bookings", "no-show", reference, "--local-only").exit_code == 0
    _execute(bapp, "UPDATE builder_profiles SET buffer_minutes = :stored", stored=2_000_000_000)
    expected = "builder_profiles.buffer_minutes of builder coach@example.com (2000000000)"
    undone = bapp("bookings", "no-show", reference, "--undo", "--local-only")
    assert undone.exit_code == 5 and expected in undone.stderr, undone.stderr
    coach = "(SELECT id FROM users WHERE email = 'coach@example.com')"
    _execute(bapp, f"UPDATE session_types SET builder_id = {coach} WHERE calendly_uri IS NOT NULL")
    calendly_type = next(
        record["slug"] for record in bapp("sessions", "list", "--json").json() if record["calendly_uri"]
    )
    slots = bapp("sessions", "slots", calendly_type)  # refused before Calendly is asked: no token needed
    assert slots.exit_code == 5 and expected in slots.stderr, slots.stderr


def test_a_builder_buffer_past_bapp_bounds_is_exit_5_for_the_bookings_import_too(
    bapp: Bapp, seeded_copies: SeededCopies, tmp_path: Path
) -> None:
    # the import holds each row to rule 6 with the builder's buffer, read on its own: its arithmetic overflowed (exit 1
    # 'OverflowError: date value out of range'), with or without --dry-run, and nothing may be half-written
    _seeded(bapp, seeded_copies)
    _execute(bapp, "UPDATE builder_profiles SET buffer_minutes = :stored", stored=2_000_000_000)
    rows = tmp_path / "bookings.csv"
    rows.write_text(f"client,session,start_time\nava.chen@client.example,{LOCAL_SESSION},2031-09-01T10:00Z\n")
    before = bapp("export", "bookings", "--format", "csv").stdout
    for dry_run in (("--dry-run",), ()):
        result = bapp("import", "bookings", str(rows), *dry_run)
        assert result.exit_code == 5, result.stderr
        assert "builder_profiles.buffer_minutes of builder coach@example.com (2000000000)" in result.stderr
        assert "Hint: set it with `bapp builders update coach@example.com --buffer N`" in result.stderr
    assert bapp("export", "bookings", "--format", "csv").stdout == before


def test_the_bookings_import_is_not_refused_over_settings_it_does_not_read(
    bapp: Bapp, seeded_copies: SeededCopies, tmp_path: Path
) -> None:
    # the import reads only the buffer of the builders its rows book (rule 6; notice and horizon are not the import's
    # rules): another builder's settings past the bounds, or the row's builder's notice and horizon, refused it (exit 5)
    _seeded(bapp, seeded_copies)
    assert bapp("builders", "add", "other@example.com").exit_code == 0
    _execute(
        bapp,
        "UPDATE builder_profiles SET buffer_minutes = :stored WHERE user_id = "
        "(SELECT id FROM users WHERE email = 'other@example.com')",
        stored=2_000_000_000,
    )
    _execute(
        bapp, "UPDATE builder_profiles SET minimum_notice_hours = :stored, max_advance_days = :stored", stored=10**8
    )
    rows = tmp_path / "bookings.csv"
    rows.write_text(f"client,session,start_time\nava.chen@client.example,{LOCAL_SESSION},2031-09-01T10:00Z\n")
    result = bapp("import", "bookings", str(rows), "--format", "json")
    assert result.exit_code == 0, result.stderr
    assert bapp("bookings", "list", "--session", LOCAL_SESSION, "--format", "json").json()[0]["builder"] == (
        "coach@example.com"
    )


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("completed_at", "garbage"),
        ("completed_at", "2031-02-30 10:00:00"),
        ("start_date", "soon"),
        # an instant's text in the date column: named completed_at (its value valid) before, as the start was read
        # as an instant there and as a date in SQL
        ("start_date", "2021-01-04 00:00:00"),
        ("start_date", "2021-01-04T00:00:00"),
    ],
    ids=["garbage", "30-february", "start_date", "start_date-with-time", "start_date-iso-instant"],
)
def test_an_undatable_completion_is_exit_5_from_pathway_analytics(
    bapp: Bapp, seeded_copies: SeededCopies, column: str, value: str
) -> None:
    """`reports pathway-analytics` counts the days to complete in SQL, where SQLite's date functions make text
    that is no date NULL (or move 30 February to 2 March): the completion left the average, shown as 0.0 days,
    where the plain reads refuse the value."""
    _seeded(bapp, seeded_copies)
    # the seed's enrolment starts in 2030: moved into the past, it may be completed by hand
    assert bapp("clients", "enroll", "ava.chen@client.example", "accelerate", "--start", "2021-01-04").exit_code == 0
    completed = bapp("clients", "set-status", "ava.chen@client.example", "accelerate", "completed")
    assert completed.exit_code == 0, completed.stderr
    _execute(bapp, f"UPDATE enrolments SET {column} = :value WHERE status = 'completed'", value=value)
    expected = (
        f"Error: the database holds a value bapp cannot read: enrolments.{column} of "
        f"ava.chen@client.example in accelerate ({value!r})"
    )
    for zone in ("UTC", "Pacific/Auckland"):  # outside UTC the completion's day is Python's: named all the same
        # the first in a real process (see the streamed reads above), the second in-process: the same main()
        run = bapp.process if zone == "UTC" else bapp
        result = run("--timezone", zone, "reports", "pathway-analytics", "--json")
        assert result.exit_code == 5 and result.stderr.splitlines()[0] == expected, result.stderr
        assert result.stdout == ""
    shown = bapp("clients", "show", "ava.chen@client.example")  # as the plain read refuses it
    assert shown.exit_code == 5 and expected.partition(" (")[0] in shown.stderr, shown.stderr

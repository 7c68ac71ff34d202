"""Issue 15 #12, #13, #14, #28: ids given as numbers, dates at the edges, integers past 64 bits, a date
without a time — each a clear error naming the field (or accepted), never exit 1; both backends."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bapp_cli.db.engine import make_engine
from bapp_cli.db.models import Booking, SessionType
from tests.conftest import Bapp

REPO = Path(__file__).resolve().parents[2]
CLIENT = "ava.chen@client.example"
SESSION = "getting-started-free-intro"
ANSWERS = ("--answer", "What brings you to BuildAppsWith?=Agents", "--answer", "Which best describes you?=Founder")
HUGE = "99999999999999999999"  # past 64 bits


def _count(bapp: Bapp, model: type) -> int:
    engine = make_engine(bapp.database_url)
    try:
        with Session(engine) as session:
            return int(session.scalar(select(func.count()).select_from(model)) or 0)
    finally:
        engine.dispose()


def _session_id(bapp: Bapp) -> int:
    return int(bapp("sessions", "show", SESSION, "--json").json()["id"])


def _no_crash(stderr: str) -> None:
    assert "Traceback" not in stderr and "unexpected error" not in stderr


# a 20-minute booking starting 2999-12-31T23:50Z: refused alike by `bookings create` and the import
ENDS_PAST_RANGE = "end_time: '3000-01-01T00:10:00Z' is outside the supported range 1900-01-01 to 2999-12-31"


@pytest.mark.parametrize(
    ("start", "extra", "message"),
    [
        ("9999-12-31T23:50Z", (), "start: '9999-12-31T23:50Z' is outside the supported range"),
        ("0001-01-01T00:00Z", ("--allow-past",), "start: '0001-01-01T00:00Z' is outside the supported range"),
        ("2031-07-04", (), "start: '2031-07-04' is a date without a time"),  # #28: not silently 00:00
        # in range as typed, out of it in UTC, where it is stored: its backup would not restore
        ("2999-12-31T20:00-12:00", (), "start: '3000-01-01T08:00:00Z' is outside the supported range"),
        ("1900-01-01T00:00+05:00", ("--allow-past",), "start: '1899-12-31T19:00:00Z' is outside the supported range"),
        # the start in range, the end (20 minutes on) not: stored, and refused by the import of its backup
        ("2999-12-31T23:50Z", (), ENDS_PAST_RANGE),
    ],
)
def test_booking_starts_at_the_edges_are_invalid_input(
    catalogue: Bapp, start: str, extra: tuple[str, ...], message: str
) -> None:
    result = catalogue(
        "bookings", "create", "--client", CLIENT, "--session", SESSION, "--start", start, *extra, *ANSWERS
    )
    assert result.exit_code == 6, result.stderr
    assert message in result.stderr
    _no_crash(result.stderr)
    assert _count(catalogue, Booking) == 0


def test_filters_and_import_rows_at_the_edges_name_the_field_and_line(catalogue: Bapp, tmp_path: Path) -> None:
    listed = catalogue("bookings", "list", "--to", "9999-12-31T23:59Z")
    assert listed.exit_code == 6 and "to: '9999-12-31T23:59Z' is outside" in listed.stderr
    rows = tmp_path / "edge.csv"
    rows.write_text(
        "client,session,start_time\n"
        f"{CLIENT},{SESSION},2031-01-06T10:00Z\n"
        f"{CLIENT},{SESSION},9999-12-31T23:55Z\n"
        f"{CLIENT},{SESSION},0001-01-01T00:00+01:00\n"
        f"{CLIENT},{SESSION},2031-01-07\n"  # #28 for a row as for --start: not silently booked at midnight
        f"{CLIENT},{SESSION},2999-12-31T20:00-12:00\n"  # in range as typed, not in UTC: its backup would not restore
        f"{CLIENT},{SESSION},2999-12-31T23:50Z\n"  # its end, 20 minutes on, is past the range
    )
    result = catalogue("import", "bookings", str(rows), "--allow-any-answers")
    assert result.exit_code == 6, result.stderr
    assert "line 3, field start_time: '9999-12-31T23:55Z' is outside the supported range" in result.stderr
    assert "line 4, field start_time: '0001-01-01T00:00+01:00' is outside" in result.stderr
    assert "line 5, field start_time: '2031-01-07' is a date without a time (give the time too" in result.stderr
    assert "line 6, field start_time: '3000-01-01T08:00:00Z' is outside the supported range" in result.stderr
    assert f"line 7, field {ENDS_PAST_RANGE}" in result.stderr  # in the words of `bookings create --start`
    _no_crash(result.stderr)
    assert _count(catalogue, Booking) == 0


def test_an_enrolment_start_out_of_range_in_utc_or_in_the_zone_is_invalid_input(catalogue: Bapp) -> None:
    # an instant in range as typed whose day is 3000-01-01 in UTC (or in --timezone) was stored as the start
    # date, and `import all` then refused the backup that held it
    for zone, start in (("UTC", "2999-12-31T23:59:59-12:00"), ("Pacific/Kiritimati", "2999-12-31T12:00Z")):
        result = catalogue("--timezone", zone, "clients", "enroll", CLIENT, "play", "--start", start)
        assert result.exit_code == 6, result.stderr
        assert "is outside the supported range 1900-01-01 to 2999-12-31" in result.stderr
        _no_crash(result.stderr)
    assert all(row["pathway"] != "play" for row in catalogue("clients", "show", CLIENT, "--json").json()["enrolments"])


def test_a_filter_in_range_as_typed_is_accepted_whatever_its_utc_form(catalogue: Bapp) -> None:
    # a filter stores nothing: `--from 1900-01-01`, the documented earliest day, read in Tokyo is
    # 1899-12-31T15:00Z, and was refused with that instant, one the user never typed
    booked = catalogue(
        "bookings", "create", "--client", CLIENT, "--session", SESSION, "--start", "2031-01-06T10:00Z", *ANSWERS
    )
    assert booked.exit_code == 0, booked.stderr
    for zone, bound in (("Asia/Tokyo", ("--from", "1900-01-01")), ("America/New_York", ("--to", "2999-12-31T23:00"))):
        for args in (("bookings", "list"), ("reports", "bookings-by-pathway", "--list")):
            listed = catalogue("--timezone", zone, *args, *bound, "--json")
            assert listed.exit_code == 0, listed.stderr
            assert len(listed.json()) == 1
        counted = catalogue("--timezone", zone, "reports", "pathway-analytics", *bound, "--json")
        assert counted.exit_code == 0, counted.stderr


def test_an_exclusive_end_may_be_the_first_instant_past_the_range(catalogue: Bapp) -> None:
    # [from, 3000-01-01) is "through 2999": every exclusive end refused it as out of range, in any zone
    booked = catalogue(
        "bookings", "create", "--client", CLIENT, "--session", SESSION, "--start", "2999-12-31T09:00Z", *ANSWERS
    )
    assert booked.exit_code == 0, booked.stderr
    pull = (
        "calendly",
        "pull-bookings",
        "--from-file",
        str(REPO / "examples/calendly/scheduled_events.json"),
        "--dry-run",
    )
    for zone in ("UTC", "Etc/GMT+12", "Pacific/Kiritimati"):  # 3000-01-01 there is 12:00Z, 2999-12-31T10:00Z
        for end in ("3000-01-01", "3000-01-01T00:00", "3000-01-01T00:00:00-12:00"):
            for args in (("bookings", "list"), ("reports", "bookings-by-pathway", "--list")):
                listed = catalogue("--timezone", zone, *args, "--from", "2999-12-31T09:00Z", "--to", end, "--json")
                assert listed.exit_code == 0, listed.stderr
                assert [row["start_time"] for row in listed.json()] == ["2999-12-31T09:00:00Z"]
            counted = catalogue("--timezone", zone, "reports", "pathway-analytics", "--to", end, "--json")
            assert counted.exit_code == 0, counted.stderr
        pulled = catalogue("--timezone", zone, *pull, "--since", "2999-12-31", "--until", "3000-01-01")
        assert pulled.exit_code == 0, pulled.stderr
    # only that instant, and only as an end: a start there, or an end past it, is still out of range
    for bound in (("--from", "3000-01-01"), ("--to", "3000-01-01T00:00:01"), ("--to", "3000-01-02")):
        refused = catalogue("bookings", "list", *bound)
        assert refused.exit_code == 6 and f"{bound[0][2:]}: '{bound[1]}' is outside the supported" in refused.stderr
        _no_crash(refused.stderr)


def test_digits_past_the_microsecond_are_refused_unless_zeros(catalogue: Bapp, tmp_path: Path) -> None:
    # Python cuts a fraction to the microsecond without a word: 10:00:00.123456789 was booked as 10:00:00.123456
    finer = "finer than a microsecond: the digits past it must be 0"
    book = ("bookings", "create", "--client", CLIENT, "--session", SESSION, *ANSWERS, "--start")
    for args in (
        (*book, "2031-01-06T10:00:00.123456789Z"),
        ("bookings", "list", "--from", "2031-01-06T10:00:00,0000001"),
    ):
        refused = catalogue(*args)
        assert refused.exit_code == 2, refused.stderr
        assert f"Invalid value for '{args[-2]}': '{args[-1]}' is not a valid date and time ({finer})" in refused.stderr
    rows = tmp_path / "fine.csv"
    rows.write_text(
        "client,session,start_time\n"
        f"{CLIENT},{SESSION},2031-01-06T10:00:00.123456000Z\n"  # zeros past the microsecond lose nothing
        f"{CLIENT},{SESSION},2031-01-07T10:00:00.000000001+01:00\n"
    )
    imported = catalogue("import", "bookings", str(rows), "--allow-any-answers")
    assert imported.exit_code == 6, imported.stderr
    assert (
        f"line 3, field start_time: '2031-01-07T10:00:00.000000001+01:00' is not a valid date and time ({finer})"
        in (imported.stderr)
    )
    assert _count(catalogue, Booking) == 0
    booked = catalogue(*book, "2031-01-06T10:00:00.123456000Z", "--json")
    assert booked.exit_code == 0, booked.stderr
    assert booked.json()["start_time"] == "2031-01-06T10:00:00.123456Z"


def test_a_long_reference_that_names_nothing_is_echoed_escaped_and_cut(catalogue: Bapp) -> None:
    # a 5,000-character argument was echoed whole, filling the terminal and the JSON error (twice, with --json)
    for given in ("x" * 5000, "9" * 5000, "\x1b[31m" * 1000):
        for command, code in (
            (("bookings", "show"), 7),
            (("sessions", "show"), 7),  # 5,000 digits: int() refused them, exit 1
            (("pathways", "show"), 7),
            (("clients", "show"), 6),
            (("skills", "complete", CLIENT), 6),
        ):
            result = catalogue(*command, given, "--json")
            assert result.exit_code == code, (command, result.stderr[:300])
            message = result.stderr.splitlines()[0]
            assert len(result.stderr) < 500 and "…" in message and "\x1b" not in result.stderr, (command, message)
            assert repr(given[:8])[1:-1] in message  # escaped: the terminal shows it, not its colour
            _no_crash(result.stderr)


def test_a_long_value_no_flag_or_setting_takes_is_echoed_cut(bapp: Bapp) -> None:
    # each of these refusals echoed a 5,000-character value whole, where a reference that names nothing is cut
    given = "x" * 5000
    for args, code in (
        (("--timezone", given, "bookings", "list"), 2),
        (("bookings", "list", "--status", given), 2),
        (("sessions", "list", "--category", given), 2),
        (("clients", "list", "--format", given), 2),
        (("import", given, "-"), 2),
        (("config", "set", given, "1"), 2),
        (("config", "set", "timezone", given), 6),
        (("skills", "add", "s1", "--name", "S", "--link", given), 6),
    ):
        result = bapp(*args)
        assert result.exit_code == code, (args[:2], result.stderr[:300])
        assert len(result.stderr) < 600 and f"'{'x' * 59}…" in result.stderr, (args[:2], result.stderr[:300])


def test_a_long_timezone_setting_is_refused_as_configuration_echoed_cut(bapp: Bapp) -> None:
    # BAPP_TIMEZONE, the flag and `config set` refuse an unknown zone by the one rule (instants.known_zone_key)
    result = bapp("bookings", "list", env={"BAPP_TIMEZONE": " " + "x" * 5000})
    assert result.exit_code == 4, result.stderr[:300]
    assert result.stderr.splitlines() == [
        f"Error: environment variable BAPP_TIMEZONE, key timezone: unknown timezone '{' ' + 'x' * 58}…",
        "Hint: use an IANA name such as Europe/London",
    ]
    for args, code in (
        (("--timezone", "Mars/Base", "bookings", "list"), 2),
        (("config", "set", "timezone", "Mars/Base"), 6),
    ):
        refused = bapp(*args)
        assert refused.exit_code == code and "unknown timezone 'Mars/Base'" in refused.stderr, refused.stderr


def test_a_long_value_click_itself_refuses_is_echoed_cut(bapp: Bapp) -> None:
    # Click's own messages ('9…' is not a valid int range, No such option: --x…) echoed a 5,000-character value
    # whole; they are cut as bapp's own are (errors.quoted): 59 characters of it, then '…'
    for given in ("9" * 300, "9" * 5000, "-" + "9" * 5000):
        for args, shown in (
            (("bookings", "list", "--limit", given), given[:59]),
            (("calendly", "webhook", "retry", "--discard", given + "9" * 4300), given[:59]),  # int() refuses it
            (("bookings", "list", f"--x{given}"), f"--x{given}"[:60]),  # a word of the message: no quote
            (("bookings", f"list{given}"), f"'list{given}"[:60]),
        ):
            for output in ((), ("--json",)):
                result = bapp(*args, *output)
                assert result.exit_code == 2, (args[:2], result.stderr[:300])
                assert len(result.stderr) < 600 and f"{shown}…" in result.stderr, (args[:2], result.stderr[:300])
    spaced = "it's " * 20  # its repr is quoted with ": the whole of it is one echo, however many words
    click_quoted = bapp("bookings", "list", "--limit", spaced)
    cut = "Error: Invalid value for '--limit': " + repr(spaced)[:60] + "… is not a valid"
    assert click_quoted.stderr.splitlines()[1].startswith(cut), click_quoted.stderr
    own = bapp("--timezone", "x" * 5000, "bookings", "list")  # bapp's own BadParameter, cut already: kept whole
    assert f"timezone '{'x' * 59}…; use an IANA name such as Europe/London" in own.stderr, own.stderr


def test_a_long_value_holding_ellipses_is_echoed_once_cut(bapp: Bapp) -> None:
    # an echo ended at each '…' it held: a 5,000-character value with one every 51 characters came back whole, in
    # pieces each short enough to stay uncut; quoted by Click or a word, it is one echo, cut once
    held = ("x" * 50 + "…") * 100
    for args, shown in (
        (("bookings", "list", "--limit", held), f"Invalid value for '--limit': {repr(held)[:60]}… is not a valid"),
        (("bookings", "list", f"--{held}"), f"No such option: --{held}"[:76] + "…"),
    ):
        result = bapp(*args)
        assert result.exit_code == 2, result.stderr[:300]
        assert len(result.stderr) < 400 and f"Error: {shown}" in result.stderr, result.stderr[:600]


def test_digits_past_pythons_int_limit_are_refused_not_exit_1(bapp: Bapp) -> None:
    # int() refuses a text of more than 4,300 digits (ValueError): a tier or a timeout that long was exit 1
    digits = "9" * 5000
    link = bapp("skills", "add", "s1", "--name", "S", "--link", f"accelerate:{digits}")
    assert link.exit_code == 6 and "is not PATHWAY:TIER" in link.stderr, link.stderr[:300]
    for tier in ("1", "000000002"):  # a tier's number read as before, leading zeros too
        assert bapp("skills", "add", f"s{tier}", "--name", "S", "--link", f"accelerate:{tier}").exit_code == 0
    timeout = bapp("pathways", "list", env={"BAPP_CONNECT_TIMEOUT": digits})
    assert timeout.exit_code == 4, timeout.stderr[:300]
    assert "BAPP_CONNECT_TIMEOUT: must be a whole number of seconds" in timeout.stderr
    _no_crash(link.stderr + timeout.stderr)


def test_a_cut_echo_never_ends_inside_an_escape(bapp: Bapp) -> None:
    # the repr was cut at 60 characters wherever that fell: `\u202e` shown as `\u20…`, `\x1b` as `\x1…`, `\\` as `\`
    for kept, escaped in (("a" * 55, "\u202e"), ("a" * 57, "\x1b"), ("a" * 58, "\\")):
        result = bapp("pathways", "show", kept + escaped + "tail", "--json")
        assert result.exit_code == 7, result.stderr
        assert result.stderr.splitlines()[0] == f"Error: no pathway '{kept}…", result.stderr
        assert f'"message": "no pathway \'{kept}…"' in result.stderr  # the JSON error quotes it alike


def test_ids_past_64_bits_are_not_found_or_invalid(catalogue: Bapp, tmp_path: Path) -> None:
    synced = _count(catalogue, SessionType)
    shown = catalogue("sessions", "show", HUGE)
    assert shown.exit_code == 7 and f"no session type with id {HUGE}" in shown.stderr
    booked = catalogue("bookings", "create", "--client", CLIENT, "--session", HUGE, "--start", "2031-01-06T10:00Z")
    assert booked.exit_code == 7, booked.stderr
    for argument in ("²", "١٢"):  # digits str.isdigit accepts and int() does not (or reads as another id)
        odd = catalogue("sessions", "show", argument)
        assert odd.exit_code == 7, odd.stderr
        _no_crash(odd.stderr)
    rows = tmp_path / "ids.csv"
    rows.write_text(f"id,slug,title,duration_minutes,display_order\n{HUGE},big,Big,30,1\n7,bigger,Bigger,30,{HUGE}\n")
    imported = catalogue("import", "sessions", str(rows))
    assert imported.exit_code == 6, imported.stderr
    assert "line 2, field id" in imported.stderr and "line 3, field display_order" in imported.stderr
    _no_crash(imported.stderr)
    linked = catalogue("skills", "add", "big-tier", "--name", "Big", "--link", f"accelerate:{HUGE}")
    assert linked.exit_code == 6, linked.stderr
    _no_crash(linked.stderr)
    assert _count(catalogue, SessionType) == synced


def test_a_session_id_given_as_a_json_or_toml_number_is_accepted(catalogue: Bapp, tmp_path: Path) -> None:
    session_id = _session_id(catalogue)
    answers = (
        '[{"question": "What brings you to BuildAppsWith?", "answer": "x"},'
        ' {"question": "Which best describes you?", "answer": "Founder"}]'
    )
    as_json = tmp_path / "b.json"
    as_json.write_text(
        f'[{{"client": "{CLIENT}", "session": {session_id}, "start_time": "2031-01-06T10:00Z",'
        f' "custom_question_responses": {answers}}}]'
    )
    result = catalogue("import", "bookings", str(as_json), "--json")
    assert result.exit_code == 0, result.stderr
    assert result.json()["created"] == 1
    as_toml = tmp_path / "b.toml"
    as_toml.write_text(
        f'[[bookings]]\nclient = "{CLIENT}"\nsession = {session_id}\nstart_time = 2031-01-07T10:00:00Z\n'
        'custom_question_responses = \'[{"question": "What brings you to BuildAppsWith?", "answer": "x"},'
        ' {"question": "Which best describes you?", "answer": "Founder"}]\'\n'
    )
    result = catalogue("import", "bookings", str(as_toml), "--json")
    assert result.exit_code == 0, result.stderr
    assert result.json()["created"] == 1
    assert _count(catalogue, Booking) == 2


def test_an_undecodable_argument_is_echoed_cut_without_halving_an_escape(bapp: Bapp) -> None:
    # the refusal showed the argument's first 60 characters as they fell: `\udcff` cut to `\ud`, which reads as
    # another character; cut as every echo is now (errors.cut_echo), an escape the cut would halve is left out whole
    result = bapp("sessions", "show", "a" * 57 + "\udcff" * 3)
    assert result.exit_code == 2, result.stderr
    first = result.stderr.splitlines()[0]
    assert first == f"Error: argument 3 ({'a' * 57}…) is not valid UTF-8", first

"""Reading WHEN values (services.instants): offsets, naive times in a zone across DST, impossible input."""

from __future__ import annotations

import datetime as dt

import pytest

from bapp_cli.errors import InvalidInput
from bapp_cli.services.instants import get_zone, parse_day, parse_instant


def utc(*parts: int) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2030-03-30T10:00", utc(2030, 3, 30, 10, 0)),  # GMT, the day before the clocks go forward
        ("2030-03-31T10:00", utc(2030, 3, 31, 9, 0)),  # BST from 01:00 UTC on 31 March 2030
        ("2030-10-26 10:00", utc(2030, 10, 26, 9, 0)),  # still BST
        ("2030-10-27 10:00", utc(2030, 10, 27, 10, 0)),  # GMT again
        ("2030-03-31", utc(2030, 3, 31, 0, 0)),  # a bare date is local midnight
    ],
)
def test_naive_times_in_london_land_on_the_right_instant_across_dst(text: str, expected: dt.datetime) -> None:
    parsed = parse_instant(text, timezone="Europe/London", field="start")
    assert parsed == expected and parsed.tzinfo is dt.UTC


@pytest.mark.parametrize(
    ("zone", "day", "expected"),
    [
        ("Africa/Cairo", "2031-04-25", utc(2031, 4, 24, 22)),  # 00:00 is skipped: the day starts at 01:00 (+03)
        ("America/Santiago", "2031-09-07", utc(2031, 9, 7, 4)),  # likewise, -04 → -03 at midnight
        ("America/Havana", "2031-11-02", utc(2031, 11, 2, 4)),  # 00:00–01:00 happens twice: the first one
    ],
)
def test_a_bare_date_is_the_first_instant_of_that_day_where_midnight_is_skipped_or_repeated(
    zone: str, day: str, expected: dt.datetime
) -> None:
    # `--from/--to 2031-04-25` is a whole-day filter: refusing it as a "skipped hour" left no way to name the day
    assert parse_instant(day, timezone=zone, field="from") == expected
    with pytest.raises(InvalidInput, match=r"does not exist|happens twice"):
        parse_instant(f"{day}T00:00", timezone=zone, field="from")  # a time typed out still has to exist once


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2030-03-31T10:00:00+01:00", utc(2030, 3, 31, 9)),
        ("2030-03-31T10:00Z", utc(2030, 3, 31, 10)),
        ("2030-03-31T05:30-04:30", utc(2030, 3, 31, 10)),
        (" 2030-03-31 10:00:00+00:00 ", utc(2030, 3, 31, 10)),
    ],
)
def test_explicit_offsets_win_over_the_zone(text: str, expected: dt.datetime) -> None:
    assert parse_instant(text, timezone="Asia/Tokyo", field="start") == expected


def test_the_skipped_hour_is_refused() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_instant("2030-03-31T01:30", timezone="Europe/London", field="start")
    assert caught.value.message == (
        "start: 2030-03-31 01:30 does not exist in Europe/London (skipped as the offset goes from +00:00 to +01:00)"
    )


@pytest.mark.parametrize(
    ("zone", "text", "change"),
    [
        ("Australia/Lord_Howe", "2030-10-06T02:15", "+10:30 to +11:00"),  # a gap of 30 minutes
        ("Antarctica/Troll", "2030-03-31T01:30", "+00:00 to +02:00"),  # a gap of 2 hours
        ("Europe/Amsterdam", "1937-07-01T00:00", "+01:19:32 to +01:20"),  # a gap of 28 seconds
    ],
)
def test_a_skipped_time_names_the_change_not_an_hour(zone: str, text: str, change: str) -> None:
    # every gap was "the clocks skip that hour", whatever its length
    with pytest.raises(InvalidInput) as caught:
        parse_instant(text, timezone=zone, field="start")
    assert caught.value.message.endswith(f"(skipped as the offset goes from {change})")
    assert "hour" not in caught.value.message + str(caught.value.hint)


def test_a_repeated_time_whose_offsets_have_seconds_is_hinted_with_an_offset_meaning_it() -> None:
    # Amsterdam kept its local mean time (+00:19:32, +01:19:32 in summer) until 1937: the seconds were cut off the
    # offsets shown, so the hint's +01:19 named a moment 32 seconds away from either of the two
    with pytest.raises(InvalidInput) as caught:
        parse_instant("1930-10-05T02:30", timezone="Europe/Amsterdam", field="start")
    assert caught.value.message == "start: 1930-10-05 02:30 happens twice in Europe/Amsterdam (+01:19:32 or +00:19:32)"
    assert caught.value.hint == "add the offset you mean, e.g. 1930-10-05T02:30+01:19:32"
    hinted = parse_instant(caught.value.hint.rpartition(" ")[2], timezone="Europe/Amsterdam", field="start")
    assert hinted == utc(1930, 10, 5, 1, 10, 28)  # the first 02:30


def test_the_repeated_hour_is_refused_with_both_offsets() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_instant("2030-10-27T01:30", timezone="Europe/London", field="start")
    assert caught.value.message == "start: 2030-10-27 01:30 happens twice in Europe/London (+01:00 or +00:00)"
    assert caught.value.hint == "add the offset you mean, e.g. 2030-10-27T01:30+01:00"
    assert parse_instant("2030-10-27T01:30+00:00", timezone="Europe/London") == utc(2030, 10, 27, 1, 30)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("2030-02-30T10:00", "day is out of range for month"),
        ("2030-13-01", "month must be in 1..12"),
        ("2030-01-01T25:00", "hour must be in 0..23"),
        ("next tuesday", "is not a valid date and time"),
        ("", "'' is not a valid date and time"),
        ("2030-01-01T10:00" + "0" * 100, f"{repr('2030-01-01T10:00' + '0' * 100)[:60]}… is not a valid date and time"),
        ("2030-01-01T10:00'; DROP TABLE bookings;--", "is not a valid date and time"),
    ],
)
def test_impossible_or_malformed_values_are_refused_naming_the_field(text: str, fragment: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_instant(text, timezone="UTC", field="start")
    assert caught.value.message.startswith("start: ") and fragment in caught.value.message
    # one code for every value that is no date and time: an empty or a too long one was `invalid_input`
    assert (caught.value.exit_code, caught.value.code) == (6, "invalid_datetime")


@pytest.mark.parametrize("zone", ["Mars/Olympus", "", "../../etc/passwd", "Europe/London; rm -rf"])
def test_unknown_zones_are_refused_naming_the_field(zone: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        get_zone(zone, field="timezone")
    assert caught.value.message.startswith("timezone: unknown timezone")
    with pytest.raises(InvalidInput):
        parse_instant("2030-01-01T10:00", timezone=zone)


def test_days_are_dates_or_the_local_date_of_an_instant() -> None:
    assert parse_day("2030-01-31", timezone="UTC") == dt.date(2030, 1, 31)
    assert parse_day("2030-01-31T23:30Z", timezone="Asia/Tokyo") == dt.date(2030, 2, 1)
    with pytest.raises(InvalidInput):
        parse_day("2030-02-30", timezone="UTC", field="start")

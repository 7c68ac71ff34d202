"""Reading WHEN values: ISO 8601 instants, naive local times read in an IANA zone, calendar days.

Everything past this module is an aware UTC `datetime`. A naive time is read in the zone the caller
names (the global `--timezone` option) and resolved with that zone's rules *on that date*, so a wall-clock
time on either side of a daylight-saving change lands on the right UTC instant. Wall-clock times that do
not exist (the skipped spring-forward hour) or exist twice (the repeated autumn hour) are refused with a
message that names the field and shows how to disambiguate: a silently guessed hour moves a booking.
"""

from __future__ import annotations

import datetime as dt
import re
import struct
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bapp_cli.errors import InvalidInput, quoted

MAX_WHEN_LENGTH = 64
# Instants bapp accepts. Python's datetime stops at years 1 and 9999, so an instant near either edge
# overflows as soon as it is moved to UTC or a duration, buffer or window is added to it (issue 15 #13);
# no booking, enrolment or filter of this system needs a year outside these.
EARLIEST_YEAR = 1900
LATEST_YEAR = 2999
SUPPORTED_YEARS = range(EARLIEST_YEAR, LATEST_YEAR + 1)
EXAMPLE = "2030-01-31T14:00 (read in --timezone) or 2030-01-31T14:00+01:00"
# a fraction of a second with a digit other than 0 past the sixth: finer than the microsecond bapp keeps
_PAST_MICROSECONDS = re.compile(r"[.,]\d{6}0*[1-9]")


def instant_text(value: dt.datetime) -> str:
    """The one way bapp writes an instant (JSON, JSONL, CSV, TSV, exports, messages): ISO 8601 in UTC with
    `Z`, to the second, with microseconds only when the instant has some (creation times do).

    The same instant therefore reads the same in a listing and in an export, and a backup restores it
    exactly; a booking's start prints as `2031-03-03T10:00:00Z`. A naive value is taken as UTC (the
    database's UTC type hands back aware values; naive ones only come from tests and SQLite raw rows).
    """
    if value.tzinfo is not dt.UTC:  # dt.UTC is what the database hands back: a long export's case stays short
        value = value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
    return value.isoformat()[:-6] + "Z"  # isoformat shows microseconds only when there are some


def in_zone(value: dt.datetime, zone: dt.tzinfo) -> dt.datetime | None:
    """`value` on `zone`'s clock; None when it has no offset, or no time there: an instant hours from year 1 or
    9999 (stored before the models bounded instants, or a TOML row's own) overflows in a zone past the bound."""
    try:
        return value.astimezone(zone) if value.utcoffset() is not None else None
    except OverflowError:
        return None


def zone_key(name: str) -> str | None:
    """The IANA zone `name` names, as every door reads one (--timezone, BAPP_TIMEZONE, the config's `timezone`, a
    row's zone): surrounding blanks trimmed, as `config init --timezone " UTC"` stores `UTC`; None when none.

    Only a zone every machine reads alike. ZoneInfo opens any zone file of this one — `localtime` (a link to its own
    clock), `posixrules`, `posix/…`, `right/…`, `Factory` (the placeholder of a clock never set) — which a builder, a
    booking or a setting would then keep as its zone. available_timezones() leaves them out (but localtime and
    Factory) by walking every zone file: 33 ms of a command's start, so not asked."""
    key = name.strip()
    if key in ("localtime", "posixrules", "Factory") or key.startswith(("posix/", "right/")):
        return None
    try:
        ZoneInfo(key)
    # OSError: a name too long for a file (R9); struct.error: a zone file cut short (PYTHONTZPATH naming a folder of
    # such files made every command that reads a zone exit 1)
    except (ZoneInfoNotFoundError, ValueError, OSError, struct.error):
        return None
    return key


def known_zone_key(name: str, *, field: str | None = None) -> str:
    """`zone_key(name)`, or InvalidInput naming the field when given: the one refusal of a name that is no zone, at
    every door (a row, a flag: `cli.options.known_zone`, a setting: `config`), its echo cut by `quoted`."""
    if (key := zone_key(name)) is None:
        where = f"{field}: " if field else ""
        hint = "use an IANA name such as Europe/London"
        raise InvalidInput(f"{where}unknown timezone {quoted(name)}", hint=hint, code="unknown_timezone")
    return key


def get_zone(name: str, *, field: str = "timezone") -> ZoneInfo:
    """The IANA zone called `name` (`zone_key`), or InvalidInput naming the field."""
    return ZoneInfo(known_zone_key(name, field=field))


def read_iso(text: str) -> dt.datetime | str:
    """The date and time `text` holds, or why it holds none (empty, too long: shown cut, or not ISO 8601). A WHEN
    flag's value is read by this as it is parsed (`cli.options.readable_when`: exit 2), a row's by `parse_instant`."""
    cleaned = text.strip()
    try:
        read = dt.datetime.fromisoformat(cleaned if len(cleaned) <= MAX_WHEN_LENGTH else "")
    except ValueError as exc:
        reason = str(exc)
        # Python's own message for impossible calendar values is the useful part; "Invalid isoformat" is not.
        detail = f" ({reason})" if "out of range" in reason or "must be in" in reason else ""
        return f"{quoted(cleaned)} is not a valid date and time{detail}"
    # Python cuts digits past the microsecond without a word: the instant kept would not be the one given. The regex
    # only where a fraction may be: an import row's start_time, read per row, rarely has one (P3)
    if ("." in cleaned or "," in cleaned) and _PAST_MICROSECONDS.search(cleaned):
        return f"{cleaned!r} is not a valid date and time (finer than a microsecond: the digits past it must be 0)"
    return read


def check_in_range(value: dt.datetime | dt.date, *, field: str, text: str | None = None) -> None:
    """Refuse an instant or day outside EARLIEST_YEAR..LATEST_YEAR, naming the field (exit 6, never an overflow)."""
    if not EARLIEST_YEAR <= value.year <= LATEST_YEAR:
        raise InvalidInput(f"{field}: {out_of_range(value, text)}", code="instant_out_of_range")


def out_of_range(value: dt.datetime | dt.date, text: str | None = None) -> str:
    """What is said of `value` (as `text` when typed) outside the supported range: the bookings import, which
    checks a computed end on its own, and a Calendly event parked for it say it in these words too."""
    shown = text or (instant_text(value) if isinstance(value, dt.datetime) else value.isoformat())
    return f"{shown[:MAX_WHEN_LENGTH]!r} is outside the supported range {EARLIEST_YEAR}-01-01 to {LATEST_YEAR}-12-31"


def two_offsets(wall: dt.datetime) -> bool:
    """Whether wall-clock time `wall` (aware, in its zone) has another offset on each fold: the clocks skip it
    (a gap) or show it twice (the autumn hour). `localise` refuses such a time; `sessions slots` shows an
    instant's offset with it, as `bookings create --start` takes it."""
    return wall.replace(fold=0).utcoffset() != wall.replace(fold=1).utcoffset()


def localise(naive: dt.datetime, zone: ZoneInfo, *, field: str = "time") -> dt.datetime:
    """The UTC instant of wall-clock time `naive` in `zone`; refuses skipped and repeated local times."""
    earlier = naive.replace(tzinfo=zone, fold=0)
    if two_offsets(earlier):
        shown = naive.isoformat(sep=" ", timespec="minutes")
        # the offsets before and after the change, ±HH:MM after the date and time's 16 characters, and :SS where
        # they have seconds (Amsterdam's +00:19:32 before 1937), as --start takes them for that very instant
        before, after = (moment.isoformat(timespec="minutes")[16:] for moment in (earlier, earlier.replace(fold=1)))
        round_trip = earlier.astimezone(dt.UTC).astimezone(zone).replace(tzinfo=None)
        if round_trip != naive:  # a gap, of an hour, 30 minutes (Lord Howe), 2 hours (Troll)…
            raise InvalidInput(
                f"{field}: {shown} does not exist in {zone.key} (skipped as the offset goes from {before} to {after})",
                hint="pick a time before or after the clocks change, or give an explicit UTC offset",
                code="nonexistent_local_time",
            )
        raise InvalidInput(
            f"{field}: {shown} happens twice in {zone.key} ({before} or {after})",
            hint=f"add the offset you mean, e.g. {earlier.isoformat(timespec='minutes')}",
            code="ambiguous_local_time",
        )
    return earlier.astimezone(dt.UTC)


def parse_instant(
    text: str, *, timezone: str, field: str = "time", require_time: bool = False, end: bool = False
) -> dt.datetime:
    """An aware UTC instant from ISO 8601 text; a naive value (or a bare date) is read in `timezone`.

    With ``require_time`` a bare date is refused: for a booking's start, midnight is never what a
    person typing `2031-07-04` meant, and silently booking 00:00 is worse than asking (issue 15 #28).
    In range as typed, which is all a filter's bound needs (`--from 1900-01-01` in Tokyo is 1899 in UTC); where
    an instant is stored its UTC form is checked too (`check_in_range`: a backup holding 3000-01-01T08:00Z,
    2999-12-31T20:00-12:00 typed, would not restore). An exclusive `end` may also be the first instant past the
    range: [from, 3000-01-01) is "through 2999", the period a person types for it.
    """
    if isinstance(parsed := read_iso(text), str):  # one refusal whatever is wrong with it, read once
        raise InvalidInput(f"{field}: {parsed}", hint=f"use ISO 8601, e.g. {EXAMPLE}", code="invalid_datetime")
    if not (end and parsed.replace(tzinfo=None) == dt.datetime(LATEST_YEAR + 1, 1, 1)):
        check_in_range(parsed, field=field, text=text.strip())
    if require_time and _bare_date(text) is not None:
        raise InvalidInput(
            f"{field}: {text.strip()!r} is a date without a time",
            hint=f"give the time too, e.g. {text.strip()}T10:00",
            code="time_needed",
        )
    if parsed.tzinfo is None and _bare_date(text) is not None:
        # a date means its first instant, which is not 00:00 where the clocks skip or repeat midnight (Cairo,
        # Santiago, Havana): fold 0 reads 00:00 at the offset before the change, which is that instant
        return parsed.replace(tzinfo=get_zone(timezone)).astimezone(dt.UTC)
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        return localise(parsed, get_zone(timezone), field=field)
    return parsed.astimezone(dt.UTC)


def check_period(start: dt.datetime | None, end: dt.datetime | None) -> None:
    """A period [start, end) must end after it starts (an open end is unbounded): the reports' and `bookings
    list`'s --from/--to, refused in one wording; an inverted one would list nothing, as if there were none."""
    if start is not None and end is not None and end <= start:
        raise InvalidInput(
            f"to: {instant_text(end)} must be after from ({instant_text(start)})",
            hint="the period is [from, to): from inclusive, to exclusive",
            code="invalid_period",
        )


def _bare_date(text: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        return None


def parse_day(text: str, *, timezone: str, field: str = "date") -> dt.date:
    """A calendar day: `2030-01-31`, or the local date (in `timezone`) of an instant."""
    day = _bare_date(text)
    if day is None:  # an instant in range in UTC can be on 3000-01-01 in the zone (+14:00)
        day = parse_instant(text, timezone=timezone, field=field).astimezone(get_zone(timezone)).date()
    check_in_range(day, field=field)
    return day

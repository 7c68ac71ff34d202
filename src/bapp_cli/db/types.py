"""Column types shared by the models and the migrations."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
from collections.abc import Callable
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import JSON, ColumnElement, Date, DateTime, Dialect, Integer, MetaData, Numeric, Text, cast, type_coerce
from sqlalchemy.types import TypeDecorator

from bapp_cli.db.json_values import stored_json
from bapp_cli.errors import UnreadableValue

# SQLAlchemy's storage format of a DATETIME on SQLite (naive UTC text: it sorts and compares as instants do)
SQLITE_TEXT = "%04d-%02d-%02d %02d:%02d:%02d.%06d"


class Decoded:
    """A column type whose stored values bapp decodes in Python, where a value put in by raw SQL (`'abc'` in
    a money column, text that is no JSON or no date on SQLite) can fail to decode: that failure is the
    UnreadableValue (exit 5) naming the column, caught around the decode alone (R9) — a try costs nothing
    until it raises. `named_columns` tells each column's type its name."""

    column = "a column"

    def unreadable(self, value: Any) -> UnreadableValue:
        return UnreadableValue(self.column, value)

    def guarded(self, driver: Callable[[Any], Any] | None) -> Callable[[Any], Any] | None:
        """The driver's decode of this column, its failure on a bad value made UnreadableValue."""
        if driver is None:  # nothing to decode: PostgreSQL's driver has done it, from values the server checked
            return None

        def decode(value: Any) -> Any:
            try:
                return driver(value)
            # json's decode errors are ValueErrors, Decimal's InvalidOperation an ArithmeticError
            except (ValueError, TypeError, ArithmeticError, RecursionError):
                raise self.unreadable(value) from None

        return decode


def named_columns(metadata: MetaData) -> None:
    """Give every Decoded column its own type object knowing `table.column`, for the error's message."""
    for table in metadata.tables.values():
        for column in table.columns:
            if isinstance(column.type, Decoded):
                named = column.type.copy()
                named.column = f"{table.name}.{column.name}"
                column.type = named


class Json(Decoded, TypeDecorator[Any]):
    """JSON, SQL NULL for None on every path (see models.Base), read as text and decoded by `stored_json` on both
    backends, as the plain reads decode it (psycopg's own decode took 1e400 for `inf`)."""

    impl = JSON(none_as_null=True)
    cache_ok = True

    def column_expression(self, column: ColumnElement[Any]) -> ColumnElement[Any]:
        return type_coerce(cast(column, Text), self)

    def result_processor(self, dialect: Dialect, coltype: object) -> Callable[[Any], Any]:
        return functools.partial(stored_json, column=self.column)


class Money(Decoded, TypeDecorator[Decimal]):
    """Numeric(10, 2), never negative (the schema's check): SQLite stores a number, or whatever raw SQL put
    there with its checks off — text, or a negative amount that a booking copying it could not store."""

    impl = Numeric(10, 2)
    cache_ok = True

    def result_processor(self, dialect: Dialect, coltype: object) -> Callable[[Any], Any] | None:
        decode = self.guarded(self.impl_instance.result_processor(dialect, coltype))
        if decode is None:  # PostgreSQL's driver has decoded it, and the server enforced the check
            return None

        def money(value: Any) -> Any:
            decoded = decode(value)
            if decoded is not None and decoded < 0:
                raise self.unreadable(value)
            return decoded

        return money


class Whole(Decoded, TypeDecorator[int]):
    """An integer that is not a key (a duration, a count, a position), at least `least` when the schema's
    check says so. SQLite keeps text raw SQL put in an INTEGER column as text, and a value breaking the check
    when raw SQL turned checks off: either is refused here, once, rather than failing later in arithmetic or
    in a write that copies it (a booking's end before its start)."""

    impl = Integer()
    cache_ok = True

    def __init__(self, least: int | None = None) -> None:
        super().__init__()
        self.least = least

    def result_processor(self, dialect: Dialect, coltype: object) -> Callable[[Any], Any] | None:
        if dialect.name != "sqlite":  # PostgreSQL's integer columns hold integers, its checks hold
            return None
        least = self.least

        def whole(value: Any) -> Any:
            if value is None or (type(value) is int and (least is None or value >= least)):
                return value
            raise self.unreadable(value)

        return whole


class Day(Decoded, TypeDecorator[dt.date]):
    """A calendar date (SQLite: `YYYY-MM-DD` text, or whatever raw SQL put there)."""

    impl = Date()
    cache_ok = True

    def result_processor(self, dialect: Dialect, coltype: object) -> Callable[[Any], Any] | None:
        return self.guarded(self.impl_instance.result_processor(dialect, coltype))


class UTCDateTime(Decoded, TypeDecorator[dt.datetime]):
    """An instant: aware UTC in Python, UTC on disk.

    Naive values are refused rather than guessed, because a guessed zone silently moves a booking.
    SQLite has no zone-aware type, so it stores naive UTC text, which also sorts and compares correctly.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        instant = _checked_utc(value)
        if instant is not None and dialect.name == "sqlite":
            return instant.replace(tzinfo=None)
        return instant

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any]:
        # One function per value instead of TypeDecorator's two nested calls (an import binds two instants
        # a row): the checks of _checked_utc, then SQLite's DATETIME text as SQLAlchemy writes it.
        if dialect.name != "sqlite":
            return lambda value: self.process_bind_param(value, dialect)

        def instant(value: Any) -> str | None:
            # UTC already, as an import's: nothing to check. Formatted by `%`, a third less CPU than isoformat's slice
            if type(value) is not dt.datetime or value.tzinfo is not dt.UTC:
                value = _checked_utc(value)
                if value is None:
                    return None
            return SQLITE_TEXT % (
                value.year,
                value.month,
                value.day,
                value.hour,
                value.minute,
                value.second,
                value.microsecond,
            )

        return instant

    def result_processor(self, dialect: Dialect, coltype: object) -> Callable[[Any], dt.datetime | None]:
        # One function per value instead of TypeDecorator's two nested calls: a 100,000-row export reads
        # half a million instants through here.
        driver = self.impl_instance.result_processor(dialect, coltype)
        utc = dt.UTC

        def instant(value: Any) -> dt.datetime | None:
            if value is None:
                return None
            try:
                found: Any = value if driver is None else driver(value)
                if isinstance(found, str):
                    found = dt.datetime.fromisoformat(found)
                return found.replace(tzinfo=utc) if found.tzinfo is None else found.astimezone(utc)  # type: ignore[no-any-return]
            except (ValueError, TypeError, OverflowError):  # text that is no date, or a number, on SQLite
                raise self.unreadable(value) from None

        return instant


def _checked_utc(value: Any) -> dt.datetime | None:
    """An instant to store, in UTC. Naive values are refused rather than guessed: a guessed zone silently
    moves a booking."""
    if value is None:
        return None
    if not isinstance(value, dt.datetime):
        raise TypeError(f"expected a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("naive datetime refused: instants must be timezone-aware")
    return value.astimezone(dt.UTC)


def local_date(instant: str, zone: str) -> str | None:
    """SQL's `bapp_local_date(instant, zone)` on SQLite, which has no zone data: the day (YYYY-MM-DD) an instant stored
    as UTCDateTime's naive UTC text falls on in the IANA `zone`; NULL for text that is no instant (raising here would
    fail the statement: exit 1), which the caller names as a value bapp cannot read."""
    with contextlib.suppress(ValueError, OverflowError):
        return dt.datetime.fromisoformat(f"{instant}+00:00").astimezone(ZoneInfo(zone)).date().isoformat()
    return None

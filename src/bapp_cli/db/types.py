"""Column types shared by the models and the migrations."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from sqlalchemy import DateTime, Dialect
from sqlalchemy.types import TypeDecorator

# SQLAlchemy's storage format of a DATETIME on SQLite (naive UTC text: it sorts and compares as instants do)
SQLITE_TEXT = "%04d-%02d-%02d %02d:%02d:%02d.%06d"


class UTCDateTime(TypeDecorator[dt.datetime]):
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
            if driver is not None:
                value = driver(value)
            elif isinstance(value, str):
                value = dt.datetime.fromisoformat(value)
            return value.replace(tzinfo=utc) if value.tzinfo is None else value.astimezone(utc)  # type: ignore[no-any-return]

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

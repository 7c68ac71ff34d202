"""Paging and text search for the list commands (`--limit`, `--offset`, `--search`), done in SQL.

A listing of 300,000 clients took minutes when every row was loaded to show a screenful; the window and
the filter belong in the query, so a page costs what the page holds (issue 15 #22). Every list query is
ordered on a unique key before the window applies, so pages neither overlap nor skip rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from bapp_cli.errors import InvalidInput, check_length

if TYPE_CHECKING:  # the plain reads (services.plain_reads) use this module without SQLAlchemy
    from sqlalchemy import Select

MAX_SEARCH_LENGTH = 200

SelectT = TypeVar("SelectT", bound="Select")  # type: ignore[type-arg]


@dataclass(frozen=True)
class Page:
    """Which rows of a listing to show: those matching ``search`` (if any), then ``offset`` and ``limit``."""

    limit: int | None = None
    offset: int = 0
    search: str | None = None

    def __post_init__(self) -> None:
        # The CLI's parser refuses these first (exit 2); services called otherwise get the same rule.
        if self.limit is not None and self.limit < 1:
            raise InvalidInput(f"limit: must be at least 1 (not {self.limit})", code="invalid_limit")
        if self.offset < 0:
            raise InvalidInput(f"offset: must be 0 or more (not {self.offset})", code="invalid_offset")
        check_length(self.search or "", MAX_SEARCH_LENGTH, "search", code="invalid_search")

    @property
    def searching(self) -> bool:
        return self.search is not None and bool(self.search.strip())

    @property
    def pattern(self) -> str:
        """The LIKE pattern of ``search``, escape character ``\\``: the user's text is matched literally (``%`` and
        ``_`` are LIKE's wildcards)."""
        text = (self.search or "").strip()
        return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"

    def window(self, query: SelectT, *searched: Any) -> SelectT:
        """``query`` (already filtered and ordered) cut to this page; with ``searched``, only its rows with
        ``search`` in one of those columns, ignoring case (ILIKE on PostgreSQL, lower() LIKE on SQLite)."""
        from sqlalchemy import or_

        if searched and self.searching:
            query = query.where(or_(*(column.ilike(self.pattern, escape="\\") for column in searched)))
        return query.offset(self.offset or None).limit(self.limit)  # None: no OFFSET / LIMIT clause at all


ALL = Page()

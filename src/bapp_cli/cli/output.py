"""One output sink for every command: table, json, jsonl, csv, tsv (README, "Output and exit codes").

Data goes to stdout; messages go to stderr. JSON keys are snake_case; instants are ISO 8601 UTC with
`Z` (`services.instants.instant_text`); money is a two-decimal string; nested values are JSON-encoded in
csv/tsv cells, and text cells that a spreadsheet would run as a formula are neutralised
(`services.spreadsheet`). Every format but a table streams; Rich is imported only when a table is drawn.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import json
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field
from typing import IO, Any

from bapp_cli.cli.terminal import columns_from_environment, json_for_terminal, make_console, visible
from bapp_cli.config import is_terminal

KEY_HEADERS = frozenset({"email", "client", "status", "amount", "reference"})


TableRenderer = Callable[[Any], None]  # receives a rich Console


@dataclass
class OutputSink:
    """Renders records in the chosen format; prints messages to stderr by verbosity."""

    format: str
    _: KW_ONLY
    stdout: IO[str] = field(default_factory=lambda: sys.stdout)  # the streams of the moment it is made
    stderr: IO[str] = field(default_factory=lambda: sys.stderr)
    quiet: bool = False
    verbose: int = 0
    no_color: bool = False
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        self.no_color = self.no_color or bool(os.environ.get("NO_COLOR"))

    # -- consoles -------------------------------------------------------------------------------
    @functools.cached_property
    def console(self) -> Any:
        # Off a terminal (a file, a pager) there is no width to fit: keep rows whole rather than
        # truncating at Rich's 80-column default.
        width = None if is_terminal(self.stdout) else columns_from_environment() or 200
        # --no-color / NO_COLOR mean plain text: no colours and no bold/italic escapes either
        return make_console(self.stdout, no_color=self.no_color, width=width)

    # -- data -----------------------------------------------------------------------------------
    def records(
        self,
        rows: Iterable[Mapping[str, Any]],
        columns: Sequence[str],
        *,
        title: str | None = None,
        table: TableRenderer | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """A listing: an array in json, one line per record otherwise. Every format but a table is written
        as the rows arrive, so a listing of any size holds one row (and one write buffer) at a time."""
        if self.format == "table" and table is not None:
            table(self.console)
        elif self.format == "table":
            from bapp_cli.cli.terminal import listing_table, print_listing

            shown = [(headers or {}).get(column, column.replace("_", " ")) for column in columns]
            grid = listing_table(title, shown)
            for row in rows:
                grid.add_row(*(self.display_value(row.get(column)) for column in columns))
            # the first column names the row; e-mails and statuses are what a row is found and judged by; the
            # others are left out from the right
            keys = [shown[0], *(name for name in shown if name in KEY_HEADERS)] if shown else []
            print_listing(self.console, grid, empty="(no rows)", keys=keys)
        elif self.format in ("json", "jsonl"):
            self._json(rows, "array" if self.format == "json" else "lines")
        else:
            from bapp_cli.services.spreadsheet import cell_row_formatter

            self.text_rows(columns, map(cell_row_formatter(), (map(row.get, columns) for row in rows)))

    def record(
        self,
        row: Mapping[str, Any],
        columns: Sequence[str] | None = None,
        *,
        title: str | None = None,
        table: TableRenderer | None = None,
    ) -> None:
        """A single record or summary: one object in json, a listing of one otherwise."""
        keys = list(columns or row.keys())
        if self.format == "json":
            self._json([dict(row)], "object")
        elif self.format == "table" and table is None:
            from bapp_cli.cli.terminal import detail_table

            values = ((key.replace("_", " "), self.display_value(row.get(key))) for key in keys)
            self.console.print(detail_table(title, values))
        else:
            self.records([row], keys, table=table)

    def _json(self, rows: Iterable[Mapping[str, Any]], shape: str) -> None:
        """`rows` as one JSON array ("array", the same bytes as encoding the whole list at once), one object per
        line ("lines") or a single object ("object"), written as they come. Indented for a person at a terminal
        (jsonl excepted: a line per record), with what a terminal would act on escaped; compact in a pipe,
        where the C encoder is ~3× faster."""
        from bapp_cli.services.spreadsheet import json_default

        on_terminal = is_terminal(self.stdout)  # tested once: isatty is a system call, and this runs per row
        indent = 2 if on_terminal and shape != "lines" else None
        encode = json.JSONEncoder(default=json_default, ensure_ascii=False, indent=indent).encode
        # Compact output goes straight to CPython's C encoder (when there is one), made once with the arguments
        # encode() gives it: encode() makes it afresh for every row, ~40 % of a short row's CPU (P4). No circular
        # check: a record is plain values, lists and dicts, none holding itself.
        if indent is None and (make := getattr(json.encoder, "c_make_encoder", None)):
            chunks = make(None, json_default, json.encoder.encode_basestring, None, ": ", ", ", False, False, True)
            encode = lambda o: "".join(chunks(o, 0))  # noqa: E731
        # what opens, separates and closes the items (json's own separators and indent one level down)
        opening, separator, closing, empty = {
            "array": ("[\n", ",\n", "\n]\n", "[]\n") if indent else ("[", ", ", "]\n", "[]\n"),
            "lines": ("", "\n", "\n", ""),
            "object": ("", "", "\n", ""),
        }[shape]
        write, written = self.stdout.write, False
        for row in rows:
            item = encode(row)
            if indent and shape == "array":
                item = "  " + item.replace("\n", "\n  ")
            write((separator if written else opening) + (json_for_terminal(item) if on_terminal else item))
            written = True
        write(closing if written else empty)

    def text_rows(self, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        """A listing whose cells the database already wrote as text (`services.plain_reads`, spreadsheet-safe
        for CSV/TSV): `write_delimited` takes the cursor's rows as they come; other formats get them as records."""
        if self.format not in ("csv", "tsv"):
            self.records((dict(zip(columns, row, strict=True)) for row in rows), columns)
            return
        if is_terminal(self.stdout):  # a person reads it: data is shown, never obeyed
            rows = ([visible(str(cell)) if cell is not None else cell for cell in row] for row in rows)
        write_delimited(self.stdout, self.format, columns, rows)

    def display_value(self, value: Any) -> str:
        """A value as a table cell: instants in --timezone, money with two decimals."""
        if value is None:
            return "—"
        if isinstance(value, bool):
            return "yes" if value else "no"
        if isinstance(value, dt.datetime):
            return self.local_time(value)
        if isinstance(value, list):
            return ", ".join(self.display_value(item) for item in value) if value else "—"
        from bapp_cli.services.spreadsheet import cell_text, json_default

        if isinstance(value, dict):
            return json.dumps(value, default=json_default, ensure_ascii=False)

        return cell_text(value, raw=True)  # a terminal runs no formulas

    def local_time(self, value: dt.datetime) -> str:
        from zoneinfo import ZoneInfo

        from bapp_cli.services.instants import in_zone

        # one with no local time (hours from year 1 or 9999) is shown, truthfully, in UTC rather than not at all
        shown = in_zone(value, ZoneInfo(self.timezone)) or value.astimezone(dt.UTC)
        return f"{shown.year:04d}" + shown.strftime("-%m-%d %H:%M %Z")  # strftime's %Y writes year 1 as "1"

    # -- messages (stderr) ----------------------------------------------------------------------
    def info(self, message: str) -> None:
        """Progress and confirmations for a person: silent in cron (stderr not a terminal) and --quiet."""
        self._say(message, shown=bool(self.verbose) or is_terminal(self.stderr))

    def detail(self, message: str) -> None:
        """Printed with --verbose (or when explicitly asked, e.g. --dry-run change lines)."""
        self._say(message, shown=bool(self.verbose))

    def notice(self, message: str) -> None:
        """Always shown unless --quiet: something the user asked to see (a dry-run plan)."""
        self._say(message)

    def warning(self, message: str) -> None:
        self._say(f"Warning: {message}")

    def _say(self, message: str, *, shown: bool = True) -> None:
        """One line on stderr, control characters made visible; nothing at all with --quiet."""
        if shown and not self.quiet:
            self.stderr.write(visible(message) + "\n")

    def progress(self) -> Progress:
        """A progress line for a person watching: on stderr when it is a terminal (and not --quiet), else silent."""
        return Progress(self.stderr if is_terminal(self.stderr) and not self.quiet else None)


def write_delimited(stream: IO[str], fmt: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    """`columns`, then `rows` of finished cells, as CSV or TSV (`fmt`), a thousand rows per write; returns
    how many rows were written."""
    # Each chunk is written as one text: a StringIO emptied by truncate() and written again keeps its text at four
    # bytes a character, which cost a tenth of a 100,000-row export's time (P6).
    from bapp_cli.services.spreadsheet import delimited_text

    stream.write(delimited_text([columns], fmt))
    rows, count = iter(rows), 0
    while chunk := list(itertools.islice(rows, 1000)):
        stream.write(delimited_text(chunk, fmt))
        count += len(chunk)
    return count


class Progress:
    """One line on a terminal, rewritten in place (carriage return, erase to end of line) and erased at the end.

    Silent without a terminal, so cron and pipes see nothing. Updates are written at most ten times a second
    (a fast listing would otherwise spend its time redrawing); `step` always writes.
    """

    MIN_INTERVAL = 0.1

    def __init__(self, stream: IO[str] | None) -> None:
        self._stream = stream
        self._shown = False
        self._last = float("-inf")

    def update(self, text: str) -> None:
        import time

        now = time.monotonic()
        if now - self._last >= self.MIN_INTERVAL:
            self._last = now
            self.step(text)

    def step(self, text: str) -> None:
        if self._stream is not None:
            self._stream.write("\r\x1b[K" + visible(text))
            self._stream.flush()
            self._shown = bool(text)

    def close(self) -> None:
        if self._shown:
            self.step("")  # erased: the carriage return and erase-to-end alone

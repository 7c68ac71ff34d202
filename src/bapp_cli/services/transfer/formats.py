"""Reading and writing the data formats of `bapp import` / `bapp export`: CSV, TSV, JSON, JSONL and TOML.

Readers stream: they yield one `SourceRow` at a time (its line number, its values, and the row as it was
given, for a rejects file), so a million-row CSV or JSON array never sits in memory whole. TOML is the
exception — the standard library parses it whole — and is meant for catalogues, not bulk data.

- CSV/TSV: UTF-8 with or without a BOM; a header row names the columns; an empty cell is null; nested
  values (lists, objects) are JSON in their cell. Text that a spreadsheet would run as a formula is
  written with an apostrophe in front, which the reader removes again (`services.spreadsheet`; `raw`
  turns both off). Decoding is strict and line by line, so a file in
  another encoding is refused naming the first line that is not UTF-8.
- JSON: an array of objects, or an object holding arrays by kind (`{"clients": [...], ...}`, the shape
  of `export all`); read incrementally, each object's line number is where it starts.
- JSONL: one object per line; a malformed line is a bad row, not a bad file.
- TOML: arrays of tables named by kind (`[[clients]]`). TOML has no null: an absent key is null, and
  writers omit null values (and null members of nested tables).

Writers produce the same shapes: instants as ISO 8601 UTC with `Z` (`services.instants.instant_text`:
microseconds only when there are some, so a backup restores exactly), money as two-decimal strings,
dates as `YYYY-MM-DD`.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import datetime as dt
import decimal
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any

from bapp_cli.errors import DOCUMENT_ERRORS, InvalidInput, UnreadableDocument, UsageError, read_at_most, read_toml
from bapp_cli.services.instants import in_zone, instant_text
from bapp_cli.services.plain_text import CONTROL_CHARACTER, control_message
from bapp_cli.services.spreadsheet import cell_row_formatter, delimited_text, json_default, restore_cell

FORMATS = ("csv", "tsv", "json", "jsonl", "toml")  # each is read and written
EXTENSIONS = {".csv": "csv", ".tsv": "tsv", ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl", ".toml": "toml"}
# One record in any format (a JSON value, a JSONL or CSV line, a CSV cell) and a whole TOML document: far above
# any real record or catalogue, and low enough that `/dev/zero`, a disk image given by mistake or a CSV file whose
# stray quote swallows the rest is refused, naming its line, instead of eating memory. One bound for every format:
# a record one format takes (a pathway's three 100,000-character tiers are a 1.6 MB CSV line) exports in each.
MAX_VALUE_BYTES = 64 << 20
MAX_TOML_BYTES = 64 << 20
READ_CHUNK = 1 << 16
# What a JSON value can start with (NaN and Infinity included, as Python's reader takes them).
_VALUE_START = frozenset('{["-0123456789tfnNI')
# Characters no text field may hold (services.plain_text: C0 controls other than tab, line feed and carriage
# return, DEL, C1 controls, and lone surrogates such as a JSON `\ud800` escape). A row holding one is a bad
# row naming its field.
# What makes a CSV line worth a closer look, cell by cell: a control character, a JSON escape that may
# decode to one inside a nested value (answers, tiers, links), or an apostrophe that may be the
# spreadsheet-safe prefix. A character class and two substring tests a line (a regular expression with
# alternatives was five times slower) keep the common line, with none of these, at full speed.
_CONTROL_IN_LINE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class RowError:
    """What is wrong with a row: where (its line, the field if one), what, and in `all` which kind's row."""

    line: int
    field: str | None
    message: str
    kind: str | None = None

    def text(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message

    def as_detail(self) -> dict[str, Any]:
        return {name: value for name, value in vars(self).items() if name != "kind" or value is not None}


@dataclass(frozen=True)
class SourceRow:
    """One row of input: where it starts, its values (null for empty CSV cells), and the row as given.

    A row that could not be read (wrong number of cells, not JSON, not an object, a control character)
    has no values and says why in `problem` (the importer reports it as the row's error)."""

    line: int
    values: Mapping[str, Any]
    original: Mapping[str, Any]
    problem: RowError | None = None


def _unreadable(line: int, original: Mapping[str, Any], field: str | None, message: str) -> SourceRow:
    return SourceRow(line, {}, original, RowError(line, field, message))


def _not_an_object(line: int, value: Any, expected: str = "an object") -> SourceRow:
    found = "null" if value is None else type(value).__name__  # JSON's null, not Python's NoneType
    return _unreadable(line, {"value": value}, None, f"expected {expected}, found {found}")


def format_for(path: str | None, explicit: str | None, *, default: str | None) -> str:
    """`--format`/`--input-format` if given, else the file's extension, else `default`."""
    if explicit:
        chosen = explicit.strip().lower()
        if chosen not in FORMATS:
            raise UsageError(f"unknown format {explicit!r}", hint="choose one of: " + ", ".join(FORMATS))
        return chosen
    named = path if path and path != "-" else ""
    suffix = "." + named.rsplit(".", 1)[-1].lower() if "." in named.rsplit("/", 1)[-1] else ""
    if suffix in EXTENSIONS:
        return EXTENSIONS[suffix]
    flag = "--input-format" if default is None else "--format"
    if default is not None and not suffix:
        return default
    if path not in (None, "-"):
        # An extension bapp does not write (x.xlsx) must not get JSON under its name, nor a file to import with
        # none (`rows`, `/dev/fd/3`, or '' from an unset "$FILE") be called stdin: say so instead.
        hint = f"name it .csv, .tsv, .json, .jsonl or .toml, or pass {flag} " + "|".join(FORMATS)
        raise InvalidInput(f"cannot tell the format of {path!r} from its name", hint=hint, code="unknown_format")
    raise UsageError("cannot tell the format of stdin", hint=f"pass {flag} " + "|".join(FORMATS))


def _bad_file(
    message: str, *, line: int | None = None, code: str = "malformed_input", hint: str | None = None
) -> InvalidInput:
    details = [{"line": line, "field": None, "message": message}] if line is not None else None
    prefix = f"line {line}: " if line is not None else ""
    return InvalidInput(f"{prefix}{message}; nothing was written", hint=hint, details=details, code=code)


def _read(method: Callable[[int], bytes], size: int, line: int) -> bytes:
    """`method(size)` of the input, or `_read_failed`."""
    try:
        return method(size)
    except OSError as exc:
        raise _read_failed(exc, line) from None


def _read_failed(exc: OSError, line: int) -> InvalidInput:
    """A read that failed (EIO from a failing disk or network mount, a /proc file that refuses reads): a file
    bapp cannot read, exit 6, not a crash."""
    return _bad_file(f"the input could not be read ({exc.strerror or type(exc).__name__})", line=line)


def _not_utf8(line: int) -> InvalidInput:
    hint = "save it as UTF-8 (with or without a BOM) and import again"
    return _bad_file("the file is not UTF-8 text", line=line, code="wrong_encoding", hint=hint)


# -- CSV and TSV ---------------------------------------------------------------------------------------


def _malformed_csv(what: str, exc: csv.Error, line: int, last: int) -> InvalidInput:
    """csv's own complaint, but for a lone CR: its advice (open the file in universal-newline mode) is about
    Python's open(), and lines here end at LF alone, so a classic-Mac file is one line. Named by the `line` the
    record starts on: a stray quote there swallows every line to the `last` one read, up to a record's bound."""
    problem = "a carriage return outside quotes: lines end in LF or CRLF" if "new-line" in str(exc) else exc
    spans = f"; a quoted cell runs from this line to line {last}" if last > line else ""
    return _bad_file(f"{what} ({problem}{spans})", line=line)


def control_character(value: Any, where: str | None = None) -> tuple[str | None, str] | None:
    """The first forbidden character in `value` (text, or lists and objects of it) and the field path
    where it is, or None."""
    if isinstance(value, str):
        match = CONTROL_CHARACTER.search(value)
        return (where, match.group()) if match else None
    if isinstance(value, Mapping):
        for key, item in value.items():
            path = f"{where}.{key}" if where else str(key)
            if found := control_character(str(key), where) or control_character(item, path):
                return found
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            if found := control_character(item, f"{where}[{index}]" if where else f"[{index}]"):
                return found
    return None


def _cell_control(columns: Sequence[str], cells: Sequence[str]) -> tuple[str | None, str] | None:
    for name, cell in zip(columns, cells, strict=False):
        found = control_character(cell, name)
        if found is None and cell[:1] in ("[", "{"):
            with contextlib.suppress(*DOCUMENT_ERRORS):  # not JSON after all: the kind's own validation says so
                found = control_character(json.loads(cell), name)
        if found:
            return found
    return None


def _decoded_lines(source: Source, limit: int, suspects: list[int] | None = None) -> Iterator[tuple[int, str]]:
    """(line number, text) of each line, decoded strictly one at a time so an encoding error names its
    line; a line longer than `limit` bytes is refused without reading it all.

    Lines that may hold a control character are noted in `suspects` (one regular-expression scan a
    line; the cells of such a line are looked at one by one later)."""
    number = 0
    readline = source.stream.readline
    while True:
        try:  # free in the common case: no call added to a line's work (P3)
            raw = readline(limit + 1)
        except OSError as exc:
            raise _read_failed(exc, number + 1) from None
        if not raw:
            return
        number += 1
        source.bytes_read += len(raw)
        if len(raw) > limit:
            raise _bad_file(f"a line longer than {limit} bytes", line=number, code="field_too_large")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise _not_utf8(number) from None
        text = text.removeprefix("\ufeff") if number == 1 else text
        if suspects is not None and ("'" in text or "\\u" in text or _CONTROL_IN_LINE.search(text)):
            suspects.append(number)
        del raw
        yield number, text


# -- JSON ------------------------------------------------------------------------------------------------


class _JsonScanner:
    """An incremental reader of one JSON document: values are decoded one at a time with `raw_decode`."""

    def __init__(self, source: Source) -> None:
        self._source = source
        self._decoder = codecs.getincrementaldecoder("utf-8-sig")("strict")
        self._json = json.JSONDecoder()
        self._buffer = ""
        self._pos = 0
        self._eof = False
        self.line = 1  # line of self._pos

    def _fill(self, at_least: int = 0) -> bool:
        if self._eof:
            return False
        raw = _read(self._source.stream.read, max(READ_CHUNK, at_least), self.line)
        self._source.bytes_read += len(raw)
        try:
            text = self._decoder.decode(raw, final=not raw)
        except UnicodeDecodeError:
            raise _not_utf8(self.line + self._buffer.count("\n", self._pos)) from None
        if not raw:
            self._eof = True
        # drop what was consumed so the buffer stays the size of one value plus a chunk
        self._buffer = self._buffer[self._pos :] + text
        self._pos = 0
        return bool(raw) or bool(text)

    def _advance(self, to: int) -> None:
        self.line += self._buffer.count("\n", self._pos, to)
        self._pos = to

    def peek(self) -> str:
        """The next non-blank character ('' at the end of the input)."""
        while True:
            buffer = self._buffer
            length = len(buffer)
            pos = self._pos
            while pos < length and buffer[pos] in " \t\r\n":
                pos += 1
            self._advance(pos)
            if pos < length:
                return buffer[pos]
            if not self._fill():
                return ""

    def take(self, allowed: str, what: str) -> str:
        """The next non-blank character, consumed: one of `allowed`, else the file is malformed."""
        found = self.peek()
        if not found or found not in allowed:
            shown = repr(found) if found else "the end of the input"
            raise _bad_file(f"malformed JSON: expected {what}, found {shown}", line=self.line)
        self._advance(self._pos + 1)
        return found

    def value(self) -> Any:
        self.peek()
        while True:
            try:
                value, end = self._json.raw_decode(self._buffer, self._pos)
            except json.JSONDecodeError:
                # an incomplete value at the end of the buffer: read more and try again — unless more
                # cannot help (no value starts so) or the value is already past any real record's size
                if self._pos < len(self._buffer) and self._buffer[self._pos] not in _VALUE_START:
                    raise self._malformed() from None
                if len(self._buffer) - self._pos > MAX_VALUE_BYTES:
                    raise _bad_file(
                        f"a JSON value longer than {MAX_VALUE_BYTES} bytes", line=self.line, code="field_too_large"
                    ) from None
                # reading as much again as is pending keeps a long value linear: each retry re-parses it
                if self._fill(at_least=len(self._buffer) - self._pos):
                    continue
                raise self._malformed() from None
            except DOCUMENT_ERRORS as exc:  # a huge number or deep nesting: reading more cannot help
                raise _bad_file(f"malformed JSON ({UnreadableDocument(exc).problem})", line=self.line) from None
            # a number at the buffer's edge may continue in the next chunk
            edge = end == len(self._buffer) and not self._eof and not isinstance(value, dict | list | str)
            if edge and self._fill():
                continue
            self._advance(end)
            return value

    def _malformed(self) -> InvalidInput:
        """The error at the current value, located in the buffer as it now stands (filling moves it)."""
        try:
            self._json.raw_decode(self._buffer, self._pos)
        except DOCUMENT_ERRORS as exc:  # a syntax error has its own line; a huge number or deep nesting, the value's
            moved = self._buffer.count("\n", self._pos, exc.pos) if isinstance(exc, json.JSONDecodeError) else 0
            return _bad_file(f"malformed JSON ({UnreadableDocument(exc).problem})", line=self.line + moved)
        return _bad_file("malformed JSON", line=self.line)  # pragma: no cover - decodes now

    def _more(self, close: str, after: str) -> bool:
        """Past the `,` (True: another item follows) or the closing bracket (False) after an item."""
        return self.take("," + close, f"',' or '{close}' after {after}") == ","

    def elements(self, what: str) -> Iterator[tuple[int, Any]]:
        """The members of an array whose `[` is next: (line, value) pairs."""
        self.take("[", f"an array of {what}")
        more = self.peek() != "]" or self._more("]", "[")  # an empty array: _more takes its `]`
        while more:
            self.peek()  # to the item's first character: its line
            yield self.line, self.value()
            more = self._more("]", "an item")

    def members(self) -> Iterator[str]:
        """The keys of an object whose `{` is next; after each key the caller consumes its value."""
        self.take("{", "an array of objects or an object")
        more = self.peek() != "}" or self._more("}", "{")  # an empty object: _more takes its `}`
        while more:
            key = self.value()
            if not isinstance(key, str):
                raise _bad_file("malformed JSON: an object key must be a string", line=self.line)
            self.take(":", "':' after a key")
            yield key
            more = self._more("}", "a member")

    def finish(self) -> None:
        if self.peek() != "":
            raise _bad_file("malformed JSON: extra data after the document", line=self.line)


def _row(line: int, values: dict[str, Any], original: Mapping[str, Any]) -> SourceRow:
    """A row read: its values leave out a rejects file's `error` note (`RejectsWriter`), which no kind has as a
    field, so rows fixed in a rejects file import as they are."""
    kept = {name: value for name, value in values.items() if name != "error"} if "error" in values else values
    return SourceRow(line, kept, original)


def object_row(line: int, item: Any) -> SourceRow:
    """A JSON, JSONL or TOML value as a row: an object without control characters, else why not."""
    if not isinstance(item, dict):
        return _not_an_object(line, item)
    found = control_character(item)
    return _unreadable(line, item, found[0], control_message(found[1])) if found else _row(line, item, item)


def read_json_sections(source: Source) -> Iterator[tuple[str | None, Iterator[SourceRow]]]:
    """A JSON array (one unnamed section) or an object of arrays by kind, in document order.

    Each section's rows must be consumed before asking for the next section. Non-array members (such as
    the backup's `bapp` header) are yielded with an empty iterator after being read.
    """
    scanner = _JsonScanner(source)
    if scanner.peek() == "[":
        yield None, (object_row(line, item) for line, item in scanner.elements("objects"))
    else:
        for key in scanner.members():
            if scanner.peek() == "[":
                yield key, (object_row(line, item) for line, item in scanner.elements(key))
            else:
                yield key, iter([_not_an_object(scanner.line, scanner.value(), "an array of objects")])
    scanner.finish()


def read_jsonl(source: Source) -> Iterator[SourceRow]:
    for number, text in _decoded_lines(source, MAX_VALUE_BYTES):
        if not text.strip():
            continue
        try:
            item = json.loads(text)
        except DOCUMENT_ERRORS as exc:  # json.loads itself, not read_json: no call added to a line's work (P3)
            problem = UnreadableDocument(exc).problem
            yield _unreadable(number, {"line": text.rstrip("\r\n")}, None, f"not valid JSON ({problem})")
            continue
        yield object_row(number, item)


# -- TOML ------------------------------------------------------------------------------------------------

# `[[clients]]`, `[[ "clients" ]]`, `[['clients']]` (and `[clients]`, refused as no array) alone on a line: a key bare
# or quoted; its one matched group is the key, a double-quoted one as typed (its escapes are read below)
_TABLE_HEADER = re.compile(
    r"""^[ \t]*\[\[?[ \t]*(?:([\w-]+)|"((?:[^"\\\n]++|\\.)*+)"|'([^'\n]*)')[ \t]*\]\]?[ \t]*(?:#|\r?$)""", re.MULTILINE
)


def read_toml_sections(source: Source) -> Iterator[tuple[str | None, Iterator[SourceRow]]]:
    """A TOML document's arrays of tables by kind; each table's line is that of its `[[kind]]` header."""

    def too_large(size: str) -> InvalidInput:
        return _bad_file(
            f"a TOML document {size} (TOML is read whole; use JSON for large data)", code="field_too_large"
        )

    raw = _read(lambda limit: read_at_most(source.stream, limit, too_large), MAX_TOML_BYTES, 1)
    source.bytes_read += len(raw)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _not_utf8(raw.count(b"\n", 0, exc.start) + 1) from None
    try:
        document = read_toml(text)
    except UnreadableDocument as exc:
        # "(at line N, column M)", or "(at end of document)" of a file cut short: its last line ("Expected newline or
        # end of document" is no such end)
        where = re.search(r"at line (\d+)|at end of document", exc.problem)
        line = int(where.group(1) or text.count("\n") + 1) if where else None
        raise _bad_file(f"malformed TOML ({exc})", line=line) from None
    if '"""' in text or "'''" in text:  # a `[[kind]]` line in a multi-line string is none: strings kept as their breaks
        from bapp_cli.errors import TOML_STRING_OR_COMMENT

        # only a string over several lines is blanked: a header's quoted key (`[["clients"]]`) is a string too
        text = re.sub(TOML_STRING_OR_COMMENT, lambda string: "\n" * string.group().count("\n") or string.group(), text)
    header_lines: dict[str, list[int]] = {}
    line, counted = 1, 0
    for match in _TABLE_HEADER.finditer(text):  # lines counted on from the last header: from the top, a large file's
        line += text.count("\n", counted, match.start())  # count was quadratic (28 MB: some twenty minutes)
        counted = match.start()
        name = match.group(match.lastindex or 1)
        if match.lastindex == 2 and "\\" in name:  # `[["cli\\u0065nts"]]` is [[clients]]: its escapes read as TOML's
            name = read_toml(f'key = "{name}"')["key"]
        header_lines.setdefault(name, []).append(line)
    for key, value in document.items():
        # an inline array (`clients = [{…}, …]`) has no headers: its rows are on the line of its key (not the line
        # of their index in it, which a row of a one-line array was said to be on)
        if not (lines := header_lines.get(key, [])):
            assigned = re.search(rf"^[ \t]*[\"']?{re.escape(key)}[\"']?[ \t]*=", text, re.MULTILINE)
            lines = [text.count("\n", 0, assigned.start()) + 1 if assigned else 1]
        if isinstance(value, list):  # each item that is no table is a bad row of its own
            yield key, iter([object_row(lines[min(i, len(lines) - 1)], item) for i, item in enumerate(value)])
        else:
            yield key, iter([_not_an_object(lines[0], value, f"an array of tables ([[{key}]])")])


# -- one reader for every format -------------------------------------------------------------------------


@dataclass
class Source:
    """The rows of one input, by section; `on_header` sees a CSV/TSV header's column names before any row."""

    fmt: str
    stream: IO[bytes]
    bytes_read: int = 0  # consumed so far; a progress bar reads it
    on_header: Callable[[list[str]], None] = lambda columns: None
    raw: bool = False  # CSV/TSV cells as they are, without undoing the spreadsheet-safe prefix

    def sections(self) -> Iterator[tuple[str | None, Iterator[SourceRow]]]:
        """(section name or None, rows) in input order; CSV, TSV and JSONL have one unnamed section."""
        if self.fmt in ("csv", "tsv"):
            yield None, self._delimited("," if self.fmt == "csv" else "\t")
        elif self.fmt == "jsonl":
            yield None, read_jsonl(self)
        elif self.fmt == "json":
            yield from read_json_sections(self)
        else:  # toml: format_for returns only FORMATS
            yield from read_toml_sections(self)

    def _delimited(self, delimiter: str) -> Iterator[SourceRow]:
        """Rows of a CSV/TSV file with a header; `on_header` sees the column names before any row.

        Cells are restored from their spreadsheet-safe form unless `raw`; `original` holds the restored
        cells too, so a rejects file written the same way reads back as the input did."""
        csv.field_size_limit(MAX_VALUE_BYTES)
        suspects: list[int] = []
        lines = (text for _, text in _decoded_lines(self, MAX_VALUE_BYTES, suspects))
        reader = csv.reader(lines, delimiter=delimiter, strict=True)
        try:
            header = next(reader, None)
        except csv.Error as exc:
            raise _malformed_csv("malformed header", exc, 1, reader.line_num) from None
        if header is None or not any(cell.strip() for cell in header):
            raise _bad_file("the file is empty: a header row naming the columns is required", line=1)
        columns = [cell.strip() for cell in header]
        if "" in columns:  # a spreadsheet's empty last column (a comma ending every line), or `,,`
            raise _bad_file(f"column {columns.index('') + 1} of the header has no name", line=1)
        if duplicates := sorted({name for name in columns if columns.count(name) > 1}):
            raise _bad_file("column given twice: " + ", ".join(duplicates), line=1)
        self.on_header([name for name in columns if name != "error"])  # a rejects file's note: `_row`
        width = len(columns)
        previous_end, offset = reader.line_num, 0
        while True:
            started = self.bytes_read
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise _malformed_csv("malformed CSV", exc, previous_end + 1, offset + reader.line_num) from None
            line = previous_end + 1
            previous_end = offset + reader.line_num
            if self.bytes_read - started > 1 << 20:  # a reader keeps its longest cell at 4 bytes a character: a new one
                reader, offset = csv.reader(lines, delimiter=delimiter, strict=True), previous_end
            if not cells or (len(cells) == 1 and not cells[0].strip()):
                continue  # blank line
            found = None
            if suspects and suspects[-1] >= line:  # this row's lines hold an apostrophe, a control or a \u
                if not self.raw:
                    cells = [restore_cell(cell) for cell in cells]
                found = _cell_control(columns, cells)
            original = dict(zip(columns, cells, strict=False))
            if len(cells) != width:  # every column kept, blank if missing: a CSV rejects file's header is its first's
                original = dict.fromkeys(columns, "") | original
                message = f"{len(cells)} cells, but the header has {width} columns"
                if extra := cells[width:]:  # no column keeps them: named in the error, the rejects file's note
                    named = ", ".join(repr(cell[:1000]) for cell in extra[:1000])
                    # cut for a person to read: a wide row's, whole, outgrew the line an import of that file reads
                    message += f"; the cells after its last column: {named[:1000]}{'…' if len(named) > 1000 else ''}"
                yield _unreadable(line, original, None, message)
            elif found is not None:
                yield _unreadable(line, original, found[0], control_message(found[1]))
            else:
                values = {name: (cell if cell != "" else None) for name, cell in zip(columns, cells, strict=True)}
                yield _row(line, values, original)


# -- writing ---------------------------------------------------------------------------------------------


# JSON and JSONL records: instants, dates and money in bapp's one form of each (`json_default`)
_JSON_RECORD = json.JSONEncoder(ensure_ascii=False, default=json_default).encode


class _TomlInstant(dt.datetime):
    """tomli-w writes a datetime as `str(value)`; this one's is bapp's one instant form (`…T10:00:00Z`)."""

    def __str__(self) -> str:
        return instant_text(self)


def _toml_ready(value: Any) -> Any:
    """TOML has no null: drop null members; instants in bapp's form, money a string."""
    if isinstance(value, dt.datetime):
        # a rejected row's own TOML datetime goes back as written: a local one is read in the row's zone (not
        # this machine's, which astimezone would take), and one near year 1 or 9999 may have no UTC form
        utc = in_zone(value, dt.UTC)
        return value if utc is None else _TomlInstant.combine(utc.date(), utc.timetz())
    if isinstance(value, decimal.Decimal):
        return f"{value:.2f}"
    if isinstance(value, Mapping):
        return {str(key): _toml_ready(item) for key, item in value.items() if item is not None}
    if isinstance(value, list | tuple):
        return [_toml_ready(item) for item in value if item is not None]
    return value if isinstance(value, str | bool | int | float | dt.date | dt.time) else str(value)


class RecordWriter:
    """Streams records of one kind as CSV, TSV, JSON (an array), JSONL or TOML (`[[kind]]` tables).

    CSV/TSV text cells are neutralised for spreadsheets unless `raw` (`services.spreadsheet`)."""

    def __init__(self, stream: IO[str], fmt: str, columns: Sequence[str], *, kind: str, raw: bool = False) -> None:
        self.stream = stream
        self.fmt = fmt
        # the columns in order, each None: a record is written over it, so in the columns' order (None where
        # it has none), then any others (a rejects file's `error`)
        self.columns = dict.fromkeys(columns)
        self.kind = kind
        self.count = 0
        # The records gather in a list, joined for each write: a StringIO emptied by truncate() and written again
        # keeps its text at four bytes a character. CSV/TSV gathers rows of cells instead, each batch one call of
        # `delimited_text` (as `cli.output.write_delimited`'s chunks): not a csv.writer made for every record.
        self._parts: list[str] = []
        self._rows: list[Sequence[str]] = [list(self.columns)] if fmt in ("csv", "tsv") else []
        self._size = 0  # characters gathered: written out past READ_CHUNK, however long the records
        self._cells = cell_row_formatter(raw=raw)
        if fmt == "json":
            self._gather("[")

    def _gather(self, text: str) -> None:
        self._parts.append(text)
        self._size += len(text)

    def write(self, record: Mapping[str, Any]) -> None:
        if self.fmt in ("csv", "tsv"):
            self._rows.append(cells := self._cells(map(record.get, self.columns)))
            self._size += sum(map(len, cells)) + len(cells)  # a delimiter (or LF) each: empty cells add up too
        elif self.fmt == "json":
            self._gather(("\n" if self.count == 0 else ",\n") + _JSON_RECORD({**self.columns, **record}))
        elif self.fmt == "jsonl":
            self._gather(_JSON_RECORD({**self.columns, **record}) + "\n")
        else:
            self._gather(toml_table(self.kind, {**self.columns, **record}))
        self.count += 1
        if self._size > READ_CHUNK:  # by size, not count: an inbox row of `export all` may hold megabytes
            self.flush()

    def write_all(self, records: Iterable[Mapping[str, Any]]) -> int:
        """Write every record and close; returns how many records this writer wrote."""
        for record in records:
            self.write(record)
        self.close()
        return self.count

    def flush(self) -> None:
        self.stream.write(delimited_text(self._rows, self.fmt) + "".join(self._parts))
        self._parts, self._rows, self._size = [], [], 0

    def close(self) -> None:
        if self.fmt == "json":
            self._gather("\n]\n" if self.count else "]\n")
        self.flush()


def toml_table(kind: str, record: Mapping[str, Any]) -> str:
    """One `[[kind]]` table. tomli-w writes the record as the table `[kind]`, its nested tables as
    `[kind.sub]`; under `[[kind]]` those name the same record, so each record stays one array element."""
    import tomli_w

    text = tomli_w.dumps({kind: _toml_ready(record)}).removeprefix(f"[{kind}]\n")
    return f"[[{kind}]]\n{text}\n"


class RejectsWriter:
    """Rejected rows, as given, plus an `error` column — in the input's format (`all`: by kind)."""

    def __init__(self, stream: IO[str], fmt: str, *, all_kinds: bool = False, raw: bool = False) -> None:
        self.stream = stream
        self.fmt = fmt
        self.raw = raw
        self.wrapped = all_kinds and fmt == "json"  # `all` in JSON: one object, an array per kind
        self._writer: RecordWriter | None = None

    def __call__(self, kind: str, row: SourceRow, error: str) -> None:
        record = {**row.original, "error": error}
        if self._writer is None or kind != self._writer.kind:
            if self._writer is not None:
                self._writer.close()
            if self.wrapped:
                self.stream.write(("{" if self._writer is None else ",\n") + json.dumps(kind) + ": ")
            # CSV's header is the first row's columns (every row of a CSV file has them); other formats keep each
            # row's own keys: one added as null would clear that column when the fixed row is imported again
            header = list(record) if self.fmt in ("csv", "tsv") else []
            self._writer = RecordWriter(self.stream, self.fmt, header, kind=kind, raw=self.raw)
        self._writer.write(record)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            if self.wrapped:
                self.stream.write("}\n")
            self._writer = None

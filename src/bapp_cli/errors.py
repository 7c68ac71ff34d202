"""The error hierarchy: every failure bapp reports is one of these types.

Each error carries its exit code (the table in README.md, "Output and exit codes"), a stable
machine-readable ``code`` slug, an optional ``hint`` (what to do next) and optional ``details`` (e.g.
one entry per bad row). Only ``bapp_cli.cli.app`` turns them into stderr text; nothing else prints them.
"""

from __future__ import annotations

import errno
import os
import re
import signal
import stat
from collections.abc import Callable, Mapping
from typing import IO, Any

# What a message shows of a value it quotes (a reference that names nothing, a stored value bapp cannot read)
ECHO_LENGTH = 60
# repr's text (group 1) up to an escape the cut left unfinished: `\u202e` cut to `\u20`, `\x1b` to `\x1`, `\\` to `\`
_UP_TO_A_HALF_ESCAPE = re.compile(r"((?:\\(?:x[0-9a-f]{2}|u[0-9a-f]{4}|U[0-9a-f]{8}|[^xuU])|[^\\])*).*", re.DOTALL)


def quoted(value: Any) -> str:
    """`value` as a message quotes it: its repr, cut to ECHO_LENGTH characters and ended with '…' when longer (a
    5,000-character reference that names nothing filled the terminal, and the JSON error besides). Escaped before
    it is cut, so the cut leaves no control character raw and the length holds however many it escapes."""
    return cut_echo(repr(value))


def cut_echo(shown: str) -> str:
    """`shown` (a repr, or an echo in a message bapp did not write: Click's) cut to ECHO_LENGTH characters and ended
    with '…' when longer; an escape the cut would halve is left out whole, as a half (`\\x1…`) would read as
    another character."""
    return shown if len(shown) <= ECHO_LENGTH else _UP_TO_A_HALF_ESCAPE.sub(r"\1", shown[:ECHO_LENGTH], 1) + "…"


class BappError(Exception):
    """Base of every expected failure. Subclasses fix the exit code and default slug."""

    exit_code: int = 1
    code: str = "error"

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        details: list[Any] | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = list(details) if details else []
        if code is not None:
            self.code = code


class UsageError(BappError):
    """Bad flag value, missing argument, `--yes` needed without a terminal."""

    exit_code = 2
    code = "usage"


class PartialSuccess(BappError):
    """Some rows were applied and some rejected (`--continue-on-error`)."""

    exit_code = 3
    code = "partial"


class ConfigError(BappError):
    """Missing or unreadable configuration."""

    exit_code = 4
    code = "config"


class AuthError(ConfigError):
    """A credential is missing or was refused (401/403), or a webhook signature is bad."""

    code = "auth"


class DatabaseNotReady(BappError):
    """The database is unreachable or not migrated to the head revision."""

    exit_code = 5
    code = "database_not_ready"


class UnreadableValue(DatabaseNotReady):
    """A stored value bapp cannot decode — text where a number, an instant or JSON belongs, put there by raw
    SQL or another program (R9). Raised where the value is decoded, so no command needs its own guard."""

    code = "database_value"

    def __init__(self, column: str, value: Any = ..., *, of: str | None = None, hint: str | None = None) -> None:
        shown = "" if value is ... else f" ({quoted(value)})"  # `...`: the database refused it without showing it
        where = f"{column} of {of}" if of else column
        super().__init__(
            f"the database holds a value bapp cannot read: {where}{shown}",
            hint=hint or "correct or clear it with SQL, or restore the database from a backup",
        )


class InvalidInput(BappError):
    """Data that breaks a rule: bad e-mail, past start, bad row, unknown answer choice."""

    exit_code = 6
    code = "invalid_input"


def too_long(length: int, limit: int, field: str | None = None) -> str:
    """The one wording of a text past its limit, at every door (a flag, a setting, an import's cell, Calendly's
    listing): the field (none where the caller names it: an import's row error, a flag's parser), then how many
    characters it has and how many it may have."""
    return f"{field}: " * (field is not None) + f"{length:,} characters; at most {limit:,}"


def check_length(text: str, limit: int, field: str | None, *, code: str = "too_long") -> str:
    """`text`, or InvalidInput (exit 6) in `too_long`'s words when it has more than `limit` characters."""
    if len(text) > limit:
        raise InvalidInput(too_long(len(text), limit, field), code=code)
    return text


class OutputFailed(BappError):
    """Output could not be written: disk full, quota, an I/O error on stdout or on a file being written.

    74 is EX_IOERR of sysexits.h, as 75 (busy) is its EX_TEMPFAIL. A change the command made is already
    committed when only its report to stdout fails; a file it was writing is left as it was.
    """

    exit_code = 74
    code = "output_failed"


class NotFound(BappError):
    """No such client, session, booking, skill or pathway."""

    exit_code = 7
    code = "not_found"


class Conflict(BappError):
    """Overlap, illegal status change, reused idempotency key, duplicate, empty-listing guard."""

    exit_code = 8
    code = "conflict"


class RemoteError(BappError):
    """Calendly unreachable, 5xx/429 after retries, or a response that fails validation."""

    exit_code = 9
    code = "remote"


class Busy(BappError):
    """Another process holds the lock (e.g. a running sync)."""

    exit_code = 75
    code = "busy"


# The SIGTERM or SIGHUP that stopped the running command, if one did (cli.app's handler records it, then unwinds
# the command as Ctrl-C does; cleared as each command begins), and each stop's name, as README's exit codes say.
stop_signal: list[int] = []
STOPS: dict[int, str] = {signal.SIGINT: "Interrupted", signal.SIGHUP: "Hung up", signal.SIGTERM: "Terminated"}


def stopped_by() -> int:
    """The signal that stopped the running command: the SIGTERM or SIGHUP recorded, else Ctrl-C's SIGINT."""
    return stop_signal[0] if stop_signal else signal.SIGINT


class Interrupted(BappError):
    """Ctrl-C, SIGTERM or SIGHUP, where a command words its own stop (`during` says what was under way): the
    message starts with the stop's name and the exit code is 128 + the signal, as a shell reports the signal."""

    code = "interrupted"

    def __init__(self, during: str, *, hint: str | None = None) -> None:
        signum = stopped_by()
        super().__init__(f"{STOPS[signum].lower()} {during}", hint=hint)
        self.exit_code = 128 + signum


# Whether the running command has committed a transaction (db.dbapi.settled sets it, cli.app clears it as each
# command begins): stopped after that, it has changed what it committed, so its stop cannot say nothing was.
committed = [False]


# Besides their own decode errors, Python's json and tomllib readers raise ValueError for an integer of more
# digits than sys.get_int_max_str_digits() (a guard against quadratic-time conversion) and RecursionError for
# arrays or objects nested about a thousand deep. Both are bad input (R9): a user's JSON or TOML is read with
# `read_json`/`read_toml` below, which raise one UnreadableDocument for all of them (the import's streaming
# readers catch DOCUMENT_ERRORS themselves and word them the same way); `document_problem` says what is wrong.
DOCUMENT_ERRORS = (ValueError, RecursionError)


def document_problem(error: BaseException) -> str:
    """What a JSON or TOML document that Python's reader refused holds, in words for the person who wrote it."""
    if isinstance(error, RecursionError):
        return "arrays or objects nested too deeply"
    if "integer string conversion" in str(error):
        import sys

        return f"a number longer than {sys.get_int_max_str_digits()} digits"
    return str(error)


def rule_message(error: Mapping[str, Any]) -> str:
    """A pydantic error's message (one of ``ValidationError.errors()``) as said to the user: a rule's ValueError
    is its own message, "Value error, " being pydantic's name for how it came, no part of what is wrong."""
    return str(error.get("msg", "invalid")).removeprefix("Value error, ")


class UnreadableDocument(Exception):
    """What Python's JSON or TOML reader refused in a user's document (`read_json`/`read_toml` raise it):
    `problem` says what is wrong in words for the person who wrote it; the text adds where (line and column)
    when the reader knows it. Each caller turns it into its own error, naming what the document is
    (`read_json_input` for a document a command was given)."""

    def __init__(self, error: ValueError | RecursionError) -> None:
        import json

        if isinstance(error, json.JSONDecodeError):
            self.problem = error.msg
            super().__init__(f"line {error.lineno}, column {error.colno}: {error.msg}")
        else:
            self.problem = document_problem(error)
            super().__init__(self.problem)


def read_json(text: str | bytes) -> Any:
    """A user's JSON document; anything Python's reader refuses (R9 included) is an UnreadableDocument. Bytes are
    decoded strictly: json.loads(bytes) lets a UTF-8-encoded lone surrogate through, which no database stores."""
    import json

    try:
        return json.loads(text.decode(json.detect_encoding(text)) if isinstance(text, bytes) else text)
    except DOCUMENT_ERRORS as exc:
        raise UnreadableDocument(exc) from None


def read_json_input(text: str | bytes, where: str, *, code: str) -> Any:
    """`read_json` of a document a command was given: one it cannot read is InvalidInput (exit 6) naming it."""
    try:
        return read_json(text)
    except UnreadableDocument as exc:
        raise InvalidInput(f"{where}: not valid JSON ({exc})", code=code) from None


MAX_TOML_DEPTH = 64  # tables and arrays within each other; bapp's own files go three deep
# A TOML string or comment, matched from where TOML would start reading one; one left open runs to where TOML would
# refuse it (the line's or the text's end), so that nothing is read twice. The dots in it are no dotted key's
TOML_STRING_OR_COMMENT = (
    r"""(?s:"{3}(?:[^"\\]|\\.|"(?!""))*+(?:"{3,5})?)|'{3}(?:[^']|'(?!''))*+(?:'{3,5})?"""
    r"""|"(?:[^"\\\n]|\\.)*+"?|'[^'\n]*+'?|#[^\n]*"""
)


def _holds_too_long_dotted_key(text: str) -> bool:
    """Whether what looks like a dotted key in `text` has more than MAX_TOML_DEPTH parts; strings and comments are
    read as dotted keys too, so a yes is only a maybe. Each chain of eight or more dotted parts is read once."""
    import re

    link = r"""[ \t]*(?:[A-Za-z0-9_-]+|"(?:[^"\\\n]|\\.)*"|'[^'\n]*')[ \t]*\."""
    deep = re.compile(rf"\.(?:{link}){{{MAX_TOML_DEPTH - 1}}}")
    return any(deep.match(text, chain.start()) for chain in re.finditer(rf"\.(?:{link}){{8}}(?:{link})*+", text))


def read_toml(text: str) -> dict[str, Any]:
    """A user's TOML document; the decode error's text keeps tomllib's "(at line N, column M)"."""
    import re
    import tomllib

    # tomllib takes time quadratic in a dotted key's parts: one of 400,000 (a config file under its 1 MB limit) read
    # for more than half an hour. A key of more parts than MAX_TOML_DEPTH is refused by the walk below anyway, so it is
    # refused before the read. Only a maybe (a string or comment of many dots, `"a.b.c…"`) costs a second look, with
    # each string and comment in the place of one bare part: a key of quoted parts (`"a"."a"…`) stays one
    if _holds_too_long_dotted_key(text) and _holds_too_long_dotted_key(re.sub(TOML_STRING_OR_COMMENT, "_", text)):
        raise UnreadableDocument(RecursionError())
    try:
        document = tomllib.loads(text)
    except DOCUMENT_ERRORS as exc:
        raise UnreadableDocument(exc) from None
    # tomllib bounds the nesting of arrays and inline tables, not of a dotted key's tables (`a.a.a… = 1`): a thousand
    # deep broke each later walk of the document (`config set`'s copy of it: exit 1, RecursionError)
    level: list[Any] = [document]
    for _ in range(MAX_TOML_DEPTH):
        level = [
            child
            for node in level
            if isinstance(node, dict | list)
            for child in (node.values() if isinstance(node, dict) else node)
        ]
    if level:
        raise UnreadableDocument(RecursionError())
    return document


def read_at_most(handle: IO[bytes], limit: int, too_large: Callable[[str], BappError]) -> bytes:
    """All of `handle`, or `too_large("larger than 1 MB")` (the limit in words) past `limit` bytes: every file
    bapp reads whole is small, and `/dev/zero` or a disk image named by mistake would only exhaust memory."""
    content = handle.read(limit + 1)
    if len(content) > limit:
        raise too_large(f"larger than {limit >> 20} MB" if limit >= 1 << 20 else f"larger than {limit >> 10} KB")
    return content


def read_small_file(path: str | os.PathLike[str], limit: int, refused: Callable[[str], BappError]) -> tuple[bytes, int]:
    """The bytes and st_mode of the regular file `path` a setting names (a key, a token), read as `read_at_most`;
    anything else — a FIFO, a device, a directory, a socket — is `refused("not a regular file")`, never read.
    Other OSErrors (not there, not permitted) are the caller's to word."""
    try:
        # O_NONBLOCK: opening a FIFO would otherwise wait for a writer, for ever; it is refused below
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # a socket cannot be opened at all
            raise refused("not a regular file") from None
        raise
    mode = os.fstat(descriptor).st_mode
    if not stat.S_ISREG(mode):  # asked before open(), which refuses a directory but leaves its descriptor open
        os.close(descriptor)
        raise refused("not a regular file")
    with open(descriptor, "rb") as handle:
        return read_at_most(handle, limit, refused), mode


def holds_lone_surrogate(document: Any) -> bool:
    """Whether a parsed JSON document holds half of a UTF-16 pair (a `"\\ud800"` escape): no text, which no
    database, file or API can store — such a document is bad input before anything is written of it."""
    import json

    try:
        json.dumps(document, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return True
    return False

"""Files a command reads or writes: the one input reader and the one output-file writer.

Every command that takes a path (or `-`) goes through here, so each refusal reads the same and none
escapes as a raw OSError.

- `open_input` / `read_input` / `read_text_input`: a file, or stdin for `-`. A path that cannot be read (missing, a
  directory, no permission) is InvalidInput (exit 6) naming the option and the path, before anything
  is written. Whole-file reads are capped, so `/dev/zero` is refused instead of filling memory.
- `OutputFile`: a file being written (`export -o`, `import --rejects`). All checks happen when it
  opens, before the command does its work: a directory, a name ending in `/`, a file that may not be
  written (read-only, immutable), the command's own input or the SQLite database it uses (also through a
  link, or stdout redirected to it: `>> bapp.db`) is InvalidInput (exit 6). Then:
  - a regular file (or a new one) is written beside its target and renamed over it at the end, so a
    failed run leaves the old file as it was; the new file keeps the old one's mode (and owner, when
    bapp may set it), and a new private file (a backup) is created 0600;
  - a symbolic link is followed: its target is replaced, the link stays;
  - anything else (a FIFO, a terminal, `/dev/full`) is written in place — renaming over a device node or
    a FIFO would replace it with a regular file and the reader would get nothing; bapp's own stdout or
    stderr (`/dev/stdout`, `/dev/fd/2`), whatever it is, through its descriptor.
  A failure while writing (disk full, quota, I/O error) is OutputFailed (exit 74) naming the path, and
  the temporary file is removed. `finish` happens before the caller commits: an import whose rejected
  rows cannot be kept writes nothing at all.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import stat
import sys
from collections.abc import Callable, Iterator
from dataclasses import KW_ONLY, dataclass, field
from types import TracebackType
from typing import IO, TYPE_CHECKING, cast

from bapp_cli.config import names_a_directory
from bapp_cli.errors import InvalidInput, OutputFailed, committed, read_at_most

if TYPE_CHECKING:
    from bapp_cli.config import Settings

# A saved Calendly listing, a webhook body or an answers document is small; past this a path is not
# the file the user meant (`/dev/zero`, a disk image) and reading on would only exhaust memory.
MAX_WHOLE_FILE_BYTES = 256 << 20


def _unreadable(what: str | None, path: str, reason: str) -> InvalidInput:
    prefix = f"{what}: " if what else ""
    return InvalidInput(f"{prefix}cannot read {path or repr(path)}: {reason}", code="unreadable_file")


@contextlib.contextmanager
def open_input(path: str, *, what: str | None = None) -> Iterator[IO[bytes]]:
    """The bytes of `path`, or of stdin for `-`; `what` names the option in errors (None: the argument)."""

    if path == "-":
        if sys.stdin is None:  # started with stdin closed (`<&-`): Python gives no stream at all
            raise _unreadable(what, "stdin", "it is closed; pipe the data in or give a file")
        # stdin replaced by a text stream (the in-process test runner) is read as its UTF-8 bytes
        yield sys.stdin.buffer if hasattr(sys.stdin, "buffer") else io.BytesIO(sys.stdin.read().encode("utf-8"))
        return
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed by the `with` below
    except OSError as exc:
        raise _unreadable(what, path, exc.strerror or type(exc).__name__) from None
    with handle:
        yield handle


def read_input(path: str, *, what: str | None = None) -> bytes:
    """The whole content of `path` (or stdin for `-`), refused past MAX_WHOLE_FILE_BYTES."""
    with open_input(path, what=what) as stream:
        try:  # MAX_WHOLE_FILE_BYTES read when called: tests lower it
            return read_at_most(
                stream,
                MAX_WHOLE_FILE_BYTES,
                lambda size: _unreadable(what, path, f"{size}; this is not the file you meant"),
            )
        except OSError as exc:
            raise _unreadable(what, path, exc.strerror or type(exc).__name__) from None


def read_text_input(path: str, *, what: str | None = None) -> str:
    """The whole content of `path` (or stdin for `-`) as UTF-8 text (a leading BOM dropped)."""
    try:  # read_input raises no UnicodeDecodeError of its own
        return read_input(path, what=what).decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        prefix = f"{what}: " if what else ""
        raise InvalidInput(f"{prefix}{path}: byte {exc.start} is not UTF-8", code="bad_encoding") from None


def _in_place(path: str, existing: os.stat_result) -> int | str | None:
    """What to open to write `path` in place, None for a regular file (replaced by rename): bapp's own stdout or
    stderr, whatever it is (`/dev/stdout`, `/dev/fd/2`), through a copy of its descriptor, at the shell's offset —
    renaming over the file it was redirected to would drop what the script wrote there; a FIFO or a device by name."""
    with contextlib.suppress(OSError, StopIteration):  # started without stdout (`>&-`), or neither of them
        return next(os.dup(fd) for fd in (1, 2) if os.path.samestat(existing, os.fstat(fd)))
    return None if stat.S_ISREG(existing.st_mode) else path


@dataclass(eq=False)
class OutputFile:
    """A file a command writes: checked on entry, whole or not at all on exit (see the module doc).

    `with OutputFile(path, what="--output") as stream:` yields a text stream; leaving the block normally
    finishes the file, leaving it with an exception removes what was written.
    """

    path: str
    _: KW_ONLY
    what: str
    private: bool = False
    not_the_input: str | None = None
    settings: Settings | None = None  # the files it names (the database, keys) and the config file are kept
    _target: str = field(default="", init=False)  # the real path, set on entry
    _temporary: str | None = field(default=None, init=False)
    _handle: IO[str] | None = field(default=None, init=False)

    # -- entering: every refusal happens here, before the command does anything --------------------
    def __enter__(self) -> IO[str]:
        if self.path == "-":
            with contextlib.suppress(OSError):  # stdout closed (`>&-`): its first write says so
                if stat.S_ISREG((stdout := os.fstat(1)).st_mode):  # `>> bapp.db` would append to the database
                    self._refuse_overwriting(stdout)
            return sys.stdout
        if not self.path:  # `-o "$BACKUP"` with BACKUP unset: no name at all, not the current directory's
            raise self._refused("an empty file name: give a file name, or '-' for stdout", code="empty_file_name")
        if names_a_directory(self.path):
            raise self._refused("a directory name: give a file name", code="output_is_directory")
        self._target = os.path.realpath(self.path)  # a symlink's target is what gets replaced
        try:
            try:  # the path itself (realpath makes /dev/stdout of a pipe a name that is not there)
                existing: os.stat_result | None = os.stat(self.path)
            except FileNotFoundError:
                existing = None
            if existing is not None and stat.S_ISDIR(existing.st_mode):
                raise self._refused("it is a directory: give a file name", code="output_is_directory")
            self._refuse_overwriting(existing)
            if existing is not None and not os.access(self.path, os.W_OK):
                raise self._refused("Permission denied (read-only or immutable)", code="unwritable_file")
            if existing is not None and (in_place := _in_place(self.path, existing)) is not None:
                self._handle = open(in_place, "w", encoding="utf-8", newline="")
            else:
                self._handle = self._open_beside(existing)
        except OSError as exc:  # checking or opening it (a path through a regular file, a full folder): exit 6
            raise self._refused(exc.strerror or type(exc).__name__, code="unwritable_file") from None
        return cast(IO[str], GuardedStream(self._handle, self.failed))

    def _refuse_overwriting(self, existing: os.stat_result | None) -> None:
        """The command's own input, the SQLite file it works on (or its journal), the config file, or a file a
        setting names (the badge signing key the command just read): replacing the database would lose it —
        the command's own transaction would commit into the unlinked file — and a key would be lost for good."""
        # (a path, what it is, the noun of the refusal); a device (/dev/null as the config file) is not destroyed.
        # One not there yet is refused by its name: SQLite makes and deletes the journal as it opens and closes
        # the database, and deleted an export written as bapp.db-wal (exit 0, no file).
        regular = existing is None or stat.S_ISREG(existing.st_mode)
        protected = self.settings.own_files() if self.settings is not None and regular else []
        # a pipe too (/dev/stdin): rejects written into it never end; for `-`, the file or pipe stdin is
        if (named := "/dev/stdin" if self.not_the_input == "-" else self.not_the_input) is not None:
            protected.append((named, f"the input file {named}", "input"))
        for path, described, noun in protected:
            # an input that cannot be read gets its own error when it is opened
            with contextlib.suppress(OSError):
                same = os.path.samestat(os.stat(path), existing) if existing else os.path.realpath(path) == self._target
                if same:
                    message = f"{self.what}: {self.path} is {described}; writing it would destroy the {noun}"
                    raise InvalidInput(message, hint=f"give {self.what} another path", code=f"output_is_{noun}")

    def _open_beside(self, existing: os.stat_result | None) -> IO[str]:
        import tempfile

        folder, name = os.path.split(self._target)
        descriptor, self._temporary = tempfile.mkstemp(prefix=f".{name}.", suffix=".partial", dir=folder or ".")
        try:
            if existing is not None:
                os.fchmod(descriptor, stat.S_IMODE(existing.st_mode))
                with contextlib.suppress(OSError):  # only root may give a file away; others keep their own
                    os.fchown(descriptor, existing.st_uid, existing.st_gid)
            elif not self.private:
                umask = os.umask(0o022)  # read by setting it: put back at once
                os.umask(umask)
                os.fchmod(descriptor, 0o666 & ~umask)  # what `open()` would have made
            # a new private file stays 0600, as mkstemp made it
            return open(descriptor, "w", encoding="utf-8", newline="")
        except BaseException:
            os.close(descriptor)
            self.discard()
            raise

    # -- leaving ---------------------------------------------------------------------------------------
    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.finish()
        else:
            self.discard()

    def finish(self) -> None:
        """Flush, sync and put the file in place; OutputFailed (exit 74) if the data cannot be kept."""
        handle, self._handle = self._handle, None
        if handle is None:
            return
        try:
            with handle:  # closed whatever happens; a failing close is a failed write too
                handle.flush()
                if self._temporary is not None:
                    os.fsync(handle.fileno())
            if self._temporary is not None:
                os.replace(self._temporary, self._target)
                self._temporary = None
        except OSError as exc:
            self.discard()
            raise self.failed(exc) from None

    def discard(self) -> None:
        """Drop what was written: the stream closed (if still open), the temporary file removed."""
        handle, self._handle = self._handle, None
        if handle is not None:
            with contextlib.suppress(OSError):
                handle.close()
        if self._temporary is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._temporary)
            self._temporary = None

    def _refused(self, reason: str, *, code: str) -> InvalidInput:
        # an empty path ('-o ""') is shown quoted
        return InvalidInput(f"{self.what}: cannot write {self.path or repr(self.path)}: {reason}", code=code)

    def failed(self, exc: OSError | UnicodeEncodeError) -> Exception:
        if isinstance(exc, BrokenPipeError):  # `-o /dev/stdout | head`, a FIFO's reader gone: quiet, as for stdout
            return StdoutClosed()
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        full = getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT)
        hint = "free some space and run the command again" if full else None
        return OutputFailed(f"{self.what}: cannot write {self.path}: {reason}; nothing was kept", hint=hint)


class StdoutClosed(Exception):
    """The reader of stdout went away (`bapp … | head`). Not an OSError, which Click would turn into a
    plain exit 1 on its own; `main` ends the run quietly, as cat and grep do."""


# what a run that fails on its own goes on past as it prints (exit 3 with rows, a failed or stopped run's summary):
# its rows' reader gone (141) or its disk full (74) must not hide its own code and error (README)
BESIDE_A_FAILURE = (StdoutClosed, OutputFailed)


class GuardedStream:
    """A text stream whose failed writes are named: `failed(error)` is raised instead of the bare OSError.

    sys.stdout while a command runs is one (a closed pipe is StdoutClosed, anything else — `> /dev/full`, a
    full disk, a quota — OutputFailed naming stdout, exit 74), and so is an OutputFile's stream (OutputFailed
    naming the path). Everything else is the real stream's.
    """

    def __init__(self, stream: IO[str], failed: Callable[[OSError | UnicodeEncodeError], Exception]) -> None:
        self.stream = stream
        self._failed = failed

    def write(self, text: str) -> int:
        # a plain try, not the context manager: this runs once per row of a streamed listing
        try:
            return self.stream.write(text)
        except (OSError, UnicodeEncodeError) as exc:  # the second: a stream in an encoding short of the text
            raise self._failed(exc) from None

    def flush(self) -> None:
        if self.stream.closed:  # an OutputFile finished or discarded has flushed or dropped everything
            return
        try:
            self.stream.flush()
        except OSError as exc:
            raise self._failed(exc) from None

    def __getattr__(self, name: str) -> object:
        return getattr(self.stream, name)


def stdout_error(exc: OSError | UnicodeEncodeError) -> Exception:
    """What a failed write to stdout raises: a closed pipe ends the run quietly, anything else is exit 74."""
    if isinstance(exc, UnicodeEncodeError):  # PYTHONIOENCODING or the locale chose an encoding short of the data
        missing = f"its encoding ({exc.encoding}) has no {exc.object[exc.start : exc.end]!r}"
        return _stdout_unwritten(missing, "set PYTHONIOENCODING=utf-8 (or use a UTF-8 locale)")
    return StdoutClosed() if isinstance(exc, BrokenPipeError) else _stdout_failed(exc)


def _stdout_failed(exc: OSError) -> OutputFailed:
    # freeing space helps a full disk only, not a stdout bapp was started without (`>&-`, EBADF) or a failing device
    space = "free some space, or " if exc.errno in (errno.ENOSPC, errno.EDQUOT) else ""
    return _stdout_unwritten(exc.strerror or type(exc).__name__, f"{space}send the output elsewhere (a file, a pipe)")


def _stdout_unwritten(reason: str, remedy: str) -> OutputFailed:
    # a command's report is written after its commit: run again, `clients add` was refused as a duplicate, and a
    # booking made through Calendly would have been made twice
    if committed[0]:
        return OutputFailed(
            f"cannot write to stdout: {reason}; what was committed stands", hint=f"{remedy} before the next command"
        )
    return OutputFailed(f"cannot write to stdout: {reason}", hint=f"{remedy} and run the command again")


class MessageStream:
    """sys.stderr while a command runs. When it cannot be written — its reader has gone (`bapp … 2>&1 | head
    -1`), `2>/dev/full`, or bapp was started without it (`2>&-`) — the rest of the messages have nowhere to
    go and are dropped: the run keeps its own exit code, where the error raised while an error was being
    reported had ended it as a crash (exit 1)."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        try:
            return self.stream.write(text)
        except OSError:
            drop_stream(self.stream)
            return len(text)

    def flush(self) -> None:
        try:
            self.stream.flush()
        except OSError:
            drop_stream(self.stream)

    def __getattr__(self, name: str) -> object:
        return getattr(self.stream, name)


class ClosedStream(io.TextIOBase):
    """Stands in for a standard stream bapp was started without (`>&-`, `2>&-`), which Python leaves as None:
    each write fails as one to a closed descriptor does, so stdout's is the named exit 74 (GuardedStream) and
    stderr's is dropped (MessageStream). Nothing written, nothing to flush."""

    def write(self, text: str) -> int:
        raise OSError(errno.EBADF, os.strerror(errno.EBADF))


def drop_stream(stream: IO[str] | None = None) -> None:
    """Point stdout (or `stream`) at /dev/null so the interpreter's last flush of what is left cannot fail again."""
    try:
        descriptor = (stream or sys.stdout).fileno()
    except (AttributeError, ValueError, OSError):  # a test's StringIO: nothing to redirect
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, descriptor)
    os.close(devnull)


def flush_stdout_at_exit(code: int) -> int:
    """The exit code once stdout is flushed: 74 (with one line) if it cannot be, 141 if its reader left — for a run
    that succeeded. A failed or stopped run keeps its own code (9, 130…): the rows still buffered when its reader
    left are not news, and README promises that rows it cannot print change neither its message nor its code."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        drop_stream()
        return 141 if code == 0 else code
    except OSError as exc:
        drop_stream()
        if code == 0:
            sys.stderr.write(f"Error: {_stdout_failed(exc).message}\n")
            return 74
    return code

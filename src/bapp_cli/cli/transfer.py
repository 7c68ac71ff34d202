"""`bapp import KIND PATH|-` and `bapp export KIND`: bulk data in and out, and full backups (`all`)."""

from __future__ import annotations

import contextlib
import gc
import os
import sys
from collections.abc import Callable, Iterator
from typing import IO, TYPE_CHECKING, Annotated, Any

import typer

from bapp_cli.cli.context import state
from bapp_cli.cli.options import DryRunOption, FormatOption, JsonOption

if TYPE_CHECKING:
    from bapp_cli.cli.output import OutputSink

KIND_HELP = "pathways, skills, builders, clients, enrolments, sessions, bookings, progress, or all (a full backup)."


def import_command(
    ctx: typer.Context,
    kind: Annotated[str, typer.Argument(help=f"What the file holds: {KIND_HELP}", show_default=False)],
    path: Annotated[str, typer.Argument(help="The file to read, or '-' for stdin.", show_default=False)],
    input_format: Annotated[
        str | None,
        typer.Option(
            "--input-format",
            help="The data's format: csv, tsv, json, jsonl or toml [default: from the extension; required for -].",
            show_default=False,
        ),
    ] = None,
    dry_run: DryRunOption = False,
    continue_on_error: Annotated[
        bool,
        typer.Option(
            "--continue-on-error", help="Import the good rows, skip the bad ones (exit 3 when any were rejected)."
        ),
    ] = False,
    rejects: Annotated[
        str | None,
        typer.Option(
            "--rejects",
            help="Write rejected rows here, in the input's format, with an 'error' column.",
            show_default=False,
        ),
    ] = None,
    allow_overlap: Annotated[
        bool, typer.Option("--allow-overlap", help="bookings: skip the overlap rule (SPEC §2.5 rule 6).")
    ] = False,
    allow_any_answers: Annotated[
        bool,
        typer.Option(
            "--allow-any-answers",
            help="bookings: store answers as given (normalised, never refused) instead of checking them against "
            "the session's questions.",
        ),
    ] = False,
    create_clients: Annotated[
        bool,
        typer.Option(
            "--create-clients/--no-create-clients",
            help="bookings: create unknown clients (the default, as a free booking does), or refuse their rows.",
        ),
    ] = True,
    fmt: FormatOption = None,
    as_json: JsonOption = False,
) -> None:
    """Import a file of records: all-or-nothing, row-numbered errors, upsert on the natural key.

    Columns are the keys of the kind's record (`bapp export KIND` writes them); references go by natural
    key (client e-mail, session id/slug/Calendly URI, pathway slug, skill slug, booking reference). Any
    bad row refuses the whole file (exit 6) listing every bad row with its line and field; with
    --continue-on-error the good rows are committed and the command exits 3. The summary
    {created, updated, unchanged, rejected} goes to stdout.

    \b
    Examples:
      bapp import clients examples/clients.csv
      bapp import bookings examples/bookings.csv --dry-run --json
      bapp import bookings backfill.csv --continue-on-error --rejects rejected.csv
      cat progress.jsonl | bapp import progress - --input-format jsonl
      bapp import all backup.json          # restore a backup into an empty database
    """
    import datetime as dt

    from bapp_cli.errors import InvalidInput, PartialSuccess
    from bapp_cli.services.transfer import KINDS, import_data
    from bapp_cli.services.transfer.formats import INPUT_FORMATS, RejectsWriter, Source, format_for
    from bapp_cli.services.transfer.importer import ImportOptions

    app_state = state(ctx)
    sink = app_state.output(fmt, as_json)
    if kind not in KINDS:
        from bapp_cli.errors import UsageError

        raise UsageError(f"unknown kind {kind!r}", hint="choose one of: " + ", ".join(KINDS))
    data_format = format_for(path, input_format, allowed=INPUT_FORMATS, default=None)
    options = ImportOptions(
        timezone=app_state.timezone,
        continue_on_error=continue_on_error,
        dry_run=dry_run,
        allow_overlap=allow_overlap,
        allow_any_answers=allow_any_answers,
        create_clients=create_clients,
        source_name=path,
    )
    with contextlib.ExitStack() as stack:
        stream = stack.enter_context(_input(path, InvalidInput))
        source = Source(data_format, stream)
        rejected_to: RejectsWriter | None = None
        if rejects is not None:
            output = stack.enter_context(_output(rejects, InvalidInput))
            rejected_to = RejectsWriter(output, data_format, all_kinds=kind == "all")
        total = _size(path)
        with _progress(sink, total, app_state.quiet) as advance, app_state.transaction(dry_run=dry_run) as session:
            try:
                summary = import_data(
                    session,
                    kind,
                    source,
                    options=options,
                    now=dt.datetime.now(dt.UTC),
                    rejects=rejected_to,
                    on_batch=lambda rows: _after_batch(advance, source.progress.bytes_read, rows),
                )
            finally:
                if rejected_to is not None:
                    rejected_to.close()
    record = summary.as_record()
    sink.record(record, table=lambda console: _summary_table(record, console))
    verb = "Checked" if dry_run else "Imported"
    sink.info(
        f"{verb} {kind}: {record['created']} created, {record['updated']} updated, "
        f"{record['unchanged']} unchanged, {record['rejected']} rejected"
        + (" (dry run: nothing was written)" if dry_run else "")
    )
    if summary.rejected:
        where = f"; they are in {rejects}" if rejects else " (pass --rejects PATH to keep them)"
        raise PartialSuccess(
            f"{summary.rejected} row{'s' if summary.rejected != 1 else ''} rejected{where}",
            details=[error.as_detail() for error in summary.errors],
        )


def _after_batch(advance: Callable[[int, int], None], bytes_read: int, rows: int) -> None:
    """Advance the progress bar, and freeze what a batch leaves alive (caches of e-mails, users, enrolments).

    Without the freeze, the collector's full passes rescanned those growing caches again and again; that
    was an eighth of a 100,000-row import (SPEC P3). The batch's own objects are freed by reference
    counting when the next batch replaces them, so memory stays flat (bench/import.py --large).
    """
    advance(bytes_read, rows)
    gc.freeze()


def export_command(
    ctx: typer.Context,
    kind: Annotated[str, typer.Argument(help=f"What to export: {KIND_HELP}", show_default=False)],
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            "-f",
            help="The data's format: csv, tsv, json, jsonl or toml [default: from -o's extension, else json].",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        str | None, typer.Option("--output", "-o", help="Write here ('-' = stdout, the default).", show_default=False)
    ] = None,
) -> None:
    """Export every record of a kind (or `all`, a full backup) for analysis or backup.

    Columns are the keys of the kind's record, in the order `bapp import` reads them; instants are ISO 8601
    UTC, money two-decimal strings, nested values JSON (in CSV/TSV cells). `all` is one JSON or TOML
    document that `bapp import all` restores into an empty database of either backend — the way to move
    from SQLite to PostgreSQL. A file is written whole or not at all.

    \b
    Examples:
      bapp export clients -o clients.csv
      bapp export bookings --format jsonl | jq .reference
      bapp export all -o backup.json
      bapp --database-url postgresql://… import all backup.json
    """
    from bapp_cli.errors import InvalidInput
    from bapp_cli.services.transfer import KINDS, export_data
    from bapp_cli.services.transfer.formats import OUTPUT_FORMATS, format_for

    app_state = state(ctx)
    if kind not in KINDS:
        from bapp_cli.errors import UsageError

        raise UsageError(f"unknown kind {kind!r}", hint="choose one of: " + ", ".join(KINDS))
    data_format = format_for(output, fmt, allowed=OUTPUT_FORMATS, default="json")
    sink = app_state.messages
    with app_state.reading() as session:
        if output in (None, "-"):
            count = export_data(session, kind, sys.stdout, data_format)
        else:
            with _atomic_output(output, InvalidInput) as stream:
                count = export_data(session, kind, stream, data_format)
    where = "stdout" if output in (None, "-") else output
    sink.info(f"Exported {count} record{'s' if count != 1 else ''} ({kind}) to {where}.")


# -- files ------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _input(path: str, error: Any) -> Iterator[IO[bytes]]:
    if path == "-":
        yield sys.stdin.buffer if hasattr(sys.stdin, "buffer") else _TextAsBytes(sys.stdin)
        return
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed by the context manager below
    except OSError as exc:
        raise error(f"cannot read {path}: {exc.strerror}", code="unreadable_file") from None
    with handle:
        yield handle


@contextlib.contextmanager
def _output(path: str, error: Any) -> Iterator[IO[str]]:
    if path == "-":
        yield sys.stdout
        return
    try:
        handle = open(path, "w", encoding="utf-8", newline="")  # noqa: SIM115
    except OSError as exc:
        raise error(f"cannot write {path}: {exc.strerror}", code="unwritable_file") from None
    with handle:
        yield handle


@contextlib.contextmanager
def _atomic_output(path: str, error: Any) -> Iterator[IO[str]]:
    """Write beside the target and rename at the end, so a failed export never leaves half a file."""
    temporary = f"{path}.partial-{os.getpid()}"
    try:
        handle = open(temporary, "w", encoding="utf-8", newline="")  # noqa: SIM115
    except OSError as exc:
        raise error(f"cannot write {path}: {exc.strerror}", code="unwritable_file") from None
    try:
        with handle:
            yield handle
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


class _TextAsBytes:
    """stdin replaced by a text stream (tests): reads give UTF-8 bytes."""

    def __init__(self, stream: IO[str]) -> None:
        self._data = stream.read().encode("utf-8")
        self._lines = iter(self._data.splitlines(keepends=True))
        self._offset = 0

    def read(self, size: int = -1) -> bytes:
        if size < 0:
            size = len(self._data) - self._offset
        chunk = self._data[self._offset : self._offset + size]
        self._offset += len(chunk)
        return chunk

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._data.splitlines(keepends=True))


def _size(path: str) -> int | None:
    if path == "-":
        return None
    try:
        return os.path.getsize(path)
    except OSError:
        return None


@contextlib.contextmanager
def _progress(sink: OutputSink, total: int | None, quiet: bool) -> Iterator[Any]:
    """A progress bar on stderr when it is a terminal (never in cron or with --quiet)."""
    if quiet or not sink.stderr_is_terminal:
        yield lambda done, rows: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    rows_seen = [0]
    columns: list[Any] = [TextColumn("importing"), BarColumn()]
    columns += [DownloadColumn(), TimeRemainingColumn()] if total else [TextColumn("{task.fields[rows]} rows")]
    with Progress(*columns, console=Console(file=sink.stderr), transient=True) as bar:
        task = bar.add_task("import", total=total, rows=0)

        def advance(done: int, rows: int) -> None:
            rows_seen[0] += rows
            bar.update(task, completed=done if total else None, rows=rows_seen[0])

        yield advance


def _summary_table(record: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    table = Table(title=f"Import of {record['kind']}" + (" (dry run)" if record["dry_run"] else ""))
    for column in ("kind", "created", "updated", "unchanged", "rejected"):
        table.add_column(column, justify="left" if column == "kind" else "right")
    rows = list(record["kinds"].values()) if "kinds" in record else [record]
    for row in rows:
        table.add_row(*(str(row[column]) for column in ("kind", "created", "updated", "unchanged", "rejected")))
    console.print(table)

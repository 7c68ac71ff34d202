"""`bapp import KIND PATH|-` and `bapp export KIND`: bulk data in and out, and full backups (`all`)."""

import contextlib
import gc
import os
from typing import Annotated, Any

import typer

from bapp_cli.cli.context import state, utc_now
from bapp_cli.cli.launcher import ends_with_the_command
from bapp_cli.cli.options import DryRunOption

# the kinds the commands take, checked here before the database is opened (kinds.REGISTRY reads and writes them)
KINDS = ("pathways", "skills", "builders", "clients", "enrolments", "sessions", "bookings", "progress", "all")
KIND_HELP = ", ".join(KINDS[:-1]) + ", or all (a full backup)."


def import_command(
    ctx: typer.Context,
    kind: Annotated[str, typer.Argument(help=f"What the file holds: {KIND_HELP}")],
    path: Annotated[str, typer.Argument(help="The file to read, or '-' for stdin.")],
    input_format: Annotated[
        str | None,
        typer.Option(
            "--input-format",
            help="The data's format: csv, tsv, json, jsonl or toml [default: from the extension; required for -].",
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
        typer.Option("--rejects", help="Write rejected rows here, in the input's format, with an 'error' column."),
    ] = None,
    allow_overlap: Annotated[
        bool, typer.Option("--allow-overlap", help="bookings: skip the overlap rule (rule 6, README: Booking rules).")
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
    raw: Annotated[
        bool,
        typer.Option(
            "--raw",
            help="csv/tsv: take cells as they are, for a file written by `export --raw` or another program "
            "(by default an apostrophe that `export` put before = + - @ is removed).",
        ),
    ] = False,
) -> None:
    """Import a file of records: all-or-nothing, row-numbered errors, upsert on the natural key.

    Columns are the keys of the kind's record (`bapp export KIND` writes them); references go by natural
    key (client e-mail, session id/slug/Calendly URI, pathway slug, skill slug, booking reference). Any
    bad row refuses the whole file (exit 6) listing every bad row with its line and field; with
    --continue-on-error the good rows are committed and the command exits 3 (6 when no row was good). The summary
    {created, updated, unchanged, rejected} goes to stdout. Calendly's write-through state of a booking
    (calendly_state, attempts, links, no-show) is restored only by `import all` of a backup: a bookings
    file with those columns is refused (exit 6).

    \b
    Examples:
      bapp import clients examples/clients.csv
      bapp import bookings examples/bookings.csv --dry-run --json
      bapp import bookings backfill.csv --continue-on-error --rejects rejected.csv
      cat progress.jsonl | bapp import progress - --input-format jsonl
      bapp import all backup.json          # restore a backup into an empty database
    """
    from bapp_cli.cli.files import OutputFile, open_input
    from bapp_cli.errors import InvalidInput, PartialSuccess
    from bapp_cli.services.transfer.formats import RejectsWriter, Source, format_for
    from bapp_cli.services.transfer.importer import OUTCOMES, ImportOptions
    from bapp_cli.services.transfer.kinds import import_data

    app_state = state(ctx)
    sink = app_state.output()
    _check_kind(kind)
    if rejects == "-":  # the summary is this command's output: rows written into it would break its JSON, TSV…
        raise InvalidInput("--rejects: - is stdout, where the summary goes; give a file", code="rejects_on_stdout")
    data_format = format_for(path, input_format, default=None)
    flags = {"continue_on_error": continue_on_error, "dry_run": dry_run, "create_clients": create_clients}
    flags |= {"allow_overlap": allow_overlap, "allow_any_answers": allow_any_answers}
    options = ImportOptions(app_state.settings.timezone, **flags, source_name=path)
    with contextlib.ExitStack() as stack:
        source = Source(data_format, stack.enter_context(open_input(path)), raw=raw)
        rejected_to: RejectsWriter | None = None
        keep_rejects = contextlib.ExitStack()  # closed to keep the rejected rows: the writer, then the file
        if rejects is not None:
            # Checked (a directory, read-only, the input itself) before a row is read.
            rejects_file = OutputFile(rejects, what="--rejects", not_the_input=path, settings=app_state.settings)
            rejected_to = RejectsWriter(
                stack.enter_context(rejects_file), data_format, all_kinds=kind == "all", raw=raw
            )
            keep_rejects.callback(rejects_file.finish)
            keep_rejects.callback(rejected_to.close)
        progress = stack.enter_context(contextlib.closing(sink.progress()))
        # The collector's youngest generation at 10,000 objects rather than 700: a batch allocates millions that
        # reference counting frees, and the collector's passes over them, several thousand on 100,000 rows, cost
        # about 0.75 s CPU (docs/benchmarks.md). Put back when the command ends: the process may run others.
        stack.callback(gc.set_threshold, *gc.get_threshold())
        gc.set_threshold(10_000)
        if not ends_with_the_command:  # what the batches froze (advance) stays collectable where the process goes on
            stack.callback(gc.unfreeze)
        rows_seen, size = 0, os.path.getsize(path) if path != "-" and os.path.isfile(path) else 0

        def advance(rows: int) -> None:
            """After each batch: the progress line (a terminal only, never in cron or with --quiet), with the share
            of the file read when its size is known (not for stdin); and a freeze of what the batch leaves alive
            (caches of e-mails, users, enrolments).

            Without the freeze, the collector's full passes rescanned those growing caches again and again; that
            was an eighth of a 100,000-row import (P3, docs/benchmarks.md). The batch's own objects are freed by
            reference counting when the next batch replaces them, so memory stays flat (bench/import.py --large).
            """
            nonlocal rows_seen
            rows_seen += rows
            share = f" ({source.bytes_read * 100 // size}% of the file)" if size else ""
            progress.update(f"importing: {rows_seen:,} rows{share}…")
            gc.freeze()

        with app_state.transaction(dry_run=dry_run) as session:
            try:
                summary = import_data(
                    session, kind, source, options=options, now=utc_now(), rejects=rejected_to, on_batch=advance
                )
            except InvalidInput as refused:
                if refused.code == "bad_rows":  # refused whole: the bad rows are still kept, to be fixed
                    keep_rejects.close()
                raise
            # Before the commit: rejected rows that cannot be kept (a full disk) roll the import back.
            keep_rejects.close()
            if summary.rejected and not any(summary.total(outcome) for outcome in OUTCOMES):
                # No row taken is no partial success (exit 3 tells a cron job "the good rows are in"): the
                # import is refused as a whole, its audit entry with it.
                where = f"; they are in {rejects}" if rejects else ""
                message = f"every row was rejected ({summary.rejected}); nothing was written{where}"
                raise InvalidInput(message, details=[error.as_detail() for error in summary.errors], code="bad_rows")
    for (what, old), new in summary.renamed.items():  # a backup's slug today's rules refuse (`none`, `Play_Lab`)
        sink.warning(f"{what} {old!r} is restored as {new!r}, which today's slug rules take")
    for user, emails in summary.shared_calendly_users.items():  # restored as the backup holds them
        sink.warning(
            f"builders {' and '.join(emails)} hold Calendly user {user}, each in its own spelling: a sync or pull "
            "gives its event types and events to one of them alone (`bapp builders update EMAIL --calendly-user URI`)"
        )
    record = summary.as_record()
    if kept := record.get("kinds", {}).get("badges", {}).get("conflicts_kept"):  # README: Backups
        held = f"{kept} badge(s) held here kept their revocation state, not the backup's"
        sink.warning(f"{held} (`bapp badges revoke` revokes one this database holds valid)")
    sink.record(record, table=lambda console: _summary_table(record, console))
    counts = ", ".join(f"{record[outcome]} {outcome}" for outcome in ("created", "updated", "unchanged", "rejected"))
    note = " (dry run: nothing was written)" if dry_run else ""
    sink.info(f"{'Checked' if dry_run else 'Imported'} {kind}: {counts}{note}")
    if summary.rejected:
        where = f"; they are in {rejects}" if rejects else " (pass --rejects PATH to keep them)"
        message = f"{summary.rejected} row{'s' if summary.rejected != 1 else ''} rejected{where}"
        raise PartialSuccess(message, details=[error.as_detail() for error in summary.errors])


def export_command(
    ctx: typer.Context,
    kind: Annotated[str, typer.Argument(help=f"What to export: {KIND_HELP}")],
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            "-f",
            help="The data's format: csv, tsv, json, jsonl or toml [default: from -o's extension, else json].",
        ),
    ] = None,
    output: Annotated[str, typer.Option("--output", "-o", help="Write here ('-' = stdout).")] = "-",
    raw: Annotated[
        bool,
        typer.Option(
            "--raw",
            help="csv/tsv: write text cells exactly as stored, for other programs "
            "(by default a cell starting with = + - @ gets an apostrophe so a spreadsheet shows it as text).",
        ),
    ] = False,
) -> None:
    """Export every record of a kind (or `all`, a full backup) for analysis or backup.

    Columns are the keys of the kind's record, in the order `bapp import` reads them; instants are ISO 8601
    UTC with `Z` (microseconds only when an instant has them), money two-decimal strings, nested values
    JSON (in CSV/TSV cells). In CSV/TSV a text cell starting with = + - @ (or a tab or carriage return)
    gets an apostrophe in front, so a spreadsheet shows it as text instead of running it; `bapp import`
    removes it again, and --raw turns it off. `all` is one JSON or TOML document that `bapp import all`
    restores into an empty database of either backend — the way to move from SQLite to PostgreSQL; it also
    carries the Calendly write state of bookings, the single-use links and the pending webhook inbox.

    A file is written whole or not at all and keeps the mode of the file it replaces (a new backup is
    0600); a symbolic link's target is replaced; a FIFO or a device is written in place. An extension
    other than .csv .tsv .json .jsonl (or .ndjson) .toml needs --format; a name without one is JSON.

    \b
    Examples:
      bapp export clients -o clients.csv
      bapp export bookings --format jsonl | jq .reference
      bapp export all -o backup.json
      bapp --database-url postgresql://… import all backup.json
    """
    from bapp_cli.cli.files import OutputFile
    from bapp_cli.services.transfer.formats import format_for

    app_state = state(ctx)
    _check_kind(kind)
    data_format = format_for(output, fmt, default="json")
    # entered first: a path that cannot be written is refused before the database is read
    with OutputFile(output, what="--output", private=kind == "all", settings=app_state.settings) as stream:
        if kind == "bookings" and data_format != "toml":  # the plain read: the database writes the cells
            count = _export_bookings(app_state, stream, data_format, raw=raw)
        else:
            from bapp_cli.services.transfer.kinds import export_data

            with app_state.reading() as session:
                count = export_data(session, kind, stream, data_format, raw=raw)
    where = "stdout" if output == "-" else output
    app_state.messages.info(f"Exported {count} record{'s' if count != 1 else ''} ({kind}) to {where}.")


def _check_kind(kind: str) -> None:
    from bapp_cli.errors import UsageError, quoted

    if kind not in KINDS:
        raise UsageError(f"unknown kind {quoted(kind)}", hint="choose one of: " + ", ".join(KINDS))


def _export_bookings(app_state: Any, stream: Any, data_format: str, *, raw: bool) -> int:
    """`export bookings` as CSV, TSV, JSON or JSONL, on a plain DB-API connection (services.plain_reads)."""
    from bapp_cli.cli.output import write_delimited
    from bapp_cli.services.plain_reads import export_bookings

    with app_state.plain_reading() as database:
        delimited = data_format in ("csv", "tsv")
        found = export_bookings(database, cells=delimited, raw=raw)
        if delimited:
            return write_delimited(stream, data_format, found.columns, found.rows)
        from bapp_cli.services.transfer.formats import RecordWriter  # loads the import machinery: not for CSV

        return RecordWriter(stream, data_format, found.columns, kind="bookings").write_all(found.records())


def _summary_table(record: dict[str, Any], console: Any) -> None:
    from bapp_cli.cli.terminal import listing_table

    columns = ("kind", "created", "updated", "unchanged", "rejected")
    title = f"Import of {record['kind']}" + (" (dry run)" if record["dry_run"] else "")
    table = listing_table(title, columns, right=columns[1:])
    for row in record["kinds"].values() if "kinds" in record else [record]:
        table.add_row(*(str(row[column]) for column in columns))
    console.print(table)

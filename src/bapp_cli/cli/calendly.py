"""`bapp calendly`: who the token is, the event-type sync cron runs, and the record of past runs."""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Any

import typer

from bapp_cli.cli.context import AppState, state
from bapp_cli.cli.options import FormatOption, JsonOption
from bapp_cli.errors import InvalidInput, UsageError

if TYPE_CHECKING:
    from bapp_cli.calendly.models import EventType
    from bapp_cli.cli.output import OutputSink
    from bapp_cli.services.sync import SyncReport

app = typer.Typer(help="Talk to Calendly: check the token, sync event types, see past syncs.", no_args_is_help=True)

SYNC_LOCK = "calendly-sync"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@contextlib.contextmanager
def _without_cyclic_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector for a bulk run.

    A 10,000-type sync creates hundreds of thousands of small, acyclic objects (models, rows, parameters);
    the collector kept re-scanning them and cost about a third of the run (SPEC P2). Reference counting
    still frees everything; the collector resumes when the command ends.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@app.command("whoami")
def whoami(ctx: typer.Context, fmt: FormatOption = None, as_json: JsonOption = False) -> None:
    """Show the Calendly user the token belongs to (and its organization).

    \b
    Examples:
      bapp calendly whoami
      CALENDLY_API_KEY=… bapp calendly whoami --json
    """
    from bapp_cli.services.sync import WHOAMI_COLUMNS
    from bapp_cli.services.sync import whoami as current_identity

    app_state = state(ctx)
    sink = app_state.output(fmt, as_json)
    with app_state.calendly_client() as client:
        identity = current_identity(client)
    sink.record(identity.as_record(), WHOAMI_COLUMNS, title="Calendly token")


def _read_listing(path: str) -> list[EventType]:
    from bapp_cli.services.sync import parse_listing

    if path == "-":
        return parse_listing(
            sys.stdin.buffer.read() if hasattr(sys.stdin, "buffer") else sys.stdin.read(), name="stdin"
        )
    try:
        with open(path, "rb") as handle:
            content = handle.read()
    except OSError as exc:
        raise InvalidInput(f"--from-file: cannot read {path}: {exc.strerror}", code="unreadable_file") from None
    return parse_listing(content, name=path)


@app.command("sync")
def sync(
    ctx: typer.Context,
    user: Annotated[
        str | None,
        typer.Option("--user", help="Sync this Calendly user's event types (a user URI).", show_default=False),
    ] = None,
    organization: Annotated[
        str | None,
        typer.Option("--organization", help="Sync every event type of this organization (URI).", show_default=False),
    ] = None,
    from_file: Annotated[
        str | None,
        typer.Option(
            "--from-file",
            help="Apply a saved API listing (a page, a list of pages, or a list of event types; '-' = stdin) "
            "instead of calling Calendly.",
            show_default=False,
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print one line per change on stderr and write nothing.")
    ] = False,
    allow_empty: Annotated[
        bool,
        typer.Option(
            "--allow-empty", help="Accept an empty listing even though it makes every synced type unbookable."
        ),
    ] = False,
    reclassify: Annotated[
        bool,
        typer.Option(
            "--reclassify", help="Re-apply the classification rules to known types (category, auth, pathways)."
        ),
    ] = False,
    wait: Annotated[
        float,
        typer.Option(
            "--wait", min=0, help="If another sync is running, wait up to SECONDS for it instead of exiting 75."
        ),
    ] = 0.0,
    fmt: FormatOption = None,
    as_json: JsonOption = False,
) -> None:
    """Sync Calendly event types into the session catalogue (the cron job).

    Fetches every page first, then applies the whole change in one transaction: new types are created and
    classified by [[calendly.rules]] (else the built-in defaults), known ones get their Calendly-owned
    fields updated, vanished ones become unbookable, returning ones come back. Curated fields (category,
    auth, pathways, price, order, enabled) are never overwritten, except by --reclassify. Silent on stderr
    when it succeeds; the summary goes to stdout. Exit 4 token refused, 8 empty listing, 9 Calendly
    failed, 75 another sync is running.

    \b
    Examples:
      bapp calendly sync
      bapp calendly sync --organization https://api.calendly.com/organizations/ORG1 --json
      bapp calendly sync --dry-run
      bapp calendly sync --from-file examples/calendly/event_types.json
      */5 * * * *  bapp calendly sync --wait 60 >/dev/null
    """
    from bapp_cli.db.locks import named_lock
    from bapp_cli.services import sync as sync_service

    app_state = state(ctx)
    sink = app_state.output(fmt, as_json)
    if user and organization:
        raise UsageError("--user and --organization cannot be combined", hint="sync one scope per run")
    if from_file is not None and (user or organization):
        raise UsageError("--from-file applies a saved listing; --user/--organization do not apply to it")
    settings = app_state.settings
    rules = sync_service.parse_rules(settings.calendly_rules())
    # A bad file is bad input, not a run: refused before the lock, with nothing written (exit 6).
    listing = _read_listing(from_file) if from_file is not None else None
    source = "file" if listing is not None else "api"
    engine = app_state.engine()
    with _without_cyclic_gc(), named_lock(engine, SYNC_LOCK, wait_seconds=wait, what="Calendly sync"):
        started_at = _now()
        fetched = 0
        try:
            if listing is None:
                with app_state.calendly_client() as client:
                    scope = sync_service.resolve_scope(
                        client,
                        user=user,
                        organization=organization,
                        configured_user=_text(settings.get("calendly.user")),
                        configured_organization=_text(settings.get("calendly.organization")),
                    )
                    listing = sync_service.fetch_event_types(client, scope)
            fetched = len(listing)
            with app_state.transaction(dry_run=dry_run) as session:
                report = sync_service.sync_event_types(
                    session,
                    listing,
                    source=source,
                    started_at=started_at,
                    clock=_now,
                    rules=rules,
                    dry_run=dry_run,
                    allow_empty=allow_empty,
                    reclassify=reclassify,
                )
        except Exception as error:
            _report_failure(
                app_state, sink, error, source=source, started_at=started_at, fetched=fetched, dry_run=dry_run
            )
            raise
    _print_changes(sink, report, dry_run=dry_run)
    sink.record(report.as_record(), sync_service.SYNC_COLUMNS, title="Calendly sync")


def _text(value: Any) -> str | None:
    return str(value).strip() or None if value is not None else None


def _print_changes(sink: OutputSink, report: SyncReport, *, dry_run: bool) -> None:
    say = sink.notice if dry_run else sink.detail
    if dry_run:
        say(f"Dry run: {len(report.changes)} change(s) planned, nothing written.")
    for change in report.changes:
        say(change.describe())


def _report_failure(
    app_state: AppState,
    sink: OutputSink,
    error: Exception,
    *,
    source: str,
    started_at: dt.datetime,
    fetched: int,
    dry_run: bool,
) -> None:
    """Record the failed run in its own small transaction (a dry run writes nothing) and print its summary.

    The original error is what the user must see, so a failure to record it is swallowed here.
    """
    from bapp_cli.errors import BappError
    from bapp_cli.services.sync import SYNC_COLUMNS, SyncReport, record_failed_run

    message = error.message if isinstance(error, BappError) else f"unexpected error: {type(error).__name__}: {error}"
    for secret in app_state.secrets:
        if secret and len(secret) >= 4:
            message = message.replace(secret, "****")
    message = " ".join(message.split())
    run_id = None
    if not dry_run:
        try:
            with app_state.transaction() as session:
                run_id = record_failed_run(
                    session, source=source, started_at=started_at, finished_at=_now(), error=message, fetched=fetched
                )
        except Exception:  # the database itself may be what failed
            run_id = None
    failed = SyncReport(run_id=run_id, status="failed", dry_run=dry_run, source=source, fetched=fetched, error=message)
    if sink.format != "table":
        sink.record(failed.as_record(), SYNC_COLUMNS)


@app.command("status")
def status(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="How many recent runs to show.")] = 10,
    fmt: FormatOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show recent event-type syncs, newest first: when, outcome, counts and the error of failed runs.

    \b
    Examples:
      bapp calendly status
      bapp calendly status --limit 1 --json
    """
    from bapp_cli.services.sync import RUN_COLUMNS, list_sync_runs

    app_state = state(ctx)
    sink = app_state.output(fmt, as_json)
    with app_state.reading() as session:
        runs = list_sync_runs(session, limit=limit)
    if sink.format == "table":

        def table(console: Any) -> None:
            from rich.table import Table

            grid = Table(title="Calendly syncs", header_style="bold")
            for column in (
                "run",
                "started",
                "took",
                "status",
                "source",
                "fetched",
                "+new",
                "~upd",
                "=same",
                "-gone",
                "+back",
            ):
                grid.add_column(column, justify="right" if column not in ("started", "status", "source") else "left")
            for run in runs:
                took = f"{(run.finished_at - run.started_at).total_seconds():.1f}s" if run.finished_at else "—"
                colour = "green" if run.status == "succeeded" else "red"
                grid.add_row(
                    str(run.run_id),
                    sink.local_time(run.started_at),
                    took,
                    f"[{colour}]{run.status}[/]",
                    run.source,
                    *(
                        str(value)
                        for value in (
                            run.fetched,
                            run.created,
                            run.updated,
                            run.unchanged,
                            run.deactivated,
                            run.reactivated,
                        )
                    ),
                )
                if run.error:
                    grid.add_row("", f"[red]{run.error}[/]", *([""] * 9))
            console.print(grid)
            if not runs:
                console.print("[dim](no syncs yet — run `bapp calendly sync`)[/dim]")

        sink.records([], RUN_COLUMNS, table=table)
    else:
        sink.records([run.as_record() for run in runs], RUN_COLUMNS)

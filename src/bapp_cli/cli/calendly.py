"""`bapp calendly`: who the token is, the event-type sync cron runs, and the record of past runs."""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from bapp_cli.cli.context import AppState, state, utc_now
from bapp_cli.cli.options import (
    MAX_OPTION_INT,
    MAX_UNIX_SECONDS,
    MAX_WAIT_SECONDS,
    FormatOption,
    JsonOption,
    OffsetOption,
    finite_seconds,
    search_option,
)
from bapp_cli.errors import InvalidInput, UsageError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from bapp_cli.calendly.models import EventType
    from bapp_cli.cli.output import OutputSink
    from bapp_cli.services.calendly_bookings import BookedInvitee, BookingPullReport, InviteeOutcome
    from bapp_cli.services.sync import SyncReport

app = typer.Typer(
    help="Talk to Calendly: check the token, sync event types, pull bookings, apply webhooks, see past runs.",
    no_args_is_help=True,
)

SYNC_LOCK = "calendly-sync"
BOOKINGS_LOCK = "calendly-bookings"
RUN_KINDS = ("event_types", "bookings")
# Without --since a pull covers the recent past and everything upcoming: cancellations of future events
# arrive at any time, while events long past rarely change (pass --since for a backfill).
DEFAULT_PULL_DAYS = 30

Listing = TypeVar("Listing", bound=Sequence[Any])
Report = TypeVar("Report")


@contextlib.contextmanager
def _without_cyclic_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector for a bulk run.

    A 10,000-type sync creates hundreds of thousands of small, acyclic objects (models, rows, parameters);
    the collector kept re-scanning them and cost about a third of the run (SPEC P2). Reference counting
    still frees everything. When the run ends, what it left alive is frozen before the collector resumes:
    re-enabling it with that heap in the youngest generation set off a full collection (~0.09 s) of
    objects the ending command is about to drop anyway.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
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
            "--wait",
            min=0,
            max=MAX_WAIT_SECONDS,
            callback=finite_seconds,
            help="If another sync is running, wait up to SECONDS for it instead of exiting 75.",
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
    from bapp_cli.services import sync as sync_service

    app_state = state(ctx)
    sink = app_state.output(fmt, as_json)
    _check_scope_flags(user, organization, from_file, verb="sync")
    settings = app_state.settings
    rules = sync_service.parse_rules(settings.calendly_rules())
    # A bad file is bad input, not a run: refused before the lock, with nothing written (exit 6).
    listing = _read_listing(from_file) if from_file is not None else None

    def apply(session: Session, listing: list[EventType], *, source: str, started_at: dt.datetime) -> SyncReport:
        return sync_service.sync_event_types(
            session,
            listing,
            source=source,
            started_at=started_at,
            clock=utc_now,
            rules=rules,
            dry_run=dry_run,
            allow_empty=allow_empty,
            reclassify=reclassify,
        )

    report = _fetch_and_apply_under_lock(
        app_state,
        sink,
        lock=SYNC_LOCK,
        what="Calendly sync",
        wait=wait,
        kind="event_types",
        listing=listing,
        fetch=sync_service.fetch_event_types,
        user=user,
        organization=organization,
        apply=apply,
        dry_run=dry_run,
    )
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


def _check_scope_flags(user: str | None, organization: str | None, from_file: str | None, *, verb: str) -> None:
    if user and organization:
        raise UsageError("--user and --organization cannot be combined", hint=f"{verb} one scope per run")
    if from_file is not None and (user or organization):
        raise UsageError("--from-file applies a saved listing; --user/--organization do not apply to it")


def _resolve_scope(app_state: AppState, client: Any, user: str | None, organization: str | None) -> Any:
    """--user/--organization, else the config's, else the token's own user (SPEC §2.8)."""
    from bapp_cli.services.sync import resolve_scope

    settings = app_state.settings
    return resolve_scope(
        client,
        user=user,
        organization=organization,
        configured_user=_text(settings.get("calendly.user")),
        configured_organization=_text(settings.get("calendly.organization")),
    )


def _fetch_and_apply_under_lock(
    app_state: AppState,
    sink: OutputSink,
    *,
    lock: str,
    what: str,
    wait: float,
    kind: str,
    listing: Listing | None,
    fetch: Callable[[Any, Any], Listing],
    user: str | None,
    organization: str | None,
    apply: Callable[..., Report],
    dry_run: bool,
) -> Report:
    """The one shape of a Calendly cron run (sync, pull-bookings), recorded as a run of `kind`.

    Under the named lock (so two crons never interleave; `wait` as --wait), with the cyclic GC paused:
    fetch the listing from Calendly for the resolved scope unless a saved one was given, then
    `apply(session, listing, source=…, started_at=…)` in the command's one write transaction (rolled back
    on dry run). Any failure, the fetch's included, is recorded as a failed run in its own transaction
    and re-raised; Ctrl-C is not an Exception, so an interrupted run rolls back and records nothing.
    """
    from bapp_cli.db.locks import named_lock

    source = "file" if listing is not None else "api"
    engine = app_state.engine()
    with _without_cyclic_gc(), named_lock(engine, lock, wait_seconds=wait, what=what):
        started_at = utc_now()
        fetched = 0
        try:
            if listing is None:
                with app_state.calendly_client() as client:
                    listing = fetch(client, _resolve_scope(app_state, client, user, organization))
            fetched = len(listing)
            with app_state.transaction(dry_run=dry_run) as session:
                return apply(session, listing, source=source, started_at=started_at)
        except Exception as error:
            _report_failure(
                app_state,
                sink,
                error,
                kind=kind,
                source=source,
                started_at=started_at,
                fetched=fetched,
                dry_run=dry_run,
            )
            raise


def _report_failure(
    app_state: AppState,
    sink: OutputSink,
    error: Exception,
    *,
    kind: str,
    source: str,
    started_at: dt.datetime,
    fetched: int,
    dry_run: bool,
) -> None:
    """Record the failed run in its own small transaction (a dry run writes nothing) and print its summary.

    The original error is what the user must see, so a failure to record it is swallowed here.
    """
    from bapp_cli.errors import BappError
    from bapp_cli.services.calendly_bookings import PULL_COLUMNS, BookingPullReport
    from bapp_cli.services.sync import SYNC_COLUMNS, SyncReport, record_failed_run

    message = error.message if isinstance(error, BappError) else f"unexpected error: {type(error).__name__}: {error}"
    message = " ".join(app_state.scrub(message).split())
    run_id = None
    if not dry_run:
        try:
            with app_state.transaction() as session:
                run_id = record_failed_run(
                    session,
                    kind=kind,
                    source=source,
                    started_at=started_at,
                    finished_at=utc_now(),
                    error=message,
                    fetched=fetched,
                )
        except Exception:  # the database itself may be what failed
            run_id = None
    if sink.format == "table":
        return
    report_type, columns = (BookingPullReport, PULL_COLUMNS) if kind == "bookings" else (SyncReport, SYNC_COLUMNS)
    failed = report_type(run_id=run_id, status="failed", dry_run=dry_run, source=source, fetched=fetched, error=message)
    sink.record(failed.as_record(), columns)


@app.command("status")
def status(
    ctx: typer.Context,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, max=MAX_OPTION_INT, help="How many recent runs to show.")
    ] = 10,
    offset: OffsetOption = 0,
    search: Annotated[str | None, search_option("status, source or error")] = None,
    kind: Annotated[
        str | None,
        typer.Option(
            "--kind", help="Only runs of this kind: event_types (sync) or bookings (pull-bookings).", show_default=False
        ),
    ] = None,
    fmt: FormatOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show recent Calendly runs (event-type syncs and bookings pulls), newest first, with their counts.

    For a bookings pull, deactivated counts the bookings it cancelled and reactivated the ones it
    rescheduled; skipped counts invitees it could not apply (e.g. an event type not synced yet).

    \b
    Examples:
      bapp calendly status
      bapp calendly status --limit 1 --json
      bapp calendly status --kind bookings
    """
    from bapp_cli.services.calendly_bookings import RUN_COLUMNS, list_runs

    app_state = state(ctx)
    sink = app_state.output(fmt, as_json)
    if kind is not None and kind not in RUN_KINDS:
        raise UsageError(f"--kind: {kind!r} is not one of {', '.join(RUN_KINDS)}")
    with app_state.reading() as session:
        runs = list_runs(session, limit=limit, kind=kind, offset=offset, search=search)
    if sink.format == "table":

        def table(console: Any) -> None:
            from rich.table import Table

            grid = Table(title="Calendly syncs", header_style="bold")
            for column in (
                "run",
                "kind",
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
                "skip",
            ):
                grid.add_column(
                    column, justify="right" if column not in ("kind", "started", "status", "source") else "left"
                )
            for run in runs:
                took = f"{(run.finished_at - run.started_at).total_seconds():.1f}s" if run.finished_at else "—"
                colour = "green" if run.status == "succeeded" else "red"
                grid.add_row(
                    str(run.run_id),
                    "bookings" if run.kind == "bookings" else "types",
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
                            run.skipped,
                        )
                    ),
                )
                if run.error:
                    grid.add_row("", "", f"[red]{run.error}[/]", *([""] * 10))
            console.print(grid)
            if not runs:
                console.print("[dim](no syncs yet — run `bapp calendly sync`)[/dim]")

        sink.records([], RUN_COLUMNS, table=table)
    else:
        sink.records([run.as_record() for run in runs], RUN_COLUMNS)


# ---- bookings from Calendly: the cron pull and webhook deliveries -----------------------------------


def _read_bytes(path: str, *, what: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read() if hasattr(sys.stdin, "buffer") else sys.stdin.read().encode()
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise InvalidInput(f"{what}: cannot read {path}: {exc.strerror}", code="unreadable_file") from None


def _print_outcomes(sink: OutputSink, outcomes: Sequence[InviteeOutcome], *, dry_run: bool) -> None:
    """One stderr line per change and per warning: with --dry-run always, otherwise with --verbose."""
    say = sink.notice if dry_run else sink.detail
    changes = [outcome for outcome in outcomes if outcome.action != "unchanged" or outcome.warnings]
    if dry_run:
        say(f"Dry run: {sum(1 for o in outcomes if o.wrote)} change(s) planned, nothing written.")
    for outcome in changes:
        if outcome.action != "unchanged":
            say(outcome.describe())
        for warning in outcome.warnings:
            say(f"warning: {outcome.invitee_uri}: {warning}")


@app.command("pull-bookings")
def pull_bookings(
    ctx: typer.Context,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help=f"Events starting at or after WHEN (ISO 8601; naive times read in --timezone) "
            f"[default: {DEFAULT_PULL_DAYS} days ago; no bound with --from-file].",
            show_default=False,
        ),
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="Events starting before WHEN.", show_default=False)
    ] = None,
    user: Annotated[
        str | None,
        typer.Option("--user", help="Pull this Calendly user's events (a user URI).", show_default=False),
    ] = None,
    organization: Annotated[
        str | None,
        typer.Option("--organization", help="Pull every event of this organization (URI).", show_default=False),
    ] = None,
    from_file: Annotated[
        str | None,
        typer.Option(
            "--from-file",
            help="Apply a saved listing of scheduled events, each with an 'invitees' array ('-' = stdin), "
            "instead of calling Calendly.",
            show_default=False,
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print one line per change on stderr and write nothing.")
    ] = False,
    wait: Annotated[
        float,
        typer.Option(
            "--wait",
            min=0,
            max=MAX_WAIT_SECONDS,
            callback=finite_seconds,
            help="If another pull is running, wait up to SECONDS for it instead of exiting 75.",
        ),
    ] = 0.0,
    fmt: FormatOption = None,
    as_json: JsonOption = False,
) -> None:
    """Pull Calendly scheduled events and their invitees into bookings (the cron job).

    Lists every scheduled event starting in the window (active and canceled, every page) and each event's
    invitees, then applies them in one transaction: each invitee is a booking keyed on its invitee URI —
    session type by event type, client by e-mail (the account is created), answers and pathway from the
    booking form. A canceled invitee cancels its booking; a reschedule cancels the old booking and
    creates the new one. Invitees of event types not synced yet are skipped and counted. A second pull
    changes nothing. Silent on stderr when it succeeds (--verbose lists changes and warnings). Exit 4
    token refused, 9 Calendly failed, 75 another pull is running.

    \b
    Examples:
      bapp calendly pull-bookings
      bapp calendly pull-bookings --since 2025-01-01 --until 2025-07-01 --json
      bapp calendly pull-bookings --dry-run
      bapp calendly pull-bookings --from-file examples/calendly/scheduled_events.json
      */5 * * * *  bapp calendly pull-bookings --wait 60 >/dev/null
    """
    from bapp_cli.services import calendly_bookings as service
    from bapp_cli.services.instants import parse_instant

    app_state = state(ctx)
    sink = app_state.output(fmt, as_json)
    _check_scope_flags(user, organization, from_file, verb="pull")
    settings = app_state.settings
    pattern = service.pathway_question_pattern(_text(settings.get("calendly.pathway_question")))
    zone = app_state.timezone
    since_at = parse_instant(since, timezone=zone, field="since") if since else None
    until_at = parse_instant(until, timezone=zone, field="until") if until else None
    if since_at is None and from_file is None:
        since_at = utc_now() - dt.timedelta(days=DEFAULT_PULL_DAYS)
    if since_at is not None and until_at is not None and until_at <= since_at:
        raise InvalidInput("until: must be later than --since", code="invalid_window")
    listing = None
    if from_file is not None:
        # A bad file is bad input, not a run: refused before the lock, with nothing written (exit 6).
        content = _read_bytes(from_file, what="--from-file")
        parsed = service.parse_bookings_listing(content, name="stdin" if from_file == "-" else from_file)
        listing = service.within(parsed, since_at, until_at)

    def fetch(client: Any, scope: Any) -> list[BookedInvitee]:
        return service.fetch_booked_invitees(client, scope, since=since_at, until=until_at)

    def apply(
        session: Session, listing: list[BookedInvitee], *, source: str, started_at: dt.datetime
    ) -> BookingPullReport:
        return service.pull_bookings(
            session,
            listing,
            source=source,
            started_at=started_at,
            clock=utc_now,
            pathway_question=pattern,
            dry_run=dry_run,
        )

    report = _fetch_and_apply_under_lock(
        app_state,
        sink,
        lock=BOOKINGS_LOCK,
        what="Calendly bookings pull",
        wait=wait,
        kind="bookings",
        listing=listing,
        fetch=fetch,
        user=user,
        organization=organization,
        apply=apply,
        dry_run=dry_run,
    )
    _print_outcomes(sink, report.outcomes, dry_run=dry_run)
    sink.record(report.as_record(), service.PULL_COLUMNS, title="Calendly bookings pull")


webhook_app = typer.Typer(
    help="Verify and apply Calendly webhook deliveries that a relay hands over.", no_args_is_help=True
)
app.add_typer(webhook_app, name="webhook")

BodyArgument = Annotated[
    str, typer.Argument(help="The delivery's raw request body: a file, or '-' for stdin.", show_default=False)
]


def _signing_key(app_state: AppState) -> str:
    key = app_state.settings.get("calendly.webhook_signing_key")
    return str(key).strip() if key else ""


@webhook_app.command("apply")
def webhook_apply(
    ctx: typer.Context,
    path: BodyArgument,
    signature: Annotated[
        str | None,
        typer.Option(
            "--signature",
            help="The Calendly-Webhook-Signature header as received (t=…,v1=…). Without it the delivery is "
            "refused as unsigned.",
            show_default=False,
        ),
    ] = None,
    tolerance: Annotated[
        int,
        typer.Option(
            "--tolerance",
            min=0,
            max=MAX_OPTION_INT,
            help="Refuse signatures more than SECONDS away from now (replays).",
        ),
    ] = 180,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Verify and report the change, then roll back.")] = False,
    fmt: FormatOption = None,
    as_json: JsonOption = False,
) -> None:
    """Verify one Calendly webhook delivery and apply it to bookings (invitee.created / invitee.canceled).

    The signature is checked first — HMAC-SHA256 of "t.body" with CALENDLY_WEBHOOK_SIGNING_KEY, compared
    in constant time, t within --tolerance seconds — so a forged, stale, tampered or unsigned delivery
    exits 4 and nothing is parsed or applied. Pass the body exactly as received: re-encoded JSON no longer
    matches its signature. The invitee is then applied exactly as `calendly pull-bookings` applies it.
    Duplicate and out-of-order deliveries are safe: an invitee older than the one applied changes nothing.
    Other events (event_type.*, no-shows) are acknowledged as ignored with exit 0. Exit 6 for a signed
    body that is not a valid delivery.

    \b
    Examples:
      bapp calendly webhook apply body.json --signature "$CALENDLY_WEBHOOK_SIGNATURE"
      relay-output | bapp calendly webhook apply - --signature "t=1735689600,v1=5f0c…" --json
      bapp calendly webhook apply body.json --signature "$(bapp calendly webhook sign body.json)" --dry-run
    """
    import time

    from bapp_cli.calendly.webhooks import parse_webhook, verify_signature
    from bapp_cli.services import calendly_bookings as service

    app_state = state(ctx)
    sink = app_state.output(fmt, as_json)
    body = _read_bytes(path, what="body")
    verify_signature(signature, body, _signing_key(app_state), now=time.time(), tolerance=tolerance)
    payload = parse_webhook(body)
    pattern = service.pathway_question_pattern(_text(app_state.settings.get("calendly.pathway_question")))
    with app_state.transaction(dry_run=dry_run) as session:
        result = service.apply_webhook(session, payload, now=utc_now(), pathway_question=pattern, dry_run=dry_run)
    if result.outcome.action != "ignored":
        _print_outcomes(sink, [result.outcome], dry_run=dry_run)
    sink.record(result.as_record(), service.WEBHOOK_COLUMNS, title="Calendly webhook")


@webhook_app.command("sign")
def webhook_sign(
    ctx: typer.Context,
    path: BodyArgument,
    timestamp: Annotated[
        int | None,
        typer.Option(
            "--timestamp",
            min=0,
            max=MAX_UNIX_SECONDS,
            help="Unix seconds to sign at [default: now].",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Print the Calendly-Webhook-Signature header for a body, signed with CALENDLY_WEBHOOK_SIGNING_KEY.

    For replaying a saved delivery by hand, testing a relay, and the demo. It signs with the same key
    `webhook apply` verifies with, so only someone who already holds the key can use it.

    \b
    Examples:
      bapp calendly webhook sign body.json
      bapp calendly webhook apply body.json --signature "$(bapp calendly webhook sign body.json)"
    """
    import time

    from bapp_cli.calendly.webhooks import make_signature_header
    from bapp_cli.errors import AuthError

    app_state = state(ctx)
    body = _read_bytes(path, what="body")
    key = _signing_key(app_state)
    if not key:
        raise AuthError("no Calendly webhook signing key configured", hint="Set CALENDLY_WEBHOOK_SIGNING_KEY.")
    typer.echo(make_signature_header(body, key, timestamp=int(time.time()) if timestamp is None else timestamp))

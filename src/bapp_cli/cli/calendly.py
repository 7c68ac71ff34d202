"""`bapp calendly`: who the token is, the event-type sync cron runs, and the record of past runs."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import re
import sys
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from bapp_cli.cli.context import AppState, state, state_and_sink, utc_now
from bapp_cli.cli.files import BESIDE_A_FAILURE, read_input
from bapp_cli.cli.launcher import ends_with_the_command, start_collecting
from bapp_cli.cli.options import (
    MAX_OPTION_INT,
    MAX_UNIX_SECONDS,
    MAX_WAIT_SECONDS,
    OffsetOption,
    choice,
    finite_seconds,
    output_command,
    refuse_blank,
    search_option,
    when,
)
from bapp_cli.cli.terminal import listing_table, print_listing, styled
from bapp_cli.cli.unit_of_work import apply, fetch, said_dry_run
from bapp_cli.config import MAX_GIVE_UP_HOURS, callback_key, checked_user_uri, https_url
from bapp_cli.errors import AuthError, BappError, ConfigError, InvalidInput, PartialSuccess, RemoteError, UsageError

if TYPE_CHECKING:
    from bapp_cli.cli.output import OutputSink
    from bapp_cli.services.calendly_bookings import InviteeOutcome
    from bapp_cli.services.calendly_runs import CalendlyJob, RunReport

app = typer.Typer(
    help="Talk to Calendly: check the token, sync event types, pull bookings, apply webhooks, see past runs.",
    no_args_is_help=True,
)

RUN_COUNT_HEADERS = ("fetched", "+new", "~upd", "=same", "-gone", "+back", "skip")
# Without --since a pull covers the recent past and everything upcoming: cancellations of future events
# arrive at any time, while events long past rarely change (pass --since for a backfill).
DEFAULT_PULL_DAYS = 30

Listing = TypeVar("Listing")

# The options the two cron runs (sync, pull-bookings) share.
UserOption = Annotated[
    str | None,
    typer.Option("--user", help="Only this Calendly user's (a user URI) [default: calendly.user, else the token's]."),
]
OrganizationOption = Annotated[
    str | None, typer.Option("--organization", help="Everything of this Calendly organization (URI).")
]
DryRunOption = Annotated[bool, typer.Option("--dry-run", help="Print one line per change on stderr and write nothing.")]
WaitOption = Annotated[
    float,
    typer.Option(
        "--wait",
        min=0,
        max=MAX_WAIT_SECONDS,
        callback=finite_seconds,
        help="If another run of this command is going on, wait up to SECONDS for it instead of exiting 75.",
    ),
]


def _file_option(what: str) -> Any:
    return typer.Option(
        "--from-file", help=f"Apply a saved listing of {what} ('-' = stdin) instead of calling Calendly."
    )


def _parse_listing_file(app_state: AppState, path: str, parse: Callable[..., Listing]) -> Listing:
    """A saved listing (--from-file). A bad file is bad input, not a run: it is refused before the lock,
    with nothing written (exit 6)."""
    content = read_input(path, what="--from-file")
    return parse(content, name="stdin" if path == "-" else path, on_cleaned=app_state.cleaned.extend)


def pathway_question(app_state: AppState) -> re.Pattern[str]:
    """calendly.pathway_question as the pull, the webhook commands and the receiver match answers with."""
    from bapp_cli.services.calendly_bookings import pathway_question_pattern

    return pathway_question_pattern(app_state.settings.text("calendly.pathway_question"))


@output_command(app, "whoami")
def whoami(ctx: typer.Context) -> None:
    """Show the Calendly user the token belongs to (and its organization).

    \b
    Examples:
      bapp calendly whoami
      CALENDLY_API_KEY=… bapp calendly whoami --json
    """
    app_state, sink = state_and_sink(ctx)
    with app_state.calendly_client() as client:
        me = client.get_current_user()
    identity = {"uri": me.uri, "name": me.name, "email": me.email, "organization": me.current_organization}
    sink.record(identity, title="Calendly token")


@output_command(app, "sync")
def sync(
    ctx: typer.Context,
    user: UserOption = None,
    organization: OrganizationOption = None,
    from_file: Annotated[
        str | None, _file_option("event types (a listing page, a list of pages, or a list of items)")
    ] = None,
    dry_run: DryRunOption = False,
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
    wait: WaitOption = 0.0,
) -> None:
    """Sync Calendly event types into the session catalogue (the cron job).

    Fetches every page first, then applies the whole change in one transaction: new types are created and
    classified by [[calendly.rules]] (else the built-in defaults), known ones get their Calendly-owned
    fields updated, vanished ones become unbookable (from a user's listing only that user's own types
    can vanish), returning ones come back. Curated fields (category, auth, pathways, price, order, enabled) are
    never overwritten, except by --reclassify. Silent on stderr when it succeeds; the summary goes to stdout.
    Exit 4 token refused, 8 empty listing, 9 Calendly failed, 75 another sync is running.

    \b
    Examples:
      bapp calendly sync
      bapp calendly sync --organization https://api.calendly.com/organizations/ORG1 --json
      bapp calendly sync --dry-run
      bapp calendly sync --from-file examples/calendly/event_types.json
      */5 * * * *  bapp calendly sync --wait 60 >/dev/null
    """
    from bapp_cli.services import sync as sync_service
    from bapp_cli.services.calendly_runs import event_type_sync_job

    app_state, sink, scope = _scoped(ctx, user, organization, from_file, verb="sync")
    rules = sync_service.parse_rules(app_state.settings.calendly_rules())
    listing = _parse_listing_file(app_state, from_file, sync_service.parse_listing) if from_file is not None else None
    job = event_type_sync_job(rules=rules, allow_empty=allow_empty, reclassify=reclassify)
    report = _run(app_state, sink, job, listing, scope=scope, wait=wait, dry_run=dry_run)
    _print_changes(sink, len(report.changes), (change.describe() for change in report.changes), dry_run=dry_run)
    sink.record(report.as_record(), sync_service.SYNC_COLUMNS, title="Calendly sync")
    if not dry_run:
        _retry_parked_quietly(app_state, sink)  # deliveries parked for want of a type this sync may have brought


def _print_changes(sink: OutputSink, planned: int, lines: Iterable[str], *, dry_run: bool) -> None:
    """One stderr line per change (and warning): with --dry-run always, otherwise with --verbose. ``lines``
    is lazy: a first sync's 10,000 lines are not formatted for no one."""
    if dry_run:
        sink.notice(f"Dry run: {planned} change(s) planned, nothing written.")
    elif not sink.verbose:
        return
    for line in lines:  # a dry run's or --verbose's: with --verbose on, detail prints just as notice does
        sink.notice(line)


def _parked(message: str) -> Exception:
    """Exit 3: what could not be applied waits in the webhook inbox."""
    return PartialSuccess(
        message,
        hint="`bapp calendly webhook list --pending` shows what waits; the next `bapp calendly sync`, "
        "`pull-bookings` or `webhook retry` applies it (a sync first when it waits for an event type)",
        code="parked",
    )


def _scoped(
    ctx: typer.Context, user: str | None, organization: str | None, from_file: str | None, *, verb: str
) -> tuple[AppState, OutputSink, tuple[str | None, str | None]]:
    """A cron run's state, sink and scope flags (--user as Calendly writes it), checked. With them, or --from-file
    (which asks no one), calendly.user and calendly.organization are not used, so a bad value there stops nothing."""
    refuse_blank({"--user": user, "--organization": organization})  # ran as the configured scope or the token's user
    # asked of Calendly as it writes a user (blank was refused); an /organizations/ URI listed nothing of the user
    user = user and checked_user_uri(user, "--user", UsageError)
    if user and organization:
        raise UsageError("--user and --organization cannot be combined", hint=f"{verb} one scope per run")
    if from_file is not None and (user or organization):
        raise UsageError("--from-file applies a saved listing; --user/--organization do not apply to it")
    if user or organization or from_file is not None:
        state(ctx).unused |= {"calendly.user", "calendly.organization"}
    return (*state_and_sink(ctx), (user, organization))


def _run(
    app_state: AppState,
    sink: OutputSink,
    job: CalendlyJob,
    listing: Sequence[Any] | None,
    *,
    scope: tuple[str | None, str | None],
    wait: float,
    dry_run: bool,
) -> Any:
    """Run a Calendly cron job (services.calendly_runs) with a progress line for a person watching; a
    failed run's summary is printed (when it was recorded, or on a dry run) before its error."""
    from bapp_cli.db.dbapi import writing
    from bapp_cli.services.calendly_runs import run_calendly_job

    settings = app_state.settings
    plain_transaction = functools.partial(
        writing, settings.database_url, **settings.database_waits, actor=settings.actor, command=app_state.command_path
    )
    configured = (settings.calendly_user(), settings.text("calendly.organization"))
    progress = sink.progress()
    pages = items = 0

    def page_fetched(count: int) -> None:
        nonlocal pages, items
        pages, items = pages + 1, items + count
        progress.update(f"{job.what}: fetched {pages} page{'s' if pages != 1 else ''} ({items:,} items)…")

    def failed(summary: RunReport) -> None:
        progress.close()  # the failed run's summary follows on a clean line
        if sink.format != "table":  # if stdout can take it: its reader gone or its disk full, the run's error stands
            with contextlib.suppress(*BESIDE_A_FAILURE):
                sink.record(summary.as_record())

    with app_state.plain_reading():  # at head, else exit 5 before the lock (without importing SQLAlchemy)
        pass
    try:
        return run_calendly_job(
            job,
            database_url=settings.database_url,
            connect_timeout=settings.connect_timeout,
            transaction=plain_transaction if job.plain else app_state.transaction,
            reading=app_state.plain_reading if job.plain else app_state.reading,
            open_client=lambda: app_state.calendly_client(on_page=page_fetched),
            scope=scope if any(scope) else configured,
            listing=listing,
            wait=wait,
            dry_run=dry_run,
            clock=utc_now,
            scrub=app_state.scrub,
            on_apply=lambda count: progress.step(f"{job.what}: applying {count:,} items…"),
            on_failure=failed,
            process_ends_after=bool(ends_with_the_command),
        )
    finally:
        progress.close()  # the summary, or the error, follows on a clean line


@output_command(app, "status")
def status(
    ctx: typer.Context,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, max=MAX_OPTION_INT, help="How many recent runs to show.")
    ] = 10,
    offset: OffsetOption = 0,
    search: Annotated[str | None, search_option("status, source or error")] = None,
    kind: Annotated[
        str | None,
        choice("--kind", "SYNC_KINDS", "Only runs of this kind: event_types (sync) or bookings (pull-bookings)."),
    ] = None,
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

    sink, runs = fetch(ctx, list_runs, limit=limit, kind=kind, offset=offset, search=search)

    def table(console: Any) -> None:
        headers = ("run", "kind", "started", "took", "status", "source", *RUN_COUNT_HEADERS)
        grid = listing_table("Calendly syncs", headers, right=("run", "took", *RUN_COUNT_HEADERS))
        counted = ("fetched", "created", "updated", "unchanged", "deactivated", "reactivated", "skipped")
        for run in runs:
            started, finished = run["started_at"], run["finished_at"]
            took = f"{(finished - started).total_seconds():.1f}s" if finished else "—"
            grid.add_row(
                str(run["run_id"]),
                "bookings" if run["kind"] == "bookings" else "types",
                sink.local_time(started),
                took,
                styled(run["status"], "green" if run["status"] == "succeeded" else "red"),
                run["source"],
                *(str(run[name]) for name in counted),
            )
        print_listing(console, grid, empty="(no syncs yet — run `bapp calendly sync`)", keys=("run", "status"))
        # under the table, the whole width: a row of its own put it in the 'started' column, a word a line at 80
        for failed in filter(lambda run: run["error"], runs):
            console.print(f"run {failed['run_id']}: {failed['error']}", style="red")

    sink.records(runs, RUN_COLUMNS, table=table)


# ---- bookings from Calendly: the cron pull and webhook deliveries -----------------------------------


def _print_outcomes(sink: OutputSink, outcomes: Sequence[InviteeOutcome], *, dry_run: bool) -> None:
    def lines() -> Iterator[str]:
        for outcome in outcomes:
            if outcome.action != "unchanged":
                yield outcome.describe()
            yield from (f"warning: {outcome.invitee_uri}: {warning}" for warning in outcome.warnings)

    _print_changes(sink, sum(outcome.wrote for outcome in outcomes), lines(), dry_run=dry_run)


@output_command(app, "pull-bookings")
def pull_bookings(
    ctx: typer.Context,
    since: Annotated[
        str | None,
        when(
            "--since",
            f"Events starting at or after WHEN (ISO 8601; naive times read in --timezone) "
            f"[default: {DEFAULT_PULL_DAYS} days ago; no bound with --from-file].",
        ),
    ] = None,
    until: Annotated[str | None, when("--until", "Events starting before WHEN.")] = None,
    user: UserOption = None,
    organization: OrganizationOption = None,
    from_file: Annotated[str | None, _file_option("scheduled events, each with an 'invitees' array")] = None,
    dry_run: DryRunOption = False,
    wait: WaitOption = 0.0,
) -> None:
    """Pull Calendly scheduled events and their invitees into bookings (the cron job).

    Lists every scheduled event starting in the window (active and canceled, every page) and each event's
    invitees, then applies them in one transaction: each invitee is a booking keyed on its invitee URI —
    session type by event type, client by e-mail (the account is created), answers and pathway from the
    booking form. A canceled invitee cancels its booking; a reschedule cancels the old booking and
    creates the new one; a no-show marked in Calendly marks the booking no_show. An event type no sync
    brought (deleted in Calendly, another user's) is fetched by itself. An invitee bapp cannot apply yet
    (an event type not fetched, an unusable e-mail) is parked in the webhook inbox, named on stderr and
    counted as skipped; the rest is committed and the pull exits 3. A second pull changes nothing.
    Silent on stderr when it succeeds (--verbose lists changes and warnings). Exit 4 token refused, 9
    Calendly failed, 75 another pull is running.

    \b
    Examples:
      bapp calendly pull-bookings
      bapp calendly pull-bookings --since 2025-01-01 --until 2025-07-01 --json
      bapp calendly pull-bookings --dry-run
      bapp calendly pull-bookings --from-file examples/calendly/scheduled_events.json
      */5 * * * *  bapp calendly pull-bookings --wait 60 >/dev/null
    """
    from bapp_cli.services import calendly_bookings as service
    from bapp_cli.services.calendly_runs import bookings_pull_job
    from bapp_cli.services.instants import parse_instant
    from bapp_cli.services.sync import parse_rules

    app_state, sink, scope = _scoped(ctx, user, organization, from_file, verb="pull")
    pattern = pathway_question(app_state)
    zone = app_state.settings.timezone
    since_at = parse_instant(since, timezone=zone, field="since") if since is not None else None
    until_at = parse_instant(until, timezone=zone, field="until", end=True) if until is not None else None
    if since_at is None and from_file is None:
        since_at = utc_now() - dt.timedelta(days=DEFAULT_PULL_DAYS)
    if since_at is not None and until_at is not None and until_at <= since_at:
        given = "--since" if since is not None else f"--since's default, {DEFAULT_PULL_DAYS} days ago"
        raise InvalidInput(f"until: must be later than {given}", code="invalid_window")
    listing = None
    if from_file is not None:
        parsed = _parse_listing_file(app_state, from_file, service.parse_bookings_listing)
        listing = service.within(parsed, since_at, until_at)
    rules = parse_rules(app_state.settings.calendly_rules())  # for an event type the pull fetches by itself
    job = bookings_pull_job(
        since=since_at, until=until_at, pathway_question=pattern, rules=rules, reading=app_state.plain_reading
    )
    report = _run(app_state, sink, job, listing, scope=scope, wait=wait, dry_run=dry_run)
    # its one summary record, however large the pull, stays buffered till the exit, which keeps a failed run's code
    _print_outcomes(sink, report.outcomes, dry_run=dry_run)
    sink.record(report.as_record(), title="Calendly bookings pull")
    skipped = [outcome for outcome in report.outcomes if outcome.action == "skipped"]
    if not dry_run:
        _retry_parked_quietly(app_state, sink, tried={outcome.invitee_uri for outcome in skipped})
    # no invitee is skipped silently: one stderr line each, and exit 3 ("applied partly")
    for outcome in skipped:
        sink.notice(f"not applied: {outcome.invitee_uri}: {outcome.note}")
    if skipped:
        kept = "would be parked (dry run)" if dry_run else "parked in the webhook inbox"
        raise _parked(f"{len(skipped)} of {len(report.outcomes)} invitees could not be applied; {kept}")


webhook_app = typer.Typer(
    help="Receive, verify and apply Calendly webhook deliveries; the inbox; the subscription.", no_args_is_help=True
)
app.add_typer(webhook_app, name="webhook")

ToleranceOption = Annotated[
    int,
    typer.Option(
        "--tolerance", min=0, max=MAX_OPTION_INT, help="Refuse signatures more than SECONDS away from now (replays)."
    ),
]
BodyArgument = Annotated[str, typer.Argument(help="The delivery's raw request body: a file, or '-' for stdin.")]


def _signing_key(app_state: AppState, *, required: bool = False, unwritten_ok: bool = False) -> str:
    if key := app_state.settings.webhook_signing_key(unwritten_ok=unwritten_ok):
        app_state.secrets.add(key)  # a key read from its file is a secret too (R6)
        try:
            key.encode()  # the HMAC signs its UTF-8 bytes
        except UnicodeEncodeError:
            # an environment variable holding bytes that are not UTF-8; the key itself is never echoed
            hint = "check CALENDLY_WEBHOOK_SIGNING_KEY (or calendly.webhook_signing_key_file) for a stray byte"
            raise ConfigError("the Calendly webhook signing key is not valid UTF-8 text", hint=hint) from None
    elif required:
        raise AuthError(
            "no Calendly webhook signing key configured",
            hint="Set CALENDLY_WEBHOOK_SIGNING_KEY, calendly.webhook_signing_key_file, or run "
            "`bapp calendly webhook subscribe`.",
        )
    return key


@output_command(webhook_app, "apply")
def webhook_apply(
    ctx: typer.Context,
    path: BodyArgument,
    signature: Annotated[
        str | None,
        typer.Option(
            "--signature",
            help="The Calendly-Webhook-Signature header as received (t=…,v1=…). Without it the delivery is "
            "refused as unsigned.",
        ),
    ] = None,
    tolerance: ToleranceOption = 180,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Verify and report the change, then roll back.")] = False,
) -> None:
    """Verify one Calendly webhook delivery and apply it to bookings (invitee and no-show events).

    The signature is checked first — HMAC-SHA256 of "t.body" with CALENDLY_WEBHOOK_SIGNING_KEY, compared
    in constant time, t within --tolerance seconds — so a forged, stale, tampered or unsigned delivery
    exits 4 and nothing is parsed or applied. Pass the body exactly as received: re-encoded JSON no longer
    matches its signature. The invitee is then applied exactly as `calendly pull-bookings` applies it;
    invitee_no_show.created / .deleted mark the booking a no-show or take the mark back. Duplicate and
    out-of-order deliveries are safe: an invitee older than the one applied changes nothing. Other events
    (event_type.*, routing forms) are acknowledged as ignored with exit 0.

    A delivery that cannot be applied yet (event type not synced, an unusable e-mail) is parked in the
    webhook inbox, said on stderr, and exits 3: it is applied by the next sync, pull or `webhook retry`.
    With a token configured, an unknown event type is first fetched from Calendly. A JSON object that
    does not fit bapp's model (an invitee status or field type it does not know) is parked the same way,
    with the reason. Exit 6 for a signed body that is not a JSON object, or is too long to park (past
    10,000,000 characters, which no `import all` would restore).

    \b
    Examples:
      bapp calendly webhook apply body.json --signature "$CALENDLY_WEBHOOK_SIGNATURE"
      relay-output | bapp calendly webhook apply - --signature "t=1735689600,v1=5f0c…" --json
      bapp calendly webhook apply body.json --signature "$(bapp calendly webhook sign body.json)" --dry-run
    """

    app_state, sink = state_and_sink(ctx)
    body = read_input(path, what="body")
    from bapp_cli.cli.webhook_receiver import DeliveryHandler

    handler = DeliveryHandler(app_state, signing_key=_signing_key(app_state), source="apply", tolerance=tolerance)
    result = handler.handle(body, signature, dry_run=dry_run)
    if result.action not in ("ignored", "parked"):
        _print_outcomes(sink, [result], dry_run=dry_run)
    sink.record(result.as_record(), title="Calendly webhook")
    if result.action == "parked":
        invitee = result.invitee_uri or "(no invitee)"
        kept = " (dry run: not kept)" if dry_run else ""
        raise _parked(f"{result.event or 'delivery'} for {invitee} not applied: {result.note}{kept}")


@webhook_app.command("sign")
def webhook_sign(
    ctx: typer.Context,
    path: BodyArgument,
    timestamp: Annotated[
        int | None,
        typer.Option("--timestamp", min=0, max=MAX_UNIX_SECONDS, help="Unix seconds to sign at [default: now]."),
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

    app_state = state(ctx)
    body = read_input(path, what="body")
    key = _signing_key(app_state, required=True)
    typer.echo(make_signature_header(body, key, timestamp=int(time.time()) if timestamp is None else timestamp))


# ---- the webhook receiver and its inbox (issue 14) -------------------------------------------------


def _receiver_seconds(flag: str, help: str) -> Any:
    """A wait of the receiver's, in seconds: at least 0.1, at most a minute, and a number (not nan)."""
    return typer.Option(flag, min=0.1, max=60, callback=finite_seconds, help=help)


@webhook_app.command("serve")
def webhook_serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option("--host", help="Address to listen on (keep it local behind a proxy).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port to listen on.")] = 8787,
    path: Annotated[str, typer.Option("--path", help="The URL path Calendly POSTs deliveries to.")] = (
        "/calendly/webhook"
    ),
    tolerance: ToleranceOption = 180,
    max_body: Annotated[
        int, typer.Option("--max-body", min=1024, max=64 * 1024 * 1024, help="Largest body accepted, in bytes (413).")
    ] = 1024 * 1024,  # Calendly's invitee deliveries are a few kB; a megabyte is generous.
    busy_timeout: Annotated[
        float,
        _receiver_seconds(
            "--busy-timeout", "Wait at most SECONDS for a database lock, then answer 503 so Calendly retries."
        ),
    ] = 10.0,
    workers: Annotated[
        int, typer.Option("--workers", min=1, max=64, help="Deliveries applied at once (database threads).")
    ] = 4,
    # a few kB: a sender slower than this has stalled, and holds its connection and a clean stop
    read_timeout: Annotated[float, _receiver_seconds("--read-timeout", "Seconds each for head and body (408).")] = 10.0,
) -> None:
    """Run the webhook receiver: an HTTP service Calendly POSTs deliveries to (needs bapp-cli[server]).

    Each POST to --path is verified exactly as `webhook apply` verifies it (signature on the raw body)
    and applied in its own transaction. Answers: 200 applied (or an event bapp does not apply), 202
    parked in the inbox (applied later by a sync, a pull or `webhook retry`; also while the database is
    not at head; and a JSON object bapp's model does not fit, with the reason), 400 signed but not a
    JSON object (or too long to park), 401 bad, stale, repeated or missing signature, 408 a head or a body not
    all sent within --read-timeout, 413 a body over the --max-body, 503 database busy or down, or the receiver
    stopping (Calendly retries for 24 hours, then disables the subscription). GET /healthz answers 200
    when the database is reachable and at head. At most 100 connections stay open: past that, the one
    waiting the longest is let go: an idle one closed, or a body being read answered 503 (never a delivery
    being applied). SIGTERM, SIGHUP or Ctrl-C stops it gracefully (exit 0): deliveries in
    flight finish, new ones get 503, a body still being sent too. The key file
    (calendly.webhook_signing_key_file) is read again for each delivery: rewrite it to rotate the key, with no
    restart (a file that cannot be read keeps the key in use, and the log says why); a key in the environment
    or the config file needs a restart.
    Access log lines go to stderr, say why a 400 or 401 was refused, and never contain bodies or
    signatures. Run it behind a TLS reverse proxy.

    \b
    Examples:
      bapp calendly webhook serve
      bapp calendly webhook serve --host 127.0.0.1 --port 8787 --path /calendly/webhook
      curl -fsS http://127.0.0.1:8787/healthz
    """
    import importlib.util
    import urllib.parse

    from bapp_cli.cli.webhook_receiver import DeliveryHandler, ReceiverApp, listen, serve
    from bapp_cli.db.engine import make_engine
    from bapp_cli.errors import quoted

    app_state = state(ctx)
    if importlib.util.find_spec("uvicorn") is None:
        hint = "pip install 'bapp-cli[server]'"
        raise ConfigError("the webhook receiver needs uvicorn, which is not installed", hint=hint)
    if not path.startswith("/") or any(char in path for char in "?# "):
        raise UsageError(f"--path: {quoted(path)} must be a URL path starting with '/'")
    served = urllib.parse.unquote(path)  # as uvicorn decodes the path Calendly POSTs to, escapes and all
    if served == "/healthz":
        raise UsageError("--path: /healthz is the health check")
    signing_key = _signing_key(app_state, required=True)
    listener = listen(host, port)
    settings = app_state.settings
    start_collecting()  # the receiver runs for days: its work must not pile up uncollected
    engine = make_engine(
        settings.database_url,
        busy_timeout_ms=round(busy_timeout * 1000),
        connect_timeout=settings.connect_timeout,
        workers=workers,
    )
    handler = DeliveryHandler(app_state, signing_key=signing_key, source="receiver", tolerance=tolerance, engine=engine)
    # read again for each delivery: a key file rewritten rotates the key with no restart (DeliveryHandler.key)
    handler.reread_key = functools.partial(_signing_key, app_state, required=True)
    try:
        handler.ensure_ready()
    except BappError as exc:  # it still starts: deliveries get 503 until the database is ready
        app_state.messages.warning(f"{app_state.scrub(exc.message)}; deliveries are answered 503 until it is ready")
    receiver = ReceiverApp(handler, path=served, max_body=max_body, workers=workers, read_timeout=read_timeout)
    # The URL as it is matched: the path escaped as a URL spells it (a control character in --path reached the terminal
    # raw), an IPv6 address bracketed.
    url_host = "[" + host + "]" if ":" in host else host  # not an f-string: test_item8 takes '"[{' for markup
    url_path = urllib.parse.quote(served, safe="/:@!$&'()*+,;=~")
    sys.stderr.write(f"bapp webhook receiver listening on http://{url_host}:{port}{url_path}\n")
    sys.stderr.flush()
    try:
        serve(receiver, listener)
    finally:
        listener.close()
        engine.dispose()
    sys.stderr.write("bapp webhook receiver stopped\n")


@output_command(webhook_app, "list")
def webhook_list(
    ctx: typer.Context,
    pending: Annotated[bool, typer.Option("--pending", help="Only deliveries still waiting to be applied.")] = False,
    search: Annotated[str | None, search_option("event, invitee URI, last error, outcome")] = None,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, max=MAX_OPTION_INT, help="How many, newest first.")
    ] = 50,
    offset: OffsetOption = 0,
) -> None:
    """Show the webhook inbox: deliveries and pulled invitees that could not be applied when they came.

    Pending ones are applied by the next `calendly sync`, `pull-bookings` or `webhook retry`; applied
    ones stay listed with when and what they became.

    \b
    Examples:
      bapp calendly webhook list --pending
      bapp calendly webhook list --json
    """
    from bapp_cli.services.listing import Page
    from bapp_cli.services.webhook_inbox import INBOX_COLUMNS, list_deliveries

    page = Page(limit=limit, offset=offset, search=search)
    sink, entries = fetch(ctx, list_deliveries, pending_only=pending, page=page)
    sink.records(entries, INBOX_COLUMNS)


@output_command(webhook_app, "retry")
def webhook_retry(
    ctx: typer.Context,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Report what would apply, then roll back.")] = False,
    discard: Annotated[
        list[int] | None,
        typer.Option("--discard", min=1, metavar="ID", help="Give up parked delivery ID (repeatable)."),
    ] = None,
) -> None:
    """Re-apply the parked deliveries in the webhook inbox, oldest first (one transaction).

    Run `calendly sync` first when they wait for an event type. Exit 3 when some are still parked
    (each is named on stderr), 0 when the inbox has nothing pending. --discard ID gives one up that no
    bapp will apply (a body it cannot read): removed, as "discarded", its event, reason and body's
    SHA-256 kept in the audit log; an ID not parked is exit 7, nothing changed.

    \b
    Examples:
      bapp calendly webhook retry
      bapp calendly sync && bapp calendly webhook retry --json
      bapp calendly webhook retry --discard 7 --dry-run
    """
    from bapp_cli.services.calendly_bookings import RETRY_COLUMNS
    from bapp_cli.services.webhook_inbox import retry_pending

    question = pathway_question(state(ctx))
    sink, results = apply(ctx, retry_pending, pathway_question=question, discard=discard or (), dry_run=dry_run)
    waiting = [result for result in results if not result.applied]
    with contextlib.suppress(*BESIDE_A_FAILURE if waiting else ()):
        sink.records([result.as_record() for result in results], RETRY_COLUMNS)
    for result in waiting:
        sink.notice(f"still parked: #{result.id} {result.event} {result.invitee_uri}: {result.note}")
    if waiting:
        raise _parked(f"{len(waiting)} of {len(results)} parked deliveries still cannot be applied")


def _retry_parked_quietly(app_state: AppState, sink: OutputSink, *, tried: Collection[str] = ()) -> None:
    """After a sync or a pull: apply what the inbox holds, in its own transaction.

    Its own transaction so that a failure here never undoes the run that came before; a failure is a
    warning (the deliveries stay parked for the next try), never the run's exit code.
    """
    try:
        with app_state.plain_reading() as database:  # most runs find none: the retry's modules stay unimported
            if database.one("SELECT 1 FROM webhook_deliveries WHERE status = 'pending' LIMIT 1") is None:
                return
        from bapp_cli.services.webhook_inbox import retry_pending

        with app_state.transaction() as session:
            results = retry_pending(session, now=utc_now(), pathway_question=pathway_question(app_state), tried=tried)
    except BappError as exc:
        sink.warning(f"parked webhook deliveries not retried: {app_state.scrub(exc.message)}")
        return
    for result in (result for result in results if result.applied):
        sink.detail(f"applied parked delivery #{result.id}: {result.describe()}")


# ---- webhook subscriptions (issue 14) ---------------------------------------------------------------

SUBSCRIPTION_COLUMNS = ("uri", "callback_url", "state", "scope", "events", "organization", "user", "created_at")
DEFAULT_WEBHOOK_EVENTS = ("invitee.created", "invitee.canceled", "invitee_no_show.created", "invitee_no_show.deleted")
SIGNING_KEY_FILE_NAME = "calendly-webhook-signing-key"


ScopeOption = Annotated[str, choice("--scope", "WEBHOOK_SCOPES", "user (your events) or organization (everyone's).")]


def _subscriptions_of(app_state: AppState, client: Any, scope: str) -> dict[str, Any]:
    """Whose subscriptions of ``scope`` a command lists or creates, as Calendly's calls take it: the organization and
    user configured, else the token's own (`/users/me`); no user for the organization scope."""
    organization, user = app_state.settings.text("calendly.organization"), app_state.settings.calendly_user()
    if organization is None or user is None:
        me = client.get_current_user()
        organization, user = organization or me.current_organization, user or me.uri
    return {"organization": organization, "scope": scope, "user": user if scope == "user" else None}


def _subscription_record(subscription: Any, **extra: str | None) -> dict[str, Any]:
    """A subscription's record, with the ``extra`` keys that have a value (the key file, the shown key)."""
    record = {name: getattr(subscription, name) for name in SUBSCRIPTION_COLUMNS}
    return {**record, "events": list(subscription.events), **{k: v for k, v in extra.items() if v is not None}}


def _signing_key_for_subscription(app_state: AppState, sink: OutputSink) -> tuple[str, str | None]:
    """The key to give Calendly and where it is kept: the configured one, else a new one in a 0600 file.

    An existing key is reused (Calendly lets subscriptions share one) so that a receiver already running
    keeps verifying. A new key is written — and named in the config file — before the request goes
    out, so a subscription can never exist with a key bapp has lost.
    """
    import secrets

    from bapp_cli.config import removed_on_failure, set_config_values, user_path, write_private_file

    settings = app_state.settings
    configured_file = settings.text("calendly.webhook_signing_key_file")
    # a configured key file not there yet is written below: the hint of its failed read sends people here
    if existing := _signing_key(app_state, unwritten_ok=True):
        return existing, configured_file
    key = secrets.token_urlsafe(32)
    app_state.secrets.add(key)
    path = user_path(configured_file) if configured_file else settings.config_path.parent / SIGNING_KEY_FILE_NAME
    write_private_file(path, f"{key}\n".encode(), "webhook signing key file")
    if not configured_file:
        with removed_on_failure(path):
            set_config_values(settings.config_path, {"calendly.webhook_signing_key_file": str(path)})
    sink.info(f"Generated a webhook signing key in {path} (mode 0600), named in {settings.config_path}")
    return key, str(path)


@output_command(webhook_app, "subscribe")
def webhook_subscribe(
    ctx: typer.Context,
    url: Annotated[str, typer.Option("--url", help="The public HTTPS URL Calendly POSTs deliveries to.")],
    scope: ScopeOption = "user",
    events: Annotated[
        list[str] | None,
        typer.Option(
            "--events",
            help="Event to subscribe to (repeat the option) [default: invitee.created, invitee.canceled, "
            "invitee_no_show.created, invitee_no_show.deleted].",
        ),
    ] = None,
    show_signing_key: Annotated[
        bool, typer.Option("--show-signing-key", help="Also print the signing key (it is a secret).")
    ] = False,
) -> None:
    """Create the Calendly webhook subscription that feeds `webhook serve` (POST /webhook_subscriptions).

    The signing key is the one configured, else a new one that bapp generates and keeps in a 0600 file
    (calendly.webhook_signing_key_file, written to the config file) before asking Calendly. The key is
    never printed unless --show-signing-key. The request is sent once: if its answer is lost, bapp looks
    the URL up among the subscriptions (the host in any case, the default port or not) instead of sending
    it again. Exit 8 if the URL is already subscribed, 4 token refused (a paid plan is needed), 9 Calendly
    failed.

    \b
    Examples:
      bapp calendly webhook subscribe --url https://bapp.example.com/calendly/webhook
      bapp calendly webhook subscribe --url https://… --scope organization --events invitee.created --json
    """
    from bapp_cli.calendly.client import OutcomeUnknown

    app_state, sink = state_and_sink(ctx)
    if https_url(url, local_hosts=("127.0.0.1",)) is None:  # a local receiver under test; refused here, not by Calendly
        raise UsageError(f"--url: {url!r} must be an https:// URL with a host (Calendly delivers to HTTPS only)")
    wanted = list(dict.fromkeys(events or DEFAULT_WEBHOOK_EVENTS))
    with app_state.calendly_client() as client:
        owner = _subscriptions_of(app_state, client, scope)
        key, key_file = _signing_key_for_subscription(app_state, sink)
        try:
            subscription = client.create_webhook_subscription(url=url, events=wanted, signing_key=key, **owner)
        except OutcomeUnknown as lost:  # never resent blindly: asked whether it landed
            try:
                existing = client.list_webhook_subscriptions(**owner)
            except BappError as failed:  # the listing's error alone hid that the subscription may have been made
                why = f"{lost.message}; and the subscriptions could not be listed to see ({failed.message})"
                raise OutcomeUnknown(why, hint="run the same command again: it subscribes, or says it exists") from None
            # as Calendly may have written it: the host in lower case, the default port dropped (RFC 3986 6.2.3)
            ours = callback_key(url)
            if (found := next((sub for sub in existing if callback_key(sub.callback_url) == ours), None)) is None:
                message = f"{lost.message}; no subscription for {url} exists, so nothing was created"
                raise RemoteError(message, hint="it is safe to run the same command again") from None
            sink.warning(f"{lost.message}; the subscription was created all the same")
            subscription = found
    shown_key = key if show_signing_key else None
    record = _subscription_record(subscription, signing_key_file=key_file, signing_key=shown_key)
    sink.record(record, title="Calendly webhook subscription")


@output_command(webhook_app, "subscriptions")
def webhook_subscriptions(ctx: typer.Context, scope: ScopeOption = "user") -> None:
    """List the Calendly webhook subscriptions of your user (or organization).

    \b
    Examples:
      bapp calendly webhook subscriptions
      bapp calendly webhook subscriptions --scope organization --json
    """
    app_state, sink = state_and_sink(ctx)
    with app_state.calendly_client() as client:
        found = client.list_webhook_subscriptions(**_subscriptions_of(app_state, client, scope))
    sink.records([_subscription_record(sub) for sub in found], SUBSCRIPTION_COLUMNS)


@webhook_app.command("unsubscribe")
def webhook_unsubscribe(
    ctx: typer.Context,
    subscription: Annotated[str, typer.Argument(help="The subscription's URI or uuid (see `webhook subscriptions`).")],
) -> None:
    """Delete a Calendly webhook subscription (DELETE /webhook_subscriptions/{uuid}). Exit 7 if none.

    \b
    Examples:
      bapp calendly webhook unsubscribe https://api.calendly.com/webhook_subscriptions/AAAA
    """
    app_state = state(ctx)
    with app_state.calendly_client() as client:
        client.delete_webhook_subscription(subscription)
    app_state.messages.info(f"Deleted webhook subscription {subscription}")


# -- reconcile bookings sent to Calendly (issue 13) --------------------------------------------------


@output_command(app, "reconcile")
def reconcile(
    ctx: typer.Context,
    give_up_after: Annotated[
        float | None,
        typer.Option(
            "--give-up-after",
            min=0,
            max=MAX_GIVE_UP_HOURS,  # as the config file's calendly.reconcile_give_up_hours
            callback=finite_seconds,
            help="Hours after which a booking Calendly never confirmed is given up (cancelled, state failed) "
            "[default: calendly.reconcile_give_up_hours, else 24].",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Look everything up and report; change nothing, send nothing.")
    ] = False,
) -> None:
    """Settle every booking bapp sent to Calendly whose answer it never recorded.

    For each pending Calendly-bound booking (the answer was lost, or the process was killed): Calendly is
    asked for the client's booking at that start; found → the booking is completed with Calendly's event
    and invitee (cancelled here too when it was cancelled in Calendly since, never resent); not found →
    sent once more (only if it was not resent already and the start is ahead); still nothing after the
    give-up age → cancelled here and marked failed. One record per booking: attached, resent, waiting,
    failed, or unreadable (Calendly's answer about it could not be read: left pending, never given up as it may
    be booked there, the others settled, exit 9).
    Exit 9 if Calendly cannot be asked (nothing is resent then).

    \b
    Examples:
      bapp calendly reconcile
      bapp calendly reconcile --dry-run --json
      */15 * * * *  bapp calendly reconcile >/dev/null
    """
    from bapp_cli.cli.bookings import calendly_writer
    from bapp_cli.services.calendly_write import CANCEL_THERE, RECONCILE_COLUMNS, UNREADABLE

    app_state, sink = state_and_sink(ctx, {"calendly.reconcile_give_up_hours": give_up_after})
    # the flag's, else as configured, else 24 (resolved as every setting's default)
    give_up = dt.timedelta(hours=float(app_state.settings.get("calendly.reconcile_give_up_hours")))
    reports: list[dict[str, Any]] = []
    try:
        with calendly_writer(app_state) as writer:
            for report in writer.reconcile(give_up_after=give_up, dry_run=dry_run):
                reports.append(report)  # kept first: settled, it is shown even if a stop comes while its line is said
                # a booking Calendly holds but bapp cancelled needs a person: said in cron too, where info is not
                say = sink.warning if CANCEL_THERE in report["note"] else sink.info
                say(f"{report['booking']}: {report['action']} ({report['note']})")
    except BaseException:  # a run stopped partway (a signal, the database lost) shows what it settled before the stop
        # if its output can take them: a reader gone or a full disk must not replace the stop's own error (its
        # code, and the booking it left pending)
        with contextlib.suppress(*BESIDE_A_FAILURE):
            if reports:
                sink.records(reports, RECONCILE_COLUMNS, title="Calendly reconcile")
        raise
    sink.records(reports, RECONCILE_COLUMNS, title="Calendly reconcile")
    said_dry_run(sink, dry_run)
    if unread := [report["booking"] for report in reports if report["action"] == UNREADABLE]:
        hint = "the rows say what was wrong; the next reconcile asks again"
        raise RemoteError(f"Calendly's answer about {', '.join(unread)} could not be read; left pending", hint=hint)

"""`bapp bookings`: create bookings by hand under every rule, list them, and move them through their states."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Any

import typer

from bapp_cli.cli.cells import answers_text
from bapp_cli.cli.context import state_and_sink, utc_now
from bapp_cli.cli.options import MAX_OPTION_INT, DryRunOption, FromOption, ToOption, choice, output_command, when, zone
from bapp_cli.cli.terminal import detail_table
from bapp_cli.cli.unit_of_work import apply, done, fetch, pathway_completed, said_dry_run
from bapp_cli.errors import AuthError, UsageError

if TYPE_CHECKING:
    from bapp_cli.cli.output import OutputSink
    from bapp_cli.services.answers import AnswerInput
    from bapp_cli.services.booking import StatusChange
    from bapp_cli.services.listing import Page

app = typer.Typer(help="Create, list, show, confirm, complete and cancel bookings.", no_args_is_help=True)

ReferenceArgument = Annotated[str, typer.Argument(help="Booking reference, e.g. BK-7Q2M9X4D (any case).")]


def _print_booking(sink: OutputSink, record: dict[str, Any]) -> None:
    """A booking's record (its keys are the columns); as a table, two columns: times in --timezone, answers
    one per line."""

    def table(console: Any) -> None:
        answers = answers_text(record.get("custom_question_responses") or []) or "—"
        rows = [
            ("answers", answers)
            if key == "custom_question_responses"
            else (key.replace("_", " "), sink.display_value(value))
            for key, value in record.items()
            if key != "reference"
        ]
        console.print(detail_table(f"Booking {record['reference']}", rows), markup=False)

    sink.record(record, table=table)


def _read_answers(answers: list[str], answers_file: str | None) -> list[AnswerInput]:
    from bapp_cli.cli.files import read_text_input
    from bapp_cli.services.answers import parse_answer_option, parse_answers_document

    parsed = [parse_answer_option(text) for text in answers]
    if answers_file is not None:
        parsed.extend(parse_answers_document(read_text_input(answers_file, what="answers-file")))
    return parsed


@output_command(app, "create")
def create(
    ctx: typer.Context,
    client: Annotated[str, typer.Option("--client", help="Client e-mail.")],
    session_ref: Annotated[str, typer.Option("--session", help="Session type: id, slug or Calendly URI.")],
    start: Annotated[str, when("--start", "Start: ISO 8601 with offset, or a local time read in --timezone.")],
    name: Annotated[str | None, typer.Option("--name", help="Client name (for a new account).")] = None,
    timezone: Annotated[
        str | None, zone("Client's IANA zone; naive --start is read in it [default: the global --timezone].")
    ] = None,
    duration: Annotated[
        int | None,
        typer.Option(
            "--duration", min=1, max=MAX_OPTION_INT, help="Minutes: the session's duration or one of its options."
        ),
    ] = None,
    builder: Annotated[
        str | None, typer.Option("--builder", help="Builder e-mail [default: the session's owner].")
    ] = None,
    pathway: Annotated[str | None, typer.Option("--pathway", help="Pathway slug.")] = None,
    answer: Annotated[
        list[str] | None,
        typer.Option("--answer", help="'QUESTION=ANSWER'; repeat, and repeat a question for multi-select."),
    ] = None,
    answers_file: Annotated[
        str | None,
        typer.Option("--answers-file", help="JSON {question: answer-or-list} or [{question, answer}] ('-' for stdin)."),
    ] = None,
    create_account: Annotated[
        bool, typer.Option("--create-account", help="Create the client's account for a session that needs one.")
    ] = False,
    idempotency_key: Annotated[
        str | None,
        typer.Option("--idempotency-key", help="Repeat-safe key: the same request returns the same booking."),
    ] = None,
    allow_past: Annotated[
        bool, typer.Option("--allow-past", help="Skip the time rules (backfills): past starts, notice, advance.")
    ] = False,
    allow_overlap: Annotated[bool, typer.Option("--allow-overlap", help="Skip the overlap rule (rule 6).")] = False,
    through_calendly: Annotated[
        bool | None,
        typer.Option(
            "--calendly/--local-only",
            help="Book a Calendly session type in Calendly (POST /invitees), or in bapp only "
            "[default: config bookings.calendly = auto: in Calendly when a token is configured].",
        ),
    ] = None,
    dry_run: DryRunOption = False,
) -> None:
    """Create a booking, checking every rule before anything is written.

    Free sessions create the client's account when needed; sessions that need an account refuse an
    unknown e-mail unless --create-account. Exit 6 names the field to fix; 8 is an overlap or a reused key.

    The result is the booking's record, then what its creation did: account_created and enrolled (booleans),
    pathways_completed ([slugs]: the enrolment it made, completed at once because the client had done every
    skill of the pathway, said "🎉 Pathway completed" as the skills commands say it) and existing (an idempotent
    repeat returned an earlier booking).

    A session type synced from Calendly is booked in Calendly too (when a token is configured, or with
    --calendly): the start must be one of Calendly's open slots (exit 8 lists the nearest), the booking is
    held as pending while Calendly is asked, then confirmed with Calendly's event and invitee. Slot taken
    meanwhile: exit 8, nothing kept. Calendly's answer lost: bapp looks the booking up (never resends
    blindly); if it stays unknown, exit 9 and `bapp calendly reconcile` settles it later.

    \b
    Examples:
      bapp bookings create --client ada@example.com --session free-discovery-call --start 2030-01-07T10:00
      bapp bookings create --client ada@example.com --session 12 --start 2030-01-07T10:00+01:00 \\
          --pathway accelerate --answer 'What do you want to build?=A chatbot' --answer 'Tools=Python'
      bapp bookings create --client ada@example.com --session 12 --start 2030-01-07T10:00 --dry-run --json
    """
    from bapp_cli.services.booking import BookingRequest, create_booking
    from bapp_cli.services.calendly_write import CANCEL_THERE
    from bapp_cli.services.instants import parse_instant

    mode = None if through_calendly is None else "always" if through_calendly else "never"
    app_state, sink = state_and_sink(ctx, {"bookings.calendly": mode})
    client_zone = timezone or app_state.settings.timezone
    request = BookingRequest(
        client_email=client,
        session=session_ref,
        start=parse_instant(start, timezone=client_zone, field="start", require_time=True),
        client_timezone=client_zone,
        name=name,
        duration=duration,
        builder_email=builder,
        pathway=pathway,
        answers=_read_answers(answer or [], answers_file),
        create_account=create_account,
        idempotency_key=idempotency_key,
        allow_past=allow_past,
        allow_overlap=allow_overlap,
    )
    way = _books_in_calendly(app_state, through_calendly, session_ref, allow_past=allow_past)
    if way:
        with calendly_writer(app_state) as writer:
            result, notes = writer.book(request, dry_run=dry_run)
    else:
        with app_state.transaction(dry_run=dry_run) as session:
            result, notes = create_booking(session, request, now=utc_now()), []
    _print_booking(sink, result.as_record())
    booking = result.booking
    if result.existing:
        sink.info(f"Booking {booking.reference} already exists for this idempotency key; nothing was created.")
    elif dry_run:  # one message: a warning beside it that it was "booked in bapp only" said a booking was made
        would = "; it would be booked in bapp only: no Calendly token configured (see bookings.calendly)"
        would = would if way is None else ""
        sink.notice(f"Dry run: every rule passed; booking {booking.reference} was not written{would}.")
    else:
        where = " in Calendly" if booking.calendly_invitee_uri else ""
        sink.info(f"Booked {booking.reference}{where} ({booking.status}, payment {booking.payment_status}).")
    for note in notes:  # one Calendly holds though it was cancelled here needs a person: a warning, as reconcile's
        (sink.warning if CANCEL_THERE in note else sink.notice)(f"{booking.reference}: {note}.")
    if not result.existing:
        if way is None and not dry_run:  # only once the booking passed every rule: a refusal needs no such warning
            sink.warning("no Calendly token configured: booked in bapp only, not in Calendly (see bookings.calendly)")
        if result.account_created:
            sink.info(f"{done('create', dry_run)} an account for {booking.client}.")
        if result.enrolled:
            sink.info(f"{done('enroll', dry_run)} {booking.client} in {booking.pathway}.")
        for slug in result.pathways_completed:  # every skill of it done already: enrolled completed
            sink.info(pathway_completed(slug, dry_run))


# -- write-through to Calendly (issue 13) -------------------------------------------------------------

# A second support person booking at the same moment, or a reconcile, waits this long for a booking's
# Calendly round trip (and its lookup).
CALENDLY_WRITE_WAIT = 60.0


def _books_in_calendly(app_state: Any, flag: bool | None, session_ref: str, *, allow_past: bool) -> bool | None:
    """--calendly/--local-only, else bookings.calendly: auto books a Calendly session type in Calendly when
    a token is configured and, when it is not, in bapp only (None: the command says so once the booking is
    made); always needs the token (exit 4)."""
    from bapp_cli.services.calendly_write import calendly_session
    from bapp_cli.services.session_types import get_session_type

    mode = (app_state.settings.text("bookings.calendly") or "auto").lower()  # the flag's, else as configured
    if mode == "never":
        return False
    with app_state.reading() as session:
        if flag:
            calendly_session(session, session_ref)  # exit 6 for a session type Calendly does not know
        elif not get_session_type(session, session_ref).calendly_uri:
            return False
    if allow_past:
        if flag:
            raise UsageError("--allow-past records a past booking, which Calendly cannot take; use --local-only")
        return False
    if not app_state.settings.calendly_token():
        if mode == "always":
            raise AuthError(
                "no Calendly token configured, and this booking must go through Calendly",
                hint="set CALENDLY_API_KEY or calendly.token_file, or book with --local-only",
            )
        return None
    return True


@contextlib.contextmanager
def calendly_in_turn(app_state: Any, lock: str = "calendly-changes", *, asking: bool = True) -> Iterator[Any]:
    """The Calendly client (none unless ``asking``), under a named lock until it is closed: a booking in flight and a
    reconcile take turns (``calendly-writes``, services.calendly_write), and so do the changes pushed to Calendly
    (two no-shows of one booking both found its invitee unmarked there, and both marked it) and those made here."""
    from bapp_cli.db.locks import named_lock

    turn = named_lock(app_state.engine(), lock, wait_seconds=CALENDLY_WRITE_WAIT, what="Calendly write")
    with turn, app_state.calendly_client() if asking else contextlib.nullcontext() as client:
        yield client


@contextlib.contextmanager
def calendly_writer(app_state: Any) -> Iterator[Any]:
    """The Calendly writer of the configured scope, in its turn (``calendly_in_turn``)."""
    from bapp_cli.services.calendly_write import CALENDLY_WRITE_LOCK, CalendlyWriter

    with calendly_in_turn(app_state, CALENDLY_WRITE_LOCK) as client:
        yield CalendlyWriter(
            app_state.transaction,
            client,
            clock=utc_now,
            user=app_state.settings.calendly_user(),
            organization=app_state.settings.text("calendly.organization"),
        )


def _through_calendly(ctx: typer.Context, change: Any, *arguments: Any, **options: Any) -> tuple[OutputSink, Any]:
    """`change(transaction, open_client, *arguments, clock=…, **options)`: a services.calendly_write use case, which
    opens its own transactions (reads too: `transaction(write=False)`) around Calendly's round trips, each in its turn;
    the sink and its result."""
    app_state, sink = state_and_sink(ctx)
    wiring = (app_state.transaction, lambda asking=True: calendly_in_turn(app_state, asking=asking))
    return sink, change(*wiring, *arguments, clock=utc_now, **options)


@output_command(app, "list", search="reference, client or session title")
def list_command(
    ctx: typer.Context,
    page: Page,
    client: Annotated[str | None, typer.Option("--client", help="Client e-mail.")] = None,
    builder: Annotated[str | None, typer.Option("--builder", help="Builder e-mail.")] = None,
    pathway: Annotated[str | None, typer.Option("--pathway", help="Pathway slug, or 'none'.")] = None,
    status: Annotated[
        str | None,
        choice("--status", "BOOKING_STATUSES", "pending, confirmed, completed, cancelled or no_show (or no-show)."),
    ] = None,
    session_ref: Annotated[
        str | None, typer.Option("--session", help="Session type: id, slug or Calendly URI.")
    ] = None,
    start_from: FromOption = None,
    start_to: ToOption = None,
    upcoming: Annotated[bool, typer.Option("--upcoming", help="Only pending/confirmed bookings yet to start.")] = False,
) -> None:
    """List bookings ordered by start time; every filter is optional.

    \b
    Examples:
      bapp bookings list --upcoming
      bapp bookings list --client ada@example.com --status confirmed
      bapp bookings list --pathway none --from 2030-01-01 --to 2030-02-01 --json
      bapp bookings list --search ada --limit 20 --offset 20
    """
    from bapp_cli.services.instants import check_period, parse_instant
    from bapp_cli.services.plain_reads import BookingFilters, instant_value, list_bookings

    app_state, sink = state_and_sink(ctx)
    here = app_state.settings.timezone
    filters = BookingFilters(
        client_email=client,
        builder_email=builder,
        pathway=pathway,
        status=status,  # check_status reads it (any case) and refuses an empty one
        session=session_ref,
        start_from=parse_instant(start_from, timezone=here, field="from") if start_from is not None else None,
        start_to=parse_instant(start_to, timezone=here, field="to", end=True) if start_to is not None else None,
        upcoming=utc_now() if upcoming else None,
    )
    check_period(filters.start_from, filters.start_to)
    with app_state.plain_reading() as database:
        found = list_bookings(database, filters, page=page, cells=sink.format in ("csv", "tsv"))
        if sink.format != "table":  # streamed inside the read transaction, as rows are fetched
            sink.text_rows(found.columns, found.rows)
            return
        # a table measures every row before it draws the first, from its cells' text alone: each record is let go
        # as its row is added (a list of them held 100,000 bookings' dicts besides). Start in --timezone, amount
        # with its currency.
        records = (
            record
            | {
                "start_time": instant_value(record["start_time"], "bookings.start_time", of=record["reference"]),
                "amount": f"{record['amount']} {record['currency']}",
            }
            for record in found.records()
        )
        columns = ("reference", "start_time", "client", "session_title", "builder", "status", "payment_status")
        headers = {"start_time": "start", "session_title": "session", "payment_status": "payment"}
        sink.records(records, (*columns, "amount", "pathway"), title="Bookings", headers=headers)


@output_command(app, "show")
def show(ctx: typer.Context, reference: ReferenceArgument) -> None:
    """Show one booking with its answers, and why and when it was cancelled (if it was).

    \b
    Examples:
      bapp bookings show BK-7Q2M9X4D
      bapp bookings show bk-7q2m9x4d --json
    """
    from bapp_cli.services.plain_reads import CANCELLATION_COLUMNS, show_booking

    sink, view = fetch(ctx, show_booking, reference, plain=True)
    _print_booking(sink, view.as_record(*CANCELLATION_COLUMNS))
    if view.calendly_state in ("requested", "unknown"):
        sink.notice(
            f"{view.reference} is waiting for Calendly's confirmation (the answer was lost or never came); "
            "`bapp calendly reconcile` settles it."
        )
    elif view.calendly_state == "failed":
        sink.notice(f"{view.reference} was never confirmed by Calendly and was given up.")


def _render_change(sink: OutputSink, change: StatusChange) -> None:
    _print_booking(sink, change.booking.as_record())
    if not change.changes:  # Calendly's own delivery of the change was applied first
        sink.info(f"{change.booking.reference}: already {change.booking.status} (Calendly's notice came first).")
        return
    moves = "; ".join(f"{key} {old} → {new}" for key, (old, new) in change.changes.items())
    sink.info(f"{change.booking.reference}: {moves}.")


def _move(ctx: typer.Context, reference: str, verb: str, **options: Any) -> None:
    """A status or payment move made in bapp alone, then shown."""
    from bapp_cli.services.booking import change_booking_status

    _render_change(*apply(ctx, change_booking_status, reference, verb, **options))


@output_command(app, "confirm")
def confirm(
    ctx: typer.Context,
    reference: ReferenceArgument,
    paid: Annotated[bool, typer.Option("--paid", help="Also record the payment.")] = False,
    dry_run: DryRunOption = False,
) -> None:
    """Confirm a pending booking (pending → confirmed).

    \b
    Examples:
      bapp bookings confirm BK-7Q2M9X4D
      bapp bookings confirm BK-7Q2M9X4D --paid
    """
    _move(ctx, reference, "confirm", paid=paid, dry_run=dry_run)


@output_command(app, "complete")
def complete(ctx: typer.Context, reference: ReferenceArgument, dry_run: DryRunOption = False) -> None:
    """Mark a confirmed booking completed, once its start time has passed.

    \b
    Examples:
      bapp bookings complete BK-7Q2M9X4D
    """
    # In the turn of the changes pushed to Calendly, the one move here that can undo one of theirs: a `complete`
    # made while a no-show was being made in Calendly left bapp saying completed and Calendly no-show. Now one
    # waits for the other, and is refused as if run after it.
    with calendly_in_turn(state_and_sink(ctx)[0], asking=False):
        _move(ctx, reference, "complete", dry_run=dry_run)


LocalOnlyOption = Annotated[
    bool, typer.Option("--local-only", help="Change the booking in bapp only, even if it is in Calendly.")
]


@output_command(app, "no-show")
def no_show(
    ctx: typer.Context,
    reference: ReferenceArgument,
    undo: Annotated[
        bool, typer.Option("--undo", help="Take back a no-show recorded by mistake (→ completed once ended).")
    ] = False,
    local_only: LocalOnlyOption = False,
    dry_run: DryRunOption = False,
) -> None:
    """Mark a confirmed booking as a no-show, once its start time has passed.

    A booking that is in Calendly is marked there first (POST /invitee_no_shows); --undo deletes that
    no-show in Calendly and puts the booking back as Calendly's own undo does: completed once it has
    ended, else confirmed if it was before the mark (its audit row says), else pending while a priced
    booking is unpaid, confirmed otherwise. Back in an active status it
    takes its slot again, so --undo is refused (exit 8, naming the clash) when the builder or client was
    booked at that time meanwhile, before Calendly is asked.

    \b
    Examples:
      bapp bookings no-show BK-7Q2M9X4D
      bapp bookings no-show BK-7Q2M9X4D --undo
    """
    _push(ctx, reference, "undo" if undo else "no-show", local_only=local_only, dry_run=dry_run)


@output_command(app, "cancel")
def cancel(
    ctx: typer.Context,
    reference: ReferenceArgument,
    reason: Annotated[str | None, typer.Option("--reason", help="Why (kept with the booking).")] = None,
    local_only: LocalOnlyOption = False,
    dry_run: DryRunOption = False,
) -> None:
    """Cancel a pending or confirmed booking.

    A booking that is in Calendly is cancelled there first (Calendly e-mails the client; any 2xx, and
    "already canceled", counts as done; an event in the past cannot be cancelled: exit 8), then here.

    \b
    Examples:
      bapp bookings cancel BK-7Q2M9X4D --reason "client asked to move it"
      bapp bookings cancel BK-7Q2M9X4D --local-only
    """
    _push(ctx, reference, "cancel", local_only=local_only, reason=reason, dry_run=dry_run)


def _push(ctx: typer.Context, reference: str, command: str, **options: Any) -> None:
    """A cancel or no-show (or its undo): in Calendly first when the booking is there, then here (a dry run
    checks bapp's rules, sends Calendly nothing and rolls back here)."""
    from bapp_cli.services.calendly_write import change_status

    sink, (change, notes) = _through_calendly(ctx, change_status, reference, command, **options)
    reference = change.booking.reference
    for note in notes:
        sink.info(f"{reference}: {note}.")
    _render_change(sink, change)
    if command == "cancel" and change.booking.payment_status == "paid":  # cancelling gives no money back
        sink.info(f"{reference}: the payment stays recorded; `bapp bookings refund {reference}` records a refund.")
    said_dry_run(sink, options["dry_run"])


@output_command(app, "mark-paid")
def mark_paid(ctx: typer.Context, reference: ReferenceArgument, dry_run: DryRunOption = False) -> None:
    """Record the payment of an unpaid booking (unpaid → paid).

    \b
    Examples:
      bapp bookings mark-paid BK-7Q2M9X4D
    """
    _move(ctx, reference, "mark-paid", dry_run=dry_run)


@output_command(app, "refund")
def refund(ctx: typer.Context, reference: ReferenceArgument, dry_run: DryRunOption = False) -> None:
    """Record the refund of a paid booking (paid → refunded).

    \b
    Examples:
      bapp bookings refund BK-7Q2M9X4D
    """
    _move(ctx, reference, "refund", dry_run=dry_run)


@output_command(app, "link")
def link(
    ctx: typer.Context,
    client: Annotated[str, typer.Option("--client", help="Client e-mail.")],
    session_ref: Annotated[str, typer.Option("--session", help="Session type: id, slug or Calendly URI.")],
) -> None:
    """Create a single-use Calendly scheduling link for a client to pick the time themselves.

    Calendly's POST /scheduling_links makes a booking page that takes one booking. The link is printed and
    recorded as an invitation; when the client books through it, the pull or a webhook brings the booking
    in and marks the invitation used (matched by e-mail and event type).

    \b
    Examples:
      bapp bookings link --client ada@example.com --session free-discovery-call
      bapp bookings link --client ada@example.com --session 12 --json
    """
    from bapp_cli.services.calendly_write import LINK_COLUMNS, create_link

    sink, record = _through_calendly(ctx, create_link, client, session_ref)
    sink.record(record, LINK_COLUMNS, title="Scheduling link")
    sink.info(f"Send {record['client']} this single-use link: {record['booking_url']}")

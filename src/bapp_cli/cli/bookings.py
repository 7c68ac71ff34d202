"""`bapp bookings`: create bookings by hand under every rule, list them, and move them through their states."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from bapp_cli.cli.cells import answers_text
from bapp_cli.cli.context import state, utc_now
from bapp_cli.cli.options import (
    MAX_OPTION_INT,
    DryRunOption,
    FormatOption,
    JsonOption,
    LimitOption,
    OffsetOption,
    search_option,
)

if TYPE_CHECKING:
    from bapp_cli.cli.output import OutputSink
    from bapp_cli.services.answers import AnswerInput
    from bapp_cli.services.booking import StatusChange

app = typer.Typer(help="Create, list, show, confirm, complete and cancel bookings.", no_args_is_help=True)

ReferenceArgument = Annotated[str, typer.Argument(help="Booking reference, e.g. BK-7Q2M9X4D (any case).")]


def _record_table(record: dict[str, Any], sink: OutputSink, console: Any) -> None:
    """A booking as a two-column table: times in --timezone, answers one per line."""
    from rich.table import Table

    table = Table(title=f"Booking {record['reference']}", show_header=False, box=None, padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    for key, value in record.items():
        if key == "reference":
            continue
        if key == "custom_question_responses":
            table.add_row("answers", answers_text(value) or "—")
        else:
            table.add_row(key.replace("_", " "), sink.display_value(value))
    console.print(table, markup=False)


def _read_answers(answers: list[str], answers_file: str | None) -> list[AnswerInput]:
    import sys

    from bapp_cli.errors import InvalidInput
    from bapp_cli.services.answers import parse_answer_option, parse_answers_document

    parsed = [parse_answer_option(text) for text in answers]
    if answers_file is not None:
        try:
            if answers_file == "-":
                text = sys.stdin.read()
            else:
                with open(answers_file, encoding="utf-8-sig") as handle:
                    text = handle.read()
        except OSError as exc:
            raise InvalidInput(f"answers-file: cannot read {answers_file}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise InvalidInput(f"answers-file: {answers_file} is not UTF-8 text") from None
        parsed.extend(parse_answers_document(text))
    return parsed


@app.command("create")
def create(
    ctx: typer.Context,
    client: Annotated[str, typer.Option("--client", help="Client e-mail.", show_default=False)],
    session_ref: Annotated[
        str, typer.Option("--session", help="Session type: id, slug or Calendly URI.", show_default=False)
    ],
    start: Annotated[
        str,
        typer.Option(
            "--start", help="Start: ISO 8601 with offset, or a local time read in --timezone.", show_default=False
        ),
    ],
    name: Annotated[str | None, typer.Option("--name", help="Client name (for a new account).")] = None,
    timezone: Annotated[
        str | None,
        typer.Option(
            "--timezone",
            help="Client's IANA zone; naive --start is read in it [default: the global --timezone].",
            show_default=False,
        ),
    ] = None,
    duration: Annotated[
        int | None,
        typer.Option(
            "--duration",
            min=1,
            max=MAX_OPTION_INT,
            help="Minutes: the session's duration or one of its options.",
            show_default=False,
        ),
    ] = None,
    builder: Annotated[
        str | None,
        typer.Option("--builder", help="Builder e-mail [default: the session's owner].", show_default=False),
    ] = None,
    pathway: Annotated[str | None, typer.Option("--pathway", help="Pathway slug.", show_default=False)] = None,
    answer: Annotated[
        list[str] | None,
        typer.Option(
            "--answer", help="'QUESTION=ANSWER'; repeat, and repeat a question for multi-select.", show_default=False
        ),
    ] = None,
    answers_file: Annotated[
        str | None,
        typer.Option(
            "--answers-file",
            help="JSON {question: answer-or-list} or [{question, answer}] ('-' for stdin).",
            show_default=False,
        ),
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
    allow_overlap: Annotated[bool, typer.Option("--allow-overlap", help="Skip the overlap check.")] = False,
    dry_run: DryRunOption = False,
    fmt: FormatOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a booking, checking every rule before anything is written.

    Free sessions create the client's account when needed; sessions that need an account refuse an
    unknown e-mail unless --create-account. Exit 6 names the field to fix; 8 is an overlap or a reused key.

    \b
    Examples:
      bapp bookings create --client ada@example.com --session getting-started --start 2030-01-07T10:00
      bapp bookings create --client ada@example.com --session 12 --start 2030-01-07T10:00+01:00 \\
          --pathway accelerate --answer 'What do you want to build?=A chatbot' --answer 'Tools=Python'
      bapp bookings create --client ada@example.com --session 12 --start 2030-01-07T10:00 --dry-run --json
    """
    from bapp_cli.services.booking import CREATED_COLUMNS, BookingRequest, create_booking
    from bapp_cli.services.instants import get_zone, parse_instant

    app_state = state(ctx)
    sink = app_state.output(fmt, as_json)
    zone = get_zone(timezone, field="timezone").key if timezone is not None else app_state.timezone
    request = BookingRequest(
        client_email=client,
        session=session_ref,
        start=parse_instant(start, timezone=zone, field="start", require_time=True),
        client_timezone=zone,
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
    with app_state.transaction(dry_run=dry_run) as session:
        result = create_booking(session, request, now=utc_now())
    record = result.as_record()
    sink.record(record, CREATED_COLUMNS, table=lambda console: _record_table(record, sink, console))
    booking = result.booking
    if result.existing:
        sink.notice(f"Booking {booking.reference} already exists for this idempotency key; nothing was created.")
    elif dry_run:
        sink.notice(f"Dry run: every rule passed; booking {booking.reference} was not written.")
    else:
        sink.info(f"Booked {booking.reference} ({booking.status}, payment {booking.payment_status}).")
        if result.account_created:
            sink.info(f"Created an account for {booking.client}.")
        if result.enrolled:
            sink.info(f"Enrolled {booking.client} in {booking.pathway}.")


@app.command("list")
def list_command(
    ctx: typer.Context,
    client: Annotated[str | None, typer.Option("--client", help="Client e-mail.", show_default=False)] = None,
    builder: Annotated[str | None, typer.Option("--builder", help="Builder e-mail.", show_default=False)] = None,
    pathway: Annotated[
        str | None, typer.Option("--pathway", help="Pathway slug, or 'none'.", show_default=False)
    ] = None,
    status: Annotated[
        str | None,
        typer.Option("--status", help="pending, confirmed, completed, cancelled or no_show.", show_default=False),
    ] = None,
    session_ref: Annotated[
        str | None, typer.Option("--session", help="Session type: id, slug or Calendly URI.", show_default=False)
    ] = None,
    start_from: Annotated[
        str | None, typer.Option("--from", help="Starting at or after WHEN.", show_default=False)
    ] = None,
    start_to: Annotated[str | None, typer.Option("--to", help="Starting before WHEN.", show_default=False)] = None,
    upcoming: Annotated[bool, typer.Option("--upcoming", help="Only pending/confirmed bookings yet to start.")] = False,
    search: Annotated[str | None, search_option("reference, client or session title")] = None,
    limit: LimitOption = None,
    offset: OffsetOption = 0,
    fmt: FormatOption = None,
    as_json: JsonOption = False,
) -> None:
    """List bookings ordered by start time; every filter is optional.

    \b
    Examples:
      bapp bookings list --upcoming
      bapp bookings list --client ada@example.com --status confirmed
      bapp bookings list --pathway none --from 2030-01-01 --to 2030-02-01 --json
      bapp bookings list --search ada --limit 20 --offset 20
    """
    from bapp_cli.services.booking import BOOKING_COLUMNS, BookingFilters, iter_bookings
    from bapp_cli.services.instants import parse_instant
    from bapp_cli.services.listing import Page

    app_state = state(ctx)
    sink = app_state.output(fmt, as_json)
    zone = app_state.timezone
    filters = BookingFilters(
        client_email=client,
        builder_email=builder,
        pathway=pathway,
        status=status.strip().lower() if status else None,
        session=session_ref,
        start_from=parse_instant(start_from, timezone=zone, field="from") if start_from else None,
        start_to=parse_instant(start_to, timezone=zone, field="to") if start_to else None,
        upcoming=upcoming,
    )
    page = Page(limit=limit, offset=offset, search=search)
    with app_state.reading() as session:
        found = iter_bookings(session, filters, now=utc_now(), page=page)
        if sink.format != "table":  # streamed inside the read transaction, as rows are fetched
            sink.records((view.as_record() for view in found), BOOKING_COLUMNS)
            return
        views = list(found)  # a table measures every row before it draws the first

    def table(console: Any) -> None:
        from rich.table import Table

        from bapp_cli.cli.table_width import fit_to_terminal

        grid = Table(title="Bookings", header_style="bold")
        for column in ("reference", "start", "client", "session", "builder", "status", "payment", "amount"):
            grid.add_column(column)
        grid.add_column("pathway")
        for view in views:
            grid.add_row(
                view.reference,
                sink.local_time(view.start_time),
                view.client,
                view.session_title,
                sink.display_value(view.builder),
                view.status,
                view.payment_status,
                f"{view.amount:.2f} {view.currency}",
                sink.display_value(view.pathway),
            )
        fit_to_terminal(
            grid,
            console,
            keys=("reference", "client", "status", "amount"),
            drop_order=("pathway", "payment", "builder", "session", "start"),
            markup=False,
        )
        console.print(grid, markup=False)
        if not views:
            console.print("(no bookings)")

    sink.records([], BOOKING_COLUMNS, table=table)


@app.command("show")
def show(
    ctx: typer.Context, reference: ReferenceArgument, fmt: FormatOption = None, as_json: JsonOption = False
) -> None:
    """Show one booking with its answers.

    \b
    Examples:
      bapp bookings show BK-7Q2M9X4D
      bapp bookings show bk-7q2m9x4d --json
    """
    from bapp_cli.services.booking import BOOKING_COLUMNS, show_booking

    app_state = state(ctx)
    sink = app_state.output(fmt, as_json)
    with app_state.reading() as session:
        record = show_booking(session, reference).as_record()
    sink.record(record, BOOKING_COLUMNS, table=lambda console: _record_table(record, sink, console))


def _render_change(sink: OutputSink, change: StatusChange) -> None:
    from bapp_cli.services.booking import BOOKING_COLUMNS

    record = change.as_record()
    sink.record(record, BOOKING_COLUMNS, table=lambda console: _record_table(record, sink, console))
    moves = "; ".join(f"{key} {old} → {new}" for key, (old, new) in change.changes.items())
    sink.info(f"{change.booking.reference}: {moves}.")


def _status(ctx: typer.Context, reference: str, command: str, **options: Any) -> StatusChange:
    from bapp_cli.services.booking import change_booking_status

    app_state = state(ctx)
    with app_state.transaction() as session:
        return change_booking_status(session, reference, command, now=utc_now(), **options)


def _payment(ctx: typer.Context, reference: str, command: str) -> StatusChange:
    from bapp_cli.services.booking import change_payment_status

    app_state = state(ctx)
    with app_state.transaction() as session:
        return change_payment_status(session, reference, command, now=utc_now())


@app.command("confirm")
def confirm(
    ctx: typer.Context,
    reference: ReferenceArgument,
    paid: Annotated[bool, typer.Option("--paid", help="Also record the payment.")] = False,
    fmt: FormatOption = None,
    as_json: JsonOption = False,
) -> None:
    """Confirm a pending booking (pending → confirmed).

    \b
    Examples:
      bapp bookings confirm BK-7Q2M9X4D
      bapp bookings confirm BK-7Q2M9X4D --paid
    """
    sink = state(ctx).output(fmt, as_json)
    _render_change(sink, _status(ctx, reference, "confirm", paid=paid))


@app.command("complete")
def complete(
    ctx: typer.Context, reference: ReferenceArgument, fmt: FormatOption = None, as_json: JsonOption = False
) -> None:
    """Mark a confirmed booking completed, once its start time has passed.

    \b
    Examples:
      bapp bookings complete BK-7Q2M9X4D
    """
    sink = state(ctx).output(fmt, as_json)
    _render_change(sink, _status(ctx, reference, "complete"))


@app.command("no-show")
def no_show(
    ctx: typer.Context, reference: ReferenceArgument, fmt: FormatOption = None, as_json: JsonOption = False
) -> None:
    """Mark a confirmed booking as a no-show, once its start time has passed.

    \b
    Examples:
      bapp bookings no-show BK-7Q2M9X4D
    """
    sink = state(ctx).output(fmt, as_json)
    _render_change(sink, _status(ctx, reference, "no-show"))


@app.command("cancel")
def cancel(
    ctx: typer.Context,
    reference: ReferenceArgument,
    reason: Annotated[str | None, typer.Option("--reason", help="Why (kept with the booking).")] = None,
    fmt: FormatOption = None,
    as_json: JsonOption = False,
) -> None:
    """Cancel a pending or confirmed booking.

    \b
    Examples:
      bapp bookings cancel BK-7Q2M9X4D --reason "client asked to move it"
    """
    sink = state(ctx).output(fmt, as_json)
    _render_change(sink, _status(ctx, reference, "cancel", reason=reason))


@app.command("mark-paid")
def mark_paid(
    ctx: typer.Context, reference: ReferenceArgument, fmt: FormatOption = None, as_json: JsonOption = False
) -> None:
    """Record the payment of an unpaid booking (unpaid → paid).

    \b
    Examples:
      bapp bookings mark-paid BK-7Q2M9X4D
    """
    sink = state(ctx).output(fmt, as_json)
    _render_change(sink, _payment(ctx, reference, "mark-paid"))


@app.command("refund")
def refund(
    ctx: typer.Context, reference: ReferenceArgument, fmt: FormatOption = None, as_json: JsonOption = False
) -> None:
    """Record the refund of a paid booking (paid → refunded).

    \b
    Examples:
      bapp bookings refund BK-7Q2M9X4D
    """
    sink = state(ctx).output(fmt, as_json)
    _render_change(sink, _payment(ctx, reference, "refund"))

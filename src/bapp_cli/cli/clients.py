"""`bapp clients`: the people who book sessions, and their pathway enrolments."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from bapp_cli.cli.context import state, state_and_sink
from bapp_cli.cli.options import DryRunOption, PathwayArgument, choice, one_of, output_command, when
from bapp_cli.cli.unit_of_work import apply, changing, done, fetch, pathway_completed

if TYPE_CHECKING:
    from bapp_cli.cli.output import OutputSink
    from bapp_cli.services.listing import Page

app = typer.Typer(help="Add, list and show clients; enrol them in pathways.", no_args_is_help=True)


@output_command(app, "add")
def add(
    ctx: typer.Context,
    email: Annotated[str, typer.Argument(help="The client's e-mail address (stored lowercase).")],
    name: Annotated[str | None, typer.Option("--name", help="Full name.")] = None,
    company: Annotated[str | None, typer.Option("--company", help="Company.")] = None,
    industry: Annotated[str | None, typer.Option("--industry", help="Industry.")] = None,
    dry_run: DryRunOption = False,
) -> None:
    """Add a client (an existing builder's e-mail gains a client profile).

    A builder's account becoming a client takes --name as the client's name (without it, keeps the one it
    has); the builder's record shows their own display name, if they have one. An existing client is exit 8.

    \b
    Examples:
      bapp clients add ada@example.com --name "Ada Lovelace" --company Analytical
      bapp clients add grace@example.com --industry Defence --json
    """
    from bapp_cli.services.clients import CLIENT_COLUMNS, add_client

    with changing(ctx, dry_run=dry_run) as (sink, session):
        client = add_client(session, email, name=name, company=company, industry=industry)
    sink.record(client, CLIENT_COLUMNS, title="Client added")
    sink.info(f"{done('add', dry_run)} client {client['email']}.")


@output_command(app, "list", search="e-mail, name, company, industry")
def list_command(
    ctx: typer.Context,
    page: Page,
    pathway: Annotated[str | None, typer.Option("--pathway", help="Only clients enrolled in this pathway.")] = None,
    status: Annotated[
        str | None,
        choice(
            "--status",
            "ENROLMENT_STATUSES",
            "Only clients with an enrolment in this status (active, paused, completed).",
        ),
    ] = None,
    builder: Annotated[
        str | None, typer.Option("--builder", help="Only clients this builder coaches or has a booking with.")
    ] = None,
) -> None:
    """List clients by e-mail, optionally by pathway, enrolment status or builder.

    \b
    Examples:
      bapp clients list
      bapp clients list --pathway accelerate --status active
      bapp clients list --search acme --limit 50 --offset 50
      bapp clients list --builder coach@example.com --json
    """
    from bapp_cli.services.plain_reads import CLIENT_COLUMNS, list_clients

    app_state, sink = state_and_sink(ctx)
    with app_state.plain_reading() as database:
        # streamed inside the read transaction: rows are written as they are fetched
        clients = list_clients(database, pathway=pathway, status=status, builder=builder, page=page)
        sink.records(clients, CLIENT_COLUMNS, title="Clients")


def _render_detail(detail: dict[str, Any], sink: OutputSink, console: Any) -> None:
    from rich.text import Text

    from bapp_cli.cli.terminal import detail_table, listing_table, print_listing
    from bapp_cli.services.plain_reads import CLIENT_COLUMNS, instant_value

    profile = ((key.replace("_", " "), sink.display_value(detail[key])) for key in CLIENT_COLUMNS)
    console.print(detail_table(detail["name"] or detail["email"], profile))
    enrolments = listing_table("Enrolments", ("pathway", "status", "start date", "completed", "coach", "progress"))
    for item in detail["enrolments"]:
        cells = (item[key] for key in ("start_date", "completed_at", "builder"))
        enrolments.add_row(item["pathway"], item["status"], *map(sink.display_value, cells), f"{item['percent']}%")
    print_listing(console, enrolments, empty="(no enrolments)", keys=("pathway", "status"))
    bookings = listing_table("Recent bookings", ("reference", "start", "session", "status", "payment", "pathway"))
    for booking in detail["bookings"]:
        at = instant_value(booking["start_time"], "bookings.start_time", of=f"booking {booking['reference']}")
        start = sink.local_time(at)  # type: ignore[arg-type]
        cells = (booking[key] for key in ("session_title", "status", "payment_status"))
        bookings.add_row(booking["reference"], start, *cells, sink.display_value(booking["pathway"]))
    print_listing(console, bookings, empty="(no bookings)", keys=("reference", "status", "payment"))
    badges = ", ".join(badge["name"] + (" (revoked)" if badge["revoked_at"] else "") for badge in detail["badges"])
    console.print(Text.assemble(("Badges:", "bold"), f" {badges or '—'}"))


@output_command(app, "show")
def show(ctx: typer.Context, email: Annotated[str, typer.Argument(help="The client's e-mail address.")]) -> None:
    """Show a client: profile, enrolments with progress, the 10 most recent bookings, badges.

    The badges are `badges list`'s: every one awarded, a revoked one too, marked (its revoked_at in JSON).

    \b
    Examples:
      bapp clients show ada@example.com
      bapp clients show ADA@example.com --json
    """
    from bapp_cli.services.plain_reads import show_client

    sink, detail = fetch(ctx, show_client, email, plain=True)  # a quick look-up starts fast (P7)
    sink.record(detail, table=lambda console: _render_detail(detail, sink, console))


@output_command(app, "enroll")
def enroll(
    ctx: typer.Context,
    email: Annotated[str, typer.Argument(help="The client's e-mail address.")],
    pathway: PathwayArgument,
    builder: Annotated[str | None, typer.Option("--builder", help="The builder who coaches this enrolment.")] = None,
    start: Annotated[
        str | None, when("--start", "Start day (YYYY-MM-DD or an instant) [default: today in --timezone].")
    ] = None,
    dry_run: DryRunOption = False,
) -> None:
    """Enrol a client in a pathway (enrolled already: --builder and --start change coach and start date).

    A client who has done every skill of the pathway is enrolled completed: status completed, said "🎉 Pathway
    completed", as `skills assign --pathway` and `bookings create` say it.

    \b
    Examples:
      bapp clients enroll ada@example.com accelerate
      bapp clients enroll ada@example.com Pivot --builder coach@example.com --start 2030-01-06
    """
    from bapp_cli.services.clients import enroll_client
    from bapp_cli.services.instants import parse_day

    # the user's zone (--timezone): the start is a day there, as are today and the day an enrolment completes
    start_date = parse_day(start, timezone=state(ctx).settings.timezone, field="start") if start is not None else None
    sink, result = apply(ctx, enroll_client, email, pathway, builder=builder, start_date=start_date, dry_run=dry_run)
    verb, what = ("enroll", "{client}") if result["enrolled"] else ("update", "{client}'s enrolment")
    did = f"{done(verb, dry_run)} {what} in {{pathway}}."
    _report_enrolment(sink, result, did, "{client} was already enrolled in {pathway} ({status})")
    if result["enrolled"] and result["status"] == "completed":  # every skill done already: completed as it was made
        sink.info(pathway_completed(result["pathway"], dry_run))


@output_command(app, "set-status")
def set_status(
    ctx: typer.Context,
    email: Annotated[str, typer.Argument(help="The client's e-mail address.")],
    pathway: PathwayArgument,
    status: Annotated[str, typer.Argument(callback=one_of("ENROLMENT_STATUSES"), help="active, paused or completed.")],
    dry_run: DryRunOption = False,
) -> None:
    """Set a client's enrolment status in a pathway: active, paused or completed (not before its start date).

    \b
    Examples:
      bapp clients set-status ada@example.com accelerate paused
      bapp clients set-status ada@example.com accelerate completed --json
    """
    from bapp_cli.services.clients import set_client_status

    # the service reads the status
    sink, result = apply(ctx, set_client_status, email, pathway, status, dry_run=dry_run)
    did = "{client} " + ("would be" if dry_run else "is now") + " {status} in {pathway}."
    _report_enrolment(sink, result, did, "{client} was already {status} in {pathway}")


def _report_enrolment(sink: OutputSink, result: dict[str, Any], did: str, same: str) -> None:
    """An enrolment command's record, and what it did (`did`, or would do on a dry run) or that it found it so
    (`same`): templates of the record's keys."""
    sink.record(result, title="Enrolment")
    sink.info(did.format(**result) if result["changed"] else same.format(**result) + "; nothing changed.")

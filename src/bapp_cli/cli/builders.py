"""`bapp builders`: the people who run sessions, and the scheduling settings bookings enforce."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from bapp_cli.cli.options import MAX_OPTION_INT, DryRunOption, output_command, zone
from bapp_cli.cli.unit_of_work import changing, done, fetch

if TYPE_CHECKING:
    from bapp_cli.services.listing import Page

app = typer.Typer(help="Add, update and list builders (who run sessions).", no_args_is_help=True)

# `builders list` as a table: the scheduling settings' headers, shortened
TABLE_HEADERS = {"minimum_notice_hours": "notice (h)", "max_advance_days": "advance (d)", "buffer_minutes": "buffer"}

NameOption = Annotated[str | None, typer.Option("--name", help="Display name ('' clears it for the account's).")]
CalendlyUserOption = Annotated[
    str | None, typer.Option("--calendly-user", help="Calendly user URI that owns their event types.")
]
TimezoneOption = Annotated[str | None, zone("IANA zone, e.g. Europe/London [default: UTC].")]
BufferOption = Annotated[
    int | None,
    typer.Option("--buffer", min=0, max=MAX_OPTION_INT, help="Minutes kept free before and after each session."),
]
NoticeOption = Annotated[
    int | None, typer.Option("--minimum-notice", min=0, max=MAX_OPTION_INT, help="Hours of notice a booking needs.")
]
AdvanceOption = Annotated[
    int | None,
    typer.Option(
        "--max-advance", min=0, max=MAX_OPTION_INT, help="How many days ahead bookings may be made (0: no limit)."
    ),
]


@output_command(app, "add")
def add(
    ctx: typer.Context,
    email: Annotated[str, typer.Argument(help="The builder's e-mail address (stored lowercase).")],
    name: NameOption = None,
    calendly_user: CalendlyUserOption = None,
    timezone: TimezoneOption = None,
    buffer: BufferOption = None,
    minimum_notice: NoticeOption = None,
    max_advance: AdvanceOption = None,
    dry_run: DryRunOption = False,
) -> None:
    """Add a builder with their scheduling settings.

    \b
    Examples:
      bapp builders add coach@example.com --name "Cora Coach" --timezone Europe/London
      bapp builders add coach@example.com --buffer 15 --minimum-notice 24 --max-advance 60
    """
    from bapp_cli.services.builders import BUILDER_COLUMNS, BuilderSettings, add_builder, list_builders

    # the options in BuilderSettings' field order
    settings = BuilderSettings(name, calendly_user, timezone, buffer, minimum_notice, max_advance)
    with changing(ctx, dry_run=dry_run) as (sink, session):
        builder = list_builders(session, email=add_builder(session, email, settings))[0]
    sink.record(builder, BUILDER_COLUMNS, title="Builder added")
    sink.info(f"{done('add', dry_run)} builder {builder['email']}.")


@output_command(app, "update")
def update(
    ctx: typer.Context,
    email: Annotated[str, typer.Argument(help="The builder's e-mail address.")],
    name: NameOption = None,
    calendly_user: CalendlyUserOption = None,
    timezone: TimezoneOption = None,
    buffer: BufferOption = None,
    minimum_notice: NoticeOption = None,
    max_advance: AdvanceOption = None,
    accepting: Annotated[
        bool | None, typer.Option("--accepting/--not-accepting", help="Whether they take new bookings.")
    ] = None,
    dry_run: DryRunOption = False,
) -> None:
    """Change a builder's name, Calendly user or scheduling settings.

    \b
    Examples:
      bapp builders update coach@example.com --buffer 10
      bapp builders update coach@example.com --not-accepting
      bapp builders update coach@example.com --max-advance 0 --json
    """
    from bapp_cli.services.builders import BUILDER_COLUMNS, BuilderSettings, list_builders, update_builder

    settings = BuilderSettings(name, calendly_user, timezone, buffer, minimum_notice, max_advance, accepting)
    with changing(ctx, dry_run=dry_run) as (sink, session):
        stored_email, changes = update_builder(session, email, settings)
        builder = list_builders(session, email=stored_email)[0]
    sink.record(builder, BUILDER_COLUMNS, title="Builder")
    changed = ", ".join(sorted(changes))
    did = f"{done('update', dry_run)} {builder['email']}: {changed}."
    sink.info(did if changes else f"{builder['email']}: nothing to change.")


@output_command(app, "list", search="e-mail or name")
def list_command(ctx: typer.Context, page: Page) -> None:
    """List builders with their scheduling settings.

    \b
    Examples:
      bapp builders list
      bapp builders list --search priya
      bapp builders list --format csv
    """
    from bapp_cli.services.plain_reads import BUILDER_COLUMNS, list_builders

    sink, builders = fetch(ctx, list_builders, page=page, plain=True)
    sink.records(builders, BUILDER_COLUMNS, title="Builders", headers=TABLE_HEADERS)

"""`bapp sessions`: the catalogue of bookable session types (admin view), its open Calendly slots, and what an
anonymous visitor or a given client may book."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from bapp_cli.cli.context import state_and_sink, utc_now
from bapp_cli.cli.options import MAX_OPTION_INT, DryRunOption, choice, output_command, when, zone
from bapp_cli.cli.terminal import detail_table, listing_table, print_listing, styled
from bapp_cli.cli.unit_of_work import apply, done, fetch
from bapp_cli.errors import UsageError

if TYPE_CHECKING:
    from bapp_cli.services.availability import Availability
    from bapp_cli.services.listing import Page

app = typer.Typer(help="List, show, add and curate session types; see what a client may book.", no_args_is_help=True)

CATEGORY_TITLES = {
    "free": "Free — no account needed",
    "pathway": "Pathway sessions",
    "specialized": "Specialized sessions",
}
TABLE_COLUMNS = ("id", "title", "minutes", "price", "access", "pathways", "builder", "order", "state")
# on a narrow terminal: the columns kept whole, and those left out first (least important first)
TABLE_KEYS = ("id", "price", "builder", "state")
TABLE_DROP_ORDER = ("order", "pathways", "access", "minutes")


def _money(record: dict[str, Any]) -> str:
    # the price is a Decimal, as list_session_types hands every session record over
    return "no charge" if record["price"] == 0 else f"{record['price']:.2f} {record['currency']}"


def _state_text(record: dict[str, Any]) -> Any:
    from rich.text import Text

    if record["bookable"]:
        return Text.assemble(("bookable", "green"), (" secret", "dim") if record["is_secret"] else "")
    return Text("disabled", style="yellow") if not record["enabled"] else Text("not bookable", style="red")


def render_catalogue(records: list[dict[str, Any]], console: Any, *, title: str) -> None:
    """One table per category, in the order clients see them (list_session_types' order)."""
    from itertools import groupby

    from bapp_cli.services.session_values import offered_minutes

    if not records:
        console.print(f"{title}: no session types", style="dim")
        return
    for category, group in groupby(records, key=lambda record: record["category"]):
        right = ("id", "minutes", "price", "order")
        grid = listing_table(CATEGORY_TITLES.get(category, category), TABLE_COLUMNS, right=right, title_justify="left")
        for record in group:
            offered = offered_minutes(record["duration_minutes"], record["duration_options"])
            options = [option for option in offered if option != record["duration_minutes"]]
            minutes = str(record["duration_minutes"]) + (f" (+{'/'.join(map(str, options))})" if options else "")
            grid.add_row(
                str(record["id"]),
                record["title"],
                minutes,
                _money(record),
                "account" if record["requires_auth"] else "public",
                ", ".join(record["pathways"]) or "—",
                record["builder"] or "—",
                str(record["display_order"]),
                _state_text(record),
            )
        print_listing(console, grid, empty="", keys=TABLE_KEYS, drop_order=TABLE_DROP_ORDER)


def render_session(record: dict[str, Any], console: Any) -> None:
    options = f" (options {record['duration_options']})" if record["duration_options"] else ""
    rows = [
        ("id", str(record["id"] or "—")),
        ("slug", record["slug"] or "—"),
        ("category", record["category"]),
        ("access", "account needed" if record["requires_auth"] else "public (no account)"),
        ("state", _state_text(record)),
        ("duration", f"{record['duration_minutes']} min{options}"),
        ("price", _money(record)),
        ("display order", str(record["display_order"])),
        ("pathways", ", ".join(record["pathways"]) or "—"),
        ("builder", record["builder"] or "—"),
        ("calendly", record["calendly_uri"] or "local only"),
        ("booking link", record["scheduling_url"] or "—"),
        ("description", record["description"] or "—"),
    ]
    console.print(detail_table(record["title"], rows, title_justify="left"))
    from bapp_cli.services.answers import questions_from

    if asked := questions_from(record["custom_questions"]):
        headers = ("#", "question", "type", "required", "choices")
        questions = listing_table("Custom questions", headers, title_justify="left")
        for question in asked:
            choices = [*question.answer_choices, *(["other"] if question.include_other else [])]
            enabled = question.enabled
            questions.add_row(
                str(question.position),
                styled(question.name + ("" if enabled else " (disabled)"), None if enabled else "dim"),
                question.type,
                "yes" if question.required else "",
                ", ".join(choices) or "—",
            )
        console.print(questions)


CategoryOption = Annotated[str | None, choice("--category", "SESSION_CATEGORIES", "free, pathway or specialized.")]


@output_command(app, "list", search="slug or title")
def list_command(
    ctx: typer.Context,
    page: Page,
    include_all: Annotated[bool, typer.Option("--all", help="Include session types that are not bookable.")] = False,
    category: CategoryOption = None,
    pathway: Annotated[str | None, typer.Option("--pathway", help="Only types linked to this pathway.")] = None,
    builder: Annotated[str | None, typer.Option("--builder", help="Only this builder's types (e-mail).")] = None,
) -> None:
    """List the session catalogue (admin view), grouped by category in display order.

    \b
    Examples:
      bapp sessions list
      bapp sessions list --all --category pathway
      bapp sessions list --pathway accelerate --json
      bapp sessions list --all --search coaching
    """
    from bapp_cli.services.plain_reads import SESSION_COLUMNS, list_session_types

    filters = dict(include_all=include_all, category=category, pathway=pathway, builder=builder)
    sink, records = fetch(ctx, list_session_types, page=page, plain=True, **filters)

    title = "Session types" if include_all else "Bookable session types"
    sink.records(records, SESSION_COLUMNS, table=lambda console: render_catalogue(records, console, title=title))


@output_command(app, "show")
def show(
    ctx: typer.Context,
    session_type: Annotated[str, typer.Argument(metavar="SESSION", help="Id, slug or Calendly URI.")],
) -> None:
    """Show one session type with its custom questions.

    \b
    Examples:
      bapp sessions show 12
      bapp sessions show free-discovery-call --json
    """
    from bapp_cli.services.plain_reads import SESSION_COLUMNS, show_session_type

    sink, record = fetch(ctx, show_session_type, session_type, plain=True)
    sink.record(record, SESSION_COLUMNS, table=lambda console: render_session(record, console))


RequiresAuthOption = Annotated[
    bool | None,
    typer.Option(
        "--requires-auth/--no-requires-auth",
        help="Whether booking needs an account [default: from the category: free → no, otherwise yes].",
    ),
]
PathwayOption = Annotated[list[str] | None, typer.Option("--pathway", help="Link a pathway (repeat for several).")]
PriceOption = Annotated[str | None, typer.Option("--price", help="Price, e.g. 30.00 [default 0.00].")]
CurrencyOption = Annotated[str | None, typer.Option("--currency", help="Three-letter currency code [default GBP].")]


def _display_order_option(help_text: str) -> Any:
    return typer.Option("--display-order", min=-MAX_OPTION_INT - 1, max=MAX_OPTION_INT, help=help_text)


@output_command(app, "add")
def add(
    ctx: typer.Context,
    title: Annotated[str, typer.Option("--title", help="Session title.")],
    duration: Annotated[int, typer.Option("--duration", min=1, max=MAX_OPTION_INT, help="Length in minutes.")],
    category: CategoryOption = None,
    requires_auth: RequiresAuthOption = None,
    pathway: PathwayOption = None,
    price: PriceOption = None,
    currency: CurrencyOption = None,
    builder: Annotated[str | None, typer.Option("--builder", help="The builder who runs it (e-mail).")] = None,
    description: Annotated[str | None, typer.Option("--description", help="Description.")] = None,
    slug: Annotated[str | None, typer.Option("--slug", help="Slug, not only digits [default: from the title].")] = None,
    display_order: Annotated[int | None, _display_order_option("Position within its category [default 0].")] = None,
    dry_run: DryRunOption = False,
) -> None:
    """Add a local-only session type (not from Calendly; sync never touches it).

    \b
    Examples:
      bapp sessions add --title "Office Hours" --duration 30 --category free
      bapp sessions add --title "Prompt Clinic" --duration 90 --price 120 --builder coach@example.com
      bapp sessions add --title "Accelerate Review" --duration 45 --category pathway --pathway accelerate
    """
    from bapp_cli.services.session_admin import NewSessionType, add_session_type
    from bapp_cli.services.session_types import SESSION_COLUMNS

    # the options, in the draft's field order
    draft = NewSessionType(
        title, duration, category, requires_auth, pathway, price, currency, builder, description, slug, display_order
    )
    sink, record = apply(ctx, add_session_type, draft, dry_run=dry_run)
    if dry_run:  # no id: the database gives it as the row is written (a PostgreSQL real run draws the next), none yet
        record["id"] = None
    named = record["id"] or record["slug"]
    sink.info(f"{done('add', dry_run)} session type {named}: {record['title']} ({record['category']}).")
    sink.record(record, SESSION_COLUMNS, table=lambda console: render_session(record, console))


@output_command(app, "update")
def update(
    ctx: typer.Context,
    session_type: Annotated[str, typer.Argument(metavar="SESSION", help="Id, slug or Calendly URI.")],
    category: CategoryOption = None,
    requires_auth: RequiresAuthOption = None,
    pathway: PathwayOption = None,
    clear_pathways: Annotated[
        bool, typer.Option("--clear-pathways", help="Unlink every pathway (then link any --pathway given).")
    ] = False,
    price: PriceOption = None,
    currency: CurrencyOption = None,
    display_order: Annotated[int | None, _display_order_option("Position within its category.")] = None,
    enabled: Annotated[
        bool | None, typer.Option("--enable/--disable", help="Local switch: a disabled type is never bookable.")
    ] = None,
    dry_run: DryRunOption = False,
) -> None:
    """Change the curated fields of a session type (sync never overwrites these).

    Changing --category without --requires-auth/--no-requires-auth applies the new category's default
    (free → public, otherwise account needed). --pathway adds links; --clear-pathways removes them first.

    \b
    Examples:
      bapp sessions update 12 --price 45.00 --currency GBP
      bapp sessions update free-discovery-call --display-order 1
      bapp sessions update 7 --category pathway --clear-pathways --pathway pivot
      bapp sessions update 9 --disable
    """
    from bapp_cli.services.session_admin import SessionTypeChanges, update_session_type
    from bapp_cli.services.session_types import SESSION_COLUMNS

    # the options, in the field order
    changes = SessionTypeChanges(
        category, requires_auth, pathway, clear_pathways, price, currency, display_order, enabled
    )
    if changes.empty:
        raise UsageError("nothing to update", hint="pass at least one of the options (see --help)")
    sink, (record, changed) = apply(ctx, update_session_type, session_type, changes, dry_run=dry_run)
    if changed:
        sink.info(f"{done('update', dry_run)} session type {record['id']}: {', '.join(changed)}.")
    else:
        sink.info(f"Session type {record['id']} already has those values; nothing changed.")
    sink.record(record, SESSION_COLUMNS, table=lambda console: render_session(record, console))


# -- open Calendly slots (issue 13) -------------------------------------------------------------------

MAX_SLOT_DAYS = 366


@output_command(app, "slots")
def slots(
    ctx: typer.Context,
    session_ref: Annotated[str, typer.Argument(help="Session type: id, slug or Calendly URI.")],
    start_from: Annotated[
        str | None, when("--from", "First day (a date, or an ISO 8601 time) [default: today].")
    ] = None,
    days: Annotated[int, typer.Option("--days", min=1, max=MAX_SLOT_DAYS, help="How many days to show.")] = 7,
    timezone: Annotated[str | None, zone("Show times in this IANA zone [default: the global --timezone].")] = None,
) -> None:
    """Open start times of a Calendly session type, live from Calendly.

    Asks Calendly's GET /event_type_available_times in windows of at most 31 days, back to back, the first
    starting a minute from now (Calendly refuses past starts). The table has one column per day with the
    times in your zone (seats left for group sessions), the days a terminal cannot hold side by side below
    the others; JSON/CSV records are {session, start_time,
    end_time, invitees_remaining, scheduling_url} in UTC. Times bookings create would refuse are left out: within
    the builder's minimum notice, past their maximum advance, or clashing with a booking of theirs in bapp
    (with their buffer). Exit 6 for a session type not synced from Calendly,
    and for one bookings create would refuse at any time: not bookable, or its builder not accepting bookings.

    \b
    Examples:
      bapp sessions slots free-discovery-call
      bapp sessions slots 12 --from 2030-01-07 --days 14 --timezone Europe/London
      bapp sessions slots free-discovery-call --days 60 --json
    """
    import datetime as dt

    from bapp_cli.services.booking import bookable_slots
    from bapp_cli.services.calendly_write import SLOT_COLUMNS, calendly_session, open_slots
    from bapp_cli.services.instants import get_zone, parse_instant, two_offsets

    app_state, sink = state_and_sink(ctx, {"timezone": timezone})
    here = get_zone(app_state.settings.timezone, field="timezone")
    now = utc_now()
    # today by default, from its midnight (Calendly's part of it is from now on): N days from now showed N + 1 days,
    # the last cut at this time of day (`--days 1` at noon: today's afternoon and tomorrow's morning)
    today = dt.datetime.combine(now.astimezone(here).date(), dt.time(), here)
    begin = parse_instant(start_from, timezone=here.key, field="from") if start_from is not None else today
    # whole days on the viewer's clock (aware arithmetic in the zone is wall-clock): across a clock change an
    # elapsed 24 h × days would show an hour of the day after, or hide the last day's last hour
    end = (begin.astimezone(here) + dt.timedelta(days=days)).astimezone(dt.UTC)
    with app_state.reading() as session:
        target = calendly_session(session, session_ref, bookable=True)
    if start_from is not None and begin < now:  # said, so a past --from does not look like a fully booked calendar
        rest = "from now on" if end > now else "none in that window"
        sink.notice(f"--from {start_from}: Calendly offers only future slots; {rest}.")
    found = []
    if end > now:
        with app_state.calendly_client() as client:
            found = open_slots(client, target, start=begin, end=end, now=now)
        with app_state.reading() as session:  # bapp's own rules, which Calendly's times know nothing of
            found = list(bookable_slots(session, target.id, found, now=now))

    def table(console: Any) -> None:

        by_day: dict[str, list[str]] = {}
        for slot in found:
            local = slot["start_time"].astimezone(here)
            # a time the clocks show twice (the autumn hour) carries its offset, as `bookings create --start` asks
            shown = local.isoformat(timespec="minutes")[11:] if two_offsets(local) else local.strftime("%H:%M")
            seats = f" ({slot['invitees_remaining']} left)" if target.kind == "group" else ""
            by_day.setdefault(local.strftime("%a %d %b"), []).append(shown + seats)
        if not by_day:
            console.print(f"(no open times for {target.title} in the {days} days from {begin.astimezone(here).date()})")
        # as many days side by side as stay whole, the next ones below (Rich cut 14 days at 80 columns to `1…`): a
        # column is its widest text, two spaces of padding and a rule
        widest = max((len(text) for day, times in by_day.items() for text in (day, *times)), default=0)
        step = max(1, (console.width - 1) // (widest + 3))
        for first in range(0, len(by_day), step):
            title = None if first else f"Open times of {target.title} ({here.key})"
            grid = listing_table(title, list(by_day)[first : first + step])
            grid.add_row(*("\n".join(by_day[column.header]) for column in grid.columns))
            console.print(grid, markup=False)

    sink.records(found, SLOT_COLUMNS, table=table)


# -- what someone may book -------------------------------------------------------------------------------


AVAILABLE_HEADERS = ("id", "title", "minutes", "price", "pathways", "builder", "account")
# the headings of what a person may book, as the seed's booking page has them
AVAILABLE_TITLES = {
    "free": "Free Sessions",
    "pathway": "Learning Pathway Sessions",
    "specialized": "Specialized Sessions",
}


def render_available(availability: Availability, console: Any) -> None:
    """One table per category, in the listing's order (category first)."""
    from itertools import groupby

    from bapp_cli.services.session_values import offered_minutes

    who = availability.client or "an anonymous visitor (no account)"
    console.print(f"Sessions available to {who}", markup=False)
    if not availability.sessions:
        console.print("(no sessions)")
    for category, records in groupby(availability.sessions, key=lambda record: record["category"]):
        table = listing_table(AVAILABLE_TITLES[category], AVAILABLE_HEADERS, title_justify="left")
        for record in records:
            minutes = "/".join(map(str, offered_minutes(record["duration_minutes"], record["duration_options"])))
            table.add_row(
                str(record["id"]),
                record["title"],
                minutes,
                _money(record),
                ", ".join(record["pathways"]) or "—",
                record["builder"] or "—",
                "needed" if record["requires_auth"] else "not needed",
            )
        print_listing(console, table, empty="", keys=("id", "price", "builder"), drop_order=("pathways", "minutes"))


@output_command(app, "available")
def available(
    ctx: typer.Context,
    client: Annotated[str | None, typer.Option("--client", help="What this client (with an account) may book.")] = None,
    anonymous: Annotated[
        bool, typer.Option("--anonymous", help="What someone without an account may book (the default).")
    ] = False,
    pathway: Annotated[str | None, typer.Option("--pathway", help="Limit pathway sessions to this pathway's.")] = None,
    category: CategoryOption = None,
    builder: Annotated[str | None, typer.Option("--builder", help="Only this builder's sessions.")] = None,
) -> None:
    """Show the sessions someone may book: anonymous by default, or a client with --client.

    Grouped by category on a terminal (Free, Learning Pathway, Specialized); a flat ordered list in JSON.

    \b
    Examples:
      bapp sessions available
      bapp sessions available --client ada@example.com --pathway accelerate
      bapp sessions available --client ada@example.com --category specialized --json
    """
    from bapp_cli.services.availability import list_available_sessions
    from bapp_cli.services.plain_reads import SESSION_COLUMNS

    if client is not None and anonymous:
        raise UsageError("--client and --anonymous cannot be used together")
    sink, availability = fetch(
        ctx, list_available_sessions, client_email=client, pathway=pathway, category=category, builder_email=builder
    )
    sink.records(availability.sessions, SESSION_COLUMNS, table=lambda console: render_available(availability, console))

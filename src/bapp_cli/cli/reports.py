"""`bapp reports`: the builder dashboard — bookings by pathway, client progress, pathway analytics.

Each report is one table on a terminal (bars for counts and percentages, pathway icons and colours) and
an array of objects in json/jsonl/csv/tsv. Reports with overall totals end with a totals object whose
`pathway` is null (`--no-totals` leaves it out), the way `progress show` ends with its Fundamentals object.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Annotated, Any

import typer

from bapp_cli.cli.cells import ENROLMENT_STYLES, answers_text, percent_style
from bapp_cli.cli.context import state
from bapp_cli.cli.options import FromOption, ToOption, output_command
from bapp_cli.cli.terminal import coloured, listing_table, print_listing
from bapp_cli.cli.unit_of_work import fetch, reading

if TYPE_CHECKING:
    from bapp_cli.cli.output import OutputSink
    from bapp_cli.services.reports import Period, ReportPathway

app = typer.Typer(
    help="Builder dashboard: bookings by pathway, client progress, pathway analytics.", no_args_is_help=True
)

BAR_WIDTH = 6
# a cell holds eight steps, so small differences between pathways still show
EIGHTHS = ("", "▏", "▎", "▍", "▌", "▋", "▊", "▉")
BOOKING_STYLES = {"pending": "yellow", "confirmed": "cyan", "completed": "green", "cancelled": "dim", "no_show": "red"}

TotalsOption = Annotated[
    bool,
    typer.Option(
        "--totals/--no-totals",
        help="End json, jsonl, csv and tsv output with the totals object (pathway null); tables always show it.",
    ),
]


def bar(value: float, maximum: float) -> str:
    """A block bar of `value` out of `maximum`, padded to BAR_WIDTH cells."""
    if maximum <= 0 or value <= 0:
        return " " * BAR_WIDTH
    full, rest = divmod(max(1, round(min(value, maximum) / maximum * BAR_WIDTH * 8)), 8)
    return ("█" * full + EIGHTHS[rest]).ljust(BAR_WIDTH)


def _pathway_cell(label: ReportPathway) -> Any:
    from rich.text import Text

    if label.kind != "pathway":  # the totals row, or bookings without a pathway
        return Text(label.name, style="bold" if label.kind == "total" else "italic dim")
    icon, archived = f"{label.icon} " if label.icon else "", " (archived)" if label.archived else ""
    return Text.assemble(icon, (label.name, coloured(label.color, "bold")), (archived, "dim"))


def _bar_count(value: int, maximum: int, label: ReportPathway, total: bool) -> Any:
    """A count with its bar out of `maximum` in the row's pathway colour; on the totals row, bold and barless."""
    from rich.text import Text

    if total:
        return Text(f"{' ' * BAR_WIDTH} {value}", style="bold")
    digits = len(str(maximum))
    return Text.assemble((bar(value, maximum), coloured(label.color) or "cyan"), f" {value:>{digits}}")


def _plain_count(value: int, total: bool, style: str = "") -> Any:
    """A count in `style` (dim when 0); on the totals row, bold."""
    from rich.text import Text

    return Text(str(value), style="bold" if total else (style if value else "dim"))


def _absent() -> Any:
    from rich.text import Text

    return Text("—", style="dim")


def _percent_cell(percent: float | None) -> Any:
    from rich.text import Text

    if percent is None:  # a mean of nothing (nobody enrolled)
        return _absent()
    style = percent_style(percent)
    return Text.assemble((bar(percent, 100), style), (f" {percent:5.1f}%", style))


def _report_grid(title: str, headers: tuple[str, ...], *, caption: str) -> Any:
    """The frame every report table shares, so the dashboard's reports look alike; `headers` its first columns."""
    from rich import box

    return listing_table(title, headers, box=box.SIMPLE_HEAD, caption=caption)


def _print_totalled(console: Any, grid: Any, report: Any, cells: Any) -> None:
    """A report's rows, a rule, then its totals row: `cells(pathway, record, total)` draws either. Narrowed to the
    terminal as the listings are (Rich would cut every figure to '6…'): a figure is shown whole or its column left
    out, from the right, pathway and total never (wrapped, '    0.0%' is one word to Rich, folded to '0.' '0%')."""
    last = len(report.records) - 1
    for index, (label, record) in enumerate(zip(report.pathways, report.records, strict=True)):
        grid.add_row(*cells(label, record, index == last), end_section=index == last - 1)
    figures = [column.header for column in grid.columns if column.header != "top skills"]  # free text wraps
    dropped = [header for header in reversed(figures) if header not in ("pathway", "total")]
    print_listing(console, grid, empty="", keys=figures, drop_order=("top skills", *dropped))


def _period(ctx: typer.Context, start_from: str | None, start_to: str | None) -> Period:
    from bapp_cli.services.instants import parse_instant
    from bapp_cli.services.reports import Period

    zone = state(ctx).settings.timezone
    start = None if start_from is None else parse_instant(start_from, timezone=zone, field="from")
    return Period(start, None if start_to is None else parse_instant(start_to, timezone=zone, field="to", end=True))


def _period_caption(period: Period, sink: OutputSink, builder: str | None = None) -> str:
    start, end = (sink.local_time(bound) if bound is not None else None for bound in (period.start, period.end))
    ending = f"up to (not including) {end}" if start and end else f"before {end}" if end else "on"
    text = f"bookings starting {f'from {start} ' if start else ''}{ending}" if start or end else "all bookings"
    return text + (f" · builder {builder}" if builder else "")


# -- bookings by pathway ------------------------------------------------------------------------------


@output_command(app, "bookings-by-pathway")
def bookings_by_pathway(
    ctx: typer.Context,
    builder: Annotated[str | None, typer.Option("--builder", help="Builder e-mail.")] = None,
    start_from: FromOption = None,
    start_to: ToOption = None,
    listing: Annotated[
        bool, typer.Option("--list", help="List the bookings grouped by pathway instead of counting them.")
    ] = False,
    totals: TotalsOption = True,
) -> None:
    """Count bookings per pathway and status, or list them grouped by pathway (--list).

    The period is [--from, --to): bookings whose start time is at or after --from and before --to;
    either end may be left open. --builder keeps that builder's bookings.

    \b
    Counts, one object per pathway in display order, then bookings with no pathway, then the totals:
      {pathway, pending, confirmed, completed, cancelled, no_show, total}
      pathway  the slug; "none" for bookings without a pathway; null for the totals object
      total    every status together (cancelled and no-shows included)
    With --list: the bookings themselves (the keys of `bapp bookings list`), grouped by pathway in
    display order ("none" last) and by start time within a pathway; the table shows client, session,
    time (in --timezone), status, category and the custom answers.

    \b
    Examples:
      bapp reports bookings-by-pathway
      bapp reports bookings-by-pathway --builder priya@coach.example --from 2031-04-01 --to 2031-05-01
      bapp reports bookings-by-pathway --list --from 2031-04-01
      bapp reports bookings-by-pathway --format csv > bookings-by-pathway.csv
    """
    period = _period(ctx, start_from, start_to)
    if listing:
        from bapp_cli.services.booking import BOOKING_COLUMNS
        from bapp_cli.services.reports import list_bookings_by_pathway

        sink, groups = fetch(ctx, list_bookings_by_pathway, period=period, builder=builder)
        records = [view.as_record() for views in groups.values() for view in views]
        caption = _period_caption(period, sink, builder)
        sink.records(records, BOOKING_COLUMNS, table=partial(_listing_table, groups, sink, caption))
        return

    from bapp_cli.services.reports import BOOKING_COUNT_COLUMNS, count_bookings_by_pathway

    sink, report = fetch(ctx, count_bookings_by_pathway, period=period, builder=builder)
    sink.records(report.as_records(totals=totals), BOOKING_COUNT_COLUMNS, table=partial(_counts_table, report, sink))


def _counts_table(report: Any, sink: OutputSink, console: Any) -> None:

    from bapp_cli.db.models import BOOKING_STATUSES

    caption = _period_caption(report.period, sink, report.builder)
    grid = _report_grid("Bookings by pathway", ("pathway",), caption=caption)
    for status in BOOKING_STATUSES:
        grid.add_column(status.replace("_", " "), justify="right", header_style=f"bold {BOOKING_STYLES[status]}")
    grid.add_column("total")
    largest = max((record["total"] for record in report.records[:-1]), default=0)

    def cells(label: ReportPathway, record: dict[str, Any], total: bool) -> list[Any]:
        counts = [_plain_count(record[status], total, BOOKING_STYLES[status]) for status in BOOKING_STATUSES]
        return [_pathway_cell(label), *counts, _bar_count(record["total"], largest, label, total)]

    _print_totalled(console, grid, report, cells)


def _listing_table(groups: dict[ReportPathway, list[Any]], sink: OutputSink, caption: str, console: Any) -> None:
    from rich.text import Text

    headers = ("time", "client", "session", "status", "category", "answers")
    grid = _report_grid("Bookings by pathway", headers, caption=caption)
    for label, views in groups.items():
        count = len(views)
        heading = f"{count} booking{'s' if count != 1 else ''}"
        grid.add_row(_pathway_cell(label), Text(heading, style="dim"), end_section=True)
        for index, view in enumerate(views):
            grid.add_row(
                sink.local_time(view.start_time),
                Text.assemble(view.client_name, "\n", (view.client, "dim")) if view.client_name else Text(view.client),
                Text(view.session_title),
                Text(view.status.replace("_", " "), style=BOOKING_STYLES.get(view.status, "")),
                view.category,
                Text(answers_text(view.custom_question_responses) or "—"),
                end_section=index == count - 1,
            )
    # the time, client and status a booking is found and judged by stay whole; the rest wraps or is left out, named
    print_listing(console, grid, empty="(no bookings)", keys=("time", "client", "status"))


# -- client progress ----------------------------------------------------------------------------------


@output_command(app, "client-progress")
def client_progress(
    ctx: typer.Context,
    builder: Annotated[str | None, typer.Option("--builder", help="Only the enrolments this builder coaches.")] = None,
    pathway: Annotated[str | None, typer.Option("--pathway", help="Only this pathway (any case).")] = None,
) -> None:
    """Per client and pathway: enrolment status, done/total and % per tier and overall, badges, last activity.

    One object per enrolment, ordered by pathway then client:

    \b
      {client, pathway, status, tier1_completed, tier1_total, tier1_percent, tier2_completed, tier2_total,
       tier2_percent, tier3_completed, tier3_total, tier3_percent, completed, total, percent, badges,
       last_activity}
      *_completed / *_total  completed skills / skills linked to the tier (or pathway), archived skills aside
      *_percent              completed ÷ total, rounded down to a whole percent; 0 when nothing is linked
      tier<n>_*              null for a tier the pathway does not have; tiers 1–3 only (`pathways set-tier`
                             adds more): completed, total and percent count every tier, and `progress show`
                             lists the tiers beyond 3
      badges                 how many of the pathway's badges (tiers and pathway) the client holds; a revoked
                             one is not counted (`badges list` still lists it, with its revoked_at)
      last_activity          the latest change to the client's progress on the pathway's skills

    \b
    Examples:
      bapp reports client-progress
      bapp reports client-progress --builder priya@coach.example --pathway accelerate
      bapp reports client-progress --format csv > client-progress.csv
    """
    from bapp_cli.cli.progress import draw_progress_rows
    from bapp_cli.services.reports import CLIENT_PROGRESS_COLUMNS
    from bapp_cli.services.reports import client_progress as build_report

    with reading(ctx) as (sink, session):
        labels, records = build_report(session, builder=builder, pathway=pathway)
        # streamed from the cursor, one enrolment at a time (a table lists them first); every record's pathway
        # is one of the labels (archived ones included: the read is one snapshot, db.engine.unit_of_work)
        draw = partial(
            draw_progress_rows, "Client progress", records, sink, pathway_cell=lambda slug: _pathway_cell(labels[slug])
        )
        sink.records(records, CLIENT_PROGRESS_COLUMNS, table=draw)


# -- pathway analytics --------------------------------------------------------------------------------


@output_command(app, "pathway-analytics")
def pathway_analytics(
    ctx: typer.Context, start_from: FromOption = None, start_to: ToOption = None, totals: TotalsOption = True
) -> None:
    """Per pathway: enrolments, average progress, completion rate and time, top skills, bookings.

    One object per pathway in display order, then the totals object (pathway null). The period
    [--from, --to) applies to bookings only (by start time); every other figure covers all time.
    Every figure is computed in the database; with no data each count is 0 and each average null, never an error.

    \b
      enrolled                  enrolments in the pathway, whatever their status
      active, paused, completed enrolments in that status
      average_percent           mean of the enrolled clients' percents (completed ÷ linked skills,
                                rounded down, as `progress` shows them): each client weighs the same;
                                one decimal; null when nobody is enrolled
      completion_rate           completed ÷ enrolled, as a percentage with one decimal; null when nobody
                                is enrolled
      average_days_to_complete  mean over completed enrolments of the days from the start date to the
                                completion date, both days in --timezone, 0 for a completion dated before
                                the start; one decimal; null when none has completed
      top_skills                up to 3 skills linked to the pathway with the most completions (clients
                                who completed them), [{skill, name, completions}], ties by slug
      bookings                  the pathway's bookings starting in the period, any status
      totals                    the same over every enrolment; top_skills ranks every skill and
                                bookings counts every booking in the period, with or without a pathway

    \b
    Examples:
      bapp reports pathway-analytics
      bapp reports pathway-analytics --from 2031-01-01 --to 2031-07-01 --json
      bapp reports pathway-analytics --no-totals --format csv > analytics.csv
    """
    from bapp_cli.services.reports import ANALYTICS_COLUMNS
    from bapp_cli.services.reports import pathway_analytics as build_report

    period = _period(ctx, start_from, start_to)
    sink, report = fetch(ctx, build_report, period=period)
    sink.records(report.as_records(totals=totals), ANALYTICS_COLUMNS, table=partial(_analytics_table, report, sink))


def _analytics_table(report: Any, sink: OutputSink, console: Any) -> None:
    from rich.text import Text

    from bapp_cli.db.domains import ENROLMENT_STATUSES

    caption = f"period for bookings: {_period_caption(report.period, sink)}"
    grid = _report_grid("Pathway analytics", ("pathway", "enrolled"), caption=caption)
    for status in ENROLMENT_STATUSES:
        grid.add_column(status, justify="right", header_style=f"bold {ENROLMENT_STYLES[status]}", min_width=len(status))
    for header in ("avg progress", "completion", "avg days", "bookings", "top skills"):
        grid.add_column(header, justify="right" if header == "avg days" else "left")
    most_enrolled = max((record["enrolled"] for record in report.records[:-1]), default=0)
    most_booked = max((record["bookings"] for record in report.records[:-1]), default=0)

    def top(skills: list[dict[str, Any]]) -> Text:
        if not skills:
            return Text("—", style="dim")
        width = len(str(skills[0]["completions"]))
        return Text("\n".join(f"{item['completions']:>{width}}× {item['name']}" for item in skills))

    def cells(label: ReportPathway, record: dict[str, Any], total: bool) -> list[Any]:
        bold = "bold" if total else ""
        return [
            _pathway_cell(label),
            _bar_count(record["enrolled"], most_enrolled, label, total),
            *(_plain_count(record[status], total) for status in ENROLMENT_STATUSES),
            _percent_cell(record["average_percent"]),
            _percent_cell(record["completion_rate"]),
            _absent() if (days := record["average_days_to_complete"]) is None else Text(f"{days:.1f}", style=bold),
            _bar_count(record["bookings"], most_booked, label, total),
            top(record["top_skills"]),
        ]

    _print_totalled(console, grid, report, cells)

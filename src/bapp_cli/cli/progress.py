"""`bapp progress`: one client's progress tree, and the progress table of every enrolment."""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial
from typing import TYPE_CHECKING, Annotated, Any

import typer

from bapp_cli.cli.cells import ENROLMENT_STYLES, SKILL_STATUS_STYLES, percent_style
from bapp_cli.cli.options import ClientArgument, choice, output_command
from bapp_cli.cli.terminal import coloured, listing_table, print_listing, styled
from bapp_cli.cli.unit_of_work import fetch, reading

if TYPE_CHECKING:
    from bapp_cli.services.listing import Page

app = typer.Typer(help="Show clients' progress through pathways, tiers and skills.", no_args_is_help=True)

BAR_WIDTH = 10


def bar(percent: int, width: int = BAR_WIDTH) -> str:
    filled = min(width, max(0, percent * width // 100))
    return "█" * filled + "░" * (width - filled)


def _draw_progress_tree(progress: Any, sink: Any, console: Any) -> None:
    """The Rich tree of `progress show`: pathway → tiers (done/total, %, bar) → skills; badges last."""
    from rich.text import Text
    from rich.tree import Tree

    def counted(label: Text, group: dict[str, Any]) -> Text:
        style = percent_style(group["percent"])
        label.append(f"  {group['completed']}/{group['total']}  ")
        label.append(bar(group["percent"]), style=style)
        return label.append(f" {group['percent']}%", style=style)  # append returns the Text

    def add_skills(branch: Any, skills: list[dict[str, Any]]) -> None:
        for skill in skills:
            mark, style = SKILL_STATUS_STYLES.get(skill["status"], ("?", ""))
            line = Text.assemble((mark, style), " ", (skill["name"], style if skill["status"] != "completed" else ""))
            line.append(f" ({skill['skill']})", style="dim")
            if skill["completed_via"]:
                line.append(f"  via {skill['completed_via']}", style="dim")
            branch.add(line)

    title = Text(progress.client_name or progress.client, style="bold")
    if progress.client_name:
        title.append(f"  <{progress.client}>", style="dim")
    root = Tree(title)
    if not progress.pathways:
        root.add(Text("no enrolments", style="dim"))
    for item in progress.pathways:
        if item["pathway"] is None:
            fundamentals = root.add(counted(Text.assemble(("★ Fundamentals", "bold")), item))
            add_skills(fundamentals, item["progress"]["fundamentals"])
            continue
        icon, color = progress.looks[item["pathway"]]
        label = Text.assemble((f"{icon or ''} {item['name']}".strip(), coloured(color, "bold")))
        label.append(f" ({item['pathway']})", style="dim")
        label.append(f"  {item['status']}", style=ENROLMENT_STYLES.get(item["status"], ""))
        if item["builder"]:
            label.append(f"  coach {item['builder']}", style="dim")
        if item["start_date"]:
            label.append(f"  since {item['start_date'].isoformat()}", style="dim")
        if item["completed_at"]:
            label.append(f"  completed {sink.local_time(item['completed_at'])}", style="green")
        branch = root.add(counted(label, item))
        for tier in item["tiers"]:
            tier_branch = branch.add(counted(Text.assemble((f"Tier {tier['tier']} · {tier['name']}", "bold")), tier))
            skills = item["progress"][f"tier{tier['tier']}"]
            if not skills:
                tier_branch.add(Text("no active skills", style="dim"))
            add_skills(tier_branch, skills)
    badges = root.add(Text(f"Badges ({len(progress.badges)})", style="bold"))
    for badge in progress.badges:
        revoked = f", revoked {sink.local_time(badge['revoked_at'])}" if badge["revoked_at"] else ""
        badges.add(Text.assemble(f"🏅 {badge['name']}", (f"  {sink.local_time(badge['awarded_at'])}{revoked}", "dim")))
    console.print(root)


@output_command(app, "show")
def show(
    ctx: typer.Context,
    email: ClientArgument,
    pathway: Annotated[str | None, typer.Option("--pathway", help="Only this pathway (any case).")] = None,
) -> None:
    """Show a client's progress: pathways → tiers → skills, fundamentals and badges.

    \b
    Examples:
      bapp progress show ada@example.com
      bapp progress show ada@example.com --pathway accelerate
      bapp progress show ada@example.com --json
    """
    from bapp_cli.services.plain_reads import PROGRESS_COLUMNS, show_progress

    sink, progress = fetch(ctx, show_progress, email, pathway=pathway, plain=True)
    sink.records(progress.pathways, PROGRESS_COLUMNS, table=partial(_draw_progress_tree, progress, sink))


@output_command(app, "table", search="client e-mail or name, pathway")
def table(
    ctx: typer.Context,
    page: Page,
    pathway: Annotated[str | None, typer.Option("--pathway", help="Only this pathway (any case).")] = None,
    builder: Annotated[str | None, typer.Option("--builder", help="Only enrolments coached by this builder.")] = None,
    status: Annotated[str | None, choice("--status", "ENROLMENT_STATUSES", "Only enrolments in this status.")] = None,
) -> None:
    """One row per enrolment: tier and overall percentages, badges and last activity.

    A tier the pathway does not have is null (— in the table); one with no active skills is 0 %. The tier
    columns are tiers 1–3 whatever tiers a pathway has (`pathways set-tier` adds more; scripts read these
    columns): `percent` counts the skills of every tier, and `progress show` lists the tiers beyond 3.
    `badges` counts the pathway's badges (its tiers' and its own) the client holds: a revoked one is not
    counted, though `badges list`, `clients show` and `progress show` still list it, marked revoked.

    \b
    Examples:
      bapp progress table
      bapp progress table --pathway accelerate --status active
      bapp progress table --builder bob@example.com --format csv > progress.csv
      bapp progress table --search ada --limit 20
    """
    from bapp_cli.services.progress import PROGRESS_TABLE_COLUMNS, progress_records

    with reading(ctx) as (sink, session):
        records = progress_records(session, pathway=pathway, builder=builder, status=status, page=page)
        # streamed straight from the cursor (a table measures every row first: it lists them)
        sink.records(records, PROGRESS_TABLE_COLUMNS, table=partial(draw_progress_rows, "Progress", records, sink))


def draw_progress_rows(
    title: str, found: Iterable[dict[str, Any]], sink: Any, console: Any, pathway_cell: Any = None
) -> None:
    """The table of progress records, `progress table`'s and `reports client-progress`'s: per tier and overall the
    percent (with done/total when the records carry the counts; — for a tier the pathway lacks), the overall one as a
    bar, badges and last activity; `pathway_cell(slug)` draws the pathway (the slug when None). Narrowed to the
    terminal."""
    from bapp_cli.services.plain_reads import instant_value
    from bapp_cli.services.progress import TABLE_TIERS

    def share(row: dict[str, Any], prefix: str) -> tuple[str, int]:
        counts = f"{row[f'{prefix}completed']}/{row[f'{prefix}total']}" if f"{prefix}total" in row else ""
        return counts, row[f"{prefix}percent"]

    tiers = [f"tier {number}" for number in TABLE_TIERS]
    headers = ("client", "pathway", "status", *tiers, "overall", "badges", "last activity")
    grid = listing_table(title, headers, right=(*tiers, "badges"))
    for row in found:
        (counts, overall), last = share(row, ""), instant_value(row["last_activity"])
        grid.add_row(
            row["client"],
            pathway_cell(row["pathway"]) if pathway_cell else row["pathway"],
            styled(row["status"], ENROLMENT_STYLES.get(row["status"])),
            *(
                styled(f"{done} {percent:>3}%".lstrip(), percent_style(percent)) if percent is not None else "—"
                for done, percent in (share(row, f"tier{number}_") for number in TABLE_TIERS)
            ),
            styled(f"{bar(overall)} {overall:>3}%  {counts}".rstrip(), percent_style(overall)),
            f"🏅 {row['badges']}" if row["badges"] else "—",
            sink.local_time(last) if last else "—",
        )
    dropped = ("last activity", "badges", *reversed(tiers))
    print_listing(console, grid, empty="(no enrolments)", keys=("client", "status", "overall"), drop_order=dropped)

"""`bapp pathways`: the learning tracks clients follow, with their tiers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from bapp_cli.cli.context import state
from bapp_cli.cli.options import FormatOption, JsonOption

if TYPE_CHECKING:
    from bapp_cli.services.pathways import PathwayView

app = typer.Typer(help="List, show and manage pathways and their tiers.", no_args_is_help=True)


def render_pathway_tree(views: list[PathwayView], console: Any) -> None:
    from rich.text import Text
    from rich.tree import Tree

    for view in views:
        label = Text()
        label.append(f"{view.icon or ''} {view.name}".strip(), style=f"bold {view.color}" if view.color else "bold")
        label.append(f"  ({view.slug})", style="dim")
        if view.archived:
            label.append("  archived", style="yellow")
        tree = Tree(label)
        if view.description:
            tree.add(Text(view.description, style="italic"))
        for tier in view.tiers:
            skills = f" — {len(tier.skills)} skills" if tier.skills else ""
            branch = tree.add(Text.assemble((f"Tier {tier.tier}: {tier.name}", "bold"), (skills, "dim")))
            if tier.description:
                branch.add(Text(tier.description, style="dim"))
            for skill in tier.skills:
                branch.add(skill)
        console.print(tree)


@app.command("list")
def list_command(ctx: typer.Context, fmt: FormatOption = None, as_json: JsonOption = False) -> None:
    """List pathways in display order with their tiers.

    \b
    Examples:
      bapp pathways list
      bapp pathways list --json
    """
    from bapp_cli.services.pathways import PATHWAY_COLUMNS, list_pathways

    app_state = state(ctx)
    sink = app_state.output(fmt, as_json)
    with app_state.reading() as session:
        views = list_pathways(session)
    if sink.format == "table":
        from rich.table import Table

        def table(console: Any) -> None:
            grid = Table(title="Pathways", header_style="bold")
            for column in ("", "slug", "name", "tier 1", "tier 2", "tier 3", "skills", "archived"):
                grid.add_column(column)
            for view in views:
                names = [tier.name for tier in view.tiers] + ["—"] * 3
                grid.add_row(
                    view.icon or "",
                    f"[{view.color}]{view.slug}[/]" if view.color else view.slug,
                    view.name,
                    *names[:3],
                    str(sum(len(tier.skills) for tier in view.tiers)),
                    "yes" if view.archived else "",
                )
            console.print(grid)

        sink.records([], PATHWAY_COLUMNS, table=table)
    else:
        sink.records([view.as_record() for view in views], PATHWAY_COLUMNS)


@app.command("show")
def show(
    ctx: typer.Context,
    pathway: Annotated[str, typer.Argument(help="Pathway slug (any case).")],
    fmt: FormatOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show one pathway: its tiers and the skills linked to each.

    \b
    Examples:
      bapp pathways show accelerate
      bapp pathways show PIVOT --json
    """
    from bapp_cli.services.pathways import PATHWAY_COLUMNS, list_pathways

    app_state = state(ctx)
    sink = app_state.output(fmt, as_json)
    with app_state.reading() as session:
        views = list_pathways(session, slug=pathway)
    sink.record(views[0].as_record(), PATHWAY_COLUMNS, table=lambda console: render_pathway_tree(views, console))

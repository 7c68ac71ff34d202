"""`bapp pathways`: the learning tracks clients follow, with their tiers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from bapp_cli.cli.options import MAX_OPTION_INT, DryRunOption, PathwayArgument, YesOption, output_command
from bapp_cli.cli.terminal import coloured, listing_table, print_listing, styled
from bapp_cli.cli.unit_of_work import apply, done, fetch

if TYPE_CHECKING:
    from bapp_cli.services.listing import Page

app = typer.Typer(help="List, show and manage pathways and their tiers.", no_args_is_help=True)


def render_pathway_tree(records: list[dict[str, Any]], console: Any) -> None:
    from rich.text import Text
    from rich.tree import Tree

    for record in records:
        name = f"{record['icon'] or ''} {record['name']}".strip()
        label = Text.assemble((name, coloured(record["color"], "bold")), (f"  ({record['slug']})", "dim"))
        if record["archived"]:
            label.append("  archived", style="yellow")
        tree = Tree(label)
        if record["description"]:
            tree.add(Text(record["description"], style="italic"))
        for tier in record["tiers"]:
            skills = f" — {len(tier['skills'])} skills" if tier["skills"] else ""
            branch = tree.add(Text.assemble((f"Tier {tier['tier']}: {tier['name']}", "bold"), (skills, "dim")))
            if tier["description"]:
                branch.add(Text(tier["description"], style="dim"))
            for skill in tier["skills"]:
                branch.add(skill)
        console.print(tree)


@output_command(app, "list", search="slug or name")
def list_command(ctx: typer.Context, page: Page) -> None:
    """List pathways in display order with their tiers.

    \b
    Examples:
      bapp pathways list
      bapp pathways list --search acc
      bapp pathways list --json
    """
    from bapp_cli.services.plain_reads import PATHWAY_COLUMNS, list_pathways

    sink, records = fetch(ctx, list_pathways, page=page, plain=True)

    def table(console: Any) -> None:
        grid = listing_table("Pathways", ("", "slug", "name", "tier 1", "tier 2", "tier 3", "skills", "archived"))
        for record in records:
            names = [tier["name"] for tier in record["tiers"]] + ["—"] * 3
            grid.add_row(
                record["icon"] or "",
                styled(record["slug"], coloured(record["color"])),
                record["name"],
                *names[:3],
                str(sum(len(tier["skills"]) for tier in record["tiers"])),
                "yes" if record["archived"] else "",
            )
        print_listing(console, grid, empty="(no pathways)", keys=("slug",))

    sink.records(records, PATHWAY_COLUMNS, table=table)


@output_command(app, "show")
def show(ctx: typer.Context, pathway: PathwayArgument) -> None:
    """Show one pathway: its tiers and the skills linked to each.

    \b
    Examples:
      bapp pathways show accelerate
      bapp pathways show PIVOT --json
    """
    from bapp_cli.services.plain_reads import PATHWAY_COLUMNS, list_pathways

    sink, records = fetch(ctx, list_pathways, slug=pathway, plain=True)
    sink.record(records[0], PATHWAY_COLUMNS, table=lambda console: render_pathway_tree(records, console))


def _pathway_change(ctx: typer.Context, verb: str, change: Any, *arguments: Any, **options: Any) -> None:
    """A pathway change (`unit_of_work.apply`): the pathway as it now stands, then what was done."""
    from bapp_cli.services.plain_reads import PATHWAY_COLUMNS

    sink, (record, changed) = apply(ctx, change, *arguments, **options)
    sink.record(record, PATHWAY_COLUMNS, table=lambda console: render_pathway_tree([record], console))
    slug = record["slug"]
    sink.info(f"{done(verb, options['dry_run'])} pathway {slug}." if changed else f"Pathway {slug} unchanged.")


@output_command(app, "add")
def add(
    ctx: typer.Context,
    slug: Annotated[str, typer.Argument(help="New pathway slug (any case; stored lowercase).")],
    name: Annotated[str, typer.Option("--name", help="Display name.")],
    description: Annotated[str | None, typer.Option("--description", help="What the pathway is for.")] = None,
    icon: Annotated[str | None, typer.Option("--icon", help="An emoji or short icon text.")] = None,
    color: Annotated[str | None, typer.Option("--color", help="Colour as #RRGGBB.")] = None,
    tiers: Annotated[
        list[str] | None, typer.Option("--tier", help="A tier as 'NAME: DESCRIPTION'; repeat in order (tier 1, 2, 3…).")
    ] = None,
    dry_run: DryRunOption = False,
) -> None:
    """Add a pathway with its tiers, placed last in the display order.

    Neither its slug nor its name may read as another pathway's slug or name in any case (exit 8): a
    Calendly answer names a pathway by either.

    \b
    Examples:
      bapp pathways add data-leaders --name "Data Leaders" --icon 📊 --color '#F59E0B' \\
        --tier 'Discover: Map the data you have' --tier 'Decide: Use it' --tier 'Lead: Teach it'
      bapp pathways add Sandbox --name Sandbox --dry-run --json
    """
    from bapp_cli.services.pathway_admin import TierSpec, add_pathway

    specs = [TierSpec.parse(text, field=f"tier {index}") for index, text in enumerate(tiers or [], start=1)]
    fields = {"name": name, "description": description, "icon": icon, "color": color, "tiers": specs}
    _pathway_change(ctx, "add", add_pathway, slug, dry_run=dry_run, **fields)


@output_command(app, "update")
def update(
    ctx: typer.Context,
    pathway: PathwayArgument,
    name: Annotated[str | None, typer.Option("--name", help="New display name.")] = None,
    description: Annotated[str | None, typer.Option("--description", help="New description ('' clears it).")] = None,
    icon: Annotated[str | None, typer.Option("--icon", help="New icon ('' clears it).")] = None,
    color: Annotated[str | None, typer.Option("--color", help="New colour as #RRGGBB.")] = None,
    position: Annotated[
        int | None,
        typer.Option(
            "--position", min=0, max=MAX_OPTION_INT, help="Move to this place in the display order (0 = first)."
        ),
    ] = None,
    dry_run: DryRunOption = False,
) -> None:
    """Rename, describe, recolour or reorder a pathway; only the options given change.

    A new name may not read as another pathway's slug or name in any case (exit 8), as for `pathways add`.

    \b
    Examples:
      bapp pathways update play --name "Play & Create" --color '#A78BFA'
      bapp pathways update pivot --position 0
    """
    from bapp_cli.services.pathway_admin import update_pathway

    fields = {"name": name, "description": description, "icon": icon, "color": color, "position": position}
    _pathway_change(ctx, "update", update_pathway, pathway, dry_run=dry_run, **fields)


@output_command(app, "set-tier")
def set_tier_command(
    ctx: typer.Context,
    pathway: PathwayArgument,
    number: Annotated[
        int, typer.Argument(min=1, max=MAX_OPTION_INT, help="Tier number (an existing one, or the next one to add it).")
    ],
    name: Annotated[str, typer.Option("--name", help="Tier name (no ':', as in `pathways add --tier`).")],
    description: Annotated[str | None, typer.Option("--description", help="Tier description.")] = None,
    dry_run: DryRunOption = False,
) -> None:
    """Rename or describe a tier, or add the next tier of a pathway.

    \b
    Examples:
      bapp pathways set-tier accelerate 1 --name Foundations --description "Core AI concepts and tools"
      bapp pathways set-tier play 4 --name Showcase
    """
    from bapp_cli.services.pathway_admin import set_tier

    _pathway_change(ctx, "update", set_tier, pathway, number, name=name, description=description, dry_run=dry_run)


@output_command(app, "archive")
def archive(
    ctx: typer.Context, pathway: PathwayArgument, yes: YesOption = False, dry_run: DryRunOption = False
) -> None:
    """Archive a pathway: its history stays; it takes no new enrolments, bookings or skill links.

    \b
    Examples:
      bapp pathways archive play --yes
    """
    from bapp_cli.services.pathway_admin import archive_pathway

    question = f"Archive pathway {pathway.strip().lower()}?"
    _pathway_change(ctx, "archive", archive_pathway, pathway, ask=question, yes=yes, dry_run=dry_run)

"""`bapp skills`: the skill catalogue and each client's progress through it."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Annotated, Any

import typer

from bapp_cli.cli.cells import SKILL_STATUS_STYLES
from bapp_cli.cli.options import (
    MAX_OPTION_INT,
    ClientArgument,
    DryRunOption,
    PathwayArgument,
    SkillArgument,
    YesOption,
    choice,
    output_command,
)
from bapp_cli.cli.terminal import listing_table, print_listing
from bapp_cli.cli.unit_of_work import apply, done, fetch, pathway_completed

if TYPE_CHECKING:
    from bapp_cli.services.listing import Page

app = typer.Typer(help="Manage skills, link them to pathway tiers, and track clients' progress.", no_args_is_help=True)


def _skill_table(views: list[Any], title: str, console: Any) -> None:
    table = listing_table(title, ("slug", "name", "domain", "fundamental", "links", "archived"))
    for view in views:
        table.add_row(
            view["slug"],
            view["name"],
            view["domain"] or "—",
            "★" if view["is_fundamental"] else "",
            ", ".join(view["links"]) or "—",
            "yes" if view["archived"] else "",
        )
    print_listing(console, table, empty="(no skills)", keys=("slug",), drop_order=("domain", "fundamental"))


def _catalogue_change(ctx: typer.Context, verb: str, change: Any, *arguments: Any, **options: Any) -> None:
    """A catalogue change: the skill as it now stands, then what it did and what it let clients earn."""
    sink, result = apply(ctx, change, *arguments, **options)
    sink.record(result.skill)
    slug = result.skill["slug"]
    sink.info(f"{done(verb, options['dry_run'])} skill {slug}." if result.changed else f"Skill {slug} unchanged.")
    if result.badges_awarded or result.pathways_completed:
        did = "would complete" if options["dry_run"] else "completed"
        earned = f"{result.badges_awarded} badge(s) awarded, {result.pathways_completed} enrolment(s) completed"
        sink.info(f"That change {did} criteria for clients: {earned}.")


def _progress_change(ctx: typer.Context, summary: Any, change_progress: Any, *arguments: Any, **options: Any) -> None:
    """A progress command: its record, `summary(record)`, then the pathways it enrolled the client in and what
    it earned."""
    sink, (record, badge_names) = apply(ctx, change_progress, *arguments, **options)
    sink.record(record)
    sink.info(summary(record))
    for slug in record["enrolled"]:
        sink.info(f"{done('enroll', options['dry_run'])} {record['client']} in {slug}.")
    would = " would be" if options["dry_run"] else ""
    for key in record["badges_awarded"]:
        sink.info(f"🏅 Badge{would} awarded: {badge_names.get(key, key)}")
    for slug in record["pathways_completed"]:
        sink.info(pathway_completed(slug, options["dry_run"]))


@output_command(app, "add")
def add(
    ctx: typer.Context,
    slug: Annotated[str, typer.Argument(help="New skill slug (any case; stored lowercase).")],
    name: Annotated[str, typer.Option("--name", help="Display name.")],
    description: Annotated[str | None, typer.Option("--description", help="What the skill covers.")] = None,
    domain: Annotated[str | None, typer.Option("--domain", help="Subject area, e.g. 'prompting'.")] = None,
    fundamental: Annotated[
        bool, typer.Option("--fundamental", help="A core skill every client should complete.")
    ] = False,
    links: Annotated[
        list[str] | None, typer.Option("--link", help="PATHWAY:TIER to link it to; repeat for several pathways.")
    ] = None,
    dry_run: DryRunOption = False,
) -> None:
    """Add a skill, optionally fundamental and linked to pathway tiers.

    \b
    Examples:
      bapp skills add prompt-design --name "Prompt design" --domain prompting --link accelerate:1 --link play:1
      bapp skills add ai-safety --name "AI safety basics" --fundamental
    """
    from bapp_cli.services.skills import add_skill

    options = dict(name=name, description=description, domain=domain, fundamental=fundamental, links=links or [])
    _catalogue_change(ctx, "add", add_skill, slug, dry_run=dry_run, **options)


@output_command(app, "update")
def update(
    ctx: typer.Context,
    slug: SkillArgument,
    name: Annotated[str | None, typer.Option("--name", help="New display name.")] = None,
    description: Annotated[str | None, typer.Option("--description", help="New description ('' clears it).")] = None,
    domain: Annotated[str | None, typer.Option("--domain", help="New domain ('' clears it).")] = None,
    fundamental: Annotated[
        bool | None, typer.Option("--fundamental/--not-fundamental", help="Flag or unflag as fundamental.")
    ] = None,
    dry_run: DryRunOption = False,
) -> None:
    """Rename, describe or re-domain a skill, or change its fundamental flag.

    \b
    Examples:
      bapp skills update prompt-design --name "Prompt engineering"
      bapp skills update ai-safety --not-fundamental
    """
    from bapp_cli.services.skills import update_skill

    options = {"name": name, "description": description, "domain": domain, "fundamental": fundamental}
    _catalogue_change(ctx, "update", update_skill, slug, dry_run=dry_run, **options)


@output_command(app, "link")
def link(
    ctx: typer.Context,
    slug: SkillArgument,
    target: Annotated[str, typer.Argument(metavar="PATHWAY:TIER", help="Pathway and tier, e.g. accelerate:2.")],
    dry_run: DryRunOption = False,
) -> None:
    """Link a skill to a pathway tier (or move it to another tier of that pathway).

    \b
    Examples:
      bapp skills link prompt-design pivot:1
      bapp skills link prompt-design accelerate:2
    """
    from bapp_cli.services.skills import link_skill

    _catalogue_change(ctx, "link", link_skill, slug, target, dry_run=dry_run)


@output_command(app, "unlink")
def unlink(ctx: typer.Context, slug: SkillArgument, pathway: PathwayArgument, dry_run: DryRunOption = False) -> None:
    """Remove a skill from a pathway (clients' progress rows stay).

    \b
    Examples:
      bapp skills unlink prompt-design play
    """
    from bapp_cli.services.skills import unlink_skill

    _catalogue_change(ctx, "unlink", unlink_skill, slug, pathway, dry_run=dry_run)


@output_command(app, "archive")
def archive(ctx: typer.Context, slug: SkillArgument, yes: YesOption = False, dry_run: DryRunOption = False) -> None:
    """Archive a skill: it leaves tier counts and fundamentals; clients' history stays.

    \b
    Examples:
      bapp skills archive legacy-chatbots --yes
    """
    from bapp_cli.services.skills import archive_skill

    ask = f"Archive skill {slug.strip().lower()}?"
    _catalogue_change(ctx, "archive", archive_skill, slug, ask=ask, yes=yes, dry_run=dry_run)


@output_command(app, "list", search="slug, name or domain")
def list_command(
    ctx: typer.Context,
    page: Page,
    pathway: Annotated[str | None, typer.Option("--pathway", help="Only skills linked to this pathway.")] = None,
    tier: Annotated[
        int | None, typer.Option("--tier", min=1, max=MAX_OPTION_INT, help="Only skills at this tier.")
    ] = None,
    fundamental: Annotated[bool, typer.Option("--fundamental", help="Only fundamental skills.")] = False,
    include_archived: Annotated[bool, typer.Option("--all", help="Include archived skills.")] = False,
) -> None:
    """List skills with their pathway links.

    \b
    Examples:
      bapp skills list
      bapp skills list --pathway accelerate --tier 1
      bapp skills list --fundamental --json
      bapp skills list --search prompt --limit 20
    """
    from bapp_cli.services.plain_reads import CATALOGUE_SKILL_COLUMNS, list_skills

    only: dict[str, Any] = dict(pathway=pathway, tier=tier, fundamental=fundamental, include_archived=include_archived)
    sink, views = fetch(ctx, list_skills, page=page, plain=True, **only)
    sink.records(views, CATALOGUE_SKILL_COLUMNS, table=partial(_skill_table, views, "Skills"))


@output_command(app, "assign")
def assign(
    ctx: typer.Context,
    email: ClientArgument,
    skills: Annotated[list[str] | None, typer.Argument(help="Skill slugs (or use --pathway).")] = None,
    pathway: Annotated[
        str | None, typer.Option("--pathway", help="Every skill of this pathway (enrols the client if needed).")
    ] = None,
    tier: Annotated[
        int | None, typer.Option("--tier", min=1, max=MAX_OPTION_INT, help="With --pathway: only this tier's skills.")
    ] = None,
    status: Annotated[
        str, choice("--status", "PROGRESS_STATUSES", "Starting status: not_started, in_progress or completed.")
    ] = "not_started",
    via: Annotated[
        str | None,
        choice(
            "--via", "COMPLETION_METHODS", "With --status completed: manual, assessment, builder_validation or auto."
        ),
    ] = None,
    validated_by: Annotated[
        str | None, typer.Option("--validated-by", help="With --status completed: the validating builder's e-mail.")
    ] = None,
    note: Annotated[str | None, typer.Option("--note", help="A note kept on each progress row.")] = None,
    dry_run: DryRunOption = False,
) -> None:
    """Assign skills to a client: named skills, or every skill of a pathway (and tier). Idempotent.

    \b
    Examples:
      bapp skills assign ada@example.com --pathway accelerate --tier 1
      bapp skills assign ada@example.com prompt-design ai-safety
      bapp skills assign ada@example.com prompt-design --status completed --via assessment
    """
    from bapp_cli.services.skills import assign_skills

    def summary(record: dict[str, Any]) -> str:
        tally = f"{len(record['assigned'])} new, {len(record['updated'])} updated, {len(record['unchanged'])} unchanged"
        return f"{done('assign', dry_run)} {tally} for {record['client']}."

    options: dict[str, Any] = dict(pathway=pathway, tier=tier, status=status, via=via, validated_by=validated_by)
    _progress_change(ctx, summary, assign_skills, email, skills or [], dry_run=dry_run, note=note, **options)


def _moved(record: dict[str, Any]) -> str:
    """`skills start|complete|reset`: what happened to the skill."""
    status = record["status"]
    head = f"{SKILL_STATUS_STYLES.get(status, ('', ''))[0]} {record['skill']} for {record['client']}"
    if record["previous_status"] != status or (status == "not_started" and record["changed"]):  # a reset clears a start
        return f"{head}: {record['previous_status'] or 'new'} → {status}"
    return f"{head}: already {status}, {'note saved' if record['changed'] else 'nothing changed'}."


@output_command(app, "start")
def start(ctx: typer.Context, email: ClientArgument, skill: SkillArgument, dry_run: DryRunOption = False) -> None:
    """Mark a skill in progress for a client (assigning it if needed).

    \b
    Examples:
      bapp skills start ada@example.com prompt-design
    """
    from bapp_cli.services.skills import start_skill

    _progress_change(ctx, _moved, start_skill, email, skill, dry_run=dry_run)


@output_command(app, "complete")
def complete(
    ctx: typer.Context,
    email: ClientArgument,
    skill: SkillArgument,
    via: Annotated[
        str | None,
        choice(
            "--via",
            "COMPLETION_METHODS",
            "How it was completed: manual, assessment, builder_validation or auto "
            "[default: builder_validation with --validated-by, else manual].",
        ),
    ] = None,
    validated_by: Annotated[str | None, typer.Option("--validated-by", help="The validating builder's e-mail.")] = None,
    note: Annotated[str | None, typer.Option("--note", help="A note kept on the progress row.")] = None,
    dry_run: DryRunOption = False,
) -> None:
    """Complete a skill for a client; awards any badges and completes any pathway this finishes.

    \b
    Examples:
      bapp skills complete ada@example.com prompt-design
      bapp skills complete ada@example.com prompt-design --validated-by bob@example.com --note "great demo"
      bapp skills complete ada@example.com ai-safety --via assessment --json
    """
    from bapp_cli.services.skills import complete_skill

    _progress_change(
        ctx, _moved, complete_skill, email, skill, dry_run=dry_run, via=via, validated_by=validated_by, note=note
    )


@output_command(app, "reset")
def reset(
    ctx: typer.Context,
    email: ClientArgument,
    skill: SkillArgument,
    yes: YesOption = False,
    dry_run: DryRunOption = False,
) -> None:
    """Reset a client's skill to not_started (badges already earned are kept).

    \b
    Examples:
      bapp skills reset ada@example.com prompt-design --yes
    """
    from bapp_cli.services.skills import reset_skill

    ask = f"Reset {skill.strip().lower()} for {email.strip().lower()}?"
    _progress_change(ctx, _moved, reset_skill, email, skill, ask=ask, yes=yes, dry_run=dry_run)

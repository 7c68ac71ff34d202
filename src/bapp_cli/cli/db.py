"""`bapp db`: migrate, inspect and check the schema."""

from __future__ import annotations

from typing import Annotated

import typer

from bapp_cli.cli.context import state, state_and_sink
from bapp_cli.cli.options import YesOption, output_command, refuse_blank
from bapp_cli.errors import BappError, cut_echo

app = typer.Typer(help="Migrate and inspect the database schema.", no_args_is_help=True)


@app.command("upgrade")
def upgrade(ctx: typer.Context, revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Migrate the database to head (or REVISION); creates the SQLite file and its folder.

    \b
    Examples:
      bapp db upgrade
      bapp --database-url postgresql://bapp@localhost/bapp db upgrade
    """
    from bapp_cli.db import migration

    refuse_blank({"REVISION": revision})  # `db upgrade ' '` was Alembic's "Can't locate revision", exit 6
    app_state = state(ctx)
    before, after = migration.upgrade(app_state.engine(create_sqlite_file=True), revision, app_state.messages.warning)
    app_state.messages.info(f"Already at {after}." if before == after else f"Upgraded {before or 'base'} → {after}.")


@app.command("downgrade")
def downgrade(
    ctx: typer.Context,
    revision: Annotated[str, typer.Argument(help="Target revision, or 'base' for an empty schema.")],
    yes: YesOption = False,
) -> None:
    """Migrate the database down to REVISION (dropped tables and columns lose their data).

    Below 0010_portable_badges that includes each badge's revocation (revoked_at, its reason): a revoked
    badge counts as valid again after a downgrade and upgrade.

    \b
    Examples:
      bapp db downgrade 0005_add_skill_enhancements --yes
      bapp db downgrade base --yes
    """
    from bapp_cli.db import migration

    # a blank REVISION asked to confirm "Downgrade the database to  ?"
    refuse_blank({"REVISION": revision}, hint="`bapp db history` lists the revisions; `base` is the empty schema")
    app_state = state(ctx)
    app_state.confirm(yes, f"Downgrade the database to {cut_echo(revision)}?")
    before, after = migration.downgrade(app_state.engine(), revision)
    app_state.messages.info(f"Downgraded {before or 'base'} → {after or 'base'}.")


@output_command(app, "current")
def current(ctx: typer.Context) -> None:
    """Show the database's revision; exit 5 when it is not at head.

    \b
    Examples:
      bapp db current
      bapp db current --json
    """
    from bapp_cli.db import migration

    app_state, sink = state_and_sink(ctx)
    engine = app_state.engine()
    revision = migration.current_revision(engine)
    at_head = revision == migration.HEAD_REVISION
    sink.record({"revision": revision, "head": migration.HEAD_REVISION, "at_head": at_head})
    if not at_head:  # the refusal every other command gives (exit 5; a newer schema named as such)
        migration.ensure_at_head(engine)


@output_command(app, "history")
def history(ctx: typer.Context) -> None:
    """List the migration chain, oldest first.

    \b
    Examples:
      bapp db history
    """
    from bapp_cli.db import migration

    state(ctx).output().records(migration.history(), ["revision", "down_revision", "description", "is_head"])


@output_command(app, "check")
def check(ctx: typer.Context) -> None:
    """Compare the models with the migrated database; exit 1 on any drift.

    \b
    Examples:
      bapp db check
    """
    from bapp_cli.db import migration

    app_state, sink = state_and_sink(ctx)
    drift = migration.schema_drift(app_state.engine())
    sink.records([{"difference": item} for item in drift], ["difference"])
    if drift:
        raise BappError(f"the database schema differs from the models in {len(drift)} places", code="schema_drift")
    sink.info("No drift: the models and the migrations agree.")

"""`bapp config`: create, show and edit the TOML config file (mode 0600; secrets never shown)."""

from __future__ import annotations

from typing import Annotated

import typer

from bapp_cli.cli.context import state
from bapp_cli.cli.options import output_command, zone
from bapp_cli.errors import quoted

app = typer.Typer(help="Create, show and edit the configuration.", no_args_is_help=True)


@app.command("init")
def init(
    ctx: typer.Context,
    database_url: Annotated[str | None, typer.Option("--database-url", help="Database URL to store.")] = None,
    calendly_token_file: Annotated[
        str | None, typer.Option("--calendly-token-file", help="File holding the Calendly token.")
    ] = None,
    timezone: Annotated[str | None, zone("Default IANA time zone.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Create the config file (mode 0600).

    \b
    Examples:
      bapp config init --timezone Europe/London --calendly-token-file ~/.calendly-token
      bapp --config ./bapp.toml config init --database-url sqlite:///./bapp.db
    """
    from bapp_cli.config import init_config_file

    app_state = state(ctx)
    given = {"database_url": database_url, "timezone": timezone, "calendly.token_file": calendly_token_file}
    init_config_file(app_state.config_path, given, force=force)
    app_state.messages.info(f"Wrote {app_state.config_path}")


@output_command(app, "show")
def show(ctx: typer.Context) -> None:
    """Show every setting with its value and source (secrets as ****).

    A setting that is not valid is shown all the same, and named on stderr with its file or variable;
    so is a key in the file that bapp does not know (a typo). --format/--json choose how this listing is
    printed; the `format` row is the setting other commands use when given neither.

    \b
    Examples:
      bapp config show
      bapp config show --json
    """
    app_state = state(ctx)
    settings = app_state.unchecked_settings
    sink = app_state.output(check_settings=False)
    sink.records(settings.display_rows(), ["key", "value", "source"])
    # The settings are shown even when one is wrong, so it can be found; each wrong one is named here.
    for problem in settings.problems():
        sink.warning(f"not valid: {problem.describe(settings)}")
    for key in settings.unknown_file_keys():
        sink.warning(f"config file {settings.config_path}: unknown key {quoted(key)} (ignored)")


@app.command("set")
def set_value(
    ctx: typer.Context,
    key: Annotated[str, typer.Argument(help="Setting, e.g. timezone or calendly.base_url.")],
    value: Annotated[str, typer.Argument(help="New value.")],
) -> None:
    """Store a setting in the config file (secrets are refused: use env or a token file).

    The value is checked first (exit 6): format, time zone, database URL form, http(s) URLs for
    calendly.base_url/user/organization, a regular expression for calendly.pathway_question, auto,
    always or never for bookings.calendly, a number of hours for calendly.reconcile_give_up_hours, of
    seconds for busy_timeout.
    A file setting (*_file) is stored as an absolute path, from the directory the command runs in.

    \b
    Examples:
      bapp config set timezone Europe/London
      bapp config set calendly.token_file /etc/bapp/calendly-token
    """
    from bapp_cli.config import set_config_values

    app_state = state(ctx)
    set_config_values(app_state.config_path, {key: value})
    app_state.messages.info(f"Set {key} in {app_state.config_path}")


@app.command("unset")
def unset_value(ctx: typer.Context, key: Annotated[str, typer.Argument(help="Setting to remove.")]) -> None:
    """Remove a setting from the config file.

    \b
    Examples:
      bapp config unset calendly.user
    """
    from bapp_cli.config import unset_config_value

    app_state = state(ctx)
    removed = unset_config_value(app_state.config_path, key)
    app_state.messages.info(f"{'Removed' if removed else 'Not set:'} {key}")


@app.command("path")
def path(ctx: typer.Context) -> None:
    """Print the config file's path.

    \b
    Examples:
      bapp config path
    """
    from bapp_cli.cli.terminal import visible

    typer.echo(visible(str(state(ctx).config_path)))

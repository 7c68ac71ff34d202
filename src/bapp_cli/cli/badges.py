"""`bapp badges`: the permanent achievements a client has earned."""

from __future__ import annotations

from typing import Annotated

import typer

from bapp_cli.cli.context import state
from bapp_cli.cli.options import FormatOption, JsonOption, LimitOption, OffsetOption, search_option

app = typer.Typer(help="List the badges clients have earned.", no_args_is_help=True)


@app.command("list")
def list_command(
    ctx: typer.Context,
    email: Annotated[str, typer.Argument(help="Client e-mail.")],
    search: Annotated[str | None, search_option("the badge key")] = None,
    limit: LimitOption = None,
    offset: OffsetOption = 0,
    fmt: FormatOption = None,
    as_json: JsonOption = False,
) -> None:
    """List a client's badges, oldest first.

    \b
    Examples:
      bapp badges list ada@example.com
      bapp badges list ada@example.com --json
    """
    from bapp_cli.services.listing import Page
    from bapp_cli.services.progress import BADGE_COLUMNS, list_badges

    app_state = state(ctx)
    sink = app_state.output(fmt, as_json)
    with app_state.reading() as session:
        badges = list_badges(session, email, page=Page(limit=limit, offset=offset, search=search))
    sink.records([badge.as_record() for badge in badges], BADGE_COLUMNS, title=f"Badges of {email.strip().lower()}")

"""`bapp sessions available`: what an anonymous visitor or a given client may book.

It adds a command to the `sessions` group of `cli/sessions.py`; `cli/app.py` imports this module so the
command registers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from bapp_cli.cli.options import output_command
from bapp_cli.cli.sessions import app
from bapp_cli.cli.terminal import listing_table
from bapp_cli.cli.unit_of_work import reading

if TYPE_CHECKING:
    from bapp_cli.cli.output import OutputSink
    from bapp_cli.services.availability import Availability


def _render(availability: Availability, sink: OutputSink, console: Any) -> None:
    who = availability.client or "an anonymous visitor (no account)"
    console.print(f"Sessions available to {who}", markup=False)
    groups = availability.grouped()
    if not groups:
        console.print("(no sessions)")
    for heading, records in groups:
        headers = ("id", "title", "minutes", "price", "pathways", "builder", "account")
        table = listing_table(heading, headers, title_justify="left")
        for record in records:
            options = record["duration_options"] or []
            minutes = "/".join(str(value) for value in sorted({record["duration_minutes"], *options}))
            table.add_row(
                str(record["id"]),
                record["title"],
                minutes,
                "free" if not record["price"] else f"{record['price']:.2f} {record['currency']}",
                sink.display_value(record["pathways"]),
                sink.display_value(record["builder"]),
                "needed" if record["requires_auth"] else "not needed",
            )
        console.print(table, markup=False)


@output_command(app, "available")
def available(
    ctx: typer.Context,
    client: Annotated[str | None, typer.Option("--client", help="What this client (with an account) may book.")] = None,
    anonymous: Annotated[
        bool, typer.Option("--anonymous", help="What someone without an account may book (the default).")
    ] = False,
    pathway: Annotated[str | None, typer.Option("--pathway", help="Limit pathway sessions to this pathway's.")] = None,
    category: Annotated[str | None, typer.Option("--category", help="free, pathway or specialized.")] = None,
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
    from bapp_cli.errors import UsageError
    from bapp_cli.services.availability import AVAILABLE_COLUMNS, list_available_sessions

    if client is not None and anonymous:
        raise UsageError("--client and --anonymous cannot be used together")
    with reading(ctx) as (sink, session):
        availability = list_available_sessions(
            session, client_email=client, pathway=pathway, category=category, builder_email=builder
        )
    sink.records(availability.sessions, AVAILABLE_COLUMNS, table=lambda console: _render(availability, sink, console))

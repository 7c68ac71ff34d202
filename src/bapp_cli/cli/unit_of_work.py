"""The shapes of a command's database work: one read (through the ORM, or plain), or one change.

Each opens the output first, so a bad --format fails before the database is touched; the command renders
after the block, once a change is committed (or rolled back by --dry-run). `apply` is the change most
commands make, `fetch` the read most make: one service call in the transaction.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import typer

from bapp_cli.cli.context import state_and_sink, utc_now

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from bapp_cli.cli.output import OutputSink


def reading(ctx: typer.Context) -> contextlib.AbstractContextManager[tuple[OutputSink, Session]]:
    return changing(ctx, write=False)


@contextlib.contextmanager
def changing(
    ctx: typer.Context, *, dry_run: bool = False, ask: str | None = None, yes: bool = False, write: bool = True
) -> Iterator[tuple[OutputSink, Session]]:
    """`ask`: the question to confirm (unless `yes`; a dry run is not asked) before the transaction opens;
    `write=False`: a read."""
    app_state, sink = state_and_sink(ctx)
    if ask is not None:
        app_state.confirm(yes, ask, dry_run=dry_run)
    with app_state.transaction(dry_run=dry_run, write=write) as session:
        yield sink, session
    said_dry_run(sink, dry_run)


def said_dry_run(sink: OutputSink, dry_run: bool) -> None:
    if dry_run:  # the output is the record a real run prints: only this line tells a script nothing was written
        sink.notice("Dry run: nothing was written.")


def done(verb: str, dry_run: bool) -> str:
    """How a change's line says `verb` (add, update, enroll…): "Would add" on a dry run, which wrote nothing, else
    "Added"."""
    return f"Would {verb}" if dry_run else verb.capitalize() + ("d" if verb.endswith("e") else "ed")


def pathway_completed(slug: str, dry_run: bool) -> str:
    """The line of an enrolment a change completed (or would, on a dry run): `skills`', `bookings create`'s and
    `clients enroll`'s."""
    return f"🎉 Pathway{' would be' if dry_run else ''} completed: {slug}"


def fetch(
    ctx: typer.Context, query: Any, *arguments: Any, plain: bool = False, **options: Any
) -> tuple[OutputSink, Any]:
    """`query(session, *arguments, **options)` in the command's read-only transaction; the sink and its result.
    With `plain`, on a plain DB-API connection instead, without SQLAlchemy (`services.plain_reads`): a look-up
    starts fast."""
    app_state, sink = state_and_sink(ctx)
    with app_state.plain_reading() if plain else app_state.transaction(write=False) as session:
        return sink, query(session, *arguments, **options)


def apply(ctx: typer.Context, change: Any, *arguments: Any, **options: Any) -> tuple[OutputSink, Any]:
    """`change(session, *arguments, now=…, **options)` as the command's one transaction; the sink and its result.
    `dry_run`, `ask` and `yes` among the options are the transaction's (`changing`), not the service's."""
    transaction = {name: options.pop(name) for name in ("dry_run", "ask", "yes") if name in options}
    with changing(ctx, **transaction) as (sink, session):
        return sink, change(session, *arguments, now=utc_now(), **options)

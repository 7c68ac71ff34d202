"""`bapp sessions`: the catalogue of bookable session types (admin view and availability)."""

from __future__ import annotations

import typer

app = typer.Typer(help="List, show, add and curate session types; see what a client may book.", no_args_is_help=True)

"""Option declarations shared by many commands, so every command spells them the same way."""

from __future__ import annotations

from typing import Annotated

import typer

FormatOption = Annotated[
    str | None,
    typer.Option(
        "--format",
        "-f",
        help="Output format: table, json, jsonl, csv or tsv "
        "[default: table on a terminal, tsv when piped; env BAPP_FORMAT].",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Same as --format json.")]
DryRunOption = Annotated[bool, typer.Option("--dry-run", help="Check and report everything, then roll back.")]
YesOption = Annotated[bool, typer.Option("--yes", "-y", help="Confirm without asking.")]

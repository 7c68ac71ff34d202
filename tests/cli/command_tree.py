"""Every leaf command of `bapp`, walked from the Click command Typer builds — so tests that must cover every
command (the R9 property test, the listing options) pick new commands up by themselves."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def leaf_commands() -> Iterator[tuple[tuple[str, ...], Any]]:
    """(command words, Click command) for each command that is not a group, e.g. (("clients", "list"), cmd)."""
    import typer

    from bapp_cli.cli.app import app

    def walk(command: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any]]:
        children = getattr(command, "commands", None)
        if children:
            for name, child in children.items():
                yield from walk(child, (*path, name))
        else:
            yield path, command

    yield from walk(typer.main.get_command(app), ())

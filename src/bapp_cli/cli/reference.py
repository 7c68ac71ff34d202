"""The generated command reference (docs/cli.md): every command's plain help, as `--help` prints it.

`make docs` writes it; a test fails when docs/cli.md differs from what the commands say, so the
reference cannot drift from the code.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

WIDTH = 100


def _walk(command: Any, context: Any, path: list[str]) -> Iterator[tuple[list[str], Any, Any]]:
    yield path, command, context
    for name, child in (getattr(command, "commands", None) or {}).items():
        if getattr(child, "hidden", False):
            continue
        child_context = child.make_context(name, [], parent=context, resilient_parsing=True)
        yield from _walk(child, child_context, [*path, name])


def commands() -> list[tuple[list[str], Any, Any]]:
    import typer.main

    from bapp_cli.cli.app import app

    root = typer.main.get_command(app)
    root_context = root.make_context("bapp", [], resilient_parsing=True, terminal_width=WIDTH, max_content_width=WIDTH)
    return list(_walk(root, root_context, []))


def render() -> str:
    """The whole reference as Markdown (plain help, fixed width, so it is stable across terminals)."""
    from unittest import mock

    with mock.patch.dict(os.environ, {"COLUMNS": str(WIDTH)}):  # restored afterwards, set or not
        parts = [
            "# bapp command reference\n",
            "Generated from the commands' own help by `make docs`; a test keeps it current. "
            "Global options go before the group (`bapp --json …` is wrong, `bapp --timezone Europe/London "
            "bookings list` is right); `--format/--json` go after the command.\n",
        ]
        index = ["## Commands\n"]
        sections = []
        for path, command, context in commands():
            title = " ".join(["bapp", *path])
            anchor = title.replace(" ", "-")
            summary = command.get_short_help_str(limit=120) if path else "the root command"
            if not path or getattr(command, "commands", None) is None:  # the root, and every command but groups
                index.append(f"- [`{title}`](#{anchor}) — {summary}")
            help_text = command.get_help(context).rstrip()
            sections.append(f'<a id="{anchor}"></a>\n## `{title}`\n\n```text\n{help_text}\n```\n')
        return "\n".join(parts) + "\n" + "\n".join(index) + "\n\n" + "\n".join(sections)


if __name__ == "__main__":
    import sys

    sys.stdout.write(render())

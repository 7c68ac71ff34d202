"""Shell completion answered from the command index (see command_index.py), without loading Typer.

It follows Click's rules, which Typer's own completion uses: option names when the word starts with a
dash (each once, unless it may repeat), an option's values right after it, subcommand names in a group,
and argument values in a command. Database-backed values come from completion_values.py. A test checks
these answers against Typer's for the same command lines.
"""

from __future__ import annotations

import contextlib
import os
import shlex
from collections.abc import Sequence
from typing import Any

from bapp_cli.cli.completion_values import value_kind, values_for

Item = tuple[str, str]  # (value, help)


def split_words(line: str) -> list[str]:
    try:
        return shlex.split(line)
    except ValueError:  # an unterminated quote while typing: complete what can be read
        lexer = shlex.shlex(line, posix=True)
        lexer.whitespace_split = True
        words: list[str] = []
        with contextlib.suppress(ValueError):
            words.extend(lexer)  # the words before the unreadable one stay
        return words


def _option(node: dict[str, Any], name: str) -> dict[str, Any] | None:
    option: dict[str, Any]
    for option in node["options"]:
        if name in option["opts"] or name in option["secondary"]:
            return option
    return None


def complete(tree: dict[str, Any], args: Sequence[str], incomplete: str) -> list[Item]:
    node = tree
    path: list[str] = []
    used: set[str] = set()
    positional = 0
    pending: dict[str, Any] | None = None  # an option still waiting for its value
    only_arguments = False
    for arg in args:
        if pending is not None:
            pending = None
            continue
        if arg == "--" and not only_arguments:
            only_arguments = True
            continue
        if arg.startswith("-") and not only_arguments and len(arg) > 1:
            name = arg.split("=", 1)[0]
            option = _option(node, name)
            if option is not None:
                used.add(option["name"])
                if option["takes_value"] and "=" not in arg:
                    pending = option
            continue
        if "commands" in node:
            child = node["commands"].get(arg)
            if child is None:
                break  # as Click does: an unknown name leaves completion at this group
            node, used, positional = child, set(), 0
            path.append(arg)
            continue
        positional += 1

    if incomplete == "=":
        incomplete = ""
    elif "=" in incomplete and incomplete.startswith("-"):
        name, _, incomplete = incomplete.partition("=")
        option = _option(node, name)
        return _values(option, path, incomplete, args) if option else []

    if not only_arguments and incomplete.startswith("-"):
        return _option_names(node, used, incomplete)
    if pending is not None:
        return _values(pending, path, incomplete, args)

    items: list[Item] = []
    if "commands" in node:
        items = [(name, child["help"]) for name, child in node["commands"].items() if name.startswith(incomplete)]
    else:
        argument = _argument_at(node, positional)
        if argument is not None:
            items = _values(argument, path, incomplete, args)
    if incomplete and not incomplete[0].isalnum():
        items.extend(_option_names(node, used, incomplete))
    return items


def _argument_at(node: dict[str, Any], position: int) -> dict[str, Any] | None:
    index = 0
    argument: dict[str, Any]
    for argument in node["arguments"]:
        if argument["nargs"] == -1:
            return argument
        index += max(argument["nargs"], 1)
        if position < index:
            return argument
    return None


def _option_names(node: dict[str, Any], used: set[str], incomplete: str) -> list[Item]:
    return [
        (name, option["help"])
        for option in node["options"]
        if not option["hidden"] and (option["multiple"] or option["name"] not in used)
        for name in [*option["opts"], *option["secondary"]]
        if name.startswith(incomplete)
    ]


def _values(param: dict[str, Any], path: Sequence[str], incomplete: str, args: Sequence[str]) -> list[Item]:
    if param.get("choices"):
        return [(choice, "") for choice in param["choices"] if choice.startswith(incomplete)]
    kind = value_kind(path, param["name"])
    if kind is None:
        return []
    return [(value, "") for value in values_for(kind, incomplete, args)]


# -- the shells' protocols (as Typer's completion scripts call them) --------------------------------


def request(shell: str) -> tuple[list[str], str] | None:
    """The words before the cursor and the word being completed; None for shells left to Typer."""
    if shell == "complete_bash":
        words = split_words(os.environ.get("COMP_WORDS", ""))
        try:
            cword = int(os.environ.get("COMP_CWORD", "0"))
        except ValueError:
            return None
        incomplete = words[cword] if cword < len(words) else ""
        return words[1:cword], incomplete
    if shell == "complete_zsh":
        line = os.environ.get("_TYPER_COMPLETE_ARGS", "")
        words = split_words(line)[1:]
        if words and not line.endswith(" "):
            return words[:-1], words[-1]
        return words, ""
    return None


def _zsh_escape(text: str) -> str:
    return text.replace('"', '""').replace("'", "''").replace("$", "\\$").replace("`", "\\`").replace(":", r"\\:")


def render(shell: str, items: list[Item]) -> str:
    """Bash wants one value per line; zsh an _arguments spec with help (as Typer's scripts expect)."""
    if shell == "complete_bash":
        return "".join(f"{value}\n" for value, _ in items) or "\n"
    if not items:
        return "_files\n"
    lines = [
        f'"{_zsh_escape(value)}":"{_zsh_escape(help_text)}"' if help_text else f'"{_zsh_escape(value)}"'
        for value, help_text in items
    ]
    return "_arguments '*: :((" + "\n".join(lines) + "))'\n"


SHELLS = ("complete_bash", "complete_zsh")

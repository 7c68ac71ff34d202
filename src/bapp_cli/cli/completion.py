"""Shell completion answered from the command index (see command_index.py), without loading Typer.

It follows Click's rules, which Typer's own completion uses: option names when the word starts with a
dash (each once, unless it may repeat), an option's values right after it, subcommand names in a group,
and argument values in a command. A test checks these answers against Typer's for the same command lines.

Database-backed values come from the queries at the end of this module, read from the local database only
(never the network): completion must answer in milliseconds and never fail, so they use the standard
library's sqlite3 (read-only) or psycopg directly, no SQLAlchemy, and any problem yields no values.
"""

from __future__ import annotations

import contextlib
import os
import shlex
from collections.abc import Sequence
from typing import Any

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
    return next((option for option in node["options"] if name in option["opts"]), None)


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

    if "commands" in node:
        items = [(name, child["help"]) for name, child in node["commands"].items() if name.startswith(incomplete)]
    else:
        argument = _argument_at(node, positional)
        items = [] if argument is None else _values(argument, path, incomplete, args)
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
        for name in option["opts"]
        if name.startswith(incomplete)
    ]


def _values(param: dict[str, Any], path: Sequence[str], incomplete: str, args: Sequence[str]) -> list[Item]:
    if param.get("choices"):
        return [(choice, "") for choice in param["choices"] if choice.startswith(incomplete)]
    if param.get("domain"):
        return [(value, "") for value in domain_values(param["domain"], incomplete)]
    kind = value_kind(path, param["name"])
    return [(value, "") for value in values_for(kind, incomplete, args)] if kind is not None else []


# -- the shells' protocols (as Typer's completion scripts call them) --------------------------------


def request(shell: str) -> tuple[list[str], str] | None:
    """The words before the cursor and the word being completed; None for shells left to Typer (a surprise,
    such as a COMP_CWORD that is not a number, raises: the launcher then hands over to Typer as well)."""
    if shell == "complete_bash":
        words = split_words(os.environ.get("COMP_WORDS", ""))
        cword = int(os.environ.get("COMP_CWORD", "0"))  # not a number: the launcher leaves it to Typer
        return words[1:cword], (words[cword] if cword < len(words) else "")
    if shell == "complete_zsh":
        line = os.environ.get("_TYPER_COMPLETE_ARGS", "")
        words = split_words(line)[1:]
        return (words[:-1], words[-1]) if words and not line.endswith(" ") else (words, "")
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


# -- database-backed values ---------------------------------------------------------------------------

LIMIT = 500

# value kind → query (each returns one text column)
QUERIES = {
    "client": "SELECT u.email FROM users u JOIN client_profiles c ON c.user_id = u.id ORDER BY u.email",
    "builder": "SELECT u.email FROM users u JOIN builder_profiles b ON b.user_id = u.id ORDER BY u.email",
    "pathway": "SELECT slug FROM pathways WHERE NOT archived ORDER BY position, slug",
    "session": "SELECT slug FROM session_types WHERE slug IS NOT NULL GROUP BY slug ORDER BY slug",
    "skill": "SELECT slug FROM skills WHERE NOT archived ORDER BY slug",
    "booking": "SELECT reference FROM bookings ORDER BY start_time DESC",
}
FORMATS = ("table", "json", "jsonl", "csv", "tsv")  # --format's


# parameter name → kind of value, where the name alone decides (the others: `value_kind`)
PARAM_KINDS = {"fmt": "format", "format": "format", "builder": "builder"}
PARAM_KINDS |= {"validated_by": "builder", "pathway": "pathway", "pathways": "pathway", "session": "session"}
PARAM_KINDS |= {"skill": "skill", "skills": "skill", "reference": "booking", "ref": "booking"}


def value_kind(command_path: Sequence[str], param_name: str) -> str | None:
    """Which kind of value a parameter takes, from its name (and its group where names are shared)."""
    group = command_path[0] if command_path else ""
    if param_name in ("client", "email"):
        if group == "builders":
            return "builder"
        return None if list(command_path[:2]) == ["clients", "add"] else "client"  # a new address: nothing to offer
    if param_name == "slug":
        return {"pathways": "pathway", "skills": "skill"}.get(group)
    return PARAM_KINDS.get(param_name)


def domain_values(domain: str, incomplete: str) -> list[str]:
    """The names `bapp_cli.db.domains.<domain>` holds that start with `incomplete` in any case, as the option reads
    it: the values of an option that takes one of them (`cli.options.one_of`), read as the value is completed, so
    that start-up imports no bapp_cli.db. Each as stored only: `no_show`, never its other spelling `no-show` too
    (one status offered twice, where every output writes no_show), which the option takes all the same; a `-`
    typed (`no-`) is read as the `_` of the name it begins."""
    from bapp_cli.db import domains

    return [name for name in getattr(domains, domain) if name.startswith(incomplete.lower().replace("-", "_"))]


def database_url_from(args: Sequence[str]) -> str | None:
    """The database URL the command line being completed would use."""
    given: dict[str, str] = {}  # the last of each, as Click takes it
    for index, arg in enumerate(args):
        name, equals, value = arg.partition("=")
        if name in ("--database-url", "--config") and (equals or index + 1 < len(args)):
            given[name] = value if equals else args[index + 1]
    if "--database-url" in given:
        return given["--database-url"]
    try:
        from bapp_cli.config import resolve_settings

        return resolve_settings(config_path=given.get("--config"), flags={}).database_url
    except Exception:  # completion never fails: a broken config just means no values
        return None


def values_for(kind: str, incomplete: str, args: Sequence[str]) -> list[str]:
    if kind == "format":
        return [value for value in FORMATS if value.startswith(incomplete.lower())]
    query = QUERIES.get(kind)
    url = database_url_from(args)
    if query is None or not url:
        return []
    try:
        rows = _fetch(url, f"{query} LIMIT {LIMIT * 4}")
    except Exception:  # a missing, locked or unmigrated database offers nothing
        return []
    lowered = incomplete.lower()
    return [value for value in rows if value and value.lower().startswith(lowered)][:LIMIT]


def _fetch(url: str, query: str) -> list[str]:
    """The first column of `query`, waiting half a second at most for another writer's lock (not a command's
    busy_timeout: a TAB that waits is worse than one that offers nothing); SQLite opened read-only."""
    from bapp_cli.db.dbapi import Database, connect_postgresql, sqlite_file

    if url.startswith("postgres"):
        database = connect_postgresql(url, connect_timeout=2, over_the_url=True, busy_timeout_ms=500)
    else:
        path = sqlite_file(url)
        if path is None or not path.exists():
            return []
        import sqlite3

        # as a URI (quoted): a `%`, `?` or `#` in the path was read as URI syntax, another file's name or none
        database = Database(sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True, timeout=0.5), "sqlite")
    with contextlib.closing(database):
        return [str(row[0]) for row in database.rows(query)]

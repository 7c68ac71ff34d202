"""An index of the command tree (names, options, arguments, help), cached for fast start-up.

`bapp --help` piped and shell completion run on every Tab press; loading Typer and its dependencies
for them costs more than the answer. The launcher answers both from this index instead. The index is
built from the real Typer app (never written by hand) the first time it is needed, and cached under the
user cache directory keyed by a fingerprint of the command modules, Typer and Python: any change to a
command rebuilds it, so it cannot go stale.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import sys
from pathlib import Path
from typing import Any

from bapp_cli import __version__

INDEX_FORMAT = 4  # 3: an option's secondary names (`--no-totals`) are among its opts; 4: the `domain` of one_of's


def fingerprint() -> str:
    """Changes whenever a command module, Typer or Python changes."""
    import importlib.util

    digest = hashlib.blake2b(digest_size=12)
    digest.update(f"{INDEX_FORMAT}|{__version__}|{sys.version}".encode())
    cli_dir = Path(__file__).resolve().parent
    for path in sorted(cli_dir.glob("*.py")):
        stat = path.stat()
        digest.update(f"{path.name}:{stat.st_mtime_ns}:{stat.st_size}".encode())
    spec = importlib.util.find_spec("typer")
    if spec is not None and spec.origin:
        digest.update(f"typer:{spec.origin}:{os.stat(spec.origin).st_mtime_ns}".encode())
    return digest.hexdigest()


def cache_path() -> Path:
    from bapp_cli.config import cache_directory

    return cache_directory() / f"command-index-{fingerprint()}.json"


def load() -> dict[str, Any] | None:
    try:
        data = json.loads(cache_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("format") == INDEX_FORMAT else None


def save(index: dict[str, Any]) -> None:
    """Atomically write the index; an unwritable cache only means no fast path."""
    path = cache_path()
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps(index), encoding="utf-8")
        os.replace(temporary, path)
        for stale in path.parent.glob("command-index-*.json"):
            if stale != path:
                stale.unlink(missing_ok=True)


def build() -> dict[str, Any]:
    """The tree of commands (help, options, arguments and subcommands of each), as the reference walks it."""
    from bapp_cli.cli.reference import commands

    nodes: dict[tuple[str, ...], dict[str, Any]] = {}
    for path, command, context in commands():
        node: dict[str, Any] = {"help": command.get_short_help_str(limit=300), "options": [], "arguments": []}
        # get_params with a context includes what Click adds at run time (the -h/--help option)
        for param in command.get_params(context):
            choices = getattr(getattr(param, "type_descriptor", None), "choices", None)
            entry = {
                "name": param.name,
                "opts": [*param.opts, *getattr(param, "secondary_opts", [])],
                "nargs": param.nargs,
                "multiple": bool(getattr(param, "multiple", False)),
                "hidden": bool(getattr(param, "hidden", False)),
                "choices": [str(getattr(choice, "value", choice)) for choice in choices] if choices else None,
                "domain": getattr(param.callback, "domain", None),  # one of these names (`cli.options.one_of`)
            }
            if param.param_type_name == "option":
                entry["help"] = param.help or ""
                entry["takes_value"] = not (param.is_flag or getattr(param, "count", False))
            node["options" if param.param_type_name == "option" else "arguments"].append(entry)
        if getattr(command, "commands", None) is not None:
            node["commands"] = {}  # filled as the walk reaches each subcommand, in order
        if path:
            nodes[tuple(path[:-1])]["commands"][path[-1]] = node
        nodes[tuple(path)] = node
    return {"format": INDEX_FORMAT, "tree": nodes[()], "help": {}}


def root_help(index: dict[str, Any]) -> str:
    """Exactly what `bapp --help` prints with stdout piped, for this width (piped help depends only on the width
    the formatter sees: COLUMNS, else 80); rendered and cached on first use."""
    key = os.environ.get("COLUMNS", "")
    text = index["help"].get(key)
    if text is None:
        from bapp_cli.cli.app import main

        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer), contextlib.suppress(SystemExit):
            main(["--help"])
        text = index["help"][key] = buffer.getvalue()
        save(index)
    return str(text)


def load_or_build() -> dict[str, Any]:
    index = load()
    if index is None:
        index = build()
        save(index)
    return index

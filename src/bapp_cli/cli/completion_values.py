"""Values for shell completion, read from the local database only (never the network).

Completion must answer in milliseconds and never fail: this module uses the standard library's
sqlite3 (read-only) or psycopg directly, no SQLAlchemy, and any problem yields no values.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

LIMIT = 500
FORMAT_CHOICES = ("table", "json", "jsonl", "csv", "tsv")
CATEGORY_CHOICES = ("free", "pathway", "specialized")

# value kind → query (each returns one text column)
QUERIES = {
    "client": "SELECT u.email FROM users u JOIN client_profiles c ON c.user_id = u.id ORDER BY u.email",
    "builder": "SELECT u.email FROM users u JOIN builder_profiles b ON b.user_id = u.id ORDER BY u.email",
    "pathway": "SELECT slug FROM pathways WHERE archived = {false} ORDER BY position, slug",
    "session": "SELECT slug FROM session_types WHERE slug IS NOT NULL GROUP BY slug ORDER BY slug",
    "skill": "SELECT slug FROM skills WHERE archived = {false} ORDER BY slug",
    "booking": "SELECT reference FROM bookings ORDER BY start_time DESC",
}
STATIC = {"format": FORMAT_CHOICES, "category": CATEGORY_CHOICES}


def value_kind(command_path: Sequence[str], param_name: str) -> str | None:
    """Which kind of value a parameter takes, from its name (and its group where names are shared)."""
    group = command_path[0] if command_path else ""
    if param_name in ("fmt", "format", "output_format", "input_format"):
        return "format" if param_name in ("fmt", "format") else None
    if param_name == "category":
        return "category"
    if param_name in ("builder", "validated_by"):
        return "builder"
    if param_name in ("client", "email"):
        if group == "builders":
            return "builder"
        if list(command_path[:2]) in (["clients", "add"],):
            return None  # a new address: nothing to offer
        return "client"
    if param_name in ("pathway", "pathways"):
        return "pathway"
    if param_name in ("session",):
        return "session"
    if param_name in ("skill", "skills"):
        return "skill"
    if param_name == "slug":
        return {"pathways": "pathway", "skills": "skill"}.get(group)
    if param_name in ("reference", "ref"):
        return "booking"
    return None


def database_url_from(args: Sequence[str]) -> str | None:
    """The database URL the command line being completed would use."""
    for index, arg in enumerate(args):
        if arg == "--database-url" and index + 1 < len(args):
            return args[index + 1]
        if arg.startswith("--database-url="):
            return arg.split("=", 1)[1]
    try:
        from bapp_cli.config import resolve_settings

        config_path = None
        for index, arg in enumerate(args):
            if arg == "--config" and index + 1 < len(args):
                config_path = args[index + 1]
        return resolve_settings(config_path=config_path, flags={}).database_url
    except Exception:  # completion never fails: a broken config just means no values
        return None


def values_for(kind: str, incomplete: str, args: Sequence[str]) -> list[str]:
    if kind in STATIC:
        return [value for value in STATIC[kind] if value.startswith(incomplete)]
    query = QUERIES.get(kind)
    url = database_url_from(args)
    if query is None or not url:
        return []
    try:
        rows = _fetch(url, query)
    except Exception:  # a missing, locked or unmigrated database offers nothing
        return []
    lowered = incomplete.lower()
    return [value for value in rows if value and value.lower().startswith(lowered)][:LIMIT]


def _fetch(url: str, query: str) -> list[str]:
    if url.startswith("sqlite:///"):
        import sqlite3

        path = url[len("sqlite:///") :].split("?", 1)[0]
        if not path or not os.path.exists(path):
            return []
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=0.5)
        try:
            return [row[0] for row in connection.execute(query.format(false="0") + f" LIMIT {LIMIT * 4}")]
        finally:
            connection.close()
    if url.startswith(("postgresql", "postgres")):
        import psycopg

        plain = "postgresql://" + url.split("://", 1)[1]
        with psycopg.connect(plain, connect_timeout=2) as server:
            cursor = server.execute(query.format(false="false") + f" LIMIT {LIMIT * 4}")
            return [str(row[0]) for row in cursor.fetchall()]
    return []

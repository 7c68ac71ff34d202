"""Bulk import and export (`bapp import KIND PATH|-`, `bapp export KIND`), and full backups (`all`).

Contract:
- `import_data` reads a `Source` (CSV, TSV, JSON, JSONL or TOML; see `formats`) and applies it in the
  caller's one transaction. Rows are validated in batches with pydantic and the services' own rule
  functions, matched on each kind's natural key (upsert), and written set-based. The result counts
  `created / updated / unchanged / rejected`. Any bad row refuses the whole import (InvalidInput, exit 6)
  listing every bad row with its line and field — unless `continue_on_error`, when the good rows stay and
  the bad ones go to the rejects sink. One audit row records each import.
- `export_data` streams every record of a kind (or of every kind, for `all`) to a text stream.
- `all` is one JSON or TOML document holding every kind, in dependency order. Imported into an empty
  database it is a restore: ids and creation times are kept (PostgreSQL sequences are moved past them), so
  a backup moves a database from SQLite to PostgreSQL and back exactly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bapp_cli.services.transfer.kinds import KINDS, export_data, import_data

__all__ = ["KINDS", "export_data", "import_data"]


def __getattr__(name: str) -> Any:
    # Loaded on first use: the kinds import SQLAlchemy, and `export bookings` uses `formats` alone.
    if name in __all__:
        from bapp_cli.services.transfer import kinds

        return getattr(kinds, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""Bulk import and export (`bapp import KIND PATH|-`, `bapp export KIND`), and full backups (`all`).

Contract:
- `import_data` reads a `Source` (CSV, TSV, JSON, JSONL or TOML; see `formats`) and applies it in the
  caller's one transaction. Rows are validated in batches with pydantic and the services' own rule
  functions, matched on each kind's natural key (upsert), and written set-based. The result counts
  `created / updated / unchanged / rejected`. Any bad row refuses the whole import (InvalidInput, exit 6)
  listing every bad row with its line and field — unless `continue_on_error`, when the good rows stay and
  the bad ones go to the rejects sink. One audit row records each import.
- `export_data` streams every record of a kind (or of every kind, for `all`) to a text stream.
- Both live in `kinds`, imported from there: this package imports nothing itself, so `export bookings`
  (services.plain_reads) reads `formats` without loading the import machinery and SQLAlchemy.
- `all` is one JSON or TOML document holding every kind, in dependency order. Imported into an empty
  database it is a restore: ids and creation times are kept (PostgreSQL sequences are moved past them), so
  a backup moves a database from SQLite to PostgreSQL and back exactly.
"""

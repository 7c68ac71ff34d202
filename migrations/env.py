"""Alembic environment: run on the connection bapp hands over (see bapp_cli.db.migration)."""

from __future__ import annotations

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `bapp db …`, which provides the connection")

# No target_metadata: only autogenerate reads it, and loading the models for it cost every `db upgrade` a
# tenth of its run; `bapp db check` compares the models with the database itself (bapp_cli.db.migration.schema_drift).
context.configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()

"""Alembic environment: run on the connection bapp hands over (see bapp_cli.db.migration)."""

from __future__ import annotations

from alembic import context

from bapp_cli.db.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `bapp db …`, which provides the connection")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()

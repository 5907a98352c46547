"""Alembic environment: always given a live connection by stemhub.migrations.upgrade."""

from __future__ import annotations

from alembic import context

# importing these modules adds their tables to the metadata
import stemhub.outbox
import stemhub.rate_windows  # noqa: F401
from stemhub._store import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through stemhub.migrations.upgrade(connection)")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()

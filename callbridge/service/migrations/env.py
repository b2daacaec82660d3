"""Alembic's environment: always run on the connection ``callbridge.service.migrate`` passes.

There is no ``alembic.ini`` and no URL here: the store opens its own engine and hands over a
connection inside its start-up transaction, so migrating and opening are one step.
"""

from __future__ import annotations

from alembic import context

from callbridge.service.store import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters by copying tables
)
with context.begin_transaction():
    context.run_migrations()

"""Bring a record store's schema to the current revision, in place (Alembic).

``RecordStore`` calls :func:`upgrade` inside its start-up transaction, so every process
start migrates the database it is given: a fresh one gets every revision; one made by
``create_all`` before migrations existed (tables, no ``alembic_version``) is stamped at the
baseline first, so its rows stay where they are. On PostgreSQL a transaction-scoped advisory
lock serialises replicas that start together; SQLite serialises writers by itself.

A new table or column in ``callbridge.service.store.metadata`` needs a revision in
``callbridge/service/migrations/versions`` (``tests/store/test_migrations.py`` fails until
it has one).
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

__all__ = ["BASELINE", "current_revision", "head_revision", "upgrade"]

BASELINE = "0001"
"""The schema ``create_all`` made before migrations existed."""

_SCRIPTS = Path(__file__).with_name("migrations")
_PG_LOCK_KEY = 0x63616C6C  # "call": any constant shared by every replica


def _config(connection: sa.Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_SCRIPTS))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def current_revision(connection: sa.Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(connection: sa.Connection) -> None:
    """Migrate the database behind ``connection`` to the newest revision (sync; run_sync)."""
    if connection.dialect.name == "postgresql":
        connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
    config = _config(connection)
    inspector = sa.inspect(connection)
    if not inspector.has_table("alembic_version") and inspector.has_table("calls"):
        command.stamp(config, BASELINE)
    command.upgrade(config, "head")

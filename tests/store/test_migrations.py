"""The record store's schema is migrated in place (Alembic), on SQLite and real PostgreSQL.

A store made by the previous release (``create_all`` of commit d0ca293's tables, no
``alembic_version``) keeps every row when this release opens it; a fresh store and an
upgraded one end with exactly the schema ``callbridge.service.store.metadata`` declares, so a table
or
column added without a migration fails here.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine

from callbridge.service import migrate
from callbridge.service.store import RecordStore, metadata

# The tables exactly as bridge/store.py declared them at d0ca293 (frozen: never edit).
OLD = sa.MetaData()
sa.Table(
    "calls",
    OLD,
    sa.Column("call_id", sa.String(128), primary_key=True),
    sa.Column("tenant", sa.String(128), nullable=False),
    sa.Column("caller", sa.String(64), nullable=False),
    sa.Column("callee", sa.String(64), nullable=False),
    sa.Column("session_id", sa.String(256), nullable=False),
    sa.Column("started_at", sa.Double, nullable=False),
    sa.Column("answered_at", sa.Double, nullable=True),
    sa.Column("ended_at", sa.Double, nullable=True),
    sa.Column("outcome", sa.String(64), nullable=False),
    sa.Column("usage", sa.JSON, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
    sa.Index("ix_calls_started_at", "started_at"),
    sa.Index("ix_calls_tenant_started_at", "tenant", "started_at"),
)
sa.Table(
    "call_entries",
    OLD,
    sa.Column("call_id", sa.String(128), sa.ForeignKey("calls.call_id"), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("t", sa.Double, nullable=False),
    sa.Column("data", sa.JSON, nullable=False),
)

CALLS = [
    {
        "call_id": f"old-{n}",
        "tenant": "acme",
        "caller": "*********0123",
        "callee": "*********0999",
        "session_id": f"s-{n}",
        "started_at": 1000.0 + n,
        "answered_at": 1000.5 + n,
        "ended_at": 1060.0 + n,
        "outcome": "completed",
        "usage": {"input_tokens": 10 * n},
        "updated_at": 1060.0 + n,
    }
    for n in range(3)
]
ENTRIES = [
    {"call_id": f"old-{n}", "seq": seq, "kind": "transcript", "t": 1.0 + seq, "data": data}
    for n in range(3)
    for seq, data in enumerate(
        [{"speaker": "caller", "text": f"hello {n}"}, {"speaker": "agent", "text": "hi ünï"}]
    )
]


def schema_drift(connection: sa.Connection) -> list[Any]:
    context = MigrationContext.configure(connection)
    return list(compare_metadata(context, metadata))


async def test_a_store_made_before_migrations_upgrades_without_losing_a_row(
    store_url: str,
) -> None:
    engine = create_async_engine(store_url)
    async with engine.begin() as conn:
        await conn.run_sync(OLD.create_all)
        await conn.execute(OLD.tables["calls"].insert(), CALLS)
        await conn.execute(OLD.tables["call_entries"].insert(), ENTRIES)
    await engine.dispose()

    async with RecordStore(store_url) as store:
        stored = sorted(await store.list_calls(limit=10), key=lambda c: c.call_id)
        first = await store.get_call("old-1")
        async with store.engine.connect() as conn:
            revision = await conn.run_sync(migrate.current_revision)
            drift = await conn.run_sync(schema_drift)
            entry_rows = (await conn.execute(sa.text("SELECT count(*) FROM call_entries"))).one()

    assert [c.call_id for c in stored] == ["old-0", "old-1", "old-2"]
    assert [c.usage for c in stored] == [
        {"input_tokens": 0},
        {"input_tokens": 10},
        {"input_tokens": 20},
    ]
    assert first is not None and [e.data["text"] for e in first.entries] == ["hello 1", "hi ünï"]
    assert entry_rows[0] == len(ENTRIES)
    assert revision == migrate.head_revision()
    assert drift == [], f"the migrations do not build callbridge.service.store.metadata: {drift}"


async def test_a_fresh_store_is_built_by_the_migrations_and_reopens_unchanged(
    store_url: str,
) -> None:
    for _ in range(2):  # the second open finds it at head and changes nothing
        async with RecordStore(store_url) as store, store.engine.connect() as conn:
            revision = await conn.run_sync(migrate.current_revision)
            drift = await conn.run_sync(schema_drift)
        assert revision == migrate.head_revision()
        assert drift == [], (
            f"the migrations do not build callbridge.service.store.metadata: {drift}"
        )

"""Round trips through a real SQLite file and a real PostgreSQL server."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa

from callbridge.bridge.record import CallRecord
from callbridge.service.store import RecordStore, is_transient
from tests.store.conftest import fill, full_record
from tests.store.pg import PgCluster


async def test_round_trip_every_entry_kind(store_url: str) -> None:
    record = full_record()
    async with RecordStore(store_url) as store, asyncio.TaskGroup() as tg:
        tg.create_task(store.run())
        record.listeners.append(store.listener())
        fill(record)
        store.stop()

    async with RecordStore(store_url) as store:  # a fresh engine: nothing cached
        stored = await store.get_call("call-1")
    assert stored is not None
    assert stored.entries == tuple(record.entries)
    assert {e.kind for e in stored.entries} == {
        "timeline",
        "transcript",
        "command",
        "warning",
        "tool",
        "usage",
        "state",
    }
    assert stored.caller == "*********0123"
    assert stored.callee == "*********0999"
    assert (stored.tenant, stored.session_id, stored.outcome) == ("acme", "s-1", "completed")
    assert (stored.started_at, stored.answered_at, stored.ended_at) == (
        record.started_at,
        record.answered_at,
        record.ended_at,
    )
    assert stored.usage == {"input_tokens": 120, "output_tokens": 48}
    assert record.ended_at is not None
    assert stored.duration == pytest.approx(record.ended_at - record.started_at)


async def test_full_numbers_when_configured(store_url: str) -> None:
    record = full_record()
    async with RecordStore(store_url, full_numbers=True) as store:
        record.listeners.append(store.listener())
        record.note("hello")
        await store.flush()
        stored = await store.get_call("call-1")
    assert stored is not None
    assert (stored.caller, stored.callee) == ("+441632960123", "+441632960999")


async def test_list_calls_newest_first_with_limit_and_tenant(store_url: str) -> None:
    async with RecordStore(store_url) as store:
        for i, tenant in enumerate(["acme", "globex", "acme", "acme"]):
            record = CallRecord(f"c{i}", tenant, "+15550000000", "+15551111111")
            record.started_at = 1_700_000_000.0 + i
            record.listeners.append(store.listener())
            record.note("start")
        await store.flush()
        assert [c.call_id for c in await store.list_calls(10)] == ["c3", "c2", "c1", "c0"]
        assert [c.call_id for c in await store.list_calls(2)] == ["c3", "c2"]
        assert [c.call_id for c in await store.list_calls(10, tenant="globex")] == ["c1"]
        assert all(c.entries == () for c in await store.list_calls(10))
        assert await store.get_call("nope") is None


async def test_unusual_data_is_stored_not_rejected(store_url: str) -> None:
    """Non-JSON values and NaN must never make the database refuse a batch."""
    record = full_record()
    async with RecordStore(store_url) as store:
        record.listeners.append(store.listener())
        record.note("odd", blob=b"\x00\x01", ratio=float("nan"), big=float("inf"), path=Path("/x"))
        record.transcript("caller", "nul \x00 and emoji 📞")
        await store.flush()
        stored = await store.get_call("call-1")
    assert stored is not None and store.lost == 0
    assert stored.entries[0].data == {
        "event": "odd",
        "blob": "b'\\x00\\x01'",
        "ratio": "nan",
        "big": "inf",
        "path": "/x",
    }
    assert stored.entries[1].data["text"] == "nul \x00 and emoji 📞"


async def test_writer_commits_without_flush_and_row_tracks_state(sqlite_url: str) -> None:
    """The writer commits on its own: another connection sees the entries while the call runs."""
    record = full_record()
    path = sqlite_url.removeprefix("sqlite+aiosqlite:///")
    async with RecordStore(sqlite_url) as store, asyncio.TaskGroup() as tg:
        tg.create_task(store.run())
        record.listeners.append(store.listener())
        record.note("call_started")
        record.mark_answered()  # a state entry: committed at once
        record.transcript("caller", "hi")
        for _ in range(1000):  # polls another connection; no deadline is asserted
            if _count(path) == 3:
                break
            await asyncio.sleep(0.02)
        with sqlite3.connect(path) as conn:
            answered, outcome = conn.execute("SELECT answered_at, outcome FROM calls").fetchone()
        assert (answered, outcome) == (record.answered_at, "in_progress")
        assert len(store.listener()) == 0
        store.stop()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def _count(path: str) -> int:
    with sqlite3.connect(path) as conn:
        try:
            (n,) = conn.execute("SELECT count(*) FROM call_entries").fetchone()
        except sqlite3.OperationalError:
            return 0
        return int(n)


async def test_cancelled_writer_loses_nothing_on_close(store_url: str) -> None:
    """Cancelling the TaskGroup (service shutdown) still commits every entry on close."""
    record = full_record()
    async with RecordStore(store_url, commit_interval=30.0) as store:
        with pytest.raises(ExceptionGroup):
            async with asyncio.TaskGroup() as tg:
                tg.create_task(store.run())
                record.listeners.append(store.listener())
                fill(record)
                await asyncio.sleep(0)
                raise RuntimeError("shutdown")
    async with RecordStore(store_url) as store:
        stored = await store.get_call("call-1")
    assert stored is not None and stored.entries == tuple(record.entries)


async def test_postgres_restart_mid_call_keeps_every_entry(
    pg_url: str, pg_cluster: PgCluster
) -> None:
    """Entries appended while the database is down are retried and land after it returns."""
    record = full_record()
    async with RecordStore(pg_url, commit_interval=0.05) as store, asyncio.TaskGroup() as tg:
        tg.create_task(store.run())
        record.listeners.append(store.listener())
        record.note("before")
        await store.flush()
        await asyncio.to_thread(pg_cluster.stop_server)
        record.transcript("caller", "said while the database was down")
        record.mark_answered()
        await asyncio.sleep(0.3)  # let the writer fail at least once
        await asyncio.to_thread(pg_cluster.start_server)
        record.finish("completed")
        store.stop()
    async with RecordStore(pg_url) as store:
        stored = await store.get_call("call-1")
    assert stored is not None and stored.entries == tuple(record.entries)
    assert stored.outcome == "completed"


async def test_a_server_shutting_down_is_retried_and_a_rejected_statement_is_not(
    pg_url: str,
) -> None:
    """The classifier that decides retry-or-drop, against the errors a real server sends.

    ``pg_terminate_backend`` makes the server end a busy session with ``57P01
    admin_shutdown``, what a restarting server sends; SQLAlchemy's asyncpg dialect wraps it
    in a plain ``DBAPIError`` (not an ``OperationalError``), and a batch dropped on it was
    a lost piece of the call. Division by zero is the database rejecting the data.
    """
    async with RecordStore(pg_url) as store:
        async with store.engine.connect() as victim:
            pid = (await victim.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one()
            sleeper = asyncio.ensure_future(victim.execute(sa.text("SELECT pg_sleep(30)")))
            await asyncio.sleep(0.2)
            async with store.engine.connect() as killer:
                await killer.execute(sa.text(f"SELECT pg_terminate_backend({int(pid)})"))
            with pytest.raises(sa.exc.DBAPIError) as shutdown:
                await sleeper
        async with store.engine.connect() as conn:
            with pytest.raises(sa.exc.DBAPIError) as rejected:
                await conn.execute(sa.text("SELECT 1 / 0"))
    assert is_transient(shutdown.value)
    assert not is_transient(rejected.value)


async def test_cancelling_the_writer_mid_commit_never_loses_or_locks(sqlite_url: str) -> None:
    """Cancel the writer at many points inside its commits; close must still write it all.

    A driver cancelled mid-transaction used to keep SQLite's write lock, so the close-time
    flush failed with "database is locked" and the tail of the call was lost.
    """
    for step in range(20):
        record = CallRecord(f"c{step}", "acme", "+15550001111", "+15550002222")
        async with RecordStore(sqlite_url, commit_interval=0.0, batch_size=10) as store:
            record.listeners.append(store.listener())
            writer = asyncio.get_running_loop().create_task(store.run())
            for i in range(100):
                record.note("tick", i=i)
            await asyncio.sleep(step * 0.001)  # somewhere inside one of the commits
            writer.cancel()
            with pytest.raises(asyncio.CancelledError):
                await writer
        async with RecordStore(sqlite_url) as store:
            stored = await store.get_call(record.call_id)
        assert stored is not None and stored.entries == tuple(record.entries), step

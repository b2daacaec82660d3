"""The listener runs on the call's event loop: a full queue must drop and count, never block."""

from __future__ import annotations

import asyncio

import structlog

from callbridge.bridge.record import CallRecord
from callbridge.service.store import RecordStore, StoreListener


def test_full_queue_keeps_newest_and_counts_drops() -> None:
    """No event loop is running here: on_entry is plain synchronous code that returns."""
    listener = StoreListener(maxsize=5)
    record = CallRecord("c", "acme", "+15550001111", "+15550002222", listeners=[listener])
    for i in range(12):
        record.note("tick", i=i)
    assert listener.dropped == 7
    assert len(listener) == 5
    kept = listener.take(100)
    assert [p.seq for p in kept] == [7, 8, 9, 10, 11]
    assert [p.entry.data["i"] for p in kept] == [7, 8, 9, 10, 11]
    assert len(listener) == 0 and not listener.wakeup.is_set()


def test_state_entry_asks_for_an_immediate_commit() -> None:
    listener = StoreListener(maxsize=100, urgent_batch=50)
    record = CallRecord("c", "acme", "+15550001111", "+15550002222", listeners=[listener])
    record.note("tick")
    assert listener.wakeup.is_set() and not listener.urgent.is_set()
    record.mark_answered()
    assert listener.urgent.is_set()


def test_each_entry_carries_the_call_row_of_its_moment() -> None:
    """A dropped entry never leaves the calls row stale: every snapshot is self-contained."""
    listener = StoreListener(maxsize=2)
    record = CallRecord("c", "acme", "+15550001111", "+15550002222", listeners=[listener])
    record.mark_answered()
    record.add_usage({"tokens": 3})
    record.finish("completed")
    first, last = listener.take(10)
    assert listener.dropped == 1
    assert (first.row["outcome"], first.row["usage"]) == ("in_progress", {"tokens": 3})
    assert (last.row["outcome"], last.row["ended_at"]) == ("completed", record.ended_at)
    assert last.row["caller"] == "********1111"


async def test_stalled_writer_never_blocks_the_call_and_drops_are_logged(sqlite_url: str) -> None:
    """With no writer running (a stalled database), appends return; the count reaches the logs."""
    async with RecordStore(sqlite_url, queue_size=10) as store:
        record = CallRecord("c", "acme", "+15550001111", "+15550002222")
        record.listeners.append(store.listener())
        for i in range(25):
            record.note("tick", i=i)
        record.finish("hung_up")
        assert store.dropped == 16
        with structlog.testing.capture_logs() as logs:
            await store.flush()
        stored = await store.get_call("c")
    assert stored is not None
    assert [e.data.get("i") for e in stored.entries] == [16, 17, 18, 19, 20, 21, 22, 23, 24, None]
    assert stored.outcome == "hung_up"
    assert [(e["event"], e["dropped"], e["dropped_total"]) for e in logs] == [
        ("record_entries_dropped", 16, 16)
    ]


async def test_writer_reports_new_drops_once(sqlite_url: str) -> None:
    async with RecordStore(sqlite_url, queue_size=3, commit_interval=0.01) as store:
        record = CallRecord("c", "acme", "+15550001111", "+15550002222")
        record.listeners.append(store.listener())
        with structlog.testing.capture_logs() as logs:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(store.run())
                for i in range(5):
                    record.note("tick", i=i)
                await store.flush()
                for i in range(4):
                    record.note("tock", i=i)
                store.stop()
    drops = [
        (e["dropped"], e["dropped_total"]) for e in logs if e["event"] == "record_entries_dropped"
    ]
    assert drops == [(2, 2), (1, 3)]

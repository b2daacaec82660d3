"""Durable call records: every entry a call appends reaches the database within ~200 ms.

``RecordStore`` keeps two tables through SQLAlchemy's async engine: ``calls`` (one row per
call, upserted) and ``call_entries`` (one row per :class:`~callbridge.bridge.record.RecordEntry`,
keyed by
``(call_id, seq)`` where ``seq`` is the entry's index in ``CallRecord.entries``). SQLite
(aiosqlite, WAL journal, ``synchronous=FULL``) is the default; PostgreSQL (asyncpg) is chosen
by URL.

Why it is shaped this way:

* The call's event loop must never wait on the database (design principle 2), so
  :class:`StoreListener` only appends to a bounded in-memory queue. When the queue is full the
  oldest entry is dropped, so the newest facts (the outcome above all) survive a stalled
  database; drops are counted and the writer logs the count (``record_entries_dropped``).
  Each queued entry carries a snapshot of the call row taken at that moment, so a dropped
  entry never leaves the ``calls`` row behind.
* Batching and commits: the writer (:meth:`RecordStore.run`, owned by the caller's TaskGroup)
  sleeps until an entry arrives, then lets a batch gather for at most ``commit_interval``
  (200 ms). It commits early when a ``state`` entry (answered, ended) arrives, when the batch
  reaches ``batch_size`` entries, on :meth:`RecordStore.flush` and on close. One batch is one
  transaction: upsert of each touched call row, then the entries. So a process killed with
  SIGKILL loses at most the last ~200 ms, and nothing that was committed (WAL keeps SQLite
  commits on a process crash; ``synchronous=FULL`` keeps them on power loss too).
* Failures: connection-level errors (database down, network) keep the batch and retry with
  backoff up to 5 s while new entries queue (bounded, as above). Any other error (the
  database rejected the data) is logged with the number of entries lost and the batch is
  dropped, so one bad row cannot stop every later call from being recorded. Writes are
  idempotent (entries ``ON CONFLICT DO NOTHING``), so a retry after an unknown commit outcome
  is harmless.
* Phone numbers are masked (last four digits kept) before they are written, unless the tenant
  set ``service.log_full_numbers``.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import time
from collections import deque
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self, cast

import sqlalchemy as sa
import structlog
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from callbridge.bridge.privacy import caller_key
from callbridge.bridge.record import CallRecord, EntryKind, RecordEntry, mask_number
from callbridge.service import migrate


def _log() -> Any:
    # Looked up per use (these events are rare) so a later structlog.configure() applies.
    return structlog.get_logger(__name__)


metadata = sa.MetaData()

calls = sa.Table(
    "calls",
    metadata,
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
    sa.Column("direction", sa.String(16), nullable=False, server_default="inbound"),
    sa.Column("updated_at", sa.Double, nullable=False),
    sa.Column("model", sa.String(128), nullable=True),
    sa.Column("cost_usd", sa.Double, nullable=True),
    sa.Column("caller_key", sa.String(64), nullable=True),
    sa.Index("ix_calls_started_at", "started_at"),
    sa.Index("ix_calls_caller_key", "caller_key"),
    sa.Index("ix_calls_tenant_started_at", "tenant", "started_at"),
)

call_entries = sa.Table(
    "call_entries",
    metadata,
    sa.Column("call_id", sa.String(128), sa.ForeignKey("calls.call_id"), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("t", sa.Double, nullable=False),
    sa.Column("data", sa.JSON, nullable=False),
)

# Campaigns (``callbridge.service.campaigns``): one row per campaign, one per number to dial.
campaigns = sa.Table(
    "campaigns",
    metadata,
    sa.Column("campaign_id", sa.String(64), primary_key=True),
    sa.Column("tenant", sa.String(128), nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("policy", sa.JSON, nullable=False),
)

campaign_rows = sa.Table(
    "campaign_rows",
    metadata,
    sa.Column(
        "campaign_id", sa.String(64), sa.ForeignKey("campaigns.campaign_id"), primary_key=True
    ),
    sa.Column("line", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("tenant", sa.String(128), nullable=False),
    sa.Column("row_key", sa.String(256), nullable=False),
    sa.Column("number", sa.String(32), nullable=False),
    sa.Column("variables", sa.JSON, nullable=False),
    sa.Column("tz", sa.String(64), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_at", sa.Double, nullable=False),
    sa.Column("claimed_by", sa.String(128), nullable=True),
    sa.Column("claimed_at", sa.Double, nullable=True),
    sa.Column("outcome", sa.String(32), nullable=True),
    sa.Column("error_code", sa.String(64), nullable=True),
    sa.Column("call_id", sa.String(128), nullable=True),
    sa.Column("updated_at", sa.Double, nullable=False),
    sa.UniqueConstraint("tenant", "row_key", name="uq_campaign_rows_tenant_key"),
    sa.Index("ix_campaign_rows_due", "state", "next_at"),
)

_TRANSIENT_TYPES = (sa.exc.OperationalError, sa.exc.InterfaceError, OSError, TimeoutError)
_TRANSIENT_SQLSTATE_CLASSES = frozenset({"08", "40", "53", "57", "58"})
"""Connection exception, transaction rollback (serialization, deadlock), insufficient
resources (disk full, too many connections), operator intervention (server shutting down or
restarting, query cancelled), system error: the same batch can succeed later."""
_FIRST_BACKOFF_S = 0.1
_MAX_BACKOFF_S = 5.0
_CANCEL_GRACE_S = 5.0


@dataclass(frozen=True, slots=True)
class StoredCall:
    """A call as read back from the store; ``entries`` are in the order they were appended."""

    call_id: str
    tenant: str
    caller: str
    callee: str
    session_id: str
    started_at: float
    answered_at: float | None
    ended_at: float | None
    outcome: str
    usage: dict[str, int]
    updated_at: float
    entries: tuple[RecordEntry, ...] = ()
    direction: str = "inbound"
    model: str | None = None
    cost_usd: float | None = None

    @property
    def duration(self) -> float | None:
        """Seconds from start to end, or ``None`` while the call is (or was left) open."""
        return None if self.ended_at is None else self.ended_at - self.started_at


@dataclass(frozen=True, slots=True)
class _Pending:
    """One queued entry plus the call row as it was when the entry was appended."""

    row: dict[str, Any]
    seq: int
    entry: RecordEntry


class StoreListener:
    """A :class:`~callbridge.bridge.record.RecordListener` that queues entries for the writer.

    ``on_entry`` runs on the call's event loop: it never blocks and never raises. When
    ``maxsize`` entries are already waiting, the oldest is dropped and counted in ``dropped``.
    """

    def __init__(
        self, maxsize: int = 10_000, *, full_numbers: bool = False, urgent_batch: int = 200
    ) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self._queue: deque[_Pending] = deque()
        self.maxsize = maxsize
        self.urgent_batch = urgent_batch
        self._full_numbers = full_numbers
        self.dropped = 0
        """Entries dropped because the queue was full, since the listener was made."""
        self.wakeup = asyncio.Event()
        """Set when an entry is queued."""
        self.urgent = asyncio.Event()
        """Set when the queued entries should be committed now (state entry, batch full)."""

    def __len__(self) -> int:
        return len(self._queue)

    def on_entry(self, record: CallRecord, entry: RecordEntry) -> None:
        # CallRecord appends before it notifies, so the entry's index is its stable seq.
        if len(self._queue) >= self.maxsize:
            self._queue.popleft()
            self.dropped += 1
        self._queue.append(_Pending(self._row(record), len(record.entries) - 1, entry))
        self.wakeup.set()
        if entry.kind == "state" or len(self._queue) >= self.urgent_batch:
            self.urgent.set()

    def take(self, limit: int) -> list[_Pending]:
        """Remove and return up to ``limit`` of the oldest queued entries."""
        count = min(limit, len(self._queue))
        batch = [self._queue.popleft() for _ in range(count)]
        if not self._queue:
            self.wakeup.clear()
            self.urgent.clear()
        return batch

    def _row(self, record: CallRecord) -> dict[str, Any]:
        return {
            "call_id": record.call_id,
            "tenant": record.tenant,
            "caller": mask_number(record.caller, full=self._full_numbers),
            "callee": mask_number(record.callee, full=self._full_numbers),
            "session_id": record.session_id,
            "started_at": record.started_at,
            "answered_at": record.answered_at,
            "ended_at": record.ended_at,
            "outcome": record.outcome,
            "usage": dict(record.usage),
            "direction": record.direction,
            "model": record.model or None,
            "cost_usd": record.cost_usd,
            "caller_key": caller_key(record.caller),
        }


def _finite(value: Any) -> Any:
    """Replace NaN and infinities (which JSON columns reject) with their string spelling."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _dumps(value: Any) -> str:
    """JSON for entry data: anything not JSON-native is stored as its ``str()``."""
    try:
        return json.dumps(value, default=str, ensure_ascii=False, allow_nan=False)
    except ValueError:
        return json.dumps(_finite(value), default=str, ensure_ascii=False)


def _enable_sqlite_wal(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA busy_timeout=5000")
    finally:
        cursor.close()


class RecordStore:
    """Call records in SQLite or PostgreSQL. See the module docstring for the write policy.

    Usage::

        async with RecordStore(url) as store, asyncio.TaskGroup() as tg:
            tg.create_task(store.run())
            record.listeners.append(store.listener())
            ...
            store.stop()   # run() writes what is left and returns

    Leaving the ``async with`` block writes anything still queued (also after the writer was
    cancelled) and disposes of the engine.
    """

    def __init__(
        self,
        url: str,
        *,
        full_numbers: bool = False,
        queue_size: int = 10_000,
        commit_interval: float = 0.2,
        batch_size: int = 200,
    ) -> None:
        self.url = url
        self.commit_interval = commit_interval
        self.batch_size = batch_size
        self._listener = StoreListener(
            queue_size, full_numbers=full_numbers, urgent_batch=batch_size
        )
        self._engine: AsyncEngine | None = None
        self._write_lock = asyncio.Lock()
        self._retry: list[_Pending] = []
        self._reported_drops = 0
        self._stopping = False
        self.lost = 0
        """Entries the database rejected (not counting queue drops)."""
        self.errors = 0
        """Failed write attempts (database unreachable, disk full...), retried or not."""
        self.healthy = True
        """False from a failed write until the next successful one."""

    @property
    def pending(self) -> int:
        """Entries waiting to be written (queued, or in a batch being retried)."""
        return len(self._listener) + len(self._retry)

    def health(self) -> dict[str, Any]:
        """For ``/readyz`` and metrics: is the writer keeping up, and what did it lose."""
        return {
            "ok": self.healthy,
            "pending": self.pending,
            "dropped": self.dropped,
            "lost": self.lost,
            "errors": self.errors,
        }

    async def __aenter__(self) -> Self:
        _create_private_sqlite_file(self.url)
        engine = create_async_engine(self.url, json_serializer=_dumps)
        if engine.dialect.name == "sqlite":
            event.listen(engine.sync_engine, "connect", _enable_sqlite_wal)
        try:
            async with engine.begin() as conn:
                await conn.run_sync(migrate.upgrade)  # in place; creates a fresh store
        except BaseException:
            await engine.dispose()
            raise
        self._engine = engine
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self.flush()
        except Exception as error:  # the engine must still be disposed of
            pending = len(self._listener) + len(self._retry)
            _log().error("record_store_close_failed", error=repr(error), entries_lost=pending)
        finally:
            self._report_drops()
            await self.engine.dispose()
            self._engine = None

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            raise RuntimeError("RecordStore is not open: use 'async with RecordStore(url)'")
        return self._engine

    def listener(self) -> StoreListener:
        """The listener to add to each ``CallRecord.listeners`` (one per store, shared)."""
        return self._listener

    @property
    def dropped(self) -> int:
        return self._listener.dropped

    async def run(self) -> None:
        """The writer: commit queued entries until :meth:`stop`, then commit the rest."""
        backoff = _FIRST_BACKOFF_S
        listener = self._listener
        while True:
            if not (self._retry or len(listener)):
                if self._stopping:
                    return
                await listener.wakeup.wait()
            if not self._stopping and not listener.urgent.is_set():
                try:
                    async with asyncio.timeout(self.commit_interval):
                        await listener.urgent.wait()
                except TimeoutError:
                    pass
            try:
                await self._write_next()
            except Exception as error:
                if not is_transient(error):
                    raise
                self.errors += 1
                self.healthy = False
                _log().warning(
                    "record_store_unavailable",
                    error=repr(error),
                    retry_in_s=round(backoff, 2),
                    waiting=len(self._retry) + len(listener),
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF_S)
            else:
                backoff = _FIRST_BACKOFF_S
                self.healthy = True

    def stop(self) -> None:
        """Ask :meth:`run` to commit what is queued and return.

        While the database is unreachable ``run`` keeps retrying; cancel it to give up, and
        the close-time flush makes one last attempt (logging what it could not write).
        """
        self._stopping = True
        self._listener.wakeup.set()

    async def flush(self) -> None:
        """Commit everything appended so far; errors propagate to the caller."""
        while self._retry or len(self._listener):
            await self._write_next()

    async def close_within(self, deadline_s: float) -> int:
        """The final flush, bounded: returns how many entries could not be written.

        For shutdown: a database that is down (or a full disk) must not hold the process past
        its grace period. What is lost is logged (``record_entries_lost_at_shutdown``) with
        the calls it belonged to, and the engine is disposed of either way.
        """
        pending_ids = sorted({p.row["call_id"] for p in [*self._retry, *self._listener._queue]})
        try:
            async with asyncio.timeout(deadline_s):
                await self.flush()
        except (TimeoutError, Exception) as error:
            lost = self.pending
            self.lost += lost
            _log().error(
                "record_entries_lost_at_shutdown",
                entries_lost=lost,
                call_ids=pending_ids[:50],
                error=repr(error) if not isinstance(error, TimeoutError) else "timed out",
                deadline_s=deadline_s,
            )
            self._retry = []
            self._listener.take(len(self._listener))
        else:
            lost = 0
        return lost

    async def abandon_stale(self, tenant: str, *, older_than_s: float) -> int:
        """Mark ``tenant``'s calls still ``in_progress`` but silent for ``older_than_s`` as
        ``abandoned``, ended when last heard of. A process killed with SIGKILL leaves such
        rows; a live call refreshes its row with every batch, and a later write from a call
        that was only quiet puts its own outcome back. Returns how many rows changed."""
        cutoff = time.time() - older_than_s
        query = (
            sa.update(calls)
            .where(calls.c.tenant == tenant)
            .where(calls.c.outcome == "in_progress")
            .where(calls.c.updated_at < cutoff)
            .values(outcome="abandoned", ended_at=calls.c.updated_at)
        )
        async with self.engine.begin() as conn:
            result = await conn.execute(query)
        count = int(result.rowcount or 0)
        if count:
            _log().warning("stale_calls_abandoned", tenant=tenant, calls=count)
        return count

    async def end_calls(self, call_ids: Collection[str], *, outcome: str) -> int:
        """Finalise these calls if still ``in_progress``: ``outcome``, ended now.

        For calls whose process died under them (a worker killed mid-call): the supervisor
        knows exactly which calls the worker had. Returns how many rows changed."""
        if not call_ids:
            return 0
        now = time.time()
        query = (
            sa.update(calls)
            .where(calls.c.call_id.in_(sorted(call_ids)))
            .where(calls.c.outcome == "in_progress")
            .values(outcome=outcome, ended_at=now, updated_at=now)
        )
        async with self.engine.begin() as conn:
            result = await conn.execute(query)
        return int(result.rowcount or 0)

    async def _write_next(self) -> None:
        """Take one batch (a failed batch first) and commit it in one transaction."""
        async with self._write_lock:
            batch, self._retry = self._retry, []
            if not batch:
                batch = self._listener.take(self.batch_size)
            self._report_drops()
            if not batch:
                return
            commit = asyncio.get_running_loop().create_task(self._commit(batch))
            try:
                await asyncio.shield(commit)
            except asyncio.CancelledError:
                await _settle(commit, _CANCEL_GRACE_S)
                if commit.cancelled() or commit.exception() is not None:
                    self._retry = batch  # the close-time flush tries again
                raise
            except Exception as error:
                if is_transient(error):
                    self._retry = batch
                    raise
                self.lost += len(batch)
                _log().error(
                    "record_batch_rejected",
                    error=repr(error),
                    entries_lost=len(batch),
                    call_ids=sorted({p.row["call_id"] for p in batch}),
                )

    async def _commit(self, batch: Sequence[_Pending]) -> None:
        async with self.engine.begin() as conn:
            await self._insert(conn, batch)

    async def _insert(self, conn: AsyncConnection, batch: Sequence[_Pending]) -> None:
        now = time.time()
        rows: dict[str, dict[str, Any]] = {}
        for pending in batch:  # the newest snapshot of each call wins
            rows[pending.row["call_id"]] = {**pending.row, "updated_at": now}
        insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        upsert = insert(calls)
        updated = {c.name: upsert.excluded[c.name] for c in calls.c if c.name != "call_id"}
        await conn.execute(
            upsert.on_conflict_do_update(index_elements=["call_id"], set_=updated),
            list(rows.values()),
        )
        entries = [
            {
                "call_id": p.row["call_id"],
                "seq": p.seq,
                "kind": p.entry.kind,
                "t": p.entry.t,
                "data": p.entry.data,
            }
            for p in batch
        ]
        await conn.execute(insert(call_entries).on_conflict_do_nothing(), entries)

    def _report_drops(self) -> None:
        dropped = self._listener.dropped
        if dropped > self._reported_drops:
            _log().warning(
                "record_entries_dropped",
                dropped=dropped - self._reported_drops,
                dropped_total=dropped,
                queue_size=self._listener.maxsize,
            )
            self._reported_drops = dropped

    async def list_calls(self, limit: int = 50, tenant: str | None = None) -> list[StoredCall]:
        """The most recent calls first, without their entries."""
        query = sa.select(calls).order_by(calls.c.started_at.desc()).limit(limit)
        if tenant is not None:
            query = query.where(calls.c.tenant == tenant)
        async with self.engine.connect() as conn:
            result = await conn.execute(query)
            return [stored_call(row._mapping) for row in result]

    async def get_call(self, call_id: str) -> StoredCall | None:
        """One call with all its stored entries in order, or ``None`` if unknown."""
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(calls).where(calls.c.call_id == call_id))).first()
            if row is None:
                return None
            result = await conn.execute(
                sa.select(call_entries.c.kind, call_entries.c.t, call_entries.c.data)
                .where(call_entries.c.call_id == call_id)
                .order_by(call_entries.c.seq)
            )
            entries = tuple(RecordEntry(cast(EntryKind, kind), t, data) for kind, t, data in result)
        return stored_call(row._mapping, entries)


async def _settle(task: asyncio.Task[None], grace: float) -> None:
    """Let ``task`` finish for up to ``grace`` seconds, whatever cancellations arrive meanwhile.

    Why: cancelling a database driver mid-transaction can leave its connection holding
    SQLite's write lock until it is garbage-collected, so every later write (the close-time
    flush included) fails with "database is locked". So a cancelled writer lets its commit
    finish; only a commit stuck past ``grace`` is cancelled. The task never outlives the
    caller: this returns only once it is done.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace
    while not task.done():
        remaining = deadline - loop.time()
        if remaining <= 0:
            task.cancel()
        try:
            await asyncio.wait({task}, timeout=remaining if remaining > 0 else None)
        except asyncio.CancelledError:
            continue


def is_transient(error: BaseException) -> bool:
    """Whether a failed write should be retried with the same batch, or the batch dropped.

    SQLAlchemy's asyncpg dialect wraps server errors it has no specific class for (a server
    shutting down answers ``57P01 admin_shutdown`` or ``57P03 cannot_connect_now``) in a
    plain ``DBAPIError``, so the type alone is not enough: the SQLSTATE class decides, and a
    connection the pool marked invalid is always worth another try.
    """
    if isinstance(error, _TRANSIENT_TYPES):
        return True
    if not isinstance(error, sa.exc.DBAPIError):
        return False
    if error.connection_invalidated:
        return True
    sqlstate = getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None)
    return isinstance(sqlstate, str) and sqlstate[:2] in _TRANSIENT_SQLSTATE_CLASSES


def _create_private_sqlite_file(url: str) -> None:
    """Create a SQLite database file owner-only (0600) before SQLite creates it 0644.

    Call records hold transcripts; SQLite gives its WAL and shared-memory files the main
    file's permissions, so those are private too.
    """
    parsed = sa.engine.make_url(url)
    if not parsed.drivername.startswith("sqlite"):
        return
    database = parsed.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    fd = os.open(database, os.O_CREAT | os.O_RDWR, 0o600)
    os.close(fd)


def stored_call(row: Any, entries: tuple[RecordEntry, ...] = ()) -> StoredCall:
    """A ``calls`` row as a :class:`StoredCall`: the one place columns map to fields."""
    return StoredCall(
        call_id=row["call_id"],
        tenant=row["tenant"],
        caller=row["caller"],
        callee=row["callee"],
        session_id=row["session_id"],
        started_at=row["started_at"],
        answered_at=row["answered_at"],
        ended_at=row["ended_at"],
        outcome=row["outcome"],
        usage=dict(row["usage"]),
        updated_at=row["updated_at"],
        entries=entries,
        direction=row["direction"],
        model=row.get("model"),
        cost_usd=row.get("cost_usd"),
    )


__all__ = [
    "RecordStore",
    "StoreListener",
    "StoredCall",
    "call_entries",
    "calls",
    "campaign_rows",
    "campaigns",
    "metadata",
    "stored_call",
]

"""Erasure and retention of call records: one caller's calls, and records past their age.

Kept apart from :mod:`callbridge.service.store`'s writer: these are rare, whole-table operations
run by
``callbridge calls erase`` and by the service's retention task (:func:`purge_forever`), each
in one transaction of its own.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import sqlalchemy as sa
import structlog

from callbridge.bridge.config import PrivacySettings
from callbridge.bridge.privacy import caller_key
from callbridge.service.store import RecordStore, call_entries, calls

log = structlog.get_logger("callbridge.retention")


@dataclass(frozen=True, slots=True)
class Erased:
    """What :meth:`RecordStore.erase_caller` removed."""

    call_ids: tuple[str, ...]
    entries: int
    transcript_lines: int
    recording_uris: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Purged:
    """What :meth:`RecordStore.purge` removed."""

    calls: int
    transcript_lines: int


async def erase_caller(store: RecordStore, number: str) -> Erased:
    """Delete every call of the caller ``number`` and all its entries, in one transaction.

    Calls are found by ``caller_key`` (numbers are stored masked). The recordings the calls
    link to are returned for the caller of this function to delete (the store holds links,
    not files).
    """
    key = caller_key(number)
    async with store.engine.begin() as conn:
        found = await conn.execute(sa.select(calls.c.call_id).where(calls.c.caller_key == key))
        call_ids = tuple(sorted(row.call_id for row in found))
        if not call_ids:
            return Erased((), 0, 0, ())
        rows = await conn.execute(
            sa.select(call_entries.c.kind, call_entries.c.data).where(
                call_entries.c.call_id.in_(call_ids)
            )
        )
        entries = transcripts = 0
        uris: list[str] = []
        for kind, data in rows:
            entries += 1
            transcripts += kind == "transcript"
            linked = kind == "timeline" and isinstance(data, dict)
            if linked and data.get("event") == "recording_saved" and "uri" in data:
                uris.append(str(data["uri"]))
        await conn.execute(sa.delete(call_entries).where(call_entries.c.call_id.in_(call_ids)))
        await conn.execute(sa.delete(calls).where(calls.c.call_id.in_(call_ids)))
    return Erased(call_ids, entries, transcripts, tuple(uris))


async def purge(
    store: RecordStore, *, transcripts_before: float | None, calls_before: float | None
) -> Purged:
    """Retention: transcript lines of calls started before ``transcripts_before`` (epoch
    seconds), and whole calls started before ``calls_before``; ``None`` keeps them."""
    removed_calls = removed_lines = 0
    async with store.engine.begin() as conn:
        if calls_before is not None:
            old = sa.select(calls.c.call_id).where(calls.c.started_at < calls_before)
            result = await conn.execute(
                sa.delete(call_entries).where(
                    call_entries.c.call_id.in_(old), call_entries.c.kind == "transcript"
                )
            )
            removed_lines += result.rowcount or 0
            await conn.execute(sa.delete(call_entries).where(call_entries.c.call_id.in_(old)))
            result = await conn.execute(sa.delete(calls).where(calls.c.started_at < calls_before))
            removed_calls = result.rowcount or 0
        if transcripts_before is not None:
            old = sa.select(calls.c.call_id).where(calls.c.started_at < transcripts_before)
            result = await conn.execute(
                sa.delete(call_entries).where(
                    call_entries.c.call_id.in_(old), call_entries.c.kind == "transcript"
                )
            )
            removed_lines += result.rowcount or 0
    return Purged(removed_calls, removed_lines)


async def purge_forever(store: RecordStore, privacy: PrivacySettings) -> None:
    """Apply the retention now and then every ``purge_interval_s`` (owned by a TaskGroup)."""
    day = 86400.0
    while True:
        now = time.time()
        transcripts, whole = privacy.transcript_retention_days, privacy.call_retention_days
        try:
            purged = await purge(
                store,
                transcripts_before=None if transcripts is None else now - transcripts * day,
                calls_before=None if whole is None else now - whole * day,
            )
        except (sa.exc.SQLAlchemyError, OSError) as error:
            log.error("records_purge_failed", error=repr(error))
        else:
            if purged.calls or purged.transcript_lines:
                log.info(
                    "records_purged", calls=purged.calls, transcript_lines=purged.transcript_lines
                )
        await asyncio.sleep(privacy.purge_interval_s)


__all__ = ["Erased", "Purged", "erase_caller", "purge", "purge_forever"]

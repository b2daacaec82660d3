"""Finished calls from the shared record store, filtered the way operators ask.

Reads the store's tables (``callbridge.service.store.calls`` and ``call_entries``) with SQLAlchemy
Core,
so one query serves SQLite and PostgreSQL. Every replica reads the same store, so history is
the same whichever replica an operator opens.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import sqlalchemy as sa

from callbridge.service.store import (
    RecordStore,
    StoredCall,
    call_entries,
    calls,
    stored_call,
)

PAGE = 100


@dataclass(frozen=True, slots=True)
class HistoryFilter:
    """What the history page was asked for; ``problems`` names each field that was wrong."""

    outcome: str | None = None
    day_from: date | None = None
    day_to: date | None = None
    warning: str | None = None
    problems: tuple[str, ...] = ()

    @classmethod
    def parse(cls, query: dict[str, str]) -> HistoryFilter:
        problems: list[str] = []

        def day(name: str) -> date | None:
            text = query.get(name, "").strip()
            if not text:
                return None
            try:
                return date.fromisoformat(text)
            except ValueError:
                problems.append(f"{name}: expected a date like 2026-12-03, got {text!r}")
                return None

        outcome = query.get("outcome", "").strip()[:64] or None
        warning = query.get("warning", "").strip()[:64] or None
        return cls(outcome, day("from"), day("to"), warning, tuple(problems))


def _epoch(day: date) -> float:
    return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()


async def find_calls(
    store: RecordStore, wanted: HistoryFilter, *, tenant: str | None, limit: int = PAGE
) -> list[StoredCall]:
    """Finished calls, newest first, matching every given filter (dates are UTC days)."""
    query = sa.select(calls).where(calls.c.ended_at.is_not(None))
    if tenant is not None:
        query = query.where(calls.c.tenant == tenant)
    if wanted.outcome:
        query = query.where(calls.c.outcome == wanted.outcome)
    if wanted.day_from:
        query = query.where(calls.c.started_at >= _epoch(wanted.day_from))
    if wanted.day_to:
        query = query.where(calls.c.started_at < _epoch(wanted.day_to + timedelta(days=1)))
    if wanted.warning:
        query = query.where(
            sa.exists().where(
                call_entries.c.call_id == calls.c.call_id,
                call_entries.c.kind == "warning",
                call_entries.c.data["code"].as_string() == wanted.warning,
            )
        )
    query = query.order_by(calls.c.started_at.desc()).limit(limit)
    async with store.engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return [stored_call(row._mapping) for row in rows]


async def warning_codes(store: RecordStore, call_ids: list[str]) -> dict[str, list[str]]:
    """The distinct warning codes of each listed call, for the history table."""
    if not call_ids:
        return {}
    query = sa.select(call_entries.c.call_id, call_entries.c.data).where(
        call_entries.c.call_id.in_(call_ids), call_entries.c.kind == "warning"
    )
    found: dict[str, list[str]] = {}
    async with store.engine.connect() as conn:
        for call_id, data in await conn.execute(query):
            codes = found.setdefault(call_id, [])
            code = str(data.get("code"))
            if code not in codes:
                codes.append(code)
    return found

"""Campaigns: a batch of outbound calls, paced, retried, respecting quiet hours, in the store.

A campaign is rows (number, variables, optional time zone) kept in the record store's
database (``campaigns`` and ``campaign_rows``, on the store's SQLAlchemy metadata). Any
replica with a runner (``callbridge.service.campaign_runner``) dials due rows; coordination is the
database's own:

- **Claiming** a row is one transaction that moves it from ``pending`` to ``dialling``. On
  PostgreSQL the candidates are read ``FOR UPDATE SKIP LOCKED``, so two replicas never take
  the same row and never wait for each other. SQLite has no row locks: there the update is a
  compare-and-set on the row's state, which is correct for one replica (``check-config`` says
  so); a campaign on SQLite is for one replica.
- **Idempotency**: each row has a key (``<campaign>:<line>``, or the file's ``key`` column)
  that is unique per tenant, so submitting the same file twice adds nothing, and a row is
  dialled again only as an explicit retry (``no_answer`` / ``busy``, with back-off). A row
  left ``dialling`` by a replica that died or was stopped mid-call is **not** dialled again:
  the callee may have been reached. It becomes ``interrupted`` once its claim is older than
  ``stale_after_s`` (or at once when its own runner is cancelled), for a person to look at.
- **Quiet hours** are in the callee's zone (the row's ``tz``, else the campaign's): a row is
  never claimed inside them; its ``next_at`` moves to the end of the quiet window.
- **Pacing**: at most ``max_concurrent`` calls of the runner at once (and the bridge's own
  capacity, shared with inbound calls, through ``BridgeApp.dial``), and ``calls_per_minute``
  through a token bucket.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from callbridge.bridge.config import TenantConfig
from callbridge.bridge.errors import ConfigError
from callbridge.bridge.outbound import (
    NOT_PLACED,
    RETRY_LATER,
    RETRYABLE,
    DialResult,
    check_number,
)
from callbridge.service.store import campaign_rows, campaigns

NOT_PLACED_RETRY_S = 5.0
"""A row our own bridge could not place (full, disconnected) is tried again this soon."""

RowState = Literal["pending", "dialling", "done", "interrupted"]


# ── The batch file ───────────────────────────────────────────────────────────────────────


@dataclass(frozen=True, slots=True)
class BatchRow:
    line: int
    number: str
    variables: dict[str, str]
    tz: str | None = None
    key: str | None = None


def _zone(name: str, where: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{where}.tz: unknown time zone {name!r} (e.g. Europe/Paris)") from None
    return name


def parse_batch(text: str, fmt: Literal["csv", "jsonl"]) -> tuple[list[BatchRow], list[str]]:
    """Rows and, for each bad row, one problem naming its line and field (nothing is dropped
    silently: a file with any bad row should be fixed and submitted again)."""
    rows: list[BatchRow] = []
    problems: list[str] = []
    if fmt == "csv":
        reader = csv.DictReader(io.StringIO(text))
        if reader.fieldnames is None or "number" not in reader.fieldnames:
            return [], ["line 1: the header needs a 'number' column"]
        items: list[tuple[int, dict[str, Any]]] = []
        for record in reader:
            line = reader.line_num
            fields = {k: v for k, v in record.items() if k is not None}
            if None in record:
                problems.append(f"line {line}: more values than header columns")
                continue
            special = {k: fields.pop(k) for k in ("number", "tz", "key") if k in fields}
            items.append((line, {**special, "variables": fields}))
    else:
        items = []
        for index, raw in enumerate(text.splitlines(), start=1):
            if not raw.strip():
                continue
            try:
                value = json.loads(raw)
            except json.JSONDecodeError as exc:
                problems.append(f"line {index}: not JSON ({exc.msg})")
                continue
            if not isinstance(value, dict):
                problems.append(f"line {index}: expected an object")
                continue
            items.append((index, value))
    for line, item in items:
        where = f"line {line}"
        try:
            number = check_number(str(item.get("number") or ""), f"{where}.number")
            variables = item.get("variables") or {}
            if not isinstance(variables, dict):
                raise ConfigError(f"{where}.variables: expected an object of strings")
            tz = item.get("tz") or None
            rows.append(
                BatchRow(
                    line,
                    number,
                    {str(k): str(v) for k, v in variables.items()},
                    _zone(str(tz), where) if tz else None,
                    str(item["key"]) if item.get("key") else None,
                )
            )
        except ConfigError as exc:
            problems.append(str(exc))
    if not rows and not problems:
        problems.append("the file has no rows")
    problems.sort(key=_line_of)
    return rows, problems


def _line_of(problem: str) -> int:
    head = problem.removeprefix("line ").split(":")[0].split(".")[0]
    return int(head) if head.isdigit() else 0


# ── Pure policy: quiet hours, back-off ───────────────────────────────────────────────────


@dataclass(frozen=True, slots=True)
class CampaignPolicy:
    max_attempts: int = 3
    retry_after_s: float = 600.0
    """First retry delay; each later retry waits twice as long."""
    quiet_start: str = "21:00"
    quiet_end: str = "09:00"
    default_tz: str = "UTC"
    calls_per_minute: int = 10
    max_concurrent: int = 5
    stale_after_s: float = 3600.0

    def as_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


def policy_of(config: TenantConfig) -> CampaignPolicy:
    c = config.campaigns
    return CampaignPolicy(
        max_attempts=c.max_attempts,
        retry_after_s=c.retry_after_s,
        quiet_start=c.quiet_start,
        quiet_end=c.quiet_end,
        default_tz=c.default_tz,
        calls_per_minute=c.calls_per_minute,
        max_concurrent=c.max_concurrent_calls,
        stale_after_s=c.stale_after_s,
    )


def _clock_time(text: str) -> dt.time:
    return dt.time.fromisoformat(text)


def next_allowed(now: float, tz: str, quiet_start: str, quiet_end: str) -> float:
    """``now``, or the end of the quiet window if ``now`` is inside it in zone ``tz``."""
    zone = ZoneInfo(tz)
    local = dt.datetime.fromtimestamp(now, zone)
    start, end = _clock_time(quiet_start), _clock_time(quiet_end)
    t = local.time()
    inside = (start <= t or t < end) if start > end else (start <= t < end)
    if not inside or start == end:
        return now
    day = local.date() if t < end else local.date() + dt.timedelta(days=1)
    resume = dt.datetime.combine(day, end, tzinfo=zone)
    return max(now, resume.timestamp())


def retry_at(now: float, attempts: int, policy: CampaignPolicy, tz: str) -> float:
    delay = policy.retry_after_s * 2 ** max(attempts - 1, 0)
    return next_allowed(now + delay, tz, policy.quiet_start, policy.quiet_end)


# ── The store ────────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True, slots=True)
class ClaimedRow:
    campaign_id: str
    line: int
    number: str
    variables: dict[str, str]
    tz: str
    attempts: int
    policy: CampaignPolicy


class CampaignStore:
    """Campaign state on the record store's engine (tables created with the store's)."""

    def __init__(
        self,
        engine: AsyncEngine,
        tenant: str,
        *,
        clock: Callable[[], float] = time.time,
        not_placed_retry_s: float = NOT_PLACED_RETRY_S,
    ):
        self.not_placed_retry_s = not_placed_retry_s
        self.engine = engine
        self.tenant = tenant
        self._clock = clock

    async def submit(
        self, campaign_id: str, rows: Sequence[BatchRow], policy: CampaignPolicy
    ) -> int:
        """Store a campaign; returns how many rows were new (known keys are skipped)."""
        now = self._clock()
        insert = postgresql.insert if self.engine.dialect.name == "postgresql" else sqlite.insert
        async with self.engine.begin() as conn:
            await conn.execute(
                insert(campaigns).on_conflict_do_nothing(),
                [
                    {
                        "campaign_id": campaign_id,
                        "tenant": self.tenant,
                        "created_at": now,
                        "policy": policy.as_dict(),
                    }
                ],
            )
            values = []
            for row in rows:
                tz = row.tz or policy.default_tz
                values.append(
                    {
                        "campaign_id": campaign_id,
                        "line": row.line,
                        "tenant": self.tenant,
                        "row_key": row.key or f"{campaign_id}:{row.line}",
                        "number": row.number,
                        "variables": row.variables,
                        "tz": tz,
                        "state": "pending",
                        "attempts": 0,
                        "next_at": next_allowed(now, tz, policy.quiet_start, policy.quiet_end),
                        "updated_at": now,
                    }
                )
            result = await conn.execute(
                insert(campaign_rows).on_conflict_do_nothing().returning(campaign_rows.c.line),
                values,
            )
            return len(result.fetchall())

    async def claim(self, replica: str, limit: int) -> list[ClaimedRow]:
        """Take up to ``limit`` due rows for ``replica`` (see the module docstring)."""
        now = self._clock()
        c = campaign_rows.c
        due = (
            sa.select(campaign_rows, campaigns.c.policy)
            .join(campaigns, campaigns.c.campaign_id == c.campaign_id)
            .where(c.tenant == self.tenant, c.state == "pending", c.next_at <= now)
            .order_by(c.next_at, c.campaign_id, c.line)
            .limit(limit)
        )
        postgres = self.engine.dialect.name == "postgresql"
        if postgres:
            due = due.with_for_update(skip_locked=True, of=campaign_rows)
        claimed: list[ClaimedRow] = []
        async with self.engine.begin() as conn:
            for row in (await conn.execute(due)).mappings().all():
                policy = CampaignPolicy(**row["policy"])
                key = (c.campaign_id == row["campaign_id"]) & (c.line == row["line"])
                allowed = next_allowed(now, row["tz"], policy.quiet_start, policy.quiet_end)
                if allowed > now:  # quiet hours began since the row became due
                    await conn.execute(
                        sa.update(campaign_rows).where(key).values(next_at=allowed, updated_at=now)
                    )
                    continue
                taken = await conn.execute(
                    sa.update(campaign_rows)
                    .where(key, c.state == "pending")  # compare-and-set (SQLite's guard)
                    .values(
                        state="dialling",
                        attempts=c.attempts + 1,
                        claimed_by=replica,
                        claimed_at=now,
                        updated_at=now,
                    )
                )
                if taken.rowcount == 1:
                    claimed.append(
                        ClaimedRow(
                            row["campaign_id"],
                            row["line"],
                            row["number"],
                            dict(row["variables"]),
                            row["tz"],
                            row["attempts"] + 1,
                            policy,
                        )
                    )
        return claimed

    async def finish(self, row: ClaimedRow, result: DialResult) -> RowState:
        """Record a row's dial; a retryable outcome with attempts left goes back to pending."""
        now = self._clock()
        code = result.error_code or ""
        c = campaign_rows.c
        retryable = result.outcome in RETRYABLE or code in RETRY_LATER
        retry = retryable and row.attempts < row.policy.max_attempts
        state: RowState = "pending" if retry or code in NOT_PLACED else "done"
        values: dict[str, Any] = {
            "state": state,
            "outcome": result.outcome.value,
            "error_code": result.error_code,
            "call_id": result.call_id,
            "updated_at": now,
        }
        if code in NOT_PLACED:  # never left this bridge: not an attempt, try again soon
            values["attempts"] = c.attempts - 1
            values["next_at"] = now + self.not_placed_retry_s
        elif retry:
            values["next_at"] = retry_at(now, row.attempts, row.policy, row.tz)
        async with self.engine.begin() as conn:
            await conn.execute(
                sa.update(campaign_rows)
                .where(c.campaign_id == row.campaign_id, c.line == row.line, c.state == "dialling")
                .values(**values)
            )
        return state

    async def release(self, row: ClaimedRow) -> None:
        """Our claim of ``row`` ended before its dial started: back to ``pending``, as due as
        before, the attempt not counted (nobody was called)."""
        c = campaign_rows.c
        async with self.engine.begin() as conn:
            await conn.execute(
                sa.update(campaign_rows)
                .where(c.campaign_id == row.campaign_id, c.line == row.line, c.state == "dialling")
                .values(
                    state="pending",
                    attempts=c.attempts - 1,
                    claimed_by=None,
                    claimed_at=None,
                    updated_at=self._clock(),
                )
            )

    async def interrupt(self, row: ClaimedRow) -> None:
        """Our dial of ``row`` was cut short: never dial it again automatically."""
        c = campaign_rows.c
        async with self.engine.begin() as conn:
            await conn.execute(
                sa.update(campaign_rows)
                .where(c.campaign_id == row.campaign_id, c.line == row.line, c.state == "dialling")
                .values(state="interrupted", updated_at=self._clock())
            )

    async def expire_stale(self, stale_after_s: float) -> int:
        """Rows claimed longer ago than ``stale_after_s`` (their replica died) -> interrupted."""
        now = self._clock()
        c = campaign_rows.c
        async with self.engine.begin() as conn:
            result = await conn.execute(
                sa.update(campaign_rows)
                .where(
                    c.tenant == self.tenant,
                    c.state == "dialling",
                    c.claimed_at < now - stale_after_s,
                )
                .values(state="interrupted", updated_at=now)
            )
        return int(result.rowcount or 0)

    async def status(self, campaign_id: str) -> dict[str, Any] | None:
        c = campaign_rows.c
        async with self.engine.connect() as conn:
            found = (
                await conn.execute(
                    sa.select(campaigns.c.created_at).where(campaigns.c.campaign_id == campaign_id)
                )
            ).first()
            if found is None:
                return None
            rows = (
                await conn.execute(
                    sa.select(c.line, c.state, c.outcome, c.attempts, c.error_code)
                    .where(c.campaign_id == campaign_id)
                    .order_by(c.line)
                )
            ).all()
        by_state: dict[str, int] = {}
        by_outcome: dict[str, int] = {}
        for row in rows:
            by_state[row.state] = by_state.get(row.state, 0) + 1
            if row.outcome:
                by_outcome[row.outcome] = by_outcome.get(row.outcome, 0) + 1
        return {
            "campaign_id": campaign_id,
            "rows": len(rows),
            "by_state": by_state,
            "last_outcomes": by_outcome,
            "dials": sum(r.attempts for r in rows),
        }

"""The campaign runner: one per replica, it claims due rows and dials them through the app.

Which rows are due, and what a result does to a row, is decided in ``callbridge.service.campaigns``
(the store); this module only paces (``max_concurrent`` calls at once, ``calls_per_minute``
through a token bucket, nothing while the bridge is full) and owns the dial tasks: each is a
task of the runner's TaskGroup, and a row whose dial is cancelled is marked ``interrupted``
before the cancellation goes on, so no row is left claimed by a runner that is gone.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import structlog

from callbridge.bridge.errors import ConfigError
from callbridge.bridge.outbound import DialOutcome, DialResult
from callbridge.bridge.record import mask_number
from callbridge.service.admission import ConnectRateLimiter
from callbridge.service.campaigns import CampaignStore, ClaimedRow, RowState

log = structlog.get_logger("callbridge.campaigns")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RowFinished:
    """A campaign row's dial, for the tenant's webhook (``type: CampaignRow``)."""

    tenant: str
    campaign_id: str
    line: int
    number: str
    outcome: str
    state: RowState
    attempts: int
    error_code: str | None
    call_id: str
    at: float = field(default_factory=time.time)

    @property
    def kind(self) -> str:
        return "campaign_row"

    def payload(self) -> dict[str, Any]:
        return {
            "type": "CampaignRow",
            "tenant": self.tenant,
            "campaign_id": self.campaign_id,
            "line": self.line,
            "number": self.number,
            "outcome": self.outcome,
            "final": self.state != "pending",
            "attempts": self.attempts,
            "error_code": self.error_code,
            "call_id": self.call_id,
            "timestamp": self.at,
        }


def row_finished(
    tenant: str, row: ClaimedRow, result: DialResult, state: RowState, *, full_number: bool
) -> RowFinished:
    return RowFinished(
        tenant,
        row.campaign_id,
        row.line,
        mask_number(row.number, full=full_number),
        result.outcome.value,
        state,
        row.attempts,
        result.error_code,
        result.call_id or "",
    )


# ── The runner ───────────────────────────────────────────────────────────────────────────

Dial = Callable[[str, Mapping[str, str]], Awaitable[DialResult]]


class CampaignRunner:
    """Dials due campaign rows for one replica until :meth:`stop`.

    ``dial`` is ``BridgeApp.dial`` (so a campaign call is the same call as any other); the
    runner only decides when, and records what came of it. ``on_row_done`` receives each
    finished row (for the webhook or metrics).
    """

    def __init__(
        self,
        store: CampaignStore,
        dial: Dial,
        *,
        replica: str,
        max_concurrent: int,
        calls_per_minute: int,
        poll_s: float = 1.0,
        stale_after_s: float = 3600.0,
        on_row_done: Callable[[ClaimedRow, DialResult, RowState], None] | None = None,
        has_capacity: Callable[[], bool] = lambda: True,
    ) -> None:
        self._has_capacity = has_capacity
        self._store = store
        self._dial = dial
        self.replica = replica
        self._max = max_concurrent
        self._bucket = ConnectRateLimiter(calls_per_minute, burst=1)
        self._poll_s = poll_s
        self._stale_after_s = stale_after_s
        self._on_row_done = on_row_done
        self._active = 0
        self._slot_free = asyncio.Event()
        self._stop = asyncio.Event()
        self.dialled: list[tuple[str, int]] = []

    @property
    def active(self) -> int:
        """Dials of this runner under way now."""
        return self._active

    @property
    def store(self) -> CampaignStore:
        return self._store

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            while not self._stop.is_set():
                await self._store.expire_stale(self._stale_after_s)
                if self._active >= self._max:
                    await self._wait(self._slot_free)
                    continue
                if not self._has_capacity():  # the bridge is full (inbound calls count)
                    await self._wait(self._slot_free, self._poll_s)
                    continue
                wait = self._bucket.reserve(max_wait_s=3600.0)
                if wait:
                    await self._wait(None, wait)
                    if self._stop.is_set():
                        break
                rows = await self._claim()
                if not rows:
                    self._bucket.give_back()
                    await self._wait(None, self._poll_s)
                    continue
                for row in rows:
                    self._active += 1
                    group.create_task(self._one(row), name=f"campaign-{row.campaign_id}-{row.line}")

    async def _wait(self, event: asyncio.Event | None, timeout: float = 3600.0) -> None:
        waiters = [self._stop.wait()] + ([event.wait()] if event is not None else [])
        tasks = [asyncio.ensure_future(w) for w in waiters]
        try:
            await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if event is not None:
            event.clear()

    async def _claim(self) -> list[ClaimedRow]:
        """Claim a due row. Cancelled meanwhile (the process is stopping), the claim is let
        finish and what it took is released at once (nobody was called, so it is safe to dial
        later): a row committed as ``dialling`` with no dial behind it would otherwise wait
        ``stale_after_s`` (an hour) and then be ``interrupted``, never dialled."""
        claim = asyncio.ensure_future(self._store.claim(self.replica, 1))
        try:
            return await asyncio.shield(claim)
        except asyncio.CancelledError:
            await asyncio.wait({claim})
            if not claim.cancelled() and claim.exception() is None:
                for row in claim.result():
                    await _settled(self._store.release(row))
            raise

    async def _one(self, row: ClaimedRow) -> None:
        self.dialled.append((row.campaign_id, row.line))
        try:
            result = await self._dial(row.number, row.variables)
        except asyncio.CancelledError:
            await _settled(self._store.interrupt(row))
            raise
        except ConfigError as exc:  # e.g. the row's variables do not fit the template
            result = DialResult(row.number, DialOutcome.FAILED, "INVALID_ROW", detail=str(exc))
        except Exception as exc:
            log.exception("campaign_dial_failed", campaign=row.campaign_id, line=row.line)
            result = DialResult(row.number, DialOutcome.FAILED, "INTERNAL_ERROR", detail=str(exc))
        finally:
            self._active -= 1
            self._slot_free.set()
        state = await _settled(self._store.finish(row, result))
        log.info(
            "campaign_row",
            campaign=row.campaign_id,
            line=row.line,
            attempt=row.attempts,
            outcome=result.outcome.value,
            state=state,
        )
        if self._on_row_done is not None:
            self._on_row_done(row, result, state)


async def _settled(work: Awaitable[T]) -> T:
    """Finish ``work`` even if we are cancelled meanwhile (a row must never be left claimed
    by a runner that is gone), then let the cancellation through."""
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait({task})
        raise

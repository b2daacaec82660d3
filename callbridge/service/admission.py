"""Per-tenant admission: a cap on new model connections per minute.

Gemini quotas count new Live sessions, and a burst of calls (a restart with a full queue, a
marketing campaign) can spend a minute's quota in a second and get every call refused. A
token bucket spreads the connects out instead: a call over the rate waits for its turn, up
to ``limits.admission_wait_s``, and says so with ``CALL_ADMISSION_DELAYED``; a call that
would wait longer is refused at once (``ModelUnavailable``), which the runner reports and
ends cleanly, rather than leaving a caller in silence.

The bucket is plain arithmetic on a clock: a call reserves a token (possibly one that will
only exist in the future) and sleeps until then. No background task refills it and no task
is created per call. A reservation whose caller goes away while waiting is handed back.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from callbridge.bridge.errors import ModelUnavailable
from callbridge.bridge.ports import ModelConnector, ModelSession, SessionRequest
from callbridge.bridge.warnings import BridgeWarning, WarningCode, WarningSink


@dataclass
class AdmissionStats:
    admitted: int = 0
    delayed: int = 0
    refused: int = 0
    waited_s: float = 0.0


class ConnectRateLimiter:
    """A token bucket of ``burst`` tokens refilled at ``per_minute`` tokens a minute."""

    def __init__(
        self,
        per_minute: int,
        *,
        burst: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if per_minute < 1 or burst < 1:
            raise ValueError("per_minute and burst must be at least 1")
        self.rate_per_s = per_minute / 60.0
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._updated = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate_per_s)
        self._updated = now

    @property
    def tokens(self) -> float:
        """Tokens available now (negative while reservations are outstanding)."""
        self._refill()
        return self._tokens

    def reserve(self, max_wait_s: float) -> float | None:
        """Take a token; how long to wait before using it, or ``None`` (nothing taken).

        ``None`` means the token would come later than ``max_wait_s`` from now.
        """
        self._refill()
        wait = max(0.0, (1.0 - self._tokens) / self.rate_per_s)
        if wait > max_wait_s:
            return None
        self._tokens -= 1.0
        return wait

    def give_back(self) -> None:
        """Return a reserved token that was not used (its caller went away)."""
        self._refill()
        self._tokens = min(self.burst, self._tokens + 1.0)


class AdmittedConnector:
    """A :class:`~callbridge.bridge.ports.ModelConnector` that opens sessions only when admitted.

    Wrap every connector of a tenant with the same limiter: the limit is per tenant, and a
    fallback connection counts as a connection too.
    """

    def __init__(
        self,
        inner: ModelConnector,
        limiter: ConnectRateLimiter,
        *,
        max_wait_s: float,
        sink: WarningSink,
        stats: AdmissionStats | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.inner = inner
        self._limiter = limiter
        self._max_wait_s = max_wait_s
        self._sink = sink
        self._sleep = sleep
        self.stats = stats if stats is not None else AdmissionStats()

    async def aclose(self) -> None:
        """Release the wrapped connector's resources, if it holds any."""
        close = getattr(self.inner, "aclose", None)
        if close is not None:
            await close()

    @asynccontextmanager
    async def open(self, request: SessionRequest) -> AsyncIterator[ModelSession]:
        await self._admit(request)
        async with self.inner.open(request) as session:
            yield session

    async def _admit(self, request: SessionRequest) -> None:
        wait = self._limiter.reserve(self._max_wait_s)
        per_minute = round(self._limiter.rate_per_s * 60)
        if wait is None:
            self.stats.refused += 1
            raise ModelUnavailable(
                f"admission refused: over limits.model_connects_per_minute = {per_minute} "
                f"for longer than limits.admission_wait_s = {self._max_wait_s:g} s"
            )
        if wait > 0:
            self.stats.delayed += 1
            self.stats.waited_s += wait
            self._sink.submit(
                BridgeWarning(
                    WarningCode.CALL_ADMISSION_DELAYED,
                    f"model connection delayed {wait:.2f} s by the tenant's limit of "
                    f"{per_minute} connects per minute",
                    call_id=request.call_id,
                    tenant=request.tenant,
                    details={"wait_s": round(wait, 3), "per_minute": per_minute},
                )
            )
            try:
                await self._sleep(wait)
            except asyncio.CancelledError:
                self._limiter.give_back()
                raise
        self.stats.admitted += 1


def admit_all(
    connectors: list[ModelConnector],
    *,
    per_minute: int,
    burst: int,
    max_wait_s: float,
    sink: WarningSink,
) -> tuple[list[AdmittedConnector], ConnectRateLimiter, AdmissionStats]:
    """Wrap a tenant's connectors with one shared limiter (and one set of counters)."""
    limiter = ConnectRateLimiter(per_minute, burst=burst)
    stats = AdmissionStats()
    wrapped = [
        AdmittedConnector(c, limiter, max_wait_s=max_wait_s, sink=sink, stats=stats)
        for c in connectors
    ]
    return wrapped, limiter, stats

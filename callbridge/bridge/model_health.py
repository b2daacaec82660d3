"""Is the model reachable? A circuit breaker fed by the call records, read by readiness.

A replica that cannot reach Gemini (TLS error, DNS, a dead proxy) would otherwise go on
claiming calls and hanging up on every one a moment later, while a healthy replica on the
same connector sits idle. So after ``failures_unready`` calls in a row found no model at all
(every connector failed, fallbacks included), :meth:`ModelHealth.reason` says
``model_unavailable``: ``/readyz`` turns 503 and the call source stops claiming, so the
platform offers the calls to another replica.

Recovery needs no operator: after ``retry_after_s`` the breaker half-opens, the replica is
ready again, and the next call is the probe. A connected model closes the breaker; one more
failure opens it again at once (no new run of ``failures_unready``).

It listens to :class:`~callbridge.bridge.record.CallRecord` entries (``model_connected`` notes and
the
``model_unavailable`` outcome), so the runner needs no extra hook.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import structlog

from callbridge.bridge.record import CallRecord, RecordEntry

log = structlog.get_logger("callbridge.model_health")

MODEL_UNAVAILABLE = "model_unavailable"


class ModelHealth:
    """Consecutive model failures -> unready for a while; a success -> ready."""

    def __init__(
        self,
        *,
        failures_unready: int = 3,
        retry_after_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failures_unready < 1:
            raise ValueError("failures_unready must be at least 1")
        self.failures_unready = failures_unready
        self.retry_after_s = retry_after_s
        self._clock = clock
        self.failures_in_a_row = 0
        self._open_since: float | None = None
        self.trips = 0

    def connected(self) -> None:
        if self._open_since is not None or self.failures_in_a_row:
            if self._open_since is not None:
                log.info("model_reachable_again", after_failures=self.failures_in_a_row)
            self._open_since = None
            self.failures_in_a_row = 0

    def failed(self) -> None:
        self.failures_in_a_row += 1
        half_open = self._open_since is not None
        if half_open or self.failures_in_a_row >= self.failures_unready:
            self._open_since = self._clock()
            self.trips += 1
            log.warning(
                "model_unreachable",
                failures_in_a_row=self.failures_in_a_row,
                unready_for_s=self.retry_after_s,
            )

    def reason(self) -> str | None:
        """``model_unavailable`` while the breaker is open, else ``None``."""
        if self._open_since is None:
            return None
        if self._clock() - self._open_since < self.retry_after_s:
            return MODEL_UNAVAILABLE
        return None  # half-open: the next call tries the model

    def ready(self) -> bool:
        return self.reason() is None

    def on_entry(self, record: CallRecord, entry: RecordEntry) -> None:
        """The record listener: ``model_connected`` / outcome ``model_unavailable``."""
        data: dict[str, Any] = entry.data
        if entry.kind == "timeline" and data.get("event") == "model_connected":
            self.connected()
        elif (
            entry.kind == "state"
            and data.get("state") == "ended"
            and data.get("outcome") == MODEL_UNAVAILABLE
        ):
            self.failed()

"""Give memory back promptly in a process that runs for weeks.

Each call's objects (the SDK's call, its voice connection and 1 MiB send buffer, the model
session, our pumps) refer to each other in cycles, so reference counting alone never frees
them: they wait for a full garbage collection. CPython runs those rarely when the heap holds
many long-lived objects (google-genai and ADK import hundreds of thousands), so an
unattended bridge grew by about 1 MiB per finished call (measured with ``callbridge soak``).

:func:`freeze_import_time_objects` moves everything allocated at start-up out of the
collector's view, which makes a full collection cheap (it only walks objects made since);
:class:`CycleCollector` then runs one after calls have finished, at most every few seconds,
and logs any pause long enough to matter to audio.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable

import structlog

log = structlog.get_logger("callbridge.housekeeping")

SLOW_PAUSE_S = 0.02
"""A collection longer than one audio frame is worth a log line."""


def freeze_import_time_objects() -> None:
    """Collect once, then exempt every object alive now from future collections."""
    gc.collect()
    gc.freeze()


def release_frozen_objects() -> None:
    """Undo :func:`freeze_import_time_objects` when the app stops, so exit can free them."""
    gc.unfreeze()


class CycleCollector:
    """Runs ``gc.collect()`` on the event loop after calls end, rate-limited."""

    def __init__(
        self, *, interval_s: float = 5.0, clock: Callable[[], float] = time.perf_counter
    ) -> None:
        self._interval_s = interval_s
        self._clock = clock
        self._finished = asyncio.Event()
        self.collections = 0
        self.longest_pause_s = 0.0

    def call_finished(self) -> None:
        self._finished.set()

    async def run(self) -> None:
        while True:
            await self._finished.wait()
            await asyncio.sleep(self._interval_s)
            self._finished.clear()
            started = self._clock()
            freed = gc.collect()
            pause = self._clock() - started
            self.collections += 1
            self.longest_pause_s = max(self.longest_pause_s, pause)
            if pause >= SLOW_PAUSE_S:
                log.info("gc_pause", seconds=round(pause, 4), freed=freed)

"""Where the bridge's event loop was when it stalled (benchmark child side).

A latency tail with no garbage-collection pause and no foreign load behind it is the loop
being held by one callback. :class:`StallWatch` finds which: the loop stamps a heartbeat every
few milliseconds, and a daemon thread that sees the stamp go stale samples the main thread's
Python stack (``sys._current_frames``) until the loop beats again. Stacks are counted by their
innermost frames, so the report names the code that held the loop and how often.

The thread needs the GIL to sample, so code that holds it in C for the whole stall shows up
as the Python line that called into C, sampled once the C call returns; that is still the
right line to look at.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
import traceback
from collections import Counter
from typing import Any

STALL_S = 0.015
"""Most of a 20 ms audio frame: a loop held this long makes audio late."""

TICK_S = 0.003
FRAMES_KEPT = 8


class StallWatch:
    """Heartbeat on the loop, sampler in a thread; :meth:`export` for the parent."""

    def __init__(self, *, stall_s: float = STALL_S, tick_s: float = TICK_S) -> None:
        self._stall_s = stall_s
        self._tick_s = tick_s
        self._beat = time.monotonic()
        self._main = threading.main_thread().ident
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="stall-watch", daemon=True)
        self.stalls: list[tuple[float, float]] = []  # (started, seconds)
        self.stacks: Counter[str] = Counter()

    async def run(self) -> None:
        """The heartbeat; starts the sampler thread and stops it when cancelled."""
        self._beat = time.monotonic()
        self._thread.start()
        try:
            while True:
                self._beat = time.monotonic()
                await asyncio.sleep(self._tick_s)
        finally:
            self._stop.set()

    def _sample(self) -> None:
        stalled_since: float | None = None
        while not self._stop.wait(self._tick_s):
            beat = self._beat
            behind = time.monotonic() - beat
            if behind < self._stall_s:
                if stalled_since is not None:
                    self.stalls.append((stalled_since, beat - stalled_since))
                    stalled_since = None
                continue
            stalled_since = stalled_since if stalled_since is not None else beat
            frame = sys._current_frames().get(self._main or 0)
            if frame is not None:
                stack = traceback.extract_stack(frame)[-FRAMES_KEPT:]
                self.stacks[
                    " <- ".join(
                        f"{f.filename.rsplit('/', 2)[-1]}:{f.lineno} {f.name}"
                        for f in reversed(stack)
                    )
                ] += 1

    def export(self, top: int = 15) -> dict[str, Any]:
        longest = max((s for _, s in self.stalls), default=0.0)
        return {
            "stalls": len(self.stalls),
            "longest_ms": round(longest * 1000, 1),
            "stalls_ms": [[round(t, 3), round(s * 1000, 1)] for t, s in self.stalls[-200:]],
            "stacks": [[count, stack] for stack, count in self.stacks.most_common(top)],
        }

"""Who is speaking right now, from cheap signals already on the audio path.

The bridge needs this for decisions the model cannot make for it: refusing an injected
message while someone talks, and timing how long the model takes to answer after the caller
stops. It is an energy gate with a hangover, a few microseconds per 20 ms frame.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from callbridge.bridge.audio import duration_s, rms


class CallerActivity:
    """Tracks caller speech from caller PCM frames (energy above a threshold, with hangover)."""

    __slots__ = (
        "_clock",
        "_hangover_s",
        "_last_voiced",
        "_min_voiced_s",
        "_rate",
        "_threshold",
        "_voiced_run_s",
        "level_rms",
        "speaking",
        "stopped_at",
    )

    def __init__(
        self,
        rate: int,
        *,
        threshold_rms: float = 500.0,
        hangover_s: float = 0.5,
        min_voiced_s: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rate = rate
        self._threshold = threshold_rms
        self._hangover_s = hangover_s
        self._clock = clock
        self._last_voiced = float("-inf")
        self._voiced_run_s = 0.0
        self._min_voiced_s = min_voiced_s
        self.speaking = False
        self.stopped_at: float | None = None
        self.level_rms = 0.0
        """The last frame's RMS (what the operator console's input meter shows)."""

    def silence_s(self) -> float:
        """How long since the last voiced frame (at a stop: the hangover, about)."""
        return self._clock() - self._last_voiced

    @property
    def last_voiced_at(self) -> float:
        """When the caller's energy was last above the threshold (``-inf``: never)."""
        return self._last_voiced

    def update(self, pcm: bytes) -> bool:
        """Feed one caller chunk; returns True when speech just ended."""
        now = self._clock()
        level = self.level_rms = rms(pcm)
        if level >= self._threshold:
            self._voiced_run_s += duration_s(len(pcm), self._rate)
            self._last_voiced = now
            if not self.speaking and self._voiced_run_s >= self._min_voiced_s:
                self.speaking = True
            return False
        self._voiced_run_s = 0.0
        if self.speaking and now - self._last_voiced >= self._hangover_s:
            self.speaking = False
            self.stopped_at = now
            return True
        return False

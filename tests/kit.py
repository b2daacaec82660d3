"""What every suite needs to make sound and wait for things: one copy, not one per folder.

``tone`` and ``caller_says`` make s16le mono PCM; ``eventually`` polls a condition and fails
the test with what it waited for; ``ManualClock`` is a clock the test moves and ``WarningList``
a warning sink that keeps what it is given.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from callbridge.bridge.warnings import BridgeWarning

CALL_RATE = 16000
"""The tenant default call rate (the Telcoflow leg)."""


def tone(seconds: float, rate: int = CALL_RATE, freq: float = 440.0, amp: int = 8000) -> bytes:
    """A sine tone, s16le mono."""
    t = np.arange(int(seconds * rate)) / rate
    return (np.sin(2 * np.pi * freq * t) * amp).astype("<i2").tobytes()


def caller_says(seconds: float, rate: int = CALL_RATE) -> bytes:
    """Caller speech at the call's rate, loud enough for the Gemini emulator's VAD."""
    return tone(seconds, rate, 220.0, amp=9000)


async def eventually(pred: Callable[[], bool], timeout: float = 15.0, what: str = "") -> None:
    """Poll ``pred`` every 20 ms; fail with ``what`` after ``timeout`` (generous: CI is busy)."""
    try:
        async with asyncio.timeout(timeout):
            while not pred():
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout} s waiting for: {what or pred}") from None


@dataclass
class ManualClock:
    """A clock the test moves (``clock.now = 2.8``), for objects that take ``clock=``."""

    now: float = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class WarningList:
    """A :class:`~callbridge.bridge.warnings.WarningSink` that keeps every warning."""

    warnings: list[BridgeWarning] = field(default_factory=list)

    def submit(self, warning: BridgeWarning) -> None:
        self.warnings.append(warning)

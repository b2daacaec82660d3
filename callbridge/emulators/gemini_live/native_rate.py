"""The server side of a declared input rate: caller audio is resampled to the model's 16 kHz.

Google's Live API documentation: input audio is "natively 16 kHz, but the Live API will resample
if needed so any sample rate can be sent" when declared as ``audio/pcm;rate=N``. The emulator
does the same before its speech detection, so a bridge that sends a call's own 8 kHz is judged
on what a 16 kHz model would hear. [assumption] How Google resamples (filter, delay) is not
published; soxr HQ is a faithful, conservative stand-in (its ~64 ms hold at 8 -> 16 kHz shifts
detected speech edges later by that much, never earlier).
"""

from __future__ import annotations

from typing import Final

import numpy as np
import soxr

__all__ = ["NATIVE_INPUT_RATE", "NativeRate"]

NATIVE_INPUT_RATE: Final = 16000


class NativeRate:
    """One connection's resampler from the declared rate to 16 kHz (kept across chunks)."""

    __slots__ = ("_rate", "_stream")

    def __init__(self) -> None:
        self._rate = NATIVE_INPUT_RATE
        self._stream: soxr.ResampleStream | None = None

    def to_native(self, pcm: bytes, rate: int) -> bytes:
        """``pcm`` (s16le mono at ``rate``) as 16 kHz; a change of declared rate restarts."""
        if rate != self._rate:
            self._rate = rate
            self._stream = (
                None
                if rate == NATIVE_INPUT_RATE
                else soxr.ResampleStream(rate, NATIVE_INPUT_RATE, 1, dtype="int16", quality="HQ")
            )
        if self._stream is None or len(pcm) < 2:
            return pcm
        samples = np.frombuffer(pcm, dtype="<i2", count=len(pcm) // 2)
        out: np.ndarray = self._stream.resample_chunk(samples, last=False)
        return out.tobytes()

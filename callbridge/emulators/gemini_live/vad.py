"""Energy voice-activity detection on the caller's audio, timed in audio time.

The emulator needs to know three things: when the caller starts talking (to barge in), and when
an utterance ends (to start the next model turn). Timing runs on audio samples, not on the wall
clock, so results do not depend on how fast or bursty the client sends. Each chunk is scored in
one numpy pass (RMS per 20 ms frame); the per-frame state machine is a few comparisons per frame.
The sample rate only changes the frame size, so no resampling is needed for detection.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from callbridge.emulators.energy import slice_mean_squares

__all__ = ["EnergyVad", "VadEvents"]

FRAME_S = 0.02


@dataclass(frozen=True, slots=True)
class VadEvents:
    """What one chunk of audio changed."""

    started: bool = False  # speech confirmed (voiced >= start_s) during this chunk
    ended: bool = False  # an utterance (voiced >= min_utterance_s) ended during this chunk
    in_speech: bool = False  # speech confirmed and not yet ended after this chunk


_NOTHING = VadEvents()
_EMPTY = np.zeros(0, dtype=np.int16)


class EnergyVad:
    """RMS-threshold VAD: start after `start_s` voiced, end after `hangover_s` of silence.

    An utterance counts (and ends a user turn) only if it had at least `min_utterance_s` of voiced
    audio; shorter blips still report `started` (and so can still cut the model off).
    """

    def __init__(
        self,
        threshold_rms: float = 500.0,
        hangover_s: float = 0.4,
        start_s: float = 0.06,
        min_utterance_s: float = 0.12,
    ) -> None:
        self._threshold_sq = float(threshold_rms) ** 2
        self._hangover_s = hangover_s
        self._start_s = start_s
        self._min_utterance_s = min_utterance_s
        self._rate = 0
        self._frame = 0
        self._frame_s = FRAME_S
        self._carry = _EMPTY
        self._reset()

    def _reset(self) -> None:
        self._active = False  # any voiced frame since the last reset
        self._started = False
        self._voiced_s = 0.0
        self._silence_s = 0.0

    @property
    def in_speech(self) -> bool:
        """True between a confirmed speech start and the end of that utterance."""
        return self._started

    def feed(self, pcm: bytes, rate: int) -> VadEvents:
        """Score one chunk of s16le mono PCM at `rate` Hz."""
        if rate != self._rate:
            self._rate = rate
            self._frame = max(1, round(rate * FRAME_S))
            self._frame_s = self._frame / rate
            self._carry = _EMPTY
        samples = np.frombuffer(pcm, dtype="<i2", count=len(pcm) // 2)
        if self._carry.size:
            samples = np.concatenate((self._carry, samples))
        frame = self._frame
        whole = samples.size // frame * frame
        self._carry = samples[whole:].copy() if whole < samples.size else _EMPTY
        if whole == 0:
            return VadEvents(in_speech=self._started) if self._started else _NOTHING
        started = ended = False
        threshold = self._threshold_sq
        for energy in slice_mean_squares(samples, frame):
            if energy > threshold:
                self._active = True
                self._voiced_s += self._frame_s
                self._silence_s = 0.0
                if not self._started and self._voiced_s >= self._start_s - 1e-9:
                    self._started = started = True
            elif self._active:
                self._silence_s += self._frame_s
                if self._silence_s >= self._hangover_s - 1e-9:
                    if self._started and self._voiced_s >= self._min_utterance_s - 1e-9:
                        ended = True
                    self._reset()
        return VadEvents(started=started, ended=ended, in_speech=self._started)

    def flush(self) -> bool:
        """End any utterance in progress now (`audioStreamEnd`); True if one counted."""
        counted = self._started and self._voiced_s >= self._min_utterance_s - 1e-9
        self._reset()
        self._carry = _EMPTY
        return counted

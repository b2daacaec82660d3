"""Answering-machine detection from what the line does, as a pure state machine.

A person who picks up says something short ("Hello?") and waits, or says nothing. A machine
plays a long, uninterrupted greeting and then a beep. :class:`LineDetector` is fed one
classified frame at a time (:func:`classify_frame`: silence, speech or tone) with its length in
seconds; it keeps its own clock (the sum of frame lengths), so the table tests in
``tests/unit/test_amd.py`` drive it with no audio and no time.

Verdicts, in the order they can happen:

- ``HUMAN``: speech that ended (``end_silence_s`` of silence) before ``machine_speech_s``;
  or nothing at all for ``opening_silence_s`` (a callee who waits for us to talk);
- ``MACHINE``: speech that went on for ``machine_speech_s`` (pauses shorter than
  ``end_silence_s`` do not break it), or a beep before any decision;
- ``LEAVE_MESSAGE`` (after ``MACHINE``): the beep ended; or, for a mailbox that never beeps,
  ``no_beep_wait_s`` of silence after the greeting.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np


class FrameKind(enum.Enum):
    SILENCE = "silence"
    SPEECH = "speech"
    TONE = "tone"


class Verdict(enum.Enum):
    LISTENING = "listening"
    HUMAN = "human"
    MACHINE = "machine"
    LEAVE_MESSAGE = "leave_message"


SPEECH_RMS = 500.0
"""The bridge's speech threshold (``callbridge.bridge.speech.CallerActivity``): int16 RMS."""
TONE_PEAK_SHARE = 0.6
"""A tone puts at least this share of a frame's energy into its strongest frequency (±1 bin);
voiced speech spreads it over many harmonics."""


def classify_frame(pcm: bytes, rate: int) -> FrameKind:
    """Silence, speech or a pure tone (a beep between 300 and 3000 Hz), for one short frame."""
    samples = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype="<i2").astype(np.float32)
    if samples.size < 16:
        return FrameKind.SILENCE
    if float(np.sqrt(np.mean(samples * samples))) < SPEECH_RMS:
        return FrameKind.SILENCE
    power = np.abs(np.fft.rfft(samples * np.hanning(samples.size))) ** 2
    total = float(power.sum())
    peak = int(np.argmax(power))
    share = float(power[max(peak - 1, 0) : peak + 2].sum()) / total if total else 0.0
    freq = peak * rate / samples.size
    if share >= TONE_PEAK_SHARE and 300.0 <= freq <= 3000.0:
        return FrameKind.TONE
    return FrameKind.SPEECH


@dataclass(frozen=True, slots=True)
class DetectorSettings:
    opening_silence_s: float = 2.0
    end_silence_s: float = 0.7
    machine_speech_s: float = 3.0
    min_beep_s: float = 0.15
    no_beep_wait_s: float = 3.0
    max_wait_s: float = 30.0
    """After ``MACHINE`` with neither beep nor pause for this long, leave the message anyway."""


class LineDetector:
    """Feed frames with :meth:`feed`; read :attr:`verdict` (it only moves forward)."""

    def __init__(self, settings: DetectorSettings | None = None) -> None:
        self.s = settings or DetectorSettings()
        self.verdict = Verdict.LISTENING
        self.t = 0.0
        self.heard_speech = False
        self.beep_heard = False
        self._speech_start: float | None = None  # start of the current speech run
        self._last_sound = 0.0  # end of the last speech or tone frame
        self._tone_s = 0.0
        self._machine_at = 0.0

    def feed(self, kind: FrameKind, seconds: float) -> Verdict:
        self.t += seconds
        now = self.t
        if kind is FrameKind.TONE:
            self._tone_s += seconds
            self._last_sound = now
            if self._tone_s >= self.s.min_beep_s and self.verdict is Verdict.LISTENING:
                self._decide(Verdict.MACHINE)
            return self.verdict
        if self._tone_s >= self.s.min_beep_s:
            # The beep just ended: the mailbox records from now on.
            self.beep_heard = True
            if self.verdict is Verdict.MACHINE:
                self._decide(Verdict.LEAVE_MESSAGE)
        self._tone_s = 0.0
        if kind is FrameKind.SPEECH:
            self.heard_speech = True
            if self._speech_start is None or now - self._last_sound > self.s.end_silence_s:
                self._speech_start = now - seconds
            self._last_sound = now
            if (
                self.verdict is Verdict.LISTENING
                and now - self._speech_start >= self.s.machine_speech_s
            ):
                self._decide(Verdict.MACHINE)
            return self.verdict
        quiet = now - self._last_sound
        if self.verdict is Verdict.LISTENING:
            answered = quiet >= self.s.end_silence_s  # after their "Hello?"
            waiting = now >= self.s.opening_silence_s  # a callee who waits for us
            if answered if self.heard_speech else waiting:
                self._decide(Verdict.HUMAN)
        elif self.verdict is Verdict.MACHINE and (
            quiet >= self.s.no_beep_wait_s or now - self._machine_at >= self.s.max_wait_s
        ):
            self._decide(Verdict.LEAVE_MESSAGE)
        return self.verdict

    def _decide(self, verdict: Verdict) -> None:
        if verdict is Verdict.MACHINE:
            self._machine_at = self.t
        self.verdict = verdict

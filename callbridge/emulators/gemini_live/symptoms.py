"""The silent failures a real Gemini Live session shows on phone lines, played on cue.

Users report (``peers-2026.md``): turns ending with ``turnComplete`` reason
``RESPONSE_REJECTED`` and no audio, agent audio at near-zero amplitude, ``interrupted`` when
nobody spoke, ``turnComplete`` mid-sentence, and sustained non-speech tones. A script marks a
turn with one of these (``Fault.response_rejected`` ...); :func:`symptom_of` finds it and
:func:`rewrite` changes the turn's steps, and the session ends the turn the way
:attr:`Symptom.ending` says. [assumption] The exact framing of the real failures (whether
``generationComplete`` precedes a mid-sentence ``turnComplete``) is not published; the
choices here are the ones the reports describe.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from .script import OUTPUT_RATE, Fault, Script, Speak, Step

__all__ = ["Symptom", "symptom_of"]

Ending = Literal["normal", "rejected", "cut", "phantom"]
_KINDS = ("response_rejected", "quiet_audio", "phantom_interrupt", "cut_mid_sentence", "tone")
TONE_HZ = 1000.0


@dataclass(frozen=True, slots=True)
class Symptom:
    fault: Fault

    @property
    def ending(self) -> Ending:
        return {
            "response_rejected": "rejected",
            "phantom_interrupt": "phantom",
            "cut_mid_sentence": "cut",
        }.get(self.fault.kind, "normal")  # type: ignore[return-value]

    def rewrite(self, steps: tuple[Step, ...]) -> tuple[Step, ...]:
        kind, amount = self.fault.kind, self.fault.amount
        if kind == "response_rejected":
            return ()
        if kind == "quiet_audio":
            return tuple(_scaled(s, amount) if isinstance(s, Speak) else s for s in steps)
        if kind == "tone":
            return (_tone(amount),)
        if kind == "phantom_interrupt":
            return _speech_until(steps, seconds=amount)
        if kind == "cut_mid_sentence":
            total = sum(s.duration_s for s in steps if isinstance(s, Speak))
            return _speech_until(steps, seconds=total * amount)
        return steps


def symptom_of(script: Script, turn_index: int | None) -> Symptom | None:
    """The silent failure scripted for this turn, if any."""
    if turn_index is None:
        return None
    for fault in script.faults:
        if fault.kind in _KINDS and fault.turn_index == turn_index:
            return Symptom(fault)
    return None


def _scaled(speak: Speak, gain: float) -> Speak:
    samples = np.frombuffer(speak.pcm, dtype="<i2").astype(np.float32) * gain
    return Speak(samples.astype("<i2").tobytes(), speak.text)


def _tone(seconds: float) -> Speak:
    t = np.arange(int(seconds * OUTPUT_RATE)) / OUTPUT_RATE
    return Speak((np.sin(2 * np.pi * TONE_HZ * t) * 6000).astype("<i2").tobytes(), "")


def _speech_until(steps: tuple[Step, ...], seconds: float) -> tuple[Step, ...]:
    """The steps up to ``seconds`` of speech; the Speak running then is cut (words in step)."""
    out: list[Step] = []
    left = seconds
    for step in steps:
        if not isinstance(step, Speak):
            out.append(step)
            continue
        if step.duration_s <= left:
            out.append(step)
            left -= step.duration_s
            continue
        share = max(0.0, left) / step.duration_s
        words = step.text.split()
        keep = words[: int(len(words) * share)]
        text = " ".join(keep).rstrip(".,;:!?")  # mid-sentence: no closing punctuation
        out.append(Speak(step.pcm[: int(len(step.pcm) * share) // 2 * 2], text))
        break
    return tuple(out)

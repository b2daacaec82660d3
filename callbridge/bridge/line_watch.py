"""Silent failures of a model turn: what the caller would sit through while every metric is green.

Gemini Live on phone lines has five known ways to fail without an error (user reports in
``peers-2026.md``): a turn that ends with ``turnComplete`` reason ``RESPONSE_REJECTED`` and no
audio; agent audio at near-zero amplitude; ``interrupted`` when the caller said nothing (after
which the session may stay silent); ``turnComplete`` in the middle of a sentence; and a
sustained non-speech tone. :class:`LineWatch` sees the model's events as the call does and
turns each symptom into a :class:`Finding`: a warning code, a description, and the bounded
recovery the call should run (a one-line nudge to the model, optionally after cutting the
turn's audio). It does no I/O and keeps no task: ``callbridge.bridge.call`` feeds it and acts.

Recoveries are bounded twice, so a model that keeps failing never loops: at most one per model
turn, and at most ``max_recoveries`` per call; past that a symptom is only reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

import numpy as np

from callbridge.bridge.audio import SAMPLE_WIDTH, rms
from callbridge.bridge.warnings import WarningCode

Recovery = Literal["repeat", "continue", "cut_and_repeat"]

NUDGES: Final[dict[Recovery, str]] = {
    "repeat": "(The caller did not hear your last reply. Please give it again, briefly.)",
    "continue": "(Your reply was cut off before the caller heard all of it. Please continue "
    "from where you stopped.)",
    "cut_and_repeat": "(Your last reply reached the caller as a tone, not speech. Please say "
    "it again.)",
}
"""What each recovery tells the model, as a user text turn (the way every family accepts)."""

ROTATION_CUT: Final = "BRIDGE_ROTATION_CUT"
"""``TurnComplete.reason`` of a turn the bridge itself ended when it switched connections."""
SENTENCE_END: Final = (".", "?", "!", "…", '"', "'", ")", ":")
TONE_PEAK_SHARE: Final = 0.8
"""A chunk is tonal when this share of its energy sits in one spectral peak (+-2 bins).
Speech, even a sustained vowel, spreads energy over many harmonics and formants."""


@dataclass(frozen=True, slots=True)
class WatchSettings:
    """Thresholds (from ``warnings.*`` in the tenant config)."""

    quiet_rms: float = 30.0
    quiet_after_s: float = 1.5
    tone_after_s: float = 3.0
    phantom_window_s: float = 1.0
    resume_after_s: float = 2.0
    max_recoveries: int = 3


@dataclass(frozen=True, slots=True)
class Finding:
    """One symptom: warn with ``code``; run ``recovery`` (if any) ``after_s`` from now.

    A delayed recovery is dropped if the model starts speaking before it is due.
    """

    code: WarningCode
    description: str
    recovery: Recovery | None = None
    after_s: float = 0.0


def is_tonal(pcm: bytes) -> bool:
    """Most of the chunk's energy in one narrow spectral peak (a beep or a hum, not speech)."""
    n = len(pcm) // SAMPLE_WIDTH
    if n < 64:
        return False
    samples = np.frombuffer(pcm, dtype="<i2", count=n).astype(np.float32)
    power = np.abs(np.fft.rfft(samples * np.hanning(n))) ** 2
    total = float(power.sum())
    if total <= 0.0:
        return False
    peak = int(np.argmax(power))
    return float(power[max(0, peak - 2) : peak + 3].sum()) / total >= TONE_PEAK_SHARE


class LineWatch:
    """Per-call detector of the five silent failures; fed by the call's model pump."""

    def __init__(self, settings: WatchSettings, output_rate: int) -> None:
        self._s = settings
        self._bytes_per_s = output_rate * SAMPLE_WIDTH
        self._recoveries_left = settings.max_recoveries
        self._reports_generation = False  # ADK never passes generationComplete on
        self.audio_chunks = 0
        """Agent audio chunks seen in the whole call (a delayed recovery checks it moved)."""
        self._new_turn()

    def _new_turn(self) -> None:
        self._audio_s = 0.0
        self._loud = False
        self._tonal_s = 0.0
        self._text: list[str] = []
        self._generated = False
        self._tool = False
        self._found = False  # this turn already produced a finding (one per turn)

    # ── Feeding ──────────────────────────────────────────────────────────────────────────

    def agent_audio(self, pcm: bytes) -> Finding | None:
        """A chunk of agent audio (model output rate). Quiet and tonal turns are found here."""
        seconds = len(pcm) / self._bytes_per_s
        self.audio_chunks += 1
        self._audio_s += seconds
        level = rms(pcm)
        if level >= self._s.quiet_rms:
            self._loud = True
        if not self._text and level >= self._s.quiet_rms and is_tonal(pcm):
            self._tonal_s += seconds
        else:
            self._tonal_s = 0.0
        if self._found:
            return None
        if self._tonal_s >= self._s.tone_after_s:
            self._found = True
            return self._finding(
                WarningCode.AGENT_AUDIO_TONE,
                f"the model sent {self._tonal_s:.1f} s of a steady tone with no transcript; "
                "its audio was cut",
                "cut_and_repeat",
            )
        if not self._loud and self._audio_s >= self._s.quiet_after_s:
            self._found = True
            return self._finding(
                WarningCode.AGENT_AUDIO_NEAR_SILENT,
                f"{self._audio_s:.1f} s of agent audio below RMS {self._s.quiet_rms:.0f} "
                "(near-zero amplitude)",
                "repeat",
            )
        return None

    def agent_text(self, text: str) -> None:
        self._text.append(text)

    def tool_call(self) -> None:
        self._tool = True

    def generation_complete(self) -> None:
        self._generated = True
        self._reports_generation = True

    def turn_complete(self, reason: str) -> Finding | None:
        """The model ended its turn (not by a barge-in); ``reason`` as the server gave it."""
        found, had_audio, text = self._found, self._audio_s > 0, "".join(self._text).strip()
        generated, tool = self._generated, self._tool
        self._new_turn()
        if found:
            return None
        if reason == "RESPONSE_REJECTED" and not had_audio:
            return self._finding(
                WarningCode.MODEL_RESPONSE_REJECTED,
                "the model ended its turn with turnComplete reason RESPONSE_REJECTED and no audio",
                "repeat",
            )
        cut = had_audio and text and not generated and not tool and reason != ROTATION_CUT
        cut = cut and self._reports_generation  # a back end that never says: cannot tell
        if cut and not text.endswith(SENTENCE_END):
            return self._finding(
                WarningCode.MODEL_TURN_CUT_MID_SENTENCE,
                f"turnComplete arrived mid-sentence (without generationComplete): "
                f"...{text[-60:]!r}",
                "continue",
            )
        return None

    def interrupted(
        self, since_caller_voice_s: float, since_bridge_input_s: float
    ) -> Finding | None:
        """``interrupted`` arrived; the two ages say when the caller or the bridge last spoke."""
        had_audio, tool = self._audio_s > 0, self._tool
        self._new_turn()
        window = self._s.phantom_window_s
        if not had_audio or tool or min(since_caller_voice_s, since_bridge_input_s) <= window:
            return None
        return self._finding(
            WarningCode.MODEL_PHANTOM_INTERRUPTION,
            f"the model reported `interrupted` but the caller was silent (last voice "
            f"{since_caller_voice_s:.1f} s before) and the bridge sent nothing",
            "continue",
            after_s=self._s.resume_after_s,
        )

    # ── Budget ───────────────────────────────────────────────────────────────────────────

    def _finding(
        self, code: WarningCode, description: str, recovery: Recovery, after_s: float = 0.0
    ) -> Finding:
        if self._recoveries_left <= 0:
            return Finding(code, description + "; recovery budget spent, no nudge")
        self._recoveries_left -= 1
        return Finding(code, description + f"; recovering: {recovery}", recovery, after_s)

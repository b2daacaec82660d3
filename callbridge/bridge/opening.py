"""A protected opening: the greeting is not cut by line noise or a caller's short "hello?".

On a phone line the first second of a call is noisy: the line settles, the callee of an
outbound call says "Hello?" while the agent starts its greeting. Gemini's server VAD treats
either as a barge-in and the greeting is cut (google-gemini/cookbook #1197).

The server's own controls (``realtimeInputConfig``: ``activityHandling``,
``automaticActivityDetection`` sensitivity, prefix padding, silence duration) are set once per
connection in the setup and apply to the whole call, so they cannot protect the opening alone:
raising them for the greeting would make every later barge-in slower too. The tenant can still
set them call-wide (``model.start_of_speech_sensitivity``, ``model.prefix_padding_ms``,
``model.silence_duration_ms``). The opening itself is guarded here, on the caller's audio
before it reaches the model:

- from the call's start until ``protect_s`` after the first agent audio (or the end of that
  first agent turn, whichever comes first), voiced caller frames are held back;
- a voiced run (ended by ``run_gap_s`` of quiet) shorter than ``min_barge_in_s`` (a
  "hello?", a click) is sent as silence of the same length, so the model's audio clock stays
  continuous and it is not cut;
- a run that reaches ``min_barge_in_s`` is a real barge-in: everything held is released at
  once and the guard opens for good;
- once the window is over, audio passes untouched (a held run is released first).

Pure and clock-injected; table-tested in ``tests/unit/test_opening.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from callbridge.bridge.audio import duration_s, rms

GuardState = Literal["protecting", "open"]


@dataclass(frozen=True, slots=True)
class OpeningSettings:
    protect_s: float = 2.0
    min_barge_in_s: float = 0.8
    run_gap_s: float = 0.3
    """Unvoiced time that ends a run (speech has quiet frames inside and between words)."""
    voice_rms: float = 500.0


class OpeningGuard:
    """Decides, frame by frame, what caller audio the model gets during the opening."""

    __slots__ = (
        "_agent_since",
        "_gap_s",
        "_held",
        "_held_s",
        "_rate",
        "_s",
        "muted_runs",
        "state",
    )

    def __init__(self, settings: OpeningSettings, rate: int) -> None:
        self._s = settings
        self._rate = rate
        self._agent_since: float | None = None
        self._held: list[bytes] = []
        self._held_s = 0.0  # from the run's first voiced frame
        self._gap_s = 0.0  # unvoiced since the run's last voiced frame
        self.muted_runs = 0
        """Short voiced runs replaced by silence (for the call record)."""
        self.state: GuardState = "protecting" if settings.protect_s > 0 else "open"

    def agent_started(self, now: float) -> None:
        """The first agent audio of the call arrived (later calls are ignored)."""
        if self._agent_since is None:
            self._agent_since = now

    def agent_turn_ended(self) -> None:
        """The opening turn is over: nothing left to protect."""
        if self._agent_since is not None:
            self.state = "open"

    def caller_frame(self, pcm: bytes, now: float) -> list[bytes]:
        """The caller audio to send now for this frame (possibly none, possibly several)."""
        if self.state == "open":
            if self._held:
                return self._release([pcm])
            return [pcm]
        if self._agent_since is not None and now - self._agent_since >= self._s.protect_s:
            self.state = "open"
            return self._release([pcm])
        voiced = rms(pcm) >= self._s.voice_rms
        if not voiced and not self._held:
            return [pcm]
        frame_s = duration_s(len(pcm), self._rate)
        self._held.append(pcm)
        self._held_s += frame_s
        self._gap_s = 0.0 if voiced else self._gap_s + frame_s
        if self._held_s - self._gap_s >= self._s.min_barge_in_s:
            self.state = "open"  # a real barge-in: the model hears all of it, at once
            return self._release([])
        if self._gap_s >= self._s.run_gap_s:
            # A short run ended: the model hears the silence it stood for, not the blip.
            self.muted_runs += 1
            silence = [bytes(len(p)) for p in self._held]
            self._reset()
            return silence
        return []

    def _release(self, tail: list[bytes]) -> list[bytes]:
        out = [*self._held, *tail]
        self._reset()
        return out

    def _reset(self) -> None:
        self._held.clear()
        self._held_s = 0.0
        self._gap_s = 0.0

"""Turn a ``CallerScript`` into one caller frame per pump tick.

The cursor is a small state machine driven by the pump (no task of its own): each call of
``next_frame`` returns exactly one 20 ms frame, or ``None`` when the caller hangs up. It reads
the agent side only through the running total of non-silent agent seconds the pump passes in.
"""

from __future__ import annotations

from .script import CallerScript, HangUp, Pause, Say, Step, WaitForAgentAudio, resample_pcm


class ScriptCursor:
    """Where the caller is in its script; appends ``(t, label)`` to ``events`` as steps start."""

    def __init__(
        self,
        script: CallerScript,
        sample_rate: int,
        frame_size: int,
        events: list[tuple[float, str]],
    ) -> None:
        self._steps = script.steps
        self._rate = sample_rate
        self._frame = frame_size
        self._silence = bytes(frame_size)
        self._events = events
        self._index = -1
        self._started = False
        self._finished = False
        self._says = 0
        self._waits = 0
        # State of the current step.
        self._pcm = b""
        self._offset = 0
        self._frames_left = 0
        self._voiced_base = 0.0
        self._deadline = 0.0

    @property
    def waiting_for_agent(self) -> bool:
        """True while a ``WaitForAgentAudio`` step runs (only then is agent audio measured)."""
        return (
            self._started
            and not self._finished
            and isinstance(self._steps[self._index], WaitForAgentAudio)
        )

    def next_frame(self, now: float, agent_voiced_s: float) -> bytes | None:
        """The caller's frame for this tick, or ``None`` to hang up now."""
        # Steps that finish without producing a frame fall through to the next one, so a
        # tick always yields a frame unless the script hangs up.
        for _ in range(len(self._steps) + 2):
            if not self._started:
                self._started = True
                self._advance(now, agent_voiced_s)
                continue
            if self._finished:
                return self._silence
            step = self._steps[self._index]
            if isinstance(step, HangUp):
                return None
            if isinstance(step, Say):
                if self._offset < len(self._pcm):
                    chunk = self._pcm[self._offset : self._offset + self._frame]
                    self._offset += self._frame
                    if self._offset >= len(self._pcm):
                        self._events.append((now, f"say:{self._says}:end"))
                    return chunk.ljust(self._frame, b"\x00")
            elif isinstance(step, Pause):
                if self._frames_left > 0:
                    self._frames_left -= 1
                    return self._silence
            elif isinstance(step, WaitForAgentAudio):
                if agent_voiced_s - self._voiced_base >= step.min_s:
                    self._events.append((now, f"wait_agent:{self._waits}:done"))
                elif now >= self._deadline:
                    self._events.append((now, "script_timeout"))
                else:
                    return self._silence
            self._advance(now, agent_voiced_s)
        return self._silence

    def _advance(self, now: float, agent_voiced_s: float) -> None:
        self._index += 1
        if self._index >= len(self._steps):
            if not self._finished:
                self._finished = True
                self._events.append((now, "script_end"))
            return
        self._start(self._steps[self._index], now, agent_voiced_s)

    def _start(self, step: Step, now: float, agent_voiced_s: float) -> None:
        if isinstance(step, Say):
            self._says += 1
            pcm = step.pcm
            if step.rate is not None:
                pcm = resample_pcm(pcm, step.rate, self._rate)
            self._pcm = pcm[: len(pcm) // 2 * 2]
            self._offset = 0
            self._events.append((now, f"say:{self._says}"))
        elif isinstance(step, Pause):
            self._frames_left = max(0, round(step.seconds / 0.02))
            self._events.append((now, f"pause:{step.seconds:g}"))
        elif isinstance(step, WaitForAgentAudio):
            self._waits += 1
            self._voiced_base = agent_voiced_s
            self._deadline = now + step.timeout_s
            self._events.append((now, f"wait_agent:{self._waits}"))
        else:
            self._events.append((now, "hangup"))

"""The caller's side of the line: caller audio to the model, and who is speaking on the way.

:class:`CallerLine` runs the caller pump (``BridgedCall``'s ``caller-pump`` task), the mirror
of :class:`~callbridge.bridge.line.AgentLine` for the agent's audio. Per chunk of caller audio:

- speech starts, stops and voiced frames (:class:`~callbridge.bridge.speech.CallerActivity`)
  go to the turn machine through ``feed``;
- the audio the model gets now is decided by the outbound line's etiquette on an outbound call
  (:mod:`callbridge.bridge.outbound_line`), by the protected opening on an inbound one
  (:mod:`callbridge.bridge.opening`);
- it is resampled to the model's input rate and cut into the model's frames
  (:mod:`callbridge.bridge.input_path`);
- while a BLOCKING tool call is pending each frame is held (:class:`~callbridge.bridge.gate.
  HeldAudio`, bounded, oldest dropped with a ``CALLER_AUDIO_DROPPED`` warning): Gemini closes
  the session (1008) on audio then. Held frames go first, in order, once nothing blocks.

The decisions (:meth:`CallerLine.take`, :meth:`CallerLine.gate`) never await; only sending
does. Table-tested in ``tests/unit/test_caller_line.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Final

from callbridge.bridge import turns as t
from callbridge.bridge.audio import StreamResampler, frame_bytes
from callbridge.bridge.config import AudioSettings
from callbridge.bridge.errors import CallGone
from callbridge.bridge.gate import HeldAudio
from callbridge.bridge.input_path import caller_framer
from callbridge.bridge.opening import OpeningGuard, OpeningSettings
from callbridge.bridge.outbound_line import OutboundLine
from callbridge.bridge.playout import CallStats
from callbridge.bridge.speech import CallerActivity
from callbridge.bridge.warnings import CallWarner, WarningCode

CallerAction = t.TurnStarted | t.TurnEnded
CALLER_ACTIONS: Final = (t.TurnStarted, t.TurnEnded)
"""The turn machine's actions the caller's side performs (the protected opening's clock)."""


def guarded_opening(
    opening: OpeningSettings | None, *, greeting: bool, outbound: bool
) -> OpeningSettings:
    """The opening the guard protects: only an inbound opening the bridge asks for (a greeting).

    Without a greeting the caller speaks first, and a short "hi" must reach the model; an
    outbound call's opening is the outbound line's. Unprotected is ``protect_s = 0``.
    """
    if opening is not None and greeting and not outbound:
        return opening
    return OpeningSettings(0.0)


class CallerLine:
    """Caller audio from the call to the model (see the module docstring)."""

    def __init__(
        self,
        call_rate: int,
        send: Callable[[bytes], Awaitable[None]],
        *,
        model_rate: int,
        audio: AudioSettings,
        stats: CallStats,
        warner: CallWarner,
        activity: CallerActivity,
        opening: OpeningSettings,
        line: OutboundLine | None,
        blocking: Callable[[], bool],
        clock: Callable[[], float],
        feed: Callable[[t.TurnEvent, float | None], None],
    ) -> None:
        """``send``: the model session's ``send_audio``; ``blocking``: whether a BLOCKING tool
        call is unanswered right now; ``feed``: the turn machine, with the event's time
        (``None``: now)."""
        self.activity, self.line, self.stats, self.warner = activity, line, stats, warner
        self._send, self._blocking, self._clock, self._feed = send, blocking, clock, feed
        self._max_held_s = audio.max_gated_caller_audio_s
        self.opening = OpeningGuard(opening, call_rate)
        self._resampler = StreamResampler(call_rate, model_rate, audio.resample_quality)
        self._framer = caller_framer(model_rate, audio.frame_ms)
        frame = frame_bytes(model_rate, audio.frame_ms)
        held_frames = max(int(audio.max_gated_caller_audio_s * 1000 / audio.frame_ms), 1)
        self.held = HeldAudio[bytes](held_frames * frame, len)
        """Caller audio held while a BLOCKING tool call is pending."""

    def perform(self, action: CallerAction) -> None:
        """The agent's turns time the protected opening. Never awaits."""
        if isinstance(action, t.TurnStarted):
            self.opening.agent_started(self._clock())
        else:
            self.opening.agent_turn_ended()

    async def pump(self, chunks: AsyncIterator[bytes]) -> None:
        """Caller audio to the model until the call is gone (``chunks`` ends or raises
        ``CallGone``)."""
        try:
            async for chunk in chunks:
                for frame in self.take(chunk):
                    for pcm in self.gate(frame):
                        await self._send(pcm)
        except CallGone:
            pass

    def take(self, chunk: bytes) -> list[bytes]:
        """One chunk of caller audio: who speaks goes to the machine; returns the model's frames
        for it (admitted, resampled, framed)."""
        self.stats.caller_frames += 1
        self._hear(chunk)
        frames: list[bytes] = []
        for admitted in self._admit(chunk):
            frames.extend(self._framer.push(self._resampler.process(admitted)))
        return frames

    def gate(self, frame: bytes) -> list[bytes]:
        """What goes to the model now for ``frame``: nothing while a BLOCKING tool call is
        pending (it is held), else everything held, in order, then the frame."""
        if self._blocking():
            if self.held.hold(frame):
                self.warner.warn(
                    WarningCode.CALLER_AUDIO_DROPPED,
                    f"caller audio held during a blocking tool call exceeded "
                    f"{self._max_held_s:.0f} s; the oldest is dropped",
                )
            return []
        out = []
        while self.held:
            out.append(self.held.pop())
        out.append(frame)
        self.stats.caller_bytes_to_model += sum(map(len, out))
        return out

    def _hear(self, chunk: bytes) -> None:
        caller = self.activity
        was_speaking, voiced_at = caller.speaking, caller.last_voiced_at
        if caller.update(chunk):
            self._feed(t.CallerStopped(caller.silence_s()), caller.stopped_at)
        elif caller.speaking and not was_speaking:
            self._feed(t.CallerStarted(), None)
        if caller.last_voiced_at != voiced_at:
            self._feed(t.CallerVoiced(), caller.last_voiced_at)

    def _admit(self, chunk: bytes) -> list[bytes]:
        """The outbound line's etiquette decides on an outbound call, the protected opening on
        an inbound one."""
        if self.line is not None:
            return self.line.feed(chunk)
        return self.opening.caller_frame(chunk, self._clock())

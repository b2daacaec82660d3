"""The agent's voice on the call: resampled, queued, written paced, cleared after a barge-in.

:class:`AgentLine` performs the turn machine's actions about the agent's audio
(:data:`LINE_ACTIONS`) and runs the two tasks that touch the call's send buffer:

- ``playout`` writes queued audio, paced so the buffer stays under a high-water mark (the SDK
  raises instead of waiting when it is full), in half-second batches once it is there;
- ``clearer`` runs ``clear_audio()`` (which waits for a server acknowledgement) after a
  barge-in, off the audio path; playout holds its writes meanwhile, so nothing it writes is
  wiped by the clear or plays stale audio.

What to write and when is :class:`~callbridge.bridge.playout.PlayoutQueue`'s decision; what happened
(audio played, the clear done and how much of the interrupted turn the caller heard) goes back
to the machine through ``feed``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from callbridge.bridge import turns as t
from callbridge.bridge.audio import StreamResampler
from callbridge.bridge.config import AudioSettings
from callbridge.bridge.errors import CallGone, CommandFailed, PlaybackFull
from callbridge.bridge.heard import heard_seconds
from callbridge.bridge.playout import PACE_S, CallStats, PlayoutQueue
from callbridge.bridge.ports import CallPort
from callbridge.bridge.record import CallRecord
from callbridge.bridge.warnings import CallWarner, WarningCode

LineAction = (
    t.QueueAudio
    | t.FlushAudio
    | t.DropAudio
    | t.ClearLine
    | t.Cleared
    | t.TurnStarted
    | t.TurnEnded
)
LINE_ACTIONS = (
    t.QueueAudio,
    t.FlushAudio,
    t.DropAudio,
    t.ClearLine,
    t.Cleared,
    t.TurnStarted,
    t.TurnEnded,
)


class AgentLine:
    """Agent audio from the model's rate to the call's send buffer (see the module docstring)."""

    def __init__(
        self,
        call: CallPort,
        *,
        model_rate: int,
        audio: AudioSettings,
        stats: CallStats,
        record: CallRecord,
        warner: CallWarner,
        clock: Callable[[], float],
        feed: Callable[[t.TurnEvent], None],
        gone: Callable[[], None],
    ) -> None:
        self.call, self.stats, self.record, self.warner = call, stats, record, warner
        self._audio, self._clock, self._feed, self._gone = audio, clock, feed, gone
        self._resampler = StreamResampler(model_rate, call.sample_rate, audio.resample_quality)
        self.queue = PlayoutQueue(
            rate=call.sample_rate,
            high_water_s=audio.playout_high_water_s,
            max_pending_s=audio.max_pending_agent_audio_s,
        )
        self._ready, self._kick = asyncio.Event(), asyncio.Event()
        self._clear_wanted, self._clear_idle = asyncio.Event(), asyncio.Event()
        self._clear_idle.set()
        self._clear_for = 0.0
        # The one count of the current turn's audio written to the call (for the barge-in's
        # played_ms and the clear's heard_s): what was written after everything queued before
        # the turn (its start mark), up to a barge-in.
        self._turn_mark = 0
        self._written_for_clear = 0

    def perform(self, action: LineAction) -> None:
        """Never awaits: this runs in the model pump."""
        match action:
            case t.QueueAudio(pcm=pcm):
                self._overflowed(self.queue.push(self._resampler.process(pcm)))
            case t.FlushAudio(play=play):
                self._overflowed(self.queue.end_turn(self._resampler.flush(), play=play))
            case t.DropAudio(barge_in=False, cut=False):
                self.queue.drop()
            case t.DropAudio(barge_in=False, cut=True):
                self.queue.drop(new_turn=True)
                self._resampler.reset()
            case t.DropAudio(barge_in=True, buffered_s=buffered):
                started = self._clock()
                written = max(0, self.stats.agent_bytes_written - self._turn_mark)
                self._written_for_clear = written
                played = max(0.0, written / self.queue.bytes_per_s - buffered)
                dropped = self.queue.drop(new_turn=True)
                self._resampler.reset()
                self.stats.interrupts += 1
                self.stats.agent_bytes_dropped_on_interrupt += dropped
                self.stats.interrupt_to_local_drop_s.append(self._clock() - started)
                played_ms = round(played * 1000)
                self.record.note("barge_in", dropped_bytes=dropped, played_ms=played_ms)
            case t.ClearLine(requested_at=at):
                self._clear_for = at
                self._clear_idle.clear()
                self._clear_wanted.set()
                self._kick.set()
            case t.TurnStarted():
                self.record.note("agent_turn_start")
                self._turn_mark = self.stats.agent_bytes_written + self.queue.pending_bytes
                if self.stats.first_agent_audio_s is None:
                    self.stats.first_agent_audio_s = self.record.elapsed()
            case t.TurnEnded():
                self.record.note("agent_turn_end")
            case t.Cleared(cleared_bytes=cleared, took_s=took):
                self.stats.interrupt_to_clear_s.append(took)
                self.record.note(
                    "buffer_cleared", cleared_bytes=cleared, interrupt_to_clear_ms=took * 1000
                )
        if self.queue:
            self._ready.set()
        else:
            self._ready.clear()

    def _overflowed(self, dropped: int) -> None:
        if dropped:
            self.stats.overflow_dropped_bytes += dropped
            self.warner.warn(
                WarningCode.SEND_BUFFER_FULL,
                f"agent audio queue over {self._audio.max_pending_agent_audio_s:.0f} s; "
                f"{self.stats.overflow_dropped_bytes} bytes of the oldest audio dropped",
            )

    async def wait_until_played(self, timeout_s: float, speaking: Callable[[], bool]) -> bool:
        """Whether, within ``timeout_s``, the agent stopped ``speaking`` and the call's send
        buffer ran empty (a call that is gone has nothing left to play)."""
        deadline = self._clock() + timeout_s
        while self._clock() < deadline:
            if not speaking():
                try:
                    if await self.call.buffered_bytes() == 0:
                        return True
                except CallGone:
                    return True
            await asyncio.sleep(0.05)
        return False

    async def playout(self) -> None:
        """Move agent audio into the call's send buffer without ever overfilling it."""
        queue = self.queue
        while True:
            await self._ready.wait()
            if not self._clear_idle.is_set():
                # A clear is on its way: writing now could be wiped by it, or play stale audio.
                await _wait(self._clear_idle, self._audio.clear_hold_s)
            if not queue:
                self._ready.clear()
                continue
            generation = queue.head_generation()
            try:
                buffered = await self.call.buffered_bytes()
                if nap := queue.want(room := queue.high_water - buffered):
                    # Sleep until a whole batch fits; a barge-in wakes us.
                    self._kick.clear()
                    await _wait(self._kick, nap)
                    continue
                chunk = queue.take(room, generation)
                if not queue:
                    self._ready.clear()
                if not chunk:
                    continue
                await self.call.write_audio(chunk)
            except PlaybackFull:
                # Nothing was written (all or nothing): retry as frames, and aim lower.
                queue.requeue(chunk, generation, buffered)
                self._ready.set()
                self.warner.warn(
                    WarningCode.SEND_BUFFER_FULL,
                    "the call's send buffer was full; agent audio is held and retried, "
                    f"high-water mark lowered to {queue.high_water / queue.bytes_per_s:.2f} s",
                )
                await asyncio.sleep(PACE_S * 5)
                continue
            except CallGone:
                self._gone()
                return
            self.stats.agent_bytes_written += len(chunk)
            self._feed(t.Played(len(chunk) / queue.bytes_per_s))

    async def clearer(self) -> None:
        """Clear the send buffer after each barge-in; a failure is a warning, never fatal."""
        while True:
            await self._clear_wanted.wait()
            self._clear_wanted.clear()
            requested_at, written = self._clear_for, self._written_for_clear
            bytes_per_s = self.queue.bytes_per_s
            try:
                cleared = await self.call.clear_audio()
            except CommandFailed as exc:
                heard_s = heard_seconds(written, None, bytes_per_s)
                self._feed(t.ClearDone(requested_at, error_code=exc.error_code, heard_s=heard_s))
            except CallGone:
                self._gone()
                return
            else:
                heard_s = heard_seconds(written, cleared, bytes_per_s)
                self._feed(t.ClearDone(requested_at, cleared_bytes=cleared, heard_s=heard_s))
            finally:
                if not self._clear_wanted.is_set():
                    self._clear_idle.set()


async def _wait(event: asyncio.Event, timeout_s: float) -> None:
    """Wait for ``event`` at most ``timeout_s``."""
    try:
        async with asyncio.timeout(timeout_s):
            await event.wait()
    except TimeoutError:
        pass

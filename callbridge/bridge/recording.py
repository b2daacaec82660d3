"""Call recording: what the phone heard, as stereo (caller left, agent right).

Two pure pieces; the file writer is ``callbridge.adapters.recording``.

:class:`RecordingTap` wraps the call's port. It sees every caller chunk the bridge reads,
every agent chunk the platform accepted, and every buffer clear (a barge-in), and appends
each to a bounded in-memory queue: the audio pumps never wait for the disk. When the queue
holds ``max_items`` entries the newest audio is not queued; only its length is (as a gap,
merged with the one before), so the two channels stay aligned and the recording has
silence where audio was lost (counted in ``dropped_bytes``).

:class:`StereoTimeline` turns those events, in order, into interleaved stereo PCM. Its clock
is the caller's audio: the platform sends caller frames and plays agent audio in real time,
so a caller sample's position is its index. "Now" is the caller samples received, unless
the wall clock mapped onto them (each event carries its monotonic time; the mapping is
anchored on the least delayed caller chunk of the last ``ANCHOR_WINDOW_S``) is more than
``WALL_SLACK_S`` ahead: then the event loop is late reading caller audio and the wall clock
says where the phone is. Caller audio the platform never sends (its frames skipped in a
stall) moves the anchor once the window has passed it, so such a loss cannot push the agent
channel later for the rest of the call.
Agent audio written now starts playing when what was written before has played
(``agent_end``), or now if that was all played. A clear drops everything
scheduled after now: the caller never heard it. Output is released up to the caller samples received
(later agent audio can still be cut), so memory holds at most what is scheduled ahead: the
bridge's playout high-water mark, a few seconds.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from callbridge.bridge.ports import CallCommand, CommandOutcome

WALL_SLACK_S = 0.06
"""How far the caller audio read may trail the wall clock before the wall clock says "now".

The two agree within a few milliseconds while the loop keeps up, and then the caller samples
are the better clock (the platform plays agent audio in step with them: placing by the wall
clock there would open millisecond gaps between chunks). Past this the loop is late reading
caller audio, and the wall clock is nearer the truth."""

ANCHOR_WINDOW_S = 2.0
"""How long a caller chunk's timing can anchor the wall clock (in caller audio).

Read late, caller chunks arrive in a burst once the loop catches up, and the burst's last
chunk is on time again: a window of a few seconds always holds an on-time chunk. A window
over the whole call would instead keep an anchor from before any caller audio the platform
lost (a 300 ms stall skipped on its side never arrives): the wall clock would run ahead of
the caller samples by the loss from then on, and all later agent audio would be recorded
that much late (seen as a 0.59 s shift after two platform stalls in
``callbridge bench-record-hour``). The price: a bridge so starved of CPU that its backlog of
caller audio persists past the window places agent audio by that backlog, early, until the
backlog drains (then an on-time chunk anchors again); the call itself is seconds late then."""

EventKind = Literal["caller", "agent", "caller_gap", "agent_gap", "clear"]


@dataclass(slots=True)
class TapEvent:
    kind: EventKind
    pcm: bytes = b""
    gap_bytes: int = 0
    at: float | None = None
    """Monotonic time the event happened (``None``: place by caller samples alone)."""


class RecordingTap:
    """The bounded queue between the call's audio path and the recording writer."""

    def __init__(self, max_items: int, clock: Callable[[], float] = time.monotonic) -> None:
        if max_items < 1:
            raise ValueError("max_items must be at least 1")
        self.max_items = max_items
        self._clock = clock
        self._queue: deque[TapEvent] = deque()
        self.ready = asyncio.Event()
        self.closed = False
        self.dropped_bytes = 0

    def __len__(self) -> int:
        return len(self._queue)

    def push(self, kind: Literal["caller", "agent"], pcm: bytes) -> None:
        if self.closed or not pcm:
            return
        if len(self._queue) < self.max_items:
            self._queue.append(TapEvent(kind, pcm, at=self._clock()))
        else:
            self.dropped_bytes += len(pcm)
            gap: EventKind = "caller_gap" if kind == "caller" else "agent_gap"
            last = self._queue[-1]
            if last.kind == gap:
                last.gap_bytes += len(pcm)
            else:
                self._queue.append(TapEvent(gap, gap_bytes=len(pcm), at=self._clock()))
        self.ready.set()

    def clear(self) -> None:
        if not self.closed:
            self._queue.append(TapEvent("clear", at=self._clock()))
            self.ready.set()

    def close(self) -> None:
        self.closed = True
        self.ready.set()

    def take(self, limit: int) -> list[TapEvent]:
        count = min(limit, len(self._queue))
        batch = [self._queue.popleft() for _ in range(count)]
        if not self._queue and not self.closed:
            self.ready.clear()
        return batch


class StereoTimeline:
    """Caller and agent mono s16le in, interleaved stereo s16le out (see module docstring)."""

    def __init__(self, rate: int = 16000) -> None:
        self.rate = rate
        self._t0: float | None = None  # monotonic time of caller sample 0, least delayed
        # Candidate anchors of the window, (caller samples, anchor), anchors increasing: the
        # first is the window's least delayed (a monotonic queue, O(1) per chunk).
        self._anchors: deque[tuple[int, float]] = deque()
        self._window = int(ANCHOR_WINDOW_S * rate)
        self.now = 0  # caller samples received: the phone's clock
        self.written = 0  # stereo frames released
        self.agent_end = 0  # where scheduled agent audio ends (samples)
        self._caller = np.zeros(0, dtype=np.int16)  # from ``written`` on
        self._agent = np.zeros(0, dtype=np.int16)  # from ``written`` on, zero-filled gaps

    def caller(self, pcm: bytes, at: float | None = None) -> bytes:
        samples = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype=np.int16)
        return self._caller_samples(samples, at)

    def caller_gap(self, nbytes: int, at: float | None = None) -> bytes:
        return self._caller_samples(np.zeros(nbytes // 2, dtype=np.int16), at)

    def _caller_samples(self, samples: np.ndarray[Any, Any], at: float | None) -> bytes:
        self._caller = np.concatenate([self._caller, samples])
        self.now += len(samples)
        if at is not None:
            # This chunk's last sample was sent at ``at`` at the latest: keep the earliest
            # such anchor of the window, the one least delayed by the network and the loop.
            anchor = at - self.now / self.rate
            anchors = self._anchors
            while anchors and anchors[-1][1] >= anchor:
                anchors.pop()
            anchors.append((self.now, anchor))
            while anchors[0][0] < self.now - self._window:
                anchors.popleft()
            self._t0 = anchors[0][1]
        return self._release(self.now)

    def _now(self, at: float | None) -> int:
        if at is None or self._t0 is None:
            return self.now
        return max(self.now, int((at - self._t0 - WALL_SLACK_S) * self.rate))

    def agent(self, pcm: bytes, at: float | None = None) -> None:
        self._schedule(np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype=np.int16), at)

    def agent_gap(self, nbytes: int, at: float | None = None) -> None:
        self._schedule(np.zeros(nbytes // 2, dtype=np.int16), at)

    def _schedule(self, samples: np.ndarray[Any, Any], at: float | None) -> None:
        start = max(self._now(at), self.agent_end)
        offset = start - self.written
        end = offset + len(samples)
        if len(self._agent) < end:
            self._agent = np.concatenate([self._agent, np.zeros(end - len(self._agent), np.int16)])
        self._agent[offset:end] = samples
        self.agent_end = start + len(samples)

    def clear(self, at: float | None = None) -> None:
        """A barge-in cleared the buffers: nothing scheduled after now is heard."""
        now = self._now(at)
        self._agent = self._agent[: now - self.written].copy()
        self.agent_end = min(self.agent_end, now)

    def _release(self, upto: int) -> bytes:
        count = upto - self.written
        if count <= 0:
            return b""
        stereo = np.zeros((count, 2), dtype=np.int16)
        stereo[:, 0] = self._caller[:count]
        agent = self._agent[:count]
        stereo[: len(agent), 1] = agent
        self._caller = self._caller[count:]
        self._agent = self._agent[count:]
        self.written = upto
        return stereo.tobytes()

    def finish(self) -> bytes:
        """Whatever is left up to now (agent audio after the caller left was not heard)."""
        return self._release(self.now)

    def apply(self, event: TapEvent) -> bytes:
        match event.kind:
            case "caller":
                return self.caller(event.pcm, event.at)
            case "caller_gap":
                return self.caller_gap(event.gap_bytes, event.at)
            case "agent":
                self.agent(event.pcm, event.at)
            case "agent_gap":
                self.agent_gap(event.gap_bytes, event.at)
            case "clear":
                self.clear(event.at)
        return b""


class TappedCall:
    """A call port that lets a :class:`RecordingTap` see its audio; everything else passes.

    Implements :class:`callbridge.bridge.runner.IncomingCall`; anything it does not know (extra
    methods
    an adapter offers) is looked up on the wrapped call.
    """

    def __init__(self, inner: Any, tap: RecordingTap) -> None:
        self._inner = inner
        self.tap = tap

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    @property
    def call_id(self) -> str:
        return str(self._inner.call_id)

    @property
    def caller(self) -> str:
        return str(self._inner.caller)

    @property
    def callee(self) -> str:
        return str(self._inner.callee)

    @property
    def sample_rate(self) -> int:
        return int(self._inner.sample_rate)

    @property
    def end_reason(self) -> str:
        return str(self._inner.end_reason)

    async def answer(self) -> CommandOutcome:
        outcome: CommandOutcome = await self._inner.answer()
        return outcome

    async def caller_audio(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner.caller_audio():
            self.tap.push("caller", chunk)
            yield chunk

    def on_call_error(self, handler: Callable[[str, str], None]) -> None:
        self._inner.on_call_error(handler)

    async def write_audio(self, pcm: bytes) -> None:
        await self._inner.write_audio(pcm)  # PlaybackFull: nothing was written, nothing heard
        self.tap.push("agent", pcm)

    async def buffered_bytes(self) -> int:
        return int(await self._inner.buffered_bytes())

    async def clear_audio(self) -> int:
        try:
            return int(await self._inner.clear_audio())
        finally:
            # Even a failed interrupt dropped the local buffer; the platform's short
            # prefetch may still have played, which the recording cannot know.
            self.tap.clear()

    async def command(
        self, command: CallCommand, *, ring_time_s: int | None = None
    ) -> CommandOutcome:
        outcome: CommandOutcome = await self._inner.command(command, ring_time_s=ring_time_s)
        return outcome


__all__ = ["RecordingTap", "StereoTimeline", "TapEvent", "TappedCall"]

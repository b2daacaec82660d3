"""Agent audio waiting for room in the call's send buffer: what to write next, and how much.

A pure object (no asyncio, no clock): ``callbridge.bridge.call``'s playout task asks it what to
write
given the room the call reports, and tells it what happened. Its rules:

- **Bounded.** More than ``max_pending`` bytes queued (the telephony side stopped pulling)
  drops the oldest audio; :meth:`push` returns how much, for the ``SEND_BUFFER_FULL`` warning.
- **Generations.** :meth:`drop` (a barge-in, or the agent muted) starts a new generation; audio
  of an older one is never written, even if the playout task took it before the drop and
  puts it back after a failed write (:meth:`requeue`).
- **Whole frames.** :meth:`end_turn` pads a turn's audio to a whole 20 ms frame, so the
  server never holds a partial frame back from the caller.
- **Batched pacing.** Once the send buffer is at its high-water mark, :meth:`wait_s` says how
  long to sleep until a whole batch fits: two wake-ups a second instead of fifty.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from callbridge.bridge.audio import frame_bytes

PACE_S = 0.02
"""The shortest playout nap (one 20 ms frame)."""
PLAYOUT_BATCH_S = 0.5
"""Once the send buffer is at its high-water mark, top it up in batches of this much audio."""


@dataclass
class CallStats:
    """Measurements of one call, for the record, metrics and the demo."""

    caller_frames: int = 0
    caller_bytes_to_model: int = 0
    agent_bytes_written: int = 0
    agent_bytes_dropped_on_interrupt: int = 0
    interrupts: int = 0
    interrupt_to_clear_s: list[float] = field(default_factory=list)
    interrupt_to_local_drop_s: list[float] = field(default_factory=list)
    first_agent_audio_s: float | None = None
    overflow_dropped_bytes: int = 0
    nudges: int = 0


class PlayoutQueue:
    """Agent audio (at the call's rate) queued for the call, tagged with its generation."""

    def __init__(self, *, rate: int, high_water_s: float, max_pending_s: float) -> None:
        self.bytes_per_s = rate * 2
        self.frame = frame_bytes(rate, 20)
        self.high_water = int(high_water_s * self.bytes_per_s)
        self.max_pending = int(max_pending_s * self.bytes_per_s)
        self._batch = int(PLAYOUT_BATCH_S * self.bytes_per_s)
        self._chunks: deque[tuple[int, bytes]] = deque()
        self.pending_bytes = 0
        self.generation = 0
        self._turn_bytes = 0

    def __bool__(self) -> bool:
        return bool(self._chunks)

    def push(self, pcm: bytes) -> int:
        """Queue agent audio; returns the bytes of oldest audio dropped to stay bounded."""
        if not pcm:
            return 0
        self._chunks.append((self.generation, pcm))
        self.pending_bytes += len(pcm)
        self._turn_bytes += len(pcm)
        dropped = 0
        while self.pending_bytes > self.max_pending and len(self._chunks) > 1:
            _, old = self._chunks.popleft()
            self.pending_bytes -= len(old)
            dropped += len(old)
        return dropped

    def end_turn(self, tail: bytes, *, play: bool) -> int:
        """The model's audio for this turn is over: queue ``tail`` and pad to a whole frame."""
        dropped = 0
        if play:
            dropped += self.push(tail)
            partial = self._turn_bytes % self.frame
            if partial:
                dropped += self.push(bytes(self.frame - partial))
        self._turn_bytes = 0
        return dropped

    def drop(self, *, new_turn: bool = False) -> int:
        """Drop all queued audio (a new generation); returns the bytes dropped."""
        dropped = self.pending_bytes
        self._chunks.clear()
        self.pending_bytes = 0
        self.generation += 1
        if new_turn:
            self._turn_bytes = 0
        return dropped

    def head_generation(self) -> int:
        return self._chunks[0][0]

    def want(self, room: int) -> float:
        """0 when a write of ``room`` bytes is worth doing now, else seconds to wait for room."""
        batch = min(self._batch, self.pending_bytes, self.high_water // 4)
        want = max(self.frame, batch)
        if room >= want:
            return 0.0
        return max(PACE_S, (want - room) / self.bytes_per_s)

    def take(self, room: int, generation: int) -> bytes:
        """Pop up to ``room`` bytes (whole chunks) of ``generation``; b"" if it is stale."""
        parts: list[bytes] = []
        size = 0
        while self._chunks and self._chunks[0][0] == generation:
            chunk_len = len(self._chunks[0][1])
            if parts and size + chunk_len > room:
                break
            parts.append(self._chunks.popleft()[1])
            size += chunk_len
        self.pending_bytes -= size
        while self._chunks and self._chunks[0][0] != self.generation:
            self.pending_bytes -= len(self._chunks.popleft()[1])
        if generation != self.generation:
            return b""
        return b"".join(parts)

    def requeue(self, chunk: bytes, generation: int, buffered: int) -> None:
        """A write was refused (buffer full): put it back as frames and aim lower."""
        starts = range(0, len(chunk), self.frame)
        self._chunks.extendleft((generation, chunk[i : i + self.frame]) for i in reversed(starts))
        self.pending_bytes += len(chunk)
        self.high_water = max(self.frame, min(self.high_water, buffered + len(chunk)) // 2)

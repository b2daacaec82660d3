"""The platform's playout buffer for agent audio and the pull credit that feeds it.

Telcoflow agent audio is pulled: the server sends ``buffer_request`` and the SDK answers with
exactly that many bytes (wire notes 4.3). This class is the server's bookkeeping for that
scheme, with no I/O and an explicit ``now`` so it can be tested without a clock:

- every 20 ms tick, ``tick()`` plays one frame (real audio if buffered, zeros otherwise);
- ``top_up()`` then says how much to request so that ``outstanding + buffered`` reaches the
  lead (5 frames = 100 ms), rounded down to whole frames;
- ``receive()`` books audio that arrived; ``interrupt()`` drops what is queued.

Underrun rule (kept simple on purpose). A *dry tick* is a tick whose buffer held less than one
frame. A dry tick is *suspect* when agent audio is flowing (a burst is active) and the oldest
request the bridge has not yet filled is at least ``stall_s`` (40 ms) old, i.e. the bridge owed
us audio and did not deliver. Suspect ticks become underruns only if agent audio arrives again
within ``burst_gap_s`` (500 ms) of dry ticks: then the bridge stalled mid-burst. If the dry
stretch outlasts ``burst_gap_s``, or an ``agent.interrupt`` arrives, or the call ends first, the
burst simply ended (the agent stopped talking) and the suspect ticks are forgotten. Dry ticks
caused by the emulator's own clock catching up after a stall are mostly not suspect, because the
requests they wait on are fresh; ``CallRecord.pump_resyncs`` reports such stalls.
"""

from __future__ import annotations

from collections import deque

from .pcm import FRAME_S


class PlayoutBuffer:
    """Pull credit, playout queue and underrun accounting for one call."""

    def __init__(
        self,
        frame_size: int,
        *,
        lead_frames: int = 5,
        stall_s: float = 0.04,
        burst_gap_s: float = 0.5,
    ) -> None:
        self.frame_size = frame_size
        self.lead_bytes = lead_frames * frame_size
        self._stall_s = stall_s
        self._gap_ticks = max(1, round(burst_gap_s / FRAME_S))
        self._zeros = bytes(frame_size)
        self._buffer = bytearray()
        # Requests not yet filled, oldest first: [time requested, bytes still owed].
        self._requests: deque[list[float]] = deque()
        self.outstanding = 0
        self.over_delivered = 0
        self.underruns = 0
        self._in_burst = False
        self._dry_ticks = 0
        self._suspect = 0

    @property
    def buffered(self) -> int:
        """Bytes received and not yet played."""
        return len(self._buffer)

    def receive(self, pcm: bytes) -> None:
        """Book agent audio that arrived; it fills the oldest requests first (the SDK is FIFO)."""
        remaining = len(pcm)
        while remaining and self._requests:
            head = self._requests[0]
            take = min(remaining, int(head[1]))
            head[1] -= take
            remaining -= take
            if head[1] <= 0:
                self._requests.popleft()
        self.over_delivered += remaining
        self.outstanding = max(0, self.outstanding - len(pcm))
        self._buffer += pcm
        if self._in_burst and self._suspect:
            self.underruns += self._suspect
        self._in_burst = True
        self._suspect = 0
        self._dry_ticks = 0

    def tick(self, now: float) -> bytes:
        """Play one frame: buffered audio, padded with zeros when there is not enough."""
        size = self.frame_size
        if len(self._buffer) >= size:
            frame = bytes(self._buffer[:size])
            del self._buffer[:size]
            return frame
        frame = bytes(self._buffer).ljust(size, b"\x00") if self._buffer else self._zeros
        self._buffer.clear()
        if self._in_burst:
            self._dry_ticks += 1
            if self._dry_ticks > self._gap_ticks:
                self._end_burst()
            elif self._requests and now - self._requests[0][0] >= self._stall_s:
                self._suspect += 1
        return frame

    def top_up(self, now: float) -> int:
        """Bytes to request now (0 for none), already added to ``outstanding``."""
        deficit = self.lead_bytes - (self.outstanding + len(self._buffer))
        if deficit < self.frame_size:
            return 0
        request = deficit // self.frame_size * self.frame_size
        self.outstanding += request
        self._requests.append([now, float(request)])
        return request

    def interrupt(self) -> int:
        """Drop queued audio (``agent.interrupt``); returns the bytes dropped.

        Requests already sent stay owed: the SDK never cancels them and fills them from the
        next audio the bridge writes.
        """
        dropped = len(self._buffer)
        self._buffer.clear()
        self._end_burst()
        return dropped

    def _end_burst(self) -> None:
        self._in_burst = False
        self._suspect = 0
        self._dry_ticks = 0

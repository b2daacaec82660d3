"""The call's ``LiveRequestQueue``: bounded caller audio, held back during BLOCKING tool calls.

ADK's queue is an unbounded ``asyncio.Queue`` drained by its send task. Two rules of a phone
call are added here, on the only path every request takes (``get()``, called by ADK's send task):

- **Bounded.** Caller audio is offered with :meth:`CallerQueue.offer_audio`, which never waits:
  if the model side has fallen more than ``max_pending_bytes`` behind (a reconnect that takes
  long, a wedged connection) the new frame is dropped and counted. A call's audio path must
  not stall on the model, and seconds-old caller audio is worth less than a live call.
  ADK's own requests (tool results, ``close``) are never refused.
- **Held during BLOCKING tool calls.** The Live API closes the session (1008) when realtime
  audio arrives while a BLOCKING function call is unanswered. Once the session announces such
  calls (:meth:`expect_responses`), audio that reaches the head of the queue is set aside in
  :class:`callbridge.bridge.gate.HeldAudio`, the same bounded hold the raw back end uses
  (``max_held_bytes``, oldest dropped), and released, in order, right after the last
  awaited function response has passed. The check runs at ``get()`` time, so frames already
  queued when the call arrived are held too.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from google.adk.agents.live_request_queue import LiveRequest, LiveRequestQueue
from google.genai import types

from callbridge.bridge.gate import HeldAudio

ANSWERED_MEMORY = 64
"""Function-response ids remembered, in case a response passes before its call is announced."""


class CallerQueue(LiveRequestQueue):
    """A ``LiveRequestQueue`` for one call (see the module docstring)."""

    def __init__(
        self,
        *,
        max_pending_bytes: int,
        max_held_bytes: int,
        on_held_dropped: Callable[[int], None] | None = None,
    ) -> None:
        super().__init__()
        self._on_held_dropped = on_held_dropped
        self._max_pending = max_pending_bytes
        self._pending_bytes = 0
        self._held = HeldAudio[types.Blob](max_held_bytes, _size)
        self._awaited: set[str] = set()
        self._answered: deque[str] = deque(maxlen=ANSWERED_MEMORY)
        self.dropped_bytes = 0
        """Caller audio refused because the model side was too far behind."""

    @property
    def dropped_held_bytes(self) -> int:
        """Held caller audio dropped (oldest first) because a BLOCKING call took too long."""
        return self._held.dropped_bytes

    @property
    def held_total_bytes(self) -> int:
        """All caller audio ever held back during BLOCKING calls."""
        return self._held.total_bytes

    @property
    def pending_bytes(self) -> int:
        return self._pending_bytes

    @property
    def holding(self) -> bool:
        """True while a BLOCKING function call awaits its response."""
        return bool(self._awaited)

    def offer_audio(self, blob: types.Blob) -> bool:
        """Queue caller audio unless the model side is too far behind; never waits."""
        if self.closed:
            return False
        size = len(blob.data or b"")
        if self._pending_bytes + size > self._max_pending:
            self.dropped_bytes += size
            return False
        self.send_realtime(blob)
        return True

    def send_realtime(self, blob: types.Blob) -> None:
        self._pending_bytes += len(blob.data or b"")
        super().send_realtime(blob)

    def expect_responses(self, call_ids: list[str]) -> None:
        """BLOCKING calls the model made: hold audio until each one is answered."""
        for call_id in call_ids:
            if call_id and call_id not in self._answered:
                self._awaited.add(call_id)

    def release(self) -> None:
        """Stop waiting for responses (the conversation ended or restarted)."""
        self._awaited.clear()

    async def get(self) -> LiveRequest:
        while True:
            if self._held and not self._awaited:
                return LiveRequest(blob=self._held.pop())
            request = await super().get()
            if request.blob is not None:
                size = len(request.blob.data or b"")
                self._pending_bytes = max(0, self._pending_bytes - size)
                if self._awaited:
                    dropped = self._held.hold(request.blob)
                    if dropped and self._on_held_dropped is not None:
                        self._on_held_dropped(dropped)
                    continue
            elif request.content is not None and request.content.parts:
                for part in request.content.parts:
                    response = part.function_response
                    if response is not None and response.id:
                        self._answered.append(response.id)
                        self._awaited.discard(response.id)
            return request


def _size(blob: types.Blob) -> int:
    return len(blob.data or b"")

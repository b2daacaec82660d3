"""Caller audio held back while a BLOCKING tool call is unanswered: one rule, both back ends.

The Live API closes the session (1008) when realtime audio arrives while a BLOCKING function
call awaits its response. Both back ends therefore set caller audio aside while one is
pending and release it, in order, before anything newer, once it is answered:
``callbridge.bridge.call`` (raw Gemini: the tool dispatcher knows what is pending) and
``callbridge.adapters.adk.queue`` (ADK: the queue sees the calls and responses pass). What is held
is
bounded in bytes; past the bound the oldest audio is dropped (the newest speech matters most
when the model resumes), and :meth:`HeldAudio.hold` says how much, for a warning.

Pure: no asyncio, no clock. Generic over the item so the ADK queue can hold its ``Blob``s.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class HeldAudio(Generic[T]):
    """A bounded FIFO of held caller audio (see the module docstring)."""

    def __init__(self, max_bytes: int, size: Callable[[T], int]) -> None:
        self._max = max_bytes
        self._size = size
        self._items: deque[T] = deque()
        self.held_bytes = 0
        """Bytes held right now."""
        self.total_bytes = 0
        """All caller audio ever held."""
        self.dropped_bytes = 0
        """Held audio dropped, oldest first, because the bound was reached."""

    def __bool__(self) -> bool:
        return bool(self._items)

    def hold(self, item: T) -> int:
        """Set ``item`` aside; returns the bytes of oldest audio dropped to stay bounded."""
        size = self._size(item)
        self._items.append(item)
        self.held_bytes += size
        self.total_bytes += size
        dropped = 0
        while self.held_bytes > self._max and len(self._items) > 1:
            old = self._size(self._items.popleft())
            self.held_bytes -= old
            dropped += old
        self.dropped_bytes += dropped
        return dropped

    def pop(self) -> T:
        """The oldest held item (release them all before sending anything newer)."""
        item = self._items.popleft()
        self.held_bytes -= self._size(item)
        return item

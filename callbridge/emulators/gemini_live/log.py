"""What one WebSocket connection did, for tests and the benchmark to assert on.

Times are `time.monotonic()` so they compare directly with the client's own measurements in the
same process. The log is appended to while the connection runs; read it after the fact, or wait
with `wait_closed()`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

__all__ = ["SessionLog"]


@dataclass
class SessionLog:
    """Record of one accepted connection (one entry in `GeminiLiveEmulator.sessions`)."""

    path: str
    headers: dict[str, str]
    opened_at: float
    api_key_source: str | None = None  # "header", "query", "token" or None
    setup: dict[str, Any] = field(default_factory=dict)  # normalized (snake_case) setup
    model: str = ""
    profile: str = ""  # the model family: "2.5", "3.1", "3.8", ...
    provider: str = ""  # "gemini_api" or "vertex" (from the path)
    client_turns: list[tuple[str, str, bool]] = field(default_factory=list)
    """clientContent turns received: (role, text, turn_complete of that message), in arrival
    order; user-role texts also go to ``texts_in``."""
    conversation_id: str = ""
    connection_index: int = 0  # 0 for a fresh conversation, then 1, 2... for each resume
    resumed_from: str | None = None
    audio_in: list[tuple[float, int]] = field(default_factory=list)  # (received, bytes)
    audio_in_bytes: int = 0
    audio_in_chunks: int = 0
    audio_chunks_out: int = 0  # 40 ms modelTurn audio frames sent
    audio_in_rate: int | None = None
    texts_in: list[str] = field(default_factory=list)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    tool_responses: list[dict[str, Any]] = field(default_factory=list)
    sent: list[tuple[float, str]] = field(default_factory=list)
    handles_issued: list[str] = field(default_factory=list)
    speech_started_at: list[float] = field(default_factory=list)
    speech_ended_at: list[float] = field(default_factory=list)  # user turn ends heard by VAD
    turn_started_at: list[float] = field(default_factory=list)
    turn_audio_first_sent: list[float] = field(default_factory=list)
    interrupted_at: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # skipped tools, ignored ids, fault firings
    close_code: int | None = None
    close_reason: str = ""
    closed_at: float | None = None
    _closed: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    def kinds(self) -> list[str]:
        """The kinds of every message sent, in order (e.g. "audio", "turnComplete")."""
        return [kind for _, kind in self.sent]

    def mark_closed(self, at: float, code: int | None, reason: str) -> None:
        """Called once by the server when the connection is gone."""
        if self.closed_at is None:
            self.closed_at = at
            self.close_code = code
            self.close_reason = reason
            self._closed.set()

    async def wait_closed(self, timeout: float = 30.0) -> None:
        """Wait until the connection is closed (raises TimeoutError after `timeout`)."""
        async with asyncio.timeout(timeout):
            await self._closed.wait()

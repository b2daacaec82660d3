"""What the console knows about live calls, read off the call record without slowing a call.

The audio path pays one dict lookup per record entry: :class:`ConsoleHub` is a
``RecordListener`` whose ``on_entry`` only wakes the console streams watching that call (an
``asyncio.Event`` each). Everything else is done by the streams themselves, on their own
tasks, by reading ``CallRecord.entries`` (append-only) from a cursor:

- A slow browser falls behind in the record; nothing is queued for it, so there is nothing
  to fill. Each stream holds one cursor, one event and at most ``MAX_BATCH`` entries in
  flight, and sends the rest when the browser has taken the last batch.
- At most ``max_streams`` console streams per replica; one more is refused with 503.

:func:`fold` is the pure part: one entry at a time, it keeps the live table's summary of a
call (state, model, warnings, tools running, human leg).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from callbridge.bridge.record import CallRecord, RecordEntry

MAX_BATCH = 100
"""Entries per server-sent event: a long backlog goes out in pieces the browser can take."""

DEFAULT_MAX_STREAMS = 16


@dataclass
class Summary:
    """The live table's view of one call, folded from its record entries."""

    cursor: int = 0
    model: str | None = None
    answered: bool = False
    agent_turns_done: int = 0
    tools_running: dict[str, str] = field(default_factory=dict)
    transferring: bool = False
    human_connected: bool = False
    human_mode: str | None = None
    warnings: Counter[str] = field(default_factory=Counter)
    barge_ins: int = 0
    ended: bool = False

    @property
    def state(self) -> str:
        """greeting, talking, tool running, transferring, human connected (mode), ..."""
        if self.ended:
            return "ended"
        if self.human_connected:
            return f"human connected ({self.human_mode})" if self.human_mode else "human connected"
        if self.transferring or "transfer_to_human" in self.tools_running.values():
            return "transferring"
        if self.tools_running:
            return "tool running"
        if not self.answered or self.model is None:
            return "connecting"
        if self.agent_turns_done == 0:
            return "greeting"
        return "talking"


_TOOL_OVER = {"done", "failed", "cancelled", "cancelled_by_model"}
_MODES = {"whisper", "barge", "spy"}


def fold(summary: Summary, entry: RecordEntry) -> None:
    """Apply one record entry to the summary (the only place these rules live)."""
    data = entry.data
    if entry.kind == "state":
        if data.get("state") == "answered":
            summary.answered = True
        elif data.get("state") == "ended":
            summary.ended = True
    elif entry.kind == "timeline":
        event = data.get("event")
        if event == "model_connected":
            summary.model = str(data.get("model"))
        elif event == "agent_turn_end":
            summary.agent_turns_done += 1
        elif event == "barge_in":  # the caller cut the agent's turn short: it is over too
            summary.barge_ins += 1
            summary.agent_turns_done += 1
        elif event == "transfer_requested":
            summary.transferring = not summary.human_connected
    elif entry.kind == "tool":
        key = str(data.get("call_id"))
        if data.get("status") == "started":
            summary.tools_running[key] = str(data.get("name"))
        elif data.get("status") in _TOOL_OVER:
            summary.tools_running.pop(key, None)
    elif entry.kind == "command":
        command = data.get("command")
        if command == "connect":
            summary.transferring = False
            summary.human_connected = summary.human_connected or bool(data.get("ok"))
        elif command in _MODES and data.get("ok"):
            summary.human_mode = str(command)
        elif command == "close" and data.get("ok"):
            summary.human_mode = "agent left"
    elif entry.kind == "warning":
        summary.warnings[str(data.get("code"))] += 1


def advance(summary: Summary, record: CallRecord) -> Summary:
    """Fold the entries appended since the last look."""
    entries = record.entries
    while summary.cursor < len(entries):
        fold(summary, entries[summary.cursor])
        summary.cursor += 1
    return summary


def entry_json(entry: RecordEntry) -> dict[str, Any]:
    return {"kind": entry.kind, "t": entry.t, "data": entry.data}


class ConsoleHub:
    """The console's one record listener, and the count of open streams."""

    def __init__(self, *, max_streams: int = DEFAULT_MAX_STREAMS) -> None:
        self.max_streams = max_streams
        self.open_streams = 0
        self._watchers: dict[str, set[asyncio.Event]] = {}
        self._summaries: dict[str, Summary] = {}

    # Runs on the call's event loop next to the audio pumps: a lookup, and rarely a set().
    def on_entry(self, record: CallRecord, entry: RecordEntry) -> None:
        watchers = self._watchers.get(record.call_id)
        if watchers:
            for wake in watchers:
                wake.set()

    @property
    def full(self) -> bool:
        return self.open_streams >= self.max_streams

    @contextmanager
    def stream(self) -> Iterator[None]:
        """Count one open console stream for as long as it runs."""
        self.open_streams += 1
        try:
            yield
        finally:
            self.open_streams -= 1

    @contextmanager
    def watch(self, call_id: str) -> Iterator[asyncio.Event]:
        """An event set whenever the call's record grows (until the block is left)."""
        wake = asyncio.Event()
        self._watchers.setdefault(call_id, set()).add(wake)
        try:
            yield wake
        finally:
            watchers = self._watchers.get(call_id)
            if watchers is not None:
                watchers.discard(wake)
                if not watchers:
                    del self._watchers[call_id]

    def summary(self, record: CallRecord) -> Summary:
        """The call's summary, brought up to date (work done on the reader's task)."""
        summary = self._summaries.get(record.call_id)
        if summary is None:
            summary = self._summaries[record.call_id] = Summary()
        return advance(summary, record)

    def forget_except(self, live_ids: set[str]) -> None:
        """Drop the summaries of calls that are no longer live."""
        for call_id in [c for c in self._summaries if c not in live_ids]:
            del self._summaries[call_id]

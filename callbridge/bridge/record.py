"""The call record: everything a call produced, kept as it happens.

The record is the single place a call's facts accumulate (timeline, transcripts, commands,
warnings, usage). Listeners (the database writer, the demo's timeline printer) are told about
every change as it is made, so a crash mid-call loses nothing that was already known. Listener
callbacks must be non-blocking: they are invoked on the call's event loop, next to the audio
pumps.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol

from callbridge.bridge import turns as t
from callbridge.bridge.warnings import BridgeWarning, CallWarner

EntryKind = Literal["timeline", "transcript", "command", "warning", "tool", "usage", "state"]


@dataclass(frozen=True, slots=True)
class RecordEntry:
    """One appended fact. ``t`` is seconds since the call started (monotonic)."""

    kind: EntryKind
    t: float
    data: dict[str, Any]


class RecordListener(Protocol):
    def on_entry(self, record: CallRecord, entry: RecordEntry) -> None: ...


def mask_number(number: str, *, full: bool = False) -> str:
    """Keep the last four digits of a phone number unless ``full`` is set."""
    if full or len(number) <= 4:
        return number
    return "*" * (len(number) - 4) + number[-4:]


@dataclass
class CallRecord:
    """Mutable, append-only account of one call."""

    call_id: str
    tenant: str
    caller: str
    callee: str
    session_id: str = ""
    direction: Literal["inbound", "outbound"] = "inbound"
    started_at: float = field(default_factory=time.time)
    answered_at: float | None = None
    ended_at: float | None = None
    outcome: str = "in_progress"
    entries: list[RecordEntry] = field(default_factory=list)
    usage: dict[str, int] = field(default_factory=dict)
    model: str = ""
    """The model that served the call (set when it connected)."""
    cost_usd: float | None = None
    """What the usage so far cost, when ``pricer`` knows the model's price."""
    pricer: Callable[[dict[str, int]], float] | None = field(default=None, repr=False)
    redact: Callable[[str], str] | None = field(default=None, repr=False)
    """Applied to every transcript line before it is kept or any listener sees it."""
    listeners: list[RecordListener] = field(default_factory=list, repr=False)
    _t0: float = field(default_factory=time.monotonic, repr=False)
    _clock: Callable[[], float] = field(default=time.monotonic, repr=False)

    def elapsed(self) -> float:
        return self._clock() - self._t0

    def _append(self, kind: EntryKind, data: dict[str, Any]) -> RecordEntry:
        entry = RecordEntry(kind, round(self.elapsed(), 4), data)
        self.entries.append(entry)
        for listener in self.listeners:
            listener.on_entry(self, entry)
        return entry

    def note(self, event: str, **data: Any) -> None:
        """A timeline event (caller speech start, barge-in, turn start...)."""
        self._append("timeline", {"event": event, **data})

    def transcript(self, speaker: str, text: str, **data: Any) -> None:
        """A line; an interrupted agent line also carries ``heard`` and ``generated`` (redacted
        like the text: they are the same words)."""
        if self.redact is not None:
            text = self.redact(text)
            data = {k: self.redact(v) if isinstance(v, str) else v for k, v in data.items()}
        self._append("transcript", {"speaker": speaker, "text": text, **data})

    def command(self, command: str, ok: bool, error_code: str | None, **data: Any) -> None:
        self._append("command", {"command": command, "ok": ok, "error_code": error_code, **data})

    def tool(self, name: str, call_id: str, status: str, **data: Any) -> None:
        self._append("tool", {"name": name, "call_id": call_id, "status": status, **data})

    def warning(self, warning: BridgeWarning) -> None:
        self._append("warning", {"code": warning.code.value, "description": warning.description})

    def add_usage(self, by_key: dict[str, int]) -> None:
        for key, value in by_key.items():
            self.usage[key] = self.usage.get(key, 0) + value
        if self.pricer is not None:
            self.cost_usd = self.pricer(self.usage)
        self._append("usage", dict(by_key))

    def mark_answered(self) -> None:
        self.answered_at = time.time()
        self._append("state", {"state": "answered"})

    def finish(self, outcome: str) -> None:
        """Set the final outcome once; later calls keep the first outcome."""
        if self.ended_at is not None:
            return
        self.ended_at = time.time()
        self.outcome = outcome
        ended: dict[str, Any] = {"state": "ended", "outcome": outcome}
        if self.cost_usd is not None:
            ended["cost_usd"] = self.cost_usd
        self._append("state", ended)

    def transcripts(self) -> list[tuple[str, str]]:
        return [(e.data["speaker"], e.data["text"]) for e in self.entries if e.kind == "transcript"]

    def events(self, kind: EntryKind) -> list[RecordEntry]:
        return [e for e in self.entries if e.kind == kind]


RecordAction = t.Warn | t.Note | t.RecordCommand | t.Transcribe | t.RecordUsage
RECORD_ACTIONS: Final = (t.Warn, t.Note, t.RecordCommand, t.Transcribe, t.RecordUsage)
"""The turn machine's actions that only write a fact down (:func:`write_down`)."""


def write_down(action: RecordAction, record: CallRecord, warner: CallWarner) -> None:
    """Perform one of the turn machine's record-keeping actions. Never awaits."""
    match action:
        case t.Warn(code=code, message=message, details=details):
            warner.warn(code, message, **details)
        case t.Note(event=event, data=data):
            record.note(event, **data)
        case t.RecordCommand(command=command, ok=ok, error_code=error_code):
            record.command(command, ok, error_code)
        case t.Transcribe(speaker=speaker, text=text, data=data):
            record.transcript(speaker, text, **data)
        case t.RecordUsage(usage=usage):
            record.add_usage(dict(usage))

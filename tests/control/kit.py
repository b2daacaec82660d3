"""Small building blocks shared by the call-control tests: audio, listeners, lookups.

Synthetic tones instead of the speech assets keep each scripted call a few seconds long;
the Gemini emulator's VAD and the Telcoflow emulator's "non-silent" test are energy based,
so a tone is speech to both.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable

from callbridge.bridge.audio import rms
from callbridge.bridge.record import CallRecord, RecordEntry
from callbridge.bridge.warnings import BridgeWarning, WarningCode
from callbridge.emulators.gemini_live import SessionLog, Speak
from callbridge.emulators.telcoflow import CallRecord as TelcoRecord
from callbridge.emulators.telcoflow import CommandLog, PulledFrame
from tests.kit import eventually, tone

VOICED_RMS = 200.0
"""The Telcoflow emulator's silence threshold (int16 RMS per 20 ms)."""


def agent_says(seconds: float, text: str = "agent speech", freq: float = 330.0) -> Speak:
    """Model speech of ``seconds`` at 24 kHz (Gemini's output rate)."""
    return Speak(tone(seconds, 24000, freq, amp=6000), text)


class Records:
    """A record listener keeping every bridge ``CallRecord`` it hears about."""

    def __init__(self) -> None:
        self.by_id: dict[str, CallRecord] = {}

    def on_entry(self, record: CallRecord, entry: RecordEntry) -> None:
        self.by_id.setdefault(record.call_id, record)

    def only(self) -> CallRecord:
        assert len(self.by_id) == 1, f"expected one bridged call, got {list(self.by_id)}"
        return next(iter(self.by_id.values()))

    async def ended(self, timeout: float = 15.0) -> CallRecord:
        """The single call's record once the bridge has finished it."""
        await eventually(lambda: len(self.by_id) == 1 and self.only().ended_at is not None, timeout)
        return self.only()


class Warnings(list[BridgeWarning]):
    """A warning handler that keeps every warning delivered."""

    def __call__(self, warning: BridgeWarning) -> None:
        self.append(warning)

    def codes(self) -> list[WarningCode]:
        return [w.code for w in self]

    def of(self, code: WarningCode) -> list[BridgeWarning]:
        return [w for w in self if w.code == code]


def names(record: TelcoRecord) -> list[str]:
    return [c.name for c in record.commands]


def the(record: TelcoRecord, name: str) -> CommandLog:
    """The one command of that name (fails if there is not exactly one)."""
    found = record.commands_named(name)
    assert len(found) == 1, f"expected one {name}, got {names(record)}"
    return found[0]


def voiced(
    frames: Iterable[PulledFrame], after: float | None = None, before: float | None = None
) -> list[PulledFrame]:
    """Pulled frames carrying agent speech, optionally inside a time window."""
    return [
        f
        for f in frames
        if rms(f.pcm) > VOICED_RMS
        and (after is None or f.t > after)
        and (before is None or f.t < before)
    ]


def tool_entries(record: CallRecord, status: str) -> list[RecordEntry]:
    return [e for e in record.events("tool") if e.data["status"] == status]


def sent_at(session: SessionLog, kind: str) -> list[float]:
    """When the Gemini emulator sent messages of this kind."""
    return [t for t, k in session.sent if k == kind]


def max_gap(times: list[float], start: float, end: float) -> float:
    """The longest stretch without a receipt inside [start, end] (edges included)."""
    inside = [t for t in times if start <= t <= end]
    points = [start, *inside, end]
    return max(b - a for a, b in itertools.pairwise(points))

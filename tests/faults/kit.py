"""What every fault scenario needs: a stack that records, short sounds, and lookups.

A scenario is judged by its outcome, so :class:`FaultStack` keeps everything the three
parties saw: the bridge's own call records (outcome, timeline, warnings), every warning as
delivered to a tenant's handlers (code, description, details), and the two emulators'
records (connections, resume handles, close codes, audio, commands).

Synthetic tones instead of the speech assets keep each scenario a few seconds long: both
emulators detect speech by energy, so a tone is speech to them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from callbridge.bridge.record import CallRecord, RecordEntry
from callbridge.bridge.warnings import BridgeWarning, WarningCode
from callbridge.emulators.gemini_live import Script, SessionLog, Speak
from callbridge.emulators.stack import LocalStack
from callbridge.emulators.telcoflow import EmulatedCall
from callbridge.service.delivery import log_warning
from tests.kit import eventually, tone

NO_GREETING: dict[str, Any] = {"model": {"greeting_prompt": None}}


def agent_says(seconds: float, text: str) -> Speak:
    """Model speech (24 kHz) with the words its outputTranscription carries."""
    return Speak(tone(seconds, 24000, 330.0, amp=7000), text)


def merge(*sections: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge config override sections (later wins)."""
    out: dict[str, Any] = {}
    for section in sections:
        for key, value in section.items():
            if isinstance(value, Mapping) and isinstance(out.get(key), dict):
                out[key] = merge(out[key], value)
            else:
                out[key] = dict(value) if isinstance(value, Mapping) else value
    return out


class FaultStack:
    """A :class:`LocalStack` plus everything the bridge reported while it ran."""

    stack: LocalStack

    def __init__(self) -> None:
        self.records: dict[str, CallRecord] = {}
        self.warnings: list[BridgeWarning] = []

    # Record listener and warning handler -------------------------------------------------

    def on_entry(self, record: CallRecord, entry: RecordEntry) -> None:
        self.records.setdefault(record.call_id, record)

    def on_warning(self, warning: BridgeWarning) -> None:
        self.warnings.append(warning)

    # Lookups -----------------------------------------------------------------------------

    @property
    def sessions(self) -> list[SessionLog]:
        return self.stack.gemini.sessions

    def record(self, call: EmulatedCall) -> CallRecord:
        return self.records[call.call_id]

    async def finished(self, call: EmulatedCall, timeout: float = 15.0) -> CallRecord:
        """The bridge's record of ``call`` once the bridge has finished it."""
        await eventually(
            lambda: (
                call.call_id in self.records and self.records[call.call_id].ended_at is not None
            ),
            timeout,
            f"the bridge to finish {call.call_id}",
        )
        return self.records[call.call_id]

    def warned(self, code: WarningCode, call: EmulatedCall | None = None) -> list[BridgeWarning]:
        return [
            w
            for w in self.warnings
            if w.code == code and (call is None or w.call_id == call.call_id)
        ]

    async def wait_warning(self, code: WarningCode, timeout: float = 10.0) -> BridgeWarning:
        await eventually(lambda: bool(self.warned(code)), timeout, f"warning {code}")
        return self.warned(code)[0]

    async def wait_sessions(self, count: int, timeout: float = 10.0) -> list[SessionLog]:
        return await self.stack.gemini.wait_sessions(count, timeout)

    def idle(self) -> bool:
        """No call is running in the bridge any more (its tasks have all ended)."""
        app = self.stack.app
        assert app is not None
        return app.source.active_calls == 0 and not app.runner.live


def notices(record: CallRecord) -> list[str]:
    """The model-session notices of a call, in order (go_away, rotated, reconnected...)."""
    return [
        str(e.data["kind"])
        for e in record.events("timeline")
        if e.data.get("event") == "model_session"
    ]


def notice_details(record: CallRecord, kind: str) -> list[str]:
    return [
        str(e.data.get("detail", ""))
        for e in record.events("timeline")
        if e.data.get("event") == "model_session" and e.data.get("kind") == kind
    ]


def agent_lines(record: CallRecord) -> list[str]:
    """What the agent said, one entry per turn, from the bridge's transcript."""
    return [text for speaker, text in record.transcripts() if speaker == "agent"]


def answered_turns(sessions: list[SessionLog]) -> int:
    """Model turns that produced audio, over all connections."""
    return sum(len(s.turn_audio_first_sent) for s in sessions)


def instruction(session: SessionLog) -> str:
    """The system instruction text of a connection's setup."""
    content = session.setup.get("system_instruction") or {}
    return "".join(str(p.get("text", "")) for p in content.get("parts") or [])


@asynccontextmanager
async def fault_stack(
    script: Script, *overrides: Mapping[str, Any], **stack_kwargs: Any
) -> AsyncIterator[FaultStack]:
    """Both emulators and a real bridge whose records and warnings are kept."""
    kept = FaultStack()
    kept.stack = LocalStack(
        script,
        overrides=merge(*overrides),
        warning_handlers=[log_warning, kept.on_warning],
        record_listeners=[kept],
        **stack_kwargs,
    )
    async with kept.stack:
        yield kept

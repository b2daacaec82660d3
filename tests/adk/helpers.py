"""Shared pieces of the ADK back-end tests: tenant config, fakes of our own call ports, audio."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from callbridge.bridge.config import ModelSettings, TelcoflowSettings, TenantConfig, WarningSettings
from callbridge.bridge.events import ModelAudio, ModelEvent, Transcript
from callbridge.bridge.ports import CallCommand, CommandOutcome, SessionRequest
from callbridge.bridge.record import CallRecord
from callbridge.bridge.tools import HangUp, HumanLeg, ToolContext
from callbridge.bridge.warnings import BridgeWarning, CallWarner
from callbridge.emulators.gemini_live import GeminiLiveEmulator, Speak
from callbridge.emulators.voices import load_phrase

MODEL_25 = "gemini-2.5-flash-native-audio-preview-12-2025"
MODEL_3X = "gemini-3.1-flash-live-preview"
FAMILIES = [MODEL_25, MODEL_3X]
FRAME = 640  # 20 ms of 16 kHz s16le
CALL_ID = "call-adk-1"
CALLER = "+15550001111"
TENANT = "acme"


def tenant_config(
    emu: GeminiLiveEmulator, model: str, db: Path, **model_settings: Any
) -> TenantConfig:
    """A tenant whose ADK agent talks to ``emu`` over TLS, with sessions in ``db``."""
    settings: dict[str, Any] = {
        "backend": "adk",
        "adk_agent": "callbridge.examples.human_escalation:root_agent",
        "model": model,
        "base_url": emu.base_url,
        "ca_file": Path(emu.ca_file),
        "api_key": "test-key",
        "adk_session_db": f"sqlite+aiosqlite:///{db}",
        **model_settings,
    }
    return TenantConfig(
        tenant=TENANT,
        telcoflow=TelcoflowSettings(api_key="x", connector_uuid="c"),
        model=ModelSettings(**settings),
        warnings=WarningSettings(slow_tool_call_s=5.0),
    )


def request(call_id: str = CALL_ID) -> SessionRequest:
    """The bridge's request; carries the caller once ``SessionRequest`` has that field."""
    fields = {f.name for f in dataclasses.fields(SessionRequest)}
    extra: dict[str, Any] = {"caller": CALLER} if "caller" in fields else {}
    return SessionRequest(call_id=call_id, tenant=TENANT, system_instruction="unused", **extra)


def speak(name: str, seconds: float | None = None) -> Speak:
    """A committed agent phrase, optionally cut to its first ``seconds`` (shorter tests)."""
    phrase = load_phrase(name)
    pcm = phrase.pcm if seconds is None else phrase.pcm[: int(seconds * 24000) * 2]
    return Speak(pcm=pcm, text=phrase.text)


async def say(send: Callable[[bytes], Awaitable[None]], emu: GeminiLiveEmulator, name: str) -> None:
    """A caller phrase (16 kHz) at about four times real time (the emulator's VAD runs on audio
    time), then silence only until the emulator has heard the utterance end.

    Stopping there matters when the model's answer starts with a BLOCKING tool call: audio
    still arriving after the call went out closes the session (1008), like the real service.
    On a real line audio keeps flowing; that race is inherent to BLOCKING tools."""
    log = emu.sessions[-1]
    ends = len(log.speech_ended_at)
    pcm = load_phrase(name).pcm
    for start in range(0, len(pcm), FRAME):
        await send(pcm[start : start + FRAME])
        await asyncio.sleep(0.005)
    async with asyncio.timeout(10):
        while len(log.speech_ended_at) == ends:
            await send(bytes(FRAME))
            await asyncio.sleep(0.005)


def audio_of(events: list[ModelEvent]) -> bytes:
    return b"".join(e.pcm for e in events if isinstance(e, ModelAudio))


# ── Fakes of our own ports (the call side), for the call-control tools ───────────────────────


@dataclass
class FakeCall:
    """A CallPort whose commands succeed unless told otherwise; CONNECT can ring a while."""

    call_id: str = CALL_ID
    caller: str = CALLER
    callee: str = "+15550002222"
    sample_rate: int = 16000
    end_reason: str = "caller_hangup"
    commands: list[tuple[float, CallCommand]] = field(default_factory=list)
    connect_outcome: str | None = None  # an error code, or None for success
    ring_s: float = 0.0
    ringing: asyncio.Event = field(default_factory=asyncio.Event)

    async def caller_audio(self) -> Any:  # pragma: no cover - not used by the tools
        yield b""

    def on_call_error(self, handler: Callable[[str, str], None]) -> None:
        return None

    async def write_audio(self, pcm: bytes) -> None:
        return None

    async def buffered_bytes(self) -> int:
        return 0

    async def clear_audio(self) -> int:
        return 0

    async def command(
        self, command: CallCommand, *, ring_time_s: int | None = None
    ) -> CommandOutcome:
        self.commands.append((time.monotonic(), command))
        if command is CallCommand.CONNECT:
            self.ringing.set()
            await asyncio.sleep(self.ring_s)
            if self.connect_outcome is not None:
                return CommandOutcome(command, False, self.connect_outcome, "nobody answered")
        return CommandOutcome(command, True, elapsed_s=0.0)

    def sent(self) -> list[CallCommand]:
        return [command for _, command in self.commands]


@dataclass
class FakeControl:
    """The call's CallControl; ``wait_until_played`` waits for a condition the test sets."""

    played: Callable[[], bool] = lambda: True
    finished: list[tuple[str, HangUp]] = field(default_factory=list)
    audio_enabled: list[bool] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)

    async def wait_until_played(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while not self.played():
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.01)
        return True

    def set_agent_audio(self, enabled: bool) -> None:
        self.audio_enabled.append(enabled)

    def finish(self, outcome: str, hang_up: HangUp = "none") -> None:
        self.finished.append((outcome, hang_up))
        self.done.set()


@dataclass
class ListSink:
    warnings: list[BridgeWarning] = field(default_factory=list)

    def submit(self, warning: BridgeWarning) -> None:
        self.warnings.append(warning)

    def codes(self) -> list[str]:
        return [w.code.value for w in self.warnings]


def tool_context(
    config: TenantConfig, call: FakeCall, control: FakeControl, sink: ListSink
) -> ToolContext:
    record = CallRecord(call_id=call.call_id, tenant=TENANT, caller=call.caller, callee="x")
    warner = CallWarner(
        call_id=call.call_id, tenant=TENANT, sink=sink, on_record=record.warning, min_interval_s=0
    )
    return ToolContext(
        call=call,
        control=control,
        record=record,
        warner=warner,
        settings=config.tools,
        human=HumanLeg(),
    )


def expected_user() -> str:
    """The ADK user id the connector uses for this test's call."""
    has_caller = "caller" in {f.name for f in dataclasses.fields(SessionRequest)}
    return CALLER if has_caller else "unknown-caller"


class Recorder:
    """Collects a session's events in a task; tests wait for conditions on what arrived."""

    def __init__(self, events: AsyncIterator[ModelEvent]) -> None:
        self._source = events
        self.events: list[ModelEvent] = []
        self._changed = asyncio.Event()

    async def run(self) -> None:
        async for event in self._source:
            self.events.append(event)
            self._changed.set()

    async def wait_for(
        self, condition: Callable[[list[ModelEvent]], bool], timeout: float = 20.0
    ) -> None:
        async with asyncio.timeout(timeout):
            while not condition(self.events):
                self._changed.clear()
                await self._changed.wait()

    def count(self, kind: type[ModelEvent]) -> int:
        return sum(isinstance(e, kind) for e in self.events)

    def said(self, start: int = 0, end: int | None = None) -> str:
        """The agent's words between two event indexes (pieces joined as they came)."""
        return "".join(
            e.text
            for e in self.events[start:end]
            if isinstance(e, Transcript) and e.speaker == "agent"
        )

    def index_of(self, predicate: Callable[[ModelEvent], bool]) -> int:
        return next(i for i, e in enumerate(self.events) if predicate(e))

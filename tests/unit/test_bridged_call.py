"""BridgedCall over in-memory ports (no sockets) and a clock the test moves: what a barge-in
records when the previous turn's audio was still queued as the interrupted turn began."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import numpy as np

from callbridge.bridge.call import BridgedCall
from callbridge.bridge.config import AudioSettings, WarningSettings
from callbridge.bridge.events import Interrupted, ModelAudio, ModelEvent, ToolResult, TurnComplete
from callbridge.bridge.heard import Role
from callbridge.bridge.ports import CallCommand, CommandOutcome
from callbridge.bridge.record import CallRecord
from callbridge.bridge.tools import ToolContext
from callbridge.bridge.warnings import CallWarner
from tests.kit import ManualClock, WarningList, eventually

RATE = 16000  # the call's and the model's: no resampling, so every byte is accounted for
BYTES_PER_S = RATE * 2


def speech(seconds: float, seed: int) -> bytes:
    """Loud noise: not quiet, not a tone (the silent-failure watch flags both)."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(int(seconds * RATE)) * 6000).astype("<i2").tobytes()


@dataclass
class MemoryCall:
    """A CallPort: keeps what is written; the send buffer reads empty (the platform pulls at
    once), so the bridge's own real-time estimate is the only account of what still plays."""

    call_id: str = "call-1"
    caller: str = "+15550001111"
    callee: str = "+15550002222"
    sample_rate: int = RATE
    end_reason: str = "caller_hangup"
    written: bytearray = field(default_factory=bytearray)
    cleared_bytes: int = 0
    hung_up: asyncio.Event = field(default_factory=asyncio.Event)

    async def caller_audio(self) -> AsyncIterator[bytes]:
        await self.hung_up.wait()
        return
        yield b""

    def on_call_error(self, handler: Callable[[str, str], None]) -> None:
        return None

    async def write_audio(self, pcm: bytes) -> None:
        self.written += pcm

    async def buffered_bytes(self) -> int:
        return 0

    async def clear_audio(self) -> int:
        return self.cleared_bytes

    async def command(
        self, command: CallCommand, *, ring_time_s: int | None = None
    ) -> CommandOutcome:
        return CommandOutcome(command, True)


@dataclass
class MemorySession:
    """A ModelSession whose events the test puts."""

    input_rate: int = RATE
    output_rate: int = RATE
    queue: asyncio.Queue[ModelEvent | None] = field(default_factory=asyncio.Queue)

    def put(self, *events: ModelEvent) -> None:
        for event in events:
            self.queue.put_nowait(event)

    async def send_audio(self, pcm: bytes) -> None:
        return None

    async def send_text(self, text: str) -> None:
        return None

    async def send_tool_result(self, result: ToolResult) -> None:
        return None

    async def send_context(self, role: Role, text: str) -> None:
        return None

    def bind_call(self, ctx: ToolContext) -> None:
        return None

    async def events(self) -> AsyncIterator[ModelEvent]:
        while (event := await self.queue.get()) is not None:
            yield event


def _note(record: CallRecord, event: str) -> dict[str, object]:
    [entry] = [e.data for e in record.events("timeline") if e.data["event"] == event]
    return entry


async def test_a_barge_in_counts_only_the_interrupted_turns_audio_as_played() -> None:
    """Turn 1 (2 s) is still queued when turn 2 (1 s) begins; all 3 s are written at once and
    the barge-in comes 2.8 s later by the call's clock: 0.2 s is still in the send buffer,
    so the caller heard all of turn 1 and 0.8 s of turn 2. The barge-in's ``played_ms`` and
    the clear's ``heard_s`` are the same count: the line's written-this-turn."""
    clock, call, session = ManualClock(), MemoryCall(), MemorySession()
    record = CallRecord(call.call_id, "t", call.caller, call.callee)
    warner = CallWarner(call_id=call.call_id, tenant="t", sink=WarningList(), min_interval_s=0)
    bridged = BridgedCall(
        call,
        session,
        audio=AudioSettings(call_rate=RATE),
        thresholds=WarningSettings(),
        record=record,
        warner=warner,
        truthful="note",
        clock=clock,
    )
    first, second = speech(2.0, 1), speech(1.0, 2)
    call.cleared_bytes = int(0.2 * BYTES_PER_S)
    async with asyncio.timeout(20), asyncio.TaskGroup() as tg:
        run = tg.create_task(bridged.run())
        session.put(ModelAudio(first), TurnComplete(), ModelAudio(second))
        await eventually(lambda: len(call.written) == len(first) + len(second), 10, "3 s written")
        clock.now = 2.8
        session.put(Interrupted())
        await eventually(lambda: bool(record.events("transcript")), 10, "the clear's answer")
        call.hung_up.set()
    assert run.result() == "caller_hangup"
    assert _note(record, "barge_in")["played_ms"] == 800, "turn 1's audio is not turn 2's"
    assert _note(record, "barge_in_heard")["heard_s"] == 0.8

"""What the bridge did to one emulated call, kept for test assertions and the demo.

The record is a plain mutable dataclass because the emulator fills it in while the call runs;
tests read it after ``EmulatedCall.ended()``. All times are ``time.monotonic()`` seconds so they
compare directly with timestamps taken by the test itself.
"""

from __future__ import annotations

import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

EndReason = Literal[
    "caller_hangup",
    "agent_disconnect",
    "agent_close",
    "voice_dropped",
    "emulator_shutdown",
]


@dataclass
class CommandLog:
    """One voice-WS command as the emulator saw it; the response fields fill in when it answers."""

    t: float
    name: str
    data: dict[str, Any]
    timeout_ms: int | None
    command_id: str = ""
    success: bool = False
    error_code: str | None = None
    responded_at: float | None = None


@dataclass(frozen=True, slots=True)
class PulledFrame:
    """One binary frame of agent audio received from the bridge (channel prefix stripped).

    ``pcm`` is empty when the emulator was built with ``record_audio=False``; ``size`` is the
    payload length either way.
    """

    t: float
    pcm: bytes
    size: int


@dataclass
class CallRecord:
    """Everything observable about one call, from the platform's side."""

    call_id: str
    session_id: str
    sample_rate: int = 0
    answered_at: float | None = None
    ended_at: float | None = None
    end_reason: EndReason | Literal[""] = ""
    commands: list[CommandLog] = field(default_factory=list)
    pulls: list[PulledFrame] = field(default_factory=list)
    agent_audio_bytes: int = 0
    caller_pcm: bytes = b""
    playout: bytes = b""
    interrupts: list[float] = field(default_factory=list)
    dropped_on_interrupt: int = 0
    underruns: int = 0
    over_delivered_bytes: int = 0
    modes: list[str] = field(default_factory=list)
    connects: int = 0
    script_events: list[tuple[float, str]] = field(default_factory=list)
    dial_result: str = ""
    """Outbound calls: what the callee did (answer, busy, reject, no_answer)."""
    pump_resyncs: int = 0
    """Times the emulator's own 20 ms pump fell over 200 ms behind and skipped ticks. Non-zero
    means the emulator process was overloaded, so timing results of this call are suspect."""

    def commands_named(self, name: str) -> list[CommandLog]:
        """The commands with this name, in arrival order (a convenience for assertions)."""
        return [c for c in self.commands if c.name == name]

    def agent_pcm(self) -> bytes:
        """All agent audio received, concatenated in arrival order."""
        return b"".join(p.pcm for p in self.pulls)


def write_stereo_wav(record: CallRecord, path: str | Path) -> None:
    """Write caller audio (left) and agent playout (right) as one 16-bit stereo WAV.

    Both tracks advance one 20 ms frame per pump tick, so they line up in time; the shorter one
    is padded with silence.
    """
    if record.sample_rate <= 0:
        raise ValueError("the call was never claimed, so it has no sample rate")
    left, right = record.caller_pcm, record.playout
    n = max(len(left), len(right)) // 2 * 2
    left = left.ljust(n, b"\x00")[:n]
    right = right.ljust(n, b"\x00")[:n]
    interleaved = np.column_stack(
        (np.frombuffer(left, dtype="<i2"), np.frombuffer(right, dtype="<i2"))
    )
    with wave.open(str(path), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(record.sample_rate)
        out.writeframes(interleaved.tobytes())

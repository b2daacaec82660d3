"""8 kHz calls: the call's own rate sent to the model loses no turn against resampling to 16 kHz.

The Gemini emulator resamples declared-rate audio to 16 kHz before its speech detection, as the
real server does (``emulators/gemini_live/native_rate.py``); here the same caller speech goes
through both paths and the model must find the same turns, of the same lengths.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from callbridge.emulators.gemini_live import Script, Turn
from callbridge.emulators.stack import LocalStack
from callbridge.emulators.telcoflow import CallerScript, HangUp, Pause, Say, WaitForAgentAudio
from tests.e2e.scenarios import agent, caller_pcm

PHRASES = ("caller_greeting", "caller_question", "caller_bye")


async def _turns_heard(
    model_input_rate: int | str, frame_ms: int = 20
) -> tuple[list[float], int, dict[str, Any]]:
    script = Script(turns=[Turn([agent("agent_transfer")]) for _ in PHRASES])
    steps: list[Any] = [Pause(0.3)]
    for name in PHRASES:
        steps += [Say(caller_pcm(name, 16000), rate=16000), WaitForAgentAudio(min_s=0.5)]
    steps += [Pause(0.5), HangUp()]
    overrides = {
        # 10 ms frames on the 16 kHz path: soxr releases 104 ms blocks, too coarse to time VAD
        # edges by; re-cut they arrive in 10 ms pieces like the 20 ms native frames.
        "audio": {"call_rate": 8000, "model_input_rate": model_input_rate, "frame_ms": frame_ms},
        "model": {"greeting_prompt": None},
    }
    async with LocalStack(script, overrides=overrides) as stack:
        call = stack.place_call(CallerScript(steps))
        record = await call.ended(timeout=60)
    session = stack.gemini.sessions[0]
    assert record.end_reason == "caller_hangup"
    rate = session.audio_in_rate or 0
    arrived = np.array([t for t, _ in session.audio_in])
    position_s = np.cumsum([n for _, n in session.audio_in]) / (2 * rate)

    def heard_at(t: float) -> float:
        """Caller audio (s) the model had received when its VAD fired at ``t``."""
        return float(position_s[np.searchsorted(arrived, t, side="right") - 1])

    starts, ends = session.speech_started_at, session.speech_ended_at
    lengths = [heard_at(e) - heard_at(s) for s, e in zip(starts, ends, strict=True)]
    return lengths, len(session.turn_started_at), {"rate": rate}


async def test_native_8k_finds_the_same_turns_as_16k() -> None:
    native, native_turns, native_info = await _turns_heard("auto")
    upsampled, upsampled_turns, upsampled_info = await _turns_heard(16000, frame_ms=10)
    assert native_info["rate"] == 8000, "auto sends an 8 kHz call's own rate"
    assert upsampled_info["rate"] == 16000
    assert len(native) == len(upsampled) == len(PHRASES), (native, upsampled)
    assert native_turns == upsampled_turns == len(PHRASES)
    for a, b in zip(native, upsampled, strict=True):
        # In audio time. Two runs of the *same* path differ by up to 0.1 s here (the caller's
        # phrase lands on a different 20 ms VAD frame grid each run), so 0.15 s is the bound.
        assert abs(a - b) < 0.15, (native, upsampled)

"""Whole calls through the unmodified telcoflow and google-genai clients and both emulators."""

from __future__ import annotations

from callbridge.emulators.gemini_live import Script, Turn
from callbridge.emulators.stack import LocalStack
from callbridge.emulators.telcoflow import CallerScript, HangUp, Pause, Say, WaitForAgentAudio
from tests.e2e.scenarios import agent, caller_pcm


async def test_full_call_greeting_turn_answer() -> None:
    script = Script(
        greeting=Turn([agent("agent_greeting")]),
        turns=[Turn([agent("agent_farewell")], input_transcript="Hello, I'd like to check.")],
    )
    async with LocalStack(script) as stack:
        call = stack.place_call(
            CallerScript(
                [
                    WaitForAgentAudio(min_s=1.5, timeout_s=15),
                    Pause(1.5),
                    Say(caller_pcm("caller_greeting", 16000)),
                    WaitForAgentAudio(min_s=1.0, timeout_s=15),
                    Pause(1.5),
                    HangUp(),
                ]
            )
        )
        record = await call.ended(timeout=60)
    assert record.end_reason == "caller_hangup"
    assert record.answered_at is not None
    assert record.agent_audio_bytes > 16000 * 2 * 2  # greeting + answer, several seconds
    assert [c.name for c in record.commands][:1] == ["call.answer"]
    session = stack.gemini.sessions[0]
    assert session.audio_in_bytes > 0
    assert session.texts_in  # the greeting nudge

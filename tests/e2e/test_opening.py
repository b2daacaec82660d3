"""The opening is protected: a short "hello?" in the greeting's first second does not cut it,
while a real barge-in later in the greeting still clears the line."""

from __future__ import annotations

from typing import Any

from callbridge.emulators.gemini_live import Script, Turn
from callbridge.emulators.stack import LocalStack
from callbridge.emulators.telcoflow import CallerScript, HangUp, Pause, Say, WaitForAgentAudio
from tests.e2e.scenarios import agent, caller_pcm

RATE = 16000
HELLO = caller_pcm("caller_greeting", RATE)[: int(0.5 * RATE) * 2]  # "Hello," (0.5 s)


async def _call(protect_s: float) -> tuple[Any, Any]:
    script = Script(
        greeting=Turn([agent("agent_answer_long")]),
        turns=[Turn([agent("agent_transfer")], input_transcript="I need a person.")],
    )
    caller = CallerScript(
        [
            WaitForAgentAudio(min_s=0.2, timeout_s=15),  # the greeting has begun
            Say(HELLO),  # "hello?" in its first second
            WaitForAgentAudio(min_s=2.5, timeout_s=15),
            Say(caller_pcm("caller_bargein", RATE)),  # a real barge-in, 3 s in
            WaitForAgentAudio(min_s=0.5, timeout_s=15),
            Pause(0.3),
            HangUp(),
        ]
    )
    async with LocalStack(script, overrides={"opening": {"protect_s": protect_s}}) as stack:
        call = stack.place_call(caller)
        record = await call.ended(timeout=60)
    return stack.gemini.sessions[0], record


async def test_short_hello_does_not_cut_the_greeting_a_real_barge_in_does() -> None:
    session, record = await _call(protect_s=2.0)
    greeting_start = session.turn_audio_first_sent[0]
    assert len(session.interrupted_at) == 1, "only the real barge-in interrupted the model"
    assert session.interrupted_at[0] - greeting_start > 2.5, "...and it came late in the greeting"
    assert len(session.speech_started_at) == 1, "the model never heard the short hello"
    # The real barge-in cleared the line: the bridge sent agent.interrupt, and the model's
    # answer to it was played.
    assert "agent.interrupt" in [c.name for c in record.commands]
    assert len(session.turn_audio_first_sent) == 2
    assert record.end_reason == "caller_hangup"


async def test_without_protection_the_hello_cuts_the_greeting() -> None:
    """The same call with the guard off: what a caller got before (shows the test can fail)."""
    session, _ = await _call(protect_s=0.0)
    greeting_start = session.turn_audio_first_sent[0]
    assert session.interrupted_at, "the hello interrupted the greeting"
    assert session.interrupted_at[0] - greeting_start < 1.5

"""A mailbox answers: the message is left after the beep, or the call hangs up, per tenant."""

from __future__ import annotations

from callbridge.bridge.outbound import DialOutcome
from callbridge.emulators.gemini_live import Script, Turn
from callbridge.emulators.voices import load_phrase
from tests.e2e.scenarios import agent
from tests.outbound.kit import TO, outbound_stack, voicemail
from tests.outbound.test_dial import voiced_frames

MESSAGE = Script(greeting=Turn([agent("agent_voicemail")]))


async def test_voicemail_message_is_left_after_the_beep() -> None:
    async with outbound_stack(MESSAGE) as stack:
        stack.telco.expect_callee(TO, voicemail())
        assert stack.app is not None
        result = await stack.app.dial(TO, variables={"name": "Ada"})
        record = await stack.telco.outbound_calls[0].ended(timeout=30)
    assert result.outcome is DialOutcome.VOICEMAIL_LEFT, result
    assert record.end_reason == "agent_disconnect"  # the bridge hung up after its message
    session = stack.gemini.sessions[0]
    # Nothing of the greeting reached the model: no false barge-in, no answer to a machine.
    assert session.audio_in_bytes == 0
    assert session.interrupted_at == []
    assert len(session.texts_in) == 1  # the voicemail prompt, and no opening before it
    # The whole message was played, and it started after the beep had ended.
    line, heard = voiced_frames(record.caller_pcm), voiced_frames(record.playout)
    beep_end = line[-1]
    assert heard and heard[0] > beep_end
    assert record.agent_audio_bytes >= 0.95 * load_phrase("agent_voicemail").duration_s * 32000


async def test_a_mailbox_without_a_beep_gets_the_message_after_its_greeting() -> None:
    async with outbound_stack(MESSAGE) as stack:
        stack.telco.expect_callee(TO, voicemail(beep=False))
        assert stack.app is not None
        result = await stack.app.dial(TO, variables={"name": "Ada"})
        record = await stack.telco.outbound_calls[0].ended(timeout=30)
    assert result.outcome is DialOutcome.VOICEMAIL_LEFT
    line, heard = voiced_frames(record.caller_pcm), voiced_frames(record.playout)
    assert heard[0] > line[-1]


async def test_tenant_that_hangs_up_on_machines() -> None:
    overrides = {"outbound": {"enabled": True, "voicemail": "hang_up"}}
    async with outbound_stack(MESSAGE, overrides=overrides) as stack:
        stack.telco.expect_callee(TO, voicemail())
        assert stack.app is not None
        result = await stack.app.dial(TO)
        record = await stack.telco.outbound_calls[0].ended(timeout=30)
    assert result.outcome is DialOutcome.NO_ANSWER
    assert record.end_reason == "agent_disconnect"
    assert record.agent_audio_bytes == 0
    assert stack.gemini.sessions[0].texts_in == []

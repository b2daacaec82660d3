"""Unplanned closes of the Gemini Live connection, by close code.

1000, 1006 and 1011 are transient: the bridge reconnects with its latest handle, warns
``MODEL_REQUEST_FAILED`` saying what it did, and the caller's next question is answered.
A rejected handle falls back to a fresh session seeded with the transcript so far.
1007 and 1008 mean the bridge itself is at fault (or the model is gone): reconnecting would
fail the same way, so the call ends cleanly, with the wire notes' reason in the warning.
"""

from __future__ import annotations

import itertools

import pytest

from callbridge.bridge.warnings import WarningCode
from callbridge.emulators.gemini_live import Fault, GeminiLiveEmulator, Script, Turn
from callbridge.emulators.telcoflow import CallerScript, HangUp, Pause, Say, WaitForAgentAudio
from tests.faults.kit import (
    NO_GREETING,
    agent_lines,
    agent_says,
    fault_stack,
    instruction,
    notices,
)
from tests.kit import caller_says, eventually

CLOSE_AT_S = 3.0
"""The close lands here, between the first answer (done by ~2.3 s) and the next question."""


def two_questions(quiet_s: float = CLOSE_AT_S - 1.3) -> CallerScript:
    """Ask, hear the answer, stay quiet over the close, ask again, hear it, hang up."""
    return CallerScript(
        [
            Pause(0.3),
            Say(caller_says(0.6)),
            WaitForAgentAudio(min_s=0.5, timeout_s=10),
            Pause(quiet_s),
            Say(caller_says(0.6)),
            WaitForAgentAudio(min_s=0.5, timeout_s=10),
            HangUp(),
        ]
    )


def order_script(*faults: Fault) -> Script:
    return Script(
        turns=[
            Turn([agent_says(0.8, "Order 4471 ships on Thursday.")], "Where is order 4471?"),
            Turn([agent_says(0.8, "You are welcome, goodbye.")], "Thanks a lot."),
        ],
        faults=faults,
    )


TRANSIENT = (1000, 1006, 1011)


async def test_transient_closes_reconnect_with_the_handle() -> None:
    # One call, three drops: the first connection closes with 1000 after the first answer,
    # the next two die 0.5 s after their setup with 1006 (TCP gone) and 1011.
    faults = [Fault.close(CLOSE_AT_S, code=1000, on_connection=0)] + [
        Fault.close(0.5, code=code, on_connection=k) for k, code in enumerate(TRANSIENT) if k
    ]
    script = order_script(*faults)
    async with fault_stack(script, NO_GREETING, {"warnings": {"min_interval_s": 0}}) as fs:
        call = fs.stack.place_call(two_questions(quiet_s=2.6))
        emu = await call.ended(timeout=30)
        record = await fs.finished(call)
    sessions = fs.sessions
    assert [s.close_code for s in sessions] == [*TRANSIENT, 1000]
    assert sessions[0].turn_audio_first_sent, "the first question was answered before the drops"
    for before, after in itertools.pairwise(sessions):
        assert after.resumed_from == before.handles_issued[-1], "resumed, from the latest handle"
    assert notices(record) == ["reconnected"] * len(TRANSIENT)
    warnings = fs.warned(WarningCode.MODEL_REQUEST_FAILED)
    assert [w.details for w in warnings] == [
        {"close_code": code, "action": "reconnected"} for code in TRANSIENT
    ]
    for code, warning in zip(TRANSIENT, warnings, strict=True):
        assert f"connection closed ({code}" in warning.description
        assert "(resumed)" in warning.description
    # The conversation went on: the second question was answered on the last connection.
    assert sessions[-1].turn_audio_first_sent
    assert agent_lines(record) == ["Order 4471 ships on Thursday.", "You are welcome, goodbye."]
    assert record.outcome == "caller_hangup" and emu.end_reason == "caller_hangup"


async def test_rejected_handle_starts_a_fresh_session_seeded_with_the_transcript() -> None:
    script = order_script(
        Fault.close(CLOSE_AT_S, code=1011, on_connection=0), Fault.reject_resume(1)
    )
    async with fault_stack(script, NO_GREETING) as fs:
        call = fs.stack.place_call(two_questions())
        emu = await call.ended(timeout=30)
        record = await fs.finished(call)
    first, rejected, fresh = fs.sessions
    assert first.close_code == 1011
    assert rejected.close_code == 1007 and rejected.resumed_from is None
    assert fresh.resumed_from is None and fresh.conversation_id != first.conversation_id
    seeded = instruction(fresh)
    assert "could not be resumed" in seeded
    assert "Where is order 4471?" in seeded and "Order 4471 ships on Thursday." in seeded
    assert instruction(first) in seeded, "the tenant's own instruction is kept"
    assert notices(record) == ["resume_rejected"]
    [warning] = fs.warned(WarningCode.MODEL_REQUEST_FAILED)
    assert warning.details == {"close_code": 1011, "action": "resume_rejected"}
    assert "resumption failed" in warning.description and "1007" in warning.description
    assert fresh.turn_audio_first_sent, "the fresh session answered the next question"
    assert record.outcome == "caller_hangup" and emu.end_reason == "caller_hangup"


@pytest.mark.parametrize(
    ("code", "reason", "explained"),
    [
        (1007, "Request contains an invalid argument.", "invalid argument"),
        (1008, "Policy violation.", "policy violation"),
    ],
)
async def test_fatal_close_ends_the_call_cleanly(code: int, reason: str, explained: str) -> None:
    script = order_script(Fault.close(1.5, code=code, reason=reason, on_connection=0))
    caller = CallerScript([Pause(0.3), Say(caller_says(0.6)), WaitForAgentAudio(0.5, 10)])
    async with fault_stack(script, NO_GREETING) as fs:
        call = fs.stack.place_call(caller)
        emu = await call.ended(timeout=20)
        record = await fs.finished(call)
    assert len(fs.sessions) == 1, "no reconnect: it would fail the same way"
    assert fs.sessions[0].close_code == code
    [warning] = fs.warned(WarningCode.MODEL_REQUEST_FAILED)
    assert warning.details == {"close_code": code}
    assert f"closed the session with {code}: {explained}" in warning.description
    assert reason in warning.description and "ending the call" in warning.description
    assert record.outcome == "model_failed"
    assert emu.end_reason == "agent_disconnect", "the bridge hung up; no dead air"
    assert [c.name for c in emu.commands] == ["call.answer", "call.disconnect"]
    assert emu.commands[-1].success


async def test_drop_between_question_and_answer_replays_the_question() -> None:
    # A slow end-of-speech detector (1.5 s) leaves a wide window after the question in which
    # the server has heard it but not answered yet; the drop lands there.
    script = order_script(Fault.close(1.8, code=1011, on_connection=0))
    gemini = GeminiLiveEmulator(script, vad_hangover_s=1.5)
    caller = CallerScript(
        [Pause(0.3), Say(caller_says(0.8)), WaitForAgentAudio(min_s=0.5, timeout_s=6), HangUp()]
    )
    async with fault_stack(script, NO_GREETING, gemini=gemini) as fs:
        call = fs.stack.place_call(caller)
        emu = await call.ended(timeout=20)
        record = await fs.finished(call)
    first, second = fs.sessions
    assert first.speech_started_at and not first.speech_ended_at, "dropped before turn end"
    assert not first.turn_started_at
    # The caller's question, heard only by the lost connection, was replayed to the new one.
    assert second.resumed_from == first.handles_issued[-1]
    assert second.speech_started_at and second.speech_ended_at, "the new connection heard it"
    assert second.turn_audio_first_sent, "the question was answered after the reconnect"
    assert agent_lines(record) == ["Order 4471 ships on Thursday."]
    assert record.outcome == "caller_hangup" and emu.end_reason == "caller_hangup"


async def test_model_outage_mid_call_ends_the_call_after_bounded_attempts() -> None:
    script = order_script()
    caller = CallerScript([Pause(0.3), Say(caller_says(0.6)), WaitForAgentAudio(0.5, 10)])
    attempts = {"model": {"max_reconnect_attempts": 2}}
    async with fault_stack(script, NO_GREETING, attempts) as fs:
        call = fs.stack.place_call(caller)
        await eventually(lambda: call.record.agent_audio_bytes > 0, 10, "the first answer")
        await fs.stack.gemini.stop()  # the whole endpoint goes away (1001, then refused)
        emu = await call.ended(timeout=15)
        record = await fs.finished(call)
    [session] = fs.sessions
    assert session.close_code == 1001
    [warning] = fs.warned(WarningCode.MODEL_REQUEST_FAILED)
    assert warning.details == {"close_code": 1001}
    assert "2 reconnect attempts failed" in warning.description
    assert "ending the call" in warning.description
    assert record.outcome == "model_failed"
    assert emu.end_reason == "agent_disconnect", "the bridge hung up; no dead air"
    assert [c.name for c in emu.commands] == ["call.answer", "call.disconnect"]


async def test_drop_mid_answer_does_not_make_the_model_answer_twice() -> None:
    script = Script(
        turns=[Turn([agent_says(2.5, "Order 4471 ships on Thursday.")], "Where is it?")],
        faults=[Fault.close(2.2, code=1011, on_connection=0)],
    )
    caller = CallerScript(
        [Pause(0.3), Say(caller_says(0.6)), WaitForAgentAudio(1.5, 10), Pause(1.5), HangUp()]
    )
    async with fault_stack(script, NO_GREETING) as fs:
        call = fs.stack.place_call(caller)
        emu = await call.ended(timeout=20)
        record = await fs.finished(call)
    first, second = fs.sessions
    kinds = first.kinds()
    assert "audio" in kinds and "turnComplete" not in kinds, "the drop came mid-answer"
    assert notices(record) == ["reconnected"]
    # The answer the caller already heard is not produced again on the new connection.
    assert not second.turn_started_at, "the question was not replayed after its answer began"
    assert agent_lines(record) == ["Order 4471 ships on Thursday."]
    assert record.outcome == "caller_hangup" and emu.end_reason == "caller_hangup"

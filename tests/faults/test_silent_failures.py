"""The five silent failures of a model turn, each provoked through the Gemini emulator.

For each: the coded warning reaches the tenant, the bounded recovery (one nudge) reaches the
model, the model's next turn is heard by the caller, and the call goes on to a normal end.
"""

from __future__ import annotations

from typing import Any

from callbridge.bridge.line_watch import NUDGES
from callbridge.bridge.warnings import WarningCode
from callbridge.emulators.gemini_live import Fault, Script, Turn
from callbridge.emulators.telcoflow import CallerScript, HangUp, Pause, Say, WaitForAgentAudio
from tests.faults.kit import NO_GREETING, agent_lines, agent_says, fault_stack, merge
from tests.kit import caller_says

ANSWER = "Yes, it shipped yesterday."


def _script(first: Turn, fault: Fault) -> Script:
    return Script(turns=[first, Turn([agent_says(0.6, ANSWER)])], faults=[fault])


def _caller(wait_s: float = 0.0) -> CallerScript:
    steps: list[Any] = [Pause(0.3), Say(caller_says(0.6))]
    if wait_s:
        steps.append(Pause(wait_s))  # the failing turn may play audio the caller must not count
    steps += [WaitForAgentAudio(min_s=0.5, timeout_s=10), Pause(0.3), HangUp()]
    return CallerScript(steps)


async def _provoke(
    script: Script, code: WarningCode, caller: CallerScript, **warnings: Any
) -> tuple[Any, Any, Any, Any]:
    overrides = merge(NO_GREETING, {"warnings": warnings})
    async with fault_stack(script, overrides) as fs:
        call = fs.stack.place_call(caller)
        emu = await call.ended(timeout=30)
        record = await fs.finished(call)
    [session] = fs.sessions
    [warning] = fs.warned(code)
    return session, record, warning, emu


def _recoveries(record: Any) -> list[str]:
    return [
        str(e.data["recovery"])
        for e in record.events("timeline")
        if e.data.get("event") == "model_recovery"
    ]


def _assert_recovered(session: Any, record: Any, emu: Any, recovery: str) -> None:
    assert session.texts_in == [NUDGES[recovery]], "exactly one recovery nudge reached the model"
    assert _recoveries(record) == [recovery]
    assert agent_lines(record)[-1] == ANSWER, "the model's next turn reached the transcript"
    assert emu.agent_audio_bytes > 0
    assert record.outcome == "caller_hangup", "the call went on to the caller's hang-up"


async def test_response_rejected_is_reported_and_the_model_asked_again() -> None:
    first = Turn([agent_says(0.6, "Let me check.")], input_transcript="Is it shipped?")
    session, record, warning, emu = await _provoke(
        _script(first, Fault.response_rejected(0)),
        WarningCode.MODEL_RESPONSE_REJECTED,
        _caller(),
    )
    assert "RESPONSE_REJECTED" in warning.description
    assert "fault: turn 0 response_rejected" in session.notes
    _assert_recovered(session, record, emu, "repeat")
    assert agent_lines(record) == [ANSWER]


async def test_near_silent_agent_audio_is_reported_and_repeated() -> None:
    first = Turn([agent_says(3.0, "Your order shipped yesterday.")])
    session, record, warning, emu = await _provoke(
        _script(first, Fault.quiet_audio(0)),
        WarningCode.AGENT_AUDIO_NEAR_SILENT,
        _caller(),
    )
    assert "near-zero amplitude" in warning.description
    _assert_recovered(session, record, emu, "repeat")


async def test_phantom_interruption_is_reported_and_the_model_resumes() -> None:
    first = Turn([agent_says(8.0, "Your order shipped yesterday and it arrives on Thursday.")])
    session, record, warning, emu = await _provoke(
        _script(first, Fault.phantom_interrupt(0, after_s=5.0)),
        WarningCode.MODEL_PHANTOM_INTERRUPTION,
        _caller(wait_s=3.0),
        phantom_resume_after_s=1.0,
    )
    assert "caller was silent" in warning.description
    assert len(session.interrupted_at) == 1 and not session.speech_started_at[1:]
    _assert_recovered(session, record, emu, "continue")


async def test_turn_cut_mid_sentence_is_reported_and_continued() -> None:
    # A normal first turn: the back end shows it reports generationComplete (ADK does not),
    # which is what makes a turn without one look cut.
    script = Script(
        turns=[
            Turn([agent_says(0.6, "Let me check.")]),
            Turn([agent_says(2.0, "Your order shipped yesterday and it will arrive on Thursday.")]),
            Turn([agent_says(0.6, ANSWER)]),
        ],
        faults=[Fault.cut_mid_sentence(1)],
    )
    caller = CallerScript(
        [
            Pause(0.3),
            Say(caller_says(0.6)),
            WaitForAgentAudio(min_s=0.3, timeout_s=10),
            Pause(1.0),
            Say(caller_says(0.6)),
            Pause(1.5),
            WaitForAgentAudio(min_s=0.5, timeout_s=10),
            Pause(0.3),
            HangUp(),
        ]
    )
    session, record, warning, emu = await _provoke(
        script, WarningCode.MODEL_TURN_CUT_MID_SENTENCE, caller
    )
    assert "mid-sentence" in warning.description
    kinds = session.kinds()
    cut_end = [i for i, k in enumerate(kinds) if k == "turnComplete"][1]
    assert "generationComplete" not in kinds[kinds.index("turnComplete") + 1 : cut_end]
    _assert_recovered(session, record, emu, "continue")


async def test_sustained_tone_is_cut_reported_and_repeated() -> None:
    first = Turn([agent_says(0.6, "unused")])
    session, record, warning, emu = await _provoke(
        _script(first, Fault.tone(0, seconds=6.0)),
        WarningCode.AGENT_AUDIO_TONE,
        _caller(wait_s=2.0),
    )
    assert "steady tone" in warning.description
    _assert_recovered(session, record, emu, "cut_and_repeat")
    cleared = [e for e in record.events("timeline") if e.data.get("event") == "buffer_cleared"]
    assert cleared, "the tone was cleared from the line"
    # 6 s of tone was sent; the caller heard at most ~3.5 s of it plus the 0.6 s answer.
    assert emu.agent_audio_bytes < 16000 * 2 * 4.5


async def test_recoveries_are_bounded_per_call() -> None:
    """Every turn rejected: one nudge per failing turn, never more than the call's budget."""
    script = Script(
        turns=[Turn([agent_says(0.6, ANSWER)]) for _ in range(4)],
        faults=[Fault.response_rejected(i) for i in range(4)],
    )
    overrides = merge(NO_GREETING, {"warnings": {"max_recoveries_per_call": 2}})
    async with fault_stack(script, overrides) as fs:
        call = fs.stack.place_call(
            CallerScript([Pause(0.3), Say(caller_says(0.6)), Pause(4.0), HangUp()])
        )
        await call.ended(timeout=30)
        record = await fs.finished(call)
    [session] = fs.sessions
    assert session.texts_in == [NUDGES["repeat"]] * 2, "two recoveries, then only warnings"
    assert len(fs.warned(WarningCode.MODEL_RESPONSE_REJECTED)) >= 1
    notes = [e.data for e in record.events("timeline") if e.data.get("event") == "silent_failure"]
    assert [n["recovery"] for n in notes] == ["repeat", "repeat", None]
    assert record.outcome == "caller_hangup"
